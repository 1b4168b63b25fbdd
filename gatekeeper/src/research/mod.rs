//! Research aggregates, computed where the records are: a researcher's signed query that names
//! this holder is checked against the chain (credential, approved study, budget left),
//! evaluated over the coded facts of the patients whose opt-in was live at the block the query
//! pins, from records of the study's categories only, every figure noised for this holder's
//! share of the query's epsilon (cells under the study's minimum held back), and the answer
//! signed and stored. See docs/research-privacy.md.
//!
//! The query's receipt (cost, pinned block, answer hash) is recorded on chain by the
//! researcher in one transaction after the holders answer. Until a receipt that pays for it
//! (at least its cost, the same pinned block) is there, this holder answers no other query of
//! the study, so at most one of its answers is ever unpaid; the same query asked again gets
//! the stored answer back, never a fresh draw of noise. A receipt that underpays an answer
//! cannot be rewritten, so that holder then answers nothing more of the study.
//!
//! [`Research::answer`] runs the steps in order: [`stored_answer`], the chain's facts
//! ([`Research::chain_facts`], [`ChainFacts::check`]), [`check_unrecorded`], the consenting
//! patients ([`follower`]), [`evaluate`], then [`Research::sign_and_store`].

pub mod dp;
pub mod evaluate;
pub mod follower;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use follower::OptIns;
use medrec_bindings::study_registry::IStudyRegistry;
use medrec_bindings::{ParticipantRegistry, StudyRegistry};
use medrec_protocol::participant::Role;
use medrec_protocol::research::{Answer, Query, SignedAnswer, canonical_json};
use medrec_protocol::study::StudyStatus;
use medrec_protocol::{ErrorBody, ErrorCode, ResearchRequest};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::Instant;

/// What the research endpoint needs besides the records.
pub struct Research {
    /// The holder whose answers these are.
    pub holder: Address,
    /// The participant registry (researcher credentials).
    pub participants: ParticipantRegistry::ParticipantRegistryInstance<DynProvider>,
    /// The study registry.
    pub studies: StudyRegistry::StudyRegistryInstance<DynProvider>,
    /// The chain.
    pub provider: DynProvider,
    /// The holder's key, which signs answers.
    pub signer: PrivateKeySigner,
    /// The service key's public key (SEC1, 33 bytes), to which patients encrypt this
    /// holder's slot of their opt-ins; served at `GET /v1/service-key`.
    pub service_key: Vec<u8>,
    /// Opt-ins and withdrawals read so far.
    pub opt_ins: Arc<OptIns>,
    /// How many blocks old a new query's pinned block may be.
    pub max_pin_age: u64,
    /// The largest epsilon of a query this holder answers.
    pub max_epsilon: f64,
}

fn database(e: sqlx::Error) -> ErrorBody {
    ErrorBody::new(ErrorCode::Database, e.to_string())
}

fn chain_unavailable(e: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(ErrorCode::Chain, format!("chain unavailable: {e}"))
}

/// What the chain says about a query before it is answered.
pub struct ChainFacts {
    /// The researcher holds a live credential.
    pub credentialed: bool,
    /// The study.
    pub study: IStudyRegistry::Study,
    /// The query's receipt (cost 0: none yet).
    pub receipt: IStudyRegistry::Query,
    /// When the researcher's current credential run began (`validSinceOf`).
    pub valid_since: u64,
    /// The block all of the above were read at.
    pub latest: u64,
}

impl ChainFacts {
    /// Refuses a query the chain does not allow now: not a live researcher's approved study,
    /// a pinned block that is not recent (an old pin would count patients who withdrew
    /// since, even when a receipt for it is already on chain).
    pub fn check(
        &self,
        r: &ResearchRequest,
        pinned: u64,
        max_pin_age: u64,
    ) -> Result<(), ErrorBody> {
        // The chain's own conditions for the receipt (`recordQuery`), so that every answer
        // given can be paid: a live researcher's approved study, registered in the
        // researcher's current credential run.
        if !self.credentialed
            || self.study.researcher != r.researcher
            || StudyStatus::from_solidity(self.study.status) != Some(StudyStatus::Approved)
            || self.study.registeredAt.to::<u64>() < self.valid_since
        {
            return Err(ErrorBody::denied());
        }
        let latest = self.latest;
        if pinned > latest || latest - pinned > max_pin_age {
            return Err(ErrorBody::new(
                ErrorCode::PinnedBlock,
                format!(
                    "the query pins block {pinned}; this holder answers new queries pinned \
                     within the last {max_pin_age} blocks (latest {latest})"
                ),
            ));
        }
        Ok(())
    }

