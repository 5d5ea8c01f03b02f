//! `tidings::imap::Session` against the harness's real Dovecot: logins over implicit TLS,
//! STARTTLS and plaintext; auth and TLS failures; SELECT; fetching without `\Seen`,
//! truncation and bursts; IDLE; move/copy/store/delete seen from a second connection;
//! UTF-8 folders; special-use; a stalled server breaking the session. The harness's own
//! IMAP helpers are only used to set up and check from the outside.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tidings::config::{Secret, Server, Tls};
use tidings::imap::{Error, FlagOp, Groups, IdleOutcome, Login, Session, Timeouts, UidSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{TestEnv, User, message};
use crate::hostile::{huge_header, with_headers};

const NO_LIMIT: u64 = u64::MAX;

fn login(env: &TestEnv, user: &User, host: &str, port: u16, tls: Tls) -> Login {
    Login {
        account: "test".into(),
        server: Server { host: host.into(), port, tls, tls_fingerprint: None },
        username: user.login.clone(),
        password: Secret::new(user.password.clone()),
        oauth2: None,
        ca_file: Some(env.ca_file.clone()),
    }
}

/// A session over implicit TLS to 127.0.0.1 (the certificate's IP SAN), INBOX selected.
async fn inbox(env: &TestEnv, user: &User) -> Result<Session> {
    let mut session =
        Session::connect(&login(env, user, "127.0.0.1", env.imaps_port, Tls::Implicit), Timeouts::default()).await?;
    session.select("INBOX").await?;
    Ok(session)
}

/// APPENDs a small message with `subject` to `mailbox`; returns its UID.
async fn append(env: &TestEnv, user: &User, mailbox: &str, subject: &str, flags: &[&str]) -> Result<u32> {
    env.append(user, mailbox, &message("a@example.org", &user.address, subject, "body"), flags, None).await
}

/// The subjects in `mailbox`, by UID, as a second connection sees them.
async fn subjects(env: &TestEnv, user: &User, mailbox: &str) -> Result<Vec<String>> {
    Ok(env.list(user, mailbox).await?.into_iter().filter_map(|m| m.subject).collect())
}

#[tokio::test]
async fn implicit_tls_to_an_ip_address_logs_in_and_reads_capabilities() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let session =
        Session::connect(&login(env, &user, "127.0.0.1", env.imaps_port, Tls::Implicit), Timeouts::default()).await?;
    let caps = session.capabilities();
    assert!(caps.idle && caps.move_ && caps.uidplus && caps.special_use && caps.namespace, "{caps:?}");
    assert!(!caps.gmail, "Dovecot is not Gmail: {caps:?}");
    assert!(caps.has("IMAP4rev1"), "{:?}", caps.raw);
    // Dovecot: delimiter `/`, empty personal namespace prefix.
    assert_eq!(session.server_name("Überweisungen/2026"), "&ANw-berweisungen/2026");
    assert_eq!(session.server_name("inbox"), "INBOX");
    assert!(!session.is_broken());
    session.logout().await?;
    Ok(())
}

