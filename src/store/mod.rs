//! Redis: per-partition state and clocks, written atomically by Lua scripts.
//!
//! Every key of partition *p* carries the hash tag `{<prefix>:<p>}`, so each script touches one
//! Redis Cluster slot and ownership of the state moves with the Kafka partition.
//!
//! | key                        | type   | holds                                              |
//! |----------------------------|--------|----------------------------------------------------|
//! | `{fsla:p}:owner`           | hash   | `epoch` and `token` of the owner (fencing), `seq` its writes (rollback detection), `open` the number of open alerts, `process` and `instance` who claimed (take-back after a restart) |
//! | `{fsla:p}:offsets`         | hash   | highest applied offset per input topic             |
//! | `{fsla:p}:r:<b>`           | hash   | alert id → `#<handle> ` + [`record`] of the open alerts of [`alert_bucket`] *b* (small records) |
//! | `{fsla:p}:a:<alert_id>`    | string | the alert's [`AlertState`] as a compact [`record`], when not in a bucket (closed, held, or too big) |
//! | `{fsla:p}:clock:<r>`, `:clock:dir` | zsets | one entry per open alert of handle range *r* (its handle; an alert without a handle, by its id, in its record's bucket [`alert_bucket`]): its next due time (ms); the directory holds each bucket's earliest |
//! | `{fsla:p}:overdue`         | zset   | open alerts with a breached stage, by deadline     |
//! | `{fsla:p}:outbox`          | stream | escalations written with their transition, an entry a batch (`n` = how many), deleted once the broker acked all of it |
//! | `{fsla:p}:outbox:<entry id>` | string | that entry's escalations, one JSON a line, deleted with it |
//! | `{fsla:p}:outbox:staged:<token>` | string | a batch's escalations on their way to the outbox, for the script to take (expires after 60 s) |
//! | `{fsla:p}:am`              | stream | Alertmanager alerts written with their transition, deleted once posted |
//! | `{fsla:p}:policy`          | hash   | policy snapshots by version, written with the first alert that names one |
//! | `{fsla:p}:due:dir`, `:due:<n>` | zsets | open stages not yet breached, by deadline (ms): `/v1/open`; bucketed; one shared entry for an alert whose open stages are all quiet |
//! | `{fsla:p}:late:dir`, `:late:<n>` | zsets | open stages with a breach level fired, by deadline: `/v1/overdue`; bucketed |
//! | `{fsla:p}:names`           | hash   | the dictionary of index members and record names: `<jurisdiction>␟<risk>␟<stage>` and `=<name>` → code, `#<code>` → it, `n` codes given |
//! | `{fsla:p}:due:+<after>…:dir`, `…:<n>` | zsets | shared `due` entries whose stages are due that long after the first ([`IndexEntry::index`]); bucketed |
//! | `{fsla:p}:due:shared`      | set    | the names (`+<after>…`) of the shared entries' indexes that hold entries |
//! | `{fsla:p}:ids:<r>`         | hash   | handle → alert id of the open alerts of handle range *r*, the handle but its last character (the owner's `handles` counts handles given) |
//! | `{fsla:p}:openstat`        | hash   | `<jurisdiction>␟<stage>` → open stages now (entries of `due` + `late`) |
//! | `{fsla:p}:day:<YYYY-MM-DD>`| hash   | `<jurisdiction>␟<stage>␟<on_time\|late\|breached>` → count that day (display zone); expires after 8 days |
//! | `{fsla:p}:events`          | stream | one entry per batch that changed alerts: `c` = JSON `[[alert_id, jurisdiction], …]` (its last 10 s) |
//! | `{fsla:p}:events:trimmed`  | string | the id of the newest entry trimmed from `events` |
//!
//! The board's keys (`due`, `late`, `openstat`, `day:*`, `events`) are written by the same
//! script call as the records they describe, from differences the plan computes between the
//! records as loaded and as written ([`BoardWrite`]), so they never disagree with the records,
//! also after a Redis rollback and its replay. A `due` or `late` member carries everything a
//! list shows (`<jurisdiction>␟<risk>␟<stage>␟<alert_id>␟<warned 0|1, or level>`, ␟ = `\x1f`,
//! which a jurisdiction never contains), so a list page reads no record. Redis holds it short,
//! `<code>␟<handle>␟<x>` (`lua/names.lua`), and the clock names alerts by handle too. The
//! plan and the readers deal in the long form ([`IndexEntry`], [`ListedStage`], ids): the
//! owner codes what it writes, decodes what it loads and gives the handles from its copy of
//! the partition's names ([`Names`], part of its [`Fence`]), the other scripts decode for
//! readers, and only the order and cursors of a page ([`IndexMatch::key`]) are the
//! short form.
//!
//! An alert whose open stages are all still quiet (none warned or breached) has one `due`
//! entry for them all ([`IndexEntry::shared`]), which a list reads as one a stage.
//!
//! `due` and `late` hold one entry per open stage, most of an open alert's memory, so they are
//! bucketed (`lua/buckets.lua`): a directory zset `…:dir` of buckets, each a zset of at most
//! 64 entries that hold one range of deadlines, which Redis keeps as a listpack (member + ~12
//! bytes an entry, where one big zset's skiplist takes ~150). A claim moves an earlier
//! version's plain zsets into buckets.
//!
//! An open alert's record lives in its bucket ([`alert_bucket`], one of [`ALERT_BUCKETS`] per
//! partition), for the same reason: ~30 alerts a bucket at 125 000 open alerts per partition, so
//! each bucket stays a listpack. A record goes to its bucket when it is no longer than the
//! server's `hash-max-listpack-value` ([`Store::fit_to_server`]), else to its own key; closed
//! alerts' records have their own keys, which expire. Records an earlier version wrote still
//! load, and move to their bucket when next written. Its clock entry and id map entry live in
//! its handle's range (at most 62 handles given one after another, `lua/names.lua`), so a batch
//! of new alerts writes both a call per range, not a call per alert each.

pub mod changes;
mod conn;
mod names;
pub mod record;

pub use conn::RedisConn;
pub use names::Names;

use redis::{AsyncCommands, Script};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::domain::sla::OpenStage;
use crate::domain::{Alert, AlertState, Millis, Policies, Risk};

/// A Redis failure, or the fence refusing a stale owner.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("partition {partition} is owned by a newer epoch: {message}")]
    Fenced { partition: i32, message: String },
    /// Redis holds less than this owner wrote: it lost writes (replica promoted, crash, restore).
    #[error("partition {partition} rolled back in Redis: {message}")]
    Rollback { partition: i32, message: String },
    /// Redis holds a record of an alert the batch took as new without reading it
    /// ([`AlertWrite::unread`]); nothing of the batch was written.
    #[error("partition {partition}: Redis holds a record of an alert the batch took as new")]
    Held { partition: i32 },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("stored state of alert {alert_id} is unreadable: {source}")]
    Corrupt {
        alert_id: String,
        source: record::RecordError,
    },
    /// A `due` or `late` member that does not decode: written by something other than this
    /// version's batch script.
    #[error("partition {partition}: index entry {entry:?} is unreadable")]
    CorruptIndex { partition: i32, entry: String },
    /// An `events` entry whose `c` field is not the JSON this version writes.
    #[error("partition {partition}: change entry {stream_id} is unreadable: {problem}")]
    CorruptChange {
        partition: i32,
        stream_id: String,
        problem: String,
    },
}

impl StoreError {
    /// Worth retrying with backoff (connection trouble), as opposed to fenced, rolled back or
    /// corrupt.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Redis(_))
    }
}

/// The key names of one partition.
#[derive(Debug, Clone)]
pub struct PartitionKeys {
    tag: String,
}

