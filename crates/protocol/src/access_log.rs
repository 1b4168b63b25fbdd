//! The access log a patient asks for (`POST /v1/log` with a signed [`LogRequest`]): every
//! entry of the holder's hash-chained log, in full for the patient's records and as leaf
//! hashes for others', enough to recompute the chain up to the head anchored on chain.
//!
//! The entry hashing ([`leaf`], [`chain`], [`verify`]) lives with the bindings, beside the
//! contract that anchors the head; it is re-exported here.
//!
//! [`LogRequest`]: crate::LogRequest

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

pub use medrec_bindings::access_log::{Access, Detail, Shown, chain, leaf, verify};

/// Where a patient asks for the access log.
pub const LOG_PATH: &str = "/v1/log";

/// The answer to an access-log request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogAnswer {
    /// The holder whose log it is.
    pub holder: Address,
    /// Every entry, from the first.
    pub entries: Vec<Shown>,
    /// The last entry's chained hash (zero when the log is empty).
    pub head: B256,
    /// How many entries.
    pub count: u64,
}
