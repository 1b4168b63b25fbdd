//! A chain, a database and a running gatekeeper per test: what only the gatekeeper's tests
//! need on top of `medrec-test-support`.

use alloy::primitives::{Address, B256, U256, aliases::U40};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use medrec_bindings::ConsentRegistry;
use medrec_protocol::RecordRequest;
use medrec_protocol::clock::READ_VALIDITY_SECS;
use medrec_protocol::health::{HEALTH_PATH, Health};
use medrec_protocol::records::{read_url, record_id};
use medrec_test_support::{Anvil, Gatekeeper, PROVIDER, ScratchDb, signed_body};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use medrec_protocol::envelope::random_nonce;
pub use medrec_test_support::{Mined, Proc, now};

pub struct World {
    pub dir: tempfile::TempDir,
    pub rpc: String,
    pub gov: PrivateKeySigner,
    pub participants: Address,
    pub consent: Address,
    pub records: Address,
    pub studies: Address,
    pub domain: Eip712Domain,
    pub gk_url: String,
    pub gk_holder: PrivateKeySigner,
    pub http: alloy::transports::http::reqwest::Client,
    deployments: PathBuf,
    // Dropped in this order: the gatekeepers before their databases.
    _gk: Option<Proc>,
    extra_dbs: Vec<ScratchDb>,
    db: ScratchDb,
    _anvil: Anvil,
}

