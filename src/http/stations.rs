//! `GET /v1/stations?date=YYYY-MM-DD`: per jurisdiction and stage, a day's counts (display
//! zone) and the stages open now, for the board's station view (docs/contract.md §10.4).
//!
//! Read from counters the batch script keeps per partition (`{p}:day:<date>`, `{p}:openstat`):
//! two small hashes per partition, whatever the number of alerts.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::{error, starting, Access, HttpState};
use crate::partition::plan::day_of;
use crate::store::{parse_station_field, DayCount, StationCounts, StoreError};

/// One row: a jurisdiction's stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Row {
    on_time: i64,
    late: i64,
    breached: i64,
    open: i64,
}

/// Rule: a date is `YYYY-MM-DD` and a real day; nothing else is read as one.
fn parse_date(text: &str) -> Option<jiff::civil::Date> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    shape.then(|| text.parse().ok()).flatten()
}

/// The rows of what the partitions hold, summed, keeping what `access` sees, sorted by
/// jurisdiction then stage. Open counts only for today: a past day's open stages were never
/// kept.
fn rows(
    parts: Vec<StationCounts>,
    access: &Access,
    today: bool,
) -> BTreeMap<(String, String), Row> {
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for part in parts {
        let open = part.open.into_iter().filter(|_| today);
        let counts = part.day.into_iter().chain(open);
        for (field, n) in counts {
            let Some((jurisdiction, stage, count)) = parse_station_field(&field) else {
                continue;
            };
            if !access.sees(jurisdiction) {
                continue;
            }
            let row = rows
                .entry((jurisdiction.to_owned(), stage.to_owned()))
                .or_default();
            let n = n.max(0);
            match count {
                Some(DayCount::OnTime) => row.on_time += n,
                Some(DayCount::Late) => row.late += n,
                Some(DayCount::Breached) => row.breached += n,
                None => row.open += n,
            }
        }
    }
    rows
}

/// `GET /v1/stations?date=YYYY-MM-DD` (default: today in the display zone):
/// `{"date", "timezone", "rows": [{"jurisdiction", "stage", "on_time", "late", "breached",
/// "open"}]}`, summed over partitions, only the jurisdictions the token sees, sorted by
/// jurisdiction then stage.
///
/// `on_time` and `late` count stages satisfied that day, `breached` level-1 breaches that day,
/// each on the day it was processed. `open` is the number of stages open now (breached or not),
/// so it is given for today only; rows of another day have no `open` field. Days are kept for
/// 8 days; an older date answers with no rows. A bad `date` is a 400.
pub(crate) async fn stations(
    State(s): State<HttpState>,
    access: Access,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let mut date = None;
    for (name, value) in params {
        if name != "date" {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unknown parameter {name:?}; the only parameter is date"),
            );
        }
        if date.is_some() {
            return error(
                StatusCode::BAD_REQUEST,
                "parameter date is given more than once",
            );
        }
        date = Some(value);
    }
    let zone = jiff::tz::TimeZone::get(&s.display.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = day_of(chrono::Utc::now().timestamp_millis(), &zone);
    let date = match date.filter(|d| !d.is_empty()) {
        None => today.clone(),
        Some(d) => match parse_date(&d) {
            Some(day) => day.to_string(),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("parameter date: must be a day as YYYY-MM-DD, not {d:?}"),
                )
            }
        },
    };
    let Some((store, partitions)) = s.query.get() else {
        return starting();
    };
    let read =
        futures::future::try_join_all((0..*partitions).map(|p| store.stations(p, &date))).await;
    let parts: Vec<StationCounts> = match read {
        Ok(parts) => parts,
        Err(e) => {
            let e: StoreError = e;
            tracing::warn!(error = %e, "Station query failed.");
            return error(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable");
        }
    };
    let is_today = date == today;
    let rows: Vec<Value> = rows(parts, &access, is_today)
        .into_iter()
        .map(|((jurisdiction, stage), r)| {
            let mut v = json!({
                "jurisdiction": jurisdiction,
                "stage": stage,
                "on_time": r.on_time,
                "late": r.late,
                "breached": r.breached,
            });
            if is_today {
                v["open"] = json!(r.open);
            }
            v
        })
        .collect();
    Json(json!({ "date": date, "timezone": s.display.timezone, "rows": rows })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{day_field, station_field};

    #[test]
    fn only_real_days_in_the_one_format_are_dates() {
        assert_eq!(
            parse_date("2026-11-22").map(|d| d.to_string()).as_deref(),
            Some("2026-11-22")
        );
        for bad in [
            "2026-02-30",
            "20261122",
            "2026-11-22T00:00",
            "26-11-22",
            "",
            "2026-1-22",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn rows_sum_partitions_keep_the_scope_and_show_open_for_today_only() {
        let part =
            |day: &[(&str, &str, DayCount, i64)], open: &[(&str, &str, i64)]| StationCounts {
                day: day
                    .iter()
                    .map(|(j, s, c, n)| (day_field(j, s, *c), *n))
                    .collect(),
                open: open
                    .iter()
                    .map(|(j, s, n)| (station_field(j, s), *n))
                    .collect(),
            };
        let parts = || {
            vec![
                part(
                    &[
                        ("620102-GWM", "visit", DayCount::OnTime, 2),
                        ("620102-GWM", "visit", DayCount::Breached, 1),
                    ],
                    &[("620102-GWM", "visit", 3), ("330100", "meet", 1)],
                ),
                part(
                    &[
                        ("620102-GWM", "visit", DayCount::OnTime, 1),
                        ("620102-GWM", "meet", DayCount::Late, 4),
                    ],
                    &[],
                ),
            ]
        };
        let all = rows(parts(), &Access::All, true);
        let keys: Vec<(&str, &str)> = all.keys().map(|(j, s)| (j.as_str(), s.as_str())).collect();
        assert_eq!(
            keys,
            [
                ("330100", "meet"),
                ("620102-GWM", "meet"),
                ("620102-GWM", "visit")
            ]
        );
        assert_eq!(
            all[&("620102-GWM".into(), "visit".into())],
            Row {
                on_time: 3,
                late: 0,
                breached: 1,
                open: 3
            }
        );
        let station = Access::Scoped {
            name: "gwm".into(),
            prefixes: vec!["6201".into()],
        };
        let scoped = rows(parts(), &station, false);
        assert_eq!(scoped.len(), 2);
        assert!(
            scoped.values().all(|r| r.open == 0),
            "a past day has no open counts"
        );
    }
}
