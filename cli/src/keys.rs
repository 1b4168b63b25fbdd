//! Accounts in encrypted keystore files (Web3 Secret Storage): medrec's own and those that
//! `cast wallet new` or `cast wallet import` write.
//!
//! A private key never comes from an environment variable or a flag's value: it is generated,
//! read from a file, or typed at a hidden prompt. Passwords come from a file or a hidden prompt
//! and are held as [`SecretString`]s, which are zeroed when dropped and never printed.
//!
//! Commands that need only an account's address (listings, `show-grant`, `account address`)
//! read it without the password where they can: from the keystore's `address` field (which
//! medrec and geth write), else from medrec's address book (`~/.medrec/addresses.json`), which
//! remembers the address of every keystore that medrec has decrypted. Cast's keystores have no
//! `address` field: the first command that needs one decrypts the file once (with the password
//! file, or at a prompt, saying why) and remembers it.

use crate::error::{CliError, Result};
use crate::opts::Settings;
use alloy::primitives::{Address, B256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// A password or private key held in memory: zeroed on drop, printed as `[REDACTED]`.
pub type Secret = SecretString;

/// Reads the password: the first line of the password file, else a hidden prompt.
pub fn password(settings: &Settings, prompt: &str, confirm: bool) -> Result<Secret> {
    if let Some(file) = &settings.password_file {
        let text = SecretString::from(std::fs::read_to_string(file).map_err(|e| {
            CliError::Key(format!("cannot read password file {}: {e}", file.display()))
        })?);
        let line = text.expose_secret().lines().next().unwrap_or_default();
        if line.is_empty() {
            return Err(CliError::Key(format!(
                "password file {} is empty",
                file.display()
            )));
        }
        return Ok(SecretString::from(line));
    }
    if !can_prompt() {
        return Err(CliError::Key(
            "no password: give --password-file (or MEDREC_PASSWORD_FILE) or run in a terminal"
                .into(),
        ));
    }
    let first = prompt_secret(prompt, "the password")?;
    if first.expose_secret().is_empty() {
        return Err(CliError::Key("empty password".into()));
    }
    if confirm {
        let again = prompt_secret("Repeat the password: ", "the password")?;
        if again.expose_secret() != first.expose_secret() {
            return Err(CliError::Key("the passwords differ".into()));
        }
    }
    Ok(first)
}

fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

fn prompt_secret(prompt: &str, what: &str) -> Result<Secret> {
    rpassword::prompt_password(prompt)
        .map(SecretString::from)
        .map_err(|e| CliError::Key(format!("cannot read {what}: {e}")))
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
    let (signer, _) = PrivateKeySigner::new_keystore(
        &settings.keystore_dir,
        &mut rng,
        pw.expose_secret(),
        Some(name),
    )
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
            let text = SecretString::from(text);
            SecretString::from(
                text.expose_secret()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim(),
            )
        }
        None => {
            if !can_prompt() {
                return Err(CliError::Key(
                    "no private key: give --private-key-file or run in a terminal".into(),
                ));
            }
            prompt_secret("Private key (hex): ", "the key")?
        }
    };
    let hex = key.expose_secret().trim().trim_start_matches("0x");
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
        pw.expose_secret(),
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

/// What a file in the keystore folder says about its account's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeystoreAddress {
    /// The address is known: from the file's `address` field or the address book.
    Known(Address),
    /// A keystore without an `address` field (as cast writes them) that medrec has not yet
    /// decrypted: its address needs the password once.
    Locked,
    /// Not a keystore.
    NotKeystore,
}

/// A keystore's `address` field, or the fingerprint under which the address book keeps it.
enum Inspected {
    Address(Address),
    Fingerprint(B256),
    NotKeystore,
}

fn inspect(path: &Path) -> Inspected {
    let Some(v) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Inspected::NotKeystore;
    };
    if let Some(a) = v.get("address").and_then(|a| a.as_str())
        && let Ok(a) = format!("0x{}", a.trim_start_matches("0x")).parse()
    {
        return Inspected::Address(a);
    }
    // Geth writes "crypto", some older tools "Crypto". The ciphertext and its MAC identify the
    // key's encryption: the same file under any name or path, and never a different key.
    let crypto = v.get("crypto").or_else(|| v.get("Crypto"));
    let field = |k: &str| crypto.and_then(|c| c.get(k)).and_then(|x| x.as_str());
    match (field("ciphertext"), field("mac")) {
        (Some(ct), Some(mac)) => Inspected::Fingerprint(keccak256(
            format!("{}:{}", ct.to_ascii_lowercase(), mac.to_ascii_lowercase()).as_bytes(),
        )),
        _ => Inspected::NotKeystore,
    }
}

