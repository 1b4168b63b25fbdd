//! A signed request to the indexer's read API (issue 16): the per-patient and per-grantee
//! routes answer only the parties entitled to them, so every such GET carries an EIP-712
//! [`IndexerRequest`] and its signature in the header [`INDEXER_AUTH_HEADER`], as the JSON of
//! a [`Signed`] envelope.
//!
//! The message is signed under [`indexer_domain`], a domain of its own ("medrec.Indexer"),
//! so a signature for a gatekeeper is never one for the indexer, nor the other way round. It
//! names the request it authorizes by [`request_hash`] (keccak256 of `"GET /v1/...?query"`,
//! the request target exactly as sent), so a signature for one path or query answers no other.
//! Its window is at most [`INDEXER_MAX_VALIDITY_SECS`]; the indexer keeps each nonce until
//! then. Only EOA signatures are taken: the patients and providers who read the indexer sign
//! with keys, and ERC-1271 would cost the indexer a chain call per request.

use crate::clock::{self, WindowError};
use crate::envelope::{Signed, recover};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::Signer;
use alloy::sol_types::{Eip712Domain, eip712_domain};

/// The header that carries a signed indexer request: the JSON of a [`Signed`]
/// `<IndexerRequest>`.
pub const INDEXER_AUTH_HEADER: &str = "x-medrec-request";

/// The longest window (`expiresAt - issuedAt`) of a signed indexer request.
pub const INDEXER_MAX_VALIDITY_SECS: u64 = 120;

/// The window `medrec` gives the indexer requests it signs.
pub const INDEXER_VALIDITY_SECS: u64 = 60;

#[allow(missing_docs)]
mod sol {
    alloy::sol! {
        /// A request to the indexer's read API, signed by `requester`; `requestHash` is
        /// keccak256 of the method, a space and the request target (`"GET /v1/...?..."`).
        #[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        struct IndexerRequest {
            address requester;
            bytes32 requestHash;
            uint256 nonce;
            uint64 issuedAt;
            uint64 expiresAt;
        }
    }
}
pub use sol::IndexerRequest;

/// The EIP-712 domain of indexer requests for the deployment whose consent registry is
/// `consent_registry` on chain `chain_id`.
pub fn indexer_domain(chain_id: u64, consent_registry: Address) -> Eip712Domain {
    eip712_domain! {
        name: "medrec.Indexer",
        version: "1",
        chain_id: chain_id,
        verifying_contract: consent_registry,
    }
}

/// What a request signs: keccak256 of `"{method} {target}"`, the target being the path and
/// query exactly as sent (`/v1/patients/0x.../timeline?from_block=5`).
pub fn request_hash(method: &str, target: &str) -> B256 {
    keccak256(format!("{method} {target}"))
}

/// Why a signed indexer request is refused (all answered 401: the request proves no one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthRefusal {
    /// The header is missing.
    #[error("no signed request (header {INDEXER_AUTH_HEADER})")]
    Missing,
    /// The header is not a signed indexer request.
    #[error("the header {INDEXER_AUTH_HEADER} is not a signed request")]
    Malformed,
    /// The signature is malformed or recovers no address.
    #[error("invalid signature")]
    InvalidSignature,
    /// The signature recovers another address than the request names.
    #[error("the signer is not the requester")]
    WrongSigner,
    /// The request was signed for another method, path or query.
    #[error("signed for another request")]
    WrongRequest,
    /// The request's window is refused.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// The nonce was used before.
    #[error("replayed nonce")]
    Replayed,
}

/// Every check of a signed indexer request but its nonce's novelty (the indexer's database
/// keeps those): the signature recovers `requester`, it signs this `method` and `target`, and
/// its window holds `now` and is at most [`INDEXER_MAX_VALIDITY_SECS`]. Returns the requester.
pub fn verify(
    signed: &Signed<IndexerRequest>,
    domain: &Eip712Domain,
    method: &str,
    target: &str,
    now: u64,
) -> Result<Address, AuthRefusal> {
    let r = &signed.request;
    match recover(r, domain, &signed.signature) {
        Some(signer) if signer == r.requester => {}
        Some(_) => return Err(AuthRefusal::WrongSigner),
        None => return Err(AuthRefusal::InvalidSignature),
    }
    if r.requestHash != request_hash(method, target) {
        return Err(AuthRefusal::WrongRequest);
    }
    clock::check_window(r.issuedAt, r.expiresAt, now)?;
    if r.expiresAt - r.issuedAt > INDEXER_MAX_VALIDITY_SECS {
        return Err(AuthRefusal::Window(WindowError::BadWindow));
    }
    Ok(r.requester)
}

/// The key under which the indexer remembers a request's nonce: keccak256 of the requester
/// and the nonce, so that its table does not list who asked.
pub fn replay_key(r: &IndexerRequest) -> B256 {
    let mut b = [0u8; 52];
    b[..20].copy_from_slice(r.requester.as_slice());
    b[20..].copy_from_slice(&r.nonce.to_be_bytes::<32>());
    keccak256(b)
}

