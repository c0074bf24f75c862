//! The stored form of an [`AlertState`]: a compact binary record, ~4× smaller than its JSON.
//!
//! Redis holds one record per alert for as long as the alert is open, so its size is most of
//! the memory an open alert costs. The layout leaves out what the key already says (the alert
//! id), writes times as zig-zag varints and the enums as one byte each, and puts the strings
//! many alerts repeat (station, channel, fraud type, policy version) in front as *names*,
//! which the batch script stores as short codes of a per-partition dictionary
//! (`lua/names.lua`) and the load script gives back. Records of earlier versions (version 1,
//! and JSON) still load.
//!
//! Layout (version 2): [`V2`], the names joined by `\x1f`, `\x1e`, then
//! ```text
//! alert?      : issued_at, jurisdiction~, risk, channel~?, fraud_type~?, amount_cents?, alert_id^
//! policy      : 0 none | 1 + 8 bytes (16 lowercase hex) | 2 + str | 3 (the next name)
//! stages      : n, (deadline, flags, level, [satisfied: at − deadline])*
//! closed_at?  : time
//! events      : n, str*
//! pending     : n, (event_id, alert_id^, kind, occurred_at, officer_id?, outcome?)*
//! timeline    : n, (at, what, present, event_id, officer_id, outcome, stage, level)*
//! ```
//! `x?` is a presence byte then `x`; `str` a varint length then UTF-8; `x~` a varint that is
//! odd for the next name and `len << 1` before inline UTF-8 otherwise (a string is a name when
//! [`is_name`]); integers are zig-zag LEB128 varints, and every time after `issued_at` is one
//! relative to it (0 without an alert), so a deadline takes 4 bytes, not 6; `alert_id^` is 0
//! when it equals the key's id, else 1 + str; a timeline's `what` is one byte when it is one
//! of [`WORDS`], and `present` says in one byte which of the five optional parts follow.
//! Version 1 is the same without names (every `x~` a `str`) and with a presence byte for each
//! of a timeline entry's optional parts.

use crate::domain::sla::{StageClock, StageStatus, TimelineEntry};
use crate::domain::{Alert, AlertState, Disposition, DispositionKind, Outcome, Risk, Stage};

/// First byte of a version 1 record. JSON records start with `{`.
const V1: u8 = 0xB1;
/// First byte of a version 2 record.
pub const V2: u8 = 0xB2;
/// First byte the load script gives a version 2 record one of whose codes the dictionary no
/// longer holds.
const UNNAMED: u8 = 0xBF;
/// Between two names.
pub(crate) const NAME_SEP: u8 = 0x1f;
/// After the names.
pub(crate) const NAMES_END: u8 = 0x1e;

/// Whether a string goes to the dictionary: long enough that a code is shorter (codes take
/// up to 4 characters until a partition has named 14.7 million strings), short enough that the
/// dictionary stays small, and free of control characters (the separators).
fn is_name(s: &str) -> bool {
    (4..=64).contains(&s.len()) && !s.bytes().any(|b| b < 0x20)
}

/// What a timeline entry usually says (`alert`, a disposition kind, an escalation kind).
const WORDS: [&str; 9] = [
    "alert",
    "acknowledged",
    "visited",
    "met",
    "feedback",
    "closed",
    "warning",
    "breach",
    "resolved",
];

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the record ends early")]
    Truncated,
    #[error("unknown record format (first byte {0:#04x})")]
    Format(u8),
    #[error("bad {0}")]
    Bad(&'static str),
    #[error("{0}")]
    Json(String),
}

impl RecordError {
    /// A name's code the dictionary does not hold.
    pub(crate) const UNKNOWN_CODE: RecordError =
        RecordError::Bad("name code (not in the dictionary)");
}

