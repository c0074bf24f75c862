//! The group consumer: the co-partitioning check, and a context whose callbacks
//! only *signal* (rebalances to the partition workers, statistics to the metrics).

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::config::KafkaConfig;
use crate::health::Health;
use crate::metrics::Metrics;

/// What a partition worker is told about its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Assigned,
    Revoked,
}

/// Rebalance and statistics callbacks. They run on librdkafka's thread: never block here.
pub(crate) struct IngestContext {
    pub(crate) workers: std::sync::RwLock<HashMap<i32, mpsc::UnboundedSender<Control>>>,
    pub(crate) alerts_topic: String,
    pub(crate) dispositions_topic: String,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
}

impl std::fmt::Debug for IngestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestContext").finish_non_exhaustive()
    }
}

impl IngestContext {
    pub(crate) fn new(
        config: &KafkaConfig,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> IngestContext {
        IngestContext {
            workers: Default::default(),
            alerts_topic: config.alerts_topic.clone(),
            dispositions_topic: config.dispositions_topic.clone(),
            metrics,
            health,
        }
    }

    /// Tells each worker of `tpl` what happened; returns how many partition numbers it names.
    fn signal(&self, tpl: &TopicPartitionList, control: Control) -> usize {
        let workers = self
            .workers
            .read()
            .expect("worker map lock is never poisoned");
        let mut seen = std::collections::BTreeSet::new();
        for e in tpl.elements() {
            if e.topic() != self.alerts_topic && e.topic() != self.dispositions_topic {
                continue;
            }
            // Both topics' partition p belong to the same worker; signal it once.
            if seen.insert(e.partition()) {
                match workers.get(&e.partition()) {
                    Some(tx) => {
                        let _ = tx.send(control);
                    }
                    None => tracing::warn!(
                        partition = e.partition(),
                        "Partition assigned that did not exist at start-up; restart to own it."
                    ),
                }
            }
        }
        tracing::info!(partitions = ?seen, ?control, "Rebalance.");
        seen.len()
    }
}

impl ClientContext for IngestContext {
    fn stats(&self, stats: Statistics) {
        for (name, topic) in &stats.topics {
            if *name != self.alerts_topic && *name != self.dispositions_topic {
                continue;
            }
            for (p, part) in &topic.partitions {
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.metrics.set_consumer_lag(name, *p, part.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error.");
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.health.set_kafka(false);
        }
    }
}

impl ConsumerContext for IngestContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Revocations are signalled before librdkafka drops the partitions, so the worker stops
        // taking input from them first; the new owner's epoch fences anything still in flight.
        if let Rebalance::Revoke(tpl) = rebalance {
            self.health.set_assigned(None);
            self.signal(tpl, Control::Revoked);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.health.set_kafka(true);
                let partitions = self.signal(tpl, Control::Assigned);
                self.health.set_assigned(Some(partitions));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "Rebalance failed."),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "Offset commit failed; it is retried at the next interval.");
        }
    }
}

pub(crate) type IngestConsumer = StreamConsumer<IngestContext>;

/// A reason not to start: the input topics are missing or not co-partitioned.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "topic {0} does not exist; create it (co-partitioned with the other input topic) and start again"
    )]
    Missing(String),
    #[error(
        "topics {alerts} ({alerts_n} partitions) and {dispositions} ({dispositions_n} partitions) are not co-partitioned: they need the same partition count, keyed by alert_id"
    )]
    NotCoPartitioned {
        alerts: String,
        alerts_n: usize,
        dispositions: String,
        dispositions_n: usize,
    },
    #[error("cannot read metadata from the brokers (check kafka.brokers and the [kafka.client] security settings): {0}")]
    Unreachable(rdkafka::error::KafkaError),
}

/// Partition count of `topic`, or `None` if the broker does not know it.
pub(crate) fn partition_count<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
) -> Result<Option<usize>, TopologyError> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(TopologyError::Unreachable)?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0))
}

/// Checks that both input topics exist with the same partition count; returns the count.
pub(crate) fn check_copartitioned<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    config: &KafkaConfig,
) -> Result<usize, TopologyError> {
    let a = partition_count(consumer, &config.alerts_topic)?
        .ok_or_else(|| TopologyError::Missing(config.alerts_topic.clone()))?;
    let d = partition_count(consumer, &config.dispositions_topic)?
        .ok_or_else(|| TopologyError::Missing(config.dispositions_topic.clone()))?;
    if a != d {
        return Err(TopologyError::NotCoPartitioned {
            alerts: config.alerts_topic.clone(),
            alerts_n: a,
            dispositions: config.dispositions_topic.clone(),
            dispositions_n: d,
        });
    }
    Ok(a)
}
