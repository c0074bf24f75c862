//! `SIGHUP`: read the configuration file again and put its policy in force for alerts processed
//! from then on (docs/contract.md §10.2). Open alerts keep the policy they started with. A file
//! that does not load changes nothing: the error (naming the key) goes to the log, to
//! `fraud_sla_config_last_reload_successful` and to `/readyz`. The HTTP tokens are read again
//! too (`tokens_file`): revoking a station's token needs no restart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, StageLabel};
use crate::domain::Policies;
use crate::health::{ConfigStatus, Health, ReloadOutcome};
use crate::http::Tokens;
use crate::metrics::Metrics;

/// What a reload changes while running: the `[sla]` policy and retention, the display, and the
/// HTTP tokens. Everything else is read at start-up only.
#[derive(Debug)]
pub(crate) struct Reloader {
    pub(crate) path: Option<PathBuf>,
    /// The configuration in force.
    pub(crate) running: Config,
    pub(crate) policies: watch::Sender<Arc<Policies>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    /// The stages' display names (`/v1/display`, the board), added to by each reload: a stage a
    /// reload adds is shown by its name in the people's language, not its machine name.
    pub(crate) labels: Labels,
    /// The HTTP tokens in force (`crate::http::auth`).
    pub(crate) tokens: watch::Sender<Arc<Tokens>>,
}

/// The stages' display names in force, shared with the HTTP side.
pub(crate) type Labels = Arc<RwLock<BTreeMap<String, StageLabel>>>;

impl Reloader {
    /// Publishes the policy in force at start-up. Fails only if the tokens file cannot be read
    /// now (it could when the configuration was loaded).
    pub(crate) fn start(
        path: Option<PathBuf>,
        running: Config,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Result<(Reloader, watch::Receiver<Arc<Policies>>), ConfigError> {
        let (tokens, _) = watch::channel(Arc::new(Tokens::of(&running.http)?));
        let policies = running.policies();
        let version = policies.current().version().to_owned();
        metrics.policy_in_force(policies.current(), None);
        health.set_config(ConfigStatus {
            policy_version: version,
            last_reload: None,
        });
        let (tx, rx) = watch::channel(Arc::new(policies));
        let labels = Arc::new(RwLock::new(running.stage_labels().unwrap_or_default()));
        let r = Reloader {
            path,
            running,
            policies: tx,
            metrics,
            health,
            labels,
            tokens,
        };
        Ok((r, rx))
    }

    /// Reloads on every `SIGHUP` until `cancel`.
    pub(crate) fn spawn(mut self, cancel: CancellationToken) {
        tokio::spawn(async move {
            let mut hup = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "Cannot listen for SIGHUP; the configuration is not reloadable.");
                    return;
                }
            };
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    Some(()) = hup.recv() => self.reload(),
                }
            }
        });
    }

    /// Loads the file again; on success puts its policy in force, else keeps the old one.
    pub(crate) fn reload(&mut self) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let loaded =
            Config::load(self.path.as_deref()).and_then(|new| Ok((Tokens::of(&new.http)?, new)));
        let mut status = self.health.config();
        match loaded {
            Err(e) => {
                tracing::error!(error = %e, "Configuration reload failed; the policy in force is unchanged.");
                self.metrics.config_reloaded(false);
                status.last_reload = Some(ReloadOutcome {
                    ok: false,
                    at,
                    error: Some(e.to_string()),
                });
            }
            Ok((tokens, new)) => {
                for section in restart_only_changes(&self.running, &new) {
                    tracing::warn!(section, "Configuration changed in a section read at start-up only; it takes effect at the next restart.");
                }
                let policies = new.policies();
                let old = status.policy_version.clone();
                let version = policies.current().version().to_owned();
                if version != old || policies.retention != self.policies.borrow().retention {
                    tracing::info!(policy_version = %version, previous = %old, "Policy in force for alerts processed from now on; open alerts keep theirs.");
                    self.metrics.policy_in_force(policies.current(), Some(&old));
                    self.policies.send_replace(Arc::new(policies));
                } else {
                    tracing::info!(policy_version = %version, "Configuration reloaded; the policy is unchanged.");
                }
                self.metrics.config_reloaded(true);
                status.policy_version = version;
                status.last_reload = Some(ReloadOutcome {
                    ok: true,
                    at,
                    error: None,
                });
                // Added to, not replaced: open alerts keep the stages of their policy (§10.2),
                // and are still shown by those stages' names.
                (self.labels.write().unwrap_or_else(|e| e.into_inner()))
                    .extend(new.stage_labels().unwrap_or_default());
                self.running.sla = new.sla.clone();
                self.running.display = new.display.clone();
                self.running.http.tokens_file = new.http.tokens_file.clone();
                self.tokens.send_if_modified(|old| {
                    if old.required() && !tokens.required() {
                        // Opening /v1 to anyone is not something a reload does by itself.
                        tracing::warn!("The reloaded configuration names no HTTP token; /v1 stays closed with the tokens in force until a restart.");
                        return false;
                    }
                    let changed = **old != tokens;
                    if changed {
                        tracing::info!(tokens = ?tokens, "HTTP tokens replaced; a revoked one is refused from now on, on open event streams too.");
                        *old = Arc::new(tokens);
                    }
                    changed
                });
            }
        }
        self.health.set_config(status);
    }
}