impl PartitionKeys {
    pub fn new(prefix: &str, partition: i32) -> PartitionKeys {
        PartitionKeys {
            tag: format!("{{{prefix}:{partition}}}"),
        }
    }
    pub fn owner(&self) -> String {
        format!("{}:owner", self.tag)
    }
    pub fn offsets(&self) -> String {
        format!("{}:offsets", self.tag)
    }
    /// The clock: its buckets (by handle range) and their directory start with this name.
    pub fn clock(&self) -> String {
        format!("{}:clock", self.tag)
    }
    /// The open alerts' records: their per-alert bucket hashes start with this name.
    pub fn records(&self) -> String {
        format!("{}:r", self.tag)
    }
    /// Earlier versions' zset of open alerts, read once by the first claim (now a count).
    pub fn open(&self) -> String {
        format!("{}:open", self.tag)
    }
    pub fn overdue(&self) -> String {
        format!("{}:overdue", self.tag)
    }
    /// A stream, an entry a batch with escalations; the entry's escalations are at
    /// `<outbox>:<entry id>` (or in the entry, as `b`, as versions before wrote it).
    pub fn outbox(&self) -> String {
        format!("{}:outbox", self.tag)
    }
    /// Where an owner stages a batch's escalations for `apply_batch.lua` to move into the
    /// outbox: its own key, by its claim's token, so two processes that claim the partition
    /// never take each other's.
    pub fn staged(&self, token: &str) -> String {
        format!("{}:outbox:staged:{token}", self.tag)
    }
    pub fn alertmanager(&self) -> String {
        format!("{}:am", self.tag)
    }
    pub fn policies(&self) -> String {
        format!("{}:policy", self.tag)
    }
    /// Alerts whose record is not in a bucket (too big for one, closed, or an earlier
    /// version's): each its own key, this name then `:<alert_id>`.
    pub fn alerts(&self) -> String {
        format!("{}:a", self.tag)
    }
    pub fn due(&self) -> String {
        format!("{}:due", self.tag)
    }
    pub fn late(&self) -> String {
        format!("{}:late", self.tag)
    }
    /// The dictionary of the stage indexes' short members and the records' names
    /// (`lua/names.lua`).
    pub fn names(&self) -> String {
        format!("{}:names", self.tag)
    }
    /// The `due` indexes of shared entries ([`IndexEntry::index`]) the partition has
    /// written, a set of their names: a list reads each, once a stage.
    pub fn shared(&self) -> String {
        format!("{}:shared", self.list(StageList::Due))
    }
    /// The id map: open alerts' handles → their ids (`lua/names.lua`); its buckets start with
    /// this name.
    pub fn ids(&self) -> String {
        format!("{}:ids", self.tag)
    }
    pub fn list(&self, list: StageList) -> String {
        match list {
            StageList::Due => self.due(),
            StageList::Late => self.late(),
        }
    }
    pub fn openstat(&self) -> String {
        format!("{}:openstat", self.tag)
    }
    /// The station counters of `date` (`YYYY-MM-DD` in the display zone).
    pub fn day(&self, date: &str) -> String {
        format!("{}:day:{date}", self.tag)
    }
    /// The change stream the board's live events follow.
    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }
    /// The id of the newest entry trimmed from the change stream.
    pub fn events_trimmed(&self) -> String {
        format!("{}:events:trimmed", self.tag)
    }
}

/// Per-alert buckets of a partition: enough that 400 000 open alerts per partition still make
/// listpack-sized buckets (≤ 128 entries), few enough that a quiet partition's are not mostly
/// overhead.
pub const ALERT_BUCKETS: u32 = 4096;

/// Rule: the bucket of an alert's record (and clock entry, if it has no handle). A polynomial
/// hash modulo a prime, exact in Lua's doubles: `buckets.lua` computes the same to move an
/// earlier version's clock. Reduced every 8 bytes, not every byte, for the same remainder: from
/// below the prime, 8 steps of `h * 31 + byte` stay below 2^60 (a division a byte was 2.3% of
/// the processor's time taking in new alerts, counted).
pub fn alert_bucket(alert_id: &str) -> u32 {
    const PRIME: u64 = 1_000_003;
    let h = alert_id.as_bytes().chunks(8).fold(0u64, |h, chunk| {
        chunk.iter().fold(h, |h, &b| h * 31 + u64::from(b)) % PRIME
    });
    (h % u64::from(ALERT_BUCKETS)) as u32
}

/// Redis's default `hash-max-listpack-value`: the longest value a hash keeps as a listpack.
const LISTPACK_VALUE_DEFAULT: usize = 64;

/// Records kept in buckets are at most this long whatever the server allows: a listpack is
/// searched and rewritten whole.
const LISTPACK_VALUE_MAX: usize = 256;

/// Separates the parts of index members and counter fields: a control character, which no
/// jurisdiction (validated), risk, stage name or alert id contains.
pub const SEP: char = '\x1f';

/// How long a day's station counters are kept: the board shows a week back, plus a day so the
/// oldest day is whole in every zone.
pub const DAY_TTL_SECONDS: i64 = 8 * 24 * 3600;

/// How long a batch's staged escalations ([`PartitionKeys::staged`]) outlive a script that did
/// not take them (fenced, or its batch written before): the script runs right after, in the same
/// pipeline, and finds them gone only if this passed; then it refuses the batch, which is sent
/// again with them.
const STAGED_TTL_MS: u64 = 60_000;

/// How far back `{p}:events` reaches (`XTRIM MINID`, by Redis's clock): the stream is only the
/// relay from a partition's writer to the boards' readers, which poll every 300 ms: over 30
/// polls. A reader that falls further behind finds the gap and tells its pages to refetch
/// ([`Changes::gap`]); a page's own replays come from its process's memory, not from here.
/// Trimmed by time, the stream costs what the last seconds wrote (at most ~25 MB at 60,000
/// changes a second), not the last batches of a quiet day for good.
pub const EVENTS_WINDOW_MS: u64 = 10_000;

/// The board's two stage indexes (docs/contract.md §10.4). `Due` sorts first: the batch script
/// is sent a batch's due entries, then its late ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageList {
    /// `{p}:due`: open stages not yet breached (`/v1/open`), soonest deadline first.
    Due,
    /// `{p}:late`: open stages with a breach level fired (`/v1/overdue`), most overdue first.
    Late,
}

impl StageList {
    /// The index a stage belongs in: late once any breach level fired.
    pub fn of(stage: &OpenStage) -> StageList {
        if stage.level > 0 {
            StageList::Late
        } else {
            StageList::Due
        }
    }
}

/// Separates the stages of a shared entry ([`IndexEntry::shared`]), and the `{p}:openstat`
/// fields it counts in.
pub const SHARED_SEP: char = '\x1e';

/// One entry of `{p}:due` or `{p}:late`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexEntry {
    pub list: StageList,
    /// The score: the stage's deadline (a shared entry's: its earliest stage's).
    pub deadline: Millis,
    pub member: String,
    /// The `{p}:openstat` fields the entry counts in, `<jurisdiction>␟<stage>`: one, or a
    /// shared entry's, one a stage, separated by [`SHARED_SEP`].
    pub station: String,
}

impl IndexEntry {
    /// The entry of one open stage of `alert`.
    pub fn of(alert: &Alert, s: &OpenStage) -> IndexEntry {
        let list = StageList::of(s);
        let last = match list {
            StageList::Due => u8::from(s.warned),
            StageList::Late => s.level,
        };
        let mut member = MemberText::new(alert, 1);
        member.0.push_str(s.stage.as_str());
        IndexEntry {
            list,
            deadline: s.deadline,
            member: member.end(alert, last),
            station: station_field(&alert.jurisdiction, s.stage.as_str()),
        }
    }

    /// One `due` entry for `stages`, open stages of `alert` none of which is warned or
    /// breached, in place of an entry a stage: an alert costs Redis about 18,000 instructions
    /// an entry it writes (BENCHMARKS.md, "What is left of the open set's Redis"), and most
    /// open alerts are new ones waiting for their first warning or disposition. Scored by the
    /// earliest stage's deadline, its stage part lists the stages in (deadline, ladder) order,
    /// each after the first with how long after the first it is due:
    /// `visit␞meet+3600000␞feedback+18000000`, its last part `v`. A list reads each stage from
    /// it as if it had its own entry (`lua/list_stages.lua`).
    ///
    /// Built in place, not by `format!` a part: this was a fifth of planning a batch of new
    /// alerts (`cargo bench --bench domain -- plan`).
    pub fn shared(alert: &Alert, stages: &[OpenStage]) -> IndexEntry {
        debug_assert!(!stages.is_empty() && stages.iter().all(|s| !s.warned && s.level == 0));
        let mut order: Vec<&OpenStage> = stages.iter().collect();
        order.sort_by_key(|s| s.deadline);
        let first = order[0].deadline;
        let jurisdiction = alert.jurisdiction.as_str();
        let mut member = MemberText::new(alert, order.len());
        let mut station =
            String::with_capacity(order.len() * (jurisdiction.len() + 2 + STAGE_NAME_HINT));
        for (k, s) in order.iter().enumerate() {
            if k > 0 {
                member.0.push(SHARED_SEP);
                station.push(SHARED_SEP);
            }
            member.0.push_str(s.stage.as_str());
            if k > 0 {
                write!(member.0, "+{}", s.deadline - first).expect("a String takes any text");
            }
            push_station_field(&mut station, jurisdiction, s.stage.as_str());
        }
        IndexEntry {
            list: StageList::Due,
            deadline: first,
            member: member.end(alert, 'v'),
            station,
        }
    }

