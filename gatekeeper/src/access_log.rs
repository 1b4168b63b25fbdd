//! The access log: every read and refusal of a request signed for this holder is appended
//! (group commit, one batch at a time) before its answer leaves, as a leaf of a Merkle tree
//! (RFC 6962, `medrec_protocol::merkle`) kept whole in memory; the pages and proofs of
//! `POST /v1/log`; the counters of requests refused without an entry; and the loop that
//! anchors the tree's root on chain.

use crate::auth::RateLimiter;
use crate::error::GkError;
use alloy::primitives::{Address, B256};
use alloy::providers::DynProvider;
use backon::{ExponentialBuilder, Retryable};
use medrec_bindings::RecordRegistry::RecordRegistryInstance;
use medrec_protocol::access_log::{self as log, Access, Consistency, Entry};
use medrec_protocol::merkle::Tree;
use sqlx::{PgPool, Row};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Most entries inserted in one batch.
const BATCH: usize = 512;

/// Rows read at a time when the tree is loaded at start.
const LOAD_BATCH: i64 = 50_000;

/// Sustained log requests per second per requester (each a page).
pub const LOG_RATE_PER_SEC: f64 = 10.0;

/// Burst of log requests per requester.
pub const LOG_BURST: f64 = 40.0;

/// An entry to append, and where to say that it was committed: `true` when its record turned
/// out erased (the entry was written refused, "erased"; its read must not be answered).
type LogJob = (Access, oneshot::Sender<Result<bool, String>>);

/// Why a read request was refused without an entry in the log: it is not a request signed
/// for this holder, so it concerns no one here and must not fill the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlogged {
    /// The body was larger than a request may be.
    Oversized,
    /// The body is not a signed request.
    Malformed,
    /// The signature recovers no one.
    Unsigned,
    /// Signed for another holder.
    WrongAudience,
}

impl Unlogged {
    const ALL: [Unlogged; 4] = [
        Unlogged::Oversized,
        Unlogged::Malformed,
        Unlogged::Unsigned,
        Unlogged::WrongAudience,
    ];

    /// The label of its metric.
    pub fn label(self) -> &'static str {
        match self {
            Unlogged::Oversized => "oversized",
            Unlogged::Malformed => "malformed",
            Unlogged::Unsigned => "unsigned",
            Unlogged::WrongAudience => "wrong_audience",
        }
    }
}

/// The access log: the tree in memory, the writer task's queue, the limiter of log requests
/// and the counters of refusals that were not logged.
pub struct AccessLog {
    tree: Arc<RwLock<Tree>>,
    tx: mpsc::Sender<LogJob>,
    /// Entries written before the log became a tree.
    pub legacy_entries: u64,
    /// Log requests per requester.
    pub rate: RateLimiter,
    unlogged: [AtomicU64; 4],
}

