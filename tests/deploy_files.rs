//! Static checks of the deployment files under `deploy/`: the Grafana dashboard and its
//! provisioning, the Prometheus config, alert rules and their unit tests, the Alertmanager config,
//! `docker-compose.yml` and the Dockerfile.
//!
//! - every metric a query or rule uses is one the processor exports, and every docs/contract.md §9 family
//!   is on the dashboard;
//! - stages are configuration (CONTRACT.md §10.1): no query or rule names a stage; the dashboard's
//!   stage panels filter on its `stage` variable;
//! - `promtool check config`, `promtool check rules`, `promtool test rules` (and `amtool
//!   check-config`) pass; the dashboard's queries parse too. The tools come from Debian's
//!   `prometheus` and `prometheus-alertmanager` packages (deploy/local/install.sh); a missing tool
//!   is a failure, not a skip;
//! - the compose file's services, mounts, ports and host names agree with prometheus.yml, the
//!   Grafana provisioning and the processor's config, which `fraud-sla check-config` accepts.
//!
//! No Docker engine is needed. The YAML files are read with saphyr (YAML 1.2, see `mod yaml` at
//! the bottom); when PyYAML (YAML 1.1) is importable its reading of every file is compared with
//! ours.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// ---- what the processor exports --------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The metric families of docs/contract.md §9 (counters with their `_total` suffix).
const CONTRACT: &[(&str, Kind)] = &[
    ("fraud_sla_alerts_total", Kind::Counter),
    ("fraud_sla_dispositions_total", Kind::Counter),
    ("fraud_sla_duplicates_total", Kind::Counter),
    ("fraud_sla_deadletters_total", Kind::Counter),
    ("fraud_sla_stage_completions_total", Kind::Counter),
    ("fraud_sla_stage_completion_seconds", Kind::Histogram),
    ("fraud_sla_escalations_total", Kind::Counter),
    ("fraud_sla_breaches_total", Kind::Counter),
    ("fraud_sla_open_alerts", Kind::Gauge),
    ("fraud_sla_timer_lateness_seconds", Kind::Histogram),
    ("fraud_sla_ingest_delay_seconds", Kind::Histogram),
    ("fraud_sla_consumer_lag", Kind::Gauge),
];

/// Exported beyond §9: §10.6, the extras of docs/contract.md, the config reloads and the policy in
/// force (§10.2), and Prometheus's own `up`.
const EXTRA: &[(&str, Kind)] = &[
    ("fraud_sla_outcomes_total", Kind::Counter),
    ("fraud_sla_redis_rollbacks_total", Kind::Counter),
    ("fraud_sla_config_reloads_total", Kind::Counter),
    ("fraud_sla_config_last_reload_successful", Kind::Gauge),
    ("fraud_sla_policy_info", Kind::Gauge),
    ("fraud_sla_already_applied_total", Kind::Counter),
    ("fraud_sla_standby", Kind::Gauge),
    ("fraud_sla_publish_failures_total", Kind::Counter),
    ("fraud_sla_redis_errors_total", Kind::Counter),
    ("fraud_sla_alertmanager_failures_total", Kind::Counter),
    ("fraud_sla_ready", Kind::Gauge),
    ("fraud_sla_partitions_owned", Kind::Gauge),
    ("process_cpu_seconds_total", Kind::Counter),
    ("process_resident_memory_bytes", Kind::Gauge),
    ("process_open_fds", Kind::Gauge),
    ("process_start_time_seconds", Kind::Gauge),
    ("up", Kind::Gauge),
];

/// The families with a `stage` label (§9), whose values are the configured stage names.
const STAGED: &[&str] = &[
    "fraud_sla_stage_completions_total",
    "fraud_sla_stage_completion_seconds",
    "fraud_sla_escalations_total",
    "fraud_sla_breaches_total",
];

fn families() -> impl Iterator<Item = (&'static str, Kind)> {
    CONTRACT.iter().chain(EXTRA).copied()
}

/// The series names a query may select: histograms as `_bucket`, `_sum` and `_count`.
fn series_names() -> BTreeMap<String, &'static str> {
    let mut names = BTreeMap::new();
    for (family, kind) in families() {
        if kind == Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{family}{suffix}"), family);
            }
        } else {
            names.insert(family.to_string(), family);
        }
    }
    names
}

/// The families of `names`, failing on any name the processor does not export.
fn check_known(what: &str, names: &BTreeSet<String>) -> BTreeSet<&'static str> {
    let known = series_names();
    let unknown: Vec<&String> = names.iter().filter(|n| !known.contains_key(*n)).collect();
    assert!(
        unknown.is_empty(),
        "{what} uses metrics the processor does not export: {unknown:?}"
    );
    names.iter().map(|n| known[n]).collect()
}

#[test]
fn the_metric_list_matches_the_processor_and_the_contract() {
    // Counters are registered without `_total` (the encoder appends it).
    let src = [read("src/metrics.rs"), read("src/process_metrics.rs")].concat();
    for (family, kind) in families().filter(|(f, _)| *f != "up") {
        let registered = match kind {
            Kind::Counter => family.strip_suffix("_total").unwrap(),
            _ => family,
        };
        assert!(
            src.contains(&format!("\"{registered}\"")),
            "{family} is not registered in src/metrics.rs or src/process_metrics.rs"
        );
    }
    let text = std::fs::read_to_string(root().join("docs/contract.md")).expect("docs/contract.md");
    let section = text
        .split("\n## 9.")
        .nth(1)
        .expect("docs/contract.md has a §9")
        .split("\n## ")
        .next()
        .unwrap();
    let mut table = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim()).collect();
        let name = cells[1].trim_matches('`').to_string();
        let kind = match cells[2] {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            other => panic!("docs/contract.md §9: unknown type {other}"),
        };
        table.push((name, kind));
    }
    let ours: Vec<(String, Kind)> = CONTRACT.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    assert_eq!(
        table, ours,
        "docs/contract.md §9 changed; update the list above"
    );
}

