//! Clocks survive the process: SIGKILL and restart, and a group member leaving its partitions to
//! another. Real redis-server and tansu; compressed deadlines (`FAST_SLA`).

mod common;
use common::*;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(90);

/// Both breach levels of `visit` and `meet` are required. Warnings are not: one whose deadline
/// passed while no instance owned the partition is superseded by the breach (§3).
const VISIT_MEET: &[&str] = &["visit", "meet"];

/// No warning may fire once its deadline has passed (same-format UTC strings sort by time).
fn assert_no_stale_warning(records: &[Record]) {
    for e in records
        .iter()
        .map(Record::json)
        .filter(|e| e["kind"] == "warning")
    {
        assert!(
            e["fired_at"].as_str() < e["deadline"].as_str(),
            "stale warning {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_run_and_restart_loses_no_escalation_and_applies_nothing_twice() {
    let env = Env::new("sigkill", 4, FAST_SLA);
    let mut p = env.processor();
    p.wait_ready(WITHIN);
    let alerts = produce_silent(&env.broker.producer(), &env.topics.alerts, "KILL", 12).await;
    wait_until(WITHIN, "all alerts applied", || {
        p.metric("fraud_sla_alerts_total", &[]) == alerts.len() as f64
    });
    let esc = env.escalations();
    let mut seen = collect_until(&esc, WITHIN, |r| !r.is_empty());
    assert!(!seen.is_empty(), "first warnings fire before the kill");

    p.sigkill();
    let mut restarted = env.processor();
    restarted.wait_ready(WITHIN);
    let want = breach_ids(&alerts, VISIT_MEET);
    seen.extend(collect_until(&esc, WITHIN, |r| covered(r, &want)));
    assert!(
        covered(&seen, &want),
        "missing: {:?}",
        missing(&seen, &want)
    );
    assert_no_stale_warning(&seen);
    // Re-read input is skipped by the applied offsets kept in Redis: no alert is opened twice.
    assert_eq!(
        restarted.metric("fraud_sla_alerts_total", &[]),
        0.0,
        "no transition applied twice"
    );
    // Every alert's state is still there, with the ladder as far as it fired.
    let view =
        serde_json::from_str::<serde_json::Value>(&restarted.get("/v1/alerts/KILL-00").unwrap().1)
            .unwrap();
    assert_eq!(
        view["stages"]["visit"]["levels_fired"],
        serde_json::json!([1, 2])
    );
    let duplicates = seen.len() - ids(&seen).len();
    println!(
        "escalations: {} distinct, {duplicates} redelivered after the kill",
        ids(&seen).len()
    );
    assert_eq!(restarted.sigterm().code(), Some(0));
    assert_no_personal_data(&env, &[p.log_text(), restarted.log_text()], &seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_one_of_two_instances_stops_the_other_takes_over_its_clocks() {
    let env = Env::new("takeover", 4, FAST_SLA);
    let mut first = env.processor();
    first.wait_ready(WITHIN);
    let second = env.processor();
    second.wait_ready(WITHIN);
    let owned = |p: &Processor| -> u64 {
        p.get("/readyz")
            .map(|(_, b)| {
                serde_json::from_str::<serde_json::Value>(&b).unwrap()["partitions_owned"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    wait_until(WITHIN, "the group splits the partitions", || {
        owned(&first) > 0 && owned(&second) > 0 && owned(&first) + owned(&second) == 4
    });

    let alerts = produce_silent(&env.broker.producer(), &env.topics.alerts, "SHARE", 12).await;
    wait_until(WITHIN, "both instances hold alerts", || {
        first.metric("fraud_sla_alerts_total", &[]) > 0.0
            && first.metric("fraud_sla_alerts_total", &[])
                + second.metric("fraud_sla_alerts_total", &[])
                == alerts.len() as f64
    });
    let esc = env.escalations();
    let mut seen = collect_until(&esc, WITHIN, |r| !r.is_empty());

    // The first instance leaves cleanly; its partitions, and their clocks, move to the second.
    assert_eq!(
        first.sigterm().code(),
        Some(0),
        "SIGTERM exits 0\n{}",
        first.log_text()
    );
    wait_until(WITHIN, "the survivor owns every partition", || {
        owned(&second) == 4
    });
    let want = breach_ids(&alerts, VISIT_MEET);
    seen.extend(collect_until(&esc, WITHIN, |r| covered(r, &want)));
    assert!(
        covered(&seen, &want),
        "missing: {:?}",
        missing(&seen, &want)
    );
    assert_no_stale_warning(&seen);
    assert_no_personal_data(&env, &[first.log_text(), second.log_text()], &seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_pauses_the_processor_which_then_resumes_and_fires_everything() {
    let dir = tmpdir();
    let mut redis = Redis::start_with(dir.path(), AOF_ALWAYS);
    let broker = Broker::start();
    let topics = Topics::new("redis-outage", 2);
    topics.create(&broker);
    let port = free_port();
    let config = write_config(dir.path(), &broker, &redis, &topics, port, FAST_SLA);
    let mut p = Processor::start(&config, port, &dir.path().join("outage.log"));
    p.wait_ready(WITHIN);
    let prod = broker.producer();
    let now = now_ms();
    produce(
        &prod,
        &topics.alerts,
        Some("BEFORE-1"),
        &alert_json("BEFORE-1", now, "medium"),
    )
    .await;
    wait_until(WITHIN, "BEFORE-1 applied", || {
        p.metric("fraud_sla_alerts_total", &[]) == 1.0
    });

    // Redis goes away: the processor stays up, reports not ready, and takes no input.
    let redis_port = redis.port;
    drop(redis);
    wait_until(WITHIN, "not ready while Redis is down", || {
        p.get("/readyz").is_some_and(|(c, _)| c == 503)
    });
    produce(
        &prod,
        &topics.alerts,
        Some("DURING-1"),
        &alert_json("DURING-1", now, "medium"),
    )
    .await;
    // For the whole outage (30 s unless FRAUD_SLA_REDIS_OUTAGE_SECONDS says otherwise): alive,
    // not ready, nothing applied.
    let outage = Duration::from_secs(env_or("FRAUD_SLA_REDIS_OUTAGE_SECONDS", 30));
    let down_since = Instant::now();
    p.stays_up_for(outage, |p| {
        assert_eq!(p.get("/readyz").map(|(c, _)| c), Some(503), "not ready");
        assert_eq!(
            p.metric("fraud_sla_alerts_total", &[]),
            1.0,
            "nothing applied"
        );
    });

    redis = Redis::start_on(dir.path(), redis_port, AOF_ALWAYS);
    let back = Instant::now();
    p.wait_ready(WITHIN);
    // The retry backoff caps at 5 s: ready again within one step of it (plus start-up slack).
    let resumed_after = back.elapsed();
    eprintln!(
        "Redis outage {:.1} s; ready again {:.1} s after Redis answered",
        down_since.elapsed().as_secs_f64() - resumed_after.as_secs_f64(),
        resumed_after.as_secs_f64()
    );
    assert!(
        resumed_after < Duration::from_secs(10),
        "resumed after {resumed_after:?}"
    );
    let esc = broker.reader(&topics.escalations, topics.partitions);
    let want = breach_ids(&["BEFORE-1", "DURING-1"], VISIT_MEET);
    let seen = collect_until(&esc, WITHIN, |r| covered(r, &want));
    assert!(
        covered(&seen, &want),
        "missing: {:?}\n{}",
        missing(&seen, &want),
        p.log_text()
    );
    assert_no_stale_warning(&seen);
    assert!(
        p.metric("fraud_sla_redis_errors_total", &[]) > 0.0,
        "the outage was seen and retried:\n{}",
        p.metrics()
    );
    drop(redis);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_0_promptly_even_with_the_broker_gone() {
    let env = Env::new("term-no-broker", 2, FAST_SLA);
    let mut p = env.processor();
    p.wait_ready(WITHIN);
    let Env { broker, .. } = env;
    drop(broker);
    let started = std::time::Instant::now();
    assert_eq!(p.sigterm().code(), Some(0), "{}", p.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown waits on the broker at most a few bounded steps"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_with_appendfsync_everysec_loses_no_clock() {
    let dir = tmpdir();
    let aof = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ];
    let redis = Redis::start_with(dir.path(), &aof);
    let broker = Broker::start();
    let topics = Topics::new("aof-everysec", 2);
    topics.create(&broker);
    let port = free_port();
    let config = write_config(dir.path(), &broker, &redis, &topics, port, FAST_SLA);
    let p = Processor::start(&config, port, &dir.path().join("everysec.log"));
    p.wait_ready(WITHIN);
    let prod = broker.producer();
    let now = now_ms();
    let alerts: Vec<String> = (0..8).map(|i| format!("AOF-{i}")).collect();
    for a in &alerts {
        produce(
            &prod,
            &topics.alerts,
            Some(a),
            &alert_json(a, now, "medium"),
        )
        .await;
    }
    wait_until(WITHIN, "alerts applied", || {
        p.metric("fraud_sla_alerts_total", &[]) == alerts.len() as f64
    });
    // Killed within the fsync second: the last writes may be gone, state and applied offsets
    // together. The processor re-reads from Redis's applied offsets and rebuilds them.
    let redis_port = redis.port;
    drop(redis);
    let _redis = Redis::start_on(dir.path(), redis_port, &aof);
    p.wait_ready(WITHIN);
    let esc = broker.reader(&topics.escalations, topics.partitions);
    let want = breach_ids(&alerts, VISIT_MEET);
    let seen = collect_until(&esc, WITHIN, |r| covered(r, &want));
    assert!(
        covered(&seen, &want),
        "missing: {:?}\n{}",
        missing(&seen, &want),
        p.log_text()
    );
}
