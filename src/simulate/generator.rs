//! The pure part: alerts with their planned dispositions (on time, late or missing), as the
//! alert platform and the officers' app would send them, each with the time to send it.

use chrono::{Datelike, FixedOffset, SecondsFormat, TimeZone};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::Serialize;

use crate::domain::time::format_utc;
use crate::domain::{DispositionKind, Ladder, Millis, Outcome, Policy, Risk};

const JURISDICTIONS: [&str; 12] = [
    "620102-GWM",
    "110105-CYQ",
    "440305-NSQ",
    "310115-PDX",
    "330106-XHQ",
    "510107-WHQ",
    "420106-WCQ",
    "320106-GLQ",
    "500103-YZQ",
    "610113-YTQ",
    "440106-THQ",
    "370102-LXQ",
];

const FRAUD_TYPES: [&str; 5] = [
    "impersonating_police",
    "investment_scam",
    "online_loan",
    "fake_customer_service",
    "part_time_job_scam",
];

const SURNAMES: [&str; 20] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];

const PHONE_PREFIXES: [&str; 10] = [
    "138", "139", "135", "136", "150", "151", "158", "186", "187", "189",
];

/// Feedback outcomes and their weights: most alerts end with the person dissuaded.
const OUTCOMES: [(Outcome, f64); 5] = [
    (Outcome::Dissuaded, 0.62),
    (Outcome::FalsePositive, 0.12),
    (Outcome::Unreachable, 0.10),
    (Outcome::Refused, 0.10),
    (Outcome::Defrauded, 0.06),
];

/// Share of high / medium risk alerts; the rest are low.
const RISK_HIGH: f64 = 0.2;
const RISK_MEDIUM: f64 = 0.5;
/// The officer meets the person at the door: one `met` event instead of `visited` then `met`.
const P_MET_AT_DOOR: f64 = 0.25;
/// The center withdraws the alert (`closed`) instead of the officer giving feedback.
const P_WITHDRAWN: f64 = 0.05;
/// A disposition is sent twice (the app retried).
const P_DUPLICATE: f64 = 0.02;
/// The alert reaches Kafka after its first disposition; with about four dispositions per alert
/// this puts ~2% of dispositions before their alert.
const P_ALERT_DELAYED: f64 = 0.08;
/// Longest delay between an event and its upload from the app.
const MAX_UPLOAD_DELAY_MS: Millis = 500;
/// On-time stages are done at this fraction of their deadline.
const ON_TIME: (f64, f64) = (0.3, 0.9);
/// Late stages are done at this fraction of their deadline (up to 50% over).
const LATE: (f64, f64) = (1.05, 1.5);

/// China Standard Time, the offset of every timestamp the platform and the app send.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// RFC 3339 with the `+08:00` offset and milliseconds, e.g. `2026-11-22T10:00:00.000+08:00`.
pub fn format_china(ms: Millis) -> String {
    match china().timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, false),
        None => format_utc(ms),
    }
}

/// `yyyymmdd` of `ms` in China Standard Time.
fn china_date(ms: Millis) -> String {
    match china().timestamp_millis_opt(ms).single() {
        Some(t) => format!("{:04}{:02}{:02}", t.year(), t.month(), t.day()),
        None => "19700101".into(),
    }
}

/// Which input topic a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Alerts,
    Dispositions,
}

/// One message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: Topic,
    /// The Kafka key: the alert id.
    pub key: String,
    /// The JSON value.
    pub payload: String,
    /// Wall-clock time (UTC ms) to send it; never before the event it reports.
    pub send_at: Millis,
    /// A second copy of a disposition already planned (same `event_id`).
    pub duplicate: bool,
    /// A disposition planned to be sent before its alert.
    pub before_alert: bool,
}

/// How an alert's officers behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Every stage done in time.
    OnTime,
    /// The visit (and sometimes the meeting) after its deadline.
    Late,
    /// No disposition at all: every stage breaches.
    Missing,
}

/// One alert and everything that will be sent about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub alert_id: String,
    pub risk: Risk,
    pub issued_at: Millis,
    pub fate: Fate,
    /// The alert and its dispositions, in the order to send them (by `send_at`).
    pub messages: Vec<Message>,
}

