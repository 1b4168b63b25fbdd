//! Contract bindings for medrec, shared by every Rust crate of the project.
//!
//! The registries' types come from alloy's `sol!` over the ABI and bytecode committed in
//! `abi/` (written by `make abi` from the forge artifacts; `make abi-check` fails when they
//! are stale against `contracts/`). This crate also holds the EIP-712 messages the contracts
//! verify, the category and purpose vocabularies, and the decoding of revert data into the
//! contracts' custom error names.

pub mod deployment;

use alloy::dyn_abi::{DynSolValue, JsonAbiExt};
use alloy::json_abi::JsonAbi;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::{Eip712Domain, eip712_domain};
use std::sync::OnceLock;

/// The participant registry: credentials of providers and researchers.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod participant_registry {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        ParticipantRegistry,
        "abi/ParticipantRegistry.json"
    );
}

/// The consent registry: grants, guardians and break-glass access.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod consent_registry {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        ConsentRegistry,
        "abi/ConsentRegistry.json"
    );
}

/// The record registry: record pointers anchored by their holders.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod record_registry {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        RecordRegistry,
        "abi/RecordRegistry.json"
    );
}

/// The study registry: research studies, patients' opt-ins and receipts of answered queries.
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod study_registry {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        StudyRegistry,
        "abi/StudyRegistry.json"
    );
}

pub use consent_registry::ConsentRegistry;
pub use participant_registry::ParticipantRegistry;
pub use record_registry::RecordRegistry;
pub use study_registry::StudyRegistry;

/// The EIP-712 messages the contracts and the gatekeeper verify.
///
/// The signed consents (`Grant`, `Revoke`, `CancelSignatures` of the consent registry;
/// `OptIn`, `Withdraw`, `CancelStudySignatures` of the study registry) carry the relationship's
/// `epoch` and the signer's `issuedAt` instead of a nonce: one applies only in the epoch it was
/// signed in and after the last one applied ([`next_issued_at`]).
#[allow(missing_docs)]
pub mod eip712 {
    alloy::sol! {
        /// A patient's (or guardian's) grant, relayed to the consent registry's `grantBySig`.
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct Grant {
            address patient;
            address grantee;
            uint64 categories;
            uint8 purpose;
            uint40 notBefore;
            uint40 expiresAt;
            address signer;
            uint24 epoch;
            uint40 issuedAt;
            uint256 deadline;
        }

        /// A revocation, relayed to the consent registry's `revokeBySig`.
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct Revoke {
            address patient;
            address grantee;
            address signer;
            uint24 epoch;
            uint40 issuedAt;
            uint256 deadline;
        }

        /// A cancellation of a relationship's outstanding signatures (`cancelBySig`).
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct CancelSignatures {
            address patient;
            address grantee;
            address signer;
            uint24 epoch;
            uint40 issuedAt;
            uint256 deadline;
        }

        /// A holder's upload of a record to its own gatekeeper.
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct Upload {
            address holder;
            address patient;
            uint8 category;
            bytes32 contentHash;
            uint256 nonce;
            uint64 issuedAt;
        }

        /// A requester's request for one record, addressed to the holder's gatekeeper.
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct RecordRequest {
            address requester;
            bytes32 recordId;
            address audience;
            uint256 nonce;
            uint64 issuedAt;
            uint64 expiresAt;
        }

        /// A researcher's aggregate query, addressed to one holder's gatekeeper; `queryHash`
        /// is keccak256 of the query's JSON text, submitted on chain with its budget first.
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct ResearchRequest {
            address researcher;
            uint256 studyId;
            bytes32 queryHash;
            address audience;
            uint256 nonce;
            uint64 issuedAt;
            uint64 expiresAt;
        }

        /// A patient's request for the access log of their records at a holder.
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct LogRequest {
            address patient;
            address audience;
            uint256 nonce;
            uint64 issuedAt;
            uint64 expiresAt;
        }

        /// A study pseudonym's opt-in, relayed to the study registry's `optInBySig`, with its
        /// holder slots (medrec-protocol's `study_tags`).
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct OptIn {
            uint256 studyId;
            address pseudonym;
            bytes tags;
            uint24 epoch;
            uint40 issuedAt;
            uint256 deadline;
        }

        /// A study pseudonym's withdrawal, relayed to `withdrawBySig`.
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct Withdraw {
            uint256 studyId;
            address pseudonym;
            uint24 epoch;
            uint40 issuedAt;
            uint256 deadline;
        }

        /// A cancellation of a study pseudonym's outstanding signatures (`cancelBySig`).
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct CancelStudySignatures {
            uint256 studyId;
            address pseudonym;
            uint24 epoch;
            uint40 issuedAt;
            uint256 deadline;
        }
    }
}

