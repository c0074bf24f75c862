//! `GET /v1/open` and `GET /v1/overdue` (docs/contract.md §8, §10.4): pages of open stages,
//! read from the board's stage indexes (`{p}:due`, `{p}:late`) that the batch script keeps with
//! the records, never from a scan of every alert.
//!
//! A request is parsed and checked purely ([`ListRequest::parse`]); each partition answers its
//! part with one script call ([`Store::list_stages`]); the parts are merged into one page with
//! a cursor ([`merge_pages`]).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::alerts::Snapshots;
use super::{error, starting, Access, HttpState};
use crate::domain::sla::StageStatus;
use crate::domain::time::format_utc;
use crate::domain::{AlertState, Millis, Policy, Risk, Stage};
use crate::store::{merge_pages, IndexQuery, ListedStage, StageList, Store, StoreError};

/// Most index entries one request examines per partition when it filters: bounds what a filter
/// that matches little costs (a page may then be short; its cursor goes on).
pub(crate) const SCAN_BUDGET: usize = 2000;
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Longest `jurisdiction` prefix worth asking for: a jurisdiction has at most 64 characters.
const MAX_JURISDICTION_CHARS: usize = 64;
/// Longest cursor this version hands out (hex of a deadline and a member of at most ~250 bytes).
const MAX_CURSOR_CHARS: usize = 1024;
const PARAMETERS: [&str; 6] = [
    "jurisdiction",
    "risk",
    "stage",
    "due_within",
    "limit",
    "cursor",
];

/// What is wrong with a request's parameters: the 400 answer names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParamError {
    #[error("unknown parameter {name:?}; the parameters are {known}")]
    Unknown { name: String, known: String },
    #[error("parameter {0} is given more than once")]
    Repeated(String),
    #[error("parameter {name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl ParamError {
    fn invalid(name: &'static str, problem: impl Into<String>) -> ParamError {
        ParamError::Invalid {
            name,
            problem: problem.into(),
        }
    }
}

/// Where a page starts: after the entry at `(deadline, member)` of the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    deadline: Millis,
    member: String,
}

impl Cursor {
    /// Opaque to clients: hex of `<list>:<deadline>:<member>`, so a cursor of one list is
    /// refused by the other rather than read as a position in it.
    fn encode(list: StageList, deadline: Millis, member: &str) -> String {
        format!("{}:{deadline}:{member}", tag(list))
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn decode(list: StageList, text: &str) -> Result<Cursor, ParamError> {
        let bad = || ParamError::invalid("cursor", "is not a cursor this list handed out");
        if text.len() > MAX_CURSOR_CHARS || text.len() % 2 != 0 {
            return Err(bad());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, ':');
        let (Some(t), Some(deadline), Some(member)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if t != tag(list) {
            return Err(ParamError::invalid(
                "cursor",
                format!(
                    "is a cursor of {}, not of {}",
                    path(other(list)),
                    path(list)
                ),
            ));
        }
        Ok(Cursor {
            deadline: deadline.parse().map_err(|_| bad())?,
            member: member.to_owned(),
        })
    }
}

fn tag(list: StageList) -> &'static str {
    match list {
        StageList::Due => "open",
        StageList::Late => "overdue",
    }
}

fn path(list: StageList) -> &'static str {
    match list {
        StageList::Due => "/v1/open",
        StageList::Late => "/v1/overdue",
    }
}

fn other(list: StageList) -> StageList {
    match list {
        StageList::Due => StageList::Late,
        StageList::Late => StageList::Due,
    }
}

/// A list request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListRequest {
    /// Jurisdiction prefix.
    jurisdiction: Option<String>,
    risk: Option<Risk>,
    stage: Option<Stage>,
    /// Only deadlines at or before now + this (ms).
    due_within: Option<Millis>,
    limit: usize,
    cursor: Option<Cursor>,
}

