//! Every metric of docs/contract.md §9, behind one struct with a method per observable event, so call
//! sites never spell a metric name or a label. No alert ids as labels (cardinality).

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use crate::domain::validate::Rejection;
use crate::domain::{DispositionKind, Effect, EscalationKind, Outcome, Policy, Risk};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RiskLabel {
    risk: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadletterLabels {
    topic: String,
    reason: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompletionLabels {
    stage: String,
    result: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EscalationLabels {
    stage: String,
    kind: &'static str,
    level: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreachLabels {
    stage: String,
    jurisdiction: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    policy_version: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    topic: String,
    partition: String,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn completion_histogram() -> Histogram {
    // 1 minute to 12 hours: a sign-for in minutes to the default 6 h feedback, and late ones.
    Histogram::new([
        60.0, 300.0, 600.0, 900.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 10800.0, 14400.0,
        21600.0, 28800.0, 43200.0,
    ])
}
fn delay_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    ])
}

/// The process's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    alerts: Family<RiskLabel, Counter>,
    dispositions: Family<KindLabel, Counter>,
    duplicates: Family<TopicLabel, Counter>,
    deadletters: Family<DeadletterLabels, Counter>,
    completions: Family<CompletionLabels, Counter>,
    completion_seconds: Hist<StageLabel>,
    escalations: Family<EscalationLabels, Counter>,
    breaches: Family<BreachLabels, Counter>,
    open_alerts: Gauge<i64, std::sync::atomic::AtomicI64>,
    timer_lateness: Histogram,
    ingest_delay: Hist<TopicLabel>,
    consumer_lag: Family<LagLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    publish_failures: Counter<u64, AtomicU64>,
    redis_errors: Counter<u64, AtomicU64>,
    alertmanager_failures: Counter<u64, AtomicU64>,
    ready: Gauge,
    standby: Gauge,
    partitions_owned: Gauge,
    outcomes: Family<OutcomeLabel, Counter>,
    redis_rollbacks: Counter<u64, AtomicU64>,
    already_applied: Family<TopicLabel, Counter>,
    config_reloads: Family<ResultLabel, Counter>,
    config_last_reload_successful: Gauge,
    policy_info: Family<PolicyLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            alerts: Family::default(),
            dispositions: Family::default(),
            duplicates: Family::default(),
            deadletters: Family::default(),
            completions: Family::default(),
            completion_seconds: Family::new_with_constructor(completion_histogram),
            escalations: Family::default(),
            breaches: Family::default(),
            open_alerts: Gauge::default(),
            // 1 ms to 60 s.
            timer_lateness: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            ingest_delay: Family::new_with_constructor(delay_histogram),
            consumer_lag: Family::default(),
            publish_failures: Counter::default(),
            redis_errors: Counter::default(),
            alertmanager_failures: Counter::default(),
            ready: Gauge::default(),
            standby: Gauge::default(),
            partitions_owned: Gauge::default(),
            outcomes: Family::default(),
            redis_rollbacks: Counter::default(),
            already_applied: Family::default(),
            config_reloads: Family::default(),
            config_last_reload_successful: Gauge::default(),
            policy_info: Family::default(),
            registry: Registry::default(),
        };
        // Counters are registered without `_total`: the encoder appends it.
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        registry.register(
            "fraud_sla_alerts",
            "Alerts accepted, by risk",
            m.alerts.clone(),
        );
        registry.register(
            "fraud_sla_dispositions",
            "Dispositions applied, by kind",
            m.dispositions.clone(),
        );
        registry.register(
            "fraud_sla_duplicates",
            "Duplicate messages ignored, by topic",
            m.duplicates.clone(),
        );
        registry.register(
            "fraud_sla_deadletters",
            "Messages sent to the dead-letter topic",
            m.deadletters.clone(),
        );
        registry.register(
            "fraud_sla_stage_completions",
            "Stages satisfied, on time or late",
            m.completions.clone(),
        );
        registry.register(
            "fraud_sla_stage_completion_seconds",
            "Time from issued_at to the satisfying event",
            m.completion_seconds.clone(),
        );
        registry.register(
            "fraud_sla_escalations",
            "Escalations emitted",
            m.escalations.clone(),
        );
        registry.register(
            "fraud_sla_breaches",
            "Level-1 breaches, by stage and jurisdiction",
            m.breaches.clone(),
        );
        registry.register(
            "fraud_sla_open_alerts",
            "Open alerts on the partitions this process owns",
            m.open_alerts.clone(),
        );
        registry.register(
            "fraud_sla_timer_lateness_seconds",
            "fired_at minus due_at of warnings and breaches",
            m.timer_lateness.clone(),
        );
        registry.register(
            "fraud_sla_ingest_delay_seconds",
            "Ingestion time minus the event's own time",
            m.ingest_delay.clone(),
        );
        registry.register(
            "fraud_sla_consumer_lag",
            "Messages behind the high watermark",
            m.consumer_lag.clone(),
        );
        registry.register(
            "fraud_sla_publish_failures",
            "Escalation deliveries that failed and were retried",
            m.publish_failures.clone(),
        );
        registry.register(
            "fraud_sla_ready",
            "1 when /readyz answers 200: Kafka and Redis reachable and partitions owned",
            m.ready.clone(),
        );
        registry.register(
            "fraud_sla_standby",
            "1 when this member of the group has no partition (more members than partitions) and Kafka and Redis answer: idle, not broken",
            m.standby.clone(),
        );
        registry.register(
            "fraud_sla_outcomes",
            "Outcomes reported by feedback dispositions applied (dissuaded share = dissuasion rate)",
            m.outcomes.clone(),
        );
        registry.register(
            "fraud_sla_redis_rollbacks",
            "Times a partition's state was found behind what this process had applied, and rebuilt",
            m.redis_rollbacks.clone(),
        );
        registry.register(
            "fraud_sla_already_applied",
            "Re-read messages skipped because Redis had applied them already, by topic",
            m.already_applied.clone(),
        );
        registry.register(
            "fraud_sla_partitions_owned",
            "Input partitions this process owns",
            m.partitions_owned.clone(),
        );
        registry.register(
            "fraud_sla_alertmanager_failures",
            "Alertmanager posts that failed and were retried",
            m.alertmanager_failures.clone(),
        );
        registry.register(
            "fraud_sla_redis_errors",
            "Redis operations that failed and were retried",
            m.redis_errors.clone(),
        );
        registry.register(
            "fraud_sla_config_reloads",
            "Reloads of the configuration file on SIGHUP, by result (success, failure)",
            m.config_reloads.clone(),
        );
        registry.register(
            "fraud_sla_config_last_reload_successful",
            "1 if the last reload of the configuration succeeded (or none was asked for), else 0",
            m.config_last_reload_successful.clone(),
        );
        registry.register(
            "fraud_sla_policy_info",
            "The policy in force for new alerts: 1, labelled with its policy_version",
            m.policy_info.clone(),
        );
        m.config_last_reload_successful.set(1);
        for risk in Risk::ALL {
            let _ = m.alerts.get_or_create(&RiskLabel {
                risk: risk.as_str(),
            });
        }
        for kind in DispositionKind::ALL {
            let _ = m.dispositions.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        for outcome in Outcome::ALL {
            let _ = m.outcomes.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        for result in ["success", "failure"] {
            let _ = m.config_reloads.get_or_create(&ResultLabel { result });
        }
        Metrics { registry, ..m }
    }

    // Every series whose labels are known in advance exists from the start, at 0: a counter
    // that appears only at its first increment hides that increment from `increase()`, and a
    // dashboard or rule that names it finds nothing until then. (The jurisdictions of
    // `fraud_sla_breaches_total` and the partitions of `fraud_sla_consumer_lag` are not known in
    // advance.)

    /// The series of the input topics: duplicates, dead letters by reason, ingest delay.
    pub(crate) fn prepare_inputs(&self, topics: [&str; 2]) {
        for topic in topics {
            let label = TopicLabel {
                topic: topic.to_owned(),
            };
            let _ = self.duplicates.get_or_create(&label);
            let _ = self.ingest_delay.get_or_create(&label);
            for reason in Rejection::CLASSES {
                let _ = self.deadletters.get_or_create(&DeadletterLabels {
                    topic: topic.to_owned(),
                    reason,
                });
            }
        }
    }

    /// The series a policy's alerts can count: completions by stage and result, completion
    /// times by stage, and escalations by stage, kind and level.
    fn prepare_policy(&self, policy: &Policy) {
        for risk in Risk::ALL {
            let ladder = policy.for_risk(risk);
            let levels = u8::try_from(ladder.escalate_after.len()).unwrap_or(u8::MAX);
            for rule in &ladder.stages {
                let stage = rule.stage.to_string();
                for result in ["on_time", "late"] {
                    let _ = self.completions.get_or_create(&CompletionLabels {
                        stage: stage.clone(),
                        result,
                    });
                }
                let _ = self.completion_seconds.get_or_create(&StageLabel {
                    stage: stage.clone(),
                });
                let escalation = |kind: EscalationKind, level: u8| {
                    let _ = self.escalations.get_or_create(&EscalationLabels {
                        stage: stage.clone(),
                        kind: kind.as_str(),
                        level: level.to_string(),
                    });
                };
                if ladder.warn_before > 0 {
                    escalation(EscalationKind::Warning, 0);
                }
                for level in 1..=levels {
                    escalation(EscalationKind::Breach, level);
                    escalation(EscalationKind::Resolved, level);
                }
            }
        }
    }

    /// `policy` is in force from now on (at start-up, or after a reload).
    pub(crate) fn policy_in_force(&self, policy: &Policy, previous: Option<&str>) {
        self.prepare_policy(policy);
        let version = policy.version();
        if let Some(previous) = previous.filter(|p| *p != version) {
            self.policy_info.remove(&PolicyLabel {
                policy_version: previous.to_owned(),
            });
        }
        self.policy_info
            .get_or_create(&PolicyLabel {
                policy_version: version.to_owned(),
            })
            .set(1);
    }

    /// A `SIGHUP` reload succeeded or failed.
    pub(crate) fn config_reloaded(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
        self.config_last_reload_successful.set(i64::from(ok));
    }

    /// The OpenMetrics text exposition.
    /// OpenMetrics text (what Prometheus asks for first).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format 0.0.4, for scrapers and tools that do not ask for
    /// OpenMetrics (`curl`, `promtool check metrics`).
    pub(crate) fn encode_prometheus_text(&self) -> String {
        openmetrics_to_prometheus_text(&self.encode())
    }

    /// Counts what a batch's transitions did, `(topic, effect)`. Escalations (more than one a
    /// message in a drain) and completed stages are tallied first, so that each of their label
    /// sets is built and looked up once a batch, not once an effect (2.9% of a drain's
    /// processor CPU).
    pub(crate) fn effects<'a>(&self, effects: impl IntoIterator<Item = (&'a str, &'a Effect)>) {
        let mut escalations: HashMap<(&str, &'static str, u8), u64> = HashMap::new();
        let mut breaches: HashMap<(&str, &str), u64> = HashMap::new();
        let mut completed: HashMap<(&str, bool), Vec<f64>> = HashMap::new();
        for (topic, effect) in effects {
            match effect {
                Effect::Escalate(e) => {
                    *escalations
                        .entry((e.stage.as_str(), e.kind.as_str(), e.level))
                        .or_default() += 1;
                    if e.kind == EscalationKind::Breach && e.level == 1 {
                        *breaches
                            .entry((e.stage.as_str(), e.jurisdiction.as_str()))
                            .or_default() += 1;
                    }
                    if let Some(due) = e.due_at {
                        self.timer_lateness
                            .observe((e.fired_at - due).max(0) as f64 / 1000.0);
                    }
                }
                Effect::StageCompleted {
                    stage,
                    on_time,
                    seconds,
                } => completed
                    .entry((stage.as_str(), *on_time))
                    .or_default()
                    .push(*seconds),
                other => self.effect(other, topic),
            }
        }
        for ((stage, kind, level), n) in escalations {
            self.escalations
                .get_or_create(&EscalationLabels {
                    stage: stage.to_owned(),
                    kind,
                    level: level.to_string(),
                })
                .inc_by(n);
        }
        for ((stage, jurisdiction), n) in breaches {
            self.breaches
                .get_or_create(&BreachLabels {
                    stage: stage.to_owned(),
                    jurisdiction: jurisdiction.to_owned(),
                })
                .inc_by(n);
        }
        for ((stage, on_time), seconds) in completed {
            let result = if on_time { "on_time" } else { "late" };
            self.completions
                .get_or_create(&CompletionLabels {
                    stage: stage.to_owned(),
                    result,
                })
                .inc_by(seconds.len() as u64);
            let histogram = self.completion_seconds.get_or_create(&StageLabel {
                stage: stage.to_owned(),
            });
            for s in seconds {
                histogram.observe(s);
            }
        }
    }

    /// Counts what one transition did, but an escalation or a completed stage (which
    /// [`Metrics::effects`] tallies).
    fn effect(&self, effect: &Effect, topic: &str) {
        match effect {
            Effect::AlertOpened { risk } => self.alert(*risk),
            Effect::DuplicateAlert | Effect::DuplicateDisposition => self.duplicate(topic),
            Effect::DispositionApplied { kind, outcome } => {
                self.disposition(*kind);
                if let Some(outcome) = outcome {
                    self.outcomes
                        .get_or_create(&OutcomeLabel {
                            outcome: outcome.as_str(),
                        })
                        .inc();
                }
            }
            // Tallied by `effects`.
            Effect::StageCompleted { .. } | Effect::Escalate(_) => {}
            Effect::DispositionHeld | Effect::AlertClosed => {}
        }
    }

    fn alert(&self, risk: Risk) {
        self.alerts
            .get_or_create(&RiskLabel {
                risk: risk.as_str(),
            })
            .inc();
    }
    fn disposition(&self, kind: DispositionKind) {
        self.dispositions
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }
    fn duplicate(&self, topic: &str) {
        self.duplicates
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .inc();
    }
    pub(crate) fn deadletter(&self, topic: &str, reason: &'static str) {
        self.deadletters
            .get_or_create(&DeadletterLabels {
                topic: topic.to_owned(),
                reason,
            })
            .inc();
    }

    pub(crate) fn ingest_delay(&self, topic: &str, seconds: f64) {
        self.ingest_delay
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .observe(seconds.max(0.0));
    }

    pub(crate) fn set_open_alerts(&self, n: i64) {
        self.open_alerts.set(n);
    }

    pub(crate) fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .get_or_create(&LagLabels {
                topic: topic.to_owned(),
                partition: partition.to_string(),
            })
            .set(lag);
    }

    pub(crate) fn publish_failed(&self) {
        self.publish_failures.inc();
    }

    /// Readiness as `/readyz` sees it, set at scrape time.
    pub(crate) fn set_readiness(&self, readiness: crate::health::Readiness, partitions_owned: i64) {
        use crate::health::Readiness;
        self.ready.set(i64::from(readiness == Readiness::Ready));
        self.standby.set(i64::from(readiness == Readiness::Standby));
        self.partitions_owned.set(partitions_owned);
    }

    /// A partition was found behind in Redis and is being rebuilt.
    pub(crate) fn redis_rollback(&self) {
        self.redis_rollbacks.inc();
    }

    /// `n` re-read messages of `topic` were skipped as already applied.
    pub(crate) fn already_applied(&self, topic: &str, n: u64) {
        self.already_applied
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .inc_by(n);
    }

    pub(crate) fn alertmanager_failed(&self) {
        self.alertmanager_failures.inc();
    }

    pub(crate) fn redis_error(&self) {
        self.redis_errors.inc();
    }
}

