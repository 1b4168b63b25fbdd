//! Record storage: records sealed at rest ([`crypto`]), the coded facts research reads
//! ([`facts`]), the SQL that stores and fetches them, and the records served kept in memory
//! ([`cache`]).

pub mod cache;
pub mod crypto;
pub mod facts;

use alloy::primitives::{Address, B256};
use cache::Cached;
use crypto::Sealed;
use medrec_protocol::Upload;
use medrec_protocol::records::Opening;
use sqlx::{PgPool, Row};

/// A record as the database has it.
pub enum Fetched {
    /// Kept, with what a read needs.
    Record(Cached),
    /// Erased by its holder: only its patient is left.
    Erased(Address),
}

/// A stored record's patient, opening and sealed bytes, or that it was erased.
pub async fn fetch_record(pool: &PgPool, id: B256) -> Result<Option<Fetched>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT patient, category, salt, content_hash, data_nonce, ciphertext, key_nonce,
                wrapped_key, erased_at IS NOT NULL AS erased
         FROM gk_records WHERE record_id = $1",
    )
    .bind(id.to_vec())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
        let patient = Address::from_slice(&row.get::<Vec<u8>, _>("patient"));
        if row.get::<bool, _>("erased") {
            Fetched::Erased(patient)
        } else {
            Fetched::Record(cached_of(&row))
        }
    }))
}

fn cached_of(row: &sqlx::postgres::PgRow) -> Cached {
    Cached {
        patient: Address::from_slice(&row.get::<Vec<u8>, _>("patient")),
        opening: Opening {
            category: row.get::<i16, _>("category") as u8,
            salt: B256::from_slice(&row.get::<Vec<u8>, _>("salt")),
        },
        content_hash: B256::from_slice(&row.get::<Vec<u8>, _>("content_hash")),
        sealed: Sealed {
            data_nonce: row.get("data_nonce"),
            ciphertext: row.get("ciphertext"),
            key_nonce: row.get("key_nonce"),
            wrapped_key: row.get("wrapped_key"),
        },
    }
}

/// Erases record `id` in one transaction: its data key, ciphertext, content hash and salt
/// overwritten, its research facts and demographics deleted, the row kept as a tombstone that
/// holds nothing but the patient, the id and the time of erasure (category -1, size 0, stored
/// at that time too): a category or size kept would tell what the erased record was.
/// Waits for the reads being logged (they hold the row shared). Returns its patient and
/// whether this call erased it (false: erased before); `None` for an unknown record.
pub async fn erase_record(pool: &PgPool, id: B256) -> Result<Option<(Address, bool)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let erased: Option<Vec<u8>> = sqlx::query_scalar(
        "UPDATE gk_records SET erased_at = now(), wrapped_key = ''::bytea, ciphertext = ''::bytea,
                data_nonce = ''::bytea, key_nonce = ''::bytea, content_hash = record_id,
                salt = decode(repeat('00', 32), 'hex'), category = -1, size = 0,
                stored_at = now()
         WHERE record_id = $1 AND erased_at IS NULL RETURNING patient",
    )
    .bind(id.to_vec())
    .fetch_optional(&mut *tx)
    .await?;
    let found = match erased {
        Some(patient) => {
            for sql in [
                "DELETE FROM gk_facts WHERE record_id = $1",
                "DELETE FROM gk_demographics WHERE record_id = $1",
            ] {
                sqlx::query(sql).bind(id.to_vec()).execute(&mut *tx).await?;
            }
            Some((Address::from_slice(&patient), true))
        }
        None => sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT patient FROM gk_records WHERE record_id = $1 AND erased_at IS NOT NULL",
        )
        .bind(id.to_vec())
        .fetch_optional(&mut *tx)
        .await?
        .map(|p| (Address::from_slice(&p), false)),
    };
    tx.commit().await?;
    Ok(found)
}

/// Whether the access log holds the holder's erasure entry for `id`.
pub async fn erasure_logged(pool: &PgPool, id: B256, holder: Address) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM gk_access_log WHERE record_id = $1 AND requester = $2 AND reason = $3)",
    )
    .bind(id.to_vec())
    .bind(holder.to_vec())
    .bind(medrec_protocol::records::ERASURE_REASON)
    .fetch_one(pool)
    .await
}

