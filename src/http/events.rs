//! `GET /v1/events`: server-sent events for the board (docs/contract.md §10.4).
//!
//! What a connection receives, in order:
//! - `hello`, first on every (re)connect, without an id: `{"resync": true}` when the page must
//!   refetch its lists (a first connection, or a `Last-Event-ID` this process cannot replay: from
//!   before a restart, from another replica, or older than the events kept in memory), or
//!   `{"resync": false}` when the events missed since `Last-Event-ID` follow at once;
//! - `escalation`: one per published escalation, data = the §4 JSON exactly as published;
//! - `changed`: `{"alert_id", "jurisdiction"}` when a batch changed the alert's stages;
//! - `resync` (`{"resync": true}`, no id): events were dropped, because this connection fell so
//!   far behind or because the hub missed changes (entries of its change stream trimmed unread, or
//!   lost); refetch, as after a `hello` asking for it;
//! - a comment every 15 s, so proxies keep an idle stream open.
//!
//! `escalation` and `changed` carry an id `<boot>-<seq>`: `seq` counts every event of this
//! process, `boot` is random per process, so an id is only ever resumed by the process that gave
//! it. A scoped token receives only the events of its jurisdictions, replays included.
//!
//! The [`Hub`] feeds every connection from one broadcast channel and keeps the last
//! [`RING`] events for replays. Its sources start once Redis and the topics are known
//! ([`Hub::start`]); until then connections get their `hello` and keep-alives only:
//! - escalations: the escalations topic, every partition assigned, no group joined and nothing
//!   committed (the board must never disturb a real consumer), deduplicated by `escalation_id`
//!   over the last [`RECENT_ESCALATIONS`] (delivery is at-least-once);
//! - changes: every partition's change stream in Redis (`{<prefix>:<p>}:events`, one entry per
//!   batch naming the alerts it changed), read with [`Store::changes`] every [`POLL`]; never
//!   `XREAD BLOCK`, which would stall the multiplexed connection every partition shares.
//!
//! The sources follow only while a page is connected, and for [`LINGER`] after the last one
//! left (reading every escalation back from the broker cost a backlog drain 14% of the
//! processor and a quarter of the broker). They start from a little before the page connected
//! ([`SKEW_MS`]): the changes by stream id, the escalations by record timestamp, read from where
//! the topic ended before the page connected ([`ENDS_EVERY`]). Where they stopped, the log holds
//! a `resync`: a page that replays across it refetches, as after a `Last-Event-ID` too old to
//! replay. Each process follows for its own pages, so N processors
//! behind a balancer do not each read every escalation N times.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Access, HttpState, TokensInForce};
use crate::config::KafkaConfig;
use crate::domain::Millis;
use crate::partition::wall_clock;
use crate::retry::{retry, Backoff};
use crate::store::changes::Changes;
use crate::store::{Store, StoreError};

/// Events kept for replays after a reconnect or a burst: minutes of a busy day, and a burst of
/// tens of thousands of clocks due together (`bench.sh` fires 45,000 within a minute).
const RING: usize = 50_000;
/// Events a connection may be behind before it must catch up from the ring.
const CHANNEL: usize = 4096;
/// Comments on an idle stream, so proxies (and the page) know it is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The most a connection sends in one write: the frames that are ready when it writes, up to
/// this. In a burst a write carries as many events as have queued since the last one.
const CHUNK: usize = 64 * 1024;
/// How often the change feeds are read: well inside the board's 2 s.
const POLL: Duration = Duration::from_millis(300);
/// Entries read per partition and poll; a full page is followed by another read at once.
const POLL_COUNT: usize = 500;
/// Escalation ids remembered for deduplication: a republished outbox is far smaller.
const RECENT_ESCALATIONS: usize = 4096;
/// How soon a browser reconnects after the stream broke (its default is about 3 s).
const RECONNECT: Duration = Duration::from_secs(1);
/// How long the sources keep following after the last page left: a reload, or a stream broken
/// and reconnected with the page's backoff (at most 15 s), comes back well within it and
/// replays what it missed.
const LINGER: Duration = Duration::from_secs(60);
/// How far before a page connected the sources start reading: the clocks that stamp the
/// escalation records (every processor's) and the change stream ids (Redis's) may run this far
/// behind this process's. More would only replay old events to the first page of a busy hour.
const SKEW_MS: Millis = 250;
/// How often the escalations' partition ends are looked up while no page is connected: a page
/// that connects has the source read at most this much of the topic before what is new to it.
const ENDS_EVERY: Duration = Duration::from_secs(5);
/// Event streams one process serves at once; more are refused with 503 and `Retry-After`, so
/// that clients without end (a loop, or a token-less API opened to a network) cannot take its
/// memory. Hundreds of stations' boards fit well within it.
const MAX_STREAMS: usize = 2_000;
/// The hello of a connection that must refetch, and of one whose missed events follow.
const RESYNC: &str = r#"{"resync":true}"#;
const REPLAYING: &str = r#"{"resync":false}"#;

/// Why a source of events could not start or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EventsError {
    #[error("escalations consumer: {0}")]
    Kafka(#[from] KafkaError),
    #[error("escalations topic {0} not found or without partitions")]
    NoTopic(String),
    #[error("escalations topic metadata request did not finish")]
    Metadata,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an event is about; its SSE event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Escalation,
    Changed,
    /// Changes were missed: every connection that reaches it refetches (a `resync` frame).
    Gap,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Escalation => "escalation",
            Kind::Changed => "changed",
            Kind::Gap => "resync",
        }
    }
}

