//! The signed-message file: what `medrec grant`, `revoke`, `cancel-signatures` and `study
//! opt-in|withdraw|cancel-signatures` write with `--sign-only` and `medrec relay` reads, so
//! that a patient with no ether signs offline and anyone sends the transaction (`grantBySig`,
//! `revokeBySig`, `cancelBySig` of the ConsentRegistry; `optInBySig`, `withdrawBySig`,
//! `cancelBySig` of the StudyRegistry).
//!
//! # Format 3
//!
//! One JSON object (UTF-8, pretty-printed, addresses EIP-55 checksummed):
//!
//! ```json
//! {
//!   "type": "grant",
//!   "version": 3,
//!   "chainId": 31337,
//!   "contract": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
//!   "message": {
//!     "patient": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
//!     "grantee": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
//!     "categories": 264,
//!     "purpose": 1,
//!     "notBefore": "0",
//!     "expiresAt": "1798000000",
//!     "signer": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
//!     "epoch": 0,
//!     "issuedAt": "1795305600",
//!     "deadline": "1795392000"
//!   },
//!   "signature": "0x…65 bytes: r, s, v…"
//! }
//! ```
//!
//! - `type` names the EIP-712 struct in `message` (names as in Solidity) and the contract that
//!   verifies it:
//!   - `"grant"`, `"revoke"`, `"cancelSignatures"`: the consent registry, domain
//!     `{name: "medrec.ConsentRegistry", version: "1", chainId, verifyingContract: contract}`,
//!     types `Grant(address patient,address grantee,uint64 categories,uint8 purpose,uint40 notBefore,uint40 expiresAt,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)`,
//!     `Revoke(address patient,address grantee,address signer,uint24 epoch,uint40 issuedAt,uint256 deadline)`
//!     and `CancelSignatures(…)` with the fields of `Revoke`;
//!   - `"optIn"`, `"withdraw"`, `"cancelStudySignatures"`: the study registry, domain
//!     `{name: "medrec.StudyRegistry", …}`, types `OptIn(uint256 studyId,address pseudonym,bytes tags,uint24 epoch,uint40 issuedAt,uint256 deadline)`,
//!     `Withdraw(uint256 studyId,address pseudonym,uint24 epoch,uint40 issuedAt,uint256 deadline)`
//!     and `CancelStudySignatures(…)` with the fields of `Withdraw`. The signer is the patient's
//!     study pseudonym (issue 16), never their account; `tags` (an opt-in's only) are its
//!     holder slots, hex.
//!
//!   A viem user signs the same message with `signTypedData({domain, types, primaryType,
//!   message})`, passing the decimal strings as `BigInt(...)`.
//! - `epoch` is the relationship's (patient and grantee; or study and patient) signature epoch
//!   as the chain holds it when signing, and `issuedAt` the signer's clock, strictly after the
//!   last signed message the chain applied for it. A message applies only in its epoch and after
//!   every one applied before; a direct change or a cancellation voids it.
//! - One rule for numbers: a value whose Solidity type is wider than 32 bits (`uint40` times,
//!   `uint256` study id and deadline) is a decimal string, since JavaScript reads JSON numbers
//!   exactly only up to 2^53 − 1; small ones (`uint8` purpose, `uint24` epoch, and the chain
//!   id) are JSON numbers; the `uint64` category mask is a number up to 2^53 − 1 and a decimal
//!   string above ([`medrec_protocol::mask`]), as in every other medrec JSON. Times are unix
//!   seconds; `notBefore` 0 means "from the block that includes it".
//! - `signature` is the 65-byte signature (`r ‖ s ‖ v`, v 27 or 28) of the EIP-712 hash, hex.
//!
//! Files of formats 1 and 2 (a per-signer nonce instead of `epoch` and `issuedAt`) are refused:
//! the contracts no longer accept what they signed; the signer signs again.

use crate::error::{CliError, Result};
use alloy::primitives::{
    Address, B256, Bytes, U256,
    aliases::{U24, U40},
};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use medrec_bindings::eip712;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The format version this medrec writes and reads.
pub const FORMAT_VERSION: u32 = 3;

