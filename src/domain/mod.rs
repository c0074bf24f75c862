//! The pure core: message types and their validation, the SLA policy, and the state machine.
//!
//! Nothing here does I/O or reads a clock: time is always an argument, so every rule of
//! docs/contract.md §3 can be tested exhaustively in place and benchmarked without servers.

pub mod escalation;
pub mod event;
pub mod policy;
pub mod sla;
pub mod time;
pub mod validate;

pub use escalation::{Escalation, EscalationKind};
pub use event::{Alert, Disposition, DispositionKind, Outcome, Risk, Stage};
pub use policy::{Ladder, Ladders, Policies, Policy, StageRule};
pub use sla::{AlertState, Effect, StageStatus};
pub use time::Millis;
pub use validate::{Decoded, Rejection};
