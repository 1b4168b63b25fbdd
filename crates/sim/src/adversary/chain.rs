//! The chain as any consortium member reads it: every log of the four registries, every
//! transaction's input to them, and the registries' public views for every patient seen.

use super::{
    CALLDATA, Findings, Kind, LOGS, SeenPointer, VIEWS, emergency_detail, grant_detail,
    guardian_detail, rule_detail, study_detail,
};
use crate::{Args, Result, chain};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::{SolEventInterface, SolInterface};
use medrec_bindings::deployment::Deployment;
use medrec_bindings::participant_registry::ParticipantRegistry::ParticipantRegistryEvents as PE;
use medrec_bindings::record_registry::RecordRegistry::{
    RecordRegistryCalls as RC, RecordRegistryEvents as RE,
};
use medrec_bindings::study_registry::StudyRegistry::{
    StudyRegistryCalls as SC, StudyRegistryEvents as SE,
};
use medrec_bindings::{
    ConsentRegistry, ConsentRegistry::ConsentRegistryCalls as CC,
    ConsentRegistry::ConsentRegistryEvents as CE, StudyRegistry,
};
use std::collections::{BTreeMap, BTreeSet};

/// Blocks per `eth_getLogs` request.
const LOG_RANGE: u64 = 2_000;
/// Most view calls the probe makes; beyond it a probe is skipped and said so.
const MAX_VIEW_CALLS: usize = 100_000;

fn t(v: alloy::primitives::aliases::U40) -> u64 {
    v.to::<u64>()
}

/// Reads logs, transactions and views into `f`.
pub async fn read(args: &Args, f: &mut Findings) -> Result<()> {
    let p = crate::provider(&args.rpc_url, None)?;
    let d = crate::deployment(args, &p).await?;
    let head = p.get_block_number().await.map_err(chain)?;
    f.governance = Some(d.admin);
    let contracts: Vec<Address> = [
        d.participant_registry,
        d.consent_registry,
        d.record_registry,
    ]
    .into_iter()
    .chain(d.study_registry)
    .collect();
    let mut patients = BTreeSet::new();
    logs(&p, &d, &contracts, head, f, &mut patients).await?;
    let senders = calldata(&p, &d, &contracts, head, f, &mut patients).await?;
    views(&p, &d, f, &patients, &senders).await
}