/// A signed consent message, as `--sign-only` writes it and `relay` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SignedMessage {
    /// A signed `Grant` (consent registry).
    Grant(Signed<GrantMessage>),
    /// A signed `Revoke` (consent registry).
    Revoke(Signed<RelationshipMessage>),
    /// A signed `CancelSignatures` (consent registry).
    CancelSignatures(Signed<RelationshipMessage>),
    /// A signed `OptIn` (study registry).
    OptIn(Signed<StudyMessage>),
    /// A signed `Withdraw` (study registry).
    Withdraw(Signed<StudyMessage>),
    /// A signed `CancelStudySignatures` (study registry).
    CancelStudySignatures(Signed<StudyMessage>),
}

/// The envelope around a message: where it may be relayed, and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed<M> {
    /// The file format's version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Chain id of the EIP-712 domain.
    pub chain_id: u64,
    /// The verifying contract of the domain (the consent or the study registry).
    pub contract: Address,
    /// The signed message.
    pub message: M,
    /// The 65-byte signature of the message's EIP-712 hash.
    pub signature: Bytes,
}

/// The EIP-712 `Grant` of the consent registry, with the file's number encodings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantMessage {
    /// The patient whose records are shared.
    pub patient: Address,
    /// The provider that gets access.
    pub grantee: Address,
    /// Category mask (bit i: category i).
    #[serde(with = "medrec_protocol::mask")]
    pub categories: u64,
    /// Purpose-of-use code.
    pub purpose: u8,
    /// Start (unix seconds, `uint40`); 0: from the block that includes it.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u64")]
    pub not_before: u64,
    /// End (unix seconds, `uint40`).
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u64")]
    pub expires_at: u64,
    /// Who signed: the patient or their guardian.
    pub signer: Address,
    /// The relationship's signature epoch (`uint24`).
    pub epoch: u32,
    /// The signer's clock (unix seconds, `uint40`), after the last signed message applied.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u64")]
    pub issued_at: u64,
    /// Unix second after which the signature is refused.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u256")]
    pub deadline: U256,
}

/// The EIP-712 `Revoke` or `CancelSignatures` of the consent registry (the same fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipMessage {
    /// The patient.
    pub patient: Address,
    /// The grantee.
    pub grantee: Address,
    /// Who signed: the patient or their guardian.
    pub signer: Address,
    /// The relationship's signature epoch (`uint24`).
    pub epoch: u32,
    /// The signer's clock (unix seconds, `uint40`), after the last signed message applied.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u64")]
    pub issued_at: u64,
    /// Unix second after which the signature is refused.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u256")]
    pub deadline: U256,
}

/// The EIP-712 `OptIn`, `Withdraw` or `CancelStudySignatures` of the study registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyMessage {
    /// The study.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u256")]
    pub study_id: U256,
    /// The patient's pseudonym in this study, who signs.
    pub pseudonym: Address,
    /// An opt-in's holder slots (`StudyRegistry.TAGS_LENGTH` bytes); none in a withdrawal or
    /// cancellation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Bytes>,
    /// The participation's signature epoch (`uint24`).
    pub epoch: u32,
    /// The patient's clock (unix seconds, `uint40`), after the last signed message applied.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u64")]
    pub issued_at: u64,
    /// Unix second after which the signature is refused.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u256")]
    pub deadline: U256,
}

impl GrantMessage {
    /// The EIP-712 struct the contract verifies.
    pub fn to_eip712(&self) -> Result<eip712::Grant> {
        Ok(eip712::Grant {
            patient: self.patient,
            grantee: self.grantee,
            categories: self.categories,
            purpose: self.purpose,
            notBefore: u40(self.not_before, "notBefore")?,
            expiresAt: u40(self.expires_at, "expiresAt")?,
            signer: self.signer,
            epoch: u24(self.epoch)?,
            issuedAt: u40(self.issued_at, "issuedAt")?,
            deadline: self.deadline,
        })
    }
}

