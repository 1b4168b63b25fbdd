//! The HTTP API, one module per route group: [`records`] (upload, read, list, erase), [`log`] (the
//! access log, paged), [`research`] (aggregate queries), [`health`] and [`metrics`]. Every error is an
//! [`error::ApiError`]: the protocol's error body with the status its code names. Bodies are
//! read up to a limit by [`body`].

pub mod body;
pub mod error;
pub mod health;
pub mod log;
pub mod metrics;
pub mod records;
pub mod research;

use crate::app::App;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use error::ApiError;
use medrec_protocol::ErrorCode;
use medrec_protocol::access_log::LOG_PATH;
use medrec_protocol::health::HEALTH_PATH;
use medrec_protocol::records::{ERASE_ROUTE, LIST_PATH, READ_ROUTE, UPLOAD_PATH};
use medrec_protocol::research::QUERY_PATH;
use medrec_protocol::study_tags::SERVICE_KEY_PATH;
use std::sync::Arc;

/// The routes. Bodies are read by each handler up to its own limit.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(health::health))
        .route(SERVICE_KEY_PATH, get(research::service_key))
        .route(metrics::METRICS_PATH, get(metrics::metrics))
        .route(
            UPLOAD_PATH,
            post(records::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            READ_ROUTE,
            post(records::read).layer(DefaultBodyLimit::disable()),
        )
        .route(
            ERASE_ROUTE,
            post(records::erase).layer(DefaultBodyLimit::disable()),
        )
        .route(
            LIST_PATH,
            post(records::list).layer(DefaultBodyLimit::disable()),
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
