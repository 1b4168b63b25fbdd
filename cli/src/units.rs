//! Parsing of what users type: addresses, hashes, durations, dates, categories, purposes.

use crate::error::{CliError, Result};
use alloy::primitives::{Address, B256, keccak256};

/// Parses a 0x-prefixed 20-byte address (checksum checked when mixed-case).
pub fn address(s: &str, what: &str) -> Result<Address> {
    let t = s.trim();
    if !t.starts_with("0x") || t.len() != 42 {
        return Err(CliError::input(format!(
            "bad {what} address {s:?}: expected 0x followed by 40 hex digits"
        )));
    }
    let mixed = t[2..].chars().any(|c| c.is_ascii_uppercase())
        && t[2..].chars().any(|c| c.is_ascii_lowercase());
    let parsed = if mixed {
        Address::parse_checksummed(t, None).ok()
    } else {
        t.parse().ok()
    };
    parsed.ok_or_else(|| {
        CliError::input(format!(
            "bad {what} address {s:?}: not hex, or a wrong checksum"
        ))
    })
}

/// Parses a 0x-prefixed 32-byte hex value.
pub fn b256(s: &str, what: &str) -> Result<B256> {
    let t = s.trim();
    if t.starts_with("0x")
        && t.len() == 66
        && let Ok(v) = t.parse()
    {
        return Ok(v);
    }
    Err(CliError::input(format!(
        "bad {what} {s:?}: expected 0x followed by 64 hex digits"
    )))
}

/// A record id: 32-byte hex as is, any other text hashed with keccak256.
pub fn record_id(s: &str) -> Result<B256> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CliError::input("empty record id"));
    }
    if t.starts_with("0x") {
        return b256(t, "record id");
    }
    Ok(keccak256(t.as_bytes()))
}

/// Parses a duration such as `90d`, `12h`, `30m`, `45s`, `2w` or `1y` (365 days) into seconds.
pub fn duration(s: &str) -> Result<u64> {
    let t = s.trim();
    let bad = || {
        CliError::input(format!(
            "bad duration {s:?}: expected a number and a unit, e.g. 90d, 12h, 30m, 2w, 1y"
        ))
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 {
        return Err(CliError::input(format!(
            "bad duration {s:?}: must be more than zero"
        )));
    }
    Ok(secs)
}

/// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ` into unix seconds.
pub fn date(s: &str) -> Result<u64> {
    let t = s.trim();
    let bad = || {
        CliError::input(format!(
            "bad date {s:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"
        ))
    };
    let (d, time) = match t.split_once('T') {
        Some((d, rest)) => (d, Some(rest.strip_suffix('Z').ok_or_else(bad)?)),
        None => (t, None),
    };
    let parts: Vec<&str> = d.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let y: i64 = parts[0].parse().map_err(|_| bad())?;
    let m: u32 = parts[1].parse().map_err(|_| bad())?;
    let day: u32 = parts[2].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || day == 0 || day > days_in_month(y, m) || y < 1970 {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, day) * 86_400;
    if let Some(time) = time {
        let hms: Vec<&str> = time.split(':').collect();
        if hms.len() != 3 {
            return Err(bad());
        }
        let h: i64 = hms[0].parse().map_err(|_| bad())?;
        let mi: i64 = hms[1].parse().map_err(|_| bad())?;
        let se: i64 = hms[2].parse().map_err(|_| bad())?;
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&se) {
            return Err(bad());
        }
        secs += h * 3600 + mi * 60 + se;
    }
    u64::try_from(secs).map_err(|_| bad())
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses a comma-separated list of category names (or numbers 0..=63) into a mask.
pub fn categories(s: &str) -> Result<u64> {
    let mut mask = 0u64;
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let i = category(name)?;
        mask |= 1u64 << i;
    }
    if mask == 0 {
        return Err(CliError::input("no categories given"));
    }
    Ok(mask)
}

/// Parses one category name (or number 0..=63).
pub fn category(name: &str) -> Result<u8> {
    medrec_bindings::category_index(name).ok_or_else(|| {
        let known: Vec<&str> = medrec_bindings::CATEGORIES
            .iter()
            .map(|(n, _)| *n)
            .collect();
        CliError::input(format!(
            "unknown category {name:?}; known: {}",
            known.join(", ")
        ))
    })
}

/// Parses a purpose name (or code 1..=255).
pub fn purpose(name: &str) -> Result<u8> {
    medrec_bindings::purpose_code(name).ok_or_else(|| {
        let known: Vec<&str> = medrec_bindings::PURPOSES.iter().map(|(n, _)| *n).collect();
        CliError::input(format!(
            "unknown purpose {name:?}; known: {}",
            known.join(", ")
        ))
    })
}

/// Converts unix seconds to the contracts' `uint40`.
pub fn to_u40(secs: u64, what: &str) -> Result<alloy::primitives::aliases::U40> {
    if secs >= 1 << 40 {
        return Err(CliError::input(format!("{what} is too far in the future")));
    }
    Ok(alloy::primitives::aliases::U40::from(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("90d").ok(), Some(90 * 86_400));
        assert_eq!(duration("12h").ok(), Some(43_200));
        assert_eq!(duration("1y").ok(), Some(365 * 86_400));
        for bad in [
            "",
            "d",
            "90",
            "0d",
            "9x",
            "-1d",
            "1.5d",
            "99999999999999999999y",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date("1970-01-01").ok(), Some(0));
        assert_eq!(date("2026-11-22").ok(), Some(1_795_305_600));
        assert_eq!(format_time(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(
            date("2024-02-29T12:30:00Z")
                .map(format_time)
                .ok()
                .as_deref(),
            Some("2024-02-29T12:30:00Z")
        );
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "26-01-01",
            "2026-01-01T25:00:00Z",
            "tomorrow",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses() {
        assert!(address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "x").is_ok());
        assert!(address("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "x").is_ok());
        assert!(address("0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "x").is_err());
        assert!(address("0x1234", "x").is_err());
        assert!(address("f39fd6e51aad88f6f4ce6ab8827279cfffb92266zz", "x").is_err());
    }

    #[test]
    fn category_lists() {
        assert_eq!(categories("labs, notes").ok(), Some((1 << 3) | (1 << 8)));
        assert!(categories("labs,xrays").is_err());
        assert!(categories(" , ").is_err());
    }
}
