//! Break-glass bounded by policy (issue 14, hole 1), indexed: each opening's review deadline,
//! reviews, openings recorded overdue, providers' unjustified counts, the policy, and patients'
//! rules, as views over the events; the read API's access answer honours the patient's rule.

use crate::harness::*;
use alloy::primitives::aliases::U40;
use alloy::primitives::{Address, B256};
use medrec_bindings::consent_registry::IConsentRegistry::EmergencyPolicy;
use medrec_protocol::commitment;
use serde_json::Value;

const MENTAL: u8 = 10;

/// A row of `emergency_openings`: id, patient, provider, reason hash, status, overdue.
type OpeningRow = (i64, Vec<u8>, Vec<u8>, Vec<u8>, String, bool);
const GENETICS: u8 = 13;

async fn open(w: &World, provider: Address, patient: Address, reason: &str) -> B256 {
    let (_, reason_hash) = commitment::commit(reason);
    let c = w.consent_c();
    w.send(
        "openEmergencyAccess",
        provider,
        c.openEmergencyAccess(patient, reason_hash, U40::from(3_600u64)),
    )
    .await;
    reason_hash
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openings_reviews_rules_and_policy_are_indexed_and_the_rule_holds_in_the_api() {
    let w = World::deploy().await;
    let db = TestDb::create("break_glass").await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let (h1, h2, p1, p2, admin) = (w.a(H1), w.a(H2), w.a(P1), w.a(P2), w.a(ADMIN));
    let exp = w.now().await + YEAR;
    w.issue(h1, 1, "h1", exp).await;
    w.issue(h2, 1, "h2", exp).await;
    let c = w.consent_c();

    // P1 keeps mental-health and genetics out of break-glass; H1 opens to P1, H2 to P2.
    let rule = (1u64 << MENTAL) | (1 << GENETICS);
    w.send("setEmergencyRule", p1, c.setEmergencyRule(rule))
        .await;
    let reason1 = open(&w, h1, p1, "unconscious in the emergency department").await;
    open(&w, h2, p2, "cardiac arrest").await;
    let opened = w.head().await;
    // Governance finds H2's unjustified; H1's is left until it is overdue.
    w.send(
        "reviewEmergencyAccess",
        admin,
        c.reviewEmergencyAccess(2, false),
    )
    .await;
    w.rpc("evm_increaseTime", serde_json::json!([72 * 3600]))
        .await;
    w.rpc("evm_mine", serde_json::json!([])).await;
    w.send(
        "recordEmergencyOverdue",
        w.a(STRANGER),
        c.recordEmergencyOverdue(1),
    )
    .await;
    w.send(
        "clearEmergencyUnjustified",
        admin,
        c.clearEmergencyUnjustified(h2),
    )
    .await;
    let policy = EmergencyPolicy {
        maxOpenings: 2,
        period: U40::from(7 * DAY),
        coolingOff: U40::from(DAY),
        justifyWithin: U40::from(DAY),
        maxUnjustified: 5,
        maxPending: 7,
    };
    w.send("setEmergencyPolicy", admin, c.setEmergencyPolicy(policy))
        .await;
    let head = wait_indexed(&w, &db, &mut idx).await;

    let rows: Vec<OpeningRow> = sqlx::query_as(
        "SELECT opening_id, patient, provider, reason_hash, status, overdue
         FROM emergency_openings ORDER BY opening_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0, rows[0].1.as_slice(), rows[0].2.as_slice()),
        (1, p1.as_slice(), h1.as_slice())
    );
    assert_eq!(rows[0].3, reason1.to_vec());
    assert_eq!((rows[0].4.as_str(), rows[0].5), ("overdue", true));
    assert_eq!((rows[1].4.as_str(), rows[1].5), ("unjustified", false));

    let counts: Vec<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT provider, unjustified FROM emergency_unjustified ORDER BY unjustified DESC",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(counts, vec![(h1.to_vec(), 1), (h2.to_vec(), 0)]);
    let rules: Vec<(Vec<u8>, i64)> =
        sqlx::query_as("SELECT patient, excluded FROM emergency_rules")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rules, vec![(p1.to_vec(), rule as i64)]);
    let p: (i16, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT max_openings, period, cooling_off, justify_within, max_unjustified, max_pending \
         FROM emergency_policy",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(p, (2, 7 * DAY as i64, DAY as i64, DAY as i64, 5, 7));

    // Under break-glass, the API answers as canRead: the rule's categories are not readable.
    let access = |cat: &str, block: u64| {
        format!("/v1/access?grantee={h1}&patient={p1}&category={cat}&block={block}")
    };
    for (cat, allowed) in [
        ("labs", true),
        ("mental-health", false),
        ("genetics", false),
        ("sexual-health", true),
    ] {
        let v: Value = idx.get_ok_as(p1, &access(cat, opened)).await;
        assert_eq!(v["allowed"], allowed, "{cat}: {v}");
        let bit = medrec_bindings::category_index(cat).unwrap();
        let chain = c
            .canRead(h1, p1, bit)
            .block(alloy::eips::BlockId::number(opened))
            .call()
            .await
            .unwrap();
        assert_eq!(chain, allowed, "{cat} on chain");
    }
    assert!(head > opened);
}

