//! vibex: a daemon that trades crypto perpetual futures for many accounts at once.
//!
//! Each account is an isolated actor tree that asks its own model (or a builtin rule
//! policy) what to do, checks the answer against hard risk rules and executes it on
//! AsterDEX (live) or the built-in paper venue. Everything is stored in PostgreSQL and
//! streamed over WebSocket. Read `docs/architecture.md` for the topology and one cycle.

/// The actor topology: supervisor, market data, accounts, decision, execution, bus.
pub mod actors;
/// The actix-web facade: REST and WebSocket.
pub mod api;
/// Wiring of `vibex run` / `vibex migrate`: logging, database, actors, HTTP, shutdown.
pub mod app;
/// Exponential backoff with full jitter for every retrying client.
pub mod backoff;
/// Cores of the CLI subcommands (e.g. `vibex indicators --csv FILE`), testable without a process.
pub mod commands;
/// The one validated configuration (figment): files, environment, flags.
pub mod config;
/// The control plane: the accounts the API sees, the audit trail, reload.
pub mod control;
/// PostgreSQL: schema, rows, queries, migrations, the embedded private cluster.
pub mod db;
/// Pure trading logic: types, indicators, snapshots, paper venue, policies.
pub mod domain;
/// The execution engine of one account as values: inputs in, intents, requests and
/// typed changes out (no actors, no diesel, no clock).
pub mod engine;
/// Venues: the `Exchange` trait, AsterDEX's clients, the paper venue.
pub mod exchange;
/// The LLM decision engine: client, prompts, reply parsing.
pub mod llm;
/// What the HTTP clients share about failed requests (no URL in any message).
pub mod net;
/// Secrets that never print.
pub mod secret;
/// The durable, batched write path: group commit, spool, replay, exactly once.
pub mod store;
/// slog drains: per-domain JSON files with rotation and secret masking, stderr.
pub mod telemetry;
