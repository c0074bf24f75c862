//! `GET /v1/alerts/{alert_id}`: one alert's stages and timeline, with the policy it keeps.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

use super::{error, starting, Access, HttpState};
use crate::domain::sla::StageStatus;
use crate::domain::time::format_utc;
use crate::domain::validate::is_identifier;
use crate::domain::{AlertState, Policies, Policy};

/// The alert id does not say which partition the producer chose, so every partition is asked,
/// all at once, and the answer waits for all of them: one round trip however many partitions,
/// and a request outside a token's scope takes as long as one for an unknown id, so its time
/// does not tell that the alert exists.
pub(crate) async fn find(
    s: &HttpState,
    alert_id: &str,
) -> Result<Option<(i32, AlertState)>, Response> {
    let Some((store, partitions)) = s.query.get() else {
        return Err(starting());
    };
    let asked = (0..*partitions).map(|p| async move { (p, store.get(p, alert_id).await) });
    let (mut found, mut failed) = (None, false);
    for (p, answer) in futures::future::join_all(asked).await {
        match answer {
            Ok(Some(state)) if state.alert.is_some() => {
                found = found.or(Some((p, state)));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "Query failed.");
                failed = true;
            }
        }
    }
    // Found where Redis answered: a partition it could not ask (a Cluster shard down) does not
    // hide it. Not found: unknown only if every partition answered.
    if found.is_none() && failed {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "state store unavailable",
        ));
    }
    Ok(found)
}

pub(crate) async fn alert(
    State(s): State<HttpState>,
    access: Access,
    Path(alert_id): Path<String>,
) -> Response {
    if !is_identifier(&alert_id) {
        // Unknown, as the contract answers (§8): no alert has such an id.
        return error(
            StatusCode::NOT_FOUND,
            "unknown alert: an alert_id is 1-128 characters of [A-Za-z0-9._:-]",
        );
    }
    match find(&s, &alert_id).await {
        Err(r) => r,
        Ok(Some((_, state)))
            if !state
                .alert
                .as_ref()
                .is_some_and(|a| access.sees(&a.jurisdiction)) =>
        {
            // Outside the token's scope: as unknown, so a station cannot probe for others.
            error(StatusCode::NOT_FOUND, "unknown alert")
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown alert"),
        Ok(Some((p, state))) => {
            let policy = Snapshots::new(&s).for_state(p, &state).await;
            Json(alert_view(&state, &policy)).into_response()
        }
    }
}

/// The policy snapshots alerts keep, read from Redis as the answer needs them.
pub(crate) struct Snapshots<'a> {
    s: &'a HttpState,
    policies: Arc<Policies>,
    read: HashMap<String, Arc<Policy>>,
}

impl<'a> Snapshots<'a> {
    pub(crate) fn new(s: &'a HttpState) -> Snapshots<'a> {
        Snapshots {
            s,
            policies: s.policies.borrow().clone(),
            read: HashMap::new(),
        }
    }

    /// The alert's snapshot; the policy in force if it names none or Redis lost it.
    pub(crate) async fn for_state(&mut self, partition: i32, state: &AlertState) -> Arc<Policy> {
        let Some(version) = state.policy_version.as_deref() else {
            return self.policies.current().clone();
        };
        if let Some(p) = self.policies.get(version).or(self.read.get(version)) {
            return p.clone();
        }
        if let Some((store, _)) = self.s.query.get() {
            if let Ok(stored) = store.policies(partition).await {
                for (v, json) in stored {
                    if let Ok(p) = Policy::from_snapshot(&v, &json) {
                        self.read.insert(v, Arc::new(p));
                    }
                }
            }
        }
        self.read
            .get(version)
            .cloned()
            .unwrap_or_else(|| self.policies.current().clone())
    }
}

/// The public view of an alert: stages and timeline, never personal data.
#[derive(Serialize)]
pub(crate) struct AlertView<'a> {
    alert_id: &'a str,
    issued_at: String,
    jurisdiction: &'a str,
    risk: &'static str,
    channel: Option<&'a str>,
    fraud_type: Option<&'a str>,
    status: &'static str,
    closed_at: Option<String>,
    policy_version: &'a str,
    stage_order: Vec<&'a str>,
    stages: Stages<'a>,
    /// In time order (`at`), whatever order the events were processed in.
    timeline: Vec<TimelineView<'a>>,
}

/// The stages keyed by name, in the ladder's order (a JSON object's members keep the order
/// they are written in; `serde_json::Map` would sort them).
struct Stages<'a>(Vec<StageView<'a>>);

impl Serialize for Stages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for stage in &self.0 {
            map.serialize_entry(stage.stage, stage)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct StageView<'a> {
    stage: &'a str,
    deadline: String,
    /// `open`, `satisfied` or `cancelled` (closed while open).
    status: &'static str,
    satisfied_at: Option<String>,
    on_time: Option<bool>,
    warned: bool,
    /// The highest breach level fired, 0 if none (as `/v1/overdue`'s `level`).
    level: u8,
    levels_fired: Vec<u8>,
    resolved: bool,
}

