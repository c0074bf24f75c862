//! Reading the change stream: the board's live events (docs/contract.md §10.4, `GET /v1/events`)
//! follow `{<prefix>:<p>}:events` from when a page connected ([`Store::changes_from`]), without
//! `XREAD BLOCK`, which would stall every other command on the multiplexed connection all
//! partitions share. [`Store::changes`] reads on from there.
//!
//! The stream is trimmed to its last [`super::EVENTS_WINDOW_MS`], and Redis may lose it (a
//! flush, a promoted replica). A reader may have missed entries when something newer than its
//! place was trimmed (the batch script records the newest entry it trimmed), or when its place
//! is gone and was not trimmed (the stream lost): [`Changes::gap`] says so, and the board
//! refetches. A place that was merely the oldest entry, trimmed after it was read, is no gap:
//! on a quiet partition that is every reader's place when the next batch comes.

use super::{Store, StoreError};

/// What came after a position in a change stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// The position is no longer in the stream (trimmed past, or the stream lost): entries
    /// after it may be missing.
    pub gap: bool,
    /// `(stream id, [(alert_id, jurisdiction)])`, oldest first.
    pub entries: Vec<(String, Vec<(String, String)>)>,
}

impl Store {
    /// Up to `count` entries of `partition`'s change stream written at or after `since`
    /// (milliseconds, by the stream ids Redis gives from its clock), oldest first: where the
    /// board starts reading when a page connects. Entries already trimmed are not asked after:
    /// a page that just connected refetches anyway.
    pub async fn changes_from(
        &self,
        partition: i32,
        since: i64,
        count: usize,
    ) -> Result<Changes, StoreError> {
        let start = format!("{}-0", since.max(0));
        self.read_stream(partition, &start, None, count).await
    }

    /// Up to `count` entries of the partition's change stream after `after_id` (exclusive; `""`
    /// or `"-"` from the oldest kept, `"0-0"` from an empty stream's end), and whether entries
    /// after `after_id` may have been lost. The read starts *at* `after_id` to see whether it is
    /// still there. An entry whose `c` is not that JSON is an error: only the batch script
    /// writes the stream.
    pub async fn changes(
        &self,
        partition: i32,
        after_id: &str,
        count: usize,
    ) -> Result<Changes, StoreError> {
        let (start, at) = match after_id {
            "" | "-" => ("-", None),
            // No entry has id 0-0, and an empty stream lost nothing before its first entry.
            "0-0" => ("0-0", None),
            id => (id, Some(id)),
        };
        self.read_stream(partition, start, at, count).await
    }

    /// Up to `count` entries from `start` (inclusive), the one at `at` left out; whether entries
    /// after `at` may have been lost.
    async fn read_stream(
        &self,
        partition: i32,
        start: &str,
        at: Option<&str>,
        count: usize,
    ) -> Result<Changes, StoreError> {
        let k = self.keys(partition);
        let mut c = self.conn.clone();
        let (trimmed, reply): (Option<String>, redis::streams::StreamRangeReply) = self
            .scripts
            .read_changes
            .key(k.events())
            .key(k.events_trimmed())
            .arg(start)
            .arg(count + usize::from(at.is_some()))
            .invoke_async(&mut c)
            .await?;
        let mut ids = reply.ids.into_iter().peekable();
        let gap = match at {
            Some(at) => {
                let there = ids.peek().is_some_and(|e| e.id == at);
                if there {
                    // Not decoded: it was read (or skipped as unreadable) before.
                    ids.next();
                }
                match trimmed.as_deref() {
                    // Something after it was trimmed.
                    Some(t) if stream_id(t) > stream_id(at) => true,
                    // It was the newest trimmed, or is still there.
                    Some(t) if t == at => false,
                    // Gone without being trimmed: the stream was lost.
                    _ => !there,
                }
            }
            None => false,
        };
        let entries = ids
            .take(count)
            .map(|entry| {
                let corrupt = |problem: String| StoreError::CorruptChange {
                    partition,
                    stream_id: entry.id.clone(),
                    problem,
                };
                let json: String = entry
                    .get("c")
                    .ok_or_else(|| corrupt("it has no field c".into()))?;
                let pairs: Vec<(String, String)> =
                    serde_json::from_str(&json).map_err(|e| corrupt(e.to_string()))?;
                Ok((entry.id.clone(), pairs))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Changes { gap, entries })
    }
}

/// A stream id's `(milliseconds, sequence)`, which order as the ids do; `(0, 0)` for anything
/// else.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}
