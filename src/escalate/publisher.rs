//! Publishes outbox entries with the idempotent producer, in order, without awaiting each send.
//! An entry leaves the outbox only after the broker acknowledged it; a failed delivery is sent
//! again, so an escalation is never lost (consumers deduplicate on `escalation_id`).

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use super::Places;
use crate::store::OutboxEntry;

type Delivery = Pin<Box<dyn Future<Output = (OutboxEntry, Result<(), KafkaError>)> + Send + Sync>>;

/// One partition's publisher.
pub(crate) struct Publisher {
    producer: FutureProducer,
    topic: String,
    in_flight: FuturesUnordered<Delivery>,
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
            .field("in_flight", &self.in_flight.len())
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

impl Publisher {
    pub(crate) fn new(producer: FutureProducer, topic: String) -> Publisher {
        Publisher {
            producer,
            topic,
            in_flight: FuturesUnordered::new(),
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
        let record = FutureRecord::to(&self.topic)
            .key(alert_id_of(&entry.escalation_id))
            .payload(entry.json.as_str());
        match self.producer.send_result(record) {
            Ok(delivery) => self.in_flight.push(Box::pin(delivery.map(move |r| {
                let r = match r {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(e),
                    Err(_) => Err(KafkaError::Canceled),
                };
                (entry, r)
            }))),
            Err((e, _)) => {
                tracing::debug!(error = %e, "Producer queue full; the escalation waits for the next retry.");
                self.backlog.push_back(entry);
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

    /// The next settled delivery. Pending forever when nothing is in flight.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery not yet returned stays in flight.
    pub(crate) async fn settled(&mut self) -> (OutboxEntry, Result<(), KafkaError>) {
        match self.in_flight.next().await {
            Some((entry, result)) => {
                if result.is_ok() {
                    self.pending.remove(&entry);
                }
                (entry, result)
            }
            None => std::future::pending().await,
        }
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
        self.in_flight.len() + self.backlog.len()
    }

    /// Forgets everything in flight (the partition moved; the new owner republishes its outbox).
    pub(crate) fn clear(&mut self) {
        self.in_flight = FuturesUnordered::new();
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
