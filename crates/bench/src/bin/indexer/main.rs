//! `medrec-indexer-bench`: the indexer's throughput and latency on a real chain.
//!
//! Starts a fresh anvil, deploys the registries, fills the chain with `PointerAnchored` events
//! (many `anchorBatch` transactions per block), then measures, in one run on the same chain:
//!
//! 1. raw `eth_getLogs` throughput over the whole range (the indexer's addresses and topics),
//!    for a few chunk sizes;
//! 2. backfill throughput of the real `medrec-indexer` binary (`--exit-at-head`, start to exit)
//!    into a fresh database, and its ratio to the raw rate;
//! 3. live lag while the indexer tails the chain: from a block mined (evm_mine returned) to its
//!    event row visible in PostgreSQL, polled every 2 ms;
//! 4. where the time goes: the indexer's backfill batches and some live steps replayed
//!    in-process through its library, stage by stage (RPC, decode, `db::write_batch`).
//!
//! It prints figures, not pass/fail, ending with a markdown table. `DATABASE_URL` must name a
//! role that may create databases (`export DATABASE_URL=$(bash script/pg.sh)`); the bench
//! creates `medrec_bench_<pid>` and `medrec_bench_<pid>_replay` and drops them at the end. The
//! indexer binary is taken from the bench's own folder (build both with
//! `cargo build -p medrec-indexer --bins`, same profile).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod fixture;
mod logs;
mod report;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::B256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Log;
use clap::Parser;
use fixture::{World, check_receipt, fill, mine};
use logs::{Batch, Indexer, batches, msg, print_slow, print_warnings, slow_statements, warnings};
use medrec_indexer::db::{self, BlockRef, Cursor};
use medrec_indexer::events;
use medrec_test_support::{Anvil, ScratchDb, now};
use report::{Pressure, anvil_version, cpu_model, loadavg, mem_total, pct, pg_version, rate, sep};
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

fn fail(msg: impl Into<String>) -> Error {
    msg.into().into()
}

/// Benchmarks the medrec indexer against a fresh anvil: backfill vs raw eth_getLogs, and live lag.
#[derive(Debug, Parser)]
#[command(name = "medrec-indexer-bench")]
struct Args {
    /// Events to fill the chain with (rounded up to whole anchorBatch transactions)
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Pointers per anchorBatch transaction (the contract allows at most 200)
    #[arg(long, default_value_t = 200)]
    batch: u64,
    /// anchorBatch transactions per block
    #[arg(long, default_value_t = 5)]
    txs_per_block: u64,
    /// Patients the pointers cycle through (anvil dev accounts; each grants the provider)
    #[arg(long, default_value_t = 100)]
    patients: usize,
    /// eth_getLogs chunk sizes in blocks for the raw rate, comma separated; the best rate is
    /// the reference for the ratio
    #[arg(long, value_delimiter = ',', default_value = "1000,100,20")]
    raw_chunks: Vec<u64>,
    /// Live-lag samples
    #[arg(long, default_value_t = 200)]
    live: usize,
    /// Largest random pause between live samples, in ms (spreads them over the indexer's poll)
    #[arg(long, default_value_t = 100)]
    live_jitter_ms: u64,
    /// Extra arguments for both medrec-indexer runs, whitespace separated (e.g. "--max-range 50")
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    indexer_args: String,
    /// Extra arguments for anvil, whitespace separated. The default keeps no historical states:
    /// otherwise anvil writes them to disk as the chain grows (about 170 MB in a default run),
    /// I/O that competes with PostgreSQL's commits during the live phase
    #[arg(long, default_value = "--prune-history", allow_hyphen_values = true)]
    anvil_args: String,
    /// Live steps to replay in-process, stage by stage, after the live phase
    #[arg(long, default_value_t = 50)]
    live_replay: usize,
    /// Skip the in-process replay that splits the indexer's steps into RPC, decode and DB time
    #[arg(long)]
    no_breakdown: bool,
    /// Keep the databases and the work folder (logs, deployments file)
    #[arg(long)]
    keep: bool,
    /// PostgreSQL URL of a role that may CREATE DATABASE
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        let mut cleanup = Cleanup::new(&args);
        let result = run(&args, &mut cleanup).await;
        cleanup.run().await;
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: failed: {e}");
                if args.keep {
                    eprintln!("bench: logs kept in {}", cleanup.dir.display());
                }
                ExitCode::FAILURE
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

// ---------------------------------------------------------------------------------------------
// Cleanup

/// What `run` leaves behind: databases (dropped with this, unless `--keep`) and the work
/// folder.
struct Cleanup {
    admin_url: String,
    databases: Vec<ScratchDb>,
    dir: PathBuf,
    keep: bool,
}

impl Cleanup {
    fn new(args: &Args) -> Self {
        Self {
            admin_url: args.database_url.clone(),
            databases: vec![],
            dir: std::env::temp_dir().join(format!("medrec-bench-{}", std::process::id())),
            keep: args.keep,
        }
    }

