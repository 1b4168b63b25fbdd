//! The holder's listing (issue 16, item 4): which records it keeps of a patient, with their
//! categories and openings, to a requester that may read them now. The chain no longer tells
//! anyone a record's category, so this is where the patient, a guardian and a grantee learn
//! it; an outsider gets the answer a patient with no records gets.

use crate::harness::World;
use alloy::primitives::{Address, B256};
use medrec_protocol::records::RecordList;

const LABS: u64 = 1 << 3;
const IMMUNIZATIONS: u64 = 1 << 7;
const NOTES: u64 = 1 << 8;

/// The (record id, category) pairs of a listing, in order.
fn listed(l: &RecordList) -> Vec<(B256, u8)> {
    l.records
        .iter()
        .map(|r| (r.record_id, r.opening.category))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listing_shows_each_requester_what_it_may_read_and_an_outsider_nothing() {
    let w = World::start().await;
    let patient = w.account().await;
    let (guardian, grantee, outsider, other) = (
        w.account().await,
        w.account().await,
        w.account().await,
        w.account().await,
    );
    w.credential(grantee.address()).await;
    w.credential(outsider.address()).await;
    // Three records of the patient: labs, immunizations, notes; one of another patient.
    let labs = w
        .upload(
            patient.address(),
            3,
            br#"{"resourceType":"Observation","id":"l"}"#,
        )
        .await;
    let imm = w
        .upload(
            patient.address(),
            7,
            br#"{"resourceType":"Immunization","id":"i"}"#,
        )
        .await;
    let notes = w
        .upload(
            patient.address(),
            8,
            br#"{"resourceType":"DocumentReference","id":"n"}"#,
        )
        .await;
    w.upload(
        other.address(),
        3,
        br#"{"resourceType":"Observation","id":"o"}"#,
    )
    .await;
    w.set_guardian(&patient, guardian.address(), LABS | IMMUNIZATIONS, 3_600)
        .await;
    w.grant(&patient, grantee.address(), NOTES, 3_600).await;

    // The patient: every record, with its category and the opening of its commitment.
    let (status, all) = w.list_as(&patient, patient.address()).await;
    assert_eq!(status, 200);
    let all = all.unwrap();
    assert_eq!(all.patient, patient.address());
    assert_eq!(all.holder, w.gk_holder.address());
    assert_eq!(listed(&all), vec![(labs, 3), (imm, 7), (notes, 8)]);
    for r in &all.records {
        let c = r
            .opening
            .commit(patient.address(), w.gk_holder.address(), r.content_hash);
        assert_eq!(
            r.record_id,
            medrec_protocol::records::record_id(w.gk_holder.address(), patient.address(), c),
            "the opening is the one the record id was made from"
        );
    }
    // A guardian of labs and immunizations: those two only.
    let (_, g) = w.list_as(&guardian, patient.address()).await;
    assert_eq!(listed(&g.unwrap()), vec![(labs, 3), (imm, 7)]);
    // A grantee of notes: the note only.
    let (_, r) = w.list_as(&grantee, patient.address()).await;
    assert_eq!(listed(&r.unwrap()), vec![(notes, 8)]);
    // An outsider (a credentialed provider without a grant) and a patient asking about
    // another: the empty list, the shape a patient with no records here gets.
    for (who, about) in [
        (&outsider, patient.address()),
        (&other, patient.address()),
        (&outsider, Address::repeat_byte(0x77)),
    ] {
        let (status, l) = w.list_as(who, about).await;
        assert_eq!(status, 200);
        let l = l.unwrap();
        assert!(l.records.is_empty(), "{l:?}");
        assert_eq!(l.patient, about);
    }
    let (_, nobody) = w.list_as(&patient, Address::repeat_byte(0x77)).await;
    assert!(nobody.unwrap().records.is_empty());

    // A revocation counts at once: the grantee's next listing is empty.
    w.revoke(&patient, grantee.address()).await;
    let (_, r) = w.list_as(&grantee, patient.address()).await;
    assert!(r.unwrap().records.is_empty());

    // A request signed by someone else than its requester is refused, as a read is.
    let t = medrec_test_support::now();
    let forged = medrec_protocol::records::RecordListRequest {
        requester: patient.address(),
        patient: patient.address(),
        audience: w.gk_holder.address(),
        nonce: alloy::primitives::U256::from(1),
        issuedAt: t,
        expiresAt: t + 60,
    };
    let body = medrec_test_support::signed_body(&outsider, forged, &w.domain).await;
    let url = format!("{}{}", w.gk_url, medrec_protocol::records::LIST_PATH);
    let (status, _) = w.post(&url, body.into_bytes()).await;
    assert_eq!(status, 403);
}
