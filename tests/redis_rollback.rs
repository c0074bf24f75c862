//! A Redis that forgets while the processor runs: restored from an older snapshot, or emptied.
//! The owner notices (its write sequence is ahead of Redis), re-reads its input from what Redis
//! holds, replays it as of each record's time and fires nothing until it caught up: every
//! breach still arrives, and no stage that was satisfied before its clock came due pages.
//! Real redis-server and tansu; `FAST_SLA` (visit 4 s, meet 8 s, feedback 12 s, warn 2 s before).

mod common;
use common::*;
use rdkafka::producer::FutureProducer;
use std::path::Path;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(90);
const ALL_STAGES: &[&str] = &["visit", "meet", "feedback"];

/// Alerts produced under load: `silent` ones get nothing (every breach is due); `handled` ones
/// get `met` and `feedback` half a second after issue, before any of their clocks is due, so any
/// escalation of theirs is a false page.
#[derive(Default)]
struct Load {
    silent: Vec<String>,
    handled: Vec<String>,
}

impl Load {
    /// Produces one silent and one handled alert every `every`, `rounds` times.
    async fn produce(&mut self, env: &Env, p: &FutureProducer, tag: &str, rounds: usize) {
        for i in 0..rounds {
            let now = now_ms();
            let (s, h) = (format!("{tag}-S{i:02}"), format!("{tag}-H{i:02}"));
            produce(
                p,
                &env.topics.alerts,
                Some(&s),
                &alert_json(&s, now, "medium"),
            )
            .await;
            produce(
                p,
                &env.topics.alerts,
                Some(&h),
                &alert_json(&h, now, "medium"),
            )
            .await;
            for (kind, n) in [("met", 1), ("feedback", 2)] {
                let event = format!("{h}-e{n}");
                let json = disposition_json(&event, &h, kind, now + 500);
                produce(p, &env.topics.dispositions, Some(&h), &json).await;
            }
            self.silent.push(s);
            self.handled.push(h);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn count(&self) -> f64 {
        (self.silent.len() + self.handled.len()) as f64
    }

    /// Waits until `p` applied every alert and disposition produced so far.
    fn wait_applied(&self, p: &Processor) {
        wait_until(WITHIN, "everything produced applied", || {
            p.metric("fraud_sla_alerts_total", &[]) == self.count()
                && p.metric("fraud_sla_dispositions_total", &[]) == self.count()
        });
    }

    /// Waits until the clocks of everything produced so far came due: the last silent alert's
    /// visit warning is out.
    fn wait_clocks_due(&self, env: &Env) {
        let last = format!("{}:visit:0", self.silent.last().unwrap());
        let esc = env.escalations();
        assert!(has(&collect_until(&esc, WITHIN, |r| has(r, &last)), &last));
    }

    /// Every breach of the silent alerts arrives; nothing at all for the handled ones.
    fn check(&self, env: &Env, p: &Processor) -> (usize, usize) {
        let want = breach_ids(&self.silent, ALL_STAGES);
        let esc = env.escalations();
        let mut seen = collect_all(&esc, WITHIN, &want, || p.log_text());
        // The handled alerts' clocks (the last at 14 s) are long due by the time the silent
        // alerts' last breach arrived; read on a little for stragglers.
        seen.extend(collect_until(&esc, Duration::from_secs(3), |_| false));
        let false_pages: Vec<String> = ids(&seen)
            .into_iter()
            .filter(|id| {
                self.handled
                    .iter()
                    .any(|h| id.starts_with(&format!("{h}:")))
            })
            .collect();
        assert!(false_pages.is_empty(), "false pages: {false_pages:?}");
        // Copies may differ in `fired_at` here: a transition Redis forgot is applied again.
        (want.len(), seen.len())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restored_from_an_older_snapshot_mid_run_pages_nobody_falsely_and_loses_no_clock() {
    let mut env = Env::new("rollback-snapshot", 2, FAST_SLA);
    let p = env.processor();
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    let mut load = Load::default();

    load.produce(&env, &prod, "BEFORE", 10).await;
    load.wait_applied(&p);
    let mut c = env.redis.client().get_connection().unwrap();
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    drop(c);

    // Applied after the snapshot: these writes are what Redis will forget.
    load.produce(&env, &prod, "LOST", 10).await;
    load.wait_applied(&p);

    // A few seconds later, when the lost alerts' first clocks are due, the server dies and
    // comes back from the snapshot (dump.rdb).
    load.wait_clocks_due(&env);
    let port = env.redis.port;
    let _ = env.redis.proc.child.kill();
    let _ = env.redis.proc.child.wait();
    env.redis = Redis::start_on(env.dir.path(), port, &["--appendonly", "no"]);
    wait_until(WITHIN, "the rollback noticed", || {
        p.metric("fraud_sla_redis_rollbacks_total", &[]) >= 1.0
    });

    load.produce(&env, &prod, "AFTER", 10).await;
    let (expected, arrived) = load.check(&env, &p);
    println!(
        "snapshot rollback: {expected} breaches expected, {arrived} escalations arrived, 0 false"
    );
    assert_no_personal_data(&env, &[p.log_text()], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_emptied_under_load_rebuilds_every_clock_from_the_topics() {
    let env = Env::new("rollback-flush", 2, FAST_SLA);
    let p = env.processor();
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    let mut load = Load::default();

    load.produce(&env, &prod, "BEFORE", 15).await;
    load.wait_applied(&p);
    let mut c = env.redis.client().get_connection().unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    drop(c);
    wait_until(WITHIN, "the loss noticed", || {
        p.metric("fraud_sla_redis_rollbacks_total", &[]) >= 1.0
    });

    load.produce(&env, &prod, "AFTER", 10).await;
    let (expected, arrived) = load.check(&env, &p);
    println!("flushall: {expected} breaches expected, {arrived} escalations arrived, 0 false");
    // Every alert is known again, with its stages.
    let (code, body) = p.get("/v1/alerts/BEFORE-H03").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"satisfied\""), "{body}");
}

fn query<T: redis::FromRedisValue>(node: &Redis, cmd: &mut redis::Cmd) -> T {
    cmd.query(&mut node.client().get_connection().unwrap())
        .unwrap()
}

fn node_id(node: &Redis) -> String {
    query(node, redis::cmd("CLUSTER").arg("MYID"))
}

fn signal(node: &Redis, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &node.proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A replica of `master`, synced.
fn replica_of(dir: &Path, master: &Redis) -> Redis {
    let replica = Redis::start_with(dir, &cluster_node());
    let _: () = query(
        &replica,
        redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(master.port),
    );
    let id = node_id(master);
    wait_until(WITHIN, "the replica knows its master", || {
        let nodes: String = query(&replica, redis::cmd("CLUSTER").arg("NODES"));
        nodes.contains(&id)
    });
    let _: () = query(&replica, redis::cmd("CLUSTER").arg("REPLICATE").arg(&id));
    wait_until(WITHIN, "the replica in sync", || {
        let info: String = query(&replica, redis::cmd("INFO").arg("replication"));
        info.contains("master_link_status:up")
    });
    replica
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_replica_promoted_on_redis_cluster_pages_nobody_falsely_and_loses_no_clock() {
    let env = Env::new("rollback-cluster", 4, FAST_SLA);
    let mut nodes = Redis::cluster_nodes(env.dir.path(), 3);
    // Partition 0's keys ({t:0}) live on one master; it gets a replica.
    let slot: i64 = query(&nodes[0], redis::cmd("CLUSTER").arg("KEYSLOT").arg("{t:0}"));
    let owner = (0..nodes.len())
        .find(|&i| {
            let slots: Vec<Vec<redis::Value>> =
                query(&nodes[i], redis::cmd("CLUSTER").arg("SLOTS"));
            let me = nodes[i].port as i64;
            slots.iter().any(|range| {
                let num = |v: &redis::Value| match v {
                    redis::Value::Int(n) => *n,
                    _ => -1,
                };
                let port = match &range[2] {
                    redis::Value::Array(a) => num(&a[1]),
                    _ => -1,
                };
                num(&range[0]) <= slot && slot <= num(&range[1]) && port == me
            })
        })
        .expect("a master owns partition 0's slot");
    let replica = replica_of(&Redis::node_dir(env.dir.path(), 9), &nodes[owner]);

    let port = free_port();
    let config = env.config(port);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("url = \"{}\"", env.redis.url()),
        &format!(
            "url = \"redis://127.0.0.1:{}\"\ncluster = true",
            nodes[(owner + 1) % 3].port
        ),
    );
    std::fs::write(&config, text).unwrap();
    let p = Processor::start(&config, port, &env.dir.path().join("cluster.log"));
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    let mut load = Load::default();
    load.produce(&env, &prod, "BEFORE", 10).await;
    load.wait_applied(&p);
    wait_until(WITHIN, "the replica caught up", || {
        let m: String = query(&nodes[owner], redis::cmd("INFO").arg("replication"));
        let r: String = query(&replica, redis::cmd("INFO").arg("replication"));
        let offset = |info: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix("master_repl_offset:"))
                .map(|v| v.trim().to_owned())
        };
        offset(&m) == offset(&r)
    });

    // Replication paused: the replica is stopped and its link cut, so it cannot reconnect and
    // nothing written from now on reaches it.
    signal(&replica, "-STOP");
    let cut: i64 = query(
        &nodes[owner],
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
    );
    assert_eq!(cut, 1, "the replica's link cut");
    load.produce(&env, &prod, "LOST", 10).await;
    load.wait_applied(&p);
    load.wait_clocks_due(&env);

    // The master dies; the lagging replica takes over its slots.
    drop(nodes.remove(owner));
    signal(&replica, "-CONT");
    let _: () = query(
        &replica,
        redis::cmd("CLUSTER").arg("FAILOVER").arg("TAKEOVER"),
    );
    wait_until(WITHIN, "the replica is a master", || {
        let info: String = query(&replica, redis::cmd("INFO").arg("replication"));
        info.contains("role:master")
    });
    let deadline = std::time::Instant::now() + WITHIN;
    while p.metric("fraud_sla_redis_rollbacks_total", &[]) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rollback was not noticed\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    load.produce(&env, &prod, "AFTER", 10).await;
    let (expected, arrived) = load.check(&env, &p);
    println!(
        "cluster failover: {expected} breaches expected, {arrived} escalations arrived, 0 false"
    );
}
