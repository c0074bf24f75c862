//! Kafka client settings in one place, for the processor, `simulate` and `watch`: the user's
//! `[kafka.client]` applies to every client it concerns (a producer's property to the producers,
//! a consumer's to the consumers), but never over what correctness depends on.

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

use crate::config::KafkaConfig;

/// A reader's settings (the board's events, `watch`, the report): [`reader_defaults`], then the
/// user's `[kafka.client]` as it applies to a consumer. The readers never join a group, so
/// `group.instance.id` (the processor's static membership) is left out.
pub(crate) fn reader_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    reader_defaults(&mut c, config);
    for (k, v) in settings_except(config, &PRODUCER_ONLY) {
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
fn reader_defaults(c: &mut ClientConfig, config: &KafkaConfig) {
    for (key, value) in [
        ("fetch.wait.max.ms", "100"),
        ("fetch.queue.backoff.ms", "10"),
    ] {
        if !config.client.contains_key(key) {
            c.set(key, value);
        }
    }
}

/// A producer's own properties (prefixes): librdkafka ignores them in a consumer, with a warning
/// at every start (`compression.type`, say, set for the escalations).
const PRODUCER_ONLY: [&str; 18] = [
    "transactional.",
    "transaction.",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.",
    "queuing.strategy",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "batch.",
    "sticky.partitioning.",
    "compression.",
    "delivery.",
    "acks",
    "request.required.acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "partitioner",
];

/// A consumer's own properties (prefixes), left out of the producers. Both lists are
/// librdkafka's `C` and `P` properties (its CONFIGURATION.md) that a string can set.
const CONSUMER_ONLY: [&str; 15] = [
    "session.",
    "max.poll",
    "auto.",
    "heartbeat.",
    "group.",
    "partition.assignment",
    "fetch.",
    "max.partition.fetch.bytes",
    "isolation.",
    "enable.auto",
    "enable.partition.eof",
    "queued.",
    "coordinator.",
    "check.crcs",
    "consume.callback.",
];

/// The settings of `[kafka.client]` but the other side's own (`PRODUCER_ONLY` for a consumer,
/// `CONSUMER_ONLY` for a producer).
fn settings_except<'a>(
    config: &'a KafkaConfig,
    others: &'a [&str],
) -> impl Iterator<Item = (&'a String, &'a String)> {
    config
        .client
        .iter()
        .filter(|(k, _)| !others.iter().any(|p| k.starts_with(p)))
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
    for (k, v) in settings_except(config, &PRODUCER_ONLY) {
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

/// Whether librdkafka makes the processor's consumer and producer of these settings: the
/// checks it runs only as a client is made (a SASL mechanism without a provider in this build,
/// GSSAPI; an SSL certificate file that is not there) on top of each property's own. No broker
/// is named, so nothing is contacted; the clients are dropped at once.
pub(crate) fn check_client_properties(config: &KafkaConfig) -> Result<(), String> {
    let mut consumer = consumer_config(config);
    let mut producer = producer_config(config);
    for brokers in ["bootstrap.servers", "metadata.broker.list"] {
        consumer.remove(brokers);
        producer.remove(brokers);
    }
    let made = consumer
        .create_with_context::<_, rdkafka::consumer::BaseConsumer<Quiet>>(Quiet)
        .map(drop)
        .and_then(|()| {
            producer
                .create_with_context::<_, BaseProducer<Quiet>>(Quiet)
                .map(drop)
        });
    made.map_err(|e| match e {
        KafkaError::ClientCreation(why) => why,
        other => other.to_string(),
    })
}

/// A client context that says nothing: the clients of [`check_client_properties`] would log
/// that they have no brokers.
struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: KafkaError, _: &str) {}
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

impl ProducerContext for Quiet {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
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
    for (k, v) in settings_except(config, &CONSUMER_ONLY) {
        c.set(k, v);
    }
    c.set("enable.idempotence", "true").set("acks", "all");
    c
}

/// The processor's producer, for escalations and dead letters: a record's delivery report goes
/// to whoever awaits it, or, with `T` (what the report is about), into a [`ReportQueue`]. Not
/// rdkafka's `FutureProducer`, whose channel, boxed future and wake-up for every record were 6%
/// of a drain's processor CPU: a batch's escalations share one queue of reports instead.
///
/// Its reports are served by a thread of its own, as rdkafka's `ThreadedProducer` does, but in
/// windows of [`POLL_WINDOW`], not 100 ms: `BaseProducer::poll` hands librdkafka the time left
/// in whole milliseconds, so each window ends in a spin through its last millisecond (librdkafka
/// told to wait 0 ms until the deadline has passed). At 100 ms that kept an idle processor's
/// polling thread at 0.9% of a core (`perf stat`: 90 ms of CPU in 10 s, 6,414 polls where 100
/// would do). A report is handed on as soon as it comes, whatever the window.
pub(crate) struct Producer<T: Send + Sync + 'static> {
    base: Arc<BaseProducer<Reports<T>>>,
    /// Records its queue holds at most (`queue.buffering.max.messages`).
    capacity: usize,
    /// Shared by the clones: the last one dropped stops the polling thread, within a window.
    _polling: Arc<Polling>,
}

