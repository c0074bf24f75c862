//! A partition's names as its owner holds them (`lua/names.lua`): the dictionary
//! (`{p}:names`), whose codes stand for the strings open alerts repeat, an index member's
//! `<jurisdiction>␟<risk>␟<stage>` and a record's names (station, channel, fraud type, policy
//! version); and the alerts' handles, which stand for their ids.
//!
//! The owner codes what it writes, gives the names back in what it loads, and gives new alerts
//! their handles, here and not in the scripts: a Lua library call costs about what a Redis
//! command does, and coding a batch's names and handles in Lua was a fifth of Redis's
//! instructions in a drain (BENCHMARKS.md, Profiles). The dictionary and the handle counter are
//! read when the partition is claimed; a code or handle the owner gives is written by the batch
//! that first uses it and counted here only once Redis has it. An alert's handle is read with
//! its record by the owner's load and kept until the write after it. Only the owner writes the
//! dictionary and the counter, and a Redis that forgets a batch forgets its codes and handles
//! with it: the batch after is refused as a `ROLLBACK`, and the claim that follows reads them
//! again. Codes and handles are never reused.

use foldhash::HashMapExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::record;
use super::SEP;

/// The dictionary's maps and a batch's handles: looked up for every name a batch writes, where
/// SipHash, std's hasher, was most of the lookup (`perf record`).
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` in base 62, as the scripts write codes and handles.
pub(crate) fn base62(n: u64) -> String {
    let mut out = String::new();
    push_base62(&mut out, n);
    out
}

/// `n` in base 62, appended to `out`.
fn push_base62(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 11]; // 62^11 > u64::MAX
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = DIGITS[(n % 62) as usize];
        n /= 62;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// What the dictionary codes: a member's triple, kept under itself (it holds the separator),
/// or a record's name, kept under `=` and the name, so that no name is taken for the counter
/// `n`, a code's `#` entry or a triple.
enum Coded<'s> {
    Triple(&'s str),
    Name(&'s [u8]),
}

impl Coded<'_> {
    /// The dictionary's field, and what the code's `#` entry gives back.
    fn field_and_value(&self) -> (String, String) {
        match self {
            Coded::Triple(t) => (t.to_string(), t.to_string()),
            Coded::Name(n) => {
                let name = String::from_utf8_lossy(n).into_owned();
                (format!("={name}"), name)
            }
        }
    }
}

/// The codes Redis holds, and how many were given; the handles.
#[derive(Debug, Default)]
struct Dictionary {
    /// Members' triples' codes, by the triple.
    triples: FastMap<String, String>,
    /// Record names' codes, by the name.
    names: FastMap<Vec<u8>, String>,
    /// Record names, by their code.
    by_code: FastMap<String, Vec<u8>>,
    given: u64,
    /// A handle's start, `#<partition>.`: no two partitions give the same handle.
    handle_prefix: String,
    /// Handles given (the owner hash's `handles`).
    handles_given: u64,
    /// The handle of each alert the owner loaded since its last write (`None`: its record has
    /// none, or there is no record): what that write names the alert by.
    loaded: FastMap<String, Option<String>>,
}

impl Dictionary {
    fn get(&self, what: &Coded<'_>) -> Option<&String> {
        match what {
            Coded::Triple(t) => self.triples.get(*t),
            Coded::Name(n) => self.names.get(*n),
        }
    }

    /// Keeps the code of a dictionary field: a triple holds the separator, a name's field is
    /// `=` and a name without it; anything else (`n`, a code's `#` entry) is not a code.
    fn keep(&mut self, field: String, code: String) {
        if field.contains(SEP) {
            self.triples.insert(field, code);
        } else if let Some(name) = field.strip_prefix('=') {
            self.by_code.insert(code.clone(), name.as_bytes().to_vec());
            self.names.insert(name.as_bytes().to_vec(), code);
        }
    }
}

/// The dictionary of one claim, shared by the copies of its [`super::Fence`].
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<Mutex<Dictionary>>);

impl Names {
    /// Partition `partition`'s, from the dictionary hash as `HGETALL` returns it and the
    /// handles given.
    pub(crate) fn from_claim(
        partition: i32,
        fields: HashMap<String, String>,
        handles_given: u64,
    ) -> Names {
        let mut dict = Dictionary {
            given: fields.get("n").and_then(|n| n.parse().ok()).unwrap_or(0),
            handle_prefix: format!("#{}.", base62(u64::try_from(partition).unwrap_or(0))),
            handles_given,
            ..Dictionary::default()
        };
        for (field, code) in fields {
            dict.keep(field, code);
        }
        Names(Arc::new(Mutex::new(dict)))
    }

