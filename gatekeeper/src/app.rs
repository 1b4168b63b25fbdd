//! The service's state, built once from its settings: the database (migrated), the chain,
//! the master key, the access log's writer, the signed-request verifier, the record cache,
//! and, with the holder's keystore, research and the anchoring of the log head.

use crate::access_log::{self, AccessLog};
use crate::auth::{RateLimiter, Verifier};
use crate::config::{self, Limits, ServeArgs};
use crate::error::GkError;
use crate::head::{self, Head};
use crate::research::Research;
use crate::research::follower::{self, OptIns};
use crate::store::cache::RecordCache;
use crate::store::crypto::MasterKey;
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use medrec_bindings::ConsentRegistry::ConsentRegistryInstance;
use medrec_bindings::deployment::Deployment;
use medrec_protocol::clock;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Everything a request handler needs.
pub struct App {
    /// The records and the log.
    pub pool: PgPool,
    /// The master key.
    pub key: MasterKey,
    /// The holder this gatekeeper serves for (uploads must be signed by it).
    pub holder: Address,
    /// The consent registry, asked at every read.
    pub consent: ConsentRegistryInstance<DynProvider>,
    /// Limits.
    pub limits: Limits,
    /// Checks signed requests.
    pub auth: Verifier,
    /// Reads per requester.
    pub rate: RateLimiter,
    /// The access log.
    pub log: Arc<AccessLog>,
    /// Records served, kept sealed.
    pub records: RecordCache,
    /// Research, when the gatekeeper has the holder's key to sign answers.
    pub research: Option<Arc<Research>>,
    /// The node's latest block: reads stop while it is too old.
    pub head: Arc<Head>,
}

fn config(what: impl std::fmt::Display) -> GkError {
    GkError::Config(what.to_string())
}

impl App {
    /// Connects to the chain and the database, loads the log head and the live nonces, and
    /// starts the background tasks (log writer; with a keystore, the opt-in follower and the
    /// anchor loop).
    pub async fn build(a: &ServeArgs) -> Result<Arc<Self>, GkError> {
        let holder: Address = a
            .holder
            .parse()
            .map_err(|_| config(format!("bad holder address {:?}", a.holder)))?;
        let limits = Limits::from(a);
        let rate = RateLimiter::new(limits.rate_per_sec, limits.burst)
            .ok_or_else(|| config("--rate-per-sec must be above 0 and --burst at least 1"))?;
        let key = MasterKey::load(&a.master_key_file)?;
        let url: alloy::transports::http::reqwest::Url = a
            .rpc_url
            .parse()
            .map_err(|_| config(format!("bad RPC URL {:?}", a.rpc_url)))?;
        let provider = ProviderBuilder::new().connect_http(url.clone()).erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| GkError::Chain(format!("cannot reach {}: {e}", a.rpc_url)))?;
        let d = medrec_bindings::deployment::read(&a.deployments, chain_id).map_err(config)?;
        let head = Arc::new(
            Head::fetch(&provider, a.max_head_age)
                .await
                .map_err(|e| GkError::Chain(format!("cannot read {}: {e}", a.rpc_url)))?,
        );
        tokio::spawn(head::follow(
            head.clone(),
            provider.clone(),
            config::HEAD_EVERY,
        ));
        let pool = connect(&a.database_url).await?;
        let log = Arc::new(AccessLog::start(pool.clone()).await?);
        let nonces = access_log::live_nonces(&pool, clock::now_secs()).await?;
        let domain = medrec_bindings::gatekeeper_domain(chain_id, d.record_registry);
        let mut research = None;
        let mut anchor_key = None;
        let service = match &a.service_keystore {
            Some(keystore) => Some(service_key(a, keystore, &provider, &d, holder).await?),
            None => None,
        };
        if let Some(keystore) = &a.anchor_keystore {
            let signer = holder_key(a, keystore, holder)?;
            let wallet = ProviderBuilder::new()
                .wallet(alloy::network::EthereumWallet::from(signer.clone()))
                .connect_http(url.clone())
                .erased();
            // Opt-ins' slots are encrypted to the registered service key: the service's own,
            // or the holder's key when the holder registered itself as its service key.
            let slots = service.clone().unwrap_or_else(|| signer.clone());
            research = start_research(
                &d,
                &wallet,
                &pool,
                signer.clone(),
                &slots,
                chain_id,
                holder,
                a.research_max_pin_age,
                a.research_max_epsilon,
            );
            anchor_key = Some(signer);
        }
        if let Some(signer) = service {
            anchor_key = Some(signer);
        } else if anchor_key.is_some() {
            tracing::warn!(target: "medrec::gatekeeper", "anchoring the access log from the holder's own key: give the service its own with --service-keystore");
        }
        if let Some(signer) = anchor_key {
            let wallet = ProviderBuilder::new()
                .wallet(alloy::network::EthereumWallet::from(signer))
                .connect_http(url)
                .erased();
            let registry = medrec_bindings::RecordRegistry::new(d.record_registry, wallet);
            tokio::spawn(access_log::anchor_loop(
                log.clone(),
                holder,
                registry,
                Duration::from_secs(a.anchor_every.max(1)),
            ));
        }
        Ok(Arc::new(Self {
            consent: medrec_bindings::ConsentRegistry::new(d.consent_registry, provider),
            auth: Verifier::new(domain, holder, nonces),
            rate,
            records: RecordCache::new(limits.record_cache_bytes, limits.record_cache_ttl),
            pool,
            key,
            holder,
            limits,
            log,
            research,
            head,
        }))
    }
}

