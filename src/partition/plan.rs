//! What a partition does, decided by pure functions: what a batch of input does ([`sort`], then
//! [`apply`]) and what a firing round does ([`fire`]). The partition task does the I/O around
//! them (load states, write one store batch, send dead letters); `benches/store.rs` and the
//! tests call the same functions.
//!
//! The board's indexes, counters and change stream ([`BoardWrite`]) are decided here too, from
//! the states as loaded and as written, so they change in the same script call as the records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::tz::TimeZone;

use crate::domain::validate::{self, Limits, Source};
use crate::domain::{AlertState, Decoded, Effect, EscalationKind, Millis, Policies, Rejection};
use crate::ingest::partition_input::ReadFrom;
use crate::store::{day_field, AlertWrite, Batch, BoardWrite, DayCount, IndexEntry};

/// One input message, as the plan needs it. Its `Debug` shows the payload's length only: the
/// payload holds `subject` and `note`, which are never logged.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub source: Source,
    pub topic: &'a str,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The record's timestamp: a replayed message is applied as of then.
    pub timestamp: Option<Millis>,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("source", &self.source)
            .field("topic", &self.topic)
            .field("offset", &self.offset)
            .field("key", &self.key.map(String::from_utf8_lossy))
            .field("payload_bytes", &self.payload.map(<[u8]>::len))
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// Offsets per input topic name.
pub type Offsets = HashMap<String, i64>;

/// Where the partition stands when a batch arrives.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Highest offset per topic that Redis has applied: anything at or below is skipped.
    pub applied: &'a Offsets,
    /// While rebuilding after a rollback: the highest offsets this process had applied before
    /// Redis forgot them. Messages up to there are replays.
    pub replay_to: Option<&'a Offsets>,
}

impl Progress<'_> {
    fn applied(&self, topic: &str, offset: i64) -> bool {
        self.applied.get(topic).is_some_and(|a| offset <= *a)
    }
    fn replayed(&self, topic: &str, offset: i64) -> bool {
        self.replay_to
            .and_then(|r| r.get(topic))
            .is_some_and(|r| offset <= *r)
    }
}

/// A valid message, with the processing time it is applied at.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid {
    pub topic: String,
    pub decoded: Decoded,
    /// Now, or for a replay the record's timestamp (never later than now).
    pub at: Millis,
    /// Applied once already, before Redis forgot it: its effects were counted then.
    pub replayed: bool,
}

/// A message that failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// Index into the batch's inputs.
    pub index: usize,
    pub reason: Rejection,
    /// Dead-lettered already before a rollback: not sent again.
    pub replayed: bool,
}

/// A batch of input, validated and sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sorted {
    pub valid: Vec<Valid>,
    pub rejected: Vec<Reject>,
    /// Re-read messages that Redis had already applied, per topic: skipped.
    pub skipped: BTreeMap<String, usize>,
    /// Highest offset per topic in the batch: what Redis has applied once the batch is written.
    pub offsets: BTreeMap<String, i64>,
}

impl Sorted {
    /// Every alert id the valid messages touch, once each, sorted.
    pub fn alert_ids(&self) -> Vec<String> {
        self.ids_where(|_| true)
    }

