//! The read API (JSON over HTTP). Every answer says the block it reflects; `?min_block=N`
//! waits (up to 10 s) until block N is indexed, for read-your-writes after a transaction.
//!
//! Who may ask ([`crate::auth`], a signed request each): `/v1/patients/{p}/...` the patient
//! `p` or a guardian they named, live now; `/v1/grantees/{g}/patients` the grantee `g`;
//! `/v1/access` the patient, their live guardian, or the grantee asking about itself;
//! `/v1/pointers/{id}` the pointer's patient, their live guardian, its holder, or a provider
//! with a live relationship with that patient now (a grant of any category or break-glass: the
//! indexer no longer knows a pointer's category, which its commitment hides; an unknown record
//! is refused alike, so that a refusal does not tell whether it exists). A patient's pointer
//! list goes to the patient and to a guardian of every category only, for the same reason: a
//! guardian of some categories asks the holders' gatekeepers, which know the categories. Public: `/health`, `/metrics`, the
//! studies, the research policy and holders' access-log anchors.

use crate::auth::{self, Auth, Requester};
use crate::metrics::Metrics;
use alloy::primitives::{Address, B256};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use medrec_protocol::indexer::{
    Access, GrantTerms, GranteePatient, GranteePatients, Health, LogAnchor, LogAnchors,
    PatientGrant, PatientGrants, PatientPointers, Pointer, PointerAnswer, QueryReceipt,
    ResearchPolicy, Studies, Study, StudyAnswer, StudyStatus, Timeline, TimelineData,
    TimelineEvent,
};
use medrec_protocol::{ErrorBody, ErrorCode};
use serde::Deserialize;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest wait for `min_block`.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The database.
    pub pool: PgPool,
    /// The indexer's counters.
    pub metrics: Arc<Metrics>,
    /// The node, for the time of a block whose hash is no longer stored.
    pub node: medrec_chain::Rpc,
    /// How signed requests are checked.
    pub auth: Arc<Auth>,
}

/// The routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/patients/{patient}/grants", get(patient_grants))
        .route("/v1/patients/{patient}/pointers", get(patient_pointers))
        .route("/v1/patients/{patient}/timeline", get(timeline))
        .route("/v1/grantees/{grantee}/patients", get(grantee_patients))
        .route("/v1/pointers/{record_id}", get(pointer))
        .route("/v1/holders/{holder}/access-log-anchors", get(log_anchors))
        .route("/v1/access", get(access))
        .route("/v1/studies", get(studies))
        .route("/v1/studies/{study}", get(study))
        .route("/v1/research/policy", get(research_policy))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .with_state(state)
}

/// An error answer: `{"error":{"code","message"}}`.
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::new(ErrorCode::Database, format!("database: {e}"))
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Debug, Deserialize)]
struct Wait {
    min_block: Option<u64>,
}

fn address(s: &str, what: &str) -> Result<Address, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad(format!("bad {what} address {s:?}")))
}

/// A stored address (BYTEA of 20 bytes).
fn addr(r: &sqlx::postgres::PgRow, column: &str) -> Address {
    Address::from_slice(&r.get::<Vec<u8>, _>(column))
}

/// A stored hash (BYTEA of 32 bytes).
fn word(r: &sqlx::postgres::PgRow, column: &str) -> B256 {
    B256::from_slice(&r.get::<Vec<u8>, _>(column))
}

/// A stored uint64 (BIGINT with the same bits).
fn uint(r: &sqlx::postgres::PgRow, column: &str) -> u64 {
    r.get::<i64, _>(column) as u64
}

