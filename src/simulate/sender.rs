//! Sending a [`Generator`]'s plans: the producer with its deliveries in flight, the real-time
//! schedule (alerts at `--rate`, each disposition when due) and the burst, the progress bar, and
//! the check that the input topics exist.

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::{DeliveryFuture, OwnedDeliveryResult};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::generator::{Generator, Message, Topic};
use super::{SimulateArgs, SimulateError, Summary};
use crate::config::KafkaConfig;
use crate::domain::Millis;

/// Most deliveries awaited at once; beyond it, sending waits for acknowledgements.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long shutdown waits for outstanding deliveries.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The producer, the deliveries in flight, and the counts for the summary.
pub(super) struct Sender {
    producer: FutureProducer,
    alerts_topic: String,
    dispositions_topic: String,
    in_flight: FuturesUnordered<DeliveryFuture>,
    pub(super) summary: Summary,
    pub(super) last_error: Option<String>,
    /// The last alert sent, and its record's timestamp.
    last_alert: Option<(String, Millis)>,
}

impl Sender {
    pub(super) fn new(producer: FutureProducer, config: &KafkaConfig) -> Sender {
        Sender {
            producer,
            alerts_topic: config.alerts_topic.clone(),
            dispositions_topic: config.dispositions_topic.clone(),
            in_flight: FuturesUnordered::new(),
            summary: Summary::default(),
            last_error: None,
            last_alert: None,
        }
    }

    fn has_room(&self) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// Hands `m` to librdkafka without waiting for its delivery. `false` when librdkafka's queue
    /// is full: try again after a delivery.
    fn try_send(&mut self, m: &Message) -> bool {
        let stamp = stamp(&mut self.last_alert, m, wall_now());
        let topic = match m.topic {
            Topic::Alerts => self.alerts_topic.as_str(),
            Topic::Dispositions => self.dispositions_topic.as_str(),
        };
        let record = FutureRecord::to(topic)
            .key(m.key.as_str())
            .payload(m.payload.as_str())
            .timestamp(stamp);
        match self.producer.send_result(record) {
            Ok(delivery) => self.in_flight.push(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => return false,
            Err((e, _)) => {
                self.summary.failed += 1;
                self.last_error = Some(e.to_string());
            }
        }
        let s = &mut self.summary;
        match m.topic {
            Topic::Alerts => s.alerts += 1,
            Topic::Dispositions => {
                s.dispositions += 1;
                s.duplicates += u64::from(m.duplicate);
                s.before_alert += u64::from(m.before_alert);
            }
        }
        true
    }

    /// Sends `m`, waiting for room first. `false` if cancelled before it could be sent.
    async fn send(&mut self, m: &Message, cancel: &CancellationToken) -> bool {
        loop {
            if self.has_room() && self.try_send(m) {
                return true;
            }
            tokio::select! {
                _ = cancel.cancelled() => return false,
                Some(r) = self.in_flight.next(), if !self.in_flight.is_empty() => self.record(r),
                _ = tokio::time::sleep(Duration::from_millis(5)), if self.in_flight.is_empty() => {}
            }
        }
    }

    fn record<E>(&mut self, result: Result<OwnedDeliveryResult, E>) {
        match result {
            Ok(Ok(_)) => self.summary.delivered += 1,
            Ok(Err((e, _))) => {
                self.summary.failed += 1;
                self.last_error = Some(e.to_string());
            }
            Err(_) => {
                self.summary.failed += 1;
                self.last_error = Some("delivery cancelled".into());
            }
        }
    }

    /// Records the deliveries that have already settled, without waiting.
    fn settle_ready(&mut self) {
        while let Some(Some(r)) = self.in_flight.next().now_or_never() {
            self.record(r);
        }
    }

    /// Waits (up to `timeout`) for every delivery in flight, then flushes the producer. What is
    /// still unconfirmed then counts as failed.
    pub(super) async fn finish(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.in_flight.is_empty() {
            tokio::select! {
                Some(r) = self.in_flight.next() => self.record(r),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(1))).await;
        self.settle_ready();
        if !self.in_flight.is_empty() {
            self.summary.failed += self.in_flight.len() as u64;
            self.last_error = Some("delivery not confirmed before shutdown".into());
            self.in_flight = FuturesUnordered::new();
        }
    }

    pub(super) fn status(&self) -> String {
        let s = &self.summary;
        format!(
            "{} dispositions, {} delivered, {} failed",
            s.dispositions, s.delivered, s.failed
        )
    }
}

/// A message waiting for its send time; the heap pops the earliest first.
struct Scheduled {
    send_at: Millis,
    seq: u64,
    message: Message,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.send_at, self.seq) == (other.send_at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.send_at, self.seq).cmp(&(other.send_at, other.seq))
    }
}

