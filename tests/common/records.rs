//! Messages in and out: producing test alerts and dispositions, reading records back
//! ([`Record`], `collect_*`), checks on escalation ids, and the personal-data scans.

use aho_corasick::AhoCorasick;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::processor::Env;

pub async fn produce(p: &FutureProducer, topic: &str, key: Option<&str>, value: &str) {
    let mut rec: FutureRecord<'_, str, str> = FutureRecord::to(topic).payload(value);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    p.send(rec, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Produces `n` medium-risk alerts `<prefix>-NN`, issued now and keyed by their ids, that get no
/// disposition (silent: every level of every stage must fire); returns their ids.
pub async fn produce_silent(
    p: &FutureProducer,
    topic: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let now = now_ms();
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:02}")).collect();
    for id in &ids {
        produce(p, topic, Some(id), &alert_json(id, now, "medium")).await;
    }
    ids
}

pub fn iso(ms: i64) -> String {
    fraud_sla::domain::time::format_utc(ms)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn alert_json(id: &str, issued_at: i64, risk: &str) -> String {
    serde_json::json!({
        "alert_id": id,
        "issued_at": iso(issued_at),
        "jurisdiction": "620102-GWM",
        "risk": risk,
        "channel": "96110",
        "fraud_type": "impersonating_police",
        "amount_cents": 5000000,
        "subject": { "name": "SECRET-NAME-张三", "phone": "13800001234" }
    })
    .to_string()
}

pub fn disposition_json(event_id: &str, alert_id: &str, kind: &str, at: i64) -> String {
    let mut v = serde_json::json!({
        "event_id": event_id,
        "alert_id": alert_id,
        "kind": kind,
        "occurred_at": iso(at),
        "officer_id": "620102-0457",
        "note": "SECRET-NOTE-家属电话"
    });
    if kind == "feedback" {
        v["outcome"] = "dissuaded".into();
    }
    v.to_string()
}

/// A received record with its headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Record {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.value).unwrap()
    }
}

/// Collects records from a reader until `done` holds for what was collected, or `within` passes.
pub fn collect_until(
    c: &BaseConsumer,
    within: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < within {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
        if done(&out) {
            break;
        }
    }
    out
}

