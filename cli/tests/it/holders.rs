//! Holders' registered gatekeepers (issue 14, hole 6 and hole 10's service key), against a
//! real anvil, PostgreSQL and gatekeeper: `medrec get` talks only to the endpoint a record's
//! holder registered on chain, never to a URL from a pointer's locator; a gatekeeper anchors
//! its access log from its own service key.

use crate::harness::Env;
use alloy::primitives::{Address, B256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use medrec_bindings::RecordRegistry;
use medrec_test_support::{Gatekeeper, Proc, ScratchDb};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const OBSERVATION: &str = r#"{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"718-7"}]},"valueQuantity":{"value":13.2,"unit":"g/dL"}}"#;
/// What the attacker serves, and what its fake pointer anchors: bytes that hash-verify.
const FAKE: &str = r#"{"resourceType":"Observation","status":"final","note":[{"text":"fake"}]}"#;

fn gatekeeper_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_medrec")).with_file_name("medrec-gatekeeper");
    assert!(
        bin.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// A listener that counts every connection made to it and answers each with `FAKE`.
struct Attacker {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn attacker() -> Attacker {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/steal", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{FAKE}",
                FAKE.len()
            );
        }
    });
    Attacker { url, hits }
}

/// A gatekeeper for `holder` on a database of its own; with `extra` arguments.
struct Running {
    url: String,
    _proc: Proc,
    _db: ScratchDb,
}

fn start_gatekeeper(env: &Env, holder: &str, extra: &[&str]) -> Running {
    let db = env.block_on(ScratchDb::create("medrec_cli_holders"));
    let key = env.path(&format!("master-{holder}.key"));
    std::fs::write(&key, alloy::hex::encode([7u8; 32])).unwrap();
    let bin = gatekeeper_bin();
    let deployments = env.path("deployments");
    let rpc = env.rpc_url();
    let gk = Gatekeeper {
        bin: &bin,
        holder: holder.parse().unwrap(),
        database_url: &db.url,
        rpc_url: &rpc,
        master_key: &key,
        deployments: &deployments,
    };
    let (proc_, url) = env.block_on(gk.start(extra));
    Running {
        url,
        _proc: proc_,
        _db: db,
    }
}

#[test]
fn get_never_contacts_a_url_from_a_break_glass_pointers_locator() {
    let env = Env::deployed();
    let (p, a, b) = (
        env.addr("patient"),
        env.addr("hospital-a"),
        env.addr("hospital-b"),
    );
    let svc_a = env.new_account("service-a", false);
    let gk_a = start_gatekeeper(&env, &a, &[]);
    env.json(&[
        "-a",
        "hospital-a",
        "holder",
        "register",
        "--endpoint",
        &gk_a.url,
        "--service-key",
        &svc_a,
    ]);
    let shown = env.json(&["holder", "show", &a]);
    assert_eq!(shown["endpoint"], gk_a.url.as_str());

    // Hospital A holds a lab result of the patient and reads it back through its gatekeeper.
    env.json(&["-a", "patient", "grant", &a, "-c", "labs", "--for", "90d"]);
    let file = env.write("obs.json", OBSERVATION);
    let put = env.json(&[
        "-a",
        "hospital-a",
        "put",
        &file,
        "--patient",
        &p,
        "-c",
        "labs",
        "--gatekeeper-url",
        &gk_a.url,
    ]);
    let own = put["recordId"].as_str().unwrap().to_string();
    let got = env.json(&["-a", "hospital-a", "get", &own]);
    assert_eq!(got["verified"], true);
    assert_eq!(got["breakGlass"], false);

    // Provider B, with no grant, opens break-glass and anchors a fake sexual-health record
    // whose locator is the attacker's listener (and whose hash is of the bytes it serves).
    let thief = attacker();
    env.json(&[
        "-a",
        "hospital-b",
        "break-glass",
        "open",
        &p,
        "--reason",
        "unconscious in the emergency department",
    ]);
    let fake = env.write("fake.json", FAKE);
    let anchored = env.json(&[
        "-a",
        "hospital-b",
        "anchor",
        &fake,
        "--patient",
        &p,
        "-c",
        "sexual-health",
        "--locator",
        &thief.url,
    ]);
    let fake_id = anchored["recordId"].as_str().unwrap().to_string();
    // The chain marks it: anchored under break-glass; the patient's listings say so.
    assert_eq!(env.json(&["pointer", "show", &fake_id])["breakGlass"], true);
    let idx = crate::listings::start_indexer(&env);
    let rb = anchored["tx"]["blockNumber"].as_u64().unwrap().to_string();
    let listed = env.json(&[
        "--indexer-url",
        &idx.url,
        "-a",
        "patient",
        "records",
        "--min-block",
        &rb,
    ]);
    let pointers = listed["pointers"].as_array().unwrap();
    let marked: Vec<bool> = pointers
        .iter()
        .map(|x| x["breakGlass"].as_bool().unwrap())
        .collect();
    assert_eq!(pointers.len(), 2, "{listed}");
    assert_eq!(
        pointers
            .iter()
            .find(|x| x["recordId"] == fake_id.as_str())
            .unwrap()["breakGlass"],
        true
    );
    assert_eq!(
        marked.iter().filter(|m| **m).count(),
        1,
        "only B's is marked"
    );
    let human = env.ok(&[
        "--indexer-url",
        &idx.url,
        "-a",
        "patient",
        "records",
        "--min-block",
        &rb,
    ]);
    assert!(human.contains("ANCHORED UNDER BREAK-GLASS"), "{human}");
    let timeline = env.ok(&[
        "--indexer-url",
        &idx.url,
        "-a",
        "patient",
        "timeline",
        "--min-block",
        &rb,
    ]);
    assert!(timeline.contains("UNDER BREAK-GLASS"), "{timeline}");

    // B cannot take A's id for it either (ids are bound to their holder).
    let e = env.fail(
        2,
        &[
            "-a",
            "hospital-b",
            "anchor",
            &fake,
            "--patient",
            &p,
            "-c",
            "sexual-health",
            "--locator",
            &thief.url,
            "--id",
            &own,
        ],
    );
    assert!(e.contains("is not this record's id"), "{e}");

    // A reads the fake record: B registered no gatekeeper, so there is nowhere to ask; the
    // attacker's URL in the locator is never contacted and nothing is printed as verified.
    let out = env.run(&["--json", "-a", "hospital-a", "get", &fake_id]);
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("\"verified\":true"), "{said}");
    assert!(said.contains("registered no gatekeeper"), "{said}");

    // B registers a gatekeeper of its own: A asks there, and only there.
    let svc_b = env.new_account("service-b", false);
    let gk_b = start_gatekeeper(&env, &b, &[]);
    env.json(&[
        "-a",
        "hospital-b",
        "holder",
        "register",
        "--endpoint",
        &gk_b.url,
        "--service-key",
        &svc_b,
    ]);
    let out = env.run(&["--json", "-a", "hospital-a", "get", &fake_id]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("\"verified\":true"), "{stdout}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        thief.hits.load(Ordering::SeqCst),
        0,
        "the attacker's listener was contacted"
    );
    // A's own record is still served.
    assert_eq!(
        env.json(&["-a", "hospital-a", "get", &own])["verified"],
        true
    );
}

