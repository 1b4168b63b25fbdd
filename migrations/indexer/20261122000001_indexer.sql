-- The indexer's mirror of the medrec contracts.
--
-- Addresses and hashes are BYTEA. Category masks (uint64) are BIGINT holding the same 64 bits
-- (two's complement), so bit tests work in SQL. Times are unix seconds (BIGINT).
--
-- Three layers:
--   1. one typed table per contract event (ev_*), keyed by (block_number, log_index);
--   2. history tables (*_history): each row is a state that held from block `from_block`
--      (inclusive) until `to_block` (exclusive; NULL while current). They answer "what held at
--      block B" and make a reorg rollback exact: delete rows with from_block > fork, reopen rows
--      with to_block > fork;
--   3. current-state views over the open history rows (grants, guardians, credentials,
--      emergency_accesses) and the pointers table.
-- Plus the cursor and the recent block hashes used to detect reorgs.

CREATE TABLE indexer_cursor (
    id            SMALLINT PRIMARY KEY CHECK (id = 1),
    chain_id      BIGINT NOT NULL,
    contracts     BYTEA[] NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    BYTEA NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Hashes of recently indexed blocks (batch ends and blocks holding events).
CREATE TABLE indexed_blocks (
    block_number  BIGINT PRIMARY KEY,
    block_hash    BYTEA NOT NULL,
    timestamp     BIGINT NOT NULL
);

-- Events -------------------------------------------------------------------------------------

CREATE TABLE ev_credential_issued (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    account BYTEA NOT NULL, role SMALLINT NOT NULL, ref BYTEA NOT NULL,
    issued_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_credential_revoked (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    account BYTEA NOT NULL, role SMALLINT NOT NULL, revoked_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_granted (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, grantee BYTEA NOT NULL, by_account BYTEA NOT NULL,
    categories BIGINT NOT NULL, purpose SMALLINT NOT NULL,
    not_before BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_revoked (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, grantee BYTEA NOT NULL, by_account BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_guardian_set (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, guardian BYTEA NOT NULL, scope BIGINT NOT NULL,
    not_before BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_guardian_removed (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, guardian BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_emergency_opened (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, provider BYTEA NOT NULL, reason_hash BYTEA NOT NULL,
    opened_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_emergency_closed (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, provider BYTEA NOT NULL, by_account BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_emergency_cap_set (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    cap BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_pointer_anchored (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    record_id BYTEA NOT NULL, patient BYTEA NOT NULL, holder BYTEA NOT NULL,
    category SMALLINT NOT NULL, content_hash BYTEA NOT NULL, locator TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_pointer_superseded (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    old_record_id BYTEA NOT NULL, new_record_id BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_granted_patient ON ev_granted (patient);
CREATE INDEX ev_revoked_patient ON ev_revoked (patient);
CREATE INDEX ev_guardian_set_patient ON ev_guardian_set (patient);
CREATE INDEX ev_guardian_removed_patient ON ev_guardian_removed (patient);
CREATE INDEX ev_emergency_opened_patient ON ev_emergency_opened (patient);
CREATE INDEX ev_emergency_closed_patient ON ev_emergency_closed (patient);
CREATE INDEX ev_pointer_anchored_patient ON ev_pointer_anchored (patient);

-- History ------------------------------------------------------------------------------------

CREATE TABLE grant_history (
    patient BYTEA NOT NULL, grantee BYTEA NOT NULL, by_account BYTEA NOT NULL,
    categories BIGINT NOT NULL, purpose SMALLINT NOT NULL,
    not_before BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    from_block BIGINT NOT NULL, from_log INT NOT NULL,
    to_block BIGINT, end_reason TEXT,
    PRIMARY KEY (patient, grantee, from_block, from_log)
);
CREATE UNIQUE INDEX grant_history_open ON grant_history (patient, grantee) WHERE to_block IS NULL;
CREATE INDEX grant_history_grantee ON grant_history (grantee) WHERE to_block IS NULL;
CREATE INDEX grant_history_to ON grant_history (to_block);

CREATE TABLE guardian_history (
    patient BYTEA NOT NULL, guardian BYTEA NOT NULL, scope BIGINT NOT NULL,
    not_before BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    from_block BIGINT NOT NULL, from_log INT NOT NULL,
    to_block BIGINT, end_reason TEXT,
    PRIMARY KEY (patient, guardian, from_block, from_log)
);
CREATE UNIQUE INDEX guardian_history_open ON guardian_history (patient, guardian) WHERE to_block IS NULL;
CREATE INDEX guardian_history_to ON guardian_history (to_block);

CREATE TABLE credential_history (
    account BYTEA NOT NULL, role SMALLINT NOT NULL, ref BYTEA NOT NULL,
    issued_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    from_block BIGINT NOT NULL, from_log INT NOT NULL,
    to_block BIGINT, end_reason TEXT,
    PRIMARY KEY (account, from_block, from_log)
);
CREATE UNIQUE INDEX credential_history_open ON credential_history (account) WHERE to_block IS NULL;
CREATE INDEX credential_history_to ON credential_history (to_block);

CREATE TABLE emergency_history (
    patient BYTEA NOT NULL, provider BYTEA NOT NULL, reason_hash BYTEA NOT NULL,
    opened_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
    from_block BIGINT NOT NULL, from_log INT NOT NULL,
    to_block BIGINT, end_reason TEXT,
    PRIMARY KEY (patient, provider, from_block, from_log)
);
CREATE UNIQUE INDEX emergency_history_open ON emergency_history (patient, provider) WHERE to_block IS NULL;
CREATE INDEX emergency_history_to ON emergency_history (to_block);

CREATE TABLE pointers (
    record_id BYTEA PRIMARY KEY,
    patient BYTEA NOT NULL, holder BYTEA NOT NULL, category SMALLINT NOT NULL,
    content_hash BYTEA NOT NULL, locator TEXT NOT NULL,
    anchored_block BIGINT NOT NULL, anchored_log INT NOT NULL,
    superseded_by BYTEA, superseded_block BIGINT
);
CREATE INDEX pointers_patient ON pointers (patient);
CREATE INDEX pointers_anchored ON pointers (anchored_block);

-- Current state ------------------------------------------------------------------------------

CREATE VIEW grants AS
    SELECT patient, grantee, by_account, categories, purpose, not_before, expires_at,
           from_block AS block_number
    FROM grant_history WHERE to_block IS NULL;
CREATE VIEW guardians AS
    SELECT patient, guardian, scope, not_before, expires_at, from_block AS block_number
    FROM guardian_history WHERE to_block IS NULL;
CREATE VIEW credentials AS
    SELECT account, role, ref, issued_at, expires_at, from_block AS block_number
    FROM credential_history WHERE to_block IS NULL;
CREATE VIEW emergency_accesses AS
    SELECT patient, provider, reason_hash, opened_at, expires_at, from_block AS block_number
    FROM emergency_history WHERE to_block IS NULL;
