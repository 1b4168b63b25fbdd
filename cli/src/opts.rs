//! Global options shared by every subcommand, and the settings they resolve to.
//!
//! Precedence, highest first: command-line flag, environment variable, config file
//! (`~/.medrec/config.toml` or `--config`), built-in default.

use crate::error::{CliError, Result};
use clap::{ArgAction, Args};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The default JSON-RPC endpoint: the local chain that `make demo` starts.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";

/// The default read API: the indexer that `make demo` starts.
pub const DEFAULT_INDEXER_URL: &str = "http://127.0.0.1:8600";

/// Options every subcommand accepts.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// JSON-RPC URL of the chain [default: http://127.0.0.1:8545]
    #[arg(long, env = "MEDREC_RPC_URL", global = true, help_heading = "Chain")]
    pub rpc_url: Option<String>,

    /// Refuse to act unless the node is on this chain id
    #[arg(long, env = "MEDREC_CHAIN_ID", global = true, help_heading = "Chain")]
    pub chain_id: Option<u64>,

    /// Deployments file, or folder of <chain-id>.json files [default: deployments]
    #[arg(
        long,
        env = "MEDREC_DEPLOYMENTS",
        global = true,
        help_heading = "Chain"
    )]
    pub deployments: Option<PathBuf>,

    /// Account to sign with: a name in the keystore folder, or a keystore file's path
    #[arg(
        short = 'a',
        long,
        env = "MEDREC_ACCOUNT",
        global = true,
        help_heading = "Keys"
    )]
    pub account: Option<String>,

    /// Keystore folder [default: ~/.medrec/keystores]
    #[arg(
        long,
        env = "MEDREC_KEYSTORE_DIR",
        global = true,
        help_heading = "Keys"
    )]
    pub keystore_dir: Option<PathBuf>,

    /// File whose first line is the keystore password (otherwise: prompt)
    #[arg(
        long,
        env = "MEDREC_PASSWORD_FILE",
        global = true,
        help_heading = "Keys"
    )]
    pub password_file: Option<PathBuf>,

    /// URL of the indexer's read API, for listings [default: http://127.0.0.1:8600]
    #[arg(
        long,
        env = "MEDREC_INDEXER_URL",
        global = true,
        help_heading = "Chain"
    )]
    pub indexer_url: Option<String>,

    /// Config file [default: ~/.medrec/config.toml, if present]
    #[arg(long, env = "MEDREC_CONFIG", global = true, help_heading = "Output")]
    pub config: Option<PathBuf>,

    /// Print one JSON document (stable shape, "version": 1), failures included
    #[arg(long, global = true, help_heading = "Output")]
    pub json: bool,

    /// More logging (-v, -vv); logs go to stderr
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Output")]
    pub verbose: u8,

    /// Print nothing but errors
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Output"
    )]
    pub quiet: bool,
}

/// The config file's keys; each is the long flag's name with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// See `--rpc-url`.
    pub rpc_url: Option<String>,
    /// See `--chain-id`.
    pub chain_id: Option<u64>,
    /// See `--deployments`.
    pub deployments: Option<PathBuf>,
    /// See `--account`.
    pub account: Option<String>,
    /// See `--keystore-dir`.
    pub keystore_dir: Option<PathBuf>,
    /// See `--password-file`.
    pub password_file: Option<PathBuf>,
    /// See `--indexer-url`.
    pub indexer_url: Option<String>,
}

/// Settings after flags, environment, config file and defaults are merged.
#[derive(Debug, Clone)]
pub struct Settings {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Expected chain id, if any.
    pub chain_id: Option<u64>,
    /// Deployments file or folder.
    pub deployments: PathBuf,
    /// Account name or keystore path.
    pub account: Option<String>,
    /// Keystore folder.
    pub keystore_dir: PathBuf,
    /// Password file.
    pub password_file: Option<PathBuf>,
    /// The indexer's read API.
    pub indexer_url: String,
    /// medrec's address book: the addresses of keystores that hold none (as cast writes
    /// them), learnt when medrec first decrypted them (`~/.medrec/addresses.json`).
    pub address_book: PathBuf,
    /// Whether notes for humans may go to stderr (not under `--json` or `-q`).
    pub notes: bool,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl GlobalOpts {
    /// Merges flags and environment (already in `self`) with the config file and defaults.
    pub fn resolve(&self) -> Result<Settings> {
        let (config, explicit) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (home().join(".medrec/config.toml"), false),
        };
        let file = load_config(&config, explicit)?;
        Ok(Settings {
            rpc_url: self
                .rpc_url
                .clone()
                .or(file.rpc_url)
                .unwrap_or_else(|| DEFAULT_RPC_URL.to_string()),
            chain_id: self.chain_id.or(file.chain_id),
            deployments: self
                .deployments
                .clone()
                .or(file.deployments)
                .unwrap_or_else(|| PathBuf::from("deployments")),
            account: self.account.clone().or(file.account),
            keystore_dir: self
                .keystore_dir
                .clone()
                .or(file.keystore_dir)
                .unwrap_or_else(|| home().join(".medrec/keystores")),
            password_file: self.password_file.clone().or(file.password_file),
            indexer_url: self
                .indexer_url
                .clone()
                .or(file.indexer_url)
                .unwrap_or_else(|| DEFAULT_INDEXER_URL.to_string()),
            address_book: home().join(".medrec/addresses.json"),
            notes: !self.json && !self.quiet,
        })
    }
}

fn load_config(path: &Path, explicit: bool) -> Result<ConfigFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_string();
            CliError::input(format!("config file {}: {msg}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok(ConfigFile::default())
        }
        Err(e) => Err(CliError::Io(format!(
            "cannot read config file {}: {e}",
            path.display()
        ))),
    }
}