    /// Whether the query's receipt is on chain already; refuses a query its receipt does not
    /// pay for, or that the budget left cannot pay.
    pub fn check_payment(&self, query: &Query) -> Result<bool, ErrorBody> {
        let (study, receipt) = (&self.study, &self.receipt);
        let recorded = receipt.cost != 0;
        if recorded {
            // Its receipt is on chain already (this holder was not asked before): only the
            // query that receipt paid for.
            if receipt.pinnedBlock != query.pinned_block() || receipt.cost < query.cost() {
                return Err(ErrorBody::denied());
            }
        } else if query.cost() > study.budget.saturating_sub(study.spent) {
            return Err(ErrorBody::new(
                ErrorCode::BudgetExhausted,
                format!(
                    "the study's privacy budget cannot pay this query (spent {} of {}, the query \
                     costs {})",
                    study.spent,
                    study.budget,
                    query.cost()
                ),
            ));
        }
        Ok(recorded)
    }
}

impl Research {
    /// Answers a query whose request passed the signature checks: the stored answer when it
    /// was asked before, else a new one once the chain allows it.
    pub async fn answer(
        &self,
        pool: &PgPool,
        r: &ResearchRequest,
        query_text: &str,
    ) -> Result<SignedAnswer, ErrorBody> {
        let query = Query::parse(query_text)
            .map_err(|e| ErrorBody::new(ErrorCode::BadQuery, e.to_string()))?;
        if !query.holders().contains(&self.holder) {
            return Err(ErrorBody::new(
                ErrorCode::BadQuery,
                format!(
                    "the query does not name this holder ({}): a holder answers only a query \
                     whose holders list it, since each noises for its share of the epsilon",
                    self.holder
                ),
            ));
        }
        let study_key = r.studyId.to_string();
        // Asked before: the stored answer, whatever the chain says now (it was given already).
        if let Some(found) = stored_answer(pool, &study_key, r.queryHash, r.researcher)
            .await
            .map_err(database)?
        {
            return Ok(found);
        }
        if query.epsilon() > self.max_epsilon {
            return Err(ErrorBody::new(
                ErrorCode::BadQuery,
                format!(
                    "this holder answers queries of epsilon up to {}: ask with a smaller \
                     --epsilon",
                    self.max_epsilon
                ),
            ));
        }
        let started = Instant::now();
        // Everything the chain says is read at one block: a receipt seen as recorded is then
        // also in the budget spent that pays for this query.
        let latest = self
            .provider
            .get_block_number()
            .await
            .map_err(chain_unavailable)?;
        let facts = self.chain_facts(r, latest).await?;
        let pinned = query.pinned_block();
        facts.check(r, pinned, self.max_pin_age)?;
        check_unrecorded(pool, self, r.studyId, &study_key, latest).await?;
        let recorded = facts.check_payment(&query)?;
        let chain_ms = started.elapsed().as_secs_f64() * 1e3;
        // Counted: the patients opted in at the pinned block who still are.
        let patients = self
            .opt_ins
            .consenting_throughout(r.studyId, pinned, latest)
            .await
            .map_err(|e| ErrorBody::new(ErrorCode::Chain, e.to_string()))?;
        let consent_ms = started.elapsed().as_secs_f64() * 1e3 - chain_ms;
        let timestamp = match self.provider.get_block_by_number(pinned.into()).await {
            Ok(Some(b)) => b.header.timestamp as i64,
            _ => {
                return Err(ErrorBody::new(
                    ErrorCode::Chain,
                    "cannot read the pinned block",
                ));
            }
        };
        let min = i64::from(facts.study.minCellSize);
        let db_started = Instant::now();
        let result = evaluate::evaluate(
            pool,
            &query,
            &patients,
            timestamp,
            facts.study.categories,
            min,
        )
        .await
        .map_err(database)?;
        let db_ms = db_started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(target: "medrec::gatekeeper", study = %r.studyId, pinned, patients = patients.len(),
            chain_ms, consent_ms, db_ms, total_ms = started.elapsed().as_secs_f64() * 1e3,
            "research query answered");
        let answer = Answer {
            holder: self.holder,
            study_id: r.studyId,
            query_hash: r.queryHash,
            pinned_block: pinned,
            min_cell_size: min,
            epsilon: query.holder_epsilon_value(),
            result,
        };
        self.sign_and_store(pool, r, &query, &answer, recorded)
            .await
    }

