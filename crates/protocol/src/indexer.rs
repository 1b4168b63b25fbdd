//! The indexer's read API: the responses of `GET /health` and `GET /v1/...`, which the indexer
//! serializes and the `medrec` CLI deserializes.
//!
//! Every answer names the block it reflects (`block`); `?min_block=N` on any route waits (up to
//! 10 s) until block N is indexed. Fields are camelCase; addresses are checksummed (EIP-55);
//! hashes are 0x-prefixed hex; category masks and other 64-bit amounts are JSON numbers up to
//! 2^53 - 1 and decimal strings above ([`crate::mask`]); times are unix seconds.

use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Addresses written with their EIP-55 checksum (alloy writes them in lower case); any case
/// is read.
pub mod checksummed {
    use alloy::primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the checksummed address.
    pub fn serialize<S: Serializer>(a: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.to_checksum(None))
    }

    /// Reads an address in any case.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        Address::deserialize(d)
    }
}

/// An error answer: `{"error": {"code", "message"}}` ([`crate::error::ErrorBody`]), with an
/// HTTP status of 4xx or 5xx. The indexer's codes: `bad_request`, `not_found`,
/// `not_indexed_yet`, `database`, `rpc`, `integrity`.
pub use crate::error::{ErrorBody, ErrorDetail};
/// Where a study is in its life.
pub use crate::study::StudyStatus;

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer (then the status is 503).
    pub status: String,
    /// Whether the database answers.
    pub database: bool,
    /// The last indexed block.
    pub indexed_block: u64,
    /// The chain head seen last.
    pub head_block: u64,
    /// Blocks between the two.
    pub lag_blocks: u64,
    /// Whether this process is the one indexer writing.
    pub writer: bool,
}

/// A grant's terms, as both grant listings show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantTerms {
    /// Who gave it: the patient, or a guardian.
    #[serde(with = "checksummed")]
    pub by: Address,
    /// The categories' names.
    pub categories: Vec<String>,
    /// The categories as a bit mask (bit `c` is category `c`).
    #[serde(with = "crate::mask")]
    pub category_mask: u64,
    /// The purpose's name.
    pub purpose: String,
    /// Not valid before this time.
    pub not_before: u64,
    /// Not valid from this time on.
    pub expires_at: u64,
    /// Whether it counts at the indexed block's time: within its window and not void.
    pub live: bool,
    /// Given before the grantee's current credential run began (a re-credentialing after a
    /// revocation, a lapse or a change of role): it never counts again, as on chain.
    #[serde(default)]
    pub void: bool,
    /// The block of the grant.
    pub since_block: u64,
}

/// `GET /v1/patients/{patient}/grants`: the grants a patient has given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientGrants {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The patient.
    #[serde(with = "checksummed")]
    pub patient: Address,
    /// One per grantee, by grantee.
    pub grants: Vec<PatientGrant>,
}

/// A grant in [`PatientGrants`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientGrant {
    /// Who may read.
    #[serde(with = "checksummed")]
    pub grantee: Address,
    /// What and when.
    #[serde(flatten)]
    pub terms: GrantTerms,
}

/// `GET /v1/grantees/{grantee}/patients`: the patients who granted a grantee access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GranteePatients {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The grantee.
    #[serde(with = "checksummed")]
    pub grantee: Address,
    /// One per patient, by patient.
    pub patients: Vec<GranteePatient>,
}

/// A grant in [`GranteePatients`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GranteePatient {
    /// The patient.
    #[serde(with = "checksummed")]
    pub patient: Address,
    /// What and when.
    #[serde(flatten)]
    pub terms: GrantTerms,
}

/// A record pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pointer {
    /// The record's id.
    pub record_id: B256,
    /// Whose record.
    #[serde(with = "checksummed")]
    pub patient: Address,
    /// Who holds it.
    #[serde(with = "checksummed")]
    pub holder: Address,
    /// The pointer's hiding commitment (`records::commitment`): the category and the content
    /// hash come only from the holder's gatekeeper, with the salt that opens it.
    pub commitment: B256,
    /// Where the holder keeps it.
    pub locator: String,
    /// The block of the anchor.
    pub anchored_block: u64,
    /// The record that amends it, if any.
    pub superseded_by: Option<B256>,
    /// Anchored under break-glass: the holder had no live grant of the patient then. The
    /// patient should check such a record with the holder (and may report it).
    #[serde(default)]
    pub break_glass: bool,
    /// Erased by its holder (`PointerErased`): its data key is destroyed.
    #[serde(default)]
    pub erased: bool,
}

