-- vibex initial schema (DESIGN §5). Every account-owned row carries account_id.
-- Money, prices and quantities are NUMERIC. Time-series tables have the time column
-- in their primary key so that they can become TimescaleDB hypertables.

CREATE TABLE accounts (
    id                    TEXT PRIMARY KEY,
    mode                  TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
    venue_base_url        TEXT NOT NULL,
    llm_model             TEXT NOT NULL,
    assets                TEXT[] NOT NULL,
    interval_label        TEXT NOT NULL,
    leverage              INTEGER NOT NULL CHECK (leverage BETWEEN 1 AND 125),
    status                TEXT NOT NULL DEFAULT 'active',
    paper_starting_balance NUMERIC NOT NULL,
    paper_wallet_balance  NUMERIC NOT NULL,
    config                JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE candles (
    venue       TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    kline_interval TEXT NOT NULL,
    open_time   TIMESTAMPTZ NOT NULL,
    open        NUMERIC NOT NULL,
    high        NUMERIC NOT NULL,
    low         NUMERIC NOT NULL,
    close       NUMERIC NOT NULL,
    volume      NUMERIC NOT NULL,
    close_time  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (venue, symbol, kline_interval, open_time)
);

CREATE TABLE market_snapshots (
    id             UUID NOT NULL,
    ts             TIMESTAMPTZ NOT NULL,
    venue          TEXT NOT NULL,
    symbol         TEXT NOT NULL,
    last_price     NUMERIC NOT NULL,
    mark_price     NUMERIC NOT NULL,
    funding_rate   NUMERIC NOT NULL,
    open_interest  NUMERIC NOT NULL,
    data           JSONB NOT NULL,
    PRIMARY KEY (id, ts)
);
CREATE INDEX market_snapshots_symbol_ts ON market_snapshots (symbol, ts DESC);

CREATE TABLE llm_interactions (
    id                 UUID NOT NULL,
    ts                 TIMESTAMPTZ NOT NULL,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    cycle_id           UUID NOT NULL,
    model              TEXT NOT NULL,
    request            JSONB NOT NULL,
    response_body      TEXT,
    parsed             JSONB,
    outcome            JSONB,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    cost_usd           NUMERIC,
    latency_ms         INTEGER,
    http_status        INTEGER,
    error              TEXT,
    PRIMARY KEY (id, ts)
);
CREATE INDEX llm_interactions_account_ts ON llm_interactions (account_id, ts DESC);
CREATE INDEX llm_interactions_cycle ON llm_interactions (cycle_id);

CREATE TABLE decisions (
    id                  UUID NOT NULL,
    ts                  TIMESTAMPTZ NOT NULL,
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    cycle_id            UUID NOT NULL,
    asset               TEXT NOT NULL,
    symbol              TEXT NOT NULL,
    action              TEXT NOT NULL CHECK (action IN ('buy', 'sell', 'hold')),
    allocation_usd      NUMERIC NOT NULL,
    tp_price            NUMERIC,
    sl_price            NUMERIC,
    exit_plan           TEXT NOT NULL,
    rationale           TEXT NOT NULL,
    source              TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    refusal_reason      TEXT,
    risk_note           TEXT,
    snapshot_id         UUID,
    llm_interaction_id  UUID,
    PRIMARY KEY (id, ts)
);
CREATE INDEX decisions_account_ts ON decisions (account_id, ts DESC);
CREATE INDEX decisions_ts ON decisions (ts DESC);
CREATE INDEX decisions_cycle ON decisions (cycle_id);

CREATE TABLE orders (
    id                UUID PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    cycle_id          UUID,
    decision_id       UUID,
    client_order_id   TEXT NOT NULL UNIQUE,
    venue_order_id    TEXT,
    symbol            TEXT NOT NULL,
    side              TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type        TEXT NOT NULL,
    quantity          NUMERIC,
    price             NUMERIC,
    stop_price        NUMERIC,
    reduce_only       BOOLEAN NOT NULL DEFAULT false,
    close_position    BOOLEAN NOT NULL DEFAULT false,
    status            TEXT NOT NULL,
    filled_quantity   NUMERIC NOT NULL DEFAULT 0,
    avg_fill_price    NUMERIC,
    reject_reason     TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_account_created ON orders (account_id, created_at DESC);
CREATE INDEX orders_created ON orders (created_at DESC);
CREATE INDEX orders_open ON orders (account_id, symbol) WHERE status IN ('NEW', 'PARTIALLY_FILLED');

CREATE TABLE order_events (
    id          BIGSERIAL,
    ts          TIMESTAMPTZ NOT NULL,
    order_id    UUID NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    cycle_id    UUID,
    status      TEXT NOT NULL,
    detail      JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, ts)
);
CREATE INDEX order_events_order ON order_events (order_id, ts);
CREATE INDEX order_events_account_ts ON order_events (account_id, ts DESC);

CREATE TABLE fills (
    id               UUID NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    cycle_id         UUID,
    order_id         UUID,
    client_order_id  TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    quantity         NUMERIC NOT NULL,
    price            NUMERIC NOT NULL,
    fee              NUMERIC NOT NULL,
    realized_pnl     NUMERIC NOT NULL,
    reason           TEXT NOT NULL,
    PRIMARY KEY (id, ts)
);
CREATE INDEX fills_account_ts ON fills (account_id, ts DESC);
CREATE INDEX fills_ts ON fills (ts DESC);

CREATE TABLE positions (
    id              UUID PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('long', 'short')),
    quantity        NUMERIC NOT NULL,
    entry_price     NUMERIC NOT NULL,
    leverage        INTEGER NOT NULL,
    margin          NUMERIC NOT NULL,
    tp_price        NUMERIC,
    sl_price        NUMERIC,
    exit_plan       TEXT NOT NULL DEFAULT '',
    mark_price      NUMERIC,
    unrealized_pnl  NUMERIC NOT NULL DEFAULT 0,
    realized_pnl    NUMERIC NOT NULL DEFAULT 0,
    status          TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at       TIMESTAMPTZ NOT NULL,
    closed_at       TIMESTAMPTZ,
    opened_cycle_id UUID,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX positions_one_open_per_symbol ON positions (account_id, symbol) WHERE status = 'open';
CREATE INDEX positions_account_opened ON positions (account_id, opened_at DESC);

CREATE TABLE equity_snapshots (
    ts               TIMESTAMPTZ NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    cycle_id         UUID,
    wallet_balance   NUMERIC NOT NULL,
    unrealized_pnl   NUMERIC NOT NULL,
    equity           NUMERIC NOT NULL,
    used_margin      NUMERIC NOT NULL,
    available        NUMERIC NOT NULL,
    PRIMARY KEY (account_id, ts)
);

CREATE TABLE diary_entries (
    id              UUID NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    cycle_id        UUID,
    asset           TEXT NOT NULL,
    action          TEXT NOT NULL,
    allocation_usd  NUMERIC,
    amount          NUMERIC,
    entry_price     NUMERIC,
    tp_price        NUMERIC,
    tp_oid          TEXT,
    sl_price        NUMERIC,
    sl_oid          TEXT,
    exit_plan       TEXT,
    rationale       TEXT,
    order_result    JSONB,
    opened_at       TIMESTAMPTZ,
    filled          BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (id, ts)
);
CREATE INDEX diary_entries_account_ts ON diary_entries (account_id, ts DESC);

CREATE TABLE reconciliation_events (
    id          UUID NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    cycle_id    UUID,
    kind        TEXT NOT NULL,
    symbol      TEXT,
    detail      JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, ts)
);
CREATE INDEX reconciliation_events_account_ts ON reconciliation_events (account_id, ts DESC);
