//! Research: noised aggregates of consenting patients only, across holders, from records of
//! the study's categories; the differencing of two pins around one patient's opt-in tried and
//! measured against the e^epsilon bound.

use crate::harness::{Mined, World, import_key, now, random_nonce, run_cli};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use medrec_bindings::StudyRegistry;
use medrec_gatekeeper::research::evaluate::{Tally, release, tally};
use medrec_protocol::ResearchRequest;
use medrec_protocol::clock::RESEARCH_VALIDITY_SECS;
use medrec_protocol::research::{AGE_BANDS, QUERY_PATH, Query, QueryResult, SEXES, SNOMED};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

const DIABETES: &str = "44054006";
const DEMOGRAPHICS: u8 = 0;
const CONDITIONS: u8 = 5;
const MENTAL_HEALTH: u8 = 10;

fn patient_json(gender: &str, birth: &str) -> Vec<u8> {
    json!({"resourceType": "Patient", "gender": gender, "birthDate": birth})
        .to_string()
        .into_bytes()
}

fn condition_json() -> Vec<u8> {
    json!({"resourceType": "Condition", "code": {"coding": [{"system": SNOMED, "code": DIABETES}]}})
        .to_string()
        .into_bytes()
}

/// The chain id of the test chain (anvil's).
const CHAIN_ID: u64 = 31337;

/// `p`'s pseudonym in study `id` (issue 16: participation names it, not `p`).
fn pseudonym_of(w: &World, p: &PrivateKeySigner, id: U256) -> PrivateKeySigner {
    medrec_protocol::pseudonym::study_pseudonym(&p.to_bytes(), CHAIN_ID, w.studies, id)
}

/// The tags of `p`'s opt-in to `id` as `pseudonym`: one slot per holder of `holders` (each
/// registered its own key as its service key), signed by `signer` (the patient, or a forger).
fn tags_of(
    w: &World,
    signer: &PrivateKeySigner,
    pseudonym: Address,
    id: U256,
    holders: &[&PrivateKeySigner],
) -> Vec<u8> {
    use medrec_protocol::study_tags::{self, HolderSlot, OptInContext, ServiceKey};
    let ctx = OptInContext {
        chain_id: CHAIN_ID,
        registry: w.studies,
        study_id: id,
        pseudonym,
    };
    let slots: Vec<HolderSlot> = holders
        .iter()
        .map(|h| {
            let service_key = ServiceKey::from_bytes(&h.to_bytes()).unwrap().public_key();
            HolderSlot {
                holder: h.address(),
                proof: study_tags::membership_proof(
                    &signer.to_bytes(),
                    h.address(),
                    &service_key,
                    &ctx,
                )
                .unwrap(),
                service_key,
            }
        })
        .collect();
    study_tags::build(&ctx, &slots).unwrap()
}

/// Relays `pseudonym`'s signed opt-in to `id` with `tags`, from governance's account (the
/// pseudonym holds no ether).
async fn relay_opt_in(w: &World, pseudonym: &PrivateKeySigner, id: U256, tags: Vec<u8>) {
    use alloy::signers::SignerSync;
    use alloy::sol_types::SolStruct;
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let part = registry
        .participationOf(id, pseudonym.address())
        .call()
        .await
        .unwrap();
    let issued_at = now() - 1;
    let deadline = U256::from(now() + 3600);
    let msg = medrec_bindings::eip712::OptIn {
        studyId: id,
        pseudonym: pseudonym.address(),
        tags: tags.clone().into(),
        epoch: part.epoch,
        issuedAt: alloy::primitives::aliases::U40::from(issued_at),
        deadline,
    };
    let hash = msg.eip712_signing_hash(&medrec_bindings::study_domain(CHAIN_ID, w.studies));
    let sig = pseudonym.sign_hash_sync(&hash).unwrap();
    let r = registry
        .optInBySig(
            id,
            pseudonym.address(),
            tags.into(),
            part.epoch,
            msg.issuedAt,
            deadline,
            sig.as_bytes().into(),
        )
        .mined()
        .await;
    assert!(
        alloy::network::ReceiptResponse::status(&r),
        "optInBySig reverted"
    );
}

/// `p` opts in to study `id` as its pseudonym, with a slot for each of `holders`, relayed.
async fn opt_in_to(w: &World, p: &PrivateKeySigner, id: U256, holders: &[&PrivateKeySigner]) {
    let pseudonym = pseudonym_of(w, p, id);
    let tags = tags_of(w, p, pseudonym.address(), id, holders);
    relay_opt_in(w, &pseudonym, id, tags).await;
}

/// `p` opts in to study `id` with a slot for the world's gatekeeper, relayed.
async fn opt_in_as(w: &World, p: &PrivateKeySigner, id: U256) {
    let holder = w.gk_holder.clone();
    opt_in_to(w, p, id, &[&holder]).await;
}

/// `p`'s pseudonym withdraws from study `id`, by its signature, relayed.
async fn withdraw_as(w: &World, p: &PrivateKeySigner, id: U256) {
    use alloy::signers::SignerSync;
    use alloy::sol_types::SolStruct;
    let pseudonym = pseudonym_of(w, p, id);
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let part = registry
        .participationOf(id, pseudonym.address())
        .call()
        .await
        .unwrap();
    let msg = medrec_bindings::eip712::Withdraw {
        studyId: id,
        pseudonym: pseudonym.address(),
        epoch: part.epoch,
        issuedAt: alloy::primitives::aliases::U40::from(now()),
        deadline: U256::from(now() + 3600),
    };
    let hash = msg.eip712_signing_hash(&medrec_bindings::study_domain(CHAIN_ID, w.studies));
    let sig = pseudonym.sign_hash_sync(&hash).unwrap();
    let r = registry
        .withdrawBySig(
            id,
            pseudonym.address(),
            msg.epoch,
            msg.issuedAt,
            msg.deadline,
            sig.as_bytes().into(),
        )
        .mined()
        .await;
    assert!(
        alloy::network::ReceiptResponse::status(&r),
        "withdrawBySig reverted"
    );
}

/// A diabetes count query of `holders`, its text and hash, as the CLI writes it.
fn diabetes_query(epsilon: f64, holders: &[Address], pinned: u64) -> (String, B256) {
    let query = diabetes(epsilon, holders, pinned);
    (query.text(), query.hash())
}

fn diabetes(epsilon: f64, holders: &[Address], pinned: u64) -> Query {
    let mut holders = holders.to_vec();
    holders.sort();
    Query::ConditionCount {
        system: SNOMED.into(),
        code: DIABETES.into(),
        epsilon,
        holders,
        pinned_block: pinned,
    }
}

/// Uploads a patient's demographics and a diabetes condition to `holder` at `url`, in the
/// demographics and conditions categories.
async fn upload_diabetic(
    w: &World,
    holder: &PrivateKeySigner,
    url: &str,
    patient: Address,
    gender: &str,
    birth: &str,
) {
    upload_diabetic_as(
        w,
        holder,
        url,
        patient,
        gender,
        birth,
        DEMOGRAPHICS,
        CONDITIONS,
    )
    .await;
}

