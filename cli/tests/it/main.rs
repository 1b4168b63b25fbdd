//! Integration tests of the `medrec` binary against a real anvil with the real contracts.
//!
//! Each test starts its own anvil on a free port, imports or creates keystore accounts in a
//! temporary folder, deploys with `medrec deploy`, and drives the built binary.

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

mod harness;

mod accounts;
mod break_glass;
mod cast_keystores;
mod consent;
mod errors;
mod holders;
mod listings;
mod pointers;
mod research;
mod study_policy;
mod study_privacy;
