//! fraud-sla: SLA clocks for anti-fraud early-warning alerts.
//!
//! - [`domain`] — pure: message validation, the policy and the SLA state machine (docs/contract.md §3).
//! - [`config`] — the TOML configuration, strict, every error naming its key.
//! - [`store`] — Redis: per-partition state, clocks and outbox, written by Lua scripts.
//! - [`kafka`] — Kafka client settings shared by the processor and the tools.
//! - [`partition`] — one partition's life (claim, fence, rebuild after a Redis rollback, run),
//!   and [`partition::plan`], its decisions as pure functions.
//! - [`ingest`] — Kafka in: the consumer, each partition's input queues, dead letters.
//! - [`escalate`] — out: the outbox relay to Kafka, at least once, and the Alertmanager sink.
//! - [`retry`] — the one retry-with-backoff helper.
//! - [`http`], [`metrics`], [`health`] — what operators see; [`reload`] — `SIGHUP`.
//! - [`app`] — wiring and shutdown; [`fatal`] — why a process must stop; [`simulate`] — the load generator; [`watch`] — prints
//!   escalations for the demo; [`report`] — the compliance report and SLA audit, replayed from
//!   the topics through the same domain code.

pub mod app;
pub mod config;
pub mod domain;
mod escalate;
pub mod fatal;
mod health;
mod http;
mod ingest;
mod kafka;
mod metrics;
pub mod partition;
pub mod policy_report;
mod process_metrics;
mod reload;
pub mod report;
mod retry;
pub mod simulate;
pub mod store;
pub mod watch;
