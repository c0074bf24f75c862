//! The report's pure part without servers: what the collector keeps and skips, replays in event
//! time and in arrival time, the counting, and the audit's comparison.

use super::*;
use crate::domain::policy::{Ladder, StageRule};
use crate::domain::time::format_utc;
use crate::domain::{Policy, Stage, StageStatus};
use crate::report::aggregate::Aggregator;
use crate::report::audit::Auditor;

const S: Millis = 1_000;
/// 2026-11-22T02:00:00Z = 10:00 in Shanghai: issued_at of the test alerts.
const T0: Millis = 1_795_312_800_000;
const LIMITS: Limits = Limits {
    max_message_bytes: 4096,
    max_clock_skew_ms: 300 * S,
};

/// visit 10 s, meet 20 s, feedback 60 s; warn 2 s before; levels at +0 s and +5 s.
fn policies() -> Policies {
    Policies::from(Policy::uniform(Ladder {
        stages: StageRule::defaults([10 * S, 20 * S, 60 * S]),
        warn_before: 2 * S,
        escalate_after: vec![0, 5 * S],
        notify: vec![vec!["l1".into()], vec!["l2".into()]],
        warn_notify: vec!["w".into()],
        grace: 0,
    }))
}

fn window() -> Window {
    Window {
        from: T0 - 3_600 * S,
        to: T0 + 3_600 * S,
        jurisdiction: None,
    }
}

fn alert_json(id: &str, issued_at: Millis, jurisdiction: &str) -> String {
    format!(
        r#"{{"alert_id":"{id}","issued_at":"{}","jurisdiction":"{jurisdiction}","risk":"high","channel":"96110"}}"#,
        format_utc(issued_at)
    )
}

fn disposition_json(event: &str, id: &str, kind: &str, at: Millis) -> String {
    let outcome = if kind == "feedback" {
        r#","outcome":"dissuaded""#
    } else {
        ""
    };
    format!(
        r#"{{"event_id":"{event}","alert_id":"{id}","kind":"{kind}","occurred_at":"{}"{outcome}}}"#,
        format_utc(at)
    )
}

fn record<'a>(topic: &'a str, key: &'a str, value: &'a str, ts: Millis) -> RawRecord<'a> {
    RawRecord {
        topic,
        key: Some(key.as_bytes()),
        payload: Some(value.as_bytes()),
        timestamp: Some(ts),
    }
}

/// One alert `A` issued at T0 with the given dispositions `(event, kind, occurred_at,
/// arrived_at)`, gathered by a collector.
fn history(dispositions: &[(&str, &str, Millis, Millis)]) -> History {
    let mut c = Collector::new(window(), LIMITS, T0 + 86_400 * S);
    let a = alert_json("A", T0, "620102-GWM");
    c.alert(record("alerts", "A", &a, T0));
    for (event, kind, at, arrived) in dispositions {
        let d = disposition_json(event, "A", kind, *at);
        c.disposition(record("dispositions", "A", &d, *arrived));
    }
    let mut h = c.take_histories();
    assert_eq!(h.len(), 1);
    h.remove(0)
}

fn ids(r: &Replayed) -> Vec<String> {
    r.escalations
        .iter()
        .map(|e| e.escalation_id.clone())
        .collect()
}

fn status(r: &Replayed, stage: &str) -> (StageStatus, u8) {
    let p = policies();
    let policy = p.for_state(&r.state).clone();
    let c = r.state.stage(&policy, stage).copied().unwrap();
    (c.status, c.level)
}

