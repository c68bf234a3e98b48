//! The actor topology (DESIGN §2): Supervisor -> MarketDataHubs, Account trees
//! (Account -> DecisionActor + ExecutionActor), EventBus. Every write goes through the
//! store (`crate::store`), which publishes the events of durable rows. The message
//! contract is in [`messages`]; events in [`events`].

pub mod account;
pub mod decision;
pub mod event_bus;
pub mod events;
pub mod execution;
/// Where an account's execution batches become rows, events and log lines.
pub mod journal;
pub mod market_data;
pub mod messages;
pub mod supervisor;
