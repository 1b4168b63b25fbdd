//! `medrec study`: research studies. Researchers register and query; the operator approves and
//! closes; patients opt in, withdraw and list their studies.

use super::records::{self, answer, client, error_body, sign};
use crate::chain::{self, Chain, Deployment};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use alloy::transports::http::reqwest;
use clap::{Args, Subcommand};
use medrec_bindings::StudyRegistry;
use medrec_protocol::ResearchRequest;
use medrec_protocol::clock::{RESEARCH_VALIDITY_SECS, now_secs};
use medrec_protocol::envelope::random_nonce;
use medrec_protocol::health::{HEALTH_PATH, Health};
use medrec_protocol::research::{
    self as wire, Answer, Combined, DEFAULT_MAX_PIN_AGE, LOINC, MAX_EPSILON, QUERY_PATH, Query,
    QueryError, SignedAnswer, SignedQuery,
};
use medrec_protocol::study::StudyStatus;
use serde_json::json;

/// Study subcommands.
#[derive(Debug, Subcommand)]
pub enum StudyCmd {
    /// Researcher: register a study (a credentialed researcher)
    Register(RegisterArgs),
    /// Operator: approve a registered study (governance role)
    Approve(IdArg),
    /// Operator: close a study (governance role)
    Close(IdArg),
    /// Patient: opt in to an approved study
    OptIn(ConsentArgs),
    /// Patient: withdraw from a study; it counts from the next block
    Withdraw(ConsentArgs),
    /// Patient: void every outstanding signed opt-in or withdrawal of yours for a study
    CancelSignatures(ConsentArgs),
    /// Show a study as the chain holds it
    Show(IdArg),
    /// Patient: the studies you are opted in to
    Mine,
    /// Researcher: ask every holder an aggregate question, combine the answers and record the
    /// query's receipt on chain (one transaction, spending its cost of the budget)
    Query(QueryArgs),
    /// Show governance's research policy: the smallest minimum cell, the largest budget of a
    /// study and of one researcher's studies together
    Policy(super::study_policy::PolicyArgs),
    /// Operator: set the research policy (governance role)
    SetPolicy(super::study_policy::SetPolicyArgs),
}

/// A study id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The study id
    pub study: u64,
}

/// A patient's change of their participation in a study, sent or signed offline.
#[derive(Debug, Args)]
pub struct ConsentArgs {
    /// The study id
    pub study: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sign: super::grant::SignOnly,
}

/// `study register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The protocol document (only its keccak256 goes on chain)
    #[arg(long)]
    pub protocol: std::path::PathBuf,
    /// Categories the study reads, comma-separated
    #[arg(long, short = 'c')]
    pub categories: String,
    /// Smallest cell reported; smaller ones are suppressed
    #[arg(long, default_value_t = 10)]
    pub min_cell: u32,
    /// Privacy budget in millionths of epsilon (each query spends at least 1)
    #[arg(long, default_value_t = 10_000_000)]
    pub budget: u64,
}

/// `study query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The study id
    pub study: u64,
    /// Count patients with this Condition code (SNOMED CT or ICD-10), by age band and sex
    #[arg(long, conflicts_with = "observation")]
    pub condition: Option<String>,
    /// Code system of --condition: snomed, icd10 or icd10-cm
    #[arg(long, default_value = "snomed")]
    pub system: String,
    /// Count, mean and quartiles of this Observation code's value (LOINC)
    #[arg(long)]
    pub observation: Option<String>,
    /// Add Laplace noise with this epsilon (spends epsilon x 1,000,000 of the budget)
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// The holders to ask: their addresses (0x...), comma-separated, each once. Each is asked
    /// at the gatekeeper endpoint it registered on chain and only while it is a credentialed
    /// provider; its answer must be signed by that address
    #[arg(
        long,
        env = "MEDREC_HOLDERS",
        value_delimiter = ',',
        required = true,
        value_name = "ADDRESSES"
    )]
    pub holders: Vec<String>,
    /// Pin this block instead of the latest. The same code, system, epsilon and block make
    /// the same query: the holders give back the answers they stored, and its receipt is
    /// recorded if it is not on chain yet (after an interrupted query)
    #[arg(long, value_name = "BLOCK")]
    pub pin: Option<u64>,
}