#[tokio::test]
async fn starttls_and_plaintext_log_in() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    append(env, &user, "INBOX", "one", &[]).await?;
    for (host, tls) in [("localhost", Tls::StartTls), ("127.0.0.1", Tls::None)] {
        let mut session = Session::connect(&login(env, &user, host, env.imap_port, tls), Timeouts::default()).await?;
        let selected = session.select("INBOX").await?;
        assert_eq!(selected.exists, 1, "{tls:?}");
        session.logout().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error() {
    let env = TestEnv::shared();
    let mut user = env.new_user();
    user.password = "not-the-password".into();
    let err = Session::connect(&login(env, &user, "127.0.0.1", env.imaps_port, Tls::Implicit), Timeouts::default())
        .await
        .expect_err("a wrong password must fail");
    assert!(err.is_auth() && !err.is_transient() && !err.is_tls(), "{err:?}");
    let text = format!("{err}");
    assert!(text.starts_with("cannot log in to account `test` (127.0.0.1:"), "{text}");
    assert!(text.contains(&user.login) && !text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_and_a_missing_ca_file_a_config_error() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    // The platform's roots do not include the harness CA.
    let mut untrusted = login(env, &user, "localhost", env.imaps_port, Tls::Implicit);
    untrusted.ca_file = None;
    let err = Session::connect(&untrusted, Timeouts::default()).await.expect_err("untrusted certificate");
    assert!(err.is_tls() && !err.is_auth() && !err.is_transient(), "{err:?}");
    let dir = tempfile::tempdir()?;
    let mut bad_ca = login(env, &user, "localhost", env.imaps_port, Tls::StartTls);
    bad_ca.ca_file = Some(dir.path().join("missing.pem"));
    let err = Session::connect(&bad_ca, Timeouts::default()).await.expect_err("missing CA file");
    // A local file, not the server: a configuration error, never a TLS or login failure.
    assert!(err.is_config() && !err.is_tls() && !err.is_auth() && err.to_string().contains("missing.pem"), "{err}");
    Ok(())
}

#[tokio::test]
async fn select_reports_uidvalidity_uidnext_and_exists() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    append(env, &user, "INBOX", "one", &[]).await?;
    let second = append(env, &user, "INBOX", "two", &[]).await?;
    let mut session = inbox(env, &user).await?;
    let selected = session.select("INBOX").await?;
    assert!(selected.uidvalidity > 0);
    assert_eq!((selected.exists, selected.uidnext), (2, second + 1));
    assert_eq!(session.selected().map(|(name, _)| name), Some("INBOX"));
    let err = session.select("No such folder").await.expect_err("missing mailbox");
    assert!(!err.is_transient() && !session.is_broken(), "a NO leaves the session usable: {err:?}");
    assert!(err.to_string().starts_with("cannot select mailbox `No such folder` for account `test`"), "{err}");
    assert!(session.selected().is_none(), "a failed SELECT leaves nothing selected");
    let err = session.fetch_after(0, NO_LIMIT).await.expect_err("fetch with nothing selected");
    assert!(err.to_string().contains("no mailbox is selected"), "{err}");
    assert_eq!(session.select("inbox").await?.uidvalidity, selected.uidvalidity);
    Ok(())
}

#[tokio::test]
async fn fetch_after_returns_exactly_the_newer_messages_and_never_sets_seen() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let first = append(env, &user, "INBOX", "first", &[]).await?;
    let raw = message("b@example.org", &user.address, "second", "hello\r\nworld");
    let second = env.append(&user, "INBOX", &raw, &["$Label1", "\\Flagged"], None).await?;
    let third = append(env, &user, "INBOX", "third", &["\\Seen"]).await?;
    let mut session = inbox(env, &user).await?;
    let fetched = session.fetch_after(first, NO_LIMIT).await?;
    assert_eq!(fetched.iter().map(|f| f.uid).collect::<Vec<_>>(), [second, third]);
    let got = &fetched[0];
    assert_eq!(got.raw, raw, "the raw message, byte for byte");
    assert_eq!((got.size, got.truncated), (raw.len() as u64, false));
    assert!(
        got.flags.contains(&"$Label1".to_string()) && got.flags.contains(&"\\Flagged".to_string()),
        "{:?}",
        got.flags
    );
    assert!(!got.flags.iter().any(|f| f == "\\Recent"), "\\Recent is left out: {:?}", got.flags);
    assert!(got.internal_date.is_some_and(|d| (chrono::Utc::now() - d).num_minutes().abs() < 5));
    assert!(fetched[1].flags.contains(&"\\Seen".to_string()));
    // `third+1:*` matches the newest message: it must not come back.
    assert!(session.fetch_after(third, NO_LIMIT).await?.is_empty());
    assert!(session.fetch_after(u32::MAX, NO_LIMIT).await?.is_empty());
    // By UID, skipping one that does not exist.
    let by_uid = session.fetch_uids(&[third, first, 9999], NO_LIMIT).await?;
    assert_eq!(by_uid.iter().map(|f| f.uid).collect::<Vec<_>>(), [first, third]);
    // A second connection sees no \Seen on what was unseen.
    for listed in env.list(&user, "INBOX").await? {
        assert_eq!(listed.has_flag("\\Seen"), listed.uid == third, "{listed:?}");
    }
    Ok(())
}

#[tokio::test]
async fn oversized_messages_come_back_as_headers_with_their_full_size() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let big = message("a@example.org", &user.address, "big", &"0123456789abcdef\r\n".repeat(10_000));
    let big_uid = env.append(&user, "INBOX", &big, &[], None).await?;
    let small_uid = append(env, &user, "INBOX", "small", &[]).await?;
    let mut session = inbox(env, &user).await?;
    let fetched = session.fetch_after(0, 50_000).await?;
    assert_eq!(fetched.len(), 2);
    let (b, s) = (&fetched[0], &fetched[1]);
    assert_eq!((b.uid, b.truncated, b.size), (big_uid, true, big.len() as u64));
    let header_end = big.windows(4).position(|w| w == b"\r\n\r\n").expect("header end") + 4;
    assert_eq!(b.raw, &big[..header_end], "exactly the header, blank line included");
    assert_eq!((s.uid, s.truncated), (small_uid, false));
    assert!(env.list(&user, "INBOX").await?.iter().all(|l| !l.has_flag("\\Seen")));
    Ok(())
}

