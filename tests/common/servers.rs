//! The servers a test runs against: free loopback ports, child processes killed on drop,
//! `redis-server` (single node or a formed Redis Cluster, and a dump of every key for privacy
//! scans), the tansu broker (in memory or SQLite-backed, restartable) and a test's topics.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free now, for a server a test starts.
///
/// Taken from below the kernel's ephemeral range: a port the kernel hands out (`bind :0`) is
/// free only until the probe closes it, and any client's outgoing connection (Kafka and Redis
/// clients open many) may take it before the server binds. Below the range only servers that
/// bind a port by number compete, and this counter gives each a different one. Ports come from
/// 10000–19999, so that a Redis Cluster node's bus port (its port + 10000) is free too and
/// never one this hands out. The start depends on the process id, so test binaries run side
/// by side start apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    const SPAN: u32 = 10_000;
    const BUS: u16 = 10_000;
    if ephemeral_start() < LOW + SPAN + u32::from(BUS) {
        // A range that leaves no room below it: the kernel's choice.
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        return probe.local_addr().unwrap().port();
    }
    let start = std::process::id() * 97 % SPAN;
    for _ in 0..SPAN {
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + BUS) {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
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

    /// This node and, on a cluster, the other masters: ask each for the keys it holds.
    pub fn nodes(&self) -> impl Iterator<Item = &Redis> {
        std::iter::once(self).chain(&self.peers)
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
        self.nodes().map(Redis::dump_node).collect()
    }

    fn dump_node(&self) -> String {
        let mut c = self.client().get_connection().unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        // In order: KEYS walks the keyspace's table, whose order a key added and removed changes.
        keys.sort();
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
        self.producer_with(&[])
    }

    /// A producer with more settings (`compression.type`, say).
    pub fn producer_with(&self, settings: &[(&str, &str)]) -> FutureProducer {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "0");
        for (k, v) in settings {
            c.set(*k, *v);
        }
        c.create()
            .unwrap_or_else(|e| panic!("a producer with {settings:?}: {e}"))
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
