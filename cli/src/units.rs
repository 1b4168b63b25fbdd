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

/// Parses a duration such as `90d`, `12h`, `30m`, `45s`, `2w` or `1y` into seconds; units
/// may be combined (`1y6w`, `1d 12h`). Parsed by jiff; every unit has a fixed length, as the
/// contracts count time in seconds: a day is 24 hours and a year 365 days (months, whose
/// length varies, are refused).
pub fn duration(s: &str) -> Result<u64> {
    let bad = || {
        CliError::input(format!(
            "bad duration {s:?}: expected a number and a unit, e.g. 90d, 12h, 30m, 2w, 1y"
        ))
    };
    let t = s.trim();
    // jiff also reads a bare sign or fraction; the accepted forms are whole units.
    if !t.starts_with(|c: char| c.is_ascii_digit()) || t.contains(['.', ',']) {
        return Err(bad());
    }
    let span: jiff::Span = t.parse().map_err(|_| bad())?;
    if span.get_months() != 0 {
        return Err(CliError::input(format!(
            "bad duration {s:?}: a month has no fixed length; give days or weeks"
        )));
    }
    if span.get_milliseconds() != 0 || span.get_microseconds() != 0 || span.get_nanoseconds() != 0 {
        return Err(bad());
    }
    let parts = [
        (i64::from(span.get_years()), 365 * 86_400),
        (i64::from(span.get_weeks()), 7 * 86_400),
        (i64::from(span.get_days()), 86_400),
        (i64::from(span.get_hours()), 3_600),
        (span.get_minutes(), 60),
        (span.get_seconds(), 1),
    ];
    let mut secs = 0u64;
    for (n, unit) in parts {
        let n = u64::try_from(n).map_err(|_| bad())?;
        secs = n
            .checked_mul(unit)
            .and_then(|x| secs.checked_add(x))
            .ok_or_else(bad)?;
    }
    if secs == 0 {
        return Err(CliError::input(format!(
            "bad duration {s:?}: must be more than zero"
        )));
    }
    Ok(secs)
}

/// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ` into unix seconds (jiff's
/// ISO 8601 parser; dates before 1970 are refused).
pub fn date(s: &str) -> Result<u64> {
    let t = s.trim();
    let bad = || {
        CliError::input(format!(
            "bad date {s:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"
        ))
    };
    let secs = if t.len() == 10 {
        let d: jiff::civil::Date = t.parse().map_err(|_| bad())?;
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|_| bad())?
            .timestamp()
            .as_second()
    } else {
        // Only UTC with whole seconds, as the help says: no offsets, no fractions.
        let shape = t.len() == 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z');
        if !shape {
            return Err(bad());
        }
        let ts: jiff::Timestamp = t.parse().map_err(|_| bad())?;
        ts.as_second()
    };
    u64::try_from(secs).map_err(|_| bad())
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (beyond the year 9999, which jiff does not
/// reach, as the plain number of seconds).
pub fn format_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(
            || format!("{secs} s after 1970"),
            |ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
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
        assert_eq!(duration("5y").ok(), Some(5 * 365 * 86_400));
        assert_eq!(duration("2w").ok(), Some(14 * 86_400));
        assert_eq!(duration("30m").ok(), Some(1_800));
        assert_eq!(duration("1d12h").ok(), Some(86_400 + 43_200));
        for bad in [
            "",
            "d",
            "90",
            "0d",
            "9x",
            "-1d",
            "1.5d",
            "99999999999999999999y",
            "1mo",
            "P1D",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date("1970-01-01").ok(), Some(0));
        assert_eq!(date("2026-11-22").ok(), Some(1_795_305_600));
        assert_eq!(format_time(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(date("2027-01-01T00:00:00Z").ok(), date("2027-01-01").ok());
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
            "2026-01-01T10:00:00+01:00",
            "1969-12-31",
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
