//! The escalation record of docs/contract.md §4, exactly as published.

use serde::{Deserialize, Serialize};

use super::event::{Risk, Stage};
use super::time::{utc_string, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscalationKind {
    Warning,
    Breach,
    Resolved,
}

impl EscalationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationKind::Warning => "warning",
            EscalationKind::Breach => "breach",
            EscalationKind::Resolved => "resolved",
        }
    }
}

/// One escalation. Every field is always present; `due_at` is `null` only for `resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub escalation_id: String,
    pub alert_id: String,
    pub stage: Stage,
    pub level: u8,
    pub kind: EscalationKind,
    pub jurisdiction: String,
    pub risk: Risk,
    #[serde(with = "utc_string")]
    pub deadline: Millis,
    #[serde(with = "utc_string::option")]
    pub due_at: Option<Millis>,
    #[serde(with = "utc_string")]
    pub fired_at: Millis,
    pub notify: Vec<String>,
}

impl Escalation {
    /// `<alert_id>:<stage>:<level>` or `<alert_id>:<stage>:resolved`: stable across redelivery.
    pub fn id_for(alert_id: &str, stage: &Stage, kind: EscalationKind, level: u8) -> String {
        match kind {
            EscalationKind::Resolved => format!("{alert_id}:{stage}:resolved"),
            _ => format!("{alert_id}:{stage}:{level}"),
        }
    }

    /// The §4 JSON, as published and kept in the outbox.
    pub fn to_json(&self) -> String {
        // Sized for a typical escalation (~300 bytes), so the buffer is not grown twice on the way.
        let mut out = Vec::with_capacity(384);
        serde_json::to_writer(&mut out, self).expect("an escalation always serialises");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}
