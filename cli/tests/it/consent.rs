//! Consent: grant, show, check, revoke, offline signatures, guardians, break-glass, credentials.

use crate::harness::Env;

#[test]
fn patient_grants_checks_and_revokes() {
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));

    let g = env.json(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs,notes",
        "--for",
        "90d",
    ]);
    assert_eq!(g["categories"], serde_json::json!(["labs", "notes"]));
    assert_eq!(g["purpose"], "treatment");
    assert_eq!(
        g["expiresAt"].as_u64().unwrap() - g["notBefore"].as_u64().unwrap(),
        90 * 86_400
    );
    assert_eq!(g["tx"]["txHash"].as_str().unwrap().len(), 66);
    assert!(g["tx"]["blockNumber"].as_u64().unwrap() > 0);

    let human = env.ok(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs,notes",
        "--for",
        "90d",
    ]);
    assert!(
        human.starts_with(&format!("granted {h} access to labs,notes")),
        "{human}"
    );

    let shown = env.json(&["show-grant", &h, "--patient", &p]);
    assert_eq!(shown["state"], "live");
    assert_eq!(shown["readableMask"], (1 << 3) | (1 << 8));
    let shown_own = env.json(&["-a", "patient", "show-grant", &h]);
    assert_eq!(shown_own["patient"], p.as_str());

    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "imaging", "--patient", &p])["allowed"],
        false
    );
    assert!(
        env.ok(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])
            .starts_with("yes")
    );

    env.json(&["-a", "patient", "revoke", &h]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );
    assert_eq!(
        env.json(&["show-grant", &h, "--patient", &p])["state"],
        "none"
    );

    // A second revoke is refused by the contract, shown by its error name.
    let e = env.fail(3, &["-a", "patient", "revoke", &h]);
    assert!(e.contains("ConsentGrantNotFound(patient: "), "{e}");
    let j = env.fail_json(3, &["-a", "patient", "revoke", &h]);
    assert_eq!(j["kind"], "revert");
    assert_eq!(j["revert"]["name"], "ConsentGrantNotFound");
    assert_eq!(j["revert"]["args"]["grantee"], h.as_str());
}

#[test]
fn grant_window_from_until_and_expiry() {
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    env.json(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--from",
        "2099-01-01",
        "--until",
        "2099-06-30",
    ]);
    let shown = env.json(&["show-grant", &h, "--patient", &p]);
    assert_eq!(shown["state"], "not yet started");
    assert_eq!(shown["notBefore"], 4_070_908_800u64);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );

    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "1h"]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );
    env.advance(3_600);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );
    assert_eq!(
        env.json(&["show-grant", &h, "--patient", &p])["state"],
        "expired"
    );

    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "grant",
            &h,
            "-c",
            "labs",
            "--until",
            "2001-01-01",
        ],
    );
    assert!(e.contains("not after the start"), "{e}");
    let e = env.fail(2, &["-a", "patient", "grant", &h, "-c", "labs"]);
    assert!(e.contains("--for"), "{e}");
    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "grant",
            &h,
            "-c",
            "labs",
            "--purpose",
            "marketing",
            "--for",
            "1d",
        ],
    );
    assert!(e.contains("unknown purpose \"marketing\""), "{e}");
}

