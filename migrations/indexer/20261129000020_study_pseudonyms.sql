-- Study participation discloses no patient (issue 16, step 6): OptedIn(studyId, pseudonym, tags)
-- and Withdrew(studyId, pseudonym) name a study pseudonym, derived from the patient's secret for
-- that study alone, and carry neither the sender nor the signature state;
-- StudySignaturesCancelled names the pseudonym too. The indexer mirrors them keyed by pseudonym
-- and cannot tell which patient it is (the patient's CLI derives its pseudonyms and asks the
-- chain). Rows indexed from older contracts named the patient: they are dropped, with the
-- columns that no longer exist (the indexer is re-run over a new deployment).

DROP VIEW study_opt_ins;
TRUNCATE ev_opted_in, ev_withdrew, ev_study_signatures_cancelled, opt_in_history;

ALTER TABLE ev_opted_in RENAME COLUMN patient TO pseudonym;
ALTER TABLE ev_opted_in DROP COLUMN by_account, DROP COLUMN epoch, DROP COLUMN signed_at;
-- The holder slots (StudyRegistry.TAGS_LENGTH bytes): only their holders can read them.
ALTER TABLE ev_opted_in ADD COLUMN tags BYTEA NOT NULL;
ALTER INDEX ev_opted_in_patient RENAME TO ev_opted_in_pseudonym;

ALTER TABLE ev_withdrew RENAME COLUMN patient TO pseudonym;
ALTER TABLE ev_withdrew DROP COLUMN by_account, DROP COLUMN epoch, DROP COLUMN signed_at;
ALTER INDEX ev_withdrew_patient RENAME TO ev_withdrew_pseudonym;

ALTER TABLE ev_study_signatures_cancelled RENAME COLUMN patient TO pseudonym;
ALTER INDEX ev_study_signatures_cancelled_patient RENAME TO ev_study_signatures_cancelled_pseudonym;

ALTER TABLE opt_in_history RENAME COLUMN patient TO pseudonym;
ALTER TABLE opt_in_history DROP COLUMN by_account;
ALTER INDEX opt_in_history_patient RENAME TO opt_in_history_pseudonym;

-- The pseudonyms opted in now (an opt-in counts only while its study is approved: join studies).
CREATE VIEW study_opt_ins AS
    SELECT study_id, pseudonym, from_block AS block_number
    FROM opt_in_history WHERE to_block IS NULL;
