-- Issue 14, hole 6: holders register their gatekeeper's endpoint and service key
-- (HolderRegistered; the latest registration of a holder counts), and pointers anchored under
-- break-glass are marked (PointerAnchoredUnderBreakGlass, right after their PointerAnchored).
CREATE TABLE ev_holder_registered (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    holder BYTEA NOT NULL, endpoint TEXT NOT NULL, service_key BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_holder_registered_holder ON ev_holder_registered (holder, block_number, log_index);
CREATE TABLE ev_pointer_break_glass (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    record_id BYTEA NOT NULL, patient BYTEA NOT NULL, holder BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
-- A record is anchored once, so it is marked at most once: an integrity check, as for anchors.
CREATE UNIQUE INDEX ev_pointer_break_glass_record ON ev_pointer_break_glass (record_id);
CREATE INDEX ev_pointer_break_glass_patient ON ev_pointer_break_glass (patient);
-- The current pointers, now with the mark (a column added at the end: CREATE OR REPLACE keeps
-- the view's existing columns as they were).
CREATE OR REPLACE VIEW pointers AS
    SELECT a.record_id, a.patient, a.holder, a.category, a.content_hash, a.locator,
           a.block_number AS anchored_block, a.log_index AS anchored_log,
           s.new_record_id AS superseded_by, s.block_number AS superseded_block,
           (b.record_id IS NOT NULL) AS break_glass
    FROM ev_pointer_anchored a
    LEFT JOIN ev_pointer_superseded s ON s.old_record_id = a.record_id
    LEFT JOIN ev_pointer_break_glass b ON b.record_id = a.record_id;
