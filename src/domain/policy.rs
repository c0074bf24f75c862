//! The SLA policy: per risk class, the stages and their deadlines, what satisfies each, the
//! warning lead, the breach ladder and who is paged (docs/contract.md §3, §10.1).
//!
//! A [`Policy`] is immutable and named by its [`Policy::version`], a hash of its content: an
//! alert keeps the version in force when it was first processed (§10.2), and [`Policies`] holds
//! the one in force with every snapshot open alerts still refer to.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

use super::event::{DispositionKind, Risk, Stage};
use super::sla::AlertState;
use super::time::Millis;

/// One stage of a ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRule {
    pub stage: Stage,
    /// Deadline after `issued_at`.
    pub within: Millis,
    /// Disposition kinds that satisfy the stage.
    pub satisfied_by: Vec<DispositionKind>,
}

impl StageRule {
    /// `satisfied_by` of the stages of docs/contract.md §2 (`met` also satisfies `visit`); other
    /// stages have none until configured.
    pub fn default_satisfied_by(stage: &str) -> Option<Vec<DispositionKind>> {
        use DispositionKind::*;
        match stage {
            "visit" => Some(vec![Visited, Met]),
            "meet" => Some(vec![Met]),
            "feedback" => Some(vec![Feedback]),
            _ => None,
        }
    }

    /// The default stage list (`visit`, `meet`, `feedback`) with these deadlines.
    pub fn defaults(within: [Millis; 3]) -> Vec<StageRule> {
        Stage::DEFAULTS
            .iter()
            .zip(within)
            .map(|(name, within)| StageRule {
                stage: Stage::new(name).expect("default stage names are valid"),
                within,
                satisfied_by: StageRule::default_satisfied_by(name).unwrap_or_default(),
            })
            .collect()
    }
}

/// The policy for one risk class, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ladder {
    /// The stages this risk requires, in order; an alert has one clock per entry.
    pub stages: Vec<StageRule>,
    /// Lead time of the level-0 warning; 0 disables warnings.
    pub warn_before: Millis,
    /// Level *i* fires at `deadline + escalate_after[i-1]`.
    pub escalate_after: Vec<Millis>,
    /// Who is paged at level *i* (`notify[i-1]`).
    pub notify: Vec<Vec<String>>,
    /// Who gets the level-0 warning.
    pub warn_notify: Vec<String>,
    /// Delay added to every warning and breach so in-flight dispositions can still cancel it.
    pub grace: Millis,
}

impl Ladder {
    /// The position of `stage` in this ladder, if the risk requires it.
    pub fn position(&self, stage: &str) -> Option<usize> {
        self.stages.iter().position(|r| r.stage == stage)
    }

    /// The deadline of `stage` after `issued_at`, if the risk requires it.
    pub fn within(&self, stage: &str) -> Option<Millis> {
        self.position(stage).map(|i| self.stages[i].within)
    }

    /// Positions of the stages `kind` satisfies; none for `closed`, whatever `satisfied_by` says
    /// (docs/contract.md §10.1: it closes the alert without satisfying anything).
    pub fn satisfied_by(&self, kind: DispositionKind) -> impl Iterator<Item = usize> + '_ {
        self.stages
            .iter()
            .enumerate()
            .filter(move |(_, r)| kind != DispositionKind::Closed && r.satisfied_by.contains(&kind))
            .map(|(i, _)| i)
    }

    /// Number of breach levels.
    pub fn levels(&self) -> u8 {
        self.escalate_after.len().min(u8::MAX as usize) as u8
    }

    /// When breach `level` (1-based) of a stage with `deadline` is due, grace included.
    pub fn breach_due(&self, deadline: Millis, level: u8) -> Option<Millis> {
        let after = *self
            .escalate_after
            .get(usize::from(level).checked_sub(1)?)?;
        Some(deadline + after + self.grace)
    }

    /// When the warning of a stage with `deadline` is due, or `None` if warnings are off.
    pub fn warning_due(&self, deadline: Millis) -> Option<Millis> {
        (self.warn_before > 0).then(|| deadline - self.warn_before + self.grace)
    }

    /// The people paged at `level`; level 0 is the warning list. A level past the last list
    /// pages the last list's people: the ladder climbs, it never pages fewer (a risk may
    /// override `escalate_after` and keep the lists of `[sla]`).
    pub fn notify(&self, level: u8) -> &[String] {
        match level {
            0 => &self.warn_notify,
            n => self
                .notify
                .get(usize::from(n) - 1)
                .or(self.notify.last())
                .map(Vec::as_slice)
                .unwrap_or_default(),
        }
    }
}

