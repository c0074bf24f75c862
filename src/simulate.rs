//! `fraud-sla simulate`: the load generator for the demo and for benchmarks. It produces
//! realistic alerts and dispositions — a share late, a share silent — to the input topics.
//!
//! [`Generator`] is pure (an RNG, the policy and `now` in; messages with send times out) and is
//! tested here; [`run`] paces it in real time, or with `--burst` sends as fast as the broker takes.

use chrono::{Datelike, FixedOffset, SecondsFormat, TimeZone};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::{DeliveryFuture, OwnedDeliveryResult};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, KafkaConfig};
use crate::domain::time::format_utc;
use crate::domain::{DispositionKind, Ladder, Millis, Outcome, Policy, Risk, Stage};
use crate::kafka::producer_config;

/// Options of `fraud-sla simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Alerts per second (real-time mode).
    #[arg(long, default_value_t = 5.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Total number of alerts; unlimited when omitted. Required by --burst.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Share (0..=1) of the alerts with dispositions whose visit (and sometimes meet) comes after
    /// its deadline.
    #[arg(long, default_value_t = 0.2, value_parser = parse_fraction)]
    pub late: f64,
    /// Share (0..=1) of alerts that get no disposition at all, so every stage breaches.
    #[arg(long, default_value_t = 0.1, value_parser = parse_fraction)]
    pub missing: f64,
    /// Seed of the random generator: the same seed gives the same load (ids still carry a
    /// random per-run suffix, so reruns never collide).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Send as fast as the broker takes, each alert followed at once by its dispositions, with
    /// `issued_at` backdated so that they are on time or late as chosen (throughput benchmarks).
    #[arg(long, requires = "count", conflicts_with_all = ["follow", "rate"])]
    pub burst: bool,
    /// After the last alert, keep running until every planned disposition has been sent.
    /// Without it the simulator stops after the last alert and reports what it did not send.
    #[arg(long)]
    pub follow: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for SimulateArgs {
    fn default() -> SimulateArgs {
        SimulateArgs {
            rate: 5.0,
            count: None,
            late: 0.2,
            missing: 0.1,
            seed: None,
            burst: false,
            follow: false,
            quiet: false,
        }
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{s} is not a fraction between 0 and 1"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(format!("{s} is not a positive number of alerts per second"))
    }
}

impl SimulateArgs {
    /// The checks clap makes on the command line, for callers that build the options in code.
    pub fn validate(&self) -> Result<(), SimulateError> {
        let invalid = |option, problem: String| SimulateError::InvalidOption { option, problem };
        for (option, value) in [("--late", self.late), ("--missing", self.missing)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(
                    option,
                    format!("{value} is not a fraction between 0 and 1"),
                ));
            }
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(invalid(
                "--rate",
                format!(
                    "{} is not a positive number of alerts per second",
                    self.rate
                ),
            ));
        }
        if self.count == Some(0) {
            return Err(invalid("--count", "must be at least 1".into()));
        }
        if self.burst && self.count.is_none() {
            return Err(invalid(
                "--burst",
                "needs --count (a burst must end)".into(),
            ));
        }
        Ok(())
    }
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("option {option}: {problem}")]
    InvalidOption {
        option: &'static str,
        problem: String,
    },
    #[error("cannot create the Kafka producer: {0}")]
    Producer(KafkaError),
    #[error("cannot reach the Kafka brokers at {brokers}: {error}")]
    Unreachable { brokers: String, error: KafkaError },
    #[error(
        "topic {0} does not exist; create it (co-partitioned with the other input topic) and start again"
    )]
    MissingTopic(String),
    #[error("no message was delivered ({failed} failed, last error: {last})")]
    NothingDelivered { failed: u64, last: String },
}

