//! fraud-sla: SLA clocks for anti-fraud early-warning alerts.
//!
//! - [`domain`] — pure: message validation, the policy and the SLA state machine.
pub mod domain;
