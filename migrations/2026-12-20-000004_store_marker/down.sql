ALTER TABLE equity_snapshots DROP COLUMN recorded_at;
DROP TABLE store_marker;