/// The records of `patient` kept here, in the order they were stored, with their openings.
pub async fn list_records(
    pool: &PgPool,
    patient: Address,
) -> Result<Vec<medrec_protocol::records::ListedRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT record_id, content_hash, category, salt FROM gk_records
         WHERE patient = $1 AND erased_at IS NULL ORDER BY stored_at, record_id",
    )
    .bind(patient.to_vec())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| medrec_protocol::records::ListedRecord {
            record_id: B256::from_slice(&row.get::<Vec<u8>, _>("record_id")),
            content_hash: B256::from_slice(&row.get::<Vec<u8>, _>("content_hash")),
            opening: Opening {
                category: row.get::<i16, _>("category") as u8,
                salt: B256::from_slice(&row.get::<Vec<u8>, _>("salt")),
            },
        })
        .collect())
}

/// Records an upload's nonce; false when it was used before (uploads have no expiry, so
/// their nonces are kept for good).
pub async fn use_upload_nonce(pool: &PgPool, nonce: B256) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("INSERT INTO gk_upload_nonces (nonce) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(nonce.to_vec())
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The id and opening of the record of `patient` with `content_hash` stored here, if any (one
/// copy of a document per patient: an upload sent again finds it).
pub async fn find_record(
    pool: &PgPool,
    patient: Address,
    content_hash: B256,
) -> Result<Option<(B256, Opening)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT record_id, category, salt FROM gk_records WHERE patient = $1 AND content_hash = $2",
    )
    .bind(patient.to_vec())
    .bind(content_hash.to_vec())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
        (
            B256::from_slice(&row.get::<Vec<u8>, _>("record_id")),
            Opening {
                category: row.get::<i16, _>("category") as u8,
                salt: B256::from_slice(&row.get::<Vec<u8>, _>("salt")),
            },
        )
    }))
}

/// Stores a sealed record under `id` with its opening's salt, and its facts, in one
/// transaction; false if a record of the same patient and content existed (then nothing is
/// written: [`find_record`] gives the one kept).
#[allow(clippy::too_many_arguments)]
pub async fn insert_record(
    pool: &PgPool,
    id: B256,
    upload: &Upload,
    salt: B256,
    size: usize,
    sealed: &Sealed,
    facts: &facts::Facts,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let res = sqlx::query(
        "INSERT INTO gk_records (record_id, patient, category, content_hash, salt, size, data_nonce, ciphertext, key_nonce, wrapped_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )
    .bind(id.to_vec())
    .bind(upload.patient.to_vec())
    .bind(upload.category as i16)
    .bind(upload.contentHash.to_vec())
    .bind(salt.to_vec())
    .bind(size as i32)
    .bind(&sealed.data_nonce)
    .bind(&sealed.ciphertext)
    .bind(&sealed.key_nonce)
    .bind(&sealed.wrapped_key)
    .execute(&mut *tx)
    .await?;
    let stored = res.rows_affected() == 1;
    if stored {
        if let Some((gender, birth)) = &facts.demographics {
            sqlx::query(
                "INSERT INTO gk_demographics (record_id, patient, category, gender, birth_date)
                 VALUES ($1, $2, $3, $4, $5::date)",
            )
            .bind(id.to_vec())
            .bind(upload.patient.to_vec())
            .bind(upload.category as i16)
            .bind(gender)
            .bind(birth)
            .execute(&mut *tx)
            .await?;
        }
        if !facts.codes.is_empty() {
            let (mut kinds, mut systems, mut codes, mut values) = (vec![], vec![], vec![], vec![]);
            for (kind, system, code, value) in &facts.codes {
                kinds.push(*kind);
                systems.push(system.as_str());
                codes.push(code.as_str());
                values.push(*value);
            }
            sqlx::query(
                "INSERT INTO gk_facts (record_id, patient, category, kind, system, code, value)
                 SELECT $1, $2, $3, * FROM unnest($4::text[], $5::text[], $6::text[], $7::float8[])
                 ON CONFLICT DO NOTHING",
            )
            .bind(id.to_vec())
            .bind(upload.patient.to_vec())
            .bind(upload.category as i16)
            .bind(&kinds)
            .bind(&systems)
            .bind(&codes)
            .bind(&values)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(stored)
}
