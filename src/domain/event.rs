//! Validated input messages and the closed vocabularies of docs/contract.md §2–§3.
//!
//! These types hold only what the SLA needs: `subject` and `note` are personal data and are never
//! decoded into them, so they cannot reach logs, Redis or escalations by accident.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

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

/// One SLA stage, by its configured name (docs/contract.md §10.1): 1–32 chars of `[a-z0-9_]`.
/// Cheap to clone: escalations, effects and metrics share one allocation per name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Stage(Arc<str>);

impl Stage {
    /// The stages of docs/contract.md §1, in order: the default stage list.
    pub const DEFAULTS: [&'static str; 3] = ["visit", "meet", "feedback"];

    /// A stage name, if it is one (1–32 chars of `[a-z0-9_]`).
    pub fn new(name: &str) -> Result<Stage, String> {
        let valid = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Stage(name.into()))
        } else {
            Err(format!(
                "{name:?} is not a stage name (1-32 characters of a-z, 0-9 and _)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Stage {
    type Error = String;
    fn try_from(s: String) -> Result<Stage, String> {
        Stage::new(&s)
    }
}

impl From<Stage> for String {
    fn from(s: Stage) -> String {
        s.0.to_string()
    }
}

impl PartialEq<str> for Stage {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Stage {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

    /// Whether this kind closes the alert (docs/contract.md §10.1: `feedback` and `closed`, always).
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
