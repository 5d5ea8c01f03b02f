//! Store: what the store costs per message, on SQLite and on PostgreSQL, through the public
//! `Store` API only (no IMAP, no rules: the store's own share of a sorted message).
//!
//! `TIDINGS_BENCH_STORE_ACCOUNTS` (50) account tasks run at once on one `Store`, each living
//! `TIDINGS_BENCH_STORE_MESSAGES` (200) messages one after another, as an account's watcher and
//! executor do under push (one new message at a time):
//!
//! 1. the watcher stores the message's plan (`commit_plans` with one `MessagePlan`: the mailbox
//!    checkpoint moved to its uid, two actions as a sorting rule plans them, `add_flags` and
//!    `move`, with the payloads the planner writes, and its `tidings history` row);
//! 2. the executor asks when the next action is due (`next_due`), claims what is due
//!    (`claim_due_for`, the IMAP kinds, the executor's batch of 5,000), and records both
//!    outcomes as done in one call (`record_outcomes`);
//! 3. it asks `next_due` again and finds nothing (the executor's idle check).
//!
//! So a message is 3 write transactions and 2 reads. The real executor asks `next_due` once
//! more before it sleeps; nothing else is left out. Each pass checks at the end that every
//! action is done.
//!
//! Passes:
//! - SQLite: one file in /tmp (WAL, `synchronous=FULL`: every commit is fsynced).
//! - PostgreSQL: the test harness's own server (TLS on loopback, same machine), opened as a
//!   fleet member (`Member`, lease 30 s) that joined and claimed every account, so every write
//!   is fenced by its lease as in a fleet; its heartbeat runs every
//!   `TIDINGS_BENCH_STORE_HEARTBEAT_MS` (1,000) during the pass. Each pass gets a fresh
//!   database. With the accounts above, with 1 account task (`TIDINGS_BENCH_STORE_MESSAGES` x 10
//!   messages), and with `TIDINGS_BENCH_STORE_MANY` (200) account tasks sharing the same total
//!   of messages, to show where the pool of `POOL_SIZE` (16) connections saturates.
//! - The harness runs PostgreSQL with `fsync=off` (the tests never crash the machine): its
//!   commits are cheaper than a production server's. The last pass repeats the first
//!   PostgreSQL pass on a second cluster started with `fsync=on` (the harness's `-c fsync=off`
//!   is on the server's command line, which `ALTER SYSTEM` cannot override);
//!   `TIDINGS_BENCH_STORE_FSYNC=0` skips it.
//!
//! For PostgreSQL each pass reports the database's load per message from `pg_stat_database`
//! deltas (transactions, rows inserted + updated + deleted), the WAL written
//! (`pg_wal_lsn_diff` of `pg_current_wal_lsn()`, and `pg_stat_wal`'s records and full-page
//! images; cluster-wide), the 8 KiB buffers written (`pg_stat_bgwriter`, a `CHECKPOINT` after
//! the pass included: the pages the pass dirtied), the CPU of the pool's server backends and of
//! this process, and how many connections the instance opened (`pg_stat_activity`). After the
//! pass, 20 heartbeats alone give the cost of one heartbeat (1 + accounts row updates), and a
//! `VACUUM` the cost of cleaning up after the pass (autovacuum is off during the passes, so
//! that its work lands in no reading by chance).
//!
//! Both sides run on this one machine (2 cores): tidings' tasks and the server share them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chrono::Utc;
use tidings::exec::IMAP_KINDS;
use tidings::plan::Action as Planned;
use tidings::store::postgres::{Member, POOL_SIZE};
use tidings::store::{ActionState, Checkpoint, Decided, MessagePlan, NewAction, Outcome, Store};

use crate::footprint::{clock_ticks, cpu_ticks};
use crate::harness::Postgres;
use crate::table::Table;

/// The executor's claim limit (`exec::BATCH`).
const CLAIM_LIMIT: usize = 5000;
const UIDVALIDITY: u32 = 1_700_000_000;
const RULE: &str = "sort.rhai";
/// Heartbeats timed back to back after a pass, alone.
const LONE_BEATS: usize = 20;
/// How long an idle server backend may keep its statistics before it reports them, with a
/// margin: PostgreSQL (15+) flushes a session's counters at most once a second, and one that
/// went idle within a second of its last flush reports again only after PGSTAT_IDLE_INTERVAL,
/// 10 s. The pool's connections stay open and idle between passes, so every reading waits.
const STATS_FLUSH: Duration = Duration::from_secs(11);
/// Autovacuum would run in the background at any moment of a pass, or of the waits for the
/// statistics, and its WAL and transactions would land in whichever reading came next: it is
/// off, and a `VACUUM` after each pass measures the same clean-up at a known time.
const NO_AUTOVACUUM: &str = "autovacuum=off";

