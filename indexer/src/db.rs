//! PostgreSQL: migrations, the writer's lock, one transaction per batch, and reorg rollback.

use crate::columns::{Column, ColumnDef, Rows};
use crate::error::{IndexerError, Result};
use crate::events::{self, Batch, EVENTS};
use crate::history::{self, HISTORIES};
use alloy::primitives::{Address, B256};
use medrec_bindings::RecordRegistry;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The advisory lock key that only the writing indexer holds ("medrec" in ASCII).
pub const WRITER_LOCK: i64 = 0x6d65_6472_6563;

/// Embedded migrations from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/indexer");

/// Opens a pool to `url`.
pub async fn pool(url: &str, max: u32) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| IndexerError::Config(format!("bad database URL: {e}")))?;
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .map_err(|e| IndexerError::DbUnavailable(format!("cannot connect to the database: {e}")))
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => IndexerError::from(e),
        other => IndexerError::Integrity(format!("migrations: {other}")),
    })
}

/// Refuses a database indexed from another deployment, or from fewer of this deployment's
/// registries, before anything is written to it: migrations included, so that a refused
/// database stays as it was and the binary that filled it still opens it.
pub async fn check_deployment(pool: &PgPool, chain_id: u64, contracts: &[Address]) -> Result<()> {
    let indexed: bool = sqlx::query_scalar("SELECT to_regclass('indexer_cursor') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if indexed {
        // A plain read: a dead writer's last transaction may still hold the row (the writer
        // lock's takeover waits for it later, not here).
        let row: Option<CursorRow> = sqlx::query_as(
            "SELECT chain_id, contracts, block_number, block_hash FROM indexer_cursor WHERE id = 1",
        )
        .fetch_optional(pool)
        .await?;
        if let Some(row) = row {
            same_deployment(row, chain_id, contracts)?;
        }
    }
    Ok(())
}

/// The writer lock, held on a dedicated connection for as long as it lives.
pub struct WriterLock {
    conn: PgConnection,
}

impl WriterLock {
    /// Tries once to take the lock; `None` if another indexer holds it.
    pub async fn try_acquire(url: &str) -> Result<Option<Self>> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| IndexerError::Config(format!("bad database URL: {e}")))?;
        let mut conn = PgConnection::connect_with(&opts).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then_some(Self { conn }))
    }

    /// Checks that the lock's connection is alive (the lock goes with it).
    pub async fn check(&mut self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&mut self.conn).await?;
        Ok(())
    }
}

/// Where the indexer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last indexed block.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
}

type CursorRow = (i64, Vec<Vec<u8>>, i64, Vec<u8>);

/// Reads the cursor, checking that the database belongs to this chain and deployment.
///
/// FOR UPDATE waits for a batch still in flight from a writer that died after its lock went
/// (its lock and its writes are on different connections): the new writer must start from it.
pub async fn read_cursor(
    pool: &PgPool,
    chain_id: u64,
    contracts: &[Address],
) -> Result<Option<Cursor>> {
    let mut tx = pool.begin().await?;
    let row: Option<CursorRow> = sqlx::query_as(
        "SELECT chain_id, contracts, block_number, block_hash FROM indexer_cursor WHERE id = 1 FOR UPDATE",
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.map(|row| same_deployment(row, chain_id, contracts))
        .transpose()
}

/// The cursor of a database indexed from this deployment (chain and registries); an error
/// naming the way out for any other.
fn same_deployment(row: CursorRow, chain_id: u64, contracts: &[Address]) -> Result<Cursor> {
    let (db_chain, db_contracts, n, h) = row;
    let ours: Vec<Vec<u8>> = contracts.iter().map(|a| a.to_vec()).collect();
    if db_chain as u64 == chain_id
        && ours.len() > db_contracts.len()
        && ours.starts_with(&db_contracts)
    {
        // The same deployment, now with a registry more to follow (the study registry, indexed
        // since the database was filled): its events from the start are not in the database.
        return Err(IndexerError::WrongDeployment(format!(
            "the database was indexed from {} of the deployment's {} registries; re-index from scratch (drop the database) to index the others from the start",
            db_contracts.len(),
            ours.len()
        )));
    }
    if db_chain as u64 != chain_id || db_contracts != ours {
        return Err(IndexerError::WrongDeployment(format!(
            "indexed chain {db_chain} with other contracts; this is chain {chain_id}"
        )));
    }
    Ok(Cursor {
        block_number: n as u64,
        block_hash: B256::from_slice(&h),
    })
}

/// Sets the starting cursor of an empty database (keeping one a dead writer's last transaction
/// set meanwhile: read the cursor again after this).
pub async fn init_cursor(
    pool: &PgPool,
    chain_id: u64,
    contracts: &[Address],
    start: Cursor,
    timestamp: u64,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let ours: Vec<Vec<u8>> = contracts.iter().map(|a| a.to_vec()).collect();
    sqlx::query(
        "INSERT INTO indexer_cursor (id, chain_id, contracts, block_number, block_hash) VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(chain_id as i64)
    .bind(&ours)
    .bind(start.block_number as i64)
    .bind(start.block_hash.to_vec())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO indexed_blocks (block_number, block_hash, timestamp) VALUES ($1, $2, $3)
         ON CONFLICT (block_number) DO NOTHING",
    )
    .bind(start.block_number as i64)
    .bind(start.block_hash.to_vec())
    .bind(timestamp as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The stored hashes of indexed blocks at or below `at`, newest first, at most `limit`.
pub async fn recent_blocks(pool: &PgPool, at: u64, limit: u64) -> Result<Vec<(u64, B256)>> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT block_number, block_hash FROM indexed_blocks WHERE block_number <= $1 ORDER BY block_number DESC LIMIT $2",
    )
    .bind(at as i64)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(n, h)| (n as u64, B256::from_slice(&h)))
        .collect())
}