impl Default for Ladder {
    /// docs/contract.md §6 defaults: 1 h / 2 h / 6 h, warn 15 m before, ladder 0 s / 30 m / 2 h.
    fn default() -> Ladder {
        const MIN: Millis = 60_000;
        const HOUR: Millis = 60 * MIN;
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Ladder {
            stages: StageRule::defaults([HOUR, 2 * HOUR, 6 * HOUR]),
            warn_before: 15 * MIN,
            escalate_after: vec![0, 30 * MIN, 2 * HOUR],
            notify: vec![
                names(&["station_duty_officer"]),
                names(&["station_chief"]),
                names(&["sub_bureau_command"]),
            ],
            warn_notify: names(&["assigned_officer"]),
            grace: 0,
        }
    }
}

/// The ladders of the three risk classes: what a policy snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ladders {
    pub high: Ladder,
    pub medium: Ladder,
    pub low: Ladder,
}

/// One immutable policy, named by a hash of its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    version: String,
    ladders: Ladders,
}

impl Policy {
    /// The policy of these ladders; its version is the first 16 hex digits of the SHA-256 of
    /// their canonical JSON (fields in declaration order, stages in list order), so the same
    /// effective policy has the same version on every machine and across restarts.
    pub fn new(ladders: Ladders) -> Policy {
        let digest = Sha256::digest(ladders.to_json());
        let version = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Policy { version, ladders }
    }

    /// The same ladder for every risk class.
    pub fn uniform(ladder: Ladder) -> Policy {
        Policy::new(Ladders {
            high: ladder.clone(),
            medium: ladder.clone(),
            low: ladder,
        })
    }

    /// A stored snapshot, under the version it was stored as.
    pub fn from_snapshot(version: &str, json: &str) -> Result<Policy, serde_json::Error> {
        Ok(Policy {
            version: version.to_owned(),
            ladders: serde_json::from_str(json)?,
        })
    }

    /// The snapshot to store: the ladders as JSON.
    pub fn snapshot_json(&self) -> String {
        self.ladders.to_json()
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn ladders(&self) -> &Ladders {
        &self.ladders
    }

    pub fn for_risk(&self, risk: Risk) -> &Ladder {
        match risk {
            Risk::High => &self.ladders.high,
            Risk::Medium => &self.ladders.medium,
            Risk::Low => &self.ladders.low,
        }
    }

    /// Every stage some risk class requires, once each, in first-seen order.
    pub fn stages(&self) -> Vec<Stage> {
        let mut out: Vec<Stage> = Vec::new();
        for risk in Risk::ALL {
            for r in &self.for_risk(risk).stages {
                if !out.contains(&r.stage) {
                    out.push(r.stage.clone());
                }
            }
        }
        out
    }
}

impl Ladders {
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy always serialises")
    }
}

impl Default for Policy {
    /// docs/contract.md §6 defaults for every risk class.
    fn default() -> Policy {
        Policy::uniform(Ladder::default())
    }
}

/// The policy in force for alerts processed from now on, and the snapshots that open alerts
/// processed earlier keep (docs/contract.md §10.2).
#[derive(Debug, Clone)]
pub struct Policies {
    current: Arc<Policy>,
    snapshots: HashMap<String, Arc<Policy>>,
    /// How long closed alerts and dispositions waiting for their alert are kept.
    pub retention: Millis,
}

impl Policies {
    pub fn new(current: Arc<Policy>, retention: Millis) -> Policies {
        let mut p = Policies {
            current: current.clone(),
            snapshots: HashMap::new(),
            retention,
        };
        p.insert(current);
        p
    }

    /// The policy new alerts get.
    pub fn current(&self) -> &Arc<Policy> {
        &self.current
    }

    /// Puts `policy` in force for alerts processed from now on; open alerts keep theirs.
    pub fn set_current(&mut self, policy: Arc<Policy>) {
        self.insert(policy.clone());
        self.current = policy;
    }

    /// Makes a stored snapshot known.
    pub fn insert(&mut self, policy: Arc<Policy>) {
        self.snapshots
            .entry(policy.version().to_owned())
            .or_insert(policy);
    }

    pub fn get(&self, version: &str) -> Option<&Arc<Policy>> {
        self.snapshots.get(version)
    }

    /// Rule: an alert is judged by the policy it was first processed with; a state that names
    /// no snapshot (only dispositions so far, or written before snapshots existed) or one not
    /// known (a lost snapshot) by the policy in force.
    ///
    /// Most states name the policy in force: that one is compared, not looked up (hashing the
    /// version was ~0.9% of the processor in a drain, `perf record`).
    pub fn for_state(&self, state: &AlertState) -> &Policy {
        match state.policy_version.as_deref() {
            Some(v) if v == self.current.version() => &self.current,
            Some(v) => self.snapshots.get(v).unwrap_or(&self.current),
            None => &self.current,
        }
    }
}

/// docs/contract.md §6's retention: 7 days.
pub const DEFAULT_RETENTION: Millis = 7 * 24 * 3_600_000;

impl Default for Policies {
    /// docs/contract.md §6 defaults.
    fn default() -> Policies {
        Policies::from(Policy::default())
    }
}

impl From<Policy> for Policies {
    fn from(p: Policy) -> Policies {
        Policies::new(Arc::new(p), DEFAULT_RETENTION)
    }
}
