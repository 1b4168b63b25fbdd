//! One pipeline for backfill and live tailing: hash-bracketed log ranges (medrec-chain) up to
//! the head less the confirmation depth, each written with its cursor in one transaction;
//! reorgs found against the block hashes stored with the batches and rolled back; outages
//! retried with backoff.
//!
//! The chain is read through [`medrec_chain`]; what this module adds is the database: the
//! cursor and the recent block hashes live there (a restarted indexer continues where the last
//! committed batch left off), and ranges are read ahead while the previous one is written.

use crate::db::{self, BlockRef, Cursor};
use crate::error::{IndexerError, Result};
use crate::events::{self, Batch};
use crate::metrics::Metrics;
use alloy::primitives::Address;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use medrec_chain::{Backoff, ChainError, LogFilter, Rpc, Source};
use sqlx::PgPool;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// PostgreSQL URL.
    pub database_url: String,
    /// The registries' addresses.
    pub contracts: Vec<Address>,
    /// The block before the deployment (indexing starts after it).
    pub start_block: u64,
    /// Blocks behind the head that are not indexed yet.
    pub confirmations: u64,
    /// How many recent blocks a reorg may reach back.
    pub reorg_window: u64,
    /// First log range, in blocks.
    pub initial_range: u64,
    /// Largest log range, in blocks.
    pub max_range: u64,
    /// A backfill of at least this many events builds the deferrable indexes at the head
    /// instead of row by row (0: never).
    pub defer_indexes_min_events: u64,
    /// How often to look for new blocks once caught up.
    pub poll_interval: Duration,
    /// Stop once caught up with the head (backfill only).
    pub exit_at_head: bool,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
}

