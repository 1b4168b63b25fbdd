//! Integration tests of the gatekeeper: a real anvil with the contracts, a real PostgreSQL
//! database per test, the real service over HTTP, and the real `medrec` CLI.

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

mod anchoring;
mod erasure;
mod harness;
mod listing;
mod log;
mod reads;
mod research;
mod transport;
