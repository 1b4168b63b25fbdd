//! The test's own reading of the chain: every registry log decoded with the bindings' event
//! types (not the indexer's decoder), the rows each table and view should hold, and the
//! comparison with what the indexer wrote.

use crate::harness::{TestDb, World};
use alloy::primitives::aliases::U40;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEventInterface;
use medrec_bindings::consent_registry::ConsentRegistry::ConsentRegistryEvents as CE;
use medrec_bindings::participant_registry::ParticipantRegistry::ParticipantRegistryEvents as PE;
use medrec_bindings::record_registry::RecordRegistry::RecordRegistryEvents as RE;
use medrec_bindings::study_registry::StudyRegistry::StudyRegistryEvents as SE;
use sqlx::{Column, Row, TypeInfo};
use std::collections::{BTreeMap, HashMap};

/// One indexed-kind event, decoded by the test.
#[derive(Debug, Clone)]
pub enum Ev {
    CredentialIssued {
        account: Address,
        role: u8,
        reference: B256,
        issued_at: u64,
        expires_at: u64,
    },
    CredentialRevoked {
        account: Address,
        role: u8,
        revoked_at: u64,
    },
    Granted {
        patient: Address,
        grantee: Address,
        by: Address,
        categories: u64,
        purpose: u8,
        not_before: u64,
        expires_at: u64,
        epoch: u64,
        signed_at: u64,
        /// Its block's time (from the block header, not the log).
        granted_at: u64,
    },
    Revoked {
        patient: Address,
        grantee: Address,
        by: Address,
        epoch: u64,
        signed_at: u64,
    },
    GuardianSet {
        patient: Address,
        guardian: Address,
        scope: u64,
        not_before: u64,
        expires_at: u64,
    },
    GuardianRemoved {
        patient: Address,
        guardian: Address,
    },
    EmergencyOpened {
        patient: Address,
        provider: Address,
        reason: B256,
        opened_at: u64,
        expires_at: u64,
    },
    EmergencyClosed {
        patient: Address,
        provider: Address,
        by: Address,
    },
    CapSet {
        cap: u64,
    },
    Anchored {
        record_id: B256,
        patient: Address,
        holder: Address,
        commitment: B256,
        locator: String,
    },
    StudyRegistered {
        study: u64,
        researcher: Address,
        protocol: B256,
        categories: u64,
        min_cell: u32,
        budget: u64,
        registered_at: u64,
    },
    StudyApproved {
        study: u64,
        at: u64,
    },
    StudyClosed {
        study: u64,
        at: u64,
    },
    OptedIn {
        study: u64,
        pseudonym: Address,
        tags: alloy::primitives::Bytes,
    },
    ConsentSignaturesCancelled {
        patient: Address,
        grantee: Address,
        by: Address,
        epoch: u64,
        signed_at: u64,
    },
    JustificationDue {
        id: u64,
        patient: Address,
        provider: Address,
        review_by: u64,
    },
    Reviewed {
        id: u64,
        provider: Address,
        justified: bool,
        unjustified: u64,
    },
    Overdue {
        id: u64,
        provider: Address,
        unjustified: u64,
    },
    StudySignaturesCancelled {
        study: u64,
        pseudonym: Address,
        epoch: u64,
        signed_at: u64,
    },
    ResearchPolicySet {
        floor: u32,
        study: u64,
        researcher: u64,
    },
    Withdrew {
        study: u64,
        pseudonym: Address,
    },
    QueryAnswered {
        study: u64,
        query: B256,
        cost: u64,
        pinned: u64,
        answer: B256,
    },
    LogAnchored {
        holder: Address,
        head: B256,
        entries: u64,
        anchored_at: u64,
    },
    Superseded {
        old: B256,
        new: B256,
    },
    BreakGlassMarked {
        record_id: B256,
        patient: Address,
        holder: Address,
    },
    Erased {
        record_id: B256,
    },
    HolderRegistered {
        holder: Address,
        endpoint: String,
        service_key: Address,
    },
}

/// An event with its place on the chain.
#[derive(Debug, Clone)]
pub struct Logged {
    pub block: u64,
    pub log_index: u64,
    pub tx: B256,
    pub ev: Ev,
}

fn t(v: U40) -> u64 {
    v.to::<u64>()
}

/// The study registry named in the world's deployments file, if any (the tests that index
/// studies deploy one and add it there).
pub fn study_registry(w: &World) -> Option<Address> {
    medrec_bindings::deployment::read(&w.deployments, 31337)
        .unwrap()
        .study_registry
}

/// The contracts the indexer follows, in the cursor's order.
pub fn contracts(w: &World) -> Vec<Address> {
    [w.participants, w.consent, w.records]
        .into_iter()
        .chain(study_registry(w))
        .collect()
}

fn id(v: alloy::primitives::U256) -> u64 {
    v.to::<u64>()
}

