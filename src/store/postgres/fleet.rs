//! A fleet member's side of the shared store: joining (an `instances` row it heartbeats),
//! claiming, renewing and giving up account leases, and the fleet as `tidings status` shows it.
//!
//! The epochs of the leases held live in [`PgStore`]'s fencing map: an account enters it only
//! once its claim committed, and leaves it before its release is sent or as soon as a renewal
//! finds it taken over, so no write is fenced with an epoch the member no longer holds.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use std::sync::Arc;

use super::store::{Holder, db};
use super::{PgStore, leases};
use crate::store::{Error, Result};

/// An instance of the fleet, with the leases it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Host, pid and start time.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it joined.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Whether its heartbeat is still running (not expired).
    pub alive: bool,
    /// The accounts it holds: name, epoch, lease expiry.
    pub accounts: Vec<(String, i64, DateTime<Utc>)>,
}

/// What the shared store says about the fleet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetView {
    /// Every instance that joined and has not left, live ones first, by id.
    pub instances: Vec<Instance>,
    /// Accounts whose lease expired with no one holding it now (their owner died or left).
    pub unheld: Vec<String>,
}

/// Seconds, as PostgreSQL's `make_interval` takes them.
fn secs(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64()
}

/// The fleet side of a shared store: membership (the instance's row and its heartbeat) and the
/// account leases, apart from the store's operations. `Store::open_at` returns it with a
/// PostgreSQL store; a tool's can only read the fleet ([`Fleet::view`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fleet {
    pg: Arc<PgStore>,
}

impl Fleet {
    pub(crate) fn new(pg: Arc<PgStore>) -> Fleet {
        Fleet { pg }
    }

    /// This member's identity and leases; only the daemon of a fleet opens the store as one.
    fn member(&self, verb: &'static str) -> Result<&Holder> {
        self.pg.fleet_state().ok_or(Error::NotAMember { verb })
    }

    /// The accounts this member may write for (the leases it holds); `None`: any account (a
    /// tool's handle).
    pub fn held(&self) -> Option<Vec<String>> {
        self.pg.held()
    }