#[derive(Serialize)]
struct TimelineView<'a> {
    at: String,
    /// `alert`, a disposition's kind (§2), or an escalation's (§4).
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    officer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<u8>,
}

/// `None` for a state that holds no alert (only dispositions waiting for it).
pub(crate) fn alert_view<'a>(state: &'a AlertState, policy: &'a Policy) -> Option<AlertView<'a>> {
    let a = state.alert.as_ref()?;
    let stages = state
        .clocks(policy)
        .map(|(rule, c)| {
            let (status, satisfied_at, on_time) = match c.status {
                StageStatus::Open => ("open", None, None),
                StageStatus::Satisfied { at, on_time } => {
                    ("satisfied", Some(format_utc(at)), Some(on_time))
                }
                StageStatus::Cancelled => ("cancelled", None, None),
            };
            StageView {
                stage: rule.stage.as_str(),
                deadline: format_utc(c.deadline),
                status,
                satisfied_at,
                on_time,
                warned: c.warned,
                level: c.level,
                levels_fired: (1..=c.level).collect(),
                resolved: c.resolved,
            }
        })
        .collect::<Vec<_>>();
    let mut timeline: Vec<_> = state.timeline.iter().collect();
    timeline.sort_by_key(|t| t.at);
    Some(AlertView {
        alert_id: &a.alert_id,
        issued_at: format_utc(a.issued_at),
        jurisdiction: &a.jurisdiction,
        risk: a.risk.as_str(),
        channel: a.channel.as_deref(),
        fraud_type: a.fraud_type.as_deref(),
        status: if state.is_open() { "open" } else { "closed" },
        closed_at: state.closed_at.map(format_utc),
        policy_version: state.policy_version.as_deref().unwrap_or(policy.version()),
        stage_order: stages.iter().map(|s| s.stage).collect(),
        stages: Stages(stages),
        timeline: timeline
            .into_iter()
            .map(|t| TimelineView {
                at: format_utc(t.at),
                kind: &t.what,
                event_id: t.event_id.as_deref(),
                officer_id: t.officer_id.as_deref(),
                outcome: t.outcome.map(|o| o.as_str()),
                stage: t.stage.as_ref().map(|st| st.as_str()),
                level: t.level,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Alert, Disposition, DispositionKind, Risk};
    use crate::domain::policy::{Ladder, Policies, Policy, StageRule};

    const T0: i64 = 1_795_000_000_000;

    /// An alert that arrives 30 s after issue, when visit and meet (10 s, 20 s) are overdue at
    /// both levels (+0 s, +5 s), and the officer's visit of second 8, reported after that.
    fn late_alert_then_early_visit() -> (AlertState, Policies) {
        let names = |n: &str| vec![n.to_owned()];
        let policies = Policies::from(Policy::uniform(Ladder {
            stages: StageRule::defaults([10_000, 20_000, 60_000]),
            warn_before: 0,
            escalate_after: vec![0, 5_000],
            notify: vec![names("l1"), names("l2")],
            warn_notify: Vec::new(),
            grace: 0,
        }));
        let mut state = AlertState::default();
        let alert = Alert {
            alert_id: "A-1".into(),
            issued_at: T0,
            jurisdiction: "620102-GWM".into(),
            risk: Risk::High,
            channel: None,
            fraud_type: None,
            amount_cents: None,
        };
        state.apply_alert(alert, &policies, T0 + 30_000);
        state.fire(&policies, T0 + 30_000);
        let visit = Disposition {
            event_id: "ev-1".into(),
            alert_id: "A-1".into(),
            kind: DispositionKind::Visited,
            occurred_at: T0 + 8_000,
            officer_id: None,
            outcome: None,
        };
        state.apply_disposition(visit, &policies, T0 + 31_000);
        (state, policies)
    }

    #[test]
    fn stages_are_keyed_in_the_ladder_s_order_and_the_timeline_in_time_order() {
        let (state, policies) = late_alert_then_early_visit();
        let view = alert_view(&state, policies.current()).expect("an alert");
        let text = serde_json::to_string(&view).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":{{")).expect(key);
        assert!(
            at("visit") < at("meet") && at("meet") < at("feedback"),
            "{text}"
        );

        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let visit = &v["stages"]["visit"];
        assert_eq!(visit["stage"], "visit");
        assert_eq!(visit["level"], 2, "{text}");
        assert_eq!(visit["levels_fired"], serde_json::json!([1, 2]));
        assert_eq!(visit["on_time"], true);
        assert_eq!(v["stages"]["feedback"]["level"], 0);

        let timeline = v["timeline"].as_array().unwrap();
        let kinds: Vec<&str> = timeline
            .iter()
            .map(|t| t["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["alert", "visited", "breach", "breach", "breach", "breach", "resolved"],
            "the visit of second 8 before the breaches fired at second 30: {text}"
        );
        let times: Vec<&str> = timeline.iter().map(|t| t["at"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}