#[test]
fn offline_signature_relayed_by_someone_else() {
    let env = Env::deployed();
    let h = env.addr("hospital-a");
    // A patient with no ether at all: signing costs nothing.
    let p = env.new_account("poor-patient", false);
    env.ok(&[
        "-a",
        "poor-patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
        "--sign-only",
        "--out",
        "signed.json",
    ]);
    let signed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("signed.json")).unwrap()).unwrap();
    assert_eq!(signed["type"], "grant");
    assert_eq!(signed["chainId"], 31337);
    assert_eq!(signed["message"]["patient"], p.as_str());

    let r = env.json(&["-a", "stranger", "relay", "signed.json"]);
    assert_eq!(r["type"], "grant");
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );

    // Replaying the same signature is refused: it is no later than the one applied.
    let e = env.fail(3, &["-a", "stranger", "relay", "signed.json"]);
    assert!(e.contains("ConsentSignatureStale"), "{e}");
    assert!(e.contains("sign it again"), "{e}");

    // Tampering with the message breaks the signature.
    let mut tampered = signed.clone();
    tampered["message"]["categories"] = serde_json::json!(255);
    env.write("tampered.json", &tampered.to_string());
    let e = env.fail(3, &["-a", "stranger", "relay", "tampered.json"]);
    assert!(e.contains("ConsentInvalidSignature"), "{e}");

    // A revocation signed fully offline (no node: a dead RPC URL) with --epoch and --chain-id.
    // Offline, its issue time is this machine's clock: a second after the grant's.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let dead = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let out = env
        .cmd(&[
            "-a",
            "poor-patient",
            "revoke",
            &h,
            "--sign-only",
            "--epoch",
            "0",
            "--chain-id",
            "31337",
        ])
        .env("MEDREC_RPC_URL", &dead)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(env.path("revoke.json"), &out.stdout).unwrap();
    env.json(&["-a", "stranger", "relay", "revoke.json"]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );

    // Past its deadline a signature is refused.
    env.ok(&[
        "-a",
        "poor-patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
        "--sign-only",
        "--deadline",
        "1m",
        "--out",
        "late.json",
    ]);
    env.advance(3_600);
    let e = env.fail(3, &["-a", "stranger", "relay", "late.json"]);
    assert!(e.contains("ConsentSignatureExpired"), "{e}");

    env.write("junk.json", "{\"hello\": 1}");
    let e = env.fail(2, &["-a", "stranger", "relay", "junk.json"]);
    assert!(e.contains("not a signed medrec message"), "{e}");
}

#[test]
fn guardian_acts_within_scope_only() {
    let env = Env::deployed();
    let (h, p, g) = (
        env.addr("hospital-a"),
        env.addr("patient"),
        env.addr("guardian"),
    );
    env.json(&[
        "-a",
        "patient",
        "guardian",
        "add",
        &g,
        "-c",
        "labs,immunizations",
        "--for",
        "5y",
    ]);
    let shown = env.json(&["guardian", "show", &g, "--patient", &p]);
    assert_eq!(shown["live"], true);
    assert_eq!(shown["scope"], serde_json::json!(["labs", "immunizations"]));

    env.json(&[
        "-a",
        "guardian",
        "grant",
        &h,
        "-c",
        "immunizations",
        "--for",
        "30d",
        "--patient",
        &p,
    ]);
    assert_eq!(
        env.json(&[
            "check",
            "--grantee",
            &h,
            "-c",
            "immunizations",
            "--patient",
            &p
        ])["allowed"],
        true
    );

    let e = env.fail(
        3,
        &[
            "-a",
            "guardian",
            "grant",
            &h,
            "-c",
            "mental-health",
            "--for",
            "30d",
            "--patient",
            &p,
        ],
    );
    assert!(e.contains("ConsentGuardianOutOfScope"), "{e}");
    let e = env.fail(
        3,
        &[
            "-a",
            "stranger",
            "grant",
            &h,
            "-c",
            "labs",
            "--for",
            "30d",
            "--patient",
            &p,
        ],
    );
    assert!(e.contains("ConsentUnauthorized"), "{e}");

    env.json(&["-a", "patient", "guardian", "remove", &g]);
    let e = env.fail(3, &["-a", "guardian", "revoke", &h, "--patient", &p]);
    assert!(e.contains("ConsentUnauthorized"), "{e}");
    let e = env.fail(3, &["-a", "patient", "guardian", "remove", &g]);
    assert!(e.contains("ConsentGuardianNotFound"), "{e}");
}

#[test]
fn break_glass_and_its_cap() {
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-b"), env.addr("patient"));
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-b",
            "break-glass",
            "open",
            &p,
            "--reason",
            "ED",
            "--for",
            "2d",
        ],
    );
    assert!(e.contains("ConsentEmergencyDuration"), "{e}");

    env.json(&[
        "-a",
        "hospital-b",
        "break-glass",
        "open",
        &p,
        "--reason",
        "unconscious in ED",
        "--for",
        "4h",
    ]);
    assert_eq!(
        env.json(&["break-glass", "show", &p, "--provider", &h])["open"],
        true
    );
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "genetics", "--patient", &p])["allowed"],
        true
    );
    let e = env.fail(
        3,
        &[
            "-a",
            "stranger",
            "break-glass",
            "close",
            &p,
            "--provider",
            &h,
        ],
    );
    assert!(e.contains("ConsentUnauthorized"), "{e}");
    env.json(&[
        "-a",
        "patient",
        "break-glass",
        "close",
        &p,
        "--provider",
        &h,
    ]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "genetics", "--patient", &p])["allowed"],
        false
    );

    let e = env.fail(
        3,
        &["-a", "stranger", "break-glass", "open", &p, "--reason", "x"],
    );
    assert!(e.contains("ConsentNotProvider"), "{e}");

    let e = env.fail(3, &["-a", "hospital-b", "break-glass", "set-cap", "48h"]);
    assert!(e.contains("AccessControlUnauthorizedAccount"), "{e}");
    env.json(&["-a", "gov", "break-glass", "set-cap", "48h"]);
    // Hospital A: the patient's close put hospital B in a cooling-off (cli/tests/it/break_glass.rs).
    env.json(&[
        "-a",
        "hospital-a",
        "break-glass",
        "open",
        &p,
        "--reason",
        "surgery",
        "--for",
        "2d",
    ]);
}

