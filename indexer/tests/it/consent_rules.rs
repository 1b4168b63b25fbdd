//! Issue 14's consent rules as the read API answers them: a grant given before the grantee's
//! current credential run (a re-credentialing after a revocation, a lapse or a change of role)
//! does not count, as `canRead` and `grantedCategories` say on chain, while the renewal of a
//! live credential keeps its grants; and the patient's timeline shows the cancellations of
//! signed consents and governance's reviews and overdue records of break-glass openings.

use crate::harness::*;
use crate::studies::Registry;
use alloy::eips::BlockId;
use alloy::primitives::Address;
use alloy::primitives::aliases::U40;
use medrec_protocol::commitment;
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
        .get_ok_as(
            patient,
            &format!("/v1/access?grantee={grantee}&patient={patient}&category=labs&block={block}"),
        )
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
    let v: Value = idx
        .get_ok_as(patient, &format!("/v1/patients/{patient}/grants"))
        .await;
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
        .get_ok_as(
            grantee,
            &format!("/v1/grantees/{grantee}/patients?min_block={block}"),
        )
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
    // And once more in the next block, which anvil mines in the same second: the run of H3
    // begins the second after its re-issue, so that grant does not count either.
    let p6 = w.a(P5 + 1);
    w.grant(p6, h3, LABS, exp).await;
    let next = w.head().await;
    let (_, same_t) = w.block(same).await;
    let (_, next_t) = w.block(next).await;
    // A grant given after the re-credentialing counts.
    tick(&w).await;
    w.grant(p2, h1, LABS, exp).await;
    // L's credential lapses and is issued again; C changes role and back, with its credential
    // live throughout: both start new runs, and their grants are void.
    let (l, c, pl, pc) = (w.a(12), w.a(13), w.a(14), w.a(15));
    let soon = w.now().await + 100;
    w.issue(l, 1, "l", soon).await;
    w.issue(c, 1, "c", exp).await;
    tick(&w).await;
    w.grant(pl, l, LABS, exp).await;
    w.grant(pc, c, LABS, exp).await;
    w.rpc("evm_increaseTime", serde_json::json!([200])).await;
    w.issue(l, 1, "l again", exp).await;
    w.issue(c, 2, "c as researcher", exp).await;
    w.issue(c, 1, "c as provider again", exp).await;
    let head = wait_indexed(&w, &db, &mut idx).await;
    // Every table and view as the test's own decoding of the chain implies, credential_runs
    // (validSince as the contract keeps it) among them.
    crate::model::assert_db_matches_chain(&w, &db, head).await;

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
    // anvil mines the next block in the same second unless the second has just turned.
    let later = next_t > same_t;
    assert_eq!(
        access(&w, &idx, h3, p6, next).await,
        later,
        "granted in the block after"
    );

    assert_eq!(listed(&w, &idx, p1, h1).await, (false, true));
    assert_eq!(listed(&w, &idx, p2, h2).await, (true, false));
    assert_eq!(listed(&w, &idx, p2, h1).await, (true, false));
    assert_eq!(listed(&w, &idx, p3, h3).await, (false, true));
    assert_eq!(listed(&w, &idx, p4, h3).await, (false, true));
    assert_eq!(listed(&w, &idx, p5, x).await, (false, true));
    assert_eq!(listed(&w, &idx, p6, h3).await, (later, !later));
    assert!(
        !access(&w, &idx, l, pl, head).await,
        "lapsed and issued again"
    );
    assert!(
        !access(&w, &idx, c, pc, head).await,
        "another role and back"
    );
    assert_eq!(listed(&w, &idx, pl, l).await, (false, true));
    assert_eq!(listed(&w, &idx, pc, c).await, (false, true));

    // The runs as the registry keeps them.
    let runs: Vec<(Vec<u8>, i64)> =
        sqlx::query_as("SELECT account, valid_since FROM credential_current_runs")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let pr = w.participants_c();
    assert_eq!(runs.len(), 6);
    for (account, since) in runs {
        let a = Address::from_slice(&account);
        let chain = pr.validSinceOf(a).call().await.unwrap();
        assert_eq!(since as u64, chain.to::<u64>(), "validSince of {a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_cancelled_signatures_and_break_glass_reviews() {
    let w = World::deploy().await;
    let reg = Registry::deploy(&w).await;
    let db = TestDb::create("timeline_rules").await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let (h1, h2, p1, admin) = (w.a(H1), w.a(H2), w.a(P1), w.a(ADMIN));
    let exp = w.now().await + YEAR;
    w.issue(h1, 1, "h1", exp).await;
    w.issue(h2, 1, "h2", exp).await;
    let c = w.consent_c();
    w.send("cancelSignatures", p1, c.cancelSignatures(p1, h1))
        .await;
    let study = reg.register(&w, LABS, 5, 1_000_000).await;
    reg.cancel_signatures(&w, p1, study).await;
    for h in [h1, h2] {
        let (_, reason) = commitment::commit("unconscious in the emergency department");
        w.send(
            "openEmergencyAccess",
            h,
            c.openEmergencyAccess(p1, reason, U40::from(3_600u64)),
        )
        .await;
    }
    w.send(
        "reviewEmergencyAccess",
        admin,
        c.reviewEmergencyAccess(2, false),
    )
    .await;
    w.rpc("evm_increaseTime", serde_json::json!([72 * 3600]))
        .await;
    w.send(
        "recordEmergencyOverdue",
        w.a(STRANGER),
        c.recordEmergencyOverdue(1),
    )
    .await;
    wait_indexed(&w, &db, &mut idx).await;

    let v: Value = idx
        .get_ok_as(p1, &format!("/v1/patients/{p1}/timeline"))
        .await;
    let t: medrec_protocol::indexer::Timeline = serde_json::from_value(v.clone()).unwrap();
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            // Issue 16 (behaviour changed): the study's cancellation names the patient's
            // study pseudonym, not the patient, and is no longer on their timeline.
            "consent-signatures-cancelled",
            "break-glass-opened",
            "break-glass-review-due",
            "break-glass-opened",
            "break-glass-review-due",
            "break-glass-reviewed",
            "break-glass-overdue",
        ],
        "{v}"
    );
    use medrec_protocol::indexer::TimelineData as D;
    let what: Vec<&D> = t.events.iter().map(|e| &e.what).collect();
    assert!(
        matches!(what[0], D::ConsentSignaturesCancelled { grantee, by, epoch: 1 } if *grantee == h1 && *by == p1),
        "{:?}",
        what[0]
    );
    assert!(
        matches!(what[2], D::BreakGlassReviewDue { opening_id: 1, provider, .. } if *provider == h1)
    );
    assert!(
        matches!(what[5], D::BreakGlassReviewed { opening_id: 2, provider, justified: false } if *provider == h2)
    );
    assert!(matches!(what[6], D::BreakGlassOverdue { opening_id: 1, provider } if *provider == h1));
}
