-- Coded facts taken from records at upload, so that research aggregates are computed here,
-- where the records are, without decrypting every record for every query.
CREATE TABLE gk_patients (
    patient     BYTEA PRIMARY KEY,
    gender      TEXT,
    birth_date  DATE
);
CREATE TABLE gk_facts (
    record_id  BYTEA NOT NULL,
    patient    BYTEA NOT NULL,
    kind       TEXT NOT NULL,
    system     TEXT NOT NULL,
    code       TEXT NOT NULL,
    value      DOUBLE PRECISION,
    PRIMARY KEY (record_id, kind, system, code)
);
CREATE INDEX gk_facts_code ON gk_facts (kind, code, system, patient);
