//! What medrec's benchmarks and integration tests share: child processes, free
//! ports, the clock, contract calls sent and mined, and scratch databases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::Network;
use alloy::providers::Provider;
use std::process::Child;

/// A contract call sent and waited for.
pub trait Mined<N: Network> {
    /// Sends the call and waits for its receipt; panics if either fails.
    fn mined(self) -> impl std::future::Future<Output = N::ReceiptResponse> + Send;
}

impl<P, D, N> Mined<N> for CallBuilder<P, D, N>
where
    P: Provider<N> + Send + Sync,
    D: CallDecoder + Send + Sync,
    N: Network,
{
    async fn mined(self) -> N::ReceiptResponse {
        self.send().await.unwrap().get_receipt().await.unwrap()
    }
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Creates (or re-creates) database `name`; its URL.
pub async fn create_db(admin_url: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to DATABASE_URL");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0)
}

/// Drops database `name`, if it can.
pub async fn drop_db(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}
