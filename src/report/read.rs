//! Kafka for the report, read-only: partitions are assigned by hand, located by time
//! (`offsets_for_times`) and read up to the high watermark taken before reading. No group is
//! joined and nothing is committed, so a report never moves the processor's offsets, and two
//! runs over the same window read the same records.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

use super::replay::RawRecord;
use crate::config::KafkaConfig;
use crate::domain::Millis;
use crate::kafka::reader_config;

/// How long one metadata or offset request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading may go without a record before the brokers are declared gone.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A Kafka problem, naming the brokers or the topic.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot create the Kafka consumer: {0}")]
    Client(KafkaError),
    #[error("cannot reach the Kafka brokers at {brokers}: {error}")]
    Unreachable { brokers: String, error: KafkaError },
    #[error("topic {topic} does not exist on the Kafka brokers at {brokers}")]
    MissingTopic { topic: String, brokers: String },
    #[error("cannot read topic {topic} on the Kafka brokers at {brokers}: {error}")]
    Topic {
        topic: String,
        brokers: String,
        error: RDKafkaErrorCode,
    },
    #[error(
        "cannot find where to read {topic}/{partition} on the Kafka brokers at {brokers}: {error}"
    )]
    Offsets {
        topic: String,
        partition: i32,
        brokers: String,
        error: Box<KafkaError>,
    },
    #[error(
        "reading from the Kafka brokers at {brokers} stalled: no record for {}s with {topic}/{partition} at offset {at} of {end}{}",
        STALL_TIMEOUT.as_secs(),
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    Stalled {
        brokers: String,
        topic: String,
        partition: i32,
        at: i64,
        end: i64,
        last_error: Option<Box<KafkaError>>,
    },
}

/// The records of one partition to read: offsets `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    /// The high watermark when the report started: records produced later are not read.
    pub end: i64,
}

