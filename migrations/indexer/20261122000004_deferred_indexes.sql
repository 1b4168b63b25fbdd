-- Secondary indexes that a long backfill drops and builds again once it reaches the head:
-- building an index over the loaded rows costs a fraction of maintaining it row by row (the
-- record-id index's random inserts cost more than the rows themselves). A row here means the
-- index is missing and `definition` (pg_get_indexdef at the time of the drop) creates it.
-- Dropping and recording, and building and deleting, each happen in one transaction.
CREATE TABLE indexer_deferred_indexes (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL
);
