//! A holder's access log: every read and refusal, as the leaves of a Merkle tree
//! ([`crate::merkle`], RFC 6962) whose root the holder anchors on chain from time to time
//! (`RecordRegistry.anchorAccessLog(root, size)`), and the signed, paged request that reads it
//! (`POST /v1/log`).
//!
//! A patient asks with a signed [`LogRequest`] and gets only the entries of their own
//! records, each with its inclusion proof; the holder, signing as itself, gets every entry,
//! enough to recompute the root. Either may ask for consistency proofs between sizes: every
//! anchor in the chain's history must be a prefix of the tree served, so a rewrite of any
//! entry shows to anyone who holds any earlier anchor.
//!
//! [`LogRequest`]: crate::LogRequest

use crate::merkle;
use crate::{LogRequest, Signed};
use alloy::primitives::{Address, B256};
use alloy::sol_types::SolValue;
use serde::{Deserialize, Serialize};

/// Where the access log is read.
pub const LOG_PATH: &str = "/v1/log";

/// Most entries in one page.
pub const MAX_PAGE: u32 = 1_000;

/// Entries in a page when the request names no limit.
pub const DEFAULT_PAGE: u32 = 500;

/// Most consistency proofs asked for in one request.
pub const MAX_CONSISTENCY: usize = 64;

/// One access: a read served or refused, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Who signed the request (the requester it names when it signed it itself).
    pub requester: Address,
    /// Which record (zero when unknown).
    pub record_id: B256,
    /// The record's patient (zero when the record is unknown).
    pub patient: Address,
    /// Whether bytes were served.
    pub allowed: bool,
    /// Why (for the log only: answers to requesters never say).
    pub reason: String,
    /// The request's nonce.
    pub nonce: B256,
    /// When the request expires: its nonce is remembered until then (not in the leaf).
    pub expires_at: u64,
}

/// The data of the leaf at `index` (from 0), written at `at_ms`:
/// `abi.encode(index, at_ms, requester, record_id, patient, allowed, reason, nonce)`.
pub fn leaf_data(index: u64, at_ms: u64, a: &Access) -> Vec<u8> {
    (
        index,
        at_ms,
        a.requester,
        a.record_id,
        a.patient,
        a.allowed,
        a.reason.clone(),
        a.nonce,
    )
        .abi_encode()
}

/// The Merkle leaf hash of the entry at `index`.
pub fn leaf(index: u64, at_ms: u64, a: &Access) -> B256 {
    merkle::leaf_hash(&leaf_data(index, at_ms, a))
}

/// `POST /v1/log`'s body: the signed request, and which page of which tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// The signed request: `patient` is the signer, a patient or the holder itself.
    #[serde(flatten)]
    pub signed: Signed<LogRequest>,
    /// The tree size the page's proofs are against (default: the log's size now). A client
    /// reading several pages pins the size the first page answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The first leaf index to look at (default 0).
    #[serde(default)]
    pub from: u64,
    /// Most entries in the page (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Consistency proofs wanted, as `[old size, new size]` pairs within the tree (at most
    /// [`MAX_CONSISTENCY`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<[u64; 2]>,
}

/// One page of the access log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    /// The holder whose log it is.
    pub holder: Address,
    /// The tree size the proofs are against.
    pub size: u64,
    /// The root of the tree of that size.
    pub root: B256,
    /// How many entries were written before the log became a Merkle tree: anchors of at most
    /// that many entries are heads of the old hash chain, not roots.
    pub legacy_entries: u64,
    /// The entries the requester may see with index in `[from, size)`, in order: a patient's
    /// own, with inclusion proofs; every one for the holder.
    pub entries: Vec<Entry>,
    /// Where the next page starts (`from`), when there may be more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// The consistency proofs asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<Consistency>,
}

/// An entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Its leaf index, from 0.
    pub index: u64,
    /// When it was written, in milliseconds since the epoch.
    pub at_ms: u64,
    /// Who signed the request.
    pub requester: Address,
    /// Which record (zero when unknown).
    pub record_id: B256,
    /// The record's patient (zero when unknown).
    pub patient: Address,
    /// Whether bytes were served.
    pub allowed: bool,
    /// Why.
    pub reason: String,
    /// The request's nonce.
    pub nonce: B256,
    /// Its inclusion proof in the tree of the page's size (patients' pages only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<B256>,
}

impl Entry {
    /// The access it records.
    pub fn access(&self) -> Access {
        Access {
            requester: self.requester,
            record_id: self.record_id,
            patient: self.patient,
            allowed: self.allowed,
            reason: self.reason.clone(),
            nonce: self.nonce,
            expires_at: 0,
        }
    }

    /// Its leaf hash.
    pub fn leaf(&self) -> B256 {
        leaf(self.index, self.at_ms, &self.access())
    }

    /// Whether its proof shows it in the tree of `size` leaves with `root`.
    pub fn is_included(&self, size: u64, root: B256) -> bool {
        merkle::verify_inclusion(self.leaf(), self.index, size, &self.proof, root)
    }
}

/// A consistency proof between two sizes of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    /// The older size.
    pub old: u64,
    /// The newer size.
    pub new: u64,
    /// The proof (RFC 6962 2.1.2).
    pub proof: Vec<B256>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_without_paging_reads_as_the_first_page() {
        let q: LogQuery = serde_json::from_str(
            r#"{"request":{"patient":"0x1111111111111111111111111111111111111111","audience":"0x2222222222222222222222222222222222222222","nonce":"0x1","issuedAt":1,"expiresAt":2},"signature":"0x00"}"#,
        )
        .unwrap();
        assert_eq!((q.size, q.from, q.limit), (None, 0, None));
        assert!(q.consistency.is_empty());
        let e = Entry {
            index: 3,
            at_ms: 7,
            requester: Address::repeat_byte(1),
            record_id: B256::repeat_byte(2),
            patient: Address::repeat_byte(3),
            allowed: false,
            reason: "the chain does not allow it".into(),
            nonce: B256::repeat_byte(4),
            proof: vec![],
        };
        assert_eq!(e.leaf(), merkle::leaf_hash(&leaf_data(3, 7, &e.access())));
        let mut other = e.clone();
        other.index = 4;
        assert_ne!(e.leaf(), other.leaf(), "the index is in the leaf");
    }
}