#[test]
fn the_collector_keeps_the_window_and_counts_what_it_skips() {
    let w = Window {
        jurisdiction: Some("6201".into()),
        ..window()
    };
    let mut c = Collector::new(w.clone(), LIMITS, T0 + 86_400 * S);
    let inside = alert_json("IN", T0, "620102-GWM");
    let other_place = alert_json("ELSEWHERE", T0, "110105-CYQ");
    let too_late = alert_json("LATER", w.to, "620102-GWM");
    let first = alert_json("DUP", T0, "620102-GWM");
    let second = alert_json("DUP", T0 + S, "620102-GWM");
    for (id, json, ts) in [
        ("IN", &inside, T0),
        ("ELSEWHERE", &other_place, T0),
        ("LATER", &too_late, w.to),
        ("DUP", &first, T0),
        ("DUP", &second, T0 + S),
        // A copy here of an alert whose first copy was elsewhere: still elsewhere.
        (
            "ELSEWHERE",
            &alert_json("ELSEWHERE", T0, "620102-GWM"),
            T0 + S,
        ),
    ] {
        c.alert(record("alerts", id, json, ts));
    }
    // Dead-letter-worthy: in the window (counted) and before it (not counted).
    c.alert(record("alerts", "X", "{not json", T0));
    c.alert(record("alerts", "X", "{not json", w.from - S));
    c.alert(record(
        "alerts",
        "Y",
        &alert_json("Z", T0, "620102-GWM"),
        T0,
    ));
    let met = disposition_json("e1", "IN", "met", T0 + S);
    let stranger = disposition_json("e2", "ELSEWHERE", "met", T0 + S);
    c.disposition(record("dispositions", "IN", &met, T0 + S));
    c.disposition(record("dispositions", "ELSEWHERE", &stranger, T0 + S));
    let no_outcome = r#"{"event_id":"e3","alert_id":"IN","kind":"feedback","occurred_at":"2026-11-22T02:00:00Z"}"#;
    c.disposition(record("dispositions", "IN", no_outcome, T0));

    let skipped: Vec<(String, String, u64)> = c
        .skipped()
        .iter()
        .map(|((t, r), n)| (t.clone(), r.clone(), *n))
        .collect();
    assert_eq!(
        skipped,
        [
            ("alerts".into(), "invalid_json".into(), 1),
            ("alerts".into(), "key_mismatch".into(), 1),
            ("dispositions".into(), "missing_field:outcome".into(), 1),
        ]
    );
    assert_eq!(c.duplicates(), 2);
    let mut h = c.take_histories();
    h.sort_by(|a, b| a.alert.message.alert_id.cmp(&b.alert.message.alert_id));
    let kept: Vec<(&str, Millis, usize)> = h
        .iter()
        .map(|h| {
            (
                h.alert.message.alert_id.as_str(),
                h.alert.message.issued_at,
                h.dispositions.len(),
            )
        })
        .collect();
    assert_eq!(kept, [("DUP", T0, 0), ("IN", T0, 1)], "first copy wins");
}

#[test]
fn a_message_ahead_of_its_record_by_more_than_the_skew_is_skipped() {
    let mut c = Collector::new(window(), LIMITS, T0 + 86_400 * S);
    let ahead = alert_json("A", T0 + 301 * S, "620102-GWM");
    c.alert(record("alerts", "A", &ahead, T0));
    assert!(c.take_histories().is_empty());
    assert_eq!(
        c.skipped().keys().next().map(|(_, r)| r.as_str()),
        Some("timestamp_in_future")
    );
}

#[test]
fn on_time_work_fires_nothing() {
    let h = history(&[
        ("v", "visited", T0 + 5 * S, T0 + 5 * S),
        ("m", "met", T0 + 7 * S, T0 + 7 * S),
        ("f", "feedback", T0 + 30 * S, T0 + 30 * S),
    ]);
    let r = replay(h, &policies(), Timing::EventTime, T0 + 3_600 * S);
    assert!(ids(&r).is_empty(), "{:?}", ids(&r));
    assert_eq!(
        status(&r, "visit").0,
        StageStatus::Satisfied {
            at: T0 + 5 * S,
            on_time: true
        }
    );
    assert_eq!(r.outcome, Some(Outcome::Dissuaded));
}

#[test]
fn clocks_fire_at_their_due_times_before_later_events() {
    // visit deadline T0+10 s: warning at +8 s, level 1 at +10 s, level 2 at +15 s.
    let h = history(&[("v", "visited", T0 + 12 * S, T0 + 12 * S)]);
    let r = replay(h, &policies(), Timing::EventTime, T0 + 3_600 * S);
    let visit: Vec<(String, Option<Millis>, Millis)> = r
        .escalations
        .iter()
        .filter(|e| e.stage == "visit")
        .map(|e| (e.escalation_id.clone(), e.due_at, e.fired_at))
        .collect();
    assert_eq!(
        visit,
        [
            ("A:visit:0".into(), Some(T0 + 8 * S), T0 + 8 * S),
            ("A:visit:1".into(), Some(T0 + 10 * S), T0 + 10 * S),
            ("A:visit:resolved".into(), None, T0 + 12 * S),
        ]
    );
    assert_eq!(
        status(&r, "visit"),
        (
            StageStatus::Satisfied {
                at: T0 + 12 * S,
                on_time: false
            },
            1
        )
    );
}

