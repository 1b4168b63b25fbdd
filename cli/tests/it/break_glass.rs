//! Break-glass through the CLI: salted reasons and references (issue 14, hole 9) and the
//! governance policy's bounds (hole 1), against a real anvil with the real contracts.

use crate::harness::Env;
use alloy::primitives::{B256, keccak256};
use serde_json::Value;

/// Reasons and references an adversary would try first (the dictionary).
const DICTIONARY: &[&str] = &[
    "unconscious in the emergency department",
    "unconscious in ED",
    "cardiac arrest",
    "IRB approval 2026-17",
    "licence 123",
];

fn word(v: &Value) -> B256 {
    v.as_str().unwrap().parse().unwrap()
}

/// Hashing a dictionary of likely texts recovers an unsalted commitment.
fn dictionary_recovers(committed: B256) -> Option<&'static str> {
    DICTIONARY
        .iter()
        .find(|t| keccak256(t.as_bytes()) == committed)
        .copied()
}

fn open(env: &Env, who: &str, patient: &str, reason: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "-a",
        who,
        "break-glass",
        "open",
        patient,
        "--reason",
        reason,
        "--for",
        "1h",
    ];
    args.extend_from_slice(extra);
    env.json(&args)
}

#[test]
fn a_salted_reason_is_not_in_any_dictionary_and_verifies_with_its_salt() {
    let env = Env::deployed();
    let p = env.addr("patient");
    let reason = "unconscious in the emergency department";
    let second = open(&env, "hospital-a", &p, reason, &[]);
    // Before: the reason hash was keccak256(reason), and this found it.
    assert_eq!(
        dictionary_recovers(word(&second["reasonHash"])),
        None,
        "dictionary attack"
    );

    // The same reason commits differently each time.
    let file = env.path_str("reason.json");
    let first = open(&env, "hospital-b", &p, reason, &["--salt-out", &file]);
    let committed = word(&first["reasonHash"]);
    assert_eq!(dictionary_recovers(committed), None, "dictionary attack");
    assert_ne!(word(&second["reasonHash"]), committed);
    assert_ne!(second["salt"], first["salt"]);

    // The file holds what the patient and governance need, readable by its owner alone.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["reason"], reason);
    assert_eq!(doc["salt"], first["salt"]);
    assert_eq!(doc["id"], first["id"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "salt file readable by others: {mode:o}");
    }

    // Verification: from the file, and from the reason and salt as given.
    let v = env.json(&["break-glass", "verify-reason", "--file", &file]);
    assert_eq!(v["verified"], true);
    let id = first["id"].to_string();
    let salt = first["salt"].as_str().unwrap();
    env.json(&[
        "break-glass",
        "verify-reason",
        &id,
        "--reason",
        reason,
        "--salt",
        salt,
    ]);
    let e = env.fail(
        9,
        &[
            "break-glass",
            "verify-reason",
            &id,
            "--reason",
            "unconscious in ED",
            "--salt",
            salt,
        ],
    );
    assert!(e.contains("do not open"), "{e}");
    // Another opening's salt does not open this one.
    let other_salt = second["salt"].as_str().unwrap();
    env.fail(
        9,
        &[
            "break-glass",
            "verify-reason",
            &id,
            "--reason",
            reason,
            "--salt",
            other_salt,
        ],
    );
    env.fail(
        2,
        &[
            "break-glass",
            "verify-reason",
            "99",
            "--reason",
            reason,
            "--salt",
            salt,
        ],
    );
}

