//! One partition number's input: its alerts and dispositions queues, split off the group
//! consumer, read in batches; where to read from (seek) and what was consumed (offsets).

use futures::stream::{self, BoxStream, StreamExt};
use futures::FutureExt;
use rdkafka::consumer::Consumer;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use sync_wrapper::SyncWrapper;

use super::consumer::{IngestConsumer, IngestContext};

/// One topic-partition's queue, split off the group consumer.
type Queue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<IngestContext>;

/// Most messages in one batch. A batch is what is waiting, so it is this large only in a
/// backlog, where larger batches cost Redis less a message (one script call, the alerts of a
/// batch loaded and written once): draining 200k alerts with their dispositions, 14.2–15.6 µs
/// of Redis CPU a message at 2,000 against 16–19.3 µs at 500. The price is Redis busy longer
/// with each call: 27 ms at the median, 82 ms at p99, against 10 and 21 ms (BENCHMARKS.md).
pub(crate) const MAX_BATCH: usize = 2000;

/// Where to read a topic from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFrom {
    /// The message after this offset.
    After(i64),
    /// The first message at or after this time (ms); the beginning if the broker cannot say.
    Time(i64),
}

/// Reads partition *p* of both input topics.
pub(crate) struct PartitionInput {
    partition: i32,
    consumer: Arc<IngestConsumer>,
    topics: [String; 2],
    /// Both queues merged. Only `next_batch` (with `&mut self`) touches it, so the wrapper can
    /// make the input `Sync` without a lock.
    messages: SyncWrapper<BoxStream<'static, OwnedMessage>>,
}

impl std::fmt::Debug for PartitionInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionInput")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl PartitionInput {
    /// Splits partition `partition`'s queues off the main consumer queue. Call it before
    /// subscribing, so no message of the partition can reach the main queue.
    pub(crate) fn split(
        consumer: Arc<IngestConsumer>,
        alerts_topic: &str,
        dispositions_topic: &str,
        partition: i32,
    ) -> Option<PartitionInput> {
        let alerts = consumer.split_partition_queue(alerts_topic, partition)?;
        let dispositions = consumer.split_partition_queue(dispositions_topic, partition)?;
        let messages = stream::select(messages_of(alerts), messages_of(dispositions)).boxed();
        Some(PartitionInput {
            partition,
            consumer,
            topics: [alerts_topic.to_owned(), dispositions_topic.to_owned()],
            messages: SyncWrapper::new(messages),
        })
    }

    /// The next batch: what is waiting, up to [`MAX_BATCH`] messages, at least one.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken off its queue only when the batch is returned.
    pub(crate) async fn next_batch(&mut self) -> Vec<OwnedMessage> {
        let Some(first) = self.messages.get_mut().next().await else {
            return std::future::pending().await;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match self.messages.get_mut().next().now_or_never() {
                Some(Some(m)) => batch.push(m),
                _ => break,
            }
        }
        batch
    }

    /// The two topics, alerts first.
    pub(crate) fn topics(&self) -> &[String; 2] {
        &self.topics
    }

    /// Moves the read position of `topic`. librdkafka drops what it fetched before the seek,
    /// so nothing from the old position arrives after it.
    pub(crate) async fn seek(&self, topic: &str, to: ReadFrom) {
        let to = match to {
            ReadFrom::After(offset) => Offset::Offset(offset + 1),
            ReadFrom::Time(ms) => offset_at(&self.consumer, topic, self.partition, ms).await,
        };
        if let Err(e) = self
            .consumer
            .seek(topic, self.partition, to, Duration::ZERO)
        {
            tracing::warn!(partition = self.partition, topic, error = %e, "Seek failed; reading on from the committed offset.");
        }
    }

    /// The group's committed offsets as the last offset applied (committed − 1) per topic: a
    /// lower bound of what this group applied to Redis before. Empty if the broker cannot say.
    /// Asked before subscribing: during a rebalance the coordinator is busy.
    pub(crate) async fn committed(&self) -> HashMap<String, i64> {
        let mut tpl = TopicPartitionList::new();
        for topic in &self.topics {
            let _ = tpl.add_partition(topic, self.partition);
        }
        let consumer = self.consumer.clone();
        let asked = tokio::task::spawn_blocking(move || {
            consumer.committed_offsets(tpl, Duration::from_secs(5))
        })
        .await;
        let Ok(Ok(tpl)) = asked else {
            return HashMap::new();
        };
        tpl.elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => Some((e.topic().to_owned(), o - 1)),
                _ => None,
            })
            .collect()
    }

    /// Offsets go to Kafka only after Redis has the batch (the next one to read is `last + 1`).
    pub(crate) fn consumed(&self, last: &[(String, i64)]) {
        let mut tpl = TopicPartitionList::new();
        for (topic, offset) in last {
            let _ = tpl.add_partition_offset(topic, self.partition, Offset::Offset(offset + 1));
        }
        if let Err(e) = self.consumer.store_offsets(&tpl) {
            tracing::debug!(partition = self.partition, error = %e, "Offsets not stored (partition moved?).");
        }
    }
}

/// The first offset at or after `time`, or the beginning if the broker cannot say.
async fn offset_at(
    consumer: &Arc<IngestConsumer>,
    topic: &str,
    partition: i32,
    time: i64,
) -> Offset {
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(topic, partition, Offset::Offset(time))
        .is_err()
    {
        return Offset::Beginning;
    }
    let consumer = consumer.clone();
    let looked_up = tokio::task::spawn_blocking(move || {
        consumer.offsets_for_times(tpl, Duration::from_secs(5))
    })
    .await;
    match looked_up {
        Ok(Ok(found)) => found
            .elements()
            .first()
            .map(|e| e.offset())
            .filter(|o| matches!(o, Offset::Offset(_)))
            .unwrap_or(Offset::Beginning),
        _ => Offset::Beginning,
    }
}

/// A partition queue as a stream of owned messages; consume errors are logged and skipped
/// (librdkafka retries them itself).
fn messages_of(queue: Queue) -> impl futures::Stream<Item = OwnedMessage> + Send + 'static {
    stream::unfold(queue, |q| async move {
        let m = q.recv().await.map(|m| m.detach());
        Some((m, q))
    })
    .filter_map(|m| async move {
        m.inspect_err(|e| tracing::warn!(error = %e, "Kafka consume error."))
            .ok()
    })
}
