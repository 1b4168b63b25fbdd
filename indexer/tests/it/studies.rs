//! The StudyRegistry indexed: studies, opt-ins and withdrawals, query receipts, compared with
//! the test's own decoding of the chain (every table and view) and with the registry's own
//! view functions (the API), before and after reorgs.

use crate::harness::*;
use crate::model;
use alloy::primitives::aliases::{U24, U40};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use medrec_bindings::StudyRegistry::{self, StudyRegistryInstance};
use medrec_bindings::eip712;
use serde_json::Value;

/// A study registry deployed on a world and named in its deployments file (so an indexer
/// started afterwards follows it), with the world's researcher credentialed.
pub struct Registry {
    pub address: Address,
}

impl Registry {
    pub async fn deploy(w: &World) -> Self {
        let admin = w.a(ADMIN);
        let pending = StudyRegistry::deploy_builder(&w.p, admin, w.participants)
            .from(admin)
            .gas(12_000_000)
            .send()
            .await
            .expect("deploy the study registry");
        let r = w.receipt(*pending.tx_hash()).await;
        assert!(r.status(), "deploying the study registry reverted");
        let address = r.contract_address.expect("no contract address");
        let exp = w.now().await + YEAR;
        w.issue(w.a(RESEARCHER), 2, "researcher", exp).await;
        let mut d: Value =
            serde_json::from_str(&std::fs::read_to_string(&w.deployments).unwrap()).unwrap();
        d["studyRegistry"] = Value::String(address.to_string());
        std::fs::write(&w.deployments, serde_json::to_string_pretty(&d).unwrap()).unwrap();
        Self { address }
    }

    fn c(&self, w: &World) -> StudyRegistryInstance<DynProvider> {
        StudyRegistry::new(self.address, w.p.clone())
    }

    /// Registers a study as the researcher; returns its id (with automine on).
    pub async fn register(&self, w: &World, categories: u64, min_cell: u32, budget: u64) -> u64 {
        let c = self.c(w);
        let protocol = keccak256(format!("protocol {categories} {min_cell} {budget}"));
        w.send(
            "registerStudy",
            w.a(RESEARCHER),
            c.registerStudy(protocol, categories, min_cell, budget),
        )
        .await;
        c.studyCount().call().await.unwrap().to::<u64>()
    }

    /// Governance sets the research policy.
    pub async fn set_policy(&self, w: &World, floor: u32, study: u64, researcher: u64) {
        let c = self.c(w);
        w.send(
            "setResearchPolicy",
            w.a(ADMIN),
            c.setResearchPolicy(floor, study, researcher),
        )
        .await;
    }

    pub async fn approve(&self, w: &World, study: u64) {
        let c = self.c(w);
        w.send(
            "approveStudy",
            w.a(ADMIN),
            c.approveStudy(U256::from(study)),
        )
        .await;
    }

    pub async fn close(&self, w: &World, study: u64) {
        let c = self.c(w);
        w.send("closeStudy", w.a(ADMIN), c.closeStudy(U256::from(study)))
            .await;
    }

