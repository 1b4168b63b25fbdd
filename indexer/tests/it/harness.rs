//! The test world: a private anvil with the registries deployed, a fresh PostgreSQL database,
//! the `medrec-indexer` binary as a child process, and helpers to send transactions, wait for
//! the indexer and talk to its API: what only the indexer's tests need on top of
//! `medrec-test-support`.

mod db;
mod indexer;
mod world;

pub use db::TestDb;
pub use indexer::{Indexer, Opts, metric_value, wait_indexed};
pub use medrec_test_support::wait_for;
pub use world::*;

/// A small deterministic generator (xorshift64*), seeded and printed by the tests that use it.
pub struct Rng(u64);

impl Rng {
    pub fn from_time() -> (Self, u64) {
        let seed = std::env::var("MEDREC_IT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Self(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}