    /// The chain's facts about the query, read at once, all at block `latest`.
    pub async fn chain_facts(
        &self,
        r: &ResearchRequest,
        latest: u64,
    ) -> Result<ChainFacts, ErrorBody> {
        let at = alloy::eips::BlockId::number(latest);
        let (credentialed, study, receipt, valid_since) = tokio::try_join!(
            async {
                self.participants
                    .isCredentialed(r.researcher, Role::Researcher.to_solidity())
                    .block(at)
                    .call()
                    .await
                    .map_err(|e| e.to_string())
            },
            async {
                self.studies
                    .studyOf(r.studyId)
                    .block(at)
                    .call()
                    .await
                    .map_err(|e| e.to_string())
            },
            async {
                self.studies
                    .queryOf(r.studyId, r.queryHash)
                    .block(at)
                    .call()
                    .await
                    .map_err(|e| e.to_string())
            },
            async {
                self.participants
                    .validSinceOf(r.researcher)
                    .block(at)
                    .call()
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .map_err(chain_unavailable)?;
        Ok(ChainFacts {
            credentialed,
            study,
            receipt,
            valid_since: valid_since.to::<u64>(),
            latest,
        })
    }

    /// Signs the answer and stores it before it is sent: at most one answer per study
    /// without a receipt (a unique index), and the same query always gets this same answer.
    pub async fn sign_and_store(
        &self,
        pool: &PgPool,
        r: &ResearchRequest,
        query: &Query,
        answer: &Answer,
        recorded: bool,
    ) -> Result<SignedAnswer, ErrorBody> {
        let internal = || ErrorBody::new(ErrorCode::Internal, "cannot sign the answer");
        let text = canonical_json(answer).map_err(|_| internal())?;
        let signature = self
            .signer
            .sign_hash(&alloy::primitives::keccak256(text.as_bytes()))
            .await
            .map(|s| format!("0x{}", alloy::hex::encode(s.as_bytes())))
            .map_err(|_| internal())?;
        let study_key = r.studyId.to_string();
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
        .bind(query.pinned_block() as i64)
        .bind(&text)
        .bind(&signature)
        .bind(recorded)
        .execute(pool)
        .await;
        match stored {
            Ok(done) if done.rows_affected() == 1 => Ok(SignedAnswer {
                answer: text,
                signature,
            }),
            // The same query, answered at the same moment: the answer stored first counts.
            Ok(_) => stored_answer(pool, &study_key, r.queryHash, r.researcher)
                .await
                .map_err(database)?
                .ok_or_else(ErrorBody::denied),
            Err(sqlx::Error::Database(e))
                if e.constraint() == Some("gk_research_answers_unrecorded") =>
            {
                Err(ErrorBody::new(
                    ErrorCode::UnrecordedAnswer,
                    "another query of this study was answered here at the same moment; ask \
                     again once its receipt is on chain",
                ))
            }
            Err(e) => Err(database(e)),
        }
    }
}

/// The answer this holder stored for a query of the researcher's, as sent the first time.
pub async fn stored_answer(
    pool: &PgPool,
    study: &str,
    query_hash: B256,
    researcher: Address,
) -> Result<Option<SignedAnswer>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT answer, signature FROM gk_research_answers
         WHERE study_id = $1 AND query_hash = $2 AND researcher = $3",
    )
    .bind(study)
    .bind(query_hash.as_slice())
    .bind(researcher.as_slice())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| SignedAnswer {
        answer: row.get("answer"),
        signature: row.get("signature"),
    }))
}

