//! The report's rules: a window's alerts, gathered from raw records ([`Collector`]) and replayed
//! one by one through the processor's own SLA machine ([`replay`]). Pure: records, the policy
//! and the times in; states, outcomes and escalations out. No second copy of a rule lives here:
//! every transition is [`AlertState::apply_alert`], [`AlertState::apply_disposition`] or
//! [`AlertState::fire`], and validation is [`validate::decode`] with the processor's limits.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::domain::validate::{self, Limits, Source};
use crate::domain::{
    Alert, AlertState, Decoded, Disposition, DispositionKind, Effect, Escalation, EscalationKind,
    Millis, Outcome, Policies,
};

/// What the report covers: the alerts issued in `[from, to)` whose jurisdiction starts with
/// `jurisdiction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: Millis,
    pub to: Millis,
    /// A prefix, as the API's `jurisdiction` filter (docs/contract.md §10.4).
    pub jurisdiction: Option<String>,
}

impl Window {
    fn issued_in(&self, alert: &Alert) -> bool {
        (self.from..self.to).contains(&alert.issued_at)
            && self
                .jurisdiction
                .as_deref()
                .is_none_or(|p| alert.jurisdiction.starts_with(p))
    }
}

/// One Kafka record, as the report reads it. Its `Debug` shows the payload's length only: the
/// payload holds `subject` and `note`, which are never logged.
#[derive(Clone, Copy)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The record's timestamp: when the message reached Kafka.
    pub timestamp: Option<Millis>,
}

impl std::fmt::Debug for RawRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRecord")
            .field("topic", &self.topic)
            .field("key", &self.key.map(String::from_utf8_lossy))
            .field("payload_bytes", &self.payload.map(<[u8]>::len))
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// A validated message with the time its record reached Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<T> {
    pub message: T,
    pub at: Millis,
}

/// One alert of the window and every disposition read for it, in the order read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub alert: Received<Alert>,
    pub dispositions: Vec<Received<Disposition>>,
}

/// A dead-letter-worthy message the report skipped, counted per topic and reason.
pub type Skipped = BTreeMap<(String, String), u64>;

/// Gathers the histories of the window's alerts from raw records: validates each record as
/// the processor does, keeps the alerts issued in the window (the first copy of an id wins,
/// docs/contract.md §3) and the dispositions of those alerts, and counts what it skipped.
///
/// Alerts must be given before the dispositions of the same partition: a disposition whose
/// alert is not known by then is not the window's. Copies of one id share a key, so a
/// partition: [`Collector::take_histories`] after each partition keeps memory to one.
#[derive(Debug)]
pub struct Collector {
    window: Window,
    limits: Limits,
    /// The wall clock when the report started: validation never judges against a later time.
    now: Millis,
    alerts: HashMap<String, History>,
    /// Alerts read that are not the window's (another jurisdiction, or issued before `from`):
    /// the first copy of an id wins, also when it is left out.
    passed: HashSet<String>,
    skipped: Skipped,
    duplicates: u64,
}

impl Collector {
    pub fn new(window: Window, limits: Limits, now: Millis) -> Collector {
        Collector {
            window,
            limits,
            now,
            alerts: HashMap::new(),
            passed: HashSet::new(),
            skipped: Skipped::new(),
            duplicates: 0,
        }
    }

    /// An alerts-topic record.
    pub fn alert(&mut self, record: RawRecord<'_>) {
        let Some((Decoded::Alert(alert), at)) = self.decode(Source::Alerts, record) else {
            return;
        };
        if self.alerts.contains_key(&alert.alert_id) || self.passed.contains(&alert.alert_id) {
            self.duplicates += 1;
            return;
        }
        if !self.window.issued_in(&alert) {
            // A later copy must not take the place of a first one that is not the window's.
            if alert.issued_at < self.window.to {
                self.passed.insert(alert.alert_id);
            }
            return;
        }
        // What the rules never read is not kept: a window holds a million alerts.
        let alert = Alert {
            channel: None,
            fraud_type: None,
            ..alert
        };
        self.alerts.insert(
            alert.alert_id.clone(),
            History {
                alert: Received { message: alert, at },
                dispositions: Vec::new(),
            },
        );
    }

    /// A dispositions-topic record.
    pub fn disposition(&mut self, record: RawRecord<'_>) {
        let Some((Decoded::Disposition(d), at)) = self.decode(Source::Dispositions, record) else {
            return;
        };
        if let Some(h) = self.alerts.get_mut(&d.alert_id) {
            let d = Disposition {
                officer_id: None,
                ..d
            };
            h.dispositions.push(Received { message: d, at });
        }
    }

    /// Validates `record` as the processor does (docs/contract.md §5, in its order). The
    /// processor validates a message when it reads it, and when it rebuilds it validates as of
    /// the record's timestamp: the report does the same, so a message judged in the future
    /// here was judged so there. A reject is counted when its record is in the window, the only
    /// window an undecodable message can be placed in.
    fn decode(&mut self, source: Source, r: RawRecord<'_>) -> Option<(Decoded, Millis)> {
        let at = r.timestamp.map_or(self.now, |ts| ts.min(self.now));
        match validate::decode(source, r.key, r.payload, at, self.limits) {
            Ok(decoded) => Some((decoded, at)),
            Err(reason) => {
                if r.timestamp
                    .is_some_and(|ts| (self.window.from..self.window.to).contains(&ts))
                {
                    *self
                        .skipped
                        .entry((r.topic.to_owned(), reason.to_string()))
                        .or_default() += 1;
                }
                None
            }
        }
    }