// ---- Grafana ---------------------------------------------------------------------------------

fn dashboard() -> Value {
    let text = read("deploy/grafana/dashboards/fraud-sla.json");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every panel, rows' nested panels included.
fn all_panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// (panel title, expr) of every query.
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in all_panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has an expr");
            out.push((p["title"].as_str().unwrap_or("").to_string(), expr.into()));
        }
    }
    out
}

fn variable<'a>(dash: &'a Value, name: &str) -> &'a Value {
    dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("the dashboard has no `{name}` variable"))
}

#[test]
fn dashboard_is_well_formed() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "fraud-sla");
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=39).contains(&schema), "schemaVersion {schema}");

    let ds = variable(&dash, "datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let j = variable(&dash, "jurisdiction");
    assert_eq!(j["type"], "query");
    let def = "label_values(fraud_sla_breaches_total, jurisdiction)";
    assert_eq!(j["definition"], def);
    let query = j["query"].get("query").unwrap_or(&j["query"]);
    assert_eq!(query, def);
    assert_eq!(j["datasource"]["uid"], "${datasource}");

    // The stages are whatever the processor is configured with: read from its metrics, not listed.
    let s = variable(&dash, "stage");
    assert_eq!(s["type"], "query");
    let def = "label_values(fraud_sla_stage_completions_total, stage)";
    assert_eq!(s["definition"], def);
    let query = s["query"].get("query").unwrap_or(&s["query"]);
    assert_eq!(query, def);
    assert_eq!(s["datasource"]["uid"], "${datasource}");
    assert_eq!(s["multi"], true);
    assert_eq!(s["includeAll"], true);
    assert_eq!(s["allValue"], ".*");
    assert_eq!(
        s["regex"].as_str().unwrap_or(""),
        "",
        "the stage variable filters no stage"
    );
    assert!(
        s["options"].as_array().is_none_or(Vec::is_empty),
        "the stage variable lists no stages of its own"
    );

    let mut ids = BTreeSet::new();
    for p in all_panels(&dash) {
        let title = p["title"].as_str().expect("every panel has a title");
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "panel id {id} ({title}) is not unique");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(
            x + w <= 24 && g["h"].as_u64().unwrap() > 0,
            "{title}: gridPos {g}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            assert!(refs.insert(t["refId"].as_str().unwrap()), "{title}: refId");
        }
    }
}

#[test]
fn dashboard_uses_known_metrics_and_shows_every_family() {
    let dash = dashboard();
    let vars: BTreeSet<String> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut used = BTreeSet::new();
    let mut all = String::new();
    for (title, expr) in dashboard_exprs(&dash) {
        let names = metric_names(&expr);
        assert!(
            !names.is_empty() || expr.contains("time()"),
            "{title}: {expr}"
        );
        used.extend(check_known(&format!("panel {title:?}"), &names));
        for v in grafana_variables(&expr) {
            assert!(
                v.starts_with("__") || vars.contains(&v),
                "{title}: ${v} is not a variable of the dashboard"
            );
        }
        for job in job_selectors(&expr) {
            assert_eq!(job, "fraud-sla", "{title}: job {job:?}");
        }
        all.push_str(&expr);
        all.push('\n');
    }
    for (family, _) in CONTRACT {
        assert!(used.contains(family), "no panel shows {family}");
    }
    // The panels the operators asked for.
    for needle in [
        "result=\"on_time\"",
        "topk(10, sum by (jurisdiction) (increase(fraud_sla_breaches_total",
        "sum by (kind, level) (increase(fraud_sla_escalations_total",
        "histogram_quantile(0.5, sum by (le) (rate(fraud_sla_timer_lateness_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(fraud_sla_timer_lateness_seconds_bucket",
        "histogram_quantile(0.5, sum by (topic, le) (rate(fraud_sla_ingest_delay_seconds_bucket",
        "histogram_quantile(0.99, sum by (topic, le) (rate(fraud_sla_ingest_delay_seconds_bucket",
        "max by (topic, partition) (fraud_sla_consumer_lag",
        "sum by (topic, reason) (increase(fraud_sla_deadletters_total",
        "jurisdiction=~\"$jurisdiction\"",
        "stage=~\"$stage\"",
        "up{job=\"fraud-sla\"}",
        "fraud_sla_outcomes_total{job=\"fraud-sla\", outcome=\"dissuaded\"}",
        "sum by (outcome) (increase(fraud_sla_outcomes_total",
        "by (policy_version) (fraud_sla_policy_info",
        "fraud_sla_config_last_reload_successful{job=\"fraud-sla\"}",
    ] {
        assert!(all.contains(needle), "no dashboard query contains {needle}");
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    // promtool has no expression checker; recording rules are checked by `check rules`.
    let dash = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_exprs(&dash).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "6h")
            .replace("$jurisdiction", ".*")
            .replace("$stage", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: |\n"
        ));
        for line in expr.lines() {
            rules.push_str(&format!("          {line}\n"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).unwrap();
    tool("promtool", &["check", "rules", file.to_str().unwrap()]);
}

#[test]
fn no_query_or_rule_names_a_stage_and_stage_panels_follow_the_variable() {
    // CONTRACT.md §10.1: the stage list is configuration, so a matcher on a stage name would
    // silently show nothing (or miss a stage) under another configuration.
    let dash = dashboard();
    let mut exprs: Vec<(String, String)> = dashboard_exprs(&dash)
        .into_iter()
        .map(|(title, expr)| (format!("panel {title:?}"), expr))
        .collect();
    for v in dash["templating"]["list"].as_array().unwrap() {
        let query = v["query"].get("query").unwrap_or(&v["query"]);
        for q in [query, &v["definition"]] {
            if let Some(q) = q.as_str() {
                exprs.push((format!("variable {}", v["name"]), q.to_string()));
            }
        }
    }
    let mut staged_selectors = 0;
    for (what, expr) in &exprs {
        for (metric, matchers) in selectors(expr) {
            for (label, op, value) in &matchers {
                assert!(
                    label != "stage" || (op == "=~" && is_stage_variable(value)),
                    "{what}: {label}{op}\"{value}\" names a stage; filter with stage=~\"$stage\" \
                     (the stages are configuration): {expr}"
                );
            }
            let family = series_names().get(&metric).copied();
            if family.is_some_and(|f| STAGED.contains(&f)) {
                staged_selectors += 1;
                assert!(
                    matchers
                        .iter()
                        .any(|(l, op, v)| l == "stage" && op == "=~" && is_stage_variable(v)),
                    "{what}: {metric} is not filtered by the stage variable: {expr}"
                );
            }
        }
    }
    assert!(
        staged_selectors > 0,
        "no dashboard query selects a staged metric"
    );

    let rules = yaml_file(&root().join(RULES));
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().unwrap();
            let expr = rule["expr"].as_str().unwrap();
            for (_, matchers) in selectors(expr) {
                for (label, op, value) in matchers {
                    assert!(
                        label != "stage",
                        "{name}: {label}{op}\"{value}\"; a rule holds for any stage list: {expr}"
                    );
                }
            }
        }
    }
}

