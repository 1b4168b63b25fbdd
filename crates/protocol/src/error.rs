//! Error codes and the error body of the gatekeeper and the indexer's read API: every error
//! answer is `{"error":{"code":"...","message":"..."}}` with the HTTP status its code names.
//!
//! A refused read always says `denied` (403), whether or not the record exists, and never
//! why: the reason goes into the holder's access log only.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An error code, as the `code` of an [`ErrorBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was refused (signature, audience, freshness, replay, the chain, a study's
    /// state): 403, and no more said.
    Denied,
    /// The body or a header is not what the endpoint expects: 400.
    Malformed,
    /// The body is larger than the endpoint accepts: 413.
    TooLarge,
    /// An upload's body does not hash to its signed `contentHash`: 400.
    HashMismatch,
    /// An upload's body is not a FHIR R4 JSON resource: 400.
    NotFhir,
    /// An upload's category is not 0 to 63: 400.
    BadCategory,
    /// Too many requests from this requester: 429.
    RateLimited,
    /// The database or the chain cannot be reached now; try again later: 503.
    Unavailable,
    /// Something failed inside the gatekeeper: 500.
    Internal,
    /// A stored record does not decrypt: 500.
    Integrity,
    /// No such endpoint: 404.
    NotFound,
    /// This gatekeeper has no holder key to sign research answers: 503.
    NoResearch,
    /// The research query is malformed or outside the vocabulary: 400.
    BadQuery,
    /// The database failed while answering a research query: 503.
    Database,
    /// The chain failed while answering a research query: 503.
    Chain,
    /// A new research query pins a block that is too old or in the future: 409.
    PinnedBlock,
    /// The study's privacy budget cannot pay the query: 403.
    BudgetExhausted,
    /// This holder gave an answer of the study whose receipt is not on chain yet: 409.
    UnrecordedAnswer,
    /// The receipt on chain does not pay for this holder's answer: 403.
    ReceiptMismatch,
    /// The indexer: a query parameter is malformed: 400.
    BadRequest,
    /// The indexer: the block asked for is not indexed yet: 503.
    NotIndexedYet,
    /// The indexer: the node failed: 502.
    Rpc,
    /// The request's body did not arrive within the server's body timeout: 408, and the
    /// connection is closed.
    RequestTimeout,
    /// The gatekeeper's node is behind: its latest block is older than the gatekeeper's bound,
    /// so the chain cannot say whether a read is allowed now; try again later: 503.
    ChainStale,
    /// The indexer: a per-patient or per-grantee route was asked without a valid signed
    /// request (none, a bad signature, another path, expired, a replayed nonce): 401.
    Unauthenticated,
    /// The record was erased by its holder (its data key destroyed): 410.
    Erased,
    /// The holder's order names a record this gatekeeper does not keep: 404, distinct from
    /// [`ErrorCode::NotFound`] (no such route), so a client sent to a wrong URL or path never
    /// takes that for "nothing to destroy here".
    NoSuchRecord,
    /// A code this version does not know (a newer gatekeeper's).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code this version knows.
    pub const ALL: [ErrorCode; 27] = [
        Self::Denied,
        Self::Malformed,
        Self::TooLarge,
        Self::HashMismatch,
        Self::NotFhir,
        Self::BadCategory,
        Self::RateLimited,
        Self::Unavailable,
        Self::Internal,
        Self::Integrity,
        Self::NotFound,
        Self::NoResearch,
        Self::BadQuery,
        Self::Database,
        Self::Chain,
        Self::PinnedBlock,
        Self::BudgetExhausted,
        Self::UnrecordedAnswer,
        Self::ReceiptMismatch,
        Self::BadRequest,
        Self::NotIndexedYet,
        Self::Rpc,
        Self::RequestTimeout,
        Self::ChainStale,
        Self::Unauthenticated,
        Self::Erased,
        Self::NoSuchRecord,
    ];

    /// The code as it is written in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::HashMismatch => "hash_mismatch",
            Self::NotFhir => "not_fhir",
            Self::BadCategory => "bad_category",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::Integrity => "integrity",
            Self::NotFound => "not_found",
            Self::NoResearch => "no_research",
            Self::BadQuery => "bad_query",
            Self::Database => "database",
            Self::Chain => "chain",
            Self::PinnedBlock => "pinned_block",
            Self::BudgetExhausted => "budget_exhausted",
            Self::UnrecordedAnswer => "unrecorded_answer",
            Self::ReceiptMismatch => "receipt_mismatch",
            Self::BadRequest => "bad_request",
            Self::NotIndexedYet => "not_indexed_yet",
            Self::Rpc => "rpc",
            Self::RequestTimeout => "request_timeout",
            Self::ChainStale => "chain_stale",
            Self::Unauthenticated => "unauthenticated",
            Self::Erased => "erased",
            Self::NoSuchRecord => "no_such_record",
            Self::Unknown => "unknown",
        }
    }

    /// The HTTP status that goes with the code.
    pub const fn status(self) -> u16 {
        match self {
            Self::Malformed
            | Self::HashMismatch
            | Self::NotFhir
            | Self::BadCategory
            | Self::BadQuery
            | Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::Denied | Self::BudgetExhausted | Self::ReceiptMismatch => 403,
            Self::NotFound | Self::NoSuchRecord => 404,
            Self::RequestTimeout => 408,
            Self::Erased => 410,
            Self::PinnedBlock | Self::UnrecordedAnswer => 409,
            Self::TooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal | Self::Integrity | Self::Unknown => 500,
            Self::Rpc => 502,
            Self::Unavailable
            | Self::NoResearch
            | Self::Database
            | Self::Chain
            | Self::NotIndexedYet
            | Self::ChainStale => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What an [`ErrorBody`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// What kind of error, for programs.
    pub code: ErrorCode,
    /// What happened, for people.
    pub message: String,
}

impl ErrorBody {
    /// An error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }

    /// The one answer every refused request gets, whatever the reason.
    pub fn denied() -> Self {
        Self::new(ErrorCode::Denied, "request denied")
    }

    /// The error body in `bytes`, if they hold one.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The code and message of an error answer, for a person: the code as the server wrote it
    /// (also one this version does not know), `unknown` and `no message` for what is missing.
    pub fn describe(bytes: &[u8]) -> (String, String) {
        #[derive(Deserialize)]
        struct Raw {
            error: RawDetail,
        }
        #[derive(Deserialize)]
        struct RawDetail {
            code: Option<String>,
            message: Option<String>,
        }
        match serde_json::from_slice::<Raw>(bytes) {
            Ok(Raw { error }) => (
                error.code.unwrap_or_else(|| "unknown".into()),
                error.message.unwrap_or_else(|| "no message".into()),
            ),
            Err(_) => ("unknown".into(), "no message".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_written_as_their_names_and_read_back() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"a_newer_code\"").unwrap(),
            ErrorCode::Unknown
        );
    }

    #[test]
    fn an_error_answer_is_described_with_the_code_the_server_wrote() {
        let cases: [(&[u8], (&str, &str)); 5] = [
            (
                br#"{"error":{"code":"denied","message":"request denied"}}"#,
                ("denied", "request denied"),
            ),
            (
                br#"{"error":{"code":"a_newer_code","message":"m"}}"#,
                ("a_newer_code", "m"),
            ),
            (
                br#"{"error":{"code":"rate_limited"}}"#,
                ("rate_limited", "no message"),
            ),
            (br#"{"error":{}}"#, ("unknown", "no message")),
            (b"<html>bad gateway</html>", ("unknown", "no message")),
        ];
        for (bytes, (code, message)) in cases {
            assert_eq!(
                ErrorBody::describe(bytes),
                (code.to_string(), message.to_string())
            );
        }
    }

    #[test]
    fn codes_have_the_statuses_clients_rely_on() {
        for (code, status) in [
            (ErrorCode::Denied, 403),
            (ErrorCode::Malformed, 400),
            (ErrorCode::TooLarge, 413),
            (ErrorCode::HashMismatch, 400),
            (ErrorCode::NotFhir, 400),
            (ErrorCode::BadCategory, 400),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Unavailable, 503),
            (ErrorCode::Internal, 500),
            (ErrorCode::Integrity, 500),
            (ErrorCode::NotFound, 404),
            (ErrorCode::NoResearch, 503),
            (ErrorCode::BadQuery, 400),
            (ErrorCode::Database, 503),
            (ErrorCode::Chain, 503),
            (ErrorCode::PinnedBlock, 409),
            (ErrorCode::BudgetExhausted, 403),
            (ErrorCode::UnrecordedAnswer, 409),
            (ErrorCode::ReceiptMismatch, 403),
            (ErrorCode::BadRequest, 400),
            (ErrorCode::NotIndexedYet, 503),
            (ErrorCode::Rpc, 502),
            (ErrorCode::RequestTimeout, 408),
            (ErrorCode::ChainStale, 503),
            (ErrorCode::Unauthenticated, 401),
            (ErrorCode::Erased, 410),
            (ErrorCode::NoSuchRecord, 404),
        ] {
            assert_eq!(code.status(), status, "{code}");
        }
    }

    #[test]
    fn the_error_body_round_trips_byte_for_byte() {
        let text = r#"{"error":{"code":"rate_limited","message":"too many requests"}}"#;
        let body: ErrorBody = serde_json::from_str(text).unwrap();
        assert_eq!(
            body,
            ErrorBody::new(ErrorCode::RateLimited, "too many requests")
        );
        assert_eq!(serde_json::to_string(&body).unwrap(), text);
        assert_eq!(
            serde_json::to_string(&ErrorBody::denied()).unwrap(),
            r#"{"error":{"code":"denied","message":"request denied"}}"#
        );
        assert_eq!(ErrorBody::parse(b"<html>"), None);
    }
}