/// One event, rendered once and shared by every connection that sends it.
#[derive(Debug)]
struct Event {
    seq: u64,
    kind: Kind,
    /// Who may see it.
    jurisdiction: String,
    /// The whole SSE frame: name, id and data (JSON).
    frame: Bytes,
}

/// The events of this process so far: the next sequence number and the newest [`RING`].
#[derive(Debug)]
struct Log {
    next: u64,
    ring: VecDeque<Arc<Event>>,
}

#[derive(Debug)]
struct Inner {
    /// Random per process: ids given by another process (or before a restart) are not resumed.
    boot: String,
    tx: broadcast::Sender<Arc<Event>>,
    /// Numbering, ring and broadcast happen under this lock, and so does subscribing: a new
    /// connection's replay and its live events then meet without a gap or an overlap.
    log: Mutex<Log>,
    /// Ends every stream and source on shutdown (axum's graceful shutdown waits for open
    /// responses, and an event stream never ends by itself).
    cancel: CancellationToken,
    started: AtomicBool,
    /// Open connections, and a wake-up for [`Hub::keep_demand`] when their number changes.
    connections: AtomicUsize,
    demand: Notify,
    /// `Some(since)` while the sources follow: they read what was written from `since` on.
    following: watch::Sender<Option<Millis>>,
}

/// The source of live events, shared by every connection; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(CancellationToken::new())
    }
}

/// What a connection sends next.
#[derive(Debug)]
enum Frame {
    Hello { resync: bool },
    Resync,
    Event(Arc<Event>),
}

impl Frame {
    fn into_bytes(self) -> Bytes {
        match self {
            Frame::Hello { resync } => {
                let data = if resync { RESYNC } else { REPLAYING };
                render("hello", None, Some(RECONNECT), data).into()
            }
            Frame::Resync => render(Kind::Gap.as_str(), None, None, RESYNC).into(),
            Frame::Event(e) => e.frame.clone(),
        }
    }
}