/// What a run did; printed as one line, and returned so benchmarks can use it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Alerts handed to the producer.
    pub alerts: u64,
    /// Dispositions handed to the producer, duplicates included.
    pub dispositions: u64,
    /// Dispositions sent a second time with the same `event_id`.
    pub duplicates: u64,
    /// Dispositions sent before their alert.
    pub before_alert: u64,
    /// Messages the broker acknowledged.
    pub delivered: u64,
    /// Messages the producer could not deliver (or not confirm before shutdown).
    pub failed: u64,
    /// Planned messages never sent (the run stopped before they were due).
    pub unsent: u64,
    /// From the first message to the last acknowledgement.
    pub elapsed: Duration,
    /// Stopped by Ctrl-C / SIGTERM.
    pub interrupted: bool,
}

impl Summary {
    /// Acknowledged messages per second.
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.delivered as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "alerts {}, dispositions {} ({} duplicates, {} before their alert), delivery failures {}, unsent {}, elapsed {:.1}s, {:.0} events/s",
            self.alerts,
            self.dispositions,
            self.duplicates,
            self.before_alert,
            self.failed,
            self.unsent,
            self.elapsed.as_secs_f64(),
            self.events_per_sec(),
        )?;
        if self.interrupted {
            f.write_str(" (interrupted)")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Generation (pure)
// ---------------------------------------------------------------------------------------------

/// Districts (administrative code and station abbreviation) the alerts are spread over.
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

/// What the alert platform sends (CONTRACT §2), personal data included on purpose: the
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
    let visit_within = ladder.within(Stage::Visit);
    let meet_within = ladder.within(Stage::Meet);
    let feedback_within = ladder.within(Stage::Feedback);
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

// ---------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------

/// Most deliveries awaited at once; beyond it, sending waits for acknowledgements.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long shutdown waits for outstanding deliveries.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The producer, the deliveries in flight, and the counts for the summary.
struct Sender {
    producer: FutureProducer,
    alerts_topic: String,
    dispositions_topic: String,
    in_flight: FuturesUnordered<DeliveryFuture>,
    summary: Summary,
    last_error: Option<String>,
}

impl Sender {
    fn new(producer: FutureProducer, config: &KafkaConfig) -> Sender {
        Sender {
            producer,
            alerts_topic: config.alerts_topic.clone(),
            dispositions_topic: config.dispositions_topic.clone(),
            in_flight: FuturesUnordered::new(),
            summary: Summary::default(),
            last_error: None,
        }
    }

    fn has_room(&self) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// Hands `m` to librdkafka without waiting for its delivery. `false` when librdkafka's queue
    /// is full: try again after a delivery.
    fn try_send(&mut self, m: &Message) -> bool {
        let topic = match m.topic {
            Topic::Alerts => self.alerts_topic.as_str(),
            Topic::Dispositions => self.dispositions_topic.as_str(),
        };
        let record = FutureRecord::to(topic)
            .key(m.key.as_str())
            .payload(m.payload.as_str());
        match self.producer.send_result(record) {
            Ok(delivery) => self.in_flight.push(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => return false,
            Err((e, _)) => {
                self.summary.failed += 1;
                self.last_error = Some(e.to_string());
            }
        }
        let s = &mut self.summary;
        match m.topic {
            Topic::Alerts => s.alerts += 1,
            Topic::Dispositions => {
                s.dispositions += 1;
                s.duplicates += u64::from(m.duplicate);
                s.before_alert += u64::from(m.before_alert);
            }
        }
        true
    }

    /// Sends `m`, waiting for room first. `false` if cancelled before it could be sent.
    async fn send(&mut self, m: &Message, cancel: &CancellationToken) -> bool {
        loop {
            if self.has_room() && self.try_send(m) {
                return true;
            }
            tokio::select! {
                _ = cancel.cancelled() => return false,
                Some(r) = self.in_flight.next(), if !self.in_flight.is_empty() => self.record(r),
                _ = tokio::time::sleep(Duration::from_millis(5)), if self.in_flight.is_empty() => {}
            }
        }
    }

    fn record<E>(&mut self, result: Result<OwnedDeliveryResult, E>) {
        match result {
            Ok(Ok(_)) => self.summary.delivered += 1,
            Ok(Err((e, _))) => {
                self.summary.failed += 1;
                self.last_error = Some(e.to_string());
            }
            Err(_) => {
                self.summary.failed += 1;
                self.last_error = Some("delivery cancelled".into());
            }
        }
    }

    /// Records the deliveries that have already settled, without waiting.
    fn settle_ready(&mut self) {
        while let Some(Some(r)) = self.in_flight.next().now_or_never() {
            self.record(r);
        }
    }

    /// Waits (up to `timeout`) for every delivery in flight, then flushes the producer. What is
    /// still unconfirmed then counts as failed.
    async fn finish(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.in_flight.is_empty() {
            tokio::select! {
                Some(r) = self.in_flight.next() => self.record(r),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(1))).await;
        self.settle_ready();
        if !self.in_flight.is_empty() {
            self.summary.failed += self.in_flight.len() as u64;
            self.last_error = Some("delivery not confirmed before shutdown".into());
            self.in_flight = FuturesUnordered::new();
        }
    }

    fn status(&self) -> String {
        let s = &self.summary;
        format!(
            "{} dispositions, {} delivered, {} failed",
            s.dispositions, s.delivered, s.failed
        )
    }
}

/// A message waiting for its send time; the heap pops the earliest first.
struct Scheduled {
    send_at: Millis,
    seq: u64,
    message: Message,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.send_at, self.seq) == (other.send_at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.send_at, self.seq).cmp(&(other.send_at, other.seq))
    }
}

