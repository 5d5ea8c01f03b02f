//! A fleet: three `tidings` processes sharing one PostgreSQL store and one Dovecot with 24
//! accounts, each message sorted (keyword, move) and announced by a webhook. In order:
//!
//! 1. start: the accounts spread 8/8/8 over the three instances;
//! 2. handover: one instance is SIGKILLed while mail arrives; its accounts are claimed by the
//!    other two once its leases expire (measured), and the mail delivered meanwhile is sorted;
//! 3. freeze: another instance is SIGSTOPped while its webhooks are in flight, for longer than
//!    its lease; the others take its accounts over and sort the mail delivered meanwhile; at
//!    SIGCONT its late writes (the webhooks' outcomes) are refused by the epoch check;
//! 4. rebalance: the killed instance is started again; the accounts spread 8/8/8 again;
//! 5. PostgreSQL restarts while mail arrives (down for about a quarter lease):
//!    the accounts whose store writes failed are started afresh and the mail is sorted.
//!
//! Then the accounting, over every message delivered: moved exactly once, nothing left in an
//! INBOX, one decided-message row and one move action each in the store, webhooks at least once
//! (duplicates counted: a webhook in flight at a kill or freeze is sent again by the new owner).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::harness::{Postgres, Receiver, TestEnv, User, message};

const ACCOUNTS: usize = 24;
const INSTANCES: usize = 3;
/// Short, so the test takes half a minute; `TIDINGS_LONG=1` runs it with the defaults (30 s / 10 s).
fn timings() -> (Duration, Duration) {
    match std::env::var("TIDINGS_LONG") {
        Ok(_) => (Duration::from_secs(30), Duration::from_secs(10)),
        Err(_) => (Duration::from_secs(4), Duration::from_secs(1)),
    }
}

