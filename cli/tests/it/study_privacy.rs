//! Issue 16, step 6 (the attack review's findings): what a lying indexer, the RPC node and a
//! holder can learn from a patient's study opt-in, replayed against the `medrec` binary.

use crate::harness::Env;
use medrec_test_support::logging_rpc_proxy as proxy;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// A stand-in HTTP server answering every GET with `body`: a gatekeeper that serves only
/// `GET /v1/service-key`, or an indexer that says what it likes.
fn fixed_server(body: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A registered, approved study 1 (categories labs).
fn study(env: &Env) {
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
}

/// Registers `account` as a holder whose gatekeeper serves a fresh service key; returns it.
fn holder_with_service_key(env: &Env, account: &str) -> medrec_protocol::study_tags::ServiceKey {
    use alloy::signers::local::PrivateKeySigner;
    use medrec_protocol::study_tags::ServiceKey;
    let service = PrivateKeySigner::random();
    let key = ServiceKey::from_bytes(&service.to_bytes()).unwrap();
    let url = fixed_server(format!(
        r#"{{"holder":"{}","publicKey":"{}","address":"{}"}}"#,
        env.addr(account),
        alloy::hex::encode_prefixed(key.public_key()),
        service.address()
    ));
    env.json(&[
        "-a",
        account,
        "holder",
        "register",
        "--endpoint",
        &url,
        "--service-key",
        &service.address().to_string(),
    ]);
    key
}

/// The opt-in's tags, read back from its OptedIn log, and the context they were built for.
fn opted_in_tags(
    env: &Env,
    opt_in: &serde_json::Value,
) -> (medrec_protocol::study_tags::OptInContext, Vec<u8>) {
    use alloy::primitives::{Address, B256, Bytes, LogData, U256};
    use alloy::sol_types::SolEvent;
    let pseudonym: Address = opt_in["pseudonym"].as_str().unwrap().parse().unwrap();
    let tx = opt_in["tx"]["txHash"]
        .as_str()
        .or(opt_in["tx"]["tx_hash"].as_str())
        .unwrap()
        .to_string();
    let rcpt = env.rpc("eth_getTransactionReceipt", &format!("[\"{tx}\"]"));
    let log = &rcpt["logs"][0];
    let topics: Vec<B256> = log["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    let data: Bytes = log["data"].as_str().unwrap().parse().unwrap();
    let ev = medrec_bindings::StudyRegistry::OptedIn::decode_log_data(&LogData::new_unchecked(
        topics, data,
    ))
    .unwrap();
    let chain_id = u64::from_str_radix(
        env.rpc("eth_chainId", "[]")
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let ctx = medrec_protocol::study_tags::OptInContext {
        chain_id,
        registry: log["address"].as_str().unwrap().parse().unwrap(),
        study_id: U256::from(1),
        pseudonym,
    };
    (ctx, ev.tags.to_vec())
}

/// Finding 1 (HIGH): the indexer operator (a consortium member that is, or colludes with, a
/// holder M) answers the patient's signed `/pointers` request with a real pointer of the
/// patient's hospital and an invented one at M, in the same block. Before the fix the CLI
/// encrypted a slot to M (which opened it: patient -> pseudonym -> study, for a patient M
/// never treated); now a holder gets a slot only when the chain's PointerAnchored log shows
/// its pointer for the patient: hospital-a's slot opens, M's does not, and the output names
/// M as left out.
#[test]
fn a_lying_indexer_gets_no_slot_for_a_holder_without_the_patients_record() {
    use alloy::primitives::{Address, B256};
    use medrec_protocol::study_tags::open;
    let env = Env::deployed();
    study(&env);
    let a_key = holder_with_service_key(&env, "hospital-a");
    let m_key = holder_with_service_key(&env, "hospital-b");
    let a: Address = env.addr("hospital-a").parse().unwrap();
    let m: Address = env.addr("hospital-b").parse().unwrap();
    let patient: Address = env.addr("patient").parse().unwrap();
    env.json(&[
        "-a",
        "patient",
        "grant",
        &a.to_string(),
        "-c",
        "labs",
        "--for",
        "90d",
    ]);
    let file = env.write(
        "obs.json",
        r#"{"resourceType":"Observation","status":"final"}"#,
    );
    let anchored = env.json(&[
        "-a",
        "hospital-a",
        "anchor",
        &file,
        "--patient",
        &patient.to_string(),
        "-c",
        "labs",
        "--locator",
        "https://a.example/r/1",
    ]);
    let record: B256 = anchored["recordId"].as_str().unwrap().parse().unwrap();
    let shown = env.json(&["pointer", "show", &record.to_string()]);
    let block = shown["anchoredBlock"]
        .as_u64()
        .or(shown["pointer"]["anchoredBlock"].as_u64())
        .or(anchored["tx"]["blockNumber"].as_u64())
        .or(anchored["tx"]["block_number"].as_u64())
        .unwrap_or_else(|| panic!("no block in {shown} / {anchored}"));
    let pointer = |id: B256, holder: Address| {
        format!(
            r#"{{"recordId":"{id}","patient":"{patient}","holder":"{holder}","commitment":"{}","locator":"x","anchoredBlock":{block},"supersededBy":null}}"#,
            B256::repeat_byte(2)
        )
    };
    let fake = fixed_server(format!(
        r#"{{"block":{block},"patient":"{patient}","pointers":[{},{}]}}"#,
        pointer(record, a),
        pointer(B256::repeat_byte(1), m)
    ));
    let (rpc, log) = proxy(env.port);
    let out = env
        .cmd(&[
            "--json",
            "--indexer-url",
            &fake,
            "-a",
            "patient",
            "study",
            "opt-in",
            "1",
            "--relayer",
            "stranger",
        ])
        .env("MEDREC_RPC_URL", &rpc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["data"].clone();
    // The check on chain asks the node about neither the patient nor their record.
    let bodies: Vec<String> = log.lock().unwrap().drain(..).collect();
    for x in [patient.to_string(), record.to_string()] {
        assert!(
            !bodies
                .iter()
                .any(|b| b.to_ascii_lowercase().contains(&hex(&x))),
            "{x} named to the node: {bodies:#?}"
        );
    }
    let (ctx, tags) = opted_in_tags(&env, &v);
    assert_eq!(open(&m_key, m, &ctx, &tags), None, "M opened a slot");
    assert_eq!(open(&a_key, a, &ctx, &tags), Some(patient));
    assert_eq!(v["holders"], serde_json::json!([a.to_string()]), "{v}");
    assert_eq!(
        v["omittedHolders"],
        serde_json::json!([m.to_string()]),
        "{v}"
    );
    // The human output says who got a slot and who was left out.
    let out = env
        .cmd(&[
            "--indexer-url",
            &fake,
            "-a",
            "patient",
            "study",
            "opt-in",
            "1",
            "--sign-only",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("left out") && err.contains(&m.to_string()),
        "{err}"
    );
}

fn hex(a: &str) -> String {
    a.trim_start_matches("0x").to_ascii_lowercase()
}

/// Finding 2 (MEDIUM): the RPC node saw a patient's study pseudonyms together: `study mine`
/// asked isOptedIn once per study with each pseudonym, and `timeline` sent one eth_getLogs
/// whose topics listed every one (with the indexer request signed by the patient's account in
/// the same run). Now both read all of the registry's participation events and match the
/// pseudonyms locally: no request names any of them, and both still find the patient's.
#[test]
fn the_node_is_never_asked_about_a_patients_pseudonyms() {
    let env = Env::deployed();
    let idx = crate::listings::start_indexer(&env);
    let r = env.new_account("researcher", true);
    env.credential(&r, "researcher", "irb");
    env.write("protocol.txt", "a protocol");
    for s in ["1", "2", "3"] {
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
        env.json(&["-a", "gov", "study", "approve", s]);
    }
    let mut pseudonyms = vec![];
    for s in ["1", "3"] {
        let o = env.json(&[
            "-a",
            "patient",
            "study",
            "opt-in",
            s,
            "--holders",
            "none",
            "--relayer",
            "stranger",
        ]);
        pseudonyms.push(o["pseudonym"].as_str().unwrap().to_string());
    }
    let (url, log) = proxy(env.port);
    let naming = |bodies: &[String]| -> Vec<String> {
        bodies
            .iter()
            .filter(|b| {
                let b = b.to_ascii_lowercase();
                pseudonyms.iter().any(|p| b.contains(&hex(p)))
            })
            .cloned()
            .collect()
    };
    let out = env
        .cmd(&["--json", "-a", "patient", "study", "mine"])
        .env("MEDREC_RPC_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["studies"], serde_json::json!([1, 3]), "{v}");
    let mine: Vec<String> = log.lock().unwrap().drain(..).collect();
    assert!(!mine.is_empty());
    assert_eq!(naming(&mine), Vec::<String>::new(), "study mine");
    let out = env
        .cmd(&[
            "--json",
            "--indexer-url",
            &idx.url,
            "-a",
            "patient",
            "timeline",
        ])
        .env("MEDREC_RPC_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["data"]["studyEvents"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    let tl: Vec<String> = log.lock().unwrap().drain(..).collect();
    assert_eq!(naming(&tl), Vec::<String>::new(), "timeline");
}

/// Finding 2 (MEDIUM), the opt-in: the node was asked gatekeeperOf and isCredentialed for
/// exactly the patient's holders, in the run that also reads the pseudonym's participation:
/// the holder set the eight fixed slots hide. Now every registered holder is read alike: the
/// requests (before the relayer's transaction) name the patient's holder and another
/// registered holder equally often.
#[test]
fn the_node_is_not_shown_which_holders_an_opt_in_reaches() {
    let env = Env::deployed();
    study(&env);
    holder_with_service_key(&env, "hospital-a");
    holder_with_service_key(&env, "hospital-b");
    let a = env.addr("hospital-a");
    let b = env.addr("hospital-b");
    let (rpc, log) = proxy(env.port);
    let out = env
        .cmd(&[
            "--json",
            "-a",
            "patient",
            "study",
            "opt-in",
            "1",
            "--holders",
            &a,
            "--relayer",
            "stranger",
        ])
        .env("MEDREC_RPC_URL", &rpc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bodies: Vec<String> = log
        .lock()
        .unwrap()
        .drain(..)
        .filter(|b| !b.to_ascii_lowercase().contains("sendrawtransaction"))
        .collect();
    let naming = |x: &str| {
        bodies
            .iter()
            .filter(|b| b.to_ascii_lowercase().contains(&hex(x)))
            .count()
    };
    assert!(naming(&a) > 0);
    assert_eq!(
        naming(&a),
        naming(&b),
        "the patient's holder stands out: {bodies:#?}"
    );
}

/// Finding 3 (LOW): any provider can register another holder's service key (RecordRegistry
/// asks no proof of possession), and two holders sharing a key got identical slots. The CLI
/// now refuses to encrypt to a service key that two holders registered (exit 10), naming both.
#[test]
fn a_service_key_registered_by_two_holders_is_refused() {
    let env = Env::deployed();
    study(&env);
    let key = holder_with_service_key(&env, "hospital-a");
    let a = env.addr("hospital-a");
    let shared = medrec_protocol::study_tags::address_of_public_key(&key.public_key())
        .unwrap()
        .to_string();
    env.json(&[
        "-a",
        "hospital-b",
        "holder",
        "register",
        "--endpoint",
        "http://127.0.0.1:9",
        "--service-key",
        &shared,
    ]);
    let e = env.fail(
        10,
        &[
            "-a",
            "patient",
            "study",
            "opt-in",
            "1",
            "--holders",
            &a,
            "--relayer",
            "stranger",
        ],
    );
    assert!(
        e.contains("registered by") && e.contains(&env.addr("hospital-b")),
        "{e}"
    );
}

/// Finding 6 (LOW): a study message's signed times fingerprinted the client (issuedAt its
/// clock, the deadline its `--deadline`). They are now the chain's latest block time rounded
/// down to the minute and one fixed window: with the chain's clock a week and 17 s ahead of
/// this machine's, the opt-in is issued at the chain's minute, due a day later, and a
/// `--deadline` of the signer's choosing is refused. Checked to fail before (issued at this
/// machine's clock).
#[test]
fn a_study_message_is_issued_at_the_chains_minute_with_one_window() {
    let env = Env::deployed();
    study(&env);
    env.advance(7 * 86_400 + 17);
    let latest = env.rpc("eth_getBlockByNumber", r#"["latest", false]"#);
    let latest = u64::from_str_radix(
        latest["timestamp"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    env.ok(&[
        "-a",
        "patient",
        "study",
        "opt-in",
        "1",
        "--holders",
        "none",
        "--sign-only",
        "--out",
        "opt-in.json",
    ]);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("opt-in.json")).unwrap()).unwrap();
    let number = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap()
    };
    let issued = number(&file["message"]["issuedAt"]);
    let deadline = number(&file["message"]["deadline"]);
    assert_eq!(issued, latest - latest % 60, "{file}");
    assert_eq!(
        deadline - issued,
        medrec_protocol::study_tags::STUDY_SIGNATURE_WINDOW
    );
    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "study",
            "withdraw",
            "1",
            "--sign-only",
            "--deadline",
            "2h",
        ],
    );
    assert!(e.contains("same deadline"), "{e}");
}

/// Finding 7 (LOW): a hospital relaying a patient's opt-in shows the chain that the pseudonym
/// is its patient. The CLI refuses a credentialed provider as `--relayer` (exit 2, one line
/// saying why), before anything is sent. Checked to fail before (the hospital relayed it).
#[test]
fn a_credentialed_provider_is_refused_as_relayer() {
    let env = Env::deployed();
    study(&env);
    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "study",
            "opt-in",
            "1",
            "--holders",
            "none",
            "--relayer",
            "hospital-a",
        ],
    );
    assert!(e.contains("credentialed provider"), "{e}");
    let mine = env.json(&["-a", "patient", "study", "mine"]);
    assert_eq!(mine["studies"], serde_json::json!([]), "{mine}");
}

/// `check` asks the node for the grantee's readable mask and checks the category itself: the
/// node is never told which category is asked about (the chain's commitments hide categories;
/// canRead(category) would hand one to whoever runs the node). Failed before: `check` called
/// canRead, whose input names the category.
#[test]
fn the_node_is_not_told_which_category_a_check_asks_about() {
    use alloy::sol_types::SolCall;
    use medrec_bindings::ConsentRegistry;
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"]);
    let (rpc, log) = proxy(env.port);
    for (category, allowed) in [("labs", true), ("mental-health", false)] {
        let out = env
            .cmd(&[
                "--json",
                "check",
                "--grantee",
                &h,
                "-c",
                category,
                "--patient",
                &p,
            ])
            .env("MEDREC_RPC_URL", &rpc)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["data"]["allowed"], allowed, "{category}: {v}");
    }
    let can_read = alloy::hex::encode(ConsentRegistry::canReadCall::SELECTOR);
    let bodies: Vec<String> = log.lock().unwrap().drain(..).collect();
    assert!(!bodies.is_empty(), "the proxy saw nothing");
    assert!(
        !bodies
            .iter()
            .any(|b| b.to_ascii_lowercase().contains(&can_read)),
        "canRead (with its category) sent to the node: {bodies:#?}"
    );
}
