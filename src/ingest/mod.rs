//! Kafka in: the group consumer and its rebalance signals, each partition's input queues, and
//! dead letters. It knows nothing of what goes out.

pub(crate) mod consumer;
pub(crate) mod deadletter;
pub(crate) mod partition_input;
