//! The HTTP service: upload (the holder), read (requesters the chain allows), access log
//! (the patient). Denials look the same whether or not the record exists; every read and
//! every denial is logged before the answer leaves.

use crate::cache::{Cached, RecordCache};
use crate::crypto::{MasterKey, Sealed};
use crate::error::GkError;
use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::DynProvider;
use alloy::sol_types::{Eip712Domain, SolStruct, SolValue};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use medrec_bindings::ConsentRegistry;
use medrec_bindings::access_log::{self as log, Access, Detail, Shown};
use medrec_bindings::eip712::{LogRequest, RecordRequest, Upload};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// How far a request's issued-at may be ahead of this clock.
const SKEW_SECS: u64 = 30;
/// The longest validity of a signed request.
const MAX_VALIDITY_SECS: u64 = 300;

/// The service's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest record accepted on upload, in bytes.
    pub max_record_bytes: usize,
    /// Largest signed request body, in bytes.
    pub max_request_bytes: usize,
    /// Sustained requests per second per requester.
    pub rate_per_sec: f64,
    /// Burst of requests per requester.
    pub burst: f64,
    /// Memory for records served (kept sealed, as at rest), in bytes (0: none).
    pub record_cache_bytes: usize,
    /// How long a record is kept in memory: a record changed or deleted in the database is
    /// served as it was for at most this long.
    pub record_cache_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: 4 << 20,
            max_request_bytes: 8 << 10,
            rate_per_sec: 200.0,
            burst: 400.0,
            record_cache_bytes: 64 << 20,
            record_cache_ttl: Duration::from_secs(60),
        }
    }
}

/// Shared state.
pub struct Gatekeeper {
    /// The records and the log.
    pub pool: PgPool,
    /// The master key.
    pub key: MasterKey,
    /// The holder this gatekeeper serves for (uploads must be signed by it).
    pub holder: Address,
    /// The EIP-712 domain of requests.
    pub domain: Eip712Domain,
    /// The consent registry, asked at every read.
    pub consent: ConsentRegistry::ConsentRegistryInstance<DynProvider>,
    /// Limits.
    pub limits: Limits,
    /// Set when the gatekeeper has the holder's key: research answers are signed with it.
    pub research: std::sync::OnceLock<crate::research::Research>,
    log: Arc<Mutex<LogHead>>,
    log_tx: tokio::sync::mpsc::Sender<(Access, tokio::sync::oneshot::Sender<Result<(), String>>)>,
    nonces: std::sync::Mutex<Nonces>,
    buckets: std::sync::Mutex<HashMap<Address, (f64, Instant)>>,
    records: RecordCache,
}

