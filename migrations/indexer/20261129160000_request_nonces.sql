-- Nonces of the signed requests the read API's per-patient and per-grantee routes require
-- (issue 16): each is used once. A row is keccak256(requester ‖ nonce), not the requester, so
-- the table does not list who read what; it is kept until its request expires (at most 120 s
-- after signing) and then pruned by the API. Not an indexed table: reorgs and re-indexing
-- leave it alone.
CREATE TABLE api_request_nonces (
    key BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX api_request_nonces_expiry ON api_request_nonces (expires_at);
