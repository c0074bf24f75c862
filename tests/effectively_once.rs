//! Effectively-once for real: the processor is SIGKILLed before it ever committed an offset (the
//! auto-commit interval is longer than the test), so its successor re-reads every message from
//! the start. The counters and the output prove nothing was applied twice: every re-read
//! message is counted as skipped, none as applied, and every copy of an escalation is a
//! byte-identical redelivery of one outbox entry.

mod common;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(90);

/// The group's committed offsets of both input topics.
fn committed(env: &Env) -> Vec<Offset> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", env.broker.bootstrap())
        .set("group.id", format!("group-{}", env.topics.alerts))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for topic in [&env.topics.alerts, &env.topics.dispositions] {
        for p in 0..env.topics.partitions as i32 {
            tpl.add_partition(topic, p);
        }
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.offset())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_before_any_commit_re_reads_everything_and_applies_nothing_twice() {
    let env = Env::new("effectively-once", 2, FAST_SLA);
    // No offset is committed for ten minutes: everything the first instance read is re-read.
    let port = free_port();
    let config = env.config_with_client(port, &[("auto.commit.interval.ms", "600000")]);
    let log = env.dir.path().join("first.log");
    let mut first = Processor::start(&config, port, &log);
    first.wait_ready(WITHIN);

    let prod = env.broker.producer();
    let silent = produce_silent(&prod, &env.topics.alerts, "ONCE", 8).await;
    let now = now_ms();
    for i in 0..8 {
        let id = format!("DONE-{i:02}");
        produce(
            &prod,
            &env.topics.alerts,
            Some(&id),
            &alert_json(&id, now, "high"),
        )
        .await;
        let json = disposition_json(&format!("{id}-met"), &id, "met", now + 300);
        produce(&prod, &env.topics.dispositions, Some(&id), &json).await;
    }
    wait_until(WITHIN, "everything applied once", || {
        first.metric("fraud_sla_alerts_total", &[]) == 16.0
            && first.metric("fraud_sla_dispositions_total", &[]) == 8.0
    });
    let esc = env.escalations();
    // Killed while clocks are firing: some escalations are out, others still to come.
    let mut seen = collect_until(&esc, WITHIN, |r| has(r, "ONCE-00:visit:1"));
    let offsets = committed(&env);
    assert!(
        offsets.iter().all(|o| !matches!(o, Offset::Offset(_))),
        "nothing committed before the kill: {offsets:?}"
    );
    first.sigkill();

    let port = free_port();
    let log = env.dir.path().join("second.log");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("127.0.0.1:{}", first.http_port),
        &format!("127.0.0.1:{port}"),
    );
    std::fs::write(&config, text).unwrap();
    let second = Processor::start(&config, port, &log);
    second.wait_ready(WITHIN);
    let skipped =
        |topic: &str| second.metric("fraud_sla_already_applied_total", &[("topic", topic)]);
    let deadline = std::time::Instant::now() + WITHIN;
    while std::time::Instant::now() < deadline
        && (skipped(&env.topics.alerts) < 16.0 || skipped(&env.topics.dispositions) < 8.0)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        (
            skipped(&env.topics.alerts),
            skipped(&env.topics.dispositions)
        ),
        (16.0, 8.0),
        "every message re-read and skipped; committed now {:?}\n{}\n{}",
        committed(&env),
        first.log_text(),
        second.log_text()
    );
    for name in [
        "fraud_sla_alerts_total",
        "fraud_sla_dispositions_total",
        "fraud_sla_duplicates_total",
        "fraud_sla_stage_completions_total",
    ] {
        assert_eq!(second.metric(name, &[]), 0.0, "{name}: applied twice");
    }
    let want = breach_ids(&silent, &["visit", "meet", "feedback"]);
    let rest = missing(&seen, &want);
    seen.extend(collect_all(&esc, WITHIN, &rest, || second.log_text()));
    let distinct = assert_identical_copies(&seen);
    assert!(
        !seen.iter().any(
            |r| r.json()["alert_id"].as_str().unwrap().starts_with("DONE-")
                && r.json()["stage"] != "feedback"
        ),
        "a stage met on time paged"
    );
    println!(
        "re-read 24 messages, applied 0 again; {distinct} escalations, {} redelivered copies",
        seen.len() - distinct
    );
}
