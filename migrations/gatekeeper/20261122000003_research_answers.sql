-- The answers this holder gave to research queries. A query's receipt (its cost, pinned block
-- and answer hash) is recorded on chain in one transaction after the holders answer, so until
-- the receipt is there the holder counts the answer against the study's budget and answers no
-- other query of the study; asking the same query again gets the same stored answer (no fresh
-- noise to average away).
CREATE TABLE gk_research_answers (
    study_id     TEXT NOT NULL,
    query_hash   BYTEA NOT NULL,
    researcher   BYTEA NOT NULL,
    cost         BIGINT NOT NULL,
    pinned_block BIGINT NOT NULL,
    answer       TEXT NOT NULL,
    signature    TEXT NOT NULL,
    recorded     BOOLEAN NOT NULL,
    answered_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (study_id, query_hash)
);
-- At most one answer per study without its receipt.
CREATE UNIQUE INDEX gk_research_answers_unrecorded ON gk_research_answers (study_id)
    WHERE NOT recorded;
