//! Reads: the allowed paths, every adversarial request, tampering, and the access log.

use crate::harness::{Mined, World, fhir_example, import_key, now, random_nonce, run_cli};
use alloy::primitives::{Address, B256, aliases::U40, keccak256};
use alloy::providers::Provider;
use medrec_bindings::ConsentRegistry;
use medrec_protocol::RecordRequest;
use medrec_protocol::clock::READ_VALIDITY_SECS;
use medrec_test_support::signed_body;
use serde_json::Value;

const LABS: u64 = 1 << 3;
const NOTES: u64 = 1 << 8;
const IMMUNIZATIONS: u64 = 1 << 7;

#[tokio::test(flavor = "multi_thread")]
async fn official_fhir_examples_round_trip_for_a_grantee() {
    let w = World::start().await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    for name in [
        "Observation-example.json",
        "Patient-example.json",
        "Condition-example.json",
        "Consent-consent-example-basic.json",
        "AllergyIntolerance-example.json",
    ] {
        let bytes = fhir_example(name);
        let id = w.upload(patient.address(), 3, &bytes).await;
        let (status, body) = w.read(&reader, id).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(body, bytes, "{name}: the exact stored bytes");
    }
    let log = w.log().await;
    assert_eq!(log.len(), 5);
    assert!(
        log.iter()
            .all(|(r, allowed, why)| *r == reader.address() && *allowed && why == "allowed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn adversarial_requests_disclose_nothing_and_are_logged() {
    let w = World::start().await;
    let (patient, reader, stranger) = (w.account().await, w.account().await, w.account().await);
    w.credential(reader.address()).await;
    let bytes = fhir_example("Observation-example.json");
    let id = w.upload(patient.address(), 3, &bytes).await;
    let holder = w.gk_holder.address();
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    let mut expected: Vec<&str> = vec![];
    let t = now();
    let n = random_nonce;

    // Forged signature: 65 random bytes.
    let req = medrec_protocol::RecordRequest {
        requester: reader.address(),
        recordId: id,
        audience: holder,
        nonce: n(),
        issuedAt: t,
        expiresAt: t + 60,
    };
    // r = s = 0: no key signs that.
    let mut junk = vec![0u8; 64];
    junk.push(27);
    let body = serde_json::json!({"request": req, "signature": format!("0x{}", alloy::hex::encode(&junk))});
    let (s, denial) = w.post(&w.read_url(id), body.to_string().into_bytes()).await;
    assert_eq!(s, 403);
    // Signed by no one: refused without an entry (counted in the metrics, below).
    let denial_body: Value = serde_json::from_slice(&denial).unwrap();
    assert_eq!(denial_body["error"]["code"], "denied");

    // Signed by someone else than the requester it names.
    let (s, b) = w
        .read_as(&stranger, reader.address(), id, holder, t, t + 60, n())
        .await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("signer is not the requester");

    // Replayed nonce.
    let nonce = n();
    let (s, _) = w
        .read_as(&reader, reader.address(), id, holder, t, t + 60, nonce)
        .await;
    assert_eq!(s, 200);
    expected.push("allowed");
    let (s, b) = w
        .read_as(&reader, reader.address(), id, holder, t, t + 60, nonce)
        .await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("replayed nonce");

    // Expired, and issued in the future.
    let (s, b) = w
        .read_as(&reader, reader.address(), id, holder, t - 120, t - 60, n())
        .await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("expired");
    let (s, b) = w
        .read_as(
            &reader,
            reader.address(),
            id,
            holder,
            t + 3_600,
            t + 3_660,
            n(),
        )
        .await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("issued in the future");

    // Addressed to another holder.
    let (s, b) = w
        .read_as(
            &reader,
            reader.address(),
            id,
            Address::repeat_byte(9),
            t,
            t + 60,
            n(),
        )
        .await;
    assert_eq!((s, &b), (403, &denial));
    // Signed for another holder: refused without an entry.

    // Unknown record: the same answer as any other denial.
    let other = keccak256(b"no such record");
    let (s, b) = w.read(&reader, other).await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("unknown record");

    // Wrong category: a grant of notes only for a labs record.
    let notes_reader = w.account().await;
    w.credential(notes_reader.address()).await;
    w.grant(&patient, notes_reader.address(), NOTES, 3_600)
        .await;
    let (s, b) = w.read(&notes_reader, id).await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("the chain does not allow it");

    // A grantee without a credential.
    let uncredentialed = w.account().await;
    w.grant(&patient, uncredentialed.address(), LABS, 3_600)
        .await;
    let (s, b) = w.read(&uncredentialed, id).await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("the chain does not allow it");

    // A guardian acting outside their scope cannot grant; the read stays denied.
    let guardian = w.account().await;
    let as_patient = ConsentRegistry::new(w.consent, w.as_(&patient));
    as_patient
        .setGuardian(
            guardian.address(),
            IMMUNIZATIONS,
            U40::from(0u64),
            U40::from(now() + 86_400),
        )
        .mined()
        .await;
    let g_reader = w.account().await;
    w.credential(g_reader.address()).await;
    let as_guardian = ConsentRegistry::new(w.consent, w.as_(&guardian));
    let refused = as_guardian
        .grant(
            patient.address(),
            g_reader.address(),
            LABS,
            1,
            U40::from(0u64),
            U40::from(now() + 3_600),
        )
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a guardian cannot grant outside its scope"
    );
    let (s, b) = w.read(&g_reader, id).await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("the chain does not allow it");

    // Revoked one block earlier. The reader was served this record above, so the gatekeeper
    // holds it in memory (the row is deleted here to be sure the next reads come from there):
    // the chain is still asked, and says no.
    w.sql(format!(
        "DELETE FROM gk_records WHERE record_id = '\\x{}'",
        alloy::hex::encode(id)
    ))
    .await;
    w.revoke(&patient, reader.address()).await;
    let (s, b) = w.read(&reader, id).await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("the chain does not allow it");

    // An expired grant (the chain's clock moves past it).
    let short = w.account().await;
    w.credential(short.address()).await;
    w.grant(&patient, short.address(), LABS, 120).await;
    let (s, _) = w.read(&short, id).await;
    assert_eq!(s, 200);
    expected.push("allowed");
    let p = w.as_(&w.gov);
    let _: Value = p
        .raw_request("evm_increaseTime".into(), (200u64,))
        .await
        .unwrap();
    let _: Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
    let (s, b) = w.read(&short, id).await;
    assert_eq!((s, &b), (403, &denial));
    expected.push("the chain does not allow it");

    // Oversized and malformed bodies.
    // Just over the 8 KiB limit: the 413, no longer delayed by a log write, would cut a much
    // larger body off mid-send.
    let (s, _) = w.post(&w.read_url(id), vec![b'x'; 9 * 1024]).await;
    assert_eq!(s, 413);
    let (s, b) = w.post(&w.read_url(id), b"{not json".to_vec()).await;
    assert_eq!(s, 400);
    assert!(!String::from_utf8_lossy(&b).contains("resourceType"));
    // Neither is a signed request: refused without an entry.

    // A stranger's request naming the reader, for another record than the path's.
    let (s, b) = w
        .read_as(&stranger, reader.address(), other, holder, t, t + 60, n())
        .await;
    assert_eq!((s, &b), (403, &denial));
    let (s, b) = w
        .post(
            &w.read_url(id),
            signed_body(
                &stranger,
                RecordRequest {
                    requester: reader.address(),
                    recordId: other,
                    audience: holder,
                    nonce: n(),
                    issuedAt: t,
                    expiresAt: t + 60,
                },
                &w.domain,
            )
            .await
            .into_bytes(),
        )
        .await;
    assert_eq!((s, &b), (403, &denial));
    expected.extend([
        "signer is not the requester",
        "record id differs from the path",
    ]);

    let log = w.log().await;
    let reasons: Vec<&str> = log.iter().map(|(_, _, why)| why.as_str()).collect();
    assert_eq!(
        reasons, expected,
        "every request signed for this holder is logged, in order"
    );
    assert_eq!(log.iter().filter(|(_, allowed, _)| *allowed).count(), 2);
    // The unsigned, the misaddressed, the oversized and the malformed one are only counted.
    assert_eq!(
        w.unlogged().await,
        [
            "oversized 1",
            "malformed 1",
            "unsigned 1",
            "wrong_audience 1"
        ]
    );
    // No one puts a refused read in another's name: an entry is under the key that signed
    // it, not under the requester it claims, so a patient reading their log never sees the
    // reader blamed for a stranger's attempt.
    for i in [0, log.len() - 2, log.len() - 1] {
        assert_eq!(
            log[i].0,
            stranger.address(),
            "logged under its signer, not the requester it names: {:?}",
            log[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guardian_grant_and_break_glass_allow() {
    let w = World::start().await;
    let (patient, guardian, reader, er) = (
        w.account().await,
        w.account().await,
        w.account().await,
        w.account().await,
    );
    w.credential(reader.address()).await;
    w.credential(er.address()).await;
    let bytes = fhir_example("Immunization-example.json");
    let id = w.upload(patient.address(), 7, &bytes).await;
    ConsentRegistry::new(w.consent, w.as_(&patient))
        .setGuardian(
            guardian.address(),
            IMMUNIZATIONS,
            U40::from(0u64),
            U40::from(now() + 86_400),
        )
        .mined()
        .await;
    ConsentRegistry::new(w.consent, w.as_(&guardian))
        .grant(
            patient.address(),
            reader.address(),
            IMMUNIZATIONS,
            1,
            U40::from(0u64),
            U40::from(now() + 3_600),
        )
        .mined()
        .await;
    let (s, b) = w.read(&reader, id).await;
    assert_eq!((s, b), (200, bytes.clone()));

    let (s, _) = w.read(&er, id).await;
    assert_eq!(s, 403, "no access before break-glass");
    ConsentRegistry::new(w.consent, w.as_(&er))
        .openEmergencyAccess(
            patient.address(),
            keccak256(b"unconscious"),
            U40::from(3_600u64),
        )
        .mined()
        .await;
    let (s, b) = w.read(&er, id).await;
    assert_eq!((s, b), (200, bytes));
}

/// Issue 16: the pointer on chain is a salted commitment, and the gatekeeper serves the opening
/// (category and salt) with the bytes. A reader with consent gets the record and its category,
/// checked against the chain; a gatekeeper (or anyone with its database) that serves another
/// category or salt for the record is refused by the CLI, nothing written. Before the change
/// the gatekeeper sent no opening, and the read path had none to check.
#[tokio::test(flavor = "multi_thread")]
async fn cli_get_checks_the_opening_against_the_commitment_and_refuses_a_tampered_one() {
    let mut w = World::start().await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    let dir = w.dir.path().to_path_buf();
    for (name, key) in [("holder", &w.gk_holder), ("reader", &reader)] {
        import_key(&w, name, key);
    }
    w.start_gatekeeper(&["--record-cache-secs", "1"]).await;
    let cli = |args: &[&str]| run_cli(&w, args);
    w.grant(&patient, w.gk_holder.address(), LABS, 3_600).await;
    // The reader may read labs and notes: a swapped category is readable, so only the
    // commitment can tell it from the true one.
    w.grant(&patient, reader.address(), LABS | NOTES, 3_600)
        .await;
    let file = dir.join("obs.json");
    std::fs::write(&file, fhir_example("Observation-example.json")).unwrap();
    let (file_arg, patient_arg) = (
        file.to_string_lossy().to_string(),
        patient.address().to_string(),
    );
    let out = cli(&[
        "--json",
        "-a",
        "holder",
        "put",
        &file_arg,
        "--patient",
        &patient_arg,
        "-c",
        "labs",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let put: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = put["data"]["recordId"].as_str().unwrap().to_string();
    let record_id: alloy::primitives::B256 = id.parse().unwrap();

    // The gatekeeper's answer carries the opening, which opens the commitment on chain.
    let (status, bytes, opening) = w.read_with_opening(&reader, record_id).await;
    assert_eq!(status, 200);
    let opening = opening.expect("an opening header");
    assert_eq!(opening.category, 3);
    let registry = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gov));
    let committed = registry
        .pointerOf(record_id)
        .call()
        .await
        .unwrap()
        .commitment;
    let hash = alloy::primitives::B256::from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert!(opening.opens(committed, patient.address(), w.gk_holder.address(), hash));
    // Nothing on chain or in the event names the category or the content hash.
    assert_ne!(committed, hash);

    // The reader's CLI checks it and says the category.
    let out = cli(&[
        "--json",
        "-a",
        "reader",
        "get",
        &id,
        "--out",
        &dir.join("ok.json").to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["data"]["verified"], true);
    assert_eq!(got["data"]["category"], "labs");

    // A gatekeeper that lies about the opening (its operator, or whoever answers at its
    // endpoint) serves the true bytes with another category the reader may read, then with
    // another salt. The CLI refuses each (exit 9, MISMATCH), nothing written.
    let bytes = fhir_example("Observation-example.json");
    let served = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let app = {
        let (served, bytes) = (served.clone(), bytes.clone());
        axum::Router::new().route(
            medrec_protocol::records::READ_ROUTE,
            axum::routing::post(move || {
                let (served, bytes) = (served.clone(), bytes.clone());
                async move {
                    let opening = served.lock().unwrap().clone();
                    (
                        [
                            (
                                "content-type",
                                medrec_protocol::records::FHIR_JSON.to_string(),
                            ),
                            (medrec_protocol::records::OPENING_HEADER, opening),
                        ],
                        bytes,
                    )
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    medrec_test_support::register_holder(
        &w.as_(&w.gk_holder),
        w.records_address(),
        &liar,
        w.gk_holder.address(),
    )
    .await;
    let true_salt = opening.salt;
    for (what, lie) in [
        (
            "category",
            medrec_protocol::records::Opening {
                category: 8,
                salt: true_salt,
            },
        ),
        (
            "salt",
            medrec_protocol::records::Opening {
                category: 3,
                salt: B256::repeat_byte(7),
            },
        ),
    ] {
        *served.lock().unwrap() = lie.to_header();
        let target = dir.join(format!("lied-{what}.json"));
        let out = cli(&[
            "-a",
            "reader",
            "get",
            &id,
            "--out",
            &target.to_string_lossy(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(9),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("MISMATCH") && err.contains("opening"),
            "{what}: {err}"
        );
        assert!(!target.exists(), "{what}: nothing written on a mismatch");
    }
    // The true opening passes, from the same server: only the opening was wrong.
    *served.lock().unwrap() = opening.to_header();
    let out = cli(&[
        "-a",
        "reader",
        "get",
        &id,
        "--out",
        &dir.join("true.json").to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The gatekeeper checks every read with the category its row keeps, bound to the pointer's
/// commitment through the record id: a row whose category (or salt) was changed in its
/// database, to serve the record to a grantee of another category, is refused as damaged and
/// the refusal logged. Before the check, the changed category decided the read.
#[tokio::test(flavor = "multi_thread")]
async fn a_category_changed_in_the_database_does_not_decide_a_read() {
    let w = World::start().await;
    let (patient, labs_reader) = (w.account().await, w.account().await);
    w.credential(labs_reader.address()).await;
    // The reader may read labs only; the record is a note.
    w.grant(&patient, labs_reader.address(), LABS, 3_600).await;
    let id = w
        .upload(
            patient.address(),
            8,
            br#"{"resourceType":"DocumentReference","id":"note"}"#,
        )
        .await;
    assert_eq!(w.read(&labs_reader, id).await.0, 403);
    for sql in [
        format!(
            "UPDATE gk_records SET category = 3 WHERE record_id = '\\x{}'",
            alloy::hex::encode(id)
        ),
        format!(
            "UPDATE gk_records SET category = 3, salt = '\\x{}' WHERE record_id = '\\x{}'",
            alloy::hex::encode([9u8; 32]),
            alloy::hex::encode(id)
        ),
    ] {
        w.sql(sql).await;
        let (status, body) = w.read(&labs_reader, id).await;
        assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "integrity");
    }
    let log = w.log().await;
    assert!(
        log.iter()
            .any(|(who, allowed, why)| *who == labs_reader.address()
                && !allowed
                && why.contains("does not make the record id")),
        "{log:?}"
    );
    // Nor does the listing name it, to the labs reader or anyone.
    for who in [&labs_reader, &patient] {
        let (_, l) = w.list_as(who, patient.address()).await;
        assert!(l.unwrap().records.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_put_get_verifies_and_catches_tampering_at_rest() {
    let mut w = World::start().await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    let dir = w.dir.path().to_path_buf();
    for (name, key) in [
        ("holder", &w.gk_holder),
        ("reader", &reader),
        ("patient", &patient),
    ] {
        import_key(&w, name, key);
    }
    // The gatekeeper anchors its log head every second with the holder's keystore.
    let keystore = dir.join("keystores/holder").to_string_lossy().to_string();
    let password = dir.join("password").to_string_lossy().to_string();
    w.start_gatekeeper(&[
        "--anchor-keystore",
        &keystore,
        "--anchor-password-file",
        &password,
        "--anchor-every",
        "1",
        "--record-cache-secs",
        "1",
    ])
    .await;
    let cli = |args: &[&str]| run_cli(&w, args);
    w.grant(&patient, w.gk_holder.address(), LABS, 3_600).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;

    let file = dir.join("obs.json");
    let file_arg = file.to_string_lossy().to_string();
    let patient_arg = patient.address().to_string();
    std::fs::write(&file, fhir_example("Observation-example.json")).unwrap();
    let put_args = [
        "--json",
        "-a",
        "holder",
        "put",
        &file_arg,
        "--patient",
        &patient_arg,
        "-c",
        "labs",
    ];
    let out = cli(&put_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let put: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = put["data"]["recordId"].as_str().unwrap().to_string();
    // Putting it again is harmless: same id, already anchored.
    let out = cli(&put_args);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["data"]["recordId"], id.as_str());
    assert_eq!(again["data"]["alreadyAnchored"], true);

    let got = dir.join("got.json");
    let out = cli(&["-a", "reader", "get", &id, "--out", &got.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&got).unwrap(),
        fhir_example("Observation-example.json")
    );

    // Someone with the master key swaps the bytes at rest: the gatekeeper serves them, the
    // client's hash check against the chain refuses them, and nothing is written.
    let record_id: alloy::primitives::B256 = id.parse().unwrap();
    let sealed = medrec_gatekeeper::store::crypto::MasterKey::from_bytes(&[42u8; 32])
        .seal(
            record_id.as_slice(),
            b"{\"resourceType\":\"Observation\",\"valueQuantity\":{\"value\":99}}",
        )
        .unwrap();
    w.sql(format!(
        "UPDATE gk_records SET data_nonce = '\\x{}', ciphertext = '\\x{}', key_nonce = '\\x{}', wrapped_key = '\\x{}' WHERE record_id = '\\x{}'",
        alloy::hex::encode(&sealed.data_nonce),
        alloy::hex::encode(&sealed.ciphertext),
        alloy::hex::encode(&sealed.key_nonce),
        alloy::hex::encode(&sealed.wrapped_key),
        alloy::hex::encode(record_id)
    ))
    .await;
    // The gatekeeper keeps a record it has read in memory for --record-cache-secs (1 here):
    // after that it reads the swapped bytes.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let tampered_out = dir.join("tampered.json");
    let out = cli(&[
        "-a",
        "reader",
        "get",
        &id,
        "--out",
        &tampered_out.to_string_lossy(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("MISMATCH"));
    assert!(!tampered_out.exists(), "nothing written on a mismatch");

    // A stranger is refused by the gatekeeper, exit 10.
    let stranger = w.account().await;
    import_key(&w, "stranger", &stranger);
    let out = cli(&["-a", "stranger", "get", &id]);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another patient's record is asked for too: this patient does not see that entry.
    let other = w.account().await;
    let other_id = w
        .upload(other.address(), 3, &fhir_example("Patient-example.json"))
        .await;
    let (s, _) = w.read(&reader, other_id).await;
    assert_eq!(s, 403);

    // Wait until the gatekeeper anchored all 4 entries on chain.
    let registry = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gov));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while registry
        .accessLogOf(w.gk_holder.address())
        .call()
        .await
        .unwrap()
        .entries
        < 4
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the log head was not anchored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // The patient reads and verifies the access log of their records against the anchor.
    let holder = w.gk_holder.address().to_string();
    let out = cli(&["--json", "-a", "patient", "access-log", "--holder", &holder]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log["data"]["verified"], true);
    assert_eq!(log["data"]["count"], 4);
    assert_eq!(log["data"]["anchoredEntries"], 4);
    assert_eq!(log["data"]["mine"].as_array().unwrap().len(), 3);

    // A clumsy rewrite of one of the patient's entries: its inclusion proof fails.
    w.sql("UPDATE gk_access_log SET reason = 'nothing to see' WHERE seq = 3".into())
        .await;
    let out = cli(&["-a", "patient", "access-log", "--holder", &holder]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("entry 2 is not in the tree"));
    w.sql("UPDATE gk_access_log SET reason = 'the chain does not allow it' WHERE seq = 3".into())
        .await;

    // A careful rewrite (another patient's entry changed, every leaf recomputed, the
    // gatekeeper restarted on it) serves a tree whose proofs verify, but which no longer
    // matches the root anchored on chain.
    let rows = w.log_rows().await;
    for (seq, mut access, at_ms) in rows {
        if seq == 4 {
            access.requester = Address::ZERO;
            access.reason = "nothing happened".into();
        }
        let leaf = medrec_protocol::access_log::leaf(seq - 1, at_ms, &access);
        w.sql(format!(
            "UPDATE gk_access_log SET requester = '\\x{}', reason = '{}', tree_leaf = '\\x{}' WHERE seq = {seq}",
            alloy::hex::encode(access.requester),
            access.reason,
            alloy::hex::encode(leaf),
        ))
        .await;
    }
    w.start_gatekeeper(&[
        "--anchor-keystore",
        &keystore,
        "--anchor-password-file",
        &password,
        "--anchor-every",
        "1",
    ])
    .await;
    let cli = |args: &[&str]| run_cli(&w, args);
    let out = cli(&["-a", "patient", "access-log", "--holder", &holder]);
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("rewritten"), "{stderr}");
    assert!(stderr.contains("the anchor of 4 entries"), "{stderr}");
}

async fn upload_as(
    w: &World,
    signer: &alloy::signers::local::PrivateKeySigner,
    holder: Address,
    patient: Address,
    hash: alloy::primitives::B256,
    body: Vec<u8>,
) -> (u16, String) {
    let up = medrec_protocol::Upload {
        holder,
        patient,
        category: 3,
        contentHash: hash,
        nonce: random_nonce(),
        issuedAt: now(),
    };
    let r =
        medrec_test_support::send_upload(&w.http, &w.gk_url, &w.domain, signer, &up, body).await;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

fn sha(b: &[u8]) -> alloy::primitives::B256 {
    alloy::primitives::B256::from_slice(&<sha2::Sha256 as sha2::Digest>::digest(b))
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_need_the_holders_signature_and_a_fhir_body() {
    let w = World::start().await;
    let p = w.account().await.address();
    let holder = w.gk_holder.address();
    let body = fhir_example("Patient-example.json");
    let hash = sha(&body);
    let stranger = w.account().await;
    let denied = (403, "denied".to_string());
    assert_eq!(
        upload_as(&w, &stranger, holder, p, hash, body.clone()).await,
        denied
    );
    assert_eq!(
        upload_as(&w, &stranger, stranger.address(), p, hash, body.clone()).await,
        denied
    );
    let wrong = alloy::primitives::B256::repeat_byte(1);
    let r = upload_as(&w, &w.gk_holder, holder, p, wrong, body.clone()).await;
    assert_eq!(r, (400, "hash_mismatch".to_string()));
    let not_fhir = b"{\"hello\":\"world\"}".to_vec();
    let r = upload_as(&w, &w.gk_holder, holder, p, sha(&not_fhir), not_fhir).await;
    assert_eq!(r, (400, "not_fhir".to_string()));
    let r = upload_as(&w, &w.gk_holder, holder, p, hash, body).await;
    assert_eq!(r, (201, String::new()));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_rate_limited_per_requester() {
    let mut w = World::start().await;
    w.start_gatekeeper(&["--rate-per-sec", "0.5", "--burst", "2"])
        .await;
    let (patient, reader, other) = (w.account().await, w.account().await, w.account().await);
    w.credential(reader.address()).await;
    w.credential(other.address()).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    w.grant(&patient, other.address(), LABS, 3_600).await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    assert_eq!(w.read(&reader, id).await.0, 200);
    assert_eq!(w.read(&reader, id).await.0, 200);
    let (s, b) = w.read(&reader, id).await;
    assert_eq!(s, 429);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Another requester has its own allowance.
    assert_eq!(w.read(&other, id).await.0, 200);
    let reasons: Vec<String> = w.log().await.into_iter().map(|(_, _, why)| why).collect();
    assert_eq!(reasons, ["allowed", "allowed", "rate limited", "allowed"]);
}

/// Attack: an outsider who captured one of a requester's signed reads (a proxy log, a shared
/// terminal) replays it. It is refused as a replay, or as expired once its window has passed,
/// or sent to another holder; none of that may spend the victim's read allowance, or the
/// attacker locks the victim out with 429s without ever being able to read.
#[tokio::test(flavor = "multi_thread")]
async fn a_captured_request_replayed_does_not_spend_the_requesters_allowance() {
    let mut w = World::start().await;
    w.start_gatekeeper(&["--rate-per-sec", "0.05", "--burst", "3"])
        .await;
    let (patient, victim) = (w.account().await, w.account().await);
    w.credential(victim.address()).await;
    w.grant(&patient, victim.address(), LABS, 3_600).await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    let t = now();
    let holder = w.gk_holder.address();
    // What the attacker holds: one used request, one that has expired, one for another holder.
    let captured = RecordRequest {
        requester: victim.address(),
        recordId: id,
        audience: holder,
        nonce: random_nonce(),
        issuedAt: t,
        expiresAt: t + READ_VALIDITY_SECS,
    };
    let used = signed_body(&victim, captured.clone(), &w.domain).await;
    let expired = signed_body(
        &victim,
        RecordRequest {
            nonce: random_nonce(),
            issuedAt: t - 600,
            expiresAt: t - 400,
            ..captured.clone()
        },
        &w.domain,
    )
    .await;
    let elsewhere = signed_body(
        &victim,
        RecordRequest {
            nonce: random_nonce(),
            audience: Address::repeat_byte(0x77),
            ..captured.clone()
        },
        &w.domain,
    )
    .await;
    let url = w.read_url(id);
    assert_eq!(w.post(&url, used.clone().into_bytes()).await.0, 200);
    for _ in 0..10 {
        for body in [&used, &expired, &elsewhere] {
            let (status, answer) = w.post(&url, body.clone().into_bytes()).await;
            assert_eq!(status, 403, "{}", String::from_utf8_lossy(&answer));
        }
    }
    // The victim's own reads: the two left of the burst are served.
    assert_eq!(w.read(&victim, id).await.0, 200);
    assert_eq!(w.read(&victim, id).await.0, 200);
    assert_eq!(w.read(&victim, id).await.0, 429, "the burst is 3");
    let reasons: Vec<String> = w.log().await.into_iter().map(|(_, _, why)| why).collect();
    // The replays addressed to another holder are not logged here (only counted).
    assert_eq!(reasons.len(), 1 + 20 + 3, "{reasons:?}");
    assert!(
        !reasons[1..21].iter().any(|r| r == "rate limited"),
        "replays were charged to the victim: {reasons:?}"
    );
    assert_eq!(w.unlogged().await[3], "wrong_audience 10");
}

#[tokio::test(flavor = "multi_thread")]
async fn put_without_a_relationship_is_not_orphaned_and_a_rerun_anchors_it() {
    let w = World::start().await;
    let patient = w.account().await;
    let dir = w.dir.path().to_path_buf();
    import_key(&w, "holder", &w.gk_holder);
    let file = dir.join("obs.json");
    std::fs::write(&file, fhir_example("Observation-example.json")).unwrap();
    let (file_arg, patient_arg) = (
        file.to_string_lossy().to_string(),
        patient.address().to_string(),
    );
    let args = [
        "--json",
        "-a",
        "holder",
        "put",
        &file_arg,
        "--patient",
        &patient_arg,
        "-c",
        "labs",
    ];
    // The patient has not granted the holder anything yet: stored, not anchored, said so.
    let out = run_cli(&w, &args);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("RecordNoRelationship") && msg.contains("run the same command again"),
        "{msg}"
    );
    // Once the patient grants, the same command anchors the stored record.
    w.grant(&patient, w.gk_holder.address(), LABS, 3_600).await;
    let out = run_cli(&w, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["alreadyAnchored"], false);
    assert!(v["data"]["tx"]["blockNumber"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn import_stores_and_anchors_a_manifest_and_a_rerun_finishes_it() {
    let w = World::start().await;
    let (granted, later) = (w.account().await, w.account().await);
    let dir = w.dir.path().to_path_buf();
    import_key(&w, "holder", &w.gk_holder);
    w.grant(&granted, w.gk_holder.address(), LABS, 3_600).await;
    // Four official examples: three for a patient who granted the holder labs, one for a
    // patient who has not granted anything yet.
    let files = [
        ("Observation-example.json", &granted),
        ("Observation-656.json", &granted),
        ("Observation-abdo-tender.json", &granted),
        ("Observation-alcohol-type.json", &later),
    ];
    let mut entries = vec![];
    for (name, who) in files {
        let bytes = fhir_example(name);
        std::fs::write(dir.join(name), &bytes).unwrap();
        entries
            .push(serde_json::json!({"file": name, "patient": who.address(), "category": "labs"}));
    }
    let manifest = dir.join("manifest.json");
    let manifest_arg = manifest.to_string_lossy().to_string();
    let import = |extra: &[&str]| {
        let mut args: Vec<&str> = vec![
            "--json",
            "-a",
            "holder",
            "import",
            manifest_arg.as_str(),
            "--batch-size",
            "2",
        ];
        args.extend_from_slice(extra);
        let out = run_cli(&w, &args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), v)
    };
    let stored = || async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&w.db_url()).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM gk_records")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };

    // A bad entry is reported with its place before anything is uploaded.
    let mut bad = entries.clone();
    bad[2]["category"] = "x-rays".into();
    std::fs::write(&manifest, serde_json::to_vec(&bad).unwrap()).unwrap();
    let (code, v) = import(&[]);
    assert_eq!(code, Some(2), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("manifest entry 3"),
        "{v}"
    );
    assert_eq!(stored().await, 0, "nothing uploaded");

    // Everything is uploaded; the second patient's pointer cannot be anchored yet.
    std::fs::write(&manifest, serde_json::to_vec(&entries).unwrap()).unwrap();
    let (code, v) = import(&[]);
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["error"]["revert"]["name"], "RecordNoRelationship", "{v}");
    assert_eq!(
        stored().await,
        4,
        "every record is stored at the gatekeeper"
    );

    // Once the patient grants, the same command finishes: what was anchored is skipped.
    w.grant(&later, w.gk_holder.address(), LABS, 3_600).await;
    let report = dir.join("report.json");
    let report_arg = report.to_string_lossy().to_string();
    let (code, v) = import(&["--report", &report_arg]);
    assert_eq!(code, Some(0), "{v}");
    let d = &v["data"];
    assert_eq!(d["records"], 4);
    assert_eq!(
        d["alreadyAnchored"].as_u64().unwrap() + d["anchored"].as_u64().unwrap(),
        4,
        "{d}"
    );
    assert!(d["anchored"].as_u64().unwrap() >= 1, "{d}");
    let written: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(written["data"], *d, "the report is the result");
    // Issue 16: a record's id comes from the salt its gatekeeper chose, so the ids are the
    // gatekeeper's; each is anchored with the commitment of the opening kept there.
    // (record id, patient, category, content hash, salt) as stored.
    type Kept = (Vec<u8>, Vec<u8>, i16, Vec<u8>, Vec<u8>);
    let kept: Vec<Kept> = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&w.db_url()).await.unwrap();
        sqlx::query_as("SELECT record_id, patient, category, content_hash, salt FROM gk_records")
            .fetch_all(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(kept.len(), 4);
    let records = medrec_bindings::RecordRegistry::new(w.records_address(), w.as_(&w.gov));
    for (id, patient, category, hash, salt) in &kept {
        let id = alloy::primitives::B256::from_slice(id);
        let opening = medrec_protocol::records::Opening {
            category: *category as u8,
            salt: alloy::primitives::B256::from_slice(salt),
        };
        let p = records.pointerOf(id).call().await.unwrap();
        assert!(
            opening.opens(
                p.commitment,
                alloy::primitives::Address::from_slice(patient),
                w.gk_holder.address(),
                alloy::primitives::B256::from_slice(hash)
            ),
            "{id} anchored with its opening's commitment"
        );
    }
    // A third run has nothing left to anchor (its uploads find the records kept: the ids
    // are the gatekeeper's to give, so every record is sent again, and stored once).
    let (code, v) = import(&[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["data"]["alreadyAnchored"], 4);
    assert_eq!(v["data"]["anchored"], 0);
    assert_eq!(stored().await, 4);
}

/// Eight reads by `who` at once; their statuses.
async fn eight_reads(
    w: &World,
    who: &alloy::signers::local::PrivateKeySigner,
    id: alloy::primitives::B256,
) -> Vec<u16> {
    let r = tokio::join!(
        w.read(who, id),
        w.read(who, id),
        w.read(who, id),
        w.read(who, id),
        w.read(who, id),
        w.read(who, id),
        w.read(who, id),
        w.read(who, id),
    );
    [r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7]
        .into_iter()
        .map(|(status, body)| {
            if status != 200 {
                assert!(
                    !String::from_utf8_lossy(&body).contains("resourceType"),
                    "a refused read served the record"
                );
            }
            status
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_that_cannot_be_logged_is_not_served_and_the_log_stays_whole() {
    use sqlx::Connection;
    let mut w = World::start().await;
    w.start_gatekeeper(&[]).await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    for _ in 0..4 {
        assert_eq!(eight_reads(&w, &reader, id).await, [200; 8]);
    }
    // The database refuses every log entry: nothing is served, every read says why.
    w.sql(
        "CREATE FUNCTION gk_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            .into(),
    )
    .await;
    w.sql(
        "CREATE TRIGGER gk_test_refuse BEFORE INSERT ON gk_access_log
           FOR EACH ROW EXECUTE FUNCTION gk_test_refuse()"
            .into(),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(eight_reads(&w, &reader, id).await, [503; 8]);
    }
    w.sql("DROP TRIGGER gk_test_refuse ON gk_access_log".into())
        .await;
    // Reads go on, and the log has no gap: its leaves are exactly the entries of the reads
    // that were served, and the root the gatekeeper reports is theirs.
    for _ in 0..4 {
        assert_eq!(eight_reads(&w, &reader, id).await, [200; 8]);
    }
    let rows = w.log_rows().await;
    assert_eq!(rows.len(), 64);
    let mut c = sqlx::PgConnection::connect(&w.db_url()).await.unwrap();
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT tree_leaf FROM gk_access_log ORDER BY seq")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let mut tree = medrec_protocol::merkle::RootBuilder::new();
    for (i, ((seq, access, at_ms), stored_leaf)) in rows.iter().zip(&stored).enumerate() {
        assert_eq!(*seq, i as u64 + 1, "no gap in the sequence");
        assert!(access.allowed);
        let leaf = medrec_protocol::access_log::leaf(*seq - 1, *at_ms, access);
        assert_eq!(
            stored_leaf.as_slice(),
            leaf.as_slice(),
            "entry {seq}'s leaf"
        );
        tree.push(leaf);
    }
    let prev = tree.root();
    assert_eq!(w.log_head().await, (64, prev));
}

/// The gatekeeper asks its node for the requester's readable mask and checks the record's
/// category itself: whoever runs the node is never told the category of a record read (the
/// chain's commitments hide it). Failed before: every read called canRead(requester, patient,
/// category).
#[tokio::test]
async fn the_node_is_not_told_the_category_of_a_read() {
    use alloy::sol_types::SolCall;
    let mut w = World::start().await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    w.grant(&patient, reader.address(), LABS, 3_600).await;
    let port: u16 = w
        .rpc
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (proxied, log) = medrec_test_support::logging_rpc_proxy(port);
    w.rpc = proxied;
    w.start_gatekeeper(&[]).await;
    let labs = w
        .upload(
            patient.address(),
            3,
            br#"{"resourceType":"Observation","id":"lab"}"#,
        )
        .await;
    let note = w
        .upload(
            patient.address(),
            8,
            br#"{"resourceType":"DocumentReference","id":"note"}"#,
        )
        .await;
    log.lock().unwrap().clear();
    assert_eq!(w.read(&reader, labs).await.0, 200);
    assert_eq!(w.read(&reader, note).await.0, 403);
    let can_read = alloy::hex::encode(ConsentRegistry::canReadCall::SELECTOR);
    let readable = alloy::hex::encode(ConsentRegistry::readableCategoriesCall::SELECTOR);
    let bodies: Vec<String> = log.lock().unwrap().drain(..).collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.to_ascii_lowercase().contains(&readable)),
        "the reads did not go through the proxy: {bodies:#?}"
    );
    assert!(
        !bodies
            .iter()
            .any(|b| b.to_ascii_lowercase().contains(&can_read)),
        "canRead (with its category) sent to the node: {bodies:#?}"
    );
}
