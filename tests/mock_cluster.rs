//! Fault injection with librdkafka's mock cluster (not a stand-in for the real broker, which the
//! other suites use): request errors on produce, commit and fetch, a broker down and up again,
//! and the group coordinator moving. The processor neither crashes nor loses an escalation. And
//! the one error it must stop for: `FENCED_INSTANCE_ID`, another consumer of the group joined
//! with its `group.instance.id` (a broker that fences static members sends it; tansu does not).

mod common;
use common::*;
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(120);
/// Longer than `session.timeout.ms` (6 s) and than the FAST_SLA ladder (10 s after the alert).
const OUTAGE: Duration = Duration::from_secs(12);

/// The processor's config for `mock`'s brokers, with `client` added to `[kafka.client]`.
fn mock_config(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    topics: &Topics,
    dir: &tempfile::TempDir,
    redis: &Redis,
    port: u16,
    client: &str,
) -> std::path::PathBuf {
    let config = dir.path().join("mock.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"mock-group\"\nalerts_topic = \"{a}\"\n\
             dispositions_topic = \"{d}\"\nescalations_topic = \"{e}\"\ndeadletter_topic = \"{x}\"\n\
             [kafka.client]\n\"session.timeout.ms\" = \"6000\"\n\"max.poll.interval.ms\" = \"10000\"\n{client}\n\
             [redis]\nurl = \"{r}\"\nkey_prefix = \"m\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n{FAST_SLA}",
            brokers = mock.bootstrap_servers(),
            a = topics.alerts,
            d = topics.dispositions,
            e = topics.escalations,
            x = topics.deadletter,
            r = redis.url(),
        ),
    )
    .unwrap();
    config
}

fn mock_topics(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    name: &str,
) -> Topics {
    let topics = Topics::new(name, 2);
    for t in [
        &topics.alerts,
        &topics.dispositions,
        &topics.escalations,
        &topics.deadletter,
    ] {
        mock.create_topic(t, 2, 3).unwrap();
    }
    topics
}

#[tokio::test(flavor = "multi_thread")]
async fn request_errors_broker_loss_and_coordinator_moves_lose_nothing() {
    let mock = MockCluster::new(3).expect("librdkafka mock cluster");
    let topics = mock_topics(&mock, "mock");
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let port = free_port();
    let config = mock_config(&mock, &topics, &dir, &redis, port, "");
    let mut p = Processor::start(&config, port, &dir.path().join("mock.log"));
    p.wait_ready(WITHIN);

    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    let mut alerts = produce_silent(&producer, &topics.alerts, "MOCK", 6).await;

    // Request errors while the clocks run: every produce, commit and fetch meets retriable
    // errors first. The processor still gets its escalations out.
    use RDKafkaRespErr::*;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 4],
    );
    mock.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 3],
    );
    mock.request_errors(
        RDKafkaApiKey::Fetch,
        &[RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 3],
    );
    wait_until(WITHIN, "escalations despite request errors", || {
        p.metric("fraud_sla_escalations_total", &[]) > 0.0
    });

    // A second set of alerts whose clocks come due while one broker is gone (it may lead
    // partitions or coordinate the group: the session times out and the assignment is lost),
    // then the group's coordinator moves. The outage lasts longer than the session timeout and
    // than the whole ladder of the second set.
    alerts.extend(produce_silent(&producer, &topics.alerts, "MOCKB", 6).await);
    mock.broker_down(2).unwrap();
    std::thread::sleep(OUTAGE);
    assert!(
        p.proc.child.try_wait().unwrap().is_none(),
        "up during the outage"
    );
    mock.coordinator(MockCoordinator::Group("mock-group".into()), 3)
        .unwrap();
    mock.broker_up(2).unwrap();

    let want = breach_ids(&alerts, &["visit", "meet"]);
    let reader: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "mock-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    rdkafka::consumer::Consumer::subscribe(&reader, &[&topics.escalations]).unwrap();
    collect_all(&reader, WITHIN, &want, || p.log_text());
    assert!(p.proc.child.try_wait().unwrap().is_none(), "still running");
    assert_eq!(p.sigterm().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_fenced_as_a_static_member_stops_the_process_with_exit_1() {
    let mock = MockCluster::new(1).expect("librdkafka mock cluster");
    let topics = mock_topics(&mock, "fenced");
    let dir = tmpdir();
    let redis = Redis::start(dir.path());
    let port = free_port();
    let client = "\"group.instance.id\" = \"fenced-1\"\n\"heartbeat.interval.ms\" = \"300\"";
    let config = mock_config(&mock, &topics, &dir, &redis, port, client);
    let mut p = Processor::start(&config, port, &dir.path().join("fenced.log"));
    p.wait_ready(WITHIN);

    // The coordinator answers the next heartbeats as if another consumer had joined with this
    // one's instance id: librdkafka makes it a fatal error, and the processor must not go on.
    mock.request_errors(
        RDKafkaApiKey::Heartbeat,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID; 3],
    );
    let status = p.wait_exit(WITHIN);
    let log = p.log_text();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("FencedInstanceId")),
        "the log says why:\n{log}"
    );
}
