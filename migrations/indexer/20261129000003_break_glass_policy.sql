-- Break-glass bounded by governance policy (issue 14): each opening's id and review deadline,
-- governance's reviews, openings recorded overdue, providers' unjustified counts cleared, the
-- policy, and patients' standing rules (the sensitive categories break-glass never opens).
--
-- Typed ev_* tables as for every event (rolled back with their blocks on a reorg), and
-- current-state views over them: no history table is needed, as each view reads the latest
-- event of its key.

CREATE TABLE ev_emergency_justification_due (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    opening_id BIGINT NOT NULL, patient BYTEA NOT NULL, provider BYTEA NOT NULL,
    review_by BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
-- Opening ids are unique on chain: the index makes that an integrity check.
CREATE UNIQUE INDEX ev_emergency_justification_due_id ON ev_emergency_justification_due (opening_id);
CREATE INDEX ev_emergency_justification_due_patient ON ev_emergency_justification_due (patient);
CREATE INDEX ev_emergency_justification_due_provider ON ev_emergency_justification_due (provider);
CREATE TABLE ev_emergency_reviewed (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    opening_id BIGINT NOT NULL, provider BYTEA NOT NULL, justified SMALLINT NOT NULL,
    unjustified BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_emergency_reviewed_id ON ev_emergency_reviewed (opening_id);
CREATE TABLE ev_emergency_overdue (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    opening_id BIGINT NOT NULL, provider BYTEA NOT NULL, unjustified BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_emergency_overdue_id ON ev_emergency_overdue (opening_id);
CREATE TABLE ev_emergency_unjustified_cleared (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    provider BYTEA NOT NULL, cleared BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_emergency_policy_set (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    max_openings SMALLINT NOT NULL, period BIGINT NOT NULL, cooling_off BIGINT NOT NULL,
    justify_within BIGINT NOT NULL, max_unjustified BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_emergency_rule_set (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, excluded BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_emergency_rule_set_patient ON ev_emergency_rule_set (patient, block_number DESC, log_index DESC);

-- Every opening with its review: status 'pending', 'justified', 'unjustified' or 'overdue'
-- (the latest review or overdue record); `overdue` is true when it was recorded so, or is still
-- pending past its deadline at the latest indexed block's time.
CREATE VIEW emergency_openings AS
    SELECT d.opening_id, d.patient, d.provider, o.reason_hash, o.opened_at, o.expires_at,
           d.review_by, d.block_number AS opened_block,
           COALESCE(r.status, 'pending') AS status, r.block_number AS status_block,
           COALESCE(r.status, 'pending') = 'overdue'
             OR (r.status IS NULL AND d.review_by <=
                 (SELECT timestamp FROM indexed_blocks ORDER BY block_number DESC LIMIT 1))
             AS overdue
    FROM ev_emergency_justification_due d
    JOIN ev_emergency_opened o
      ON o.block_number = d.block_number AND o.log_index = d.log_index - 1
    LEFT JOIN LATERAL (
        SELECT status, block_number FROM (
            SELECT CASE WHEN justified = 1 THEN 'justified' ELSE 'unjustified' END AS status,
                   block_number, log_index
            FROM ev_emergency_reviewed WHERE opening_id = d.opening_id
            UNION ALL
            SELECT 'overdue', block_number, log_index
            FROM ev_emergency_overdue WHERE opening_id = d.opening_id
        ) x ORDER BY block_number DESC, log_index DESC LIMIT 1
    ) r ON true;

-- Each provider's count of unjustified openings (reviewed so or recorded overdue) now.
CREATE VIEW emergency_unjustified AS
    SELECT DISTINCT ON (provider) provider, unjustified, block_number
    FROM (
        SELECT provider, unjustified, block_number, log_index FROM ev_emergency_reviewed
        UNION ALL
        SELECT provider, unjustified, block_number, log_index FROM ev_emergency_overdue
        UNION ALL
        SELECT provider, 0, block_number, log_index FROM ev_emergency_unjustified_cleared
    ) x
    ORDER BY provider, block_number DESC, log_index DESC;

-- Each patient's standing rule now (categories break-glass never opens).
CREATE VIEW emergency_rules AS
    SELECT DISTINCT ON (patient) patient, excluded, block_number
    FROM ev_emergency_rule_set
    ORDER BY patient, block_number DESC, log_index DESC;

-- The policy in force.
CREATE VIEW emergency_policy AS
    SELECT max_openings, period, cooling_off, justify_within, max_unjustified, block_number
    FROM ev_emergency_policy_set
    ORDER BY block_number DESC, log_index DESC LIMIT 1;
