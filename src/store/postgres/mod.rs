//! The PostgreSQL side of the store, for a fleet of instances sharing one database (issue 10).
//!
//! [`PgStore`] implements every method of `Store` on PostgreSQL (the files beside this one are
//! named as the SQLite ones), over a connection pool with rustls ([`connect`]), with the same
//! numbered schema versions ([`migrations`]). A fleet member's writes for an account are
//! fenced by the lease it holds ([`leases`]); [`fleet`] is what the runtime uses to join the
//! fleet, heartbeat, claim and give up accounts, with each instance's fair share from [`share`].

mod by_hand;
mod checkpoints;
mod codec;
mod collected;
pub mod connect;
#[cfg(test)]
mod fencing_tests;
pub mod fleet;
#[cfg(test)]
mod fleet_tests;
mod gmail_seen;
mod history;
pub mod leases;
pub mod migrations;
mod outbox;
#[cfg(test)]
mod outbox_tests;
mod plans;
mod rule_failures;
mod schedule_runs;
mod sending;
pub mod share;
mod store;
mod writer;

pub use fleet::{Fleet, FleetView, Instance};
pub(crate) use store::Holder;
pub(crate) use store::db;
pub use store::{Member, POOL_SIZE, PgStore};
