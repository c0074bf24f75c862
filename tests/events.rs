//! The board's live events, `GET /v1/events` (docs/contract.md §10.4), end to end: the built
//! binary against a real redis-server and a real Kafka-protocol broker (tansu), deadlines
//! compressed to seconds ([`FAST_SLA`]).
//!
//! - every published escalation reaches the stream, as published, within 2 s of its
//!   publication (the record's timestamp on the escalations topic);
//! - a disposition applied shows as a `changed` event within 2 s;
//! - a change stream entry in Redis becomes one `changed` event per alert;
//! - a scoped token receives only its jurisdictions' events, a wrong or missing token gets 401;
//! - a reconnect with `Last-Event-ID` replays what it missed (within its scope), one with an id
//!   it cannot resume is told to resync, and SIGTERM ends open streams and exits 0;
//! - the change stream's end, where the board starts reading, against redis-server alone.
//!
//! Absence is never asserted after a sleep: a scoped stream is checked once it received an event
//! that the hub published after the ones it must not see.

mod common;
use common::*;
use fraud_sla::store::changes::Changes;
use fraud_sla::store::{RedisConn, Store};
use rdkafka::consumer::BaseConsumer;
use rdkafka::Message;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WITHIN: Duration = Duration::from_secs(40);
/// The board's promise: a change shows within this, without a reload.
const BOARD: i64 = 2_000;
/// `FRAUD_SLA_HTTP_TOKEN`: sees everything.
const ROOT: &str = "root-token-7c1d";
/// A station's token of `[http] tokens_file`: jurisdictions starting with `6201` only.
const STATION: &str = "station-6201-token";
const OTHER_JURISDICTION: &str = "330100-XH";

/// One event as the board receives it, and when (wall clock, ms).
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
    at: i64,
}

impl Sse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    fn is_escalation(&self, escalation_id: &str) -> bool {
        self.event == "escalation" && self.json()["escalation_id"] == escalation_id
    }

    fn is_change_of(&self, alert_id: &str) -> bool {
        self.event == "changed" && self.json()["alert_id"] == alert_id
    }
}

/// Parses one SSE block (the lines before a blank line); `None` for a comment (keep-alive).
fn parse_block(block: &str, at: i64) -> Option<Sse> {
    let (mut event, mut id, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    Some(Sse {
        event: event.or_else(|| (!data.is_empty()).then(|| "message".to_owned()))?,
        id,
        data: data.join("\n"),
        at,
    })
}

/// An open `GET /v1/events`, read by a task as the bytes arrive. Dropping it closes the
/// connection.
struct Events {
    rx: mpsc::UnboundedReceiver<Sse>,
    seen: Vec<Sse>,
    task: tokio::task::JoinHandle<()>,
    closed: bool,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Events {
    /// Opens the stream with `token` and `Last-Event-ID`; the status when it is not 200.
    async fn open(
        port: u16,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Events, u16> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut request = client.get(format!("http://127.0.0.1:{port}/v1/events"));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let mut response = request.send().await.expect("the processor answers");
        let status = response.status().as_u16();
        if status != 200 {
            return Err(status);
        }
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an event stream"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = buf.drain(..end + 2).collect();
                    let text = String::from_utf8_lossy(&block[..end]);
                    if let Some(e) = parse_block(&text, now_ms()) {
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Events {
            rx,
            seen: Vec::new(),
            task,
            closed: false,
        })
    }

    /// The next event within `within`; `None` on timeout or when the stream ended.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some(e)) => {
                self.seen.push(e.clone());
                Some(e)
            }
            Ok(None) => {
                self.closed = true;
                None
            }
            Err(_) => None,
        }
    }

    /// The first frame: `hello`, and whether it asks the page to refetch.
    async fn hello(&mut self) -> bool {
        let e = self.next(Duration::from_secs(5)).await.expect("a hello");
        assert_eq!(e.event, "hello", "{e:?}");
        e.json()["resync"].as_bool().expect("resync is a bool")
    }

    /// Reads until an event (already seen or new) matches `what`; panics after [`WITHIN`].
    async fn until(&mut self, what: &str, matches: impl Fn(&Sse) -> bool) -> Sse {
        if let Some(e) = self.seen.iter().find(|e| matches(e)) {
            return e.clone();
        }
        let start = Instant::now();
        while start.elapsed() < WITHIN && !self.closed {
            if let Some(e) = self.next(Duration::from_millis(500)).await {
                if matches(&e) {
                    return e;
                }
            }
        }
        panic!("{what} never arrived; got {:#?}", self.seen);
    }

    async fn escalation(&mut self, escalation_id: &str) -> Sse {
        self.until(escalation_id, |e| e.is_escalation(escalation_id))
            .await
    }

    async fn change_of(&mut self, alert_id: &str) -> Sse {
        self.until(&format!("changed {alert_id}"), |e| e.is_change_of(alert_id))
            .await
    }

    /// Ends when the stream ends; panics if it does not within `within`.
    async fn ends_within(&mut self, within: Duration) {
        let start = Instant::now();
        while !self.closed {
            assert!(start.elapsed() < within, "the stream is still open");
            self.next(Duration::from_millis(200)).await;
        }
    }
}

