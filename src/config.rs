//! Configuration: embedded defaults, then the TOML file, then the environment (docs/contract.md §6).
//!
//! Parsing is strict (`deny_unknown_fields`); every error names the key it is about.

use serde::{de, Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::domain::policy::{Ladder, Policy};
use crate::domain::validate::Limits;
use crate::domain::Millis;

/// The environment variables that may carry secrets (docs/contract.md §6).
pub const ENV_REDIS_URL: &str = "FRAUD_SLA_REDIS_URL";
pub const ENV_KAFKA_BROKERS: &str = "FRAUD_SLA_KAFKA_BROKERS";
pub const ENV_HTTP_TOKEN: &str = "FRAUD_SLA_HTTP_TOKEN";
/// The Kafka SASL password (`[kafka.client]."sasl.password"`), so it need not be in the file.
pub const ENV_KAFKA_SASL_PASSWORD: &str = "FRAUD_SLA_KAFKA_SASL_PASSWORD";
/// Alertmanager credentials, so they need not be in the file.
pub const ENV_ALERTMANAGER_PASSWORD: &str = "FRAUD_SLA_ALERTMANAGER_PASSWORD";
pub const ENV_ALERTMANAGER_TOKEN: &str = "FRAUD_SLA_ALERTMANAGER_TOKEN";

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file is not valid TOML: {0}")]
    Syntax(String),
    #[error("config key {key}: {problem}")]
    Key { key: String, problem: String },
}

impl ConfigError {
    fn key(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A duration in humantime syntax (`90s`, `15m`, `1h30m`, `7d`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn millis(self) -> Millis {
        self.0.as_millis().min(i64::MAX as u128) as Millis
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| de::Error::custom(format!("{s:?} is not a duration ({e})")))
    }
}

/// The whole file. Every section is optional; missing keys take the docs/contract.md §6 defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub redis: RedisConfig,
    pub http: HttpConfig,
    pub sla: SlaConfig,
    /// Optional second sink: every escalation also goes to Alertmanager.
    pub alertmanager: Option<AlertmanagerConfig>,
}

/// `[alertmanager]`: where and how escalations are posted as alerts (v2 API).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`; alerts go to `<url>/api/v2/alerts`.
    pub url: String,
    /// Basic auth; the password may come from `FRAUD_SLA_ALERTMANAGER_PASSWORD`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Bearer token; may come from `FRAUD_SLA_ALERTMANAGER_TOKEN`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// How often firing breaches are posted again, so Alertmanager keeps them firing (it
    /// resolves an alert not re-posted within its `resolve_timeout`, 5 m by default).
    #[serde(default = "AlertmanagerConfig::default_resend_every")]
    pub resend_every: HumanDuration,
    /// Timeout of one POST.
    #[serde(default = "AlertmanagerConfig::default_timeout")]
    pub timeout: HumanDuration,
}

impl AlertmanagerConfig {
    fn default_resend_every() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
    fn default_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }
}

impl fmt::Debug for AlertmanagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field("resend_every", &self.resend_every)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers; `FRAUD_SLA_KAFKA_BROKERS` overrides.
    pub brokers: String,
    /// One group for both input topics, so co-partitioned partitions land on the same member.
    pub group_id: String,
    pub alerts_topic: String,
    pub dispositions_topic: String,
    pub escalations_topic: String,
    pub deadletter_topic: String,
    /// Passed verbatim to librdkafka (security.protocol, sasl.*, ssl.*, timeouts…).
    #[serde(deserialize_with = "scalar_map")]
    pub client: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "fraud-sla".into(),
            alerts_topic: "fraud.alerts".into(),
            dispositions_topic: "fraud.dispositions".into(),
            escalations_topic: "fraud.sla.escalations".into(),
            deadletter_topic: "fraud.sla.deadletter".into(),
            client: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client: BTreeMap<_, _> = self
            .client
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if is_secret_key(k) { "***" } else { v.as_str() },
                )
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("alerts_topic", &self.alerts_topic)
            .field("dispositions_topic", &self.dispositions_topic)
            .field("escalations_topic", &self.escalations_topic)
            .field("deadletter_topic", &self.deadletter_topic)
            .field("client", &client)
            .finish()
    }
}

