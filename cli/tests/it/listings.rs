//! Listings read from the indexer: a real indexer process on a fresh PostgreSQL database.

use crate::harness::{Env, free_port};
use alloy::transports::http::reqwest;
use medrec_test_support::{Proc, ScratchDb, wait_http};
use std::process::{Command, Stdio};
use std::time::Duration;

/// An indexer process reading this test's chain into a fresh database of its own.
pub(crate) struct Indexer {
    pub(crate) url: String,
    // Dropped in this order: the indexer before its database.
    _proc: Proc,
    _db: ScratchDb,
}

pub(crate) fn start_indexer(env: &Env) -> Indexer {
    let db = env.block_on(ScratchDb::create("medrec_cli_it"));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_medrec")).with_file_name("medrec-indexer");
    assert!(
        bin.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        bin.display()
    );
    let port = free_port();
    let child = Command::new(bin)
        .args([
            "--rpc-url",
            &env.rpc_url(),
            "--database-url",
            &db.url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--deployments")
        .arg(env.path("deployments"))
        .arg("--no-progress")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let idx = Indexer {
        url: format!("http://127.0.0.1:{port}"),
        _proc: Proc(child),
        _db: db,
    };
    env.block_on(wait_http(
        &reqwest::Client::new(),
        &idx.url,
        Duration::from_secs(30),
    ));
    idx
}

#[test]
fn grants_patients_records_and_timeline_from_the_indexer() {
    let env = Env::deployed();
    let idx = start_indexer(&env);
    let (a, b, p) = (
        env.addr("hospital-a"),
        env.addr("hospital-b"),
        env.addr("patient"),
    );
    let with = |args: &[&str]| {
        let mut v = vec!["--indexer-url", idx.url.as_str()];
        v.extend_from_slice(args);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let json = |args: &[&str]| {
        let v = with(args);
        env.json(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let g = env.json(&[
        "-a",
        "patient",
        "grant",
        &a,
        "-c",
        "labs,notes",
        "--for",
        "90d",
    ]);
    let block = g["tx"]["blockNumber"].as_u64().unwrap().to_string();
    // Read your writes: wait for the block of the grant.
    // The patient's own listing, signed with their account.
    let grants = json(&["-a", "patient", "grants", "--min-block", &block]);
    assert!(grants["block"].as_u64().unwrap() >= block.parse::<u64>().unwrap());
    assert_eq!(grants["grants"][0]["grantee"], a.as_str());
    assert_eq!(
        grants["grants"][0]["categories"],
        serde_json::json!(["labs", "notes"])
    );
    assert_eq!(grants["grants"][0]["live"], true);

    let file = env.write(
        "obs.json",
        "{\"resourceType\":\"Observation\",\"id\":\"1\"}",
    );
    let anchored = env.json(&[
        "-a",
        "hospital-a",
        "anchor",
        &file,
        "--patient",
        &p,
        "-c",
        "labs",
        "--locator",
        "https://a.example/1",
    ]);
    let rb = anchored["tx"]["blockNumber"].as_u64().unwrap().to_string();
    let records = json(&["-a", "patient", "records", "--min-block", &rb]);
    assert_eq!(records["pointers"][0]["recordId"], anchored["recordId"]);
    assert_eq!(records["pointers"][0]["holder"], a.as_str());

    // Erased by its holder (the chain's half of `medrec forget`, sent as hospital-a): the
    // listing says so, not "category unknown" (attack review, finding 5).
    let d: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("deployments").join("31337.json")).unwrap(),
    )
    .unwrap();
    let registry = d["recordRegistry"].as_str().unwrap();
    let id: alloy::primitives::B256 = anchored["recordId"].as_str().unwrap().parse().unwrap();
    let call = alloy::sol_types::SolCall::abi_encode(&medrec_bindings::RecordRegistry::eraseCall {
        recordId: id,
        patient: p.parse().unwrap(),
    });
    env.rpc("anvil_impersonateAccount", &format!(r#"["{a}"]"#));
    env.rpc(
        "eth_sendTransaction",
        &format!(
            r#"[{{"from": "{a}", "to": "{registry}", "data": "{}"}}]"#,
            alloy::hex::encode_prefixed(call)
        ),
    );
    env.rpc("evm_mine", "[]");
    let eb = u64::from_str_radix(
        env.rpc("eth_blockNumber", "[]")
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap()
    .to_string();
    let records = json(&["-a", "patient", "records", "--min-block", &eb]);
    assert_eq!(records["pointers"][0]["erased"], true, "{records}");
    let human = {
        let v = with(&["-a", "patient", "records", "--min-block", &eb]);
        env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(
        human.contains(&format!("{id}  erased by its holder  held by {a}")),
        "{human}"
    );
    let patients = json(&["-a", "hospital-a", "patients", "--min-block", &rb]);
    assert_eq!(patients["patients"][0]["patient"], p.as_str());

    env.json(&[
        "-a",
        "hospital-b",
        "break-glass",
        "open",
        &p,
        "--reason",
        "ED",
        "--for",
        "1h",
    ]);
    let r = env.json(&["-a", "patient", "revoke", &a]);
    let last = r["tx"]["blockNumber"].as_u64().unwrap().to_string();
    let human = {
        let v = with(&["-a", "patient", "timeline", "--min-block", &last]);
        env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(
        human.contains(&format!("granted {a} labs,notes")),
        "{human}"
    );
    assert!(human.contains(&format!("BREAK-GLASS by {b}")), "{human}");
    assert!(human.contains(&format!("revoked {a}")), "{human}");
    let grants = json(&[
        "-a",
        "patient",
        "grants",
        "--patient",
        &p,
        "--min-block",
        &last,
    ]);
    assert_eq!(
        grants["grants"].as_array().unwrap().len(),
        0,
        "no permission the chain no longer has"
    );

    // A block the indexer will not reach in time is a clear error.
    let v = with(&["-a", "patient", "grants", "--min-block", "999999"]);
    let e = env.fail(4, &v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("not indexed yet"), "{e}");
}

/// Issue 16: the indexer answers a patient's listings only to the patient and a guardian they
/// named, a grantee's list only to the grantee; the CLI signs with `-a` and says who may ask.
#[test]
fn only_the_patient_their_guardian_or_the_grantee_may_list() {
    let env = Env::deployed();
    let idx = start_indexer(&env);
    let (a, p, g) = (
        env.addr("hospital-a"),
        env.addr("patient"),
        env.addr("guardian"),
    );
    let with = |args: &[&str]| {
        let mut v = vec!["--indexer-url", idx.url.as_str()];
        v.extend_from_slice(args);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| with(args);
    env.json(&["-a", "patient", "grant", &a, "-c", "labs", "--for", "90d"]);
    let added = env.json(&[
        "-a", "patient", "guardian", "add", &g, "-c", "labs", "--for", "5y",
    ]);
    let block = added["tx"]["blockNumber"].as_u64().unwrap().to_string();
    for listing in ["grants", "records", "timeline"] {
        // A stranger, and a grantee of the patient, are refused in one line saying who may ask.
        for who in ["stranger", "hospital-a"] {
            let v = run(&["-a", who, listing, "--patient", &p, "--min-block", &block]);
            let e = env.fail(10, &v.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(
                e.contains("the indexer refused")
                    && e.contains("only the patient or a guardian they named"),
                "{listing} by {who}: {e}"
            );
        }
        // The patient and the guardian they named are answered; the timeline, which belongs
        // to no one category, not to a guardian of labs only; nor the records by the indexer,
        // whose categories it no longer knows (issue 16: a pointer carries a commitment): the
        // guardian's come from the holders instead (none registered here).
        if listing == "records" {
            let v = run(&[
                "-a",
                "guardian",
                "--json",
                listing,
                "--patient",
                &p,
                "--min-block",
                &block,
            ]);
            let out = env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>());
            let out: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(out["data"]["fromHolders"], true, "{out}");
        }
        let answered: &[&str] = if listing == "timeline" {
            let v = run(&[
                "-a",
                "guardian",
                listing,
                "--patient",
                &p,
                "--min-block",
                &block,
            ]);
            let e = env.fail(10, &v.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(
                e.contains("a guardian they named for every category"),
                "{e}"
            );
            &["patient"]
        } else {
            &["patient", "guardian"]
        };
        for &who in answered {
            let v = run(&[
                "-a",
                who,
                "--json",
                listing,
                "--patient",
                &p,
                "--min-block",
                &block,
            ]);
            env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
    // A grantee's list: the grantee only.
    let v = run(&[
        "-a",
        "patient",
        "patients",
        "--grantee",
        &a,
        "--min-block",
        &block,
    ]);
    let e = env.fail(10, &v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("only the grantee itself may ask this"), "{e}");
    let v = run(&[
        "-a",
        "hospital-a",
        "--json",
        "patients",
        "--min-block",
        &block,
    ]);
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
    assert_eq!(
        listed["data"]["patients"][0]["patient"],
        p.as_str(),
        "{listed}"
    );
}

#[test]
fn unreachable_indexer_is_one_line() {
    // The request is signed for the deployment before the indexer is asked.
    let env = Env::deployed();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let e = env.fail(
        4,
        &[
            "--indexer-url",
            &dead,
            "-a",
            "patient",
            "grants",
            "--patient",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ],
    );
    assert!(e.contains("cannot reach the indexer"), "{e}");
    let e = env.fail(2, &["--indexer-url", &dead, "grants", "--patient", "0x12"]);
    assert!(e.contains("bad patient address"), "{e}");
}

/// Issue 16: the indexer cannot tell a patient's studies (opt-ins name study pseudonyms), but
/// the patient's own timeline still shows them: the CLI derives the patient's pseudonyms and
/// finds their opt-ins and withdrawals on chain, in block order with the indexer's events.
#[test]
fn the_patients_own_timeline_shows_their_studies() {
    let env = Env::deployed();
    let idx = start_indexer(&env);
    let r = env.new_account("researcher", true);
    env.credential(&r, "researcher", "irb");
    env.write("protocol.txt", "a protocol");
    env.json(&[
        "-a",
        "researcher",
        "study",
        "register",
        "--protocol",
        &env.path_str("protocol.txt"),
        "-c",
        "labs",
        "--min-cell",
        "5",
    ]);
    env.json(&["-a", "gov", "study", "approve", "1"]);
    let opted = env.json(&[
        "-a",
        "patient",
        "study",
        "opt-in",
        "1",
        "--holders",
        "none",
        "--relayer",
        "stranger",
    ]);
    let pseudonym = opted["pseudonym"].as_str().unwrap().to_string();
    let w = env.json(&[
        "-a",
        "patient",
        "study",
        "withdraw",
        "1",
        "--relayer",
        "stranger",
    ]);
    let last = w["tx"]["blockNumber"].as_u64().unwrap().to_string();
    let human = env.ok(&[
        "--indexer-url",
        &idx.url,
        "-a",
        "patient",
        "timeline",
        "--min-block",
        &last,
    ]);
    let opt = human
        .find(&format!("opted in to study 1 (as pseudonym {pseudonym})"))
        .unwrap_or_else(|| panic!("{human}"));
    let left = human
        .find(&format!("withdrew from study 1 (as pseudonym {pseudonym})"))
        .unwrap_or_else(|| panic!("{human}"));
    assert!(opt < left, "{human}");
    let v = env.json(&[
        "--indexer-url",
        &idx.url,
        "-a",
        "patient",
        "timeline",
        "--min-block",
        &last,
    ]);
    assert_eq!(v["studyEvents"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["studyEvents"][0]["type"], "opted-in", "{v}");
    // The indexer's own events name no study.
    assert!(!v["events"].to_string().contains("studyId"), "{v}");
}
