//! `medrec-sim`: the demo's simulated population. It turns generated FHIR bundles (one per
//! patient, e.g. from `carebundle`) into patients with keys, records per category for the
//! hospital that holds each patient and a manifest per hospital for `medrec import`; it
//! relays the grants and research opt-ins that the patients sign; and it prints the run's
//! figures. Patients' keys are derived from the seed: a demo's patients, never real ones.

// A console program: what it prints is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod adversary;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256, aliases::U40, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use medrec_bindings::eip712::{Grant, OptIn};
use medrec_bindings::{ConsentRegistry, StudyRegistry};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The demo's simulated population.
#[derive(Debug, Parser)]
#[command(name = "medrec-sim", version)]
struct Args {
    /// JSON-RPC URL of the chain
    #[arg(
        long,
        global = true,
        env = "MEDREC_RPC_URL",
        default_value = "http://127.0.0.1:8545"
    )]
    rpc_url: String,
    /// Deployments file, or folder of <chain-id>.json files
    #[arg(
        long,
        global = true,
        env = "MEDREC_DEPLOYMENTS",
        default_value = "deployments"
    )]
    deployments: PathBuf,
    /// Folder of keystores (the relayer's)
    #[arg(long, global = true, env = "MEDREC_KEYSTORE_DIR")]
    keystore_dir: Option<PathBuf>,
    /// File whose first line is the keystores' password
    #[arg(long, global = true, env = "MEDREC_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Split bundles into per-category records for the hospitals, write a manifest per
    /// hospital and the patients list, and relay each patient's signed grant to its hospital
    Population(PopulationArgs),
    /// Relay signed opt-ins of a share of the population to a study
    OptIn(OptInArgs),
    /// Print the figures of the run: population, chain, indexer, and the steps' timings
    Summary(SummaryArgs),
    /// Read the whole chain (and the indexer's database) as an adversary and print what it
    /// recovers about each patient
    Adversary(adversary::AdversaryArgs),
}

#[derive(Debug, clap::Args)]
struct PopulationArgs {
    /// Folder of FHIR transaction or collection bundles, one patient each (*.json)
    #[arg(long)]
    bundles: PathBuf,
    /// Where to write records, manifests and patients.json
    #[arg(long)]
    out: PathBuf,
    /// Seed of the patients' keys
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The hospitals: name=address, comma-separated; patient i goes to hospital i mod n
    #[arg(long, value_delimiter = ',', required = true)]
    hospitals: Vec<String>,
    /// The keystore (in the keystore folder) that relays the grants and pays their gas
    #[arg(long, default_value = "operator")]
    relayer: String,
    /// How long the grants last, in days
    #[arg(long, default_value_t = 365)]
    grant_days: u64,
}

#[derive(Debug, clap::Args)]
struct OptInArgs {
    /// The population folder (patients.json)
    #[arg(long)]
    population: PathBuf,
    /// The study id
    #[arg(long)]
    study: u64,
    /// Share of the patients who opt in (0 to 1), the same ones every run
    #[arg(long, default_value_t = 0.6)]
    share: f64,
    /// The keystore that relays the opt-ins
    #[arg(long, default_value = "operator")]
    relayer: String,
}

#[derive(Debug, clap::Args)]
struct SummaryArgs {
    /// The population folder
    #[arg(long)]
    population: PathBuf,
    /// The indexer's URL
    #[arg(
        long,
        env = "MEDREC_INDEXER_URL",
        default_value = "http://127.0.0.1:8600"
    )]
    indexer_url: String,
    /// Extra figures: JSON files of `medrec --json` results or `name=value` lines files
    #[arg(long, value_delimiter = ',')]
    figures: Vec<PathBuf>,
}

/// A failure: a message and an exit code (2 input, 4 chain or service, 8 files).
#[derive(Debug)]
struct Fail(u8, String);

type Result<T> = std::result::Result<T, Fail>;

fn input(m: impl Into<String>) -> Fail {
    Fail(2, m.into())
}
fn chain(m: impl std::fmt::Display) -> Fail {
    Fail(4, format!("chain: {m}"))
}
fn io(m: impl Into<String>) -> Fail {
    Fail(8, m.into())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("medrec-sim: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("medrec-sim: {msg}");
            ExitCode::from(code)
        }
    }
}

async fn run(args: Args) -> Result<()> {
    match &args.cmd {
        Cmd::Population(a) => population(&args, a).await,
        Cmd::OptIn(a) => opt_in(&args, a).await,
        Cmd::Summary(a) => summary(&args, a).await,
        Cmd::Adversary(a) => adversary::run(&args, a).await,
    }
}

