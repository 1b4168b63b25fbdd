//! An opt-in's holder slots (issue 16, docs/privacy.md): how each holder of the patient's
//! records finds, in `StudyRegistry.OptedIn(studyId, pseudonym, tags)`, the patients of its own
//! who consent, while nobody else links the pseudonym to anyone, nor learns how many holders
//! the patient has.
//!
//! `tags` is [`TAGS_LEN`] bytes: a fresh ephemeral secp256k1 public key (33 bytes, compressed),
//! then [`TAG_SLOTS`] slots of [`SLOT_LEN`] bytes. For each holder of the patient's records one
//! slot, at a random position: a one-byte view tag, then the AES-256-GCM ciphertext (with its
//! 16-byte tag) of the patient's 65-byte membership proof ([`membership_proof`]: the public key
//! that holder knows the patient by, and an HMAC-SHA256 under ECDH(the patient's key, the
//! holder's service key) over the holder and [`StudyMembership`] (study, pseudonym) under the
//! StudyRegistry's EIP-712 domain). The slot's key, nonce and view tag come from HKDF-SHA256 of
//! the x coordinate of ECDH(ephemeral key, the holder's registered service key), salted with the
//! ephemeral public key and bound to the chain, registry, study, pseudonym, holder and service
//! key. The other slots are random bytes (never with a used slot's view tag).
//!
//! A holder derives the slot key once per opt-in, tries the slots whose first byte is its view
//! tag (at most [`MAX_VIEW_MATCHES`]), decrypts, checks the proof's HMAC with its own secret and
//! counts the pseudonym only if the key's address is one of its patients. A slot forged for a
//! victim (without the victim's secret) does not open to the victim, so nobody but the holder
//! itself can opt a victim in; and since the holder could have made the proof, it is no
//! evidence to anyone else that the patient opted in.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolStruct;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

/// How many slots an opt-in carries (the contract's `TAG_SLOTS`): the most holders of one
/// patient's records an opt-in reaches.
pub const TAG_SLOTS: usize = 8;
/// The length of a slot's plaintext, the patient's membership proof ([`membership_proof`]):
/// the patient's compressed public key (33) and an HMAC-SHA256 (32).
pub const PROOF_LEN: usize = 33 + 32;
/// The length of one slot (the contract's `TAG_SLOT_LENGTH`): view tag, ciphertext, GCM tag.
pub const SLOT_LEN: usize = 1 + PROOF_LEN + 16;
/// The length of the ephemeral public key at the start of the tags.
pub const EPHEMERAL_LEN: usize = 33;
/// The exact length of an opt-in's tags (the contract's `TAGS_LENGTH`).
pub const TAGS_LEN: usize = EPHEMERAL_LEN + TAG_SLOTS * SLOT_LEN;

/// The gatekeeper's route that serves its service public key ([`ServiceKeyAnswer`]).
pub const SERVICE_KEY_PATH: &str = "/v1/service-key";

/// `GET /v1/service-key`: the key a patient encrypts this holder's slot to. Never trusted
/// unchecked: the CLI requires that it hashes to the service key the holder registered on
/// chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceKeyAnswer {
    /// The holder.
    pub holder: Address,
    /// Its service public key, SEC1-compressed (33 bytes).
    pub public_key: alloy::primitives::Bytes,
    /// The address of that key.
    pub address: Address,
}

/// How long every study message's signature stays valid from its issue time (opt-in,
/// withdrawal, cancellation), the same for every client (CLI, simulator, interop, bench): a
/// window of the signer's choosing would tell signers apart.
pub const STUDY_SIGNATURE_WINDOW: u64 = 86_400;

/// The granularity of a study message's issue time: the chain's latest block time rounded
/// down to it, so that the signer's clock shows nowhere.
pub const STUDY_ISSUED_AT_STEP: u64 = 60;

/// A study message's `issuedAt` and `deadline`: the chain's latest block time rounded down to
/// [`STUDY_ISSUED_AT_STEP`], kept after the participation's last `signedAt` (a message issued at
/// or before it is stale), and [`STUDY_SIGNATURE_WINDOW`] after it. `None` when that is past
/// `ceiling` (the latest block time plus the registry's `MAX_SIGNATURE_SKEW`).
pub fn study_signed_times(latest: u64, last_signed_at: u64, ceiling: u64) -> Option<(u64, u64)> {
    let issued =
        medrec_bindings::next_issued_at(latest - latest % STUDY_ISSUED_AT_STEP, last_signed_at);
    (issued <= ceiling).then_some((issued, issued + STUDY_SIGNATURE_WINDOW))
}

