//! A node outage: a TCP proxy between the indexer and anvil drops every connection and refuses
//! new ones for a few seconds while events keep coming; the indexer stays up and catches up.

use crate::harness::*;
use crate::model;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A byte-forwarding proxy to `127.0.0.1:<target>` that can be switched off.
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections refused while down.
    pub refused: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let refused = Arc::new(AtomicU64::new(0));
        let (d, s, c, r) = (down.clone(), stop.clone(), conns.clone(), refused.clone());
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if d.load(Ordering::SeqCst) {
                            r.fetch_add(1, Ordering::SeqCst);
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        client.set_nonblocking(false).unwrap();
                        let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        {
                            let mut list = c.lock().unwrap();
                            list.push(client.try_clone().unwrap());
                            list.push(upstream.try_clone().unwrap());
                        }
                        pump(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                        pump(upstream, client);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            down,
            stop,
            conns,
            refused,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every open connection and refuses new ones, or lets them through again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.set_down(true);
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    });
}

async fn some_events(w: &World, tag: &str, n: usize) {
    let exp = w.now().await + YEAR;
    for i in 0..n {
        let p = w.a([P1, P2, P3][i % 3]);
        w.grant(p, w.a(H2), 1 + i as u64, exp).await;
        w.anchor_batch(
            w.a(H1),
            vec![
                pointer(&format!("{tag}-{i}-a"), p, 3),
                pointer(&format!("{tag}-{i}-b"), p, 8),
            ],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outage_is_survived_and_caught_up() {
    let w = World::deploy().await;
    let db = TestDb::create("outage").await;
    let exp = w.now().await + YEAR;
    w.issue(w.a(H1), 1, "h1", exp).await;
    for p in [P1, P2, P3] {
        w.grant(w.a(p), w.a(H1), u64::MAX, exp).await;
    }
    some_events(&w, "before", 5).await;

    let proxy = Proxy::start(w.anvil.port);
    let mut idx = Indexer::start(
        &w,
        &db,
        &Opts {
            rpc_url: Some(proxy.url()),
            ..Opts::default()
        },
    )
    .await;
    wait_indexed(&w, &db, &mut idx).await;
    assert_eq!(idx.metric("medrec_indexer_rpc_errors_total").await, 0);

    // The node goes away for about 3 s; the chain moves on meanwhile.
    let before = db.cursor().await.unwrap().0;
    proxy.set_down(true);
    let started = Instant::now();
    some_events(&w, "during", 6).await;
    let head = w.head().await;
    assert!(head > before);
    while started.elapsed() < Duration::from_secs(3) {
        idx.assert_alive();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    idx.assert_alive();
    assert_eq!(
        db.cursor().await.unwrap().0,
        before,
        "the indexer cannot have indexed anything through a dead node"
    );
    assert!(
        proxy.refused.load(Ordering::SeqCst) > 0,
        "the indexer did not try the node during the outage"
    );
    let (status, health) = idx.get("/health").await;
    assert_eq!(status, 200, "{health}");

    // Back: it catches up without a restart, and says it saw errors.
    proxy.set_down(false);
    some_events(&w, "after", 2).await;
    let head = wait_indexed(&w, &db, &mut idx).await;
    model::assert_db_matches_chain(&w, &db, head).await;
    let errors = idx.metric("medrec_indexer_rpc_errors_total").await;
    assert!(errors > 0, "medrec_indexer_rpc_errors_total is {errors}");
    idx.wait_reported(head).await;
    assert!(
        idx.stderr().contains("retrying"),
        "no retry logged:\n{}",
        idx.stderr()
    );
    idx.assert_alive();
}
