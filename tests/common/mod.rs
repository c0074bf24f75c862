//! Test harness: real `redis-server` and a real Kafka-protocol broker (tansu) on free loopback
//! ports, the built `fraud-sla` binary, and rdkafka clients to drive it.
#![allow(dead_code, unreachable_pub)]

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, within: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < within,
            "nothing listens on port {port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fraud-sla-test")
        .tempdir()
        .unwrap()
}

pub struct Redis {
    pub port: u16,
    pub proc: Proc,
    /// The other masters when this is the first node of a cluster.
    pub peers: Vec<Redis>,
}

/// Every write on disk before it is acknowledged: a restart loses nothing.
pub const AOF_ALWAYS: &[&str] = &[
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

/// A Redis Cluster master with [`AOF_ALWAYS`].
pub fn cluster_node() -> Vec<&'static str> {
    [&["--cluster-enabled", "yes"][..], AOF_ALWAYS].concat()
}

impl Redis {
    /// One redis-server; `FRAUD_SLA_TEST_REDIS=cluster` makes it a 3-master Redis Cluster, so
    /// a suite (CI: the scenarios) runs unchanged on both.
    pub fn start(dir: &Path) -> Redis {
        if std::env::var("FRAUD_SLA_TEST_REDIS").as_deref() == Ok("cluster") {
            return Self::start_cluster(dir, 3);
        }
        Self::start_with(dir, &["--save", "", "--appendonly", "no"])
    }

    /// `masters` cluster nodes under `dir/node<i>`, the slots spread over them by
    /// `redis-cli --cluster create`; the first node, with the others as its peers.
    pub fn start_cluster(dir: &Path, masters: usize) -> Redis {
        let mut nodes = Self::cluster_nodes(dir, masters);
        let mut first = nodes.remove(0);
        first.peers = nodes;
        first
    }

    /// The nodes of a formed cluster of `masters` masters, each with its own `dir/node<i>`
    /// (AOF and `nodes.conf`, so a node restarted there rejoins as itself).
    pub fn cluster_nodes(dir: &Path, masters: usize) -> Vec<Redis> {
        let nodes: Vec<Redis> = (0..masters)
            .map(|i| Redis::start_with(&Self::node_dir(dir, i), &cluster_node()))
            .collect();
        form_cluster(&nodes);
        nodes
    }

    /// Where cluster node `i` under `dir` keeps its files.
    pub fn node_dir(dir: &Path, i: usize) -> PathBuf {
        let d = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn is_cluster(&self) -> bool {
        !self.peers.is_empty()
    }

    pub fn start_with(dir: &Path, extra: &[&str]) -> Redis {
        let port = free_port();
        Self::start_on(dir, port, extra)
    }

    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (deploy/local/install.sh installs it)");
        wait_port(port, Duration::from_secs(10));
        Redis {
            port,
            proc: Proc {
                child,
                name: "redis".into(),
            },
            peers: Vec::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap()
    }
}

/// Makes `nodes` (started with [`cluster_node`]) one cluster of masters and waits until every
/// node reports `cluster_state:ok`.
pub fn form_cluster(nodes: &[Redis]) {
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli runs");
    assert!(status.success(), "redis-cli --cluster create");
    wait_until(
        Duration::from_secs(30),
        "cluster_state:ok on every node",
        || {
            nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.client().get_connection().unwrap())
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
            })
        },
    );
}

/// A Redis reply as text (bulk strings decoded as UTF-8, so scans see the real bytes).
fn value_text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().map(value_text).collect::<Vec<_>>().join(" ")
        }
        redis::Value::Map(pairs) => pairs
            .iter()
            .map(|(a, b)| format!("{} {}", value_text(a), value_text(b)))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}

impl Redis {
    /// Every key and its value as text (strings, hashes, zsets, streams), on every node, for
    /// privacy scans.
    pub fn dump(&self) -> String {
        std::iter::once(self)
            .chain(&self.peers)
            .map(Redis::dump_node)
            .collect()
    }

