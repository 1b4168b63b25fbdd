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

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256, aliases::U40, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use clap::Parser;
use medrec_bindings::eip712::{RecordRequest, Upload};
use medrec_bindings::{ConsentRegistry, ParticipantRegistry};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
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

use medrec_test_support::{Mined, Proc, create_db, drop_db, free_port, now};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let admin_url = std::env::var("DATABASE_URL").expect("DATABASE_URL (see script/pg.sh)");
    let dir = std::env::temp_dir().join(format!("medrec-gk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let port = free_port();
    let _anvil = Proc(
        Command::new(root.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rpc = format!("http://127.0.0.1:{port}");
    let gov: PrivateKeySigner = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        .parse()
        .unwrap();
    let wallet = |s: &PrivateKeySigner| {
        let p = ProviderBuilder::new()
            .wallet(EthereumWallet::from(s.clone()))
            .connect_http(rpc.parse().unwrap());
        p.client().set_poll_interval(Duration::from_millis(10));
        p.erased()
    };
    let p = wallet(&gov);
    let chain_id = loop {
        if let Ok(id) = p.get_chain_id().await {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deployment = dir.join("deployment.json");
    let d = medrec_bindings::deployment::deploy(&p, gov.address(), 86_400)
        .await
        .unwrap();
    std::fs::write(&deployment, serde_json::to_string(&d).unwrap()).unwrap();
    let (participants, consent, records) = (
        d.participant_registry,
        d.consent_registry,
        d.record_registry,
    );

    let holder = PrivateKeySigner::random();
    let patient = PrivateKeySigner::random();
    let most = args.concurrency.iter().copied().max().unwrap_or(1).max(1);
    let requesters: Vec<PrivateKeySigner> = (0..most).map(|_| PrivateKeySigner::random()).collect();
    let reg = ParticipantRegistry::new(participants, p.clone());
    for a in std::iter::once(holder.address()).chain(requesters.iter().map(|r| r.address())) {
        reg.issueCredential(a, 1, keccak256(b"licence"), U40::from(now() + 86_400 * 30))
            .mined()
            .await;
    }
    let _: serde_json::Value = p
        .raw_request(
            "anvil_setBalance".into(),
            (patient.address(), U256::from(10u128.pow(20))),
        )
        .await
        .unwrap();
    let c = ConsentRegistry::new(consent, wallet(&patient));
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
    let db = format!("medrec_gk_bench_{}", std::process::id());
    let db_url = create_db(&admin_url, &db).await;
    std::fs::write(dir.join("master.key"), alloy::hex::encode([9u8; 32])).unwrap();
    let gk_port = free_port();
    let gk_url = format!("http://127.0.0.1:{gk_port}");
    let _gk = Proc(
        Command::new(bin_dir.join("medrec-gatekeeper"))
            .args([
                "serve",
                "--holder",
                &holder.address().to_string(),
                "--database-url",
                &db_url,
            ])
            .args([
                "--rpc-url",
                &rpc,
                "--listen",
                &format!("127.0.0.1:{gk_port}"),
            ])
            .arg("--master-key-file")
            .arg(dir.join("master.key"))
            .arg("--deployments")
            .arg(&deployment)
            .args(["--rate-per-sec", "1000000", "--burst", "1000000"])
            .env("MEDREC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let http = alloy::transports::http::reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    while http.get(format!("{gk_url}/health")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A FHIR Observation padded to the record size.
    let base = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}, "note": [{"text": ""}]});
    let pad = args.record_bytes.saturating_sub(base.to_string().len());
    let mut rec = base;
    rec["note"][0]["text"] = json!("x".repeat(pad));
    let record = rec.to_string().into_bytes();
    let domain = medrec_bindings::gatekeeper_domain(chain_id, records);
    let hash = B256::from_slice(&Sha256::digest(&record));
    let up = Upload {
        holder: holder.address(),
        patient: patient.address(),
        category: 3,
        contentHash: hash,
        nonce: U256::from(1),
        issuedAt: now(),
    };
    let sig = holder
        .sign_hash(&up.eip712_signing_hash(&domain))
        .await
        .unwrap();
    let resp = http
        .post(format!("{gk_url}/v1/records"))
        .header("x-medrec-upload", serde_json::to_string(&up).unwrap())
        .header(
            "x-medrec-signature",
            format!("0x{}", alloy::hex::encode(sig.as_bytes())),
        )
        .body(record.clone())
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "upload failed: {}",
        resp.status()
    );
    let id: B256 = resp.json::<serde_json::Value>().await.unwrap()["recordId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let url = format!("{gk_url}/v1/records/{id}/read");
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
                    expiresAt: t + 300,
                };
                next_nonce += 1;
                let sig = r
                    .sign_hash(&req.eip712_signing_hash(&domain))
                    .await
                    .unwrap();
                mine.push(json!({"request": req, "signature": format!("0x{}", alloy::hex::encode(sig.as_bytes()))}).to_string());
            }
            bodies.push(mine);
        }
        let (elapsed, lat, disk) = run(&http, &url, bodies, args.warmup, record.len()).await;
        let pct = |q: f64| {
            lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1].as_secs_f64()
                * 1e3
        };
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
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
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
    println!(
        "| machine | {} cores, {cpu} |",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    drop_db(&admin_url, &db).await;
    let _ = std::fs::remove_dir_all(&dir);
    let _: Option<Address> = None;
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
