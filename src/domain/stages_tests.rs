//! docs/contract.md §10.1 (stages are configuration) and §10.2 (policy snapshot) at domain level:
//! one test per rule, then properties over generated stage lists and per-risk stage subsets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::tests::{completed, escalations, ids};
use super::*;
use crate::domain::escalation::EscalationKind;
use crate::domain::event::{Alert, Disposition, DispositionKind, Outcome, Risk, Stage};
use crate::domain::policy::{Ladder, Ladders, Policies, Policy, StageRule, DEFAULT_RETENTION};
use DispositionKind::{Acknowledged, Closed, Feedback, Met, Visited};

const S: Millis = 1_000;
/// issued_at of every test alert.
const T0: Millis = 1_795_000_000_000;
const SIGN: Millis = T0 + 3 * S;
const VISIT: Millis = T0 + 10 * S;
const MEET: Millis = T0 + 20 * S;
const FEEDBACK: Millis = T0 + 60 * S;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn rule(name: &str, within: Millis, satisfied_by: &[DispositionKind]) -> StageRule {
    StageRule {
        stage: Stage::new(name).unwrap(),
        within,
        satisfied_by: satisfied_by.to_vec(),
    }
}

/// visit 10 s, meet 20 s, feedback 60 s, with the default `satisfied_by`.
fn defaults() -> Vec<StageRule> {
    StageRule::defaults([10 * S, 20 * S, 60 * S])
}

/// The §10.1 example stage: signed for within 3 s.
fn sign_for() -> StageRule {
    rule("sign_for", 3 * S, &[Acknowledged, Visited, Met, Feedback])
}

/// `stages`, warned 2 s before; levels at +0 s, +5 s, +10 s paging l1, l2, l3.
fn ladder_with(stages: Vec<StageRule>) -> Ladder {
    Ladder {
        stages,
        warn_before: 2 * S,
        escalate_after: vec![0, 5 * S, 10 * S],
        notify: vec![names(&["l1"]), names(&["l2"]), names(&["l3"])],
        warn_notify: names(&["w"]),
        grace: 0,
    }
}

/// sign_for, visit, meet, feedback.
fn configured() -> Ladder {
    let mut stages = vec![sign_for()];
    stages.extend(defaults());
    ladder_with(stages)
}

fn uniform(l: Ladder) -> Policies {
    Policies::from(Policy::uniform(l))
}

/// `high` and `medium` get [`configured`], `low` gets `low`.
fn with_low(low: Ladder) -> Policies {
    Policies::from(Policy::new(Ladders {
        high: configured(),
        medium: configured(),
        low,
    }))
}

fn alert(id: &str, risk: Risk) -> Alert {
    Alert {
        alert_id: id.into(),
        issued_at: T0,
        jurisdiction: "620102-GWM".into(),
        risk,
        channel: None,
        fraud_type: None,
        amount_cents: None,
    }
}

fn disp(event_id: &str, kind: DispositionKind, at: Millis) -> Disposition {
    Disposition {
        event_id: event_id.into(),
        alert_id: "A".into(),
        kind,
        occurred_at: at,
        officer_id: Some("620102-0457".into()),
        outcome: (kind == Feedback).then_some(Outcome::Dissuaded),
    }
}

fn opened(p: &Policies, id: &str, risk: Risk, now: Millis) -> AlertState {
    let mut s = AlertState::default();
    s.apply_alert(alert(id, risk), p, now);
    s
}

/// The status of the alert's clock for `stage`, by its snapshot.
fn status(s: &AlertState, p: &Policies, stage: &str) -> StageStatus {
    s.stage(p.for_state(s), stage)
        .unwrap_or_else(|| panic!("no clock for {stage}"))
        .status
}

fn find<'a>(fired: &'a [Escalation], id: &str) -> &'a Escalation {
    fired
        .iter()
        .find(|e| e.escalation_id == id)
        .unwrap_or_else(|| panic!("{id} did not fire: {fired:?}"))
}

/// Fires `s` every `step` ms from `from` to `to` and collects what fired.
fn fire_through(s: &mut AlertState, p: &Policies, from: Millis, to: Millis) -> Vec<Escalation> {
    let mut out = Vec::new();
    for t in (from..=to).step_by(250) {
        out.extend(escalations(&s.fire(p, t)).into_iter().cloned());
    }
    out
}

// --- §10.1: a configured stage is a stage like any other -------------------------------------