impl ListRequest {
    /// Rule: every parameter is optional and given at most once, an empty value is the same as
    /// none (what an HTML form sends), and anything unknown or malformed is refused naming the
    /// parameter, so a typo never silently widens a list.
    pub(crate) fn parse(
        list: StageList,
        params: Vec<(String, String)>,
    ) -> Result<ListRequest, ParamError> {
        let mut given: BTreeMap<&'static str, String> = BTreeMap::new();
        for (name, value) in params {
            let Some(known) = PARAMETERS.iter().find(|p| **p == name) else {
                return Err(ParamError::Unknown {
                    name,
                    known: PARAMETERS.join(", "),
                });
            };
            if given.insert(known, value).is_some() {
                return Err(ParamError::Repeated(name));
            }
        }
        let mut take = |name: &str| given.remove(name).filter(|v| !v.is_empty());
        let jurisdiction = take("jurisdiction");
        if let Some(j) = &jurisdiction {
            // A jurisdiction never holds a control character (docs/contract.md §2); the index
            // members rely on it to match a prefix without splitting.
            let problem = if j.chars().count() > MAX_JURISDICTION_CHARS {
                Some(format!(
                    "is longer than {MAX_JURISDICTION_CHARS} characters"
                ))
            } else if j.chars().any(char::is_control) {
                Some("holds a control character, which no jurisdiction does".to_owned())
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ParamError::invalid("jurisdiction", problem));
            }
        }
        let risk = take("risk")
            .map(|r| {
                Risk::parse(&r).ok_or_else(|| {
                    ParamError::invalid("risk", format!("must be high, medium or low, not {r:?}"))
                })
            })
            .transpose()?;
        let stage = take("stage")
            .map(|s| Stage::new(&s).map_err(|problem| ParamError::invalid("stage", problem)))
            .transpose()?;
        // A duration as the config writes one, or a bare number of seconds (`1800`).
        let due_within = take("due_within")
            .map(|d| {
                let seconds = d.parse::<u64>().ok().map(std::time::Duration::from_secs);
                seconds
                    .ok_or(())
                    .or_else(|()| humantime::parse_duration(&d).map_err(drop))
                    .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
                    .map_err(|()| {
                        ParamError::invalid(
                            "due_within",
                            format!("{d:?} is not a duration (e.g. 90s, 15m, 1h30m, or seconds)"),
                        )
                    })
            })
            .transpose()?;
        let limit = match take("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ParamError::invalid(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}, not {l:?}"),
                    )
                })?,
        };
        let cursor = take("cursor")
            .map(|c| Cursor::decode(list, &c))
            .transpose()?;
        Ok(ListRequest {
            jurisdiction,
            risk,
            stage,
            due_within,
            limit,
            cursor,
        })
    }
}

/// `GET /v1/open?jurisdiction=&risk=&stage=&due_within=&limit=&cursor=`: open stages not yet
/// breached, soonest deadline first (ties in a fixed order), as
/// `{"items": [{"alert_id", "jurisdiction", "risk", "stage", "deadline", "warned"}],
/// "next_cursor"}`; `next_cursor` is `null` when the list is done.
///
/// `jurisdiction` is a prefix (narrowed further by a scoped token), `risk` is high, medium or
/// low, `stage` a stage name, `due_within` a duration (deadline ≤ now + it), `limit` 1–1000
/// (default 100). A bad parameter is a 400 naming it.
///
/// Cost: one script call per partition, whatever the number of open alerts n. Unfiltered it
/// reads the first `limit` entries after the cursor, O(log n + limit), deep pages as cheap as
/// the first. With a filter the script examines at most 2000 entries per partition and call
/// (like `SCAN`): a filter that matches little can return a short, even empty, page whose
/// `next_cursor` goes on from where the scan stopped; only `next_cursor: null` means done.
pub(crate) async fn open(
    State(s): State<HttpState>,
    access: Access,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    list(&s, &access, params, StageList::Due).await
}

/// `GET /v1/overdue`: open stages with a breach level fired, most overdue (earliest deadline)
/// first; the parameters, cost and paging of [`open`], and items with `"level"` (highest
/// breach level fired) instead of `"warned"`.
///
/// Version 1 compatibility: `"alerts"` still lists the page's alerts in the version-1 shape
/// (`alert_id`, `jurisdiction`, `risk`, `overdue_since`, `overdue_seconds`, `breached`), most
/// overdue first, read from their records (at most `limit` reads). `limit` now counts items
/// (stages), so `alerts` may hold fewer than `limit`; `jurisdiction` is a prefix, which an exact
/// jurisdiction still matches.
pub(crate) async fn overdue(
    State(s): State<HttpState>,
    access: Access,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    list(&s, &access, params, StageList::Late).await
}

