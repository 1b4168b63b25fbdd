//! The study registry's opt-ins and withdrawals, read once from its logs and then followed
//! block by block: a query folds the changes up to the block it pins instead of reading
//! every opt-in of the study from the chain again.
//!
//! Opt-ins name a study pseudonym, not a patient (issue 16). Each carries holder slots
//! (medrec-protocol's `study_tags`): this holder opens, with its service key, the one meant
//! for it (view tag first) and learns the patient as it knows them, from the patient's own
//! signature over the study and the pseudonym. An opt-in with no slot that opens here is
//! another holder's patient's and is ignored, and so is a forged slot (it opens to no
//! signature of the patient); a withdrawal names the pseudonym, which maps back to the
//! patient. Whether the patient is one of this holder's is settled by the records: a patient
//! without records here has no facts to count. Each (study, pseudonym, patient) found is also
//! written to `gk_study_pseudonyms` (migrations/gatekeeper/20261129000020_study_pseudonyms.sql)
//! and loaded back at start, so a patient found under an earlier service key still counts.
//!
//! The chain is read with medrec-chain's [`Follower`] (hash-bracketed ranges, reorg
//! detection): after a reorg the changes of the blocks no longer on the chain are dropped and
//! those blocks read again; after a reorg deeper than the follower remembers, everything is.

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use alloy::sol_types::SolEvent;
use medrec_bindings::StudyRegistry;
use medrec_chain::{Advance, Backoff, ChainError, Follower, FollowerOpts, LogFilter, Rpc, Source};
use medrec_protocol::study_tags::{self, OptInContext};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// One opt-in or withdrawal: (block, log index, study pseudonym, opted in).
type Change = (u64, u64, Address, bool);

/// What opens this holder's slots: its service key's secret and where the opt-ins are.
#[derive(Clone)]
pub struct SlotKey {
    /// The service key (the key registered as the holder's `serviceKey`).
    pub secret: study_tags::ServiceKey,
    /// The chain id.
    pub chain_id: u64,
    /// The study registry.
    pub registry: Address,
    /// The holder (its slots' keys are bound to it).
    pub holder: Address,
}

/// How many times a query retries a chain error worth retrying before it is refused (with
/// [`Backoff`]'s waits: about 3 s in all).
const QUERY_RETRIES: u32 = 5;

/// The opt-ins and withdrawals of one study registry read so far.
pub struct OptIns {
    state: tokio::sync::Mutex<OptInState<Rpc>>,
    /// Where the pseudonyms found are kept (none in unit tests).
    pool: Option<sqlx::PgPool>,
}

struct OptInState<S> {
    /// Where the registry's logs have been read to.
    follower: Follower<S>,
    /// Per study, the changes of this holder's patients' pseudonyms, in chain order.
    changes: HashMap<U256, Vec<Change>>,
    /// Per (study, pseudonym), the patient its slot for this holder named.
    patients: HashMap<(U256, Address), Address>,
    /// Found since last written to the database: (study, pseudonym, patient, block).
    unsaved: Vec<(U256, Address, Address, u64)>,
    /// What opens the slots; without it no opt-in is this holder's.
    key: Option<SlotKey>,
    /// Whether the pseudonyms found before (`gk_study_pseudonyms`) are loaded: until they are,
    /// nothing is read (a withdrawal of a pseudonym not known yet would be passed over).
    loaded: bool,
}

impl<S: Source> OptInState<S> {
    /// Nothing read yet of the study registry at `registry`.
    fn new(src: S, registry: Address, opts: FollowerOpts, key: Option<SlotKey>) -> Self {
        let filter = LogFilter {
            addresses: vec![registry],
            topics: vec![
                StudyRegistry::OptedIn::SIGNATURE_HASH,
                StudyRegistry::Withdrew::SIGNATURE_HASH,
            ],
        };
        Self {
            follower: Follower::new(src, filter, opts),
            changes: HashMap::new(),
            patients: HashMap::new(),
            unsaved: vec![],
            key,
            loaded: false,
        }
    }

