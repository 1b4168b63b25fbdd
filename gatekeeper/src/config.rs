//! The service's settings: the `serve` options, each default defined once here, and the
//! limits the HTTP layer enforces. Settings: flag > environment variable > default.

use std::path::PathBuf;
use std::time::Duration;

/// Default largest record accepted on upload, in bytes.
pub const MAX_RECORD_BYTES: usize = 4 << 20;
/// Largest signed request body (read, access log), in bytes.
pub const MAX_REQUEST_BYTES: usize = 8 << 10;
/// Largest research query body, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 << 10;
/// Default sustained reads per second per requester.
pub const RATE_PER_SEC: f64 = 200.0;
/// Default burst of reads per requester.
pub const BURST: f64 = 400.0;
/// Default memory for records served, in MiB.
pub const RECORD_CACHE_MB: usize = 64;
/// Default seconds a served record stays in memory.
pub const RECORD_CACHE_SECS: u64 = 60;
/// Default seconds between anchors of the access log head.
pub const ANCHOR_EVERY_SECS: u64 = 300;
/// Default age in blocks a new research query's pinned block may have.
pub const RESEARCH_MAX_PIN_AGE: u64 = medrec_protocol::research::DEFAULT_MAX_PIN_AGE;
/// The largest epsilon of a research query a holder answers on its defaults.
pub const RESEARCH_MAX_EPSILON: f64 = 1.0;

/// An epsilon in (0, the vocabulary's largest].
fn parse_epsilon(s: &str) -> Result<f64, String> {
    let max = medrec_protocol::research::MAX_EPSILON;
    match s.parse::<f64>() {
        Ok(e) if e.is_finite() && e > 0.0 && e <= max => Ok(e),
        _ => Err(format!("an epsilon in (0, {max}], not {s:?}")),
    }
}

/// How often the opt-in follower looks for new blocks.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Connections to the holder's database.
pub const DB_CONNECTIONS: u32 = 16;
/// Default largest age, in seconds, of the node's latest block for reads to be served.
pub const MAX_HEAD_AGE_SECS: u64 = 30;
/// How often the node's latest block is looked at.
pub const HEAD_EVERY: Duration = Duration::from_millis(500);

