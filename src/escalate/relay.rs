//! The outbox relay of one partition: escalations go from the Redis outbox to the escalations
//! topic, and leave the outbox only once the broker acknowledged them. Whoever owns the
//! partition republishes what is left, so an escalation is never lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::publisher::{Publisher, Settled};
use super::{Places, Producer};
use crate::metrics::Metrics;
use crate::store::{OutboxEntry, Store, OUTBOX_START};

/// Outbox entries read back a call: a backlog's entries hold a batch's escalations each, up
/// to a few thousand.
const OUTBOX_PAGE: usize = 16;

/// How often a partition writing batch after batch deletes what the broker acknowledged from
/// the outbox.
const DELETE_EVERY: Duration = Duration::from_millis(100);

/// How long after a failed read of the outbox it is read again.
const READ_AGAIN_AFTER: Duration = Duration::from_secs(1);

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
    partly: Partly,
    /// After a failed read of the outbox: not before then.
    read_again_at: Option<Instant>,
    /// The last deletion from the outbox ([`Relay::settle_now`]).
    deleted_at: Instant,
}

/// The escalations acknowledged in each outbox entry whose others are still in flight: a
/// batch's escalations share one entry, deleted only once the broker has all of them.
#[derive(Debug, Default)]
struct Partly(Places);

impl Partly {
    /// Records the broker's acknowledgement of `entry`; its stream id once every escalation of
    /// its outbox entry is acknowledged.
    fn acked(&mut self, entry: &OutboxEntry) -> Option<String> {
        match self.0.insert(entry) {
            Some(settled) if settled >= entry.of as usize => self.0.take(&entry.stream_id),
            _ => None,
        }
    }
}

impl Relay {
    pub(crate) fn new(
        partition: i32,
        producer: Producer,
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
            partly: Partly::default(),
            read_again_at: None,
            deleted_at: Instant::now(),
        }
    }

    /// Publishes entries just written to the outbox, in order.
    pub(crate) fn send(&mut self, entries: Vec<OutboxEntry>) {
        self.publisher.send(entries);
    }

    /// Publishes what a previous owner (or this one, before Redis forgot) left in the outbox,
    /// read a page at a time as librdkafka takes it.
    pub(crate) async fn republish(&mut self) {
        self.publisher.spill_all();
        self.refill().await;
    }

    /// Where to read the outbox from now, if escalations wait there for room librdkafka has.
    fn to_read(&self) -> Option<&str> {
        let backing_off = self.read_again_at.is_some_and(|at| Instant::now() < at);
        self.publisher.to_read().filter(|_| !backing_off)
    }

    /// Sends what waits in the outbox because librdkafka's queue was full, while it has room.
    /// A failed read is tried again a second later.
    async fn refill(&mut self) {
        while let Some(from) = self.to_read() {
            let republishing = from == OUTBOX_START;
            match self
                .store
                .outbox_from(self.partition, from, OUTBOX_PAGE)
                .await
            {
                Ok((read, next)) => {
                    if republishing && !read.is_empty() {
                        tracing::info!(
                            partition = self.partition,
                            count = read.len(),
                            more = next.is_some(),
                            "Republishing unacknowledged escalations."
                        );
                    }
                    self.read_again_at = None;
                    self.publisher.refill(read, next);
                }
                Err(e) => {
                    tracing::warn!(partition = self.partition, error = %e, "Outbox not read; trying again in a second.");
                    self.read_again_at = Some(Instant::now() + READ_AGAIN_AFTER);
                    return;
                }
            }
        }
    }

    /// Waits for deliveries to settle, then deletes from the outbox every entry whose
    /// escalations are all acknowledged now (one script call), and reads on in the outbox if
    /// escalations wait there for the room they left; failed deliveries are sent again.
    /// While a deletion waits to be written, settled deliveries are still taken, without
    /// waiting: in a backlog the next batch wins the partition's `select!` every time, and the
    /// deletion with it, so reports left untaken held every escalation of the backlog.
    ///
    /// # Cancel safety
    /// Cancel safe: settled deliveries are recorded in `self` before anything is awaited, and
    /// their deletion, if dropped, is done by the next call; so is a read of the outbox.
    pub(crate) async fn settle(&mut self) {
        let settled = if self.acked.is_empty() && self.to_read().is_none() {
            self.publisher.settled().await
        } else {
            self.publisher.settled_now()
        };
        self.finish(settled, true).await;
    }

    /// [`Relay::settle`] without waiting, for the partition's writes: in a backlog or a burst
    /// they win its `select!` over `settle` every time, which left the whole backlog's
    /// escalations in the outbox (in Redis's memory) until the batches stopped. Deletes at
    /// most every [`DELETE_EVERY`], so a burst's firing rounds do not each wait for a deletion.
    pub(crate) async fn settle_now(&mut self) {
        let settled = self.publisher.settled_now();
        let delete = self.deleted_at.elapsed() >= DELETE_EVERY;
        self.finish(settled, delete).await;
    }

    async fn finish(&mut self, settled: Vec<Settled>, delete: bool) {
        for settled in settled {
            self.take(settled);
        }
        if delete && !self.acked.is_empty() {
            if let Err(e) = self.store.ack(self.partition, &self.acked).await {
                // Harmless: the entries are sent again after a restart; consumers deduplicate.
                tracing::warn!(partition = self.partition, error = %e, "Outbox acknowledgement failed.");
            }
            self.acked.clear();
            self.deleted_at = Instant::now();
        }
        self.refill().await;
    }

    fn take(&mut self, (entry, result): Settled) {
        match result {
            Ok(()) => self.acked.extend(self.partly.acked(&entry)),
            Err(e) => {
                self.metrics.publish_failed();
                tracing::warn!(error = %e, escalation_id = %entry.escalation_id, "Escalation not delivered; sending again.");
                self.publisher.resend(entry);
            }
        }
    }

    /// Sends again the failed deliveries the producer's queue refused before.
    pub(crate) fn retry(&mut self) {
        self.publisher.retry();
    }

    /// Forgets everything in flight: the partition moved, or Redis forgot the entries (whoever
    /// owns the partition republishes its outbox).
    pub(crate) fn clear(&mut self) {
        self.publisher.clear();
        self.acked.clear();
        self.partly = Partly::default();
    }

    /// Stops reading the outbox (the partition moved); what is in flight still settles.
    pub(crate) fn leave_outbox(&mut self) {
        self.publisher.leave_outbox();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn escalation(stream_id: &str, index: u32, of: u32) -> OutboxEntry {
        OutboxEntry {
            stream_id: stream_id.to_owned(),
            index,
            of,
            escalation_id: format!("A-{index}:visit:1"),
            json: "{}".to_owned(),
        }
    }

    #[test]
    fn an_outbox_entry_is_deleted_once_every_escalation_in_it_is_acknowledged() {
        let mut partly = Partly::default();
        assert_eq!(partly.acked(&escalation("1-0", 2, 3)), None);
        assert_eq!(partly.acked(&escalation("2-0", 0, 1)), Some("2-0".into()));
        assert_eq!(partly.acked(&escalation("1-0", 0, 3)), None);
        // The same escalation acknowledged twice (sent again) counts once.
        assert_eq!(partly.acked(&escalation("1-0", 0, 3)), None);
        assert_eq!(partly.acked(&escalation("1-0", 1, 3)), Some("1-0".into()));
        assert!(partly.0.is_empty());
    }
}
