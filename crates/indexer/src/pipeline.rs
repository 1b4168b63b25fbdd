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
    let mut prefetch: Prefetch = None;
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

enum Step {
    Indexed { events: u64, head: u64 },
    CaughtUp,
    Reorged,
}

/// A range read from the node, checked, decoded, ready to write.
struct Fetched {
    from: u64,
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

/// A range being read while the previous one is written: (the cursor it starts after, task).
type Prefetch = Option<(Cursor, tokio::task::JoinHandle<Result<Fetch>>)>;

/// Reads the next range after `cursor` from the node and checks it hangs on `cursor`.
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
    let (from_hash, from_parent, from_ts) = node.header(from).await?;
    if from_parent != cursor.block_hash {
        return Ok(Fetch::Reorg);
    }
    let (to_hash, to_ts) = if to == from {
        (from_hash, from_ts)
    } else {
        let (h, _, ts) = node.header(to).await?;
        (h, ts)
    };
    let started = Instant::now();
    let logs = node.logs(&cfg.contracts, from, to).await?;
    // The end block must not have changed while the logs were read; nor the first one, which
    // ties the range to the cursor (a reorg between the two header reads could otherwise join
    // another branch's logs onto this one's past).
    let (to_hash_after, _, _) = node.header(to).await?;
    if to_hash_after != to_hash {
        return Err(IndexerError::Rpc(format!(
            "block {to} changed while reading logs; retrying"
        )));
    }
    if from != to && node.header(from).await?.0 != from_hash {
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
    Ok(Fetch::Batch(Fetched {
        from,
        to,
        to_hash,
        target,
        head,
        events,
        blocks,
        elapsed: started.elapsed(),
    }))
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
) -> Result<Step> {
    let fcfg = FetchCfg {
        contracts: cfg.contracts.clone(),
        confirmations: cfg.confirmations,
        start_block: cfg.start_block,
    };
    // The range read while the last one was written, if it starts where we stand.
    let fetched = match prefetch.take() {
        Some((after, task)) if after == *cursor => match task.await {
            Ok(r) => r?,
            Err(e) => return Err(IndexerError::Rpc(format!("prefetch task failed: {e}"))),
        },
        Some((_, task)) => {
            task.abort();
            fetch(&fcfg, node, *cursor, *range).await?
        }
        None => fetch(&fcfg, node, *cursor, *range).await?,
    };
    let f = match fetched {
        Fetch::CaughtUp { head } => {
            metrics.head_block.store(head, Ordering::Relaxed);
            return Ok(Step::CaughtUp);
        }
        Fetch::Reorg => {
            reorg(cfg, node, pool, metrics, cursor).await?;
            return Ok(Step::Reorged);
        }
        Fetch::Batch(f) => f,
    };
    metrics.head_block.store(f.head, Ordering::Relaxed);
    // Adapt the range to about 5,000-20,000 events per batch (small enough to overlap reading
    // and writing, large enough to amortise a call); shrink when a call is slow.
    if f.elapsed > Duration::from_secs(2) || f.events.len() > 20_000 {
        *range = (*range / 2).max(1);
    } else if f.events.len() < 5_000 && f.elapsed < Duration::from_millis(500) {
        *range = (*range * 2).min(cfg.max_range);
    }
    let new_cursor = Cursor {
        block_number: f.to,
        block_hash: f.to_hash,
    };
    // Backfilling: read the next range while this one is written.
    if f.to < f.target {
        let (node, fcfg, next_range) = (node.clone(), fcfg.clone(), *range);
        let task = tokio::spawn(async move { fetch(&fcfg, &node, new_cursor, next_range).await });
        *prefetch = Some((new_cursor, task));
    }
    lock.check().await?;
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
    info!(target: "medrec::indexer", from = f.from, to = f.to, events = rows, "indexed");
    Ok(Step::Indexed {
        events: rows,
        head: f.head,
    })
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
