//! The chain the bench measures: the registries deployed from anvil's unlocked accounts, a
//! credentialed hospital, its patients' grants, and the fill of `PointerAnchored` events.

use crate::{Args, Error, Result, fail};
use alloy::primitives::aliases::U40;
use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, TransactionRequest};
use medrec_bindings::deployment::Deployment;
use medrec_bindings::record_registry::{IRecordRegistry, RecordRegistry};
use medrec_bindings::{ConsentRegistry, ParticipantRegistry};
use medrec_indexer::events;
use medrec_test_support::now;
use std::path::Path;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The chain

pub async fn rpc(
    provider: &DynProvider,
    method: &'static str,
    params: serde_json::Value,
) -> Result<()> {
    provider
        .raw_request::<_, serde_json::Value>(method.into(), params)
        .await
        .map_err(|e| fail(format!("{method}: {e}")))?;
    Ok(())
}

pub async fn mine(provider: &DynProvider) -> Result<()> {
    rpc(provider, "evm_mine", serde_json::json!([])).await
}

pub const GWEI: u128 = 1_000_000_000;
pub const MAX_FEE: u128 = 50 * GWEI;
pub const TIP: u128 = GWEI;
pub const GRANTED: [u8; 2] = [3, 8]; // labs, notes

pub struct World {
    pub provider: DynProvider,
    pub chain_id: u64,
    pub start_block: u64,
    pub admin: Address,
    pub hospital: Address,
    pub patients: Vec<Address>,
    pub participants: Address,
    pub consent: Address,
    pub records: Address,
    pub next_id: u64,
}

impl World {
    /// Deploys, credentials the hospital, has each patient grant it (automine on).
    pub async fn deploy(provider: DynProvider, n_patients: usize) -> Result<Self> {
        let accounts = provider.get_accounts().await?;
        if accounts.len() < 2 + n_patients.max(1) {
            return Err(fail(format!(
                "anvil has {} dev accounts; --patients needs {}",
                accounts.len(),
                2 + n_patients
            )));
        }
        let (admin, hospital) = (accounts[0], accounts[1]);
        let patients = accounts[2..2 + n_patients.max(1)].to_vec();
        let chain_id = provider.get_chain_id().await?;
        let start_block = provider.get_block_number().await?;
        let participants = ParticipantRegistry::deploy_builder(provider.clone(), admin)
            .from(admin)
            .deploy()
            .await?;
        let consent = ConsentRegistry::deploy_builder(
            provider.clone(),
            admin,
            participants,
            U40::from(86_400),
        )
        .from(admin)
        .deploy()
        .await?;
        let records = RecordRegistry::deploy_builder(provider.clone(), participants, consent)
            .from(admin)
            .deploy()
            .await?;
        let far = U40::from(now() + 10 * 365 * 86_400);
        let r = ParticipantRegistry::new(participants, provider.clone())
            .issueCredential(hospital, 1u8, keccak256(b"bench hospital"), far)
            .from(admin)
            .send()
            .await?
            .get_receipt()
            .await?;
        if !r.status() {
            return Err(fail("issueCredential reverted"));
        }
        let mask: u64 = GRANTED.iter().map(|c| 1u64 << c).sum();
        let c = ConsentRegistry::new(consent, provider.clone());
        // All grants in one block: automine off from here on.
        rpc(&provider, "evm_setAutomine", serde_json::json!([false])).await?;
        let mut grants = Vec::with_capacity(patients.len());
        for p in &patients {
            let req = c
                .grant(*p, hospital, mask, 1u8, U40::ZERO, far)
                .from(*p)
                .nonce(provider.get_transaction_count(*p).await?)
                .gas(200_000)
                .max_fee_per_gas(MAX_FEE)
                .max_priority_fee_per_gas(TIP)
                .into_transaction_request();
            grants.push(*provider.send_transaction(req).await?.tx_hash());
        }
        mine(&provider).await?;
        for h in grants {
            check_receipt(&provider, h).await?;
        }
        Ok(Self {
            provider,
            chain_id,
            start_block,
            admin,
            hospital,
            patients,
            participants,
            consent,
            records,
            next_id: 0,
        })
    }

    pub fn pointer(&mut self) -> IRecordRegistry::Pointer {
        self.next_id += 1;
        let i = self.next_id;
        let patient = self.patients[(i as usize) % self.patients.len()];
        let content_hash = keccak256(i.to_le_bytes());
        let category = GRANTED[(i as usize / self.patients.len()) % GRANTED.len()];
        let commitment = medrec_protocol::records::commitment(
            patient,
            self.hospital,
            category,
            content_hash,
            keccak256(content_hash),
        );
        IRecordRegistry::Pointer {
            // The registry's ids, bound to holder, patient and commitment: random B-tree inserts.
            recordId: medrec_protocol::records::record_id(self.hospital, patient, commitment),
            patient,
            commitment,
            locator: format!("https://hospital-a.example/fhir/DocumentReference/{i:010}"),
            supersedes: B256::ZERO,
        }
    }

