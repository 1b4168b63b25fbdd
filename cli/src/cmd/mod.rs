//! One module per subcommand.

pub mod access_log;
pub mod account;
pub mod anchor;
pub mod break_glass;
pub mod deploy;
pub mod forget;
pub mod grant;
pub mod guardian;
pub mod holder;
pub mod import;
pub mod listing;
pub mod participant;
pub mod records;
pub mod study;
pub mod study_policy;

use crate::error::{CliError, Result};
use crate::keys;
use crate::opts::Settings;
use crate::units;
use alloy::primitives::Address;

/// The address of the account in the settings: without a password when its keystore or
/// medrec's address book holds it, else the keystore is decrypted once ([`keys::address`]).
pub fn own_address(settings: &Settings) -> Result<Address> {
    keys::address(settings)
}

/// `explicit` if given, else the settings' own account.
pub fn address_or_own(explicit: Option<&str>, what: &str, settings: &Settings) -> Result<Address> {
    match explicit {
        Some(a) => units::address(a, what),
        None => own_address(settings),
    }
}

/// A consent window `(start, end)` from `--from` (default `now`) and `--for` / `--until`,
/// where `now` is this machine's clock; refuses a window that is already over at `now`.
pub fn consent_window(
    from: Option<u64>,
    for_: Option<&str>,
    until: Option<&str>,
    now: u64,
) -> Result<(u64, u64)> {
    let start = from.unwrap_or(now);
    let end = window_end(for_, until, start)?;
    if end <= now {
        return Err(CliError::input(format!(
            "the window ends {}, which is already over",
            units::format_time(end)
        )));
    }
    Ok((start, end))
}

/// Resolves `--for` / `--until` (one required) into an end time after `start`.
pub fn window_end(for_: Option<&str>, until: Option<&str>, start: u64) -> Result<u64> {
    match (for_, until) {
        (Some(d), None) => Ok(start + units::duration(d)?),
        (None, Some(u)) => {
            let end = units::date(u)?;
            if end <= start {
                return Err(CliError::input(format!(
                    "--until {u} is not after the start"
                )));
            }
            Ok(end)
        }
        (None, None) => Err(CliError::input(
            "give --for DURATION (e.g. 90d) or --until DATE",
        )),
        (Some(_), Some(_)) => Err(CliError::input("give --for or --until, not both")),
    }
}
