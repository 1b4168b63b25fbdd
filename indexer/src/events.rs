//! The registries' events as the indexer stores them: one description per event ([`Indexed`]:
//! its table, its columns, how each decoded field binds, what it does to a history table),
//! decoded with the contracts' ABI bindings.
//!
//! A new event is one `impl Indexed` here, one line in [`EVENTS`], and its table in a
//! migration; decoding, inserting (UNNEST or binary COPY), history and rollback follow.

use crate::columns::{Column, ColumnDef, RowWriter, Rows, Sql, Val};
use crate::history::{self, Change, Fold, HISTORIES, HistoryTable};
use alloy::primitives::{B256, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use medrec_bindings::{ConsentRegistry, ParticipantRegistry, RecordRegistry, StudyRegistry};
use std::marker::PhantomData;

/// How one contract event is indexed.
pub trait Indexed: SolEvent + Sized {
    /// Its table (`ev_*`).
    const TABLE: &'static str;
    /// The table's columns after `block_number`, `log_index` and `tx_hash`, in order.
    const COLUMNS: &'static [ColumnDef];
    /// Writes the decoded fields, one per column of [`Indexed::COLUMNS`], in order.
    fn bind(&self, row: &mut RowWriter<'_>);
    /// Writes the row given the log's block time, where the node says it (`blockTimestamp`
    /// in eth_getLogs): for an event whose table keeps a time its fields do not carry.
    fn bind_at(&self, row: &mut RowWriter<'_>, _block_time: Option<u64>) {
        self.bind(row);
    }
    /// What the event does to a history table, if anything.
    fn change(&self) -> Result<Option<Change>, String> {
        Ok(None)
    }
}

/// The columns every event table starts with: where the log is on the chain.
pub const POSITION: &[ColumnDef] = &[
    ("block_number", Sql::BigInt),
    ("log_index", Sql::Int),
    ("tx_hash", Sql::Bytea),
];

/// An event's description, seen without its type: what the batch and the database need.
pub trait EventTable: Sync {
    /// The event's signature hash (topic 0).
    fn topic(&self) -> B256;
    /// Its table.
    fn table(&self) -> &'static str;
    /// The table's columns, [`POSITION`] first.
    fn columns(&self) -> Vec<ColumnDef>;
    /// Decodes `log` into the table's rows; returns its history change.
    fn decode(&self, log: &Log, rows: &mut Rows) -> Result<Option<Change>, String>;
}

/// [`EventTable`] for an [`Indexed`] event.
pub struct Table<E>(PhantomData<fn() -> E>);

impl<E: Indexed> EventTable for Table<E> {
    fn topic(&self) -> B256 {
        E::SIGNATURE_HASH
    }

    fn table(&self) -> &'static str {
        E::TABLE
    }

    fn columns(&self) -> Vec<ColumnDef> {
        POSITION.iter().chain(E::COLUMNS).copied().collect()
    }

    fn decode(&self, log: &Log, rows: &mut Rows) -> Result<Option<Change>, String> {
        let (Some(block), Some(index), Some(tx)) =
            (log.block_number, log.log_index, log.transaction_hash)
        else {
            return Err("log without block, index or transaction (pending?)".into());
        };
        let e = log
            .log_decode::<E>()
            .map_err(|e| format!("cannot decode log {block}/{index}: {e}"))?
            .inner
            .data;
        let index = i32::try_from(index).map_err(|_| "log index out of range".to_string())?;
        let mut w = RowWriter::new(&mut rows.columns);
        w.uint(block);
        // The log index and the tx hash through the same writer as the fields.
        w.index(index).word(tx);
        e.bind_at(&mut w, log.block_timestamp);
        w.finish().map_err(|m| format!("{}: {m}", E::TABLE))?;
        e.change()
    }
}

/// Every indexed event (all four registries).
pub static EVENTS: &[&dyn EventTable] = &[
    &Table::<ParticipantRegistry::CredentialIssued>(PhantomData),
    &Table::<ParticipantRegistry::CredentialRevoked>(PhantomData),
    &Table::<ConsentRegistry::Granted>(PhantomData),
    &Table::<ConsentRegistry::Revoked>(PhantomData),
    &Table::<ConsentRegistry::GuardianSet>(PhantomData),
    &Table::<ConsentRegistry::GuardianRemoved>(PhantomData),
    &Table::<ConsentRegistry::EmergencyAccessOpened>(PhantomData),
    &Table::<ConsentRegistry::EmergencyAccessClosed>(PhantomData),
    &Table::<ConsentRegistry::EmergencyCapSet>(PhantomData),
    // Break-glass policy, reviews and patients' rules
    // (migrations/indexer/20261129000003_break_glass_policy.sql).
    &Table::<ConsentRegistry::EmergencyJustificationDue>(PhantomData),
    &Table::<ConsentRegistry::EmergencyAccessReviewed>(PhantomData),
    &Table::<ConsentRegistry::EmergencyAccessOverdue>(PhantomData),
    &Table::<ConsentRegistry::EmergencyUnjustifiedCleared>(PhantomData),
    &Table::<ConsentRegistry::EmergencyPolicySet>(PhantomData),
    &Table::<ConsentRegistry::EmergencyRuleSet>(PhantomData),
    &Table::<ConsentRegistry::ConsentSignaturesCancelled>(PhantomData),
    &Table::<RecordRegistry::PointerAnchored>(PhantomData),
    &Table::<RecordRegistry::PointerSuperseded>(PhantomData),
    &Table::<RecordRegistry::AccessLogAnchored>(PhantomData),
    &Table::<RecordRegistry::PointerAnchoredUnderBreakGlass>(PhantomData),
    &Table::<RecordRegistry::HolderRegistered>(PhantomData),
    // Erasure (migrations/indexer/20261129000011_pointer_erased.sql).
    &Table::<RecordRegistry::PointerErased>(PhantomData),
    &Table::<StudyRegistry::StudyRegistered>(PhantomData),
    &Table::<StudyRegistry::StudyApproved>(PhantomData),
    &Table::<StudyRegistry::StudyClosed>(PhantomData),
    &Table::<StudyRegistry::OptedIn>(PhantomData),
    &Table::<StudyRegistry::Withdrew>(PhantomData),
    &Table::<StudyRegistry::QueryAnswered>(PhantomData),
    &Table::<StudyRegistry::StudySignaturesCancelled>(PhantomData),
    // Governance's research policy (migrations/indexer/20261129000008_research_policy.sql).
    &Table::<StudyRegistry::ResearchPolicySet>(PhantomData),
];

/// The topics the indexer asks for.
pub fn topics() -> Vec<B256> {
    EVENTS.iter().map(|e| e.topic()).collect()
}

/// The event tables, for rollback and counting.
pub fn tables() -> impl Iterator<Item = &'static str> {
    EVENTS.iter().map(|e| e.table())
}

