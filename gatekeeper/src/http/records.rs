//! `POST /v1/records` (the holder uploads a record), `POST /v1/records/{id}/read` (a
//! requester reads one) and `POST /v1/records/list` (which records of a patient a requester
//! may read here, with their categories and openings). A read signed for this holder is logged, allowed or not, before its
//! answer leaves; anything else is only counted. Every refused read gets the same `denied`,
//! whether or not the record exists.

use super::body::{ENVELOPE, json_body, limited};
use super::error::ApiError;
use crate::access_log::Unlogged;
use crate::app::App;
use crate::auth::Refusal;
use crate::store::cache::Cached;
use crate::store::{self, facts};
use alloy::primitives::{Address, B256};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medrec_protocol::access_log::Access;
use medrec_protocol::envelope::{SIGNATURE_HEADER, UPLOAD_HEADER};
use medrec_protocol::records::{
    EraseRequest, Erased, FHIR_JSON, OPENING_HEADER, Opening, RecordList, RecordListRequest,
    Uploaded, is_fhir, record_id,
};
use medrec_protocol::{ErrorCode, RecordRequest, Signed, SignedRequest, Upload};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// `POST /v1/records`: stores a FHIR record its holder signed for, sealed; 201 when stored
/// now, 200 when it was there already.
pub async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    req: Request,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let upload: Upload = header(UPLOAD_HEADER)
        .and_then(|v| serde_json::from_str(v).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Malformed,
                "missing or bad x-medrec-upload header",
            )
        })?;
    let signature = header(SIGNATURE_HEADER)
        .ok_or_else(|| ApiError::new(ErrorCode::Malformed, "missing x-medrec-signature header"))?;
    app.auth
        .verify_upload(&upload, signature)
        .map_err(|why| ApiError::new(ErrorCode::Denied, why.to_string()))?;
    let bytes = limited(req.into_body(), app.limits.max_record_bytes)
        .await
        .ok_or_else(|| ApiError::new(ErrorCode::TooLarge, "record too large"))?;
    let hash = B256::from_slice(&Sha256::digest(&bytes));
    if hash != upload.contentHash {
        return Err(ApiError::new(
            ErrorCode::HashMismatch,
            "the body does not hash to contentHash",
        ));
    }
    if !is_fhir(&bytes) {
        return Err(ApiError::new(
            ErrorCode::NotFhir,
            "a record must be a FHIR R4 JSON resource",
        ));
    }
    if upload.category > 63 {
        return Err(ApiError::new(
            ErrorCode::BadCategory,
            "category must be 0 to 63",
        ));
    }
    let nonce = B256::from(upload.nonce.to_be_bytes::<32>());
    match store::use_upload_nonce(&app.pool, nonce).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::new(
                ErrorCode::Denied,
                "upload nonce already used",
            ));
        }
        Err(_) => return Err(ApiError::unavailable("try again later")),
    }
    let unavailable = |_| ApiError::unavailable("try again later");
    // One copy per document of a patient: a repeated upload gets the record kept, with the
    // opening its pointer was (or will be) anchored with.
    let existing = store::find_record(&app.pool, upload.patient, hash)
        .await
        .map_err(unavailable)?;
    let (id, opening, stored) = match existing {
        Some((id, opening)) => (id, opening, false),
        None => {
            // A fresh random salt per record: the pointer's commitment hides the category and
            // the content from everyone without it.
            let opening = Opening::new(upload.category);
            let id = record_id(
                app.holder,
                upload.patient,
                opening.commit(upload.patient, app.holder, hash),
            );
            let sealed = app
                .key
                .seal(id.as_slice(), &bytes)
                .map_err(|_| ApiError::new(ErrorCode::Internal, "encryption failed"))?;
            let facts = serde_json::from_slice::<serde_json::Value>(&bytes)
                .map(|v| facts::extract(&v))
                .unwrap_or_default();
            let stored = store::insert_record(
                &app.pool,
                id,
                &upload,
                opening.salt,
                bytes.len(),
                &sealed,
                &facts,
            )
            .await
            .map_err(unavailable)?;
            if stored {
                (id, opening, true)
            } else {
                // Another upload of the same document won the race: answer with its record.
                let (id, opening) = store::find_record(&app.pool, upload.patient, hash)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| ApiError::unavailable("try again later"))?;
                (id, opening, false)
            }
        }
    };
    Ok((
        if stored {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(Uploaded {
            record_id: id,
            content_hash: hash,
            commitment: opening.commit(upload.patient, app.holder, hash),
            opening,
            size: bytes.len() as u64,
            stored,
        }),
    ))
}

