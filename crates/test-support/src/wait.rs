//! Waiting, the clock and unique names.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Polls `f` every 25 ms until it gives `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `url` answers a GET at all (any status), or panics after `timeout`.
pub async fn wait_http(http: &reqwest::Client, url: &str, timeout: Duration) {
    wait_for(&format!("{url} to answer"), timeout, || async {
        http.get(url).send().await.ok().map(|_| ())
    })
    .await;
}

/// Seconds since the epoch, by the clock the gatekeeper checks requests with.
pub fn now() -> u64 {
    medrec_protocol::clock::now_secs()
}

/// A process-wide counter for unique names.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// `tag` made unique among this machine's test processes (pid, a counter, the clock's
/// nanoseconds): for database and file names.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{tag}_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000
    )
}

use alloy::transports::http::reqwest;
