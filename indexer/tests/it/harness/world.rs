//! The chain: a private anvil with the three registries the indexer follows, deployed from
//! anvil's unlocked accounts rather than through `medrec_bindings::deployment::deploy` (the
//! scenarios count blocks from a fresh anvil, and decoy sets of the same three are deployed
//! again), and the transactions the tests send.

use super::wait_for;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::aliases::U40;
use alloy::primitives::{Address, B256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use medrec_bindings::consent_registry::ConsentRegistry::ConsentRegistryInstance;
use medrec_bindings::deployment::Deployment;
use medrec_bindings::participant_registry::ParticipantRegistry::ParticipantRegistryInstance;
use medrec_bindings::record_registry::IRecordRegistry::Pointer;
use medrec_bindings::record_registry::RecordRegistry::RecordRegistryInstance;
use medrec_bindings::{ConsentRegistry, ParticipantRegistry, RecordRegistry};
use medrec_test_support::{Anvil, write_deployment};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub const DAY: u64 = 86_400;
pub const YEAR: u64 = 365 * DAY;
/// Gas given to every transaction (blocks hold 1e9, so dozens of them fit in one block).
const TX_GAS: u64 = 12_000_000;

/// anvil's dev accounts by role.
pub const ADMIN: usize = 0;
pub const H1: usize = 1;
pub const H2: usize = 2;
pub const H3: usize = 3;
pub const RESEARCHER: usize = 4;
pub const GUARDIAN: usize = 5;
pub const P1: usize = 6;
pub const P2: usize = 7;
pub const P3: usize = 8;
pub const P4: usize = 9;
pub const P5: usize = 10;
pub const STRANGER: usize = 19;

/// A chain with the registries deployed and a deployments file for the indexer.
pub struct World {
    pub anvil: Anvil,
    pub p: DynProvider,
    pub accts: Vec<Address>,
    pub participants: Address,
    pub consent: Address,
    pub records: Address,
    pub start_block: u64,
    pub dir: tempfile::TempDir,
    pub deployments: PathBuf,
    /// Transactions waiting for the next `end_block` (automine off), with labels.
    batch: Mutex<Option<Vec<(B256, String)>>>,
}

impl World {
    pub async fn deploy() -> Self {
        let anvil = Anvil::start(&["--accounts", "20", "--gas-limit", "1000000000"]);
        let p = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(anvil.url().parse().unwrap())
            .erased();
        let accts = p.get_accounts().await.unwrap();
        assert!(accts.len() >= 20, "anvil should have 20 dev accounts");
        let start_block = p.get_block_number().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut w = Self {
            anvil,
            p,
            accts,
            participants: Address::ZERO,
            consent: Address::ZERO,
            records: Address::ZERO,
            start_block,
            deployments: dir.path().join("deployments.json"),
            dir,
            batch: Mutex::new(None),
        };
        let (pr, cr, rr) = w.deploy_set().await;
        w.participants = pr;
        w.consent = cr;
        w.records = rr;
        let d = Deployment {
            chain_id: 31337,
            start_block,
            admin: w.accts[ADMIN],
            participant_registry: pr,
            consent_registry: cr,
            record_registry: rr,
            study_registry: None,
        };
        write_deployment(&w.deployments, &d);
        w
    }

    /// Deploys a set of the three registries (used again for decoys the indexer must ignore).
    pub async fn deploy_set(&self) -> (Address, Address, Address) {
        let admin = self.accts[ADMIN];
        let pr = self
            .deploy_tx(ParticipantRegistry::deploy_builder(&self.p, admin))
            .await;
        let cr = self
            .deploy_tx(ConsentRegistry::deploy_builder(
                &self.p,
                admin,
                pr,
                U40::from(DAY),
            ))
            .await;
        let rr = self
            .deploy_tx(RecordRegistry::deploy_builder(&self.p, pr, cr))
            .await;
        (pr, cr, rr)
    }

    async fn deploy_tx(&self, b: alloy::contract::RawCallBuilder<&DynProvider>) -> Address {
        let pending = b
            .from(self.accts[ADMIN])
            .gas(TX_GAS)
            .send()
            .await
            .expect("deploy");
        let r = self.receipt(*pending.tx_hash()).await;
        assert!(r.status(), "deployment reverted");
        r.contract_address.expect("no contract address")
    }

    pub fn a(&self, i: usize) -> Address {
        self.accts[i]
    }

    pub fn participants_c(&self) -> ParticipantRegistryInstance<DynProvider> {
        ParticipantRegistry::new(self.participants, self.p.clone())
    }

    pub fn consent_c(&self) -> ConsentRegistryInstance<DynProvider> {
        ConsentRegistry::new(self.consent, self.p.clone())
    }

    pub fn records_c(&self) -> RecordRegistryInstance<DynProvider> {
        RecordRegistry::new(self.records, self.p.clone())
    }

    pub async fn rpc(&self, method: &'static str, params: Value) -> Value {
        self.p
            .raw_request::<Value, Value>(method.into(), params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub async fn head(&self) -> u64 {
        self.p.get_block_number().await.unwrap()
    }

    /// (hash, timestamp) of block `n`.
    pub async fn block(&self, n: u64) -> (B256, u64) {
        let b = self
            .p
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no block {n}"));
        (b.header.hash, b.header.timestamp)
    }

    /// The latest block's timestamp.
    pub async fn now(&self) -> u64 {
        let h = self.head().await;
        self.block(h).await.1
    }

    pub async fn receipt(&self, hash: B256) -> TransactionReceipt {
        wait_for(
            &format!("receipt of {hash}"),
            Duration::from_secs(20),
            || async { self.p.get_transaction_receipt(hash).await.ok().flatten() },
        )
        .await
    }

    /// Sends `call` from `from`. With automine (no open block) it waits for the receipt and
    /// panics, with the revert reason, if it failed; in an open block it only queues it.
    pub async fn send<D: alloy::contract::CallDecoder>(
        &self,
        label: &str,
        from: Address,
        call: alloy::contract::CallBuilder<&DynProvider, D>,
    ) -> B256 {
        let call = call.from(from).gas(TX_GAS);
        let pending = call
            .send()
            .await
            .unwrap_or_else(|e| panic!("send {label}: {e}"));
        let hash = *pending.tx_hash();
        if let Some(b) = self.batch.lock().unwrap().as_mut() {
            b.push((hash, label.to_string()));
            return hash;
        }
        let r = self.receipt(hash).await;
        if !r.status() {
            let why = match call.call_raw().await {
                Err(e) => {
                    let decoded = e
                        .as_revert_data()
                        .and_then(|d| medrec_bindings::decode_revert(&d));
                    format!("{e} {decoded:?}")
                }
                Ok(_) => "no revert on replay".into(),
            };
            panic!("{label} reverted: {why}");
        }
        hash
    }

    /// Stops mining: transactions sent until `end_block` go into one block.
    pub async fn begin_block(&self) {
        self.rpc("evm_setAutomine", json!([false])).await;
        *self.batch.lock().unwrap() = Some(vec![]);
    }

    /// Mines the queued transactions in one block, checks they all succeeded, turns automine
    /// back on, and returns the block number.
    pub async fn end_block(&self) -> u64 {
        let txs = self.batch.lock().unwrap().take().expect("no open block");
        self.rpc("evm_mine", json!([])).await;
        self.rpc("evm_setAutomine", json!([true])).await;
        let mut block = None;
        for (h, label) in &txs {
            let r = self.receipt(*h).await;
            assert!(r.status(), "{label} reverted in a batched block");
            let n = r.block_number.unwrap();
            assert!(
                block.is_none_or(|b| b == n),
                "batched transactions landed in different blocks"
            );
            block = Some(n);
        }
        match block {
            Some(b) => b,
            None => self.head().await,
        }
    }

    pub async fn snapshot(&self) -> Value {
        self.rpc("evm_snapshot", json!([])).await
    }

    pub async fn revert(&self, id: Value) {
        let ok = self.rpc("evm_revert", json!([id])).await;
        assert_eq!(ok, Value::Bool(true), "evm_revert failed");
    }

    // --------------------------------------------------------------------------- actions

    pub async fn issue(&self, account: Address, role: u8, reference: &str, expires: u64) -> B256 {
        let c = self.participants_c();
        self.send(
            "issueCredential",
            self.a(ADMIN),
            c.issueCredential(account, role, keccak256(reference), U40::from(expires)),
        )
        .await
    }

    pub async fn revoke_credential(&self, account: Address) -> B256 {
        let c = self.participants_c();
        self.send(
            "revokeCredential",
            self.a(ADMIN),
            c.revokeCredential(account),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn grant_by(
        &self,
        by: Address,
        patient: Address,
        grantee: Address,
        categories: u64,
        purpose: u8,
        not_before: u64,
        expires: u64,
    ) -> B256 {
        let c = self.consent_c();
        self.send(
            "grant",
            by,
            c.grant(
                patient,
                grantee,
                categories,
                purpose,
                U40::from(not_before),
                U40::from(expires),
            ),
        )
        .await
    }

    pub async fn grant(
        &self,
        patient: Address,
        grantee: Address,
        categories: u64,
        expires: u64,
    ) -> B256 {
        self.grant_by(patient, patient, grantee, categories, 1, 0, expires)
            .await
    }

    pub async fn revoke(&self, by: Address, patient: Address, grantee: Address) -> B256 {
        let c = self.consent_c();
        self.send("revoke", by, c.revoke(patient, grantee)).await
    }

    pub async fn set_guardian(
        &self,
        patient: Address,
        guardian: Address,
        scope: u64,
        expires: u64,
    ) -> B256 {
        let c = self.consent_c();
        self.send(
            "setGuardian",
            patient,
            c.setGuardian(guardian, scope, U40::from(0u64), U40::from(expires)),
        )
        .await
    }

    pub async fn remove_guardian(&self, patient: Address, guardian: Address) -> B256 {
        let c = self.consent_c();
        self.send("removeGuardian", patient, c.removeGuardian(guardian))
            .await
    }

    pub async fn open_emergency(
        &self,
        provider: Address,
        patient: Address,
        reason: &str,
        duration: u64,
    ) -> B256 {
        let c = self.consent_c();
        self.send(
            "openEmergencyAccess",
            provider,
            c.openEmergencyAccess(patient, keccak256(reason), U40::from(duration)),
        )
        .await
    }

    pub async fn close_emergency(&self, by: Address, patient: Address, provider: Address) -> B256 {
        let c = self.consent_c();
        self.send(
            "closeEmergencyAccess",
            by,
            c.closeEmergencyAccess(patient, provider),
        )
        .await
    }

    pub async fn set_cap(&self, cap: u64) -> B256 {
        let c = self.consent_c();
        self.send(
            "setEmergencyCap",
            self.a(ADMIN),
            c.setEmergencyCap(U40::from(cap)),
        )
        .await
    }

    /// Anchors `ps` as `holder`, each under its id at that holder ([`record_id`]).
    pub async fn anchor_batch(&self, holder: Address, mut ps: Vec<Pointer>) -> B256 {
        for p in &mut ps {
            p.recordId = medrec_protocol::records::record_id(holder, p.patient, p.commitment);
        }
        let c = self.records_c();
        self.send("anchorBatch", holder, c.anchorBatch(ps)).await
    }

    /// Anchors `p` as an amendment of `holder`'s record `old_seed` of the same patient (the
    /// registry checks the old record by its stored commitment and the id formula).
    pub async fn amend(&self, holder: Address, mut p: Pointer, old_seed: &str) -> B256 {
        p.recordId = medrec_protocol::records::record_id(holder, p.patient, p.commitment);
        p.supersedes = record_id(holder, p.patient, old_seed);
        let c = self.records_c();
        self.send("anchor", holder, c.anchor(p)).await
    }
}

impl World {
    /// `holder` erases its record `seed` of `patient` (`RecordRegistry.erase`).
    pub async fn erase(&self, holder: Address, patient: Address, seed: &str) -> B256 {
        let c = self.records_c();
        self.send(
            "erase",
            holder,
            c.erase(record_id(holder, patient, seed), patient),
        )
        .await
    }
}

/// The record id of pointer `seed` of `patient` at `holder` (ids are bound to their holder,
/// patient and commitment).
pub fn record_id(holder: Address, patient: Address, seed: &str) -> B256 {
    medrec_protocol::records::record_id(holder, patient, commitment(seed))
}

/// The commitment of pointer `seed`: opaque to the indexer, which mirrors it as anchored (a
/// real one is `records::commitment` of the record's opening).
pub fn commitment(seed: &str) -> B256 {
    keccak256(format!("commitment:{seed}"))
}

/// A pointer to anchor, with its commitment derived from `seed`; its id is set when a holder
/// anchors it ([`World::anchor_batch`], [`World::amend`]). The indexer never sees the
/// category: `_category` names what the record is, for the reader of a test.
pub fn pointer(seed: &str, patient: Address, _category: u8) -> Pointer {
    Pointer {
        recordId: B256::ZERO,
        patient,
        commitment: commitment(seed),
        locator: format!("https://records.example/{seed}"),
        supersedes: B256::ZERO,
    }
}