/// Refuses a new query of the study while an answer this holder gave has no receipt on chain;
/// an answer whose receipt has since appeared is marked as recorded.
pub async fn check_unrecorded(
    pool: &PgPool,
    research: &Research,
    study_id: U256,
    study: &str,
    latest: u64,
) -> Result<(), ErrorBody> {
    let pending = sqlx::query(
        "SELECT query_hash, pinned_block, cost FROM gk_research_answers
         WHERE study_id = $1 AND NOT recorded",
    )
    .bind(study)
    .fetch_all(pool)
    .await
    .map_err(database)?;
    for row in pending {
        let hash = B256::from_slice(&row.get::<Vec<u8>, _>("query_hash"));
        let pinned: i64 = row.get("pinned_block");
        let cost: i64 = row.get("cost");
        let receipt = research
            .studies
            .queryOf(study_id, hash)
            .block(alloy::eips::BlockId::number(latest))
            .call()
            .await
            .map_err(chain_unavailable)?;
        if receipt.cost != 0
            && (i64::try_from(receipt.cost).unwrap_or(i64::MAX) < cost
                || i64::try_from(receipt.pinnedBlock).unwrap_or(i64::MAX) != pinned)
        {
            // A receipt cannot be rewritten: an underpaid one stays unpaid here for good.
            return Err(ErrorBody::new(
                ErrorCode::ReceiptMismatch,
                format!(
                    "the receipt of query {hash} on chain (cost {}, pinned block {}) does not \
                     pay for the answer this holder gave (cost {cost}, pinned block {pinned}): \
                     this holder answers no further query of the study",
                    receipt.cost, receipt.pinnedBlock
                ),
            ));
        }
        if receipt.cost == 0 {
            return Err(ErrorBody::new(
                ErrorCode::UnrecordedAnswer,
                format!(
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
        .map_err(database)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_protocol::research::SNOMED;

    fn request(researcher: Address) -> ResearchRequest {
        ResearchRequest {
            researcher,
            studyId: U256::from(1),
            queryHash: B256::repeat_byte(7),
            audience: Address::repeat_byte(9),
            nonce: U256::from(1),
            issuedAt: 0,
            expiresAt: 60,
        }
    }

    fn facts(researcher: Address, status: u8, spent: u64, receipt: (u64, u64)) -> ChainFacts {
        ChainFacts {
            credentialed: true,
            study: IStudyRegistry::Study {
                researcher,
                status,
                categories: 1 << 5,
                minCellSize: 10,
                budget: 1_000_000,
                spent,
                registeredAt: Default::default(),
                protocolHash: B256::ZERO,
            },
            receipt: IStudyRegistry::Query {
                cost: receipt.0,
                pinnedBlock: receipt.1,
                answerHash: B256::ZERO,
            },
            valid_since: 0,
            latest: 100,
        }
    }

    fn query(epsilon: f64, pinned: u64) -> Query {
        Query::ConditionCount {
            system: SNOMED.into(),
            code: "44054006".into(),
            epsilon,
            holders: vec![Address::repeat_byte(9)],
            pinned_block: pinned,
        }
    }

    fn code(r: Result<impl Sized, ErrorBody>) -> Option<ErrorCode> {
        r.err().map(|e| e.error.code)
    }

    #[test]
    fn only_a_live_researchers_approved_study_with_a_recent_pin_is_answered() {
        let me = Address::repeat_byte(1);
        let r = request(me);
        assert_eq!(code(facts(me, 2, 0, (0, 0)).check(&r, 90, 64)), None);
        assert_eq!(code(facts(me, 2, 0, (0, 0)).check(&r, 36, 64)), None);
        let mut uncredentialed = facts(me, 2, 0, (0, 0));
        uncredentialed.credentialed = false;
        // Registered before the researcher's current credential run: its receipts revert.
        let mut recredentialed = facts(me, 2, 0, (0, 0));
        recredentialed.valid_since = 1;
        for refused in [
            uncredentialed,
            recredentialed,
            facts(Address::repeat_byte(2), 2, 0, (0, 0)),
            facts(me, 1, 0, (0, 0)),
            facts(me, 3, 0, (0, 0)),
            facts(me, 0, 0, (0, 0)),
        ] {
            assert_eq!(code(refused.check(&r, 90, 64)), Some(ErrorCode::Denied));
        }
        for pinned in [35, 101] {
            assert_eq!(
                code(facts(me, 2, 0, (0, 0)).check(&r, pinned, 64)),
                Some(ErrorCode::PinnedBlock),
                "{pinned}"
            );
        }
    }

    #[test]
    fn a_query_is_paid_by_the_budget_left_or_by_its_own_receipt() {
        let me = Address::repeat_byte(1);
        // No receipt yet: the budget left must pay the cost.
        let f = facts(me, 2, 900_000, (0, 0));
        assert_eq!(f.check_payment(&query(0.1, 90)).ok(), Some(false));
        assert_eq!(
            code(f.check_payment(&query(0.100_001, 90))),
            Some(ErrorCode::BudgetExhausted)
        );
        // Its receipt is on chain: only the query it paid for, at its pinned block.
        let f = facts(me, 2, 1_000_000, (100_000, 90));
        assert_eq!(f.check_payment(&query(0.1, 90)).ok(), Some(true));
        assert_eq!(f.check_payment(&query(0.05, 90)).ok(), Some(true));
        assert_eq!(
            code(f.check_payment(&query(0.2, 90))),
            Some(ErrorCode::Denied)
        );
        assert_eq!(
            code(f.check_payment(&query(0.1, 91))),
            Some(ErrorCode::Denied)
        );
    }
}
