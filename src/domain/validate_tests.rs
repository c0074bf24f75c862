//! docs/contract.md §2 schemas and §5 reasons, in their order; plus arbitrary input never panics.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

const NOW: Millis = 1_795_000_000_000;
const LIMITS: Limits = Limits {
    max_message_bytes: 1_024,
    max_clock_skew_ms: 300_000,
};

fn alert() -> Value {
    json!({
        "alert_id": "GA-620102-20261122-000123",
        "issued_at": "2026-11-18T19:06:40+08:00",
        "jurisdiction": "620102-GWM",
        "risk": "high",
        "channel": "96110",
        "fraud_type": "impersonating_police",
        "amount_cents": 5000000,
        "subject": { "name": "张*", "phone": "13800001234" }
    })
}

fn disposition() -> Value {
    json!({
        "event_id": "app-7f3c-0001",
        "alert_id": "GA-620102-20261122-000123",
        "kind": "feedback",
        "occurred_at": "2026-11-18T11:06:40Z",
        "officer_id": "620102-0457",
        "outcome": "dissuaded",
        "note": "free text, never logged"
    })
}

fn check(source: Source, key: Option<&str>, v: &Value) -> Result<Decoded, String> {
    let bytes = v.to_string();
    decode(
        source,
        key.map(str::as_bytes),
        Some(bytes.as_bytes()),
        NOW,
        LIMITS,
    )
    .map_err(|r| r.to_string())
}

fn alert_with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Result<Decoded, String> {
    let mut v = alert();
    f(v.as_object_mut().unwrap());
    check(Source::Alerts, Some("GA-620102-20261122-000123"), &v)
}

