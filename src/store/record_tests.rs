use super::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9_-]{1,24}", "\\PC{0,12}"]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![1_700_000_000_000i64..1_900_000_000_000, any::<i64>()]
}

fn stage() -> impl Strategy<Value = Stage> {
    "[a-z0-9_]{1,32}".prop_map(|s| Stage::new(&s).unwrap())
}

fn alert() -> impl Strategy<Value = Alert> {
    (
        prop_oneof![Just("KEY".to_owned()), text()],
        time(),
        text(),
        prop::sample::select(Risk::ALL.to_vec()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(any::<i64>()),
    )
        .prop_map(
            |(alert_id, issued_at, jurisdiction, risk, channel, fraud_type, amount_cents)| Alert {
                alert_id,
                issued_at,
                jurisdiction,
                risk,
                channel,
                fraud_type,
                amount_cents,
            },
        )
}

fn clock() -> impl Strategy<Value = StageClock> {
    let status = prop_oneof![
        Just(StageStatus::Open),
        Just(StageStatus::Cancelled),
        (time(), any::<bool>()).prop_map(|(at, on_time)| StageStatus::Satisfied { at, on_time }),
    ];
    (time(), status, any::<bool>(), any::<u8>(), any::<bool>()).prop_map(
        |(deadline, status, warned, level, resolved)| StageClock {
            deadline,
            status,
            warned,
            level,
            resolved,
        },
    )
}

fn disposition() -> impl Strategy<Value = Disposition> {
    (
        text(),
        prop_oneof![Just("KEY".to_owned()), text()],
        prop::sample::select(DispositionKind::ALL.to_vec()),
        time(),
        prop::option::of(text()),
        prop::option::of(prop::sample::select(Outcome::ALL.to_vec())),
    )
        .prop_map(
            |(event_id, alert_id, kind, occurred_at, officer_id, outcome)| Disposition {
                event_id,
                alert_id,
                kind,
                occurred_at,
                officer_id,
                outcome,
            },
        )
}

fn entry() -> impl Strategy<Value = TimelineEntry> {
    (
        time(),
        text(),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(prop::sample::select(Outcome::ALL.to_vec())),
        prop::option::of(stage()),
        prop::option::of(any::<u8>()),
    )
        .prop_map(
            |(at, what, event_id, officer_id, outcome, stage, level)| TimelineEntry {
                at,
                what,
                event_id,
                officer_id,
                outcome,
                stage,
                level,
            },
        )
}

fn state() -> impl Strategy<Value = AlertState> {
    (
        prop::option::of(alert()),
        prop::option::of(prop_oneof!["[0-9a-f]{16}", text()]),
        prop::collection::vec(clock(), 0..6),
        prop::option::of(time()),
        prop::collection::vec(text(), 0..4),
        prop::collection::vec(disposition(), 0..3),
        prop::collection::vec(entry(), 0..6),
    )
        .prop_map(
            |(alert, policy_version, stages, closed_at, events, pending, timeline)| AlertState {
                alert,
                policy_version,
                stages,
                closed_at,
                events,
                pending,
                timeline,
            },
        )
}

proptest! {
    #[test]
    fn every_state_round_trips(s in state()) {
        let bytes = encode("KEY", &s);
        prop_assert_eq!(decode("KEY", &bytes), Ok(s));
    }

    #[test]
    fn a_cut_or_extended_record_is_an_error_not_a_panic(s in state(), extra in any::<u8>()) {
        let bytes = encode("KEY", &s);
        for n in 0..bytes.len() {
            prop_assert!(decode("KEY", &bytes[..n]).is_err(), "prefix of {} bytes", n);
        }
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert!(decode("KEY", &longer).is_err());
    }
}

/// An open alert as the processor stores it: an alert, its policy, three stages, a timeline.
fn typical() -> AlertState {
    let visit = Stage::new("visit").unwrap();
    let at = 1_795_000_000_000;
    AlertState {
        alert: Some(Alert {
            alert_id: "GA-330106-20261202-001065-akzz".into(),
            issued_at: at,
            jurisdiction: "330106".into(),
            risk: Risk::High,
            channel: Some("phone".into()),
            fraud_type: Some("impersonation".into()),
            amount_cents: Some(5_000_000),
        }),
        policy_version: Some("0123456789abcdef".into()),
        stages: [1, 2, 6]
            .map(|h| StageClock {
                deadline: at + h * 3_600_000,
                status: StageStatus::Open,
                warned: false,
                level: 0,
                resolved: false,
            })
            .to_vec(),
        closed_at: None,
        events: vec!["ev-1".into()],
        pending: Vec::new(),
        timeline: vec![
            TimelineEntry {
                at,
                what: "alert".into(),
                event_id: None,
                officer_id: None,
                outcome: None,
                stage: None,
                level: None,
            },
            TimelineEntry {
                at: at + 60_000,
                what: "acknowledged".into(),
                event_id: Some("ev-1".into()),
                officer_id: Some("P-0042".into()),
                outcome: None,
                stage: Some(visit),
                level: None,
            },
        ],
    }
}

#[test]
fn a_typical_open_alert_takes_a_fifth_of_its_json() {
    let s = typical();
    let id = "GA-330106-20261202-001065-akzz";
    let bytes = encode(id, &s);
    let json = serde_json::to_vec(&s).unwrap();
    assert!(
        stored_len(&bytes) * 5 <= json.len(),
        "{} bytes as stored against {} of JSON",
        stored_len(&bytes),
        json.len()
    );
    assert!(
        !bytes.windows(id.len()).any(|w| w == id.as_bytes()),
        "the alert id is the key's, not repeated in the record"
    );
    assert_eq!(decode(id, &bytes), Ok(s));
}

#[test]
fn the_strings_alerts_repeat_come_first_as_names_for_the_dictionary() {
    let bytes = encode("GA-330106-20261202-001065-akzz", &typical());
    let end = bytes.iter().position(|&b| b == NAMES_END).unwrap();
    assert_eq!(bytes[0], V2);
    assert_eq!(
        bytes[1..end].split(|&b| b == NAME_SEP).collect::<Vec<_>>(),
        [
            &b"330106"[..],
            b"phone",
            b"impersonation",
            b"0123456789abcdef"
        ],
        "station, channel, fraud type and policy, in the order the body takes them"
    );
    // Names replaced by codes of up to 4 characters, at most 95 bytes: version 1 took 119.
    assert_eq!(stored_len(&bytes), 95);

    // Short strings and strings with control characters stay inline; a missing or an extra
    // name is an error.
    let mut s = typical();
    let a = s.alert.as_mut().unwrap();
    a.jurisdiction = "620".into();
    a.channel = Some("a\x1fb\x1ec".into());
    a.fraud_type = None;
    s.policy_version = None;
    let bytes = encode("K", &s);
    assert_eq!(&bytes[..2], [V2, NAMES_END], "no names");
    assert_eq!(decode("K", &bytes), Ok(s));
    let named = encode("K", &typical());
    let end = named.iter().position(|&b| b == NAMES_END).unwrap();
    let cut = named.iter().rposition(|&b| b == NAME_SEP).unwrap();
    let one_fewer = [&named[..cut], &named[end..]].concat();
    assert_eq!(
        decode("K", &one_fewer),
        Err(RecordError::Bad("missing name"))
    );
    let one_more = [&named[..end], b"\x1fextra", &named[end..]].concat();
    assert_eq!(
        decode("K", &one_more),
        Err(RecordError::Bad("unused names"))
    );
    assert_eq!(
        decode("K", b"\xBF1\x1e"),
        Err(RecordError::Bad("name code (not in the dictionary)"))
    );
}

/// `typical()` as version 1 wrote it (before names, one presence byte per optional part of a
/// timeline entry).
const TYPICAL_V1: &str = "b10180f8b2e5bd680633333031303600010570686f6e65010d696d706572736f6e61\
    74696f6e0180ade20400010123456789abcdef0380bab703000080f4ee06000080dccc14000000010465762d3100\
    0200010000000000c0a90703010465762d310106502d30303432000105766973697400";

#[test]
fn records_of_version_1_still_load() {
    let bytes: Vec<u8> = (0..TYPICAL_V1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&TYPICAL_V1[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(
        decode("GA-330106-20261202-001065-akzz", &bytes),
        Ok(typical())
    );
    assert!(decode("GA-330106-20261202-001065-akzz", &bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn records_written_as_json_by_earlier_versions_still_load() {
    let s = typical();
    let json = serde_json::to_vec(&s).unwrap();
    assert_eq!(decode("GA-330106-20261202-001065-akzz", &json), Ok(s));
    assert_eq!(decode("A", b""), Err(RecordError::Truncated));
    assert_eq!(decode("A", b"\x07rest"), Err(RecordError::Format(7)));
    assert!(matches!(
        decode("A", b"{not json"),
        Err(RecordError::Json(_))
    ));
}
