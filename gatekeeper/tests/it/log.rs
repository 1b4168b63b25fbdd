//! The access log: only requests signed for this holder enter it, it is read a page at a
//! time by its patient or its holder and no one else, and a holder that rewrites it is caught
//! by every anchor it made before.

use crate::harness::*;
use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use medrec_protocol::access_log::{LOG_PATH, LogPage, LogQuery, MAX_PAGE};
use medrec_protocol::clock::READ_VALIDITY_SECS;
use medrec_protocol::merkle::{RootBuilder, verify_consistency};
use medrec_protocol::{LogRequest, RecordRequest, Signed};
use serde_json::Value;
use std::time::{Duration, Instant};

const LABS: u64 = 1 << 3;

/// A log request signed by `who`, for this world's holder.
async fn log_query(w: &World, who: &PrivateKeySigner, from: u64, limit: Option<u32>) -> Vec<u8> {
    let t = now();
    let req = LogRequest {
        patient: who.address(),
        audience: w.gk_holder.address(),
        nonce: random_nonce(),
        issuedAt: t,
        expiresAt: t + READ_VALIDITY_SECS,
    };
    let q = LogQuery {
        signed: Signed::sign(req, who, &w.domain).await.unwrap(),
        size: None,
        from,
        limit,
        consistency: vec![],
    };
    serde_json::to_vec(&q).unwrap()
}

/// Posts a log request; the status and the answer's bytes.
async fn ask_log(w: &World, body: Vec<u8>) -> (u16, Vec<u8>) {
    w.post(&format!("{}{LOG_PATH}", w.gk_url), body).await
}

/// How many entries the log has in the database.
async fn stored_entries(w: &World) -> usize {
    w.log().await.len()
}