/// A record whose report goes where its [`Delivery`] says.
pub(crate) type Record<'a, K, P, T> = BaseRecord<'a, K, P, Box<Delivery<T>>>;

/// Whether librdkafka took a record; if not, why, and the record back (rdkafka's own shape).
pub(crate) type Sent<'a, K, P, T> = Result<(), (KafkaError, Record<'a, K, P, T>)>;

/// How long the polling thread waits for reports before it looks whether to stop.
const POLL_WINDOW: Duration = Duration::from_secs(1);

/// Tells the polling thread to stop when dropped.
struct Polling(Arc<AtomicBool>);

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<T: Send + Sync + 'static> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Producer {
            base: Arc::clone(&self.base),
            capacity: self.capacity,
            _polling: Arc::clone(&self._polling),
        }
    }
}

impl<T: Send + Sync + 'static> Producer<T> {
    fn new(base: BaseProducer<Reports<T>>, capacity: usize) -> KafkaResult<Producer<T>> {
        let base = Arc::new(base);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (Arc::clone(&base), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("producer reports".to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(POLL_WINDOW);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("cannot start its thread: {e}")))?;
        Ok(Producer {
            base,
            capacity,
            _polling: Arc::new(Polling(stop)),
        })
    }

    /// Hands `record` to librdkafka; its report goes where its opaque says ([`Delivery`]).
    #[allow(clippy::result_large_err)] // rdkafka's shape: a refused record comes back as it was
    pub(crate) fn send<'a, K, P>(&self, record: Record<'a, K, P, T>) -> Sent<'a, K, P, T>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        self.base.send(record)
    }

    /// Records its queue holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records its queue has room for now (librdkafka's count includes those sent and not yet
    /// reported).
    pub(crate) fn room(&self) -> usize {
        let queued = rdkafka::producer::Producer::in_flight_count(&*self.base);
        self.capacity
            .saturating_sub(usize::try_from(queued).unwrap_or(0))
    }

    /// Waits up to `timeout` for every record handed over to be delivered (or to fail).
    pub(crate) fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        rdkafka::producer::Producer::flush(&*self.base, timeout)
    }
}

/// Where a record's delivery report goes.
pub(crate) enum Delivery<T> {
    Awaited(oneshot::Sender<KafkaResult<()>>),
    Queued(Arc<ReportQueue<T>>, T),
}

/// Delivery reports, with what each is about, as the producer's polling thread puts them.
pub(crate) struct ReportQueue<T> {
    reports: Mutex<Vec<(T, KafkaResult<()>)>>,
    /// Told when `reports` stops being empty (a permit is kept if nobody waits).
    arrived: Notify,
}

impl<T> Default for ReportQueue<T> {
    fn default() -> Self {
        ReportQueue {
            reports: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        }
    }
}

impl<T> ReportQueue<T> {
    fn put(&self, about: T, report: KafkaResult<()>) {
        let mut reports = self.reports.lock().expect("never held across a panic");
        reports.push((about, report));
        if reports.len() == 1 {
            self.arrived.notify_one();
        }
    }