#[test]
fn a_configured_stage_warns_breaches_and_resolves_like_any_stage() {
    let p = uniform(configured());
    let mut s = opened(&p, "A", Risk::Medium, T0);
    assert_eq!(s.stages.len(), 4);
    assert!(s.fire(&p, SIGN - 2 * S - 1).is_empty());

    let fired = s.fire(&p, SIGN - 2 * S);
    assert_eq!(ids(&fired), ["A:sign_for:0"]);
    let w = escalations(&fired)[0];
    assert_eq!(
        (w.kind, w.stage.as_str(), w.level, w.deadline, w.due_at),
        (
            EscalationKind::Warning,
            "sign_for",
            0,
            SIGN,
            Some(SIGN - 2 * S)
        )
    );
    assert_eq!(w.notify, names(&["w"]));

    let fired = s.fire(&p, SIGN);
    assert_eq!(ids(&fired), ["A:sign_for:1"]);
    let b = escalations(&fired)[0];
    assert_eq!(
        (b.kind, b.stage.as_str(), b.level, b.due_at, b.fired_at),
        (EscalationKind::Breach, "sign_for", 1, Some(SIGN), SIGN)
    );
    assert_eq!(b.notify, names(&["l1"]));

    // Level 2 is due at SIGN + 5 s = VISIT - 2 s, with visit's warning: ladder order first.
    let fired = s.fire(&p, SIGN + 5 * S);
    assert_eq!(ids(&fired), ["A:sign_for:2", "A:visit:0"]);
    assert_eq!(escalations(&fired)[0].notify, names(&["l2"]));

    // Signed for late, before level 3: one resolved at level 2, paging level 2's list.
    let now = SIGN + 6 * S;
    let effects = s.apply_disposition(disp("ack", Acknowledged, now - 500), &p, now);
    assert_eq!(completed(&effects), [("sign_for", false)]);
    assert_eq!(ids(&effects), ["A:sign_for:resolved"]);
    let r = escalations(&effects)[0];
    assert_eq!(
        (
            r.kind,
            r.stage.as_str(),
            r.level,
            r.deadline,
            r.due_at,
            r.fired_at
        ),
        (EscalationKind::Resolved, "sign_for", 2, SIGN, None, now)
    );
    assert_eq!(r.notify, names(&["l2"]));
    assert_eq!(
        status(&s, &p, "sign_for"),
        StageStatus::Satisfied {
            at: now - 500,
            on_time: false
        }
    );

    // Nothing more for sign_for; the other stages run on: 3 levels each (visit's warning fired
    // already, meet's and feedback's are superseded by their passed deadlines).
    let later = s.fire(&p, FEEDBACK + 100 * S);
    assert!(escalations(&later).iter().all(|e| e.stage != "sign_for"));
    assert_eq!(ids(&later).len(), 9, "{:?}", ids(&later));
}

#[test]
fn acknowledged_satisfies_only_the_stages_that_list_it() {
    let mut stages = vec![sign_for(), rule("call_back", 5 * S, &[Acknowledged, Met])];
    stages.extend(defaults());
    let p = uniform(ladder_with(stages));
    let mut s = opened(&p, "A", Risk::Medium, T0);
    let effects = s.apply_disposition(disp("ack", Acknowledged, T0 + S), &p, T0 + S);
    assert_eq!(
        completed(&effects),
        [("sign_for", true), ("call_back", true)]
    );
    for stage in Stage::DEFAULTS {
        assert_eq!(status(&s, &p, stage), StageStatus::Open, "{stage}");
    }
    assert!(s.is_open());
    // `met` then satisfies the stages listing it that are still open, in ladder order.
    let effects = s.apply_disposition(disp("met", Met, T0 + 2 * S), &p, T0 + 2 * S);
    assert_eq!(completed(&effects), [("visit", true), ("meet", true)]);
    assert_eq!(status(&s, &p, "feedback"), StageStatus::Open);
}

#[test]
fn a_kind_that_satisfies_no_stage_of_the_alert_only_reaches_the_timeline() {
    // Low risk requires only feedback; the other risks' stages do list these kinds.
    let p = with_low(ladder_with(vec![rule("feedback", 60 * S, &[Feedback])]));
    for kind in [Acknowledged, Visited, Met] {
        let mut s = opened(&p, "A", Risk::Low, T0);
        let before = s.clone();
        let effects = s.apply_disposition(disp("e1", kind, T0 + S), &p, T0 + S);
        assert_eq!(
            effects,
            [Effect::DispositionApplied {
                kind,
                outcome: None
            }],
            "{kind:?}"
        );
        assert_eq!(s.stages, before.stages);
        assert_eq!(s.closed_at, None);
        assert_eq!(s.timeline.len(), before.timeline.len() + 1);
        let last = s.timeline.last().unwrap();
        assert_eq!(
            (
                last.what.as_str(),
                last.event_id.as_deref(),
                last.stage.as_ref()
            ),
            (kind.as_str(), Some("e1"), None)
        );

        let mut medium = opened(&p, "M", Risk::Medium, T0);
        let effects = medium.apply_disposition(disp("e1", kind, T0 + S), &p, T0 + S);
        assert!(
            !completed(&effects).is_empty(),
            "{kind:?} satisfies sign_for"
        );
    }
}

#[test]
fn feedback_always_closes_the_alert_even_when_no_stage_lists_it() {
    let p = with_low(ladder_with(defaults()[..2].to_vec())); // visit and meet only
    let mut s = opened(&p, "A", Risk::Low, T0);
    assert_eq!(ids(&s.fire(&p, VISIT)), ["A:visit:1"]);
    let now = VISIT + S;
    let effects = s.apply_disposition(disp("f", Feedback, now), &p, now);
    assert!(completed(&effects).is_empty(), "no stage lists feedback");
    assert_eq!(ids(&effects), ["A:visit:resolved"]);
    assert_eq!(effects.last(), Some(&Effect::AlertClosed));
    assert_eq!(status(&s, &p, "visit"), StageStatus::Cancelled);
    assert_eq!(status(&s, &p, "meet"), StageStatus::Cancelled);
    assert_eq!(s.closed_at, Some(now));
    assert!(s.fire(&p, FEEDBACK + 100 * S).is_empty());
    assert_eq!(s.next_due(&p), None);

    // Where stages list it, feedback satisfies exactly those, then closes the rest.
    let p = uniform(configured());
    let mut s = opened(&p, "A", Risk::Medium, T0);
    let effects = s.apply_disposition(disp("f", Feedback, T0 + S), &p, T0 + S);
    assert_eq!(
        completed(&effects),
        [("sign_for", true), ("feedback", true)]
    );
    assert_eq!(effects.last(), Some(&Effect::AlertClosed));
    assert_eq!(status(&s, &p, "visit"), StageStatus::Cancelled);
    assert_eq!(status(&s, &p, "meet"), StageStatus::Cancelled);
    assert!(!s.is_open());
}

