//! Keys derived from the patient's one secret (issue 16, docs/privacy.md "Keys"): a pseudonym
//! per study (`study/<id>`), and later per holder (`holder/<address>`), unlinkable to each other
//! and to the patient's account by anyone without the secret.
//!
//! HKDF-SHA256 (RFC 5869) with the patient's 32-byte secret as input key material, no salt, and
//! an `info` naming the use: [`INFO_PREFIX`], the label, the chain id and the registry the key
//! acts on, and a one-byte counter. The 32 bytes out are taken as a secp256k1 secret key when
//! they are one (non-zero and below the group order); otherwise the counter moves on, which
//! happens with probability about 2^-128. Until step 3 gives the patient a seed, the secret is
//! the patient account's own secret key.

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use hkdf::Hkdf;
use sha2::Sha256;

/// What every derivation's `info` starts with: the scheme and its version.
pub const INFO_PREFIX: &[u8] = b"medrec.pseudonym.v1";

/// The label of a study's pseudonym: `study/<study id in decimal>`.
pub fn study_label(study_id: U256) -> String {
    format!("study/{study_id}")
}

/// The label of the patient's key as holder `holder` knows them: `holder/<address>`, the
/// address in lower-case hex with `0x`.
pub fn holder_label(holder: Address) -> String {
    format!("holder/{}", alloy::hex::encode_prefixed(holder))
}

/// The `info` of a derivation: [`INFO_PREFIX`], 0, the label, 0, the chain id (8 bytes
/// big-endian), the registry's 20 bytes and the counter.
fn info(label: &str, chain_id: u64, registry: Address, counter: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(INFO_PREFIX.len() + label.len() + 31);
    v.extend_from_slice(INFO_PREFIX);
    v.push(0);
    v.extend_from_slice(label.as_bytes());
    v.push(0);
    v.extend_from_slice(&chain_id.to_be_bytes());
    v.extend_from_slice(registry.as_slice());
    v.push(counter);
    v
}

/// The key labelled `label` for the registry `registry` on chain `chain_id`, derived from
/// `secret`. Deterministic: the same inputs always give the same key.
pub fn derive(secret: &B256, label: &str, chain_id: u64, registry: Address) -> PrivateKeySigner {
    let hk = Hkdf::<Sha256>::new(None, secret.as_slice());
    for counter in 0..=u8::MAX {
        let mut okm = [0u8; 32];
        hk.expand(&info(label, chain_id, registry, counter), &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        if let Ok(key) = PrivateKeySigner::from_bytes(&B256::from(okm)) {
            return key;
        }
    }
    // 256 outputs in a row outside [1, n): probability about 2^-32768.
    unreachable!("no valid secp256k1 key in 256 HKDF outputs")
}

/// The patient's pseudonym in study `study_id` of the study registry `registry` on chain
/// `chain_id`.
pub fn study_pseudonym(
    secret: &B256,
    chain_id: u64,
    registry: Address,
    study_id: U256,
) -> PrivateKeySigner {
    derive(secret, &study_label(study_id), chain_id, registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    const SECRET: B256 = B256::repeat_byte(0x42);
    const REGISTRY: Address = address!("0x00000000000000000000000000000000000000aa");

    #[test]
    fn a_pseudonym_is_stable_and_differs_per_study_chain_registry_and_secret() {
        let a = study_pseudonym(&SECRET, 31337, REGISTRY, U256::from(1)).address();
        assert_eq!(
            a,
            study_pseudonym(&SECRET, 31337, REGISTRY, U256::from(1)).address()
        );
        let others = [
            study_pseudonym(&SECRET, 31337, REGISTRY, U256::from(2)).address(),
            study_pseudonym(&SECRET, 1, REGISTRY, U256::from(1)).address(),
            study_pseudonym(&SECRET, 31337, Address::ZERO, U256::from(1)).address(),
            study_pseudonym(&B256::repeat_byte(0x43), 31337, REGISTRY, U256::from(1)).address(),
            derive(&SECRET, &holder_label(REGISTRY), 31337, REGISTRY).address(),
        ];
        for o in others {
            assert_ne!(a, o);
        }
        // Not the account of the secret itself.
        let account = PrivateKeySigner::from_bytes(&SECRET).unwrap().address();
        assert_ne!(a, account);
    }

    #[test]
    fn labels_and_info_are_pinned() {
        assert_eq!(study_label(U256::from(12)), "study/12");
        assert_eq!(
            holder_label(REGISTRY),
            "holder/0x00000000000000000000000000000000000000aa"
        );
        let i = info("study/1", 0x0102, REGISTRY, 3);
        assert_eq!(&i[..INFO_PREFIX.len()], INFO_PREFIX);
        assert_eq!(
            &i[INFO_PREFIX.len()..],
            [
                &[0u8][..],
                b"study/1",
                &[0],
                &[0, 0, 0, 0, 0, 0, 1, 2],
                REGISTRY.as_slice(),
                &[3]
            ]
            .concat()
        );
    }
}

#[cfg(test)]
mod vector {
    use super::*;

    /// A fixed derivation, pinned for other implementations (interop/research.mjs derives the
    /// same with node's HKDF): secret 0x42 x 32, chain 31337, registry 0xaa x 20, study 1.
    #[test]
    fn the_derivation_is_pinned() {
        let got = study_pseudonym(
            &B256::repeat_byte(0x42),
            31337,
            Address::repeat_byte(0xaa),
            U256::from(1),
        )
        .address();
        assert_eq!(
            got,
            alloy::primitives::address!("0x16c72fEb15F6bDd0e1B97A25F7a6b425eE905087")
        );
    }
}