/// `$stage`, `${stage}` or `${stage:format}`: the dashboard's stage variable, nothing more.
fn is_stage_variable(value: &str) -> bool {
    value == "$stage"
        || value == "${stage}"
        || value
            .strip_prefix("${stage:")
            .is_some_and(|rest| rest.ends_with('}') && !rest.contains(['|', '$']))
}

#[test]
fn grafana_provisioning_matches_the_compose_mounts() {
    let compose = compose();
    let grafana = service(&compose, "grafana");
    let provisioning = host_path(grafana, "/etc/grafana/provisioning");
    assert_eq!(provisioning, root().join("deploy/grafana/provisioning"));

    let ds = yaml_file(&provisioning.join("datasources/prometheus.yml"));
    let sources = ds["datasources"].as_array().expect("datasources");
    assert_eq!(sources.len(), 1);
    let prom = &sources[0];
    assert_eq!(prom["type"], "prometheus");
    assert_eq!(prom["uid"], "prometheus");
    assert_eq!(prom["url"], "http://prometheus:9090");
    assert_eq!(
        endpoint(prom["url"].as_str().unwrap()),
        ("prometheus", 9090)
    );
    assert_service_port(&compose, "prometheus", 9090, "--web.listen-address");
    // The dashboard's datasource variable defaults to the provisioned uid.
    assert_eq!(
        variable(&dashboard(), "datasource")["current"]["value"],
        "prometheus"
    );

    let dashboards = yaml_file(&provisioning.join("dashboards/fraud-sla.yml"));
    let providers = dashboards["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["type"], "file");
    let path = providers[0]["options"]["path"].as_str().unwrap();
    assert_eq!(path, "/var/lib/grafana/dashboards");
    let dir = host_path(grafana, path);
    assert_eq!(dir, root().join("deploy/grafana/dashboards"));
    assert!(dir.join("fraud-sla.json").is_file());
    let home = env_var(grafana, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH");
    assert!(host_path(grafana, &home).is_file(), "{home}");
}

// ---- Prometheus and Alertmanager ------------------------------------------------------------

const RULES: &str = "deploy/prometheus/rules/fraud-sla.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests/fraud-sla.rules.test.yml";
const ALERTS: &[&str] = &[
    "FraudSlaProcessorDown",
    "FraudSlaNotReady",
    "FraudSlaConfigReloadFailed",
    "FraudSlaConsumerLagGrowing",
    "FraudSlaTimerLatenessHigh",
    "FraudSlaDeadLettersRising",
    "FraudSlaBreachRateSpike",
];

#[test]
fn promtool_accepts_the_config_and_the_rules_and_their_tests_pass() {
    tool(
        "promtool",
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    tool("promtool", &["check", "rules", RULES]);
    let out = tool("promtool", &["test", "rules", RULE_TESTS]);
    assert!(text(&out).contains("SUCCESS"), "{}", text(&out));
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    tool(
        "amtool",
        &["check-config", "deploy/prometheus/alertmanager.yml"],
    );
}

#[test]
fn rules_use_known_metrics_and_are_labelled() {
    let rules = yaml_file(&root().join(RULES));
    let mut names = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("only alerting rules");
            names.push(name.to_string());
            let expr = rule["expr"].as_str().expect("expr");
            check_known(name, &metric_names(expr));
            for job in job_selectors(expr) {
                assert_eq!(job, "fraud-sla", "{name}: job {job:?}");
            }
            let severity = rule["labels"]["severity"].as_str().unwrap_or("");
            assert!(
                ["critical", "warning"].contains(&severity),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description"] {
                let a = rule["annotations"][key].as_str().unwrap_or("");
                assert!(a.len() > 20, "{name}: annotation {key}");
                // No personal data, no per-alert identifiers.
                for field in ["alert_id", "subject", "note"] {
                    assert!(!a.contains(&format!("$labels.{field}")), "{name}: {field}");
                }
            }
        }
    }
    assert_eq!(names, ALERTS);
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = yaml_file(&root().join(RULE_TESTS));
    assert_eq!(tests["rule_files"][0], "../rules/fraud-sla.rules.yml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_array().expect("tests") {
        for series in case["input_series"].as_array().expect("input_series") {
            let s = series["series"].as_str().unwrap();
            let name = s.split('{').next().unwrap().trim();
            check_known("the rule tests", &BTreeSet::from([name.to_string()]));
        }
        for t in case["alert_rule_test"].as_array().expect("alert_rule_test") {
            let alert = t["alertname"].as_str().unwrap().to_string();
            match t["exp_alerts"].as_array().map(Vec::len) {
                Some(0) | None => quiet.insert(alert),
                Some(_) => fires.insert(alert),
            };
        }
    }
    for alert in ALERTS {
        assert!(fires.contains(*alert), "no test where {alert} fires");
        assert!(quiet.contains(*alert), "no test where {alert} stays quiet");
    }
}

#[test]
fn prometheus_targets_are_compose_services() {
    let compose = compose();
    let prom = service(&compose, "prometheus");
    let config_arg = list(&prom["command"])
        .into_iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(String::from))
        .expect("prometheus --config.file");
    let config_path = host_path(prom, &config_arg);
    assert_eq!(config_path, root().join("deploy/prometheus/prometheus.yml"));
    let config = yaml_file(&config_path);

    // rule_files are relative to the config file, in the container as here.
    for f in config["rule_files"].as_array().expect("rule_files") {
        let f = f.as_str().unwrap();
        assert!(config_path.parent().unwrap().join(f).is_file(), "{f}");
    }
    assert_eq!(config["global"]["scrape_interval"], "15s");

    let fraud = service(&compose, "fraud-sla");
    let listen_port = processor_config()["http"]["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let mut jobs = BTreeMap::new();
    for job in config["scrape_configs"].as_array().expect("scrape_configs") {
        let name = job["job_name"].as_str().unwrap().to_string();
        let targets: Vec<String> = job["static_configs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| list(&c["targets"]))
            .collect();
        jobs.insert(name, (targets, job.clone()));
    }
    let (targets, job) = &jobs["fraud-sla"];
    assert_eq!(targets, &[format!("fraud-sla:{listen_port}")]);
    assert_eq!(job["scrape_interval"], "15s");
    assert_eq!(job["metrics_path"], "/metrics");
    assert!(
        list(&fraud["ports"]).contains(&format!("127.0.0.1:{listen_port}:{listen_port}")),
        "fraud-sla publishes {listen_port}"
    );
    for (targets, _) in jobs.values() {
        for t in targets {
            let (host, _) = endpoint(t);
            assert!(
                host == "localhost" || compose["services"].get(host).is_some(),
                "scrape target {t} is not a compose service"
            );
        }
    }
    let managers = &config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"];
    assert_eq!(list(managers), ["alertmanager:9093"]);
    assert_service_port(&compose, "alertmanager", 9093, "--web.listen-address");
    let am = service(&compose, "alertmanager");
    let am_config = list(&am["command"])
        .into_iter()
        .find_map(|a| a.strip_prefix("--config.file=").map(String::from))
        .expect("alertmanager --config.file");
    assert_eq!(
        host_path(am, &am_config),
        root().join("deploy/prometheus/alertmanager.yml")
    );
}

// ---- docker-compose and the Dockerfile -------------------------------------------------------

fn compose() -> Value {
    yaml_file(&root().join("deploy/docker-compose.yml"))
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

/// A sequence of strings (or a single string) as strings.
fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn env_var(service: &Value, key: &str) -> String {
    match &service["environment"][key] {
        Value::String(s) => s.clone(),
        Value::Null => panic!("environment has no {key}"),
        other => other.to_string(),
    }
}

/// `(source, target)` of each mount of a service.
fn mounts(service: &Value) -> Vec<(String, String)> {
    list(&service["volumes"])
        .iter()
        .map(|m| {
            let mut parts = m.split(':');
            let source = parts.next().unwrap().to_string();
            let target = parts.next().expect("source:target").to_string();
            (source, target)
        })
        .collect()
}

/// The file in the repository that a service sees at `container_path` (through a bind mount).
fn host_path(service: &Value, container_path: &str) -> PathBuf {
    for (source, target) in mounts(service) {
        let rest = if container_path == target {
            Some("")
        } else {
            container_path
                .strip_prefix(&target)
                .and_then(|r| r.strip_prefix('/'))
        };
        if let (Some(rest), true) = (rest, source.starts_with('.')) {
            let base = normalize(&root().join("deploy").join(&source));
            return if rest.is_empty() {
                base
            } else {
                base.join(rest)
            };
        }
    }
    panic!("{container_path} is not bind-mounted from the repository")
}

/// `host:port` or a URL to `(host, port)`.
fn endpoint(s: &str) -> (&str, u16) {
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let s = s.split('/').next().unwrap();
    let s = s.rsplit_once('@').map_or(s, |(_, rest)| rest);
    let (host, port) = s.rsplit_once(':').expect("host:port");
    (host, port.parse().expect("a port"))
}

/// The service exists and listens on its image's default `port` (no flag moves it).
fn assert_service_port(compose: &Value, name: &str, port: u16, flag: &str) {
    let svc = service(compose, name);
    for arg in list(&svc["command"]) {
        if let Some(addr) = arg.strip_prefix(&format!("{flag}=")) {
            assert_eq!(endpoint(addr).1, port, "{name} {arg}");
        }
    }
}

fn processor_config() -> toml::Table {
    read("deploy/compose/fraud-sla.toml")
        .parse()
        .expect("deploy/compose/fraud-sla.toml is TOML")
}

#[test]
fn compose_services_mounts_and_dependencies() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    let expected = [
        "alertmanager",
        "fraud-sla",
        "grafana",
        "kafka",
        "kafka-init",
        "prometheus",
        "redis",
    ];
    assert_eq!(names, BTreeSet::from(expected));
    let volumes = compose["volumes"].as_object().expect("named volumes");
    for (name, svc) in services {
        let image = svc["image"].as_str().unwrap_or("");
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "{name}: pin the image ({image:?})"
        );
        for (source, target) in mounts(svc) {
            assert!(target.starts_with('/'), "{name}: {target}");
            if source.starts_with('.') || source.starts_with('/') {
                let path = root().join("deploy").join(&source);
                assert!(
                    source.starts_with('.') && path.exists(),
                    "{name} mounts {source}, which is not in the repository"
                );
            } else {
                assert!(volumes.contains_key(&source), "{name}: volume {source}");
            }
        }
        let deps: Vec<String> = match &svc["depends_on"] {
            Value::Object(m) => m.keys().cloned().collect(),
            other => list(other),
        };
        for d in deps {
            assert!(names.contains(d.as_str()), "{name} depends on {d}");
        }
    }
    assert_eq!(service(&compose, "kafka")["image"], "apache/kafka:3.8.0");
    let redis = service(&compose, "redis");
    assert!(list(&redis["command"])
        .join(" ")
        .contains("--appendonly yes"));
}

#[test]
fn compose_runs_the_processor_with_a_valid_config() {
    let compose = compose();
    let fraud = service(&compose, "fraud-sla");
    assert_eq!(
        list(&fraud["command"]),
        ["run", "--config", "/etc/fraud-sla/config.toml"]
    );
    let config = host_path(fraud, "/etc/fraud-sla/config.toml");
    assert_eq!(config, root().join("deploy/compose/fraud-sla.toml"));
    let brokers = env_var(fraud, "FRAUD_SLA_KAFKA_BROKERS");
    let redis_url = env_var(fraud, "FRAUD_SLA_REDIS_URL");
    assert_eq!(brokers, "kafka:9092");
    assert_eq!(redis_url, "redis://redis:6379");

    let out = Command::new(env!("CARGO_BIN_EXE_fraud-sla"))
        .args(["check-config", "--config", config.to_str().unwrap()])
        .env("FRAUD_SLA_KAFKA_BROKERS", &brokers)
        .env("FRAUD_SLA_REDIS_URL", &redis_url)
        .env_remove("FRAUD_SLA_HTTP_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "check-config: {}", text(&out));

    // The file says the same as the environment, and listens where Docker can reach it.
    let toml = processor_config();
    assert_eq!(toml["kafka"]["brokers"].as_str(), Some(brokers.as_str()));
    assert_eq!(toml["redis"]["url"].as_str(), Some(redis_url.as_str()));
    assert_eq!(toml["http"]["listen"].as_str(), Some("0.0.0.0:9898"));

    // Host names are services, on the ports they listen on.
    let kafka = service(&compose, "kafka");
    assert!(env_var(kafka, "KAFKA_ADVERTISED_LISTENERS").contains(&format!("://{brokers}")));
    assert_eq!(endpoint(&redis_url), ("redis", 6379));
    let am_url = toml["alertmanager"]["url"].as_str().unwrap();
    assert_eq!(endpoint(am_url), ("alertmanager", 9093));

    // kafka-init creates the topics of the config, the inputs with 4 partitions each.
    let init = list(&service(&compose, "kafka-init")["command"]).join("\n");
    for key in ["alerts_topic", "dispositions_topic"] {
        let topic = toml["kafka"][key].as_str().unwrap();
        let line = format!("--topic {topic} --partitions 4");
        assert!(init.contains(&line), "kafka-init: {line}");
    }
    for key in ["escalations_topic", "deadletter_topic"] {
        let topic = toml["kafka"][key].as_str().unwrap();
        assert!(
            init.contains(&format!("--topic {topic} ")),
            "kafka-init: {topic}"
        );
    }
}

#[test]
fn dockerfile_builds_from_the_repository() {
    let compose = compose();
    let build = &service(&compose, "fraud-sla")["build"];
    let context = normalize(
        &root()
            .join("deploy")
            .join(build["context"].as_str().unwrap()),
    );
    assert_eq!(context, normalize(&root()));
    let dockerfile = context.join(build["dockerfile"].as_str().unwrap());
    let text = std::fs::read_to_string(&dockerfile).expect("the Dockerfile");

    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    let builder = froms[0].split_whitespace().nth(1).unwrap();
    assert!(
        builder.starts_with("rust:1.9") && builder.ends_with("-bookworm"),
        "{builder}"
    );
    assert_eq!(froms[1], "FROM debian:bookworm-slim");
    let runtime = text.split(froms[1]).nth(1).unwrap();
    assert!(runtime.contains("ca-certificates") && runtime.contains("libssl3"));
    for line in text.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(context.join(source).exists(), "COPY {source}: not found");
        }
    }
    let cargo: toml::Table = read("Cargo.toml").parse().unwrap();
    let bin = cargo["bin"][0]["name"].as_str().unwrap();
    assert!(text.contains(&format!("--bin {bin}")));
    assert!(text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")));
    assert!(text.contains("EXPOSE 9898"));
}

#[test]
fn yaml_files_read_the_same_with_pyyaml() {
    let files = [
        "deploy/docker-compose.yml",
        "deploy/prometheus/prometheus.yml",
        RULES,
        RULE_TESTS,
        "deploy/prometheus/alertmanager.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/fraud-sla.yml",
    ];
    // saphyr reads every file in any case (the other tests use it).
    let ours: Vec<Value> = files.iter().map(|f| yaml_file(&root().join(f))).collect();
    let has_pyyaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyyaml {
        eprintln!("PyYAML is not importable; the YAML 1.1 reading is not cross-checked");
        return;
    }
    let script = "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    for (file, ours) in files.iter().zip(ours) {
        let out = Command::new("python3")
            .args(["-c", script, &root().join(file).display().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{file}: {}", text(&out));
        let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            ours, theirs,
            "{file}: saphyr and PyYAML read it differently"
        );
    }
}

// ---- helpers ---------------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Resolves `.` and `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a Prometheus tool in the repository; absent or failing, the test fails.
fn tool(name: &str, args: &[&str]) -> Output {
    let out = Command::new(name)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {name} ({e}); deploy/local/install.sh installs it \
                 (Debian packages prometheus and prometheus-alertmanager)"
            )
        });
    assert!(
        out.status.success(),
        "{name} {}: {}",
        args.join(" "),
        text(&out)
    );
    out
}