#[test]
fn closed_always_closes_without_satisfying_anything_whatever_satisfied_by_says() {
    // Configuration refuses `closed` in satisfied_by; a policy built or restored with it anyway
    // must still not let `closed` satisfy a stage.
    let mut stages = vec![rule("sign_for", 3 * S, &[Acknowledged, Closed])];
    stages.extend(defaults().into_iter().map(|mut r| {
        r.satisfied_by.push(Closed);
        r
    }));
    let p = uniform(ladder_with(stages));
    let mut s = opened(&p, "A", Risk::Medium, T0);
    s.fire(&p, SIGN); // sign_for level 1
    let now = SIGN + S;
    let effects = s.apply_disposition(disp("c", Closed, now - 1), &p, now);
    assert!(completed(&effects).is_empty(), "{effects:?}");
    assert_eq!(ids(&effects), ["A:sign_for:resolved"]);
    assert_eq!(effects.last(), Some(&Effect::AlertClosed));
    for stage in ["sign_for", "visit", "meet", "feedback"] {
        assert_eq!(status(&s, &p, stage), StageStatus::Cancelled, "{stage}");
    }
    assert_eq!(s.closed_at, Some(now));
}

#[test]
fn a_risk_whose_ladder_has_only_feedback_never_fires_for_visit_or_meet() {
    let p = with_low(ladder_with(vec![rule("feedback", 60 * S, &[Feedback])]));
    let mut s = opened(&p, "A", Risk::Low, T0);
    assert_eq!(s.stages.len(), 1);
    let mut effects = s.apply_disposition(disp("v", Visited, VISIT + S), &p, VISIT + S);
    effects.extend(s.apply_disposition(disp("m", Met, MEET + S), &p, MEET + S));
    for t in (T0..=FEEDBACK + 20 * S).step_by(500) {
        effects.extend(s.fire(&p, t));
    }
    assert!(completed(&effects).is_empty());
    assert_eq!(
        ids(&effects),
        [
            "A:feedback:0",
            "A:feedback:1",
            "A:feedback:2",
            "A:feedback:3"
        ]
    );
    // The same policy does run visit and meet for the other risks.
    let mut medium = opened(&p, "M", Risk::Medium, T0);
    let fired = ids(&medium.fire(&p, FEEDBACK + 20 * S));
    assert!(fired.contains(&"M:visit:1".to_owned()) && fired.contains(&"M:meet:1".to_owned()));
}

#[test]
fn each_stage_deadline_comes_from_its_own_within() {
    // Ladder order is not deadline order.
    let p = uniform(Ladder {
        warn_before: 0,
        escalate_after: vec![0],
        notify: vec![names(&["l1"])],
        ..ladder_with(vec![
            rule("a", 7 * S, &[Visited]),
            rule("b", 3 * S, &[Met]),
            rule("c", 11 * S, &[Feedback]),
        ])
    });
    let mut s = opened(&p, "A", Risk::High, T0);
    let policy = p.for_state(&s);
    for (stage, within) in [("a", 7 * S), ("b", 3 * S), ("c", 11 * S)] {
        assert_eq!(s.stage(policy, stage).unwrap().deadline, T0 + within);
    }
    assert!(s.fire(&p, T0 + 3 * S - 1).is_empty());
    for (stage, within) in [("b", 3 * S), ("a", 7 * S), ("c", 11 * S)] {
        let fired = s.fire(&p, T0 + within);
        assert_eq!(ids(&fired), [format!("A:{stage}:1")]);
        assert_eq!(escalations(&fired)[0].deadline, T0 + within);
        assert!(s.fire(&p, T0 + within + 999).is_empty());
    }
}

#[test]
fn ties_in_due_time_fire_in_ladder_order_then_level() {
    // zeta's levels are due at 10, 15, 15 s; alpha's at 5, 10, 10 s.
    let p = uniform(Ladder {
        warn_before: 0,
        escalate_after: vec![0, 5 * S, 5 * S],
        ..ladder_with(vec![
            rule("zeta", 10 * S, &[Visited]),
            rule("alpha", 5 * S, &[Met]),
        ])
    });
    let mut s = opened(&p, "A", Risk::High, T0);
    let fired = s.fire(&p, T0 + 20 * S);
    assert_eq!(
        ids(&fired),
        [
            "A:alpha:1",
            "A:zeta:1",
            "A:alpha:2",
            "A:alpha:3",
            "A:zeta:2",
            "A:zeta:3"
        ]
    );
}

