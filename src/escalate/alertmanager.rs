//! The optional second sink: escalations as Alertmanager alerts (`POST /api/v2/alerts`).
//!
//! - warning → `FraudSlaWarning`, ending at the stage deadline (the breach takes over then);
//! - breach level n → `FraudSlaBreach{level="n"}`, firing until the stage's `resolved`;
//! - resolved → every level of that stage is posted again with `endsAt`.
//!
//! The alerts of an escalation are queued in Redis (`{prefix:p}:am`) by the same script that
//! records the transition, and deleted only once Alertmanager accepted them: a crash or a
//! rebalance loses none, and the queue is as long as Redis has room for. Alertmanager resolves
//! an alert that is not posted again within its `resolve_timeout`, so each partition's sink also
//! re-posts its firing breaches every `resend_every`, read from Redis. Each owned partition has
//! its own sink task, so posting never blocks or slows the Kafka path; failed posts are retried
//! with backoff and counted (`fraud_sla_alertmanager_failures_total`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{redact_url, AlertmanagerConfig};
use crate::domain::sla::StageStatus;
use crate::domain::time::format_utc;
use crate::domain::{AlertState, Escalation, EscalationKind, Millis, Policies, Policy, Stage};
use crate::metrics::Metrics;
use crate::retry::{retry, Backoff};
use crate::store::Store;

/// One alert in Alertmanager's v2 `postableAlert` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AmAlert {
    pub(crate) labels: BTreeMap<&'static str, String>,
    pub(crate) annotations: BTreeMap<&'static str, String>,
    pub(crate) starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ends_at: Option<String>,
}

/// `severity` label by level: the warning informs, the first breach warns, later ones page.
pub(crate) fn severity(level: u8) -> &'static str {
    match level {
        0 => "info",
        1 => "warning",
        _ => "critical",
    }
}

#[allow(clippy::too_many_arguments)]
fn alert(
    name: &'static str,
    alert_id: &str,
    stage: &Stage,
    level: u8,
    jurisdiction: &str,
    risk: &str,
    deadline: Millis,
    notify: &[String],
    starts_at: Millis,
    ends_at: Option<Millis>,
) -> AmAlert {
    let labels = BTreeMap::from([
        ("alertname", name.to_owned()),
        ("alert_id", alert_id.to_owned()),
        ("stage", stage.as_str().to_owned()),
        ("level", level.to_string()),
        ("jurisdiction", jurisdiction.to_owned()),
        ("risk", risk.to_owned()),
        ("severity", severity(level).to_owned()),
    ]);
    let what = if level == 0 {
        format!("{stage} deadline of alert {alert_id} is close")
    } else {
        format!("{stage} deadline of alert {alert_id} missed (level {level})")
    };
    let annotations = BTreeMap::from([
        ("summary", format!("{what} in {jurisdiction}")),
        ("deadline", format_utc(deadline)),
        ("notify", notify.join(",")),
    ]);
    AmAlert {
        labels,
        annotations,
        starts_at: format_utc(starts_at),
        ends_at: ends_at.map(format_utc),
    }
}

/// The alerts one escalation posts.
pub(crate) fn from_escalation(e: &Escalation, policy: &Policy) -> Vec<AmAlert> {
    let risk = e.risk.as_str();
    match e.kind {
        EscalationKind::Warning => vec![alert(
            "FraudSlaWarning",
            &e.alert_id,
            &e.stage,
            0,
            &e.jurisdiction,
            risk,
            e.deadline,
            &e.notify,
            e.fired_at,
            Some(e.deadline.max(e.fired_at + 1)),
        )],
        EscalationKind::Breach => vec![alert(
            "FraudSlaBreach",
            &e.alert_id,
            &e.stage,
            e.level,
            &e.jurisdiction,
            risk,
            e.deadline,
            &e.notify,
            e.fired_at,
            None,
        )],
        EscalationKind::Resolved => {
            let ladder = policy.for_risk(e.risk);
            (1..=e.level)
                .map(|level| {
                    let due = ladder.breach_due(e.deadline, level).unwrap_or(e.deadline);
                    alert(
                        "FraudSlaBreach",
                        &e.alert_id,
                        &e.stage,
                        level,
                        &e.jurisdiction,
                        risk,
                        e.deadline,
                        ladder.notify(level),
                        due.min(e.fired_at),
                        Some(e.fired_at),
                    )
                })
                .collect()
        }
    }
}

/// The breaches of one stored alert that are firing now: every fired level of every stage
/// still open. Posted again periodically to keep them firing.
pub(crate) fn firing(state: &AlertState, policy: &Policy) -> Vec<AmAlert> {
    let Some(a) = state.alert.as_ref().filter(|_| state.is_open()) else {
        return Vec::new();
    };
    let ladder = policy.for_risk(a.risk);
    state
        .clocks(policy)
        .filter(|(_, c)| c.status == StageStatus::Open && c.level > 0)
        .flat_map(|(rule, c)| {
            (1..=c.level).map(move |level| {
                alert(
                    "FraudSlaBreach",
                    &a.alert_id,
                    &rule.stage,
                    level,
                    &a.jurisdiction,
                    a.risk.as_str(),
                    c.deadline,
                    ladder.notify(level),
                    ladder.breach_due(c.deadline, level).unwrap_or(c.deadline),
                    None,
                )
            })
        })
        .collect()
}

