//! The optional second sink: escalations as Alertmanager alerts (`POST /api/v2/alerts`).
//!
//! One Alertmanager alert per notified role, so that routes can page people: a warning, breach
//! or resolution whose level notifies `station_duty_officer` and `station_chief` is two alerts,
//! labelled `role="station_duty_officer"` and `role="station_chief"`.
//!
//! - warning → `FraudSlaWarning` per role of `warn_notify`, ending at the stage deadline (the
//!   breach takes over then);
//! - breach level n → `FraudSlaBreach{level="n"}` per role of level n, firing until the stage's
//!   `resolved`;
//! - resolved → every role's alert of every fired level of that stage is posted again with
//!   `endsAt`.
//!
//! Labels are machine values (`alertname`, `alert_id`, `stage`, `level`, `role`,
//! `jurisdiction`, `risk`, `severity`), and so are the annotations `deadline`, `due_at`,
//! `fired_at` (UTC) and `notify`. The `summary` and `description` people read are added as the
//! alerts are posted, in the `[display]` zone and language ([`Readable`]), the way `watch`
//! prints them.
//!
//! The alerts of an escalation are queued in Redis (`{prefix:p}:am`) by the same script that
//! records the transition, and deleted only once Alertmanager accepted them: a crash or a
//! rebalance loses none, and the queue is as long as Redis has room for. Alertmanager resolves
//! an alert that is not posted again within its `resolve_timeout`, so each partition's sink also
//! re-posts its firing breaches every `resend_every`, read from Redis. Each owned partition has
//! its own sink task, so posting never blocks or slows the Kafka path; failed posts are retried
//! with backoff and counted (`fraud_sla_alertmanager_failures_total`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{redact_url, AlertmanagerConfig};
use crate::domain::sla::StageStatus;
use crate::domain::time::{format_utc, parse_rfc3339};
use crate::domain::{
    AlertState, Escalation, EscalationKind, Millis, Policies, Policy, Risk, Stage,
};
use crate::metrics::Metrics;
use crate::retry::{retry, Backoff};
use crate::store::Store;
use crate::watch::Readable;

/// One alert in Alertmanager's v2 `postableAlert` shape; the queue in Redis holds arrays of
/// them (without `summary` and `description`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AmAlert {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) starts_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ends_at: Option<String>,
}

const WARNING: &str = "FraudSlaWarning";
const BREACH: &str = "FraudSlaBreach";

/// `severity` label by level: the warning informs, the first breach warns, later ones page.
pub(crate) fn severity(level: u8) -> &'static str {
    match level {
        0 => "info",
        1 => "warning",
        _ => "critical",
    }
}

fn strings<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// One level of one stage of one alert, as it happened; it posts one alert per role paged.
struct Page<'a> {
    alertname: &'static str,
    alert_id: &'a str,
    stage: &'a Stage,
    level: u8,
    jurisdiction: &'a str,
    risk: Risk,
    deadline: Millis,
    /// When the level was due.
    due: Millis,
    /// When it fired, or for a resolution when the stage was resolved; not known to a re-post.
    fired: Option<Millis>,
    /// Everyone paged at this level.
    notify: &'a [String],
    starts_at: Millis,
    ends_at: Option<Millis>,
}

impl Page<'_> {
    /// One alert per distinct role of `notify`, labelled `role`; a level that pages nobody is
    /// still one alert, without `role`, left to the routes' default receiver.
    fn alerts(&self) -> Vec<AmAlert> {
        let mut roles: Vec<Option<&str>> = Vec::new();
        for role in self.notify {
            if !roles.contains(&Some(role.as_str())) {
                roles.push(Some(role));
            }
        }
        if roles.is_empty() {
            roles.push(None);
        }
        roles
            .into_iter()
            .map(|role| {
                let mut labels = strings([
                    ("alertname", self.alertname.to_owned()),
                    ("alert_id", self.alert_id.to_owned()),
                    ("stage", self.stage.as_str().to_owned()),
                    ("level", self.level.to_string()),
                    ("jurisdiction", self.jurisdiction.to_owned()),
                    ("risk", self.risk.as_str().to_owned()),
                    ("severity", severity(self.level).to_owned()),
                ]);
                if let Some(role) = role {
                    labels.insert("role".into(), role.to_owned());
                }
                let mut annotations = strings([
                    ("deadline", format_utc(self.deadline)),
                    ("due_at", format_utc(self.due)),
                    ("notify", self.notify.join(",")),
                ]);
                if let Some(fired) = self.fired {
                    annotations.insert("fired_at".into(), format_utc(fired));
                }
                AmAlert {
                    labels,
                    annotations,
                    starts_at: format_utc(self.starts_at),
                    ends_at: self.ends_at.map(format_utc),
                }
            })
            .collect()
    }
}

