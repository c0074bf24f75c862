//! The stored form of an [`AlertState`]: a compact binary record, ~4× smaller than its JSON.
//!
//! Redis holds one record per alert for as long as the alert is open, so its size is most of
//! the memory an open alert costs. The layout leaves out what the key already says (the alert
//! id), writes times as zig-zag varints, packs the 16-hex policy version into 8 bytes and the
//! enums into one byte each. Records written as JSON by earlier versions still load.
//!
//! Layout (version 1), after the marker byte [`V1`]:
//! ```text
//! alert?      : issued_at, jurisdiction, risk, channel?, fraud_type?, amount_cents?, alert_id^
//! policy      : 0 none | 1 + 8 bytes (16 lowercase hex) | 2 + str
//! stages      : n, (deadline, flags, level, [satisfied: at − deadline])*
//! closed_at?  : time
//! events      : n, str*
//! pending     : n, (event_id, alert_id^, kind, occurred_at, officer_id?, outcome?)*
//! timeline    : n, (at, what, event_id?, officer_id?, outcome?, stage?, level?)*
//! ```
//! `x?` is a presence byte then `x`; `str` a varint length then UTF-8; integers are zig-zag
//! LEB128 varints, and every time after `issued_at` is one relative to it (0 without an alert),
//! so a deadline takes 4 bytes, not 6; `alert_id^` is 0 when it equals the key's id, else
//! 1 + str; a timeline's `what` is one byte when it is one of [`WORDS`].

use crate::domain::sla::{StageClock, StageStatus, TimelineEntry};
use crate::domain::{Alert, AlertState, Disposition, DispositionKind, Outcome, Risk, Stage};

/// First byte of a version 1 record. JSON records start with `{`.
const V1: u8 = 0xB1;

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

/// Encodes `state`, the record of `alert_id`.
pub fn encode(alert_id: &str, state: &AlertState) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(96), 0);
    w.0.push(V1);
    w.opt(state.alert.as_ref(), |w, a| {
        w.int(a.issued_at);
        w.1 = a.issued_at;
        w.str(&a.jurisdiction);
        w.enum_of(&Risk::ALL, &a.risk);
        w.opt(a.channel.as_deref(), Writer::str);
        w.opt(a.fraud_type.as_deref(), Writer::str);
        w.opt(a.amount_cents, Writer::int);
        w.same_id(alert_id, &a.alert_id);
    });
    match state.policy_version.as_deref() {
        None => w.0.push(0),
        Some(v) => match pack_hex(v) {
            Some(bytes) => {
                w.0.push(1);
                w.0.extend_from_slice(&bytes);
            }
            None => {
                w.0.push(2);
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
        w.0.push(flags);
        w.0.push(c.level);
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
                w.0.extend_from_slice(t.what.as_bytes());
            }
        }
        w.opt(t.event_id.as_deref(), Writer::str);
        w.opt(t.officer_id.as_deref(), Writer::str);
        w.opt(t.outcome.as_ref(), |w, o| w.enum_of(&Outcome::ALL, o));
        w.opt(t.stage.as_ref(), |w, s| w.str(s.as_str()));
        w.opt(t.level, |w, l| w.0.push(l));
    }
    w.0
}

/// Decodes the record of `alert_id`: version 1, or the JSON of earlier versions.
pub fn decode(alert_id: &str, bytes: &[u8]) -> Result<AlertState, RecordError> {
    match bytes.first() {
        Some(&V1) => {
            let mut r = Reader(&bytes[1..], 0);
            let state = r.state(alert_id)?;
            if r.0.is_empty() {
                Ok(state)
            } else {
                Err(RecordError::Bad("trailing bytes"))
            }
        }
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string())),
        Some(&b) => Err(RecordError::Format(b)),
        None => Err(RecordError::Truncated),
    }
}

/// 16 lowercase hex digits (a [`crate::domain::Policy::version`]) as 8 bytes.
fn pack_hex(v: &str) -> Option<[u8; 8]> {
    let ok = v.len() == 16 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(v, 16).ok().map(u64::to_be_bytes))
        .flatten()
}

/// The bytes so far, and the time later times are relative to.
struct Writer(Vec<u8>, i64);

impl Writer {
    fn time(&mut self, t: i64) {
        self.int(t.wrapping_sub(self.1));
    }
    fn uint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }
    fn int(&mut self, n: i64) {
        self.uint(((n << 1) ^ (n >> 63)) as u64);
    }
    fn len(&mut self, n: usize) {
        self.uint(n as u64);
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Writer, T)) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                f(self, v);
            }
        }
    }
    fn enum_of<T: PartialEq>(&mut self, all: &[T], v: &T) {
        let i = all
            .iter()
            .position(|x| x == v)
            .expect("a variant is in ALL");
        self.0.push(i as u8);
    }
    fn same_id(&mut self, key: &str, id: &str) {
        if id == key {
            self.0.push(0);
        } else {
            self.0.push(1);
            self.str(id);
        }
    }
}

/// The bytes left, and the time later times are relative to.
struct Reader<'a>(&'a [u8], i64);

impl Reader<'_> {
    fn time(&mut self) -> Result<i64, RecordError> {
        Ok(self.int()?.wrapping_add(self.1))
    }
    fn what(&mut self) -> Result<String, RecordError> {
        let n = self.uint()?;
        if n & 1 == 1 {
            let word = WORDS
                .get((n >> 1) as usize)
                .ok_or(RecordError::Bad("word"))?;
            return Ok((*word).to_owned());
        }
        let n = (n >> 1) as usize;
        if n > self.0.len() {
            return Err(RecordError::Truncated);
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(s.to_vec()).map_err(|_| RecordError::Bad("UTF-8"))
    }
    fn byte(&mut self) -> Result<u8, RecordError> {
        let (&b, rest) = self.0.split_first().ok_or(RecordError::Truncated)?;
        self.0 = rest;
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
        if n > self.0.len() {
            return Err(RecordError::Truncated);
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String, RecordError> {
        let n = self.len()?;
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(s.to_vec()).map_err(|_| RecordError::Bad("UTF-8"))
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
            r.1 = issued_at;
            let jurisdiction = r.str()?;
            let risk = r.enum_of(&Risk::ALL, "risk")?;
            let channel = r.opt(Reader::str)?;
            let fraud_type = r.opt(Reader::str)?;
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
                    .0
                    .get(..8)
                    .ok_or(RecordError::Truncated)?
                    .try_into()
                    .expect("8 bytes");
                self.0 = &self.0[8..];
                Some(format!("{:016x}", u64::from_be_bytes(bytes)))
            }
            2 => Some(self.str()?),
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
                Ok(TimelineEntry {
                    at: self.time()?,
                    what: self.what()?,
                    event_id: self.opt(Reader::str)?,
                    officer_id: self.opt(Reader::str)?,
                    outcome: self.opt(Reader::outcome)?,
                    stage: self.opt(Reader::stage)?,
                    level: self.opt(Reader::byte)?,
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
