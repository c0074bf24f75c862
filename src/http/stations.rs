//! `GET /v1/stations`: per jurisdiction and stage, for today in the display zone.

use axum::http::StatusCode;
use axum::response::Response;

use super::{error, Access};

/// Not built yet.
pub(crate) async fn stations(_access: Access) -> Response {
    error(StatusCode::NOT_IMPLEMENTED, "not implemented yet")
}