/// Every event of the deployment's registries up to block `to`, in chain order.
pub async fn chain_events(w: &World, to: u64) -> Vec<Logged> {
    let studies = study_registry(w);
    let filter = Filter::new()
        .address(contracts(w))
        .from_block(w.start_block)
        .to_block(to);
    let logs = w.p.get_logs(&filter).await.unwrap();
    let mut out = Vec::with_capacity(logs.len());
    for log in logs {
        assert!(!log.removed, "a removed log in a plain eth_getLogs");
        let ev = if log.address() == w.participants {
            match PE::decode_log(&log.inner).unwrap().data {
                PE::CredentialIssued(e) => Ev::CredentialIssued {
                    account: e.account,
                    role: e.role,
                    reference: e.r#ref,
                    issued_at: t(e.issuedAt),
                    expires_at: t(e.expiresAt),
                },
                PE::CredentialRevoked(e) => Ev::CredentialRevoked {
                    account: e.account,
                    role: e.role,
                    revoked_at: t(e.revokedAt),
                },
                _ => continue,
            }
        } else if log.address() == w.consent {
            match CE::decode_log(&log.inner).unwrap().data {
                CE::Granted(e) => Ev::Granted {
                    patient: e.patient,
                    grantee: e.grantee,
                    by: e.by,
                    categories: e.categories,
                    purpose: e.purpose,
                    not_before: t(e.notBefore),
                    expires_at: t(e.expiresAt),
                    epoch: e.epoch.to::<u64>(),
                    signed_at: t(e.signedAt),
                    granted_at: w.block(log.block_number.unwrap()).await.1,
                },
                CE::Revoked(e) => Ev::Revoked {
                    patient: e.patient,
                    grantee: e.grantee,
                    by: e.by,
                    epoch: e.epoch.to::<u64>(),
                    signed_at: t(e.signedAt),
                },
                CE::GuardianSet(e) => Ev::GuardianSet {
                    patient: e.patient,
                    guardian: e.guardian,
                    scope: e.scope,
                    not_before: t(e.notBefore),
                    expires_at: t(e.expiresAt),
                },
                CE::GuardianRemoved(e) => Ev::GuardianRemoved {
                    patient: e.patient,
                    guardian: e.guardian,
                },
                CE::EmergencyAccessOpened(e) => Ev::EmergencyOpened {
                    patient: e.patient,
                    provider: e.provider,
                    reason: e.reasonHash,
                    opened_at: t(e.openedAt),
                    expires_at: t(e.expiresAt),
                },
                CE::EmergencyAccessClosed(e) => Ev::EmergencyClosed {
                    patient: e.patient,
                    provider: e.provider,
                    by: e.by,
                },
                CE::EmergencyCapSet(e) => Ev::CapSet { cap: t(e.cap) },
                CE::ConsentSignaturesCancelled(e) => Ev::ConsentSignaturesCancelled {
                    patient: e.patient,
                    grantee: e.grantee,
                    by: e.by,
                    epoch: e.epoch.to::<u64>(),
                    signed_at: t(e.signedAt),
                },
                CE::EmergencyJustificationDue(e) => Ev::JustificationDue {
                    id: e.id,
                    patient: e.patient,
                    provider: e.provider,
                    review_by: t(e.reviewBy),
                },
                CE::EmergencyAccessReviewed(e) => Ev::Reviewed {
                    id: e.id,
                    provider: e.provider,
                    justified: e.justified,
                    unjustified: u64::from(e.unjustified),
                },
                CE::EmergencyAccessOverdue(e) => Ev::Overdue {
                    id: e.id,
                    provider: e.provider,
                    unjustified: u64::from(e.unjustified),
                },
                _ => continue,
            }
        } else if log.address() == w.records {
            match RE::decode_log(&log.inner).unwrap().data {
                RE::PointerAnchored(e) => Ev::Anchored {
                    record_id: e.recordId,
                    patient: e.patient,
                    holder: e.holder,
                    commitment: e.commitment,
                    locator: e.locator,
                },
                RE::PointerErased(e) => Ev::Erased {
                    record_id: e.recordId,
                },
                RE::PointerSuperseded(e) => Ev::Superseded {
                    old: e.oldRecordId,
                    new: e.newRecordId,
                },
                RE::PointerAnchoredUnderBreakGlass(e) => Ev::BreakGlassMarked {
                    record_id: e.recordId,
                    patient: e.patient,
                    holder: e.holder,
                },
                RE::HolderRegistered(e) => Ev::HolderRegistered {
                    holder: e.holder,
                    endpoint: e.endpoint,
                    service_key: e.serviceKey,
                },
                RE::AccessLogAnchored(e) => Ev::LogAnchored {
                    holder: e.holder,
                    head: e.head,
                    entries: e.entries,
                    anchored_at: t(e.anchoredAt),
                },
                // ERC-5267's event: never emitted, the gatekeeper's domain is fixed.
                RE::EIP712DomainChanged(_) => continue,
            }
        } else if Some(log.address()) == studies {
            match SE::decode_log(&log.inner).unwrap().data {
                SE::StudyRegistered(e) => Ev::StudyRegistered {
                    study: id(e.studyId),
                    researcher: e.researcher,
                    protocol: e.protocolHash,
                    categories: e.categories,
                    min_cell: e.minCellSize,
                    budget: e.budget,
                    registered_at: t(e.registeredAt),
                },
                SE::StudyApproved(e) => Ev::StudyApproved {
                    study: id(e.studyId),
                    at: t(e.approvedAt),
                },
                SE::StudyClosed(e) => Ev::StudyClosed {
                    study: id(e.studyId),
                    at: t(e.closedAt),
                },
                SE::OptedIn(e) => Ev::OptedIn {
                    study: id(e.studyId),
                    pseudonym: e.pseudonym,
                    tags: e.tags.clone(),
                },
                SE::Withdrew(e) => Ev::Withdrew {
                    study: id(e.studyId),
                    pseudonym: e.pseudonym,
                },
                SE::QueryAnswered(e) => Ev::QueryAnswered {
                    study: id(e.studyId),
                    query: e.queryHash,
                    cost: e.cost,
                    pinned: e.pinnedBlock,
                    answer: e.answerHash,
                },
                SE::StudySignaturesCancelled(e) => Ev::StudySignaturesCancelled {
                    study: id(e.studyId),
                    pseudonym: e.pseudonym,
                    epoch: e.epoch.to::<u64>(),
                    signed_at: t(e.signedAt),
                },
                SE::ResearchPolicySet(e) => Ev::ResearchPolicySet {
                    floor: e.minCellSizeFloor,
                    study: e.maxStudyBudget,
                    researcher: e.maxResearcherBudget,
                },
                _ => continue,
            }
        } else {
            panic!("log of an unexpected contract {}", log.address());
        };
        out.push(Logged {
            block: log.block_number.unwrap(),
            log_index: log.log_index.unwrap(),
            tx: log.transaction_hash.unwrap(),
            ev,
        });
    }
    out.sort_by_key(|l| (l.block, l.log_index));
    out
}

