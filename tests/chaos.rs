//! Crash loop: under steady load from `fraud-sla simulate`, the processor is SIGKILLed at random
//! moments and restarted. Afterwards every breach the contract requires has arrived at least
//! once, and no state transition was applied twice: copies of one escalation id are redeliveries
//! of the same outbox entry, byte for byte (a transition applied twice would carry a different
//! `fired_at`).
//!
//! CI runs 3 kills; `FRAUD_SLA_CHAOS_KILLS=20 FRAUD_SLA_CHAOS_ALERTS=1000 cargo test --release
//! --test chaos -- --nocapture` is the long version.

mod common;
use common::*;
use rand::Rng;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_loses_no_breach_and_applies_nothing_twice() {
    let kills = env_or("FRAUD_SLA_CHAOS_KILLS", 3);
    let count = env_or("FRAUD_SLA_CHAOS_ALERTS", 150);
    let rate = 20;
    let env = Env::new("chaos", 4, FAST_SLA);
    let mut p = env.processor();
    p.wait_ready(Duration::from_secs(60));

    // Silent alerts only: every breach level of every stage is required.
    let mut load = Command::new(bin())
        .args(["simulate", "--config"])
        .arg(env.config(free_port()))
        .args([
            "--rate",
            &rate.to_string(),
            "--count",
            &count.to_string(),
            "--missing",
            "1.0",
            "--quiet",
            "--seed",
            "7",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut rng = rand::rng();
    let mut logs = Vec::new();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(500..3_000)));
        p.sigkill();
        logs.push(p.log_text());
        p = env.processor();
    }
    assert!(
        load.wait().unwrap().success(),
        "the simulator produced everything"
    );

    let mut alerts = Vec::new();
    let reader = env.broker.reader(&env.topics.alerts, env.topics.partitions);
    for r in collect_until(&reader, Duration::from_secs(60), |r| r.len() >= count) {
        alerts.push(r.key.unwrap());
    }
    assert_eq!(alerts.len(), count);
    let want = breach_ids(&alerts, &["visit", "meet", "feedback"]);
    // The last alerts' feedback ladders end 14 s after they were issued.
    let seen = collect_all(&env.escalations(), Duration::from_secs(120), &want, || {
        p.log_text()
    });
    let distinct = assert_identical_copies(&seen);
    let duplicates = seen.len() - distinct;
    println!(
        "chaos: {kills} kills, {count} alerts, {} escalations checked, {duplicates} redelivered duplicates",
        distinct
    );
    logs.push(p.log_text());
    assert_no_sent_personal_data(&env, &logs, &seen).await;
}
