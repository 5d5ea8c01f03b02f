//! The pipeline's core against both real servers, Dovecot 2.3 and Cyrus IMAP 3.6, started by
//! the harness the same way: each test is written once for a [`Server`] and run on each. Login
//! over implicit TLS, STARTTLS and plaintext; a fetch after a checkpoint; IDLE waking on a
//! delivery (the latency is printed per server); move, copy, flag and delete; the fallbacks
//! without MOVE and UIDPLUS; the ID command; and the daemon sorting delivered mail.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::TryStreamExt;
use tidings::auth::Credentials;
use tidings::config::{Config, Secret, Server as Endpoint, Tls};
use tidings::imap::{FlagOp, IdleOutcome, Login, Session, Timeouts, UidSet};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Server, TestEnv, User, message, wait_for};
use crate::watch::{SORT_RULE, ids_in};

const NO_LIMIT: u64 = u64::MAX;

/// Runs the async test `$body(Server)` as one test per server.
macro_rules! on_both {
    ($body:ident: $dovecot:ident, $cyrus:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $dovecot() -> Result<()> {
            $body(Server::Dovecot).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn $cyrus() -> Result<()> {
            $body(Server::Cyrus).await
        }
    };
}

/// The login for `user` at `host:port` with `tls`, made the way the daemon makes it: from an
/// account in a config file (so it follows whatever fields `Login` has).
fn login(env: &TestEnv, user: &User, host: &str, port: u16, tls: Tls) -> Login {
    let setup = Setup::new(env, user, &[], "");
    let config = Config::load(&setup.config).expect("the test config loads");
    let mut login =
        Login::new(&config.accounts[0], &Credentials::new(&config.accounts[0], Secret::new(user.password.clone())));
    login.account = "test".into();
    login.server = Endpoint { host: host.into(), port, tls, tls_fingerprint: None };
    login
}

/// A session over implicit TLS with INBOX selected.
async fn inbox(env: &TestEnv, user: &User) -> Result<Session> {
    let mut session =
        Session::connect(&login(env, user, "127.0.0.1", env.imaps_port, Tls::Implicit), Timeouts::default()).await?;
    session.select("INBOX").await?;
    Ok(session)
}

async fn append(env: &TestEnv, user: &User, mailbox: &str, subject: &str, flags: &[&str]) -> Result<u32> {
    env.append(user, mailbox, &message("a@example.org", &user.address, subject, "body"), flags, None).await
}

async fn subjects(env: &TestEnv, user: &User, mailbox: &str) -> Result<Vec<String>> {
    Ok(env.list(user, mailbox).await?.into_iter().filter_map(|m| m.subject).collect())
}

on_both!(logins_read_capabilities: logins_read_capabilities_on_dovecot, logins_read_capabilities_on_cyrus);
async fn logins_read_capabilities(server: Server) -> Result<()> {
    let env = TestEnv::shared_of(server);
    let user = env.new_user();
    for (host, port, tls) in [
        ("127.0.0.1", env.imaps_port, Tls::Implicit),
        ("localhost", env.imap_port, Tls::StartTls),
        ("127.0.0.1", env.imap_port, Tls::None),
    ] {
        let mut session = Session::connect(&login(env, &user, host, port, tls), Timeouts::default()).await?;
        let caps = session.capabilities();
        assert!(caps.idle && caps.move_ && caps.uidplus && caps.special_use, "{server} over {tls:?}: {caps:?}");
        assert!(!caps.gmail, "{server} is not Gmail");
        assert_eq!(session.server_name("Überweisungen/2026"), "&ANw-berweisungen/2026", "{server}");
        assert_eq!(session.select("INBOX").await?.exists, 0);
        let trash = session.special_use("\\Trash").await?;
        assert_eq!(trash.as_deref(), Some("Trash"), "{server}: special-use found whatever its case");
        session.logout().await?;
    }
    let mut wrong = login(env, &user, "127.0.0.1", env.imaps_port, Tls::Implicit);
    wrong.password = Secret::new("wrong".into());
    let err = Session::connect(&wrong, Timeouts::default()).await.expect_err("a wrong password");
    assert!(err.is_auth(), "{server}: {err:?}");
    Ok(())
}

on_both!(fetch_after_a_checkpoint: fetch_after_a_checkpoint_on_dovecot, fetch_after_a_checkpoint_on_cyrus);
async fn fetch_after_a_checkpoint(server: Server) -> Result<()> {
    let env = TestEnv::shared_of(server);
    let user = env.new_user();
    let first = append(env, &user, "INBOX", "first", &[]).await?;
    let raw = message("b@example.org", &user.address, "second", "hello\r\nworld");
    let second = env.append(&user, "INBOX", &raw, &["$Label1", "\\Flagged"], None).await?;
    let third = append(env, &user, "INBOX", "third", &["\\Seen"]).await?;
    let mut session = inbox(env, &user).await?;
    let fetched = session.fetch_after(first, NO_LIMIT).await?;
    assert_eq!(
        fetched.iter().map(|f| f.uid).collect::<Vec<_>>(),
        [second, third],
        "{server}: after {first}: {:#?}",
        fetched.iter().map(|f| String::from_utf8_lossy(&f.raw).into_owned()).collect::<Vec<_>>()
    );
    assert_eq!(fetched[0].raw, raw, "{server}: the raw message, byte for byte");
    assert!(fetched[0].flags.iter().any(|f| f == "$Label1"), "{server}: {:?}", fetched[0].flags);
    assert!(session.fetch_after(third, NO_LIMIT).await?.is_empty(), "{server}: `third+1:*` must not return third");
    for listed in env.list(&user, "INBOX").await? {
        assert_eq!(listed.has_flag("\\Seen"), listed.uid == third, "{server}: fetching never sets \\Seen: {listed:?}");
    }
    Ok(())
}

on_both!(idle_wakes_on_delivery: idle_wakes_on_delivery_on_dovecot, idle_wakes_on_delivery_on_cyrus);
async fn idle_wakes_on_delivery(server: Server) -> Result<()> {
    let env = TestEnv::shared_of(server);
    let user = env.new_user();
    let mut session = inbox(env, &user).await?;
    let mut latencies = Vec::new();
    for i in 0..5 {
        let delivered_at = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            env.deliver_lmtp(&user, &message("a@example.org", &user.address, &format!("pushed {i}"), "")).await?;
            anyhow::Ok(Instant::now())
        };
        let woke = async {
            let outcome = session.idle(Duration::from_secs(20), std::future::pending::<()>()).await;
            (outcome, Instant::now())
        };
        let ((outcome, woke_at), delivered_at) = tokio::join!(woke, delivered_at);
        assert_eq!(outcome?, IdleOutcome::Changed, "{server}");
        // The LMTP answer comes once the message is stored; IDLE may see it a hair before.
        latencies.push(woke_at.saturating_duration_since(delivered_at?));
        assert_eq!(session.fetch_after(0, NO_LIMIT).await?.len(), i + 1, "{server}");
    }
    latencies.sort();
    let (median, max) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    println!(
        "{server}: IDLE wake-up after an LMTP delivery over {} deliveries: median {median:?}, max {max:?}",
        latencies.len()
    );
    assert!(max < Duration::from_secs(5), "{server}: IDLE woke after {max:?}");
    Ok(())
}