/// Signs a GET of `target` (path and query, exactly as it will be sent) by `signer`, valid
/// from `now` for `validity` seconds; returns the value of [`INDEXER_AUTH_HEADER`].
pub async fn sign_get<S: Signer + ?Sized>(
    signer: &S,
    domain: &Eip712Domain,
    target: &str,
    now: u64,
    validity: u64,
) -> Result<String, alloy::signers::Error> {
    let request = IndexerRequest {
        requester: signer.address(),
        requestHash: request_hash("GET", target),
        nonce: crate::envelope::random_nonce(),
        issuedAt: now,
        expiresAt: now + validity,
    };
    let signed = Signed::sign(request, signer, domain).await?;
    Ok(header_value(&signed))
}

/// The header value of a signed request.
pub fn header_value(signed: &Signed<IndexerRequest>) -> String {
    // A struct of addresses, hex and numbers always serializes.
    serde_json::to_string(signed).unwrap_or_default()
}

/// A request as [`sign_get`] would build it, with the nonce given: for tests and clients that
/// sign elsewhere (a wallet's `eth_signTypedData_v4`).
pub fn get_request(requester: Address, target: &str, nonce: U256, now: u64) -> IndexerRequest {
    IndexerRequest {
        requester,
        requestHash: request_hash("GET", target),
        nonce,
        issuedAt: now,
        expiresAt: now + INDEXER_VALIDITY_SECS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;
    use alloy::sol_types::SolStruct;

    const TARGET: &str = "/v1/patients/0x1111111111111111111111111111111111111111/timeline";

    #[tokio::test]
    async fn a_signed_get_is_verified_for_its_own_target_and_window_only() {
        let me = PrivateKeySigner::random();
        let domain = indexer_domain(31337, Address::repeat_byte(9));
        let now = clock::now_secs();
        let header = sign_get(&me, &domain, TARGET, now, INDEXER_VALIDITY_SECS)
            .await
            .unwrap();
        let signed: Signed<IndexerRequest> = serde_json::from_str(&header).unwrap();
        assert_eq!(
            verify(&signed, &domain, "GET", TARGET, now),
            Ok(me.address())
        );
        let other = format!("{TARGET}?from_block=1");
        assert_eq!(
            verify(&signed, &domain, "GET", &other, now),
            Err(AuthRefusal::WrongRequest)
        );
        assert_eq!(
            verify(&signed, &domain, "GET", TARGET, now + 61),
            Err(AuthRefusal::Window(WindowError::Expired))
        );
        // Another deployment, or the gatekeeper's domain: the signature names someone else.
        let elsewhere = indexer_domain(31337, Address::repeat_byte(8));
        assert!(verify(&signed, &elsewhere, "GET", TARGET, now).is_err());
        let gk = crate::envelope::gatekeeper_domain(31337, Address::repeat_byte(9));
        assert_ne!(
            signed.request.eip712_signing_hash(&gk),
            signed.request.eip712_signing_hash(&domain)
        );
        // A window longer than 120 s, though each end is fine.
        let long = Signed::sign(
            IndexerRequest {
                expiresAt: now + INDEXER_MAX_VALIDITY_SECS + 1,
                ..get_request(me.address(), TARGET, U256::from(1), now)
            },
            &me,
            &domain,
        )
        .await
        .unwrap();
        assert_eq!(
            verify(&long, &domain, "GET", TARGET, now),
            Err(AuthRefusal::Window(WindowError::BadWindow))
        );
        // Signed by another key than the requester's.
        let forger = PrivateKeySigner::random();
        let forged = Signed::sign(
            get_request(me.address(), TARGET, U256::from(2), now),
            &forger,
            &domain,
        )
        .await
        .unwrap();
        assert_eq!(
            verify(&forged, &domain, "GET", TARGET, now),
            Err(AuthRefusal::WrongSigner)
        );
        let mut bad = signed.clone();
        bad.signature = "0x12".into();
        assert_eq!(
            verify(&bad, &domain, "GET", TARGET, now),
            Err(AuthRefusal::InvalidSignature)
        );
        assert_ne!(replay_key(&signed.request), replay_key(&forged.request));
    }

    #[test]
    fn the_type_and_header_are_what_clients_sign_and_send() {
        assert_eq!(
            IndexerRequest::eip712_encode_type(),
            "IndexerRequest(address requester,bytes32 requestHash,uint256 nonce,uint64 issuedAt,uint64 expiresAt)"
        );
        // The type hash docs/protocol.md gives.
        assert_eq!(
            keccak256(IndexerRequest::eip712_encode_type().as_bytes()).to_string(),
            "0x5328d183c0637a0eebe89149d5d5179f2c2c125342e43dbe7308614aa3b73e1b"
        );
        let text = r#"{"request":{"requester":"0x1111111111111111111111111111111111111111","requestHash":"0x2222222222222222222222222222222222222222222222222222222222222222","nonce":"0x2a","issuedAt":10,"expiresAt":70},"signature":"0x00"}"#;
        let signed: Signed<IndexerRequest> = serde_json::from_str(text).unwrap();
        assert_eq!(header_value(&signed), text);
    }
}