async fn list(
    s: &HttpState,
    access: &Access,
    params: Vec<(String, String)>,
    list: StageList,
) -> Response {
    let req = match ListRequest::parse(list, params) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Some((store, partitions)) = s.query.get() else {
        return starting();
    };
    let now = chrono::Utc::now().timestamp_millis();
    let prefixes = access.narrow(req.jurisdiction.as_deref());
    let items = if prefixes.as_ref().is_some_and(Vec::is_empty) {
        // Asked outside the token's scope: nothing, as if nothing were there.
        Ok((Vec::new(), None))
    } else {
        let q = IndexQuery {
            after: req.cursor.as_ref().map(|c| (c.deadline, c.member.as_str())),
            max_deadline: req.due_within.map(|d| now.saturating_add(d)),
            limit: req.limit,
            budget: SCAN_BUDGET,
            prefixes: prefixes.as_deref(),
            risk: req.risk,
            stage: req.stage.as_ref().map(Stage::as_str),
        };
        page(store, *partitions, list, &q).await
    };
    let (items, next) = match items {
        Ok(page) => page,
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "List query failed.");
            return error(StatusCode::SERVICE_UNAVAILABLE, "state store unavailable");
        }
        Err(e) => {
            // Not Redis being away: an index entry this version does not write.
            tracing::error!(error = %e, "List index unreadable.");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the list's index holds an entry this version cannot read",
            );
        }
    };
    // The script filtered by scope already; checked again so a scoped token can never see
    // another station's entry.
    let items: Vec<(i32, ListedStage)> = items
        .into_iter()
        .filter(|(_, i)| access.sees(&i.jurisdiction))
        .collect();
    // An overdue page's alerts are read (at most `limit` reads): the version-1 `alerts`, and
    // who each item's level paged, by the alert's own policy (§10.2).
    let read = match list {
        StageList::Due => Vec::new(),
        StageList::Late => read_alerts(s, store, &items).await,
    };
    let policy_of: BTreeMap<&str, &Policy> = read
        .iter()
        .filter_map(|(st, p)| Some((st.alert.as_ref()?.alert_id.as_str(), p.as_ref())))
        .collect();
    let shown: Vec<Value> = items
        .iter()
        .map(|(_, i)| {
            let mut v = json!({
                "alert_id": i.alert_id,
                "jurisdiction": i.jurisdiction,
                "risk": i.risk.as_str(),
                "stage": i.stage,
                "deadline": format_utc(i.deadline),
            });
            match list {
                StageList::Due => v["warned"] = json!(i.warned),
                StageList::Late => {
                    v["level"] = json!(i.level);
                    if let Some(policy) = policy_of.get(i.alert_id.as_str()) {
                        v["notify"] = json!(policy.for_risk(i.risk).notify(i.level));
                    }
                }
            }
            v
        })
        .collect();
    let next_cursor = next.map(|(d, m)| Cursor::encode(list, d, &m));
    match list {
        StageList::Due => Json(json!({ "items": shown, "next_cursor": next_cursor })),
        StageList::Late => {
            let alerts = v1_alerts(&read, now);
            Json(json!({ "items": shown, "next_cursor": next_cursor, "alerts": alerts }))
        }
    }
    .into_response()
}

