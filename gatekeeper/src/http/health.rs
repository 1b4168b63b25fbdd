//! `GET /health`: whom this gatekeeper serves and how long its access log is.

use crate::app::App;
use axum::Json;
use axum::extract::State;
use medrec_protocol::health::Health;
use std::sync::Arc;

/// `GET /health`.
pub async fn health(State(app): State<Arc<App>>) -> Json<Health> {
    let (log_entries, log_head) = app.log.head().await;
    Json(Health {
        status: "ok".into(),
        holder: app.holder,
        log_entries,
        log_head,
    })
}