/// The study registry of deployment `d`, or an error when it has none.
pub fn studies(
    chain: &Chain,
    d: &Deployment,
) -> Result<StudyRegistry::StudyRegistryInstance<alloy::providers::DynProvider>> {
    let a = d.study_registry.ok_or_else(|| {
        CliError::Deployment(
            "this deployment has no study registry: deploy again with this version".into(),
        )
    })?;
    Ok(StudyRegistry::new(a, chain.provider.clone()))
}

/// The query the flags ask for, pinned at `pinned`, checked as the holders check it.
fn build_query(a: &QueryArgs, pinned: u64) -> Result<Query> {
    let q = match (&a.condition, &a.observation) {
        (Some(code), None) => Query::ConditionCount {
            system: wire::condition_system(&a.system)
                .ok_or_else(|| {
                    CliError::input(format!(
                        "unknown code system {:?}: use snomed, icd10 or icd10-cm",
                        a.system
                    ))
                })?
                .to_string(),
            code: code.clone(),
            epsilon: a.epsilon,
            pinned_block: pinned,
        },
        (None, Some(code)) => Query::ObservationStats {
            system: LOINC.to_string(),
            code: code.clone(),
            epsilon: a.epsilon,
            pinned_block: pinned,
        },
        _ => {
            return Err(CliError::input(
                "give --condition CODE or --observation LOINC-CODE",
            ));
        }
    };
    q.check().map_err(|e| match e {
        QueryError::Epsilon => CliError::input(format!("--epsilon must be in (0, {MAX_EPSILON}]")),
        other => CliError::input(other.to_string()),
    })?;
    Ok(q)
}

