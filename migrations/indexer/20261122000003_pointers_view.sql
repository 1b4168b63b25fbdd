-- Pointers are no longer written twice: the current pointers are a view over the anchor and
-- supersession events, which halves the rows a backfill writes for the registry's busiest
-- event. Record ids are unique on chain; the unique index makes that an integrity check.
DROP TABLE pointers;
CREATE UNIQUE INDEX ev_pointer_anchored_record ON ev_pointer_anchored (record_id);
CREATE UNIQUE INDEX ev_pointer_superseded_old ON ev_pointer_superseded (old_record_id);
CREATE VIEW pointers AS
    SELECT a.record_id, a.patient, a.holder, a.category, a.content_hash, a.locator,
           a.block_number AS anchored_block, a.log_index AS anchored_log,
           s.new_record_id AS superseded_by, s.block_number AS superseded_block
    FROM ev_pointer_anchored a
    LEFT JOIN ev_pointer_superseded s ON s.old_record_id = a.record_id;
