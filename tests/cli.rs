//! The command line of docs/contract.md §7: `check-config` output and exit codes, secrets never printed,
//! and `run` refusing topics that are not co-partitioned.

mod common;
use common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn fraud_sla(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("FRAUD_SLA_HTTP_TOKEN")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &tempfile::TempDir, body: &str) -> String {
    let path = dir.path().join("c.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn check_config_prints_the_effective_policy_of_the_shipped_files() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = fraud_sla(
        &[
            "check-config",
            "--config",
            &format!("{root}/config/default.toml"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("visit     deadline issued_at + 1h"),
        "{shown}"
    );
    assert!(
        shown.contains("visit     deadline issued_at + 30m"),
        "high-risk override shown: {shown}"
    );
    assert!(
        shown.contains("feedback  deadline issued_at + 6h"),
        "{shown}"
    );
    assert!(
        shown.contains("level 3   deadline + 2h -> sub_bureau_command"),
        "{shown}"
    );
    let demo = fraud_sla(
        &[
            "check-config",
            "--config",
            &format!("{root}/config/demo.toml"),
        ],
        &[],
    );
    assert_eq!(demo.status.code(), Some(0), "{}", text(&demo));
}

#[test]
fn bad_keys_and_values_exit_2_naming_the_key() {
    let dir = tmpdir();
    for (body, key) in [
        ("[sla]\nvisit_within = \"soon\"\n", "sla.visit_within"),
        ("[sla]\nvisit_withn = \"1h\"\n", "visit_withn"),
        ("[kafka]\nbrokers = 9092\n", "kafka.brokers"),
        (
            "[sla.risk.high]\nmeet_within = \"1 fortnight\"\n",
            "sla.risk.high.meet_within",
        ),
        ("[sla.risk.urgent]\nvisit_within = \"1h\"\n", "urgent"),
        ("[sla]\nescalate_after = [\"0s\", \"30m\"]\n", "sla.notify"),
        ("[http]\nlisten = \"not an address\"\n", "http.listen"),
        ("[sla]\nmax_message_bytes = 0\n", "sla.max_message_bytes"),
        (
            "[alertmanager]\nurl = \"ftp://am:9093\"\n",
            "alertmanager.url",
        ),
        (
            "[alertmanager]\nurl = \"http://am:9093\"\nresend = \"1m\"\n",
            "resend",
        ),
        (
            "[alertmanager]\nurl = \"http://am:9093\"\npassword = \"x\"\n",
            "alertmanager.username",
        ),
        ("[alertmanager]\nresend_every = \"1m\"\n", "url"),
    ] {
        let out = fraud_sla(&["check-config", "--config", &write(&dir, body)], &[]);
        assert_eq!(out.status.code(), Some(2), "{body}: {}", text(&out));
        assert!(
            text(&out).contains(key),
            "{body}: error must name {key}: {}",
            text(&out)
        );
    }
    let missing = fraud_sla(
        &["check-config", "--config", "/nonexistent/fraud-sla.toml"],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).contains("/nonexistent/fraud-sla.toml"));
}

#[test]
fn secrets_from_the_environment_and_the_file_are_never_printed() {
    let dir = tmpdir();
    let config = write(
        &dir,
        "[kafka.client]\n\"sasl.password\" = \"kafka-hunter2\"\n\"sasl.username\" = \"svc\"\n\
         [alertmanager]\nurl = \"http://am.local:9093\"\nusername = \"fraud-sla\"\n",
    );
    let out = fraud_sla(
        &["check-config", "--config", &config],
        &[
            (
                "FRAUD_SLA_REDIS_URL",
                "redis://svc:redis-hunter2@10.0.0.5:6379",
            ),
            ("FRAUD_SLA_HTTP_TOKEN", "token-hunter2"),
            ("FRAUD_SLA_ALERTMANAGER_PASSWORD", "am-hunter2"),
            ("FRAUD_SLA_KAFKA_SASL_PASSWORD", "sasl-hunter2"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("basic auth as fraud-sla, password ***"),
        "{shown}"
    );
    assert!(
        shown.contains("redis://svc:***@10.0.0.5:6379"),
        "the URL is shown redacted: {shown}"
    );
    assert!(shown.contains("sasl.username = svc"), "{shown}");
    assert!(shown.contains("sasl.password = ***"), "{shown}");
}

#[test]
fn run_with_an_invalid_config_exits_2_before_connecting() {
    let dir = tmpdir();
    let out = fraud_sla(
        &["run", "--config", &write(&dir, "[redis]\nurl = 6379\n")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("redis.url"));
}

#[test]
fn run_refuses_input_topics_that_are_not_co_partitioned() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let broker = Broker::start();
    let topics = Topics::new("copart", 2);
    broker.create_topic(&topics.alerts, 2);
    broker.create_topic(&topics.dispositions, 3);
    broker.create_topic(&topics.escalations, 1);
    broker.create_topic(&topics.deadletter, 1);
    let config = write_config(dir.path(), &broker, &redis, &topics, free_port(), FAST_SLA);
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "must exit, not wait"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out);
    assert!(
        shown.contains("not co-partitioned") && shown.contains(&topics.dispositions),
        "{shown}"
    );
}