/// Encodes `state`, the record of `alert_id` (version 2).
pub fn encode(alert_id: &str, state: &AlertState) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(96),
        base: 0,
        names: Vec::with_capacity(NAMES_CAPACITY),
    };
    w.names.push(V2);
    w.opt(state.alert.as_ref(), |w, a| {
        w.int(a.issued_at);
        w.base = a.issued_at;
        w.text(&a.jurisdiction);
        w.enum_of(&Risk::ALL, &a.risk);
        w.opt(a.channel.as_deref(), Writer::text);
        w.opt(a.fraud_type.as_deref(), Writer::text);
        w.opt(a.amount_cents, Writer::int);
        w.same_id(alert_id, &a.alert_id);
    });
    match state.policy_version.as_deref() {
        None => w.out.push(0),
        Some(v) if is_name(v) => {
            w.out.push(3);
            w.name(v);
        }
        Some(v) => match pack_hex(v) {
            Some(bytes) => {
                w.out.push(1);
                w.out.extend_from_slice(&bytes);
            }
            None => {
                w.out.push(2);
                w.str(v);
            }
        },
    }
    w.len(state.stages.len());
    for c in &state.stages {
        w.time(c.deadline);
        let (status, at, on_time) = match c.status {
            StageStatus::Open => (0, None, false),
            StageStatus::Satisfied { at, on_time } => (1, Some(at), on_time),
            StageStatus::Cancelled => (2, None, false),
        };
        let flags =
            status | u8::from(c.warned) << 2 | u8::from(c.resolved) << 3 | u8::from(on_time) << 4;
        w.out.push(flags);
        w.out.push(c.level);
        if let Some(at) = at {
            w.int(at.wrapping_sub(c.deadline));
        }
    }
    w.opt(state.closed_at, Writer::time);
    w.len(state.events.len());
    for e in &state.events {
        w.str(e);
    }
    w.len(state.pending.len());
    for d in &state.pending {
        w.str(&d.event_id);
        w.same_id(alert_id, &d.alert_id);
        w.enum_of(&DispositionKind::ALL, &d.kind);
        w.time(d.occurred_at);
        w.opt(d.officer_id.as_deref(), Writer::str);
        w.opt(d.outcome.as_ref(), |w, o| w.enum_of(&Outcome::ALL, o));
    }
    w.len(state.timeline.len());
    for t in &state.timeline {
        w.time(t.at);
        match WORDS.iter().position(|word| *word == t.what) {
            Some(i) => w.uint((i as u64) << 1 | 1),
            None => {
                w.uint((t.what.len() as u64) << 1);
                w.out.extend_from_slice(t.what.as_bytes());
            }
        }
        w.out.push(
            u8::from(t.event_id.is_some())
                | u8::from(t.officer_id.is_some()) << 1
                | u8::from(t.outcome.is_some()) << 2
                | u8::from(t.stage.is_some()) << 3
                | u8::from(t.level.is_some()) << 4,
        );
        if let Some(e) = &t.event_id {
            w.str(e);
        }
        if let Some(o) = &t.officer_id {
            w.str(o);
        }
        if let Some(o) = &t.outcome {
            w.enum_of(&Outcome::ALL, o);
        }
        if let Some(s) = &t.stage {
            w.str(s.as_str());
        }
        if let Some(l) = t.level {
            w.out.push(l);
        }
    }
    w.names.push(NAMES_END);
    w.names.reserve_exact(w.out.len());
    w.names.extend_from_slice(&w.out);
    w.names
}

/// Room for a record's names and then its body, whose length is known last: the names of a
/// record as the simulator writes them, ~40 bytes, and a new alert's body, ~50.
const NAMES_CAPACITY: usize = 128;

/// A version 2 record's names and its body (after [`NAMES_END`]); `None` for a record
/// without names or of another version.
pub(crate) fn split_names(record: &[u8]) -> Option<(impl Iterator<Item = &[u8]>, &[u8])> {
    if record.first() != Some(&V2) {
        return None;
    }
    let end = record.iter().position(|&b| b == NAMES_END)?;
    (end > 1).then(|| (record[1..end].split(|&b| b == NAME_SEP), &record[end + 1..]))
}

/// How long `record` is at most once stored (its handle aside): each name becomes a
/// code of at most 4 characters, which holds for a partition's first 14.7 million names (past
/// that, a record may outgrow a bucket's listpack, which costs memory and nothing else).
pub fn stored_len(record: &[u8]) -> usize {
    match record.iter().position(|&b| b == NAMES_END) {
        Some(end) if record[0] == V2 && end > 1 => {
            let names = record[1..end].iter().filter(|&&b| b == NAME_SEP).count() + 1;
            record.len() - (end - 1) + names * 5 - 1
        }
        _ => record.len(),
    }
}

/// Decodes the record of `alert_id`: version 2 as the load script gives it back, version 1,
/// or the JSON of earlier versions.
pub fn decode(alert_id: &str, bytes: &[u8]) -> Result<AlertState, RecordError> {
    let (names, body, v2) = match bytes.first() {
        Some(&V2) => {
            let end = bytes
                .iter()
                .position(|&b| b == NAMES_END)
                .ok_or(RecordError::Truncated)?;
            let names = &bytes[1..end];
            let names = if names.is_empty() {
                Vec::new()
            } else {
                names.split(|&b| b == NAME_SEP).collect()
            };
            (names, &bytes[end + 1..], true)
        }
        Some(&V1) => (Vec::new(), &bytes[1..], false),
        Some(b'{') => {
            return serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))
        }
        Some(&UNNAMED) => return Err(RecordError::UNKNOWN_CODE),
        Some(&b) => return Err(RecordError::Format(b)),
        None => return Err(RecordError::Truncated),
    };
    let mut r = Reader {
        rest: body,
        base: 0,
        names: names.into_iter(),
        v2,
    };
    let state = r.state(alert_id)?;
    if !r.rest.is_empty() {
        Err(RecordError::Bad("trailing bytes"))
    } else if r.names.next().is_some() {
        Err(RecordError::Bad("unused names"))
    } else {
        Ok(state)
    }
}