#[test]
fn operator_credentials_and_revokes_participants() {
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    let shown = env.json(&["participant", "show", &h]);
    assert_eq!(shown["role"], "provider");
    assert_eq!(shown["live"], true);

    let r = env.addr("stranger");
    env.json(&[
        "-a",
        "gov",
        "participant",
        "add",
        &r,
        "--role",
        "researcher",
        "--ref",
        "IRB-42",
        "--until",
        "2099-01-01",
    ]);
    assert_eq!(env.json(&["participant", "show", &r])["role"], "researcher");

    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"]);
    env.json(&["-a", "gov", "participant", "revoke", &h]);
    assert_eq!(env.json(&["participant", "show", &h])["live"], false);
    // A revoked provider reads nothing, whatever its grants.
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );
    let e = env.fail(3, &["-a", "gov", "participant", "revoke", &h]);
    assert!(e.contains("ParticipantNotCredentialed"), "{e}");
    // Credentialed again, it does not get its old grant back (issue 14, hole 10a).
    env.json(&[
        "-a",
        "gov",
        "participant",
        "add",
        &h,
        "--role",
        "provider",
        "--ref",
        "again",
        "--for",
        "365d",
    ]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );
    let shown = env.json(&["show-grant", &h, "--patient", &p]);
    assert!(
        shown["state"].as_str().unwrap().starts_with("void"),
        "{shown}"
    );
    // Granted again a second later (a grant of the re-issue's own second does not count).
    env.advance(1);
    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );
    let e = env.fail(
        3,
        &[
            "-a",
            "hospital-b",
            "participant",
            "add",
            &p,
            "--role",
            "provider",
            "--ref",
            "x",
            "--for",
            "1d",
        ],
    );
    assert!(e.contains("AccessControlUnauthorizedAccount"), "{e}");
}

#[test]
fn signed_files_of_format_3_carry_epoch_and_issue_time_and_older_formats_are_refused() {
    let env = Env::deployed();
    let h = env.addr("hospital-a");
    let p = env.new_account("offline-patient", false);
    env.ok(&[
        "-a",
        "offline-patient",
        "grant",
        &h,
        "-c",
        "labs,notes",
        "--until",
        "2099-01-01",
        "--sign-only",
        "--out",
        "v3.json",
    ]);
    let v3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("v3.json")).unwrap()).unwrap();
    // One rule: wide numbers (uint40, uint256) as decimal strings, the mask as medrec's masks.
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["chainId"], 31337);
    let m = &v3["message"];
    assert_eq!(m["categories"], (1 << 3) | (1 << 8));
    assert_eq!(m["purpose"], 1);
    assert_eq!(m["notBefore"], "0");
    assert_eq!(m["expiresAt"], "4070908800");
    assert_eq!(m["epoch"], 0);
    let issued: u64 = m["issuedAt"].as_str().unwrap().parse().unwrap();
    assert!(issued > 1_700_000_000, "{issued}");

    // A file of format 2 (a nonce, no epoch) is refused before anything is sent, saying what
    // to do; so is one without a version (format 1).
    let mut v2 = v3.clone();
    v2["version"] = 2.into();
    v2["message"]["nonce"] = "0".into();
    env.write("v2.json", &v2.to_string());
    let e = env.fail(2, &["-a", "stranger", "relay", "v2.json"]);
    assert!(e.contains("format 2") && e.contains("sign it again"), "{e}");
    let mut v1 = v2.clone();
    v1.as_object_mut().unwrap().remove("version");
    env.write("v1.json", &v1.to_string());
    let e = env.fail(2, &["-a", "stranger", "relay", "v1.json"]);
    assert!(e.contains("format 1"), "{e}");

    let r = env.json(&["-a", "stranger", "relay", "v3.json"]);
    assert_eq!(r["type"], "grant");
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "notes", "--patient", &p])["allowed"],
        true
    );
    let shown = env.json(&["show-grant", &h, "--patient", &p]);
    assert_eq!(shown["epoch"], 0);
    assert_eq!(shown["signedAt"], issued);
}