/// A simulated patient's key: derived from the seed and the patient's place in the population.
fn patient_key(seed: u64, index: usize) -> PrivateKeySigner {
    let mut i = 0u64;
    loop {
        // keccak output is a valid secp256k1 key but for a negligible share; step past those.
        let k = keccak256(format!("medrec demo patient {seed} {index} {i}"));
        if let Ok(s) = PrivateKeySigner::from_bytes(&k) {
            return s;
        }
        i += 1;
    }
}

/// The category a FHIR resource of a patient's bundle is filed under; None: not the
/// patient's record (practitioners, organisations).
fn category_of(resource: &Value) -> Option<&'static str> {
    let observation_category = || {
        resource["category"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["coding"].as_array().into_iter().flatten())
            .filter_map(|c| c["code"].as_str())
            .collect::<Vec<_>>()
    };
    Some(match resource["resourceType"].as_str()? {
        "Patient" => "demographics",
        "Condition" => "conditions",
        "MedicationRequest" | "MedicationStatement" | "MedicationAdministration" => "medications",
        "Observation" if observation_category().contains(&"vital-signs") => "vitals",
        "Observation" | "DiagnosticReport" | "Specimen" => "labs",
        "Encounter" => "encounters",
        "AllergyIntolerance" => "allergies",
        "Immunization" => "immunizations",
        "Procedure" => "procedures",
        "ImagingStudy" => "imaging",
        "DocumentReference" => "documents",
        _ => return None,
    })
}

/// Splits one patient's bundle into per-category collection bundles (in a fixed order).
fn split(bundle: &Value) -> Result<BTreeMap<&'static str, Value>> {
    let entries = bundle["entry"]
        .as_array()
        .ok_or_else(|| input("a bundle without entries"))?;
    let mut by: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    for e in entries {
        if let Some(c) = category_of(&e["resource"]) {
            let mut entry = json!({"resource": e["resource"]});
            if let Some(u) = e.get("fullUrl") {
                entry["fullUrl"] = u.clone();
            }
            by.entry(c).or_default().push(entry);
        }
    }
    if !by.contains_key("demographics") {
        return Err(input("a bundle without a Patient"));
    }
    Ok(by
        .into_iter()
        .map(|(c, entries)| {
            (
                c,
                json!({"resourceType": "Bundle", "type": "collection", "entry": entries}),
            )
        })
        .collect())
}

fn provider(url: &str, signer: Option<&PrivateKeySigner>) -> Result<DynProvider> {
    let url = url
        .parse()
        .map_err(|_| input(format!("bad RPC URL {url:?}")))?;
    let p = match signer {
        Some(s) => ProviderBuilder::new()
            .wallet(EthereumWallet::from(s.clone()))
            .connect_http(url)
            .erased(),
        None => ProviderBuilder::new().connect_http(url).erased(),
    };
    p.client().set_poll_interval(Duration::from_millis(20));
    Ok(p)
}

fn relayer(args: &Args, name: &str) -> Result<PrivateKeySigner> {
    let dir = args
        .keystore_dir
        .as_ref()
        .ok_or_else(|| input("give --keystore-dir (or MEDREC_KEYSTORE_DIR)"))?;
    let pw_file = args
        .password_file
        .as_ref()
        .ok_or_else(|| input("give --password-file (or MEDREC_PASSWORD_FILE)"))?;
    let pw = SecretString::from(
        std::fs::read_to_string(pw_file)
            .map_err(|e| io(format!("cannot read {}: {e}", pw_file.display())))?,
    );
    let pw = pw.expose_secret().lines().next().unwrap_or_default();
    PrivateKeySigner::decrypt_keystore(dir.join(name), pw)
        .map_err(|e| Fail(6, format!("cannot open the keystore {name}: {e}")))
}

async fn deployment(
    args: &Args,
    p: &DynProvider,
) -> Result<medrec_bindings::deployment::Deployment> {
    let id = p
        .get_chain_id()
        .await
        .map_err(|e| chain(format!("cannot reach {}: {e}", args.rpc_url)))?;
    medrec_bindings::deployment::read(&args.deployments, id).map_err(|e| Fail(5, e))
}

/// Progress: an indicatif bar at a terminal; elsewhere (the demo's logs) a line every tenth.
struct Progress {
    what: &'static str,
    bar: ProgressBar,
    last: u64,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        // The template is a constant: it parses, and the default style is as good otherwise.
        if let Ok(style) = ProgressStyle::with_template("  {msg} {pos}/{len} {wide_bar} {eta}") {
            bar.set_style(style);
        }
        bar.set_message(what);
        Self { what, bar, last: 0 }
    }

    fn at(&mut self, n: usize) {
        let (n, total) = (n as u64, self.bar.length().unwrap_or_default());
        self.bar.set_position(n);
        if n == total {
            self.bar.finish();
        }
        // indicatif draws nothing when stderr is not a terminal.
        if self.bar.is_hidden() && (n == total || n >= self.last + (total / 10).max(1)) {
            eprintln!("  {} {n}/{total}", self.what);
            self.last = n;
        }
    }
}