#[tokio::test]
async fn a_burst_of_100_messages_takes_two_fetch_commands() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut uids = Vec::new();
    for n in 0..100 {
        uids.push(append(env, &user, "INBOX", &format!("burst {n}"), &[]).await?);
    }
    let mut session = inbox(env, &user).await?;
    let before = session.fetch_commands();
    let started = Instant::now();
    let fetched = session.fetch_after(0, NO_LIMIT).await?;
    let took = started.elapsed();
    let commands = session.fetch_commands() - before;
    println!("fetched {} messages with {commands} FETCH commands in {took:?}", fetched.len());
    assert_eq!(fetched.iter().map(|f| f.uid).collect::<Vec<_>>(), uids);
    assert!(fetched.iter().all(|f| f.raw.starts_with(b"From: a@example.org")));
    assert_eq!(commands, 2, "one for sizes and flags, one for the bodies");
    Ok(())
}

#[tokio::test]
async fn idle_wakes_on_delivery_times_out_and_stops_on_request() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut session = inbox(env, &user).await?;
    assert!(session.fetch_after(0, NO_LIMIT).await?.is_empty(), "an empty mailbox fetches nothing, without error");
    assert_eq!(session.idle(Duration::from_millis(700), std::future::pending::<()>()).await?, IdleOutcome::Timeout);
    let deliver = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.deliver_lmtp(&user, &message("a@example.org", &user.address, "pushed", "")).await
    };
    let started = Instant::now();
    let (outcome, delivered) =
        tokio::join!(session.idle(Duration::from_secs(20), std::future::pending::<()>()), deliver);
    delivered?;
    let took = started.elapsed();
    assert_eq!(outcome?, IdleOutcome::Changed);
    assert!(took < Duration::from_secs(5), "IDLE woke after {took:?}");
    let fetched = session.fetch_after(0, NO_LIMIT).await?;
    assert_eq!(fetched.len(), 1);
    // A stop request ends IDLE at once, with DONE: the session stays usable.
    let started = Instant::now();
    let stop = tokio::time::sleep(Duration::from_millis(200));
    assert_eq!(session.idle(Duration::from_secs(30), stop).await?, IdleOutcome::Stopped);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!session.noop().await?, "no new mail since the fetch");
    assert!(!session.is_broken());
    Ok(())
}

#[tokio::test]
async fn news_seen_before_idle_is_reported_without_waiting() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut session = inbox(env, &user).await?;
    append(env, &user, "INBOX", "arrived while busy", &[]).await?;
    // NOOP collects the EXISTS; IDLE must not sleep on it.
    assert!(session.noop().await?, "NOOP reports the new message");
    let started = Instant::now();
    assert_eq!(session.idle(Duration::from_secs(30), std::future::pending::<()>()).await?, IdleOutcome::Changed);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(session.fetch_after(0, NO_LIMIT).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn store_copy_move_and_delete_are_seen_by_a_second_connection() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut uid = Vec::new();
    for subject in ["flag me", "copy me", "move me", "move me too", "delete me"] {
        uid.push(append(env, &user, "INBOX", subject, &[]).await?);
    }
    let mut session = inbox(env, &user).await?;
    session.uid_store(&UidSet::new([uid[0]]), FlagOp::Add, &["\\Flagged", "$Label1", "\\Seen"]).await?;
    session.uid_store(&UidSet::new([uid[0]]), FlagOp::Remove, &["\\Seen"]).await?;
    session.uid_copy(&UidSet::new([uid[1]]), "Archive").await?;
    let trash = session.special_use("\\Trash").await?.expect("Dovecot has a \\Trash folder");
    session.uid_move(&UidSet::new([uid[2]]), &trash).await?;
    // The fallback without MOVE: COPY, STORE \Deleted, UID EXPUNGE, on the real server.
    session.capabilities_mut().move_ = false;
    session.uid_move(&UidSet::new([uid[3]]), "Junk").await?;
    session.uid_delete(&UidSet::new([uid[4]])).await?;
    let bad = session.uid_store(&UidSet::new([uid[0]]), FlagOp::Add, &["two words"]).await.expect_err("bad flag");
    assert!(matches!(bad, Error::Invalid { .. }), "{bad:?}");

    let inbox_now = env.list(&user, "INBOX").await?;
    let left: Vec<_> = inbox_now.iter().filter_map(|l| l.subject.clone()).collect();
    assert_eq!(left, ["flag me", "copy me"], "moved and deleted ones are gone, nothing else");
    let flagged = &inbox_now[0];
    assert!(flagged.has_flag("\\Flagged") && flagged.has_flag("$Label1") && !flagged.has_flag("\\Seen"), "{flagged:?}");
    assert_eq!(subjects(env, &user, "Archive").await?, ["copy me"]);
    assert_eq!(subjects(env, &user, "Trash").await?, ["move me"]);
    assert_eq!(subjects(env, &user, "Junk").await?, ["move me too"]);
    Ok(())
}

