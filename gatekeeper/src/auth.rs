//! Signed requests: who signed one (EIP-712 signature recovery with libsecp256k1), and the
//! checks every read, access-log request and research query passes, in this order: the
//! signature recovers the address the request names, the audience is this holder, the time
//! window, the nonce is new, and last the requester's rate (reads only), so that only a
//! request that passed everything else spends its requester's allowance. Uploads are checked
//! against the holder's own key.

use alloy::primitives::{Address, B256};
use alloy::sol_types::Eip712Domain;
use medrec_protocol::clock::{self, WindowError};
use medrec_protocol::{Signed, SignedRequest, Upload};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

/// Why a signed request is refused. The texts are what the access log records; the
/// requester only ever hears `denied` (or `rate_limited`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The signature is malformed or recovers no address.
    #[error("invalid signature")]
    InvalidSignature,
    /// The signature recovers another address (this one) than the request names.
    #[error("signer is not the requester")]
    WrongSigner(Address),
    /// The requester has used up their allowance for now.
    #[error("rate limited")]
    RateLimited,
    /// The request is addressed to another holder.
    #[error("addressed to another holder")]
    WrongAudience,
    /// The request's time window is refused.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// The nonce was used before.
    #[error("replayed nonce")]
    Replayed,
}

/// Why an upload is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    /// Not signed by this gatekeeper's holder, or for another holder.
    #[error("uploads must be signed by this gatekeeper's holder")]
    NotTheHolder,
    /// Signed too long ago, or in the future.
    #[error("the upload signature is not fresh")]
    NotFresh,
}

/// Checks signed requests addressed to one holder, and remembers their nonces.
pub struct Verifier {
    /// The EIP-712 domain requests are signed under.
    pub domain: Eip712Domain,
    /// The holder requests must be addressed to.
    pub holder: Address,
    nonces: Mutex<Nonces>,
}

impl Verifier {
    /// A verifier that already knows `nonces` (requester, nonce, expiry) of live requests.
    pub fn new(
        domain: Eip712Domain,
        holder: Address,
        nonces: impl IntoIterator<Item = ((Address, B256), u64)>,
    ) -> Self {
        Self {
            domain,
            holder,
            nonces: Mutex::new(Nonces {
                seen: nonces.into_iter().collect(),
                sweep_at: NONCE_SWEEP_MIN,
            }),
        }
    }

    /// Runs every check of a signed request; `rate` is charged last, only for a request that
    /// passed all the others: a captured request replayed, expired or meant for another
    /// holder must not spend its requester's allowance (else anyone holding one signature
    /// could lock the requester out).
    pub fn verify<T: SignedRequest>(
        &self,
        signed: &Signed<T>,
        rate: Option<&RateLimiter>,
    ) -> Result<(), Refusal> {
        let r = &signed.request;
        match recover(r, &self.domain, &signed.signature) {
            Some(signer) if signer == r.signer() => {}
            Some(signer) => return Err(Refusal::WrongSigner(signer)),
            None => return Err(Refusal::InvalidSignature),
        }
        if r.audience() != self.holder {
            return Err(Refusal::WrongAudience);
        }
        clock::check_window(r.issued_at(), r.expires_at(), clock::now_secs())?;
        if !self.use_nonce(r.signer(), r.nonce_word(), r.expires_at()) {
            return Err(Refusal::Replayed);
        }
        if let Some(rate) = rate
            && !rate.take(r.signer())
        {
            return Err(Refusal::RateLimited);
        }
        Ok(())
    }

    /// The address that signed `signed`, if its signature recovers one (checks nothing else).
    pub fn signer_of<T: SignedRequest>(&self, signed: &Signed<T>) -> Option<Address> {
        recover(&signed.request, &self.domain, &signed.signature)
    }

    /// Checks that an upload is the holder's own and fresh (its nonce is kept in the
    /// database, for good, by the caller).
    pub fn verify_upload(&self, upload: &Upload, signature: &str) -> Result<(), UploadRefusal> {
        if recover(upload, &self.domain, signature) != Some(self.holder)
            || upload.holder != self.holder
        {
            return Err(UploadRefusal::NotTheHolder);
        }
        if !clock::upload_is_fresh(upload.issuedAt, clock::now_secs()) {
            return Err(UploadRefusal::NotFresh);
        }
        Ok(())
    }

    /// Remembers a nonce until its request expires; false if it was seen.
    fn use_nonce(&self, who: Address, nonce: B256, expires_at: u64) -> bool {
        let Ok(mut n) = self.nonces.lock() else {
            return false;
        };
        n.use_nonce(who, nonce, expires_at, clock::now_secs())
    }
}

