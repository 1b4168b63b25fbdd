//! `GET /metrics`: the gatekeeper's counters in Prometheus text format. Read requests that
//! were refused without an entry in the access log (not signed for this holder) are counted
//! here by reason, so a flood of garbage shows without filling the log.

use crate::app::App;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;
use std::sync::Arc;

/// Where the counters are.
pub const METRICS_PATH: &str = "/metrics";

/// `GET /metrics`.
pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let name = "medrec_gatekeeper_unlogged_requests_total";
    let mut out = format!(
        "# HELP {name} Read requests refused without an access-log entry (not signed for this holder).\n# TYPE {name} counter\n"
    );
    for (reason, n) in app.log.unlogged() {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
