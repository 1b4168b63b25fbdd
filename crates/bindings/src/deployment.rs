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

/// Deploys the four registries from `provider`'s account: `admin` holds the governance role,
/// `emergency_cap` is the longest break-glass access in seconds. Returns their addresses, with
/// the chain id and the block before the deployment.
pub async fn deploy(
    provider: &alloy::providers::DynProvider,
    admin: Address,
    emergency_cap: u64,
) -> Result<Deployment, alloy::contract::Error> {
    use crate::{ConsentRegistry, ParticipantRegistry, RecordRegistry, StudyRegistry};
    use alloy::primitives::aliases::U40;
    use alloy::providers::Provider;
    let chain_id = provider.get_chain_id().await?;
    let start_block = provider.get_block_number().await?;
    let p = provider.clone();
    let participants = *ParticipantRegistry::deploy(p.clone(), admin)
        .await?
        .address();
    let consent =
        *ConsentRegistry::deploy(p.clone(), admin, participants, U40::from(emergency_cap))
            .await?
            .address();
    let records = *RecordRegistry::deploy(p.clone(), participants, consent)
        .await?
        .address();
    let studies = *StudyRegistry::deploy(p, admin, participants)
        .await?
        .address();
    Ok(Deployment {
        chain_id,
        start_block,
        admin,
        participant_registry: participants,
        consent_registry: consent,
        record_registry: records,
        study_registry: Some(studies),
    })
}
