//! The signed-message file: what `medrec grant --sign-only` and `medrec revoke --sign-only`
//! write and `medrec relay` reads, so that a patient with no ether can sign offline and
//! anyone may send the transaction (`grantBySig` / `revokeBySig` of the ConsentRegistry).
//!
//! # Format 2
//!
//! One JSON object (UTF-8, pretty-printed, addresses EIP-55 checksummed):
//!
//! ```json
//! {
//!   "type": "grant",
//!   "version": 2,
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
//!     "nonce": "0",
//!     "deadline": "1795392000"
//!   },
//!   "signature": "0x…65 bytes: r, s, v…"
//! }
//! ```
//!
//! - `type` is `"grant"` or `"revoke"`; `message` holds the fields of the EIP-712 struct of
//!   that name (`Grant` or `Revoke`, names as in Solidity), signed under the domain
//!   `{name: "medrec.ConsentRegistry", version: "1", chainId, verifyingContract: contract}`
//!   ([`medrec_bindings::consent_domain`]), with the types
//!   `Grant(address patient,address grantee,uint64 categories,uint8 purpose,uint40 notBefore,uint40 expiresAt,address signer,uint256 nonce,uint256 deadline)`
//!   and `Revoke(address patient,address grantee,address signer,uint256 nonce,uint256 deadline)`.
//!   A revocation's message has those five fields. A viem user signs the same message with
//!   `signTypedData({domain, types, primaryType: "Grant", message})`, passing the decimal
//!   strings as `BigInt(...)`, and writes the file with the signature it returns.
//! - One rule for numbers: a value whose Solidity type is wider than 32 bits (`uint40`
//!   times, `uint256` nonce and deadline) is a decimal string, since JavaScript reads JSON
//!   numbers exactly only up to 2^53 − 1; small ones (`uint8` purpose, and the chain id, a
//!   JavaScript number in viem and ethers) are JSON numbers; the `uint64` category mask is a
//!   number up to 2^53 − 1 and a decimal string above ([`medrec_protocol::mask`]), as in every
//!   other medrec JSON. Times are unix seconds; `notBefore` 0 means "from now on".
//! - `signature` is the 65-byte signature (`r ‖ s ‖ v`, v 27 or 28) of the EIP-712 hash, hex.
//!
//! # Format 1 (read, never written)
//!
//! Files of medrec before format 2 have no `version`, and write the `uint40` and `uint256`
//! values as `0x` hex strings. They are still read: every wide number is accepted as a
//! decimal string, a `0x` hex string or a JSON number.

use crate::error::{CliError, Result};
use alloy::primitives::{Address, B256, Bytes, U256, aliases::U40};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use medrec_bindings::eip712;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The format version this medrec writes.
pub const FORMAT_VERSION: u32 = 2;

/// The version of files written before the format had one.
const FIRST_VERSION: u32 = 1;

/// A signed grant or revocation, as `--sign-only` writes it and `relay` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SignedMessage {
    /// A signed `Grant`.
    Grant(Signed<GrantMessage>),
    /// A signed `Revoke`.
    Revoke(Signed<RevokeMessage>),
}

/// The envelope around a message: where it may be relayed, and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed<M> {
    /// The file format's version ([`FORMAT_VERSION`]; absent in format 1).
    #[serde(default = "first_version")]
    pub version: u32,
    /// Chain id of the EIP-712 domain.
    pub chain_id: u64,
    /// The consent registry: the domain's verifying contract.
    pub contract: Address,
    /// The signed message.
    pub message: M,
    /// The 65-byte signature of the message's EIP-712 hash.
    pub signature: Bytes,
}

fn first_version() -> u32 {
    FIRST_VERSION
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
    /// The signer's consent nonce.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u256")]
    pub nonce: U256,
    /// Unix second after which the signature is refused.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u256")]
    pub deadline: U256,
}