/// A range's events, decoded: the rows of each event table and what they do to each history
/// table.
#[derive(Debug)]
pub struct Batch {
    /// Per event of [`EVENTS`], its rows.
    pub rows: Vec<Rows>,
    /// Per table of [`HISTORIES`], the batch's changes.
    pub history: Vec<Fold>,
    events: u64,
}

impl Batch {
    /// Decodes `logs` (in chain order); logs of other events are skipped. An error is a log
    /// that does not decode as its event says: an integrity error.
    pub fn decode(logs: &[Log]) -> Result<Self, String> {
        let mut rows: Vec<Rows> = EVENTS
            .iter()
            .map(|e| Rows::new(e.columns().into_iter().map(|(_, t)| t)))
            .collect();
        let mut history: Vec<Fold> = HISTORIES.iter().map(|t| Fold::new(t)).collect();
        let mut events = 0;
        for log in logs {
            let Some(topic) = log.topic0() else { continue };
            let Some(i) = EVENTS.iter().position(|e| e.topic() == *topic) else {
                continue;
            };
            events += 1;
            if let Some(change) = EVENTS[i].decode(log, &mut rows[i])? {
                let t = change.table();
                let h = HISTORIES
                    .iter()
                    .position(|x| std::ptr::eq(*x, t))
                    .ok_or_else(|| format!("{} is not in HISTORIES", t.name))?;
                // Both were checked by decode().
                let (block, index) = (
                    log.block_number.unwrap_or_default(),
                    log.log_index.unwrap_or_default() as u32,
                );
                history[h].apply(change, block, index);
            }
        }
        Ok(Self {
            rows,
            history,
            events,
        })
    }

