//! HTTP (docs/contract.md §8): metrics, health, readiness, and the read-only query API.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::domain::sla::StageStatus;
use crate::domain::time::format_utc;
use crate::domain::validate::is_identifier;
use crate::domain::{AlertState, Policies, Policy};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;

/// What the handlers need.
#[derive(Debug, Clone)]
pub(crate) struct HttpState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    /// The store and the partition count, once Redis and the topics are known; `/v1` answers
    /// 503 until then, while `/healthz`, `/readyz` and `/metrics` answer from the start.
    pub(crate) query: Arc<OnceLock<(Store, i32)>>,
    pub(crate) token: Option<String>,
    /// The policy in force; an alert is shown with the snapshot it keeps.
    pub(crate) policies: watch::Receiver<Arc<Policies>>,
}

/// Only `/metrics`, for `[http].metrics_listen` (a separate scrape address).
pub(crate) fn metrics_router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/alerts/{alert_id}", get(alert))
        .route("/v1/overdue", get(overdue))
        .with_state(state)
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the 0.0.4 text format.
async fn metrics(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    s.metrics
        .set_readiness(s.health.readiness(), s.health.owned() as i64);
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, content_type)], s.metrics.encode()).into_response()
    } else {
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        (
            [(header::CONTENT_TYPE, content_type)],
            s.metrics.encode_prometheus_text(),
        )
            .into_response()
    }
}

async fn readyz(State(s): State<HttpState>) -> Response {
    let readiness = s.health.readiness();
    let body = json!({
        "status": readiness.as_str(),
        "kafka": s.health.kafka_ok(),
        "redis": s.health.redis_ok(),
        "partitions_owned": s.health.owned(),
        "config": s.health.config(),
    });
    let code = if readiness == crate::health::Readiness::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

fn error(code: StatusCode, reason: &str) -> Response {
    (code, Json(json!({ "error": reason }))).into_response()
}

/// `/v1/*` needs the bearer token when one is configured; compared in constant time.
fn authorised(s: &HttpState, headers: &HeaderMap) -> bool {
    let Some(token) = &s.token else { return true };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

fn starting() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "starting: Redis or the input topics not reached yet",
    )
}

fn unauthorised() -> Response {
    error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
}

/// The alert id does not say which partition the producer chose, so every partition is asked.
async fn find(s: &HttpState, alert_id: &str) -> Result<Option<(i32, AlertState)>, Response> {
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

async fn alert(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Path(alert_id): Path<String>,
) -> Response {
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    if !is_identifier(&alert_id) {
        return error(
            StatusCode::BAD_REQUEST,
            "alert_id must be 1-128 characters of [A-Za-z0-9._:-]",
        );
    }
    match find(&s, &alert_id).await {
        Err(r) => r,
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown alert"),
        Ok(Some((p, state))) => {
            let policy = Snapshots::new(&s).for_state(p, &state).await;
            Json(alert_view(&state, &policy)).into_response()
        }
    }
}

/// The policy snapshots alerts keep, read from Redis as the answer needs them.
struct Snapshots<'a> {
    s: &'a HttpState,
    policies: Arc<Policies>,
    read: HashMap<String, Arc<Policy>>,
}

impl<'a> Snapshots<'a> {
    fn new(s: &'a HttpState) -> Snapshots<'a> {
        Snapshots {
            s,
            policies: s.policies.borrow().clone(),
            read: HashMap::new(),
        }
    }

    /// The alert's snapshot; the policy in force if it names none or Redis lost it.
    async fn for_state(&mut self, partition: i32, state: &AlertState) -> Arc<Policy> {
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

#[derive(Debug, Deserialize)]
struct OverdueQuery {
    jurisdiction: Option<String>,
    limit: Option<String>,
}

async fn overdue(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Query(q): Query<OverdueQuery>,
) -> Response {
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "limit must be an integer from 1 to 1000",
            );
        }
    };
    let scan = if q.jurisdiction.is_some() {
        10_000
    } else {
        limit
    };
    let mut rows = Vec::new();
    let Some((store, partitions)) = s.query.get() else {
        return starting();
    };
    for p in 0..*partitions {
        match store.overdue(p, scan).await {
            Ok(r) => rows.extend(r.into_iter().map(|(id, since)| (since, p, id))),
            Err(e) => {
                tracing::warn!(error = %e, "Query failed.");
                return error(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable");
            }
        }
    }
    rows.sort();
    let now = chrono::Utc::now().timestamp_millis();
    let mut snapshots = Snapshots::new(&s);
    let mut out = Vec::new();
    for (since, p, id) in rows {
        if out.len() >= limit {
            break;
        }
        let Ok(Some(state)) = store.get(p, &id).await else {
            continue;
        };
        let Some(a) = &state.alert else { continue };
        if q.jurisdiction
            .as_ref()
            .is_some_and(|j| *j != a.jurisdiction)
            || !state.is_open()
        {
            continue;
        }
        let policy = snapshots.for_state(p, &state).await;
        let breached: Vec<Value> = state
            .clocks(&policy)
            .filter(|(_, c)| c.status == StageStatus::Open && c.level > 0)
            .map(|(r, c)| json!({ "stage": r.stage.as_str(), "deadline": format_utc(c.deadline), "level": c.level }))
            .collect();
        out.push(json!({
            "alert_id": a.alert_id,
            "jurisdiction": a.jurisdiction,
            "risk": a.risk.as_str(),
            "overdue_since": format_utc(since),
            "overdue_seconds": (now - since).max(0) / 1000,
            "breached": breached,
        }));
    }
    Json(json!({ "alerts": out })).into_response()
}