// ------------------------------------------------------------------------ canonical rows

/// A value as one field of a canonical row (the same text for the chain and the database).
pub trait Canon {
    fn canon(&self) -> String;
}

impl Canon for u64 {
    fn canon(&self) -> String {
        self.to_string()
    }
}
impl Canon for i64 {
    fn canon(&self) -> String {
        self.to_string()
    }
}
impl Canon for u32 {
    fn canon(&self) -> String {
        self.to_string()
    }
}
impl Canon for u8 {
    fn canon(&self) -> String {
        self.to_string()
    }
}
impl Canon for Address {
    fn canon(&self) -> String {
        alloy::hex::encode_prefixed(self.as_slice())
    }
}
impl Canon for alloy::primitives::Bytes {
    fn canon(&self) -> String {
        alloy::hex::encode_prefixed(self.as_ref())
    }
}
impl Canon for B256 {
    fn canon(&self) -> String {
        alloy::hex::encode_prefixed(self.as_slice())
    }
}
impl Canon for String {
    fn canon(&self) -> String {
        format!("{self:?}")
    }
}
impl Canon for &str {
    fn canon(&self) -> String {
        format!("{self:?}")
    }
}
impl<T: Canon> Canon for Option<T> {
    fn canon(&self) -> String {
        match self {
            Some(v) => v.canon(),
            None => "null".into(),
        }
    }
}

macro_rules! row {
    ($($v:expr),* $(,)?) => { vec![$(Canon::canon(&$v)),*].join("|") };
}

/// A uint64 mask as the BIGINT with the same bits.
fn mask(m: u64) -> i64 {
    m as i64
}

