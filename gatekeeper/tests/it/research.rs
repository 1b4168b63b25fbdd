//! Research: a cohort with exactly known counts over two holders, consenting patients only.

use crate::harness::{Mined, World, import_key, now, random_nonce, run_cli};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use medrec_bindings::StudyRegistry;
use medrec_protocol::ResearchRequest;
use medrec_protocol::clock::RESEARCH_VALIDITY_SECS;
use medrec_protocol::research::{QUERY_PATH, Query, SNOMED};
use serde_json::{Value, json};

const DIABETES: &str = "44054006";

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

/// `p` opts in to study `id` with a transaction of their own.
async fn opt_in_as(w: &World, p: &PrivateKeySigner, id: U256) {
    StudyRegistry::new(w.studies, w.as_(p))
        .optIn(id)
        .mined()
        .await;
}

/// A diabetes count query's text and hash, as the CLI writes it.
fn diabetes_query(epsilon: Option<f64>, pinned: u64) -> (String, B256) {
    let query = Query::ConditionCount {
        system: SNOMED.into(),
        code: DIABETES.into(),
        epsilon,
        pinned_block: pinned,
    };
    (query.text(), query.hash())
}

/// Uploads a patient's demographics and a diabetes condition to `holder` at `url`.
async fn upload_diabetic(
    w: &World,
    holder: &PrivateKeySigner,
    url: &str,
    patient: Address,
    gender: &str,
    birth: &str,
) {
    w.upload_to(holder, url, patient, 0, &patient_json(gender, birth))
        .await;
    w.upload_to(holder, url, patient, 5, &condition_json())
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

/// The researcher's diabetes count query of `study`, to `holders` (their addresses).
fn ask_diabetes(w: &World, study: &str, holders: &str) -> (i32, Value) {
    ask_diabetes_with(w, study, holders, &[])
}

/// As [`ask_diabetes`], with more arguments (`--pin`, `--epsilon`).
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
    args.extend_from_slice(extra);
    run_cli_json(w, &args)
}

/// (ageBand, sex) -> (count, suppressedAtSomeHolder)
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

fn cell(b: &str, s: &str, n: i64, sup: bool) -> (String, String, i64, bool) {
    (b.into(), s.into(), n, sup)
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

    // The study: min cell 3, budget for three plain queries.
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
            "3",
            "--budget",
            "3",
        ],
    );
    assert_eq!(code, 0, "{reg}");
    let study = reg["data"]["studyId"].as_u64().unwrap().to_string();

    let ask = || ask_diabetes(&w, &study, &holders);

    // Before approval: queries are refused on chain, and patients cannot opt in.
    let early = w.account().await;
    let refused = StudyRegistry::new(w.studies, w.as_(&early))
        .optIn(U256::from(study.parse::<u64>().unwrap()))
        .send()
        .await;
    assert!(refused.is_err(), "no opt-in before approval");
    let (code, e) = ask();
    assert_eq!(code, 3, "{e}");
    assert_eq!(e["error"]["revert"]["name"], "StudyInvalidStatus");
    let (code, _) = run_cli_json(&w, &["-a", "gov", "study", "approve", &study]);
    assert_eq!(code, 0);

    // The cohort: (holder, gender, birth date, opted in).
    let cohort: Vec<(char, &str, &str, bool)> = [
        vec![('a', "female", "1970-05-01", true); 4],
        vec![('a', "male", "1950-01-01", true); 3],
        vec![('a', "female", "1990-01-01", true); 2],
        vec![('a', "male", "1980-01-01", false); 5],
        vec![('b', "female", "1972-03-03", true); 3],
        vec![('b', "female", "1995-07-07", true); 3],
        vec![('b', "male", "1955-01-01", true); 1],
    ]
    .concat();
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let study_id = U256::from(study.parse::<u64>().unwrap());
    let mut withdrawer = None;
    for (at, gender, birth, opted) in &cohort {
        let p = w.account().await;
        let (holder, url) = if *at == 'a' {
            (&holder_a, url_a.as_str())
        } else {
            (&holder_b, url_b.as_str())
        };
        upload_diabetic(&w, holder, url, p.address(), gender, birth).await;
        if *opted {
            opt_in_as(&w, &p, study_id).await;
            if *at == 'a' && *birth == "1970-05-01" && withdrawer.is_none() {
                withdrawer = Some(p.clone());
            }
        }
    }

    // Query 1: exactly the consenting patients, small cells suppressed per holder.
    let (code, q1) = ask();
    assert_eq!(code, 0, "{q1}");
    assert_eq!(
        cells(&q1),
        vec![
            cell("18-39", "female", 3, true),  // 2 at A (suppressed) + 3 at B
            cell("40-64", "female", 7, false), // 4 at A + 3 at B; the 5 non-consenting men never count
            cell("65+", "male", 3, true),      // 3 at A + 1 at B (suppressed)
        ]
    );
    // The receipt is on chain, in one transaction: cost, pinned block, the answer's hash.
    let hash: alloy::primitives::B256 = q1["data"]["queryHash"].as_str().unwrap().parse().unwrap();
    let q = StudyRegistry::new(w.studies, w.as_(&w.gov))
        .queryOf(study_id, hash)
        .call()
        .await
        .unwrap();
    assert_eq!(q.cost, 1);
    assert_eq!(q.pinnedBlock, q1["data"]["pinnedBlock"].as_u64().unwrap());
    assert_eq!(
        q.answerHash,
        keccak256(q1["data"]["combined"].to_string().as_bytes())
    );
    assert_eq!(q1["data"]["answerHash"], json!(q.answerHash));

    // A withdrawal counts from the next block on.
    let p = withdrawer.unwrap();
    StudyRegistry::new(w.studies, w.as_(&p))
        .withdraw(study_id)
        .mined()
        .await;
    let (code, q2) = ask();
    assert_eq!(code, 0, "{q2}");
    assert!(
        cells(&q2).contains(&cell("40-64", "female", 6, false)),
        "{q2}"
    );

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
            "--holders",
            &holders,
        ],
    );
    assert_eq!(code, 2, "{e}");

    // Query 3 uses the last of the budget; query 4 is refused on chain.
    let (code, _) = run_cli_json(
        &w,
        &[
            "-a",
            "researcher",
            "study",
            "query",
            &study,
            "--observation",
            "718-7",
            "--holders",
            &holders,
        ],
    );
    assert_eq!(code, 0);
    let (code, e) = ask();
    assert_eq!(code, 3, "{e}");
    assert_eq!(e["error"]["revert"]["name"], "StudyBudgetExceeded");

    // Query 1 asked again (its pinned block given): the holders' stored answers, not a new
    // count (the withdrawal since does not show), no second receipt, nothing spent.
    let pin = q1["data"]["pinnedBlock"].as_u64().unwrap().to_string();
    let (code, again) = ask_diabetes_with(&w, &study, &holders, &["--pin", &pin]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["data"]["combined"], q1["data"]["combined"]);
    assert_eq!(again["data"]["alreadyRecorded"], true);
    assert_eq!(again["data"]["receiptMatches"], true);
    assert_eq!(again["data"]["receiptTx"], Value::Null);
    let spent = registry.studyOf(study_id).call().await.unwrap().spent;
    assert_eq!(spent, 3);

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
    // one recorded, or a study that was never approved; and a new query once the budget is
    // spent.
    let (text, other) = diabetes_query(None, 1);
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
    let (fresh, fresh_hash) = diabetes_query(None, latest);
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

