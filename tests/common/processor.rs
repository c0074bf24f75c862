//! The processor under test: its config file (`FAST_SLA` deadlines), the `fraud-sla run` child
//! process and its log, one test's whole environment ([`Env`]), and what its HTTP port says
//! (`http_get`, metrics, `promtool check metrics`).

use rdkafka::consumer::BaseConsumer;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::servers::{free_port, tmpdir, Broker, Proc, Redis, Topics};

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
        self.wait_exit(Duration::from_secs(40))
            .expect("did not stop on SIGTERM")
    }

    /// The exit status once the process has exited, or `None` if it still runs after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.proc.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() >= within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sigkill(&mut self) {
        self.proc.child.kill().unwrap();
        self.proc.child.wait().unwrap();
    }
}

/// GET `http://127.0.0.1:<port><path>`, with a bearer `token` if given: the status and the body,
/// or `None` when nothing answers within 5 s.
///
/// reqwest's blocking client must not run on a tokio worker (it starts and drops a runtime of its
/// own), and async tests call this too: each request runs on a short-lived thread of its own.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let client = CLIENT.get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .no_proxy()
                    // A new connection each time, as a restarted server on the same port needs.
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("an HTTP client")
            });
            let mut request = client.get(&url);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().ok()?;
            let code = response.status().as_u16();
            Some((code, response.text().ok()?))
        })
        .join()
        .expect("the request thread does not panic")
    })
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

    /// [`Env::config`] with `[kafka.client]` settings added, or changed where it has them.
    pub fn config_with_client(&self, http_port: u16, client: &[(&str, &str)]) -> PathBuf {
        let path = self.config(http_port);
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (key, value) in client {
            let line = format!("\"{key}\" = \"{value}\"\n");
            text = match text.find(&format!("\"{key}\" = ")) {
                Some(at) => {
                    let end = at + text[at..].find('\n').map_or(text.len() - at, |n| n + 1);
                    format!("{}{line}{}", &text[..at], &text[end..])
                }
                None => text.replacen("[kafka.client]\n", &format!("[kafka.client]\n{line}"), 1),
            };
        }
        std::fs::write(&path, text).unwrap();
        path
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
