//! Reorgs: orphaned blocks full of events replaced by a longer branch with other events, at
//! depths 1 to 10, while the indexer tails; and a reorg deeper than the window stopping it.

use crate::harness::*;
use crate::model;
use alloy::primitives::keccak256;
use std::time::Duration;

const LABS: u8 = 3;
const BASE_POINTERS: usize = 64;

/// What every branch builds on: credentials, grants, pointers to amend, a guardian, a cap.
async fn base(w: &World) {
    let exp = w.now().await + YEAR;
    for (i, role) in [(H1, 1), (H2, 1), (H3, 1), (RESEARCHER, 2)] {
        w.issue(w.a(i), role, &format!("base {i}"), exp).await;
    }
    w.grant(w.a(P1), w.a(H1), u64::MAX, exp).await;
    w.grant(w.a(P2), w.a(H2), 1 << LABS, exp).await;
    w.set_guardian(w.a(P3), w.a(GUARDIAN), 0xff, exp).await;
    w.set_cap(DAY).await;
    // Kind 4 opens and closes one break-glass access again and again: no frequency bound and
    // no cooling-off (the policy's bounds have their own tests).
    let policy = medrec_bindings::consent_registry::IConsentRegistry::EmergencyPolicy {
        maxOpenings: 1,
        period: alloy::primitives::aliases::U40::ZERO,
        coolingOff: alloy::primitives::aliases::U40::ZERO,
        justifyWithin: alloy::primitives::aliases::U40::from(DAY),
        maxUnjustified: 1,
        // Room for every opening of the run, none reviewed.
        maxPending: 1000,
    };
    let c = w.consent_c();
    w.send(
        "setEmergencyPolicy",
        w.a(ADMIN),
        c.setEmergencyPolicy(policy),
    )
    .await;
    let ps = (0..BASE_POINTERS)
        .map(|i| pointer(&format!("base-{i}"), w.a(P1), LABS))
        .collect();
    w.anchor_batch(w.a(H1), ps).await;
}

/// One transaction of kind `kind`, valid whatever the chain's current state (it reads it), so
/// branches can be built freely. `tag` makes its content unique.
async fn action(w: &World, kind: usize, tag: &str) {
    let vary = keccak256(tag)[0] as u64;
    let now = w.now().await;
    let exp = now + YEAR;
    let (p1, p2, p3, p4) = (w.a(P1), w.a(P2), w.a(P3), w.a(P4));
    let (h1, h2, h3, r, g) = (w.a(H1), w.a(H2), w.a(H3), w.a(RESEARCHER), w.a(GUARDIAN));
    let consent = w.consent_c();
    match kind % 8 {
        0 => {
            let cur = consent.grantOf(p2, h2).call().await.unwrap();
            if cur.categories != 0 {
                w.revoke(p2, p2, h2).await;
            } else {
                w.grant(p2, h2, (1 << LABS) | (1 << (vary % 64)), exp).await;
            }
        }
        1 => {
            let ps = (0..3u64)
                .map(|j| pointer(&format!("{tag}-{j}"), p1, ((vary + j) % 64) as u8))
                .collect();
            w.anchor_batch(h1, ps).await;
        }
        2 => {
            let records = w.records_c();
            for i in 0..BASE_POINTERS {
                let old = format!("base-{i}");
                let cur = records
                    .pointerOf(record_id(h1, p1, &old))
                    .call()
                    .await
                    .unwrap();
                if cur.supersededBy.is_zero() {
                    w.amend(h1, pointer(&format!("{tag}-amend"), p1, LABS), &old)
                        .await;
                    return;
                }
            }
            panic!("no base pointer left to amend");
        }
        3 => {
            let cur = consent.guardianOf(p3, g).call().await.unwrap();
            if cur.scope != 0 {
                w.remove_guardian(p3, g).await;
            } else {
                w.set_guardian(p3, g, 1 + vary, exp).await;
            }
        }
        4 => {
            let cur = consent.emergencyAccessOf(p4, h2).call().await.unwrap();
            if cur.expiresAt.to::<u64>() > now {
                let by = if vary.is_multiple_of(2) { p4 } else { h2 };
                w.close_emergency(by, p4, h2).await;
            } else {
                w.open_emergency(h2, p4, tag, 3600).await;
            }
        }
        5 => {
            let cur = w.participants_c().credentialOf(r).call().await.unwrap();
            if cur.role != 0 && !cur.revoked && cur.expiresAt.to::<u64>() > now {
                w.revoke_credential(r).await;
            } else {
                w.issue(r, 2, tag, exp).await;
            }
        }
        6 => {
            w.grant(p1, h3, 1 + vary, exp).await;
        }
        _ => {
            w.set_cap(2 * 3600 + vary).await;
        }
    }
}

