//! Where a reader of the change stream starts: the board's live events (docs/contract.md
//! §10.4, `GET /v1/events`) follow `{<prefix>:<p>}:events` from its end when the process starts,
//! as `XREAD`'s `$` would, but without `XREAD BLOCK`, which would stall every other command on
//! the multiplexed connection all partitions share. [`Store::changes`] reads on from there.

use super::{Store, StoreError};

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
}
