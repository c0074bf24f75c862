//! Wiring: connect, check the topology, start one worker per partition, serve HTTP, and shut
//! down on SIGTERM/SIGINT (finish the batch, flush escalations, commit, exit 0).

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::escalate::alertmanager::Alertmanager;
use crate::fatal::{Fatal, FatalSignal};
use crate::health::Health;
pub use crate::ingest::consumer::TopologyError;
use crate::ingest::consumer::{self, IngestConsumer, IngestContext};
use crate::ingest::partition_input::PartitionInput;
use crate::metrics::Metrics;
use crate::partition::{wall_clock, wall_clock_us, Partition, Shared};
use crate::reload::Reloader;
use crate::retry::{retry, Backoff, GaveUp};
use crate::store::{Owner, RedisConn, Store};

/// A reason the processor could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot split the queue of partition {0} from the consumer")]
    Split(i32),
    #[error("alertmanager client: {0}")]
    Alertmanager(reqwest::Error),
    #[error(transparent)]
    Fatal(#[from] Fatal),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Cancels `token` on SIGTERM or SIGINT. The handlers are installed before this returns, so a
/// signal that comes before the task first runs is a shutdown too, not the default death.
pub fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down."),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down."),
        }
        token.cancel();
    });
}

/// Connects to Redis, retrying with backoff until it answers or shutdown.
async fn connect_redis(
    config: &Config,
    health: &Health,
    cancel: &CancellationToken,
) -> Option<RedisConn> {
    retry(
        cancel,
        Backoff::CONNECT,
        || health.redis_call(RedisConn::connect(&config.redis.url, config.redis.cluster)),
        |_| true,
        |e, retry_in| tracing::warn!(error = %e, ?retry_in, "Redis unreachable; retrying."),
    )
    .await
    .ok()
}

/// Waits for the brokers and the input topics; refuses at once if they are not co-partitioned,
/// and after 30 s if a topic is still missing.
async fn wait_for_topology(
    c: &IngestConsumer,
    config: &Config,
    cancel: &CancellationToken,
) -> Result<Option<usize>, AppError> {
    let started = tokio::time::Instant::now();
    let found = retry(
        cancel,
        Backoff::CONNECT,
        || async { consumer::check_copartitioned(c, &config.kafka) },
        |e| match e {
            TopologyError::NotCoPartitioned { .. } => false,
            TopologyError::Missing(_) => started.elapsed() <= Duration::from_secs(30),
            TopologyError::Unreachable(_) => true,
        },
        |e, retry_in| tracing::warn!(error = %e, ?retry_in, "Waiting for the brokers and input topics."),
    )
    .await;
    match found {
        Ok(n) => Ok(Some(n)),
        Err(GaveUp::Cancelled) => Ok(None),
        Err(GaveUp::Final(e)) => Err(e.into()),
    }
}

/// The longest any one step of shutdown may wait for the broker.
const SHUTDOWN_STEP: Duration = Duration::from_secs(5);

/// The last commit of what the workers applied. If it fails or times out, the offsets applied in
/// Redis make the re-read after a restart harmless, and unacknowledged escalations stay in the
/// outbox.
async fn commit_final(consumer: &Arc<IngestConsumer>) {
    let committer = consumer.clone();
    let commit =
        tokio::task::spawn_blocking(move || committer.commit_consumer_state(CommitMode::Sync));
    match tokio::time::timeout(SHUTDOWN_STEP, commit).await {
        Ok(Ok(Ok(()))) => tracing::info!("Offsets committed."),
        Ok(Ok(Err(e))) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {
            tracing::info!("No new offsets to commit.")
        }
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "Final offset commit failed; the applied offsets in Redis make the re-read harmless."),
        _ => tracing::warn!("Final offset commit timed out; the applied offsets in Redis make the re-read harmless."),
    }
}