    /// The index the entry belongs in, as the batch script names it: `d` (`due`), `l`
    /// (`late`), or for a shared entry the `due` index of its offsets, `+<after>…` (each stage
    /// after the first, how long after it it is due: `+3600000+18000000`, the key
    /// `{p}:due:+3600000+18000000`), in which every entry stands for its stages alike and a
    /// list reads it once a stage (`lua/list_stages.lua`).
    pub fn index(&self) -> String {
        if self.list == StageList::Late {
            return "l".to_owned();
        }
        let shape = self.member.split(SEP).nth(2).unwrap_or_default();
        let shared = self
            .member
            .strip_suffix('v')
            .is_some_and(|m| m.ends_with(SEP));
        if !shared || !shape.contains(SHARED_SEP) {
            return "d".to_owned();
        }
        let mut index = String::with_capacity(shape.len());
        for (_, after) in shape
            .split(SHARED_SEP)
            .skip(1)
            .filter_map(|stage| stage.rsplit_once('+'))
        {
            index.push('+');
            index.push_str(after);
        }
        index
    }

    /// The `{p}:openstat` fields the entry counts in.
    pub fn stations(&self) -> impl Iterator<Item = &str> {
        self.station.split(SHARED_SEP)
    }
}

/// How long a stage's name is, as a rule: room reserved for each when a member is built.
const STAGE_NAME_HINT: usize = 24;

/// An index member being built, `<jurisdiction>␟<risk>␟<stage part>␟<alert_id>␟<last>`: its
/// head on creation, its stage part pushed by the caller, its tail by [`MemberText::end`].
struct MemberText(String);

impl MemberText {
    fn new(alert: &Alert, stages: usize) -> MemberText {
        let mut text = String::with_capacity(
            alert.jurisdiction.len() + alert.alert_id.len() + 16 + stages * STAGE_NAME_HINT,
        );
        text.push_str(&alert.jurisdiction);
        text.push(SEP);
        text.push_str(alert.risk.as_str());
        text.push(SEP);
        MemberText(text)
    }

    fn end(mut self, alert: &Alert, last: impl std::fmt::Display) -> String {
        self.0.push(SEP);
        self.0.push_str(&alert.alert_id);
        self.0.push(SEP);
        write!(self.0, "{last}").expect("a String takes any text");
        self.0
    }
}

/// A stage as a list shows it, decoded from its index entry alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStage {
    pub alert_id: String,
    pub jurisdiction: String,
    pub risk: Risk,
    pub stage: String,
    pub deadline: Millis,
    /// The warning fired or was superseded (always true in `late`).
    pub warned: bool,
    /// Highest breach level fired (0 in `due`).
    pub level: u8,
}

impl ListedStage {
    /// Decodes a member of `list` with its score; `None` if it is not one this version writes.
    pub fn decode(list: StageList, deadline: Millis, member: &str) -> Option<ListedStage> {
        let mut parts = member.split(SEP);
        let (jurisdiction, risk, stage, alert_id, last) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if parts.next().is_some() {
            return None;
        }
        let last: u8 = last.parse().ok()?;
        let (warned, level) = match list {
            StageList::Due if last <= 1 => (last == 1, 0),
            StageList::Late if last >= 1 => (true, last),
            _ => return None,
        };
        Some(ListedStage {
            alert_id: alert_id.to_owned(),
            jurisdiction: jurisdiction.to_owned(),
            risk: Risk::parse(risk)?,
            stage: stage.to_owned(),
            deadline,
            warned,
            level,
        })
    }
}

/// What a station's day counts (docs/contract.md §10.4, the board's station view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DayCount {
    /// A stage satisfied by an event no later than its deadline.
    OnTime,
    /// A stage satisfied after its deadline.
    Late,
    /// A stage's level-1 breach fired.
    Breached,
}

impl DayCount {
    pub const ALL: [DayCount; 3] = [DayCount::OnTime, DayCount::Late, DayCount::Breached];

    pub fn as_str(self) -> &'static str {
        match self {
            DayCount::OnTime => "on_time",
            DayCount::Late => "late",
            DayCount::Breached => "breached",
        }
    }
}

/// `<jurisdiction>␟<stage>`: a field of `{p}:openstat`.
pub fn station_field(jurisdiction: &str, stage: &str) -> String {
    let mut field = String::with_capacity(jurisdiction.len() + 1 + stage.len());
    push_station_field(&mut field, jurisdiction, stage);
    field
}

/// [`station_field`], appended to `out`.
fn push_station_field(out: &mut String, jurisdiction: &str, stage: &str) {
    out.push_str(jurisdiction);
    out.push(SEP);
    out.push_str(stage);
}

/// `<jurisdiction>␟<stage>␟<count>`: a field of `{p}:day:<date>`.
pub fn day_field(jurisdiction: &str, stage: &str, count: DayCount) -> String {
    format!("{jurisdiction}{SEP}{stage}{SEP}{}", count.as_str())
}

/// Splits a field of `{p}:openstat` (no count) or `{p}:day:<date>` (with its count).
pub fn parse_station_field(field: &str) -> Option<(&str, &str, Option<DayCount>)> {
    let mut parts = field.split(SEP);
    let (jurisdiction, stage) = (parts.next()?, parts.next()?);
    let count = match parts.next() {
        None => None,
        Some(c) => Some(DayCount::ALL.into_iter().find(|d| d.as_str() == c)?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some((jurisdiction, stage, count))
}

/// The owner's side of the fence: every write carries it, and Redis refuses a stale owner
/// (`FENCED`) or tells an owner it is ahead of Redis (`ROLLBACK`).
#[derive(Debug, Clone)]
pub struct Fence {
    pub epoch: i64,
    /// Random per claim, so two owners never share an epoch after Redis forgot a claim.
    pub token: String,
    /// Writes this owner knows Redis holds; one more after every non-empty batch.
    pub seq: i64,
    /// The partition's dictionary and handle counter as of those writes, read at the claim:
    /// the owner codes what it writes and gives new alerts their handles ([`names`]).
    pub names: Names,
}

/// What one partition owner learns when it takes the partition.
#[derive(Debug, Clone)]
pub struct Claim {
    pub fence: Fence,
    /// Highest applied offset per input topic name.
    pub applied: HashMap<String, i64>,
}

impl Claim {
    pub fn epoch(&self) -> i64 {
        self.fence.epoch
    }
}

/// How one batch changes an alert's entry in an index: the script skips what did not change,
/// most of an alert's index writes (Redis's CPU is half of a backlog drain's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexChange {
    Keep,
    Set(Millis),
    Remove,
}

impl IndexChange {
    /// From the entry Redis holds (`None`: not known, write it anyway) to `after`.
    fn between(before: Option<Option<Millis>>, after: Option<Millis>) -> IndexChange {
        match (before, after) {
            (Some(b), a) if b == a => IndexChange::Keep,
            (_, Some(a)) => IndexChange::Set(a),
            (_, None) => IndexChange::Remove,
        }
    }

    /// As the batch script reads it: `-` keep, `` remove, else the score.
    fn arg(self) -> String {
        match self {
            IndexChange::Keep => "-".into(),
            IndexChange::Set(score) => score.to_string(),
            IndexChange::Remove => String::new(),
        }
    }
}

/// One alert record to write, with its index entries.
#[derive(Debug, Clone)]
pub struct AlertWrite {
    pub alert_id: String,
    /// The [`record`] of the state.
    pub state: Vec<u8>,
    /// Its entry in `{p}:clock`: the next due time.
    pub clock: IndexChange,
    /// Its entry in `{p}:overdue`: the earliest deadline of a breached stage.
    pub overdue: IndexChange,
    /// Closed alerts and held dispositions expire after `retention`; open alerts never do.
    pub ttl_ms: Option<i64>,
    /// How the partition's count of open alerts changes: -1, 0 or 1.
    pub opened: i64,
    /// Redis held a record of the alert before (in its bucket or under its own key), which
    /// the write may have to move; a new alert's write is one command.
    pub stored: bool,
    /// Not read before the write: the owner took the alert as new (its batch holds the alert
    /// itself). The batch script checks that Redis holds no record of it, else refuses the
    /// batch ([`StoreError::Held`]) and writes nothing.
    pub unread: bool,
}

impl AlertWrite {
    /// The write of `after`, the state of `alert_id`; `before` is what Redis holds (the empty
    /// state for an unknown id). `indexed`: Redis's index entries are the ones `before` implies,
    /// so unchanged ones need no write; not so in a firing round, where a stale clock entry
    /// must be overwritten or it would fire again at once.
    pub fn new(
        alert_id: &str,
        before: &AlertState,
        after: &AlertState,
        policies: &Policies,
        indexed: bool,
    ) -> AlertWrite {
        let opened = i64::from(after.is_open()) - i64::from(before.is_open());
        let stored = *before != AlertState::default();
        let before = Some(before).filter(|_| indexed);
        AlertWrite {
            alert_id: alert_id.to_owned(),
            state: record::encode(alert_id, after),
            clock: IndexChange::between(
                before.map(|b| b.next_due(policies)),
                after.next_due(policies),
            ),
            overdue: IndexChange::between(
                before.map(AlertState::overdue_since),
                after.overdue_since(),
            ),
            ttl_ms: (!after.is_open()).then_some(policies.retention),
            opened,
            stored,
            unread: false,
        }
    }
}

/// What a written batch tells its writer.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The outbox entry that holds the batch's escalations, if it has any
    /// ([`OutboxEntry::of_batch`]).
    pub outbox: Option<String>,
    /// The partition clock's earliest due time after the batch.
    pub next_due: Option<Millis>,
}