impl Range {
    /// How many records the range holds (fewer are read where the log has gaps).
    pub fn len(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A consumer outside any group.
pub struct Reader {
    consumer: BaseConsumer,
    brokers: String,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// A consumer with the user's `[kafka.client]` settings (security and the like), and
    /// proof that the brokers answer.
    pub fn connect(config: &KafkaConfig) -> Result<Reader, ReadError> {
        let mut c = reader_config(config);
        // librdkafka assigns partitions only with a group id; this one is never joined (no
        // subscribe) and never committed to, and it is the report's own.
        c.set(
            "group.id",
            format!("fraud-sla-report-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Records removed by retention between the look-up and the fetch: read on.
        .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = c.create().map_err(ReadError::Client)?;
        let reader = Reader {
            consumer,
            brokers: config.brokers.clone(),
        };
        reader
            .consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|error| reader.unreachable(error))?;
        Ok(reader)
    }

    fn unreachable(&self, error: KafkaError) -> ReadError {
        ReadError::Unreachable {
            brokers: self.brokers.clone(),
            error,
        }
    }

    /// The partitions of `topic`, in order.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, ReadError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|error| self.unreachable(error))?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        // Only "no such topic" is a missing topic; not allowed to read it, or no leader, is
        // not.
        match found.and_then(|t| t.error()).map(RDKafkaErrorCode::from) {
            None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {}
            Some(error) => {
                return Err(ReadError::Topic {
                    topic: topic.to_owned(),
                    brokers: self.brokers.clone(),
                    error,
                })
            }
        }
        let mut partitions: Vec<i32> = found
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(ReadError::MissingTopic {
                topic: topic.to_owned(),
                brokers: self.brokers.clone(),
            });
        }
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// Per partition of `topic`: from the first record at or after `since` to the high
    /// watermark now. A broker that cannot look up by time is read from its first record.
    pub fn ranges(
        &self,
        topic: &str,
        partitions: &[i32],
        since: Millis,
    ) -> Result<Vec<Range>, ReadError> {
        let offsets_error = |partition, error| ReadError::Offsets {
            topic: topic.to_owned(),
            partition,
            brokers: self.brokers.clone(),
            error: Box::new(error),
        };
        let mut ranges = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let (low, high) = self
                .consumer
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                .map_err(|e| offsets_error(partition, e))?;
            let start = match self.offset_at(topic, partition, since) {
                Some(Offset::Offset(o)) => o.clamp(low, high),
                // No record at or after `since`.
                Some(Offset::End) => high,
                _ => low,
            };
            ranges.push(Range {
                topic: topic.to_owned(),
                partition,
                start,
                end: high,
            });
        }
        Ok(ranges)
    }

    fn offset_at(&self, topic: &str, partition: i32, since: Millis) -> Option<Offset> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(since.max(0)))
            .ok()?;
        let found = self.consumer.offsets_for_times(tpl, REQUEST_TIMEOUT).ok()?;
        let e = found.elements().into_iter().next()?;
        e.error().ok()?;
        Some(e.offset())
    }

    /// Reads every record of `ranges`, in offset order within each partition, handing each to
    /// `on`. Returns when every range is read; fails when the brokers give nothing for
    /// [`STALL_TIMEOUT`].
    pub fn read(
        &self,
        ranges: &[Range],
        mut on: impl FnMut(RawRecord<'_>),
    ) -> Result<(), ReadError> {
        let mut done: Vec<bool> = ranges.iter().map(Range::is_empty).collect();
        let mut tpl = TopicPartitionList::new();
        for r in ranges.iter().filter(|r| !r.is_empty()) {
            tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.start))
                .map_err(|e| self.unreachable(e))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.unreachable(e))?;
        let result = self.read_assigned(ranges, &mut done, &mut on);
        let _ = self.consumer.unassign();
        result
    }

    fn read_assigned(
        &self,
        ranges: &[Range],
        done: &mut [bool],
        on: &mut impl FnMut(RawRecord<'_>),
    ) -> Result<(), ReadError> {
        let mut last_progress = Instant::now();
        let mut last_error = None;
        let mut last = 0usize;
        while done.iter().any(|d| !d) {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let Some(i) = find(ranges, last, m.topic(), m.partition()) else {
                        continue;
                    };
                    last = i;
                    if done[i] {
                        continue;
                    }
                    last_progress = Instant::now();
                    let r = &ranges[i];
                    if m.offset() < r.end {
                        on(RawRecord {
                            topic: m.topic(),
                            key: m.key(),
                            payload: m.payload(),
                            timestamp: m.timestamp().to_millis(),
                        });
                    }
                    if m.offset() + 1 >= r.end {
                        self.finish_range(r, &mut done[i]);
                    }
                }
                Some(Err(e)) => last_error = Some(e),
                None => {
                    // Gaps at the end of a log (transaction markers, compaction) are never
                    // delivered: the position says when they are passed.
                    self.check_positions(ranges, done, &mut last_progress);
                    if last_progress.elapsed() > STALL_TIMEOUT {
                        let i = done.iter().position(|d| !d).unwrap_or(0);
                        let r = &ranges[i];
                        return Err(ReadError::Stalled {
                            brokers: self.brokers.clone(),
                            topic: r.topic.clone(),
                            partition: r.partition,
                            at: self.position(r).unwrap_or(r.start),
                            end: r.end,
                            last_error: last_error.map(Box::new),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Stops fetching a range that is read.
    fn finish_range(&self, r: &Range, done: &mut bool) {
        *done = true;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&r.topic, r.partition);
        let _ = self.consumer.pause(&tpl);
    }

    fn check_positions(&self, ranges: &[Range], done: &mut [bool], progress: &mut Instant) {
        for (r, d) in ranges.iter().zip(done.iter_mut()) {
            if !*d && self.position(r).is_some_and(|p| p >= r.end) {
                self.finish_range(r, d);
                *progress = Instant::now();
            }
        }
    }

    /// The next offset the consumer will fetch from `r`'s partition, once it knows.
    fn position(&self, r: &Range) -> Option<i64> {
        let tpl = self.consumer.position().ok()?;
        match tpl.find_partition(&r.topic, r.partition)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }
}

/// The range of `topic`/`partition`, trying `hint` (the last one found) first: records come in
/// runs of one partition.
fn find(ranges: &[Range], hint: usize, topic: &str, partition: i32) -> Option<usize> {
    let is = |r: &Range| r.partition == partition && r.topic == topic;
    if ranges.get(hint).is_some_and(is) {
        return Some(hint);
    }
    ranges.iter().position(is)
}

/// The order the input is read and replayed in: partition *p* of both input topics together,
/// one partition number at a time, alerts first. Co-partitioned topics (which the processor
/// requires) keep every alert with its dispositions in one group, so memory holds one
/// partition's window at a time; topics that are not co-partitioned are read as one group.
pub fn groups(alerts: Vec<Range>, dispositions: Vec<Range>) -> Vec<(Vec<Range>, Vec<Range>)> {
    let same: bool = alerts.len() == dispositions.len()
        && alerts
            .iter()
            .zip(&dispositions)
            .all(|(a, d)| a.partition == d.partition);
    if !same {
        return vec![(alerts, dispositions)];
    }
    alerts
        .into_iter()
        .zip(dispositions)
        .map(|(a, d)| (vec![a], vec![d]))
        .collect()
}