impl Plan {
    pub fn dispositions(&self) -> impl Iterator<Item = &Message> {
        self.messages
            .iter()
            .filter(|m| m.topic == Topic::Dispositions)
    }
}

/// What the alert platform sends (docs/contract.md §2), personal data included on purpose: the
/// processor must drop `subject`.
#[derive(Serialize)]
struct AlertJson<'a> {
    alert_id: &'a str,
    issued_at: String,
    jurisdiction: &'a str,
    risk: &'a str,
    channel: &'a str,
    fraud_type: &'a str,
    amount_cents: i64,
    subject: Subject,
}

#[derive(Serialize)]
struct Subject {
    name: String,
    phone: String,
}

/// What the officers' app sends; `note` is free text the processor must never log.
#[derive(Serialize)]
struct DispositionJson<'a> {
    event_id: &'a str,
    alert_id: &'a str,
    kind: &'a str,
    occurred_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    officer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a str>,
    note: &'a str,
}

/// A disposition before it gets absolute times: offsets are from `issued_at`.
#[derive(Debug, Clone)]
struct Step {
    kind: DispositionKind,
    occurred: Millis,
    outcome: Option<Outcome>,
}

/// Produces alerts and their planned dispositions; pure apart from the RNG it is given.
#[derive(Debug, Clone)]
pub struct Generator {
    policy: Policy,
    late: f64,
    missing: f64,
    /// Suffix of every alert id of this run, so reruns do not collide.
    run_suffix: String,
    /// Part of every event id of this run.
    app: String,
    alerts: u64,
    events: u64,
}

impl Generator {
    /// `late` and `missing` are fractions in 0..=1; `run` is a random number that tells this
    /// run's ids apart from other runs'.
    pub fn new(policy: Policy, late: f64, missing: f64, run: u32) -> Generator {
        const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut n = run;
        let mut suffix = String::with_capacity(4);
        for _ in 0..4 {
            suffix.push(char::from(BASE36[(n % 36) as usize]));
            n /= 36;
        }
        Generator {
            policy,
            late: late.clamp(0.0, 1.0),
            missing: missing.clamp(0.0, 1.0),
            run_suffix: suffix,
            app: format!("{run:08x}"),
            alerts: 0,
            events: 0,
        }
    }

    /// The next alert, issued at `now`, with its dispositions scheduled in real time.
    pub fn next_plan<R: Rng + ?Sized>(&mut self, rng: &mut R, now: Millis) -> Plan {
        self.plan(rng, now, false)
    }

    /// The next alert for a burst: everything is sent at `now`, in order, and `issued_at` is
    /// backdated so that every disposition has already happened and is on time or late as drawn.
    pub fn next_backdated<R: Rng + ?Sized>(&mut self, rng: &mut R, now: Millis) -> Plan {
        self.plan(rng, now, true)
    }

