//! The life of one partition number *p* in this process: claim it when assigned (fencing any
//! previous owner), apply its input in batches, fire its due clocks, notice when Redis forgot
//! what was written and rebuild, release it when revoked. It decides nothing itself — the
//! [`plan`] does, purely — and it calls the others: [`crate::ingest`] for input and dead
//! letters, [`crate::store`] for state, [`crate::escalate`] for what goes out.
//!
//! Invariants (docs/design.md):
//! - state, applied offsets, escalations and Alertmanager notices of a batch are written in one
//!   script call, which refuses a stale owner (`FENCED`) and an owner ahead of Redis
//!   (`ROLLBACK`);
//! - Kafka offsets are stored only after that write, and re-read messages at or below the
//!   applied offset are skipped, so every transition is applied once;
//! - after a rollback nothing more fires for the partition until its input was re-applied up
//!   to where this process had been;
//! - an escalation leaves the outbox only after the broker acknowledged it.

pub mod plan;

use rdkafka::message::{Message, OwnedMessage};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::domain::validate::{Limits, Source};
use crate::domain::{AlertState, Millis, Policies, Policy, Rejection};
use crate::escalate::alertmanager::{self, Alertmanager, Sink};
use crate::escalate::relay::Relay;
use crate::fatal::{Fatal, FatalSignal};
use crate::health::Health;
use crate::ingest::consumer::Control;
use crate::ingest::deadletter;
use crate::ingest::partition_input::{PartitionInput, ReadFrom};
use crate::metrics::Metrics;
use crate::retry::{retry, Backoff, GaveUp};
use crate::store::{Batch, Fence, OutboxEntry, Store, StoreError};
use plan::{Input, Offsets, Progress, Step};

/// Most alerts fired in one script call.
const MAX_FIRE: usize = 500;
/// Longest sleep of the firing loop even when no clock is due (guards against missed wake-ups).
const MAX_SLEEP: Duration = Duration::from_millis(1000);
/// How often an idle owner checks that Redis still holds what it wrote.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long shutdown waits for escalations in flight.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// Most alerts an owner remembers as waiting for their alert ([`Owned::waiting`]); past it
/// the set starts afresh (a forgotten one costs its alert's batch a second plan, no more).
const WAITING_MAX: usize = 100_000;

/// Everything the partitions share with the rest of the process.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) producer: crate::escalate::Producer,
    pub(crate) store: Store,
    /// The policy in force for new alerts (changed by `SIGHUP`) and the retention.
    pub(crate) policies: watch::Receiver<Arc<Policies>>,
    pub(crate) limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    pub(crate) alerts_topic: String,
    pub(crate) escalations_topic: String,
    pub(crate) deadletter_topic: String,
    /// Wall clock in UTC milliseconds.
    pub(crate) now: fn() -> Millis,
    /// The same in microseconds, for the firing loop's sleep.
    pub(crate) now_us: fn() -> i64,
    /// The optional Alertmanager sink.
    pub(crate) alertmanager: Option<Alertmanager>,
    /// `[display]`'s zone: the board's station counters count per day in it.
    pub(crate) display_zone: jiff::tz::TimeZone,
    /// Stops the process: raised when another process took this one's instance id.
    pub(crate) fatal: FatalSignal,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

pub(crate) fn wall_clock() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn wall_clock_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// How long the firing loop sleeps until `due` (ms) when the wall clock reads `now_us` (µs),
/// at most [`MAX_SLEEP`]. Exact to the microsecond: the timer wakes within its 1 ms tick after
/// the deadline, and a sleep computed from the millisecond clock (truncated, up to 1 ms behind)
/// would add up to another millisecond to every clock.
fn sleep_for(due: Option<Millis>, now_us: i64) -> Duration {
    match due {
        None => MAX_SLEEP,
        Some(due) => {
            let left = due.saturating_mul(1000).saturating_sub(now_us).max(0);
            Duration::from_micros(left as u64).min(MAX_SLEEP)
        }
    }
}

