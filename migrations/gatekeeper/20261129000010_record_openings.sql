-- Issue 16, step 4: a record's pointer on chain is a salted commitment
-- keccak256(abi.encode(patient, holder, category, content_hash, salt)); the gatekeeper keeps the
-- salt it chose for the record and serves it, with the category, to whoever it serves the bytes.
ALTER TABLE gk_records ADD COLUMN salt BYTEA;
-- Records stored before salts get one from PostgreSQL's secure generator (gen_random_uuid,
-- two of them hashed). Their ids were derived from the content hash alone: pointers to them
-- must be anchored again under the new registry, whose ids come from the commitment.
UPDATE gk_records
   SET salt = sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'));
ALTER TABLE gk_records ALTER COLUMN salt SET NOT NULL;
ALTER TABLE gk_records ADD CONSTRAINT gk_records_salt_len CHECK (octet_length(salt) = 32);
-- The record id now depends on the salt, which is random: one copy of a patient's document
-- per holder is kept by (patient, content_hash), so an upload sent again finds its record and
-- its opening instead of storing a second copy under a new id.
CREATE UNIQUE INDEX gk_records_patient_content ON gk_records (patient, content_hash);
