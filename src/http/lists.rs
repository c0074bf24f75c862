//! `GET /v1/open` and `GET /v1/overdue` (docs/contract.md §10.4).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::alerts::Snapshots;
use super::{error, starting, Access, HttpState};
use crate::domain::sla::StageStatus;
use crate::domain::time::format_utc;

/// `GET /v1/open`: not built yet.
pub(crate) async fn open(_access: Access) -> Response {
    error(StatusCode::NOT_IMPLEMENTED, "not implemented yet")
}

#[derive(Debug, Deserialize)]
pub(crate) struct OverdueQuery {
    jurisdiction: Option<String>,
    limit: Option<String>,
}

pub(crate) async fn overdue(
    State(s): State<HttpState>,
    access: Access,
    Query(q): Query<OverdueQuery>,
) -> Response {
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
            || !access.sees(&a.jurisdiction)
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
