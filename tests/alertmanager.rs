//! Escalations into a real Alertmanager (Debian's `prometheus-alertmanager`) on loopback: alerts
//! with the labels operators route on, kept firing past Alertmanager's `resolve_timeout` by
//! re-posting, and ended by the stage's `resolved`.

mod common;
use common::*;
use serde_json::Value;
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
    assert_eq!(breach["status"]["state"], "active");
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