/// Ownership of the partition, valid while Redis accepts `fence`.
#[derive(Debug)]
struct Owned {
    fence: Fence,
    /// Highest offset per input topic that Redis applied.
    applied: Offsets,
    /// While rebuilding after a rollback: where this process had been. Nothing fires until
    /// `applied` reaches it.
    replay_to: Option<Offsets>,
    /// The partition's Alertmanager sink; stops when dropped.
    sink: Option<Sink>,
    /// Policy versions whose snapshot Redis holds for this partition.
    stored: HashSet<String>,
    /// Taken back at start-up and not yet assigned by the group: where to read each input topic
    /// from once it is. Clocks fire and the outbox goes out meanwhile.
    unread: Option<Vec<(String, ReadFrom)>>,
    /// Alerts whose dispositions this owner wrote before the alert came: their alert is read
    /// when it comes, not taken as new ([`plan::Sorted::taken_as_new`]).
    waiting: HashSet<String>,
}

impl Owned {
    fn rebuilding(&self) -> bool {
        self.replay_to.is_some()
    }
}

/// Why a partition is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claiming {
    /// The group assigned it: read its input.
    Assigned,
    /// At start-up, with a `group.instance.id`, before the group assigns anything: only if the
    /// last claim was made with this instance id (this process's previous run). Its clocks
    /// fire at once; its input is read once the group assigns it.
    TakeBack,
    /// Again, after Redis lost writes: a new fence, and the input replayed.
    Rebuild,
}

/// Why a batch or a firing round stopped before its end. Its work is redone: after restart
/// (cancelled), by the new owner (fenced), from the re-read input (rollback), or planned again
/// with every alert read (held).
#[derive(Debug)]
enum Stop {
    Cancelled,
    Fenced,
    Rollback,
    Held,
}

/// One partition number's task.
pub(crate) struct Partition {
    partition: i32,
    input: PartitionInput,
    shared: Shared,
    control: mpsc::UnboundedReceiver<Control>,
    owned: Option<Owned>,
    relay: Relay,
    /// The policy in force and every snapshot this partition's alerts name.
    policies: Policies,
    next_due: Option<Millis>,
    /// The group's committed offsets (last applied, per topic) when this process started; used
    /// by the first claim only.
    committed_at_start: Option<Offsets>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Partition {
    pub(crate) fn new(
        partition: i32,
        input: PartitionInput,
        committed_at_start: Offsets,
        shared: Shared,
        control: mpsc::UnboundedReceiver<Control>,
        cancel: CancellationToken,
    ) -> Partition {
        let relay = Relay::new(
            partition,
            shared.producer.clone(),
            shared.escalations_topic.clone(),
            shared.store.clone(),
            shared.metrics.clone(),
        );
        let policies = Policies::clone(&shared.policies.borrow());
        Partition {
            partition,
            input,
            shared,
            control,
            owned: None,
            relay,
            policies,
            next_due: None,
            committed_at_start: Some(committed_at_start),
            cancel,
        }
    }

    /// Runs until cancelled, then flushes escalations in flight.
    pub(crate) async fn run(mut self) {
        if self.shared.store.owner().instance.is_some() {
            self.claim(Claiming::TakeBack).await;
        }
        let mut check = tokio::time::interval(CHECK_EVERY);
        loop {
            let (step, sleep) = self.next_step();
            let reading = self.owned.is_some();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                Some(control) = self.control.recv() => match control {
                    Control::Assigned => self.claim(Claiming::Assigned).await,
                    Control::Revoked => self.release("revoked"),
                },
                _ = self.relay.settle() => {}
                _ = std::future::ready(()), if step != Step::Wait => self.step(step).await,
                _ = self.input.arrival(), if reading => {}
                // A wake-up without anything due reads the clock again (`fire_due`).
                _ = tokio::time::sleep(sleep.unwrap_or(MAX_SLEEP)), if sleep.is_some() => self.fire_due().await,
                _ = check.tick() => self.housekeeping().await,
            }
        }
        self.relay.flush(FLUSH_LIMIT).await;
    }

    /// What to do next ([`plan::next_step`]), and how long to sleep for the next clock if
    /// nothing else comes first (`None` while nothing fires: not owned, or rebuilding).
    fn next_step(&mut self) -> (Step, Option<Duration>) {
        let Some(owned) = self.owned.as_ref() else {
            return (Step::Wait, None);
        };
        let firing = !owned.rebuilding();
        self.input.top_up();
        let now_us = (self.shared.now_us)();
        let due = self.next_due.filter(|_| firing);
        let step = plan::next_step(due, now_us.div_euclid(1000), self.input.waiting());
        (step, firing.then(|| sleep_for(due, now_us)))
    }

