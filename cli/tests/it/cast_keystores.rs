//! Keystores written by the native `cast wallet import` and `cast wallet new`, which hold no
//! `address` field, used for every class of command: address-only, sending, signing offline,
//! relaying.

use crate::harness::{Env, PASSWORD, repo_root};
use std::process::Command;

/// A key no other test uses.
const CAST_KEY: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const CAST_KEY_ADDRESS: &str = "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A";

fn cast(args: &[&str]) -> String {
    let out = Command::new(repo_root().join("node_modules/@foundry-rs/cast-linux-amd64/bin/cast"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cast {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The address that `cast wallet new` printed.
fn printed_address(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Address:"))
        .unwrap()
        .trim()
        .to_string()
}

fn has_address_field(env: &Env, file: &str) -> bool {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path(file)).unwrap()).unwrap();
    v.get("address").is_some()
}

#[test]
fn cast_keystores_work_for_every_command() {
    let env = Env::deployed();
    let ks = env.path_str("keystores");
    cast(&[
        "wallet",
        "import",
        "cast-patient",
        "--private-key",
        CAST_KEY,
        "-k",
        &ks,
        "--unsafe-password",
        PASSWORD,
    ]);
    let unfunded = printed_address(&cast(&[
        "wallet",
        "new",
        &ks,
        "cast-new",
        "--unsafe-password",
        PASSWORD,
    ]));
    // Outside the keystore folder, named by its UUID, used by path.
    std::fs::create_dir_all(env.path("elsewhere")).unwrap();
    let by_path = printed_address(&cast(&[
        "wallet",
        "new",
        &env.path_str("elsewhere"),
        "--unsafe-password",
        PASSWORD,
    ]));
    for f in ["keystores/cast-patient", "keystores/cast-new"] {
        assert!(!has_address_field(&env, f), "cast writes no address: {f}");
    }
    env.rpc(
        "anvil_setBalance",
        &format!(r#"["{CAST_KEY_ADDRESS}","0x56bc75e2d63100000"]"#),
    );

    // Never opened, no password at hand: a clear one-line error, no prompt, no hang.
    let out = env
        .cmd(&["account", "address", "cast-patient"])
        .env_remove("MEDREC_PASSWORD_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("holds no address") && e.contains("--password-file"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");

    // Listed as a keystore whose address is not known yet.
    let list = env.json(&["account", "list"]);
    let entry = |list: &serde_json::Value, name: &str| {
        list["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(entry(&list, "cast-new")["locked"], true);
    assert!(entry(&list, "cast-new")["address"].is_null());

    // With the password file, decrypted once, saying so; then remembered.
    let out = env.run(&["account", "address", "cast-patient"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        CAST_KEY_ADDRESS
    );
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("decrypting it once"), "{note}");
    let out = env
        .cmd(&["account", "address", "cast-patient"])
        .env_remove("MEDREC_PASSWORD_FILE")
        .output()
        .unwrap();
    assert!(out.status.success(), "remembered: no password needed");
    assert!(out.stderr.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        CAST_KEY_ADDRESS
    );
    // Under --json nothing but the document: the note stays off stderr.
    let out = env.run(&["--json", "account", "address", "cast-new"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        entry(&env.json(&["account", "list"]), "cast-new")["address"],
        unfunded.as_str()
    );
    // The keystore files themselves are left as cast wrote them.
    assert!(!has_address_field(&env, "keystores/cast-new"));

    // Sending: a grant from the cast-imported patient.
    let h = env.addr("hospital-a");
    env.ok(&[
        "-a",
        "cast-patient",
        "grant",
        &h,
        "-c",
        "labs",
        "--for",
        "30d",
    ]);
    // Address-only commands default to the account.
    let g = env.json(&["-a", "cast-patient", "show-grant", &h]);
    assert_eq!(g["patient"], CAST_KEY_ADDRESS);
    assert_eq!(g["state"], "live");

    // Signing offline with an unfunded cast keystore (by path, outside the keystore folder),
    // relayed by the cast-imported one.
    let elsewhere = std::fs::read_dir(env.path("elsewhere"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let signer = elsewhere.to_string_lossy().to_string();
    env.ok(&[
        "-a",
        &signer,
        "grant",
        &h,
        "-c",
        "notes",
        "--for",
        "30d",
        "--sign-only",
        "--out",
        "signed.json",
    ]);
    let r = env.json(&["-a", "cast-patient", "relay", "signed.json"]);
    assert_eq!(r["patient"], by_path.as_str());
    assert_eq!(
        env.json(&[
            "check",
            "--grantee",
            &h,
            "-c",
            "notes",
            "--patient",
            &by_path
        ])["allowed"],
        true
    );
    // Its address is now known without the password too.
    let out = env
        .cmd(&["account", "address", &signer])
        .env_remove("MEDREC_PASSWORD_FILE")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), by_path);
}