/// 16 lowercase hex digits (a [`crate::domain::Policy::version`]) as 8 bytes.
fn pack_hex(v: &str) -> Option<[u8; 8]> {
    let ok = v.len() == 16 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(v, 16).ok().map(u64::to_be_bytes))
        .flatten()
}

/// A record being written.
struct Writer {
    /// The body so far.
    out: Vec<u8>,
    /// The time later times are relative to.
    base: i64,
    /// The marker and the names so far.
    names: Vec<u8>,
}

impl Writer {
    fn time(&mut self, t: i64) {
        self.int(t.wrapping_sub(self.base));
    }
    /// A name: the next one, in the body as an odd varint.
    fn name(&mut self, s: &str) {
        if self.names.len() > 1 {
            self.names.push(NAME_SEP);
        }
        self.names.extend_from_slice(s.as_bytes());
    }
    /// A string that may be a name.
    fn text(&mut self, s: &str) {
        if is_name(s) {
            self.name(s);
            self.uint(1);
        } else {
            self.uint((s.len() as u64) << 1);
            self.out.extend_from_slice(s.as_bytes());
        }
    }
    fn uint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.out.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.out.push(n as u8);
    }
    fn int(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }
    fn len(&mut self, n: usize) {
        self.uint(n as u64);
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }
    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Writer, T)) {
        match v {
            None => self.out.push(0),
            Some(v) => {
                self.out.push(1);
                f(self, v);
            }
        }
    }
    fn enum_of<T: PartialEq>(&mut self, all: &[T], v: &T) {
        let i = all
            .iter()
            .position(|x| x == v)
            .expect("a variant is in ALL");
        self.out.push(i as u8);
    }
    fn same_id(&mut self, key: &str, id: &str) {
        if id == key {
            self.out.push(0);
        } else {
            self.out.push(1);
            self.str(id);
        }
    }
}

/// A record being read.
struct Reader<'a> {
    /// The body's bytes left.
    rest: &'a [u8],
    /// The time later times are relative to.
    base: i64,
    /// The names not yet taken.
    names: std::vec::IntoIter<&'a [u8]>,
    /// Version 2 (names, a timeline entry's presence in one byte), else 1.
    v2: bool,
}