/// medrec's address book: keystore fingerprint -> address, for keystores without an
/// `address` field. Holds nothing secret.
type Book = BTreeMap<B256, Address>;

fn read_book(settings: &Settings) -> Book {
    std::fs::read_to_string(&settings.address_book)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Remembers `address` for the keystore with `fingerprint` (written atomically). A failure
/// only means the password is asked again next time, so it is not an error.
fn remember(settings: &Settings, fingerprint: B256, address: Address) {
    let mut book = read_book(settings);
    if book.insert(fingerprint, address) == Some(address) {
        return;
    }
    let path = &settings.address_book;
    let written = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&book)?)?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        tracing::warn!("cannot remember the address in {}: {e}", path.display());
    }
}

/// The address of the keystore at `path`, when it is known without the password.
pub fn known_address(settings: &Settings, path: &Path) -> KeystoreAddress {
    match inspect(path) {
        Inspected::Address(a) => KeystoreAddress::Known(a),
        Inspected::Fingerprint(f) => read_book(settings)
            .get(&f)
            .map_or(KeystoreAddress::Locked, |a| KeystoreAddress::Known(*a)),
        Inspected::NotKeystore => KeystoreAddress::NotKeystore,
    }
}

/// The accounts in the keystore folder: (name, what is known of its address), sorted by
/// name. Hidden files are not accounts.
pub fn list(settings: &Settings) -> Result<Vec<(String, KeystoreAddress)>> {
    let dir = &settings.keystore_dir;
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
        let name = entry.file_name().to_string_lossy().to_string();
        if !entry.path().is_file() || name.starts_with('.') {
            continue;
        }
        out.push((name, known_address(settings, &entry.path())));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The address recorded in a keystore file's `address` field, when it has one.
pub fn keystore_address(path: &Path) -> Option<Address> {
    match inspect(path) {
        Inspected::Address(a) => Some(a),
        _ => None,
    }
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

/// The address of the account named in the settings. Without the password when the keystore
/// or the address book holds it; otherwise the keystore is decrypted once (password file or
/// prompt, saying why on stderr) and its address remembered.
pub fn address(settings: &Settings) -> Result<Address> {
    let path = account_path(settings)?;
    match known_address(settings, &path) {
        KeystoreAddress::Known(a) => Ok(a),
        KeystoreAddress::NotKeystore => Err(CliError::Key(format!(
            "{} is not a keystore (Web3 Secret Storage JSON)",
            path.display()
        ))),
        KeystoreAddress::Locked => {
            if settings.password_file.is_none() && !can_prompt() {
                return Err(CliError::Key(format!(
                    "keystore {} holds no address (cast writes none) and medrec has not opened it yet: \
                     give --password-file once, or run 'medrec account address' in a terminal",
                    path.display()
                )));
            }
            if settings.notes {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "note: keystore {} holds no address (cast writes none): decrypting it once to learn it; \
                         medrec remembers it in {}",
                        path.display(),
                        settings.address_book.display()
                    );
                }
            }
            Ok(decrypt(settings, &path)?.address())
        }
    }
}

/// Decrypts the account named in the settings.
pub fn load(settings: &Settings) -> Result<PrivateKeySigner> {
    decrypt(settings, &account_path(settings)?)
}

/// Decrypts the keystore at `path`; the address of a keystore without an `address` field is
/// remembered in the address book, so that it is not asked for again.
fn decrypt(settings: &Settings, path: &Path) -> Result<PrivateKeySigner> {
    // What address-only commands showed for this account, read before decrypting: a file
    // changed on disk (its `address` field, or the parts its MAC does not cover) must not
    // sign as another key than the one the user saw.
    let shown = known_address(settings, path);
    let pw = password(
        settings,
        &format!("Password for {}: ", path.display()),
        false,
    )?;
    let signer = PrivateKeySigner::decrypt_keystore(path, pw.expose_secret()).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("Mac") || msg.contains("mac") {
            CliError::Key(format!("wrong password for {}", path.display()))
        } else {
            CliError::Key(format!("cannot decrypt {}: {msg}", path.display()))
        }
    })?;
    if let KeystoreAddress::Known(a) = shown
        && a != signer.address()
    {
        return Err(CliError::Key(format!(
            "{} says it holds {a} but decrypts to {}: the file was changed; not using it",
            path.display(),
            signer.address()
        )));
    }
    if let (KeystoreAddress::Locked, Inspected::Fingerprint(f)) = (shown, inspect(path)) {
        remember(settings, f, signer.address());
    }
    Ok(signer)
}
