-- Issue 16, step 7: PointerErased(recordId), a holder's erasure of its record (its data key
-- destroyed at the gatekeeper). The pointers view says so; nothing else is known of it.
CREATE TABLE ev_pointer_erased (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    record_id BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
-- A record is erased at most once: an integrity check, as for anchors.
CREATE UNIQUE INDEX ev_pointer_erased_record ON ev_pointer_erased (record_id);
CREATE OR REPLACE VIEW pointers AS
    SELECT a.record_id, a.patient, a.holder, a.commitment, a.locator,
           a.block_number AS anchored_block, a.log_index AS anchored_log,
           s.new_record_id AS superseded_by, s.block_number AS superseded_block,
           (b.record_id IS NOT NULL) AS break_glass,
           (e.record_id IS NOT NULL) AS erased
    FROM ev_pointer_anchored a
    LEFT JOIN ev_pointer_superseded s ON s.old_record_id = a.record_id
    LEFT JOIN ev_pointer_break_glass b ON b.record_id = a.record_id
    LEFT JOIN ev_pointer_erased e ON e.record_id = a.record_id;
