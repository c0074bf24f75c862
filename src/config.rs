//! Configuration: embedded defaults, then the TOML file, then the environment (docs/contract.md §6).
//!
//! Parsing is strict (`deny_unknown_fields`); every error names the key it is about.

use serde::{de, Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::domain::policy::{Ladder, Ladders, Policy, StageRule};
use crate::domain::validate::Limits;
use crate::domain::{DispositionKind, Millis, Risk, Stage};

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

    /// Names the environment variable a key's value came from, when it did: the file may not
    /// even hold the key.
    fn naming_env(self, from_env: &[(&str, &str)]) -> ConfigError {
        match self {
            ConfigError::Key { key, problem } => match from_env.iter().find(|(k, _)| *k == key) {
                Some((_, var)) => ConfigError::key(format!("{key} (from {var})"), problem),
                None => ConfigError::Key { key, problem },
            },
            other => other,
        }
    }
}

/// A duration in humantime syntax (`90s`, `15m`, `1h30m`, `7d`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Whole milliseconds, rounded up: a duration under a millisecond (`"500us"`) is not zero,
    /// which would mean "off" for `warn_before`.
    pub fn millis(self) -> Millis {
        // `parse_duration` bounds it far below `i64::MAX` milliseconds.
        self.0.as_nanos().div_ceil(1_000_000) as Millis
    }
}

/// The longest duration a key takes: 100 of humantime's years (365.25 days each). Deadlines
/// are `issued_at` plus durations, in milliseconds: without a bound, `"300000000y"` would
/// overflow them into the past and every clock would be due at once.
const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// A duration in humantime syntax, at most [`MAX_DURATION`]; the problem, quoting `s`, if not.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration ({e})"))?;
    if d > MAX_DURATION {
        return Err(format!("{s:?} is longer than 100 years"));
    }
    Ok(d)
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
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(de::Error::custom)
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
    pub display: DisplayConfig,
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

/// librdkafka takes every property as a string; TOML numbers and booleans are accepted too. A
/// property may be written with its name quoted (`"security.protocol" = "SSL"`) or bare
/// (`security.protocol = "SSL"`, which TOML reads as a table `security` with a key `protocol`):
/// both name `security.protocol`.
fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        S(String),
        I(i64),
        F(f64),
        B(bool),
        Table(BTreeMap<String, Value>),
    }
    fn flatten(
        prefix: &str,
        table: BTreeMap<String, Value>,
        out: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            let v = match v {
                Value::Table(t) => {
                    flatten(&key, t, out)?;
                    continue;
                }
                Value::S(s) => s,
                Value::I(i) => i.to_string(),
                Value::F(f) => f.to_string(),
                Value::B(b) => b.to_string(),
            };
            if out.contains_key(&key) {
                return Err(format!("\"{key}\" is given twice"));
            }
            out.insert(key, v);
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    flatten("", BTreeMap::<String, Value>::deserialize(d)?, &mut out)
        .map_err(serde::de::Error::custom)?;
    Ok(out)
}

/// Where a TOML syntax error is, and what it is, without the line itself: the line may hold a
/// secret (a Redis URL with its password), and the error reaches the log and `/readyz`.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let problem = e.message().trim_end();
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return problem.to_owned();
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {problem}")
}

/// Whether the value of config key `key` may be a secret: its error must not quote it.
fn may_hold_secret(key: &str) -> bool {
    is_secret_key(key) || key.contains("token") || key.ends_with("url")
}

/// `problem` with what serde quotes of the value (between backticks) replaced by `***`.
fn redact_quoted(problem: &str) -> String {
    problem
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 1 { "***" } else { part })
        .collect::<Vec<_>>()
        .join("`")
}

/// librdkafka properties whose values are secrets and are never printed
/// (`sasl.oauthbearer.config` holds a client secret, `principal=… clientSecret=…`).
pub fn is_secret_key(key: &str) -> bool {
    key.contains("password")
        || key.contains("secret")
        || key.ends_with(".pem")
        || key.contains("key")
        || key.contains("oauthbearer.config")
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

/// A URL as it may be shown: `redis://user:secret@host` → `redis://user:***@host`, and the
/// value of a query parameter that may be a secret (`redis+unix:///r.sock?pass=…`) → `***`.
/// What is not a URL with a host or a socket path is shown as `***` entirely: a mistyped URL
/// (`redis:/u:secret@h`) may hold a password where no parser looks for one.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "***".to_owned();
    };
    let socket = matches!(u.scheme(), "unix" | "redis+unix") && u.path().starts_with('/');
    if u.host_str().is_none_or(str::is_empty) && !socket {
        return "***".to_owned();
    }
    if u.password().is_some() {
        // Cannot fail: the URL has a host.
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let name = k.to_ascii_lowercase();
                let secret = name == "pass" || name.contains("token") || is_secret_key(&name);
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
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
    /// Scoped tokens (docs/contract.md §10.4): a TOML file of `[[token]]` entries with `sha256`,
    /// `name` and `jurisdictions` (prefixes).
    pub tokens_file: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9898".into(),
            metrics_listen: None,
            token: None,
            tokens_file: None,
        }
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tokens_file", &self.tokens_file)
            .finish()
    }
}

/// One `[[token]]` of `[http] tokens_file`: a station's token, by its hash, and the
/// jurisdiction prefixes it may see.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopedToken {
    /// SHA-256 of the token: the file never holds a token itself.
    pub sha256: [u8; 32],
    pub name: String,
    pub jurisdictions: Vec<String>,
}

impl fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedToken")
            .field("name", &self.name)
            .field("jurisdictions", &self.jurisdictions)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    sha256: String,
    name: String,
    jurisdictions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

impl HttpConfig {
    /// The scoped tokens of `tokens_file` (none without one), naming the entry and field of any
    /// problem.
    pub fn scoped_tokens(&self) -> Result<Vec<ScopedToken>, ConfigError> {
        let Some(path) = &self.tokens_file else {
            return Ok(Vec::new());
        };
        let bad =
            |problem: String| ConfigError::key("http.tokens_file", format!("{path}: {problem}"));
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
        let file: TokensFile = toml::from_str(&text).map_err(|e| bad(e.message().to_owned()))?;
        let mut out: Vec<ScopedToken> = Vec::with_capacity(file.token.len());
        for (i, t) in file.token.into_iter().enumerate() {
            let at = |field: &str, problem: &str| bad(format!("token[{i}].{field}: {problem}"));
            let sha256 = decode_sha256(&t.sha256)
                .ok_or_else(|| at("sha256", "must be 64 hex digits (the SHA-256 of the token)"))?;
            if t.name.trim().is_empty() {
                return Err(at("name", "must not be empty"));
            }
            if t.jurisdictions.is_empty() || t.jurisdictions.iter().any(|j| j.trim().is_empty()) {
                return Err(at(
                    "jurisdictions",
                    "must list at least one non-empty jurisdiction prefix",
                ));
            }
            if out.iter().any(|o| o.sha256 == sha256) {
                return Err(at("sha256", "is the same token as an earlier entry"));
            }
            out.push(ScopedToken {
                sha256,
                name: t.name,
                jurisdictions: t.jurisdictions,
            });
        }
        Ok(out)
    }
}

fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Keys that may differ per risk class (`[sla.risk.<risk>]`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LadderOverride {
    /// The stages this risk requires, a subset of `sla.stages` (docs/contract.md §10.1).
    pub stages: Option<Vec<String>>,
    pub warn_before: Option<HumanDuration>,
    pub escalate_after: Option<Vec<HumanDuration>>,
    pub notify: Option<Vec<Vec<String>>>,
    pub warn_notify: Option<Vec<String>>,
    pub grace: Option<HumanDuration>,
    /// `<stage>_within` overrides; any other key is refused by [`Config::validate`].
    #[serde(flatten)]
    pub within: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskOverrides {
    pub high: Option<LadderOverride>,
    pub medium: Option<LadderOverride>,
    pub low: Option<LadderOverride>,
}

/// `[sla.stage.<name>]`: what satisfies a stage and how people read its name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Disposition kinds that satisfy the stage; required for a stage beyond the three defaults.
    pub satisfied_by: Option<Vec<String>>,
    /// Display names (docs/contract.md §10.3); defaults for the known stages.
    pub label_zh: Option<String>,
    pub label_en: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SlaConfig {
    /// The stage list, in order (docs/contract.md §10.1).
    pub stages: Vec<String>,
    pub warn_before: HumanDuration,
    pub escalate_after: Vec<HumanDuration>,
    pub notify: Vec<Vec<String>>,
    pub warn_notify: Vec<String>,
    pub grace: HumanDuration,
    pub retention: HumanDuration,
    pub max_clock_skew: HumanDuration,
    pub max_message_bytes: usize,
    pub risk: RiskOverrides,
    pub stage: BTreeMap<String, StageConfig>,
    /// `<stage>_within` for every stage; any other key is refused by [`Config::validate`].
    #[serde(flatten)]
    pub within: BTreeMap<String, toml::Value>,
}

impl Default for SlaConfig {
    fn default() -> Self {
        let mins = |m: u64| HumanDuration(Duration::from_secs(m * 60));
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        SlaConfig {
            stages: names(&Stage::DEFAULTS),
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
            stage: BTreeMap::new(),
            within: BTreeMap::new(),
        }
    }
}

/// docs/contract.md §1's deadlines of the default stages, used when `<stage>_within` is absent.
fn default_within(stage: &str) -> Option<Duration> {
    let hours = match stage {
        "visit" => 1,
        "meet" => 2,
        "feedback" => 6,
        _ => return None,
    };
    Some(Duration::from_secs(hours * 3600))
}

/// The stages docs/contract.md §10.3 names.
const DEFAULT_LABELLED: [&str; 4] = ["visit", "meet", "feedback", "sign_for"];

/// Display names of the stages people already know (docs/contract.md §10.3).
fn default_labels(stage: &str) -> Option<(&'static str, &'static str)> {
    Some(match stage {
        "visit" => ("上门", "Visit"),
        "meet" => ("见面", "Meet"),
        "feedback" => ("反馈", "Feedback"),
        "sign_for" => ("签收", "Sign for"),
        _ => return None,
    })
}

/// A stage's display names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageLabel {
    pub zh: String,
    pub en: String,
}

/// `[display]`: how people read times and names (docs/contract.md §10.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// IANA time zone of every time shown to people; machine-readable output stays UTC.
    pub timezone: String,
    /// `zh-CN` or `en`.
    pub language: String,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            timezone: "Asia/Shanghai".into(),
            language: "zh-CN".into(),
        }
    }
}

