//! What medrec's integration tests and benchmarks share, so that each harness keeps only what
//! is specific to its crate: the repository's paths and the native foundry binaries, anvil
//! (through alloy's node bindings), child processes killed on drop, free ports, polling until
//! a condition holds, slow clients and the connections a service holds, scratch PostgreSQL
//! databases dropped on drop, the registries deployed and accounts funded and credentialed,
//! contract calls sent and mined, and the `medrec` and `medrec-gatekeeper` programs run
//! against such a world. Requests to a gatekeeper are built from `medrec-protocol` (its
//! messages, envelope, headers, paths and clock), as a client builds them: a test never keeps
//! a copy of the wire format.
//!
//! Everything here panics on failure with a message saying what failed: it is test code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod db;
mod gatekeeper;
mod medrec;
mod paths;
mod process;
mod rpc_log;
mod slow;
mod wait;

pub use chain::{
    Anvil, GOV_KEY, Mined, PROVIDER, RESEARCHER, credential, deploy, fund, gov, mine_every,
    register_holder, wallet_provider, write_deployment,
};
pub use db::{ScratchDb, ScratchDbError, database_url, with_database};
pub use gatekeeper::{Gatekeeper, send_upload, signed_body, signed_query, upload};
pub use medrec::{import_key, medrec_command};
pub use paths::{foundry_bin, repo_root};
pub use process::{Proc, free_port};
pub use rpc_log::logging_rpc_proxy;
pub use slow::{
    Dripped, accepted_connections, assert_dripped_head_cut_off, drip, held_connections,
    idle_connections, padded_head, socket_addr,
};
pub use wait::{now, unique, wait_for, wait_http};
