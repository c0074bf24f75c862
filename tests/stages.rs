//! Stages as configuration and the policy snapshot (docs/contract.md §10.1, §10.2) end to end: the
//! built binary against a real redis-server and a real Kafka-protocol broker (tansu), with
//! deadlines compressed to seconds.
//!
//! - a configured `sign_for` stage with its own `satisfied_by`, warned, breached and resolved;
//! - a risk class requiring fewer stages;
//! - `SIGHUP`: a new policy for alerts processed from then on, open alerts keeping theirs, and an
//!   invalid file logged and ignored.
//!
//! Absence is never asserted after a sleep: each test waits for a later escalation that must come
//! after anything that should not have fired, then checks what was published.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(40);

/// Limits of the reloaded policies (the other policies spell them out).
const LIMITS: &str = r#"
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096
"#;

impl Run {
    /// The file the processor was started with (`--config`), as [`Env::processor`] names it.
    fn config_path(&self) -> PathBuf {
        let path = self
            .env
            .dir
            .path()
            .join(format!("config-{}.toml", self.p.http_port));
        assert!(path.exists(), "{} exists", path.display());
        path
    }

    /// Rewrites the processor's config file in place with another `[sla]` section.
    fn rewrite_config(&self, sla: &str) {
        let written = write_config(
            self.env.dir.path(),
            &self.env.broker,
            &self.env.redis,
            &self.env.topics,
            self.p.http_port,
            sla,
        );
        assert_eq!(written, self.config_path(), "the same file");
    }

    fn sighup(&self) {
        let pid = self.p.proc.child.id().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success(), "kill -HUP {pid}");
    }

    fn readyz(&self) -> Value {
        let (_, body) = self.p.get("/readyz").expect("HTTP answers");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}

fn id(alert: &str, stage: &str, level: &str) -> String {
    format!("{alert}:{stage}:{level}")
}

/// `<alert>:<stage>:<level>` for each stage in order, levels 0 (warning) to 2.
fn ladder(alert: &str, stages: &[&str]) -> Vec<String> {
    stages
        .iter()
        .flat_map(|s| ["0", "1", "2"].map(|l| id(alert, s, l)))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn millis(ts: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap_or_else(|| panic!("{ts} is a time")))
        .unwrap()
        .timestamp_millis()
}

/// The ladder of a policy as the test expects to see it published.
struct Ladder<'a> {
    warn_before: i64,
    escalate_after: &'a [i64],
    notify: &'a [&'a str],
    warn_notify: &'a str,
}

impl Ladder<'_> {
    /// Checks a warning or breach of a stage whose deadline is `deadline`: exact `deadline`,
    /// `due_at`, `kind`, `notify`, and `fired_at` not before `due_at`.
    fn check(&self, e: &Value, stage: &str, deadline: i64) {
        assert_eq!(e["stage"], stage, "{e}");
        let level = e["level"].as_u64().unwrap() as usize;
        let (due, kind, notify) = if level == 0 {
            (deadline - self.warn_before, "warning", self.warn_notify)
        } else {
            (
                deadline + self.escalate_after[level - 1],
                "breach",
                self.notify[level - 1],
            )
        };
        assert_eq!(
            e["escalation_id"],
            id(e["alert_id"].as_str().unwrap(), stage, &level.to_string()),
            "{e}"
        );
        assert_eq!(e["kind"], kind, "{e}");
        assert_eq!(e["deadline"], iso(deadline), "{e}");
        assert_eq!(e["due_at"], iso(due), "{e}");
        assert_eq!(e["notify"], json!([notify]), "{e}");
        let fired = millis(&e["fired_at"]);
        assert!(
            (due..due + 3_000).contains(&fired),
            "fired promptly, never early: due {due}, fired {fired}: {e}"
        );
    }
}

