//! The CLI's errors: each says what went wrong in one line and maps to an exit code.

use medrec_bindings::DecodedRevert;

/// Everything a `medrec` command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input is invalid (a bad address, an unknown category, a bad duration...).
    #[error("{0}")]
    Input(String),
    /// The contract reverted with a known custom error.
    #[error("the contract refused: {0}")]
    Revert(DecodedRevert),
    /// The contract reverted without a known custom error.
    #[error("the transaction reverted: {0}")]
    RevertUnknown(String),
    /// The node could not be reached or answered with an error.
    #[error("{0}")]
    Rpc(String),
    /// The node's chain id is not the one asked for.
    #[error("wrong chain: expected chain id {expected}, the node at {url} is on {actual}")]
    ChainMismatch {
        /// The chain id asked for.
        expected: u64,
        /// The node's chain id.
        actual: u64,
        /// The node's URL.
        url: String,
    },
    /// The deployments file is missing or unusable, or a contract is not deployed.
    #[error("{0}")]
    Deployment(String),
    /// A key could not be created, found or decrypted.
    #[error("{0}")]
    Key(String),
    /// The sending account cannot pay for the transaction.
    #[error("insufficient funds: {0}")]
    Funds(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A record's bytes do not match what the chain holds.
    #[error("{0}")]
    Integrity(String),
    /// A gatekeeper refused the request.
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    /// The same error, its message followed by `note` (for the errors that carry a message).
    pub fn with_note(self, note: &str) -> Self {
        let add = |m: String| format!("{m}; {note}");
        match self {
            Self::Input(m) => Self::Input(add(m)),
            Self::RevertUnknown(m) => Self::RevertUnknown(add(m)),
            Self::Rpc(m) => Self::Rpc(add(m)),
            Self::Deployment(m) => Self::Deployment(add(m)),
            Self::Key(m) => Self::Key(add(m)),
            Self::Funds(m) => Self::Funds(add(m)),
            Self::Io(m) => Self::Io(add(m)),
            Self::Integrity(m) => Self::Integrity(add(m)),
            Self::Refused(m) => Self::Refused(add(m)),
            other => other,
        }
    }

    /// The process exit code for this error (2 is clap's code for bad usage).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Input(_) => 2,
            Self::Revert(_) | Self::RevertUnknown(_) => 3,
            Self::Rpc(_) => 4,
            Self::ChainMismatch { .. } | Self::Deployment(_) => 5,
            Self::Key(_) => 6,
            Self::Funds(_) => 7,
            Self::Io(_) => 8,
            Self::Integrity(_) => 9,
            Self::Refused(_) => 10,
        }
    }

    /// A stable machine-readable kind, used in `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Input(_) => "input",
            Self::Revert(_) | Self::RevertUnknown(_) => "revert",
            Self::Rpc(_) => "rpc",
            Self::ChainMismatch { .. } => "chain-mismatch",
            Self::Deployment(_) => "deployment",
            Self::Key(_) => "key",
            Self::Funds(_) => "funds",
            Self::Io(_) => "io",
            Self::Integrity(_) => "integrity",
            Self::Refused(_) => "refused",
        }
    }

    /// The revert's error name and arguments, when the contract refused.
    pub fn revert(&self) -> Option<&DecodedRevert> {
        match self {
            Self::Revert(r) => Some(r),
            _ => None,
        }
    }

    /// Shorthand for an input error.
    pub fn input(msg: impl Into<String>) -> Self {
        Self::Input(msg.into())
    }
}

/// The CLI's result type.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Turns an error from a contract call or transaction into a [`CliError`], decoding reverts.
pub fn from_contract(err: alloy::contract::Error, url: &str) -> CliError {
    if let Some(data) = err.as_revert_data() {
        return match medrec_bindings::decode_revert(&data) {
            Some(decoded) => CliError::Revert(decoded),
            None => CliError::RevertUnknown(format!("0x{}", alloy::hex::encode(&data))),
        };
    }
    match err {
        alloy::contract::Error::TransportError(e) => from_transport(e, url),
        other => CliError::Rpc(format!("contract call failed: {other}")),
    }
}

/// Turns a transport error into a [`CliError`].
pub fn from_transport(err: alloy::transports::TransportError, url: &str) -> CliError {
    if let Some(resp) = err.as_error_resp() {
        if let Some(data) = resp.as_revert_data()
            && let Some(decoded) = medrec_bindings::decode_revert(&data)
        {
            return CliError::Revert(decoded);
        }
        let msg = resp.message.to_string();
        if msg.to_ascii_lowercase().contains("insufficient funds") {
            return CliError::Funds(msg);
        }
        return CliError::Rpc(format!("the node at {url} answered: {msg}"));
    }
    if err.is_transport_error() {
        return CliError::Rpc(format!(
            "cannot reach the node at {url}: {}",
            first_line(&err)
        ));
    }
    CliError::Rpc(format!("node {url}: {}", first_line(&err)))
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