/// Waits for `min_block`, then opens a snapshot and reads the cursor in it.
async fn snapshot(
    pool: &PgPool,
    wait: &Wait,
) -> Result<(Transaction<'static, Postgres>, u64, u64), ApiError> {
    let started = Instant::now();
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT c.block_number, COALESCE(b.timestamp, 0) FROM indexer_cursor c
             LEFT JOIN indexed_blocks b ON b.block_number = c.block_number WHERE c.id = 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (block, ts) = row.map(|(b, t)| (b as u64, t as u64)).unwrap_or((0, 0));
        match wait.min_block {
            Some(min) if block < min => {
                drop(tx);
                if started.elapsed() >= MAX_WAIT {
                    return Err(ApiError::new(
                        ErrorCode::NotIndexedYet,
                        format!("block {min} is not indexed yet (indexed: {block})"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return Ok((tx, block, ts)),
        }
    }
}

async fn health(State(s): State<ApiState>) -> Response {
    let m = &s.metrics;
    let db_ok = sqlx::query("SELECT 1").execute(&s.pool).await.is_ok();
    let body = Health {
        status: if db_ok { "ok" } else { "degraded" }.into(),
        database: db_ok,
        indexed_block: m.indexed_block.load(Ordering::Relaxed),
        head_block: m.head_block.load(Ordering::Relaxed),
        lag_blocks: m.lag(),
        writer: m.writer.load(Ordering::Relaxed) == 1,
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        s.metrics.render(),
    )
        .into_response()
}

fn grant_terms(r: &sqlx::postgres::PgRow, now: u64) -> GrantTerms {
    let cats = uint(r, "categories");
    let not_before = uint(r, "not_before");
    let expires_at = uint(r, "expires_at");
    let void: bool = r.get("void");
    GrantTerms {
        by: addr(r, "by_account"),
        categories: medrec_bindings::category_names(cats),
        category_mask: cats,
        purpose: medrec_bindings::purpose_name(r.get::<i16, _>("purpose") as u8),
        not_before,
        expires_at,
        live: !void && now >= not_before && now < expires_at,
        void,
        since_block: uint(r, "block_number"),
    }
}

/// Whether the open grant `g` (with its event `e`) was given before its grantee's current run
/// `r` began (NULL: no credential ever, not void): see migrations/indexer/20261129000005_valid_since.sql.
const VOID_SQL: &str =
    "medrec_grant_void(e.granted_at, g.from_block, r.valid_since, r.run_block, r.new_run)";

/// The grants of one party, by the other: `(grantee, terms)` for a patient (`side` is
/// `patient`), `(patient, terms)` for a grantee (`side` is `grantee`), ordered by the other.
async fn grants_of(
    tx: &mut Transaction<'_, Postgres>,
    side: Side,
    key: Address,
    now: u64,
) -> Result<Vec<(Address, GrantTerms)>, ApiError> {
    let (filter, other) = match side {
        Side::Patient => ("g.patient", "grantee"),
        Side::Grantee => ("g.grantee", "patient"),
    };
    // The grantee's current run decides, as validSinceOf does on chain.
    let sql = format!(
        "SELECT g.{other}, g.by_account, g.categories, g.purpose, g.not_before, g.expires_at,
                g.from_block AS block_number, {VOID_SQL} AS void
         FROM grant_history g
         JOIN ev_granted e ON e.block_number = g.from_block AND e.log_index = g.from_log
         LEFT JOIN credential_current_runs r ON r.account = g.grantee
         WHERE {filter} = $1 AND g.to_block IS NULL ORDER BY g.{other}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key.to_vec())
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (addr(r, other), grant_terms(r, now)))
        .collect())
}

/// Which party of a grant a listing is for.
#[derive(Clone, Copy)]
enum Side {
    Patient,
    Grantee,
}

async fn patient_grants(
    State(s): State<ApiState>,
    Requester(who): Requester,
    Path(p): Path<String>,
    Query(w): Query<Wait>,
) -> ApiResult<PatientGrants> {
    let patient = address(&p, "patient")?;
    let (mut tx, block, now) = snapshot(&s.pool, &w).await?;
    // A guardian of some categories sees the grants of those, narrowed to them.
    let scope = auth::patient_or_guardian(&mut tx, patient, who, now).await?;
    let grants = grants_of(&mut tx, Side::Patient, patient, now)
        .await?
        .into_iter()
        .filter(|(_, terms)| terms.category_mask & scope != 0)
        .map(|(grantee, mut terms)| {
            terms.category_mask &= scope;
            terms.categories = medrec_bindings::category_names(terms.category_mask);
            PatientGrant { grantee, terms }
        })
        .collect();
    Ok(Json(PatientGrants {
        block,
        patient,
        grants,
    }))
}

async fn grantee_patients(
    State(s): State<ApiState>,
    Requester(who): Requester,
    Path(g): Path<String>,
    Query(w): Query<Wait>,
) -> ApiResult<GranteePatients> {
    let grantee = address(&g, "grantee")?;
    if who != grantee {
        return Err(auth::not_yours("the grantee itself"));
    }
    let (mut tx, block, now) = snapshot(&s.pool, &w).await?;
    let patients = grants_of(&mut tx, Side::Grantee, grantee, now)
        .await?
        .into_iter()
        .map(|(patient, terms)| GranteePatient { patient, terms })
        .collect();
    Ok(Json(GranteePatients {
        block,
        grantee,
        patients,
    }))
}

fn pointer_of(r: &sqlx::postgres::PgRow) -> Pointer {
    let superseded: Option<Vec<u8>> = r.get("superseded_by");
    Pointer {
        record_id: word(r, "record_id"),
        patient: addr(r, "patient"),
        holder: addr(r, "holder"),
        commitment: word(r, "commitment"),
        locator: r.get("locator"),
        anchored_block: uint(r, "anchored_block"),
        superseded_by: superseded.map(|s| B256::from_slice(&s)),
        break_glass: r.get("break_glass"),
        erased: r.get("erased"),
    }
}

async fn patient_pointers(
    State(s): State<ApiState>,
    Requester(who): Requester,
    Path(p): Path<String>,
    Query(w): Query<Wait>,
) -> ApiResult<PatientPointers> {
    let patient = address(&p, "patient")?;
    let (mut tx, block, now) = snapshot(&s.pool, &w).await?;
    // The categories are hidden: a guardian of some categories cannot be given only theirs, so
    // the list goes to the patient and to a guardian of every category only.
    auth::patient_or_whole_guardian(&mut tx, patient, who, now).await?;
    let rows = sqlx::query(
        "SELECT record_id, patient, holder, commitment, locator, anchored_block, superseded_by, break_glass, erased
         FROM pointers WHERE patient = $1 ORDER BY anchored_block, anchored_log",
    )
    .bind(patient.to_vec())
    .fetch_all(&mut *tx)
    .await?;
    let pointers = rows.iter().map(pointer_of).collect();
    Ok(Json(PatientPointers {
        block,
        patient,
        pointers,
    }))
}

async fn pointer(
    State(s): State<ApiState>,
    Requester(who): Requester,
    Path(id): Path<String>,
    Query(w): Query<Wait>,
) -> ApiResult<PointerAnswer> {
    let record_id: B256 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("bad record id {id:?}")))?;
    let (mut tx, block, now) = snapshot(&s.pool, &w).await?;
    let row = sqlx::query(
        "SELECT record_id, patient, holder, commitment, locator, anchored_block, superseded_by, break_glass, erased
         FROM pointers WHERE record_id = $1",
    )
    .bind(record_id.to_vec())
    .fetch_optional(&mut *tx)
    .await?;
    const WHO_MAY: &str = "the record's patient, a guardian they named, its holder, or a provider with a live relationship with the patient";
    // An unknown record is refused after the same work as a known one, so that neither the
    // answer nor its time tells whether it exists.
    let (patient, holder) = match &row {
        Some(r) => {
            let p = pointer_of(r);
            (p.patient, p.holder)
        }
        None => (Address::ZERO, Address::ZERO),
    };
    let scope = auth::scope_for(&mut tx, patient, who, now).await?;
    // The category is committed, not known here: any live relationship with the patient.
    let via = allowed_via(&mut tx, who, patient, u64::MAX, block, now).await?;
    let entitled = row.is_some() && (who == holder || scope.is_some() || via.is_some());
    let Some(row) = row.filter(|_| entitled) else {
        return Err(auth::not_yours(WHO_MAY));
    };
    let pointer = pointer_of(&row);
    Ok(Json(PointerAnswer { block, pointer }))
}

