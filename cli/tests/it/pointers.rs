//! Record pointers: anchor, batch, supersede, show, verify.

use crate::harness::Env;

const OBSERVATION: &str = r#"{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"718-7"}]},"valueQuantity":{"value":13.2,"unit":"g/dL"}}"#;

#[test]
fn provider_anchors_shows_and_verifies() {
    let env = Env::deployed();
    let p = env.addr("patient");
    let h = env.addr("hospital-a");
    let file = env.write("obs.json", OBSERVATION);

    // No relationship yet: refused by name.
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-a",
            "anchor",
            &file,
            "--patient",
            &p,
            "-c",
            "labs",
            "--locator",
            "https://a.example/r/1",
        ],
    );
    assert!(e.contains("RecordNoRelationship"), "{e}");

    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "90d"]);
    let a = env.json(&[
        "-a",
        "hospital-a",
        "anchor",
        &file,
        "--patient",
        &p,
        "-c",
        "labs",
        "--locator",
        "https://a.example/r/1",
    ]);
    let id = a["recordId"].as_str().unwrap().to_string();
    let sha = a["contentHash"].as_str().unwrap().to_string();
    let expected = {
        use sha2::Digest;
        format!(
            "0x{}",
            alloy::hex::encode(sha2::Sha256::digest(OBSERVATION.as_bytes()))
        )
    };
    assert_eq!(sha, expected);

    let shown = env.json(&["pointer", "show", &id]);
    assert_eq!(shown["holder"], h.as_str());
    assert_eq!(shown["patient"], p.as_str());
    assert_eq!(shown["category"], "labs");
    assert_eq!(shown["locator"], "https://a.example/r/1");
    assert!(shown["supersededBy"].is_null());

    assert_eq!(
        env.json(&["pointer", "verify", &id, &file])["verified"],
        true
    );
    let tampered = env.write("tampered.json", &OBSERVATION.replace("13.2", "31.2"));
    let e = env.fail(9, &["pointer", "verify", &id, &tampered]);
    assert!(e.contains("MISMATCH"), "{e}");

    // Anchoring the same record again is refused.
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-a",
            "anchor",
            &file,
            "--patient",
            &p,
            "-c",
            "labs",
            "--locator",
            "https://a.example/r/1",
        ],
    );
    assert!(e.contains("RecordExists"), "{e}");

    // An amendment supersedes; nothing is deleted.
    let amended = env.write("obs-v2.json", &OBSERVATION.replace("final", "amended"));
    let a2 = env.json(&[
        "-a",
        "hospital-a",
        "anchor",
        &amended,
        "--patient",
        &p,
        "-c",
        "labs",
        "--locator",
        "https://a.example/r/1v2",
        "--supersedes",
        &id,
    ]);
    let id2 = a2["recordId"].as_str().unwrap();
    assert_eq!(env.json(&["pointer", "show", &id])["supersededBy"], id2);
    assert_eq!(
        env.json(&["pointer", "verify", &id, &file])["verified"],
        true
    );
    // Another holder cannot supersede it.
    env.json(&[
        "-a",
        "patient",
        "grant",
        &env.addr("hospital-b"),
        "-c",
        "labs",
        "--for",
        "90d",
    ]);
    let other = env.write(
        "other.json",
        "{\"resourceType\":\"Observation\",\"id\":\"b\"}",
    );
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-b",
            "anchor",
            &other,
            "--patient",
            &p,
            "-c",
            "labs",
            "--locator",
            "https://b.example/1",
            "--supersedes",
            id2,
        ],
    );
    assert!(e.contains("RecordInvalidSupersede"), "{e}");

    let e = env.fail(2, &["pointer", "show", "0x1234"]);
    assert!(e.contains("64 hex"), "{e}");
    let e = env.fail(2, &["pointer", "show", "no-such-record"]);
    assert!(e.contains("unknown record"), "{e}");
}

#[test]
fn batch_anchoring_from_a_manifest() {
    let env = Env::deployed();
    let p = env.addr("patient");
    let p2 = env.addr("guardian");
    let h = env.addr("hospital-a");
    env.json(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs,notes",
        "--for",
        "90d",
    ]);
    env.json(&["-a", "guardian", "grant", &h, "-c", "labs", "--for", "90d"]);
    let mut entries = vec![];
    for i in 0..60 {
        env.write(
            &format!("records/r{i}.json"),
            &format!("{{\"resourceType\":\"Observation\",\"id\":\"{i}\"}}"),
        );
        let patient = if i % 3 == 0 { &p2 } else { &p };
        entries.push(
            serde_json::json!({"file": format!("records/r{i}.json"), "patient": patient,
            "category": "labs", "locator": format!("https://a.example/r/{i}")}),
        );
    }
    env.write(
        "manifest.json",
        &serde_json::Value::Array(entries.clone()).to_string(),
    );
    let r = env.json(&[
        "-a",
        "hospital-a",
        "anchor-batch",
        "manifest.json",
        "--batch-size",
        "25",
    ]);
    assert_eq!(r["anchored"], 60);
    assert_eq!(r["txs"].as_array().unwrap().len(), 3);
    let ids = r["recordIds"].as_array().unwrap();
    let last = ids[59].as_str().unwrap();
    assert_eq!(
        env.json(&["pointer", "show", last])["locator"],
        "https://a.example/r/59"
    );
    assert!(r["gasUsed"].as_u64().unwrap() / 60 < 40_000);

    // A bad entry stops everything before any transaction.
    let mut bad = entries.clone();
    bad[1]["category"] = serde_json::json!("xrays");
    env.write("bad.json", &serde_json::Value::Array(bad).to_string());
    let e = env.fail(2, &["-a", "hospital-a", "anchor-batch", "bad.json"]);
    assert!(
        e.contains("manifest entry 2") && e.contains("unknown category"),
        "{e}"
    );

    // A batch the contract refuses reverts whole, named: the same content twice for one
    // patient is one record id (ids are bound to holder, patient and content).
    let mut dup = vec![];
    for i in 0..2 {
        env.write(&format!("new/n{i}.json"), "{\"id\":\"same content\"}");
        dup.push(
            serde_json::json!({"file": format!("new/n{i}.json"), "patient": p, "category": "notes",
            "locator": "https://a.example/x"}),
        );
    }
    env.write("dup.json", &serde_json::Value::Array(dup).to_string());
    let e = env.fail(3, &["-a", "hospital-a", "anchor-batch", "dup.json"]);
    assert!(e.contains("RecordExists"), "{e}");
    let dup_id = {
        use sha2::Digest;
        let sha = alloy::primitives::B256::from_slice(&sha2::Sha256::digest(
            b"{\"id\":\"same content\"}",
        ));
        medrec_protocol::records::record_id(h.parse().unwrap(), p.parse().unwrap(), sha).to_string()
    };
    let e = env.fail(2, &["pointer", "show", &dup_id]);
    assert!(
        e.contains("unknown record"),
        "nothing of the failed batch stored: {e}"
    );
    // An id that is not the registry's is refused before anything is sent.
    let mut chosen = entries[..1].to_vec();
    chosen[0]["id"] = serde_json::json!("my-own-id");
    env.write("chosen.json", &serde_json::Value::Array(chosen).to_string());
    let e = env.fail(2, &["-a", "hospital-a", "anchor-batch", "chosen.json"]);
    assert!(
        e.contains("manifest entry 1") && e.contains("is not this record's id"),
        "{e}"
    );
}
