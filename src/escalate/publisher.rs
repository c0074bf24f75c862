//! Publishes outbox entries with the idempotent producer, in order, without awaiting each send.
//! An entry leaves the outbox only after the broker acknowledged it; a failed delivery is sent
//! again, so an escalation is never lost (consumers deduplicate on `escalation_id`).

use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::{Places, Producer};
use crate::kafka::{Delivery, ReportQueue};
use crate::store::{OutboxEntry, OUTBOX_START};

/// A settled delivery: the escalation, and whether the broker has it.
pub(crate) type Settled = (OutboxEntry, Result<(), KafkaError>);

/// One partition's publisher.
pub(crate) struct Publisher {
    producer: Producer,
    topic: String,
    /// Reports of this publisher's sends since the last `clear` (one that comes after goes to
    /// the queue `clear` let go of).
    reports: Arc<ReportQueue<Arc<OutboxEntry>>>,
    /// Sent, and not yet taken from `reports`.
    in_flight: usize,
    /// The buffer reports are taken into, kept ([`ReportQueue::next_into`]).
    taken: Vec<(Arc<OutboxEntry>, Result<(), KafkaError>)>,
    /// Escalations sent and not yet settled, so a re-read of the outbox does not send them
    /// twice.
    pending: Places,
    /// Where the escalations librdkafka had no room for begin in the outbox.
    spill: Option<Spill>,
    /// Failed deliveries librdkafka would not take again (queue full); sent on the next
    /// `retry`. No more than were in flight.
    resends: VecDeque<OutboxEntry>,
}

/// The first escalation not handed to librdkafka: its queue was full
/// (`queue.buffering.max.messages`). It and every later one are read back from the outbox,
/// in order, once the queue is half empty again, not held here: while the broker is slow or
/// down a backlog fires escalations by the hundred thousand (about 640,000 in a 200k-alert
/// drain), and the process would hold every one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spill {
    /// Its outbox entry ([`OUTBOX_START`]: the oldest), and its place there.
    stream_id: String,
    index: u32,
}

impl Spill {
    /// At `entry`.
    fn at(entry: &OutboxEntry) -> Spill {
        Spill {
            stream_id: entry.stream_id.clone(),
            index: entry.index,
        }
    }

    /// At the first escalation of outbox entry `stream_id`.
    fn at_entry(stream_id: String) -> Spill {
        Spill {
            stream_id,
            index: 0,
        }
    }

    /// Whether `entry`, read back from the outbox, was sent before this spilled.
    fn sent(&self, entry: &OutboxEntry) -> bool {
        entry.stream_id == self.stream_id && entry.index < self.index
    }
}

/// How often a publisher whose escalations wait in the outbox looks whether the queue has room:
/// any partition's reports make it, not only its own.
const ROOM_CHECK: Duration = Duration::from_millis(20);

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("in_flight", &self.in_flight)
            .field("spill", &self.spill)
            .field("resends", &self.resends.len())
            .finish()
    }
}

/// The Kafka key of an escalation: its alert id (`<alert_id>:<stage>:<level|resolved>`).
/// Scanned from the end, byte by byte: the suffix is a few bytes, and the general splitter
/// took 1.5% of the processor in a drain.
fn alert_id_of(escalation_id: &str) -> &str {
    let colon = |end: usize| {
        escalation_id.as_bytes()[..end]
            .iter()
            .rposition(|&b| b == b':')
    };
    colon(escalation_id.len())
        .and_then(colon)
        .map_or(escalation_id, |at| &escalation_id[..at])
}

/// The entry a record and its report shared, theirs alone once the report came (or the record
/// was refused).
fn owned(entry: Arc<OutboxEntry>) -> OutboxEntry {
    Arc::try_unwrap(entry).unwrap_or_else(|shared| OutboxEntry::clone(&shared))
}

impl Publisher {
    pub(crate) fn new(producer: Producer, topic: String) -> Publisher {
        Publisher {
            producer,
            topic,
            reports: Arc::default(),
            in_flight: 0,
            taken: Vec::new(),
            pending: Places::default(),
            spill: None,
            resends: VecDeque::new(),
        }
    }

