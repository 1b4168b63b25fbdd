//! Research benchmark: an aggregate over 100,000 consenting patients' records at two holders.
//!
//! A fresh anvil and the four registries; a credentialed researcher's approved study; every
//! patient opts in on chain (one relayed `optInBySig` transaction each, signed by the patient's
//! study pseudonym with a slot for each holder, sent in bulk); two gatekeepers
//! (hospital A and B, each with its own database) hold the patients' coded facts, half each,
//! plus a tenth more patients who never opted in. The researcher's real `medrec study query`
//! then asks both holders (each query at epsilon 1, the chain making a block every second),
//! and the benchmark prints the time until the researcher holds the checked answers, then
//! until the receipt is on chain, each query end to end (the CLI process: pinning, checking
//! the study and budget, both holders, combining, the receipt recorded in one transaction) and
//! per holder (as the CLI measured it), and checks every noised answer against the counts it
//! knows, within the noise's reach.
//!
//! The facts are written straight into the holders' databases (the rows a record upload
//! writes); uploads themselves are measured by `medrec-gatekeeper-bench`.
//!
//! Needs DATABASE_URL (a role that may create databases) and the release binaries
//! `medrec` and `medrec-gatekeeper` beside this one.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod population;

use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use clap::Parser;
use medrec_bench::{cores, cpu_model, quantile as pct};
use medrec_bindings::StudyRegistry;
use medrec_test_support::{
    Anvil, Gatekeeper, Mined, PROVIDER, Proc, RESEARCHER, ScratchDb, credential, database_url,
    fund, medrec_command, now, wallet_provider,
};
use population::{
    CONDITIONS, CONDITIONS_CATEGORY, DEMOGRAPHICS, EPSILON, LABS, MIN_CELL, OBSERVATIONS, Patient,
    bounds, check, load_facts, simulate,
};
use rand::SeedableRng;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Research aggregate benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Consenting patients, split between the two holders
    #[arg(long, default_value_t = 100_000)]
    patients: usize,
    /// Queries of each kind (condition count, observation statistics); each spends epsilon 1
    /// of the study's budget of 10, so at most 5
    #[arg(long, default_value_t = 5)]
    queries: usize,
    /// Seed of the simulated facts
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Keep the chain and the holders running this many seconds after the figures, and print
    /// how to query them
    #[arg(long, value_name = "SECONDS")]
    hold: Option<u64>,
}

fn cli(bin: &Path, dir: &Path, rpc: &str, args: &[&str]) -> (bool, Value, String) {
    let out = medrec_command(&bin.join("medrec"), dir, rpc, &dir.join("deployment.json"))
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)["data"].take();
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A first opt-in's issue time and deadline at the chain's latest block time `latest`.
fn study_tags_times(latest: u64) -> (u64, u64) {
    medrec_protocol::study_tags::study_signed_times(latest, 0, u64::MAX)
        .expect("no ceiling: a time fits")
}

async fn rpc(p: &DynProvider, method: &'static str, params: Value) {
    let _: Value = p.raw_request(method.into(), params).await.unwrap();
}

