//! Kafka client settings in one place, for the processor, `simulate` and `watch`: the user's
//! `[kafka.client]` applies everywhere, but never over what correctness depends on.

use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Settings shared by every client; the user's `[kafka.client]` comes last but cannot override
/// what correctness depends on.
///
/// The readers that use it never join a group, so `group.instance.id` (the processor's static
/// membership) is left out.
pub(crate) fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.client {
        if k != INSTANCE_ID {
            c.set(k, v);
        }
    }
    c
}

const INSTANCE_ID: &str = "group.instance.id";

/// The processor's static group membership, `[kafka.client]."group.instance.id"`, if set and
/// not empty (librdkafka treats an empty one as unset). A process restarted with it takes its
/// partitions back at once (docs/design.md, "Restarts in place").
pub(crate) fn instance_id(config: &KafkaConfig) -> Option<String> {
    config
        .client
        .get(INSTANCE_ID)
        .filter(|id| !id.is_empty())
        .cloned()
}

/// Fetch settings for every reader (the processor, the board's events, `watch`, the report),
/// unless `[kafka.client]` sets them:
/// - `fetch.wait.max.ms` 100: tansu holds a fetch for the whole wait when it has less than a
///   full response (it does not answer early when data arrives), so the default 500 ms is
///   latency every message pays; at 0 ms (or 1 ms, for some logs) it answers nothing, forever.
/// - `fetch.queue.backoff.ms` 10: librdkafka stops fetching a partition for this long (1 s by
///   default) whenever its local queue holds `queued.min.messages`; a reader that drains the
///   queue in a fraction of that sits idle for the rest (half the time of a backlog drain or a
///   large report).
pub(crate) fn reader_defaults(c: &mut ClientConfig, config: &KafkaConfig) {
    for (key, value) in [
        ("fetch.wait.max.ms", "100"),
        ("fetch.queue.backoff.ms", "10"),
    ] {
        if !config.client.contains_key(key) {
            c.set(key, value);
        }
    }
}

pub(crate) fn consumer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("statistics.interval.ms", "5000")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "60000")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest");
    reader_defaults(&mut c, config);
    for (k, v) in &config.client {
        c.set(k, v);
    }
    c.set("group.id", &config.group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Range keeps partition p of both co-partitioned topics on the same member.
        .set("partition.assignment.strategy", "range");
    c
}

pub(crate) fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        // Connect to the brokers named by metadata at once, not when first needed: the
        // idempotent producer asks a connected broker for its producer id, retrying on a
        // 500 ms timer, and publishes nothing before it has one. Escalations fired at start-up
        // (partitions taken back after a restart) reached a reader 1.1 s after the restart with
        // sparse connections, 0.08 s without.
        .set("enable.sparse.connections", "false");
    for (k, v) in &config.client {
        const CONSUMER_ONLY: [&str; 9] = [
            "session.",
            "max.poll",
            "auto.",
            "heartbeat.",
            "group.",
            "partition.assignment",
            "fetch.",
            "isolation.",
            "enable.auto",
        ];
        if !CONSUMER_ONLY.iter().any(|p| k.starts_with(p)) {
            c.set(k, v);
        }
    }
    c.set("enable.idempotence", "true").set("acks", "all");
    c
}

pub(crate) fn producer(config: &KafkaConfig) -> KafkaResult<FutureProducer> {
    producer_config(config).create()
}
