//! Kafka security through `[kafka.client]`: SASL/SCRAM-SHA-512 against tansu with
//! `--authentication`, the password from `FRAUD_SLA_KAFKA_SASL_PASSWORD`. With the right
//! password the clocks fire as usual; with a wrong one the processor is never ready, and neither
//! password is ever logged.

mod common;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use std::time::Duration;

const WITHIN: Duration = Duration::from_secs(90);
const USER: &str = "fraud-sla";
const PASSWORD: &str = "sasl-Secret-7f3a";

/// librdkafka settings for SCRAM-SHA-512 over plaintext (loopback; SASL_SSL adds `ssl.*`).
fn sasl(c: &mut rdkafka::ClientConfig, password: &str) {
    c.set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-512")
        .set("sasl.username", USER)
        .set("sasl.password", password);
}

/// The harness config with the SASL settings in `[kafka.client]`, but not the password.
fn config_with_sasl(env: &Env, port: u16) -> std::path::PathBuf {
    env.config_with_client(
        port,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", USER),
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_credentials_pass_through_kafka_client_and_a_wrong_password_is_never_ready() {
    // Users live in the broker's storage: create one, then restart with authentication on.
    let mut env = Env::durable("sasl", 2, FAST_SLA);
    env.broker
        .admin(&["user", "create", USER, PASSWORD, "--mechanism", "scram512"]);
    env.broker.restart_with(vec!["--authentication".into()]);

    // Unauthenticated clients are refused: the broker really checks.
    let anonymous: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", env.broker.bootstrap())
        .create()
        .unwrap();
    assert!(
        anonymous
            .fetch_metadata(Some(&env.topics.alerts), Duration::from_secs(3))
            .is_err(),
        "the broker must refuse a client without credentials"
    );

    let port = free_port();
    let config = config_with_sasl(&env, port);
    let log = env.dir.path().join("sasl.log");
    let p = Processor::start_with_env(
        &config,
        port,
        &log,
        &[("FRAUD_SLA_KAFKA_SASL_PASSWORD", PASSWORD)],
    );
    p.wait_ready(WITHIN);

    let mut pc = rdkafka::ClientConfig::new();
    pc.set("bootstrap.servers", env.broker.bootstrap());
    sasl(&mut pc, PASSWORD);
    let producer: FutureProducer = pc.create().unwrap();
    let alerts = produce_silent(&producer, &env.topics.alerts, "SASL", 2).await;
    let mut rc = rdkafka::ClientConfig::new();
    rc.set("bootstrap.servers", env.broker.bootstrap())
        .set("group.id", "sasl-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    sasl(&mut rc, PASSWORD);
    let reader: BaseConsumer = rc.create().unwrap();
    reader.subscribe(&[&env.topics.escalations]).unwrap();
    let want = breach_ids(&alerts, &["visit"]);
    let seen = collect_all(&reader, WITHIN, &want, || p.log_text());

    // A second instance with a wrong password never gets in.
    let wrong_port = free_port();
    let wrong_config = config_with_sasl(&env, wrong_port);
    let wrong_log = env.dir.path().join("sasl-wrong.log");
    let mut wrong = Processor::start_with_env(
        &wrong_config,
        wrong_port,
        &wrong_log,
        &[("FRAUD_SLA_KAFKA_SASL_PASSWORD", "not-the-password-9c1e")],
    );
    // tansu drops the connection of a failed SCRAM exchange, which librdkafka reports as a
    // transport failure: the instance keeps waiting for the brokers, alive and never ready.
    wait_until(
        WITHIN,
        "the instance reports it cannot reach the brokers",
        || wrong.log_text().contains("Waiting for the brokers"),
    );
    for _ in 0..10 {
        assert!(
            wrong.proc.child.try_wait().unwrap().is_none(),
            "still waiting"
        );
        assert_eq!(
            wrong.get("/readyz").map(|(c, _)| c),
            Some(503),
            "never ready"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(wrong.metric("fraud_sla_partitions_owned", &[]), 0.0);
    for log in [p.log_text(), wrong.log_text()] {
        assert!(!log.contains(PASSWORD), "the password was logged");
        assert!(
            !log.contains("not-the-password-9c1e"),
            "the password was logged"
        );
    }
    assert_no_personal_data(&env, &[p.log_text()], &seen);
}
