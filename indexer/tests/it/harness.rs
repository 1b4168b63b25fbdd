//! The test world: a private anvil with the registries deployed, a fresh PostgreSQL database,
//! the `medrec-indexer` binary as a child process, and helpers to send transactions, wait for
//! the indexer and talk to its API: what only the indexer's tests need on top of
//! `medrec-test-support`.
//!
//! The world deploys the three registries the indexer follows itself, from anvil's unlocked
//! accounts, rather than through `medrec_bindings::deployment::deploy`: the scenarios count
//! blocks from a fresh anvil, and decoy sets of the same three are deployed again.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::aliases::U40;
use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::transports::http::reqwest;
use medrec_bindings::consent_registry::ConsentRegistry::ConsentRegistryInstance;
use medrec_bindings::deployment::Deployment;
use medrec_bindings::participant_registry::ParticipantRegistry::ParticipantRegistryInstance;
use medrec_bindings::record_registry::IRecordRegistry::Pointer;
use medrec_bindings::record_registry::RecordRegistry::RecordRegistryInstance;
use medrec_bindings::{ConsentRegistry, ParticipantRegistry, RecordRegistry};
use medrec_test_support::{Anvil, Proc, ScratchDb, free_port, unique, write_deployment};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use medrec_test_support::wait_for;

pub const DAY: u64 = 86_400;
pub const YEAR: u64 = 365 * DAY;
/// Gas given to every transaction (blocks hold 1e9, so dozens of them fit in one block).
const TX_GAS: u64 = 12_000_000;

/// A fresh database for one test, dropped (best effort) at the end.
pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
    _db: ScratchDb,
}

impl TestDb {
    pub async fn create(tag: &str) -> Self {
        let db = ScratchDb::create(&format!("medrec_it_{tag}")).await;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", db.url));
        Self {
            url: db.url.clone(),
            pool,
            _db: db,
        }
    }

    /// The server's address (host:port) and this database's URL through `127.0.0.1:<port>`
    /// instead, without TLS (so that a proxy sees the protocol).
    pub fn via_proxy(&self, port: u16) -> (String, String) {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .expect("DATABASE_URL without scheme");
        let (auth, rest) = rest
            .rsplit_once('@')
            .expect("DATABASE_URL without user@host");
        let (hostport, path) = rest.split_once('/').expect("DATABASE_URL without database");
        let server = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:5432")
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        (
            server,
            format!("{scheme}://{auth}@127.0.0.1:{port}/{path}{sep}sslmode=disable"),
        )
    }

    /// The indexer's cursor: (block number, block hash), if it has one yet.
    pub async fn cursor(&self) -> Option<(u64, B256)> {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('indexer_cursor')::text")
                .fetch_one(&self.pool)
                .await
                .ok()?;
        exists.as_ref()?;
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT block_number, block_hash FROM indexer_cursor WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .ok()?;
        row.map(|(n, h)| (n as u64, B256::from_slice(&h)))
    }
}

// ------------------------------------------------------------------------------------- world

/// anvil's dev accounts by role.
pub const ADMIN: usize = 0;
pub const H1: usize = 1;
pub const H2: usize = 2;
pub const H3: usize = 3;
pub const RESEARCHER: usize = 4;
pub const GUARDIAN: usize = 5;
pub const P1: usize = 6;
pub const P2: usize = 7;
pub const P3: usize = 8;
pub const P4: usize = 9;
pub const P5: usize = 10;
pub const STRANGER: usize = 19;

/// A chain with the registries deployed and a deployments file for the indexer.
pub struct World {
    pub anvil: Anvil,
    pub p: DynProvider,
    pub accts: Vec<Address>,
    pub participants: Address,
    pub consent: Address,
    pub records: Address,
    pub start_block: u64,
    pub dir: tempfile::TempDir,
    pub deployments: PathBuf,
    /// Transactions waiting for the next `end_block` (automine off), with labels.
    batch: Mutex<Option<Vec<(B256, String)>>>,
}

