//! Kafka out: escalations from the Redis outbox to the escalations topic, at least once.

pub mod publisher;
