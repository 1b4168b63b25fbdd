//! The listener and the chain's clock, attacked over real HTTP: clients that send a request's
//! head or body slowly, more slow clients than the connection limit (issue 14, hole 5), and a
//! grant that has expired by the wall clock while the node's latest block is old (hole 8).

use crate::harness::{World, fhir_example, now};
use alloy::primitives::B256;
use medrec_protocol::health::{CHAIN_STALE, HEALTH_PATH, Health};
use medrec_test_support::{
    assert_dripped_head_cut_off, drip, held_connections, idle_connections, mine_every, socket_addr,
};
use serde_json::Value;
use std::time::{Duration, Instant};

const LABS: u64 = 1 << 3;

/// Attack: a client sends a request's head one byte at a time and never finishes it. Before,
/// it held its connection for as long as it kept dripping (75 s and more). After: the
/// connection is closed once the header timeout has passed, with no answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_sent_byte_by_byte_is_cut_off_after_the_header_timeout() {
    let mut w = World::start().await;
    w.start_gatekeeper(&["--header-timeout", "2"]).await;
    assert_dripped_head_cut_off(&w.gk_url, HEALTH_PATH).await;
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

/// Attack (hole 8): a chain that makes blocks only when transactions arrive answers `canRead`
/// with its last block's time. A grant that has expired by the wall clock while no block was
/// made was served (a two-minute grant 7 s after it expired); so is anything a node that
/// stopped syncing has not seen. After: while the node's latest block is older than
/// `--max-head-age`, reads get `503 chain_stale`, not the record, and `/health` says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_grant_expired_by_the_wall_clock_on_an_idle_chain_is_refused_as_chain_stale() {
    let mut w = World::start().await;
    w.start_gatekeeper(&["--max-head-age", "3"]).await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    w.grant(&patient, reader.address(), LABS, 4).await;
    let expires = now() + 4;
    assert_eq!(
        w.read(&reader, id).await.0,
        200,
        "a live grant on a fresh head"
    );
    // No transaction, so no block, until the grant has expired by the wall clock.
    while now() <= expires + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = w.read(&reader, id).await;
    let v: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("served {status}: {}", String::from_utf8_lossy(&body)));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (503, Some("chain_stale"))
    );
    let r = w
        .http
        .get(format!("{}{HEALTH_PATH}", w.gk_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let h: Health = r.json().await.unwrap();
    assert_eq!(h.status, CHAIN_STALE);
    assert!(h.head_age_secs > 3, "{h:?}");
    let log = w.log().await;
    assert_eq!(log.last().map(|e| e.1), Some(false));
}

/// The same grant on a chain that makes a block every second: served after the chain has
/// been without transactions for longer than the bound, refused (`denied`) once expired.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_chain_serves_a_live_grant_after_an_idle_spell_and_refuses_it_once_expired() {
    let mut w = World::start().await;
    w.start_gatekeeper(&["--max-head-age", "3"]).await;
    let (patient, reader) = (w.account().await, w.account().await);
    w.credential(reader.address()).await;
    let id = w
        .upload(
            patient.address(),
            3,
            &fhir_example("Observation-example.json"),
        )
        .await;
    mine_every(&w.as_(&w.gov), 1).await;
    w.grant(&patient, reader.address(), LABS, 8).await;
    let expires = now() + 8;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(now() < expires, "the machine is too slow for this test");
    assert_eq!(w.read(&reader, id).await.0, 200, "a live grant, idle chain");
    assert_eq!(w.health(&w.gk_url).await.status, "ok");
    while now() <= expires + 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = w.read(&reader, id).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, v["error"]["code"].as_str()), (403, Some("denied")));
}
