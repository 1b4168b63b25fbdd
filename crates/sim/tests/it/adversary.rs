//! The adversary tool against a small story on a real anvil, indexed into a real PostgreSQL by
//! the indexer's own pipeline: what it recovers (issue 16's baseline), flipped to "recovers
//! nothing" for each part of the privacy design that has landed (step 4: categories, contents).

use alloy::network::ReceiptResponse;
use alloy::primitives::{Address, B256, U256, aliases::U40, keccak256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use medrec_bindings::record_registry::IRecordRegistry::Pointer;
use medrec_bindings::{ConsentRegistry, RecordRegistry, StudyRegistry};
use medrec_protocol::records::Opening;
use medrec_test_support::{
    Anvil, Mined, PROVIDER, RESEARCHER, ScratchDb, credential, deploy, fund, gov, now,
    wallet_provider,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const LABS: u64 = 1 << 3;
const NOTES: u64 = 1 << 8;
const IMMUNIZATIONS: u64 = 1 << 7;
const TREATMENT: u8 = 1;

fn who(rpc: &str) -> (PrivateKeySigner, DynProvider) {
    let k = PrivateKeySigner::random();
    let p = wallet_provider(rpc, &k, Duration::from_millis(10));
    (k, p)
}

fn ok(r: impl ReceiptResponse, what: &str) {
    assert!(r.status(), "{what} reverted");
}

/// Runs `medrec-sim adversary` with `args`; (exit code, stdout, stderr).
fn adversary(rpc: &str, deployments: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_medrec-sim"))
        .args(["--rpc-url", rpc, "--deployments"])
        .arg(deployments)
        .arg("adversary")
        .args(args)
        .env_remove("MEDREC_ADVERSARY_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The facts the report holds about `patient`: (kind, detail, sources).
fn facts(report: &Value, patient: Address) -> Vec<(String, String, Vec<String>)> {
    report["facts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["patient"].as_str().unwrap().parse::<Address>().unwrap() == patient)
        .flat_map(|p| p["facts"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["detail"].as_str().unwrap().to_string(),
                f["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// Whether `patient` has a fact of `kind` whose detail contains every one of `parts`, read
/// from every one of `sources`.
fn has(report: &Value, patient: Address, kind: &str, parts: &[&str], sources: &[&str]) -> bool {
    facts(report, patient).iter().any(|(k, d, s)| {
        k == kind
            && parts.iter().all(|p| d.contains(p))
            && sources.iter().all(|x| s.iter().any(|y| y == x))
    })
}

/// `patient`'s opt-in to study 1 as its study pseudonym, with a slot for each of `holders`
/// (their own keys are their registered service keys), sent by `relayer`.
async fn relayed_opt_in(
    relayer: &DynProvider,
    studies: Address,
    patient: &PrivateKeySigner,
    holders: &[&PrivateKeySigner],
) -> alloy::rpc::types::TransactionReceipt {
    use alloy::signers::SignerSync;
    use alloy::sol_types::SolStruct;
    use medrec_protocol::study_tags::{self, HolderSlot, OptInContext, ServiceKey};
    let (chain_id, id) = (31337, U256::from(1));
    let pseudonym =
        medrec_protocol::pseudonym::study_pseudonym(&patient.to_bytes(), chain_id, studies, id);
    let ctx = OptInContext {
        chain_id,
        registry: studies,
        study_id: id,
        pseudonym: pseudonym.address(),
    };
    let slots: Vec<HolderSlot> = holders
        .iter()
        .map(|h| {
            let service_key = ServiceKey::from_bytes(&h.to_bytes()).unwrap().public_key();
            HolderSlot {
                holder: h.address(),
                proof: study_tags::membership_proof(
                    &patient.to_bytes(),
                    h.address(),
                    &service_key,
                    &ctx,
                )
                .unwrap(),
                service_key,
            }
        })
        .collect();
    let msg = medrec_bindings::eip712::OptIn {
        studyId: id,
        pseudonym: pseudonym.address(),
        tags: study_tags::build(&ctx, &slots).unwrap().into(),
        epoch: alloy::primitives::aliases::U24::ZERO,
        issuedAt: U40::from(now() - 1),
        deadline: U256::from(now() + 3_600),
    };
    let sig = pseudonym
        .sign_hash_sync(&msg.eip712_signing_hash(&medrec_bindings::study_domain(chain_id, studies)))
        .unwrap();
    StudyRegistry::new(studies, relayer.clone())
        .optInBySig(
            id,
            msg.pseudonym,
            msg.tags,
            msg.epoch,
            msg.issuedAt,
            msg.deadline,
            sig.as_bytes().into(),
        )
        .mined()
        .await
}

/// Anchors `file` for `patient` at `holder`'s registry as category `category`.
async fn anchor(
    holder: &DynProvider,
    at: Address,
    h: Address,
    patient: Address,
    file: &[u8],
    category: u8,
) {
    let hash = B256::from_slice(&Sha256::digest(file));
    // As a gatekeeper does: a fresh random salt per record.
    let commitment = Opening::new(category).commit(patient, h, hash);
    let p = Pointer {
        recordId: medrec_protocol::records::record_id(h, patient, commitment),
        patient,
        commitment,
        locator: "opaque/1".into(),
        supersedes: B256::ZERO,
    };
    let r = RecordRegistry::new(at, holder.clone())
        .anchor(p)
        .mined()
        .await;
    ok(r, "anchor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversary_recovers_todays_story_from_chain_and_indexer_database() {
    let anvil = Anvil::start(&[]);
    let rpc = anvil.url();
    let dir = tempfile::tempdir().unwrap();
    let deployments = dir.path().join("31337.json");
    let g = wallet_provider(&rpc, &gov(), Duration::from_millis(10));
    let d = deploy(&g, gov().address(), &deployments).await;

    // A chain with no patient on it: nothing to recover, and --expect-nothing passes.
    let (code, out, err) = adversary(&rpc, &deployments, &["--expect-nothing"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("event logs"), "{out}");

    let (a, pa) = who(&rpc);
    let (b, pb) = who(&rpc);
    let (r, pr) = who(&rpc);
    let (p, pp) = who(&rpc);
    let (q, pq) = who(&rpc);
    let (gk, pg) = who(&rpc);
    let guardian = gk.address();
    let year = now() + 365 * 86_400;
    for k in [&a, &b, &r, &p, &q, &gk] {
        fund(&g, k.address()).await;
    }
    for (k, role) in [(&a, PROVIDER), (&b, PROVIDER), (&r, RESEARCHER)] {
        credential(&g, d.participant_registry, k.address(), role, year).await;
    }
    let (ta, tb) = (U40::from(0u64), U40::from(now() + 90 * 86_400));

    // Patient P: labs and notes for treatment at A, labs at B, a record at each, a guardian,
    // a study. Patient Q: labs at A only.
    let consent = |x: &DynProvider| ConsentRegistry::new(d.consent_registry, x.clone());
    for (who_p, patient, grantee, cats) in [
        (&pp, p.address(), a.address(), LABS | NOTES),
        (&pp, p.address(), b.address(), LABS),
        (&pq, q.address(), a.address(), LABS),
    ] {
        let rc = consent(who_p)
            .grant(patient, grantee, cats, TREATMENT, ta, tb)
            .mined()
            .await;
        ok(rc, "grant");
    }
    // A household: one account sends ether to two patients, each of whom grants a different
    // hospital from their own account; the payer links them.
    let (fk, pf) = who(&rpc);
    fund(&g, fk.address()).await;
    let (u, pu) = who(&rpc);
    let (v, pv) = who(&rpc);
    for to in [u.address(), v.address()] {
        use alloy::network::TransactionBuilder;
        use alloy::providers::Provider;
        let tx = alloy::rpc::types::TransactionRequest::default()
            .with_to(to)
            .with_value(U256::from(10u128.pow(18)));
        let rc = pf
            .send_transaction(tx)
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        ok(rc, "transfer");
    }
    for (pw, patient, grantee) in [
        (&pu, u.address(), a.address()),
        (&pv, v.address(), b.address()),
    ] {
        let rc = consent(pw)
            .grant(patient, grantee, LABS, TREATMENT, ta, tb)
            .mined()
            .await;
        ok(rc, "grant");
    }
    let rc = consent(&pp)
        .setGuardian(guardian, LABS | IMMUNIZATIONS, ta, tb)
        .mined()
        .await;
    ok(rc, "setGuardian");
    // The guardian tries to grant outside the mandate: the transaction reverts, and its input
    // still says what was asked (sent with a gas limit, so that no estimate refuses it first).
    const MENTAL_HEALTH: u64 = 1 << 10;
    let rc = consent(&pg)
        .grant(p.address(), a.address(), MENTAL_HEALTH, TREATMENT, ta, tb)
        .gas(300_000)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(!rc.status(), "a guardian granted outside the mandate");
    let known = br#"{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"718-7"}]},"valueQuantity":{"value":13.2,"unit":"g/dL"}}"#;
    let other = br#"{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"valueQuantity":{"value":6.1,"unit":"%"}}"#;
    let q_record = br#"{"resourceType":"Observation","status":"final","code":{"text":"Q"}}"#;
    anchor(&pa, d.record_registry, a.address(), p.address(), known, 3).await;
    anchor(&pb, d.record_registry, b.address(), p.address(), other, 3).await;
    anchor(
        &pa,
        d.record_registry,
        a.address(),
        q.address(),
        q_record,
        3,
    )
    .await;
    // Three more of Q's records at A in one transaction, as `medrec import` anchors them: in
    // record-id order (random, as the salts are), whatever the manifest's order.
    let mut run: Vec<Pointer> = (0..3u8)
        .map(|i| {
            let hash = B256::from_slice(&Sha256::digest([i]));
            let commitment = Opening::new(i).commit(q.address(), a.address(), hash);
            let id = medrec_protocol::records::record_id(a.address(), q.address(), commitment);
            Pointer {
                recordId: id,
                patient: q.address(),
                commitment,
                locator: medrec_protocol::records::locator("https://a.example", id),
                supersedes: B256::ZERO,
            }
        })
        .collect();
    run.sort_by_key(|p| p.recordId);
    let rc = RecordRegistry::new(d.record_registry, pa.clone())
        .anchorBatch(run)
        .mined()
        .await;
    ok(rc, "anchorBatch");
    let reason = keccak256("unconscious");
    let rc = consent(&pb)
        .openEmergencyAccess(p.address(), reason, U40::from(3_600u64))
        .mined()
        .await;
    ok(rc, "openEmergencyAccess");
    let studies = d.study_registry.unwrap();
    let rc = StudyRegistry::new(studies, pr.clone())
        .registerStudy(keccak256("protocol"), LABS, 5, 1_000_000)
        .mined()
        .await;
    ok(rc, "registerStudy");
    let rc = StudyRegistry::new(studies, g.clone())
        .approveStudy(U256::from(1))
        .mined()
        .await;
    ok(rc, "approveStudy");
    // P opts in as their study pseudonym, with a slot for each of their hospitals, relayed by
    // an account that pays (issue 16): nothing names P.
    let (relayer, prl) = who(&rpc);
    fund(&g, relayer.address()).await;
    let rc = relayed_opt_in(&prl, studies, &p, &[&a, &b]).await;
    ok(rc, "optInBySig");

    // The indexer's own pipeline mirrors the chain into a scratch database.
    let db = ScratchDb::create("sim_adversary").await;
    let pool = medrec_indexer::db::pool(&db.url, 2).await.unwrap();
    medrec_indexer::db::migrate(&pool).await.unwrap();
    let cfg = medrec_indexer::pipeline::Config {
        rpc_url: rpc.clone(),
        database_url: db.url.clone(),
        contracts: [
            d.participant_registry,
            d.consent_registry,
            d.record_registry,
        ]
        .into_iter()
        .chain(d.study_registry)
        .collect(),
        start_block: d.start_block,
        confirmations: 0,
        reorg_window: 64,
        initial_range: 1_000,
        max_range: 10_000,
        defer_indexes_min_events: 0,
        poll_interval: Duration::from_millis(50),
        exit_at_head: true,
        progress: false,
    };
    medrec_indexer::pipeline::run(cfg, pool.clone(), Arc::new(Default::default()))
        .await
        .unwrap();
    pool.close().await;

    // The candidates: the known record among others the adversary guesses.
    let cands = dir.path().join("candidates");
    std::fs::create_dir_all(cands.join("nested")).unwrap();
    std::fs::write(
        cands.join("nested/hemoglobin.json"),
        [&known[..], b"\n"].concat(),
    )
    .unwrap();
    std::fs::write(cands.join("unrelated.json"), b"{}").unwrap();

    let cands_s = cands.display().to_string();
    let (code, out, err) = adversary(
        &rpc,
        &deployments,
        &[
            "--report-only",
            "--json",
            "--candidates",
            &cands_s,
            "--database-url",
            &db.url,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let (pa_s, pb_s, g_s) = (
        a.address().to_string(),
        b.address().to_string(),
        guardian.to_string(),
    );
    let all = ["logs", "calldata", "indexer db"];
    // Categories at each holder: none (issue 16, step 4: a pointer carries a salted
    // commitment, not its category, in its event, its calldata and the indexer's database).
    for who in [p.address(), q.address(), u.address(), v.address()] {
        assert!(
            !facts(&report, who)
                .iter()
                .any(|(k, _, _)| k == "categories"),
            "no category recovered for {who}: {out}"
        );
    }
    // The order of a run of anchors tells nothing (record-id order); the locators not of the
    // default shape are reported.
    let tried = |attack: &str| {
        report["tried"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["attack"] == attack)
            .unwrap_or_else(|| panic!("{attack} is tried: {out}"))
            .clone()
    };
    let order = tried("categories by the order of anchors");
    assert_eq!(
        (order["read"].as_str(), order["found"].as_str()),
        (
            Some("1 runs of two or more records of one patient in one transaction"),
            Some("0 runs in an order other than record-id order")
        ),
        "{out}"
    );
    let locators = tried("pointer locators");
    let found = locators["found"].as_str().unwrap();
    assert!(
        found.starts_with("3 of another shape") && found.contains("opaque/1"),
        "{out}"
    );
    // Grantees with scope, purpose and period; the stored grant too.
    assert!(
        has(
            &report,
            p.address(),
            "grantees",
            &[&pa_s, "[labs, notes] for treatment"],
            &["logs", "calldata", "views", "indexer db"]
        ),
        "{out}"
    );
    assert!(
        has(
            &report,
            p.address(),
            "grantees",
            &[&pb_s, "[labs] for treatment"],
            &all
        ),
        "{out}"
    );
    // The guardian and their scope.
    assert!(
        has(
            &report,
            p.address(),
            "guardians",
            &[&g_s, "[labs, immunizations]"],
            &all
        ),
        "{out}"
    );
    // The emergency, where and when.
    assert!(
        has(
            &report,
            p.address(),
            "emergencies",
            &["break-glass by", &pb_s, "in block"],
            &all
        ),
        "{out}"
    );
    // The study (issue 16, step 6): nothing recovered. The opt-in names P's study pseudonym;
    // the adversary saw it in the logs, the calldata and the indexer, and tried linking it to
    // P by address and by who paid for it (a relayer), in vain.
    for who in [p.address(), q.address(), u.address()] {
        assert!(
            !facts(&report, who).iter().any(|(k, _, _)| k == "studies"),
            "{out}"
        );
    }
    let tried = report["tried"].as_array().unwrap();
    let studies_tried = tried
        .iter()
        .find(|t| t["attack"] == "studies: pseudonyms linked to patients")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        studies_tried["read"]
            .as_str()
            .unwrap()
            .starts_with("1 study pseudonyms"),
        "{out}"
    );
    assert_eq!(studies_tried["found"], "0 studies of patients", "{out}");
    // Nor to another pseudonym: one relayed opt-in, by a relayer that paid for nothing else.
    let linked_tried = tried
        .iter()
        .find(|t| t["attack"] == "studies: pseudonyms linked to each other")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        linked_tried["found"], "0 pseudonyms in 0 group(s) of one payer",
        "{out}"
    );
    assert_eq!(report["pseudonymLinks"], serde_json::json!([]), "{out}");
    // P is known at both hospitals; Q, at A only, is linked to nothing.
    assert!(
        has(
            &report,
            p.address(),
            "cross-holder links",
            &[&pa_s, &pb_s],
            &["derived"]
        ),
        "{out}"
    );
    assert!(
        !facts(&report, q.address())
            .iter()
            .any(|(k, _, _)| k == "cross-holder links"),
        "{out}"
    );
    // The known record's content: not confirmed by hashing (no content hash is public; each
    // candidate was tried against each commitment with no salt, every category), and the
    // attack is reported as tried.
    for who in [p.address(), q.address(), u.address(), v.address()] {
        assert!(
            !facts(&report, who)
                .iter()
                .any(|(k, _, _)| k == "contents by hash"),
            "no content recovered for {who}: {out}"
        );
    }
    let tried = report["tried"].as_array().unwrap();
    let commitments = tried
        .iter()
        .find(|t| t["attack"] == "content by hash guessing: commitments")
        .unwrap_or_else(|| panic!("the commitment guess is tried: {out}"));
    assert_eq!(
        commitments["found"], "0 records' contents confirmed",
        "{out}"
    );
    assert!(
        !commitments["read"]
            .as_str()
            .unwrap()
            .contains(" 0 pointers"),
        "it had pointers to try: {out}"
    );
    assert!(!out.contains("unrelated.json"), "{out}");
    // The household: linked through the account that paid for both.
    let f_s = fk.address().to_string();
    assert!(
        has(
            &report,
            u.address(),
            "cross-holder links",
            &["same payer", &f_s, &v.address().to_string(), &pa_s, &pb_s],
            &["derived"]
        ),
        "{out}"
    );
    assert!(
        has(
            &report,
            v.address(),
            "cross-holder links",
            &["same payer", &f_s],
            &["derived"]
        ),
        "{out}"
    );
    assert_eq!(report["patients"], 4, "{out}");

    // Text, and --expect-nothing fails with one line naming what was recovered.
    let (code, out, err) = adversary(&rpc, &deployments, &["--report-only"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Summary:") && out.contains("cross-holder links"),
        "{out}"
    );
    let (code, _, err) = adversary(&rpc, &deployments, &["--expect-nothing"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("expected nothing"), "{err}");

    // The reverted grant, from its input alone.
    assert!(
        has(
            &report,
            p.address(),
            "grantees",
            &[&pa_s, "[mental-health]"],
            &["calldata"]
        ),
        "{out}"
    );

    // Bad input, an unreachable node or database: one line, non-zero.
    let (code, _, err) = adversary("http://127.0.0.1:9", &deployments, &["--report-only"]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, _, err) = adversary(
        &rpc,
        &deployments,
        &[
            "--report-only",
            "--database-url",
            "postgres://nobody:x@127.0.0.1:9/none",
        ],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("indexer database"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, _, err) = adversary(
        &rpc,
        &deployments,
        &["--report-only", "--candidates", "/nonexistent"],
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