impl World {
    /// anvil + contracts + a credentialed holder running its gatekeeper.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let anvil = Anvil::start(&[]);
        let rpc = anvil.url();
        let gov = medrec_test_support::gov();
        let p = provider(&rpc, &gov);
        let deployments = dir.path().join("deployment.json");
        let d = medrec_test_support::deploy(&p, gov.address(), &deployments).await;
        let db = ScratchDb::create("medrec_gk_it").await;
        let gk_holder = PrivateKeySigner::random();
        let mut w = World {
            dir,
            rpc,
            gov,
            participants: d.participant_registry,
            consent: d.consent_registry,
            records: d.record_registry,
            studies: d.study_registry.unwrap(),
            domain: medrec_bindings::gatekeeper_domain(d.chain_id, d.record_registry),
            gk_url: String::new(),
            gk_holder: gk_holder.clone(),
            http: alloy::transports::http::reqwest::Client::new(),
            deployments,
            _gk: None,
            extra_dbs: vec![],
            db,
            _anvil: anvil,
        };
        w.fund(gk_holder.address()).await;
        w.credential(gk_holder.address()).await;
        w.start_gatekeeper(&[]).await;
        w
    }

    pub fn db_url(&self) -> String {
        self.db.url.clone()
    }

    /// (Re)starts the world's own gatekeeper with `extra` arguments.
    pub async fn start_gatekeeper(&mut self, extra: &[&str]) {
        self._gk.take();
        let key = self.dir.path().join("master.key");
        if !key.exists() {
            std::fs::write(&key, alloy::hex::encode([42u8; 32])).unwrap();
        }
        let (gk, url) = self
            .gatekeeper(self.gk_holder.address(), &self.db_url(), &key)
            .start(extra)
            .await;
        self._gk = Some(gk);
        // Requesters read only at the endpoint the holder registered on chain.
        medrec_test_support::register_holder(
            &self.as_(&self.gk_holder),
            self.records,
            &url,
            self.gk_holder.address(),
        )
        .await;
        self.gk_url = url;
    }

    fn gatekeeper<'a>(
        &'a self,
        holder: Address,
        database_url: &'a str,
        master_key: &'a std::path::Path,
    ) -> Gatekeeper<'a> {
        Gatekeeper {
            bin: std::path::Path::new(env!("CARGO_BIN_EXE_medrec-gatekeeper")),
            holder,
            database_url,
            rpc_url: &self.rpc,
            master_key,
            deployments: &self.deployments,
        }
    }

    /// The access log's size and root, as the holder reads them (a signed `/v1/log` page).
    pub async fn log_head(&self) -> (u64, B256) {
        use medrec_protocol::access_log::{LOG_PATH, LogPage, LogQuery};
        let t = medrec_test_support::now();
        let req = medrec_protocol::LogRequest {
            patient: self.gk_holder.address(),
            audience: self.gk_holder.address(),
            nonce: random_nonce(),
            issuedAt: t,
            expiresAt: t + READ_VALIDITY_SECS,
        };
        let q = LogQuery {
            signed: medrec_protocol::Signed::sign(req, &self.gk_holder, &self.domain)
                .await
                .unwrap(),
            size: None,
            from: 0,
            limit: Some(1),
            consistency: vec![],
        };
        let (status, body) = self
            .post(
                &format!("{}{LOG_PATH}", self.gk_url),
                serde_json::to_vec(&q).unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let page: LogPage = serde_json::from_slice(&body).unwrap();
        (page.size, page.root)
    }

    /// The health of the gatekeeper at `url`.
    pub async fn health(&self, url: &str) -> Health {
        let r = self
            .http
            .get(format!("{url}{HEALTH_PATH}"))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    pub fn as_(&self, who: &PrivateKeySigner) -> DynProvider {
        provider(&self.rpc, who)
    }

    pub async fn fund(&self, a: Address) {
        medrec_test_support::fund(&self.as_(&self.gov), a).await;
    }

    pub async fn credential(&self, a: Address) {
        self.credential_as(a, PROVIDER).await;
    }

    /// Credentials `a` as a provider (1) or researcher (2).
    pub async fn credential_as(&self, a: Address, role: u8) {
        let gov = self.as_(&self.gov);
        medrec_test_support::credential(&gov, self.participants, a, role, now() + 365 * 86_400)
            .await;
    }

    /// A funded new account.
    pub async fn account(&self) -> PrivateKeySigner {
        let s = PrivateKeySigner::random();
        self.fund(s.address()).await;
        s
    }

    pub async fn grant(
        &self,
        patient: &PrivateKeySigner,
        grantee: Address,
        categories: u64,
        secs: u64,
    ) -> u64 {
        let c = ConsentRegistry::new(self.consent, self.as_(patient));
        let r = c
            .grant(
                patient.address(),
                grantee,
                categories,
                1,
                U40::from(0u64),
                U40::from(now() + secs),
            )
            .mined()
            .await;
        assert!(r.status());
        r.block_number.unwrap()
    }

    /// `patient` names `guardian` over `scope` for `secs` from now.
    pub async fn set_guardian(
        &self,
        patient: &PrivateKeySigner,
        guardian: Address,
        scope: u64,
        secs: u64,
    ) {
        let c = ConsentRegistry::new(self.consent, self.as_(patient));
        let r = c
            .setGuardian(guardian, scope, U40::from(0u64), U40::from(now() + secs))
            .mined()
            .await;
        assert!(r.status());
    }

    /// The records of `patient` that `who` may read here, as the listing answers them: the
    /// status and the answer.
    pub async fn list_as(
        &self,
        who: &PrivateKeySigner,
        patient: Address,
    ) -> (u16, Option<medrec_protocol::records::RecordList>) {
        let t = now();
        let req = medrec_protocol::records::RecordListRequest {
            requester: who.address(),
            patient,
            audience: self.gk_holder.address(),
            nonce: random_nonce(),
            issuedAt: t,
            expiresAt: t + READ_VALIDITY_SECS,
        };
        let body = signed_body(who, req, &self.domain).await;
        let url = format!("{}{}", self.gk_url, medrec_protocol::records::LIST_PATH);
        let (status, bytes) = self.post(&url, body.into_bytes()).await;
        (status, serde_json::from_slice(&bytes).ok())
    }

    pub async fn revoke(&self, patient: &PrivateKeySigner, grantee: Address) {
        let c = ConsentRegistry::new(self.consent, self.as_(patient));
        c.revoke(patient.address(), grantee).mined().await;
    }

    /// Creates an empty database for another holder's gatekeeper; returns its URL.
    pub async fn extra_db(&mut self, suffix: &str) -> String {
        let db = ScratchDb::create(&format!("medrec_gk_it_{suffix}")).await;
        let url = db.url.clone();
        self.extra_dbs.push(db);
        url
    }

    /// Starts a gatekeeper for `holder` on `db_url`; returns it and its URL.
    pub async fn spawn_gatekeeper(
        &self,
        holder: Address,
        db_url: &str,
        extra: &[&str],
    ) -> (Proc, String) {
        let key = self.dir.path().join(format!("master-{holder}.key"));
        std::fs::write(&key, alloy::hex::encode([43u8; 32])).unwrap();
        self.gatekeeper(holder, db_url, &key).start(extra).await
    }

    /// Uploads `bytes` for `patient` as `holder` to the gatekeeper at `url`.
    pub async fn upload_to(
        &self,
        holder: &PrivateKeySigner,
        url: &str,
        patient: Address,
        category: u8,
        bytes: &[u8],
    ) -> B256 {
        let up = medrec_test_support::upload(
            &self.http,
            url,
            &self.domain,
            holder,
            patient,
            category,
            bytes,
            random_nonce(),
        );
        let stored = up.await;
        let hash = B256::from_slice(&<sha2::Sha256 as sha2::Digest>::digest(bytes));
        assert_eq!(stored.content_hash, hash);
        // The gatekeeper chose the salt; the commitment and the id follow from the opening.
        let commitment = stored.opening.commit(patient, holder.address(), hash);
        assert_eq!(stored.commitment, commitment);
        assert_eq!(
            stored.record_id,
            record_id(holder.address(), patient, commitment)
        );
        stored.record_id
    }

    /// Uploads `bytes` for `patient` as the holder; returns the record id.
    pub async fn upload(&self, patient: Address, category: u8, bytes: &[u8]) -> B256 {
        self.upload_to(&self.gk_holder, &self.gk_url, patient, category, bytes)
            .await
    }

    /// A read request signed by `signer` (who may differ from `requester`).
    #[allow(clippy::too_many_arguments)]
    pub async fn read_as(
        &self,
        signer: &PrivateKeySigner,
        requester: Address,
        id: B256,
        audience: Address,
        issued: u64,
        expires: u64,
        nonce: U256,
    ) -> (u16, Vec<u8>) {
        let req = RecordRequest {
            requester,
            recordId: id,
            audience,
            nonce,
            issuedAt: issued,
            expiresAt: expires,
        };
        let body = signed_body(signer, req, &self.domain).await;
        self.post(&self.read_url(id), body.into_bytes()).await
    }

    /// A fresh, well-formed read by `who`: its status, body and the opening it carries.
    pub async fn read_with_opening(
        &self,
        who: &PrivateKeySigner,
        id: B256,
    ) -> (u16, Vec<u8>, Option<medrec_protocol::records::Opening>) {
        let t = now();
        let req = RecordRequest {
            requester: who.address(),
            recordId: id,
            audience: self.gk_holder.address(),
            nonce: random_nonce(),
            issuedAt: t,
            expiresAt: t + READ_VALIDITY_SECS,
        };
        let body = signed_body(who, req, &self.domain).await;
        let resp = self
            .http
            .post(self.read_url(id))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let opening = resp
            .headers()
            .get(medrec_protocol::records::OPENING_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(medrec_protocol::records::Opening::from_header);
        (status, resp.bytes().await.unwrap().to_vec(), opening)
    }

    /// A fresh, well-formed read by `who`.
    pub async fn read(&self, who: &PrivateKeySigner, id: B256) -> (u16, Vec<u8>) {
        let t = now();
        self.read_as(
            who,
            who.address(),
            id,
            self.gk_holder.address(),
            t,
            t + READ_VALIDITY_SECS,
            random_nonce(),
        )
        .await
    }

    /// Where the world's gatekeeper serves reads of record `id`.
    pub fn read_url(&self, id: B256) -> String {
        read_url(&self.gk_url, id)
    }

    /// POSTs `body` as it is to `url`; the status and the answer's bytes.
    pub async fn post(&self, url: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let r = self.http.post(url).body(body).send().await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// The access log rows: (requester, allowed, reason).
    pub async fn log(&self) -> Vec<(Address, bool, String)> {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.db_url()).await.unwrap();
        let rows: Vec<(Vec<u8>, bool, String)> =
            sqlx::query_as("SELECT requester, allowed, reason FROM gk_access_log ORDER BY seq")
                .fetch_all(&mut c)
                .await
                .unwrap();
        rows.into_iter()
            .map(|(r, a, why)| (Address::from_slice(&r), a, why))
            .collect()
    }

    /// The access log rows as (seq, access, at_ms), to recompute hashes.
    pub async fn log_rows(&self) -> Vec<(u64, medrec_protocol::access_log::Access, u64)> {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.db_url()).await.unwrap();
        type Row = (i64, i64, Vec<u8>, Vec<u8>, Vec<u8>, bool, String, Vec<u8>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at_ms, requester, record_id, patient, allowed, reason, nonce FROM gk_access_log ORDER BY seq",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(seq, at, r, id, p, allowed, reason, nonce)| {
                let a = medrec_protocol::access_log::Access {
                    requester: Address::from_slice(&r),
                    record_id: B256::from_slice(&id),
                    patient: Address::from_slice(&p),
                    allowed,
                    reason,
                    nonce: B256::from_slice(&nonce),
                    expires_at: 0,
                };
                (seq as u64, a, at as u64)
            })
            .collect()
    }

    /// The gatekeeper's counters of read requests refused without a log entry, as
    /// "reason count".
    pub async fn unlogged(&self) -> Vec<String> {
        let text = self
            .http
            .get(format!("{}/metrics", self.gk_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("medrec_gatekeeper_unlogged_requests_total{reason=\"")?;
                let (reason, n) = rest.split_once("\"} ")?;
                Some(format!("{reason} {n}"))
            })
            .collect()
    }

    /// Stops the world's own gatekeeper.
    pub fn stop_gatekeeper(&mut self) {
        self._gk.take();
    }

    /// The record registry's address.
    pub fn records_address(&self) -> Address {
        self.records
    }

    /// Runs SQL on the gatekeeper's database.
    pub async fn sql(&self, sql: String) {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.db_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

pub fn provider(rpc: &str, who: &PrivateKeySigner) -> DynProvider {
    medrec_test_support::wallet_provider(rpc, who, Duration::from_millis(20))
}

/// Official HL7 FHIR R4 examples (npm hl7.fhir.r4.examples), installed by `npm ci`.
pub fn fhir_example(name: &str) -> Vec<u8> {
    let p = medrec_test_support::repo_root()
        .join("node_modules/hl7.fhir.r4.examples")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run npm ci)", p.display()))
}

/// The `medrec` binary built beside the gatekeeper.
pub fn medrec_cli() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_BIN_EXE_medrec-gatekeeper")).with_file_name("medrec");
    assert!(
        p.exists(),
        "{} missing: build the workspace (cargo build --workspace)",
        p.display()
    );
    p
}

/// Imports `key` as keystore `name` through the CLI (password file "pw" unless one exists).
pub fn import_key(w: &World, name: &str, key: &PrivateKeySigner) {
    let dir = w.dir.path();
    if !dir.join("password").exists() {
        std::fs::write(dir.join("password"), "pw\n").unwrap();
    }
    medrec_test_support::import_key(cli(w), dir, name, key);
}

/// The `medrec` CLI with this world's settings.
fn cli(w: &World) -> Command {
    let mut c =
        medrec_test_support::medrec_command(&medrec_cli(), w.dir.path(), &w.rpc, &w.deployments);
    c.env("MEDREC_GATEKEEPER_URL", &w.gk_url);
    c
}

/// Runs the `medrec` CLI with this world's settings.
pub fn run_cli(w: &World, args: &[&str]) -> std::process::Output {
    cli(w).args(args).output().unwrap()
}