    /// How many events.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// Whether the batch has no events.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The rows of the event `E` (`None` if `E` is not in [`EVENTS`]).
    pub fn rows_of<E: Indexed>(&self) -> Option<&Rows> {
        let i = EVENTS.iter().position(|e| e.topic() == E::SIGNATURE_HASH)?;
        self.rows.get(i)
    }

    /// Column `name` of the event `E`'s rows.
    pub fn column_of<E: Indexed>(&self, name: &str) -> Option<&Column> {
        let i = POSITION
            .iter()
            .chain(E::COLUMNS)
            .position(|(n, _)| *n == name)?;
        self.rows_of::<E>()?.columns.get(i)
    }
}

/// A uint40 time (`BIGINT`).
fn t(v: alloy::primitives::aliases::U40) -> u64 {
    v.to()
}

/// A study id: sequential from 1 in the contract, so far below 2^63; stored as `BIGINT`.
fn study_id(id: U256) -> Result<i64, String> {
    i64::try_from(id).map_err(|_| format!("study id {id} does not fit in BIGINT"))
}

fn study_key(id: U256) -> Result<Val, String> {
    study_id(id).map(Val::BigInt)
}

/// Binds a study id, or fails the row.
fn bind_study(w: &mut RowWriter<'_>, id: U256) {
    match study_id(id) {
        Ok(v) => w.uint(v as u64),
        Err(m) => w.fail(m),
    };
}

fn open(table: &'static HistoryTable, key: Vec<Val>, state: Vec<Val>) -> Option<Change> {
    Some(Change::Open { table, key, state })
}

fn close(table: &'static HistoryTable, key: Vec<Val>, reason: &'static str) -> Option<Change> {
    Some(Change::Close { table, key, reason })
}

use Sql::{BigInt, Bytea, SmallInt, Text};

