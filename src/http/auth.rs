//! Who may read what (docs/contract.md §8, §10.4): `FRAUD_SLA_HTTP_TOKEN` sees everything; a token
//! of `[http] tokens_file` sees only alerts whose `jurisdiction` starts with one of its prefixes.
//! With neither configured, `/v1` is open (version 1 behaviour). A `tokens_file` closes it even
//! when it lists no token: emptying the file revokes every station, it does not open the API.
//! `SIGHUP` reads the file again ([`TokensInForce`]): a revoked token stops working at once, on
//! open event streams too.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, HttpConfig, ScopedToken};

/// What one request may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    All,
    /// A station's token: its name (for logs) and jurisdiction prefixes.
    Scoped {
        name: String,
        prefixes: Vec<String>,
    },
}

impl Access {
    /// Whether an alert of `jurisdiction` is visible.
    pub(crate) fn sees(&self, jurisdiction: &str) -> bool {
        match self {
            Access::All => true,
            Access::Scoped { prefixes, .. } => prefixes.iter().any(|p| jurisdiction.starts_with(p)),
        }
    }

    /// The jurisdiction prefixes a list may cover: the request's prefix narrowed by the scope.
    /// `None`: everything; an empty list: nothing (the request asks outside the scope).
    pub(crate) fn narrow(&self, requested: Option<&str>) -> Option<Vec<String>> {
        match (self, requested) {
            (Access::All, None) => None,
            (Access::All, Some(r)) => Some(vec![r.to_owned()]),
            (Access::Scoped { prefixes, .. }, None) => Some(prefixes.clone()),
            (Access::Scoped { prefixes, .. }, Some(r)) => Some(
                prefixes
                    .iter()
                    .filter_map(|p| {
                        if r.starts_with(p.as_str()) {
                            Some(r.to_owned())
                        } else if p.starts_with(r) {
                            Some(p.clone())
                        } else {
                            None
                        }
                    })
                    .collect(),
            ),
        }
    }
}

/// The tokens a request may present.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    /// SHA-256 of `FRAUD_SLA_HTTP_TOKEN`, which sees everything: compared as a digest, so the
    /// comparison takes as long whatever the length of the token given.
    all: Option<[u8; 32]>,
    /// `(sha256 bytes, access)` of the scoped tokens.
    scoped: Vec<([u8; 32], Access)>,
    /// Whether `[http] tokens_file` is configured, even with no entry.
    file: bool,
}

/// The tokens in force, replaced by a reload.
pub(crate) type TokensInForce = tokio::sync::watch::Receiver<std::sync::Arc<Tokens>>;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("all", &self.all.as_ref().map(|_| "***"))
            .field("scoped", &self.scoped.len())
            .field("file", &self.file)
            .finish()
    }
}

impl Tokens {
    /// The tokens of `config`: `FRAUD_SLA_HTTP_TOKEN` and the entries of `tokens_file`, read
    /// now.
    pub(crate) fn of(config: &HttpConfig) -> Result<Tokens, ConfigError> {
        let mut tokens = Tokens::new(config.token.clone(), config.scoped_tokens()?);
        tokens.file = config.tokens_file.is_some();
        Ok(tokens)
    }

    /// The token that sees everything and the scoped tokens of `[http] tokens_file`.
    pub(crate) fn new(all: Option<String>, scoped: Vec<ScopedToken>) -> Tokens {
        Tokens {
            all: all.map(|t| Sha256::digest(t.as_bytes()).into()),
            file: !scoped.is_empty(),
            scoped: scoped
                .into_iter()
                .map(|t| {
                    let access = Access::Scoped {
                        name: t.name,
                        prefixes: t.jurisdictions,
                    };
                    (t.sha256, access)
                })
                .collect(),
        }
    }

    /// Whether any token is configured (otherwise `/v1` is open).
    pub(crate) fn required(&self) -> bool {
        self.all.is_some() || self.file
    }

    /// The access of the request's bearer token; `None` for a missing or wrong one. Compared in
    /// constant time.
    pub(crate) fn access(&self, headers: &HeaderMap) -> Option<Access> {
        self.access_of(authorization(headers))
    }

    /// The access of an `Authorization` header's value ([`authorization`]).
    pub(crate) fn access_of(&self, authorization: Option<&str>) -> Option<Access> {
        if !self.required() {
            return Some(Access::All);
        }
        let given = authorization.and_then(bearer_token)?;
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if let Some(all) = &self.all {
            if bool::from(all.ct_eq(&digest)) {
                return Some(Access::All);
            }
        }
        let mut found = None;
        for (hash, access) in &self.scoped {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(access.clone());
            }
        }
        found
    }
}

/// The request's `Authorization` header, if it is text.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` value. The scheme's name is
/// case-insensitive (RFC 9110 §11.1), so `bearer` and `BEARER` name it too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn a_scoped_token_sees_its_prefixes_only_and_a_wrong_one_nothing() {
        let scoped = vec![ScopedToken {
            sha256: Sha256::digest(b"station-secret").into(),
            name: "gwm".into(),
            jurisdictions: vec!["620102".into()],
        }];
        let t = Tokens::new(Some("root".into()), scoped);
        assert_eq!(t.access(&bearer("root")), Some(Access::All));
        let station = t.access(&bearer("station-secret")).unwrap();
        assert!(station.sees("620102-GWM") && !station.sees("620103-QLH"));
        assert_eq!(t.access(&bearer("wrong")), None);
        assert_eq!(t.access(&HeaderMap::new()), None);
        assert_eq!(station.narrow(None), Some(vec!["620102".into()]));
        assert_eq!(station.narrow(Some("6201")), Some(vec!["620102".into()]));
        assert_eq!(
            station.narrow(Some("620102-G")),
            Some(vec!["620102-G".into()])
        );
        assert_eq!(station.narrow(Some("3301")), Some(vec![]));
        assert_eq!(
            Tokens::default().access(&HeaderMap::new()),
            Some(Access::All),
            "no token configured: open, as in version 1"
        );
    }

    #[test]
    fn a_tokens_file_with_no_entry_closes_v1_rather_than_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, "# every station revoked\n").unwrap();
        let config = HttpConfig {
            tokens_file: Some(path.display().to_string()),
            ..HttpConfig::default()
        };
        let tokens = Tokens::of(&config).unwrap();
        assert!(tokens.required());
        assert_eq!(tokens.access(&HeaderMap::new()), None);
        assert_eq!(tokens.access(&bearer("anything")), None);

        let with_root = Tokens::of(&HttpConfig {
            token: Some("root".into()),
            ..config.clone()
        })
        .unwrap();
        assert_eq!(with_root.access(&bearer("root")), Some(Access::All));
        assert_eq!(with_root.access(&bearer("roo")), None);

        std::fs::remove_file(&path).unwrap();
        let gone = Tokens::of(&config).unwrap_err().to_string();
        assert!(gone.contains("http.tokens_file"), "{gone}");
    }

    #[test]
    fn the_scheme_is_named_in_any_case_and_the_token_is_what_follows_it() {
        let t = Tokens::new(Some("root".into()), Vec::new());
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            t.access(&h)
        };
        for value in ["Bearer root", "bearer root", "BEARER root", "Bearer  root"] {
            assert_eq!(with(value), Some(Access::All), "{value}");
        }
        for value in [
            "Bearer",
            "Bearer ",
            "Basic root",
            "Bearerroot",
            "Bearer root2",
            "root",
        ] {
            assert_eq!(with(value), None, "{value}");
        }
    }
}
