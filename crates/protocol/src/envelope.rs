//! A signed gatekeeper request as it travels over HTTP.
//!
//! Reads, access-log requests and research queries are JSON bodies
//! `{"request": {...}, "signature": "0x..."}`: the EIP-712 message (the `sol!` structs of
//! `medrec_bindings::eip712`, re-exported here) signed under [`gatekeeper_domain`], and the
//! 65-byte signature (r, s, v) in hex. A research query adds the query's text ([`SignedQuery`]
//! in [`crate::research`]). An upload carries its message and signature in the headers
//! [`UPLOAD_HEADER`] and [`SIGNATURE_HEADER`], because its body is the record itself.
//!
//! [`SignedQuery`]: crate::research::SignedQuery

use alloy::primitives::{Address, B256, U256};
use alloy::signers::Signer;
use alloy::sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

pub use medrec_bindings::eip712::{LogRequest, RecordRequest, ResearchRequest, Upload};
pub use medrec_bindings::gatekeeper_domain;

/// The header that carries an upload's EIP-712 [`Upload`] message, as JSON.
pub const UPLOAD_HEADER: &str = "x-medrec-upload";

/// The header that carries an upload's signature.
pub const SIGNATURE_HEADER: &str = "x-medrec-signature";

/// A signed request: the message and its signature in hex (`0x` + r, s, v).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// The EIP-712 message.
    pub request: T,
    /// Its signature: 65 bytes in hex, `v` 27 or 28 (0 or 1 accepted).
    pub signature: String,
}

impl<T: SolStruct> Signed<T> {
    /// Signs `request` under `domain`.
    pub async fn sign<S: Signer + ?Sized>(
        request: T,
        signer: &S,
        domain: &Eip712Domain,
    ) -> Result<Self, alloy::signers::Error> {
        let signature = sign_hex(signer, &request, domain).await?;
        Ok(Self { request, signature })
    }
}

/// The signature of `msg` under `domain`, in hex as the gatekeeper takes it.
pub async fn sign_hex<T: SolStruct, S: Signer + ?Sized>(
    signer: &S,
    msg: &T,
    domain: &Eip712Domain,
) -> Result<String, alloy::signers::Error> {
    let sig = signer.sign_hash(&msg.eip712_signing_hash(domain)).await?;
    Ok(format!("0x{}", alloy::hex::encode(sig.as_bytes())))
}

/// The signer of an EIP-712 message, from a 65-byte hex signature (r, s, v with v 0, 1, 27 or
/// 28); `None` when the signature is malformed or recovers nothing.
pub fn recover<T: SolStruct>(msg: &T, domain: &Eip712Domain, sig: &str) -> Option<Address> {
    let raw = alloy::hex::decode(sig.trim_start_matches("0x")).ok()?;
    recover_prehash(&msg.eip712_signing_hash(domain), &raw)
}

/// Recovers the address that signed `hash`, with libsecp256k1 (the same answer as alloy's
/// `Signature::recover_address_from_prehash`, several times faster: a server pays it on
/// every signed request).
pub fn recover_prehash(hash: &B256, raw: &[u8]) -> Option<Address> {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    static SECP: std::sync::LazyLock<secp256k1::Secp256k1<secp256k1::VerifyOnly>> =
        std::sync::LazyLock::new(secp256k1::Secp256k1::verification_only);
    let (rs, v) = match raw {
        [rs @ .., v] if rs.len() == 64 => (rs, *v),
        _ => return None,
    };
    let parity = match v {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return None,
    };
    let sig = RecoverableSignature::from_compact(rs, RecoveryId::try_from(parity).ok()?).ok()?;
    let key = SECP
        .recover_ecdsa(&secp256k1::Message::from_digest(hash.0), &sig)
        .ok()?;
    Some(Address::from_raw_public_key(
        &key.serialize_uncompressed()[1..],
    ))
}

/// A fresh random request nonce.
pub fn random_nonce() -> U256 {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    U256::from_be_bytes(b)
}

/// What the gatekeeper checks in every signed request besides its signature: who must have
/// signed it, to whom it is addressed, its nonce and its time window.
pub trait SignedRequest: SolStruct {
    /// The address that must have signed it (requester, patient or researcher).
    fn signer(&self) -> Address;
    /// The holder it is addressed to.
    fn audience(&self) -> Address;
    /// Its nonce, as the 32 bytes the access log keeps.
    fn nonce_word(&self) -> B256;
    /// When it was signed (seconds since the epoch).
    fn issued_at(&self) -> u64;
    /// When it expires (seconds since the epoch).
    fn expires_at(&self) -> u64;
}

