//! The hash-chained access log: every read and refusal is appended (group commit, one batch
//! at a time) before its answer leaves; the patient's view of it; and the loop that anchors
//! its head on chain.

use crate::error::GkError;
use alloy::primitives::{Address, B256};
use alloy::providers::DynProvider;
use backon::{ExponentialBuilder, Retryable};
use medrec_bindings::RecordRegistry::RecordRegistryInstance;
use medrec_protocol::access_log::{self as log, Access, Detail, Shown};
use sqlx::{PgPool, Row};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Most entries chained and inserted in one batch.
const BATCH: usize = 512;

type LogJob = (Access, oneshot::Sender<Result<(), String>>);

/// The log's length and head.
struct LogHead {
    seq: u64,
    head: B256,
}

/// The access log: its head in memory and the writer task's queue.
pub struct AccessLog {
    head: Arc<Mutex<LogHead>>,
    tx: mpsc::Sender<LogJob>,
}

impl AccessLog {
    /// Loads the head from the database and starts the writer.
    pub async fn start(pool: PgPool) -> Result<Self, GkError> {
        let (seq, head) = read_head(&pool).await?;
        let head = Arc::new(Mutex::new(LogHead { seq, head }));
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer(pool, head.clone(), rx));
        Ok(Self { head, tx })
    }

    /// Appends one entry to the chained log and returns once it is committed. Entries that
    /// arrive together are chained in arrival order and committed in one transaction.
    pub async fn append(&self, a: &Access) -> Result<(), GkError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((a.clone(), tx))
            .await
            .map_err(|_| GkError::Internal("the access log writer stopped".into()))?;
        rx.await
            .map_err(|_| GkError::Internal("the access log writer stopped".into()))?
            .map_err(GkError::Internal)
    }

    /// The log's length and head.
    pub async fn head(&self) -> (u64, B256) {
        let h = self.head.lock().await;
        (h.seq, h.head)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The log's length and head as the database has them.
async fn read_head(pool: &PgPool) -> Result<(u64, B256), sqlx::Error> {
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, entry_hash FROM gk_access_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await?;
    Ok(head
        .map(|(s, h)| (s as u64, B256::from_slice(&h)))
        .unwrap_or((0, B256::ZERO)))
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
    prev: Vec<Vec<u8>>,
    entry: Vec<Vec<u8>>,
}

/// Writes the access log: takes what is waiting (up to [`BATCH`] entries), chains it after
/// the head, inserts it in one statement (its own transaction, committed before the statement
/// returns), then answers every waiting request; requests that arrive meanwhile make the next
/// batch. One batch at a time, so the log on disk never has a gap, crash or not. After a
/// failed batch, chaining starts again from the head the database has.
async fn writer(pool: PgPool, log: Arc<Mutex<LogHead>>, mut rx: mpsc::Receiver<LogJob>) {
    let mut batch: Vec<LogJob> = Vec::with_capacity(BATCH);
    let (mut seq, mut prev) = {
        let h = log.lock().await;
        (h.seq, h.head)
    };
    while rx.recv_many(&mut batch, BATCH).await > 0 {
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

/// The log's head as the database has it, written into `log`; retried until it can be read
/// (every 50 ms at first, then at most every 5 s): the writer must not chain on a guess.
async fn reread_head(pool: &PgPool, log: &Mutex<LogHead>) -> (u64, B256) {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times();
    // Without a limit on retries the read ends only once it succeeds; the loop states that
    // the writer never goes on without the head.
    let (seq, head) = loop {
        let read = (|| read_head(pool))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|e, _| {
                tracing::error!(target: "medrec::gatekeeper", error = %e, "reading the access log's head");
            });
        if let Ok(found) = read.await {
            break found;
        }
    };
    let mut h = log.lock().await;
    h.seq = seq;
    h.head = head;
    (seq, head)
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

/// Every entry of the log as `patient` may see it: in full for their records, the leaf hash
/// for others'.
pub async fn entries_for(pool: &PgPool, patient: Address) -> Result<Vec<Shown>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, at_ms, requester, record_id, patient, allowed, reason, nonce, leaf, entry_hash
         FROM gk_access_log ORDER BY seq",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let whose = Address::from_slice(&row.get::<Vec<u8>, _>("patient"));
            Shown {
                seq: row.get::<i64, _>("seq") as u64,
                leaf: B256::from_slice(&row.get::<Vec<u8>, _>("leaf")),
                entry_hash: B256::from_slice(&row.get::<Vec<u8>, _>("entry_hash")),
                detail: (whose == patient).then(|| Detail {
                    at_ms: row.get::<i64, _>("at_ms") as u64,
                    requester: Address::from_slice(&row.get::<Vec<u8>, _>("requester")),
                    record_id: B256::from_slice(&row.get::<Vec<u8>, _>("record_id")),
                    patient: whose,
                    allowed: row.get("allowed"),
                    reason: row.get("reason"),
                    nonce: B256::from_slice(&row.get::<Vec<u8>, _>("nonce")),
                }),
            }
        })
        .collect())
}

/// Anchors the log head on chain every `every`, when the log grew since the last anchor.
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
