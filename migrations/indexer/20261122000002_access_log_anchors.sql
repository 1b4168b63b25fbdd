-- Heads of the gatekeepers' access logs that holders anchor on chain (RecordRegistry's
-- AccessLogAnchored). A patient compares a holder's log with the latest anchor.
-- (A note on the first migration: indexed_blocks keeps each batch's first and last block,
-- within the reorg window.)
CREATE TABLE ev_access_log_anchored (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    holder BYTEA NOT NULL, head BYTEA NOT NULL, entries BIGINT NOT NULL, anchored_at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ev_access_log_anchored_holder ON ev_access_log_anchored (holder, entries);
