//! The indexer's read API: responses of `GET /v1/...`.
