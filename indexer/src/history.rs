//! History tables: each row a state of one key that held from block `from_block` (inclusive)
//! until `to_block` (exclusive; NULL while current), with the reason it ended.
//!
//! They answer "what held at block B" and make a reorg rollback exact: delete the rows that
//! started above the fork, reopen the rows that ended above it. Every history table has the
//! same shape (key columns, state columns, the span), so one code path writes and rolls back
//! all of them: an event says what it does to which table ([`Change`]), a batch folds its
//! changes per table ([`Fold`]), and the database code turns each fold into one `UPDATE` of
//! the rows it ends and one `INSERT` of the rows it starts.

use crate::columns::{Column, ColumnDef, Rows, Sql, Val};
use std::collections::{HashMap, HashSet};

/// A history table: its name, key columns and state columns. The span columns (`from_block`,
/// `from_log`, `to_block`, `end_reason`) follow them in every table.
#[derive(Debug, PartialEq, Eq)]
pub struct HistoryTable {
    /// The table.
    pub name: &'static str,
    /// The columns that name what the state belongs to (one open row per key).
    pub key: &'static [ColumnDef],
    /// The state's columns.
    pub state: &'static [ColumnDef],
}

use Sql::{BigInt, Bytea, SmallInt};

/// Credentials of providers and researchers, by account.
pub static CREDENTIALS: HistoryTable = HistoryTable {
    name: "credential_history",
    key: &[("account", Bytea)],
    state: &[
        ("role", SmallInt),
        ("ref", Bytea),
        ("issued_at", BigInt),
        ("expires_at", BigInt),
    ],
};

/// Grants, by patient and grantee.
pub static GRANTS: HistoryTable = HistoryTable {
    name: "grant_history",
    key: &[("patient", Bytea), ("grantee", Bytea)],
    state: &[
        ("by_account", Bytea),
        ("categories", BigInt),
        ("purpose", SmallInt),
        ("not_before", BigInt),
        ("expires_at", BigInt),
    ],
};

/// Guardians, by patient and guardian.
pub static GUARDIANS: HistoryTable = HistoryTable {
    name: "guardian_history",
    key: &[("patient", Bytea), ("guardian", Bytea)],
    state: &[
        ("scope", BigInt),
        ("not_before", BigInt),
        ("expires_at", BigInt),
    ],
};

/// Break-glass accesses, by patient and provider.
pub static EMERGENCIES: HistoryTable = HistoryTable {
    name: "emergency_history",
    key: &[("patient", Bytea), ("provider", Bytea)],
    state: &[
        ("reason_hash", Bytea),
        ("opened_at", BigInt),
        ("expires_at", BigInt),
    ],
};

/// Studies' statuses (the Solidity enum's value) and since when, by study.
pub static STUDY_STATUS: HistoryTable = HistoryTable {
    name: "study_status_history",
    key: &[("study_id", BigInt)],
    state: &[("status", SmallInt), ("since", BigInt)],
};

/// Study pseudonyms' opt-ins to studies, by study and pseudonym (no patient: issue 16).
pub static OPT_INS: HistoryTable = HistoryTable {
    name: "opt_in_history",
    key: &[("study_id", BigInt), ("pseudonym", Bytea)],
    state: &[],
};

/// Every history table, for rollback.
pub static HISTORIES: &[&HistoryTable] = &[
    &CREDENTIALS,
    &GRANTS,
    &GUARDIANS,
    &EMERGENCIES,
    &STUDY_STATUS,
    &OPT_INS,
];

/// What an event does to a history table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new state of `key` starts (ending the current one, for the reason "replaced").
    Open {
        /// The table.
        table: &'static HistoryTable,
        /// The key's values, in the order of the table's key columns.
        key: Vec<Val>,
        /// The state's values, in the order of its state columns.
        state: Vec<Val>,
    },
    /// The current state of `key` ends.
    Close {
        /// The table.
        table: &'static HistoryTable,
        /// The key's values.
        key: Vec<Val>,
        /// Why it ended ("revoked", "removed", "closed", "withdrew").
        reason: &'static str,
    },
}

impl Change {
    /// The table changed.
    pub fn table(&self) -> &'static HistoryTable {
        match self {
            Self::Open { table, .. } | Self::Close { table, .. } => table,
        }
    }
}

