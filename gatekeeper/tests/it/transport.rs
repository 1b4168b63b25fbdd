//! The listener, attacked over real HTTP: clients that send a request's head or body slowly,
//! and more slow clients than the connection limit (issue 14, hole 5).

use crate::harness::World;
use alloy::primitives::B256;
use medrec_protocol::health::HEALTH_PATH;
use medrec_test_support::{drip, held_connections, idle_connections, padded_head, socket_addr};
use std::time::{Duration, Instant};

/// Attack: a client sends a request's head one byte at a time and never finishes it. Before,
/// it held its connection for as long as it kept dripping (75 s and more). After: the
/// connection is closed once the header timeout has passed, with no answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_sent_byte_by_byte_is_cut_off_after_the_header_timeout() {
    let mut w = World::start().await;
    w.start_gatekeeper(&["--header-timeout", "2"]).await;
    let head = padded_head(HEALTH_PATH, 200);
    let d = drip(
        socket_addr(&w.gk_url),
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

/// Attack: a client sends a read's head at once, then its body one byte at a time. Before,
/// the handler waited for the body as long as it kept coming. After: `408 request_timeout`
/// once the body timeout has passed, and the connection is closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_sent_byte_by_byte_is_cut_off_with_408_after_the_body_timeout() {
    let mut w = World::start().await;
    w.start_gatekeeper(&["--body-timeout", "2"]).await;
    let path = format!("/v1/records/{}/read", B256::repeat_byte(7));
    let body = vec![b' '; 2_000];
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let d = drip(
        socket_addr(&w.gk_url),
        head.as_bytes(),
        &body,
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
    assert!(
        d.status_line().starts_with("HTTP/1.1 408"),
        "answer: {:?}",
        String::from_utf8_lossy(&d.answer)
    );
    assert!(String::from_utf8_lossy(&d.answer).contains("request_timeout"));
}

/// Attack: twice the connection limit's worth of clients connect and send nothing, to use up
/// the service's connections (and file descriptors) and starve `/health`. After: the service
/// never holds more connections than the limit (counted in the kernel's socket table), and
/// `/health` answers once the held ones have timed out (nothing is reserved for it: it
/// waits its turn behind them).
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_never_hold_more_than_the_connection_limit_and_health_answers_after_them() {
    let limit = 8;
    let mut w = World::start().await;
    w.start_gatekeeper(&[
        "--max-connections",
        &limit.to_string(),
        "--header-timeout",
        "2",
    ])
    .await;
    let addr = socket_addr(&w.gk_url);
    let _held = idle_connections(addr, 2 * limit).await;
    let started = Instant::now();
    let health = tokio::spawn({
        let url = format!("{}{HEALTH_PATH}", w.gk_url);
        async move {
            let http = alloy::transports::http::reqwest::Client::new();
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), started.elapsed())
        }
    });
    let mut most = 0;
    while !health.is_finished() && started.elapsed() < Duration::from_secs(20) {
        most = most.max(held_connections(addr.port()).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) = health.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(most, limit, "connections held at once");
    // Two rounds of held connections, two seconds each, then /health.
    assert!(took < Duration::from_secs(9), "/health took {took:?}");
}