    /// `patient`'s pseudonym in `study` (issue 16: participation names it; a stand-in for the
    /// CLI's derivation from the patient's key, which the indexer never sees).
    pub fn pseudonym(patient: Address, study: u64) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&keccak256(format!(
            "indexer test pseudonym {patient} {study}"
        )))
        .unwrap()
    }

    /// The epoch to sign in and the next issue time of `patient`'s pseudonym in `study`, as the
    /// chain holds them now.
    pub async fn signing_state(&self, w: &World, patient: Address, study: u64) -> (U24, u64) {
        let p = self
            .c(w)
            .participationOf(U256::from(study), Self::pseudonym(patient, study).address())
            .call()
            .await
            .unwrap();
        (
            p.epoch,
            medrec_bindings::next_issued_at(w.now().await, p.signedAt.to()),
        )
    }

    /// Signs `message` as `patient`'s pseudonym in `study`, under this registry's domain.
    async fn sign<T: SolStruct>(&self, w: &World, patient: Address, study: u64, m: &T) -> Bytes {
        let chain_id = w.p.get_chain_id().await.unwrap();
        let domain = medrec_bindings::study_domain(chain_id, self.address);
        Self::pseudonym(patient, study)
            .sign_hash(&m.eip712_signing_hash(&domain))
            .await
            .unwrap()
            .as_bytes()
            .to_vec()
            .into()
    }

    /// `patient`'s pseudonym opts in to `study`, signed and relayed by a stranger.
    pub async fn opt_in(&self, w: &World, patient: Address, study: u64) {
        let (epoch, issued) = self.signing_state(w, patient, study).await;
        self.opt_in_at(w, patient, study, epoch, issued).await;
    }

    /// As [`Registry::opt_in`], signed in `epoch` at `issued` (for several in one block).
    pub async fn opt_in_at(
        &self,
        w: &World,
        patient: Address,
        study: u64,
        epoch: U24,
        issued: u64,
    ) {
        let seed = keccak256(format!("tags {patient} {study} {issued}"));
        let tags: Bytes = (0..medrec_protocol::study_tags::TAGS_LEN)
            .map(|i| seed[i % 32] ^ (i as u8))
            .collect::<Vec<u8>>()
            .into();
        let m = eip712::OptIn {
            studyId: U256::from(study),
            pseudonym: Self::pseudonym(patient, study).address(),
            tags,
            epoch,
            issuedAt: U40::from(issued),
            deadline: U256::from(issued + DAY),
        };
        let sig = self.sign(w, patient, study, &m).await;
        let c = self.c(w);
        w.send(
            "optInBySig",
            w.a(STRANGER),
            c.optInBySig(
                m.studyId,
                m.pseudonym,
                m.tags.clone(),
                m.epoch,
                m.issuedAt,
                m.deadline,
                sig,
            ),
        )
        .await;
    }

    /// `patient`'s pseudonym withdraws from `study`, signed and relayed by a stranger.
    pub async fn withdraw(&self, w: &World, patient: Address, study: u64) {
        let (epoch, issued) = self.signing_state(w, patient, study).await;
        self.withdraw_at(w, patient, study, epoch, issued).await;
    }

    /// As [`Registry::withdraw`], signed in `epoch` at `issued`.
    pub async fn withdraw_at(
        &self,
        w: &World,
        patient: Address,
        study: u64,
        epoch: U24,
        issued: u64,
    ) {
        let m = eip712::Withdraw {
            studyId: U256::from(study),
            pseudonym: Self::pseudonym(patient, study).address(),
            epoch,
            issuedAt: U40::from(issued),
            deadline: U256::from(issued + DAY),
        };
        let sig = self.sign(w, patient, study, &m).await;
        let c = self.c(w);
        w.send(
            "withdrawBySig",
            w.a(STRANGER),
            c.withdrawBySig(m.studyId, m.pseudonym, m.epoch, m.issuedAt, m.deadline, sig),
        )
        .await;
    }

    /// `patient`'s pseudonym voids its outstanding signed opt-ins and withdrawals for `study`.
    pub async fn cancel_signatures(&self, w: &World, patient: Address, study: u64) {
        let (epoch, issued) = self.signing_state(w, patient, study).await;
        let m = eip712::CancelStudySignatures {
            studyId: U256::from(study),
            pseudonym: Self::pseudonym(patient, study).address(),
            epoch,
            issuedAt: U40::from(issued),
            deadline: U256::from(issued + DAY),
        };
        let sig = self.sign(w, patient, study, &m).await;
        let c = self.c(w);
        w.send(
            "cancelBySig",
            w.a(STRANGER),
            c.cancelBySig(m.studyId, m.pseudonym, m.epoch, m.issuedAt, m.deadline, sig),
        )
        .await;
    }

    /// Records the receipt of query `tag` at the head, spending `cost`.
    pub async fn record(&self, w: &World, study: u64, tag: &str, cost: u64) {
        let c = self.c(w);
        let pinned = w.head().await;
        w.send(
            "recordQuery",
            w.a(RESEARCHER),
            c.recordQuery(
                U256::from(study),
                keccak256(format!("query {tag}")),
                cost,
                pinned,
                keccak256(format!("answer {tag}")),
            ),
        )
        .await;
    }

    /// Whether `patient`'s pseudonym is opted in to `study`, whatever the study's status (the
    /// registry's `isOptedIn` also asks that the study be approved).
    pub async fn is_opted_in(&self, w: &World, study: u64, patient: Address) -> bool {
        self.c(w)
            .participationOf(U256::from(study), Self::pseudonym(patient, study).address())
            .call()
            .await
            .unwrap()
            .optedIn
    }

    /// Checks the API's studies, participants, patients' studies and research policy against
    /// the registry's own view functions at `head`, and the database's committed budgets
    /// against `committedBudgetOf`.
    pub async fn assert_api_matches_registry(
        &self,
        w: &World,
        db: &TestDb,
        idx: &Indexer,
        head: u64,
    ) {
        let c = self.c(w);
        let count = c.studyCount().call().await.unwrap().to::<u64>();
        let policy = c.researchPolicy().call().await.unwrap();
        let got = idx
            .get_ok(&format!("/v1/research/policy?min_block={head}"))
            .await;
        assert_eq!(got["minCellSizeFloor"], policy.minCellSizeFloor, "{got}");
        assert_eq!(
            got["maxStudyBudget"],
            medrec_protocol::mask::to_json(policy.maxStudyBudget),
            "{got}"
        );
        assert_eq!(
            got["maxResearcherBudget"],
            medrec_protocol::mask::to_json(policy.maxResearcherBudget),
            "{got}"
        );
        let committed = c.committedBudgetOf(w.a(RESEARCHER)).call().await.unwrap();
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT committed::text FROM researcher_budgets WHERE researcher = $1",
        )
        .bind(w.a(RESEARCHER).to_vec())
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            stored.unwrap_or_else(|| "0".into()),
            committed.to_string(),
            "the researcher's committed budget"
        );
        let all = idx.get_ok(&format!("/v1/studies?min_block={head}")).await;
        let listed = all["studies"].as_array().unwrap();
        assert_eq!(listed.len() as u64, count, "{all}");
        let patients = [P1, P2, P3, P4, P5].map(|i| w.a(i));
        let mut opted: Vec<(Address, u64)> = vec![];
        for (i, got) in listed.iter().enumerate() {
            let id = i as u64 + 1;
            let s = c.studyOf(U256::from(id)).call().await.unwrap();
            assert_eq!(got["studyId"], id, "{got}");
            assert_eq!(got["researcher"], s.researcher.to_string(), "{got}");
            assert_eq!(got["protocolHash"], s.protocolHash.to_string(), "{got}");
            assert_eq!(
                got["categoryMask"],
                medrec_protocol::mask::to_json(s.categories),
                "{got}"
            );
            assert_eq!(
                got["categories"],
                serde_json::json!(medrec_bindings::category_names(s.categories))
            );
            assert_eq!(got["minCellSize"], s.minCellSize, "{got}");
            assert_eq!(
                got["budget"],
                medrec_protocol::mask::to_json(s.budget),
                "{got}"
            );
            assert_eq!(
                got["spent"],
                medrec_protocol::mask::to_json(s.spent),
                "{got}"
            );
            assert_eq!(got["registeredAt"], s.registeredAt.to::<u64>(), "{got}");
            let status = ["none", "registered", "approved", "closed"][s.status as usize];
            assert_eq!(got["status"], status, "{got}");

            let one = idx.get_ok(&format!("/v1/studies/{id}")).await;
            assert_eq!(&one["study"], got);
            let mut want: Vec<String> = vec![];
            for p in patients {
                if self.is_opted_in(w, id, p).await {
                    want.push(p.to_string());
                    want.push(Self::pseudonym(p, id).address().to_string());
                    opted.push((p, id));
                }
            }
            // Who takes part is nobody's answer: not the study's (neither patients nor
            // pseudonyms), and, since issue 16, not a patient's either (below).
            assert!(one.get("participants").is_none(), "{one}");
            let text = one.to_string().to_lowercase();
            for p in &want {
                assert!(
                    !text.contains(&p.to_lowercase()[2..]),
                    "study {id} names {p}: {one}"
                );
            }
            let queries = one["queries"].as_array().unwrap();
            assert_eq!(queries.len() as u64, got["queries"].as_u64().unwrap());
            for q in queries {
                let hash: B256 = q["queryHash"].as_str().unwrap().parse().unwrap();
                let r = c.queryOf(U256::from(id), hash).call().await.unwrap();
                assert_eq!(q["cost"], medrec_protocol::mask::to_json(r.cost), "{q}");
                assert_eq!(q["pinnedBlock"], r.pinnedBlock, "{q}");
                assert_eq!(q["answerHash"], r.answerHash.to_string(), "{q}");
            }
        }
        // Issue 16: the indexer cannot tell which studies a patient joined (opt-ins name
        // pseudonyms), so it no longer pretends to: the route is gone, and a patient's
        // timeline names no study. The patient's CLI derives its pseudonyms and asks the chain.
        for (p, _) in &opted {
            let (status, body) = idx.get(&format!("/v1/patients/{p}/studies")).await;
            assert_eq!(status, 404, "{body}");
            let v = idx
                .get_ok_as(*p, &format!("/v1/patients/{p}/timeline"))
                .await;
            assert!(!v.to_string().contains("studyId"), "{v}");
        }
    }
}