/// OpenMetrics names a counter family without `_total` and ends with `# EOF`; the 0.0.4 format
/// names the family as its samples and knows neither `# UNIT` nor `# EOF`.
fn openmetrics_to_prometheus_text(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        match meta.and_then(|p| {
            line[p.len()..]
                .split_once(' ')
                .map(|(name, rest)| (p, name, rest))
        }) {
            Some((prefix, name, rest)) if counters.contains(name) => {
                out.push_str(&format!("{prefix}{name}_total {rest}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Escalation, Millis, Risk, Stage};
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// A registry with a sample of every family, as after some traffic.
    fn busy() -> Metrics {
        let m = Metrics::new();
        let effect = |e: &Effect, topic: &str| m.effects([(topic, e)]);
        effect(&Effect::AlertOpened { risk: Risk::High }, "fraud.alerts");
        effect(
            &Effect::DispositionApplied {
                kind: DispositionKind::Met,
                outcome: None,
            },
            "fraud.dispositions",
        );
        effect(
            &Effect::DispositionApplied {
                kind: DispositionKind::Feedback,
                outcome: Some(crate::domain::Outcome::Dissuaded),
            },
            "fraud.dispositions",
        );
        effect(&Effect::DuplicateAlert, "fraud.alerts");
        effect(
            &Effect::StageCompleted {
                stage: Stage::new("visit").unwrap(),
                on_time: false,
                seconds: 4000.0,
            },
            "fraud.dispositions",
        );
        let deadline: Millis = 1_795_000_000_000;
        effect(
            &Effect::Escalate(Escalation {
                escalation_id: "A:visit:1".into(),
                alert_id: "A".into(),
                stage: Stage::new("visit").unwrap(),
                level: 1,
                kind: EscalationKind::Breach,
                jurisdiction: "620102-GWM".into(),
                risk: Risk::High,
                deadline,
                due_at: Some(deadline),
                fired_at: deadline + 3,
                notify: vec!["station_duty_officer".into()],
            }),
            "fraud.alerts",
        );
        m.deadletter("fraud.alerts", "missing_field");
        m.ingest_delay("fraud.alerts", 0.2);
        m.set_open_alerts(1);
        m.set_consumer_lag("fraud.alerts", 0, 5);
        m.publish_failed();
        m.redis_error();
        m
    }

    fn escalation(id: &str, level: u8, kind: EscalationKind, jurisdiction: &str) -> Effect {
        let deadline: Millis = 1_795_000_000_000;
        let (alert_id, stage) = id.split_once(':').unwrap();
        Effect::Escalate(Escalation {
            escalation_id: format!("{id}:{level}"),
            alert_id: alert_id.into(),
            stage: Stage::new(stage).unwrap(),
            level,
            kind,
            jurisdiction: jurisdiction.into(),
            risk: Risk::High,
            deadline,
            due_at: Some(deadline),
            fired_at: deadline + 3,
            notify: vec![],
        })
    }

    #[test]
    fn a_batch_s_escalations_and_completions_are_counted_by_label_set() {
        let m = Metrics::new();
        let visit = Stage::new("visit").unwrap();
        let effects = [
            escalation("A:visit", 1, EscalationKind::Breach, "620102-GWM"),
            escalation("B:visit", 1, EscalationKind::Breach, "620102-GWM"),
            escalation("C:visit", 1, EscalationKind::Breach, "110101-XCH"),
            escalation("A:visit", 2, EscalationKind::Breach, "620102-GWM"),
            escalation("A:meet", 0, EscalationKind::Warning, "620102-GWM"),
            Effect::StageCompleted {
                stage: visit.clone(),
                on_time: true,
                seconds: 600.0,
            },
            Effect::StageCompleted {
                stage: visit,
                on_time: true,
                seconds: 1200.0,
            },
            Effect::AlertOpened { risk: Risk::Low },
        ];
        m.effects(effects.iter().map(|e| ("fraud.alerts", e)));
        let text = m.encode();
        for sample in [
            "fraud_sla_escalations_total{stage=\"visit\",kind=\"breach\",level=\"1\"} 3\n",
            "fraud_sla_escalations_total{stage=\"visit\",kind=\"breach\",level=\"2\"} 1\n",
            "fraud_sla_escalations_total{stage=\"meet\",kind=\"warning\",level=\"0\"} 1\n",
            "fraud_sla_breaches_total{stage=\"visit\",jurisdiction=\"620102-GWM\"} 2\n",
            "fraud_sla_breaches_total{stage=\"visit\",jurisdiction=\"110101-XCH\"} 1\n",
            "fraud_sla_stage_completions_total{stage=\"visit\",result=\"on_time\"} 2\n",
            "fraud_sla_stage_completion_seconds_sum{stage=\"visit\"} 1800.0\n",
            "fraud_sla_stage_completion_seconds_count{stage=\"visit\"} 2\n",
            "fraud_sla_timer_lateness_seconds_count 5\n",
            "fraud_sla_alerts_total{risk=\"low\"} 1\n",
        ] {
            assert!(text.contains(sample), "{sample}:\n{text}");
        }
    }

    #[test]
    fn every_contract_family_is_exported_with_its_type() {
        let text = busy().encode();
        for (family, kind) in [
            ("fraud_sla_alerts", "counter"),
            ("fraud_sla_dispositions", "counter"),
            ("fraud_sla_duplicates", "counter"),
            ("fraud_sla_deadletters", "counter"),
            ("fraud_sla_stage_completions", "counter"),
            ("fraud_sla_stage_completion_seconds", "histogram"),
            ("fraud_sla_escalations", "counter"),
            ("fraud_sla_breaches", "counter"),
            ("fraud_sla_open_alerts", "gauge"),
            ("fraud_sla_timer_lateness_seconds", "histogram"),
            ("fraud_sla_ingest_delay_seconds", "histogram"),
            ("fraud_sla_consumer_lag", "gauge"),
            ("process_cpu_seconds", "counter"),
            ("process_resident_memory_bytes", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family} {kind}:\n{text}"
            );
        }
        for sample in [
            "fraud_sla_alerts_total{risk=\"high\"} 1",
            "fraud_sla_deadletters_total{topic=\"fraud.alerts\",reason=\"missing_field\"} 1",
            "fraud_sla_stage_completions_total{stage=\"visit\",result=\"late\"} 1",
            "fraud_sla_escalations_total{stage=\"visit\",kind=\"breach\",level=\"1\"} 1",
            "fraud_sla_breaches_total{stage=\"visit\",jurisdiction=\"620102-GWM\"} 1",
            "fraud_sla_consumer_lag{topic=\"fraud.alerts\",partition=\"0\"} 5",
            "fraud_sla_timer_lateness_seconds_bucket{le=\"0.005\"} 1",
        ] {
            assert!(text.contains(sample), "{sample}:\n{text}");
        }
        // One sentence each (the library ends a registered help text with its own period).
        for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }

    #[test]
    fn before_any_traffic_every_series_with_labels_known_in_advance_is_at_zero() {
        let m = Metrics::new();
        m.prepare_inputs(["fraud.alerts", "fraud.dispositions"]);
        m.policy_in_force(&Policy::default(), None);
        let text = m.encode_prometheus_text();
        for sample in [
            "fraud_sla_alerts_total{risk=\"low\"} 0",
            "fraud_sla_dispositions_total{kind=\"acknowledged\"} 0",
            "fraud_sla_outcomes_total{outcome=\"refused\"} 0",
            "fraud_sla_duplicates_total{topic=\"fraud.dispositions\"} 0",
            "fraud_sla_deadletters_total{topic=\"fraud.alerts\",reason=\"key_mismatch\"} 0",
            "fraud_sla_stage_completions_total{stage=\"feedback\",result=\"on_time\"} 0",
            "fraud_sla_stage_completion_seconds_count{stage=\"meet\"} 0",
            "fraud_sla_escalations_total{stage=\"visit\",kind=\"warning\",level=\"0\"} 0",
            "fraud_sla_escalations_total{stage=\"meet\",kind=\"breach\",level=\"3\"} 0",
            "fraud_sla_escalations_total{stage=\"feedback\",kind=\"resolved\",level=\"2\"} 0",
            "fraud_sla_ingest_delay_seconds_count{topic=\"fraud.alerts\"} 0",
            "fraud_sla_config_reloads_total{result=\"failure\"} 0",
        ] {
            assert!(text.contains(sample), "{sample}:\n{text}");
        }
        assert!(
            !text.contains("level=\"4\""),
            "no level past the ladder:\n{text}"
        );
    }

    #[test]
    fn the_exposition_passes_promtool_check_metrics() {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs (deploy/local/install.sh installs Debian's prometheus package)");
        let text = busy().encode_prometheus_text();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool check metrics:\n{said}\n{text}"
        );
        assert!(
            text.contains("# TYPE fraud_sla_alerts_total counter\n") && !text.contains("# EOF")
        );
    }
}
