//! Retries with exponential backoff (backon) for errors that say they are worth retrying.

use crate::error::Retryable;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable as _};
use std::future::Future;
use std::time::Duration;

/// The follower's backoff: from 100 ms, doubling, at most 5 s between tries, never giving up
/// (a node or database that comes back is used again; an error that retrying cannot fix stops
/// the retries instead).
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
}

/// Calls `f` until it succeeds or fails with an error that is not retryable; `on_retry` hears
/// of each retried error and the wait before the next try.
pub async fn retry<T, E, F, Fut>(f: F, on_retry: impl FnMut(&E, Duration)) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    f.retry(backoff())
        .when(|e: &E| e.is_retryable())
        .notify(on_retry)
        .await
}

/// The waits of a loop that retries by itself (one that does other work between tries):
/// [`Backoff::next_wait`] after a failure, [`Backoff::reset`] after a success.
#[derive(Debug)]
pub struct Backoff {
    waits: ExponentialBackoff,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            waits: backoff().build(),
        }
    }
}

impl Backoff {
    /// How long to wait before the next try.
    pub fn next_wait(&mut self) -> Duration {
        self.waits.next().unwrap_or(Duration::from_secs(5))
    }

    /// Starts again from the shortest wait.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, retry};
    use crate::ChainError;
    use std::time::Duration;

    #[test]
    fn waits_double_up_to_five_seconds() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn transport_errors_are_retried_integrity_errors_are_not() {
        let mut calls = 0;
        let mut heard = vec![];
        let r: Result<u32, ChainError> = retry(
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(ChainError::Transport("down".into()))
                    } else {
                        Ok(7)
                    }
                }
            },
            |e: &ChainError, wait| heard.push((e.clone(), wait)),
        )
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(heard.len(), 2);
        assert_eq!(heard[1].1.as_millis(), 200);

        let mut calls = 0;
        let r: Result<u32, ChainError> = retry(
            || {
                calls += 1;
                async { Err(ChainError::Integrity("bad log".into())) }
            },
            |_: &ChainError, _| {},
        )
        .await;
        assert_eq!(r, Err(ChainError::Integrity("bad log".into())));
        assert_eq!(calls, 1);
    }
}
