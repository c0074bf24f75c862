//! `fraud-sla report`: the compliance report and SLA audit of docs/contract.md §10.5.
//!
//! It reads the alerts issued in a window and their dispositions from the input topics
//! ([`read`]: by timestamp, outside any group, never committing), replays each alert through the
//! processor's own SLA machine with the policy of `--config` ([`replay`]), counts the results
//! ([`aggregate`]) and, with `--audit`, compares what the rules make due with what the
//! escalations topic holds ([`audit`]). It never reads or writes Redis and never publishes.
//! Everything but [`read`] and [`run`] is pure.
//!
//! Exit status: 0; 3 with `--audit` when something was missed or published falsely; 1 when the
//! brokers fail or the output cannot be written; 2 for bad arguments.

pub mod aggregate;
pub mod audit;
pub mod model;
pub mod read;
pub mod render;
pub mod replay;

use indicatif::{ProgressBar, ProgressStyle};
use jiff::tz::TimeZone;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::domain::time::{format_utc, parse_rfc3339};
use crate::domain::Millis;
use aggregate::Aggregator;
use audit::Auditor;
use model::{Report, SkippedCount};
use read::{ReadError, Reader};
use render::Presentation;
pub use render::{Format, Lang};
use replay::{Collector, History, Timing, Window};

/// Options of `fraud-sla report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Start of the window, inclusive: RFC 3339 with an offset, or a date (YYYY-MM-DD) meaning
    /// midnight in `[display].timezone`.
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// End of the window, exclusive; as --from.
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Only alerts whose jurisdiction starts with this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub jurisdiction: Option<String>,
    /// Output format. Without it: the extension of --out (.html, .csv, .json), else json.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also compare what the rules make due with the escalations published; exit 3 when
    /// something was missed or should not have been published.
    #[arg(long)]
    pub audit: bool,
    /// Language of the HTML report; `[display].language` by default.
    #[arg(long, value_enum)]
    pub lang: Option<Lang>,
}

/// A report that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{option}: {problem}")]
    Usage {
        option: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Kafka(#[from] ReadError),
    #[error("cannot write the report to {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl ReportError {
    /// 2 for bad arguments, 1 for everything else (docs/contract.md §10.5).
    pub fn exit_code(&self) -> u8 {
        match self {
            ReportError::Usage { .. } => 2,
            ReportError::Kafka(_) | ReportError::Write { .. } => 1,
        }
    }
}

/// How a report ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Done,
    /// `--audit` found missed or false pages.
    Findings,
}

impl Status {
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Done => 0,
            Status::Findings => 3,
        }
    }
}

/// The arguments, checked: the window in UTC ms and where the output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    window: Window,
    format: Format,
    lang: Lang,
}

/// Checks the arguments against the configuration (the display zone places a bare date).
fn plan(args: &ReportArgs, config: &Config) -> Result<Plan, ReportError> {
    let zone = config.display.zone();
    let from = parse_time(&args.from, &zone).map_err(|problem| ReportError::Usage {
        option: "--from",
        problem,
    })?;
    let to = parse_time(&args.to, &zone).map_err(|problem| ReportError::Usage {
        option: "--to",
        problem,
    })?;
    if from > to {
        return Err(ReportError::Usage {
            option: "--from",
            problem: format!(
                "{} ({}) is after --to {} ({}): the window must not end before it starts",
                args.from,
                format_utc(from),
                args.to,
                format_utc(to)
            ),
        });
    }
    if args.jurisdiction.as_deref() == Some("") {
        return Err(ReportError::Usage {
            option: "--jurisdiction",
            problem: "is empty; leave it out to report every jurisdiction".into(),
        });
    }
    if let Some(out) = &args.out {
        check_out(out).map_err(|problem| ReportError::Usage {
            option: "--out",
            problem,
        })?;
    }
    let format = args
        .format
        .or_else(|| args.out.as_deref().and_then(Format::of_path))
        .unwrap_or(Format::Json);
    Ok(Plan {
        window: Window {
            from,
            to,
            jurisdiction: args.jurisdiction.clone(),
        },
        format,
        lang: args
            .lang
            .unwrap_or_else(|| Lang::from_config(&config.display.language)),
    })
}

