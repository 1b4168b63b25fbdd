//! The medrec gatekeeper: run by each record holder, it keeps records encrypted at rest and
//! serves one only to a requester whose signed request passes every check and whom the chain
//! allows to read that category of that patient at that moment. Every read and denial of a
//! request signed for it goes into an access log, a Merkle tree whose root it anchors on chain,
//! which the patient checks.
//!
//! Modules by concern; no module imports its caller: [`config`] (settings and their
//! defaults), [`app`] (state built once), [`http`] (one module per route group), [`auth`]
//! (signed requests), [`access_log`], [`store`] (record SQL, encryption at rest, the record
//! cache), [`research`] (aggregate queries and the opt-in follower), [`head`] (how old the
//! node's latest block is), [`error`]. The wire types are `medrec_protocol`'s; the listener
//! (timeouts, connection limit) is `medrec_serve`'s.

pub mod access_log;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod head;
pub mod http;
pub mod research;
pub mod store;

use error::GkError;

/// Builds the service from `args` and serves it until it stops.
pub async fn serve(args: config::ServeArgs) -> Result<(), GkError> {
    let app = app::App::build(&args).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| GkError::Config(format!("cannot listen on {}: {e}", args.listen)))?;
    tracing::info!(target: "medrec::gatekeeper", listen = %args.listen, holder = %app.holder, "serving");
    medrec_serve::serve(listener, http::router(app), args.connections).await;
    Ok(())
}
