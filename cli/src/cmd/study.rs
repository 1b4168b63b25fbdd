//! `medrec study`: research studies. Researchers register and query; the operator approves and
//! closes; patients opt in, withdraw and list their studies.
//!
//! A patient takes part in a study as a pseudonym derived from their own key for that study
//! (issue 16; medrec-protocol's `pseudonym`), which signs the opt-in, withdrawal or
//! cancellation; a relayer sends it (`--relayer ACCOUNT`, or `--sign-only` for `medrec
//! relay`), never the patient's account, which would name them. The opt-in carries one slot
//! per holder of the patient's records (medrec-protocol's `study_tags`): the patient's
//! signature over the study and pseudonym, encrypted to the service key that holder registered
//! on chain, so that it, and nobody else, counts them.

use super::records::{self, answer, client, error_body, sign};
use crate::chain::{self, Chain, Deployment};
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::providers::Provider;
use alloy::transports::http::reqwest;
use clap::{Args, Subcommand};
use medrec_bindings::StudyRegistry;
use medrec_protocol::ResearchRequest;
use medrec_protocol::clock::{RESEARCH_VALIDITY_SECS, now_secs};
use medrec_protocol::envelope::random_nonce;
use medrec_protocol::health::{HEALTH_PATH, Health};
use medrec_protocol::pseudonym::study_pseudonym;
use medrec_protocol::research::{
    self as wire, Answer, CELLS, Combined, DEFAULT_MAX_PIN_AGE, LOINC, MAX_BOUND, MAX_EPSILON,
    MAX_HOLDERS, QUERY_PATH, Query, QueryError, QueryResult, SignedAnswer, SignedQuery,
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
    /// Patient: opt in to an approved study, as your pseudonym for it, through a relayer
    OptIn(ConsentArgs),
    /// Patient: withdraw from a study, through a relayer; it counts from the next block
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

/// A patient's change of their participation in a study, signed by their study pseudonym and
/// relayed, or signed offline for `medrec relay`.
#[derive(Debug, Args)]
pub struct ConsentArgs {
    /// The study id
    pub study: u64,
    /// The keystore account that sends the transaction and pays its gas (the consortium's
    /// relayer, say), decrypted with the same password settings. Never your own account (it
    /// would link you to your pseudonym for the study), nor a credentialed provider's (it would
    /// show you are its patient)
    #[arg(long, env = "MEDREC_RELAYER", value_name = "ACCOUNT")]
    pub relayer: Option<String>,
    /// opt-in: the holders of your records, whose gatekeepers get a slot each (comma-separated
    /// addresses; `none`: no holder) [default: the holders of your records in the indexer's
    /// listing signed by your account, each kept only if the chain shows one of its pointers
    /// for you]
    #[arg(long, value_delimiter = ',', value_name = "ADDRESSES")]
    pub holders: Vec<String>,
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
    /// Categories the study reads, comma-separated: holders count only records of these
    #[arg(long, short = 'c')]
    pub categories: String,
    /// Smallest cell shown: a cell whose noised count is under it is held back. At least the
    /// governance policy's floor (5 unless governance set another; `study policy` shows it)
    #[arg(long, default_value_t = 10)]
    pub min_cell: u32,
    /// Privacy budget in millionths of epsilon: each query spends its epsilon x 1,000,000,
    /// rounded up. At most the governance policy's ceiling per study (10,000,000 unless
    /// governance set another), and within the researcher's ceiling over all their studies
    #[arg(long, default_value_t = 10_000_000)]
    pub budget: u64,
}

/// `study query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The study id
    pub study: u64,
    /// Count patients with this Condition code (SNOMED CT or ICD-10), in every cell of age band
    /// by sex
    #[arg(long, conflicts_with = "observation")]
    pub condition: Option<String>,
    /// Code system of --condition: snomed, icd10 or icd10-cm
    #[arg(long, default_value = "snomed")]
    pub system: String,
    /// Count and mean of this Observation code's value (LOINC), each patient's value clamped
    /// to [--lower, --upper]
    #[arg(long)]
    pub observation: Option<String>,
    /// With --observation (required there): values under it count as it
    #[arg(long, allow_negative_numbers = true)]
    pub lower: Option<f64>,
    /// With --observation (required there): values over it count as it
    #[arg(long, allow_negative_numbers = true)]
    pub upper: Option<f64>,
    /// Required: the privacy loss of the answer, in (0, 10]. Every answer is noised; smaller
    /// means more noise. The query costs epsilon x 1,000,000 of the study's budget (rounded
    /// up), and each of the H holders asked adds noise at epsilon / H
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// The holders to ask: their addresses (0x...), comma-separated, each once (the query
    /// names them in ascending order). Each is asked at the gatekeeper endpoint it registered
    /// on chain and only while it is a credentialed provider; its answer must be signed by
    /// that address
    #[arg(
        long,
        env = "MEDREC_HOLDERS",
        value_delimiter = ',',
        required = true,
        value_name = "ADDRESSES"
    )]
    pub holders: Vec<String>,
    /// Pin this block instead of the latest. The same code, system, epsilon, holders and
    /// block (and an observation's bounds) make the same query: the holders give back the
    /// answers they stored, and its receipt is recorded if it is not on chain yet (after an
    /// interrupted query)
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