    /// Does what [`plan::next_step`] decided.
    async fn step(&mut self, step: Step) {
        match step {
            Step::Fire => self.fire_due().await,
            Step::Apply => {
                let batch = self.input.take();
                self.on_batch(batch).await;
            }
            Step::Wait => {}
        }
    }

    /// Takes the partition: fences out any previous owner, reads on from what Redis applied,
    /// and republishes what is left in the outbox. If Redis holds less than this process or the
    /// group's committed offsets say was applied, Redis forgot writes: the input from there is
    /// replayed before anything fires.
    async fn claim(&mut self, how: Claiming) {
        if how == Claiming::Assigned {
            if let Some(seeks) = self.owned.as_mut().and_then(|o| o.unread.take()) {
                // Taken back at start-up: the fence holds already; only the input was waiting.
                for (topic, from) in seeks {
                    self.input.seek(&topic, from).await;
                }
                tracing::info!(
                    partition = self.partition,
                    "Partition assigned; reading its input."
                );
                return;
            }
        }
        let reading = match how {
            Claiming::Assigned => true,
            Claiming::TakeBack => false,
            Claiming::Rebuild => self.owned.as_ref().is_none_or(|o| o.unread.is_none()),
        };
        let previous = self.owned.take();
        let was_owned = previous.is_some();
        let mut replay_to = Offsets::new();
        if let Some(o) = previous {
            raise(&mut replay_to, o.applied);
            raise(&mut replay_to, o.replay_to.unwrap_or_default());
        }
        // The claim comes first and at once: anything slow before it would widen the window in
        // which a revoked owner, still catching up with its signals, fences the new one. Until
        // the group assigns the partition, only a take-back: never over another instance.
        let claimed = if reading {
            self.with_redis("claim partition", |s, p| async move {
                s.claim(p).await.map(Some)
            })
            .await
        } else {
            self.with_redis(
                "take partition back",
                |s, p| async move { s.take_back(p).await },
            )
            .await
        };
        let Some(claim) = claimed.flatten() else {
            if was_owned {
                self.shared.health.partition_released();
            }
            return;
        };
        // The group's commits say what was applied before this process started; asked once, at
        // start-up (asking during a rebalance storm upset the broker's group coordinator).
        // Later claims read on from what Redis applied.
        let committed = self.committed_at_start.take();
        raise(&mut replay_to, committed.clone().unwrap_or_default());
        let stored = self.read_snapshots().await;
        let from_time = (self.shared.now)() - self.policies.retention;
        let mut behind = false;
        let mut seeks = Vec::new();
        for topic in self.input.topics().clone() {
            let (from, lost) = plan::read_from(
                claim.applied.get(&topic).copied(),
                replay_to.get(&topic).copied(),
                match &committed {
                    Some(c) => c.get(&topic).copied(),
                    None => claim.applied.get(&topic).copied(),
                },
                from_time,
            );
            behind |= lost;
            seeks.push((topic, from));
        }
        let unread = if reading {
            for (topic, from) in &seeks {
                self.input.seek(topic, *from).await;
            }
            None
        } else {
            Some(seeks)
        };
        if behind {
            self.shared.metrics.redis_rollback();
            tracing::warn!(partition = self.partition, applied = ?claim.applied, replay_to = ?replay_to, "Redis holds less than was applied (lost writes); re-reading the input before firing anything more.");
        } else if how == Claiming::TakeBack {
            tracing::info!(partition = self.partition, epoch = claim.epoch(), applied = ?claim.applied, "Partition taken back (last claimed with this instance id); its clocks fire now, its input is read once the group assigns it.");
        } else {
            tracing::info!(partition = self.partition, epoch = claim.epoch(), applied = ?claim.applied, "Partition owned.");
        }
        if !was_owned {
            self.shared.health.partition_owned();
        }
        let sink = self.shared.alertmanager.as_ref().map(|am| {
            am.start(
                self.shared.store.clone(),
                self.partition,
                self.policies.clone(),
                &self.cancel,
            )
        });
        self.owned = Some(Owned {
            fence: claim.fence,
            applied: claim.applied,
            replay_to: behind.then_some(replay_to),
            sink,
            stored,
            unread,
            waiting: HashSet::new(),
        });
        // Whatever a previous owner (or this one, before Redis forgot) did not get acknowledged
        // goes out now.
        self.relay.clear();
        self.relay.republish().await;
        self.refresh_next_due().await;
    }

