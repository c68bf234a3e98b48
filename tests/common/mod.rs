//! Test support: a real PostgreSQL, loopback fakes of the venue and the model.
#![allow(dead_code)]

pub mod pg;
