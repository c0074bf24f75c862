//! Escalations out: from the Redis outbox to the escalations topic, at least once, and to
//! Alertmanager when configured.

pub mod alertmanager;
pub mod publisher;
