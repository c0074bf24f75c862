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
    let rows: Vec<Vec<&str>> = shown
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let has_row = |want: &[&str]| rows.iter().any(|r| r.as_slice() == want);
    for want in [
        &[
            "visit",
            "上门",
            "/",
            "Visit",
            "issued_at",
            "+",
            "1h",
            "visited,",
            "met",
        ][..],
        &[
            "visit",
            "上门",
            "/",
            "Visit",
            "issued_at",
            "+",
            "30m",
            "visited,",
            "met",
        ],
        &[
            "feedback",
            "反馈",
            "/",
            "Feedback",
            "issued_at",
            "+",
            "6h",
            "feedback",
        ],
        &[
            "level",
            "3",
            "deadline",
            "+",
            "2h",
            "->",
            "sub_bureau_command",
        ],
    ] {
        assert!(has_row(want), "{want:?} not in\n{shown}");
    }
    assert!(
        policy_version(&shown).is_some(),
        "policy_version printed: {shown}"
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

/// The `policy_version = <hex>` line of check-config's output.
fn policy_version(shown: &str) -> Option<String> {
    shown
        .lines()
        .find_map(|l| l.strip_prefix("policy_version = "))
        .filter(|v| v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

#[test]
fn check_config_prints_the_policy_version_and_each_risks_stage_table() {
    let root = env!("CARGO_MANIFEST_DIR");
    let show = |file: &str| {
        let out = fraud_sla(&["check-config", "--config", file], &[]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out));
        text(&out)
    };
    let sign_for = show(&format!("{root}/config/examples/sign-for.toml"));
    let tables: Vec<&str> = sign_for.split("risk ").skip(1).collect();
    assert_eq!(tables.len(), 3, "{sign_for}");
    for table in &tables {
        let stages: Vec<&str> = table
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| ["sign_for", "visit", "meet", "feedback"].contains(w))
            .collect();
        assert_eq!(stages, ["sign_for", "visit", "meet", "feedback"], "{table}");
    }
    assert!(
        tables[0].contains("签收 / Sign for") && tables[0].contains("issued_at + 5m"),
        "{}",
        tables[0]
    );
    let low = show(&format!(
        "{root}/config/examples/low-risk-feedback-only.toml"
    ));
    let low_table = low.split("risk low:").nth(1).unwrap();
    assert!(
        !low_table.contains("visit") && low_table.contains("feedback"),
        "{low}"
    );
    // Same policy written differently: same version; another policy: another one.
    let dir = tmpdir();
    let a = write(&dir, "[sla]\nvisit_within = \"60m\"\n");
    let v1 = policy_version(&show(&a));
    let default = policy_version(&show(&format!("{root}/config/demo.toml")));
    let v2 = policy_version(&show(&write(&dir, "[display]\nlanguage = \"en\"\n")));
    assert!(v1.is_some());
    assert_eq!(v1, v2, "labels and display do not change the policy");
    assert_ne!(v1, default);
    assert_ne!(v1, policy_version(&sign_for));
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
        ("[sla]\nnotify = [[\"a\"], [\" \"]]\n", "sla.notify"),
        (
            "[kafka.client]\nno.such.property = \"x\"\n",
            "kafka.client.\"no.such.property\"",
        ),
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
        (
            "[sla]\nstages = [\"sign_for\", \"visit\"]\n[sla.stage.sign_for]\nsatisfied_by = [\"acknowledged\"]\n",
            "sla.sign_for_within",
        ),
        (
            "[sla.risk.low]\nstages = [\"phone_call\"]\n",
            "sla.risk.low.stages",
        ),
        ("[display]\ntimezone = \"Beijing\"\n", "display.timezone"),
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
    let refused = || {
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
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let shown = text(&out);
        assert!(
            shown.contains("not co-partitioned") && shown.contains(&topics.dispositions),
            "{shown}"
        );
    };
    refused();
    // Refused at start-up whatever Redis does: not a wait for Redis first.
    drop(redis);
    refused();
}
