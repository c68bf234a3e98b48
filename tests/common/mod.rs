//! Test support: a real PostgreSQL, loopback fakes of the venue and the model, and a
//! handle on a running daemon.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_llm;
pub mod fake_venue;
pub mod loopback;
pub mod pg;
pub mod process;
