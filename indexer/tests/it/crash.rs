//! Crashes: the indexer SIGKILLed at random moments of a long backfill in small ranges, many
//! times, then run to the end: nothing missing, nothing twice.

use crate::harness::*;
use crate::model;
use std::collections::BTreeMap;
use std::time::Duration;

const LABS: u8 = 3;
const BLOCKS: usize = 90;
const PER_BATCH: usize = 18;
const KILLS: usize = 20;
const MID_BACKFILL: usize = 5;
const MAX_RUNS: usize = 80;
const STALLED: usize = 5;
const EMPTY_BETWEEN: u64 = 8;

/// About 3,500 events over `BLOCKS` blocks of several transactions each, with empty blocks
/// between them.
async fn long_history(w: &World) {
    let exp = w.now().await + YEAR;
    let patients = [P1, P2, P3, P4, P5].map(|i| w.a(i));
    let (h1, h2, h3) = (w.a(H1), w.a(H2), w.a(H3));
    for (i, h) in [h1, h2, h3].into_iter().enumerate() {
        w.issue(h, 1, &format!("crash {i}"), exp).await;
    }
    for p in patients {
        w.grant(p, h1, u64::MAX, exp).await;
        w.grant(p, h2, u64::MAX, exp).await;
    }
    let mut h3_granted = [false; 5];
    for k in 0..BLOCKS {
        w.begin_block().await;
        for (j, h) in [h1, h2].into_iter().enumerate() {
            let p = patients[(k + j) % 5];
            let ps = (0..PER_BATCH)
                .map(|i| {
                    let cat = if i == 0 { LABS } else { ((k + i) % 64) as u8 };
                    pointer(&format!("crash-{k}-{j}-{i}"), p, cat)
                })
                .collect();
            w.anchor_batch(h, ps).await;
        }
        let q = (k + 2) % 5;
        if h3_granted[q] && k % 3 == 0 {
            w.revoke(patients[q], patients[q], h3).await;
            h3_granted[q] = false;
        } else {
            w.grant(patients[q], h3, 1 + k as u64, exp).await;
            h3_granted[q] = true;
        }
        if k > 0 && k % 4 == 0 {
            // Amend the previous block's first pointer of H1 (same patient and category).
            let p = patients[(k - 1) % 5];
            w.amend(
                h1,
                pointer(&format!("crash-{k}-amend"), p, LABS),
                &format!("crash-{}-0-0", k - 1),
            )
            .await;
        }
        if k % 10 == 5 {
            w.set_cap(DAY + k as u64).await;
            w.issue(h3, 1, &format!("crash renew {k}"), exp).await;
        }
        w.end_block().await;
        // Empty blocks in between: more, smaller batches to be killed in.
        w.rpc("anvil_mine", serde_json::json!([EMPTY_BETWEEN]))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_it_resumes_without_loss_or_duplicates() {
    let w = World::deploy().await;
    let db = TestDb::create("crash").await;
    long_history(&w).await;
    let head = w.head().await;
    let total = model::chain_events(&w, head).await.len();
    assert!(total >= 3_000, "only {total} events");

    let (mut rng, seed) = Rng::from_time();
    eprintln!("crash test: seed {seed} (MEDREC_IT_SEED), head {head}, {total} events");
    let small = Opts {
        api: false,
        initial_range: Some(2),
        max_range: Some(2),
        ..Opts::default()
    };
    // Every other run defers the pointer indexes to the head whatever the backfill's size
    // (bulk loading), so kills also fall between dropping and building them.
    let bulk = Opts {
        extra_args: vec!["--defer-indexes-min-events".into(), "1".into()],
        ..small.clone()
    };
    // At least KILLS kills, and at least MID_BACKFILL of them with the backfill under way. On a
    // loaded machine (or database) a run may die before it even starts: after STALLED runs
    // without progress, one is let make some before its random delay.
    let mut cursors = vec![];
    let mut mid_backfill = 0;
    let mut i = 0;
    let mut stalled = 0;
    let mut deferred = 0;
    let mut last_log = String::new();
    while i < KILLS || mid_backfill < MID_BACKFILL {
        assert!(
            i < MAX_RUNS,
            "after {i} runs only {mid_backfill} kills fell inside the backfill: {cursors:?}\nlast run:\n{last_log}"
        );
        i += 1;
        let before = db.cursor().await;
        let mut idx = Indexer::spawn(&w, &db, if i % 2 == 1 { &bulk } else { &small });
        if stalled >= STALLED {
            let started = std::time::Instant::now();
            while db.cursor().await == before && before.is_none_or(|(n, _)| n < head) {
                idx.assert_alive();
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "run {i} made no progress in 60 s:\n{}",
                    idx.stderr()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let ms = rng.range(20, 300);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if let Some(st) = idx.try_exit() {
            panic!("run {i} exited by itself ({st}):\n{}", idx.stderr());
        }
        idx.kill();
        last_log = idx.stderr();
        if last_log.contains("indexes deferred to the head") {
            deferred += 1;
        }
        let c = db.cursor().await.map(|(n, _)| n);
        if c.is_some_and(|n| n > w.start_block && n < head) {
            mid_backfill += 1;
        }
        if c == before.map(|(n, _)| n) && c != Some(head) {
            stalled += 1;
        } else {
            stalled = 0;
        }
        cursors.push((ms, c));
    }
    eprintln!("kills (sleep ms, cursor after): {cursors:?}; {deferred} runs deferred the indexes");
    // The cursor only moves forward, one whole batch at a time.
    let seen: Vec<u64> = cursors.iter().filter_map(|(_, c)| *c).collect();
    assert!(seen.windows(2).all(|p| p[0] <= p[1]), "{cursors:?}");

    // A partial state is always a consistent prefix of the chain.
    if let Some((n, _)) = db.cursor().await {
        model::assert_db_matches_chain(&w, &db, n).await;
    }

    let mut last = Indexer::spawn(
        &w,
        &db,
        &Opts {
            exit_at_head: true,
            ..bulk
        },
    );
    let st = last.wait_exit(Duration::from_secs(60)).await;
    assert!(st.success(), "final run failed ({st}):\n{}", last.stderr());
    // Any deferred index is built by the time the backfill reaches the head.
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM indexer_deferred_indexes")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(pending, 0, "deferred indexes left unbuilt");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'ev_pointer_anchored' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "ev_pointer_anchored_patient",
            "ev_pointer_anchored_pkey",
            "ev_pointer_anchored_record"
        ]
    );
    let evs = model::assert_db_matches_chain(&w, &db, head).await;
    assert_eq!(evs.len(), total);
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM ev_pointer_anchored) + (SELECT count(*) FROM ev_granted)
              + (SELECT count(*) FROM ev_revoked) + (SELECT count(*) FROM ev_pointer_superseded)
              + (SELECT count(*) FROM ev_credential_issued) + (SELECT count(*) FROM ev_emergency_cap_set)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows as usize, total, "event rows in the database");

    // Running again at the head changes nothing.
    let before: BTreeMap<&str, Vec<String>> = model::expected(&evs);
    let mut again = Indexer::spawn(
        &w,
        &db,
        &Opts {
            exit_at_head: true,
            ..small
        },
    );
    let st = again.wait_exit(Duration::from_secs(30)).await;
    assert!(st.success(), "{}", again.stderr());
    let problems = model::compare_tables(&db, &before).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
