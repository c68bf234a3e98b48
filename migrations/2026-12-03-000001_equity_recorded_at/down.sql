ALTER TABLE equity_snapshots DROP COLUMN recorded_at;
