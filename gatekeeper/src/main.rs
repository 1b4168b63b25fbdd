//! `medrec-gatekeeper`: parse, set up logging, serve; `init-key` writes a new master key file.

use alloy::providers::{Provider, ProviderBuilder};
use clap::{Parser, Subcommand};
use medrec_gatekeeper::crypto::MasterKey;
use medrec_gatekeeper::error::GkError;
use medrec_gatekeeper::server::{self, Gatekeeper, Limits};
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

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The holder's address: uploads must be signed by it, requests addressed to it
    #[arg(long, env = "MEDREC_HOLDER")]
    holder: String,
    /// The master key file (64 hex digits)
    #[arg(long, env = "MEDREC_MASTER_KEY_FILE")]
    master_key_file: PathBuf,
    /// PostgreSQL URL of this holder's database
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// JSON-RPC URL of the chain
    #[arg(long, env = "MEDREC_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// Deployments file, or folder of <chain-id>.json files
    #[arg(long, env = "MEDREC_DEPLOYMENTS", default_value = "deployments")]
    deployments: PathBuf,
    /// Address to listen on
    #[arg(
        long,
        env = "MEDREC_GATEKEEPER_LISTEN",
        default_value = "127.0.0.1:8701"
    )]
    listen: String,
    /// Largest record accepted, in bytes
    #[arg(long, default_value_t = 4 << 20)]
    max_record_bytes: usize,
    /// Sustained reads per second per requester
    #[arg(long, default_value_t = 200.0)]
    rate_per_sec: f64,
    /// Burst of reads per requester
    #[arg(long, default_value_t = 400.0)]
    burst: f64,
    /// Memory for records served, in MiB, so the next read of one need not fetch it from the
    /// database (0: every read fetches). Records stay encrypted there, as at rest; every read
    /// still asks the chain
    #[arg(long, default_value_t = 64)]
    record_cache_mb: usize,
    /// Seconds a record stays in that memory: a record changed or deleted in the database is
    /// served as it was for at most this long (0: every read fetches)
    #[arg(long, default_value_t = 60)]
    record_cache_secs: u64,
    /// The holder's keystore: when given, the log head is anchored on chain from time to time
    /// and research answers are signed (without it, research queries are refused)
    #[arg(
        long,
        env = "MEDREC_ANCHOR_KEYSTORE",
        requires = "anchor_password_file"
    )]
    anchor_keystore: Option<PathBuf>,
    /// File whose first line is that keystore's password
    #[arg(long, env = "MEDREC_ANCHOR_PASSWORD_FILE")]
    anchor_password_file: Option<PathBuf>,
    /// Seconds between anchors of the log head (only when it grew)
    #[arg(long, default_value_t = 300)]
    anchor_every: u64,
    /// How many blocks old a new research query's pinned block may be (older pins could count
    /// patients who have withdrawn since)
    #[arg(long, default_value_t = 64)]
    research_max_pin_age: u64,
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
            Ok(rt) => rt.block_on(serve(*a)),
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

async fn serve(a: ServeArgs) -> Result<(), GkError> {
    let holder: alloy::primitives::Address = a
        .holder
        .parse()
        .map_err(|_| GkError::Config(format!("bad holder address {:?}", a.holder)))?;
    let key = MasterKey::load(&a.master_key_file)?;
    let url = a
        .rpc_url
        .parse()
        .map_err(|_| GkError::Config(format!("bad RPC URL {:?}", a.rpc_url)))?;
    let provider = ProviderBuilder::new().connect_http(url).erased();
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| GkError::Chain(format!("cannot reach {}: {e}", a.rpc_url)))?;
    let d = medrec_bindings::deployment::read(&a.deployments, chain_id).map_err(GkError::Config)?;
    // Every log entry is flushed to disk before its read is answered, whatever the role's or
    // database's default says.
    let options: sqlx::postgres::PgConnectOptions = a
        .database_url
        .parse()
        .map_err(|e| GkError::Config(format!("bad database URL: {e}")))?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options.options([("synchronous_commit", "on")]))
        .await
        .map_err(|e| GkError::Config(format!("cannot connect to the database: {e}")))?;
    sqlx::migrate!("../migrations/gatekeeper")
        .run(&pool)
        .await
        .map_err(|e| GkError::Config(format!("migrations: {e}")))?;
    let consent = medrec_bindings::ConsentRegistry::new(d.consent_registry, provider);
    let domain = medrec_bindings::gatekeeper_domain(chain_id, d.record_registry);
    let limits = Limits {
        max_record_bytes: a.max_record_bytes,
        rate_per_sec: a.rate_per_sec,
        burst: a.burst,
        record_cache_bytes: a.record_cache_mb.saturating_mul(1 << 20),
        record_cache_ttl: std::time::Duration::from_secs(a.record_cache_secs),
        ..Limits::default()
    };
    let gk = Gatekeeper::new(pool, key, holder, domain, consent, limits).await?;
    if let Some(keystore) = &a.anchor_keystore {
        let password_file = a
            .anchor_password_file
            .as_ref()
            .ok_or_else(|| GkError::Config("--anchor-password-file is required".into()))?;
        let password = std::fs::read_to_string(password_file).map_err(|e| {
            GkError::Config(format!("cannot read {}: {e}", password_file.display()))
        })?;
        let signer = alloy::signers::local::PrivateKeySigner::decrypt_keystore(
            keystore,
            password.lines().next().unwrap_or_default(),
        )
        .map_err(|e| GkError::Config(format!("cannot decrypt {}: {e}", keystore.display())))?;
        let signer_for_answers = signer.clone();
        if signer.address() != holder {
            return Err(GkError::Config(format!(
                "the anchor keystore holds {}, not the holder {holder}",
                signer.address()
            )));
        }
        let url = a
            .rpc_url
            .parse()
            .map_err(|_| GkError::Config("bad RPC URL".into()))?;
        let wallet = ProviderBuilder::new()
            .wallet(alloy::network::EthereumWallet::from(signer))
            .connect_http(url)
            .erased();
        let registry = medrec_bindings::RecordRegistry::new(d.record_registry, wallet.clone());
        if let Some(studies) = d.study_registry {
            let research = medrec_gatekeeper::research::Research {
                participants: medrec_bindings::ParticipantRegistry::new(
                    d.participant_registry,
                    wallet.clone(),
                ),
                studies: medrec_bindings::StudyRegistry::new(studies, wallet.clone()),
                provider: wallet.clone(),
                signer: signer_for_answers,
                opt_ins: Default::default(),
                max_pin_age: a.research_max_pin_age,
            };
            let _ = gk.research.set(research);
            tokio::spawn(medrec_gatekeeper::research::follow_opt_ins(
                gk.clone(),
                std::time::Duration::from_millis(500),
            ));
        }
        tokio::spawn(server::anchor_loop(
            gk.clone(),
            registry,
            std::time::Duration::from_secs(a.anchor_every.max(1)),
        ));
    }
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| GkError::Config(format!("cannot listen on {}: {e}", a.listen)))?;
    tracing::info!(target: "medrec::gatekeeper", listen = %a.listen, %holder, "serving");
    axum::serve(listener, server::router(gk))
        .await
        .map_err(|e| GkError::Internal(format!("server stopped: {e}")))
}