// --- §10.2: an alert keeps its policy -------------------------------------------------------

/// The default stages on [`ladder_with`]'s ladder.
fn policy_a() -> Policy {
    Policy::uniform(ladder_with(defaults()))
}

/// sign_for added; warned 1 s before; a shorter ladder paging other people.
fn policy_b() -> Policy {
    Policy::uniform(Ladder {
        warn_before: S,
        escalate_after: vec![0, S, 2 * S],
        notify: vec![names(&["b1"]), names(&["b2"]), names(&["b3"])],
        warn_notify: names(&["bw"]),
        ..configured()
    })
}

/// Every escalation's `due_at`, `deadline` and `notify` follow `ladder`.
fn follows(fired: &[Escalation], ladder: &Ladder) {
    for e in fired {
        let r = &ladder.stages[ladder.position(e.stage.as_str()).unwrap()];
        assert_eq!(e.deadline, T0 + r.within, "{e:?}");
        let due = match e.level {
            0 => e.deadline - ladder.warn_before,
            l => e.deadline + ladder.escalate_after[usize::from(l) - 1],
        };
        assert_eq!(e.due_at, Some(due), "{e:?}");
        assert_eq!(e.notify, ladder.notify(e.level), "{e:?}");
    }
}

#[test]
fn an_open_alert_keeps_the_ladder_it_was_first_processed_with() {
    let (a, b) = (Arc::new(policy_a()), Arc::new(policy_b()));
    assert_ne!(a.version(), b.version());
    let mut p = Policies::new(a.clone(), DEFAULT_RETENTION);
    let mut old = opened(&p, "OLD", Risk::Medium, T0);
    p.set_current(b.clone());
    assert_eq!(p.current().version(), b.version());
    let mut new = opened(&p, "NEW", Risk::Medium, T0);

    assert_eq!(old.policy_version.as_deref(), Some(a.version()));
    assert_eq!(new.policy_version.as_deref(), Some(b.version()));
    assert_eq!(p.for_state(&old).version(), a.version());
    assert_eq!(p.for_state(&new).version(), b.version());
    assert_eq!((old.stages.len(), new.stages.len()), (3, 4));

    let fired_old = fire_through(&mut old, &p, T0, FEEDBACK + 20 * S);
    let fired_new = fire_through(&mut new, &p, T0, FEEDBACK + 20 * S);
    assert_eq!(fired_old.len(), 12, "3 warnings + 9 levels");
    assert_eq!(fired_new.len(), 16, "4 warnings + 12 levels");
    follows(&fired_old, a.for_risk(Risk::Medium));
    follows(&fired_new, b.for_risk(Risk::Medium));
    assert!(fired_old.iter().all(|e| e.stage != "sign_for"));

    let e = find(&fired_old, "OLD:visit:0");
    assert_eq!(
        (e.due_at, e.notify.clone()),
        (Some(VISIT - 2 * S), names(&["w"]))
    );
    let e = find(&fired_old, "OLD:visit:2");
    assert_eq!(
        (e.due_at, e.notify.clone()),
        (Some(VISIT + 5 * S), names(&["l2"]))
    );
    let e = find(&fired_new, "NEW:visit:0");
    assert_eq!(
        (e.due_at, e.notify.clone()),
        (Some(VISIT - S), names(&["bw"]))
    );
    let e = find(&fired_new, "NEW:visit:2");
    assert_eq!(
        (e.due_at, e.notify.clone()),
        (Some(VISIT + S), names(&["b2"]))
    );
}

#[test]
fn dispositions_of_an_open_alert_are_judged_by_its_snapshot() {
    let mut p = Policies::from(policy_a());
    let mut s = opened(&p, "A", Risk::Medium, T0);
    s.fire(&p, VISIT + 5 * S); // visit levels 1 and 2 under A
    p.set_current(Arc::new(policy_b()));
    let now = VISIT + 6 * S;
    // Under B, visit's level 3 would be overdue (VISIT + 2 s) and `acknowledged` would satisfy
    // sign_for; under A neither.
    let before = s.stages.clone();
    let effects = s.apply_disposition(disp("ack", Acknowledged, now), &p, now);
    assert_eq!(
        effects,
        [Effect::DispositionApplied {
            kind: Acknowledged,
            outcome: None
        }]
    );
    assert_eq!(s.stages, before);
    let effects = s.apply_disposition(disp("v", Visited, now), &p, now);
    assert_eq!(completed(&effects), [("visit", false)]);
    assert_eq!(ids(&effects), ["A:visit:resolved"]);
    let r = escalations(&effects)[0];
    assert_eq!((r.level, r.notify.clone()), (2, names(&["l2"])));
    assert_eq!(s.next_due(&p), Some(MEET - 2 * S), "A's warning lead");
}

#[test]
fn an_alert_held_for_takes_the_policy_in_force_when_it_arrives() {
    let mut p = Policies::from(policy_a());
    let mut s = AlertState::default();
    assert_eq!(
        s.apply_disposition(disp("ack", Acknowledged, T0 + S), &p, T0 + S),
        [Effect::DispositionHeld]
    );
    assert_eq!(s.policy_version, None);
    p.set_current(Arc::new(policy_b()));
    let effects = s.apply_alert(alert("A", Risk::Medium), &p, T0 + 2 * S);
    assert_eq!(s.policy_version.as_deref(), Some(p.current().version()));
    // B's sign_for lists acknowledged: the held event satisfies it.
    assert_eq!(completed(&effects), [("sign_for", true)]);
}