const RULE: &str = r#"
if msg.subject.starts_with("fleet ") {
    label("sorted");
    move_to("Sorted");
    webhook("hook", #{ s: msg.subject });
}
"#;

/// The servers, the accounts and the shared config.
struct World {
    env: &'static TestEnv,
    pg: Postgres,
    users: Vec<User>,
    receiver: Receiver,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn name(i: usize) -> String {
    format!("a{i:02}")
}

impl World {
    fn new() -> World {
        let env = TestEnv::shared();
        let pg = Postgres::start().expect("start PostgreSQL");
        let users: Vec<User> = (0..ACCOUNTS).map(|_| env.new_user()).collect();
        let receiver = Receiver::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/sort.rhai"), RULE).unwrap();
        let mut yaml = format!(
            "state: \"{url}?sslmode=require&sslrootcert={ca}\"\nrules: rules\nplugins: {plugins}\n\
             fleet: {{ lease: {lease}s, heartbeat: {beat}s }}\n\
             webhooks:\n  hook:\n    url: {hook}\n    retry_delay: 300ms\naccounts:\n",
            url = pg.url("tidings"),
            ca = pg.ca_file.display(),
            plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins").display(),
            lease = timings().0.as_secs(),
            beat = timings().1.as_secs(),
            hook = receiver.url("/hook"),
        );
        for (i, user) in users.iter().enumerate() {
            let password = dir.path().join(format!("{}.password", name(i)));
            std::fs::write(&password, &user.password).unwrap();
            std::fs::set_permissions(&password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            yaml += &format!(
                "  {n}:\n    imap: {{ host: 127.0.0.1, port: {port}, tls: implicit }}\n    ca_file: {ca}\n    \
                 username: {login}\n    password_file: {pw}\n    from: {login}\n",
                n = name(i),
                port = env.imaps_port,
                ca = env.ca_file.display(),
                login = user.login,
                pw = password.display(),
            );
        }
        let config = dir.path().join("tidings.yaml");
        std::fs::write(&config, yaml).unwrap();
        World { env, pg, users, receiver, _dir: dir, config }
    }

    fn start(&self) -> Daemon {
        Daemon::spawn(&self.config, &["run"])
    }

    /// Live leases: account -> owner pid.
    fn holders(&self) -> BTreeMap<String, u32> {
        let rows = self
            .pg
            .psql("tidings", "SELECT account, owner FROM leases WHERE expires_at > now() ORDER BY account")
            .unwrap_or_default();
        rows.lines()
            .filter_map(|line| {
                let (account, owner) = line.split_once('|')?;
                Some((account.to_owned(), owner.split('/').nth(1)?.parse().ok()?))
            })
            .collect()
    }

    /// Accounts per live owner pid.
    fn spread(&self) -> BTreeMap<u32, usize> {
        let mut spread = BTreeMap::new();
        for pid in self.holders().into_values() {
            *spread.entry(pid).or_default() += 1;
        }
        spread
    }

    /// Waits until every account is held and `pids` hold 8 each; how long that took.
    fn wait_spread(&self, pids: &[u32], daemons: &[&Daemon], timeout: Duration) -> Duration {
        let start = Instant::now();
        let want: BTreeMap<u32, usize> = pids.iter().map(|p| (*p, ACCOUNTS / INSTANCES)).collect();
        loop {
            let spread = self.spread();
            if spread == want {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
                panic!("accounts not spread {want:?} within {timeout:?}: {spread:?}\n{}", logs.join("\n-----\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Delivers message `n` of `phase` to account `i`; returns its subject.
    async fn deliver(&self, phase: &str, i: usize, n: usize) -> String {
        let subject = format!("fleet {phase} {} {n}", name(i));
        let user = &self.users[i];
        let raw = message(&format!("{phase}-{n}@example.com"), &user.address, &subject, "x");
        self.env.deliver_lmtp(user, &raw).await.unwrap();
        subject
    }
}

fn signal(daemon: &Daemon, signal: &str) {
    let pid = daemon.pid().to_string();
    assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
}

/// The accounts `pid` holds.
fn held_by(holders: &BTreeMap<String, u32>, pid: u32) -> BTreeSet<String> {
    holders.iter().filter(|(_, p)| **p == pid).map(|(a, _)| a.clone()).collect()
}

/// Waits until none of `accounts` is held by `pid` and all are held by others; how long.
fn wait_taken_over(world: &World, accounts: &BTreeSet<String>, pid: u32, since: Instant, logs: &[&Daemon]) -> Duration {
    let (lease, _) = timings();
    loop {
        let holders = world.holders();
        if accounts.iter().all(|a| holders.get(a).is_some_and(|p| *p != pid)) {
            return since.elapsed();
        }
        if since.elapsed() > lease * 5 {
            let logs: Vec<String> = logs.iter().map(|d| d.log()).collect();
            panic!(
                "{accounts:?} not taken over from {pid} within {:?}: {holders:?}\n{}",
                lease * 5,
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where every delivered message ended up.
#[derive(Debug, Default)]
struct Accounting {
    delivered: usize,
    moved_once: usize,
    moved_twice: usize,
    not_moved: Vec<String>,
    left_in_inboxes: usize,
    decided_rows: usize,
    decided_twice: usize,
    move_actions: usize,
    open_actions: usize,
    hooks: usize,
    hook_duplicates: usize,
}

impl Accounting {
    async fn take(world: &World, subjects: &BTreeSet<String>) -> Accounting {
        let mut a = Accounting { delivered: subjects.len(), ..Accounting::default() };
        let mut moved: BTreeMap<String, usize> = BTreeMap::new();
        for user in &world.users {
            for listed in world.env.list(user, "Sorted").await.unwrap_or_default() {
                let subject = listed.subject.unwrap_or_default();
                if subjects.contains(&subject) {
                    *moved.entry(subject).or_default() += 1;
                }
            }
            a.left_in_inboxes += world.env.list(user, "INBOX").await.map(|l| l.len()).unwrap_or(usize::MAX);
        }
        a.moved_once = moved.values().filter(|n| **n == 1).count();
        a.moved_twice = moved.values().filter(|n| **n > 1).count();
        a.not_moved = subjects.iter().filter(|s| !moved.contains_key(*s)).take(5).cloned().collect();
        let one = |sql: &str| -> usize { world.pg.psql("tidings", sql).unwrap().trim().parse().unwrap() };
        a.decided_rows = one("SELECT count(*) FROM messages");
        a.decided_twice =
            one("SELECT count(*) FROM (SELECT message_id FROM messages GROUP BY message_id HAVING count(*) > 1) AS d");
        a.move_actions = one("SELECT count(*) FROM actions WHERE kind = 'move'");
        a.open_actions = one("SELECT count(*) FROM actions WHERE state NOT IN ('done', 'dropped', 'suppressed')");
        let mut hooks: BTreeMap<String, usize> = BTreeMap::new();
        for request in world.receiver.requests() {
            let subject = request.json()["message"]["subject"].as_str().unwrap_or_default().to_owned();
            if subjects.contains(&subject) {
                *hooks.entry(subject).or_default() += 1;
            }
        }
        a.hooks = hooks.len();
        a.hook_duplicates = hooks.values().map(|n| n - 1).sum();
        a
    }

    fn settled(&self) -> bool {
        self.moved_once + self.moved_twice == self.delivered
            && self.left_in_inboxes == 0
            && self.hooks == self.delivered
            && self.open_actions == 0
    }
}

/// Waits until every delivered message is sorted and announced, then returns the accounting.
async fn settle(world: &World, subjects: &BTreeSet<String>, daemons: &[&Daemon]) -> Accounting {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let accounting = Accounting::take(world, subjects).await;
        if accounting.settled() {
            return accounting;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
            panic!("not settled within 60 s: {accounting:?}\n{}", logs.join("\n-----\n"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_hands_over_a_dead_or_frozen_instance_s_accounts_exactly_once_and_rebalances() {
    let (lease, heartbeat) = timings();
    let mut world = tokio::task::spawn_blocking(World::new).await.unwrap();
    let mut subjects = BTreeSet::new();

    // 1. Three instances share the accounts.
    let (a, b, c) = (world.start(), world.start(), world.start());
    let spread = world.wait_spread(&[a.pid(), b.pid(), c.pid()], &[&a, &b, &c], lease * 8);
    eprintln!("fleet: 24 accounts spread 8/8/8 over 3 instances {spread:?} after the last start");
    // A mailbox's first watcher takes what is there as old (no backfill): deliver only once
    // every INBOX has its first checkpoint, or a claim racing the delivery would skip it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let baselined = world.pg.psql("tidings", "SELECT count(*) FROM checkpoints").unwrap_or_default();
        if baselined.trim() == ACCOUNTS.to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "{baselined} of {ACCOUNTS} INBOXes have a checkpoint:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..ACCOUNTS {
        subjects.insert(world.deliver("start", i, 0).await);
    }
    settle(&world, &subjects, &[&a, &b, &c]).await;

    // 2. Handover: kill `a` while mail arrives for every account.
    let a_accounts = held_by(&world.holders(), a.pid());
    let a_pid = a.pid();
    for i in 0..ACCOUNTS {
        subjects.insert(world.deliver("handover", i, 0).await);
    }
    for i in 0..ACCOUNTS / 2 {
        subjects.insert(world.deliver("handover", i, 1).await);
    }
    let killed = Instant::now();
    a.kill();
    // Mail keeps arriving while the leases run out.
    for i in ACCOUNTS / 2..ACCOUNTS {
        subjects.insert(world.deliver("handover", i, 1).await);
    }
    for i in 0..ACCOUNTS {
        subjects.insert(world.deliver("handover", i, 2).await);
    }
    let handover_time = wait_taken_over(&world, &a_accounts, a_pid, killed, &[&b, &c]);
    eprintln!(
        "fleet: SIGKILL -> all {} accounts of the killed instance claimed by others: {handover_time:?} (lease {lease:?}, heartbeat {heartbeat:?})",
        a_accounts.len()
    );
    // The lease was last renewed up to a heartbeat before the kill.
    let earliest = lease - heartbeat - Duration::from_millis(500);
    assert!(handover_time >= earliest, "taken over before the lease ran out: {handover_time:?}");
    assert!(
        handover_time <= lease + heartbeat * 4,
        "handover took {handover_time:?}, more than the lease and a few heartbeats"
    );
    let after_kill = settle(&world, &subjects, &[&b, &c]).await;
    eprintln!("fleet: after the kill: {after_kill:?}");

    // 3. Freeze `b` while its webhooks are in flight (the receiver answers after 3 s).
    let holders = world.holders();
    let b_accounts = held_by(&holders, b.pid());
    world.receiver.set_delay(Duration::from_secs(3));
    let before = world.receiver.arrived();
    let mut frozen_subjects = Vec::new();
    for account in &b_accounts {
        let i: usize = account[1..].parse().unwrap();
        let subject = world.deliver("freeze-inflight", i, 0).await;
        frozen_subjects.push(subject.clone());
        subjects.insert(subject);
    }
    // Wait until `b` has sent those webhooks (and waits for the answers), then freeze it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.receiver.arrived() < before + b_accounts.len() {
        assert!(Instant::now() < deadline, "b's webhooks did not arrive:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&b, "-STOP");
    let frozen = Instant::now();
    world.receiver.set_delay(Duration::ZERO);
    let freeze_time = wait_taken_over(&world, &b_accounts, b.pid(), frozen, &[&c]);
    eprintln!(
        "fleet: SIGSTOP -> all {} accounts of the frozen instance claimed by the other: {freeze_time:?}",
        b_accounts.len()
    );
    for (n, account) in b_accounts.iter().enumerate() {
        let i: usize = account[1..].parse().unwrap();
        subjects.insert(world.deliver("frozen", i, n).await);
    }
    let after_freeze = settle(&world, &subjects, &[&c]).await;
    signal(&b, "-CONT");
    // At SIGCONT its webhook answers arrive and it records their outcomes: refused.
    b.wait_log_count("lease was taken over by another instance", b_accounts.len(), Duration::from_secs(20));
    std::thread::sleep(heartbeat * 2);
    let b_log = b.log();
    let refused: Vec<&str> =
        b_log.lines().filter(|l| l.contains("is stale") || l.contains("holds no lease on it")).collect();
    for line in refused.iter().take(4) {
        eprintln!("fleet: refused: {line}");
    }
    let refused = refused.len();
    let lost = b_log.matches("lease was taken over by another instance").count();
    eprintln!(
        "fleet: after the freeze: {after_freeze:?}; the frozen instance logged {refused} refused late writes and gave up {lost} accounts"
    );
    assert!(refused >= 1, "no late write of the frozen instance was refused:\n{b_log}");
    assert_eq!(lost, b_accounts.len(), "the frozen instance did not stop every account it lost:\n{b_log}");

    // 4. Restart the killed one: 8/8/8 again.
    let a2 = world.start();
    let rebalance = world.wait_spread(&[a2.pid(), b.pid(), c.pid()], &[&a2, &b, &c], lease * 8);
    eprintln!("fleet: a restarted instance took its share: 8/8/8 after {rebalance:?}");
    for i in 0..ACCOUNTS {
        subjects.insert(world.deliver("rebalanced", i, 0).await);
    }
    settle(&world, &subjects, &[&a2, &b, &c]).await;

    // 5. PostgreSQL restarts under the fleet (an outage shorter than a lease): the accounts
    // whose writes failed meanwhile are started afresh, and the mail is sorted once.
    let down = Instant::now();
    world.pg.stop();
    for i in 0..ACCOUNTS {
        subjects.insert(world.deliver("outage", i, 0).await);
    }
    std::thread::sleep((lease / 4).saturating_sub(down.elapsed()));
    world.pg.restart().expect("restart PostgreSQL");
    eprintln!("fleet: PostgreSQL down for {:?}", down.elapsed());
    let end = settle(&world, &subjects, &[&a2, &b, &c]).await;
    let restarted: usize = [&a2, &b, &c].iter().map(|d| d.log().matches("started afresh").count()).sum();
    eprintln!("fleet: end: {end:?}; accounts started afresh after the outage: {restarted}");

    // Exactly once, over everything delivered.
    assert_eq!(end.moved_once, end.delivered, "{end:?}");
    assert_eq!((end.moved_twice, end.left_in_inboxes), (0, 0), "{end:?}");
    assert_eq!((end.decided_rows, end.decided_twice), (end.delivered, 0), "{end:?}");
    assert_eq!(end.move_actions, end.delivered, "{end:?}");
    assert_eq!(end.hooks, end.delivered, "{end:?}");
    // Only webhooks in flight at the kill or the freeze may have gone out twice.
    assert!(end.hook_duplicates <= a_accounts.len() + frozen_subjects.len(), "{end:?}");

    // `tidings status` on the shared store: the three instances, 8 accounts each, every account's
    // watcher as its holder reported it.
    // Asked until healthy: the accounts started afresh after the outage report "idle" again
    // within moments of the mail being sorted, not at the same instant.
    let mut pids: Vec<u64> = [a2.pid(), b.pid(), c.pid()].into_iter().map(u64::from).collect();
    pids.sort();
    let deadline = Instant::now() + lease * 4;
    let (status, report) = loop {
        let status = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["status", "--json", "--config"])
            .arg(&world.config)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json prints JSON");
        if (status.status.success() && report["healthy"] == true) || Instant::now() > deadline {
            break (status, report);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let instances = report["fleet"]["instances"].as_array().expect("a fleet section");
    let live: Vec<(u64, usize)> = instances
        .iter()
        .filter(|i| i["alive"] == true)
        .map(|i| (i["pid"].as_u64().unwrap(), i["accounts"].as_array().unwrap().len()))
        .collect();
    assert!(status.status.success() && report["healthy"] == true, "{report}");
    assert_eq!(live.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>(), pids.into_iter().collect(), "{report}");
    assert!(live.iter().all(|(_, n)| *n == ACCOUNTS / INSTANCES), "{report}");
    assert_eq!(report["mailboxes"].as_array().unwrap().len(), ACCOUNTS, "{report}");

    for daemon in [a2, b, c] {
        let (status, log) = daemon.stop();
        assert!(status.success(), "{log}");
    }
    let left = world.pg.psql("tidings", "SELECT count(*) FROM leases WHERE expires_at > now()").unwrap();
    assert_eq!(left.trim(), "0", "leases still held after every instance stopped");
}