/// Everything one batch (or one firing round) changes, written in one script call.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub offsets: Vec<(String, i64)>,
    pub alerts: Vec<AlertWrite>,
    /// `(escalation_id, json)` in publishing order.
    pub escalations: Vec<(String, String)>,
    /// Alertmanager alerts (a JSON array each), queued durably for the Alertmanager sink.
    pub notices: Vec<String>,
    /// `(version, snapshot JSON)` of policies the batch's alerts name and Redis may not hold yet.
    pub policies: Vec<(String, String)>,
    /// What the batch changes in the board's indexes, counters and change stream.
    pub board: BoardWrite,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
            && self.alerts.is_empty()
            && self.escalations.is_empty()
            && self.notices.is_empty()
            && self.policies.is_empty()
            && self.board.is_empty()
    }
}

/// The board's part of a batch, computed by the plan from the records as loaded and as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardWrite {
    /// Index entries of the loaded records that the written ones no longer have; removed first.
    pub remove: Vec<IndexEntry>,
    /// Index entries of the written records that the loaded ones did not have.
    pub add: Vec<IndexEntry>,
    /// Station counters to raise: date (`YYYY-MM-DD`, display zone) → [`day_field`] → by how
    /// much.
    pub days: BTreeMap<String, BTreeMap<String, i64>>,
    /// `(alert_id, jurisdiction)` of every alert whose record the batch changed, for the
    /// board's live view (`{p}:events`).
    pub changed: Vec<(String, String)>,
}

impl BoardWrite {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.add.is_empty()
            && self.days.is_empty()
            && self.changed.is_empty()
    }
}

/// What one partition is asked for a list page: the index entries after `after`, by
/// `(deadline, key)`, that pass the filters.
#[derive(Debug, Clone, Default)]
pub struct IndexQuery<'a> {
    /// Start after this `(deadline, key)` position; from the beginning if `None`.
    pub after: Option<(Millis, &'a str)>,
    /// Only deadlines at or before this.
    pub max_deadline: Option<Millis>,
    /// At most this many matches.
    pub limit: usize,
    /// At most this many entries examined when filtering, so a filter that matches little
    /// costs a bounded amount per request; the page may then be short.
    pub budget: usize,
    /// Jurisdiction prefixes, any of which matches; `None`: every jurisdiction.
    pub prefixes: Option<&'a [String]>,
    pub risk: Option<Risk>,
    pub stage: Option<&'a str>,
}

/// One entry of a list page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexMatch {
    pub deadline: Millis,
    /// The entry as the index holds it, short (`lua/names.lua`): the index's order, in every
    /// partition the same, and what a cursor names.
    pub key: String,
    /// The entry as [`IndexEntry`] wrote it, which [`ListedStage::decode`] reads.
    pub member: String,
}

/// One partition's answer to an [`IndexQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexPage {
    /// The matches, in `(deadline, key)` order.
    pub matches: Vec<IndexMatch>,
    /// The last entry examined, `(deadline, key)`: everything up to it was seen. `None` if
    /// nothing was.
    pub frontier: Option<(Millis, String)>,
    /// The index holds nothing more in range after `frontier`.
    pub exhausted: bool,
}

/// A list page merged over partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergedPage {
    /// `(partition, match)` in `(deadline, key)` order.
    pub items: Vec<(i32, IndexMatch)>,
    /// Where the next page starts, `(deadline, key)`; `None` when the list is done.
    pub next: Option<(Millis, String)>,
}

/// Rule: merges the partitions' pages of one request into one page in `(deadline, key)`
/// order. A partition that stopped early (its budget or `limit` reached) has seen its index
/// only up to its frontier, so only matches up to the lowest such frontier are certain to be
/// complete; the page ends there, short if need be, and the next one starts after it. Every
/// partition examined at least one entry past the cursor, so each page moves forward.
pub fn merge_pages(pages: Vec<(i32, IndexPage)>, limit: usize) -> MergedPage {
    let bound: Option<(Millis, String)> = pages
        .iter()
        .filter(|(_, p)| !p.exhausted)
        .filter_map(|(_, p)| p.frontier.clone())
        .min();
    let all_exhausted = pages.iter().all(|(_, p)| p.exhausted);
    let mut candidates: Vec<(IndexMatch, i32)> = pages
        .into_iter()
        .flat_map(|(partition, p)| p.matches.into_iter().map(move |m| (m, partition)))
        .filter(|(m, _)| {
            bound
                .as_ref()
                .is_none_or(|(bd, bk)| (m.deadline, m.key.as_str()) <= (*bd, bk.as_str()))
        })
        .collect();
    candidates.sort();
    let more = candidates.len() > limit;
    candidates.truncate(limit);
    let next = if more || (candidates.len() == limit && !all_exhausted) {
        candidates.last().map(|(m, _)| (m.deadline, m.key.clone()))
    } else if all_exhausted {
        None
    } else {
        bound
    };
    MergedPage {
        items: candidates.into_iter().map(|(m, p)| (p, m)).collect(),
        next,
    }
}

/// One partition's station counters: a day's counts and the open stages now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationCounts {
    /// [`day_field`] → count, of the day asked for.
    pub day: HashMap<String, i64>,
    /// [`station_field`] → open stages now.
    pub open: HashMap<String, i64>,
}

/// An escalation waiting in the outbox for the broker's acknowledgement. A batch's escalations
/// share one stream entry (one `XADD` a batch, not one an escalation: a burst of 90k is 90k
/// fewer stream writes), which leaves the outbox once the broker acknowledged all of them; a
/// crash in between sends the acknowledged ones again, as at-least-once allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The stream entry that holds it.
    pub stream_id: String,
    /// Its place among that entry's escalations, and how many the entry holds.
    pub index: u32,
    pub of: u32,
    pub escalation_id: String,
    pub json: String,
}

impl OutboxEntry {
    /// A written batch's escalations, `(escalation_id, json)` in order, as the outbox entry
    /// `stream_id` holds them.
    pub fn of_batch(stream_id: &str, escalations: Vec<(String, String)>) -> Vec<OutboxEntry> {
        let of = escalations.len() as u32;
        (escalations.into_iter().enumerate())
            .map(|(index, (escalation_id, json))| OutboxEntry {
                stream_id: stream_id.to_owned(),
                index: index as u32,
                of,
                escalation_id,
                json,
            })
            .collect()
    }

    /// The escalations of one outbox stream entry, in order: `n` of them in its `body` (this
    /// version's, at `<outbox>:<entry id>`) or in `b`, one JSON a line, or one as `id` and `e`
    /// (what versions before it wrote, so that an upgrade republishes what an older process
    /// left). `None` for anything else.
    fn of_stream_entry(
        entry: &redis::streams::StreamId,
        body: Option<String>,
    ) -> Option<Vec<Self>> {
        let escalations = match body.or_else(|| entry.get::<String>("b")) {
            Some(lines) => lines
                .split('\n')
                .map(|json| Some((escalation_id_of(json)?, json.to_owned())))
                .collect::<Option<Vec<_>>>()?,
            None => vec![(entry.get("id")?, entry.get("e")?)],
        };
        Some(Self::of_batch(&entry.id, escalations))
    }
}

/// Where an outbox read starts that takes the whole outbox.
pub const OUTBOX_START: &str = "-";

/// The least stream id after `id` (`<ms>-<seq>`), to read on from inclusively: Redis before
/// 6.2 has no exclusive range.
fn stream_id_after(id: &str) -> String {
    let parsed = id
        .split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)));
    match parsed {
        Some((ms, seq)) => match seq.checked_add(1) {
            Some(seq) => format!("{ms}-{seq}"),
            None => format!("{}-0", ms.saturating_add(1)),
        },
        // Not a stream id Redis makes: read on exclusively.
        None => format!("({id}"),
    }
}

/// A batch's escalations as its outbox entry holds them: one JSON a line (compact JSON has no
/// newline of its own).
fn outbox_lines(escalations: &[(String, String)]) -> String {
    let mut lines = String::with_capacity(escalations.iter().map(|(_, j)| j.len() + 1).sum());
    for (k, (_, json)) in escalations.iter().enumerate() {
        debug_assert!(!json.contains('\n'), "an escalation is compact JSON");
        if k > 0 {
            lines.push('\n');
        }
        lines.push_str(json);
    }
    lines
}

/// The `escalation_id` of an escalation's JSON (§4).
fn escalation_id_of(json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        escalation_id: String,
    }
    serde_json::from_str::<Id>(json)
        .ok()
        .map(|e| e.escalation_id)
}