fn wall_now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The monotonic instant at which the wall clock reads `at`.
fn instant_at(at: Millis) -> Instant {
    Instant::now() + Duration::from_millis((at - wall_now()).max(0) as u64)
}

/// How a sending loop ended.
struct Ended {
    unsent: u64,
    interrupted: bool,
}

/// Real time: one alert every `1/rate` s, each disposition when it is due.
async fn real_time(
    generator: &mut Generator,
    rng: &mut StdRng,
    sender: &mut Sender,
    args: &SimulateArgs,
    progress: &ProgressBar,
    cancel: &CancellationToken,
) -> Ended {
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut heap: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut produced = 0u64;
    // Alerts still in the heap (held back behind their first disposition): always sent.
    let mut held_alerts = 0usize;
    let mut next_alert = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let ended = |heap: &BinaryHeap<_>, interrupted| Ended {
        unsent: heap.len() as u64,
        interrupted,
    };
    loop {
        if cancel.is_cancelled() {
            return ended(&heap, true);
        }
        // Everything due, as long as librdkafka takes it.
        let now = wall_now();
        let mut queue_full = false;
        while sender.has_room() {
            match heap.peek() {
                Some(Reverse(s)) if s.send_at <= now => {
                    let Reverse(s) = heap.pop().expect("peeked");
                    if !sender.try_send(&s.message) {
                        heap.push(Reverse(s));
                        queue_full = true;
                        break;
                    }
                    if s.message.topic == Topic::Alerts {
                        held_alerts -= 1;
                    }
                }
                _ => break,
            }
        }
        let producing = args.count.is_none_or(|c| produced < c);
        if producing && !queue_full && sender.has_room() && Instant::now() >= next_alert {
            let plan = generator.next_plan(rng, wall_now());
            for message in plan.messages {
                seq += 1;
                if message.topic == Topic::Alerts {
                    held_alerts += 1;
                }
                heap.push(Reverse(Scheduled {
                    send_at: message.send_at,
                    seq,
                    message,
                }));
            }
            produced += 1;
            progress.inc(1);
            next_alert += interval;
            // After a stall, resume the rate rather than catch up in a burst.
            if next_alert + Duration::from_secs(1) < Instant::now() {
                next_alert = Instant::now();
            }
            continue;
        }
        if !producing && (heap.is_empty() || (!args.follow && held_alerts == 0)) {
            return ended(&heap, false);
        }
        let wake = [
            producing.then_some(next_alert),
            heap.peek().map(|Reverse(s)| instant_at(s.send_at)),
        ]
        .into_iter()
        .flatten()
        .min();
        let can_send = sender.has_room() && !queue_full;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return ended(&heap, true),
            Some(r) = sender.in_flight.next(), if !sender.in_flight.is_empty() => {
                sender.record(r);
                sender.settle_ready();
            }
            _ = sleep_until_opt(wake), if can_send => {}
            _ = tick.tick() => {
                progress.set_message(format!("{}, {} scheduled", sender.status(), heap.len()));
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Burst: every alert and its dispositions at once, as fast as the broker acknowledges.
async fn burst(
    generator: &mut Generator,
    rng: &mut StdRng,
    sender: &mut Sender,
    count: u64,
    progress: &ProgressBar,
    cancel: &CancellationToken,
) -> Ended {
    for n in 0..count {
        if cancel.is_cancelled() {
            return Ended {
                unsent: 0,
                interrupted: true,
            };
        }
        let plan = generator.next_backdated(rng, wall_now());
        for (i, m) in plan.messages.iter().enumerate() {
            if !sender.send(m, cancel).await {
                return Ended {
                    unsent: (plan.messages.len() - i) as u64,
                    interrupted: true,
                };
            }
        }
        progress.inc(1);
        if n % 1024 == 0 {
            sender.settle_ready();
            progress.set_message(sender.status());
            // Let the signal handler and the progress bar run even when nothing waits.
            tokio::task::yield_now().await;
        }
    }
    Ended {
        unsent: 0,
        interrupted: false,
    }
}

fn progress_bar(args: &SimulateArgs) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let (bar, template) = match args.count {
        Some(n) => (
            ProgressBar::new(n),
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} alerts ({rate}) · {msg}",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} [{elapsed_precise}] {pos} alerts ({rate}) · {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.1}/s", state.per_sec());
            },
        ));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Checks that both input topics exist, which also proves the brokers answer.
