//! Research aggregates, computed where the records are: a researcher's signed query is
//! checked against the chain (credential, approved study, budget left), evaluated over the
//! coded facts of the patients whose opt-in was live at the block the query pins, small cells
//! suppressed, noise added when asked, and the answer signed and stored.
//!
//! The query's receipt (cost, pinned block, answer hash) is recorded on chain by the
//! researcher in one transaction after the holders answer. Until a receipt that pays for it
//! (at least its cost, the same pinned block) is there, this holder answers no other query of
//! the study, so at most one of its answers is ever unpaid; the same query asked again gets
//! the stored answer back, never a fresh draw of noise. A receipt that underpays an answer
//! cannot be rewritten, so that holder then answers nothing more of the study.

use crate::server::{Gatekeeper, check_window, err, recover};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use medrec_bindings::eip712::ResearchRequest;
use medrec_bindings::{ParticipantRegistry, StudyRegistry};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What the research endpoint needs besides the gatekeeper.
pub struct Research {
    /// The participant registry (researcher credentials).
    pub participants: ParticipantRegistry::ParticipantRegistryInstance<DynProvider>,
    /// The study registry.
    pub studies: StudyRegistry::StudyRegistryInstance<DynProvider>,
    /// Where the study registry's logs are read from.
    pub provider: DynProvider,
    /// The holder's key, which signs answers.
    pub signer: PrivateKeySigner,
    /// Opt-ins and withdrawals read so far.
    pub opt_ins: OptIns,
    /// How many blocks old a new query's pinned block may be.
    pub max_pin_age: u64,
}

/// Code systems the vocabulary accepts.
pub const SNOMED: &str = "http://snomed.info/sct";
/// ICD-10.
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
/// ICD-10-CM (the US clinical modification, as US Core records use).
pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";

/// A query of the fixed vocabulary.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Query {
    /// Patients with a Condition code, by age band and sex.
    ConditionCount {
        /// SNOMED CT or ICD-10 system URI.
        system: String,
        /// The code.
        code: String,
        /// Differential-privacy epsilon: Laplace noise on counts when given.
        epsilon: Option<f64>,
        /// The block the query pins (so that asking again later is another query).
        #[serde(rename = "pinnedBlock")]
        pinned_block: u64,
    },
    /// Count, mean and quartiles of an Observation's value.
    ObservationStats {
        /// LOINC system URI.
        system: String,
        /// The code.
        code: String,
        /// Differential-privacy epsilon (noise on the count).
        epsilon: Option<f64>,
        /// The block the query pins.
        #[serde(rename = "pinnedBlock")]
        pinned_block: u64,
    },
}

impl Query {
    /// Parses and checks a query; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let q: Query = serde_json::from_str(text).map_err(|e| format!("malformed query: {e}"))?;
        let (system, code, eps) = match &q {
            Query::ConditionCount {
                system,
                code,
                epsilon,
                ..
            } => {
                if ![SNOMED, ICD10, ICD10CM].contains(&system.as_str()) {
                    return Err(format!(
                        "unknown code system {system:?} for a condition (use {SNOMED}, {ICD10} or {ICD10CM})"
                    ));
                }
                (system, code, epsilon)
            }
            Query::ObservationStats {
                system,
                code,
                epsilon,
                ..
            } => {
                if system != LOINC {
                    return Err(format!(
                        "unknown code system {system:?} for an observation (use {LOINC})"
                    ));
                }
                (system, code, epsilon)
            }
        };
        let _ = system;
        if code.is_empty()
            || code.len() > 32
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!("malformed code {code:?}"));
        }
        if let Some(e) = eps
            && !(e.is_finite() && *e > 0.0 && *e <= 10.0)
        {
            return Err("epsilon must be in (0, 10]".into());
        }
        Ok(q)
    }

    /// The block the query pins.
    pub fn pinned_block(&self) -> u64 {
        match self {
            Query::ConditionCount { pinned_block, .. }
            | Query::ObservationStats { pinned_block, .. } => *pinned_block,
        }
    }

    /// The budget a query spends: epsilon in millionths, at least 1.
    pub fn cost(&self) -> u64 {
        let eps = match self {
            Query::ConditionCount { epsilon, .. } | Query::ObservationStats { epsilon, .. } => {
                *epsilon
            }
        };
        eps.map(|e| (e * 1e6).ceil() as u64).unwrap_or(1).max(1)
    }
}

