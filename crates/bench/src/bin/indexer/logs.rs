//! The `medrec-indexer` process under measurement and what its JSON log says: written
//! batches, slow statements, warnings.

use crate::{Result, fail};
use medrec_test_support::Proc;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The process's name in messages.
pub const NAME: &str = "medrec-indexer";

/// A `medrec-indexer` run with its stderr (JSON log lines) captured with arrival times.
pub struct Indexer {
    pub proc: Proc,
    pub lines: Arc<Mutex<Vec<(Instant, String)>>>,
    pub started: Instant,
}

impl Indexer {
    pub fn spawn(
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
            proc: Proc(child),
            lines,
            started,
        })
    }

    pub fn lines(&self) -> Vec<(Instant, serde_json::Value)> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(t, l)| serde_json::from_str(l).ok().map(|v| (*t, v)))
            .collect()
    }

    pub fn last_lines(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let start = lines.len().saturating_sub(n);
        lines[start..]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for the process to exit; returns the instant it was seen gone.
    pub async fn wait(&mut self, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.proc.0.try_wait()? {
                let at = Instant::now();
                if !status.success() {
                    return Err(fail(format!(
                        "{} exited with {status}; last log lines:\n{}",
                        NAME,
                        self.last_lines(10)
                    )));
                }
                return Ok(at);
            }
            if Instant::now() > deadline {
                return Err(fail(format!("{} did not finish in time", NAME)));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until a log line with this message appears.
    pub async fn wait_for(&mut self, message: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.lines().iter().any(|(_, v)| msg(v) == Some(message)) {
                return Ok(());
            }
            if let Some(status) = self.proc.0.try_wait()? {
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
pub fn slow_statements(lines: &[(Instant, serde_json::Value)]) -> Vec<(String, f64)> {
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
pub fn warnings(lines: &[(Instant, serde_json::Value)]) -> Vec<(String, usize)> {
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

pub fn print_warnings(phase: &str, w: &[(String, usize)]) {
    for (m, n) in w {
        println!("  {phase}: indexer logged {n}x: {m}");
    }
}

pub fn print_slow(phase: &str, slow: &[(String, f64)]) {
    for (stmt, secs) in slow {
        println!("  {phase}: slow statement reported by sqlx: {stmt} {secs:.2} s");
    }
}

pub fn msg(v: &serde_json::Value) -> Option<&str> {
    v.get("fields")?.get("message")?.as_str()
}

/// One `indexed` line of the indexer: a written batch.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    pub at: Instant,
    pub from: u64,
    pub to: u64,
    pub events: u64,
}

pub fn batches(lines: &[(Instant, serde_json::Value)]) -> Vec<Batch> {
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