impl Reader<'_> {
    fn time(&mut self) -> Result<i64, RecordError> {
        Ok(self.int()?.wrapping_add(self.base))
    }
    fn name(&mut self) -> Result<String, RecordError> {
        let name = self.names.next().ok_or(RecordError::Bad("missing name"))?;
        String::from_utf8(name.to_vec()).map_err(|_| RecordError::Bad("UTF-8"))
    }
    /// A string that may be a name (version 2), or a plain one (version 1).
    fn text(&mut self) -> Result<String, RecordError> {
        if !self.v2 {
            return self.str();
        }
        let n = self.uint()?;
        if n & 1 == 1 {
            return self.name();
        }
        self.take((n >> 1) as usize)
    }
    fn take(&mut self, n: usize) -> Result<String, RecordError> {
        if n > self.rest.len() {
            return Err(RecordError::Truncated);
        }
        let (s, rest) = self.rest.split_at(n);
        self.rest = rest;
        String::from_utf8(s.to_vec()).map_err(|_| RecordError::Bad("UTF-8"))
    }
    fn what(&mut self) -> Result<String, RecordError> {
        let n = self.uint()?;
        if n & 1 == 1 {
            let word = WORDS
                .get((n >> 1) as usize)
                .ok_or(RecordError::Bad("word"))?;
            return Ok((*word).to_owned());
        }
        self.take((n >> 1) as usize)
    }
    fn byte(&mut self) -> Result<u8, RecordError> {
        let (&b, rest) = self.rest.split_first().ok_or(RecordError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }
    fn uint(&mut self) -> Result<u64, RecordError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(RecordError::Bad("varint"))
    }
    fn int(&mut self) -> Result<i64, RecordError> {
        let n = self.uint()?;
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }
    fn len(&mut self) -> Result<usize, RecordError> {
        let n = self.uint()? as usize;
        // Every element takes at least a byte: a longer count is corrupt, not a huge alloc.
        if n > self.rest.len() {
            return Err(RecordError::Truncated);
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String, RecordError> {
        let n = self.len()?;
        self.take(n)
    }
    fn opt<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, RecordError>,
    ) -> Result<Option<T>, RecordError> {
        match self.byte()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(RecordError::Bad("presence byte")),
        }
    }
    fn enum_of<T: Copy>(&mut self, all: &[T], what: &'static str) -> Result<T, RecordError> {
        let i = self.byte()? as usize;
        all.get(i).copied().ok_or(RecordError::Bad(what))
    }
    fn same_id(&mut self, key: &str) -> Result<String, RecordError> {
        Ok(self.opt(Reader::str)?.unwrap_or_else(|| key.to_owned()))
    }
    fn stage(&mut self) -> Result<Stage, RecordError> {
        Stage::new(&self.str()?).map_err(|_| RecordError::Bad("stage name"))
    }
    fn outcome(&mut self) -> Result<Outcome, RecordError> {
        self.enum_of(&Outcome::ALL, "outcome")
    }

    fn state(&mut self, key: &str) -> Result<AlertState, RecordError> {
        let alert = self.opt(|r| {
            let issued_at = r.int()?;
            r.base = issued_at;
            let jurisdiction = r.text()?;
            let risk = r.enum_of(&Risk::ALL, "risk")?;
            let channel = r.opt(Reader::text)?;
            let fraud_type = r.opt(Reader::text)?;
            let amount_cents = r.opt(Reader::int)?;
            Ok(Alert {
                alert_id: r.same_id(key)?,
                issued_at,
                jurisdiction,
                risk,
                channel,
                fraud_type,
                amount_cents,
            })
        })?;
        let policy_version = match self.byte()? {
            0 => None,
            1 => {
                let bytes: [u8; 8] = self
                    .rest
                    .get(..8)
                    .ok_or(RecordError::Truncated)?
                    .try_into()
                    .expect("8 bytes");
                self.rest = &self.rest[8..];
                Some(format!("{:016x}", u64::from_be_bytes(bytes)))
            }
            2 => Some(self.str()?),
            3 if self.v2 => Some(self.name()?),
            _ => return Err(RecordError::Bad("policy tag")),
        };
        let stages = (0..self.len()?)
            .map(|_| {
                let deadline = self.time()?;
                let flags = self.byte()?;
                let level = self.byte()?;
                let status = match flags & 0b11 {
                    0 => StageStatus::Open,
                    1 => StageStatus::Satisfied {
                        at: deadline.wrapping_add(self.int()?),
                        on_time: flags & 0b1_0000 != 0,
                    },
                    2 => StageStatus::Cancelled,
                    _ => return Err(RecordError::Bad("stage status")),
                };
                Ok(StageClock {
                    deadline,
                    status,
                    warned: flags & 0b100 != 0,
                    level,
                    resolved: flags & 0b1000 != 0,
                })
            })
            .collect::<Result<_, _>>()?;
        let closed_at = self.opt(Reader::time)?;
        let events = (0..self.len()?)
            .map(|_| self.str())
            .collect::<Result<_, _>>()?;
        let pending = (0..self.len()?)
            .map(|_| {
                Ok(Disposition {
                    event_id: self.str()?,
                    alert_id: self.same_id(key)?,
                    kind: self.enum_of(&DispositionKind::ALL, "disposition kind")?,
                    occurred_at: self.time()?,
                    officer_id: self.opt(Reader::str)?,
                    outcome: self.opt(Reader::outcome)?,
                })
            })
            .collect::<Result<_, _>>()?;
        let timeline = (0..self.len()?)
            .map(|_| {
                let at = self.time()?;
                let what = self.what()?;
                if !self.v2 {
                    return Ok(TimelineEntry {
                        at,
                        what,
                        event_id: self.opt(Reader::str)?,
                        officer_id: self.opt(Reader::str)?,
                        outcome: self.opt(Reader::outcome)?,
                        stage: self.opt(Reader::stage)?,
                        level: self.opt(Reader::byte)?,
                    });
                }
                let present = self.byte()?;
                if present >> 5 != 0 {
                    return Err(RecordError::Bad("timeline presence"));
                }
                let has = |bit: u8| present & 1 << bit != 0;
                Ok(TimelineEntry {
                    at,
                    what,
                    event_id: has(0).then(|| self.str()).transpose()?,
                    officer_id: has(1).then(|| self.str()).transpose()?,
                    outcome: has(2).then(|| self.outcome()).transpose()?,
                    stage: has(3).then(|| self.stage()).transpose()?,
                    level: has(4).then(|| self.byte()).transpose()?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AlertState {
            alert,
            policy_version,
            stages,
            closed_at,
            events,
            pending,
            timeline,
        })
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
