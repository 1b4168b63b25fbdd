//! The medrec indexer: an exactly-once, reorg-safe mirror of the registries in PostgreSQL,
//! and the read API over it.
//!
//! One pipeline serves backfill and live tailing ([`pipeline`]): hash-bracketed log ranges read
//! through `medrec-chain` up to the head less a confirmation depth, each batch's events, derived
//! history and cursor written in one transaction ([`db`]), reorgs detected by block hashes and
//! rolled back exactly. Only the holder of a PostgreSQL advisory lock writes.
//!
//! What is stored is described once per event ([`events`]: table, columns, how each decoded
//! field binds, what the event does to a history table); the history tables share one shape and
//! one code path for insert and rollback ([`history`]); a batch's rows travel column by column
//! ([`columns`]). [`api`] answers from the same database with `medrec-protocol`'s types, to
//! the parties [`auth`] lets ask.

pub mod api;
pub mod auth;
pub mod columns;
pub mod db;
pub mod error;
pub mod events;
pub mod history;
pub mod metrics;
pub mod pipeline;
