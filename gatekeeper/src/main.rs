//! `medrec-gatekeeper`: parses, sets up logging, dispatches (`serve`, `init-key`), and maps
//! an error to the exit code.

use clap::{Parser, Subcommand};
use medrec_gatekeeper::config::ServeArgs;
use medrec_gatekeeper::error::GkError;
use medrec_gatekeeper::store::crypto::MasterKey;
use std::path::PathBuf;
use std::process::ExitCode;

/// A record holder's gatekeeper. Settings: flag > environment variable > default.
#[derive(Debug, Parser)]
#[command(name = "medrec-gatekeeper", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a new random master key file (mode 0600); refuses to overwrite
    InitKey {
        /// Where to write it
        file: PathBuf,
    },
    /// Serve records
    Serve(Box<ServeArgs>),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDREC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = match args.cmd {
        Cmd::InitKey { file } => MasterKey::generate(&file).map(|()| {
            tracing::info!("wrote a new master key to {}", file.display());
        }),
        Cmd::Serve(a) => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(medrec_gatekeeper::serve(*a)),
            Err(e) => Err(GkError::Config(format!("cannot start the runtime: {e}"))),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "medrec::gatekeeper", "{e}");
            ExitCode::from(1)
        }
    }
}