/// How many slots with its view tag a holder tries per opt-in. [`build`] never leaves a
/// random slot with a used slot's view tag, so an honest opt-in's slot is the first match.
pub const MAX_VIEW_MATCHES: usize = 2;

/// What every slot key's HKDF `info` starts with.
const INFO_PREFIX: &[u8] = b"medrec.study-tag.v1";

#[allow(missing_docs)]
mod sol {
    alloy::sol! {
        /// The patient's statement that `pseudonym` is theirs in study `studyId`, signed with
        /// the key a holder knows them by and encrypted to that holder (never sent to the
        /// registry in the clear).
        #[derive(Debug, PartialEq, Eq)]
        struct StudyMembership {
            uint256 studyId;
            address pseudonym;
        }
    }
}
pub use sol::StudyMembership;

/// Where an opt-in's slots belong: the chain, the study registry, the study and the pseudonym.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptInContext {
    /// The chain id.
    pub chain_id: u64,
    /// The study registry.
    pub registry: Address,
    /// The study.
    pub study_id: U256,
    /// The study pseudonym that opts in.
    pub pseudonym: Address,
}

impl OptInContext {
    /// The hash a holder's patient signs into its slot (EIP-712, the registry's domain).
    pub fn membership_hash(&self) -> B256 {
        StudyMembership {
            studyId: self.study_id,
            pseudonym: self.pseudonym,
        }
        .eip712_signing_hash(&medrec_bindings::study_domain(self.chain_id, self.registry))
    }

    /// The HKDF `info` of a slot key: the prefix, chain id, registry, study and pseudonym,
    /// then the holder and its service public key (SEC1-compressed), so that two holders
    /// registered with one service key still get unrelated slots.
    fn info(&self, holder: Address, service_key: &[u8; 33]) -> Vec<u8> {
        let mut v = Vec::with_capacity(INFO_PREFIX.len() + 8 + 20 + 32 + 20 + 20 + 33);
        v.extend_from_slice(INFO_PREFIX);
        v.extend_from_slice(&self.chain_id.to_be_bytes());
        v.extend_from_slice(self.registry.as_slice());
        v.extend_from_slice(&self.study_id.to_be_bytes::<32>());
        v.extend_from_slice(self.pseudonym.as_slice());
        v.extend_from_slice(holder.as_slice());
        v.extend_from_slice(service_key);
        v
    }
}

/// Why tags could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// More holders than slots.
    #[error("{0} holders, but an opt-in carries at most {TAG_SLOTS} slots")]
    TooManyHolders(usize),
    /// A service key is not a secp256k1 public key.
    #[error("the service key of holder {0} is not a secp256k1 public key")]
    BadServiceKey(Address),
    /// A proof is not 65 bytes.
    #[error("the membership proof for holder {0} is not {PROOF_LEN} bytes")]
    BadSignature(Address),
}

/// One holder's slot to be built: its address (bound into the slot's key), its service public key
/// (33 or 65 bytes, SEC1) and the patient's signature of the context's [`StudyMembership`]
/// with the key that holder knows them by.
#[derive(Debug, Clone)]
pub struct HolderSlot {
    /// The holder.
    pub holder: Address,
    /// The holder's service public key, SEC1-encoded.
    pub service_key: Vec<u8>,
    /// The patient's 65-byte membership proof for this holder ([`membership_proof`]).
    pub proof: Vec<u8>,
}

/// The view tag, AES key and nonce of a slot from the ECDH point's x coordinate.
struct SlotKey {
    view: u8,
    key: [u8; 32],
    nonce: [u8; 12],
}

fn slot_key(
    shared_x: &[u8],
    ephemeral: &[u8],
    ctx: &OptInContext,
    holder: Address,
    service_key: &[u8; 33],
) -> SlotKey {
    let hk = Hkdf::<Sha256>::new(Some(ephemeral), shared_x);
    let mut okm = [0u8; 1 + 32 + 12];
    hk.expand(&ctx.info(holder, service_key), &mut okm)
        .expect("45 bytes is a valid HKDF-SHA256 length");
    let mut key = [0u8; 32];
    key.copy_from_slice(&okm[1..33]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[33..]);
    SlotKey {
        view: okm[0],
        key,
        nonce,
    }
}

fn cipher(k: &SlotKey) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&k.key))
}