/// The query the flags ask for, to `holders` (ascending), pinned at `pinned`, checked as the
/// holders check it.
fn build_query(a: &QueryArgs, holders: &[Address], pinned: u64) -> Result<Query> {
    let epsilon = a.epsilon.ok_or_else(|| {
        CliError::input(format!(
            "give --epsilon E in (0, {MAX_EPSILON}]: every answer is noised, and the query costs \
             E x 1,000,000 of the study's budget"
        ))
    })?;
    let holders = holders.to_vec();
    let q = match (&a.condition, &a.observation) {
        (Some(code), None) => {
            if a.lower.is_some() || a.upper.is_some() {
                return Err(CliError::input(
                    "--lower and --upper bound an --observation's values, not a --condition",
                ));
            }
            Query::ConditionCount {
                system: wire::condition_system(&a.system)
                    .ok_or_else(|| {
                        CliError::input(format!(
                            "unknown code system {:?}: use snomed, icd10 or icd10-cm",
                            a.system
                        ))
                    })?
                    .to_string(),
                code: code.clone(),
                epsilon,
                holders,
                pinned_block: pinned,
            }
        }
        (None, Some(code)) => {
            let (Some(lower), Some(upper)) = (a.lower, a.upper) else {
                return Err(CliError::input(
                    "--observation needs --lower and --upper: each patient's value is clamped \
                     to them, so that one patient moves the mean by a bounded amount",
                ));
            };
            Query::ObservationStats {
                system: LOINC.to_string(),
                code: code.clone(),
                epsilon,
                lower,
                upper,
                holders,
                pinned_block: pinned,
            }
        }
        _ => {
            return Err(CliError::input(
                "give --condition CODE or --observation LOINC-CODE",
            ));
        }
    };
    q.check().map_err(|e| match e {
        QueryError::Epsilon => CliError::input(format!("--epsilon must be in (0, {MAX_EPSILON}]")),
        QueryError::Holders => {
            CliError::input(format!("--holders names more than {MAX_HOLDERS} holders"))
        }
        QueryError::Bounds => CliError::input(format!(
            "--lower must be under --upper, both finite and within ±{MAX_BOUND:e}"
        )),
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
            // Nothing on chain names the patient: each study's pseudonym is derived here, and
            // the chain is asked for every participation event of the registry at once (never
            // about one pseudonym, which would show the node the patient's pseudonyms
            // together), matched here.
            let signer = keys::load(settings)?;
            let me = signer.address();
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let registry = study_registry_of(&d)?;
            let (events, closed) = own_study_logs(&chain, &d, registry, &signer, None).await?;
            let mut state = std::collections::BTreeMap::new();
            for e in &events {
                state.insert(e.study_id, e.kind == "opted-in");
            }
            let live: Vec<U256> = state
                .into_iter()
                .filter(|(id, opted)| *opted && !closed.contains(id))
                .map(|(id, _)| U256::from(id))
                .collect();
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
                json!({"patient": me, "studies": live.iter().map(|i| i.saturating_to::<u64>()).collect::<Vec<_>>()}),
                &human,
            );
        }
        StudyCmd::Query(a) => query(a, settings, out).await?,
        StudyCmd::Policy(a) => super::study_policy::policy(a, settings, out).await?,
        StudyCmd::SetPolicy(a) => super::study_policy::set_policy(a, settings, out).await?,
    }
    Ok(())
}

/// An opt-in or withdrawal of one of the patient's study pseudonyms, found on chain.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnStudyEvent {
    /// Its block.
    pub block: u64,
    /// Its log index.
    pub log_index: u64,
    /// Its transaction.
    pub tx_hash: B256,
    /// `opted-in` or `withdrew`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The study.
    pub study_id: u64,
    /// The patient's pseudonym in it.
    pub pseudonym: Address,
}

impl OwnStudyEvent {
    /// One line of the timeline.
    pub fn describe(&self) -> String {
        match self.kind {
            "opted-in" => format!(
                "opted in to study {} (as pseudonym {})",
                self.study_id, self.pseudonym
            ),
            _ => format!(
                "withdrew from study {} (as pseudonym {})",
                self.study_id, self.pseudonym
            ),
        }
    }
}

/// The opt-ins and withdrawals of `patient`'s study pseudonyms (derived here for every study),
/// from block `from` (default: the deployment's first) to `to`, read from the chain's logs:
/// nothing else can tie them to the patient.
pub async fn own_study_events(
    settings: &Settings,
    patient: &alloy::signers::local::PrivateKeySigner,
    from: Option<u64>,
    to: u64,
) -> Result<Vec<OwnStudyEvent>> {
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let Some(registry) = d.study_registry else {
        return Ok(vec![]);
    };
    let (events, _) = own_study_logs(&chain, &d, registry, patient, from).await?;
    Ok(events.into_iter().filter(|e| e.block <= to).collect())
}