/// A processor with the all-seeing token and a tokens file granting [`STATION`] the
/// jurisdictions starting with `6201`.
fn start(env: &Env) -> Processor {
    let port = free_port();
    let config = env.config(port);
    let tokens = env.dir.path().join("tokens.toml");
    let digest: String = Sha256::digest(STATION.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &tokens,
        format!("[[token]]\nsha256 = \"{digest}\"\nname = \"gwm\"\njurisdictions = [\"6201\"]\n"),
    )
    .unwrap();
    let listen = format!("listen = \"127.0.0.1:{port}\"");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &listen,
        &format!("{listen}\ntokens_file = \"{}\"", tokens.display()),
    );
    std::fs::write(&config, text).unwrap();
    let log = env.dir.path().join(format!("fraud-sla-{port}.log"));
    let p = Processor::start_with_env(&config, port, &log, &[("FRAUD_SLA_HTTP_TOKEN", ROOT)]);
    p.wait_ready(WITHIN);
    p
}

async fn alert_in(env: &Env, id: &str, jurisdiction: &str) {
    let value = alert_json(id, now_ms(), "medium").replace("620102-GWM", jurisdiction);
    produce(&env.broker.producer(), &env.topics.alerts, Some(id), &value).await;
}

async fn disposition(env: &Env, event_id: &str, alert_id: &str, kind: &str) {
    let value = disposition_json(event_id, alert_id, kind, now_ms());
    produce(
        &env.broker.producer(),
        &env.topics.dispositions,
        Some(alert_id),
        &value,
    )
    .await;
}

/// Appends a change stream entry to partition `p` as the batch script does (`c` = JSON
/// `[[alert_id, jurisdiction], …]`); returns when it did (ms).
fn change_entry(env: &Env, p: i32, alerts: &[(&str, &str)]) -> i64 {
    let mut c = env.redis.client().get_connection().unwrap();
    let pairs: Vec<[&str; 2]> = alerts.iter().map(|(a, j)| [*a, *j]).collect();
    let _: String = redis::cmd("XADD")
        .arg(format!("{{t:{p}}}:events"))
        .arg("*")
        .arg("c")
        .arg(serde_json::to_string(&pairs).unwrap())
        .query(&mut c)
        .unwrap();
    now_ms()
}