macro_rules! signed_request {
    ($t:ty, $signer:ident) => {
        impl $crate::SignedRequest for $t {
            fn signer(&self) -> alloy::primitives::Address {
                self.$signer
            }
            fn audience(&self) -> alloy::primitives::Address {
                self.audience
            }
            fn nonce_word(&self) -> alloy::primitives::B256 {
                alloy::primitives::B256::from(self.nonce.to_be_bytes::<32>())
            }
            fn issued_at(&self) -> u64 {
                self.issuedAt
            }
            fn expires_at(&self) -> u64 {
                self.expiresAt
            }
        }
    };
}

signed_request!(RecordRequest, requester);
signed_request!(LogRequest, patient);
signed_request!(ResearchRequest, researcher);

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    /// A read request as a client sends it (addresses and hashes of digits only, so that
    /// their checksummed form is the same text).
    const READ: &str = r#"{"request":{"requester":"0x1111111111111111111111111111111111111111","recordId":"0x2222222222222222222222222222222222222222222222222222222222222222","audience":"0x3333333333333333333333333333333333333333","nonce":"0x2a","issuedAt":1700000000,"expiresAt":1700000060},"signature":"0x00"}"#;

    #[test]
    fn the_envelope_round_trips_byte_for_byte() {
        let signed: Signed<RecordRequest> = serde_json::from_str(READ).unwrap();
        assert_eq!(signed.request.requester, Address::repeat_byte(0x11));
        assert_eq!(signed.request.recordId, B256::repeat_byte(0x22));
        assert_eq!(signed.request.audience, Address::repeat_byte(0x33));
        assert_eq!(signed.request.nonce, U256::from(42));
        assert_eq!(
            (signed.request.issuedAt, signed.request.expiresAt),
            (1_700_000_000, 1_700_000_060)
        );
        assert_eq!(serde_json::to_string(&signed).unwrap(), READ);
        assert_eq!(signed.request.nonce_word(), B256::with_last_byte(42));
        assert_eq!(signed.request.signer(), Address::repeat_byte(0x11));
    }

    #[test]
    fn every_envelope_round_trips_byte_for_byte() {
        let log = r#"{"request":{"patient":"0x1111111111111111111111111111111111111111","audience":"0x3333333333333333333333333333333333333333","nonce":"0x1","issuedAt":10,"expiresAt":70},"signature":"0x00"}"#;
        let signed: Signed<LogRequest> = serde_json::from_str(log).unwrap();
        assert_eq!(serde_json::to_string(&signed).unwrap(), log);
        assert_eq!(signed.request.signer(), Address::repeat_byte(0x11));
        let query = r#"{"request":{"researcher":"0x1111111111111111111111111111111111111111","studyId":"0x2","queryHash":"0x2222222222222222222222222222222222222222222222222222222222222222","audience":"0x3333333333333333333333333333333333333333","nonce":"0x3","issuedAt":10,"expiresAt":130},"query":"{}","signature":"0x00"}"#;
        let signed: crate::research::SignedQuery = serde_json::from_str(query).unwrap();
        assert_eq!(serde_json::to_string(&signed).unwrap(), query);
        assert_eq!(signed.request.signer(), Address::repeat_byte(0x11));
        // An upload's message travels in the `x-medrec-upload` header.
        let upload = r#"{"holder":"0x1111111111111111111111111111111111111111","patient":"0x2222222222222222222222222222222222222222","category":3,"contentHash":"0x3333333333333333333333333333333333333333333333333333333333333333","nonce":"0x4","issuedAt":10}"#;
        let u: Upload = serde_json::from_str(upload).unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), upload);
    }

    #[tokio::test]
    async fn a_signed_request_recovers_its_signer() {
        let signer = PrivateKeySigner::random();
        let domain = gatekeeper_domain(31337, Address::repeat_byte(9));
        let msg = LogRequest {
            patient: signer.address(),
            audience: Address::repeat_byte(3),
            nonce: random_nonce(),
            issuedAt: 1,
            expiresAt: 61,
        };
        let signed = Signed::sign(msg, &signer, &domain).await.unwrap();
        assert_eq!(signed.signature.len(), 2 + 130);
        let raw = alloy::hex::decode(&signed.signature).unwrap();
        let sig = alloy::primitives::Signature::from_raw(&raw).unwrap();
        let hash = signed.request.eip712_signing_hash(&domain);
        assert_eq!(
            sig.recover_address_from_prehash(&hash).unwrap(),
            signer.address()
        );
    }
}
