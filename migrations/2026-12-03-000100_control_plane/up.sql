-- The control plane (src/control/, src/api/control.rs): what operators decided at
-- runtime, kept across restarts, and the audit trail of every control request.

-- The operator's wish for each account: `active`, `paused` (no new entries; exits and
-- TP/SL keep working) or `stopped` (removed: it does not trade, its rows stay). An
-- account added over the API keeps its definition here, as given: secrets only as
-- ${VAR} references, resolved from the environment at each start.
CREATE TABLE account_controls (
    account_id  TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('active', 'paused', 'stopped')),
    origin      TEXT NOT NULL CHECK (origin IN ('file', 'api')),
    definition  JSONB,
    updated_by  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Process-wide switches (today one: `kill_switch`).
CREATE TABLE control_flags (
    name        TEXT PRIMARY KEY,
    enabled     BOOLEAN NOT NULL,
    detail      JSONB NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Every control request, granted or refused: who (the key's name, never the key), from
-- where, what, on what, the body with secrets masked, and the answer.
CREATE TABLE control_actions (
    id          UUID PRIMARY KEY,
    ts          TIMESTAMPTZ NOT NULL,
    key_name    TEXT NOT NULL,
    client_ip   TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    body        JSONB,
    status      INTEGER NOT NULL,
    result      JSONB NOT NULL
);
CREATE INDEX control_actions_ts_idx ON control_actions (ts DESC);
CREATE INDEX control_actions_target_ts_idx ON control_actions (target, ts DESC);
