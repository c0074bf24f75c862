//! The outbox relay of one partition: escalations go from the Redis outbox to the escalations
//! topic, and leave the outbox only once the broker acknowledged them. Whoever owns the
//! partition republishes what is left, so an escalation is never lost.

use futures::FutureExt;
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

    /// Waits for the next settled delivery, then acknowledges it together with every other one
    /// already settled (one `XDEL`); failed deliveries are sent again.
    ///
    /// # Cancel safety
    /// Cancel safe while waiting; once a delivery settled, the acknowledgement runs to its end
    /// or is dropped, which only means the entry is published again later.
    pub(crate) async fn settle(&mut self) {
        let mut settled = vec![self.publisher.settled().await];
        while let Some(next) = self.publisher.settled().now_or_never() {
            settled.push(next);
        }
        let mut done = Vec::new();
        for (entry, result) in settled {
            match result {
                Ok(()) => done.push(entry.stream_id),
                Err(e) => {
                    self.metrics.publish_failed();
                    tracing::warn!(error = %e, escalation_id = %entry.escalation_id, "Escalation not delivered; sending again.");
                    self.publisher.resend(entry);
                }
            }
        }
        if let Err(e) = self.store.ack(self.partition, &done).await {
            // Harmless: the entries are sent again after a restart; consumers deduplicate.
            tracing::warn!(partition = self.partition, error = %e, "Outbox acknowledgement failed.");
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