#[derive(Deserialize)]
struct SignedResearch {
    request: ResearchRequest,
    query: String,
    signature: String,
}

/// One opt-in or withdrawal: (block, log index, patient, opted in).
type Change = (u64, u64, Address, bool);

/// The study registry's opt-ins and withdrawals, read once from its logs and then followed
/// block by block: a query folds the changes up to the block it pins instead of reading
/// every opt-in of the study from the chain again.
#[derive(Default)]
pub struct OptIns {
    state: tokio::sync::Mutex<OptInState>,
}

#[derive(Default)]
struct OptInState {
    /// The last block read (inclusive) and its hash.
    read_to: Option<(u64, B256)>,
    /// Per study, its changes in chain order.
    changes: HashMap<U256, Vec<Change>>,
}

/// Blocks per eth_getLogs call when catching up.
const LOG_RANGE: u64 = 50_000;

async fn block_hash(p: &DynProvider, n: u64) -> Result<B256, String> {
    match p.get_block_by_number(n.into()).await {
        Ok(Some(b)) => Ok(b.header.hash),
        Ok(None) => Err(format!("block {n} is not on the chain yet")),
        Err(e) => Err(format!("chain: {e}")),
    }
}

impl OptIns {
    /// Reads the registry's changes up to block `to` (and checks that what was read before is
    /// still on the canonical chain: after a reorg everything is read again).
    async fn catch_up(&self, r: &Research, to: u64) -> Result<(), String> {
        let mut st = self.state.lock().await;
        if let Some((n, h)) = st.read_to
            && block_hash(&r.provider, n).await? != h
        {
            tracing::warn!(target: "medrec::gatekeeper", block = n, "reorg: reading opt-ins again");
            *st = OptInState::default();
        }
        let mut from = st.read_to.map_or(0, |(n, _)| n + 1);
        while from <= to {
            let end = to.min(from + LOG_RANGE - 1);
            let before = block_hash(&r.provider, end).await?;
            let filter = Filter::new()
                .address(*r.studies.address())
                .event_signature(vec![
                    StudyRegistry::OptedIn::SIGNATURE_HASH,
                    StudyRegistry::Withdrew::SIGNATURE_HASH,
                ])
                .from_block(from)
                .to_block(end);
            let mut logs = r
                .provider
                .get_logs(&filter)
                .await
                .map_err(|e| format!("chain: {e}"))?;
            if block_hash(&r.provider, end).await? != before {
                continue; // the chain moved under the read: read the range again
            }
            logs.sort_by_key(|l| (l.block_number, l.log_index));
            for l in logs {
                let (Some(study), Some(patient), Some(block), Some(index)) = (
                    l.topics().get(1),
                    l.topics().get(2),
                    l.block_number,
                    l.log_index,
                ) else {
                    continue;
                };
                let opted_in = l.topic0() == Some(&StudyRegistry::OptedIn::SIGNATURE_HASH);
                st.changes
                    .entry(U256::from_be_bytes(study.0))
                    .or_default()
                    .push((block, index, Address::from_word(*patient), opted_in));
            }
            st.read_to = Some((end, before));
            from = end + 1;
        }
        Ok(())
    }

    /// The patients opted in to `study` at the end of block `at`.
    pub async fn consenting(
        &self,
        r: &Research,
        study: U256,
        at: u64,
    ) -> Result<HashSet<Address>, String> {
        self.catch_up(r, at).await?;
        let st = self.state.lock().await;
        let mut set: HashSet<Address> = HashSet::new();
        for &(block, _, patient, opted_in) in st.changes.get(&study).into_iter().flatten() {
            if block > at {
                break;
            }
            if opted_in {
                set.insert(patient);
            } else {
                set.remove(&patient);
            }
        }
        Ok(set)
    }
}

/// `percentile_cont`: the value at fraction `p` of sorted `v`, interpolated between neighbours.
fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let last = v.len().checked_sub(1)?;
    let pos = p * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (pos - lo as f64) * (v[hi] - v[lo]))
}