/// An SSE frame: `event`, `id` and `retry` when given, one `data` line a line of `data`, and
/// the blank line that ends it.
fn render(event: &str, id: Option<&str>, retry: Option<Duration>, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut field = |name: &str, value: &str| {
        for part in [name, ": ", value, "\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    };
    field("event", event);
    if let Some(id) = id {
        field("id", id);
    }
    if let Some(retry) = retry {
        field("retry", &retry.as_millis().to_string());
    }
    // A line break would end the field: CR, LF and CRLF each start another data line. JSON as
    // serde writes it has none; splitting it anyway cost more than copying it.
    if memchr::memchr2(b'\r', b'\n', data.as_bytes()).is_some() {
        for line in data.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
            field("data", line);
        }
    } else {
        field("data", data);
    }
    out.push(b'\n');
    out
}

/// A subscription with the events it missed, if they can be replayed.
struct Follow {
    rx: broadcast::Receiver<Arc<Event>>,
    /// The last sequence number given before the subscription.
    last: u64,
    /// The events after the requested one; `None` when some of them are no longer kept.
    replay: Option<Vec<Arc<Event>>>,
}

impl Hub {
    /// A hub whose streams and sources end when `cancel` fires.
    pub(crate) fn new(cancel: CancellationToken) -> Hub {
        let (tx, _) = broadcast::channel(CHANNEL);
        Hub {
            inner: Arc::new(Inner {
                boot: format!("{:016x}", rand::random::<u64>()),
                tx,
                log: Mutex::new(Log {
                    next: 1,
                    ring: VecDeque::with_capacity(RING),
                }),
                cancel,
                started: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
                demand: Notify::new(),
                following: watch::Sender::new(None),
            }),
        }
    }

    /// Starts the sources, once: the escalations topic and the change feeds of `partitions`
    /// partitions, each following while pages are connected. Their tasks join `tasks` and end
    /// on the hub's cancellation.
    pub(crate) fn start(
        &self,
        tasks: &mut JoinSet<()>,
        store: Store,
        partitions: i32,
        kafka: &KafkaConfig,
    ) -> Result<(), KafkaError> {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            tracing::warn!("Board events already started; ignored.");
            return Ok(());
        }
        let consumer: StreamConsumer = crate::kafka::reader_config(kafka)
            // A group id librdkafka wants, but the consumer only assigns: it never joins the
            // group, and commits nothing.
            .set("group.id", format!("{}-board-events", kafka.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "latest")
            .create()?;
        tasks.spawn(self.clone().keep_demand());
        tasks.spawn(
            self.clone()
                .follow_escalations(consumer, kafka.escalations_topic.clone()),
        );
        tasks.spawn(self.clone().follow_changes(store, partitions));
        Ok(())
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // Nothing in the critical sections can leave the log half-written.
        self.inner.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers the event, keeps it for replays and sends it to every connection.
    fn publish(&self, kind: Kind, jurisdiction: String, data: &str) {
        let mut log = self.log();
        let seq = log.next;
        log.next += 1;
        // `<boot>-<seq>`, the SSE id: pushed, not formatted (`format!` was 2.4% of the
        // processor's samples in a burst, `perf record`).
        let boot = &self.inner.boot;
        let mut id = String::with_capacity(boot.len() + 21);
        id.push_str(boot);
        id.push('-');
        id.push_str(itoa::Buffer::new().format(seq));
        let event = Arc::new(Event {
            seq,
            frame: render(kind.as_str(), Some(&id), None, data).into(),
            kind,
            jurisdiction,
        });
        if log.ring.len() == RING {
            log.ring.pop_front();
        }
        log.ring.push_back(event.clone());
        // No connection: nobody to tell; the ring keeps it.
        let _ = self.inner.tx.send(event);
    }

    /// The sequence number of an id this process gave, else `None`.
    fn seq_of(&self, id: &str) -> Option<u64> {
        let (boot, seq) = id.trim().split_once('-')?;
        (boot == self.inner.boot).then(|| seq.parse().ok())?
    }

    /// Subscribes, with the events after `after` when the ring still holds all of them.
    fn follow(&self, after: Option<u64>) -> Follow {
        let log = self.log();
        let rx = self.inner.tx.subscribe();
        let last = log.next - 1;
        let oldest = log.ring.front().map_or(log.next, |e| e.seq);
        let replay = after.filter(|&a| a <= last && a + 1 >= oldest).map(|a| {
            log.ring
                .iter()
                .skip((a + 1 - oldest) as usize)
                .cloned()
                .collect()
        });
        Follow { rx, last, replay }
    }

    /// A new connection of `access`, resuming after `last_event_id` if it can.
    fn connect(&self, access: Access, last_event_id: Option<&str>) -> Connection {
        let follow = self.follow(last_event_id.and_then(|id| self.seq_of(id)));
        let resync = follow.replay.is_none();
        self.inner.connections.fetch_add(1, Ordering::SeqCst);
        self.inner.demand.notify_one();
        Connection {
            hub: self.clone(),
            access,
            revocable: None,
            revoked: false,
            rx: follow.rx,
            cursor: follow.last,
            backlog: follow.replay.unwrap_or_default().into(),
            first: Some(Frame::Hello { resync }),
        }
    }
}

/// One client's stream: its hello, then its replay, then live events, all filtered by scope.
struct Connection {
    hub: Hub,
    access: Access,
    /// The tokens in force and the request's `Authorization`: after a reload the access is
    /// looked up again, and a revoked token ends the stream.
    revocable: Option<(TokensInForce, Option<String>)>,
    /// Its token was revoked: nothing more is sent.
    revoked: bool,
    rx: broadcast::Receiver<Arc<Event>>,
    /// The last sequence number handled (sent, or not in scope): where to resume after a lag.
    cursor: u64,
    backlog: VecDeque<Arc<Event>>,
    first: Option<Frame>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.hub.inner.connections.fetch_sub(1, Ordering::SeqCst);
        self.hub.inner.demand.notify_one();
    }
}

/// What a connection makes of the next event it received.
enum Step {
    Send(Frame),
    /// Not for this connection, or caught up from the ring: take the next.
    Skip,
    End,
}

impl Connection {
    /// Checked against `tokens` from now on, as presented with `authorization`.
    fn revocable(mut self, tokens: TokensInForce, authorization: Option<&str>) -> Connection {
        self.revocable = Some((tokens, authorization.map(str::to_owned)));
        self
    }

    /// Whether the connection's token still gives access, after a reload replaced the tokens
    /// (its scope is then the new one). Once `false`, always: the frames of the write in hand
    /// go out, then the stream ends.
    ///
    /// A receiver cloned from the handlers' after a reload reports a change at first: one
    /// look-up more, which also covers a reload between the request's check and this stream.
    fn still_allowed(&mut self) -> bool {
        let Some((tokens, authorization)) = &mut self.revocable else {
            return true;
        };
        if self.revoked || !tokens.has_changed().unwrap_or(false) {
            return !self.revoked;
        }
        let access = tokens
            .borrow_and_update()
            .access_of(authorization.as_deref());
        match access {
            Some(access) => self.access = access,
            None => self.revoked = true,
        }
        !self.revoked
    }

    /// The next frame to send, waiting for it; `None` when the hub is gone. Cancel-safe.
    async fn next(&mut self) -> Option<Frame> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            let got = match self.backlog.pop_front() {
                Some(e) => Ok(e),
                None => self.rx.recv().await,
            };
            match self.step(got) {
                Step::Send(frame) => return Some(frame),
                Step::Skip => {}
                Step::End => return None,
            }
        }
    }

    /// The next frame if one is ready now.
    fn next_ready(&mut self) -> Option<Frame> {
        loop {
            let got = match self.backlog.pop_front() {
                Some(e) => Ok(e),
                None => match self.rx.try_recv() {
                    Ok(e) => Ok(e),
                    Err(TryRecvError::Empty) => return None,
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                },
            };
            match self.step(got) {
                Step::Send(frame) => return Some(frame),
                Step::Skip => {}
                Step::End => return None,
            }
        }
    }

    fn step(&mut self, got: Result<Arc<Event>, RecvError>) -> Step {
        let event = match got {
            Ok(e) => e,
            Err(RecvError::Lagged(_)) => {
                // Catch up from the ring if it still holds what was dropped.
                let follow = self.hub.follow(Some(self.cursor));
                self.rx = follow.rx;
                return match follow.replay {
                    Some(missed) => {
                        self.backlog = missed.into();
                        Step::Skip
                    }
                    None => {
                        self.cursor = follow.last;
                        Step::Send(Frame::Resync)
                    }
                };
            }
            Err(RecvError::Closed) => return Step::End,
        };
        if !self.still_allowed() {
            return Step::End;
        }
        self.cursor = event.seq;
        if event.kind == Kind::Gap {
            Step::Send(Frame::Resync)
        } else if self.access.sees(&event.jurisdiction) {
            Step::Send(Frame::Event(event))
        } else {
            Step::Skip
        }
    }

    /// The next write: the next frame and those ready after it, up to [`CHUNK`] bytes, or a
    /// keep-alive comment after [`KEEP_ALIVE`] without one; `None` when the hub is gone.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.revoked {
            return None;
        }
        let first = match tokio::time::timeout(KEEP_ALIVE, self.next()).await {
            Ok(frame) => frame?.into_bytes(),
            Err(_) if self.still_allowed() => return Some(Bytes::from_static(b":\n\n")),
            Err(_) => return None,
        };
        // Copied only when more than one frame is ready.
        let mut chunk = Vec::new();
        while chunk.len().max(first.len()) < CHUNK {
            let Some(frame) = self.next_ready() else {
                break;
            };
            if chunk.is_empty() {
                chunk.extend_from_slice(&first);
            }
            chunk.extend_from_slice(&frame.into_bytes());
        }
        Some(if chunk.is_empty() {
            first
        } else {
            chunk.into()
        })
    }
}