/// A block whose hash the batch records.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Timestamp.
    pub timestamp: u64,
}

fn h(x: &B256) -> Vec<u8> {
    x.to_vec()
}

/// Writes one batch (events, history, block hashes, cursor) in one transaction.
/// Returns the number of event rows written.
pub async fn write_batch(
    pool: &PgPool,
    expected_cursor: u64,
    batch: &Batch,
    blocks: &[BlockRef],
    new_cursor: Cursor,
    prune_below: u64,
) -> Result<u64> {
    let mut tx = pool.begin().await?;
    // No wait for the WAL flush: a crash loses the last batches and their cursor together,
    // and they are indexed again; exactly-once holds, and backfill does not stall on fsync.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    // The cursor must be where this writer left it: guards against a lost writer lock.
    let (at,): (i64,) =
        sqlx::query_as("SELECT block_number FROM indexer_cursor WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    if at as u64 != expected_cursor {
        return Err(IndexerError::Integrity(format!(
            "the cursor moved under this indexer (expected {expected_cursor}, found {at}): is another indexer writing?"
        )));
    }
    insert_events(&mut tx, batch).await?;
    apply_history(&mut tx, batch).await?;

    let nums: Vec<i64> = blocks.iter().map(|b| b.number as i64).collect();
    let hashes: Vec<Vec<u8>> = blocks.iter().map(|b| h(&b.hash)).collect();
    let times: Vec<i64> = blocks.iter().map(|b| b.timestamp as i64).collect();
    sqlx::query(
        "INSERT INTO indexed_blocks (block_number, block_hash, timestamp)
         SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bigint[])
         ON CONFLICT (block_number) DO UPDATE SET block_hash = EXCLUDED.block_hash, timestamp = EXCLUDED.timestamp",
    )
    .bind(&nums)
    .bind(&hashes)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM indexed_blocks WHERE block_number < $1")
        .bind(prune_below as i64)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE indexer_cursor SET block_number = $1, block_hash = $2, updated_at = now() WHERE id = 1")
        .bind(new_cursor.block_number as i64)
        .bind(h(&new_cursor.block_hash))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(batch.len())
}

/// Below this many rows a table's batch goes in with `INSERT ... UNNEST`, above with binary
/// `COPY` (no per-row parsing of arrays). Not for small batches: `COPY` ends with a second
/// small write (CopyDone) after the data, which Nagle's algorithm holds until the server's
/// delayed ACK (about 40 ms): hidden behind the server's work on thousands of rows, but the
/// whole latency of a live one-event batch.
const COPY_MIN_ROWS: usize = 5_000;