/// payload, from_block, from_log, to_block, end_reason
type HistRow = (String, u64, u64, Option<u64>, Option<&'static str>);

/// A history table: each key's states, opened and closed by events.
struct Hist<K> {
    rows: Vec<HistRow>,
    open: HashMap<K, usize>,
}

impl<K: std::hash::Hash + Eq + Clone + std::fmt::Debug> Hist<K> {
    fn new() -> Self {
        Self {
            rows: vec![],
            open: HashMap::new(),
        }
    }

    fn open(&mut self, key: K, payload: String, block: u64, log: u64) {
        self.close(&key, block, "replaced", false);
        self.open.insert(key, self.rows.len());
        self.rows.push((payload, block, log, None, None));
    }

    fn close(&mut self, key: &K, block: u64, reason: &'static str, must: bool) {
        match self.open.remove(key) {
            Some(i) => {
                self.rows[i].3 = Some(block);
                self.rows[i].4 = Some(reason);
            }
            None => assert!(!must, "the chain closed {key:?} that was not open"),
        }
    }

    /// Rows as `<history table>` columns.
    fn history(&self) -> Vec<String> {
        self.rows
            .iter()
            .map(|(p, fb, fl, tb, why)| format!("{p}|{}", row!(*fb, *fl, *tb, *why)))
            .collect()
    }

    /// Open rows as the current-state view's columns.
    fn current(&self) -> Vec<String> {
        self.open
            .values()
            .map(|&i| format!("{}|{}", self.rows[i].0, self.rows[i].1))
            .collect()
    }
}

/// What the indexer's tables and views must hold for these events.
pub fn expected(evs: &[Logged]) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (name, _) in QUERIES {
        out.insert(name, vec![]);
    }
    let mut grants: Hist<(Address, Address)> = Hist::new();
    let mut guardians: Hist<(Address, Address)> = Hist::new();
    let mut creds: Hist<Address> = Hist::new();
    // ParticipantRegistry's validSince, kept as the contract keeps it: account -> (role,
    // expires_at, revoked, valid_since, run_block, new_run) after its latest credential event.
    let mut runs: HashMap<Address, (u8, u64, bool, u64, u64, i64)> = HashMap::new();
    let mut emerg: Hist<(Address, Address)> = Hist::new();
    let mut statuses: Hist<u64> = Hist::new();
    let mut opt_ins: Hist<(u64, Address)> = Hist::new();
    // study id -> (registration row prefix, budget, spent, queries)
    let mut studies: BTreeMap<u64, (String, u64, u128, u64)> = BTreeMap::new();
    // study id -> its researcher; and the research policy in force (its view's row)
    let mut researchers: BTreeMap<u64, Address> = BTreeMap::new();
    let mut policy: Option<String> = None;
    // record id -> (row prefix, superseded_by, superseded_block), in anchoring order
    let mut pointers: Vec<(B256, String, Option<B256>, Option<u64>)> = vec![];
    let mut push = |t: &'static str, r: String| out.get_mut(t).unwrap().push(r);
    for l in evs {
        let (bn, li, tx) = (l.block, l.log_index, l.tx);
        match &l.ev {
            Ev::CredentialIssued {
                account,
                role,
                reference,
                issued_at,
                expires_at,
            } => {
                push(
                    "ev_credential_issued",
                    row!(
                        bn,
                        li,
                        tx,
                        *account,
                        *role,
                        *reference,
                        *issued_at,
                        *expires_at
                    ),
                );
                let payload = row!(*account, *role, *reference, *issued_at, *expires_at);
                creds.open(*account, payload, bn, li);
                // A renewal of a live credential of the same role keeps the run; a first issue
                // starts one now; any other issue starts one the next second.
                let (valid_since, run_block, new_run) = match runs.get(account) {
                    Some(&(r, exp, revoked, since, rb, nr))
                        if r == *role && !revoked && *issued_at < exp =>
                    {
                        (since, rb, nr)
                    }
                    Some(_) => (*issued_at + 1, bn, 1),
                    None => (*issued_at, bn, 0),
                };
                runs.insert(
                    *account,
                    (*role, *expires_at, false, valid_since, run_block, new_run),
                );
                push(
                    "credential_runs",
                    row!(
                        *account,
                        bn,
                        li,
                        *role,
                        *issued_at,
                        *expires_at,
                        valid_since,
                        run_block,
                        new_run
                    ),
                );
            }
            Ev::CredentialRevoked {
                account,
                role,
                revoked_at,
            } => {
                push(
                    "ev_credential_revoked",
                    row!(bn, li, tx, *account, *role, *revoked_at),
                );
                creds.close(account, bn, "revoked", true);
                runs.get_mut(account)
                    .expect("the chain revoked a credential never issued")
                    .2 = true;
            }
            Ev::Granted {
                patient,
                grantee,
                by,
                categories,
                purpose,
                not_before,
                expires_at,
                epoch,
                signed_at,
                granted_at,
            } => {
                let m = mask(*categories);
                push(
                    "ev_granted",
                    row!(
                        bn,
                        li,
                        tx,
                        *patient,
                        *grantee,
                        *by,
                        m,
                        *purpose,
                        *not_before,
                        *expires_at,
                        *epoch,
                        *signed_at,
                        *granted_at
                    ),
                );
                let payload = row!(
                    *patient,
                    *grantee,
                    *by,
                    m,
                    *purpose,
                    *not_before,
                    *expires_at
                );
                grants.open((*patient, *grantee), payload, bn, li);
            }
            Ev::Revoked {
                patient,
                grantee,
                by,
                epoch,
                signed_at,
            } => {
                push(
                    "ev_revoked",
                    row!(bn, li, tx, *patient, *grantee, *by, *epoch, *signed_at),
                );
                grants.close(&(*patient, *grantee), bn, "revoked", true);
            }
            Ev::GuardianSet {
                patient,
                guardian,
                scope,
                not_before,
                expires_at,
            } => {
                let s = mask(*scope);
                push(
                    "ev_guardian_set",
                    row!(bn, li, tx, *patient, *guardian, s, *not_before, *expires_at),
                );
                let payload = row!(*patient, *guardian, s, *not_before, *expires_at);
                guardians.open((*patient, *guardian), payload, bn, li);
            }
            Ev::GuardianRemoved { patient, guardian } => {
                push("ev_guardian_removed", row!(bn, li, tx, *patient, *guardian));
                guardians.close(&(*patient, *guardian), bn, "removed", true);
            }
            Ev::EmergencyOpened {
                patient,
                provider,
                reason,
                opened_at,
                expires_at,
            } => {
                push(
                    "ev_emergency_opened",
                    row!(
                        bn,
                        li,
                        tx,
                        *patient,
                        *provider,
                        *reason,
                        *opened_at,
                        *expires_at
                    ),
                );
                let payload = row!(*patient, *provider, *reason, *opened_at, *expires_at);
                emerg.open((*patient, *provider), payload, bn, li);
            }
            Ev::EmergencyClosed {
                patient,
                provider,
                by,
            } => {
                push(
                    "ev_emergency_closed",
                    row!(bn, li, tx, *patient, *provider, *by),
                );
                // The patient may also refuse an opening that already ended (closed by the
                // provider: nothing open to close).
                emerg.close(&(*patient, *provider), bn, "closed", by != patient);
            }
            Ev::CapSet { cap } => push("ev_emergency_cap_set", row!(bn, li, tx, *cap)),
            Ev::ConsentSignaturesCancelled {
                patient,
                grantee,
                by,
                epoch,
                signed_at,
            } => push(
                "ev_consent_signatures_cancelled",
                row!(bn, li, tx, *patient, *grantee, *by, *epoch, *signed_at),
            ),
            Ev::JustificationDue {
                id,
                patient,
                provider,
                review_by,
            } => push(
                "ev_emergency_justification_due",
                row!(bn, li, tx, *id, *patient, *provider, *review_by),
            ),
            Ev::Reviewed {
                id,
                provider,
                justified,
                unjustified,
            } => push(
                "ev_emergency_reviewed",
                row!(
                    bn,
                    li,
                    tx,
                    *id,
                    *provider,
                    u64::from(*justified),
                    *unjustified
                ),
            ),
            Ev::Overdue {
                id,
                provider,
                unjustified,
            } => push(
                "ev_emergency_overdue",
                row!(bn, li, tx, *id, *provider, *unjustified),
            ),
            Ev::StudySignaturesCancelled {
                study,
                pseudonym,
                epoch,
                signed_at,
            } => push(
                "ev_study_signatures_cancelled",
                row!(bn, li, tx, *study, *pseudonym, *epoch, *signed_at),
            ),
            Ev::Anchored {
                record_id,
                patient,
                holder,
                commitment,
                locator,
            } => {
                push(
                    "ev_pointer_anchored",
                    row!(
                        bn,
                        li,
                        tx,
                        *record_id,
                        *patient,
                        *holder,
                        *commitment,
                        locator.clone()
                    ),
                );
                let prefix = row!(
                    *record_id,
                    *patient,
                    *holder,
                    *commitment,
                    locator.clone(),
                    bn,
                    li
                );
                pointers.push((*record_id, prefix, None, None));
            }
            Ev::StudyRegistered {
                study,
                researcher,
                protocol,
                categories,
                min_cell,
                budget,
                registered_at,
            } => {
                let (m, b) = (mask(*categories), mask(*budget));
                push(
                    "ev_study_registered",
                    row!(
                        bn,
                        li,
                        tx,
                        *study,
                        *researcher,
                        *protocol,
                        m,
                        *min_cell,
                        b,
                        *registered_at
                    ),
                );
                let prefix = row!(*study, *researcher, *protocol, m, *min_cell);
                let suffix = row!(*registered_at, bn);
                assert!(
                    studies
                        .insert(*study, (format!("{prefix}|{suffix}"), *budget, 0, 0))
                        .is_none(),
                    "the chain registered study {study} twice"
                );
                statuses.open(*study, row!(*study, 1u8, *registered_at), bn, li);
                researchers.insert(*study, *researcher);
            }
            Ev::ResearchPolicySet {
                floor,
                study,
                researcher,
            } => {
                push(
                    "ev_research_policy_set",
                    row!(bn, li, tx, *floor, mask(*study), mask(*researcher)),
                );
                policy = Some(row!(*floor, study.to_string(), researcher.to_string(), bn));
            }
            Ev::StudyApproved { study, at } => {
                push("ev_study_approved", row!(bn, li, tx, *study, *at));
                statuses.open(*study, row!(*study, 2u8, *at), bn, li);
            }
            Ev::StudyClosed { study, at } => {
                push("ev_study_closed", row!(bn, li, tx, *study, *at));
                statuses.open(*study, row!(*study, 3u8, *at), bn, li);
            }
            Ev::OptedIn {
                study,
                pseudonym,
                tags,
            } => {
                push(
                    "ev_opted_in",
                    row!(bn, li, tx, *study, *pseudonym, tags.clone()),
                );
                opt_ins.open((*study, *pseudonym), row!(*study, *pseudonym), bn, li);
            }
            Ev::Withdrew { study, pseudonym } => {
                push("ev_withdrew", row!(bn, li, tx, *study, *pseudonym));
                opt_ins.close(&(*study, *pseudonym), bn, "withdrew", true);
            }
            Ev::QueryAnswered {
                study,
                query,
                cost,
                pinned,
                answer,
            } => {
                push(
                    "ev_query_answered",
                    row!(
                        bn,
                        li,
                        tx,
                        *study,
                        *query,
                        mask(*cost),
                        mask(*pinned),
                        *answer
                    ),
                );
                let s = studies
                    .get_mut(study)
                    .expect("the chain answered a query of an unknown study");
                s.2 += u128::from(*cost);
                s.3 += 1;
            }
            Ev::LogAnchored {
                holder,
                head,
                entries,
                anchored_at,
            } => push(
                "ev_access_log_anchored",
                row!(bn, li, tx, *holder, *head, *entries, *anchored_at),
            ),
            Ev::BreakGlassMarked {
                record_id,
                patient,
                holder,
            } => push(
                "ev_pointer_break_glass",
                row!(bn, li, tx, *record_id, *patient, *holder),
            ),
            Ev::Erased { record_id } => push("ev_pointer_erased", row!(bn, li, tx, *record_id)),
            Ev::HolderRegistered {
                holder,
                endpoint,
                service_key,
            } => push(
                "ev_holder_registered",
                row!(bn, li, tx, *holder, endpoint.clone(), *service_key),
            ),
            Ev::Superseded { old, new } => {
                push("ev_pointer_superseded", row!(bn, li, tx, *old, *new));
                let p = pointers
                    .iter_mut()
                    .find(|p| p.0 == *old)
                    .expect("the chain superseded an unknown record");
                assert!(p.2.is_none(), "the chain superseded a record twice");
                p.2 = Some(*new);
                p.3 = Some(bn);
            }
        }
    }
    out.insert("grant_history", grants.history());
    out.insert("guardian_history", guardians.history());
    out.insert("credential_history", creds.history());
    out.insert("emergency_history", emerg.history());
    out.insert("study_status_history", statuses.history());
    out.insert("opt_in_history", opt_ins.history());
    out.insert("study_opt_ins", opt_ins.current());
    // The studies view: registration, budget and spent as unsigned numbers (text), the
    // current status.
    let current: HashMap<u64, (String, u64)> = statuses
        .open
        .iter()
        .map(|(k, &i)| {
            let (payload, from, ..) = &statuses.rows[i];
            // payload: study|status|since
            let rest = payload.split_once('|').unwrap().1.to_string();
            (*k, (rest, *from))
        })
        .collect();
    out.insert(
        "studies",
        studies
            .iter()
            .map(|(id, (reg, budget, spent, queries))| {
                let (status, from) = &current[id];
                let amounts = row!(budget.to_string(), spent.to_string(), *queries);
                format!("{reg}|{amounts}|{status}|{from}")
            })
            .collect(),
    );
    out.insert("research_policy", policy.into_iter().collect());
    // Each researcher's committed budget: the budgets of their studies, except those closed
    // without ever being approved.
    let mut committed: BTreeMap<Address, (u128, u64)> = BTreeMap::new();
    for (id, (_, budget, _, _)) in &studies {
        let closed = current[id].0.starts_with("3|");
        let approved = statuses
            .rows
            .iter()
            .any(|(payload, ..)| payload.starts_with(&format!("{id}|2|")));
        let c = committed.entry(researchers[id]).or_default();
        c.0 += if closed && !approved {
            0
        } else {
            u128::from(*budget)
        };
        c.1 += 1;
    }
    out.insert(
        "researcher_budgets",
        committed
            .iter()
            .map(|(r, (sum, n))| row!(*r, sum.to_string(), *n))
            .collect(),
    );
    out.insert("grants", grants.current());
    out.insert("guardians", guardians.current());
    out.insert("credentials", creds.current());
    out.insert("emergency_accesses", emerg.current());
    out.insert(
        "pointers",
        pointers
            .into_iter()
            .map(|(_, prefix, by, blk)| format!("{prefix}|{}", row!(by, blk)))
            .collect(),
    );
    out
}

