//! Kafka in: the group consumer and its rebalance signals, each partition's input queues, and
//! dead letters. It knows nothing of what goes out.

pub mod consumer;
pub mod deadletter;
pub mod partition_input;