impl RelationshipMessage {
    /// The EIP-712 `Revoke` the contract verifies.
    pub fn to_revoke(&self) -> Result<eip712::Revoke> {
        Ok(eip712::Revoke {
            patient: self.patient,
            grantee: self.grantee,
            signer: self.signer,
            epoch: u24(self.epoch)?,
            issuedAt: u40(self.issued_at, "issuedAt")?,
            deadline: self.deadline,
        })
    }

    /// The EIP-712 `CancelSignatures` the contract verifies.
    pub fn to_cancel(&self) -> Result<eip712::CancelSignatures> {
        Ok(eip712::CancelSignatures {
            patient: self.patient,
            grantee: self.grantee,
            signer: self.signer,
            epoch: u24(self.epoch)?,
            issuedAt: u40(self.issued_at, "issuedAt")?,
            deadline: self.deadline,
        })
    }
}

impl StudyMessage {
    /// The EIP-712 `OptIn` the contract verifies.
    pub fn to_opt_in(&self) -> Result<eip712::OptIn> {
        Ok(eip712::OptIn {
            studyId: self.study_id,
            pseudonym: self.pseudonym,
            tags: self
                .tags
                .clone()
                .ok_or_else(|| CliError::input("the signed opt-in has no tags"))?,
            epoch: u24(self.epoch)?,
            issuedAt: u40(self.issued_at, "issuedAt")?,
            deadline: self.deadline,
        })
    }

    /// The EIP-712 `Withdraw` the contract verifies.
    pub fn to_withdraw(&self) -> Result<eip712::Withdraw> {
        Ok(eip712::Withdraw {
            studyId: self.study_id,
            pseudonym: self.pseudonym,
            epoch: u24(self.epoch)?,
            issuedAt: u40(self.issued_at, "issuedAt")?,
            deadline: self.deadline,
        })
    }

    /// The EIP-712 `CancelStudySignatures` the contract verifies.
    pub fn to_cancel(&self) -> Result<eip712::CancelStudySignatures> {
        Ok(eip712::CancelStudySignatures {
            studyId: self.study_id,
            pseudonym: self.pseudonym,
            epoch: u24(self.epoch)?,
            issuedAt: u40(self.issued_at, "issuedAt")?,
            deadline: self.deadline,
        })
    }
}

fn u40(v: u64, what: &str) -> Result<U40> {
    U40::try_from(v).map_err(|_| CliError::input(format!("{what} {v} does not fit in uint40")))
}

fn u24(v: u32) -> Result<U24> {
    U24::try_from(v).map_err(|_| CliError::input(format!("epoch {v} does not fit in uint24")))
}

/// Which message to sign, and for which contract.
pub enum Unsigned {
    /// A grant (consent registry).
    Grant(GrantMessage),
    /// A revocation (consent registry).
    Revoke(RelationshipMessage),
    /// A cancellation of a relationship's signatures (consent registry).
    CancelSignatures(RelationshipMessage),
    /// An opt-in (study registry).
    OptIn(StudyMessage),
    /// A withdrawal (study registry).
    Withdraw(StudyMessage),
    /// A cancellation of a participation's signatures (study registry).
    CancelStudySignatures(StudyMessage),
}

impl Unsigned {
    /// The EIP-712 domain of the registry that verifies it, at `contract` on `chain_id`.
    fn domain(&self, chain_id: u64, contract: Address) -> Eip712Domain {
        match self {
            Self::Grant(_) | Self::Revoke(_) | Self::CancelSignatures(_) => {
                medrec_bindings::consent_domain(chain_id, contract)
            }
            _ => medrec_bindings::study_domain(chain_id, contract),
        }
    }

