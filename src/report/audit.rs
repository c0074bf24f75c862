//! `--audit`: what the rules make due against what was published. Pure: replayed alerts and
//! escalation records in, the [`Audit`] out.
//!
//! Only the window's alerts are judged, and only warnings and breaches (`resolved` has no due
//! time to be late for). A page is *expected* when the replay (as the processor saw the input,
//! [`super::replay::Timing::Arrival`]) fires it with `due_at` before the horizon; *missed* when
//! no record of the escalations topic carries its id; *false* when a record of one of these
//! alerts carries an id the replay did not fire and its `due_at` is before the horizon (later
//! ones are not yet judged).

use std::collections::{BTreeSet, HashMap};

use super::model::{percentile, Audit};
use super::replay::{pages, Replayed};
use crate::domain::{Escalation, EscalationKind, Millis, Stage};

/// One page the rules make due.
#[derive(Debug, Clone, Copy)]
struct Expected {
    due_at: Millis,
    /// The earliest record timestamp of its copies, once one was read.
    published: Option<Millis>,
}

/// Which page: the alert (interned), the stage's position in the stage list, and the level
/// (0 for the warning), as its `escalation_id` names it.
type PageKey = (u32, u16, u8);

/// Collects the expected pages, then the published ones, and compares.
#[derive(Debug)]
pub struct Auditor {
    horizon: Millis,
    stages: Vec<Stage>,
    /// The window's alert ids: ids are interned because an audit of a million alerts holds
    /// several million pages.
    alerts: HashMap<Box<str>, u32>,
    expected: HashMap<PageKey, Expected>,
    false_: BTreeSet<String>,
    /// Records of the escalations topic that are not escalations: not ours to judge.
    unreadable: u64,
}

impl Auditor {
    /// Judges pages due before `horizon`; `stages` is the policy's stage list.
    pub fn new(stages: Vec<Stage>, horizon: Millis) -> Auditor {
        Auditor {
            horizon,
            stages,
            alerts: HashMap::new(),
            expected: HashMap::new(),
            false_: BTreeSet::new(),
            unreadable: 0,
        }
    }

    /// Registers a window alert and the pages its replay fired. Call it for every alert of
    /// the window, also those that owe no page: a page published for them would be false.
    pub fn expect(&mut self, replayed: &Replayed) {
        let Some(alert_id) = replayed.state.alert.as_ref().map(|a| a.alert_id.as_str()) else {
            return; // a replay always applies its alert
        };
        let next = u32::try_from(self.alerts.len()).unwrap_or(u32::MAX);
        let alert = *self.alerts.entry(alert_id.into()).or_insert(next);
        for e in pages(replayed) {
            let due_at = e.due_at.unwrap_or(e.fired_at);
            if due_at >= self.horizon {
                continue;
            }
            if let Some(stage) = self.stage(&e.stage) {
                self.expected
                    .entry((alert, stage, e.level))
                    .or_insert(Expected {
                        due_at,
                        published: None,
                    });
            }
        }
    }

    /// One record of the escalations topic, with its timestamp.
    pub fn published(&mut self, payload: Option<&[u8]>, timestamp: Option<Millis>) {
        let Some(e) = payload.and_then(|p| serde_json::from_slice::<Escalation>(p).ok()) else {
            self.unreadable += 1;
            return;
        };
        if e.kind == EscalationKind::Resolved {
            return;
        }
        let Some(alert) = self.alerts.get(e.alert_id.as_str()).copied() else {
            return; // not an alert of the window
        };
        let found = self
            .stage(&e.stage)
            .and_then(|stage| self.expected.get_mut(&(alert, stage, e.level)));
        match found {
            Some(x) => {
                let at = timestamp.unwrap_or(e.fired_at);
                x.published = Some(x.published.map_or(at, |p| p.min(at)));
            }
            None if e.due_at.unwrap_or(e.fired_at) < self.horizon => {
                self.false_.insert(e.escalation_id);
            }
            None => {}
        }
    }

    fn stage(&self, stage: &Stage) -> Option<u16> {
        self.stages
            .iter()
            .position(|s| s == stage)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Records of the escalations topic that did not parse as escalations.
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    /// The findings, lists sorted.
    pub fn finish(self) -> Audit {
        let mut ids: Vec<&str> = vec![""; self.alerts.len()];
        for (id, i) in &self.alerts {
            ids[*i as usize] = id;
        }
        let mut missed = Vec::new();
        let mut delays = Vec::new();
        for (&(alert, stage, level), x) in &self.expected {
            match x.published {
                Some(at) => delays.push(at - x.due_at),
                None => missed.push(Escalation::id_for(
                    ids[alert as usize],
                    &self.stages[usize::from(stage)],
                    if level == 0 {
                        EscalationKind::Warning
                    } else {
                        EscalationKind::Breach
                    },
                    level,
                )),
            }
        }
        missed.sort();
        delays.sort_unstable();
        Audit {
            publish_delay_ms_p50: percentile(&delays, 0.5),
            publish_delay_ms_p99: percentile(&delays, 0.99),
            expected: self.expected.len() as u64,
            published: delays.len() as u64,
            missed,
            false_: self.false_.into_iter().collect(),
        }
    }
}
