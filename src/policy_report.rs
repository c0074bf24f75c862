//! The effective policy as `check-config` prints it; secrets are never shown.

use std::fmt::Write;

use crate::config::{redact_url, Config, ENV_HTTP_TOKEN};
use crate::domain::Risk;

fn dur(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

pub fn render(c: &Config) -> String {
    let mut out = String::new();
    let k = &c.kafka;
    let _ = writeln!(out, "configuration is valid\n");
    let _ = writeln!(out, "kafka:   brokers {} (group {})", k.brokers, k.group_id);
    let _ = writeln!(
        out,
        "         in  {} + {} (co-partitioned)",
        k.alerts_topic, k.dispositions_topic
    );
    let _ = writeln!(
        out,
        "         out {} / dead letters {}",
        k.escalations_topic, k.deadletter_topic
    );
    for key in k.client.keys() {
        let shown = if crate::config::is_secret_key(key) {
            "***"
        } else {
            k.client[key].as_str()
        };
        let _ = writeln!(out, "         client {key} = {shown}");
    }
    let _ = writeln!(
        out,
        "redis:   {} (prefix {}{})",
        redact_url(&c.redis.url),
        c.redis.key_prefix,
        if c.redis.cluster { ", cluster" } else { "" }
    );
    let v1 = match (c.http.token.is_some(), &c.http.tokens_file) {
        (true, None) => "required".to_owned(),
        (true, Some(file)) => format!("required: {ENV_HTTP_TOKEN} or a scoped token of {file}"),
        (false, Some(file)) => format!("required: a scoped token of {file}"),
        (false, None) => format!("not set: no {ENV_HTTP_TOKEN}, no tokens_file; /v1 is open"),
    };
    let _ = writeln!(out, "http:    {} (/v1 token {v1})", c.http.listen);
    if let Some(am) = &c.alertmanager {
        let auth = match (&am.username, &am.bearer_token) {
            (Some(user), _) => format!("basic auth as {user}, password ***"),
            (None, Some(_)) => "bearer token ***".to_owned(),
            (None, None) => "no auth".to_owned(),
        };
        let _ = writeln!(
            out,
            "alertmanager: {} ({auth}; firing breaches re-posted every {})",
            redact_url(&am.url),
            am.resend_every
        );
    }
    let s = &c.sla;
    let _ = writeln!(
        out,
        "limits:  retention {}, max clock skew {}, max message {} bytes\n",
        s.retention, s.max_clock_skew, s.max_message_bytes
    );
    let policy = c.policy();
    let labels = c.stage_labels().unwrap_or_default();
    let _ = writeln!(out, "policy_version = {}\n", policy.version());
    for risk in Risk::ALL {
        let l = policy.for_risk(risk);
        let _ = writeln!(out, "risk {risk}:");
        let _ = writeln!(
            out,
            "  {:<12} {:<24} {:<26} satisfied by",
            "stage", "label", "deadline"
        );
        for r in &l.stages {
            let label = labels
                .get(r.stage.as_str())
                .map(|l| format!("{} / {}", l.zh, l.en))
                .unwrap_or_default();
            let kinds: Vec<&str> = r.satisfied_by.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(
                out,
                "  {:<12} {:<w$} {:<26} {}",
                r.stage.as_str(),
                label,
                format!("issued_at + {}", dur(r.within)),
                kinds.join(", "),
                // CJK characters take two columns.
                w = 24usize.saturating_sub(label.chars().filter(|c| !c.is_ascii()).count()),
            );
        }
        if l.warn_before > 0 {
            let _ = writeln!(
                out,
                "  warning      {} before each deadline -> {}",
                dur(l.warn_before),
                l.warn_notify.join(", ")
            );
        } else {
            let _ = writeln!(out, "  warning      disabled");
        }
        for (i, after) in l.escalate_after.iter().enumerate() {
            let _ = writeln!(
                out,
                "  level {:<6} deadline + {} -> {}",
                i + 1,
                dur(*after),
                l.notify(u8::try_from(i + 1).unwrap_or(u8::MAX)).join(", ")
            );
        }
        if l.grace > 0 {
            let _ = writeln!(
                out,
                "  grace        {} added to every warning and breach",
                dur(l.grace)
            );
        }
    }
    let d = &c.display;
    let _ = writeln!(
        out,
        "\ndisplay: times in {}, language {}",
        d.timezone, d.language
    );
    out
}
