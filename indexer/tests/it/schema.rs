//! The event and history descriptions agree with the migrations: every described table exists
//! with exactly the described columns, in order, of the described types (a new event whose
//! migration is missing or different fails here, not on its first log).

use crate::harness::TestDb;
use medrec_indexer::columns::{ColumnDef, Sql};
use medrec_indexer::db;
use medrec_indexer::events::EVENTS;
use medrec_indexer::history::HISTORIES;

fn sql_type(t: Sql) -> &'static str {
    match t {
        Sql::BigInt => "bigint",
        Sql::Int => "integer",
        Sql::SmallInt => "smallint",
        Sql::Bytea => "bytea",
        Sql::Text => "text",
    }
}

async fn columns_of(db: &TestDb, table: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn described(cols: &[ColumnDef]) -> Vec<(String, String)> {
    cols.iter()
        .map(|(n, t)| (n.to_string(), sql_type(*t).to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_table_is_the_migrated_one() {
    let db = TestDb::create("schema").await;
    db::migrate(&db.pool).await.unwrap();
    for e in EVENTS {
        assert_eq!(
            columns_of(&db, e.table()).await,
            described(&e.columns()),
            "{}",
            e.table()
        );
    }
    for h in HISTORIES {
        let mut want = described(&h.key.iter().chain(h.state).copied().collect::<Vec<_>>());
        want.extend(
            [
                ("from_block", "bigint"),
                ("from_log", "integer"),
                ("to_block", "bigint"),
                ("end_reason", "text"),
            ]
            .map(|(n, t)| (n.to_string(), t.to_string())),
        );
        assert_eq!(columns_of(&db, h.name).await, want, "{}", h.name);
    }
}