/// Sends calls from one account with consecutive nonces, a few in flight, then waits for
/// every receipt; fails if one reverted. Returns (transactions, gas used).
async fn send_all(
    p: &DynProvider,
    from: Address,
    calls: Vec<(Address, Vec<u8>)>,
    what: &'static str,
) -> Result<(usize, u64)> {
    use alloy::network::TransactionBuilder;
    use alloy::rpc::types::TransactionRequest;
    if calls.is_empty() {
        return Ok((0, 0));
    }
    let nonce = p
        .get_transaction_count(from)
        .pending()
        .await
        .map_err(chain)?;
    let price = p.get_gas_price().await.map_err(chain)?.saturating_mul(2);
    // All calls of a kind cost about the same: the first is estimated (a revert shows here).
    let first = TransactionRequest::default()
        .with_from(from)
        .with_to(calls[0].0)
        .with_input(calls[0].1.clone());
    let gas = p
        .estimate_gas(first)
        .await
        .map_err(|e| chain(format!("{what} would fail: {}", revert_name(&e))))?;
    // On a development chain (anvil) automine is paused while sending, and blocks are mined
    // full afterwards: thousands of one-transaction blocks would cost a state root each.
    let bulk = p
        .raw_request::<_, Value>("evm_setAutomine".into(), (false,))
        .await
        .is_ok();
    let sent = send_in_order(p, from, calls, nonce, gas * 3 / 2, price, what).await;
    if bulk {
        let mined =
            mine_until_included(p, sent.as_ref().ok().and_then(|h| h.last().copied())).await;
        let _ = p
            .raw_request::<_, Value>("evm_setAutomine".into(), (true,))
            .await;
        mined?;
    }
    let hashes = sent?;
    let mut used = 0u64;
    for h in &hashes {
        let receipt = loop {
            match p.get_transaction_receipt(*h).await.map_err(chain)? {
                Some(r) => break r,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        if !receipt.status() {
            return Err(chain(format!("{what}: transaction {h} reverted")));
        }
        used += receipt.gas_used;
    }
    Ok((hashes.len(), used))
}

/// Sends the calls with consecutive nonces, one after the other (so that the node sees them
/// in nonce order); their hashes.
async fn send_in_order(
    p: &DynProvider,
    from: Address,
    calls: Vec<(Address, Vec<u8>)>,
    nonce: u64,
    gas: u64,
    price: u128,
    what: &'static str,
) -> Result<Vec<B256>> {
    use alloy::network::TransactionBuilder;
    use alloy::rpc::types::TransactionRequest;
    let mut progress = Progress::new(what, calls.len());
    let mut hashes = Vec::with_capacity(calls.len());
    for (i, (to, data)) in calls.into_iter().enumerate() {
        let tx = TransactionRequest::default()
            .with_from(from)
            .with_to(to)
            .with_input(data)
            .with_nonce(nonce + i as u64)
            .with_gas_limit(gas)
            .with_gas_price(price);
        hashes.push(*p.send_transaction(tx).await.map_err(chain)?.tx_hash());
        progress.at(i + 1);
    }
    Ok(hashes)
}

/// Mines blocks until the transaction `last` is in one (all before it from the same sender are).
async fn mine_until_included(p: &DynProvider, last: Option<B256>) -> Result<()> {
    let Some(last) = last else { return Ok(()) };
    for _ in 0..100_000 {
        if p.get_transaction_receipt(last)
            .await
            .map_err(chain)?
            .is_some()
        {
            return Ok(());
        }
        p.raw_request::<_, Value>("evm_mine".into(), ())
            .await
            .map_err(chain)?;
    }
    Err(chain(format!("transaction {last} was never mined")))
}

fn revert_name(e: &alloy::transports::RpcError<alloy::transports::TransportErrorKind>) -> String {
    e.as_error_resp()
        .and_then(|r| r.as_revert_data())
        .and_then(|d| medrec_bindings::decode_revert(&d))
        .map(|r| r.name)
        .unwrap_or_else(|| e.to_string())
}

/// Runs `f(0..n)` sixteen at a time; the `Some` results, in index order.
async fn parallel<T, F, Fut>(n: usize, f: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Option<T>>> + Send,
{
    const WORKERS: usize = 16;
    let mut set = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let f = f.clone();
        set.spawn(async move {
            let mut out = vec![];
            for i in (w..n).step_by(WORKERS) {
                if let Some(t) = f(i).await? {
                    out.push((i, t));
                }
            }
            Ok::<_, Fail>(out)
        });
    }
    let mut all = vec![];
    while let Some(r) = set.join_next().await {
        all.extend(r.map_err(|e| chain(e.to_string()))??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    // Write then rename: a crash never leaves a half-written file behind.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io(format!("cannot write {}: {e}", path.display())))
}

async fn population(args: &Args, a: &PopulationArgs) -> Result<()> {
    let started = Instant::now();
    let hospitals: Vec<(String, Address)> = a
        .hospitals
        .iter()
        .map(|h| {
            let (name, addr) = h
                .split_once('=')
                .ok_or_else(|| input(format!("--hospitals: {h:?} is not name=address")))?;
            let addr = addr
                .parse()
                .map_err(|_| input(format!("--hospitals: {addr:?} is not an address")))?;
            Ok((name.to_string(), addr))
        })
        .collect::<Result<_>>()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&a.bundles)
        .map_err(|e| io(format!("cannot read {}: {e}", a.bundles.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(input(format!(
            "no *.json bundles in {}",
            a.bundles.display()
        )));
    }
    std::fs::create_dir_all(a.out.join("records"))
        .map_err(|e| io(format!("cannot create {}: {e}", a.out.display())))?;

    // Records and manifests.
    let mut manifests: Vec<Vec<Value>> = vec![vec![]; hospitals.len()];
    let mut patients = vec![];
    let mut masks = vec![];
    let (mut records, mut bytes) = (0usize, 0usize);
    let mut progress = Progress::new("patients split into records", files.len());
    for (i, f) in files.iter().enumerate() {
        let bundle: Value = std::fs::read(f)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| input(format!("{} is not a JSON bundle", f.display())))?;
        let parts =
            split(&bundle).map_err(|Fail(c, m)| Fail(c, format!("{}: {m}", f.display())))?;
        let key = patient_key(a.seed, i);
        let h = i % hospitals.len();
        let dir = a.out.join("records").join(format!("{i:06}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| io(format!("cannot create {}: {e}", dir.display())))?;
        let mut mask = 0u64;
        let mut demo = (Value::Null, Value::Null);
        for (category, record) in &parts {
            if *category == "demographics" {
                let p = &record["entry"][0]["resource"];
                demo = (p["gender"].clone(), p["birthDate"].clone());
            }
            let text = serde_json::to_vec(record).map_err(|e| io(e.to_string()))?;
            let path = dir.join(format!("{category}.json"));
            write(&path, &text)?;
            records += 1;
            bytes += text.len();
            mask |= 1 << medrec_bindings::category_index(category).unwrap_or(0);
            manifests[h].push(json!({"file": format!("records/{i:06}/{category}.json"),
                "patient": key.address(), "category": category}));
        }
        masks.push(mask);
        patients.push(json!({"index": i, "address": key.address(), "hospital": hospitals[h].0,
            "holder": hospitals[h].1, "bundle": f.file_name().map(|n| n.to_string_lossy().into_owned()),
            "gender": demo.0, "birthDate": demo.1, "records": parts.len()}));
        progress.at(i + 1);
    }
    // Shuffled: in file order a patient's records run by category name, and an importer that
    // kept that order would anchor them in it, for everyone to read off the chain.
    // Seeded, so that one seed still makes one demo.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(a.seed);
    for m in &mut manifests {
        rand::seq::SliceRandom::shuffle(m.as_mut_slice(), &mut rng);
    }
    for ((name, _), m) in hospitals.iter().zip(&manifests) {
        write(
            &a.out.join(format!("{name}.manifest.json")),
            &serde_json::to_vec(m).map_err(|e| io(e.to_string()))?,
        )?;
    }
    write(
        &a.out.join("patients.json"),
        &serde_json::to_vec_pretty(&patients).map_err(|e| io(e.to_string()))?,
    )?;
    let split_secs = started.elapsed().as_secs_f64();

    // Grants: each patient signs one for its hospital; the relayer sends those not on chain.
    let t = Instant::now();
    let relay = relayer(args, &a.relayer)?;
    let p = provider(&args.rpc_url, Some(&relay))?;
    let d = deployment(args, &p).await?;
    let consent = ConsentRegistry::new(d.consent_registry, p.clone());
    let chain_id = p.get_chain_id().await.map_err(chain)?;
    let domain = medrec_bindings::consent_domain(chain_id, d.consent_registry);
    let now = p
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(chain)?
        .map(|b| b.header.timestamp)
        .unwrap_or_default();
    eprintln!("  checking {} patients' grants on chain", files.len());
    let masks = std::sync::Arc::new(masks);
    let holders: std::sync::Arc<Vec<Address>> =
        std::sync::Arc::new(hospitals.iter().map(|h| h.1).collect());
    let (seed, days, at) = (a.seed, a.grant_days, d.consent_registry);
    let calls = parallel(files.len(), move |i| {
        let (consent, domain, masks, holders) = (
            consent.clone(),
            domain.clone(),
            masks.clone(),
            holders.clone(),
        );
        async move {
            let key = patient_key(seed, i);
            let (mask, holder) = (masks[i], holders[i % holders.len()]);
            let have = consent
                .grantedCategories(holder, key.address())
                .call()
                .await
                .map_err(chain)?;
            if have & mask == mask {
                return Ok(None);
            }
            let slot = consent
                .grantOf(key.address(), holder)
                .call()
                .await
                .map_err(chain)?;
            let issued = medrec_bindings::next_issued_at(now, slot.signedAt.to());
            let g = Grant {
                patient: key.address(),
                grantee: holder,
                categories: mask,
                purpose: 1,
                notBefore: U40::ZERO,
                expiresAt: U40::from(now + days * 86_400),
                signer: key.address(),
                epoch: slot.epoch,
                issuedAt: U40::from(issued),
                deadline: U256::from(now + 3_600),
            };
            let sig = key
                .sign_hash(&g.eip712_signing_hash(&domain))
                .await
                .map_err(|e| Fail(6, format!("cannot sign: {e}")))?;
            let call = consent.grantBySig(
                g.patient,
                g.grantee,
                g.categories,
                g.purpose,
                g.notBefore,
                g.expiresAt,
                g.signer,
                g.epoch,
                g.issuedAt,
                g.deadline,
                sig.as_bytes().to_vec().into(),
            );
            Ok(Some((at, call.calldata().to_vec())))
        }
    })
    .await?;
    let already = files.len() - calls.len();
    let (txs, gas) = send_all(&p, relay.address(), calls, "grants relayed").await?;
    let figures = json!({"seed": a.seed, "patients": files.len(), "records": records, "bytes": bytes,
        "hospitals": hospitals.iter().map(|(n, a)| json!({"name": n, "address": a,
            "patients": patients.iter().filter(|p| p["hospital"] == n.as_str()).count()})).collect::<Vec<_>>(),
        "splitSeconds": split_secs, "grantTransactions": txs, "grantGas": gas,
        "grantsAlready": already, "grantSeconds": t.elapsed().as_secs_f64()});
    write(
        &a.out.join("population.json"),
        &serde_json::to_vec_pretty(&figures).map_err(|e| io(e.to_string()))?,
    )?;
    println!(
        "{} patients, {records} records ({:.1} MB) for {} hospitals; {txs} grants relayed ({already} on chain already), {} gas each",
        files.len(),
        bytes as f64 / 1e6,
        hospitals.len(),
        gas / txs.max(1) as u64
    );
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let b = std::fs::read(path).map_err(|e| io(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&b).map_err(|e| input(format!("{} is not JSON: {e}", path.display())))
}

/// Whether patient `index` is among the `share` who opt in (the same ones every run).
fn opts_in(seed_word: B256, index: usize, share: f64) -> bool {
    let h = keccak256([seed_word.as_slice(), &index.to_be_bytes()].concat());
    (u64::from_be_bytes(h[..8].try_into().unwrap_or_default()) as f64 / u64::MAX as f64) < share
}

async fn opt_in(args: &Args, a: &OptInArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.share) {
        return Err(input("--share must be between 0 and 1"));
    }
    let patients = read_json(&a.population.join("patients.json"))?;
    let figures = read_json(&a.population.join("population.json"))?;
    let patients = match patients.as_array() {
        Some(p) if !p.is_empty() => p.clone(),
        _ => {
            return Err(input(format!(
                "{} lists no patients: run medrec-sim population first",
                a.population.join("patients.json").display()
            )));
        }
    };
    let seed = figures["seed"].as_u64().ok_or_else(|| {
        input(format!(
            "{} has no seed: run medrec-sim population again",
            a.population.join("population.json").display()
        ))
    })?;
    let relay = relayer(args, &a.relayer)?;
    let p = provider(&args.rpc_url, Some(&relay))?;
    let d = deployment(args, &p).await?;
    let studies_at = d
        .study_registry
        .ok_or_else(|| Fail(5, "the deployment has no study registry".into()))?;
    let studies = StudyRegistry::new(studies_at, p.clone());
    let chain_id = p.get_chain_id().await.map_err(chain)?;
    let domain = medrec_bindings::study_domain(chain_id, studies_at);
    let study = U256::from(a.study);
    let now = p
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .map_err(chain)?
        .map(|b| b.header.timestamp)
        .unwrap_or_default();
    let which = keccak256(format!("opt-in {}", a.study));
    let (share, n) = (a.share, patients.len());
    let chosen = (0..n).filter(|i| opts_in(which, *i, share)).count();
    // Each patient opts in as their study pseudonym (issue 16), with a slot for the hospital
    // that holds their records, encrypted to the service key it serves and registered on chain.
    let service_keys = std::sync::Arc::new(service_keys(&p, &d, &patients).await?);
    let patients = std::sync::Arc::new(patients);
    eprintln!("  checking {chosen} patients' opt-ins on chain");
    let calls = parallel(n, {
        let patients = patients.clone();
        move |i| {
            let (studies, domain) = (studies.clone(), domain.clone());
            let (patients, service_keys) = (patients.clone(), service_keys.clone());
            async move {
                if !opts_in(which, i, share) {
                    return Ok(None);
                }
                let key = patient_key(seed, i);
                let pseudonym = medrec_protocol::pseudonym::study_pseudonym(
                    &key.to_bytes(),
                    chain_id,
                    studies_at,
                    study,
                );
                if studies
                    .isOptedIn(study, pseudonym.address())
                    .call()
                    .await
                    .map_err(chain)?
                {
                    return Ok(None);
                }
                let slot = studies
                    .participationOf(study, pseudonym.address())
                    .call()
                    .await
                    .map_err(chain)?;
                let ctx = medrec_protocol::study_tags::OptInContext {
                    chain_id,
                    registry: studies_at,
                    study_id: study,
                    pseudonym: pseudonym.address(),
                };
                let secret = key.to_bytes();
                let holder = patients[i]["holder"]
                    .as_str()
                    .and_then(|h| h.parse::<Address>().ok());
                let slots: Vec<_> = holder
                    .and_then(|h| service_keys.get(&h).map(|k| (h, k.clone())))
                    .map(|(holder, service_key)| {
                        medrec_protocol::study_tags::membership_proof(
                            &secret,
                            holder,
                            &service_key,
                            &ctx,
                        )
                        .map(|proof| {
                            medrec_protocol::study_tags::HolderSlot {
                                holder,
                                service_key,
                                proof,
                            }
                        })
                    })
                    .into_iter()
                    .flatten()
                    .collect();
                let tags = medrec_protocol::study_tags::build(&ctx, &slots)
                    .map_err(|e| Fail(6, e.to_string()))?;
                // The chain's minute and the one window of every study message, as the CLI.
                let (issued, deadline) = medrec_protocol::study_tags::study_signed_times(
                    now,
                    slot.signedAt.to(),
                    u64::MAX,
                )
                .ok_or_else(|| Fail(6, "no issue time fits this participation".into()))?;
                let msg = OptIn {
                    studyId: study,
                    pseudonym: pseudonym.address(),
                    tags: tags.into(),
                    epoch: slot.epoch,
                    issuedAt: U40::from(issued),
                    deadline: U256::from(deadline),
                };
                let sig = pseudonym
                    .sign_hash(&msg.eip712_signing_hash(&domain))
                    .await
                    .map_err(|e| Fail(6, format!("cannot sign: {e}")))?;
                let call = studies.optInBySig(
                    study,
                    pseudonym.address(),
                    msg.tags,
                    msg.epoch,
                    msg.issuedAt,
                    msg.deadline,
                    sig.as_bytes().to_vec().into(),
                );
                Ok(Some((studies_at, call.calldata().to_vec())))
            }
        }
    })
    .await?;
    // Relayed in an order of their own (drawn from the OS, not from the demo's public seed): in
    // the patients' order, the k-th opt-in would be the k-th chosen patient of the grants the
    // same account relayed before, and every pseudonym would be linked to its patient.
    let mut calls = calls;
    rand::seq::SliceRandom::shuffle(calls.as_mut_slice(), &mut rand::rngs::OsRng);
    let t = Instant::now();
    let (txs, gas) = send_all(&p, relay.address(), calls, "opt-ins relayed").await?;
    let out = json!({"study": a.study, "patients": patients.len(), "optedIn": chosen,
        "transactions": txs, "gas": gas, "seconds": t.elapsed().as_secs_f64()});
    write(
        &a.population.join(format!("opt-ins-{}.json", a.study)),
        &serde_json::to_vec_pretty(&out).map_err(|e| io(e.to_string()))?,
    )?;
    println!(
        "{chosen} of {} patients opted in to study {} ({txs} signed opt-ins relayed now, {} gas each)",
        patients.len(),
        a.study,
        gas / txs.max(1) as u64
    );
    Ok(())
}

/// The service public key of each hospital holding a patient's records (`holder` in
/// patients.json), served by the gatekeeper it registered on chain and checked against the
/// service key registered there; a hospital without one gets no slot (its patients are then not
/// counted by it).
async fn service_keys(
    p: &DynProvider,
    d: &medrec_bindings::deployment::Deployment,
    patients: &[Value],
) -> Result<BTreeMap<Address, Vec<u8>>> {
    use medrec_protocol::study_tags::{SERVICE_KEY_PATH, ServiceKeyAnswer, address_of_public_key};
    let mut holders: Vec<Address> = patients
        .iter()
        .filter_map(|p| p["holder"].as_str().and_then(|h| h.parse().ok()))
        .collect();
    holders.sort();
    holders.dedup();
    let records = medrec_bindings::RecordRegistry::new(d.record_registry, p.clone());
    let http = alloy::transports::http::reqwest::Client::new();
    let mut keys = BTreeMap::new();
    for h in holders {
        let g = records.gatekeeperOf(h).call().await.map_err(chain)?;
        if g.endpoint.is_empty() {
            eprintln!(
                "  hospital {h} registered no gatekeeper: its patients' opt-ins carry no slot for it"
            );
            continue;
        }
        let url = format!("{}{SERVICE_KEY_PATH}", g.endpoint.trim_end_matches('/'));
        let served: Option<ServiceKeyAnswer> = match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        };
        match served {
            Some(s) if address_of_public_key(&s.public_key) == Some(g.serviceKey) => {
                keys.insert(h, s.public_key.to_vec());
            }
            Some(_) => {
                return Err(Fail(
                    6,
                    format!(
                        "the gatekeeper of {h} serves a service key other than the one registered on chain"
                    ),
                ));
            }
            None => eprintln!(
                "  the gatekeeper of {h} serves no service key at {url}: its patients' opt-ins carry no slot for it"
            ),
        }
    }
    Ok(keys)
}

/// The name of a registry call, from its selector.
fn call_name(input: &[u8]) -> &'static str {
    use alloy::sol_types::SolCall;
    use medrec_bindings::{ParticipantRegistry as Pr, RecordRegistry as Rr};
    let Some(sel) = input.get(..4) else {
        return "transfer";
    };
    let known: [(&[u8; 4], &'static str); 17] = [
        (&ConsentRegistry::grantCall::SELECTOR, "grant"),
        (
            &ConsentRegistry::grantBySigCall::SELECTOR,
            "grant (signed, relayed)",
        ),
        (&ConsentRegistry::revokeCall::SELECTOR, "revoke"),
        (
            &ConsentRegistry::revokeBySigCall::SELECTOR,
            "revoke (signed, relayed)",
        ),
        (
            &ConsentRegistry::setGuardianCall::SELECTOR,
            "name a guardian",
        ),
        (
            &ConsentRegistry::openEmergencyAccessCall::SELECTOR,
            "break-glass open",
        ),
        (
            &ConsentRegistry::closeEmergencyAccessCall::SELECTOR,
            "break-glass close",
        ),
        (&Rr::anchorCall::SELECTOR, "anchor a pointer"),
        (&Rr::anchorBatchCall::SELECTOR, "anchor a batch of pointers"),
        (
            &Rr::anchorAccessLogCall::SELECTOR,
            "anchor an access-log head",
        ),
        (
            &StudyRegistry::registerStudyCall::SELECTOR,
            "register a study",
        ),
        (
            &StudyRegistry::approveStudyCall::SELECTOR,
            "approve a study",
        ),
        (
            &StudyRegistry::optInBySigCall::SELECTOR,
            "opt in (signed by a study pseudonym, relayed)",
        ),
        (
            &StudyRegistry::withdrawBySigCall::SELECTOR,
            "withdraw (signed by a study pseudonym, relayed)",
        ),
        (
            &StudyRegistry::recordQueryCall::SELECTOR,
            "record a research query's receipt",
        ),
        (
            &Pr::issueCredentialCall::SELECTOR,
            "credential a participant",
        ),
        (&Pr::revokeCredentialCall::SELECTOR, "revoke a credential"),
    ];
    known
        .iter()
        .find(|(k, _)| k.as_slice() == sel)
        .map_or("other (deployments, ...)", |(_, n)| n)
}

/// Per operation: (transactions, gas, events).
type Tally = BTreeMap<&'static str, (u64, u64, u64)>;

async fn tally_blocks(p: &DynProvider, head: u64) -> Result<Tally> {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..8u64 {
        let p = p.clone();
        set.spawn(async move {
            let mut t = Tally::new();
            let mut n = w;
            while n <= head {
                let block = p.get_block_by_number(n.into()).full().await?;
                let receipts = p.get_block_receipts(n.into()).await?.unwrap_or_default();
                if let Some(b) = block {
                    for (tx, r) in b.transactions.txns().zip(&receipts) {
                        use alloy::consensus::Transaction;
                        let e = t.entry(call_name(tx.input())).or_default();
                        e.0 += 1;
                        e.1 += r.gas_used;
                        e.2 += r.inner.logs().len() as u64;
                    }
                }
                n += 8;
            }
            Ok::<_, alloy::transports::TransportError>(t)
        });
    }
    let mut all = Tally::new();
    while let Some(r) = set.join_next().await {
        for (k, (n, g, e)) in r.map_err(|e| chain(e.to_string()))?.map_err(chain)? {
            let x = all.entry(k).or_default();
            x.0 += n;
            x.1 += g;
            x.2 += e;
        }
    }
    Ok(all)
}

async fn summary(args: &Args, a: &SummaryArgs) -> Result<()> {
    let pop = read_json(&a.population.join("population.json"))?;
    let p = provider(&args.rpc_url, None)?;
    let head = p.get_block_number().await.map_err(chain)?;
    let tally = tally_blocks(&p, head).await?;
    // The indexer: how long it takes to reach the head from now, and what it holds.
    let http = alloy::transports::http::reqwest::Client::new();
    let base = a.indexer_url.trim_end_matches('/');
    let t = Instant::now();
    let mut indexed = 0;
    while t.elapsed() < Duration::from_secs(60) {
        let h: Value = match http.get(format!("{base}/health")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => return Err(Fail(4, format!("cannot reach the indexer at {base}: {e}"))),
        };
        indexed = h["indexedBlock"].as_u64().unwrap_or(0);
        if indexed >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = t.elapsed();
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .map_err(|e| Fail(4, format!("cannot reach the indexer at {base}: {e}")))?
        .text()
        .await
        .unwrap_or_default();
    let rows: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("medrec_indexer_rows_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    let (txs, gas) = tally
        .values()
        .fold((0, 0), |(t, g), (n, gg, _)| (t + n, g + gg));
    let mut lines = vec![
        format!(
            "  population   {} patients at {} hospitals, {} records ({:.1} MB of FHIR R4), seed {}",
            pop["patients"],
            pop["hospitals"].as_array().map_or(0, Vec::len),
            pop["records"],
            pop["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            pop["seed"]
        ),
        format!("  chain        {head} blocks, {txs} transactions, {gas} gas in all"),
    ];
    lines.push(format!(
        "  {:<30} {:>12} {:>14}",
        "transactions by operation", "count", "gas each"
    ));
    for (name, (n, g, events)) in &tally {
        let per = if *name == "anchor a batch of pointers" {
            format!("{} per pointer ({events} pointers)", g / (*events).max(1))
        } else {
            format!("{}", g / (*n).max(1))
        };
        lines.push(format!("    {name:<28} {n:>12} {per:>14}"));
    }
    lines.push(format!(
        "  indexer      at block {indexed} of {head}: {rows} rows written; reached the head {} ms after this summary asked",
        caught_up.as_millis()
    ));
    for f in &a.figures {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            let d = &v["data"];
            if v["command"] == "import" && d["uploaded"].as_u64().unwrap_or(0) > 0 {
                lines.push(format!(
                    "  upload       {} records to {} at {:.0}/s (this run; signed, encrypted, facts extracted)",
                    d["uploaded"],
                    d["holder"].as_str().unwrap_or("?"),
                    d["uploaded"].as_f64().unwrap_or(0.0)
                        / d["uploadSeconds"].as_f64().unwrap_or(1.0).max(1e-9),
                ));
            }
        } else {
            for l in text.lines().filter(|l| l.contains('=')) {
                let (k, v) = l.split_once('=').unwrap_or_default();
                lines.push(format!("  {k:<12} {v}"));
            }
        }
    }
    println!("{}", lines.join("\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_split_by_category_and_keys_are_stable() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "gender": "female"}},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Practitioner"}},
            {"resource": {"resourceType": "Observation", "category": [{"coding": [{"code": "vital-signs"}]}]}},
            {"resource": {"resourceType": "Observation", "category": [{"coding": [{"code": "laboratory"}]}]}},
            {"resource": {"resourceType": "DiagnosticReport"}},
            {"resource": {"resourceType": "Condition"}}]});
        let parts = split(&bundle).unwrap();
        let names: Vec<_> = parts.keys().copied().collect();
        assert_eq!(names, ["conditions", "demographics", "labs", "vitals"]);
        assert_eq!(parts["labs"]["entry"].as_array().unwrap().len(), 2);
        assert_eq!(parts["demographics"]["entry"][0]["fullUrl"], "urn:uuid:1");
        assert!(split(&json!({"entry": [{"resource": {"resourceType": "Condition"}}]})).is_err());
        assert_eq!(patient_key(42, 7).address(), patient_key(42, 7).address());
        assert_ne!(patient_key(42, 7).address(), patient_key(43, 7).address());
        let w = keccak256("opt-in 1");
        let share = (0..10_000).filter(|i| opts_in(w, *i, 0.6)).count();
        assert!((5_700..6_300).contains(&share), "{share}");
    }
}
