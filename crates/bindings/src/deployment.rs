//! The deployments file (`deployments/<chain-id>.json`), written by `script/Deploy.s.sol` or
//! `medrec deploy` and read by every medrec program.

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The contracts' addresses on one chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The chain id.
    pub chain_id: u64,
    /// The block before the deployment (where an indexer starts).
    #[serde(default)]
    pub start_block: u64,
    /// The governance account.
    pub admin: Address,
    /// The participant registry.
    pub participant_registry: Address,
    /// The consent registry.
    pub consent_registry: Address,
    /// The record registry.
    pub record_registry: Address,
    /// The study registry (absent in deployments made before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study_registry: Option<Address>,
}

/// The deployments file for `chain_id`: `path` itself if it names a `.json` file, else
/// `path/<chain-id>.json`.
pub fn path(path: &Path, chain_id: u64) -> PathBuf {
    if path.extension().is_some_and(|e| e == "json") {
        path.to_path_buf()
    } else {
        path.join(format!("{chain_id}.json"))
    }
}

/// Reads the deployment of `chain_id` from `dir_or_file`; the error is one line.
pub fn read(dir_or_file: &Path, chain_id: u64) -> Result<Deployment, String> {
    let file = path(dir_or_file, chain_id);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "no deployment for chain {chain_id}: cannot read {} ({e})",
            file.display()
        )
    })?;
    let d: Deployment = serde_json::from_str(&text)
        .map_err(|e| format!("deployments file {} is not valid: {e}", file.display()))?;
    if d.chain_id != chain_id {
        return Err(format!(
            "deployments file {} is for chain {}, the node is on {chain_id}",
            file.display(),
            d.chain_id
        ));
    }
    Ok(d)
}
