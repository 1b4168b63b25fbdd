-- The study pseudonyms this holder found to be its patients' (issue 16, step 6): an opt-in names
-- a pseudonym only, and the slot this holder opens with its service key holds the patient's
-- signature over (chain, registry, study, pseudonym), from which the patient is recovered. Kept
-- once found: the binding is the patient's signature, true on every branch, so a reorg leaves it
-- (whether the opt-in counts is the chain's, read at each query). Only signers who are patients
-- here (records in gk_records) when the opt-in is read are kept. The follower keeps the mapping
-- in memory too, rebuilt from the chain at start, and counts from it; this table is what the
-- holder can show of which of its patients consented under which pseudonym, and since when.
CREATE TABLE gk_study_pseudonyms (
    study_id       TEXT NOT NULL,
    pseudonym      BYTEA NOT NULL,
    patient        BYTEA NOT NULL,
    -- The block of the opt-in in which this holder first opened the slot.
    opted_in_block BIGINT NOT NULL,
    PRIMARY KEY (study_id, pseudonym)
);
CREATE INDEX gk_study_pseudonyms_patient ON gk_study_pseudonyms (patient);