#[tokio::test]
async fn utf8_folders_are_created_filled_and_listed_back() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let uid = append(env, &user, "INBOX", "Kontoauszug", &[]).await?;
    let mut session = inbox(env, &user).await?;
    session.create("Überweisungen/2026").await?;
    session.create("Überweisungen/2026").await?; // already there: still success
    session.uid_copy(&UidSet::new([uid]), "Überweisungen/2026").await?;
    let folders = session.list().await?;
    let created = folders.iter().find(|f| f.name == "Überweisungen/2026").expect("listed back decoded");
    assert_eq!(created.server_name, "&ANw-berweisungen/2026");
    assert!(folders.iter().any(|f| f.name == "Überweisungen"), "the parent exists too: {folders:?}");
    let trash = folders.iter().find(|f| f.name == "Trash").expect("Trash");
    assert!(trash.has_attribute("\\Trash"), "{trash:?}");
    assert_eq!(session.special_use("\\Archive").await?.as_deref(), Some("Archive"));
    assert_eq!(session.special_use("\\Flagged").await?, None);
    // From the outside: the server holds the modified UTF-7 name, with the message in it.
    let raw_names: Vec<String> = env.mailboxes(&user).await?.into_iter().map(|m| m.name).collect();
    assert!(raw_names.contains(&"&ANw-berweisungen/2026".to_string()), "{raw_names:?}");
    assert_eq!(subjects(env, &user, "&ANw-berweisungen/2026").await?, ["Kontoauszug"]);
    session.select("Überweisungen/2026").await?;
    assert_eq!(session.fetch_after(0, NO_LIMIT).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn search_finds_unseen_and_rejects_line_breaks() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let unseen = append(env, &user, "INBOX", "new", &[]).await?;
    append(env, &user, "INBOX", "read", &["\\Seen"]).await?;
    let unseen_too = append(env, &user, "INBOX", "also new", &[]).await?;
    let mut session = inbox(env, &user).await?;
    assert_eq!(session.search_uids("UNSEEN").await?, [unseen, unseen_too]);
    assert_eq!(session.search_uids("SINCE 1-Jan-2000").await?.len(), 3);
    let err = session.search_uids("ALL\r\nA1 LOGOUT").await.expect_err("injection");
    assert!(matches!(err, Error::Invalid { .. }) && !session.is_broken(), "{err:?}");
    Ok(())
}

/// A TCP relay to `target` that holds back the server's bytes while `stalled` is set.
async fn stallable_proxy(target: u16) -> Result<(u16, Arc<AtomicBool>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else { return };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
            let flag = flag.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                    while flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((port, stalled))
}