/// The notices one batch queues for Alertmanager: one JSON array of alerts per escalation,
/// each with the policy its alert keeps.
pub(crate) fn notices<'a, 'p>(
    escalations: impl IntoIterator<Item = &'a Escalation>,
    policy_of: impl Fn(&Escalation) -> &'p Policy,
) -> Vec<String> {
    escalations
        .into_iter()
        .map(|e| {
            serde_json::to_string(&from_escalation(e, policy_of(e)))
                .expect("alerts always serialise")
        })
        .collect()
}

/// Joins notices (JSON arrays) into one array: the body of one POST.
fn join(notices: &[(String, String)]) -> String {
    let inner: Vec<&str> = notices
        .iter()
        .map(|(_, n)| {
            n.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
        })
        .filter(|n| !n.is_empty())
        .collect();
    format!("[{}]", inner.join(","))
}

/// The Alertmanager client, shared by the partitions' sinks; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Alertmanager {
    client: reqwest::Client,
    url: String,
    config: AlertmanagerConfig,
    metrics: Arc<Metrics>,
}

/// One partition's sink task: stopped when the partition is released.
#[derive(Debug)]
pub(crate) struct Sink {
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

impl Sink {
    /// New notices were queued: post them now rather than at the next poll.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Alertmanager {
    pub(crate) fn new(
        config: &AlertmanagerConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Alertmanager, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .build()?;
        Ok(Alertmanager {
            client,
            url: format!("{}/api/v2/alerts", config.url.trim_end_matches('/')),
            config: config.clone(),
            metrics,
        })
    }

    /// Starts the sink of `partition`: it posts the partition's queued notices oldest first,
    /// deleting them only once Alertmanager accepted them, and re-posts the partition's firing
    /// breaches every `resend_every`. It stops when the returned handle is dropped or `cancel`
    /// fires; what is still queued stays in Redis for the next owner.
    pub(crate) fn start(
        &self,
        store: Store,
        partition: i32,
        policies: Policies,
        cancel: &CancellationToken,
    ) -> Sink {
        let sink = Sink {
            wake: Arc::new(Notify::new()),
            cancel: cancel.child_token(),
        };
        let task = PartitionSink {
            am: self.clone(),
            store,
            partition,
            policies,
            wake: sink.wake.clone(),
            cancel: sink.cancel.clone(),
        };
        tokio::spawn(task.run());
        sink
    }

    async fn post(&self, body: String) -> Result<(), String> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(user) = &self.config.username {
            request = request.basic_auth(user, self.config.password.as_ref());
        } else if let Some(token) = &self.config.bearer_token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status()))
        }
    }

    /// Posts until Alertmanager accepts, backing off; `false` if cancelled first.
    async fn post_until_accepted(&self, body: String, cancel: &CancellationToken) -> bool {
        let sent = retry(
            cancel,
            Backoff::PEER,
            || self.post(body.clone()),
            |_| true,
            |problem, retry_in| {
                self.metrics.alertmanager_failed();
                tracing::warn!(url = %redact_url(&self.url), problem, ?retry_in, "Alertmanager post failed; retrying.");
            },
        )
        .await;
        sent.is_ok()
    }
}

/// Notices read from Redis per POST.
const NOTICES_PER_POST: usize = 200;
/// How often the queue is looked at when nobody wakes the sink.
const POLL: Duration = Duration::from_secs(1);