/// The opt-ins and withdrawals of `patient`'s study pseudonyms from block `from` (default: the
/// deployment's first), in block order, and the studies closed since: every OptedIn, Withdrew
/// and StudyClosed log of the registry is read (by event only, so the node is never shown
/// which pseudonyms are asked about, nor several of one patient's together) and the patient's
/// pseudonyms, derived here for every study, matched locally.
async fn own_study_logs(
    chain: &Chain,
    d: &Deployment,
    registry: Address,
    patient: &alloy::signers::local::PrivateKeySigner,
    from: Option<u64>,
) -> Result<(Vec<OwnStudyEvent>, std::collections::HashSet<u64>)> {
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent;
    let s = StudyRegistry::new(registry, chain.provider.clone());
    let count = s.studyCount().call().await.map_err(|e| chain.err(e))?;
    let secret = patient.to_bytes();
    let mut mine = std::collections::HashMap::new();
    let mut id = U256::from(1);
    while id <= count {
        let p = study_pseudonym(&secret, chain.chain_id, registry, id).address();
        mine.insert(p, id.saturating_to::<u64>());
        id += U256::from(1);
    }
    let mut closed = std::collections::HashSet::new();
    if mine.is_empty() {
        return Ok((vec![], closed));
    }
    let filter = Filter::new().address(registry).event_signature(vec![
        StudyRegistry::OptedIn::SIGNATURE_HASH,
        StudyRegistry::Withdrew::SIGNATURE_HASH,
        StudyRegistry::StudyClosed::SIGNATURE_HASH,
    ]);
    let start = from.unwrap_or(0).max(d.start_block);
    let logs = super::anchor::scan_logs(chain, &filter, start, false).await?;
    let mut events = vec![];
    for l in &logs {
        if l.topic0() == Some(&StudyRegistry::StudyClosed::SIGNATURE_HASH) {
            if let Some(id) = l.topics().get(1) {
                closed.insert(U256::from_be_bytes(id.0).saturating_to::<u64>());
            }
            continue;
        }
        let Some(pseudonym) = l.topics().get(2).map(|t| Address::from_word(*t)) else {
            continue;
        };
        let (Some(study_id), Some(block), Some(log_index), Some(tx_hash)) = (
            mine.get(&pseudonym),
            l.block_number,
            l.log_index,
            l.transaction_hash,
        ) else {
            continue;
        };
        // A study's logs name only its own pseudonyms: one of ours under another study id
        // is not ours there.
        if l.topics().get(1).map(|t| U256::from_be_bytes(t.0)) != Some(U256::from(*study_id)) {
            continue;
        }
        events.push(OwnStudyEvent {
            block,
            log_index,
            tx_hash,
            kind: if l.topic0() == Some(&StudyRegistry::OptedIn::SIGNATURE_HASH) {
                "opted-in"
            } else {
                "withdrew"
            },
            study_id: *study_id,
            pseudonym,
        });
    }
    Ok((events, closed))
}

/// Why a study change is not sent from the patient's own account.
pub const NO_DIRECT: &str = "give --relayer ACCOUNT (an account that pays, e.g. the consortium's; \
     or MEDREC_RELAYER) or --sign-only for medrec relay: sending from your own account would \
     link you to your pseudonym for the study";

