//! A varied history indexed by backfill, then by live tailing: every table and view against
//! the test's own decoding of the chain, and the read API against it and the contracts.

use crate::harness::*;
use crate::model::{self, Ev, Logged};
use alloy::eips::BlockId;
use alloy::primitives::{Address, B256};
use medrec_bindings::ConsentRegistry;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const LABS: u8 = 3;
const NOTES: u8 = 8;
const MEDS: u8 = 2;
const IMMUNIZATIONS: u8 = 7;
const MENTAL: u8 = 10;

fn bit(c: u8) -> u64 {
    1u64 << c
}

/// Blocks worth checking access at afterwards.
struct Marks {
    /// The last block where P1's grant to H2 held.
    before_revoke: u64,
    /// The block of P1's revoke of H2.
    revoke: u64,
}

/// Phase A: every kind of event, including several in one block and a decoy deployment.
async fn history(w: &World) -> Marks {
    let (h1, h2, h3, r, g) = (w.a(H1), w.a(H2), w.a(H3), w.a(RESEARCHER), w.a(GUARDIAN));
    let (p1, p2, p3, p4, p5) = (w.a(P1), w.a(P2), w.a(P3), w.a(P4), w.a(P5));
    let now = w.now().await;
    let exp = now + YEAR;

    // Credentials.
    w.issue(h1, 1, "licence h1", exp).await;
    w.issue(h2, 1, "licence h2", exp).await;
    w.issue(h3, 1, "licence h3", exp).await;
    w.issue(r, 2, "registration r", exp).await;

    // Grants, one with bit 63 (a negative BIGINT) and one not yet valid.
    w.grant(p1, h1, bit(LABS) | bit(NOTES), exp).await;
    w.grant(p1, h2, bit(LABS), exp).await;
    w.grant_by(p2, p2, h1, bit(4) | bit(63), 4, 0, exp).await;
    w.grant_by(p3, p3, h3, u64::MAX, 6, 0, exp).await;
    w.grant_by(p4, p4, h1, bit(LABS), 1, now + 30 * DAY, exp)
        .await;
    w.grant(p3, r, bit(LABS), exp).await;

    // Pointers, an amendment, a category-63 pointer.
    let ps = (0..5)
        .map(|i| pointer(&format!("p1-{i}"), p1, [LABS, LABS, NOTES, LABS, NOTES][i]))
        .collect();
    w.anchor_batch(h1, ps).await;
    w.anchor_batch(
        h2,
        vec![pointer("p1-h2-0", p1, LABS), pointer("p1-h2-1", p1, LABS)],
    )
    .await;
    w.amend(h1, pointer("p1-0-v2", p1, LABS), "p1-0").await;
    w.anchor_batch(h1, vec![pointer("p2-63", p2, 63)]).await;

    // A replaced grant.
    w.grant(p1, h2, bit(LABS) | bit(MEDS), exp).await;

    // Guardians: one acting, one removed, one replaced.
    w.set_guardian(p1, g, bit(LABS) | bit(IMMUNIZATIONS), exp)
        .await;
    w.grant_by(g, p1, h3, bit(LABS), 1, 0, exp).await;
    w.set_guardian(p2, g, bit(1), exp).await;
    w.remove_guardian(p2, g).await;
    w.set_guardian(p5, g, bit(5), exp).await;
    w.set_guardian(p5, g, bit(7) | bit(63), exp).await;

    // Break-glass: closed by the patient, left open, closed by the provider; a cap change.
    w.set_cap(2 * DAY).await;
    w.open_emergency(h2, p3, "unconscious in ED", 4 * 3600)
        .await;
    w.anchor_batch(h2, vec![pointer("p3-mental", p3, MENTAL)])
        .await;
    w.close_emergency(p3, p3, h2).await;
    w.open_emergency(h3, p2, "trauma bay", DAY).await;
    w.open_emergency(h1, p5, "stroke", 3600).await;
    w.close_emergency(h1, p5, h1).await;

    // Credentials: a revoke and a replacement.
    w.revoke_credential(r).await;
    w.issue(h3, 1, "licence h3 renewed", exp).await;

    // Many events in one block: a grant replaced twice, a grant and its revoke, pointers,
    // a re-issued credential.
    w.begin_block().await;
    w.grant(p2, h2, bit(1), exp).await;
    w.grant(p2, h2, bit(2) | bit(LABS), exp).await;
    w.grant(p4, h3, bit(5), exp).await;
    w.revoke(p4, p4, h3).await;
    w.anchor_batch(
        h1,
        (0..3)
            .map(|i| pointer(&format!("blk-{i}"), p1, LABS))
            .collect(),
    )
    .await;
    w.issue(r, 2, "registration r again", exp).await;
    w.end_block().await;

    // The revoke whose before and after the API must tell apart.
    let before_revoke = w.head().await;
    let h = w.revoke(p1, p1, h2).await;
    let revoke = w.receipt(h).await.block_number.unwrap();

    // A holder anchors its gatekeeper's access-log head.
    let records = w.records_c();
    w.send(
        "anchorAccessLog",
        h1,
        records.anchorAccessLog(h1, alloy::primitives::keccak256("log head"), 3),
    )
    .await;
    // It registers its gatekeeper's endpoint and service key.
    w.send(
        "registerHolder",
        h1,
        records.registerHolder("https://gatekeeper.h1.example".into(), g),
    )
    .await;

    // A decoy deployment's events must not be indexed.
    let (_, decoy_consent, _) = w.deploy_set().await;
    let decoy = ConsentRegistry::new(decoy_consent, w.p.clone());
    w.send(
        "decoy grant",
        p1,
        decoy.grant(
            p1,
            h1,
            bit(LABS),
            1,
            alloy::primitives::aliases::U40::from(0u64),
            alloy::primitives::aliases::U40::from(exp),
        ),
    )
    .await;
    Marks {
        before_revoke,
        revoke,
    }
}

