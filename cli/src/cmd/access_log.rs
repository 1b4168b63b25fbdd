//! `medrec access-log`: a holder's access log, read page by page from its gatekeeper and
//! checked against every root the holder ever anchored on chain.
//!
//! The log is read only at the endpoint the holder registered on chain (`gatekeeperOf`), as
//! `get` reads records.
//!
//! Every `AccessLogAnchored` event of the holder is read (bounded block ranges from the
//! deployment on); each anchor must be consistent with the next, and the last with the tree
//! the gatekeeper serves (RFC 6962 consistency proofs), so a rewrite of any entry before any
//! anchor shows, and the error names the anchor it broke. A patient gets the entries of their
//! own records, each checked by its inclusion proof; the holder gets every entry and
//! recomputes the root from them all.

use super::anchor::scan_logs;
use super::records::{answer, client, refusal, sign};
use crate::chain::Chain;
use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::primitives::{Address, B256};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolEvent};
use alloy::transports::http::reqwest;
use clap::Args;
use medrec_bindings::RecordRegistry;
use medrec_protocol::LogRequest;
use medrec_protocol::access_log::{
    DEFAULT_PAGE, Entry, LOG_PATH, LogPage, LogQuery, MAX_CONSISTENCY, MAX_PAGE,
};
use medrec_protocol::clock::{READ_VALIDITY_SECS, now_secs};
use medrec_protocol::envelope::random_nonce;
use medrec_protocol::merkle::{RootBuilder, verify_consistency};
use serde_json::json;
use std::time::Duration;

/// `access-log`.
#[derive(Debug, Args)]
pub struct AccessLogArgs {
    /// The holder whose gatekeeper to ask (your own address, as the holder, reads every entry)
    #[arg(long)]
    pub holder: String,
    /// The gatekeeper URL you expect: refused unless it is the endpoint the holder registered
    /// on chain, where the log is read in any case
    #[arg(long)]
    pub gatekeeper_url: Option<String>,
    /// Entries asked for per page (at most 1000)
    #[arg(long, default_value_t = DEFAULT_PAGE)]
    pub page_size: u32,
}

/// One anchor of the holder's log, from its event.
#[derive(Debug, Clone)]
struct Anchor {
    root: B256,
    entries: u64,
    block: u64,
    tx: B256,
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the anchor of {} entries in block {} (tx {})",
            self.entries, self.block, self.tx
        )
    }
}

/// Asks the holder's gatekeeper, signing each page afresh.
struct Reader<'a> {
    http: reqwest::Client,
    url: String,
    base: &'a str,
    signer: &'a PrivateKeySigner,
    holder: Address,
    domain: Eip712Domain,
}

impl Reader<'_> {
    /// One page; a 429 is waited out (the gatekeeper limits log requests per requester).
    async fn page(
        &self,
        size: Option<u64>,
        from: u64,
        limit: u32,
        consistency: Vec<[u64; 2]>,
    ) -> Result<LogPage> {
        for attempt in 0.. {
            let issued = now_secs();
            let req = LogRequest {
                patient: self.signer.address(),
                audience: self.holder,
                nonce: random_nonce(),
                issuedAt: issued,
                expiresAt: issued + READ_VALIDITY_SECS,
            };
            let q = LogQuery {
                signed: sign(self.signer, req, &self.domain).await?,
                size,
                from,
                limit: Some(limit),
                consistency: consistency.clone(),
            };
            let resp = self
                .http
                .post(&self.url)
                .json(&q)
                .send()
                .await
                .map_err(|e| {
                    CliError::Rpc(format!("cannot reach the gatekeeper at {}: {e}", self.base))
                })?;
            if resp.status().as_u16() == 429 && attempt < 30 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            if !resp.status().is_success() {
                return Err(refusal("access log", resp).await);
            }
            return answer(resp, &format!("the gatekeeper at {}", self.base)).await;
        }
        unreachable!("the loop returns")
    }
}

/// Every `AccessLogAnchored` event of `holder`, in chain order.
async fn anchors(
    chain: &Chain,
    registry: Address,
    from: u64,
    holder: Address,
) -> Result<Vec<Anchor>> {
    let filter = Filter::new()
        .address(registry)
        .event_signature(RecordRegistry::AccessLogAnchored::SIGNATURE_HASH)
        .topic1(holder.into_word());
    let logs = scan_logs(chain, &filter, from, false).await?;
    logs.iter()
        .map(|log| {
            let ev = log
                .log_decode::<RecordRegistry::AccessLogAnchored>()
                .map_err(|e| CliError::Rpc(format!("cannot decode an anchor event: {e}")))?;
            Ok(Anchor {
                root: ev.inner.data.head,
                entries: ev.inner.data.entries,
                block: log.block_number.unwrap_or_default(),
                tx: log.transaction_hash.unwrap_or_default(),
            })
        })
        .collect()
}

fn rewritten(what: String) -> CliError {
    CliError::Integrity(format!("the access log was rewritten: {what}"))
}