#[test]
fn a_restored_snapshot_keeps_judging_the_alerts_processed_under_it() {
    let (a, b) = (policy_a(), policy_b());
    let s = opened(&Policies::from(a.clone()), "A", Risk::Medium, T0);
    let stored = serde_json::to_string(&s).unwrap();

    // Restart with B in force; A comes back from its stored snapshot.
    let mut p = Policies::from(b.clone());
    let mut s: AlertState = serde_json::from_str(&stored).unwrap();
    p.insert(Arc::new(
        Policy::from_snapshot(a.version(), &a.snapshot_json()).unwrap(),
    ));
    assert_eq!(p.current().version(), b.version());
    assert_eq!(p.for_state(&s).version(), a.version());
    let fired = fire_through(&mut s, &p, T0, FEEDBACK + 20 * S);
    assert_eq!(fired.len(), 12);
    follows(&fired, a.for_risk(Risk::Medium));
}

#[test]
fn policy_version_is_recorded_when_the_alert_is_applied_and_survives_a_json_round_trip() {
    let p = uniform(configured());
    let mut s = AlertState::default();
    s.apply_disposition(disp("v", Visited, T0 + S), &p, T0 + S);
    assert_eq!(s.policy_version, None, "only dispositions so far");
    s.apply_alert(alert("A", Risk::High), &p, T0 + S);
    let version = p.current().version().to_owned();
    assert_eq!(s.policy_version.as_deref(), Some(version.as_str()));
    s.fire(&p, MEET + 5 * S);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(&version), "{json}");
    let back: AlertState = serde_json::from_str(&json).unwrap();
    assert_eq!(back.policy_version.as_deref(), Some(version.as_str()));
    assert_eq!(back, s);
}

/// `l` with exactly one field changed, for each field a policy version must cover.
fn variants(l: &Ladder) -> Vec<(&'static str, Ladder)> {
    fn with(l: &Ladder, f: impl FnOnce(&mut Ladder)) -> Ladder {
        let mut v = l.clone();
        f(&mut v);
        v
    }
    let mut out = vec![
        ("within", with(l, |v| v.stages[0].within += 1)),
        (
            "satisfied_by",
            with(l, |v| {
                let sb = &mut v.stages[0].satisfied_by;
                match sb.iter().position(|k| *k == Acknowledged) {
                    Some(i) => drop(sb.remove(i)),
                    None => sb.push(Acknowledged),
                }
            }),
        ),
        (
            "stage name",
            with(l, |v| {
                let name = v.stages[0].stage.as_str();
                let renamed = if name.len() < 32 {
                    format!("{name}x")
                } else if name.ends_with('x') {
                    format!("{}y", &name[..31])
                } else {
                    format!("{}x", &name[..31])
                };
                v.stages[0].stage = Stage::new(&renamed).unwrap();
            }),
        ),
        (
            "stage added",
            with(l, |v| v.stages.push(rule("extra_stage", S, &[Met]))),
        ),
        ("stage removed", with(l, |v| drop(v.stages.pop()))),
        ("warn_before", with(l, |v| v.warn_before += 1)),
        (
            "escalate_after",
            with(l, |v| match v.escalate_after.last_mut() {
                Some(last) => *last += 1,
                None => v.escalate_after.push(0),
            }),
        ),
        (
            "notify",
            with(l, |v| match v.notify.first_mut() {
                Some(first) => first.push("someone_else".into()),
                None => v.notify.push(names(&["someone_else"])),
            }),
        ),
        (
            "warn_notify",
            with(l, |v| v.warn_notify.push("someone_else".into())),
        ),
        ("grace", with(l, |v| v.grace += 1)),
    ];
    if l.stages.len() > 1 {
        out.push(("stage order", with(l, |v| v.stages.reverse())));
    }
    out
}

fn is_version(v: &str) -> bool {
    v.len() == 16
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every one-field change of any risk's ladder changes the version; equal content does not.
fn check_versions(policy: &Policy) -> Result<(), TestCaseError> {
    prop_assert!(is_version(policy.version()), "{}", policy.version());
    let rehashed = Policy::new(policy.ladders().clone());
    prop_assert_eq!(rehashed.version(), policy.version());
    let mut seen = BTreeMap::new();
    seen.insert(policy.version().to_owned(), "base");
    for risk in Risk::ALL {
        for (what, changed) in variants(policy.for_risk(risk)) {
            prop_assert_ne!(&changed, policy.for_risk(risk), "{} is no change", what);
            let mut ladders = policy.ladders().clone();
            *match risk {
                Risk::High => &mut ladders.high,
                Risk::Medium => &mut ladders.medium,
                Risk::Low => &mut ladders.low,
            } = changed;
            let v = Policy::new(ladders).version().to_owned();
            prop_assert!(is_version(&v));
            if let Some(other) = seen.insert(v.clone(), what) {
                return Err(TestCaseError::fail(format!(
                    "{risk} {what} has the version of {other}: {v}"
                )));
            }
        }
    }
    Ok(())
}

fn check_snapshot(policy: &Policy) -> Result<(), TestCaseError> {
    let restored = Policy::from_snapshot(policy.version(), &policy.snapshot_json())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&restored, policy);
    prop_assert_eq!(restored.version(), policy.version());
    let rehashed = Policy::new(restored.ladders().clone());
    prop_assert_eq!(
        rehashed.version(),
        policy.version(),
        "the restored content hashes to the same version"
    );
    Ok(())
}