/// `opt-in`, `withdraw`, `cancel-signatures`: signed by the patient's study pseudonym, then
/// sent by `--relayer` or, with `--sign-only`, written for a relayer.
async fn participation(
    settings: &Settings,
    out: Printer,
    a: ConsentArgs,
    what: &str,
) -> Result<()> {
    use crate::signed::{SignedMessage, StudyMessage, Unsigned};
    if a.relayer.is_none() && !a.sign.sign_only {
        return Err(CliError::input(NO_DIRECT));
    }
    if a.relayer.is_some() && a.sign.sign_only {
        return Err(CliError::input("give --relayer or --sign-only, not both"));
    }
    let holders = holder_list_or_empty(&a.holders)?;
    let signer = keys::load(settings)?;
    // The relayer, checked before anything is signed: never the patient's own account, nor a
    // credentialed provider (a hospital relaying the message would show the chain that the
    // pseudonym is its patient).
    let relayer = match &a.relayer {
        None => None,
        Some(account) => {
            let mut as_relayer = settings.clone();
            as_relayer.account = Some(account.clone());
            let relayer = keys::load(&as_relayer)?;
            if relayer.address() == signer.address() {
                return Err(CliError::input(NO_DIRECT));
            }
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            let provider = chain
                .participants(&d)
                .isCredentialed(
                    relayer.address(),
                    medrec_protocol::participant::Role::Provider.to_solidity(),
                )
                .call()
                .await
                .map_err(|e| chain.err(e))?;
            if provider {
                return Err(CliError::input(format!(
                    "the relayer {} is a credentialed provider: relaying your study message, it would show the chain that this pseudonym is its patient; use a relayer that pays for everyone (e.g. the consortium's) or --sign-only",
                    relayer.address()
                )));
            }
            Some(relayer)
        }
    };
    let id = U256::from(a.study);
    // The pseudonym needs the chain id and the registry: from the node, or offline from
    // --chain-id and the deployments file.
    let (chain_id, registry) = match (a.sign.epoch, settings.chain_id) {
        (Some(_), Some(chain_id)) if a.sign.sign_only => {
            let d = chain::read_deployment(&settings.deployments, chain_id)?;
            (chain_id, study_registry_of(&d)?)
        }
        _ => {
            let chain = Chain::connect(settings).await?;
            let d = chain.deployment(settings).await?;
            (chain.chain_id, study_registry_of(&d)?)
        }
    };
    let pseudonym = study_pseudonym(&signer.to_bytes(), chain_id, registry, id);
    let rel = super::grant::Relationship::Study {
        id,
        pseudonym: pseudonym.address(),
    };
    let ctx = super::grant::signing_context(settings, &a.sign, rel).await?;
    let reached = if what == "opt-in" {
        Some(
            opt_in_tags(
                settings,
                &signer,
                chain_id,
                registry,
                id,
                pseudonym.address(),
                holders,
            )
            .await?,
        )
    } else {
        None
    };
    let message = StudyMessage {
        study_id: id,
        pseudonym: pseudonym.address(),
        tags: reached.as_ref().map(|r| r.tags.clone().into()),
        epoch: ctx.epoch,
        issued_at: ctx.issued_at,
        deadline: ctx.deadline,
    };
    let unsigned = match what {
        "opt-in" => Unsigned::OptIn(message),
        "withdraw" => Unsigned::Withdraw(message),
        _ => Unsigned::CancelStudySignatures(message),
    };
    let msg = SignedMessage::sign(&pseudonym, chain_id, registry, unsigned).await?;
    // Which holders will count the patient: one the indexer named but the chain does not show
    // holding a record is left out (it would not count them), and the patient can name it
    // with --holders. Signed only, the note goes to stderr (stdout may be the message).
    if let (Some(r), None) = (&reached, &relayer) {
        out.progress(&reached_note(r));
    }
    let Some(relayer) = relayer else {
        return super::grant::emit_signed(out, &msg, a.sign.out.as_ref(), &format!("study {what}"));
    };
    // The relayer sends it: its own account pays, and is all the chain sees besides the
    // pseudonym.
    let chain = Chain::connect_signer(settings, relayer).await?;
    let d = chain.deployment(settings).await?;
    let s = studies(&chain, &d)?;
    let sig = match &msg {
        SignedMessage::OptIn(m)
        | SignedMessage::Withdraw(m)
        | SignedMessage::CancelStudySignatures(m) => m.signature.clone(),
        _ => unreachable!("a study message"),
    };
    let (m, p) = (msg_study(&msg), pseudonym.address());
    let (e, t, dl) = (
        alloy::primitives::aliases::U24::from(m.epoch),
        alloy::primitives::aliases::U40::from(m.issued_at),
        m.deadline,
    );
    let tx = match what {
        "opt-in" => {
            let tags = m.tags.clone().unwrap_or_default();
            chain::send(&chain, s.optInBySig(id, p, tags, e, t, dl, sig)).await?
        }
        "withdraw" => chain::send(&chain, s.withdrawBySig(id, p, e, t, dl, sig)).await?,
        _ => chain::send(&chain, s.cancelBySig(id, p, e, t, dl, sig)).await?,
    };
    let human = match what {
        "opt-in" => format!("opted in to study {} as pseudonym {p}", a.study),
        "withdraw" => format!(
            "pseudonym {p} withdrew from study {}; it counts from block {}",
            a.study,
            tx.block_number + 1
        ),
        _ => format!(
            "every outstanding signed opt-in or withdrawal of pseudonym {p} for study {} is void",
            a.study
        ),
    };
    let mut data = json!({"studyId": a.study, "pseudonym": p, "tx": tx});
    let mut note = String::new();
    if let Some(r) = &reached {
        data["holders"] = json!(r.holders);
        data["omittedHolders"] = json!(r.omitted);
        note = format!("\n{}", reached_note(r));
    }
    out.result(
        &format!("study {what}"),
        data,
        &format!("{human} (relayed, tx {}){note}", tx.tx_hash),
    );
    Ok(())
}

fn msg_study(msg: &crate::signed::SignedMessage) -> &crate::signed::StudyMessage {
    use crate::signed::SignedMessage;
    match msg {
        SignedMessage::OptIn(m)
        | SignedMessage::Withdraw(m)
        | SignedMessage::CancelStudySignatures(m) => &m.message,
        _ => unreachable!("a study message"),
    }
}

fn study_registry_of(d: &Deployment) -> Result<Address> {
    d.study_registry.ok_or_else(|| {
        CliError::Deployment(
            "this deployment has no study registry: deploy again with this version".into(),
        )
    })
}

/// `--holders`: the addresses given; `None` when not given (ask the indexer), empty for `none`.
fn holder_list_or_empty(raw: &[String]) -> Result<Option<Vec<Address>>> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() == 1 && raw[0].trim() == "none" {
        return Ok(Some(vec![]));
    }
    let mut v = Vec::with_capacity(raw.len());
    for h in raw {
        let a = units::address(h.trim(), "holder")?;
        if !v.contains(&a) {
            v.push(a);
        }
    }
    Ok(Some(v))
}