async fn log_anchors(
    State(s): State<ApiState>,
    Path(h): Path<String>,
    Query(w): Query<Wait>,
) -> ApiResult<LogAnchors> {
    let holder = address(&h, "holder")?;
    let (mut tx, block, _) = snapshot(&s.pool, &w).await?;
    let rows = sqlx::query(
        "SELECT block_number, tx_hash, head, entries, anchored_at FROM ev_access_log_anchored
         WHERE holder = $1 ORDER BY block_number DESC, log_index DESC LIMIT 100",
    )
    .bind(holder.to_vec())
    .fetch_all(&mut *tx)
    .await?;
    let anchors = rows
        .iter()
        .map(|r| LogAnchor {
            block: uint(r, "block_number"),
            tx_hash: word(r, "tx_hash"),
            head: word(r, "head"),
            entries: uint(r, "entries"),
            anchored_at: uint(r, "anchored_at"),
        })
        .collect();
    Ok(Json(LogAnchors {
        block,
        holder,
        anchors,
    }))
}

#[derive(Debug, Deserialize)]
struct TimelineQuery {
    min_block: Option<u64>,
    from_block: Option<u64>,
    limit: Option<i64>,
}

// Masks are BIGINT with the uint64's bits: shown as the unsigned number, like the other answers.
const TIMELINE_SQL: &str = "
SELECT * FROM (
  SELECT block_number, log_index, tx_hash, 'granted' AS kind,
    json_build_object('grantee', '0x' || encode(grantee, 'hex'), 'by', '0x' || encode(by_account, 'hex'),
      'categoryMask', categories::numeric + CASE WHEN categories < 0 THEN 18446744073709551616 ELSE 0 END, 'purpose', purpose, 'notBefore', not_before, 'expiresAt', expires_at)::text AS data
  FROM ev_granted WHERE patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'revoked',
    json_build_object('grantee', '0x' || encode(grantee, 'hex'), 'by', '0x' || encode(by_account, 'hex'))::text
  FROM ev_revoked WHERE patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'guardian-set',
    json_build_object('guardian', '0x' || encode(guardian, 'hex'), 'scopeMask', scope::numeric + CASE WHEN scope < 0 THEN 18446744073709551616 ELSE 0 END,
      'notBefore', not_before, 'expiresAt', expires_at)::text
  FROM ev_guardian_set WHERE patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'guardian-removed',
    json_build_object('guardian', '0x' || encode(guardian, 'hex'))::text
  FROM ev_guardian_removed WHERE patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'break-glass-opened',
    json_build_object('provider', '0x' || encode(provider, 'hex'), 'reasonHash', '0x' || encode(reason_hash, 'hex'),
      'openedAt', opened_at, 'expiresAt', expires_at)::text
  FROM ev_emergency_opened WHERE patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'break-glass-closed',
    json_build_object('provider', '0x' || encode(provider, 'hex'), 'by', '0x' || encode(by_account, 'hex'))::text
  FROM ev_emergency_closed WHERE patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'pointer-anchored',
    json_build_object('recordId', '0x' || encode(record_id, 'hex'), 'holder', '0x' || encode(holder, 'hex'),
      'commitment', '0x' || encode(commitment, 'hex'), 'locator', locator)::text
  FROM ev_pointer_anchored WHERE patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'pointer-anchored-under-break-glass',
    json_build_object('recordId', '0x' || encode(record_id, 'hex'), 'holder', '0x' || encode(holder, 'hex'))::text
  FROM ev_pointer_break_glass WHERE patient = $1
  UNION ALL
  SELECT s.block_number, s.log_index, s.tx_hash, 'pointer-superseded',
    json_build_object('oldRecordId', '0x' || encode(s.old_record_id, 'hex'),
      'newRecordId', '0x' || encode(s.new_record_id, 'hex'))::text
  FROM ev_pointer_superseded s JOIN pointers p ON p.record_id = s.old_record_id WHERE p.patient = $1
  UNION ALL
  SELECT e.block_number, e.log_index, e.tx_hash, 'pointer-erased',
    json_build_object('recordId', '0x' || encode(e.record_id, 'hex'),
      'holder', '0x' || encode(a.holder, 'hex'))::text
  FROM ev_pointer_erased e JOIN ev_pointer_anchored a ON a.record_id = e.record_id WHERE a.patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'break-glass-review-due',
    json_build_object('openingId', opening_id, 'provider', '0x' || encode(provider, 'hex'), 'reviewBy', review_by)::text
  FROM ev_emergency_justification_due WHERE patient = $1
  UNION ALL
  SELECT v.block_number, v.log_index, v.tx_hash, 'break-glass-reviewed',
    json_build_object('openingId', v.opening_id, 'provider', '0x' || encode(v.provider, 'hex'), 'justified', v.justified = 1)::text
  FROM ev_emergency_reviewed v JOIN ev_emergency_justification_due d ON d.opening_id = v.opening_id WHERE d.patient = $1
  UNION ALL
  SELECT o.block_number, o.log_index, o.tx_hash, 'break-glass-overdue',
    json_build_object('openingId', o.opening_id, 'provider', '0x' || encode(o.provider, 'hex'))::text
  FROM ev_emergency_overdue o JOIN ev_emergency_justification_due d ON d.opening_id = o.opening_id WHERE d.patient = $1
  UNION ALL
  SELECT block_number, log_index, tx_hash, 'consent-signatures-cancelled',
    json_build_object('grantee', '0x' || encode(grantee, 'hex'), 'by', '0x' || encode(by_account, 'hex'), 'epoch', epoch)::text
  FROM ev_consent_signatures_cancelled WHERE patient = $1

) t WHERE block_number >= $2 ORDER BY block_number, log_index LIMIT $3";

