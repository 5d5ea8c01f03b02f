//! Proves the harness itself: real logins over TLS verified with the
//! generated CA, APPEND seen by another connection, LMTP and SMTP delivery
//! (STARTTLS, implicit TLS, plaintext), the catch-all mailbox, IDLE, MOVE,
//! SPECIAL-USE, and stopping/restarting servers of an own environment.

use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::DateTime;
use futures::TryStreamExt;
use tokio::net::TcpStream;

use crate::harness::{ImapSession, Listed, MailboxInfo, Submit, TestEnv, User, message, wait_for, wait_until};

/// Generous: Dovecot alone holds IDLE notifications ~0.5 s.
const DEADLINE: Duration = Duration::from_secs(10);

/// Waits until `mailbox` holds a message with `subject`; returns it.
async fn arrival(env: &TestEnv, user: &User, mailbox: &str, subject: &str) -> Listed {
    let what = format!("a message {subject:?} in {}'s {mailbox}", user.login);
    wait_for(DEADLINE, env.with_logs(what), || async {
        let listed = env.list(user, mailbox).await.map_err(|e| format!("{e:#}"))?;
        match listed.iter().find(|l| l.subject.as_deref() == Some(subject)) {
            Some(found) => Ok(found.clone()),
            None => Err(format!("{listed:?}")),
        }
    })
    .await
}

#[tokio::test]
async fn imaps_login_verifies_the_generated_ca() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut session = env.imap(&user).await?;
    let caps = session.capabilities().await?;
    for cap in ["IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE"] {
        let all: Vec<_> = caps.iter().map(|c| format!("{c:?}")).collect();
        assert!(caps.has_str(cap), "expected capability {cap}, got {all:?}");
    }
    session.logout().await?;
    assert!(env.ca_file.exists(), "CA file {} missing", env.ca_file.display());
    Ok(())
}

#[tokio::test]
async fn tls_fails_without_the_test_ca() -> Result<()> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
    let env = TestEnv::shared();
    let config = ClientConfig::builder_with_provider(ring::default_provider().into())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let connect = |config| async move {
        let tcp = TcpStream::connect(("127.0.0.1", env.imaps_port)).await?;
        let connector = tokio_rustls::TlsConnector::from(config);
        anyhow::Ok(connector.connect("localhost".try_into()?, tcp).await?)
    };
    connect(env.tls_config()).await.expect("TLS with the test CA");
    let result = connect(std::sync::Arc::new(config)).await;
    let Err(err) = result else { panic!("TLS must fail when the CA is not trusted") };
    assert!(err.to_string().contains("UnknownIssuer"), "expected UnknownIssuer, got {err}");
    Ok(())
}

#[tokio::test]
async fn starttls_login_on_the_plain_imap_port() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut session = env.imap_starttls(&user).await?;
    session.select("INBOX").await?;
    session.logout().await?;
    Ok(())
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let env = TestEnv::shared();
    let mut user = env.new_user();
    user.password.push('x');
    for _ in 0..3 {
        let Err(err) = env.imap(&user).await else { panic!("login with a wrong password must fail") };
        assert!(format!("{err:#}").contains("AUTHENTICATIONFAILED"), "got {err:#}");
    }
    // Dovecot's auth penalty (2 s and up per earlier failure from the same
    // IP) is off: failed logins must not slow down everyone else's.
    let started = Instant::now();
    env.imap(&env.new_user()).await.expect("a correct login").logout().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "a login after failures took {took:?}");
}

#[tokio::test]
async fn append_is_visible_to_a_second_connection() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let raw = message("a@example.org", &user.address, "appended", "hello");
    let date = DateTime::parse_from_rfc3339("2024-02-29T13:14:15+01:00")?;
    let uid = env.append(&user, "INBOX", &raw, &["\\Seen", "$Label1"], Some(date)).await?;
    let listed = env.list(&user, "INBOX").await?;
    assert_eq!(listed.len(), 1, "expected one message, got {listed:?}");
    let got = &listed[0];
    assert_eq!(got.uid, uid, "APPENDUID vs listed UID");
    assert_eq!(got.subject.as_deref(), Some("appended"));
    assert!(got.message_id.as_deref().is_some_and(|id| id.ends_with("@harness.tidings.test")));
    assert_eq!(got.internal_date, Some(date), "INTERNALDATE");
    for flag in ["\\Seen", "$Label1"] {
        assert!(got.has_flag(flag), "expected {flag} in {:?}", got.flags);
    }
    assert_eq!(env.fetch_raw(&user, "INBOX", uid).await?, raw, "raw message read back");
    Ok(())
}

