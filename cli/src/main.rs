//! The `medrec` binary: parse, set up logging, dispatch, map the error to an exit code.

use clap::Parser;
use medrec_cli::{Cli, output::Printer, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "warn,medrec_cli=info",
        (_, 2) => "info,medrec_cli=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDREC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let out = Printer::new(cli.global.json, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            out.error(&medrec_cli::error::CliError::Io(format!(
                "cannot start the runtime: {e}"
            )));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