async fn timeline(
    State(s): State<ApiState>,
    Requester(who): Requester,
    Path(p): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<Timeline> {
    let patient = address(&p, "patient")?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad("limit must be 1 to 10000"));
    }
    let (mut tx, block, now) = snapshot(
        &s.pool,
        &Wait {
            min_block: q.min_block,
        },
    )
    .await?;
    auth::patient_or_whole_guardian(&mut tx, patient, who, now).await?;
    let rows = sqlx::query(TIMELINE_SQL)
        .bind(patient.to_vec())
        .bind(q.from_block.unwrap_or(0) as i64)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let events = rows
        .iter()
        .map(|r| {
            // The SQL writes each kind's data as the protocol's TimelineData reads it.
            let what: TimelineData = serde_json::from_value(serde_json::json!({
                "type": r.get::<String, _>("kind"),
                "data": serde_json::from_str::<serde_json::Value>(&r.get::<String, _>("data"))
                    .unwrap_or_default(),
            }))
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::Integrity,
                    format!("a timeline event does not read back: {e}"),
                )
            })?;
            Ok(TimelineEvent {
                block: uint(r, "block_number"),
                log_index: r.get::<i32, _>("log_index") as u32,
                tx_hash: word(r, "tx_hash"),
                what,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(Timeline {
        block,
        patient,
        events,
    }))
}

