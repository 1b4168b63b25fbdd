-- Issue 16, step 4: PointerAnchored carries a salted commitment instead of the record's
-- category and content hash, which no longer reach the indexer. Rows anchored under the old
-- registry lose both (a mirror of a new deployment has none); their commitment column is
-- left empty, as the old event had none to give.
DROP VIEW pointers;
ALTER TABLE ev_pointer_anchored
    DROP COLUMN category,
    DROP COLUMN content_hash,
    ADD COLUMN commitment BYTEA NOT NULL DEFAULT '\x'::bytea;
ALTER TABLE ev_pointer_anchored ALTER COLUMN commitment DROP DEFAULT;
CREATE VIEW pointers AS
    SELECT a.record_id, a.patient, a.holder, a.commitment, a.locator,
           a.block_number AS anchored_block, a.log_index AS anchored_log,
           s.new_record_id AS superseded_by, s.block_number AS superseded_block,
           (b.record_id IS NOT NULL) AS break_glass
    FROM ev_pointer_anchored a
    LEFT JOIN ev_pointer_superseded s ON s.old_record_id = a.record_id
    LEFT JOIN ev_pointer_break_glass b ON b.record_id = a.record_id;
