//! `fraud-sla watch`: prints escalations as they arrive on the escalations topic, one line each,
//! and [`Readable`], how people read an escalation (shared with the Alertmanager summaries).
//!
//! For the demo and for duty officers at a terminal; it joins no group that matters (a fresh
//! group id per run, nothing committed), so it never disturbs real consumers.

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, StageLabel};
use crate::domain::time::format_utc;
use crate::domain::{Escalation, EscalationKind, Millis};
use crate::kafka::reader_config;

/// What people read (docs/contract.md §10.3): times in the `[display]` zone with the zone
/// named, and stages by their display names in the `[display]` language. Machine-readable
/// output (the escalations, Alertmanager's labels) stays UTC and machine names; `watch` and the
/// Alertmanager summaries both read through this, so they say the same time the same way.
#[derive(Debug, Clone)]
pub struct Readable {
    zone: jiff::tz::TimeZone,
    /// The IANA name: said once where the abbreviation alone (`CST`) could be read two ways.
    zone_name: String,
    /// `[display] language = "en"`; otherwise zh-CN.
    english: bool,
    /// Display names of the configured stages; a stage without one is shown by its name.
    labels: BTreeMap<String, StageLabel>,
}

impl Readable {
    /// The display settings of a validated `config`.
    pub fn new(config: &Config) -> Readable {
        Readable {
            zone: config.display.zone(),
            zone_name: config.display.timezone.clone(),
            english: config.display.language == "en",
            labels: config.stage_labels().unwrap_or_default(),
        }
    }

    /// Whether people read English (`en`) rather than Chinese (`zh-CN`).
    pub fn english(&self) -> bool {
        self.english
    }

    /// The display zone's IANA name, e.g. `Asia/Shanghai`.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// Local date and time with the zone's abbreviation: `2026-11-22 11:00:00 CST`.
    pub fn time(&self, at: Millis) -> String {
        self.format(at, "%Y-%m-%d %H:%M:%S %Z")
    }

    /// [`Readable::time`] with milliseconds: `2026-11-22 11:00:00.012 CST`.
    pub fn time_ms(&self, at: Millis) -> String {
        self.format(at, "%Y-%m-%d %H:%M:%S%.3f %Z")
    }

    /// Only the local time of day (`11:00:00 CST`) when `at` falls on the same local day as
    /// `day`, else [`Readable::time`].
    pub fn time_near(&self, at: Millis, day: Millis) -> String {
        let date = |ms| self.format(ms, "%Y-%m-%d");
        if date(at) == date(day) {
            self.format(at, "%H:%M:%S %Z")
        } else {
            self.time(at)
        }
    }

    /// A stage as people know it: `上门 visit` in Chinese (the machine name follows, as the
    /// labels and the escalations spell it), `Visit` in English.
    pub fn stage(&self, stage: &str) -> String {
        match self.labels.get(stage) {
            Some(l) if self.english => l.en.clone(),
            Some(l) if l.zh != stage => format!("{} {stage}", l.zh),
            _ => stage.to_owned(),
        }
    }

    fn format(&self, at: Millis, pattern: &str) -> String {
        match jiff::Timestamp::from_millisecond(at) {
            Ok(t) => t.to_zoned(self.zone.clone()).strftime(pattern).to_string(),
            Err(_) => format_utc(at),
        }
    }
}

/// What `fraud-sla watch` reads and prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// From the oldest escalation the topic keeps, not only new ones.
    pub from_beginning: bool,
    /// Each line led by the record's Kafka timestamp ([`timestamp_prefix`]): how long an
    /// escalation took from the processor's producer to a reader, apart from its firing.
    pub print_timestamp: bool,
}

/// Consumes the escalations topic until `cancel`, printing each escalation to stdout.
pub async fn run(
    config: &Config,
    options: Options,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let Options {
        from_beginning,
        print_timestamp,
    } = options;
    let readable = Readable::new(config);
    let consumer: StreamConsumer = reader_config(&config.kafka)
        .set(
            "group.id",
            format!("fraud-sla-watch-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if from_beginning { "earliest" } else { "latest" },
        )
        .create()?;
    consumer.subscribe(&[&config.kafka.escalations_topic])?;
    let mut stream = consumer.stream();
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            m = stream.next() => match m {
                Some(m) => m?,
                None => return Ok(()),
            },
        };
        let Some(payload) = message.payload() else {
            continue;
        };
        let line = match serde_json::from_slice::<Escalation>(payload) {
            Ok(e) => render(&e, &readable),
            Err(_) => format!("(unreadable escalation at offset {})", message.offset()),
        };
        if print_timestamp {
            println!("{}{line}", timestamp_prefix(message.timestamp()));
        } else {
            println!("{line}");
        }
    }
}

/// A record's Kafka timestamp as kafka-console-consumer prints it with `print.timestamp`:
/// `CreateTime:<ms>` and a tab, `LogAppendTime:<ms>` where the topic has the broker stamp it,
/// `NoTimestampType:-1` where the record has none.
pub fn timestamp_prefix(ts: rdkafka::Timestamp) -> String {
    match ts {
        rdkafka::Timestamp::CreateTime(ms) => format!("CreateTime:{ms}\t"),
        rdkafka::Timestamp::LogAppendTime(ms) => format!("LogAppendTime:{ms}\t"),
        rdkafka::Timestamp::NotAvailable => "NoTimestampType:-1\t".to_owned(),
    }
}