/// As [`upload_diabetic`], with the two records' categories given.
#[allow(clippy::too_many_arguments)]
async fn upload_diabetic_as(
    w: &World,
    holder: &PrivateKeySigner,
    url: &str,
    patient: Address,
    gender: &str,
    birth: &str,
    demographics: u8,
    condition: u8,
) {
    w.upload_to(
        holder,
        url,
        patient,
        demographics,
        &patient_json(gender, birth),
    )
    .await;
    w.upload_to(holder, url, patient, condition, &condition_json())
        .await;
}

fn run_cli_json(w: &World, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = run_cli(w, &a);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

/// The researcher's diabetes count query of `study`, to `holders` (their addresses), at
/// epsilon 3.
fn ask_diabetes(w: &World, study: &str, holders: &str) -> (i32, Value) {
    ask_diabetes_with(w, study, holders, &[])
}

/// As [`ask_diabetes`], with more arguments (`--pin`, `--epsilon`: 3 unless given).
fn ask_diabetes_with(w: &World, study: &str, holders: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "-a",
        "researcher",
        "study",
        "query",
        study,
        "--condition",
        DIABETES,
        "--holders",
        holders,
    ];
    if !extra.contains(&"--epsilon") {
        args.extend(["--epsilon", "3"]);
    }
    args.extend_from_slice(extra);
    run_cli_json(w, &args)
}