/// The EIP-712 `Revoke` of the consent registry, with the file's number encodings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeMessage {
    /// The patient whose grant ends.
    pub patient: Address,
    /// The provider whose access ends.
    pub grantee: Address,
    /// Who signed: the patient or their guardian.
    pub signer: Address,
    /// The signer's consent nonce.
    #[serde(serialize_with = "decimal", deserialize_with = "wide_u256")]
    pub nonce: U256,
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
            nonce: self.nonce,
            deadline: self.deadline,
        })
    }
}

impl RevokeMessage {
    /// The EIP-712 struct the contract verifies.
    pub fn to_eip712(&self) -> eip712::Revoke {
        eip712::Revoke {
            patient: self.patient,
            grantee: self.grantee,
            signer: self.signer,
            nonce: self.nonce,
            deadline: self.deadline,
        }
    }
}

fn u40(v: u64, what: &str) -> Result<U40> {
    U40::try_from(v).map_err(|_| CliError::input(format!("{what} {v} does not fit in uint40")))
}

impl SignedMessage {
    /// Signs `message` for the consent registry `contract` on `chain_id`.
    pub async fn grant(
        signer: &PrivateKeySigner,
        chain_id: u64,
        contract: Address,
        message: GrantMessage,
    ) -> Result<Self> {
        let hash = message
            .to_eip712()?
            .eip712_signing_hash(&medrec_bindings::consent_domain(chain_id, contract));
        let signature = sign(signer, hash).await?;
        Ok(Self::Grant(Signed {
            version: FORMAT_VERSION,
            chain_id,
            contract,
            message,
            signature,
        }))
    }

    /// Signs `message` for the consent registry `contract` on `chain_id`.
    pub async fn revoke(
        signer: &PrivateKeySigner,
        chain_id: u64,
        contract: Address,
        message: RevokeMessage,
    ) -> Result<Self> {
        let hash = message
            .to_eip712()
            .eip712_signing_hash(&medrec_bindings::consent_domain(chain_id, contract));
        let signature = sign(signer, hash).await?;
        Ok(Self::Revoke(Signed {
            version: FORMAT_VERSION,
            chain_id,
            contract,
            message,
            signature,
        }))
    }

    /// Reads a file's text, of format 1 or 2.
    pub fn parse(text: &str) -> Result<Self> {
        let msg: Self = serde_json::from_str(text)
            .map_err(|e| CliError::input(format!("not a signed medrec message: {e}")))?;
        let version = msg.version();
        if !(FIRST_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(CliError::input(format!(
                "signed message of format {version}: this medrec reads formats {FIRST_VERSION} to {FORMAT_VERSION}"
            )));
        }
        Ok(msg)
    }

    /// The file format's version.
    pub fn version(&self) -> u32 {
        match self {
            Self::Grant(s) => s.version,
            Self::Revoke(s) => s.version,
        }
    }

    /// The domain it was signed for: (chain id, consent registry).
    pub fn domain(&self) -> (u64, Address) {
        match self {
            Self::Grant(s) => (s.chain_id, s.contract),
            Self::Revoke(s) => (s.chain_id, s.contract),
        }
    }

