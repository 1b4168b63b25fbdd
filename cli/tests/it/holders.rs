//! Holders' registered gatekeepers (issue 14, hole 6 and hole 10's service key), against a
//! real anvil, PostgreSQL and gatekeeper: `medrec get` talks only to the endpoint a record's
//! holder registered on chain, never to a URL from a pointer's locator; a gatekeeper anchors
//! its access log from its own service key. `get` and `access-log` send signed requests only to
//! a registered endpoint that is a plain http(s) URL of a credentialed holder, and follow no
//! redirect.

use crate::harness::Env;
use alloy::primitives::{Address, B256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use medrec_bindings::RecordRegistry;
use medrec_test_support::{Gatekeeper, Mined, Proc, ScratchDb};
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
    let l = listener(|| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{FAKE}",
            FAKE.len()
        )
    });
    Attacker {
        url: format!("{}/steal", l.url),
        hits: l.hits,
    }
}

/// A listener at `url` (no path) that counts every connection made to it and answers each
/// with the raw HTTP response `reply` makes.
fn listener(reply: impl Fn() -> String + Send + 'static) -> Attacker {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(reply().as_bytes());
        }
    });
    Attacker { url, hits }
}

/// A listener that answers every request with a 307 redirect to `to` (which keeps the method
/// and the body: a client that follows it posts the signed request there).
fn redirector(to: &str) -> Attacker {
    let to = to.to_string();
    listener(move || {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    })
}

/// A provider `name` whose key the test holds (to send what the CLI would refuse to), imported
/// as a keystore, funded and credentialed; its address.
fn provider_with_key(env: &Env, name: &str) -> (String, PrivateKeySigner) {
    let key = PrivateKeySigner::random();
    medrec_test_support::import_key(env.cmd(&[]), env.dir.path(), name, &key);
    let addr = key.address().to_string();
    env.rpc(
        "anvil_setBalance",
        &format!(r#"["{addr}","0x56bc75e2d63100000"]"#),
    );
    env.credential(&addr, "provider", name);
    (addr, key)
}

/// The deployment's RecordRegistry.
fn record_registry(env: &Env) -> Address {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("deployments/31337.json")).unwrap())
            .unwrap();
    d["recordRegistry"].as_str().unwrap().parse().unwrap()
}

/// `holder` anchors a lab record of `patient` it was granted (the locator an opaque
/// reference); its id.
fn anchored_record(env: &Env, holder: &str, patient: &str, text: &str) -> String {
    let h = env.addr(holder);
    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "90d"]);
    let file = env.write(
        &format!("{holder}-{text}.json"),
        &format!("{{\"resourceType\":\"Observation\",\"note\":[{{\"text\":\"{text}\"}}]}}"),
    );
    let a = env.json(&[
        "-a",
        holder,
        "anchor",
        &file,
        "--patient",
        patient,
        "-c",
        "labs",
        "--locator",
        "ref-1",
    ]);
    a["recordId"].as_str().unwrap().to_string()
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

/// Review of hole 6: `access-log` posted the patient's signed request to `--gatekeeper-url`,
/// defaulting to MEDREC_GATEKEEPER_URL or localhost, whoever listened there. It now reads
/// only at the endpoint the holder registered. Before, the attacker's listener received the
/// request from the environment's URL and from the flag.
#[test]
fn access_log_is_read_only_at_the_holders_registered_endpoint() {
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
    let id = put["recordId"].as_str().unwrap().to_string();
    env.json(&["-a", "hospital-a", "get", &id]);

    let thief = attacker();
    // The environment names the attacker: the registered gatekeeper is asked all the same.
    let out = env
        .cmd(&["--json", "-a", "patient", "access-log", "--holder", &a])
        .env("MEDREC_GATEKEEPER_URL", &thief.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["verified"], true, "{v}");
    assert_eq!(v["data"]["mine"].as_array().unwrap().len(), 1, "{v}");

    // An explicit URL other than the registration is refused before any request.
    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "access-log",
            "--holder",
            &a,
            "--gatekeeper-url",
            &thief.url,
        ],
    );
    assert!(
        e.contains("is not the endpoint") && e.contains(&gk_a.url),
        "{e}"
    );
    // The registered one, as given to `holder register`, is accepted.
    let with_slash = format!("{}/", gk_a.url);
    env.json(&[
        "-a",
        "patient",
        "access-log",
        "--holder",
        &a,
        "--gatekeeper-url",
        &with_slash,
    ]);

    // A holder that registered nothing: refused in one line, nobody asked.
    let e = env
        .cmd(&["-a", "patient", "access-log", "--holder", &b])
        .env("MEDREC_GATEKEEPER_URL", &thief.url)
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(stderr.contains("registered no gatekeeper"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        thief.hits.load(Ordering::SeqCst),
        0,
        "the attacker's listener was contacted"
    );
}