/// `GET /v1/patients/{patient}/pointers`: a patient's records, in anchor order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientPointers {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The patient.
    #[serde(with = "checksummed")]
    pub patient: Address,
    /// The pointers.
    pub pointers: Vec<Pointer>,
}

/// `GET /v1/pointers/{record_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointerAnswer {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The pointer.
    pub pointer: Pointer,
}

/// `GET /v1/holders/{holder}/access-log-anchors`: the last 100 anchors of a holder's access
/// log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogAnchors {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The holder.
    #[serde(with = "checksummed")]
    pub holder: Address,
    /// The anchors.
    pub anchors: Vec<LogAnchor>,
}

/// An anchored head of a holder's access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogAnchor {
    /// The block of the anchor.
    pub block: u64,
    /// Its transaction.
    pub tx_hash: B256,
    /// The log's head hash.
    pub head: B256,
    /// How many entries the log had.
    pub entries: u64,
    /// When it was anchored.
    pub anchored_at: u64,
}

/// `GET /v1/patients/{patient}/timeline`: what happened to a patient's records, in chain
/// order (`?from_block=N`, `?limit=1..10000`, default 1000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The patient.
    #[serde(with = "checksummed")]
    pub patient: Address,
    /// The events.
    pub events: Vec<TimelineEvent>,
}

/// One event of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvent {
    /// Its block.
    pub block: u64,
    /// Its index in the block.
    pub log_index: u32,
    /// Its transaction.
    pub tx_hash: B256,
    /// What happened: `"type"` and `"data"`.
    #[serde(flatten)]
    pub what: TimelineData,
}

