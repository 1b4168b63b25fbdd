//! The HTTP API, one module per route group: [`records`] (upload, read), [`log`] (the
//! patient's access log), [`research`] (aggregate queries) and [`health`]. Every error is
//! the protocol's [`ErrorBody`] with the status its code names.

pub mod health;
pub mod log;
pub mod records;
pub mod research;

use crate::app::App;
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use medrec_protocol::access_log::LOG_PATH;
use medrec_protocol::health::HEALTH_PATH;
use medrec_protocol::records::UPLOAD_PATH;
use medrec_protocol::research::QUERY_PATH;
use medrec_protocol::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The routes. Bodies are read by each handler up to its own limit.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(health::health))
        .route(
            UPLOAD_PATH,
            post(records::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/records/{record_id}/read",
            post(records::read).layer(DefaultBodyLimit::disable()),
        )
        .route(
            LOG_PATH,
            post(log::access_log).layer(DefaultBodyLimit::disable()),
        )
        .route(
            QUERY_PATH,
            post(research::query).layer(DefaultBodyLimit::disable()),
        )
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .with_state(app)
}

/// An error answer: the body, with the status its code names.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    /// An error answer with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorBody::new(code, message))
    }

    /// The one answer every refused request gets, whatever the reason.
    pub fn denied() -> Self {
        Self(ErrorBody::denied())
    }

    /// The body was larger than the endpoint takes.
    fn too_large() -> Self {
        Self::new(ErrorCode::TooLarge, "request body too large")
    }

    /// The database or the chain is down.
    pub fn unavailable(message: &str) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> Self {
        Self(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.error.code.status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

/// Reads at most `limit` bytes of the body; `None` if it is larger.
pub async fn limited(body: Body, limit: usize) -> Option<Bytes> {
    axum::body::to_bytes(body, limit).await.ok()
}

/// Reads a JSON body of at most `limit` bytes; `expected` says its shape when it is not one.
async fn json_body<T: DeserializeOwned>(
    body: Body,
    limit: usize,
    expected: &str,
) -> Result<T, ApiError> {
    let bytes = limited(body, limit).await.ok_or_else(ApiError::too_large)?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::new(ErrorCode::Malformed, expected))
}

/// What a signed request's body must look like.
const ENVELOPE: &str = "expected {\"request\": {...}, \"signature\": \"0x...\"}";
