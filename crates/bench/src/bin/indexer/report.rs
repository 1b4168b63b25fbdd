//! How the bench's figures are printed, and what the machine was doing meanwhile.

use crate::Error;
use sqlx::{Connection, PgConnection};
use std::process::Command;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Report helpers

/// Nearest-rank percentile `p` (0 to 100) of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    medrec_bench::quantile(sorted, p / 100.0)
}

pub fn sep(n: u64) -> String {
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

pub fn rate(x: f64) -> String {
    sep(x.round() as u64)
}

/// Pressure-stall totals (µs) from /proc/pressure/<kind>: (some, full).
pub fn psi(kind: &str) -> Option<(u64, u64)> {
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
pub struct Pressure {
    pub at: Instant,
    pub cpu: Option<(u64, u64)>,
    pub io: Option<(u64, u64)>,
}

impl Pressure {
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            cpu: psi("cpu"),
            io: psi("io"),
        }
    }

    pub fn since(&self) -> String {
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

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

pub fn cpu_model() -> String {
    medrec_bench::cpu_model().unwrap_or_else(|| "unknown".into())
}

pub fn mem_total() -> String {
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

pub fn anvil_version() -> String {
    let bin = medrec_test_support::foundry_bin("anvil");
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

pub async fn pg_version(url: &str) -> String {
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
