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
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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
    let want: Vec<String> = {
        let mut v: Vec<String> = alerts
            .iter()
            .flat_map(|a| {
                ["visit", "meet", "feedback"]
                    .into_iter()
                    .flat_map(move |s| (1..3).map(move |l| format!("{a}:{s}:{l}")))
            })
            .collect();
        v.sort();
        v
    };
    // The last alerts' feedback ladders end 14 s after they were issued.
    let esc = env.escalations();
    let seen = collect_until(&esc, Duration::from_secs(120), |r| {
        let got = ids(r);
        want.iter().all(|w| got.binary_search(w).is_ok())
    });
    let got = ids(&seen);
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| got.binary_search(w).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        p.log_text()
    );

    let mut copies: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for r in &seen {
        copies
            .entry(r.json()["escalation_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(r.value.clone());
    }
    for (id, values) in &copies {
        assert!(
            values.iter().all(|v| v == &values[0]),
            "{id} was fired twice with different content"
        );
    }
    let duplicates = seen.len() - copies.len();
    println!(
        "chaos: {kills} kills, {count} alerts, {} escalations checked, {duplicates} redelivered duplicates",
        copies.len()
    );
    logs.push(p.log_text());
    assert_no_personal_data(&env, &logs, &seen);
}