/// Runs a study subcommand.
pub async fn run(cmd: StudyCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        StudyCmd::Register(a) => {
            let categories = units::categories(&a.categories)?;
            let protocol = std::fs::read(&a.protocol)
                .map_err(|e| CliError::Io(format!("cannot read {}: {e}", a.protocol.display())))?;
            let hash = keccak256(&protocol);
            let signer = keys::load(settings)?;
            let chain = Chain::connect_signer(settings, signer).await?;
            let d = chain.deployment(settings).await?;
            let s = studies(&chain, &d)?;
            let (tx, receipt) = chain::send_receipt(
                &chain,
                s.registerStudy(hash, categories, a.min_cell, a.budget),
            )
            .await?;
            let id = receipt
                .inner
                .logs()
                .iter()
                .find_map(|l| l.log_decode::<StudyRegistry::StudyRegistered>().ok())
                .map(|e| e.inner.data.studyId)
                .ok_or_else(|| CliError::Rpc("no StudyRegistered event in the receipt".into()))?;
            out.result(
                "study register",
                json!({"studyId": id.saturating_to::<u64>(), "protocolHash": hash, "tx": tx}),
                &format!("registered study {id} (protocol {hash}); it needs the operator's approval (tx {})", tx.tx_hash),
            );
        }
        StudyCmd::Approve(a) => simple(settings, out, a.study, "approve").await?,
        StudyCmd::Close(a) => simple(settings, out, a.study, "close").await?,
        StudyCmd::OptIn(a) => participation(settings, out, a, "opt-in").await?,
        StudyCmd::Withdraw(a) => participation(settings, out, a, "withdraw").await?,
        StudyCmd::CancelSignatures(a) => {
            participation(settings, out, a, "cancel-signatures").await?
        }
        StudyCmd::Show(a) => {
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let st = studies(&chain, &d)?
                .studyOf(U256::from(a.study))
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            let Some(status) = StudyStatus::from_solidity(st.status) else {
                return Err(CliError::input(format!("unknown study {}", a.study)));
            };
            let cats = medrec_bindings::category_names(st.categories);
            out.result(
                "study show",
                json!({"studyId": a.study, "researcher": st.researcher, "status": status,
                       "categories": cats, "minCellSize": st.minCellSize, "budget": st.budget, "spent": st.spent,
                       "protocolHash": st.protocolHash}),
                &format!(
                    "study {}: {} by {}\n  categories {}\n  min cell   {}\n  budget     {} spent of {}",
                    a.study,
                    status,
                    st.researcher,
                    cats.join(","),
                    st.minCellSize,
                    st.spent,
                    st.budget
                ),
            );
        }
        StudyCmd::Mine => {
            let me = super::own_address(settings)?;
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let s = studies(&chain, &d)?;
            let filter = Filter::new()
                .address(*s.address())
                .event_signature(StudyRegistry::OptedIn::SIGNATURE_HASH)
                .topic2(me.into_word());
            let logs = super::anchor::scan_logs(&chain, &filter, d.start_block, false).await?;
            let mut ids: Vec<U256> = logs
                .iter()
                .filter_map(|l| l.topics().get(1).map(|t| U256::from_be_bytes(t.0)))
                .collect();
            ids.sort();
            ids.dedup();
            let mut live = vec![];
            for id in ids {
                if s.isOptedIn(id, me).call().await.map_err(|e| chain.err(e))? {
                    live.push(id);
                }
            }
            let human = if live.is_empty() {
                "you are not opted in to any study".to_string()
            } else {
                format!(
                    "opted in to studies: {}",
                    live.iter()
                        .map(U256::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            out.result(
                "study mine",
                json!({"patient": me, "studies": live}),
                &human,
            );
        }
        StudyCmd::Query(a) => query(a, settings, out).await?,
        StudyCmd::Policy(a) => super::study_policy::policy(a, settings, out).await?,
        StudyCmd::SetPolicy(a) => super::study_policy::set_policy(a, settings, out).await?,
    }
    Ok(())
}

/// `opt-in`, `withdraw`, `cancel-signatures`: sent, or with `--sign-only` signed for a relayer.
async fn participation(
    settings: &Settings,
    out: Printer,
    a: ConsentArgs,
    what: &str,
) -> Result<()> {
    use crate::signed::{SignedMessage, StudyMessage, Unsigned};
    if !a.sign.sign_only {
        return simple(settings, out, a.study, what).await;
    }
    let signer = keys::load(settings)?;
    let patient = signer.address();
    let id = U256::from(a.study);
    let rel = super::grant::Relationship::Study { id, patient };
    let ctx = super::grant::signing_context(settings, &a.sign, rel).await?;
    let contract = ctx.deployment.study_registry.ok_or_else(|| {
        CliError::Deployment(
            "this deployment has no study registry: deploy again with this version".into(),
        )
    })?;
    let message = StudyMessage {
        study_id: id,
        patient,
        epoch: ctx.epoch,
        issued_at: ctx.issued_at,
        deadline: ctx.deadline,
    };
    let unsigned = match what {
        "opt-in" => Unsigned::OptIn(message),
        "withdraw" => Unsigned::Withdraw(message),
        _ => Unsigned::CancelStudySignatures(message),
    };
    let msg = SignedMessage::sign(&signer, ctx.chain_id, contract, unsigned).await?;
    super::grant::emit_signed(out, &msg, a.sign.out.as_ref(), &format!("study {what}"))
}

async fn simple(settings: &Settings, out: Printer, study: u64, what: &str) -> Result<()> {
    let signer = keys::load(settings)?;
    let me = signer.address();
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let s = studies(&chain, &d)?;
    let id = U256::from(study);
    let tx = match what {
        "approve" => chain::send(&chain, s.approveStudy(id)).await?,
        "close" => chain::send(&chain, s.closeStudy(id)).await?,
        "opt-in" => chain::send(&chain, s.optIn(id)).await?,
        "cancel-signatures" => chain::send(&chain, s.cancelSignatures(id)).await?,
        _ => chain::send(&chain, s.withdraw(id)).await?,
    };
    let human = match what {
        "approve" => format!("study {study} approved"),
        "close" => format!("study {study} closed"),
        "opt-in" => format!("{me} opted in to study {study}"),
        "cancel-signatures" => format!(
            "every outstanding signed opt-in or withdrawal of {me} for study {study} is void"
        ),
        _ => format!(
            "{me} withdrew from study {study}; it counts from block {}",
            tx.block_number + 1
        ),
    };
    out.result(
        &format!("study {what}"),
        json!({"studyId": study, "tx": tx}),
        &format!("{human} (tx {})", tx.tx_hash),
    );
    Ok(())
}

async fn query(a: QueryArgs, settings: &Settings, out: Printer) -> Result<()> {
    let started = std::time::Instant::now();
    build_query(&a, 0)?; // bad input fails before a key, a node or any gas is involved
    let holders = holder_list(&a.holders)?;
    let signer = keys::load(settings)?;
    let chain = Chain::connect_signer(settings, signer.clone()).await?;
    let d = chain.deployment(settings).await?;
    let s = studies(&chain, &d)?;
    let id = U256::from(a.study);
    let latest = chain
        .provider
        .get_block_number()
        .await
        .map_err(|e| crate::error::from_transport(e, &chain.url))?;
    // Each holder's endpoint comes from its registration on chain, and only a credentialed
    // provider is asked: a server in the list is no holder for saying so, and its signed counts
    // would be added to the others.
    let mut bases = Vec::with_capacity(holders.len());
    for h in &holders {
        bases.push(super::holder::credentialed_gatekeeper_url(&chain, &d, *h).await?);
    }
    let pinned = a.pin.unwrap_or(latest);
    if pinned > latest {
        return Err(CliError::input(format!(
            "--pin {pinned} is after the latest block ({latest})"
        )));
    }
    let q = build_query(&a, pinned)?;
    let (text, hash, cost) = (q.text(), q.hash(), q.cost());
    // Before any holder is asked: the receipt this query will need must be recordable (the
    // study, its researcher, its status, the budget), checked by simulating it; a query asked
    // again with --pin may already have its receipt.
    let (study, existing) = tokio::try_join!(
        async { s.studyOf(id).call().await.map_err(|e| chain.err(e)) },
        async { s.queryOf(id, hash).call().await.map_err(|e| chain.err(e)) },
    )?;
    let recorded = existing.cost != 0;
    if StudyStatus::from_solidity(study.status) == Some(StudyStatus::Closed) && !recorded {
        return Err(CliError::Refused(format!(
            "study {} is closed: holders answer no new query",
            a.study
        )));
    }
    if !recorded {
        s.recordQuery(id, hash, cost, pinned, B256::repeat_byte(1))
            .call()
            .await
            .map_err(|e| chain.err(e))?;
    }
    let setup_ms = started.elapsed().as_secs_f64() * 1e3;
    out.progress(&format!(
        "query {hash} ({cost} of the budget), pinned at block {pinned}: asking {} holder(s)",
        holders.len()
    ));
    let domain = medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry);
    let client = client()?;
    // Every holder is asked at once; the slowest sets the pace.
    let asked = std::time::Instant::now();
    let mut asks = tokio::task::JoinSet::new();
    for (i, (holder, url)) in holders.iter().zip(&bases).enumerate() {
        let q = Ask {
            holder: *holder,
            client: client.clone(),
            signer: signer.clone(),
            domain: domain.clone(),
            study: id,
            hash,
            text: text.clone(),
            base: url.trim_end_matches('/').to_string(),
        };
        asks.spawn(async move { (i, ask(q).await) });
    }
    let mut answers = vec![None; holders.len()];
    let mut failed: Option<CliError> = None;
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((i, Ok(answer))) => answers[i] = Some(answer),
            Ok((_, Err(e))) => {
                failed.get_or_insert(e);
            }
            Err(e) => {
                failed.get_or_insert(CliError::Rpc(format!("a holder query failed: {e}")));
            }
        }
    }
    let timed: Vec<(Address, Answer, f64)> = answers.into_iter().flatten().collect();
    let holders_ms = asked.elapsed().as_secs_f64() * 1e3;
    // Combine: counts add up per cell; a cell suppressed at any holder is reported as such.
    let combined = wire::combine(timed.iter().map(|(_, a, _)| &a.result));
    let answer_hash = combined.hash();
    if let Some(e) = failed {
        // The holders that answered wait for this query's receipt before answering another
        // one of the study: it is recorded for what was received, then the failure is told.
        if timed.is_empty() || recorded {
            return Err(e);
        }
        let again = format!(
            "ask again with --pin {pinned} (holders take a pinned block only while it is \
             recent: {DEFAULT_MAX_PIN_AGE} blocks by default)"
        );
        return Err(
            match chain::send(&chain, s.recordQuery(id, hash, cost, pinned, answer_hash)).await {
                Ok(tx) => e.with_note(&format!(
                    "the receipt for the {} of {} holder(s) that answered was recorded (tx {}); \
                     {again} for the others",
                    timed.len(),
                    holders.len(),
                    tx.tx_hash
                )),
                Err(rec) => e.with_note(&format!(
                    "recording the receipt for the {} holder(s) that answered failed too \
                     ({rec}); they answer no other query of the study until it is recorded: \
                     {again}",
                    timed.len()
                )),
            },
        );
    }
    // The receipt, in one transaction: the query, its cost, its pinned block and the hash of
    // the answer received. Holders answer no other query of this study until it is on chain.
    let receipt = if recorded {
        None
    } else {
        Some(chain::send(&chain, s.recordQuery(id, hash, cost, pinned, answer_hash)).await?)
    };
    let record_ms = started.elapsed().as_secs_f64() * 1e3 - setup_ms - holders_ms;
    let mut human = render(&combined, a.study, pinned);
    for (h, _, ms) in &timed {
        human.push_str(&format!("\n  answered by {h} in {ms:.0} ms"));
    }
    let matches = existing.answerHash == answer_hash;
    match &receipt {
        Some(tx) => human.push_str(&format!("\n  receipt recorded (tx {})", tx.tx_hash)),
        None if matches => human.push_str("\n  receipt already on chain, for this same answer"),
        None => human.push_str(&format!(
            "\n  receipt already on chain, for another answer (hash {})",
            existing.answerHash
        )),
    }
    out.result(
        "study query",
        json!({"studyId": a.study, "queryHash": hash, "query": q,
               "pinnedBlock": pinned, "cost": cost, "combined": combined, "answerHash": answer_hash,
               "holders": timed.iter().map(|(h, a, ms)| json!({"holder": h, "answer": a, "ms": ms})).collect::<Vec<_>>(),
               "receiptTx": receipt, "alreadyRecorded": recorded,
               "receiptMatches": if recorded { matches } else { true },
               "ms": {"setup": setup_ms, "holders": holders_ms, "record": record_ms,
                      "total": started.elapsed().as_secs_f64() * 1e3}}),
        &human,
    );
    Ok(())
}