    /// The histories gathered so far, in no particular order (what is made of them does not
    /// depend on it); the collector keeps its counts.
    pub fn take_histories(&mut self) -> Vec<History> {
        // Copies of an id share its key, so its partition: the next group has other ids.
        self.passed.clear();
        self.alerts.drain().map(|(_, h)| h).collect()
    }

    /// Dead-letter-worthy messages whose record falls in the window.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// Alerts of the window seen again with the same id (ignored: the first one wins).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// When each message is applied in a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// As the work happened: an alert at its `issued_at`, a disposition at its `occurred_at`,
    /// nothing that happened at or after `--to`. The compliance rows are counted this way, so
    /// an upload delay of the officers' app never turns work done on time into a breach.
    EventTime,
    /// As the processor saw it: each message when its record reached Kafka, everything read.
    /// The audit compares with what was published, and the processor fires on its wall clock
    /// (docs/contract.md §3): a warning due before a late-uploaded visit is due by the rules.
    Arrival,
}

/// An alert after its replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub state: AlertState,
    /// The outcome of the `feedback` that closed the alert, if one did.
    pub outcome: Option<Outcome>,
    /// Every escalation the replay fired, in order.
    pub escalations: Vec<Escalation>,
}

/// Replays one alert through the SLA machine, with an ideal processor's timing: every clock
/// fires at its due time (or when the alert is applied, if that is later) and each message is
/// applied at the time `timing` gives it. Clocks fire up to, not at, `to`; with
/// [`Timing::EventTime`] messages from `to` on are left out.
pub fn replay(history: History, policies: &Policies, timing: Timing, to: Millis) -> Replayed {
    let alert = history.alert;
    let alert_at = match timing {
        Timing::EventTime => alert.message.issued_at,
        Timing::Arrival => alert.at,
    };
    let mut events: Vec<(Millis, Disposition)> = history
        .dispositions
        .into_iter()
        .map(|d| match timing {
            Timing::EventTime => (d.message.occurred_at, d.message),
            Timing::Arrival => (d.at, d.message),
        })
        .filter(|(at, _)| timing == Timing::Arrival || *at < to)
        .collect();
    // Stable: equal times keep the order read, the processor's order.
    events.sort_by_key(|(at, _)| *at);

    let mut run = Run {
        state: AlertState::default(),
        now: Millis::MIN,
        out: Replayed {
            state: AlertState::default(),
            outcome: None,
            escalations: Vec::new(),
        },
    };
    // Dispositions before their alert are held by the machine and applied when it arrives. In
    // arrival time, one stamped in the alert's millisecond is taken as before it, as the
    // processor takes it (src/ingest/partition_input.rs, `take`).
    let arrived = match timing {
        Timing::EventTime => events.partition_point(|(at, _)| *at < alert_at),
        Timing::Arrival => events.partition_point(|(at, _)| *at <= alert_at),
    };
    let mut events = events.into_iter();
    for (at, d) in events.by_ref().take(arrived) {
        let effects = run.state.apply_disposition(d, policies, at);
        run.collect(effects);
    }
    let effects = run.state.apply_alert(alert.message, policies, alert_at);
    run.now = alert_at;
    run.collect(effects);
    // A clock due at the very time of a disposition: in event time the work came first (it was
    // on time, `occurred_at` ≤ the deadline, so level 1 at the deadline never came due while
    // the stage was open); in arrival time the processor's wall clock may fire first.
    for (at, d) in events {
        let effects = match timing {
            Timing::EventTime => {
                run.fire_through(policies, at, false);
                run.state
                    .apply_disposition_before_clocks_due_now(d, policies, at)
            }
            Timing::Arrival => {
                run.fire_through(policies, at, true);
                run.state.apply_disposition(d, policies, at)
            }
        };
        run.now = run.now.max(at);
        run.collect(effects);
    }
    run.fire_through(policies, to, false);
    run.out.state = run.state;
    run.out
}

/// One replay in progress.
struct Run {
    state: AlertState,
    /// The replay's clock: the time of the last thing applied.
    now: Millis,
    out: Replayed,
}

impl Run {
    /// Fires every clock due before `until` (or at it, when `inclusive`), each at its due time.
    fn fire_through(&mut self, policies: &Policies, until: Millis, inclusive: bool) {
        while let Some(due) = self.state.next_due(policies) {
            if due > until || (due == until && !inclusive) {
                return;
            }
            let at = due.max(self.now);
            let effects = self.state.fire(policies, at);
            self.now = at;
            self.collect(effects);
            // The machine moves the next due time past `at`; should it not, stop rather than
            // fire the same round forever.
            if self.state.next_due(policies).is_some_and(|next| next <= at) {
                return;
            }
        }
    }

    /// Keeps the escalations, and the outcome of a `feedback` that closed the alert (the
    /// machine reports the disposition applied, then the stages it settled, then the close).
    fn collect(&mut self, effects: Vec<Effect>) {
        let mut last_applied = None;
        for e in effects {
            match e {
                Effect::DispositionApplied { kind, outcome } => {
                    last_applied = Some((kind, outcome))
                }
                Effect::AlertClosed => {
                    if let Some((DispositionKind::Feedback, Some(o))) = last_applied {
                        self.out.outcome = Some(o);
                    }
                }
                Effect::Escalate(escalation) => self.out.escalations.push(escalation),
                _ => {}
            }
        }
    }
}

/// The warnings and breaches of a replay, as the audit compares them with what was published.
pub fn pages(replayed: &Replayed) -> impl Iterator<Item = &Escalation> {
    replayed
        .escalations
        .iter()
        .filter(|e| e.kind != EscalationKind::Resolved)
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