impl AccessLog {
    /// Computes the tree leaves of entries written before the log became a tree, loads the
    /// tree from the database and starts the writer.
    pub async fn start(pool: PgPool) -> Result<Self, GkError> {
        backfill_leaves(&pool).await?;
        let tree = load_tree(&pool).await?;
        let legacy_entries: i64 = sqlx::query_scalar("SELECT legacy_entries FROM gk_log_tree")
            .fetch_optional(&pool)
            .await?
            .unwrap_or(0);
        let tree = Arc::new(RwLock::new(tree));
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer(pool, tree.clone(), rx));
        Ok(Self {
            tree,
            tx,
            legacy_entries: legacy_entries as u64,
            rate: RateLimiter::new(LOG_RATE_PER_SEC, LOG_BURST)
                .ok_or_else(|| GkError::Internal("bad log rate".into()))?,
            unlogged: Default::default(),
        })
    }

    /// Appends one entry and returns once it is committed. Entries that arrive together are
    /// committed in one transaction, in arrival order. An allowed entry whose record is
    /// erased, as the database has it in that transaction, is written refused ("record
    /// erased") and
    /// `true` is returned: the read it logs must not be answered, even from another replica's
    /// memory (issue 16, step 7).
    pub async fn append(&self, a: &Access) -> Result<bool, GkError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((a.clone(), tx))
            .await
            .map_err(|_| GkError::Internal("the access log writer stopped".into()))?;
        rx.await
            .map_err(|_| GkError::Internal("the access log writer stopped".into()))?
            .map_err(GkError::Internal)
    }

    /// The log's size and root.
    pub async fn head(&self) -> (u64, B256) {
        let t = self.read_tree();
        let n = t.len();
        (n, t.root(n).unwrap_or_default())
    }

    /// Counts a request refused without an entry.
    pub fn count_unlogged(&self, why: Unlogged) {
        self.unlogged[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The refusals not logged, by reason.
    pub fn unlogged(&self) -> Vec<(&'static str, u64)> {
        Unlogged::ALL
            .iter()
            .map(|u| {
                (
                    u.label(),
                    self.unlogged[*u as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// The tree, for reading; a writer that panicked left it whole (it pushes after commit).
    fn read_tree(&self) -> std::sync::RwLockReadGuard<'_, Tree> {
        self.tree.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The root at `size`, inclusion proofs of `entries` and the `consistency` proofs asked
    /// for, all against the tree as it is; `None` when a size is beyond it.
    pub fn prove(
        &self,
        size: u64,
        entries: &mut [Entry],
        consistency: &[[u64; 2]],
    ) -> Option<(B256, Vec<Consistency>)> {
        let t = self.read_tree();
        let root = t.root(size)?;
        for e in entries.iter_mut() {
            e.proof = t.inclusion(e.index, size)?;
        }
        let proofs = consistency
            .iter()
            .map(|&[old, new]| {
                Some(Consistency {
                    old,
                    new,
                    proof: t.consistency(old, new)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some((root, proofs))
    }

    /// The log's size now.
    pub fn size(&self) -> u64 {
        self.read_tree().len()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// One row of the log as stored.
type LogRow = (i64, i64, Vec<u8>, Vec<u8>, Vec<u8>, bool, String, Vec<u8>);

const ROW_COLUMNS: &str = "seq, at_ms, requester, record_id, patient, allowed, reason, nonce";

fn entry_of(row: LogRow) -> Entry {
    let (seq, at, requester, record, patient, allowed, reason, nonce) = row;
    Entry {
        index: seq as u64 - 1,
        at_ms: at as u64,
        requester: Address::from_slice(&requester),
        record_id: B256::from_slice(&record),
        patient: Address::from_slice(&patient),
        allowed,
        reason,
        nonce: B256::from_slice(&nonce),
        proof: vec![],
    }
}

/// Computes `tree_leaf` for the entries written before the log became a tree, a batch at a
/// time.
async fn backfill_leaves(pool: &PgPool) -> Result<(), sqlx::Error> {
    loop {
        let rows: Vec<LogRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} FROM gk_access_log WHERE tree_leaf IS NULL ORDER BY seq LIMIT {LOAD_BATCH}"
        )))
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let (seqs, leaves): (Vec<i64>, Vec<Vec<u8>>) = rows
            .into_iter()
            .map(|r| {
                let e = entry_of(r);
                (e.index as i64 + 1, e.leaf().to_vec())
            })
            .unzip();
        sqlx::query(
            "UPDATE gk_access_log l SET tree_leaf = u.leaf
             FROM UNNEST($1::bigint[], $2::bytea[]) AS u(seq, leaf) WHERE l.seq = u.seq",
        )
        .bind(&seqs)
        .bind(&leaves)
        .execute(pool)
        .await?;
        tracing::info!(target: "medrec::gatekeeper", entries = seqs.len(), "computed the tree leaves of entries of the old hash-chain log");
    }
}

/// The tree from the stored leaves, in order; the log must have no gap.
async fn load_tree(pool: &PgPool) -> Result<Tree, GkError> {
    let mut tree = Tree::new();
    loop {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, tree_leaf FROM gk_access_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(tree.len() as i64)
        .bind(LOAD_BATCH)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(tree);
        }
        for (seq, leaf) in rows {
            if seq as u64 != tree.len() + 1 || leaf.len() != 32 {
                return Err(GkError::Internal(format!(
                    "the access log is damaged at entry {}",
                    tree.len() + 1
                )));
            }
            tree.push(B256::from_slice(&leaf));
        }
    }
}

/// The log's size as the database has it.
async fn stored_size(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let n: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM gk_access_log")
        .fetch_one(pool)
        .await?;
    Ok(n.unwrap_or(0) as u64)
}

/// The (requester, nonce) of every logged request still valid at `now`, with its expiry: a
/// restarted gatekeeper still refuses their replays.
pub async fn live_nonces(
    pool: &PgPool,
    now: u64,
) -> Result<Vec<((Address, B256), u64)>, sqlx::Error> {
    let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT requester, nonce, expires_at FROM gk_access_log WHERE expires_at > $1",
    )
    .bind(now as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(r, n, e)| ((Address::from_slice(&r), B256::from_slice(&n)), e as u64))
        .collect())
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
    leaves: Vec<B256>,
}

/// Writes the access log: takes what is waiting (up to [`BATCH`] entries), numbers it after
/// the last entry, inserts it in one statement (its own transaction, committed before the
/// statement returns), adds its leaves to the tree, then answers every waiting request;
/// requests that arrive meanwhile make the next batch. One batch at a time, so the log on
/// disk never has a gap, crash or not. After a failed batch, numbering starts again from the
/// size the database has (and a batch committed despite the error is reloaded into the tree).
async fn writer(pool: PgPool, tree: Arc<RwLock<Tree>>, mut rx: mpsc::Receiver<LogJob>) {
    let mut batch: Vec<LogJob> = Vec::with_capacity(BATCH);
    let mut size = tree.read().map(|t| t.len()).unwrap_or_default();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut jobs: Vec<LogJob> = std::mem::take(&mut batch);
        let mut erased = vec![false; jobs.len()];
        let result = match insert_batch(&pool, size, &mut jobs, &mut erased).await {
            Ok(c) => {
                let mut t = tree.write().unwrap_or_else(|p| p.into_inner());
                for l in &c.leaves {
                    t.push(*l);
                }
                size = t.len();
                Ok(())
            }
            Err(e) => Err(format!("cannot write the access log: {e}")),
        };
        let failed = result.is_err();
        for ((_, done), erased) in jobs.into_iter().zip(erased) {
            let _ = done.send(result.clone().map(|()| erased));
        }
        if failed {
            // A statement that reported an error may still have been committed (the
            // connection lost after the commit), so the size is read back from the database,
            // not taken from memory.
            size = resync(&pool, &tree).await;
        }
    }
}

/// Inserts a batch's rows, numbered after `size`, in one transaction: all or none. In that
/// transaction the records of the batch's allowed entries are locked (shared, so an erasure
/// waits for the reads logged before it) and an allowed entry of an erased record is turned
/// into a refusal ("record erased"), its place in `erased` set; returns the rows written.
async fn insert_batch(
    pool: &PgPool,
    size: u64,
    jobs: &mut [LogJob],
    erased: &mut [bool],
) -> Result<LogColumns, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Vec<u8>> = jobs
        .iter()
        .filter(|(a, _)| a.allowed)
        .map(|(a, _)| a.record_id.to_vec())
        .collect();
    if !ids.is_empty() {
        let gone: Vec<(Vec<u8>, bool)> = sqlx::query_as(
            "SELECT record_id, erased_at IS NOT NULL FROM gk_records WHERE record_id = ANY($1)
             ORDER BY record_id FOR SHARE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        for (id, is_erased) in gone {
            if !is_erased {
                continue;
            }
            for ((a, _), e) in jobs.iter_mut().zip(erased.iter_mut()) {
                if a.allowed && a.record_id.as_slice() == id.as_slice() {
                    a.allowed = false;
                    a.reason = medrec_protocol::records::ERASED_READ_REASON.into();
                    *e = true;
                }
            }
        }
    }
    let c = number_batch(size, jobs);
    sqlx::query(
        "INSERT INTO gk_access_log (seq, at_ms, requester, record_id, patient, allowed, reason, nonce, expires_at, tree_leaf)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bool[], $7::text[], $8::bytea[], $9::bigint[], $10::bytea[])",
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
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(c)
}

/// The log's size as the database has it, with the tree brought up to it; retried until it
/// can be read (every 50 ms at first, then at most every 5 s): the writer must not number
/// entries on a guess.
async fn resync(pool: &PgPool, tree: &RwLock<Tree>) -> u64 {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times();
    loop {
        let read = (|| async {
            let stored = stored_size(pool).await?;
            let have = tree.read().map(|t| t.len()).unwrap_or_default();
            let missing: Vec<Vec<u8>> = if stored > have {
                sqlx::query_scalar(
                    "SELECT tree_leaf FROM gk_access_log WHERE seq > $1 ORDER BY seq",
                )
                .bind(have as i64)
                .fetch_all(pool)
                .await?
            } else {
                vec![]
            };
            Ok::<_, sqlx::Error>(missing)
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .notify(|e, _| {
            tracing::error!(target: "medrec::gatekeeper", error = %e, "reading the access log's size");
        });
        if let Ok(missing) = read.await {
            let mut t = tree.write().unwrap_or_else(|p| p.into_inner());
            for l in missing {
                t.push(B256::from_slice(&l));
            }
            return t.len();
        }
    }
}

/// Numbers `jobs` after the first `size` entries: the rows to insert and their leaves.
fn number_batch(size: u64, jobs: &[LogJob]) -> LogColumns {
    let mut c = LogColumns::default();
    let at = now_ms();
    for (i, (a, _)) in jobs.iter().enumerate() {
        let index = size + i as u64;
        let leaf = log::leaf(index, at, a);
        c.seq.push(index as i64 + 1);
        c.at.push(at as i64);
        c.requester.push(a.requester.to_vec());
        c.record.push(a.record_id.to_vec());
        c.patient.push(a.patient.to_vec());
        c.allowed.push(a.allowed);
        c.reason.push(a.reason.clone());
        c.nonce.push(a.nonce.to_vec());
        c.expires.push(a.expires_at as i64);
        c.leaf.push(leaf.to_vec());
        c.leaves.push(leaf);
    }
    c
}

/// Up to `limit` entries with index in `[from, size)`, in order: every one, or only those of
/// `patient`'s records. One bounded query: a page never holds more than `limit` rows.
pub async fn page(
    pool: &PgPool,
    patient: Option<Address>,
    from: u64,
    size: u64,
    limit: u32,
) -> Result<Vec<Entry>, sqlx::Error> {
    let rows: Vec<LogRow> = match patient {
        Some(p) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} FROM gk_access_log WHERE patient = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        )))
        .bind(p.to_vec()),
        None => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} FROM gk_access_log WHERE $1::bytea IS NULL AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        )))
        .bind(None::<Vec<u8>>),
    }
    .bind(from as i64)
    .bind(size as i64)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(entry_of).collect())
}

