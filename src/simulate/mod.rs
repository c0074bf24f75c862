//! `fraud-sla simulate`: the load generator for the demo and for benchmarks. It produces
//! realistic alerts and dispositions — a share late, a share silent — to the input topics.
//!
//! [`Generator`] is pure (an RNG, the policy and `now` in; messages with send times out) and is
//! tested in `generator.rs`; [`run`] paces it in real time (`sender.rs`), or with `--burst` sends
//! as fast as the broker takes, and returns a [`Summary`].

mod generator;
mod sender;
mod summary;

pub use generator::{format_china, Fate, Generator, Message, Plan, Topic};
pub use summary::Summary;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::kafka::producer_config;
use sender::{burst, check_topics, progress_bar, real_time, Sender, DRAIN_TIMEOUT};

/// Options of `fraud-sla simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Alerts per second (real-time mode).
    #[arg(long, default_value_t = 5.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Total number of alerts; unlimited when omitted. Required by --burst.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Share (0..=1) of the alerts with dispositions whose visit (and sometimes meet) comes after
    /// its deadline.
    #[arg(long, default_value_t = 0.2, value_parser = parse_fraction)]
    pub late: f64,
    /// Share (0..=1) of alerts that get no disposition at all, so every stage breaches.
    #[arg(long, default_value_t = 0.1, value_parser = parse_fraction)]
    pub missing: f64,
    /// Seed of the random generator: the same seed gives the same load (ids still carry a
    /// random per-run suffix, so reruns never collide).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Send as fast as the broker takes, each alert followed at once by its dispositions, with
    /// `issued_at` backdated so that they are on time or late as chosen (throughput benchmarks).
    #[arg(long, requires = "count", conflicts_with_all = ["follow", "rate"])]
    pub burst: bool,
    /// After the last alert, keep running until every planned disposition has been sent.
    /// Without it the simulator stops after the last alert and reports what it did not send.
    #[arg(long)]
    pub follow: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for SimulateArgs {
    fn default() -> SimulateArgs {
        SimulateArgs {
            rate: 5.0,
            count: None,
            late: 0.2,
            missing: 0.1,
            seed: None,
            burst: false,
            follow: false,
            quiet: false,
        }
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{s} is not a fraction between 0 and 1"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if r.is_finite() && r > 0.0 {
        Ok(r)
    } else {
        Err(format!("{s} is not a positive number of alerts per second"))
    }
}

impl SimulateArgs {
    /// The checks clap makes on the command line, for callers that build the options in code.
    pub fn validate(&self) -> Result<(), SimulateError> {
        let invalid = |option, problem: String| SimulateError::InvalidOption { option, problem };
        for (option, value) in [("--late", self.late), ("--missing", self.missing)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(
                    option,
                    format!("{value} is not a fraction between 0 and 1"),
                ));
            }
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(invalid(
                "--rate",
                format!(
                    "{} is not a positive number of alerts per second",
                    self.rate
                ),
            ));
        }
        if self.count == Some(0) {
            return Err(invalid("--count", "must be at least 1".into()));
        }
        if self.burst && self.count.is_none() {
            return Err(invalid(
                "--burst",
                "needs --count (a burst must end)".into(),
            ));
        }
        Ok(())
    }
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("option {option}: {problem}")]
    InvalidOption {
        option: &'static str,
        problem: String,
    },
    #[error("cannot create the Kafka producer: {0}")]
    Producer(KafkaError),
    #[error("cannot reach the Kafka brokers at {brokers}: {error}")]
    Unreachable { brokers: String, error: KafkaError },
    #[error(
        "topic {0} does not exist; create it (co-partitioned with the other input topic) and start again"
    )]
    MissingTopic(String),
    #[error("no message was delivered ({failed} failed, last error: {last})")]
    NothingDelivered { failed: u64, last: String },
}

/// Produces alerts and dispositions until `--count` is reached (and, with `--follow`, every
/// planned disposition is sent) or `cancel`; flushes the producer and returns what it did.
pub async fn run(
    args: SimulateArgs,
    config: &Config,
    cancel: CancellationToken,
) -> anyhow::Result<Summary> {
    args.validate()?;
    let mut client = producer_config(&config.kafka);
    // A missing topic is an error to report, not one to create with the wrong partition count.
    client.set("allow.auto.create.topics", "false");
    if args.burst {
        client.set("linger.ms", "20");
    }
    let producer: FutureProducer = client.create().map_err(SimulateError::Producer)?;
    tokio::select! {
        _ = cancel.cancelled() => {
            return Ok(Summary { interrupted: true, ..Summary::default() });
        }
        checked = check_topics(producer.clone(), &config.kafka) => checked?,
    }

    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let mut generator = Generator::new(
        config.policy(),
        args.late,
        args.missing,
        rand::rng().random(),
    );
    let mut sender = Sender::new(producer, &config.kafka);
    let progress = progress_bar(&args);
    let started = std::time::Instant::now();
    let ended = match args.count {
        Some(count) if args.burst => {
            burst(
                &mut generator,
                &mut rng,
                &mut sender,
                count,
                &progress,
                &cancel,
            )
            .await
        }
        _ => {
            real_time(
                &mut generator,
                &mut rng,
                &mut sender,
                &args,
                &progress,
                &cancel,
            )
            .await
        }
    };
    progress.set_message(format!("{}, waiting for deliveries", sender.status()));
    sender.finish(DRAIN_TIMEOUT).await;
    progress.finish_and_clear();

    let mut summary = std::mem::take(&mut sender.summary);
    summary.unsent = ended.unsent;
    summary.interrupted = ended.interrupted;
    summary.elapsed = started.elapsed();
    if summary.delivered == 0 && summary.failed > 0 {
        return Err(SimulateError::NothingDelivered {
            failed: summary.failed,
            last: sender.last_error.unwrap_or_default(),
        }
        .into());
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, String> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn options_are_validated() {
        let d = parse(&[]).unwrap();
        assert_eq!((d.rate, d.late, d.missing, d.count), (5.0, 0.2, 0.1, None));
        d.validate().unwrap();
        let a = parse(&["--burst", "--count", "1000", "--seed", "3", "--quiet"]).unwrap();
        assert!(a.burst && a.quiet && a.seed == Some(3));
        a.validate().unwrap();
        for bad in [
            &["--late", "1.5"][..],
            &["--missing", "-0.1"],
            &["--late", "x"],
            &["--rate", "0"],
            &["--rate", "inf"],
            &["--count", "0"],
            &["--burst"],
            &["--burst", "--count", "5", "--follow"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse(&["--late", "1.5"]).unwrap_err();
        assert!(e.contains("--late") && e.contains("between 0 and 1"), "{e}");

        let e = SimulateArgs {
            missing: 2.0,
            ..SimulateArgs::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "option --missing: 2 is not a fraction between 0 and 1"
        );
        let e = SimulateArgs {
            burst: true,
            ..SimulateArgs::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().starts_with("option --burst: needs --count"));
    }
}
