//! Request bodies, read up to a limit.

use super::error::ApiError;
use axum::body::{Body, Bytes};
use medrec_protocol::ErrorCode;
use serde::de::DeserializeOwned;

/// Reads at most `limit` bytes of the body; `None` if it is larger.
pub async fn limited(body: Body, limit: usize) -> Option<Bytes> {
    axum::body::to_bytes(body, limit).await.ok()
}

/// Reads a JSON body of at most `limit` bytes; `expected` says its shape when it is not one.
pub async fn json_body<T: DeserializeOwned>(
    body: Body,
    limit: usize,
    expected: &str,
) -> Result<T, ApiError> {
    let bytes = limited(body, limit).await.ok_or_else(ApiError::too_large)?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::new(ErrorCode::Malformed, expected))
}

/// What a signed request's body must look like.
pub const ENVELOPE: &str = "expected {\"request\": {...}, \"signature\": \"0x...\"}";