struct PartitionSink {
    am: Alertmanager,
    store: Store,
    partition: i32,
    /// The policy in force when the partition was claimed, and snapshots read from Redis.
    policies: Policies,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

impl PartitionSink {
    async fn run(mut self) {
        let mut reposted = tokio::time::Instant::now();
        while !self.cancel.is_cancelled() {
            match self.store.notices(self.partition, NOTICES_PER_POST).await {
                Ok(queued) if !queued.is_empty() => {
                    if !self
                        .am
                        .post_until_accepted(join(&queued), &self.cancel)
                        .await
                    {
                        return;
                    }
                    let ids: Vec<String> = queued.into_iter().map(|(id, _)| id).collect();
                    if let Err(e) = self.store.notices_posted(self.partition, &ids).await {
                        // Posted again later: Alertmanager takes the same alert twice.
                        tracing::warn!(partition = self.partition, error = %e, "Alertmanager queue not trimmed.");
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(partition = self.partition, error = %e, "Alertmanager queue unreadable; trying again.")
                }
            }
            if reposted.elapsed() >= self.am.config.resend_every.0 {
                reposted = tokio::time::Instant::now();
                self.repost_firing().await;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Posts the partition's firing breaches again, so Alertmanager keeps them firing; read
    /// from Redis, so a new owner takes over after a restart or a rebalance.
    async fn repost_firing(&mut self) {
        let Ok(overdue) = self.store.overdue(self.partition, 100_000).await else {
            return;
        };
        if let Ok(snapshots) = self.store.policies(self.partition).await {
            for (version, json) in snapshots {
                if self.policies.get(&version).is_none() {
                    if let Ok(p) = Policy::from_snapshot(&version, &json) {
                        self.policies.insert(Arc::new(p));
                    }
                }
            }
        }
        let ids: Vec<String> = overdue.into_iter().map(|(id, _)| id).collect();
        for chunk in ids.chunks(500) {
            let Ok(states) = self.store.load(self.partition, chunk).await else {
                return;
            };
            let firing: Vec<AmAlert> = states
                .iter()
                .flatten()
                .flat_map(|s| firing(s, self.policies.for_state(s)))
                .collect();
            if firing.is_empty() {
                continue;
            }
            let body = serde_json::to_string(&firing).expect("alerts always serialise");
            if !self.am.post_until_accepted(body, &self.cancel).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Alert, Risk};

    fn breach(level: u8, kind: EscalationKind) -> Escalation {
        Escalation {
            escalation_id: "A:visit:1".into(),
            alert_id: "A".into(),
            stage: Stage::new("visit").unwrap(),
            level,
            kind,
            jurisdiction: "620102-GWM".into(),
            risk: Risk::High,
            deadline: 1_000_000,
            due_at: Some(1_000_000),
            fired_at: 1_000_005,
            notify: vec!["station_chief".into()],
        }
    }

    #[test]
    fn a_breach_fires_with_the_labels_of_the_issue() {
        let a = &from_escalation(&breach(2, EscalationKind::Breach), &Policy::default())[0];
        let labels: Vec<(&str, &str)> = a.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            labels,
            [
                ("alert_id", "A"),
                ("alertname", "FraudSlaBreach"),
                ("jurisdiction", "620102-GWM"),
                ("level", "2"),
                ("risk", "high"),
                ("severity", "critical"),
                ("stage", "visit")
            ]
        );
        assert_eq!(a.ends_at, None);
        let json = serde_json::to_value(a).unwrap();
        assert!(json.get("startsAt").is_some() && json.get("endsAt").is_none());
    }

    #[test]
    fn resolved_ends_every_fired_level() {
        let alerts = from_escalation(&breach(2, EscalationKind::Resolved), &Policy::default());
        let levels: Vec<&str> = alerts.iter().map(|a| a.labels["level"].as_str()).collect();
        assert_eq!(levels, ["1", "2"]);
        assert!(alerts
            .iter()
            .all(|a| a.ends_at.as_deref() == Some("1970-01-01T00:16:40.005Z")));
    }

    #[test]
    fn a_warning_ends_at_its_deadline() {
        let mut e = breach(0, EscalationKind::Warning);
        e.fired_at = e.deadline - 60_000;
        let w = &from_escalation(&e, &Policy::default())[0];
        assert_eq!(
            (
                w.labels["alertname"].as_str(),
                w.labels["severity"].as_str()
            ),
            ("FraudSlaWarning", "info")
        );
        assert_eq!(w.starts_at, "1970-01-01T00:15:40.000Z");
        assert_eq!(
            w.ends_at.as_deref(),
            Some("1970-01-01T00:16:40.000Z"),
            "the breach takes over"
        );
    }

    #[test]
    fn firing_lists_fired_levels_of_open_stages_only() {
        let policies = Policies::default();
        let policy = policies.current().clone();
        let mut s = AlertState::default();
        let alert = Alert {
            alert_id: "A".into(),
            issued_at: 0,
            jurisdiction: "620102-GWM".into(),
            risk: Risk::Low,
            channel: None,
            fraud_type: None,
            amount_cents: None,
        };
        s.apply_alert(alert, &policies, 0);
        assert!(firing(&s, &policy).is_empty());
        // At 3 h: visit (1 h) levels at 1 h, 1.5 h, 3 h; meet (2 h) at 2 h, 2.5 h; feedback open.
        s.fire(&policies, 3 * 3_600_000);
        let keys: Vec<String> = firing(&s, &policy)
            .iter()
            .map(|a| format!("{}:{}", a.labels["stage"], a.labels["level"]))
            .collect();
        assert_eq!(keys, ["visit:1", "visit:2", "visit:3", "meet:1", "meet:2"]);
        s.apply_disposition(
            crate::domain::Disposition {
                event_id: "e".into(),
                alert_id: "A".into(),
                kind: crate::domain::DispositionKind::Visited,
                occurred_at: 3 * 3_600_000,
                officer_id: None,
                outcome: None,
            },
            &policies,
            3 * 3_600_000,
        );
        let keys: Vec<String> = firing(&s, &policy)
            .iter()
            .map(|a| a.labels["stage"].clone())
            .collect();
        assert_eq!(keys, ["meet", "meet"], "a satisfied stage stops firing");
    }
}