    /// The EIP-712 hash to sign.
    fn signing_hash(&self, domain: &Eip712Domain) -> Result<B256> {
        Ok(match self {
            Self::Grant(m) => m.to_eip712()?.eip712_signing_hash(domain),
            Self::Revoke(m) => m.to_revoke()?.eip712_signing_hash(domain),
            Self::CancelSignatures(m) => m.to_cancel()?.eip712_signing_hash(domain),
            Self::OptIn(m) => m.to_opt_in()?.eip712_signing_hash(domain),
            Self::Withdraw(m) => m.to_withdraw()?.eip712_signing_hash(domain),
            Self::CancelStudySignatures(m) => m.to_cancel()?.eip712_signing_hash(domain),
        })
    }
}

impl SignedMessage {
    /// Signs `message` for its registry at `contract` on `chain_id`.
    pub async fn sign(
        signer: &PrivateKeySigner,
        chain_id: u64,
        contract: Address,
        message: Unsigned,
    ) -> Result<Self> {
        let hash = message.signing_hash(&message.domain(chain_id, contract))?;
        let signature = sign(signer, hash).await?;
        fn wrap<M>(chain_id: u64, contract: Address, message: M, signature: Bytes) -> Signed<M> {
            Signed {
                version: FORMAT_VERSION,
                chain_id,
                contract,
                message,
                signature,
            }
        }
        Ok(match message {
            Unsigned::Grant(m) => Self::Grant(wrap(chain_id, contract, m, signature)),
            Unsigned::Revoke(m) => Self::Revoke(wrap(chain_id, contract, m, signature)),
            Unsigned::CancelSignatures(m) => {
                Self::CancelSignatures(wrap(chain_id, contract, m, signature))
            }
            Unsigned::OptIn(m) => Self::OptIn(wrap(chain_id, contract, m, signature)),
            Unsigned::Withdraw(m) => Self::Withdraw(wrap(chain_id, contract, m, signature)),
            Unsigned::CancelStudySignatures(m) => {
                Self::CancelStudySignatures(wrap(chain_id, contract, m, signature))
            }
        })
    }

    /// Reads a file's text; files of an older format are refused with what to do.
    pub fn parse(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| CliError::input(format!("not a signed medrec message: {e}")))?;
        if value.get("type").is_none() || value.get("message").is_none() {
            return Err(CliError::input(
                "not a signed medrec message: it has no \"type\" and \"message\"",
            ));
        }
        match value.get("version").map(serde_json::Value::as_u64) {
            Some(Some(v)) if v == u64::from(FORMAT_VERSION) => {}
            Some(Some(v)) if v > u64::from(FORMAT_VERSION) => {
                return Err(CliError::input(format!(
                    "signed message of format {v}: this medrec reads format {FORMAT_VERSION}"
                )));
            }
            Some(Some(v)) => return Err(old_format(v)),
            None => return Err(old_format(1)),
            Some(None) => {
                return Err(CliError::input(
                    "not a signed medrec message: its version is not a number",
                ));
            }
        }
        serde_json::from_value(value)
            .map_err(|e| CliError::input(format!("not a signed medrec message: {e}")))
    }

    /// The domain it was signed for: (chain id, verifying contract).
    pub fn domain(&self) -> (u64, Address) {
        match self {
            Self::Grant(s) => (s.chain_id, s.contract),
            Self::Revoke(s) | Self::CancelSignatures(s) => (s.chain_id, s.contract),
            Self::OptIn(s) | Self::Withdraw(s) | Self::CancelStudySignatures(s) => {
                (s.chain_id, s.contract)
            }
        }
    }

    /// Whether the study registry verifies it (else the consent registry).
    pub fn is_study(&self) -> bool {
        matches!(
            self,
            Self::OptIn(_) | Self::Withdraw(_) | Self::CancelStudySignatures(_)
        )
    }

    /// The JSON text of the file (addresses checksummed), without a final newline.
    pub fn to_text(&self) -> Result<String> {
        let mut value = serde_json::to_value(self).map_err(|e| CliError::Io(e.to_string()))?;
        medrec_bindings::checksum_addresses(&mut value);
        serde_json::to_string_pretty(&value).map_err(|e| CliError::Io(e.to_string()))
    }
}

fn old_format(v: u64) -> CliError {
    CliError::input(format!(
        "signed message of format {v}, signed with a nonce that the contracts no longer accept: ask the signer to sign it again with this medrec (format {FORMAT_VERSION})"
    ))
}