/// Who claims partitions through a [`Store`]: recorded with every claim, so that a process
/// restarted with the same `group.instance.id` can take its partitions back at once, and a
/// fenced process can tell whether another process started with its instance id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Random per process.
    pub process: String,
    /// The consumer's `group.instance.id`, if it has one.
    pub instance: Option<String>,
}

impl Owner {
    /// A new process identity, with `instance` as its static group membership.
    pub fn new(instance: Option<String>) -> Owner {
        Owner {
            process: format!("{:016x}", rand::random::<u64>()),
            instance,
        }
    }
}

/// The store: one connection (multiplexed, reconnecting) and the scripts.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    prefix: String,
    /// This process, as its claims record it.
    owner: std::sync::Arc<Owner>,
    scripts: std::sync::Arc<Scripts>,
    /// The longest record kept in a bucket hash ([`Store::fit_to_server`]).
    record_limit: usize,
}

/// The Lua scripts, shared: a partition clones the [`Store`] for every call it makes, and a
/// script holds its source (the batch script's ~40 kB were copied each time).
struct Scripts {
    apply_batch: Script,
    claim_partition: Script,
    list_stages: Script,
    due_clocks: Script,
    load_records: Script,
    read_changes: Script,
    ack_outbox: Script,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub fn new(conn: RedisConn, prefix: &str) -> Store {
        Store {
            conn,
            prefix: prefix.to_owned(),
            owner: std::sync::Arc::new(Owner::new(None)),
            scripts: std::sync::Arc::new(Scripts {
                apply_batch: Script::new(concat!(
                    include_str!("lua/buckets.lua"),
                    include_str!("lua/names.lua"),
                    include_str!("lua/apply_batch.lua")
                )),
                claim_partition: Script::new(concat!(
                    include_str!("lua/buckets.lua"),
                    include_str!("lua/names.lua"),
                    include_str!("lua/claim_partition.lua")
                )),
                list_stages: Script::new(concat!(
                    include_str!("lua/buckets.lua"),
                    include_str!("lua/names.lua"),
                    include_str!("lua/list_stages.lua")
                )),
                due_clocks: Script::new(concat!(
                    include_str!("lua/names.lua"),
                    include_str!("lua/due_clocks.lua")
                )),
                read_changes: Script::new(include_str!("lua/read_changes.lua")),
                ack_outbox: Script::new(include_str!("lua/ack_outbox.lua")),
                load_records: Script::new(concat!(
                    include_str!("lua/names.lua"),
                    include_str!("lua/load_records.lua")
                )),
            }),
            record_limit: LISTPACK_VALUE_DEFAULT,
        }
    }

    pub fn keys(&self, partition: i32) -> PartitionKeys {
        PartitionKeys::new(&self.prefix, partition)
    }

    /// Keeps records in buckets up to the server's `hash-max-listpack-value` (capped at 256
    /// bytes), so that every bucket stays a listpack; Redis's default, 64, if the server does
    /// not say (`CONFIG` refused, as some managed services do). Where a record is kept is only
    /// a matter of memory: every record loads from either place.
    pub async fn fit_to_server(mut self) -> Store {
        let mut c = self.conn.clone();
        let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("hash-max-listpack-value")
            .query_async(&mut c)
            .await;
        if let Some(limit) = reply
            .ok()
            .and_then(|pair| pair.get(1).and_then(|v| v.parse::<usize>().ok()))
        {
            self.record_limit = limit.min(LISTPACK_VALUE_MAX);
        }
        self
    }

    /// The longest record kept in a bucket.
    pub fn record_limit(&self) -> usize {
        self.record_limit
    }

    /// The same store, claiming as `owner`.
    pub fn owned_by(mut self, owner: Owner) -> Store {
        self.owner = std::sync::Arc::new(owner);
        self
    }

    /// This process, as its claims record it.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Takes ownership of `partition`, fencing out any previous owner.
    pub async fn claim(&self, partition: i32) -> Result<Claim, StoreError> {
        let claim = self.claim_if(partition, false).await?;
        Ok(claim.expect("an unconditional claim always answers"))
    }

    /// Takes `partition` back without waiting for the group: only if its last claim was made
    /// with this process's `group.instance.id` (by this process's previous run, or by another
    /// process started with the same id, which is fenced out). `None` if it was not, or if this
    /// process has no instance id.
    pub async fn take_back(&self, partition: i32) -> Result<Option<Claim>, StoreError> {
        if self.owner.instance.is_none() {
            return Ok(None);
        }
        self.claim_if(partition, true).await
    }

    async fn claim_if(&self, partition: i32, only_mine: bool) -> Result<Option<Claim>, StoreError> {
        let k = self.keys(partition);
        let token = format!("{:016x}", rand::random::<u64>());
        let mut c = self.conn.clone();
        /// The claim script's answer: epoch, write sequence, applied offsets, dictionary,
        /// handles given.
        type Claimed = (i64, i64, HashMap<String, i64>, HashMap<String, String>, u64);
        let claimed: Option<Claimed> = self
            .scripts
            .claim_partition
            .key(k.owner())
            .key(k.offsets())
            .key(k.open())
            .key(k.due())
            .key(k.late())
            .key(k.clock())
            .key(k.names())
            .key(k.ids())
            .arg(&token)
            .arg(&self.owner.process)
            .arg(self.owner.instance.as_deref().unwrap_or(""))
            .arg(if only_mine { "1" } else { "0" })
            .arg(ALERT_BUCKETS)
            .invoke_async(&mut c)
            .await?;
        Ok(claimed.map(|(epoch, seq, applied, names, handles)| Claim {
            fence: Fence {
                epoch,
                token,
                seq,
                names: Names::from_claim(partition, names, handles),
            },
            applied,
        }))
    }

