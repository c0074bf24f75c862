//! Redis store throughput and footprint, against a real `redis-server` started on a free port.
//!
//! Prints: alerts/s applied in batches through the Lua script (load + domain + write, as the
//! partition does, through the same `partition::plan` functions), firing throughput, and Redis bytes per open alert.
//! Run: `cargo bench --bench store` (ALERTS=100000 to change the size).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fraud_sla::domain::validate::{Limits, Source};
use fraud_sla::domain::Policies;
use fraud_sla::partition::plan::{self, Input, Offsets, Progress};
use fraud_sla::store::{RedisConn, Store};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn used_memory(c: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Alert `i` as the alerts topic carries it: `(key, value)`.
fn alert(i: usize, now: i64) -> (String, String) {
    let id = format!("GA-620102-20261122-{i:06}");
    let issued_at = chrono::DateTime::from_timestamp_millis(now - (i as i64 % 600) * 1000)
        .unwrap()
        .to_rfc3339();
    let risk = ["high", "medium", "low"][i % 3];
    let value = format!(
        r#"{{"alert_id":"{id}","issued_at":"{issued_at}","jurisdiction":"620102-GWM","risk":"{risk}","channel":"96110","fraud_type":"impersonating_police","amount_cents":5000000}}"#
    );
    (id, value)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    let total: usize = std::env::var("ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let batch_size = 500;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    let url = format!("redis://127.0.0.1:{port}");
    let start = Instant::now();
    let conn = loop {
        match RedisConn::connect(&url, false).await {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("redis: {e}"),
        }
    };
    let mut sync = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let store = Store::new(conn, "bench");
    let policy = Policies::default();
    let mut fence = store.claim(0).await.unwrap().fence;
    let limits = Limits {
        max_message_bytes: 65536,
        max_clock_skew_ms: 300_000,
    };
    let before = used_memory(&mut sync);
    let now = chrono::Utc::now().timestamp_millis();

    // Ingest, as a partition does it: sort the batch (skip applied, validate), load the states
    // it touches, apply the domain, write with one script call.
    let messages: Vec<(String, String)> = (0..total).map(|i| alert(i, now)).collect();
    let mut applied = Offsets::new();
    let t = Instant::now();
    for (b, chunk) in messages.chunks(batch_size).enumerate() {
        let inputs: Vec<Input<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Input {
                source: Source::Alerts,
                topic: "alerts",
                offset: (b * batch_size + i) as i64,
                key: Some(key.as_bytes()),
                payload: Some(value.as_bytes()),
                timestamp: Some(now),
            })
            .collect();
        let progress = Progress {
            applied: &applied,
            replay_to: None,
        };
        let sorted = plan::sort(&inputs, progress, now, limits);
        let states = store.load(0, &sorted.alert_ids()).await.unwrap();
        let outcome = plan::apply(sorted, states, &policy, now);
        store.apply(0, &mut fence, &outcome.batch).await.unwrap();
        applied.extend(outcome.batch.offsets);
    }
    let ingest = t.elapsed();
    let after = used_memory(&mut sync);
    let open = store.open_count(0).await.unwrap();

    // Sample the size of one record as stored.
    let sample: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("{bench:0}:a:GA-620102-20261122-000001")
        .query(&mut sync)
        .unwrap();
    let json: String = redis::cmd("GET")
        .arg("{bench:0}:a:GA-620102-20261122-000001")
        .query(&mut sync)
        .unwrap();

    // Firing: every alert's warning at once (claim due, fire, write, outbox).
    let fire_at = now + 60 * 60_000;
    let t = Instant::now();
    let mut fired = 0usize;
    loop {
        let ids = store.due(0, fire_at, batch_size).await.unwrap();
        if ids.is_empty() {
            break;
        }
        let states = store.load(0, &ids).await.unwrap();
        let outcome = plan::fire(&ids, states, &policy, fire_at);
        fired += outcome.batch.escalations.len();
        let entries = store.apply(0, &mut fence, &outcome.batch).await.unwrap();
        let stream_ids: Vec<String> = entries.into_iter().map(|e| e.stream_id).collect();
        store.ack(0, &stream_ids).await.unwrap();
    }
    let firing = t.elapsed();

    println!("store bench: {total} alerts, batches of {batch_size}, one redis-server on loopback");
    println!(
        "  ingest   {:>10.0} alerts/s  ({:.2?} total)",
        total as f64 / ingest.as_secs_f64(),
        ingest
    );
    println!(
        "  firing   {:>10.0} escalations/s  ({fired} in {:.2?}, claim+fire+write+outbox+ack)",
        fired as f64 / firing.as_secs_f64(),
        firing
    );
    println!(
        "  memory   {:>10.0} bytes per open alert (used_memory delta / {open} open alerts)",
        (after - before) as f64 / open.max(1) as f64
    );
    println!(
        "  record   {:>10} bytes MEMORY USAGE of one alert key; JSON {} bytes",
        sample,
        json.len()
    );
    let _ = server.kill();
    let _ = server.wait();
}