/// A state a batch opens: its key, state, start, and end if the same batch ends it.
#[derive(Debug)]
struct Opened {
    key: Vec<Val>,
    state: Vec<Val>,
    block: u64,
    log: u32,
    end: Option<(u64, &'static str)>,
}

/// What a batch does to one history table: the rows it starts (some already ended within the
/// batch) and the open rows of earlier batches it ends.
#[derive(Debug)]
pub struct Fold {
    /// The table.
    pub table: &'static HistoryTable,
    opened: Vec<Opened>,
    /// Open rows already in the database to end: (key, block, reason).
    closes: Vec<(Vec<Val>, u64, &'static str)>,
    open_in_batch: HashMap<Vec<Val>, usize>,
    touched: HashSet<Vec<Val>>,
}

impl Fold {
    /// Nothing changed yet.
    pub fn new(table: &'static HistoryTable) -> Self {
        Self {
            table,
            opened: vec![],
            closes: vec![],
            open_in_batch: HashMap::new(),
            touched: HashSet::new(),
        }
    }

    /// Applies `change` made by the event at `block`/`log` (events in chain order).
    pub fn apply(&mut self, change: Change, block: u64, log: u32) {
        match change {
            Change::Open { key, state, .. } => self.open(key, state, block, log),
            Change::Close { key, reason, .. } => self.close(&key, block, reason),
        }
    }

    /// Ends the state of `key` at `block`, whether this batch or an earlier one opened it.
    fn close(&mut self, key: &Vec<Val>, block: u64, reason: &'static str) {
        if let Some(i) = self.open_in_batch.remove(key) {
            self.opened[i].end = Some((block, reason));
        } else if self.touched.insert(key.clone()) {
            self.closes.push((key.clone(), block, reason));
        }
    }

    /// Starts a new state of `key` at `block`/`log`, ending the previous one.
    fn open(&mut self, key: Vec<Val>, state: Vec<Val>, block: u64, log: u32) {
        self.close(&key, block, "replaced");
        self.touched.insert(key.clone());
        self.open_in_batch.insert(key.clone(), self.opened.len());
        self.opened.push(Opened {
            key,
            state,
            block,
            log,
            end: None,
        });
    }

    /// Whether the batch changes nothing in this table.
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.closes.is_empty()
    }

    /// The rows to end: the key columns, then `to_block` and `end_reason`.
    pub fn close_rows(&self) -> Result<Rows, String> {
        let mut rows = Rows::new(self.table.key.iter().map(|(_, t)| *t));
        for (key, _, _) in &self.closes {
            push_all(&mut rows.columns, key, self.table.name)?;
        }
        rows.columns.push(Column::BigInt(
            self.closes.iter().map(|(_, b, _)| *b as i64).collect(),
        ));
        rows.columns.push(Column::Text(
            self.closes
                .iter()
                .map(|(_, _, r)| (*r).to_string())
                .collect(),
        ));
        Ok(rows)
    }

    /// The rows to start, in the table's column order: key, state, span.
    pub fn open_rows(&self) -> Result<Rows, String> {
        let t = self.table;
        let mut rows = Rows::new(t.key.iter().chain(t.state).map(|(_, t)| *t));
        let n = t.key.len();
        for o in &self.opened {
            push_all(&mut rows.columns[..n], &o.key, t.name)?;
            push_all(&mut rows.columns[n..], &o.state, t.name)?;
        }
        let o = &self.opened;
        rows.columns
            .push(Column::BigInt(o.iter().map(|o| o.block as i64).collect()));
        rows.columns
            .push(Column::Int(o.iter().map(|o| o.log as i32).collect()));
        rows.columns.push(Column::NullBigInt(
            o.iter().map(|o| o.end.map(|(b, _)| b as i64)).collect(),
        ));
        rows.columns.push(Column::NullText(
            o.iter()
                .map(|o| o.end.map(|(_, r)| r.to_string()))
                .collect(),
        ));
        Ok(rows)
    }
}

fn push_all(columns: &mut [Column], vals: &[Val], table: &str) -> Result<(), String> {
    if vals.len() != columns.len() {
        return Err(format!(
            "{table}: {} values for {} columns",
            vals.len(),
            columns.len()
        ));
    }
    for (c, v) in columns.iter_mut().zip(vals) {
        if !c.push(v.clone()) {
            return Err(format!("{table}: a value of the wrong type"));
        }
    }
    Ok(())
}

/// `INSERT` of a fold's started rows.
pub fn insert_sql(t: &HistoryTable) -> String {
    let mut names: Vec<&str> = t.key.iter().chain(t.state).map(|(n, _)| *n).collect();
    let mut types: Vec<&str> = t
        .key
        .iter()
        .chain(t.state)
        .map(|(_, t)| t.array())
        .collect();
    names.extend(["from_block", "from_log", "to_block", "end_reason"]);
    types.extend(["bigint[]", "int[]", "bigint[]", "text[]"]);
    format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
        t.name,
        names.join(", "),
        params(&types, 1)
    )
}