impl Indexed for ParticipantRegistry::CredentialIssued {
    const TABLE: &'static str = "ev_credential_issued";
    const COLUMNS: &'static [ColumnDef] = &[
        ("account", Bytea),
        ("role", SmallInt),
        ("ref", Bytea),
        ("issued_at", BigInt),
        ("expires_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.account)
            .code(self.role)
            .word(self.r#ref)
            .uint(t(self.issuedAt))
            .uint(t(self.expiresAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let state = vec![
            self.role.into(),
            self.r#ref.into(),
            t(self.issuedAt).into(),
            t(self.expiresAt).into(),
        ];
        Ok(open(
            &history::CREDENTIALS,
            vec![self.account.into()],
            state,
        ))
    }
}

impl Indexed for ParticipantRegistry::CredentialRevoked {
    const TABLE: &'static str = "ev_credential_revoked";
    const COLUMNS: &'static [ColumnDef] = &[
        ("account", Bytea),
        ("role", SmallInt),
        ("revoked_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.account)
            .code(self.role)
            .uint(t(self.revokedAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        Ok(close(
            &history::CREDENTIALS,
            vec![self.account.into()],
            "revoked",
        ))
    }
}

impl Indexed for ConsentRegistry::Granted {
    const TABLE: &'static str = "ev_granted";
    const COLUMNS: &'static [ColumnDef] = &[
        ("patient", Bytea),
        ("grantee", Bytea),
        ("by_account", Bytea),
        ("categories", BigInt),
        ("purpose", SmallInt),
        ("not_before", BigInt),
        ("expires_at", BigInt),
        ("granted_at", BigInt),
        // The relationship's signature state after the grant
        // (migrations/indexer/20261129000006_signature_state.sql).
        ("epoch", BigInt),
        ("signed_at", BigInt),
    ];
    /// The row with a grant time of 0 (unknown): see [`Indexed::bind_at`].
    fn bind(&self, w: &mut RowWriter<'_>) {
        self.bind_at(w, None);
    }
    /// The grant's time is its block's (the contract's `grantedAt`), which the event does not
    /// carry; 0 where the node does not say it (the API then compares by block). The columns
    /// follow the migrations' order: the time (20261129000005) before the signature state
    /// (20261129000006).
    fn bind_at(&self, w: &mut RowWriter<'_>, block_time: Option<u64>) {
        w.address(self.patient)
            .address(self.grantee)
            .address(self.by)
            .uint(self.categories)
            .code(self.purpose)
            .uint(t(self.notBefore))
            .uint(t(self.expiresAt))
            .uint(block_time.unwrap_or(0))
            .uint(self.epoch.to::<u64>())
            .uint(t(self.signedAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let state = vec![
            self.by.into(),
            self.categories.into(),
            self.purpose.into(),
            t(self.notBefore).into(),
            t(self.expiresAt).into(),
        ];
        let key = vec![self.patient.into(), self.grantee.into()];
        Ok(open(&history::GRANTS, key, state))
    }
}

impl Indexed for ConsentRegistry::Revoked {
    const TABLE: &'static str = "ev_revoked";
    const COLUMNS: &'static [ColumnDef] = &[
        ("patient", Bytea),
        ("grantee", Bytea),
        ("by_account", Bytea),
        ("epoch", BigInt),
        ("signed_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.patient)
            .address(self.grantee)
            .address(self.by)
            .uint(self.epoch.to::<u64>())
            .uint(t(self.signedAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let key = vec![self.patient.into(), self.grantee.into()];
        Ok(close(&history::GRANTS, key, "revoked"))
    }
}

impl Indexed for ConsentRegistry::GuardianSet {
    const TABLE: &'static str = "ev_guardian_set";
    const COLUMNS: &'static [ColumnDef] = &[
        ("patient", Bytea),
        ("guardian", Bytea),
        ("scope", BigInt),
        ("not_before", BigInt),
        ("expires_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.patient)
            .address(self.guardian)
            .uint(self.scope)
            .uint(t(self.notBefore))
            .uint(t(self.expiresAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let state = vec![
            self.scope.into(),
            t(self.notBefore).into(),
            t(self.expiresAt).into(),
        ];
        let key = vec![self.patient.into(), self.guardian.into()];
        Ok(open(&history::GUARDIANS, key, state))
    }
}

impl Indexed for ConsentRegistry::GuardianRemoved {
    const TABLE: &'static str = "ev_guardian_removed";
    const COLUMNS: &'static [ColumnDef] = &[("patient", Bytea), ("guardian", Bytea)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.patient).address(self.guardian);
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let key = vec![self.patient.into(), self.guardian.into()];
        Ok(close(&history::GUARDIANS, key, "removed"))
    }
}

impl Indexed for ConsentRegistry::EmergencyAccessOpened {
    const TABLE: &'static str = "ev_emergency_opened";
    const COLUMNS: &'static [ColumnDef] = &[
        ("patient", Bytea),
        ("provider", Bytea),
        ("reason_hash", Bytea),
        ("opened_at", BigInt),
        ("expires_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.patient)
            .address(self.provider)
            .word(self.reasonHash)
            .uint(t(self.openedAt))
            .uint(t(self.expiresAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let state = vec![
            self.reasonHash.into(),
            t(self.openedAt).into(),
            t(self.expiresAt).into(),
        ];
        let key = vec![self.patient.into(), self.provider.into()];
        Ok(open(&history::EMERGENCIES, key, state))
    }
}

impl Indexed for ConsentRegistry::EmergencyAccessClosed {
    const TABLE: &'static str = "ev_emergency_closed";
    const COLUMNS: &'static [ColumnDef] = &[
        ("patient", Bytea),
        ("provider", Bytea),
        ("by_account", Bytea),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.patient)
            .address(self.provider)
            .address(self.by);
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let key = vec![self.patient.into(), self.provider.into()];
        Ok(close(&history::EMERGENCIES, key, "closed"))
    }
}

impl Indexed for ConsentRegistry::EmergencyCapSet {
    const TABLE: &'static str = "ev_emergency_cap_set";
    const COLUMNS: &'static [ColumnDef] = &[("cap", BigInt)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.uint(t(self.cap));
    }
}

// ------------------------------------------------ break-glass policy, reviews, patients' rules

impl Indexed for ConsentRegistry::EmergencyJustificationDue {
    const TABLE: &'static str = "ev_emergency_justification_due";
    const COLUMNS: &'static [ColumnDef] = &[
        ("opening_id", BigInt),
        ("patient", Bytea),
        ("provider", Bytea),
        ("review_by", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.uint(self.id)
            .address(self.patient)
            .address(self.provider)
            .uint(t(self.reviewBy));
    }
}

impl Indexed for ConsentRegistry::EmergencyAccessReviewed {
    const TABLE: &'static str = "ev_emergency_reviewed";
    const COLUMNS: &'static [ColumnDef] = &[
        ("opening_id", BigInt),
        ("provider", Bytea),
        ("justified", SmallInt),
        ("unjustified", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.uint(self.id)
            .address(self.provider)
            .code(u8::from(self.justified))
            .uint(self.unjustified);
    }
}

impl Indexed for ConsentRegistry::EmergencyAccessOverdue {
    const TABLE: &'static str = "ev_emergency_overdue";
    const COLUMNS: &'static [ColumnDef] = &[
        ("opening_id", BigInt),
        ("provider", Bytea),
        ("unjustified", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.uint(self.id)
            .address(self.provider)
            .uint(self.unjustified);
    }
}

impl Indexed for ConsentRegistry::EmergencyUnjustifiedCleared {
    const TABLE: &'static str = "ev_emergency_unjustified_cleared";
    const COLUMNS: &'static [ColumnDef] = &[("provider", Bytea), ("cleared", BigInt)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.provider).uint(self.cleared);
    }
}

impl Indexed for ConsentRegistry::EmergencyPolicySet {
    const TABLE: &'static str = "ev_emergency_policy_set";
    const COLUMNS: &'static [ColumnDef] = &[
        ("max_openings", SmallInt),
        ("period", BigInt),
        ("cooling_off", BigInt),
        ("justify_within", BigInt),
        ("max_unjustified", BigInt),
        ("max_pending", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.code(self.maxOpenings)
            .uint(t(self.period))
            .uint(t(self.coolingOff))
            .uint(t(self.justifyWithin))
            .uint(self.maxUnjustified)
            .uint(self.maxPending);
    }
}

impl Indexed for ConsentRegistry::EmergencyRuleSet {
    const TABLE: &'static str = "ev_emergency_rule_set";
    const COLUMNS: &'static [ColumnDef] = &[("patient", Bytea), ("excluded", BigInt)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.patient).uint(self.excluded);
    }
}

impl Indexed for RecordRegistry::PointerAnchored {
    const TABLE: &'static str = "ev_pointer_anchored";
    const COLUMNS: &'static [ColumnDef] = &[
        ("record_id", Bytea),
        ("patient", Bytea),
        ("holder", Bytea),
        // After the locator: the column the migration added to the table.
        ("locator", Text),
        ("commitment", Bytea),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.word(self.recordId)
            .address(self.patient)
            .address(self.holder)
            .text(&self.locator)
            .word(self.commitment);
    }
}

impl Indexed for RecordRegistry::PointerSuperseded {
    const TABLE: &'static str = "ev_pointer_superseded";
    const COLUMNS: &'static [ColumnDef] = &[("old_record_id", Bytea), ("new_record_id", Bytea)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.word(self.oldRecordId).word(self.newRecordId);
    }
}

impl Indexed for RecordRegistry::AccessLogAnchored {
    const TABLE: &'static str = "ev_access_log_anchored";
    const COLUMNS: &'static [ColumnDef] = &[
        ("holder", Bytea),
        ("head", Bytea),
        ("entries", BigInt),
        ("anchored_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.holder)
            .word(self.head)
            .uint(self.entries)
            .uint(t(self.anchoredAt));
    }
}

// Issue 14, hole 6: the break-glass mark of a pointer (the `pointers` view joins it) and the
// holders' registered gatekeepers.

impl Indexed for RecordRegistry::PointerAnchoredUnderBreakGlass {
    const TABLE: &'static str = "ev_pointer_break_glass";
    const COLUMNS: &'static [ColumnDef] =
        &[("record_id", Bytea), ("patient", Bytea), ("holder", Bytea)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.word(self.recordId)
            .address(self.patient)
            .address(self.holder);
    }
}

impl Indexed for RecordRegistry::PointerErased {
    const TABLE: &'static str = "ev_pointer_erased";
    const COLUMNS: &'static [ColumnDef] = &[("record_id", Bytea)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.word(self.recordId);
    }
}

impl Indexed for RecordRegistry::HolderRegistered {
    const TABLE: &'static str = "ev_holder_registered";
    const COLUMNS: &'static [ColumnDef] = &[
        ("holder", Bytea),
        ("endpoint", Text),
        ("service_key", Bytea),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.holder)
            .text(&self.endpoint)
            .address(self.serviceKey);
    }
}

/// The Solidity `IStudyRegistry.Status` values a study's status history holds.
const REGISTERED: u8 = 1;
const APPROVED: u8 = 2;
const CLOSED: u8 = 3;

fn study_status(id: U256, status: u8, since: u64) -> Result<Option<Change>, String> {
    Ok(open(
        &history::STUDY_STATUS,
        vec![study_key(id)?],
        vec![status.into(), since.into()],
    ))
}

impl Indexed for StudyRegistry::StudyRegistered {
    const TABLE: &'static str = "ev_study_registered";
    const COLUMNS: &'static [ColumnDef] = &[
        ("study_id", BigInt),
        ("researcher", Bytea),
        ("protocol_hash", Bytea),
        ("categories", BigInt),
        ("min_cell_size", BigInt),
        ("budget", BigInt),
        ("registered_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        bind_study(w, self.studyId);
        w.address(self.researcher)
            .word(self.protocolHash)
            .uint(self.categories)
            .uint(self.minCellSize)
            .uint(self.budget)
            .uint(t(self.registeredAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        study_status(self.studyId, REGISTERED, t(self.registeredAt))
    }
}

impl Indexed for StudyRegistry::StudyApproved {
    const TABLE: &'static str = "ev_study_approved";
    const COLUMNS: &'static [ColumnDef] = &[("study_id", BigInt), ("approved_at", BigInt)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        bind_study(w, self.studyId);
        w.uint(t(self.approvedAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        study_status(self.studyId, APPROVED, t(self.approvedAt))
    }
}

impl Indexed for StudyRegistry::StudyClosed {
    const TABLE: &'static str = "ev_study_closed";
    const COLUMNS: &'static [ColumnDef] = &[("study_id", BigInt), ("closed_at", BigInt)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        bind_study(w, self.studyId);
        w.uint(t(self.closedAt));
    }
    fn change(&self) -> Result<Option<Change>, String> {
        study_status(self.studyId, CLOSED, t(self.closedAt))
    }
}

// Opt-ins, withdrawals and cancellations name a study pseudonym, never the patient
// (migrations/indexer/20261129000020_study_pseudonyms.sql).
impl Indexed for StudyRegistry::OptedIn {
    const TABLE: &'static str = "ev_opted_in";
    const COLUMNS: &'static [ColumnDef] =
        &[("study_id", BigInt), ("pseudonym", Bytea), ("tags", Bytea)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        bind_study(w, self.studyId);
        w.address(self.pseudonym).bytes(self.tags.to_vec());
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let key = vec![study_key(self.studyId)?, self.pseudonym.into()];
        Ok(open(&history::OPT_INS, key, vec![]))
    }
}

impl Indexed for StudyRegistry::Withdrew {
    const TABLE: &'static str = "ev_withdrew";
    const COLUMNS: &'static [ColumnDef] = &[("study_id", BigInt), ("pseudonym", Bytea)];
    fn bind(&self, w: &mut RowWriter<'_>) {
        bind_study(w, self.studyId);
        w.address(self.pseudonym);
    }
    fn change(&self) -> Result<Option<Change>, String> {
        let key = vec![study_key(self.studyId)?, self.pseudonym.into()];
        Ok(close(&history::OPT_INS, key, "withdrew"))
    }
}

impl Indexed for StudyRegistry::QueryAnswered {
    const TABLE: &'static str = "ev_query_answered";
    const COLUMNS: &'static [ColumnDef] = &[
        ("study_id", BigInt),
        ("query_hash", Bytea),
        ("cost", BigInt),
        ("pinned_block", BigInt),
        ("answer_hash", Bytea),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        bind_study(w, self.studyId);
        w.word(self.queryHash)
            .uint(self.cost)
            .uint(self.pinnedBlock)
            .word(self.answerHash);
    }
}

impl Indexed for StudyRegistry::ResearchPolicySet {
    const TABLE: &'static str = "ev_research_policy_set";
    const COLUMNS: &'static [ColumnDef] = &[
        ("min_cell_size_floor", BigInt),
        ("max_study_budget", BigInt),
        ("max_researcher_budget", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.uint(self.minCellSizeFloor)
            .uint(self.maxStudyBudget)
            .uint(self.maxResearcherBudget);
    }
}

impl Indexed for ConsentRegistry::ConsentSignaturesCancelled {
    const TABLE: &'static str = "ev_consent_signatures_cancelled";
    const COLUMNS: &'static [ColumnDef] = &[
        ("patient", Bytea),
        ("grantee", Bytea),
        ("by_account", Bytea),
        ("epoch", BigInt),
        ("signed_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        w.address(self.patient)
            .address(self.grantee)
            .address(self.by)
            .uint(self.epoch.to::<u64>())
            .uint(t(self.signedAt));
    }
}

impl Indexed for StudyRegistry::StudySignaturesCancelled {
    const TABLE: &'static str = "ev_study_signatures_cancelled";
    const COLUMNS: &'static [ColumnDef] = &[
        ("study_id", BigInt),
        ("pseudonym", Bytea),
        ("epoch", BigInt),
        ("signed_at", BigInt),
    ];
    fn bind(&self, w: &mut RowWriter<'_>) {
        bind_study(w, self.studyId);
        w.address(self.pseudonym)
            .uint(self.epoch.to::<u64>())
            .uint(t(self.signedAt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_own_topic_and_table() {
        let mut topics = topics();
        topics.sort();
        topics.dedup();
        assert_eq!(topics.len(), EVENTS.len());
        let mut tables: Vec<_> = tables().collect();
        tables.sort();
        tables.dedup();
        assert_eq!(tables.len(), EVENTS.len());
    }
}