/// (ageBand, sex, count, suppressedAtSomeHolder) of every combined cell.
fn cells(v: &Value) -> Vec<(String, String, i64, bool)> {
    v["data"]["combined"]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["ageBand"].as_str().unwrap().to_string(),
                c["sex"].as_str().unwrap().to_string(),
                c["count"].as_i64().unwrap(),
                c["suppressedAtSomeHolder"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The combined cell (count, held back at some holder).
fn cell(v: &Value, band: &str, sex: &str) -> (i64, bool) {
    cells(v)
        .into_iter()
        .find(|(b, s, ..)| b == band && s == sex)
        .map(|(_, _, n, sup)| (n, sup))
        .unwrap_or_else(|| panic!("no cell {band} {sex} in {v}"))
}

/// Asserts the combined cell was shown by every holder, within `slack` of `truth`.
fn shown_near(v: &Value, band: &str, sex: &str, truth: i64, slack: i64) {
    let (n, held_back) = cell(v, band, sex);
    assert!(
        !held_back && (n - truth).abs() <= slack,
        "{band} {sex}: {n} (held back somewhere: {held_back}), truth {truth} ± {slack}"
    );
}

/// Asserts every holder held the combined cell back.
fn held_back(v: &Value, band: &str, sex: &str) {
    assert_eq!(cell(v, band, sex), (0, true), "{band} {sex}");
}

/// The per-holder answers' epsilons.
fn answer_epsilons(v: &Value) -> Vec<f64> {
    v["data"]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["answer"]["epsilon"].as_f64().unwrap())
        .collect()
}

/// Registers a study as the researcher ("researcher" key) over `categories`, minimum cell 5,
/// budget `budget`, and approves it as "gov"; returns its id as typed and as a number.
fn register_approved(w: &World, categories: &str, budget: &str) -> (String, U256) {
    let protocol = w.dir.path().join(format!("protocol-{categories}.txt"));
    std::fs::write(&protocol, format!("a study of {categories}")).unwrap();
    let (code, reg) = run_cli_json(
        w,
        &[
            "-a",
            "researcher",
            "study",
            "register",
            "--protocol",
            &protocol.to_string_lossy(),
            "-c",
            categories,
            "--min-cell",
            "5",
            "--budget",
            budget,
        ],
    );
    assert_eq!(code, 0, "{reg}");
    let study = reg["data"]["studyId"].as_u64().unwrap().to_string();
    assert_eq!(
        run_cli_json(w, &["-a", "gov", "study", "approve", &study]).0,
        0
    );
    let id = U256::from(study.parse::<u64>().unwrap());
    (study, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_count_consenting_patients_only_across_two_holders() {
    let mut w = World::start().await;
    let researcher = w.account().await;
    w.credential_as(researcher.address(), 2).await;
    let holder_b = w.account().await;
    w.credential(holder_b.address()).await;
    let (gov, holder_a) = (w.gov.clone(), w.gk_holder.clone());
    import_key(&w, "researcher", &researcher);
    import_key(&w, "gov", &gov);
    import_key(&w, "holder-a", &holder_a);
    import_key(&w, "holder-b", &holder_b);
    let password = w.dir.path().join("password").to_string_lossy().to_string();
    let ks = |n: &str| {
        w.dir
            .path()
            .join("keystores")
            .join(n)
            .to_string_lossy()
            .to_string()
    };
    let (ks_a, ks_b) = (ks("holder-a"), ks("holder-b"));
    w.start_gatekeeper(&[
        "--anchor-keystore",
        &ks_a,
        "--anchor-password-file",
        &password,
    ])
    .await;
    let db_b = w.extra_db("b").await;
    let (_gk_b, url_b) = w
        .spawn_gatekeeper(
            holder_b.address(),
            &db_b,
            &[
                "--anchor-keystore",
                &ks_b,
                "--anchor-password-file",
                &password,
            ],
        )
        .await;
    let url_a = w.gk_url.clone();
    // Requesters ask a holder only at the endpoint it registered on chain.
    medrec_test_support::register_holder(&w.as_(&holder_b), w.records, &url_b, holder_b.address())
        .await;
    let holders = format!("{},{}", holder_a.address(), holder_b.address());

    // The study: min cell 5, the largest budget governance allows (10 epsilon): two condition
    // counts at epsilon 4 and an observation at 2.
    std::fs::write(
        w.dir.path().join("protocol.txt"),
        "diabetes prevalence by age and sex",
    )
    .unwrap();
    let protocol = w
        .dir
        .path()
        .join("protocol.txt")
        .to_string_lossy()
        .to_string();
    let (code, reg) = run_cli_json(
        &w,
        &[
            "-a",
            "researcher",
            "study",
            "register",
            "--protocol",
            &protocol,
            "-c",
            "conditions,demographics",
            "--min-cell",
            "5",
            "--budget",
            "10000000",
        ],
    );
    assert_eq!(code, 0, "{reg}");
    let study = reg["data"]["studyId"].as_u64().unwrap().to_string();

    let ask = || ask_diabetes_with(&w, &study, &holders, &["--epsilon", "4"]);

    // Before approval: queries are refused on chain, and patients cannot opt in.
    let early = w.account().await;
    let early_id = U256::from(study.parse::<u64>().unwrap());
    let early_pseudonym = pseudonym_of(&w, &early, early_id);
    let refused = StudyRegistry::new(w.studies, w.as_(&w.gov))
        .optInBySig(
            early_id,
            early_pseudonym.address(),
            vec![0u8; medrec_protocol::study_tags::TAGS_LEN].into(),
            alloy::primitives::aliases::U24::ZERO,
            alloy::primitives::aliases::U40::from(now()),
            U256::from(now() + 60),
            vec![0u8; 65].into(),
        )
        .send()
        .await;
    assert!(refused.is_err(), "no opt-in before approval");
    let (code, e) = ask();
    assert_eq!(code, 3, "{e}");
    assert_eq!(e["error"]["revert"]["name"], "StudyInvalidStatus");
    let (code, _) = run_cli_json(&w, &["-a", "gov", "study", "approve", &study]);
    assert_eq!(code, 0);

    // The cohort: (holder, gender, birth date, opted in). Each holder noises at epsilon 2
    // (4 over two holders): a noised cell is off by more than 4 with probability under
    // 1e-4, so cells are sized well above or below the minimum of 5.
    let cohort: Vec<(char, &str, &str, bool)> = [
        vec![('a', "female", "1970-05-01", true); 10],
        vec![('a', "male", "1950-01-01", false); 20],
        vec![('a', "female", "1990-01-01", true); 1],
        vec![('b', "female", "1972-03-03", true); 8],
        vec![('b', "female", "1995-07-07", true); 10],
    ]
    .concat();
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let study_id = U256::from(study.parse::<u64>().unwrap());
    let mut withdrawers = vec![];
    for (at, gender, birth, opted) in &cohort {
        let p = w.account().await;
        let (holder, url) = if *at == 'a' {
            (&holder_a, url_a.as_str())
        } else {
            (&holder_b, url_b.as_str())
        };
        upload_diabetic(&w, holder, url, p.address(), gender, birth).await;
        if *opted {
            // A slot for each holder: each counts the patient only where the records are.
            opt_in_to(&w, &p, study_id, &[&holder_a, &holder_b]).await;
            if *birth == "1995-07-07" {
                withdrawers.push(p.clone());
            }
        }
    }

    // Query 1: consenting patients only, every cell of the domain, noised.
    let (code, q1) = ask();
    assert_eq!(code, 0, "{q1}");
    assert_eq!(cells(&q1).len(), AGE_BANDS.len() * SEXES.len());
    shown_near(&q1, "40-64", "female", 18, 8); // 10 at A + 8 at B
    // One at A (held back there) + 10 at B.
    let (n, held) = cell(&q1, "18-39", "female");
    assert!(held && (n - 10).abs() <= 4, "18-39 female: {n} {held}");
    // The 20 men who never opted in count nowhere.
    let (n, _) = cell(&q1, "65+", "male");
    assert!(n < 10, "65+ male: {n}");
    // The query costs its epsilon once, shared by the two holders: each noised at 2.
    assert_eq!(answer_epsilons(&q1), vec![2.0, 2.0]);
    let hash: alloy::primitives::B256 = q1["data"]["queryHash"].as_str().unwrap().parse().unwrap();
    let q = StudyRegistry::new(w.studies, w.as_(&w.gov))
        .queryOf(study_id, hash)
        .call()
        .await
        .unwrap();
    assert_eq!(q.cost, 4_000_000);
    assert_eq!(q.pinnedBlock, q1["data"]["pinnedBlock"].as_u64().unwrap());
    assert_eq!(
        q.answerHash,
        keccak256(q1["data"]["combined"].to_string().as_bytes())
    );
    assert_eq!(q1["data"]["answerHash"], json!(q.answerHash));

    // Withdrawals count from the next block on: the ten at B born in 1995 leave.
    for p in &withdrawers {
        withdraw_as(&w, p, study_id).await;
    }
    let (code, q2) = ask();
    assert_eq!(code, 0, "{q2}");
    held_back(&q2, "18-39", "female");
    shown_near(&q2, "40-64", "female", 18, 8);

    // An unknown code system and a malformed code are refused before anything is paid.
    let (code, e) = run_cli_json(
        &w,
        &[
            "-a",
            "researcher",
            "study",
            "query",
            &study,
            "--condition",
            DIABETES,
            "--system",
            "read-v2",
            "--epsilon",
            "1",
            "--holders",
            &holders,
        ],
    );
    assert_eq!(code, 2, "{e}");

    // Query 3 uses the last of the budget; query 4 is refused on chain.
    let (code, obs) = run_cli_json(
        &w,
        &[
            "-a",
            "researcher",
            "study",
            "query",
            &study,
            "--observation",
            "718-7",
            "--lower",
            "5",
            "--upper",
            "20",
            "--epsilon",
            "2",
            "--holders",
            &holders,
        ],
    );
    assert_eq!(code, 0, "{obs}");
    let (code, e) = ask();
    assert_eq!(code, 3, "{e}");
    assert_eq!(e["error"]["revert"]["name"], "StudyBudgetExceeded");

    // Query 1 asked again (its pinned block given): the holders' stored answers, not a new
    // draw of noise (the withdrawals since do not show), no second receipt, nothing spent.
    let pin = q1["data"]["pinnedBlock"].as_u64().unwrap().to_string();
    let (code, again) = ask_diabetes_with(&w, &study, &holders, &["--epsilon", "4", "--pin", &pin]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["data"]["combined"], q1["data"]["combined"]);
    assert_eq!(again["data"]["alreadyRecorded"], true);
    assert_eq!(again["data"]["receiptMatches"], true);
    assert_eq!(again["data"]["receiptTx"], Value::Null);
    let spent = registry.studyOf(study_id).call().await.unwrap().spent;
    assert_eq!(spent, 10_000_000);

    // A provider is no researcher.
    let (code, e) = run_cli_json(
        &w,
        &[
            "-a",
            "holder-b",
            "study",
            "register",
            "--protocol",
            &protocol,
            "-c",
            "labs",
        ],
    );
    assert_eq!(code, 3, "{e}");
    assert_eq!(e["error"]["revert"]["name"], "StudyNotResearcher");

    // Forged queries straight to a gatekeeper: another signer, or a query that is not the
    // one recorded, or a study that was never approved; a query that does not name the
    // holder asked; and a new query once the budget is spent.
    let both = [holder_a.address(), holder_b.address()];
    let (text, other) = diabetes_query(4.0, &both, 1);
    let stranger = w.account().await;
    let q1_text = q1["data"]["query"].to_string();
    let me = researcher.address();
    let d = |signer, study, query, hash| {
        let url = url_a.clone();
        let w = &w;
        async move {
            ask_directly(w, &url, signer, me, study, query, hash)
                .await
                .0
        }
    };
    assert_eq!(d(&stranger, study_id, q1_text.clone(), hash).await, 403);
    assert_eq!(d(&researcher, study_id, text.clone(), hash).await, 403);
    assert_eq!(
        d(&researcher, U256::from(99), text.clone(), other).await,
        403
    );
    let latest = w.as_(&gov).get_block_number().await.unwrap();
    let (only_b, only_b_hash) = diabetes_query(1.0, &[holder_b.address()], latest);
    let (status, body) =
        ask_directly(&w, &url_a, &researcher, me, study_id, &only_b, only_b_hash).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_query")),
        "{body}"
    );
    let (fresh, fresh_hash) = diabetes_query(1.0, &both, latest);
    let (status, body) =
        ask_directly(&w, &url_a, &researcher, me, study_id, &fresh, fresh_hash).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("budget_exhausted")),
        "{body}"
    );
}

