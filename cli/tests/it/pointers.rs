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
    // Issue 16: a random salt, printed for the holder to keep; the pointer shows only the
    // commitment it opens.
    let salt = a["salt"].as_str().unwrap().to_string();
    assert_eq!(a["commitment"].as_str().unwrap().len(), 66);

    let shown = env.json(&["pointer", "show", &id]);
    assert_eq!(shown["holder"], h.as_str());
    assert_eq!(shown["patient"], p.as_str());
    assert!(shown["category"].is_null(), "no category on chain: {shown}");
    assert!(
        shown["contentHash"].is_null(),
        "no content hash on chain: {shown}"
    );
    assert_eq!(shown["commitment"], a["commitment"]);
    assert_eq!(shown["locator"], "https://a.example/r/1");
    assert!(shown["supersededBy"].is_null());

    let verify = |f: &str, c: &str, s: &str| {
        vec![
            "pointer".to_string(),
            "verify".into(),
            id.clone(),
            f.into(),
            "-c".into(),
            c.into(),
            "--salt".into(),
            s.into(),
        ]
    };
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    assert_eq!(
        env.json(&args(&verify(&file, "labs", &salt)))["verified"],
        true
    );
    let tampered = env.write("tampered.json", &OBSERVATION.replace("13.2", "31.2"));
    let e = env.fail(9, &args(&verify(&tampered, "labs", &salt)));
    assert!(e.contains("MISMATCH"), "{e}");
    // Another category or no salt opens nothing: a guess cannot be confirmed.
    let e = env.fail(9, &args(&verify(&file, "notes", &salt)));
    assert!(e.contains("MISMATCH"), "{e}");
    let zero = format!("0x{}", "00".repeat(32));
    let e = env.fail(9, &args(&verify(&file, "labs", &zero)));
    assert!(e.contains("MISMATCH"), "{e}");

    // Anchoring the same record again, with its salt, is refused.
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
            "--salt",
            &salt,
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
        env.json(&args(&verify(&file, "labs", &salt)))["verified"],
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
    // Anchored a patient's records together, in record-id order (random, as the salts are),
    // never the manifest's: the logs of each transaction are sorted by (patient, record id).
    use alloy::sol_types::SolEvent;
    for tx in r["txs"].as_array().unwrap() {
        let receipt = env.rpc(
            "eth_getTransactionReceipt",
            &format!(r#"["{}"]"#, tx["txHash"].as_str().unwrap()),
        );
        let anchored: Vec<(String, String)> = receipt["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| {
                l["topics"][0]
                    == medrec_bindings::RecordRegistry::PointerAnchored::SIGNATURE_HASH
                        .to_string()
                        .as_str()
            })
            .map(|l| {
                (
                    l["topics"][2].as_str().unwrap().to_string(),
                    l["topics"][1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut sorted = anchored.clone();
        sorted.sort();
        assert!(anchored.len() >= 10, "{receipt}");
        assert_eq!(anchored, sorted, "anchored in (patient, record id) order");
    }

    // A bad entry stops everything before any transaction.
    let mut bad = entries.clone();
    bad[1]["category"] = serde_json::json!("xrays");
    env.write("bad.json", &serde_json::Value::Array(bad).to_string());
    let e = env.fail(2, &["-a", "hospital-a", "anchor-batch", "bad.json"]);
    assert!(
        e.contains("manifest entry 2") && e.contains("unknown category"),
        "{e}"
    );

    // A salt given must be random and used once: all zeros, or one salt for two entries, is
    // refused before anything is sent (attack review, finding 6: a fixed salt makes the
    // category and the content guessable from the commitment again).
    let salt = format!("0x{}", "ab".repeat(32));
    let other_salt = format!("0x{}", "cd".repeat(32));
    let entry = |i: usize, content: &str, salt: &str| {
        env.write(&format!("new/n{i}.json"), content);
        serde_json::json!({"file": format!("new/n{i}.json"), "patient": p, "category": "notes",
            "locator": "https://a.example/x", "salt": salt})
    };
    let zero = vec![entry(
        0,
        "{\"id\":\"same content\"}",
        &format!("0x{}", "00".repeat(32)),
    )];
    env.write("zero.json", &serde_json::Value::Array(zero).to_string());
    let e = env.fail(2, &["-a", "hospital-a", "anchor-batch", "zero.json"]);
    assert!(
        e.contains("manifest entry 1") && e.contains("hides nothing"),
        "{e}"
    );
    let twice = vec![
        entry(0, "{\"id\":\"same content\"}", &salt),
        entry(1, "{\"id\":\"other content\"}", &salt),
    ];
    env.write("twice.json", &serde_json::Value::Array(twice).to_string());
    let e = env.fail(2, &["-a", "hospital-a", "anchor-batch", "twice.json"]);
    assert!(
        e.contains("manifest entry 2") && e.contains("used by an earlier entry"),
        "{e}"
    );

    // A batch the contract refuses reverts whole, named: a record anchored before, sent again
    // with its salt, is the same record id (ids are bound to holder, patient and commitment).
    let first = vec![entry(0, "{\"id\":\"same content\"}", &salt)];
    env.write(
        "first.json",
        &serde_json::Value::Array(first.clone()).to_string(),
    );
    env.json(&["-a", "hospital-a", "anchor-batch", "first.json"]);
    let dup = vec![
        entry(1, "{\"id\":\"other content\"}", &other_salt),
        first[0].clone(),
    ];
    env.write("dup.json", &serde_json::Value::Array(dup).to_string());
    let e = env.fail(3, &["-a", "hospital-a", "anchor-batch", "dup.json"]);
    assert!(e.contains("RecordExists"), "{e}");
    let dup_id = {
        use sha2::Digest;
        let sha = alloy::primitives::B256::from_slice(&sha2::Sha256::digest(
            b"{\"id\":\"other content\"}",
        ));
        let (h, p) = (h.parse().unwrap(), p.parse().unwrap());
        let opening = medrec_protocol::records::Opening {
            category: 8,
            salt: other_salt.parse().unwrap(),
        };
        medrec_protocol::records::record_id(h, p, opening.commit(p, h, sha)).to_string()
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
