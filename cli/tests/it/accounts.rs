//! Keystore accounts.

use crate::harness::{Env, PASSWORD};
use std::process::Command;

#[test]
fn new_import_list_and_address() {
    let env = Env::start();
    let created = env.json(&["account", "new", "alice"]);
    let addr = created["address"].as_str().unwrap().to_string();
    let file = env.path("keystores/alice");
    let keystore: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(keystore["version"], 3);
    assert!(keystore["crypto"]["ciphertext"].is_string());
    // The secret never shows up in output.
    assert!(!env.ok(&["account", "list"]).contains("ciphertext"));

    let listed = env.json(&["account", "list"]);
    let names: Vec<&str> = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "gov"]);
    assert_eq!(env.addr("alice"), addr);
    assert_eq!(
        env.addr("gov"),
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
}

/// Attack: someone who may write the keystore folder but knows no password edits a keystore's
/// `address` field to another account (the gov's here). Address-only commands show that
/// address; a signing command must not then sign with the key the file really holds.
#[test]
fn a_keystore_that_decrypts_to_another_address_than_it_shows_is_refused() {
    let env = Env::deployed();
    let alice = env.json(&["account", "new", "alice"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let file = env.path("keystores/alice");
    let mut keystore: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let gov = "f39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    keystore["address"] = gov.into();
    std::fs::write(&file, keystore.to_string()).unwrap();
    assert_eq!(env.addr("alice").to_lowercase(), format!("0x{gov}"));
    let e = env.fail(
        6,
        &[
            "-a",
            "alice",
            "revoke",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "--sign-only",
            "--epoch",
            "0",
            "--chain-id",
            "31337",
        ],
    );
    assert!(e.contains("the file was changed"), "{e}");
    assert!(e.contains(&alice), "names the key it really holds: {e}");
}

#[test]
fn keystore_is_readable_by_cast_wallet() {
    let env = Env::start();
    let cast =
        crate::harness::repo_root().join("node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    let out = Command::new(cast)
        .args(["wallet", "address", "--keystore"])
        .arg(env.path("keystores/gov"))
        .args(["--password", PASSWORD])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
}

#[test]
fn account_errors_are_one_line_with_exit_codes() {
    let env = Env::start();
    let e = env.fail(6, &["account", "new", "gov"]);
    assert!(e.contains("already exists"), "{e}");
    let e = env.fail(2, &["account", "new", "../evil"]);
    assert!(e.contains("bad account name"), "{e}");
    env.write("bad.key", "0x1234");
    let e = env.fail(
        6,
        &[
            "account",
            "import",
            "x",
            "--private-key-file",
            &env.path_str("bad.key"),
        ],
    );
    assert!(e.contains("not 32 bytes"), "{e}");
    assert!(!env.path("keystores/x").exists(), "nothing half-written");
    let e = env.fail(6, &["account", "address", "nobody"]);
    assert!(e.contains("not found"), "{e}");

    // Wrong password: exit 6, and no transaction sent.
    env.write("wrong", "not the password\n");
    let out = env
        .cmd(&["-a", "gov", "deploy"])
        .env("MEDREC_PASSWORD_FILE", env.path("wrong"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));

    // No password file and no terminal: a clear error instead of a hang.
    let out = env
        .cmd(&["-a", "gov", "deploy"])
        .env_remove("MEDREC_PASSWORD_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-file"));

    // A signing command with no account.
    let e = env.fail(6, &["deploy"]);
    assert!(e.contains("no account"), "{e}");
}