/// Issue 14, hole 3, through the CLI: a patient signs a grant, then grants and revokes
/// directly; the old signed grant relayed afterwards gave the access back. Now it is stale.
#[test]
fn a_signed_grant_relayed_after_a_direct_grant_and_revocation_is_stale() {
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    env.ok(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
        "--sign-only",
        "--out",
        "old.json",
    ]);
    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"]);
    env.json(&["-a", "patient", "revoke", &h]);
    let e = env.fail(3, &["-a", "stranger", "relay", "old.json"]);
    assert!(e.contains("ConsentSignatureStale(epoch: 0"), "{e}");
    assert!(e.contains("currentEpoch: 2"), "{e}");
    assert!(e.contains("sign it again"), "{e}");
    let j = env.fail_json(3, &["-a", "stranger", "relay", "old.json"]);
    assert_eq!(j["revert"]["name"], "ConsentSignatureStale");
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );

    // Signed again, in the current epoch, it applies.
    env.ok(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
        "--sign-only",
        "--out",
        "new.json",
    ]);
    env.json(&["-a", "stranger", "relay", "new.json"]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );
}

/// A signed message given away can be voided: directly, or by a signed cancellation that
/// anyone relays (a patient without gas).
#[test]
fn cancel_signatures_voids_outstanding_signed_messages() {
    let env = Env::deployed();
    let h = env.addr("hospital-a");
    let p = env.new_account("poor-patient", false);
    env.ok(&[
        "-a",
        "poor-patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
        "--sign-only",
        "--out",
        "given.json",
    ]);
    env.ok(&[
        "-a",
        "poor-patient",
        "cancel-signatures",
        &h,
        "--sign-only",
        "--out",
        "cancel.json",
    ]);
    let c = env.json(&["-a", "stranger", "relay", "cancel.json"]);
    assert_eq!(c["type"], "cancelSignatures");
    let e = env.fail(3, &["-a", "stranger", "relay", "given.json"]);
    assert!(e.contains("ConsentSignatureStale"), "{e}");
    // The cancellation itself cannot be replayed.
    let e = env.fail(3, &["-a", "stranger", "relay", "cancel.json"]);
    assert!(e.contains("ConsentSignatureStale"), "{e}");
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        false
    );

    // Directly, by a patient with gas.
    env.ok(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
        "--sign-only",
        "--out",
        "given2.json",
    ]);
    let d = env.json(&["-a", "patient", "cancel-signatures", &h]);
    assert_eq!(d["grantee"], h.as_str());
    let e = env.fail(3, &["-a", "stranger", "relay", "given2.json"]);
    assert!(e.contains("ConsentSignatureStale"), "{e}");
}

