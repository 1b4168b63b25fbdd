//! What the order and the locators of the `PointerAnchored` logs tell (issue 16, step 4's
//! review). A holder that anchors several records of one patient in one transaction chooses
//! their order: in a manifest's order, and the demo's lists a patient's records by category
//! name, the i-th log of a run is the run's i-th category in name order. In record-id order
//! (what `medrec import` and `anchor-batch` do), which is random as the salts are, the order
//! tells nothing. A locator is free text the holder writes: anything but the default
//! `<gatekeeper>/v1/records/<record id>` may name a category or a patient, so it is reported.

use super::{Findings, Kind, LOGS};
use alloy::primitives::{Address, B256};
use std::collections::BTreeMap;

/// One `PointerAnchored` log, in log order.
#[derive(Debug, Clone)]
pub struct Anchored {
    /// The transaction that emitted it.
    pub tx: B256,
    /// Whose record.
    pub patient: Address,
    /// Who holds it.
    pub holder: Address,
    /// The record id.
    pub record_id: B256,
    /// The locator anchored with it.
    pub locator: String,
}

/// A record placed by the order of its run, worded once (the holder first: the cross-holder
/// links read a category fact's first address as its holder).
pub fn order_detail(holder: Address, record_id: B256, at: usize, of: usize) -> String {
    format!(
        "at {holder}: record {record_id} is {} of {of} anchored in one transaction not in record-id order (under a category-sorted manifest, the run's category number {} by name)",
        at + 1,
        at + 1
    )
}

/// Tries both attacks on `anchors` (in log order) and records what they find.
/// `endpoints`: every endpoint each holder registered (`HolderRegistered`), in log order; a
/// locator must be one of them plus `/v1/records/<record id>`, or it is reported (a host of
/// its own, `psych.hospital.example`, names a department).
pub fn attack(anchors: &[Anchored], endpoints: &BTreeMap<Address, Vec<String>>, f: &mut Findings) {
    // Runs: one patient's records in one transaction, in log order.
    let mut runs: BTreeMap<(B256, Address), Vec<&Anchored>> = BTreeMap::new();
    for a in anchors {
        runs.entry((a.tx, a.patient)).or_default().push(a);
    }
    let runs: Vec<_> = runs.into_values().filter(|r| r.len() > 1).collect();
    let mut chosen = 0usize;
    for run in &runs {
        if run.windows(2).all(|w| w[0].record_id < w[1].record_id) {
            continue;
        }
        chosen += 1;
        for (i, a) in run.iter().enumerate() {
            let d = order_detail(a.holder, a.record_id, i, run.len());
            f.add(a.patient, Kind::Category, d, LOGS);
        }
    }
    f.tried(
        "categories by the order of anchors",
        format!(
            "{} runs of two or more records of one patient in one transaction",
            runs.len()
        ),
        format!("{chosen} runs in an order other than record-id order"),
    );
    let odd: Vec<&Anchored> = anchors
        .iter()
        .filter(|a| match endpoints.get(&a.holder) {
            Some(known) => !known
                .iter()
                .any(|e| a.locator == medrec_protocol::records::locator(e, a.record_id)),
            None => !a.locator.ends_with(&format!("/v1/records/{}", a.record_id)),
        })
        .collect();
    let shown: Vec<String> = odd
        .iter()
        .take(3)
        .map(|a| format!("{:?} ({} at {})", a.locator, a.record_id, a.holder))
        .collect();
    f.tried(
        "pointer locators",
        format!("{} locators", anchors.len()),
        if odd.is_empty() {
            "0 of another shape than <registered endpoint>/v1/records/<record id>".to_string()
        } else {
            format!(
                "{} of another shape than <registered endpoint>/v1/records/<record id> (free text: check they name no category nor patient), e.g. {}",
                odd.len(),
                shown.join(", ")
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchored(tx: u8, patient: u8, id: u8, locator: &str) -> Anchored {
        Anchored {
            tx: B256::repeat_byte(tx),
            patient: Address::repeat_byte(patient),
            holder: Address::repeat_byte(0xaa),
            record_id: B256::repeat_byte(id),
            locator: locator.replace("ID", &B256::repeat_byte(id).to_string()),
        }
    }

    /// A run in record-id order tells nothing; one in another order (a manifest's) places
    /// each of its records; a locator of another shape is reported, the default one is not.
    #[test]
    fn the_order_of_a_run_tells_only_when_it_is_not_record_id_order() {
        let gk = "https://gk.example/v1/records/ID";
        let mut f = Findings::default();
        let sorted = [
            anchored(1, 1, 0x10, gk),
            anchored(1, 1, 0x20, gk),
            anchored(1, 1, 0x30, gk),
            anchored(1, 2, 0x05, gk),
        ];
        attack(&sorted, &BTreeMap::new(), &mut f);
        assert_eq!(f.count(Kind::Category), 0);
        let (_, read, found) = &f.tried[0];
        assert_eq!(
            (read.as_str(), found.as_str()),
            (
                "1 runs of two or more records of one patient in one transaction",
                "0 runs in an order other than record-id order"
            )
        );
        assert!(
            f.tried[1].2.starts_with("0 of another shape"),
            "{:?}",
            f.tried
        );

        let mut f = Findings::default();
        let chosen = [
            anchored(2, 1, 0x30, gk),
            anchored(2, 1, 0x10, "https://gk.example/labs/ID"),
            anchored(3, 1, 0x20, gk),
        ];
        attack(&chosen, &BTreeMap::new(), &mut f);
        assert_eq!(f.count(Kind::Category), 2);
        assert_eq!(
            f.tried[0].2,
            "1 runs in an order other than record-id order"
        );
        assert!(
            f.tried[1].2.starts_with("1 of another shape"),
            "{:?}",
            f.tried
        );
        assert!(f.tried[1].2.contains("/labs/"), "{:?}", f.tried);
    }

    /// With the holder's registered endpoint known, a locator must be that endpoint's read
    /// URL: a host of its own that names a department is reported though its path is the
    /// default one (a suffix check let it through).
    #[test]
    fn a_locator_is_checked_against_the_registered_endpoint() {
        let endpoints = BTreeMap::from([(
            Address::repeat_byte(0xaa),
            vec!["https://gk.example".to_string()],
        )]);
        let mut f = Findings::default();
        attack(
            &[
                anchored(1, 1, 0x10, "https://gk.example/v1/records/ID"),
                anchored(2, 1, 0x20, "https://psych.gk.example/v1/records/ID"),
            ],
            &endpoints,
            &mut f,
        );
        assert!(
            f.tried[1].2.starts_with("1 of another shape"),
            "{:?}",
            f.tried
        );
        assert!(f.tried[1].2.contains("psych."), "{:?}", f.tried);
    }
}
