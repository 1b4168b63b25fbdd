-- The access log becomes a Merkle tree (RFC 6962, SHA-256): tree_leaf is the leaf hash of an
-- entry, SHA-256(0x00 || abi.encode(seq - 1, at_ms, requester, record_id, patient, allowed,
-- reason, nonce)), and the holder anchors the tree's root at a size instead of a chain head.
-- Entries written before this migration keep their old hash-chain columns; their tree_leaf
-- is computed from their stored contents when the gatekeeper starts (the leaves take SHA-256
-- over an ABI encoding, which is not SQL's to compute). New entries have no chain columns.
ALTER TABLE gk_access_log ADD COLUMN tree_leaf BYTEA;
ALTER TABLE gk_access_log
    ALTER COLUMN leaf DROP NOT NULL,
    ALTER COLUMN prev_hash DROP NOT NULL,
    ALTER COLUMN entry_hash DROP NOT NULL;

-- How many entries the log had when it became a tree: anchors on chain of at most that many
-- entries are heads of the old hash chain, which no root of the tree matches.
CREATE TABLE gk_log_tree (
    one             BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    legacy_entries  BIGINT NOT NULL
);
INSERT INTO gk_log_tree (legacy_entries) SELECT count(*) FROM gk_access_log;

-- A patient's page of the log, and who is a patient here.
CREATE INDEX gk_access_log_patient_seq ON gk_access_log (patient, seq);
DROP INDEX gk_access_log_patient;
CREATE INDEX gk_records_patient ON gk_records (patient);
