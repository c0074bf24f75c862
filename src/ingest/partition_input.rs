//! One partition number's input: its alerts and dispositions queues, split off the group
//! consumer, read in batches; where to read from (seek) and what was consumed (offsets).

use futures::stream::{self, BoxStream, StreamExt};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use sync_wrapper::SyncWrapper;

use super::consumer::{IngestConsumer, IngestContext};
use crate::domain::Millis;

/// One topic-partition's queue, split off the group consumer.
type Queue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<IngestContext>;

/// Most messages in one batch. A batch is what is waiting, so it is this large only in a
/// backlog, where larger batches cost Redis less a message (one script call, the alerts of a
/// batch loaded and written once): draining 200k alerts with their dispositions, 14.2–15.6 µs
/// of Redis CPU a message at 2,000 against 16–19.3 µs at 500, measured before batches were
/// taken oldest first across the two topics. The price is Redis busy longer with each call:
/// 27 ms at the median, 82 ms at p99, against 10 and 21 ms (BENCHMARKS.md).
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
    /// Each topic's queue with what was taken off it and not yet handed out (alerts first).
    waiting: [Waiting; 2],
}

/// One topic's queue, and the messages taken off it, in offset order, up to [`MAX_BATCH`].
struct Waiting {
    /// Only methods with `&mut self` touch it, so the wrapper makes the input `Sync` without a
    /// lock.
    queue: SyncWrapper<BoxStream<'static, OwnedMessage>>,
    taken: VecDeque<OwnedMessage>,
}

impl Waiting {
    fn new(queue: Queue) -> Waiting {
        Waiting {
            queue: SyncWrapper::new(messages_of(queue).boxed()),
            taken: VecDeque::with_capacity(MAX_BATCH),
        }
    }

    /// Takes what the queue holds now, until `MAX_BATCH` are waiting; whether anything came.
    /// Registers `cx` to be woken when a message arrives, unless full.
    fn poll_take(&mut self, cx: &mut Context<'_>) -> bool {
        let mut took = false;
        while self.taken.len() < MAX_BATCH {
            match self.queue.get_mut().poll_next_unpin(cx) {
                Poll::Ready(Some(m)) => {
                    self.taken.push_back(m);
                    took = true;
                }
                _ => break,
            }
        }
        took
    }
}

impl std::fmt::Debug for PartitionInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionInput")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

/// When a message was produced: its record timestamp; one without counts as the oldest.
fn produced(m: &OwnedMessage) -> Millis {
    m.timestamp().to_millis().unwrap_or(Millis::MIN)
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
        Some(PartitionInput {
            partition,
            consumer,
            topics: [alerts_topic.to_owned(), dispositions_topic.to_owned()],
            waiting: [Waiting::new(alerts), Waiting::new(dispositions)],
        })
    }

    /// Waits until a message arrives (and takes what else came with it).
    ///
    /// # Cancel safety
    /// Cancel safe: a message taken off its queue waits in `self`.
    pub(crate) async fn arrival(&mut self) {
        std::future::poll_fn(|cx| {
            let [a, d] = &mut self.waiting;
            // Both polled, so both register the waker.
            if a.poll_take(cx) | d.poll_take(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Takes what the queues hold now, without waiting.
    pub(crate) fn top_up(&mut self) {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        for w in &mut self.waiting {
            w.poll_take(&mut cx);
        }
    }

    /// Whether a message waits.
    pub(crate) fn waiting(&self) -> bool {
        self.waiting.iter().any(|w| !w.taken.is_empty())
    }

    /// The next batch: the waiting messages, oldest first by record timestamp (a topic's stay in
    /// offset order), up to [`MAX_BATCH`]. An alert sent with its dispositions then shares their
    /// batch, loaded and written once, whichever queue the broker filled first.
    ///
    /// Two topics' records of one millisecond came in an order nobody knows; a disposition is
    /// taken as the first, so one stamped with its alert is held and applied before the alert's
    /// clocks (docs/contract.md §3). The other reading would page for work already done: a
    /// breach and its `resolved` at once.
    pub(crate) fn take(&mut self) -> Vec<OwnedMessage> {
        let [a, d] = &mut self.waiting;
        oldest_first(&mut a.taken, &mut d.taken, produced, MAX_BATCH)
    }

    /// Drops what waits: the partition moved (a claim seeks before reading again).
    pub(crate) fn clear(&mut self) {
        for w in &mut self.waiting {
            w.taken.clear();
        }
    }

    /// The two topics, alerts first.
    pub(crate) fn topics(&self) -> &[String; 2] {
        &self.topics
    }

    /// Moves the read position of `topic`. librdkafka drops what it fetched before the seek,
    /// and so does this, so nothing from the old position arrives after it.
    pub(crate) async fn seek(&mut self, topic: &str, to: ReadFrom) {
        for (t, w) in self.topics.iter().zip(&mut self.waiting) {
            if t == topic {
                w.taken.clear();
            }
        }
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

/// Takes from the front of the alerts' and the dispositions' queues, oldest first by `time`
/// (a disposition on a tie), up to `max`.
fn oldest_first<T>(
    alerts: &mut VecDeque<T>,
    dispositions: &mut VecDeque<T>,
    time: impl Fn(&T) -> Millis,
    max: usize,
) -> Vec<T> {
    let (a, d) = (alerts, dispositions);
    let mut batch = Vec::with_capacity(max.min(a.len() + d.len()));
    while batch.len() < max {
        let older = match (a.front().map(&time), d.front().map(&time)) {
            (Some(ta), Some(td)) if ta < td => &mut *a,
            (_, Some(_)) => &mut *d,
            (Some(_), None) => &mut *a,
            (None, None) => break,
        };
        batch.extend(older.pop_front());
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as `(topic, offset, produced)`.
    fn queue(topic: char, times: &[Millis]) -> VecDeque<(char, usize, Millis)> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| (topic, i, *t))
            .collect()
    }

    fn take(
        a: &mut VecDeque<(char, usize, Millis)>,
        d: &mut VecDeque<(char, usize, Millis)>,
        max: usize,
    ) -> Vec<(char, usize)> {
        oldest_first(a, d, |m| m.2, max)
            .into_iter()
            .map(|(t, o, _)| (t, o))
            .collect()
    }

    #[test]
    fn a_batch_takes_both_topics_oldest_first() {
        let (mut a, mut d) = (queue('a', &[10, 30, 50]), queue('d', &[20, 40]));
        assert_eq!(
            take(&mut a, &mut d, 4),
            [('a', 0), ('d', 0), ('a', 1), ('d', 1)]
        );
        assert_eq!(take(&mut a, &mut d, 4), [('a', 2)]);
        assert!(take(&mut a, &mut d, 4).is_empty());
    }

    #[test]
    fn a_disposition_stamped_with_its_alert_is_taken_first() {
        let (mut a, mut d) = (queue('a', &[10, 20, 25]), queue('d', &[10, 20, 30]));
        assert_eq!(
            take(&mut a, &mut d, 10),
            [('d', 0), ('a', 0), ('d', 1), ('a', 1), ('a', 2), ('d', 2)]
        );
    }

    #[test]
    fn a_topic_stays_in_offset_order_whatever_its_stamps() {
        // Producers' clocks disagree: d's third message is stamped before its first two.
        let (mut a, mut d) = (queue('a', &[10, 30]), queue('d', &[20, 50, 15]));
        assert_eq!(
            take(&mut a, &mut d, 10),
            [('a', 0), ('d', 0), ('a', 1), ('d', 1), ('d', 2)]
        );
    }
}