    fn plan<R: Rng + ?Sized>(&mut self, rng: &mut R, now: Millis, backdate: bool) -> Plan {
        let risk = draw_risk(rng);
        let jurisdiction = *JURISDICTIONS
            .choose(rng)
            .expect("jurisdictions are not empty");
        let region = &jurisdiction[..6];
        let fate = if rng.random_bool(self.missing) {
            Fate::Missing
        } else if rng.random_bool(self.late) {
            Fate::Late
        } else {
            Fate::OnTime
        };
        let steps = match fate {
            Fate::Missing => Vec::new(),
            _ => steps(rng, fate, self.policy.for_risk(risk)),
        };

        // Send offsets: each event a little after it happened; a few alerts reach Kafka after
        // their first disposition; a few dispositions are sent twice.
        let mut sends: Vec<(usize, Millis, bool)> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    i,
                    s.occurred + rng.random_range(0..=MAX_UPLOAD_DELAY_MS),
                    false,
                )
            })
            .collect();
        let alert_send = match sends.first() {
            Some(&(_, first, _)) if rng.random_bool(P_ALERT_DELAYED) => {
                first + rng.random_range(50..=1000)
            }
            _ => 0,
        };
        for k in 0..sends.len() {
            if rng.random_bool(P_DUPLICATE) {
                let (i, at, _) = sends[k];
                sends.push((i, at + rng.random_range(100..=5000), true));
            }
        }

        let span = steps.iter().map(|s| s.occurred).max().unwrap_or(0);
        let issued_at = if backdate { now - span } else { now };
        let send_time = |offset: Millis| if backdate { now } else { issued_at + offset };

        self.alerts += 1;
        let alert_id = format!(
            "GA-{region}-{}-{:06}-{}",
            china_date(issued_at),
            self.alerts,
            self.run_suffix
        );
        let subject = Subject {
            name: format!(
                "{}{}",
                SURNAMES.choose(rng).expect("surnames are not empty"),
                if rng.random_bool(0.7) { "**" } else { "*" }
            ),
            phone: format!(
                "{}****{:04}",
                PHONE_PREFIXES.choose(rng).expect("prefixes are not empty"),
                rng.random_range(0..10_000)
            ),
        };
        // Log-uniform between 1 000 and 2 000 000 yuan, in whole yuan.
        let yuan = rng.random_range(1_000f64.ln()..2_000_000f64.ln()).exp();
        let alert = AlertJson {
            alert_id: &alert_id,
            issued_at: format_china(issued_at),
            jurisdiction,
            risk: risk.as_str(),
            channel: "96110",
            fraud_type: FRAUD_TYPES.choose(rng).expect("fraud types are not empty"),
            amount_cents: yuan.round() as i64 * 100,
            subject,
        };

        // One payload per event; a duplicate is the app sending the very same bytes again.
        let officer = format!("{region}-{:04}", rng.random_range(1..=9999));
        let payloads: Vec<String> = steps
            .iter()
            .map(|step| {
                self.events += 1;
                let json = DispositionJson {
                    event_id: &format!("app-{}-{:04}", self.app, self.events),
                    alert_id: &alert_id,
                    kind: step.kind.as_str(),
                    occurred_at: format_china(issued_at + step.occurred),
                    // The center, not an officer, withdraws an alert.
                    officer_id: (step.kind != DispositionKind::Closed).then_some(officer.as_str()),
                    outcome: step.outcome.map(Outcome::as_str),
                    note: note(rng, step),
                };
                serde_json::to_string(&json).expect("a disposition serialises")
            })
            .collect();

        // (send offset, tie-break order, message)
        let mut ordered: Vec<(Millis, usize, Message)> = Vec::with_capacity(sends.len() + 1);
        ordered.push((
            alert_send,
            0,
            Message {
                topic: Topic::Alerts,
                key: alert_id.clone(),
                payload: serde_json::to_string(&alert).expect("an alert serialises"),
                send_at: send_time(alert_send),
                duplicate: false,
                before_alert: false,
            },
        ));
        for (n, &(i, at, duplicate)) in sends.iter().enumerate() {
            ordered.push((
                at,
                n + 1,
                Message {
                    topic: Topic::Dispositions,
                    key: alert_id.clone(),
                    payload: payloads[i].clone(),
                    send_at: send_time(at),
                    duplicate,
                    before_alert: at < alert_send,
                },
            ));
        }
        ordered.sort_by_key(|(at, order, _)| (*at, *order));

        Plan {
            alert_id,
            risk,
            issued_at,
            fate,
            messages: ordered.into_iter().map(|(_, _, m)| m).collect(),
        }
    }
}

fn draw_risk<R: Rng + ?Sized>(rng: &mut R) -> Risk {
    let u: f64 = rng.random();
    if u < RISK_HIGH {
        Risk::High
    } else if u < RISK_HIGH + RISK_MEDIUM {
        Risk::Medium
    } else {
        Risk::Low
    }
}

/// `fraction` (drawn from `range`) of `of`, rounded down.
fn share<R: Rng + ?Sized>(rng: &mut R, range: (f64, f64), of: Millis) -> Millis {
    (of as f64 * rng.random_range(range.0..range.1)) as Millis
}

/// A time after the deadline `of`, by up to 50%.
fn late_by<R: Rng + ?Sized>(rng: &mut R, of: Millis) -> Millis {
    share(rng, LATE, of).max(of + 1)
}