fn disposition_with(
    f: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<Decoded, String> {
    let mut v = disposition();
    f(v.as_object_mut().unwrap());
    check(Source::Dispositions, Some("GA-620102-20261122-000123"), &v)
}

#[test]
fn the_contract_examples_are_valid_and_personal_data_is_dropped() {
    let Ok(Decoded::Alert(a)) = alert_with(|_| {}) else {
        panic!("valid alert")
    };
    assert_eq!(a.issued_at, NOW, "+08:00 is converted to UTC milliseconds");
    assert_eq!((a.risk, a.amount_cents), (Risk::High, Some(5_000_000)));
    assert!(
        !format!("{a:?}").contains("13800001234"),
        "subject is not kept"
    );
    let Ok(Decoded::Disposition(d)) = disposition_with(|_| {}) else {
        panic!("valid disposition")
    };
    assert_eq!(
        (d.kind, d.outcome, d.occurred_at),
        (DispositionKind::Feedback, Some(Outcome::Dissuaded), NOW)
    );
    assert!(
        !format!("{d:?}").contains("never logged"),
        "note is not kept"
    );
}

#[test]
fn unknown_fields_are_ignored() {
    assert!(alert_with(|o| {
        o.insert("extra".into(), json!({"deep": [1, 2]}));
    })
    .is_ok());
}

#[test]
fn too_large_comes_first() {
    let big = "x".repeat(2_000);
    let bytes = format!("{{not json {big}");
    let r = decode(Source::Alerts, None, Some(bytes.as_bytes()), NOW, LIMITS);
    assert_eq!(r.unwrap_err().to_string(), "too_large");
    let exact = vec![b' '; LIMITS.max_message_bytes];
    let r = decode(Source::Alerts, None, Some(&exact), NOW, LIMITS);
    assert_eq!(
        r.unwrap_err(),
        Rejection::InvalidJson,
        "a value of exactly the limit is not too large"
    );
}

#[test]
fn invalid_json_for_bad_bytes_non_objects_and_missing_values() {
    for bytes in [&b"{"[..], b"[1,2]", b"\"text\"", b"null", b"\xff\xfe", b""] {
        let r = decode(Source::Dispositions, Some(b"A"), Some(bytes), NOW, LIMITS);
        assert_eq!(r.unwrap_err().to_string(), "invalid_json", "{bytes:?}");
    }
    assert_eq!(
        decode(Source::Alerts, Some(b"A"), None, NOW, LIMITS).unwrap_err(),
        Rejection::InvalidJson
    );
}

#[test]
fn missing_field_names_the_first_required_field_missing() {
    for field in ["alert_id", "issued_at", "jurisdiction", "risk"] {
        assert_eq!(
            alert_with(|o| drop(o.remove(field))).unwrap_err(),
            format!("missing_field:{field}")
        );
        assert_eq!(
            alert_with(|o| drop(o.insert(field.into(), Value::Null))).unwrap_err(),
            format!("missing_field:{field}"),
            "null counts as missing"
        );
    }
    for field in ["event_id", "alert_id", "kind", "occurred_at"] {
        assert_eq!(
            disposition_with(|o| drop(o.remove(field))).unwrap_err(),
            format!("missing_field:{field}")
        );
    }
    assert_eq!(
        disposition_with(|o| drop(o.remove("outcome"))).unwrap_err(),
        "missing_field:outcome"
    );
    assert!(
        disposition_with(|o| {
            o.remove("outcome");
            o.insert("kind".into(), json!("met"));
        })
        .is_ok(),
        "outcome is required by feedback only"
    );
    let met = disposition_with(|o| {
        o.insert("outcome".into(), json!("not one of the five"));
        o.insert("kind".into(), json!("met"));
    });
    assert!(met.is_ok(), "and judged on feedback only: {met:?}");
}

#[test]
fn invalid_field_names_the_field() {
    let cases: Vec<(&str, Value)> = vec![
        ("alert_id", json!("has space")),
        ("alert_id", json!("x".repeat(129))),
        ("alert_id", json!("")),
        ("alert_id", json!(42)),
        ("issued_at", json!("2026-11-22 10:00:00")),
        ("issued_at", json!("2026-11-22T10:00:00")),
        ("issued_at", json!(1795000000)),
        ("jurisdiction", json!("")),
        ("jurisdiction", json!("j".repeat(65))),
        ("risk", json!("extreme")),
        ("risk", json!("HIGH")),
    ];
    for (field, value) in cases {
        let got = alert_with(|o| drop(o.insert(field.into(), value.clone())));
        assert_eq!(
            got.unwrap_err(),
            format!("invalid_field:{field}"),
            "{field} = {value}"
        );
    }
    assert_eq!(
        disposition_with(|o| drop(o.insert("outcome".into(), json!("maybe")))).unwrap_err(),
        "invalid_field:outcome"
    );
    assert_eq!(
        disposition_with(|o| drop(o.insert("occurred_at".into(), json!("yesterday")))).unwrap_err(),
        "invalid_field:occurred_at"
    );
}

/// An optional field never costs an alert its clocks: a value of another type is taken as
/// absent, a long label is cut, a control character becomes a space.
#[test]
fn optional_fields_that_do_not_fit_are_read_leniently_not_refused() {
    let read = |field: &str, value: Value| match alert_with(|o| drop(o.insert(field.into(), value)))
    {
        Ok(Decoded::Alert(a)) => a,
        other => panic!("{field}: {other:?}"),
    };
    assert_eq!(
        read("channel", json!(96110)).channel.as_deref(),
        Some("96110")
    );
    assert_eq!(read("channel", json!(true)).channel, None);
    assert_eq!(read("channel", json!("  ")).channel, None);
    assert_eq!(read("fraud_type", json!({"code": 3})).fraud_type, None);
    let long = read("fraud_type", json!("冒".repeat(70)))
        .fraud_type
        .unwrap();
    assert_eq!(long.chars().count(), LABEL_CHARS);
    assert_eq!(
        read("fraud_type", json!("a\nb\u{1f}c"))
            .fraud_type
            .as_deref(),
        Some("a b c")
    );
    assert_eq!(
        read("amount_cents", json!(5_000_000.0)).amount_cents,
        Some(5_000_000)
    );
    for odd in [json!("lots"), json!(12.5), json!(-1), json!([1])] {
        assert_eq!(
            read("amount_cents", odd.clone()).amount_cents,
            None,
            "{odd}"
        );
    }
    match disposition_with(|o| drop(o.insert("officer_id".into(), json!(457)))) {
        Ok(Decoded::Disposition(d)) => assert_eq!(d.officer_id.as_deref(), Some("457")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn alert_ids_of_128_allowed_characters_are_valid() {
    let id = format!("{}:._-", "a1B".repeat(41));
    assert_eq!(id.len(), 127);
    let mut v = alert();
    v["alert_id"] = json!(id);
    assert!(check(Source::Alerts, Some(&id), &v).is_ok());
    let id = format!("{id}x");
    v["alert_id"] = json!(id);
    assert!(
        check(Source::Alerts, Some(&id), &v).is_ok(),
        "128 characters"
    );
}

#[test]
fn unknown_kind_comes_after_the_field_checks() {
    assert_eq!(
        disposition_with(|o| drop(o.insert("kind".into(), json!("teleported")))).unwrap_err(),
        "unknown_kind"
    );
    // A bad field is reported before the unknown kind.
    assert_eq!(
        disposition_with(|o| {
            o.insert("kind".into(), json!("teleported"));
            o.insert("occurred_at".into(), json!("soon"));
        })
        .unwrap_err(),
        "invalid_field:occurred_at"
    );
}

#[test]
fn timestamp_in_future_beyond_the_allowed_skew() {
    let at = |ms: Millis| crate::domain::time::format_utc(ms);
    assert!(alert_with(|o| drop(o.insert("issued_at".into(), json!(at(NOW + 300_000))))).is_ok());
    assert_eq!(
        alert_with(|o| drop(o.insert("issued_at".into(), json!(at(NOW + 300_001))))).unwrap_err(),
        "timestamp_in_future"
    );
    assert_eq!(
        disposition_with(|o| drop(o.insert("occurred_at".into(), json!(at(NOW + 3_600_000)))))
            .unwrap_err(),
        "timestamp_in_future"
    );
}

#[test]
fn key_mismatch_when_the_key_is_absent_or_different() {
    let v = alert();
    assert_eq!(check(Source::Alerts, None, &v).unwrap_err(), "key_mismatch");
    assert_eq!(
        check(Source::Alerts, Some("GA-OTHER"), &v).unwrap_err(),
        "key_mismatch"
    );
    // Key mismatch is the last check: a future timestamp with a wrong key is reported as such.
    let mut future = alert();
    future["issued_at"] = json!("2099-01-01T00:00:00Z");
    assert_eq!(
        check(Source::Alerts, None, &future).unwrap_err(),
        "timestamp_in_future"
    );
}

#[test]
fn the_reason_class_drops_the_field_name() {
    assert_eq!(Rejection::MissingField("risk").class(), "missing_field");
    assert_eq!(Rejection::InvalidField("risk").class(), "invalid_field");
    assert_eq!(Rejection::KeyMismatch.class(), "key_mismatch");
}

const REASONS: [&str; 7] = [
    "too_large",
    "invalid_json",
    "missing_field:",
    "invalid_field:",
    "unknown_kind",
    "timestamp_in_future",
    "key_mismatch",
];

fn near_valid() -> impl Strategy<Value = (bool, Value)> {
    let field = prop::sample::select(vec![
        "alert_id",
        "issued_at",
        "jurisdiction",
        "risk",
        "event_id",
        "kind",
        "occurred_at",
        "outcome",
        "amount_cents",
    ]);
    let value = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        ".{0,140}".prop_map(Value::from),
        Just(json!("2026-11-22T10:00:00+08:00")),
        Just(json!("medium")),
        Just(json!("met")),
        Just(json!([])),
    ];
    (
        any::<bool>(),
        prop::collection::vec((field, value, any::<bool>()), 0..4),
    )
        .prop_map(|(is_alert, edits)| {
            let mut v = if is_alert { alert() } else { disposition() };
            let o = v.as_object_mut().unwrap();
            for (field, value, remove) in edits {
                if remove {
                    o.remove(field);
                } else {
                    o.insert(field.into(), value);
                }
            }
            (is_alert, v)
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_get_a_contract_reason(
        bytes in prop::collection::vec(any::<u8>(), 0..2_048),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        alerts in any::<bool>(),
    ) {
        let source = if alerts { Source::Alerts } else { Source::Dispositions };
        if let Err(r) = decode(source, key.as_deref(), Some(&bytes), NOW, LIMITS) {
            let reason = r.to_string();
            prop_assert!(REASONS.iter().any(|p| reason.starts_with(p)), "{}", reason);
        }
    }

    #[test]
    fn near_valid_messages_are_accepted_or_get_a_contract_reason((is_alert, v) in near_valid()) {
        let source = if is_alert { Source::Alerts } else { Source::Dispositions };
        let key = v.get("alert_id").and_then(Value::as_str).map(str::to_owned);
        match check(source, key.as_deref(), &v) {
            Ok(d) => prop_assert_eq!(Some(d.alert_id()), key.as_deref()),
            Err(reason) => prop_assert!(REASONS.iter().any(|p| reason.starts_with(p)), "{}", reason),
        }
    }
}

/// What `serde_json::Value::as_*` gives for a member, as a [`Scalar`]: the reading of a
/// message before [`Fields`] replaced the value tree.
fn scalar_of(v: &Value) -> Scalar<'static> {
    match v {
        Value::Null => Scalar::Null,
        Value::String(s) => Scalar::Str(s.clone().into()),
        _ => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            })
            .map_or(Scalar::Other, Scalar::Int),
    }
}

/// A JSON object's text built from raw members: names (some escaped, some repeated, some
/// unknown) and values, the edge cases of a parser among them.
fn raw_object() -> impl Strategy<Value = Vec<u8>> {
    let name = prop::sample::select(vec![
        r#""alert_id""#,
        r#""alert\u005fid""#,
        r#""risk""#,
        r#""amount_cents""#,
        r#""kind""#,
        r#""subject""#,
        r#""note""#,
        r#""x\ud800""#,
        r#""""#,
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "null",
            "true",
            "0",
            "-0",
            "-1",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "1.5",
            "1e400",
            "-1e400",
            r#""high""#,
            r#""h\u0069gh""#,
            r#""\ud800""#,
            r#""\ud83d\ude00""#,
            r#""tab	inside""#,
            r#"{"name": "张*", "phone": ["1", {"a": null}]}"#,
            "[]",
            "[1, [2, [3]]]",
            "{",
            "nul",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        (1usize..200)
            .prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        Just(b"\"\xff\"".to_vec()),
    ];
    prop::collection::vec((name, value), 0..6).prop_map(|members| {
        let mut text = b"{".to_vec();
        for (i, (name, value)) in members.into_iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            text.extend_from_slice(name.as_bytes());
            text.push(b':');
            text.extend_from_slice(&value);
        }
        text.push(b'}');
        text
    })
}

proptest! {
    #[test]
    fn fields_read_a_message_as_a_json_value_tree_does(text in raw_object()) {
        let tree = serde_json::from_slice::<Value>(&text);
        let fields = serde_json::from_slice::<Fields<'_>>(&text);
        prop_assert_eq!(tree.is_ok(), fields.is_ok(), "{}", String::from_utf8_lossy(&text));
        if let (Ok(tree), Ok(fields)) = (tree, fields) {
            for name in FIELDS {
                let expected = tree.get(name).map(scalar_of);
                prop_assert_eq!(expected.as_ref(), fields.get(name), "{}", name);
            }
        }
    }
}

#[test]
fn fields_refuse_what_is_not_one_json_object() {
    for text in [
        &b"[1]"[..],
        b"\"text\"",
        b"1",
        b"{} {}",
        b"{\"a\":1,}",
        b"{\"a\" 1}",
    ] {
        assert!(
            serde_json::from_slice::<Fields<'_>>(text).is_err(),
            "{text:?}"
        );
    }
}

#[test]
fn every_class_is_listed_once_in_the_contract_s_order() {
    let all = [
        Rejection::TooLarge,
        Rejection::InvalidJson,
        Rejection::MissingField("x"),
        Rejection::InvalidField("x"),
        Rejection::UnknownKind,
        Rejection::TimestampInFuture,
        Rejection::KeyMismatch,
    ];
    assert_eq!(all.map(Rejection::class), Rejection::CLASSES);
}