    fn dump_node(&self) -> String {
        let mut c = self.client().get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        let mut out = String::new();
        for k in keys {
            let t: String = redis::cmd("TYPE").arg(&k).query(&mut c).unwrap();
            let v: redis::Value = match t.as_str() {
                "string" => redis::cmd("GET").arg(&k).query(&mut c).unwrap(),
                "hash" => redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut c)
                    .unwrap(),
                "stream" => redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query(&mut c)
                    .unwrap(),
                _ => redis::Value::Nil,
            };
            out.push_str(&format!("{k} = {}\n", value_text(&v)));
        }
        out
    }
}

pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FRAUD_SLA_TANSU") {
        return PathBuf::from(p);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/bin/tansu");
    if local.exists() {
        return local;
    }
    PathBuf::from("tansu")
}

/// tansu's log goes to `$FRAUD_SLA_TANSU_LOG` (appended) when set, for debugging the broker.
fn tansu_log() -> Stdio {
    match std::env::var("FRAUD_SLA_TANSU_LOG") {
        Ok(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        Err(_) => Stdio::null(),
    }
}

/// tansu built with its SQLite storage engine (`deploy/local/install.sh` builds it from crates.io
/// into `.local/bin/tansu-sqlite`): the local storage whose log and offsets survive a restart.
pub fn tansu_sqlite_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FRAUD_SLA_TANSU_SQLITE") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/bin/tansu-sqlite")
}

pub struct Broker {
    pub port: u16,
    pub proc: Proc,
    /// The SQLite broker's data directory; `None` for the in-memory broker.
    durable: Option<PathBuf>,
    /// Owns that directory when the broker made it itself.
    data: Option<tempfile::TempDir>,
    /// Extra `tansu broker` arguments, kept across restarts.
    args: Vec<String>,
}

impl Broker {
    /// An in-memory broker: fast, and gone with the process. `FRAUD_SLA_TEST_BROKER=sqlite`
    /// makes every test use the SQLite one instead.
    pub fn start() -> Broker {
        if std::env::var("FRAUD_SLA_TEST_BROKER").as_deref() == Ok("sqlite") {
            let data = tmpdir();
            let mut b = Self::start_durable(data.path());
            b.data = Some(data);
            return b;
        }
        Self::spawn(free_port(), None, Vec::new())
    }

    /// A broker keeping its log, groups and offsets in SQLite under `dir`.
    pub fn start_durable(dir: &Path) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        Self::spawn(free_port(), Some(dir.to_owned()), Vec::new())
    }

    fn spawn(port: u16, durable: Option<PathBuf>, args: Vec<String>) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = match &durable {
            None => {
                let mut c = Command::new(tansu_bin());
                c.args(["broker", "--storage-engine", "memory://tansu/"]);
                c
            }
            Some(dir) => {
                // tansu resolves the SQLite path against its working directory.
                let mut c = Command::new(tansu_sqlite_bin());
                c.args(["broker", "--storage-engine", "sqlite://tansu.db"])
                    .current_dir(dir);
                c
            }
        };
        let child = cmd
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(tansu_log())
            .spawn()
            .expect("tansu runs (deploy/local/install.sh [--with-durable-broker] installs it)");
        wait_port(port, Duration::from_secs(20));
        Broker {
            port,
            proc: Proc {
                child,
                name: "tansu".into(),
            },
            durable,
            data: None,
            args,
        }
    }

    /// SIGKILLs the broker (a durable one keeps what it had written).
    pub fn kill(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }

    /// Starts the broker again on the same port and data directory.
    pub fn restart(&mut self) {
        let args = std::mem::take(&mut self.args);
        self.restart_with(args);
    }

    /// Starts the broker again with other extra arguments (e.g. `--authentication`).
    pub fn restart_with(&mut self, args: Vec<String>) {
        self.kill();
        let data = self.data.take();
        *self = Self::spawn(self.port, self.durable.take(), args);
        self.data = data;
    }

    /// Runs a `tansu` admin subcommand against this broker (same build), e.g. `user create`.
    pub fn admin(&self, args: &[&str]) {
        let bin = if self.durable.is_some() {
            tansu_sqlite_bin()
        } else {
            tansu_bin()
        };
        let status = Command::new(bin)
            .args(args)
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tansu {args:?}");
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.admin(&[
            "topic",
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
        ]);
    }

    pub fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "0")
            .create()
            .unwrap()
    }

    /// A consumer reading `topic` from the beginning, outside any group.
    pub fn reader(&self, topic: &str, partitions: u32) -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", format!("reader-{}", free_port()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        c
    }
}

