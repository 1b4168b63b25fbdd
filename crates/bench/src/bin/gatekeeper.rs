//! Gatekeeper benchmark: resolves a 10 KB FHIR record with N concurrent requesters against
//! one gatekeeper on a fresh anvil, and prints requests per second and latency percentiles.
//! Every resolve is the real path: signature and freshness checks, replay check, the chain's
//! `canRead` asked at that moment, decryption, and the access log written before the answer.
//!
//! Needs DATABASE_URL (a role that may create databases) and `cargo build --workspace --bins`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use alloy::primitives::{U256, aliases::U40};
use alloy::signers::local::PrivateKeySigner;
use clap::Parser;
use medrec_bench::{cores, cpu_model, quantile};
use medrec_bindings::ConsentRegistry;
use medrec_protocol::RecordRequest;
use medrec_protocol::clock::MAX_VALIDITY_SECS;
use medrec_protocol::envelope::gatekeeper_domain;
use medrec_protocol::records::read_url;
use medrec_test_support::{
    Anvil, Gatekeeper, Mined, PROVIDER, ScratchDb, credential, database_url, fund, now,
    signed_body, upload, wallet_provider,
};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Resolve benchmark for the gatekeeper.
#[derive(Debug, Parser)]
struct Args {
    /// Concurrent requesters: one run per figure, one after another on the same gatekeeper
    #[arg(long, value_delimiter = ',', default_value = "8,16,24")]
    concurrency: Vec<usize>,
    /// Resolves per run (measured)
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Resolves per requester before the clock starts (connections, caches, the database's
    /// plans and anvil warmed up)
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Record size in bytes
    #[arg(long, default_value_t = 10 * 1024)]
    record_bytes: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let admin_url = database_url();
    let dir = std::env::temp_dir().join(format!("medrec-gk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let anvil = Anvil::start(&[]);
    let rpc = anvil.url();
    let gov = medrec_test_support::gov();
    let wallet = |s: &PrivateKeySigner| wallet_provider(&rpc, s, Duration::from_millis(10));
    let p = wallet(&gov);
    let deployment = dir.join("deployment.json");
    let d = medrec_test_support::deploy(&p, gov.address(), &deployment).await;

    let holder = PrivateKeySigner::random();
    let patient = PrivateKeySigner::random();
    let most = args.concurrency.iter().copied().max().unwrap_or(1).max(1);
    let requesters: Vec<PrivateKeySigner> = (0..most).map(|_| PrivateKeySigner::random()).collect();
    let expires = now() + 86_400 * 30;
    for a in std::iter::once(holder.address()).chain(requesters.iter().map(|r| r.address())) {
        credential(&p, d.participant_registry, a, PROVIDER, expires).await;
    }
    fund(&p, patient.address()).await;
    let c = ConsentRegistry::new(d.consent_registry, wallet(&patient));
    for r in &requesters {
        c.grant(
            patient.address(),
            r.address(),
            1 << 3,
            1,
            U40::from(0u64),
            U40::from(now() + 86_400),
        )
        .mined()
        .await;
    }

    // A fresh database and the gatekeeper.
    let db = ScratchDb::try_create_named(
        &admin_url,
        &format!("medrec_gk_bench_{}", std::process::id()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("master.key"), alloy::hex::encode([9u8; 32])).unwrap();
    let (mut cmd, gk_url) = Gatekeeper {
        bin: &bin_dir.join("medrec-gatekeeper"),
        holder: holder.address(),
        database_url: &db.url,
        rpc_url: &rpc,
        master_key: &dir.join("master.key"),
        deployments: &deployment,
    }
    .command();
    cmd.args(["--rate-per-sec", "1000000", "--burst", "1000000"])
        .env("MEDREC_LOG", "warn")
        .stderr(Stdio::inherit());
    let gk = Gatekeeper::serve(cmd, &gk_url).await;
    let http = alloy::transports::http::reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // A FHIR Observation padded to the record size.
    let base = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}, "note": [{"text": ""}]});
    let pad = args.record_bytes.saturating_sub(base.to_string().len());
    let mut rec = base;
    rec["note"][0]["text"] = json!("x".repeat(pad));
    let record = rec.to_string().into_bytes();
    let domain = gatekeeper_domain(d.chain_id, d.record_registry);
    let id = upload(
        &http,
        &gk_url,
        &domain,
        &holder,
        patient.address(),
        3,
        &record,
        U256::from(1),
    )
    .await
    .record_id;

    let url = read_url(&gk_url, id);
    let mut rows = Vec::new();
    let mut next_nonce = 1u64;
    for &n in &args.concurrency {
        let n = n.max(1);
        // Requests are signed before the clock starts: the client's signing is not the
        // server's cost. Nonces never repeat across runs.
        let per = args.requests.div_ceil(n);
        let mut bodies: Vec<Vec<String>> = Vec::new();
        for r in &requesters[..n] {
            let mut mine = Vec::with_capacity(args.warmup + per);
            for _ in 0..args.warmup + per {
                let t = now();
                let req = RecordRequest {
                    requester: r.address(),
                    recordId: id,
                    audience: holder.address(),
                    nonce: U256::from(next_nonce),
                    issuedAt: t,
                    expiresAt: t + MAX_VALIDITY_SECS,
                };
                next_nonce += 1;
                mine.push(signed_body(r, req, &domain).await);
            }
            bodies.push(mine);
        }
        let (elapsed, lat, disk) = run(&http, &url, bodies, args.warmup, record.len()).await;
        let ms: Vec<f64> = lat.iter().map(|l| l.as_secs_f64() * 1e3).collect();
        let pct = |q: f64| quantile(&ms, q);
        let rps = lat.len() as f64 / elapsed.as_secs_f64();
        let (p50, p99, max) = (pct(0.5), pct(0.99), pct(1.0));
        eprintln!("{n} requesters: {rps:.0} resolves/s, p50 {p50:.2} ms, p99 {p99:.2} ms");
        rows.push((
            n,
            lat.len(),
            elapsed.as_secs_f64(),
            rps,
            p50,
            p99,
            max,
            disk,
        ));
    }
    let cpu = cpu_model().unwrap_or_default();
    println!(
        "| concurrent requesters | resolves | wall time | resolves/s | p50 | p99 | max | ≥ 2,000/s and p99 < 20 ms | disk writes and flushes: mean, slowest 0.1 s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for (n, count, wall, rps, p50, p99, max, disk) in &rows {
        let met = if *rps >= 2000.0 && *p99 < 20.0 {
            "yes"
        } else {
            "no"
        };
        println!(
            "| {n} | {count} | {wall:.2} s | {rps:.0} | {p50:.2} ms | {p99:.2} ms | {max:.2} ms | {met} | {disk} |"
        );
    }
    println!();
    println!("| setup | |");
    println!("|---|---|");
    println!("| record | {} B FHIR Observation |", record.len());
    println!(
        "| warm-up | {} resolves per requester before each run's clock |",
        args.warmup
    );
    println!(
        "| disk writes and flushes | the machine's disks during the run (/proc/diskstats, read every 0.1 s): mean time per write or flush, and that mean in the slowest 0.1 s; each batch of the access log waits for one |"
    );
    println!("| machine | {} cores, {cpu} |", cores());
    drop(gk);
    drop(db);
    drop(anvil);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One run: each requester sends its warm-up requests, all wait for each other, then the
/// clock runs while each sends the rest one after another. Returns the wall time, every
/// measured latency, sorted, and what the disks did meanwhile.
async fn run(
    http: &alloy::transports::http::reqwest::Client,
    url: &str,
    bodies: Vec<Vec<String>>,
    warmup: usize,
    expected: usize,
) -> (Duration, Vec<Duration>, String) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len() + 1));
    let mut tasks = Vec::new();
    for mut mine in bodies {
        let http = http.clone();
        let url = url.to_string();
        let barrier = barrier.clone();
        let warm: Vec<String> = mine.drain(..warmup).collect();
        tasks.push(tokio::spawn(async move {
            let send = |body: String| {
                http.post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
            };
            for body in warm {
                let r = send(body).await.unwrap();
                assert_eq!(r.status().as_u16(), 200);
                r.bytes().await.unwrap();
            }
            barrier.wait().await;
            let mut lat = Vec::with_capacity(mine.len());
            for body in mine {
                let t0 = Instant::now();
                let r = send(body).await.unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let b = r.bytes().await.unwrap();
                assert_eq!(b.len(), expected);
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    barrier.wait().await;
    let disk = DiskWatch::start();
    let started = Instant::now();
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let disk = disk.stop();
    lat.sort();
    (elapsed, lat, disk)
}

/// What the disks did during a run: /proc/diskstats read every 0.1 s on another thread.
struct DiskWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64, f64)>,
}

/// Per disk: writes and flushes completed, and the milliseconds spent on them. Whole disks
/// only: not partitions, loop or RAM devices, nor devices stacked on others (their I/O is
/// their disks').
fn disk_writes() -> std::collections::HashMap<String, (u64, u64)> {
    let mut disks = std::collections::HashMap::new();
    let Ok(text) = std::fs::read_to_string("/proc/diskstats") else {
        return disks;
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(&name) = f.get(2) else { continue };
        let sys = Path::new("/sys/block").join(name);
        let stacked = std::fs::read_dir(sys.join("slaves")).is_ok_and(|mut d| d.next().is_some());
        if ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p)) || !sys.exists() || stacked {
            continue;
        }
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let (Some(writes), Some(ms)) = (num(7), num(10)) else {
            continue;
        };
        // Flushes (what fdatasync waits for) are counted apart since Linux 5.5.
        let (flushes, flush_ms) = (num(18).unwrap_or(0), num(19).unwrap_or(0));
        disks.insert(name.to_string(), (writes + flushes, ms + flush_ms));
    }
    disks
}