/// Sends a research query straight to a gatekeeper, signed by `signer` in the name of
/// `researcher`; returns the HTTP status and body.
async fn ask_directly(
    w: &World,
    url: &str,
    signer: &PrivateKeySigner,
    researcher: Address,
    study: U256,
    query: impl AsRef<str>,
    hash: alloy::primitives::B256,
) -> (u16, Value) {
    let health = w.health(url).await;
    let t = now();
    let req = ResearchRequest {
        researcher,
        studyId: study,
        queryHash: hash,
        audience: health.holder,
        nonce: random_nonce(),
        issuedAt: t,
        expiresAt: t + RESEARCH_VALIDITY_SECS,
    };
    let body = medrec_test_support::signed_query(signer, req, query.as_ref(), &w.domain).await;
    let resp = w
        .http
        .post(format!("{url}{QUERY_PATH}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Restarts the holder's gatekeeper of [`one_holder_study`] with its key and `extra` flags.
async fn restart_holder_gatekeeper(w: &mut World, extra: &[&str]) {
    let keystore = w
        .dir
        .path()
        .join("keystores/holder")
        .to_string_lossy()
        .to_string();
    let password = w.dir.path().join("password").to_string_lossy().to_string();
    let mut args = vec![
        "--anchor-keystore",
        &keystore,
        "--anchor-password-file",
        &password,
    ];
    args.extend_from_slice(extra);
    w.start_gatekeeper(&args).await;
}

/// One holder with a key to sign answers, a credentialed researcher and an approved study
/// of conditions and demographics (minimum cell 5, budget `budget`); keys imported as
/// "researcher", "gov" and "holder".
async fn one_holder_study(
    budget: &str,
) -> (World, PrivateKeySigner, PrivateKeySigner, String, U256) {
    let mut w = World::start().await;
    let researcher = w.account().await;
    w.credential_as(researcher.address(), 2).await;
    let (gov, holder) = (w.gov.clone(), w.gk_holder.clone());
    import_key(&w, "researcher", &researcher);
    import_key(&w, "gov", &gov);
    import_key(&w, "holder", &holder);
    restart_holder_gatekeeper(&mut w, &[]).await;
    let (study, study_id) = register_approved(&w, "conditions,demographics", budget);
    (w, researcher, holder, study, study_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn opt_ins_read_before_a_reorg_are_read_again() {
    let (w, _researcher, holder, study, study_id) = one_holder_study("10000000").await;
    let gov = w.gov.clone();
    // Eight women and eight men with the condition (at epsilon 3 a noised count of 8 is shown
    // and one of 0 held back, but for a chance under 1e-5).
    let url = w.gk_url.clone();
    let (mut women, mut men) = (vec![], vec![]);
    for _ in 0..8 {
        let (woman, man) = (w.account().await, w.account().await);
        upload_diabetic(&w, &holder, &url, woman.address(), "female", "1970-01-01").await;
        upload_diabetic(&w, &holder, &url, man.address(), "male", "1970-01-01").await;
        women.push(woman);
        men.push(man);
    }
    let me = holder.address().to_string();
    let ask = || ask_diabetes(&w, &study, &me);
    let rpc = w.as_(&gov);
    let snapshot: U256 = rpc.raw_request("evm_snapshot".into(), ()).await.unwrap();

    // The women opt in; the holder reads those blocks and answers.
    for p in &women {
        opt_in_as(&w, p, study_id).await;
    }
    let (code, before) = ask();
    assert_eq!(code, 0, "{before}");
    shown_near(&before, "40-64", "female", 8, 3);
    held_back(&before, "40-64", "male");
    let read_to = rpc.get_block_number().await.unwrap();

    // The chain is rewound past those blocks; on the new branch the men opt in instead, and
    // the branch grows past the height the holder had read.
    let reverted: bool = rpc
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .unwrap();
    assert!(reverted);
    for p in &men {
        opt_in_as(&w, p, study_id).await;
    }
    while rpc.get_block_number().await.unwrap() <= read_to {
        let _: Value = rpc.raw_request("evm_mine".into(), ()).await.unwrap();
    }
    // The first answer's receipt went with the abandoned branch: the holder answers nothing
    // new until the researcher records it again (the same query, its block pinned).
    let (code, e) = ask();
    assert_eq!(code, 10, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    let pin = before["data"]["pinnedBlock"].as_u64().unwrap().to_string();
    assert!(
        msg.contains("unrecorded_answer") && msg.contains(&format!("--pin {pin}")),
        "{msg}"
    );
    let (code, again) = ask_diabetes_with(&w, &study, &me, &["--pin", &pin]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["data"]["combined"], before["data"]["combined"]);
    assert_eq!(again["data"]["alreadyRecorded"], false);
    let (code, after) = ask();
    assert_eq!(code, 0, "{after}");
    // The opt-ins of the abandoned branch no longer count.
    held_back(&after, "40-64", "female");
    shown_near(&after, "40-64", "male", 8, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_is_given_once_and_its_receipt_comes_before_the_next_query() {
    let (w, researcher, holder, study, study_id) = one_holder_study("3000000").await;
    let url = w.gk_url.clone();
    for gender in ["female", "female", "male"] {
        let p = w.account().await;
        upload_diabetic(&w, &holder, &url, p.address(), gender, "1970-01-01").await;
        opt_in_as(&w, &p, study_id).await;
    }
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let spent = || async { registry.studyOf(study_id).call().await.unwrap().spent };
    let holder_address = holder.address().to_string();
    let only = [holder.address()];
    let query = |extra: &[&str]| ask_diabetes_with(&w, &study, &holder_address, extra);
    // The CLI's query refused by a holder (exit 10), saying `why`.
    let refused = |extra: &[&str], why: &str| {
        let (code, e) = query(extra);
        assert_eq!(code, 10, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{e}");
    };

    // A noised count, then the same query again: the same noised answer (no fresh noise to
    // average away), and the budget spent once.
    let (code, noisy) = query(&["--epsilon", "0.5"]);
    assert_eq!(code, 0, "{noisy}");
    assert_eq!(spent().await, 500_000);
    let pin = noisy["data"]["pinnedBlock"].as_u64().unwrap().to_string();
    for _ in 0..3 {
        let (code, again) = query(&["--epsilon", "0.5", "--pin", &pin]);
        assert_eq!(code, 0, "{again}");
        assert_eq!(
            again["data"]["holders"][0]["answer"],
            noisy["data"]["holders"][0]["answer"]
        );
        assert_eq!(again["data"]["receiptMatches"], true);
    }
    assert_eq!(spent().await, 500_000);

    // A researcher who takes an answer and never records its receipt (a query sent straight
    // to the holder): the holder answers no other query of the study until it is recorded.
    let latest = w.as_(&w.gov).get_block_number().await.unwrap();
    let (text, text_hash) = diabetes_query(1.0, &only, latest);
    let me = researcher.address();
    let (status, taken) = ask_directly(&w, &url, &researcher, me, study_id, &text, text_hash).await;
    assert_eq!(status, 200, "{taken}");
    refused(&["--epsilon", "0.5"], &format!("--pin {latest}"));
    // The same query again, through the CLI: the stored answer, and now its receipt.
    let (code, recorded) = query(&["--epsilon", "1", "--pin", &latest.to_string()]);
    assert_eq!(code, 0, "{recorded}");
    let answer: Value = serde_json::from_str(taken["answer"].as_str().unwrap()).unwrap();
    assert_eq!(
        recorded["data"]["holders"][0]["answer"]["result"],
        answer["result"]
    );
    assert_eq!(
        recorded["data"]["holders"][0]["answer"]["queryHash"],
        answer["queryHash"]
    );
    assert_eq!(recorded["data"]["alreadyRecorded"], false);
    assert_eq!(spent().await, 1_500_000);
    let (code, plain) = query(&["--epsilon", "0.5"]);
    assert_eq!(code, 0, "{plain}");
    assert_eq!(spent().await, 2_000_000);

    // One holder answers, another cannot be reached: the receipt for what was received is
    // recorded anyway (else the answering holder would wait for it forever), and the error
    // says so; asked again with its block, the receipt is already there.
    let down = w.account().await;
    w.credential(down.address()).await;
    medrec_test_support::register_holder(
        &w.as_(&down),
        w.records,
        "http://127.0.0.1:9",
        down.address(),
    )
    .await;
    let both = format!("{holder_address},{}", down.address());
    let (code, e) = ask_diabetes_with(&w, &study, &both, &["--epsilon", "0.5"]);
    assert_eq!(code, 4, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the receipt for the 1 of 2 holder(s) that answered was recorded"),
        "{msg}"
    );
    // The query's whole epsilon is paid, though one holder did not answer.
    assert_eq!(spent().await, 2_500_000);
    let pin = msg
        .rsplit("--pin ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let (code, again) = query(&["--epsilon", "0.5", "--pin", &pin]);
    // Named alone, the holder is asked another query (its holders differ): the budget left
    // pays it.
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["data"]["alreadyRecorded"], false);
    assert_eq!(spent().await, 3_000_000);

    // The budget is spent: the CLI stops before asking, and the holder refuses it too when
    // asked directly.
    let (code, e) = query(&["--epsilon", "0.5"]);
    assert_eq!(code, 3, "{e}");
    assert_eq!(e["error"]["revert"]["name"], "StudyBudgetExceeded");
    let latest = w.as_(&w.gov).get_block_number().await.unwrap();
    let (text, text_hash) = diabetes_query(0.5, &only, latest);
    let (status, body) = ask_directly(&w, &url, &researcher, me, study_id, &text, text_hash).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("budget_exhausted")),
        "{body}"
    );
}

/// Old pins and underpaid receipts: a new query may not pin an old block, even with a receipt
/// recorded for it first; a receipt that pays less than the answer's epsilon stops the holder.
#[tokio::test(flavor = "multi_thread")]
async fn old_pins_and_underpaid_receipts_are_refused() {
    let (w, researcher, holder, study, study_id) = one_holder_study("3000000").await;
    let url = w.gk_url.clone();
    let holder_address = holder.address().to_string();
    let only = [holder.address()];
    let me = researcher.address();
    let refused = |extra: &[&str], why: &str| {
        let (code, e) = ask_diabetes_with(&w, &study, &holder_address, extra);
        assert_eq!(code, 10, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{e}");
    };
    let latest = w.as_(&w.gov).get_block_number().await.unwrap();
    let _: Value = w
        .as_(&w.gov)
        .raw_request("anvil_mine".into(), (U256::from(70),))
        .await
        .unwrap();
    refused(
        &["--epsilon", "0.5", "--pin", &latest.to_string()],
        "pinned_block",
    );
    // Nor when the researcher records a receipt for that old pin first, without asking.
    let own = StudyRegistry::new(w.studies, w.as_(&researcher));
    let (old_text, old_hash) = diabetes_query(0.1, &only, latest);
    own.recordQuery(study_id, old_hash, 100_000, latest, B256::repeat_byte(7))
        .mined()
        .await;
    let (status, body) =
        ask_directly(&w, &url, &researcher, me, study_id, &old_text, old_hash).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("pinned_block")),
        "{body}"
    );

    // An answer whose receipt underpays it (cost 1 for epsilon 0.1): the receipt cannot be
    // rewritten, so the holder answers nothing more of the study.
    let now_block = w.as_(&w.gov).get_block_number().await.unwrap();
    let (text, hash) = diabetes_query(0.1, &only, now_block);
    let (status, body) = ask_directly(&w, &url, &researcher, me, study_id, &text, hash).await;
    assert_eq!(status, 200, "{body}");
    own.recordQuery(study_id, hash, 1, now_block, B256::repeat_byte(8))
        .mined()
        .await;
    refused(&["--epsilon", "0.5"], "receipt_mismatch");
}

/// The differencing attack: a patient's opt-in is public at block B, so a researcher asks the
/// same question pinned at B - 1 and at B. Exact answers showed the patient's condition as a
/// cell going up by one; now each answer is charged in full and noised, and the two answers'
/// distributions stay within e^epsilon of each other (checked by Monte Carlo runs of the
/// holder's own mechanism over the holder's own tallies at the two pins).
#[tokio::test(flavor = "multi_thread")]
async fn differencing_two_pins_around_one_opt_in_tells_nothing_beyond_epsilon() {
    let (w, _researcher, holder, study, study_id) = one_holder_study("10000000").await;
    let url = w.gk_url.clone();
    // Twelve patients already in the study, six of them men over 65 with the condition; the
    // target is one more (so that even the cell's shown counts, 6 against 7, told exactly).
    let mut cohort = HashSet::new();
    let mut men = vec![];
    for i in 0..12 {
        let p = w.account().await;
        let (gender, birth) = if i < 6 {
            men.push(p.clone());
            ("male", "1950-03-03")
        } else {
            ("female", "1970-01-01")
        };
        upload_diabetic(&w, &holder, &url, p.address(), gender, birth).await;
        opt_in_as(&w, &p, study_id).await;
        cohort.insert(p.address());
    }
    let target = w.account().await;
    upload_diabetic(&w, &holder, &url, target.address(), "male", "1950-01-01").await;
    let before = w.as_(&w.gov).get_block_number().await.unwrap();
    opt_in_as(&w, &target, study_id).await;
    let b = w.as_(&w.gov).get_block_number().await.unwrap();
    assert_eq!(b, before + 1, "the opt-in is block B");

    // The attack through the CLI: both pins answered, each paid in full.
    let me = holder.address().to_string();
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let mut answers = vec![];
    for pin in [before, b] {
        let (code, a) = ask_diabetes_with(
            &w,
            &study,
            &me,
            &["--epsilon", "1", "--pin", &pin.to_string()],
        );
        assert_eq!(code, 0, "{a}");
        assert_eq!(
            cells(&a).len(),
            20,
            "every cell of the domain, at both pins"
        );
        answers.push(a);
    }
    assert_eq!(
        registry.studyOf(study_id).call().await.unwrap().spent,
        2_000_000,
        "two pins, two queries, each charged its epsilon"
    );

    // What the holder counts at the two pins (never released): the target's cell differs by
    // one, so exact answers would tell.
    let pool = sqlx::PgPool::connect(&w.db_url()).await.unwrap();
    let block_time = w
        .as_(&w.gov)
        .get_block_by_number(b.into())
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp as i64;
    let mut with_target = cohort.clone();
    with_target.insert(target.address());
    let categories = (1u64 << DEMOGRAPHICS) | (1 << CONDITIONS);
    let q = diabetes(1.0, &[holder.address()], b);
    let t0 = tally(&pool, &q, &cohort, block_time, categories)
        .await
        .unwrap();
    let t1 = tally(&pool, &q, &with_target, block_time, categories)
        .await
        .unwrap();
    let target_cell = AGE_BANDS.iter().position(|b| *b == "65+").unwrap() * SEXES.len()
        + SEXES.iter().position(|s| *s == "male").unwrap();
    let (Tally::Cells(c0), Tally::Cells(c1)) = (&t0, &t1) else {
        panic!("cells");
    };
    assert_eq!((c0[target_cell], c1[target_cell]), (6, 7));
    assert_eq!(c0[..target_cell], c1[..target_cell]);
    assert_eq!(c0[target_cell + 1..], c1[target_cell + 1..]);

    // The mechanism's answers at the two pins, 200,000 runs each with fixed seeds: every
    // outcome of the target's cell seen at least 1,000 times under either (held back, or a
    // shown count) has frequencies within e^1 of each other, allowing four standard errors
    // of sampling (sqrt(1/n0 + 1/n1) on the log of the ratio, at most 0.18). 200,000 runs put
    // every outcome with a probability of 0.5% or more above that floor: held back and the
    // shown counts from 5 to about 10, over 99% of the mass; the bound fails for a mechanism
    // whose ratio is 1.2 times e^epsilon or more on such an outcome, and for exact answers.
    let runs = 200_000;
    let outcome = |t: &Tally, seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen: BTreeMap<Option<i64>, usize> = BTreeMap::new();
        for _ in 0..runs {
            let QueryResult::Cells { cells } = release(t, &q, 5, &mut rng) else {
                panic!("cells")
            };
            *seen.entry(cells[target_cell].count).or_default() += 1;
        }
        seen
    };
    let (d0, d1) = (outcome(&t0, 1), outcome(&t1, 2));
    let mut compared = 0;
    // Every outcome common under either side, so that one seen under one pin only fails;
    // counts smoothed by one.
    for k in d0
        .keys()
        .chain(d1.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (n0, n1) = (*d0.get(k).unwrap_or(&0), *d1.get(k).unwrap_or(&0));
        if n0 < 1_000 && n1 < 1_000 {
            continue;
        }
        let (n0, n1) = ((n0 + 1) as f64, (n1 + 1) as f64);
        let ratio = n1 / n0;
        let bound = (1.0 + 4.0 * (1.0 / n0 + 1.0 / n1).sqrt()).exp();
        assert!(
            ratio <= bound && 1.0 / ratio <= bound,
            "outcome {k:?}: {n0} vs {n1} runs, ratio {ratio:.3}, bound {bound:.3}"
        );
        compared += 1;
    }
    assert!(compared >= 5, "{d0:?} {d1:?}");
    // Without noise the two tallies are told apart every time; with it, the best guess of
    // "opted in at B" from the target's cell is right at most e/(1+e) = 73% of the time.
    let right: usize = d1
        .iter()
        .map(|(k, &n1)| n1.max(*d0.get(k).unwrap_or(&0)))
        .sum();
    let accuracy = right as f64 / (2 * runs) as f64;
    assert!(
        accuracy < 0.74,
        "the attacker guesses right {accuracy:.3} of the time"
    );
    pool.close().await;

    // A query pinned before withdrawals and asked after them counts only the patients still
    // opted in: the seven men over 65 withdraw, and their cell (seven at the pinned block) is
    // held back. At epsilon 8 a noised 1 reaching the minimum of 5, or a noised 7 falling
    // under it, has a probability under 1e-10.
    let pin = w.as_(&w.gov).get_block_number().await.unwrap();
    men.push(target.clone());
    for p in &men {
        withdraw_as(&w, p, study_id).await;
    }
    let (code, a) = ask_diabetes_with(
        &w,
        &study,
        &me,
        &["--epsilon", "8", "--pin", &pin.to_string()],
    );
    assert_eq!(code, 0, "{a}");
    held_back(&a, "65+", "male");
    shown_near(&a, "40-64", "female", 6, 2);
}

/// A holder answers before the receipt is on chain, so each holder bounds what its one
/// possibly unpaid answer can tell: it answers no query above its epsilon cap (1 on its
/// defaults).
#[tokio::test(flavor = "multi_thread")]
async fn a_holder_answers_no_query_above_its_epsilon_cap() {
    let (mut w, researcher, holder, _study, study_id) = one_holder_study("10000000").await;
    restart_holder_gatekeeper(&mut w, &["--research-max-epsilon", "1"]).await;
    let url = w.gk_url.clone();
    let latest = w.as_(&w.gov).get_block_number().await.unwrap();
    let me = researcher.address();
    let (text, hash) = diabetes_query(1.5, &[holder.address()], latest);
    let (status, body) = ask_directly(&w, &url, &researcher, me, study_id, &text, hash).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_query")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("epsilon up to 1"),
        "{body}"
    );
    let (text, hash) = diabetes_query(1.0, &[holder.address()], latest);
    let (status, body) = ask_directly(&w, &url, &researcher, me, study_id, &text, hash).await;
    assert_eq!(status, 200, "{body}");
}

/// A study approved for some categories counts only records of those: a condition in a
/// mental-health record, or demographics in one, count in no study of conditions and
/// demographics, and a study of labs counts no condition at all.
#[tokio::test(flavor = "multi_thread")]
async fn answers_count_only_records_of_the_studys_categories() {
    let (w, researcher, holder, study, study_id) = one_holder_study("10000000").await;
    let (labs_study, labs_id) = register_approved(&w, "labs,demographics", "10000000");
    let url = w.gk_url.clone();
    let mut everyone = HashSet::new();
    // Eight women whose diabetes is in a conditions record, eight whose diabetes is in a
    // mental-health record, and eight men whose Patient resource is in a mental-health record
    // and diabetes in a conditions record.
    for (gender, demographics, condition) in [
        ("female", DEMOGRAPHICS, CONDITIONS),
        ("female", DEMOGRAPHICS, MENTAL_HEALTH),
        ("male", MENTAL_HEALTH, CONDITIONS),
    ] {
        for _ in 0..8 {
            let p = w.account().await;
            let birth = if condition == MENTAL_HEALTH {
                "1990-01-01"
            } else {
                "1970-01-01"
            };
            upload_diabetic_as(
                &w,
                &holder,
                &url,
                p.address(),
                gender,
                birth,
                demographics,
                condition,
            )
            .await;
            opt_in_as(&w, &p, study_id).await;
            opt_in_as(&w, &p, labs_id).await;
            everyone.insert(p.address());
        }
    }
    // The holder's exact tallies: the conditions study sees the first eight women in their
    // cell and the eight men in the unknown cell (their demographics are not the study's),
    // never the mental-health diabetes; the labs study sees nothing.
    let pool = sqlx::PgPool::connect(&w.db_url()).await.unwrap();
    let latest = w.as_(&w.gov).get_block_number().await.unwrap();
    let q = diabetes(3.0, &[holder.address()], latest);
    let now_secs = now() as i64;
    let index = |band: &str, sex: &str| {
        AGE_BANDS.iter().position(|b| *b == band).unwrap() * SEXES.len()
            + SEXES.iter().position(|s| *s == sex).unwrap()
    };
    let conditions = (1u64 << DEMOGRAPHICS) | (1 << CONDITIONS);
    let Tally::Cells(c) = tally(&pool, &q, &everyone, now_secs, conditions)
        .await
        .unwrap()
    else {
        panic!("cells");
    };
    let mut want = vec![0; 20];
    want[index("40-64", "female")] = 8;
    want[index("unknown", "unknown")] = 8;
    assert_eq!(c, want);
    let labs = (1u64 << DEMOGRAPHICS) | (1 << 3);
    let Tally::Cells(c) = tally(&pool, &q, &everyone, now_secs, labs).await.unwrap() else {
        panic!("cells");
    };
    assert_eq!(c, vec![0; 20]);
    pool.close().await;

    // Through the researcher's CLI, at epsilon 3 (a noised 8 is shown, a noised 0 held back).
    let me = holder.address().to_string();
    let (code, a) = ask_diabetes(&w, &study, &me);
    assert_eq!(code, 0, "{a}");
    shown_near(&a, "40-64", "female", 8, 3);
    shown_near(&a, "unknown", "unknown", 8, 3);
    held_back(&a, "18-39", "female");
    held_back(&a, "40-64", "male");
    let (code, a) = ask_diabetes(&w, &labs_study, &me);
    assert_eq!(code, 0, "{a}");
    assert!(
        cells(&a).iter().all(|(_, _, n, held)| *n == 0 && *held),
        "a study of labs counts no condition: {a}"
    );
    let _ = researcher;
}

/// A researcher's list of holders is no proof of being one: each holder is asked only while
/// it is a credentialed provider, at the endpoint it registered on chain, by the address it
/// signs with, and once. Anything else is refused before a query is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_goes_only_to_credentialed_holders_at_their_registered_endpoint_once() {
    let (w, _researcher, holder, study, study_id) = one_holder_study("10000000").await;
    let url = w.gk_url.clone();
    let patient = w.account().await;
    upload_diabetic(&w, &holder, &url, patient.address(), "female", "1970-01-01").await;
    opt_in_as(&w, &patient, study_id).await;
    let me = holder.address().to_string();
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let spent = || async { registry.studyOf(study_id).call().await.unwrap().spent };

    // A server of the attacker's that counts every connection made to it: with its own key
    // it would sign fake counts for the researcher to add to the real ones.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rogue = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let refused = |holders: String, why: &str| {
        let (code, e) = ask_diabetes(&w, &study, &holders);
        assert_eq!(code, 2, "{holders}: {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{holders}: {msg}");
    };

    // A key of the attacker's own: neither credentialed nor registered.
    let stranger = PrivateKeySigner::random();
    refused(
        format!("{me},{}", stranger.address()),
        "is not a credentialed provider now",
    );
    // A provider that registered the attacker's server, then lost its credential: its
    // registration stays on chain.
    let revoked = w.account().await;
    w.credential(revoked.address()).await;
    medrec_test_support::register_holder(&w.as_(&revoked), w.records, &rogue, revoked.address())
        .await;
    medrec_bindings::ParticipantRegistry::new(w.participants, w.as_(&w.gov))
        .revokeCredential(revoked.address())
        .mined()
        .await;
    refused(
        format!("{me},{}", revoked.address()),
        "is not a credentialed provider now",
    );
    // A credentialed provider that registered no gatekeeper.
    let unregistered = w.account().await;
    w.credential(unregistered.address()).await;
    refused(
        format!("{me},{}", unregistered.address()),
        "has registered no gatekeeper",
    );
    // A holder listed twice (once checksummed, once in lower case) would be counted twice.
    refused(format!("{me},{}", me.to_lowercase()), "twice");
    // A URL is not a holder.
    refused(format!("{me},{rogue}"), "bad holder address");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the attacker's server was never contacted"
    );
    assert_eq!(spent().await, 0, "nothing recorded, nothing spent");

    // A credentialed provider that registered another holder's endpoint: the gatekeeper there
    // serves that holder, whose answer is not counted a second time under another name.
    let copycat = w.account().await;
    w.credential(copycat.address()).await;
    medrec_test_support::register_holder(&w.as_(&copycat), w.records, &url, copycat.address())
        .await;
    let (code, e) = ask_diabetes(&w, &study, &format!("{me},{}", copycat.address()));
    assert_eq!(code, 9, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "registered by {}, serves {}",
            copycat.address(),
            holder.address()
        )),
        "{msg}"
    );

    // The holder alone: every cell of its noised answer, once.
    let (code, ok) = ask_diabetes(&w, &study, &me);
    assert_eq!(code, 0, "{ok}");
    assert_eq!(cells(&ok).len(), 20);
    assert_eq!(ok["data"]["holders"].as_array().unwrap().len(), 1);
    let answered: Address = ok["data"]["holders"][0]["holder"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(answered, holder.address());
}