struct LogHead {
    seq: u64,
    head: B256,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Gatekeeper {
    /// Loads the log head and the nonces still within their validity.
    pub async fn new(
        pool: PgPool,
        key: MasterKey,
        holder: Address,
        domain: Eip712Domain,
        consent: ConsentRegistry::ConsentRegistryInstance<DynProvider>,
        limits: Limits,
    ) -> Result<Arc<Self>, GkError> {
        let head: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, entry_hash FROM gk_access_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&pool)
                .await?;
        let (seq, head) = head
            .map(|(s, h)| (s as u64, B256::from_slice(&h)))
            .unwrap_or((0, B256::ZERO));
        let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT requester, nonce, expires_at FROM gk_access_log WHERE expires_at > $1",
        )
        .bind(now_secs() as i64)
        .fetch_all(&pool)
        .await?;
        let nonces = rows
            .into_iter()
            .map(|(r, n, e)| ((Address::from_slice(&r), B256::from_slice(&n)), e as u64))
            .collect();
        let log = Arc::new(Mutex::new(LogHead { seq, head }));
        let (log_tx, log_rx) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(log_writer(pool.clone(), log.clone(), log_rx));
        Ok(Arc::new(Self {
            pool,
            key,
            holder,
            domain,
            consent,
            research: std::sync::OnceLock::new(),
            log,
            log_tx,
            nonces: std::sync::Mutex::new(Nonces {
                seen: nonces,
                sweep_at: NONCE_SWEEP_MIN,
            }),
            buckets: std::sync::Mutex::new(HashMap::new()),
            records: RecordCache::new(limits.record_cache_bytes, limits.record_cache_ttl),
            limits,
        }))
    }

    /// Appends one entry to the chained log and returns once it is committed. Entries that
    /// arrive together are chained in arrival order and committed in one transaction.
    pub async fn append(&self, a: &Access) -> Result<(), GkError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.log_tx
            .send((a.clone(), tx))
            .await
            .map_err(|_| GkError::Internal("the access log writer stopped".into()))?;
        rx.await
            .map_err(|_| GkError::Internal("the access log writer stopped".into()))?
            .map_err(GkError::Internal)
    }

    /// The log's length and head.
    pub async fn head(&self) -> (u64, B256) {
        let h = self.log.lock().await;
        (h.seq, h.head)
    }

    /// Takes one token of `who`'s bucket.
    fn rate_ok(&self, who: Address) -> bool {
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        let (tokens, last) = b.entry(who).or_insert((self.limits.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.limits.rate_per_sec)
            .min(self.limits.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Remembers a nonce until its request expires; false if it was seen.
    pub(crate) fn use_nonce(&self, who: Address, nonce: B256, expires_at: u64) -> bool {
        let Ok(mut n) = self.nonces.lock() else {
            return false;
        };
        n.use_nonce(who, nonce, expires_at, now_secs())
    }
}

/// Below this many remembered nonces, expired ones are never swept.
const NONCE_SWEEP_MIN: usize = 100_000;

/// The nonces seen, each until its request expires. Expired ones are swept when the map has
/// grown to twice its size after the last sweep, so a sweep costs O(1) per request amortized
/// however many requests are live.
pub(crate) struct Nonces {
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

/// One batch of log entries, by column.
#[derive(Default)]
struct LogColumns {
    seq: Vec<i64>,
    at: Vec<i64>,
    requester: Vec<Vec<u8>>,
    record: Vec<Vec<u8>>,
    patient: Vec<Vec<u8>>,
    allowed: Vec<bool>,
    reason: Vec<String>,
    nonce: Vec<Vec<u8>>,
    expires: Vec<i64>,
    leaf: Vec<Vec<u8>>,
    prev: Vec<Vec<u8>>,
    entry: Vec<Vec<u8>>,
}

type LogJob = (Access, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Writes the access log: takes what is waiting (up to 512 entries), chains it after the
/// head, inserts it in one statement (its own transaction, committed before the statement
/// returns), then answers every waiting request; requests that arrive meanwhile make the next
/// batch. One batch at a time, so the log on disk never has a gap, crash or not. After a
/// failed batch, chaining starts again from the head the database has.
async fn log_writer(
    pool: PgPool,
    log: Arc<Mutex<LogHead>>,
    mut rx: tokio::sync::mpsc::Receiver<LogJob>,
) {
    let mut batch: Vec<LogJob> = Vec::with_capacity(512);
    let (mut seq, mut prev) = {
        let h = log.lock().await;
        (h.seq, h.head)
    };
    while rx.recv_many(&mut batch, 512).await > 0 {
        let jobs: Vec<LogJob> = std::mem::take(&mut batch);
        let (next_seq, next_prev, c) = chain_batch(seq, prev, &jobs);
        let result = match insert_batch(&pool, &c).await {
            Ok(()) => {
                (seq, prev) = (next_seq, next_prev);
                let mut h = log.lock().await;
                h.seq = next_seq;
                h.head = next_prev;
                Ok(())
            }
            Err(e) => Err(format!("cannot write the access log: {e}")),
        };
        let failed = result.is_err();
        for (_, done) in jobs {
            let _ = done.send(result.clone());
        }
        if failed {
            // A statement that reported an error may still have been committed (the
            // connection lost after the commit), so the head is read back from the database,
            // not taken from memory.
            (seq, prev) = reread_head(&pool, &log).await;
        }
    }
}

/// Inserts a batch's rows in one statement, which is its own transaction: all or none.
async fn insert_batch(pool: &PgPool, c: &LogColumns) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO gk_access_log (seq, at_ms, requester, record_id, patient, allowed, reason, nonce, expires_at, leaf, prev_hash, entry_hash)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bool[], $7::text[], $8::bytea[], $9::bigint[], $10::bytea[], $11::bytea[], $12::bytea[])",
    )
    .bind(&c.seq)
    .bind(&c.at)
    .bind(&c.requester)
    .bind(&c.record)
    .bind(&c.patient)
    .bind(&c.allowed)
    .bind(&c.reason)
    .bind(&c.nonce)
    .bind(&c.expires)
    .bind(&c.leaf)
    .bind(&c.prev)
    .bind(&c.entry)
    .execute(pool)
    .await?;
    Ok(())
}

/// The log's head as the database has it, written into `log`; retried until it can be read.
async fn reread_head(pool: &PgPool, log: &Mutex<LogHead>) -> (u64, B256) {
    let mut wait = Duration::from_millis(50);
    loop {
        let row: Result<Option<(i64, Vec<u8>)>, _> =
            sqlx::query_as("SELECT seq, entry_hash FROM gk_access_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(pool)
                .await;
        match row {
            Ok(found) => {
                let (seq, head) = found
                    .map(|(seq, h)| (seq as u64, B256::from_slice(&h)))
                    .unwrap_or((0, B256::ZERO));
                let mut h = log.lock().await;
                h.seq = seq;
                h.head = head;
                return (seq, head);
            }
            Err(e) => {
                tracing::error!(target: "medrec::gatekeeper", error = %e, "reading the access log's head");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Chains `jobs` after (`seq`, `prev`): the new head and the rows to insert.
fn chain_batch(mut seq: u64, mut prev: B256, jobs: &[LogJob]) -> (u64, B256, LogColumns) {
    let mut c = LogColumns::default();
    let at = now_ms();
    for (a, _) in jobs {
        seq += 1;
        let leaf = log::leaf(seq, at, a);
        let entry = log::chain(prev, leaf);
        c.seq.push(seq as i64);
        c.at.push(at as i64);
        c.requester.push(a.requester.to_vec());
        c.record.push(a.record_id.to_vec());
        c.patient.push(a.patient.to_vec());
        c.allowed.push(a.allowed);
        c.reason.push(a.reason.clone());
        c.nonce.push(a.nonce.to_vec());
        c.expires.push(a.expires_at as i64);
        c.leaf.push(leaf.to_vec());
        c.prev.push(prev.to_vec());
        c.entry.push(entry.to_vec());
        prev = entry;
    }
    (seq, prev, c)
}

/// The routes.
pub fn router(gk: Arc<Gatekeeper>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/v1/records",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/records/{record_id}/read",
            post(read).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/log",
            post(access_log).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/research/query",
            post(crate::research::query).layer(DefaultBodyLimit::disable()),
        )
        .fallback(|| async { err(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(gk)
}

pub(crate) fn err(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The one answer every refused read gets, whatever the reason.
fn denied() -> Response {
    err(StatusCode::FORBIDDEN, "denied", "request denied")
}

async fn health(State(gk): State<Arc<Gatekeeper>>) -> Response {
    let (entries, head) = gk.head().await;
    Json(json!({"status": "ok", "holder": gk.holder, "logEntries": entries, "logHead": head}))
        .into_response()
}

/// Reads at most `limit` bytes of the body; `None` if it is larger.
async fn limited(body: Body, limit: usize) -> Option<Bytes> {
    axum::body::to_bytes(body, limit).await.ok()
}

/// The signer of an EIP-712 message, from a 65-byte hex signature (r, s, v with v 0, 1, 27 or
/// 28); `None` when the signature is malformed or recovers nothing.
pub(crate) fn recover<T: SolStruct>(msg: &T, domain: &Eip712Domain, sig: &str) -> Option<Address> {
    let raw = alloy::hex::decode(sig.trim_start_matches("0x")).ok()?;
    recover_prehash(&msg.eip712_signing_hash(domain), &raw)
}

/// Recovers the address that signed `hash`, with libsecp256k1 (the same answer as alloy's
/// `Signature::recover_address_from_prehash`, several times faster).
pub(crate) fn recover_prehash(hash: &B256, raw: &[u8]) -> Option<Address> {
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

/// Checks a signed request's time window; the reason if it fails.
pub(crate) fn check_window(issued_at: u64, expires_at: u64) -> Result<(), &'static str> {
    let now = now_secs();
    if issued_at > now + SKEW_SECS {
        return Err("issued in the future");
    }
    if expires_at <= now {
        return Err("expired");
    }
    if expires_at <= issued_at || expires_at - issued_at > MAX_VALIDITY_SECS {
        return Err("validity window too long or empty");
    }
    Ok(())
}

#[derive(Deserialize)]
struct SignedRead {
    request: RecordRequest,
    signature: String,
}

async fn read(State(gk): State<Arc<Gatekeeper>>, Path(id): Path<String>, req: Request) -> Response {
    let path_id: B256 = id.parse().unwrap_or_default();
    let mut access = Access {
        requester: Address::ZERO,
        record_id: path_id,
        patient: Address::ZERO,
        allowed: false,
        reason: String::new(),
        nonce: B256::ZERO,
        expires_at: 0,
    };
    let outcome = decide(&gk, &mut access, req.into_body()).await;
    // Log first: an answer that cannot be logged is not given.
    if let Err(e) = gk.append(&access).await {
        tracing::error!(target: "medrec::gatekeeper", error = %e, "cannot write the access log");
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the access log is unavailable",
        );
    }
    match outcome {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/fhir+json")], bytes).into_response(),
        Err(r) => r,
    }
}

/// Runs every check of a read; fills `access` with what the log must say.
async fn decide(gk: &Gatekeeper, a: &mut Access, body: Body) -> Result<Vec<u8>, Response> {
    let Some(bytes) = limited(body, gk.limits.max_request_bytes).await else {
        a.reason = "oversized request".into();
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body too large",
        ));
    };
    let Ok(signed) = serde_json::from_slice::<SignedRead>(&bytes) else {
        a.reason = "malformed request".into();
        return Err(err(
            StatusCode::BAD_REQUEST,
            "malformed",
            "expected {\"request\": {...}, \"signature\": \"0x...\"}",
        ));
    };
    let r = &signed.request;
    a.requester = r.requester;
    a.nonce = B256::from(r.nonce.to_be_bytes::<32>());
    a.expires_at = r.expiresAt;
    if r.recordId != a.record_id {
        a.reason = "record id differs from the path".into();
        return Err(denied());
    }
    match recover(r, &gk.domain, &signed.signature) {
        Some(signer) if signer == r.requester => {}
        Some(_) => {
            a.reason = "signer is not the requester".into();
            return Err(denied());
        }
        None => {
            a.reason = "invalid signature".into();
            return Err(denied());
        }
    }
    if !gk.rate_ok(r.requester) {
        a.reason = "rate limited".into();
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests",
        ));
    }
    if r.audience != gk.holder {
        a.reason = "addressed to another holder".into();
        return Err(denied());
    }
    if let Err(why) = check_window(r.issuedAt, r.expiresAt) {
        a.reason = why.into();
        return Err(denied());
    }
    if !gk.use_nonce(r.requester, a.nonce, r.expiresAt) {
        a.reason = "replayed nonce".into();
        return Err(denied());
    }
    let (record, fetched) = match gk.records.get(&a.record_id) {
        Some(r) => (r, false),
        None => match fetch_record(&gk.pool, a.record_id).await {
            Ok(Some(r)) => (Arc::new(r), true),
            Ok(None) => {
                a.reason = "unknown record".into();
                return Err(denied());
            }
            Err(e) => {
                a.reason = format!("database: {e}");
                return Err(err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "try again later",
                ));
            }
        },
    };
    let (patient, category) = (record.patient, record.category);
    a.patient = patient;
    // Ask the chain itself, now: a cache could miss a revocation.
    match gk
        .consent
        .canRead(r.requester, patient, category)
        .call()
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            a.reason = "the chain does not allow it".into();
            return Err(denied());
        }
        Err(e) => {
            a.reason = format!("chain unavailable: {e}");
            return Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try again later",
            ));
        }
    }
    match gk.key.open(a.record_id.as_slice(), &record.sealed) {
        Ok(plain) => {
            // Kept only once the chain allowed a read of it: requests that are refused do
            // not decide what stays in memory.
            if fetched {
                gk.records.put(a.record_id, record.clone());
            }
            a.allowed = true;
            a.reason = "allowed".into();
            Ok(plain)
        }
        Err(e) => {
            a.reason = e.to_string();
            Err(err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "integrity",
                "the stored record is damaged",
            ))
        }
    }
}

