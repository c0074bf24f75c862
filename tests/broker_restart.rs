//! A broker restart on a broker that keeps its log (tansu with SQLite storage): the processor
//! stays up while the broker is gone, fires the clocks that come due meanwhile into its Redis
//! outbox, reconnects by itself, publishes them, and reads on from the right offsets — nothing
//! produced before or after the restart is skipped or applied twice.

mod common;
use common::*;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(90);

/// Longer than the session timeout (6 s) and than the `visit` ladder (6 s after the alert).
const OUTAGE: Duration = Duration::from_secs(10);

/// The group's committed offset per partition of `topic`, read from the broker.
fn committed(broker: &Broker, group: &str, topic: &str, partitions: u32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_default();
    got.elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(-1))
        .collect()
}

/// The end offset of every partition of `topic`.
fn ends(broker: &Broker, topic: &str, partitions: u32) -> Vec<i64> {
    use rdkafka::consumer::Consumer;
    let c = broker.reader(topic, partitions);
    (0..partitions as i32)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(_, hi)| hi)
                .unwrap_or(-1)
        })
        .collect()
}

/// Whether the group's committed offsets reached the end of every partition of `topic` that
/// has messages (an empty partition has nothing to commit).
fn committed_to_end(broker: &Broker, group: &str, topic: &str, partitions: u32) -> bool {
    let committed = committed(broker, group, topic, partitions);
    let ends = ends(broker, topic, partitions);
    committed.len() == ends.len()
        && committed
            .iter()
            .zip(&ends)
            .all(|(&c, &end)| end == 0 || c == end)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_is_survived_and_reading_resumes_at_the_right_offsets() {
    let mut env = Env::durable("broker-restart", 2, FAST_SLA);
    let (alerts, parts) = (env.topics.alerts.clone(), env.topics.partitions);
    let group = format!("group-{alerts}");
    let mut p = env.processor();
    p.wait_ready(WITHIN);

    let before = produce_silent(&env.broker.producer(), &env.topics.alerts, "BEFORE", 6).await;
    wait_until(WITHIN, "the first alerts applied and committed", || {
        p.metric("fraud_sla_alerts_total", &[]) == 6.0
            && committed_to_end(&env.broker, &group, &alerts, parts)
    });

    // The broker is killed; the first alerts' visit clocks come due while it is gone.
    env.broker.kill();
    p.stays_up_for(OUTAGE, |_| {});
    env.broker.restart();
    let back = Instant::now();
    let after = produce_silent(&env.broker.producer(), &env.topics.alerts, "AFTER", 6).await;

    // The visit breaches that came due during the outage wait in the outbox: published once
    // the processor has reconnected. Then everything else, before and after the restart.
    let esc = env.escalations();
    let outboxed = breach_ids(&before, &["visit"]);
    let mut seen = collect_all(&esc, WITHIN, &outboxed, || p.log_text());
    let caught_up = back.elapsed();
    let mut all = before.clone();
    all.extend(after.iter().cloned());
    let rest: Vec<String> = missing(&seen, &breach_ids(&all, &["visit", "meet"]));
    seen.extend(collect_all(&esc, WITHIN, &rest, || p.log_text()));
    let distinct = assert_identical_copies(&seen);

    // Read on from where it was: every alert applied exactly once, none re-read as a duplicate,
    // and the group's offsets, kept by the broker across its restart, at the end of the log.
    assert_eq!(
        p.metric("fraud_sla_alerts_total", &[]),
        12.0,
        "{}",
        p.metrics()
    );
    assert_eq!(
        p.metric("fraud_sla_duplicates_total", &[]),
        0.0,
        "{}",
        p.metrics()
    );
    wait_until(
        WITHIN,
        "offsets committed to the end after the restart",
        || committed_to_end(&env.broker, &group, &alerts, parts),
    );
    eprintln!(
        "broker down {:.0} s; breaches fired meanwhile read {:.1} s after it was back; \
         {} escalation ids, {} records ({} redelivered copies)",
        OUTAGE.as_secs_f64(),
        caught_up.as_secs_f64(),
        distinct,
        seen.len(),
        seen.len() - distinct
    );
    assert_no_personal_data(&env, &[p.log_text()], &seen);
    assert_eq!(p.sigterm().code(), Some(0));
}
