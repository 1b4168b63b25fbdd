//! A fresh database per test, and what the indexer wrote to it.

use alloy::primitives::B256;
use medrec_test_support::ScratchDb;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A fresh database for one test, dropped (best effort) at the end.
pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
    _db: ScratchDb,
}

impl TestDb {
    pub async fn create(tag: &str) -> Self {
        let db = ScratchDb::create(&format!("medrec_it_{tag}")).await;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", db.url));
        Self {
            url: db.url.clone(),
            pool,
            _db: db,
        }
    }

    /// The server's address (host:port) and this database's URL through `127.0.0.1:<port>`
    /// instead, without TLS (so that a proxy sees the protocol).
    pub fn via_proxy(&self, port: u16) -> (String, String) {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .expect("DATABASE_URL without scheme");
        let (auth, rest) = rest
            .rsplit_once('@')
            .expect("DATABASE_URL without user@host");
        let (hostport, path) = rest.split_once('/').expect("DATABASE_URL without database");
        let server = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:5432")
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        (
            server,
            format!("{scheme}://{auth}@127.0.0.1:{port}/{path}{sep}sslmode=disable"),
        )
    }

    /// The indexer's cursor: (block number, block hash), if it has one yet.
    pub async fn cursor(&self) -> Option<(u64, B256)> {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('indexer_cursor')::text")
                .fetch_one(&self.pool)
                .await
                .ok()?;
        exists.as_ref()?;
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT block_number, block_hash FROM indexer_cursor WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .ok()?;
        row.map(|(n, h)| (n as u64, B256::from_slice(&h)))
    }
}
