//! Escalations into a real Alertmanager (Debian's `prometheus-alertmanager`) on loopback: alerts
//! with the labels operators route on, kept firing past Alertmanager's `resolve_timeout` by
//! re-posting, and ended by the stage's `resolved`; one alert per paged role, routed by the
//! shipped `deploy/prometheus/alertmanager.yml` to that role's receiver and grouped per station
//! and role (also checked with `amtool config routes test`).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(60);

struct Alertmanager {
    port: u16,
    _proc: Proc,
}

impl Alertmanager {
    fn start(dir: &std::path::Path) -> Alertmanager {
        Self::start_on(dir, free_port())
    }

    fn start_on(dir: &std::path::Path, port: u16) -> Alertmanager {
        let config = dir.join("alertmanager.yml");
        // resolve_timeout 3 s: an alert not posted again within 3 s would resolve by itself.
        std::fs::write(
            &config,
            "global:\n  resolve_timeout: 3s\nroute:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
        )
        .unwrap();
        Self::run(dir, port, &config)
    }

    /// With the routes, groups and inhibitions of deploy/prometheus/alertmanager.yml (its
    /// receivers' webhooks never resolve: the failed notifications are only logged).
    fn shipped(dir: &std::path::Path) -> Alertmanager {
        Self::run(dir, free_port(), &shipped_config())
    }

    fn run(dir: &std::path::Path, port: u16, config: &std::path::Path) -> Alertmanager {
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager runs (deploy/local/install.sh installs it)");
        let am = Alertmanager {
            port,
            _proc: Proc {
                child,
                name: "alertmanager".into(),
            },
        };
        wait_until(Duration::from_secs(20), "Alertmanager answers", || {
            http_get(port, "/-/ready", None).is_some_and(|(c, _)| c == 200)
        });
        am
    }