#[test]
fn a_credential_reference_is_salted_and_verifies() {
    let env = Env::deployed();
    // Before: keccak256 of a hospital's reference was on chain, and the dictionary found it.
    let h = env.addr("hospital-a");
    let shown = env.json(&["participant", "show", &h]);
    assert_eq!(
        dictionary_recovers(word(&shown["ref"])),
        None,
        "dictionary attack"
    );
    assert_ne!(word(&shown["ref"]), keccak256("hospital-a"));

    let r = env.new_account("researcher", true);
    let file = env.path_str("ref.json");
    let d = env.json(&[
        "-a",
        "gov",
        "participant",
        "add",
        &r,
        "--role",
        "researcher",
        "--ref",
        "IRB approval 2026-17",
        "--for",
        "365d",
        "--salt-out",
        &file,
    ]);
    let shown = env.json(&["participant", "show", &r]);
    let committed = word(&shown["ref"]);
    // Before: keccak256("IRB approval 2026-17") was on chain, and the dictionary found it.
    assert_eq!(dictionary_recovers(committed), None, "dictionary attack");
    assert_eq!(word(&d["ref"]), committed);

    env.json(&["participant", "verify-ref", &r, "--file", &file]);
    let salt = d["salt"].as_str().unwrap();
    env.json(&[
        "participant",
        "verify-ref",
        &r,
        "--ref",
        "IRB approval 2026-17",
        "--salt",
        salt,
    ]);
    env.fail(
        9,
        &[
            "participant",
            "verify-ref",
            &r,
            "--ref",
            "IRB approval 2026-18",
            "--salt",
            salt,
        ],
    );
}

#[test]
fn the_policys_bounds_through_the_cli() {
    let env = Env::deployed();
    let (a, p) = (env.addr("hospital-a"), env.addr("patient"));

    // The patient's rule: sensitive categories only.
    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "break-glass",
            "rule",
            "--exclude",
            "labs,genetics",
        ],
    );
    assert!(e.contains("labs"), "{e}");
    env.json(&[
        "-a",
        "patient",
        "break-glass",
        "rule",
        "--exclude",
        "mental-health,genetics",
    ]);
    let rule = env.json(&["-a", "patient", "break-glass", "rule"]);
    assert_eq!(
        rule["excluded"],
        serde_json::json!(["mental-health", "genetics"])
    );

    let opened = open(&env, "hospital-a", &p, "stroke", &[]);
    let id = opened["id"].to_string();
    let can = |c: &str| {
        env.json(&["check", "--grantee", &a, "-c", c, "--patient", &p])["allowed"].clone()
    };
    assert_eq!(can("labs"), true);
    assert_eq!(can("mental-health"), false);
    assert_eq!(can("genetics"), false);
    assert_eq!(can("sexual-health"), true);

    // The patient closes it: the provider cannot reopen at once.
    env.json(&[
        "-a",
        "patient",
        "break-glass",
        "close",
        &p,
        "--provider",
        &a,
    ]);
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-a",
            "break-glass",
            "open",
            &p,
            "--reason",
            "stroke",
        ],
    );
    assert!(e.contains("ConsentEmergencyCoolingOff"), "{e}");
    let shown = env.json(&["break-glass", "show", &p, "--provider", &a]);
    assert!(shown["coolingOffUntil"].as_u64().is_some(), "{shown}");

    // Overdue only after the deadline; then it counts against the provider.
    let e = env.fail(3, &["-a", "stranger", "break-glass", "overdue", &id]);
    assert!(e.contains("ConsentEmergencyNotOverdue"), "{e}");
    env.advance(72 * 3600);
    let s = env.json(&["break-glass", "status", &id]);
    assert_eq!(s["status"], "pending");
    assert_eq!(s["overdue"], true);
    let r = env.json(&["-a", "stranger", "break-glass", "overdue", "--all"]);
    assert_eq!(r["recorded"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["recorded"][0]["id"].to_string(), id);
    // Recorded already: --all finds nothing more, and the id itself is refused.
    let r = env.json(&["-a", "stranger", "break-glass", "overdue", "--all"]);
    assert_eq!(r["recorded"].as_array().unwrap().len(), 0, "{r}");
    let e = env.fail(3, &["-a", "stranger", "break-glass", "overdue", &id]);
    assert!(e.contains("ConsentEmergencyAlreadyReviewed"), "{e}");
    assert_eq!(
        env.json(&["break-glass", "status", &id])["status"],
        "overdue"
    );

    // Governance reviews it as justified late; only governance may.
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-a",
            "break-glass",
            "review",
            &id,
            "--justified",
        ],
    );
    assert!(e.contains("AccessControlUnauthorizedAccount"), "{e}");
    let r = env.json(&["-a", "gov", "break-glass", "review", &id, "--justified"]);
    assert_eq!(r["unjustified"], 0);
    env.json(&["-a", "gov", "break-glass", "clear", &a]);

    // The policy, shown and changed.
    let policy = env.json(&["break-glass", "policy"]);
    assert_eq!(policy["maxOpenings"], 3);
    assert_eq!(policy["coolingOff"], 7 * 86_400);
    env.json(&[
        "-a",
        "gov",
        "break-glass",
        "set-policy",
        "--max-openings",
        "1",
        "--cooling-off",
        "0",
    ]);
    assert_eq!(env.json(&["break-glass", "policy"])["maxOpenings"], 1);
    let e = env.fail(
        3,
        &[
            "-a",
            "gov",
            "break-glass",
            "set-policy",
            "--max-openings",
            "9",
        ],
    );
    assert!(e.contains("ConsentInvalidEmergencyPolicy"), "{e}");
    // With one opening per 30 days, hospital B's second opening is refused.
    open(&env, "hospital-b", &p, "trauma", &[]);
    env.json(&["-a", "hospital-b", "break-glass", "close", &p]);
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-b",
            "break-glass",
            "open",
            &p,
            "--reason",
            "trauma",
        ],
    );
    assert!(e.contains("ConsentEmergencyTooFrequent"), "{e}");
}