/// Follows the registry's opt-ins as blocks arrive, so that queries find them read already.
pub async fn follow_opt_ins(gk: Arc<Gatekeeper>, every: std::time::Duration) {
    loop {
        if let Some(r) = gk.research.get() {
            let head = r.provider.get_block_number().await;
            match head {
                Ok(head) => {
                    if let Err(e) = r.opt_ins.catch_up(r, head).await {
                        tracing::warn!(target: "medrec::gatekeeper", error = %e, "reading opt-ins");
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, "reading the head")
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

fn laplace(scale: f64) -> f64 {
    let u: f64 = rand::thread_rng().gen_range(-0.5..0.5);
    -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

fn noisy(count: i64, epsilon: Option<f64>) -> i64 {
    match epsilon {
        Some(e) => (count as f64 + laplace(1.0 / e)).round().max(0.0) as i64,
        None => count,
    }
}

/// `POST /v1/research/query`.
pub async fn query(State(gk): State<Arc<Gatekeeper>>, req: Request) -> Response {
    let Some(research) = gk.research.get() else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_research",
            "this gatekeeper has no holder key to sign answers",
        );
    };
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), 64 << 10).await else {
        return err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body too large",
        );
    };
    let Ok(signed) = serde_json::from_slice::<SignedResearch>(&bytes) else {
        return err(
            StatusCode::BAD_REQUEST,
            "malformed",
            "expected {\"request\", \"query\", \"signature\"}",
        );
    };
    let r = &signed.request;
    if recover(r, &gk.domain, &signed.signature) != Some(r.researcher)
        || r.audience != gk.holder
        || check_window(r.issuedAt, r.expiresAt).is_err()
        || !gk.use_nonce(
            r.researcher,
            B256::from(r.nonce.to_be_bytes::<32>()),
            r.expiresAt,
        )
        || keccak256(signed.query.as_bytes()) != r.queryHash
    {
        return err(StatusCode::FORBIDDEN, "denied", "request denied");
    }
    let query = match Query::parse(&signed.query) {
        Ok(q) => q,
        Err(msg) => return err(StatusCode::BAD_REQUEST, "bad_query", &msg),
    };
    let study_key = r.studyId.to_string();
    // Asked before: the stored answer, whatever the chain says now (it was given already).
    match stored_answer(&gk.pool, &study_key, r.queryHash, r.researcher).await {
        Ok(Some(found)) => return Json(found).into_response(),
        Ok(None) => {}
        Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, "database", &e.to_string()),
    }
    // The chain: a live researcher, an approved study of theirs, budget left for this query
    // (or its receipt already there), a recent pinned block.
    let started = std::time::Instant::now();
    let chain = async {
        tokio::try_join!(
            async {
                research
                    .participants
                    .isCredentialed(r.researcher, 2)
                    .call()
                    .await
                    .map_err(|e| e.to_string())
            },
            async {
                research
                    .studies
                    .studyOf(r.studyId)
                    .call()
                    .await
                    .map_err(|e| e.to_string())
            },
            async {
                research
                    .studies
                    .queryOf(r.studyId, r.queryHash)
                    .call()
                    .await
                    .map_err(|e| e.to_string())
            },
            async {
                research
                    .provider
                    .get_block_number()
                    .await
                    .map_err(|e| e.to_string())
            },
        )
    };
    let (credentialed, study, receipt, latest) = match chain.await {
        Ok(v) => v,
        Err(e) => {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain",
                &format!("chain unavailable: {e}"),
            );
        }
    };
    if !credentialed || study.researcher != r.researcher || study.status != 2 {
        return err(StatusCode::FORBIDDEN, "denied", "request denied");
    }
    // A query this holder has not answered: its pinned block must be recent (an old pin
    // would count patients who withdrew since), even when a receipt for it is already on
    // chain, and no earlier answer of this holder may still lack its receipt.
    let pinned = query.pinned_block();
    if pinned > latest || latest - pinned > research.max_pin_age {
        return err(
            StatusCode::CONFLICT,
            "pinned_block",
            &format!(
                "the query pins block {pinned}; this holder answers new queries pinned \
                 within the last {} blocks (latest {latest})",
                research.max_pin_age
            ),
        );
    }
    if let Err(resp) = check_unrecorded(&gk.pool, research, r.studyId, &study_key).await {
        return resp;
    }
    let recorded = receipt.cost != 0;
    if recorded {
        // Its receipt is on chain already (this holder was not asked before): only the query
        // that receipt paid for.
        if receipt.pinnedBlock != pinned || receipt.cost < query.cost() {
            return err(StatusCode::FORBIDDEN, "denied", "request denied");
        }
    } else if query.cost() > study.budget.saturating_sub(study.spent) {
        return err(
            StatusCode::FORBIDDEN,
            "budget_exhausted",
            &format!(
                "the study's privacy budget cannot pay this query (spent {} of {}, the query \
                 costs {})",
                study.spent,
                study.budget,
                query.cost()
            ),
        );
    }
    let chain_ms = started.elapsed().as_secs_f64() * 1e3;
    let patients = match research
        .opt_ins
        .consenting(research, r.studyId, pinned)
        .await
    {
        Ok(p) => p,
        Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, "chain", &e),
    };
    let consent_ms = started.elapsed().as_secs_f64() * 1e3 - chain_ms;
    let ts = match research.provider.get_block_by_number(pinned.into()).await {
        Ok(Some(b)) => b.header.timestamp as i64,
        _ => {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain",
                "cannot read the pinned block",
            );
        }
    };
    let min = i64::from(study.minCellSize);
    let db_started = std::time::Instant::now();
    // The facts with the asked code come from the database; only the consenting patients'
    // are kept (the set is the chain's, at the pinned block).
    let result = match &query {
        Query::ConditionCount {
            system,
            code,
            epsilon,
            ..
        } => {
            let rows = sqlx::query(
                "SELECT DISTINCT f.patient,
                        CASE WHEN p.birth_date IS NULL THEN 'unknown'
                             WHEN date_part('year', age(to_timestamp($3)::date, p.birth_date)) < 18 THEN '0-17'
                             WHEN date_part('year', age(to_timestamp($3)::date, p.birth_date)) < 40 THEN '18-39'
                             WHEN date_part('year', age(to_timestamp($3)::date, p.birth_date)) < 65 THEN '40-64'
                             ELSE '65+' END AS band,
                        COALESCE(p.gender, 'unknown') AS sex
                 FROM gk_facts f LEFT JOIN gk_patients p ON p.patient = f.patient
                 WHERE f.kind = 'condition' AND f.system = $1 AND f.code = $2",
            )
            .bind(system)
            .bind(code)
            .bind(ts as f64)
            .fetch_all(&gk.pool)
            .await;
            let rows = match rows {
                Ok(r) => r,
                Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, "database", &e.to_string()),
            };
            let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
            for row in &rows {
                let who: Vec<u8> = row.get("patient");
                if who.len() == 20 && patients.contains(&Address::from_slice(&who)) {
                    *counts.entry((row.get("band"), row.get("sex"))).or_default() += 1;
                }
            }
            let cells: Vec<Value> = counts
                .into_iter()
                .map(|((band, sex), n)| {
                    let n = noisy(n, *epsilon);
                    if n < min {
                        json!({"ageBand": band, "sex": sex, "suppressed": true})
                    } else {
                        json!({"ageBand": band, "sex": sex, "count": n})
                    }
                })
                .collect();
            json!({"cells": cells})
        }
        Query::ObservationStats {
            system,
            code,
            epsilon,
            ..
        } => {
            let rows = sqlx::query(
                "SELECT patient, value FROM gk_facts
                 WHERE kind = 'observation' AND system = $1 AND code = $2 AND value IS NOT NULL",
            )
            .bind(system)
            .bind(code)
            .fetch_all(&gk.pool)
            .await;
            let rows = match rows {
                Ok(r) => r,
                Err(e) => return err(StatusCode::SERVICE_UNAVAILABLE, "database", &e.to_string()),
            };
            let mut values: Vec<f64> = rows
                .iter()
                .filter(|row| {
                    let who: Vec<u8> = row.get("patient");
                    who.len() == 20 && patients.contains(&Address::from_slice(&who))
                })
                .map(|row| row.get::<f64, _>("value"))
                .collect();
            values.sort_by(f64::total_cmp);
            let n = noisy(values.len() as i64, *epsilon);
            if n < min {
                json!({"suppressed": true})
            } else {
                let mean =
                    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
                json!({"count": n, "mean": mean, "q1": percentile(&values, 0.25),
                       "median": percentile(&values, 0.5), "q3": percentile(&values, 0.75)})
            }
        }
    };
    let db_ms = db_started.elapsed().as_secs_f64() * 1e3;
    tracing::info!(target: "medrec::gatekeeper", study = %r.studyId, pinned, patients = patients.len(),
        chain_ms, consent_ms, db_ms, total_ms = started.elapsed().as_secs_f64() * 1e3,
        "research query answered");
    let answer = json!({
        "holder": gk.holder, "studyId": r.studyId, "queryHash": r.queryHash, "pinnedBlock": pinned,
        "minCellSize": min, "result": result,
    });
    let text = answer.to_string();
    let signature = match research.signer.sign_hash(&keccak256(text.as_bytes())).await {
        Ok(s) => format!("0x{}", alloy::hex::encode(s.as_bytes())),
        Err(_) => {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "cannot sign the answer",
            );
        }
    };
    // Stored before it is sent: at most one answer per study without a receipt (a unique
    // index), and the same query always gets this same answer.
    let stored = sqlx::query(
        "INSERT INTO gk_research_answers
             (study_id, query_hash, researcher, cost, pinned_block, answer, signature, recorded)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (study_id, query_hash) DO NOTHING",
    )
    .bind(&study_key)
    .bind(r.queryHash.as_slice())
    .bind(r.researcher.as_slice())
    .bind(query.cost() as i64)
    .bind(pinned as i64)
    .bind(&text)
    .bind(&signature)
    .bind(recorded)
    .execute(&gk.pool)
    .await;
    match stored {
        Ok(done) if done.rows_affected() == 1 => {
            Json(json!({"answer": text, "signature": signature})).into_response()
        }
        Ok(_) => {
            // The same query, answered at the same moment: the answer stored first counts.
            match stored_answer(&gk.pool, &study_key, r.queryHash, r.researcher).await {
                Ok(Some(found)) => Json(found).into_response(),
                Ok(None) => err(StatusCode::FORBIDDEN, "denied", "request denied"),
                Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, "database", &e.to_string()),
            }
        }
        Err(sqlx::Error::Database(e))
            if e.constraint() == Some("gk_research_answers_unrecorded") =>
        {
            err(
                StatusCode::CONFLICT,
                "unrecorded_answer",
                "another query of this study was answered here at the same moment; ask again \
                 once its receipt is on chain",
            )
        }
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, "database", &e.to_string()),
    }
}