    /// Who made the partition's last claim; `None` if no claim is recorded.
    pub async fn claimed_by(&self, partition: i32) -> Result<Option<Owner>, StoreError> {
        let mut c = self.conn.clone();
        let (process, instance): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys(partition).owner())
            .arg("process")
            .arg("instance")
            .query_async(&mut c)
            .await?;
        Ok(process.map(|process| Owner { process, instance }))
    }

    /// Checks, writing nothing, that `fence` still owns the partition and Redis still holds
    /// everything it wrote.
    pub async fn check(&self, partition: i32, fence: &mut Fence) -> Result<(), StoreError> {
        self.apply(partition, fence, &Batch::default())
            .await
            .map(drop)
    }

    /// Loads the states of `alert_ids`, each from its bucket or its own key (one script call:
    /// they share a slot).
    pub async fn load(
        &self,
        partition: i32,
        alert_ids: &[String],
    ) -> Result<Vec<Option<AlertState>>, StoreError> {
        self.load_with(partition, None, alert_ids).await
    }

    /// [`Store::load`] for the partition's owner: the record names come back from its copy of
    /// the dictionary, not from the script (in Lua, 2.7% of Redis's instructions in a drain).
    /// A code the copy does not hold was given by an owner that claimed the partition since:
    /// this one is fenced, and learns it at its next write; the script gives the names back
    /// meanwhile.
    pub async fn load_as_owner(
        &self,
        partition: i32,
        fence: &Fence,
        alert_ids: &[String],
    ) -> Result<Vec<Option<AlertState>>, StoreError> {
        match self
            .load_with(partition, Some(&fence.names), alert_ids)
            .await
        {
            Err(StoreError::Corrupt { source, .. })
                if source == record::RecordError::UNKNOWN_CODE =>
            {
                self.load(partition, alert_ids).await
            }
            loaded => loaded,
        }
    }

    async fn load_with(
        &self,
        partition: i32,
        names: Option<&Names>,
        alert_ids: &[String],
    ) -> Result<Vec<Option<AlertState>>, StoreError> {
        let raw = self.load_raw(partition, names, alert_ids).await?;
        let decode = |id: &str, bytes: Vec<u8>| match names {
            Some(names) => record::decode(id, &names.names_back(&bytes)?),
            None => record::decode(id, &bytes),
        };
        raw.into_iter()
            .zip(alert_ids)
            .map(|(bytes, id)| {
                bytes
                    .map(|b| {
                        decode(id, b).map_err(|source| StoreError::Corrupt {
                            alert_id: id.clone(),
                            source,
                        })
                    })
                    .transpose()
            })
            .collect()
    }

    /// The records of `alert_ids` as `load_records.lua` gives them: for a reader (`names`
    /// `None`) as the decoder reads them, for the owner with their codes, its copy of the
    /// names keeping their handles ([`Names::loaded`]).
    async fn load_raw(
        &self,
        partition: i32,
        names: Option<&Names>,
        alert_ids: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys(partition);
        let mut inv = self.scripts.load_records.prepare_invoke();
        inv.key(k.records())
            .key(k.names())
            .key(k.alerts())
            .arg(if names.is_some() { "0" } else { "1" });
        for id in alert_ids {
            inv.arg(id).arg(alert_bucket(id));
        }
        let mut c = self.conn.clone();
        let raw: Vec<Option<Vec<u8>>> = inv.invoke_async(&mut c).await?;
        let Some(names) = names else {
            return Ok(raw);
        };
        Ok(raw
            .into_iter()
            .zip(alert_ids)
            .map(|(stored, id)| names.loaded(id, stored))
            .collect())
    }

    /// Writes a batch atomically, if `fence` still owns the partition and Redis holds all it
    /// wrote (then `fence.seq` counts this write); returns the batch's escalations as outbox
    /// entries and the clock's earliest due time after it.
    pub async fn apply(
        &self,
        partition: i32,
        fence: &mut Fence,
        batch: &Batch,
    ) -> Result<Applied, StoreError> {
        let k = self.keys(partition);
        let unread = fence.names.not_loaded(
            batch
                .alerts
                .iter()
                .filter(|a| a.stored)
                .map(|a| a.alert_id.as_str()),
        );
        if !unread.is_empty() {
            // Written without the owner's load (a caller's own state): their handles first.
            self.load_raw(partition, Some(&fence.names), &unread)
                .await?;
        }
        let staged = k.staged(&fence.token);
        let Coded {
            handles,
            records,
            removed,
            added,
            new_codes,
        } = Coded::of(&fence.names, batch);
        // EVALSHA as one command, not a `ScriptInvocation`, which keeps every argument in a
        // vector of its own and copies them all into a command again (2.6% of a drain's
        // processor CPU).
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.scripts.apply_batch.get_hash())
            .arg(16 + batch.board.days.len())
            .arg(k.owner())
            .arg(k.offsets())
            .arg(k.clock())
            .arg(k.overdue())
            .arg(k.outbox())
            .arg(k.alertmanager())
            .arg(k.policies())
            .arg(k.due())
            .arg(k.late())
            .arg(k.openstat())
            .arg(k.events())
            .arg(k.records())
            .arg(k.names())
            .arg(k.ids())
            .arg(k.alerts())
            .arg(&staged);
        for date in batch.board.days.keys() {
            cmd.arg(k.day(date));
        }
        cmd.arg(fence.epoch)
            .arg(&fence.token)
            .arg(fence.seq)
            .arg(batch.escalations.len())
            .arg(new_codes.handles)
            .arg(new_codes.handles_from)
            .arg(new_codes.entries.len())
            .arg(new_codes.from);
        for c in &new_codes.entries {
            cmd.arg(&c.field).arg(&c.code).arg(&c.value);
        }
        cmd.arg(batch.offsets.len());
        for (topic, offset) in &batch.offsets {
            cmd.arg(topic).arg(offset);
        }
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        cmd.arg(batch.alerts.len())
            .arg(batch.alerts.iter().map(|a| a.opened).sum::<i64>());
        for ((a, record), handle) in batch.alerts.iter().zip(&records).zip(&handles) {
            let in_bucket = a.ttl_ms.is_none() && record.len() <= self.record_limit;
            let flags = [
                if in_bucket { b'b' } else { b'k' },
                match (a.stored, a.unread) {
                    (true, _) => b's',
                    (false, false) => b'n',
                    (false, true) => b'u',
                },
                match a.opened {
                    1 => b'+',
                    -1 => b'-',
                    _ => b'=',
                },
            ];
            cmd.arg(&a.alert_id)
                .arg(handle.as_deref().unwrap_or(""))
                .arg(alert_bucket(&a.alert_id))
                .arg(record)
                .arg(&flags[..])
                .arg(a.clock.arg())
                .arg(a.overdue.arg())
                .arg(opt(a.ttl_ms));
        }
        cmd.arg(batch.notices.len());
        for json in &batch.notices {
            cmd.arg(json);
        }
        cmd.arg(batch.policies.len());
        for (version, json) in &batch.policies {
            cmd.arg(version).arg(json);
        }
        let board = &batch.board;
        let run = |cmd: &mut redis::Cmd, members: &[&Member<'_>]| {
            cmd.arg(members.len());
            for m in members {
                cmd.arg(m.entry.deadline)
                    .arg(&m.stored)
                    .arg(&m.entry.station);
            }
        };
        // Each index's entries together (each run stays sorted): those removed, then those
        // added as two runs, those an index may hold and those named by a handle this batch
        // gave, which no index holds yet.
        type Runs<'m, 'a> = (
            Vec<&'m Member<'a>>,
            Vec<&'m Member<'a>>,
            Vec<&'m Member<'a>>,
        );
        let mut by_index: BTreeMap<String, Runs<'_, '_>> = BTreeMap::new();
        for m in &removed {
            by_index.entry(m.entry.index()).or_default().0.push(m);
        }
        for m in &added {
            let runs = by_index.entry(m.entry.index()).or_default();
            if m.new { &mut runs.2 } else { &mut runs.1 }.push(m);
        }
        // Stations of the entries named by a handle this batch gave, counted here: the script
        // adds them to the station counters without an argument or a call an entry.
        let mut new_by_station: BTreeMap<&str, u32> = BTreeMap::new();
        cmd.arg(by_index.len());
        for (index, (removed, other, new)) in &by_index {
            cmd.arg(index);
            run(&mut cmd, removed);
            run(&mut cmd, other);
            cmd.arg(new.len());
            for m in new {
                cmd.arg(m.entry.deadline).arg(&m.stored);
                for station in m.entry.stations() {
                    *new_by_station.entry(station).or_default() += 1;
                }
            }
        }
        cmd.arg(new_by_station.len());
        for (station, n) in &new_by_station {
            cmd.arg(*station).arg(*n);
        }
        cmd.arg(board.days.len()).arg(DAY_TTL_SECONDS);
        for fields in board.days.values() {
            cmd.arg(fields.len());
            for (field, by) in fields {
                cmd.arg(field).arg(by);
            }
        }
        if board.changed.is_empty() {
            cmd.arg("");
        } else {
            cmd.arg(serde_json::to_string(&board.changed).expect("pairs of strings serialise"));
        }
        cmd.arg(EVENTS_WINDOW_MS);
        let mut pipe = redis::pipe();
        if !batch.escalations.is_empty() {
            pipe.cmd("SET")
                .arg(&staged)
                .arg(outbox_lines(&batch.escalations))
                .arg("PX")
                .arg(STAGED_TTL_MS)
                .ignore();
        }
        pipe.add_command(cmd);
        let mut c = self.conn.clone();
        let reply = match pipe.query_async::<(Vec<String>,)>(&mut c).await {
            // Redis restarted, failed over or flushed its scripts: load it, send again.
            Err(e) if has_code(&e, "NOSCRIPT") => {
                self.scripts.apply_batch.load_async(&mut c).await?;
                pipe.query_async(&mut c).await
            }
            reply => reply,
        };
        match reply {
            Ok((reply,)) => {
                if !batch.is_empty() {
                    fence.seq += 1;
                }
                fence.names.written(new_codes);
                let mut reply = reply.into_iter();
                let next_due = reply
                    .next()
                    .and_then(|score| score.parse::<f64>().ok())
                    .map(|score| score as Millis);
                Ok(Applied {
                    outbox: reply.next(),
                    next_due,
                })
            }
            Err(e) if has_code(&e, "FENCED") => Err(StoreError::Fenced {
                partition,
                message: e.to_string(),
            }),
            Err(e) if has_code(&e, "ROLLBACK") => Err(StoreError::Rollback {
                partition,
                message: e.to_string(),
            }),
            Err(e) if has_code(&e, "HELD") => Err(StoreError::Held { partition }),
            Err(e) => Err(e.into()),
        }
    }

    /// The policy snapshots the partition's alerts name: `(version, JSON)`.
    pub async fn policies(&self, partition: i32) -> Result<Vec<(String, String)>, StoreError> {
        let mut c = self.conn.clone();
        Ok(c.hgetall(self.keys(partition).policies()).await?)
    }

    /// Alert ids whose clock is due at `now`, earliest first (`due_clocks.lua`).
    pub async fn due(
        &self,
        partition: i32,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = self
            .scripts
            .due_clocks
            .key(self.keys(partition).clock())
            .key(self.keys(partition).ids())
            .arg(now)
            .arg(limit)
            .invoke_async(&mut c)
            .await?;
        Ok(ids)
    }

    /// The earliest due time on the partition's clock, or a time before it: the clock's
    /// directory may be early for a bucket (`buckets.lua`) until [`Store::due`] looks.
    pub async fn next_due(&self, partition: i32) -> Result<Option<Millis>, StoreError> {
        let mut c = self.conn.clone();
        let first: Vec<(String, f64)> = c
            .zrange_withscores(format!("{}:dir", self.keys(partition).clock()), 0, 0)
            .await?;
        Ok(first.first().map(|(_, score)| *score as Millis))
    }

    /// Number of open alerts on the partition (kept by the batch script).
    pub async fn open_count(&self, partition: i32) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        let n: Option<i64> = c.hget(self.keys(partition).owner(), "open").await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Every escalation not yet acknowledged by the broker, oldest first.
    pub async fn outbox(&self, partition: i32) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut all = Vec::new();
        let mut from = Some(OUTBOX_START.to_owned());
        while let Some(at) = from {
            let page;
            (page, from) = self.outbox_from(partition, &at, 100).await?;
            all.extend(page);
        }
        Ok(all)
    }

    /// The escalations of up to `count` outbox entries from stream id `from` on (inclusive;
    /// [`OUTBOX_START`] for the first), oldest first, and the id to read on from if the
    /// outbox may hold more.
    pub async fn outbox_from(
        &self,
        partition: i32,
        from: &str,
        count: usize,
    ) -> Result<(Vec<OutboxEntry>, Option<String>), StoreError> {
        let mut c = self.conn.clone();
        let outbox = self.keys(partition).outbox();
        let reply: redis::streams::StreamRangeReply =
            c.xrange_count(&outbox, from, "+", count).await?;
        // Bodies a page at a time: a backlog's outbox holds hundreds of KB an entry.
        let mut bodies: Vec<Option<String>> = Vec::with_capacity(reply.ids.len());
        for page in reply.ids.chunks(100) {
            let keys: Vec<String> = page.iter().map(|e| format!("{outbox}:{}", e.id)).collect();
            let got: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query_async(&mut c).await?;
            bodies.extend(got);
        }
        let mut entries = Vec::new();
        for (entry, body) in reply.ids.iter().zip(bodies) {
            match OutboxEntry::of_stream_entry(entry, body) {
                Some(escalations) => entries.extend(escalations),
                None => tracing::error!(
                    partition,
                    stream_id = %entry.id,
                    "Outbox entry unreadable: not published, left in the outbox."
                ),
            }
        }
        let next = match reply.ids.last() {
            Some(last) if reply.ids.len() >= count => Some(stream_id_after(&last.id)),
            _ => None,
        };
        Ok((entries, next))
    }

    /// Removes published escalations from the outbox.
    pub async fn ack(&self, partition: i32, stream_ids: &[String]) -> Result<(), StoreError> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let outbox = self.keys(partition).outbox();
        // Chunked: a Lua call takes a bounded number of arguments.
        for ids in stream_ids.chunks(1000) {
            let _: i64 = self
                .scripts
                .ack_outbox
                .key(&outbox)
                .arg(ids)
                .invoke_async(&mut c)
                .await?;
        }
        Ok(())
    }

    /// The oldest `count` Alertmanager notices waiting: `(stream_id, JSON array of alerts)`.
    pub async fn notices(
        &self,
        partition: i32,
        count: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut c = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = c
            .xrange_count(self.keys(partition).alertmanager(), "-", "+", count)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|entry| Some((entry.id.clone(), entry.get::<String>("a")?)))
            .collect())
    }

    /// Removes notices Alertmanager accepted.
    pub async fn notices_posted(
        &self,
        partition: i32,
        stream_ids: &[String],
    ) -> Result<(), StoreError> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: i64 = c
            .xdel(self.keys(partition).alertmanager(), stream_ids)
            .await?;
        Ok(())
    }

    /// Open alerts with a breached stage across `partitions`, most overdue first.
    pub async fn overdue(
        &self,
        partition: i32,
        limit: usize,
    ) -> Result<Vec<(String, Millis)>, StoreError> {
        let mut c = self.conn.clone();
        let rows: Vec<(String, f64)> = c
            .zrangebyscore_limit_withscores(
                self.keys(partition).overdue(),
                "-inf",
                "+inf",
                0,
                limit as isize,
            )
            .await?;
        Ok(rows.into_iter().map(|(id, s)| (id, s as Millis)).collect())
    }

    /// One partition's part of a list page (`list_stages.lua`): one script call, whose cost
    /// is O(log n + limit) unfiltered and O(log n + budget) filtered, n the index's size.
    pub async fn list_stages(
        &self,
        partition: i32,
        list: StageList,
        q: &IndexQuery<'_>,
    ) -> Result<IndexPage, StoreError> {
        let k = self.keys(partition);
        let mut inv = self.scripts.list_stages.prepare_invoke();
        inv.key(k.list(list))
            .key(k.names())
            .key(k.ids())
            .key(k.shared());
        match q.after {
            Some((deadline, member)) => inv.arg(deadline).arg(member),
            None => inv.arg("").arg(""),
        };
        inv.arg(
            q.max_deadline
                .map(|d| d.to_string())
                .unwrap_or_else(|| "+inf".into()),
        )
        .arg(q.limit)
        .arg(q.budget)
        .arg(q.risk.map(Risk::as_str).unwrap_or_default())
        .arg(q.stage.unwrap_or_default())
        .arg(if list == StageList::Due { "1" } else { "0" });
        let prefixes = q.prefixes.unwrap_or_default();
        inv.arg(if q.prefixes.is_some() { "1" } else { "0" })
            .arg(prefixes.len());
        for p in prefixes {
            inv.arg(p);
        }
        let mut c = self.conn.clone();
        let reply: Vec<String> = inv.invoke_async(&mut c).await?;
        let corrupt = |entry: &str| StoreError::CorruptIndex {
            partition,
            entry: entry.to_owned(),
        };
        let score = |s: &str| {
            s.parse::<f64>()
                .map(|f| f as Millis)
                .map_err(|_| corrupt(s))
        };
        let [exhausted, frontier_score, frontier_member, rest @ ..] = reply.as_slice() else {
            return Err(corrupt(&reply.join(" ")));
        };
        let frontier = if frontier_score.is_empty() {
            None
        } else {
            Some((score(frontier_score)?, frontier_member.clone()))
        };
        let matches = rest
            .chunks(3)
            .map(|row| match row {
                [s, key, m] => Ok(IndexMatch {
                    deadline: score(s)?,
                    key: key.clone(),
                    member: m.clone(),
                }),
                _ => Err(corrupt(&row.join(" "))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IndexPage {
            matches,
            frontier,
            exhausted: exhausted == "1",
        })
    }

    /// The partition's station counters of `date` (`YYYY-MM-DD`, display zone) and its open
    /// stages now: two `HGETALL`s of small hashes (jurisdictions × stages fields).
    pub async fn stations(&self, partition: i32, date: &str) -> Result<StationCounts, StoreError> {
        let k = self.keys(partition);
        let mut c = self.conn.clone();
        let (day, open): (HashMap<String, i64>, HashMap<String, i64>) = redis::pipe()
            .hgetall(k.day(date))
            .hgetall(k.openstat())
            .query_async(&mut c)
            .await?;
        Ok(StationCounts { day, open })
    }

    /// One alert's state, for the query API.
    pub async fn get(
        &self,
        partition: i32,
        alert_id: &str,
    ) -> Result<Option<AlertState>, StoreError> {
        Ok(self
            .load(partition, &[alert_id.to_owned()])
            .await?
            .pop()
            .flatten())
    }
}

/// A batch's records and index members as Redis stores them, coded from the partition's
/// names, and the codes and handles it gives.
struct Coded<'a> {
    /// Each alert's handle, in the batch's order (`None`: its id stands for itself).
    handles: Vec<Option<String>>,
    records: Vec<Vec<u8>>,
    /// The index entries removed and added, sorted, each with its member as sent.
    removed: Vec<Member<'a>>,
    added: Vec<Member<'a>>,
    new_codes: names::NewCodes,
}

