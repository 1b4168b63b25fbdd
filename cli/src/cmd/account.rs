//! `medrec account`: keystore accounts.

use crate::error::Result;
use crate::keys::{self, KeystoreAddress};
use crate::opts::Settings;
use crate::output::{self, Printer};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// Account subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Create a new random key in an encrypted keystore file named NAME
    New(NewArgs),
    /// Import a private key (from a file, or typed at a hidden prompt) as NAME
    Import(ImportArgs),
    /// List the accounts in the keystore folder
    List,
    /// Print the address of an account (no password needed, except once for a keystore
    /// without an address field, as cast writes them)
    Address(AddressArgs),
}

/// `account new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Account name (the keystore file's name)
    pub name: String,
}

/// `account import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Account name (the keystore file's name)
    pub name: String,
    /// File whose first line is the private key in hex (otherwise: hidden prompt)
    #[arg(long)]
    pub private_key_file: Option<PathBuf>,
}

/// `account address`.
#[derive(Debug, Args)]
pub struct AddressArgs {
    /// Account name or keystore path [default: --account]
    pub name: Option<String>,
}

/// Runs an account subcommand.
pub fn run(cmd: AccountCmd, settings: &Settings, out: Printer) -> Result<()> {
    match cmd {
        AccountCmd::New(a) => {
            let (address, path) = keys::create(settings, &a.name)?;
            out.result(
                "account new",
                json!({"name": a.name, "address": address, "keystore": path}),
                &format!(
                    "created account {} {address}\nkeystore: {}",
                    a.name,
                    path.display()
                ),
            );
        }
        AccountCmd::Import(a) => {
            let (address, path) = keys::import(settings, &a.name, a.private_key_file.as_deref())?;
            out.result(
                "account import",
                json!({"name": a.name, "address": address, "keystore": path}),
                &format!(
                    "imported account {} {address}\nkeystore: {}",
                    a.name,
                    path.display()
                ),
            );
        }
        AccountCmd::List => {
            let accounts = keys::list(settings)?;
            let rows: Vec<_> = accounts
                .iter()
                .map(|(n, a)| match a {
                    KeystoreAddress::Known(a) => json!({"name": n, "address": a}),
                    KeystoreAddress::Locked => {
                        json!({"name": n, "address": null, "locked": true})
                    }
                    KeystoreAddress::NotKeystore => json!({"name": n, "address": null}),
                })
                .collect();
            let human = if accounts.is_empty() {
                format!("no accounts in {}", settings.keystore_dir.display())
            } else {
                output::table(
                    &["NAME", "ADDRESS"],
                    accounts.iter().map(|(n, a)| {
                        let address = match a {
                            KeystoreAddress::Known(a) => a.to_string(),
                            KeystoreAddress::Locked => format!(
                                "(not known yet: 'medrec account address {n}' asks the password once)"
                            ),
                            KeystoreAddress::NotKeystore => "(not a keystore)".to_string(),
                        };
                        vec![n.clone(), address]
                    }),
                )
            };
            out.result(
                "account list",
                json!({"keystoreDir": settings.keystore_dir, "accounts": rows}),
                &human,
            );
        }
        AccountCmd::Address(a) => {
            let mut s = settings.clone();
            if a.name.is_some() {
                s.account = a.name;
            }
            let address = super::own_address(&s)?;
            out.result(
                "account address",
                json!({"address": address}),
                &address.to_string(),
            );
        }
    }
    Ok(())
}