/// Attack: anyone posts garbage to the read endpoint (no signature, a signature of no one,
/// a request signed for another holder, an oversized or malformed body). Each one was written
/// durably to the holder's log, about 2,000 entries a second from one client. Now none is
/// written; each is counted in `/metrics`. (Before: every one was logged.)
#[tokio::test(flavor = "multi_thread")]
async fn garbage_posted_to_the_read_endpoint_is_counted_not_logged() {
    let w = World::start().await;
    let patient = w.account().await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    let url = w.read_url(id);
    let outsider = PrivateKeySigner::random();
    let t = now();
    let elsewhere = RecordRequest {
        requester: outsider.address(),
        recordId: id,
        audience: Address::repeat_byte(0x77),
        nonce: random_nonce(),
        issuedAt: t,
        expiresAt: t + 60,
    };
    let mut unsigned = serde_json::json!({"request": elsewhere.clone(), "signature": "0x00"});
    unsigned["request"]["audience"] = Value::String(w.gk_holder.address().to_string());
    for i in 0..25 {
        assert_eq!(w.post(&url, b"{garbage".to_vec()).await.0, 400);
        // Just over the limit: a much larger body is cut off mid-send by the 413.
        assert_eq!(w.post(&url, vec![b'x'; 9 * 1024]).await.0, 413);
        assert_eq!(w.post(&url, unsigned.to_string().into_bytes()).await.0, 403);
        let misaddressed = medrec_test_support::signed_body(
            &outsider,
            RecordRequest {
                nonce: alloy::primitives::U256::from(i),
                ..elsewhere.clone()
            },
            &w.domain,
        )
        .await;
        assert_eq!(w.post(&url, misaddressed.into_bytes()).await.0, 403);
    }
    assert_eq!(stored_entries(&w).await, 0, "garbage was logged");
    assert_eq!(w.log_head().await.0, 0);
    // Nor does /health show anyone the log's length (the holder's read volume).
    let health: Value = w
        .http
        .get(format!(
            "{}{}",
            w.gk_url,
            medrec_protocol::health::HEALTH_PATH
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        health.get("logEntries").is_none() && health.get("logHead").is_none(),
        "{health}"
    );
    assert_eq!(
        w.unlogged().await,
        [
            "oversized 25",
            "malformed 25",
            "unsigned 25",
            "wrong_audience 25"
        ]
    );
}

/// The log endpoint answered any fresh key with the whole log. Now: a stranger (signed or
/// not) gets the uniform `denied`; a patient gets only the entries of their own records, in
/// pages, each proved in the tree; the holder gets every entry.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_answers_only_its_patients_and_its_holder_in_pages() {
    let w = World::start().await;
    let (alice, bob, reader) = (w.account().await, w.account().await, w.account().await);
    w.credential(reader.address()).await;
    w.grant(&alice, reader.address(), LABS, 3_600).await;
    let obs = fhir_example("Observation-example.json");
    let a = w.upload(alice.address(), 3, &obs).await;
    let b = w.upload(bob.address(), 3, &obs).await;
    for _ in 0..5 {
        assert_eq!(w.read(&reader, a).await.0, 200);
        assert_eq!(w.read(&reader, b).await.0, 403);
    }
    assert_eq!(stored_entries(&w).await, 10);

    // A stranger, signed or not, learns nothing, not even the log's length.
    let stranger = PrivateKeySigner::random();
    let (s, refused) = ask_log(&w, log_query(&w, &stranger, 0, None).await).await;
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&refused));
    let v: Value = serde_json::from_slice(&refused).unwrap();
    assert_eq!(v["error"]["code"], "denied");
    let mut forged: Value =
        serde_json::from_slice(&log_query(&w, &stranger, 0, None).await).unwrap();
    forged["request"]["patient"] = Value::String(alice.address().to_string());
    let (s, b2) = ask_log(&w, forged.to_string().into_bytes()).await;
    assert_eq!((s, &b2), (403, &refused), "a request in Alice's name");
    // The requester who read is no patient here either.
    assert_eq!(
        ask_log(&w, log_query(&w, &reader, 0, None).await).await.0,
        403
    );

    // Alice, two entries a page: her five, each in the tree, none of Bob's.
    let mut seen = vec![];
    let mut from = 0;
    let mut pages = 0;
    let mut pinned: Option<(u64, B256)> = None;
    loop {
        let (s, body) = ask_log(&w, log_query(&w, &alice, from, Some(2)).await).await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
        let page: LogPage = serde_json::from_slice(&body).unwrap();
        pages += 1;
        assert!(page.entries.len() <= 2);
        if let Some(p) = pinned {
            assert_eq!((page.size, page.root), p);
        }
        pinned = Some((page.size, page.root));
        for e in &page.entries {
            assert_eq!(e.patient, alice.address());
            assert!(e.is_included(page.size, page.root), "entry {}", e.index);
        }
        seen.extend(page.entries.iter().map(|e| e.index));
        match page.next {
            Some(n) => from = n,
            None => break,
        }
    }
    assert_eq!(seen, [0, 2, 4, 6, 8]);
    assert_eq!(pages, 3);

    // The holder: every entry, and the root recomputes from them.
    let (s, body) = ask_log(&w, log_query(&w, &w.gk_holder, 0, None).await).await;
    assert_eq!(s, 200);
    let page: LogPage = serde_json::from_slice(&body).unwrap();
    assert_eq!(page.entries.len(), 10);
    let mut root = RootBuilder::new();
    for e in &page.entries {
        root.push(e.leaf());
    }
    assert_eq!((root.len(), root.root()), (page.size, page.root));
    assert_eq!(page.root, w.log_head().await.1);

    // Log requests are charged to their requester's own allowance: Alice's are used up
    // (a burst of 40), Bob's are not.
    let mut statuses = vec![];
    for _ in 0..45 {
        statuses.push(ask_log(&w, log_query(&w, &alice, 0, Some(1)).await).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(ask_log(&w, log_query(&w, &bob, 0, None).await).await.0, 200);
}

/// A large log read by the holder 16 times at once: every answer is one bounded page, never
/// the whole log.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_holder_reads_of_a_large_log_are_bounded_pages() {
    let mut w = World::start().await;
    w.stop_gatekeeper();
    // 20,000 entries written by an earlier run (their leaves are computed at start).
    w.sql(
        "INSERT INTO gk_access_log (seq, at_ms, requester, record_id, patient, allowed, reason, nonce, expires_at)
         SELECT g, 1700000000000 + g, decode(repeat('11', 20), 'hex'), decode(repeat('22', 32), 'hex'),
                decode(repeat('33', 20), 'hex'), g % 2 = 0, 'the chain does not allow it',
                decode(lpad(to_hex(g), 64, '0'), 'hex'), 0
         FROM generate_series(1, 20000) g"
            .into(),
    )
    .await;
    w.start_gatekeeper(&[]).await;
    assert_eq!(w.log_head().await.0, 20_000);
    let url = format!("{}{LOG_PATH}", w.gk_url);
    let mut asks = vec![];
    for i in 0..16u64 {
        let body = log_query(&w, &w.gk_holder, i * 10, Some(u32::MAX)).await;
        let (http, url) = (w.http.clone(), url.clone());
        asks.push(tokio::spawn(async move {
            let r = http.post(url).body(body).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }));
    }
    let mut answers = vec![];
    for a in asks {
        answers.push(a.await.unwrap());
    }
    for (i, (s, body)) in answers.into_iter().enumerate() {
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
        let page: LogPage = serde_json::from_slice(&body).unwrap();
        assert_eq!(page.size, 20_000);
        assert_eq!(page.entries.len(), MAX_PAGE as usize, "a page is bounded");
        assert_eq!(page.entries[0].index, i as u64 * 10);
        assert_eq!(page.next, Some(i as u64 * 10 + u64::from(MAX_PAGE)));
        assert!(body.len() < 600_000, "{} bytes", body.len());
    }
}

