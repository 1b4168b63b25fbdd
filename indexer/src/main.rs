//! `medrec-indexer`: parse, set up logging, run the pipeline and the API, map errors to exit codes.

use clap::Parser;
use medrec_chain::{ChainError, Rpc};
use medrec_indexer::api::{self, ApiState};
use medrec_indexer::error::IndexerError;
use medrec_indexer::metrics::Metrics;
use medrec_indexer::{db, pipeline};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Mirrors the medrec contracts' events into PostgreSQL and serves a read API.
///
/// Settings: flag > environment variable > default.
#[derive(Debug, Parser)]
#[command(name = "medrec-indexer", version)]
struct Args {
    /// JSON-RPC URL of the chain
    #[arg(long, env = "MEDREC_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// PostgreSQL URL (the role needs to create tables on first run)
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Deployments file, or folder of <chain-id>.json files
    #[arg(long, env = "MEDREC_DEPLOYMENTS", default_value = "deployments")]
    deployments: PathBuf,
    /// Blocks behind the head left unindexed until they are this deep
    #[arg(long, env = "MEDREC_CONFIRMATIONS", default_value_t = 0)]
    confirmations: u64,
    /// How far back a reorg may reach; a deeper one stops the indexer
    #[arg(long, default_value_t = 64)]
    reorg_window: u64,
    /// First eth_getLogs range in blocks (it adapts to 5,000-20,000 events per batch; a small
    /// first range lets reading overlap writing from the start on a dense chain)
    #[arg(long, default_value_t = 10)]
    initial_range: u64,
    /// Largest eth_getLogs range in blocks
    #[arg(long, default_value_t = medrec_chain::MAX_LOG_RANGE)]
    max_range: u64,
    /// A backfill of at least this many events (estimated from its first range) drops the
    /// pointer indexes and builds them once at the head, if fewer anchors are stored than it
    /// will add (the read API's pointer queries scan meanwhile); 0: never
    #[arg(long, default_value_t = 20_000)]
    defer_indexes_min_events: u64,
    /// How often to look for new blocks when caught up, in milliseconds
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Address of the read API
    #[arg(long, env = "MEDREC_INDEXER_LISTEN", default_value = "127.0.0.1:8600")]
    listen: String,
    /// Do not serve the read API
    #[arg(long)]
    no_api: bool,
    /// Exit once caught up with the head (one backfill)
    #[arg(long)]
    exit_at_head: bool,
    /// Logs as JSON lines
    #[arg(long)]
    log_json: bool,
    /// Never draw a progress bar
    #[arg(long)]
    no_progress: bool,
    /// Timeouts and the connection limit of the read API's listener.
    #[command(flatten)]
    connections: medrec_serve::ConnectionLimits,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDREC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "medrec::indexer", "stopped: {e}");
            ExitCode::from(match e {
                IndexerError::Config(_)
                | IndexerError::WrongDeployment(_)
                | IndexerError::Chain(ChainError::Config(_)) => 2,
                IndexerError::Chain(ChainError::DeepReorg { .. }) => 3,
                IndexerError::Integrity(_) | IndexerError::Chain(ChainError::Integrity(_)) => 4,
                _ => 1,
            })
        }
    }
}

/// Retries `f` with backoff while its error is retryable (the node or the database not there
/// yet at start-up).
async fn retry<T, F, Fut>(what: &'static str, f: F) -> Result<T, IndexerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, IndexerError>>,
{
    medrec_chain::retry(f, |e: &IndexerError, _| {
        tracing::warn!(target: "medrec::indexer", error = %e, "{what} unavailable; retrying");
    })
    .await
}

async fn run(args: Args) -> Result<(), IndexerError> {
    let node = Rpc::connect_http(&args.rpc_url)?;
    let chain_id = retry("node", || async { Ok(node.chain_id().await?) }).await?;
    let d = medrec_bindings::deployment::read(&args.deployments, chain_id)
        .map_err(IndexerError::Config)?;
    // The study registry's events too, where the deployment has one.
    let contracts: Vec<_> = [
        d.participant_registry,
        d.consent_registry,
        d.record_registry,
    ]
    .into_iter()
    .chain(d.study_registry)
    .collect();
    let pool = retry("database", || db::pool(&args.database_url, 8)).await?;
    db::check_deployment(&pool, chain_id, &contracts).await?;
    db::migrate(&pool).await?;
    let metrics = Arc::new(Metrics::default());
    let cfg = pipeline::Config {
        rpc_url: args.rpc_url.clone(),
        database_url: args.database_url.clone(),
        contracts,
        start_block: d.start_block,
        confirmations: args.confirmations,
        reorg_window: args.reorg_window,
        initial_range: args.initial_range,
        max_range: args.max_range,
        defer_indexes_min_events: args.defer_indexes_min_events,
        poll_interval: Duration::from_millis(args.poll_ms),
        exit_at_head: args.exit_at_head,
        progress: !args.no_progress,
    };
    if !args.no_api {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| IndexerError::Config(format!("cannot listen on {}: {e}", args.listen)))?;
        let state = ApiState {
            pool: pool.clone(),
            metrics: metrics.clone(),
            node: node.clone(),
            auth: Arc::new(medrec_indexer::auth::Auth::new(
                chain_id,
                d.consent_registry,
            )),
        };
        tracing::info!(target: "medrec::api", listen = %args.listen, "serving the read API");
        tokio::spawn(medrec_serve::serve(
            listener,
            api::router(state),
            args.connections.clone(),
        ));
    }
    pipeline::run(cfg, pool, metrics).await
}