/// Whether `who` is the patient of a record stored here.
pub async fn is_patient(pool: &PgPool, who: Address) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM gk_records WHERE patient = $1) AS here")
        .bind(who.to_vec())
        .fetch_one(pool)
        .await?;
    Ok(row.get("here"))
}

/// Anchors the tree's root at its size on chain every `every`, when the log grew since the
/// last anchor.
/// Failures are logged and retried at the next tick: reads never wait for the chain.
pub async fn anchor_loop(
    log: Arc<AccessLog>,
    holder: Address,
    registry: RecordRegistryInstance<DynProvider>,
    every: Duration,
) {
    let mut anchored = registry
        .accessLogOf(holder)
        .call()
        .await
        .map(|a| a.entries)
        .unwrap_or_default();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let (entries, head) = log.head().await;
        if entries <= anchored {
            continue;
        }
        let sent = async {
            registry
                .anchorAccessLog(holder, head, entries)
                .send()
                .await?
                .get_receipt()
                .await
                .map_err(alloy::contract::Error::from)
        };
        match sent.await {
            Ok(r) if r.status() => {
                anchored = entries;
                tracing::info!(target: "medrec::gatekeeper", entries, %head, "anchored the access log root");
            }
            Ok(r) => {
                tracing::warn!(target: "medrec::gatekeeper", tx = %r.transaction_hash, "anchoring reverted")
            }
            Err(e) => {
                tracing::warn!(target: "medrec::gatekeeper", error = %e, "cannot anchor the access log root; will retry")
            }
        }
    }
}
