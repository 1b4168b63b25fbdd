//! How long a signed gatekeeper request is valid, and the client's patience.
//!
//! Every signed request carries the time it was signed (`issuedAt`) and, except an upload,
//! the end of its validity (`expiresAt`), both in seconds since the epoch. The gatekeeper
//! refuses a request outside its window; a nonce is remembered only until its request
//! expires, so the window also bounds what the gatekeeper must remember.

use std::time::Duration;

/// How far a request's `issuedAt` may be ahead of the gatekeeper's clock.
pub const SKEW_SECS: u64 = 30;

/// The longest validity of a signed request (`expiresAt - issuedAt`), and how old an upload's
/// `issuedAt` may be.
pub const MAX_VALIDITY_SECS: u64 = 300;

/// The validity `medrec` gives a read or an access-log request it signs.
pub const READ_VALIDITY_SECS: u64 = 60;

/// The validity `medrec` gives a research query it signs (holders may take longer to answer).
pub const RESEARCH_VALIDITY_SECS: u64 = 120;

/// How long a client waits for a gatekeeper's answer before giving up.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request's time window is refused. The texts are what the access log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// `issuedAt` is more than [`SKEW_SECS`] ahead of the clock.
    #[error("issued in the future")]
    IssuedInFuture,
    /// `expiresAt` has passed.
    #[error("expired")]
    Expired,
    /// `expiresAt` is not after `issuedAt`, or more than [`MAX_VALIDITY_SECS`] after it.
    #[error("validity window too long or empty")]
    BadWindow,
}

/// Seconds since the epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Checks a request's window (`issued_at`, `expires_at`) at time `now`.
pub fn check_window(issued_at: u64, expires_at: u64, now: u64) -> Result<(), WindowError> {
    if issued_at > now + SKEW_SECS {
        return Err(WindowError::IssuedInFuture);
    }
    if expires_at <= now {
        return Err(WindowError::Expired);
    }
    if expires_at <= issued_at || expires_at - issued_at > MAX_VALIDITY_SECS {
        return Err(WindowError::BadWindow);
    }
    Ok(())
}

/// Whether an upload signed at `issued_at` is fresh at `now`: at most [`SKEW_SECS`] ahead and
/// [`MAX_VALIDITY_SECS`] behind (an upload has no `expiresAt`: its nonce is kept for good).
pub fn upload_is_fresh(issued_at: u64, now: u64) -> bool {
    issued_at <= now + SKEW_SECS && issued_at + MAX_VALIDITY_SECS >= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_refused_for_the_reason_the_log_records() {
        let now = 1_000_000;
        assert_eq!(check_window(now, now + 60, now), Ok(()));
        assert_eq!(check_window(now + SKEW_SECS, now + 60, now), Ok(()));
        assert_eq!(
            check_window(now + SKEW_SECS + 1, now + 60, now),
            Err(WindowError::IssuedInFuture)
        );
        assert_eq!(check_window(now - 60, now, now), Err(WindowError::Expired));
        assert_eq!(
            check_window(now - 10, now + MAX_VALIDITY_SECS, now),
            Err(WindowError::BadWindow)
        );
        assert_eq!(
            check_window(now + 20, now + 10, now),
            Err(WindowError::BadWindow)
        );
        assert_eq!(
            check_window(now, now + MAX_VALIDITY_SECS, now),
            Ok(()),
            "the longest window is allowed"
        );
        assert_eq!(WindowError::Expired.to_string(), "expired");
        assert_eq!(
            WindowError::IssuedInFuture.to_string(),
            "issued in the future"
        );
        assert_eq!(
            WindowError::BadWindow.to_string(),
            "validity window too long or empty"
        );
    }

    #[test]
    fn uploads_are_fresh_within_the_skew_and_the_longest_validity() {
        let now = 1_000_000;
        assert!(upload_is_fresh(now, now));
        assert!(upload_is_fresh(now + SKEW_SECS, now));
        assert!(!upload_is_fresh(now + SKEW_SECS + 1, now));
        assert!(upload_is_fresh(now - MAX_VALIDITY_SECS, now));
        assert!(!upload_is_fresh(now - MAX_VALIDITY_SECS - 1, now));
    }
}