/// A gatekeeper whose node is behind the chain (`503 chain_stale`) gets one line that says so
/// and to try later, in `study query` and in `get` alike.
#[tokio::test(flavor = "multi_thread")]
async fn a_holder_whose_node_is_behind_is_reported_as_such() {
    let (mut w, _researcher, holder, study, study_id) = one_holder_study("3000000").await;
    restart_holder_gatekeeper(&mut w, &["--max-head-age", "3"]).await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    import_key(&w, "reader", &reader);
    const LABS: u64 = 1 << 3;
    w.grant(&patient, holder.address(), LABS, 3_600).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    opt_in_as(&w, &patient, study_id).await;
    let file = w.dir.path().join("obs.json");
    std::fs::write(
        &file,
        crate::harness::fhir_example("Observation-example.json"),
    )
    .unwrap();
    let (code, put) = run_cli_json(
        &w,
        &[
            "-a",
            "holder",
            "put",
            &file.to_string_lossy(),
            "--patient",
            &patient.address().to_string(),
            "-c",
            "labs",
        ],
    );
    assert_eq!(code, 0, "{put}");
    let id = put["data"]["recordId"].as_str().unwrap().to_string();
    // No transaction, so no block, until the node's latest block is older than the bound.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while w.health(&w.gk_url).await.status != medrec_protocol::health::CHAIN_STALE {
        assert!(std::time::Instant::now() < deadline, "never stale");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let behind = |(code, e): (i32, Value)| {
        assert_eq!(code, 4, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("the holder's node is behind the chain (chain_stale)")
                && msg.contains("try again later"),
            "{msg}"
        );
    };
    behind(run_cli_json(&w, &["-a", "reader", "get", &id]));
    behind(ask_diabetes(&w, &study, &holder.address().to_string()));
}