/// `GET /v1/events`: the stream of this token's events, resumed after `Last-Event-ID`.
pub(crate) async fn events(
    State(s): State<HttpState>,
    access: Access,
    headers: HeaderMap,
) -> Response {
    if s.events.inner.connections.load(Ordering::SeqCst) >= MAX_STREAMS {
        let retry = [(header::RETRY_AFTER, "10")];
        let body = super::error(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open on this process; try again later",
        );
        return (retry, body).into_response();
    }
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let connection = s
        .events
        .connect(access, last_event_id)
        .revocable(s.tokens.clone(), super::auth::authorization(&headers));
    let stream = futures::stream::unfold(connection, |mut c| async move {
        let chunk = c.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), c))
    })
    .take_until(s.events.inner.cancel.clone().cancelled_owned());
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            // nginx would otherwise buffer the stream and deliver events in bursts.
            (
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// What the board needs of an escalation to route it; the rest is passed on as published.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    escalation_id: Cow<'a, str>,
    #[serde(borrow)]
    jurisdiction: Cow<'a, str>,
}

/// The escalation ids seen lately, oldest first out. Hashed with foldhash: the ids are the
/// processors' own, and SipHash made this 3.2% of the processor's samples in a burst.
#[derive(Debug)]
struct Recent {
    seen: foldhash::HashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
}

impl Recent {
    fn new() -> Recent {
        Recent {
            seen: foldhash::HashSet::with_capacity_and_hasher(
                RECENT_ESCALATIONS,
                Default::default(),
            ),
            order: VecDeque::with_capacity(RECENT_ESCALATIONS),
        }
    }

    /// Whether `id` is new; remembers it.
    fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        let id: Arc<str> = Arc::from(id);
        if self.order.len() == RECENT_ESCALATIONS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.seen.insert(id);
        true
    }
}

