//! A private anvil per test and helpers to run `medrec` against it.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// anvil's first development key: the deployer and governance account.
pub const GOV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn foundry_bin(tool: &str) -> PathBuf {
    let p = repo_root().join(format!(
        "node_modules/@foundry-rs/{tool}-linux-amd64/bin/{tool}"
    ));
    assert!(
        p.exists(),
        "{} missing: run `make install` first",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test's world: an anvil, a temporary home with keystores, a deployments folder.
pub struct Env {
    anvil: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.anvil.kill();
        let _ = self.anvil.wait();
    }
}

impl Env {
    /// Starts anvil and imports the governance account as `gov`.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut anvil = Command::new(foundry_bin("anvil"))
                .args(["--port", &port.to_string(), "--chain-id", "31337"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if wait_ready(&mut anvil, port) {
                let env = Self { anvil, port, dir };
                std::fs::write(env.path("password"), format!("{PASSWORD}\n")).unwrap();
                std::fs::write(env.path("gov.key"), GOV_KEY).unwrap();
                env.ok(&[
                    "account",
                    "import",
                    "gov",
                    "--private-key-file",
                    &env.path_str("gov.key"),
                ]);
                return env;
            }
            let _ = anvil.kill();
            let _ = anvil.wait();
        }
        panic!("anvil did not start");
    }

    /// Starts anvil, deploys, and credentials `hospital-a` and `hospital-b` as providers;
    /// creates a funded `patient`, `guardian` and `stranger`.
    pub fn deployed() -> Self {
        let env = Self::start();
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
            env.ok(&[
                "-a",
                "gov",
                "participant",
                "add",
                &addr,
                "--role",
                "provider",
                "--ref",
                h,
                "--for",
                "365d",
            ]);
        }
        env
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
        let mut c = Command::new(env!("CARGO_BIN_EXE_medrec"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("MEDREC_RPC_URL", self.rpc_url())
            .env("MEDREC_KEYSTORE_DIR", self.path("keystores"))
            .env("MEDREC_PASSWORD_FILE", self.path("password"))
            .env("MEDREC_DEPLOYMENTS", self.path("deployments"))
            .env_remove("MEDREC_ACCOUNT")
            .env_remove("MEDREC_CHAIN_ID")
            .env_remove("MEDREC_CONFIG")
            .env_remove("MEDREC_LOG")
            .stdin(Stdio::null());
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

    fn try_rpc(&self, method: &str, params: &str) -> Option<Value> {
        rpc_call(self.port, method, params)
    }

    /// A raw JSON-RPC call to this anvil.
    pub fn rpc(&self, method: &str, params: &str) -> Value {
        self.try_rpc(method, params)
            .unwrap_or_else(|| panic!("rpc {method} failed"))
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

fn rpc_call(port: u16, method: &str, params: &str) -> Option<Value> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let json = resp.split("\r\n\r\n").nth(1)?;
    let v: Value = serde_json::from_str(json).ok()?;
    Some(v["result"].clone())
}

fn wait_ready(anvil: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if rpc_call(port, "eth_chainId", "[]").is_some() {
            return true;
        }
        if let Ok(Some(_)) = anvil.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
