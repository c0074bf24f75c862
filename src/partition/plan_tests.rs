//! The partition's decisions, without servers: what a batch skips, dead-letters and applies, how
//! a replay after a rollback is applied, and what a firing round fires.

use super::*;
use crate::domain::time::format_utc;
use crate::domain::{Alert, EscalationKind, Policies, Risk};
use crate::store::{IndexChange, StageList, SEP};

const MIN: Millis = 60_000;
/// issued_at of the test alerts.
const T0: Millis = 1_795_000_000_000;
/// No alert taken as new: every one read.
const READ_ALL: BTreeSet<String> = BTreeSet::new();
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

/// The display zone of the tests: T0 is 19:06:40 there (11:06:40 UTC), so 5 h later is the
/// next day there and still the same day in UTC.
fn zone() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
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
    let outcome = apply(
        sorted,
        vec![None],
        &READ_ALL,
        &Policies::default(),
        now,
        &zone(),
    );
    assert_eq!(escalation_ids(&outcome), ["A:visit:1"]);
    assert_eq!(outcome.batch.offsets, [("alerts".to_owned(), 0)]);
    assert_eq!(outcome.batch.alerts.len(), 1);
    let written = &outcome.batch.alerts[0];
    assert!(matches!(written.clock, IndexChange::Set(_)));
    assert_eq!(written.opened, 1, "one more open alert");
    assert_eq!(outcome.batch.escalations[0].0, "A:visit:1");
}

