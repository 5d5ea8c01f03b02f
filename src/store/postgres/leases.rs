//! Account leases with fencing epochs: which instance of a fleet works an account.
//!
//! An instance claims an account by taking its row in `leases`: free, or expired. Every claim
//! raises the account's epoch. The owner renews the lease well before it expires; an instance
//! that stalls past the expiry (a long pause, a frozen VM) may still believe it owns the
//! account when it wakes, so time alone cannot make the owner unique. The epoch does: every
//! write an owner makes for the account runs [`fence`] inside its transaction, which locks the
//! lease row and refuses the write unless the epoch it holds is still the current one. A claim
//! by another instance must update that row, so it waits for the write's transaction to end
//! and then raises the epoch: after it, the old owner's writes are refused.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

/// Why a lease operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("cannot {verb} the lease of account {account}")]
    Database {
        /// "claim", "renew", "release", "check".
        verb: &'static str,
        /// The account.
        account: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The epoch held is not the account's current one: another instance took it over.
    #[error(
        "cannot write for account {account}: its lease was taken over (epoch {held} is stale, the current one is {current})"
    )]
    Stale {
        /// The account.
        account: String,
        /// The epoch the writer held.
        held: i64,
        /// The current epoch (0: no lease at all).
        current: i64,
    },
}

/// A lease held: the account, the epoch every write must carry, and until when it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The account.
    pub account: String,
    /// The instance holding it.
    pub owner: String,
    /// The fencing epoch.
    pub epoch: i64,
    /// When it expires unless renewed (the database's clock).
    pub expires_at: DateTime<Utc>,
}

fn interval(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

/// Claims `account` for `owner` for `ttl` if it is free or its lease expired (the database's
/// clock decides, so the instances' clocks need not agree); `None` while another holds it.
pub async fn claim(
    client: &impl GenericClient,
    account: &str,
    owner: &str,
    ttl: Duration,
) -> Result<Option<Lease>, Error> {
    let row = client
        .query_opt(
            "INSERT INTO leases (account, owner, epoch, expires_at, heartbeat_at) \
             VALUES ($1, $2, 1, now() + make_interval(secs => $3), now()) \
             ON CONFLICT (account) DO UPDATE SET owner = excluded.owner, epoch = leases.epoch + 1, \
                 expires_at = excluded.expires_at, heartbeat_at = now() \
             WHERE leases.expires_at <= now() \
             RETURNING epoch, expires_at",
            &[&account, &owner, &interval(ttl)],
        )
        .await
        .map_err(|source| Error::Database { verb: "claim", account: account.to_owned(), source })?;
    Ok(row.map(|row| Lease {
        account: account.to_owned(),
        owner: owner.to_owned(),
        epoch: row.get(0),
        expires_at: row.get(1),
    }))
}

/// Extends `lease` by `ttl` from now; `false` when it was taken over (the epoch moved on), in
/// which case the account must be given up at once.
pub async fn renew(client: &impl GenericClient, lease: &mut Lease, ttl: Duration) -> Result<bool, Error> {
    let row = client
        .query_opt(
            "UPDATE leases SET expires_at = now() + make_interval(secs => $4), heartbeat_at = now() \
             WHERE account = $1 AND owner = $2 AND epoch = $3 RETURNING expires_at",
            &[&lease.account, &lease.owner, &lease.epoch, &interval(ttl)],
        )
        .await
        .map_err(|source| Error::Database { verb: "renew", account: lease.account.clone(), source })?;
    Ok(match row {
        Some(row) => {
            lease.expires_at = row.get(0);
            true
        }
        None => false,
    })
}

/// Gives `lease` up now (a clean stop, or a rebalance), so another instance can claim the
/// account without waiting for the expiry.
pub async fn release(client: &impl GenericClient, lease: &Lease) -> Result<(), Error> {
    client
        .execute(
            "UPDATE leases SET expires_at = now() WHERE account = $1 AND owner = $2 AND epoch = $3",
            &[&lease.account, &lease.owner, &lease.epoch],
        )
        .await
        .map_err(|source| Error::Database { verb: "release", account: lease.account.clone(), source })?;
    Ok(())
}

/// Inside a write's transaction: locks the account's lease row (a takeover waits for this
/// transaction) and refuses the write unless `epoch` is the current one.
pub async fn fence(tx: &impl GenericClient, account: &str, epoch: i64) -> Result<(), Error> {
    let row = tx
        .query_opt("SELECT epoch FROM leases WHERE account = $1 FOR SHARE", &[&account])
        .await
        .map_err(|source| Error::Database { verb: "check", account: account.to_owned(), source })?;
    let current: i64 = row.map_or(0, |row| row.get(0));
    if current == epoch {
        return Ok(());
    }
    Err(Error::Stale { account: account.to_owned(), held: epoch, current })
}