const LABS: u64 = 1 << 3;
const NOTES: u64 = 1 << 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_are_indexed_and_served_as_the_registry_holds_them() {
    let w = World::deploy().await;
    let reg = Registry::deploy(&w).await;
    let db = TestDb::create("studies").await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let (p1, p2, p3, p4) = (w.a(P1), w.a(P2), w.a(P3), w.a(P4));

    // Governance opens the research policy as wide as it goes, so that the largest budgets and
    // a cell of 3 may be registered; the committed budget then reaches 2^64 - 1 exactly.
    reg.set_policy(&w, 1, u64::MAX, u64::MAX).await;
    let s1 = reg.register(&w, LABS | NOTES, 5, 1_000).await;
    // Bit 63 and the largest budget left: both above 2^53, strings in JSON.
    let s2 = reg
        .register(&w, NOTES | (1 << 63), 10, u64::MAX - 1_050)
        .await;
    let s3 = reg.register(&w, 1, 3, 50).await;
    reg.approve(&w, s1).await;
    reg.approve(&w, s2).await;
    for p in [p1, p2, p3] {
        reg.opt_in(&w, p, s1).await;
    }
    reg.opt_in(&w, p1, s2).await;
    reg.opt_in(&w, p4, s2).await;
    // A withdrawal and a new opt-in in one block (one batch), and one across blocks.
    let (epoch, t) = reg.signing_state(&w, p2, s1).await;
    let (epoch3, t3) = reg.signing_state(&w, p3, s1).await;
    w.begin_block().await;
    reg.withdraw_at(&w, p2, s1, epoch, t).await;
    reg.opt_in_at(&w, p2, s1, epoch + U24::from(1u8), t + 1)
        .await;
    reg.withdraw_at(&w, p3, s1, epoch3, t3).await;
    w.end_block().await;
    reg.record(&w, s1, "a", 7).await;
    reg.record(&w, s1, "b", 11).await;
    reg.record(&w, s2, "c", 1 << 60).await;
    reg.close(&w, s2).await;
    // A study closed before approval gives its budget back; the approved s2 keeps all of its
    // budget committed though closed.
    reg.close(&w, s3).await;
    // Cancellations of signed consents: a study's and a grant's.
    reg.cancel_signatures(&w, p4, s1).await;
    w.send(
        "cancelSignatures",
        p4,
        w.consent_c().cancelSignatures(p4, w.a(P1)),
    )
    .await;
    signed_grant_then_signed_cancellation(&w).await;
    assert_eq!(s3, 3);
    // Governance tightens the policy again: the latest event is the policy in force.
    reg.set_policy(&w, 11, 5_000_000, 20_000_000).await;

    let head = wait_indexed(&w, &db, &mut idx).await;
    let evs = model::assert_db_matches_chain(&w, &db, head).await;
    let kinds = model::kinds(&evs);
    for k in [
        "study_registered",
        "study_approved",
        "study_closed",
        "opted_in",
        "withdrew",
        "query_answered",
        "study_signatures_cancelled",
        "consent_signatures_cancelled",
        "research_policy_set",
    ] {
        assert!(kinds.get(k).copied().unwrap_or(0) > 0, "no {k}: {kinds:?}");
    }
    reg.assert_api_matches_registry(&w, &db, &idx, head).await;

    // Issue 16 (behaviour changed): the patient's timeline no longer names the opt-ins and
    // the withdrawal; they name p2's pseudonym, which the indexer cannot tie to p2.
    let v = idx
        .get_ok_as(p2, &format!("/v1/patients/{p2}/timeline"))
        .await;
    assert_eq!(v["events"].as_array().unwrap().len(), 0, "{v}");
    let named: Vec<Vec<u8>> = sqlx::query_scalar("SELECT pseudonym FROM ev_opted_in")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    for p in [p1, p2, p3, p4] {
        assert!(!named.contains(&p.to_vec()), "an opt-in names {p}");
    }
    // Unknown and malformed study ids.
    let (status, body) = idx.get("/v1/studies/99").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = idx.get("/v1/studies/first").await;
    assert_eq!(status, 400, "{body}");
}

