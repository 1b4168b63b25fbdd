//! `POST /v1/research/query`: a researcher's signed query, checked like every signed request
//! and against its hash, then answered by [`crate::research`]. `GET /v1/service-key`: the
//! public key patients encrypt this holder's slot of their study opt-ins to.

use super::body::json_body;
use super::error::ApiError;
use crate::app::App;
use axum::Json;
use axum::extract::{Request, State};
use medrec_protocol::research::{SignedAnswer, SignedQuery};
use medrec_protocol::study_tags::{ServiceKeyAnswer, address_of_public_key};
use medrec_protocol::{ErrorCode, Signed};
use std::sync::Arc;

/// `POST /v1/research/query`.
pub async fn query(
    State(app): State<Arc<App>>,
    req: Request,
) -> Result<Json<SignedAnswer>, ApiError> {
    let Some(research) = &app.research else {
        return Err(ApiError::new(
            ErrorCode::NoResearch,
            "this gatekeeper has no holder key to sign answers",
        ));
    };
    let SignedQuery {
        request,
        query,
        signature,
    } = json_body(
        req.into_body(),
        app.limits.max_query_bytes,
        "expected {\"request\", \"query\", \"signature\"}",
    )
    .await?;
    let signed = Signed { request, signature };
    app.auth
        .verify(&signed, None)
        .map_err(|_| ApiError::denied())?;
    if alloy::primitives::keccak256(query.as_bytes()) != signed.request.queryHash {
        return Err(ApiError::denied());
    }
    Ok(Json(
        research.answer(&app.pool, &signed.request, &query).await?,
    ))
}

/// `GET /v1/service-key`: public, as the chain's registration it must match.
pub async fn service_key(State(app): State<Arc<App>>) -> Result<Json<ServiceKeyAnswer>, ApiError> {
    let Some(research) = &app.research else {
        return Err(ApiError::new(
            ErrorCode::NoResearch,
            "this gatekeeper takes part in no research: it has no key to open opt-ins with",
        ));
    };
    let address = address_of_public_key(&research.service_key)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the service key is not a key"))?;
    Ok(Json(ServiceKeyAnswer {
        holder: research.holder,
        public_key: research.service_key.clone().into(),
        address,
    }))
}