/// A stored record's patient, category and sealed bytes.
async fn fetch_record(pool: &PgPool, id: B256) -> Result<Option<Cached>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT patient, category, data_nonce, ciphertext, key_nonce, wrapped_key FROM gk_records WHERE record_id = $1",
    )
    .bind(id.to_vec())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| Cached {
        patient: Address::from_slice(&row.get::<Vec<u8>, _>("patient")),
        category: row.get::<i16, _>("category") as u8,
        sealed: Sealed {
            data_nonce: row.get("data_nonce"),
            ciphertext: row.get("ciphertext"),
            key_nonce: row.get("key_nonce"),
            wrapped_key: row.get("wrapped_key"),
        },
    }))
}

/// The record id the gatekeeper gives a record: keccak256(holder, patient, content hash),
/// the same as `medrec anchor`'s default.
pub fn record_id(holder: Address, patient: Address, content_hash: B256) -> B256 {
    keccak256((holder, patient, content_hash).abi_encode())
}

async fn upload(State(gk): State<Arc<Gatekeeper>>, headers: HeaderMap, req: Request) -> Response {
    let Some(upload) = headers
        .get("x-medrec-upload")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Upload>(v).ok())
    else {
        return err(
            StatusCode::BAD_REQUEST,
            "malformed",
            "missing or bad x-medrec-upload header",
        );
    };
    let Some(sig) = headers
        .get("x-medrec-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return err(
            StatusCode::BAD_REQUEST,
            "malformed",
            "missing x-medrec-signature header",
        );
    };
    if recover(&upload, &gk.domain, sig) != Some(gk.holder) || upload.holder != gk.holder {
        return err(
            StatusCode::FORBIDDEN,
            "denied",
            "uploads must be signed by this gatekeeper's holder",
        );
    }
    let now = now_secs();
    if upload.issuedAt > now + SKEW_SECS || upload.issuedAt + MAX_VALIDITY_SECS < now {
        return err(
            StatusCode::FORBIDDEN,
            "denied",
            "the upload signature is not fresh",
        );
    }
    let Some(bytes) = limited(req.into_body(), gk.limits.max_record_bytes).await else {
        return err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "record too large",
        );
    };
    let hash = B256::from_slice(&Sha256::digest(&bytes));
    if hash != upload.contentHash {
        return err(
            StatusCode::BAD_REQUEST,
            "hash_mismatch",
            "the body does not hash to contentHash",
        );
    }
    let is_fhir = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .is_some_and(|v| v.get("resourceType").is_some_and(|t| t.is_string()));
    if !is_fhir {
        return err(
            StatusCode::BAD_REQUEST,
            "not_fhir",
            "a record must be a FHIR R4 JSON resource",
        );
    }
    if upload.category > 63 {
        return err(
            StatusCode::BAD_REQUEST,
            "bad_category",
            "category must be 0 to 63",
        );
    }
    let nonce = B256::from(upload.nonce.to_be_bytes::<32>());
    match sqlx::query("INSERT INTO gk_upload_nonces (nonce) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(nonce.to_vec())
        .execute(&gk.pool)
        .await
    {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return err(StatusCode::FORBIDDEN, "denied", "upload nonce already used"),
        Err(_) => {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try again later",
            );
        }
    }
    let id = record_id(gk.holder, upload.patient, hash);
    let sealed = match gk.key.seal(id.as_slice(), &bytes) {
        Ok(s) => s,
        Err(_) => {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "encryption failed",
            );
        }
    };
    let facts = serde_json::from_slice::<serde_json::Value>(&bytes)
        .map(|v| crate::facts::extract(&v))
        .unwrap_or_default();
    let inserted = store(&gk.pool, id, &upload, hash, &bytes, &sealed, &facts).await;
    match inserted {
        Ok(r) => (
            if r.rows_affected() == 1 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(
                json!({"recordId": id, "contentHash": hash, "size": bytes.len(),
                        "stored": r.rows_affected() == 1}),
            ),
        )
            .into_response(),
        Err(_) => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "try again later",
        ),
    }
}