/// An index entry with its member as sent.
struct Member<'a> {
    entry: &'a IndexEntry,
    stored: String,
    /// Named by a handle the batch gave: no index holds it yet.
    new: bool,
}

impl Coded<'_> {
    fn of<'a>(names: &Names, batch: &'a Batch) -> Coded<'a> {
        let mut coder = names.coder();
        let handles: Vec<Option<String>> = batch
            .alerts
            .iter()
            .map(|a| coder.handle(&a.alert_id, a.stored))
            .collect();
        let records = batch
            .alerts
            .iter()
            .zip(&handles)
            .map(|(a, handle)| coder.record(&a.state, handle.as_deref()))
            .collect();
        // Every index entry is of an alert the batch writes; one that is not keeps its id.
        let by_id: names::FastMap<&str, names::Named<'_>> = batch
            .alerts
            .iter()
            .zip(&handles)
            .filter_map(|(a, h)| {
                let named = names::Named {
                    handle: h.as_deref()?,
                    given: !a.stored,
                };
                Some((a.alert_id.as_str(), named))
            })
            .collect();
        let mut entries = |all: &'a [IndexEntry]| -> Vec<Member<'a>> {
            sorted(all)
                .into_iter()
                .map(|entry| {
                    let (stored, new) = coder.member(&entry.member, &by_id);
                    Member { entry, stored, new }
                })
                .collect()
        };
        let (removed, added) = (entries(&batch.board.remove), entries(&batch.board.add));
        Coded {
            handles,
            records,
            removed,
            added,
            new_codes: coder.finish(),
        }
    }
}