/// Review findings A7 and A6 through the CLI: the patient refuses an opening the provider
/// closed first (or let expire), and one provider's openings awaiting review are bounded over
/// all patients.
#[test]
fn the_patient_refuses_an_ended_opening_and_pending_openings_are_bounded() {
    let env = Env::deployed();
    let (b, p) = (env.addr("hospital-b"), env.addr("patient"));
    let reopen = |who: &str, patient: &str| {
        env.fail(
            3,
            &[
                "-a",
                who,
                "break-glass",
                "open",
                patient,
                "--reason",
                "trauma",
            ],
        )
    };

    // The provider closes first; the patient's close still refuses it.
    open(&env, "hospital-b", &p, "trauma", &[]);
    env.json(&["-a", "hospital-b", "break-glass", "close", &p]);
    env.json(&[
        "-a",
        "patient",
        "break-glass",
        "close",
        &p,
        "--provider",
        &b,
    ]);
    let e = reopen("hospital-b", &p);
    assert!(e.contains("ConsentEmergencyCoolingOff"), "{e}");

    // A short opening left to expire: the guardian's account, as a patient, refuses it too.
    let g = env.addr("guardian");
    open(&env, "hospital-b", &g, "trauma", &[]);
    env.advance(2 * 3600);
    env.json(&[
        "-a",
        "guardian",
        "break-glass",
        "close",
        &g,
        "--provider",
        &b,
    ]);
    let e = reopen("hospital-b", &g);
    assert!(e.contains("ConsentEmergencyCoolingOff"), "{e}");

    // One opening awaiting review at most: hospital B (two pending) opens to no one else.
    env.json(&[
        "-a",
        "gov",
        "break-glass",
        "set-policy",
        "--max-pending",
        "2",
    ]);
    assert_eq!(env.json(&["break-glass", "policy"])["maxPending"], 2);
    let s = env.addr("stranger");
    let e = reopen("hospital-b", &s);
    assert!(e.contains("ConsentEmergencyTooManyPending"), "{e}");
    // Governance reviews one: the way opens again.
    env.json(&["-a", "gov", "break-glass", "review", "1", "--justified"]);
    open(&env, "hospital-b", &s, "trauma", &[]);
    let e = env.fail(
        3,
        &[
            "-a",
            "gov",
            "break-glass",
            "set-policy",
            "--max-pending",
            "0",
        ],
    );
    assert!(e.contains("ConsentInvalidEmergencyPolicy"), "{e}");
}
