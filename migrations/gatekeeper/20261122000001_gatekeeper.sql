-- A holder's gatekeeper: records encrypted at rest, and the hash-chained access log.

-- Each record is encrypted with its own data key (AES-256-GCM); the data key is stored
-- wrapped (encrypted) by the master key, which never enters the database.
CREATE TABLE gk_records (
    record_id     BYTEA PRIMARY KEY,
    patient       BYTEA NOT NULL,
    category      SMALLINT NOT NULL,
    content_hash  BYTEA NOT NULL,
    size          INT NOT NULL,
    data_nonce    BYTEA NOT NULL,
    ciphertext    BYTEA NOT NULL,
    key_nonce     BYTEA NOT NULL,
    wrapped_key   BYTEA NOT NULL,
    stored_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every read and every denial, in order. entry_hash = keccak256(prev_hash || leaf), where
-- leaf = keccak256(abi.encode(seq, at_ms, requester, record_id, patient, allowed, reason,
-- nonce)); the first prev_hash is zero. A patient sees the leaves of other patients' entries
-- only, and can still recompute every entry hash up to the head anchored on chain.
CREATE TABLE gk_access_log (
    seq         BIGINT PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    requester   BYTEA NOT NULL,
    record_id   BYTEA NOT NULL,
    patient     BYTEA NOT NULL,
    allowed     BOOLEAN NOT NULL,
    reason      TEXT NOT NULL,
    nonce       BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL,
    leaf        BYTEA NOT NULL,
    prev_hash   BYTEA NOT NULL,
    entry_hash  BYTEA NOT NULL
);
CREATE INDEX gk_access_log_patient ON gk_access_log (patient);
CREATE INDEX gk_access_log_expires ON gk_access_log (expires_at);

-- Upload nonces already used by the holder.
CREATE TABLE gk_upload_nonces (
    nonce    BYTEA PRIMARY KEY,
    used_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
