//! Readiness signals shared by the workers and the HTTP server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// `/readyz` is 200 only when Kafka and Redis answer and partitions are assigned.
#[derive(Debug, Default)]
pub struct Health {
    kafka: AtomicBool,
    redis: AtomicBool,
    owned: AtomicUsize,
    /// Open alerts per owned partition; the gauge is their sum.
    open: Mutex<HashMap<i32, i64>>,
}

impl Health {
    pub fn set_kafka(&self, ok: bool) {
        self.kafka.store(ok, Ordering::Relaxed);
    }
    pub fn set_redis(&self, ok: bool) {
        self.redis.store(ok, Ordering::Relaxed);
    }
    pub fn partition_owned(&self) {
        self.owned.fetch_add(1, Ordering::Relaxed);
    }
    pub fn partition_released(&self) {
        let _ = self
            .owned
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
    pub fn owned(&self) -> usize {
        self.owned.load(Ordering::Relaxed)
    }
    pub fn kafka_ok(&self) -> bool {
        self.kafka.load(Ordering::Relaxed)
    }
    pub fn redis_ok(&self) -> bool {
        self.redis.load(Ordering::Relaxed)
    }
    /// Records a partition's open-alert count (`None` when released); returns the total.
    pub fn set_open(&self, partition: i32, count: Option<i64>) -> i64 {
        let mut open = self.open.lock().expect("open map lock is never poisoned");
        match count {
            Some(n) => open.insert(partition, n),
            None => open.remove(&partition),
        };
        open.values().sum()
    }
    pub fn ready(&self) -> bool {
        self.kafka_ok() && self.redis_ok() && self.owned() > 0
    }
}