#[test]
fn the_policy_version_is_a_stable_hash_of_every_field() {
    let equal = (policy_b(), policy_b());
    assert_eq!(equal.0.version(), equal.1.version());
    assert_eq!(Policy::default().version(), Policy::default().version());
    assert_ne!(policy_a().version(), policy_b().version());
    // Swapping two risks' ladders is a change too.
    let l = |stages| ladder_with(stages);
    let hm = Policy::new(Ladders {
        high: l(defaults()),
        medium: configured(),
        low: configured(),
    });
    let mh = Policy::new(Ladders {
        high: configured(),
        medium: l(defaults()),
        low: configured(),
    });
    assert_ne!(hm.version(), mh.version());
    for p in [Policy::default(), policy_a(), policy_b(), hm, mh] {
        check_versions(&p).unwrap();
    }
}

#[test]
fn a_policy_round_trips_through_its_snapshot() {
    for p in [Policy::default(), policy_a(), policy_b()] {
        check_snapshot(&p).unwrap();
    }
}

// --- properties over generated stage lists --------------------------------------------------

const KINDS: [DispositionKind; 4] = [Acknowledged, Visited, Met, Feedback];

/// 1–6 distinct stage names of `[a-z0-9_]{1,32}` in random order, each due within 0.5–8 s and
/// satisfied by a non-empty subset of the satisfying kinds.
fn rules_strategy() -> impl Strategy<Value = Vec<StageRule>> {
    prop::collection::btree_set("[a-z0-9_]{1,32}", 1..=6)
        .prop_flat_map(|set| {
            let n = set.len();
            (
                Just(set.into_iter().collect::<Vec<String>>()).prop_shuffle(),
                prop::collection::vec(
                    (1..=16i64, prop::sample::subsequence(KINDS.to_vec(), 1..=4)),
                    n,
                ),
            )
        })
        .prop_map(|(names, rules)| {
            names
                .iter()
                .zip(rules)
                .map(|(name, (within, by))| rule(name, within * 500, &by))
                .collect()
        })
}

/// A policy over generated stages: warn_before 0–10 s, 0–4 non-decreasing levels with one
/// notify list each, grace 0–2 s, and per risk a non-empty subsequence of the stage list.
fn policy_strategy() -> impl Strategy<Value = Policy> {
    (
        rules_strategy(),
        0..=20i64,
        prop::collection::vec(0..=6i64, 0..=4),
        0..=4i64,
    )
        .prop_flat_map(|(rules, warn, steps, grace)| {
            let n = rules.len();
            let subset = prop::sample::subsequence((0..n).collect::<Vec<usize>>(), 1..=n);
            (
                Just(rules),
                Just(warn),
                Just(steps),
                Just(grace),
                prop::array::uniform3(subset),
            )
        })
        .prop_map(|(rules, warn, steps, grace, subsets)| {
            let escalate_after: Vec<Millis> = steps
                .iter()
                .scan(0, |acc, step| {
                    *acc += step * 500;
                    Some(*acc)
                })
                .collect();
            let ladder = |subset: &[usize]| Ladder {
                stages: subset.iter().map(|&i| rules[i].clone()).collect(),
                warn_before: warn * 500,
                notify: (1..=escalate_after.len())
                    .map(|i| vec![format!("p{i}")])
                    .collect(),
                escalate_after: escalate_after.clone(),
                warn_notify: names(&["w"]),
                grace: grace * 500,
            };
            Policy::new(Ladders {
                high: ladder(&subsets[0]),
                medium: ladder(&subsets[1]),
                low: ladder(&subsets[2]),
            })
        })
}

fn risk_strategy() -> impl Strategy<Value = Risk> {
    prop::sample::select(Risk::ALL.to_vec())
}

#[derive(Debug, Clone)]
enum Step {
    Fire,
    /// A disposition that occurred `lag` before it is processed.
    Disp {
        id: u8,
        kind: DispositionKind,
        lag: Millis,
    },
}

/// When the alert is processed, and up to 16 steps at processing offsets within 40 s of issue
/// (dispositions before the alert are held; event ids may repeat).
fn scenario_strategy() -> impl Strategy<Value = (Millis, Vec<(Millis, Step)>)> {
    let step = prop_oneof![
        Just(Step::Fire),
        (
            0u8..6,
            prop::sample::select(DispositionKind::ALL.to_vec()),
            0..5 * S
        )
            .prop_map(|(id, kind, lag)| Step::Disp { id, kind, lag }),
    ];
    (
        0..20 * S,
        prop::collection::vec((0..40 * S, step), 0..16).prop_map(|mut v| {
            v.sort_by_key(|(t, _)| *t);
            v
        }),
    )
}

#[derive(Debug, Clone)]
enum Input {
    Alert(Alert),
    Disp(Disposition),
}

