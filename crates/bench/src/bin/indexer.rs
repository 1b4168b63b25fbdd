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

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::aliases::U40;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log};
use clap::Parser;
use medrec_bindings::record_registry::{IRecordRegistry, RecordRegistry};
use medrec_bindings::{ConsentRegistry, ParticipantRegistry};
use medrec_indexer::db::{self, BlockRef, Cursor};
use medrec_indexer::events;
use sqlx::{Connection, PgConnection};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
// Processes, databases, cleanup

/// A child process killed when dropped (on success, error or panic alike).
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    /// SIGTERM first (anvil then removes its state files from ~/.foundry/anvil/tmp), SIGKILL
    /// after 3 s.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let termed = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(3);
            while termed && Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `run` leaves behind: databases to drop and the work folder.
struct Cleanup {
    admin_url: String,
    databases: Vec<String>,
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
            for d in &self.databases {
                eprintln!("bench: kept database {d}");
            }
            return;
        }
        // A few tries: a busy shared server may refuse a connection or a drop for a moment.
        for attempt in 1..=5 {
            if self.databases.is_empty() {
                break;
            }
            if attempt > 1 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut conn = match PgConnection::connect(&self.admin_url).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("bench: cannot connect to drop the databases (try {attempt}): {e}");
                    continue;
                }
            };
            let mut left = Vec::new();
            for d in self.databases.drain(..) {
                let sql = format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)");
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                {
                    eprintln!("bench: cannot drop database {d} (try {attempt}): {e}");
                    left.push(d);
                }
            }
            self.databases = left;
            let _ = conn.close().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Creates database `name` (registered for dropping first) and returns its URL.
    async fn create_database(&mut self, name: &str) -> Result<String> {
        self.databases.push(name.to_string());
        let mut conn = PgConnection::connect(&self.admin_url)
            .await
            .map_err(|e| fail(format!("cannot connect to DATABASE_URL: {e}")))?;
        // `name` is ours (medrec_bench_<pid>), never user input.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot create database {name} (the role needs CREATEDB): {e}"
                ))
            })?;
        conn.close().await?;
        with_database(&self.admin_url, name)
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    })
}

fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts anvil on a free port with a large block gas limit.
async fn start_anvil(accounts: usize, extra: &[String]) -> Result<(Proc, String, DynProvider)> {
    let bin = repo_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if !bin.exists() {
        return Err(fail(format!(
            "{} missing: run `make install` (npm ci) first",
            bin.display()
        )));
    }
    for _ in 0..5 {
        let port = free_port()?;
        let child = Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--chain-id",
                "31337",
                "--gas-limit",
                "1000000000",
                "--quiet",
                "--accounts",
                &accounts.max(10).to_string(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut proc = Proc {
            name: "anvil",
            child,
        };
        let url = format!("http://127.0.0.1:{port}");
        let provider = ProviderBuilder::new().connect_http(url.parse()?).erased();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = proc.child.try_wait() {
                break;
            }
            if provider.get_chain_id().await.is_ok() {
                return Ok((proc, url, provider));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proc.kill();
    }
    Err(fail("anvil did not start"))
}

/// A `medrec-indexer` run with its stderr (JSON log lines) captured with arrival times.
struct Indexer {
    proc: Proc,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    started: Instant,
}

impl Indexer {
    fn spawn(
        bin: &Path,
        rpc_url: &str,
        db_url: &str,
        deployments: &Path,
        exit_at_head: bool,
        extra: &[String],
        log: PathBuf,
    ) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["--rpc-url", rpc_url, "--database-url", db_url])
            .arg("--deployments")
            .arg(deployments)
            .args(["--no-api", "--no-progress", "--log-json"]);
        if exit_at_head {
            cmd.arg("--exit-at-head");
        }
        cmd.args(extra)
            .env_remove("MEDREC_CONFIRMATIONS")
            .env_remove("MEDREC_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", bin.display())))?;
        let stderr = child.stderr.take().ok_or_else(|| fail("no stderr pipe"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let mut file = std::fs::File::create(&log)?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let _ = writeln!(file, "{line}");
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((at, line));
            }
        });
        Ok(Self {
            proc: Proc {
                name: "medrec-indexer",
                child,
            },
            lines,
            started,
        })
    }

    fn lines(&self) -> Vec<(Instant, serde_json::Value)> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(t, l)| serde_json::from_str(l).ok().map(|v| (*t, v)))
            .collect()
    }

    fn last_lines(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let start = lines.len().saturating_sub(n);
        lines[start..]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for the process to exit; returns the instant it was seen gone.
    async fn wait(&mut self, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.proc.child.try_wait()? {
                let at = Instant::now();
                if !status.success() {
                    return Err(fail(format!(
                        "{} exited with {status}; last log lines:\n{}",
                        self.proc.name,
                        self.last_lines(10)
                    )));
                }
                return Ok(at);
            }
            if Instant::now() > deadline {
                return Err(fail(format!("{} did not finish in time", self.proc.name)));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until a log line with this message appears.
    async fn wait_for(&mut self, message: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.lines().iter().any(|(_, v)| msg(v) == Some(message)) {
                return Ok(());
            }
            if let Some(status) = self.proc.child.try_wait()? {
                return Err(fail(format!(
                    "medrec-indexer exited ({status}) before {message:?}:\n{}",
                    self.last_lines(10)
                )));
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "medrec-indexer did not log {message:?} in time"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// sqlx's "slow statement" warnings (over 1 s) in the indexer's log: (statement, seconds).
fn slow_statements(lines: &[(Instant, serde_json::Value)]) -> Vec<(String, f64)> {
    lines
        .iter()
        .filter(|(_, v)| msg(v).is_some_and(|m| m.starts_with("slow statement")))
        .filter_map(|(_, v)| {
            let f = v.get("fields")?;
            let summary = f.get("summary")?.as_str()?.to_string();
            Some((summary, f.get("elapsed_secs")?.as_f64()?))
        })
        .collect()
}

/// The indexer's warnings and errors other than slow statements (retries, reorgs), counted
/// by message and error text.
fn warnings(lines: &[(Instant, serde_json::Value)]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for (_, v) in lines {
        let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("");
        if level != "WARN" && level != "ERROR" {
            continue;
        }
        let m = msg(v).unwrap_or("");
        if m.starts_with("slow statement") {
            continue;
        }
        let f = v.get("fields");
        let detail = ["error", "msg", "what"]
            .iter()
            .filter_map(|k| f.and_then(|f| f.get(*k)).map(|x| x.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        let key = format!("{level} {m} {detail}");
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => out.push((key, 1)),
        }
    }
    out
}

fn print_warnings(phase: &str, w: &[(String, usize)]) {
    for (m, n) in w {
        println!("  {phase}: indexer logged {n}x: {m}");
    }
}

fn print_slow(phase: &str, slow: &[(String, f64)]) {
    for (stmt, secs) in slow {
        println!("  {phase}: slow statement reported by sqlx: {stmt} {secs:.2} s");
    }
}

fn msg(v: &serde_json::Value) -> Option<&str> {
    v.get("fields")?.get("message")?.as_str()
}

/// One `indexed` line of the indexer: a written batch.
#[derive(Debug, Clone, Copy)]
struct Batch {
    at: Instant,
    from: u64,
    to: u64,
    events: u64,
}

fn batches(lines: &[(Instant, serde_json::Value)]) -> Vec<Batch> {
    lines
        .iter()
        .filter(|(_, v)| msg(v) == Some("indexed"))
        .filter_map(|(t, v)| {
            let f = v.get("fields")?;
            Some(Batch {
                at: *t,
                from: f.get("from")?.as_u64()?,
                to: f.get("to")?.as_u64()?,
                events: f.get("events")?.as_u64()?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The chain

async fn rpc(
    provider: &DynProvider,
    method: &'static str,
    params: serde_json::Value,
) -> Result<()> {
    provider
        .raw_request::<_, serde_json::Value>(method.into(), params)
        .await
        .map_err(|e| fail(format!("{method}: {e}")))?;
    Ok(())
}

async fn mine(provider: &DynProvider) -> Result<()> {
    rpc(provider, "evm_mine", serde_json::json!([])).await
}

const GWEI: u128 = 1_000_000_000;
const MAX_FEE: u128 = 50 * GWEI;
const TIP: u128 = GWEI;
const GRANTED: [u8; 2] = [3, 8]; // labs, notes

struct World {
    provider: DynProvider,
    chain_id: u64,
    start_block: u64,
    admin: Address,
    hospital: Address,
    patients: Vec<Address>,
    participants: Address,
    consent: Address,
    records: Address,
    next_id: u64,
}

impl World {
    /// Deploys, credentials the hospital, has each patient grant it (automine on).
    async fn deploy(provider: DynProvider, n_patients: usize) -> Result<Self> {
        let accounts = provider.get_accounts().await?;
        if accounts.len() < 2 + n_patients.max(1) {
            return Err(fail(format!(
                "anvil has {} dev accounts; --patients needs {}",
                accounts.len(),
                2 + n_patients
            )));
        }
        let (admin, hospital) = (accounts[0], accounts[1]);
        let patients = accounts[2..2 + n_patients.max(1)].to_vec();
        let chain_id = provider.get_chain_id().await?;
        let start_block = provider.get_block_number().await?;
        let participants = ParticipantRegistry::deploy_builder(provider.clone(), admin)
            .from(admin)
            .deploy()
            .await?;
        let consent = ConsentRegistry::deploy_builder(
            provider.clone(),
            admin,
            participants,
            U40::from(86_400),
        )
        .from(admin)
        .deploy()
        .await?;
        let records = RecordRegistry::deploy_builder(provider.clone(), participants, consent)
            .from(admin)
            .deploy()
            .await?;
        let far = U40::from(now_secs() + 10 * 365 * 86_400);
        let r = ParticipantRegistry::new(participants, provider.clone())
            .issueCredential(hospital, 1u8, keccak256(b"bench hospital"), far)
            .from(admin)
            .send()
            .await?
            .get_receipt()
            .await?;
        if !r.status() {
            return Err(fail("issueCredential reverted"));
        }
        let mask: u64 = GRANTED.iter().map(|c| 1u64 << c).sum();
        let c = ConsentRegistry::new(consent, provider.clone());
        // All grants in one block: automine off from here on.
        rpc(&provider, "evm_setAutomine", serde_json::json!([false])).await?;
        let mut grants = Vec::with_capacity(patients.len());
        for p in &patients {
            let req = c
                .grant(*p, hospital, mask, 1u8, U40::ZERO, far)
                .from(*p)
                .nonce(provider.get_transaction_count(*p).await?)
                .gas(200_000)
                .max_fee_per_gas(MAX_FEE)
                .max_priority_fee_per_gas(TIP)
                .into_transaction_request();
            grants.push(*provider.send_transaction(req).await?.tx_hash());
        }
        mine(&provider).await?;
        for h in grants {
            check_receipt(&provider, h).await?;
        }
        Ok(Self {
            provider,
            chain_id,
            start_block,
            admin,
            hospital,
            patients,
            participants,
            consent,
            records,
            next_id: 0,
        })
    }

    fn pointer(&mut self) -> IRecordRegistry::Pointer {
        self.next_id += 1;
        let i = self.next_id;
        IRecordRegistry::Pointer {
            // Hash-like ids, as `medrec anchor` derives them: random B-tree inserts, as in use.
            recordId: keccak256(U256::from(i).to_be_bytes::<32>()),
            patient: self.patients[(i as usize) % self.patients.len()],
            category: GRANTED[(i as usize / self.patients.len()) % GRANTED.len()],
            contentHash: keccak256(i.to_le_bytes()),
            locator: format!("https://hospital-a.example/fhir/DocumentReference/{i:010}"),
            supersedes: B256::ZERO,
        }
    }

    fn records(&self) -> RecordRegistry::RecordRegistryInstance<DynProvider> {
        RecordRegistry::new(self.records, self.provider.clone())
    }

    fn contracts(&self) -> Vec<Address> {
        vec![self.participants, self.consent, self.records]
    }

    fn filter(&self, from: u64, to: u64) -> Filter {
        Filter::new()
            .address(self.contracts())
            .event_signature(events::topics())
            .from_block(from)
            .to_block(to)
    }

    fn write_deployments(&self, path: &Path) -> Result<()> {
        let d = serde_json::json!({
            "chainId": self.chain_id,
            "startBlock": self.start_block,
            "admin": self.admin,
            "participantRegistry": self.participants,
            "consentRegistry": self.consent,
            "recordRegistry": self.records,
        });
        std::fs::write(path, serde_json::to_string_pretty(&d)?)?;
        Ok(())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Fill {
    /// The first block of the fill.
    first_block: u64,
    txs: u64,
    events: u64,
    blocks: u64,
    head: u64,
    secs: f64,
    gas_per_tx: u64,
}

/// Fills the chain: `txs_per_block` anchorBatch transactions per block, sent concurrently
/// with explicit nonces and gas, then one evm_mine per block; receipts checked once at the end.
async fn fill(w: &mut World, args: &Args) -> Result<Fill> {
    let batch = args.batch.clamp(1, 200);
    let txs = args.events.div_ceil(batch);
    let per_block = args.txs_per_block.max(1);
    // Gas from one estimate (nothing pending, so against the latest state), with headroom.
    let sample: Vec<_> = (0..batch).map(|_| w.pointer()).collect();
    let est = w
        .records()
        .anchorBatch(sample)
        .from(w.hospital)
        .estimate_gas()
        .await?;
    w.next_id -= batch; // the estimate anchored nothing
    let gas = est + est / 4;
    let mut nonce = w.provider.get_transaction_count(w.hospital).await?;
    let first_block = w.provider.get_block_number().await? + 1;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut blocks = 0u64;
    let mut hashes: Vec<B256> = Vec::with_capacity(txs as usize);
    let mut last_report = Instant::now();
    while sent < txs {
        let k = per_block.min(txs - sent);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..k {
            let ps: Vec<_> = (0..batch).map(|_| w.pointer()).collect();
            let req = w
                .records()
                .anchorBatch(ps)
                .from(w.hospital)
                .nonce(nonce)
                .gas(gas)
                .max_fee_per_gas(MAX_FEE)
                .max_priority_fee_per_gas(TIP)
                .into_transaction_request();
            let p = w.provider.clone();
            set.spawn(async move { p.send_transaction(req).await.map(|t| *t.tx_hash()) });
            nonce += 1;
        }
        while let Some(r) = set.join_next().await {
            hashes.push(r??);
        }
        mine(&w.provider).await?;
        sent += k;
        blocks += 1;
        if blocks == 1 {
            // Fail early if the batches revert.
            for h in &hashes {
                check_receipt(&w.provider, *h).await?;
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "bench: fill {}/{} events, {:.0} s",
                sent * batch,
                txs * batch,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Wait once: every receipt, concurrently (all mined already).
    let mut set = tokio::task::JoinSet::new();
    for chunk in hashes.chunks(hashes.len().div_ceil(8).max(1)) {
        let p = w.provider.clone();
        let chunk = chunk.to_vec();
        set.spawn(async move {
            for h in chunk {
                check_receipt(&p, h).await?;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    let head = w.provider.get_block_number().await?;
    Ok(Fill {
        first_block,
        txs,
        events: txs * batch,
        blocks,
        head,
        secs,
        gas_per_tx: est,
    })
}

async fn check_receipt(p: &DynProvider, h: B256) -> Result<()> {
    match p.get_transaction_receipt(h).await? {
        Some(r) if r.status() => Ok(()),
        Some(_) => Err(fail(format!("transaction {h} reverted"))),
        None => Err(fail(format!("transaction {h} was not mined"))),
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
        let req = w
            .records()
            .anchor(w.pointer(), B256::ZERO)
            .from(w.hospital)
            .nonce(nonce)
            .gas(400_000)
            .max_fee_per_gas(MAX_FEE)
            .max_priority_fee_per_gas(TIP)
            .into_transaction_request();
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
    let mut rng = now_secs() ^ 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
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
        let req = w
            .records()
            .anchor(w.pointer(), B256::ZERO)
            .from(w.hospital)
            .nonce(nonce)
            .gas(400_000)
            .max_fee_per_gas(MAX_FEE)
            .max_priority_fee_per_gas(TIP)
            .into_transaction_request();
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
// Report helpers

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sep(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate(x: f64) -> String {
    sep(x.round() as u64)
}

/// Pressure-stall totals (µs) from /proc/pressure/<kind>: (some, full).
fn psi(kind: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{kind}")).ok()?;
    let total = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))?
            .split_whitespace()
            .find_map(|f| f.strip_prefix("total="))?
            .parse::<u64>()
            .ok()
    };
    Some((total("some")?, total("full").unwrap_or(0)))
}

/// How much of a phase other work stalled this machine (Linux PSI), for reading tails.
struct Pressure {
    at: Instant,
    cpu: Option<(u64, u64)>,
    io: Option<(u64, u64)>,
}

impl Pressure {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu: psi("cpu"),
            io: psi("io"),
        }
    }

    fn since(&self) -> String {
        let us = self.at.elapsed().as_micros().max(1) as f64;
        let pctg = |a: Option<(u64, u64)>, b: Option<(u64, u64)>, full: bool| match (a, b) {
            (Some(a), Some(b)) => {
                let d = if full { b.1 - a.1 } else { b.0 - a.0 };
                format!("{:.0}%", 100.0 * d as f64 / us)
            }
            _ => "n/a".into(),
        };
        let (cpu, io) = (psi("cpu"), psi("io"));
        format!(
            "CPU some {}, IO some {} / full {}",
            pctg(self.cpu, cpu, false),
            pctg(self.io, io, false),
            pctg(self.io, io, true)
        )
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into())
}

fn anvil_version() -> String {
    let bin = repo_root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

async fn pg_version(url: &str) -> String {
    async {
        let mut c = PgConnection::connect(url).await?;
        let v: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut c)
            .await?;
        c.close().await?;
        Ok::<_, Error>(v)
    }
    .await
    .unwrap_or_else(|_| "unknown".into())
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
    let (_anvil, rpc_url, provider) = start_anvil(args.patients.max(1) + 2, &anvil_extra).await?;
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
    w.write_deployments(&deployments)?;
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