/// The dispositions of an alert that gets any, as offsets from `issued_at`.
fn steps<R: Rng + ?Sized>(rng: &mut R, fate: Fate, ladder: &Ladder) -> Vec<Step> {
    // The officers' workflow of docs/contract.md §1; a policy that leaves a stage out still
    // sees its events, on the timeline only.
    let feedback_within = ladder
        .within("feedback")
        .or(ladder.stages.iter().map(|r| r.within).max())
        .unwrap_or(6 * 3_600_000);
    let visit_within = ladder.within("visit").unwrap_or(feedback_within / 6);
    let meet_within = ladder.within("meet").unwrap_or(visit_within * 2);
    let step = |kind, occurred| Step {
        kind,
        occurred,
        outcome: None,
    };

    let mut steps = vec![step(
        DispositionKind::Acknowledged,
        share(rng, (0.02, 0.1), visit_within),
    )];
    let at_door = rng.random_bool(P_MET_AT_DOOR);
    match fate {
        Fate::Late => {
            let visit = late_by(rng, visit_within);
            if at_door {
                steps.push(step(DispositionKind::Met, visit));
            } else {
                let mut meet = if rng.random_bool(0.5) {
                    late_by(rng, meet_within)
                } else {
                    share(rng, ON_TIME, meet_within)
                };
                if meet <= visit {
                    meet = visit + share(rng, (0.01, 0.1), meet_within).max(1);
                }
                steps.push(step(DispositionKind::Visited, visit));
                steps.push(step(DispositionKind::Met, meet));
            }
        }
        _ => {
            let visit = share(rng, ON_TIME, visit_within);
            let meet = share(rng, ON_TIME, meet_within);
            if at_door || meet <= visit {
                // `met` satisfies both stages; the earlier time is on time for both.
                steps.push(step(DispositionKind::Met, visit.min(meet)));
            } else {
                steps.push(step(DispositionKind::Visited, visit));
                steps.push(step(DispositionKind::Met, meet));
            }
        }
    }
    let last = steps.last().map(|s| s.occurred).unwrap_or(0);
    let mut feedback = share(rng, ON_TIME, feedback_within);
    if feedback <= last {
        feedback = last + share(rng, (0.01, 0.05), feedback_within).max(1);
        if fate == Fate::OnTime {
            feedback = feedback.min(feedback_within);
        }
    }

    if rng.random_bool(P_WITHDRAWN) {
        // Withdrawn by the center some time after the officer signed for it; nothing after that.
        let acknowledged = steps[0].occurred;
        let closed = rng.random_range(acknowledged + 1..=feedback.max(acknowledged + 1));
        steps.retain(|s| s.occurred < closed);
        steps.push(step(DispositionKind::Closed, closed));
    } else {
        let r: f64 = rng.random();
        let mut acc = 0.0;
        let outcome = OUTCOMES
            .iter()
            .find(|(_, w)| {
                acc += w;
                r < acc
            })
            .map(|(o, _)| *o)
            .unwrap_or(Outcome::Dissuaded);
        steps.push(Step {
            kind: DispositionKind::Feedback,
            occurred: feedback,
            outcome: Some(outcome),
        });
    }
    steps
}