/// `entries` in index order, as the batch script adds and removes a bucket's entries together.
fn sorted(entries: &[IndexEntry]) -> Vec<&IndexEntry> {
    let mut refs: Vec<&IndexEntry> = entries.iter().collect();
    refs.sort();
    refs
}

/// The error code a script answered with (`redis.error_reply("CODE …")`).
fn has_code(e: &redis::RedisError, code: &str) -> bool {
    e.code() == Some(code) || e.to_string().contains(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_read_goes_on_from_the_least_stream_id_after_the_last() {
        assert_eq!(stream_id_after("1700000000000-0"), "1700000000000-1");
        assert_eq!(stream_id_after("5-41"), "5-42");
        assert_eq!(stream_id_after(&format!("5-{}", u64::MAX)), "6-0");
        assert_eq!(
            stream_id_after("odd"),
            "(odd",
            "exclusive, for what is not an id"
        );
    }

    fn page(
        matches: &[(Millis, &str)],
        frontier: Option<(Millis, &str)>,
        exhausted: bool,
    ) -> IndexPage {
        IndexPage {
            matches: matches
                .iter()
                .map(|(d, k)| IndexMatch {
                    deadline: *d,
                    key: k.to_string(),
                    member: format!("member of {k}"),
                })
                .collect(),
            frontier: frontier.map(|(d, m)| (d, m.to_owned())),
            exhausted,
        }
    }

    #[test]
    fn a_merged_page_ends_where_every_partition_has_been_seen() {
        // Partition 0 stopped (budget) at deadline 5; partition 1 saw everything.
        let merged = merge_pages(
            vec![
                (0, page(&[(1, "a"), (4, "b")], Some((5, "z")), false)),
                (1, page(&[(2, "c"), (6, "d")], Some((6, "d")), true)),
            ],
            10,
        );
        let items: Vec<_> = merged
            .items
            .iter()
            .map(|(p, m)| (*p, m.deadline, m.key.as_str()))
            .collect();
        assert_eq!(
            items,
            [(0, 1, "a"), (1, 2, "c"), (0, 4, "b")],
            "6 waits: partition 0 may hold more before it"
        );
        assert_eq!(
            merged.next,
            Some((5, "z".to_owned())),
            "a short page goes on from the frontier"
        );

        // Full page: the cursor is its last item; ties by key.
        let merged = merge_pages(
            vec![
                (0, page(&[(1, "b"), (1, "d")], Some((1, "d")), false)),
                (1, page(&[(1, "a"), (1, "c")], Some((1, "c")), false)),
            ],
            3,
        );
        let members: Vec<_> = merged
            .items
            .iter()
            .map(|(_, m)| m.member.as_str())
            .collect();
        assert_eq!(members, ["member of a", "member of b", "member of c"]);
        assert_eq!(merged.next, Some((1, "c".to_owned())));

        // Everything seen and shown: done.
        let done = merge_pages(
            vec![
                (0, page(&[(1, "a")], Some((1, "a")), true)),
                (1, page(&[], None, true)),
            ],
            1,
        );
        assert_eq!(done.next, None);
        assert_eq!(merge_pages(Vec::new(), 5), MergedPage::default());
    }

    #[test]
    fn alert_ids_spread_evenly_over_the_buckets() {
        // A partition's share of 1M open alerts, named as the simulator and the 96110 platform
        // name them (sequential numbers): every bucket stays far below listpack's 128 entries.
        for (n, name) in [
            (125_000, "GA-620102-20261202-{:06}-3f9a"),
            (125_000, "{}"),
            (40_000, "YJ330106{:08}"),
        ] {
            let mut counts = vec![0u32; ALERT_BUCKETS as usize];
            for i in 0..n {
                let id = name.replace("{:06}", &format!("{i:06}"));
                let id = id
                    .replace("{:08}", &format!("{i:08}"))
                    .replace("{}", &i.to_string());
                counts[alert_bucket(&id) as usize] += 1;
            }
            let mean = n as f64 / f64::from(ALERT_BUCKETS);
            let max = *counts.iter().max().unwrap();
            assert!(
                f64::from(max) < mean * 2.0 + 10.0,
                "{name}: fullest bucket {max}, mean {mean:.1}"
            );
        }
    }

    #[test]
    fn an_alert_s_bucket_is_the_hash_reduced_at_every_byte() {
        // The rule as buckets.lua computes it, a byte at a time.
        let per_byte = |id: &str| {
            let h = id
                .bytes()
                .fold(0u64, |h, b| (h * 31 + u64::from(b)) % 1_000_003);
            (h % u64::from(ALERT_BUCKETS)) as u32
        };
        let long = "\u{10ffff}".repeat(40);
        for id in [
            "",
            "a",
            "GA-620102-20261202-000417-3f9a",
            "12345678",
            "123456789",
            &long,
        ] {
            assert_eq!(alert_bucket(id), per_byte(id), "{id:?}");
        }
        for i in 0..20_000 {
            let id = format!("YJ330106{i:08}-{}", "\u{ff}".repeat(i % 17));
            assert_eq!(alert_bucket(&id), per_byte(&id), "{id:?}");
        }
    }

    #[test]
    fn members_and_counter_fields_round_trip() {
        let alert = Alert {
            alert_id: "GA-1".into(),
            issued_at: 0,
            jurisdiction: "620102-GWM".into(),
            risk: Risk::Low,
            channel: None,
            fraud_type: None,
            amount_cents: None,
        };
        let stage = crate::domain::Stage::new("sign_for").unwrap();
        let open = OpenStage {
            stage: stage.clone(),
            deadline: 7,
            warned: true,
            level: 0,
        };
        let e = IndexEntry::of(&alert, &open);
        assert_eq!((e.list, e.deadline), (StageList::Due, 7));
        assert_eq!(e.member, "620102-GWM\x1flow\x1fsign_for\x1fGA-1\x1f1");
        let listed = ListedStage::decode(StageList::Due, 7, &e.member).unwrap();
        assert_eq!(
            (listed.alert_id.as_str(), listed.warned, listed.level),
            ("GA-1", true, 0)
        );
        let late = IndexEntry::of(&alert, &OpenStage { level: 3, ..open });
        assert_eq!(late.list, StageList::Late);
        assert_eq!(
            ListedStage::decode(StageList::Late, 7, &late.member)
                .unwrap()
                .level,
            3
        );
        assert_eq!(ListedStage::decode(StageList::Due, 7, &late.member), None);
        assert_eq!(
            parse_station_field(&day_field("620102-GWM", "visit", DayCount::OnTime)),
            Some(("620102-GWM", "visit", Some(DayCount::OnTime)))
        );
        assert_eq!(
            parse_station_field(&e.station),
            Some(("620102-GWM", "sign_for", None))
        );
        assert_eq!(parse_station_field("620102\x1fvisit\x1fsoon"), None);
    }

    #[test]
    fn a_shared_entry_lists_its_stages_by_deadline_and_goes_in_the_index_of_its_offsets() {
        let alert = Alert {
            alert_id: "GA-2".into(),
            issued_at: 0,
            jurisdiction: "330100".into(),
            risk: Risk::High,
            channel: None,
            fraud_type: None,
            amount_cents: None,
        };
        let stage = |name: &str, deadline| OpenStage {
            stage: crate::domain::Stage::new(name).unwrap(),
            deadline,
            warned: false,
            level: 0,
        };
        // A ladder whose second stage is due first; two stages share a deadline.
        let shared = IndexEntry::shared(
            &alert,
            &[stage("call", 50), stage("visit", 20), stage("meet", 50)],
        );
        assert_eq!((shared.list, shared.deadline), (StageList::Due, 20));
        assert_eq!(
            shared.member,
            "330100\x1fhigh\x1fvisit\x1ecall+30\x1emeet+30\x1fGA-2\x1fv"
        );
        assert_eq!(shared.index(), "+30+30");
        assert_eq!(
            shared.stations().collect::<Vec<_>>(),
            ["330100\x1fvisit", "330100\x1fcall", "330100\x1fmeet"]
        );
        // Not a stage the lists read by itself.
        assert_eq!(
            ListedStage::decode(StageList::Due, 20, &shared.member),
            None
        );
        let own = IndexEntry::of(&alert, &stage("visit", 20));
        assert_eq!((own.index().as_str(), own.stations().count()), ("d", 1));
        let late = IndexEntry::of(
            &alert,
            &OpenStage {
                level: 1,
                ..stage("visit", 20)
            },
        );
        assert_eq!(late.index(), "l");
    }
}
