-- Signed consents, review findings (issue 14, hole 3 follow-up): Granted, Revoked, OptedIn and
-- Withdrew carry the relationship's signature state after the change (its epoch and the
-- issuedAt of the last signed message applied in it), and the cancellations their signedAt
-- (0, or 2^40 - 1 when the last epoch voids signatures for good), so that the ordering state of
-- every relationship is rebuilt from events alone. The columns are appended in the events'
-- order. Rows indexed from contracts whose events did not carry them stay NULL: unknown.

ALTER TABLE ev_granted ADD COLUMN epoch BIGINT, ADD COLUMN signed_at BIGINT;
ALTER TABLE ev_revoked ADD COLUMN epoch BIGINT, ADD COLUMN signed_at BIGINT;
ALTER TABLE ev_opted_in ADD COLUMN epoch BIGINT, ADD COLUMN signed_at BIGINT;
ALTER TABLE ev_withdrew ADD COLUMN epoch BIGINT, ADD COLUMN signed_at BIGINT;
ALTER TABLE ev_consent_signatures_cancelled ADD COLUMN signed_at BIGINT;
ALTER TABLE ev_study_signatures_cancelled ADD COLUMN signed_at BIGINT;