/// Mines `blocks` blocks of three transactions each; `offset` picks the kinds.
async fn branch(w: &World, blocks: usize, offset: usize, tag: &str) {
    for k in 0..blocks {
        w.begin_block().await;
        for j in 0..3 {
            let kind = k * 3 + j + offset;
            action(w, kind, &format!("{tag}-{k}-{j}")).await;
        }
        w.end_block().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorgs_of_depth_1_to_10_leave_the_canonical_state() {
    let w = World::deploy().await;
    let db = TestDb::create("reorg").await;
    base(&w).await;
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    let head = wait_indexed(&w, &db, &mut idx).await;
    model::assert_db_matches_chain(&w, &db, head).await;

    for depth in 1..=10usize {
        let reorgs = idx.metric("medrec_indexer_reorgs_total").await;
        let snap = w.snapshot().await;
        let fork = w.head().await;
        branch(&w, depth, 0, &format!("orphan-{depth}")).await;
        let orphan_head = wait_indexed(&w, &db, &mut idx).await;
        assert_eq!(orphan_head, fork + depth as u64);
        let (orphan_hash, _) = w.block(orphan_head).await;

        w.revert(snap).await;
        assert_eq!(
            w.head().await,
            fork,
            "evm_revert did not go back to the fork"
        );
        branch(&w, depth + 1, 4, &format!("canonical-{depth}")).await;
        let head = wait_indexed(&w, &db, &mut idx).await;
        assert_eq!(head, fork + depth as u64 + 1);
        let (canonical, _) = w.block(orphan_head).await;
        assert_ne!(canonical, orphan_hash, "the branches should differ");

        model::assert_db_matches_chain(&w, &db, head).await;
        let after = idx.metric("medrec_indexer_reorgs_total").await;
        assert!(
            after > reorgs,
            "depth {depth}: medrec_indexer_reorgs_total stayed at {after}"
        );
    }
    // The indexer lived through all of them, and keeps indexing the canonical chain.
    branch(&w, 2, 1, "after").await;
    let head = wait_indexed(&w, &db, &mut idx).await;
    model::assert_db_matches_chain(&w, &db, head).await;
    assert!(idx.metric("medrec_indexer_reorgs_total").await >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_deeper_than_the_window_stops_the_indexer() {
    let w = World::deploy().await;
    let db = TestDb::create("deepreorg").await;
    base(&w).await;
    let mut idx = Indexer::start(
        &w,
        &db,
        &Opts {
            reorg_window: Some(3),
            ..Opts::default()
        },
    )
    .await;
    wait_indexed(&w, &db, &mut idx).await;

    let snap = w.snapshot().await;
    branch(&w, 8, 0, "orphan").await;
    let orphan_head = wait_indexed(&w, &db, &mut idx).await;
    let evs = model::assert_db_matches_chain(&w, &db, orphan_head).await;
    let orphan_state = model::expected(&evs);
    let cursor = db.cursor().await;

    w.revert(snap).await;
    branch(&w, 9, 4, "canonical").await;
    let st = idx.wait_exit(Duration::from_secs(30)).await;
    let log = idx.stderr();
    assert!(
        !st.success(),
        "the indexer should fail on a deep reorg:\n{log}"
    );
    assert_eq!(st.code(), Some(3), "exit code of a deep reorg:\n{log}");
    assert!(
        log.contains("reorg deeper than the window of 3 blocks"),
        "no clear error on stderr:\n{log}"
    );
    // It stopped without touching what it had written.
    assert_eq!(db.cursor().await, cursor);
    let problems = model::compare_tables(&db, &orphan_state).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Restarting does not paper over it either.
    let mut again = Indexer::spawn(
        &w,
        &db,
        &Opts {
            reorg_window: Some(3),
            api: false,
            exit_at_head: true,
            ..Opts::default()
        },
    );
    let st = again.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(st.code(), Some(3), "{}", again.stderr());
}