on_both!(move_copy_flag_delete: move_copy_flag_delete_on_dovecot, move_copy_flag_delete_on_cyrus);
async fn move_copy_flag_delete(server: Server) -> Result<()> {
    let env = TestEnv::shared_of(server);
    let user = env.new_user();
    let mut uid = Vec::new();
    for subject in ["flag me", "copy me", "move me", "move me too", "delete me"] {
        uid.push(append(env, &user, "INBOX", subject, &[]).await?);
    }
    let mut session = inbox(env, &user).await?;
    session.uid_store(&UidSet::new([uid[0]]), FlagOp::Add, &["\\Flagged", "$Label1", "\\Seen"]).await?;
    session.uid_store(&UidSet::new([uid[0]]), FlagOp::Remove, &["\\Seen"]).await?;
    session.uid_copy(&UidSet::new([uid[1]]), "Archive").await?;
    let trash = session.special_use("\\Trash").await?.expect("a \\Trash folder");
    session.uid_move(&UidSet::new([uid[2]]), &trash).await?;
    // Without MOVE: COPY, STORE \Deleted, UID EXPUNGE.
    session.capabilities_mut().move_ = false;
    session.uid_move(&UidSet::new([uid[3]]), "Junk").await?;
    session.uid_delete(&UidSet::new([uid[4]])).await?;

    let inbox_now = env.list(&user, "INBOX").await?;
    let left: Vec<_> = inbox_now.iter().filter_map(|l| l.subject.clone()).collect();
    assert_eq!(left, ["flag me", "copy me"], "{server}: moved and deleted ones are gone, nothing else");
    let flagged = &inbox_now[0];
    assert!(flagged.has_flag("\\Flagged") && flagged.has_flag("$Label1") && !flagged.has_flag("\\Seen"), "{flagged:?}");
    assert_eq!(subjects(env, &user, "Archive").await?, ["copy me"], "{server}");
    assert_eq!(subjects(env, &user, "Trash").await?, ["move me"], "{server}");
    assert_eq!(subjects(env, &user, "Junk").await?, ["move me too"], "{server}");
    Ok(())
}

