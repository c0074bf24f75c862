//! Redis store throughput and footprint, against a real `redis-server` started on a free port.
//!
//! Prints: alerts/s applied in batches through the Lua script (load + domain + write, as the
//! partition does, through the same `partition::plan` functions), firing throughput, and Redis bytes per open alert.
//! Run: `cargo bench --bench store` (ALERTS=100000 to change the size). The alerts' issue
//! times cycle over ten minutes, one station; with `ARRIVAL=1` they come in the order issued,
//! 25 a millisecond, over 12 stations, as bench.sh's open phase sends them (new alerts' index
//! entries then go after the last ones: buckets.lua's append).
//!
//! With `BOARD_ALERTS=<n>` it measures the board's lists instead (`deploy/local/board-bench.sh`):
//! n open alerts' index entries written through the batch script over `BOARD_PARTITIONS`
//! partitions (default 8), then `/v1/open` and `/v1/overdue` pages read exactly as the handler
//! reads them (one `list_stages.lua` call per partition, all at once, merged), timed: p50/p99
//! per page and Redis bytes per open alert for the new keys.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fraud_sla::domain::validate::{Limits, Source};
use fraud_sla::domain::{Alert, AlertState, Millis, Policies, Risk};
use fraud_sla::partition::plan::{self, Input, Offsets, Progress};
use fraud_sla::store::{
    merge_pages, Batch, BoardWrite, IndexQuery, ListedStage, RedisConn, StageList, Store,
    StoreError,
};

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