/// Builds an opt-in's [`TAGS_LEN`] bytes of tags: one slot per holder at a random position,
/// random bytes elsewhere, under a fresh ephemeral key.
pub fn build(ctx: &OptInContext, holders: &[HolderSlot]) -> Result<Vec<u8>, TagError> {
    if holders.len() > TAG_SLOTS {
        return Err(TagError::TooManyHolders(holders.len()));
    }
    let secp = secp256k1::Secp256k1::signing_only();
    let mut rng = rand::thread_rng();
    let ephemeral = loop {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        if let Ok(k) = secp256k1::SecretKey::from_byte_array(&b) {
            break k;
        }
    };
    let eph_pub = secp256k1::PublicKey::from_secret_key(&secp, &ephemeral).serialize();
    let mut tags = vec![0u8; TAGS_LEN];
    rng.fill_bytes(&mut tags[EPHEMERAL_LEN..]);
    tags[..EPHEMERAL_LEN].copy_from_slice(&eph_pub);
    // A random order of the slots: the used ones are not always the first.
    let mut order: Vec<usize> = (0..TAG_SLOTS).collect();
    for i in (1..TAG_SLOTS).rev() {
        order.swap(i, (rng.next_u32() as usize) % (i + 1));
    }
    let mut views = Vec::with_capacity(holders.len());
    for (h, &slot) in holders.iter().zip(&order) {
        let pk = secp256k1::PublicKey::from_slice(&h.service_key)
            .map_err(|_| TagError::BadServiceKey(h.holder))?;
        if h.proof.len() != PROOF_LEN {
            return Err(TagError::BadSignature(h.holder));
        }
        let shared = secp256k1::ecdh::shared_secret_point(&pk, &ephemeral);
        let k = slot_key(&shared[..32], &eph_pub, ctx, h.holder, &pk.serialize());
        let ct = cipher(&k)
            .encrypt(Nonce::from_slice(&k.nonce), h.proof.as_slice())
            .expect("AES-GCM encrypts 65 bytes");
        let at = EPHEMERAL_LEN + slot * SLOT_LEN;
        tags[at] = k.view;
        tags[at + 1..at + SLOT_LEN].copy_from_slice(&ct);
        views.push(k.view);
    }
    // No random slot carries a used slot's view tag: a holder tries its own slot first, and
    // stopping after [`MAX_VIEW_MATCHES`] never misses it.
    for &slot in &order[holders.len()..] {
        let at = EPHEMERAL_LEN + slot * SLOT_LEN;
        while views.contains(&tags[at]) {
            tags[at] = (rng.next_u32() & 0xff) as u8;
        }
    }
    Ok(tags)
}

/// What `holder`'s service key finds in an opt-in's tags: the signer of the membership in its
/// slot (the patient as that holder knows them), or `None` when no slot opens to a valid
/// signature of this study and pseudonym. The caller still checks that the signer is one of its
/// patients.
pub fn open(
    service_key: &ServiceKey,
    holder: Address,
    ctx: &OptInContext,
    tags: &[u8],
) -> Option<Address> {
    if tags.len() != TAGS_LEN {
        return None;
    }
    let eph = &tags[..EPHEMERAL_LEN];
    let eph_pub = secp256k1::PublicKey::from_slice(eph).ok()?;
    let shared = secp256k1::ecdh::shared_secret_point(&eph_pub, &service_key.0);
    let own = secp256k1::PublicKey::from_secret_key(
        &secp256k1::Secp256k1::signing_only(),
        &service_key.0,
    )
    .serialize();
    let k = slot_key(&shared[..32], eph, ctx, holder, &own);
    let c = cipher(&k);
    // At most [`MAX_VIEW_MATCHES`] slots are tried: an opt-in whose every slot carries this
    // holder's view tag (junk made to load the holder) costs two decryptions, not eight.
    tags[EPHEMERAL_LEN..]
        .chunks_exact(SLOT_LEN)
        .filter(|slot| slot[0] == k.view)
        .take(MAX_VIEW_MATCHES)
        .find_map(|slot| {
            let sig = c
                .decrypt(
                    Nonce::from_slice(&k.nonce),
                    Payload {
                        msg: &slot[1..],
                        aad: &[],
                    },
                )
                .ok()?;
            check_proof(service_key, holder, ctx, &sig)
        })
}

