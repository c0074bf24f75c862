//! Timestamps as UTC milliseconds: compact in Redis, exact in comparisons, printed per docs/contract.md §4.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Parses an RFC 3339 timestamp that carries an offset (`Z` or `±hh:mm`).
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Formats as UTC with milliseconds, e.g. `2026-11-22T03:00:00.000Z`.
pub fn format_utc(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Serde helpers that store `Millis` as the contract's UTC string.
pub mod utc_string {
    use super::{format_utc, parse_rfc3339, Millis};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_utc(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).ok_or_else(|| D::Error::custom("not an RFC 3339 timestamp"))
    }

    /// The same for `Option<Millis>`, `null` when absent.
    pub mod option {
        use super::super::{format_utc, parse_rfc3339, Millis};
        use serde::{de::Error, Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&format_utc(*ms)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| {
                    parse_rfc3339(&s).ok_or_else(|| D::Error::custom("not an RFC 3339 timestamp"))
                })
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_normalised_to_utc_with_millis() {
        let ms = parse_rfc3339("2026-11-22T10:00:00+08:00").unwrap();
        assert_eq!(format_utc(ms), "2026-11-22T02:00:00.000Z");
        assert_eq!(format_utc(ms + 12), "2026-11-22T02:00:00.012Z");
    }

    #[test]
    fn a_timestamp_without_offset_is_rejected() {
        assert_eq!(parse_rfc3339("2026-11-22T10:00:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