/// Stores a sealed record and its facts in one transaction; `rows_affected` 0 if it existed.
async fn store(
    pool: &PgPool,
    id: B256,
    upload: &Upload,
    hash: B256,
    bytes: &[u8],
    sealed: &Sealed,
    facts: &crate::facts::Facts,
) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let res = sqlx::query(
        "INSERT INTO gk_records (record_id, patient, category, content_hash, size, data_nonce, ciphertext, key_nonce, wrapped_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (record_id) DO NOTHING",
    )
    .bind(id.to_vec())
    .bind(upload.patient.to_vec())
    .bind(upload.category as i16)
    .bind(hash.to_vec())
    .bind(bytes.len() as i32)
    .bind(&sealed.data_nonce)
    .bind(&sealed.ciphertext)
    .bind(&sealed.key_nonce)
    .bind(&sealed.wrapped_key)
    .execute(&mut *tx)
    .await?;
    if res.rows_affected() == 1 {
        if let Some((gender, birth)) = &facts.demographics {
            sqlx::query(
                "INSERT INTO gk_patients (patient, gender, birth_date) VALUES ($1, $2, $3::date)
                 ON CONFLICT (patient) DO UPDATE SET gender = EXCLUDED.gender, birth_date = EXCLUDED.birth_date",
            )
            .bind(upload.patient.to_vec())
            .bind(gender)
            .bind(birth)
            .execute(&mut *tx)
            .await?;
        }
        if !facts.codes.is_empty() {
            let (mut kinds, mut systems, mut codes, mut values) = (vec![], vec![], vec![], vec![]);
            for (kind, system, code, value) in &facts.codes {
                kinds.push(*kind);
                systems.push(system.as_str());
                codes.push(code.as_str());
                values.push(*value);
            }
            sqlx::query(
                "INSERT INTO gk_facts (record_id, patient, kind, system, code, value)
                 SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::float8[])
                 ON CONFLICT DO NOTHING",
            )
            .bind(id.to_vec())
            .bind(upload.patient.to_vec())
            .bind(&kinds)
            .bind(&systems)
            .bind(&codes)
            .bind(&values)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(res)
}