    /// The hospital's `anchor` of one new pointer, with an explicit nonce, gas and fees.
    pub fn anchor_one(&mut self, nonce: u64) -> TransactionRequest {
        let pointer = self.pointer();
        self.records()
            .anchor(pointer)
            .from(self.hospital)
            .nonce(nonce)
            .gas(400_000)
            .max_fee_per_gas(MAX_FEE)
            .max_priority_fee_per_gas(TIP)
            .into_transaction_request()
    }

    pub fn records(&self) -> RecordRegistry::RecordRegistryInstance<DynProvider> {
        RecordRegistry::new(self.records, self.provider.clone())
    }

    pub fn contracts(&self) -> Vec<Address> {
        vec![self.participants, self.consent, self.records]
    }

    pub fn filter(&self, from: u64, to: u64) -> Filter {
        Filter::new()
            .address(self.contracts())
            .event_signature(events::topics())
            .from_block(from)
            .to_block(to)
    }

    /// The deployments file of the three registries the indexer follows.
    pub fn write_deployments(&self, path: &Path) {
        let d = Deployment {
            chain_id: self.chain_id,
            start_block: self.start_block,
            admin: self.admin,
            participant_registry: self.participants,
            consent_registry: self.consent,
            record_registry: self.records,
            study_registry: None,
        };
        medrec_test_support::write_deployment(path, &d);
    }
}

pub struct Fill {
    /// The first block of the fill.
    pub first_block: u64,
    pub txs: u64,
    pub events: u64,
    pub blocks: u64,
    pub head: u64,
    pub secs: f64,
    pub gas_per_tx: u64,
}

/// Fills the chain: `txs_per_block` anchorBatch transactions per block, sent concurrently
/// with explicit nonces and gas, then one evm_mine per block; receipts checked once at the end.
pub async fn fill(w: &mut World, args: &Args) -> Result<Fill> {
    let batch = args.batch.clamp(1, 200);
    let txs = args.events.div_ceil(batch);
    let per_block = args.txs_per_block.max(1);
    // Gas from one estimate (nothing pending, so against the latest state), with headroom.
    let sample: Vec<_> = (0..batch).map(|_| w.pointer()).collect();
    let est = w
        .records()
        .anchorBatch(sample)
        .from(w.hospital)
        .estimate_gas()
        .await?;
    w.next_id -= batch; // the estimate anchored nothing
    let gas = est + est / 4;
    let mut nonce = w.provider.get_transaction_count(w.hospital).await?;
    let first_block = w.provider.get_block_number().await? + 1;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut blocks = 0u64;
    let mut hashes: Vec<B256> = Vec::with_capacity(txs as usize);
    let mut last_report = Instant::now();
    while sent < txs {
        let k = per_block.min(txs - sent);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..k {
            let ps: Vec<_> = (0..batch).map(|_| w.pointer()).collect();
            let req = w
                .records()
                .anchorBatch(ps)
                .from(w.hospital)
                .nonce(nonce)
                .gas(gas)
                .max_fee_per_gas(MAX_FEE)
                .max_priority_fee_per_gas(TIP)
                .into_transaction_request();
            let p = w.provider.clone();
            set.spawn(async move { p.send_transaction(req).await.map(|t| *t.tx_hash()) });
            nonce += 1;
        }
        while let Some(r) = set.join_next().await {
            hashes.push(r??);
        }
        mine(&w.provider).await?;
        sent += k;
        blocks += 1;
        if blocks == 1 {
            // Fail early if the batches revert.
            for h in &hashes {
                check_receipt(&w.provider, *h).await?;
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "bench: fill {}/{} events, {:.0} s",
                sent * batch,
                txs * batch,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Wait once: every receipt, concurrently (all mined already).
    let mut set = tokio::task::JoinSet::new();
    for chunk in hashes.chunks(hashes.len().div_ceil(8).max(1)) {
        let p = w.provider.clone();
        let chunk = chunk.to_vec();
        set.spawn(async move {
            for h in chunk {
                check_receipt(&p, h).await?;
            }
            Ok::<_, Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    let head = w.provider.get_block_number().await?;
    Ok(Fill {
        first_block,
        txs,
        events: txs * batch,
        blocks,
        head,
        secs,
        gas_per_tx: est,
    })
}

pub async fn check_receipt(p: &DynProvider, h: B256) -> Result<()> {
    match p.get_transaction_receipt(h).await? {
        Some(r) if r.status() => Ok(()),
        Some(_) => Err(fail(format!("transaction {h} reverted"))),
        None => Err(fail(format!("transaction {h} was not mined"))),
    }
}
