//! Real providers' setup and many mailboxes: `tidings check` accepts every provider preset with
//! only a username and a secret; `mailboxes: all` on Dovecot watches the subscribed mailboxes
//! (not the unsubscribed or special-use ones) and never holds more IMAP connections than the
//! account's `connections:` budget, polling what does not fit.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, message, wait_for};
use crate::watch::ids_in;

const PROVIDERS: &[(&str, &str)] = &[
    ("gmail", "imap.gmail.com:993"),
    ("outlook", "outlook.office365.com:993"),
    ("fastmail", "imap.fastmail.com:993"),
    ("mailcom", "imap.mail.com:993"),
    ("gmx", "imap.gmx.net:993"),
    ("yahoo", "imap.mail.yahoo.com:993"),
    ("icloud", "imap.mail.me.com:993"),
];

#[test]
fn check_accepts_every_preset_with_only_a_username_and_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let mut yaml = "rules: { dir: rules, allow_empty: true }\naccounts:\n".to_owned();
    for (provider, _) in PROVIDERS {
        yaml += &format!(
            "  {provider}:\n    provider: {provider}\n    username: me@{provider}.example\n    password_env: TIDINGS_PRESET_SECRET\n"
        );
    }
    let path = dir.path().join("tidings.yaml");
    std::fs::write(&path, yaml).unwrap();
    let run = |secret: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
        command.env_remove("TIDINGS_CONFIG").env_remove("RUST_LOG").arg("check").arg("--config").arg(&path);
        match secret {
            Some(secret) => command.env("TIDINGS_PRESET_SECRET", secret),
            None => command.env_remove("TIDINGS_PRESET_SECRET"),
        };
        command.output().unwrap()
    };
    let out = run(Some("an app password"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok (7 accounts"), "{stdout}");
    assert!(
        stdout.contains("account `gmail`: 1 mailbox: 1 with IDLE (2 of 15 connections)"),
        "check says how each account's mailboxes are watched:\n{stdout}"
    );
    assert!(!stdout.contains("an app password"), "a secret on stdout:\n{stdout}");
    // The secret is really read: without it, the same config is refused.
    let out = run(None);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TIDINGS_PRESET_SECRET"));
}

/// The daemon's established TCP connections to `port` on 127.0.0.1, read from /proc (its
/// socket inodes, matched in /proc/net/tcp), so no tool needs installing.
fn connections(pid: u32, port: u16) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // rem_address is fields[2], st fields[3] (01 = ESTABLISHED), inode fields[9].
            fields.len() > 9
                && fields[2].ends_with(&remote)
                && fields[3] == "01"
                && inodes.iter().any(|i| i == fields[9])
        })
        .count()
}

const SORT: &str = r#"
if msg.subject.starts_with("sort-me") {
    move_to("Sorted");
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn mailboxes_all_watches_the_subscribed_ones_within_the_budget_and_polls_the_rest() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut session = env.imap(&user).await.unwrap();
    for name in ["Lists/a", "Lists/b", "Lists/c", "Quiet", "Sorted"] {
        session.create(name).await.unwrap();
    }
    // Sent, Drafts, Trash, Junk and Archive are subscribed by the harness Dovecot (special-use:
    // not watched); Quiet and Sorted are not subscribed.
    for name in ["INBOX", "Lists/a", "Lists/b", "Lists/c"] {
        session.subscribe(name).await.unwrap();
    }
    session.logout().await.unwrap();
    // 3 connections: the executor, one IDLE watcher, one poller for the other three.
    let setup = Setup::new(env, &user, &[("sort.rhai", SORT)], "mailboxes: all\nconnections: 3\npoll_interval: 1s\n");
    let daemon = Daemon::spawn(&setup.config, &["run"]);
    daemon.wait_log_count("first start in this mailbox", 4, Duration::from_secs(20));
    daemon.wait_log_count("watching", 1, Duration::from_secs(5));
    let log = daemon.log();
    assert!(log.contains("watch plan: 4 mailboxes: 1 with IDLE, 3 polled every 1s: "), "{log}");
    assert!(log.contains("(3 of 3 connections)"), "{log}");
    let plan = log.lines().find(|l| l.contains("watch plan:")).unwrap();
    for skipped in ["Sent", "Trash", "Archive", "Quiet", "Sorted"] {
        assert!(!plan.contains(&format!(" {skipped}")) && !plan.contains(&format!("{skipped},")), "{plan}");
    }

    let (stop, most) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let sampler = {
        let (stop, most, pid, port) = (stop.clone(), most.clone(), daemon.pid(), env.imaps_port);
        std::thread::spawn(move || {
            // When the most was first seen, to read the daemon's log against if it is too many.
            let mut at = None;
            while !stop.load(Ordering::Relaxed) {
                let now = connections(pid, port);
                if now > most.fetch_max(now, Ordering::Relaxed) {
                    at = Some(chrono::Utc::now());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            at
        })
    };
    let mut expected = Vec::new();
    for mailbox in ["INBOX", "Lists/a", "Lists/b", "Lists/c", "Quiet"] {
        let raw = message("list@example.com", &user.address, &format!("sort-me from {mailbox}"), "hi");
        env.append(&user, mailbox, &raw, &[], None).await.unwrap();
        if mailbox != "Quiet" {
            expected.push(mailbox);
        }
    }
    wait_for(Duration::from_secs(20), env.with_logs(format!("4 messages in Sorted\n{}", daemon.log())), || async {
        let sorted = env.list(&user, "Sorted").await.map_err(|e| e.to_string())?;
        if sorted.len() == expected.len() { Ok(()) } else { Err(format!("Sorted holds {}", sorted.len())) }
    })
    .await;
    // Two more polls: the unsubscribed mailbox is still not looked at.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let most_at = sampler.join().unwrap();
    assert_eq!(ids_in(env, &user, "Quiet").await.len(), 1, "an unsubscribed mailbox is not watched");
    assert_eq!(env.list(&user, "Sorted").await.unwrap().len(), 4);
    let most = most.load(Ordering::Relaxed);
    assert!(
        (2..=3).contains(&most),
        "at most 3 IMAP connections at once, saw {most} (first at {most_at:?}); the daemon's log:\n{}",
        daemon.log()
    );
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