/// Each of `ids` as published on the escalations topic: its value and the record's timestamp.
fn published(c: &BaseConsumer, ids: &[&str]) -> HashMap<String, (String, i64)> {
    tokio::task::block_in_place(|| {
        let start = Instant::now();
        let mut found = HashMap::new();
        while found.len() < ids.len() {
            assert!(
                start.elapsed() < WITHIN,
                "not all of {ids:?} published; found {:?}",
                found.keys()
            );
            let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
                continue;
            };
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let json: Value = serde_json::from_str(&value).unwrap();
            let id = json["escalation_id"].as_str().unwrap().to_owned();
            if ids.contains(&id.as_str()) {
                let at = m.timestamp().to_millis().expect("a record timestamp");
                found.entry(id).or_insert((value, at));
            }
        }
        found
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn escalations_reach_the_board_as_published_within_two_seconds() {
    let env = Env::new("events-esc", 2, FAST_SLA);
    let p = start(&env);
    let topic = env.escalations();
    let mut board = Events::open(p.http_port, Some(ROOT), None).await.unwrap();
    assert!(
        board.hello().await,
        "a first connection refetches its lists"
    );

    alert_in(&env, "E-1", "620102-GWM").await;
    board.escalation("E-1:visit:0").await;
    board.escalation("E-1:visit:1").await;
    // Met after the breach: the stage resolves.
    disposition(&env, "E-1-met", "E-1", "met").await;
    board.escalation("E-1:visit:resolved").await;

    let ids = ["E-1:visit:0", "E-1:visit:1", "E-1:visit:resolved"];
    let on_topic = published(&topic, &ids);
    for id in ids {
        let e = board.escalation(id).await;
        let (value, published_at) = &on_topic[id];
        assert_eq!(&e.data, value, "{id} as published");
        let delay = e.at - published_at;
        eprintln!("{id}: on the board {delay} ms after its publication");
        assert!(delay <= BOARD, "{id} took {delay} ms");
    }
    let mut escalation_ids: Vec<&str> = board
        .seen
        .iter()
        .filter(|e| e.event == "escalation")
        .map(|e| e.id.as_deref().expect("an escalation has an id"))
        .collect();
    let n = escalation_ids.len();
    escalation_ids.dedup();
    assert_eq!(n, escalation_ids.len(), "each event once");
    let seqs: Vec<u64> = board
        .seen
        .iter()
        .filter_map(|e| e.id.as_deref())
        .map(|id| id.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "ids count up: {seqs:?}"
    );
}

/// The board reads the topic only while a page is connected: a page gets what was published
/// after it connected, and nothing from before (it refetches its lists instead).
#[tokio::test(flavor = "multi_thread")]
async fn a_page_gets_what_was_published_after_it_connected_and_nothing_before() {
    // One partition: the topic holds the escalations in the order they fired.
    let env = Env::new("events-demand", 1, FAST_SLA);
    let p = start(&env);
    let topic = env.escalations();
    alert_in(&env, "B-1", "620102-GWM").await;
    let before = published(&topic, &["B-1:visit:0"]);
    let mut board = Events::open(p.http_port, Some(ROOT), None).await.unwrap();
    assert!(
        board.hello().await,
        "a first connection refetches its lists"
    );
    let connected = now_ms();
    assert!(before["B-1:visit:0"].1 < connected - 250);

    alert_in(&env, "A-1", "620102-GWM").await;
    let after = board.escalation("A-1:visit:0").await;
    assert!(
        !board.seen.iter().any(|e| e.is_escalation("B-1:visit:0")),
        "published before the page connected: {:#?}",
        board.seen
    );
    let on_topic = published(&topic, &["A-1:visit:0"]);
    assert_eq!(after.data, on_topic["A-1:visit:0"].0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disposition_applied_shows_as_a_changed_event_within_two_seconds() {
    // Warned at once, breached only much later: nothing else changes the alert meanwhile.
    let sla = FAST_SLA
        .replace("visit_within = \"4s\"", "visit_within = \"30s\"")
        .replace("meet_within = \"8s\"", "meet_within = \"40s\"")
        .replace("feedback_within = \"12s\"", "feedback_within = \"50s\"")
        .replace("warn_before = \"2s\"", "warn_before = \"29s\"");
    assert!(sla.contains("warn_before = \"29s\""));
    let env = Env::new("events-changed", 2, &sla);
    let p = start(&env);
    let mut board = Events::open(p.http_port, Some(ROOT), None).await.unwrap();
    board.hello().await;

    alert_in(&env, "C-1", "620102-GWM").await;
    board.escalation("C-1:visit:0").await;
    // Let the warning's own change pass, so the next one is the disposition's (the next
    // warning is 10 s away).
    tokio::time::sleep(Duration::from_millis(800)).await;
    while board.next(Duration::from_millis(100)).await.is_some() {}
    assert!(
        board.seen.iter().any(|e| e.is_change_of("C-1")),
        "the alert's arrival and its warning changed it: {:#?}",
        board.seen
    );
    // From here on, only what follows the disposition counts.
    board.seen.clear();
    let sent = now_ms();
    disposition(&env, "C-1-met", "C-1", "met").await;
    let e = board.change_of("C-1").await;
    assert_eq!(
        e.json(),
        serde_json::json!({"alert_id": "C-1", "jurisdiction": "620102-GWM"})
    );
    let delay = e.at - sent;
    eprintln!("disposition produced → changed on the board: {delay} ms");
    assert!(delay <= BOARD, "took {delay} ms");
    let (code, body) = http_get(p.http_port, "/v1/alerts/C-1", Some(ROOT)).unwrap();
    assert_eq!(code, 200, "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["stages"]["visit"]["status"], "satisfied", "{view}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scoped_token_receives_only_its_jurisdictions_and_a_wrong_token_none() {
    // One partition: escalations reach the board in the order they fired.
    let env = Env::new("events-scope", 1, FAST_SLA);
    let p = start(&env);
    for token in [None, Some("wrong-token"), Some("station-6201-tokeN")] {
        let got = Events::open(p.http_port, token, None).await.err();
        assert_eq!(got, Some(401), "{token:?}");
    }
    let mut root = Events::open(p.http_port, Some(ROOT), None).await.unwrap();
    let mut station = Events::open(p.http_port, Some(STATION), None)
        .await
        .unwrap();
    assert!(root.hello().await && station.hello().await);

    // The other jurisdiction's alert fires first, then the station's.
    alert_in(&env, "OUT-1", OTHER_JURISDICTION).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    alert_in(&env, "IN-1", "620102-GWM").await;
    // A change entry naming both, the other jurisdiction first.
    let added = change_entry(
        &env,
        0,
        &[("X-OUT", OTHER_JURISDICTION), ("X-IN", "620102")],
    );

    let out = root.change_of("X-OUT").await;
    let inside = root.change_of("X-IN").await;
    for e in [&out, &inside] {
        eprintln!("change entry → changed on the board: {} ms", e.at - added);
        assert!(e.at - added <= BOARD, "took {} ms", e.at - added);
    }
    root.escalation("OUT-1:visit:1").await;
    root.escalation("IN-1:visit:1").await;

    station.change_of("X-IN").await;
    station.escalation("IN-1:visit:0").await;
    station.escalation("IN-1:visit:1").await;
    assert!(!station.seen.is_empty());
    for e in station.seen.iter().filter(|e| e.event != "hello") {
        let j = e.json()["jurisdiction"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(j.starts_with("6201"), "the station received {e:?}");
        assert!(!e.data.contains("OUT"), "the station received {e:?}");
    }
    assert!(
        root.seen.iter().any(|e| e.is_escalation("OUT-1:visit:0")),
        "the all-seeing token sees the other jurisdiction"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconnect_with_last_event_id_replays_what_it_missed() {
    let env = Env::new("events-replay", 1, FAST_SLA);
    let mut p = start(&env);
    // Connected throughout: what the hub published, in order.
    let mut probe = Events::open(p.http_port, Some(ROOT), None).await.unwrap();
    probe.hello().await;
    let mut board = Events::open(p.http_port, Some(ROOT), None).await.unwrap();
    let mut station = Events::open(p.http_port, Some(STATION), None)
        .await
        .unwrap();
    board.hello().await;
    station.hello().await;

    alert_in(&env, "R-1", "620102-GWM").await;
    let warning = board.escalation("R-1:visit:0").await;
    station.escalation("R-1:visit:0").await;
    let last = warning.id.clone().expect("an id to resume after");
    drop(board);
    drop(station);

    // Missed while away: the breach, and changes in and out of the station's scope.
    change_entry(
        &env,
        0,
        &[("R-OUT", OTHER_JURISDICTION), ("R-IN", "620102")],
    );
    probe.escalation("R-1:visit:1").await;
    probe.change_of("R-IN").await;
    let missed: Vec<Sse> = probe
        .seen
        .iter()
        .skip_while(|e| e.id.as_deref() != Some(last.as_str()))
        .skip(1)
        .cloned()
        .collect();
    assert!(missed.len() >= 3, "{missed:#?}");

    let mut again = Events::open(p.http_port, Some(ROOT), Some(&last))
        .await
        .unwrap();
    assert!(!again.hello().await, "resumable: no resync");
    for m in &missed {
        let e = again.next(Duration::from_secs(2)).await.expect("replayed");
        assert_eq!((&e.event, &e.id, &e.data), (&m.event, &m.id, &m.data));
    }

    let mut station = Events::open(p.http_port, Some(STATION), Some(&last))
        .await
        .unwrap();
    assert!(!station.hello().await);
    station.change_of("R-IN").await;
    station.escalation("R-1:visit:1").await;
    assert!(
        !station.seen.iter().any(|e| e.is_change_of("R-OUT")),
        "a replay keeps to the scope: {:#?}",
        station.seen
    );

    for unknown in ["0123456789abcdef-1", "garbage"] {
        let mut fresh = Events::open(p.http_port, Some(ROOT), Some(unknown))
            .await
            .unwrap();
        assert!(fresh.hello().await, "{unknown}: not ours, so refetch");
    }

    // Open streams do not hold shutdown: they end, and the process exits 0.
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| p.sigterm());
    eprintln!(
        "SIGTERM with open streams: exited in {:?}",
        started.elapsed()
    );
    assert!(status.success(), "{status:?}\n{}", p.log_text());
    again.ends_within(Duration::from_secs(5)).await;
}

/// The hub reads each partition's change stream on from where it was. When that place is gone
/// (trimmed past, or the stream lost), changes may be missed: every page is told to refetch,
/// once, scoped or not, and a reconnect that replays across it is told too.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_stream_lost_under_the_board_makes_every_page_refetch() {
    let env = Env::new("events-gap", 1, FAST_SLA);
    let p = start(&env);
    let mut root = Events::open(p.http_port, Some(ROOT), None).await.unwrap();
    let mut station = Events::open(p.http_port, Some(STATION), None)
        .await
        .unwrap();
    assert!(root.hello().await && station.hello().await);

    change_entry(&env, 0, &[("G-1", "620102")]);
    let before = root.change_of("G-1").await;
    station.change_of("G-1").await;
    let resyncs = |e: &Events| e.seen.iter().filter(|e| e.event == "resync").count();
    assert_eq!(resyncs(&root), 0, "no refetch while nothing is missed");

    let mut c = env.redis.client().get_connection().unwrap();
    let _: i64 = redis::cmd("DEL").arg("{t:0}:events").query(&mut c).unwrap();
    let told = root.until("resync", |e| e.event == "resync").await;
    assert_eq!(told.json()["resync"], true, "{told:?}");
    station.until("resync", |e| e.event == "resync").await;

    // The hub reads on from what the stream holds now.
    change_entry(&env, 0, &[("G-2", "620102")]);
    root.change_of("G-2").await;
    station.change_of("G-2").await;
    assert_eq!(
        (resyncs(&root), resyncs(&station)),
        (1, 1),
        "{:#?}",
        root.seen
    );

    // A page that was away across it refetches when it replays that far.
    let mut away = Events::open(p.http_port, Some(ROOT), before.id.as_deref())
        .await
        .unwrap();
    assert!(!away.hello().await, "resumable");
    let replayed: Vec<String> = [away.next(WITHIN).await, away.next(WITHIN).await]
        .into_iter()
        .map(|e| e.expect("replayed").event)
        .collect();
    assert_eq!(replayed, ["resync", "changed"]);
    away.change_of("G-2").await;
}

/// Where the board starts reading when a page connects, and how it reads on: against
/// redis-server alone.
#[tokio::test]
async fn the_board_reads_a_change_stream_from_a_time_then_on_from_a_place() {
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let store = Store::new(RedisConn::connect(&redis.url(), false).await.unwrap(), "t");
    assert_eq!(
        store.changes_from(0, 0, 10).await.unwrap(),
        Changes::default(),
        "empty"
    );
    assert_eq!(
        store.changes(0, "0-0", 10).await.unwrap(),
        Changes::default()
    );

    let mut c = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut ids = Vec::new();
    // Ids as Redis gives them: the milliseconds of its clock, then a sequence within one.
    for (id, alert, jurisdiction) in [
        ("1000-0", "A-1", "620102"),
        ("2000-0", "A-2", "330100"),
        ("2000-1", "A-3", "620103"),
        ("3000-0", "A-4", "620104"),
    ] {
        let id: String = redis::cmd("XADD")
            .arg("{t:0}:events")
            .arg(id)
            .arg("c")
            .arg(serde_json::json!([[alert, jurisdiction]]).to_string())
            .query_async(&mut c)
            .await
            .unwrap();
        ids.push(id);
    }
    let from = |since: i64, count: usize| {
        let store = &store;
        async move {
            let read = store.changes_from(0, since, count).await.unwrap();
            assert!(!read.gap, "a read from a time asks after nothing before it");
            read.entries
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(from(2000, 10).await, ids[1..], "from a time, inclusive");
    assert_eq!(from(1001, 2).await, ids[1..3], "at most `count`");
    assert_eq!(from(3001, 10).await, Vec::<String>::new(), "nothing after");
    assert_eq!(from(-5, 10).await, ids, "a time before the epoch: all kept");
    assert_eq!(
        store.changes_from(1, 0, 10).await.unwrap(),
        Changes::default(),
        "per partition"
    );

    let all = store.changes(0, "0-0", 10).await.unwrap();
    assert_eq!(
        all.entries.len(),
        4,
        "from an empty stream's end: everything after"
    );
    assert!(!all.gap);
    let change = |i: usize, alert: &str, jurisdiction: &str| {
        (
            ids[i].clone(),
            vec![(alert.to_owned(), jurisdiction.to_owned())],
        )
    };
    let after_first = store.changes(0, &ids[0], 2).await.unwrap();
    assert_eq!(
        after_first,
        Changes {
            gap: false,
            entries: vec![change(1, "A-2", "330100"), change(2, "A-3", "620103")],
        },
        "after a position, exclusive, at most `count`"
    );
    assert_eq!(
        store.changes(0, &ids[3], 10).await.unwrap(),
        Changes::default()
    );

    // Trimmed past a reader: what it gets is still in order, and it is told it may miss some.
    let _: i64 = redis::cmd("XTRIM")
        .arg("{t:0}:events")
        .arg("MAXLEN")
        .arg(2)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        store.changes(0, &ids[0], 10).await.unwrap(),
        Changes {
            gap: true,
            entries: vec![change(2, "A-3", "620103"), change(3, "A-4", "620104")],
        },
        "A-2 was trimmed unread"
    );
    let at_oldest_kept = store.changes(0, &ids[2], 10).await.unwrap();
    assert_eq!(at_oldest_kept.entries, vec![change(3, "A-4", "620104")]);
    assert!(!at_oldest_kept.gap, "nothing after it was trimmed");

    // The stream lost (a flush, a promoted replica): a gap, whatever comes after.
    let _: i64 = redis::cmd("DEL")
        .arg("{t:0}:events")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        store.changes(0, &ids[3], 10).await.unwrap(),
        Changes {
            gap: true,
            entries: vec![],
        }
    );
}
