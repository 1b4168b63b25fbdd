//! A private anvil per test and helpers to run `medrec` against it: what only the CLI's
//! tests need on top of `medrec-test-support`.

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use medrec_test_support::Anvil;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use medrec_test_support::{free_port, repo_root};

pub const PASSWORD: &str = "correct horse battery staple";

/// A test's world: an anvil, a temporary home with keystores, a deployments folder.
pub struct Env {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Raw JSON-RPC calls to the anvil and other async helpers (the tests themselves are
    /// synchronous).
    rt: tokio::runtime::Runtime,
    node: DynProvider,
    _anvil: Anvil,
}

impl Env {
    /// Starts anvil and imports the governance account as `gov`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Env::start`] with extra arguments for anvil.
    pub fn start_with(anvil_args: &[&str]) -> Self {
        let anvil = Anvil::start(anvil_args);
        let env = Self {
            port: anvil.port,
            dir: tempfile::tempdir().unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            node: ProviderBuilder::new()
                .disable_recommended_fillers()
                .connect_http(anvil.url().parse().unwrap())
                .erased(),
            _anvil: anvil,
        };
        std::fs::write(env.path("password"), format!("{PASSWORD}\n")).unwrap();
        let gov = medrec_test_support::gov();
        medrec_test_support::import_key(env.cmd(&[]), env.dir.path(), "gov", &gov);
        env
    }

    /// Starts anvil, deploys, and credentials `hospital-a` and `hospital-b` as providers;
    /// creates a funded `patient`, `guardian` and `stranger`.
    pub fn deployed() -> Self {
        Self::deployed_with(&[])
    }

    /// [`Env::deployed`] with extra arguments for anvil.
    pub fn deployed_with(anvil_args: &[&str]) -> Self {
        let env = Self::start_with(anvil_args);
        env.ok(&["-a", "gov", "deploy"]);
        for name in [
            "hospital-a",
            "hospital-b",
            "patient",
            "guardian",
            "stranger",
        ] {
            env.new_account(name, true);
        }
        for h in ["hospital-a", "hospital-b"] {
            let addr = env.addr(h);
            env.credential(&addr, "provider", h);
        }
        env
    }

    /// Runs `f` to completion on this world's runtime (the tests themselves are synchronous).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_string_lossy().to_string()
    }

    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `medrec` command with this world's settings in the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let bin = Path::new(env!("CARGO_BIN_EXE_medrec"));
        let home = self.dir.path();
        let mut c = medrec_test_support::medrec_command(
            bin,
            home,
            &self.rpc_url(),
            &self.path("deployments"),
        );
        c.args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "medrec {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--json`, expects success, returns `data`.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let v: Value = serde_json::from_str(&self.ok(&a)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["ok"], true);
        v["data"].clone()
    }

    /// Runs and expects failure with `code` and a one-line error on stderr; returns it.
    pub fn fail(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "medrec {args:?}: stderr {stderr}"
        );
        assert!(out.stdout.is_empty(), "stdout should be empty on failure");
        assert!(!stderr.contains("panicked"), "panic: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one-line error expected, got: {stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        stderr
    }

    /// Runs with `--json` and expects failure with `code`; returns the `error` object.
    pub fn fail_json(&self, code: i32, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run(&a);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["ok"], false);
        v["error"].clone()
    }

    /// Credentials `addr` as governance ("gov") for a year, in `role`, under `reference`.
    pub fn credential(&self, addr: &str, role: &str, reference: &str) {
        self.ok(&[
            "-a",
            "gov",
            "participant",
            "add",
            addr,
            "--role",
            role,
            "--ref",
            reference,
            "--for",
            "365d",
        ]);
    }

    /// Creates account `name`; `fund` gives it 100 ETH.
    pub fn new_account(&self, name: &str, fund: bool) -> String {
        let d = self.json(&["account", "new", name]);
        let addr = d["address"].as_str().unwrap().to_string();
        if fund {
            self.rpc(
                "anvil_setBalance",
                &format!(r#"["{addr}","0x56bc75e2d63100000"]"#),
            );
        }
        addr
    }

    /// The address of the default account (from the config file).
    pub fn addr_default(&self) -> String {
        self.ok(&["account", "address"]).trim().to_string()
    }

    pub fn addr(&self, name: &str) -> String {
        self.ok(&["account", "address", name]).trim().to_string()
    }

    /// A raw JSON-RPC call to this anvil (`params` a JSON array).
    pub fn rpc(&self, method: &str, params: &str) -> Value {
        let params: Value = serde_json::from_str(params).unwrap();
        self.rt
            .block_on(
                self.node
                    .raw_request::<Value, Value>(method.to_string().into(), params),
            )
            .unwrap_or_else(|e| panic!("rpc {method} failed: {e}"))
    }

    /// Moves the chain's clock forward and mines a block.
    pub fn advance(&self, secs: u64) {
        self.rpc("evm_increaseTime", &format!("[{secs}]"));
        self.rpc("evm_mine", "[]");
    }

    pub fn write(&self, name: &str, content: &str) -> String {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().to_string()
    }
}