/// A TIME argument: RFC 3339 with an offset, or `YYYY-MM-DD`, midnight in `zone`.
pub fn parse_time(s: &str, zone: &TimeZone) -> Result<Millis, String> {
    if let Some(ms) = parse_rfc3339(s) {
        return Ok(ms);
    }
    let is_date = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let tz = zone.iana_name().unwrap_or("the display time zone");
    let not_a_time = || {
        format!(
            "{s:?} is not a time: give RFC 3339 with an offset (2026-11-22T10:00:00+08:00) or a \
             date (2026-11-22, midnight in {tz})"
        )
    };
    if !is_date {
        return Err(not_a_time());
    }
    let date: jiff::civil::Date = s.parse().map_err(|_| not_a_time())?;
    date.to_zoned(zone.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| format!("{s:?}: midnight in {tz} does not exist ({e})"))
}

/// Makes the report `args` asks for and writes it; the status says whether the audit found
/// something.
pub fn run(config: &Config, args: &ReportArgs) -> Result<Status, ReportError> {
    let plan = plan(args, config)?;
    let now = chrono::Utc::now().timestamp_millis();
    let report = make(config, &plan.window, args.audit, now)?;
    let how = Presentation {
        lang: plan.lang,
        zone: config.display.zone(),
        labels: config.stage_labels().unwrap_or_default(),
        levels: crate::domain::Risk::ALL
            .iter()
            .map(|r| config.policy().for_risk(*r).levels())
            .max()
            .unwrap_or(0),
        generated_at: now,
    };
    let bytes = render::render(plan.format, &report, &how);
    match &args.out {
        Some(path) => write_file(path, &bytes)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .map_err(|source| ReportError::Write {
                    path: "standard output".into(),
                    source,
                })?;
        }
    }
    Ok(match &report.audit {
        Some(a) if a.has_findings() => Status::Findings,
        _ => Status::Done,
    })
}