// ---- PromQL ----------------------------------------------------------------------------------

/// The values of `job="…"` matchers.
fn job_selectors(expr: &str) -> Vec<String> {
    expr.split("job=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// Grafana variables (`$name`, `${name}`) in an expression.
fn grafana_variables(expr: &str) -> Vec<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| {
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The metric names a PromQL expression selects (see `selected_names`), plus every token that
/// looks like one of our metrics wherever it stands, so a name the lexer misreads is still checked.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = selected_names(expr);
    for prefix in ["fraud_sla_", "process_"] {
        for (at, _) in expr.match_indices(prefix) {
            let before = expr[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let token: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(token);
        }
    }
    names
}

/// The metric names a PromQL expression selects: identifiers outside strings, label matchers and
/// ranges that are not functions, aggregations, keywords or label lists.
fn selected_names(expr: &str) -> BTreeSet<String> {
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "group_left",
        "group_right",
        "Inf",
        "NaN",
        "inf",
        "nan",
    ];
    const LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from + 1;
        let mut quote = None;
        while j < chars.len() {
            match (quote, chars[j]) {
                (Some(_), '\\') => j += 1,
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'' | '`') => quote = Some(chars[j]),
                (None, c) if c == close => return j + 1,
                _ => {}
            }
            j += 1;
        }
        panic!("unbalanced {close} in {expr}")
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            let mut j = i + 1;
            while chars[j] != c {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            i = j + 1;
        } else if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_to(i, '}');
            }
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let call = chars.get(j) == Some(&'(');
            if call && LISTS.contains(&ident.as_str()) {
                i = skip_to(j, ')');
            } else if !call
                && !AGGREGATIONS.contains(&ident.as_str())
                && !KEYWORDS.contains(&ident.as_str())
                && !LISTS.contains(&ident.as_str())
            {
                names.insert(ident);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_skips_functions_labels_and_keywords() {
    let expr = r#"
        histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job="x", le=~"1|up"}[5m])))
          > on (job) group_left () 3 * b_total offset 10m
        unless count without (instance) (c{x="}"}) or label_replace(up, "y", "$1", "", "")
        and topk(10, d) / e[1h:1m] + sum(rate(f[$__rate_interval])) > bool 1e3"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["a_bucket", "b_total", "c", "d", "e", "f", "up"]);
}

