//! The one error type of the HTTP layer: the protocol's [`ErrorBody`], answered with the
//! status its code names.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use medrec_protocol::{ErrorBody, ErrorCode};

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
    pub fn too_large() -> Self {
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