    /// The reports put since the last call, at least one, into `into` (emptied first): pending
    /// until one is. The queue keeps `into`'s buffer in exchange, so neither grows again from
    /// nothing: a drain's reports come in the thousands a batch, and a buffer grown afresh
    /// faulted in new pages every time (~2% of a drain's processor CPU, `perf record`).
    ///
    /// # Cancel safety
    /// Cancel safe: a report not returned stays in the queue.
    pub(crate) async fn next_into(&self, into: &mut Vec<(T, KafkaResult<()>)>) {
        while !self.take_into(into) {
            self.arrived.notified().await;
        }
    }

    /// [`Self::next_into`] without waiting: whether any report was put since the last call.
    pub(crate) fn take_into(&self, into: &mut Vec<(T, KafkaResult<()>)>) -> bool {
        into.clear();
        let mut reports = self.reports.lock().expect("never held across a panic");
        if reports.is_empty() {
            return false;
        }
        std::mem::swap(&mut *reports, into);
        true
    }
}

/// The producer's context: hands each delivery report on as its record's [`Delivery`] says.
pub(crate) struct Reports<T>(PhantomData<fn(T)>);

impl<T> ClientContext for Reports<T> {}

impl<T: Send + Sync + 'static> ProducerContext for Reports<T> {
    type DeliveryOpaque = Box<Delivery<T>>;

    fn delivery(&self, report: &DeliveryResult<'_>, to: Box<Delivery<T>>) {
        let report = report.as_ref().map(|_| ()).map_err(|(e, _)| e.clone());
        match *to {
            Delivery::Awaited(tx) => {
                let _ = tx.send(report);
            }
            Delivery::Queued(queue, about) => queue.put(about, report),
        }
    }
}

pub(crate) fn producer<T: Send + Sync + 'static>(config: &KafkaConfig) -> KafkaResult<Producer<T>> {
    let c = producer_config(config);
    let capacity =
        (c.get(QUEUE_CAPACITY).and_then(|n| n.parse().ok())).unwrap_or(QUEUE_CAPACITY_DEFAULT);
    Producer::new(c.create_with_context(Reports(PhantomData))?, capacity)
}

/// The producer's queue: records it holds at most, librdkafka's default unless
/// `[kafka.client]` sets it.
const QUEUE_CAPACITY: &str = "queue.buffering.max.messages";
const QUEUE_CAPACITY_DEFAULT: usize = 100_000;

