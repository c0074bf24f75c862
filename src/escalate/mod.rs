//! Escalations out: the outbox relay to the escalations topic, at least once, and the
//! Alertmanager sink driven from its durable queue in Redis.

pub(crate) mod alertmanager;
pub(crate) mod publisher;
pub(crate) mod relay;
