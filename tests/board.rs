//! The operators' board (docs/contract.md §10.4) in a real browser: Debian's headless Chromium,
//! driven over WebDriver (chromedriver, fantoccini), on the built processor with a real
//! redis-server and a real Kafka-protocol broker (tansu).
//!
//! - the page in Chinese by default and in English after the switch, remembered after a reload;
//!   its files, their types, caching and weight, and the time to the first rendered data;
//! - a silent alert in the at-risk list with a ticking countdown, moving to the red overdue list
//!   when its deadline passes, escalating, and leaving the lists when a disposition satisfies it,
//!   all without a reload;
//! - filters and the URL agreeing both ways, an invalid filter's message, an unknown alert, the
//!   alert and station views;
//! - a station's token never showing another station's alert (lists, alert view, live feed), a
//!   wrong token getting the login again;
//! - the board as a duty desk sees it, with realistic content, for the screenshots.
//!
//! Screenshots go to `target/board-screenshots/`. Nothing waits by sleeping: every check polls
//! the DOM until its condition holds or a deadline passes, and absence is asserted only after
//! something that must come later has shown.

mod common;
use common::*;
use fantoccini::Locator;
use rdkafka::producer::FutureProducer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(30);

/// One browser and one processor at a time: the timing checks need the machine's two cores.
/// (Each test has its own runtime; tokio's mutex works across them and is never poisoned.)
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Deadlines of seconds, so a stage passes its deadline while the test watches.
const BOARD_SLA: &str = r#"
[sla]
visit_within = "12s"
meet_within = "40s"
feedback_within = "60s"
warn_before = "6s"
escalate_after = ["0s", "3s"]
notify = [["station_duty_officer"], ["station_chief"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "1h"
max_clock_skew = "5m"
max_message_bytes = 4096

# A stage due hours away, as with the contract's 1 h / 2 h / 6 h: listed without a window.
[sla.risk.low]
feedback_within = "2h"
"#;

/// A processor, its producer, and a browser on its board.
struct Board {
    env: Env,
    p: Processor,
    prod: FutureProducer,
    b: Browser,
    base: String,
    /// The token the test's own API reads use.
    token: Option<String>,
}

impl Board {
    async fn start(name: &str, sla: &str) -> Board {
        Self::start_with(name, sla, &[], None).await
    }

    /// `sla` is the config's text after `[http] listen` (so it may add `[http]` keys first).
    async fn start_with(
        name: &str,
        sla: &str,
        env_vars: &[(&str, &str)],
        token: Option<&str>,
    ) -> Board {
        let env = Env::new(name, 2, sla);
        let port = free_port();
        let config = env.config(port);
        let log = env.dir.path().join(format!("fraud-sla-{port}.log"));
        let p = Processor::start_with_env(&config, port, &log, env_vars);
        p.wait_ready(WITHIN);
        let prod = env.broker.producer();
        let b = Browser::start(1366, 768).await;
        Board {
            base: format!("http://127.0.0.1:{port}/"),
            env,
            p,
            prod,
            b,
            token: token.map(str::to_owned),
        }
    }

    async fn alert(&self, id: &str, jurisdiction: &str, risk: &str, issued_at: i64) {
        let mut v: Value = serde_json::from_str(&alert_json(id, issued_at, risk)).unwrap();
        v["jurisdiction"] = jurisdiction.into();
        let t = &self.env.topics;
        produce(&self.prod, &t.alerts, Some(id), &v.to_string()).await;
    }

    async fn disposition(&self, event_id: &str, alert_id: &str, kind: &str, at: i64) {
        let value = disposition_json(event_id, alert_id, kind, at);
        let t = &self.env.topics;
        produce(&self.prod, &t.dispositions, Some(alert_id), &value).await;
    }

    fn api(&self, path: &str) -> (u16, String) {
        http_get(self.p.http_port, path, self.token.as_deref()).expect("HTTP answers")
    }

    /// Waits until the processor knows every alert of `ids` (the API, not the page).
    async fn known(&self, ids: &[&str]) {
        let start = Instant::now();
        for id in ids {
            while self.api(&format!("/v1/alerts/{id}")).0 != 200 {
                assert!(start.elapsed() < WITHIN, "{id} never processed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Opens the board at `hash` with a full page load, and waits for its first data.
    async fn open(&self, hash: &str) {
        self.b.goto("about:blank").await;
        self.b.goto(&format!("{}{hash}", self.base)).await;
        self.rendered().await;
    }

    async fn rendered(&self) {
        self.b
            .wait(
                "the first data rendered",
                WITHIN,
                "return document.body.dataset.rendered === '1';",
                Value::Null,
            )
            .await;
    }

    async fn live(&self) {
        self.b
            .wait(
                "the event stream connected",
                WITHIN,
                "return document.querySelector('#conn').dataset.state === 'live';",
                Value::Null,
            )
            .await;
    }

    /// Waits until `list` (`atrisk`, `overdue`, `resolved`) has a row of `alert`'s `stage`.
    async fn row(&self, list: &str, alert: &str, stage: &str) -> Value {
        self.b
            .wait(
                &format!("{alert} {stage} in {list}"),
                WITHIN,
                "const [list, alert, stage] = arguments[0];
                 const r = [...document.querySelectorAll(`#${list} [data-alert]`)]
                   .find(r => r.dataset.alert === alert && r.dataset.stage === stage);
                 return r ? { text: r.innerText, cls: r.className, level: r.dataset.level || null } : null;",
                json!([list, alert, stage]),
            )
            .await
    }

    /// Waits until `list` has no row of `alert` (of any stage in `stages`).
    async fn gone(&self, list: &str, alert: &str, stages: &[&str], within: Duration) {
        self.b
            .wait(
                &format!("{alert} {stages:?} to leave {list}"),
                within,
                "const [list, alert, stages] = arguments[0];
                 return ![...document.querySelectorAll(`#${list} [data-alert]`)]
                   .some(r => r.dataset.alert === alert && stages.includes(r.dataset.stage));",
                json!([list, alert, stages]),
            )
            .await;
    }

    /// The alert ids the page shows anywhere, as text.
    async fn text(&self) -> String {
        self.b
            .js("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_speaks_chinese_then_english_and_remembers() {
    let _one = one_at_a_time().await;
    let board = Board::start("board-lang", BOARD_SLA).await;
    let b = &board.b;

    // The files: compiled in, typed, revalidated, small.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut weight = 0;
    for (path, ty) in [
        ("", "text/html"),
        ("board.js", "text/javascript"),
        ("board.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = client
            .get(format!("{}{path}", board.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "/{path}");
        let h = r.headers().clone();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(ty),
            "/{path}"
        );
        assert!(
            h.contains_key("cache-control") && h.contains_key("etag"),
            "/{path}"
        );
        let body = r.bytes().await.unwrap();
        if path != "favicon.svg" {
            weight += body.len();
        }
    }
    println!("page weight (html + js + css): {weight} bytes");
    assert!(weight < 150_000, "the page weighs {weight} bytes");

    board.open("#/").await;
    let page = b
        .js("return {
               lang: document.documentElement.lang,
               tab: document.querySelector('.tabs a[data-nav=duty]').textContent,
               overdue: document.querySelector('#overdue h2').textContent,
               login: document.querySelector('#login').hidden,
               clock: document.querySelector('#clock').textContent };")
        .await;
    assert_eq!(page["lang"], "zh-CN", "{page}");
    assert_eq!(page["tab"], "值班看板", "{page}");
    assert!(
        page["overdue"].as_str().unwrap().contains("已超时"),
        "{page}"
    );
    assert_eq!(page["login"], true, "no token configured: no login");
    assert!(
        page["clock"].as_str().unwrap().contains("(Asia/Shanghai)"),
        "times name their zone: {page}"
    );

    let timing = b
        .js("const n = performance.getEntriesByType('navigation')[0];
             const r = performance.getEntriesByName('board-rendered')[0];
             return { dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,
                      rendered: r ? r.startTime : null, bytes: n.transferSize };")
        .await;
    println!(
        "Chromium: DOMContentLoaded {:.0} ms, load {:.0} ms, first data rendered {:.0} ms",
        timing["dcl"].as_f64().unwrap_or(-1.0),
        timing["load"].as_f64().unwrap_or(-1.0),
        timing["rendered"].as_f64().unwrap_or(-1.0)
    );
    board.live().await;
    b.screenshot("duty-zh-empty").await;

    b.click("#lang").await;
    let english = "return document.documentElement.lang === 'en'
        && document.querySelector('.tabs a[data-nav=duty]').textContent === 'Duty board'
        && document.querySelector('#overdue h2').textContent.includes('Overdue');";
    b.wait("English after the switch", WITHIN, english, Value::Null)
        .await;
    b.client.refresh().await.unwrap();
    board.rendered().await;
    b.wait("English after a reload", WITHIN, english, Value::Null)
        .await;
    assert_eq!(
        b.js("return localStorage.getItem('fraud-sla.lang');").await,
        "en"
    );
    b.click("#lang").await;
    b.wait(
        "Chinese again",
        WITHIN,
        "return document.querySelector('.tabs a[data-nav=duty]').textContent === '值班看板';",
        Value::Null,
    )
    .await;
    board.b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_alert_turns_red_when_its_deadline_passes_and_a_disposition_clears_it() {
    let _one = one_at_a_time().await;
    let board = Board::start("board-live", BOARD_SLA).await;
    let b = &board.b;
    board.open("#/").await;
    board.live().await;
    b.js("window.__noReload = 'still the same page'; return 1;")
        .await;

    let id = "GA-620102-20261122-000777";
    let issued = now_ms();
    board.alert(id, "620102-GWM", "high", issued).await;

    // At risk, with a countdown that ticks.
    let first = board.row("atrisk", id, "visit").await;
    let countdown = |v: &Value| {
        v["text"]
            .as_str()
            .unwrap()
            .split('\t')
            .next()
            .unwrap()
            .to_owned()
    };
    let before = countdown(&first);
    // Each time shown in a row carries the zone's offset (§10.3: local time with its zone).
    let text = first["text"].as_str().unwrap();
    assert!(text.contains(" +08:00"), "{text}");
    b.wait(
        "the countdown to tick",
        Duration::from_secs(5),
        "const [alert, before] = arguments[0];
         const r = document.querySelector(`#atrisk tr[data-alert='${alert}'][data-stage=visit] td.cd`);
         return r && r.textContent !== before;",
        json!([id, before]),
    )
    .await;
    board.row("atrisk", id, "meet").await;
    board.row("atrisk", id, "feedback").await;
    b.screenshot("duty-zh-at-risk").await;

    // The deadline passes: red in the overdue list, without a reload.
    let deadline = issued + 12_000;
    let red = board.row("overdue", id, "visit").await;
    let late_ms = now_ms() - deadline;
    println!("overdue shown {late_ms} ms after the deadline");
    assert!(
        late_ms < 4_000,
        "the move to overdue took {late_ms} ms after the deadline"
    );
    assert!(red["cls"].as_str().unwrap().contains("overdue"), "{red}");
    board
        .gone("atrisk", id, &["visit"], Duration::from_secs(5))
        .await;
    let color = b
        .js_with(
            "return getComputedStyle(document.querySelector(
               `#overdue tr[data-alert='${arguments[0]}'][data-stage=visit] td.cd`)).color;",
            vec![json!(id)],
        )
        .await;
    assert_eq!(color, "rgb(255, 90, 101)", "overdue is red");

    // Level 2 three seconds later, with who was paged (from the live escalation).
    let l2 = b
        .wait(
            "level 2 and its notify list",
            WITHIN,
            "const r = document.querySelector(`#overdue tr[data-alert='${arguments[0]}'][data-stage=visit]`);
             return r && r.dataset.level === '2' && r.querySelector('.notify').textContent.includes('所长')
               ? r.innerText : null;",
            json!(id),
        )
        .await;
    println!("overdue row: {l2}");
    b.screenshot("duty-zh-overdue-red").await;

    // A disposition satisfies visit and meet: both leave the lists, the resolution shows.
    let sent = Instant::now();
    board.disposition("app-777-1", id, "met", now_ms()).await;
    board
        .gone("overdue", id, &["visit"], Duration::from_secs(5))
        .await;
    board
        .gone("atrisk", id, &["visit", "meet"], Duration::from_secs(5))
        .await;
    let took = sent.elapsed();
    println!(
        "disposition shown {} ms after it was produced",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    board.row("resolved", id, "visit").await;
    board.row("atrisk", id, "feedback").await;
    assert_eq!(
        b.js("return window.__noReload;").await,
        "still the same page",
        "no reload happened"
    );
    b.screenshot("duty-zh-resolved").await;
    board.b.close().await;
}

/// With no event at all (the stream blocked in the browser), the deadline itself moves a stage
/// from at risk to overdue: the page re-reads its lists when the soonest countdown reaches zero.
#[tokio::test(flavor = "multi_thread")]
async fn without_any_event_a_passing_deadline_still_moves_the_stage_to_overdue() {
    let _one = one_at_a_time().await;
    let board = Board::start("board-no-events", BOARD_SLA).await;
    let b = &board.b;
    b.cdp("Network.enable", json!({})).await;
    b.cdp(
        "Network.setBlockedURLs",
        json!({ "urls": ["*/v1/events*"] }),
    )
    .await;
    board.open("#/").await;
    b.wait(
        "the stream down",
        WITHIN,
        "return document.getElementById('conn').dataset.state === 'down';",
        Value::Null,
    )
    .await;

    let id = "GA-620102-20261122-000999";
    let issued = now_ms();
    board.alert(id, "620102-GWM", "medium", issued).await;
    board.row("atrisk", id, "visit").await;
    board.row("overdue", id, "visit").await;
    let late_ms = now_ms() - (issued + 12_000);
    println!("without events, overdue shown {late_ms} ms after the deadline");
    assert!(late_ms < 4_000, "took {late_ms} ms after the deadline");
    // Who was paged comes with the list, not only with an escalation the page saw.
    b.wait(
        "who level 1 paged, in the overdue row",
        WITHIN,
        "const r = document.querySelector(`#overdue tr[data-alert='${arguments[0]}'][data-stage=visit]`);
         return r && r.innerText.includes('派出所值班员');",
        json!(id),
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('conn').dataset.state;")
            .await,
        "down",
        "no event reached the page"
    );
    board.b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_stream_shows_reconnecting_and_resyncs_when_it_is_back() {
    let _one = one_at_a_time().await;
    let mut board = Board::start("board-reconnect", BOARD_SLA).await;
    board.open("#/").await;
    board.live().await;
    board
        .b
        .js("window.__noReload = 'still the same page'; return 1;")
        .await;

    // The processor stops: the stream drops, the page says so.
    let status = board.p.sigterm();
    assert!(status.success(), "{status}");
    board
        .b
        .wait(
            "reconnecting",
            WITHIN,
            "const c = document.getElementById('conn');
             return c.dataset.state === 'down' && c.textContent === '正在重新连接…';",
            Value::Null,
        )
        .await;
    board.b.screenshot("duty-zh-reconnecting").await;

    // An alert arrives while it is down; the processor comes back on the same port.
    let id = "GA-620102-20261122-000888";
    board.alert(id, "620102-GWM", "medium", now_ms()).await;
    let port = board.p.http_port;
    let config = board.env.config(port);
    let log = board
        .env
        .dir
        .path()
        .join(format!("fraud-sla-{port}-again.log"));
    board.p = Processor::start(&config, port, &log);
    board.p.wait_ready(WITHIN);

    // Reconnected, and the lists re-read: the alert shows, without a reload.
    board.live().await;
    board.row("atrisk", id, "visit").await;
    assert_eq!(
        board.b.js("return window.__noReload;").await,
        "still the same page"
    );
    board.b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_the_url_agree_and_bad_input_is_shown() {
    let _one = one_at_a_time().await;
    let board = Board::start("board-filters", BOARD_SLA).await;
    let b = &board.b;
    let (gwm, qlh, xhq) = (
        "GA-620102-20261122-000101",
        "GA-620103-20261122-000102",
        "GA-330106-20261122-000103",
    );
    let issued = now_ms();
    board.alert(gwm, "620102-GWM", "high", issued).await;
    board.alert(qlh, "620103-QLH", "medium", issued).await;
    board.alert(xhq, "330106-XHQ", "low", issued).await;
    board.known(&[gwm, qlh, xhq]).await;

    board.open("#/").await;
    for id in [gwm, qlh, xhq] {
        board.row("atrisk", id, "meet").await;
    }
    // By default every open stage is listed, soonest first: also one due in two hours, not
    // marked at risk (that is within 30 minutes).
    let far = board.row("atrisk", xhq, "feedback").await;
    assert_eq!(far["cls"], "open", "{far}");
    let near = board.row("atrisk", xhq, "meet").await;
    assert_eq!(near["cls"], "atrisk", "{near}");

    // Filters → URL (and the list follows).
    let hash = "return decodeURIComponent(location.hash);";
    b.type_into("#f-jurisdiction", "6201").await;
    b.wait(
        "jurisdiction in the URL",
        WITHIN,
        "return location.hash.includes('jurisdiction=6201');",
        Value::Null,
    )
    .await;
    board.gone("atrisk", xhq, &["meet"], WITHIN).await;
    board.row("atrisk", gwm, "meet").await;
    board.row("atrisk", qlh, "meet").await;
    b.select("#f-risk", "high").await;
    board.gone("atrisk", qlh, &["meet"], WITHIN).await;
    b.select("#f-stage", "meet").await;
    b.select("#f-window", "1h").await;
    b.wait(
        "every filter in the URL",
        WITHIN,
        "return location.hash === '#/?jurisdiction=6201&risk=high&stage=meet&window=1h';",
        Value::Null,
    )
    .await;
    b.wait(
        "only meet rows",
        WITHIN,
        "const rows = [...document.querySelectorAll('#atrisk tr[data-alert]')];
         return rows.length > 0 && rows.every(r => r.dataset.stage === 'meet');",
        Value::Null,
    )
    .await;
    println!("URL after the filters: {}", b.js(hash).await);

    // URL → filters (a shared link, opened fresh).
    board
        .open("#/?jurisdiction=6201&risk=medium&stage=visit&window=30m")
        .await;
    let controls = b
        .js("return ['f-jurisdiction', 'f-risk', 'f-stage', 'f-window']
               .map(id => document.getElementById(id).value);")
        .await;
    assert_eq!(controls, json!(["6201", "medium", "visit", "30m"]));
    board.row("atrisk", qlh, "visit").await;
    b.wait(
        "only the medium 6201 visit row",
        WITHIN,
        "const rows = [...document.querySelectorAll('#atrisk tr[data-alert]')];
         return rows.length === 1 && rows[0].dataset.alert === arguments[0]
           && rows[0].dataset.stage === 'visit';",
        json!(qlh),
    )
    .await;
    // The back button returns to the filters before.
    b.click("#f-reset").await;
    b.wait(
        "cleared filters",
        WITHIN,
        "return document.getElementById('f-risk').value === '';",
        Value::Null,
    )
    .await;
    board.row("atrisk", xhq, "visit").await;
    b.client.back().await.unwrap();
    b.wait(
        "the filters of the previous URL",
        WITHIN,
        "return document.getElementById('f-risk').value === 'medium';",
        Value::Null,
    )
    .await;

    // An invalid filter: the API's 400 message on the page.
    let (code, body) = board.api("/v1/open?risk=extreme&due_within=30m&limit=200");
    assert_eq!(code, 400, "{body}");
    let message: Value = serde_json::from_str(&body).unwrap();
    let message = message["error"].as_str().unwrap().to_owned();
    board.open("#/?risk=extreme").await;
    b.wait(
        "the API's message in the banner",
        WITHIN,
        "const b = document.getElementById('banner');
         return !b.hidden && b.textContent.includes(arguments[0]);",
        json!(message),
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('f-risk').value;")
            .await,
        "extreme",
        "the control shows what the URL says"
    );

    // An unknown alert.
    board.open("#/alert/GA-000000-20261122-999999").await;
    b.wait(
        "unknown alert",
        WITHIN,
        "const n = document.getElementById('notfound'); return n && n.textContent.includes('未找到该预警');",
        Value::Null,
    )
    .await;

    // The alert view: stages, policy version, timeline; no personal data.
    board.open(&format!("#/alert/{gwm}")).await;
    let (_, api) = board.api(&format!("/v1/alerts/{gwm}"));
    let api: Value = serde_json::from_str(&api).unwrap();
    let view = b
        .wait(
            "the alert's stages and timeline",
            WITHIN,
            "const rows = [...document.querySelectorAll('#stages tr[data-stage]')].map(r => r.dataset.stage);
             const tl = [...document.querySelectorAll('#timeline tr[data-kind]')].map(r => r.dataset.kind);
             return rows.length === 3 && tl.includes('alert') ? { rows, tl, text: document.body.innerText } : null;",
            Value::Null,
        )
        .await;
    assert_eq!(view["rows"], json!(["visit", "meet", "feedback"]));
    let text = view["text"].as_str().unwrap();
    assert!(
        text.contains(api["policy_version"].as_str().unwrap()),
        "{text}"
    );
    assert!(
        text.contains("上门") && text.contains("(Asia/Shanghai)"),
        "{text}"
    );
    for secret in PERSONAL_DATA {
        assert!(!text.contains(secret), "{secret} on the page");
    }
    b.screenshot("alert-zh").await;

    // The station view, today.
    board.open("#/stations").await;
    b.wait(
        "today's rows of 620102-GWM",
        WITHIN,
        "return document.querySelector(`#stations tr[data-jurisdiction='620102-GWM']`) !== null;",
        Value::Null,
    )
    .await;
    b.screenshot("stations-zh").await;
    board.b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_station_token_never_shows_another_station_and_a_wrong_token_gets_the_login() {
    let _one = one_at_a_time().await;
    let dir = tmpdir();
    let tokens = dir.path().join("tokens.toml");
    let digest = sha256_hex("gwm-station-secret");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nsha256 = \"{digest}\"\nname = \"城关派出所\"\njurisdictions = [\"620102\"]\n"
        ),
    )
    .unwrap();
    let sla = format!("tokens_file = \"{}\"\n{BOARD_SLA}", tokens.display());
    let center = "center-secret";
    let board = Board::start_with(
        "board-scoped",
        &sla,
        &[("FRAUD_SLA_HTTP_TOKEN", center)],
        Some(center),
    )
    .await;
    let b = &board.b;
    let (own, other) = ("GA-620102-20261122-000201", "GA-330106-20261122-000202");
    let issued = now_ms();
    board.alert(other, "330106-XHQ", "high", issued).await;
    board.alert(own, "620102-GWM", "high", issued).await;
    board.known(&[own, other]).await;

    // No token: the login, without a complaint.
    b.goto(&board.base).await;
    let login_shown = "return !document.getElementById('login').hidden;";
    b.wait("the login", WITHIN, login_shown, Value::Null).await;
    assert_eq!(
        b.js("return document.getElementById('login-msg').hidden;")
            .await,
        true
    );
    b.screenshot("login-zh").await;

    // A wrong token: the login again, with a message.
    b.type_into("#login-token", "not-the-token").await;
    b.click("#login-form button[type=submit]").await;
    b.wait(
        "the login again, saying the token was wrong",
        WITHIN,
        "const m = document.getElementById('login-msg');
         return !document.getElementById('login').hidden && !m.hidden && m.textContent.includes('令牌错误');",
        Value::Null,
    )
    .await;

    b.screenshot("login-zh-wrong-token").await;

    // The station's token: its own alert, never the other station's.
    b.type_into("#login-token", "gwm-station-secret").await;
    b.click("#login-form button[type=submit]").await;
    board.rendered().await;
    board.row("atrisk", own, "visit").await;
    let scope = b
        .js("return document.getElementById('scope').textContent;")
        .await;
    assert!(scope.as_str().unwrap().contains("城关派出所"), "{scope}");
    assert!(
        !board.text().await.contains(other),
        "the other station's alert is shown"
    );

    // Both breach; both are visited; the other station's resolution never reaches this page.
    board.live().await;
    board.row("overdue", own, "visit").await;
    let esc = board.env.escalations();
    board
        .disposition("app-202-1", other, "visited", now_ms())
        .await;
    let resolved_other = format!("{other}:visit:resolved");
    let seen = collect_until(&esc, WITHIN, |r| has(r, &resolved_other));
    assert!(has(&seen, &resolved_other), "{other} resolved");
    board
        .disposition("app-201-1", own, "visited", now_ms())
        .await;
    board.row("resolved", own, "visit").await;
    let page = board.text().await;
    assert!(
        !page.contains(other),
        "the other station's alert is shown:\n{page}"
    );
    let stored = b
        .js("return sessionStorage.getItem('fraud-sla.resolved') || '';")
        .await;
    assert!(!stored.as_str().unwrap().contains(other), "{stored}");

    // Its alert view is as unknown; the token is kept for the session (no login after a reload).
    board.open(&format!("#/alert/{other}")).await;
    b.wait(
        "the other station's alert as unknown",
        WITHIN,
        "const n = document.getElementById('notfound'); return n && n.textContent.includes('未找到该预警');",
        Value::Null,
    )
    .await;
    assert_eq!(b.js(login_shown).await, false);
    board.open("#/").await;
    let page = board.text().await;
    assert!(!page.contains(other), "{page}");

    // Signing out leaves nothing the token saw, on the page or in the session, for the next.
    board.row("resolved", own, "visit").await;
    b.click("#logout").await;
    b.wait(
        "the login after signing out",
        WITHIN,
        login_shown,
        Value::Null,
    )
    .await;
    let left = b
        .js("return [document.getElementById('view').innerText,
                     sessionStorage.getItem('fraud-sla.resolved'),
                     document.getElementById('scope').textContent];")
        .await;
    assert_eq!(left, json!(["", null, ""]), "{left}");
    board.b.close().await;
}

/// The board as the duty desk sees it: a realistic policy (sign-for, visit, meet, feedback),
/// alerts of seven stations issued over the last hours, some signed for, visited or met, so the
/// lists, counts and station table hold what a shift would show. Screenshots only need the
/// content: the checks are that each view rendered it.
#[tokio::test(flavor = "multi_thread")]
async fn the_board_as_the_duty_desk_sees_it() {
    let _one = one_at_a_time().await;
    let sla = r#"
[sla]
stages = ["sign_for", "visit", "meet", "feedback"]
sign_for_within = "10m"
visit_within = "1h"
meet_within = "2h"
feedback_within = "6h"
warn_before = "15m"
escalate_after = ["0s", "30m", "2h"]
notify = [["station_duty_officer"], ["station_chief"], ["sub_bureau_command"]]
warn_notify = ["assigned_officer"]
grace = "0s"
retention = "7d"
max_clock_skew = "5m"
max_message_bytes = 65536
[sla.stage.sign_for]
satisfied_by = ["acknowledged", "visited", "met", "feedback"]
[sla.risk.high]
visit_within = "30m"
"#;
    let board = Board::start("board-desk", sla).await;
    let b = &board.b;
    b.resize(1440, 900).await;
    board.open("#/").await;
    board.live().await;

    const MIN: i64 = 60_000;
    let stations = [
        "620102-GWM",
        "620102-ZJP",
        "620103-QLH",
        "620104-XGQ",
        "620105-ALQ",
        "620111-HKQ",
        "620121-YZX",
    ];
    let plan: [Past; 26] = [
        (170, "medium", &[("acknowledged", 4)]),
        (158, "high", &[("acknowledged", 3), ("visited", 25)]),
        (150, "medium", &[("acknowledged", 6), ("visited", 48)]),
        (142, "low", &[("acknowledged", 12)]),
        (131, "medium", &[("acknowledged", 5), ("met", 52)]),
        (124, "high", &[("acknowledged", 2)]),
        (118, "medium", &[]),
        (109, "medium", &[("acknowledged", 7), ("visited", 40)]),
        (101, "high", &[("acknowledged", 4), ("met", 28)]),
        (97, "medium", &[("acknowledged", 3), ("met", 44)]),
        (90, "low", &[("acknowledged", 9)]),
        (84, "medium", &[("acknowledged", 2)]),
        (76, "high", &[("acknowledged", 3)]),
        (68, "medium", &[("acknowledged", 6), ("visited", 31)]),
        (57, "medium", &[("acknowledged", 4)]),
        (52, "low", &[("acknowledged", 8)]),
        (49, "medium", &[("acknowledged", 5), ("met", 38)]),
        (46, "medium", &[("acknowledged", 3)]),
        (41, "high", &[("acknowledged", 4)]),
        (37, "medium", &[]),
        (26, "high", &[("acknowledged", 2)]),
        (18, "medium", &[("acknowledged", 6)]),
        (12, "medium", &[]),
        (8, "low", &[]),
        (5, "high", &[]),
        (2, "medium", &[]),
    ];
    let now = now_ms();
    let day = chrono::Utc::now().format("%Y%m%d").to_string();
    let alerts: Vec<(String, &str, &str, i64)> = plan
        .iter()
        .enumerate()
        .map(|(i, (ago, risk, _))| {
            let station = stations[(i * 3) % stations.len()];
            let id = format!("GA-{}-{day}-{:06}", &station[..6], 1200 + i * 7);
            (id, station, *risk, now - ago * MIN)
        })
        .collect();
    // The officers' events of the past hours go first and are held, so that each alert arrives
    // with its history (as a shift's state, not as an outage's backlog that breaches first).
    let mut events = 0;
    for ((id, _, _, issued), (_, _, done)) in alerts.iter().zip(&plan) {
        for (j, (kind, after)) in done.iter().enumerate() {
            let event = format!("app-{}-{j}", &id[id.len() - 4..]);
            board
                .disposition(&event, id, kind, issued + after * MIN)
                .await;
            events += 1;
        }
    }
    let topic = board.env.topics.dispositions.clone();
    let start = Instant::now();
    while board
        .p
        .metric("fraud_sla_ingest_delay_seconds_count", &[("topic", &topic)])
        < f64::from(events)
    {
        assert!(start.elapsed() < WITHIN, "the dispositions were never read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, station, risk, issued) in &alerts {
        board.alert(id, station, risk, *issued).await;
    }
    let ids: Vec<String> = alerts.into_iter().map(|a| a.0).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    board.known(&refs).await;
    b.wait(
        "overdue and at-risk rows",
        WITHIN,
        "return document.querySelectorAll('#overdue tr[data-alert]').length >= 8
            && document.querySelectorAll('#atrisk tr[data-alert]').length >= 3
            && document.querySelectorAll('#overdue .notify').length > 0;",
        Value::Null,
    )
    .await;
    // One stage done late while the desk watches: its resolution in the feed.
    let late = &ids[6];
    board
        .disposition("app-late-1", late, "visited", now_ms())
        .await;
    board.row("resolved", late, "visit").await;
    b.js("window.scrollTo(0, 0); return 1;").await;
    b.screenshot("duty-zh").await;

    b.click("#lang").await;
    b.wait(
        "English",
        WITHIN,
        "return document.querySelector('#overdue h2').textContent.includes('Overdue');",
        Value::Null,
    )
    .await;
    b.screenshot("duty-en").await;
    b.click("#lang").await;

    board.open("#/?risk=high&window=1h").await;
    b.wait(
        "high-risk rows",
        WITHIN,
        "return document.querySelectorAll('#overdue tr[data-alert]').length > 0;",
        Value::Null,
    )
    .await;
    b.screenshot("duty-zh-filtered").await;

    board.open(&format!("#/alert/{}", ids[1])).await;
    b.wait(
        "the alert's four stages",
        WITHIN,
        "return document.querySelectorAll('#stages tr[data-stage]').length === 4;",
        Value::Null,
    )
    .await;
    b.screenshot("alert-zh-desk").await;

    board.open("#/stations").await;
    b.wait(
        "seven stations",
        WITHIN,
        "return new Set([...document.querySelectorAll('#stations tr[data-jurisdiction]')]
           .map(r => r.dataset.jurisdiction)).size >= 8;",
        Value::Null,
    )
    .await;
    b.screenshot("stations-zh-desk").await;
    assert!(
        b.client
            .find(Locator::Css("#login:not([hidden])"))
            .await
            .is_err(),
        "no login without tokens"
    );
    board.b.close().await;
}

/// An alert of the shift: issued minutes ago, its risk, and the officers' events (kind, minutes
/// after issue).
type Past = (i64, &'static str, &'static [(&'static str, i64)]);

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