#[derive(Deserialize)]
struct SignedLog {
    request: LogRequest,
    signature: String,
}

async fn access_log(State(gk): State<Arc<Gatekeeper>>, req: Request) -> Response {
    let Some(bytes) = limited(req.into_body(), gk.limits.max_request_bytes).await else {
        return err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "request body too large",
        );
    };
    let Ok(signed) = serde_json::from_slice::<SignedLog>(&bytes) else {
        return err(
            StatusCode::BAD_REQUEST,
            "malformed",
            "expected {\"request\": {...}, \"signature\": \"0x...\"}",
        );
    };
    let r = &signed.request;
    if recover(r, &gk.domain, &signed.signature) != Some(r.patient)
        || r.audience != gk.holder
        || check_window(r.issuedAt, r.expiresAt).is_err()
        || !gk.use_nonce(
            r.patient,
            B256::from(r.nonce.to_be_bytes::<32>()),
            r.expiresAt,
        )
    {
        return denied();
    }
    let rows = match sqlx::query(
        "SELECT seq, at_ms, requester, record_id, patient, allowed, reason, nonce, leaf, entry_hash
         FROM gk_access_log ORDER BY seq",
    )
    .fetch_all(&gk.pool)
    .await
    {
        Ok(rows) => rows,
        Err(_) => {
            return err(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "try again later",
            );
        }
    };
    let entries: Vec<Shown> = rows
        .iter()
        .map(|row| {
            let patient = Address::from_slice(&row.get::<Vec<u8>, _>("patient"));
            let mine = patient == r.patient;
            Shown {
                seq: row.get::<i64, _>("seq") as u64,
                leaf: B256::from_slice(&row.get::<Vec<u8>, _>("leaf")),
                entry_hash: B256::from_slice(&row.get::<Vec<u8>, _>("entry_hash")),
                detail: mine.then(|| Detail {
                    at_ms: row.get::<i64, _>("at_ms") as u64,
                    requester: Address::from_slice(&row.get::<Vec<u8>, _>("requester")),
                    record_id: B256::from_slice(&row.get::<Vec<u8>, _>("record_id")),
                    patient,
                    allowed: row.get("allowed"),
                    reason: row.get("reason"),
                    nonce: B256::from_slice(&row.get::<Vec<u8>, _>("nonce")),
                }),
            }
        })
        .collect();
    let head = entries.last().map(|e| e.entry_hash).unwrap_or_default();
    Json(json!({"holder": gk.holder, "entries": entries, "head": head, "count": entries.len()}))
        .into_response()
}

