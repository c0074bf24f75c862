//! HTTP (docs/contract.md §8, §10.4): metrics, health, readiness, the query API and the
//! operators' board.
//!
//! - [`auth`]: who sees what (`FRAUD_SLA_HTTP_TOKEN`, scoped tokens);
//! - [`alerts`]: one alert (`/v1/alerts/{id}`);
//! - [`lists`]: `/v1/open` and `/v1/overdue`, from the indexes the batch script keeps;
//! - [`stations`]: per jurisdiction and stage, today;
//! - [`events`]: `/v1/events`, server-sent events;
//! - [`board`]: the board's page and assets, compiled into the binary;
//! - [`serve`]: the listener's loop, which closes a connection whose request head is slow.

pub(crate) mod alerts;
pub(crate) mod auth;
pub(crate) mod board;
pub(crate) mod events;
pub(crate) mod lists;
pub(crate) mod serve;
pub(crate) mod stations;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use axum::{Json, Router};
use serde_json::json;
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

use crate::domain::Policies;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;
pub(crate) use auth::{Access, Tokens, TokensInForce};

/// What people read: the display zone and language, and the stages' names (§10.3).
#[derive(Debug, Clone)]
pub(crate) struct Display {
    /// IANA name.
    pub(crate) timezone: String,
    /// `zh-CN` or `en`: the board's default.
    pub(crate) language: String,
    /// Replaced by a reload (`crate::reload::Labels`).
    pub(crate) labels: crate::reload::Labels,
}

/// What the handlers need.
#[derive(Debug, Clone)]
pub(crate) struct HttpState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    /// The store and the partition count, once Redis and the topics are known; `/v1` answers
    /// 503 until then, while `/healthz`, `/readyz` and `/metrics` answer from the start.
    pub(crate) query: Arc<OnceLock<(Store, i32)>>,
    /// Replaced by a reload (`crate::reload::Reloader`).
    pub(crate) tokens: TokensInForce,
    /// The policy in force; an alert is shown with the snapshot it keeps.
    pub(crate) policies: watch::Receiver<Arc<Policies>>,
    pub(crate) display: Arc<Display>,
    /// Where the board's live events come from.
    pub(crate) events: events::Hub,
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
        .route("/v1/alerts/{alert_id}", v1(get(alerts::alert)))
        .route("/v1/open", v1(get(lists::open)))
        .route("/v1/overdue", v1(get(lists::overdue)))
        .route("/v1/stations", v1(get(stations::stations)))
        .route("/v1/events", v1(get(events::events)))
        .route("/v1/display", v1(get(display)))
        .route("/v1", any(unknown_v1))
        .route("/v1/", any(unknown_v1))
        .route("/v1/{*rest}", any(unknown_v1))
        .merge(board::routes())
        .with_state(state)
}

/// Rejects a request without a valid token with 401 (for the board's data as for `/v1`).
impl FromRequestParts<HttpState> for Access {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &HttpState) -> Result<Access, Response> {
        let access = s.tokens.borrow().access(&parts.headers);
        access.ok_or_else(|| {
            // RFC 9110 §11.6.1: a 401 names the scheme it wants (RFC 6750 §3 for Bearer).
            let challenge = [(header::WWW_AUTHENTICATE, r#"Bearer realm="fraud-sla""#)];
            let body = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            (challenge, body).into_response()
        })
    }
}

/// A `/v1` endpoint: a method it does not take is 401 before 405, as an unknown path is 401
/// before 404.
fn v1(route: MethodRouter<HttpState>) -> MethodRouter<HttpState> {
    route.fallback(wrong_method)
}

async fn wrong_method(_: Access) -> Response {
    let allow = [(header::ALLOW, "GET,HEAD")];
    (
        allow,
        error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    )
        .into_response()
}

/// A path under `/v1` that names no endpoint: 401 before 404, as for every path there, so
/// that without a token nothing is learnt of what exists.
async fn unknown_v1(_: Access) -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// The display settings and the stages' names, for the board (and who the token is).
async fn display(State(s): State<HttpState>, access: Access) -> Response {
    let labels: serde_json::Map<String, serde_json::Value> = s
        .display
        .labels
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(stage, l)| (stage.clone(), json!({ "zh": l.zh, "en": l.en })))
        .collect();
    let policy = s.policies.borrow().current().clone();
    let scope = match &access {
        Access::All => json!({ "name": null, "jurisdictions": null }),
        Access::Scoped { name, prefixes } => json!({ "name": name, "jurisdictions": prefixes }),
    };
    Json(json!({
        "timezone": s.display.timezone,
        "language": s.display.language,
        "stages": policy.stages().iter().map(|st| st.as_str()).collect::<Vec<_>>(),
        "labels": labels,
        "policy_version": policy.version(),
        "scope": scope,
    }))
    .into_response()
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

pub(crate) fn error(code: StatusCode, reason: &str) -> Response {
    (code, Json(json!({ "error": reason }))).into_response()
}

pub(crate) fn starting() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "starting: Redis or the input topics not reached yet",
    )
}
