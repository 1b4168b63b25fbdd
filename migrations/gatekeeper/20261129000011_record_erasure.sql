-- Issue 16, step 7: erasure by key destruction. An erased record keeps its row as a tombstone
-- (its id, patient and when), so that a later read is answered 410 "erased" and logged; its
-- data key, ciphertext, content hash and salt are overwritten in the erasing transaction, and
-- its research facts and demographics deleted.
ALTER TABLE gk_records ADD COLUMN erased_at TIMESTAMPTZ;
