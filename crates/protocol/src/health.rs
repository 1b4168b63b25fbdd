//! `GET /health` of a gatekeeper: whom it serves and how old its node's latest block is. It
//! says nothing of the access log: its length is the holder's read volume, which only the
//! holder and (at each anchor) the chain see.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

/// Where a gatekeeper says it is up.
pub const HEALTH_PATH: &str = "/health";
/// [`Health::status`] of a gatekeeper that serves reads (HTTP 200).
pub const OK: &str = "ok";
/// [`Health::status`] of a gatekeeper whose node's latest block is older than its bound: it
/// refuses reads (`chain_stale`) until the node catches up (HTTP 503).
pub const CHAIN_STALE: &str = "chain_stale";

/// A gatekeeper's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// [`OK`], or [`CHAIN_STALE`].
    pub status: String,
    /// The holder it serves.
    pub holder: Address,
    /// The node's latest block, as last seen (0 from a gatekeeper that does not say).
    #[serde(default)]
    pub head_block: u64,
    /// Seconds between that block's timestamp and the gatekeeper's clock.
    #[serde(default)]
    pub head_age_secs: u64,
}
