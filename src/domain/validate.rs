//! Decoding and validation of input messages, in the exact check order of docs/contract.md §5.
//!
//! Pure: bytes, the Kafka key and `now` in; a typed message or the dead-letter reason out.

use serde_json::{Map, Value};
use std::fmt;

use super::event::{Alert, Disposition, DispositionKind, Outcome, Risk};
use super::time::{parse_rfc3339, Millis};

/// Which input topic a message came from; decides its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Alerts,
    Dispositions,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alerts => "alerts",
            Source::Dispositions => "dispositions",
        }
    }
}

/// The limits validation needs from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_clock_skew_ms: i64,
}

/// A message that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Alert(Alert),
    Disposition(Disposition),
}

impl Decoded {
    pub fn alert_id(&self) -> &str {
        match self {
            Decoded::Alert(a) => &a.alert_id,
            Decoded::Disposition(d) => &d.alert_id,
        }
    }

    /// When it happened: `issued_at` or `occurred_at`.
    pub fn event_time(&self) -> Millis {
        match self {
            Decoded::Alert(a) => a.issued_at,
            Decoded::Disposition(d) => d.occurred_at,
        }
    }
}

/// Why a message went to the dead-letter topic (docs/contract.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    TooLarge,
    InvalidJson,
    MissingField(&'static str),
    InvalidField(&'static str),
    UnknownKind,
    TimestampInFuture,
    KeyMismatch,
}

impl Rejection {
    /// The reason without its `:<name>` part: the `reason` metric label.
    pub fn class(self) -> &'static str {
        match self {
            Rejection::TooLarge => "too_large",
            Rejection::InvalidJson => "invalid_json",
            Rejection::MissingField(_) => "missing_field",
            Rejection::InvalidField(_) => "invalid_field",
            Rejection::UnknownKind => "unknown_kind",
            Rejection::TimestampInFuture => "timestamp_in_future",
            Rejection::KeyMismatch => "key_mismatch",
        }
    }
}

/// The full reason, as sent in the `error` header, e.g. `missing_field:issued_at`.
impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::MissingField(name) | Rejection::InvalidField(name) => {
                write!(f, "{}:{}", self.class(), name)
            }
            _ => f.write_str(self.class()),
        }
    }
}

/// Validates one message. `key` and `value` are the raw Kafka key and value.
pub fn decode(
    source: Source,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    now: Millis,
    limits: Limits,
) -> Result<Decoded, Rejection> {
    let value = value.unwrap_or_default();
    if value.len() > limits.max_message_bytes {
        return Err(Rejection::TooLarge);
    }
    let object = match serde_json::from_slice::<Value>(value) {
        Ok(Value::Object(map)) => map,
        _ => return Err(Rejection::InvalidJson),
    };
    let decoded = match source {
        Source::Alerts => Decoded::Alert(alert(&object, now, limits)?),
        Source::Dispositions => Decoded::Disposition(disposition(&object, now, limits)?),
    };
    if key != Some(decoded.alert_id().as_bytes()) {
        return Err(Rejection::KeyMismatch);
    }
    Ok(decoded)
}

fn alert(o: &Map<String, Value>, now: Millis, limits: Limits) -> Result<Alert, Rejection> {
    require(o, &["alert_id", "issued_at", "jurisdiction", "risk"])?;
    let alert_id = alert_id(o)?;
    let issued_at = timestamp(o, "issued_at")?;
    let jurisdiction = string(o, "jurisdiction")
        .filter(|j| !j.is_empty() && j.chars().count() <= 64 && !j.chars().any(char::is_control))
        .ok_or(Rejection::InvalidField("jurisdiction"))?;
    let risk = string(o, "risk")
        .and_then(Risk::parse)
        .ok_or(Rejection::InvalidField("risk"))?;
    let channel = optional_label(o, "channel")?;
    let fraud_type = optional_label(o, "fraud_type")?;
    let amount_cents = match present(o, "amount_cents") {
        None => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|a| *a >= 0)
                .ok_or(Rejection::InvalidField("amount_cents"))?,
        ),
    };
    not_in_future(issued_at, now, limits)?;
    Ok(Alert {
        alert_id: alert_id.to_owned(),
        issued_at,
        jurisdiction: jurisdiction.to_owned(),
        risk,
        channel,
        fraud_type,
        amount_cents,
    })
}

fn disposition(
    o: &Map<String, Value>,
    now: Millis,
    limits: Limits,
) -> Result<Disposition, Rejection> {
    require(o, &["event_id", "alert_id", "kind", "occurred_at"])?;
    // `outcome` is required only by `feedback`; an unknown kind is judged after the fields.
    let kind_name = present(o, "kind").and_then(Value::as_str);
    if kind_name == Some(DispositionKind::Feedback.as_str()) {
        require(o, &["outcome"])?;
    }
    let event_id = string(o, "event_id")
        .filter(|e| !e.is_empty() && e.len() <= 128 && !e.chars().any(char::is_control))
        .ok_or(Rejection::InvalidField("event_id"))?;
    let alert_id = alert_id(o)?;
    let kind_name = kind_name.ok_or(Rejection::InvalidField("kind"))?;
    let occurred_at = timestamp(o, "occurred_at")?;
    let officer_id = optional_label(o, "officer_id")?;
    let outcome = match present(o, "outcome") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(Outcome::parse)
                .ok_or(Rejection::InvalidField("outcome"))?,
        ),
    };
    let kind = DispositionKind::parse(kind_name).ok_or(Rejection::UnknownKind)?;
    not_in_future(occurred_at, now, limits)?;
    Ok(Disposition {
        event_id: event_id.to_owned(),
        alert_id: alert_id.to_owned(),
        kind,
        occurred_at,
        officer_id,
        outcome: if kind == DispositionKind::Feedback {
            outcome
        } else {
            None
        },
    })
}

/// A field counts as present when it exists and is not `null`.
fn present<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    o.get(name).filter(|v| !v.is_null())
}

fn require(o: &Map<String, Value>, names: &[&'static str]) -> Result<(), Rejection> {
    match names.iter().find(|n| present(o, n).is_none()) {
        Some(name) => Err(Rejection::MissingField(name)),
        None => Ok(()),
    }
}

fn string<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    present(o, name).and_then(Value::as_str)
}

fn alert_id(o: &Map<String, Value>) -> Result<&str, Rejection> {
    string(o, "alert_id")
        .filter(|id| is_identifier(id))
        .ok_or(Rejection::InvalidField("alert_id"))
}

/// 1–128 characters of `[A-Za-z0-9._:-]` (docs/contract.md §2).
pub fn is_identifier(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn timestamp(o: &Map<String, Value>, name: &'static str) -> Result<Millis, Rejection> {
    string(o, name)
        .and_then(parse_rfc3339)
        .ok_or(Rejection::InvalidField(name))
}

/// An optional short label (kept in Redis and shown by the API), so bounded and printable.
fn optional_label(o: &Map<String, Value>, name: &'static str) -> Result<Option<String>, Rejection> {
    match present(o, name) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .filter(|s| s.chars().count() <= 64 && !s.chars().any(char::is_control))
            .map(|s| Some(s.to_owned()))
            .ok_or(Rejection::InvalidField(name)),
    }
}

fn not_in_future(at: Millis, now: Millis, limits: Limits) -> Result<(), Rejection> {
    if at > now.saturating_add(limits.max_clock_skew_ms) {
        Err(Rejection::TimestampInFuture)
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