#[tokio::test]
async fn a_command_timeout_breaks_the_session_for_good() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let (port, stalled) = stallable_proxy(env.imaps_port).await?;
    let timeouts = Timeouts { command: Duration::from_millis(500), ..Timeouts::default() };
    let mut session = Session::connect(&login(env, &user, "127.0.0.1", port, Tls::Implicit), timeouts).await?;
    session.select("INBOX").await?;
    stalled.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let err = session.noop().await.expect_err("a stalled server must time out");
    assert!(matches!(err, Error::Timeout { .. }) && err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(session.is_broken());
    stalled.store(false, Ordering::SeqCst);
    // Even with the server answering again, the session stays broken: its stream is out of step.
    let err = session.fetch_after(0, NO_LIMIT).await.expect_err("broken session");
    assert!(matches!(err, Error::Broken { .. }) && err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("must be dropped"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_silent_server_times_out_the_connect() -> Result<()> {
    // Accepts connections and never says a word: no greeting, no TLS handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let env = TestEnv::shared();
    let user = env.new_user();
    let timeouts = Timeouts { connect: Duration::from_millis(300), ..Timeouts::default() };
    for tls in [Tls::Implicit, Tls::StartTls] {
        let started = Instant::now();
        let err = Session::connect(&login(env, &user, "127.0.0.1", port, tls), timeouts).await.expect_err("silence");
        assert!(matches!(err, Error::Timeout { .. }) && err.is_transient(), "{tls:?}: {err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    Ok(())
}

#[tokio::test]
async fn a_server_going_away_during_idle_is_transient() -> Result<()> {
    let mut env = TestEnv::start_own();
    let user = env.new_user();
    let mut session = inbox(&env, &user).await?;
    // Long enough to outlast the server's stop on a loaded machine (20 s did not, once, in a
    // full run): IDLE must still be waiting when the connection goes, and ends at its EOF.
    let idle = session.idle(Duration::from_secs(120), std::future::pending::<()>());
    let stop_server = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Blocks this (single) test thread ~1 s; IDLE sees the EOF when polled again.
        env.stop_dovecot();
    };
    let (outcome, ()) = tokio::join!(idle, stop_server);
    let err = outcome.expect_err("IDLE on a server that went away");
    assert!(err.is_transient() && session.is_broken(), "{err:?}");
    let err = Session::connect(&login(&env, &user, "127.0.0.1", env.imaps_port, Tls::Implicit), Timeouts::default())
        .await
        .expect_err("nobody listening");
    assert!(matches!(err, Error::Connect { .. }) && err.is_transient(), "{err:?}");
    Ok(())
}

/// A log sink shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn neither_the_password_nor_a_body_reaches_the_log_even_at_trace() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let secret_body = "BODY-MARKER-7f3a";
    env.append(&user, "INBOX", &message("a@example.org", &user.address, "s", secret_body), &[], None).await?;
    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber =
        tracing_subscriber::fmt().with_env_filter("trace").with_writer(move || writer.clone()).with_ansi(false);
    // This thread only (the test runtime is single-threaded); async-imap's `log` records too.
    let guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
    let mut session = inbox(env, &user).await?;
    let fetched = session.fetch_after(0, NO_LIMIT).await?;
    session.logout().await?;
    drop(guard);
    assert!(String::from_utf8_lossy(&fetched[0].raw).contains(secret_body));
    let log = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    assert!(log.contains("imap: logged in"), "the log was captured:\n{log}");
    assert!(!log.contains(&user.password), "the password is in the log:\n{log}");
    assert!(!log.contains(secret_body), "a message body is in the log:\n{log}");
    Ok(())
}

#[tokio::test]
async fn a_header_pass_takes_64_kib_of_a_header_and_a_longer_one_is_fetched_whole_later() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let small = append(env, &user, "INBOX", "small", &[]).await?;
    let long = with_headers(&huge_header(100_000), message("a@example.org", &user.address, "long", "body"));
    let long_uid = env.append(&user, "INBOX", &long, &[], None).await?;
    let big = with_headers(&huge_header(300_000), message("a@example.org", &user.address, "long and big", "body"));
    let big_uid = env.append(&user, "INBOX", &big, &[], None).await?;
    let max = 200_000;
    let mut session = inbox(env, &user).await?;
    let before = session.fetch_commands();
    let headers = session.fetch_headers(&[small, long_uid, big_uid], max).await?;
    assert_eq!(session.fetch_commands() - before, 1, "one round trip, as before the cap");
    let [s] = &headers.fetched[..] else { panic!("only the short header whole: {:?}", headers.fetched) };
    assert!(s.uid == small && s.body_deferred && s.raw.ends_with(b"\r\n\r\n"), "{s:?}");
    let long_ones: Vec<(u32, usize, bool)> = headers.long.iter().map(|f| (f.uid, f.raw.len(), f.truncated)).collect();
    assert_eq!(long_ones, [(long_uid, 0, false), (big_uid, 0, true)], "no bytes of a header over the cap kept");

    let mut groups = Groups::of_headers(headers.long, max);
    let whole = session.fetch_group(&mut groups).await?.expect("one group");
    assert!(session.fetch_group(&mut groups).await?.is_none(), "both fit one budget");
    assert_eq!((whole[0].uid, whole[0].truncated), (long_uid, false));
    assert!(whole[0].raw == long, "the message with the long header, whole");
    assert_eq!((whole[1].uid, whole[1].truncated, whole[1].size), (big_uid, true, big.len() as u64));
    assert!(whole[1].raw == big[..max as usize], "the header of a message over max_bytes, cut there");
    Ok(())
}
