//! Integration tests of `medrec-indexer` against a real anvil, a real PostgreSQL and its real
//! HTTP API: consistency with an independent decoding of the chain, reorgs (including one
//! timed between two reads of a batch), crashes, node outages, and the writer lock (including
//! takeovers while the dead writer's last transaction is still in flight), and the study
//! registry's tables and routes.
//!
//! Every test starts its own anvil on a free port and creates its own database (named
//! `medrec_it_*`, dropped at the end) through `DATABASE_URL`, which must name a role that may
//! create databases (`export DATABASE_URL=$(bash script/pg.sh)`).

#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

mod harness;
mod model;

mod auth;
mod break_glass;
mod consent_rules;
mod consistency;
mod crash;
mod lock;
mod outage;
mod race;
mod reorg;
mod schema;
mod studies;
mod transport;
mod write_paths;
