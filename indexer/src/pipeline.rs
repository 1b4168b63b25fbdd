//! One pipeline for backfill and live tailing: ranges of eth_getLogs up to the head less the
//! confirmation depth, each written with its cursor in one transaction; reorgs detected by
//! block hashes and rolled back; outages retried with backoff.

use crate::db::{self, BlockRef, Cursor};
use crate::error::{IndexerError, Result};
use crate::events::{self, LogEvent};
use crate::metrics::Metrics;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use sqlx::PgPool;
use std::io::{IsTerminal, Write};
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

/// The node, seen through the few calls the pipeline makes.
struct Node {
    provider: DynProvider,
}

impl Node {
    fn new(url: &str) -> Result<Self> {
        let url = url
            .parse()
            .map_err(|_| IndexerError::Config(format!("bad RPC URL {url:?}")))?;
        Ok(Self {
            provider: ProviderBuilder::new().connect_http(url).erased(),
        })
    }

    async fn chain_id(&self) -> Result<u64> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| IndexerError::Rpc(e.to_string()))
    }

    async fn head(&self) -> Result<u64> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| IndexerError::Rpc(e.to_string()))
    }

    async fn header_opt(&self, n: u64) -> Result<Option<(B256, B256, u64)>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(|e| IndexerError::Rpc(e.to_string()))?;
        Ok(block.map(|b| (b.header.hash, b.header.parent_hash, b.header.timestamp)))
    }

    async fn header(&self, n: u64) -> Result<(B256, B256, u64)> {
        self.header_opt(n)
            .await?
            .ok_or_else(|| IndexerError::Rpc(format!("block {n} not found (reorg in progress?)")))
    }

    async fn logs(
        &self,
        contracts: &[Address],
        from: u64,
        to: u64,
    ) -> Result<Vec<alloy::rpc::types::Log>> {
        let filter = Filter::new()
            .address(contracts.to_vec())
            .event_signature(events::topics())
            .from_block(from)
            .to_block(to);
        self.provider.get_logs(&filter).await.map_err(|e| {
            let msg = e.to_string();
            let lower = msg.to_ascii_lowercase();
            if lower.contains("too many")
                || lower.contains("limit")
                || lower.contains("timeout")
                || lower.contains("timed out")
                || lower.contains("range")
            {
                IndexerError::RangeTooLarge(msg)
            } else {
                IndexerError::Rpc(msg)
            }
        })
    }
}