/// The `issuedAt` to sign a consent message with: the signer's clock `now`, but strictly after
/// `last_signed_at`, the `signedAt` the chain holds for the relationship (a message issued at
/// or before it is stale, whatever the signer's clock says).
pub fn next_issued_at(now: u64, last_signed_at: u64) -> u64 {
    now.max(last_signed_at + 1)
}

/// As [`next_issued_at`], but never after `ceiling`: the chain's latest block time plus the
/// registries' `MAX_SIGNATURE_SKEW`, beyond which a message is refused as signed on a clock
/// running ahead. A clock further ahead signs `ceiling`. `None` when no time fits: the last
/// signed time is at or past `ceiling` (at its last epoch a relationship's is the largest
/// `uint40`, voiding its signatures for good).
pub fn bounded_issued_at(now: u64, last_signed_at: u64, ceiling: u64) -> Option<u64> {
    let issued = next_issued_at(now.min(ceiling), last_signed_at);
    (issued <= ceiling).then_some(issued)
}

/// The EIP-712 domain of the study registry at `contract` on chain `chain_id`.
pub fn study_domain(chain_id: u64, contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: "medrec.StudyRegistry",
        version: "1",
        chain_id: chain_id,
        verifying_contract: contract,
    }
}

/// The EIP-712 domain of gatekeeper messages for the deployment whose record registry is
/// `registry` on chain `chain_id`.
pub fn gatekeeper_domain(chain_id: u64, registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: "medrec.Gatekeeper",
        version: "1",
        chain_id: chain_id,
        verifying_contract: registry,
    }
}

/// The EIP-712 domain of the consent registry at `contract` on chain `chain_id`.
pub fn consent_domain(chain_id: u64, contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: "medrec.ConsentRegistry",
        version: "1",
        chain_id: chain_id,
        verifying_contract: contract,
    }
}

/// Record categories: bit `index` of a consent mask. Indexes 16..=63 are unnamed and can be
/// given as numbers.
pub const CATEGORIES: &[(&str, u8)] = &[
    ("demographics", 0),
    ("allergies", 1),
    ("medications", 2),
    ("labs", 3),
    ("imaging", 4),
    ("conditions", 5),
    ("procedures", 6),
    ("immunizations", 7),
    ("notes", 8),
    ("vitals", 9),
    ("mental-health", 10),
    ("sexual-health", 11),
    ("substance-use", 12),
    ("genetics", 13),
    ("encounters", 14),
    ("documents", 15),
];

/// Purposes of use (after HL7's PurposeOfUse codes), as stored in a grant.
pub const PURPOSES: &[(&str, u8)] = &[
    ("treatment", 1),
    ("payment", 2),
    ("operations", 3),
    ("research", 4),
    ("patient-request", 5),
    ("care-coordination", 6),
    ("public-health", 7),
];

/// The category index named `name` (or given as a number 0..=63).
pub fn category_index(name: &str) -> Option<u8> {
    let name = name.trim().to_ascii_lowercase();
    CATEGORIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, i)| *i)
        .or_else(|| name.parse::<u8>().ok().filter(|i| *i < 64))
}

/// The name of category `index`, or its number when it has no name.
pub fn category_name(index: u8) -> String {
    CATEGORIES
        .iter()
        .find(|(_, i)| *i == index)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| index.to_string())
}

/// Whether consent mask `mask` covers category `category`, as the ConsentRegistry's `canRead`
/// decides it. Callers ask the chain for the mask (`readableCategories`) and check the
/// category here, so that the node answering never learns which category is read.
pub fn mask_covers(mask: u64, category: u8) -> bool {
    category < 64 && mask & (1u64 << category) != 0
}

