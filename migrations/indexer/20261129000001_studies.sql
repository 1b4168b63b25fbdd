-- The StudyRegistry's events: studies that researchers register and governance approves or
-- closes, patients' opt-ins and withdrawals, and the receipts of answered queries.
--
-- Study ids are sequential from 1 (BIGINT). uint64 amounts (budgets, costs, pinned blocks) are
-- BIGINT holding the same 64 bits, like the category masks; medrec_u64 reads them back as the
-- unsigned number.
--
-- As for the other registries: typed ev_* tables; history tables in the common shape (a state
-- from from_block until to_block, NULL while current), which make reorg rollback exact; and
-- current-state views over the open history rows.

CREATE FUNCTION medrec_u64(v BIGINT) RETURNS NUMERIC
    LANGUAGE SQL IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT v::numeric + CASE WHEN v < 0 THEN 18446744073709551616 ELSE 0 END $$;

-- Events -------------------------------------------------------------------------------------

CREATE TABLE ev_study_registered (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    study_id BIGINT NOT NULL, researcher BYTEA NOT NULL, protocol_hash BYTEA NOT NULL,
    categories BIGINT NOT NULL, min_cell_size BIGINT NOT NULL, budget BIGINT NOT NULL,
    registered_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
-- Study ids are unique on chain: the index makes that an integrity check.
CREATE UNIQUE INDEX ev_study_registered_study ON ev_study_registered (study_id);
CREATE TABLE ev_study_approved (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    study_id BIGINT NOT NULL, approved_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_study_closed (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    study_id BIGINT NOT NULL, closed_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_opted_in (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    study_id BIGINT NOT NULL, patient BYTEA NOT NULL, by_account BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_withdrew (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    study_id BIGINT NOT NULL, patient BYTEA NOT NULL, by_account BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE TABLE ev_query_answered (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    study_id BIGINT NOT NULL, query_hash BYTEA NOT NULL, cost BIGINT NOT NULL,
    pinned_block BIGINT NOT NULL, answer_hash BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_opted_in_patient ON ev_opted_in (patient);
CREATE INDEX ev_withdrew_patient ON ev_withdrew (patient);
CREATE INDEX ev_query_answered_study ON ev_query_answered (study_id);

-- History ------------------------------------------------------------------------------------

-- A study's status (IStudyRegistry.Status: 1 registered, 2 approved, 3 closed) and since when.
CREATE TABLE study_status_history (
    study_id BIGINT NOT NULL, status SMALLINT NOT NULL, since BIGINT NOT NULL,
    from_block BIGINT NOT NULL, from_log INT NOT NULL,
    to_block BIGINT, end_reason TEXT,
    PRIMARY KEY (study_id, from_block, from_log)
);
CREATE UNIQUE INDEX study_status_history_open ON study_status_history (study_id) WHERE to_block IS NULL;
CREATE INDEX study_status_history_to ON study_status_history (to_block);

-- A patient's opt-in to a study, until the patient withdraws.
CREATE TABLE opt_in_history (
    study_id BIGINT NOT NULL, patient BYTEA NOT NULL, by_account BYTEA NOT NULL,
    from_block BIGINT NOT NULL, from_log INT NOT NULL,
    to_block BIGINT, end_reason TEXT,
    PRIMARY KEY (study_id, patient, from_block, from_log)
);
CREATE UNIQUE INDEX opt_in_history_open ON opt_in_history (study_id, patient) WHERE to_block IS NULL;
CREATE INDEX opt_in_history_patient ON opt_in_history (patient) WHERE to_block IS NULL;
CREATE INDEX opt_in_history_to ON opt_in_history (to_block);

-- Current state ------------------------------------------------------------------------------

-- Each study as the registry holds it: what it was registered with, its status, and the budget
-- spent by the recorded queries.
CREATE VIEW studies AS
    SELECT r.study_id, r.researcher, r.protocol_hash, r.categories, r.min_cell_size,
           medrec_u64(r.budget) AS budget,
           COALESCE(q.spent, 0) AS spent, COALESCE(q.queries, 0) AS queries,
           r.registered_at, r.block_number AS registered_block,
           s.status, s.since AS status_since, s.from_block AS status_block
    FROM ev_study_registered r
    JOIN study_status_history s ON s.study_id = r.study_id AND s.to_block IS NULL
    LEFT JOIN (
        SELECT study_id, sum(medrec_u64(cost)) AS spent, count(*) AS queries
        FROM ev_query_answered GROUP BY study_id
    ) q ON q.study_id = r.study_id;

-- The patients opted in now (an opt-in counts only while its study is approved: join studies).
CREATE VIEW study_opt_ins AS
    SELECT study_id, patient, by_account, from_block AS block_number
    FROM opt_in_history WHERE to_block IS NULL;
