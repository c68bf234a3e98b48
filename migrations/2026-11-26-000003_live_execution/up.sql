-- Live execution on AsterDEX: what the venue reports beside our own orders and fills.
-- Live fills and income arrive twice (the user-data stream and polling): rows carrying
-- the venue's id are inserted with INSERT ... SELECT ... WHERE NOT EXISTS on the keys
-- below (see src/db/queries.rs), so a repeat is skipped, not an error. The lookup
-- indexes are not UNIQUE on purpose: a unique index on a hypertable must contain `ts`,
-- and the two sources may not agree on the time of one trade.

-- Positions: the venue's liquidation price, and whether vibex opened the position or
-- found it on the exchange ("adopted").
ALTER TABLE positions
    ADD COLUMN liquidation_price NUMERIC,
    ADD COLUMN origin TEXT NOT NULL DEFAULT 'vibex' CHECK (origin IN ('vibex', 'adopted'));

-- Fills: the venue's trade id (NULL for paper fills).
ALTER TABLE fills ADD COLUMN venue_trade_id TEXT;
CREATE INDEX fills_account_venue_trade ON fills (account_id, venue_trade_id)
    WHERE venue_trade_id IS NOT NULL;

-- Wallet movements the venue reports (its income history): realized PnL, funding,
-- commissions, liquidation fees, transfers. `amount` is signed: + is credited.
CREATE TABLE income_events (
    id             UUID NOT NULL,
    ts             TIMESTAMPTZ NOT NULL,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    cycle_id       UUID,
    symbol         TEXT,
    kind           TEXT NOT NULL CHECK (kind IN ('REALIZED_PNL', 'FUNDING_FEE', 'COMMISSION',
                                                 'LIQUIDATION_FEE', 'TRANSFER', 'OTHER')),
    amount         NUMERIC NOT NULL,
    asset          TEXT NOT NULL DEFAULT 'USDT',
    venue_tran_id  TEXT,
    detail         JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, ts)
);
CREATE INDEX income_events_account_ts ON income_events (account_id, ts DESC);
CREATE INDEX income_events_venue_tran ON income_events (account_id, kind, venue_tran_id)
    WHERE venue_tran_id IS NOT NULL;

-- Like ..._timescale: a hypertable when this database uses TimescaleDB. The test is on
-- the installed extension (not merely available), so a database whose tables stayed
-- plain keeps this one plain as well.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('income_events', 'ts', migrate_data => true, if_not_exists => true);
    ELSE
        RAISE NOTICE 'timescaledb is not installed: income_events stays a plain table';
    END IF;
END
$$;