/// Waits until the holder's anchor on chain covers more than `entries` entries; its size.
async fn anchored_beyond(w: &World, entries: u64) -> u64 {
    let registry = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gov));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = registry
            .accessLogOf(w.gk_holder.address())
            .call()
            .await
            .unwrap()
            .entries;
        if now > entries {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the log was not anchored beyond {entries}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Attack (issue 14, hole 2): the holder stops its gatekeeper, erases entries, recomputes
/// everything the gatekeeper stores, restarts, and its next anchor (a larger count) is
/// accepted on chain. `medrec access-log` said the log verified, since it checked the latest
/// anchor only. Now it checks every anchor in the chain's history against the next and the
/// last against the tree served, and names the anchor the rewrite broke.
#[tokio::test(flavor = "multi_thread")]
async fn a_holder_that_erases_entries_and_anchors_again_is_caught_by_its_earlier_anchor() {
    let mut w = World::start().await;
    let (patient, reader, stranger) = (w.account().await, w.account().await, w.account().await);
    w.credential(reader.address()).await;
    for (name, key) in [("holder", &w.gk_holder.clone()), ("patient", &patient)] {
        import_key(&w, name, key);
    }
    let dir = w.dir.path().to_path_buf();
    let keystore = dir.join("keystores/holder").to_string_lossy().to_string();
    let password = dir.join("password").to_string_lossy().to_string();
    let anchoring = [
        "--anchor-keystore",
        keystore.as_str(),
        "--anchor-password-file",
        password.as_str(),
        "--anchor-every",
        "1",
    ];
    w.start_gatekeeper(&anchoring).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    assert_eq!(w.read(&reader, id).await.0, 200);
    assert_eq!(w.read(&stranger, id).await.0, 403);
    assert_eq!(w.read(&stranger, id).await.0, 403);
    assert_eq!(w.read(&reader, id).await.0, 200);
    assert_eq!(anchored_beyond(&w, 3).await, 4);
    let registry = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gov));
    let root4 = registry
        .accessLogOf(w.gk_holder.address())
        .call()
        .await
        .unwrap()
        .head;
    let holder = w.gk_holder.address().to_string();
    let out = run_cli(
        &w,
        &["--json", "-a", "patient", "access-log", "--holder", &holder],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["data"]["mine"].as_array().unwrap().len(), 4);

    // The rewrite: the stranger's two attempts erased, the rest renumbered and every leaf
    // recomputed, as a careful holder would.
    w.stop_gatekeeper();
    w.sql(
        "DELETE FROM gk_access_log WHERE requester = decode('".to_string()
            + &alloy::hex::encode(stranger.address())
            + "', 'hex')",
    )
    .await;
    w.sql("UPDATE gk_access_log SET seq = -seq".into()).await;
    w.sql(
        "UPDATE gk_access_log l SET seq = r.n FROM
           (SELECT seq, row_number() OVER (ORDER BY seq DESC) AS n FROM gk_access_log) r
         WHERE l.seq = r.seq"
            .into(),
    )
    .await;
    for (seq, access, at_ms) in w.log_rows().await {
        let leaf = medrec_protocol::access_log::leaf(seq - 1, at_ms, &access);
        w.sql(format!(
            "UPDATE gk_access_log SET tree_leaf = '\\x{}' WHERE seq = {seq}",
            alloy::hex::encode(leaf)
        ))
        .await;
    }
    assert_eq!(stored_entries(&w).await, 2);
    w.start_gatekeeper(&anchoring).await;
    for _ in 0..3 {
        assert_eq!(w.read(&reader, id).await.0, 200);
    }
    // Its next anchor (5 entries, more than 4) is accepted on chain.
    assert_eq!(anchored_beyond(&w, 4).await, 5);

    // The rewritten tree verifies on its own terms: each of the patient's entries is in it.
    // What catches it is the earlier anchor of 4 entries.
    for account in ["patient", "holder"] {
        let out = run_cli(&w, &["-a", account, "access-log", "--holder", &holder]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(9), "{account}: {stderr}");
        assert!(stderr.contains("the access log was rewritten"), "{stderr}");
        assert!(
            stderr.contains("the anchor of 4 entries in block"),
            "{stderr}"
        );
        assert!(stderr.contains("no longer matches"), "{stderr}");
    }
    // The proof the gatekeeper gives does not verify against the anchored root.
    let latest = registry
        .accessLogOf(w.gk_holder.address())
        .call()
        .await
        .unwrap();
    let mut q: LogQuery = serde_json::from_slice(&log_query(&w, &patient, 0, None).await).unwrap();
    q.consistency = vec![[4, 5]];
    let (s, body) = ask_log(&w, serde_json::to_vec(&q).unwrap()).await;
    assert_eq!(s, 200);
    let page: LogPage = serde_json::from_slice(&body).unwrap();
    assert_eq!(page.root, latest.head);
    assert!(!verify_consistency(
        4,
        5,
        root4,
        latest.head,
        &page.consistency[0].proof
    ));
}

