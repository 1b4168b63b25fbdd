//! `medrec-serve`: the one HTTP listener of medrec's services (the gatekeeper, the indexer's
//! read API). It puts three bounds in front of an axum router, so that a client that sends
//! slowly cannot hold the service's connections (and file descriptors) for long:
//!
//! - **headers**: a request's head must arrive within [`ConnectionLimits::header_timeout`]
//!   of the moment the connection starts waiting for it (a new connection, or an idle
//!   keep-alive one); otherwise the connection is closed without an answer. This is hyper's
//!   `header_read_timeout`, which needs a timer: `axum::serve` sets none, hence this crate.
//! - **body**: the whole body must arrive within [`ConnectionLimits::body_timeout`] of the
//!   head. A handler reading it then gets an error, and the answer is replaced by
//!   `408 request_timeout` with the connection closed. The bound is on the whole body, not
//!   between chunks (tower-http's `RequestBodyTimeoutLayer` resets at every chunk, so one
//!   byte every few seconds never trips it), and it never cuts a handler that is working,
//!   such as the indexer's `?min_block` wait.
//! - **connections**: at most [`ConnectionLimits::max_connections`] are open at once. The
//!   listener accepts no more until one closes; the rest wait in the kernel's backlog, where
//!   they cost the process no file descriptor. Nothing is reserved for `/health`: once the
//!   slow connections time out, it is answered.
//!
//! Answers are not bounded in time: a client that reads an answer slowly holds its
//! connection until the kernel's send buffer drains (the largest answer is a record of a few
//! MiB).

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use medrec_protocol::{ErrorBody, ErrorCode};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Default seconds for a request's head to arrive.
pub const HEADER_TIMEOUT_SECS: u64 = 5;
/// Default seconds for a request's body to arrive after its head.
pub const BODY_TIMEOUT_SECS: u64 = 10;
/// Default open connections at once: well below the usual limit of 1,024 file descriptors,
/// leaving room for the database pool, the node and the log.
pub const MAX_CONNECTIONS: usize = 512;

/// The listener's bounds, as command-line options (flattened into each service's).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connections")]
pub struct ConnectionLimits {
    /// Seconds a client has to send a request's head (also the longest an idle keep-alive
    /// connection stays open); then the connection is closed
    #[arg(long = "header-timeout", value_name = "SECS", default_value_t = HEADER_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body after its head; then it gets 408
    /// and the connection is closed
    #[arg(long = "body-timeout", value_name = "SECS", default_value_t = BODY_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// Connections open at once; more wait (unaccepted) until one closes. Keep it below the
    /// process's file-descriptor limit (`ulimit -n`) less what the service needs besides
    #[arg(long, value_name = "N", default_value_t = MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout_secs: HEADER_TIMEOUT_SECS,
            body_timeout_secs: BODY_TIMEOUT_SECS,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// How long a request's head may take.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    /// How long a request's body may take after its head.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }
}

/// Serves `router` on `listener` within `limits` until the listener fails for good (it does
/// not: accept errors are logged and retried).
pub async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits) {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout());
    let body_timeout = limits.body_timeout();
    let mut full = false;
    loop {
        // Said once each time the limit is reached, not at every connection.
        if open.available_permits() == 0 {
            if !full {
                tracing::warn!(target: "medrec::serve", limit = limits.max_connections, "connection limit reached; new connections wait");
            }
            full = true;
        } else {
            full = false;
        }
        // A connection is accepted only with a permit in hand: over the limit, the kernel
        // keeps it in the backlog instead of the process holding a descriptor for it.
        let Ok(permit) = open.clone().acquire_owned().await else {
            return; // never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            handle(router.clone(), body_timeout, req)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "medrec::serve", error = %e, "connection closed");
            }
            drop(permit);
        });
    }
}

/// After a failed accept: a client that went away is nothing; anything else (out of file
/// descriptors, say) is logged and waited out, as hyper's server did.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(target: "medrec::serve", error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One request: its body bounded in time, then the router; a body that ran out of time
/// makes the answer `408 request_timeout` whatever the handler made of the failed read.
fn handle(
    router: Router,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> {
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Instant::now() + body_timeout,
            sleep: None,
            expired: expired.clone(),
        })
    });
    async move {
        let answer = router.oneshot(req).await?;
        if expired.load(Ordering::Relaxed) {
            let mut timeout = (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(ErrorBody::new(
                    ErrorCode::RequestTimeout,
                    "the request body did not arrive in time",
                )),
            )
                .into_response();
            timeout
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(timeout);
        }
        Ok(answer)
    }
}

/// A request body that fails once its deadline has passed, and says so in `expired`.
struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    /// Made at the first read: a body never read (a GET) costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

/// The error a body gives once its deadline has passed.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Pin::new(&mut this.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