impl Hub {
    /// Publishes an escalation as consumed; `false` for a duplicate or an unreadable record.
    fn on_escalation(&self, recent: &mut Recent, payload: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(payload) else {
            tracing::warn!("Escalation record is not UTF-8; not shown on the board.");
            return false;
        };
        let head: Head<'_> = match serde_json::from_str(text) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "Escalation record unreadable; not shown on the board.");
                return false;
            }
        };
        if !recent.first_time(&head.escalation_id) {
            return false;
        }
        self.publish(Kind::Escalation, head.jurisdiction.into_owned(), text);
        true
    }

    /// Publishes one `changed` per alert of each entry: `(stream id, [(alert_id, jurisdiction)])`.
    fn on_changes(&self, entries: Vec<(String, Vec<(String, String)>)>) {
        for (alert_id, jurisdiction) in entries.into_iter().flat_map(|(_, alerts)| alerts) {
            let data = Changed {
                alert_id: &alert_id,
                jurisdiction: &jurisdiction,
            };
            // Serialising two strings cannot fail.
            if let Ok(data) = serde_json::to_string(&data) {
                self.publish(Kind::Changed, jurisdiction, &data);
            }
        }
    }

    /// Turns the sources on when a page connects, and off [`LINGER`] after the last one left,
    /// with a `resync` in the log where they stopped.
    async fn keep_demand(self) {
        let inner = &self.inner;
        let open = || inner.connections.load(Ordering::SeqCst);
        // Waits for the number of connections to change; `false` on shutdown.
        let changed = || async {
            tokio::select! {
                _ = inner.cancel.cancelled() => false,
                _ = inner.demand.notified() => true,
            }
        };
        loop {
            while open() == 0 {
                if !changed().await {
                    return;
                }
            }
            inner.following.send_replace(Some(wall_clock() - SKEW_MS));
            tracing::debug!("Board events: a page connected; following.");
            loop {
                while open() > 0 {
                    if !changed().await {
                        return;
                    }
                }
                tokio::select! {
                    _ = inner.cancel.cancelled() => return,
                    _ = tokio::time::sleep(LINGER) => if open() == 0 { break },
                    _ = inner.demand.notified() => {}
                }
            }
            // Before the sources stop: what they publish meanwhile is after it, harmlessly.
            self.publish(Kind::Gap, String::new(), RESYNC);
            inner.following.send_replace(None);
            tracing::debug!(
                ?LINGER,
                "Board events: no page connected; stopped following."
            );
        }
    }

    /// Waits until the sources should follow: the time to read from, or `None` on shutdown.
    async fn wanted(&self, following: &mut watch::Receiver<Option<Millis>>) -> Option<Millis> {
        let started = async {
            let since = following.wait_for(Option::is_some).await.ok()?;
            *since
        };
        tokio::select! {
            _ = self.inner.cancel.cancelled() => None,
            since = started => since,
        }
    }

    /// Reads the escalations topic while pages are connected, until shutdown. In between it
    /// looks up where the partitions end every [`ENDS_EVERY`]: when a page connects it reads
    /// from there, and passes on what was stamped from `since` on. (A broker's own lookup by
    /// time is not relied on: tansu's answers offset 0 when nothing is that new.)
    async fn follow_escalations(self, consumer: StreamConsumer, topic: String) {
        let cancel = self.inner.cancel.clone();
        let consumer = Arc::new(consumer);
        let mut following = self.inner.following.subscribe();
        let mut recent = Recent::new();
        let mut ends: Option<Ends> = None;
        let mut look = tokio::time::interval(ENDS_EVERY);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'follow: loop {
            let since = loop {
                tokio::select! {
                    biased;
                    _ = look.tick() => {
                        let found = partition_ends(consumer.clone(), topic.clone()).await;
                        // Only ends looked up before a page connected are before its `since`.
                        match found {
                            Ok(found) if following.borrow().is_none() => ends = Some(found),
                            Ok(_) => {}
                            Err(e) => tracing::debug!(error = %e, "Board events: escalations topic not looked up."),
                        }
                    }
                    since = self.wanted(&mut following) => match since {
                        Some(since) => break since,
                        None => break 'follow,
                    },
                }
            };
            // Ends looked up after `since` (a page came while they were being looked up) would
            // miss what was published in between: then, and before the first lookup, from now.
            let known = ends.take().filter(|e| e.at <= since).map(|e| e.offsets);
            let started = retry(
                &cancel,
                Backoff::CONNECT,
                || start_at(consumer.clone(), topic.clone(), known.clone()),
                |_| true,
                |e, retry_in| tracing::warn!(error = %e, ?retry_in, "Board events: waiting for the escalations topic."),
            )
            .await;
            let Ok(from) = started else { break };
            tracing::debug!(topic = %topic, "Board events: following escalations.");
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break 'follow,
                    _ = stopped(&mut following) => break,
                    m = consumer.recv() => match m {
                        Ok(m) => {
                            let older = m.timestamp().to_millis().is_some_and(|t| t < since);
                            if let (false, Some(payload)) = (older, m.payload()) {
                                self.on_escalation(&mut recent, payload);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "Board events: escalations consumer error.");
                            // librdkafka reports a broker outage more than once; don't spin on it.
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    },
                }
            }
            // Where it stopped is where the next page's reading may start.
            ends = stop(consumer.clone(), topic.clone(), from).await;
        }
        // Closing waits for librdkafka's threads; keep it off the runtime's.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }

    /// Polls every partition's change stream while pages are connected, until shutdown.
    async fn follow_changes(self, store: Store, partitions: i32) {
        let mut following = self.inner.following.subscribe();
        while let Some(since) = self.wanted(&mut following).await {
            let feeds = (0..partitions).map(|_| Feed::since(since)).collect();
            if !self.poll_changes(&store, feeds, &mut following).await {
                return;
            }
        }
    }

    /// Polls `feeds` until the sources stop (`true`) or shutdown (`false`).
    async fn poll_changes(
        &self,
        store: &Store,
        mut feeds: Vec<Feed>,
        following: &mut watch::Receiver<Option<Millis>>,
    ) -> bool {
        let cancel = &self.inner.cancel;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut more = false;
        loop {
            if more {
                if cancel.is_cancelled() {
                    return false;
                }
                if following.borrow().is_none() {
                    return true;
                }
            } else {
                tokio::select! {
                    _ = cancel.cancelled() => return false,
                    _ = stopped(following) => return true,
                    _ = tick.tick() => {}
                }
            }
            // One read per partition, all at once: the multiplexed connection pipelines them.
            let reads = feeds.iter().enumerate().map(|(p, feed)| {
                let p = p as i32;
                async move {
                    match &feed.at {
                        Place::Since(since) => store.changes_from(p, *since, feed.page()).await,
                        Place::After(after) => store.changes(p, after, feed.page()).await,
                    }
                }
            });
            let results = futures::future::join_all(reads).await;
            more = false;
            let mut error = None;
            let mut missed = false;
            for ((p, feed), result) in feeds.iter_mut().enumerate().zip(results) {
                match result {
                    Ok(Changes { gap, entries }) => {
                        let full = entries.len() == feed.page();
                        feed.careful &= full;
                        more |= full;
                        if gap {
                            tracing::warn!(partition = p, "Board events: changes missed (the stream was trimmed past this reader, or lost); pages refetch.");
                            missed = true;
                            // Read on from whatever the stream holds now.
                            feed.at = Place::After("0-0".to_owned());
                        }
                        if let Some((last, _)) = entries.last() {
                            feed.at = Place::After(last.clone());
                        }
                        self.on_changes(entries);
                    }
                    Err(StoreError::CorruptChange { stream_id, .. }) if feed.careful => {
                        tracing::warn!(partition = p, stream_id = %stream_id, "Board events: unreadable change entry skipped.");
                        feed.at = Place::After(stream_id);
                        feed.careful = false;
                        more = true;
                    }
                    Err(StoreError::CorruptChange { .. }) => {
                        feed.careful = true;
                        more = true;
                    }
                    Err(e) => error = Some(EventsError::from(e)),
                }
            }
            if missed {
                // One refetch for every feed that missed changes in this poll.
                self.publish(Kind::Gap, String::new(), RESYNC);
            }
            match error {
                Some(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "Board events: change streams unreadable; retrying.");
                }
                None if failing => {
                    failing = false;
                    tracing::info!("Board events: change streams readable again.");
                }
                _ => {}
            }
        }
    }
}

