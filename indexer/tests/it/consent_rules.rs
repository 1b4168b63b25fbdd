//! Issue 14's consent rules as the read API answers them: a grant given before the grantee's
//! current credential run (a re-credentialing after a revocation, a lapse or a change of role)
//! does not count, as `canRead` and `grantedCategories` say on chain, while the renewal of a
//! live credential keeps its grants.

use crate::harness::*;
use alloy::eips::BlockId;
use alloy::primitives::Address;
use serde_json::Value;

/// The labs category's index.
const LABS_BIT: u8 = 3;
const LABS: u64 = 1 << LABS_BIT;

/// Advances the chain's clock, so that the next block's time is later than the last one's
/// (anvil gives blocks mined within one second the same time).
async fn tick(w: &World) {
    w.rpc("evm_increaseTime", serde_json::json!([5])).await;
}

/// The API's access answer for `grantee` on `patient`'s labs at `block`, checked against
/// `canRead` at that block; returns it.
async fn access(w: &World, idx: &Indexer, grantee: Address, patient: Address, block: u64) -> bool {
    let v: Value = idx
        .get_ok(&format!(
            "/v1/access?grantee={grantee}&patient={patient}&category=labs&block={block}"
        ))
        .await;
    let chain = w
        .consent_c()
        .canRead(grantee, patient, LABS_BIT)
        .block(BlockId::number(block))
        .call()
        .await
        .unwrap();
    assert_eq!(
        v["allowed"], chain,
        "{grantee} on {patient} at block {block}: {v}"
    );
    chain
}

/// The patient's listed grant to `grantee` (its `live` and `void`), checked against
/// `grantedCategories` at the indexed block.
async fn listed(w: &World, idx: &Indexer, patient: Address, grantee: Address) -> (bool, bool) {
    let v: Value = idx.get_ok(&format!("/v1/patients/{patient}/grants")).await;
    let block = v["block"].as_u64().unwrap();
    let g = v["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grantee"].as_str().unwrap().parse::<Address>().unwrap() == grantee)
        .unwrap_or_else(|| panic!("no grant of {patient} to {grantee}: {v}"))
        .clone();
    let (live, void) = (g["live"].as_bool().unwrap(), g["void"].as_bool().unwrap());
    let granted = w
        .consent_c()
        .grantedCategories(grantee, patient)
        .block(BlockId::number(block))
        .call()
        .await
        .unwrap();
    assert_eq!(live, granted != 0, "{patient}'s grant to {grantee}: {g}");
    // The grantee's listing says the same.
    let by_grantee: Value = idx
        .get_ok(&format!(
            "/v1/grantees/{grantee}/patients?min_block={block}"
        ))
        .await;
    let p = by_grantee["patients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["patient"].as_str().unwrap().parse::<Address>().unwrap() == patient)
        .unwrap_or_else(|| panic!("{grantee} does not list {patient}: {by_grantee}"))
        .clone();
    assert_eq!(
        (p["live"].as_bool(), p["void"].as_bool()),
        (Some(live), Some(void))
    );
    (live, void)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_credentialed_grantee_gets_no_old_grant_back_and_a_renewal_keeps_them() {
    let w = World::deploy().await;
    let db = TestDb::create("recredential").await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let (h1, h2, h3, x) = (w.a(H1), w.a(H2), w.a(H3), w.a(STRANGER));
    let (p1, p2, p3, p4, p5) = (w.a(P1), w.a(P2), w.a(P3), w.a(P4), w.a(P5));
    let exp = w.now().await + YEAR;
    // P5 grants X before X's first credential (a later second).
    w.grant(p5, x, LABS, exp).await;
    tick(&w).await;
    for (h, r) in [(h1, "h1"), (h2, "h2"), (h3, "h3"), (x, "x")] {
        w.issue(h, 1, r, exp).await;
    }
    tick(&w).await;
    w.grant(p1, h1, LABS, exp).await;
    w.grant(p2, h2, LABS, exp).await;
    let before = w.head().await;

    // H1 is revoked and credentialed again; H2's live credential is renewed.
    w.revoke_credential(h1).await;
    let revoked = w.head().await;
    w.issue(h1, 1, "h1 again", exp).await;
    w.issue(h2, 1, "h2 renewed", exp + DAY).await;
    // H3: granted, revoked and re-credentialed, and granted again, all in one block: the grant
    // after the re-issue is in the re-issue's second, before the new run begins.
    w.begin_block().await;
    w.grant(p3, h3, LABS, exp).await;
    w.revoke_credential(h3).await;
    w.issue(h3, 1, "h3 again", exp).await;
    w.grant(p4, h3, LABS, exp).await;
    let same = w.end_block().await;
    // A grant given after the re-credentialing counts.
    tick(&w).await;
    w.grant(p2, h1, LABS, exp).await;
    let head = wait_indexed(&w, &db, &mut idx).await;

    assert!(
        access(&w, &idx, h1, p1, before).await,
        "before the revocation"
    );
    assert!(!access(&w, &idx, h1, p1, revoked).await, "revoked");
    assert!(
        !access(&w, &idx, h1, p1, head).await,
        "re-credentialed: the old grant is void"
    );
    assert!(
        access(&w, &idx, h2, p2, head).await,
        "renewed: the grant holds"
    );
    assert!(
        access(&w, &idx, h1, p2, head).await,
        "granted after the new credential"
    );
    assert!(
        !access(&w, &idx, h3, p3, same).await,
        "granted before the re-issue"
    );
    assert!(
        !access(&w, &idx, h3, p4, same).await,
        "granted in the re-issue's second"
    );
    assert!(
        !access(&w, &idx, x, p5, head).await,
        "granted before the first credential"
    );

    assert_eq!(listed(&w, &idx, p1, h1).await, (false, true));
    assert_eq!(listed(&w, &idx, p2, h2).await, (true, false));
    assert_eq!(listed(&w, &idx, p2, h1).await, (true, false));
    assert_eq!(listed(&w, &idx, p3, h3).await, (false, true));
    assert_eq!(listed(&w, &idx, p4, h3).await, (false, true));
    assert_eq!(listed(&w, &idx, p5, x).await, (false, true));

    // The runs as the registry keeps them.
    let runs: Vec<(Vec<u8>, i64)> =
        sqlx::query_as("SELECT account, valid_since FROM credential_current_runs")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let pr = w.participants_c();
    assert_eq!(runs.len(), 4);
    for (account, since) in runs {
        let a = Address::from_slice(&account);
        let chain = pr.validSinceOf(a).call().await.unwrap();
        assert_eq!(since as u64, chain.to::<u64>(), "validSince of {a}");
    }
}
