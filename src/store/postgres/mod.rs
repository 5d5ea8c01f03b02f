//! The PostgreSQL side of the store, for a fleet of instances sharing one database (issue 10).
//!
//! Built so far: a connection pool over rustls ([`connect`]), account leases with fencing
//! epochs ([`leases`]), each instance's fair share of the accounts ([`share`]) and the schema's
//! numbered versions in PostgreSQL's dialect ([`migrations`]). Not built yet: the store's methods on PostgreSQL (checkpoints, outbox,
//! ...) and the runtime choosing the backend from `state:`; until then nothing outside the
//! tests uses this module.

pub mod connect;
pub mod leases;
pub mod migrations;
pub mod share;
