//! The order of anchors (issue 16, step 4's review): the logs of one patient's records, anchored
//! in one transaction, are in record-id order, which is random as the salts are, never in the
//! manifest's order (the demo's lists a patient's records by category name).

use crate::harness::{World, import_key, run_cli};
use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;

/// Replays the attack: a manifest listing one patient's six records by category name, imported
/// with `medrec import`; a consortium member reads the order of the `PointerAnchored` logs.
/// Before the fix they ran in manifest order (allergies, conditions, ... vitals); now they run
/// in record-id order, which tells nothing of the categories.
#[tokio::test(flavor = "multi_thread")]
async fn import_anchors_a_patients_records_in_record_id_order_not_the_manifests() {
    let w = World::start().await;
    let patient = w.account().await;
    import_key(&w, "holder", &w.gk_holder);
    let cats = [
        "allergies",
        "conditions",
        "demographics",
        "labs",
        "medications",
        "vitals",
    ];
    let mask: u64 = cats.iter().fold(0, |m, n| {
        m | 1 << medrec_bindings::category_index(n).unwrap()
    });
    w.grant(&patient, w.gk_holder.address(), mask, 3_600).await;
    let dir = w.dir.path();
    let mut entries = vec![];
    for (i, name) in cats.iter().enumerate() {
        std::fs::write(
            dir.join(format!("{name}.json")),
            format!("{{\"resourceType\":\"Bundle\",\"id\":\"{i}\"}}"),
        )
        .unwrap();
        entries.push(serde_json::json!({"file": format!("{name}.json"),
            "patient": patient.address(), "category": name}));
    }
    std::fs::write(
        dir.join("m.json"),
        serde_json::Value::Array(entries).to_string(),
    )
    .unwrap();
    let out = run_cli(
        &w,
        &[
            "-a",
            "holder",
            "import",
            &dir.join("m.json").to_string_lossy(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = w
        .as_(&w.gov)
        .get_logs(
            &Filter::new()
                .address(w.records_address())
                .event_signature(medrec_bindings::RecordRegistry::PointerAnchored::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .unwrap();
    let on_chain: Vec<B256> = logs.iter().map(|l| l.topics()[1]).collect();
    assert_eq!(on_chain.len(), cats.len());
    assert_eq!(
        logs.iter()
            .map(|l| l.transaction_hash)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1,
        "one transaction"
    );
    let mut sorted = on_chain.clone();
    sorted.sort();
    assert_eq!(on_chain, sorted, "anchored in record-id order");
}