/// What each compared table or view is read with; columns in the order `expected` writes them.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "ev_credential_issued",
        "SELECT block_number, log_index, tx_hash, account, role, ref, issued_at, expires_at FROM ev_credential_issued",
    ),
    (
        "ev_credential_revoked",
        "SELECT block_number, log_index, tx_hash, account, role, revoked_at FROM ev_credential_revoked",
    ),
    (
        "ev_granted",
        "SELECT block_number, log_index, tx_hash, patient, grantee, by_account, categories, purpose, not_before, expires_at, epoch, signed_at, granted_at FROM ev_granted",
    ),
    (
        "ev_revoked",
        "SELECT block_number, log_index, tx_hash, patient, grantee, by_account, epoch, signed_at FROM ev_revoked",
    ),
    (
        "ev_guardian_set",
        "SELECT block_number, log_index, tx_hash, patient, guardian, scope, not_before, expires_at FROM ev_guardian_set",
    ),
    (
        "ev_guardian_removed",
        "SELECT block_number, log_index, tx_hash, patient, guardian FROM ev_guardian_removed",
    ),
    (
        "ev_emergency_opened",
        "SELECT block_number, log_index, tx_hash, patient, provider, reason_hash, opened_at, expires_at FROM ev_emergency_opened",
    ),
    (
        "ev_emergency_closed",
        "SELECT block_number, log_index, tx_hash, patient, provider, by_account FROM ev_emergency_closed",
    ),
    (
        "ev_emergency_cap_set",
        "SELECT block_number, log_index, tx_hash, cap FROM ev_emergency_cap_set",
    ),
    (
        "ev_pointer_anchored",
        "SELECT block_number, log_index, tx_hash, record_id, patient, holder, commitment, locator FROM ev_pointer_anchored",
    ),
    (
        "ev_pointer_superseded",
        "SELECT block_number, log_index, tx_hash, old_record_id, new_record_id FROM ev_pointer_superseded",
    ),
    (
        "ev_access_log_anchored",
        "SELECT block_number, log_index, tx_hash, holder, head, entries, anchored_at FROM ev_access_log_anchored",
    ),
    (
        "ev_pointer_break_glass",
        "SELECT block_number, log_index, tx_hash, record_id, patient, holder FROM ev_pointer_break_glass",
    ),
    (
        "ev_pointer_erased",
        "SELECT block_number, log_index, tx_hash, record_id FROM ev_pointer_erased",
    ),
    (
        "ev_holder_registered",
        "SELECT block_number, log_index, tx_hash, holder, endpoint, service_key FROM ev_holder_registered",
    ),
    (
        "ev_study_registered",
        "SELECT block_number, log_index, tx_hash, study_id, researcher, protocol_hash, categories, min_cell_size, budget, registered_at FROM ev_study_registered",
    ),
    (
        "ev_study_approved",
        "SELECT block_number, log_index, tx_hash, study_id, approved_at FROM ev_study_approved",
    ),
    (
        "ev_study_closed",
        "SELECT block_number, log_index, tx_hash, study_id, closed_at FROM ev_study_closed",
    ),
    (
        "ev_opted_in",
        "SELECT block_number, log_index, tx_hash, study_id, pseudonym, tags FROM ev_opted_in",
    ),
    (
        "ev_withdrew",
        "SELECT block_number, log_index, tx_hash, study_id, pseudonym FROM ev_withdrew",
    ),
    (
        "ev_query_answered",
        "SELECT block_number, log_index, tx_hash, study_id, query_hash, cost, pinned_block, answer_hash FROM ev_query_answered",
    ),
    (
        "ev_emergency_justification_due",
        "SELECT block_number, log_index, tx_hash, opening_id, patient, provider, review_by FROM ev_emergency_justification_due",
    ),
    (
        "ev_emergency_reviewed",
        "SELECT block_number, log_index, tx_hash, opening_id, provider, justified, unjustified FROM ev_emergency_reviewed",
    ),
    (
        "ev_emergency_overdue",
        "SELECT block_number, log_index, tx_hash, opening_id, provider, unjustified FROM ev_emergency_overdue",
    ),
    (
        "ev_consent_signatures_cancelled",
        "SELECT block_number, log_index, tx_hash, patient, grantee, by_account, epoch, signed_at FROM ev_consent_signatures_cancelled",
    ),
    (
        "ev_study_signatures_cancelled",
        "SELECT block_number, log_index, tx_hash, study_id, pseudonym, epoch, signed_at FROM ev_study_signatures_cancelled",
    ),
    (
        "study_status_history",
        "SELECT study_id, status, since, from_block, from_log, to_block, end_reason FROM study_status_history",
    ),
    (
        "opt_in_history",
        "SELECT study_id, pseudonym, from_block, from_log, to_block, end_reason FROM opt_in_history",
    ),
    (
        "study_opt_ins",
        "SELECT study_id, pseudonym, block_number FROM study_opt_ins",
    ),
    (
        "ev_research_policy_set",
        "SELECT block_number, log_index, tx_hash, min_cell_size_floor, max_study_budget, max_researcher_budget FROM ev_research_policy_set",
    ),
    (
        "research_policy",
        "SELECT min_cell_size_floor, max_study_budget::text, max_researcher_budget::text, block_number FROM research_policy",
    ),
    (
        "researcher_budgets",
        "SELECT researcher, committed::text, studies FROM researcher_budgets",
    ),
    (
        "studies",
        "SELECT study_id, researcher, protocol_hash, categories, min_cell_size, registered_at, registered_block, budget::text, spent::text, queries, status, status_since, status_block FROM studies",
    ),
    (
        "grant_history",
        "SELECT patient, grantee, by_account, categories, purpose, not_before, expires_at, from_block, from_log, to_block, end_reason FROM grant_history",
    ),
    (
        "guardian_history",
        "SELECT patient, guardian, scope, not_before, expires_at, from_block, from_log, to_block, end_reason FROM guardian_history",
    ),
    (
        "credential_history",
        "SELECT account, role, ref, issued_at, expires_at, from_block, from_log, to_block, end_reason FROM credential_history",
    ),
    (
        "credential_runs",
        "SELECT account, block_number, log_index, role, issued_at, expires_at, valid_since, run_block, new_run::int FROM credential_runs",
    ),
    (
        "emergency_history",
        "SELECT patient, provider, reason_hash, opened_at, expires_at, from_block, from_log, to_block, end_reason FROM emergency_history",
    ),
    (
        "grants",
        "SELECT patient, grantee, by_account, categories, purpose, not_before, expires_at, block_number FROM grants",
    ),
    (
        "guardians",
        "SELECT patient, guardian, scope, not_before, expires_at, block_number FROM guardians",
    ),
    (
        "credentials",
        "SELECT account, role, ref, issued_at, expires_at, block_number FROM credentials",
    ),
    (
        "emergency_accesses",
        "SELECT patient, provider, reason_hash, opened_at, expires_at, block_number FROM emergency_accesses",
    ),
    (
        "pointers",
        "SELECT record_id, patient, holder, commitment, locator, anchored_block, anchored_log, superseded_by, superseded_block FROM pointers",
    ),
];