/// Below this many remembered nonces, expired ones are never swept.
const NONCE_SWEEP_MIN: usize = 100_000;

/// The nonces seen, each until its request expires. Expired ones are swept when the map has
/// grown to twice its size after the last sweep, so a sweep costs O(1) per request amortized
/// however many requests are live.
struct Nonces {
    seen: HashMap<(Address, B256), u64>,
    sweep_at: usize,
}

impl Nonces {
    /// Remembers a nonce until `expires_at`; false if it was seen.
    fn use_nonce(&mut self, who: Address, nonce: B256, expires_at: u64, now: u64) -> bool {
        // An expired request is refused here too: a sweep may already have forgotten it.
        if expires_at <= now {
            return false;
        }
        if self.seen.len() >= self.sweep_at {
            self.seen.retain(|_, e| *e > now);
            self.sweep_at = (self.seen.len() * 2).max(NONCE_SWEEP_MIN);
        }
        if self.seen.contains_key(&(who, nonce)) {
            return false;
        }
        self.seen.insert((who, nonce), expires_at);
        true
    }
}

/// Reads per requester: `burst` at once, `rate_per_sec` sustained (governor's keyed GCRA,
/// which behaves as a token bucket per requester).
pub struct RateLimiter(governor::DefaultKeyedRateLimiter<Address>);

impl RateLimiter {
    /// A limiter allowing `burst` requests at once (its whole part, as a bucket of that size
    /// holds) and `rate_per_sec` sustained, per requester; `None` unless the rate is above zero
    /// and the burst at least 1. Rates above 10^9/s are one request per nanosecond.
    pub fn new(rate_per_sec: f64, burst: f64) -> Option<Self> {
        if rate_per_sec.is_nan() || rate_per_sec <= 0.0 {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / rate_per_sec)
            .ok()?
            .max(Duration::from_nanos(1));
        let burst = burst.floor();
        if burst.is_nan() || burst < 1.0 {
            return None;
        }
        let burst = NonZeroU32::new(burst.min(u32::MAX as f64) as u32)?;
        let quota = governor::Quota::with_period(period)?.allow_burst(burst);
        Some(Self(governor::RateLimiter::keyed(quota)))
    }

    /// Takes one request of `who`'s allowance; false when it is used up.
    pub fn take(&self, who: Address) -> bool {
        self.0.check_key(&who).is_ok()
    }
}