    /// Makes the policy snapshots stored for this partition known; returns their versions.
    /// A snapshot that does not parse is left out (and logged): its alerts are judged by the
    /// policy in force, and it is written again with the next alert of that version.
    async fn read_snapshots(&mut self) -> HashSet<String> {
        let Some(stored) = self
            .with_redis("read policy snapshots", |s, p| async move {
                s.policies(p).await
            })
            .await
        else {
            return HashSet::new();
        };
        let mut versions = HashSet::new();
        for (version, json) in stored {
            match Policy::from_snapshot(&version, &json) {
                Ok(p) => {
                    self.policies.insert(Arc::new(p));
                    versions.insert(version);
                }
                Err(e) => {
                    tracing::error!(partition = self.partition, version, error = %e, "Stored policy snapshot is unreadable; its alerts follow the policy in force.")
                }
            }
        }
        versions
    }

    /// Takes the policy put in force by a reload, for alerts processed from now on.
    fn follow_reload(&mut self) {
        if self.shared.policies.has_changed().unwrap_or(false) {
            let latest = self.shared.policies.borrow_and_update().clone();
            self.policies.set_current(latest.current().clone());
            self.policies.retention = latest.retention;
        }
    }

    fn release(&mut self, why: &str) {
        if self.owned.take().is_some() {
            tracing::info!(partition = self.partition, why, "Partition released.");
            // What waits in the outbox is the next owner's to publish.
            self.relay.leave_outbox();
            self.input.clear();
            self.shared.health.partition_released();
            let total = self.shared.health.set_open(self.partition, None);
            self.shared.metrics.set_open_alerts(total);
            self.next_due = None;
        }
    }

    /// Redis forgot what this owner wrote: claim again (a new fence), read on from what Redis
    /// holds, and replay up to where this process had been before firing anything.
    async fn rebuild(&mut self) {
        self.claim(Claiming::Rebuild).await;
    }