/// A record's timestamp: `now`, and for a disposition sent right after its alert (as `--burst`
/// sends an alert's plan), at least a millisecond after the alert's, so that it is read as sent
/// after it (one in the alert's millisecond is taken as sent before:
/// src/ingest/partition_input.rs, `take`). In real time an alert's dispositions come later.
fn stamp(last_alert: &mut Option<(String, Millis)>, m: &Message, now: Millis) -> Millis {
    match (m.topic, &*last_alert) {
        (Topic::Alerts, _) => {
            *last_alert = Some((m.key.clone(), now));
            now
        }
        (Topic::Dispositions, Some((key, at))) if *key == m.key && !m.before_alert => {
            now.max(at + 1)
        }
        (Topic::Dispositions, _) => now,
    }
}

fn wall_now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// The monotonic instant at which the wall clock reads `at`.
fn instant_at(at: Millis) -> Instant {
    Instant::now() + Duration::from_millis((at - wall_now()).max(0) as u64)
}

/// How a sending loop ended.
pub(super) struct Ended {
    pub(super) unsent: u64,
    pub(super) interrupted: bool,
}

/// Real time: one alert every `1/rate` s, each disposition when it is due.
pub(super) async fn real_time(
    generator: &mut Generator,
    rng: &mut StdRng,
    sender: &mut Sender,
    args: &SimulateArgs,
    progress: &ProgressBar,
    cancel: &CancellationToken,
) -> Ended {
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut heap: BinaryHeap<Reverse<Scheduled>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut produced = 0u64;
    // Alerts still in the heap (held back behind their first disposition): always sent.
    let mut held_alerts = 0usize;
    let mut next_alert = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let ended = |heap: &BinaryHeap<_>, interrupted| Ended {
        unsent: heap.len() as u64,
        interrupted,
    };
    loop {
        if cancel.is_cancelled() {
            return ended(&heap, true);
        }
        // Everything due, as long as librdkafka takes it.
        let now = wall_now();
        let mut queue_full = false;
        while sender.has_room() {
            match heap.peek() {
                Some(Reverse(s)) if s.send_at <= now => {
                    let Reverse(s) = heap.pop().expect("peeked");
                    if !sender.try_send(&s.message) {
                        heap.push(Reverse(s));
                        queue_full = true;
                        break;
                    }
                    if s.message.topic == Topic::Alerts {
                        held_alerts -= 1;
                    }
                }
                _ => break,
            }
        }
        let producing = args.count.is_none_or(|c| produced < c);
        if producing && !queue_full && sender.has_room() && Instant::now() >= next_alert {
            let plan = generator.next_plan(rng, wall_now());
            for message in plan.messages {
                seq += 1;
                if message.topic == Topic::Alerts {
                    held_alerts += 1;
                }
                heap.push(Reverse(Scheduled {
                    send_at: message.send_at,
                    seq,
                    message,
                }));
            }
            produced += 1;
            progress.inc(1);
            next_alert += interval;
            // After a stall, resume the rate rather than catch up in a burst.
            if next_alert + Duration::from_secs(1) < Instant::now() {
                next_alert = Instant::now();
            }
            continue;
        }
        if !producing && (heap.is_empty() || (!args.follow && held_alerts == 0)) {
            return ended(&heap, false);
        }
        let wake = [
            producing.then_some(next_alert),
            heap.peek().map(|Reverse(s)| instant_at(s.send_at)),
        ]
        .into_iter()
        .flatten()
        .min();
        let can_send = sender.has_room() && !queue_full;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return ended(&heap, true),
            Some(r) = sender.in_flight.next(), if !sender.in_flight.is_empty() => {
                sender.record(r);
                sender.settle_ready();
            }
            _ = sleep_until_opt(wake), if can_send => {}
            _ = tick.tick() => {
                progress.set_message(format!("{}, {} scheduled", sender.status(), heap.len()));
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Burst: every alert and its dispositions at once, as fast as the broker acknowledges.
pub(super) async fn burst(
    generator: &mut Generator,
    rng: &mut StdRng,
    sender: &mut Sender,
    count: u64,
    progress: &ProgressBar,
    cancel: &CancellationToken,
) -> Ended {
    for n in 0..count {
        if cancel.is_cancelled() {
            return Ended {
                unsent: 0,
                interrupted: true,
            };
        }
        let plan = generator.next_backdated(rng, wall_now());
        for (i, m) in plan.messages.iter().enumerate() {
            if !sender.send(m, cancel).await {
                return Ended {
                    unsent: (plan.messages.len() - i) as u64,
                    interrupted: true,
                };
            }
        }
        progress.inc(1);
        if n % 1024 == 0 {
            sender.settle_ready();
            progress.set_message(sender.status());
            // Let the signal handler and the progress bar run even when nothing waits.
            tokio::task::yield_now().await;
        }
    }
    Ended {
        unsent: 0,
        interrupted: false,
    }
}

pub(super) fn progress_bar(args: &SimulateArgs) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let (bar, template) = match args.count {
        Some(n) => (
            ProgressBar::new(n),
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} alerts ({rate}) · {msg}",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} [{elapsed_precise}] {pos} alerts ({rate}) · {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.1}/s", state.per_sec());
            },
        ));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Checks that both input topics exist, which also proves the brokers answer.
