//! The SLA state machine: one [`AlertState`] per alert, changed only by [`AlertState::apply_alert`],
//! [`AlertState::apply_disposition`] and [`AlertState::fire`]. Each rule of docs/contract.md §3 lives in
//! exactly one function here; time is always an argument.

use serde::{Deserialize, Serialize};

use super::escalation::{Escalation, EscalationKind};
use super::event::{Alert, Disposition, DispositionKind, Outcome, Risk, Stage};
use super::policy::{Ladder, Policies, Policy, StageRule};
use super::time::Millis;

/// Longest timeline kept per alert; older entries are dropped first.
pub const TIMELINE_LIMIT: usize = 64;

/// Where one stage's clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum StageStatus {
    Open,
    /// Satisfied by an event that occurred at `at` (event time).
    Satisfied {
        at: Millis,
        on_time: bool,
    },
    /// The alert closed while the stage was open.
    Cancelled,
}

/// One stage's clock; its stage is the entry at the same position of the alert's ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ClockRecord", into = "ClockRecord")]
pub struct StageClock {
    pub deadline: Millis,
    pub status: StageStatus,
    /// The warning fired, or was superseded by the deadline passing.
    pub warned: bool,
    /// Highest breach level fired (0: none).
    pub level: u8,
    /// The `resolved` escalation was emitted.
    pub resolved: bool,
}

/// A [`StageClock`] as stored: kept per open alert in Redis, so defaults (an open stage, no
/// warning, no level) are left out.
#[derive(Serialize, Deserialize)]
struct ClockRecord {
    deadline: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<StatusRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_time: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    warned: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    level: u8,
    #[serde(default, skip_serializing_if = "is_false")]
    resolved: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StatusRecord {
    Open,
    Satisfied,
    Cancelled,
}

impl From<StageClock> for ClockRecord {
    fn from(c: StageClock) -> ClockRecord {
        let (status, at, on_time) = match c.status {
            StageStatus::Open => (None, None, None),
            StageStatus::Satisfied { at, on_time } => {
                (Some(StatusRecord::Satisfied), Some(at), Some(on_time))
            }
            StageStatus::Cancelled => (Some(StatusRecord::Cancelled), None, None),
        };
        ClockRecord {
            deadline: c.deadline,
            status,
            at,
            on_time,
            warned: c.warned,
            level: c.level,
            resolved: c.resolved,
        }
    }
}

impl From<ClockRecord> for StageClock {
    fn from(r: ClockRecord) -> StageClock {
        let status = match r.status {
            None | Some(StatusRecord::Open) => StageStatus::Open,
            Some(StatusRecord::Satisfied) => StageStatus::Satisfied {
                at: r.at.unwrap_or(r.deadline),
                on_time: r.on_time.unwrap_or(false),
            },
            Some(StatusRecord::Cancelled) => StageStatus::Cancelled,
        };
        StageClock {
            deadline: r.deadline,
            status,
            warned: r.warned,
            level: r.level,
            resolved: r.resolved,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl StageClock {
    fn is_open(&self) -> bool {
        self.status == StageStatus::Open
    }
}

/// One line of an alert's history, shown by the query API. Never holds personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Event time for inputs, processing time for escalations.
    pub at: Millis,
    /// `alert`, a disposition kind, or an escalation kind.
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
}

/// Everything known about one alert id. `alert` is `None` while only dispositions have arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    /// The [`Policy::version`] in force when the alert was first processed: its ladder for life.
    #[serde(rename = "policy", default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// One per stage of the alert's ladder, in its order; empty until the alert arrives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageClock>,
    /// Processing time at which the alert closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Millis>,
    /// Ids of every disposition applied or held, for duplicate detection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Dispositions that arrived before their alert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Disposition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
}

/// One open stage of an open alert, as the operators' board lists it: what
/// [`AlertState::stage_entries`] returns, so the lists need no record reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenStage {
    pub stage: Stage,
    pub deadline: Millis,
    /// The warning fired, or was superseded by the deadline passing.
    pub warned: bool,
    /// Highest breach level fired; 0 while the stage has not breached.
    pub level: u8,
}

/// What a transition means to the outside: escalations to publish and things to count.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    AlertOpened {
        risk: Risk,
    },
    DuplicateAlert,
    DuplicateDisposition,
    /// A disposition was applied (or recorded on a closed alert's timeline), with the outcome
    /// a `feedback` reports when it closes the alert.
    DispositionApplied {
        kind: DispositionKind,
        outcome: Option<Outcome>,
    },
    /// A disposition is held until its alert arrives.
    DispositionHeld,
    StageCompleted {
        stage: Stage,
        on_time: bool,
        seconds: f64,
    },
    AlertClosed,
    Escalate(Escalation),
}

