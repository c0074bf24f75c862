//! Who may read what (docs/contract.md §8, §10.4): `FRAUD_SLA_HTTP_TOKEN` sees everything; a token
//! of `[http] tokens_file` sees only alerts whose `jurisdiction` starts with one of its prefixes.
//! With neither configured, `/v1` is open (version 1 behaviour).

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ScopedToken;

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
#[derive(Clone, Default)]
pub(crate) struct Tokens {
    /// `FRAUD_SLA_HTTP_TOKEN`: sees everything.
    all: Option<String>,
    /// `(sha256 bytes, access)` of the scoped tokens.
    scoped: Vec<([u8; 32], Access)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("all", &self.all.as_ref().map(|_| "***"))
            .field("scoped", &self.scoped.len())
            .finish()
    }
}

impl Tokens {
    /// The token that sees everything and the scoped tokens of `[http] tokens_file`.
    pub(crate) fn new(all: Option<String>, scoped: Vec<ScopedToken>) -> Tokens {
        Tokens {
            all,
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
        self.all.is_some() || !self.scoped.is_empty()
    }

    /// The access of the request's bearer token; `None` for a missing or wrong one. Compared in
    /// constant time.
    pub(crate) fn access(&self, headers: &HeaderMap) -> Option<Access> {
        if !self.required() {
            return Some(Access::All);
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)?;
        if let Some(all) = &self.all {
            if bool::from(given.as_bytes().ct_eq(all.as_bytes())) {
                return Some(Access::All);
            }
        }
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let mut found = None;
        for (hash, access) in &self.scoped {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(access.clone());
            }
        }
        found
    }
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
