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
///
/// Digit by digit for the years the format has four digits for, as chrono prints them
/// otherwise: an escalation carries three timestamps, and chrono's formatter (through `fmt`)
/// took ~5% of the processor's time in a burst of 90,000 escalations.
pub fn format_utc(ms: Millis) -> String {
    with_utc(ms, str::to_owned)
}

/// [`format_utc`]'s text handed to `f`, on the stack for the years 0–9999 (the escalations'
/// JSON writes three of them without allocating), else as chrono prints it.
fn with_utc<R>(ms: Millis, f: impl FnOnce(&str) -> R) -> R {
    match utc_digits(ms) {
        Some(digits) => f(std::str::from_utf8(&digits).expect("ASCII digits")),
        None => f(&match Utc.timestamp_millis_opt(ms).single() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => String::from("1970-01-01T00:00:00.000Z"),
        }),
    }
}

/// [`format_utc`]'s text for the years 0–9999.
fn utc_digits(ms: Millis) -> Option<[u8; 24]> {
    let (days, in_day) = (ms.div_euclid(MS_A_DAY), ms.rem_euclid(MS_A_DAY));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: i64| {
        for k in (at..at + width).rev() {
            out[k] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3_600_000);
    put(14, 2, in_day / 60_000 % 60);
    put(17, 2, in_day / 1000 % 60);
    put(20, 3, in_day % 1000);
    Some(out)
}

/// Appends [`format_utc`]'s text in JSON quotes.
pub(crate) fn push_utc_json(out: &mut String, ms: Millis) {
    out.push('"');
    with_utc(ms, |text| out.push_str(text));
    out.push('"');
}

/// Serialises a timestamp as [`format_utc`] prints it.
fn serialize_utc<S: serde::Serializer>(ms: Millis, s: S) -> Result<S::Ok, S::Error> {
    with_utc(ms, |text| s.serialize_str(text))
}

const MS_A_DAY: Millis = 86_400_000;

/// Year, month, day of the proleptic Gregorian calendar `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Serde helpers that store `Millis` as the contract's UTC string.
pub mod utc_string {
    use super::{parse_rfc3339, serialize_utc, Millis};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        serialize_utc(*ms, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).ok_or_else(|| D::Error::custom("not an RFC 3339 timestamp"))
    }

    /// The same for `Option<Millis>`, `null` when absent.
    pub mod option {
        use super::super::{parse_rfc3339, serialize_utc, Millis};
        use serde::{de::Error, Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => serialize_utc(*ms, s),
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

    fn chrono_s(ms: Millis) -> String {
        match Utc.timestamp_millis_opt(ms).single() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => String::from("1970-01-01T00:00:00.000Z"),
        }
    }

    #[test]
    fn utc_is_printed_as_chrono_prints_it_at_the_edges() {
        for ms in [
            0,
            -1,
            951_782_400_000,       // 2000-02-29
            4_107_456_000_000 - 1, // 2100-02-28T23:59:59.999
            -62_167_219_200_000,   // 0000-01-01
            -62_167_219_200_001,   // the year before: chrono's form
            253_402_300_799_999,   // 9999-12-31T23:59:59.999
            253_402_300_800_000,   // 10000: chrono's form
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(format_utc(ms), chrono_s(ms), "{ms}");
        }
    }

    proptest::proptest! {
        #[test]
        fn utc_is_printed_as_chrono_prints_it(ms in -62_167_219_200_000i64..253_402_300_800_000) {
            proptest::prop_assert_eq!(format_utc(ms), chrono_s(ms));
        }
    }

    #[test]
    fn a_timestamp_without_offset_is_rejected() {
        assert_eq!(parse_rfc3339("2026-11-22T10:00:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