impl DisplayConfig {
    /// The display zone; [`Config::validate`] checked the name.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.timezone).unwrap_or(jiff::tz::TimeZone::UTC)
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
        let from_env = config.apply_env(|k| std::env::var(k).ok());
        config.normalise(path.and_then(Path::parent));
        config.validate().map_err(|e| e.naming_env(&from_env))?;
        Ok(config)
    }

    /// Parses TOML text, naming the offending key on error.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError::Syntax(syntax_error(text, &e)))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let problem = e.inner().message().to_string();
            // serde's "unknown field `x`, expected one of `a`, `b`" quotes names, not values.
            let problem = if problem.starts_with("unknown field") {
                if key == "http.token" {
                    format!(
                        "{problem}: the token that sees everything comes from {ENV_HTTP_TOKEN} \
                         only, never from the file"
                    )
                } else {
                    problem
                }
            } else if may_hold_secret(&key) {
                redact_quoted(&problem)
            } else {
                problem
            };
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

    /// Secrets from the environment override the file (docs/contract.md §6). Returns the keys
    /// so set, each with its variable.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Vec<(&'static str, &'static str)> {
        let var = |name| var(name).filter(|v: &String| !v.is_empty());
        let mut set = Vec::new();
        if let Some(url) = var(ENV_REDIS_URL) {
            self.redis.url = url;
            set.push(("redis.url", ENV_REDIS_URL));
        }
        if let Some(brokers) = var(ENV_KAFKA_BROKERS) {
            self.kafka.brokers = brokers;
            set.push(("kafka.brokers", ENV_KAFKA_BROKERS));
        }
        if let Some(p) = var(ENV_KAFKA_SASL_PASSWORD) {
            self.kafka.client.insert("sasl.password".into(), p);
            set.push(("kafka.client.\"sasl.password\"", ENV_KAFKA_SASL_PASSWORD));
        }
        self.http.token = var(ENV_HTTP_TOKEN);
        if let Some(am) = &mut self.alertmanager {
            if let Some(p) = var(ENV_ALERTMANAGER_PASSWORD) {
                am.password = Some(p);
            }
            if let Some(t) = var(ENV_ALERTMANAGER_TOKEN) {
                am.bearer_token = Some(t);
                set.push(("alertmanager.bearer_token", ENV_ALERTMANAGER_TOKEN));
            }
        }
        set
    }

    /// Spellings taken as the canonical ones: `[display] language` in any case (language tags
    /// are case-insensitive, BCP 47), `timezone` as the zone database spells it (it matches
    /// names in any case), a listen address without a host (`:9898`, `*:9898`) on every IPv4
    /// interface, and a relative `tokens_file` beside the config file (`dir`) when it is there,
    /// as given (from the working directory) otherwise.
    pub fn normalise(&mut self, dir: Option<&Path>) {
        if let Some(l) = display_language(&self.display.language) {
            self.display.language = l.to_owned();
        }
        if let Some(name) = jiff::tz::TimeZone::get(&self.display.timezone)
            .ok()
            .and_then(|z| z.iana_name().map(str::to_owned))
        {
            self.display.timezone = name;
        }
        for addr in [
            Some(&mut self.http.listen),
            self.http.metrics_listen.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(port) = addr.strip_prefix(':').or_else(|| addr.strip_prefix("*:")) {
                *addr = format!("0.0.0.0:{port}");
            }
        }
        if let (Some(file), Some(dir)) = (&mut self.http.tokens_file, dir) {
            let beside = dir.join(&*file);
            if Path::new(file).is_relative() && beside.exists() {
                *file = beside.display().to_string();
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
        let topics = [
            ("kafka.alerts_topic", &k.alerts_topic),
            ("kafka.dispositions_topic", &k.dispositions_topic),
            ("kafka.escalations_topic", &k.escalations_topic),
            ("kafka.deadletter_topic", &k.deadletter_topic),
        ];
        for (key, topic) in topics {
            if let Err(problem) = check_topic_name(topic) {
                return Err(ConfigError::key(key, problem));
            }
        }
        if k.alerts_topic == k.dispositions_topic {
            return Err(ConfigError::key(
                "kafka.dispositions_topic",
                "must differ from kafka.alerts_topic",
            ));
        }
        // An output that is also an input would be read back: dead letters of dead letters.
        for (out_key, out) in &topics[2..] {
            if let Some((in_key, _)) = topics[..2].iter().find(|(_, t)| t == out) {
                return Err(ConfigError::key(
                    *out_key,
                    format!("must differ from {in_key} (fraud-sla would read its own output)"),
                ));
            }
        }
        // What correctness depends on is fraud-sla's to set; the same value is no conflict.
        // (The message quotes neither: the brokers may come from the environment.)
        for (key, ours, from) in [
            (
                "bootstrap.servers",
                k.brokers.as_str(),
                "from kafka.brokers",
            ),
            (
                "metadata.broker.list",
                k.brokers.as_str(),
                "from kafka.brokers",
            ),
            ("group.id", k.group_id.as_str(), "from kafka.group_id"),
            (
                "enable.auto.offset.store",
                "false",
                "to false: offsets are stored once a batch is in Redis",
            ),
        ] {
            if k.client.get(key).is_some_and(|v| v != ours) {
                return Err(ConfigError::key(
                    format!("kafka.client.\"{key}\""),
                    format!(
                        "is set by fraud-sla itself, {from}; leave it out or give it that value"
                    ),
                ));
            }
        }
        // librdkafka's own check of each property's name and value, without a client (the
        // processor's would refuse it at start-up, after the rest has been judged valid).
        for (key, value) in &k.client {
            let mut c = rdkafka::ClientConfig::new();
            c.set(key, value);
            if let Err(e) = c.create_native_config() {
                let problem = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                return Err(ConfigError::key(format!("kafka.client.\"{key}\""), problem));
            }
        }
        if self.redis.key_prefix.contains(['{', '}']) {
            return Err(ConfigError::key(
                "redis.key_prefix",
                "must not contain '{' or '}' (they form the hash tag)",
            ));
        }
        check_redis_url(&self.redis.url)
            .map_err(|problem| ConfigError::key("redis.url", problem))?;
        let listen = [
            ("http.listen", Some(&self.http.listen)),
            ("http.metrics_listen", self.http.metrics_listen.as_ref()),
        ];
        for (key, addr) in listen {
            let Some(addr) = addr else { continue };
            // An IP address and port, or a host name and port (`localhost:9898`), resolved when
            // the listener binds.
            let host_and_port = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if addr.parse::<SocketAddr>().is_err() && !host_and_port {
                return Err(ConfigError::key(
                    key,
                    format!("{addr:?} is not an address (host:port, e.g. 127.0.0.1:9898)"),
                ));
            }
        }
        self.http.scoped_tokens()?;
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
        self.build_policy()?;
        self.stage_labels()?;
        let d = &self.display;
        if jiff::tz::TimeZone::get(&d.timezone).is_err() {
            return Err(ConfigError::key(
                "display.timezone",
                format!("{:?} is not an IANA time zone name", d.timezone),
            ));
        }
        if display_language(&d.language).is_none() {
            return Err(ConfigError::key(
                "display.language",
                format!("{:?} is not zh-CN or en", d.language),
            ));
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

    /// The effective policy, overrides applied. [`Config::validate`] has checked it.
    pub fn policy(&self) -> Policy {
        self.build_policy()
            .expect("Config::validate checked the policy")
    }

    /// Builds the policy of `[sla]`, naming the key of the first problem (docs/contract.md §10.1).
    pub fn build_policy(&self) -> Result<Policy, ConfigError> {
        let s = &self.sla;
        let stages = stage_list("sla.stages", &s.stages, None)?;
        // A `[sla.stage.<name>]` of a stage left out of the list is kept for its labels (open
        // alerts of an earlier policy may have the stage, §10.2) and checked all the same.
        for (name, c) in &s.stage {
            if stages.iter().any(|st| st == name.as_str()) {
                continue;
            }
            let key = format!("sla.stage.{name}");
            Stage::new(name).map_err(|e| ConfigError::key(&key, e))?;
            if let Some(kinds) = &c.satisfied_by {
                satisfied_by(&format!("{key}.satisfied_by"), kinds)?;
            }
        }
        let mut rules = Vec::with_capacity(stages.len());
        let within = within_keys("sla", &s.within, &stages)?;
        for stage in &stages {
            let key = format!("sla.stage.{stage}.satisfied_by");
            let satisfied_by = match s
                .stage
                .get(stage.as_str())
                .and_then(|c| c.satisfied_by.as_ref())
            {
                Some(kinds) => satisfied_by(&key, kinds)?,
                None => StageRule::default_satisfied_by(stage.as_str()).ok_or_else(|| {
                    ConfigError::key(
                        &key,
                        "is required for a stage other than visit, meet and feedback",
                    )
                })?,
            };
            let within = within
                .get(stage.as_str())
                .copied()
                .or_else(|| default_within(stage.as_str()))
                .ok_or_else(|| {
                    ConfigError::key(
                        format!("sla.{stage}_within"),
                        "is required for every stage of sla.stages",
                    )
                })?;
            rules.push(StageRule {
                stage: stage.clone(),
                within: HumanDuration(within).millis(),
                satisfied_by,
            });
        }
        let base = Ladder {
            stages: rules,
            warn_before: s.warn_before.millis(),
            escalate_after: s.escalate_after.iter().map(|d| d.millis()).collect(),
            notify: s.notify.clone(),
            warn_notify: s.warn_notify.clone(),
            grace: s.grace.millis(),
        };
        check_ladder("sla", &base)?;
        let r = &s.risk;
        let ladder = |risk: Risk, o: Option<&LadderOverride>| -> Result<Ladder, ConfigError> {
            let Some(o) = o else {
                return Ok(base.clone());
            };
            let prefix = format!("sla.risk.{risk}");
            let required = match &o.stages {
                Some(list) => stage_list(&format!("{prefix}.stages"), list, Some(&stages))?,
                None => stages.clone(),
            };
            let within = within_keys(&prefix, &o.within, &stages)?;
            let ladder = Ladder {
                stages: base
                    .stages
                    .iter()
                    .filter(|r| required.contains(&r.stage))
                    .map(|r| StageRule {
                        within: within
                            .get(r.stage.as_str())
                            .map(|d| HumanDuration(*d).millis())
                            .unwrap_or(r.within),
                        ..r.clone()
                    })
                    .collect(),
                warn_before: o.warn_before.map_or(base.warn_before, |d| d.millis()),
                escalate_after: o.escalate_after.as_ref().map_or_else(
                    || base.escalate_after.clone(),
                    |v| v.iter().map(|d| d.millis()).collect(),
                ),
                notify: o.notify.clone().unwrap_or_else(|| base.notify.clone()),
                warn_notify: o
                    .warn_notify
                    .clone()
                    .unwrap_or_else(|| base.warn_notify.clone()),
                grace: o.grace.map_or(base.grace, |d| d.millis()),
            };
            check_ladder(&prefix, &ladder)?;
            Ok(ladder)
        };
        // One list per level, as paged: lists past the last level page no one, and a level past
        // the last list pages that list's people. The same paging is then the same
        // `policy_version` however the lists are written.
        let paged = |l: Ladder| Ladder {
            notify: (1..=l.levels()).map(|n| l.notify(n).to_vec()).collect(),
            ..l
        };
        Ok(Policy::new(Ladders {
            high: paged(ladder(Risk::High, r.high.as_ref())?),
            medium: paged(ladder(Risk::Medium, r.medium.as_ref())?),
            low: paged(ladder(Risk::Low, r.low.as_ref())?),
        }))
    }

    /// Each configured stage's display names: `[sla.stage.<name>]` labels, else the known
    /// names of docs/contract.md §10.3, else the stage name itself.
    pub fn stage_labels(&self) -> Result<BTreeMap<String, StageLabel>, ConfigError> {
        let mut out = BTreeMap::new();
        let configured = self
            .sla
            .stage
            .keys()
            .filter(|k| !self.sla.stages.contains(k));
        for stage in self.sla.stages.iter().chain(configured) {
            let c = self.sla.stage.get(stage).cloned().unwrap_or_default();
            let (zh, en) = default_labels(stage).unwrap_or((stage.as_str(), stage.as_str()));
            for (lang, label) in [("label_zh", &c.label_zh), ("label_en", &c.label_en)] {
                if label
                    .as_ref()
                    .is_some_and(|l| l.trim().is_empty() || l.chars().count() > MAX_LABEL)
                {
                    return Err(ConfigError::key(
                        format!("sla.stage.{stage}.{lang}"),
                        format!("must be 1-{MAX_LABEL} characters"),
                    ));
                }
            }
            out.insert(
                stage.clone(),
                StageLabel {
                    zh: c.label_zh.unwrap_or_else(|| zh.to_owned()),
                    en: c.label_en.unwrap_or_else(|| en.to_owned()),
                },
            );
        }
        // The contract's names of stages this list does not have: open alerts of an earlier
        // policy (§10.2) may still have them, after a restart too.
        for stage in DEFAULT_LABELLED {
            if let Some((zh, en)) = default_labels(stage) {
                out.entry(stage.to_owned()).or_insert_with(|| StageLabel {
                    zh: zh.to_owned(),
                    en: en.to_owned(),
                });
            }
        }
        Ok(out)
    }

    /// The policy in force and the retention of closed records.
    pub fn policies(&self) -> crate::domain::Policies {
        crate::domain::Policies::new(
            std::sync::Arc::new(self.policy()),
            self.sla.retention.millis(),
        )
    }

    /// Whether librdkafka makes the processor's clients of `[kafka.client]`
    /// ([`crate::kafka::check_client_properties`]). The answer depends on this machine's files,
    /// so `run` refuses to start (exit 2), `check-config` only warns, and a reload does not ask
    /// (client settings take effect at a restart).
    pub fn check_clients(&self) -> Result<(), ConfigError> {
        crate::kafka::check_client_properties(&self.kafka)
            .map_err(|problem| ConfigError::key("kafka.client", problem))
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.sla.max_message_bytes,
            max_clock_skew_ms: self.sla.max_clock_skew.millis(),
        }
    }
}

/// A Kafka topic name: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
fn check_topic_name(topic: &str) -> Result<(), String> {
    if topic.len() > 249 {
        return Err(format!("{topic:?} is longer than 249 characters"));
    }
    if topic == "." || topic == ".." {
        return Err(format!("{topic:?} is not a topic name"));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{topic:?} has {c:?}: a topic name is letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A Redis URL as the client will read it: a host (or socket path), a database number, a
/// scheme it speaks. The problem never quotes the URL: it may hold a password.
fn check_redis_url(url: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo;
    let scheme = redis::parse_redis_url(url).map(|u| u.scheme().to_owned());
    if !scheme.is_some_and(|s| matches!(s.as_str(), "redis" | "rediss" | "redis+unix" | "unix")) {
        return Err(
            "is not a redis://, rediss:// or redis+unix:// URL (the value is not shown: it may \
             hold a password)"
                .into(),
        );
    }
    url.into_connection_info()
        .map(drop)
        // The client's reasons are fixed texts ("Missing hostname", "Invalid database number").
        .map_err(|e| format!("is not a URL the Redis client takes: {e}"))
}

/// The longest display name of a stage: a short phrase ("Report the dissuasion result back")
/// that the board's tables and the report's columns still fit.
const MAX_LABEL: usize = 64;

/// A stage list (`sla.stages` or a risk's `stages`): non-empty, valid unique names, and for a
/// risk only stages of `sla.stages`.
fn stage_list(
    key: &str,
    names: &[String],
    all: Option<&[Stage]>,
) -> Result<Vec<Stage>, ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::key(key, "must name at least one stage"));
    }
    let mut out: Vec<Stage> = Vec::with_capacity(names.len());
    for name in names {
        let stage = Stage::new(name).map_err(|e| ConfigError::key(key, e))?;
        if out.contains(&stage) {
            return Err(ConfigError::key(key, format!("names {name:?} twice")));
        }
        if all.is_some_and(|all| !all.contains(&stage)) {
            return Err(ConfigError::key(
                key,
                format!("names {name:?}, which is not in sla.stages"),
            ));
        }
        out.push(stage);
    }
    Ok(out)
}

/// The `<stage>_within` keys of a section. A key naming no stage of `stages` is refused, except
/// the three of version 1 (`visit_within`, …), which stay valid keys when their stage is left out.
fn within_keys(
    prefix: &str,
    keys: &BTreeMap<String, toml::Value>,
    stages: &[Stage],
) -> Result<BTreeMap<String, Duration>, ConfigError> {
    let mut out = BTreeMap::new();
    for (key, value) in keys {
        let full = format!("{prefix}.{key}");
        let Some(stage) = key.strip_suffix("_within") else {
            return Err(ConfigError::key(full, "unknown key"));
        };
        if !stages.iter().any(|s| s == stage) && !Stage::DEFAULTS.contains(&stage) {
            return Err(ConfigError::key(
                full,
                format!("unknown key: {stage:?} is not a stage of sla.stages"),
            ));
        }
        let d = value
            .as_str()
            .ok_or_else(|| format!("expected a duration string, found {}", value.type_str()))
            .and_then(parse_duration)
            .map_err(|problem| ConfigError::key(&full, problem))?;
        out.insert(stage.to_owned(), d);
    }
    Ok(out)
}

/// A stage's `satisfied_by`: known kinds, at least one, never `closed` (it closes an alert
/// without satisfying anything).
fn satisfied_by(key: &str, kinds: &[String]) -> Result<Vec<DispositionKind>, ConfigError> {
    if kinds.is_empty() {
        return Err(ConfigError::key(
            key,
            "must name at least one disposition kind",
        ));
    }
    let mut out = Vec::with_capacity(kinds.len());
    for k in kinds {
        let kind = DispositionKind::parse(k).ok_or_else(|| {
            ConfigError::key(
                key,
                format!("{k:?} is not a disposition kind (acknowledged, visited, met, feedback)"),
            )
        })?;
        if kind == DispositionKind::Closed {
            return Err(ConfigError::key(
                key,
                "\"closed\" closes an alert without satisfying any stage",
            ));
        }
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    // A set: in one order, so that the same policy has one `policy_version` however the list
    // is written.
    out.sort_by_key(|k| DispositionKind::ALL.iter().position(|a| a == k));
    Ok(out)
}

/// `[display] language`'s canonical spelling, if it names one of the two.
fn display_language(language: &str) -> Option<&'static str> {
    ["zh-CN", "en"]
        .into_iter()
        .find(|l| l.eq_ignore_ascii_case(language))
}

fn check_ladder(prefix: &str, l: &Ladder) -> Result<(), ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    for r in &l.stages {
        // "0s" is due on issue: every level fires as the alert is processed, no warning.
        if r.within < 0 {
            return Err(ConfigError::key(
                key(&format!("{}_within", r.stage)),
                "must not be negative",
            ));
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
    // `notify` may be shorter or longer than the ladder (a risk may override `escalate_after`
    // alone): a level past the last list pages the last list's people (`Ladder::notify`).
    for (k, lists) in [
        ("notify", l.notify.as_slice()),
        ("warn_notify", std::slice::from_ref(&l.warn_notify)),
    ] {
        if lists.iter().flatten().any(|n| n.trim().is_empty()) {
            return Err(ConfigError::key(key(k), "names must not be empty"));
        }
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
        let e = err("[sla]\nnotify = [[\"a\"], [\" \"]]\n");
        assert!(e.starts_with("config key sla.notify:"), "{e}");
        let e = err("[http]\nlisten = \"nowhere\"\n");
        assert!(e.starts_with("config key http.listen:"), "{e}");
        for listen in ["localhost:9898", "[::1]:9898", "0.0.0.0:80"] {
            let c = Config::parse(&format!("[http]\nlisten = \"{listen}\"\n")).unwrap();
            c.validate().unwrap_or_else(|e| panic!("{listen}: {e}"));
        }
        for listen in [":9898", "localhost", "localhost:http", "localhost:70000"] {
            let e = err(&format!("[http]\nlisten = \"{listen}\"\n"));
            assert!(e.starts_with("config key http.listen:"), "{listen}: {e}");
        }
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
            // The issue's case: a 15 m visit with the global 15 m warning lead.
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
        let within: Vec<Millis> = p
            .for_risk(Risk::High)
            .stages
            .iter()
            .map(|r| r.within)
            .collect();
        assert_eq!(within, [30 * 60_000, 2 * 3_600_000, 6 * 3_600_000]);
        assert_eq!(
            p.for_risk(Risk::Medium),
            Policy::default().for_risk(Risk::Medium)
        );
    }

    #[test]
    fn a_ladder_and_its_lists_may_differ_in_length_and_a_level_past_the_lists_pages_the_last() {
        // A risk overriding the ladder alone keeps [sla]'s three lists.
        let c = Config::parse("[sla.risk.high]\nescalate_after = [\"0s\", \"15m\"]\n").unwrap();
        c.validate().unwrap();
        let p = c.policy();
        let high = p.for_risk(Risk::High);
        assert_eq!(high.escalate_after, [0, 15 * 60_000]);
        assert_eq!(high.notify(2), ["station_chief"]);
        // A longer ladder than its lists: the levels past them page the last list.
        let c = Config::parse(
            "[sla]\nescalate_after = [\"0s\", \"1m\", \"2m\", \"3m\"]\nnotify = [[\"a\"], [\"b\"]]\n",
        )
        .unwrap();
        c.validate().unwrap();
        let ladder = c.policy().for_risk(Risk::Medium).clone();
        let paged: Vec<&[String]> = (0..=4).map(|l| ladder.notify(l)).collect();
        assert_eq!(
            paged,
            [
                &["assigned_officer".to_owned()][..],
                &["a".to_owned()],
                &["b".to_owned()],
                &["b".to_owned()],
                &["b".to_owned()]
            ]
        );
    }

    #[test]
    fn client_properties_may_be_written_with_bare_dotted_names() {
        let c = Config::parse(
            "[kafka.client]\nsecurity.protocol = \"SASL_PLAINTEXT\"\nsasl.mechanism = \"PLAIN\"\n\"sasl.username\" = \"u\"\nsasl.password = \"p\"\nlinger.ms = 5\n",
        )
        .unwrap();
        c.validate().unwrap();
        let client: Vec<(&str, &str)> = c
            .kafka
            .client
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            client,
            [
                ("linger.ms", "5"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.password", "p"),
                ("sasl.username", "u"),
                ("security.protocol", "SASL_PLAINTEXT"),
            ]
        );
        assert!(
            !format!("{c:?}").contains("\"p\""),
            "the password is a secret"
        );
        let e = err("[kafka.client]\n\"linger.ms\" = 1\nlinger.ms = 2\n");
        assert!(
            e.contains("kafka.client") && e.contains("\"linger.ms\" is given twice"),
            "{e}"
        );
    }

    #[test]
    fn librdkafka_judges_each_client_property_and_the_error_names_it() {
        let e = err("[kafka.client]\n\"no.such.property\" = \"x\"\n");
        assert!(
            e.starts_with("config key kafka.client.\"no.such.property\":"),
            "{e}"
        );
        let e = err("[kafka.client]\nsecurity.protocol = \"bogus\"\n");
        assert!(
            e.starts_with("config key kafka.client.\"security.protocol\":") && e.contains("bogus"),
            "{e}"
        );
        // A producer's property and a consumer's are both properties.
        let c = Config::parse(
            "[kafka.client]\n\"compression.type\" = \"zstd\"\n\"fetch.wait.max.ms\" = 10\n",
        )
        .unwrap();
        c.validate().unwrap();
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
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        let entries = std::fs::read_dir(&root)
            .unwrap()
            .chain(std::fs::read_dir(root.join("examples")).unwrap());
        for entry in entries {
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
            seen >= 4,
            "config/default.toml, config/demo.toml and config/examples/*.toml are shipped"
        );
    }

    #[test]
    fn default_toml_is_the_contract_policy() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let c = Config::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
        for risk in [Risk::Medium, Risk::Low] {
            assert_eq!(c.policy().for_risk(risk), Policy::default().for_risk(risk));
        }
    }

    fn load(text: &str) -> Config {
        let c = Config::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        c.validate().unwrap_or_else(|e| panic!("{text:?}: {e}"));
        c
    }

    fn stage_names(p: &Policy, risk: Risk) -> Vec<String> {
        p.for_risk(risk)
            .stages
            .iter()
            .map(|r| r.stage.to_string())
            .collect()
    }

    #[test]
    fn a_v1_configuration_is_the_default_stage_list() {
        let p = load("[sla]\nvisit_within = \"1h\"\n").policy();
        assert_eq!(p, Policy::default());
        assert_eq!(stage_names(&p, Risk::Low), ["visit", "meet", "feedback"]);
        let visit = &p.for_risk(Risk::High).stages[0];
        assert_eq!(
            visit.satisfied_by,
            [DispositionKind::Visited, DispositionKind::Met]
        );
    }

    #[test]
    fn every_stage_error_names_its_key() {
        for (text, key) in [
            ("[sla]\nstages = []\n", "sla.stages"),
            ("[sla]\nstages = [\"Visit\"]\n", "sla.stages"),
            ("[sla]\nstages = [\"visit\", \"visit\"]\n", "sla.stages"),
            (
                "[sla]\nstages = [\"a_very_long_stage_name_of_33_chars\"]\n",
                "sla.stages",
            ),
            // A stage beyond the three without its deadline or what satisfies it.
            (
                "[sla]\nstages = [\"sign_for\"]\n[sla.stage.sign_for]\nsatisfied_by = [\"acknowledged\"]\n",
                "sla.sign_for_within",
            ),
            (
                "[sla]\nstages = [\"sign_for\"]\nsign_for_within = \"10m\"\n",
                "sla.stage.sign_for.satisfied_by",
            ),
            (
                "[sla]\nstages = [\"visit\"]\n[sla.stage.visit]\nsatisfied_by = [\"called\"]\n",
                "sla.stage.visit.satisfied_by",
            ),
            (
                "[sla]\nstages = [\"visit\"]\n[sla.stage.visit]\nsatisfied_by = []\n",
                "sla.stage.visit.satisfied_by",
            ),
            (
                "[sla]\nstages = [\"visit\"]\n[sla.stage.visit]\nsatisfied_by = [\"closed\"]\n",
                "sla.stage.visit.satisfied_by",
            ),
            (
                "[sla.stage.sign_for]\nsatisfied_by = [\"signed\"]\n",
                "sla.stage.sign_for.satisfied_by",
            ),
            ("[sla.stage.visit]\nlabel_zh = \"\"\n", "sla.stage.visit.label_zh"),
            ("[sla.stage.visit]\ncolour = \"red\"\n", "sla.stage.visit.colour"),
            ("[sla.risk.low]\nstages = [\"sign_for\"]\n", "sla.risk.low.stages"),
            ("[sla.risk.low]\nstages = []\n", "sla.risk.low.stages"),
            ("[sla.risk.low]\nsign_for_within = \"1m\"\n", "sla.risk.low.sign_for_within"),
            ("[sla.risk.low]\nfeedback_within = \"soon\"\n", "sla.risk.low.feedback_within"),
            ("[sla.risk.low]\nfeedbak = \"1h\"\n", "sla.risk.low.feedbak"),
            ("[sla]\nsign_for_within = \"10m\"\n", "sla.sign_for_within"),
            ("[sla]\nvisit_within = 3600\n", "sla.visit_within"),
            ("[display]\ntimezone = \"Mars/Olympus\"\n", "display.timezone"),
            ("[display]\nlanguage = \"fr\"\n", "display.language"),
        ] {
            let e = err(text);
            assert!(
                e.starts_with(&format!("config key {key}:")),
                "{text:?} gave {e:?}, want key {key}"
            );
        }
    }

    #[test]
    fn a_sign_for_policy_and_a_feedback_only_risk() {
        let c = load(
            "[sla]\nstages = [\"sign_for\", \"visit\", \"meet\", \"feedback\"]\n\
             sign_for_within = \"10m\"\n\
             [sla.stage.sign_for]\nsatisfied_by = [\"acknowledged\", \"met\"]\n\
             [sla.risk.low]\nstages = [\"feedback\"]\nfeedback_within = \"3h\"\n",
        );
        let p = c.policy();
        assert_eq!(
            stage_names(&p, Risk::High),
            ["sign_for", "visit", "meet", "feedback"]
        );
        let sign_for = &p.for_risk(Risk::High).stages[0];
        assert_eq!(sign_for.within, 10 * 60_000);
        assert_eq!(
            sign_for.satisfied_by,
            [DispositionKind::Acknowledged, DispositionKind::Met]
        );
        assert_eq!(stage_names(&p, Risk::Low), ["feedback"]);
        assert_eq!(p.for_risk(Risk::Low).stages[0].within, 3 * 3_600_000);
        assert_eq!(p.for_risk(Risk::Medium).stages[3].within, 6 * 3_600_000);
        let labels = c.stage_labels().unwrap();
        assert_eq!(labels["sign_for"].zh, "签收");
        assert_eq!(labels["visit"].en, "Visit");
        let without = load("[sla]\nstages = [\"visit\", \"feedback\"]\n").stage_labels();
        assert_eq!(
            without.unwrap()["sign_for"].zh,
            "签收",
            "an earlier policy's open alerts may still have the stage"
        );
    }

    #[test]
    fn a_risk_lists_its_stages_in_the_order_of_sla_stages() {
        let p = load("[sla.risk.high]\nstages = [\"feedback\", \"visit\"]\n").policy();
        assert_eq!(stage_names(&p, Risk::High), ["visit", "feedback"]);
    }

    #[test]
    fn the_v1_deadline_keys_stay_valid_when_their_stage_is_left_out() {
        let p = load("[sla]\nstages = [\"feedback\"]\nvisit_within = \"1h\"\n").policy();
        assert_eq!(stage_names(&p, Risk::Medium), ["feedback"]);
    }

    #[test]
    fn the_policy_version_follows_the_effective_policy_only() {
        let base = load("").policy();
        assert_eq!(base.version().len(), 16);
        assert!(base.version().bytes().all(|b| b.is_ascii_hexdigit()));
        // The same policy written differently, and keys outside the policy: same version.
        let same = load(
            "[sla]\nstages = [\"visit\", \"meet\", \"feedback\"]\nvisit_within = \"60m\"\n\
             retention = \"1d\"\nmax_message_bytes = 1000\n[display]\nlanguage = \"en\"\n\
             [sla.stage.visit]\nlabel_en = \"Door\"\nsatisfied_by = [\"met\", \"visited\"]\n",
        );
        assert_eq!(same.policy().version(), base.version());
        // The same people paged at every level: a list past the last level, or the last list
        // written out again for a level past the lists.
        let lists = |n: &str| {
            load(&format!("[sla]\nnotify = {n}\n"))
                .policy()
                .version()
                .to_owned()
        };
        let written = r#"[["station_duty_officer"], ["station_chief"], ["sub_bureau_command"]]"#;
        assert_eq!(lists(written), base.version());
        assert_eq!(
            lists(&written.replace("]]", r#"], ["nobody"]]"#)),
            base.version()
        );
        assert_eq!(
            lists(r#"[["a"], ["b"]]"#),
            lists(r#"[["a"], ["b"], ["b"]]"#)
        );
        for changed in [
            "[sla]\nvisit_within = \"59m\"\n",
            "[sla]\nwarn_before = \"10m\"\n",
            "[sla]\ngrace = \"1s\"\n",
            "[sla]\nwarn_notify = [\"someone_else\"]\n",
            "[sla]\nescalate_after = [\"0s\", \"30m\", \"3h\"]\n",
            "[sla]\nnotify = [[\"a\"], [\"b\"], [\"c\"]]\n",
            "[sla.stage.visit]\nsatisfied_by = [\"visited\"]\n",
            "[sla.risk.low]\nstages = [\"visit\", \"feedback\"]\n",
        ] {
            assert_ne!(
                load(changed).policy().version(),
                base.version(),
                "{changed}"
            );
        }
    }

    #[test]
    fn a_stage_may_be_due_on_issue() {
        let p = load("[sla]\nvisit_within = \"0s\"\n").policy();
        assert_eq!(p.for_risk(Risk::High).stages[0].within, 0);
    }

    #[test]
    fn spellings_are_normalised_as_the_config_is_loaded() {
        let mut c = Config::parse(
            "[http]\nlisten = \":9898\"\nmetrics_listen = \"*:9899\"\n\
             [display]\nlanguage = \"ZH-cn\"\ntimezone = \"asia/shanghai\"\n",
        )
        .unwrap();
        c.normalise(None);
        assert_eq!(c.display.timezone, "Asia/Shanghai");
        assert_eq!(c.http.listen, "0.0.0.0:9898");
        assert_eq!(c.http.metrics_listen.as_deref(), Some("0.0.0.0:9899"));
        assert_eq!(c.display.language, "zh-CN");
        c.validate().unwrap();
    }

    #[test]
    fn errors_never_quote_a_secret_value() {
        let syntax = Config::parse("[redis]\nurl = \"redis://u:S3cret@host:6379\n")
            .unwrap_err()
            .to_string();
        assert!(syntax.contains("line 2, column"), "{syntax}");
        assert!(!syntax.contains("S3cret"), "{syntax}");
        let typed = Config::parse("[alertmanager]\nurl = \"http://am\"\npassword = 12345\n")
            .unwrap_err()
            .to_string();
        assert!(
            typed.contains("alertmanager.password") && !typed.contains("12345"),
            "{typed}"
        );
        let named = Config::parse("[sla]\nwarn_before = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            named.contains("sla.warn_before") && named.contains("`5`"),
            "a value that is not a secret is quoted: {named}"
        );
    }

    #[test]
    fn urls_are_shown_without_what_may_be_a_password() {
        for (url, shown) in [
            ("redis://u:S3cret@h:6379/2", "redis://u:***@h:6379/2"),
            ("rediss://:S3cret@h", "rediss://:***@h"),
            ("redis://h:6379", "redis://h:6379"),
            (
                "redis+unix:///tmp/r.sock?user=u&pass=S3cret&db=1",
                "redis+unix:///tmp/r.sock?user=u&pass=***&db=1",
            ),
            (
                "https://am:9093/?token=S3cret",
                "https://am:9093/?token=***",
            ),
            // Mistyped: no parser finds the password, so nothing of it is shown.
            ("redis:/u:S3cret@h:6379", "***"),
            ("redis//u:S3cret@h", "***"),
            ("not a url S3cret", "***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        for (url, from_env) in [
            ("redis//u:S3cret@h", None),
            ("redis:/u:S3cret@h:6379", None),
            ("not a url S3cret", Some("not a url S3cret")),
        ] {
            let mut c = Config::default();
            match from_env {
                Some(v) => {
                    c.apply_env(|k| (k == ENV_REDIS_URL).then(|| v.to_owned()));
                }
                None => c.redis.url = url.to_owned(),
            }
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.starts_with("config key redis.url:") && !e.contains("S3cret"),
                "{e}"
            );
        }
        let c = load(
            "[kafka.client]\n\"sasl.oauthbearer.config\" = \"principal=x clientSecret=S3cret\"\n",
        );
        let shown = crate::policy_report::render(&c);
        assert!(shown.contains("sasl.oauthbearer.config = ***"), "{shown}");
        assert!(!shown.contains("S3cret"), "{shown}");
    }

    #[test]
    fn what_the_redis_client_or_librdkafka_would_refuse_later_is_refused_now() {
        for url in [
            "redis://",
            "redis://h:6379/abc",
            "redis://0.0.0.0:6379",
            "rediss://h#x",
        ] {
            let e = err(&format!("[redis]\nurl = \"{url}\"\n"));
            assert!(
                e.starts_with("config key redis.url: is not a URL the Redis client takes"),
                "{url}: {e}"
            );
        }
        let sasl = "[kafka.client]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n";
        // GSSAPI (librdkafka's default mechanism) has no provider in this build; it is judged
        // as the clients are made (`run`), as what depends on this machine's files is.
        for mechanism in ["\"sasl.mechanisms\" = \"GSSAPI\"\n", ""] {
            let e = load(&format!("{sasl}{mechanism}"))
                .check_clients()
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("config key kafka.client:") && e.contains("GSSAPI"),
                "{e}"
            );
        }
        let ssl = load("[kafka.client]\n\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = \"/nonexistent/ca.pem\"\n");
        let e = ssl.check_clients().unwrap_err().to_string();
        assert!(
            e.starts_with("config key kafka.client:") && e.contains("ssl.ca.location"),
            "{e}"
        );
        let scram = format!("{sasl}\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n");
        let e = load(&scram).check_clients().unwrap_err().to_string();
        assert!(
            e.contains("sasl.username and sasl.password must be set"),
            "{e}"
        );
        load(&format!(
            "{scram}\"sasl.username\" = \"u\"\n\"sasl.password\" = \"p\"\n"
        ))
        .check_clients()
        .unwrap();
        // Given the brokers under librdkafka's other name, the clients still contact none.
        load("[kafka.client]\n\"metadata.broker.list\" = \"127.0.0.1:9092\"\n")
            .check_clients()
            .unwrap();
    }

    #[test]
    fn topic_names_are_kafka_names_and_no_output_is_an_input() {
        for (text, key) in [
            ("alerts_topic = \"fraud alerts\"", "kafka.alerts_topic"),
            ("escalations_topic = \"..\"", "kafka.escalations_topic"),
            (
                "deadletter_topic = \"fraud.dispositions\"",
                "kafka.deadletter_topic",
            ),
            (
                "escalations_topic = \"fraud.alerts\"",
                "kafka.escalations_topic",
            ),
        ] {
            let e = err(&format!("[kafka]\n{text}\n"));
            assert!(e.starts_with(&format!("config key {key}:")), "{text}: {e}");
        }
        let long = "t".repeat(250);
        let e = err(&format!("[kafka]\ndeadletter_topic = \"{long}\"\n"));
        assert!(e.contains("longer than 249"), "{e}");
        load(&format!(
            "[kafka]\ndeadletter_topic = \"{}\"\nescalations_topic = \"Fraud_SLA-out.v2\"\n",
            "t".repeat(249)
        ));
    }

    #[test]
    fn a_property_fraud_sla_sets_may_be_given_the_value_it_sets() {
        load("[kafka]\nbrokers = \"k1:9092\"\n[kafka.client]\n\"bootstrap.servers\" = \"k1:9092\"\n\"group.id\" = \"fraud-sla\"\n\"enable.auto.offset.store\" = \"false\"\n");
        for (key, value) in [
            ("bootstrap.servers", "k2:9092"),
            ("group.id", "other"),
            ("enable.auto.offset.store", "true"),
        ] {
            let e = err(&format!("[kafka.client]\n\"{key}\" = \"{value}\"\n"));
            assert!(
                e.starts_with(&format!(
                    "config key kafka.client.\"{key}\": is set by fraud-sla"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn durations_are_bounded_and_never_rounded_to_zero() {
        for key in ["visit_within", "grace", "retention", "max_clock_skew"] {
            let e = err(&format!("[sla]\n{key} = \"300000000y\"\n"));
            assert!(
                e.starts_with(&format!("config key sla.{key}:")) && e.contains("100 years"),
                "{e}"
            );
        }
        let e = err("[sla.risk.low]\nfeedback_within = \"18446744073709551615s\"\n");
        assert!(
            e.starts_with("config key sla.risk.low.feedback_within:"),
            "{e}"
        );
        let c = load("[sla]\nwarn_before = \"1us\"\nmeet_within = \"36500d\"\n");
        assert_eq!(c.policy().for_risk(Risk::High).warn_before, 1);
    }

    #[test]
    fn each_list_of_names_is_named_by_its_own_key() {
        let e = err("[sla]\nwarn_notify = [\"\"]\n");
        assert!(e.starts_with("config key sla.warn_notify:"), "{e}");
        let e = err("[sla.risk.low]\nwarn_notify = [\"  \"]\n");
        assert!(e.starts_with("config key sla.risk.low.warn_notify:"), "{e}");
        let e = err("[http]\ntoken = \"abc\"\n");
        assert!(
            e.contains("unknown field `token`") && e.contains(ENV_HTTP_TOKEN),
            "{e}"
        );
        assert!(!e.contains("abc"), "{e}");
    }

    #[test]
    fn a_stage_section_outside_the_list_keeps_its_labels_and_is_checked() {
        let c = load("[sla]\nstages = [\"visit\", \"feedback\"]\n[sla.stage.meet]\nlabel_en = \"Meet the person face to face\"\n[sla.stage.call]\nsatisfied_by = [\"acknowledged\"]\nlabel_zh = \"电话劝阻\"\n");
        let labels = c.stage_labels().unwrap();
        assert_eq!(labels["meet"].en, "Meet the person face to face");
        assert_eq!(labels["call"].zh, "电话劝阻");
        assert_eq!(
            c.policy().version(),
            load("[sla]\nstages = [\"visit\", \"feedback\"]\n")
                .policy()
                .version(),
            "a stage not in the list is no part of the policy"
        );
        let e = err("[sla.stage.call]\nsatisfied_by = [\"phoned\"]\n");
        assert!(
            e.starts_with("config key sla.stage.call.satisfied_by:"),
            "{e}"
        );
        let e = err("[sla.stage.Call]\nlabel_en = \"x\"\n");
        assert!(e.starts_with("config key sla.stage.Call:"), "{e}");
        let e = err(&format!(
            "[sla.stage.visit]\nlabel_en = \"{}\"\n",
            "x".repeat(65)
        ));
        assert!(e.starts_with("config key sla.stage.visit.label_en:"), "{e}");
    }

    #[test]
    fn a_relative_tokens_file_is_read_beside_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
        std::fs::write(
            dir.path().join("tokens.toml"),
            format!("[[token]]\nsha256 = \"{sha}\"\nname = \"gwm\"\njurisdictions = [\"6201\"]\n"),
        )
        .unwrap();
        let path = dir.path().join("fraud-sla.toml");
        std::fs::write(&path, "[http]\ntokens_file = \"tokens.toml\"\n").unwrap();
        // Loaded from another working directory (the tests run in the crate's).
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.http.scoped_tokens().unwrap()[0].name, "gwm");
    }

    #[test]
    fn a_bad_value_from_the_environment_names_its_variable() {
        let mut c = load("");
        let from_env = c.apply_env(|k| (k == ENV_REDIS_URL).then(|| "notaurl".into()));
        let e = c.validate().unwrap_err().naming_env(&from_env).to_string();
        assert!(
            e.starts_with("config key redis.url (from FRAUD_SLA_REDIS_URL):"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_tokens_file_names_the_entry_and_field() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let sha: String = sha2::Sha256::digest(b"a")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let config = format!("[http]\ntokens_file = \"{}\"\n", path.display());
        std::fs::write(
            &path,
            format!(
                "[[token]]\nsha256 = \"{sha}\"\nname = \"gwm\"\njurisdictions = [\"620102\"]\n"
            ),
        )
        .unwrap();
        let tokens = load(&config).http.scoped_tokens().unwrap();
        assert_eq!(tokens[0].jurisdictions, ["620102"]);
        for (body, want) in [
            (
                "[[token]]\nsha256 = \"abc\"\nname = \"x\"\njurisdictions = [\"6201\"]\n"
                    .to_owned(),
                "token[0].sha256",
            ),
            (
                format!("[[token]]\nsha256 = \"{sha}\"\nname = \"\"\njurisdictions = [\"6201\"]\n"),
                "token[0].name",
            ),
            (
                format!("[[token]]\nsha256 = \"{sha}\"\nname = \"x\"\njurisdictions = []\n"),
                "token[0].jurisdictions",
            ),
            ("[[token]]\nsha = 1\n".to_owned(), "unknown field"),
        ] {
            std::fs::write(&path, body).unwrap();
            let e = err(&config);
            assert!(
                e.starts_with("config key http.tokens_file:") && e.contains(want),
                "{e}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert!(err(&config).contains("cannot read it"));
    }
}
