//! `GET /`: the operators' board (docs/contract.md §10.4), its page and assets compiled into the
//! binary: plain HTML, vanilla JavaScript and CSS from `src/http/board/`, so the people at the
//! duty desk need no build step, no CDN and no internet.
//!
//! The page itself is public (it holds no data); everything it shows comes from `/v1`, with the
//! bearer token the page asks for when `/v1` answers 401.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use super::HttpState;

/// One file of the board.
#[derive(Debug)]
struct Asset {
    /// Where it is served.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("board/index.html"),
    },
    Asset {
        path: "/board.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("board/board.js"),
    },
    Asset {
        path: "/board.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("board/board.css"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("board/favicon.svg"),
    },
];

/// The page may load only its own files and talk only to its own origin; data goes into the DOM
/// as text, never as markup, and this stops anything that got in anyway.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn routes() -> Router<HttpState> {
    let mut router = Router::new();
    for (i, asset) in ASSETS.iter().enumerate().skip(1) {
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { respond(i, &headers) }),
        );
    }
    let page = |State(s): State<HttpState>, headers: HeaderMap| async move {
        if s.display.language.starts_with("en") {
            let (body, tag) = english_page();
            respond_with(ASSETS[0].content_type, body, tag, &headers)
        } else {
            respond(0, &headers)
        }
    };
    router.route("/", get(page)).route("/index.html", get(page))
}

/// The page for `[display] language = "en"`: `<html lang="en">`, so the login a token-protected
/// board shows before `/v1/display` can be read is in the configured language too.
fn english_page() -> (&'static [u8], &'static str) {
    static PAGE: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    let (body, tag) = PAGE.get_or_init(|| {
        let page = std::str::from_utf8(ASSETS[0].body)
            .expect("the page is UTF-8")
            .replacen("<html lang=\"zh-CN\">", "<html lang=\"en\">", 1);
        let tag = tag_of(page.as_bytes());
        (page.into_bytes(), tag)
    });
    (body, tag)
}

fn tag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// A strong validator per asset, so a browser revalidates every load (`no-cache`: a new binary's
/// page is never mixed with an old script) and gets a 304 without the body when nothing changed.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| ASSETS.iter().map(|a| tag_of(a.body)).collect())[i]
}

fn respond(i: usize, request: &HeaderMap) -> Response {
    respond_with(ASSETS[i].content_type, ASSETS[i].body, etag(i), request)
}

fn respond_with(
    content_type: &'static str,
    body: &'static [u8],
    tag: &'static str,
    request: &HeaderMap,
) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, HeaderValue::from_static(tag)),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(i: usize) -> &'static str {
        std::str::from_utf8(ASSETS[i].body).expect("UTF-8")
    }

    #[test]
    fn every_asset_has_its_type_a_validator_and_no_cache() {
        for (i, a) in ASSETS.iter().enumerate() {
            let r = respond(i, &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::OK, "{}", a.path);
            let h = r.headers();
            assert_eq!(h[header::CONTENT_TYPE], a.content_type);
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            let tag = h[header::ETAG].clone();
            let mut again = HeaderMap::new();
            again.insert(header::IF_NONE_MATCH, tag);
            assert_eq!(respond(i, &again).status(), StatusCode::NOT_MODIFIED);
        }
        let tags: std::collections::BTreeSet<_> = (0..ASSETS.len()).map(etag).collect();
        assert_eq!(tags.len(), ASSETS.len(), "one validator per file");
    }

    #[test]
    fn an_english_board_is_served_as_english_with_its_own_validator() {
        let (body, tag) = english_page();
        let page = std::str::from_utf8(body).unwrap();
        assert!(page.contains("<html lang=\"en\">"), "{page}");
        assert_eq!(page.replacen("lang=\"en\"", "lang=\"zh-CN\"", 1), text(0));
        assert_ne!(tag, etag(0));
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, HeaderValue::from_static(tag));
        let r = respond_with(ASSETS[0].content_type, body, tag, &again);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn the_page_loads_only_what_is_served_here() {
        let page = text(0);
        for a in &ASSETS[1..] {
            // Relative, so the board also works behind a reverse proxy's path prefix.
            let relative = format!("\"{}\"", a.path.trim_start_matches('/'));
            assert!(page.contains(&relative), "the page loads {}", a.path);
        }
        for remote in ["http://", "https://", "//cdn", "<script>", " style="] {
            assert!(!page.contains(remote), "the page has {remote}");
        }
    }

    /// Data reaches the DOM as text only (textContent, text nodes), never parsed as markup.
    #[test]
    fn the_script_never_parses_markup() {
        let js = text(1);
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!js.contains(sink), "board.js uses {sink}");
        }
    }
}