/// One holder with a key to sign answers, a credentialed researcher and an approved study
/// (minimum cell 1, budget `budget`); keys imported as "researcher", "gov" and "holder".
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
    let password = w.dir.path().join("password").to_string_lossy().to_string();
    let keystore = w
        .dir
        .path()
        .join("keystores/holder")
        .to_string_lossy()
        .to_string();
    w.start_gatekeeper(&[
        "--anchor-keystore",
        &keystore,
        "--anchor-password-file",
        &password,
    ])
    .await;
    let protocol = w.dir.path().join("protocol.txt");
    std::fs::write(&protocol, "one holder").unwrap();
    let (code, reg) = run_cli_json(
        &w,
        &[
            "-a",
            "researcher",
            "study",
            "register",
            "--protocol",
            &protocol.to_string_lossy(),
            "-c",
            "conditions,demographics",
            "--min-cell",
            "1",
            "--budget",
            budget,
        ],
    );
    assert_eq!(code, 0, "{reg}");
    let study = reg["data"]["studyId"].as_u64().unwrap().to_string();
    let study_id = U256::from(study.parse::<u64>().unwrap());
    assert_eq!(
        run_cli_json(&w, &["-a", "gov", "study", "approve", &study]).0,
        0
    );
    (w, researcher, holder, study, study_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn opt_ins_read_before_a_reorg_are_read_again() {
    let (w, _researcher, holder, study, study_id) = one_holder_study("1000").await;
    let gov = w.gov.clone();
    // Two patients with the condition: a woman and a man.
    let (woman, man) = (w.account().await, w.account().await);
    let url = w.gk_url.clone();
    for (p, gender) in [(&woman, "female"), (&man, "male")] {
        upload_diabetic(&w, &holder, &url, p.address(), gender, "1970-01-01").await;
    }
    let me = holder.address().to_string();
    let ask = || ask_diabetes(&w, &study, &me);
    let rpc = w.as_(&gov);
    let snapshot: U256 = rpc.raw_request("evm_snapshot".into(), ()).await.unwrap();

    // The woman opts in; the holder reads that block and answers.
    opt_in_as(&w, &woman, study_id).await;
    let (code, before) = ask();
    assert_eq!(code, 0, "{before}");
    assert_eq!(cells(&before), vec![cell("40-64", "female", 1, false)]);
    let read_to = rpc.get_block_number().await.unwrap();

    // The chain is rewound past that block; on the new branch the man opts in instead, and
    // the branch grows past the height the holder had read.
    let reverted: bool = rpc
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .unwrap();
    assert!(reverted);
    opt_in_as(&w, &man, study_id).await;
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
    assert_eq!(
        cells(&after),
        vec![cell("40-64", "male", 1, false)],
        "the opt-in of the abandoned branch no longer counts"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_is_given_once_and_its_receipt_comes_before_the_next_query() {
    let (w, researcher, holder, study, study_id) = one_holder_study("2000000").await;
    let url = w.gk_url.clone();
    for gender in ["female", "female", "male"] {
        let p = w.account().await;
        upload_diabetic(&w, &holder, &url, p.address(), gender, "1970-01-01").await;
        opt_in_as(&w, &p, study_id).await;
    }
    let registry = StudyRegistry::new(w.studies, w.as_(&w.gov));
    let spent = || async { registry.studyOf(study_id).call().await.unwrap().spent };
    let holder_address = holder.address().to_string();
    let query = |extra: &[&str]| ask_diabetes_with(&w, &study, &holder_address, extra);
    // The CLI's query refused by a holder (exit 10), saying `why`.
    let refused = |extra: &[&str], why: &str| {
        let (code, e) = query(extra);
        assert_eq!(code, 10, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{e}");
    };

    // A noisy count, then the same query again: the same noisy answer (no fresh noise to
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
    let (text, text_hash) = diabetes_query(Some(1.0), latest);
    let me = researcher.address();
    let (status, taken) = ask_directly(&w, &url, &researcher, me, study_id, &text, text_hash).await;
    assert_eq!(status, 200, "{taken}");
    refused(&[], &format!("--pin {latest}"));
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
    let (code, plain) = query(&[]);
    assert_eq!(code, 0, "{plain}");
    assert_eq!(spent().await, 1_500_001);

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
    let (code, e) = ask_diabetes_with(&w, &study, &both, &[]);
    assert_eq!(code, 4, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the receipt for the 1 of 2 holder(s) that answered was recorded"),
        "{msg}"
    );
    assert_eq!(spent().await, 1_500_002);
    let pin = msg
        .rsplit("--pin ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let (code, again) = query(&["--pin", &pin]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["data"]["alreadyRecorded"], true);
    assert_eq!(spent().await, 1_500_002);

    // The budget left (499,998) cannot pay epsilon 0.5: the CLI stops before asking, and the
    // holder refuses it too when asked directly.
    let (code, e) = query(&["--epsilon", "0.5"]);
    assert_eq!(code, 3, "{e}");
    assert_eq!(e["error"]["revert"]["name"], "StudyBudgetExceeded");
    let latest = w.as_(&w.gov).get_block_number().await.unwrap();
    let (text, text_hash) = diabetes_query(Some(0.5), latest);
    let (status, body) = ask_directly(&w, &url, &researcher, me, study_id, &text, text_hash).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("budget_exhausted")),
        "{body}"
    );

    // A new query may not pin an old block (patients who withdrew since would count).
    let _: Value = w
        .as_(&w.gov)
        .raw_request("anvil_mine".into(), (U256::from(70),))
        .await
        .unwrap();
    refused(&["--pin", &latest.to_string()], "pinned_block");
    // Nor when the researcher records a receipt for that old pin first, without asking.
    let own = StudyRegistry::new(w.studies, w.as_(&researcher));
    let (old_text, old_hash) = diabetes_query(None, latest);
    own.recordQuery(study_id, old_hash, 1, latest, B256::repeat_byte(7))
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
    let (text, hash) = diabetes_query(Some(0.1), now_block);
    let (status, body) = ask_directly(&w, &url, &researcher, me, study_id, &text, hash).await;
    assert_eq!(status, 200, "{body}");
    own.recordQuery(study_id, hash, 1, now_block, B256::repeat_byte(8))
        .mined()
        .await;
    refused(&[], "receipt_mismatch");
}

/// A researcher's list of holders is no proof of being one: each holder is asked only while
/// it is a credentialed provider, at the endpoint it registered on chain, by the address it
/// signs with, and once. Anything else is refused before a query is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_goes_only_to_credentialed_holders_at_their_registered_endpoint_once() {
    let (w, _researcher, holder, study, study_id) = one_holder_study("1000").await;
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

    // The holder alone: its one consenting patient, counted once.
    let (code, ok) = ask_diabetes(&w, &study, &me);
    assert_eq!(code, 0, "{ok}");
    assert_eq!(cells(&ok), vec![cell("40-64", "female", 1, false)]);
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
    let (mut w, _researcher, holder, study, study_id) = one_holder_study("1000").await;
    let keystore = w
        .dir
        .path()
        .join("keystores/holder")
        .to_string_lossy()
        .to_string();
    let password = w.dir.path().join("password").to_string_lossy().to_string();
    w.start_gatekeeper(&[
        "--anchor-keystore",
        &keystore,
        "--anchor-password-file",
        &password,
        "--max-head-age",
        "3",
    ])
    .await;
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