#[derive(Debug, Deserialize)]
struct AccessQuery {
    grantee: String,
    patient: String,
    category: String,
    block: Option<u64>,
    min_block: Option<u64>,
}

/// Was `grantee` allowed to read `category` of `patient` at the end of `block`?
async fn access(
    State(s): State<ApiState>,
    Requester(who): Requester,
    Query(q): Query<AccessQuery>,
) -> ApiResult<Access> {
    let grantee = address(&q.grantee, "grantee")?;
    let patient = address(&q.patient, "patient")?;
    let category = medrec_bindings::category_index(&q.category)
        .ok_or_else(|| ApiError::bad(format!("unknown category {:?}", q.category)))?;
    let (mut tx, indexed, head_time) = snapshot(
        &s.pool,
        &Wait {
            min_block: q.min_block.or(q.block),
        },
    )
    .await?;
    let bit = 1u64.wrapping_shl(category as u32);
    if who != grantee
        && auth::scope_for(&mut tx, patient, who, head_time)
            .await?
            .is_none_or(|scope| scope & bit == 0)
    {
        return Err(auth::not_yours(
            "the patient, a guardian they named for this category, or the grantee asking about \
             itself",
        ));
    }
    let at = q.block.unwrap_or(indexed);
    if at > indexed {
        return Err(ApiError::new(
            ErrorCode::NotIndexedYet,
            format!("block {at} is not indexed yet"),
        ));
    }
    // The block's time: stored for recent blocks, else asked of the node.
    let stored: Option<(i64,)> =
        sqlx::query_as("SELECT timestamp FROM indexed_blocks WHERE block_number = $1")
            .bind(at as i64)
            .fetch_optional(&mut *tx)
            .await?;
    let ts = match stored {
        Some((t,)) => t,
        None => {
            use medrec_chain::Source;
            let header = s
                .node
                .header(at)
                .await
                .map_err(|e| ApiError::new(ErrorCode::Rpc, format!("node: {e}")))?
                .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no block {at}")))?;
            header.timestamp as i64
        }
    };
    let via = allowed_via(&mut tx, grantee, patient, bit, at, ts as u64).await?;
    Ok(Json(Access {
        block: at,
        indexed_block: indexed,
        grantee,
        patient,
        category: medrec_bindings::category_name(category),
        allowed: via.is_some(),
        via: via.map(Into::into),
    }))
}