/// What a [`TimelineEvent`] says: its `"type"` and its `"data"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "kebab-case")]
pub enum TimelineData {
    /// A grant given (or replaced).
    #[serde(rename_all = "camelCase")]
    Granted {
        /// Who may read.
        #[serde(with = "checksummed")]
        grantee: Address,
        /// The patient or a guardian.
        #[serde(with = "checksummed")]
        by: Address,
        /// The categories.
        #[serde(with = "crate::mask")]
        category_mask: u64,
        /// The purpose's code.
        purpose: u8,
        /// Not valid before.
        not_before: u64,
        /// Not valid from.
        expires_at: u64,
    },
    /// A grant revoked.
    Revoked {
        /// Who could read.
        #[serde(with = "checksummed")]
        grantee: Address,
        /// The patient or a guardian.
        #[serde(with = "checksummed")]
        by: Address,
    },
    /// A guardian named.
    #[serde(rename_all = "camelCase")]
    GuardianSet {
        /// The guardian.
        #[serde(with = "checksummed")]
        guardian: Address,
        /// The categories the guardian may grant.
        #[serde(with = "crate::mask")]
        scope_mask: u64,
        /// Not valid before.
        not_before: u64,
        /// Not valid from.
        expires_at: u64,
    },
    /// A guardian removed.
    GuardianRemoved {
        /// The guardian.
        #[serde(with = "checksummed")]
        guardian: Address,
    },
    /// Break-glass access opened.
    #[serde(rename = "break-glass-opened", rename_all = "camelCase")]
    BreakGlassOpened {
        /// The provider.
        #[serde(with = "checksummed")]
        provider: Address,
        /// The hash of the justification.
        reason_hash: B256,
        /// When.
        opened_at: u64,
        /// Until.
        expires_at: u64,
    },
    /// Break-glass access closed.
    #[serde(rename = "break-glass-closed")]
    BreakGlassClosed {
        /// The provider.
        #[serde(with = "checksummed")]
        provider: Address,
        /// Who closed it.
        #[serde(with = "checksummed")]
        by: Address,
    },
    /// A record anchored.
    #[serde(rename_all = "camelCase")]
    PointerAnchored {
        /// The record.
        record_id: B256,
        /// Its holder.
        #[serde(with = "checksummed")]
        holder: Address,
        /// Its hiding commitment.
        commitment: B256,
        /// Where the holder keeps it.
        locator: String,
    },
    /// The record just anchored was anchored under break-glass (its holder had no live grant
    /// of the patient).
    #[serde(rename_all = "camelCase")]
    PointerAnchoredUnderBreakGlass {
        /// The record.
        record_id: B256,
        /// Its holder.
        #[serde(with = "checksummed")]
        holder: Address,
    },
    /// A record amended by another.
    #[serde(rename_all = "camelCase")]
    PointerSuperseded {
        /// The amended record.
        old_record_id: B256,
        /// The amending record.
        new_record_id: B256,
    },
    /// A record erased by its holder (its data key destroyed).
    #[serde(rename_all = "camelCase")]
    PointerErased {
        /// The record.
        record_id: B256,
        /// Its holder.
        #[serde(with = "checksummed")]
        holder: Address,
    },
    /// A break-glass opening's id and the time by which it must be justified.
    #[serde(rename = "break-glass-review-due", rename_all = "camelCase")]
    BreakGlassReviewDue {
        /// The opening's id.
        opening_id: u64,
        /// The provider.
        #[serde(with = "checksummed")]
        provider: Address,
        /// The deadline of the justification.
        review_by: u64,
    },
    /// Governance's review of a break-glass opening.
    #[serde(rename = "break-glass-reviewed", rename_all = "camelCase")]
    BreakGlassReviewed {
        /// The opening's id.
        opening_id: u64,
        /// The provider.
        #[serde(with = "checksummed")]
        provider: Address,
        /// Whether governance found it justified.
        justified: bool,
    },
    /// A break-glass opening recorded overdue: not justified in time.
    #[serde(rename = "break-glass-overdue", rename_all = "camelCase")]
    BreakGlassOverdue {
        /// The opening's id.
        opening_id: u64,
        /// The provider.
        #[serde(with = "checksummed")]
        provider: Address,
    },
    /// The outstanding signed grants and revocations for one grantee voided.
    #[serde(rename_all = "camelCase")]
    ConsentSignaturesCancelled {
        /// The grantee.
        #[serde(with = "checksummed")]
        grantee: Address,
        /// The patient or a guardian.
        #[serde(with = "checksummed")]
        by: Address,
        /// The relationship's new signature epoch.
        epoch: u64,
    },
}

/// `GET /v1/access?grantee=&patient=&category=[&block=]`: whether a grantee could read a
/// patient's category at the end of a block (default: the indexed block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// The block asked about.
    pub block: u64,
    /// The indexed block.
    pub indexed_block: u64,
    /// The grantee.
    #[serde(with = "checksummed")]
    pub grantee: Address,
    /// The patient.
    #[serde(with = "checksummed")]
    pub patient: Address,
    /// The category's name.
    pub category: String,
    /// Whether the read was allowed.
    pub allowed: bool,
    /// Through what: `grant` or `break-glass`.
    pub via: Option<String>,
}

/// A study as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Study {
    /// Its id (sequential from 1).
    pub study_id: u64,
    /// Who registered it and alone may query it.
    #[serde(with = "checksummed")]
    pub researcher: Address,
    /// The hash of its protocol document.
    pub protocol_hash: B256,
    /// The categories it may count, by name.
    pub categories: Vec<String>,
    /// The same as a bit mask.
    #[serde(with = "crate::mask")]
    pub category_mask: u64,
    /// The smallest count an answer may report.
    pub min_cell_size: u32,
    /// The total privacy budget, in micro-epsilon (a 64-bit amount: a string above 2^53 - 1).
    #[serde(with = "crate::mask")]
    pub budget: u64,
    /// The part spent by recorded queries (likewise).
    #[serde(with = "crate::mask")]
    pub spent: u64,
    /// How many queries were recorded.
    pub queries: u64,
    /// When it was registered.
    pub registered_at: u64,
    /// The block of its registration.
    pub registered_block: u64,
    /// Its status.
    pub status: StudyStatus,
    /// Since when (the time of the approval or closure; of the registration before).
    pub status_since: u64,
    /// Since which block.
    pub status_block: u64,
}