impl AlertState {
    /// The alert has arrived and not closed: its clocks run.
    pub fn is_open(&self) -> bool {
        self.alert.is_some() && self.closed_at.is_none()
    }

    /// The alert's ladder in `policy` (its snapshot, see [`Policies::for_state`]).
    pub fn ladder<'p>(&self, policy: &'p Policy) -> Option<&'p Ladder> {
        self.alert.as_ref().map(|a| policy.for_risk(a.risk))
    }

    /// Each stage of the alert with its clock, in ladder order.
    pub fn clocks<'a>(
        &'a self,
        policy: &'a Policy,
    ) -> impl Iterator<Item = (&'a StageRule, &'a StageClock)> + 'a {
        self.ladder(policy)
            .map(|l| l.stages.as_slice())
            .unwrap_or_default()
            .iter()
            .zip(&self.stages)
    }

    /// The clock of the stage named `stage`, if the alert has one.
    pub fn stage<'a>(&'a self, policy: &'a Policy, stage: &str) -> Option<&'a StageClock> {
        self.clocks(policy)
            .find(|(r, _)| r.stage == stage)
            .map(|(_, c)| c)
    }

    /// Rule: first alert wins; it takes the policy in force and keeps it (docs/contract.md §10.2);
    /// dispositions held for it are applied before any clock is evaluated.
    pub fn apply_alert(&mut self, alert: Alert, policies: &Policies, now: Millis) -> Vec<Effect> {
        if self.alert.is_some() {
            return vec![Effect::DuplicateAlert];
        }
        let policy = policies.current();
        let ladder = policy.for_risk(alert.risk);
        self.policy_version = Some(policy.version().to_owned());
        self.stages = ladder
            .stages
            .iter()
            .map(|r| StageClock {
                deadline: alert.issued_at + r.within,
                status: StageStatus::Open,
                warned: false,
                level: 0,
                resolved: false,
            })
            .collect();
        self.record(TimelineEntry::at(alert.issued_at, "alert"));
        let mut effects = vec![Effect::AlertOpened { risk: alert.risk }];
        self.alert = Some(alert);
        // Held events are applied in event-time order, so arrival order cannot change the outcome.
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|d| d.occurred_at);
        for d in pending {
            self.apply_known(&d, ladder, now, &mut effects);
        }
        effects
    }

    /// Rule: a disposition with an `event_id` already seen is ignored; one before its alert is
    /// held; otherwise clocks due by `now` fire first, then the disposition applies.
    pub fn apply_disposition(
        &mut self,
        d: Disposition,
        policies: &Policies,
        now: Millis,
    ) -> Vec<Effect> {
        self.apply_disposition_after(d, policies, now, now)
    }

    /// As [`AlertState::apply_disposition`], but a clock due at `now` itself fires after the
    /// disposition: for a replay in event time, where work done at a stage's deadline was on
    /// time (`occurred_at` ≤ deadline), so the breach due at that millisecond never came due
    /// while the stage was open.
    pub fn apply_disposition_before_clocks_due_now(
        &mut self,
        d: Disposition,
        policies: &Policies,
        now: Millis,
    ) -> Vec<Effect> {
        self.apply_disposition_after(d, policies, now.saturating_sub(1), now)
    }

    /// Fires what is due by `fired_by`, then applies `d` at `now`.
    fn apply_disposition_after(
        &mut self,
        d: Disposition,
        policies: &Policies,
        fired_by: Millis,
        now: Millis,
    ) -> Vec<Effect> {
        if self.events.contains(&d.event_id) {
            return vec![Effect::DuplicateDisposition];
        }
        self.events.push(d.event_id.clone());
        let Some(risk) = self.alert.as_ref().map(|a| a.risk) else {
            self.pending.push(d);
            return vec![Effect::DispositionHeld];
        };
        // Rule: whatever is overdue at `now` fires before a later event is applied, so the
        // outcome does not depend on whether the clock or the backlog is processed first.
        let mut effects = self.fire(policies, fired_by);
        let ladder = policies.for_state(self).for_risk(risk);
        self.apply_known(&d, ladder, now, &mut effects);
        effects
    }

    /// Rule: a disposition satisfies the stages whose `satisfied_by` lists its kind (on time by
    /// event time), and none if no stage of the alert lists it; `feedback`/`closed` close the
    /// alert; events for a closed alert only reach the timeline.
    fn apply_known(
        &mut self,
        d: &Disposition,
        ladder: &Ladder,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        self.record(TimelineEntry {
            event_id: Some(d.event_id.clone()),
            officer_id: d.officer_id.clone(),
            outcome: d.outcome,
            ..TimelineEntry::at(d.occurred_at, d.kind.as_str())
        });
        let closed = self.closed_at.is_some();
        out.push(Effect::DispositionApplied {
            kind: d.kind,
            // The outcome of the alert is its closing feedback's; a later one only reaches the
            // timeline (`fraud_sla_outcomes_total` counts outcomes as the report does).
            outcome: d.outcome.filter(|_| !closed),
        });
        if closed {
            return;
        }
        for i in ladder.satisfied_by(d.kind) {
            self.satisfy(i, d.occurred_at, ladder, now, out);
        }
        if d.kind.closes() {
            self.close(ladder, now, out);
        }
    }

    fn satisfy(
        &mut self,
        i: usize,
        at: Millis,
        ladder: &Ladder,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(issued_at) = self.alert.as_ref().map(|a| a.issued_at) else {
            return;
        };
        let Some(clock) = self.stages.get_mut(i).filter(|c| c.is_open()) else {
            return;
        };
        let on_time = at <= clock.deadline;
        clock.status = StageStatus::Satisfied { at, on_time };
        out.push(Effect::StageCompleted {
            stage: ladder.stages[i].stage.clone(),
            on_time,
            seconds: (at - issued_at).max(0) as f64 / 1000.0,
        });
        self.resolve(i, ladder, now, out);
    }

    /// Rule: closing cancels every open stage; no more warnings or breaches for it.
    fn close(&mut self, ladder: &Ladder, now: Millis, out: &mut Vec<Effect>) {
        self.closed_at = Some(now);
        for i in 0..self.stages.len().min(ladder.stages.len()) {
            if self.stages[i].is_open() {
                self.stages[i].status = StageStatus::Cancelled;
                self.resolve(i, ladder, now, out);
            }
        }
        out.push(Effect::AlertClosed);
    }

    /// Rule: a stage that had a breach fired gets one `resolved` when it stops being open.
    fn resolve(&mut self, i: usize, ladder: &Ladder, now: Millis, out: &mut Vec<Effect>) {
        let clock = &mut self.stages[i];
        if clock.level == 0 || clock.resolved {
            return;
        }
        clock.resolved = true;
        let (level, deadline) = (clock.level, clock.deadline);
        let stage = &ladder.stages[i].stage;
        let esc = self.escalation(
            stage,
            EscalationKind::Resolved,
            level,
            deadline,
            None,
            now,
            ladder,
        );
        self.record(TimelineEntry {
            stage: Some(stage.clone()),
            level: Some(level),
            ..TimelineEntry::at(now, "resolved")
        });
        out.push(Effect::Escalate(esc));
    }

    /// Fires every warning and breach level due at `now`, in due order (ties in ladder order,
    /// then level), each once.
    pub fn fire(&mut self, policies: &Policies, now: Millis) -> Vec<Effect> {
        let Some(risk) = self
            .alert
            .as_ref()
            .map(|a| a.risk)
            .filter(|_| self.is_open())
        else {
            return Vec::new();
        };
        let ladder = policies.for_state(self).for_risk(risk);
        let mut fired = Vec::new();
        for i in 0..self.stages.len().min(ladder.stages.len()) {
            if self.stages[i].is_open() {
                self.fire_stage(i, ladder, now, &mut fired);
            }
        }
        fired.sort_by_key(|(i, e): &(usize, Escalation)| (e.due_at, *i, e.level));
        for (_, e) in &fired {
            self.record(TimelineEntry {
                stage: Some(e.stage.clone()),
                level: Some(e.level),
                ..TimelineEntry::at(now, e.kind.as_str())
            });
        }
        fired
            .into_iter()
            .map(|(_, e)| Effect::Escalate(e))
            .collect()
    }

    /// Rule: the warning fires at `deadline - warn_before + grace` unless the deadline has passed;
    /// every breach level whose time has passed fires, in order.
    fn fire_stage(
        &mut self,
        i: usize,
        ladder: &Ladder,
        now: Millis,
        out: &mut Vec<(usize, Escalation)>,
    ) {
        let clock = self.stages[i];
        let stage = &ladder.stages[i].stage;
        let mut warned = clock.warned;
        if !warned {
            match ladder.warning_due(clock.deadline) {
                Some(due) if now >= clock.deadline || due >= clock.deadline => warned = true,
                Some(due) if now >= due => {
                    warned = true;
                    out.push((
                        i,
                        self.escalation(
                            stage,
                            EscalationKind::Warning,
                            0,
                            clock.deadline,
                            Some(due),
                            now,
                            ladder,
                        ),
                    ));
                }
                Some(_) => {}
                None => warned = true,
            }
        }
        let mut level = clock.level;
        while let Some(due) = ladder.breach_due(clock.deadline, level + 1) {
            if now < due {
                break;
            }
            level += 1;
            out.push((
                i,
                self.escalation(
                    stage,
                    EscalationKind::Breach,
                    level,
                    clock.deadline,
                    Some(due),
                    now,
                    ladder,
                ),
            ));
        }
        let clock = &mut self.stages[i];
        clock.warned = warned;
        clock.level = level;
    }

    /// The earliest time [`AlertState::fire`] has something to do, if any.
    pub fn next_due(&self, policies: &Policies) -> Option<Millis> {
        let alert = self.alert.as_ref().filter(|_| self.is_open())?;
        let ladder = policies.for_state(self).for_risk(alert.risk);
        self.stages
            .iter()
            .filter(|c| c.is_open())
            .filter_map(|c| {
                let warning = ladder
                    .warning_due(c.deadline)
                    .filter(|due| !c.warned && *due < c.deadline);
                let breach = ladder.breach_due(c.deadline, c.level + 1);
                warning.or(breach)
            })
            .min()
    }

    /// The deadline of the earliest open stage that has breached: the "most overdue" order key.
    pub fn overdue_since(&self) -> Option<Millis> {
        if !self.is_open() {
            return None;
        }
        self.stages
            .iter()
            .filter(|c| c.is_open() && c.level > 0)
            .map(|c| c.deadline)
            .min()
    }

    /// Rule: the board lists every open stage of an open alert (docs/contract.md §10.4), named
    /// by the alert's own ladder (`policy` is its snapshot, see [`Policies::for_state`]); a
    /// closed alert, or one known only from dispositions, has none. Its position in the lists
    /// follows from `level`: not breached (0) is due, breached is late.
    pub fn stage_entries(&self, policy: &Policy) -> Vec<OpenStage> {
        if !self.is_open() {
            return Vec::new();
        }
        self.clocks(policy)
            .filter(|(_, c)| c.is_open())
            .map(|(r, c)| OpenStage {
                stage: r.stage.clone(),
                deadline: c.deadline,
                warned: c.warned,
                level: c.level,
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn escalation(
        &self,
        stage: &Stage,
        kind: EscalationKind,
        level: u8,
        deadline: Millis,
        due_at: Option<Millis>,
        now: Millis,
        ladder: &Ladder,
    ) -> Escalation {
        let alert = self
            .alert
            .as_ref()
            .expect("escalations exist only for known alerts");
        Escalation {
            escalation_id: Escalation::id_for(&alert.alert_id, stage, kind, level),
            alert_id: alert.alert_id.clone(),
            stage: stage.clone(),
            level,
            kind,
            jurisdiction: alert.jurisdiction.clone(),
            risk: alert.risk,
            deadline,
            due_at,
            fired_at: now,
            notify: ladder.notify(level).to_vec(),
        }
    }

    fn record(&mut self, entry: TimelineEntry) {
        if self.timeline.len() >= TIMELINE_LIMIT {
            self.timeline.remove(0);
        }
        self.timeline.push(entry);
    }
}

impl TimelineEntry {
    fn at(at: Millis, what: &str) -> TimelineEntry {
        TimelineEntry {
            at,
            what: what.to_owned(),
            event_id: None,
            officer_id: None,
            outcome: None,
            stage: None,
            level: None,
        }
    }
}

#[cfg(test)]
#[path = "sla_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "stages_tests.rs"]
mod stages_tests;
