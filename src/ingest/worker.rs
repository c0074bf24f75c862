//! One task per partition number *p*: it owns the alerts and dispositions of partition *p*, applies
//! them to Redis in batches, fires *p*'s due clocks, and publishes *p*'s escalations.
//!
//! Invariants (see DESIGN.md):
//! - state, applied offsets and escalations of a batch are written in one script call;
//! - Kafka offsets are stored only after that write, and re-read messages at or below the applied
//!   offset are skipped, so every transition is applied once;
//! - every write carries the epoch taken at assignment; a newer owner fences this one out;
//! - an escalation leaves the outbox only after the broker acknowledged it.

use futures::stream::{self, StreamExt};
use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::consumer::{Control, IngestContext};
use super::deadletter;
use crate::domain::validate::{self, Limits, Source};
use crate::domain::{AlertState, Decoded, Effect, Escalation, Millis, Policy};
use crate::escalate::alertmanager::{self, Alertmanager};
use crate::escalate::publisher::Publisher;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::{AlertWrite, Batch, Store, StoreError};

/// Most messages applied in one script call.
pub const MAX_BATCH: usize = 500;
/// Most alerts fired in one script call.
const MAX_FIRE: usize = 500;
/// Longest sleep of the firing loop even when no clock is due (guards against missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_millis(1000);

/// Everything a worker shares with the rest of the process.
#[derive(Clone)]
pub struct Shared {
    pub consumer: Arc<StreamConsumer<IngestContext>>,
    pub producer: FutureProducer,
    pub store: Store,
    pub policy: Arc<Policy>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub alerts_topic: String,
    pub dispositions_topic: String,
    pub escalations_topic: String,
    pub deadletter_topic: String,
    /// Wall clock in UTC milliseconds; a function so tests could drive it.
    pub now: fn() -> Millis,
    /// The optional Alertmanager sink.
    pub alertmanager: Option<Alertmanager>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

pub fn wall_clock() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Ownership of the partition, valid while `epoch` is the newest in Redis.
#[derive(Debug, Clone)]
struct Owned {
    epoch: i64,
    /// Highest applied offset per input topic.
    applied: HashMap<String, i64>,
}

/// Why a batch or firing round stopped early.
enum Abort {
    /// Shutting down; the work is re-done after restart.
    Cancelled,
    /// A newer owner has the partition.
    Fenced,
}

/// The partition's two input queues, split from the main consumer queue.
pub type Queue = rdkafka::consumer::stream_consumer::StreamPartitionQueue<IngestContext>;

pub struct Worker {
    partition: i32,
    /// Alerts and dispositions of this partition number; taken by `run`.
    queues: Option<(Queue, Queue)>,
    shared: Shared,
    control: mpsc::UnboundedReceiver<Control>,
    owned: Option<Owned>,
    publisher: Publisher,
    next_due: Option<Millis>,
    /// When the firing breaches of this partition were last posted to Alertmanager.
    reposted: Option<tokio::time::Instant>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Splits partition `partition`'s queues off the main consumer queue. Call it before
    /// subscribing, so no message of the partition can reach the main queue.
    pub fn new(
        partition: i32,
        shared: Shared,
        control: mpsc::UnboundedReceiver<Control>,
        cancel: CancellationToken,
    ) -> Option<Worker> {
        let c = &shared.consumer;
        let queues = (
            c.split_partition_queue(&shared.alerts_topic, partition)?,
            c.split_partition_queue(&shared.dispositions_topic, partition)?,
        );
        let publisher = Publisher::new(shared.producer.clone(), shared.escalations_topic.clone());
        Some(Worker {
            partition,
            queues: Some(queues),
            shared,
            control,
            owned: None,
            publisher,
            next_due: None,
            reposted: None,
            cancel,
        })
    }