/// `GET /v1/studies`: every study, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Studies {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The studies.
    pub studies: Vec<Study>,
}

/// `GET /v1/research/policy`: governance's research policy in force (the study registry's
/// `researchPolicy()`): a study's minimum cell is at least the floor, its budget at most the
/// study ceiling, and one researcher's committed budget at most the researcher ceiling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResearchPolicy {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The smallest minimum cell a study may name.
    pub min_cell_size_floor: u32,
    /// The largest budget of one study, in micro-epsilon (a 64-bit amount).
    #[serde(with = "crate::mask")]
    pub max_study_budget: u64,
    /// The largest budget one researcher may have committed (likewise).
    #[serde(with = "crate::mask")]
    pub max_researcher_budget: u64,
    /// The block of the event that set it.
    pub set_block: u64,
}

/// `GET /v1/studies/{id}`: a study and its recorded queries. Not who takes part: a list of a
/// study's participants would hand a researcher the exact set of patients that joined between
/// two pinned blocks (differencing around the answers' noise) and tell anyone who is in, say,
/// a study of a sensitive condition. Nor which studies a patient joined: opt-ins name a study
/// pseudonym only (issue 16); the patient's CLI derives its own and asks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyAnswer {
    /// The indexed block the answer reflects.
    pub block: u64,
    /// The study.
    pub study: Study,
    /// The recorded queries, in chain order.
    pub queries: Vec<QueryReceipt>,
}

/// The receipt of an answered query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryReceipt {
    /// The query's hash.
    pub query_hash: B256,
    /// The budget it spent (a 64-bit amount).
    #[serde(with = "crate::mask")]
    pub cost: u64,
    /// The block at which consent was taken.
    pub pinned_block: u64,
    /// The hash of the answer the researcher received.
    pub answer_hash: B256,
    /// The block of the receipt.
    pub block: u64,
    /// Its transaction.
    pub tx_hash: B256,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_timeline_event_is_type_and_data_with_checksummed_addresses() {
        let a: Address = "0x8ba1f109551bd432803012645ac136ddd64dba72"
            .parse()
            .unwrap();
        let e = TimelineEvent {
            block: 7,
            log_index: 1,
            tx_hash: B256::ZERO,
            what: TimelineData::Granted {
                grantee: a,
                by: a,
                category_mask: 1 << 60,
                purpose: 1,
                not_before: 0,
                expires_at: 9,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "granted");
        assert_eq!(
            v["data"]["grantee"],
            "0x8ba1f109551bD432803012645Ac136ddd64DBA72"
        );
        assert_eq!(v["data"]["categoryMask"], json!("1152921504606846976"));
        assert_eq!(v["logIndex"], 1);
        assert_eq!(serde_json::from_value::<TimelineEvent>(v).unwrap(), e);
        let v = json!({"block": 1, "logIndex": 0, "txHash": B256::ZERO,
            "type": "break-glass-closed", "data": {"provider": a, "by": a}});
        assert!(matches!(
            serde_json::from_value::<TimelineEvent>(v).unwrap().what,
            TimelineData::BreakGlassClosed { .. }
        ));
    }

    #[test]
    fn a_grant_flattens_its_terms() {
        let a = Address::repeat_byte(0x11);
        let g = PatientGrant {
            grantee: a,
            terms: GrantTerms {
                by: a,
                categories: vec!["labs".into()],
                category_mask: 2,
                purpose: "treatment".into(),
                not_before: 1,
                expires_at: 2,
                live: true,
                void: false,
                since_block: 3,
            },
        };
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["categoryMask"], 2);
        assert_eq!(v["sinceBlock"], 3);
        assert_eq!(serde_json::from_value::<PatientGrant>(v).unwrap(), g);
    }

    #[test]
    fn study_statuses_are_the_solidity_enum() {
        assert_eq!(StudyStatus::from_solidity(0), None);
        assert_eq!(StudyStatus::from_solidity(2), Some(StudyStatus::Approved));
        assert_eq!(
            serde_json::to_value(StudyStatus::Closed).unwrap(),
            json!("closed")
        );
    }
}
