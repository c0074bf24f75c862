//! Readiness signals shared by the workers and the HTTP server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// `/readyz` is 200 only when Kafka and Redis answer and partitions are assigned. An instance
/// whose group gave it no partition (more members than partitions) is a *standby*: not ready,
/// but not broken either.
#[derive(Debug)]
pub(crate) struct Health {
    kafka: AtomicBool,
    /// Redis's failures seen so far, shifted left by one, with bit 0 set while it answers. One
    /// word, so that an answer counts only if no failure was seen since its call began.
    redis: AtomicU64,
    owned: AtomicUsize,
    /// Partitions in the group's latest assignment to this member; -1 while none was received
    /// (starting, or in a rebalance).
    assigned: AtomicI64,
    /// Open alerts per owned partition; the gauge is their sum.
    open: Mutex<HashMap<i32, i64>>,
    /// The policy in force and what the last `SIGHUP` reload did, for `/readyz`.
    config: Mutex<ConfigStatus>,
}

/// The policy in force and the outcome of the last reload.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct ConfigStatus {
    pub(crate) policy_version: String,
    /// `None` until a reload is asked for.
    pub(crate) last_reload: Option<ReloadOutcome>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ReloadOutcome {
    pub(crate) ok: bool,
    /// UTC, RFC 3339.
    pub(crate) at: String,
    /// Why the file was refused, naming the key; the old policy stays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            kafka: AtomicBool::default(),
            redis: AtomicU64::default(),
            owned: AtomicUsize::default(),
            assigned: AtomicI64::new(-1),
            open: Mutex::default(),
            config: Mutex::default(),
        }
    }
}

/// What `/readyz` and `fraud_sla_ready` / `fraud_sla_standby` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    /// Healthy member of the group with no partition to own.
    Standby,
    NotReady,
}

impl Readiness {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::Standby => "standby",
            Readiness::NotReady => "not_ready",
        }
    }
}

impl Health {
    /// The group assigned this member `partitions` partitions (`None`: assignment revoked).
    pub(crate) fn set_assigned(&self, partitions: Option<usize>) {
        let n = partitions.map_or(-1, |n| n as i64);
        self.assigned.store(n, Ordering::Relaxed);
    }
    pub(crate) fn readiness(&self) -> Readiness {
        let reachable = self.kafka_ok() && self.redis_ok();
        let assigned = self.assigned.load(Ordering::Relaxed);
        // Partitions taken back at start-up fire their clocks before the group assigns them,
        // but the instance is ready only once it also reads their input.
        if reachable && self.owned() > 0 && assigned > 0 {
            Readiness::Ready
        } else if reachable && assigned == 0 {
            Readiness::Standby
        } else {
            Readiness::NotReady
        }
    }
    pub(crate) fn set_kafka(&self, ok: bool) {
        self.kafka.store(ok, Ordering::Relaxed);
    }
    /// Runs one Redis call. Its success marks Redis reachable only if no failure was seen
    /// since it began: an answer that arrives after another partition saw Redis go away is
    /// news from before the outage, and must not make `/readyz` 200 during it.
    pub(crate) async fn redis_call<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let began = self.redis.load(Ordering::Acquire) >> 1;
        let result = call.await;
        if result.is_ok() {
            let _ = self
                .redis
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                    (now >> 1 == began).then_some(now | 1)
                });
        }
        result
    }
    /// A Redis call failed in a way that retrying may fix (unreachable, timed out).
    pub(crate) fn redis_failed(&self) {
        let _ = self
            .redis
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(((now >> 1) + 1) << 1)
            });
    }
    pub(crate) fn partition_owned(&self) {
        self.owned.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn partition_released(&self) {
        let _ = self
            .owned
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
    pub(crate) fn owned(&self) -> usize {
        self.owned.load(Ordering::Relaxed)
    }
    pub(crate) fn kafka_ok(&self) -> bool {
        self.kafka.load(Ordering::Relaxed)
    }
    pub(crate) fn redis_ok(&self) -> bool {
        self.redis.load(Ordering::Acquire) & 1 == 1
    }
    pub(crate) fn config(&self) -> ConfigStatus {
        self.config
            .lock()
            .expect("config status lock is never poisoned")
            .clone()
    }
    pub(crate) fn set_config(&self, status: ConfigStatus) {
        *self
            .config
            .lock()
            .expect("config status lock is never poisoned") = status;
    }
    /// Records a partition's open-alert count (`None` when released); returns the total.
    pub(crate) fn set_open(&self, partition: i32, count: Option<i64>) -> i64 {
        let mut open = self.open.lock().expect("open map lock is never poisoned");
        match count {
            Some(n) => open.insert(partition, n),
            None => open.remove(&partition),
        };
        open.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answered(h: &Health) {
        h.redis_call(async { Ok::<_, ()>(()) }).await.unwrap();
    }

    #[tokio::test]
    async fn a_member_without_partitions_is_a_standby_not_a_failure() {
        let h = Health::default();
        h.set_kafka(true);
        answered(&h).await;
        assert_eq!(h.readiness(), Readiness::NotReady, "no assignment yet");
        h.set_assigned(Some(0));
        assert_eq!(h.readiness(), Readiness::Standby);
        h.redis_failed();
        assert_eq!(h.readiness(), Readiness::NotReady, "Redis down is broken");
        answered(&h).await;
        h.set_assigned(None);
        h.partition_owned();
        assert_eq!(
            h.readiness(),
            Readiness::NotReady,
            "a partition taken back, not yet assigned"
        );
        h.set_assigned(Some(2));
        assert_eq!(h.readiness(), Readiness::Ready);
        h.partition_released();
        h.set_assigned(None);
        assert_eq!(h.readiness(), Readiness::NotReady, "in a rebalance");
    }

    #[tokio::test]
    async fn an_answer_to_a_call_begun_before_a_failure_does_not_make_redis_reachable() {
        let h = Health::default();
        answered(&h).await;
        let (answer, answered_late) = tokio::sync::oneshot::channel::<()>();
        let early = h.redis_call(async {
            answered_late.await.unwrap();
            Ok::<_, ()>(())
        });
        let failure_meanwhile = async {
            tokio::task::yield_now().await;
            h.redis_failed();
            answer.send(()).unwrap();
        };
        let (early, ()) = tokio::join!(early, failure_meanwhile);
        assert_eq!(early, Ok(()), "the caller still gets its answer");
        assert!(!h.redis_ok(), "a failure since the call began wins");
        let failed = h.redis_call(async { Err::<(), _>("refused") }).await;
        assert!(failed.is_err() && !h.redis_ok());
        answered(&h).await;
        assert!(h.redis_ok(), "a call begun after the failure counts");
    }
}