/// Applies the alert and the steps in processing order. Returns the inputs with the time each
/// was processed, and every call's time and effects.
#[allow(clippy::type_complexity)]
fn run(
    s: &mut AlertState,
    p: &Policies,
    risk: Risk,
    alert_at: Millis,
    steps: &[(Millis, Step)],
) -> (Vec<(Millis, Input)>, Vec<(Millis, Vec<Effect>)>) {
    let mut inputs = Vec::new();
    let mut log = Vec::new();
    let mut alert_done = false;
    for (offset, step) in steps {
        if !alert_done && *offset >= alert_at {
            alert_done = true;
            let a = alert("A", risk);
            log.push((T0 + alert_at, s.apply_alert(a.clone(), p, T0 + alert_at)));
            inputs.push((T0 + alert_at, Input::Alert(a)));
        }
        let now = T0 + offset;
        match step {
            Step::Fire => log.push((now, s.fire(p, now))),
            Step::Disp { id, kind, lag } => {
                let d = disp(&format!("e{id}"), *kind, now - lag);
                log.push((now, s.apply_disposition(d.clone(), p, now)));
                inputs.push((now, Input::Disp(d)));
            }
        }
    }
    if !alert_done {
        let a = alert("A", risk);
        log.push((T0 + alert_at, s.apply_alert(a.clone(), p, T0 + alert_at)));
        inputs.push((T0 + alert_at, Input::Alert(a)));
    }
    (inputs, log)
}

/// Far beyond every generated deadline, level and grace.
const LATER: Millis = T0 + 1_000 * S;

