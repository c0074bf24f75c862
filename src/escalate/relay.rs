//! The outbox relay of one partition: escalations go from the Redis outbox to the escalations
//! topic, and leave the outbox only once the broker acknowledged them. Whoever owns the
//! partition republishes what is left, so an escalation is never lost.

use futures::FutureExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::time::Duration;

use super::publisher::Publisher;
use crate::metrics::Metrics;
use crate::store::{OutboxEntry, Store};

/// One partition's relay.
#[derive(Debug)]
pub(crate) struct Relay {
    partition: i32,
    publisher: Publisher,
    store: Store,
    metrics: Arc<Metrics>,
    /// Outbox entries the broker acknowledged, not yet deleted from the outbox. Kept here, not
    /// in the future that deletes them, so a `select!` that drops `settle` (the firing loop wins
    /// it all through a burst) loses no acknowledgement.
    acked: Vec<String>,
}

impl Relay {
    pub(crate) fn new(
        partition: i32,
        producer: FutureProducer,
        topic: String,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Relay {
        Relay {
            partition,
            publisher: Publisher::new(producer, topic),
            store,
            metrics,
            acked: Vec::new(),
        }
    }

    /// Publishes entries just written to the outbox, in order.
    pub(crate) fn send(&mut self, entries: Vec<OutboxEntry>) {
        self.publisher.send(entries);
    }

    /// Publishes what a previous owner (or this one, before Redis forgot) left in the outbox.
    pub(crate) fn republish(&mut self, entries: Vec<OutboxEntry>) {
        if !entries.is_empty() {
            tracing::info!(
                partition = self.partition,
                count = entries.len(),
                "Republishing unacknowledged escalations."
            );
        }
        self.publisher.send(entries);
    }

    /// Waits for the next settled delivery, then deletes it from the outbox together with every
    /// other one already settled (one `XDEL`); failed deliveries are sent again.
    ///
    /// # Cancel safety
    /// Cancel safe: a settled delivery is recorded in `self` before anything is awaited, and its
    /// deletion, if dropped, is done by the next call.
    pub(crate) async fn settle(&mut self) {
        if self.acked.is_empty() {
            let first = self.publisher.settled().await;
            self.take(first);
        }
        while let Some(next) = self.publisher.settled().now_or_never() {
            self.take(next);
        }
        if self.acked.is_empty() {
            return;
        }
        if let Err(e) = self.store.ack(self.partition, &self.acked).await {
            // Harmless: the entries are sent again after a restart; consumers deduplicate.
            tracing::warn!(partition = self.partition, error = %e, "Outbox acknowledgement failed.");
        }
        self.acked.clear();
    }

    fn take(&mut self, (entry, result): (OutboxEntry, Result<(), KafkaError>)) {
        match result {
            Ok(()) => self.acked.push(entry.stream_id),
            Err(e) => {
                self.metrics.publish_failed();
                tracing::warn!(error = %e, escalation_id = %entry.escalation_id, "Escalation not delivered; sending again.");
                self.publisher.resend(entry);
            }
        }
    }

    /// Sends again what the producer's queue refused before.
    pub(crate) fn retry(&mut self) {
        self.publisher.retry();
    }

    /// Forgets everything in flight: the partition moved, or Redis forgot the entries (whoever
    /// owns the partition republishes its outbox).
    pub(crate) fn clear(&mut self) {
        self.publisher.clear();
        self.acked.clear();
    }

    /// On shutdown: waits up to `limit` for escalations in flight, acknowledging them.
    pub(crate) async fn flush(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.publisher.in_flight() > 0 {
            self.publisher.retry();
            tokio::select! {
                _ = self.settle() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(partition = self.partition, left = self.publisher.in_flight(), "Shutdown deadline: escalations left in the outbox are sent after restart.");
                    break;
                }
            }
        }
    }
}