pub async fn run(table: &mut Table) -> Result<()> {
    let accounts: usize = env_number("TIDINGS_BENCH_STORE_ACCOUNTS", 50);
    let messages: u32 = env_number("TIDINGS_BENCH_STORE_MESSAGES", 200);
    let many: usize = env_number("TIDINGS_BENCH_STORE_MANY", 200);
    let beat = Duration::from_millis(env_number("TIDINGS_BENCH_STORE_HEARTBEAT_MS", 1000));
    let with_fsync = env_number("TIDINGS_BENCH_STORE_FSYNC", 1u8) != 0;
    ensure!(accounts >= 1 && messages >= 1 && many >= 1, "TIDINGS_BENCH_STORE_* must be at least 1");
    eprintln!(
        "store: {accounts} account tasks x {messages} messages; each message: commit_plans (checkpoint, add_flags + \
         move, history row), next_due, claim_due_for, record_outcomes, next_due; load average {}",
        load_average()
    );

    // SQLite.
    let dir = tempfile::Builder::new().prefix("tidings-bench-store-").tempdir_in("/tmp")?;
    let store = Store::open(&dir.path().join("state.db")).await?;
    let cpu0 = own_cpu()?;
    let life = live(&store, &names(accounts), messages).await?;
    let cpu = own_cpu()? - cpu0;
    // Closing the last connection checkpoints the WAL into the file and removes it.
    drop(store);
    let (file, wal) = (dir.path().join("state.db"), dir.path().join("state.db-wal"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bytes = std::fs::metadata(&file)?.len() as f64 / life.messages as f64;
    eprintln!(
        "store: SQLite (synchronous=FULL, ext4 under /tmp): {} messages in {:.2} s: {:.0} msg/s; life median {:.2} \
         ms, p99 {:.2} ms; tidings CPU {:.0} us/msg; file {bytes:.0} bytes/msg; load average after it {}",
        life.messages,
        life.wall.as_secs_f64(),
        life.rate(),
        life.quantile_ms(0.5),
        life.quantile_ms(0.99),
        cpu / life.messages as f64 * 1e6,
        load_average()
    );
    table.note(
        format!("store: SQLite, {accounts} account tasks x {messages} messages (fsync on every commit)"),
        format!(
            "{:.0} msg/s ({} msg in {:.2} s); life median {:.2} ms, p99 {:.2} ms; tidings CPU {:.0} µs/msg; file \
             {bytes:.0} bytes/msg",
            life.rate(),
            life.messages,
            life.wall.as_secs_f64(),
            life.quantile_ms(0.5),
            life.quantile_ms(0.99),
            cpu / life.messages as f64 * 1e6
        ),
    );

    // PostgreSQL, as the harness runs it.
    let pg = tokio::task::block_in_place(|| Postgres::start_with(&[NO_AUTOVACUUM]))?;
    eprintln!(
        "store: PostgreSQL {} on 127.0.0.1:{} (TLS), fsync={} as the harness runs it: commits are cheaper than on \
         a production server with fsync on",
        psql(&pg, "postgres", "SHOW server_version")?.trim(),
        pg.port,
        psql(&pg, "postgres", "SHOW fsync")?.trim()
    );
    // The same messages in all for `many` tasks as for `accounts`: only the concurrency differs.
    let total = accounts * messages as usize;
    let spread = u32::try_from(total.div_ceil(many)).unwrap_or(u32::MAX).max(1);
    let passes = [(accounts, messages), (1, messages.saturating_mul(10)), (many, spread)];
    for (index, &(accounts, messages)) in passes.iter().enumerate() {
        let pass = pg_pass(&pg, &format!("bench{index}"), accounts, messages, beat).await?;
        pass.report("fsync=off", table);
    }
    drop(pg);
    // The same first pass on a cluster that syncs its commits. The harness's `-c fsync=off`
    // is on the server's command line, which `ALTER SYSTEM` cannot override: a second cluster.
    if with_fsync {
        let pg = tokio::task::block_in_place(|| Postgres::start_with(&[NO_AUTOVACUUM, "fsync=on"]))?;
        let settings =
            psql(&pg, "postgres", "SELECT current_setting('fsync') || ' ' || current_setting('wal_sync_method')")?;
        ensure!(settings.starts_with("on "), "the second cluster should sync: {settings}");
        eprintln!(
            "store: a second PostgreSQL cluster with fsync=on, wal_sync_method {}",
            settings.trim().split(' ').nth(1).unwrap_or("?")
        );
        let pass = pg_pass(&pg, "bench_fsync", accounts, messages, beat).await?;
        pass.report("fsync=on", table);
    }
    Ok(())
}

/// One PostgreSQL pass on a fresh database `db`.
async fn pg_pass(pg: &Postgres, db: &str, accounts: usize, messages: u32, beat: Duration) -> Result<PgPass> {
    psql(pg, "postgres", &format!("CREATE DATABASE {db}"))?;
    let member = Member {
        id: format!("bench/{}/{db}", std::process::id()),
        host: "bench".to_owned(),
        pid: std::process::id(),
        lease: Duration::from_secs(30),
    };
    let store = Store::open_postgres(&pg.url(db), Some(&pg.ca_file), Some(member)).await?;
    let fleet = store.fleet().context("a PostgreSQL store has a fleet side")?;
    fleet.join().await?;
    let names = names(accounts);
    let claiming = Instant::now();
    for name in &names {
        ensure!(fleet.claim(name).await?.is_some(), "account {name} could not be claimed");
    }
    let claims = claiming.elapsed();
    let size0 = Sizes::read(pg, db)?;
    // Start from clean pages: what the pass dirties is written by the checkpoint after it.
    psql(pg, "postgres", "CHECKPOINT")?;
    tokio::time::sleep(STATS_FLUSH).await;
    let before = Stats::read(pg, db)?;
    let (backends0, cpu0) = (backend_cpu(pg, db)?, own_cpu()?);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let beats = tokio::spawn(heartbeats(store.clone(), beat, stopped));
    let life = live(&store, &names, messages).await?;
    let _ = stop.send(());
    let beats = beats.await??;
    let cpu = own_cpu()? - cpu0;
    let connections: u64 =
        psql(pg, "postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"))?
            .trim()
            .parse()?;
    let backends = backend_cpu(pg, db)? - backends0;
    tokio::time::sleep(STATS_FLUSH).await;
    let mut after = Stats::read(pg, db)?;

    // Heartbeats alone: their own cost (before the checkpoint, which would make each page's
    // first change after it a full-page image: the pass's fences have touched these already).
    let mut lone = Vec::with_capacity(LONE_BEATS);
    for _ in 0..LONE_BEATS {
        let started = Instant::now();
        let lost = fleet.heartbeat().await?;
        ensure!(lost.is_empty(), "leases lost during the bench: {lost:?}");
        lone.push(started.elapsed());
    }
    tokio::time::sleep(STATS_FLUSH).await;
    let beat_load = Stats::read(pg, db)?.minus(&after);

    // The clean-up autovacuum would do: every claim and outcome leaves a dead row version.
    let (lsn, started) = (Stats::read(pg, db)?.wal, Instant::now());
    psql(pg, db, "VACUUM")?;
    let vacuum = (Stats::read(pg, db)?.wal - lsn, started.elapsed());
    // What the pass dirtied (and the heartbeats and the vacuum, on the same pages) written out.
    psql(pg, "postgres", "CHECKPOINT")?;
    after.buffers = Stats::read(pg, db)?.buffers;
    let size = Sizes::read(pg, db)?.minus(&size0);

    // What taking an account over costs beside its claim, with the pass's actions stored: the
    // runtime's `recover` settles what the last owner left in flight and lists the uncertain
    // actions (of every account) to requeue those safe to repeat.
    let recovering = Instant::now();
    for name in &names {
        ensure!(store.recover_in_flight_of(name).await?.is_empty(), "{name}: actions left in flight");
        store.list_outbox(Some(ActionState::Uncertain), usize::MAX).await?;
    }
    let recovers = recovering.elapsed();
    fleet.leave().await?;
    drop(store);
    Ok(PgPass {
        accounts,
        life,
        load: after.minus(&before),
        size,
        claims,
        recovers,
        beat_load,
        beats_under_load: beats,
        lone_beats: lone,
        connections,
        backend_cpu: backends,
        vacuum,
        own_cpu: cpu,
    })
}

/// Every account task living `messages` messages on `store` at once.
async fn live(store: &Store, names: &[String], messages: u32) -> Result<Life> {
    let started = Instant::now();
    let tasks: Vec<_> =
        names.iter().map(|name| tokio::spawn(account_life(store.clone(), name.clone(), messages))).collect();
    let mut latencies = Vec::with_capacity(names.len() * messages as usize);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let wall = started.elapsed();
    let counts = store.outbox_counts().await?;
    let total = names.len() * messages as usize;
    ensure!(
        counts.done == 2 * total as u64 && counts.pending == 0 && counts.in_flight == 0,
        "after the pass the outbox should hold {} done actions: {counts:?}",
        2 * total
    );
    latencies.sort();
    Ok(Life { messages: total, wall, latencies })
}

/// One account's messages, one after another; the time each one's life took.
async fn account_life(store: Store, account: String, messages: u32) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(messages as usize);
    for uid in 1..=messages {
        let started = Instant::now();
        let ids = store.commit_plans(vec![plan(&account, uid)]).await?;
        ensure!(ids.len() == 2, "{account}/{uid}: {} actions stored", ids.len());
        ensure!(store.next_due(&account, IMAP_KINDS).await?.is_some(), "{account}/{uid}: nothing due");
        let claimed = store.claim_due_for(&account, IMAP_KINDS, Utc::now(), CLAIM_LIMIT).await?;
        ensure!(claimed.len() == 2, "{account}/{uid}: {} actions claimed", claimed.len());
        store.record_outcomes(claimed.iter().map(|a| (a.id, Outcome::Done)).collect()).await?;
        ensure!(store.next_due(&account, IMAP_KINDS).await?.is_none(), "{account}/{uid}: still due");
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// The plan a sorting rule makes of message `uid` of INBOX: flag it, move it.
fn plan(account: &str, uid: u32) -> MessagePlan {
    let action = |position: usize, planned: Planned| {
        let payload = serde_json::to_value(&planned).unwrap_or_default();
        let kind = payload["kind"].as_str().unwrap_or_default().to_owned();
        NewAction::new(format!("{account}/INBOX/{UIDVALIDITY}/{uid}/{RULE}#{position}"), account, kind, payload)
            .for_message("INBOX", UIDVALIDITY, uid)
            .by_rule(RULE)
    };
    MessagePlan {
        checkpoint: Checkpoint {
            account: account.to_owned(),
            mailbox: "INBOX".to_owned(),
            uidvalidity: UIDVALIDITY,
            last_uid: uid,
        },
        actions: vec![
            action(0, Planned::AddFlags { flags: vec!["$Sorted".to_owned()] }),
            action(1, Planned::Move { mailbox: "Lists/rust-users".to_owned() }),
        ],
        failures: Vec::new(),
        gmail_msgid: None,
        decided: Decided {
            uid: Some(uid),
            message_id: Some(format!("{uid}.{account}@bench.example")),
            matched: vec![RULE.to_owned()],
            stopped_by: None,
        },
    }
}

/// The fleet member's heartbeat every `period` until `stop`: how long each took.
async fn heartbeats(
    store: Store,
    period: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Vec<Duration>> {
    let fleet = store.fleet().context("a PostgreSQL store has a fleet side")?;
    let mut took = Vec::new();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(took),
            () = tokio::time::sleep(period) => {}
        }
        let started = Instant::now();
        let lost = fleet.heartbeat().await?;
        ensure!(lost.is_empty(), "leases lost during the bench: {lost:?}");
        took.push(started.elapsed());
    }
}

fn names(accounts: usize) -> Vec<String> {
    (0..accounts).map(|i| format!("acct{i:04}")).collect()
}

/// What a pass's account tasks did.
struct Life {
    messages: usize,
    wall: Duration,
    /// Each message's life (commit to the last `next_due`), sorted.
    latencies: Vec<Duration>,
}

impl Life {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.wall.as_secs_f64()
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        quantile(&self.latencies, q).as_secs_f64() * 1e3
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// What one PostgreSQL pass measured.
struct PgPass {
    accounts: usize,
    life: Life,
    /// Database counters over the pass (its heartbeats included).
    load: Stats,
    /// Database counters over [`LONE_BEATS`] heartbeats alone.
    beat_load: Stats,
    beats_under_load: Vec<Duration>,
    lone_beats: Vec<Duration>,
    connections: u64,
    /// CPU seconds of the server backends serving this instance.
    backend_cpu: f64,
    /// CPU seconds of this process (the account tasks, the pool, TLS).
    own_cpu: f64,
    /// WAL bytes and wall time of a `VACUUM` of the database after the pass.
    vacuum: (i64, Duration),
    /// What the pass added on disk (after its `VACUUM`).
    size: Sizes,
    /// Claiming every account, one after another, before the pass.
    claims: Duration,
    /// Recovering every account (as a takeover does) after the pass.
    recovers: Duration,
}

impl PgPass {
    fn report(&self, fsync: &str, table: &mut Table) {
        let n = self.life.messages as f64;
        let per = |v: i64| v as f64 / n;
        let l = &self.load;
        let tasks = match self.accounts {
            1 => "1 account task".to_owned(),
            a => format!("{a} account tasks"),
        };
        let life = format!(
            "{:.0} msg/s ({} msg in {:.2} s); life median {:.2} ms, p99 {:.2} ms",
            self.life.rate(),
            self.life.messages,
            self.life.wall.as_secs_f64(),
            self.life.quantile_ms(0.5),
            self.life.quantile_ms(0.99)
        );
        let load = format!(
            "{:.2} transactions ({:.2} rolled back), {:.2} rows written ({:.2} inserted, {:.2} updated, {:.2} \
             deleted), {:.0} WAL bytes ({:.1} records, {:.3} full-page images) + {:.0} WAL bytes of the VACUUM \
             after the pass ({:.2} s), {:.3} buffers written (8 KiB; the pages dirtied, written by a checkpoint \
             after the pass and its VACUUM)",
            per(l.xacts),
            per(l.rollbacks),
            per(l.inserted + l.updated + l.deleted),
            per(l.inserted),
            per(l.updated),
            per(l.deleted),
            per(l.wal),
            per(l.wal_records),
            per(l.wal_fpi),
            per(self.vacuum.0),
            self.vacuum.1.as_secs_f64(),
            per(l.buffers)
        );
        let cpu = format!(
            "server backends {:.0} µs/msg, tidings {:.0} µs/msg; {} server connections opened (pool of {POOL_SIZE})",
            self.backend_cpu / n * 1e6,
            self.own_cpu / n * 1e6,
            self.connections
        );
        let b = &self.beat_load;
        let beats = LONE_BEATS as f64;
        let mut under = self.beats_under_load.clone();
        under.sort();
        let mut lone = self.lone_beats.clone();
        lone.sort();
        let under_load = match under.last() {
            Some(max) => format!(
                "under the pass's load median {:.2} ms, max {:.2} ms (n={})",
                quantile(&under, 0.5).as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3,
                under.len()
            ),
            None => "none during the pass".to_owned(),
        };
        let beat = format!(
            "{:.2} transactions, {:.1} rows updated, {:.0} WAL bytes per heartbeat of {} leases; {:.2} ms alone \
             (median of {LONE_BEATS}), {under_load}",
            b.xacts as f64 / beats,
            b.updated as f64 / beats,
            b.wal as f64 / beats,
            self.accounts,
            quantile(&lone, 0.5).as_secs_f64() * 1e3,
        );
        eprintln!("store: PostgreSQL ({fsync}), {tasks}: {life}; load average after it {}", load_average());
        eprintln!("store:   per message: {load}");
        eprintln!("store:   CPU: {cpu}");
        eprintln!("store:   heartbeat: {beat}");
        let a = self.accounts as f64;
        let takeover = format!(
            "claim {:.2} ms per account ({} claimed one after another); recover (settle in-flight, list uncertain) \
             {:.2} ms per account with {} actions stored",
            self.claims.as_secs_f64() * 1e3 / a,
            self.accounts,
            self.recovers.as_secs_f64() * 1e3 / a,
            2 * self.life.messages
        );
        let z = &self.size;
        let disk = format!(
            "{:.0} bytes per message in the database after VACUUM (actions + 4 indexes {:.0}, messages + 3 indexes \
             {:.0})",
            per(z.database),
            per(z.actions),
            per(z.messages)
        );
        eprintln!("store:   takeover work: {takeover}");
        eprintln!("store:   disk: {disk}");
        table.note(format!("store: PostgreSQL ({fsync}), {tasks}, fenced fleet member"), format!("{life}; {cpu}"));
        table.note(format!("store: PostgreSQL ({fsync}), {tasks}: database load per message"), load);
        table.note(format!("store: PostgreSQL ({fsync}), {tasks}: heartbeat"), beat);
        table.note(
            format!("store: PostgreSQL ({fsync}), {tasks}: takeover work and disk"),
            format!("{takeover}; {disk}"),
        );
    }
}

/// Counters of the server, for one database (transactions, rows) and cluster-wide (WAL,
/// buffers written).
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    xacts: i64,
    rollbacks: i64,
    inserted: i64,
    updated: i64,
    deleted: i64,
    /// WAL position in bytes.
    wal: i64,
    wal_records: i64,
    wal_fpi: i64,
    buffers: i64,
}

impl Stats {
    fn read(pg: &Postgres, db: &str) -> Result<Stats> {
        let sql = format!(
            "SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, d.tup_deleted, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, w.wal_records, w.wal_fpi, \
             b.buffers_checkpoint + b.buffers_clean + b.buffers_backend \
             FROM pg_stat_database d, pg_stat_wal w, pg_stat_bgwriter b WHERE d.datname = '{db}'"
        );
        let out = psql(pg, "postgres", &sql)?;
        let v: Vec<i64> =
            out.trim().split('|').map(str::parse).collect::<Result<_, _>>().with_context(|| out.clone())?;
        let [xacts, rollbacks, inserted, updated, deleted, wal, wal_records, wal_fpi, buffers] = v[..] else {
            bail!("unexpected statistics row {out:?}");
        };
        Ok(Stats { xacts, rollbacks, inserted, updated, deleted, wal, wal_records, wal_fpi, buffers })
    }

    fn minus(&self, earlier: &Stats) -> Stats {
        Stats {
            xacts: self.xacts - earlier.xacts,
            rollbacks: self.rollbacks - earlier.rollbacks,
            inserted: self.inserted - earlier.inserted,
            updated: self.updated - earlier.updated,
            deleted: self.deleted - earlier.deleted,
            wal: self.wal - earlier.wal,
            wal_records: self.wal_records - earlier.wal_records,
            wal_fpi: self.wal_fpi - earlier.wal_fpi,
            buffers: self.buffers - earlier.buffers,
        }
    }
}

/// On-disk sizes in bytes (tables with their indexes and TOAST).
#[derive(Clone, Copy, Debug, Default)]
struct Sizes {
    actions: i64,
    messages: i64,
    database: i64,
}

impl Sizes {
    fn read(pg: &Postgres, db: &str) -> Result<Sizes> {
        let sql = "SELECT pg_total_relation_size('actions'), pg_total_relation_size('messages'), \
                   pg_database_size(current_database())";
        let out = psql(pg, db, sql)?;
        let v: Vec<i64> =
            out.trim().split('|').map(str::parse).collect::<Result<_, _>>().with_context(|| out.clone())?;
        let [actions, messages, database] = v[..] else { bail!("unexpected sizes row {out:?}") };
        Ok(Sizes { actions, messages, database })
    }

    fn minus(&self, earlier: &Sizes) -> Sizes {
        Sizes {
            actions: self.actions - earlier.actions,
            messages: self.messages - earlier.messages,
            database: self.database - earlier.database,
        }
    }
}

/// CPU seconds of every server backend connected to `db`.
fn backend_cpu(pg: &Postgres, db: &str) -> Result<f64> {
    let pids = psql(pg, "postgres", &format!("SELECT pid FROM pg_stat_activity WHERE datname = '{db}'"))?;
    let mut ticks = 0;
    for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        ticks += cpu_ticks(pid).unwrap_or(0);
    }
    Ok(ticks as f64 / clock_ticks()? as f64)
}

/// CPU seconds of this process so far.
fn own_cpu() -> Result<f64> {
    Ok(cpu_ticks(std::process::id())? as f64 / clock_ticks()? as f64)
}

fn psql(pg: &Postgres, db: &str, sql: &str) -> Result<String> {
    tokio::task::block_in_place(|| pg.psql(db, sql))
}

/// The machine's 1, 5 and 15 minute load averages: other work shares these 2 cores.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