/// `fraud-sla check-config --config <path>`: its `policy_version` line and its whole output.
fn check_config(path: &std::path::Path) -> (String, String) {
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("FRAUD_SLA_HTTP_TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check-config: {}{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("policy_version = "))
        .unwrap_or_else(|| panic!("a policy_version line in:\n{text}"))
        .trim()
        .to_owned();
    assert!(
        version.len() == 16 && version.chars().all(|c| c.is_ascii_hexdigit()),
        "policy_version is 16 hex digits: {version:?}"
    );
    (version, text)
}

const FOUR_STAGES: &str = r#"
[sla]
stages = ["sign_for", "visit", "meet", "feedback"]
sign_for_within = "2s"
visit_within = "5s"
meet_within = "9s"
feedback_within = "13s"
warn_before = "1s"
escalate_after = ["0s", "2s"]
notify = [["station_duty_officer"], ["station_chief"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096

[sla.stage.sign_for]
satisfied_by = ["acknowledged", "visited", "met", "feedback"]
"#;

const FOUR_STAGE_WITHIN: [(&str, i64); 4] = [
    ("sign_for", 2_000),
    ("visit", 5_000),
    ("meet", 9_000),
    ("feedback", 13_000),
];

const FAST_LADDER: Ladder<'static> = Ladder {
    warn_before: 1_000,
    escalate_after: &[0, 2_000],
    notify: &["station_duty_officer", "station_chief"],
    warn_notify: "assigned_officer",
};

fn within_of(stage: &str) -> i64 {
    FOUR_STAGE_WITHIN
        .iter()
        .find(|(s, _)| *s == stage)
        .unwrap_or_else(|| panic!("{stage} is configured"))
        .1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_sign_for_stage_warns_breaches_and_resolves_on_a_late_acknowledgement() {
    let run = Run::start("sign-for", 2, FOUR_STAGES);
    // Signed for before its alert arrives (held, then applied before any clock is evaluated),
    // so its `sign_for` never warns whatever the input latency; `acknowledged` satisfies nothing
    // else.
    let acked_early = now_ms();
    run.disposition("ev-ack-ontime", "SIGN-ONTIME", "acknowledged", acked_early)
        .await;
    run.wait_dispositions_read(1.0);
    let issued = now_ms();
    run.alert("SIGN-LATE", issued, "medium").await;
    run.alert("SIGN-ONTIME", issued, "medium").await;

    let mut seen = Vec::new();
    run.until(&mut seen, &id("SIGN-LATE", "sign_for", "1"));
    // Late: after the 2 s deadline, long before level 2 (deadline + 2 s).
    let acked_at = now_ms();
    run.disposition("ev-ack-late", "SIGN-LATE", "acknowledged", acked_at)
        .await;
    // The last of both alerts' ladders: after anything that should not fire.
    run.until(&mut seen, &id("SIGN-LATE", "feedback", "2"));
    run.until(&mut seen, &id("SIGN-ONTIME", "feedback", "2"));

    let later = ladder("SIGN-LATE", &["visit", "meet", "feedback"]);
    let mut expected = vec![
        id("SIGN-LATE", "sign_for", "0"),
        id("SIGN-LATE", "sign_for", "1"),
        id("SIGN-LATE", "sign_for", "resolved"),
    ];
    expected.extend(later);
    assert_eq!(
        ids_of(&seen, "SIGN-LATE"),
        expected,
        "sign_for stops at its level 1 and resolves; visit, meet and feedback are unaffected"
    );
    assert_eq!(
        ids_of(&seen, "SIGN-ONTIME"),
        ladder("SIGN-ONTIME", &["visit", "meet", "feedback"]),
        "an on-time sign_for never escalates; acknowledged satisfies no other stage"
    );

    for alert in ["SIGN-LATE", "SIGN-ONTIME"] {
        for e in of_alert(&seen, alert) {
            let stage = e["stage"].as_str().unwrap();
            let deadline = issued + within_of(stage);
            if e["kind"] == "resolved" {
                assert_eq!(e["escalation_id"], id(alert, "sign_for", "resolved"));
                assert_eq!(e["stage"], "sign_for");
                assert_eq!(e["level"], 1, "{e}");
                assert_eq!(e["notify"], json!(["station_duty_officer"]), "{e}");
                assert_eq!(e["deadline"], iso(deadline), "{e}");
                assert_eq!(e["due_at"], Value::Null, "{e}");
                assert!(millis(&e["fired_at"]) >= acked_at, "{e}");
            } else {
                FAST_LADDER.check(&e, stage, deadline);
            }
            assert_eq!(e["risk"], "medium");
            assert_eq!(e["jurisdiction"], "620102-GWM");
        }
    }
    // The exact instant of the sign_for breach: issued_at + 2 s, in milliseconds.
    let breach = of_alert(&seen, "SIGN-LATE")
        .into_iter()
        .find(|e| e["escalation_id"] == id("SIGN-LATE", "sign_for", "1"))
        .unwrap();
    assert_eq!(breach["due_at"], iso(issued + 2_000));
    assert_eq!(breach["kind"], "breach");
    assert_eq!(breach["stage"], "sign_for");

    let view = run.alert_view("SIGN-LATE");
    assert_eq!(
        view["stage_order"],
        json!(["sign_for", "visit", "meet", "feedback"]),
        "{view}"
    );
    let sign_for = &view["stages"]["sign_for"];
    assert_eq!(sign_for["status"], "satisfied", "{view}");
    assert_eq!(sign_for["on_time"], false, "{view}");
    assert_eq!(sign_for["deadline"], iso(issued + 2_000), "{view}");
    assert_eq!(sign_for["levels_fired"], json!([1]), "{view}");
    for stage in ["visit", "meet", "feedback"] {
        assert_eq!(view["stages"][stage]["status"], "open", "{stage}: {view}");
        assert_eq!(
            view["stages"][stage]["levels_fired"],
            json!([1, 2]),
            "{stage}: {view}"
        );
    }
    let ontime = run.alert_view("SIGN-ONTIME");
    assert_eq!(ontime["stages"]["sign_for"]["status"], "satisfied");
    assert_eq!(ontime["stages"]["sign_for"]["on_time"], true, "{ontime}");
    assert_eq!(ontime["stages"]["visit"]["status"], "open", "{ontime}");

    let (version, shown) = check_config(&run.config_path());
    assert_eq!(view["policy_version"], version, "the policy in force");
    assert_eq!(ontime["policy_version"], version);
    let row = shown
        .lines()
        .find(|l| l.trim_start().starts_with("sign_for"))
        .unwrap_or_else(|| panic!("a sign_for row in:\n{shown}"));
    assert!(
        row.contains("issued_at + 2s") && row.contains("acknowledged, visited, met, feedback"),
        "{row}"
    );
    assert_eq!(
        run.p.metric(
            "fraud_sla_policy_info",
            &[("policy_version", version.as_str())]
        ),
        1.0
    );

    assert_eq!(run.completions("sign_for", "late"), 1.0);
    assert_eq!(run.completions("sign_for", "on_time"), 1.0);
    assert_eq!(run.completions("visit", "on_time"), 0.0);
    assert_eq!(
        run.p.metric(
            "fraud_sla_escalations_total",
            &[("stage", "sign_for"), ("kind", "breach"), ("level", "1")]
        ),
        1.0
    );
    assert_eq!(
        run.p.metric(
            "fraud_sla_escalations_total",
            &[("stage", "sign_for"), ("kind", "breach"), ("level", "2")]
        ),
        0.0
    );
    assert_no_personal_data(&run.env, &[run.p.log_text()], &seen);
}

const LOW_RISK_FEEDBACK_ONLY: &str = r#"
[sla]
visit_within = "3s"
meet_within = "5s"
feedback_within = "8s"
warn_before = "1s"
escalate_after = ["0s", "2s"]
notify = [["station_duty_officer"], ["station_chief"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096

[sla.risk.low]
stages = ["feedback"]
feedback_within = "6s"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_risk_requiring_only_feedback_never_escalates_visit_or_meet() {
    let run = Run::start("low-feedback", 2, LOW_RISK_FEEDBACK_ONLY);
    let issued = now_ms();
    run.alert("LOW-1", issued, "low").await;
    run.alert("HIGH-1", issued, "high").await;

    let mut seen = Vec::new();
    // LOW-1's feedback level 2 (8 s) comes after its visit or meet would have reached level 2
    // (5 s, 7 s); HIGH-1's (10 s) after them too.
    run.until(&mut seen, &id("LOW-1", "feedback", "2"));
    run.until(&mut seen, &id("HIGH-1", "feedback", "2"));

    assert_eq!(
        ids_of(&seen, "LOW-1"),
        ladder("LOW-1", &["feedback"]),
        "a low alert requires only feedback"
    );
    assert_eq!(
        sorted(ids_of(&seen, "HIGH-1")),
        sorted(ladder("HIGH-1", &["visit", "meet", "feedback"])),
        "a high alert issued at the same time keeps every stage"
    );
    for e in of_alert(&seen, "LOW-1") {
        FAST_LADDER.check(&e, "feedback", issued + 6_000);
        assert_eq!(e["risk"], "low");
    }
    let high_within = [("visit", 3_000), ("meet", 5_000), ("feedback", 8_000)];
    for e in of_alert(&seen, "HIGH-1") {
        let stage = e["stage"].as_str().unwrap();
        let within = high_within.iter().find(|(s, _)| *s == stage).unwrap().1;
        FAST_LADDER.check(&e, stage, issued + within);
        assert_eq!(e["risk"], "high");
    }
    // Per stage, the ladder of the high alert in order.
    for stage in ["visit", "meet", "feedback"] {
        let got: Vec<String> = ids_of(&seen, "HIGH-1")
            .into_iter()
            .filter(|i| i.starts_with(&format!("HIGH-1:{stage}:")))
            .collect();
        assert_eq!(got, ladder("HIGH-1", &[stage]), "{stage} in order");
    }

    let low = run.alert_view("LOW-1");
    assert_eq!(low["stage_order"], json!(["feedback"]), "{low}");
    assert_eq!(
        low["stages"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["feedback"],
        "{low}"
    );
    let high = run.alert_view("HIGH-1");
    assert_eq!(
        high["stage_order"],
        json!(["visit", "meet", "feedback"]),
        "{high}"
    );
    assert_eq!(
        run.p.metric(
            "fraud_sla_breaches_total",
            &[("stage", "visit"), ("jurisdiction", "620102-GWM")]
        ),
        1.0,
        "only the high alert breached visit"
    );
    assert_eq!(
        run.p.metric(
            "fraud_sla_breaches_total",
            &[("stage", "feedback"), ("jurisdiction", "620102-GWM")]
        ),
        2.0
    );
}

/// A one-stage policy whose ladder and notify lists the reload test changes.
fn visit_policy(escalate_after: &str, notify: &str) -> String {
    format!(
        r#"
[sla]
stages = ["visit"]
visit_within = "3s"
warn_before = "1s"
escalate_after = {escalate_after}
notify = {notify}
warn_notify = ["w0"]
{LIMITS}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_new_policy_to_new_alerts_only_and_ignores_an_invalid_file() {
    let first = visit_policy(r#"["0s", "6s"]"#, r#"[["l1"], ["l2"]]"#);
    let second = visit_policy(r#"["0s", "2s"]"#, r#"[["n1"], ["n2"]]"#);
    let invalid = visit_policy(r#"["2s", "0s"]"#, r#"[["n1"], ["n2"]]"#);
    let run = Run::start("sighup", 2, &first);
    let (v1, _) = check_config(&run.config_path());
    let ready = run.readyz();
    assert_eq!(ready["config"]["policy_version"], v1, "{ready}");
    assert_eq!(ready["config"]["last_reload"], Value::Null, "{ready}");
    assert_eq!(
        run.p.metric("fraud_sla_config_last_reload_successful", &[]),
        1.0
    );

    let a_issued = now_ms();
    run.alert("RELOAD-A", a_issued, "medium").await;
    // A is processed under the first policy before the file changes.
    run.wait_metric("fraud_sla_alerts_total", &[], 1.0);

    run.rewrite_config(&second);
    let (v2, _) = check_config(&run.config_path());
    assert_ne!(v1, v2, "a changed ladder is another policy");
    run.sighup();
    run.wait_metric(
        "fraud_sla_config_reloads_total",
        &[("result", "success")],
        1.0,
    );
    assert_eq!(
        run.p.metric("fraud_sla_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(
        run.p
            .metric("fraud_sla_policy_info", &[("policy_version", v2.as_str())]),
        1.0
    );
    assert_eq!(
        run.p
            .metric("fraud_sla_policy_info", &[("policy_version", v1.as_str())]),
        0.0,
        "only the policy in force is labelled"
    );
    let ready = run.readyz();
    assert_eq!(ready["config"]["policy_version"], v2, "{ready}");
    assert_eq!(ready["config"]["last_reload"]["ok"], true, "{ready}");

    let b_issued = now_ms();
    run.alert("RELOAD-B", b_issued, "medium").await;
    run.wait_metric("fraud_sla_alerts_total", &[], 2.0);

    // Ladder levels must not decrease: refused, naming the key; the second policy stays.
    run.rewrite_config(&invalid);
    run.sighup();
    run.wait_metric(
        "fraud_sla_config_reloads_total",
        &[("result", "failure")],
        1.0,
    );
    assert_eq!(
        run.p.metric("fraud_sla_config_last_reload_successful", &[]),
        0.0
    );
    assert_eq!(
        run.p
            .metric("fraud_sla_config_reloads_total", &[("result", "success")]),
        1.0
    );
    assert_eq!(
        run.p
            .metric("fraud_sla_policy_info", &[("policy_version", v2.as_str())]),
        1.0
    );
    let ready = run.readyz();
    let last = &ready["config"]["last_reload"];
    assert_eq!(last["ok"], false, "{ready}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("sla.escalate_after")),
        "the error names the key: {ready}"
    );
    assert!(last["at"].is_string(), "{ready}");
    assert_eq!(ready["config"]["policy_version"], v2, "{ready}");
    wait_until(WITHIN, "the log names sla.escalate_after", || {
        run.p.log_text().contains("sla.escalate_after")
    });

    let c_issued = now_ms();
    run.alert("RELOAD-C", c_issued, "medium").await;

    let mut seen = Vec::new();
    // A's level 2 (deadline + 6 s) is the last of all three ladders.
    for alert in ["RELOAD-B", "RELOAD-C", "RELOAD-A"] {
        run.until(&mut seen, &id(alert, "visit", "2"));
    }
    let old = Ladder {
        warn_before: 1_000,
        escalate_after: &[0, 6_000],
        notify: &["l1", "l2"],
        warn_notify: "w0",
    };
    let new = Ladder {
        warn_before: 1_000,
        escalate_after: &[0, 2_000],
        notify: &["n1", "n2"],
        warn_notify: "w0",
    };
    for (alert, issued, ladder_in_force) in [
        ("RELOAD-A", a_issued, &old),
        ("RELOAD-B", b_issued, &new),
        ("RELOAD-C", c_issued, &new),
    ] {
        assert_eq!(
            ids_of(&seen, alert),
            ladder(alert, &["visit"]),
            "{alert}: every level once, in order"
        );
        for e in of_alert(&seen, alert) {
            ladder_in_force.check(&e, "visit", issued + 3_000);
        }
    }
    let level2 = |alert: &str| {
        of_alert(&seen, alert)
            .into_iter()
            .find(|e| e["level"] == 2)
            .unwrap()
    };
    assert_eq!(level2("RELOAD-A")["due_at"], iso(a_issued + 3_000 + 6_000));
    assert_eq!(level2("RELOAD-A")["notify"], json!(["l2"]));
    assert_eq!(level2("RELOAD-B")["due_at"], iso(b_issued + 3_000 + 2_000));
    assert_eq!(level2("RELOAD-B")["notify"], json!(["n2"]));
    assert_eq!(level2("RELOAD-C")["due_at"], iso(c_issued + 3_000 + 2_000));
    assert_eq!(level2("RELOAD-C")["notify"], json!(["n2"]));

    let (a, b, c) = (
        run.alert_view("RELOAD-A"),
        run.alert_view("RELOAD-B"),
        run.alert_view("RELOAD-C"),
    );
    assert_eq!(a["policy_version"], v1, "{a}");
    assert_eq!(b["policy_version"], v2, "{b}");
    assert_eq!(c["policy_version"], v2, "{c}");
    assert_ne!(a["policy_version"], b["policy_version"]);
    for view in [&a, &b, &c] {
        assert_eq!(
            view["stages"]["visit"]["levels_fired"],
            json!([1, 2]),
            "{view}"
        );
    }
    assert_no_personal_data(&run.env, &[run.p.log_text()], &seen);
}
