//! Restarts in place: a processor with a `group.instance.id` that is SIGKILLed and started again
//! takes its partitions back from Redis at once and fires what fell due meanwhile, instead of
//! waiting for the group (the dead member's session, a held join); and two processes started
//! with one instance id never both own a partition: the newer one keeps it, the older one exits 1
//! naming the id. Real redis-server and tansu; `FAST_SLA` deadlines.

mod common;
use common::*;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(90);
/// The group's session: long, so that waiting for the group would show in every lateness.
const SESSION_MS: u64 = 45_000;

/// A processor of `env` with static membership `instance` and a long session.
fn start(env: &Env, instance: &str) -> Processor {
    let port = free_port();
    let session = SESSION_MS.to_string();
    let config = env.config_with_client(
        port,
        &[
            ("group.instance.id", instance),
            ("session.timeout.ms", &session),
            ("max.poll.interval.ms", &session),
        ],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("\"session.timeout.ms\" = \"{SESSION_MS}\"")));
    assert_eq!(
        text.matches("\"session.timeout.ms\"").count(),
        1,
        "changed, not added"
    );
    let log = env.dir.path().join(format!("fraud-sla-{port}.log"));
    Processor::start(&config, port, &log)
}

/// Milliseconds from `due_at` to `fired_at` of an escalation.
fn lateness_ms(e: &serde_json::Value) -> i64 {
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(e[field].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    at("fired_at") - at("due_at")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processor_restarted_with_its_instance_id_fires_what_fell_due_without_waiting_for_the_group(
) {
    let env = Env::new("in-place", 2, FAST_SLA);
    let mut first = start(&env, "in-place-1");
    first.wait_ready(WITHIN);
    let alerts = produce_silent(&env.broker.producer(), &env.topics.alerts, "PLACE", 6).await;
    wait_until(WITHIN, "all alerts applied", || {
        first.metric("fraud_sla_alerts_total", &[]) == alerts.len() as f64
    });
    // Killed before the first breach (4 s after issue) and started again at once: every breach
    // falls due while the new process waits for the group, which holds a static member's join
    // for seconds and reassigns a dead member's partitions only after its 45 s session.
    first.sigkill();
    let second = start(&env, "in-place-1");
    let want = breach_ids(&alerts, &["visit", "meet", "feedback"]);
    let seen = collect_all(&env.escalations(), WITHIN, &want, || second.log_text());
    let breaches: Vec<serde_json::Value> = seen
        .iter()
        .map(Record::json)
        .filter(|e| e["kind"] == "breach")
        .collect();
    let latest = breaches.iter().map(lateness_ms).max().unwrap();
    println!(
        "{} breaches after the restart, lateness at most {latest} ms",
        breaches.len()
    );
    assert!(
        latest < (SESSION_MS / 4) as i64,
        "a breach fired {latest} ms late: the restarted process waited for the group\n{}",
        second.log_text()
    );

    // The group assigns the partitions in time: the input is read from where Redis applied it,
    // nothing twice, and new input is applied.
    second.wait_ready(WITHIN);
    let more = produce_silent(&env.broker.producer(), &env.topics.alerts, "AFTER", 4).await;
    wait_until(WITHIN, "the new alerts applied", || {
        second.metric("fraud_sla_alerts_total", &[]) == more.len() as f64
    });
    let mut second = second;
    assert_eq!(second.sigterm().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_processes_with_one_instance_id_the_older_one_stops_and_nothing_fires_twice() {
    let env = Env::new("twins", 2, FAST_SLA);
    let mut older = start(&env, "twin");
    older.wait_ready(WITHIN);
    let newer = start(&env, "twin");
    // The newer process takes the partitions back from Redis; the older one, fenced by a claim
    // made with its own instance id, stops with exit status 1 and names the id.
    let Some(status) = older.wait_exit(WITHIN) else {
        panic!("the older process is still running\n{}", older.log_text());
    };
    assert_eq!(status.code(), Some(1), "{}", older.log_text());
    let log = older.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("group.instance.id") && l.contains("twin")),
        "the older process says why it stopped:\n{log}"
    );

    // The newer process goes on alone: every escalation of new alerts, each once.
    newer.wait_ready(WITHIN);
    let alerts = produce_silent(&env.broker.producer(), &env.topics.alerts, "TWIN", 6).await;
    let want = breach_ids(&alerts, &["visit", "meet", "feedback"]);
    let seen = collect_all(&env.escalations(), WITHIN, &want, || newer.log_text());
    assert_eq!(
        seen.len(),
        ids(&seen).len(),
        "an escalation was published twice"
    );
    let mut newer = newer;
    assert_eq!(newer.sigterm().code(), Some(0));
}
