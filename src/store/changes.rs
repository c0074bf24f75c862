//! Reading the change stream: the board's live events (docs/contract.md §10.4, `GET /v1/events`)
//! follow `{<prefix>:<p>}:events` from its end when the process starts, as `XREAD`'s `$` would,
//! but without `XREAD BLOCK`, which would stall every other command on the multiplexed
//! connection all partitions share. [`Store::changes`] reads on from there.
//!
//! The stream is trimmed (to [`super::EVENTS_WINDOW_MS`] and at most
//! [`super::EVENTS_MAXLEN`] entries), and Redis may lose it (a
//! flush, a promoted replica). A reader that asks for what came after an entry that is no
//! longer there may have missed entries: [`Changes::gap`] says so, and the board refetches.

use super::{Store, StoreError};
use redis::AsyncCommands;

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
    /// The id of the newest entry of `partition`'s change stream, `"0-0"` when it is empty
    /// (then whatever comes next is after it).
    pub async fn changes_end(&self, partition: i32) -> Result<String, StoreError> {
        let mut c = self.conn.clone();
        let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
            .arg(self.keys(partition).events())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await?;
        Ok(last
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_owned(), |(id, _)| id))
    }

    /// Up to `count` entries of the partition's change stream after `after_id` (exclusive; `""`
    /// or `"-"` from the oldest kept, `"0-0"` from an empty stream's end), and whether
    /// `after_id` is still there. The read starts *at* `after_id`: trimming only removes the
    /// oldest entries, so when it is still the first, nothing after it was lost.
    /// An entry whose `c` is not that JSON is an error: only the batch script writes the
    /// stream.
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
        let mut c = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = c
            .xrange_count(
                self.keys(partition).events(),
                start,
                "+",
                count + usize::from(at.is_some()),
            )
            .await?;
        let mut ids = reply.ids.into_iter().peekable();
        let gap = match at {
            Some(at) if ids.peek().is_some_and(|e| e.id == at) => {
                // Not decoded: it was read (or skipped as unreadable) before.
                ids.next();
                false
            }
            Some(_) => true,
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
