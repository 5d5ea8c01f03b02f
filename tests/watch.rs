//! The live pipeline end to end against the harness Dovecot: mail delivered while tidings idles
//! is sorted by a rule; mail that arrived while it was stopped is processed once on the next
//! start; a recreated mailbox (new UIDVALIDITY) is not replayed; non-ASCII folders work.

use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, User, message, wait_for};

/// Moves mail whose subject starts with "sort-me" to Sorted, with a keyword; bank notices go to
/// a non-ASCII folder.
pub const SORT_RULE: &str = r#"
if msg.subject.starts_with("sort-me") {
    label("sorted");
    move_to("Sorted");
}
if msg.subject.starts_with("bank") {
    move_to("Überweisungen/2026");
}
"#;

/// Message-IDs in a mailbox (server name), or an empty list when it does not exist yet.
pub async fn ids_in(env: &TestEnv, user: &User, mailbox: &str) -> Vec<String> {
    match env.list(user, mailbox).await {
        Ok(listed) => listed.into_iter().filter_map(|l| l.message_id).collect(),
        Err(_) => Vec::new(),
    }
}

fn id_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let start = text.find("Message-ID: <").unwrap() + "Message-ID: <".len();
    text[start..start + text[start..].find('>').unwrap()].to_owned()
}

/// How many messages the latency test sends: 50 measure it properly; CI runs a short form.
fn latency_samples() -> usize {
    if std::env::var("TIDINGS_LONG").is_ok() { 50 } else { 10 }
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_delivered_while_idling_is_moved_and_the_latency_is_reported() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = Setup::new(env, &user, &[("sort.rhai", SORT_RULE)], "");
    let daemon = Daemon::start(&setup.config, 1);
    let mut latencies = Vec::new();
    for i in 0..latency_samples() {
        let raw = message("a@example.com", &user.address, &format!("sort-me {i}"), "hello");
        let id = id_of(&raw);
        let sent = Instant::now();
        env.deliver_lmtp(&user, &raw).await.unwrap();
        wait_for(
            Duration::from_secs(15),
            env.with_logs(format!("message {i} moved to Sorted\n{}", daemon.log())),
            || async {
                let ids = ids_in(env, &user, "Sorted").await;
                if ids.contains(&id) { Ok(()) } else { Err(format!("Sorted holds {} messages", ids.len())) }
            },
        )
        .await;
        latencies.push(sent.elapsed());
    }
    let raw = message("bank@example.com", &user.address, "bank transfer", "done");
    env.deliver_lmtp(&user, &raw).await.unwrap();
    let folder = tidings::imap::mutf7::encode("Überweisungen/2026");
    assert_eq!(folder, "&ANw-berweisungen/2026");
    wait_for(Duration::from_secs(15), "the bank notice in Überweisungen/2026", || async {
        let ids = ids_in(env, &user, &folder).await;
        if ids.contains(&id_of(&raw)) { Ok(()) } else { Err(format!("{ids:?}")) }
    })
    .await;
    let sorted = env.list(&user, "Sorted").await.unwrap();
    assert_eq!(sorted.len(), latencies.len());
    assert!(sorted.iter().all(|m| m.flags.iter().any(|f| f == "sorted")), "{sorted:#?}");
    assert!(sorted.iter().all(|m| !m.flags.iter().any(|f| f == "\\Seen")), "rules must never mark mail read");
    assert!(env.list(&user, "INBOX").await.unwrap().is_empty());
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    eprintln!("delivery-to-move latency over {} messages: median {median:?}, max {max:?}", latencies.len());
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    // The executor kept its connection from the first message to the last: one login for
    // all of them (its lines carry the account's span only, the watcher's the mailbox's too).
    let executor_logins = log.lines().filter(|l| l.contains("logged in") && !l.contains("mailbox{")).count();
    assert_eq!(executor_logins, 1, "the executor logged in again between pushed messages:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_that_arrived_while_stopped_is_processed_once_on_the_next_start() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let before = message("a@example.com", &user.address, "sort-me before the first start", "x");
    env.deliver_lmtp(&user, &before).await.unwrap();
    let setup = Setup::new(env, &user, &[("sort.rhai", SORT_RULE)], "");
    // First start: baseline at the newest message; mail already there is not touched.
    let (status, log) = Daemon::start(&setup.config, 1).stop();
    assert!(status.success(), "{log}");
    let mut ids = Vec::new();
    for i in 0..5 {
        let raw = message("a@example.com", &user.address, &format!("sort-me while stopped {i}"), "x");
        ids.push(id_of(&raw));
        env.deliver_lmtp(&user, &raw).await.unwrap();
    }
    let daemon = Daemon::start(&setup.config, 1);
    wait_for(Duration::from_secs(15), "five messages in Sorted", || async {
        let got = ids_in(env, &user, "Sorted").await;
        if got.len() >= 5 { Ok(got) } else { Err(format!("{} so far", got.len())) }
    })
    .await;
    // A restart must not process anything again.
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let (status, log) = Daemon::start(&setup.config, 1).stop();
    assert!(status.success(), "{log}");
    let mut sorted = ids_in(env, &user, "Sorted").await;
    sorted.sort();
    ids.sort();
    assert_eq!(sorted, ids, "exactly the five, once each");
    assert_eq!(ids_in(env, &user, "INBOX").await, vec![id_of(&before)], "mail from before the first start stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_mailbox_is_rebaselined_not_replayed() {
    let env = TestEnv::shared();
    let user = env.new_user();
    {
        let mut session = env.imap(&user).await.unwrap();
        session.create("Watched").await.unwrap();
        session.logout().await.unwrap();
    }
    let setup = Setup::new(env, &user, &[("sort.rhai", SORT_RULE)], "mailboxes: [Watched]");
    let daemon = Daemon::start(&setup.config, 1);
    for i in 0..2 {
        let raw = message("a@example.com", &user.address, &format!("sort-me first life {i}"), "x");
        env.append(&user, "Watched", &raw, &[], None).await.unwrap();
    }
    wait_for(Duration::from_secs(15), "two messages sorted", || async {
        let n = ids_in(env, &user, "Sorted").await.len();
        if n == 2 { Ok(()) } else { Err(n) }
    })
    .await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    {
        let mut session = env.imap(&user).await.unwrap();
        session.delete("Watched").await.unwrap();
        session.create("Watched").await.unwrap();
        session.logout().await.unwrap();
    }
    for i in 0..3 {
        let raw = message("a@example.com", &user.address, &format!("sort-me old mail {i}"), "x");
        env.append(&user, "Watched", &raw, &[], None).await.unwrap();
    }
    let daemon = Daemon::start(&setup.config, 1);
    // Logged right after "watching", when the watcher compares the checkpoint.
    daemon.wait_log_count("UIDVALIDITY changed", 1, Duration::from_secs(10));
    let fresh = message("a@example.com", &user.address, "sort-me after the reset", "x");
    env.append(&user, "Watched", &fresh, &[], None).await.unwrap();
    wait_for(Duration::from_secs(15), "the new message sorted", || async {
        let ids = ids_in(env, &user, "Sorted").await;
        if ids.contains(&id_of(&fresh)) { Ok(()) } else { Err(ids.len()) }
    })
    .await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_eq!(ids_in(env, &user, "Watched").await.len(), 3, "old mail in the recreated mailbox is not replayed");
    assert_eq!(ids_in(env, &user, "Sorted").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn once_processes_backfill_and_exits_and_fails_fast_on_a_bad_password() {
    let env = TestEnv::shared();
    let user = env.new_user();
    for i in 0..4 {
        let raw = message("a@example.com", &user.address, &format!("sort-me backlog {i}"), "x");
        env.deliver_lmtp(&user, &raw).await.unwrap();
    }
    let setup = Setup::new(env, &user, &[("sort.rhai", SORT_RULE)], "backfill: all");
    let (status, log) = Daemon::spawn(&setup.config, &["run", "--once"]).wait(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert_eq!(ids_in(env, &user, "Sorted").await.len(), 4, "{log}");
    assert!(ids_in(env, &user, "INBOX").await.is_empty());

    std::fs::write(setup.dir.path().join("password"), "wrong").unwrap();
    let started = Instant::now();
    let (status, log) = Daemon::spawn(&setup.config, &["run", "--once"]).wait(Duration::from_secs(30));
    assert!(!status.success(), "a bad password must fail --once:\n{log}");
    assert!(log.contains("cannot"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "--once must not retry a login failure: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_that_cannot_log_in_does_not_stop_the_others() {
    let env = TestEnv::shared();
    let (good, bad) = (env.new_user(), env.new_user());
    let extra = format!(
        "\nbroken:\n  imap: {{ host: 127.0.0.1, port: {}, tls: implicit }}\n  ca_file: {}\n  username: {}\n  password_command: \"echo wrong\"",
        env.imaps_port,
        env.ca_file.display(),
        bad.login
    );
    // `account_extra` is indented under account `t`; the second account must sit beside it.
    let setup = Setup::new(env, &good, &[("sort.rhai", SORT_RULE)], "");
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let indented: String = extra.lines().map(|l| format!("  {l}\n")).collect();
    let config = config + indented.as_str();
    std::fs::write(&setup.config, config).unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    let raw = message("a@example.com", &good.address, "sort-me despite the broken account", "x");
    env.deliver_lmtp(&good, &raw).await.unwrap();
    wait_for(Duration::from_secs(15), "the good account's message sorted", || async {
        let ids = ids_in(env, &good, "Sorted").await;
        if ids.contains(&id_of(&raw)) { Ok(()) } else { Err(ids.len()) }
    })
    .await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("account=\"broken\"") && log.contains("cannot log in"),
        "the failing account is reported:\n{log}"
    );
}