/// How `grantee` was allowed to read some category of `mask` of `patient` at the end of block
/// `at`, whose time is `ts` (a grant or break-glass), or `None`.
async fn allowed_via(
    tx: &mut Transaction<'_, Postgres>,
    grantee: Address,
    patient: Address,
    mask: u64,
    at: u64,
    ts: u64,
) -> Result<Option<&'static str>, ApiError> {
    let bit = mask as i64;
    let row = sqlx::query(
        "SELECT
           EXISTS (SELECT 1 FROM credential_history WHERE account = $1 AND role = 1
                   AND from_block <= $3 AND (to_block IS NULL OR to_block > $3) AND expires_at > $4) AS credentialed,
           EXISTS (SELECT 1 FROM grant_history g WHERE patient = $2 AND grantee = $1
                   AND from_block <= $3 AND (to_block IS NULL OR to_block > $3)
                   AND not_before <= $4 AND expires_at > $4 AND (categories & $5) <> 0
                   -- given within the grantee's run at that block (its latest issue by then)
                   AND NOT COALESCE((SELECT medrec_grant_void(e.granted_at, g.from_block, r.valid_since, r.run_block, r.new_run)
                                     FROM ev_granted e, credential_runs r
                                     WHERE e.block_number = g.from_block AND e.log_index = g.from_log
                                       AND r.account = $1 AND r.block_number <= $3
                                     ORDER BY r.block_number DESC, r.log_index DESC LIMIT 1), FALSE)) AS granted,
           EXISTS (SELECT 1 FROM emergency_history eh WHERE patient = $2 AND provider = $1
                   AND from_block <= $3 AND (to_block IS NULL OR to_block > $3) AND expires_at > $4
                   -- opened within the provider's run at that block: a revocation ends it
                   -- for good, as on chain
                   AND NOT COALESCE((SELECT medrec_grant_void(eh.opened_at, eh.from_block, r.valid_since, r.run_block, r.new_run)
                                     FROM credential_runs r
                                     WHERE r.account = $1 AND r.block_number <= $3
                                     ORDER BY r.block_number DESC, r.log_index DESC LIMIT 1), FALSE))
           AND COALESCE((SELECT excluded FROM ev_emergency_rule_set WHERE patient = $2 AND block_number <= $3
                         ORDER BY block_number DESC, log_index DESC LIMIT 1), 0) & $5 <> $5 AS emergency",
    )
    .bind(grantee.to_vec())
    .bind(patient.to_vec())
    .bind(at as i64)
    .bind(ts as i64)
    .bind(bit)
    .fetch_one(&mut **tx)
    .await?;
    let (cred, granted, emergency): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    Ok(if !cred {
        None
    } else if granted {
        Some("grant")
    } else if emergency {
        Some("break-glass")
    } else {
        None
    })
}