/// Anchors the log head on chain every `every`, when the log grew since the last anchor.
/// Failures are logged and retried at the next tick: reads never wait for the chain.
pub async fn anchor_loop(
    gk: Arc<Gatekeeper>,
    registry: medrec_bindings::RecordRegistry::RecordRegistryInstance<DynProvider>,
    every: Duration,
) {
    let mut anchored = registry
        .accessLogOf(gk.holder)
        .call()
        .await
        .map(|a| a.entries)
        .unwrap_or_default();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let (entries, head) = gk.head().await;
        if entries <= anchored {
            continue;
        }
        let sent = async {
            registry
                .anchorAccessLog(head, entries)
                .send()
                .await?
                .get_receipt()
                .await
                .map_err(alloy::contract::Error::from)
        };
        match sent.await {
            Ok(r) if r.status() => {
                anchored = entries;
                tracing::info!(target: "medrec::gatekeeper", entries, %head, "anchored the access log head");
            }
            Ok(r) => {
                tracing::warn!(target: "medrec::gatekeeper", tx = %r.transaction_hash, "anchoring reverted")
            }
            Err(e) => {
                tracing::warn!(target: "medrec::gatekeeper", error = %e, "cannot anchor the access log head; will retry")
            }
        }
    }
}

/// Keeps the type used in signatures of tests and tools in one place.
pub type ReadRequest = RecordRequest;

/// How long a client should wait for a read before giving up.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Signature;
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