/// An opt-in's tags: a slot for each holder of the patient's records (`holders`, or those of
/// the indexer's listing signed by the patient), encrypted to the service key it serves, which
/// must hash to the one it registered on chain.
async fn opt_in_tags(
    settings: &Settings,
    patient: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    registry: Address,
    id: U256,
    pseudonym: Address,
    holders: Option<Vec<Address>>,
) -> Result<OptInTags> {
    use medrec_protocol::study_tags::{
        self, HolderSlot, OptInContext, SERVICE_KEY_PATH, ServiceKeyAnswer, TAG_SLOTS,
        address_of_public_key,
    };
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let given = holders.is_some();
    let mut holders = holders.unwrap_or_default();
    let mut omitted = vec![];
    if !given {
        let body: medrec_protocol::indexer::PatientPointers = super::listing::get(
            settings,
            &format!("/v1/patients/{}/pointers", patient.address()),
            None,
        )
        .await?;
        // The indexer's word alone would let it (or a holder it colludes with) receive a slot
        // for a patient that holder never treated: a holder is kept only when the chain shows
        // one of its pointers for this patient (anchoring needs the patient's live
        // relationship, so no holder can invent one).
        let (kept, dropped) =
            anchored_holders(&chain, &d, patient.address(), &body.pointers).await?;
        holders = kept;
        omitted = dropped;
    }
    if holders.len() > TAG_SLOTS {
        return Err(CliError::input(format!(
            "{} holders keep your records, but an opt-in reaches at most {TAG_SLOTS}: name them with --holders",
            holders.len()
        )));
    }
    let ctx = OptInContext {
        chain_id,
        registry,
        study_id: id,
        pseudonym,
    };
    let secret = patient.to_bytes();
    let client = client()?;
    let registered = if holders.is_empty() {
        std::collections::HashMap::new()
    } else {
        registered_holders(&chain, &d).await?
    };
    let mut slots = Vec::with_capacity(holders.len());
    for h in holders {
        let Some((g, credentialed)) = registered.get(&h) else {
            return Err(CliError::input(format!(
                "the holder {h} has registered no gatekeeper on chain (it runs: medrec holder register)"
            )));
        };
        if !credentialed {
            return Err(CliError::input(format!(
                "the holder {h} is not a credentialed provider now: medrec sends it no request"
            )));
        }
        let base = super::holder::checked_endpoint(&g.endpoint).map_err(|why| {
            CliError::input(format!(
                "the holder {h} registered the endpoint {:?}, to which medrec sends no request: {why}",
                g.endpoint
            ))
        })?;
        let url = format!("{}{SERVICE_KEY_PATH}", base.trim_end_matches('/'));
        let resp = client.get(&url).send().await.map_err(|e| {
            CliError::Rpc(format!("cannot reach the gatekeeper of {h} at {base}: {e}"))
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::Rpc(format!("the gatekeeper of {h} broke off: {e}")))?;
        if !status.is_success() {
            return Err(CliError::Refused(format!(
                "the gatekeeper of {h} serves no service key ({status}): it takes part in no research"
            )));
        }
        let served: ServiceKeyAnswer = serde_json::from_str(&text).map_err(|e| {
            CliError::Rpc(format!(
                "the gatekeeper of {h} answered something unreadable: {e}"
            ))
        })?;
        // Never trusted unchecked: the key must be the one the holder registered on chain.
        if address_of_public_key(&served.public_key) != Some(g.serviceKey) {
            return Err(CliError::Refused(format!(
                "the gatekeeper of {h} serves a service key that is not the one registered on chain ({}): not encrypting to it",
                g.serviceKey
            )));
        }
        // Any provider can register another holder's service key: a key registered by two
        // holders is not known to be this one's alone, so no slot is encrypted to it.
        if let Some(other) = registered
            .iter()
            .find(|(o, (og, _))| **o != h && og.serviceKey == g.serviceKey)
            .map(|(o, _)| *o)
        {
            return Err(CliError::Refused(format!(
                "the service key {} of the holder {h} is registered by {other} too: not encrypting to it",
                g.serviceKey
            )));
        }
        // A proof this holder can check but could have made itself: nothing it could show.
        let proof = study_tags::membership_proof(&secret, h, &served.public_key, &ctx).ok_or_else(
            || {
                CliError::Refused(format!(
                    "the gatekeeper of {h} serves a service key that is not a secp256k1 key"
                ))
            },
        )?;
        slots.push(HolderSlot {
            holder: h,
            service_key: served.public_key.to_vec(),
            proof,
        });
    }
    let tags = study_tags::build(&ctx, &slots).map_err(|e| CliError::input(e.to_string()))?;
    Ok(OptInTags {
        tags,
        holders: slots.iter().map(|s| s.holder).collect(),
        omitted,
    })
}

/// Every holder that registered a gatekeeper, with its registration now and whether it is a
/// credentialed provider now: read for all of them (their HolderRegistered logs, then each
/// one's registration and credential), never for the patient's holders alone, whose number
/// and names the opt-in's eight fixed slots hide from everyone, the node included.
pub(crate) async fn registered_holders(
    chain: &Chain,
    d: &Deployment,
) -> Result<
    std::collections::HashMap<
        Address,
        (
            medrec_bindings::record_registry::IRecordRegistry::Gatekeeper,
            bool,
        ),
    >,
> {
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent;
    let filter = Filter::new()
        .address(d.record_registry)
        .event_signature(medrec_bindings::RecordRegistry::HolderRegistered::SIGNATURE_HASH);
    let logs = super::anchor::scan_logs(chain, &filter, d.start_block, false).await?;
    let mut all = std::collections::HashMap::new();
    for l in logs {
        let Some(h) = l.topics().get(1).map(|t| Address::from_word(*t)) else {
            continue;
        };
        if all.contains_key(&h) {
            continue;
        }
        let g = chain
            .records(d)
            .gatekeeperOf(h)
            .call()
            .await
            .map_err(|e| chain.err(e))?;
        let credentialed = chain
            .participants(d)
            .isCredentialed(
                h,
                medrec_protocol::participant::Role::Provider.to_solidity(),
            )
            .call()
            .await
            .map_err(|e| chain.err(e))?;
        if !g.endpoint.is_empty() {
            all.insert(h, (g, credentialed));
        }
    }
    Ok(all)
}

/// The line telling the patient which holders got a slot (and so will count them) and which
/// the indexer named without a pointer on chain.
fn reached_note(r: &OptInTags) -> String {
    let list = |v: &[Address]| {
        v.iter()
            .map(Address::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut line = if r.holders.is_empty() {
        "no holder gets a slot: none will count you in this study".to_string()
    } else {
        format!("slots for the holders {}", list(&r.holders))
    };
    if !r.omitted.is_empty() {
        line.push_str(&format!(
            "; left out (the indexer names them but the chain shows no record of yours they \
             anchored; name them with --holders if they keep your records): {}",
            list(&r.omitted)
        ));
    }
    line
}

/// An opt-in's tags, with the holders that got a slot and those the indexer named but the
/// chain does not show holding a record of the patient.
struct OptInTags {
    tags: Vec<u8>,
    holders: Vec<Address>,
    omitted: Vec<Address>,
}

/// The holders of `pointers` (the indexer's answer for `patient`) that the chain confirms:
/// for each, one of its pointers with a `PointerAnchored` log whose indexed topics are the
/// pointer's record id, the patient and the holder (only the topics: the event's data fields
/// may change). Every such log of the registry is read, so the node is told neither the
/// patient, nor the holders, nor the blocks of their anchors; the rest are returned apart.
async fn anchored_holders(
    chain: &Chain,
    d: &Deployment,
    patient: Address,
    pointers: &[medrec_protocol::indexer::Pointer],
) -> Result<(Vec<Address>, Vec<Address>)> {
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent;
    let mut claimed: Vec<Address> = vec![];
    for p in pointers {
        if !claimed.contains(&p.holder) {
            claimed.push(p.holder);
        }
    }
    // Every PointerAnchored log of the registry, read by event only: asking for the blocks
    // of the patient's pointers would show the node which anchors (patient and holders) the
    // patient cares about, in the run that also reads the pseudonym's participation.
    let filter = Filter::new()
        .address(d.record_registry)
        .event_signature(medrec_bindings::RecordRegistry::PointerAnchored::SIGNATURE_HASH);
    let mut anchored = std::collections::HashSet::new();
    if !pointers.is_empty() {
        for l in super::anchor::scan_logs(chain, &filter, d.start_block, false).await? {
            if let [_, id, who, holder] = l.topics()
                && Address::from_word(*who) == patient
            {
                anchored.insert((*id, Address::from_word(*holder)));
            }
        }
    }
    let (kept, omitted) = claimed.into_iter().partition(|h| {
        pointers.iter().any(|p| {
            p.holder == *h && p.patient == patient && anchored.contains(&(p.record_id, *h))
        })
    });
    Ok((kept, omitted))
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
        _ => chain::send(&chain, s.closeStudy(id)).await?,
    };
    let human = match what {
        "approve" => format!("study {study} approved by {me}"),
        _ => format!("study {study} closed by {me}"),
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
    // Bad input fails before a key, a node or any gas is involved.
    let holders = holder_list(&a.holders)?;
    build_query(&a, &holders, 0)?;
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
    let q = build_query(&a, &holders, pinned)?;
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
        "query {hash} (epsilon {}, {cost} of the budget), pinned at block {pinned}: asking {} \
         holder(s)",
        q.epsilon(),
        holders.len()
    ));
    // What every answer must say of itself before it is counted: this query, this pin, this
    // study's minimum cell, and noise drawn for exactly the holder's share of epsilon.
    let expect = Expected {
        study: id,
        hash,
        pinned,
        epsilon: q.holder_epsilon_value(),
        min_cell: i64::from(study.minCellSize),
        cells: matches!(q, Query::ConditionCount { .. }),
    };
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
            expect: expect.clone(),
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
    // Combine: noised counts add up per cell; a cell held back at any holder is reported as
    // such.
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
                // A refused answer would come back the same (holders store what they answer):
                // asking again helps only the holders that could not be reached.
                Ok(tx) if matches!(e, CliError::Integrity(_)) => e.with_note(&format!(
                    "the receipt for the {} of {} holder(s) whose answers were counted was \
                     recorded (tx {}), without the refused answer",
                    timed.len(),
                    holders.len(),
                    tx.tx_hash
                )),
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
    let mut human = render(&combined, &q, a.study, expect.min_cell);
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
               "pinnedBlock": pinned, "cost": cost, "epsilon": q.epsilon(),
               "holderEpsilon": expect.epsilon, "minCellSize": expect.min_cell,
               "combined": combined, "answerHash": answer_hash,
               "holders": timed.iter().map(|(h, a, ms)| json!({"holder": h, "answer": a, "ms": ms})).collect::<Vec<_>>(),
               "receiptTx": receipt, "alreadyRecorded": recorded,
               "receiptMatches": if recorded { matches } else { true },
               "ms": {"setup": setup_ms, "holders": holders_ms, "record": record_ms,
                      "total": started.elapsed().as_secs_f64() * 1e3}}),
        &human,
    );
    Ok(())
}