async fn logs(
    p: &DynProvider,
    d: &Deployment,
    contracts: &[Address],
    head: u64,
    f: &mut Findings,
    patients: &mut BTreeSet<Address>,
) -> Result<()> {
    let mut all: Vec<Log> = vec![];
    let mut from = d.start_block;
    while from <= head {
        let to = (from + LOG_RANGE - 1).min(head);
        let filter = Filter::new()
            .address(contracts.to_vec())
            .from_block(from)
            .to_block(to);
        all.extend(p.get_logs(&filter).await.map_err(chain)?);
        from = to + 1;
    }
    let (mut decoded, before) = (0usize, f.facts.len());
    let mut anchored = vec![];
    let mut endpoints: BTreeMap<Address, Vec<String>> = BTreeMap::new();
    for log in &all {
        let block = log.block_number.unwrap_or_default();
        let a = log.address();
        let ok = if a == d.participant_registry {
            match PE::decode_log(&log.inner).map(|l| l.data) {
                Ok(PE::CredentialIssued(e)) => {
                    if e.role == medrec_protocol::participant::Role::Provider.to_solidity() {
                        f.providers.insert(e.account);
                    }
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        } else if a == d.consent_registry {
            match CE::decode_log(&log.inner).map(|l| l.data) {
                Ok(CE::Granted(e)) => {
                    patients.insert(e.patient);
                    f.providers.insert(e.grantee);
                    let g = grant_detail(
                        e.grantee,
                        e.categories,
                        e.purpose,
                        t(e.notBefore),
                        t(e.expiresAt),
                    );
                    f.add(e.patient, Kind::Grantee, g, LOGS);
                    true
                }
                Ok(CE::GuardianSet(e)) => {
                    patients.insert(e.patient);
                    let g = guardian_detail(e.guardian, e.scope, t(e.notBefore), t(e.expiresAt));
                    f.add(e.patient, Kind::Guardian, g, LOGS);
                    true
                }
                Ok(CE::EmergencyAccessOpened(e)) => {
                    patients.insert(e.patient);
                    f.add(
                        e.patient,
                        Kind::Emergency,
                        emergency_detail(e.provider, block),
                        LOGS,
                    );
                    true
                }
                Ok(CE::EmergencyRuleSet(e)) => {
                    patients.insert(e.patient);
                    f.add(e.patient, Kind::Emergency, rule_detail(e.excluded), LOGS);
                    true
                }
                Ok(CE::Revoked(e)) => {
                    patients.insert(e.patient);
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        } else if a == d.record_registry {
            match RE::decode_log(&log.inner).map(|l| l.data) {
                Ok(RE::HolderRegistered(e)) => {
                    endpoints.entry(e.holder).or_default().push(e.endpoint);
                    true
                }
                Ok(RE::PointerAnchored(e)) => {
                    // Issue 16: no category and no content hash, only a salted commitment.
                    patients.insert(e.patient);
                    anchored.push(super::order::Anchored {
                        tx: log.transaction_hash.unwrap_or_default(),
                        patient: e.patient,
                        holder: e.holder,
                        record_id: e.recordId,
                        locator: e.locator.clone(),
                    });
                    f.pointers.insert(SeenPointer {
                        record_id: e.recordId,
                        patient: e.patient,
                        holder: e.holder,
                        category: None,
                        content_hash: None,
                        commitment: Some(e.commitment),
                    });
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        } else if Some(a) == d.study_registry {
            match SE::decode_log(&log.inner).map(|l| l.data) {
                Ok(SE::StudyRegistered(e)) => {
                    f.studies.insert(e.studyId.to::<u64>(), e.categories);
                    true
                }
                // They name a study pseudonym, not a patient (issue 16): kept for
                // Findings::derive_studies, which tries to link it to one.
                Ok(SE::OptedIn(e)) => {
                    f.pseudonym(e.pseudonym, e.studyId.to::<u64>(), LOGS);
                    true
                }
                Ok(SE::Withdrew(e)) => {
                    f.pseudonym(e.pseudonym, e.studyId.to::<u64>(), LOGS);
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            }
        } else {
            false
        };
        decoded += usize::from(ok);
    }
    super::order::attack(&anchored, &endpoints, f);
    let new = f.facts.len() - before;
    f.tried(
        "event logs",
        format!(
            "{} logs of the four registries, blocks {}..{head} (eth_getLogs; {decoded} decoded with the bindings' event types)",
            all.len(),
            d.start_block
        ),
        format!("{new} facts about {} patients", patients.len()),
    );
    Ok(())
}

/// Decodes the input of every transaction sent to a registry, reverted ones included; returns
/// every account that sent one (guardian candidates for the views).
async fn calldata(
    p: &DynProvider,
    d: &Deployment,
    contracts: &[Address],
    head: u64,
    f: &mut Findings,
    patients: &mut BTreeSet<Address>,
) -> Result<BTreeSet<Address>> {
    use alloy::consensus::Transaction as _;
    use alloy::network::TransactionResponse as _;
    let start = d.start_block;
    let n = usize::try_from(head.saturating_sub(start) + 1).unwrap_or(usize::MAX);
    let wanted: std::sync::Arc<BTreeSet<Address>> =
        std::sync::Arc::new(contracts.iter().copied().collect());
    let p2 = p.clone();
    let blocks = crate::parallel(n, move |i| {
        let (p, wanted) = (p2.clone(), wanted.clone());
        async move {
            let b = p
                .get_block_by_number((start + i as u64).into())
                .full()
                .await
                .map_err(chain)?;
            let Some(b) = b else { return Ok(None) };
            let (number, time) = (b.header.number, b.header.timestamp);
            type Call = (u64, u64, Address, Address, Vec<u8>);
            let mut calls: Vec<Call> = vec![];
            let mut transfers: Vec<(Address, Address)> = vec![];
            for tx in b.transactions.txns() {
                let Some(to) = tx.to() else { continue };
                if wanted.contains(&to) {
                    calls.push((number, time, tx.from(), to, tx.input().to_vec()));
                } else if !tx.value().is_zero() {
                    transfers.push((tx.from(), to));
                }
            }
            Ok(Some((calls, transfers)))
        }
    })
    .await?;
    let mut txs = vec![];
    let mut transfers = 0usize;
    for (calls, paid) in blocks {
        txs.extend(calls);
        transfers += paid.len();
        for (from, to) in paid {
            f.paid(from, to);
        }
    }
    let before = f.facts.len();
    let mut senders = BTreeSet::new();
    for (block, time, from, to, input) in &txs {
        let (block, from) = (*block, *from);
        // The registry stores a window's start of 0 as the block's time.
        let start_of = |v: alloy::primitives::aliases::U40| match t(v) {
            0 => *time,
            s => s,
        };
        senders.insert(from);
        if *to == d.consent_registry {
            match CC::abi_decode(input) {
                Ok(CC::grant(c)) => {
                    patients.insert(c.patient);
                    f.paid(from, c.patient);
                    let g = grant_detail(
                        c.grantee,
                        c.categories,
                        c.purpose,
                        start_of(c.notBefore),
                        t(c.expiresAt),
                    );
                    f.add(c.patient, Kind::Grantee, g, CALLDATA);
                }
                Ok(CC::grantBySig(c)) => {
                    patients.insert(c.patient);
                    f.paid(from, c.patient);
                    let g = grant_detail(
                        c.grantee,
                        c.categories,
                        c.purpose,
                        start_of(c.notBefore),
                        t(c.expiresAt),
                    );
                    f.add(c.patient, Kind::Grantee, g, CALLDATA);
                }
                Ok(CC::setGuardian(c)) => {
                    patients.insert(from);
                    let g =
                        guardian_detail(c.guardian, c.scope, start_of(c.notBefore), t(c.expiresAt));
                    f.add(from, Kind::Guardian, g, CALLDATA);
                }
                Ok(CC::openEmergencyAccess(c)) => {
                    patients.insert(c.patient);
                    f.paid(from, c.patient);
                    f.add(
                        c.patient,
                        Kind::Emergency,
                        emergency_detail(from, block),
                        CALLDATA,
                    );
                }
                Ok(CC::setEmergencyRule(c)) => {
                    patients.insert(from);
                    f.add(from, Kind::Emergency, rule_detail(c.excluded), CALLDATA);
                }
                _ => {}
            }
        } else if *to == d.record_registry {
            let ps = match RC::abi_decode(input) {
                Ok(RC::anchor(c)) => vec![c.p],
                Ok(RC::anchorBatch(c)) => c.ps,
                _ => vec![],
            };
            for ptr in ps {
                // The calldata holds the pointer as the event does: a commitment, no opening.
                patients.insert(ptr.patient);
                f.paid(from, ptr.patient);
                f.pointers.insert(SeenPointer {
                    record_id: ptr.recordId,
                    patient: ptr.patient,
                    holder: from,
                    category: None,
                    content_hash: None,
                    commitment: Some(ptr.commitment),
                });
            }
        } else if Some(*to) == d.study_registry {
            // A study pseudonym and who paid for its transaction (the relayer), for
            // Findings::derive_studies.
            let joined = match SC::abi_decode(input) {
                Ok(SC::optInBySig(c)) => Some((c.pseudonym, c.studyId)),
                Ok(SC::withdrawBySig(c)) => Some((c.pseudonym, c.studyId)),
                Ok(SC::cancelBySig(c)) => Some((c.pseudonym, c.studyId)),
                _ => None,
            };
            if let Some((pseudonym, study)) = joined {
                f.paid(from, pseudonym);
                f.pseudonym(pseudonym, study.to::<u64>(), CALLDATA);
            }
        }
    }
    let new = f.facts.len() - before;
    f.tried(
        "transaction inputs",
        format!(
            "{} transactions to the registries in blocks {start}..{head}, reverted ones included, and {transfers} transfers of ether (eth_getBlockByNumber with transactions; decoded with the bindings' call types)",
            txs.len()
        ),
        format!("{new} facts not in the logs"),
    );
    Ok(senders)
}

/// Asks the registries' public views about every patient seen: each grant to each provider
/// (`grantOf`), each guardian candidate (`guardianOf`, every sender of a transaction), the
/// break-glass rule (`emergencyRuleOf`) and each study (`isOptedIn`).
async fn views(
    p: &DynProvider,
    d: &Deployment,
    f: &mut Findings,
    patients: &BTreeSet<Address>,
    senders: &BTreeSet<Address>,
) -> Result<()> {
    let before = f.facts.len();
    let consent = ConsentRegistry::new(d.consent_registry, p.clone());
    let pats: Vec<Address> = patients.iter().copied().collect();
    let provs: Vec<Address> = f.providers.iter().copied().collect();
    let cands: Vec<Address> = senders
        .iter()
        .filter(|s| !f.providers.contains(*s))
        .copied()
        .collect();
    let studies: Vec<u64> = f.studies.keys().copied().collect();
    let calls = pats.len() * (provs.len() + cands.len() + studies.len() + 1);
    if calls > MAX_VIEW_CALLS {
        f.tried(
            "public views",
            format!("{calls} view calls, over the {MAX_VIEW_CALLS} this tool makes"),
            "skipped".into(),
        );
        return Ok(());
    }
    // One job per patient: all of its questions.
    let jobs = std::sync::Arc::new((pats.clone(), provs.clone(), cands.clone(), studies.clone()));
    let study_at = d.study_registry;
    let p2 = p.clone();
    let answers = crate::parallel(pats.len(), move |i| {
        let (jobs, consent, p) = (jobs.clone(), consent.clone(), p2.clone());
        async move {
            let (pats, provs, cands, studies) = &*jobs;
            let patient = pats[i];
            let mut out: Vec<(Kind, String)> = vec![];
            for g in provs {
                let s = consent.grantOf(patient, *g).call().await.map_err(chain)?;
                if s.categories != 0 {
                    let detail =
                        grant_detail(*g, s.categories, s.purpose, t(s.notBefore), t(s.expiresAt));
                    out.push((Kind::Grantee, detail));
                }
            }
            for g in cands.iter().filter(|g| **g != patient) {
                let s = consent
                    .guardianOf(patient, *g)
                    .call()
                    .await
                    .map_err(chain)?;
                if s.scope != 0 {
                    let detail = guardian_detail(*g, s.scope, t(s.notBefore), t(s.expiresAt));
                    out.push((Kind::Guardian, detail));
                }
            }
            let rule = consent
                .emergencyRuleOf(patient)
                .call()
                .await
                .map_err(chain)?;
            if rule != 0 {
                out.push((Kind::Emergency, rule_detail(rule)));
            }
            if let Some(at) = study_at {
                let reg = StudyRegistry::new(at, p.clone());
                for s in studies {
                    if reg
                        .isOptedIn(U256::from(*s), patient)
                        .call()
                        .await
                        .map_err(chain)?
                    {
                        out.push((Kind::Study, study_detail(*s)));
                    }
                }
            }
            Ok(Some((patient, out)))
        }
    })
    .await?;
    for (patient, facts) in answers {
        for (k, detail) in facts {
            f.add(patient, k, detail, VIEWS);
        }
    }
    let new = f.facts.len() - before;
    f.tried(
        "public views",
        format!(
            "{calls} calls: grantOf for {} patients x {} providers, guardianOf x {} other senders, emergencyRuleOf, isOptedIn x {} studies",
            pats.len(),
            provs.len(),
            cands.len(),
            studies.len()
        ),
        format!("{new} facts not in the logs or inputs"),
    );
    Ok(())
}