/// `medrec-gatekeeper serve`.
// The field docs are the `--help` text, where `<chain-id>` is meant literally.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The holder's address: uploads must be signed by it, requests addressed to it
    #[arg(long, env = "MEDREC_HOLDER")]
    pub holder: String,
    /// The master key file (64 hex digits)
    #[arg(long, env = "MEDREC_MASTER_KEY_FILE")]
    pub master_key_file: PathBuf,
    /// PostgreSQL URL of this holder's database
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// JSON-RPC URL of the chain
    #[arg(long, env = "MEDREC_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Deployments file, or folder of <chain-id>.json files
    #[arg(long, env = "MEDREC_DEPLOYMENTS", default_value = "deployments")]
    pub deployments: PathBuf,
    /// Address to listen on
    #[arg(
        long,
        env = "MEDREC_GATEKEEPER_LISTEN",
        default_value = medrec_protocol::records::DEFAULT_LISTEN
    )]
    pub listen: String,
    /// Largest record accepted, in bytes
    #[arg(long, default_value_t = MAX_RECORD_BYTES)]
    pub max_record_bytes: usize,
    /// Sustained reads per second per requester
    #[arg(long, default_value_t = RATE_PER_SEC)]
    pub rate_per_sec: f64,
    /// Burst of reads per requester
    #[arg(long, default_value_t = BURST)]
    pub burst: f64,
    /// Memory for records served, in MiB, so the next read of one need not fetch it from the
    /// database (0: every read fetches). Records stay encrypted there, as at rest; every read
    /// still asks the chain
    #[arg(long, default_value_t = RECORD_CACHE_MB)]
    pub record_cache_mb: usize,
    /// Seconds a record stays in that memory: a record changed or deleted in the database is
    /// served as it was for at most this long (0: every read fetches)
    #[arg(long, default_value_t = RECORD_CACHE_SECS)]
    pub record_cache_secs: u64,
    /// The holder's keystore: when given, research answers are signed with it (without it,
    /// research queries are refused); without --service-keystore the log head is also anchored
    /// from it, sharing the holder's nonces with its own transactions
    #[arg(
        long,
        env = "MEDREC_ANCHOR_KEYSTORE",
        requires = "anchor_password_file"
    )]
    pub anchor_keystore: Option<PathBuf>,
    /// File whose first line is that keystore's password
    #[arg(long, env = "MEDREC_ANCHOR_PASSWORD_FILE")]
    pub anchor_password_file: Option<PathBuf>,
    /// The gatekeeper's own key (a keystore): the log head is anchored on chain from it, so the
    /// service never races the holder's transactions for nonces. The holder registers it first
    /// (`medrec holder register --endpoint URL --service-key ADDRESS`); the service checks
    /// that at start
    #[arg(
        long,
        env = "MEDREC_SERVICE_KEYSTORE",
        requires = "service_password_file"
    )]
    pub service_keystore: Option<PathBuf>,
    /// File whose first line is that keystore's password
    #[arg(long, env = "MEDREC_SERVICE_PASSWORD_FILE")]
    pub service_password_file: Option<PathBuf>,
    /// Seconds between anchors of the log head (only when it grew)
    #[arg(long, default_value_t = ANCHOR_EVERY_SECS)]
    pub anchor_every: u64,
    /// How many blocks old a new research query's pinned block may be (older pins could count
    /// patients who have withdrawn since)
    #[arg(long, default_value_t = RESEARCH_MAX_PIN_AGE)]
    pub research_max_pin_age: u64,
    /// The largest epsilon of a research query this holder answers. A holder answers before
    /// the query's receipt is on chain, so a researcher who never records it holds one unpaid
    /// answer per holder: this bounds what that answer can tell (docs/research-privacy.md)
    #[arg(long, env = "MEDREC_RESEARCH_MAX_EPSILON", default_value_t = RESEARCH_MAX_EPSILON,
          value_parser = parse_epsilon)]
    pub research_max_epsilon: f64,
    /// Seconds the node's latest block may lag the wall clock; beyond it reads are refused
    /// (503 chain_stale) and /health says so: a node that stopped syncing, or a chain that
    /// makes blocks only on demand, cannot tell whether a grant has expired or been revoked
    #[arg(
        long,
        env = "MEDREC_MAX_HEAD_AGE",
        value_name = "SECS",
        default_value_t = MAX_HEAD_AGE_SECS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_head_age: u64,
    /// Timeouts and the connection limit of the listener.
    #[command(flatten)]
    pub connections: medrec_serve::ConnectionLimits,
}

/// What the HTTP layer enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest record accepted on upload, in bytes.
    pub max_record_bytes: usize,
    /// Largest signed request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest research query body, in bytes.
    pub max_query_bytes: usize,
    /// Sustained requests per second per requester.
    pub rate_per_sec: f64,
    /// Burst of requests per requester.
    pub burst: f64,
    /// Memory for records served (kept sealed, as at rest), in bytes (0: none).
    pub record_cache_bytes: usize,
    /// How long a record is kept in memory: a record changed or deleted in the database is
    /// served as it was for at most this long.
    pub record_cache_ttl: Duration,
}

/// `n` MiB in bytes (at most `usize::MAX`).
fn mib(n: usize) -> usize {
    n.saturating_mul(1 << 20)
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_record_bytes: MAX_RECORD_BYTES,
            max_request_bytes: MAX_REQUEST_BYTES,
            max_query_bytes: MAX_QUERY_BYTES,
            rate_per_sec: RATE_PER_SEC,
            burst: BURST,
            record_cache_bytes: mib(RECORD_CACHE_MB),
            record_cache_ttl: Duration::from_secs(RECORD_CACHE_SECS),
        }
    }
}

impl From<&ServeArgs> for Limits {
    fn from(a: &ServeArgs) -> Self {
        Self {
            max_record_bytes: a.max_record_bytes,
            rate_per_sec: a.rate_per_sec,
            burst: a.burst,
            record_cache_bytes: mib(a.record_cache_mb),
            record_cache_ttl: Duration::from_secs(a.record_cache_secs),
            ..Self::default()
        }
    }
}