/// The topics of one test, unique so tests never see each other's messages.
#[derive(Clone, Debug)]
pub struct Topics {
    pub alerts: String,
    pub dispositions: String,
    pub escalations: String,
    pub deadletter: String,
    pub partitions: u32,
}

impl Topics {
    pub fn new(name: &str, partitions: u32) -> Topics {
        let id = format!("{name}-{}", free_port());
        Topics {
            alerts: format!("{id}.alerts"),
            dispositions: format!("{id}.dispositions"),
            escalations: format!("{id}.escalations"),
            deadletter: format!("{id}.deadletter"),
            partitions,
        }
    }

    pub fn create(&self, broker: &Broker) {
        for t in [
            &self.alerts,
            &self.dispositions,
            &self.escalations,
            &self.deadletter,
        ] {
            broker.create_topic(t, self.partitions);
        }
    }
}

/// The SLA part of a test config: compressed durations.
pub const FAST_SLA: &str = r#"
[sla]
visit_within = "4s"
meet_within = "8s"
feedback_within = "12s"
warn_before = "2s"
escalate_after = ["0s", "2s"]
notify = [["station_duty_officer"], ["station_chief"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096
"#;

pub fn write_config(
    dir: &Path,
    broker: &Broker,
    redis: &Redis,
    topics: &Topics,
    http_port: u16,
    sla: &str,
) -> PathBuf {
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "group-{alerts}"
alerts_topic = "{alerts}"
dispositions_topic = "{dispositions}"
escalations_topic = "{escalations}"
deadletter_topic = "{deadletter}"
[kafka.client]
"session.timeout.ms" = "6000"
"max.poll.interval.ms" = "6000"
"heartbeat.interval.ms" = "500"
"statistics.interval.ms" = "1000"
{debug}

[redis]
url = "{redis}"
key_prefix = "t"
{cluster}
[http]
listen = "127.0.0.1:{http_port}"
{sla}
"#,
        brokers = broker.bootstrap(),
        alerts = topics.alerts,
        dispositions = topics.dispositions,
        escalations = topics.escalations,
        deadletter = topics.deadletter,
        redis = redis.url(),
        cluster = if redis.is_cluster() {
            "cluster = true"
        } else {
            ""
        },
        // FRAUD_SLA_KAFKA_DEBUG=cgrp (any librdkafka debug contexts) for debugging a test.
        debug = std::env::var("FRAUD_SLA_KAFKA_DEBUG")
            .map(|d| format!("\"debug\" = \"{d}\""))
            .unwrap_or_default(),
    );
    let path = dir.join(format!("config-{http_port}.toml"));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fraud-sla")
}

/// A running processor, its log captured to a file.
pub struct Processor {
    pub proc: Proc,
    pub http_port: u16,
    pub log: PathBuf,
}

impl Processor {
    pub fn start(config: &Path, http_port: u16, log: &Path) -> Processor {
        Self::start_with_env(config, http_port, log, &[])
    }

    pub fn start_with_env(
        config: &Path,
        http_port: u16,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Processor {
        Self::start_with(config, http_port, log, env, &[])
    }

    /// Starts `fraud-sla run --config <config> <args…>` with extra environment variables.
    pub fn start_with(
        config: &Path,
        http_port: u16,
        log: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Processor {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .env(
                "FRAUD_SLA_LOG",
                // FRAUD_SLA_TEST_LOG overrides the filter, e.g. to see librdkafka's debug lines.
                std::env::var("FRAUD_SLA_TEST_LOG").unwrap_or_else(|_| {
                    "debug,librdkafka=warn,rdkafka=warn,h2=warn,hyper=warn".into()
                }),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Processor {
            proc: Proc {
                child,
                name: "fraud-sla".into(),
            },
            http_port,
            log: log.to_owned(),
        }
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path, None)
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, within: Duration) {
        let start = Instant::now();
        loop {
            if let Some((200, _)) = self.get("/readyz") {
                return;
            }
            assert!(
                start.elapsed() < within,
                "not ready after {within:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// For `how_long`, once a second: still running, `/healthz` 200, and `check` holds.
    pub fn stays_up_for(&mut self, how_long: Duration, check: impl Fn(&Processor)) {
        let start = Instant::now();
        while start.elapsed() < how_long {
            assert!(self.proc.child.try_wait().unwrap().is_none(), "exited");
            assert_eq!(self.get("/healthz").map(|(c, _)| c), Some(200), "alive");
            check(self);
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.proc.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.proc.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sigkill(&mut self) {
        self.proc.child.kill().unwrap();
        self.proc.child.wait().unwrap();
    }
}

/// A minimal HTTP/1.1 GET (no client dependency in the harness).
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some((code, body))
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

pub async fn produce(p: &FutureProducer, topic: &str, key: Option<&str>, value: &str) {
    let mut rec: FutureRecord<'_, str, str> = FutureRecord::to(topic).payload(value);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    p.send(rec, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// Produces `n` medium-risk alerts `<prefix>-NN`, issued now and keyed by their ids, that get no
/// disposition (silent: every level of every stage must fire); returns their ids.
pub async fn produce_silent(
    p: &FutureProducer,
    topic: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let now = now_ms();
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:02}")).collect();
    for id in &ids {
        produce(p, topic, Some(id), &alert_json(id, now, "medium")).await;
    }
    ids
}

pub fn iso(ms: i64) -> String {
    fraud_sla::domain::time::format_utc(ms)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn alert_json(id: &str, issued_at: i64, risk: &str) -> String {
    serde_json::json!({
        "alert_id": id,
        "issued_at": iso(issued_at),
        "jurisdiction": "620102-GWM",
        "risk": risk,
        "channel": "96110",
        "fraud_type": "impersonating_police",
        "amount_cents": 5000000,
        "subject": { "name": "SECRET-NAME-张三", "phone": "13800001234" }
    })
    .to_string()
}

pub fn disposition_json(event_id: &str, alert_id: &str, kind: &str, at: i64) -> String {
    let mut v = serde_json::json!({
        "event_id": event_id,
        "alert_id": alert_id,
        "kind": kind,
        "occurred_at": iso(at),
        "officer_id": "620102-0457",
        "note": "SECRET-NOTE-家属电话"
    });
    if kind == "feedback" {
        v["outcome"] = "dissuaded".into();
    }
    v.to_string()
}

/// A received record with its headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Record {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.value).unwrap()
    }
}

/// Collects records from a reader until `done` holds for what was collected, or `within` passes.
pub fn collect_until(
    c: &BaseConsumer,
    within: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < within {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
        if done(&out) {
            break;
        }
    }
    out
}

/// Escalation ids (distinct) among records.
pub fn ids(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| r.json()["escalation_id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// One test's whole environment.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub redis: Redis,
    pub broker: Broker,
    pub topics: Topics,
    pub sla: String,
}

impl Env {
    pub fn new(name: &str, partitions: u32, sla: &str) -> Env {
        Self::build(name, partitions, sla, false)
    }

    /// With a broker that keeps its log across a restart.
    pub fn durable(name: &str, partitions: u32, sla: &str) -> Env {
        Self::build(name, partitions, sla, true)
    }

    fn build(name: &str, partitions: u32, sla: &str, durable: bool) -> Env {
        let dir = tmpdir();
        let redis = Redis::start(dir.path());
        let broker = if durable {
            Broker::start_durable(&dir.path().join("broker"))
        } else {
            Broker::start()
        };
        let topics = Topics::new(name, partitions);
        topics.create(&broker);
        Env {
            dir,
            redis,
            broker,
            topics,
            sla: sla.to_owned(),
        }
    }

    pub fn config(&self, http_port: u16) -> PathBuf {
        write_config(
            self.dir.path(),
            &self.broker,
            &self.redis,
            &self.topics,
            http_port,
            &self.sla,
        )
    }

    pub fn processor(&self) -> Processor {
        let port = free_port();
        let config = self.config(port);
        let log = self.dir.path().join(format!("fraud-sla-{port}.log"));
        Processor::start(&config, port, &log)
    }

    pub fn escalations(&self) -> BaseConsumer {
        self.broker
            .reader(&self.topics.escalations, self.topics.partitions)
    }

    pub fn deadletters(&self) -> BaseConsumer {
        self.broker
            .reader(&self.topics.deadletter, self.topics.partitions)
    }
}

/// A test size from the environment (the long runs of `deploy/local/reliability.sh`), else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `cond` every 100 ms until it holds; panics with `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sum of the samples of `name` whose labels include every pair in `labels` (OpenMetrics text).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

impl Processor {
    pub fn metrics(&self) -> String {
        self.get("/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.metrics(), name, labels)
    }
}

/// The escalations of one alert, in the order they were published.
pub fn of_alert(records: &[Record], alert_id: &str) -> Vec<Value> {
    records
        .iter()
        .map(Record::json)
        .filter(|e| e["alert_id"] == alert_id)
        .collect()
}

/// Escalation ids of one alert, in publication order (duplicates kept).
pub fn ids_of(records: &[Record], alert_id: &str) -> Vec<String> {
    of_alert(records, alert_id)
        .iter()
        .map(|e| e["escalation_id"].as_str().unwrap().to_owned())
        .collect()
}

/// True once `id` has been published.
pub fn has(records: &[Record], id: &str) -> bool {
    records.iter().any(|r| r.json()["escalation_id"] == id)
}

/// The personal data the test messages carry (`subject`, `note`).
pub const PERSONAL_DATA: [&str; 3] = ["SECRET-NAME", "13800001234", "SECRET-NOTE"];

/// Asserts that no personal data reached the processor's log, Redis, or the escalations.
pub fn assert_no_personal_data(env: &Env, logs: &[String], escalations: &[Record]) {
    let redis = env.redis.dump();
    let published: String = escalations
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    for secret in PERSONAL_DATA {
        assert!(!redis.contains(secret), "{secret} found in Redis");
        assert!(
            !published.contains(secret),
            "{secret} found in an escalation"
        );
        for log in logs {
            assert!(!log.contains(secret), "{secret} found in the log");
        }
    }
    assert!(!redis.is_empty(), "the scan must see the state it checks");
}

/// `promtool check metrics` on an exposition; returns what it said (empty when clean).
pub fn promtool_check_metrics(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (deploy/local/install.sh installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said
    } else {
        format!("exit {}: {said}", out.status)
    }
}

/// `<alert>:<stage>:<level>` for breach levels 1 and 2 (the `FAST_SLA` ladder), sorted.
pub fn breach_ids<A: AsRef<str>>(alerts: &[A], stages: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = alerts
        .iter()
        .flat_map(|a| {
            stages
                .iter()
                .flat_map(move |s| (1..3).map(move |l| format!("{}:{s}:{l}", a.as_ref())))
        })
        .collect();
    v.sort();
    v
}

/// The ids of `want` not among the escalation ids of `records`.
pub fn missing(records: &[Record], want: &[String]) -> Vec<String> {
    let got = ids(records);
    want.iter()
        .filter(|w| got.binary_search(w).is_err())
        .cloned()
        .collect()
}

pub fn covered(records: &[Record], want: &[String]) -> bool {
    missing(records, want).is_empty()
}

/// Reads escalations until every id of `want` has arrived; fails with `context()` if one never does.
pub fn collect_all(
    c: &BaseConsumer,
    within: Duration,
    want: &[String],
    context: impl Fn() -> String,
) -> Vec<Record> {
    let seen = collect_until(c, within, |r| covered(r, want));
    let missing = missing(&seen, want);
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        context()
    );
    seen
}

/// Asserts that every copy of an escalation id is byte-identical (a redelivery of one outbox
/// entry, not a transition applied twice); returns the number of distinct ids.
pub fn assert_identical_copies(records: &[Record]) -> usize {
    let mut copies: HashMap<String, Vec<&[u8]>> = HashMap::new();
    for r in records {
        copies
            .entry(r.json()["escalation_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(&r.value);
    }
    for (id, values) in &copies {
        assert!(
            values.iter().all(|v| v == &values[0]),
            "{id} fired twice with different content"
        );
    }
    copies.len()
}