/// The holders of `--holders`: addresses, each once (a holder listed twice would be counted
/// twice).
fn holder_list(given: &[String]) -> Result<Vec<Address>> {
    let mut holders: Vec<Address> = Vec::with_capacity(given.len());
    for s in given {
        let h = units::address(s, "holder")?;
        if holders.contains(&h) {
            return Err(CliError::input(format!(
                "--holders names {h} twice: each holder is asked once"
            )));
        }
        holders.push(h);
    }
    if holders.is_empty() {
        return Err(CliError::input("--holders names no holder"));
    }
    Ok(holders)
}

/// One holder's part of a query.
struct Ask {
    /// The holder asked; its gatekeeper must speak and sign for it.
    holder: Address,
    client: reqwest::Client,
    signer: alloy::signers::local::PrivateKeySigner,
    domain: alloy::sol_types::Eip712Domain,
    study: U256,
    hash: B256,
    text: String,
    base: String,
}

/// Signs the query for one holder, sends it and checks the signed answer; returns the holder,
/// its answer and the milliseconds it took.
async fn ask(q: Ask) -> Result<(Address, Answer, f64)> {
    let started = std::time::Instant::now();
    let Ask {
        holder,
        client,
        signer,
        domain,
        study: id,
        hash,
        text,
        base,
    } = q;
    let base = base.as_str();
    let unreachable =
        |e: reqwest::Error| CliError::Rpc(format!("cannot reach the holder at {base}: {e}"));
    let health: Health = answer(
        client
            .get(format!("{base}{HEALTH_PATH}"))
            .send()
            .await
            .map_err(unreachable)?,
        base,
    )
    .await?;
    // The gatekeeper at a holder's registered endpoint may serve someone else (another holder
    // registered the same endpoint): its answer would be counted twice.
    if health.holder != holder {
        return Err(CliError::Integrity(format!(
            "the gatekeeper at {base}, registered by {holder}, serves {}",
            health.holder
        )));
    }
    if health.status == medrec_protocol::health::CHAIN_STALE {
        return Err(records::node_behind(&format!("the query to {holder}")));
    }
    let t = now_secs();
    let req = ResearchRequest {
        researcher: signer.address(),
        studyId: id,
        queryHash: hash,
        audience: holder,
        nonce: random_nonce(),
        issuedAt: t,
        expiresAt: t + RESEARCH_VALIDITY_SECS,
    };
    let signed = sign(&signer, req, &domain).await?;
    let body = SignedQuery {
        request: signed.request,
        query: text,
        signature: signed.signature,
    };
    let resp = client
        .post(format!("{base}{QUERY_PATH}"))
        .json(&body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status();
    if !status.is_success() {
        let (code, msg) = error_body(resp).await;
        return Err(
            if let Some(e) = records::chain_stale(status, &code, &format!("the query to {holder}"))
            {
                e
            } else if matches!(status.as_u16(), 403 | 409) {
                CliError::Refused(format!("{base} refused the query ({code}): {msg}"))
            } else {
                CliError::input(format!(
                    "{base} rejected the query ({status}, {code}): {msg}"
                ))
            },
        );
    }
    // A body that is not a signed answer is the holder's fault, not the network's: it is
    // refused as an integrity error, like an answer with a bad signature.
    let signed: SignedAnswer =
        serde_json::from_slice(&records::body(resp, base).await?).map_err(|e| {
            CliError::Integrity(format!(
                "{base} answered something that is not a signed answer: {e}"
            ))
        })?;
    let signed_by = alloy::hex::decode(signed.signature.trim_start_matches("0x"))
        .ok()
        .and_then(|raw| Signature::from_raw(&raw).ok())
        .and_then(|sig| {
            sig.recover_address_from_prehash(&keccak256(signed.answer.as_bytes()))
                .ok()
        });
    if signed_by != Some(holder) {
        return Err(CliError::Integrity(format!(
            "the answer of {base} is not signed by its holder {holder}"
        )));
    }
    let answer: Answer = serde_json::from_str(&signed.answer).map_err(|e| {
        CliError::Integrity(format!(
            "{base} answered something that is not an answer: {e}"
        ))
    })?;
    if answer.query_hash != hash {
        return Err(CliError::Integrity(format!(
            "{base} answered another query"
        )));
    }
    Ok((holder, answer, started.elapsed().as_secs_f64() * 1e3))
}

/// The combined answer for people.
fn render(combined: &Combined, study: u64, pinned: u64) -> String {
    let mut lines = vec![format!(
        "study {study}, consenting patients as of block {pinned}"
    )];
    match combined {
        Combined::Cells { cells } => {
            lines.push(format!("  {:<8} {:<8} {:>7}", "age", "sex", "count"));
            for c in cells {
                let count = match (c.count, c.suppressed_at_some_holder) {
                    (0, true) => "suppressed".to_string(),
                    (n, true) => format!("{n}  (+ cells under the minimum at some holder)"),
                    (n, false) => n.to_string(),
                };
                lines.push(format!("  {:<8} {:<8} {count:>7}", c.age_band, c.sex));
            }
            if cells.is_empty() {
                lines.push("  no patient".into());
            }
        }
        Combined::Stats {
            count,
            mean,
            holders_suppressed,
        } => lines.push(format!(
            "  count {count}  mean {}  ({holders_suppressed} holders suppressed their cell)",
            mean.map(|m| format!("{m:.2}")).unwrap_or("-".into()),
        )),
    }
    lines.join("\n")
}