pub(super) async fn check_topics(
    producer: FutureProducer,
    config: &KafkaConfig,
) -> Result<(), SimulateError> {
    let topics = [
        config.alerts_topic.clone(),
        config.dispositions_topic.clone(),
    ];
    let brokers = config.brokers.clone();
    let check = tokio::task::spawn_blocking(move || {
        for topic in &topics {
            let metadata = producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|error| SimulateError::Unreachable {
                    brokers: brokers.clone(),
                    error,
                })?;
            let exists = metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
            if !exists {
                return Err(SimulateError::MissingTopic(topic.clone()));
            }
        }
        Ok(())
    });
    check.await.expect("the metadata check does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: Topic, key: &str, before_alert: bool) -> Message {
        Message {
            topic,
            key: key.into(),
            payload: String::new(),
            send_at: 0,
            duplicate: false,
            before_alert,
        }
    }

    #[test]
    fn a_disposition_sent_with_its_alert_is_stamped_after_it() {
        let mut last = None;
        let early = message(Topic::Dispositions, "A", true);
        assert_eq!(stamp(&mut last, &early, 100), 100, "before: as it comes");
        assert_eq!(
            stamp(&mut last, &message(Topic::Alerts, "A", false), 100),
            100
        );
        let after = message(Topic::Dispositions, "A", false);
        assert_eq!(stamp(&mut last, &after, 100), 101);
        assert_eq!(stamp(&mut last, &after, 105), 105, "never before now");
        let other = message(Topic::Dispositions, "B", false);
        assert_eq!(stamp(&mut last, &other, 100), 100, "another alert's");
    }
}