async fn check_topics(producer: FutureProducer, config: &KafkaConfig) -> Result<(), SimulateError> {
    let topics = [
        config.alerts_topic.clone(),
        config.dispositions_topic.clone(),
    ];
    let brokers = config.brokers.clone();
    let check = tokio::task::spawn_blocking(move || {
        for topic in &topics {
            let metadata = producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|error| SimulateError::Unreachable {
                    brokers: brokers.clone(),
                    error,
                })?;
            let exists = metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
            if !exists {
                return Err(SimulateError::MissingTopic(topic.clone()));
            }
        }
        Ok(())
    });
    check.await.expect("the metadata check does not panic")
}

/// Produces alerts and dispositions until `--count` is reached (and, with `--follow`, every
/// planned disposition is sent) or `cancel`; flushes the producer and returns what it did.
pub async fn run(
    args: SimulateArgs,
    config: &Config,
    cancel: CancellationToken,
) -> anyhow::Result<Summary> {
    args.validate()?;
    let mut client = producer_config(&config.kafka);
    // A missing topic is an error to report, not one to create with the wrong partition count.
    client.set("allow.auto.create.topics", "false");
    if args.burst {
        client.set("linger.ms", "20");
    }
    let producer: FutureProducer = client.create().map_err(SimulateError::Producer)?;
    tokio::select! {
        _ = cancel.cancelled() => {
            return Ok(Summary { interrupted: true, ..Summary::default() });
        }
        checked = check_topics(producer.clone(), &config.kafka) => checked?,
    }

    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let mut generator = Generator::new(
        config.policy(),
        args.late,
        args.missing,
        rand::rng().random(),
    );
    let mut sender = Sender::new(producer, &config.kafka);
    let progress = progress_bar(&args);
    let started = std::time::Instant::now();
    let ended = match args.count {
        Some(count) if args.burst => {
            burst(
                &mut generator,
                &mut rng,
                &mut sender,
                count,
                &progress,
                &cancel,
            )
            .await
        }
        _ => {
            real_time(
                &mut generator,
                &mut rng,
                &mut sender,
                &args,
                &progress,
                &cancel,
            )
            .await
        }
    };
    progress.set_message(format!("{}, waiting for deliveries", sender.status()));
    sender.finish(DRAIN_TIMEOUT).await;
    progress.finish_and_clear();

    let mut summary = std::mem::take(&mut sender.summary);
    summary.unsent = ended.unsent;
    summary.interrupted = ended.interrupted;
    summary.elapsed = started.elapsed();
    if summary.delivered == 0 && summary.failed > 0 {
        return Err(SimulateError::NothingDelivered {
            failed: summary.failed,
            last: sender.last_error.unwrap_or_default(),
        }
        .into());
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::parse_rfc3339;
    use crate::domain::validate::{decode, is_identifier, Limits, Source};
    use crate::domain::{Alert, Decoded, Disposition};
    use clap::Parser;
    use std::collections::{HashMap, HashSet};

    const SEC: Millis = 1000;

    fn now() -> Millis {
        parse_rfc3339("2026-11-22T10:00:00+08:00").unwrap()
    }

    /// The demo policy: seconds instead of hours, high risk tighter.
    fn demo_policy() -> Policy {
        let mut p = Policy::default();
        for ladder in [&mut p.high, &mut p.medium, &mut p.low] {
            ladder.within = [20 * SEC, 40 * SEC, 120 * SEC];
            ladder.warn_before = 10 * SEC;
        }
        p.high.within[0] = 15 * SEC;
        p
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
        for d in dispositions {
            for stage in d.kind.satisfies() {
                let slot: &mut Option<Millis> = &mut at[stage.index()];
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
                    for (stage, at) in Stage::ALL.into_iter().zip(satisfied(&dispositions)) {
                        let deadline = alert.issued_at + ladder.within(stage);
                        match at {
                            Some(at) => assert!(at <= deadline, "{stage} late in {plan:?}"),
                            None => assert!(closed, "{stage} never satisfied in {plan:?}"),
                        }
                    }
                    // Every event is on time for the stage it is named after (a `met` after a
                    // `visited` no longer counts for `visit`).
                    for d in &dispositions {
                        let stage = match d.kind {
                            DispositionKind::Visited => Stage::Visit,
                            DispositionKind::Met => Stage::Meet,
                            DispositionKind::Feedback => Stage::Feedback,
                            _ => continue,
                        };
                        assert!(d.occurred_at <= alert.issued_at + ladder.within(stage));
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
                let deadline = alert.issued_at + policy.for_risk(alert.risk).within[0];
                if let Some(visit) = satisfied(&dispositions)[0] {
                    assert!(visit > deadline, "visit on time in {plan:?}");
                    assert!(
                        visit <= alert.issued_at + policy.for_risk(alert.risk).within[0] * 3 / 2
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

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, String> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn options_are_validated() {
        let d = parse(&[]).unwrap();
        assert_eq!((d.rate, d.late, d.missing, d.count), (5.0, 0.2, 0.1, None));
        d.validate().unwrap();
        let a = parse(&["--burst", "--count", "1000", "--seed", "3", "--quiet"]).unwrap();
        assert!(a.burst && a.quiet && a.seed == Some(3));
        a.validate().unwrap();
        for bad in [
            &["--late", "1.5"][..],
            &["--missing", "-0.1"],
            &["--late", "x"],
            &["--rate", "0"],
            &["--rate", "inf"],
            &["--count", "0"],
            &["--burst"],
            &["--burst", "--count", "5", "--follow"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse(&["--late", "1.5"]).unwrap_err();
        assert!(e.contains("--late") && e.contains("between 0 and 1"), "{e}");

        let e = SimulateArgs {
            missing: 2.0,
            ..SimulateArgs::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "option --missing: 2 is not a fraction between 0 and 1"
        );
        let e = SimulateArgs {
            burst: true,
            ..SimulateArgs::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().starts_with("option --burst: needs --count"));
    }

    #[test]
    fn the_summary_is_one_line() {
        let s = Summary {
            alerts: 100,
            dispositions: 380,
            duplicates: 7,
            before_alert: 8,
            delivered: 480,
            failed: 0,
            unsent: 0,
            elapsed: Duration::from_secs(2),
            interrupted: false,
        };
        assert_eq!(s.events_per_sec(), 240.0);
        assert_eq!(
            s.to_string(),
            "alerts 100, dispositions 380 (7 duplicates, 8 before their alert), delivery failures 0, unsent 0, elapsed 2.0s, 240 events/s"
        );
    }
}
