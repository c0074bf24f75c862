//! The escalation record of docs/contract.md §4, exactly as published.

use serde::{Deserialize, Serialize};

use super::event::{Risk, Stage};
use super::time::{push_utc_json, utc_string, Millis};

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

    /// The §4 JSON, as published and kept in the outbox: the derived `Serialize`'s bytes
    /// (a test holds it to them), written field by field. Through serde, escaping the constant
    /// field names and the per-field machinery made this 7% of a drain's processor time.
    pub fn to_json(&self) -> String {
        // Sized for a typical escalation (~300 bytes), so the buffer is not grown on the way.
        let mut out = String::with_capacity(384);
        out.push_str("{\"escalation_id\":");
        push_json_str(&mut out, &self.escalation_id);
        out.push_str(",\"alert_id\":");
        push_json_str(&mut out, &self.alert_id);
        out.push_str(",\"stage\":");
        push_json_str(&mut out, self.stage.as_str());
        out.push_str(",\"level\":");
        push_digits(&mut out, self.level);
        out.push_str(",\"kind\":\"");
        out.push_str(self.kind.as_str());
        out.push_str("\",\"jurisdiction\":");
        push_json_str(&mut out, &self.jurisdiction);
        out.push_str(",\"risk\":\"");
        out.push_str(self.risk.as_str());
        out.push_str("\",\"deadline\":");
        push_utc_json(&mut out, self.deadline);
        out.push_str(",\"due_at\":");
        match self.due_at {
            Some(due) => push_utc_json(&mut out, due),
            None => out.push_str("null"),
        }
        out.push_str(",\"fired_at\":");
        push_utc_json(&mut out, self.fired_at);
        out.push_str(",\"notify\":[");
        for (i, to) in self.notify.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, to);
        }
        out.push_str("]}");
        out
    }
}

/// Appends `n` in decimal, without formatting machinery or a `String`.
fn push_digits(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

/// Appends `s` as a JSON string: as it is when nothing in it needs escaping (ids, stations and
/// roles, as a rule), else escaped by serde_json.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(&serde_json::to_string(s).expect("a string always serialises"));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escalation(text: &str, kind: EscalationKind, level: u8, at: Millis) -> Escalation {
        Escalation {
            escalation_id: Escalation::id_for(text, &Stage::new("visit").unwrap(), kind, level),
            alert_id: text.to_owned(),
            stage: Stage::new("feedback_2").unwrap(),
            level,
            kind,
            jurisdiction: format!("110101-{text}"),
            risk: Risk::Medium,
            deadline: at,
            due_at: (kind != EscalationKind::Resolved).then_some(at + 1),
            fired_at: at + 2,
            notify: vec![text.to_owned(), "duty_desk".to_owned()],
        }
    }

    #[test]
    fn the_json_is_the_derived_serializations_byte_for_byte() {
        // Each character JSON escapes alone in its text, so none hides another's miss.
        let texts = [
            "GA-110105-20261206-000002-2t9q",
            "",
            "a \" quote",
            "a \\ backslash",
            "\u{0}",
            "a \n new line",
            "unit separator \u{1f}",
            "slash / and delete \u{7f}",
            "上门 visit ☎ \u{10ffff}",
        ];
        // Years the digit-by-digit path prints, and the ones chrono prints (before year 0).
        let times = [
            1_796_538_116_152,
            0,
            -62_167_219_200_001,
            253_402_300_799_999,
        ];
        let kinds = [
            EscalationKind::Warning,
            EscalationKind::Breach,
            EscalationKind::Resolved,
        ];
        let mut checked = 0;
        for text in texts {
            for at in times {
                for kind in kinds {
                    for level in [0, 9, 10, 255] {
                        let e = escalation(text, kind, level, at);
                        assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap(), "{e:?}");
                        checked += 1;
                    }
                }
            }
        }
        let mut quiet = escalation("A-1", EscalationKind::Breach, 1, times[0]);
        quiet.notify.clear();
        assert_eq!(quiet.to_json(), serde_json::to_string(&quiet).unwrap());
        let back: Escalation = serde_json::from_str(&quiet.to_json()).unwrap();
        assert_eq!(back, quiet);
        assert_eq!(checked, 9 * 4 * 3 * 4);
    }
}
