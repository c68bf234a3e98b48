-- The durable write path (src/store/): each writer (one per data directory) records,
-- in the same transaction as the rows, the last batch it committed. A batch whose
-- commit outcome was uncertain, or a spool replayed again after a crash, is checked
-- against this marker so that no batch is ever written twice.
CREATE TABLE store_marker (
    writer_id   TEXT PRIMARY KEY,
    -- The batch id and how many of its writes (in order) are committed.
    batch_id    BIGINT NOT NULL,
    writes      INTEGER NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