#[test]
fn the_gatekeeper_anchors_its_log_from_its_own_key_while_the_hospital_transacts() {
    let env = Env::deployed();
    let (p, a) = (env.addr("patient"), env.addr("hospital-a"));
    let svc = env.new_account("service-a", true);
    let keystore = env
        .path("keystores/service-a")
        .to_string_lossy()
        .to_string();
    let password = env.path("password").to_string_lossy().to_string();
    let service_args = [
        "--service-keystore",
        keystore.as_str(),
        "--service-password-file",
        password.as_str(),
        "--anchor-every",
        "1",
    ];

    // Not registered yet: the gatekeeper refuses to start and says what to run.
    let db = env.block_on(ScratchDb::create("medrec_cli_holders"));
    std::fs::write(env.path("unstarted.key"), alloy::hex::encode([7u8; 32])).unwrap();
    let (bin, rpc, key, deployments) = (
        gatekeeper_bin(),
        env.rpc_url(),
        env.path("unstarted.key"),
        env.path("deployments"),
    );
    let (mut c, _) = Gatekeeper {
        bin: &bin,
        holder: a.parse().unwrap(),
        database_url: &db.url,
        rpc_url: &rpc,
        master_key: &key,
        deployments: &deployments,
    }
    .command();
    let out = c
        .args(service_args)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("not registered") && err.contains("medrec holder register"),
        "{err}"
    );
    drop(db);

    // Registered, it starts; its endpoint is known once it listens, so the holder registers
    // again with it (same service key).
    let register = |endpoint: &str| {
        env.json(&[
            "-a",
            "hospital-a",
            "holder",
            "register",
            "--endpoint",
            endpoint,
            "--service-key",
            &svc,
        ])
    };
    register("http://127.0.0.1:9");
    let gk = start_gatekeeper(&env, &a, &service_args);
    register(&gk.url);

    // The hospital sends its own transactions while reads fill the log and the service anchors
    // it every second: none collides.
    env.json(&["-a", "patient", "grant", &a, "-c", "labs", "--for", "90d"]);
    let mut ids = vec![];
    for i in 0..6 {
        let f = env.write(
            &format!("r{i}.json"),
            &format!("{{\"resourceType\":\"Observation\",\"id\":\"{i}\"}}"),
        );
        let put = env.json(&[
            "-a",
            "hospital-a",
            "put",
            &f,
            "--patient",
            &p,
            "-c",
            "labs",
            "--gatekeeper-url",
            &gk.url,
        ]);
        ids.push(put["recordId"].as_str().unwrap().to_string());
        env.json(&["-a", "hospital-a", "get", &ids[i]]);
    }

    // The anchors land, sent by the service key, in the holder's name.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let node = ProviderBuilder::new().connect_http(env.rpc_url().parse().unwrap());
        let d: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(env.path("deployments/31337.json")).unwrap(),
        )
        .unwrap();
        let registry: Address = d["recordRegistry"].as_str().unwrap().parse().unwrap();
        let holder: Address = a.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let anchored = RecordRegistry::new(registry, &node)
                .accessLogOf(holder)
                .call()
                .await
                .unwrap();
            if anchored.entries >= 6 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the log was not anchored: {} entries",
                anchored.entries
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let logs = node
            .get_logs(
                &Filter::new()
                    .address(registry)
                    .event_signature(RecordRegistry::AccessLogAnchored::SIGNATURE_HASH)
                    .from_block(0),
            )
            .await
            .unwrap();
        assert!(!logs.is_empty());
        let svc: Address = svc.parse().unwrap();
        for l in &logs {
            let tx: B256 = l.transaction_hash.unwrap();
            let t = node.get_transaction_by_hash(tx).await.unwrap().unwrap();
            assert_eq!(t.inner.signer(), svc, "anchored by the service key");
            let e = l
                .log_decode::<RecordRegistry::AccessLogAnchored>()
                .unwrap()
                .inner
                .data;
            assert_eq!(e.holder, holder, "the log stays the holder's");
        }
    });
}
