//! The report as data: what `--format json` prints field for field (docs/contract.md §10.5), and
//! what the CSV and HTML renderers read. Fields beyond the contract's are additive.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::domain::time::utc_string;
use crate::domain::{Millis, Outcome};

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    #[serde(with = "utc_string")]
    pub from: Millis,
    #[serde(with = "utc_string")]
    pub to: Millis,
    /// The `policy_version` of `--config`: the policy every alert was replayed with.
    pub policy_version: String,
    /// Per jurisdiction and stage, by jurisdiction then stage in stage-list order.
    pub rows: Vec<Row>,
    /// The outcome of each alert whose `feedback` closed it.
    pub outcomes: Outcomes,
    /// `null` without `--audit`.
    pub audit: Option<Audit>,
    /// Additive: the time the rules were applied up to, `to` unless `to` is still ahead (then
    /// the time the report started: what is not yet due is not yet late).
    #[serde(with = "utc_string")]
    pub as_of: Millis,
    /// Additive: the `--jurisdiction` prefix, `null` for all.
    pub jurisdiction_prefix: Option<String>,
    /// Additive: alerts issued in the window (and under the prefix).
    pub alerts: u64,
    /// Additive: per stage, over every jurisdiction.
    pub totals: Vec<StageCounts>,
    /// Additive: per day of `issued_at` in the display time zone, days without alerts left out.
    pub days: Vec<Day>,
    /// Additive: messages in the window that the processor would have dead-lettered; left out
    /// of everything above.
    pub skipped: Vec<SkippedCount>,
}

/// One jurisdiction's figures for one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub jurisdiction: String,
    #[serde(flatten)]
    pub counts: StageCounts,
}

/// One stage's figures over a set of alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageCounts {
    pub stage: String,
    /// Alerts that required the stage.
    pub alerts: u64,
    pub on_time: u64,
    pub late: u64,
    /// Never satisfied by the end of the window, or cancelled by `closed`.
    pub unsatisfied: u64,
    /// Stages whose breach level 1 came due while they were open.
    pub breached: u64,
    /// Per level (1..n), the stages that reached it; levels nobody reached are left out.
    pub breaches_by_level: BTreeMap<u8, u64>,
    /// Nearest-rank percentiles of `issued_at` → satisfied, in seconds; `null` when none was.
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
}

impl StageCounts {
    /// Share of the stage's alerts done on time, if there were any.
    pub fn on_time_share(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.on_time as f64 / self.alerts as f64)
    }
}

/// Outcomes of `feedback`, each always present (docs/contract.md §2's list, in its order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub dissuaded: u64,
    pub defrauded: u64,
    pub unreachable: u64,
    pub false_positive: u64,
    pub refused: u64,
}

impl Outcomes {
    pub fn add(&mut self, o: Outcome) {
        *self.count_mut(o) += 1;
    }

    pub fn merge(&mut self, other: &Outcomes) {
        for o in Outcome::ALL {
            *self.count_mut(o) += other.count(o);
        }
    }

    pub fn count(&self, o: Outcome) -> u64 {
        match o {
            Outcome::Dissuaded => self.dissuaded,
            Outcome::Defrauded => self.defrauded,
            Outcome::Unreachable => self.unreachable,
            Outcome::FalsePositive => self.false_positive,
            Outcome::Refused => self.refused,
        }
    }

    fn count_mut(&mut self, o: Outcome) -> &mut u64 {
        match o {
            Outcome::Dissuaded => &mut self.dissuaded,
            Outcome::Defrauded => &mut self.defrauded,
            Outcome::Unreachable => &mut self.unreachable,
            Outcome::FalsePositive => &mut self.false_positive,
            Outcome::Refused => &mut self.refused,
        }
    }

    pub fn total(&self) -> u64 {
        Outcome::ALL.iter().map(|o| self.count(*o)).sum()
    }

    /// 劝阻成功率: the share of reported outcomes that are `dissuaded`.
    pub fn dissuaded_share(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.dissuaded as f64 / total as f64)
    }
}

/// One local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD` in the display time zone.
    pub date: String,
    pub alerts: u64,
    pub stages: Vec<StageCounts>,
    pub outcomes: Outcomes,
}

/// What `--audit` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audit {
    /// Warnings and breaches due by the rules but never published, sorted.
    pub missed: Vec<String>,
    /// Warnings and breaches published that the rules do not make due, sorted.
    #[serde(rename = "false")]
    pub false_: Vec<String>,
    /// Nearest-rank percentiles of the record's timestamp − `due_at` of the first copy of each
    /// escalation due and published, in ms; `null` when none was.
    pub publish_delay_ms_p50: Option<i64>,
    pub publish_delay_ms_p99: Option<i64>,
    /// Additive: warnings and breaches the rules make due.
    pub expected: u64,
    /// Additive: of those, published.
    pub published: u64,
}

impl Audit {
    /// Something is missing or should not be there: the command exits 3.
    pub fn has_findings(&self) -> bool {
        !self.missed.is_empty() || !self.false_.is_empty()
    }
}

/// Skipped messages of one topic with one dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedCount {
    pub topic: String,
    /// As the `error` header of a dead letter says it (docs/contract.md §5).
    pub reason: String,
    pub count: u64,
}

/// The nearest-rank percentile `p` (0..=1) of sorted `values`: the smallest value with at
/// least `p` of them at or below it. A value that occurred, never an interpolation.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}
