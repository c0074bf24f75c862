//! The `fraud-sla` command: parse the command line, load the config, start tracing, run.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use fraud_sla::config::Config;

/// glibc's allocator spent ~40% of the processor's time in `malloc`/`free` (consolidating
/// chunks) while draining a backlog: every batch builds and drops thousands of small strings.
/// jemalloc rather than mimalloc: mimalloc returned each batch's pages to the OS after 10 ms and
/// faulted them in (zeroed) again, ~20% of the processor's CPU, and changing that needs `unsafe`.
/// The C code's `malloc` is jemalloc's too (the crate's `unprefixed_malloc_on_supported_platforms`):
/// on glibc's, librdkafka's op for each fetched message grew its threads' heaps, and
/// `rd_kafka_op_new0` was 3.9% of a drain's samples (`perf record`); on jemalloc, 2.0%.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "fraud-sla",
    version,
    about = "SLA clocks for anti-fraud early-warning alerts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the processor.
    Run {
        /// TOML configuration; the built-in defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Validate the configuration and print the effective policy.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print escalations as they are published, one line each.
    Watch {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Start from the oldest escalation instead of new ones only.
        #[arg(long)]
        from_beginning: bool,
        /// Start each line with the record's Kafka timestamp, `CreateTime:<ms>` (when the
        /// processor handed it to its producer), as kafka-console-consumer's `print.timestamp`.
        #[arg(long)]
        print_timestamp: bool,
    },
    /// Compliance report and SLA audit of a window, replayed from the input topics (read-only).
    ///
    /// Exit status: 0; 3 with --audit when something was missed or published falsely; 1 when
    /// the brokers fail; 2 for bad arguments.
    Report {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: fraud_sla::report::ReportArgs,
    },
    /// Produce realistic alerts and dispositions (demo and benchmarks).
    Simulate {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: fraud_sla::simulate::SimulateArgs,
    },
}

/// Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.
const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FRAUD_SLA_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,librdkafka=warn,rdkafka=warn")
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs `job` on a fresh runtime with SIGTERM/SIGINT wired to its cancellation token.
fn on_runtime<F, Fut>(job: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    let code = rt.block_on(async {
        let cancel = CancellationToken::new();
        fraud_sla::app::cancel_on_signal(cancel.clone());
        job(cancel).await
    });
    // A librdkafka call still blocked on an unreachable broker must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

fn runtime_failure(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_RUNTIME)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = match &cli.command {
        Command::Run { config, .. }
        | Command::CheckConfig { config }
        | Command::Watch { config, .. }
        | Command::Simulate { config, .. }
        | Command::Report { config, .. } => config.clone(),
    };
    let config = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::CheckConfig { .. } => {
            print!("{}", fraud_sla::policy_report::render(&config));
            if let Err(e) = config.check_clients() {
                eprintln!("warning: on this machine `run` refuses to start: {e}");
            }
            ExitCode::SUCCESS
        }
        Command::Run { log_format, .. } => {
            if let Err(e) = config.check_clients() {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            init_tracing(log_format);
            on_runtime(|cancel| async move {
                match fraud_sla::app::run(config, path, cancel).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot run.");
                        runtime_failure(e)
                    }
                }
            })
        }
        Command::Watch {
            from_beginning,
            print_timestamp,
            ..
        } => {
            init_tracing(LogFormat::Text);
            let options = fraud_sla::watch::Options {
                from_beginning,
                print_timestamp,
            };
            on_runtime(|cancel| async move {
                match fraud_sla::watch::run(&config, options, cancel).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => runtime_failure(format!("{e:#}")),
                }
            })
        }
        Command::Report { args, .. } => match fraud_sla::report::run(&config, &args) {
            Ok(status) => ExitCode::from(status.exit_code()),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Simulate { args, .. } => {
            init_tracing(LogFormat::Text);
            on_runtime(|cancel| async move {
                match fraud_sla::simulate::run(args, &config, cancel).await {
                    Ok(summary) => {
                        println!("{summary}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => runtime_failure(format!("{e:#}")),
                }
            })
        }
    }
}