    /// Reads the registry's changes up to block `to` (`None`: the head). A chain error worth
    /// retrying is retried `retries` times, each retry logged; any other is logged and returned
    /// at once.
    async fn catch_up(&mut self, to: Option<u64>, retries: u32) -> Result<(), ChainError> {
        let mut backoff = Backoff::default();
        let mut left = retries;
        loop {
            let e = match self.follower.advance(to).await {
                Ok(Advance::Range(range)) => {
                    self.fold(&range.logs);
                    continue;
                }
                Ok(Advance::Reorged { fork }) => {
                    tracing::warn!(target: "medrec::gatekeeper", fork, "reorg: reading the opt-ins above the fork again");
                    for changes in self.changes.values_mut() {
                        changes.retain(|c| c.0 <= fork);
                    }
                    continue;
                }
                Ok(Advance::CaughtUp { head }) => match to {
                    // The node's head is below the block asked for: its changes are not known.
                    Some(to) if self.follower.cursor().is_none_or(|n| n < to) => {
                        tracing::debug!(target: "medrec::gatekeeper", to, head, "the block asked for is not on the node's chain yet");
                        ChainError::MissingBlock(to)
                    }
                    _ => return Ok(()),
                },
                Err(e @ ChainError::DeepReorg { .. }) => {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, "reading every opt-in again");
                    self.follower.restart();
                    self.changes.clear();
                    continue;
                }
                Err(e) => e,
            };
            if !e.is_retryable() {
                tracing::error!(target: "medrec::gatekeeper", error = %e, "reading opt-ins");
                return Err(e);
            }
            if left == 0 {
                return Err(e);
            }
            left -= 1;
            let wait = backoff.next_wait();
            tracing::warn!(target: "medrec::gatekeeper", error = %e, ?wait, "reading opt-ins; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Adds a range's opt-ins and withdrawals of this holder's patients (in chain order, after
    /// those read before): an opt-in counts here only if one of its slots opens with this
    /// holder's key to the patient's signature of the study and the pseudonym.
    fn fold(&mut self, logs: &[alloy::rpc::types::Log]) {
        for l in logs {
            let (Some(study), Some(pseudonym), Some(block), Some(index)) = (
                l.topics().get(1),
                l.topics().get(2),
                l.block_number,
                l.log_index,
            ) else {
                continue;
            };
            let (study, pseudonym) = (U256::from_be_bytes(study.0), Address::from_word(*pseudonym));
            let opted_in = l.topic0() == Some(&StudyRegistry::OptedIn::SIGNATURE_HASH);
            if opted_in {
                match self.open(l, study, pseudonym) {
                    Some(patient) => {
                        if self.patients.insert((study, pseudonym), patient).is_none() {
                            self.unsaved.push((study, pseudonym, patient, block));
                        }
                    }
                    // Found before (stored), under a service key since rotated.
                    None if self.patients.contains_key(&(study, pseudonym)) => {}
                    None => continue,
                }
            } else if !self.patients.contains_key(&(study, pseudonym)) {
                continue;
            }
            self.changes
                .entry(study)
                .or_default()
                .push((block, index, pseudonym, opted_in));
        }
    }

    /// The patient an opt-in's slot for this holder names, if one opens.
    fn open(&self, l: &alloy::rpc::types::Log, study: U256, pseudonym: Address) -> Option<Address> {
        let key = self.key.as_ref()?;
        let ev = l.log_decode::<StudyRegistry::OptedIn>().ok()?;
        let ctx = OptInContext {
            chain_id: key.chain_id,
            registry: key.registry,
            study_id: study,
            pseudonym,
        };
        study_tags::open(&key.secret, key.holder, &ctx, &ev.inner.data.tags)
    }

    /// The patients opted in to `study` at the end of block `at`, of the changes read.
    fn live_at(&self, study: U256, at: u64) -> HashSet<Address> {
        let mut set = HashSet::new();
        for &(block, _, pseudonym, opted_in) in self.changes.get(&study).into_iter().flatten() {
            if block > at {
                break;
            }
            if opted_in {
                set.insert(pseudonym);
            } else {
                set.remove(&pseudonym);
            }
        }
        set.into_iter()
            .filter_map(|p| self.patients.get(&(study, p)).copied())
            .collect()
    }
}

impl OptIns {
    /// Nothing read yet of the study registry at `registry`; `key` opens this holder's slots
    /// (without it, no opt-in is found).
    pub fn new(
        provider: DynProvider,
        registry: Address,
        key: Option<SlotKey>,
        pool: Option<sqlx::PgPool>,
    ) -> Self {
        let st = OptInState::new(Rpc::new(provider), registry, FollowerOpts::default(), key);
        Self {
            state: tokio::sync::Mutex::new(st),
            pool,
        }
    }

    /// Loads, once, the pseudonyms this holder found before (`gk_study_pseudonyms`): a slot
    /// opened with an earlier service key opens no more once the key is rotated, and those
    /// patients' opt-ins and withdrawals still count through the stored mapping. Without a
    /// database (unit tests) there is nothing to load. A database error is returned and the
    /// load tried again on the next call.
    async fn load(&self, st: &mut OptInState<Rpc>) -> Result<(), ChainError> {
        if st.loaded {
            return Ok(());
        }
        let Some(pool) = &self.pool else {
            st.loaded = true;
            return Ok(());
        };
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT study_id, pseudonym, patient FROM gk_study_pseudonyms")
                .fetch_all(pool)
                .await
                .map_err(|e| {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, "loading the study pseudonyms found before");
                    ChainError::Transport(format!("cannot load the study pseudonyms found before: {e}"))
                })?;
        for (study, pseudonym, patient) in rows {
            let (Ok(study), Ok(pseudonym), Ok(patient)) = (
                study.parse::<U256>(),
                Address::try_from(pseudonym.as_slice()),
                Address::try_from(patient.as_slice()),
            ) else {
                tracing::warn!(target: "medrec::gatekeeper", study, "an unreadable row of gk_study_pseudonyms, skipped");
                continue;
            };
            st.patients.insert((study, pseudonym), patient);
        }
        st.loaded = true;
        Ok(())
    }

    /// Writes the pseudonyms found since the last call to `gk_study_pseudonyms`, those whose
    /// signer is one of this holder's patients (records here) when found: a signer without
    /// records here (someone claiming to be a patient, or one whose records come later) is
    /// counted by nobody's facts and not kept. On a database error they are kept for the next
    /// call.
    async fn save(&self, st: &mut OptInState<Rpc>) {
        let Some(pool) = &self.pool else {
            st.unsaved.clear();
            return;
        };
        if st.unsaved.is_empty() {
            return;
        }
        let mut rows = std::mem::take(&mut st.unsaved);
        // Only this holder's patients are kept, in memory as in the table: a signer without
        // records here (junk opt-ins signed by strangers, made to load the holder) is dropped
        // with its changes. One whose records come later is found again if they opt in again.
        let signers: Vec<Vec<u8>> = rows.iter().map(|r| r.2.to_vec()).collect();
        let patients_here: Vec<Vec<u8>> = match sqlx::query_scalar(
            "SELECT DISTINCT patient FROM gk_records WHERE patient = ANY($1::bytea[])",
        )
        .bind(&signers)
        .fetch_all(pool)
        .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(target: "medrec::gatekeeper", error = %e, "keeping the study pseudonyms found; retrying");
                st.unsaved = rows;
                return;
            }
        };
        rows.retain(|&(study, pseudonym, patient, _)| {
            if patients_here
                .iter()
                .any(|p| p.as_slice() == patient.as_slice())
            {
                return true;
            }
            st.patients.remove(&(study, pseudonym));
            if let Some(changes) = st.changes.get_mut(&study) {
                changes.retain(|c| c.2 != pseudonym);
            }
            false
        });
        if rows.is_empty() {
            return;
        }
        let studies: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
        let pseudonyms: Vec<Vec<u8>> = rows.iter().map(|r| r.1.to_vec()).collect();
        let patients: Vec<Vec<u8>> = rows.iter().map(|r| r.2.to_vec()).collect();
        let blocks: Vec<i64> = rows.iter().map(|r| r.3 as i64).collect();
        let written = sqlx::query(
            "INSERT INTO gk_study_pseudonyms (study_id, pseudonym, patient, opted_in_block)
             SELECT u.s, u.p, u.pt, u.b
             FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::bigint[]) AS u(s, p, pt, b)
             WHERE EXISTS (SELECT 1 FROM gk_records r WHERE r.patient = u.pt)
             ON CONFLICT (study_id, pseudonym) DO NOTHING",
        )
        .bind(&studies)
        .bind(&pseudonyms)
        .bind(&patients)
        .bind(&blocks)
        .execute(pool)
        .await;
        if let Err(e) = written {
            tracing::warn!(target: "medrec::gatekeeper", error = %e, "keeping the study pseudonyms found; retrying");
            st.unsaved = rows;
        }
    }

    /// The patients opted in to `study` at the end of block `at`.
    pub async fn consenting(&self, study: U256, at: u64) -> Result<HashSet<Address>, ChainError> {
        let mut st = self.state.lock().await;
        self.load(&mut st).await?;
        st.catch_up(Some(at), QUERY_RETRIES).await?;
        self.save(&mut st).await;
        Ok(st.live_at(study, at))
    }

    /// The patients opted in to `study` both at block `at` and at block `now` (`at <= now`):
    /// a query pinned before a withdrawal does not count the patient who withdrew since.
    pub async fn consenting_throughout(
        &self,
        study: U256,
        at: u64,
        now: u64,
    ) -> Result<HashSet<Address>, ChainError> {
        let mut st = self.state.lock().await;
        self.load(&mut st).await?;
        st.catch_up(Some(now.max(at)), QUERY_RETRIES).await?;
        self.save(&mut st).await;
        let later = st.live_at(study, now);
        Ok(st
            .live_at(study, at)
            .into_iter()
            .filter(|p| later.contains(p))
            .collect())
    }
}

