//! Publishes outbox entries with the idempotent producer, in order, without awaiting each send.
//! An entry leaves the outbox only after the broker acknowledged it; a failed delivery is sent
//! again, so an escalation is never lost (consumers deduplicate on `escalation_id`).

use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;
use std::collections::VecDeque;
use std::sync::Arc;

use super::{Places, Producer};
use crate::kafka::{Delivery, ReportQueue};
use crate::store::OutboxEntry;

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
    /// Entries librdkafka would not take (queue full); sent again on the next `retry`.
    backlog: VecDeque<OutboxEntry>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("in_flight", &self.in_flight)
            .field("backlog", &self.backlog.len())
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
            backlog: VecDeque::new(),
        }
    }

    /// Hands entries to librdkafka in order (its idempotent producer keeps that order).
    pub(crate) fn send(&mut self, entries: impl IntoIterator<Item = OutboxEntry>) {
        for entry in entries {
            if self.pending.insert(&entry).is_none() {
                continue;
            }
            if !self.backlog.is_empty() {
                self.backlog.push_back(entry);
                continue;
            }
            self.enqueue(entry);
        }
    }

    fn enqueue(&mut self, entry: OutboxEntry) {
        // The record borrows the entry's key and JSON, which its report then takes: the JSON
        // is not copied (librdkafka copies the payload).
        let entry = Arc::new(entry);
        let to = Delivery::Queued(Arc::clone(&self.reports), Arc::clone(&entry));
        let record = BaseRecord::with_opaque_to(&self.topic, Box::new(to))
            .key(alert_id_of(&entry.escalation_id))
            .payload(entry.json.as_str());
        match self.producer.send(record) {
            Ok(()) => self.in_flight += 1,
            Err((e, _)) => {
                tracing::debug!(error = %e, "Producer queue full; the escalation waits for the next retry.");
                // The record, with the report's copy of the entry, is gone with the error.
                self.backlog.push_back(owned(entry));
            }
        }
    }

    /// Sends what librdkafka refused before, in order.
    pub(crate) fn retry(&mut self) {
        let backlog = std::mem::take(&mut self.backlog);
        for (i, entry) in backlog.iter().enumerate() {
            self.enqueue(entry.clone());
            if !self.backlog.is_empty() {
                self.backlog.extend(backlog.iter().skip(i + 1).cloned());
                break;
            }
        }
    }

    /// The deliveries settled since the last call, at least one: pending until one is.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery not yet returned stays in the queue.
    pub(crate) async fn settled(&mut self) -> Vec<Settled> {
        self.reports.next_into(&mut self.taken).await;
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
        if self.backlog.is_empty() {
            self.enqueue(entry);
        } else {
            self.backlog.push_back(entry);
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight + self.backlog.len()
    }

    /// Forgets everything in flight (the partition moved; the new owner republishes its outbox).
    pub(crate) fn clear(&mut self) {
        self.reports = Arc::default();
        self.in_flight = 0;
        self.pending = Places::default();
        self.backlog.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::alert_id_of;

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