/// The alerts one escalation posts (without what people read: see [`localise`]).
pub(crate) fn from_escalation(e: &Escalation, policy: &Policy) -> Vec<AmAlert> {
    let page = |alertname, ends_at| Page {
        alertname,
        alert_id: &e.alert_id,
        stage: &e.stage,
        level: e.level,
        jurisdiction: &e.jurisdiction,
        risk: e.risk,
        deadline: e.deadline,
        due: e.due_at.unwrap_or(e.fired_at),
        fired: Some(e.fired_at),
        notify: &e.notify,
        starts_at: e.fired_at,
        ends_at,
    };
    match e.kind {
        EscalationKind::Warning => page(WARNING, Some(e.deadline.max(e.fired_at + 1))).alerts(),
        EscalationKind::Breach => page(BREACH, None).alerts(),
        // Every role of every fired level, as the alert's policy paged them.
        EscalationKind::Resolved => {
            let ladder = policy.for_risk(e.risk);
            (1..=e.level)
                .flat_map(|level| {
                    let due = ladder.breach_due(e.deadline, level).unwrap_or(e.deadline);
                    Page {
                        level,
                        due,
                        notify: ladder.notify(level),
                        starts_at: due.min(e.fired_at),
                        ..page(BREACH, Some(e.fired_at))
                    }
                    .alerts()
                })
                .collect()
        }
    }
}

/// The breaches of one stored alert that are firing now: every role of every fired level of
/// every stage still open. Posted again periodically to keep them firing.
pub(crate) fn firing(state: &AlertState, policy: &Policy) -> Vec<AmAlert> {
    let Some(a) = state.alert.as_ref().filter(|_| state.is_open()) else {
        return Vec::new();
    };
    let ladder = policy.for_risk(a.risk);
    state
        .clocks(policy)
        .filter(|(_, c)| c.status == StageStatus::Open && c.level > 0)
        .flat_map(|(rule, c)| {
            (1..=c.level).flat_map(move |level| {
                let due = ladder.breach_due(c.deadline, level).unwrap_or(c.deadline);
                // From the timeline, which records each firing: Alertmanager keeps the newest
                // annotations, so a repost without it would drop `fired_at` (as it still does
                // for a level whose entry the timeline's limit has pushed out).
                let fired = state
                    .timeline
                    .iter()
                    .find(|t| {
                        t.what == "breach"
                            && t.stage.as_ref() == Some(&rule.stage)
                            && t.level == Some(level)
                    })
                    .map(|t| t.at);
                Page {
                    alertname: BREACH,
                    alert_id: &a.alert_id,
                    stage: &rule.stage,
                    level,
                    jurisdiction: &a.jurisdiction,
                    risk: a.risk,
                    deadline: c.deadline,
                    due,
                    fired,
                    notify: ladder.notify(level),
                    starts_at: due,
                    ends_at: None,
                }
                .alerts()
            })
        })
        .collect()
}

/// The notices one batch queues for Alertmanager: JSON arrays of the alerts of its escalations
/// (each with the policy its alert keeps), in order, as few as hold them at ALERTS_PER_POST or
/// less (one escalation's alerts are never split): a queue entry a batch, where one an
/// escalation cost Redis an `XADD` each (a burst of 90,000 escalations, as many).
pub(crate) fn notices<'a, 'p>(
    escalations: impl IntoIterator<Item = &'a Escalation>,
    policy_of: impl Fn(&Escalation) -> &'p Policy,
) -> Vec<String> {
    let json = |alerts: &[AmAlert]| serde_json::to_string(alerts).expect("alerts always serialise");
    let mut queued = Vec::new();
    let mut alerts: Vec<AmAlert> = Vec::new();
    for e in escalations {
        let more = from_escalation(e, policy_of(e));
        if !alerts.is_empty() && alerts.len() + more.len() > ALERTS_PER_POST {
            queued.push(json(&alerts));
            alerts.clear();
        }
        alerts.extend(more);
    }
    if !alerts.is_empty() {
        queued.push(json(&alerts));
    }
    queued
}

