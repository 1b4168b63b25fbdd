//! medrec's wire protocol, in one place: what the gatekeeper, the indexer's read API and the
//! `medrec` CLI send each other. A server and its clients import the same request, response
//! and error types from here, so the two ends cannot drift apart.
//!
//! - [`mask`]: category masks in JSON (numbers up to 2^53 - 1, strings above, so that
//!   JavaScript clients never round them).
//! - [`indexer`]: the indexer's read API; [`indexer_auth`]: the signed request its
//!   per-patient and per-grantee routes require.
//! - The gatekeeper's HTTP API: [`envelope`] (a signed request as sent over HTTP), [`clock`]
//!   (how long a signed request is valid), [`error`] (error codes and the error body),
//!   [`records`] (upload, read, the record-id formula), [`access_log`] (its Merkle tree in
//!   [`merkle`]), [`health`] and
//!   [`research`] (the aggregate [`research::Query`], its cost, answers and how they combine).
//! - [`study`] and [`participant`]: the registries' enums with names.
//! - [`pseudonym`]: keys derived from the patient's secret (a study pseudonym, later one per
//!   holder); [`study_tags`]: an opt-in's holder slots, built by the patient, opened by holders.
//! - [`commitment`]: the salted commitment of a break-glass reason or a credential's reference.

#[macro_use]
mod solidity_enum;

pub mod access_log;
pub mod clock;
pub mod commitment;
#[macro_use]
pub mod envelope;
pub mod error;
pub mod health;
pub mod indexer;
pub mod indexer_auth;
pub mod mask;
pub mod merkle;
pub mod participant;
pub mod pseudonym;
pub mod records;
pub mod research;
pub mod study;
pub mod study_tags;

pub use envelope::{LogRequest, RecordRequest, ResearchRequest, Signed, SignedRequest, Upload};
pub use error::{ErrorBody, ErrorCode};