/// The officer's free text.
fn note<R: Rng + ?Sized>(rng: &mut R, step: &Step) -> &'static str {
    let choices: &[&'static str] = match (step.kind, step.outcome) {
        (DispositionKind::Acknowledged, _) => &[
            "已签收，正在联系当事人",
            "已签收，民警准备出发",
            "签收，电话未接通，准备上门",
        ],
        (DispositionKind::Visited, _) => &[
            "已到当事人住处",
            "已上门，当事人不在家，正在联系家属",
            "到达当事人单位",
        ],
        (DispositionKind::Met, _) => &[
            "已与当事人见面，正在劝阻",
            "当面核实，当事人情绪稳定",
            "见到当事人，查看转账记录",
        ],
        (DispositionKind::Feedback, Some(Outcome::Defrauded)) => {
            &["当事人已转账，已指导报案并申请止付"]
        }
        (DispositionKind::Feedback, Some(Outcome::Unreachable)) => {
            &["多次联系未果，已通知社区网格员"]
        }
        (DispositionKind::Feedback, Some(Outcome::FalsePositive)) => &["核实为正常交易，预警有误"],
        (DispositionKind::Feedback, Some(Outcome::Refused)) => &["当事人拒绝配合，已告知风险"],
        (DispositionKind::Feedback, _) => {
            &["当事人已停止转账，劝阻成功", "劝阻成功，已宣讲防骗知识"]
        }
        (DispositionKind::Closed, _) => &["预警中心撤回指令", "重复预警，已合并处置"],
    };
    choices.choose(rng).copied().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_rfc3339;
    use crate::domain::validate::{decode, is_identifier, Limits, Source};
    use crate::domain::{Alert, Decoded, Disposition, Ladders, Stage, StageRule};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::{HashMap, HashSet};

    const SEC: Millis = 1000;

    fn now() -> Millis {
        parse_rfc3339("2026-11-22T10:00:00+08:00").unwrap()
    }

    /// The demo policy: seconds instead of hours, high risk tighter.
    fn demo_policy() -> Policy {
        let ladder = |visit| Ladder {
            stages: StageRule::defaults([visit, 40 * SEC, 120 * SEC]),
            warn_before: 10 * SEC,
            ..Ladder::default()
        };
        Policy::new(Ladders {
            high: ladder(15 * SEC),
            medium: ladder(20 * SEC),
            low: ladder(20 * SEC),
        })
    }

    fn limits() -> Limits {
        Limits {
            max_message_bytes: 1 << 20,
            // Strict on purpose: nothing may be in the future when it is sent.
            max_clock_skew_ms: 0,
        }
    }

    /// `n` plans, one every 200 ms, in real time or backdated.
    fn plans(policy: Policy, late: f64, missing: f64, n: usize, backdate: bool) -> Vec<Plan> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut g = Generator::new(policy, late, missing, 0xdead_beef);
        (0..n)
            .map(|i| {
                let at = now() + i as Millis * 200;
                if backdate {
                    g.next_backdated(&mut rng, at)
                } else {
                    g.next_plan(&mut rng, at)
                }
            })
            .collect()
    }

    /// Decodes every message of `plan` as the processor would when it is sent.
    fn decoded(plan: &Plan) -> (Alert, Vec<Disposition>) {
        let mut alert = None;
        let mut dispositions = Vec::new();
        for m in &plan.messages {
            let source = match m.topic {
                Topic::Alerts => Source::Alerts,
                Topic::Dispositions => Source::Dispositions,
            };
            let d = decode(
                source,
                Some(m.key.as_bytes()),
                Some(m.payload.as_bytes()),
                m.send_at,
                limits(),
            )
            .unwrap_or_else(|r| panic!("{r} for {}", m.payload));
            match d {
                Decoded::Alert(a) => alert = Some(a),
                Decoded::Disposition(d) => dispositions.push(d),
            }
        }
        (alert.expect("every plan has its alert"), dispositions)
    }

    /// When each stage was first satisfied, by event time.
    fn satisfied(dispositions: &[Disposition]) -> [Option<Millis>; 3] {
        let mut at = [None; 3];
        let ladder = Ladder::default();
        for d in dispositions {
            for i in ladder.satisfied_by(d.kind) {
                let slot: &mut Option<Millis> = &mut at[i];
                *slot = Some(slot.map_or(d.occurred_at, |t: Millis| t.min(d.occurred_at)));
            }
        }
        at
    }

    #[test]
    fn every_message_passes_validation() {
        for policy in [Policy::default(), demo_policy()] {
            for backdate in [false, true] {
                let mut alert_ids = HashSet::new();
                let mut event_ids: HashMap<String, String> = HashMap::new();
                for plan in plans(policy.clone(), 0.3, 0.1, 2000, backdate) {
                    let (alert, dispositions) = decoded(&plan);
                    assert_eq!(alert.alert_id, plan.alert_id);
                    assert_eq!(alert.issued_at, plan.issued_at);
                    assert_eq!(alert.risk, plan.risk);
                    assert!(is_identifier(&alert.alert_id));
                    assert!(alert_ids.insert(alert.alert_id.clone()), "ids are unique");
                    assert!(JURISDICTIONS.contains(&alert.jurisdiction.as_str()));
                    assert_eq!(alert.channel.as_deref(), Some("96110"));
                    assert!(FRAUD_TYPES.contains(&alert.fraud_type.as_deref().unwrap()));
                    assert!(alert.amount_cents.unwrap() >= 100_000);
                    for (d, m) in dispositions.iter().zip(plan.dispositions()) {
                        assert!(d.occurred_at >= alert.issued_at);
                        // An event id comes back only as a duplicate: the same bytes, later.
                        match event_ids.get(&d.event_id) {
                            Some(first) => assert!(m.duplicate && *first == m.payload),
                            None => {
                                assert!(!m.duplicate);
                                event_ids.insert(d.event_id.clone(), m.payload.clone());
                            }
                        }
                        if let Some(officer) = &d.officer_id {
                            assert!(officer.starts_with(&alert.jurisdiction[..6]));
                        }
                    }
                    let sends: Vec<Millis> = plan.messages.iter().map(|m| m.send_at).collect();
                    assert!(
                        sends.windows(2).all(|w| w[0] <= w[1]),
                        "sorted by send time"
                    );
                }
            }
        }
    }

    #[test]
    fn messages_look_like_the_platform_and_the_app() {
        let plan = plans(Policy::default(), 0.0, 0.0, 1, false).remove(0);
        let alert: serde_json::Value = serde_json::from_str(&plan.messages[0].payload).unwrap();
        let id = alert["alert_id"].as_str().unwrap();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 5, "{id}");
        assert_eq!(parts[0], "GA");
        assert_eq!(parts[1].len(), 6);
        assert_eq!(parts[2], "20261122");
        assert_eq!(parts[3], "000001");
        assert_eq!(parts[4].len(), 4);
        assert!(alert["issued_at"].as_str().unwrap().ends_with(".000+08:00"));
        assert!(alert["subject"]["name"].as_str().unwrap().contains('*'));
        assert!(alert["subject"]["phone"].as_str().unwrap().contains("****"));
        for m in plan.dispositions() {
            let d: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
            assert!(d["event_id"].as_str().unwrap().starts_with("app-deadbeef-"));
            assert!(d["occurred_at"].as_str().unwrap().ends_with("+08:00"));
            assert!(!d["note"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn risk_mix_is_20_50_30() {
        let plans = plans(Policy::default(), 0.2, 0.1, 10_000, false);
        let share = |risk| plans.iter().filter(|p| p.risk == risk).count() as f64 / 10_000.0;
        assert!(
            (share(Risk::High) - 0.2).abs() < 0.02,
            "{}",
            share(Risk::High)
        );
        assert!((share(Risk::Medium) - 0.5).abs() < 0.02);
        assert!((share(Risk::Low) - 0.3).abs() < 0.02);
    }

    #[test]
    fn shares_follow_the_options() {
        let plans = plans(Policy::default(), 0.3, 0.2, 10_000, false);
        let missing = plans.iter().filter(|p| p.fate == Fate::Missing).count() as f64;
        assert!((missing / 10_000.0 - 0.2).abs() < 0.02);
        let late = plans.iter().filter(|p| p.fate == Fate::Late).count() as f64;
        assert!((late / (10_000.0 - missing) - 0.3).abs() < 0.03);
        let dispositions: Vec<&Message> = plans.iter().flat_map(Plan::dispositions).collect();
        let n = dispositions.len() as f64;
        let duplicates = dispositions.iter().filter(|m| m.duplicate).count() as f64;
        let early = dispositions.iter().filter(|m| m.before_alert).count() as f64;
        assert!((0.01..0.03).contains(&(duplicates / n)), "{duplicates}/{n}");
        assert!((0.01..0.035).contains(&(early / n)), "{early}/{n}");
        // Every feedback has an outcome, and the mix has more than one.
        let outcomes: HashSet<String> = plans
            .iter()
            .flat_map(|p| decoded(p).1)
            .filter_map(|d| d.outcome.map(|o| o.as_str().to_owned()))
            .collect();
        assert_eq!(outcomes.len(), 5);
    }

    #[test]
    fn missing_one_plans_no_dispositions() {
        for backdate in [false, true] {
            for plan in plans(Policy::default(), 0.5, 1.0, 1000, backdate) {
                assert_eq!(plan.fate, Fate::Missing);
                assert_eq!(plan.messages.len(), 1);
                assert_eq!(plan.dispositions().count(), 0);
            }
        }
    }

    #[test]
    fn late_zero_meets_every_deadline() {
        for policy in [Policy::default(), demo_policy()] {
            for backdate in [false, true] {
                for plan in plans(policy.clone(), 0.0, 0.0, 3000, backdate) {
                    assert_eq!(plan.fate, Fate::OnTime);
                    let (alert, dispositions) = decoded(&plan);
                    let ladder = policy.for_risk(alert.risk);
                    let closed = dispositions
                        .iter()
                        .any(|d| d.kind == DispositionKind::Closed);
                    for (stage, at) in Stage::DEFAULTS.into_iter().zip(satisfied(&dispositions)) {
                        let deadline = alert.issued_at + ladder.within(stage).unwrap();
                        match at {
                            Some(at) => assert!(at <= deadline, "{stage} late in {plan:?}"),
                            None => assert!(closed, "{stage} never satisfied in {plan:?}"),
                        }
                    }
                    // Every event is on time for the stage it is named after (a `met` after a
                    // `visited` no longer counts for `visit`).
                    for d in &dispositions {
                        let stage = match d.kind {
                            DispositionKind::Visited => "visit",
                            DispositionKind::Met => "meet",
                            DispositionKind::Feedback => "feedback",
                            _ => continue,
                        };
                        assert!(d.occurred_at <= alert.issued_at + ladder.within(stage).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn late_one_misses_every_visit_deadline() {
        for policy in [Policy::default(), demo_policy()] {
            for plan in plans(policy.clone(), 1.0, 0.0, 2000, false) {
                assert_eq!(plan.fate, Fate::Late);
                let (alert, dispositions) = decoded(&plan);
                let deadline = alert.issued_at + policy.for_risk(alert.risk).stages[0].within;
                if let Some(visit) = satisfied(&dispositions)[0] {
                    assert!(visit > deadline, "visit on time in {plan:?}");
                    assert!(
                        visit
                            <= alert.issued_at
                                + policy.for_risk(alert.risk).stages[0].within * 3 / 2
                    );
                }
            }
        }
    }

    #[test]
    fn a_plan_unfolds_in_event_order() {
        for plan in plans(Policy::default(), 0.5, 0.0, 2000, false) {
            let (alert, dispositions) = decoded(&plan);
            let first = |kind| {
                dispositions
                    .iter()
                    .find(|d| d.kind == kind)
                    .map(|d| d.occurred_at)
            };
            let ack = first(DispositionKind::Acknowledged).expect("always acknowledged");
            assert!(ack >= alert.issued_at);
            let closing = [DispositionKind::Feedback, DispositionKind::Closed]
                .into_iter()
                .filter_map(first)
                .collect::<Vec<_>>();
            assert_eq!(closing.len(), 1, "exactly one closing event");
            for d in &dispositions {
                assert!(d.occurred_at >= ack);
                assert!(d.occurred_at <= closing[0]);
            }
        }
    }

    #[test]
    fn backdated_plans_are_sent_now_and_in_order() {
        for plan in plans(demo_policy(), 0.3, 0.1, 2000, true) {
            let sent_at = plan.messages[0].send_at;
            assert!(plan.messages.iter().all(|m| m.send_at == sent_at));
            let (alert, dispositions) = decoded(&plan);
            assert!(alert.issued_at <= sent_at);
            assert!(dispositions.iter().all(|d| d.occurred_at <= sent_at));
            // The alert comes first unless its dispositions were planned before it.
            let alert_position = plan
                .messages
                .iter()
                .position(|m| m.topic == Topic::Alerts)
                .unwrap();
            assert!(plan.messages[..alert_position]
                .iter()
                .all(|m| m.before_alert));
        }
    }

    #[test]
    fn the_seed_makes_the_load_reproducible() {
        let a = plans(demo_policy(), 0.2, 0.1, 200, false);
        let b = plans(demo_policy(), 0.2, 0.1, 200, false);
        assert_eq!(a, b);
        let mut rng = StdRng::seed_from_u64(7);
        let other = Generator::new(demo_policy(), 0.2, 0.1, 1).next_plan(&mut rng, now());
        assert_ne!(other.alert_id, a[0].alert_id, "another run, other ids");
    }
}