/// Inserts a batch's rows of one event table, if any.
async fn insert_rows(
    conn: &mut PgConnection,
    table: &'static str,
    columns: &[ColumnDef],
    rows: &Rows,
) -> Result<()> {
    let n = rows.len();
    if n == 0 {
        return Ok(());
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let names = names.join(", ");
    if n < COPY_MIN_ROWS {
        let types: Vec<&str> = columns.iter().map(|(_, t)| t.array()).collect();
        let sql = format!(
            "INSERT INTO {table} ({names}) SELECT * FROM UNNEST({})",
            history::params(&types, 1)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in &rows.columns {
            q = c.bind(q);
        }
        q.execute(&mut *conn).await?;
        return Ok(());
    }
    let statement = format!("COPY {table} ({names}) FROM STDIN (FORMAT binary)");
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(rows.copy_data()).await?;
    let written = copy.finish().await?;
    if written != n as u64 {
        return Err(IndexerError::Integrity(format!(
            "COPY into {table} wrote {written} rows, expected {n}"
        )));
    }
    Ok(())
}

async fn insert_events(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> Result<()> {
    let conn: &mut PgConnection = tx;
    for (e, rows) in EVENTS.iter().zip(&batch.rows) {
        insert_rows(conn, e.table(), &e.columns(), rows).await?;
    }
    let old = match batch.column_of::<RecordRegistry::PointerSuperseded>("old_record_id") {
        Some(Column::Bytea(old)) => old,
        _ => {
            return Err(IndexerError::Integrity(
                "ev_pointer_superseded has no old_record_id column".into(),
            ));
        }
    };
    if !old.is_empty() && !record_index_deferred(conn).await? {
        // The superseded record must be known (its anchor in this or an earlier batch); while
        // the record-id index is deferred, its build checks all rows at once.
        let (known,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM ev_pointer_anchored WHERE record_id = ANY($1)")
                .bind(old)
                .fetch_one(&mut *conn)
                .await?;
        if known != old.len() as i64 {
            return Err(IndexerError::Integrity(
                "a superseded pointer is unknown".into(),
            ));
        }
    }
    Ok(())
}

async fn record_index_deferred(conn: &mut PgConnection) -> Result<bool> {
    let (deferred,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM indexer_deferred_indexes WHERE name = 'ev_pointer_anchored_record')",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(deferred)
}

/// Writes each history table's changes: first ends the open rows of earlier batches that the
/// batch ends, then inserts the rows it starts.
async fn apply_history(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> Result<()> {
    for fold in batch.history.iter().filter(|f| !f.is_empty()) {
        let closes = fold.close_rows().map_err(IndexerError::Integrity)?;
        if !closes.is_empty() {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(history::close_sql(fold.table)));
            for c in &closes.columns {
                q = c.bind(q);
            }
            q.execute(&mut **tx).await?;
        }
        let opens = fold.open_rows().map_err(IndexerError::Integrity)?;
        if !opens.is_empty() {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(history::insert_sql(fold.table)));
            for c in &opens.columns {
                q = c.bind(q);
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// The secondary indexes a long backfill builds once at the head instead of row by row. Both
/// serve the read API (pointers by patient, by record id); neither is part of exactly-once,
/// which rests on the primary keys and the cursor.
pub const DEFERRABLE_INDEXES: &[&str] =
    &["ev_pointer_anchored_patient", "ev_pointer_anchored_record"];

/// Drops the deferrable indexes for a backfill of about `remaining` events, if the pointer
/// anchors already stored are fewer than that (else rebuilding would cost more than it saves),
/// recording their definitions in the same transaction. Returns whether any were dropped.
pub async fn defer_indexes(pool: &PgPool, remaining: u64) -> Result<bool> {
    let mut tx = pool.begin().await?;
    // Serialises with batches and with another writer's build.
    sqlx::query("SELECT block_number FROM indexer_cursor WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let (stored,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM (SELECT 1 FROM ev_pointer_anchored LIMIT $1) t")
            .bind(remaining as i64)
            .fetch_one(&mut *tx)
            .await?;
    if stored as u64 >= remaining {
        return Ok(false);
    }
    let names: Vec<String> = DEFERRABLE_INDEXES.iter().map(|n| n.to_string()).collect();
    let present: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes
         WHERE schemaname = current_schema() AND indexname = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    for (name, def) in &present {
        sqlx::query(
            "INSERT INTO indexer_deferred_indexes (name, definition) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(def)
        .execute(&mut *tx)
        .await?;
        let drop = match name.as_str() {
            "ev_pointer_anchored_patient" => "DROP INDEX ev_pointer_anchored_patient",
            _ => "DROP INDEX ev_pointer_anchored_record",
        };
        sqlx::query(drop).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(!present.is_empty())
}

/// Whether some deferred index is still to be built (a backfill stopped before the head).
pub async fn has_deferred_indexes(pool: &PgPool) -> Result<bool> {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM indexer_deferred_indexes")
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

/// Builds the deferred indexes in one transaction, after the checks the batches skipped while
/// they were missing: unique record ids (the unique index itself) and known superseded records.
pub async fn build_deferred_indexes(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT block_number FROM indexer_cursor WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let pending: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, definition FROM indexer_deferred_indexes ORDER BY name FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    if pending.is_empty() {
        return Ok(());
    }
    let (unknown,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM ev_pointer_superseded s
         WHERE NOT EXISTS (SELECT 1 FROM ev_pointer_anchored a WHERE a.record_id = s.old_record_id)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if unknown > 0 {
        return Err(IndexerError::Integrity(format!(
            "{unknown} superseded pointers are unknown"
        )));
    }
    // Sorting in memory rather than on disk.
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    for (name, definition) in &pending {
        sqlx::query(sqlx::AssertSqlSafe(definition.clone()))
            .execute(&mut *tx)
            .await
            .map_err(|e| match IndexerError::from(e) {
                IndexerError::Integrity(m) => {
                    IndexerError::Integrity(format!("building {name}: {m}"))
                }
                other => other,
            })?;
        sqlx::query("DELETE FROM indexer_deferred_indexes WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rolls everything above `fork` (the last block both chains share) back, in one transaction.
pub async fn rollback(pool: &PgPool, fork: Cursor) -> Result<()> {
    let mut tx = pool.begin().await?;
    let f = fork.block_number as i64;
    for table in events::tables() {
        let sql = format!("DELETE FROM {table} WHERE block_number > $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f)
            .execute(&mut *tx)
            .await?;
    }
    for t in HISTORIES {
        for sql in history::rollback_sql(t) {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(f)
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query("DELETE FROM indexed_blocks WHERE block_number > $1")
        .bind(f)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE indexer_cursor SET block_number = $1, block_hash = $2, updated_at = now() WHERE id = 1")
        .bind(f)
        .bind(h(&fork.block_hash))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