/// Sections (or keys) that differ between `a` and `b` but are only read at start-up.
fn restart_only_changes(a: &Config, b: &Config) -> Vec<&'static str> {
    let differs =
        |x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| format!("{x:?}") != format!("{y:?}");
    let mut out = Vec::new();
    if differs(&a.kafka, &b.kafka) {
        out.push("kafka");
    }
    if differs(&a.redis, &b.redis) || a.redis.url != b.redis.url {
        out.push("redis");
    }
    // The tokens are reloaded; the token from the environment cannot change.
    if a.http.listen != b.http.listen || a.http.metrics_listen != b.http.metrics_listen {
        out.push("http");
    }
    if differs(&a.alertmanager, &b.alertmanager) {
        out.push("alertmanager");
    }
    if a.limits() != b.limits() {
        out.push("sla.max_message_bytes / sla.max_clock_skew");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Risk;

    fn write(path: &std::path::Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_valid_file_puts_its_policy_in_force_and_an_invalid_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fraud-sla.toml");
        write(
            &path,
            "[sla]\nescalate_after = [\"0s\", \"1h\"]\nnotify = [[\"a\"], [\"b\"]]\n",
        );
        let config = Config::load(Some(&path)).unwrap();
        let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
        let (mut reloader, mut rx) =
            Reloader::start(Some(path.clone()), config, metrics.clone(), health.clone()).unwrap();
        let first = rx.borrow_and_update().current().clone();
        assert_eq!(health.config().policy_version, first.version());

        write(
            &path,
            "[sla]\nescalate_after = [\"0s\", \"5m\"]\nnotify = [[\"a\"], [\"b\"]]\n",
        );
        reloader.reload();
        assert!(rx.has_changed().unwrap());
        let second = rx.borrow_and_update().current().clone();
        assert_ne!(second.version(), first.version());
        assert_eq!(second.for_risk(Risk::High).escalate_after, [0, 300_000]);
        let status = health.config();
        assert_eq!(status.policy_version, second.version());
        assert!(status.last_reload.as_ref().unwrap().ok);

        write(
            &path,
            "[sla]\nescalate_after = [\"1h\", \"5m\"]\nnotify = [[\"a\"], [\"b\"]]\n",
        );
        reloader.reload();
        assert!(
            !rx.has_changed().unwrap(),
            "an invalid file changes nothing"
        );
        let status = health.config();
        assert_eq!(status.policy_version, second.version());
        let failed = status.last_reload.unwrap();
        assert!(!failed.ok);
        assert!(
            failed
                .error
                .as_deref()
                .unwrap()
                .contains("sla.escalate_after"),
            "{failed:?}"
        );
        let text = metrics.encode_prometheus_text();
        for line in [
            "fraud_sla_config_reloads_total{result=\"success\"} 1",
            "fraud_sla_config_reloads_total{result=\"failure\"} 1",
            "fraud_sla_config_last_reload_successful 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.contains(&format!(
            "fraud_sla_policy_info{{policy_version=\"{}\"}} 1",
            second.version()
        )));
        assert!(
            !text.contains(&format!("policy_version=\"{}\"", first.version())),
            "the replaced policy is no longer exported"
        );
    }

    #[test]
    fn the_display_names_follow_the_stages_a_reload_puts_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fraud-sla.toml");
        write(&path, "");
        let config = Config::load(Some(&path)).unwrap();
        let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
        let (mut reloader, _rx) =
            Reloader::start(Some(path.clone()), config, metrics, health).unwrap();
        let labels = reloader.labels.clone();
        let names = |stage: &str| {
            let l = labels.read().unwrap();
            l.get(stage).map(|l| (l.zh.clone(), l.en.clone()))
        };
        assert_eq!(names("visit"), Some(("上门".into(), "Visit".into())));
        assert_eq!(names("phone_call"), None);

        write(
            &path,
            "[sla]\nstages = [\"phone_call\", \"feedback\"]\nphone_call_within = \"10m\"\n\
             [sla.stage.phone_call]\nsatisfied_by = [\"acknowledged\"]\nlabel_zh = \"电话劝阻\"\n",
        );
        reloader.reload();
        assert_eq!(
            names("phone_call"),
            Some(("电话劝阻".into(), "phone_call".into()))
        );
        assert_eq!(
            names("visit"),
            Some(("上门".into(), "Visit".into())),
            "open alerts keep their policy's stages, and their names"
        );
    }

    #[test]
    fn a_reload_reads_the_tokens_file_again() {
        use axum::http::{header, HeaderMap};
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let (path, tokens_file) = (dir.path().join("fraud-sla.toml"), dir.path().join("t.toml"));
        write(&path, "[http]\ntokens_file = \"t.toml\"\n");
        let entry = |secret: &str| {
            let sha = sha2::Sha256::digest(secret.as_bytes());
            let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
            format!("[[token]]\nsha256 = \"{hex}\"\nname = \"gwm\"\njurisdictions = [\"6201\"]\n")
        };
        write(&tokens_file, &entry("old-secret"));
        let config = Config::load(Some(&path)).unwrap();
        let (metrics, health) = (Arc::new(Metrics::new()), Arc::new(Health::default()));
        let (mut reloader, _rx) =
            Reloader::start(Some(path.clone()), config, metrics, health).unwrap();
        let in_force = reloader.tokens.subscribe();
        let with = |secret: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                format!("Bearer {secret}").parse().unwrap(),
            );
            in_force.borrow().access(&h).is_some()
        };
        assert!(with("old-secret") && !with("new-secret"));

        write(&tokens_file, &entry("new-secret"));
        reloader.reload();
        assert!(
            !with("old-secret") && with("new-secret"),
            "revoked without a restart"
        );

        write(&tokens_file, "[[token]]\nsha256 = \"not hex\"\n");
        reloader.reload();
        assert!(with("new-secret"), "a bad tokens file changes nothing");
        let failed = reloader.health.config().last_reload.unwrap();
        assert!(!failed.ok && failed.error.unwrap().contains("http.tokens_file"));

        write(&path, "");
        reloader.reload();
        assert!(
            in_force.borrow().required() && with("new-secret"),
            "a reload without tokens does not open /v1"
        );
    }
}
