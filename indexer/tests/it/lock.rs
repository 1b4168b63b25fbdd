//! The writer lock: two indexers on one database; only the lock holder writes, and the other
//! takes over when it dies.

use crate::harness::*;
use crate::model;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

async fn some_events(w: &World, tag: &str, n: usize) {
    let exp = w.now().await + YEAR;
    for i in 0..n {
        let p = w.a([P1, P2][i % 2]);
        w.grant(p, w.a(H2), 1 << (i % 64), exp).await;
        w.anchor_batch(w.a(H1), vec![pointer(&format!("{tag}-{i}"), p, 3)])
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_indexer_waits_for_the_lock_and_takes_over() {
    let w = World::deploy().await;
    let db = TestDb::create("lock").await;
    let exp = w.now().await + YEAR;
    w.issue(w.a(H1), 1, "h1", exp).await;
    for p in [P1, P2] {
        w.grant(w.a(p), w.a(H1), u64::MAX, exp).await;
    }
    some_events(&w, "first", 3).await;

    let mut a = Indexer::start(&w, &db, &Opts::default()).await;
    wait_indexed(&w, &db, &mut a).await;
    let (_, health) = a.get("/health").await;
    assert_eq!(health["writer"], true, "{health}");

    // The second one serves its API but does not write.
    let mut b = Indexer::start(&w, &db, &Opts::default()).await;
    wait_for(
        "the second indexer to wait for the lock",
        Duration::from_secs(20),
        || {
            let log = b.stderr();
            async move { log.contains("another indexer is writing").then_some(()) }
        },
    )
    .await;
    let (status, health) = b.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["writer"], false, "{health}");

    some_events(&w, "while-a", 4).await;
    let head = wait_indexed(&w, &db, &mut a).await;
    model::assert_db_matches_chain(&w, &db, head).await;
    b.assert_alive();
    let (_, health) = b.get("/health").await;
    assert_eq!(health["writer"], false, "{health}");
    // Only the first moved the cursor: the second wrote no batch and reads nothing of its own.
    assert_eq!(b.metric("medrec_indexer_batches_total").await, 0);
    assert_eq!(b.metric("medrec_indexer_writer").await, 0);
    assert_eq!(b.metric("medrec_indexer_indexed_block").await, 0);
    assert!(a.metric("medrec_indexer_batches_total").await > 0);
    a.wait_reported(head).await;
    // Its API reads the shared database all the same.
    let v = b
        .get_ok_as(w.a(P1), &format!("/v1/patients/{}/grants", w.a(P1)))
        .await;
    assert_eq!(v["block"], head);

    // The writer dies without a goodbye; the second takes the lock and carries on.
    a.kill();
    some_events(&w, "after-a", 4).await;
    let head = wait_indexed(&w, &db, &mut b).await;
    model::assert_db_matches_chain(&w, &db, head).await;
    b.wait_reported(head).await;
    let (_, health) = b.get("/health").await;
    assert_eq!(health["writer"], true, "{health}");
    assert_eq!(health["indexedBlock"], head, "{health}");
    assert!(b.metric("medrec_indexer_batches_total").await > 0);
    assert!(b.stderr().contains("holding the writer lock"));
}

/// A TCP proxy to PostgreSQL that, once armed, holds the first COMMIT a client sends on a
/// connection that sent `after` before (empty: any), until released (announcing it on `hit`),
/// and lets everything else through.
struct CommitHold {
    port: u16,
    armed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// A simple-protocol Query message "COMMIT": 'Q', length 11, the text and its NUL.
const COMMIT_MSG: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

impl CommitHold {
    fn start(
        server: String,
        after: &'static [u8],
        hit: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let hit = Arc::new(Mutex::new(hit));
        let release = Arc::new(Mutex::new(release));
        let (a, s) = (armed.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(upstream) = TcpStream::connect(&server) else {
                    continue;
                };
                let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                thread::spawn(move || copy_until_eof(u2, c2));
                let (a, f, h, r) = (a.clone(), fired.clone(), hit.clone(), release.clone());
                thread::spawn(move || {
                    let (mut from, mut to) = (client, upstream);
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut seen = after.is_empty();
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        seen = seen || chunk.windows(after.len()).any(|w| w == after);
                        let at = chunk
                            .windows(COMMIT_MSG.len())
                            .position(|w| w == COMMIT_MSG);
                        if let Some(at) = at.filter(|_| seen && a.load(Ordering::SeqCst))
                            && !f.swap(true, Ordering::SeqCst)
                        {
                            let _ = to.write_all(&chunk[..at]);
                            let _ = h.lock().unwrap().send(());
                            let _ = r.lock().unwrap().recv_timeout(Duration::from_secs(60));
                            if to.write_all(&chunk[at..]).is_err() {
                                break;
                            }
                            continue;
                        }
                        if to.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    // The client is gone: the server sees the end after what was forwarded.
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        });
        Self { port, armed, stop }
    }
}

impl Drop for CommitHold {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn copy_until_eof(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// The writer's lock lives on its own connection: when a writer dies, the lock can go while
/// the transaction of its last batch is still to commit. The next writer must start after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_the_dead_writers_last_commit() {
    let w = World::deploy().await;
    let db = TestDb::create("takeover").await;
    let exp = w.now().await + YEAR;
    w.issue(w.a(H1), 1, "h1", exp).await;
    for p in [P1, P2] {
        w.grant(w.a(p), w.a(H1), u64::MAX, exp).await;
    }
    some_events(&w, "first", 2).await;

    // A writes through the proxy.
    let (hit_tx, hit_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (server, _) = db.via_proxy(0);
    let proxy = CommitHold::start(server, b"", hit_tx, release_rx);
    let (_, via) = db.via_proxy(proxy.port);
    let mut a = Indexer::start(
        &w,
        &db,
        &Opts {
            database_url: Some(via),
            ..Opts::default()
        },
    )
    .await;
    wait_indexed(&w, &db, &mut a).await;
    let before = db.cursor().await.unwrap().0;

    // A's next batch reaches COMMIT and stays there; A dies.
    proxy.armed.store(true, Ordering::SeqCst);
    some_events(&w, "held", 1).await;
    let started = Instant::now();
    while hit_rx.try_recv().is_err() {
        a.assert_alive();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "A never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut b = Indexer::start(&w, &db, &Opts::default()).await;
    a.kill();

    // B gets the lock and then waits on A's open batch (a lock wait in the database).
    wait_for("B to hold the lock", Duration::from_secs(20), || {
        let log = b.stderr();
        async move { log.contains("holding the writer lock").then_some(()) }
    })
    .await;
    wait_for("B to wait on A's batch", Duration::from_secs(20), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    assert_eq!(
        db.cursor().await.unwrap().0,
        before,
        "A's batch is not committed yet"
    );

    // A's COMMIT reaches the server after all: B must carry on from there.
    release_tx.send(()).unwrap();
    drop(proxy);
    some_events(&w, "after", 2).await;
    let head = wait_indexed(&w, &db, &mut b).await;
    model::assert_db_matches_chain(&w, &db, head).await;
    let (_, health) = b.get("/health").await;
    assert_eq!(health["writer"], true, "{health}");
    b.assert_alive();
}

/// The same at the very start: the first writer dies with the cursor's creation in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_during_the_first_start_keeps_the_dead_writers_cursor() {
    let w = World::deploy().await;
    let db = TestDb::create("takeover_init").await;
    let exp = w.now().await + YEAR;
    w.issue(w.a(H1), 1, "h1", exp).await;
    for p in [P1, P2] {
        w.grant(w.a(p), w.a(H1), u64::MAX, exp).await;
    }
    some_events(&w, "first", 2).await;

    let (hit_tx, hit_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (server, _) = db.via_proxy(0);
    let proxy = CommitHold::start(server, b"INSERT INTO indexer_cursor", hit_tx, release_rx);
    proxy.armed.store(true, Ordering::SeqCst);
    let (_, via) = db.via_proxy(proxy.port);
    let mut a = Indexer::spawn(
        &w,
        &db,
        &Opts {
            database_url: Some(via),
            api: false,
            ..Opts::default()
        },
    );
    let started = Instant::now();
    while hit_rx.try_recv().is_err() {
        a.assert_alive();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "A never created its cursor:\n{}",
            a.stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut b = Indexer::start(&w, &db, &Opts::default()).await;
    a.kill();
    wait_for("B to wait on A's cursor", Duration::from_secs(20), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    assert_eq!(db.cursor().await, None, "A's cursor is not committed yet");

    release_tx.send(()).unwrap();
    drop(proxy);
    some_events(&w, "after", 2).await;
    let head = wait_indexed(&w, &db, &mut b).await;
    model::assert_db_matches_chain(&w, &db, head).await;
    b.assert_alive();
}