/// The holders of `--holders`, in ascending order: addresses, each once (a holder listed
/// twice would be counted twice).
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
    // The query names its holders in ascending order, whatever order they were given in, so
    // that the same holders make the same query.
    holders.sort();
    Ok(holders)
}

/// One holder's part of a query.
struct Ask {
    /// The holder asked; its gatekeeper must speak and sign for it.
    holder: Address,
    client: reqwest::Client,
    signer: alloy::signers::local::PrivateKeySigner,
    domain: alloy::sol_types::Eip712Domain,
    /// What its answer must say of itself.
    expect: Expected,
    text: String,
    base: String,
}

/// What an answer must say of itself to be counted.
#[derive(Debug, Clone)]
struct Expected {
    study: U256,
    /// The query's hash.
    hash: B256,
    pinned: u64,
    /// The query's holder epsilon as f64: the share of epsilon each holder's noise is drawn for.
    epsilon: f64,
    /// The study's minimum cell on chain.
    min_cell: i64,
    /// A condition count (every cell of the domain) rather than observation statistics.
    cells: bool,
}

/// Why `answer`, signed by `holder`, is not an answer to the query `want` describes, if it is
/// not: another holder, study, query or pin; noise drawn for another epsilon than the holder's
/// share (a holder that adds less noise spends more of the patients' privacy than the budget
/// paid for); for a condition count, anything but every cell of the domain once in its order,
/// each either shown at or over the minimum cell or held back; for an observation, anything
/// but statistics at or over the minimum cell or held back.
fn answer_fault(answer: &Answer, holder: Address, want: &Expected) -> Option<String> {
    if answer.holder != holder {
        return Some(format!("it is the answer of {}", answer.holder));
    }
    if answer.study_id != want.study {
        return Some(format!("it answers study {}", answer.study_id));
    }
    if answer.query_hash != want.hash {
        return Some(format!("it answers another query ({})", answer.query_hash));
    }
    if answer.pinned_block != want.pinned {
        return Some(format!(
            "it counts block {}, not the pinned block {}",
            answer.pinned_block, want.pinned
        ));
    }
    if answer.epsilon != want.epsilon {
        return Some(format!(
            "its noise is drawn for epsilon {}, not its share {} of the query's",
            answer.epsilon, want.epsilon
        ));
    }
    if answer.min_cell_size != want.min_cell {
        return Some(format!(
            "it holds back cells under {}, not the study's minimum {}",
            answer.min_cell_size, want.min_cell
        ));
    }
    let shown = |count: i64| count >= want.min_cell;
    match (&answer.result, want.cells) {
        (QueryResult::Cells { cells }, true) => {
            if cells.len() != CELLS {
                return Some(format!(
                    "it has {} cells, not the {CELLS} of age band by sex",
                    cells.len()
                ));
            }
            for (c, (band, sex)) in cells.iter().zip(wire::domain()) {
                if (c.age_band.as_str(), c.sex.as_str()) != (band, sex) {
                    return Some(format!(
                        "its cells are not every cell of age band by sex once in order \
                         ({}/{} where {band}/{sex} belongs)",
                        c.age_band, c.sex
                    ));
                }
                match (c.count, c.suppressed) {
                    (Some(n), false) if shown(n) => {}
                    (None, true) => {}
                    (Some(n), false) => {
                        return Some(format!(
                            "it shows {n} in cell {band}/{sex}, under the minimum cell {}",
                            want.min_cell
                        ));
                    }
                    _ => {
                        return Some(format!(
                            "cell {band}/{sex} is neither a count nor held back"
                        ));
                    }
                }
            }
            None
        }
        (QueryResult::Stats(st), false) if shown(st.count) => None,
        (QueryResult::Stats(st), false) => Some(format!(
            "it shows a count of {}, under the minimum cell {}",
            st.count, want.min_cell
        )),
        (QueryResult::Suppressed { suppressed: true }, false) => None,
        _ => Some("its figures are not of the query's kind".into()),
    }
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
        expect,
        text,
        base,
    } = q;
    let (id, hash) = (expect.study, expect.hash);
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
    if let Some(why) = answer_fault(&answer, holder, &expect) {
        return Err(CliError::Integrity(format!(
            "the answer of {holder} is refused: {why}"
        )));
    }
    Ok((holder, answer, started.elapsed().as_secs_f64() * 1e3))
}