/// Starts holder `name`'s gatekeeper (anchoring once a day: never during the run) and waits
/// for it to serve.
async fn gatekeeper(
    bin: &Path,
    dir: &Path,
    holder: Address,
    name: &str,
    db_url: &str,
    rpc: &str,
) -> (Proc, String) {
    let (mut cmd, url) = Gatekeeper {
        bin: &bin.join("medrec-gatekeeper"),
        holder,
        database_url: db_url,
        rpc_url: rpc,
        master_key: &dir.join("master.key"),
        deployments: &dir.join("deployment.json"),
    }
    .command();
    cmd.arg("--anchor-keystore")
        .arg(dir.join("keystores").join(name))
        .arg("--anchor-password-file")
        .arg(dir.join("password"))
        .args(["--anchor-every", "86400"])
        .env(
            "MEDREC_LOG",
            std::env::var("MEDREC_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stderr(Stdio::inherit());
    (Gatekeeper::serve(cmd, &url).await, url)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let bin: PathBuf = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    for b in ["medrec", "medrec-gatekeeper"] {
        assert!(
            bin.join(b).exists(),
            "{} missing: build the workspace's binaries (make bench-research does)",
            bin.join(b).display()
        );
    }
    let admin_url = database_url();
    let dir = std::env::temp_dir().join(format!("medrec-research-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("password"), "bench\n").unwrap();
    std::fs::write(dir.join("master.key"), alloy::hex::encode([9u8; 32])).unwrap();
    let total = Instant::now();

    // A chain whose blocks hold many opt-ins and whose gas costs nothing, so that patients
    // need no funding.
    let anvil = Anvil::start(&["--gas-limit", "1000000000", "--block-base-fee-per-gas", "0"]);
    let rpc_url = anvil.url();
    let gov = medrec_test_support::gov();
    let p = wallet_provider(&rpc_url, &gov, Duration::from_millis(10));
    let d = medrec_test_support::deploy(&p, gov.address(), &dir.join("deployment.json")).await;
    let chain_id = d.chain_id;
    let studies = d.study_registry.unwrap();
    let (hospital_a, hospital_b, researcher) = (
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
        PrivateKeySigner::random(),
    );
    for (who, role) in [
        (hospital_a.address(), PROVIDER),
        (hospital_b.address(), PROVIDER),
        (researcher.address(), RESEARCHER),
    ] {
        credential(&p, d.participant_registry, who, role, now() + 86_400).await;
        fund(&p, who).await;
    }
    for (name, key) in [
        ("hospital-a", &hospital_a),
        ("hospital-b", &hospital_b),
        ("researcher", &researcher),
    ] {
        let medrec = medrec_command(
            &bin.join("medrec"),
            &dir,
            &rpc_url,
            &dir.join("deployment.json"),
        );
        medrec_test_support::import_key(medrec, &dir, name, key);
    }
    let study = StudyRegistry::new(studies, p.clone());
    let as_researcher = wallet_provider(&rpc_url, &researcher, Duration::from_millis(10));
    StudyRegistry::new(studies, as_researcher)
        .registerStudy(
            keccak256(b"bench protocol"),
            (1 << DEMOGRAPHICS) | (1 << LABS) | (1 << CONDITIONS_CATEGORY),
            MIN_CELL,
            10_000_000,
        )
        .mined()
        .await;
    study.approveStudy(U256::from(1)).mined().await;

    // The population: `patients` consenting plus a tenth who never opt in.
    let t = Instant::now();
    let extra = args.patients / 10;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let population: Vec<Patient> = (0..args.patients + extra)
        .map(|i| simulate(i, &mut rng))
        .collect();
    println!(
        "simulated {} patients ({} consenting) in {:.1} s",
        population.len(),
        args.patients,
        t.elapsed().as_secs_f64()
    );

    // Every consenting patient opts in as their study pseudonym (issue 16), with a slot for
    // each holder (the holders' service keys are their own keys), relayed by one account (gas
    // costs nothing here): signed here, sent in bulk with automine off, a block mined every ten
    // thousand.
    let t = Instant::now();
    rpc(&p, "evm_setAutomine", json!([false])).await;
    let relayer = EthereumWallet::from(PrivateKeySigner::random());
    let holders: Vec<(Address, Vec<u8>)> = [&hospital_a, &hospital_b]
        .iter()
        .map(|h| {
            let key = medrec_protocol::study_tags::ServiceKey::from_bytes(&h.to_bytes()).unwrap();
            (h.address(), key.public_key())
        })
        .collect();
    // The chain's minute and the one window of every study message, as the CLI signs them.
    let latest = p
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .map(|b| b.header.timestamp)
        .unwrap_or_default();
    let (issued_at, _) = study_tags_times(latest);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4096);
    let signing = {
        let patients = args.patients;
        tokio::task::spawn_blocking(move || {
            for i in 0..patients {
                let key = keccak256(format!("medrec research bench patient {i}"));
                let calldata = opt_in_calldata(&key, chain_id, studies, &holders, issued_at);
                let req = TransactionRequest::default()
                    .with_from(relayer.default_signer().address())
                    .with_to(studies)
                    .with_input(calldata)
                    .with_nonce(i as u64)
                    .with_chain_id(chain_id)
                    .with_gas_limit(300_000)
                    .with_gas_price(0);
                let envelope = block_on(req.build(&relayer)).unwrap();
                let raw = alloy::network::eip2718::Encodable2718::encoded_2718(&envelope);
                if tx.blocking_send(raw).is_err() {
                    return;
                }
            }
        })
    };
    let mut sent = 0usize;
    let mut inflight = tokio::task::JoinSet::new();
    while let Some(raw) = rx.recv().await {
        let p2 = p.clone();
        inflight.spawn(async move {
            let _pending = p2.send_raw_transaction(&raw).await.unwrap();
        });
        while inflight.len() >= 32 {
            inflight.join_next().await.unwrap().unwrap();
        }
        sent += 1;
        if sent.is_multiple_of(10_000) {
            while let Some(r) = inflight.join_next().await {
                r.unwrap();
            }
            rpc(&p, "evm_mine", json!([])).await;
            eprintln!("  {sent} opt-ins sent");
        }
    }
    while let Some(r) = inflight.join_next().await {
        r.unwrap();
    }
    signing.await.unwrap();
    rpc(&p, "evm_mine", json!([])).await;
    rpc(&p, "evm_setAutomine", json!([true])).await;
    let pending: Value = p
        .raw_request("txpool_status".into(), json!([]))
        .await
        .unwrap();
    let opted = StudyRegistry::new(studies, p.clone());
    for i in [0, args.patients / 2, args.patients - 1] {
        let key = keccak256(format!("medrec research bench patient {i}"));
        let pseudonym =
            medrec_protocol::pseudonym::study_pseudonym(&key, chain_id, studies, U256::from(1));
        assert!(
            opted
                .isOptedIn(U256::from(1), pseudonym.address())
                .call()
                .await
                .unwrap(),
            "patient {i} is not opted in (txpool {pending})"
        );
    }
    let opt_in_secs = t.elapsed().as_secs_f64();
    println!(
        "{} opt-ins on chain in {opt_in_secs:.1} s ({:.0} tx/s)",
        args.patients,
        args.patients as f64 / opt_in_secs
    );

    // What one block costs this chain now: anvil computes the state root of its whole state
    // (every patient's account) for each block, so every transaction's wait grows with the
    // population. A production node keeps its state trie up to date incrementally.
    let mut mine_ms = vec![];
    for _ in 0..5 {
        let t = Instant::now();
        rpc(&p, "evm_mine", json!([])).await;
        mine_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    mine_ms.sort_by(f64::total_cmp);

    // Two holders: even patients at A, odd at B.
    let pid = std::process::id();
    let (name_a, name_b) = (
        format!("medrec_research_bench_a_{pid}"),
        format!("medrec_research_bench_b_{pid}"),
    );
    let (db_a, db_b) = (
        ScratchDb::try_create_named(&admin_url, &name_a)
            .await
            .unwrap(),
        ScratchDb::try_create_named(&admin_url, &name_b)
            .await
            .unwrap(),
    );
    let (url_a, url_b) = (db_a.url.clone(), db_b.url.clone());
    let (gk_a, holder_a) = gatekeeper(
        &bin,
        &dir,
        hospital_a.address(),
        "hospital-a",
        &url_a,
        &rpc_url,
    )
    .await;
    let (gk_b, holder_b) = gatekeeper(
        &bin,
        &dir,
        hospital_b.address(),
        "hospital-b",
        &url_b,
        &rpc_url,
    )
    .await;
    // The researcher names the holders by address; each is asked at the endpoint it registered.
    for (who, url) in [(&hospital_a, &holder_a), (&hospital_b, &holder_b)] {
        let as_holder = wallet_provider(&rpc_url, who, Duration::from_millis(10));
        medrec_test_support::register_holder(&as_holder, d.record_registry, url, who.address())
            .await;
    }
    let holders = format!("{},{}", hospital_a.address(), hospital_b.address());
    let t = Instant::now();
    let at_a: Vec<&Patient> = population.iter().step_by(2).collect();
    let at_b: Vec<&Patient> = population.iter().skip(1).step_by(2).collect();
    load_facts(&url_a, &at_a).await;
    load_facts(&url_b, &at_b).await;
    println!(
        "facts of {} + {} patients written to the two holders in {:.1} s",
        at_a.len(),
        at_b.len(),
        t.elapsed().as_secs_f64()
    );

    // From here the chain makes a block every second, as a consortium's chain does: the
    // receipt waits for the next block.
    rpc(&p, "evm_setIntervalMining", json!([1])).await;

    // The queries, through the researcher's CLI.
    let mut end_to_end = vec![];
    let mut per_holder = vec![];
    let mut first = None;
    let (mut setup, mut record, mut answers) = (vec![], vec![], vec![]);
    for round in 0..args.queries {
        for (flag, code) in [
            ("--condition", CONDITIONS[round % 2].0),
            ("--observation", OBSERVATIONS[round % 2].0),
        ] {
            let epsilon = EPSILON.to_string();
            let mut query = vec![
                "-a",
                "researcher",
                "--json",
                "study",
                "query",
                "1",
                flag,
                code,
                "--epsilon",
                &epsilon,
                "--holders",
                &holders,
            ];
            let (lower, upper) = if flag == "--observation" {
                let (l, u) = bounds(code);
                (l.to_string(), u.to_string())
            } else {
                Default::default()
            };
            if flag == "--observation" {
                query.extend(["--lower", &lower, "--upper", &upper]);
            }
            let t = Instant::now();
            let (ok, out, err) = cli(&bin, &dir, &rpc_url, &query);
            let secs = t.elapsed().as_secs_f64();
            assert!(ok, "query failed: {err}");
            let pinned = out["pinnedBlock"].as_u64().unwrap();
            let ts = p
                .get_block_by_number(pinned.into())
                .await
                .unwrap()
                .unwrap()
                .header
                .timestamp;
            check(
                &population[..args.patients],
                flag,
                code,
                ts,
                &out["combined"],
            );
            let ms = &out["ms"];
            let f = |k: &str| ms[k].as_f64().unwrap_or(0.0);
            setup.push(f("setup"));
            record.push(f("record"));
            answers.push(f("setup") + f("holders"));
            first.get_or_insert(secs);
            end_to_end.push(secs);
            for h in out["holders"].as_array().unwrap() {
                per_holder.push(h["ms"].as_f64().unwrap() / 1e3);
            }
        }
    }
    end_to_end.sort_by(f64::total_cmp);
    per_holder.sort_by(f64::total_cmp);
    setup.sort_by(f64::total_cmp);
    record.sort_by(f64::total_cmp);
    answers.sort_by(f64::total_cmp);
    let cpu = cpu_model().unwrap_or_default();
    println!();
    println!(
        "| research aggregate ({} consenting of {} patients, two holders) | figure |",
        args.patients,
        population.len()
    );
    println!("|---|---:|");
    println!(
        "| queries (condition count and observation statistics, answers checked) | {} |",
        end_to_end.len()
    );
    println!(
        "| end to end (`medrec study query`): first | {:.0} ms |",
        first.unwrap() * 1e3
    );
    println!(
        "| end to end: p50 / max | {:.0} / {:.0} ms |",
        pct(&end_to_end, 0.5) * 1e3,
        end_to_end[end_to_end.len() - 1] * 1e3
    );
    println!(
        "| the researcher holds the checked answers: p50 / max | {:.0} / {:.0} ms |",
        pct(&answers, 0.5),
        answers[answers.len() - 1]
    );
    println!(
        "| then the receipt is on chain (a block every second): p50 / max | {:.0} / {:.0} ms |",
        pct(&record, 0.5),
        record[record.len() - 1]
    );
    println!(
        "| per holder (request to signed answer): p50 / max | {:.0} / {:.0} ms |",
        pct(&per_holder, 0.5) * 1e3,
        per_holder[per_holder.len() - 1] * 1e3
    );
    println!(
        "| end to end: connecting, pinning, checking study and budget, p50 | {:.0} ms |",
        pct(&setup, 0.5)
    );
    println!(
        "| anvil: mining one empty block over this state, median | {:.0} ms |",
        mine_ms[2]
    );
    println!("| opt-in transactions sent and mined | {opt_in_secs:.1} s |");
    println!("| machine | {} cores, {cpu} |", cores());
    println!("total {:.0} s", total.elapsed().as_secs_f64());
    if let Some(secs) = args.hold {
        println!(
            "holding: MEDREC_RPC_URL={rpc_url} MEDREC_KEYSTORE_DIR={0}/keystores MEDREC_PASSWORD_FILE={0}/password MEDREC_DEPLOYMENTS={0}/deployment.json {1}/medrec -a researcher study query 1 --condition 44054006 --epsilon 1 --holders {holders}",
            dir.display(),
            bin.display()
        );
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    drop((gk_a, gk_b));
    drop((db_a, db_b));
    drop(anvil);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a future that never waits on I/O (local signing) to completion on this blocking thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

/// The calldata of patient `key`'s relayed opt-in to study 1 as its pseudonym, with a slot for
/// each of `holders` (address, service public key).
fn opt_in_calldata(
    key: &alloy::primitives::B256,
    chain_id: u64,
    studies: Address,
    holders: &[(Address, Vec<u8>)],
    issued_at: u64,
) -> Vec<u8> {
    use alloy::signers::SignerSync;
    use alloy::sol_types::SolStruct;
    use medrec_protocol::study_tags::{self, HolderSlot, OptInContext};
    let patient = PrivateKeySigner::from_bytes(key).unwrap();
    let id = U256::from(1);
    let pseudonym = medrec_protocol::pseudonym::study_pseudonym(key, chain_id, studies, id);
    let ctx = OptInContext {
        chain_id,
        registry: studies,
        study_id: id,
        pseudonym: pseudonym.address(),
    };
    let slots: Vec<HolderSlot> = holders
        .iter()
        .map(|(h, pk)| HolderSlot {
            holder: *h,
            service_key: pk.clone(),
            proof: study_tags::membership_proof(&patient.to_bytes(), *h, pk, &ctx).unwrap(),
        })
        .collect();
    let tags = study_tags::build(&ctx, &slots).unwrap();
    let msg = medrec_bindings::eip712::OptIn {
        studyId: id,
        pseudonym: pseudonym.address(),
        tags: tags.into(),
        epoch: alloy::primitives::aliases::U24::ZERO,
        issuedAt: alloy::primitives::aliases::U40::from(issued_at),
        deadline: U256::from(issued_at + medrec_protocol::study_tags::STUDY_SIGNATURE_WINDOW),
    };
    let sig = pseudonym
        .sign_hash_sync(&msg.eip712_signing_hash(&medrec_bindings::study_domain(chain_id, studies)))
        .unwrap();
    StudyRegistry::optInBySigCall {
        studyId: id,
        pseudonym: msg.pseudonym,
        tags: msg.tags,
        epoch: msg.epoch,
        issuedAt: msg.issuedAt,
        deadline: msg.deadline,
        signature: sig.as_bytes().into(),
    }
    .abi_encode()
}
