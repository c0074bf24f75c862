//! The SLA state machine: one [`AlertState`] per alert, changed only by [`AlertState::apply_alert`],
//! [`AlertState::apply_disposition`] and [`AlertState::fire`]. Each rule of docs/contract.md §3 lives in
//! exactly one function here; time is always an argument.

use serde::{Deserialize, Serialize};

use super::escalation::{Escalation, EscalationKind};
use super::event::{Alert, Disposition, DispositionKind, Outcome, Risk, Stage};
use super::policy::{Ladder, Policy};
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

/// One stage's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageClock {
    pub deadline: Millis,
    #[serde(flatten)]
    pub status: StageStatus,
    /// The warning fired, or was superseded by the deadline passing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub warned: bool,
    /// Highest breach level fired (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub level: u8,
    /// The `resolved` escalation was emitted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resolved: bool,
}

// Defaults are left out of the stored JSON: it is kept per open alert in Redis.
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
    /// Indexed by [`Stage::index`]; empty until the alert arrives.
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

/// What a transition means to the outside: escalations to publish and things to count.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    AlertOpened {
        risk: Risk,
    },
    DuplicateAlert,
    DuplicateDisposition,
    /// A disposition was applied (or recorded on a closed alert's timeline), with the outcome
    /// a `feedback` reports.
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

    pub fn stage(&self, stage: Stage) -> Option<&StageClock> {
        self.stages.get(stage.index())
    }

    /// Rule: first alert wins; dispositions held for it are applied before any clock is evaluated.
    pub fn apply_alert(&mut self, alert: Alert, policy: &Policy, now: Millis) -> Vec<Effect> {
        if self.alert.is_some() {
            return vec![Effect::DuplicateAlert];
        }
        let ladder = policy.for_risk(alert.risk);
        self.stages = Stage::ALL
            .iter()
            .map(|&s| StageClock {
                deadline: alert.issued_at + ladder.within(s),
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
        policy: &Policy,
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
        let mut effects = self.fire(policy, now);
        self.apply_known(&d, policy.for_risk(risk), now, &mut effects);
        effects
    }

    /// Rule: `visited`/`met`/`feedback` satisfy their stages (on time by event time);
    /// `feedback`/`closed` close the alert; events for a closed alert only reach the timeline.
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
        out.push(Effect::DispositionApplied {
            kind: d.kind,
            outcome: d.outcome,
        });
        if self.closed_at.is_some() {
            return;
        }
        for &stage in d.kind.satisfies() {
            self.satisfy(stage, d.occurred_at, ladder, now, out);
        }
        if d.kind.closes() {
            self.close(ladder, now, out);
        }
    }

    fn satisfy(
        &mut self,
        stage: Stage,
        at: Millis,
        ladder: &Ladder,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(issued_at) = self.alert.as_ref().map(|a| a.issued_at) else {
            return;
        };
        let clock = &mut self.stages[stage.index()];
        if !clock.is_open() {
            return;
        }
        let on_time = at <= clock.deadline;
        clock.status = StageStatus::Satisfied { at, on_time };
        out.push(Effect::StageCompleted {
            stage,
            on_time,
            seconds: (at - issued_at).max(0) as f64 / 1000.0,
        });
        self.resolve(stage, ladder, now, out);
    }

    /// Rule: closing cancels every open stage; no more warnings or breaches for it.
    fn close(&mut self, ladder: &Ladder, now: Millis, out: &mut Vec<Effect>) {
        self.closed_at = Some(now);
        for stage in Stage::ALL {
            if self.stages[stage.index()].is_open() {
                self.stages[stage.index()].status = StageStatus::Cancelled;
                self.resolve(stage, ladder, now, out);
            }
        }
        out.push(Effect::AlertClosed);
    }

    /// Rule: a stage that had a breach fired gets one `resolved` when it stops being open.
    fn resolve(&mut self, stage: Stage, ladder: &Ladder, now: Millis, out: &mut Vec<Effect>) {
        let clock = &mut self.stages[stage.index()];
        if clock.level == 0 || clock.resolved {
            return;
        }
        clock.resolved = true;
        let (level, deadline) = (clock.level, clock.deadline);
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
            stage: Some(stage),
            level: Some(level),
            ..TimelineEntry::at(now, "resolved")
        });
        out.push(Effect::Escalate(esc));
    }

    /// Fires every warning and breach level due at `now`, in due order, each once.
    pub fn fire(&mut self, policy: &Policy, now: Millis) -> Vec<Effect> {
        let Some(risk) = self
            .alert
            .as_ref()
            .map(|a| a.risk)
            .filter(|_| self.is_open())
        else {
            return Vec::new();
        };
        let ladder = policy.for_risk(risk);
        let mut fired = Vec::new();
        for stage in Stage::ALL {
            if self.stages[stage.index()].is_open() {
                self.fire_stage(stage, ladder, now, &mut fired);
            }
        }
        fired.sort_by_key(|e: &Escalation| (e.due_at, e.stage, e.level));
        for e in &fired {
            self.record(TimelineEntry {
                stage: Some(e.stage),
                level: Some(e.level),
                ..TimelineEntry::at(now, e.kind.as_str())
            });
        }
        fired.into_iter().map(Effect::Escalate).collect()
    }

    /// Rule: the warning fires at `deadline - warn_before + grace` unless the deadline has passed;
    /// every breach level whose time has passed fires, in order.
    fn fire_stage(
        &mut self,
        stage: Stage,
        ladder: &Ladder,
        now: Millis,
        out: &mut Vec<Escalation>,
    ) {
        let clock = self.stages[stage.index()];
        let mut warned = clock.warned;
        if !warned {
            match ladder.warning_due(clock.deadline) {
                Some(due) if now >= clock.deadline || due >= clock.deadline => warned = true,
                Some(due) if now >= due => {
                    warned = true;
                    out.push(self.escalation(
                        stage,
                        EscalationKind::Warning,
                        0,
                        clock.deadline,
                        Some(due),
                        now,
                        ladder,
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
            out.push(self.escalation(
                stage,
                EscalationKind::Breach,
                level,
                clock.deadline,
                Some(due),
                now,
                ladder,
            ));
        }
        let clock = &mut self.stages[stage.index()];
        clock.warned = warned;
        clock.level = level;
    }

    /// The earliest time [`AlertState::fire`] has something to do, if any.
    pub fn next_due(&self, policy: &Policy) -> Option<Millis> {
        let alert = self.alert.as_ref().filter(|_| self.is_open())?;
        let ladder = policy.for_risk(alert.risk);
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

    #[allow(clippy::too_many_arguments)]
    fn escalation(
        &self,
        stage: Stage,
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
            stage,
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
