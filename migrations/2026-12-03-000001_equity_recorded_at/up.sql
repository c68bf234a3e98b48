-- When the row reached PostgreSQL: write lag (recorded_at - ts) is measurable in SQL.
ALTER TABLE equity_snapshots ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT clock_timestamp();
