-- Time-series tables become hypertables when the timescaledb extension is available
-- on this server. Plain PostgreSQL skips this block and keeps the same schema.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('candles', 'open_time', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('market_snapshots', 'ts', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('llm_interactions', 'ts', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('decisions', 'ts', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('order_events', 'ts', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('fills', 'ts', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('equity_snapshots', 'ts', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('diary_entries', 'ts', migrate_data => true, if_not_exists => true);
        PERFORM create_hypertable('reconciliation_events', 'ts', migrate_data => true, if_not_exists => true);
    ELSE
        RAISE NOTICE 'timescaledb is not available: time-series tables stay plain tables';
    END IF;
END
$$;