/// One page of `list` over every partition, its items decoded, and where the next starts.
async fn page(
    store: &Store,
    partitions: i32,
    list: StageList,
    q: &IndexQuery<'_>,
) -> Result<(Vec<(i32, ListedStage)>, Option<(Millis, String)>), StoreError> {
    // All partitions at once: the multiplexed connection pipelines the calls.
    let parts =
        futures::future::try_join_all((0..partitions).map(|p| async move {
            Ok::<_, StoreError>((p, store.list_stages(p, list, q).await?))
        }))
        .await?;
    let merged = merge_pages(parts, q.limit);
    let items = merged
        .items
        .into_iter()
        .map(|(p, m)| {
            ListedStage::decode(list, m.deadline, &m.member)
                .map(|i| (p, i))
                .ok_or(StoreError::CorruptIndex {
                    partition: p,
                    entry: m.member,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, merged.next))
}

/// The page's alerts, most overdue first (the order of their first item), with the policy each
/// keeps; an alert whose record is gone since the index was read is left out.
async fn read_alerts(
    s: &HttpState,
    store: &Store,
    items: &[(i32, ListedStage)],
) -> Vec<(AlertState, Arc<Policy>)> {
    let mut order: Vec<(i32, &str)> = Vec::new();
    for (p, i) in items {
        if !order.iter().any(|(_, id)| *id == i.alert_id) {
            order.push((*p, &i.alert_id));
        }
    }
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (p, id) in &order {
        by_partition.entry(*p).or_default().push((*id).to_owned());
    }
    let mut states = BTreeMap::new();
    for (p, ids) in by_partition {
        match store.load(p, &ids).await {
            Ok(loaded) => states.extend(
                ids.into_iter()
                    .zip(loaded)
                    .filter_map(|(id, st)| Some((id, (p, st?)))),
            ),
            Err(e) => tracing::warn!(partition = p, error = %e, "Overdue alerts not read."),
        }
    }
    let mut snapshots = Snapshots::new(s);
    let mut out = Vec::new();
    for (_, id) in order {
        let Some((p, state)) = states.remove(id) else {
            continue;
        };
        let policy = snapshots.for_state(p, &state).await;
        out.push((state, policy));
    }
    out
}

/// The version-1 view of the page's alerts, in `read`'s order; an alert that closed since the
/// index was read is left out.
fn v1_alerts(read: &[(AlertState, Arc<Policy>)], now: Millis) -> Vec<Value> {
    let mut out = Vec::new();
    for (state, policy) in read {
        let (Some(a), Some(since)) = (&state.alert, state.overdue_since()) else {
            continue;
        };
        let breached: Vec<Value> = state
            .clocks(policy)
            .filter(|(_, c)| c.status == StageStatus::Open && c.level > 0)
            .map(|(r, c)| {
                json!({
                    "stage": r.stage.as_str(),
                    "deadline": format_utc(c.deadline),
                    "level": c.level,
                })
            })
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(list: StageList, p: &[(&str, &str)]) -> Result<ListRequest, ParamError> {
        ListRequest::parse(list, params(p))
    }

    fn problem(p: &[(&str, &str)]) -> String {
        parse(StageList::Due, p).unwrap_err().to_string()
    }

    #[test]
    fn every_parameter_is_parsed_and_empty_ones_are_absent() {
        let cursor = Cursor::encode(
            StageList::Due,
            1_795_000_000_000,
            "620102\x1fhigh\x1fvisit\x1fA\x1f0",
        );
        let r = parse(
            StageList::Due,
            &[
                ("jurisdiction", "6201"),
                ("risk", "high"),
                ("stage", "visit"),
                ("due_within", "1h30m"),
                ("limit", "1000"),
                ("cursor", &cursor),
            ],
        )
        .unwrap();
        assert_eq!(r.jurisdiction.as_deref(), Some("6201"));
        assert_eq!(r.risk, Some(Risk::High));
        assert_eq!(r.stage.as_ref().map(Stage::as_str), Some("visit"));
        assert_eq!(r.due_within, Some(90 * 60_000));
        assert_eq!(r.limit, 1000);
        assert_eq!(
            r.cursor,
            Some(Cursor {
                deadline: 1_795_000_000_000,
                member: "620102\x1fhigh\x1fvisit\x1fA\x1f0".into()
            })
        );
        let empty = parse(
            StageList::Due,
            &[
                ("jurisdiction", ""),
                ("risk", ""),
                ("limit", ""),
                ("cursor", ""),
            ],
        )
        .unwrap();
        assert_eq!(
            empty,
            ListRequest {
                jurisdiction: None,
                risk: None,
                stage: None,
                due_within: None,
                limit: 100,
                cursor: None
            }
        );
    }

    #[test]
    fn a_bad_parameter_is_named_with_its_problem() {
        assert!(problem(&[("limit", "0")])
            .starts_with("parameter limit: must be an integer from 1 to 1000"));
        assert!(problem(&[("limit", "1001")]).starts_with("parameter limit:"));
        assert!(problem(&[("limit", "ten")]).starts_with("parameter limit:"));
        assert_eq!(
            problem(&[("risk", "extreme")]),
            "parameter risk: must be high, medium or low, not \"extreme\""
        );
        assert!(problem(&[("stage", "Visit!")]).starts_with("parameter stage:"));
        assert!(problem(&[("due_within", "soon")]).starts_with("parameter due_within:"));
        assert!(problem(&[("due_within", "-5")]).starts_with("parameter due_within:"));
        let seconds = parse(StageList::Due, &[("due_within", "1800")]).unwrap();
        assert_eq!(
            seconds.due_within,
            Some(30 * 60_000),
            "a bare number is seconds"
        );
        assert!(problem(&[("cursor", "zz")]).starts_with("parameter cursor:"));
        assert!(problem(&[("cursor", "6f70656e3a78")]).starts_with("parameter cursor:"));
        assert!(
            problem(&[("jurisdiction", &"6".repeat(65))]).starts_with("parameter jurisdiction:")
        );
        assert!(problem(&[("jurisdiction", "6201\x1fhigh")]).starts_with("parameter jurisdiction:"));
        assert!(problem(&[("limt", "5")]).starts_with("unknown parameter \"limt\""));
        assert_eq!(
            problem(&[("limit", "5"), ("limit", "6")]),
            "parameter limit is given more than once"
        );
        let overdue_cursor = Cursor::encode(StageList::Late, 1, "x");
        assert_eq!(
            problem(&[("cursor", &overdue_cursor)]),
            "parameter cursor: is a cursor of /v1/overdue, not of /v1/open"
        );
    }

    #[test]
    fn a_cursor_round_trips_whatever_the_member_holds() {
        for member in [
            "",
            "a:b:c",
            "620102-GWM\x1fhigh\x1fsign_for\x1fGA-1:x\x1f3",
            "张三",
        ] {
            let text = Cursor::encode(StageList::Late, -5, member);
            assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(
                Cursor::decode(StageList::Late, &text),
                Ok(Cursor {
                    deadline: -5,
                    member: member.into()
                })
            );
        }
    }
}