/// Returns once the sources are to stop.
async fn stopped(following: &mut watch::Receiver<Option<Millis>>) {
    // An error: the hub is gone, and the sources with it.
    let _ = following.wait_for(Option::is_none).await;
}

/// Where the poller is in one partition's change stream.
#[derive(Debug)]
struct Feed {
    at: Place,
    /// The next page holds an unreadable entry (the read fails as a whole): read one entry at a
    /// time until past it, so the readable entries before it are not lost with it.
    careful: bool,
}

/// A place in a change stream.
#[derive(Debug)]
enum Place {
    /// Nothing read yet: from the first entry at or after this time, inclusive.
    Since(Millis),
    /// After this entry.
    After(String),
}

impl Feed {
    fn since(since: Millis) -> Feed {
        Feed {
            at: Place::Since(since),
            careful: false,
        }
    }

    fn page(&self) -> usize {
        if self.careful {
            1
        } else {
            POLL_COUNT
        }
    }
}

/// The data of a `changed` event.
#[derive(Serialize)]
struct Changed<'a> {
    alert_id: &'a str,
    jurisdiction: &'a str,
}

/// Where each partition of a topic ended, and when that was known (the lookup's end).
#[derive(Debug)]
struct Ends {
    at: Millis,
    offsets: Vec<i64>,
}

/// Looks up where every partition of `topic` ends.
async fn partition_ends(consumer: Arc<StreamConsumer>, topic: String) -> Result<Ends, EventsError> {
    const TIMEOUT: Duration = Duration::from_secs(3);
    tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|&n| n > 0)
            .ok_or_else(|| EventsError::NoTopic(topic.clone()))?;
        let offsets = (0..partitions)
            .map(|p| Ok(consumer.fetch_watermarks(&topic, p, TIMEOUT)?.1))
            .collect::<Result<Vec<i64>, KafkaError>>()?;
        Ok(Ends {
            at: wall_clock(),
            offsets,
        })
    })
    .await
    .map_err(|_| EventsError::Metadata)?
}

/// Unassigns the consumer; where it stopped, if it knows (`from`, where it started, for a
/// partition it read nothing of).
async fn stop(consumer: Arc<StreamConsumer>, topic: String, from: Vec<i64>) -> Option<Ends> {
    tokio::task::spawn_blocking(move || {
        let reached = consumer.position().ok();
        let at = wall_clock();
        let _ = consumer.unassign();
        let offsets = from
            .into_iter()
            .enumerate()
            .map(
                |(p, start)| match reached.as_ref()?.find_partition(&topic, p as i32)?.offset() {
                    Offset::Offset(o) => Some(o.max(start)),
                    _ => Some(start),
                },
            )
            .collect::<Option<Vec<i64>>>()?;
        Some(Ends { at, offsets })
    })
    .await
    .ok()
    .flatten()
}

