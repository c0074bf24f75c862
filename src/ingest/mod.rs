//! Kafka in: the consumer and its rebalance signals, dead letters, and the per-partition worker
//! that applies batches and fires clocks.

pub mod consumer;
pub mod deadletter;
pub mod worker;