/// Issue 16: opt-ins name study pseudonyms; the holder counts a patient only through its own
/// slot, which holds the patient's signature over the study and the pseudonym. Replayed: eight
/// women opt in with a slot for this holder (counted); eight men with records here opt in with
/// a slot for another holder only (not counted here); and for eight other men with records
/// here, an attacker relays opt-ins of its own pseudonyms whose slots, encrypted to this holder,
/// hold the victim's address, or the attacker's own signature, instead of the victim's
/// signature (ignored: nobody opts a victim in). The events and the opt-in's sender name none
/// of them. (Against the old registry the men's own accounts opted in and were counted.)
#[tokio::test(flavor = "multi_thread")]
async fn a_holder_counts_its_own_patients_through_their_slot_and_no_forged_one() {
    let (w, _researcher, holder, study, study_id) = one_holder_study("10000000").await;
    let url = w.gk_url.clone();
    let other_holder = PrivateKeySigner::random();
    let attacker = w.account().await;
    let (mut women, mut elsewhere, mut victims) = (vec![], vec![], vec![]);
    for i in 0..24 {
        let p = w.account().await;
        let (gender, birth) = match i / 8 {
            0 => ("female", "1970-01-01"),
            1 => ("male", "1990-01-01"),
            _ => ("male", "1970-01-01"),
        };
        upload_diabetic(&w, &holder, &url, p.address(), gender, birth).await;
        match i / 8 {
            0 => women.push(p),
            1 => elsewhere.push(p),
            _ => victims.push(p),
        }
    }
    for p in &women {
        opt_in_as(&w, p, study_id).await;
    }
    for p in &elsewhere {
        opt_in_to(&w, p, study_id, &[&other_holder]).await;
    }
    for (i, v) in victims.iter().enumerate() {
        let fake = PrivateKeySigner::random();
        let tags = if i % 2 == 0 {
            // The victim's public key, with the attacker's own MAC (the attacker cannot make
            // the victim's: that needs the victim's secret or the holder's).
            use medrec_protocol::study_tags::{self, HolderSlot, OptInContext, ServiceKey};
            let ctx = OptInContext {
                chain_id: CHAIN_ID,
                registry: w.studies,
                study_id,
                pseudonym: fake.address(),
            };
            let service_key = ServiceKey::from_bytes(&holder.to_bytes())
                .unwrap()
                .public_key();
            let mut forged = study_tags::membership_proof(
                &attacker.to_bytes(),
                holder.address(),
                &service_key,
                &ctx,
            )
            .unwrap();
            forged[..33]
                .copy_from_slice(&ServiceKey::from_bytes(&v.to_bytes()).unwrap().public_key());
            study_tags::build(
                &ctx,
                &[HolderSlot {
                    holder: holder.address(),
                    service_key,
                    proof: forged,
                }],
            )
            .unwrap()
        } else {
            // The attacker's own proof: it names the attacker, who has no records here.
            tags_of(&w, &attacker, fake.address(), study_id, &[&holder])
        };
        relay_opt_in(&w, &fake, study_id, tags).await;
    }
    // Nothing on chain names a patient: every OptedIn names a pseudonym.
    let logs = w
        .as_(&w.gov)
        .get_logs(
            &alloy::rpc::types::Filter::new()
                .address(w.studies)
                .event_signature(StudyRegistry::OptedIn::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .unwrap();
    assert_eq!(logs.len(), 24);
    let everyone: HashSet<Address> = women
        .iter()
        .chain(&elsewhere)
        .chain(&victims)
        .map(|p| p.address())
        .collect();
    for l in &logs {
        let named = Address::from_word(l.topics()[2]);
        assert!(!everyone.contains(&named), "an opt-in names a patient");
    }

    let me = holder.address().to_string();
    let (code, a) = ask_diabetes_with(&w, &study, &me, &["--epsilon", "8"]);
    assert_eq!(code, 0, "{a}");
    shown_near(&a, "40-64", "female", 8, 3);
    // The men who opted in with a slot for another holder only, and the forged victims.
    held_back(&a, "18-39", "male");
    held_back(&a, "40-64", "male");
    // The holder keeps (study, pseudonym, patient) of its own patients only.
    let pool = sqlx::PgPool::connect(&w.db_url()).await.unwrap();
    let kept: Vec<(String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT study_id, pseudonym, patient FROM gk_study_pseudonyms")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut want: Vec<(String, Vec<u8>, Vec<u8>)> = women
        .iter()
        .map(|p| {
            (
                study.clone(),
                pseudonym_of(&w, p, study_id).address().to_vec(),
                p.address().to_vec(),
            )
        })
        .collect();
    let mut kept = kept;
    kept.sort();
    want.sort();
    assert_eq!(kept, want);
    pool.close().await;

    // A withdrawal since the pinned block still excludes: the women withdraw, and a query
    // pinned before it counts none of them.
    let pin = w.as_(&w.gov).get_block_number().await.unwrap();
    for p in &women {
        withdraw_as(&w, p, study_id).await;
    }
    let (code, b) = ask_diabetes_with(
        &w,
        &study,
        &me,
        &["--epsilon", "1", "--pin", &pin.to_string()],
    );
    assert_eq!(code, 0, "{b}");
    held_back(&b, "40-64", "female");
}

/// Attack review finding 5: the follower rebuilt its mapping at start from the chain with the
/// current service key only, so rotating the key silently stopped counting every earlier
/// opt-in (their slots were encrypted to the old key). It now loads gk_study_pseudonyms back
/// at start: after a restart with a new service key, the eight women who opted in under the
/// old one are still counted, and their withdrawals still exclude them. Checked to
/// fail before (the women were held back after the restart).
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_with_a_new_service_key_still_counts_earlier_opt_ins() {
    let (mut w, _researcher, holder, study, study_id) = one_holder_study("10000000").await;
    let url = w.gk_url.clone();
    let mut women = vec![];
    for _ in 0..8 {
        let p = w.account().await;
        upload_diabetic(&w, &holder, &url, p.address(), "female", "1970-01-01").await;
        women.push(p);
    }
    for p in &women {
        opt_in_as(&w, p, study_id).await;
    }
    let me = holder.address().to_string();
    let (code, before) = ask_diabetes(&w, &study, &me);
    assert_eq!(code, 0, "{before}");
    shown_near(&before, "40-64", "female", 8, 3);

    // The holder rotates its service key: registered first (the gatekeeper checks it at start).
    let service = PrivateKeySigner::random();
    import_key(&w, "service", &service);
    medrec_test_support::register_holder(&w.as_(&holder), w.records, &url, service.address()).await;
    let keystore = w
        .dir
        .path()
        .join("keystores/service")
        .to_string_lossy()
        .to_string();
    let password = w.dir.path().join("password").to_string_lossy().to_string();
    restart_holder_gatekeeper(
        &mut w,
        &[
            "--service-keystore",
            &keystore,
            "--service-password-file",
            &password,
        ],
    )
    .await;
    let (code, after) = ask_diabetes(&w, &study, &me);
    assert_eq!(code, 0, "{after}");
    shown_near(&after, "40-64", "female", 8, 3);
    // Their withdrawals, which name only the pseudonyms, still exclude them.
    for p in &women {
        withdraw_as(&w, p, study_id).await;
    }
    let (code, gone) = ask_diabetes(&w, &study, &me);
    assert_eq!(code, 0, "{gone}");
    held_back(&gone, "40-64", "female");
}