on_both!(
    without_uidplus_others_deleted_mail_survives:
    without_uidplus_others_deleted_mail_survives_on_dovecot,
    without_uidplus_others_deleted_mail_survives_on_cyrus
);
async fn without_uidplus_others_deleted_mail_survives(server: Server) -> Result<()> {
    let env = TestEnv::shared_of(server);
    let user = env.new_user();
    let theirs = append(env, &user, "INBOX", "flagged by another client", &["\\Deleted"]).await?;
    let mut uid = Vec::new();
    for subject in ["move me", "delete me", "move me later", "delete me later"] {
        uid.push(append(env, &user, "INBOX", subject, &[]).await?);
    }
    let mut session = inbox(env, &user).await?;
    let caps = session.capabilities_mut();
    caps.move_ = false;
    caps.uidplus = false;
    // Another message is \Deleted: ours are copied and flagged, nothing is expunged.
    session.uid_move(&UidSet::new([uid[0]]), "Archive").await?;
    session.uid_delete(&UidSet::new([uid[1]])).await?;
    let listed = env.list(&user, "INBOX").await?;
    assert_eq!(listed.len(), 5, "{server}: nothing expunged: {listed:#?}");
    for l in &listed {
        let expect = [theirs, uid[0], uid[1]].contains(&l.uid);
        assert_eq!(l.has_flag("\\Deleted"), expect, "{server}: {l:?}");
    }
    assert_eq!(subjects(env, &user, "Archive").await?, ["move me"], "{server}");

    // The other client undeletes its message and expunges ours itself: now ours are the only
    // \Deleted ones and the fallback expunges.
    let mut other = env.imap(&user).await?;
    other.select("INBOX").await?;
    other.uid_store(theirs.to_string(), "-FLAGS.SILENT (\\Deleted)").await?.try_collect::<Vec<_>>().await?;
    other.expunge().await?.try_collect::<Vec<_>>().await?;
    other.logout().await?;
    session.select("INBOX").await?;
    session.capabilities_mut().uidplus = false;
    session.capabilities_mut().move_ = false;
    session.uid_move(&UidSet::new([uid[2]]), "Archive").await?;
    session.uid_delete(&UidSet::new([uid[3]])).await?;
    let left: Vec<_> = env.list(&user, "INBOX").await?.into_iter().filter_map(|l| l.subject).collect();
    assert_eq!(left, ["flagged by another client"], "{server}");
    assert_eq!(subjects(env, &user, "Archive").await?, ["move me", "move me later"], "{server}");
    Ok(())
}

on_both!(the_id_command_is_sent_on_request: the_id_command_on_dovecot, the_id_command_on_cyrus);
async fn the_id_command_is_sent_on_request(server: Server) -> Result<()> {
    let env = TestEnv::shared_of(server);
    let user = env.new_user();
    let login = login(env, &user, "127.0.0.1", env.imaps_port, Tls::Implicit);
    let timeouts = Timeouts { send_id: true, ..Timeouts::default() };
    let mut session = Session::connect(&login, timeouts).await?;
    assert!(session.capabilities().has("ID"), "{server}");
    let answer = session.send_id().await?.expect("the server answers ID");
    let name = answer.get("name").cloned().unwrap_or_default();
    assert!(name.to_lowercase().contains(&server.to_string().to_lowercase()), "{server}: {answer:?}");
    session.select("INBOX").await?;
    session.logout().await?;
    Ok(())
}

