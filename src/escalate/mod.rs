//! Escalations out: the outbox relay to the escalations topic, at least once, and the
//! Alertmanager sink driven from its durable queue in Redis.

pub mod alertmanager;
pub mod publisher;
pub mod relay;
