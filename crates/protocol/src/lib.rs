//! medrec's wire protocol, in one place: what the gatekeeper, the indexer's read API and the
//! `medrec` CLI send each other. A server and its clients import the same request, response
//! and error types from here, so the two ends cannot drift apart.
//!
//! - [`mask`]: category masks in JSON (numbers up to 2^53 - 1, strings above, so that
//!   JavaScript clients never round them).
//! - [`indexer`]: the indexer's read API.

pub mod indexer;
pub mod mask;
