//! The board's API (docs/contract.md §10.4) end to end: the built binary against a real
//! redis-server and a real Kafka-protocol broker (tansu), three partitions.
//!
//! - `/v1/open` and `/v1/overdue`: exact items in deadline order (ties in one order, kept by
//!   every page size and filter), every filter
//!   (jurisdiction prefix, risk, stage, due_within), a scoped token, paging with cursors through
//!   everything without gaps or repeats, 400 naming the bad parameter, and items leaving
//!   `/v1/open` when their stage is satisfied and moving to `/v1/overdue` when it breaches;
//! - `/v1/stations`: today's counts per jurisdiction and stage, summed over partitions.
//!
//! Deadlines are hours long, so nothing fires while a list is checked, except for the alert the
//! test issues to breach a few seconds later.

mod common;
use common::*;
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(40);
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const ROOT: &str = "root-token";
const STATION: &str = "station-620102-token";

/// The policy of these tests, after `[http]`'s `listen` (so `tokens_file` lands in `[http]`).
fn sla(tokens_file: &std::path::Path) -> String {
    format!(
        r#"tokens_file = "{}"
[sla]
visit_within = "1h"
meet_within = "2h"
feedback_within = "6h"
warn_before = "15m"
escalate_after = ["0s", "30m"]
notify = [["station_duty_officer"], ["station_chief"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096

[sla.risk.low]
stages = ["feedback"]
feedback_within = "6h"

[display]
timezone = "Asia/Shanghai"
"#,
        tokens_file.display()
    )
}

/// One processor with a token that sees everything and a station's token for `620102`.
struct Run {
    env: Env,
    p: Processor,
    prod: FutureProducer,
    /// Holds the tokens file.
    _tokens: tempfile::TempDir,
}

impl Run {
    fn start(name: &str) -> Run {
        let dir = tmpdir();
        let tokens = dir.path().join("tokens.toml");
        let sha: String = Sha256::digest(STATION.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(
            &tokens,
            format!(
                "[[token]]\nsha256 = \"{sha}\"\nname = \"gwm\"\njurisdictions = [\"620102\"]\n"
            ),
        )
        .unwrap();
        let env = Env::new(name, 3, &sla(&tokens));
        let port = free_port();
        let config = env.config(port);
        let log = env.dir.path().join(format!("fraud-sla-{port}.log"));
        let p = Processor::start_with_env(&config, port, &log, &[("FRAUD_SLA_HTTP_TOKEN", ROOT)]);
        p.wait_ready(WITHIN);
        let prod = env.broker.producer();
        Run {
            env,
            p,
            prod,
            _tokens: dir,
        }
    }

    async fn alert(&self, a: &A) {
        let value = json!({
            "alert_id": a.id, "issued_at": iso(a.issued), "jurisdiction": a.j, "risk": a.risk,
            "subject": { "name": "SECRET-NAME-张三", "phone": "13800001234" },
        });
        produce(
            &self.prod,
            &self.env.topics.alerts,
            Some(a.id.as_str()),
            &value.to_string(),
        )
        .await;
    }

    async fn disposition(&self, event_id: &str, alert_id: &str, kind: &str, at: i64) {
        let value = disposition_json(event_id, alert_id, kind, at);
        produce(
            &self.prod,
            &self.env.topics.dispositions,
            Some(alert_id),
            &value,
        )
        .await;
    }

    /// GET with `token`: status and body.
    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (code, body) = http_get(self.p.http_port, path, token).expect("HTTP answers");
        let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (code, v)
    }

    /// GET with the root token, which must answer 200.
    fn ok(&self, path: &str) -> Value {
        let (code, v) = self.get(path, Some(ROOT));
        assert_eq!(code, 200, "{path}: {v}");
        v
    }

    /// Every item of a list, page by page (`query` without `cursor`), checking that each page
    /// is at most `limit` long and that only the last has no cursor; returns the items and the
    /// number of pages.
    fn all(
        &self,
        list: &str,
        query: &str,
        limit: usize,
        token: Option<&str>,
    ) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for pages in 1..=1000 {
            let mut path = format!("/v1/{list}?limit={limit}");
            if !query.is_empty() {
                path.push('&');
                path.push_str(query);
            }
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (code, page) = self.get(&path, token);
            assert_eq!(code, 200, "{path}: {page}");
            let got = page["items"].as_array().unwrap();
            assert!(got.len() <= limit, "{path}: {page}");
            items.extend(got.iter().cloned());
            match &page["next_cursor"] {
                Value::Null => return (items, pages),
                Value::String(c) => cursor = Some(c.clone()),
                other => panic!("next_cursor is a string or null, not {other}"),
            }
        }
        panic!("{list}?{query}: paging never ended");
    }

    /// Waits until `/v1/{list}?{query}` (one page of 1000) holds exactly `want`, in deadline
    /// order (ties in any one order).
    fn wait_for(&self, list: &str, query: &str, want: &[Value]) {
        let path = format!("/v1/{list}?limit=1000&{query}");
        let mut last = Value::Null;
        let done = (0..400).any(|_| {
            last = self.ok(&path)["items"].clone();
            last.as_array()
                .is_some_and(|got| in_deadline_order(got) && by_entry(got) == by_entry(want))
                || {
                    std::thread::sleep(Duration::from_millis(100));
                    false
                }
        });
        assert!(
            done,
            "{path} never became\n{}\nlast:\n{}\nlog:\n{}",
            json!(want),
            last,
            self.p.log_text()
        );
    }
}

/// A test alert and where its stages stand.
#[derive(Debug, Clone)]
struct A {
    id: String,
    j: &'static str,
    risk: &'static str,
    issued: i64,
    /// Stages satisfied or cancelled: no longer listed.
    done: Vec<&'static str>,
    /// Deadline before the alert was processed: the breach level 1 fired at once.
    processed_late: bool,
    /// Its warning fired when it was processed (deadline less than 15 min away).
    warned_visit: bool,
}

impl A {
    fn new(id: &str, j: &'static str, risk: &'static str, issued: i64) -> A {
        A {
            id: id.into(),
            j,
            risk,
            issued,
            done: Vec::new(),
            processed_late: false,
            warned_visit: false,
        }
    }

    fn stages(&self) -> Vec<(&'static str, i64)> {
        if self.risk == "low" {
            vec![("feedback", 6 * HOUR)]
        } else {
            vec![("visit", HOUR), ("meet", 2 * HOUR), ("feedback", 6 * HOUR)]
        }
    }
}

/// Sort key and item of every listed stage of `alerts` in `list` (`open` or `overdue`), in the
/// lists' order: deadline, then the index member (jurisdiction, risk, stage, id, warned/level).
fn expected(alerts: &[A], list: &str) -> Vec<Value> {
    let mut rows: Vec<((i64, String), Value)> = Vec::new();
    for a in alerts {
        for (stage, within) in a.stages() {
            if a.done.contains(&stage) {
                continue;
            }
            let deadline = a.issued + within;
            let late = stage == "visit" && a.processed_late;
            let mut item = json!({
                "alert_id": a.id, "jurisdiction": a.j, "risk": a.risk, "stage": stage,
                "deadline": iso(deadline),
            });
            let last = match (list, late) {
                ("open", false) => {
                    let warned = stage == "visit" && a.warned_visit;
                    item["warned"] = json!(warned);
                    u8::from(warned)
                }
                ("overdue", true) => {
                    item["level"] = json!(1);
                    // Who level 1 paged, by the alert's policy (the `notify` above).
                    item["notify"] = json!(["station_duty_officer"]);
                    1
                }
                _ => continue,
            };
            let member = format!("{}\x1f{}\x1f{stage}\x1f{}\x1f{last}", a.j, a.risk, a.id);
            rows.push(((deadline, member), item));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter().map(|(_, v)| v).collect()
}

/// Items by (deadline, alert, stage): equal for two lists of the same items whatever the order
/// of their ties.
fn by_entry(items: &[Value]) -> Vec<Value> {
    let mut v = items.to_vec();
    v.sort_by_key(|i| {
        (
            i["deadline"].as_str().unwrap().to_owned(),
            i["alert_id"].as_str().unwrap().to_owned(),
            i["stage"].as_str().unwrap().to_owned(),
        )
    });
    v
}

/// Soonest deadline first (the timestamps are all UTC with milliseconds, so they sort as text).
fn in_deadline_order(items: &[Value]) -> bool {
    items
        .windows(2)
        .all(|w| w[0]["deadline"].as_str() <= w[1]["deadline"].as_str())
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["alert_id"].as_str().unwrap(),
                i["stage"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn open_and_overdue_page_filter_and_follow_the_stages() {
    let run = Run::start("board-lists");
    let t = now_ms() / 1000 * 1000;
    let fresh = |k: i64| t - k * 1000;
    let old = |k: i64| t - 70 * MIN - k * 1000;
    let mut alerts = vec![
        A::new("F01", "620102-GWM", "high", fresh(1)),
        A::new("F02", "620102-QLH", "medium", fresh(2)),
        A::new("F03", "620103-XG", "low", fresh(3)),
        A::new("F04", "330100-HZ", "high", fresh(4)),
        A::new("F05", "620102-GWM", "medium", fresh(5)),
        A::new("F06", "620102-GWM", "low", fresh(6)),
        A::new("F07", "330100-HZ", "medium", fresh(7)),
        A::new("F08", "620103-XG", "high", fresh(8)),
        // Two pairs issued at the same instant: their deadlines tie, ordered by member.
        A::new("F09", "620102-QLH", "high", fresh(9)),
        A::new("F10", "620102-QLH", "low", fresh(9)),
        A::new("F11", "330100-HZ", "low", fresh(10)),
        A::new("F12", "620103-XG", "medium", fresh(10)),
        A::new("O1", "620102-GWM", "high", old(1)),
        A::new("O2", "330100-HZ", "medium", old(2)),
        A::new("O3", "620103-XG", "high", old(3)),
        A::new("O4", "620102-QLH", "medium", old(4)),
    ];
    for a in alerts.iter_mut().filter(|a| a.id.starts_with('O')) {
        a.processed_late = true;
    }
    for a in &alerts {
        run.alert(a).await;
    }
    let open = expected(&alerts, "open");
    let overdue = expected(&alerts, "overdue");
    assert_eq!((open.len(), overdue.len()), (36, 4));
    run.wait_for("open", "", &open);
    run.wait_for("overdue", "", &overdue);

    // Everything on one page: exact items in deadline order, and no cursor. Ties come in an
    // order of the index's own (its stored members, lua/names.lua); from here on that order is
    // the one every page size and filter must keep.
    let page = run.ok("/v1/open?limit=1000");
    let items = page["items"].as_array().unwrap().clone();
    assert!(in_deadline_order(&items), "{page}");
    assert_eq!(by_entry(&items), by_entry(&open));
    let open = items;
    assert_eq!(page["next_cursor"], Value::Null);
    let ties: Vec<String> = ids(&open)
        .into_iter()
        .filter(|i| {
            [
                "F09:feedback",
                "F10:feedback",
                "F11:feedback",
                "F12:feedback",
            ]
            .contains(&i.as_str())
        })
        .collect();
    let mut pairs = [ties[..2].to_vec(), ties[2..].to_vec()];
    pairs.iter_mut().for_each(|p| p.sort());
    assert_eq!(
        pairs,
        [
            ["F11:feedback", "F12:feedback"],
            ["F09:feedback", "F10:feedback"]
        ],
        "the earlier pair of ties first, each pair together"
    );
    // The default limit is 100.
    assert_eq!(run.ok("/v1/open")["items"], json!(open));

    // Paging: every item once, in order, full pages, no empty page after the last.
    for limit in [1, 4, 7, 36] {
        let (items, pages) = run.all("open", "", limit, Some(ROOT));
        assert_eq!(items, open, "limit {limit}");
        assert_eq!(pages, open.len().div_ceil(limit), "limit {limit}");
    }

    // Filters, alone and together, paged and not.
    let filtered = |keep: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        open.iter().filter(|i| keep(i)).cloned().collect()
    };
    let cases: Vec<(&str, Vec<Value>)> = vec![
        (
            "jurisdiction=620102",
            filtered(&|i| i["jurisdiction"].as_str().unwrap().starts_with("620102")),
        ),
        (
            "jurisdiction=620102-GWM",
            filtered(&|i| i["jurisdiction"] == "620102-GWM"),
        ),
        ("risk=high", filtered(&|i| i["risk"] == "high")),
        ("stage=meet", filtered(&|i| i["stage"] == "meet")),
        // Visits (due within the hour) and the old alerts' meets (50 min), nothing 2 h away.
        (
            "due_within=90m",
            filtered(&|i| {
                i["stage"] == "visit"
                    || (i["stage"] == "meet" && i["alert_id"].as_str().unwrap().starts_with('O'))
            }),
        ),
        (
            "jurisdiction=6201&risk=medium&stage=feedback",
            filtered(&|i| {
                i["jurisdiction"].as_str().unwrap().starts_with("6201")
                    && i["risk"] == "medium"
                    && i["stage"] == "feedback"
            }),
        ),
        ("jurisdiction=9999", vec![]),
        ("stage=sign_for", vec![]),
        ("jurisdiction=&risk=&stage=&due_within=", open.clone()),
    ];
    for (query, want) in &cases {
        assert_eq!(run.all("open", query, 1000, Some(ROOT)).0, *want, "{query}");
        assert_eq!(
            run.all("open", query, 3, Some(ROOT)).0,
            *want,
            "{query}, pages of 3"
        );
    }
    assert!(cases
        .iter()
        .all(|(q, w)| w.len() < open.len() || q.contains("jurisdiction=&")));

    // A station's token: its prefix only, narrowed further by a request, nothing outside it.
    let mine = filtered(&|i| i["jurisdiction"].as_str().unwrap().starts_with("620102"));
    assert_eq!(run.all("open", "", 5, Some(STATION)).0, mine);
    assert_eq!(
        run.all("open", "jurisdiction=620102-QLH", 5, Some(STATION))
            .0,
        filtered(&|i| i["jurisdiction"] == "620102-QLH")
    );
    assert_eq!(
        run.all("open", "jurisdiction=6201", 5, Some(STATION)).0,
        mine
    );
    let (code, outside) = run.get("/v1/open?jurisdiction=3301", Some(STATION));
    assert_eq!(
        (code, outside),
        (200, json!({ "items": [], "next_cursor": null }))
    );
    assert_eq!(run.get("/v1/open", None).0, 401);
    assert_eq!(run.get("/v1/overdue", Some("wrong")).0, 401);

    // /v1/overdue: most overdue first, with the version-1 view of the page's alerts.
    let page = run.ok("/v1/overdue");
    let items = page["items"].as_array().unwrap().clone();
    assert!(in_deadline_order(&items), "{page}");
    assert_eq!(by_entry(&items), by_entry(&overdue));
    let overdue = items;
    assert_eq!(page["next_cursor"], Value::Null);
    let v1: Vec<&str> = page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(v1, ["O4", "O3", "O2", "O1"]);
    let o4 = &page["alerts"][0];
    assert_eq!(o4["jurisdiction"], "620102-QLH");
    assert_eq!(o4["risk"], "medium");
    assert_eq!(o4["overdue_since"], iso(old(4) + HOUR));
    assert!(o4["overdue_seconds"].as_i64().unwrap() >= 600, "{o4}");
    assert_eq!(
        o4["breached"],
        json!([{ "stage": "visit", "deadline": iso(old(4) + HOUR), "level": 1 }])
    );
    let (items, pages) = run.all("overdue", "", 1, Some(ROOT));
    assert_eq!((items, pages), (overdue.clone(), 4));
    assert_eq!(
        run.all("overdue", "jurisdiction=620102&risk=high", 1, Some(ROOT))
            .0,
        overdue
            .iter()
            .filter(|i| i["alert_id"] == "O1")
            .cloned()
            .collect::<Vec<_>>()
    );
    let (_, mine) = run.get("/v1/overdue", Some(STATION));
    let mine: Vec<&str> = mine["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(mine, ["O4", "O1"]);

    // Bad parameters: 400 naming the parameter, on both lists.
    let open_cursor = run.ok("/v1/open?limit=1")["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = [
        ("limit=0", "parameter limit:"),
        ("limit=1001", "parameter limit:"),
        ("limit=ten", "parameter limit:"),
        ("risk=extreme", "parameter risk:"),
        ("stage=Visit!", "parameter stage:"),
        ("due_within=soon", "parameter due_within:"),
        ("cursor=zz", "parameter cursor:"),
        ("cursor=6f70656e", "parameter cursor:"),
        ("limit=5&limit=6", "parameter limit is given more than once"),
        ("jurisdictoin=6201", "unknown parameter \"jurisdictoin\""),
        ("jurisdiction=6201%1F", "parameter jurisdiction:"),
    ];
    for list in ["open", "overdue"] {
        for (query, says) in bad {
            let (code, body) = run.get(&format!("/v1/{list}?{query}"), Some(ROOT));
            assert_eq!(code, 400, "{list}?{query}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| e.starts_with(says)),
                "{list}?{query}: {body}"
            );
        }
    }
    let (code, body) = run.get(&format!("/v1/overdue?cursor={open_cursor}"), Some(ROOT));
    assert_eq!(code, 400);
    assert_eq!(
        body["error"],
        "parameter cursor: is a cursor of /v1/open, not of /v1/overdue"
    );

    // Stages satisfied leave /v1/open; a late one leaves /v1/overdue; a closed alert leaves
    // both. A visit due in 12 s is listed warned, then breaches and moves to /v1/overdue.
    let now = now_ms();
    let mut moving = A::new("M1", "990000-MOVE", "high", now - HOUR + 12_000);
    moving.warned_visit = true;
    run.alert(&moving).await;
    run.wait_for(
        "open",
        "jurisdiction=990000",
        &expected(&[moving.clone()], "open"),
    );
    assert_eq!(
        run.ok("/v1/open?jurisdiction=990000&stage=visit")["items"][0]["warned"],
        true,
        "its warning (15 min before) fired when it was processed"
    );
    run.disposition("e-f01", "F01", "visited", now).await;
    run.disposition("e-o1", "O1", "met", now).await;
    run.disposition("e-o2", "O2", "closed", now).await;
    for (id, done) in [
        ("F01", &["visit"][..]),
        ("O1", &["visit", "meet"]),
        ("O2", &["visit", "meet", "feedback"]),
    ] {
        alerts
            .iter_mut()
            .find(|a| a.id == id)
            .unwrap()
            .done
            .extend(done);
    }
    moving.warned_visit = false;
    moving.processed_late = true;
    alerts.push(moving);
    let open = expected(&alerts, "open");
    let overdue = expected(&alerts, "overdue");
    run.wait_for("overdue", "", &overdue);
    run.wait_for("open", "", &open);
    assert_eq!(
        ids(&overdue),
        ["O4:visit", "O3:visit", "M1:visit"],
        "O1 satisfied late and O2 closed left; M1 breached"
    );
    assert!(!ids(&open)
        .iter()
        .any(|i| i == "F01:visit" || i == "O1:meet" || i.starts_with("O2:")));
    let one_page = run.ok("/v1/open?limit=1000")["items"].clone();
    assert_eq!(
        run.all("open", "", 5, Some(ROOT)).0,
        one_page.as_array().unwrap().clone()
    );
    assert_no_personal_data(&run.env, &[run.p.log_text()], &[]);
}

/// Today's date in the display zone, as `/v1/stations` names it.
fn today() -> String {
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    jiff::Timestamp::now().to_zoned(zone).date().to_string()
}

fn row(j: &str, stage: &str, on_time: i64, late: i64, breached: i64, open: i64) -> Value {
    json!({ "jurisdiction": j, "stage": stage, "on_time": on_time, "late": late,
            "breached": breached, "open": open })
}

#[tokio::test(flavor = "multi_thread")]
async fn stations_count_today_per_jurisdiction_and_stage_and_the_stages_open_now() {
    let run = Run::start("board-stations");
    let now = now_ms();
    let alerts = [
        A::new("S1", "620102-GWM", "high", now),
        A::new("S2", "620102-GWM", "medium", now - 70 * MIN),
        A::new("S3", "330100-HZ", "low", now),
        A::new("S4", "620102-QLH", "high", now - 70 * MIN),
    ];
    for a in &alerts {
        run.alert(a).await;
    }
    // Applied before the dispositions (one held for its alert would apply before any clock).
    let mut breached: Vec<A> = alerts.to_vec();
    for a in breached.iter_mut().filter(|a| a.issued < now) {
        a.processed_late = true;
    }
    run.wait_for("overdue", "", &expected(&breached, "overdue"));
    // S1 visited on time; S2 (visit breached when processed) met: visit late, meet on time.
    run.disposition("e-s1", "S1", "visited", now).await;
    run.disposition("e-s2", "S2", "met", now).await;
    let date = today();
    let want = json!({
        "date": date,
        "timezone": "Asia/Shanghai",
        "rows": [
            row("330100-HZ", "feedback", 0, 0, 0, 1),
            row("620102-GWM", "feedback", 0, 0, 0, 2),
            row("620102-GWM", "meet", 1, 0, 0, 1),
            row("620102-GWM", "visit", 1, 1, 1, 0),
            row("620102-QLH", "feedback", 0, 0, 0, 1),
            row("620102-QLH", "meet", 0, 0, 0, 1),
            row("620102-QLH", "visit", 0, 0, 1, 1),
        ],
    });
    let mut last = Value::Null;
    let reached = (0..400).any(|_| {
        last = run.ok("/v1/stations");
        last == want || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(
        reached,
        "stations never became\n{want}\nlast:\n{last}\nlog:\n{}",
        run.p.log_text()
    );
    assert_eq!(run.ok(&format!("/v1/stations?date={date}")), want);

    // The open counts agree with the lists.
    let listed: usize = ["open", "overdue"]
        .iter()
        .map(|l| run.all(l, "", 1000, Some(ROOT)).0.len())
        .sum();
    let counted: i64 = want["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["open"].as_i64().unwrap())
        .sum();
    assert_eq!(listed as i64, counted);

    // A station sees its jurisdictions only.
    let (code, mine) = run.get("/v1/stations", Some(STATION));
    assert_eq!(code, 200);
    let mine: Vec<&str> = mine["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jurisdiction"].as_str().unwrap())
        .collect();
    assert!(
        !mine.is_empty() && mine.iter().all(|j| j.starts_with("620102")),
        "{mine:?}"
    );

    // Another day: nothing counted then, and no open counts.
    assert_eq!(
        run.ok("/v1/stations?date=2000-01-01"),
        json!({ "date": "2000-01-01", "timezone": "Asia/Shanghai", "rows": [] })
    );
    for (query, says) in [
        ("date=2026-02-30", "parameter date:"),
        ("date=today", "parameter date:"),
        ("day=2026-01-01", "unknown parameter \"day\""),
    ] {
        let (code, body) = run.get(&format!("/v1/stations?{query}"), Some(ROOT));
        assert_eq!(code, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.starts_with(says)),
            "{query}: {body}"
        );
    }
    assert_eq!(run.get("/v1/stations", None).0, 401);
}
