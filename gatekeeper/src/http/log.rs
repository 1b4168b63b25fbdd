//! `POST /v1/log`: a patient's signed request for the access log, answered with every entry
//! (in full for their records, leaf hashes for others').

use super::body::{ENVELOPE, json_body};
use super::error::ApiError;
use crate::access_log;
use crate::app::App;
use axum::Json;
use axum::extract::{Request, State};
use medrec_protocol::access_log::LogAnswer;
use medrec_protocol::{LogRequest, Signed};
use std::sync::Arc;

/// `POST /v1/log`.
pub async fn access_log(
    State(app): State<Arc<App>>,
    req: Request,
) -> Result<Json<LogAnswer>, ApiError> {
    let signed: Signed<LogRequest> =
        json_body(req.into_body(), app.limits.max_request_bytes, ENVELOPE).await?;
    app.auth
        .verify(&signed, None)
        .map_err(|_| ApiError::denied())?;
    let entries = access_log::entries_for(&app.pool, signed.request.patient)
        .await
        .map_err(|_| ApiError::unavailable("try again later"))?;
    Ok(Json(LogAnswer {
        holder: app.holder,
        head: entries.last().map(|e| e.entry_hash).unwrap_or_default(),
        count: entries.len() as u64,
        entries,
    }))
}
