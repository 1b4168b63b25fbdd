//! The gatekeeper's hash-chained access log: entry hashing and verification, shared by the
//! gatekeeper that writes it and the patient's CLI that checks it.

use alloy::primitives::{Address, B256, keccak256};
use alloy::sol_types::SolValue;
use serde::{Deserialize, Serialize};

/// One access, before it is chained.
#[derive(Debug, Clone)]
pub struct Access {
    /// Who asked (zero when the request could not be read).
    pub requester: Address,
    /// Which record (zero when unknown).
    pub record_id: B256,
    /// The record's patient (zero when the record is unknown).
    pub patient: Address,
    /// Whether bytes were served.
    pub allowed: bool,
    /// Why (for the log only: answers to requesters never say).
    pub reason: String,
    /// The request's nonce (zero when none).
    pub nonce: B256,
    /// When the request expires (0 when none): its nonce is remembered until then.
    pub expires_at: u64,
}

/// The leaf hash of an entry: what a patient sees of other patients' entries.
pub fn leaf(seq: u64, at_ms: u64, a: &Access) -> B256 {
    keccak256(
        (
            seq,
            at_ms,
            a.requester,
            a.record_id,
            a.patient,
            a.allowed,
            a.reason.clone(),
            a.nonce,
        )
            .abi_encode(),
    )
}

/// The chained hash of an entry.
pub fn chain(prev: B256, leaf: B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(prev.as_slice());
    buf[32..].copy_from_slice(leaf.as_slice());
    keccak256(buf)
}

/// An entry as shown to a patient: full for their records, the leaf only for others'.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shown {
    /// Position in the log, from 1.
    pub seq: u64,
    /// The entry's leaf hash.
    pub leaf: B256,
    /// The chained hash after this entry.
    pub entry_hash: B256,
    /// The details, for the patient's own records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
}

/// The details of an entry about the patient's records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    /// Who asked.
    pub requester: Address,
    /// Which record.
    pub record_id: B256,
    /// The patient.
    pub patient: Address,
    /// Whether bytes were served.
    pub allowed: bool,
    /// Why.
    pub reason: String,
    /// The request's nonce.
    pub nonce: B256,
}

/// Recomputes the chain over `entries` (in order from seq 1): checks each shown detail
/// against its leaf and each entry hash against the chain. Returns the head hash.
pub fn verify(entries: &[Shown]) -> Result<B256, String> {
    let mut prev = B256::ZERO;
    for (i, e) in entries.iter().enumerate() {
        if e.seq != i as u64 + 1 {
            return Err(format!("entry {} is missing or out of order", i + 1));
        }
        if let Some(d) = &e.detail {
            let a = Access {
                requester: d.requester,
                record_id: d.record_id,
                patient: d.patient,
                allowed: d.allowed,
                reason: d.reason.clone(),
                nonce: d.nonce,
                expires_at: 0,
            };
            if leaf(e.seq, d.at_ms, &a) != e.leaf {
                return Err(format!("entry {} does not match its details", e.seq));
            }
        }
        let h = chain(prev, e.leaf);
        if h != e.entry_hash {
            return Err(format!("entry {} does not chain to the one before", e.seq));
        }
        prev = h;
    }
    Ok(prev)
}
