//! Redis: per-partition state and clocks, written atomically by Lua scripts.
//!
//! Every key of partition *p* carries the hash tag `{<prefix>:<p>}`, so each script touches one
//! Redis Cluster slot and ownership of the state moves with the Kafka partition.
//!
//! | key                        | type   | holds                                              |
//! |----------------------------|--------|----------------------------------------------------|
//! | `{fsla:p}:owner`           | hash   | `epoch` and `token` of the owner (fencing), `seq` its writes (rollback detection) |
//! | `{fsla:p}:offsets`         | hash   | highest applied offset per input topic             |
//! | `{fsla:p}:a:<alert_id>`    | string | the alert's [`AlertState`] as JSON                 |
//! | `{fsla:p}:clock`           | zset   | one entry per open alert: its next due time (ms)   |
//! | `{fsla:p}:open`            | zset   | open alerts by `issued_at`                         |
//! | `{fsla:p}:overdue`         | zset   | open alerts with a breached stage, by deadline     |
//! | `{fsla:p}:outbox`          | stream | escalations written with their transition, deleted once the broker acked |
//! | `{fsla:p}:am`              | stream | Alertmanager alerts written with their transition, deleted once posted |
//! | `{fsla:p}:policy`          | hash   | policy snapshots by version, written with the first alert that names one |

mod conn;

pub use conn::RedisConn;

use redis::{AsyncCommands, Script};
use std::collections::HashMap;

use crate::domain::{AlertState, Millis, Policies};

/// A Redis failure, or the fence refusing a stale owner.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("partition {partition} is owned by a newer epoch: {message}")]
    Fenced { partition: i32, message: String },
    /// Redis holds less than this owner wrote: it lost writes (replica promoted, crash, restore).
    #[error("partition {partition} rolled back in Redis: {message}")]
    Rollback { partition: i32, message: String },
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("stored state of alert {alert_id} is unreadable: {source}")]
    Corrupt {
        alert_id: String,
        source: serde_json::Error,
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
    pub fn clock(&self) -> String {
        format!("{}:clock", self.tag)
    }
    pub fn open(&self) -> String {
        format!("{}:open", self.tag)
    }
    pub fn overdue(&self) -> String {
        format!("{}:overdue", self.tag)
    }
    pub fn outbox(&self) -> String {
        format!("{}:outbox", self.tag)
    }
    pub fn alertmanager(&self) -> String {
        format!("{}:am", self.tag)
    }
    pub fn policies(&self) -> String {
        format!("{}:policy", self.tag)
    }
    pub fn alert(&self, alert_id: &str) -> String {
        format!("{}:a:{alert_id}", self.tag)
    }
}

/// The owner's side of the fence: every write carries it, and Redis refuses a stale owner
/// (`FENCED`) or tells an owner it is ahead of Redis (`ROLLBACK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub epoch: i64,
    /// Random per claim, so two owners never share an epoch after Redis forgot a claim.
    pub token: String,
    /// Writes this owner knows Redis holds; one more after every non-empty batch.
    pub seq: i64,
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

/// One alert record to write, with its index entries.
#[derive(Debug, Clone)]
pub struct AlertWrite {
    pub alert_id: String,
    pub state: String,
    pub next_due: Option<Millis>,
    pub open_since: Option<Millis>,
    pub overdue_since: Option<Millis>,
    /// Closed alerts and held dispositions expire after `retention`; open alerts never do.
    pub ttl_ms: Option<i64>,
}

impl AlertWrite {
    pub fn from_state(alert_id: &str, state: &AlertState, policies: &Policies) -> AlertWrite {
        AlertWrite {
            alert_id: alert_id.to_owned(),
            state: serde_json::to_string(state).expect("alert state always serialises"),
            next_due: state.next_due(policies),
            open_since: state
                .alert
                .as_ref()
                .filter(|_| state.is_open())
                .map(|a| a.issued_at),
            overdue_since: state.overdue_since(),
            ttl_ms: (!state.is_open()).then_some(policies.retention),
        }
    }
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
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
            && self.alerts.is_empty()
            && self.escalations.is_empty()
            && self.notices.is_empty()
            && self.policies.is_empty()
    }
}

/// An escalation waiting in the outbox for the broker's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub stream_id: String,
    pub escalation_id: String,
    pub json: String,
}