/// Runs `access-log`.
pub async fn run(a: AccessLogArgs, settings: &Settings, out: Printer) -> Result<()> {
    let holder = units::address(&a.holder, "holder")?;
    if a.page_size == 0 || a.page_size > MAX_PAGE {
        return Err(CliError::input(format!(
            "--page-size must be 1 to {MAX_PAGE}"
        )));
    }
    let signer = keys::load(settings)?;
    let me = signer.address();
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    // Only the endpoint the holder registered on chain: the signed request names the patient
    // and must not go wherever a flag or the environment says.
    let base = super::holder::gatekeeper_url(&chain, &d, holder).await?;
    if let Some(given) = &a.gatekeeper_url {
        let same = super::holder::checked_endpoint(given.trim().trim_end_matches('/'))
            .is_ok_and(|g| g == base);
        if !same {
            return Err(CliError::input(format!(
                "--gatekeeper-url {given:?} is not the endpoint {holder} registered on chain ({base}); the log is read only there"
            )));
        }
    }
    let base = base.as_str();
    let reader = Reader {
        http: client()?,
        url: format!("{base}{LOG_PATH}"),
        base,
        signer: &signer,
        holder,
        domain: medrec_bindings::gatekeeper_domain(chain.chain_id, d.record_registry),
    };
    let all = anchors(&chain, d.record_registry, d.start_block, holder).await?;

    // The first page pins the tree size every later page and proof is against.
    let first = reader.page(None, 0, a.page_size, vec![]).await?;
    let (size, root, legacy) = (first.size, first.root, first.legacy_entries);
    // Anchors of at most `legacy` entries are heads of the log's old hash chain: no root of
    // the tree can match them.
    let (old_form, checked): (Vec<&Anchor>, Vec<&Anchor>) =
        all.iter().partition(|x| x.entries <= legacy);
    if let Some(cut) = checked.iter().find(|x| x.entries > size) {
        return Err(CliError::Integrity(format!(
            "the access log was cut: {cut} is longer than the log served ({size} entries)"
        )));
    }
    // Each anchor against the next, the last against the tree served.
    let mut pairs: Vec<(&Anchor, Option<&Anchor>)> =
        checked.windows(2).map(|w| (w[0], Some(w[1]))).collect();
    if let Some(last) = checked.last() {
        pairs.push((last, None));
    }
    for chunk in pairs.chunks(MAX_CONSISTENCY) {
        let asked: Vec<[u64; 2]> = chunk
            .iter()
            .map(|(x, y)| [x.entries, y.map_or(size, |y| y.entries)])
            .collect();
        let page = reader.page(Some(size), size, 1, asked.clone()).await?;
        for ((older, newer), want) in chunk.iter().zip(&asked) {
            let proof = page
                .consistency
                .iter()
                .find(|c| [c.old, c.new] == *want)
                .ok_or_else(|| rewritten(format!("no consistency proof for {older}")))?;
            let (new_root, against) = match newer {
                Some(n) => (n.root, n.to_string()),
                None => (root, format!("the log served ({size} entries)")),
            };
            if !verify_consistency(older.entries, want[1], older.root, new_root, &proof.proof) {
                return Err(rewritten(format!(
                    "{older} no longer matches: it is not a prefix of {against}"
                )));
            }
        }
    }

    // The entries, page by page.
    let mut mine: Vec<Entry> = vec![];
    let mut whole = RootBuilder::new();
    let as_holder = me == holder;
    let mut page = first;
    loop {
        for e in &page.entries {
            if as_holder {
                if e.index != whole.len() {
                    return Err(rewritten(format!("entry {} is missing", whole.len())));
                }
                whole.push(e.leaf());
            } else {
                if e.patient != me {
                    return Err(CliError::Integrity(format!(
                        "the gatekeeper showed entry {} of another patient",
                        e.index
                    )));
                }
                if !e.is_included(size, root) {
                    return Err(rewritten(format!(
                        "entry {} is not in the tree the holder anchored",
                        e.index
                    )));
                }
            }
        }
        // The holder's entries are only hashed: its whole log is never held here at once.
        if !as_holder {
            mine.extend(page.entries.into_iter().map(|mut e| {
                e.proof.clear();
                e
            }));
        }
        match page.next {
            Some(from) if from < size => {
                page = reader.page(Some(size), from, a.page_size, vec![]).await?;
            }
            _ => break,
        }
    }
    if as_holder && (whole.len() != size || whole.root() != root) {
        return Err(rewritten(format!(
            "its {} entries hash to {}, not to the root served for {size} ({root})",
            whole.len(),
            whole.root()
        )));
    }

    let latest = checked.last();
    let mut lines = vec![if as_holder {
        format!(
            "access log of {holder}: {size} entries, all read and hashed to the tree's root {root}"
        )
    } else {
        format!(
            "access log of {holder}: {size} entries, {} about your records, each proved in the tree (root {root})",
            mine.len()
        )
    }];
    lines.push(match latest {
        Some(l) => format!(
            "  consistent with all {} anchors on chain (the latest of {} entries in block {})",
            checked.len(),
            l.entries,
            l.block
        ),
        None => "  the holder has not anchored its log (as a tree) on chain yet".to_string(),
    });
    if !old_form.is_empty() {
        lines.push(format!(
            "  {} earlier anchor(s): heads of the log's old hash chain (its first {legacy} entries), not checked",
            old_form.len()
        ));
    }
    for e in &mine {
        lines.push(format!(
            "  #{:<5} {}  {}  {}  record {}  ({})",
            e.index,
            units::format_time(e.at_ms / 1000),
            if e.allowed { "READ  " } else { "DENIED" },
            e.requester,
            e.record_id,
            e.reason
        ));
    }
    out.result(
        "access-log",
        json!({"holder": holder, "count": size, "root": root, "verified": true,
               "anchors": checked.len(), "anchoredEntries": latest.map_or(0, |l| l.entries),
               "oldFormAnchors": old_form.len(), "legacyEntries": legacy,
               "mine": mine}),
        &lines.join("\n"),
    );
    Ok(())
}