#[test]
fn work_done_at_the_deadline_is_on_time_and_never_breached() {
    // visit deadline T0+10 s, level 1 due then too (escalate_after[0] = 0 s).
    let at = T0 + 10 * S;
    let h = history(&[("v", "visited", at, at)]);
    let r = replay(h.clone(), &policies(), Timing::EventTime, T0 + 3_600 * S);
    let visit: Vec<String> = ids(&r)
        .into_iter()
        .filter(|i| i.contains(":visit:"))
        .collect();
    assert_eq!(visit, ["A:visit:0"], "the warning at +8 s, no breach");
    assert_eq!(
        status(&r, "visit"),
        (StageStatus::Satisfied { at, on_time: true }, 0)
    );
    // The processor fires on its wall clock: a visit that reached Kafka at the due time may
    // come after the breach it fired.
    let arrival = replay(h, &policies(), Timing::Arrival, T0 + 3_600 * S);
    assert!(ids(&arrival).contains(&"A:visit:1".to_owned()));
}

#[test]
fn only_what_happened_and_came_due_before_to_counts() {
    let to = T0 + 15 * S; // visit's level 2 is due exactly at `to`
    let h = history(&[("v", "visited", to, to)]);
    let r = replay(h, &policies(), Timing::EventTime, to);
    assert_eq!(status(&r, "visit"), (StageStatus::Open, 1));
    assert_eq!(ids(&r), ["A:visit:0", "A:visit:1"]);
}

#[test]
fn arrival_time_is_what_the_processor_saw() {
    // The visit happened at +5 s (before the warning at +8 s) but reached Kafka at +9 s.
    let h = history(&[("v", "visited", T0 + 5 * S, T0 + 9 * S)]);
    let event_time = replay(h.clone(), &policies(), Timing::EventTime, T0 + 9 * S);
    let arrival = replay(h, &policies(), Timing::Arrival, T0 + 9 * S);
    assert!(ids(&event_time).is_empty());
    assert_eq!(ids(&arrival), ["A:visit:0"]);
    // On time either way: judged by occurred_at.
    for r in [&event_time, &arrival] {
        assert_eq!(
            status(r, "visit").0,
            StageStatus::Satisfied {
                at: T0 + 5 * S,
                on_time: true
            }
        );
    }
}

#[test]
fn an_alert_arriving_after_its_deadline_breaches_at_once_without_a_warning() {
    let mut c = Collector::new(window(), LIMITS, T0 + 86_400 * S);
    let a = alert_json("A", T0, "620102-GWM");
    c.alert(record("alerts", "A", &a, T0 + 12 * S));
    let h = c.take_histories().remove(0);
    let r = replay(h, &policies(), Timing::Arrival, T0 + 13 * S);
    let fired: Vec<(String, Millis)> = r
        .escalations
        .iter()
        .map(|e| (e.escalation_id.clone(), e.fired_at))
        .collect();
    // The visit's warning (due +8 s) is superseded: its deadline (+10 s) passed on arrival.
    assert_eq!(fired, [("A:visit:1".to_owned(), T0 + 12 * S)]);
}

#[test]
fn a_disposition_before_its_alert_is_held_and_applied_with_it() {
    let h = history(&[("m", "met", T0 - 2 * S, T0 - 2 * S)]);
    let r = replay(h, &policies(), Timing::EventTime, T0 + 3_600 * S);
    assert_eq!(
        status(&r, "meet").0,
        StageStatus::Satisfied {
            at: T0 - 2 * S,
            on_time: true
        }
    );
}

#[test]
fn a_disposition_stamped_in_its_late_alert_s_millisecond_is_held_as_the_processor_holds_it() {
    // The alert reached Kafka at +12 s, past the visit's deadline (+10 s); the visit of +5 s
    // in the same millisecond. The processor takes the disposition first: no breach.
    let mut c = Collector::new(window(), LIMITS, T0 + 86_400 * S);
    let a = alert_json("A", T0, "620102-GWM");
    let d = disposition_json("v", "A", "visited", T0 + 5 * S);
    c.alert(record("alerts", "A", &a, T0 + 12 * S));
    c.disposition(record("dispositions", "A", &d, T0 + 12 * S));
    let h = c.take_histories().remove(0);
    let r = replay(h, &policies(), Timing::Arrival, T0 + 13 * S);
    assert!(ids(&r).is_empty(), "{:?}", ids(&r));
    assert_eq!(
        status(&r, "visit").0,
        StageStatus::Satisfied {
            at: T0 + 5 * S,
            on_time: true
        }
    );
}

