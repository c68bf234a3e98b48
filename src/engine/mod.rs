//! The execution engine of one account, as values: an [`Input`] (a decision to execute,
//! a venue event, a reconciliation, an answer to one of its requests) and the current
//! time go in; [`Effects`] come out — the intents that must be durable before a request
//! is sent, the requests to send, and the typed changes (orders, fills, positions,
//! income, reconciliation events, diary entries) to record and announce. The engine
//! performs no I/O and reads no clock: the ExecutionActor does the I/O
//! (`actors/execution.rs`), `db/` maps the values to rows.
//!
//! Entry points: [`Engine::restore`] (from the stored book), [`Engine::handle`] (one
//! input), the reads [`Engine::view`], [`Engine::open_orders`], [`Engine::equity`],
//! [`Engine::balance_json`], and the plain updates [`Engine::on_mark`],
//! [`Engine::set_rules`], [`Engine::set_stream_up`].
//!
//! Invariants:
//! - An order's `PENDING_NEW` row is an intent of the same effects that carry its
//!   request: written before sent (a venue in this process need not wait for it).
//! - Nothing is sent that the symbol's rules refuse: the refusal is a `REJECTED` order.
//! - When a position closes, its remaining TP/SL orders are cancelled — whichever way the
//!   close was learned (an order answer, the stream, reconciliation).
//! - A fill is recorded once per venue trade id, attributed to the order vibex placed
//!   (looked up in memory, then in the database), with its cycle and reason; only a
//!   fill nobody can attribute is `external`, and that is a warning.
//! - Every correction reconciliation makes is a [`ReconciliationEvent`].
//! - No module of the engine imports actors, diesel or a clock.

mod core;
pub mod io;
pub mod model;
mod orders;
pub mod reconcile;
mod reconciling;
mod venue_events;

#[cfg(test)]
mod tests;

pub use self::core::{Engine, EngineConfig, StoredBook};
pub use self::io::{
    Effects, Input, JobId, Level, Notice, Outcome, Reply, Request, RequestId, StoredOrderKey,
};
pub use self::model::*;