/// One line: when (local, with milliseconds), what, which stage of which alert, the deadline,
/// when it was due and how late the timer was, and who is paged. Deadline and due show only
/// the time of day when they fall on the day the line was fired.
///
/// The kind stays an upper-case English tag in every language, so `watch | grep BREACH` works.
pub fn render(e: &Escalation, r: &Readable) -> String {
    let what = match e.kind {
        EscalationKind::Warning => "WARNING    ".to_owned(),
        EscalationKind::Breach => format!("BREACH L{:<3}", e.level),
        EscalationKind::Resolved => format!("RESOLVED L{:<1}", e.level),
    };
    let due = e
        .due_at
        .map(|due| {
            format!(
                "  due {} (+{} ms)",
                r.time_near(due, e.fired_at),
                e.fired_at - due
            )
        })
        .unwrap_or_default();
    format!(
        "{}  {what}  {}  {}  {} {:<6}  deadline {}{due}  notify {}",
        r.time_ms(e.fired_at),
        r.stage(e.stage.as_str()),
        e.alert_id,
        e.jurisdiction,
        e.risk.as_str(),
        r.time_near(e.deadline, e.fired_at),
        e.notify.join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Risk, Stage};

    /// 2026-11-22T03:00:00Z, 11:00 in Shanghai.
    const DEADLINE: Millis = 1_795_316_400_000;

    fn readable(display: &str) -> Readable {
        let c = Config::parse(&format!(
            "[sla]\nstages = [\"sign_for\", \"visit\", \"meet\", \"feedback\"]\n\
             sign_for_within = \"10m\"\n[sla.stage.sign_for]\nsatisfied_by = [\"acknowledged\"]\n\
             label_en = \"Sign-for\"\n[display]\n{display}"
        ))
        .unwrap();
        c.validate().unwrap();
        Readable::new(&c)
    }

    fn escalation(
        kind: EscalationKind,
        level: u8,
        due: Option<Millis>,
        fired: Millis,
    ) -> Escalation {
        Escalation {
            escalation_id: "GA-1:visit:1".into(),
            alert_id: "GA-1".into(),
            stage: Stage::new("visit").unwrap(),
            level,
            kind,
            jurisdiction: "620102-GWM".into(),
            risk: Risk::High,
            deadline: DEADLINE,
            due_at: due,
            fired_at: fired,
            notify: vec!["station_duty_officer".into()],
        }
    }

    #[test]
    fn a_timestamp_is_printed_as_kafka_console_consumer_prints_it() {
        use rdkafka::Timestamp;
        assert_eq!(
            timestamp_prefix(Timestamp::CreateTime(1_796_614_369_078)),
            "CreateTime:1796614369078\t"
        );
        assert_eq!(
            timestamp_prefix(Timestamp::LogAppendTime(5)),
            "LogAppendTime:5\t"
        );
        assert_eq!(
            timestamp_prefix(Timestamp::NotAvailable),
            "NoTimestampType:-1\t"
        );
    }

    #[test]
    fn times_are_local_with_the_zone_named() {
        let r = readable("");
        assert_eq!(r.time(DEADLINE), "2026-11-22 11:00:00 CST");
        assert_eq!(r.time_ms(DEADLINE + 12), "2026-11-22 11:00:00.012 CST");
        assert_eq!(r.time_near(DEADLINE, DEADLINE + 3_600_000), "11:00:00 CST");
        // 13 h later it is the next day in Shanghai (though not yet in UTC).
        assert_eq!(
            r.time_near(DEADLINE, DEADLINE + 13 * 3_600_000),
            "2026-11-22 11:00:00 CST"
        );
        assert_eq!(r.zone_name(), "Asia/Shanghai");
        let berlin = readable("timezone = \"Europe/Berlin\"\n");
        assert_eq!(berlin.time(DEADLINE), "2026-11-22 04:00:00 CET");
    }

    #[test]
    fn stages_by_their_display_names() {
        let zh = readable("");
        assert_eq!(zh.stage("visit"), "上门 visit");
        assert_eq!(zh.stage("sign_for"), "签收 sign_for");
        assert_eq!(
            zh.stage("unknown"),
            "unknown",
            "a stage no longer configured"
        );
        let en = readable("language = \"en\"\n");
        assert!(en.english());
        assert_eq!(en.stage("visit"), "Visit");
        assert_eq!(en.stage("sign_for"), "Sign-for", "label_en configured");
    }

    #[test]
    fn a_line_per_escalation_in_local_time() {
        let r = readable("");
        let breach = escalation(EscalationKind::Breach, 1, Some(DEADLINE), DEADLINE + 12);
        assert_eq!(
            render(&breach, &r),
            "2026-11-22 11:00:00.012 CST  BREACH L1    上门 visit  GA-1  620102-GWM high    \
             deadline 11:00:00 CST  due 11:00:00 CST (+12 ms)  notify station_duty_officer"
        );
        let mut resolved = escalation(EscalationKind::Resolved, 2, None, DEADLINE + 14 * 3_600_000);
        resolved.notify = vec!["station_chief".into()];
        assert_eq!(
            render(&resolved, &readable("language = \"en\"\n")),
            "2026-11-23 01:00:00.000 CST  RESOLVED L2  Visit  GA-1  620102-GWM high    \
             deadline 2026-11-22 11:00:00 CST  notify station_chief"
        );
        let warning = escalation(
            EscalationKind::Warning,
            0,
            Some(DEADLINE - 900_000),
            DEADLINE - 900_000,
        );
        assert!(render(&warning, &r).starts_with(
            "2026-11-22 10:45:00.000 CST  WARNING      上门 visit  GA-1  620102-GWM high    \
             deadline 11:00:00 CST  due 10:45:00 CST (+0 ms)"
        ));
    }
}