#[test]
fn closed_cancels_and_a_later_feedback_reports_no_outcome() {
    let h = history(&[
        ("c", "closed", T0 + S, T0 + S),
        ("f", "feedback", T0 + 2 * S, T0 + 2 * S),
    ]);
    let r = replay(h, &policies(), Timing::EventTime, T0 + 3_600 * S);
    assert_eq!(status(&r, "feedback").0, StageStatus::Cancelled);
    assert_eq!(r.outcome, None);
    assert!(ids(&r).is_empty());
}

#[test]
fn a_repeated_event_id_is_ignored_in_the_order_applied() {
    // Two copies of one event, read in this order, both reaching Kafka at +20 s.
    let h = history(&[
        ("v", "visited", T0 + 12 * S, T0 + 20 * S),
        ("v", "visited", T0 + 3 * S, T0 + 20 * S),
    ]);
    let satisfied = |timing| {
        let r = replay(h.clone(), &policies(), timing, T0 + 3_600 * S);
        status(&r, "visit").0
    };
    assert_eq!(
        satisfied(Timing::Arrival),
        StageStatus::Satisfied {
            at: T0 + 12 * S,
            on_time: false
        },
        "as the processor: the first copy read wins"
    );
    assert_eq!(
        satisfied(Timing::EventTime),
        StageStatus::Satisfied {
            at: T0 + 3 * S,
            on_time: true
        },
        "in event time the earlier copy is applied first"
    );
}

#[test]
fn counts_percentiles_levels_and_local_days() {
    let p = policies();
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let mut agg = Aggregator::new(
        Stage::DEFAULTS.map(|s| Stage::new(s).unwrap()).to_vec(),
        zone,
    );
    let to = T0 + 3_600 * S;
    // On time (visit 5 s), late (visit 12 s, level 1), silent (every level), and one issued
    // at 16:30 UTC, the next local day.
    for h in [
        history(&[("v", "visited", T0 + 5 * S, T0 + 5 * S)]),
        history(&[("v", "visited", T0 + 12 * S, T0 + 12 * S)]),
        history(&[]),
    ] {
        agg.add(&replay(h, &p, Timing::EventTime, to), &p);
    }
    let next_day = T0 + 14 * 3_600 * S + 1_800 * S;
    let mut c = Collector::new(
        Window {
            to: next_day + 3_600 * S,
            ..window()
        },
        LIMITS,
        next_day + 86_400 * S,
    );
    let a = alert_json("B", next_day, "110105-CYQ");
    c.alert(record("alerts", "B", &a, next_day));
    let h = c.take_histories().remove(0);
    agg.add(&replay(h, &p, Timing::EventTime, next_day + S), &p);

    let t = agg.finish();
    assert_eq!(t.alerts, 4);
    let visit = t
        .rows
        .iter()
        .find(|r| r.jurisdiction == "620102-GWM")
        .unwrap();
    assert_eq!(visit.counts.stage, "visit");
    assert_eq!(
        (
            visit.counts.alerts,
            visit.counts.on_time,
            visit.counts.late,
            visit.counts.unsatisfied,
            visit.counts.breached
        ),
        (3, 1, 1, 1, 2)
    );
    assert_eq!(
        visit.counts.breaches_by_level,
        [(1, 2), (2, 1)].into_iter().collect()
    );
    // Nearest rank of [5 s, 12 s]: p50 is 5 s, p90 is 12 s.
    assert_eq!(visit.counts.p50_seconds, Some(5.0));
    assert_eq!(visit.counts.p90_seconds, Some(12.0));
    let order: Vec<(&str, &str)> = t
        .rows
        .iter()
        .map(|r| (r.jurisdiction.as_str(), r.counts.stage.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("110105-CYQ", "visit"),
            ("110105-CYQ", "meet"),
            ("110105-CYQ", "feedback"),
            ("620102-GWM", "visit"),
            ("620102-GWM", "meet"),
            ("620102-GWM", "feedback"),
        ]
    );
    let days: Vec<(&str, u64)> = t.days.iter().map(|d| (d.date.as_str(), d.alerts)).collect();
    assert_eq!(days, [("2026-11-22", 3), ("2026-11-23", 1)]);
    let meet = t.rows.iter().find(|r| r.counts.stage == "meet").unwrap();
    assert_eq!(meet.counts.p50_seconds, None, "none satisfied: null");
    for r in &t.rows {
        let c = &r.counts;
        assert_eq!(c.on_time + c.late + c.unsatisfied, c.alerts);
    }
}