/// Reads `sql`'s rows as canonical text, whatever the column types.
pub async fn db_rows(db: &TestDb, sql: &'static str) -> Vec<String> {
    let rows = sqlx::query(sql)
        .fetch_all(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| {
            r.columns()
                .iter()
                .map(|c| {
                    let i = c.ordinal();
                    match c.type_info().name() {
                        "INT8" => r.get::<Option<i64>, _>(i).canon(),
                        "INT4" => r.get::<Option<i32>, _>(i).map(i64::from).canon(),
                        "INT2" => r.get::<Option<i16>, _>(i).map(i64::from).canon(),
                        "BYTEA" => match r.get::<Option<Vec<u8>>, _>(i) {
                            Some(b) => alloy::hex::encode_prefixed(b),
                            None => "null".into(),
                        },
                        "TEXT" => r.get::<Option<String>, _>(i).canon(),
                        other => panic!("column {} of unexpected type {other}", c.name()),
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// The differences between the database's tables and views and `want`.
pub async fn compare_tables(
    db: &TestDb,
    want: &BTreeMap<&'static str, Vec<String>>,
) -> Vec<String> {
    let mut problems = vec![];
    for (name, sql) in QUERIES {
        let mut got = db_rows(db, sql).await;
        let mut exp = want[name].clone();
        got.sort();
        exp.sort();
        if got != exp {
            let missing: Vec<&String> = exp
                .iter()
                .filter(|r| got.binary_search(r).is_err())
                .take(5)
                .collect();
            let extra: Vec<&String> = got
                .iter()
                .filter(|r| exp.binary_search(r).is_err())
                .take(5)
                .collect();
            problems.push(format!(
                "{name}: expected {} rows, found {}\n  missing (first 5): {missing:#?}\n  unexpected (first 5): {extra:#?}",
                exp.len(),
                got.len()
            ));
        }
    }
    problems
}

/// Asserts that every table and view equals what the chain's events up to `head` imply, that
/// the cursor is `head` with the chain's hash, and that every stored block hash is the chain's.
/// Returns the decoded events.
pub async fn assert_db_matches_chain(w: &World, db: &TestDb, head: u64) -> Vec<Logged> {
    let evs = chain_events(w, head).await;
    let want = expected(&evs);
    let mut problems = compare_tables(db, &want).await;
    // The cursor: this chain, these contracts, the head with its hash.
    let (chain_id, stored, n, h): (i64, Vec<Vec<u8>>, i64, Vec<u8>) = sqlx::query_as(
        "SELECT chain_id, contracts, block_number, block_hash FROM indexer_cursor WHERE id = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let (head_hash, _) = w.block(head).await;
    if chain_id != 31337 {
        problems.push(format!("cursor chain id {chain_id}"));
    }
    let ours: Vec<Vec<u8>> = contracts(w).iter().map(|a| a.to_vec()).collect();
    if stored != ours {
        problems.push("cursor contracts differ from the deployment".into());
    }
    if n as u64 != head || B256::from_slice(&h) != head_hash {
        problems.push(format!(
            "cursor at {n} {}, chain head {head} {head_hash}",
            B256::from_slice(&h)
        ));
    }
    // Every remembered block hash is the chain's (no orphan survives a reorg).
    let blocks: Vec<(i64, Vec<u8>, i64)> =
        sqlx::query_as("SELECT block_number, block_hash, timestamp FROM indexed_blocks")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    for (bn, bh, ts) in blocks {
        let bn = bn as u64;
        if bn > head {
            problems.push(format!("indexed_blocks holds block {bn} above the head"));
            continue;
        }
        let (ch, cts) = w.block(bn).await;
        if B256::from_slice(&bh) != ch || ts as u64 != cts {
            problems.push(format!(
                "indexed_blocks {bn}: {} at {ts}, chain {ch} at {cts}",
                B256::from_slice(&bh)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the database differs from the chain at head {head} ({} events):\n{}",
        evs.len(),
        problems.join("\n")
    );
    evs
}

/// Counts of each event kind, to check a scenario covers what it means to.
pub fn kinds(evs: &[Logged]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for l in evs {
        let k = match l.ev {
            Ev::CredentialIssued { .. } => "credential_issued",
            Ev::CredentialRevoked { .. } => "credential_revoked",
            Ev::Granted { .. } => "granted",
            Ev::Revoked { .. } => "revoked",
            Ev::GuardianSet { .. } => "guardian_set",
            Ev::GuardianRemoved { .. } => "guardian_removed",
            Ev::EmergencyOpened { .. } => "emergency_opened",
            Ev::EmergencyClosed { .. } => "emergency_closed",
            Ev::CapSet { .. } => "cap_set",
            Ev::Anchored { .. } => "anchored",
            Ev::Superseded { .. } => "superseded",
            Ev::LogAnchored { .. } => "log_anchored",
            Ev::BreakGlassMarked { .. } => "break_glass_marked",
            Ev::Erased { .. } => "erased",
            Ev::HolderRegistered { .. } => "holder_registered",
            Ev::StudyRegistered { .. } => "study_registered",
            Ev::StudyApproved { .. } => "study_approved",
            Ev::StudyClosed { .. } => "study_closed",
            Ev::OptedIn { .. } => "opted_in",
            Ev::Withdrew { .. } => "withdrew",
            Ev::QueryAnswered { .. } => "query_answered",
            Ev::ConsentSignaturesCancelled { .. } => "consent_signatures_cancelled",
            Ev::StudySignaturesCancelled { .. } => "study_signatures_cancelled",
            Ev::ResearchPolicySet { .. } => "research_policy_set",
            Ev::JustificationDue { .. } => "justification_due",
            Ev::Reviewed { .. } => "reviewed",
            Ev::Overdue { .. } => "overdue",
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}
