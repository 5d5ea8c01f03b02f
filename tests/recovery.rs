//! Nothing lost, nothing twice: SIGKILL at random points during a burst, a Dovecot restart while
//! idling, and the whole corpus through the pipeline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, message, wait_for};
use crate::watch::{SORT_RULE, ids_in};

/// A small xorshift: kill points that differ per run, reproducible from the printed seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `TIDINGS_SEED`, else from the clock; the seed is printed, so that a failing
    /// schedule can be run again.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("TIDINGS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("{what} seed: {seed} (TIDINGS_SEED={seed} repeats it)");
        Rng(seed)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn burst_size() -> usize {
    if std::env::var("TIDINGS_LONG").is_ok() { 500 } else { 120 }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_burst_loses_nothing_and_repeats_nothing() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = Setup::new(env, &user, &[("sort.rhai", SORT_RULE)], "");
    let mut rng = Rng::from_env("kill schedule");
    let seed = rng.0;
    let total = burst_size();
    // Baseline first, so every message of the burst is new mail.
    setup.baseline().await;
    let deliver = {
        let user = user.clone();
        tokio::spawn(async move {
            let env = TestEnv::shared();
            for i in 0..total {
                let raw = message("burst@example.com", &user.address, &format!("sort-me burst {i}"), "x");
                env.deliver_lmtp(&user, &raw).await.unwrap();
                // Spread the burst over a few seconds, so that kills land in every phase:
                // fetching, evaluating, storing plans, moving.
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    let mut kills = 0;
    while !deliver.is_finished() {
        let daemon = Daemon::spawn(&setup.config, &["run"]);
        tokio::time::sleep(Duration::from_millis(60 + rng.below(400))).await;
        daemon.kill();
        kills += 1;
    }
    deliver.await.unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ids_in(env, &user, "Sorted").await.len() < total {
        if Instant::now() > deadline {
            let n = ids_in(env, &user, "Sorted").await.len();
            let (_, log) = daemon.stop();
            let store = tidings::store::Store::open(&setup.state()).await.unwrap();
            let open: Vec<String> = store
                .list_outbox(None, 10_000)
                .await
                .unwrap()
                .into_iter()
                .filter(|a| a.state != tidings::store::ActionState::Done)
                .map(|a| {
                    format!(
                        "{} {} uid {:?} {:?} attempts {} next {} error {:?}",
                        a.id, a.kind, a.uid, a.state, a.attempts, a.next_attempt_at, a.last_error
                    )
                })
                .collect();
            let checkpoint = store.checkpoint("t", "INBOX").await.unwrap();
            let inbox: Vec<u32> = env.list(&user, "INBOX").await.unwrap().iter().map(|m| m.uid).collect();
            panic!(
                "{n} of {total} sorted after 120 s (seed {seed})\ncheckpoint {checkpoint:?}\nINBOX uids {inbox:?}\nopen actions:\n{}\nlog tail:\n{}",
                open.join("\n"),
                &log[log.len().saturating_sub(6000)..]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the executor finish anything still pending, then stop cleanly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    eprintln!("{total} messages, {kills} SIGKILLs, caught up {:?} after the last restart", started.elapsed());

    let sorted = env.list(&user, "Sorted").await.unwrap();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &sorted {
        *per_id.entry(m.message_id.clone().unwrap()).or_default() += 1;
        assert!(m.flags.iter().any(|f| f == "sorted"), "keyword missing on {m:?}");
    }
    let repeated: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "messages moved more than once: {repeated:?}");
    assert_eq!(per_id.len(), total, "every message sorted exactly once");
    assert!(env.list(&user, "INBOX").await.unwrap().is_empty(), "nothing left behind");

    let store = tidings::store::Store::open(&setup.state()).await.unwrap();
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.done, 2 * total as u64, "one keyword store and one move per message: {counts:?}");
    assert_eq!((counts.pending, counts.in_flight, counts.failed, counts.uncertain), (0, 0, 0, 0), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dovecot_restart_while_idling_is_survived() {
    let mut env = TestEnv::start_own();
    let user = env.new_user();
    let setup = Setup::new(&env, &user, &[("sort.rhai", SORT_RULE)], "");
    let daemon = Daemon::start(&setup.config, 1);
    env.stop_dovecot();
    kill_orphaned_imap_processes();
    env.start_dovecot();
    let raw = message("a@example.com", &user.address, "sort-me after the restart", "x");
    env.deliver_lmtp(&user, &raw).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        format!("the message sorted after Dovecot restarted\n{}", daemon.log()),
        || async {
            let n = ids_in(&env, &user, "Sorted").await.len();
            if n == 1 { Ok(()) } else { Err(n) }
        },
    )
    .await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("reconnecting"), "the watcher should have noticed the restart:\n{log}");
}

/// Every corpus message APPENDed, then `run --once` with the shipped rules over all of it.
#[tokio::test(flavor = "multi_thread")]
async fn the_whole_corpus_goes_through_the_pipeline() {
    let Some(corpus) = crate::rules_examples::corpus_dir() else { return };
    let env = TestEnv::shared();
    let user = env.new_user();
    let files: Vec<_> =
        ["real", "malformed"].iter().flat_map(|d| crate::rules_examples::eml_files(&corpus.join(d))).collect();
    let started = Instant::now();
    let mut session = env.imap(&user).await.unwrap();
    let mut appended = 0;
    for file in &files {
        let raw = std::fs::read(file).unwrap();
        // Dovecot refuses a few broken messages (e.g. NUL bytes); those cannot reach a mailbox.
        if session.append("INBOX", None, None, &raw).await.is_ok() {
            appended += 1;
        }
    }
    session.logout().await.unwrap();
    eprintln!("appended {appended} of {} corpus messages in {:?}", files.len(), started.elapsed());
    assert!(appended > 3900, "only {appended} appended");
    let shipped = |name: &str| std::fs::read_to_string(format!("{}/rules/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let rules: Vec<(String, String)> = std::fs::read_dir(format!("{}/rules", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .map(|n| (n.clone(), shipped(&n)))
        .collect();
    let rules: Vec<(&str, &str)> = rules.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let setup = Setup::new(env, &user, &rules, "backfill: all");
    // The shipped rules read the shipped data files (rules/data/), beside them.
    std::fs::create_dir_all(setup.dir.path().join("rules/data")).unwrap();
    for entry in std::fs::read_dir(format!("{}/rules/data", env!("CARGO_MANIFEST_DIR"))).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, setup.dir.path().join("rules/data").join(path.file_name().unwrap())).unwrap();
    }
    let started = Instant::now();
    let (status, log) = Daemon::spawn(&setup.config, &["run", "--once"]).wait(Duration::from_secs(600));
    assert!(status.success(), "{}", &log[log.len().saturating_sub(5000)..]);
    eprintln!("run --once over {appended} messages took {:?}", started.elapsed());
    assert!(!log.contains("panicked"), "{log}");
    let store = tidings::store::Store::open(&setup.state()).await.unwrap();
    let checkpoint = store.checkpoint("t", "INBOX").await.unwrap().unwrap();
    let stored: Vec<&str> =
        log.lines().filter(|l| l.contains("plans stored") || l.contains("ERROR") || l.contains("WARN")).collect();
    assert_eq!(
        checkpoint.last_uid as usize,
        appended,
        "the watcher went through every message:\n{}",
        stored.join("\n")
    );
    assert!(store.recent_rule_failures(10).await.unwrap().is_empty(), "no rule failed on the corpus");
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.failed, counts.uncertain), (0, 0, 0), "{counts:?}");
    assert!(counts.done > 1000, "the shipped rules sort much of the corpus: {counts:?}");
    let lists = env.mailboxes(&user).await.unwrap();
    assert!(lists.iter().any(|m| m.name == "Lists/usrp-users"), "{lists:?}");
}

/// Dovecot's master may leave its client processes running when it stops (they then serve
/// their connections until those end); a real restart or crash takes them down. Kill the `imap`
/// processes whose master is gone, so the connection really drops. Processes of other test
/// environments still have a live `dovecot` parent and are left alone.
pub fn kill_orphaned_imap_processes() {
    let comm = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned();
    let parent = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).unwrap_or("0").to_owned()
    };
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit()) && comm(&pid) == "imap" && comm(&parent(&pid)) != "dovecot" {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}
