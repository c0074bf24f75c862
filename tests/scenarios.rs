//! The SLA rules of docs/contract.md §3 end to end: the built binary against a real redis-server and a
//! real Kafka-protocol broker (tansu), with deadlines compressed to seconds (`FAST_SLA`:
//! visit 4 s, meet 8 s, feedback 12 s, warning 2 s before, breach levels at +0 s and +2 s).
//!
//! Absence is never asserted after a sleep: each test waits for a later escalation (of the same
//! alert, or of a silent "sentinel" alert issued at the same time) that must come after anything
//! that should not have fired, then checks what was published.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(60);

impl Run {
    fn assert_private(&self, seen: &[Record]) {
        assert_no_personal_data(&self.env, &[self.p.log_text()], seen);
    }
}

fn id(alert: &str, stage: &str, level: &str) -> String {
    format!("{alert}:{stage}:{level}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_satisfied_on_time_never_warns_or_escalates() {
    let run = Run::start("on-time", 2, FAST_SLA);
    let now = now_ms();
    run.alert("ON-1", now, "medium").await;
    run.alert("SENTINEL-1", now, "medium").await;
    run.disposition("ev-1", "ON-1", "acknowledged", now).await;
    run.disposition("ev-2", "ON-1", "met", now).await;
    run.disposition("ev-3", "ON-1", "feedback", now).await;

    let mut seen = Vec::new();
    run.until(&mut seen, &id("SENTINEL-1", "meet", "1"));
    assert_eq!(
        ids_of(&seen, "ON-1"),
        Vec::<String>::new(),
        "an on-time alert is never escalated"
    );
    for stage in ["visit", "meet", "feedback"] {
        assert_eq!(run.completions(stage, "on_time"), 1.0);
        assert_eq!(run.completions(stage, "late"), 0.0);
    }
    let view = run.alert_view("ON-1");
    assert_eq!(view["stages"]["visit"]["status"], "satisfied");
    assert_eq!(view["stages"]["visit"]["on_time"], true);
    let timeline: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["alert", "acknowledged", "met", "feedback"]);
    // §10.6: the feedback's outcome is counted.
    assert_eq!(
        run.p
            .metric("fraud_sla_outcomes_total", &[("outcome", "dissuaded")]),
        1.0
    );
    run.assert_private(&seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_alert_fires_every_level_once_in_order_with_contract_fields() {
    let run = Run::start("silent", 2, FAST_SLA);
    // Issued in China Standard Time: deadlines must come out in UTC.
    let issued = now_ms();
    let local = chrono::DateTime::from_timestamp_millis(issued)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%.3f+08:00")
        .to_string();
    let alert = serde_json::json!({
        "alert_id": "SILENT-1", "issued_at": local, "jurisdiction": "110105-CYQ", "risk": "low",
        "subject": { "name": "SECRET-NAME-李四", "phone": "13800001234" }, "unknown_field": [1, 2]
    });
    produce(
        &run.prod,
        &run.env.topics.alerts,
        Some("SILENT-1"),
        &alert.to_string(),
    )
    .await;

    let mut seen = Vec::new();
    run.until(&mut seen, &id("SILENT-1", "feedback", "2"));
    let expected: Vec<String> = ["visit", "meet", "feedback"]
        .iter()
        .flat_map(|s| ["0", "1", "2"].map(|l| id("SILENT-1", s, l)))
        .collect();
    assert_eq!(
        ids_of(&seen, "SILENT-1"),
        expected,
        "every level once, in due order"
    );

    let within = [("visit", 4_000), ("meet", 8_000), ("feedback", 12_000)];
    let notify = [
        ["assigned_officer"],
        ["station_duty_officer"],
        ["station_chief"],
    ];
    for e in of_alert(&seen, "SILENT-1") {
        let fields: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = fields.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "alert_id",
                "deadline",
                "due_at",
                "escalation_id",
                "fired_at",
                "jurisdiction",
                "kind",
                "level",
                "notify",
                "risk",
                "stage"
            ]
        );
        let stage = e["stage"].as_str().unwrap();
        let level = e["level"].as_u64().unwrap() as usize;
        let deadline = issued + within.iter().find(|(s, _)| *s == stage).unwrap().1;
        let due = if level == 0 {
            deadline - 2_000
        } else {
            deadline + [0, 2_000][level - 1]
        };
        assert_eq!(e["deadline"], iso(deadline));
        assert_eq!(e["due_at"], iso(due));
        assert_eq!(e["kind"], if level == 0 { "warning" } else { "breach" });
        assert_eq!(e["notify"], serde_json::json!(notify[level]));
        assert_eq!(
            (e["jurisdiction"].as_str(), e["risk"].as_str()),
            (Some("110105-CYQ"), Some("low"))
        );
        let fired = chrono::DateTime::parse_from_rfc3339(e["fired_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert!(
            e["fired_at"].as_str().unwrap().ends_with('Z')
                && e["fired_at"].as_str().unwrap().len() == 24
        );
        assert!(
            (due..due + 2_000).contains(&fired),
            "fired promptly: due {due}, fired {fired}"
        );
    }
    assert!(
        seen.iter().all(|r| r.key.as_deref() == Some("SILENT-1")),
        "keyed by alert_id"
    );
    assert_eq!(
        run.p.metric(
            "fraud_sla_escalations_total",
            &[("stage", "visit"), ("kind", "breach"), ("level", "1")]
        ),
        1.0
    );
    assert_eq!(
        run.p.metric(
            "fraud_sla_breaches_total",
            &[("stage", "meet"), ("jurisdiction", "110105-CYQ")]
        ),
        1.0
    );
    run.wait_metric("fraud_sla_open_alerts", &[], 1.0);
    let exposition = run.p.metrics();
    assert_eq!(
        promtool_check_metrics(&exposition).trim(),
        "",
        "{exposition}"
    );
    for family in [
        "fraud_sla_consumer_lag{",
        "fraud_sla_ingest_delay_seconds_bucket{",
        "process_cpu_seconds_total ",
    ] {
        assert!(exposition.contains(family), "{family} in\n{exposition}");
    }
    let (code, body) = run
        .p
        .get("/v1/overdue?jurisdiction=110105-CYQ&limit=5")
        .unwrap();
    assert_eq!(code, 200);
    let overdue: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(overdue["alerts"][0]["alert_id"], "SILENT-1", "{body}");
    assert_eq!(
        overdue["alerts"][0]["breached"].as_array().unwrap().len(),
        3,
        "{body}"
    );
    let (_, other) = run.p.get("/v1/overdue?jurisdiction=999999-X").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&other).unwrap()["alerts"],
        serde_json::json!([])
    );
    let (code, bad) = run.p.get("/v1/overdue?limit=0").unwrap();
    assert_eq!(code, 400);
    assert!(
        serde_json::from_str::<Value>(&bad).unwrap()["error"].is_string(),
        "{bad}"
    );
    run.assert_private(&seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_visit_counts_late_and_resolves_its_breach() {
    let run = Run::start("late-visit", 2, FAST_SLA);
    let issued = now_ms();
    run.alert("LATE-1", issued, "medium").await;
    let mut seen = Vec::new();
    run.until(&mut seen, &id("LATE-1", "visit", "1"));
    // `met` after the visit deadline but before the meet deadline: visit late, meet on time.
    run.disposition("ev-met", "LATE-1", "met", now_ms()).await;
    run.until(&mut seen, &id("LATE-1", "feedback", "0"));

    assert_eq!(
        ids_of(&seen, "LATE-1"),
        [
            id("LATE-1", "visit", "0"),
            id("LATE-1", "visit", "1"),
            id("LATE-1", "visit", "resolved"),
            id("LATE-1", "feedback", "0")
        ],
        "the ladder stops at satisfaction; the met stage never warned"
    );
    let resolved = of_alert(&seen, "LATE-1")
        .into_iter()
        .find(|e| e["kind"] == "resolved")
        .unwrap();
    assert_eq!(resolved["level"], 1);
    assert_eq!(
        resolved["notify"],
        serde_json::json!(["station_duty_officer"])
    );
    assert_eq!(resolved["due_at"], Value::Null);
    assert_eq!(resolved["deadline"], iso(issued + 4_000));
    assert_eq!(run.completions("visit", "late"), 1.0);
    assert_eq!(run.completions("meet", "on_time"), 1.0);
    run.assert_private(&seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_arriving_late_fires_its_overdue_levels_but_no_stale_warning() {
    let run = Run::start("late-alert", 2, FAST_SLA);
    // Visit deadline 2.5 s ago (levels 1 and 2 overdue), meet deadline 1.5 s ahead.
    let issued = now_ms() - 6_500;
    run.alert("ARRIVED-LATE", issued, "medium").await;
    let mut seen = Vec::new();
    run.until(&mut seen, &id("ARRIVED-LATE", "meet", "1"));
    let got = ids_of(&seen, "ARRIVED-LATE");
    assert_eq!(
        got,
        [
            id("ARRIVED-LATE", "visit", "1"),
            id("ARRIVED-LATE", "visit", "2"),
            id("ARRIVED-LATE", "meet", "0"),
            id("ARRIVED-LATE", "meet", "1")
        ],
        "overdue levels fire in order, the passed warning never"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disposition_before_its_alert_is_held_and_applied_before_the_clocks() {
    let run = Run::start("held", 2, FAST_SLA);
    // The visit deadline has passed by the time the alert arrives, but `met` happened in time.
    let issued = now_ms() - 5_000;
    run.disposition("ev-early", "HELD-1", "met", issued + 1_000)
        .await;
    run.wait_dispositions_read(1.0);
    run.alert("HELD-1", issued, "medium").await;

    let mut seen = Vec::new();
    run.until(&mut seen, &id("HELD-1", "feedback", "0"));
    assert_eq!(
        ids_of(&seen, "HELD-1"),
        [id("HELD-1", "feedback", "0")],
        "no breach for stages satisfied in time"
    );
    assert_eq!(run.completions("visit", "on_time"), 1.0);
    assert_eq!(run.completions("meet", "on_time"), 1.0);
    run.assert_private(&seen);
}

/// The owner takes an alert whose own message is in its batch as new, without reading Redis
/// (src/partition/plan.rs, `taken_as_new`), and the batch script checks. Here it meets what
/// Redis holds: a disposition held for its alert by the process before (so this one does not
/// know it waits) and an open alert sent again. Both are read and planned again: the held
/// disposition applies before the clocks, and the first alert wins.
#[tokio::test(flavor = "multi_thread")]
async fn an_alert_taken_as_new_that_redis_holds_is_read_and_planned_again() {
    let mut run = Run::start("held-again", 2, FAST_SLA);
    let issued = now_ms() - 5_000;
    run.disposition("ev-before", "HELD-2", "met", issued + 1_000)
        .await;
    run.wait_dispositions_read(1.0);
    assert_eq!(run.p.sigterm().code(), Some(0));
    run.p = run.env.processor();
    run.p.wait_ready(WITHIN);

    run.alert("HELD-2", issued, "medium").await;
    let now = now_ms();
    run.alert("AGAIN-1", now, "medium").await;
    run.wait_metric("fraud_sla_alerts_total", &[], 2.0);
    let second = alert_json("AGAIN-1", now - 3_000, "high").replace("620102-GWM", "999999-DUP");
    produce(&run.prod, &run.env.topics.alerts, Some("AGAIN-1"), &second).await;
    let alerts = run.env.topics.alerts.clone();
    run.wait_metric("fraud_sla_duplicates_total", &[("topic", &alerts)], 1.0);
    run.disposition("ev-again", "AGAIN-1", "visited", now).await;

    let mut seen = Vec::new();
    run.until(&mut seen, &id("HELD-2", "feedback", "0"));
    run.until(&mut seen, &id("AGAIN-1", "meet", "0"));
    // The restart takes seconds: feedback, not met, may be breached by now.
    let held = ids_of(&seen, "HELD-2");
    assert!(
        held.iter().all(|e| e.contains(":feedback:")),
        "the held disposition applied: nothing for the stages met in time, got {held:?}"
    );
    assert_eq!(ids_of(&seen, "AGAIN-1"), [id("AGAIN-1", "meet", "0")]);
    let warning = &of_alert(&seen, "AGAIN-1")[0];
    assert_eq!(
        (warning["jurisdiction"].as_str(), warning["risk"].as_str()),
        (Some("620102-GWM"), Some("medium")),
        "first alert wins"
    );
    assert_eq!(run.p.metric("fraud_sla_alerts_total", &[]), 2.0);
    run.assert_private(&seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_alerts_and_event_ids_change_nothing() {
    let run = Run::start("duplicates", 2, FAST_SLA);
    let now = now_ms();
    run.alert("DUP-1", now, "medium").await;
    let second = alert_json("DUP-1", now - 3_000, "high").replace("620102-GWM", "999999-DUP");
    produce(&run.prod, &run.env.topics.alerts, Some("DUP-1"), &second).await;
    run.disposition("ev-same", "DUP-1", "visited", now).await;
    // Same event_id, different content: ignored, so the alert stays open.
    run.disposition("ev-same", "DUP-1", "closed", now).await;

    let mut seen = Vec::new();
    run.until(&mut seen, &id("DUP-1", "meet", "0"));
    assert_eq!(ids_of(&seen, "DUP-1"), [id("DUP-1", "meet", "0")]);
    let warning = &of_alert(&seen, "DUP-1")[0];
    assert_eq!(
        (warning["jurisdiction"].as_str(), warning["risk"].as_str()),
        (Some("620102-GWM"), Some("medium")),
        "first alert wins"
    );
    assert_eq!(warning["deadline"], iso(now + 8_000));
    let (alerts, dispositions) = (
        run.env.topics.alerts.clone(),
        run.env.topics.dispositions.clone(),
    );
    assert_eq!(
        run.p
            .metric("fraud_sla_duplicates_total", &[("topic", &alerts)]),
        1.0
    );
    assert_eq!(
        run.p
            .metric("fraud_sla_duplicates_total", &[("topic", &dispositions)]),
        1.0
    );
    assert_eq!(run.p.metric("fraud_sla_alerts_total", &[]), 1.0);
    assert_eq!(
        run.p
            .metric("fraud_sla_dispositions_total", &[("kind", "closed")]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_alert_cancels_its_clocks_and_later_events_only_reach_the_timeline() {
    let run = Run::start("closed-early", 2, FAST_SLA);
    let now = now_ms();
    run.alert("CLOSED-1", now, "medium").await;
    run.alert("SENTINEL-2", now, "medium").await;
    run.disposition("ev-close", "CLOSED-1", "closed", now).await;
    run.disposition("ev-after", "CLOSED-1", "visited", now)
        .await;

    let mut seen = Vec::new();
    run.until(&mut seen, &id("SENTINEL-2", "meet", "1"));
    assert_eq!(ids_of(&seen, "CLOSED-1"), Vec::<String>::new());
    assert_eq!(
        run.p.metric("fraud_sla_stage_completions_total", &[]),
        0.0,
        "the visit after close satisfied nothing"
    );
    let view = run.alert_view("CLOSED-1");
    for stage in ["visit", "meet", "feedback"] {
        assert_eq!(view["stages"][stage]["status"], "cancelled");
    }
    let timeline: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["alert", "closed", "visited"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_after_a_breach_resolves_it_and_stops_the_ladder() {
    let run = Run::start("closed-late", 2, FAST_SLA);
    let now = now_ms();
    run.alert("CLOSED-2", now, "medium").await;
    run.alert("SENTINEL-3", now, "medium").await;
    let mut seen = Vec::new();
    run.until(&mut seen, &id("CLOSED-2", "visit", "1"));
    run.disposition("ev-close", "CLOSED-2", "closed", now_ms())
        .await;
    run.until(&mut seen, &id("SENTINEL-3", "meet", "1"));

    assert_eq!(
        ids_of(&seen, "CLOSED-2"),
        [
            id("CLOSED-2", "visit", "0"),
            id("CLOSED-2", "visit", "1"),
            id("CLOSED-2", "visit", "resolved")
        ],
        "one resolved for the breached stage, nothing for stages never breached"
    );
    let resolved = &of_alert(&seen, "CLOSED-2")[2];
    assert_eq!(resolved["level"], 1);
    assert_eq!(resolved["due_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_risk_override_changes_only_that_risk_class() {
    let sla = format!("{FAST_SLA}\n[sla.risk.high]\nvisit_within = \"2s\"\nwarn_before = \"0s\"\n");
    let run = Run::start("override", 2, &sla);
    let now = now_ms();
    run.alert("HIGH-1", now, "high").await;
    run.alert("MEDIUM-1", now, "medium").await;
    let mut seen = Vec::new();
    run.until(&mut seen, &id("MEDIUM-1", "meet", "1"));
    let high = of_alert(&seen, "HIGH-1");
    assert_eq!(
        high[0]["escalation_id"],
        id("HIGH-1", "visit", "1"),
        "no warning: warn_before = 0s for high"
    );
    assert_eq!(high[0]["deadline"], iso(now + 2_000));
    assert!(high.iter().all(|e| e["level"] != 0));
    assert!(high
        .iter()
        .any(|e| e["escalation_id"] == id("HIGH-1", "meet", "1")
            && e["deadline"] == iso(now + 8_000)));
    let medium = of_alert(&seen, "MEDIUM-1");
    assert_eq!(medium[0]["escalation_id"], id("MEDIUM-1", "visit", "0"));
    assert_eq!(medium[1]["deadline"], iso(now + 4_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dead_letter_reason_with_source_headers_and_the_partition_moves_on() {
    let mut run = Run::start("deadletter", 1, FAST_SLA);
    let now = now_ms();
    let good = |id: &str| alert_json(id, now, "low");
    let big = serde_json::json!({ "alert_id": "BIG", "issued_at": iso(now), "jurisdiction": "x", "risk": "low", "pad": "x".repeat(5000) });
    let (alerts, dispositions) = (
        run.env.topics.alerts.clone(),
        run.env.topics.dispositions.clone(),
    );
    let cases: Vec<(&str, Option<&str>, String, &str)> = vec![
        (&alerts, Some("BIG"), big.to_string(), "too_large"),
        (&alerts, Some("J"), "{not json".into(), "invalid_json"),
        (&alerts, Some("J2"), "[1,2,3]".into(), "invalid_json"),
        (
            &alerts,
            Some("M"),
            good("M").replace("issued_at", "issued"),
            "missing_field:issued_at",
        ),
        (
            &alerts,
            Some("R"),
            good("R").replace("\"low\"", "\"extreme\""),
            "invalid_field:risk",
        ),
        (
            &alerts,
            Some("bad id!"),
            good("bad id!"),
            "invalid_field:alert_id",
        ),
        (
            &alerts,
            Some("F"),
            alert_json("F", now + 3_600_000, "low"),
            "timestamp_in_future",
        ),
        (&alerts, Some("OTHER"), good("K"), "key_mismatch"),
        (&alerts, None, good("K2"), "key_mismatch"),
        (
            &dispositions,
            Some("D"),
            disposition_json("e1", "D", "teleported", now),
            "unknown_kind",
        ),
        (
            &dispositions,
            Some("D"),
            disposition_json("e2", "D", "feedback", now).replace("\"outcome\"", "\"result\""),
            "missing_field:outcome",
        ),
        (
            &dispositions,
            Some("D"),
            disposition_json("e3", "D", "met", now).replace("event_id", "id"),
            "missing_field:event_id",
        ),
    ];
    for (topic, key, value, _) in &cases {
        produce(&run.prod, topic, *key, value).await;
    }
    run.alert("AFTER-BAD", now, "low").await;

    let dlq = run.env.deadletters();
    let letters = collect_until(&dlq, WITHIN, |r| r.len() >= cases.len());
    assert_eq!(letters.len(), cases.len(), "{letters:?}");
    let mut offsets = std::collections::HashMap::<&str, i64>::new();
    for (topic, key, value, reason) in &cases {
        let offset = *offsets.entry(topic).and_modify(|o| *o += 1).or_insert(0);
        let letter = letters
            .iter()
            .find(|l| {
                l.headers["source_topic"] == *topic
                    && l.headers["source_offset"] == offset.to_string()
            })
            .unwrap_or_else(|| panic!("no dead letter for {topic}@{offset} ({reason})"));
        assert_eq!(letter.headers["error"], *reason, "{topic}@{offset}");
        assert_eq!(letter.headers["source_partition"], "0");
        assert_eq!(letter.key.as_deref(), *key, "original key kept");
        assert_eq!(letter.value, value.as_bytes(), "original bytes kept");
    }
    // The partition moved on: the valid alert after all the bad ones is applied.
    wait_until(WITHIN, "AFTER-BAD applied", || {
        run.p
            .get("/v1/alerts/AFTER-BAD")
            .is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(
        run.p.metric(
            "fraud_sla_deadletters_total",
            &[("topic", &alerts), ("reason", "invalid_json")]
        ),
        2.0
    );
    assert_eq!(
        run.p.metric(
            "fraud_sla_deadletters_total",
            &[("topic", &dispositions), ("reason", "missing_field")]
        ),
        2.0
    );
    assert_eq!(
        run.p.metric("fraud_sla_deadletters_total", &[]),
        cases.len() as f64
    );
    assert!(
        run.p.proc.child.try_wait().unwrap().is_none(),
        "still running"
    );
}

/// A message too large to be copied to the dead-letter topic (over the processor producer's
/// `message.max.bytes`, librdkafka's 1,000,000 by default, below the broker's own limit) goes
/// there without its value: the partition must not stall on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_too_large_to_copy_is_dead_lettered_without_its_value_and_the_partition_moves_on()
{
    let run = Run::start("deadletter-huge", 1, FAST_SLA);
    let now = now_ms();
    let huge = serde_json::json!({ "alert_id": "HUGE", "issued_at": iso(now), "jurisdiction": "x", "risk": "low", "pad": "x".repeat(1_100_000) }).to_string();
    let big_producer = run
        .env
        .broker
        .producer_with(&[("message.max.bytes", "4000000")]);
    produce(&big_producer, &run.env.topics.alerts, Some("HUGE"), &huge).await;
    run.alert("AFTER-HUGE", now, "low").await;

    let dlq = run.env.deadletters();
    let letters = collect_until(&dlq, WITHIN, |r| !r.is_empty());
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.headers["error"], "too_large");
    assert_eq!(letter.headers["source_offset"], "0");
    assert_eq!(letter.headers["value_omitted"], huge.len().to_string());
    assert_eq!(letter.key.as_deref(), Some("HUGE"), "the key is kept");
    assert!(letter.value.is_empty(), "{} bytes", letter.value.len());
    wait_until(WITHIN, "AFTER-HUGE applied", || {
        run.p
            .get("/v1/alerts/AFTER-HUGE")
            .is_some_and(|(c, _)| c == 200)
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_api_requires_the_bearer_token_when_one_is_set() {
    let env = Env::new("token", 1, FAST_SLA);
    let port = free_port();
    let config = env.config(port);
    // /metrics also on a separate address, as for a scrape network.
    let metrics_port = free_port();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!("listen = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\""),
    );
    std::fs::write(&config, text).unwrap();
    let log = env.dir.path().join("token.log");
    let p = Processor::start_with(
        &config,
        port,
        &log,
        &[("FRAUD_SLA_HTTP_TOKEN", "s3cret-token")],
        &["--log-format", "json"],
    );
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    produce(
        &prod,
        &env.topics.alerts,
        Some("Q-1"),
        &alert_json("Q-1", now_ms(), "low"),
    )
    .await;

    assert_eq!(http_get(port, "/v1/alerts/Q-1", None).unwrap().0, 401);
    let refused = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/v1/alerts/Q-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer realm="fraud-sla""#,
        "a 401 names the scheme it wants"
    );
    for path in ["/v1", "/v1/", "/v1/no-such-endpoint"] {
        assert_eq!(
            http_get(port, path, None).unwrap().0,
            401,
            "{path}: without a token nothing is learnt of what exists under /v1"
        );
    }
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |token: Option<&str>| {
        let mut request = client.post(format!("http://127.0.0.1:{port}/v1/alerts/Q-1"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        post(None).await.unwrap().status(),
        401,
        "a method an endpoint does not take: 401 first, as for an unknown path"
    );
    let wrong_method = post(Some("s3cret-token")).await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET,HEAD");
    assert_eq!(
        http_get(port, "/v1/no-such-endpoint", Some("s3cret-token"))
            .unwrap()
            .0,
        404
    );
    assert_eq!(
        http_get(port, "/v1/alerts/Q-1", Some("wrong-token!"))
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        http_get(port, "/v1/overdue", Some("s3cret-tokeN"))
            .unwrap()
            .0,
        401
    );
    wait_until(WITHIN, "Q-1 visible", || {
        http_get(port, "/v1/alerts/Q-1", Some("s3cret-token"))
            .unwrap()
            .0
            == 200
    });
    let (code, body) = http_get(port, "/v1/alerts/NOPE-1", Some("s3cret-token")).unwrap();
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_get(port, "/v1/alerts/bad%20id", Some("s3cret-token")).unwrap();
    assert_eq!(code, 404, "no alert has such an id: {body}");
    assert!(
        body.contains("[A-Za-z0-9._:-]"),
        "and the answer says why: {body}"
    );
    assert_eq!(
        http_get(port, "/metrics", None).unwrap().0,
        200,
        "metrics stay open for Prometheus"
    );
    assert_eq!(http_get(port, "/healthz", None).unwrap().0, 200);
    let (code, scraped) = http_get(metrics_port, "/metrics", None).unwrap();
    assert!(
        code == 200 && scraped.contains("fraud_sla_alerts_total"),
        "{scraped}"
    );
    assert_eq!(
        http_get(metrics_port, "/v1/alerts/Q-1", Some("s3cret-token"))
            .unwrap()
            .0,
        404,
        "only /metrics there"
    );
    // Structured logs: one JSON object a line; each batch in a span with partition and offsets.
    let log = p.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        !lines.is_empty()
            && lines.len() == log.lines().filter(|l| !l.contains("librdkafka")).count()
    );
    assert!(
        lines.iter().any(|l| l["span"]["name"] == "batch"
            && l["span"]["partition"] == 0
            && l["span"]["first_offset"].is_number()),
        "{log}"
    );
    assert!(
        !p.log_text().contains("s3cret-token"),
        "the token is never logged"
    );
}

/// Regression (issue 12's benches): while the next batch was waiting, the partition's `select!`
/// dropped the relay's deletion of published escalations, so a backlog's escalations stayed in
/// the Redis outbox (1.2M entries after a 200k-alert drain) and were published again by the
/// next owner.
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_s_escalations_leave_the_outbox_once_the_broker_has_them() {
    const ALERTS: usize = 1_500;
    let env = Env::new("outbox-drains", 2, FAST_SLA);
    backlog(&env, "BACKLOG", ALERTS).await;
    let p = env.processor();
    p.wait_ready(WITHIN);
    let published = (6 * ALERTS) as f64;
    wait_until(WITHIN, "every escalation published", || {
        p.metric("fraud_sla_escalations_total", &[]) >= published
    });
    wait_until(WITHIN, "the outbox is empty", || outbox_entries(&env) == 0);
    // And the escalations its entries held beside them went with them.
    let beside = outbox_bodies(&env);
    assert!(
        beside.is_empty(),
        "{} left: {:?}",
        beside.len(),
        &beside[..beside.len().min(3)]
    );
}

/// The broker's acknowledgements delete a backlog's escalations from the outbox while the
/// backlog is still being applied. Deleting them was left to `settle`, which the next batch beat
/// in the partition's `select!` through a whole drain: Redis held every escalation a drain
/// fired until its batches stopped.
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_s_escalations_leave_the_outbox_while_the_backlog_is_still_applied() {
    const OVERDUE: usize = 300;
    const COPIES: usize = 200;
    let env = Env::new("outbox-meanwhile", 2, FAST_SLA);
    let ids = backlog(&env, "OVERDUE", OVERDUE).await;
    // Behind them, copies of the same alerts: batch after batch that changes nothing.
    let prod = env.broker.producer();
    let issued = now_ms() - 60_000;
    let values: Vec<(String, String)> = (ids.iter())
        .map(|id| (id.clone(), alert_json(id, issued, "medium")))
        .collect();
    futures::future::join_all(
        (0..COPIES)
            .flat_map(|_| &values)
            .map(|(id, v)| produce(&prod, &env.topics.alerts, Some(id), v)),
    )
    .await;
    let copies = (OVERDUE * COPIES) as f64;
    let p = env.processor();
    p.wait_ready(WITHIN);
    wait_until(WITHIN, "the overdue alerts' escalations fired", || {
        p.metric("fraud_sla_escalations_total", &[]) >= (6 * OVERDUE) as f64
    });
    let start = std::time::Instant::now();
    let applied_when_empty = loop {
        // The outbox first: the copies' count can only have grown since.
        let empty = outbox_entries(&env) == 0;
        let applied = p.metric("fraud_sla_duplicates_total", &[]);
        if empty || applied >= copies {
            break applied;
        }
        assert!(start.elapsed() < WITHIN, "neither emptied nor applied");
        std::thread::sleep(Duration::from_millis(5));
    };
    eprintln!("the outbox was empty with {applied_when_empty} of {copies} copies applied");
    assert!(
        applied_when_empty < copies,
        "the outbox emptied only once all {copies} copies were applied"
    );
}

/// `n` alerts `<prefix>-NNNN` issued a minute ago, produced before the processor starts: every
/// level of every stage fires in their batches (6 escalations an alert, none later), several
/// batches back to back. Their ids.
async fn backlog(env: &Env, prefix: &str, n: usize) -> Vec<String> {
    let prod = env.broker.producer();
    let issued = now_ms() - 60_000;
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}")).collect();
    let values: Vec<String> = ids
        .iter()
        .map(|id| alert_json(id, issued, "medium"))
        .collect();
    futures::future::join_all(
        ids.iter()
            .zip(&values)
            .map(|(id, value)| produce(&prod, &env.topics.alerts, Some(id), value)),
    )
    .await;
    ids
}

/// Entries in the partitions' outboxes. Each node holds the outboxes of its slots (one node, or
/// a cluster's masters).
fn outbox_entries(env: &Env) -> i64 {
    (env.redis.nodes())
        .map(|node| {
            let mut c = node.client().get_connection().unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("{t:*}:outbox")
                .query(&mut c)
                .unwrap();
            keys.iter()
                .map(|k| redis::cmd("XLEN").arg(k).query::<i64>(&mut c).unwrap())
                .sum::<i64>()
        })
        .sum()
}

/// The keys of the escalations held beside the outbox entries.
fn outbox_bodies(env: &Env) -> Vec<String> {
    (env.redis.nodes())
        .flat_map(|node| {
            let mut c = node.client().get_connection().unwrap();
            redis::cmd("KEYS")
                .arg("{t:*}:outbox:*")
                .query::<Vec<String>>(&mut c)
                .unwrap()
        })
        .collect()
}

/// A backlog fires escalations faster than the broker takes them. What the producer's queue has
/// no room for (`queue.buffering.max.messages`, 100 here) is not held in memory but read back
/// from the outbox as the queue empties: every escalation is published once, each alert's in
/// the order they fired.
#[tokio::test(flavor = "multi_thread")]
async fn escalations_beyond_the_producer_s_queue_are_published_from_the_outbox_once_in_order() {
    const ALERTS: usize = 300;
    let env = Env::new("outbox-spill", 2, FAST_SLA);
    let ids = backlog(&env, "SPILL", ALERTS).await;
    let port = free_port();
    let config = env.config_with_client(port, &[("queue.buffering.max.messages", "100")]);
    let p = Processor::start(&config, port, &env.dir.path().join("spill.log"));
    p.wait_ready(WITHIN);

    let ladder = [
        "visit:1",
        "visit:2",
        "meet:1",
        "meet:2",
        "feedback:1",
        "feedback:2",
    ];
    let fired = (ALERTS * ladder.len()) as f64;
    wait_until(WITHIN, "every escalation fired", || {
        p.metric("fraud_sla_escalations_total", &[]) >= fired
    });
    // Once the outbox is empty the broker has them all: read the topic whole.
    wait_until(WITHIN, "the outbox is empty", || {
        outbox_entries(&env) == 0 && outbox_bodies(&env).is_empty()
    });
    let all = read_through_markers(&env, &env.topics.escalations, env.topics.partitions).await;
    assert_eq!(all.len(), fired as usize, "each escalation published once");
    for a in &ids {
        let fired: Vec<String> = ladder.iter().map(|l| format!("{a}:{l}")).collect();
        assert_eq!(ids_of(&all, a), fired, "in the order they fired");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn input_compressed_with_any_kafka_codec_is_applied() {
    // Producers upstream choose their codec; librdkafka reads zstd only when built with it.
    let run = Run::start("codecs", 1, FAST_SLA);
    let issued = now_ms() - 6_500; // visit levels 1 and 2 already overdue
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let producer = run.env.broker.producer_with(&[("compression.type", codec)]);
        let alert = format!("COMPRESSED-{codec}");
        produce(
            &producer,
            &run.env.topics.alerts,
            Some(&alert),
            &alert_json(&alert, issued, "medium"),
        )
        .await;
    }
    let mut seen = Vec::new();
    for codec in codecs {
        run.until(&mut seen, &id(&format!("COMPRESSED-{codec}"), "visit", "1"));
    }
}