/// `POST /v1/records/{id}/read`: the exact stored bytes, when every check passes and the
/// chain allows the requester to read the record's category of its patient now, with the
/// record's opening (category and salt) in the [`OPENING_HEADER`]: the requester checks the
/// bytes and the opening against the pointer's commitment on chain.
pub async fn read(State(app): State<Arc<App>>, Path(id): Path<String>, req: Request) -> Response {
    let mut access = Access {
        requester: Address::ZERO,
        record_id: id.parse().unwrap_or_default(),
        patient: Address::ZERO,
        allowed: false,
        reason: String::new(),
        nonce: B256::ZERO,
        expires_at: 0,
    };
    let mut unlogged = None;
    let outcome = decide(&app, &mut access, &mut unlogged, req.into_body()).await;
    match unlogged {
        // Not a request signed for this holder: it concerns no one here, so it is counted,
        // not written (anyone could otherwise fill the log).
        Some(why) => app.log.count_unlogged(why),
        // Log first: an answer that cannot be logged is not given.
        None => match app.log.append(&access).await {
            Err(e) => {
                tracing::error!(target: "medrec::gatekeeper", error = %e, "cannot write the access log");
                return ApiError::unavailable("the access log is unavailable").into_response();
            }
            // Erased meanwhile (by this replica or another): logged refused, not answered.
            Ok(true) => {
                app.records.remove(&access.record_id);
                return erased().into_response();
            }
            Ok(false) => {}
        },
    }
    match outcome {
        Ok((bytes, opening)) => (
            [
                (header::CONTENT_TYPE, FHIR_JSON.to_string()),
                (
                    header::HeaderName::from_static(OPENING_HEADER),
                    opening.to_header(),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/records/{id}/erase`: the holder's signed order to erase a record. Its data key,
/// ciphertext, content hash, salt, category and size are destroyed and its research facts and
/// demographics deleted in one transaction, it leaves this replica's memory, and the access log gets the
/// holder's `erased` entry; a read logged after that is refused ([`AccessLog::append`]),
/// whichever replica serves it. Erasing again answers the same (`erasedNow` false) and adds
/// the log entry if an earlier attempt could not: a retry finishes the job.
///
/// [`AccessLog::append`]: crate::access_log::AccessLog::append
pub async fn erase(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Erased>, ApiError> {
    let signed: Signed<EraseRequest> =
        json_body(req.into_body(), app.limits.max_request_bytes, ENVELOPE).await?;
    let r = &signed.request;
    if r.holder != app.holder || id.parse::<B256>().ok() != Some(r.recordId) {
        return Err(ApiError::denied());
    }
    app.auth
        .verify(&signed, Some(&app.rate))
        .map_err(|_| ApiError::denied())?;
    let unavailable = |_| ApiError::unavailable("try again later");
    let Some((patient, erased_now)) = store::erase_record(&app.pool, r.recordId)
        .await
        .map_err(unavailable)?
    else {
        return Err(ApiError::new(
            ErrorCode::NoSuchRecord,
            "no such record here",
        ));
    };
    app.records.remove(&r.recordId);
    if erased_now
        || !store::erasure_logged(&app.pool, r.recordId, app.holder)
            .await
            .map_err(unavailable)?
    {
        let entry = Access {
            requester: app.holder,
            record_id: r.recordId,
            patient,
            allowed: false,
            reason: medrec_protocol::records::ERASURE_REASON.into(),
            nonce: r.nonce_word(),
            expires_at: r.expiresAt,
        };
        app.log
            .append(&entry)
            .await
            .map_err(|_| ApiError::unavailable("the access log is unavailable; erase again"))?;
    }
    Ok(Json(Erased {
        record_id: r.recordId,
        patient,
        erased_now,
    }))
}

/// `POST /v1/records/list`: the records of a patient kept here that the signed requester may
/// read now, with their categories and openings: the patient all of them, a live guardian
/// those within their scope, a grantee (or a provider under break-glass) those of the
/// categories the chain lets it read now. Anyone else gets an empty list, the same answer as
/// for a patient with no records here.
pub async fn list(State(app): State<Arc<App>>, req: Request) -> Result<Json<RecordList>, ApiError> {
    let signed: Signed<RecordListRequest> =
        json_body(req.into_body(), app.limits.max_request_bytes, ENVELOPE).await?;
    app.auth
        .verify(&signed, Some(&app.rate))
        .map_err(|why| match why {
            Refusal::RateLimited => ApiError::new(ErrorCode::RateLimited, "too many requests"),
            _ => ApiError::denied(),
        })?;
    let (who, patient) = (signed.request.requester, signed.request.patient);
    let mask = if who == patient {
        u64::MAX
    } else {
        readable_by(&app, who, patient).await?
    };
    let mut records = vec![];
    if mask != 0 {
        records = store::list_records(&app.pool, patient)
            .await
            .map_err(|_| ApiError::unavailable("try again later"))?;
        // Only rows whose opening makes their record id: a category changed in the database
        // neither widens nor misnames the list (as a read refuses such a row).
        let holder = app.holder;
        records.retain(|r| {
            r.opening.category < 64
                && mask & (1u64 << r.opening.category) != 0
                && record_id(
                    holder,
                    patient,
                    r.opening.commit(patient, holder, r.content_hash),
                ) == r.record_id
        });
    }
    Ok(Json(RecordList {
        holder: app.holder,
        patient,
        records,
    }))
}

/// The categories of `patient` that `who` may see now, asked of the chain at its latest block:
/// those it may read (a grant or break-glass) and, if it is their live guardian, its scope.
async fn readable_by(app: &App, who: Address, patient: Address) -> Result<u64, ApiError> {
    if app.head.stale().is_some() {
        return Err(ApiError::new(
            ErrorCode::ChainStale,
            "the holder's node is behind; try again later",
        ));
    }
    let unavailable = |_| ApiError::unavailable("try again later");
    let readable = app
        .consent
        .readableCategories(who, patient)
        .call()
        .await
        .map_err(unavailable)?;
    let g = app
        .consent
        .guardianOf(patient, who)
        .call()
        .await
        .map_err(unavailable)?;
    let now = medrec_protocol::clock::now_secs();
    let live = g.scope != 0 && g.notBefore.to::<u64>() <= now && now < g.expiresAt.to::<u64>();
    Ok(readable | if live { g.scope } else { 0 })
}

/// Runs every check of a read; fills `a` with what the log must say, or `unlogged` with why
/// the request gets no entry.
async fn decide(
    app: &App,
    a: &mut Access,
    unlogged: &mut Option<Unlogged>,
    body: Body,
) -> Result<(Vec<u8>, Opening), ApiError> {
    let Some(bytes) = limited(body, app.limits.max_request_bytes).await else {
        *unlogged = Some(Unlogged::Oversized);
        return Err(ApiError::new(ErrorCode::TooLarge, "request body too large"));
    };
    let Ok(signed) = serde_json::from_slice::<Signed<RecordRequest>>(&bytes) else {
        *unlogged = Some(Unlogged::Malformed);
        return Err(ApiError::new(ErrorCode::Malformed, ENVELOPE));
    };
    let r = &signed.request;
    a.requester = r.requester;
    a.nonce = r.nonce_word();
    a.expires_at = r.expiresAt;
    if r.recordId != a.record_id {
        // Logged under whoever signed it, when someone did and for this holder.
        match app.auth.signer_of(&signed) {
            None => *unlogged = Some(Unlogged::Unsigned),
            Some(_) if r.audience != app.holder => *unlogged = Some(Unlogged::WrongAudience),
            Some(signer) => a.requester = signer,
        }
        a.reason = "record id differs from the path".into();
        return Err(ApiError::denied());
    }
    if let Err(why) = app.auth.verify(&signed, Some(&app.rate)) {
        a.reason = why.to_string();
        // The entry goes under the key that signed the request, never under the requester it
        // merely names: no one can put a refused read in another's name in the log.
        match why {
            Refusal::WrongSigner(signer) if r.audience == app.holder => a.requester = signer,
            Refusal::WrongSigner(_) | Refusal::WrongAudience => {
                *unlogged = Some(Unlogged::WrongAudience)
            }
            Refusal::InvalidSignature => *unlogged = Some(Unlogged::Unsigned),
            _ => {}
        }
        return Err(match why {
            Refusal::RateLimited => ApiError::new(ErrorCode::RateLimited, "too many requests"),
            _ => ApiError::denied(),
        });
    }
    // The chain decides before anything about the row is told: a requester it lets read none
    // of the patient's records gets the same 403 for a live, an unknown, an erased or a
    // damaged record.
    let (record, fetched) = match load(app, a).await? {
        Loaded::Record(record, fetched) => (record, fetched),
        Loaded::Erased(patient) => {
            a.patient = patient;
            a.reason = medrec_protocol::records::ERASED_READ_REASON.into();
            // The tombstone keeps no category: `410 erased` goes to the patient and to whoever
            // the chain lets read some category of theirs now (what a pointer on chain and its
            // PointerErased tell such a reader anyway), `403` to everyone else.
            let entitled =
                a.requester == patient || readable_by(app, a.requester, patient).await? != 0;
            return Err(if entitled {
                erased()
            } else {
                ApiError::denied()
            });
        }
    };
    a.patient = record.patient;
    chain_allows(app, a, &record).await?;
    // The category this read was checked with must be the one the pointer on chain commits to:
    // the record id (the ciphertext's associated data) is made from the commitment of the
    // stored opening. A row whose category or salt was changed is refused, not served to a
    // grantee of the other category.
    let commitment = record
        .opening
        .commit(record.patient, app.holder, record.content_hash);
    if record_id(app.holder, record.patient, commitment) != a.record_id {
        a.reason = "the stored opening does not make the record id".into();
        return Err(ApiError::new(
            ErrorCode::Integrity,
            "the stored record is damaged",
        ));
    }
    match app.key.open(a.record_id.as_slice(), &record.sealed) {
        Ok(plain) => {
            // Kept only once the chain allowed a read of it: requests that are refused do
            // not decide what stays in memory.
            if fetched {
                app.records.put(a.record_id, record.clone());
            }
            a.allowed = true;
            a.reason = "allowed".into();
            Ok((plain, record.opening))
        }
        Err(e) => {
            a.reason = e.to_string();
            Err(ApiError::new(
                ErrorCode::Integrity,
                "the stored record is damaged",
            ))
        }
    }
}

/// The answer to a read of an erased record.
fn erased() -> ApiError {
    ApiError::new(ErrorCode::Erased, "the record was erased by its holder")
}

/// A record as [`load`] finds it.
enum Loaded {
    /// Kept, from memory or else from the database (then `true`: not kept in memory yet).
    Record(Arc<Cached>, bool),
    /// Erased by the holder: its tombstone's patient.
    Erased(Address),
}

/// The record `a` names; an unknown one is refused (403) and a database failure is 503.
async fn load(app: &App, a: &mut Access) -> Result<Loaded, ApiError> {
    if let Some(r) = app.records.get(&a.record_id) {
        return Ok(Loaded::Record(r, false));
    }
    match store::fetch_record(&app.pool, a.record_id).await {
        Ok(Some(store::Fetched::Record(r))) => Ok(Loaded::Record(Arc::new(r), true)),
        Ok(Some(store::Fetched::Erased(patient))) => Ok(Loaded::Erased(patient)),
        Ok(None) => {
            a.reason = "unknown record".into();
            Err(ApiError::denied())
        }
        Err(e) => {
            a.reason = format!("database: {e}");
            Err(ApiError::unavailable("try again later"))
        }
    }
}

/// Asks the chain itself, now, whether the requester may read the record's category of its
/// patient: a cache could miss a revocation. Not while the node's latest block is too old:
/// its answer would be as of then (an expired or revoked grant still live).
async fn chain_allows(app: &App, a: &mut Access, record: &Cached) -> Result<(), ApiError> {
    if let Some(age) = app.head.stale() {
        a.reason = format!("the chain's latest block is {age} s old");
        return Err(ApiError::new(
            ErrorCode::ChainStale,
            "the holder's node is behind; try again later",
        ));
    }
    // The mask, not canRead(category): the node answering must not learn the category that
    // the chain's commitments hide (issue 16).
    match app
        .consent
        .readableCategories(a.requester, record.patient)
        .call()
        .await
        .map(|mask| medrec_bindings::mask_covers(mask, record.opening.category))
    {
        Ok(true) => Ok(()),
        Ok(false) => {
            a.reason = "the chain does not allow it".into();
            Err(ApiError::denied())
        }
        Err(e) => {
            a.reason = format!("chain unavailable: {e}");
            Err(ApiError::unavailable("try again later"))
        }
    }
}