/// Follows the registry's opt-ins as blocks arrive, so that queries find them read already.
/// A failed read is logged and tried again after [`Backoff`]'s wait (the lock is not held
/// meanwhile, so queries go on and retry by themselves).
pub async fn follow(opt_ins: Arc<OptIns>, every: Duration) {
    let mut backoff = Backoff::default();
    loop {
        let read = {
            let mut st = opt_ins.state.lock().await;
            let read = match opt_ins.load(&mut st).await {
                Ok(()) => st.catch_up(None, 0).await,
                Err(e) => Err(e),
            };
            opt_ins.save(&mut st).await;
            read
        };
        let wait = match read {
            Ok(()) => {
                backoff.reset();
                every
            }
            Err(e) => {
                let wait = backoff.next_wait().max(every);
                if e.is_retryable() {
                    tracing::warn!(target: "medrec::gatekeeper", error = %e, ?wait, "following opt-ins; retrying");
                }
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use alloy::rpc::types::Log;
    use alloy::signers::local::PrivateKeySigner;
    use medrec_chain::Header;
    use medrec_protocol::study_tags::{HolderSlot, ServiceKey};
    use std::sync::Mutex;

    const REGISTRY: Address = Address::repeat_byte(0xee);
    const CHAIN: u64 = 31337;

    /// An opt-in (or withdrawal) of patient `n`'s pseudonym to `study`. Patients 1 to 99 are
    /// this holder's, 100 and up another holder's (their slots are encrypted to it).
    type Event = (u64, u8, bool);

    /// This holder's service key (0x51) and another holder's (0x52).
    fn service(other: bool) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(if other { 0x52 } else { 0x51 })).unwrap()
    }

    fn slot_key() -> SlotKey {
        SlotKey {
            secret: ServiceKey::from_bytes(&service(false).to_bytes()).unwrap(),
            chain_id: CHAIN,
            registry: REGISTRY,
            holder: service(false).address(),
        }
    }

    /// Patient `n`'s account key.
    fn patient(n: u8) -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(n)).unwrap()
    }

    /// Patient `n`'s pseudonym in every study (a stand-in: the follower does not derive it).
    fn pseudonym(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    /// The tags of patient `n`'s opt-in to `study`: their signed slot for this holder, or for
    /// the other holder when `n >= 100`.
    fn tags(study: u64, n: u8) -> Vec<u8> {
        let ctx = OptInContext {
            chain_id: CHAIN,
            registry: REGISTRY,
            study_id: U256::from(study),
            pseudonym: pseudonym(n),
        };
        let to = service(n >= 100);
        let key = ServiceKey::from_bytes(&to.to_bytes()).unwrap();
        let proof = study_tags::membership_proof(
            &patient(n).to_bytes(),
            to.address(),
            &key.public_key(),
            &ctx,
        )
        .unwrap();
        study_tags::build(
            &ctx,
            &[HolderSlot {
                holder: to.address(),
                service_key: key.public_key(),
                proof,
            }],
        )
        .unwrap()
    }

    /// A scripted chain: per block, its header and the opt-in events it holds.
    #[derive(Default)]
    struct Chain(Mutex<Vec<(Header, Vec<Event>)>>);

    impl Chain {
        /// Replaces the blocks above `fork` by `branch`'s, with `events` per new block.
        fn build(&self, fork: Option<u64>, branch: u8, events: &[Vec<Event>]) {
            let mut blocks = self.0.lock().unwrap();
            blocks.truncate(fork.map_or(0, |f| f as usize + 1));
            for ev in events {
                let number = blocks.len() as u64;
                let parent_hash = blocks.last().map_or(B256::ZERO, |b| b.0.hash);
                let mut hash = B256::repeat_byte(branch);
                hash.0[24..].copy_from_slice(&number.to_be_bytes());
                let header = Header {
                    number,
                    hash,
                    parent_hash,
                    timestamp: number,
                };
                blocks.push((header, ev.clone()));
            }
        }
    }

    fn log(h: &Header, index: u64, &(study, n, opted_in): &Event) -> Log {
        let data = if opted_in {
            StudyRegistry::OptedIn {
                studyId: U256::from(study),
                pseudonym: pseudonym(n),
                tags: tags(study, n).into(),
            }
            .encode_log_data()
        } else {
            StudyRegistry::Withdrew {
                studyId: U256::from(study),
                pseudonym: pseudonym(n),
            }
            .encode_log_data()
        };
        Log {
            inner: alloy::primitives::Log {
                address: REGISTRY,
                data,
            },
            block_hash: Some(h.hash),
            block_number: Some(h.number),
            log_index: Some(index),
            transaction_hash: Some(B256::ZERO),
            ..Default::default()
        }
    }

    impl Source for &Chain {
        async fn head(&self) -> medrec_chain::Result<u64> {
            Ok(self.0.lock().unwrap().len() as u64 - 1)
        }

        async fn header(&self, n: u64) -> medrec_chain::Result<Option<Header>> {
            Ok(self.0.lock().unwrap().get(n as usize).map(|b| b.0))
        }

        async fn logs(&self, _: &LogFilter, from: u64, to: u64) -> medrec_chain::Result<Vec<Log>> {
            let blocks = self.0.lock().unwrap();
            Ok(blocks[from as usize..=to as usize]
                .iter()
                .flat_map(|(h, evs)| evs.iter().zip(0..).map(|(e, i)| log(h, i, e)))
                .collect())
        }
    }

    fn patients(ps: &[u8]) -> HashSet<Address> {
        ps.iter().map(|&p| patient(p).address()).collect()
    }

    fn opts(window: u64) -> FollowerOpts {
        FollowerOpts {
            reorg_window: window,
            initial_range: 2,
            max_range: 2,
            ..FollowerOpts::default()
        }
    }

    /// Blocks 0..=6: patients 1 and 2 opt in to study 7 (blocks 2, 3), patient 3 to study 8
    /// (block 3), patient 1 withdraws (block 5).
    fn chain() -> Chain {
        let c = Chain::default();
        let (a, b, none) = ((7, 1, true), (7, 2, true), vec![]);
        c.build(
            None,
            1,
            &[
                none.clone(),
                none.clone(),
                vec![a],
                vec![b, (8, 3, true)],
                none.clone(),
                vec![(7, 1, false)],
                none,
            ],
        );
        c
    }

    #[tokio::test]
    async fn the_patients_opted_in_at_the_pinned_block_count() {
        let c = chain();
        let mut st = OptInState::new(&c, REGISTRY, opts(64), Some(slot_key()));
        st.catch_up(Some(4), 0).await.unwrap();
        assert_eq!(st.live_at(U256::from(7), 1), patients(&[]));
        assert_eq!(st.live_at(U256::from(7), 2), patients(&[1]));
        assert_eq!(st.live_at(U256::from(7), 4), patients(&[1, 2]));
        assert_eq!(st.live_at(U256::from(8), 4), patients(&[3]));
        // Read on to the head: the withdrawal counts from its block on, not before.
        st.catch_up(None, 0).await.unwrap();
        assert_eq!(st.live_at(U256::from(7), 4), patients(&[1, 2]));
        assert_eq!(st.live_at(U256::from(7), 6), patients(&[2]));
        // A block the node's chain does not reach yet is not answered from what was read.
        assert_eq!(
            st.catch_up(Some(9), 0).await,
            Err(ChainError::MissingBlock(9))
        );
    }

    /// Issue 16: an opt-in names a pseudonym; the holder counts the patient its own slot names
    /// (a patient of its own), not another holder's patient, nor a slot forged for a victim
    /// (encrypted to this holder, but holding no signature of the victim over this pseudonym),
    /// and a withdrawal since counts from its block.
    #[tokio::test]
    async fn only_this_holders_slots_count_and_forged_ones_do_not() {
        let c = Chain::default();
        c.build(
            None,
            1,
            &[
                vec![],
                vec![(7, 1, true), (7, 100, true)],
                vec![(7, 1, false)],
            ],
        );
        // A forged opt-in: pseudonym 0x33 with a slot for this holder holding the victim's
        // (patient 2's) address where the proof should be.
        let ctx = OptInContext {
            chain_id: CHAIN,
            registry: REGISTRY,
            study_id: U256::from(7),
            pseudonym: pseudonym(0x33),
        };
        let mut forged = patient(2).address().to_vec();
        forged.resize(study_tags::PROOF_LEN, 0);
        let forged = study_tags::build(
            &ctx,
            &[HolderSlot {
                holder: service(false).address(),
                service_key: slot_key().secret.public_key(),
                proof: forged,
            }],
        )
        .unwrap();
        let h = Header {
            number: 3,
            hash: B256::repeat_byte(3),
            parent_hash: B256::ZERO,
            timestamp: 3,
        };
        let mut forged_log = log(&h, 0, &(7, 0x33, true));
        forged_log.inner.data = StudyRegistry::OptedIn {
            studyId: U256::from(7),
            pseudonym: pseudonym(0x33),
            tags: forged.into(),
        }
        .encode_log_data();
        let mut st = OptInState::new(&c, REGISTRY, opts(64), Some(slot_key()));
        st.catch_up(None, 0).await.unwrap();
        st.fold(&[forged_log]);
        assert_eq!(st.live_at(U256::from(7), 1), patients(&[1]));
        assert_eq!(st.live_at(U256::from(7), 3), patients(&[]));
        // Without the service key nothing opens.
        let mut blind = OptInState::new(&c, REGISTRY, opts(64), None);
        blind.catch_up(None, 0).await.unwrap();
        assert_eq!(blind.live_at(U256::from(7), 1), patients(&[]));
    }

    #[tokio::test]
    async fn changes_read_before_a_reorg_are_dropped_above_the_fork_and_read_again() {
        for window in [64, 1] {
            let c = chain();
            let mut st = OptInState::new(&c, REGISTRY, opts(window), Some(slot_key()));
            st.catch_up(None, 0).await.unwrap();
            // Above block 2 a new branch: patient 4 opts in (block 4), nobody withdraws.
            c.build(Some(2), 2, &[vec![], vec![(7, 4, true)], vec![], vec![]]);
            st.catch_up(Some(6), 0).await.unwrap();
            assert_eq!(
                st.live_at(U256::from(7), 6),
                patients(&[1, 4]),
                "window {window}"
            );
            assert_eq!(
                st.live_at(U256::from(8), 6),
                patients(&[]),
                "window {window}"
            );
            // A shorter branch that no longer reaches the block read before.
            c.build(Some(3), 3, &[vec![(7, 5, true)]]);
            st.catch_up(None, 0).await.unwrap();
            assert_eq!(
                st.live_at(U256::from(7), 9),
                patients(&[1, 5]),
                "window {window}"
            );
        }
    }
}