/// The combined answer for people: every cell, held-back ones said as such, and the noise.
fn render(combined: &Combined, q: &Query, study: u64, min_cell: i64) -> String {
    let mut lines = vec![format!(
        "study {study}, consenting patients as of block {}; noised, epsilon {} over {} \
         holder(s) (each at {})",
        q.pinned_block(),
        q.epsilon(),
        q.holders().len(),
        q.holder_epsilon_value(),
    )];
    let held_back = format!("held back (noised count under {min_cell})");
    match combined {
        Combined::Cells { cells } => {
            lines.push(format!("  {:<8} {:<8} {:>7}", "age", "sex", "count"));
            for c in cells {
                let count = match (c.count, c.suppressed_at_some_holder) {
                    (0, true) => held_back.clone(),
                    (n, true) => format!("{n}  (+ {held_back} at some holder)"),
                    (n, false) => n.to_string(),
                };
                lines.push(format!("  {:<8} {:<8} {count:>7}", c.age_band, c.sex));
            }
        }
        Combined::Stats {
            count,
            mean,
            holders_suppressed,
        } => {
            let bounds = match q {
                Query::ObservationStats { lower, upper, .. } => {
                    format!(" (each value clamped to [{lower}, {upper}])")
                }
                Query::ConditionCount { .. } => String::new(),
            };
            lines.push(match mean {
                _ if *count == 0 && *holders_suppressed > 0 => {
                    format!("  {held_back} at every holder")
                }
                Some(m) => format!("  count {count}  mean {m:.2}{bounds}"),
                None => format!("  count {count}  no mean"),
            });
            if *holders_suppressed > 0 && *count > 0 {
                lines.push(format!(
                    "  {holders_suppressed} holder(s) {held_back}: not in the count or mean"
                ));
            }
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_protocol::research::{Cell, Stats};

    const HOLDER: Address = Address::repeat_byte(0x11);

    fn want(cells: bool) -> Expected {
        Expected {
            study: U256::from(3),
            hash: B256::repeat_byte(0x22),
            pinned: 40,
            epsilon: 0.5,
            min_cell: 5,
            cells,
        }
    }

    /// Every cell of the domain in order, the first shown at `first` and the rest held back.
    fn domain(first: i64) -> Vec<Cell> {
        wire::domain()
            .enumerate()
            .map(|(i, (b, s))| {
                Cell::new(
                    b.to_string(),
                    s.to_string(),
                    if i == 0 { first } else { 0 },
                    5,
                )
            })
            .collect()
    }

    fn answer(result: QueryResult) -> Answer {
        Answer {
            holder: HOLDER,
            study_id: U256::from(3),
            query_hash: B256::repeat_byte(0x22),
            pinned_block: 40,
            min_cell_size: 5,
            epsilon: 0.5,
            result,
        }
    }

    fn fault(a: &Answer, cells: bool) -> String {
        answer_fault(a, HOLDER, &want(cells)).unwrap_or_default()
    }

    #[test]
    fn an_answer_of_every_cell_at_the_holders_share_of_epsilon_is_counted() {
        let a = answer(QueryResult::Cells { cells: domain(9) });
        assert_eq!(answer_fault(&a, HOLDER, &want(true)), None);
        for r in [
            QueryResult::Stats(Stats {
                count: 5,
                mean: Some(6.1),
            }),
            QueryResult::Suppressed { suppressed: true },
        ] {
            assert_eq!(answer_fault(&answer(r), HOLDER, &want(false)), None);
        }
    }

    /// A holder that noises for the whole epsilon (or none) instead of its share spends more
    /// of the patients' privacy than the budget paid: its answer is not counted.
    #[test]
    fn an_answer_noised_for_another_epsilon_is_refused() {
        let mut a = answer(QueryResult::Cells { cells: domain(9) });
        a.epsilon = 1.0;
        assert!(fault(&a, true).contains("epsilon 1"), "{}", fault(&a, true));
    }

    /// Left-out cells would tell "absent" from "held back" again; extra, repeated or reordered
    /// cells would be added up wrongly.
    #[test]
    fn an_answer_without_exactly_the_domains_cells_in_order_is_refused() {
        let mut short = domain(9);
        short.pop();
        let mut repeated = domain(9);
        repeated[1] = repeated[0].clone();
        let mut swapped = domain(9);
        swapped.swap(0, 1);
        let mut small = domain(9);
        small[0] = Cell {
            count: Some(2),
            ..small[0].clone()
        };
        let mut both = domain(9);
        both[0].suppressed = true;
        for (cells, why) in [
            (short, "19 cells"),
            (repeated, "once in order"),
            (swapped, "once in order"),
            (small, "under the minimum cell"),
            (both, "neither a count nor held back"),
        ] {
            let f = fault(&answer(QueryResult::Cells { cells }), true);
            assert!(f.contains(why), "{why}: {f}");
        }
    }

    #[test]
    fn an_answer_to_another_query_pin_study_holder_or_kind_is_refused() {
        let ok = answer(QueryResult::Cells { cells: domain(9) });
        let mut cases = vec![];
        let mut a = ok.clone();
        a.pinned_block = 39;
        cases.push((a, true, "block 39"));
        let mut a = ok.clone();
        a.query_hash = B256::ZERO;
        cases.push((a, true, "another query"));
        let mut a = ok.clone();
        a.study_id = U256::from(4);
        cases.push((a, true, "study 4"));
        let mut a = ok.clone();
        a.holder = Address::repeat_byte(0x33);
        cases.push((a, true, "the answer of"));
        let mut a = ok.clone();
        a.min_cell_size = 1;
        cases.push((a, true, "under 1"));
        cases.push((ok.clone(), false, "not of the query's kind"));
        let small = answer(QueryResult::Stats(Stats {
            count: 3,
            mean: Some(1.0),
        }));
        cases.push((small, false, "under the minimum cell"));
        for (a, cells, why) in cases {
            let f = fault(&a, cells);
            assert!(f.contains(why), "{why}: {f}");
        }
    }

    #[test]
    fn the_rendering_shows_every_cell_the_noise_and_the_bounds() {
        let q = Query::ConditionCount {
            system: wire::SNOMED.into(),
            code: "44054006".into(),
            epsilon: 1.0,
            holders: vec![HOLDER, Address::repeat_byte(0x33)],
            pinned_block: 40,
        };
        let c = wire::combine([&QueryResult::Cells { cells: domain(9) }]);
        let r = render(&c, &q, 3, 5);
        assert!(r.contains("noised, epsilon 1 over 2 holder(s)"), "{r}");
        assert_eq!(
            r.matches("held back (noised count under 5)").count(),
            19,
            "{r}"
        );
        assert!(r.contains("0-17     female         9"), "{r}");
        let q = Query::ObservationStats {
            system: LOINC.into(),
            code: "4548-4".into(),
            epsilon: 1.0,
            lower: 3.0,
            upper: 15.0,
            holders: vec![HOLDER],
            pinned_block: 40,
        };
        let c = wire::combine([&QueryResult::Stats(Stats {
            count: 12,
            mean: Some(6.25),
        })]);
        let r = render(&c, &q, 3, 5);
        assert!(
            r.contains("count 12  mean 6.25 (each value clamped to [3, 15])"),
            "{r}"
        );
    }
}
