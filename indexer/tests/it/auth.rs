//! Who may read the per-patient and per-grantee answers (issue 16): the attack is an outsider
//! asking the indexer who is treated where. Every such route refuses an unsigned request, one
//! signed by a stranger, a replayed one, an expired one and one signed for another request;
//! it answers the patient, a live guardian (not one whose guardianship expired), the grantee
//! for its own list, and the parties named for `/v1/access` and `/v1/pointers/{id}`.

use crate::harness::*;
use alloy::primitives::Address;
use medrec_protocol::clock::now_secs;
use medrec_protocol::envelope::random_nonce;
use medrec_protocol::indexer_auth::get_request;
use serde_json::Value;

const LABS: u64 = 1 << 3;

/// Checks the refusals every protected route gives, then that each of `entitled` is answered.
async fn only_these_may_ask(idx: &Indexer, path: &str, entitled: &[Address], stranger: Address) {
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_string();
    // No signature.
    let (status, v) = idx.get_with(path, None).await;
    assert_eq!(
        (status, code(&v)),
        (401, "unauthenticated".into()),
        "{path} unsigned: {v}"
    );
    // Not a signed request.
    let (status, v) = idx.get_with(path, Some("{\"request\":1}")).await;
    assert_eq!(status, 401, "{path} garbled: {v}");
    // Signed by someone not entitled.
    let (status, v) = idx.get_as(stranger, path).await;
    assert_eq!(
        (status, code(&v)),
        (403, "denied".into()),
        "{path} by a stranger: {v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("only"),
        "a refusal says who may ask: {v}"
    );
    let who = entitled[0];
    // Signed for another request (another query of the same path).
    let sep = if path.contains('?') { '&' } else { '?' };
    let other = idx.sign_as(who, &format!("{path}{sep}min_block=0")).await;
    let (status, v) = idx.get_with(path, Some(&other)).await;
    assert_eq!(status, 401, "{path} signed for another request: {v}");
    // Expired (a window of 60 s that ended 40 s ago).
    let now = now_secs();
    let mut old = get_request(who, path, random_nonce(), now - 100);
    old.expiresAt = now - 40;
    let old = idx.sign_by_node(old).await;
    let (status, v) = idx.get_with(path, Some(&old)).await;
    assert_eq!(status, 401, "{path} expired: {v}");
    // Replayed: answered once, refused the second time.
    let header = idx.sign_as(who, path).await;
    let (status, v) = idx.get_with(path, Some(&header)).await;
    assert_eq!(status, 200, "{path} by {who}: {v}");
    let (status, v) = idx.get_with(path, Some(&header)).await;
    assert_eq!(
        (status, code(&v), v["error"]["message"].as_str()),
        (401, "unauthenticated".into(), Some("replayed nonce")),
        "{path} replayed"
    );
    for who in entitled {
        idx.get_ok_as(*who, path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_learns_nothing_about_who_is_treated_where() {
    let w = World::deploy().await;
    let db = TestDb::create("auth").await;
    let (p1, h1, h2) = (w.a(P1), w.a(H1), w.a(H2));
    let (guardian, brief_guardian, stranger) = (w.a(GUARDIAN), w.a(P3), w.a(STRANGER));
    let exp = w.now().await + YEAR;
    w.issue(h1, 1, "h1", exp).await;
    w.issue(h2, 1, "h2", exp).await;
    // The patient's records at H1: labs and mental health.
    const MENTAL: u64 = 1 << 10;
    w.grant(p1, h1, LABS | MENTAL, exp).await;
    w.anchor_batch(
        h1,
        vec![pointer("auth-0", p1, 3), pointer("auth-mental", p1, 10)],
    )
    .await;
    let record = record_id(h1, p1, "auth-0");
    let mental_record = record_id(h1, p1, "auth-mental");
    // One guardian for every category; another, for a while, for labs only.
    let every = medrec_bindings::CATEGORIES
        .iter()
        .fold(0u64, |m, (_, bit)| m | 1 << bit);
    w.set_guardian(p1, guardian, every, exp).await;
    let brief_until = w.now().await + 600;
    w.set_guardian(p1, brief_guardian, LABS, brief_until).await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    wait_indexed(&w, &db, &mut idx).await;
    // A nonce long expired (as a restarted indexer finds them): pruned by the first request.
    sqlx::query("INSERT INTO api_request_nonces (key, expires_at) VALUES ($1, $2)")
        .bind(vec![7u8; 32])
        .bind(now_secs() as i64 - 600)
        .execute(&db.pool)
        .await
        .unwrap();

    // The patient's own routes: the patient and both guardians (live now) for grants; the
    // timeline, which belongs to no one category, and the pointers, whose categories the
    // indexer no longer knows (issue 16: a pointer carries a commitment), not to the guardian
    // of labs only. (A patient's studies are no longer the indexer's to tell, issue 16 step 6:
    // the route is gone.)
    for route in ["timeline", "grants", "pointers"] {
        let path = format!("/v1/patients/{p1}/{route}");
        if route == "timeline" || route == "pointers" {
            only_these_may_ask(&idx, &path, &[p1, guardian], stranger).await;
            let (status, v) = idx.get_as(brief_guardian, &path).await;
            assert_eq!(status, 403, "{path} by a guardian of labs only: {v}");
        } else {
            only_these_may_ask(&idx, &path, &[p1, guardian, brief_guardian], stranger).await;
        }
        // A grantee of the patient is no guardian.
        let (status, v) = idx.get_as(h1, &path).await;
        assert_eq!(status, 403, "{path} by a grantee: {v}");
    }
    // A grantee's list: the grantee only, not even a patient on it.
    let path = format!("/v1/grantees/{h1}/patients");
    only_these_may_ask(&idx, &path, &[h1], stranger).await;
    let (status, v) = idx.get_as(p1, &path).await;
    assert_eq!(status, 403, "{path} by a patient: {v}");
    // Access: the patient, their guardian, the grantee asking about itself; not another
    // provider asking about it.
    let path = format!("/v1/access?grantee={h1}&patient={p1}&category=labs");
    only_these_may_ask(&idx, &path, &[p1, guardian, h1], stranger).await;
    let (status, v) = idx.get_as(h2, &path).await;
    assert_eq!(status, 403, "{path} by another provider: {v}");
    // A pointer: its patient, their guardian, its holder; a provider without a grant is
    // refused until the patient grants it the record's category.
    let path = format!("/v1/pointers/{record}");
    only_these_may_ask(&idx, &path, &[p1, guardian, brief_guardian, h1], stranger).await;
    // A guardian sees only what their scope covers (review of the signed API: a guardian of
    // labs read the patient's mental-health records and every grant): its access answer and
    // the grants narrowed to labs. A single pointer goes to anyone with a live relationship
    // with its patient (issue 16: its category is committed, so the indexer cannot narrow by
    // it, and it tells nothing but that the holder keeps some record of the patient): the
    // guardian of labs gets the mental-health pointer, without its category; its category
    // and bytes stay with the holder's gatekeeper, which checks the guardian's scope.
    let mental = format!("/v1/pointers/{mental_record}");
    only_these_may_ask(&idx, &mental, &[p1, guardian, brief_guardian, h1], stranger).await;
    let access_mental = format!("/v1/access?grantee={h1}&patient={p1}&category=mental-health");
    let (status, v) = idx.get_as(brief_guardian, &access_mental).await;
    assert_eq!(
        status, 403,
        "{access_mental} by a guardian of labs only: {v}"
    );
    let listed = |v: &serde_json::Value| v["pointers"].as_array().unwrap().len();
    let all: serde_json::Value = idx
        .get_ok_as(p1, &format!("/v1/patients/{p1}/pointers"))
        .await;
    assert_eq!(listed(&all), 2, "{all}");
    let grants: serde_json::Value = idx
        .get_ok_as(brief_guardian, &format!("/v1/patients/{p1}/grants"))
        .await;
    for g in grants["grants"].as_array().unwrap() {
        assert_eq!(g["categories"], serde_json::json!(["labs"]), "{grants}");
    }
    let (status, v) = idx.get_as(h2, &path).await;
    assert_eq!(status, 403, "{path} by a provider without a grant: {v}");
    w.grant(p1, h2, LABS, exp).await;
    wait_indexed(&w, &db, &mut idx).await;
    idx.get_ok_as(h2, &path).await;
    // An unknown record is refused as one not the asker's.
    let unknown = format!("/v1/pointers/{}", record_id(h1, p1, "never"));
    let (status, v) = idx.get_as(p1, &unknown).await;
    assert_eq!(status, 403, "{unknown}: {v}");

    // The brief guardianship ends: from the first indexed block past it, refused.
    w.rpc("evm_increaseTime", serde_json::json!([700])).await;
    w.rpc("evm_mine", serde_json::json!([])).await;
    wait_indexed(&w, &db, &mut idx).await;
    assert!(w.now().await >= brief_until);
    for path in [
        format!("/v1/patients/{p1}/grants"),
        format!("/v1/pointers/{mental_record}"),
    ] {
        let (status, v) = idx.get_as(brief_guardian, &path).await;
        assert_eq!(status, 403, "{path} by an expired guardian: {v}");
        idx.get_ok_as(guardian, &path).await;
    }

    // Public: health, studies, holders' log anchors, unsigned.
    for path in [
        "/health".to_string(),
        "/v1/studies".to_string(),
        format!("/v1/holders/{h1}/access-log-anchors"),
    ] {
        let (status, v) = idx.get_with(&path, None).await;
        assert_eq!(status, 200, "{path}: {v}");
    }
    // The nonce table lists no requester.
    let keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key FROM api_request_nonces")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(keys.len() > 20, "{}", keys.len());
    assert!(!keys.contains(&vec![7u8; 32]), "an expired nonce is pruned");
    for who in [p1, h1, h2, guardian, brief_guardian, stranger] {
        assert!(
            keys.iter()
                .all(|k| !k.windows(20).any(|x| x == who.as_slice())),
            "a nonce row names {who}"
        );
    }
}
