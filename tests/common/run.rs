//! One processor on its own servers and topics, with what most end-to-end tests do with it:
//! produce alerts and dispositions, wait for escalations, read an alert's view and metrics.

use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::FutureProducer;
use serde_json::Value;
use std::time::Duration;

use super::processor::{Env, Processor};
use super::records::{alert_json, collect_until, disposition_json, has, ids, produce, Record};
use super::servers::wait_until;

/// How long a test waits for what it expects.
pub const WITHIN: Duration = Duration::from_secs(60);

/// One processor on its own servers and topics.
pub struct Run {
    pub env: Env,
    pub p: Processor,
    pub prod: FutureProducer,
    pub esc: BaseConsumer,
}

impl Run {
    pub fn start(name: &str, partitions: u32, sla: &str) -> Run {
        let env = Env::new(name, partitions, sla);
        let p = env.processor();
        p.wait_ready(WITHIN);
        let prod = env.broker.producer();
        let esc = env.escalations();
        Run { env, p, prod, esc }
    }

    pub async fn alert(&self, id: &str, issued_at: i64, risk: &str) {
        produce(
            &self.prod,
            &self.env.topics.alerts,
            Some(id),
            &alert_json(id, issued_at, risk),
        )
        .await;
    }

    pub async fn disposition(&self, event_id: &str, alert_id: &str, kind: &str, at: i64) {
        let value = disposition_json(event_id, alert_id, kind, at);
        produce(
            &self.prod,
            &self.env.topics.dispositions,
            Some(alert_id),
            &value,
        )
        .await;
    }

    /// Reads escalations until `id` has arrived (everything read so far is kept in `seen`).
    pub fn until(&self, seen: &mut Vec<Record>, id: &str) {
        if has(seen, id) {
            return;
        }
        let more = collect_until(&self.esc, WITHIN, |r| has(r, id));
        seen.extend(more);
        assert!(
            has(seen, id),
            "{id} never arrived; got {:?}\nlog:\n{}",
            ids(seen),
            self.p.log_text()
        );
    }

    pub fn alert_view(&self, id: &str) -> Value {
        let (code, body) = self
            .p
            .get(&format!("/v1/alerts/{id}"))
            .expect("HTTP answers");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until the processor has taken in `n` dispositions (their ingest delay counted).
    pub fn wait_dispositions_read(&self, n: f64) {
        let topic = self.env.topics.dispositions.clone();
        self.wait_metric(
            "fraud_sla_ingest_delay_seconds_count",
            &[("topic", &topic)],
            n,
        );
    }

    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        wait_until(WITHIN, &format!("{name}{labels:?} = {value}"), || {
            self.p.metric(name, labels) == value
        });
    }

    /// `fraud_sla_stage_completions_total` of one stage and result.
    pub fn completions(&self, stage: &str, result: &str) -> f64 {
        self.p.metric(
            "fraud_sla_stage_completions_total",
            &[("stage", stage), ("result", result)],
        )
    }
}