/// `(label, op, value)` of a label matcher, the value as written between its quotes.
type Matcher = (String, String, String);

/// Every `{…}` selector of a PromQL expression: the metric name written before it (empty for
/// none) and its `(label, op, value)` matchers. Quoted label names (`{"stage"="x"}`) count as
/// labels; a quoted name without an operator (`{"metric.name"}`) is the metric. Grafana's
/// `${var}` is not a selector. Strings and comments outside selectors are skipped, so a label
/// named in `by (…)`, `label_values(…)` or `label_replace(…)` is no matcher.
fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    // A quoted string starting at `j`: its content (escapes kept) and the index after it.
    let string = |j: usize| -> (String, usize) {
        let q = chars[j];
        let mut k = j + 1;
        let mut out = String::new();
        while k < chars.len() && chars[k] != q {
            if chars[k] == '\\' && q != '`' {
                out.push(chars[k]);
                k += 1;
            }
            out.push(chars[k]);
            k += 1;
        }
        assert!(k < chars.len(), "unterminated string in {expr}");
        (out, k + 1)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if "\"'`".contains(c) {
            i = string(i).1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '{' && i > 0 && chars[i - 1] == '$' {
            while i < chars.len() && chars[i] != '}' {
                i += 1;
            }
        } else if c == '{' {
            let mut b = i;
            while b > 0 && chars[b - 1].is_whitespace() {
                b -= 1;
            }
            let mut a = b;
            while a > 0 && ident(chars[a - 1]) {
                a -= 1;
            }
            let mut metric: String = chars[a..b].iter().collect();
            let mut matchers = Vec::new();
            let mut j = skip_ws(i + 1);
            while j < chars.len() && chars[j] != '}' {
                let (label, after) = if "\"'`".contains(chars[j]) {
                    string(j)
                } else {
                    let start = j;
                    while j < chars.len() && ident(chars[j]) {
                        j += 1;
                    }
                    assert!(j > start, "cannot read the selector at {i} of {expr}");
                    (chars[start..j].iter().collect(), j)
                };
                j = skip_ws(after);
                let op: String = match (chars.get(j), chars.get(j + 1)) {
                    (Some('=' | '!'), Some('~')) | (Some('!'), Some('=')) => {
                        chars[j..j + 2].iter().collect()
                    }
                    (Some('='), _) => "=".into(),
                    _ => {
                        metric = label; // {"metric.name", …}
                        j = skip_ws(j);
                        if chars.get(j) == Some(&',') {
                            j = skip_ws(j + 1);
                        }
                        continue;
                    }
                };
                j = skip_ws(j + op.len());
                assert!(
                    j < chars.len() && "\"'`".contains(chars[j]),
                    "{label}{op}: no quoted value in {expr}"
                );
                let (value, after) = string(j);
                matchers.push((label, op, value));
                j = skip_ws(after);
                if chars.get(j) == Some(&',') {
                    j = skip_ws(j + 1);
                }
            }
            out.push((metric, matchers));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn selectors_find_every_stage_matcher() {
    let m = |l: &str, op: &str, v: &str| (l.to_string(), op.to_string(), v.to_string());
    let expr = r#"sum by (stage) (rate(a_total{job="x", stage="visit"}[5m]))
        / on (stage) b {stage =~ 'meet|feedback' , le!="1"} unless c{"stage"!~"sign_for"}
        or label_replace(d{x="}{"}, "stage", "$1", "y", "(.*)") + e{stage=~"$stage"}[${__range}]
        and {"f.g", stage!="x"} # h{stage="visit"}
        + label_values(i, stage)"#;
    let got = selectors(expr);
    let expected = vec![
        (
            "a_total".to_string(),
            vec![m("job", "=", "x"), m("stage", "=", "visit")],
        ),
        (
            "b".to_string(),
            vec![m("stage", "=~", "meet|feedback"), m("le", "!=", "1")],
        ),
        ("c".to_string(), vec![m("stage", "!~", "sign_for")]),
        ("d".to_string(), vec![m("x", "=", "}{")]),
        ("e".to_string(), vec![m("stage", "=~", "$stage")]),
        ("f.g".to_string(), vec![m("stage", "!=", "x")]),
    ];
    assert_eq!(got, expected);
    assert!(is_stage_variable("$stage") && is_stage_variable("${stage:regex}"));
    for not in [
        "visit",
        "$stage|visit",
        "${stage:regex}|visit",
        "$stages",
        ".*",
    ] {
        assert!(!is_stage_variable(not), "{not}");
    }
}

// ---- YAML ------------------------------------------------------------------------------------

/// The deployment files read with saphyr (YAML 1.2) into JSON values.
///
/// Other readers of these files follow YAML 1.1 (PyYAML, go-yaml v2 in promtool and amtool), so
/// beyond what YAML itself rejects (syntax errors, duplicate keys), `parse` rejects what such a
/// reader could take differently: plain scalars that YAML 1.1 resolves to another value (`yes`,
/// `on`, `1:30`, `0755`, `1_000`, `1e3`); the files quote them. It also rejects what the files
/// do not use and a reader of them should not have to follow: anchors and aliases, tags, `>`
/// folded scalars, more than one document.
mod yaml {
    use saphyr::{LoadableYamlNode, Scalar, Yaml};
    use saphyr_parser::{Event, Parser, ScalarStyle};
    use serde_json::{Map, Number, Value};

    pub(super) fn parse(text: &str) -> Result<Value, String> {
        lint(text)?;
        let mut docs = Yaml::load_from_str(text).map_err(|e| e.to_string())?;
        match docs.len() {
            0 => Ok(Value::Null),
            1 => json(docs.remove(0)),
            n => Err(format!("{n} documents, one expected")),
        }
    }

    /// Rejects, event by event, what the files keep out (see the module doc).
    fn lint(text: &str) -> Result<(), String> {
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| e.to_string())?;
            let problem = match event {
                Event::Alias(_) => "an alias",
                Event::Scalar(_, _, anchor, _)
                | Event::SequenceStart(anchor, _)
                | Event::MappingStart(anchor, _)
                    if anchor > 0 =>
                {
                    "an anchor"
                }
                Event::Scalar(_, _, _, Some(_))
                | Event::SequenceStart(_, Some(_))
                | Event::MappingStart(_, Some(_)) => "a tag",
                Event::Scalar(_, ScalarStyle::Folded, _, _) => "a folded scalar",
                Event::Scalar(s, ScalarStyle::Plain, _, _) if yaml11_differs(&s) => {
                    return Err(format!(
                        "line {}: {s} reads differently in YAML 1.1; quote it",
                        span.start.line()
                    ));
                }
                _ => continue,
            };
            return Err(format!(
                "line {}: {problem}, which these files do not use",
                span.start.line()
            ));
        }
        Ok(())
    }

    /// Whether YAML 1.1 resolves the plain scalar `s` to another value than YAML 1.2 does:
    /// booleans beyond true/false, sexagesimal and leading-zero (octal) numbers, digit
    /// separators, binary and `0o` octal, exponents without a point or a sign, timestamps.
    fn yaml11_differs(s: &str) -> bool {
        let lower = s.to_ascii_lowercase();
        if ["yes", "no", "on", "off"].contains(&lower.as_str()) {
            return true;
        }
        let unsigned = lower.trim_start_matches(['-', '+']);
        if !unsigned.starts_with(|c: char| c.is_ascii_digit()) {
            return false;
        }
        let only = |allowed: &str| {
            unsigned
                .chars()
                .all(|c| c.is_ascii_digit() || allowed.contains(c))
        };
        // 2026-01-01, 2026-01-01T10:00:00Z: a date or time in YAML 1.1, a string in 1.2.
        let b = s.as_bytes();
        if b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
            return true;
        }
        match unsigned.split_once('e') {
            // 1e3 is a float in YAML 1.2 only, 1.0e3 as well; 1.0e+3 in both.
            Some((mantissa, exponent)) if only(".e+-") => {
                !(mantissa.contains('.') && exponent.starts_with(['+', '-']))
            }
            _ => {
                // 1:30, 1_000, 0755, 09, 1_000.5; 0b1, 0o7.
                (only("_:")
                    && unsigned.len() > 1
                    && (unsigned.contains([':', '_']) || unsigned.starts_with('0')))
                    || (only("_.") && unsigned.contains('_'))
                    || unsigned.starts_with("0b")
                    || unsigned.starts_with("0o")
            }
        }
    }

    fn json(node: Yaml<'_>) -> Result<Value, String> {
        Ok(match node {
            Yaml::Value(Scalar::Null) => Value::Null,
            Yaml::Value(Scalar::Boolean(b)) => Value::Bool(b),
            Yaml::Value(Scalar::Integer(i)) => Value::Number(i.into()),
            Yaml::Value(Scalar::FloatingPoint(f)) => Number::from_f64(f.into_inner())
                .map(Value::Number)
                .ok_or(format!("{f} has no JSON number"))?,
            Yaml::Value(Scalar::String(s)) => Value::String(s.into_owned()),
            Yaml::Sequence(items) => {
                Value::Array(items.into_iter().map(json).collect::<Result<_, _>>()?)
            }
            Yaml::Mapping(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    // As JSON (and PyYAML through json.dumps) writes a non-string key.
                    let key = match json(key)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    if map.insert(key.clone(), json(value)?).is_some() {
                        return Err(format!("duplicate key {key}"));
                    }
                }
                Value::Object(map)
            }
            other => return Err(format!("unexpected node {other:?}")),
        })
    }
}