    /// A coder for one batch.
    pub(crate) fn coder(&self) -> Coder<'_> {
        let dict = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (from, handles_from) = (dict.given, dict.handles_given);
        Coder {
            dict,
            new: Vec::new(),
            new_at: FastMap::new(),
            from,
            handles_from,
            handles: 0,
        }
    }

    /// Of `alert_ids`, those whose handle the owner has not loaded.
    pub(crate) fn not_loaded<'i>(&self, alert_ids: impl Iterator<Item = &'i str>) -> Vec<String> {
        let dict = self.0.lock().unwrap_or_else(|e| e.into_inner());
        alert_ids
            .filter(|id| !dict.loaded.contains_key(*id))
            .map(str::to_owned)
            .collect()
    }

    /// An alert's record as Redis stores it (`None`: no record), loaded by the owner: keeps its
    /// handle for the alert's next write; returns the record without it.
    pub(crate) fn loaded(&self, alert_id: &str, stored: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let mut handle = None;
        let record = stored.map(|mut s| {
            if s.first() == Some(&b'#') {
                if let Some(at) = s.iter().position(|&b| b == b' ') {
                    handle = Some(String::from_utf8_lossy(&s[..at]).into_owned());
                    s.drain(..=at);
                }
            }
            s
        });
        let mut dict = self.0.lock().unwrap_or_else(|e| e.into_inner());
        dict.loaded.insert(alert_id.to_owned(), handle);
        record
    }

    /// A stored [`record`] with its names given back for its codes, as the decoder reads it.
    pub(crate) fn names_back(&self, stored: &[u8]) -> Result<Vec<u8>, record::RecordError> {
        let Some((codes, body)) = record::split_names(stored) else {
            return Ok(stored.to_vec());
        };
        let dict = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(stored.len() + 64);
        out.push(stored[0]);
        for (k, code) in codes.enumerate() {
            if k > 0 {
                out.push(record::NAME_SEP);
            }
            let name = std::str::from_utf8(code)
                .ok()
                .and_then(|code| dict.by_code.get(code))
                .ok_or(record::RecordError::UNKNOWN_CODE)?;
            out.extend_from_slice(name);
        }
        out.push(record::NAMES_END);
        out.extend_from_slice(body);
        Ok(out)
    }

    /// Keeps the codes and counts the handles a written batch gave: Redis has them now. The
    /// handles loaded for it are spent.
    pub(crate) fn written(&self, new: NewCodes) {
        let mut dict = self.0.lock().unwrap_or_else(|e| e.into_inner());
        dict.given = dict.given.max(new.from + new.entries.len() as u64);
        dict.handles_given = dict.handles_given.max(new.handles_from + new.handles);
        dict.loaded.clear();
        for e in new.entries {
            dict.keep(e.field, e.code);
        }
    }
}

/// A code given by a batch: the dictionary's field, the code, and what the code's `#` entry
/// gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewCode {
    pub(crate) field: String,
    pub(crate) code: String,
    pub(crate) value: String,
}

/// Codes and handles a batch gives: written with it, kept by [`Names::written`] once Redis has
/// them.
#[derive(Debug, Default)]
pub(crate) struct NewCodes {
    /// The dictionary's counter before them: the script refuses them (`ROLLBACK`) if Redis's
    /// is not there.
    pub(crate) from: u64,
    /// In the order given: the codes `from + 1` on.
    pub(crate) entries: Vec<NewCode>,
    /// The handle counter before the batch's (the same check).
    pub(crate) handles_from: u64,
    /// How many handles it gives: `handles_from + 1` on.
    pub(crate) handles: u64,
}

/// An alert's handle as a batch writes it, and whether the batch gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Named<'a> {
    pub(crate) handle: &'a str,
    pub(crate) given: bool,
}

/// Codes the strings of one batch: from the dictionary, or new.
pub(crate) struct Coder<'a> {
    dict: std::sync::MutexGuard<'a, Dictionary>,
    new: Vec<NewCode>,
    /// Where in `new` a field's code is.
    new_at: FastMap<String, usize>,
    /// The dictionary's counter when the batch began.
    from: u64,
    /// The handle counter when the batch began, and the handles given since.
    handles_from: u64,
    handles: u64,
}