/// One study transaction of kind `kind`, valid whatever the registry's state (it reads it).
async fn action(w: &World, reg: &Registry, kind: usize, tag: &str) {
    let c = reg.c(w);
    let count = c.studyCount().call().await.unwrap().to::<u64>();
    let patients = [P1, P2, P3, P4].map(|i| w.a(i));
    let p = patients[kind % patients.len()];
    match kind % 6 {
        0 | 1 => {
            // Toggle the patient's opt-in to the first approved study.
            let mut approved = None;
            for id in 1..=count {
                if c.studyOf(U256::from(id)).call().await.unwrap().status as u8 == 2 {
                    approved = Some(id);
                    break;
                }
            }
            let s = approved.expect("an approved study");
            if reg.is_opted_in(w, s, p).await {
                reg.withdraw(w, p, s).await;
            } else {
                reg.opt_in(w, p, s).await;
            }
        }
        2 => {
            reg.register(w, LABS, 5, 100 + kind as u64).await;
        }
        3 => {
            // Approve the newest registered study, or register one.
            let newest = c.studyOf(U256::from(count)).call().await.unwrap();
            if newest.status as u8 == 1 {
                reg.approve(w, count).await;
            } else {
                reg.register(w, NOTES, 6, 500).await;
            }
        }
        4 => reg.cancel_signatures(w, p, 1).await,
        _ => reg.record(w, 1, tag, 1).await,
    }
}