/// The same for studies: a signed opt-in relayed after a withdrawal is stale.
#[test]
fn a_signed_opt_in_relayed_after_a_withdrawal_is_stale() {
    let env = Env::deployed();
    let r = env.new_account("researcher", true);
    env.credential(&r, "researcher", "irb");
    env.write("protocol.txt", "a protocol");
    env.json(&[
        "-a",
        "researcher",
        "study",
        "register",
        "--protocol",
        &env.path_str("protocol.txt"),
        "-c",
        "labs",
        "--min-cell",
        "5",
    ]);
    env.json(&["-a", "gov", "study", "approve", "1"]);
    env.ok(&[
        "-a",
        "patient",
        "study",
        "opt-in",
        "1",
        "--holders",
        "none",
        "--sign-only",
        "--out",
        "opt-in.json",
    ]);
    let o = env.json(&["-a", "stranger", "relay", "opt-in.json"]);
    assert_eq!(o["type"], "optIn");
    // Signed by the patient's study pseudonym, not the patient (issue 16).
    let patient = env.addr("patient");
    assert_ne!(o["pseudonym"], patient.as_str(), "{o}");
    assert!(!o.to_string().contains(&patient[2..]), "{o}");
    let mine = env.json(&["-a", "patient", "study", "mine"]);
    assert_eq!(mine["studies"].as_array().unwrap().len(), 1, "{mine}");
    env.json(&[
        "-a",
        "patient",
        "study",
        "withdraw",
        "1",
        "--relayer",
        "stranger",
    ]);
    let e = env.fail(3, &["-a", "stranger", "relay", "opt-in.json"]);
    assert!(e.contains("StudySignatureStale(epoch: 0"), "{e}");
    assert!(e.contains("sign it again"), "{e}");
    let mine = env.json(&["-a", "patient", "study", "mine"]);
    assert_eq!(mine["studies"].as_array().unwrap().len(), 0, "{mine}");

    // A signed cancellation voids a signed withdrawal given away.
    env.ok(&[
        "-a",
        "patient",
        "study",
        "withdraw",
        "1",
        "--sign-only",
        "--out",
        "w.json",
    ]);
    env.json(&[
        "-a",
        "patient",
        "study",
        "cancel-signatures",
        "1",
        "--relayer",
        "stranger",
    ]);
    let e = env.fail(3, &["-a", "stranger", "relay", "w.json"]);
    assert!(e.contains("StudySignatureStale"), "{e}");
}

/// Issue 16: a patient who sends their own opt-in, withdrawal or cancellation names themselves
/// (the sender) next to their study pseudonym. The CLI refuses it with one line saying why,
/// before any key, node or gas is used, and refuses the patient's own account as the relayer.
#[test]
fn a_patient_cannot_send_their_own_study_change() {
    let env = Env::deployed();
    for what in ["opt-in", "withdraw", "cancel-signatures"] {
        let e = env.fail(2, &["-a", "patient", "study", what, "1"]);
        assert!(
            e.contains("--relayer") && e.contains("would link you"),
            "{what}: {e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
    }
    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "study",
            "withdraw",
            "1",
            "--relayer",
            "patient",
        ],
    );
    assert!(e.contains("would link you"), "{e}");
}

