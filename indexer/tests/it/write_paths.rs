//! The two write paths give the same rows: one batch large enough for binary COPY into the
//! event tables, and the same events in batches small enough for UNNEST, in two databases.

use crate::harness::*;
use crate::model;
use alloy::primitives::{
    Address, B256, LogData, U256,
    aliases::{U24, U40},
    keccak256,
};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use medrec_bindings::{ConsentRegistry, RecordRegistry, StudyRegistry};
use medrec_indexer::db::{self, BlockRef, Cursor};
use medrec_indexer::events::Batch;

/// Events per kind: above the COPY threshold (5,000 rows of one table in one batch).
const N: u64 = 6_000;
/// Blocks the events spread over, and the small batches' size in blocks.
const BLOCKS: u64 = 60;
const SMALL: u64 = 4;

fn log(data: LogData, block: u64, index: u64) -> Log {
    Log {
        inner: alloy::primitives::Log {
            address: Address::ZERO,
            data,
        },
        block_hash: Some(keccak256(block.to_be_bytes())),
        block_number: Some(block),
        log_index: Some(index),
        transaction_hash: Some(keccak256(
            [block.to_be_bytes(), index.to_be_bytes()].concat(),
        )),
        ..Default::default()
    }
}

/// Pointer anchors, grants (and revocations of some), opt-ins: two event tables past the
/// threshold, history through UNNEST either way.
fn logs() -> Vec<Log> {
    let mut out = vec![];
    let per_block = 3 * N / BLOCKS;
    for i in 0..N {
        let patient = Address::from_word(keccak256(i.to_be_bytes()));
        let block = 1 + (3 * i) / per_block;
        let index = (3 * i) % per_block;
        let anchored = RecordRegistry::PointerAnchored {
            recordId: keccak256(format!("record {i}")),
            patient,
            holder: Address::repeat_byte(1),
            commitment: keccak256(format!("commitment {i}")),
            locator: format!("https://holder.example/{i}"),
        };
        let granted = ConsentRegistry::Granted {
            patient,
            grantee: Address::repeat_byte(2),
            by: patient,
            // All 64 bits, the sign bit included.
            categories: u64::MAX - i,
            purpose: 1,
            notBefore: U40::from(i),
            expiresAt: U40::from(i + 1_000),
            // Up to the largest signedAt, that of a relationship at its last epoch.
            epoch: U24::from(i & 0xff_ffff),
            signedAt: U40::from((1u64 << 40) - 1 - i),
        };
        let opted = StudyRegistry::OptedIn {
            studyId: U256::from(1 + i % 3),
            pseudonym: patient,
            tags: vec![i as u8; 689].into(),
        };
        out.push(log(anchored.encode_log_data(), block, index));
        out.push(log(granted.encode_log_data(), block, index + 1));
        out.push(log(opted.encode_log_data(), block, index + 2));
    }
    out
}

/// Writes `logs` in batches of `size` blocks into a fresh database.
async fn write(tag: &str, logs: &[Log], size: u64) -> TestDb {
    let db = TestDb::create(tag).await;
    db::migrate(&db.pool).await.unwrap();
    let mut cursor = Cursor {
        block_number: 0,
        block_hash: B256::ZERO,
    };
    db::init_cursor(&db.pool, 31337, &[Address::ZERO], cursor, 0)
        .await
        .unwrap();
    let mut from = 1;
    while from <= BLOCKS {
        let to = from + size - 1;
        let part: Vec<Log> = logs
            .iter()
            .filter(|l| (from..=to).contains(&l.block_number.unwrap()))
            .cloned()
            .collect();
        let batch = Batch::decode(&part).unwrap();
        let hash = keccak256(to.to_be_bytes());
        let blocks = [BlockRef {
            number: to,
            hash,
            timestamp: to,
        }];
        let next = Cursor {
            block_number: to,
            block_hash: hash,
        };
        let rows = db::write_batch(&db.pool, cursor.block_number, &batch, &blocks, next, 0)
            .await
            .unwrap();
        assert_eq!(rows, part.len() as u64);
        cursor = next;
        from = to + 1;
    }
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_and_unnest_write_the_same_rows() {
    let logs = logs();
    let copy = write("copy", &logs, BLOCKS).await;
    let unnest = write("unnest", &logs, SMALL).await;
    for (name, sql) in model::QUERIES {
        let mut a = model::db_rows(&copy, sql).await;
        let mut b = model::db_rows(&unnest, sql).await;
        a.sort();
        b.sort();
        assert_eq!(a.len(), b.len(), "{name}");
        assert!(a == b, "{name}: the two write paths differ");
    }
    // And the rows are the events: every anchor, grant and opt-in, masks with all 64 bits.
    let (anchors, grants, opt_ins, top): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ev_pointer_anchored), (SELECT count(*) FROM ev_granted),
                (SELECT count(*) FROM ev_opted_in),
                (SELECT count(*) FROM ev_granted WHERE categories = -1)",
    )
    .fetch_one(&copy.pool)
    .await
    .unwrap();
    assert_eq!(
        (anchors, grants, opt_ins, top),
        (N as i64, N as i64, N as i64, 1)
    );
}
