//! `GET /`: the operators' board, its page and assets compiled into the binary.

use axum::response::Html;
use axum::routing::get;
use axum::Router;

use super::HttpState;

pub(crate) fn routes() -> Router<HttpState> {
    Router::new().route(
        "/",
        get(|| async { Html("<!doctype html><title>fraud-sla</title>") }),
    )
}