/// Runs the indexer until an error that retrying cannot fix (or the head, with `exit_at_head`).
pub async fn run(cfg: Config, pool: PgPool, metrics: Arc<Metrics>) -> Result<()> {
    let node = Arc::new(Node::new(&cfg.rpc_url)?);
    let chain_id = retry(&metrics, "chain id", || node.chain_id()).await?;
    // One writer at a time: wait for the lock.
    let mut lock = acquire_lock(&cfg, &metrics).await?;
    let mut cursor = match retry(&metrics, "read cursor", || {
        db::read_cursor(&pool, chain_id, &cfg.contracts)
    })
    .await?
    {
        Some(c) => c,
        None => {
            let (hash, _, ts) =
                retry(&metrics, "start block", || node.header(cfg.start_block)).await?;
            let c = Cursor {
                block_number: cfg.start_block,
                block_hash: hash,
            };
            retry(&metrics, "init cursor", || {
                db::init_cursor(&pool, chain_id, &cfg.contracts, c, ts)
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

    let mut range = cfg.initial_range.max(1);
    let mut progress = Progress::new(
        cfg.progress && std::io::stderr().is_terminal(),
        cursor.block_number,
    );
    let mut backoff = Backoff::default();
    let mut prefetch = Prefetch::new();
    // A backfill that stopped before the head may have left indexes to build.
    let mut bulk = Bulk {
        decided: false,
        deferred: retry(&metrics, "deferred indexes", || {
            db::has_deferred_indexes(&pool)
        })
        .await?,
    };
    loop {
        match step(
            &cfg,
            &node,
            &pool,
            &metrics,
            &mut lock,
            &mut cursor,
            &mut range,
            &mut prefetch,
            &mut bulk,
        )
        .await
        {
            Ok(Step::Indexed { events, head }) => {
                backoff.reset();
                progress.update(cursor.block_number, head, events);
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
            Err(IndexerError::RangeTooLarge(msg)) if range > 1 => {
                range = (range / 2).max(1);
                warn!(target: "medrec::indexer", range, %msg, "log range refused; shrinking");
            }
            Err(IndexerError::RangeTooLarge(msg)) => {
                // Even one block is refused: an RPC failure like any other.
                metrics.rpc_errors.fetch_add(1, Ordering::Relaxed);
                let wait = backoff.next();
                warn!(target: "medrec::indexer", %msg, retry_in_ms = wait.as_millis() as u64, "one-block log range refused; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) if e.is_retryable() => {
                match e {
                    IndexerError::Rpc(_) => metrics.rpc_errors.fetch_add(1, Ordering::Relaxed),
                    _ => metrics.db_errors.fetch_add(1, Ordering::Relaxed),
                };
                let wait = backoff.next();
                warn!(target: "medrec::indexer", error = %e, retry_in_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
                if matches!(e, IndexerError::DbUnavailable(_)) {
                    // The lock may have gone with the connection: take it again, re-read the cursor.
                    if lock.check().await.is_err() {
                        metrics.writer.store(0, Ordering::Relaxed);
                        lock = acquire_lock(&cfg, &metrics).await?;
                    }
                    if let Ok(Some(c)) = db::read_cursor(&pool, chain_id, &cfg.contracts).await {
                        cursor = c;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
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
    from: u64,
    /// The parent hash of block `from`: the range hangs on the cursor if it is the cursor's hash.
    from_parent: B256,
    to: u64,
    to_hash: B256,
    target: u64,
    head: u64,
    events: Vec<LogEvent>,
    blocks: Vec<BlockRef>,
    elapsed: Duration,
}

enum Fetch {
    Batch(Fetched),
    CaughtUp { head: u64 },
    Reorg,
}

/// What reading a range needs (cheap to clone into a prefetch task).
#[derive(Clone)]
struct FetchCfg {
    contracts: Vec<Address>,
    confirmations: u64,
    start_block: u64,
}

/// How many ranges are read ahead while one is written. Two calls in flight keep the node
/// busy while the indexer decodes one answer and PostgreSQL writes another.
const READ_AHEAD: usize = 2;

/// Ranges being read while the current one is written, in order, each following the previous
/// one: (from, to, task). Whether a range hangs on the cursor is checked when it is taken.
type Prefetch = std::collections::VecDeque<(u64, u64, tokio::task::JoinHandle<Result<Fetched>>)>;

/// Reads the next range after `cursor` from the node.
async fn fetch(cfg: &FetchCfg, node: &Node, cursor: Cursor, range: u64) -> Result<Fetch> {
    let head = node.head().await?;
    let target = head.saturating_sub(cfg.confirmations);
    if cursor.block_number >= target {
        // Caught up; still notice a reorg that replaced (or removed) the cursor block.
        if cursor.block_number > cfg.start_block {
            let same = match node.header_opt(cursor.block_number).await? {
                Some((hash, _, _)) => hash == cursor.block_hash,
                None => false,
            };
            if !same {
                return Ok(Fetch::Reorg);
            }
        }
        return Ok(Fetch::CaughtUp { head });
    }
    let from = cursor.block_number + 1;
    let to = (from + range - 1).min(target);
    Ok(Fetch::Batch(
        fetch_range(&cfg.contracts, node, from, to, target, head).await?,
    ))
}

/// Reads blocks `from..=to` (known to exist up to `target` of a chain whose head was `head`):
/// their logs between two reads of the end blocks' hashes, decoded.
async fn fetch_range(
    contracts: &[Address],
    node: &Node,
    from: u64,
    to: u64,
    target: u64,
    head: u64,
) -> Result<Fetched> {
    let ((from_hash, from_parent, from_ts), (to_hash, to_ts)) = if to == from {
        let (h, p, ts) = node.header(from).await?;
        ((h, p, ts), (h, ts))
    } else {
        let (a, b) = tokio::try_join!(node.header(from), node.header(to))?;
        (a, (b.0, b.2))
    };
    let started = Instant::now();
    let logs = node.logs(contracts, from, to).await?;
    let elapsed = started.elapsed();
    // The end block must not have changed while the logs were read; nor the first one, which
    // ties the range to the cursor (a reorg between the two header reads could otherwise join
    // another branch's logs onto this one's past).
    let (to_after, from_after) = if to == from {
        let h = node.header(to).await?.0;
        (h, h)
    } else {
        let (b, a) = tokio::try_join!(node.header(to), node.header(from))?;
        (b.0, a.0)
    };
    if to_after != to_hash {
        return Err(IndexerError::Rpc(format!(
            "block {to} changed while reading logs; retrying"
        )));
    }
    if from_after != from_hash {
        return Err(IndexerError::Rpc(format!(
            "block {from} changed while reading logs; retrying"
        )));
    }
    let mut events: Vec<LogEvent> = Vec::with_capacity(logs.len());
    let mut blocks = vec![BlockRef {
        number: to,
        hash: to_hash,
        timestamp: to_ts,
    }];
    if from != to {
        blocks.push(BlockRef {
            number: from,
            hash: from_hash,
            timestamp: from_ts,
        });
    }
    for log in &logs {
        if log.removed {
            return Err(IndexerError::Rpc(
                "the node returned a removed log; retrying".into(),
            ));
        }
        match events::decode(log) {
            Ok(Some(e)) => {
                if (e.block_number == to && e.block_hash != to_hash)
                    || (e.block_number == from && e.block_hash != from_hash)
                {
                    return Err(IndexerError::Rpc(
                        "a log's block hash differs from the header; retrying".into(),
                    ));
                }
                events.push(e);
            }
            Ok(None) => {}
            Err(msg) => return Err(IndexerError::Integrity(msg)),
        }
    }
    events.sort_by_key(|e| (e.block_number, e.log_index));
    Ok(Fetched {
        from,
        from_parent,
        to,
        to_hash,
        target,
        head,
        events,
        blocks,
        elapsed,
    })
}

#[allow(clippy::too_many_arguments)]
async fn step(
    cfg: &Config,
    node: &Arc<Node>,
    pool: &PgPool,
    metrics: &Metrics,
    lock: &mut db::WriterLock,
    cursor: &mut Cursor,
    range: &mut u64,
    prefetch: &mut Prefetch,
    bulk: &mut Bulk,
) -> Result<Step> {
    let fcfg = FetchCfg {
        contracts: cfg.contracts.clone(),
        confirmations: cfg.confirmations,
        start_block: cfg.start_block,
    };
    // The range read while the last one was written, if it starts where we stand.
    let waited = Instant::now();
    let fetched = match prefetch.pop_front() {
        Some((from, _, task)) if from == cursor.block_number + 1 => match task.await {
            Ok(r) => Fetch::Batch(r?),
            Err(e) => return Err(IndexerError::Rpc(format!("prefetch task failed: {e}"))),
        },
        Some((_, _, task)) => {
            task.abort();
            abort_all(prefetch);
            fetch(&fcfg, node, *cursor, *range).await?
        }
        None => fetch(&fcfg, node, *cursor, *range).await?,
    };
    // A range that does not hang on the cursor: the chain changed under it (or under the
    // ranges read ahead of it).
    let fetched = match fetched {
        Fetch::Batch(f) if f.from_parent != cursor.block_hash => {
            abort_all(prefetch);
            Fetch::Reorg
        }
        other => other,
    };
    let f = match fetched {
        Fetch::CaughtUp { head } => {
            metrics.head_block.store(head, Ordering::Relaxed);
            if bulk.deferred {
                let started = Instant::now();
                lock.check().await?;
                db::build_deferred_indexes(pool).await?;
                bulk.deferred = false;
                info!(target: "medrec::indexer", ms = started.elapsed().as_millis() as u64, "built the deferred indexes");
            }
            return Ok(Step::CaughtUp);
        }
        Fetch::Reorg => {
            reorg(cfg, node, pool, metrics, cursor).await?;
            return Ok(Step::Reorged);
        }
        Fetch::Batch(f) => f,
    };
    metrics.head_block.store(f.head, Ordering::Relaxed);
    *range = next_range(
        *range,
        f.to - f.from + 1,
        f.events.len() as u64,
        f.elapsed,
        cfg.max_range,
    );
    let new_cursor = Cursor {
        block_number: f.to,
        block_hash: f.to_hash,
    };
    // A long backfill into few stored rows: build the pointer indexes once at the head.
    if !bulk.decided && f.to < f.target && cfg.defer_indexes_min_events > 0 {
        bulk.decided = true;
        let blocks = (f.to - f.from + 1) as u128;
        let remaining = ((f.target - f.to) as u128 * f.events.len() as u128 / blocks) as u64;
        if remaining >= cfg.defer_indexes_min_events {
            lock.check().await?;
            if db::defer_indexes(pool, remaining).await? {
                bulk.deferred = true;
                info!(target: "medrec::indexer", remaining, "backfill: indexes deferred to the head");
            }
        }
    }
    // Backfilling: read the next ranges (up to the target this range saw) while this one is
    // written.
    let mut next = prefetch.back().map_or(f.to, |(_, to, _)| *to) + 1;
    while prefetch.len() < READ_AHEAD && next <= f.target {
        let to = (next + *range - 1).min(f.target);
        let (node, contracts, (target, head)) =
            (node.clone(), fcfg.contracts.clone(), (f.target, f.head));
        let task =
            tokio::spawn(
                async move { fetch_range(&contracts, &node, next, to, target, head).await },
            );
        prefetch.push_back((next, to, task));
        next = to + 1;
    }
    let waited = waited.elapsed();
    lock.check().await?;
    let written = Instant::now();
    let prune = f.to.saturating_sub(cfg.reorg_window);
    let rows = db::write_batch(
        pool,
        cursor.block_number,
        &f.events,
        &f.blocks,
        new_cursor,
        prune,
    )
    .await?;
    *cursor = new_cursor;
    metrics.indexed_block.store(f.to, Ordering::Relaxed);
    metrics.rows.fetch_add(rows, Ordering::Relaxed);
    metrics.batches.fetch_add(1, Ordering::Relaxed);
    // Times: waiting for the range (read while the last was written), its eth_getLogs call,
    // this write.
    info!(target: "medrec::indexer", from = f.from, to = f.to, events = rows,
        wait_ms = waited.as_millis() as u64, logs_ms = f.elapsed.as_millis() as u64,
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

/// Events per batch the range aims at when a batch falls outside 5,000-20,000: small enough
/// that reading the next range overlaps writing this one from the first batch on, large enough
/// to amortise a call and a transaction.
const TARGET_EVENTS: u64 = 10_000;

/// The next log range in blocks, after `blocks` blocks gave `events` events in `elapsed`.
/// Outside 5,000-20,000 events the range jumps to the event density's estimate of
/// TARGET_EVENTS (at most doubling when the density is unknown); it halves on a slow call.
fn next_range(range: u64, blocks: u64, events: u64, elapsed: Duration, max: u64) -> u64 {
    let blocks = blocks.max(1);
    let next = if elapsed > Duration::from_secs(2) {
        range / 2
    } else if events > 20_000 {
        (blocks * TARGET_EVENTS / events).min(range / 2)
    } else if events < 5_000 && elapsed < Duration::from_millis(500) {
        match (blocks * TARGET_EVENTS).checked_div(events) {
            Some(estimate) => estimate.max(range),
            None => range * 2,
        }
    } else {
        range
    };
    next.clamp(1, max.max(1))
}

/// Finds the last block both chains share and rolls back to it.
async fn reorg(
    cfg: &Config,
    node: &Node,
    pool: &PgPool,
    metrics: &Metrics,
    cursor: &mut Cursor,
) -> Result<()> {
    let stored = db::recent_blocks(pool, cursor.block_number, cfg.reorg_window + 1).await?;
    for (n, hash) in stored {
        if cursor.block_number - n > cfg.reorg_window {
            break;
        }
        let Some((chain_hash, _, _)) = node.header_opt(n).await? else {
            continue;
        };
        if chain_hash == hash {
            let fork = Cursor {
                block_number: n,
                block_hash: hash,
            };
            db::rollback(pool, fork).await?;
            warn!(target: "medrec::indexer", from = cursor.block_number, to = n, "reorg: rolled back");
            metrics.reorgs.fetch_add(1, Ordering::Relaxed);
            metrics.indexed_block.store(n, Ordering::Relaxed);
            *cursor = fork;
            return Ok(());
        }
    }
    Err(IndexerError::DeepReorg {
        cursor: cursor.block_number,
        window: cfg.reorg_window,
    })
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
                let wait = backoff.next();
                warn!(target: "medrec::indexer", error = %e, "database unavailable; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Retries `f` while its error is retryable.
async fn retry<T, F, Fut>(metrics: &Metrics, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = Backoff::default();
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() => {
                match e {
                    IndexerError::Rpc(_) => metrics.rpc_errors.fetch_add(1, Ordering::Relaxed),
                    _ => metrics.db_errors.fetch_add(1, Ordering::Relaxed),
                };
                let wait = backoff.next();
                warn!(target: "medrec::indexer", %what, error = %e, retry_in_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Exponential backoff from 100 ms to 5 s.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ms = 100u64.saturating_mul(1 << self.attempt.min(6)).min(5_000);
        self.attempt += 1;
        Duration::from_millis(ms)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A one-line progress bar on a terminal during backfill.
struct Progress {
    enabled: bool,
    start_block: u64,
    started: Instant,
    events: u64,
    last_draw: Instant,
    drawn: bool,
}

impl Progress {
    fn new(enabled: bool, start_block: u64) -> Self {
        Self {
            enabled,
            start_block,
            started: Instant::now(),
            events: 0,
            last_draw: Instant::now(),
            drawn: false,
        }
    }

    fn update(&mut self, block: u64, head: u64, events: u64) {
        self.events += events;
        if !self.enabled || self.last_draw.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last_draw = Instant::now();
        let total = head.saturating_sub(self.start_block).max(1);
        let done = block.saturating_sub(self.start_block).min(total);
        let width = 30;
        let filled = (done * width / total) as usize;
        let rate = self.events as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] block {block}/{head}  {} events  {:.0} events/s ",
            "#".repeat(filled),
            ".".repeat(width as usize - filled),
            self.events,
            rate
        );
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
        self.enabled = false;
    }
}

#[cfg(test)]
mod tests {
    use super::next_range;
    use std::time::Duration;

    const FAST: Duration = Duration::from_millis(50);

    #[test]
    fn the_range_aims_at_ten_thousand_events_outside_the_band() {
        // 1,000 events per block: from 100 blocks (100,000 events) straight to 10 blocks.
        assert_eq!(next_range(100, 100, 100_000, FAST, 10_000), 10);
        // Inside 5,000-20,000 events it stays.
        assert_eq!(next_range(10, 10, 10_000, FAST, 10_000), 10);
        assert_eq!(next_range(10, 10, 19_000, FAST, 10_000), 10);
        // Sparse: grows to the density's estimate, never shrinks below the current range.
        assert_eq!(next_range(10, 10, 100, FAST, 10_000), 1_000);
        assert_eq!(next_range(10, 3, 4_000, FAST, 10_000), 10);
        // No events: doubles; capped by the largest range.
        assert_eq!(next_range(10, 10, 0, FAST, 10_000), 20);
        assert_eq!(next_range(8_000, 8_000, 0, FAST, 10_000), 10_000);
        assert_eq!(next_range(10, 10, 1, FAST, 50), 50);
    }

    #[test]
    fn too_many_events_or_a_slow_call_shrink_it() {
        // Always at least halves when over 20,000 events, down to one block.
        assert_eq!(next_range(4, 4, 30_000, FAST, 10_000), 1);
        assert_eq!(next_range(1, 1, 50_000, FAST, 10_000), 1);
        assert_eq!(next_range(100, 100, 21_000, FAST, 10_000), 47);
        assert_eq!(
            next_range(100, 100, 10_000, Duration::from_secs(3), 10_000),
            50
        );
        // A slow call with few events does not grow it.
        assert_eq!(
            next_range(100, 100, 10, Duration::from_millis(800), 10_000),
            100
        );
    }
}
