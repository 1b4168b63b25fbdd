//! Erasure (issue 16, step 7): `medrec forget` destroys a record's data key at its gatekeeper,
//! then marks the pointer erased on chain. Reads afterwards are refused `410 erased` and
//! logged, never served from the gatekeeper's memory (not even a replica's that still holds
//! the record); a retry after a failed chain step finishes the job.

use crate::harness::{World, fhir_example, import_key, run_cli};
use alloy::primitives::B256;
use medrec_protocol::records::{ERASED_READ_REASON, ERASURE_REASON, EraseRequest, erase_url};
use serde_json::Value;

const LABS: u64 = 1 << 3;

/// The holder's signed erasure of `id`, sent to its gatekeeper: the status and body.
async fn erase_at_gatekeeper(w: &World, id: B256) -> (u16, Value) {
    let t = medrec_test_support::now();
    let req = EraseRequest {
        holder: w.gk_holder.address(),
        recordId: id,
        audience: w.gk_holder.address(),
        nonce: medrec_protocol::envelope::random_nonce(),
        issuedAt: t,
        expiresAt: t + 60,
    };
    let body = medrec_test_support::signed_body(&w.gk_holder, req, &w.domain).await;
    let (status, bytes) = w.post(&erase_url(&w.gk_url, id), body.into_bytes()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_destroys_the_key_then_marks_the_chain_and_later_reads_are_410_and_logged() {
    let mut w = World::start().await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    let dir = w.dir.path().to_path_buf();
    for (name, key) in [("holder", &w.gk_holder), ("reader", &reader)] {
        import_key(&w, name, key);
    }
    // Records stay in memory for a minute: erasure must evict them, not wait.
    w.start_gatekeeper(&["--record-cache-secs", "60"]).await;
    w.grant(&patient, w.gk_holder.address(), LABS, 3_600).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    let cli = |args: &[&str]| run_cli(&w, args);
    let put = |file: &str| {
        let path = dir.join(file);
        std::fs::write(&path, fhir_example(file)).unwrap();
        let out = cli(&[
            "--json",
            "-a",
            "holder",
            "put",
            &path.to_string_lossy(),
            "--patient",
            &patient.address().to_string(),
            "-c",
            "labs",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["data"]["recordId"]
            .as_str()
            .unwrap()
            .parse::<B256>()
            .unwrap()
    };
    let id = put("Observation-example.json");
    let other = put("Observation-656.json");
    // Read once: the record is now in the gatekeeper's memory.
    assert_eq!(w.read(&reader, id).await.0, 200);

    // The first half only (the chain step "failed"): the gatekeeper destroys the key.
    let (status, v) = erase_at_gatekeeper(&w, id).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["erasedNow"], true);
    let registry = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gov));
    assert!(
        !registry.erased(id).call().await.unwrap(),
        "not on chain yet"
    );
    // A read now is refused 410, not served from memory, and logged.
    let (status, body) = w.read(&reader, id).await;
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "erased");
    // What was destroyed: key, ciphertext, content hash, salt; the facts.
    let (key_len, ct_len, facts): (i32, i32, i64) = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&w.db_url()).await.unwrap();
        sqlx::query_as(
            "SELECT octet_length(wrapped_key), octet_length(ciphertext),
                    (SELECT count(*) FROM gk_facts WHERE record_id = $1)
             FROM gk_records WHERE record_id = $1",
        )
        .bind(id.to_vec())
        .fetch_one(&mut c)
        .await
        .unwrap()
    };
    assert_eq!((key_len, ct_len, facts), (0, 0, 0));

    // The holder's `medrec forget` finishes the job: the gatekeeper says erased before, the
    // chain is marked now.
    let out = cli(&["--json", "-a", "holder", "forget", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["gatekeeper"], "erased before", "{v}");
    assert_eq!(v["data"]["alreadyMarked"], false, "{v}");
    assert!(registry.erased(id).call().await.unwrap());
    // Again: nothing left to do, and says so.
    let out = cli(&["--json", "-a", "holder", "forget", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["alreadyMarked"], true, "{v}");

    // The reader's CLI says it in one line.
    let out = cli(&["-a", "reader", "get", &id.to_string()]);
    assert_eq!(out.status.code(), Some(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("erased by its holder"), "{err}");
    // Nor may anyone but the holder erase, or the patient's reader forget.
    let out = cli(&["-a", "reader", "forget", &other.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another replica erased `other` while this one holds it in memory (simulated in the
    // database, as that replica's transaction leaves it): the read is refused when it is
    // logged, in the same transaction that would have let it through.
    assert_eq!(w.read(&reader, other).await.0, 200);
    w.sql(format!(
        "UPDATE gk_records SET erased_at = now() WHERE record_id = '\\x{}'",
        alloy::hex::encode(other)
    ))
    .await;
    let (status, _) = w.read(&reader, other).await;
    assert_eq!(status, 410);

    // The log keeps the facts: the erasure (by the holder) and each refused read.
    let log = w.log().await;
    assert!(
        log.iter()
            .any(|(who, allowed, reason)| *who == w.gk_holder.address()
                && !allowed
                && reason == ERASURE_REASON),
        "{log:?}"
    );
    assert_eq!(
        log.iter()
            .filter(|(who, allowed, reason)| *who == reader.address()
                && !allowed
                && reason == ERASED_READ_REASON)
            .count(),
        2,
        "{log:?}"
    );
    // The listing no longer names the erased records.
    let (_, l) = w.list_as(&patient, patient.address()).await;
    assert!(l.unwrap().records.is_empty());
}

/// The holder's `medrec forget` erases only at the endpoint it registered on chain, served by
/// a gatekeeper of its own, and marks the chain only after that gatekeeper destroyed the
/// record (attack review, finding 2: a wrong URL or path answered 404 `not_found`, which
/// `forget` took for "nothing to destroy", and the chain was marked while the record was still
/// served). Each case: exit non-zero, the chain unmarked, the record still served.
#[tokio::test(flavor = "multi_thread")]
async fn forget_marks_the_chain_only_after_the_registered_gatekeeper_destroyed_the_record() {
    use crate::harness::Mined;
    let w = World::start().await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    import_key(&w, "holder", &w.gk_holder);
    w.grant(&patient, w.gk_holder.address(), LABS, 3_600).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    let cli = |args: &[&str]| run_cli(&w, args);
    let path = w.dir.path().join("r.json");
    std::fs::write(&path, fhir_example("Observation-example.json")).unwrap();
    let out = cli(&[
        "--json",
        "-a",
        "holder",
        "put",
        &path.to_string_lossy(),
        "--patient",
        &patient.address().to_string(),
        "-c",
        "labs",
    ]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id: B256 = v["data"]["recordId"].as_str().unwrap().parse().unwrap();
    let registry = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gov));
    let untouched = |out: std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{what}: exit 0");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        err
    };

    // A --gatekeeper-url other than the registered endpoint (a wrong path under it).
    let wrong = format!("{}/gk", w.gk_url);
    let err = untouched(
        cli(&[
            "-a",
            "holder",
            "forget",
            &id.to_string(),
            "--gatekeeper-url",
            &wrong,
        ]),
        "wrong --gatekeeper-url",
    );
    assert!(err.contains("registered"), "{err}");
    assert!(!registry.erased(id).call().await.unwrap());
    assert_eq!(w.read(&reader, id).await.0, 200);

    // A registered endpoint whose path is wrong: its /health is 404, nothing is sent.
    medrec_test_support::register_holder(
        &w.as_(&w.gk_holder),
        w.records_address(),
        &wrong,
        w.gk_holder.address(),
    )
    .await;
    untouched(
        cli(&["-a", "holder", "forget", &id.to_string()]),
        "registered endpoint with a wrong path",
    );
    assert!(!registry.erased(id).call().await.unwrap());
    assert_eq!(w.read(&reader, id).await.0, 200);
    medrec_test_support::register_holder(
        &w.as_(&w.gk_holder),
        w.records_address(),
        &w.gk_url,
        w.gk_holder.address(),
    )
    .await;

    // A pointer whose record the gatekeeper never kept: its own `no_such_record`, distinct
    // from a route's `not_found`; the chain is marked only with --force.
    let (s, v) = erase_at_gatekeeper(&w, B256::repeat_byte(5)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("no_such_record"))
    );
    let list = w.list_as(&patient, patient.address()).await.1.unwrap();
    let commitment = list.records[0].opening.commit(
        patient.address(),
        w.gk_holder.address(),
        B256::repeat_byte(9),
    );
    let absent =
        medrec_protocol::records::record_id(w.gk_holder.address(), patient.address(), commitment);
    let holder_registry =
        medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gk_holder));
    let p = medrec_bindings::record_registry::IRecordRegistry::Pointer {
        recordId: absent,
        patient: patient.address(),
        commitment,
        locator: "elsewhere".into(),
        supersedes: B256::ZERO,
    };
    assert!(holder_registry.anchor(p).mined().await.status());
    let err = untouched(
        cli(&["-a", "holder", "forget", &absent.to_string()]),
        "record not kept",
    );
    assert!(err.contains("--force"), "{err}");
    assert!(!registry.erased(absent).call().await.unwrap());
    let out = cli(&[
        "--json",
        "-a",
        "holder",
        "forget",
        &absent.to_string(),
        "--force",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["gatekeeper"], "absent", "{v}");
    assert!(registry.erased(absent).call().await.unwrap());

    // And at the registered endpoint, the record is destroyed, then the chain marked.
    let out = cli(&["--json", "-a", "holder", "forget", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(registry.erased(id).call().await.unwrap());
    assert_eq!(w.read(&reader, id).await.0, 410);
}

/// The tombstone an erasure leaves keeps the patient, the id and the time of erasure, nothing
/// else: not the category nor the size (attack review, finding 3: both were kept, telling
/// anyone with the database what the erased record was), nor when it was stored.
#[tokio::test(flavor = "multi_thread")]
async fn the_tombstone_keeps_only_the_patient_the_id_and_the_time_of_erasure() {
    let w = World::start().await;
    let patient = w.account().await;
    w.grant(&patient, w.gk_holder.address(), 1 << 9, 3_600)
        .await;
    let id = w
        .upload(patient.address(), 9, &fhir_example("Observation-656.json"))
        .await;
    assert_eq!(erase_at_gatekeeper(&w, id).await.0, 200);
    let row: (Vec<u8>, i16, i32, bool, bool, bool, i32, i32, i32, i32) = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&w.db_url()).await.unwrap();
        sqlx::query_as(
            "SELECT patient, category, size, content_hash = record_id,
                    salt = decode(repeat('00', 32), 'hex'), stored_at = erased_at,
                    octet_length(wrapped_key), octet_length(ciphertext),
                    octet_length(data_nonce), octet_length(key_nonce)
             FROM gk_records WHERE record_id = $1",
        )
        .bind(id.to_vec())
        .fetch_one(&mut c)
        .await
        .unwrap()
    };
    assert_eq!(
        row,
        (
            patient.address().to_vec(),
            -1,
            0,
            true,
            true,
            true,
            0,
            0,
            0,
            0
        )
    );
}

/// The chain decides a read before the row tells anything (attack review, finding 4: an
/// erased record was `410` to anyone and a damaged row `500`, where any other refused read is
/// `403`, telling a stranger that a record existed and was erased). A provider with no grant
/// gets `403 denied` for a live, an unknown, an erased and a damaged record alike; the
/// patient and a grantee of the patient get `410 erased`; each read is logged as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_gets_403_for_live_unknown_erased_and_damaged_records_alike() {
    let w = World::start().await;
    let (patient, grantee, stranger) = (w.account().await, w.account().await, w.account().await);
    w.credential(grantee.address()).await;
    w.credential(stranger.address()).await;
    w.grant(&patient, w.gk_holder.address(), LABS, 3_600).await;
    w.grant(&patient, grantee.address(), LABS, 3_600).await;
    let live = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    let gone = w
        .upload(patient.address(), 3, &fhir_example("Observation-656.json"))
        .await;
    let damaged = w
        .upload(patient.address(), 3, &fhir_example("Observation-bmd.json"))
        .await;
    w.sql(format!(
        "UPDATE gk_records SET category = 9 WHERE record_id = '\\x{}'",
        alloy::hex::encode(damaged)
    ))
    .await;
    assert_eq!(erase_at_gatekeeper(&w, gone).await.0, 200);
    for (what, id) in [
        ("live", live),
        ("unknown", B256::repeat_byte(0x77)),
        ("erased", gone),
        ("damaged", damaged),
    ] {
        let (status, body) = w.read(&stranger, id).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("denied")),
            "{what}"
        );
    }
    for reader in [&grantee, &patient] {
        let (status, body) = w.read(reader, gone).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (410, Some("erased"))
        );
    }
    let erased_reads = w
        .log()
        .await
        .into_iter()
        .filter(|(_, allowed, reason)| !allowed && reason == ERASED_READ_REASON)
        .map(|(who, _, _)| who)
        .collect::<Vec<_>>();
    assert_eq!(
        erased_reads,
        [stranger.address(), grantee.address(), patient.address()]
    );
}