/// Runs the indexer until an error that retrying cannot fix (or the head, with `exit_at_head`).
pub async fn run(cfg: Config, pool: PgPool, metrics: Arc<Metrics>) -> Result<()> {
    let node = Arc::new(Rpc::connect_http(&cfg.rpc_url)?);
    let chain_id = retry(&metrics, "chain id", || async {
        Ok(node.chain_id().await?)
    })
    .await?;
    // One writer at a time: wait for the lock.
    let lock = acquire_lock(&cfg, &metrics).await?;
    let cursor = match retry(&metrics, "read cursor", || {
        db::read_cursor(&pool, chain_id, &cfg.contracts)
    })
    .await?
    {
        Some(c) => c,
        None => {
            let start = retry(&metrics, "start block", || async {
                Ok(node.header_of(cfg.start_block).await?)
            })
            .await?;
            let c = Cursor {
                block_number: cfg.start_block,
                block_hash: start.hash,
            };
            retry(&metrics, "init cursor", || {
                db::init_cursor(&pool, chain_id, &cfg.contracts, c, start.timestamp)
            })
            .await?;
            // A writer that died with its own init in flight may have committed it first.
            retry(&metrics, "read cursor", || {
                db::read_cursor(&pool, chain_id, &cfg.contracts)
            })
            .await?
            .unwrap_or(c)
        }
    };
    info!(target: "medrec::indexer", chain_id, block = cursor.block_number, "indexing from cursor");
    metrics
        .indexed_block
        .store(cursor.block_number, Ordering::Relaxed);

    let mut progress = Progress::new(
        cfg.progress && std::io::stderr().is_terminal(),
        cursor.block_number,
    );
    let mut backoff = Backoff::default();
    // A backfill that stopped before the head may have left indexes to build.
    let deferred = retry(&metrics, "deferred indexes", || {
        db::has_deferred_indexes(&pool)
    })
    .await?;
    let filter = LogFilter {
        addresses: cfg.contracts.clone(),
        topics: events::topics(),
    };
    let ctx = Ctx {
        cfg: &cfg,
        node: &node,
        filter: &filter,
        pool: &pool,
        metrics: &metrics,
    };
    let mut st = State {
        lock,
        cursor,
        range: cfg.initial_range.max(1),
        prefetch: Prefetch::new(),
        bulk: Bulk {
            decided: false,
            deferred,
        },
    };
    loop {
        match step(&ctx, &mut st).await {
            Ok(Step::Indexed { events, head }) => {
                backoff.reset();
                progress.update(st.cursor.block_number, head, events);
            }
            Ok(Step::CaughtUp) => {
                backoff.reset();
                progress.finish();
                if cfg.exit_at_head {
                    return Ok(());
                }
                tokio::time::sleep(cfg.poll_interval).await;
            }
            Ok(Step::Reorged) => backoff.reset(),
            Err(IndexerError::Chain(ChainError::RangeTooLarge(msg))) if st.range > 1 => {
                st.range = (st.range / 2).max(1);
                warn!(target: "medrec::indexer", range = st.range, %msg, "log range refused; shrinking");
            }
            Err(e) if e.is_retryable() => {
                count_error(&metrics, &e);
                let wait = backoff.next_wait();
                // Even a one-block range refused as too large is an RPC failure like any other.
                warn!(target: "medrec::indexer", error = %e, retry_in_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
                if matches!(e, IndexerError::DbUnavailable(_)) {
                    // The lock may have gone with the connection: take it again, re-read the cursor.
                    if st.lock.check().await.is_err() {
                        metrics.writer.store(0, Ordering::Relaxed);
                        st.lock = acquire_lock(&cfg, &metrics).await?;
                    }
                    if let Ok(Some(c)) = db::read_cursor(&pool, chain_id, &cfg.contracts).await {
                        st.cursor = c;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// What every step works with: settings, node, database, counters.
struct Ctx<'a> {
    cfg: &'a Config,
    node: &'a Arc<Rpc>,
    filter: &'a LogFilter,
    pool: &'a PgPool,
    metrics: &'a Metrics,
}

/// What the loop carries from one step to the next.
struct State {
    lock: db::WriterLock,
    cursor: Cursor,
    /// The next log range, in blocks.
    range: u64,
    prefetch: Prefetch,
    bulk: Bulk,
}

/// Bulk loading: whether this run has weighed deferring the indexes, and whether some are
/// deferred (dropped, to be built at the head).
struct Bulk {
    decided: bool,
    deferred: bool,
}

enum Step {
    Indexed { events: u64, head: u64 },
    CaughtUp,
    Reorged,
}

/// A range read from the node, checked, decoded, ready to write.
struct Fetched {
    range: medrec_chain::Range,
    target: u64,
    head: u64,
    events: Batch,
}

impl Fetched {
    /// The block hashes the batch records: both ends of the range (what a later reorg check
    /// compares with the chain).
    fn blocks(&self) -> Vec<BlockRef> {
        let (from, to) = (&self.range.from, &self.range.to);
        let mut blocks = vec![BlockRef {
            number: to.number,
            hash: to.hash,
            timestamp: to.timestamp,
        }];
        if from.number != to.number {
            blocks.push(BlockRef {
                number: from.number,
                hash: from.hash,
                timestamp: from.timestamp,
            });
        }
        blocks
    }
}

enum Fetch {
    Batch(Box<Fetched>),
    CaughtUp { head: u64 },
    Reorg,
}

/// How many ranges are read ahead while one is written. Two calls in flight keep the node
/// busy while the indexer decodes one answer and PostgreSQL writes another.
const READ_AHEAD: usize = 2;

/// Ranges being read while the current one is written, in order, each following the previous
/// one: (from, to, task). Whether a range hangs on the cursor is checked when it is taken.
type Prefetch = std::collections::VecDeque<(u64, u64, tokio::task::JoinHandle<Result<Fetched>>)>;

/// Reads the next range after `cursor` from the node.
async fn fetch(ctx: &Ctx<'_>, cursor: Cursor, range: u64) -> Result<Fetch> {
    let head = ctx.node.head().await?;
    let target = head.saturating_sub(ctx.cfg.confirmations);
    if cursor.block_number >= target {
        // Caught up; still notice a reorg that replaced (or removed) the cursor block.
        if cursor.block_number > ctx.cfg.start_block {
            let same = ctx
                .node
                .header(cursor.block_number)
                .await?
                .is_some_and(|h| h.hash == cursor.block_hash);
            if !same {
                return Ok(Fetch::Reorg);
            }
        }
        return Ok(Fetch::CaughtUp { head });
    }
    let from = cursor.block_number + 1;
    let to = (from + range - 1).min(target);
    Ok(Fetch::Batch(Box::new(
        fetch_range(ctx.node, ctx.filter, from, to, target, head).await?,
    )))
}

/// Reads blocks `from..=to` (known to exist up to `target` of a chain whose head was `head`),
/// hash-bracketed, and decodes their logs.
async fn fetch_range(
    node: &Rpc,
    filter: &LogFilter,
    from: u64,
    to: u64,
    target: u64,
    head: u64,
) -> Result<Fetched> {
    let range = medrec_chain::read_range(node, filter, from, to).await?;
    let events = Batch::decode(&range.logs).map_err(IndexerError::Integrity)?;
    Ok(Fetched {
        range,
        target,
        head,
        events,
    })
}

async fn step(ctx: &Ctx<'_>, st: &mut State) -> Result<Step> {
    // The range read while the last one was written, if it starts where we stand.
    let waited = Instant::now();
    let fetched = match st.prefetch.pop_front() {
        Some((from, _, task)) if from == st.cursor.block_number + 1 => match task.await {
            Ok(r) => Fetch::Batch(Box::new(r?)),
            Err(e) => {
                return Err(ChainError::Transport(format!("prefetch task failed: {e}")).into());
            }
        },
        Some((_, _, task)) => {
            task.abort();
            abort_all(&mut st.prefetch);
            fetch(ctx, st.cursor, st.range).await?
        }
        None => fetch(ctx, st.cursor, st.range).await?,
    };
    // A range that does not hang on the cursor: the chain changed under it (or under the
    // ranges read ahead of it).
    let fetched = match fetched {
        Fetch::Batch(f) if !f.range.hangs_on(st.cursor.block_hash) => {
            abort_all(&mut st.prefetch);
            Fetch::Reorg
        }
        other => other,
    };
    let f = match fetched {
        Fetch::CaughtUp { head } => {
            ctx.metrics.head_block.store(head, Ordering::Relaxed);
            if st.bulk.deferred {
                let started = Instant::now();
                st.lock.check().await?;
                db::build_deferred_indexes(ctx.pool).await?;
                st.bulk.deferred = false;
                info!(target: "medrec::indexer", ms = started.elapsed().as_millis() as u64, "built the deferred indexes");
            }
            return Ok(Step::CaughtUp);
        }
        Fetch::Reorg => {
            reorg(ctx, &mut st.cursor).await?;
            return Ok(Step::Reorged);
        }
        Fetch::Batch(f) => f,
    };
    let (from, to) = (f.range.from.number, f.range.to.number);
    ctx.metrics.head_block.store(f.head, Ordering::Relaxed);
    st.range = medrec_chain::next_range(
        st.range,
        f.range.blocks(),
        f.events.len(),
        f.range.elapsed,
        ctx.cfg.max_range,
    );
    let new_cursor = Cursor {
        block_number: to,
        block_hash: f.range.to.hash,
    };
    // A long backfill into few stored rows: build the pointer indexes once at the head.
    if !st.bulk.decided && to < f.target && ctx.cfg.defer_indexes_min_events > 0 {
        st.bulk.decided = true;
        let blocks = f.range.blocks() as u128;
        let remaining = ((f.target - to) as u128 * f.events.len() as u128 / blocks) as u64;
        if remaining >= ctx.cfg.defer_indexes_min_events {
            st.lock.check().await?;
            if db::defer_indexes(ctx.pool, remaining).await? {
                st.bulk.deferred = true;
                info!(target: "medrec::indexer", remaining, "backfill: indexes deferred to the head");
            }
        }
    }
    // Backfilling: read the next ranges (up to the target this range saw) while this one is
    // written.
    let mut next = st.prefetch.back().map_or(to, |(_, to, _)| *to) + 1;
    while st.prefetch.len() < READ_AHEAD && next <= f.target {
        let end = (next + st.range - 1).min(f.target);
        let (node, filter, (target, head)) =
            (ctx.node.clone(), ctx.filter.clone(), (f.target, f.head));
        let task =
            tokio::spawn(async move { fetch_range(&node, &filter, next, end, target, head).await });
        st.prefetch.push_back((next, end, task));
        next = end + 1;
    }
    let waited = waited.elapsed();
    st.lock.check().await?;
    let written = Instant::now();
    let prune = to.saturating_sub(ctx.cfg.reorg_window);
    let rows = db::write_batch(
        ctx.pool,
        st.cursor.block_number,
        &f.events,
        &f.blocks(),
        new_cursor,
        prune,
    )
    .await?;
    st.cursor = new_cursor;
    ctx.metrics.indexed_block.store(to, Ordering::Relaxed);
    ctx.metrics.rows.fetch_add(rows, Ordering::Relaxed);
    ctx.metrics.batches.fetch_add(1, Ordering::Relaxed);
    // Times: waiting for the range (read while the last was written), its eth_getLogs call,
    // this write.
    info!(target: "medrec::indexer", from, to, events = rows,
        wait_ms = waited.as_millis() as u64, logs_ms = f.range.elapsed.as_millis() as u64,
        write_ms = written.elapsed().as_millis() as u64, "indexed");
    Ok(Step::Indexed {
        events: rows,
        head: f.head,
    })
}

/// Stops the reads ahead (their ranges no longer follow the cursor).
fn abort_all(prefetch: &mut Prefetch) {
    for (_, _, task) in prefetch.drain(..) {
        task.abort();
    }
}

/// Finds the last block both chains share (among the block hashes stored with the batches)
/// and rolls back to it.
async fn reorg(ctx: &Ctx<'_>, cursor: &mut Cursor) -> Result<()> {
    let window = ctx.cfg.reorg_window;
    let stored = db::recent_blocks(ctx.pool, cursor.block_number, window + 1).await?;
    let (n, hash) =
        medrec_chain::find_fork(ctx.node.as_ref(), &stored, cursor.block_number, window).await?;
    let fork = Cursor {
        block_number: n,
        block_hash: hash,
    };
    db::rollback(ctx.pool, fork).await?;
    warn!(target: "medrec::indexer", from = cursor.block_number, to = n, "reorg: rolled back");
    ctx.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
    ctx.metrics.indexed_block.store(n, Ordering::Relaxed);
    *cursor = fork;
    Ok(())
}

async fn acquire_lock(cfg: &Config, metrics: &Metrics) -> Result<db::WriterLock> {
    let mut announced = false;
    let mut backoff = Backoff::default();
    loop {
        match db::WriterLock::try_acquire(&cfg.database_url).await {
            Ok(Some(lock)) => {
                metrics.writer.store(1, Ordering::Relaxed);
                info!(target: "medrec::indexer", "holding the writer lock");
                return Ok(lock);
            }
            Ok(None) => {
                if !announced {
                    info!(target: "medrec::indexer", "another indexer is writing to this database; waiting for its lock");
                    announced = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) if e.is_retryable() => {
                metrics.db_errors.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next_wait();
                warn!(target: "medrec::indexer", error = %e, "database unavailable; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Counts a retried error as the node's or the database's.
fn count_error(metrics: &Metrics, e: &IndexerError) {
    match e {
        IndexerError::Chain(_) => metrics.rpc_errors.fetch_add(1, Ordering::Relaxed),
        _ => metrics.db_errors.fetch_add(1, Ordering::Relaxed),
    };
}

/// Retries `f` while its error is retryable, counting and logging each retry.
async fn retry<T, F, Fut>(metrics: &Metrics, what: &str, f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    medrec_chain::retry(f, |e: &IndexerError, wait| {
        count_error(metrics, e);
        warn!(target: "medrec::indexer", %what, error = %e, retry_in_ms = wait.as_millis() as u64, "retrying");
    })
    .await
}

/// A one-line progress bar on a terminal during backfill (indicatif, redrawn at most 5 times a
/// second).
struct Progress {
    bar: Option<ProgressBar>,
    start_block: u64,
    started: Instant,
    events: u64,
    drawn: bool,
}

impl Progress {
    fn new(enabled: bool, start_block: u64) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr_with_hz(5));
            bar.set_style(
                ProgressStyle::with_template("[{bar:30}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("#."),
            );
            bar
        });
        Self {
            bar,
            start_block,
            started: Instant::now(),
            events: 0,
            drawn: false,
        }
    }

    fn update(&mut self, block: u64, head: u64, events: u64) {
        self.events += events;
        let Some(bar) = &self.bar else { return };
        let total = head.saturating_sub(self.start_block).max(1);
        bar.set_length(total);
        bar.set_position(block.saturating_sub(self.start_block).min(total));
        let rate = self.events as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "block {block}/{head}  {} events  {rate:.0} events/s",
            self.events
        ));
        self.drawn = true;
    }

    /// Leaves the bar as it stands (if it was drawn) and stops drawing it.
    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            if self.drawn {
                bar.finish();
            } else {
                bar.finish_and_clear();
            }
        }
    }
}
