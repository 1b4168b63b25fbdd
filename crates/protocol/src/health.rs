//! `GET /health` of a gatekeeper: whom it serves and how long its access log is.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Where a gatekeeper says it is up.
pub const HEALTH_PATH: &str = "/health";

/// A gatekeeper's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok` when it answers.
    pub status: String,
    /// The holder it serves.
    pub holder: Address,
    /// How many entries its access log has.
    pub log_entries: u64,
    /// The log's head (zero when empty).
    pub log_head: B256,
}
