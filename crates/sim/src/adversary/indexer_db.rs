//! The indexer's database as its operator reads it: every table and view of its schema that
//! has a `patient` column, read in a read-only session. Columns are found by name in the
//! catalog, not from a list of today's tables, so that a changed schema is read as well.

use super::{
    Findings, INDEXER_DB, Kind, SeenPointer, category_detail, emergency_detail, grant_detail,
    guardian_detail, rule_detail, study_detail,
};
use crate::{Fail, Result};
use alloy::primitives::{Address, B256};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use std::collections::BTreeMap;

/// The columns read beside `patient`, when a table has them.
const COLUMNS: &[&str] = &[
    "grantee",
    "holder",
    "provider",
    "guardian",
    "categories",
    "category",
    "scope",
    "purpose",
    "not_before",
    "expires_at",
    "content_hash",
    "commitment",
    "record_id",
    "study_id",
    "excluded",
    "reason_hash",
    "block_number",
];

fn db(e: impl std::fmt::Display) -> Fail {
    Fail(4, format!("indexer database: {e}"))
}

/// `\x…` (bytea as text) or `0x…` as bytes.
fn bytes(v: &str) -> Option<Vec<u8>> {
    let h = v.strip_prefix("\\x").or_else(|| v.strip_prefix("0x"))?;
    alloy::hex::decode(h).ok()
}

fn address(v: Option<&String>) -> Option<Address> {
    bytes(v?)
        .filter(|b| b.len() == 20)
        .map(|b| Address::from_slice(&b))
}

fn word(v: Option<&String>) -> Option<B256> {
    bytes(v?)
        .filter(|b| b.len() == 32)
        .map(|b| B256::from_slice(&b))
}

fn int(v: Option<&String>) -> Option<i128> {
    v?.parse().ok()
}

/// A category mask, stored as the same 64 bits in a BIGINT.
fn mask(v: Option<&String>) -> Option<u64> {
    int(v).map(|i| i as i64 as u64)
}

/// Reads every table with a `patient` column into `f`.
pub async fn read(url: &str, f: &mut Findings) -> Result<()> {
    let mut conn = PgConnection::connect(url).await.map_err(db)?;
    // The adversary only reads: any write is refused by the server.
    sqlx::raw_sql("SET default_transaction_read_only = on")
        .execute(&mut conn)
        .await
        .map_err(db)?;
    let cols = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(db)?;
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in cols {
        let (t, c): (String, String) = (r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?);
        tables.entry(t).or_default().push(c);
    }
    let before = f.facts.len();
    let (mut read_tables, mut rows_read) = (vec![], 0usize);
    for (table, cols) in &tables {
        if !cols.iter().any(|c| c == "patient") {
            continue;
        }
        let present: Vec<&str> = COLUMNS
            .iter()
            .copied()
            .filter(|c| cols.iter().any(|x| x == c))
            .collect();
        let select: Vec<String> = std::iter::once("patient")
            .chain(present.iter().copied())
            .map(|c| format!("{}::text", quote(c)))
            .collect();
        let sql = format!("SELECT {} FROM {}", select.join(", "), quote(table));
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .map_err(db)?;
        rows_read += rows.len();
        read_tables.push(format!("{table} ({})", rows.len()));
        for r in rows {
            let mut v: BTreeMap<&str, String> = BTreeMap::new();
            for (i, c) in std::iter::once("patient")
                .chain(present.iter().copied())
                .enumerate()
            {
                if let Ok(Some(s)) = r.try_get::<Option<String>, _>(i) {
                    v.insert(c, s);
                }
            }
            row_facts(&v, f);
        }
    }
    // Study participation is keyed by pseudonym (issue 16): every table with a `pseudonym` and
    // a `study_id` column, for Findings::derive_studies.
    let mut pseudonym_rows = 0usize;
    for (table, cols) in &tables {
        if !(cols.iter().any(|c| c == "pseudonym") && cols.iter().any(|c| c == "study_id")) {
            continue;
        }
        let sql = format!(
            "SELECT pseudonym::text, study_id::text FROM {}",
            quote(table)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .map_err(db)?;
        pseudonym_rows += rows.len();
        read_tables.push(format!("{table} ({}, pseudonyms)", rows.len()));
        for r in rows {
            let (p, s): (Option<String>, Option<String>) =
                (r.try_get(0).ok().flatten(), r.try_get(1).ok().flatten());
            if let (Some(p), Some(s)) = (address(p.as_ref()), int(s.as_ref())) {
                f.pseudonym(p, s as u64, INDEXER_DB);
            }
        }
    }
    rows_read += pseudonym_rows;
    let _ = conn.close().await;
    let new = f.facts.len() - before;
    f.tried(
        "indexer database",
        format!(
            "{rows_read} rows of {} tables and views with a patient column (read-only session): {}",
            read_tables.len(),
            read_tables.join(", ")
        ),
        format!("{new} facts not on chain"),
    );
    Ok(())
}

/// The facts one row discloses, by the columns it has.
fn row_facts(v: &BTreeMap<&str, String>, f: &mut Findings) {
    let Some(patient) = address(v.get("patient")) else {
        return;
    };
    let (from, until) = (int(v.get("not_before")), int(v.get("expires_at")));
    if let (Some(g), Some(c), Some(p), Some(a), Some(b)) = (
        address(v.get("grantee")),
        mask(v.get("categories")),
        int(v.get("purpose")),
        from,
        until,
    ) {
        let d = grant_detail(g, c, p as u8, a as u64, b as u64);
        f.add(patient, Kind::Grantee, d, INDEXER_DB);
    }
    if let (Some(g), Some(s), Some(a), Some(b)) = (
        address(v.get("guardian")),
        mask(v.get("scope")),
        from,
        until,
    ) {
        let d = guardian_detail(g, s, a as u64, b as u64);
        f.add(patient, Kind::Guardian, d, INDEXER_DB);
    }
    if let (Some(h), Some(c)) = (address(v.get("holder")), int(v.get("category"))) {
        f.add(
            patient,
            Kind::Category,
            category_detail(h, c as u8),
            INDEXER_DB,
        );
        if let Some(id) = word(v.get("record_id")) {
            f.pointers.insert(SeenPointer {
                record_id: id,
                patient,
                holder: h,
                category: Some(c as u8),
                content_hash: word(v.get("content_hash")),
                commitment: word(v.get("commitment")),
            });
        }
    } else if let (Some(h), Some(id)) = (address(v.get("holder")), word(v.get("record_id"))) {
        // A pointer row without a category (issue 16): its commitment, for the hash guessing.
        if v.get("commitment").is_some() || v.get("content_hash").is_some() {
            f.pointers.insert(SeenPointer {
                record_id: id,
                patient,
                holder: h,
                category: None,
                content_hash: word(v.get("content_hash")),
                commitment: word(v.get("commitment")),
            });
        }
    }
    if let (Some(p), Some(_), Some(b)) = (
        address(v.get("provider")),
        v.get("reason_hash"),
        int(v.get("block_number")),
    ) {
        f.add(
            patient,
            Kind::Emergency,
            emergency_detail(p, b as u64),
            INDEXER_DB,
        );
    }
    if let Some(x) = mask(v.get("excluded")).filter(|x| *x != 0) {
        f.add(patient, Kind::Emergency, rule_detail(x), INDEXER_DB);
    }
    if let Some(s) = int(v.get("study_id")) {
        f.add(patient, Kind::Study, study_detail(s as u64), INDEXER_DB);
    }
}

/// An identifier read from the catalog, quoted.
fn quote(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}
