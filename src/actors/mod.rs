//! The actor topology (DESIGN §2): Supervisor -> MarketDataHubs, Account trees
//! (Account -> DecisionActor + ExecutionActor), EventBus. Every write goes through the
//! store (`crate::store`), which publishes the events of durable rows. The message
//! contract is in [`messages`]; events in [`events`].

pub mod account;
pub mod brief;
pub mod decision;
pub mod event_bus;
pub mod events;
pub mod execution;
pub mod market_data;
pub mod messages;
pub mod supervisor;
pub mod tree;