/// Runs the processor until `cancel`; `SIGHUP` reloads the policy from `config_path`.
pub async fn run(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    cancel: CancellationToken,
) -> Result<(), AppError> {
    let metrics = Arc::new(Metrics::new());
    metrics.prepare_inputs([&config.kafka.alerts_topic, &config.kafka.dispositions_topic]);
    let health = Arc::new(Health::default());
    let (reloader, policies) =
        Reloader::start(config_path, config.clone(), metrics.clone(), health.clone())?;
    let labels = reloader.labels.clone();
    let tokens = reloader.tokens.subscribe();
    reloader.spawn(cancel.clone());

    // HTTP first: /healthz answers while Redis or the brokers are still being reached.
    let query = Arc::new(std::sync::OnceLock::new());
    // The board's live events: connections are served from the start, fed once the sources
    // start below, and ended on shutdown (graceful shutdown waits for open responses).
    let events = crate::http::events::Hub::new(cancel.clone());
    let http_state = crate::http::HttpState {
        metrics: metrics.clone(),
        health: health.clone(),
        query: query.clone(),
        tokens,
        policies: policies.clone(),
        display: Arc::new(crate::http::Display {
            timezone: config.display.timezone.clone(),
            language: config.display.language.clone(),
            labels,
        }),
        events: events.clone(),
    };
    let mut servers = vec![(
        config.http.listen.clone(),
        crate::http::router(http_state.clone()),
    )];
    if let Some(addr) = &config.http.metrics_listen {
        servers.push((addr.clone(), crate::http::metrics_router(http_state)));
    }
    let mut http = JoinSet::new();
    for (addr, app) in servers {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })?;
        let stop = cancel.clone();
        http.spawn(crate::http::serve::serve(
            listener,
            app,
            stop,
            crate::http::serve::HEADER_READ_TIMEOUT,
        ));
    }

    // The producer first: its idempotent producer id takes librdkafka a timer tick or two, and
    // partitions taken back at start-up publish at once.
    let producer = crate::kafka::producer(&config.kafka)?;
    // The topics before Redis: input that is not co-partitioned is refused at once, whether
    // Redis answers yet or not.
    let ctx = IngestContext::new(&config.kafka, metrics.clone(), health.clone());
    let consumer: Arc<IngestConsumer> =
        Arc::new(crate::kafka::consumer_config(&config.kafka).create_with_context(ctx)?);
    let Some(partitions) = wait_for_topology(&consumer, &config, &cancel).await? else {
        return Ok(());
    };
    health.set_kafka(true);
    tracing::info!(partitions, alerts = %config.kafka.alerts_topic, dispositions = %config.kafka.dispositions_topic, "Input topics are co-partitioned.");
    let Some(conn) = connect_redis(&config, &health, &cancel).await else {
        return Ok(());
    };
    let instance = crate::kafka::instance_id(&config.kafka);
    if let Some(id) = &instance {
        tracing::info!(group_instance_id = %id, "Static group membership: the partitions last claimed with this instance id are taken back at once.");
    }
    let store = Store::new(conn, &config.redis.key_prefix)
        .owned_by(Owner::new(instance))
        .fit_to_server()
        .await;
    tracing::debug!(
        bytes = store.record_limit(),
        "Alert records up to this size are kept in bucket hashes."
    );

    let fatal = FatalSignal::default();
    let _ = query.set((store.clone(), partitions as i32));
    // The board's live events: escalations from their topic, changes from Redis.
    events.start(&mut http, store.clone(), partitions as i32, &config.kafka)?;

    let alertmanager = config
        .alertmanager
        .as_ref()
        .map(|c| {
            let readable = crate::watch::Readable::new(&config);
            Alertmanager::new(c, readable, metrics.clone())
        })
        .transpose()
        .map_err(AppError::Alertmanager)?;
    let shared = Shared {
        producer: producer.clone(),
        store,
        policies,
        limits: config.limits(),
        metrics,
        health,
        alerts_topic: config.kafka.alerts_topic.clone(),
        escalations_topic: config.kafka.escalations_topic.clone(),
        deadletter_topic: config.kafka.deadletter_topic.clone(),
        now: wall_clock,
        now_us: wall_clock_us,
        alertmanager,
        display_zone: config.display.zone(),
        fatal: fatal.clone(),
    };
    // Partition tasks (and their queues) exist before the subscription, so no message of an
    // assigned partition can reach the main queue.
    let workers_token = CancellationToken::new();
    let mut workers = JoinSet::new();
    for p in 0..partitions as i32 {
        let (tx, rx) = mpsc::unbounded_channel();
        consumer
            .context()
            .workers
            .write()
            .expect("worker map lock is never poisoned")
            .insert(p, tx);
        let input = PartitionInput::split(
            consumer.clone(),
            &config.kafka.alerts_topic,
            &config.kafka.dispositions_topic,
            p,
        )
        .ok_or(AppError::Split(p))?;
        let committed = input.committed().await;
        let task = Partition::new(
            p,
            input,
            committed,
            shared.clone(),
            rx,
            workers_token.child_token(),
        );
        workers.spawn(task.run());
    }
    consumer.subscribe(&[&config.kafka.alerts_topic, &config.kafka.dispositions_topic])?;

    // The main queue serves rebalances, errors and statistics; it must keep being polled.
    let mut probe = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = fatal.raised() => break,
            _ = probe.tick() => {
                let (c, h) = (consumer.clone(), shared.health.clone());
                // fetch_metadata blocks; keep it off the runtime's threads.
                tokio::task::spawn_blocking(move || h.set_kafka(c.fetch_metadata(None, Duration::from_secs(3)).is_ok()));
            }
            m = consumer.recv() => match m {
                Ok(m) => tracing::warn!(topic = m.topic(), partition = m.partition(), "Message on the main queue ignored (partition added after start-up?)."),
                // librdkafka's fatal errors (FENCED_INSTANCE_ID: another consumer joined the
                // group with this one's group.instance.id) leave the consumer unusable.
                Err(e) => match consumer.client().fatal_error() {
                    Some((code, reason)) => fatal.raise(Fatal::Kafka(format!("{reason} ({code:?})"))),
                    None => tracing::warn!(error = %e, "Kafka consumer error."),
                },
            },
        }
    }

    // Shutdown: workers finish their batch and flush, then offsets are committed.
    workers_token.cancel();
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = workers.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                tracing::warn!("Workers did not stop in time; aborting them.");
                workers.abort_all();
                break;
            }
        }
    }
    // A fatal stop: the partitions belong to another process, which commits for them.
    let fatal = fatal.reason();
    // librdkafka's commit, flush and close wait for the broker; each is bounded, so a broker
    // that is down cannot hold the process.
    if fatal.is_none() {
        commit_final(&consumer).await;
    }
    consumer.unsubscribe();
    let flush = tokio::task::spawn_blocking(move || producer.flush(SHUTDOWN_STEP));
    let _ = tokio::time::timeout(SHUTDOWN_STEP + Duration::from_secs(1), flush).await;
    drop(shared);
    let close = tokio::task::spawn_blocking(move || drop(consumer));
    if tokio::time::timeout(SHUTDOWN_STEP, close).await.is_err() {
        tracing::warn!(
            "The consumer did not leave its group in time; the broker will time the session out."
        );
    }
    cancel.cancel(); // the HTTP servers, on a fatal stop
    while http.join_next().await.is_some() {}
    if let Some(fatal) = fatal {
        return Err(fatal.into());
    }
    tracing::info!("Stopped.");
    Ok(())
}