    /// A pooled connection (for tests that set the database's state up by hand).
    #[cfg(test)]
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pg.client().await
    }

    /// Joins the fleet (or refreshes this instance's row): the instance counts as live from now
    /// until its heartbeat expires.
    pub async fn join(&self) -> Result<()> {
        let fleet = self.member("join the fleet")?;
        let m = &fleet.member;
        let client = self.pg.client().await?;
        client
            .execute(
                "INSERT INTO instances (id, host, pid, started_at, heartbeat_at, expires_at) \
                 VALUES ($1, $2, $3, now(), now(), now() + make_interval(secs => $4)) \
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), expires_at = excluded.expires_at",
                &[&m.id, &m.host, &i64::from(m.pid), &secs(m.lease)],
            )
            .await
            .map_err(db(|| format!("join the fleet as {}", m.id)))?;
        Ok(())
    }

    /// One heartbeat: refreshes this instance's row and renews every lease it holds, in one
    /// transaction. Returns the accounts found taken over (a stall outlived their lease): they
    /// are forgotten here, so their writes are refused from now on; the caller stops them.
    pub async fn heartbeat(&self) -> Result<Vec<String>> {
        let fleet = self.member("heartbeat")?;
        let m = &fleet.member;
        let (accounts, epochs): (Vec<String>, Vec<i64>) = self.holdings().into_iter().unzip();
        let mut client = self.pg.client().await?;
        let what = || format!("heartbeat as {}", m.id);
        let tx = client.transaction().await.map_err(db(what))?;
        tx.execute(
            "UPDATE instances SET heartbeat_at = now(), expires_at = now() + make_interval(secs => $2) WHERE id = $1",
            &[&m.id, &secs(m.lease)],
        )
        .await
        .map_err(db(what))?;
        let renewed: BTreeSet<String> = tx
            .query(
                // Rows locked in the order writes fence them (byte order, as `fence_each`), so a
                // heartbeat and a write for several accounts never wait on each other in a cycle.
                "WITH held AS ( \
                     SELECT l.account FROM leases l \
                     JOIN unnest($1::text[], $2::bigint[]) AS h(account, epoch) \
                       ON l.account = h.account AND l.epoch = h.epoch \
                     WHERE l.owner = $3 ORDER BY l.account COLLATE \"C\" FOR UPDATE OF l) \
                 UPDATE leases SET expires_at = now() + make_interval(secs => $4), heartbeat_at = now() \
                 FROM held WHERE leases.account = held.account \
                 RETURNING leases.account",
                &[&accounts, &epochs, &m.id, &secs(m.lease)],
            )
            .await
            .map_err(db(what))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        tx.commit().await.map_err(db(what))?;
        let lost: Vec<String> = accounts.into_iter().filter(|a| !renewed.contains(a)).collect();
        let mut epochs = fleet.epochs();
        for account in &lost {
            epochs.remove(account);
        }
        Ok(lost)
    }

    /// The leases held, as (account, epoch).
    fn holdings(&self) -> Vec<(String, i64)> {
        self.pg.fleet_state().map_or_else(Vec::new, |f| f.epochs().iter().map(|(a, e)| (a.clone(), *e)).collect())
    }

    /// Forgets every lease held without telling the database (the member lost touch with it
    /// for longer than a lease: others may own the accounts by now).
    pub fn forget_leases(&self) {
        if let Some(fleet) = self.pg.fleet_state() {
            fleet.epochs().clear();
        }
    }

    /// Claims `account` if it is free or its lease expired; its epoch when claimed.
    pub async fn claim(&self, account: &str) -> Result<Option<i64>> {
        let fleet = self.member("claim a lease")?;
        let mut client = self.pg.client().await?;
        let what = || format!("claim the lease of account {account}");
        let tx = client.transaction().await.map_err(db(what))?;
        // A claim waits for a write holding the lease row (see `leases::fence`); not for longer
        // than a quarter lease, so a round never stalls this member's own heartbeats.
        let wait = (fleet.member.lease / 4).as_millis().max(1);
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {wait}")).await.map_err(db(what))?;
        let Some(lease) = leases::claim(&*tx, account, &fleet.member.id, fleet.member.lease).await? else {
            return Ok(None);
        };
        tx.commit().await.map_err(db(what))?;
        fleet.epochs().insert(account.to_owned(), lease.epoch);
        Ok(Some(lease.epoch))
    }

    /// Gives `account` up: its writes are refused from now on, and another instance may claim
    /// it at once. Call after its worker stopped.
    pub async fn release(&self, account: &str) -> Result<()> {
        let fleet = self.member("release a lease")?;
        let Some(epoch) = fleet.epochs().remove(account) else {
            return Ok(());
        };
        let lease = leases::Lease {
            account: account.to_owned(),
            owner: fleet.member.id.clone(),
            epoch,
            expires_at: Utc::now(),
        };
        let client = self.pg.client().await?;
        leases::release(&**client, &lease).await?;
        Ok(())
    }

    /// Leaves the fleet: gives up every lease and removes this instance's row (a clean stop;
    /// a crash leaves both to expire).
    pub async fn leave(&self) -> Result<()> {
        let fleet = self.member("leave the fleet")?;
        for (account, _) in self.holdings() {
            self.release(&account).await?;
        }
        let client = self.pg.client().await?;
        client
            .execute("DELETE FROM instances WHERE id = $1", &[&fleet.member.id])
            .await
            .map_err(db(|| format!("leave the fleet as {}", fleet.member.id)))?;
        Ok(())
    }

    /// What a rebalance needs: the live instances (this one included) and the accounts other
    /// live holders have.
    pub async fn others(&self) -> Result<(usize, BTreeSet<String>)> {
        let fleet = self.member("read the fleet")?;
        let client = self.pg.client().await?;
        let what = || "read the fleet's instances and leases".to_owned();
        let live: i64 = client
            .query_one("SELECT count(*) FROM instances WHERE expires_at > now() OR id = $1", &[&fleet.member.id])
            .await
            .map_err(db(what))?
            .get(0);
        let taken = client
            .query("SELECT account FROM leases WHERE expires_at > now() AND owner <> $1", &[&fleet.member.id])
            .await
            .map_err(db(what))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        Ok((usize::try_from(live).unwrap_or(1).max(1), taken))
    }

    /// The fleet as the shared store records it (`tidings status`).
    pub async fn view(&self) -> Result<FleetView> {
        let client = self.pg.client().await?;
        let what = || "read the fleet's instances and leases".to_owned();
        let mut instances: Vec<Instance> = client
            .query(
                "SELECT id, host, pid, started_at, heartbeat_at, expires_at > now() FROM instances \
                 ORDER BY expires_at > now() DESC, id",
                &[],
            )
            .await
            .map_err(db(what))?
            .iter()
            .map(|row| Instance {
                id: row.get(0),
                host: row.get(1),
                pid: u32::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                started_at: row.get(3),
                heartbeat_at: row.get(4),
                alive: row.get(5),
                accounts: Vec::new(),
            })
            .collect();
        let mut unheld = Vec::new();
        let rows = client
            .query("SELECT account, owner, epoch, expires_at, expires_at > now() FROM leases ORDER BY account", &[])
            .await
            .map_err(db(what))?;
        for row in rows {
            let (account, owner, live): (String, String, bool) = (row.get(0), row.get(1), row.get(4));
            match instances.iter_mut().find(|i| i.id == owner).filter(|_| live) {
                Some(instance) => instance.accounts.push((account, row.get(2), row.get(3))),
                None => unheld.push(account),
            }
        }
        Ok(FleetView { instances, unheld })
    }
}
