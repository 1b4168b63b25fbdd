//! `POST /v1/log`: the access log, a page at a time, to its patient (the entries of their
//! own records, each with its inclusion proof) or to the holder (every entry); anyone else
//! gets the uniform `denied`. Requests are signed, charged to their requester's log allowance
//! once every other check passed, and a page is one bounded query: no answer holds the whole
//! log.

use super::body::{ENVELOPE, json_body};
use super::error::ApiError;
use crate::access_log;
use crate::app::App;
use crate::auth::Refusal;
use axum::Json;
use axum::extract::{Request, State};
use medrec_protocol::ErrorCode;
use medrec_protocol::access_log::{DEFAULT_PAGE, LogPage, LogQuery, MAX_CONSISTENCY, MAX_PAGE};
use std::sync::Arc;

/// `POST /v1/log`.
pub async fn access_log(
    State(app): State<Arc<App>>,
    req: Request,
) -> Result<Json<LogPage>, ApiError> {
    let q: LogQuery = json_body(req.into_body(), app.limits.max_request_bytes, ENVELOPE).await?;
    app.auth
        .verify(&q.signed, Some(&app.log.rate))
        .map_err(|why| match why {
            Refusal::RateLimited => ApiError::new(ErrorCode::RateLimited, "too many requests"),
            _ => ApiError::denied(),
        })?;
    let who = q.signed.request.patient;
    let unavailable = |_| ApiError::unavailable("try again later");
    // Only the holder and the patients of records stored here are answered: a stranger learns
    // nothing, not even how long the log is.
    let patient = if who == app.holder {
        None
    } else if access_log::is_patient(&app.pool, who)
        .await
        .map_err(unavailable)?
    {
        Some(who)
    } else {
        return Err(ApiError::denied());
    };
    let size = q.size.unwrap_or_else(|| app.log.size());
    if q.consistency.len() > MAX_CONSISTENCY {
        return Err(ApiError::new(
            ErrorCode::Malformed,
            format!("at most {MAX_CONSISTENCY} consistency proofs per request"),
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let mut entries = access_log::page(&app.pool, patient, q.from, size, limit)
        .await
        .map_err(unavailable)?;
    // The holder recomputes the root from every leaf; a patient needs each entry's path.
    let mut proved: &mut [_] = &mut [];
    if patient.is_some() {
        proved = &mut entries;
    }
    let beyond = || {
        ApiError::new(
            ErrorCode::Malformed,
            "a size is beyond the log, or a consistency pair is not [old, new] with old <= new",
        )
    };
    let (root, consistency) = app
        .log
        .prove(size, proved, &q.consistency)
        .ok_or_else(beyond)?;
    let next = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.index + 1))
        .flatten()
        .filter(|n| *n < size);
    Ok(Json(LogPage {
        holder: app.holder,
        size,
        root,
        legacy_entries: app.log.legacy_entries,
        entries,
        next,
        consistency,
    }))
}
