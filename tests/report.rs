//! `fraud-sla report` (docs/contract.md §10.5) end to end: the built binary against a real
//! Kafka-protocol broker (tansu), the audit against what the real processor published.
//!
//! - a history with known answers, produced live with deadlines of seconds: exact rows, outcomes,
//!   days, skipped (dead-letter-worthy) messages, `--jurisdiction`, the same JSON twice, the CSV;
//! - `--audit` against the processor's own escalations (nothing missed, nothing false), then
//!   against a copy of them with one page deleted and one added (exit 3, exactly those two);
//! - the HTML in Chinese and English, its table read in a headless Chromium, screenshots in
//!   `target/report-screenshots/`;
//! - bad arguments (exit 2), an empty window (exit 0), brokers that do not answer (exit 1).

mod common;
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const S: i64 = 1_000;

/// Deadlines of seconds; low-risk alerts require only `feedback` (docs/contract.md §10.1).
const SLA: &str = r#"
[sla]
visit_within = "4s"
meet_within = "8s"
feedback_within = "12s"
warn_before = "2s"
escalate_after = ["0s", "2s"]
notify = [["station_duty_officer"], ["station_chief"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096

[sla.risk.low]
stages = ["feedback"]
"#;

/// What one run of the binary said.
struct Ran {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&self.stdout),
                self.stderr
            )
        })
    }
}