/// The names of the categories in `mask`.
pub fn category_names(mask: u64) -> Vec<String> {
    (0u8..64)
        .filter(|i| mask & (1u64 << i) != 0)
        .map(category_name)
        .collect()
}

/// The purpose code named `name` (or given as a number 1..=255).
pub fn purpose_code(name: &str) -> Option<u8> {
    let name = name.trim().to_ascii_lowercase();
    PURPOSES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .or_else(|| name.parse::<u8>().ok().filter(|c| *c > 0))
}

/// The name of purpose `code`, or its number when it has no name.
pub fn purpose_name(code: u8) -> String {
    PURPOSES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| code.to_string())
}

/// The commitment the record registry stores for a pointer.
pub fn pointer_commitment(
    patient: Address,
    holder: Address,
    category: u8,
    content_hash: B256,
) -> B256 {
    use alloy::sol_types::SolValue;
    keccak256((patient, holder, U256::from(category), content_hash).abi_encode())
}

/// Writes every address in `v` (a string of 0x and 40 hex digits) in its checksummed form, so
/// that JSON answers show addresses as people read them everywhere else.
pub fn checksum_addresses(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.len() == 42 && s.starts_with("0x") => {
            if let Ok(a) = s.parse::<Address>() {
                *s = a.to_checksum(None);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(checksum_addresses),
        Value::Object(map) => map.values_mut().for_each(checksum_addresses),
        _ => {}
    }
}

/// A contract custom error decoded from revert data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRevert {
    /// The Solidity error name, e.g. `ConsentGrantNotFound`.
    pub name: String,
    /// The error's arguments as `(name, value)` pairs, in declaration order.
    pub args: Vec<(String, String)>,
}

impl std::fmt::Display for DecodedRevert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|(n, v)| {
                if n.is_empty() {
                    v.clone()
                } else {
                    format!("{n}: {v}")
                }
            })
            .collect();
        write!(f, "{}({})", self.name, args.join(", "))?;
        match next_step(&self.name) {
            Some(step) => write!(f, "; {step}"),
            None => Ok(()),
        }
    }
}

/// What to do after a revert whose name alone does not say it.
fn next_step(error: &str) -> Option<&'static str> {
    match error {
        "ConsentSignatureStale" | "StudySignatureStale" => Some(
            "the signed message was replayed, is older than one already applied, or was voided by a direct change, a revocation or a cancellation: ask the signer to sign it again (--sign-only reads the current epoch)",
        ),
        "ConsentSignatureFromFuture" | "StudySignatureFromFuture" => Some(
            "the signer's clock ran more than 5 minutes ahead of the chain's: ask the signer to sign it again with a node reachable (--sign-only then dates it by the chain)",
        ),
        "StudyCellSizeBelowFloor" => Some(
            "governance's research policy sets a larger smallest cell (medrec study policy): register with --min-cell at least the floor; at approval, the policy was tightened since registration: the study is closed, or the policy loosened",
        ),
        "StudyBudgetAboveCeiling" => Some(
            "governance's research policy caps one study's budget (medrec study policy): register with a --budget at most the ceiling; at approval, the policy was tightened since registration: the study is closed, or the policy loosened",
        ),
        "StudyResearcherBudgetExceeded" => Some(
            "the researcher's studies together would pass governance's ceiling per researcher (medrec study policy --researcher ADDRESS): register a smaller study; an approved study keeps its whole budget committed, and only a study closed before approval gives it back",
        ),
        "StudyInvalidResearchPolicy" => Some(
            "the floor and the study ceiling must be at least 1, and the researcher ceiling at least the study ceiling",
        ),
        _ => None,
    }
}

fn all_errors() -> &'static JsonAbi {
    static ABI: OnceLock<JsonAbi> = OnceLock::new();
    ABI.get_or_init(|| {
        let mut all = JsonAbi::new();
        for artifact in [
            include_str!("../abi/ParticipantRegistry.json"),
            include_str!("../abi/ConsentRegistry.json"),
            include_str!("../abi/RecordRegistry.json"),
            include_str!("../abi/StudyRegistry.json"),
        ] {
            #[derive(serde::Deserialize)]
            struct Artifact {
                abi: JsonAbi,
            }
            // The artifacts are compiled into this crate and checked by its tests.
            if let Ok(a) = serde_json::from_str::<Artifact>(artifact) {
                for (name, errors) in a.abi.errors {
                    all.errors.entry(name).or_insert(errors);
                }
            }
        }
        all
    })
}

