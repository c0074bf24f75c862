//! A partition's dictionary (`{p}:names`, `lua/names.lua`) as its owner holds it: the codes
//! that stand for the strings open alerts repeat, an index member's
//! `<jurisdiction>␟<risk>␟<stage>` and a record's names (station, channel, fraud type, policy
//! version).
//!
//! The owner codes what it writes, and gives the names back in what it loads, here and not in
//! the scripts: a Lua library call costs about what a Redis command does, and coding a batch's
//! names in Lua was 13% of Redis's instructions in a drain (BENCHMARKS.md, Profiles). The dictionary is read whole when the
//! partition is claimed; a code the owner gives is written by the batch that first uses it and
//! kept here only once Redis has it. Only the owner writes the dictionary, and a Redis that
//! forgets a batch forgets its codes with it: the batch after is refused as a `ROLLBACK`, and
//! the claim that follows reads the dictionary again. Codes are never reused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::record;
use super::SEP;

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` in base 62, as the scripts write codes and handles.
pub(crate) fn base62(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 62) as usize]);
        n /= 62;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
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

/// The codes Redis holds, and how many were given.
#[derive(Debug, Default)]
struct Dictionary {
    /// Members' triples' codes, by the triple.
    triples: HashMap<String, String>,
    /// Record names' codes, by the name.
    names: HashMap<Vec<u8>, String>,
    /// Record names, by their code.
    by_code: HashMap<String, Vec<u8>>,
    given: u64,
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
    /// From the dictionary hash as `HGETALL` returns it.
    pub(crate) fn from_hash(fields: HashMap<String, String>) -> Names {
        let mut dict = Dictionary {
            given: fields.get("n").and_then(|n| n.parse().ok()).unwrap_or(0),
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
        let from = dict.given;
        Coder {
            dict,
            new: Vec::new(),
            new_at: HashMap::new(),
            from,
        }
    }

    /// A stored [`record`] with its names given back for its codes, as the decoder reads it.
    pub(crate) fn names_back(&self, stored: Vec<u8>) -> Result<Vec<u8>, record::RecordError> {
        let Some((codes, body)) = record::split_names(&stored) else {
            return Ok(stored);
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

    /// Keeps the codes a written batch gave: Redis has them now.
    pub(crate) fn written(&self, new: NewCodes) {
        let mut dict = self.0.lock().unwrap_or_else(|e| e.into_inner());
        dict.given = dict.given.max(new.from + new.entries.len() as u64);
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

/// Codes a batch gives: written with it, kept by [`Names::written`] once Redis has them.
#[derive(Debug, Default)]
pub(crate) struct NewCodes {
    /// The dictionary's counter before them: the script refuses them (`ROLLBACK`) if Redis's
    /// is not there.
    pub(crate) from: u64,
    /// In the order given: the codes `from + 1` on.
    pub(crate) entries: Vec<NewCode>,
}

/// Codes the strings of one batch: from the dictionary, or new.
pub(crate) struct Coder<'a> {
    dict: std::sync::MutexGuard<'a, Dictionary>,
    new: Vec<NewCode>,
    /// Where in `new` a field's code is.
    new_at: HashMap<String, usize>,
    /// The dictionary's counter when the batch began.
    from: u64,
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

    /// A stage index member as Redis takes it from the owner: `<code>␟<alert_id>␟<x>` for
    /// [`super::IndexEntry`]'s `<jurisdiction>␟<risk>␟<stage>␟<alert_id>␟<x>` (the script puts
    /// the alert's handle for its id). A member of another shape is sent as it is.
    pub(crate) fn member(&mut self, member: &str) -> String {
        let mut cuts = member.match_indices(SEP).map(|(at, _)| at);
        let (Some(_), Some(_), Some(third), Some(_), None) = (
            cuts.next(),
            cuts.next(),
            cuts.next(),
            cuts.next(),
            cuts.next(),
        ) else {
            return member.to_owned();
        };
        let code = self.code(Coded::Triple(&member[..third]));
        let mut out = String::with_capacity(code.len() + member.len() - third);
        out.push_str(code);
        out.push_str(&member[third..]);
        out
    }

    /// A [`record`] as Redis stores it: each of its names replaced by its code.
    pub(crate) fn record(&mut self, rec: &[u8]) -> Vec<u8> {
        let Some((names, body)) = record::split_names(rec) else {
            return rec.to_vec();
        };
        let mut out = Vec::with_capacity(rec.len());
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

    /// The codes given, to write with the batch.
    pub(crate) fn finish(self) -> NewCodes {
        NewCodes {
            from: self.from,
            entries: self.new,
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
    }

    #[test]
    fn a_batch_codes_known_strings_from_the_dictionary_and_gives_new_ones_once() {
        let names = Names::from_hash(HashMap::from([
            ("n".to_owned(), "2".to_owned()),
            ("620102\x1fhigh\x1fvisit".to_owned(), "1".to_owned()),
            ("#1".to_owned(), "620102\x1fhigh\x1fvisit".to_owned()),
            ("=96110".to_owned(), "2".to_owned()),
            ("#2".to_owned(), "96110".to_owned()),
        ]));
        let mut coder = names.coder();
        assert_eq!(
            coder.member("620102\x1fhigh\x1fvisit\x1fA-1\x1f0"),
            "1\x1fA-1\x1f0"
        );
        assert_eq!(
            coder.member("620102\x1fhigh\x1fmeet\x1fA-1\x1f0"),
            "3\x1fA-1\x1f0"
        );
        assert_eq!(
            coder.member("620102\x1fhigh\x1fmeet\x1fA-2\x1f1"),
            "3\x1fA-2\x1f1"
        );
        assert_eq!(coder.member("not a member"), "not a member");
        let rec = b"\xb2station-7\x1f96110\x1e\x01\x02";
        assert_eq!(coder.record(rec), b"\xb24\x1f2\x1e\x01\x02");
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
        assert_eq!(names.coder().record(rec), b"\xb23\x1f2\x1e\x01\x02");
        names.written(new);
        let mut coder = names.coder();
        let stored = coder.record(rec);
        assert_eq!(stored, b"\xb24\x1f2\x1e\x01\x02");
        assert!(coder.finish().entries.is_empty());
        // And back, as the owner loads it; a code the dictionary does not hold is an error.
        assert_eq!(names.names_back(stored).unwrap(), rec);
        assert!(names.names_back(b"\xb27\x1e\x01".to_vec()).is_err());
        assert_eq!(
            names.names_back(b"\xb2\x1e\x01".to_vec()).unwrap(),
            b"\xb2\x1e\x01"
        );
    }
}
