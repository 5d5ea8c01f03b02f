//! The PostgreSQL side of the store, for a fleet of instances sharing one database (issue 10).
//!
//! Built so far: account leases with fencing epochs ([`leases`]). Not built yet: the store's
//! tables and methods on PostgreSQL (checkpoints, outbox, ...), connections over rustls, and
//! the runtime using either; until then nothing outside the tests uses this module.

pub mod leases;