/// Sends the record `record` makes and waits for its delivery report. While librdkafka's queue
/// is full it tries again every 100 ms, for up to `queue_timeout` (as rdkafka's
/// `FutureProducer::send`).
pub(crate) async fn send_awaited<'a, T, K, P>(
    producer: &Producer<T>,
    record: impl FnOnce(Box<Delivery<T>>) -> BaseRecord<'a, K, P, Box<Delivery<T>>>,
    queue_timeout: Duration,
) -> KafkaResult<()>
where
    T: Send + Sync + 'static,
    K: ToBytes + ?Sized + 'a,
    P: ToBytes + ?Sized + 'a,
{
    let (tx, rx) = oneshot::channel();
    let mut record = record(Box::new(Delivery::Awaited(tx)));
    let deadline = tokio::time::Instant::now() + queue_timeout;
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if tokio::time::Instant::now() < deadline =>
            {
                record = back;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
    rx.await.unwrap_or(Err(KafkaError::Canceled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use rdkafka::consumer::Consumer;
    use rdkafka::producer::Producer as _;

    /// librdkafka's warnings as a client was created.
    #[derive(Default)]
    struct Warnings(Mutex<Vec<String>>);

    impl ClientContext for Warnings {
        fn log(&self, _: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
            if fac == "CONFWARN" {
                self.0.lock().unwrap().push(message.to_owned());
            }
        }
    }
    impl ProducerContext for Warnings {
        type DeliveryOpaque = ();
        fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
    }
    impl rdkafka::consumer::ConsumerContext for Warnings {}

    /// The warnings of a property set on the wrong side ("… is a consumer property and will be
    /// ignored by this producer instance"), from librdkafka itself, as each client is created
    /// (rdkafka queues librdkafka's log: a poll hands it over).
    fn ignored(mut c: ClientConfig, producer: bool) -> Vec<String> {
        let poll = Duration::from_millis(100);
        c.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        let warnings = if producer {
            let p: rdkafka::producer::BaseProducer<Warnings> =
                c.create_with_context(Warnings::default()).unwrap();
            p.poll(poll);
            let taken = std::mem::take(&mut *p.context().0.lock().unwrap());
            taken
        } else {
            let r: rdkafka::consumer::BaseConsumer<Warnings> =
                c.create_with_context(Warnings::default()).unwrap();
            let _ = r.poll(poll);
            let taken = std::mem::take(&mut *r.context().0.lock().unwrap());
            taken
        };
        warnings
            .into_iter()
            .filter(|w| w.contains("will be ignored"))
            .collect()
    }

    #[test]
    fn no_client_is_handed_a_property_of_the_other_side() {
        // librdkafka 2.12's consumer (C) and producer (P) properties that a string sets and
        // that are not deprecated (CONFIGURATION.md), each with a valid value.
        let consumer_only = [
            ("group.instance.id", "fraud-sla-1"),
            ("partition.assignment.strategy", "range"),
            ("session.timeout.ms", "45000"),
            ("heartbeat.interval.ms", "3000"),
            ("group.protocol.type", "consumer"),
            ("coordinator.query.interval.ms", "600000"),
            ("max.poll.interval.ms", "300000"),
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "5000"),
            ("enable.auto.offset.store", "true"),
            ("queued.min.messages", "100000"),
            ("queued.max.messages.kbytes", "8192"),
            ("fetch.wait.max.ms", "100"),
            ("fetch.queue.backoff.ms", "10"),
            ("fetch.message.max.bytes", "1048576"),
            ("max.partition.fetch.bytes", "1048576"),
            ("fetch.max.bytes", "52428800"),
            ("fetch.min.bytes", "1"),
            ("fetch.error.backoff.ms", "500"),
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "false"),
            ("check.crcs", "true"),
            ("consume.callback.max.messages", "0"),
            ("auto.offset.reset", "earliest"),
        ];
        let producer_only = [
            ("transaction.timeout.ms", "60000"),
            ("enable.gapless.guarantee", "false"),
            ("queue.buffering.max.messages", "100000"),
            ("queue.buffering.max.kbytes", "1048576"),
            ("linger.ms", "5"),
            ("message.send.max.retries", "3"),
            ("queue.buffering.backpressure.threshold", "1"),
            ("compression.type", "lz4"),
            ("compression.level", "-1"),
            ("batch.num.messages", "10000"),
            ("batch.size", "1000000"),
            ("delivery.report.only.error", "false"),
            ("sticky.partitioning.linger.ms", "10"),
            ("request.timeout.ms", "30000"),
            ("message.timeout.ms", "300000"),
            ("partitioner", "consistent_random"),
        ];
        let config = KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            client: consumer_only
                .iter()
                .chain(&producer_only)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..KafkaConfig::default()
        };
        // The check sees such a warning when there is one.
        let mut unfiltered = ClientConfig::new();
        unfiltered
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("queued.min.messages", "1000");
        assert_eq!(ignored(unfiltered, true).len(), 1);

        assert_eq!(
            ignored(producer_config(&config), true),
            Vec::<String>::new()
        );
        assert_eq!(
            ignored(consumer_config(&config), false),
            Vec::<String>::new()
        );
        assert_eq!(ignored(reader_config(&config), false), Vec::<String>::new());
    }

    #[test]
    fn each_client_gets_the_user_settings_that_apply_to_it() {
        let config = KafkaConfig {
            client: [
                ("compression.type", "lz4"),
                ("linger.ms", "20"),
                ("security.protocol", "SASL_SSL"),
                ("fetch.wait.max.ms", "50"),
                ("session.timeout.ms", "30000"),
                ("group.instance.id", "fraud-sla-1"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
            ..KafkaConfig::default()
        };
        let (reader, consumer, producer) = (
            reader_config(&config),
            consumer_config(&config),
            producer_config(&config),
        );
        for c in [&reader, &consumer, &producer] {
            assert_eq!(
                c.get("security.protocol"),
                Some("SASL_SSL"),
                "shared by all"
            );
        }
        for c in [&reader, &consumer] {
            assert_eq!(c.get("compression.type"), None, "a producer's own");
            assert_eq!(
                c.get("fetch.wait.max.ms"),
                Some("50"),
                "the user's over the default"
            );
        }
        assert_eq!(
            reader.get("group.instance.id"),
            None,
            "a reader never joins the group"
        );
        assert_eq!(consumer.get("group.instance.id"), Some("fraud-sla-1"));
        assert_eq!(consumer.get("session.timeout.ms"), Some("30000"));
        assert_eq!(producer.get("compression.type"), Some("lz4"));
        assert_eq!(producer.get("linger.ms"), Some("20"));
        assert_eq!(producer.get("fetch.wait.max.ms"), None, "a consumer's own");
        assert_eq!(
            producer.get("acks"),
            Some("all"),
            "what correctness needs wins"
        );
    }

    /// Waits until this process has `n` threads serving a [`Producer`]'s reports (a thread
    /// names itself once it runs; `comm` keeps 15 bytes of the name), for up to 3 windows.
    async fn report_threads(n: usize) {
        let comm = |task: std::fs::DirEntry| std::fs::read_to_string(task.path().join("comm"));
        let count = || {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|task| comm(task.ok()?).ok())
                .filter(|name| name.trim_end() == "producer report")
                .count()
        };
        let until = std::time::Instant::now() + 3 * POLL_WINDOW;
        while count() != n {
            assert!(
                std::time::Instant::now() < until,
                "{} threads, not {n}",
                count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_producers_thread_hands_on_its_reports_and_stops_with_its_last_clone() {
        let config = KafkaConfig {
            brokers: "127.0.0.1:1".to_owned(), // nobody listens
            client: [("message.timeout.ms".to_owned(), "300".to_owned())].into(),
            ..KafkaConfig::default()
        };
        let producer = producer::<()>(&config).unwrap();
        let clone = producer.clone();
        report_threads(1).await;
        let record = |to| {
            Record::<str, str, ()>::with_opaque_to("escalations", to)
                .key("GA-1")
                .payload("{}")
        };
        let timed_out = |sent: KafkaResult<()>| {
            matches!(
                sent,
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut
                ))
            )
        };
        let sent = send_awaited(&clone, record, Duration::from_secs(1)).await;
        assert!(timed_out(sent), "the report of a record no broker took");
        drop(producer);
        let sent = send_awaited(&clone, record, Duration::from_secs(1)).await;
        assert!(timed_out(sent), "a clone still has its reports served");
        let took = std::time::Instant::now();
        drop(clone);
        report_threads(0).await;
        assert!(
            took.elapsed() <= POLL_WINDOW + Duration::from_millis(500),
            "stopped within a window"
        );
    }

    fn seen(reports: Vec<(u32, KafkaResult<()>)>) -> Vec<(u32, bool)> {
        reports.into_iter().map(|(n, r)| (n, r.is_ok())).collect()
    }

    async fn next(queue: &ReportQueue<u32>) -> Vec<(u32, KafkaResult<()>)> {
        let mut into = Vec::new();
        queue.next_into(&mut into).await;
        into
    }

    #[tokio::test]
    async fn a_report_queue_keeps_what_came_while_nobody_waited_and_wakes_a_waiter() {
        let queue = Arc::new(ReportQueue::<u32>::default());
        assert!(next(&queue).now_or_never().is_none(), "nothing yet");
        queue.put(1, Ok(()));
        queue.put(2, Err(KafkaError::Canceled));
        let mut taken = Vec::with_capacity(64);
        taken.push((9, Ok(())));
        queue.next_into(&mut taken).await;
        assert_eq!(
            seen(taken),
            [(1, true), (2, false)],
            "what was there is gone"
        );
        assert!(
            queue.reports.lock().unwrap().capacity() >= 64,
            "the queue keeps the buffer it was given"
        );
        assert!(next(&queue).now_or_never().is_none(), "taken");

        // From the producer's polling thread, while the partition waits.
        let waiting = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { next(&queue).await }
        });
        tokio::task::yield_now().await;
        let put = std::thread::spawn({
            let queue = Arc::clone(&queue);
            move || queue.put(3, Ok(()))
        });
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter is woken")
            .unwrap();
        put.join().unwrap();
        assert_eq!(seen(got), [(3, true)]);
    }
}