    async fn run(&mut self) {
        if self.keep {
            for d in &mut self.databases {
                eprintln!("bench: kept database {}", d.keep());
            }
            return;
        }
        self.databases.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Creates database `name` (dropped with this) and returns its URL.
    async fn create_database(&mut self, name: &str) -> Result<String> {
        let db = ScratchDb::try_create_named(&self.admin_url, name)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let url = db.url.clone();
        self.databases.push(db);
        Ok(url)
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

struct Raw {
    chunk: u64,
    calls: u64,
    logs: u64,
    secs: f64,
}

impl Raw {
    fn rate(&self) -> f64 {
        self.logs as f64 / self.secs.max(1e-9)
    }
}

/// eth_getLogs over the whole range in chunks of `chunk` blocks (alloy decodes the JSON into
/// `Log`s, as the indexer's provider does; nothing else is decoded).
async fn raw_get_logs(w: &World, head: u64, chunk: u64) -> Result<Raw> {
    let chunk = chunk.max(1);
    let started = Instant::now();
    let (mut calls, mut logs) = (0u64, 0u64);
    let mut from = w.start_block + 1;
    while from <= head {
        let to = (from + chunk - 1).min(head);
        logs += w.provider.get_logs(&w.filter(from, to)).await?.len() as u64;
        calls += 1;
        from = to + 1;
    }
    Ok(Raw {
        chunk,
        calls,
        logs,
        secs: started.elapsed().as_secs_f64(),
    })
}

async fn count_rows(db_url: &str) -> Result<u64> {
    let mut conn = PgConnection::connect(db_url).await?;
    let mut total = 0i64;
    for t in events::tables() {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&mut conn)
            .await?;
        total += n;
    }
    conn.close().await?;
    Ok(total as u64)
}

struct Backfill {
    secs: f64,
    /// From "indexing from cursor" to exit: without process start, connect and migrations.
    indexing_secs: f64,
    rows: u64,
    batches: Vec<Batch>,
    /// Time between consecutive batch lines (the first from "indexing from cursor").
    batch_secs: Vec<f64>,
}

impl Backfill {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.secs.max(1e-9)
    }
}

/// The indexer's `pipeline::step`, replayed in-process through its library with each stage
/// timed: head + 3 headers, eth_getLogs, decode + sort, `db::write_batch` (one transaction:
/// events, history, pointers, block hashes, cursor).
struct Replayer {
    pool: sqlx::PgPool,
    cursor: Cursor,
}

/// Seconds per stage of one replayed step.
#[derive(Default, Clone, Copy)]
struct StepTimes {
    head_and_headers: f64,
    get_logs: f64,
    decode: f64,
    write: f64,
    rows: u64,
}

impl StepTimes {
    fn total(&self) -> f64 {
        self.head_and_headers + self.get_logs + self.decode + self.write
    }
}

impl Replayer {
    async fn new(w: &World, db_url: &str) -> Result<Self> {
        let pool = db::pool(db_url, 8).await?;
        db::migrate(&pool).await?;
        let (hash, ts) = Self::header(w, w.start_block).await?;
        let cursor = Cursor {
            block_number: w.start_block,
            block_hash: hash,
        };
        db::init_cursor(&pool, w.chain_id, &w.contracts(), cursor, ts).await?;
        Ok(Self { pool, cursor })
    }