/// `UPDATE` that ends the open rows of a fold's keys.
pub fn close_sql(t: &HistoryTable) -> String {
    let mut types: Vec<&str> = t.key.iter().map(|(_, t)| t.array()).collect();
    types.extend(["bigint[]", "text[]"]);
    let keys: Vec<String> = (0..t.key.len()).map(|i| format!("k{i}")).collect();
    let matches: Vec<String> = t
        .key
        .iter()
        .zip(&keys)
        .map(|((name, _), k)| format!("h.{name} = c.{k}"))
        .collect();
    format!(
        "UPDATE {} h SET to_block = c.blk, end_reason = c.why
         FROM UNNEST({}) AS c({}, blk, why)
         WHERE {} AND h.to_block IS NULL",
        t.name,
        params(&types, 1),
        keys.join(", "),
        matches.join(" AND ")
    )
}

/// The two statements that undo everything above a fork (`$1`): delete what started above it,
/// reopen what ended above it.
pub fn rollback_sql(t: &HistoryTable) -> [String; 2] {
    [
        format!("DELETE FROM {} WHERE from_block > $1", t.name),
        format!(
            "UPDATE {} SET to_block = NULL, end_reason = NULL WHERE to_block > $1",
            t.name
        ),
    ]
}

/// `$1::bigint[], $2::bytea[], ...` from `first` on.
pub fn params(types: &[&str], first: usize) -> String {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Vec<Val> {
        vec![Val::Bytes(vec![n]), Val::Bytes(vec![n + 1])]
    }

    fn grant(n: u8) -> Change {
        Change::Open {
            table: &GRANTS,
            key: key(n),
            state: vec![
                Val::Bytes(vec![9]),
                Val::BigInt(3),
                Val::SmallInt(1),
                Val::BigInt(0),
                Val::BigInt(100),
            ],
        }
    }

    #[test]
    fn a_state_opened_and_ended_in_one_batch_is_one_closed_row() {
        let mut f = Fold::new(&GRANTS);
        f.apply(grant(1), 10, 0);
        f.apply(grant(1), 11, 0);
        f.apply(
            Change::Close {
                table: &GRANTS,
                key: key(1),
                reason: "revoked",
            },
            12,
            3,
        );
        // Ends a state of an earlier batch once, whatever follows.
        f.apply(
            Change::Close {
                table: &GRANTS,
                key: key(5),
                reason: "revoked",
            },
            12,
            4,
        );
        f.apply(grant(5), 13, 0);
        let open = f.open_rows().unwrap();
        assert_eq!(open.len(), 3);
        let n = open.columns.len();
        let Column::NullBigInt(to) = &open.columns[n - 2] else {
            panic!("to_block");
        };
        assert_eq!(to, &vec![Some(11), Some(12), None]);
        let Column::NullText(why) = &open.columns[n - 1] else {
            panic!("end_reason");
        };
        assert_eq!(
            why,
            &vec![Some("replaced".into()), Some("revoked".into()), None]
        );
        // Earlier batches' open rows of both keys end: key 1's replaced at block 10, key 5's
        // revoked at 12 (once, though key 5 is opened again after).
        let closes = f.close_rows().unwrap();
        assert_eq!(closes.len(), 2);
        let Column::BigInt(blocks) = &closes.columns[2] else {
            panic!("to_block");
        };
        assert_eq!(blocks, &vec![10, 12]);
        let Column::Text(reasons) = &closes.columns[3] else {
            panic!("reasons");
        };
        assert_eq!(
            reasons,
            &vec!["replaced".to_string(), "revoked".to_string()]
        );
    }

    #[test]
    fn the_sql_is_the_same_shape_for_every_table() {
        assert_eq!(
            close_sql(&CREDENTIALS),
            "UPDATE credential_history h SET to_block = c.blk, end_reason = c.why
         FROM UNNEST($1::bytea[], $2::bigint[], $3::text[]) AS c(k0, blk, why)
         WHERE h.account = c.k0 AND h.to_block IS NULL"
        );
        assert_eq!(
            insert_sql(&OPT_INS),
            "INSERT INTO opt_in_history (study_id, pseudonym, from_block, from_log, to_block, end_reason) SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bigint[], $4::int[], $5::bigint[], $6::text[])"
        );
    }

    #[test]
    fn values_of_the_wrong_type_are_refused() {
        let mut f = Fold::new(&OPT_INS);
        f.apply(
            Change::Open {
                table: &OPT_INS,
                key: vec![Val::Bytes(vec![1]), Val::Bytes(vec![2])],
                state: vec![],
            },
            1,
            0,
        );
        assert!(f.open_rows().is_err());
    }
}