/// Assigns partition `p` of `topic` at `from[p]`, for each, or at where each ends now when
/// `from` is not known; returns the offsets assigned.
async fn start_at(
    consumer: Arc<StreamConsumer>,
    topic: String,
    from: Option<Vec<i64>>,
) -> Result<Vec<i64>, EventsError> {
    let from = match from {
        Some(from) => from,
        None => {
            partition_ends(consumer.clone(), topic.clone())
                .await?
                .offsets
        }
    };
    tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        for (p, &offset) in from.iter().enumerate() {
            tpl.add_partition_offset(&topic, p as i32, Offset::Offset(offset))?;
        }
        consumer.assign(&tpl)?;
        Ok(from)
    })
    .await
    .map_err(|_| EventsError::Metadata)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(prefix: &str) -> Access {
        Access::Scoped {
            name: "station".into(),
            prefixes: vec![prefix.into()],
        }
    }

    fn changed(hub: &Hub, alert_id: &str, jurisdiction: &str) {
        hub.on_changes(vec![(
            "1-0".into(),
            vec![(alert_id.into(), jurisdiction.into())],
        )]);
    }

    async fn event(c: &mut Connection) -> Arc<Event> {
        match tokio::time::timeout(Duration::from_secs(1), c.next()).await {
            Ok(Some(Frame::Event(e))) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// The fields of a write's frames, as an SSE client reads them: (name, value) a line.
    fn fields(frame: &[u8]) -> Vec<(String, String)> {
        let text = std::str::from_utf8(frame).unwrap();
        assert!(
            text.ends_with("\n\n"),
            "a frame ends with a blank line: {text:?}"
        );
        text.split('\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(": ").unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    fn field(frame: &[u8], name: &str) -> Vec<String> {
        fields(frame)
            .into_iter()
            .filter_map(|(n, v)| (n == name).then_some(v))
            .collect()
    }

    fn id(e: &Event) -> String {
        field(&e.frame, "id").concat()
    }

    fn data(e: &Event) -> String {
        field(&e.frame, "data").join("\n")
    }

    #[test]
    fn a_frame_names_its_event_and_splits_its_data_into_lines() {
        let frame = render("escalation", Some("b-7"), None, r#"{"a":1}"#);
        assert_eq!(
            std::str::from_utf8(&frame).unwrap(),
            "event: escalation\nid: b-7\ndata: {\"a\":1}\n\n"
        );
        let frame = render("hello", None, Some(RECONNECT), "one\ntwo\r\nthree\rfour");
        assert_eq!(field(&frame, "retry"), ["1000"]);
        assert_eq!(field(&frame, "data"), ["one", "two", "three", "four"]);
        assert!(field(&frame, "id").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_carries_every_frame_ready_and_an_idle_stream_a_comment() {
        let hub = Hub::default();
        let mut c = hub.connect(scoped("6201"), None);
        let hello = c.next_chunk().await.unwrap();
        assert_eq!(field(&hello, "event"), ["hello"]);
        for i in 0..5 {
            changed(
                &hub,
                &format!("A-{i}"),
                if i == 2 { "330100" } else { "620102" },
            );
        }
        let chunk = c.next_chunk().await.unwrap();
        let ids: Vec<String> = field(&chunk, "id");
        let boot = &hub.inner.boot;
        assert_eq!(
            ids,
            [1, 2, 4, 5].map(|s| format!("{boot}-{s}")),
            "the four in scope, in one write"
        );
        let idle = tokio::time::Instant::now();
        let comment = tokio::time::timeout(2 * KEEP_ALIVE, c.next_chunk()).await;
        assert_eq!(&comment.unwrap().unwrap()[..], b":\n\n");
        assert_eq!(idle.elapsed(), KEEP_ALIVE);
        changed(&hub, "A-9", "620109");
        let next = c.next_chunk().await.unwrap();
        assert_eq!(
            field(&next, "id"),
            [format!("{boot}-6")],
            "live after the comment"
        );

        for i in 0..2 * CHUNK / 100 {
            changed(&hub, &format!("B-{i}"), "620102");
        }
        let full = c.next_chunk().await.unwrap();
        assert!(
            (CHUNK..CHUNK + 200).contains(&full.len()),
            "a write stops at CHUNK: {}",
            full.len()
        );
    }

    async fn hello(c: &mut Connection) -> bool {
        match c.next().await {
            Some(Frame::Hello { resync }) => resync,
            other => panic!("expected hello, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_rescopes_an_open_stream_and_a_revoked_token_ends_it() {
        use crate::config::ScopedToken;
        use crate::http::Tokens;
        use sha2::{Digest, Sha256};
        let station = |secret: &str, prefix: &str| ScopedToken {
            sha256: Sha256::digest(secret.as_bytes()).into(),
            name: "station".into(),
            jurisdictions: vec![prefix.into()],
        };
        let (tokens, in_force) =
            watch::channel(Arc::new(Tokens::new(None, vec![station("s1", "6201")])));
        let hub = Hub::default();
        let mut c = hub
            .connect(scoped("6201"), None)
            .revocable(in_force, Some("Bearer s1"));
        assert!(hello(&mut c).await);
        changed(&hub, "A-1", "620102");
        assert_eq!(event(&mut c).await.seq, 1);

        tokens.send_replace(Arc::new(Tokens::new(None, vec![station("s1", "3301")])));
        changed(&hub, "A-2", "620102");
        changed(&hub, "A-3", "330100");
        assert_eq!(
            event(&mut c).await.seq,
            3,
            "the new scope, from the reload on"
        );

        tokens.send_replace(Arc::new(Tokens::new(None, vec![station("s2", "3301")])));
        let ended = tokio::time::timeout(2 * KEEP_ALIVE, c.next_chunk()).await;
        assert!(
            ended.unwrap().is_none(),
            "revoked: the stream ends at its next keep-alive, idle or not"
        );

        // Revoked with events waiting: none of them goes, and the stream stays ended (a write
        // that saw the revocation while gathering its frames ends it at the next one).
        let (tokens, in_force) =
            watch::channel(Arc::new(Tokens::new(None, vec![station("s1", "6201")])));
        let mut c = hub
            .connect(scoped("6201"), None)
            .revocable(in_force, Some("Bearer s1"));
        assert!(hello(&mut c).await);
        changed(&hub, "B-1", "620102");
        tokens.send_replace(Arc::new(Tokens::new(None, vec![station("s3", "6201")])));
        changed(&hub, "B-2", "620102");
        assert!(c.next_chunk().await.is_none());
        changed(&hub, "B-3", "620102");
        assert!(c.next_chunk().await.is_none(), "and stays ended");
    }

    #[tokio::test]
    async fn a_first_connection_is_told_to_resync_then_gets_live_events_in_scope() {
        let hub = Hub::default();
        let mut all = hub.connect(Access::All, None);
        let mut station = hub.connect(scoped("6201"), None);
        assert!(hello(&mut all).await && hello(&mut station).await);
        changed(&hub, "A-1", "330100");
        changed(&hub, "A-2", "620102-GWM");
        assert_eq!(event(&mut all).await.seq, 1);
        let e = event(&mut all).await;
        assert_eq!((e.seq, e.kind), (2, Kind::Changed));
        assert_eq!(
            data(&e),
            r#"{"alert_id":"A-2","jurisdiction":"620102-GWM"}"#
        );
        let seen = event(&mut station).await;
        assert_eq!(seen.seq, 2, "the other jurisdiction's event is left out");
    }

    #[tokio::test]
    async fn a_reconnect_replays_what_it_missed_within_its_scope() {
        let hub = Hub::default();
        changed(&hub, "A-1", "620102");
        let first = id(&hub.log().ring[0]);
        changed(&hub, "A-2", "330100");
        changed(&hub, "A-3", "620103");
        let mut c = hub.connect(scoped("6201"), Some(&first));
        assert!(!hello(&mut c).await, "nothing lost: no resync");
        assert_eq!(event(&mut c).await.seq, 3);
        changed(&hub, "A-4", "620104");
        assert_eq!(event(&mut c).await.seq, 4, "then live, without a gap");

        let latest = id(hub.log().ring.back().unwrap());
        let mut up_to_date = hub.connect(Access::All, Some(&latest));
        assert!(!hello(&mut up_to_date).await);
    }

    #[tokio::test]
    async fn an_id_it_cannot_replay_asks_for_a_resync() {
        let hub = Hub::default();
        for i in 0..RING + 2 {
            changed(&hub, &format!("A-{i}"), "620102");
        }
        let boot = hub.inner.boot.clone();
        for id in [
            format!("{boot}-1"),             // evicted from the ring
            format!("{boot}-999999"),        // never given
            "0123456789abcdef-3".to_owned(), // another process
            "garbage".to_owned(),
        ] {
            let mut c = hub.connect(Access::All, Some(&id));
            assert!(hello(&mut c).await, "{id}");
        }
        let kept = format!("{boot}-2");
        assert!(!hello(&mut hub.connect(Access::All, Some(&kept))).await);
    }

    #[tokio::test]
    async fn a_lagging_connection_catches_up_from_the_ring_or_resyncs() {
        let hub = Hub::default();
        let mut c = hub.connect(Access::All, None);
        hello(&mut c).await;
        for i in 0..CHANNEL + 10 {
            changed(&hub, &format!("A-{i}"), "620102");
        }
        for seq in 1..=(CHANNEL + 10) as u64 {
            assert_eq!(event(&mut c).await.seq, seq, "caught up from the ring");
        }

        let mut slow = hub.connect(Access::All, None);
        hello(&mut slow).await;
        for i in 0..RING + 10 {
            changed(&hub, &format!("B-{i}"), "620102");
        }
        assert!(matches!(slow.next().await, Some(Frame::Resync)));
        changed(&hub, "B-last", "620102");
        let e = event(&mut slow).await;
        assert!(data(&e).contains("B-last"), "live again after the resync");
    }

    /// Whether the sources follow, once the keeper has seen what happened before.
    async fn following(hub: &Hub) -> bool {
        tokio::task::yield_now().await;
        hub.inner.following.borrow().is_some()
    }

    #[tokio::test(start_paused = true)]
    async fn the_sources_follow_while_a_page_is_connected_and_a_while_after() {
        let hub = Hub::default();
        tokio::spawn(hub.clone().keep_demand());
        assert!(!following(&hub).await, "nobody connected");
        tokio::time::sleep(LINGER * 2).await;
        assert!(!following(&hub).await);

        let from = wall_clock();
        let mut page = hub.connect(Access::All, None);
        hello(&mut page).await;
        let mut rx = hub.inner.following.subscribe();
        let since = rx.wait_for(Option::is_some).await.unwrap().unwrap();
        assert!(
            (from - SKEW_MS..=wall_clock()).contains(&since),
            "from just before the page connected: {since}"
        );
        changed(&hub, "A-1", "620102");
        let seen = id(&*event(&mut page).await);
        drop(page);

        // A reload within LINGER: still following, nothing missed.
        tokio::time::sleep(LINGER - Duration::from_secs(1)).await;
        assert!(following(&hub).await);
        let reload = hub.connect(Access::All, Some(&seen));
        drop(reload);
        tokio::time::sleep(LINGER - Duration::from_secs(1)).await;
        assert!(following(&hub).await, "LINGER counts from the last page");

        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !following(&hub).await,
            "stopped LINGER after the last page left"
        );
        let mut away = hub.connect(Access::All, Some(&seen));
        assert!(!hello(&mut away).await, "what was kept replays");
        assert!(
            matches!(
                tokio::time::timeout(Duration::from_secs(1), away.next()).await,
                Ok(Some(Frame::Resync))
            ),
            "then a refetch, for what the sources did not read"
        );
        rx.wait_for(Option::is_some).await.unwrap();
        assert_eq!(hub.inner.connections.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn escalations_are_deduplicated_by_id() {
        let hub = Hub::default();
        let mut recent = Recent::new();
        let e1 = br#"{"escalation_id":"A-1:visit:1","alert_id":"A-1","jurisdiction":"620102","kind":"breach"}"#;
        assert!(hub.on_escalation(&mut recent, e1));
        assert!(!hub.on_escalation(&mut recent, e1), "redelivered");
        assert!(!hub.on_escalation(&mut recent, b"not json"));
        let log = hub.log();
        assert_eq!(log.ring.len(), 1);
        assert_eq!(log.ring[0].kind, Kind::Escalation);
        assert_eq!(log.ring[0].jurisdiction, "620102");
        assert_eq!(data(&log.ring[0]).as_bytes(), e1, "passed on as published");
    }

    #[test]
    fn the_dedup_window_forgets_the_oldest() {
        let mut recent = Recent::new();
        for i in 0..RECENT_ESCALATIONS {
            assert!(recent.first_time(&i.to_string()));
        }
        assert!(!recent.first_time("0"));
        assert!(recent.first_time("new"));
        assert!(recent.first_time("0"), "forgotten after the window");
        assert_eq!(recent.seen.len(), RECENT_ESCALATIONS);
    }
}
