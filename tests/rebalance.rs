//! Ownership moving between instances: a rebalance storm under load (instances stopped with
//! SIGTERM, or SIGKILL with `FRAUD_SLA_STORM_KILL_SHARE`), and a stale owner that is
//! paused (SIGSTOP) until its partitions moved and then resumed. Invariants afterwards: every
//! required breach arrived, and every copy of an escalation id is byte-identical — two owners
//! firing the same transition would differ in `fired_at`, so this is what the fence guarantees.

mod common;
use common::*;
use rand::Rng;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(120);

/// Partitions an instance owns, from its `/readyz`.
fn owned(p: &Processor) -> u64 {
    p.get("/readyz")
        .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v["partitions_owned"].as_u64())
        .unwrap_or(0)
}

/// Waits for every required id, then checks that copies are identical; returns (distinct, copies).
fn check_escalations(env: &Env, want: &[String], logs: &dyn Fn() -> String) -> (usize, usize) {
    let seen = collect_all(&env.escalations(), WITHIN, want, logs);
    (assert_identical_copies(&seen), seen.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_storm_under_load_loses_nothing_and_fires_nothing_twice() {
    let storm = Duration::from_secs(env_or("FRAUD_SLA_STORM_SECONDS", 30));
    // Share of stops that are SIGKILL (the rest SIGTERM, a clean LeaveGroup).
    let kill_share: f64 = env_or("FRAUD_SLA_STORM_KILL_SHARE", 0.5);
    // Stops come every 1.5–3.5 s whether or not the group has settled;
    // FRAUD_SLA_STORM_SETTLE=1 makes it a rolling restart instead (each stop waits until the
    // group owns every partition again).
    let settle = env_or("FRAUD_SLA_STORM_SETTLE", 0) != 0;
    // The SQLite-backed tansu: the in-memory build's group coordinator wedges under unsettled
    // storms (it keeps a departed member as the group leader; RELIABILITY.md).
    let env = Env::durable("storm", 4, FAST_SLA);
    let mut instances: Vec<Processor> = (0..3).map(|_| env.processor()).collect();
    for p in &instances {
        p.wait_ready(WITHIN);
    }
    let count = 100;
    let mut load = Command::new(bin())
        .args(["simulate", "--config"])
        .arg(env.config(free_port()))
        .args([
            "--rate",
            "10",
            "--count",
            &count.to_string(),
            "--missing",
            "1.0",
            "--quiet",
            "--seed",
            "3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut rng = rand::rng();
    let mut logs = Vec::new();
    let (mut stops, started) = (0, Instant::now());
    while started.elapsed() < storm {
        std::thread::sleep(Duration::from_millis(rng.random_range(1_500..3_500)));
        let mut victim = instances.remove(rng.random_range(0..instances.len()));
        if rng.random_bool(kill_share) {
            victim.sigkill();
        } else {
            assert_eq!(victim.sigterm().code(), Some(0), "{}", victim.log_text());
        }
        logs.push(victim.log_text());
        instances.push(env.processor());
        stops += 1;
        if settle {
            wait_until(WITHIN, "the group settles", || {
                instances.iter().map(owned).sum::<u64>() == u64::from(env.topics.partitions)
            });
        }
    }
    assert!(load.wait().unwrap().success());

    // tansu 0.6.0 now and then keeps a stopped member in the group with its partitions, and no
    // rebalance follows (RELIABILITY.md). A Kafka broker evicts such a member once its session
    // times out (6 s here) and rebalances; give the group three times that, then make the
    // rebalance the eviction would have made by replacing one live member (SIGTERM: a clean
    // LeaveGroup). Escalations the processors lost would still be missing below.
    let all_owned = |instances: &[Processor]| {
        instances.iter().map(owned).sum::<u64>() == u64::from(env.topics.partitions)
    };
    let settled = Instant::now();
    while !all_owned(&instances) && settled.elapsed() < Duration::from_secs(18) {
        std::thread::sleep(Duration::from_millis(200));
    }
    if !all_owned(&instances) {
        println!("storm: the broker left a partition to a stopped member; one member replaced");
        let mut victim = instances.remove(0);
        assert_eq!(victim.sigterm().code(), Some(0), "{}", victim.log_text());
        logs.push(victim.log_text());
        instances.push(env.processor());
    }
    wait_until(WITHIN, "the group owns every partition", || {
        all_owned(&instances)
    });

    let reader = env.broker.reader(&env.topics.alerts, env.topics.partitions);
    let alerts: Vec<String> = collect_until(&reader, WITHIN, |r| r.len() >= count)
        .into_iter()
        .map(|r| r.key.unwrap())
        .collect();
    assert_eq!(alerts.len(), count);
    let all_logs = || instances.iter().map(|p| p.log_text()).collect::<String>();
    let (distinct, total) = check_escalations(
        &env,
        &breach_ids(&alerts, &["visit", "meet", "feedback"]),
        &all_logs,
    );
    println!("storm: {stops} instances stopped in {storm:?}, {distinct} escalations checked, {} redelivered", total - distinct);
    logs.extend(instances.iter().map(|p| p.log_text()));
    assert_no_sent_personal_data(&env, &logs, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_owner_resumed_after_its_partitions_moved_cannot_overwrite_the_new_owner() {
    let env = Env::new("paused", 2, FAST_SLA);
    let stale = env.processor();
    stale.wait_ready(WITHIN);
    let owner = env.processor();
    owner.wait_ready(WITHIN);
    wait_until(WITHIN, "one partition each", || {
        owned(&stale) == 1 && owned(&owner) == 1
    });

    let alerts = produce_silent(&env.broker.producer(), &env.topics.alerts, "PAUSE", 10).await;
    wait_until(WITHIN, "both hold alerts", || {
        stale.metric("fraud_sla_alerts_total", &[]) > 0.0
            && owner.metric("fraud_sla_alerts_total", &[]) > 0.0
    });

    // Freeze the stale owner across its clocks' due times; its session expires and the other
    // instance takes its partition (and bumps the epoch) meanwhile.
    let pid = stale.proc.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    wait_until(WITHIN, "the other instance owns both partitions", || {
        owned(&owner) == 2
    });
    std::thread::sleep(Duration::from_secs(3)); // let clocks come due while it is frozen
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();

    let logs = || format!("{}\n--- owner ---\n{}", stale.log_text(), owner.log_text());
    check_escalations(&env, &breach_ids(&alerts, &["visit", "meet"]), &logs);
    let stale_log = stale.log_text();
    assert!(
        stale_log.contains("Fenced") || stale_log.contains("Partition released"),
        "the resumed instance gives the partition up:\n{stale_log}"
    );
}