    /// Of [`Sorted::alert_ids`], those `keep` keeps: sorted and filtered before they are
    /// copied.
    fn ids_where(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut ids: Vec<&str> = self
            .valid
            .iter()
            .map(|v| v.decoded.alert_id())
            .filter(|id| keep(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(str::to_owned).collect()
    }

    /// Rule: an alert whose own message is in the batch is taken as new, not read from Redis,
    /// unless `held` says Redis holds a record of it (dispositions that came before it, as
    /// the owner wrote them). A new alert's read was a look into its record's bucket that
    /// misses, ~1.2 µs of Redis's ~9 a new alert at 1M open, counted. The batch script
    /// checks the guess ([`crate::store::AlertWrite::unread`]): if Redis holds a record after
    /// all, it writes nothing and the owner plans the batch again with every alert read.
    pub fn taken_as_new(&self, held: impl Fn(&str) -> bool) -> BTreeSet<String> {
        self.valid
            .iter()
            .filter_map(|v| match &v.decoded {
                Decoded::Alert(a) if !held(&a.alert_id) => Some(a.alert_id.clone()),
                _ => None,
            })
            .collect()
    }

    /// [`Sorted::alert_ids`] to read from Redis: all but those taken as new (`unread`). What
    /// [`apply`] is given the states of.
    pub fn to_read(&self, unread: &BTreeSet<String>) -> Vec<String> {
        self.ids_where(|id| !unread.contains(id))
    }

    /// Some message of the batch is a replay after a rollback.
    pub fn replays(&self) -> bool {
        self.valid.iter().any(|v| v.replayed) || self.rejected.iter().any(|r| r.replayed)
    }
}

/// Rule: skip what Redis already applied, validate the rest in arrival order (docs/contract.md §5), and
/// apply a replay as of its record's time, so a disposition that was applied before its clock
/// came due does not page on replay.
pub fn sort(inputs: &[Input<'_>], progress: Progress<'_>, now: Millis, limits: Limits) -> Sorted {
    let mut out = Sorted::default();
    for (index, m) in inputs.iter().enumerate() {
        match out.offsets.get_mut(m.topic) {
            Some(last) => *last = (*last).max(m.offset),
            None => {
                out.offsets.insert(m.topic.to_owned(), m.offset);
            }
        }
        if progress.applied(m.topic, m.offset) {
            *out.skipped.entry(m.topic.to_owned()).or_default() += 1;
            continue;
        }
        let replayed = progress.replayed(m.topic, m.offset);
        let at = match m.timestamp {
            Some(ts) if replayed => ts.min(now),
            _ => now,
        };
        match validate::decode(m.source, m.key, m.payload, at, limits) {
            Ok(decoded) => out.valid.push(Valid {
                topic: m.topic.to_owned(),
                decoded,
                at,
                replayed,
            }),
            Err(reason) => out.rejected.push(Reject {
                index,
                reason,
                replayed,
            }),
        }
    }
    out
}

/// What a batch or a firing round writes and what it means to the outside.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One store batch: states, indexes, offsets and outbox, written atomically.
    pub batch: Batch,
    /// Effects to count, with the topic of the message that caused them (`""` for clocks).
    /// Those of replays are left out, except escalations (they are published again).
    pub effects: Vec<(String, Effect)>,
    /// The policy version each written alert keeps: its snapshot must be in Redis with it.
    pub policy_of: BTreeMap<String, String>,
    /// Written alerts whose records hold dispositions waiting for the alert itself.
    pub waiting: Vec<String>,
}

impl Outcome {
    /// The escalations to publish, in order.
    pub fn escalations(&self) -> impl Iterator<Item = &crate::domain::Escalation> {
        self.effects.iter().filter_map(|(_, e)| match e {
            Effect::Escalate(e) => Some(e),
            _ => None,
        })
    }

    /// Fills in what is written: every state of `states`, and what changed in the board since
    /// `loaded` (the same ids, as Redis held them).
    ///
    /// `indexed`: the loaded states' index entries are the ones Redis holds, so unchanged entries
    /// need no write. Not so for a firing round: it rewrites every clock it read.
    fn finish(
        mut self,
        loaded: &BTreeMap<String, AlertState>,
        states: &BTreeMap<String, AlertState>,
        policies: &Policies,
        indexed: bool,
    ) -> Outcome {
        let unknown = AlertState::default();
        self.batch.alerts = states
            .iter()
            .map(|(id, s)| {
                let before = loaded.get(id).unwrap_or(&unknown);
                AlertWrite::new(id, before, s, policies, indexed)
            })
            .collect();
        for (id, after) in states {
            let before = loaded.get(id).unwrap_or(&unknown);
            board_diff(before, after, policies, &mut self.batch.board);
        }
        self.policy_of = states
            .iter()
            .filter_map(|(id, s)| Some((id.clone(), s.policy_version.clone()?)))
            .collect();
        self.waiting = states
            .iter()
            .filter(|(_, s)| s.alert.is_none() && !s.pending.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        self.batch.escalations = self
            .escalations()
            .map(|e| (e.escalation_id.clone(), e.to_json()))
            .collect();
        self
    }
}

/// Rule: the valid messages apply in order to the states loaded for them (`read` holds one for
/// every id of [`Sorted::to_read`], `None` for an unknown id; an alert of `unread`, taken as
/// new, starts from the empty state and its write says so); then, unless the batch replays a
/// rollback, the overdue clocks of what it touched fire at `now`. Station counters count on
/// the day, in `zone`, of each message's processing time.
pub fn apply(
    sorted: Sorted,
    read: Vec<Option<AlertState>>,
    unread: &BTreeSet<String>,
    policies: &Policies,
    now: Millis,
    zone: &TimeZone,
) -> Outcome {
    let fire_touched = !sorted.replays();
    let mut loaded = by_id(sorted.to_read(unread), read);
    loaded.extend(unread.iter().map(|id| (id.clone(), AlertState::default())));
    let mut states = loaded.clone();
    let mut out = Outcome::default();
    for v in sorted.valid {
        let Some(state) = states.get_mut(v.decoded.alert_id()) else {
            continue; // not loaded: cannot happen when `states` follows `alert_ids`
        };
        let effects = match v.decoded {
            Decoded::Alert(a) => state.apply_alert(a, policies, v.at),
            Decoded::Disposition(d) => state.apply_disposition(d, policies, v.at),
        };
        // Replays count too: Redis lost their counts with the rest of what it forgot.
        let jurisdiction = state.alert.as_ref().map(|a| a.jurisdiction.as_str());
        count_day(
            &effects,
            jurisdiction,
            &day_of(v.at, zone),
            &mut out.batch.board.days,
        );
        out.effects.extend(
            effects
                .into_iter()
                .filter(|e| !v.replayed || matches!(e, Effect::Escalate(_)))
                .map(|e| (v.topic.clone(), e)),
        );
    }
    if fire_touched {
        let today = day_of(now, zone);
        for state in states.values_mut() {
            fire_one(state, policies, now, &today, &mut out);
        }
    }
    out.batch.offsets = sorted.offsets.into_iter().collect();
    let mut out = out.finish(&loaded, &states, policies, true);
    for a in &mut out.batch.alerts {
        a.unread = unread.contains(&a.alert_id);
    }
    out
}

/// Rule: every clock of `ids` due at `now` fires. A clock without a record (cannot happen
/// while records of open alerts never expire) is dropped by writing the empty state.
pub fn fire(
    ids: &[String],
    states: Vec<Option<AlertState>>,
    policies: &Policies,
    now: Millis,
    zone: &TimeZone,
) -> Outcome {
    let loaded = by_id(ids.iter().cloned(), states);
    let mut states = loaded.clone();
    let mut out = Outcome::default();
    let today = day_of(now, zone);
    // In the order of `ids` (due order), not of the map.
    for id in ids {
        if let Some(state) = states.get_mut(id) {
            fire_one(state, policies, now, &today, &mut out);
        }
    }
    out.finish(&loaded, &states, policies, false)
}

/// What a partition does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Fire the clocks due now.
    Fire,
    /// Apply the waiting input.
    Apply,
    /// Nothing is due and nothing waits.
    Wait,
}

/// Rule: a due clock fires before waiting input. The escalations are the same in either order
/// (a disposition applied after its stage's levels came due fires them first:
/// [`AlertState::apply_disposition`]), so the order decides only how late a clock fires. Input
/// first, a partition whose queues never empty (input arriving faster than it is applied: a peak,
/// a backlog after an outage) would fire nothing until they do.
pub fn next_step(due: Option<Millis>, now: Millis, waiting: bool) -> Step {
    match due {
        Some(due) if due <= now => Step::Fire,
        _ if waiting => Step::Apply,
        _ => Step::Wait,
    }
}

/// The loaded states by alert id; an id Redis has no record of starts empty.
fn by_id(
    ids: impl IntoIterator<Item = String>,
    states: Vec<Option<AlertState>>,
) -> BTreeMap<String, AlertState> {
    ids.into_iter()
        .zip(states)
        .map(|(id, s)| (id, s.unwrap_or_default()))
        .collect()
}

/// Fires what is due at `now` (on `date` in the display zone) in `state`, adding the effects
/// (caused by no message) to `out`.
fn fire_one(
    state: &mut AlertState,
    policies: &Policies,
    now: Millis,
    date: &str,
    out: &mut Outcome,
) {
    let effects = state.fire(policies, now);
    let jurisdiction = state.alert.as_ref().map(|a| a.jurisdiction.as_str());
    count_day(&effects, jurisdiction, date, &mut out.batch.board.days);
    out.effects
        .extend(effects.into_iter().map(|e| (String::new(), e)));
}

/// The date of `at` in `zone`, `YYYY-MM-DD`: the day whose station counters an effect
/// processed at `at` counts in.
pub fn day_of(at: Millis, zone: &TimeZone) -> String {
    let ts = jiff::Timestamp::from_millisecond(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    zone.to_datetime(ts).date().to_string()
}

/// Rule: the board lists the open stages of open alerts by the alert's own ladder (its policy
/// snapshot): not breached in `due`, breached in `late`, each by its deadline. Until the
/// alert's first warning or breach, its open stages (two or more) share one `due` entry
/// ([`IndexEntry::shared`]); from then on each has its own, so that a disposition after a
/// warning removes one entry, not the shared one and the others again.
pub fn index_entries(state: &AlertState, policies: &Policies) -> Vec<IndexEntry> {
    let Some(alert) = &state.alert else {
        return Vec::new();
    };
    let policy = policies.for_state(state);
    let stages = state.stage_entries(policy);
    let quiet = state.clocks(policy).all(|(_, c)| !c.warned && c.level == 0);
    if quiet && stages.len() >= 2 {
        return vec![IndexEntry::shared(alert, &stages)];
    }
    stages.iter().map(|s| IndexEntry::of(alert, s)).collect()
}

/// Rule: the board's indexes change by the difference between an alert's entries as loaded
/// and as written. Redis wrote the loaded record and its entries in one script call, so the
/// loaded entries are exactly what the indexes hold of it, also when a replay after a
/// rollback starts from what Redis still has. An alert whose record changed is announced on
/// the change stream (one known only from dispositions has no jurisdiction to show it under,
/// and nothing to show).
pub fn board_diff(
    before: &AlertState,
    after: &AlertState,
    policies: &Policies,
    out: &mut BoardWrite,
) {
    let old = index_entries(before, policies);
    let new = index_entries(after, policies);
    // Moved, not cloned: a new alert's entry is most of a batch's.
    let (kept, added): (Vec<IndexEntry>, Vec<IndexEntry>) =
        new.into_iter().partition(|e| old.contains(e));
    out.remove
        .extend(old.into_iter().filter(|e| !kept.contains(e)));
    out.add.extend(added);
    if before != after {
        if let Some(a) = &after.alert {
            out.changed
                .push((a.alert_id.clone(), a.jurisdiction.clone()));
        }
    }
}

/// Rule: a station's day counts every stage satisfied on time or late and every level-1
/// breach, per jurisdiction and stage, on the day (display zone) it was processed.
pub fn count_day(
    effects: &[Effect],
    jurisdiction: Option<&str>,
    date: &str,
    days: &mut BTreeMap<String, BTreeMap<String, i64>>,
) {
    for e in effects {
        let field = match e {
            Effect::StageCompleted { stage, on_time, .. } => {
                let Some(j) = jurisdiction else { continue };
                let count = if *on_time {
                    DayCount::OnTime
                } else {
                    DayCount::Late
                };
                day_field(j, stage.as_str(), count)
            }
            Effect::Escalate(e) if e.kind == EscalationKind::Breach && e.level == 1 => {
                day_field(&e.jurisdiction, e.stage.as_str(), DayCount::Breached)
            }
            _ => continue,
        };
        *days
            .entry(date.to_owned())
            .or_default()
            .entry(field)
            .or_default() += 1;
    }
}

/// Rule: where a claim reads a topic from, and whether Redis lost writes of it. `redis` is the
/// offset Redis says was applied, `had` the highest this process or the group's commits say was
/// applied, `committed` where to read on from when nothing was lost (the group's last applied
/// offset, committed − 1, at a process's first claim; Redis's applied offset at later ones).
/// Redis behind `had`, or holding nothing of a topic that was applied, lost writes: read again
/// from what it holds (the retention window if nothing). Otherwise read on from `committed` (the
/// retention window without one), re-reading and skipping what Redis applied since, so the
/// position never depends on the consumer's reset policy.
pub(crate) fn read_from(
    redis: Option<i64>,
    had: Option<i64>,
    committed: Option<i64>,
    retention_start: Millis,
) -> (ReadFrom, bool) {
    match (redis, had, committed) {
        (Some(r), Some(h), _) if r < h => (ReadFrom::After(r), true),
        (None, Some(_), _) => (ReadFrom::Time(retention_start), true),
        (_, _, Some(c)) => (ReadFrom::After(c), false),
        (_, _, None) => (ReadFrom::Time(retention_start), false),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