/// Writes and milliseconds from `a` to `b`, over the disks in both. The kernel keeps the
/// milliseconds in 32 bits, so they wrap.
fn disk_delta(
    a: &std::collections::HashMap<String, (u64, u64)>,
    b: &std::collections::HashMap<String, (u64, u64)>,
) -> (u64, u64) {
    let mut sum = (0, 0);
    for (name, &(w1, ms1)) in b {
        if let Some(&(w0, ms0)) = a.get(name) {
            sum.0 += w1.saturating_sub(w0);
            sum.1 += u64::from((ms1 as u32).wrapping_sub(ms0 as u32));
        }
    }
    sum
}

impl DiskWatch {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut prev, mut total, mut worst) = (disk_writes(), (0, 0), 0f64);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let cur = disk_writes();
                let (w, ms) = disk_delta(&prev, &cur);
                if w > 0 {
                    worst = worst.max(ms as f64 / w as f64);
                }
                total = (total.0 + w, total.1 + ms);
                prev = cur;
            }
            (total.0, total.1, worst)
        });
        Self { stop, thread }
    }

    /// "0.21 ms, 4.10 ms": the mean time per write or flush, and the slowest 0.1 s's.
    fn stop(self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.thread.join() {
            Ok((writes, ms, worst)) if writes > 0 => {
                format!("{:.2} ms, {worst:.2} ms", ms as f64 / writes as f64)
            }
            _ => "not measured".into(),
        }
    }
}