    async fn header(w: &World, n: u64) -> Result<(B256, u64)> {
        let b = w
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await?
            .ok_or_else(|| fail(format!("block {n} not found")))?;
        Ok((b.header.hash, b.header.timestamp))
    }

    /// Indexes `from..=to` as the pipeline does (from must follow the cursor).
    async fn step(&mut self, w: &World, from: u64, to: u64) -> Result<StepTimes> {
        let mut s = StepTimes::default();
        let t = Instant::now();
        let _head = w.provider.get_block_number().await?;
        let (from_hash, from_ts) = Self::header(w, from).await?;
        let (to_hash, to_ts) = if to == from {
            (from_hash, from_ts)
        } else {
            Self::header(w, to).await?
        };
        s.head_and_headers += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let logs: Vec<Log> = w.provider.get_logs(&w.filter(from, to)).await?;
        s.get_logs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = Self::header(w, to).await?;
        s.head_and_headers += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut logs = logs;
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let evs = events::Batch::decode(&logs).map_err(fail)?;
        s.decode = t.elapsed().as_secs_f64();
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
        let new_cursor = Cursor {
            block_number: to,
            block_hash: to_hash,
        };
        let t = Instant::now();
        s.rows = db::write_batch(
            &self.pool,
            self.cursor.block_number,
            &evs,
            &blocks,
            new_cursor,
            to.saturating_sub(64),
        )
        .await?;
        s.write = t.elapsed().as_secs_f64();
        self.cursor = new_cursor;
        Ok(s)
    }
}

/// Per-stage totals of the replayed backfill batches.
#[derive(Default)]
struct Stages {
    batches: u64,
    events: u64,
    sum: StepTimes,
}

/// Replays the indexer's backfill batches.
async fn replay_backfill(r: &mut Replayer, w: &World, ranges: &[(u64, u64)]) -> Result<Stages> {
    let mut s = Stages::default();
    for &(from, to) in ranges {
        let t = r.step(w, from, to).await?;
        s.batches += 1;
        s.events += t.rows;
        s.sum.head_and_headers += t.head_and_headers;
        s.sum.get_logs += t.get_logs;
        s.sum.decode += t.decode;
        s.sum.write += t.write;
    }
    Ok(s)
}

/// Live steps replayed in-process (no indexer running): catch up, then `n` times one anchor
/// mined and indexed at once, without the poll wait.
async fn replay_live(r: &mut Replayer, w: &mut World, n: usize) -> Result<Vec<StepTimes>> {
    let head = w.provider.get_block_number().await?;
    if head > r.cursor.block_number {
        let from = r.cursor.block_number + 1;
        r.step(w, from, head).await?;
    }
    let mut nonce = w.provider.get_transaction_count(w.hospital).await?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let req = w.anchor_one(nonce);
        nonce += 1;
        let _pending = w.provider.send_transaction(req).await?;
        mine(&w.provider).await?;
        let b = r.cursor.block_number + 1;
        let t = r.step(w, b, b).await?;
        if t.rows != 1 {
            return Err(fail(format!(
                "live replay: block {b} had {} events",
                t.rows
            )));
        }
        out.push(t);
    }
    Ok(out)
}

struct Live {
    /// (seconds since the live phase began, lag in ms from evm_mine's return) per sample.
    samples: Vec<(f64, f64)>,
    /// From evm_mine's return to the row visible.
    lags_ms: Vec<f64>,
    /// From evm_mine's call to the row visible (an upper bound when mining is slow).
    lags_call_ms: Vec<f64>,
    /// From the block first reported by eth_blockNumber (polled every ~1 ms) to the row visible.
    lags_seen_ms: Vec<f64>,
    mine_ms: Vec<f64>,
    batches: usize,
}

/// N times: a random pause, one anchor transaction, evm_mine (the mined instant is when it
/// returns), then poll the event row every 2 ms until it is visible.
async fn live(w: &mut World, args: &Args, db_url: &str, idx: &Indexer) -> Result<Live> {
    let mut conn = PgConnection::connect(db_url).await?;
    let mut nonce = w.provider.get_transaction_count(w.hospital).await?;
    let mut block = w.provider.get_block_number().await?;
    let mut rng = now() ^ 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut lags_ms = Vec::with_capacity(args.live);
    let mut mine_ms = Vec::with_capacity(args.live);
    let mut lags_call_ms = Vec::with_capacity(args.live);
    let mut lags_seen_ms = Vec::with_capacity(args.live);
    let before = batches(&idx.lines()).len();
    let began = Instant::now();
    let mut samples = Vec::with_capacity(args.live);
    for i in 0..args.live {
        // xorshift64: pause 0..jitter ms so samples fall anywhere in the indexer's poll cycle.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let pause = if args.live_jitter_ms > 0 {
            rng % (args.live_jitter_ms * 1000)
        } else {
            0
        };
        tokio::time::sleep(Duration::from_micros(pause)).await;
        let req = w.anchor_one(nonce);
        nonce += 1;
        let tx = *w.provider.send_transaction(req).await?.tx_hash();
        // Watch eth_blockNumber during mining: when the block is first visible on the node.
        let watcher = {
            let p = w.provider.clone();
            let target = block + 1;
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(15);
                while Instant::now() < deadline {
                    if p.get_block_number().await.is_ok_and(|n| n >= target) {
                        return Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                None
            })
        };
        let t0 = Instant::now();
        mine(&w.provider).await?;
        let mined = Instant::now();
        mine_ms.push((mined - t0).as_secs_f64() * 1e3);
        block += 1;
        let seen_on_node = watcher
            .await?
            .ok_or_else(|| fail(format!("block {block} never reported by eth_blockNumber")))?;
        loop {
            let seen: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM ev_pointer_anchored WHERE block_number = $1)",
            )
            .bind(block as i64)
            .fetch_one(&mut conn)
            .await?;
            if seen {
                lags_ms.push(mined.elapsed().as_secs_f64() * 1e3);
                samples.push((
                    (mined - began).as_secs_f64(),
                    mined.elapsed().as_secs_f64() * 1e3,
                ));
                lags_call_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                lags_seen_ms.push(seen_on_node.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if mined.elapsed() > Duration::from_secs(15) {
                check_receipt(&w.provider, tx).await?;
                return Err(fail(format!(
                    "live sample {i}: block {block} not indexed after 15 s; indexer log:\n{}",
                    idx.last_lines(10)
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    conn.close().await?;
    let head = w.provider.get_block_number().await?;
    if head != block {
        return Err(fail(format!(
            "expected head {block}, the node is at {head}"
        )));
    }
    Ok(Live {
        samples,
        lags_ms,
        lags_call_ms,
        lags_seen_ms,
        mine_ms,
        batches: batches(&idx.lines()).len() - before,
    })
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(args: &Args, cleanup: &mut Cleanup) -> Result<()> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let exe = std::env::current_exe()?;
    let indexer_bin = exe
        .parent()
        .ok_or_else(|| fail("no folder for the current executable"))?
        .join("medrec-indexer");
    if !indexer_bin.exists() {
        return Err(fail(format!(
            "{} missing: build it with `cargo build -p medrec-indexer --bins` (same profile)",
            indexer_bin.display()
        )));
    }
    let extra: Vec<String> = args
        .indexer_args
        .split_whitespace()
        .map(str::to_string)
        .collect();
    std::fs::create_dir_all(&cleanup.dir)?;
    let pid = std::process::id();
    println!(
        "medrec indexer bench ({profile} build): {} events, {} per tx, {} txs per block (load average {})",
        sep(args.events),
        args.batch,
        args.txs_per_block,
        loadavg()
    );

    // 1. Chain and fill.
    let t = Instant::now();
    let anvil_extra: Vec<String> = args
        .anvil_args
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let accounts = (args.patients.max(1) + 2).max(10).to_string();
    let mut anvil_args = vec!["--gas-limit", "1000000000", "--accounts", &accounts];
    anvil_args.extend(anvil_extra.iter().map(String::as_str));
    let anvil = Anvil::start(&anvil_args);
    let rpc_url = anvil.url();
    let provider = ProviderBuilder::new()
        .connect_http(rpc_url.parse()?)
        .erased();
    let mut w = World::deploy(provider, args.patients).await?;
    let setup_secs = t.elapsed().as_secs_f64();
    println!(
        "setup: anvil on {rpc_url}, registries deployed, provider credentialed, {} grants ({setup_secs:.1} s)",
        w.patients.len()
    );
    let f = fill(&mut w, args).await?;
    // The setup's own events (cap set, credential, grants) come before the fill.
    let setup_logs = w
        .provider
        .get_logs(&w.filter(w.start_block + 1, f.first_block - 1))
        .await?
        .len() as u64;
    let expected_logs = f.events + setup_logs;
    println!(
        "fill: {} PointerAnchored events in {} txs over {} blocks ({:.0} events/block, {} gas per anchorBatch) in {:.1} s ({} events/s); head {}",
        sep(f.events),
        f.txs,
        f.blocks,
        f.events as f64 / f.blocks.max(1) as f64,
        sep(f.gas_per_tx),
        f.secs,
        rate(f.events as f64 / f.secs),
        f.head
    );

    // 2. Raw eth_getLogs.
    let mut raws = Vec::new();
    for &chunk in &args.raw_chunks {
        let r = raw_get_logs(&w, f.head, chunk).await?;
        if r.logs != expected_logs {
            return Err(fail(format!(
                "eth_getLogs returned {} logs, expected {expected_logs}",
                r.logs
            )));
        }
        println!(
            "raw eth_getLogs: chunk {} blocks, {} calls, {} logs in {:.2} s = {} events/s",
            r.chunk,
            r.calls,
            sep(r.logs),
            r.secs,
            rate(r.rate())
        );
        raws.push(r);
    }
    let best_raw = raws
        .iter()
        .max_by(|a, b| a.rate().total_cmp(&b.rate()))
        .ok_or_else(|| fail("no --raw-chunks given"))?;

    // 3. Backfill with the real binary.
    let db_name = format!("medrec_bench_{pid}");
    let db_url = cleanup.create_database(&db_name).await?;
    let deployments = cleanup.dir.join("31337.json");
    w.write_deployments(&deployments);
    let pressure = Pressure::now();
    let mut idx = Indexer::spawn(
        &indexer_bin,
        &rpc_url,
        &db_url,
        &deployments,
        true,
        &extra,
        cleanup.dir.join("backfill.log"),
    )?;
    let end = idx.wait(Duration::from_secs(3600)).await?;
    let lines = idx.lines();
    let bs = batches(&lines);
    let began = lines
        .iter()
        .find(|(_, v)| msg(v) == Some("indexing from cursor"))
        .map(|(t, _)| *t)
        .unwrap_or(idx.started);
    let mut batch_secs = Vec::new();
    let mut prev = began;
    for b in &bs {
        batch_secs.push((b.at - prev).as_secs_f64());
        prev = b.at;
    }
    println!(
        "  stall pressure during the backfill (Linux PSI, all processes, bench included): {}",
        pressure.since()
    );
    print_slow("backfill", &slow_statements(&lines));
    print_warnings("backfill", &warnings(&lines));
    let bf = Backfill {
        secs: (end - idx.started).as_secs_f64(),
        indexing_secs: (end - began).as_secs_f64(),
        rows: count_rows(&db_url).await?,
        batches: bs,
        batch_secs,
    };
    drop(idx);
    if bf.rows != expected_logs {
        return Err(fail(format!(
            "the indexer wrote {} event rows, expected {expected_logs}",
            bf.rows
        )));
    }
    let ratio = bf.rate() / best_raw.rate();
    let ranges: Vec<(u64, u64)> = bf.batches.iter().map(|b| (b.from, b.to)).collect();
    let spans: Vec<u64> = ranges.iter().map(|(a, b)| b - a + 1).collect();
    let max_batch_events = bf.batches.iter().map(|b| b.events).max().unwrap_or(0);
    println!(
        "backfill: {} rows in {:.2} s ({:.2} s after start-up) = {} events/s; {} batches, ranges {}..{} blocks, largest batch {} events",
        sep(bf.rows),
        bf.secs,
        bf.indexing_secs,
        rate(bf.rate()),
        bf.batches.len(),
        spans.iter().min().copied().unwrap_or(0),
        spans.iter().max().copied().unwrap_or(0),
        sep(max_batch_events)
    );
    if bf.batches.len() <= 12 {
        for (b, s) in bf.batches.iter().zip(&bf.batch_secs) {
            println!(
                "  batch {}..{}: {} events, {:.2} s",
                b.from,
                b.to,
                sep(b.events),
                s
            );
        }
    }
    println!(
        "ratio backfill / raw (best chunk, {} blocks): {ratio:.2}",
        best_raw.chunk
    );

    // 4. Live lag.
    println!("live: starting the indexer (load average {})", loadavg());
    let idx = {
        let mut idx = Indexer::spawn(
            &indexer_bin,
            &rpc_url,
            &db_url,
            &deployments,
            false,
            &extra,
            cleanup.dir.join("live.log"),
        )?;
        idx.wait_for("indexing from cursor", Duration::from_secs(30))
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        idx
    };
    let pressure = Pressure::now();
    let lv = live(&mut w, args, &db_url, &idx).await?;
    let live_pressure = pressure.since();
    let live_slow = slow_statements(&idx.lines());
    let live_warnings = warnings(&idx.lines());
    drop(idx);
    let mut lags = lv.lags_ms.clone();
    lags.sort_by(f64::total_cmp);
    let mut mines = lv.mine_ms.clone();
    mines.sort_by(f64::total_cmp);
    let mut lags_call = lv.lags_call_ms.clone();
    lags_call.sort_by(f64::total_cmp);
    println!(
        "live lag over {} blocks (one anchor each), from evm_mine's return: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms; {} indexer batches",
        lags.len(),
        pct(&lags, 50.0),
        pct(&lags, 99.0),
        pct(&lags, 100.0),
        pct(&lags, 0.0),
        lv.batches
    );
    let mut lags_seen = lv.lags_seen_ms.clone();
    lags_seen.sort_by(f64::total_cmp);
    println!(
        "  from the block first seen by eth_blockNumber (1 ms polling): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&lags_seen, 50.0),
        pct(&lags_seen, 99.0),
        pct(&lags_seen, 100.0)
    );
    println!(
        "  from evm_mine's call: p50 {:.1} ms, p99 {:.1} ms; evm_mine itself p50 {:.1} ms, p99 {:.1} ms",
        pct(&lags_call, 50.0),
        pct(&lags_call, 99.0),
        pct(&mines, 50.0),
        pct(&mines, 99.0)
    );
    println!(
        "  stall pressure during the live phase (Linux PSI, all processes, bench included): {live_pressure}"
    );
    print_slow("live", &live_slow);
    print_warnings("live", &live_warnings);
    let slow_samples: Vec<String> = lv
        .samples
        .iter()
        .enumerate()
        .filter(|(_, (_, lag))| *lag > 250.0)
        .map(|(i, (at, lag))| format!("#{i} at +{at:.1} s: {lag:.0} ms"))
        .collect();
    if !slow_samples.is_empty() {
        println!(
            "  live samples over 250 ms: {} (load average now: {})",
            slow_samples.join(", "),
            loadavg()
        );
    }

    // 5. Where the time goes: the indexer's steps replayed in-process, stage by stage (after
    //    the live phase, so these writes do not disturb it).
    let breakdown = if args.no_breakdown || ranges.is_empty() {
        None
    } else {
        let replay_url = cleanup
            .create_database(&format!("{db_name}_replay"))
            .await?;
        let mut r = Replayer::new(&w, &replay_url).await?;
        let s = replay_backfill(&mut r, &w, &ranges).await?;
        println!(
            "replay of the {} backfill batches in-process: head+headers {:.2} s, eth_getLogs {:.2} s, decode {:.2} s, db::write_batch {:.2} s; total {:.2} s ({} events/s)",
            s.batches,
            s.sum.head_and_headers,
            s.sum.get_logs,
            s.sum.decode,
            s.sum.write,
            s.sum.total(),
            rate(s.events as f64 / s.sum.total().max(1e-9))
        );
        let steps = replay_live(&mut r, &mut w, args.live_replay).await?;
        r.pool.close().await;
        let dist = |f: &dyn Fn(&StepTimes) -> f64| {
            let mut v: Vec<f64> = steps.iter().map(|t| f(t) * 1e3).collect();
            v.sort_by(f64::total_cmp);
            (pct(&v, 50.0), pct(&v, 99.0), pct(&v, 100.0))
        };
        let live_stages = [
            ("head+headers", dist(&|t| t.head_and_headers)),
            ("eth_getLogs", dist(&|t| t.get_logs)),
            ("decode", dist(&|t| t.decode)),
            ("db::write_batch", dist(&|t| t.write)),
            ("whole step", dist(&|t| t.total())),
        ];
        println!(
            "replay of {} live steps in-process (one block, one event, no poll wait), p50 / p99 / max ms:",
            steps.len()
        );
        for (name, (p50, p99, max)) in &live_stages {
            println!("  {name}: {p50:.1} / {p99:.1} / {max:.1}");
        }
        Some((s, live_stages))
    };

    // 6. Summary.
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!(
        "| events on chain | {} PointerAnchored (+{} setup) in {} blocks, {:.0} per block | ≥ 200,000 |",
        sep(f.events),
        expected_logs - f.events,
        f.blocks,
        f.events as f64 / f.blocks.max(1) as f64
    );
    println!("| fill time | {:.1} s | |", f.secs);
    for r in &raws {
        println!(
            "| raw eth_getLogs, {}-block chunks ({} calls) | {} events/s ({:.2} s); backfill is {:.2} of it | |",
            r.chunk,
            r.calls,
            rate(r.rate()),
            r.secs,
            bf.rate() / r.rate()
        );
    }
    println!(
        "| backfill (medrec-indexer --exit-at-head, start to exit) | {} events/s ({:.2} s) | |",
        rate(bf.rate()),
        bf.secs
    );
    println!(
        "| backfill batches | {} (ranges {}..{} blocks, largest {} events) | |",
        bf.batches.len(),
        spans.iter().min().copied().unwrap_or(0),
        spans.iter().max().copied().unwrap_or(0),
        sep(max_batch_events)
    );
    println!("| ratio backfill / best raw | {ratio:.2} | ≥ 0.80 |");
    if let Some((s, _)) = &breakdown {
        let total = s.sum.total().max(1e-9);
        println!(
            "| backfill time split (in-process replay) | eth_getLogs {:.2} s ({:.0}%), db::write_batch {:.2} s ({:.0}%), decode {:.2} s ({:.0}%), head+headers {:.2} s ({:.0}%) | |",
            s.sum.get_logs,
            100.0 * s.sum.get_logs / total,
            s.sum.write,
            100.0 * s.sum.write / total,
            s.sum.decode,
            100.0 * s.sum.decode / total,
            s.sum.head_and_headers,
            100.0 * s.sum.head_and_headers / total
        );
    }
    println!(
        "| live lag p50 / p99 / max ({} samples) | {:.1} / {:.1} / {:.1} ms | p99 < 250 ms |",
        lags.len(),
        pct(&lags, 50.0),
        pct(&lags, 99.0),
        pct(&lags, 100.0)
    );
    if !live_slow.is_empty() {
        println!(
            "| live: statements over 1 s (sqlx warnings) | {} | |",
            live_slow
                .iter()
                .map(|(st, secs)| format!("{st} {secs:.2} s"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    println!(
        "| live lag from the block first seen on the node, p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | |",
        pct(&lags_seen, 50.0),
        pct(&lags_seen, 99.0),
        pct(&lags_seen, 100.0)
    );
    println!(
        "| evm_mine round trip p50 / p99 (lag counted from its return) | {:.1} / {:.1} ms | |",
        pct(&mines, 50.0),
        pct(&mines, 99.0)
    );
    if let Some((_, live_stages)) = &breakdown {
        println!(
            "| live step in-process (no poll wait), p50 / p99 ms | {} | |",
            live_stages
                .iter()
                .map(|(name, (p50, p99, _))| format!("{name} {p50:.1} / {p99:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("| stall pressure during the live phase (PSI, whole machine) | {live_pressure} | |");
    println!(
        "| machine | {nproc} CPUs, {}, {} RAM | |",
        cpu_model(),
        mem_total()
    );
    println!(
        "| software | {profile} build, {}, PostgreSQL {} | |",
        anvil_version(),
        pg_version(&args.database_url).await
    );
    if !extra.is_empty() {
        println!("| indexer arguments | `{}` | |", extra.join(" "));
    }
    Ok(())
}