async fn sign(signer: &PrivateKeySigner, hash: B256) -> Result<Bytes> {
    let sig = signer
        .sign_hash(&hash)
        .await
        .map_err(|e| CliError::Key(format!("cannot sign: {e}")))?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

/// Writes a number as a decimal string.
fn decimal<T: std::fmt::Display, S: Serializer>(
    v: &T,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Reads a wide number: a decimal string (or a JSON number, as a hand-written file may hold).
fn wide_u256<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<U256, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(U256::from(n)),
        Either::Text(t) => {
            let ok = !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
            ok.then(|| U256::from_str_radix(&t, 10).ok())
                .flatten()
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected a whole number as a decimal string, not {t:?}"
                    ))
                })
        }
    }
}

/// As [`wide_u256`], for a value of at most 64 bits.
fn wide_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let v = wide_u256(d)?;
    u64::try_from(v).map_err(|_| serde::de::Error::custom(format!("{v} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const PATIENT: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    const GRANTEE: Address = address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");
    const CONTRACT: Address = address!("0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0");

    fn grant() -> GrantMessage {
        GrantMessage {
            patient: PATIENT,
            grantee: GRANTEE,
            categories: (1 << 3) | (1 << 8),
            purpose: 1,
            not_before: 0,
            expires_at: 1_798_000_000,
            signer: PATIENT,
            epoch: 2,
            issued_at: 1_795_305_600,
            deadline: U256::from(1_795_392_000u64),
        }
    }

    #[tokio::test]
    async fn format_3_writes_wide_numbers_as_decimal_strings_and_reads_back() {
        let key = PrivateKeySigner::random();
        let signed = SignedMessage::sign(&key, 31337, CONTRACT, Unsigned::Grant(grant()))
            .await
            .unwrap();
        let text = signed.to_text().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "grant");
        assert_eq!(v["version"], 3);
        assert_eq!(v["chainId"], 31337);
        assert_eq!(v["contract"], CONTRACT.to_checksum(None));
        let m = &v["message"];
        assert_eq!(m["categories"], 264);
        assert_eq!(m["purpose"], 1);
        assert_eq!(m["notBefore"], "0");
        assert_eq!(m["expiresAt"], "1798000000");
        assert_eq!(m["epoch"], 2);
        assert_eq!(m["issuedAt"], "1795305600");
        assert_eq!(m["deadline"], "1795392000");
        assert_eq!(SignedMessage::parse(&text).unwrap(), signed);

        // A mask above 2^53 - 1 is a string, as everywhere in medrec's JSON.
        let wide = SignedMessage::sign(
            &key,
            31337,
            CONTRACT,
            Unsigned::Grant(GrantMessage {
                categories: u64::MAX,
                ..grant()
            }),
        )
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&wide.to_text().unwrap()).unwrap();
        assert_eq!(v["message"]["categories"], "18446744073709551615");
        assert_eq!(
            SignedMessage::parse(&wide.to_text().unwrap()).unwrap(),
            wide
        );
    }

    #[tokio::test]
    async fn the_signature_recovers_the_signer_over_the_eip712_hash() {
        let key = PrivateKeySigner::random();
        let msg = RelationshipMessage {
            patient: PATIENT,
            grantee: GRANTEE,
            signer: key.address(),
            epoch: 1,
            issued_at: 1_795_305_600,
            deadline: U256::from(1_795_392_000u64),
        };
        let SignedMessage::Revoke(s) =
            SignedMessage::sign(&key, 31337, CONTRACT, Unsigned::Revoke(msg.clone()))
                .await
                .unwrap()
        else {
            panic!("a revocation");
        };
        let hash = msg
            .to_revoke()
            .unwrap()
            .eip712_signing_hash(&medrec_bindings::consent_domain(31337, CONTRACT));
        let sig = alloy::primitives::Signature::try_from(s.signature.as_ref()).unwrap();
        assert_eq!(
            sig.recover_address_from_prehash(&hash).unwrap(),
            key.address()
        );
    }

    #[tokio::test]
    async fn study_messages_are_signed_under_the_study_domain() {
        let key = PrivateKeySigner::random();
        let msg = StudyMessage {
            study_id: U256::from(7),
            pseudonym: key.address(),
            tags: Some(Bytes::from(vec![7u8; 689])),
            epoch: 0,
            issued_at: 1_795_305_600,
            deadline: U256::from(1_795_392_000u64),
        };
        let signed = SignedMessage::sign(&key, 31337, CONTRACT, Unsigned::OptIn(msg.clone()))
            .await
            .unwrap();
        assert!(signed.is_study());
        let text = signed.to_text().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "optIn");
        assert_eq!(v["message"]["studyId"], "7");
        let SignedMessage::OptIn(s) = SignedMessage::parse(&text).unwrap() else {
            panic!("an opt-in");
        };
        let hash = msg
            .to_opt_in()
            .unwrap()
            .eip712_signing_hash(&medrec_bindings::study_domain(31337, CONTRACT));
        let sig = alloy::primitives::Signature::try_from(s.signature.as_ref()).unwrap();
        assert_eq!(
            sig.recover_address_from_prehash(&hash).unwrap(),
            key.address()
        );
    }

    /// A file that medrec wrote before format 3 (`grant --sign-only`, format 1: no version,
    /// `0x` hex numbers and a nonce).
    const FORMAT_1: &str = r#"{
  "chainId": 31337,
  "contract": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
  "message": {
    "categories": 264,
    "deadline": "0x6b0d33e7",
    "expiresAt": "0x6b2c6080",
    "grantee": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "nonce": "0x0",
    "notBefore": "0x0",
    "patient": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "purpose": 1,
    "signer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
  },
  "signature": "0x8f17cd6f840c40ef98b9c63f0dc753af5f25a1bfb8f6e51c0c2f9f83d6e3817d11c890fc3cf5e417d93b50bd067060f70ac7efe3ff181b1ed1f0282df712cc851b",
  "type": "grant"
}"#;

    #[test]
    fn nonce_files_of_formats_1_and_2_are_refused_with_what_to_do() {
        let e = SignedMessage::parse(FORMAT_1).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("format 1"), "{e}");
        assert!(e.to_string().contains("sign it again"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
        v["version"] = 2.into();
        let e = SignedMessage::parse(&v.to_string()).unwrap_err();
        assert!(e.to_string().contains("format 2"), "{e}");
        v["version"] = 4.into();
        let e = SignedMessage::parse(&v.to_string()).unwrap_err();
        assert!(e.to_string().contains("format 4"), "{e}");
    }

    #[tokio::test]
    async fn bad_numbers_are_refused() {
        let key = PrivateKeySigner::random();
        let text = SignedMessage::sign(&key, 31337, CONTRACT, Unsigned::Grant(grant()))
            .await
            .unwrap()
            .to_text()
            .unwrap();
        let with = |field: &str, value: &str| {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["message"][field] = serde_json::from_str(value).unwrap();
            SignedMessage::parse(&v.to_string())
        };
        for (field, bad) in [
            ("issuedAt", "\"-1\""),
            ("issuedAt", "\"1.5\""),
            ("issuedAt", "\"0x10\""),
            ("deadline", "\"seven\""),
            ("epoch", "-1"),
            ("epoch", "\"1\""),
            ("notBefore", "\"18446744073709551616\""),
            ("categories", "\"0x10\""),
        ] {
            assert!(with(field, bad).is_err(), "{field}: {bad}");
        }
        // Read but refused when signing or relaying: beyond uint40 or uint24.
        let SignedMessage::Grant(s) = with("expiresAt", "\"1099511627776\"").unwrap() else {
            panic!("a grant")
        };
        assert!(s.message.to_eip712().is_err());
        let SignedMessage::Grant(s) = with("epoch", "16777216").unwrap() else {
            panic!("a grant")
        };
        assert!(s.message.to_eip712().is_err());
    }
}
