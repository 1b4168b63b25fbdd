//! Accounts in encrypted keystore files (Web3 Secret Storage, readable by `cast wallet`).
//!
//! A private key never comes from an environment variable or a flag's value: it is generated,
//! read from a file, or typed at a hidden prompt. Passwords come from a file or a hidden prompt.

use crate::error::{CliError, Result};
use crate::opts::Settings;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// A password or private key held in memory; never printed.
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    fn expose(&self) -> &str {
        &self.0
    }
}

/// Reads the password: the first line of the password file, else a hidden prompt.
pub fn password(settings: &Settings, prompt: &str, confirm: bool) -> Result<Secret> {
    if let Some(file) = &settings.password_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            CliError::Key(format!("cannot read password file {}: {e}", file.display()))
        })?;
        let line = text.lines().next().unwrap_or_default().to_string();
        if line.is_empty() {
            return Err(CliError::Key(format!(
                "password file {} is empty",
                file.display()
            )));
        }
        return Ok(Secret(line));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Key(
            "no password: give --password-file (or MEDREC_PASSWORD_FILE) or run in a terminal"
                .into(),
        ));
    }
    let first = rpassword::prompt_password(prompt)
        .map_err(|e| CliError::Key(format!("cannot read the password: {e}")))?;
    if first.is_empty() {
        return Err(CliError::Key("empty password".into()));
    }
    if confirm {
        let again = rpassword::prompt_password("Repeat the password: ")
            .map_err(|e| CliError::Key(format!("cannot read the password: {e}")))?;
        if again != first {
            return Err(CliError::Key("the passwords differ".into()));
        }
    }
    Ok(Secret(first))
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(CliError::input(format!(
            "bad account name {name:?}: use letters, digits, '-', '_' or '.' (at most 64)"
        )))
    }
}

fn prepare_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::Io(format!(
            "cannot create keystore folder {}: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join(name);
    if path.exists() {
        return Err(CliError::Key(format!(
            "account {name:?} already exists ({}); choose another name",
            path.display()
        )));
    }
    Ok(path)
}

/// Creates a new random key in `dir/name`, encrypted with the password.
pub fn create(settings: &Settings, name: &str) -> Result<(Address, PathBuf)> {
    let path = prepare_dir(&settings.keystore_dir, name)?;
    let pw = password(settings, "Password for the new account: ", true)?;
    let mut rng = rand::thread_rng();
    let (signer, _) =
        PrivateKeySigner::new_keystore(&settings.keystore_dir, &mut rng, pw.expose(), Some(name))
            .map_err(|e| CliError::Key(format!("cannot write the keystore: {e}")))?;
    record_address(&path, signer.address())?;
    Ok((signer.address(), path))
}

/// Imports a private key (hex, read from `key_file` or a hidden prompt) into `dir/name`.
pub fn import(
    settings: &Settings,
    name: &str,
    key_file: Option<&Path>,
) -> Result<(Address, PathBuf)> {
    let path = prepare_dir(&settings.keystore_dir, name)?;
    let key = match key_file {
        Some(f) => {
            let text = std::fs::read_to_string(f).map_err(|e| {
                CliError::Key(format!("cannot read private key file {}: {e}", f.display()))
            })?;
            Secret(text.lines().next().unwrap_or_default().trim().to_string())
        }
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(CliError::Key(
                    "no private key: give --private-key-file or run in a terminal".into(),
                ));
            }
            Secret(
                rpassword::prompt_password("Private key (hex): ")
                    .map_err(|e| CliError::Key(format!("cannot read the key: {e}")))?,
            )
        }
    };
    let hex = key.expose().trim_start_matches("0x");
    let bytes = alloy::hex::decode(hex)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| CliError::Key("the private key is not 32 bytes of hex".into()))?;
    let pw = password(settings, "Password for the imported account: ", true)?;
    let mut rng = rand::thread_rng();
    let (signer, _) = PrivateKeySigner::encrypt_keystore(
        &settings.keystore_dir,
        &mut rng,
        &bytes,
        pw.expose(),
        Some(name),
    )
    .map_err(|e| CliError::Key(format!("cannot import the key: {e}")))?;
    record_address(&path, signer.address())?;
    Ok((signer.address(), path))
}

/// Adds the (public) `address` field that geth and `cast wallet` write, so that the address
/// can be read without the password. Rewritten atomically; on failure the keystore is removed
/// rather than left half-written.
fn record_address(path: &Path, address: Address) -> Result<()> {
    let result = (|| -> std::io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        let mut v: serde_json::Value = serde_json::from_str(&text)?;
        if let Some(obj) = v.as_object_mut() {
            let hex = alloy::hex::encode(address.as_slice());
            obj.insert("address".into(), serde_json::Value::String(hex));
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&v)?)?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(path);
        CliError::Io(format!(
            "cannot finish the keystore {}: {e}",
            path.display()
        ))
    })
}

/// The accounts in the keystore folder: (name, address), sorted by name.
pub fn list(dir: &Path) -> Result<Vec<(String, Option<Address>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(CliError::Io(format!(
                "cannot read keystore folder {}: {e}",
                dir.display()
            )));
        }
    };
    let mut out = vec![];
    for entry in entries.flatten() {
        if !entry.path().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        out.push((name, keystore_address(&entry.path())));
    }
    out.sort();
    Ok(out)
}

/// The address recorded in a keystore file, when it has one.
pub fn keystore_address(path: &Path) -> Option<Address> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let a = v.get("address")?.as_str()?;
    format!("0x{}", a.trim_start_matches("0x")).parse().ok()
}

/// Where the account named in the settings is stored.
pub fn account_path(settings: &Settings) -> Result<PathBuf> {
    let account = settings.account.as_deref().ok_or_else(|| {
        CliError::Key("no account: give --account NAME (or MEDREC_ACCOUNT)".into())
    })?;
    let as_path = PathBuf::from(account);
    let path = if account.contains('/') {
        as_path
    } else {
        settings.keystore_dir.join(account)
    };
    if !path.is_file() {
        return Err(CliError::Key(format!(
            "account {account:?} not found (looked for {})",
            path.display()
        )));
    }
    Ok(path)
}

/// Decrypts the account named in the settings.
pub fn load(settings: &Settings) -> Result<PrivateKeySigner> {
    let path = account_path(settings)?;
    let pw = password(
        settings,
        &format!("Password for {}: ", path.display()),
        false,
    )?;
    PrivateKeySigner::decrypt_keystore(&path, pw.expose()).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("Mac") || msg.contains("mac") {
            CliError::Key(format!("wrong password for {}", path.display()))
        } else {
            CliError::Key(format!("cannot decrypt {}: {msg}", path.display()))
        }
    })
}