/// Reads, replays and counts: the report as data.
///
/// Records are located by timestamp from `from − max_clock_skew` on: the processor accepts an
/// event time up to that much ahead of its clock, so an alert issued at `from` can sit in a
/// record stamped that much earlier. They are read to the high watermark: a disposition of the
/// window may be uploaded long after it.
pub fn make(
    config: &Config,
    window: &Window,
    audit: bool,
    now: Millis,
) -> Result<Report, ReportError> {
    let k = &config.kafka;
    let policies = config.policies();
    let policy = policies.current().clone();
    let stages = policy.stages();
    // What is not yet due is not yet late: a window reaching past now is judged as of now.
    let horizon = window.to.min(now);
    let since = window.from - config.sla.max_clock_skew.millis();

    let reader = Reader::connect(k)?;
    let alerts = reader.ranges(&k.alerts_topic, &reader.partitions(&k.alerts_topic)?, since)?;
    let dispositions = reader.ranges(
        &k.dispositions_topic,
        &reader.partitions(&k.dispositions_topic)?,
        since,
    )?;
    let escalations = if audit {
        let topic = &k.escalations_topic;
        match reader.partitions(topic) {
            Ok(partitions) => reader.ranges(topic, &partitions, since)?,
            // Nothing was ever published (the processor creates no topic): every page the
            // rules make due was missed, and none was false.
            Err(ReadError::MissingTopic { .. }) => {
                tracing::warn!(
                    topic,
                    "The escalations topic does not exist: audited as empty."
                );
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        Vec::new()
    };
    let total: u64 = alerts
        .iter()
        .chain(&dispositions)
        .chain(&escalations)
        .map(read::Range::len)
        .sum();
    let bar = progress_bar(total);

    // Two threads, as the machine has two cores: this one reads and validates partition
    // after partition; the other replays and counts what the last one gathered. A rendezvous
    // channel keeps memory at two partitions' windows.
    let mut collector = Collector::new(window.clone(), config.limits(), now);
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<History>>(0);
    let (counts, auditor) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let mut counts = Aggregator::new(stages.clone(), config.display.zone());
            let mut auditor = audit.then(|| Auditor::new(stages.clone(), horizon));
            for histories in receive {
                for history in histories {
                    if let Some(a) = auditor.as_mut() {
                        a.expect(&replay::replay(
                            history.clone(),
                            &policies,
                            Timing::Arrival,
                            horizon,
                        ));
                    }
                    let replayed = replay::replay(history, &policies, Timing::EventTime, horizon);
                    counts.add(&replayed, &policies);
                }
            }
            (counts, auditor)
        });
        let read = read_inputs(
            &reader,
            k,
            alerts,
            dispositions,
            &mut collector,
            &bar,
            &send,
        );
        drop(send);
        let done = worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.map(|()| done)
    })?;
    let mut auditor = auditor;
    if let Some(a) = auditor.as_mut() {
        bar.set_message(k.escalations_topic.clone());
        let mut progress = Progress::new(&bar);
        reader.read(&escalations, |r| {
            a.published(r.payload, r.timestamp);
            progress.inc();
        })?;
    }
    bar.finish_and_clear();

    let tables = counts.finish();
    Ok(Report {
        from: window.from,
        to: window.to,
        policy_version: policy.version().to_owned(),
        rows: tables.rows,
        outcomes: tables.outcomes,
        audit: auditor.map(Auditor::finish),
        as_of: horizon,
        jurisdiction_prefix: window.jurisdiction.clone(),
        alerts: tables.alerts,
        totals: tables.totals,
        days: tables.days,
        skipped: collector
            .skipped()
            .iter()
            .map(|((topic, reason), count)| SkippedCount {
                topic: topic.clone(),
                reason: reason.clone(),
                count: *count,
            })
            .collect(),
    })
}

/// Reads the input topics group by group (see [`read::groups`]), handing each group's
/// histories to the replay thread.
fn read_inputs(
    reader: &Reader,
    k: &crate::config::KafkaConfig,
    alerts: Vec<read::Range>,
    dispositions: Vec<read::Range>,
    collector: &mut Collector,
    bar: &ProgressBar,
    replay: &std::sync::mpsc::SyncSender<Vec<History>>,
) -> Result<(), ReportError> {
    let mut progress = Progress::new(bar);
    for (alerts, dispositions) in read::groups(alerts, dispositions) {
        bar.set_message(format!(
            "{} partition {}",
            k.alerts_topic,
            partition_of(&alerts)
        ));
        reader.read(&alerts, |r| {
            collector.alert(r);
            progress.inc();
        })?;
        bar.set_message(format!(
            "{} partition {}",
            k.dispositions_topic,
            partition_of(&dispositions)
        ));
        reader.read(&dispositions, |r| {
            collector.disposition(r);
            progress.inc();
        })?;
        if replay.send(collector.take_histories()).is_err() {
            break; // the replay thread ended early: its panic is what to report
        }
    }
    Ok(())
}

/// Counts records into the bar a batch at a time: a bar update reads the clock.
struct Progress<'a> {
    bar: &'a ProgressBar,
    pending: u64,
}

impl<'a> Progress<'a> {
    fn new(bar: &'a ProgressBar) -> Progress<'a> {
        Progress { bar, pending: 0 }
    }

    fn inc(&mut self) {
        self.pending += 1;
        if self.pending == 4096 {
            self.bar.inc(self.pending);
            self.pending = 0;
        }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        self.bar.inc(self.pending);
    }
}

fn partition_of(ranges: &[read::Range]) -> String {
    match ranges {
        [one] => one.partition.to_string(),
        _ => "all".into(),
    }
}

/// Records read out of `total`, on standard error; indicatif draws nothing when standard error
/// is not a terminal, so logs and pipes stay clean.
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} records ({rate}) · {msg}",
    ) {
        bar.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        ));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Whether `--out` can be written, judged before the topics are read: a directory that is not