proptest! {
    #[test]
    fn a_silent_alert_fires_every_required_level_once_in_due_order(
        policy in policy_strategy(),
        risk in risk_strategy(),
        processed in 0..10 * S,
        mut times in prop::collection::vec(0..30 * S, 1..30),
    ) {
        let p = Policies::from(policy);
        let ladder = p.current().for_risk(risk).clone();
        let mut s = opened(&p, "A", risk, T0 + processed);
        times.sort();
        let mut nows: Vec<Millis> = times.iter().map(|t| T0 + processed + t).collect();
        nows.push(LATER);
        let mut fired: Vec<Escalation> = Vec::new();
        for &now in &nows {
            let batch = s.fire(&p, now);
            let keys: Vec<_> = escalations(&batch)
                .iter()
                .map(|e| (e.due_at, ladder.position(e.stage.as_str()), e.level))
                .collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "due, ladder, level order: {:?}", keys);
            for e in escalations(&batch) {
                prop_assert_eq!(e.fired_at, now);
                prop_assert!(e.due_at.unwrap() <= now, "early: {:?}", e);
                fired.push(e.clone());
            }
        }

        let mut breaches: Vec<(String, u8)> = fired
            .iter()
            .filter(|e| e.kind == EscalationKind::Breach)
            .map(|e| (e.stage.to_string(), e.level))
            .collect();
        let mut expected: Vec<(String, u8)> = ladder
            .stages
            .iter()
            .flat_map(|r| (1..=ladder.escalate_after.len() as u8).map(move |l| (r.stage.to_string(), l)))
            .collect();
        breaches.sort();
        expected.sort();
        prop_assert_eq!(breaches, expected, "every level of every required stage, once");

        let dues: Vec<Millis> = fired.iter().map(|e| e.due_at.unwrap()).collect();
        prop_assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{:?}", dues);

        for e in &fired {
            let i = ladder.position(e.stage.as_str());
            prop_assert!(i.is_some(), "{:?}", e);
            let deadline = T0 + ladder.stages[i.unwrap()].within;
            let due = match e.level {
                0 => deadline - ladder.warn_before + ladder.grace,
                l => deadline + ladder.escalate_after[usize::from(l) - 1] + ladder.grace,
            };
            prop_assert_eq!(&e.escalation_id, &format!("A:{}:{}", e.stage, e.level));
            prop_assert_eq!((e.deadline, e.due_at), (deadline, Some(due)));
            let notify = match e.level {
                0 => names(&["w"]),
                l => vec![format!("p{l}")],
            };
            prop_assert_eq!(&e.notify, &notify);
        }

        // A warning fires at the first firing at or after its due time, if that is before the
        // deadline; at most once, never at or after the deadline.
        for r in &ladder.stages {
            let warnings: Vec<&Escalation> = fired
                .iter()
                .filter(|e| e.kind == EscalationKind::Warning && e.stage == r.stage)
                .collect();
            prop_assert!(warnings.len() <= 1, "{:?}", warnings);
            for w in &warnings {
                prop_assert!(w.fired_at < w.deadline, "stale warning {:?}", w);
            }
            let deadline = T0 + r.within;
            let due = deadline - ladder.warn_before + ladder.grace;
            let first = nows.iter().find(|t| **t >= due);
            let expect = ladder.warn_before > 0 && first.is_some_and(|t| *t < deadline);
            prop_assert_eq!(warnings.len() == 1, expect, "stage {}", r.stage);
        }

        prop_assert!(s.fire(&p, LATER + 1_000 * S).is_empty());
        prop_assert_eq!(s.next_due(&p), None);
    }

    #[test]
    fn a_stage_its_risk_does_not_require_never_appears(
        policy in policy_strategy(),
        (alert_at, steps) in scenario_strategy(),
    ) {
        let p = Policies::from(policy);
        for risk in Risk::ALL {
            let ladder = p.current().for_risk(risk);
            let required: BTreeSet<&str> = ladder.stages.iter().map(|r| r.stage.as_str()).collect();
            let mut s = AlertState::default();
            let (_, mut log) = run(&mut s, &p, risk, alert_at, &steps);
            log.push((LATER, s.fire(&p, LATER)));
            prop_assert_eq!(s.stages.len(), ladder.stages.len());
            for (_, effects) in &log {
                for e in effects {
                    let stage = match e {
                        Effect::Escalate(e) => e.stage.as_str(),
                        Effect::StageCompleted { stage, .. } => stage.as_str(),
                        _ => continue,
                    };
                    prop_assert!(required.contains(stage), "{} for a {} alert: {:?}", stage, risk, e);
                }
            }
            for entry in &s.timeline {
                if let Some(stage) = &entry.stage {
                    prop_assert!(required.contains(stage.as_str()), "{:?}", entry);
                }
            }
        }
    }

    #[test]
    fn replaying_every_event_again_changes_nothing(
        policy in policy_strategy(),
        risk in risk_strategy(),
        (alert_at, steps) in scenario_strategy(),
        replay_delay in 0..20 * S,
    ) {
        let p = Policies::from(policy);
        let mut s = AlertState::default();
        let (inputs, _) = run(&mut s, &p, risk, alert_at, &steps);
        let once = s.clone();
        // Redelivered after a crash: the same events, processed again somewhat later.
        let mut replay = Vec::new();
        for (at, input) in inputs {
            let now = at + replay_delay;
            replay.extend(match input {
                Input::Alert(a) => s.apply_alert(a, &p, now),
                Input::Disp(d) => s.apply_disposition(d, &p, now),
            });
        }
        prop_assert_eq!(&s, &once);
        prop_assert!(escalations(&replay).is_empty(), "{:?}", replay);
        prop_assert!(
            replay.iter().all(|e| matches!(e, Effect::DuplicateAlert | Effect::DuplicateDisposition)),
            "{:?}", replay
        );
    }

    #[test]
    fn every_resolved_follows_a_breach_of_its_stage_at_the_highest_level_fired(
        policy in policy_strategy(),
        risk in risk_strategy(),
        (alert_at, steps) in scenario_strategy(),
    ) {
        let p = Policies::from(policy);
        let ladder = p.current().for_risk(risk).clone();
        let mut s = AlertState::default();
        let (_, mut log) = run(&mut s, &p, risk, alert_at, &steps);
        log.push((LATER, s.fire(&p, LATER)));

        let mut highest: BTreeMap<String, u8> = BTreeMap::new();
        let mut resolved: BTreeMap<String, usize> = BTreeMap::new();
        for (now, effects) in &log {
            for (i, effect) in effects.iter().enumerate() {
                let Effect::Escalate(e) = effect else { continue };
                let stage = e.stage.to_string();
                let high = highest.get(&stage).copied().unwrap_or(0);
                match e.kind {
                    EscalationKind::Warning => {}
                    EscalationKind::Breach => {
                        prop_assert!(!resolved.contains_key(&stage), "breach after resolved: {:?}", e);
                        prop_assert_eq!(e.level, high + 1, "levels in order, each once");
                        highest.insert(stage, e.level);
                    }
                    EscalationKind::Resolved => {
                        prop_assert!(high > 0, "resolved without a breach: {:?}", e);
                        prop_assert_eq!(e.level, high);
                        prop_assert_eq!(&e.notify, &vec![format!("p{high}")]);
                        prop_assert_eq!((e.due_at, e.fired_at), (None, *now));
                        let r = &ladder.stages[ladder.position(&stage).unwrap()];
                        prop_assert_eq!(e.deadline, T0 + r.within);
                        // Satisfied just before, or the alert closes right after.
                        let satisfied = effects[..i].iter().any(|x| matches!(
                            x, Effect::StageCompleted { stage: st, .. } if *st == e.stage
                        ));
                        let closes = effects[i..].contains(&Effect::AlertClosed);
                        prop_assert!(satisfied || closes, "{:?}", effects);
                        *resolved.entry(stage).or_default() += 1;
                    }
                }
            }
        }
        // Conversely: every breached stage that stopped being open got exactly one.
        for (r, clock) in ladder.stages.iter().zip(&s.stages) {
            let name = r.stage.to_string();
            prop_assert_eq!(clock.level, highest.get(&name).copied().unwrap_or(0));
            let expect = usize::from(clock.level > 0 && clock.status != StageStatus::Open);
            prop_assert_eq!(resolved.get(&name).copied().unwrap_or(0), expect, "{}", name);
        }
    }

    #[test]
    fn a_state_round_trips_through_json_with_its_policy_version(
        policy in policy_strategy(),
        risk in risk_strategy(),
        (alert_at, steps) in scenario_strategy(),
    ) {
        let p = Policies::from(policy);
        let mut s = AlertState::default();
        run(&mut s, &p, risk, alert_at, &steps);
        prop_assert_eq!(s.policy_version.as_deref(), Some(p.current().version()));
        let back: AlertState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn generated_policies_hash_every_field_and_round_trip_through_their_snapshot(
        policy in policy_strategy(),
    ) {
        check_versions(&policy)?;
        check_snapshot(&policy)?;
    }
}
