//! A reorg at the worst moment: between the indexer's reads of the first and the last header
//! of one batch. An HTTP proxy holds the indexer's request for the last header until the test
//! has replaced the chain below the indexer's cursor.

use crate::harness::*;
use crate::model;
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Forwards JSON-RPC over HTTP/1.1 to anvil. The first request `matches` accepts is held,
/// after a message on `hit`, until one arrives on `release`.
struct HookProxy {
    port: u16,
    stop: Arc<AtomicBool>,
}

type Matcher = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

impl HookProxy {
    fn start(
        target: u16,
        matches: Matcher,
        hit: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let hit = Arc::new(Mutex::new(hit));
        let release = Arc::new(Mutex::new(release));
        let s = stop.clone();
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let (m, f, h, r) =
                            (matches.clone(), fired.clone(), hit.clone(), release.clone());
                        thread::spawn(move || serve(client, target, m, f, h, r));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self { port, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HookProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One HTTP message: head (through the blank line) and body (by Content-Length).
fn read_message(r: &mut impl BufRead) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn serve(
    client: TcpStream,
    target: u16,
    matches: Matcher,
    fired: Arc<AtomicBool>,
    hit: Arc<Mutex<mpsc::Sender<()>>>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
) {
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let mut from_client = BufReader::new(client.try_clone().unwrap());
    let mut to_client = client;
    let mut from_node = BufReader::new(upstream.try_clone().unwrap());
    let mut to_node = upstream;
    while let Some((head, body)) = read_message(&mut from_client) {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if matches(&request) && !fired.swap(true, Ordering::SeqCst) {
            let _ = hit.lock().unwrap().send(());
            let _ = release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60));
        }
        if to_node.write_all(&head).is_err() || to_node.write_all(&body).is_err() {
            return;
        }
        let Some((h, b)) = read_message(&mut from_node) else {
            return;
        };
        if to_client.write_all(&h).is_err() || to_client.write_all(&b).is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_between_the_header_reads_of_a_batch_is_caught() {
    let w = World::deploy().await; // blocks 1..=3
    let db = TestDb::create("race").await;
    let exp = w.now().await + YEAR;
    let (h1, p1, p2) = (w.a(H1), w.a(P1), w.a(P2));
    w.issue(h1, 1, "h1", exp).await;
    w.grant(p1, h1, u64::MAX, exp).await;
    w.grant(p2, h1, u64::MAX, exp).await;
    let fork = w.head().await;
    assert_eq!(fork, 6, "the scenario counts blocks from a fresh anvil");
    let snap = w.snapshot().await;
    // Branch A: blocks 7..=14, each with events.
    for i in 0..8 {
        w.anchor_batch(h1, vec![pointer(&format!("a-{i}"), p1, 3)])
            .await;
    }

    // Ranges of 4 blocks: [1,4] [5,8] [9,12] ... The batch [9,12] reads header 9, then header
    // 12: the proxy holds that read while the chain is replaced from block 7 on, so header 9 it
    // read is stale, and so is block 8 (branch A) where the cursor stands, or will once the
    // range [5,8] read ahead of it (from branch A) is written.
    let (hit_tx, hit_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let matcher: Matcher =
        Arc::new(|v: &Value| v["method"] == "eth_getBlockByNumber" && v["params"][0] == "0xc");
    let proxy = HookProxy::start(w.anvil.port, matcher, hit_tx, release_rx);
    let mut idx = Indexer::spawn(
        &w,
        &db,
        &Opts {
            api: false,
            exit_at_head: true,
            initial_range: Some(4),
            max_range: Some(4),
            rpc_url: Some(proxy.url()),
            ..Opts::default()
        },
    );
    let started = Instant::now();
    loop {
        if hit_rx.try_recv().is_ok() {
            break;
        }
        idx.assert_alive();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the indexer never read header 12:\n{}",
            idx.stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The indexer reads ranges ahead of the one it writes: [5,8] may still be on its way to
    // the database while header 12 is held. The scenario starts with the cursor at block 8.
    let started = Instant::now();
    loop {
        let at = db.cursor().await.map(|c| c.0);
        if at == Some(8) {
            break;
        }
        idx.assert_alive();
        assert!(
            at.is_none_or(|n| n < 8) && started.elapsed() < Duration::from_secs(30),
            "the scenario expects the cursor to reach block 8 while header 12 is held: {at:?}\n{}",
            idx.stderr()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Branch B from block 7: other events, and block 9 (the batch's first) without logs, so
    // no log's block hash gives the change away.
    w.revert(snap).await;
    for i in 0..2 {
        w.anchor_batch(h1, vec![pointer(&format!("b-{i}"), p2, 8)])
            .await;
    }
    w.rpc("evm_mine", serde_json::json!([])).await;
    for i in 2..9 {
        w.anchor_batch(h1, vec![pointer(&format!("b-{i}"), p2, 8)])
            .await;
    }
    let head = w.head().await;
    assert_eq!(head, 16);
    release_tx.send(()).unwrap();

    let st = idx.wait_exit(Duration::from_secs(60)).await;
    let log = idx.stderr();
    assert!(st.success(), "the indexer failed ({st}):\n{log}");
    model::assert_db_matches_chain(&w, &db, head).await;
    assert!(log.contains("rolled back"), "no reorg handled:\n{log}");
}
