//! `medrec`: patients, providers and operators act on the medrec contracts from the command line.
//!
//! `main.rs` only parses, sets up logging, dispatches to [`run`] and maps errors to exit codes;
//! every subcommand lives in `cmd/<verb>.rs` with its `<Verb>Args` and `run`.

pub mod chain;
pub mod cmd;
pub mod error;
pub mod keys;
pub mod opts;
pub mod output;
pub mod signed;
pub mod units;

use clap::{Parser, Subcommand};
use error::Result;
use opts::GlobalOpts;
use output::Printer;

/// Patient-controlled access to medical records: consent and record pointers on chain.
#[derive(Debug, Parser)]
#[command(name = "medrec", version, about, long_about = None)]
#[command(
    after_help = "Settings: flag > environment variable > config file > default.\n\
Exit codes: 0 ok, 2 bad input, 3 contract refused (revert), 4 node unreachable or RPC error, \
5 wrong chain or missing deployment, 6 key or password, 7 insufficient funds, 8 file error, \
9 integrity, 10 refused by a gatekeeper."
)]
pub struct Cli {
    /// Options shared by all subcommands.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, import and list keystore accounts
    #[command(subcommand)]
    Account(cmd::account::AccountCmd),
    /// Operator: deploy the registries and write the deployments file
    Deploy(cmd::deploy::DeployArgs),
    /// Operator: credential, revoke and show providers and researchers
    #[command(subcommand)]
    Participant(cmd::participant::ParticipantCmd),
    /// Patient (or guardian): grant a provider access to categories of records
    Grant(cmd::grant::GrantArgs),
    /// Patient (or guardian): revoke a provider's access
    Revoke(cmd::grant::RevokeArgs),
    /// Patient (or guardian): void every outstanding signed grant or revocation for a grantee
    CancelSignatures(cmd::grant::CancelArgs),
    /// Anyone: send a consent message (grant, revocation, cancellation, study opt-in or
    /// withdrawal) that a patient signed offline
    Relay(cmd::grant::RelayArgs),
    /// Show a grant as the chain holds it now
    ShowGrant(cmd::grant::ShowGrantArgs),
    /// May this grantee read this category of this patient now?
    Check(cmd::grant::CheckArgs),
    /// Patient: name, remove and show guardians
    #[command(subcommand)]
    Guardian(cmd::guardian::GuardianCmd),
    /// Provider: emergency (break-glass) access; operator: its cap
    #[command(subcommand, name = "break-glass")]
    BreakGlass(cmd::break_glass::BreakGlassCmd),
    /// Provider: anchor a record file's pointer (SHA-256 computed here)
    Anchor(cmd::anchor::AnchorArgs),
    /// Provider: anchor many records listed in a JSON manifest, in batches
    AnchorBatch(cmd::anchor::AnchorBatchArgs),
    /// Show or verify an anchored pointer
    #[command(subcommand)]
    Pointer(cmd::anchor::PointerCmd),
    /// Holder: register your gatekeeper's endpoint and service key on chain; show a holder's
    #[command(subcommand)]
    Holder(cmd::holder::HolderCmd),
    /// Holder: store a FHIR record at your gatekeeper and anchor its pointer, in one step
    Put(cmd::records::PutArgs),
    /// Holder: store many FHIR records (a JSON manifest) at your gatekeeper and anchor them in
    /// batches; running it again finishes an interrupted import
    Import(cmd::import::ImportArgs),
    /// Requester: fetch a record from its holder and verify it against the chain
    Get(cmd::records::GetArgs),
    /// Holder: erase a record: its data key destroyed at your gatekeeper, then its pointer
    /// marked erased on chain; running it again finishes an interrupted erasure
    Forget(cmd::forget::ForgetArgs),
    /// Patient: read a holder's access log of your records; holder: all of it. Checked against
    /// every root the holder anchored on chain
    AccessLog(cmd::access_log::AccessLogArgs),
    /// Research studies: register, approve, opt in, withdraw, query
    #[command(subcommand)]
    Study(cmd::study::StudyCmd),
    /// List a patient's grants (from the indexer)
    Grants(cmd::listing::GrantsArgs),
    /// List the patients who granted a provider access (from the indexer)
    Patients(cmd::listing::PatientsArgs),
    /// List a patient's records: who holds what (from the indexer)
    Records(cmd::listing::RecordsArgs),
    /// What happened to a patient's records: grants, revocations, break-glass, anchors
    Timeline(cmd::listing::TimelineArgs),
}

/// Runs one parsed command.
pub async fn run(cli: Cli, out: Printer) -> Result<()> {
    let settings = cli.global.resolve()?;
    match cli.command {
        Command::Account(c) => cmd::account::run(c, &settings, out),
        Command::Deploy(a) => cmd::deploy::run(a, &settings, out).await,
        Command::Participant(c) => cmd::participant::run(c, &settings, out).await,
        Command::Grant(a) => cmd::grant::run_grant(a, &settings, out).await,
        Command::Revoke(a) => cmd::grant::run_revoke(a, &settings, out).await,
        Command::CancelSignatures(a) => cmd::grant::run_cancel(a, &settings, out).await,
        Command::Relay(a) => cmd::grant::run_relay(a, &settings, out).await,
        Command::ShowGrant(a) => cmd::grant::run_show(a, &settings, out).await,
        Command::Check(a) => cmd::grant::run_check(a, &settings, out).await,
        Command::Guardian(c) => cmd::guardian::run(c, &settings, out).await,
        Command::BreakGlass(c) => cmd::break_glass::run(c, &settings, out).await,
        Command::Anchor(a) => cmd::anchor::run_anchor(a, &settings, out).await,
        Command::AnchorBatch(a) => cmd::anchor::run_batch(a, &settings, out).await,
        Command::Pointer(c) => cmd::anchor::run_pointer(c, &settings, out).await,
        Command::Holder(c) => cmd::holder::run(c, &settings, out).await,
        Command::Put(a) => cmd::records::run_put(a, &settings, out).await,
        Command::Import(a) => cmd::import::run(a, &settings, out).await,
        Command::Get(a) => cmd::records::run_get(a, &settings, out).await,
        Command::Forget(a) => cmd::forget::run(a, &settings, out).await,
        Command::AccessLog(a) => cmd::access_log::run(a, &settings, out).await,
        Command::Study(c) => cmd::study::run(c, &settings, out).await,
        Command::Grants(a) => cmd::listing::run_grants(a, &settings, out).await,
        Command::Patients(a) => cmd::listing::run_patients(a, &settings, out).await,
        Command::Records(a) => cmd::listing::run_records(a, &settings, out).await,
        Command::Timeline(a) => cmd::listing::run_timeline(a, &settings, out).await,
    }
}
