//! medrec-sim's integration tests, one binary (a module per area), against a real anvil and,
//! where the indexer's database is read, a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adversary;
