//! The shared store's PostgreSQL parts on a real PostgreSQL (the harness's own cluster).
//!
//! Leases: a lease is held until it expires, then taken over with a new epoch; the old owner's
//! renewal and its writes are refused; a takeover waits for a write in progress; of instances
//! racing for an expired lease exactly one wins. Schema: the same numbered versions as SQLite,
//! applied once even by instances starting together; a newer database is refused.

use std::time::{Duration, Instant};

use tidings::store::postgres::leases::{self, Error, Lease};
use tidings::store::postgres::migrations;
use tokio_postgres::{Client, NoTls};

use crate::harness::Postgres;

const TTL: Duration = Duration::from_millis(300);

async fn connect(pg: &Postgres) -> Client {
    let (client, connection) = tokio_postgres::connect(&pg.url("tidings"), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A write for `lease`'s account, fenced as every store write of an owner will be.
async fn fenced_write(client: &mut Client, lease: &Lease, what: &str) -> Result<(), Error> {
    let tx = client.transaction().await.unwrap();
    leases::fence(&tx, &lease.account, lease.epoch).await?;
    tx.execute("INSERT INTO writes (account, what) VALUES ($1, $2)", &[&lease.account, &what]).await.unwrap();
    tx.commit().await.unwrap();
    Ok(())
}

async fn setup() -> (Postgres, Client) {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap().unwrap();
    let mut client = connect(&pg).await;
    migrations::migrate(&mut client).await.unwrap();
    client.batch_execute("CREATE TABLE writes (account TEXT NOT NULL, what TEXT NOT NULL)").await.unwrap();
    (pg, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off() {
    let (pg, mut a) = setup().await;
    let mut b = connect(&pg).await;
    let mut held = leases::claim(&a, "work", "instance-a", TTL).await.unwrap().expect("a free account is claimed");
    assert_eq!(held.epoch, 1);
    assert_eq!(leases::claim(&b, "work", "instance-b", TTL).await.unwrap(), None, "held, not expired");
    assert!(leases::renew(&a, &mut held, TTL).await.unwrap(), "the owner renews");
    fenced_write(&mut a, &held, "a while it owns").await.unwrap();

    // a stalls past its lease (a frozen VM): b takes the account over with a new epoch.
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    let taken = leases::claim(&b, "work", "instance-b", TTL).await.unwrap().expect("an expired lease is claimed");
    assert_eq!(taken.epoch, 2);
    // a wakes up, still believing it owns the account: its writes and its renewal are refused.
    match fenced_write(&mut a, &held, "a after the takeover").await {
        Err(Error::Stale { held: 1, current: 2, account }) => assert_eq!(account, "work"),
        other => panic!("the stale owner's write went through: {other:?}"),
    }
    assert!(!leases::renew(&a, &mut held, TTL).await.unwrap(), "a stale lease is not renewed");
    fenced_write(&mut b, &taken, "b, the new owner").await.unwrap();
    let writes: Vec<String> =
        a.query("SELECT what FROM writes ORDER BY what", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(writes, ["a while it owns", "b, the new owner"]);

    // A release lets the next claim in at once.
    leases::release(&b, &taken).await.unwrap();
    let again = leases::claim(&a, "work", "instance-a", TTL).await.unwrap().expect("a released lease is free");
    assert_eq!(again.epoch, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_takeover_waits_for_the_write_in_progress() {
    let (pg, mut a) = setup().await;
    let b = connect(&pg).await;
    let held = leases::claim(&a, "work", "instance-a", TTL).await.unwrap().unwrap();
    let tx = a.transaction().await.unwrap();
    leases::fence(&tx, "work", held.epoch).await.unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    // The lease has expired, but a's fenced transaction still holds the row: b's claim waits.
    let started = Instant::now();
    let claim = tokio::spawn(async move { (leases::claim(&b, "work", "instance-b", TTL).await, Instant::now()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!claim.is_finished(), "the takeover did not wait for the write in progress");
    tx.execute("INSERT INTO writes (account, what) VALUES ('work', 'a, fenced before the takeover')", &[])
        .await
        .unwrap();
    let committed = Instant::now();
    tx.commit().await.unwrap();
    let (taken, at) = claim.await.unwrap();
    let taken = taken.unwrap().expect("claimed once the write was committed");
    assert_eq!(taken.epoch, 2);
    assert!(at >= committed, "claimed {:?} after start, before the commit", at - started);
    let stale = fenced_write(&mut a, &held, "a after").await;
    assert!(matches!(stale, Err(Error::Stale { held: 1, current: 2, .. })), "{stale:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn of_three_instances_racing_for_an_expired_lease_exactly_one_wins() {
    let (pg, first) = setup().await;
    leases::claim(&first, "work", "gone", TTL).await.unwrap().unwrap();
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    let mut racers = Vec::new();
    for n in 0..3 {
        let client = connect(&pg).await;
        racers.push(tokio::spawn(async move {
            leases::claim(&client, "work", &format!("instance-{n}"), TTL).await.unwrap()
        }));
    }
    let mut won = Vec::new();
    for racer in racers {
        won.extend(racer.await.unwrap());
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(won[0].epoch, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schema_is_applied_once_even_by_instances_starting_together() {
    assert!(migrations::covers_every_version(), "a SQLite version without its PostgreSQL step");
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap().unwrap();
    let mut starting = Vec::new();
    for _ in 0..3 {
        let mut client = connect(&pg).await;
        starting.push(tokio::spawn(async move { migrations::migrate(&mut client).await.unwrap() }));
    }
    let mut applied = Vec::new();
    for instance in starting {
        applied.extend(instance.await.unwrap());
    }
    applied.sort_unstable();
    assert_eq!(applied, [1, 2, 3, 4, 5, 6, 7, 8], "each step applied by exactly one instance");
    let mut client = connect(&pg).await;
    assert!(migrations::migrate(&mut client).await.unwrap().is_empty(), "up to date: nothing to do");
    let names: Vec<String> = client
        .query("SELECT name FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names.len(), 8);
    assert_eq!(names[5], "health: watcher states, decided messages", "the names are SQLite's");
    assert_eq!(names[6], "fleet: instances, account leases");
    assert_eq!(names[7], "retention: reply log expiry, pruning indexes");
    // Version 3 widened the states; the CHECK still refuses what is no state.
    let insert = "INSERT INTO actions (idempotency_key, account, kind, payload, state, next_attempt_at, created_at, \
                  updated_at, rule) VALUES ($1, 'a', 'reply', '{}', $2, 0, 0, 0, 'r.rhai')";
    client.execute(insert, &[&"k1", &"sending"]).await.expect("a v3 state");
    assert!(client.execute(insert, &[&"k2", &"bogus"]).await.is_err(), "not a state");
    assert!(client.execute(insert, &[&"k1", &"pending"]).await.is_err(), "one action per key");
    client.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)", &[]).await.unwrap();
    let newer = migrations::migrate(&mut client).await.unwrap_err().to_string();
    assert!(newer.contains("its schema is at version 99, newer than this tidings knows (8)"), "{newer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_speaks_tls_verified_with_the_ca_file_and_refuses_an_unknown_ca() {
    use tidings::store::postgres::connect;
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap().unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("postgres://{}@{host}:{}/tidings?sslmode=require", crate::harness::postgres::ROLE, pg.port);
        let pool = connect::pool(&url, Some(&pg.ca_file), 2, Duration::from_secs(5)).unwrap();
        let client = pool.get().await.unwrap_or_else(|e| panic!("{host}: {e:?}\n{}", pg.log_tail()));
        let row =
            client.query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
        let (ssl, version): (bool, String) = (row.get(0), row.get(1));
        assert!(ssl && version.starts_with("TLSv1."), "{host}: {ssl} {version}");
    }
    // The platform's roots do not know the harness's CA: refused, not downgraded.
    let url = format!("{}?sslmode=require", pg.url("tidings"));
    let refused = connect::pool(&url, None, 1, Duration::from_secs(5)).unwrap().get().await.map(|_| ()).unwrap_err();
    assert!(format!("{refused:?}").contains("UnknownIssuer"), "{refused:?}");
    // A URL that does not parse is refused without repeating it (it may hold a password).
    let bad = connect::pool("postgres://me:s3cret@127.0.0.1:notaport/x", None, 1, Duration::from_secs(5)).unwrap_err();
    assert!(!format!("{bad} {bad:?}").contains("s3cret"), "{bad:?}");
}