/// The holder's database, migrated. Every log entry is flushed to disk before its read is
/// answered, whatever the role's or database's default says.
async fn connect(database_url: &str) -> Result<PgPool, GkError> {
    let options: sqlx::postgres::PgConnectOptions = database_url
        .parse()
        .map_err(|e| config(format!("bad database URL: {e}")))?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(config::DB_CONNECTIONS)
        .connect_with(options.options([("synchronous_commit", "on")]))
        .await
        .map_err(|e| config(format!("cannot connect to the database: {e}")))?;
    sqlx::migrate!("../migrations/gatekeeper")
        .run(&pool)
        .await
        .map_err(|e| config(format!("migrations: {e}")))?;
    Ok(pool)
}

/// The holder's key from its keystore; it must be the holder's.
fn holder_key(
    a: &ServeArgs,
    keystore: &std::path::Path,
    holder: Address,
) -> Result<PrivateKeySigner, GkError> {
    let password_file = a
        .anchor_password_file
        .as_ref()
        .ok_or_else(|| config("--anchor-password-file is required"))?;
    let password = std::fs::read_to_string(password_file)
        .map_err(|e| config(format!("cannot read {}: {e}", password_file.display())))?;
    let signer =
        PrivateKeySigner::decrypt_keystore(keystore, password.lines().next().unwrap_or_default())
            .map_err(|e| config(format!("cannot decrypt {}: {e}", keystore.display())))?;
    if signer.address() != holder {
        return Err(config(format!(
            "the anchor keystore holds {}, not the holder {holder}",
            signer.address()
        )));
    }
    Ok(signer)
}

/// The service's own key from its keystore; the holder must have registered it on chain
/// (`RecordRegistry.gatekeeperOf`), or the anchors it sends would revert.
async fn service_key(
    a: &ServeArgs,
    keystore: &std::path::Path,
    provider: &DynProvider,
    d: &Deployment,
    holder: Address,
) -> Result<PrivateKeySigner, GkError> {
    let password_file = a
        .service_password_file
        .as_ref()
        .ok_or_else(|| config("--service-password-file is required"))?;
    let password = std::fs::read_to_string(password_file)
        .map_err(|e| config(format!("cannot read {}: {e}", password_file.display())))?;
    let signer =
        PrivateKeySigner::decrypt_keystore(keystore, password.lines().next().unwrap_or_default())
            .map_err(|e| config(format!("cannot decrypt {}: {e}", keystore.display())))?;
    let me = signer.address();
    let registered = medrec_bindings::RecordRegistry::new(d.record_registry, provider)
        .gatekeeperOf(holder)
        .call()
        .await
        .map_err(|e| GkError::Chain(format!("cannot read the holder's registration: {e}")))?;
    if registered.serviceKey != me {
        return Err(config(format!(
            "the service key {me} is not registered for the holder {holder} (registered: {}); the holder runs: medrec holder register --endpoint <this service's URL> --service-key {me}",
            if registered.serviceKey.is_zero() {
                "none".to_string()
            } else {
                registered.serviceKey.to_string()
            }
        )));
    }
    Ok(signer)
}

/// Research, when the deployment has a study registry; starts its opt-in follower, which opens
/// opt-ins' slots with `slots` (the registered service key).
#[allow(clippy::too_many_arguments)]
fn start_research(
    d: &Deployment,
    wallet: &DynProvider,
    pool: &PgPool,
    signer: PrivateKeySigner,
    slots: &PrivateKeySigner,
    chain_id: u64,
    holder: Address,
    max_pin_age: u64,
    max_epsilon: f64,
) -> Option<Arc<Research>> {
    let studies = d.study_registry?;
    let service_key = medrec_protocol::study_tags::ServiceKey::from_bytes(&slots.to_bytes())?;
    let key = follower::SlotKey {
        secret: service_key.clone(),
        chain_id,
        registry: studies,
        holder,
    };
    let opt_ins = Arc::new(OptIns::new(
        wallet.clone(),
        studies,
        Some(key),
        Some(pool.clone()),
    ));
    tokio::spawn(follower::follow(opt_ins.clone(), config::FOLLOW_EVERY));
    Some(Arc::new(Research {
        holder,
        participants: medrec_bindings::ParticipantRegistry::new(
            d.participant_registry,
            wallet.clone(),
        ),
        studies: medrec_bindings::StudyRegistry::new(studies, wallet.clone()),
        provider: wallet.clone(),
        signer,
        service_key: service_key.public_key(),
        opt_ins,
        max_pin_age,
        max_epsilon,
    }))
}