/// Signature recovery lives in the protocol crate, one copy for every server.
pub use medrec_protocol::envelope::{recover, recover_prehash};

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Signature, keccak256};
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    #[test]
    fn nonces_refuse_replays_and_sweeps_stay_rare_with_many_live_requests() {
        let mut n = Nonces {
            seen: HashMap::new(),
            sweep_at: NONCE_SWEEP_MIN,
        };
        let who = Address::repeat_byte(1);
        let nonce = |i: u64| B256::from(alloy::primitives::U256::from(i));
        // Requests that expire at 1,000, then live ones: the first sweep (at the minimum)
        // drops only the expired ones.
        for i in 0..NONCE_SWEEP_MIN as u64 / 2 {
            assert!(n.use_nonce(who, nonce(i), 1_000, 500));
        }
        assert!(
            !n.use_nonce(who, nonce(7), 1_000, 500),
            "a replay is refused"
        );
        for i in NONCE_SWEEP_MIN as u64 / 2..NONCE_SWEEP_MIN as u64 {
            assert!(n.use_nonce(who, nonce(i), 5_000, 2_000));
        }
        assert!(n.use_nonce(who, nonce(u64::MAX), 5_000, 2_000));
        assert_eq!(n.seen.len(), NONCE_SWEEP_MIN / 2 + 1);
        assert_eq!(n.sweep_at, NONCE_SWEEP_MIN);
        // Many live requests: the map grows to twice its size between sweeps, no sweep per
        // request.
        for i in NONCE_SWEEP_MIN as u64..3 * NONCE_SWEEP_MIN as u64 {
            assert!(n.use_nonce(who, nonce(i), 5_000, 2_000));
        }
        assert!(n.sweep_at > n.seen.len(), "{} {}", n.sweep_at, n.seen.len());
        assert!(!n.use_nonce(who, nonce(NONCE_SWEEP_MIN as u64 + 3), 5_000, 2_000));
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_per_requester_and_refuses_bad_settings() {
        let rate = RateLimiter::new(0.5, 2.0).unwrap();
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        assert!(rate.take(a));
        assert!(rate.take(a));
        assert!(!rate.take(a), "the burst is used up");
        assert!(rate.take(b), "another requester has its own allowance");
        // A burst's whole part is what a bucket of that size allows at once.
        let rate = RateLimiter::new(0.001, 1.5).unwrap();
        assert!(rate.take(a));
        assert!(!rate.take(a), "a burst of 1.5 allows one read at once");
        assert!(
            RateLimiter::new(3e9, 1.0).is_some(),
            "a very high rate is accepted"
        );
        assert!(RateLimiter::new(f64::INFINITY, 1.0).is_some());
        for (r, burst) in [
            (0.0, 2.0),
            (-1.0, 2.0),
            (f64::NAN, 2.0),
            (1.0, 0.0),
            (1.0, 0.4),
            (1.0, 0.6),
            (1.0, f64::NAN),
        ] {
            assert!(RateLimiter::new(r, burst).is_none(), "{r} {burst}");
        }
    }

    #[test]
    fn recovery_agrees_with_alloy_and_refuses_malformed_signatures() {
        for i in 0..64u64 {
            let signer = PrivateKeySigner::random();
            let hash = keccak256(i.to_be_bytes());
            let sig = signer.sign_hash_sync(&hash).unwrap();
            let mut raw = sig.as_bytes().to_vec(); // v is 27 or 28
            assert_eq!(recover_prehash(&hash, &raw), Some(signer.address()));
            raw[64] -= 27; // v as 0 or 1
            assert_eq!(recover_prehash(&hash, &raw), Some(signer.address()));
            // Another message recovers another key, exactly as alloy does.
            let other = keccak256(hash);
            assert_eq!(
                recover_prehash(&other, &raw),
                Signature::from_raw(&raw)
                    .unwrap()
                    .recover_address_from_prehash(&other)
                    .ok()
            );
            let mut bad_v = raw.clone();
            bad_v[64] = 2;
            assert_eq!(recover_prehash(&hash, &bad_v), None);
            assert_eq!(recover_prehash(&hash, &raw[..64]), None);
            let mut long = raw.clone();
            long.push(0);
            assert_eq!(recover_prehash(&hash, &long), None);
        }
        // r = 0 is no signature.
        let mut zero = [0u8; 65];
        zero[64] = 27;
        assert_eq!(recover_prehash(&B256::ZERO, &zero), None);
        assert_eq!(recover_prehash(&B256::ZERO, &[]), None);
    }
}

#[cfg(test)]
mod verifier_tests {
    use super::*;
    use alloy::primitives::U256;
    use alloy::signers::local::PrivateKeySigner;
    use medrec_protocol::RecordRequest;
    use medrec_protocol::clock::{MAX_VALIDITY_SECS, SKEW_SECS, now_secs};

    const HOLDER: Address = Address::repeat_byte(0x42);

    fn verifier() -> Verifier {
        let domain = medrec_bindings::gatekeeper_domain(31337, Address::repeat_byte(9));
        Verifier::new(domain, HOLDER, [])
    }

    fn request(who: &PrivateKeySigner, nonce: u64, issued: u64, expires: u64) -> RecordRequest {
        RecordRequest {
            requester: who.address(),
            recordId: B256::repeat_byte(1),
            audience: HOLDER,
            nonce: U256::from(nonce),
            issuedAt: issued,
            expiresAt: expires,
        }
    }

    async fn signed(
        v: &Verifier,
        by: &PrivateKeySigner,
        r: RecordRequest,
    ) -> Signed<RecordRequest> {
        Signed::sign(r, by, &v.domain).await.unwrap()
    }