/// librdkafka takes every property as a string; TOML numbers and booleans are accepted too.
fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// librdkafka properties whose values are secrets and are never printed.
pub fn is_secret_key(key: &str) -> bool {
    key.contains("password")
        || key.contains("secret")
        || key.ends_with(".pem")
        || key.contains("key")
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://`, `rediss://`, `redis://user:pass@host`; `FRAUD_SLA_REDIS_URL` overrides.
    pub url: String,
    /// Prefix of every key; the hash tag is `{<prefix>:<partition>}`.
    pub key_prefix: String,
    /// Talk Redis Cluster protocol (`url` is then one seed node).
    pub cluster: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "fsla".into(),
            cluster: false,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map(|(u, _)| u).unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz` and `/v1`.
    pub listen: String,
    /// Optional second address serving only `/metrics`, e.g. on an internal network.
    pub metrics_listen: Option<String>,
    /// Bearer token for `/v1/*`; only from `FRAUD_SLA_HTTP_TOKEN`, never from the file.
    #[serde(skip)]
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9898".into(),
            metrics_listen: None,
            token: None,
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Keys that may differ per risk class (`[sla.risk.<risk>]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderOverride {
    pub visit_within: Option<HumanDuration>,
    pub meet_within: Option<HumanDuration>,
    pub feedback_within: Option<HumanDuration>,
    pub warn_before: Option<HumanDuration>,
    pub escalate_after: Option<Vec<HumanDuration>>,
    pub notify: Option<Vec<Vec<String>>>,
    pub warn_notify: Option<Vec<String>>,
    pub grace: Option<HumanDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskOverrides {
    pub high: Option<LadderOverride>,
    pub medium: Option<LadderOverride>,
    pub low: Option<LadderOverride>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    pub visit_within: HumanDuration,
    pub meet_within: HumanDuration,
    pub feedback_within: HumanDuration,
    pub warn_before: HumanDuration,
    pub escalate_after: Vec<HumanDuration>,
    pub notify: Vec<Vec<String>>,
    pub warn_notify: Vec<String>,
    pub grace: HumanDuration,
    pub retention: HumanDuration,
    pub max_clock_skew: HumanDuration,
    pub max_message_bytes: usize,
    pub risk: RiskOverrides,
}

impl Default for SlaConfig {
    fn default() -> Self {
        let mins = |m: u64| HumanDuration(Duration::from_secs(m * 60));
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        SlaConfig {
            visit_within: mins(60),
            meet_within: mins(120),
            feedback_within: mins(360),
            warn_before: mins(15),
            escalate_after: vec![mins(0), mins(30), mins(120)],
            notify: vec![
                names(&["station_duty_officer"]),
                names(&["station_chief"]),
                names(&["sub_bureau_command"]),
            ],
            warn_notify: names(&["assigned_officer"]),
            grace: mins(0),
            retention: mins(7 * 24 * 60),
            max_clock_skew: mins(5),
            max_message_bytes: 65536,
            risk: RiskOverrides::default(),
        }
    }
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies the environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let mut config = Config::parse(&text)?;
        config.apply_env(|k| std::env::var(k).ok());
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text, naming the offending key on error.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let problem = e.inner().message().to_string();
            ConfigError::key(
                if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                problem,
            )
        })
    }

    /// Secrets from the environment override the file (docs/contract.md §6).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(url) = var(ENV_REDIS_URL).filter(|v| !v.is_empty()) {
            self.redis.url = url;
        }
        if let Some(brokers) = var(ENV_KAFKA_BROKERS).filter(|v| !v.is_empty()) {
            self.kafka.brokers = brokers;
        }
        if let Some(p) = var(ENV_KAFKA_SASL_PASSWORD).filter(|v| !v.is_empty()) {
            self.kafka.client.insert("sasl.password".into(), p);
        }
        self.http.token = var(ENV_HTTP_TOKEN).filter(|v| !v.is_empty());
        if let Some(am) = &mut self.alertmanager {
            if let Some(p) = var(ENV_ALERTMANAGER_PASSWORD).filter(|v| !v.is_empty()) {
                am.password = Some(p);
            }
            if let Some(t) = var(ENV_ALERTMANAGER_TOKEN).filter(|v| !v.is_empty()) {
                am.bearer_token = Some(t);
            }
        }
    }

    /// Checks what the types cannot: ranges, lengths, addresses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        for (key, value) in [
            ("kafka.brokers", &k.brokers),
            ("kafka.group_id", &k.group_id),
            ("kafka.alerts_topic", &k.alerts_topic),
            ("kafka.dispositions_topic", &k.dispositions_topic),
            ("kafka.escalations_topic", &k.escalations_topic),
            ("kafka.deadletter_topic", &k.deadletter_topic),
            ("redis.key_prefix", &self.redis.key_prefix),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::key(key, "must not be empty"));
            }
        }
        if k.alerts_topic == k.dispositions_topic {
            return Err(ConfigError::key(
                "kafka.dispositions_topic",
                "must differ from kafka.alerts_topic",
            ));
        }
        for key in k.client.keys() {
            if ["bootstrap.servers", "group.id", "enable.auto.offset.store"].contains(&key.as_str())
            {
                return Err(ConfigError::key(
                    format!("kafka.client.\"{key}\""),
                    "is set by fraud-sla itself",
                ));
            }
        }
        if self.redis.key_prefix.contains(['{', '}']) {
            return Err(ConfigError::key(
                "redis.key_prefix",
                "must not contain '{' or '}' (they form the hash tag)",
            ));
        }
        redis::parse_redis_url(&self.redis.url)
            .filter(|u| matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix"))
            .ok_or_else(|| {
                ConfigError::key(
                    "redis.url",
                    format!(
                        "{:?} is not a redis:// or rediss:// URL",
                        redact_url(&self.redis.url)
                    ),
                )
            })?;
        let listen = [
            ("http.listen", Some(&self.http.listen)),
            ("http.metrics_listen", self.http.metrics_listen.as_ref()),
        ];
        for (key, addr) in listen {
            let Some(addr) = addr else { continue };
            addr.parse::<SocketAddr>()
                .map_err(|e| ConfigError::key(key, format!("{addr:?} is not an address ({e})")))?;
        }
        if self.http.metrics_listen.as_ref() == Some(&self.http.listen) {
            return Err(ConfigError::key(
                "http.metrics_listen",
                "must differ from http.listen",
            ));
        }
        let s = &self.sla;
        if s.max_message_bytes == 0 {
            return Err(ConfigError::key(
                "sla.max_message_bytes",
                "must be greater than 0",
            ));
        }
        if s.retention.0.is_zero() {
            return Err(ConfigError::key("sla.retention", "must be greater than 0s"));
        }
        for (risk, o) in [
            ("", None),
            ("high", s.risk.high.as_ref()),
            ("medium", s.risk.medium.as_ref()),
            ("low", s.risk.low.as_ref()),
        ] {
            if risk.is_empty() || o.is_some() {
                let ladder = self.ladder_with(o);
                let prefix = if risk.is_empty() {
                    "sla".to_string()
                } else {
                    format!("sla.risk.{risk}")
                };
                check_ladder(&prefix, &ladder)?;
            }
        }
        if let Some(am) = &self.alertmanager {
            if !(am.url.starts_with("http://") || am.url.starts_with("https://"))
                || am.url.len() < 10
            {
                return Err(ConfigError::key(
                    "alertmanager.url",
                    format!("{:?} is not an http(s) URL", redact_url(&am.url)),
                ));
            }
            if am.password.is_some() && am.username.is_none() {
                return Err(ConfigError::key(
                    "alertmanager.username",
                    "required with a password",
                ));
            }
            if am.bearer_token.is_some() && am.username.is_some() {
                return Err(ConfigError::key(
                    "alertmanager.bearer_token",
                    "use basic auth or a bearer token, not both",
                ));
            }
            for (key, d) in [
                ("alertmanager.resend_every", am.resend_every),
                ("alertmanager.timeout", am.timeout),
            ] {
                if d.0.is_zero() {
                    return Err(ConfigError::key(key, "must be greater than 0s"));
                }
            }
        }
        Ok(())
    }

    fn ladder_with(&self, o: Option<&LadderOverride>) -> Ladder {
        let s = &self.sla;
        let o = o.cloned().unwrap_or_default();
        Ladder {
            within: [
                o.visit_within.unwrap_or(s.visit_within).millis(),
                o.meet_within.unwrap_or(s.meet_within).millis(),
                o.feedback_within.unwrap_or(s.feedback_within).millis(),
            ],
            warn_before: o.warn_before.unwrap_or(s.warn_before).millis(),
            escalate_after: o
                .escalate_after
                .unwrap_or_else(|| s.escalate_after.clone())
                .iter()
                .map(|d| d.millis())
                .collect(),
            notify: o.notify.unwrap_or_else(|| s.notify.clone()),
            warn_notify: o.warn_notify.unwrap_or_else(|| s.warn_notify.clone()),
            grace: o.grace.unwrap_or(s.grace).millis(),
        }
    }

    /// The effective policy, overrides applied.
    pub fn policy(&self) -> Policy {
        let r = &self.sla.risk;
        Policy {
            high: self.ladder_with(r.high.as_ref()),
            medium: self.ladder_with(r.medium.as_ref()),
            low: self.ladder_with(r.low.as_ref()),
            retention: self.sla.retention.millis(),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.sla.max_message_bytes,
            max_clock_skew_ms: self.sla.max_clock_skew.millis(),
        }
    }
}

fn check_ladder(prefix: &str, l: &Ladder) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    for (name, within) in ["visit_within", "meet_within", "feedback_within"]
        .iter()
        .zip(l.within)
    {
        if within <= 0 {
            return Err(ConfigError::key(key(name), "must be greater than 0s"));
        }
    }
    // Levels are numbered 1..=255 in escalation ids and metrics; an empty ladder only warns.
    if l.escalate_after.len() > usize::from(u8::MAX) {
        return Err(ConfigError::key(
            key("escalate_after"),
            "has more than 255 levels",
        ));
    }
    // Equal times page two levels together; a later level due before an earlier one would
    // wait for it (levels fire in order), so its time would mean nothing.
    if l.escalate_after.windows(2).any(|w| w[1] < w[0]) {
        return Err(ConfigError::key(
            key("escalate_after"),
            "must not decrease (each level fires at or after the one before)",
        ));
    }
    if l.notify.len() != l.escalate_after.len() {
        return Err(ConfigError::key(
            key("notify"),
            format!(
                "has {} levels but escalate_after has {}; give one list per level",
                l.notify.len(),
                l.escalate_after.len()
            ),
        ));
    }
    if l.notify
        .iter()
        .chain(std::iter::once(&l.warn_notify))
        .flatten()
        .any(|n| n.trim().is_empty())
    {
        return Err(ConfigError::key(key("notify"), "names must not be empty"));
    }
    // `warn_before` may reach back to or before `issued_at` (docs/contract.md §10.1): the warning is
    // then due when the alert is processed, and fires if its deadline has not passed.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Config::parse(text).and_then(|c| c.validate().map(|_| c)) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_file_gives_the_contract_defaults() {
        let c = Config::parse("").unwrap();
        c.validate().unwrap();
        assert_eq!(c.kafka.alerts_topic, "fraud.alerts");
        assert_eq!(c.kafka.escalations_topic, "fraud.sla.escalations");
        assert_eq!(c.policy(), Policy::default());
        assert_eq!(
            c.limits(),
            Limits {
                max_message_bytes: 65536,
                max_clock_skew_ms: 300_000
            }
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err("[sla]\nvisti_within = \"1h\"\n");
        assert!(e.contains("sla") && e.contains("visti_within"), "{e}");
        let e = err("[kafak]\n");
        assert!(e.contains("kafak"), "{e}");
        let e = err("[sla.risk.urgent]\nvisit_within = \"1h\"\n");
        assert!(e.contains("sla.risk") && e.contains("urgent"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = err("[sla]\nvisit_within = \"1x\"\n");
        assert!(e.starts_with("config key sla.visit_within:"), "{e}");
        assert!(e.contains("\"1x\""), "{e}");
        let e = err("[sla]\nescalate_after = [\"30m\", \"10m\", \"2h\"]\n");
        assert!(e.starts_with("config key sla.escalate_after:"), "{e}");
        let e = err("[sla]\nnotify = [[\"a\"]]\n");
        assert!(e.starts_with("config key sla.notify:"), "{e}");
        let e = err("[http]\nlisten = \"nowhere\"\n");
        assert!(e.starts_with("config key http.listen:"), "{e}");
        let e = err("[redis]\nurl = \"http://x\"\n");
        assert!(e.starts_with("config key redis.url:"), "{e}");
        let e = err("[sla]\nmax_message_bytes = -1\n");
        assert!(e.contains("sla.max_message_bytes"), "{e}");
        let e = err("[kafka]\nalerts_topic = \"\"\n");
        assert!(e.starts_with("config key kafka.alerts_topic:"), "{e}");
    }

    #[test]
    fn policies_the_contract_allows_are_accepted() {
        for text in [
            // The case: a 15 m visit with the global 15 m warning lead.
            "[sla.risk.high]\nvisit_within = \"15m\"\n",
            // A lead longer than a stage: the warning is due before issued_at.
            "[sla]\nwarn_before = \"3h\"\n",
            // Two levels paged together.
            "[sla]\nescalate_after = [\"0s\", \"0s\", \"1h\"]\n",
            // Warnings only.
            "[sla]\nescalate_after = []\nnotify = []\n",
        ] {
            let c = Config::parse(text).unwrap();
            c.validate()
                .unwrap_or_else(|e| panic!("{text:?} is valid: {e}"));
        }
        let e = err("[sla]\nescalate_after = [\"1h\", \"30m\"]\nnotify = [[\"a\"], [\"b\"]]\n");
        assert!(e.starts_with("config key sla.escalate_after:"), "{e}");
    }

    #[test]
    fn risk_overrides_change_only_their_risk() {
        let c = Config::parse("[sla.risk.high]\nvisit_within = \"30m\"\n").unwrap();
        c.validate().unwrap();
        let p = c.policy();
        assert_eq!(p.high.within, [30 * 60_000, 2 * 3_600_000, 6 * 3_600_000]);
        assert_eq!(p.medium, Policy::default().medium);
    }

    #[test]
    fn environment_overrides_secrets_and_debug_never_prints_them() {
        let mut c = Config::parse(
            "[kafka.client]\n\"sasl.password\" = \"kpass\"\n\"session.timeout.ms\" = 6000\n",
        )
        .unwrap();
        c.apply_env(|k| match k {
            ENV_REDIS_URL => Some("redis://app:rpass@10.0.0.1:6379".into()),
            ENV_KAFKA_BROKERS => Some("k1:9092,k2:9092".into()),
            ENV_HTTP_TOKEN => Some("tok".into()),
            ENV_KAFKA_SASL_PASSWORD => Some("envkpass".into()),
            _ => None,
        });
        c.validate().unwrap();
        assert_eq!(c.kafka.client["sasl.password"], "envkpass");
        assert_eq!(c.redis.url, "redis://app:rpass@10.0.0.1:6379");
        assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(c.kafka.client["session.timeout.ms"], "6000");
        assert_eq!(c.http.token.as_deref(), Some("tok"));
        let shown = format!("{c:?}");
        for secret in ["kpass", "rpass", "tok\""] {
            assert!(!shown.contains(secret), "{secret} printed in {shown}");
        }
    }

    #[test]
    fn shipped_config_files_load() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let c = Config::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                c.validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "config/default.toml and config/demo.toml are shipped"
        );
    }

    #[test]
    fn default_toml_is_the_contract_policy() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let c = Config::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(c.policy().medium, Policy::default().medium);
        assert_eq!(c.policy().low, Policy::default().low);
    }
}
