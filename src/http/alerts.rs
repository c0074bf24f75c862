//! `GET /v1/alerts/{alert_id}`: one alert's stages and timeline, with the policy it keeps.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use super::{error, starting, Access, HttpState};
use crate::domain::sla::StageStatus;
use crate::domain::time::format_utc;
use crate::domain::validate::is_identifier;
use crate::domain::{AlertState, Policies, Policy};

/// The alert id does not say which partition the producer chose, so every partition is asked.
pub(crate) async fn find(
    s: &HttpState,
    alert_id: &str,
) -> Result<Option<(i32, AlertState)>, Response> {
    let Some((store, partitions)) = s.query.get() else {
        return Err(starting());
    };
    for p in 0..*partitions {
        match store.get(p, alert_id).await {
            Ok(Some(state)) if state.alert.is_some() => return Ok(Some((p, state))),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Query failed.");
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "state store unavailable",
                ));
            }
        }
    }
    Ok(None)
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
pub(crate) fn alert_view(state: &AlertState, policy: &Policy) -> Value {
    let Some(a) = &state.alert else {
        return Value::Null;
    };
    let stages: serde_json::Map<String, Value> = state
        .clocks(policy)
        .map(|(rule, c)| {
            let (status, satisfied_at, on_time) = match c.status {
                StageStatus::Open => ("open", None, None),
                StageStatus::Satisfied { at, on_time } => {
                    ("satisfied", Some(format_utc(at)), Some(on_time))
                }
                StageStatus::Cancelled => ("cancelled", None, None),
            };
            let levels: Vec<u8> = (1..=c.level).collect();
            (
                rule.stage.as_str().to_owned(),
                json!({
                    "deadline": format_utc(c.deadline),
                    "status": status,
                    "satisfied_at": satisfied_at,
                    "on_time": on_time,
                    "warned": c.warned,
                    "levels_fired": levels,
                    "resolved": c.resolved,
                }),
            )
        })
        .collect();
    let timeline: Vec<Value> = state
        .timeline
        .iter()
        .map(|t| {
            let mut v = json!({ "at": format_utc(t.at), "what": t.what });
            let m = v.as_object_mut().expect("object");
            if let Some(e) = &t.event_id {
                m.insert("event_id".into(), json!(e));
            }
            if let Some(o) = &t.officer_id {
                m.insert("officer_id".into(), json!(o));
            }
            if let Some(o) = t.outcome {
                m.insert("outcome".into(), json!(o.as_str()));
            }
            if let Some(st) = &t.stage {
                m.insert("stage".into(), json!(st.as_str()));
            }
            if let Some(l) = t.level {
                m.insert("level".into(), json!(l));
            }
            v
        })
        .collect();
    json!({
        "alert_id": a.alert_id,
        "issued_at": format_utc(a.issued_at),
        "jurisdiction": a.jurisdiction,
        "risk": a.risk.as_str(),
        "channel": a.channel,
        "fraud_type": a.fraud_type,
        "status": if state.is_open() { "open" } else { "closed" },
        "closed_at": state.closed_at.map(format_utc),
        "policy_version": state.policy_version.as_deref().unwrap_or(policy.version()),
        "stage_order": state.clocks(policy).map(|(r, _)| r.stage.as_str()).collect::<Vec<_>>(),
        "stages": stages,
        "timeline": timeline,
    })
}