/// Review of hole 6: the CLI followed redirects (a registered endpoint could pass the signed
/// request on to any URL) and sent requests to any registered string (the registry checks only
/// its length): one with user info, a query or a fragment, or of another scheme. Now no
/// redirect is followed (exit 10) and such an endpoint is refused before any request (exit 2),
/// by `get` and `access-log`; `holder register` refuses to register one. Before, the redirect
/// target and the listener behind the odd URLs received the requests.
#[test]
fn no_redirect_is_followed_and_odd_endpoints_are_refused_before_any_request() {
    let env = Env::deployed();
    let p = env.addr("patient");
    let (c, c_key) = provider_with_key(&env, "hospital-c");
    let id = anchored_record(&env, "hospital-c", &p, "c's lab result");
    let thief = attacker();
    let redirect = redirector(&format!("{}/v1/records/{id}/read", thief.url));

    // The registered endpoint redirects to the attacker: not followed.
    let svc = env.new_account("service-c", false);
    env.json(&[
        "-a",
        "hospital-c",
        "holder",
        "register",
        "--endpoint",
        &redirect.url,
        "--service-key",
        &svc,
    ]);
    for args in [
        vec!["-a", "patient", "get", &id],
        vec!["-a", "patient", "access-log", "--holder", &c],
    ] {
        let e = env.fail(10, &args);
        assert!(e.contains("redirect") && e.contains("never follows"), "{e}");
    }
    assert!(
        redirect.hits.load(Ordering::SeqCst) >= 2,
        "the endpoint was asked"
    );

    // Endpoints no one may register through the CLI, registered straight on chain.
    let listening = thief.url.trim_end_matches("/steal").to_string();
    let host = listening.trim_start_matches("http://");
    let odd = [
        format!("http://user:secret@{host}"),
        format!("http://{host}/?route=elsewhere"),
        format!("http://{host}/#fragment"),
        format!("ftp://{host}"),
        format!("{listening} "),
    ];
    let node =
        medrec_test_support::wallet_provider(&env.rpc_url(), &c_key, Duration::from_millis(10));
    for endpoint in &odd {
        env.block_on(medrec_test_support::register_holder(
            &node,
            record_registry(&env),
            endpoint,
            svc.parse().unwrap(),
        ));
        for args in [
            vec!["-a", "patient", "get", &id],
            vec!["-a", "patient", "access-log", "--holder", &c],
        ] {
            let e = env.fail(2, &args);
            assert!(
                e.contains("to which medrec sends no request"),
                "{endpoint}: {e}"
            );
        }
        let shown = env.json(&["holder", "show", &c]);
        assert_eq!(shown["endpoint"], endpoint.as_str());
        assert!(shown["endpointRefused"].is_string(), "{shown}");
        // `holder register` refuses them too (it trims white space, so not the last).
        if endpoint.trim() == endpoint {
            let e = env.fail(
                2,
                &[
                    "-a",
                    "hospital-c",
                    "holder",
                    "register",
                    "--endpoint",
                    endpoint,
                    "--service-key",
                    &svc,
                ],
            );
            assert!(e.contains("bad --endpoint"), "{endpoint}: {e}");
        }
    }

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        thief.hits.load(Ordering::SeqCst),
        0,
        "the attacker's listener was contacted"
    );
}

/// Review of hole 6: a holder whose credential the consortium revoked keeps its registration
/// on chain, and `get` went on sending it signed requests. Now `get` refuses a record whose
/// holder is not a credentialed provider now (exit 2), before any request. Before, the revoked
/// holder's listener received the request.
#[test]
fn get_refuses_a_holder_no_longer_credentialed() {
    let env = Env::deployed();
    let (p, b) = (env.addr("patient"), env.addr("hospital-b"));
    let id = anchored_record(&env, "hospital-b", &p, "b's lab result");
    let revoked = attacker();
    let base = revoked.url.trim_end_matches("/steal").to_string();
    let svc = env.new_account("service-b", false);
    env.json(&[
        "-a",
        "hospital-b",
        "holder",
        "register",
        "--endpoint",
        &base,
        "--service-key",
        &svc,
    ]);
    env.ok(&["-a", "gov", "participant", "revoke", &b]);

    let e = env.fail(2, &["-a", "patient", "get", &id]);
    assert!(e.contains("not a credentialed provider now"), "{e}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        revoked.hits.load(Ordering::SeqCst),
        0,
        "the revoked holder's endpoint was contacted"
    );
}

/// The Solidity error name of a call that must revert.
fn revert_name<T>(r: Result<T, alloy::contract::Error>) -> String {
    let Err(e) = r else {
        panic!("the call should revert")
    };
    let data = e.as_revert_data().expect("a revert");
    medrec_bindings::decode_revert(&data).unwrap().name
}

