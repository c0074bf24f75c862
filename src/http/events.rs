//! `GET /v1/events`: server-sent events for the board (docs/contract.md §10.4).

use axum::http::StatusCode;
use axum::response::Response;

use super::{error, Access};

/// The source of live events, shared by every connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hub {}

/// Not built yet.
pub(crate) async fn events(_access: Access) -> Response {
    error(StatusCode::NOT_IMPLEMENTED, "not implemented yet")
}