/// A log written in the old hash-chain form, its head anchored on chain: the migration gives
/// its entries tree leaves, the CLI reports the old anchor (a chain head, which no root
/// matches) without checking it, and checks every anchor of the tree made since.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_of_the_old_hash_chain_form_becomes_a_tree_and_its_old_anchor_is_reported() {
    use alloy::primitives::{U256, keccak256};
    use alloy::sol_types::SolValue;
    let mut w = World::start().await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    for (name, key) in [("holder", &w.gk_holder.clone()), ("patient", &patient)] {
        import_key(&w, name, key);
    }
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    w.stop_gatekeeper();
    // The schema as it was before the tree, and three entries of the old form.
    for sql in [
        "DROP TABLE gk_log_tree",
        "DROP INDEX gk_access_log_patient_seq",
        "DROP INDEX gk_records_patient",
        "CREATE INDEX gk_access_log_patient ON gk_access_log (patient)",
        "ALTER TABLE gk_access_log DROP COLUMN tree_leaf",
        "DELETE FROM _sqlx_migrations WHERE version = 20261129000001",
    ] {
        w.sql(sql.into()).await;
    }
    let mut head = B256::ZERO;
    for seq in 1..=3u64 {
        let at_ms = 1_700_000_000_000 + seq;
        let nonce = B256::from(U256::from(seq));
        let leaf = keccak256(
            (
                seq,
                at_ms,
                reader.address(),
                id,
                patient.address(),
                true,
                "allowed".to_string(),
                nonce,
            )
                .abi_encode(),
        );
        let entry = keccak256([head.as_slice(), leaf.as_slice()].concat());
        w.sql(format!(
            "INSERT INTO gk_access_log (seq, at_ms, requester, record_id, patient, allowed, reason, nonce, expires_at, leaf, prev_hash, entry_hash)
             VALUES ({seq}, {at_ms}, '\\x{}', '\\x{}', '\\x{}', true, 'allowed', '\\x{}', 0, '\\x{}', '\\x{}', '\\x{}')",
            alloy::hex::encode(reader.address()),
            alloy::hex::encode(id),
            alloy::hex::encode(patient.address()),
            alloy::hex::encode(nonce),
            alloy::hex::encode(leaf),
            alloy::hex::encode(head),
            alloy::hex::encode(entry),
        ))
        .await;
        head = entry;
    }
    let registry = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gk_holder));
    assert!(
        registry
            .anchorAccessLog(w.gk_holder.address(), head, 3)
            .mined()
            .await
            .status()
    );

    // The gatekeeper migrates and goes on as a tree; the next anchor is a root.
    let dir = w.dir.path().to_path_buf();
    let keystore = dir.join("keystores/holder").to_string_lossy().to_string();
    let password = dir.join("password").to_string_lossy().to_string();
    w.start_gatekeeper(&[
        "--anchor-keystore",
        &keystore,
        "--anchor-password-file",
        &password,
        "--anchor-every",
        "1",
    ])
    .await;
    assert_eq!(w.log_head().await.0, 3);
    assert_eq!(w.read(&reader, id).await.0, 200);
    assert_eq!(w.read(&reader, id).await.0, 200);
    assert_eq!(anchored_beyond(&w, 3).await, 5);
    let holder = w.gk_holder.address().to_string();
    let out = run_cli(
        &w,
        &["--json", "-a", "patient", "access-log", "--holder", &holder],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["data"]["legacyEntries"], 3);
    assert_eq!(log["data"]["oldFormAnchors"], 1);
    assert_eq!(log["data"]["anchors"], 1);
    assert_eq!(log["data"]["mine"].as_array().unwrap().len(), 5);
    // The holder reads it all, two entries a page, and recomputes the root.
    let out = run_cli(
        &w,
        &[
            "--json",
            "-a",
            "holder",
            "access-log",
            "--holder",
            &holder,
            "--page-size",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["data"]["count"], 5);
    let out = run_cli(&w, &["-a", "patient", "access-log", "--holder", &holder]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("1 earlier anchor(s): heads of the log's old hash chain"),
        "{text}"
    );
}