/// Decodes revert data into the contracts' custom error (including OpenZeppelin's, such as
/// `AccessControlUnauthorizedAccount`), or `None` when the selector is unknown.
pub fn decode_revert(data: &[u8]) -> Option<DecodedRevert> {
    if data.len() < 4 {
        return None;
    }
    let selector = &data[..4];
    for error in all_errors().errors() {
        if error.selector().as_slice() != selector {
            continue;
        }
        let values = error.abi_decode_input(&data[4..]).ok()?;
        let args = error
            .inputs
            .iter()
            .zip(values.iter())
            .map(|(p, v)| (p.name.clone(), format_value(v)))
            .collect();
        return Some(DecodedRevert {
            name: error.name.clone(),
            args,
        });
    }
    None
}

fn format_value(v: &DynSolValue) -> String {
    match v {
        DynSolValue::Address(a) => a.to_checksum(None),
        DynSolValue::Bool(b) => b.to_string(),
        DynSolValue::Uint(u, _) => u.to_string(),
        DynSolValue::Int(i, _) => i.to_string(),
        DynSolValue::FixedBytes(w, size) => format!("0x{}", alloy::hex::encode(&w[..*size])),
        DynSolValue::Bytes(b) => format!("0x{}", alloy::hex::encode(b)),
        DynSolValue::String(s) => format!("{s:?}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolError;

    #[test]
    fn signed_consents_are_the_contracts_types() {
        use alloy::sol_types::SolStruct;
        // The contracts' type hashes (test/ConsentRegistry.t.sol and test/StudyRegistry.t.sol
        // check the same strings against the deployed constants).
        assert_eq!(
            eip712::Grant::eip712_encode_type(),
            "Grant(address patient,address grantee,uint64 categories,uint8 purpose,uint40 notBefore,uint40 expiresAt,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
        );
        assert_eq!(
            eip712::Revoke::eip712_encode_type(),
            "Revoke(address patient,address grantee,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
        );
        assert_eq!(
            eip712::CancelSignatures::eip712_encode_type(),
            "CancelSignatures(address patient,address grantee,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)"
        );
        assert_eq!(
            eip712::OptIn::eip712_encode_type(),
            "OptIn(uint256 studyId,address pseudonym,bytes tags,uint24 epoch,uint40 issuedAt,uint256 deadline)"
        );
        assert_eq!(
            eip712::Withdraw::eip712_encode_type(),
            "Withdraw(uint256 studyId,address pseudonym,uint24 epoch,uint40 issuedAt,uint256 deadline)"
        );
        assert_eq!(
            eip712::CancelStudySignatures::eip712_encode_type(),
            "CancelStudySignatures(uint256 studyId,address pseudonym,uint24 epoch,uint40 issuedAt,uint256 deadline)"
        );
    }

    #[test]
    fn issued_at_is_strictly_after_the_last_applied() {
        assert_eq!(next_issued_at(1_800_000_000, 0), 1_800_000_000);
        // A signer whose clock is behind the last message applied still signs a later one.
        assert_eq!(next_issued_at(1_800_000_000, 1_800_000_100), 1_800_000_101);
        assert_eq!(next_issued_at(1_800_000_000, 1_800_000_000), 1_800_000_001);
        // A clock ahead of the chain by more than the skew signs the ceiling.
        assert_eq!(
            bounded_issued_at(1_800_001_000, 0, 1_800_000_300),
            Some(1_800_000_300)
        );
        assert_eq!(
            bounded_issued_at(1_800_000_000, 0, 1_800_000_300),
            Some(1_800_000_000)
        );
        assert_eq!(
            bounded_issued_at(1_800_000_000, 1_800_000_299, 1_800_000_300),
            Some(1_800_000_300)
        );
        assert_eq!(
            bounded_issued_at(1_800_000_000, 1_800_000_300, 1_800_000_300),
            None
        );
        assert_eq!(
            bounded_issued_at(1_800_000_000, (1 << 40) - 1, 1_800_000_300),
            None
        );
    }

    /// The gatekeeper's domain is the record registry's ERC-5267 domain: the separator and
    /// one request's digest are the constants `test/RecordRegistry.t.sol` checks the deployed
    /// contract against (`GK_SEPARATOR`, `GK_REQUEST_DIGEST`, for a registry at `GK_REGISTRY`
    /// on chain 31337), so a change on either side fails one of the two tests.
    #[test]
    fn the_gatekeeper_domain_is_the_record_registrys() {
        use alloy::primitives::{address, b256};
        use alloy::sol_types::SolStruct;
        let registry = address!("0x00000000000000000000000000000000000e5267");
        let domain = gatekeeper_domain(31337, registry);
        assert_eq!(
            domain.separator(),
            b256!("0x9c5c813a18f60135f3579cffd0493595c020137638dc4504936b99cc7371f4be")
        );
        let request = eip712::RecordRequest {
            requester: address!("0x00000000000000000000000000000000000a11ce"),
            recordId: keccak256("record 1"),
            audience: address!("0x0000000000000000000000000000000000000b0b"),
            nonce: U256::from(7),
            issuedAt: 1_800_000_000,
            expiresAt: 1_800_000_300,
        };
        assert_eq!(
            request.eip712_signing_hash(&domain),
            b256!("0xf113258eb891795fe67f254d52198bc3352cbedd3828f847493e688156445f9c")
        );
    }

    #[test]
    fn decodes_a_consent_error_with_its_arguments() {
        let err = consent_registry::ConsentRegistry::ConsentGrantNotFound {
            patient: Address::repeat_byte(0x11),
            grantee: Address::repeat_byte(0x22),
        };
        let decoded = decode_revert(&err.abi_encode()).expect("known error");
        assert_eq!(decoded.name, "ConsentGrantNotFound");
        assert_eq!(decoded.args[0].0, "patient");
        assert_eq!(
            decoded.args[1].1,
            Address::repeat_byte(0x22).to_checksum(None)
        );
    }

    #[test]
    fn decodes_a_study_error_with_its_arguments() {
        let err = study_registry::StudyRegistry::StudyBudgetExceeded {
            studyId: U256::from(7),
            spent: 900,
            cost: 200,
            budget: 1000,
        };
        let decoded = decode_revert(&err.abi_encode()).expect("known error");
        assert_eq!(decoded.name, "StudyBudgetExceeded");
        assert_eq!(
            decoded.to_string(),
            "StudyBudgetExceeded(studyId: 7, spent: 900, cost: 200, budget: 1000)"
        );
    }

    #[test]
    fn a_stale_signature_says_what_to_do() {
        let err = consent_registry::ConsentRegistry::ConsentSignatureStale {
            epoch: alloy::primitives::aliases::U24::from(0),
            issuedAt: alloy::primitives::aliases::U40::from(1_800_000_000u64),
            currentEpoch: alloy::primitives::aliases::U24::from(2),
            signedAt: alloy::primitives::aliases::U40::from(0),
        };
        let decoded = decode_revert(&err.abi_encode()).expect("known error");
        assert_eq!(decoded.name, "ConsentSignatureStale");
        let text = decoded.to_string();
        assert!(
            text.starts_with("ConsentSignatureStale(epoch: 0, issuedAt: 1800000000, currentEpoch: 2, signedAt: 0); "),
            "{text}"
        );
        assert!(text.contains("sign it again"), "{text}");
    }

    #[test]
    fn unknown_selector_is_none() {
        assert_eq!(decode_revert(&[1, 2, 3, 4, 5]), None);
        assert_eq!(decode_revert(&[]), None);
    }

    #[test]
    fn every_artifact_parses_with_errors() {
        assert!(all_errors().errors().count() > 25);
    }

    #[test]
    fn categories_and_purposes_round_trip() {
        for (name, i) in CATEGORIES {
            assert_eq!(category_index(name), Some(*i));
            assert_eq!(category_name(*i), *name);
        }
        assert_eq!(category_index("63"), Some(63));
        assert_eq!(category_index("64"), None);
        assert_eq!(category_index("bogus"), None);
        assert_eq!(category_names((1 << 3) | (1 << 8)), vec!["labs", "notes"]);
        assert_eq!(purpose_code("Treatment"), Some(1));
        assert_eq!(purpose_code("0"), None);
        assert_eq!(purpose_name(4), "research");
    }
}
