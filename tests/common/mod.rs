//! Test support: a real PostgreSQL, loopback fakes of the venue and the model, and a
//! handle on a running daemon.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_llm;
pub mod fake_venue;
/// The trading half of the fake venue (a child module of `fake_venue`, reachable here).
#[allow(unused_imports)]
pub use fake_venue::fake_trading;
pub mod loopback;
pub mod pg;
pub mod process;