// ---- what people read ------------------------------------------------------------------------

/// What an alert says, read back from its labels and machine annotations.
struct Said<'a> {
    kind: EscalationKind,
    alert_id: &'a str,
    stage: &'a str,
    level: &'a str,
    jurisdiction: &'a str,
    risk: &'a str,
    notify: &'a str,
    deadline: Millis,
    due: Millis,
    fired: Option<Millis>,
}

impl<'a> Said<'a> {
    fn of(alert: &'a AmAlert) -> Option<Said<'a>> {
        let label = |k: &str| alert.labels.get(k).map(String::as_str);
        let time = |k: &str| alert.annotations.get(k).and_then(|t| parse_rfc3339(t));
        let kind = match (label("alertname")?, &alert.ends_at) {
            (WARNING, _) => EscalationKind::Warning,
            (BREACH, None) => EscalationKind::Breach,
            (BREACH, Some(_)) => EscalationKind::Resolved,
            _ => return None,
        };
        Some(Said {
            kind,
            alert_id: label("alert_id")?,
            stage: label("stage")?,
            level: label("level")?,
            jurisdiction: label("jurisdiction")?,
            risk: label("risk")?,
            notify: alert.annotations.get("notify").map_or("", String::as_str),
            deadline: time("deadline")?,
            due: time("due_at")?,
            fired: time("fired_at"),
        })
    }

    /// One line: which stage of which alert, where, and its deadline (or when it was resolved).
    fn summary(&self, r: &Readable) -> String {
        let (id, jur, n) = (self.alert_id, self.jurisdiction, self.level);
        let stage = r.stage(self.stage);
        let deadline = r.time(self.deadline);
        let resolved = r.time(self.fired.unwrap_or(self.deadline));
        match (self.kind, r.english()) {
            (EscalationKind::Warning, false) => {
                format!("{id} {stage} 即将超时：截止 {deadline}（{jur}）")
            }
            (EscalationKind::Breach, false) => {
                format!("{id} {stage} 超时 {n} 级：截止 {deadline}（{jur}）")
            }
            (EscalationKind::Resolved, false) => {
                format!("{id} {stage} {n} 级超时已解除：{resolved}（{jur}）")
            }
            (EscalationKind::Warning, true) => {
                format!("{stage} deadline of alert {id} in {jur} is close: {deadline}")
            }
            (EscalationKind::Breach, true) => {
                format!("{stage} deadline of alert {id} in {jur} missed: {deadline} (level {n})")
            }
            (EscalationKind::Resolved, true) => {
                format!("{stage} breach of alert {id} in {jur} resolved: {resolved} (level {n})")
            }
        }
    }

    /// The whole story: the alert, the deadline, when the level was due and fired (or was
    /// resolved), who this level pages, and the zone the times are in.
    fn description(&self, r: &Readable) -> String {
        let (id, jur, n) = (self.alert_id, self.jurisdiction, self.level);
        let notify = match (self.notify, r.english()) {
            ("", true) => "nobody",
            ("", false) => "无",
            (notify, _) => notify,
        };
        let stage = r.stage(self.stage);
        let (deadline, due, zone) = (r.time(self.deadline), r.time(self.due), r.zone_name());
        let fired = self.fired.map(|t| r.time(t));
        if r.english() {
            let what = match self.kind {
                EscalationKind::Warning => "warning".to_owned(),
                _ => format!("level {n}"),
            };
            let fired = match (self.kind, fired) {
                (_, None) => String::new(),
                (EscalationKind::Resolved, Some(t)) => format!(", resolved {t}"),
                (EscalationKind::Warning, Some(t)) => format!(", sent {t}"),
                (_, Some(t)) => format!(", fired {t}"),
            };
            format!(
                "Alert {id} (jurisdiction {jur}, risk {}), stage {stage}: deadline {deadline}; \
                 {what} due {due}{fired}. Notified: {notify}. Times in {zone}.",
                self.risk
            )
        } else {
            let what = match self.kind {
                EscalationKind::Warning => "预警".to_owned(),
                _ => format!("{n} 级升级"),
            };
            let fired = match (self.kind, fired) {
                (_, None) => String::new(),
                (EscalationKind::Resolved, Some(t)) => format!("，{t} 解除"),
                (_, Some(t)) => format!("，{t} 发出"),
            };
            let risk = match self.risk {
                "high" => "高",
                "medium" => "中",
                "low" => "低",
                other => other,
            };
            format!(
                "预警指令 {id}（辖区 {jur}，{risk}风险）{stage}：截止 {deadline}；\
                 {what}于 {due} 到期{fired}。本级通知：{notify}。时区 {zone}。"
            )
        }
    }
}

/// Adds `summary` and `description`, in the display zone and language, to alerts built by
/// [`from_escalation`] or [`firing`]. An alert queued by an earlier version already has its
/// summary and keeps it.
pub(crate) fn localise(alerts: &mut [AmAlert], r: &Readable) {
    for alert in alerts {
        if alert.annotations.contains_key("summary") {
            continue;
        }
        if let Some(said) = Said::of(alert) {
            let (summary, description) = (said.summary(r), said.description(r));
            alert.annotations.insert("summary".into(), summary);
            alert.annotations.insert("description".into(), description);
        }
    }
}

/// The body of one POST from the oldest queued notices (JSON arrays of alerts), with what people
/// read added, and how many of the notices it takes: the first, then more while the alerts stay
/// within ALERTS_PER_POST. The body is `None` if they hold nothing to post. A notice that is
/// not an array of alerts is left out (and trimmed with the others): Alertmanager would refuse
/// every POST holding it.
fn body(notices: &[(String, String)], r: &Readable) -> (Option<String>, usize) {
    let mut alerts = Vec::new();
    let mut taken = 0;
    for (id, notice) in notices {
        match serde_json::from_str::<Vec<AmAlert>>(notice) {
            Ok(a) if taken > 0 && alerts.len() + a.len() > ALERTS_PER_POST => break,
            Ok(a) => alerts.extend(a),
            Err(e) => {
                tracing::warn!(notice = %id, error = %e, "Unreadable Alertmanager notice dropped.")
            }
        }
        taken += 1;
    }
    localise(&mut alerts, r);
    let body = (!alerts.is_empty())
        .then(|| serde_json::to_string(&alerts).expect("alerts always serialise"));
    (body, taken)
}

/// The Alertmanager client, shared by the partitions' sinks; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Alertmanager {
    client: reqwest::Client,
    url: String,
    config: AlertmanagerConfig,
    /// The `[display]` zone, language and stage names of the summaries.
    readable: Arc<Readable>,
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
        readable: Readable,
        metrics: Arc<Metrics>,
    ) -> Result<Alertmanager, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .build()?;
        Ok(Alertmanager {
            client,
            url: format!("{}/api/v2/alerts", config.url.trim_end_matches('/')),
            config: config.clone(),
            readable: Arc::new(readable),
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

/// Notices read from Redis at a time (a notice holds up to ALERTS_PER_POST alerts; one queued by
/// an earlier version, one escalation's).
const NOTICES_PER_READ: usize = 32;
/// Most alerts in one POST, and in one queued notice: a burst goes out in requests of bounded
/// size.
const ALERTS_PER_POST: usize = 500;
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
            match self.store.notices(self.partition, NOTICES_PER_READ).await {
                Ok(queued) if !queued.is_empty() => {
                    if !self.post_queued(queued).await {
                        return;
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

    /// Posts notices read from the queue, a POST's worth at a time, and trims each POST's from
    /// Redis once Alertmanager accepted it (the queue only grows at its end, and only this sink
    /// trims it). False if cancelled first: what is left stays queued.
    async fn post_queued(&self, mut queued: Vec<(String, String)>) -> bool {
        while !queued.is_empty() {
            let (body, taken) = body(&queued, &self.am.readable);
            if let Some(body) = body {
                if !self.am.post_until_accepted(body, &self.cancel).await {
                    return false;
                }
            }
            let ids: Vec<String> = queued.drain(..taken).map(|(id, _)| id).collect();
            if let Err(e) = self.store.notices_posted(self.partition, &ids).await {
                // Posted again later: Alertmanager takes the same alert twice.
                tracing::warn!(partition = self.partition, error = %e, "Alertmanager queue not trimmed.");
            }
        }
        true
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
            let mut firing: Vec<AmAlert> = states
                .iter()
                .flatten()
                .flat_map(|s| firing(s, self.policies.for_state(s)))
                .collect();
            if firing.is_empty() {
                continue;
            }
            localise(&mut firing, &self.am.readable);
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
    use crate::config::Config;
    use crate::domain::Alert;

    /// 2026-11-22T03:00:00Z, 11:00 in Shanghai.
    const DEADLINE: Millis = 1_795_316_400_000;

    fn escalation(level: u8, kind: EscalationKind) -> Escalation {
        Escalation {
            escalation_id: "A:visit:1".into(),
            alert_id: "A".into(),
            stage: Stage::new("visit").unwrap(),
            level,
            kind,
            jurisdiction: "620102-GWM".into(),
            risk: Risk::High,
            deadline: DEADLINE,
            due_at: Some(DEADLINE),
            fired_at: DEADLINE + 5,
            notify: vec!["station_chief".into()],
        }
    }

    fn readable(display: &str) -> Readable {
        let c = Config::parse(&format!("[display]\n{display}")).unwrap();
        c.validate().unwrap();
        Readable::new(&c)
    }

    fn pairs(m: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
        m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn a_breach_fires_per_role_with_the_labels_routes_need() {
        let mut e = escalation(2, EscalationKind::Breach);
        e.notify = vec!["station_chief".into(), "sub_bureau_command".into()];
        let alerts = from_escalation(&e, &Policy::default());
        assert_eq!(alerts.len(), 2, "one alert per notified role");
        assert_eq!(
            pairs(&alerts[0].labels),
            [
                ("alert_id", "A"),
                ("alertname", "FraudSlaBreach"),
                ("jurisdiction", "620102-GWM"),
                ("level", "2"),
                ("risk", "high"),
                ("role", "station_chief"),
                ("severity", "critical"),
                ("stage", "visit")
            ]
        );
        assert_eq!(alerts[1].labels["role"], "sub_bureau_command");
        // Machine annotations in UTC; what people read is added when posted.
        assert_eq!(
            pairs(&alerts[0].annotations),
            [
                ("deadline", "2026-11-22T03:00:00.000Z"),
                ("due_at", "2026-11-22T03:00:00.000Z"),
                ("fired_at", "2026-11-22T03:00:00.005Z"),
                ("notify", "station_chief,sub_bureau_command"),
            ]
        );
        assert_eq!(alerts[0].ends_at, None);
        let json = serde_json::to_value(&alerts[0]).unwrap();
        assert!(json.get("startsAt").is_some() && json.get("endsAt").is_none());
    }

    #[test]
    fn a_level_paging_nobody_is_one_alert_without_a_role() {
        let mut e = escalation(1, EscalationKind::Breach);
        e.notify = vec![];
        let alerts = from_escalation(&e, &Policy::default());
        assert_eq!(alerts.len(), 1);
        assert!(!alerts[0].labels.contains_key("role"));
        e.notify = vec!["a".into(), "a".into()];
        assert_eq!(
            from_escalation(&e, &Policy::default()).len(),
            1,
            "each role once"
        );
    }

    #[test]
    fn resolved_ends_every_role_of_every_fired_level() {
        // The default ladder pages the duty officer, the chief, then the sub-bureau command.
        let alerts = from_escalation(&escalation(3, EscalationKind::Resolved), &Policy::default());
        let ended: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.labels["level"].as_str(), a.labels["role"].as_str()))
            .collect();
        assert_eq!(
            ended,
            [
                ("1", "station_duty_officer"),
                ("2", "station_chief"),
                ("3", "sub_bureau_command")
            ]
        );
        assert!(alerts
            .iter()
            .all(|a| a.ends_at.as_deref() == Some("2026-11-22T03:00:00.005Z")));
        // The labels are exactly those of the breach they end (Alertmanager's identity).
        let mut breach = escalation(3, EscalationKind::Breach);
        breach.notify = vec!["sub_bureau_command".into()];
        breach.due_at = Some(DEADLINE + 2 * 3_600_000);
        assert_eq!(
            from_escalation(&breach, &Policy::default())[0].labels,
            alerts[2].labels
        );
        assert_eq!(alerts[2].annotations["due_at"], "2026-11-22T05:00:00.000Z");
    }

    #[test]
    fn a_warning_ends_at_its_deadline() {
        let mut e = escalation(0, EscalationKind::Warning);
        e.fired_at = e.deadline - 60_000;
        e.notify = vec!["assigned_officer".into()];
        let w = &from_escalation(&e, &Policy::default())[0];
        assert_eq!(
            (
                w.labels["alertname"].as_str(),
                w.labels["severity"].as_str(),
                w.labels["role"].as_str()
            ),
            ("FraudSlaWarning", "info", "assigned_officer")
        );
        assert_eq!(w.starts_at, "2026-11-22T02:59:00.000Z");
        assert_eq!(
            w.ends_at.as_deref(),
            Some("2026-11-22T03:00:00.000Z"),
            "the breach takes over"
        );
    }

    #[test]
    fn summaries_read_local_time_and_the_stage_in_chinese() {
        let r = readable("");
        let mut alerts =
            from_escalation(&escalation(1, EscalationKind::Breach), &Policy::default());
        localise(&mut alerts, &r);
        let a = &alerts[0].annotations;
        assert_eq!(
            a["summary"],
            "A 上门 visit 超时 1 级：截止 2026-11-22 11:00:00 CST（620102-GWM）"
        );
        assert_eq!(
            a["description"],
            "预警指令 A（辖区 620102-GWM，高风险）上门 visit：截止 2026-11-22 11:00:00 CST；\
             1 级升级于 2026-11-22 11:00:00 CST 到期，2026-11-22 11:00:00 CST 发出。\
             本级通知：station_chief。时区 Asia/Shanghai。"
        );
        assert_eq!(
            alerts[0].labels["stage"], "visit",
            "labels stay machine values"
        );
        assert_eq!(a["deadline"], "2026-11-22T03:00:00.000Z", "and UTC");

        let mut resolved =
            from_escalation(&escalation(1, EscalationKind::Resolved), &Policy::default());
        localise(&mut resolved, &r);
        assert_eq!(
            resolved[0].annotations["summary"],
            "A 上门 visit 1 级超时已解除：2026-11-22 11:00:00 CST（620102-GWM）"
        );
    }

    #[test]
    fn summaries_in_english_and_another_zone() {
        let r = readable("language = \"en\"\ntimezone = \"Europe/Berlin\"\n");
        let mut e = escalation(0, EscalationKind::Warning);
        e.fired_at = e.deadline - 900_000;
        e.due_at = Some(e.fired_at);
        let mut alerts = from_escalation(&e, &Policy::default());
        localise(&mut alerts, &r);
        let a = &alerts[0].annotations;
        assert_eq!(
            a["summary"],
            "Visit deadline of alert A in 620102-GWM is close: 2026-11-22 04:00:00 CET"
        );
        assert_eq!(
            a["description"],
            "Alert A (jurisdiction 620102-GWM, risk high), stage Visit: deadline \
             2026-11-22 04:00:00 CET; warning due 2026-11-22 03:45:00 CET, sent \
             2026-11-22 03:45:00 CET. Notified: station_chief. Times in Europe/Berlin."
        );
        let mut breach =
            from_escalation(&escalation(2, EscalationKind::Breach), &Policy::default());
        localise(&mut breach, &r);
        assert_eq!(
            breach[0].annotations["summary"],
            "Visit deadline of alert A in 620102-GWM missed: 2026-11-22 04:00:00 CET (level 2)"
        );
    }

    #[test]
    fn queued_notices_are_posted_with_their_summaries() {
        let policy = Policy::default();
        let queued = notices(
            [
                &escalation(1, EscalationKind::Breach),
                &escalation(1, EscalationKind::Resolved),
            ],
            |_| &policy,
        );
        assert!(
            !queued[0].contains("summary"),
            "the queue holds machine values"
        );
        let mut ids: Vec<(String, String)> = queued
            .into_iter()
            .enumerate()
            .map(|(i, n)| (format!("{i}-0"), n))
            .collect();
        // Queued by an earlier version (its own summary), and a notice that is not alerts.
        ids.push((
            "2-0".into(),
            r#"[{"labels":{"alertname":"FraudSlaBreach"},"annotations":{"summary":"old"},"startsAt":"2026-11-22T03:00:00.000Z"}]"#.into(),
        ));
        ids.push(("3-0".into(), "not json".into()));
        let (posted, taken) = body(&ids, &readable(""));
        assert_eq!(taken, 3, "every notice is taken, the unreadable one too");
        let posted: Vec<AmAlert> = serde_json::from_str(&posted.unwrap()).unwrap();
        assert_eq!(posted.len(), 3);
        assert!(posted[0].annotations["summary"].contains("超时 1 级"));
        assert!(posted[1].annotations["summary"].contains("已解除"));
        assert_eq!(posted[2].annotations["summary"], "old");
        assert_eq!(body(&ids[2..], &readable("")), (None, 1), "nothing to post");
    }

    #[test]
    fn a_batch_queues_its_alerts_in_few_notices_that_posts_take_whole() {
        let policy = Policy::default();
        let fired: Vec<Escalation> = (0..700)
            .map(|i| match i % 2 {
                0 => escalation(1, EscalationKind::Breach),
                // Every role of every fired level: several alerts.
                _ => escalation(1 + (i % 3) as u8, EscalationKind::Resolved),
            })
            .collect();
        let per_escalation: Vec<usize> = fired
            .iter()
            .map(|e| from_escalation(e, &policy).len())
            .collect();
        assert!(per_escalation.iter().any(|n| *n > 1));
        let queued = notices(&fired, |_| &policy);
        let lens: Vec<usize> = queued
            .iter()
            .map(|n| serde_json::from_str::<Vec<AmAlert>>(n).unwrap().len())
            .collect();
        assert!(queued.len() > 1 && queued.len() < 10, "{lens:?}");
        assert!(lens.iter().all(|n| *n <= ALERTS_PER_POST), "{lens:?}");
        assert_eq!(
            lens.iter().sum::<usize>(),
            per_escalation.iter().sum::<usize>()
        );
        // Cut between escalations: each notice ends where an escalation's alerts end.
        let mut ends = per_escalation.iter().scan(0, |at, n| {
            *at += n;
            Some(*at)
        });
        let mut at = 0;
        for n in &lens {
            at += n;
            assert!(
                ends.any(|end| end == at),
                "a notice ends inside an escalation"
            );
        }
        let ids: Vec<(String, String)> = queued
            .into_iter()
            .enumerate()
            .map(|(i, n)| (format!("{i}-0"), n))
            .collect();
        // A POST takes whole notices up to the cap, at least one.
        let (posted, taken) = body(&ids, &readable(""));
        let posted: Vec<AmAlert> = serde_json::from_str(&posted.unwrap()).unwrap();
        assert_eq!(taken, 1);
        assert_eq!(posted.len(), lens[0]);
        let small: Vec<(String, String)> = (0..3)
            .map(|i| {
                (
                    format!("{i}-0"),
                    notices([&fired[i]], |_| &policy).remove(0),
                )
            })
            .collect();
        let (posted, taken) = body(&small, &readable(""));
        assert_eq!(taken, 3);
        let posted: Vec<AmAlert> = serde_json::from_str(&posted.unwrap()).unwrap();
        assert_eq!(posted.len(), per_escalation[..3].iter().sum::<usize>());
    }

    #[test]
    fn firing_lists_every_role_of_fired_levels_of_open_stages_only() {
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
            .map(|a| {
                format!(
                    "{}:{}:{}",
                    a.labels["stage"], a.labels["level"], a.labels["role"]
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                "visit:1:station_duty_officer",
                "visit:2:station_chief",
                "visit:3:sub_bureau_command",
                "meet:1:station_duty_officer",
                "meet:2:station_chief"
            ]
        );
        // A re-post says what the post did, when the level fired included (Alertmanager keeps
        // the newest annotations).
        let mut reposted = firing(&s, &policy);
        localise(&mut reposted, &readable("language = \"en\"\n"));
        assert_eq!(
            reposted[0].annotations["fired_at"],
            "1970-01-01T03:00:00.000Z"
        );
        assert_eq!(
            reposted[0].annotations["summary"],
            "Visit deadline of alert A in 620102-GWM missed: 1970-01-01 09:00:00 CST (level 1)"
        );
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