    /// The JSON text of the file (addresses checksummed), without a final newline.
    pub fn to_text(&self) -> Result<String> {
        let mut value = serde_json::to_value(self).map_err(|e| CliError::Io(e.to_string()))?;
        medrec_bindings::checksum_addresses(&mut value);
        serde_json::to_string_pretty(&value).map_err(|e| CliError::Io(e.to_string()))
    }
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

/// Reads a wide number: a decimal string, a `0x` hex string (format 1) or a JSON number.
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
            let digits = t.strip_prefix("0x").unwrap_or(&t);
            let radix = if digits.len() < t.len() { 16 } else { 10 };
            let ok = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
            ok.then(|| U256::from_str_radix(digits, radix as u64).ok())
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
            nonce: U256::from(7),
            deadline: U256::from(1_795_392_000u64),
        }
    }

    #[tokio::test]
    async fn format_2_writes_wide_numbers_as_decimal_strings_and_reads_back() {
        let key = PrivateKeySigner::random();
        let signed = SignedMessage::grant(&key, 31337, CONTRACT, grant())
            .await
            .unwrap();
        let text = signed.to_text().unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "grant");
        assert_eq!(v["version"], 2);
        assert_eq!(v["chainId"], 31337);
        assert_eq!(v["contract"], CONTRACT.to_checksum(None));
        let m = &v["message"];
        assert_eq!(m["categories"], 264);
        assert_eq!(m["purpose"], 1);
        assert_eq!(m["notBefore"], "0");
        assert_eq!(m["expiresAt"], "1798000000");
        assert_eq!(m["nonce"], "7");
        assert_eq!(m["deadline"], "1795392000");
        assert_eq!(SignedMessage::parse(&text).unwrap(), signed);

        // A mask above 2^53 - 1 is a string, as everywhere in medrec's JSON.
        let wide = SignedMessage::grant(
            &key,
            31337,
            CONTRACT,
            GrantMessage {
                categories: u64::MAX,
                ..grant()
            },
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
        let msg = RevokeMessage {
            patient: PATIENT,
            grantee: GRANTEE,
            signer: key.address(),
            nonce: U256::from(1),
            deadline: U256::from(1_795_392_000u64),
        };
        let SignedMessage::Revoke(s) = SignedMessage::revoke(&key, 31337, CONTRACT, msg.clone())
            .await
            .unwrap()
        else {
            panic!("a revocation");
        };
        let hash = msg
            .to_eip712()
            .eip712_signing_hash(&medrec_bindings::consent_domain(31337, CONTRACT));
        let sig = alloy::primitives::Signature::try_from(s.signature.as_ref()).unwrap();
        assert_eq!(
            sig.recover_address_from_prehash(&hash).unwrap(),
            key.address()
        );
    }

    /// A file that medrec wrote before format 2 (`grant --sign-only`): no version, `0x` hex
    /// for the uint40 and uint256 values.
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
    fn format_1_files_are_still_read() {
        let SignedMessage::Grant(s) = SignedMessage::parse(FORMAT_1).unwrap() else {
            panic!("a grant");
        };
        let gov = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        assert_eq!(s.version, 1);
        assert_eq!(s.chain_id, 31337);
        assert_eq!(
            s.contract,
            address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
        );
        let want = GrantMessage {
            patient: gov,
            grantee: GRANTEE,
            categories: 264,
            purpose: 1,
            not_before: 0,
            expires_at: 1_798_070_400,
            signer: gov,
            nonce: U256::ZERO,
            deadline: U256::from(1_796_027_367u64),
        };
        assert_eq!(s.message, want);
        // Its signature is gov's over the same EIP-712 hash as format 2 signs.
        let hash = want
            .to_eip712()
            .unwrap()
            .eip712_signing_hash(&medrec_bindings::consent_domain(31337, s.contract));
        let sig = alloy::primitives::Signature::try_from(s.signature.as_ref()).unwrap();
        assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), gov);
    }

    #[test]
    fn bad_numbers_and_versions_are_refused() {
        let with = |field: &str, value: &str| {
            let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
            v["message"][field] = serde_json::from_str(value).unwrap();
            SignedMessage::parse(&v.to_string())
        };
        for (field, bad) in [
            ("nonce", "\"-1\""),
            ("nonce", "\"1.5\""),
            ("nonce", "\"0x\""),
            ("nonce", "\"seven\""),
            ("nonce", "-1"),
            ("notBefore", "\"18446744073709551616\""),
            ("categories", "\"0x10\""),
        ] {
            assert!(with(field, bad).is_err(), "{field}: {bad}");
        }
        // Read but refused when signing or relaying: a time beyond uint40.
        let far = with("expiresAt", "\"1099511627776\"").unwrap();
        let SignedMessage::Grant(s) = far else {
            panic!("a grant")
        };
        assert!(s.message.to_eip712().is_err());

        let mut v: serde_json::Value = serde_json::from_str(FORMAT_1).unwrap();
        v["version"] = 3.into();
        let e = SignedMessage::parse(&v.to_string()).unwrap_err();
        assert!(e.to_string().contains("format 3"), "{e}");
    }
}