/// The patient refuses openings that already ended (review finding A7): after the provider's
/// own close, and after expiry. The chain emits a second close, or a close of an expired
/// access; the indexer keeps every table as the chain says, and the pending bound's policy
/// field is indexed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_refusal_of_an_ended_opening_is_indexed_as_the_chain_holds_it() {
    let w = World::deploy().await;
    let db = TestDb::create("break_glass_refusal").await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let (h1, h2, p1, p2) = (w.a(H1), w.a(H2), w.a(P1), w.a(P2));
    let exp = w.now().await + YEAR;
    w.issue(h1, 1, "h1", exp).await;
    w.issue(h2, 1, "h2", exp).await;

    open(&w, h2, p2, "trauma bay").await;
    w.close_emergency(h2, p2, h2).await;
    w.close_emergency(p2, p2, h2).await;
    open(&w, h1, p1, "stroke").await;
    w.rpc("evm_increaseTime", serde_json::json!([2 * 3600]))
        .await;
    w.rpc("evm_mine", serde_json::json!([])).await;
    w.close_emergency(p1, p1, h1).await;

    let head = wait_indexed(&w, &db, &mut idx).await;
    crate::model::assert_db_matches_chain(&w, &db, head).await;
    let closes: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT patient, by_account FROM ev_emergency_closed ORDER BY block_number, log_index",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        closes,
        vec![
            (p2.to_vec(), h2.to_vec()),
            (p2.to_vec(), p2.to_vec()),
            (p1.to_vec(), p1.to_vec()),
        ]
    );
    let pending: (i64,) = sqlx::query_as("SELECT max_pending FROM emergency_policy")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(pending.0, 5);
}

/// A break-glass opened before the provider's credential was revoked stays ended once the
/// provider is credentialed again, as on chain (review of issue 16's signed API: the access
/// answer and the pointer route said "break-glass" to the re-credentialed provider).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_ended_by_a_revocation_does_not_revive_with_a_new_credential() {
    let w = World::deploy().await;
    let db = TestDb::create("break_glass_recredential").await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let (h1, p1) = (w.a(H1), w.a(P1));
    let exp = w.now().await + YEAR;
    w.issue(h1, 1, "h1", exp).await;
    open(&w, h1, p1, "unconscious").await;
    let opened = w.head().await;
    w.revoke_credential(h1).await;
    w.rpc("evm_increaseTime", serde_json::json!([60])).await;
    w.issue(h1, 1, "h1 again", exp).await;
    let head = wait_indexed(&w, &db, &mut idx).await;
    let c = w.consent_c();
    for (block, want) in [(opened, true), (head, false)] {
        let v: Value = idx
            .get_ok_as(
                p1,
                &format!("/v1/access?grantee={h1}&patient={p1}&category=labs&block={block}"),
            )
            .await;
        assert_eq!(v["allowed"], want, "block {block}: {v}");
        let chain = c
            .canRead(h1, p1, 3)
            .block(alloy::eips::BlockId::number(block))
            .call()
            .await
            .unwrap();
        assert_eq!(chain, want, "block {block} on chain");
    }
}
