//! The study registry's opt-ins and withdrawals, read once from its logs and then followed
//! block by block: a query folds the changes up to the block it pins instead of reading
//! every opt-in of the study from the chain again. After a reorg everything is read again.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use medrec_bindings::StudyRegistry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One opt-in or withdrawal: (block, log index, patient, opted in).
type Change = (u64, u64, Address, bool);

/// Blocks per eth_getLogs call when catching up.
const LOG_RANGE: u64 = 50_000;

/// The opt-ins and withdrawals of one study registry read so far.
pub struct OptIns {
    provider: DynProvider,
    registry: Address,
    state: tokio::sync::Mutex<OptInState>,
}

#[derive(Default)]
struct OptInState {
    /// The last block read (inclusive) and its hash.
    read_to: Option<(u64, B256)>,
    /// Per study, its changes in chain order.
    changes: HashMap<U256, Vec<Change>>,
}

async fn block_hash(p: &DynProvider, n: u64) -> Result<B256, String> {
    match p.get_block_by_number(n.into()).await {
        Ok(Some(b)) => Ok(b.header.hash),
        Ok(None) => Err(format!("block {n} is not on the chain yet")),
        Err(e) => Err(format!("chain: {e}")),
    }
}

impl OptIns {
    /// Nothing read yet of the study registry at `registry`.
    pub fn new(provider: DynProvider, registry: Address) -> Self {
        Self {
            provider,
            registry,
            state: Default::default(),
        }
    }

    /// Reads the registry's changes up to block `to` (and checks that what was read before is
    /// still on the canonical chain: after a reorg everything is read again).
    async fn catch_up(&self, to: u64) -> Result<(), String> {
        let provider = &self.provider;
        let mut st = self.state.lock().await;
        if let Some((n, h)) = st.read_to
            && block_hash(provider, n).await? != h
        {
            tracing::warn!(target: "medrec::gatekeeper", block = n, "reorg: reading opt-ins again");
            *st = OptInState::default();
        }
        let mut from = st.read_to.map_or(0, |(n, _)| n + 1);
        while from <= to {
            let end = to.min(from + LOG_RANGE - 1);
            let before = block_hash(provider, end).await?;
            let filter = Filter::new()
                .address(self.registry)
                .event_signature(vec![
                    StudyRegistry::OptedIn::SIGNATURE_HASH,
                    StudyRegistry::Withdrew::SIGNATURE_HASH,
                ])
                .from_block(from)
                .to_block(end);
            let mut logs = provider
                .get_logs(&filter)
                .await
                .map_err(|e| format!("chain: {e}"))?;
            if block_hash(provider, end).await? != before {
                continue; // the chain moved under the read: read the range again
            }
            logs.sort_by_key(|l| (l.block_number, l.log_index));
            for l in logs {
                let (Some(study), Some(patient), Some(block), Some(index)) = (
                    l.topics().get(1),
                    l.topics().get(2),
                    l.block_number,
                    l.log_index,
                ) else {
                    continue;
                };
                let opted_in = l.topic0() == Some(&StudyRegistry::OptedIn::SIGNATURE_HASH);
                st.changes
                    .entry(U256::from_be_bytes(study.0))
                    .or_default()
                    .push((block, index, Address::from_word(*patient), opted_in));
            }
            st.read_to = Some((end, before));
            from = end + 1;
        }
        Ok(())
    }

    /// The patients opted in to `study` at the end of block `at`.
    pub async fn consenting(&self, study: U256, at: u64) -> Result<HashSet<Address>, String> {
        self.catch_up(at).await?;
        let st = self.state.lock().await;
        let mut set: HashSet<Address> = HashSet::new();
        for &(block, _, patient, opted_in) in st.changes.get(&study).into_iter().flatten() {
            if block > at {
                break;
            }
            if opted_in {
                set.insert(patient);
            } else {
                set.remove(&patient);
            }
        }
        Ok(set)
    }
}

/// Follows the registry's opt-ins as blocks arrive, so that queries find them read already.
pub async fn follow(opt_ins: Arc<OptIns>, every: std::time::Duration) {
    loop {
        match opt_ins.provider.get_block_number().await {
            Ok(head) => {
                if let Err(e) = opt_ins.catch_up(head).await {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, "reading opt-ins");
                }
            }
            Err(e) => {
                tracing::warn!(target: "medrec::gatekeeper", error = %e, "reading the head")
            }
        }
        tokio::time::sleep(every).await;
    }
}
