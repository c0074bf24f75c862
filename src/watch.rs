//! `fraud-sla watch`: prints escalations as they arrive on the escalations topic, one line each.
//!
//! For the demo and for duty officers at a terminal; it joins no group that matters (a fresh
//! group id per run, nothing committed), so it never disturbs real consumers.

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::time::format_utc;
use crate::domain::{Escalation, EscalationKind};
use crate::kafka::client_config;

/// Consumes the escalations topic until `cancel`, printing each escalation to stdout.
pub async fn run(
    config: &Config,
    from_beginning: bool,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = client_config(&config.kafka)
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
        match serde_json::from_slice::<Escalation>(payload) {
            Ok(e) => println!("{}", render(&e)),
            Err(_) => println!("(unreadable escalation at offset {})", message.offset()),
        }
    }
}

/// One line: when, what, which stage of which alert, who is paged, and how late the timer was.
pub fn render(e: &Escalation) -> String {
    let what = match e.kind {
        EscalationKind::Warning => "WARNING   ".to_owned(),
        EscalationKind::Breach => format!("BREACH L{:<2}", e.level),
        EscalationKind::Resolved => format!("RESOLVED L{}", e.level),
    };
    let lateness = e
        .due_at
        .map(|due| format!("  (+{} ms after due)", e.fired_at - due))
        .unwrap_or_default();
    format!(
        "{}  {what}  {:<8} {}  {} {:<6} deadline {}  notify {}{lateness}",
        &format_utc(e.fired_at)[11..23],
        e.stage.as_str(),
        e.alert_id,
        e.jurisdiction,
        e.risk.as_str(),
        &format_utc(e.deadline)[11..23],
        e.notify.join(","),
    )
}
