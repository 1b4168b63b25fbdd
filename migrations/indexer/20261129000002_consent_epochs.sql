-- Cancellations of signed consents (issue 14, hole 3): a patient (or a guardian) voids every
-- outstanding signed grant or revocation of a relationship, or every signed opt-in or
-- withdrawal of a study, by moving it to its next signature epoch. The epoch orders signed
-- messages only; it changes no grant or opt-in, so these are event tables without history.

CREATE TABLE ev_consent_signatures_cancelled (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    patient BYTEA NOT NULL, grantee BYTEA NOT NULL, by_account BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_consent_signatures_cancelled_patient ON ev_consent_signatures_cancelled (patient);

CREATE TABLE ev_study_signatures_cancelled (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    study_id BIGINT NOT NULL, patient BYTEA NOT NULL, epoch BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_study_signatures_cancelled_patient ON ev_study_signatures_cancelled (patient);