const STUDY_COLUMNS: &str = "study_id, researcher, protocol_hash, categories, min_cell_size,
    budget::text AS budget, spent::text AS spent, queries, registered_at, registered_block,
    status, status_since, status_block";

/// A stored study status (the Solidity enum's value).
fn status_of(r: &sqlx::postgres::PgRow) -> Result<StudyStatus, ApiError> {
    StudyStatus::from_solidity(r.get::<i16, _>("status") as u8).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Integrity,
            "a study's status is not one of the registry's",
        )
    })
}

/// A NUMERIC uint64 amount (budgets, spent) selected as text: sqlx reads NUMERIC only with a
/// decimal crate.
fn amount(r: &sqlx::postgres::PgRow, column: &str) -> Result<u64, ApiError> {
    r.get::<String, _>(column).parse().map_err(|_| {
        ApiError::new(
            ErrorCode::Integrity,
            format!("a stored {column} is not a uint64"),
        )
    })
}

fn study_of(r: &sqlx::postgres::PgRow) -> Result<Study, ApiError> {
    let cats = uint(r, "categories");
    let amount = |c: &str| amount(r, c);
    let status = status_of(r)?;
    Ok(Study {
        study_id: uint(r, "study_id"),
        researcher: addr(r, "researcher"),
        protocol_hash: word(r, "protocol_hash"),
        categories: medrec_bindings::category_names(cats),
        category_mask: cats,
        min_cell_size: uint(r, "min_cell_size") as u32,
        budget: amount("budget")?,
        spent: amount("spent")?,
        queries: uint(r, "queries"),
        registered_at: uint(r, "registered_at"),
        registered_block: uint(r, "registered_block"),
        status,
        status_since: uint(r, "status_since"),
        status_block: uint(r, "status_block"),
    })
}

async fn studies(State(s): State<ApiState>, Query(w): Query<Wait>) -> ApiResult<Studies> {
    let (mut tx, block, _) = snapshot(&s.pool, &w).await?;
    let sql = format!("SELECT {STUDY_COLUMNS} FROM studies ORDER BY study_id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *tx)
        .await?;
    let studies = rows.iter().map(study_of).collect::<Result<_, _>>()?;
    Ok(Json(Studies { block, studies }))
}

async fn study(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(w): Query<Wait>,
) -> ApiResult<StudyAnswer> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad(format!("bad study id {id:?}")))?;
    let (mut tx, block, _) = snapshot(&s.pool, &w).await?;
    let sql = format!("SELECT {STUDY_COLUMNS} FROM studies WHERE study_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("unknown study {id}")))?;
    let study = study_of(&row)?;
    let queries = sqlx::query(
        "SELECT query_hash, cost, pinned_block, answer_hash, block_number, tx_hash
         FROM ev_query_answered WHERE study_id = $1 ORDER BY block_number, log_index",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| QueryReceipt {
        query_hash: word(r, "query_hash"),
        cost: uint(r, "cost"),
        pinned_block: uint(r, "pinned_block"),
        answer_hash: word(r, "answer_hash"),
        block: uint(r, "block_number"),
        tx_hash: word(r, "tx_hash"),
    })
    .collect();
    Ok(Json(StudyAnswer {
        block,
        study,
        queries,
    }))
}

async fn research_policy(
    State(s): State<ApiState>,
    Query(w): Query<Wait>,
) -> ApiResult<ResearchPolicy> {
    let (mut tx, block, _) = snapshot(&s.pool, &w).await?;
    let r = sqlx::query(
        "SELECT min_cell_size_floor, max_study_budget::text AS max_study_budget,
                max_researcher_budget::text AS max_researcher_budget, block_number
         FROM research_policy",
    )
    .fetch_optional(&mut *tx)
    .await?
    // The registry's constructor emits it: none means no study registry is indexed.
    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no research policy indexed"))?;
    Ok(Json(ResearchPolicy {
        block,
        min_cell_size_floor: uint(&r, "min_cell_size_floor") as u32,
        max_study_budget: amount(&r, "max_study_budget")?,
        max_researcher_budget: amount(&r, "max_researcher_budget")?,
        set_block: uint(&r, "block_number"),
    }))
}