impl Coder<'_> {
    fn code(&mut self, what: Coded<'_>) -> &str {
        if let Some(code) = self.dict.get(&what) {
            return code;
        }
        let (field, value) = what.field_and_value();
        let at = match self.new_at.get(&field) {
            Some(&at) => at,
            None => {
                self.new_at.insert(field.clone(), self.new.len());
                self.new.push(NewCode {
                    field,
                    code: base62(self.from + self.new.len() as u64 + 1),
                    value,
                });
                self.new.len() - 1
            }
        };
        &self.new[at].code
    }

    /// The handle of an alert the batch writes: a new one for an alert Redis holds no record
    /// of (`stored` false), else the one its record was loaded with (`None`: it has none, its
    /// id stands for itself). Every stored alert must have been loaded ([`Names::loaded`]).
    pub(crate) fn handle(&mut self, alert_id: &str, stored: bool) -> Option<String> {
        if !stored {
            self.handles += 1;
            let n = self.handles_from + self.handles;
            let mut handle = String::with_capacity(self.dict.handle_prefix.len() + 8);
            handle.push_str(&self.dict.handle_prefix);
            push_base62(&mut handle, n);
            return Some(handle);
        }
        self.dict.loaded.get(alert_id).cloned().flatten()
    }

    /// A stage index member as Redis stores it: `<code>␟<name>␟<x>` for
    /// [`super::IndexEntry`]'s `<jurisdiction>␟<risk>␟<stage>␟<alert_id>␟<x>`, the name being
    /// the alert's handle in `handles` (by alert id), else its id; and whether that handle is
    /// one this batch gave (no index can hold the member yet). A member of another shape is
    /// sent as it is.
    pub(crate) fn member(
        &mut self,
        member: &str,
        handles: &FastMap<&str, Named<'_>>,
    ) -> (String, bool) {
        let mut cuts = member.match_indices(SEP).map(|(at, _)| at);
        let (Some(_), Some(_), Some(third), Some(fourth), None) = (
            cuts.next(),
            cuts.next(),
            cuts.next(),
            cuts.next(),
            cuts.next(),
        ) else {
            return (member.to_owned(), false);
        };
        let id = &member[third + SEP.len_utf8()..fourth];
        let (name, given) = handles.get(id).map_or((id, false), |n| (n.handle, n.given));
        let code = self.code(Coded::Triple(&member[..third]));
        let mut out = String::with_capacity(code.len() + name.len() + member.len() - fourth + 1);
        out.push_str(code);
        out.push(SEP);
        out.push_str(name);
        out.push_str(&member[fourth..]);
        (out, given)
    }

    /// A [`record`] as Redis stores it: its alert's handle and a space at its head, if it has
    /// one, and each of its names replaced by its code.
    pub(crate) fn record(&mut self, rec: &[u8], handle: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(rec.len() + 12);
        if let Some(handle) = handle {
            out.extend_from_slice(handle.as_bytes());
            out.push(b' ');
        }
        let Some((names, body)) = record::split_names(rec) else {
            out.extend_from_slice(rec);
            return out;
        };
        out.push(rec[0]);
        for (k, name) in names.enumerate() {
            if k > 0 {
                out.push(record::NAME_SEP);
            }
            out.extend_from_slice(self.code(Coded::Name(name)).as_bytes());
        }
        out.push(record::NAMES_END);
        out.extend_from_slice(body);
        out
    }

    /// The codes and handles given, to write with the batch.
    pub(crate) fn finish(self) -> NewCodes {
        NewCodes {
            from: self.from,
            entries: self.new,
            handles_from: self.handles_from,
            handles: self.handles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_counts_as_the_scripts_do() {
        assert_eq!(base62(0), "0");
        assert_eq!(base62(61), "z");
        assert_eq!(base62(62), "10");
        assert_eq!(base62(62 * 62 + 1), "101");
        assert_eq!(base62(u64::MAX), "LygHa16AHYF", "the largest fits");
    }

    #[test]
    fn a_batch_codes_known_strings_from_the_dictionary_and_gives_new_ones_once() {
        let names = Names::from_claim(
            3,
            HashMap::from([
                ("n".to_owned(), "2".to_owned()),
                ("620102\x1fhigh\x1fvisit".to_owned(), "1".to_owned()),
                ("#1".to_owned(), "620102\x1fhigh\x1fvisit".to_owned()),
                ("=96110".to_owned(), "2".to_owned()),
                ("#2".to_owned(), "96110".to_owned()),
            ]),
            0,
        );
        let mut coder = names.coder();
        let named = |handle, given| Named { handle, given };
        let handles: FastMap<_, _> = [("A-1", named("#3.Z", true)), ("A-3", named("#3.X", false))]
            .into_iter()
            .collect();
        assert_eq!(
            coder.member("620102\x1fhigh\x1fvisit\x1fA-1\x1f0", &handles),
            ("1\x1f#3.Z\x1f0".to_owned(), true)
        );
        assert_eq!(
            coder.member("620102\x1fhigh\x1fmeet\x1fA-1\x1f0", &handles),
            ("3\x1f#3.Z\x1f0".to_owned(), true)
        );
        assert_eq!(
            coder.member("620102\x1fhigh\x1fmeet\x1fA-3\x1f0", &handles),
            ("3\x1f#3.X\x1f0".to_owned(), false)
        );
        assert_eq!(
            coder.member("620102\x1fhigh\x1fmeet\x1fA-2\x1f1", &handles),
            ("3\x1fA-2\x1f1".to_owned(), false)
        );
        assert_eq!(
            coder.member("not a member", &handles),
            ("not a member".to_owned(), false)
        );
        let rec = b"\xb2station-7\x1f96110\x1e\x01\x02";
        assert_eq!(coder.record(rec, None), b"\xb24\x1f2\x1e\x01\x02");
        let new = coder.finish();
        assert_eq!(new.from, 2);
        let entry = |field: &str, code: &str, value: &str| NewCode {
            field: field.to_owned(),
            code: code.to_owned(),
            value: value.to_owned(),
        };
        assert_eq!(
            new.entries,
            [
                entry("620102\x1fhigh\x1fmeet", "3", "620102\x1fhigh\x1fmeet"),
                entry("=station-7", "4", "station-7")
            ]
        );
        // Kept only once written: until then, the next batch gives the same code again.
        assert_eq!(names.coder().record(rec, None), b"\xb23\x1f2\x1e\x01\x02");
        names.written(new);
        let mut coder = names.coder();
        let stored = coder.record(rec, Some("#3.Z"));
        assert_eq!(stored, b"#3.Z \xb24\x1f2\x1e\x01\x02");
        assert!(coder.finish().entries.is_empty());
        // And back, as the owner loads it: the handle kept for the alert's next write, the
        // names given back; a code the dictionary does not hold is an error.
        let record = names.loaded("A-1", Some(stored)).unwrap();
        assert_eq!(names.names_back(&record).unwrap(), rec);
        assert_eq!(names.coder().handle("A-1", true).as_deref(), Some("#3.Z"));
        assert!(names.names_back(b"\xb27\x1e\x01").is_err());
        assert_eq!(names.names_back(b"\xb2\x1e\x01").unwrap(), b"\xb2\x1e\x01");
    }

    #[test]
    fn new_alerts_get_handles_from_the_counter_and_loaded_ones_keep_theirs_until_written() {
        let names = Names::from_claim(70, HashMap::new(), 60);
        // A record an earlier version wrote has no handle; no record, none either.
        let old = b"\xb2\x1e\x01".to_vec();
        assert_eq!(names.loaded("OLD", Some(old.clone())), Some(old));
        assert_eq!(names.loaded("GONE", None), None);
        assert_eq!(names.not_loaded(["OLD", "GONE", "B"].into_iter()), ["B"]);
        let mut coder = names.coder();
        assert_eq!(coder.handle("NEW-1", false).as_deref(), Some("#18.z"));
        assert_eq!(coder.handle("NEW-2", false).as_deref(), Some("#18.10"));
        assert_eq!(coder.handle("OLD", true), None);
        assert_eq!(coder.handle("GONE", true), None);
        let given = coder.finish();
        assert_eq!((given.handles_from, given.handles), (60, 2));
        // Not counted until written: a batch that failed gives the same handles again.
        assert_eq!(
            names.coder().handle("NEW-1", false).as_deref(),
            Some("#18.z")
        );
        names.written(given);
        assert_eq!(
            names.coder().handle("NEW-3", false).as_deref(),
            Some("#18.11")
        );
        // What was loaded for a write is spent with it.
        assert_eq!(names.not_loaded(["OLD"].into_iter()), ["OLD"]);
    }
}