/// Phase B: more events while the indexer tails the chain.
async fn more_history(w: &World) {
    let (h1, h2, h3, g) = (w.a(H1), w.a(H2), w.a(H3), w.a(GUARDIAN));
    let (p1, p2, p3, p5) = (w.a(P1), w.a(P2), w.a(P3), w.a(P5));
    let exp = w.now().await + YEAR;
    w.amend(h1, pointer("p1-0-v3", p1, LABS), "p1-0-v2").await;
    w.remove_guardian(p1, g).await;
    w.open_emergency(h3, p1, "anaphylaxis", 3600).await;
    w.set_cap(DAY).await;
    w.revoke_credential(h2).await;
    w.begin_block().await;
    w.grant(p5, h1, bit(NOTES), exp).await;
    w.grant(p5, h3, bit(NOTES) | bit(LABS), exp).await;
    w.revoke(p3, p3, h3).await;
    w.close_emergency(h3, p2, h3).await;
    w.anchor_batch(h1, vec![pointer("p5-notes", p5, NOTES)])
        .await;
    w.end_block().await;
    // Issue 16, step 7: the holder erases a record; the pointer says so.
    w.erase(h1, p5, "p5-notes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_then_live_matches_the_chain_and_the_api_answers() {
    let w = World::deploy().await;
    let db = TestDb::create("consistency").await;
    let marks = history(&w).await;

    // Backfill: one run to the head, exit 0.
    let head = w.head().await;
    let mut backfill = Indexer::spawn(
        &w,
        &db,
        &Opts {
            api: false,
            exit_at_head: true,
            ..Opts::default()
        },
    );
    let st = backfill.wait_exit(Duration::from_secs(60)).await;
    assert!(
        st.success(),
        "backfill failed ({st}):\n{}",
        backfill.stderr()
    );
    let evs = model::assert_db_matches_chain(&w, &db, head).await;
    let kinds = model::kinds(&evs);
    for k in [
        "credential_issued",
        "credential_revoked",
        "granted",
        "revoked",
        "guardian_set",
        "guardian_removed",
        "emergency_opened",
        "emergency_closed",
        "cap_set",
        "anchored",
        "superseded",
        "log_anchored",
        "break_glass_marked",
        "holder_registered",
    ] {
        assert!(kinds.get(k).copied().unwrap_or(0) > 0, "no {k} event");
    }

    // Live: the indexer tails while new events arrive.
    let mut idx = Indexer::start(&w, &db, &Opts::default()).await;
    wait_indexed(&w, &db, &mut idx).await;
    more_history(&w).await;
    let head = wait_indexed(&w, &db, &mut idx).await;
    let evs = model::assert_db_matches_chain(&w, &db, head).await;

    check_api(&w, &idx, head, &evs, &marks).await;
    read_your_writes(&w, &idx).await;
    idx.assert_alive();
}

fn cs(a: Address) -> String {
    a.to_checksum(None)
}

fn hex(b: B256) -> String {
    alloy::hex::encode_prefixed(b.as_slice())
}

/// Current grants (patient, grantee) -> (by, categories, purpose, not_before, expires_at, since).
type GrantMap = std::collections::BTreeMap<(Address, Address), (Address, u64, u8, u64, u64, u64)>;

fn current_grants(evs: &[Logged]) -> GrantMap {
    let mut m = GrantMap::new();
    for l in evs {
        match &l.ev {
            Ev::Granted {
                patient,
                grantee,
                by,
                categories,
                purpose,
                not_before,
                expires_at,
                ..
            } => {
                m.insert(
                    (*patient, *grantee),
                    (
                        *by,
                        *categories,
                        *purpose,
                        *not_before,
                        *expires_at,
                        l.block,
                    ),
                );
            }
            Ev::Revoked {
                patient, grantee, ..
            } => {
                m.remove(&(*patient, *grantee));
            }
            _ => {}
        }
    }
    m
}

/// A listed grant; `void` as the chain says it (given before the grantee's current run).
fn grant_json(
    who: &str,
    addr: Address,
    g: &(Address, u64, u8, u64, u64, u64),
    now: u64,
    void: bool,
) -> Value {
    let (by, cats, purpose, nb, exp, since) = *g;
    serde_json::json!({
        who: cs(addr),
        "by": cs(by),
        "categories": medrec_bindings::category_names(cats),
        // Masks above 2^53 - 1 are strings (JavaScript reads JSON numbers as doubles).
        "categoryMask": medrec_protocol::mask::to_json(cats),
        "purpose": medrec_bindings::purpose_name(purpose),
        "notBefore": nb,
        "expiresAt": exp,
        "live": !void && now >= nb && now < exp,
        "void": void,
        "sinceBlock": since,
    })
}

async fn check_api(w: &World, idx: &Indexer, head: u64, evs: &[Logged], marks: &Marks) {
    let (_, now) = w.block(head).await;
    let grants = current_grants(evs);
    let patients = [P1, P2, P3, P4, P5].map(|i| w.a(i));
    let grantees = [H1, H2, H3, RESEARCHER, GUARDIAN, STRANGER].map(|i| w.a(i));
    // Each current grant's standing on chain: made before its grantee's credential run began.
    let mut void = std::collections::BTreeMap::new();
    for &(p, g) in grants.keys() {
        let at = alloy::eips::BlockId::number(head);
        let made = w.consent_c().grantOf(p, g).block(at).call().await.unwrap();
        let since = w
            .participants_c()
            .validSinceOf(g)
            .block(at)
            .call()
            .await
            .unwrap();
        void.insert((p, g), made.grantedAt < since);
    }

    // /health and /metrics.
    idx.wait_reported(head).await;
    let (status, health) = idx.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"], true, "{health}");
    assert_eq!(health["writer"], true, "{health}");
    assert_eq!(health["indexedBlock"], head, "{health}");
    assert!(health["headBlock"].as_u64().unwrap() >= head, "{health}");
    // The access-log anchor the holder sent.
    let (status, anchors) = idx
        .get(&format!("/v1/holders/{}/access-log-anchors", w.a(H1)))
        .await;
    assert_eq!(status, 200, "{anchors}");
    assert_eq!(anchors["block"], head, "{anchors}");
    let want: Vec<(B256, u64)> = evs
        .iter()
        .rev()
        .filter_map(|l| match &l.ev {
            Ev::LogAnchored {
                holder,
                head,
                entries,
                ..
            } if *holder == w.a(H1) => Some((*head, *entries)),
            _ => None,
        })
        .collect();
    let got: Vec<(B256, u64)> = anchors["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["head"].as_str().unwrap().parse().unwrap(),
                a["entries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want, "{anchors}");
    let metrics = idx.metrics_text().await;
    assert_eq!(metric_value(&metrics, "medrec_indexer_indexed_block"), head);
    assert_eq!(metric_value(&metrics, "medrec_indexer_writer"), 1);
    assert!(metric_value(&metrics, "medrec_indexer_rows_total") > 0);
    assert!(metric_value(&metrics, "medrec_indexer_batches_total") > 0);
    assert_eq!(metric_value(&metrics, "medrec_indexer_reorgs_total"), 0);

    // Grants by patient and by grantee.
    for p in patients {
        let v = idx.get_ok_as(p, &format!("/v1/patients/{p}/grants")).await;
        assert_eq!(v["block"], head);
        assert_eq!(v["patient"], cs(p));
        let want: Vec<Value> = grants
            .iter()
            .filter(|((pp, _), _)| *pp == p)
            .map(|((p, g), row)| grant_json("grantee", *g, row, now, void[&(*p, *g)]))
            .collect();
        assert_eq!(v["grants"], Value::Array(want), "grants of {p}");
    }
    for g in grantees {
        let v = idx
            .get_ok_as(g, &format!("/v1/grantees/{g}/patients"))
            .await;
        assert_eq!(v["grantee"], cs(g));
        let mut want: Vec<(Address, Value)> = grants
            .iter()
            .filter(|((_, gg), _)| *gg == g)
            .map(|((p, g), row)| (*p, grant_json("patient", *p, row, now, void[&(*p, *g)])))
            .collect();
        want.sort_by_key(|(p, _)| *p);
        let want: Vec<Value> = want.into_iter().map(|(_, v)| v).collect();
        assert_eq!(v["patients"], Value::Array(want), "patients of {g}");
    }
    // The grant with bit 63 keeps its mask, as a decimal string.
    let v = idx
        .get_ok_as(w.a(P2), &format!("/v1/patients/{}/grants", w.a(P2)))
        .await;
    assert!(
        v["grants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["categoryMask"] == Value::String((bit(4) | bit(63)).to_string())),
        "{v}"
    );

    // Pointers of each patient, one by one, and the amendment chain.
    let mut pointers: Vec<(B256, Address, Address, B256, String, u64)> = vec![];
    let mut superseded: std::collections::HashMap<B256, B256> = Default::default();
    let mut break_glass: std::collections::HashSet<B256> = Default::default();
    let mut erased: std::collections::HashSet<B256> = Default::default();
    for l in evs {
        match &l.ev {
            Ev::Anchored {
                record_id,
                patient,
                holder,
                commitment,
                locator,
            } => pointers.push((
                *record_id,
                *patient,
                *holder,
                *commitment,
                locator.clone(),
                l.block,
            )),
            Ev::Superseded { old, new } => {
                superseded.insert(*old, *new);
            }
            Ev::BreakGlassMarked { record_id, .. } => {
                break_glass.insert(*record_id);
            }
            Ev::Erased { record_id } => {
                erased.insert(*record_id);
            }
            _ => {}
        }
    }
    let pointer_json = |p: &(B256, Address, Address, B256, String, u64)| {
        serde_json::json!({
            "recordId": hex(p.0),
            "patient": cs(p.1),
            "holder": cs(p.2),
            "commitment": hex(p.3),
            "locator": p.4,
            "anchoredBlock": p.5,
            "supersededBy": superseded.get(&p.0).map(|n| hex(*n)),
            "breakGlass": break_glass.contains(&p.0),
            "erased": erased.contains(&p.0),
        })
    };
    for p in patients {
        let v = idx
            .get_ok_as(p, &format!("/v1/patients/{p}/pointers"))
            .await;
        let want: Vec<Value> = pointers
            .iter()
            .filter(|x| x.1 == p)
            .map(pointer_json)
            .collect();
        assert_eq!(v["pointers"], Value::Array(want), "pointers of {p}");
    }
    for x in &pointers {
        // The pointer's patient and its holder may ask.
        let v = idx
            .get_ok_as(x.1, &format!("/v1/pointers/{}", hex(x.0)))
            .await;
        assert_eq!(v["pointer"], pointer_json(x));
        let v = idx
            .get_ok_as(x.2, &format!("/v1/pointers/{}", hex(x.0)))
            .await;
        assert_eq!(v["pointer"], pointer_json(x));
    }
    let (h1, p1) = (w.a(H1), w.a(P1));
    let v = idx
        .get_ok_as(
            p1,
            &format!("/v1/pointers/{}", hex(record_id(h1, p1, "p1-0"))),
        )
        .await;
    assert_eq!(
        v["pointer"]["supersededBy"],
        hex(record_id(h1, p1, "p1-0-v2"))
    );
    let v = idx
        .get_ok_as(
            p1,
            &format!("/v1/pointers/{}", hex(record_id(h1, p1, "p1-0-v2"))),
        )
        .await;
    assert_eq!(
        v["pointer"]["supersededBy"],
        hex(record_id(h1, p1, "p1-0-v3"))
    );
    // An unknown record is refused as one not the requester's (issue 16: a refusal does not
    // tell whether a record exists; it was 404 before).
    let (status, v) = idx
        .get_as(
            p1,
            &format!("/v1/pointers/{}", hex(record_id(h1, p1, "never anchored"))),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["code"], "denied");
    let (status, v) = idx.get_as(p1, "/v1/pointers/0x1234").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = idx.get_as(p1, "/v1/patients/not-an-address/grants").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request");
    let (status, _) = idx.get("/v1/nothing-here").await;
    assert_eq!(status, 404);

    // Timelines: every event that concerns the patient, in chain order.
    for p in patients {
        let v = idx
            .get_ok_as(p, &format!("/v1/patients/{p}/timeline"))
            .await;
        let want = timeline(evs, p);
        let got: Vec<(u64, u64, String, String)> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["block"].as_u64().unwrap(),
                    e["logIndex"].as_u64().unwrap(),
                    e["type"].as_str().unwrap().to_string(),
                    e["txHash"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want_keys: Vec<(u64, u64, String, String)> = want
            .iter()
            .map(|(l, kind)| (l.block, l.log_index, kind.to_string(), hex(l.tx)))
            .collect();
        assert_eq!(got, want_keys, "timeline of {p}");
        // The payloads of grants carry the whole uint64 mask.
        for (e, (l, _)) in v["events"].as_array().unwrap().iter().zip(&want) {
            if let Ev::Granted {
                grantee,
                categories,
                ..
            } = &l.ev
            {
                assert_eq!(
                    e["data"]["categoryMask"],
                    medrec_protocol::mask::to_json(*categories),
                    "{e}"
                );
                assert_eq!(
                    e["data"]["grantee"].as_str().unwrap().to_lowercase(),
                    grantee.to_string().to_lowercase()
                );
            }
            if let Ev::GuardianSet { scope, .. } = &l.ev {
                assert_eq!(
                    e["data"]["scopeMask"],
                    medrec_protocol::mask::to_json(*scope),
                    "{e}"
                );
            }
        }
        // from_block and limit page through it.
        if want.len() >= 3 {
            let from = want[1].0.block;
            let v = idx
                .get_ok_as(
                    p,
                    &format!("/v1/patients/{p}/timeline?from_block={from}&limit=2"),
                )
                .await;
            let got: Vec<u64> = v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["block"].as_u64().unwrap())
                .collect();
            let exp: Vec<u64> = want
                .iter()
                .filter(|(l, _)| l.block >= from)
                .take(2)
                .map(|(l, _)| l.block)
                .collect();
            assert_eq!(got, exp, "timeline page of {p}");
        }
    }

    // Access, now and in the past, against the contract's own canRead at the same block.
    let consent = w.consent_c();
    let mut allowed_seen = 0;
    for block in [marks.before_revoke, marks.revoke, head] {
        for g in grantees {
            for p in patients {
                for cat in [0u8, LABS, NOTES, MENTAL, 63] {
                    let v = idx
                        .get_ok_as(
                            p,
                            &format!(
                                "/v1/access?grantee={g}&patient={p}&category={cat}&block={block}"
                            ),
                        )
                        .await;
                    assert_eq!(v["block"], block);
                    let chain = consent
                        .canRead(g, p, cat)
                        .block(BlockId::number(block))
                        .call()
                        .await
                        .unwrap();
                    assert_eq!(
                        v["allowed"], chain,
                        "access of {g} to {p} category {cat} at block {block}: {v}"
                    );
                    if chain {
                        allowed_seen += 1;
                    }
                }
            }
        }
    }
    assert!(allowed_seen > 10, "the access matrix is mostly empty");
    // The revoke in particular: allowed before, not from its block on.
    let q = |b: u64| {
        format!(
            "/v1/access?grantee={}&patient={}&category=labs&block={b}",
            w.a(H2),
            w.a(P1)
        )
    };
    let v = idx.get_ok_as(w.a(P1), &q(marks.before_revoke)).await;
    assert_eq!(v["allowed"], true, "{v}");
    assert_eq!(v["via"], "grant", "{v}");
    let v = idx.get_ok_as(w.a(H2), &q(marks.revoke)).await;
    assert_eq!(v["allowed"], false, "{v}");
    assert_eq!(v["via"], Value::Null, "{v}");
    // Break-glass access is named as such; without block, the answer is at the indexed head.
    let v = idx
        .get_ok_as(
            w.a(H3),
            &format!(
                "/v1/access?grantee={}&patient={}&category=genetics",
                w.a(H3),
                w.a(P1)
            ),
        )
        .await;
    assert_eq!(v["block"], head);
    assert_eq!(v["allowed"], true, "{v}");
    assert_eq!(v["via"], "break-glass", "{v}");
    let (status, v) = idx
        .get_as(
            w.a(P1),
            &format!(
                "/v1/access?grantee={}&patient={}&category=no-such-category",
                w.a(H1),
                w.a(P1)
            ),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

/// The events of `p`'s timeline with the API's type names.
fn timeline(evs: &[Logged], p: Address) -> Vec<(Logged, &'static str)> {
    let mut patient_of: std::collections::HashMap<B256, Address> = Default::default();
    // Break-glass opening id -> its patient.
    let mut opening_of: std::collections::HashMap<u64, Address> = Default::default();
    let mut out = vec![];
    for l in evs {
        let kind = match &l.ev {
            Ev::Granted { patient, .. } if *patient == p => Some("granted"),
            Ev::Revoked { patient, .. } if *patient == p => Some("revoked"),
            Ev::GuardianSet { patient, .. } if *patient == p => Some("guardian-set"),
            Ev::GuardianRemoved { patient, .. } if *patient == p => Some("guardian-removed"),
            Ev::EmergencyOpened { patient, .. } if *patient == p => Some("break-glass-opened"),
            Ev::EmergencyClosed { patient, .. } if *patient == p => Some("break-glass-closed"),
            Ev::Anchored {
                record_id, patient, ..
            } => {
                patient_of.insert(*record_id, *patient);
                (*patient == p).then_some("pointer-anchored")
            }
            Ev::Superseded { old, .. } if patient_of.get(old) == Some(&p) => {
                Some("pointer-superseded")
            }
            Ev::Erased { record_id } if patient_of.get(record_id) == Some(&p) => {
                Some("pointer-erased")
            }
            Ev::BreakGlassMarked { patient, .. } if *patient == p => {
                Some("pointer-anchored-under-break-glass")
            }
            Ev::JustificationDue { id, patient, .. } => {
                opening_of.insert(*id, *patient);
                (*patient == p).then_some("break-glass-review-due")
            }
            Ev::Reviewed { id, .. } if opening_of.get(id) == Some(&p) => {
                Some("break-glass-reviewed")
            }
            Ev::Overdue { id, .. } if opening_of.get(id) == Some(&p) => Some("break-glass-overdue"),
            Ev::ConsentSignaturesCancelled { patient, .. } if *patient == p => {
                Some("consent-signatures-cancelled")
            }
            // Study events name a pseudonym, never the patient (issue 16): not on the timeline.
            _ => None,
        };
        if let Some(k) = kind {
            out.push((l.clone(), k));
        }
    }
    out
}

/// A write followed at once by a read with `min_block` sees the write.
async fn read_your_writes(w: &World, idx: &Indexer) {
    let (p, g) = (w.a(P4), w.a(H2));
    let exp = w.now().await + YEAR;
    let mut seen = BTreeSet::new();
    for i in 0..3u8 {
        let cats = bit(20 + i);
        let h = w.grant(p, g, cats, exp).await;
        let n = w.receipt(h).await.block_number.unwrap();
        let v = idx
            .get_ok_as(p, &format!("/v1/patients/{p}/grants?min_block={n}"))
            .await;
        assert!(v["block"].as_u64().unwrap() >= n, "{v}");
        let mask = v["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["grantee"] == cs(g))
            .map(|x| x["categoryMask"].clone());
        assert_eq!(mask, Some(Value::from(cats)), "{v}");
        let v = idx
            .get_ok_as(g, &format!("/v1/grantees/{g}/patients?min_block={n}"))
            .await;
        assert!(v["block"].as_u64().unwrap() >= n, "{v}");
        let v = idx
            .get_ok_as(p, &format!("/v1/patients/{p}/timeline?min_block={n}"))
            .await;
        let last = v["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["block"], n, "{v}");
        assert_eq!(last["type"], "granted");
        seen.insert(n);
    }
    assert_eq!(seen.len(), 3);
}