#[tokio::test]
async fn special_use_mailboxes_exist() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let boxes: Vec<MailboxInfo> = env.mailboxes(&user).await?;
    for (name, attr) in
        [("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"), ("Junk", "\\Junk"), ("Archive", "\\Archive")]
    {
        let found = boxes.iter().find(|b| b.name == name);
        assert!(
            found.is_some_and(|b| b.attributes.iter().any(|a| a == attr)),
            "expected {name} with {attr}, got {boxes:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn lmtp_delivers_and_rejects_unknown_users() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    env.deliver_lmtp(&user, &message("a@example.org", &user.address, "via lmtp", ".dot")).await?;
    wait_until(DEADLINE, "one message in INBOX", || async {
        env.list(&user, "INBOX").await.is_ok_and(|l| l.len() == 1)
    })
    .await;
    let got = arrival(env, &user, "INBOX", "via lmtp").await;
    assert!(String::from_utf8(env.fetch_raw(&user, "INBOX", got.uid).await?)?.contains("\r\n.dot\r\n"));
    let stranger = format!("nobody-{}@tidings.test", std::process::id());
    let err = env.deliver_lmtp_to("a@example.org", &[&stranger], b"Subject: x\r\n\r\nx\r\n").await;
    assert!(format!("{:#}", err.expect_err("unknown user")).contains("550"));
    Ok(())
}

#[tokio::test]
async fn submission_with_starttls_delivers_through_lmtp() -> Result<()> {
    let env = TestEnv::shared();
    let (from, to) = (env.new_user(), env.new_user());
    let raw = message(&from.address, &to.address, "via starttls", "hi");
    env.send_smtp(Submit::StartTls, &from, &[&to.address], &raw).await?;
    arrival(env, &to, "INBOX", "via starttls").await;
    Ok(())
}

#[tokio::test]
async fn submission_over_implicit_tls_and_plaintext_delivers() -> Result<()> {
    let env = TestEnv::shared();
    let (from, to) = (env.new_user(), env.new_user());
    for (via, subject) in [(Submit::ImplicitTls, "via smtps"), (Submit::Plain, "via plain")] {
        env.send_smtp(via, &from, &[&to.address], &message(&from.address, &to.address, subject, "")).await?;
        arrival(env, &to, "INBOX", subject).await;
    }
    Ok(())
}

#[tokio::test]
async fn submission_needs_auth() {
    let env = TestEnv::shared();
    let mut user = env.new_user();
    user.password = "wrong".into();
    let raw = message(&user.address, &user.address, "x", "");
    let err = env.send_smtp(Submit::StartTls, &user, &[&user.address], &raw).await;
    assert!(format!("{:#}", err.expect_err("bad password")).contains("535"));
}

#[tokio::test]
async fn other_domains_land_in_the_catchall() -> Result<()> {
    let env = TestEnv::shared();
    let from = env.new_user();
    let subject = format!("to elsewhere {}", from.login);
    let raw = message(&from.address, "someone@example.org", &subject, "");
    env.send_smtp(Submit::StartTls, &from, &["someone@example.org"], &raw).await?;
    arrival(env, &env.catchall, "INBOX", &subject).await;
    Ok(())
}

#[tokio::test]
async fn idle_reports_new_mail_and_move_works() -> Result<()> {
    use async_imap::extensions::idle::IdleResponse;
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut session: ImapSession = env.imap(&user).await?;
    session.select("INBOX").await?;
    let mut idle = session.idle();
    idle.init().await?;
    let (wait, _stop) = idle.wait_with_timeout(DEADLINE);
    env.deliver_lmtp(&user, &message("a@example.org", &user.address, "idle", "")).await?;
    let response = wait.await?;
    assert!(matches!(response, IdleResponse::NewData(_)), "expected new data, got {response:?}");
    let mut session = idle.done().await?;
    let uids = session.uid_search("ALL").await?;
    let uid = uids.into_iter().next().expect("one message");
    session.uid_mv(uid.to_string(), "Archive").await?;
    let left: Vec<_> = session.uid_fetch("1:*", "UID").await?.try_collect().await?;
    assert!(left.is_empty(), "INBOX should be empty after MOVE, got {left:?}");
    session.logout().await?;
    arrival(env, &user, "Archive", "idle").await;
    Ok(())
}

#[tokio::test]
async fn own_env_survives_server_restarts() -> Result<()> {
    let mut env = TestEnv::start_own();
    let user = env.new_user();
    let raw = message(&user.address, &user.address, "kept", "");
    env.send_smtp(Submit::StartTls, &user, &[&user.address], &raw).await?;
    arrival(&env, &user, "INBOX", "kept").await;
    env.stop_dovecot();
    assert!(env.imap(&user).await.is_err(), "IMAP must be down while Dovecot is stopped");
    env.start_dovecot();
    arrival(&env, &user, "INBOX", "kept").await;
    let raw = message(&user.address, &user.address, "dovecot restarted", "");
    env.send_smtp(Submit::StartTls, &user, &[&user.address], &raw).await?;
    arrival(&env, &user, "INBOX", "dovecot restarted").await;
    env.stop_postfix();
    env.start_postfix();
    let raw = message(&user.address, &user.address, "after restart", "");
    env.send_smtp(Submit::ImplicitTls, &user, &[&user.address], &raw).await?;
    arrival(&env, &user, "INBOX", "after restart").await;
    let dir = env.dir.clone();
    drop(env);
    let what = format!("{} removed after dropping its env", dir.display());
    wait_until(DEADLINE, what, || async { !dir.exists() }).await;
    Ok(())
}

/// One HTTP/1.1 POST over a plain socket, as a webhook sender would; returns the status line.
fn post(port: u16, body: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    let request = format!(
        "POST /hook HTTP/1.1\r\nhost: 127.0.0.1\r\nidempotency-key: k1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

#[test]
fn the_http_receiver_records_answers_goes_down_and_comes_back() {
    let mut receiver = crate::harness::Receiver::start();
    let before = std::time::SystemTime::now();
    assert!(post(receiver.port, "{\"a\":1}").unwrap().starts_with("HTTP/1.1 200"));
    let after = std::time::SystemTime::now();
    receiver.set_status(503);
    assert!(post(receiver.port, "{}").unwrap().starts_with("HTTP/1.1 503"));
    let got = receiver.requests();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/hook"));
    assert_eq!(got[0].header("idempotency-key"), Some("k1"));
    assert_eq!(got[0].json(), serde_json::json!({"a": 1}));
    // The benchmarks time webhooks by this stamp: it is taken while the request is served.
    assert!((before..=after).contains(&got[0].received_at), "stamp outside the request's round trip");
    receiver.go_down();
    let refused = post(receiver.port, "{}");
    assert!(refused.is_err(), "a down receiver refuses connections: {refused:?}");
    receiver.come_back();
    receiver.set_status(200);
    assert!(post(receiver.port, "{}").unwrap().starts_with("HTTP/1.1 200"));
    assert_eq!(receiver.requests().len(), 3, "the refused request was not recorded");
}

/// What `stream` sends within `wait` (up to the first line end), and whether it closed.
fn read_for(stream: &mut std::net::TcpStream, wait: Duration) -> (String, bool) {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).unwrap();
    let (started, mut got, mut buf) = (Instant::now(), Vec::new(), [0u8; 4096]);
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
            Err(_) => break true,
        }
        if got.ends_with(b"\r\n") || started.elapsed() > wait {
            break false;
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[test]
fn the_fault_proxy_forwards_cuts_refuses_stalls_slows_and_triggers() {
    use crate::harness::{Proxy, Side, Trigger};
    use std::io::Write;
    let env = TestEnv::shared();
    let proxy = Proxy::start(env.imap_port);
    let connect = || std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    let greeted = |stream: &mut std::net::TcpStream| {
        let (greeting, closed) = read_for(stream, Duration::from_secs(2));
        assert!(greeting.starts_with("* OK") && !closed, "{greeting:?} closed {closed}");
    };
    let short = Duration::from_millis(400);

    // A trigger cuts its connection right after the pattern: the server never saw the line end.
    let mut a = connect();
    greeted(&mut a);
    proxy.arm(Trigger::cut(Side::Client, "NOOP"));
    a.write_all(b"a1 NOOP\r\n").unwrap();
    assert_eq!(read_for(&mut a, short), (String::new(), true), "cut before any answer");
    assert_eq!(proxy.armed(), 0);

    let mut b = connect();
    greeted(&mut b);
    proxy.cut_all();
    assert!(read_for(&mut b, short).1, "cut_all closes a live connection");

    proxy.refuse_for(Duration::from_millis(300));
    assert_eq!(read_for(&mut connect(), short), (String::new(), true), "refused: closed at once");
    assert_eq!(proxy.refused(), 1);
    std::thread::sleep(Duration::from_millis(350));

    // Stalled: live and new connections get nothing back, and stay open.
    let mut c = connect();
    greeted(&mut c);
    proxy.stall(true);
    c.write_all(b"a2 NOOP\r\n").unwrap();
    assert_eq!(read_for(&mut c, short), (String::new(), false), "a stalled connection answers nothing");
    assert_eq!(read_for(&mut connect(), short), (String::new(), false), "nor does a new one");
    proxy.stall(false);

    // Slowed: a delay per chunk, then a byte rate (the greeting is ~150 bytes).
    for (slow, at_least) in [((short, None), short), ((Duration::ZERO, Some(1000)), Duration::from_millis(100))] {
        proxy.slow(Some(slow));
        let started = Instant::now();
        greeted(&mut connect());
        assert!(started.elapsed() >= at_least, "{slow:?}: greeting after {:?}", started.elapsed());
    }
    proxy.slow(None);
    greeted(&mut connect());
    assert_eq!((proxy.connections(), proxy.faults()), (7, 4), "{:#?}", proxy.history());
}

/// The PostgreSQL of the shared-store tests: two clusters side by side, each on its own port,
/// run as `postgres` (not root), answering over TCP on 127.0.0.1, gone once stopped.
#[test]
fn postgres_clusters_start_side_by_side_as_the_postgres_user() -> Result<()> {
    let (mut one, two) = (crate::harness::Postgres::start()?, crate::harness::Postgres::start()?);
    assert_ne!(one.port, two.port);
    for pg in [&one, &two] {
        let row = pg.psql("tidings", "SELECT current_user, current_database(), inet_server_addr()")?;
        assert_eq!(row.trim(), "tidings|tidings|127.0.0.1", "{}", pg.log_tail());
        // The URL a `state:` line gives works for a client as it is.
        let by_url = std::process::Command::new("psql").arg(pg.url("tidings")).args(["-Atc", "SELECT 2"]).output()?;
        assert_eq!(String::from_utf8_lossy(&by_url.stdout).trim(), "2", "{}", String::from_utf8_lossy(&by_url.stderr));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", one_pid(&one)?))?;
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|u| u.split_whitespace().next());
    let postgres = std::process::Command::new("id").args(["-u", "postgres"]).output()?.stdout;
    assert_eq!(uid, Some(String::from_utf8_lossy(&postgres).trim()), "the server runs as postgres:\n{status}");
    one.stop();
    assert!(one.psql("tidings", "SELECT 1").is_err(), "stopped, it answers no more");
    assert_eq!(two.psql("tidings", "SELECT 1")?.trim(), "1", "the other one is untouched");
    Ok(())
}

/// The server's pid, from its postmaster.pid.
fn one_pid(pg: &crate::harness::Postgres) -> Result<u32> {
    let pid_file = std::fs::read_to_string(pg.dir.join("data/postmaster.pid"))?;
    Ok(pid_file.lines().next().unwrap_or_default().trim().parse()?)
}
