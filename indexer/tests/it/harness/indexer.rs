//! The `medrec-indexer` binary as a child process, and its API.

use super::{TestDb, World, wait_for};
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider};
use alloy::transports::http::reqwest;
use medrec_protocol::Signed;
use medrec_protocol::indexer_auth::{self, INDEXER_AUTH_HEADER, IndexerRequest};
use medrec_test_support::{Proc, free_port, unique};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
    /// anvil, which signs for its dev accounts (`eth_signTypedData_v4`).
    node: DynProvider,
    /// The consent registry: the indexer domain's verifying contract.
    pub consent: Address,
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
            node: w.p.clone(),
            consent: w.consent,
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

    /// The EIP-712 domain of this deployment's indexer requests.
    pub fn domain(&self) -> alloy::sol_types::Eip712Domain {
        indexer_auth::indexer_domain(31337, self.consent)
    }

    /// `request` signed by its requester, an anvil dev account, through anvil's
    /// `eth_signTypedData_v4` (as a wallet would sign it), as the header's value.
    pub async fn sign_by_node(&self, request: IndexerRequest) -> String {
        let d = self.domain();
        let typed = serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "IndexerRequest": [
                    {"name": "requester", "type": "address"},
                    {"name": "requestHash", "type": "bytes32"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "issuedAt", "type": "uint64"},
                    {"name": "expiresAt", "type": "uint64"},
                ],
            },
            "primaryType": "IndexerRequest",
            "domain": {
                "name": "medrec.Indexer",
                "version": "1",
                "chainId": d.chain_id.unwrap().to::<u64>(),
                "verifyingContract": self.consent.to_string(),
            },
            "message": {
                "requester": request.requester.to_string(),
                "requestHash": request.requestHash.to_string(),
                "nonce": request.nonce.to_string(),
                "issuedAt": request.issuedAt,
                "expiresAt": request.expiresAt,
            },
        });
        let signature: String = self
            .node
            .raw_request("eth_signTypedData_v4".into(), (request.requester, typed))
            .await
            .unwrap_or_else(|e| panic!("anvil signs for {}: {e}", request.requester));
        indexer_auth::header_value(&Signed { request, signature })
    }

    /// A fresh signed GET of `path` by `who` (an anvil dev account), as the header's value.
    pub async fn sign_as(&self, who: Address, path: &str) -> String {
        let nonce = medrec_protocol::envelope::random_nonce();
        let now = medrec_protocol::clock::now_secs();
        self.sign_by_node(indexer_auth::get_request(who, path, nonce, now))
            .await
    }

    /// GET `path` with `header` as its signed request (or none); the status and the JSON body.
    pub async fn get_with(&self, path: &str, header: Option<&str>) -> (u16, Value) {
        let (status, body) = self
            .try_get_with(path, header)
            .await
            .unwrap_or_else(|| panic!("GET {path}: no answer\n{}", self.stderr()));
        let v = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
        (status, v)
    }

    /// GET `path` signed by `who` (an anvil dev account).
    pub async fn get_as(&self, who: Address, path: &str) -> (u16, Value) {
        let header = self.sign_as(who, path).await;
        self.get_with(path, Some(&header)).await
    }

    /// GET `path` signed by `who`, expecting 200 and an answer with a numeric `block`.
    pub async fn get_ok_as(&self, who: Address, path: &str) -> Value {
        let (status, v) = self.get_as(who, path).await;
        assert_eq!(status, 200, "GET {path} as {who}: {v}");
        assert!(v["block"].is_u64(), "GET {path}: no block field: {v}");
        v
    }

    async fn try_get(&self, path: &str) -> Option<(u16, String)> {
        self.try_get_with(path, None).await
    }

    async fn try_get_with(&self, path: &str, header: Option<&str>) -> Option<(u16, String)> {
        let base = self.api.as_ref().expect("indexer runs without API");
        let mut req = self.http.get(format!("{base}{path}"));
        if let Some(h) = header {
            req = req.header(INDEXER_AUTH_HEADER, h);
        }
        let r = req.send().await.ok()?;
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