/// there is a mistyped argument, not a failure after minutes of reading.
fn check_out(out: &Path) -> Result<(), String> {
    if out.is_dir() {
        return Err(format!("{} is a directory; name a file", out.display()));
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "{}: there is no directory {}",
            out.display(),
            dir.display()
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, then a rename, so
/// a reader never sees half a report.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let failed = |source| ReportError::Write {
        path: path.display().to_string(),
        source,
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.unwrap_or_else(|| "report".into()),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn a_date_is_midnight_in_the_display_zone() {
        assert_eq!(
            parse_time("2026-11-22", &shanghai()).map(format_utc),
            Ok("2026-11-21T16:00:00.000Z".into())
        );
        assert_eq!(
            parse_time("2026-11-22", &TimeZone::UTC).map(format_utc),
            Ok("2026-11-22T00:00:00.000Z".into())
        );
    }

    #[test]
    fn rfc3339_needs_an_offset() {
        assert_eq!(
            parse_time("2026-11-22T10:00:00+08:00", &shanghai()).map(format_utc),
            Ok("2026-11-22T02:00:00.000Z".into())
        );
        for bad in [
            "2026-11-22T10:00:00",
            "yesterday",
            "2026-13-01",
            "2026-1-01",
            "",
        ] {
            let e = parse_time(bad, &shanghai()).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    fn args(from: &str, to: &str) -> ReportArgs {
        ReportArgs {
            from: from.into(),
            to: to.into(),
            jurisdiction: None,
            format: None,
            out: None,
            audit: false,
            lang: None,
        }
    }

    #[test]
    fn from_after_to_is_a_usage_error() {
        let e = plan(&args("2026-11-23", "2026-11-22"), &Config::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("is after --to"), "{e}");
        assert!(plan(&args("2026-11-22", "2026-11-22"), &Config::default()).is_ok());
    }

    #[test]
    fn the_format_follows_the_flag_then_the_file_name() {
        let config = Config::default();
        let mut a = args("2026-11-22", "2026-11-23");
        assert_eq!(plan(&a, &config).unwrap().format, Format::Json);
        a.out = Some("r.HTML".into());
        assert_eq!(plan(&a, &config).unwrap().format, Format::Html);
        a.out = Some("r.csv".into());
        assert_eq!(plan(&a, &config).unwrap().format, Format::Csv);
        a.format = Some(Format::Json);
        assert_eq!(plan(&a, &config).unwrap().format, Format::Json);
    }

    #[test]
    fn an_out_file_that_cannot_be_written_is_a_usage_error_before_any_reading() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default();
        let mut a = args("2026-11-22", "2026-11-23");
        for (out, problem) in [
            (dir.path().join("missing/r.json"), "there is no directory"),
            (dir.path().to_path_buf(), "is a directory"),
        ] {
            a.out = Some(out);
            let e = plan(&a, &config).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(problem), "{e}");
        }
        a.out = Some(dir.path().join("r.json"));
        plan(&a, &config).unwrap();
        a.out = Some("r.json".into());
        plan(&a, &config).unwrap();
    }

    #[test]
    fn the_language_comes_from_the_config_unless_given() {
        let mut config = Config::default();
        let mut a = args("2026-11-22", "2026-11-23");
        assert_eq!(plan(&a, &config).unwrap().lang, Lang::ZhCn);
        config.display.language = "en".into();
        assert_eq!(plan(&a, &config).unwrap().lang, Lang::En);
        a.lang = Some(Lang::ZhCn);
        assert_eq!(plan(&a, &config).unwrap().lang, Lang::ZhCn);
    }
}
