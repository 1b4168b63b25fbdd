//! The `medrec` CLI run against a test world.

use alloy::signers::local::PrivateKeySigner;
use std::path::Path;
use std::process::{Command, Stdio};

/// A `medrec` command (`bin`) whose home, keystores (`home/keystores`), password file
/// (`home/password`) and working folder are `home`, talking to `rpc` with the deployments at
/// `deployments`; settings from the caller's environment that would change its answers are
/// removed.
pub fn medrec_command(bin: &Path, home: &Path, rpc: &str, deployments: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(home)
        .env("HOME", home)
        .env("MEDREC_RPC_URL", rpc)
        .env("MEDREC_KEYSTORE_DIR", home.join("keystores"))
        .env("MEDREC_PASSWORD_FILE", home.join("password"))
        .env("MEDREC_DEPLOYMENTS", deployments)
        .env_remove("MEDREC_ACCOUNT")
        .env_remove("MEDREC_CHAIN_ID")
        .env_remove("MEDREC_CONFIG")
        .env_remove("MEDREC_LOG")
        .stdin(Stdio::null());
    c
}

/// Imports `key` as keystore account `name` with `medrec` (a [`medrec_command`]), through a
/// key file in `dir` removed afterwards; panics with the CLI's error if it fails.
pub fn import_key(mut medrec: Command, dir: &Path, name: &str, key: &PrivateKeySigner) {
    let file = dir.join(format!("{name}.key"));
    std::fs::write(&file, alloy::hex::encode(key.to_bytes())).unwrap();
    let out = medrec
        .args(["account", "import", name, "--private-key-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "medrec account import {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(file).unwrap();
}
