//! Decoding and validation of input messages, in the exact check order of docs/contract.md §5.
//!
//! Pure: bytes, the Kafka key and `now` in; a typed message or the dead-letter reason out.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
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
    /// Every [`Rejection::class`], in §5's order.
    pub const CLASSES: [&'static str; 7] = [
        "too_large",
        "invalid_json",
        "missing_field",
        "invalid_field",
        "unknown_kind",
        "timestamp_in_future",
        "key_mismatch",
    ];

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
    let Ok(object) = serde_json::from_slice::<Fields<'_>>(value) else {
        return Err(Rejection::InvalidJson);
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

fn alert(o: &Fields<'_>, now: Millis, limits: Limits) -> Result<Alert, Rejection> {
    require(o, &["alert_id", "issued_at", "jurisdiction", "risk"])?;
    let alert_id = alert_id(o)?;
    let issued_at = timestamp(o, "issued_at")?;
    let jurisdiction = string(o, "jurisdiction")
        .filter(|j| !j.is_empty() && j.chars().count() <= 64 && !j.chars().any(char::is_control))
        .ok_or(Rejection::InvalidField("jurisdiction"))?;
    let risk = string(o, "risk")
        .and_then(Risk::parse)
        .ok_or(Rejection::InvalidField("risk"))?;
    let channel = optional_label(o, "channel");
    let fraud_type = optional_label(o, "fraud_type");
    let amount_cents = match present(o, "amount_cents") {
        Some(Scalar::Int(a)) if *a >= 0 => Some(*a),
        _ => None,
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

fn disposition(o: &Fields<'_>, now: Millis, limits: Limits) -> Result<Disposition, Rejection> {
    require(o, &["event_id", "alert_id", "kind", "occurred_at"])?;
    // `outcome` is `feedback`'s alone: required by it, and not judged on any other kind (the
    // visit an officer reports is not refused for a field it does not use). An unknown kind is
    // judged after the fields.
    let kind_name = string(o, "kind");
    let feedback = kind_name == Some(DispositionKind::Feedback.as_str());
    if feedback {
        require(o, &["outcome"])?;
    }
    let event_id = string(o, "event_id")
        .filter(|e| !e.is_empty() && e.len() <= 128 && !e.chars().any(char::is_control))
        .ok_or(Rejection::InvalidField("event_id"))?;
    let alert_id = alert_id(o)?;
    let kind_name = kind_name.ok_or(Rejection::InvalidField("kind"))?;
    let occurred_at = timestamp(o, "occurred_at")?;
    let officer_id = optional_label(o, "officer_id");
    let outcome = match present(o, "outcome").filter(|_| feedback) {
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
        outcome,
    })
}

/// A field counts as present when it exists and is not `null`.
fn present<'a>(o: &'a Fields<'_>, name: &str) -> Option<&'a Scalar<'a>> {
    o.get(name).filter(|v| **v != Scalar::Null)
}

fn require(o: &Fields<'_>, names: &[&'static str]) -> Result<(), Rejection> {
    match names.iter().find(|n| present(o, n).is_none()) {
        Some(name) => Err(Rejection::MissingField(name)),
        None => Ok(()),
    }
}

fn string<'a>(o: &'a Fields<'_>, name: &str) -> Option<&'a str> {
    present(o, name).and_then(Scalar::as_str)
}

fn alert_id<'a>(o: &'a Fields<'_>) -> Result<&'a str, Rejection> {
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

fn timestamp(o: &Fields<'_>, name: &'static str) -> Result<Millis, Rejection> {
    string(o, name)
        .and_then(parse_rfc3339)
        .ok_or(Rejection::InvalidField(name))
}

/// An optional short label (kept in Redis and shown by the API), so bounded and printable: its
/// first [`LABEL_CHARS`] characters, a control character as a space, an integer in decimal
/// (`"channel": 96110`). Any other value is taken as absent. The message is not refused for
/// it: a label is shown, never decided on, and an alert refused for one would run no clock.
fn optional_label(o: &Fields<'_>, name: &str) -> Option<String> {
    let label: String = match present(o, name)? {
        // As it is, the usual case: a copy.
        Scalar::Str(s) if s.len() <= LABEL_CHARS && !s.chars().any(char::is_control) => {
            s.clone().into_owned()
        }
        Scalar::Str(s) => s
            .chars()
            .take(LABEL_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Null | Scalar::Other => return None,
    };
    Some(label).filter(|l| !l.trim().is_empty())
}

/// How many characters of an optional label are kept.
pub const LABEL_CHARS: usize = 64;

fn not_in_future(at: Millis, now: Millis, limits: Limits) -> Result<(), Rejection> {
    if at > now.saturating_add(limits.max_clock_skew_ms) {
        Err(Rejection::TimestampInFuture)
    } else {
        Ok(())
    }
}

/// The fields of either schema, the only ones validation reads.
const FIELDS: [&str; 12] = [
    "alert_id",
    "issued_at",
    "jurisdiction",
    "risk",
    "channel",
    "fraud_type",
    "amount_cents",
    "event_id",
    "kind",
    "occurred_at",
    "officer_id",
    "outcome",
];

/// A message's top-level object, as validation reads it: the value of each of [`FIELDS`] found
/// (the last one, if a name repeats), every other member checked as JSON and not kept. It
/// accepts what a JSON value tree would, without building one: no allocation for a member's
/// name, a string without escapes, or `subject` and `note` (personal data, never held).
#[derive(Debug, Default)]
struct Fields<'a>([Option<Scalar<'a>>; FIELDS.len()]);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&Scalar<'a>> {
        let i = FIELDS.iter().position(|f| *f == name)?;
        self.0[i].as_ref()
    }
}

/// A field's value: what validation asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    /// An integer that fits an `i64`, also when written as a number with a zero fraction
    /// (`5000000.0`).
    Int(i64),
    /// A boolean, a fraction, a larger integer, an array or an object.
    Other,
}

impl Scalar<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Fields::default();
                while let Some(Name(slot)) = map.next_key()? {
                    match slot {
                        Some(i) => fields.0[i] = Some(map.next_value()?),
                        None => map.next_value::<Skip>().map(drop)?,
                    }
                }
                Ok(fields)
            }
        }
        d.deserialize_map(Object)
    }
}

/// A member's name: its slot in [`FIELDS`], if it has one.
struct Name(Option<usize>);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name, E> {
                Ok(Name(FIELDS.iter().position(|f| *f == name)))
            }
        }
        d.deserialize_identifier(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                // The range check is on the float, before the cast, which saturates.
                let whole = v.fract() == 0.0 && v.abs() < 9.0e18;
                Ok(if whole {
                    Scalar::Int(v as i64)
                } else {
                    Scalar::Other
                })
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
                Skip.visit_seq(seq).map(|()| Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
                Skip.visit_map(map).map(|()| Scalar::Other)
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// Any JSON value, read in full and dropped. Not `serde::de::IgnoredAny`, which serde_json
/// skips without checking it (a lone surrogate escape, a number out of range, nesting deeper
/// than the parser allows): a message is invalid JSON here exactly when it is anywhere.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip).map(|()| Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