/// Mines `blocks` blocks of study transactions (automine: one per block).
async fn branch(w: &World, reg: &Registry, blocks: usize, offset: usize, tag: &str) {
    for k in 0..blocks {
        action(w, reg, k + offset, &format!("{tag}-{k}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorgs_roll_the_study_tables_back_exactly() {
    let w = World::deploy().await;
    let reg = Registry::deploy(&w).await;
    let s1 = reg.register(&w, LABS, 5, 1_000_000).await;
    reg.approve(&w, s1).await;
    reg.opt_in(&w, w.a(P1), s1).await;
    let db = TestDb::create("study_reorg").await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let head = wait_indexed(&w, &db, &mut idx).await;
    model::assert_db_matches_chain(&w, &db, head).await;

    for depth in 1..=4usize {
        let snap = w.snapshot().await;
        let fork = w.head().await;
        branch(&w, &reg, depth * 2, 0, &format!("orphan-{depth}")).await;
        let orphan_head = wait_indexed(&w, &db, &mut idx).await;
        let (orphan_hash, _) = w.block(orphan_head).await;
        w.revert(snap).await;
        assert_eq!(
            w.head().await,
            fork,
            "evm_revert did not go back to the fork"
        );
        branch(&w, &reg, depth * 2 + 1, 3, &format!("canonical-{depth}")).await;
        let head = wait_indexed(&w, &db, &mut idx).await;
        let (canonical, _) = w.block(orphan_head).await;
        assert_ne!(canonical, orphan_hash, "the branches should differ");
        model::assert_db_matches_chain(&w, &db, head).await;
        reg.assert_api_matches_registry(&w, &db, &idx, head).await;
    }
    assert!(idx.metric("medrec_indexer_reorgs_total").await >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_filled_before_the_study_registry_was_added_says_to_reindex() {
    let w = World::deploy().await;
    let db = TestDb::create("study_added").await;
    let once = Opts {
        api: false,
        exit_at_head: true,
        ..Opts::default()
    };
    let mut idx = Indexer::start(&w, &db, &once).await;
    let st = idx.wait_exit(std::time::Duration::from_secs(30)).await;
    assert!(st.success(), "{}", idx.stderr());
    // As a database filled before the study tables existed: their migration not applied.
    let migrations = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 20261129000001")
        .execute(&db.pool)
        .await
        .unwrap();
    let before = migrations(&db).await;
    Registry::deploy(&w).await;
    let mut again = Indexer::start(&w, &db, &once).await;
    let st = again.wait_exit(std::time::Duration::from_secs(30)).await;
    let log = again.stderr();
    assert_eq!(st.code(), Some(2), "{log}");
    assert!(
        log.contains("indexed from 3 of the deployment's 4 registries; re-index from scratch"),
        "{log}"
    );
    // Refused before anything was written: the binary that filled it still opens it.
    assert_eq!(
        migrations(&db).await,
        before,
        "the refused database was migrated"
    );
}

/// A grant signed by a patient without ether and relayed, then the patient's signed
/// cancellation, which revokes it (issue 14 hole 3 follow-up, A1): the events carry the
/// relationship's signature state (epoch, signedAt), which the model compares column by column.
async fn signed_grant_then_signed_cancellation(w: &World) {
    use alloy::primitives::aliases::{U24, U40};
    use alloy::providers::Provider;
    use alloy::signers::{Signer, local::PrivateKeySigner};
    use alloy::sol_types::SolStruct;
    use medrec_bindings::eip712;

    let key = PrivateKeySigner::random();
    let (patient, grantee, now) = (key.address(), w.a(H2), w.now().await);
    let chain_id = w.p.get_chain_id().await.unwrap();
    let domain = medrec_bindings::consent_domain(chain_id, w.consent);
    let deadline = U256::from(now + DAY);
    let grant = eip712::Grant {
        patient,
        grantee,
        categories: 1 << 3,
        purpose: 1,
        notBefore: U40::ZERO,
        expiresAt: U40::from(now + YEAR),
        signer: patient,
        epoch: U24::ZERO,
        issuedAt: U40::from(now),
        deadline,
    };
    let sig = key
        .sign_hash(&grant.eip712_signing_hash(&domain))
        .await
        .unwrap();
    w.send(
        "grantBySig",
        w.a(STRANGER),
        w.consent_c().grantBySig(
            patient,
            grantee,
            grant.categories,
            grant.purpose,
            grant.notBefore,
            grant.expiresAt,
            patient,
            grant.epoch,
            grant.issuedAt,
            deadline,
            sig.as_bytes().to_vec().into(),
        ),
    )
    .await;
    let cancel = eip712::CancelSignatures {
        patient,
        grantee,
        signer: patient,
        epoch: U24::ZERO,
        issuedAt: U40::from(now + 1),
        deadline,
    };
    let sig = key
        .sign_hash(&cancel.eip712_signing_hash(&domain))
        .await
        .unwrap();
    w.send(
        "cancelBySig",
        w.a(STRANGER),
        w.consent_c().cancelBySig(
            patient,
            grantee,
            patient,
            cancel.epoch,
            cancel.issuedAt,
            deadline,
            sig.as_bytes().to_vec().into(),
        ),
    )
    .await;
    let g = w
        .consent_c()
        .grantOf(patient, grantee)
        .call()
        .await
        .unwrap();
    assert_eq!(
        (g.categories, g.epoch.to::<u32>()),
        (0, 1),
        "revoked by the cancellation"
    );
}