/// What an opt-in slot's HMAC is over: a label, the holder and the membership hash.
fn proof_message(holder: Address, ctx: &OptInContext) -> Vec<u8> {
    let mut m = PROOF_LABEL.to_vec();
    m.extend_from_slice(holder.as_slice());
    m.extend_from_slice(ctx.membership_hash().as_slice());
    m
}

/// The label that starts every membership proof's HMAC input.
const PROOF_LABEL: &[u8] = b"medrec.study-membership.v1";

/// The patient's membership proof for `holder` (the plaintext of its slot): the patient's
/// compressed public key, then HMAC-SHA256 keyed by the x coordinate of ECDH(the patient's
/// secret, the holder's service key) over the label, the holder and the context's
/// [`StudyMembership`] hash. The holder checks it with its own secret; since it could have
/// computed it too, the proof convinces nobody else (unlike a signature, a breached holder
/// has nothing to show). `None` when a key is not a secp256k1 key.
pub fn membership_proof(
    patient_secret: &B256,
    holder: Address,
    service_key: &[u8],
    ctx: &OptInContext,
) -> Option<Vec<u8>> {
    use hmac::Mac;
    let sk = secp256k1::SecretKey::from_byte_array(&patient_secret.0).ok()?;
    let service = secp256k1::PublicKey::from_slice(service_key).ok()?;
    let shared = secp256k1::ecdh::shared_secret_point(&service, &sk);
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&shared[..32]).ok()?;
    mac.update(&proof_message(holder, ctx));
    let mut out = secp256k1::PublicKey::from_secret_key(&secp256k1::Secp256k1::signing_only(), &sk)
        .serialize()
        .to_vec();
    out.extend_from_slice(&mac.finalize().into_bytes());
    Some(out)
}

/// The patient a membership proof names, if its HMAC checks with this holder's service key.
fn check_proof(
    service_key: &ServiceKey,
    holder: Address,
    ctx: &OptInContext,
    proof: &[u8],
) -> Option<Address> {
    use hmac::Mac;
    if proof.len() != PROOF_LEN {
        return None;
    }
    let patient = secp256k1::PublicKey::from_slice(&proof[..33]).ok()?;
    let shared = secp256k1::ecdh::shared_secret_point(&patient, &service_key.0);
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&shared[..32]).ok()?;
    mac.update(&proof_message(holder, ctx));
    mac.verify_slice(&proof[33..]).ok()?;
    address_of_public_key(&proof[..33])
}

/// A holder's service key, which opens the slots encrypted to it.
#[derive(Clone)]
pub struct ServiceKey(secp256k1::SecretKey);

impl ServiceKey {
    /// The key of a signer's 32 secret bytes (`PrivateKeySigner::to_bytes`), if valid.
    pub fn from_bytes(bytes: &B256) -> Option<Self> {
        secp256k1::SecretKey::from_byte_array(&bytes.0)
            .ok()
            .map(Self)
    }

    /// Its public key, SEC1-compressed (33 bytes): what the gatekeeper serves and patients
    /// encrypt to.
    pub fn public_key(&self) -> Vec<u8> {
        secp256k1::PublicKey::from_secret_key(&secp256k1::Secp256k1::signing_only(), &self.0)
            .serialize()
            .to_vec()
    }
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServiceKey({:?})",
            address_of_public_key(&self.public_key())
        )
    }
}

