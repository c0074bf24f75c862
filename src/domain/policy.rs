//! The effective SLA policy: deadlines, warning lead, the breach ladder and who is paged, per risk.

use super::event::{Risk, Stage};
use super::time::Millis;

/// The policy for one risk class, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    /// Deadline after `issued_at`, indexed by [`Stage::index`].
    pub within: [Millis; 3],
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
    pub fn within(&self, stage: Stage) -> Millis {
        self.within[stage.index()]
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

    /// The people paged at `level`; level 0 is the warning list.
    pub fn notify(&self, level: u8) -> &[String] {
        match level {
            0 => &self.warn_notify,
            n => self
                .notify
                .get(usize::from(n) - 1)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        }
    }
}

/// The whole policy: one ladder per risk class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub high: Ladder,
    pub medium: Ladder,
    pub low: Ladder,
    /// How long closed alerts and dispositions waiting for their alert are kept.
    pub retention: Millis,
}

impl Policy {
    /// The same ladder for every risk class.
    pub fn uniform(ladder: Ladder, retention: Millis) -> Policy {
        Policy {
            high: ladder.clone(),
            medium: ladder.clone(),
            low: ladder,
            retention,
        }
    }

    pub fn for_risk(&self, risk: Risk) -> &Ladder {
        match risk {
            Risk::High => &self.high,
            Risk::Medium => &self.medium,
            Risk::Low => &self.low,
        }
    }
}

impl Default for Policy {
    /// docs/contract.md §6 defaults: 1 h / 2 h / 6 h, warn 15 m before, ladder 0 s / 30 m / 2 h.
    fn default() -> Policy {
        const MIN: Millis = 60_000;
        const HOUR: Millis = 60 * MIN;
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Policy::uniform(
            Ladder {
                within: [HOUR, 2 * HOUR, 6 * HOUR],
                warn_before: 15 * MIN,
                escalate_after: vec![0, 30 * MIN, 2 * HOUR],
                notify: vec![
                    names(&["station_duty_officer"]),
                    names(&["station_chief"]),
                    names(&["sub_bureau_command"]),
                ],
                warn_notify: names(&["assigned_officer"]),
                grace: 0,
            },
            7 * 24 * HOUR,
        )
    }
}
