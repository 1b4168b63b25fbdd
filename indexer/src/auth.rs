//! Who may read what (issue 16). The per-patient routes answer the patient and the guardians
//! they named whose guardianship is live; a grantee's list answers the grantee; `/v1/access`
//! and `/v1/pointers/{id}` answer the parties named in the docs of [`crate::api`]. Everything
//! else (studies, the research policy, holders' log anchors, health, metrics) is public.
//!
//! A request proves its sender with a signed [`IndexerRequest`] in the header
//! [`INDEXER_AUTH_HEADER`], checked by the [`Requester`] extractor: one signature recovery and
//! one nonce insert per request, before any answer is read. No valid signature: 401
//! (`unauthenticated`); a valid one from someone not entitled: 403 (`denied`). Liveness (of a
//! guardianship, of a grant) is judged at the indexed head's block time, as the registries'
//! view functions would answer at that block.

use crate::api::{ApiError, ApiState};
use alloy::primitives::Address;
use alloy::sol_types::Eip712Domain;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use medrec_protocol::ErrorCode;
use medrec_protocol::Signed;
use medrec_protocol::clock::{self, SKEW_SECS};
use medrec_protocol::indexer_auth::{
    self, AuthRefusal, INDEXER_AUTH_HEADER, IndexerRequest, replay_key,
};
use sqlx::{PgPool, Postgres, Transaction};
use std::sync::atomic::{AtomicU64, Ordering};

/// How often expired nonces are pruned, in seconds.
const PRUNE_EVERY_SECS: u64 = 30;

/// The read API's request checking: the domain requests are signed under.
pub struct Auth {
    /// The EIP-712 domain of indexer requests for this deployment.
    pub domain: Eip712Domain,
    /// When expired nonces were last pruned (seconds since the epoch).
    last_prune: AtomicU64,
}

impl Auth {
    /// Request checking for the deployment whose consent registry is `consent` on chain
    /// `chain_id`.
    pub fn new(chain_id: u64, consent: Address) -> Self {
        Self {
            domain: indexer_auth::indexer_domain(chain_id, consent),
            last_prune: AtomicU64::new(0),
        }
    }

    /// Uses a request's nonce; false if it was used before.
    async fn use_nonce(
        &self,
        pool: &PgPool,
        r: &IndexerRequest,
        now: u64,
    ) -> Result<bool, ApiError> {
        let fresh = sqlx::query(
            "INSERT INTO api_request_nonces (key, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(replay_key(r).to_vec())
        .bind(r.expiresAt.min(i64::MAX as u64) as i64)
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        let last = self.last_prune.load(Ordering::Relaxed);
        if now >= last + PRUNE_EVERY_SECS
            && self
                .last_prune
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // Kept a skew past expiry: a request checked just before it expired and inserted
            // just after still finds its twin.
            sqlx::query("DELETE FROM api_request_nonces WHERE expires_at < $1")
                .bind(now.saturating_sub(SKEW_SECS) as i64)
                .execute(pool)
                .await?;
        }
        Ok(fresh)
    }
}

/// The address that signed the request (every check passed, its nonce now used).
#[derive(Debug, Clone, Copy)]
pub struct Requester(pub Address);

fn refused(why: AuthRefusal) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, why.to_string())
}

impl FromRequestParts<ApiState> for Requester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &ApiState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(INDEXER_AUTH_HEADER)
            .ok_or(refused(AuthRefusal::Missing))?;
        let signed: Signed<IndexerRequest> = header
            .to_str()
            .ok()
            .and_then(|t| serde_json::from_str(t).ok())
            .ok_or(refused(AuthRefusal::Malformed))?;
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        let now = clock::now_secs();
        let who = indexer_auth::verify(&signed, &s.auth.domain, parts.method.as_str(), target, now)
            .map_err(refused)?;
        if !s.auth.use_nonce(&s.pool, &signed.request, now).await? {
            return Err(refused(AuthRefusal::Replayed));
        }
        Ok(Self(who))
    }
}

/// The refusal of a signed request from someone not entitled: 403, saying who may ask.
pub fn not_yours(who_may: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Denied,
        format!("denied: only {who_may} may ask this"),
    )
}

/// The categories of `patient` that `who` may see at `ts`: all of them for the patient, the
/// scope of `who`'s live guardianships of theirs (their union), or `None`.
pub async fn scope_for(
    tx: &mut Transaction<'_, Postgres>,
    patient: Address,
    who: Address,
    ts: u64,
) -> Result<Option<u64>, ApiError> {
    if who == patient {
        return Ok(Some(u64::MAX));
    }
    let scope: Option<i64> = sqlx::query_scalar(
        "SELECT bit_or(scope) FROM guardians WHERE patient = $1 AND guardian = $2
                AND not_before <= $3 AND expires_at > $3",
    )
    .bind(patient.to_vec())
    .bind(who.to_vec())
    .bind(ts.min(i64::MAX as u64) as i64)
    .fetch_one(&mut **tx)
    .await?;
    Ok(scope.map(|s| s as u64).filter(|s| *s != 0))
}

/// Every category the registries name.
fn every_category() -> u64 {
    medrec_bindings::CATEGORIES
        .iter()
        .fold(0, |m, (_, bit)| m | 1u64 << bit)
}

/// Refuses unless `who` is `patient` or a live guardian of theirs at `ts`; the categories
/// `who` may see (a guardian's scope: what their answers are narrowed to).
pub async fn patient_or_guardian(
    tx: &mut Transaction<'_, Postgres>,
    patient: Address,
    who: Address,
    ts: u64,
) -> Result<u64, ApiError> {
    scope_for(tx, patient, who, ts)
        .await?
        .ok_or_else(|| not_yours("the patient or a guardian they named"))
}

/// Refuses unless `who` is `patient` or a live guardian of theirs at `ts` whose scope is every
/// category: for answers that belong to no single category (the timeline, studies), which a
/// guardian of some categories only does not get.
pub async fn patient_or_whole_guardian(
    tx: &mut Transaction<'_, Postgres>,
    patient: Address,
    who: Address,
    ts: u64,
) -> Result<(), ApiError> {
    let all = every_category();
    match scope_for(tx, patient, who, ts).await? {
        Some(scope) if scope & all == all => Ok(()),
        _ => Err(not_yours(
            "the patient or a guardian they named for every category",
        )),
    }
}