impl World {
    pub async fn deploy() -> Self {
        let anvil = Anvil::start(&["--accounts", "20", "--gas-limit", "1000000000"]);
        let p = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(anvil.url().parse().unwrap())
            .erased();
        let accts = p.get_accounts().await.unwrap();
        assert!(accts.len() >= 20, "anvil should have 20 dev accounts");
        let start_block = p.get_block_number().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut w = Self {
            anvil,
            p,
            accts,
            participants: Address::ZERO,
            consent: Address::ZERO,
            records: Address::ZERO,
            start_block,
            deployments: dir.path().join("deployments.json"),
            dir,
            batch: Mutex::new(None),
        };
        let (pr, cr, rr) = w.deploy_set().await;
        w.participants = pr;
        w.consent = cr;
        w.records = rr;
        let d = Deployment {
            chain_id: 31337,
            start_block,
            admin: w.accts[ADMIN],
            participant_registry: pr,
            consent_registry: cr,
            record_registry: rr,
            study_registry: None,
        };
        write_deployment(&w.deployments, &d);
        w
    }

    /// Deploys a set of the three registries (used again for decoys the indexer must ignore).
    pub async fn deploy_set(&self) -> (Address, Address, Address) {
        let admin = self.accts[ADMIN];
        let pr = self
            .deploy_tx(ParticipantRegistry::deploy_builder(&self.p, admin))
            .await;
        let cr = self
            .deploy_tx(ConsentRegistry::deploy_builder(
                &self.p,
                admin,
                pr,
                U40::from(DAY),
            ))
            .await;
        let rr = self
            .deploy_tx(RecordRegistry::deploy_builder(&self.p, pr, cr))
            .await;
        (pr, cr, rr)
    }

    async fn deploy_tx(&self, b: alloy::contract::RawCallBuilder<&DynProvider>) -> Address {
        let pending = b
            .from(self.accts[ADMIN])
            .gas(TX_GAS)
            .send()
            .await
            .expect("deploy");
        let r = self.receipt(*pending.tx_hash()).await;
        assert!(r.status(), "deployment reverted");
        r.contract_address.expect("no contract address")
    }

    pub fn a(&self, i: usize) -> Address {
        self.accts[i]
    }

    pub fn participants_c(&self) -> ParticipantRegistryInstance<DynProvider> {
        ParticipantRegistry::new(self.participants, self.p.clone())
    }

    pub fn consent_c(&self) -> ConsentRegistryInstance<DynProvider> {
        ConsentRegistry::new(self.consent, self.p.clone())
    }

    pub fn records_c(&self) -> RecordRegistryInstance<DynProvider> {
        RecordRegistry::new(self.records, self.p.clone())
    }