    #[tokio::test]
    async fn every_check_refuses_for_its_own_reason() {
        let v = verifier();
        let (me, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let now = now_secs();
        let ok = signed(&v, &me, request(&me, 1, now, now + 60)).await;
        assert_eq!(v.verify(&ok, None), Ok(()));
        assert_eq!(v.verify(&ok, None), Err(Refusal::Replayed));

        let mut bad = signed(&v, &me, request(&me, 2, now, now + 60)).await;
        bad.signature = "0x1234".into();
        assert_eq!(v.verify(&bad, None), Err(Refusal::InvalidSignature));
        let forged = signed(&v, &other, request(&me, 3, now, now + 60)).await;
        assert_eq!(
            v.verify(&forged, None),
            Err(Refusal::WrongSigner(other.address()))
        );
        let mut elsewhere = request(&me, 4, now, now + 60);
        elsewhere.audience = Address::repeat_byte(0x43);
        let elsewhere = signed(&v, &me, elsewhere).await;
        assert_eq!(v.verify(&elsewhere, None), Err(Refusal::WrongAudience));
        for (nonce, issued, expires, why) in [
            (
                5,
                now + SKEW_SECS + 5,
                now + 90,
                WindowError::IssuedInFuture,
            ),
            (6, now - 120, now - 60, WindowError::Expired),
            (7, now, now + MAX_VALIDITY_SECS + 1, WindowError::BadWindow),
        ] {
            let late = signed(&v, &me, request(&me, nonce, issued, expires)).await;
            assert_eq!(v.verify(&late, None), Err(Refusal::Window(why)));
        }
        assert_eq!(
            Refusal::WrongAudience.to_string(),
            "addressed to another holder"
        );
        assert_eq!(Refusal::Window(WindowError::Expired).to_string(), "expired");
    }

    #[tokio::test]
    async fn the_rate_is_charged_only_for_requests_that_pass_every_other_check() {
        let v = verifier();
        let rate = RateLimiter::new(0.001, 2.0).unwrap();
        let me = PrivateKeySigner::random();
        let now = now_secs();
        let first = signed(&v, &me, request(&me, 1, now, now + 60)).await;
        assert_eq!(v.verify(&first, Some(&rate)), Ok(()));
        // Replayed, expired or addressed elsewhere: refused for that, and free.
        let expired = signed(&v, &me, request(&me, 8, now - 120, now - 60)).await;
        let mut elsewhere = request(&me, 9, now, now + 60);
        elsewhere.audience = Address::repeat_byte(0x43);
        let elsewhere = signed(&v, &me, elsewhere).await;
        for _ in 0..5 {
            assert_eq!(v.verify(&first, Some(&rate)), Err(Refusal::Replayed));
            assert!(matches!(
                v.verify(&expired, Some(&rate)),
                Err(Refusal::Window(_))
            ));
            assert_eq!(
                v.verify(&elsewhere, Some(&rate)),
                Err(Refusal::WrongAudience)
            );
        }
        let second = signed(&v, &me, request(&me, 2, now, now + 60)).await;
        assert_eq!(v.verify(&second, Some(&rate)), Ok(()), "the burst is 2");
        let third = signed(&v, &me, request(&me, 10, now, now + 60)).await;
        assert_eq!(v.verify(&third, Some(&rate)), Err(Refusal::RateLimited));
        // A request refused for the rate has spent its nonce: the requester signs a new one.
        assert_eq!(v.verify(&third, None), Err(Refusal::Replayed));
        // A forged request does not use up the requester's allowance.
        let rate = RateLimiter::new(0.001, 1.0).unwrap();
        let forger = PrivateKeySigner::random();
        let forged = signed(&v, &forger, request(&me, 3, now, now + 60)).await;
        assert_eq!(
            v.verify(&forged, Some(&rate)),
            Err(Refusal::WrongSigner(forger.address()))
        );
        let mine = signed(&v, &me, request(&me, 4, now, now + 60)).await;
        assert_eq!(v.verify(&mine, Some(&rate)), Ok(()));
    }

    #[tokio::test]
    async fn uploads_must_be_the_holders_own_and_fresh() {
        let holder = PrivateKeySigner::random();
        let domain = medrec_bindings::gatekeeper_domain(31337, Address::repeat_byte(9));
        let v = Verifier::new(domain.clone(), holder.address(), []);
        let upload = |by: Address, issued: u64| Upload {
            holder: by,
            patient: Address::repeat_byte(5),
            category: 3,
            contentHash: B256::repeat_byte(6),
            nonce: U256::from(1),
            issuedAt: issued,
        };
        let sign = |u: &Upload, s: &PrivateKeySigner| {
            let s = s.clone();
            let (u, d) = (u.clone(), domain.clone());
            async move {
                medrec_protocol::envelope::sign_hex(&s, &u, &d)
                    .await
                    .unwrap()
            }
        };
        let now = now_secs();
        let mine = upload(holder.address(), now);
        assert_eq!(v.verify_upload(&mine, &sign(&mine, &holder).await), Ok(()));
        let other = PrivateKeySigner::random();
        assert_eq!(
            v.verify_upload(&mine, &sign(&mine, &other).await),
            Err(UploadRefusal::NotTheHolder)
        );
        let theirs = upload(other.address(), now);
        assert_eq!(
            v.verify_upload(&theirs, &sign(&theirs, &holder).await),
            Err(UploadRefusal::NotTheHolder)
        );
        let stale = upload(holder.address(), now - MAX_VALIDITY_SECS - 10);
        assert_eq!(
            v.verify_upload(&stale, &sign(&stale, &holder).await),
            Err(UploadRefusal::NotFresh)
        );
    }
}