/// The answer this holder stored for a query of the researcher's, as sent the first time.
async fn stored_answer(
    pool: &sqlx::PgPool,
    study: &str,
    query_hash: B256,
    researcher: Address,
) -> Result<Option<Value>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT answer, signature FROM gk_research_answers
         WHERE study_id = $1 AND query_hash = $2 AND researcher = $3",
    )
    .bind(study)
    .bind(query_hash.as_slice())
    .bind(researcher.as_slice())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
        json!({"answer": row.get::<String, _>("answer"),
               "signature": row.get::<String, _>("signature")})
    }))
}

/// Refuses a new query of the study while an answer this holder gave has no receipt on chain;
/// an answer whose receipt has since appeared is marked as recorded.
async fn check_unrecorded(
    pool: &sqlx::PgPool,
    research: &Research,
    study_id: U256,
    study: &str,
) -> Result<(), Response> {
    let db = |e: sqlx::Error| err(StatusCode::SERVICE_UNAVAILABLE, "database", &e.to_string());
    let pending = sqlx::query(
        "SELECT query_hash, pinned_block, cost FROM gk_research_answers
         WHERE study_id = $1 AND NOT recorded",
    )
    .bind(study)
    .fetch_all(pool)
    .await
    .map_err(db)?;
    for row in pending {
        let hash = B256::from_slice(&row.get::<Vec<u8>, _>("query_hash"));
        let pinned: i64 = row.get("pinned_block");
        let cost: i64 = row.get("cost");
        let receipt = research
            .studies
            .queryOf(study_id, hash)
            .call()
            .await
            .map_err(|e| {
                err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "chain",
                    &format!("chain unavailable: {e}"),
                )
            })?;
        if receipt.cost != 0
            && (i64::try_from(receipt.cost).unwrap_or(i64::MAX) < cost
                || i64::try_from(receipt.pinnedBlock).unwrap_or(i64::MAX) != pinned)
        {
            // A receipt cannot be rewritten: an underpaid one stays unpaid here for good.
            return Err(err(
                StatusCode::FORBIDDEN,
                "receipt_mismatch",
                &format!(
                    "the receipt of query {hash} on chain (cost {}, pinned block {}) does not \
                     pay for the answer this holder gave (cost {cost}, pinned block {pinned}): \
                     this holder answers no further query of the study",
                    receipt.cost, receipt.pinnedBlock
                ),
            ));
        }
        if receipt.cost == 0 {
            return Err(err(
                StatusCode::CONFLICT,
                "unrecorded_answer",
                &format!(
                    "this holder answered query {hash} (pinned at block {pinned}) and its receipt \
                     is not on chain yet: ask that query again (--pin {pinned}) to record it"
                ),
            ));
        }
        sqlx::query(
            "UPDATE gk_research_answers SET recorded = true WHERE study_id = $1 AND query_hash = $2",
        )
        .bind(study)
        .bind(hash.as_slice())
        .execute(pool)
        .await
        .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_centred_and_only_when_asked() {
        assert_eq!(noisy(42, None), 42);
        let n = 20_000;
        let mean = (0..n).map(|_| noisy(1_000, Some(0.5)) as f64).sum::<f64>() / n as f64;
        // Laplace(1/epsilon = 2) has standard deviation about 2.8: the mean of 20,000 draws is
        // within a few hundredths of the count.
        assert!((mean - 1_000.0).abs() < 0.2, "mean {mean}");
        let spread = (0..n).filter(|_| noisy(1_000, Some(0.5)) != 1_000).count();
        assert!(spread > n / 2, "noise was added");
        assert!(
            (0..1_000).all(|_| noisy(0, Some(0.1)) >= 0),
            "counts never go negative"
        );
    }

    #[test]
    fn percentiles_interpolate_like_postgres() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), Some(2.5));
        assert_eq!(percentile(&v, 0.25), Some(1.75));
        assert_eq!(percentile(&v, 0.75), Some(3.25));
        assert_eq!(percentile(&[7.0], 0.25), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn queries_parse_with_clear_errors_and_costs() {
        let q = Query::parse(r#"{"kind":"condition-count","system":"http://snomed.info/sct","code":"44054006","epsilon":null,"pinnedBlock":7}"#).unwrap();
        assert_eq!((q.cost(), q.pinned_block()), (1, 7));
        let q = Query::parse(r#"{"kind":"condition-count","system":"http://hl7.org/fhir/sid/icd-10-cm","code":"E11.9","epsilon":null,"pinnedBlock":7}"#).unwrap();
        assert_eq!(q.cost(), 1);
        let q = Query::parse(r#"{"kind":"observation-stats","system":"http://loinc.org","code":"718-7","epsilon":0.25,"pinnedBlock":1}"#).unwrap();
        assert_eq!(q.cost(), 250_000);
        for (bad, why) in [
            (
                r#"{"kind":"condition-count","system":"http://loinc.org","code":"1","epsilon":null,"pinnedBlock":1}"#,
                "unknown code system",
            ),
            (
                r#"{"kind":"condition-count","system":"http://snomed.info/sct","code":"1; DROP","epsilon":null,"pinnedBlock":1}"#,
                "malformed code",
            ),
            (
                r#"{"kind":"observation-stats","system":"http://loinc.org","code":"718-7","epsilon":-1,"pinnedBlock":1}"#,
                "epsilon",
            ),
            (
                r#"{"kind":"median","system":"http://loinc.org","code":"718-7","pinnedBlock":1}"#,
                "malformed query",
            ),
            ("not json", "malformed query"),
        ] {
            let e = Query::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
