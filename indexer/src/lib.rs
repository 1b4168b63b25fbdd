//! The medrec indexer: an exactly-once, reorg-safe mirror of the registries in PostgreSQL,
//! and the read API over it.
//!
//! One pipeline serves backfill and live tailing ([`pipeline`]): log ranges up to the head
//! less a confirmation depth, each batch's events, derived history and cursor written in one
//! transaction ([`db`]), reorgs detected by block hashes and rolled back exactly. Only the
//! holder of a PostgreSQL advisory lock writes. [`api`] answers from the same database.

pub mod api;
pub mod columns;
pub mod db;
pub mod error;
pub mod events;
pub mod history;
pub mod metrics;
pub mod pipeline;
