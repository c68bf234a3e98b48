ALTER TABLE equity_snapshots ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT clock_timestamp();