    pub async fn rpc(&self, method: &'static str, params: Value) -> Value {
        self.p
            .raw_request::<Value, Value>(method.into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub async fn head(&self) -> u64 {
        self.p.get_block_number().await.unwrap()
    }

    /// (hash, timestamp) of block `n`.
    pub async fn block(&self, n: u64) -> (B256, u64) {
        let b = self
            .p
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no block {n}"));
        (b.header.hash, b.header.timestamp)
    }

    /// The latest block's timestamp.
    pub async fn now(&self) -> u64 {
        let h = self.head().await;
        self.block(h).await.1
    }

    pub async fn receipt(&self, hash: B256) -> TransactionReceipt {
        wait_for(
            &format!("receipt of {hash}"),
            Duration::from_secs(20),
            || async { self.p.get_transaction_receipt(hash).await.ok().flatten() },
        )
        .await
    }

    /// Sends `call` from `from`. With automine (no open block) it waits for the receipt and
    /// panics, with the revert reason, if it failed; in an open block it only queues it.
    pub async fn send<D: alloy::contract::CallDecoder>(
        &self,
        label: &str,
        from: Address,
        call: alloy::contract::CallBuilder<&DynProvider, D>,
    ) -> B256 {
        let call = call.from(from).gas(TX_GAS);
        let pending = call
            .send()
            .await
            .unwrap_or_else(|e| panic!("send {label}: {e}"));
        let hash = *pending.tx_hash();
        if let Some(b) = self.batch.lock().unwrap().as_mut() {
            b.push((hash, label.to_string()));
            return hash;
        }
        let r = self.receipt(hash).await;
        if !r.status() {
            let why = match call.call_raw().await {
                Err(e) => {
                    let decoded = e
                        .as_revert_data()
                        .and_then(|d| medrec_bindings::decode_revert(&d));
                    format!("{e} {decoded:?}")
                }
                Ok(_) => "no revert on replay".into(),
            };
            panic!("{label} reverted: {why}");
        }
        hash
    }

    /// Stops mining: transactions sent until `end_block` go into one block.
    pub async fn begin_block(&self) {
        self.rpc("evm_setAutomine", json!([false])).await;
        *self.batch.lock().unwrap() = Some(vec![]);
    }

    /// Mines the queued transactions in one block, checks they all succeeded, turns automine
    /// back on, and returns the block number.
    pub async fn end_block(&self) -> u64 {
        let txs = self.batch.lock().unwrap().take().expect("no open block");
        self.rpc("evm_mine", json!([])).await;
        self.rpc("evm_setAutomine", json!([true])).await;
        let mut block = None;
        for (h, label) in &txs {
            let r = self.receipt(*h).await;
            assert!(r.status(), "{label} reverted in a batched block");
            let n = r.block_number.unwrap();
            assert!(
                block.is_none_or(|b| b == n),
                "batched transactions landed in different blocks"
            );
            block = Some(n);
        }
        match block {
            Some(b) => b,
            None => self.head().await,
        }
    }

    pub async fn snapshot(&self) -> Value {
        self.rpc("evm_snapshot", json!([])).await
    }

    pub async fn revert(&self, id: Value) {
        let ok = self.rpc("evm_revert", json!([id])).await;
        assert_eq!(ok, Value::Bool(true), "evm_revert failed");
    }

    // --------------------------------------------------------------------------- actions

    pub async fn issue(&self, account: Address, role: u8, reference: &str, expires: u64) -> B256 {
        let c = self.participants_c();
        self.send(
            "issueCredential",
            self.a(ADMIN),
            c.issueCredential(account, role, keccak256(reference), U40::from(expires)),
        )
        .await
    }

    pub async fn revoke_credential(&self, account: Address) -> B256 {
        let c = self.participants_c();
        self.send(
            "revokeCredential",
            self.a(ADMIN),
            c.revokeCredential(account),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn grant_by(
        &self,
        by: Address,
        patient: Address,
        grantee: Address,
        categories: u64,
        purpose: u8,
        not_before: u64,
        expires: u64,
    ) -> B256 {
        let c = self.consent_c();
        self.send(
            "grant",
            by,
            c.grant(
                patient,
                grantee,
                categories,
                purpose,
                U40::from(not_before),
                U40::from(expires),
            ),
        )
        .await
    }

    pub async fn grant(
        &self,
        patient: Address,
        grantee: Address,
        categories: u64,
        expires: u64,
    ) -> B256 {
        self.grant_by(patient, patient, grantee, categories, 1, 0, expires)
            .await
    }

    pub async fn revoke(&self, by: Address, patient: Address, grantee: Address) -> B256 {
        let c = self.consent_c();
        self.send("revoke", by, c.revoke(patient, grantee)).await
    }

    pub async fn set_guardian(
        &self,
        patient: Address,
        guardian: Address,
        scope: u64,
        expires: u64,
    ) -> B256 {
        let c = self.consent_c();
        self.send(
            "setGuardian",
            patient,
            c.setGuardian(guardian, scope, U40::from(0u64), U40::from(expires)),
        )
        .await
    }

    pub async fn remove_guardian(&self, patient: Address, guardian: Address) -> B256 {
        let c = self.consent_c();
        self.send("removeGuardian", patient, c.removeGuardian(guardian))
            .await
    }

    pub async fn open_emergency(
        &self,
        provider: Address,
        patient: Address,
        reason: &str,
        duration: u64,
    ) -> B256 {
        let c = self.consent_c();
        self.send(
            "openEmergencyAccess",
            provider,
            c.openEmergencyAccess(patient, keccak256(reason), U40::from(duration)),
        )
        .await
    }

    pub async fn close_emergency(&self, by: Address, patient: Address, provider: Address) -> B256 {
        let c = self.consent_c();
        self.send(
            "closeEmergencyAccess",
            by,
            c.closeEmergencyAccess(patient, provider),
        )
        .await
    }

    pub async fn set_cap(&self, cap: u64) -> B256 {
        let c = self.consent_c();
        self.send(
            "setEmergencyCap",
            self.a(ADMIN),
            c.setEmergencyCap(U40::from(cap)),
        )
        .await
    }

    pub async fn anchor_batch(&self, holder: Address, ps: Vec<Pointer>) -> B256 {
        let c = self.records_c();
        self.send("anchorBatch", holder, c.anchorBatch(ps)).await
    }

    /// Anchors `p` as an amendment of record `old_seed` (whose content hash is derived from it).
    pub async fn amend(&self, holder: Address, mut p: Pointer, old_seed: &str) -> B256 {
        p.supersedes = record_id(old_seed);
        let c = self.records_c();
        self.send("anchor", holder, c.anchor(p, content_hash(old_seed)))
            .await
    }
}

/// The record id of pointer `seed`.
pub fn record_id(seed: &str) -> B256 {
    keccak256(format!("record:{seed}"))
}

/// The content hash of pointer `seed`.
pub fn content_hash(seed: &str) -> B256 {
    keccak256(format!("content:{seed}"))
}

/// A pointer to anchor, with id and hash derived from `seed`.
pub fn pointer(seed: &str, patient: Address, category: u8) -> Pointer {
    Pointer {
        recordId: record_id(seed),
        patient,
        category,
        contentHash: content_hash(seed),
        locator: format!("https://records.example/{seed}"),
        supersedes: B256::ZERO,
    }
}

// ----------------------------------------------------------------------------------- indexer

/// How to run the indexer.
#[derive(Debug, Clone)]
pub struct Opts {
    pub confirmations: u64,
    pub reorg_window: Option<u64>,
    pub initial_range: Option<u64>,
    pub max_range: Option<u64>,
    pub api: bool,
    pub exit_at_head: bool,
    /// Another RPC URL than anvil's (e.g. a proxy).
    pub rpc_url: Option<String>,
    /// Another database URL than the test database's (e.g. through a proxy).
    pub database_url: Option<String>,
    /// Further command-line arguments.
    pub extra_args: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            confirmations: 0,
            reorg_window: None,
            initial_range: None,
            max_range: None,
            api: true,
            exit_at_head: false,
            rpc_url: None,
            database_url: None,
            extra_args: vec![],
        }
    }
}

/// A running `medrec-indexer`, killed (SIGKILL, as [`Proc`] does) when dropped.
pub struct Indexer {
    child: Proc,
    /// Base URL of its API, if it serves one.
    pub api: Option<String>,
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Indexer {
    /// Starts the indexer; with the API on, waits until `/health` answers.
    pub async fn start(w: &World, db: &TestDb, opts: &Opts) -> Self {
        for _ in 0..3 {
            let mut idx = Self::spawn(w, db, opts);
            if idx.api.is_none() {
                return idx;
            }
            let started = Instant::now();
            loop {
                if let Some(st) = idx.try_exit() {
                    let log = idx.stderr();
                    if log.contains("cannot listen") {
                        break; // port taken meanwhile: try another one
                    }
                    panic!("indexer exited ({st}) before serving its API:\n{log}");
                }
                if idx.try_get("/health").await.is_some() {
                    return idx;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "indexer API did not come up:\n{}",
                    idx.stderr()
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        panic!("could not start the indexer's API on a free port");
    }

    /// Spawns the indexer without waiting for anything.
    pub fn spawn(w: &World, db: &TestDb, opts: &Opts) -> Self {
        let log = w.dir.path().join(format!("{}.log", unique("indexer")));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medrec-indexer"));
        cmd.arg("--rpc-url")
            .arg(opts.rpc_url.clone().unwrap_or_else(|| w.anvil.url()))
            .arg("--database-url")
            .arg(opts.database_url.clone().unwrap_or_else(|| db.url.clone()))
            .arg("--deployments")
            .arg(&w.deployments)
            .arg("--confirmations")
            .arg(opts.confirmations.to_string())
            .arg("--poll-ms")
            .arg("20")
            .arg("--no-progress");
        if let Some(r) = opts.reorg_window {
            cmd.arg("--reorg-window").arg(r.to_string());
        }
        if let Some(r) = opts.initial_range {
            cmd.arg("--initial-range").arg(r.to_string());
        }
        if let Some(r) = opts.max_range {
            cmd.arg("--max-range").arg(r.to_string());
        }
        if opts.exit_at_head {
            cmd.arg("--exit-at-head");
        }
        cmd.args(&opts.extra_args);
        let api = if opts.api {
            let port = free_port();
            cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
            Some(format!("http://127.0.0.1:{port}"))
        } else {
            cmd.arg("--no-api");
            None
        };
        for var in [
            "MEDREC_RPC_URL",
            "MEDREC_DEPLOYMENTS",
            "MEDREC_CONFIRMATIONS",
            "MEDREC_INDEXER_LISTEN",
        ] {
            cmd.env_remove(var);
        }
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .env("MEDREC_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn medrec-indexer");
        Self {
            child: Proc(child),
            api,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.0.try_wait().unwrap()
    }

    pub fn assert_alive(&mut self) {
        if let Some(st) = self.try_exit() {
            panic!("the indexer exited ({st}):\n{}", self.stderr());
        }
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(st) = self.try_exit() {
                return st;
            }
            assert!(
                started.elapsed() < timeout,
                "the indexer did not exit within {timeout:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }

    async fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let base = self.api.as_ref().expect("indexer runs without API");
        let r = self.http.get(format!("{base}{path}")).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    /// GET `path`; returns the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = self
            .try_get(path)
            .await
            .unwrap_or_else(|| panic!("GET {path}: no answer\n{}", self.stderr()));
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (status, v)
    }

    /// GET `path`, expecting 200 and an answer with a numeric `block`.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, v) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        assert!(v["block"].is_u64(), "GET {path}: no block field: {v}");
        v
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let (status, body) = self
            .try_get("/metrics")
            .await
            .unwrap_or_else(|| panic!("GET /metrics: no answer\n{}", self.stderr()));
        assert_eq!(status, 200);
        body
    }

    /// Waits until the process itself reports block `head` indexed (it updates its gauges just
    /// after the database commit the tests wait for).
    pub async fn wait_reported(&self, head: u64) {
        wait_for(
            &format!("the indexer to report block {head}"),
            Duration::from_secs(10),
            || async { (self.metric("medrec_indexer_indexed_block").await == head).then_some(()) },
        )
        .await;
    }

    /// One value of `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics_text().await;
        metric_value(&text, name)
    }
}

/// The value of `name` in a Prometheus text exposition.
pub fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
}

/// Waits until the indexer's cursor is the chain's head (number and hash); returns the head.
/// Panics with the indexer's log if it exits or does not get there in time.
pub async fn wait_indexed(w: &World, db: &TestDb, idx: &mut Indexer) -> u64 {
    let started = Instant::now();
    loop {
        idx.assert_alive();
        let head = w.head().await;
        let (hash, _) = w.block(head).await;
        if db.cursor().await == Some((head, hash)) {
            return head;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the indexer did not reach head {head} ({hash}); cursor {:?}\n{}",
            db.cursor().await,
            idx.stderr()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A small deterministic generator (xorshift64*), seeded and printed by the tests that use it.
pub struct Rng(u64);

impl Rng {
    pub fn from_time() -> (Self, u64) {
        let seed = std::env::var("MEDREC_IT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Self(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}