    /// Active alerts (Alertmanager leaves out resolved ones).
    fn alerts(&self) -> Vec<Value> {
        let (code, body) =
            http_get(self.port, "/api/v2/alerts", None).expect("Alertmanager answers");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Alertmanager's aggregation groups: per route, the alerts of one `group_by` value.
    fn groups(&self) -> Vec<Value> {
        let (code, body) =
            http_get(self.port, "/api/v2/alerts/groups", None).expect("Alertmanager answers");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn find(&self, alertname: &str, alert_id: &str, stage: &str, level: &str) -> Option<Value> {
        self.alerts().into_iter().find(|a| {
            let l = &a["labels"];
            l["alertname"] == alertname
                && l["alert_id"] == alert_id
                && l["stage"] == stage
                && l["level"] == level
        })
    }
}

fn shipped_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alertmanager.yml")
}

/// Alerts Alertmanager received through its API with `status` (`firing` or `resolved`).
fn received(am: &Alertmanager, status: &str) -> f64 {
    let (_, text) = http_get(am.port, "/metrics", None).expect("Alertmanager answers");
    metric(
        &text,
        "alertmanager_alerts_received_total",
        &[("status", status)],
    )
}

fn millis(ts: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn escalations_fire_stay_firing_and_resolve_in_alertmanager() {
    let dir = tmpdir();
    let am = Alertmanager::start(dir.path());
    let sla = format!(
        "{FAST_SLA}\n[alertmanager]\nurl = \"http://127.0.0.1:{}\"\nresend_every = \"1s\"\n",
        am.port
    );
    let env = Env::new("alertmanager", 2, &sla);
    let p = env.processor();
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    produce(
        &prod,
        &env.topics.alerts,
        Some("AM-1"),
        &alert_json("AM-1", now_ms(), "high"),
    )
    .await;

    // The warning, with the labels operators route on.
    wait_until(WITHIN, "FraudSlaWarning for AM-1", || {
        am.find("FraudSlaWarning", "AM-1", "visit", "0").is_some()
    });
    // The breach: firing, severity from the level, no end.
    let mut breach = None;
    wait_until(WITHIN, "FraudSlaBreach level 1", || {
        breach = am.find("FraudSlaBreach", "AM-1", "visit", "1");
        breach.is_some()
    });
    let breach = breach.unwrap();
    let labels = &breach["labels"];
    assert_eq!(labels["jurisdiction"], "620102-GWM");
    assert_eq!(labels["risk"], "high");
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["role"], "station_duty_officer");
    assert_eq!(breach["status"]["state"], "active");
    // What people read: the stage's display name and local time (no [display]: zh-CN, Shanghai).
    let summary = breach["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("上门 visit") && summary.contains(" CST"),
        "{summary}"
    );
    assert!(breach["annotations"]["notify"]
        .as_str()
        .unwrap()
        .contains("station_duty_officer"));

    // Re-posted: still firing well past resolve_timeout (3 s) after it started.
    let started = millis(&breach["startsAt"]);
    wait_until(WITHIN, "the breach re-posted 5 s after it started", || {
        am.find("FraudSlaBreach", "AM-1", "visit", "1")
            .is_some_and(|a| {
                millis(&a["updatedAt"]) - started > 5_000 && a["status"]["state"] == "active"
            })
    });
    let level2 = am
        .find("FraudSlaBreach", "AM-1", "visit", "2")
        .expect("level 2 fired meanwhile");
    assert_eq!(level2["labels"]["severity"], "critical");

    // Satisfied: the `resolved` escalation ends every level of the stage.
    produce(
        &prod,
        &env.topics.dispositions,
        Some("AM-1"),
        &disposition_json("ev-1", "AM-1", "visited", now_ms()),
    )
    .await;
    wait_until(WITHIN, "visit breaches resolved", || {
        am.find("FraudSlaBreach", "AM-1", "visit", "1").is_none()
            && am.find("FraudSlaBreach", "AM-1", "visit", "2").is_none()
    });
    assert_eq!(p.metric("fraud_sla_alertmanager_failures_total", &[]), 0.0);
    let everything = serde_json::to_string(&am.alerts()).unwrap();
    for secret in PERSONAL_DATA {
        assert!(
            !everything.contains(secret),
            "{secret} reached Alertmanager"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_alertmanager_is_retried_and_counted_without_slowing_kafka() {
    let port = free_port(); // nothing listens here
    let sla = format!(
        "{FAST_SLA}\n[alertmanager]\nurl = \"http://127.0.0.1:{port}\"\nresend_every = \"1s\"\n"
    );
    let env = Env::new("alertmanager-down", 1, &sla);
    let p = env.processor();
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    produce(
        &prod,
        &env.topics.alerts,
        Some("AM-2"),
        &alert_json("AM-2", now_ms(), "low"),
    )
    .await;
    let esc = env.escalations();
    let seen = collect_until(&esc, WITHIN, |r| has(r, "AM-2:visit:1"));
    assert!(
        has(&seen, "AM-2:visit:1"),
        "Kafka escalations flow while Alertmanager is down"
    );
    wait_until(WITHIN, "failures counted", || {
        p.metric("fraud_sla_alertmanager_failures_total", &[]) > 0.0
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn warnings_and_resolutions_not_yet_posted_survive_a_sigkill() {
    let dir = tmpdir();
    let port = free_port(); // Alertmanager is down while they fire
    let sla = format!(
        "{FAST_SLA}\n[alertmanager]\nurl = \"http://127.0.0.1:{port}\"\nresend_every = \"1h\"\n"
    );
    let env = Env::new("alertmanager-crash", 2, &sla);
    let mut p = env.processor();
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    produce(
        &prod,
        &env.topics.alerts,
        Some("AM-3"),
        &alert_json("AM-3", now_ms(), "high"),
    )
    .await;
    // The visit warning, both breach levels, then `met` (visit and meet) and visit's `resolved`.
    let esc = env.escalations();
    let mut seen = collect_until(&esc, WITHIN, |r| has(r, "AM-3:visit:2"));
    produce(
        &prod,
        &env.topics.dispositions,
        Some("AM-3"),
        &disposition_json("ev-3", "AM-3", "met", now_ms()),
    )
    .await;
    seen.extend(collect_until(&esc, WITHIN, |r| {
        has(r, "AM-3:visit:resolved")
    }));
    for id in [
        "AM-3:visit:0",
        "AM-3:visit:1",
        "AM-3:visit:2",
        "AM-3:visit:resolved",
    ] {
        assert!(has(&seen, id), "{id} published");
    }
    assert!(p.metric("fraud_sla_alertmanager_failures_total", &[]) > 0.0);
    p.sigkill();

    // Alertmanager comes up, and so does the processor: what was queued is posted.
    let am = Alertmanager::start_on(dir.path(), port);
    let restarted = env.processor();
    restarted.wait_ready(WITHIN);
    // Resolved by now: the visit and meet warnings (their deadlines passed) and both visit
    // levels (ended by `met`). Without the two resolutions at most the warnings count.
    wait_until(WITHIN, "the queued warnings and resolutions posted", || {
        received(&am, "resolved") >= 4.0
    });
    // `resend_every` is an hour, so nothing but the queue could have posted these.
    assert!(received(&am, "firing") + received(&am, "resolved") >= 6.0);
    assert!(am.find("FraudSlaBreach", "AM-3", "visit", "1").is_none());
}

/// One stage, three levels a second apart; the chief stays paged at level 3.
const ROUTED_SLA: &str = r#"
[sla]
stages = ["visit"]
visit_within = "3s"
warn_before = "2s"
escalate_after = ["0s", "1s", "2s"]
notify = [["station_duty_officer"], ["station_chief"], ["sub_bureau_command", "station_chief"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096
[display]
timezone = "Asia/Shanghai"
language = "zh-CN"
"#;

/// The one active alert of `alert_id` at `level` for `role`.
fn paged<'a>(alerts: &'a [Value], alert_id: &str, level: &str, role: &str) -> &'a Value {
    let found: Vec<&Value> = alerts
        .iter()
        .filter(|a| {
            let l = &a["labels"];
            l["alertname"] == "FraudSlaBreach"
                && l["alert_id"] == alert_id
                && l["level"] == level
                && l["role"] == role
        })
        .collect();
    assert_eq!(found.len(), 1, "{alert_id} level {level} {role}: {found:?}");
    found[0]
}

fn receivers(alert: &Value) -> Vec<&str> {
    alert["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_is_paged_through_its_route_and_a_surge_is_one_group_per_role() {
    let dir = tmpdir();
    let am = Alertmanager::shipped(dir.path());
    let sla = format!(
        "{ROUTED_SLA}\n[alertmanager]\nurl = \"http://127.0.0.1:{}\"\n",
        am.port
    );
    let env = Env::new("alertmanager-routes", 2, &sla);
    let p = env.processor();
    p.wait_ready(WITHIN);
    let prod = env.broker.producer();
    // A surge at one station of sub-bureau 620102 (which has its own routes), and one alert
    // elsewhere.
    let surge: Vec<String> = (0..20).map(|i| format!("SURGE-{i:02}")).collect();
    for id in &surge {
        produce(
            &prod,
            &env.topics.alerts,
            Some(id),
            &alert_json(id, now_ms(), "high"),
        )
        .await;
    }
    let mut other: Value = serde_json::from_str(&alert_json("OTHER-1", now_ms(), "high")).unwrap();
    other["jurisdiction"] = "620103-XYZ".into();
    produce(
        &prod,
        &env.topics.alerts,
        Some("OTHER-1"),
        &other.to_string(),
    )
    .await;

    let mut alerts = Vec::new();
    wait_until(WITHIN, "level 3 of all 21 alerts in Alertmanager", || {
        alerts = am.alerts();
        alerts
            .iter()
            .filter(|a| a["labels"]["level"] == "3" && a["labels"]["role"] == "sub_bureau_command")
            .count()
            == 21
    });

    // Level 1 pages the station's duty officer, level 3 the sub-bureau command: each through
    // its role's receiver, or its jurisdiction's where it has its own.
    for (alert_id, level, role, receiver, severity) in [
        (
            "OTHER-1",
            "1",
            "station_duty_officer",
            "station-duty-officer",
            "warning",
        ),
        ("OTHER-1", "2", "station_chief", "station-chief", "critical"),
        (
            "OTHER-1",
            "3",
            "sub_bureau_command",
            "sub-bureau-command",
            "critical",
        ),
        (
            "SURGE-00",
            "1",
            "station_duty_officer",
            "sub-bureau-620102-duty-officers",
            "warning",
        ),
        (
            "SURGE-00",
            "3",
            "sub_bureau_command",
            "sub-bureau-620102-command",
            "critical",
        ),
        (
            "SURGE-00",
            "3",
            "station_chief",
            "station-chief",
            "critical",
        ),
    ] {
        let a = paged(&alerts, alert_id, level, role);
        assert_eq!(receivers(a), [receiver], "{alert_id} level {level} {role}");
        assert_eq!(a["labels"]["severity"], severity);
        assert_eq!(a["labels"]["stage"], "visit", "labels stay machine values");
        let summary = a["annotations"]["summary"].as_str().unwrap();
        assert!(
            summary.contains("上门 visit") && summary.contains(&format!("超时 {level} 级")),
            "{summary}"
        );
        assert!(summary.contains(" CST"), "{summary}");
    }
    // The chief, paged again at level 3, is not paged for level 2 as well; the sub-bureau's
    // level 3 does not silence the duty officer's level 1.
    let chief_2 = paged(&alerts, "SURGE-00", "2", "station_chief");
    assert_eq!(chief_2["status"]["state"], "suppressed", "{chief_2}");
    assert!(!chief_2["status"]["inhibitedBy"]
        .as_array()
        .unwrap()
        .is_empty());
    for (level, role) in [("1", "station_duty_officer"), ("3", "station_chief")] {
        assert_eq!(
            paged(&alerts, "SURGE-00", level, role)["status"]["state"],
            "active",
            "level {level} {role}"
        );
    }

    // The surge: per role, one group holding all 20 alerts, not 20 groups.
    let groups = am.groups();
    for (role, receiver) in [
        ("station_duty_officer", "sub-bureau-620102-duty-officers"),
        ("station_chief", "station-chief"),
        ("sub_bureau_command", "sub-bureau-620102-command"),
    ] {
        let surge_of = |g: &Value| -> BTreeSet<String> {
            g["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| {
                    a["labels"]["role"] == role
                        && a["labels"]["alertname"] == "FraudSlaBreach"
                        && a["labels"]["alert_id"]
                            .as_str()
                            .is_some_and(|id| id.starts_with("SURGE-"))
                })
                .map(|a| a["labels"]["alert_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let of_role: Vec<&Value> = groups.iter().filter(|g| !surge_of(g).is_empty()).collect();
        let group_labels: Vec<&Value> = of_role.iter().map(|g| &g["labels"]).collect();
        assert_eq!(of_role.len(), 1, "{role}: groups {group_labels:?}");
        let group = of_role[0];
        assert_eq!(group["receiver"]["name"], receiver, "{role}");
        assert_eq!(group["labels"]["role"], role);
        assert_eq!(surge_of(group), surge.iter().cloned().collect(), "{role}");
    }

    // Visited: the resolution ends every role's alert of every level of the stage.
    produce(
        &prod,
        &env.topics.dispositions,
        Some("OTHER-1"),
        &disposition_json("ev-other", "OTHER-1", "visited", now_ms()),
    )
    .await;
    wait_until(WITHIN, "every alert of OTHER-1 ended", || {
        !am.alerts()
            .iter()
            .any(|a| a["labels"]["alert_id"] == "OTHER-1")
    });
    assert!(am
        .alerts()
        .iter()
        .any(|a| a["labels"]["alert_id"] == "SURGE-00"));
    assert_eq!(p.metric("fraud_sla_alertmanager_failures_total", &[]), 0.0);
}

#[test]
fn amtool_routes_each_role_and_jurisdiction_to_its_receiver() {
    let config = format!("--config.file={}", shipped_config().display());
    for (labels, receiver) in [
        (
            "level=1 role=station_duty_officer jurisdiction=620103-XYZ",
            "station-duty-officer",
        ),
        (
            "level=2 role=station_chief jurisdiction=620103-XYZ",
            "station-chief",
        ),
        (
            "level=3 role=sub_bureau_command jurisdiction=620103-XYZ",
            "sub-bureau-command",
        ),
        (
            "level=1 role=station_duty_officer jurisdiction=620102-GWM",
            "sub-bureau-620102-duty-officers",
        ),
        (
            "level=2 role=station_chief jurisdiction=620102-GWM",
            "station-chief",
        ),
        (
            "level=3 role=sub_bureau_command jurisdiction=620102-GWM",
            "sub-bureau-620102-command",
        ),
        (
            "level=0 role=assigned_officer jurisdiction=620102-GWM",
            "assigned-officer",
        ),
        (
            "level=1 role=someone_else jurisdiction=620102-GWM",
            "duty-desk",
        ),
        ("level=1 jurisdiction=620102-GWM", "duty-desk"),
    ] {
        let alertname = if labels.starts_with("level=0") {
            "alertname=FraudSlaWarning"
        } else {
            "alertname=FraudSlaBreach"
        };
        let out = Command::new("amtool")
            .args([
                "config",
                "routes",
                "test",
                &config,
                alertname,
                "stage=visit",
            ])
            .args(labels.split(' '))
            .output()
            .expect("amtool runs (deploy/local/install.sh installs prometheus-alertmanager)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{labels}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), receiver, "{labels}");
    }
    // The processor's own health stays with operations.
    let out = Command::new("amtool")
        .args([
            "config",
            "routes",
            "test",
            &config,
            "alertname=FraudSlaProcessorDown",
            "severity=critical",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "fraud-sla-oncall"
    );
}