/// Review of hole 6: a leaked service key anchored `2**64-1` entries of its holder's log, and
/// every later anchor reverted for good. Now one anchor adds at most MAX_LOG_GROWTH entries
/// (RecordLogGrowthTooLarge); a junk anchor within the bound stays in the chain's history and
/// `access-log` reports it (exit 9); the holder registers a new key and the leaked one is
/// refused.
#[test]
fn a_leaked_service_keys_junk_anchor_is_bounded_and_reported() {
    let env = Env::deployed();
    let (p, a) = (env.addr("patient"), env.addr("hospital-a"));
    let leaked = PrivateKeySigner::random();
    let leaked_addr = leaked.address().to_string();
    env.rpc(
        "anvil_setBalance",
        &format!(r#"["{leaked_addr}","0x56bc75e2d63100000"]"#),
    );
    let gk_a = start_gatekeeper(&env, &a, &[]);
    let register = |key: &str| {
        env.json(&[
            "-a",
            "hospital-a",
            "holder",
            "register",
            "--endpoint",
            &gk_a.url,
            "--service-key",
            key,
        ])
    };
    register(&leaked_addr);
    env.json(&["-a", "patient", "grant", &a, "-c", "labs", "--for", "90d"]);
    let file = env.write("obs.json", OBSERVATION);
    env.json(&[
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

    let node =
        medrec_test_support::wallet_provider(&env.rpc_url(), &leaked, Duration::from_millis(10));
    let registry = RecordRegistry::new(record_registry(&env), &node);
    let holder: Address = a.parse().unwrap();
    let junk = B256::repeat_byte(0x66);
    assert_eq!(
        revert_name(env.block_on(async {
            registry
                .anchorAccessLog(holder, junk, u64::MAX)
                .call()
                .await
        })),
        "RecordLogGrowthTooLarge"
    );
    let most = 1u64 << 32;
    assert!(
        env.block_on(registry.anchorAccessLog(holder, junk, most).mined())
            .status()
    );

    // The junk anchor stays in the history: the patient's check reports it.
    let e = env.fail(9, &["-a", "patient", "access-log", "--holder", &a]);
    assert!(
        e.contains("the access log was cut")
            && e.contains(&format!("the anchor of {most} entries")),
        "{e}"
    );

    // The holder registers a new service key: the leaked one anchors no more.
    let fresh = env.new_account("service-a", false);
    register(&fresh);
    assert_eq!(
        revert_name(env.block_on(async {
            registry
                .anchorAccessLog(holder, junk, most + 1)
                .call()
                .await
        })),
        "RecordNotHolderKey"
    );
}

/// Issue 16: a pointer's category is a commitment, so the indexer lists a patient's records
/// only to the patient and a guardian of every category; a guardian of some categories gets
/// theirs from the holders' signed listings, each checked against its commitment on chain,
/// and nothing of the other categories. A stranger keeps the indexer's refusal. (Failed
/// before: the guardian of labs was refused, exit 10.)
#[test]
fn a_guardian_of_some_categories_lists_theirs_from_the_holders() {
    let env = Env::deployed();
    let (p, a, g) = (
        env.addr("patient"),
        env.addr("hospital-a"),
        env.addr("guardian"),
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
    env.json(&[
        "-a",
        "patient",
        "grant",
        &a,
        "-c",
        "labs,notes",
        "--for",
        "90d",
    ]);
    let put = |file: &str, body: &str, category: &str| {
        let f = env.write(file, body);
        env.json(&[
            "-a",
            "hospital-a",
            "put",
            &f,
            "--patient",
            &p,
            "-c",
            category,
            "--gatekeeper-url",
            &gk_a.url,
        ])["recordId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let lab = put("lab.json", OBSERVATION, "labs");
    let note = put(
        "note.json",
        r#"{"resourceType":"DocumentReference","status":"current"}"#,
        "notes",
    );
    let added = env.json(&[
        "-a", "patient", "guardian", "add", &g, "-c", "labs", "--for", "5y",
    ]);
    let block = added["tx"]["blockNumber"].as_u64().unwrap().to_string();
    let idx = crate::listings::start_indexer(&env);
    let listed = env.json(&[
        "--indexer-url",
        &idx.url,
        "-a",
        "guardian",
        "records",
        "--patient",
        &p,
        "--min-block",
        &block,
    ]);
    assert_eq!(listed["fromHolders"], true, "{listed}");
    let records = listed["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{listed}");
    assert_eq!(records[0]["recordId"], lab.as_str());
    assert_eq!(records[0]["category"], "labs");
    assert_eq!(records[0]["holder"], a.as_str());
    assert!(!listed.to_string().contains(&note), "{listed}");
    let e = env.fail(
        10,
        &[
            "--indexer-url",
            &idx.url,
            "-a",
            "stranger",
            "records",
            "--patient",
            &p,
            "--min-block",
            &block,
        ],
    );
    assert!(e.contains("the indexer refused"), "{e}");
}