/// The address of a SEC1-encoded secp256k1 public key (33 or 65 bytes), as the chain names the
/// key: the CLI checks a served service key against the one registered.
pub fn address_of_public_key(sec1: &[u8]) -> Option<Address> {
    let pk = secp256k1::PublicKey::from_slice(sec1).ok()?;
    Some(Address::from_raw_public_key(
        &pk.serialize_uncompressed()[1..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    fn service() -> (ServiceKey, Vec<u8>, Address) {
        let signer = PrivateKeySigner::random();
        let sk = ServiceKey::from_bytes(&signer.to_bytes()).unwrap();
        let pk = sk.public_key();
        assert_eq!(address_of_public_key(&pk), Some(signer.address()));
        (sk, pk, signer.address())
    }

    fn ctx() -> OptInContext {
        OptInContext {
            chain_id: 31337,
            registry: Address::repeat_byte(0xaa),
            study_id: U256::from(3),
            pseudonym: Address::repeat_byte(0x55),
        }
    }

    fn proof(patient: &PrivateKeySigner, holder: Address, pk: &[u8], c: &OptInContext) -> Vec<u8> {
        membership_proof(&patient.to_bytes(), holder, pk, c).unwrap()
    }

    /// Attack review finding 6: a study message's times come from the chain, rounded to the
    /// minute, with one window: two signers at different clocks sign the same times.
    #[test]
    fn study_times_are_the_chains_minute_and_one_window() {
        let latest = 1_800_000_059;
        assert_eq!(
            study_signed_times(latest, 0, latest + 900),
            Some((1_800_000_000, 1_800_000_000 + STUDY_SIGNATURE_WINDOW))
        );
        // After the last signed message, even within the same minute.
        assert_eq!(
            study_signed_times(latest, 1_800_000_010, latest + 900).map(|t| t.0),
            Some(1_800_000_011)
        );
        assert_eq!(study_signed_times(latest, latest + 900, latest + 900), None);
    }

    /// Attack review finding 8: junk opt-ins with all eight slots carrying a holder's view tag
    /// made it decrypt (and recover) eight times each. It now tries at most two: a real slot
    /// behind two junk matches is not reached (it was before). An honest opt-in never has a
    /// random slot with a used view tag, so its slot is the first tried.
    #[test]
    fn a_holder_tries_at_most_two_slots_with_its_view_tag() {
        let (sk, pk, a) = service();
        let patient = PrivateKeySigner::random();
        let c = ctx();
        let tags = build(
            &c,
            &[HolderSlot {
                holder: a,
                service_key: pk.clone(),
                proof: proof(&patient, a, &pk, &c),
            }],
        )
        .unwrap();
        let slots: Vec<&[u8]> = tags[EPHEMERAL_LEN..].chunks_exact(SLOT_LEN).collect();
        // Which slot is this holder's: each tried alone, the others unable to match.
        let mine = slots
            .iter()
            .position(|s| {
                let mut alone = tags[..EPHEMERAL_LEN].to_vec();
                alone.extend_from_slice(s);
                for _ in 1..TAG_SLOTS {
                    alone.extend_from_slice(&[s[0] ^ 0xff; SLOT_LEN]);
                }
                open(&sk, a, &c, &alone).is_some()
            })
            .unwrap();
        let view = slots[mine][0];
        // Only the holder's own slot carries its view tag.
        assert_eq!(slots.iter().filter(|s| s[0] == view).count(), 1);
        // Junk: the real slot last, every other slot with the view tag.
        let mut junk = tags[..EPHEMERAL_LEN].to_vec();
        for _ in 0..TAG_SLOTS - 1 {
            let mut s = vec![0u8; SLOT_LEN];
            s[0] = view;
            junk.extend_from_slice(&s);
        }
        junk.extend_from_slice(slots[mine]);
        assert_eq!(open(&sk, a, &c, &junk), None);
        // One junk match before it: still found.
        let mut one = tags[..EPHEMERAL_LEN].to_vec();
        let mut s = vec![0u8; SLOT_LEN];
        s[0] = view;
        one.extend_from_slice(&s);
        one.extend_from_slice(slots[mine]);
        one.resize(TAGS_LEN, 0);
        assert_eq!(open(&sk, a, &c, &one), Some(patient.address()));
    }

    /// Attack review finding 4: the slot held the patient's ECDSA signature of the membership,
    /// a proof a breached holder could show anyone. It now holds the patient's public key and
    /// an HMAC under ECDH(patient, holder's service key): the holder checks it, but computes the
    /// very same bytes from its own secret, so they prove nothing to anyone else; and they are
    /// no signature of the membership.
    #[test]
    fn the_slots_proof_is_one_the_holder_could_have_made() {
        use hmac::Mac;
        let (sk, pk, a) = service();
        let patient = PrivateKeySigner::random();
        let c = ctx();
        let real = proof(&patient, a, &pk, &c);
        // The holder's forgery, from its secret and the patient's public key only.
        let patient_pub = secp256k1::PublicKey::from_slice(&real[..33]).unwrap();
        let shared = secp256k1::ecdh::shared_secret_point(&patient_pub, &sk.0);
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&shared[..32]).unwrap();
        mac.update(&proof_message(a, &c));
        let mut forged = real[..33].to_vec();
        forged.extend_from_slice(&mac.finalize().into_bytes());
        assert_eq!(forged, real);
        assert_eq!(check_proof(&sk, a, &c, &real), Some(patient.address()));
        assert_ne!(
            crate::envelope::recover_prehash(&c.membership_hash(), &real),
            Some(patient.address())
        );
    }

    #[test]
    fn lengths_match_the_contract() {
        assert_eq!(SLOT_LEN, 82);
        assert_eq!(TAGS_LEN, 33 + 8 * 82);
    }

    #[test]
    fn each_holder_opens_its_own_slot_only() {
        let (a_sk, a_pk, a) = service();
        let (b_sk, b_pk, b) = service();
        let (c_sk, _, _) = service();
        let pa = PrivateKeySigner::random();
        let pb = PrivateKeySigner::random();
        let c = ctx();
        let tags = build(
            &c,
            &[
                HolderSlot {
                    holder: a,
                    service_key: a_pk.clone(),
                    proof: proof(&pa, a, &a_pk, &c),
                },
                HolderSlot {
                    holder: b,
                    service_key: b_pk.clone(),
                    proof: proof(&pb, b, &b_pk, &c),
                },
            ],
        )
        .unwrap();
        assert_eq!(tags.len(), TAGS_LEN);
        assert_eq!(open(&a_sk, a, &c, &tags), Some(pa.address()));
        assert_eq!(open(&b_sk, b, &c, &tags), Some(pb.address()));
        assert_eq!(open(&c_sk, a, &c, &tags), None);
        // Bound to the study and pseudonym: the same tags under another opt-in open to nothing.
        let other = OptInContext {
            pseudonym: Address::repeat_byte(0x66),
            ..c
        };
        assert_eq!(open(&a_sk, a, &other, &tags), None);
    }

    #[test]
    fn a_slot_without_the_patients_proof_for_this_pseudonym_does_not_open() {
        let (a_sk, a_pk, a) = service();
        let victim = PrivateKeySigner::random();
        let c = ctx();
        // The victim's public key with a made-up MAC, the victim's proof for another
        // pseudonym, and the victim's proof made for another holder: none opens to the victim.
        let mut forged = ServiceKey::from_bytes(&victim.to_bytes())
            .unwrap()
            .public_key();
        forged.resize(PROOF_LEN, 0);
        let elsewhere = proof(
            &victim,
            a,
            &a_pk,
            &OptInContext {
                pseudonym: Address::repeat_byte(0x77),
                ..c
            },
        );
        let other_holder = proof(&victim, Address::repeat_byte(0x99), &a_pk, &c);
        for p in [forged, elsewhere, other_holder] {
            let tags = build(
                &c,
                &[HolderSlot {
                    holder: a,
                    service_key: a_pk.clone(),
                    proof: p,
                }],
            )
            .unwrap();
            assert_ne!(open(&a_sk, a, &c, &tags), Some(victim.address()));
        }
    }

    /// Attack review finding 3: two holders registered with one service key (a hospital group,
    /// or a provider that registered another's key) got byte-identical slots, which told
    /// everyone reading the event that the patient has at least two holders. The holder and its
    /// key are now in the slot key's HKDF info: the slots differ, and each holder's opens only
    /// as that holder (checked to fail before: one identical pair).
    #[test]
    fn two_holders_sharing_a_service_key_get_unrelated_slots() {
        let (sk, pk, _) = service();
        let patient = PrivateKeySigner::random();
        let c = ctx();
        let (h1, h2) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xa2));
        let slot = |holder| HolderSlot {
            holder,
            service_key: pk.clone(),
            proof: proof(&patient, holder, &pk, &c),
        };
        let tags = build(&c, &[slot(h1), slot(h2)]).unwrap();
        let slots: Vec<&[u8]> = tags[EPHEMERAL_LEN..].chunks_exact(SLOT_LEN).collect();
        for i in 0..slots.len() {
            for j in i + 1..slots.len() {
                assert_ne!(slots[i], slots[j], "slots {i} and {j} are identical");
            }
        }
        assert_eq!(open(&sk, h1, &c, &tags), Some(patient.address()));
        assert_eq!(open(&sk, h2, &c, &tags), Some(patient.address()));
        let alone = build(&c, &[slot(h1)]).unwrap();
        assert_eq!(open(&sk, h2, &c, &alone), None);
    }

    #[test]
    fn no_more_holders_than_slots() {
        let (_, pk, a) = service();
        let h = HolderSlot {
            holder: a,
            service_key: pk,
            proof: vec![0; PROOF_LEN],
        };
        assert_eq!(
            build(&ctx(), &vec![h; TAG_SLOTS + 1]).unwrap_err(),
            TagError::TooManyHolders(TAG_SLOTS + 1)
        );
        assert_eq!(build(&ctx(), &[]).unwrap().len(), TAGS_LEN);
    }
}