fn report(config: &Path, args: &[&str]) -> Ran {
    let out = Command::new(bin())
        .arg("report")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn produce_json(p: &FutureProducer, topic: &str, key: &str, value: &str) {
    let rec: FutureRecord<'_, str, str> = FutureRecord::to(topic).key(key).payload(value);
    p.send(rec, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

fn alert(id: &str, issued_at: i64, jurisdiction: &str, risk: &str) -> String {
    json!({
        "alert_id": id, "issued_at": iso(issued_at), "jurisdiction": jurisdiction, "risk": risk,
        "channel": "96110", "subject": { "name": "SECRET-NAME-张三", "phone": "13800001234" }
    })
    .to_string()
}

fn disposition(event: &str, id: &str, kind: &str, at: i64, outcome: Option<&str>) -> String {
    let mut v = json!({
        "event_id": event, "alert_id": id, "kind": kind, "occurred_at": iso(at),
        "officer_id": "620102-0457", "note": "SECRET-NOTE"
    });
    if let Some(o) = outcome {
        v["outcome"] = o.into();
    }
    v.to_string()
}

async fn sleep_until(at: i64) {
    let wait = at - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// The known history, issued at `t0`; times are seconds after it.
///
/// | alert | where | risk | what happens | pages (warning 0, breach 1, 2) |
/// |---|---|---|---|---|
/// | A1 | 620102-GWM | medium | visited 1, met 3, feedback 5 (dissuaded) | none |
/// | A2 | 620102-GWM | high | visited 5 (late) twice, met 7, feedback 9 (defrauded) | visit 0 1, meet 0 |
/// | A3 | 620102-GWM | medium | nothing | all nine |
/// | A4 | 620103-QLH | medium | met 1, closed 3 | none |
/// | A5 | 620103-QLH | low (feedback only) | feedback 13 (false_positive, late) | feedback 0 1 |
/// | A6 | 110105-CYQ | high | acknowledged 1 (satisfies nothing) | all nine |
///
/// Plus a second copy of A6 (another place and risk: the first copy wins), an alert without
/// `risk` and a disposition that is not JSON (both dead-lettered by the processor, skipped by
/// the report).
async fn produce_history(env: &Env, p: &FutureProducer, t0: i64) {
    let t = &env.topics;
    sleep_until(t0).await;
    for (id, place, risk) in [
        ("A1", "620102-GWM", "medium"),
        ("A2", "620102-GWM", "high"),
        ("A3", "620102-GWM", "medium"),
        ("A4", "620103-QLH", "medium"),
        ("A5", "620103-QLH", "low"),
        ("A6", "110105-CYQ", "high"),
    ] {
        produce_json(p, &t.alerts, id, &alert(id, t0, place, risk)).await;
    }
    produce_json(p, &t.alerts, "A6", &alert("A6", t0, "620102-GWM", "low")).await;
    let no_risk = json!({"alert_id": "BAD-1", "issued_at": iso(t0), "jurisdiction": "620102-GWM"});
    produce_json(p, &t.alerts, "BAD-1", &no_risk.to_string()).await;
    let steps: [(i64, &str, &str, &str, Option<&str>); 11] = [
        (1, "A1", "a1-v", "visited", None),
        (1, "A4", "a4-m", "met", None),
        (1, "A6", "a6-a", "acknowledged", None),
        (3, "A1", "a1-m", "met", None),
        (3, "A4", "a4-c", "closed", None),
        (5, "A1", "a1-f", "feedback", Some("dissuaded")),
        (5, "A2", "a2-v", "visited", None),
        (5, "A2", "a2-v", "visited", None),
        (7, "A2", "a2-m", "met", None),
        (9, "A2", "a2-f", "feedback", Some("defrauded")),
        (13, "A5", "a5-f", "feedback", Some("false_positive")),
    ];
    for (i, (at, id, event, kind, outcome)) in steps.iter().enumerate() {
        let at = t0 + at * S;
        sleep_until(at).await;
        produce_json(
            p,
            &t.dispositions,
            id,
            &disposition(event, id, kind, at, *outcome),
        )
        .await;
        if i == 2 {
            produce_json(p, &t.dispositions, "A2", "{oops").await;
        }
    }
}

/// The pages the rules make due for the history (table above), sorted.
fn pages() -> Vec<String> {
    let all = |a: &str| {
        ["visit", "meet", "feedback"]
            .iter()
            .flat_map(move |s| (0..3).map(move |l| format!("{a}:{s}:{l}")))
            .collect::<Vec<_>>()
    };
    let mut v: Vec<String> = ["A2:visit:0", "A2:visit:1", "A2:meet:0"]
        .iter()
        .chain(&["A5:feedback:0", "A5:feedback:1"])
        .map(|s| s.to_string())
        .chain(all("A3"))
        .chain(all("A6"))
        .collect();
    v.sort();
    v
}

fn row(place: &str, stage: &str, n: [u64; 5], levels: &[(u8, u64)], p: [Option<f64>; 2]) -> Value {
    let levels: serde_json::Map<String, Value> = levels
        .iter()
        .map(|(l, k)| (l.to_string(), json!(k)))
        .collect();
    json!({
        "jurisdiction": place, "stage": stage, "alerts": n[0], "on_time": n[1], "late": n[2],
        "unsatisfied": n[3], "breached": n[4], "breaches_by_level": levels,
        "p50_seconds": p[0], "p90_seconds": p[1],
    })
}

/// Rows of the history, as the table above makes them.
fn expected_rows() -> Vec<Value> {
    let s = |x: f64| Some(x);
    vec![
        row(
            "110105-CYQ",
            "visit",
            [1, 0, 0, 1, 1],
            &[(1, 1), (2, 1)],
            [None, None],
        ),
        row(
            "110105-CYQ",
            "meet",
            [1, 0, 0, 1, 1],
            &[(1, 1), (2, 1)],
            [None, None],
        ),
        row(
            "110105-CYQ",
            "feedback",
            [1, 0, 0, 1, 1],
            &[(1, 1), (2, 1)],
            [None, None],
        ),
        row(
            "620102-GWM",
            "visit",
            [3, 1, 1, 1, 2],
            &[(1, 2), (2, 1)],
            [s(1.0), s(5.0)],
        ),
        row(
            "620102-GWM",
            "meet",
            [3, 2, 0, 1, 1],
            &[(1, 1), (2, 1)],
            [s(3.0), s(7.0)],
        ),
        row(
            "620102-GWM",
            "feedback",
            [3, 2, 0, 1, 1],
            &[(1, 1), (2, 1)],
            [s(5.0), s(9.0)],
        ),
        row(
            "620103-QLH",
            "visit",
            [1, 1, 0, 0, 0],
            &[],
            [s(1.0), s(1.0)],
        ),
        row("620103-QLH", "meet", [1, 1, 0, 0, 0], &[], [s(1.0), s(1.0)]),
        row(
            "620103-QLH",
            "feedback",
            [2, 0, 1, 1, 1],
            &[(1, 1)],
            [s(13.0), s(13.0)],
        ),
    ]
}

/// The local date (Asia/Shanghai, no daylight saving) of `ms`.
fn shanghai_date(ms: i64) -> String {
    iso(ms + 8 * 3_600 * S)[..10].to_owned()
}

/// A config like `env`'s, reading escalations from `escalations`.
fn config_with_escalations(env: &Env, escalations: &str) -> PathBuf {
    let topics = Topics {
        escalations: escalations.to_owned(),
        ..env.topics.clone()
    };
    let dir = env.dir.path().join("copy");
    std::fs::create_dir_all(&dir).unwrap();
    write_config(
        &dir,
        &env.broker,
        &env.redis,
        &topics,
        free_port(),
        &env.sla,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_history_gives_exact_rows_and_the_audit_agrees_with_the_processor() {
    let env = Env::new("report", 2, SLA);
    let mut processor = env.processor();
    processor.wait_ready(Duration::from_secs(40));
    let config = env.config(processor.http_port);
    let prod = env.broker.producer();
    let esc = env.escalations();
    let t0 = now_ms() + 1_500;
    produce_history(&env, &prod, t0).await;
    let want = pages();
    let published = collect_all(&esc, Duration::from_secs(60), &want, || {
        processor.log_text()
    });

    let (from, to) = (iso(t0 - 10 * S), iso(t0 + 20 * S));
    sleep_until(t0 + 21 * S).await;
    let window = ["--from", from.as_str(), "--to", to.as_str()];
    let first = report(&config, &window);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let r = first.json();
    assert_eq!(r["from"], iso(t0 - 10 * S));
    assert_eq!(r["to"], iso(t0 + 20 * S));
    let version = fraud_sla::config::Config::load(Some(&config))
        .unwrap()
        .policy()
        .version()
        .to_owned();
    assert_eq!(r["policy_version"], version);
    assert_eq!(r["rows"], Value::Array(expected_rows()), "{:#}", r["rows"]);
    assert_eq!(
        r["outcomes"],
        json!({"dissuaded": 1, "defrauded": 1, "unreachable": 0, "false_positive": 1, "refused": 0})
    );
    assert_eq!(r["audit"], Value::Null, "no --audit");
    assert_eq!(r["alerts"], 6);
    let days: Vec<(&str, u64)> = r["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap(), d["alerts"].as_u64().unwrap()))
        .collect();
    assert_eq!(days, [(shanghai_date(t0).as_str(), 6)]);
    assert_eq!(
        r["skipped"],
        json!([
            {"topic": env.topics.alerts, "reason": "missing_field:risk", "count": 1},
            {"topic": env.topics.dispositions, "reason": "invalid_json", "count": 1},
        ])
    );

    // The same window again: the same bytes.
    let second = report(&config, &window);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        first.stdout == second.stdout,
        "the same window twice differs"
    );

    // A jurisdiction prefix.
    let only = report(
        &config,
        &[&window[..], &["--jurisdiction", "6201"]].concat(),
    );
    let only = only.json();
    assert_eq!(only["alerts"], 5);
    assert_eq!(only["jurisdiction_prefix"], "6201");
    assert_eq!(only["rows"], Value::Array(expected_rows()[3..].to_vec()));

    // The audit against what the processor published: it agrees on every page.
    let audited = report(&config, &[&window[..], &["--audit"]].concat());
    assert_eq!(audited.code, 0, "{}", audited.stderr);
    let a = audited.json()["audit"].clone();
    assert_eq!(a["missed"], json!([]), "{a:#}");
    assert_eq!(a["false"], json!([]), "{a:#}");
    assert_eq!(a["expected"], want.len());
    assert_eq!(a["published"], want.len());
    let p50 = a["publish_delay_ms_p50"].as_i64().expect("a delay");
    let p99 = a["publish_delay_ms_p99"].as_i64().expect("a delay");
    assert!((0..2_000).contains(&p50) && p50 <= p99, "{a:#}");

    // A copy of the escalations without one page and with one the rules never make due.
    let copy = format!("{}.copy", env.topics.escalations);
    env.broker.create_topic(&copy, 1);
    let dropped = "A3:meet:1";
    for rec in &published {
        let e = rec.json();
        if e["escalation_id"] != dropped {
            produce_json(
                &prod,
                &copy,
                e["alert_id"].as_str().unwrap(),
                &e.to_string(),
            )
            .await;
        }
    }
    let false_page = json!({
        "escalation_id": "A1:visit:1", "alert_id": "A1", "stage": "visit", "level": 1,
        "kind": "breach", "jurisdiction": "620102-GWM", "risk": "medium",
        "deadline": iso(t0 + 4 * S), "due_at": iso(t0 + 4 * S), "fired_at": iso(t0 + 4 * S),
        "notify": ["station_duty_officer"]
    });
    produce_json(&prod, &copy, "A1", &false_page.to_string()).await;
    let found = report(
        &config_with_escalations(&env, &copy),
        &[&window[..], &["--audit"]].concat(),
    );
    assert_eq!(found.code, 3, "{}", found.stderr);
    let a = found.json()["audit"].clone();
    assert_eq!(a["missed"], json!([dropped]));
    assert_eq!(a["false"], json!(["A1:visit:1"]));
    // An escalations topic never created (nothing ever published): every page missed.
    let never = format!("{}-never-created", env.topics.escalations);
    let none = report(
        &config_with_escalations(&env, &never),
        &[&window[..], &["--audit"]].concat(),
    );
    assert_eq!(none.code, 3, "{}", none.stderr);
    let a = none.json()["audit"].clone();
    assert_eq!(a["missed"], json!(pages()));
    assert_eq!(a["false"], json!([]));

    // CSV: a BOM, the header, one line per row.
    let csv = report(&config, &[&window[..], &["--format", "csv"]].concat());
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let text = String::from_utf8(csv.stdout).unwrap();
    let text = text.strip_prefix('\u{feff}').expect("a byte-order mark");
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "jurisdiction,stage,alerts,on_time,late,unsatisfied,breached,level_1,level_2,p50_seconds,p90_seconds,stage_label"
    );
    assert_eq!(lines.len(), 1 + 9);
    assert_eq!(lines[4], "620102-GWM,visit,3,1,1,1,2,2,1,1,5,上门");
    assert_eq!(lines[7], "620103-QLH,visit,1,1,0,0,0,0,0,1,1,上门");
    assert_eq!(lines[1], "110105-CYQ,visit,1,0,0,1,1,1,1,,,上门");

    // HTML: Chinese by default, English on request; read in a real browser.
    let dir = screenshot_dir_for_reports();
    for (lang, file, stage) in [
        ("zh-CN", "report-zh.html", "上门"),
        ("en", "report-en.html", "Visit"),
    ] {
        let out = dir.join(file);
        let ran = report(
            &config,
            &[
                &window[..],
                &["--audit", "--lang", lang, "--out", out.to_str().unwrap()],
            ]
            .concat(),
        );
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(ran.stdout.is_empty(), "the report went to --out");
        let html = std::fs::read_to_string(&out).unwrap();
        check_html(&html, lang, stage);
        check_in_browser(&out, lang, stage).await;
    }

    assert_no_personal_data_in(&[&first.stdout, text.as_bytes()]);
    assert_eq!(processor.sigterm().code(), Some(0));
}

/// Screenshots and the HTML they show: `target/report-screenshots/`.
fn screenshot_dir_for_reports() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cells of the table with `id`, row by row (tags stripped, entities of the escaper
/// decoded): the page's own markup, read without a browser.
fn table(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table #{id}"));
    let end = start + html[start..].find("</table>").expect("the table ends");
    let body = &html[start..end];
    let body = &body[body.find("<tbody>").expect("a body")..];
    body.split("<tr")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let inner = &td[td.find('>').unwrap() + 1..];
                    let inner = &inner[..inner.find("</td>").unwrap()];
                    strip_tags(inner)
                })
                .collect()
        })
        .collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn check_html(html: &str, lang: &str, visit: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(&format!("<html lang=\"{lang}\">")));
    assert!(!html.contains("<script"), "no script");
    assert!(html.contains("@media print"), "print styles");
    for chart in ["stage-chart", "outcome-chart", "day-chart"] {
        assert!(
            html.contains(&format!("<svg class=\"chart\" id=\"{chart}\"")),
            "{chart}"
        );
    }
    let rows = table(html, "rows");
    assert_eq!(rows.len(), 9);
    // 辖区, 环节, alerts, on time, late, not done, rate, breached, level 1, level 2, p50, p90.
    assert_eq!(
        rows[3][..10],
        [
            "620102-GWM",
            visit,
            "3",
            "1",
            "1",
            "1",
            "33.3%",
            "2",
            "2",
            "1"
        ]
    );
    let outcomes = table(html, "outcome-table");
    assert_eq!(outcomes[0][1], "1");
    assert!(
        html.contains("id=\"dissuasion-rate\">33.3%<"),
        "劝阻成功率 1 of 3"
    );
    let days = table(html, "day-table");
    assert_eq!(days.len(), 1);
    assert!(html.contains("class=\"verdict good\""), "the audit passed");
    let skipped = table(html, "skipped-table");
    assert_eq!(skipped.len(), 2);
}

async fn check_in_browser(file: &Path, lang: &str, visit: &str) {
    let b = Browser::start(1200, 1600).await;
    b.goto(&format!("file://{}", file.display())).await;
    let cells = b
        .wait(
            "the table of rows",
            Duration::from_secs(10),
            "return [...document.querySelectorAll('#rows tbody tr')]
                .map(tr => [...tr.cells].map(td => td.innerText.trim()));",
            Value::Null,
        )
        .await;
    assert_eq!(cells.as_array().map(Vec::len), Some(9), "{cells:#}");
    assert_eq!(cells[3][0], "620102-GWM");
    assert_eq!(cells[3][1], visit);
    assert_eq!(cells[3][2], "3");
    let lang_seen = b.js("return document.documentElement.lang;").await;
    assert_eq!(lang_seen, lang);
    let charts = b
        .js("return [...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().height > 50);")
        .await;
    assert_eq!(charts, json!([true, true, true]), "three charts drawn");
    let png = b.client.screenshot().await.unwrap();
    std::fs::write(
        screenshot_dir_for_reports().join(format!("report-{lang}.png")),
        png,
    )
    .unwrap();
    b.close().await;
}

fn assert_no_personal_data_in(outputs: &[&[u8]]) {
    for out in outputs {
        let text = String::from_utf8_lossy(out);
        for secret in PERSONAL_DATA {
            assert!(!text.contains(secret), "{secret} in a report");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_window_is_an_empty_report() {
    let broker = Broker::start();
    let topics = Topics::new("report-empty", 2);
    topics.create(&broker);
    let dir = tmpdir();
    let config = dir.path().join("report.toml");
    let kafka = format!(
        "[kafka]\nbrokers = \"{}\"\nalerts_topic = \"{}\"\ndispositions_topic = \"{}\"\n\
         escalations_topic = \"{}\"\n{SLA}",
        broker.bootstrap(),
        topics.alerts,
        topics.dispositions,
        topics.escalations
    );
    std::fs::write(&config, kafka).unwrap();
    let prod = broker.producer();
    // Something outside the window: issued a day before it.
    let now = now_ms();
    produce_json(
        &prod,
        &topics.alerts,
        "OLD",
        &alert("OLD", now - 86_400 * S, "620102-GWM", "high"),
    )
    .await;
    let ran = report(
        &config,
        &[
            "--from",
            &iso(now - 3_600 * S),
            "--to",
            &iso(now - 60 * S),
            "--audit",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let r = ran.json();
    assert_eq!(r["rows"], json!([]));
    assert_eq!(r["alerts"], 0);
    assert_eq!(
        r["outcomes"],
        json!({"dissuaded": 0, "defrauded": 0, "unreachable": 0, "false_positive": 0, "refused": 0})
    );
    assert_eq!(r["audit"]["missed"], json!([]));
    assert_eq!(r["audit"]["false"], json!([]));
    assert_eq!(r["audit"]["publish_delay_ms_p50"], Value::Null);
    // The empty report renders too.
    let html = report(
        &config,
        &[
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--format",
            "html",
        ],
    );
    assert_eq!(html.code, 0, "{}", html.stderr);
    assert!(String::from_utf8_lossy(&html.stdout).contains("id=\"empty\""));
}

#[test]
fn bad_arguments_exit_2_with_a_sentence() {
    let dir = tmpdir();
    let config = dir.path().join("report.toml");
    // Nothing listens there: arguments are checked before the brokers are asked.
    std::fs::write(
        &config,
        format!("[kafka]\nbrokers = \"127.0.0.1:{}\"\n", free_port()),
    )
    .unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--from", "2026-11-23", "--to", "2026-11-22"],
            "is after --to",
        ),
        (
            &[
                "--from",
                "2026-11-22",
                "--to",
                "2026-11-23",
                "--format",
                "pdf",
            ],
            "invalid value 'pdf'",
        ),
        (
            &["--from", "yesterday", "--to", "2026-11-23"],
            "is not a time",
        ),
        (
            &["--from", "2026-11-22T10:00:00", "--to", "2026-11-23"],
            "with an offset",
        ),
    ];
    for (args, says) in cases {
        let ran = report(&config, args);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(says), "{args:?}: {}", ran.stderr);
    }
}

#[test]
fn brokers_that_do_not_answer_exit_1_naming_them() {
    let dir = tmpdir();
    let config = dir.path().join("report.toml");
    let brokers = format!("127.0.0.1:{}", free_port());
    std::fs::write(&config, format!("[kafka]\nbrokers = \"{brokers}\"\n")).unwrap();
    let ran = report(&config, &["--from", "2026-11-22", "--to", "2026-11-23"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains(&format!("cannot reach the Kafka brokers at {brokers}")),
        "{}",
        ran.stderr
    );
}

/// The example report of the docs: six days of realistic traffic (the simulator's alerts and
/// dispositions, with their record timestamps), a little worse each day, reported in Chinese.
/// Run by hand: `cargo test --test report docs_example -- --ignored`; writes
/// `target/report-screenshots/example.html` and `example.png`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn docs_example() {
    use fraud_sla::simulate::{Generator, Topic};
    use rand::{Rng, SeedableRng};

    let broker = Broker::start();
    let topics = Topics::new("report-example", 2);
    topics.create(&broker);
    let dir = tmpdir();
    let config = dir.path().join("report.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{}\"\nalerts_topic = \"{}\"\ndispositions_topic = \"{}\"\n",
            broker.bootstrap(),
            topics.alerts,
            topics.dispositions
        ),
    )
    .unwrap();
    let policy = fraud_sla::config::Config::load(Some(&config))
        .unwrap()
        .policy();
    let prod = broker.producer();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261122);
    // Six local days ending at the last midnight in Shanghai (younger than a broker's default
    // retention of seven days).
    let day = 86_400 * S;
    let today = (now_ms() + 8 * 3_600 * S) / day * day - 8 * 3_600 * S;
    for d in 0..6 {
        let mut g = Generator::new(
            policy.clone(),
            0.12 + 0.03 * d as f64,
            0.04 + 0.01 * d as f64,
            d,
        );
        let start = today - (6 - i64::from(d)) * day;
        for _ in 0..300 {
            let at = start + rng.random_range(0..day - 8 * 3_600 * S);
            let plan = g.next_plan(&mut rng, at);
            for m in plan.messages {
                let topic = match m.topic {
                    Topic::Alerts => &topics.alerts,
                    Topic::Dispositions => &topics.dispositions,
                };
                let rec: FutureRecord<'_, str, str> = FutureRecord::to(topic)
                    .key(m.key.as_str())
                    .payload(m.payload.as_str())
                    .timestamp(m.send_at);
                prod.send(rec, Duration::from_secs(10))
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
            }
        }
    }
    let out = screenshot_dir_for_reports().join("example.html");
    let ran = report(
        &config,
        &[
            "--from",
            &iso(today - 6 * day),
            "--to",
            &iso(today),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let b = Browser::start(1200, 3300).await;
    b.goto(&format!("file://{}", out.display())).await;
    let png = b.client.screenshot().await.unwrap();
    std::fs::write(screenshot_dir_for_reports().join("example.png"), png).unwrap();
    b.close().await;
}