/// Escalation ids (distinct) among records.
pub fn ids(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| r.json()["escalation_id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The escalations of one alert, in the order they were published.
pub fn of_alert(records: &[Record], alert_id: &str) -> Vec<Value> {
    records
        .iter()
        .map(Record::json)
        .filter(|e| e["alert_id"] == alert_id)
        .collect()
}

/// Escalation ids of one alert, in publication order (duplicates kept).
pub fn ids_of(records: &[Record], alert_id: &str) -> Vec<String> {
    of_alert(records, alert_id)
        .iter()
        .map(|e| e["escalation_id"].as_str().unwrap().to_owned())
        .collect()
}

/// True once `id` has been published.
pub fn has(records: &[Record], id: &str) -> bool {
    records.iter().any(|r| r.json()["escalation_id"] == id)
}

/// The personal data the test messages carry (`subject`, `note`).
pub const PERSONAL_DATA: [&str; 3] = ["SECRET-NAME", "13800001234", "SECRET-NOTE"];

/// Asserts that no [`PERSONAL_DATA`] reached the processor's log, Redis, or the escalations: for
/// tests whose input comes from [`alert_json`] and [`disposition_json`].
pub fn assert_no_personal_data(env: &Env, logs: &[String], escalations: &[Record]) {
    assert_absent(env, &PERSONAL_DATA, logs, escalations);
}

/// Asserts that none of the personal data actually sent to the input topics
/// ([`sent_personal_data`]) reached the processor's log, Redis, or the escalations: for tests
/// whose input comes from `fraud-sla simulate`, which never sends the [`PERSONAL_DATA`] markers.
pub async fn assert_no_sent_personal_data(env: &Env, logs: &[String], escalations: &[Record]) {
    let sent = sent_personal_data(env).await;
    assert!(
        !sent.is_empty(),
        "the input carried no personal data to look for"
    );
    assert_absent(env, &sent, logs, escalations);
}

/// Scans the logs, a dump of every Redis key (every node) and the escalations for `secrets`, in
/// one pass over each text however many secrets there are.
fn assert_absent<S: AsRef<str>>(env: &Env, secrets: &[S], logs: &[String], escalations: &[Record]) {
    let scan = AhoCorasick::new(secrets.iter().map(AsRef::as_ref)).expect("a secret scanner");
    let redis = env.redis.dump();
    let published: Vec<u8> = escalations
        .iter()
        .flat_map(|r| r.value.iter().copied().chain([b'\n']))
        .collect();
    let texts = [("Redis", redis.as_bytes()), ("an escalation", &published)]
        .into_iter()
        .chain(logs.iter().map(|log| ("the log", log.as_bytes())));
    for (place, text) in texts {
        if let Some(found) = scan.find(text) {
            panic!(
                "{} found in {place}",
                secrets[found.pattern().as_usize()].as_ref()
            );
        }
    }
    assert!(!redis.is_empty(), "the scan must see the state it checks");
}

/// Shorter values (a masked name like `张*`) would match unrelated text.
const MIN_SECRET_CHARS: usize = 4;

/// The personal data the input topics carry, read from the beginning: every `subject.name` and
/// `subject.phone` of the alerts and every `note` of the dispositions (distinct, sorted), leaving
/// out values under [`MIN_SECRET_CHARS`] characters.
pub async fn sent_personal_data(env: &Env) -> Vec<String> {
    let t = &env.topics;
    let alerts = read_through_markers(env, &t.alerts, t.partitions).await;
    let dispositions = read_through_markers(env, &t.dispositions, t.partitions).await;
    let mut found = BTreeSet::new();
    for r in alerts.iter().chain(&dispositions) {
        let Ok(v) = serde_json::from_slice::<Value>(&r.value) else {
            continue;
        };
        for field in [&v["subject"]["name"], &v["subject"]["phone"], &v["note"]] {
            if let Some(text) = field.as_str() {
                if text.chars().count() >= MIN_SECRET_CHARS {
                    found.insert(text.to_owned());
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Every record of `topic` the broker acknowledged before the call, and none twice: a marker
/// (`{"escalation_id":"END-<p>"}`) is appended to each partition, and the topic is read from the
/// beginning up to every marker (left out). It does not count on the watermarks, which tansu can
/// report short of a partition's last records. A processor still reading an input topic
/// dead-letters the marker.
pub async fn read_through_markers(env: &Env, topic: &str, partitions: u32) -> Vec<Record> {
    let producer = env.broker.producer();
    for p in 0..partitions as i32 {
        let marker = format!(r#"{{"escalation_id":"END-{p}"}}"#);
        let record: FutureRecord<'_, str, str> =
            FutureRecord::to(topic).partition(p).payload(&marker);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("produce a marker");
    }
    let is_marker = |r: &Record| {
        r.json()["escalation_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("END-"))
    };
    let reader = env.broker.reader(topic, partitions);
    let mut records = collect_until(&reader, Duration::from_secs(60), |r| {
        r.iter().filter(|r| is_marker(r)).count() == partitions as usize
    });
    assert_eq!(
        records.iter().filter(|r| is_marker(r)).count(),
        partitions as usize,
        "every partition's marker read"
    );
    records.retain(|r| !is_marker(r));
    records
}

/// `<alert>:<stage>:<level>` for breach levels 1 and 2 (the `FAST_SLA` ladder), sorted.
pub fn breach_ids<A: AsRef<str>>(alerts: &[A], stages: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .flat_map(|a| {
            stages
                .iter()
                .flat_map(move |s| (1..3).map(move |l| format!("{}:{s}:{l}", a.as_ref())))
        })
        .collect();
    v.sort();
    v
}

/// The ids of `want` not among the escalation ids of `records`.
pub fn missing(records: &[Record], want: &[String]) -> Vec<String> {
    let got = ids(records);
    want.iter()
        .filter(|w| got.binary_search(w).is_err())
        .cloned()
        .collect()
}

pub fn covered(records: &[Record], want: &[String]) -> bool {
    missing(records, want).is_empty()
}

/// Reads escalations until every id of `want` has arrived; fails with `context()` if one never does.
pub fn collect_all(
    c: &BaseConsumer,
    within: Duration,
    want: &[String],
    context: impl Fn() -> String,
) -> Vec<Record> {
    let seen = collect_until(c, within, |r| covered(r, want));
    let missing = missing(&seen, want);
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        context()
    );
    seen
}

/// Asserts that every copy of an escalation id is byte-identical (a redelivery of one outbox
/// entry, not a transition applied twice); returns the number of distinct ids.
pub fn assert_identical_copies(records: &[Record]) -> usize {
    let mut copies: HashMap<String, Vec<&[u8]>> = HashMap::new();
    for r in records {
        copies
            .entry(r.json()["escalation_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(&r.value);
    }
    for (id, values) in &copies {
        assert!(
            values.iter().all(|v| v == &values[0]),
            "{id} fired twice with different content"
        );
    }
    copies.len()
}