/// The store: one connection (multiplexed, reconnecting) and the scripts.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    prefix: String,
    apply_batch: Script,
    claim_partition: Script,
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
            apply_batch: Script::new(include_str!("lua/apply_batch.lua")),
            claim_partition: Script::new(include_str!("lua/claim_partition.lua")),
        }
    }

    pub fn keys(&self, partition: i32) -> PartitionKeys {
        PartitionKeys::new(&self.prefix, partition)
    }

    /// Takes ownership of `partition`, fencing out any previous owner.
    pub async fn claim(&self, partition: i32) -> Result<Claim, StoreError> {
        let k = self.keys(partition);
        let token = format!("{:016x}", rand::random::<u64>());
        let mut c = self.conn.clone();
        let (epoch, seq, applied): (i64, i64, HashMap<String, i64>) = self
            .claim_partition
            .key(k.owner())
            .key(k.offsets())
            .arg(&token)
            .invoke_async(&mut c)
            .await?;
        Ok(Claim {
            fence: Fence { epoch, token, seq },
            applied,
        })
    }

    /// Checks, writing nothing, that `fence` still owns the partition and Redis still holds
    /// everything it wrote.
    pub async fn check(&self, partition: i32, fence: &mut Fence) -> Result<(), StoreError> {
        self.apply(partition, fence, &Batch::default())
            .await
            .map(drop)
    }

    /// Loads the states of `alert_ids` (one `MGET`: they share a slot).
    pub async fn load(
        &self,
        partition: i32,
        alert_ids: &[String],
    ) -> Result<Vec<Option<AlertState>>, StoreError> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys(partition);
        let keys: Vec<String> = alert_ids.iter().map(|id| k.alert(id)).collect();
        let mut c = self.conn.clone();
        let raw: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        raw.into_iter()
            .zip(alert_ids)
            .map(|(json, id)| {
                json.map(|j| {
                    serde_json::from_str(&j).map_err(|source| StoreError::Corrupt {
                        alert_id: id.clone(),
                        source,
                    })
                })
                .transpose()
            })
            .collect()
    }

    /// Writes a batch atomically, if `fence` still owns the partition and Redis holds all it
    /// wrote (then `fence.seq` counts this write); returns the batch's escalations as outbox
    /// entries.
    pub async fn apply(
        &self,
        partition: i32,
        fence: &mut Fence,
        batch: &Batch,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let k = self.keys(partition);
        let mut inv = self.apply_batch.prepare_invoke();
        inv.key(k.owner())
            .key(k.offsets())
            .key(k.clock())
            .key(k.open())
            .key(k.overdue())
            .key(k.outbox())
            .key(k.alertmanager())
            .key(k.policies());
        inv.arg(fence.epoch)
            .arg(&fence.token)
            .arg(fence.seq)
            .arg(batch.offsets.len());
        for (topic, offset) in &batch.offsets {
            inv.arg(topic).arg(offset);
        }
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        inv.arg(batch.alerts.len());
        for a in &batch.alerts {
            inv.key(k.alert(&a.alert_id));
            inv.arg(&a.alert_id)
                .arg(&a.state)
                .arg(opt(a.next_due))
                .arg(opt(a.open_since))
                .arg(opt(a.overdue_since))
                .arg(opt(a.ttl_ms));
        }
        inv.arg(batch.escalations.len());
        for (id, json) in &batch.escalations {
            inv.arg(id).arg(json);
        }
        inv.arg(batch.notices.len());
        for json in &batch.notices {
            inv.arg(json);
        }
        inv.arg(batch.policies.len());
        for (version, json) in &batch.policies {
            inv.arg(version).arg(json);
        }
        let mut c = self.conn.clone();
        match inv.invoke_async::<Vec<String>>(&mut c).await {
            Ok(stream_ids) => {
                if !batch.is_empty() {
                    fence.seq += 1;
                }
                Ok(stream_ids
                    .into_iter()
                    .zip(&batch.escalations)
                    .map(|(stream_id, (id, json))| OutboxEntry {
                        stream_id,
                        escalation_id: id.clone(),
                        json: json.clone(),
                    })
                    .collect())
            }
            Err(e) if has_code(&e, "FENCED") => Err(StoreError::Fenced {
                partition,
                message: e.to_string(),
            }),
            Err(e) if has_code(&e, "ROLLBACK") => Err(StoreError::Rollback {
                partition,
                message: e.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The policy snapshots the partition's alerts name: `(version, JSON)`.
    pub async fn policies(&self, partition: i32) -> Result<Vec<(String, String)>, StoreError> {
        let mut c = self.conn.clone();
        Ok(c.hgetall(self.keys(partition).policies()).await?)
    }

    /// Alert ids whose clock is due at `now`, earliest first.
    pub async fn due(
        &self,
        partition: i32,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = c
            .zrangebyscore_limit(self.keys(partition).clock(), "-inf", now, 0, limit as isize)
            .await?;
        Ok(ids)
    }

    /// The earliest due time on the partition's clock.
    pub async fn next_due(&self, partition: i32) -> Result<Option<Millis>, StoreError> {
        let mut c = self.conn.clone();
        let first: Vec<(String, f64)> = c
            .zrange_withscores(self.keys(partition).clock(), 0, 0)
            .await?;
        Ok(first.first().map(|(_, score)| *score as Millis))
    }

    /// Number of open alerts on the partition.
    pub async fn open_count(&self, partition: i32) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        Ok(c.zcard(self.keys(partition).open()).await?)
    }

    /// Every escalation not yet acknowledged by the broker, oldest first.
    pub async fn outbox(&self, partition: i32) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut c = self.conn.clone();
        let reply: redis::streams::StreamRangeReply =
            c.xrange_all(self.keys(partition).outbox()).await?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|entry| {
                let escalation_id: String = entry.get("id")?;
                let json: String = entry.get("e")?;
                Some(OutboxEntry {
                    stream_id: entry.id,
                    escalation_id,
                    json,
                })
            })
            .collect())
    }

    /// Removes published escalations from the outbox.
    pub async fn ack(&self, partition: i32, stream_ids: &[String]) -> Result<(), StoreError> {
        if stream_ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: i64 = c.xdel(self.keys(partition).outbox(), stream_ids).await?;
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

/// The error code a script answered with (`redis.error_reply("CODE …")`).
fn has_code(e: &redis::RedisError, code: &str) -> bool {
    e.code() == Some(code) || e.to_string().contains(code)
}