#[test]
fn the_audit_finds_missed_and_false_pages_and_measures_the_delay() {
    let p = policies();
    let horizon = T0 + 12 * S;
    let mut auditor = Auditor::new(
        Stage::DEFAULTS.map(|s| Stage::new(s).unwrap()).to_vec(),
        horizon,
    );
    // Silent until the horizon: visit:0 (+8 s) and visit:1 (+10 s) are due.
    auditor.expect(&replay(history(&[]), &p, Timing::Arrival, horizon));
    let esc = |id: &str, stage: &str, level: u8, kind: &str, due: Option<Millis>| {
        serde_json::json!({
            "escalation_id": id, "alert_id": "A", "stage": stage, "level": level, "kind": kind,
            "jurisdiction": "620102-GWM", "risk": "high",
            "deadline": format_utc(T0 + 10 * S), "due_at": due.map(format_utc),
            "fired_at": format_utc(due.unwrap_or(T0)), "notify": []
        })
        .to_string()
    };
    let published = [
        (
            esc("A:visit:0", "visit", 0, "warning", Some(T0 + 8 * S)),
            T0 + 8 * S + 3,
        ),
        (
            esc("A:visit:0", "visit", 0, "warning", Some(T0 + 8 * S)),
            T0 + 20 * S,
        ),
        (
            esc("A:meet:1", "meet", 1, "breach", Some(T0 + 11 * S)),
            T0 + 11 * S,
        ),
        // Not yet judged (due at the horizon), a resolution, another alert's page.
        (
            esc("A:meet:0", "meet", 0, "warning", Some(horizon)),
            horizon,
        ),
        (
            esc("A:visit:resolved", "visit", 1, "resolved", None),
            T0 + 30 * S,
        ),
        (
            esc("A:visit:0", "visit", 0, "warning", Some(T0)).replace("\"A\"", "\"OTHER\""),
            T0,
        ),
    ];
    for (json, ts) in &published {
        auditor.published(Some(json.as_bytes()), Some(*ts));
    }
    auditor.published(Some(b"not an escalation"), Some(T0));
    assert_eq!(auditor.unreadable(), 1);
    let a = auditor.finish();
    assert_eq!(a.missed, ["A:visit:1"]);
    assert_eq!(a.false_, ["A:meet:1"]);
    assert_eq!((a.expected, a.published), (2, 1));
    assert_eq!(a.publish_delay_ms_p50, Some(3), "the first copy counts");
    assert_eq!(a.publish_delay_ms_p99, Some(3));
    assert!(a.has_findings());
}

#[test]
fn the_same_input_in_another_order_gives_the_same_json() {
    let p = policies();
    let make = |order: &[usize]| {
        let hs = [
            history(&[("v", "visited", T0 + 5 * S, T0 + 5 * S)]),
            history(&[("v", "visited", T0 + 12 * S, T0 + 12 * S)]),
            history(&[("f", "feedback", T0 + 30 * S, T0 + 30 * S)]),
        ];
        let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut agg = Aggregator::new(p.current().stages(), zone);
        for i in order {
            agg.add(
                &replay(hs[*i].clone(), &p, Timing::EventTime, T0 + 3_600 * S),
                &p,
            );
        }
        let t = agg.finish();
        serde_json::to_string(&(t.rows, t.totals, t.days, t.outcomes)).unwrap()
    };
    assert_eq!(make(&[0, 1, 2]), make(&[2, 0, 1]));
}

#[test]
fn a_risk_requiring_fewer_stages_counts_only_those() {
    let mut low = Ladder::default();
    low.stages.retain(|r| r.stage == "feedback");
    let p = Policies::from(Policy::new(crate::domain::Ladders {
        high: low.clone(),
        medium: Ladder::default(),
        low,
    }));
    let zone = jiff::tz::TimeZone::UTC;
    let mut agg = Aggregator::new(p.current().stages(), zone);
    agg.add(
        &replay(history(&[]), &p, Timing::EventTime, T0 + 3_600 * S),
        &p,
    );
    let t = agg.finish();
    let stages: Vec<&str> = t.rows.iter().map(|r| r.counts.stage.as_str()).collect();
    assert_eq!(stages, ["feedback"]);
}
