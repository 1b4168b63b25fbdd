//! `GET /health`: whom this gatekeeper serves and how old its node's latest block is (not the
//! access log's length: that is the holder's read volume, for the holder's signed `/v1/log`): `503` with status `chain_stale` while reads are refused for it.

use crate::app::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use medrec_protocol::health::{CHAIN_STALE, Health, OK};
use std::sync::Arc;

/// `GET /health`.
pub async fn health(State(app): State<Arc<App>>) -> (StatusCode, Json<Health>) {
    let stale = app.head.stale().is_some();
    let status = if stale {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(Health {
            status: if stale { CHAIN_STALE } else { OK }.into(),
            holder: app.holder,
            head_block: app.head.number(),
            head_age_secs: app.head.age_secs(),
        }),
    )
}