    /// Runs until cancelled, then flushes escalations in flight.
    pub async fn run(mut self) {
        let Some((alerts, dispositions)) = self.queues.take() else {
            return;
        };
        let mut input = stream::select(alerts.stream(), dispositions.stream());
        let mut retry_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let sleep = self.sleep_time();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                Some(control) = self.control.recv() => self.on_control(control).await,
                (entry, result) = self.publisher.settled() => self.on_delivery(entry, result).await,
                Some(first) = input.next(), if self.owned.is_some() => {
                    let mut batch = Vec::with_capacity(MAX_BATCH);
                    push(&mut batch, first);
                    while batch.len() < MAX_BATCH {
                        match input.next().now_or_never() {
                            Some(Some(m)) => push(&mut batch, m),
                            _ => break,
                        }
                    }
                    self.on_batch(batch).await;
                }
                _ = tokio::time::sleep(sleep), if self.owned.is_some() => self.fire_due().await,
                _ = retry_tick.tick() => self.housekeeping().await,
            }
        }
        self.flush().await;
    }

    fn sleep_time(&self) -> Duration {
        let now = (self.shared.now)();
        match self.next_due {
            Some(due) if due <= now => Duration::ZERO,
            Some(due) => Duration::from_millis((due - now) as u64).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }

    async fn on_control(&mut self, control: Control) {
        match control {
            Control::Assigned => {
                let was_owned = self.owned.is_some();
                let Some(claim) = self
                    .retry("claim partition", |s, p| async move { s.claim(p).await })
                    .await
                else {
                    return;
                };
                tracing::info!(partition = self.partition, epoch = claim.epoch, applied = ?claim.applied, "Partition owned.");
                self.resume_after_applied(&claim.applied);
                self.owned = Some(Owned {
                    epoch: claim.epoch,
                    applied: claim.applied,
                });
                if !was_owned {
                    self.shared.health.partition_owned();
                }
                // Whatever a previous owner recorded but did not get acknowledged goes out now.
                if let Some(entries) = self
                    .retry("read outbox", |s, p| async move { s.outbox(p).await })
                    .await
                {
                    if !entries.is_empty() {
                        tracing::info!(
                            partition = self.partition,
                            count = entries.len(),
                            "Republishing unacknowledged escalations."
                        );
                    }
                    self.publisher.send(entries);
                }
                self.refresh_next_due().await;
            }
            Control::Revoked => self.release("revoked"),
        }
    }

    fn release(&mut self, why: &str) {
        if self.owned.take().is_some() {
            tracing::info!(partition = self.partition, why, "Partition released.");
            self.shared.health.partition_released();
            let total = self.shared.health.set_open(self.partition, None);
            self.shared.metrics.set_open_alerts(total);
            self.next_due = None;
            self.reposted = None;
        }
    }

    /// Runs a store operation until it succeeds, backing off while Redis is unreachable.
    /// `None` if cancelled first.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Option<T>
    where
        F: Fn(Store, i32) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            match op(self.shared.store.clone(), self.partition).await {
                Ok(v) => {
                    self.shared.health.set_redis(true);
                    return Some(v);
                }
                Err(e) => {
                    self.shared.metrics.redis_error();
                    self.shared.health.set_redis(false);
                    tracing::warn!(partition = self.partition, error = %e, what, retry_in = ?backoff, "Redis operation failed; retrying.");
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Writes a batch with retries and hands its escalations to the publisher; `Err` if fenced
    /// or cancelled.
    async fn write(&mut self, batch: &Batch) -> Result<(), Abort> {
        let epoch = self.owned.as_ref().map(|o| o.epoch).ok_or(Abort::Fenced)?;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.shared.store.apply(self.partition, epoch, batch).await {
                Ok(entries) => {
                    self.shared.health.set_redis(true);
                    self.publisher.send(entries);
                    return Ok(());
                }
                Err(StoreError::Fenced { message, .. }) => {
                    tracing::warn!(
                        partition = self.partition,
                        epoch,
                        message,
                        "Fenced: another instance owns this partition now."
                    );
                    self.publisher.clear();
                    self.release("fenced");
                    return Err(Abort::Fenced);
                }
                Err(e) => {
                    self.shared.metrics.redis_error();
                    self.shared.health.set_redis(false);
                    tracing::warn!(partition = self.partition, error = %e, retry_in = ?backoff, "Redis write failed; retrying.");
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Abort::Cancelled),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn on_batch(&mut self, messages: Vec<OwnedMessage>) {
        let first = messages.first().map(|m| m.offset()).unwrap_or(-1);
        let last = messages.last().map(|m| m.offset()).unwrap_or(-1);
        let span = tracing::info_span!(
            "batch",
            partition = self.partition,
            messages = messages.len(),
            first_offset = first,
            last_offset = last
        );
        let _ = self.apply_batch(messages).instrument(span).await;
    }

    async fn apply_batch(&mut self, messages: Vec<OwnedMessage>) -> Result<(), Abort> {
        let now = (self.shared.now)();
        let Some(owned) = self.owned.clone() else {
            return Ok(());
        };
        let mut last_offset: HashMap<String, i64> = HashMap::new();
        let mut valid: Vec<(String, Decoded)> = Vec::new();
        for m in &messages {
            let topic = m.topic().to_owned();
            last_offset
                .entry(topic.clone())
                .and_modify(|o| *o = (*o).max(m.offset()))
                .or_insert(m.offset());
            if owned
                .applied
                .get(&topic)
                .is_some_and(|applied| m.offset() <= *applied)
            {
                continue; // applied before a crash or rebalance; state already has it
            }
            let source = if topic == self.shared.alerts_topic {
                Source::Alerts
            } else {
                Source::Dispositions
            };
            match validate::decode(source, m.key(), m.payload(), now, self.shared.limits) {
                Ok(d) => valid.push((topic, d)),
                Err(reason) => {
                    tracing::info!(topic = %topic, offset = m.offset(), reason = %reason, "Message dead-lettered.");
                    self.dead_letter(m, reason).await?;
                    self.shared.metrics.deadletter(&topic, reason.class());
                }
            }
        }

        // Current state of every alert touched, then the domain in Rust.
        let mut ids: Vec<String> = valid.iter().map(|(_, d)| d.alert_id().to_owned()).collect();
        ids.sort();
        ids.dedup();
        let loaded = self.load(&ids).await?;
        let mut states: HashMap<String, AlertState> = ids
            .iter()
            .cloned()
            .zip(loaded)
            .map(|(id, s)| (id, s.unwrap_or_default()))
            .collect();
        let policy = self.shared.policy.clone();
        let mut effects: Vec<(String, Effect)> = Vec::new();
        for (topic, decoded) in valid {
            let state = states.get_mut(decoded.alert_id()).expect("loaded above");
            let event_time = match &decoded {
                Decoded::Alert(a) => a.issued_at,
                Decoded::Disposition(d) => d.occurred_at,
            };
            self.shared
                .metrics
                .ingest_delay(&topic, (now - event_time) as f64 / 1000.0);
            let out = match decoded {
                Decoded::Alert(a) => state.apply_alert(a, &policy, now),
                Decoded::Disposition(d) => state.apply_disposition(d, &policy, now),
            };
            effects.extend(out.into_iter().map(|e| (topic.clone(), e)));
        }
        // Overdue clocks of what this batch touched fire now, after the batch's events applied.
        for state in states.values_mut() {
            effects.extend(
                state
                    .fire(&policy, now)
                    .into_iter()
                    .map(|e| (String::new(), e)),
            );
        }

        let mut batch = Batch {
            offsets: last_offset.iter().map(|(t, o)| (t.clone(), *o)).collect(),
            alerts: states
                .iter()
                .map(|(id, s)| AlertWrite::from_state(id, s, &policy))
                .collect(),
            escalations: escalations(&effects),
        };
        batch.alerts.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        self.write(&batch).await?;
        tracing::debug!(
            alerts = batch.alerts.len(),
            escalations = batch.escalations.len(),
            "Batch applied."
        );

        for (topic, e) in &effects {
            self.shared.metrics.effect(e, topic);
        }
        if let Some(owned) = self.owned.as_mut() {
            for (t, o) in &last_offset {
                owned.applied.insert(t.clone(), *o);
            }
        }
        self.store_offsets(&last_offset);
        self.refresh_next_due().await;
        Ok(())
    }

    async fn dead_letter(
        &self,
        m: &OwnedMessage,
        reason: crate::domain::Rejection,
    ) -> Result<(), Abort> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match deadletter::send(
                &self.shared.producer,
                &self.shared.deadletter_topic,
                m,
                reason,
            )
            .await
            {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "Dead letter not delivered; retrying.")
                }
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Abort::Cancelled),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Reads on from the offsets Redis says were applied, not from Kafka's committed ones. They
    /// agree, except when Redis lost its last writes (a crash with `appendfsync everysec`): its
    /// state and its applied offsets then roll back together, and re-reading from there
    /// rebuilds what was lost. Messages at or below `applied` are skipped anyway, so the seek
    /// never applies anything twice.
    fn resume_after_applied(&self, applied: &HashMap<String, i64>) {
        for (topic, offset) in applied {
            let from = Offset::Offset(offset + 1);
            if let Err(e) = self
                .shared
                .consumer
                .seek(topic, self.partition, from, Duration::ZERO)
            {
                tracing::debug!(partition = self.partition, topic, error = %e, "Seek to the applied offset failed; reading on from the committed one.");
            }
        }
    }

    /// Offsets go to Kafka only after Redis has the batch (the next one to read is `last + 1`).
    fn store_offsets(&self, last: &HashMap<String, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (topic, offset) in last {
            if tpl
                .add_partition_offset(topic, self.partition, Offset::Offset(offset + 1))
                .is_err()
            {
                continue;
            }
        }
        if let Err(e) = self.shared.consumer.store_offsets(&tpl) {
            tracing::debug!(partition = self.partition, error = %e, "Offsets not stored (partition moved?).");
        }
    }

    async fn refresh_next_due(&mut self) {
        if let Some(next) = self
            .retry("read clock", |s, p| async move { s.next_due(p).await })
            .await
        {
            self.next_due = next;
        }
    }

    /// Fires every clock due now, in rounds of `MAX_FIRE` alerts.
    async fn fire_due(&mut self) {
        let span = tracing::debug_span!("fire", partition = self.partition);
        async {
            loop {
                let now = (self.shared.now)();
                let Some(ids) = self
                    .retry("read due clocks", |s, p| async move {
                        s.due(p, now, MAX_FIRE).await
                    })
                    .await
                else {
                    return;
                };
                if ids.is_empty() {
                    self.refresh_next_due().await;
                    return;
                }
                let full = ids.len() == MAX_FIRE;
                if self.fire(ids, now).await.is_err() {
                    return;
                }
                if !full {
                    return;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The stored state of `ids` (in order), retried while Redis is unreachable.
    async fn load(&self, ids: &[String]) -> Result<Vec<Option<AlertState>>, Abort> {
        let ids = ids.to_vec();
        self.retry("load alerts", move |s, p| {
            let ids = ids.clone();
            async move { s.load(p, &ids).await }
        })
        .await
        .ok_or(Abort::Cancelled)
    }

    async fn fire(&mut self, ids: Vec<String>, now: Millis) -> Result<(), Abort> {
        let loaded = self.load(&ids).await?;
        let policy = self.shared.policy.clone();
        let mut effects = Vec::new();
        let mut alerts = Vec::new();
        for (id, state) in ids.iter().zip(loaded) {
            // A clock without a record (cannot happen while records of open alerts never expire)
            // is dropped by writing the empty state, which has no clock.
            let mut state = state.unwrap_or_default();
            effects.extend(
                state
                    .fire(&policy, now)
                    .into_iter()
                    .map(|e| (String::new(), e)),
            );
            alerts.push(AlertWrite::from_state(id, &state, &policy));
        }
        let batch = Batch {
            offsets: Vec::new(),
            alerts,
            escalations: escalations(&effects),
        };
        self.write(&batch).await?;
        for (topic, e) in &effects {
            self.shared.metrics.effect(e, topic);
        }
        self.refresh_next_due().await;
        Ok(())
    }

    async fn on_delivery(
        &mut self,
        entry: crate::store::OutboxEntry,
        result: Result<(), rdkafka::error::KafkaError>,
    ) {
        match result {
            Ok(()) => {
                self.to_alertmanager(&entry);
                let mut done = vec![entry.stream_id];
                // Acknowledge every delivery already settled in one XDEL.
                while let Some((e, r)) = self.publisher.settled().now_or_never() {
                    match r {
                        Ok(()) => {
                            self.to_alertmanager(&e);
                            done.push(e.stream_id)
                        }
                        Err(err) => {
                            self.shared.metrics.publish_failed();
                            tracing::warn!(error = %err, escalation_id = %e.escalation_id, "Escalation not delivered; sending again.");
                            self.publisher.resend(e);
                        }
                    }
                }
                if let Err(e) = self.shared.store.ack(self.partition, &done).await {
                    // Harmless: the entries are sent again after a restart; consumers deduplicate.
                    tracing::warn!(error = %e, "Outbox acknowledgement failed.");
                }
            }
            Err(err) => {
                self.shared.metrics.publish_failed();
                tracing::warn!(error = %err, escalation_id = %entry.escalation_id, "Escalation not delivered; sending again.");
                self.publisher.resend(entry);
            }
        }
    }

    /// A delivered escalation also goes to Alertmanager, when configured.
    fn to_alertmanager(&self, entry: &crate::store::OutboxEntry) {
        let Some(am) = &self.shared.alertmanager else {
            return;
        };
        match serde_json::from_str::<Escalation>(&entry.json) {
            Ok(e) => am.post(alertmanager::from_escalation(&e, &self.shared.policy)),
            Err(e) => {
                tracing::error!(error = %e, escalation_id = %entry.escalation_id, "Outbox entry is not an escalation.")
            }
        }
    }

    /// Posts this partition's firing breaches again, so Alertmanager keeps them firing; read
    /// from Redis, so a new owner takes over after a restart or a rebalance.
    async fn repost_firing(&mut self) {
        let Some(am) = self.shared.alertmanager.clone() else {
            return;
        };
        if self.owned.is_none() || self.reposted.is_some_and(|t| t.elapsed() < am.resend_every) {
            return;
        }
        self.reposted = Some(tokio::time::Instant::now());
        let Ok(overdue) = self.shared.store.overdue(self.partition, 100_000).await else {
            return;
        };
        let ids: Vec<String> = overdue.into_iter().map(|(id, _)| id).collect();
        for chunk in ids.chunks(500) {
            let Ok(states) = self.load(chunk).await else {
                return;
            };
            let firing = states
                .iter()
                .flatten()
                .flat_map(|s| alertmanager::firing(s, &self.shared.policy));
            am.post(firing.collect());
        }
    }

    async fn housekeeping(&mut self) {
        self.publisher.retry();
        self.repost_firing().await;
        if self.owned.is_some() {
            match self.shared.store.open_count(self.partition).await {
                Ok(n) => {
                    self.shared.health.set_redis(true);
                    let total = self.shared.health.set_open(self.partition, Some(n as i64));
                    self.shared.metrics.set_open_alerts(total);
                }
                Err(e) => {
                    self.shared.metrics.redis_error();
                    self.shared.health.set_redis(false);
                    tracing::warn!(partition = self.partition, error = %e, "Redis unreachable; input paused until it answers.");
                }
            }
        }
    }

    /// On shutdown: wait (bounded) for escalations in flight, acknowledging them.
    async fn flush(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.publisher.in_flight() > 0 {
            self.publisher.retry();
            tokio::select! {
                (entry, result) = self.publisher.settled() => {
                    if result.is_ok() {
                        let _ = self.shared.store.ack(self.partition, &[entry.stream_id]).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(partition = self.partition, left = self.publisher.in_flight(), "Shutdown deadline: escalations left in the outbox are sent after restart.");
                    break;
                }
            }
        }
    }
}

fn push(
    batch: &mut Vec<OwnedMessage>,
    m: Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError>,
) {
    match m {
        Ok(m) => batch.push(m.detach()),
        Err(e) => tracing::warn!(error = %e, "Kafka consume error."),
    }
}

/// The escalations among `effects`, in order, as outbox entries.
fn escalations(effects: &[(String, Effect)]) -> Vec<(String, String)> {
    effects
        .iter()
        .filter_map(|(_, e)| match e {
            Effect::Escalate(esc) => Some((esc.escalation_id.clone(), esc.to_json())),
            _ => None,
        })
        .collect()
}
