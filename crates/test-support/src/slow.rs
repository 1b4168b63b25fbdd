//! Slow clients against a service's listener, and the connections it has accepted, counted
//! from the kernel's socket table rather than taken from the service's word.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a slow client saw.
#[derive(Debug)]
pub struct Dripped {
    /// How long after connecting the server closed the connection (`None`: still open when
    /// the client gave up).
    pub closed_after: Option<Duration>,
    /// Every byte the server sent.
    pub answer: Vec<u8>,
    /// How many bytes of `drip` had been sent when it closed or the client gave up.
    pub sent: usize,
}

impl Dripped {
    /// The answer's status line, or "" when there was none.
    pub fn status_line(&self) -> String {
        String::from_utf8_lossy(&self.answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Connects to `addr`, sends `head` at once and then `drip` one byte every `every`, while
/// reading whatever the server sends, until the server closes the connection or `give_up`
/// has passed since connecting.
pub async fn drip(
    addr: SocketAddr,
    head: &[u8],
    drip: &[u8],
    every: Duration,
    give_up: Duration,
) -> Dripped {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rx, mut tx) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => return (started.elapsed(), answer),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    let mut sent = 0;
    let writer = async {
        if tx.write_all(head).await.is_err() {
            return;
        }
        for b in drip {
            tokio::time::sleep(every).await;
            if tx.write_all(&[*b]).await.is_err() {
                return;
            }
            sent += 1;
        }
        // All sent: wait for the server's answer (or give up).
        std::future::pending::<()>().await;
    };
    let deadline = tokio::time::sleep(give_up);
    tokio::select! {
        _ = writer => {}
        _ = deadline => {}
    }
    // The reader ends when the server closes; or it is still open.
    let closed = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            if reader.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok();
    if closed {
        let (after, answer) = reader.await.expect("reader");
        Dripped {
            closed_after: Some(after),
            answer,
            sent,
        }
    } else {
        reader.abort();
        Dripped {
            closed_after: None,
            answer: Vec::new(),
            sent,
        }
    }
}

/// A request head that takes long to drip: `GET path` with a padding header of `pad` bytes.
pub fn padded_head(path: &str, pad: usize) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-pad: {}\r\n\r\n",
        "a".repeat(pad)
    )
    .into_bytes()
}

/// Drips a `GET path` head to the service at `base_url` one byte every 100 ms and asserts the
/// service cut the connection off, unanswered, after a header timeout of 2 s (started with
/// `--header-timeout 2`), long before the head was through.
pub async fn assert_dripped_head_cut_off(base_url: &str, path: &str) {
    let head = padded_head(path, 200);
    let d = drip(
        socket_addr(base_url),
        b"",
        &head,
        Duration::from_millis(100),
        Duration::from_secs(15),
    )
    .await;
    let after = d
        .closed_after
        .expect("the connection was still open after 15 s");
    assert!(
        after >= Duration::from_millis(1_800) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
    assert!(d.sent < head.len(), "the whole head went through");
    assert!(d.answer.is_empty(), "answered: {}", d.status_line());
}

/// `n` connections to `addr` that never send a byte, held until dropped.
pub async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(TcpStream::connect(addr).await.expect("connect"));
    }
    v
}

/// How many connections to local `port` a process has accepted and holds open now: the
/// kernel's TCP sockets bound to that port, not listening, that belong to a file (its inode is
/// not 0). Connections still waiting in the listen backlog, and those the server has closed,
/// have none. Linux only (`/proc/net/tcp`, `/proc/net/tcp6`).
pub fn accepted_connections(port: u16) -> usize {
    // By inode: the tables are read in pieces while the kernel changes them, so a socket may
    // be listed twice in one read.
    let mut held = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let listening = f[3] == "0A";
            if local_port == Some(port) && !listening && f[9] != "0" {
                held.insert(f[9].to_string());
            }
        }
    }
    held.len()
}

/// [`accepted_connections`] settled: the fewest of three reads 10 ms apart. One read of the
/// table is no snapshot: while the server closes a connection and accepts the next, a read can
/// see both; a service that really holds more keeps holding them across the reads.
pub async fn held_connections(port: u16) -> usize {
    let mut fewest = accepted_connections(port);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        fewest = fewest.min(accepted_connections(port));
    }
    fewest
}

/// The socket address of a base URL such as `http://127.0.0.1:8701`.
pub fn socket_addr(base_url: &str) -> SocketAddr {
    base_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{base_url} is not http://ip:port: {e}"))
}