    /// Runs a store read until it succeeds, backing off while Redis is unreachable; `None` if
    /// cancelled first.
    async fn with_redis<T, F, Fut>(&self, what: &str, op: F) -> Option<T>
    where
        F: Fn(Store, i32) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let (store, p, health) = (&self.shared.store, self.partition, &self.shared.health);
        let done = retry(
            &self.cancel,
            Backoff::STORE,
            || health.redis_call(op(store.clone(), p)),
            StoreError::is_transient,
            |e, retry_in| self.redis_failed(what, e, retry_in),
        )
        .await;
        match done {
            Ok(v) => Some(v),
            Err(GaveUp::Final(e)) => {
                tracing::error!(partition = self.partition, error = %e, what, "Redis answered with an error that retrying cannot fix.");
                None
            }
            Err(GaveUp::Cancelled) => None,
        }
    }

    fn redis_failed(&self, what: &str, e: &StoreError, retry_in: Duration) {
        self.shared.metrics.redis_error();
        self.shared.health.redis_failed();
        tracing::warn!(partition = self.partition, error = %e, what, ?retry_in, "Redis operation failed; retrying.");
    }

    /// Writes a batch, retrying while Redis is unreachable, and hands its escalations to the
    /// relay (they leave the batch).
    async fn write(&mut self, batch: &mut Batch) -> Result<(), Stop> {
        let Some(fence) = self.owned.as_ref().map(|o| o.fence.clone()) else {
            return Err(Stop::Fenced);
        };
        let (store, p, to_write) = (&self.shared.store, self.partition, &*batch);
        let health = &self.shared.health;
        let written = retry(
            &self.cancel,
            Backoff::STORE,
            || {
                let mut fence = fence.clone();
                health.redis_call(async move {
                    let applied = store.apply(p, &mut fence, to_write).await;
                    applied.map(|a| (a, fence))
                })
            },
            StoreError::is_transient,
            |e, retry_in| self.redis_failed("write batch", e, retry_in),
        )
        .await;
        match written {
            Ok((applied, fence)) => {
                if let Some(stream_id) = &applied.outbox {
                    let escalations = std::mem::take(&mut batch.escalations);
                    self.relay
                        .send(OutboxEntry::of_batch(stream_id, escalations));
                }
                self.relay.settle_now().await;
                self.next_due = applied.next_due;
                if let Some(owned) = self.owned.as_mut() {
                    owned.fence = fence;
                    if let Some(sink) = owned.sink.as_ref().filter(|_| !batch.notices.is_empty()) {
                        sink.wake();
                    }
                }
                Ok(())
            }
            Err(GaveUp::Cancelled) => Err(Stop::Cancelled),
            Err(GaveUp::Final(e)) => Err(self.stopped_by(e).await),
        }
    }

    /// Acts on a write the store refused.
    async fn stopped_by(&mut self, e: StoreError) -> Stop {
        match e {
            StoreError::Rollback { message, .. } => {
                tracing::warn!(
                    partition = self.partition,
                    message,
                    "Redis lost writes of this partition; rebuilding it."
                );
                self.rebuild().await;
                Stop::Rollback
            }
            StoreError::Fenced { message, .. } => {
                tracing::warn!(
                    partition = self.partition,
                    message,
                    "Fenced: another instance owns this partition now."
                );
                self.relay.clear();
                self.release("fenced");
                self.stop_if_instance_taken().await;
                Stop::Fenced
            }
            StoreError::Held { .. } => Stop::Held,
            e => {
                // Not a refusal of the fence: the input is read again after a restart.
                tracing::error!(partition = self.partition, error = %e, "Batch not written.");
                Stop::Cancelled
            }
        }
    }

    /// Fenced by a claim made with this process's own `group.instance.id` by another process:
    /// two processes run with one instance id. The newer one keeps it (as Kafka's static
    /// membership fences the older member); this one stops the process.
    async fn stop_if_instance_taken(&self) {
        let me = self.shared.store.owner();
        let Some(instance) = me.instance.as_ref() else {
            return;
        };
        let claimed = self
            .with_redis("read the partition's owner", |s, p| async move {
                s.claimed_by(p).await
            })
            .await
            .flatten();
        if let Some(by) = claimed.filter(|by| by.instance.as_ref() == Some(instance)) {
            if by.process != me.process {
                self.shared.fatal.raise(Fatal::InstanceTaken {
                    instance: instance.clone(),
                    process: by.process,
                    partition: self.partition,
                });
            }
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

    async fn apply_batch(&mut self, messages: Vec<OwnedMessage>) -> Result<(), Stop> {
        let now = (self.shared.now)();
        let Some(owned) = self.owned.as_ref() else {
            return Ok(());
        };
        let inputs: Vec<Input<'_>> = messages.iter().map(|m| self.input_of(m)).collect();
        let progress = Progress {
            applied: &owned.applied,
            replay_to: owned.replay_to.as_ref(),
        };
        let sorted = plan::sort(&inputs, progress, now, self.shared.limits);
        for (topic, n) in &sorted.skipped {
            self.shared.metrics.already_applied(topic, *n as u64);
        }
        for reject in &sorted.rejected {
            let m = &messages[reject.index];
            if reject.replayed {
                continue; // dead-lettered before Redis forgot it
            }
            tracing::info!(topic = m.topic(), offset = m.offset(), reason = %reject.reason, "Message dead-lettered.");
            self.dead_letter(m, reject.reason).await?;
            self.shared
                .metrics
                .deadletter(m.topic(), reject.reason.class());
        }
        for v in sorted.valid.iter().filter(|v| !v.replayed) {
            let delay = (now - v.decoded.event_time()) as f64 / 1000.0;
            self.shared.metrics.ingest_delay(&v.topic, delay);
        }
        let unread = sorted.taken_as_new(|id| owned.waiting.contains(id));
        let outcome = match self.plan_and_commit(sorted, &unread, now).await {
            Err(Stop::Held) => {
                tracing::debug!(
                    partition = self.partition,
                    "Redis holds a record of an alert the batch took as new; planning it again."
                );
                let Some(owned) = self.owned.as_ref() else {
                    return Ok(());
                };
                let progress = Progress {
                    applied: &owned.applied,
                    replay_to: owned.replay_to.as_ref(),
                };
                let sorted = plan::sort(&inputs, progress, now, self.shared.limits);
                self.plan_and_commit(sorted, &BTreeSet::new(), now).await?
            }
            outcome => outcome?,
        };
        tracing::debug!(
            alerts = outcome.batch.alerts.len(),
            escalations = outcome.escalations().count(),
            "Batch applied."
        );
        self.input.consumed(&outcome.batch.offsets);
        if let Some(owned) = self.owned.as_mut() {
            raise(&mut owned.applied, outcome.batch.offsets.iter().cloned());
            let caught_up = owned.replay_to.as_ref().is_some_and(|r| {
                r.iter()
                    .all(|(t, o)| owned.applied.get(t).is_some_and(|a| a >= o))
            });
            if caught_up {
                owned.replay_to = None;
                tracing::info!(partition = self.partition, applied = ?owned.applied, "Partition rebuilt; its clocks fire again.");
            }
        }
        Ok(())
    }

    /// Loads what the batch touches, but for the alerts taken as new (`unread`: `None` for
    /// each), plans it and writes it.
    async fn plan_and_commit(
        &mut self,
        sorted: plan::Sorted,
        unread: &BTreeSet<String>,
        now: Millis,
    ) -> Result<plan::Outcome, Stop> {
        let read = self.load(sorted.to_read(unread)).await?;
        self.follow_reload();
        let outcome = plan::apply(
            sorted,
            read,
            unread,
            &self.policies,
            now,
            &self.shared.display_zone,
        );
        self.commit(outcome).await
    }

    fn input_of<'m>(&self, m: &'m OwnedMessage) -> Input<'m> {
        Input {
            source: if m.topic() == self.shared.alerts_topic {
                Source::Alerts
            } else {
                Source::Dispositions
            },
            topic: m.topic(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload(),
            timestamp: m.timestamp().to_millis(),
        }
    }

    async fn dead_letter(&self, m: &OwnedMessage, reason: Rejection) -> Result<(), Stop> {
        let (producer, topic) = (&self.shared.producer, &self.shared.deadletter_topic);
        retry(
            &self.cancel,
            Backoff::STORE,
            || deadletter::send(producer, topic, m, reason),
            |_| true,
            |e, retry_in| tracing::warn!(error = %e, ?retry_in, "Dead letter not delivered; retrying."),
        )
        .await
        .map_err(|_| Stop::Cancelled)
    }

    async fn refresh_next_due(&mut self) {
        if let Some(next) = self
            .with_redis("read clock", |s, p| async move { s.next_due(p).await })
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
                    .with_redis("read due clocks", |s, p| async move {
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
                if self.fire(ids, now).await.is_err() || !full {
                    return;
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn fire(&mut self, ids: Vec<String>, now: Millis) -> Result<(), Stop> {
        let states = self.load(ids.clone()).await?;
        let zone = &self.shared.display_zone;
        self.commit(plan::fire(&ids, states, &self.policies, now, zone))
            .await?;
        Ok(())
    }

    /// The stored states of `ids`, in order, retried while Redis is unreachable, with the
    /// snapshots they name.
    async fn load(&mut self, ids: Vec<String>) -> Result<Vec<Option<AlertState>>, Stop> {
        if ids.is_empty() {
            // Not a Redis call (the store answers it without one), so not a sign that Redis
            // answers: a batch of new alerts during an outage made `/readyz` 200 until its write
            // failed.
            return Ok(Vec::new());
        }
        let fence = self.owned.as_ref().map(|o| o.fence.clone());
        let states = self
            .with_redis("load alerts", |s, p| {
                let (ids, fence) = (ids.clone(), fence.clone());
                async move {
                    match fence {
                        Some(fence) => s.load_as_owner(p, &fence, &ids).await,
                        None => s.load(p, &ids).await,
                    }
                }
            })
            .await
            .ok_or(Stop::Cancelled)?;
        let unknown = states
            .iter()
            .flatten()
            .filter_map(|s| s.policy_version.as_deref())
            .any(|v| self.policies.get(v).is_none());
        if unknown {
            // Written by another owner since this one read the snapshots, or lost.
            let stored = self.read_snapshots().await;
            if let Some(owned) = self.owned.as_mut() {
                owned.stored.extend(stored);
            }
        }
        Ok(states)
    }

    /// Writes what the plan decided (with its Alertmanager notices when configured) and counts
    /// its effects.
    async fn commit(&mut self, mut outcome: plan::Outcome) -> Result<plan::Outcome, Stop> {
        if self.shared.alertmanager.is_some() {
            let policies = &self.policies;
            let policy_of = |e: &crate::domain::Escalation| {
                outcome
                    .policy_of
                    .get(&e.alert_id)
                    .and_then(|v| policies.get(v))
                    .unwrap_or(policies.current())
                    .as_ref()
            };
            outcome.batch.notices = alertmanager::notices(outcome.escalations(), policy_of);
        }
        let stored = self.owned.as_ref().map(|o| &o.stored);
        let mut new_versions: Vec<&String> = outcome
            .policy_of
            .values()
            .filter(|v| stored.is_some_and(|s| !s.contains(*v)))
            .collect();
        new_versions.sort();
        new_versions.dedup();
        outcome.batch.policies = new_versions
            .into_iter()
            .filter_map(|v| Some((v.clone(), self.policies.get(v)?.snapshot_json())))
            .collect();
        self.write(&mut outcome.batch).await?;
        if let Some(owned) = self.owned.as_mut() {
            owned
                .stored
                .extend(outcome.batch.policies.iter().map(|(v, _)| v.clone()));
            for a in &outcome.batch.alerts {
                owned.waiting.remove(&a.alert_id);
            }
            if owned.waiting.len() + outcome.waiting.len() > WAITING_MAX {
                owned.waiting.clear();
            }
            owned.waiting.extend(outcome.waiting.iter().cloned());
        }
        (self.shared.metrics).effects(outcome.effects.iter().map(|(t, e)| (t.as_ref(), e)));
        Ok(outcome)
    }

    /// Every second: send what the producer refused, check that Redis still holds what this
    /// owner wrote (an idle partition would not notice a rollback otherwise), count open alerts.
    /// (What waits in the outbox is `settle`'s: it looks for room every 20 ms.)
    async fn housekeeping(&mut self) {
        self.relay.retry();
        let Some(mut fence) = self.owned.as_ref().map(|o| o.fence.clone()) else {
            return;
        };
        let checked = self.shared.store.check(self.partition, &mut fence);
        match self.shared.health.redis_call(checked).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                // Input waits until Redis answers; the next check is the retry.
                self.redis_failed("check partition", &e, CHECK_EVERY);
                return;
            }
            Err(e) => {
                self.stopped_by(e).await;
                return;
            }
        }
        if let Ok(n) = self.shared.store.open_count(self.partition).await {
            let total = self.shared.health.set_open(self.partition, Some(n as i64));
            self.shared.metrics.set_open_alerts(total);
        }
    }
}

/// Raises each topic's offset in `into` to the one in `from`.
fn raise(into: &mut Offsets, from: impl IntoIterator<Item = (String, i64)>) {
    for (topic, offset) in from {
        let o = into.entry(topic).or_insert(offset);
        *o = (*o).max(offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_firing_loop_sleeps_to_the_microsecond_of_the_due_time() {
        let due: Millis = 1_795_000_000_010;
        // 9.3 ms before due: the millisecond clock reads 10 ms early.
        let now_us = (due - 10) * 1000 + 700;
        assert_eq!(sleep_for(Some(due), now_us), Duration::from_micros(9_300));
        assert_eq!(
            sleep_for(Some(due), due * 1000 + 1),
            Duration::ZERO,
            "overdue"
        );
        assert_eq!(sleep_for(Some(due + 60_000), due * 1000), MAX_SLEEP);
        assert_eq!(sleep_for(None, due * 1000), MAX_SLEEP);
    }
}
