//! PostgreSQL: migrations, the writer's lock, one transaction per batch, and reorg rollback.

use crate::error::{IndexerError, Result};
use crate::events::{Event, LogEvent};
use alloy::primitives::{Address, B256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use std::collections::HashMap;
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
/// from_block, from_log, to_block, end_reason columns.
type SpanColumns = (Vec<i64>, Vec<i32>, Vec<Option<i64>>, Vec<Option<String>>);

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
    let Some((db_chain, db_contracts, n, h)) = row else {
        return Ok(None);
    };
    let ours: Vec<Vec<u8>> = contracts.iter().map(|a| a.to_vec()).collect();
    if db_chain as u64 != chain_id || db_contracts != ours {
        return Err(IndexerError::WrongDeployment(format!(
            "indexed chain {db_chain} with other contracts; this is chain {chain_id}"
        )));
    }
    Ok(Some(Cursor {
        block_number: n as u64,
        block_hash: B256::from_slice(&h),
    }))
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

fn b(a: &Address) -> Vec<u8> {
    a.to_vec()
}
fn h(x: &B256) -> Vec<u8> {
    x.to_vec()
}
/// A uint64 mask stored in BIGINT with the same bits.
fn mask(m: u64) -> i64 {
    i64::from_ne_bytes(m.to_ne_bytes())
}

/// A state a batch opens in a history table: its key, payload, start, and end if the same
/// batch ends it.
struct Opened<K, R> {
    key: K,
    row: R,
    block: u64,
    log: u32,
    end: Option<(u64, &'static str)>,
}

/// What a batch does to one history table.
struct History<K, R> {
    opened: Vec<Opened<K, R>>,
    /// Open rows already in the database to close: (key, block, reason).
    closes: Vec<(K, u64, &'static str)>,
    open_in_batch: HashMap<K, usize>,
    touched: std::collections::HashSet<K>,
}

impl<K: std::hash::Hash + Eq + Clone, R> History<K, R> {
    fn new() -> Self {
        Self {
            opened: vec![],
            closes: vec![],
            open_in_batch: HashMap::new(),
            touched: Default::default(),
        }
    }

    /// Ends the state of `key` at `block`, whether this batch or an earlier one opened it.
    fn close(&mut self, key: &K, block: u64, reason: &'static str) {
        if let Some(i) = self.open_in_batch.remove(key) {
            self.opened[i].end = Some((block, reason));
        } else if self.touched.insert(key.clone()) {
            self.closes.push((key.clone(), block, reason));
        }
    }

    /// Starts a new state of `key` at `block`/`log`, ending the previous one.
    fn open(&mut self, key: K, row: R, block: u64, log: u32) {
        self.close(&key, block, "replaced");
        self.touched.insert(key.clone());
        self.open_in_batch.insert(key.clone(), self.opened.len());
        self.opened.push(Opened {
            key,
            row,
            block,
            log,
            end: None,
        });
    }

    fn close_columns(&self) -> (Vec<&K>, Vec<i64>, Vec<String>) {
        let keys = self.closes.iter().map(|(k, _, _)| k).collect();
        let blocks = self.closes.iter().map(|(_, b, _)| *b as i64).collect();
        let why = self
            .closes
            .iter()
            .map(|(_, _, r)| (*r).to_string())
            .collect();
        (keys, blocks, why)
    }

    /// from_block, from_log, to_block, end_reason of the opened rows.
    fn span_columns(&self) -> SpanColumns {
        (
            self.opened.iter().map(|o| o.block as i64).collect(),
            self.opened.iter().map(|o| o.log as i32).collect(),
            self.opened
                .iter()
                .map(|o| o.end.map(|(b, _)| b as i64))
                .collect(),
            self.opened
                .iter()
                .map(|o| o.end.map(|(_, r)| r.to_string()))
                .collect(),
        )
    }
}

/// Writes one batch (events, history, block hashes, cursor) in one transaction.
/// Returns the number of event rows written.
pub async fn write_batch(
    pool: &PgPool,
    expected_cursor: u64,
    events: &[LogEvent],
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
    insert_events(&mut tx, events).await?;
    apply_history(&mut tx, events).await?;

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
    Ok(events.len() as u64)
}

/// Below this many rows a table's batch goes in with `INSERT ... UNNEST`, above with binary
/// `COPY` (no per-row parsing of arrays). Not for small batches: `COPY` ends with a second
/// small write (CopyDone) after the data, which Nagle's algorithm holds until the server's
/// delayed ACK (about 40 ms): hidden behind the server's work on thousands of rows, but the
/// whole latency of a live one-event batch.
const COPY_MIN_ROWS: usize = 5_000;

/// One column of a batch's rows: bound as an array for `UNNEST`, or written in PostgreSQL's
/// binary `COPY` format.
trait Column: Sync {
    fn rows(&self) -> usize;
    fn bind<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q>;
    /// Writes row `i`'s field: its length then its bytes.
    fn put(&self, i: usize, buf: &mut Vec<u8>);
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn put_field(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(&(data.len() as i32).to_be_bytes());
    buf.extend_from_slice(data);
}

macro_rules! column {
    ($ty:ty, |$v:ident, $buf:ident| $put:expr) => {
        impl Column for Vec<$ty> {
            fn rows(&self) -> usize {
                self.len()
            }
            fn bind<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
                q.bind(self)
            }
            fn put(&self, i: usize, $buf: &mut Vec<u8>) {
                let $v = &self[i];
                $put
            }
        }
    };
}
column!(i64, |v, buf| put_field(buf, &v.to_be_bytes()));
column!(i32, |v, buf| put_field(buf, &v.to_be_bytes()));
column!(i16, |v, buf| put_field(buf, &v.to_be_bytes()));
column!(Vec<u8>, |v, buf| put_field(buf, v));
// TEXT in binary format is its UTF-8 bytes.
column!(String, |v, buf| put_field(buf, v.as_bytes()));

/// Inserts a batch's rows of one event table (`columns` in the table's order), if any.
async fn insert_rows(
    conn: &mut PgConnection,
    table: &'static str,
    unnest: &'static str,
    columns: &[&dyn Column],
) -> Result<()> {
    let n = columns.first().map_or(0, |c| c.rows());
    if n == 0 {
        return Ok(());
    }
    if n < COPY_MIN_ROWS {
        let mut q = sqlx::query(unnest);
        for c in columns {
            q = c.bind(q);
        }
        q.execute(&mut *conn).await?;
        return Ok(());
    }
    // Signature, flags, header extension length; per row the field count and the fields;
    // the trailer.
    let mut buf = Vec::with_capacity(n * 200);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    for i in 0..n {
        buf.extend_from_slice(&(columns.len() as i16).to_be_bytes());
        for c in columns {
            c.put(i, &mut buf);
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    let statement = format!("COPY {table} FROM STDIN (FORMAT binary)");
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(buf).await?;
    let written = copy.finish().await?;
    if written != n as u64 {
        return Err(IndexerError::Integrity(format!(
            "COPY into {table} wrote {written} rows, expected {n}"
        )));
    }
    Ok(())
}

async fn insert_events(tx: &mut Transaction<'_, Postgres>, events: &[LogEvent]) -> Result<()> {
    macro_rules! cols {
        ($($name:ident : $ty:ty),*) => { $(let mut $name: Vec<$ty> = Vec::new();)* };
    }
    // Per-table columns, filled in one pass.
    cols!(ci_b: i64, ci_l: i32, ci_t: Vec<u8>, ci_account: Vec<u8>, ci_role: i16, ci_ref: Vec<u8>, ci_issued: i64, ci_exp: i64);
    cols!(cr_b: i64, cr_l: i32, cr_t: Vec<u8>, cr_account: Vec<u8>, cr_role: i16, cr_at: i64);
    cols!(g_b: i64, g_l: i32, g_t: Vec<u8>, g_p: Vec<u8>, g_g: Vec<u8>, g_by: Vec<u8>, g_c: i64, g_pu: i16, g_nb: i64, g_exp: i64);
    cols!(r_b: i64, r_l: i32, r_t: Vec<u8>, r_p: Vec<u8>, r_g: Vec<u8>, r_by: Vec<u8>);
    cols!(gs_b: i64, gs_l: i32, gs_t: Vec<u8>, gs_p: Vec<u8>, gs_g: Vec<u8>, gs_s: i64, gs_nb: i64, gs_exp: i64);
    cols!(gr_b: i64, gr_l: i32, gr_t: Vec<u8>, gr_p: Vec<u8>, gr_g: Vec<u8>);
    cols!(eo_b: i64, eo_l: i32, eo_t: Vec<u8>, eo_p: Vec<u8>, eo_pr: Vec<u8>, eo_r: Vec<u8>, eo_o: i64, eo_exp: i64);
    cols!(ec_b: i64, ec_l: i32, ec_t: Vec<u8>, ec_p: Vec<u8>, ec_pr: Vec<u8>, ec_by: Vec<u8>);
    cols!(cap_b: i64, cap_l: i32, cap_t: Vec<u8>, cap_c: i64);
    cols!(pa_b: i64, pa_l: i32, pa_t: Vec<u8>, pa_id: Vec<u8>, pa_p: Vec<u8>, pa_h: Vec<u8>, pa_c: i16, pa_hash: Vec<u8>, pa_loc: String);
    cols!(ps_b: i64, ps_l: i32, ps_t: Vec<u8>, ps_old: Vec<u8>, ps_new: Vec<u8>);
    cols!(la_b: i64, la_l: i32, la_t: Vec<u8>, la_holder: Vec<u8>, la_head: Vec<u8>, la_n: i64, la_at: i64);

    for e in events {
        let (bn, li, th) = (e.block_number as i64, e.log_index as i32, h(&e.tx_hash));
        match &e.event {
            Event::CredentialIssued {
                account,
                role,
                reference,
                issued_at,
                expires_at,
            } => {
                ci_b.push(bn);
                ci_l.push(li);
                ci_t.push(th);
                ci_account.push(b(account));
                ci_role.push(*role as i16);
                ci_ref.push(h(reference));
                ci_issued.push(*issued_at as i64);
                ci_exp.push(*expires_at as i64);
            }
            Event::CredentialRevoked {
                account,
                role,
                revoked_at,
            } => {
                cr_b.push(bn);
                cr_l.push(li);
                cr_t.push(th);
                cr_account.push(b(account));
                cr_role.push(*role as i16);
                cr_at.push(*revoked_at as i64);
            }
            Event::Granted {
                patient,
                grantee,
                by,
                categories,
                purpose,
                not_before,
                expires_at,
            } => {
                g_b.push(bn);
                g_l.push(li);
                g_t.push(th);
                g_p.push(b(patient));
                g_g.push(b(grantee));
                g_by.push(b(by));
                g_c.push(mask(*categories));
                g_pu.push(*purpose as i16);
                g_nb.push(*not_before as i64);
                g_exp.push(*expires_at as i64);
            }
            Event::Revoked {
                patient,
                grantee,
                by,
            } => {
                r_b.push(bn);
                r_l.push(li);
                r_t.push(th);
                r_p.push(b(patient));
                r_g.push(b(grantee));
                r_by.push(b(by));
            }
            Event::GuardianSet {
                patient,
                guardian,
                scope,
                not_before,
                expires_at,
            } => {
                gs_b.push(bn);
                gs_l.push(li);
                gs_t.push(th);
                gs_p.push(b(patient));
                gs_g.push(b(guardian));
                gs_s.push(mask(*scope));
                gs_nb.push(*not_before as i64);
                gs_exp.push(*expires_at as i64);
            }
            Event::GuardianRemoved { patient, guardian } => {
                gr_b.push(bn);
                gr_l.push(li);
                gr_t.push(th);
                gr_p.push(b(patient));
                gr_g.push(b(guardian));
            }
            Event::EmergencyOpened {
                patient,
                provider,
                reason_hash,
                opened_at,
                expires_at,
            } => {
                eo_b.push(bn);
                eo_l.push(li);
                eo_t.push(th);
                eo_p.push(b(patient));
                eo_pr.push(b(provider));
                eo_r.push(h(reason_hash));
                eo_o.push(*opened_at as i64);
                eo_exp.push(*expires_at as i64);
            }
            Event::EmergencyClosed {
                patient,
                provider,
                by,
            } => {
                ec_b.push(bn);
                ec_l.push(li);
                ec_t.push(th);
                ec_p.push(b(patient));
                ec_pr.push(b(provider));
                ec_by.push(b(by));
            }
            Event::EmergencyCapSet { cap } => {
                cap_b.push(bn);
                cap_l.push(li);
                cap_t.push(th);
                cap_c.push(*cap as i64);
            }
            Event::PointerAnchored {
                record_id,
                patient,
                holder,
                category,
                content_hash,
                locator,
            } => {
                pa_b.push(bn);
                pa_l.push(li);
                pa_t.push(th);
                pa_id.push(h(record_id));
                pa_p.push(b(patient));
                pa_h.push(b(holder));
                pa_c.push(*category as i16);
                pa_hash.push(h(content_hash));
                pa_loc.push(locator.clone());
            }
            Event::PointerSuperseded {
                old_record_id,
                new_record_id,
            } => {
                ps_b.push(bn);
                ps_l.push(li);
                ps_t.push(th);
                ps_old.push(h(old_record_id));
                ps_new.push(h(new_record_id));
            }
            Event::AccessLogAnchored {
                holder,
                head,
                entries,
                anchored_at,
            } => {
                la_b.push(bn);
                la_l.push(li);
                la_t.push(th);
                la_holder.push(b(holder));
                la_head.push(h(head));
                la_n.push(*entries as i64);
                la_at.push(*anchored_at as i64);
            }
        }
    }

    let conn: &mut PgConnection = tx;
    insert_rows(
        conn,
        "ev_access_log_anchored",
        "INSERT INTO ev_access_log_anchored SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bigint[], $7::bigint[])",
        &[&la_b, &la_l, &la_t, &la_holder, &la_head, &la_n, &la_at],
    )
    .await?;
    insert_rows(
        conn,
        "ev_credential_issued",
        "INSERT INTO ev_credential_issued SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::smallint[], $6::bytea[], $7::bigint[], $8::bigint[])",
        &[&ci_b, &ci_l, &ci_t, &ci_account, &ci_role, &ci_ref, &ci_issued, &ci_exp],
    )
    .await?;
    insert_rows(
        conn,
        "ev_credential_revoked",
        "INSERT INTO ev_credential_revoked SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::smallint[], $6::bigint[])",
        &[&cr_b, &cr_l, &cr_t, &cr_account, &cr_role, &cr_at],
    )
    .await?;
    insert_rows(
        conn,
        "ev_granted",
        "INSERT INTO ev_granted SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bigint[], $8::smallint[], $9::bigint[], $10::bigint[])",
        &[&g_b, &g_l, &g_t, &g_p, &g_g, &g_by, &g_c, &g_pu, &g_nb, &g_exp],
    )
    .await?;
    insert_rows(
        conn,
        "ev_revoked",
        "INSERT INTO ev_revoked SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[])",
        &[&r_b, &r_l, &r_t, &r_p, &r_g, &r_by],
    )
    .await?;
    insert_rows(
        conn,
        "ev_guardian_set",
        "INSERT INTO ev_guardian_set SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[])",
        &[&gs_b, &gs_l, &gs_t, &gs_p, &gs_g, &gs_s, &gs_nb, &gs_exp],
    )
    .await?;
    insert_rows(
        conn,
        "ev_guardian_removed",
        "INSERT INTO ev_guardian_removed SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[])",
        &[&gr_b, &gr_l, &gr_t, &gr_p, &gr_g],
    )
    .await?;
    insert_rows(
        conn,
        "ev_emergency_opened",
        "INSERT INTO ev_emergency_opened SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bigint[], $8::bigint[])",
        &[&eo_b, &eo_l, &eo_t, &eo_p, &eo_pr, &eo_r, &eo_o, &eo_exp],
    )
    .await?;
    insert_rows(
        conn,
        "ev_emergency_closed",
        "INSERT INTO ev_emergency_closed SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[])",
        &[&ec_b, &ec_l, &ec_t, &ec_p, &ec_pr, &ec_by],
    )
    .await?;
    insert_rows(
        conn,
        "ev_emergency_cap_set",
        "INSERT INTO ev_emergency_cap_set SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bigint[])",
        &[&cap_b, &cap_l, &cap_t, &cap_c],
    )
    .await?;
    insert_rows(
        conn,
        "ev_pointer_anchored",
        "INSERT INTO ev_pointer_anchored SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::smallint[], $8::bytea[], $9::text[])",
        &[&pa_b, &pa_l, &pa_t, &pa_id, &pa_p, &pa_h, &pa_c, &pa_hash, &pa_loc],
    )
    .await?;
    insert_rows(
        conn,
        "ev_pointer_superseded",
        "INSERT INTO ev_pointer_superseded SELECT * FROM UNNEST($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bytea[])",
        &[&ps_b, &ps_l, &ps_t, &ps_old, &ps_new],
    )
    .await?;
    if !ps_old.is_empty() && !record_index_deferred(conn).await? {
        // The superseded record must be known (its anchor in this or an earlier batch); while
        // the record-id index is deferred, its build checks all rows at once.
        let (known,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM ev_pointer_anchored WHERE record_id = ANY($1)")
                .bind(&ps_old)
                .fetch_one(&mut *conn)
                .await?;
        if known != ps_old.len() as i64 {
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

type PairKey = (Address, Address);

fn pair_columns(keys: &[&PairKey]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (
        keys.iter().map(|k| b(&k.0)).collect(),
        keys.iter().map(|k| b(&k.1)).collect(),
    )
}

async fn apply_history(tx: &mut Transaction<'_, Postgres>, events: &[LogEvent]) -> Result<()> {
    // (patient, grantee) -> (by, categories, purpose, not_before, expires_at)
    let mut grants: History<PairKey, (Address, u64, u8, u64, u64)> = History::new();
    // (patient, guardian) -> (scope, not_before, expires_at)
    let mut guardians: History<PairKey, (u64, u64, u64)> = History::new();
    // account -> (role, ref, issued_at, expires_at)
    let mut credentials: History<Address, (u8, B256, u64, u64)> = History::new();
    // (patient, provider) -> (reason, opened_at, expires_at)
    let mut emergencies: History<PairKey, (B256, u64, u64)> = History::new();
    for e in events {
        let (bn, li) = (e.block_number, e.log_index);
        match &e.event {
            Event::Granted {
                patient,
                grantee,
                by,
                categories,
                purpose,
                not_before,
                expires_at,
            } => {
                let row = (*by, *categories, *purpose, *not_before, *expires_at);
                grants.open((*patient, *grantee), row, bn, li)
            }
            Event::Revoked {
                patient, grantee, ..
            } => grants.close(&(*patient, *grantee), bn, "revoked"),
            Event::GuardianSet {
                patient,
                guardian,
                scope,
                not_before,
                expires_at,
            } => guardians.open(
                (*patient, *guardian),
                (*scope, *not_before, *expires_at),
                bn,
                li,
            ),
            Event::GuardianRemoved { patient, guardian } => {
                guardians.close(&(*patient, *guardian), bn, "removed")
            }
            Event::CredentialIssued {
                account,
                role,
                reference,
                issued_at,
                expires_at,
            } => credentials.open(
                *account,
                (*role, *reference, *issued_at, *expires_at),
                bn,
                li,
            ),
            Event::CredentialRevoked { account, .. } => credentials.close(account, bn, "revoked"),
            Event::EmergencyOpened {
                patient,
                provider,
                reason_hash,
                opened_at,
                expires_at,
            } => {
                let row = (*reason_hash, *opened_at, *expires_at);
                emergencies.open((*patient, *provider), row, bn, li)
            }
            Event::EmergencyClosed {
                patient, provider, ..
            } => emergencies.close(&(*patient, *provider), bn, "closed"),
            _ => {}
        }
    }

    // grants
    if !grants.closes.is_empty() {
        let (keys, blk, why) = grants.close_columns();
        let (p, g) = pair_columns(&keys);
        sqlx::query(
            "UPDATE grant_history h SET to_block = c.blk, end_reason = c.why
             FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[], $4::text[]) AS c(p, g, blk, why)
             WHERE h.patient = c.p AND h.grantee = c.g AND h.to_block IS NULL",
        )
        .bind(&p)
        .bind(&g)
        .bind(&blk)
        .bind(&why)
        .execute(&mut **tx)
        .await?;
    }
    if !grants.opened.is_empty() {
        let keys: Vec<&PairKey> = grants.opened.iter().map(|o| &o.key).collect();
        let (p, g) = pair_columns(&keys);
        let by: Vec<Vec<u8>> = grants.opened.iter().map(|o| b(&o.row.0)).collect();
        let cats: Vec<i64> = grants.opened.iter().map(|o| mask(o.row.1)).collect();
        let purpose: Vec<i16> = grants.opened.iter().map(|o| o.row.2 as i16).collect();
        let nb: Vec<i64> = grants.opened.iter().map(|o| o.row.3 as i64).collect();
        let ex: Vec<i64> = grants.opened.iter().map(|o| o.row.4 as i64).collect();
        let (fb, fl, tb, why) = grants.span_columns();
        sqlx::query(
            "INSERT INTO grant_history (patient, grantee, by_account, categories, purpose, not_before, expires_at, from_block, from_log, to_block, end_reason)
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::bigint[], $5::smallint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::int[], $10::bigint[], $11::text[])",
        )
        .bind(&p).bind(&g).bind(&by).bind(&cats).bind(&purpose).bind(&nb).bind(&ex)
        .bind(&fb).bind(&fl).bind(&tb).bind(&why)
        .execute(&mut **tx)
        .await?;
    }

    // guardians
    if !guardians.closes.is_empty() {
        let (keys, blk, why) = guardians.close_columns();
        let (p, g) = pair_columns(&keys);
        sqlx::query(
            "UPDATE guardian_history h SET to_block = c.blk, end_reason = c.why
             FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[], $4::text[]) AS c(p, g, blk, why)
             WHERE h.patient = c.p AND h.guardian = c.g AND h.to_block IS NULL",
        )
        .bind(&p)
        .bind(&g)
        .bind(&blk)
        .bind(&why)
        .execute(&mut **tx)
        .await?;
    }
    if !guardians.opened.is_empty() {
        let keys: Vec<&PairKey> = guardians.opened.iter().map(|o| &o.key).collect();
        let (p, g) = pair_columns(&keys);
        let scope: Vec<i64> = guardians.opened.iter().map(|o| mask(o.row.0)).collect();
        let nb: Vec<i64> = guardians.opened.iter().map(|o| o.row.1 as i64).collect();
        let ex: Vec<i64> = guardians.opened.iter().map(|o| o.row.2 as i64).collect();
        let (fb, fl, tb, why) = guardians.span_columns();
        sqlx::query(
            "INSERT INTO guardian_history (patient, guardian, scope, not_before, expires_at, from_block, from_log, to_block, end_reason)
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::int[], $8::bigint[], $9::text[])",
        )
        .bind(&p).bind(&g).bind(&scope).bind(&nb).bind(&ex).bind(&fb).bind(&fl).bind(&tb).bind(&why)
        .execute(&mut **tx)
        .await?;
    }

    // credentials
    if !credentials.closes.is_empty() {
        let (keys, blk, why) = credentials.close_columns();
        let a: Vec<Vec<u8>> = keys.iter().map(|k| b(k)).collect();
        sqlx::query(
            "UPDATE credential_history h SET to_block = c.blk, end_reason = c.why
             FROM UNNEST($1::bytea[], $2::bigint[], $3::text[]) AS c(a, blk, why)
             WHERE h.account = c.a AND h.to_block IS NULL",
        )
        .bind(&a)
        .bind(&blk)
        .bind(&why)
        .execute(&mut **tx)
        .await?;
    }
    if !credentials.opened.is_empty() {
        let a: Vec<Vec<u8>> = credentials.opened.iter().map(|o| b(&o.key)).collect();
        let role: Vec<i16> = credentials.opened.iter().map(|o| o.row.0 as i16).collect();
        let r: Vec<Vec<u8>> = credentials.opened.iter().map(|o| h(&o.row.1)).collect();
        let issued: Vec<i64> = credentials.opened.iter().map(|o| o.row.2 as i64).collect();
        let ex: Vec<i64> = credentials.opened.iter().map(|o| o.row.3 as i64).collect();
        let (fb, fl, tb, why) = credentials.span_columns();
        sqlx::query(
            "INSERT INTO credential_history (account, role, ref, issued_at, expires_at, from_block, from_log, to_block, end_reason)
             SELECT * FROM UNNEST($1::bytea[], $2::smallint[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[], $7::int[], $8::bigint[], $9::text[])",
        )
        .bind(&a).bind(&role).bind(&r).bind(&issued).bind(&ex).bind(&fb).bind(&fl).bind(&tb).bind(&why)
        .execute(&mut **tx)
        .await?;
    }

    // emergencies
    if !emergencies.closes.is_empty() {
        let (keys, blk, why) = emergencies.close_columns();
        let (p, g) = pair_columns(&keys);
        sqlx::query(
            "UPDATE emergency_history h SET to_block = c.blk, end_reason = c.why
             FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[], $4::text[]) AS c(p, g, blk, why)
             WHERE h.patient = c.p AND h.provider = c.g AND h.to_block IS NULL",
        )
        .bind(&p)
        .bind(&g)
        .bind(&blk)
        .bind(&why)
        .execute(&mut **tx)
        .await?;
    }
    if !emergencies.opened.is_empty() {
        let keys: Vec<&PairKey> = emergencies.opened.iter().map(|o| &o.key).collect();
        let (p, g) = pair_columns(&keys);
        let reason: Vec<Vec<u8>> = emergencies.opened.iter().map(|o| h(&o.row.0)).collect();
        let opened: Vec<i64> = emergencies.opened.iter().map(|o| o.row.1 as i64).collect();
        let ex: Vec<i64> = emergencies.opened.iter().map(|o| o.row.2 as i64).collect();
        let (fb, fl, tb, why) = emergencies.span_columns();
        sqlx::query(
            "INSERT INTO emergency_history (patient, provider, reason_hash, opened_at, expires_at, from_block, from_log, to_block, end_reason)
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[], $7::int[], $8::bigint[], $9::text[])",
        )
        .bind(&p).bind(&g).bind(&reason).bind(&opened).bind(&ex).bind(&fb).bind(&fl).bind(&tb).bind(&why)
        .execute(&mut **tx)
        .await?;
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
    for table in EVENT_TABLES {
        let sql = match *table {
            "ev_credential_issued" => "DELETE FROM ev_credential_issued WHERE block_number > $1",
            "ev_credential_revoked" => "DELETE FROM ev_credential_revoked WHERE block_number > $1",
            "ev_granted" => "DELETE FROM ev_granted WHERE block_number > $1",
            "ev_revoked" => "DELETE FROM ev_revoked WHERE block_number > $1",
            "ev_guardian_set" => "DELETE FROM ev_guardian_set WHERE block_number > $1",
            "ev_guardian_removed" => "DELETE FROM ev_guardian_removed WHERE block_number > $1",
            "ev_emergency_opened" => "DELETE FROM ev_emergency_opened WHERE block_number > $1",
            "ev_emergency_closed" => "DELETE FROM ev_emergency_closed WHERE block_number > $1",
            "ev_emergency_cap_set" => "DELETE FROM ev_emergency_cap_set WHERE block_number > $1",
            "ev_pointer_anchored" => "DELETE FROM ev_pointer_anchored WHERE block_number > $1",
            "ev_pointer_superseded" => "DELETE FROM ev_pointer_superseded WHERE block_number > $1",
            _ => "DELETE FROM ev_access_log_anchored WHERE block_number > $1",
        };
        sqlx::query(sql).bind(f).execute(&mut *tx).await?;
    }
    for (delete, reopen) in [
        (
            "DELETE FROM grant_history WHERE from_block > $1",
            "UPDATE grant_history SET to_block = NULL, end_reason = NULL WHERE to_block > $1",
        ),
        (
            "DELETE FROM guardian_history WHERE from_block > $1",
            "UPDATE guardian_history SET to_block = NULL, end_reason = NULL WHERE to_block > $1",
        ),
        (
            "DELETE FROM credential_history WHERE from_block > $1",
            "UPDATE credential_history SET to_block = NULL, end_reason = NULL WHERE to_block > $1",
        ),
        (
            "DELETE FROM emergency_history WHERE from_block > $1",
            "UPDATE emergency_history SET to_block = NULL, end_reason = NULL WHERE to_block > $1",
        ),
    ] {
        sqlx::query(delete).bind(f).execute(&mut *tx).await?;
        sqlx::query(reopen).bind(f).execute(&mut *tx).await?;
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

/// The event tables, for rollback and counting.
pub const EVENT_TABLES: &[&str] = &[
    "ev_credential_issued",
    "ev_credential_revoked",
    "ev_granted",
    "ev_revoked",
    "ev_guardian_set",
    "ev_guardian_removed",
    "ev_emergency_opened",
    "ev_emergency_closed",
    "ev_emergency_cap_set",
    "ev_pointer_anchored",
    "ev_pointer_superseded",
    "ev_access_log_anchored",
];