/// Issue 14, hole 8 (the CLI's half): windows are measured on the wall clock. On an idle chain
/// whose last block is an hour old, `--for 20s` computed from that block was already over when
/// the next block came (ConsentInvalidWindow); a window over by the wall clock is bad input.
#[test]
fn a_short_grant_works_on_an_idle_chain_whose_last_block_is_old() {
    let now = medrec_protocol::clock::now_secs();
    let old = (now - 3_600).to_string();
    let env = Env::deployed_with(&["--timestamp", &old]);
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    // The chain's clock catches up with the wall clock from the next block on; the last block
    // stays an hour old, as after an hour without transactions.
    env.rpc(
        "evm_setTime",
        &format!("[{}]", medrec_protocol::clock::now_secs()),
    );
    let g = env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "20s"]);
    let end = g["expiresAt"].as_u64().unwrap();
    assert!(end >= now + 20, "{end} vs {now}");
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );

    let e = env.fail(
        2,
        &[
            "-a",
            "patient",
            "grant",
            &h,
            "-c",
            "labs",
            "--from",
            "2001-01-01",
            "--until",
            "2001-06-30",
        ],
    );
    assert!(e.contains("already over"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// Issue 14 hole 3 follow-up, A2 (the CLI's half): the registries refuse a message issued more
/// than 5 minutes ahead of the block time. On a chain an hour behind this machine's clock, a
/// signed grant was dated by the machine's clock and its relay refused; it is now dated at
/// most the skew ahead of the latest block, and applies. Offline (`--epoch`, `--chain-id`)
/// nothing bounds it, and the relay is refused by name.
#[test]
fn a_signed_grant_on_a_clock_ahead_of_the_chain_is_dated_within_the_skew() {
    let old = (medrec_protocol::clock::now_secs() - 3_600).to_string();
    let env = Env::deployed_with(&["--timestamp", &old]);
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    env.ok(&[
        "-a",
        "patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
        "--sign-only",
        "--out",
        "ahead.json",
    ]);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("ahead.json")).unwrap()).unwrap();
    let issued: u64 = file["message"]["issuedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let latest = env.rpc("eth_getBlockByNumber", r#"["latest", false]"#)["timestamp"]
        .as_str()
        .map(|t| u64::from_str_radix(t.trim_start_matches("0x"), 16).unwrap())
        .unwrap();
    assert!(
        issued <= latest + 300,
        "issuedAt {issued}, latest block {latest}"
    );
    let r = env.json(&["-a", "stranger", "relay", "ahead.json"]);
    assert_eq!(r["type"], "grant");
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );

    // Offline, the machine's clock is signed as it is: the relay names why it is refused.
    let epoch = env.json(&["show-grant", &h, "--patient", &p])["epoch"]
        .as_u64()
        .unwrap()
        .to_string();
    env.ok(&[
        "-a",
        "patient",
        "--chain-id",
        "31337",
        "revoke",
        &h,
        "--sign-only",
        "--epoch",
        &epoch,
        "--out",
        "offline.json",
    ]);
    let e = env.fail(3, &["-a", "stranger", "relay", "offline.json"]);
    assert!(e.contains("ConsentSignatureFromFuture"), "{e}");
    assert!(e.contains("sign it again"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

/// Issue 14 hole 3 follow-up, A9: a grant made in the second a grantee's credential was issued
/// again never counts, silently. `medrec grant` refuses it until `validSince` has passed.
#[test]
fn grant_refuses_while_the_grantees_credential_starts_next_second() {
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    env.json(&["-a", "gov", "participant", "revoke", &h]);
    // The re-issue's block an hour ahead of this machine's clock: its second lasts until the
    // next block, so the test does not race the clock.
    let ahead = medrec_protocol::clock::now_secs() + 3_600;
    env.rpc("evm_setNextBlockTimestamp", &format!("[{ahead}]"));
    env.json(&[
        "-a",
        "gov",
        "participant",
        "add",
        &h,
        "--role",
        "provider",
        "--ref",
        "again",
        "--until",
        "2099-01-01",
    ]);
    let e = env.fail(
        2,
        &["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"],
    );
    assert!(e.contains("try again in a second"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // Once a block of a later second is mined, the grant goes through and counts.
    env.rpc("evm_mine", &format!("[{}]", ahead + 1));
    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );
}

/// Issue 14 hole 3 follow-up, A4 (the CLI's half): at the last epoch (2^24 - 1) a
/// relationship's signatures are void for good; `--sign-only` says so in one line instead of
/// signing a message no relay can apply, and direct changes keep working.
#[test]
fn signing_for_a_relationship_at_its_last_epoch_is_refused_and_direct_changes_work() {
    use alloy::primitives::{Address, B256, U256, keccak256};
    let env = Env::deployed();
    let (h, p) = (env.addr("hospital-a"), env.addr("patient"));
    let d: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("deployments").join("31337.json")).unwrap(),
    )
    .unwrap();
    let consent = d["consentRegistry"].as_str().unwrap();
    // The grant slot of (patient, hospital-a): `_grants` is storage slot 3; the epoch sits at
    // bit 152 of the packed Grant.
    let word = |a: &str| B256::left_padding_from(a.parse::<Address>().unwrap().as_slice());
    let inner = keccak256([word(&p).as_slice(), &B256::from(U256::from(3)).0].concat());
    let slot = keccak256([word(&h).as_slice(), inner.as_slice()].concat());
    let value = B256::from(U256::from(0xff_ffffu64) << 152);
    env.rpc(
        "anvil_setStorageAt",
        &format!(r#"["{consent}", "{slot}", "{value}"]"#),
    );
    assert_eq!(
        env.json(&["show-grant", &h, "--patient", &p])["epoch"],
        16_777_215,
        "layout"
    );
    // A direct grant at the last epoch keeps it and voids signatures for good.
    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"]);
    let g = env.json(&["show-grant", &h, "--patient", &p]);
    assert_eq!(g["epoch"], 16_777_215);
    assert_eq!(g["signedAt"], 1_099_511_627_775u64);
    let e = env.fail(2, &["-a", "patient", "revoke", &h, "--sign-only"]);
    assert!(e.contains("void for good"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // Direct changes go on.
    env.json(&["-a", "patient", "revoke", &h]);
    env.json(&["-a", "patient", "grant", &h, "-c", "labs", "--for", "30d"]);
    assert_eq!(
        env.json(&["check", "--grantee", &h, "-c", "labs", "--patient", &p])["allowed"],
        true
    );
}
