//! Validated input messages and the closed vocabularies of docs/contract.md §2–§3.
//!
//! These types hold only what the SLA needs: `subject` and `note` are personal data and are never
//! decoded into them, so they cannot reach logs, Redis or escalations by accident.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::time::Millis;

/// The alert's risk class; selects per-risk policy overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    High,
    Medium,
    Low,
}

impl Risk {
    pub const ALL: [Risk; 3] = [Risk::High, Risk::Medium, Risk::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Risk::High => "high",
            Risk::Medium => "medium",
            Risk::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Risk> {
        Risk::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SLA stage; each alert has a clock for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Visit,
    Meet,
    Feedback,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Visit, Stage::Meet, Stage::Feedback];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Visit => "visit",
            Stage::Meet => "meet",
            Stage::Feedback => "feedback",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an officer (or the center) reports about an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispositionKind {
    Acknowledged,
    Visited,
    Met,
    Feedback,
    Closed,
}

impl DispositionKind {
    pub const ALL: [DispositionKind; 5] = [
        DispositionKind::Acknowledged,
        DispositionKind::Visited,
        DispositionKind::Met,
        DispositionKind::Feedback,
        DispositionKind::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DispositionKind::Acknowledged => "acknowledged",
            DispositionKind::Visited => "visited",
            DispositionKind::Met => "met",
            DispositionKind::Feedback => "feedback",
            DispositionKind::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<DispositionKind> {
        DispositionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The stages this kind satisfies (docs/contract.md §2: `met` also satisfies `visit`).
    pub fn satisfies(self) -> &'static [Stage] {
        match self {
            DispositionKind::Visited => &[Stage::Visit],
            DispositionKind::Met => &[Stage::Visit, Stage::Meet],
            DispositionKind::Feedback => &[Stage::Feedback],
            DispositionKind::Acknowledged | DispositionKind::Closed => &[],
        }
    }

    /// Whether this kind closes the alert.
    pub fn closes(self) -> bool {
        matches!(self, DispositionKind::Feedback | DispositionKind::Closed)
    }
}

/// The dissuasion result carried by a `feedback` disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Dissuaded,
    Defrauded,
    Unreachable,
    FalsePositive,
    Refused,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Dissuaded,
        Outcome::Defrauded,
        Outcome::Unreachable,
        Outcome::FalsePositive,
        Outcome::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Dissuaded => "dissuaded",
            Outcome::Defrauded => "defrauded",
            Outcome::Unreachable => "unreachable",
            Outcome::FalsePositive => "false_positive",
            Outcome::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A validated early-warning alert, without its personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub issued_at: Millis,
    pub jurisdiction: String,
    pub risk: Risk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraud_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
}

/// A validated progress event, without its free-text note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    pub event_id: String,
    pub alert_id: String,
    pub kind: DispositionKind,
    pub occurred_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub officer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}