    /// Hands entries just written to the outbox to librdkafka, in order (its idempotent
    /// producer keeps that order). Once one finds no room, it and the rest wait in the outbox
    /// ([`Spill`]); so do these while an earlier one does.
    pub(crate) fn send(&mut self, entries: impl IntoIterator<Item = OutboxEntry>) {
        if self.spill.is_none() {
            self.send_from(entries, |_| false);
        }
    }

    /// Sends `entries` but those `skip` says were sent; spills at the first one refused.
    fn send_from(
        &mut self,
        entries: impl IntoIterator<Item = OutboxEntry>,
        skip: impl Fn(&OutboxEntry) -> bool,
    ) {
        for entry in entries {
            if skip(&entry) || self.pending.insert(&entry).is_none() {
                continue;
            }
            if let Err(entry) = self.enqueue(entry) {
                self.pending.remove(&entry);
                self.spill = Some(Spill::at(&entry));
                return;
            }
        }
    }

    /// Hands one entry to librdkafka; gives it back if its queue is full.
    fn enqueue(&mut self, entry: OutboxEntry) -> Result<(), OutboxEntry> {
        // The record borrows the entry's key and JSON, which its report then takes: the JSON
        // is not copied (librdkafka copies the payload).
        let entry = Arc::new(entry);
        let to = Delivery::Queued(Arc::clone(&self.reports), Arc::clone(&entry));
        let record = BaseRecord::with_opaque_to(&self.topic, Box::new(to))
            .key(alert_id_of(&entry.escalation_id))
            .payload(entry.json.as_str());
        match self.producer.send(record) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err((e, _)) => {
                tracing::debug!(error = %e, "Producer queue full; the escalation waits in the outbox.");
                // The record, with the report's copy of the entry, is gone with the error.
                Err(owned(entry))
            }
        }
    }

    /// Everything in the outbox is to be sent again, from its oldest entry (a claim).
    pub(crate) fn spill_all(&mut self) {
        self.spill = Some(Spill::at_entry(OUTBOX_START.to_owned()));
    }

    /// Where to read the outbox from, if escalations wait there and librdkafka's queue is at
    /// least half empty.
    pub(crate) fn to_read(&self) -> Option<&str> {
        let spill = self.spill.as_ref()?;
        (self.producer.room() >= self.producer.capacity().div_ceil(2).max(1))
            .then_some(spill.stream_id.as_str())
    }

    /// Sends what was read back from the outbox at the spill ([`Self::to_read`]), and moves
    /// the spill past it: to `next` if the outbox may hold more, or off.
    pub(crate) fn refill(&mut self, read: Vec<OutboxEntry>, next: Option<String>) {
        let Some(spill) = self.spill.take() else {
            return;
        };
        self.send_from(read, |e| spill.sent(e));
        if self.spill.is_none() {
            self.spill = next.map(Spill::at_entry);
        }
    }

    /// Leaves what waits in the outbox there.
    pub(crate) fn leave_outbox(&mut self) {
        self.spill = None;
    }

    /// Sends failed deliveries librdkafka refused again, in order.
    pub(crate) fn retry(&mut self) {
        while let Some(entry) = self.resends.pop_front() {
            if let Err(entry) = self.enqueue(entry) {
                self.resends.push_front(entry);
                break;
            }
        }
    }

    /// The deliveries settled since the last call, at least one: pending until one is; or,
    /// while escalations wait in the outbox, none after [`ROOM_CHECK`], to look for room.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery not yet returned stays in the queue.
    pub(crate) async fn settled(&mut self) -> Vec<Settled> {
        let reports = Arc::clone(&self.reports);
        let next = reports.next_into(&mut self.taken);
        if self.spill.is_some() {
            let _ = tokio::time::timeout(ROOM_CHECK, next).await;
        } else {
            next.await;
        }
        self.own_taken()
    }

    /// The deliveries settled since the last call, without waiting.
    pub(crate) fn settled_now(&mut self) -> Vec<Settled> {
        self.reports.take_into(&mut self.taken);
        self.own_taken()
    }

    fn own_taken(&mut self) -> Vec<Settled> {
        self.in_flight -= self.taken.len();
        (self.taken.drain(..))
            .map(|(entry, result)| {
                if result.is_ok() {
                    self.pending.remove(&entry);
                }
                (owned(entry), result)
            })
            .collect()
    }

    /// Re-sends an entry whose delivery failed.
    pub(crate) fn resend(&mut self, entry: OutboxEntry) {
        if !self.resends.is_empty() {
            self.resends.push_back(entry);
        } else if let Err(entry) = self.enqueue(entry) {
            self.resends.push_back(entry);
        }
    }

    /// Sent and not settled, or waiting to be sent again; not what waits in the outbox.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight + self.resends.len()
    }

    /// Forgets everything in flight (the partition moved; the new owner republishes its outbox).
    pub(crate) fn clear(&mut self) {
        self.reports = Arc::default();
        self.in_flight = 0;
        self.pending = Places::default();
        self.spill = None;
        self.resends.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KafkaConfig;

    /// A producer whose queue takes `room` records, and no broker to take them off it.
    fn queue_of(room: usize) -> Producer {
        let mut config = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            ..KafkaConfig::default()
        };
        (config.client).insert("queue.buffering.max.messages".into(), room.to_string());
        crate::kafka::producer(&config).expect("a producer needs no broker to start")
    }

    /// The escalations of outbox entry `stream_id`.
    fn entry(stream_id: &str, n: usize) -> Vec<OutboxEntry> {
        let escalations = (0..n)
            .map(|i| (format!("A-{stream_id}-{i}:visit:1"), "{}".to_owned()))
            .collect();
        OutboxEntry::of_batch(stream_id, escalations)
    }

    fn spill(p: &Publisher) -> Option<(&str, u32)> {
        (p.spill.as_ref()).map(|s| (s.stream_id.as_str(), s.index))
    }

    #[test]
    fn what_the_producer_has_no_room_for_waits_in_the_outbox_behind_the_first_refused() {
        let mut p = Publisher::new(queue_of(3), "t".into());
        p.send(entry("1-0", 2));
        p.send(entry("2-0", 3));
        assert_eq!(p.in_flight(), 3);
        assert_eq!(spill(&p), Some(("2-0", 1)));
        p.send(entry("3-0", 1));
        assert_eq!(
            p.in_flight(),
            3,
            "later entries wait behind the spill, in order"
        );
        assert_eq!(p.to_read(), None, "read back once the queue is half empty");

        // Read back with the queue still full: 2-0's first was sent, its second is refused again.
        let mut read = entry("2-0", 3);
        read.extend(entry("3-0", 1));
        p.refill(read, None);
        assert_eq!(p.in_flight(), 3, "nothing sent twice");
        assert_eq!(spill(&p), Some(("2-0", 1)));

        p.leave_outbox();
        assert_eq!(
            spill(&p),
            None,
            "the partition moved: its outbox is not read"
        );
    }

    #[test]
    fn a_claim_reads_the_outbox_a_page_at_a_time_until_it_is_caught_up() {
        let mut p = Publisher::new(queue_of(10), "t".into());
        p.spill_all();
        assert_eq!(p.to_read(), Some(OUTBOX_START), "at once");
        p.refill(entry("1-0", 2), Some("1-1".into()));
        assert_eq!(p.in_flight(), 2);
        assert_eq!(
            p.to_read(),
            Some("1-1"),
            "a full page: on while there is room"
        );

        // A page that repeats an escalation in flight (read back before it settled).
        let mut read = entry("1-0", 1);
        read.extend(entry("2-0", 1));
        p.refill(read, None);
        assert_eq!(p.in_flight(), 3, "1-0's first is in flight: not sent twice");
        assert_eq!(spill(&p), None, "caught up");

        p.send(entry("3-0", 1));
        assert_eq!(p.in_flight(), 4, "sent as written again");
        p.send(entry("4-0", 3));
        assert_eq!(p.in_flight(), 7);
        assert_eq!(p.to_read(), None, "3 of 10 free: not half");
    }

    #[test]
    fn the_key_is_the_alert_id_even_when_it_contains_colons() {
        assert_eq!(alert_id_of("GA-1:visit:1"), "GA-1");
        assert_eq!(alert_id_of("a:b:c:meet:resolved"), "a:b:c");
        assert_eq!(
            alert_id_of("visit:1"),
            "visit:1",
            "not an escalation id: as it is"
        );
        assert_eq!(alert_id_of("GA-1"), "GA-1");
        assert_eq!(alert_id_of("::"), "");
    }
}