#[test]
fn a_batch_writes_only_the_index_entries_that_changed() {
    let policies = Policies::default();
    let a = alert("A");
    let now = T0 + MIN;
    let applied = Offsets::new();
    let progress = Progress {
        applied: &applied,
        replay_to: None,
    };
    let first = [(Source::Alerts, 0, &a, now)];
    let opened = apply(
        sort(&inputs(&first), progress, now, LIMITS),
        vec![None],
        &READ_ALL,
        &policies,
        now,
        &zone(),
    );
    let stored = crate::store::record::decode("A", &opened.batch.alerts[0].state).unwrap();

    // The same alert again: a duplicate changes no index entry and no count.
    let again = [(Source::Alerts, 1, &a, now)];
    let dup = apply(
        sort(&inputs(&again), progress, now, LIMITS),
        vec![Some(stored.clone())],
        &READ_ALL,
        &policies,
        now,
        &zone(),
    );
    let w = &dup.batch.alerts[0];
    assert_eq!(
        (w.clock, w.overdue, w.opened),
        (IndexChange::Keep, IndexChange::Keep, 0)
    );

    // A visit moves the clock on to the next stage's warning.
    let v = visited("A", "e1", now);
    let visit = [(Source::Dispositions, 0, &v, now)];
    let moved = apply(
        sort(&inputs(&visit), progress, now, LIMITS),
        vec![Some(stored.clone())],
        &READ_ALL,
        &policies,
        now,
        &zone(),
    );
    let w = &moved.batch.alerts[0];
    let after = crate::store::record::decode("A", &w.state).unwrap();
    assert_ne!(stored.next_due(&policies), after.next_due(&policies));
    assert_eq!(
        w.clock,
        IndexChange::Set(after.next_due(&policies).unwrap())
    );
    assert_eq!((w.overdue, w.opened), (IndexChange::Keep, 0));

    // A firing round rewrites every clock it read, changed or not.
    let fired = fire(
        &["A".to_owned()],
        vec![Some(stored.clone())],
        &policies,
        now,
        &zone(),
    );
    assert_eq!(
        fired.batch.alerts[0].clock,
        IndexChange::Set(stored.next_due(&policies).unwrap())
    );
    assert_eq!(fired.batch.alerts[0].opened, 0);
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
    let outcome = apply(sorted, vec![None], &READ_ALL, &policy, now, &zone());
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
    let outcome = fire(
        &ids,
        vec![Some(state), None],
        &policy,
        T0 + 90 * MIN,
        &zone(),
    );
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
    assert_eq!(gone.clock, IndexChange::Remove, "its clock is removed");
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

/// An alert of `jurisdiction` and `risk` issued at T0, processed at `at`.
fn opened(id: &str, jurisdiction: &str, risk: Risk, at: Millis) -> AlertState {
    let mut s = AlertState::default();
    let alert = Alert {
        alert_id: id.into(),
        issued_at: T0,
        jurisdiction: jurisdiction.into(),
        risk,
        channel: None,
        fraud_type: None,
        amount_cents: None,
    };
    s.apply_alert(alert, &Policies::default(), at);
    s
}

fn disposition(id: &str, event: &str, kind: &str, at: Millis) -> crate::domain::Disposition {
    let json = format!(
        r#"{{"event_id":"{event}","alert_id":"{id}","kind":"{kind}","occurred_at":"{}","outcome":"dissuaded"}}"#,
        format_utc(at)
    );
    let decoded = validate::decode(
        Source::Dispositions,
        Some(id.as_bytes()),
        Some(json.as_bytes()),
        at,
        LIMITS,
    )
    .unwrap();
    let Decoded::Disposition(d) = decoded else {
        unreachable!()
    };
    d
}

/// `(list, deadline, member)` of entries, for comparing.
fn entries(e: &[IndexEntry]) -> Vec<(StageList, Millis, String)> {
    e.iter()
        .map(|e| (e.list, e.deadline, e.member.clone()))
        .collect()
}

fn member(jurisdiction: &str, risk: &str, stage: &str, id: &str, last: u8) -> String {
    format!("{jurisdiction}{SEP}{risk}{SEP}{stage}{SEP}{id}{SEP}{last}")
}

/// A shared entry's member ([`IndexEntry::shared`]): `stages` each with how long after the
/// first it is due.
fn shared(jurisdiction: &str, risk: &str, stages: &[(&str, Millis)], id: &str) -> String {
    let shape: Vec<String> = stages
        .iter()
        .enumerate()
        .map(|(k, (st, after))| match k {
            0 => (*st).to_owned(),
            _ => format!("{st}+{after}"),
        })
        .collect();
    let shape = shape.join("\x1e");
    format!("{jurisdiction}{SEP}{risk}{SEP}{shape}{SEP}{id}{SEP}v")
}

const HOUR: Millis = 60 * MIN;

#[test]
fn an_open_alert_lists_each_open_stage_with_its_deadline_warning_and_level() {
    let policies = Policies::default();
    let mut a = opened("A", "620102-GWM", Risk::High, T0);
    let due: Vec<_> = a
        .stage_entries(policies.current())
        .into_iter()
        .map(|s| (s.stage.to_string(), s.deadline, s.warned, s.level))
        .collect();
    assert_eq!(
        due,
        [
            ("visit".into(), T0 + HOUR, false, 0),
            ("meet".into(), T0 + 2 * HOUR, false, 0),
            ("feedback".into(), T0 + 6 * HOUR, false, 0),
        ]
    );
    // None warned yet: one entry for the three, by the first deadline, counted under each.
    let three = [("visit", 0), ("meet", HOUR), ("feedback", 5 * HOUR)];
    assert_eq!(
        entries(&index_entries(&a, &policies)),
        [(
            StageList::Due,
            T0 + HOUR,
            shared("620102-GWM", "high", &three, "A")
        )]
    );
    let entry = &index_entries(&a, &policies)[0];
    let stations: Vec<&str> = entry.stations().collect();
    assert_eq!(
        stations,
        [
            format!("620102-GWM{SEP}visit"),
            format!("620102-GWM{SEP}meet"),
            format!("620102-GWM{SEP}feedback")
        ]
    );
    // Visited before any warning: the two left share one, by the sooner.
    let mut visited = a.clone();
    visited.apply_disposition(
        disposition("A", "e0", "visited", T0 + 10 * MIN),
        &policies,
        T0 + 10 * MIN,
    );
    assert_eq!(
        entries(&index_entries(&visited, &policies)),
        [(
            StageList::Due,
            T0 + 2 * HOUR,
            shared(
                "620102-GWM",
                "high",
                &[("meet", 0), ("feedback", 4 * HOUR)],
                "A"
            )
        )]
    );
    // 45 min in, visit warned: an entry a stage.
    let mut warned = a.clone();
    warned.fire(&policies, T0 + 45 * MIN);
    assert_eq!(
        entries(&index_entries(&warned, &policies)),
        [
            (
                StageList::Due,
                T0 + HOUR,
                member("620102-GWM", "high", "visit", "A", 1)
            ),
            (
                StageList::Due,
                T0 + 2 * HOUR,
                member("620102-GWM", "high", "meet", "A", 0)
            ),
            (
                StageList::Due,
                T0 + 6 * HOUR,
                member("620102-GWM", "high", "feedback", "A", 0)
            ),
        ]
    );
    // 1 h 45 in: visit breached at levels 1 and 2 (late), meet warned (still due), feedback
    // untouched.
    a.fire(&policies, T0 + 105 * MIN);
    assert_eq!(
        entries(&index_entries(&a, &policies)),
        [
            (
                StageList::Late,
                T0 + HOUR,
                member("620102-GWM", "high", "visit", "A", 2)
            ),
            (
                StageList::Due,
                T0 + 2 * HOUR,
                member("620102-GWM", "high", "meet", "A", 1)
            ),
            (
                StageList::Due,
                T0 + 6 * HOUR,
                member("620102-GWM", "high", "feedback", "A", 0)
            ),
        ]
    );
    // A satisfied stage leaves the lists; a closed alert has none; so has one not yet arrived.
    a.apply_disposition(
        disposition("A", "e1", "met", T0 + 106 * MIN),
        &policies,
        T0 + 106 * MIN,
    );
    let left: Vec<_> = a
        .stage_entries(policies.current())
        .into_iter()
        .map(|s| s.stage.to_string())
        .collect();
    assert_eq!(left, ["feedback"]);
    a.apply_disposition(
        disposition("A", "e2", "closed", T0 + 107 * MIN),
        &policies,
        T0 + 107 * MIN,
    );
    assert!(a.stage_entries(policies.current()).is_empty());
    assert!(index_entries(&AlertState::default(), &policies).is_empty());
}

#[test]
fn the_board_changes_by_the_difference_between_the_loaded_and_the_written_state() {
    let policies = Policies::default();
    let unknown = AlertState::default();
    let opened_a = opened("A", "620102-GWM", Risk::Medium, T0);

    // A new alert: every stage added, nothing removed, the alert announced.
    let mut board = BoardWrite::default();
    board_diff(&unknown, &opened_a, &policies, &mut board);
    let three = [("visit", 0), ("meet", HOUR), ("feedback", 5 * HOUR)];
    let all_three = (
        StageList::Due,
        T0 + HOUR,
        shared("620102-GWM", "medium", &three, "A"),
    );
    let meet_feedback = (
        StageList::Due,
        T0 + 2 * HOUR,
        shared(
            "620102-GWM",
            "medium",
            &[("meet", 0), ("feedback", 4 * HOUR)],
            "A",
        ),
    );
    assert_eq!(entries(&board.add), std::slice::from_ref(&all_three));
    assert!(board.remove.is_empty());
    assert_eq!(board.changed, [("A".to_owned(), "620102-GWM".to_owned())]);

    // Visited: the shared entry goes, one for the two left comes.
    let mut visited = opened_a.clone();
    visited.apply_disposition(
        disposition("A", "e1", "visited", T0 + 10 * MIN),
        &policies,
        T0 + 10 * MIN,
    );
    let mut board = BoardWrite::default();
    board_diff(&opened_a, &visited, &policies, &mut board);
    assert_eq!(entries(&board.remove), std::slice::from_ref(&all_three));
    assert_eq!(entries(&board.add), std::slice::from_ref(&meet_feedback));

    // A warning splits the shared entry; a breach then moves the warned entry to late.
    let mut warned = opened_a.clone();
    warned.fire(&policies, T0 + 45 * MIN);
    let mut board = BoardWrite::default();
    board_diff(&opened_a, &warned, &policies, &mut board);
    assert_eq!(entries(&board.remove), [all_three]);
    assert_eq!(board.add.len(), 3);
    let mut breached = warned.clone();
    breached.fire(&policies, T0 + HOUR);
    let mut board = BoardWrite::default();
    board_diff(&warned, &breached, &policies, &mut board);
    assert_eq!(
        entries(&board.remove),
        [(
            StageList::Due,
            T0 + HOUR,
            member("620102-GWM", "medium", "visit", "A", 1)
        )]
    );
    assert_eq!(
        entries(&board.add),
        [(
            StageList::Late,
            T0 + HOUR,
            member("620102-GWM", "medium", "visit", "A", 1)
        )]
    );

    // Unchanged (a duplicate): nothing at all, not even a change notice.
    let mut board = BoardWrite::default();
    board_diff(&opened_a, &opened_a.clone(), &policies, &mut board);
    assert!(board.is_empty(), "{board:?}");

    // Only dispositions so far: a changed record, but nothing to list or announce.
    let mut held = AlertState::default();
    held.apply_disposition(disposition("B", "e9", "visited", T0), &policies, T0);
    let mut board = BoardWrite::default();
    board_diff(&unknown, &held, &policies, &mut board);
    assert!(board.is_empty(), "{board:?}");
}

#[test]
fn a_batch_counts_completions_and_first_breaches_on_the_processing_day_in_the_display_zone() {
    let policies = Policies::default();
    // Processed 5 h after issue: the next day in Shanghai, the same day in UTC. Every stage
    // but feedback is breached at level 1 by then; a met 10 min before satisfies visit and
    // meet late.
    let now = T0 + 5 * HOUR;
    let loaded = opened("A", "620102-GWM", Risk::Medium, T0 + MIN);
    let met = {
        let json = format!(
            r#"{{"event_id":"e1","alert_id":"A","kind":"met","occurred_at":"{}"}}"#,
            format_utc(now - 10 * MIN)
        );
        ("A".to_owned(), json)
    };
    let msgs = [(Source::Dispositions, 4, &met, now)];
    let applied = Offsets::new();
    let progress = Progress {
        applied: &applied,
        replay_to: None,
    };
    let sorted = sort(&inputs(&msgs), progress, now, LIMITS);
    let outcome = apply(
        sorted,
        vec![Some(loaded)],
        &READ_ALL,
        &policies,
        now,
        &zone(),
    );
    let day = |j: &str, st: &str, c: DayCount| ((j.to_owned(), st.to_owned(), c), 1i64);
    let counted: Vec<_> = outcome
        .batch
        .board
        .days
        .iter()
        .flat_map(|(date, fields)| {
            fields.iter().map(move |(f, n)| {
                let (j, st, c) = crate::store::parse_station_field(f).unwrap();
                (
                    date.clone(),
                    ((j.to_owned(), st.to_owned(), c.unwrap()), *n),
                )
            })
        })
        .collect();
    let on = |x| ("2026-11-19".to_owned(), x);
    assert_eq!(
        counted,
        [
            on(day("620102-GWM", "meet", DayCount::Breached)),
            on(day("620102-GWM", "meet", DayCount::Late)),
            on(day("620102-GWM", "visit", DayCount::Breached)),
            on(day("620102-GWM", "visit", DayCount::Late)),
        ]
    );
    assert_eq!(day_of(now, &TimeZone::UTC), "2026-11-18");
    // Both stages left the lists (they were due when loaded: the breaches fired in this batch).
    let removed: Vec<_> = outcome
        .batch
        .board
        .remove
        .iter()
        .map(|e| (e.list, e.deadline))
        .collect();
    // They shared one entry with feedback; feedback, alone now, has its own.
    assert_eq!(removed, [(StageList::Due, T0 + HOUR)]);
    assert_eq!(
        entries(&outcome.batch.board.add),
        [(
            StageList::Due,
            T0 + 6 * HOUR,
            member("620102-GWM", "medium", "feedback", "A", 0)
        )]
    );
    assert_eq!(
        outcome.batch.board.changed,
        [("A".to_owned(), "620102-GWM".to_owned())]
    );
}

#[test]
fn a_replay_changes_the_board_from_what_redis_still_holds_and_counts_again() {
    let policies = Policies::default();
    // Redis kept the alert (written at T0) but lost the visit reported at T0 + 50 min; the
    // rebuild re-reads it 2 h later.
    let loaded = opened("A", "620102-GWM", Risk::Low, T0);
    let v = visited("A", "e1", T0 + 50 * MIN);
    let now = T0 + 2 * HOUR;
    let msgs = [(Source::Dispositions, 0, &v, T0 + 50 * MIN + 1_000)];
    let applied = Offsets::new();
    let replay_to = offsets(&[("dispositions", 0)]);
    let progress = Progress {
        applied: &applied,
        replay_to: Some(&replay_to),
    };
    let sorted = sort(&inputs(&msgs), progress, now, LIMITS);
    let outcome = apply(
        sorted,
        vec![Some(loaded)],
        &READ_ALL,
        &policies,
        now,
        &zone(),
    );
    let board = &outcome.batch.board;
    // The entry Redis holds (shared: the warning at 45 min fired in what it lost) goes: the
    // replay fires the warning again and the visit satisfies its stage, so meet and feedback
    // get an entry each.
    let three = [("visit", 0), ("meet", HOUR), ("feedback", 5 * HOUR)];
    assert_eq!(
        entries(&board.remove),
        [(
            StageList::Due,
            T0 + HOUR,
            shared("620102-GWM", "low", &three, "A")
        )]
    );
    assert_eq!(
        entries(&board.add),
        [
            (
                StageList::Due,
                T0 + 2 * HOUR,
                member("620102-GWM", "low", "meet", "A", 0)
            ),
            (
                StageList::Due,
                T0 + 6 * HOUR,
                member("620102-GWM", "low", "feedback", "A", 0)
            ),
        ]
    );
    // Redis lost the count with the visit: the replay counts it again (the metric is not).
    let fields: Vec<_> = board
        .days
        .values()
        .flat_map(|f| f.keys().cloned())
        .collect();
    assert_eq!(
        fields,
        [crate::store::day_field(
            "620102-GWM",
            "visit",
            DayCount::OnTime
        )]
    );
    assert!(
        outcome
            .effects
            .iter()
            .all(|(_, e)| matches!(e, Effect::Escalate(_))),
        "metrics were counted the first time"
    );
}

#[test]
fn a_firing_round_moves_breached_stages_to_late_and_counts_them_once() {
    let policies = Policies::default();
    let a = opened("A", "330100", Risk::High, T0);
    let ids = ["A".to_owned()];
    let first = fire(
        &ids,
        vec![Some(a.clone())],
        &policies,
        T0 + 90 * MIN,
        &zone(),
    );
    let board = &first.batch.board;
    assert_eq!(
        entries(&board.add),
        [
            (
                StageList::Late,
                T0 + HOUR,
                member("330100", "high", "visit", "A", 2)
            ),
            (
                StageList::Due,
                T0 + 2 * HOUR,
                member("330100", "high", "meet", "A", 0)
            ),
            (
                StageList::Due,
                T0 + 6 * HOUR,
                member("330100", "high", "feedback", "A", 0)
            ),
        ],
        "levels 1 and 2 fired in one round: one entry, at the highest level; the shared \
         entry split"
    );
    let breached: Vec<_> = board.days.values().flat_map(|f| f.iter()).collect();
    assert_eq!(
        breached,
        [(
            &crate::store::day_field("330100", "visit", DayCount::Breached),
            &1
        )],
        "level 2 is not a new breach"
    );
    assert_eq!(board.days.keys().collect::<Vec<_>>(), ["2026-11-18"]);
}

/// Safe because the order changes no escalation: `sla_tests`,
/// `after_an_outage_backlog_and_overdue_clocks_give_the_same_escalations_in_either_order`.
#[test]
fn a_due_clock_fires_before_waiting_input() {
    let now = T0;
    assert_eq!(next_step(Some(now), now, true), Step::Fire);
    assert_eq!(next_step(Some(now - HOUR), now, true), Step::Fire);
    assert_eq!(next_step(Some(now), now, false), Step::Fire);
    assert_eq!(next_step(Some(now + 1), now, true), Step::Apply);
    assert_eq!(next_step(None, now, true), Step::Apply);
    assert_eq!(next_step(Some(now + 1), now, false), Step::Wait);
    assert_eq!(next_step(None, now, false), Step::Wait);
}

#[test]
fn an_alert_whose_own_message_is_in_the_batch_is_taken_as_new_unless_dispositions_wait_for_it() {
    let (a, b, c) = (alert("A"), alert("B"), alert("C"));
    let (visit_b, visit_d) = (visited("B", "e-b", T0), visited("D", "e-d", T0));
    let now = T0 + MIN;
    let msgs = [
        (Source::Alerts, 1, &a, now),
        (Source::Dispositions, 1, &visit_b, now),
        (Source::Alerts, 2, &b, now),
        (Source::Alerts, 3, &c, now),
        (Source::Dispositions, 2, &visit_d, now),
    ];
    let applied = offsets(&[]);
    let progress = Progress {
        applied: &applied,
        replay_to: None,
    };
    let sorted = sort(&inputs(&msgs), progress, now, LIMITS);
    // D has a disposition only: it is read. C's dispositions wait in Redis: it is read too.
    let unread = sorted.taken_as_new(|id| id == "C");
    assert_eq!(unread, BTreeSet::from(["A".to_owned(), "B".to_owned()]));

    // Taken as new, from the empty state: B's disposition in the batch applies to it all the
    // same, and the writes say which alerts were not read.
    assert_eq!(sorted.to_read(&unread), ["C", "D"]);
    let read = vec![None, None];
    let outcome = apply(sorted, read, &unread, &Policies::default(), now, &zone());
    let marked: Vec<(&str, bool)> = outcome
        .batch
        .alerts
        .iter()
        .map(|w| (w.alert_id.as_str(), w.unread))
        .collect();
    assert_eq!(
        marked,
        [("A", true), ("B", true), ("C", false), ("D", false)]
    );
    // D's disposition waits for its alert; the others have theirs.
    assert_eq!(outcome.waiting, ["D"]);
    let b_state = outcome.batch.alerts.iter().find(|w| w.alert_id == "B");
    let b_state = crate::store::record::decode("B", &b_state.unwrap().state).unwrap();
    assert_eq!(b_state.events, ["e-b"]);
}
