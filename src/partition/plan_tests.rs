//! The partition's decisions, without servers: what a batch skips, dead-letters and applies, how
//! a replay after a rollback is applied, and what a firing round fires.

use super::*;
use crate::domain::time::format_utc;
use crate::domain::{EscalationKind, Policies};

const MIN: Millis = 60_000;
/// issued_at of the test alerts.
const T0: Millis = 1_795_000_000_000;
const LIMITS: Limits = Limits {
    max_message_bytes: 65_536,
    max_clock_skew_ms: 5 * MIN,
};

fn alert(id: &str) -> (String, String) {
    let json = format!(
        r#"{{"alert_id":"{id}","issued_at":"{}","jurisdiction":"620102-GWM","risk":"medium"}}"#,
        format_utc(T0)
    );
    (id.to_owned(), json)
}

fn visited(id: &str, event: &str, at: Millis) -> (String, String) {
    let json = format!(
        r#"{{"event_id":"{event}","alert_id":"{id}","kind":"visited","occurred_at":"{}"}}"#,
        format_utc(at)
    );
    (id.to_owned(), json)
}

/// `(source, offset, (key, value), record timestamp)` as inputs.
fn inputs<'a>(messages: &'a [(Source, i64, &'a (String, String), Millis)]) -> Vec<Input<'a>> {
    messages
        .iter()
        .map(|(source, offset, (key, value), ts)| Input {
            source: *source,
            topic: source.as_str(),
            offset: *offset,
            key: Some(key.as_bytes()),
            payload: Some(value.as_bytes()),
            timestamp: Some(*ts),
        })
        .collect()
}

fn offsets(o: &[(&str, i64)]) -> Offsets {
    o.iter().map(|(t, o)| (t.to_string(), *o)).collect()
}

fn escalation_ids(outcome: &Outcome) -> Vec<String> {
    outcome
        .escalations()
        .map(|e| e.escalation_id.clone())
        .collect()
}

#[test]
fn what_redis_applied_is_skipped_and_counted_and_rejects_keep_their_index() {
    let (a, b) = (alert("A"), alert("B"));
    let bad = ("C".to_owned(), "{not json".to_owned());
    let now = T0 + MIN;
    let msgs = [
        (Source::Alerts, 7, &a, now),
        (Source::Alerts, 8, &bad, now),
        (Source::Alerts, 9, &b, now),
    ];
    let applied = offsets(&[("alerts", 7)]);
    let progress = Progress {
        applied: &applied,
        replay_to: None,
    };
    let sorted = sort(&inputs(&msgs), progress, now, LIMITS);
    assert_eq!(sorted.skipped.get("alerts"), Some(&1));
    assert_eq!(
        sorted.rejected,
        [Reject {
            index: 1,
            reason: Rejection::InvalidJson,
            replayed: false
        }]
    );
    assert_eq!(sorted.alert_ids(), ["B"]);
    assert_eq!(sorted.offsets.get("alerts"), Some(&9));
}

#[test]
fn a_batch_writes_states_offsets_and_the_overdue_escalations_of_what_it_touched() {
    let a = alert("A");
    // Processed 61 min after issue: visit (1 h) breached at level 1, the warning superseded.
    let now = T0 + 61 * MIN;
    let msgs = [(Source::Alerts, 0, &a, now)];
    let applied = Offsets::new();
    let progress = Progress {
        applied: &applied,
        replay_to: None,
    };
    let sorted = sort(&inputs(&msgs), progress, now, LIMITS);
    let outcome = apply(sorted, vec![None], &Policies::default(), now);
    assert_eq!(escalation_ids(&outcome), ["A:visit:1"]);
    assert_eq!(outcome.batch.offsets, [("alerts".to_owned(), 0)]);
    assert_eq!(outcome.batch.alerts.len(), 1);
    assert!(outcome.batch.alerts[0].next_due.is_some());
    assert_eq!(outcome.batch.escalations[0].0, "A:visit:1");
}

#[test]
fn a_replay_applies_each_message_as_of_its_record_time_and_fires_nothing_else() {
    let policy = Policies::default();
    let a = alert("A");
    // Originally: alert at T0, visited at T0+50m (on time), both applied before the deadline.
    let v = visited("A", "e1", T0 + 50 * MIN);
    // Redis forgot both; the rebuild re-reads them 2 h later.
    let now = T0 + 2 * 60 * MIN;
    let msgs = [
        (Source::Alerts, 0, &a, T0 + 1_000),
        (Source::Dispositions, 0, &v, T0 + 50 * MIN + 1_000),
    ];
    let applied = Offsets::new();
    let replay_to = offsets(&[("alerts", 0), ("dispositions", 0)]);
    let progress = Progress {
        applied: &applied,
        replay_to: Some(&replay_to),
    };
    let sorted = sort(&inputs(&msgs), progress, now, LIMITS);
    assert!(sorted.valid.iter().all(|v| v.replayed));
    assert_eq!(sorted.valid[1].at, T0 + 50 * MIN + 1_000);
    let outcome = apply(sorted, vec![None], &policy, now);
    // As the first time: the visit warning (due at 45 min) went out before the visit was
    // recorded at 50 min, so no visit breach. Meet (due 2 h) is overdue now, but fires only
    // from the firing loop once the rebuild is done.
    assert_eq!(escalation_ids(&outcome), ["A:visit:0"]);
    assert!(
        outcome
            .effects
            .iter()
            .all(|(_, e)| matches!(e, Effect::Escalate(_))),
        "a replay's effects were counted the first time"
    );
}

#[test]
fn a_replayed_reject_was_dead_lettered_before_and_is_not_sent_again() {
    let bad = ("C".to_owned(), "{not json".to_owned());
    let now = T0;
    let msgs = [
        (Source::Alerts, 3, &bad, now),
        (Source::Alerts, 4, &bad, now),
    ];
    let applied = Offsets::new();
    let replay_to = offsets(&[("alerts", 3)]);
    let progress = Progress {
        applied: &applied,
        replay_to: Some(&replay_to),
    };
    let sorted = sort(&inputs(&msgs), progress, now, LIMITS);
    let replayed: Vec<bool> = sorted.rejected.iter().map(|r| r.replayed).collect();
    assert_eq!(replayed, [true, false]);
}

#[test]
fn a_replayed_record_is_never_applied_later_than_now() {
    let a = alert("A");
    let now = T0 + MIN;
    let msgs = [(Source::Alerts, 0, &a, now + 10 * MIN)];
    let applied = Offsets::new();
    let replay_to = offsets(&[("alerts", 0)]);
    let progress = Progress {
        applied: &applied,
        replay_to: Some(&replay_to),
    };
    assert_eq!(sort(&inputs(&msgs), progress, now, LIMITS).valid[0].at, now);
}

#[test]
fn a_firing_round_fires_every_due_level_and_drops_a_clock_without_a_record() {
    let policy = Policies::default();
    let mut state = AlertState::default();
    let a = alert("A");
    let decoded = validate::decode(
        Source::Alerts,
        Some(a.0.as_bytes()),
        Some(a.1.as_bytes()),
        T0,
        LIMITS,
    )
    .unwrap();
    let Decoded::Alert(alert) = decoded else {
        unreachable!()
    };
    state.apply_alert(alert, &policy, T0);
    let ids = ["A".to_owned(), "GONE".to_owned()];
    let outcome = fire(&ids, vec![Some(state), None], &policy, T0 + 90 * MIN);
    let fired: Vec<(String, EscalationKind)> = outcome
        .escalations()
        .map(|e| (e.escalation_id.clone(), e.kind))
        .collect();
    assert_eq!(
        fired,
        [
            ("A:visit:1".to_owned(), EscalationKind::Breach),
            ("A:visit:2".to_owned(), EscalationKind::Breach),
        ],
        "at 90 min: visit levels at 60 and 90 min; its warning superseded; meet warns at 105"
    );
    let gone = outcome
        .batch
        .alerts
        .iter()
        .find(|w| w.alert_id == "GONE")
        .unwrap();
    assert_eq!(gone.next_due, None, "its clock is removed");
}

#[test]
fn a_claim_reads_from_what_redis_holds_after_a_rollback_and_from_the_commit_otherwise() {
    const FROM: Millis = T0 - 60 * MIN;
    // Redis behind what this process (or the group) applied: lost writes, re-read from Redis.
    assert_eq!(
        read_from(Some(5), Some(9), Some(9), FROM),
        (ReadFrom::After(5), true)
    );
    // Redis emptied: re-read the retention window.
    assert_eq!(
        read_from(None, Some(9), Some(9), FROM),
        (ReadFrom::Time(FROM), true)
    );
    // A restart: Redis ahead of the commit; re-read from the commit, skipping what Redis has.
    assert_eq!(
        read_from(Some(9), Some(7), Some(7), FROM),
        (ReadFrom::After(7), false)
    );
    // Nothing committed: the retention window, skipping what Redis has.
    assert_eq!(
        read_from(Some(9), None, None, FROM),
        (ReadFrom::Time(FROM), false)
    );
    // A new deployment.
    assert_eq!(
        read_from(None, None, None, FROM),
        (ReadFrom::Time(FROM), false)
    );
}
