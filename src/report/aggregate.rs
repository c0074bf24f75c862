//! Counting replayed alerts into the report's tables: per jurisdiction and stage, per stage,
//! and per local day. Pure; an alert is added once and forgotten, so memory holds counts and
//! completion times, not alerts.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, HashMap};

use super::model::{percentile, Day, Outcomes, Row, StageCounts};
use super::replay::Replayed;
use crate::domain::{Millis, Policies, Stage, StageStatus};

/// Where one stage of one alert is counted: its jurisdiction, stage and local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    jurisdiction: u32,
    stage: u16,
    day: Date,
}

/// The counts of one [`Key`], or of several merged.
#[derive(Debug, Clone, Default)]
struct Bucket {
    alerts: u64,
    on_time: u64,
    late: u64,
    unsatisfied: u64,
    breached: u64,
    /// `levels[i]`: stages that reached breach level `i + 1`.
    levels: Vec<u64>,
    /// `issued_at` → satisfied of each satisfied stage, in ms.
    durations: Vec<Millis>,
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.alerts += other.alerts;
        self.on_time += other.on_time;
        self.late += other.late;
        self.unsatisfied += other.unsatisfied;
        self.breached += other.breached;
        if self.levels.len() < other.levels.len() {
            self.levels.resize(other.levels.len(), 0);
        }
        for (a, b) in self.levels.iter_mut().zip(&other.levels) {
            *a += b;
        }
        self.durations.extend_from_slice(&other.durations);
    }

    fn into_counts(mut self, stage: &Stage) -> StageCounts {
        self.durations.sort_unstable();
        let seconds = |p| percentile(&self.durations, p).map(|ms| ms as f64 / 1000.0);
        StageCounts {
            stage: stage.to_string(),
            alerts: self.alerts,
            on_time: self.on_time,
            late: self.late,
            unsatisfied: self.unsatisfied,
            breached: self.breached,
            breaches_by_level: self
                .levels
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (u8::try_from(i + 1).unwrap_or(u8::MAX), *n))
                .collect(),
            p50_seconds: seconds(0.5),
            p90_seconds: seconds(0.9),
        }
    }
}

/// The report's tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Tables {
    pub alerts: u64,
    pub rows: Vec<Row>,
    pub totals: Vec<StageCounts>,
    pub days: Vec<Day>,
    pub outcomes: Outcomes,
}

/// Counts replayed alerts.
#[derive(Debug)]
pub struct Aggregator {
    /// The policy's stage list: the order of rows and the index in a [`Key`].
    stages: Vec<Stage>,
    zone: TimeZone,
    /// Jurisdiction names, interned: a million alerts share a few hundred names.
    jurisdictions: HashMap<String, u32>,
    names: Vec<String>,
    buckets: HashMap<Key, Bucket>,
    days: BTreeMap<Date, (u64, Outcomes)>,
    alerts: u64,
}

impl Aggregator {
    /// `stages`: the stage list rows follow; `zone`: where a day begins.
    pub fn new(stages: Vec<Stage>, zone: TimeZone) -> Aggregator {
        Aggregator {
            stages,
            zone,
            jurisdictions: HashMap::new(),
            names: Vec::new(),
            buckets: HashMap::new(),
            days: BTreeMap::new(),
            alerts: 0,
        }
    }

    /// Counts an alert as its replay left it.
    pub fn add(&mut self, replayed: &Replayed, policies: &Policies) {
        let Some(alert) = replayed.state.alert.as_ref() else {
            return; // a replay always applies its alert
        };
        let day = self.day(alert.issued_at);
        let jurisdiction = self.intern(&alert.jurisdiction);
        self.alerts += 1;
        let (alerts, outcomes) = self.days.entry(day).or_default();
        *alerts += 1;
        if let Some(o) = replayed.outcome {
            outcomes.add(o);
        }
        let policy = policies.for_state(&replayed.state);
        for (rule, clock) in replayed.state.clocks(policy) {
            let Some(stage) = self.stages.iter().position(|s| *s == rule.stage) else {
                continue; // every ladder's stage is in the policy's list
            };
            let key = Key {
                jurisdiction,
                stage: u16::try_from(stage).unwrap_or(u16::MAX),
                day,
            };
            let b = self.buckets.entry(key).or_default();
            b.alerts += 1;
            match clock.status {
                StageStatus::Satisfied { at, on_time } => {
                    if on_time {
                        b.on_time += 1;
                    } else {
                        b.late += 1;
                    }
                    // As the completion-time metric measures it (the machine's StageCompleted).
                    b.durations.push((at - alert.issued_at).max(0));
                }
                StageStatus::Open | StageStatus::Cancelled => b.unsatisfied += 1,
            }
            if clock.level > 0 {
                b.breached += 1;
                let reached = usize::from(clock.level);
                if b.levels.len() < reached {
                    b.levels.resize(reached, 0);
                }
                for n in &mut b.levels[..reached] {
                    *n += 1;
                }
            }
        }
    }

    fn day(&self, at: Millis) -> Date {
        jiff::Timestamp::from_millisecond(at)
            .map(|t| self.zone.to_datetime(t).date())
            .unwrap_or_default()
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(i) = self.jurisdictions.get(name) {
            return *i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.jurisdictions.insert(name.to_owned(), i);
        self.names.push(name.to_owned());
        i
    }

    /// The tables, sorted: rows by jurisdiction then stage-list order, days by date. Each
    /// roll-up is finished (its completion times sorted and dropped) before the next starts.
    pub fn finish(self) -> Tables {
        let stage = |i: u16| &self.stages[usize::from(i)];

        let mut by_row: BTreeMap<(&str, u16), Bucket> = BTreeMap::new();
        for (k, b) in &self.buckets {
            let name = self.names[k.jurisdiction as usize].as_str();
            by_row.entry((name, k.stage)).or_default().merge(b);
        }
        let rows = by_row
            .into_iter()
            .map(|((jurisdiction, s), b)| Row {
                jurisdiction: jurisdiction.to_owned(),
                counts: b.into_counts(stage(s)),
            })
            .collect();

        let mut by_stage: BTreeMap<u16, Bucket> = BTreeMap::new();
        for (k, b) in &self.buckets {
            by_stage.entry(k.stage).or_default().merge(b);
        }
        let totals = by_stage
            .into_iter()
            .map(|(s, b)| b.into_counts(stage(s)))
            .collect();

        let mut by_day: BTreeMap<(Date, u16), Bucket> = BTreeMap::new();
        for (k, b) in &self.buckets {
            by_day.entry((k.day, k.stage)).or_default().merge(b);
        }
        let mut stages_of: BTreeMap<Date, Vec<StageCounts>> = BTreeMap::new();
        for ((day, s), b) in by_day {
            stages_of
                .entry(day)
                .or_default()
                .push(b.into_counts(stage(s)));
        }
        let days = self
            .days
            .iter()
            .map(|(date, (alerts, outcomes))| Day {
                date: date.to_string(),
                alerts: *alerts,
                stages: stages_of.remove(date).unwrap_or_default(),
                outcomes: *outcomes,
            })
            .collect();

        let mut outcomes = Outcomes::default();
        for (_, o) in self.days.values() {
            outcomes.merge(o);
        }
        Tables {
            alerts: self.alerts,
            rows,
            totals,
            days,
            outcomes,
        }
    }
}
