//! The read API's listener, attacked over real HTTP (issue 14, hole 5): a client that sends a
//! request's head one byte at a time, and more idle clients than the connection limit. The
//! API reads no request body (every route is a GET), so a slow body holds nothing there; the
//! gatekeeper's tests cover the body timeout.

use crate::harness::{Indexer, Opts, TestDb, World};
use medrec_test_support::{
    assert_dripped_head_cut_off, held_connections, idle_connections, socket_addr,
};
use std::time::{Duration, Instant};

fn opts(args: &[&str]) -> Opts {
    Opts {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..Opts::default()
    }
}

/// Attack: a request head dripped byte by byte held the connection for as long as it kept
/// coming. After: closed once the header timeout has passed, with no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_byte_by_byte_is_cut_off_after_the_header_timeout() {
    let w = World::deploy().await;
    let db = TestDb::create("transport_head").await;
    let ix = Indexer::start(&w, &db, &opts(&["--header-timeout", "2"])).await;
    assert_dripped_head_cut_off(ix.api.as_ref().unwrap(), "/health").await;
}

/// Attack: twice the connection limit's worth of idle clients, to use up the API's
/// connections and starve `/health`. After: never more than the limit held (counted in the
/// kernel's socket table), and `/health` answers once the held ones time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_never_hold_more_than_the_connection_limit_and_health_answers_after_them() {
    let limit = 8;
    let w = World::deploy().await;
    let db = TestDb::create("transport_limit").await;
    let ix = Indexer::start(
        &w,
        &db,
        &opts(&[
            "--max-connections",
            &limit.to_string(),
            "--header-timeout",
            "2",
        ]),
    )
    .await;
    let base = ix.api.clone().unwrap();
    let addr = socket_addr(&base);
    let _held = idle_connections(addr, 2 * limit).await;
    let started = Instant::now();
    let health = tokio::spawn(async move {
        let http = alloy::transports::http::reqwest::Client::new();
        let r = http.get(format!("{base}/health")).send().await.unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    let mut most = 0;
    while !health.is_finished() && started.elapsed() < Duration::from_secs(20) {
        most = most.max(held_connections(addr.port()).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) = health.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(most, limit, "connections held at once");
    assert!(took < Duration::from_secs(9), "/health took {took:?}");
}
