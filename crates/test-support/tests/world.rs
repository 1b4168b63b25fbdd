//! The support crate against the real things: anvil starts and takes the deployment, an
//! account is funded and credentialed, a scratch database exists until it is dropped.

#![allow(clippy::unwrap_used)]

use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use medrec_bindings::ParticipantRegistry;
use medrec_test_support::{
    Anvil, PROVIDER, ScratchDb, credential, database_url, deploy, fund, gov, now, wallet_provider,
};
use sqlx::Connection;
use std::time::Duration;

#[tokio::test]
async fn anvil_takes_the_deployment_and_credentials() {
    let anvil = Anvil::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let gov = gov();
    let p = wallet_provider(&anvil.url(), &gov, Duration::from_millis(10));
    let file = dir.path().join("deployment.json");
    let d = deploy(&p, gov.address(), &file).await;
    assert_eq!(d.chain_id, 31337);
    let written = medrec_bindings::deployment::read(&file, 31337).unwrap();
    assert_eq!(written.record_registry, d.record_registry);
    assert!(d.study_registry.is_some());

    let who = PrivateKeySigner::random().address();
    fund(&p, who).await;
    assert_eq!(
        p.get_balance(who).await.unwrap(),
        alloy::primitives::U256::from(10u128.pow(20))
    );
    credential(&p, d.participant_registry, who, PROVIDER, now() + 3_600).await;
    let registry = ParticipantRegistry::new(d.participant_registry, p.clone());
    assert!(registry.isCredentialed(who, PROVIDER).call().await.unwrap());
}

#[tokio::test]
async fn a_scratch_database_is_dropped_with_its_handle() {
    let db = ScratchDb::create("medrec_support_it").await;
    let name = db.name.clone();
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(one, 1);
    drop(c);
    drop(db);
    let mut admin = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "{name} is still there");
}