/// Redis's own profile since the last `CONFIG RESETSTAT`: the commands that took most of its
/// time, scripts' inner commands included (`INFO commandstats`), as `name calls µs/call share`.
fn redis_profile(c: &mut redis::Connection) -> String {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    let mut rows: Vec<(String, u64, f64)> = info
        .lines()
        .filter_map(|l| {
            let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |k: &str| {
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            Some((name.to_owned(), field("calls")? as u64, field("usec")?))
        })
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let total: f64 = rows
        .iter()
        .filter(|r| !r.0.starts_with("eval"))
        .map(|r| r.2)
        .sum();
    rows.iter()
        .take(10)
        .map(|(name, calls, usec)| {
            format!(
                "{name} {calls} calls {:.2} µs/call {:.0}%",
                usec / *calls as f64,
                100.0 * usec / total
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The bench's redis-server, stopped when the bench ends, a panic included (a panicking bench
/// used to leave it running).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Alert `i` as the alerts topic carries it: `(key, value)`; `arrival`: see the header.
fn alert(i: usize, now: i64, arrival: bool) -> (String, String) {
    let id = format!("GA-620102-20261122-{i:06}");
    let issued = if arrival {
        now - 600_000 + i as i64 / 25
    } else {
        now - (i as i64 % 600) * 1000
    };
    let issued_at = chrono::DateTime::from_timestamp_millis(issued)
        .unwrap()
        .to_rfc3339();
    let risk = ["high", "medium", "low"][i % 3];
    let j = if arrival {
        jurisdiction(i.wrapping_mul(7919) % 12)
    } else {
        "620102-GWM".to_owned()
    };
    let value = format!(
        r#"{{"alert_id":"{id}","issued_at":"{issued_at}","jurisdiction":"{j}","risk":"{risk}","channel":"96110","fraud_type":"impersonating_police","amount_cents":5000000}}"#
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
    let batch_size: usize = std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server(
        Command::new("redis-server")
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
            .expect("redis-server on PATH"),
    );
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
    let store = Store::new(conn, "bench").fit_to_server().await;
    if let Some(n) = std::env::var("BOARD_ALERTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let partitions = std::env::var("BOARD_PARTITIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8);
        board(&store, &mut sync, n, partitions).await;
        return;
    }
    let policy = Policies::default();
    let mut fence = store.claim(0).await.unwrap().fence;
    let limits = Limits {
        max_message_bytes: 65536,
        max_clock_skew_ms: 300_000,
    };
    let before = used_memory(&mut sync);
    let now = chrono::Utc::now().timestamp_millis();
    let arrival = std::env::var("ARRIVAL").is_ok_and(|v| v == "1");

    // Ingest, as a partition does it: sort the batch (skip applied, validate), load the states
    // it touches, apply the domain, write with one script call.
    let messages: Vec<(String, String)> = (0..total).map(|i| alert(i, now, arrival)).collect();
    let mut applied = Offsets::new();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut sync)
        .unwrap();
    let t = Instant::now();
    let (mut loading, mut writing) = (Duration::ZERO, Duration::ZERO);
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
        // As the partition does: the alerts are taken as new, and the script checks.
        let unread = sorted.taken_as_new(|_| false);
        let started = Instant::now();
        let read = store.load(0, &sorted.to_read(&unread)).await.unwrap();
        loading += started.elapsed();
        let outcome = plan::apply(
            sorted,
            read,
            &unread,
            &policy,
            now,
            &jiff::tz::TimeZone::UTC,
        );
        let started = Instant::now();
        store.apply(0, &mut fence, &outcome.batch).await.unwrap();
        writing += started.elapsed();
        applied.extend(outcome.batch.offsets);
    }
    let ingest = t.elapsed();
    let ingest_profile = redis_profile(&mut sync);
    let after = used_memory(&mut sync);
    let open = store.open_count(0).await.unwrap();

    // One record as stored: its size, and whether it is kept in its bucket hash.
    let id = "GA-620102-20261122-000001";
    let record = fraud_sla::store::record::encode(id, &store.get(0, id).await.unwrap().unwrap());
    let in_bucket: bool = redis::cmd("HEXISTS")
        .arg(format!(
            "{{bench:0}}:r:{}",
            fraud_sla::store::alert_bucket(id)
        ))
        .arg(id)
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
        let outcome = plan::fire(&ids, states, &policy, fire_at, &jiff::tz::TimeZone::UTC);
        fired += outcome.batch.escalations.len();
        let entries = store.apply(0, &mut fence, &outcome.batch).await.unwrap();
        let stream_ids: Vec<String> = entries.outbox.into_iter().collect();
        store.ack(0, &stream_ids).await.unwrap();
    }
    let firing = t.elapsed();

    println!("store bench: {total} alerts, batches of {batch_size}, one redis-server on loopback");
    println!(
        "  ingest   {:>10.0} alerts/s  ({:.2?} total)",
        total as f64 / ingest.as_secs_f64(),
        ingest
    );
    let per_alert = |d: Duration| d.as_secs_f64() * 1e6 / total as f64;
    println!(
        "  of which load {:.2} µs/alert, write {:.2} µs/alert (round trips, as the client waits)",
        per_alert(loading),
        per_alert(writing)
    );
    println!("  redis's time while ingesting (share of the inner commands'): {ingest_profile}");
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
        "  record   {:>10} bytes, kept {} (records up to {} bytes are)",
        record.len(),
        if in_bucket {
            "in its bucket hash"
        } else {
            "under its own key"
        },
        store.record_limit()
    );
}

/// The jurisdiction of synthetic alert `i`: 30 districts (`620100`…`620129`) of 10 stations.
fn jurisdiction(i: usize) -> String {
    format!("{}-S{:02}", 620_100 + i % 30, (i / 30) % 10)
}

/// Writes `n` open alerts' board entries over `partitions` partitions through the batch script
/// (no records: the lists never read them), then times list pages as `/v1/open` and
/// `/v1/overdue` read them.
async fn board(store: &Store, sync: &mut redis::Connection, n: usize, partitions: i32) {
    let policies = Policies::default();
    let now = chrono::Utc::now().timestamp_millis();
    let before = used_memory(sync);
    let t = Instant::now();
    // Issued evenly over the last 6 h: visits of alerts older than 1 h are breached (late),
    // every feedback still due; warnings fired where due.
    let span: Millis = 6 * 3_600_000;
    let mut entries = 0usize;
    for p in 0..partitions {
        let mut fence = store.claim(p).await.unwrap().fence;
        let mut board = BoardWrite::default();
        for i in (p as usize..n).step_by(partitions as usize) {
            let mut state = AlertState::default();
            let alert = Alert {
                alert_id: format!("GA-{i:08}"),
                issued_at: now - (i as Millis * span / n as Millis),
                jurisdiction: jurisdiction(i),
                risk: Risk::ALL[i % 3],
                channel: None,
                fraud_type: None,
                amount_cents: None,
            };
            state.apply_alert(alert, &policies, now);
            state.fire(&policies, now);
            plan::board_diff(&AlertState::default(), &state, &policies, &mut board);
            if board.add.len() >= 30_000 {
                entries += board.add.len();
                write_board(store, p, &mut fence, std::mem::take(&mut board)).await;
            }
        }
        entries += board.add.len();
        write_board(store, p, &mut fence, board).await;
    }
    let load = t.elapsed();
    let after = used_memory(sync);
    // The indexes are bucketed (`lua/buckets.lua`): the entries of each bucket in the directory.
    // Shared entries (alerts not yet warned) are in the `due` indexes `{p}:due:shared` names.
    fn count(sync: &mut redis::Connection, base: &str) -> usize {
        let buckets: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{base}:dir"))
            .arg(0)
            .arg(-1)
            .query(sync)
            .unwrap();
        buckets
            .iter()
            .map(|b| {
                redis::cmd("ZCARD")
                    .arg(format!("{base}:{b}"))
                    .query::<usize>(sync)
                    .unwrap()
            })
            .sum()
    }
    let (mut due, mut shared, mut late) = (0, 0, 0);
    for p in 0..partitions {
        let base = format!("{{bench:{p}}}:due");
        due += count(sync, &base);
        late += count(sync, &format!("{{bench:{p}}}:late"));
        let indexes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{base}:shared"))
            .query(sync)
            .unwrap();
        for index in indexes {
            shared += count(sync, &format!("{base}:{index}"));
        }
    }
    assert_eq!(due + shared + late, entries);
    println!(
        "board bench: {n} open alerts, {entries} index entries ({due} due, {shared} shared by the stages of an alert not yet warned, {late} late) over {partitions} partitions, one redis-server on loopback"
    );
    println!(
        "  load     {:>10.2?} through the batch script ({:.0} entries/s)",
        load,
        entries as f64 / load.as_secs_f64()
    );
    println!(
        "  memory   {:>10.0} bytes per open alert for due + late + openstat ({:.0} per index entry; used_memory +{} MiB)",
        (after - before) as f64 / n as f64,
        (after - before) as f64 / entries as f64,
        (after - before) / (1 << 20)
    );

    // A cursor halfway down /v1/open: the middle entry of partition 0's index, found bucket by
    // bucket in directory order.
    let buckets: Vec<String> = redis::cmd("ZRANGE")
        .arg("{bench:0}:due:dir")
        .arg(0)
        .arg(-1)
        .query(sync)
        .unwrap();
    let mut rank = due / partitions as usize / 2;
    let mut mid: Vec<(String, f64)> = Vec::new();
    for b in &buckets {
        let key = format!("{{bench:0}}:due:{b}");
        let len: usize = redis::cmd("ZCARD").arg(&key).query(sync).unwrap();
        if rank < len {
            mid = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(rank)
                .arg(rank)
                .arg("WITHSCORES")
                .query(sync)
                .unwrap();
            break;
        }
        rank -= len;
    }
    let deep = (mid[0].1 as Millis, mid[0].0.clone());
    let district = vec!["620102".to_owned()];
    let station = vec!["620102-S03".to_owned()];
    let cases: Vec<(&str, StageList, IndexQuery<'_>)> = vec![
        ("open, first page", StageList::Due, IndexQuery::default()),
        (
            "open, deep cursor (halfway)",
            StageList::Due,
            IndexQuery {
                after: Some((deep.0, deep.1.as_str())),
                ..Default::default()
            },
        ),
        (
            "open, jurisdiction=620102 (1/30)",
            StageList::Due,
            IndexQuery {
                prefixes: Some(&district),
                ..Default::default()
            },
        ),
        (
            "open, jurisdiction=620102-S03 (1/300)",
            StageList::Due,
            IndexQuery {
                prefixes: Some(&station),
                ..Default::default()
            },
        ),
        (
            "open, stage=meet, due_within=2h",
            StageList::Due,
            IndexQuery {
                stage: Some("meet"),
                max_deadline: Some(now + 2 * 3_600_000),
                ..Default::default()
            },
        ),
        (
            "overdue, first page",
            StageList::Late,
            IndexQuery::default(),
        ),
        (
            "overdue, jurisdiction=620102-S03, risk=high",
            StageList::Late,
            IndexQuery {
                prefixes: Some(&station),
                risk: Some(Risk::High),
                ..Default::default()
            },
        ),
    ];
    const RUNS: usize = 300;
    println!("  pages of limit 100, scan budget 2000 per partition, {RUNS} requests each (p50 / p99 / items on the page):");
    for (name, list, q) in cases {
        let q = IndexQuery {
            limit: 100,
            budget: 2000,
            ..q
        };
        let mut times = Vec::with_capacity(RUNS);
        let mut items = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            items = page(store, partitions, list, &q).await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "  {name:<45} {:>8.2?} {:>8.2?} {items:>5}",
            times[RUNS / 2],
            times[RUNS * 99 / 100]
        );
    }
}

/// One page as the handler reads it: every partition at once, merged and decoded.
async fn page(
    store: &Store,
    partitions: i32,
    list: StageList,
    q: &IndexQuery<'_>,
) -> Result<usize, StoreError> {
    let parts =
        futures::future::try_join_all((0..partitions).map(|p| async move {
            Ok::<_, StoreError>((p, store.list_stages(p, list, q).await?))
        }))
        .await?;
    let merged = merge_pages(parts, q.limit);
    Ok(merged
        .items
        .iter()
        .filter_map(|(_, m)| ListedStage::decode(list, m.deadline, &m.member))
        .count())
}

async fn write_board(
    store: &Store,
    p: i32,
    fence: &mut fraud_sla::store::Fence,
    board: BoardWrite,
) {
    let batch = Batch {
        board,
        ..Batch::default()
    };
    store.apply(p, fence, &batch).await.unwrap();
}