#[test]
fn the_yaml_reader_reads_the_files_and_rejects_what_they_keep_out() {
    let doc = r#"
# comment
a: 1
b: "x: y # not a comment"   # a comment
c:
- one
- k: v
  l: [1, 'it''s', "q\"", {m: n}]
d:
  e: |
    line 1
      line 2
  f: |-
    kept
  g: 0.5
  h: ~
  i: http://host:9090/path#frag
  j: [0, 0.25, 10, 1.0e+3, v1.2, 5m, "2026-01-01", 127.0.0.1:9090]
"#;
    let v = yaml::parse(doc).unwrap();
    let expected = serde_json::json!({
        "a": 1,
        "b": "x: y # not a comment",
        "c": ["one", {"k": "v", "l": [1, "it's", "q\"", {"m": "n"}]}],
        "d": {"e": "line 1\n  line 2\n", "f": "kept", "g": 0.5, "h": null,
              "i": "http://host:9090/path#frag",
              "j": [0, 0.25, 10, 1000.0, "v1.2", "5m", "2026-01-01", "127.0.0.1:9090"]},
    });
    assert_eq!(v, expected);
    for bad in [
        "a: 1\na: 2\n",
        "a: yes\n",
        "ports: [80:80]\n",
        "mode: 0755\n",
        "n: 1_000\n",
        "x: 1e3\n",
        "day: 2026-01-01\n",
        "a: >\n  folded\n",
        "a: b\n   c: d\n",
        "a: &x 1\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: 1\n---\nb: 2\n",
    ] {
        assert!(yaml::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}
