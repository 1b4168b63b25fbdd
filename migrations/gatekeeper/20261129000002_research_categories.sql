-- Research answers count only records of the categories a study was approved for: each coded
-- fact keeps its record's category, and demographics (which place a patient in an age band
-- and sex cell) are kept per record, with its category, instead of one row per patient.

ALTER TABLE gk_facts ADD COLUMN category SMALLINT;
UPDATE gk_facts f SET category = r.category FROM gk_records r WHERE r.record_id = f.record_id;
-- A fact is written in the transaction that stores its record, so every fact has one.
DELETE FROM gk_facts WHERE category IS NULL;
ALTER TABLE gk_facts ALTER COLUMN category SET NOT NULL;
DROP INDEX gk_facts_code;
CREATE INDEX gk_facts_code ON gk_facts (kind, code, system, category, patient) INCLUDE (value);

CREATE TABLE gk_demographics (
    record_id   BYTEA PRIMARY KEY,
    patient     BYTEA NOT NULL,
    category    SMALLINT NOT NULL,
    gender      TEXT,
    birth_date  DATE,
    -- The latest upload's demographics win, as they did per patient.
    seq         BIGSERIAL NOT NULL
);
CREATE INDEX gk_demographics_patient ON gk_demographics (patient, seq DESC) INCLUDE (category);

-- Demographics read before this change did not keep their record, so their category cannot be
-- told (the latest upload of any category had overwritten them): they are dropped rather than
-- attributed to a category they may not come from. Those patients count in the unknown cell
-- until a record with their demographics is stored again.
DROP TABLE gk_patients;