on_both!(the_daemon_sorts_delivered_mail: the_daemon_sorts_on_dovecot, the_daemon_sorts_on_cyrus);
async fn the_daemon_sorts_delivered_mail(server: Server) -> Result<()> {
    let env = TestEnv::shared_of(server);
    let user = env.new_user();
    let setup = Setup::new(env, &user, &[("sort.rhai", SORT_RULE)], "");
    let daemon = Daemon::spawn(&setup.config, &["run"]);
    // The watcher's own line (the account's "watch plan: watching ..." comes before it).
    daemon.wait_log_count(": watching uidvalidity", 1, Duration::from_secs(20));
    let mut ids = Vec::new();
    for i in 0..3 {
        let raw = message("a@example.com", &user.address, &format!("sort-me {i}"), "hello");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let start = text.find("Message-ID: <").unwrap() + "Message-ID: <".len();
        ids.push(text[start..start + text[start..].find('>').unwrap()].to_owned());
        env.deliver_lmtp(&user, &raw).await?;
    }
    env.deliver_lmtp(&user, &message("a@example.com", &user.address, "keep me", "x")).await?;
    wait_for(
        Duration::from_secs(15),
        env.with_logs(format!("{server}: three in Sorted\n{}", daemon.log())),
        || async {
            let got = ids_in(env, &user, "Sorted").await;
            if got.len() >= 3 { Ok(got) } else { Err(format!("{} so far", got.len())) }
        },
    )
    .await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{server}: {log}");
    let mut sorted = ids_in(env, &user, "Sorted").await;
    sorted.sort();
    ids.sort();
    assert_eq!(sorted, ids, "{server}");
    let listed = env.list(&user, "Sorted").await?;
    assert!(listed.iter().all(|m| m.has_flag("sorted") && !m.has_flag("\\Seen")), "{server}: {listed:#?}");
    assert_eq!(subjects(env, &user, "INBOX").await?, ["keep me"], "{server}");
    Ok(())
}

/// A mailbox whose PERMANENTFLAGS rule out new keywords: on Cyrus, the user takes the `w` right
/// (flags other than \Seen and \Deleted) off its own INBOX; PERMANENTFLAGS then lists only
/// those two. (Neither server's keyword cap shows in PERMANENTFLAGS: Dovecot keeps storing,
/// Cyrus keeps offering `\*` and answers NO at its 129th keyword.)
#[tokio::test(flavor = "multi_thread")]
async fn a_keyword_the_mailbox_cannot_keep_is_refused_by_name_on_cyrus() -> Result<()> {
    let env = TestEnv::shared_cyrus();
    let user = env.new_user();
    let uid = append(env, &user, "INBOX", "no keywords here", &[]).await?;
    let mut other = env.imap(&user).await?;
    other.run_command_and_check_ok(&format!("SETACL INBOX \"{}\" lrsitexan", user.login)).await?;
    other.logout().await?;
    let mut session = inbox(env, &user).await?;
    let err = session
        .uid_store(&UidSet::new([uid]), FlagOp::Add, &["\\Seen", "sorted"])
        .await
        .expect_err("a keyword the mailbox cannot keep");
    let text = err.to_string();
    assert!(text.contains("keyword `sorted`") && text.contains("mailbox `INBOX`"), "{text}");
    assert!(text.contains("PERMANENTFLAGS \\Deleted \\Seen"), "{text}");
    assert!(!err.is_transient() && !session.is_broken(), "{err:?}");
    // Nothing was sent: not even \Seen, listed with the keyword, was stored.
    assert!(!env.list(&user, "INBOX").await?[0].has_flag("\\Seen"));
    // Flags the mailbox keeps still work. (Removing a keyword is not refused by tidings, but
    // here Cyrus refuses it: without `w`, no STORE of keywords at all.)
    session.uid_store(&UidSet::new([uid]), FlagOp::Add, &["\\Seen"]).await?;
    assert!(env.list(&user, "INBOX").await?[0].has_flag("\\Seen"));
    Ok(())
}
