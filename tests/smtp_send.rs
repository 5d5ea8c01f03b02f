//! `tidings::exec::mail` against the harness's real Postfix and Dovecot: a composed reply sent
//! over implicit TLS, STARTTLS and plaintext arrives, threaded and marked, in the recipient's
//! INBOX; a refused message leaves the connection usable; a wrong password, an untrusted
//! certificate, a server without STARTTLS and a silent server fail the way they should; a sent
//! message is APPENDed to the Sent folder.

use std::time::{Duration, Instant};

use anyhow::Result;
use tidings::auth::Credentials;
use tidings::config::{Account, Config, Secret, Server, Tls};
use tidings::exec::mail::compose::{self, Composed};
use tidings::exec::mail::smtp::{SendError, Smtp, SmtpError};
use tidings::imap::{Login, Session, Timeouts};
use tidings::plan::{NewMessage, Original, Reply};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::harness::{TestEnv, User, wait_for};

/// The tidings account of `user`, sending through `port` with `tls`; `extra` adds YAML lines.
fn account(env: &TestEnv, user: &User, port: u16, tls: &str, extra: &str) -> Account {
    let yaml = format!(
        "accounts:\n  test:\n    imap: {{ host: 127.0.0.1, port: {imap} }}\n    smtp: {{ host: 127.0.0.1, port: {port}, tls: {tls} }}\n    \
         allow_insecure: true\n    username: {login}\n    password_env: TIDINGS_TEST_UNUSED\n    from: {address}\n    \
         ca_file: {ca}\n{extra}",
        imap = env.imaps_port,
        login = user.login,
        address = user.address,
        ca = env.ca_file.display(),
    );
    let config = Config::from_yaml(&yaml, &env.dir.join("smtp-test.yaml")).unwrap_or_else(|e| panic!("{e:#}"));
    config.accounts[0].clone()
}

fn smtp(account: &Account, user: &User) -> Smtp {
    Smtp::new(account, &Credentials::new(account, Secret::new(user.password.clone())))
}

/// A reply from `me` to `them`, answering a message with a thread behind it.
fn reply_to(me: &User, them: &User, subject: &str) -> Reply {
    Reply {
        to: them.address.clone(),
        unusable: None,
        subject: format!("Re: {subject}"),
        body: "I am away until Monday. Grüße".into(),
        days: 7,
        handle: "away.rhai".into(),
        original: Original {
            message_id: Some(format!("{subject}@sender.tidings.test")),
            references: vec!["root@sender.tidings.test".into()],
            from: them.address.clone(),
            subject: subject.into(),
            date: None,
            to: vec![me.address.clone()],
            cc: vec![],
            return_path: Some(them.address.clone()),
            sender: None,
            guard_headers: vec![],
        },
        html: None,
        from: None,
        at: None,
    }
}

/// A token unique to this test run, for subjects.
fn token(what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{what}-{}-{n}", std::process::id())
}

/// The raw message with `subject` once it is in `user`'s INBOX.
async fn arrived(env: &TestEnv, user: &User, subject: &str) -> String {
    let what = env.with_logs(format!("{subject:?} in {}'s INBOX", user.login));
    let uid = wait_for(Duration::from_secs(20), what, move || async move {
        let listed = env.list(user, "INBOX").await.map_err(|e| format!("{e:#}"))?;
        let found = listed.iter().find(|m| m.subject.as_deref() == Some(subject)).map(|m| m.uid);
        found.ok_or_else(|| format!("{listed:?}"))
    })
    .await;
    String::from_utf8(env.fetch_raw(user, "INBOX", uid).await.unwrap()).unwrap()
}

/// A header's value in the header block, unfolded.
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw).replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines()
        .find(|l| {
            l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name) && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim().to_owned())
}

#[tokio::test]
async fn a_reply_arrives_threaded_over_each_kind_of_connection() -> Result<()> {
    let env = TestEnv::shared();
    let (me, them) = (env.new_user(), env.new_user());
    for (port, tls, encrypted) in [
        (env.smtps_port, "implicit", true),
        (env.submission_port, "starttls", true),
        (env.submission_port, "none", false),
    ] {
        let account = account(env, &me, port, tls, "");
        let subject = token(tls);
        let reply = reply_to(&me, &them, &subject);
        let composed = compose::reply(&reply, &me.address, &account)?;
        let mut connection = smtp(&account, &me).connect().await?;
        assert_eq!(connection.is_encrypted(), encrypted, "tls: {tls}");
        connection.send(&composed).await?;
        connection.quit().await;
        let raw = arrived(env, &them, &format!("Re: {subject}")).await;
        assert_eq!(header(&raw, "In-Reply-To"), Some(format!("<{subject}@sender.tidings.test>")), "{raw}");
        let references = format!("<root@sender.tidings.test> <{subject}@sender.tidings.test>");
        assert_eq!(header(&raw, "References"), Some(references), "{raw}");
        assert_eq!(header(&raw, "Auto-Submitted").as_deref(), Some("auto-replied"), "{raw}");
        assert_eq!(header(&raw, "Message-ID"), Some(format!("<{}>", composed.message_id)));
        assert!(raw.contains("Gr=C3=BC=C3=9Fe") || raw.contains("Grüße"), "the body arrived: {raw}");
    }
    Ok(())
}

#[tokio::test]
async fn a_refused_message_leaves_the_connection_usable() -> Result<()> {
    let env = TestEnv::shared();
    let (me, them) = (env.new_user(), env.new_user());
    let account = account(env, &me, env.submission_port, "starttls", "");
    let mut connection = smtp(&account, &me).connect().await?;
    // Over Postfix's message_size_limit (10 MB by default): refused at the end of DATA.
    let huge = NewMessage {
        to: vec![them.address.clone()],
        cc: vec![],
        subject: token("huge"),
        body: ("x".repeat(74) + "\n").repeat(150_000),
        html: None,
        from: None,
        at: None,
    };
    let composed = compose::send(&huge, &me.address, &account)?;
    assert!(composed.bytes.len() > 10 << 20, "{} bytes", composed.bytes.len());
    match connection.send(&composed).await {
        Err(SendError::Refused { permanent: true, message }) => assert!(message.contains("552"), "{message}"),
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
    assert!(!connection.is_broken());
    let small = NewMessage { body: "fits".into(), subject: token("after-refusal"), ..huge };
    connection.send(&compose::send(&small, &me.address, &account)?).await?;
    connection.quit().await;
    arrived(env, &them, &small.subject).await;
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_naming_server_and_user() -> Result<()> {
    let env = TestEnv::shared();
    let me = env.new_user();
    for (port, tls) in [(env.smtps_port, "implicit"), (env.submission_port, "starttls")] {
        let account = account(env, &me, port, tls, "");
        let error = Smtp::new(&account, &Credentials::new(&account, Secret::new("Hunter2-not-it".into())))
            .connect()
            .await
            .unwrap_err();
        assert!(error.is_auth() && !error.is_transient(), "{error:?}");
        let expected = format!("cannot log in to SMTP server 127.0.0.1:{port} of account test as {}", me.login);
        assert_eq!(error.to_string(), expected);
        let chain = format!("{error:?} {}", tidings::causes::error_chain(&error));
        assert!(!chain.contains("Hunter2"), "no password in the error: {chain}");
    }
    Ok(())
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_and_a_missing_ca_file_a_config_error() -> Result<()> {
    let env = TestEnv::shared();
    let me = env.new_user();
    let mut untrusted = account(env, &me, env.smtps_port, "implicit", "");
    // The platform verifier does not know the harness CA.
    untrusted.ca_file = None;
    let error = smtp(&untrusted, &me).connect().await.unwrap_err();
    assert!(error.is_tls() && matches!(error, SmtpError::Tls { .. }), "{error:?}");
    let mut starttls = account(env, &me, env.submission_port, "starttls", "");
    starttls.ca_file = None;
    let error = smtp(&starttls, &me).connect().await.unwrap_err();
    assert!(error.is_tls(), "{error:?}");
    let mut missing = account(env, &me, env.smtps_port, "implicit", "");
    missing.ca_file = Some(env.dir.join("no-such-ca.pem"));
    let error = smtp(&missing, &me).connect().await.unwrap_err();
    assert!(matches!(error, SmtpError::CaFile { .. }) && error.is_config() && !error.is_tls(), "{error:?}");
    Ok(())
}

/// A loopback server that greets and answers EHLO without STARTTLS, recording what it is sent.
async fn no_starttls_server() -> Result<(u16, tokio::task::JoinHandle<Vec<String>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut heard = Vec::new();
        let Ok((stream, _)) = listener.accept().await else { return heard };
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 plain.tidings.test ESMTP\r\n").await;
        while let Ok(Some(line)) = lines.next_line().await {
            let answer: &[u8] = match line.to_ascii_uppercase().split(' ').next() {
                Some("EHLO") => b"250-plain.tidings.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                Some("QUIT") => b"221 bye\r\n",
                _ => b"502 not here\r\n",
            };
            heard.push(line);
            if write.write_all(answer).await.is_err() {
                break;
            }
        }
        heard
    });
    Ok((port, task))
}

#[tokio::test]
async fn starttls_is_required_before_credentials() -> Result<()> {
    let env = TestEnv::shared();
    let me = env.new_user();
    let (port, server) = no_starttls_server().await?;
    let account = account(env, &me, port, "starttls", "");
    let error = smtp(&account, &me).connect().await.unwrap_err();
    assert!(matches!(error, SmtpError::NoStartTls { .. }) && error.is_tls(), "{error:?}");
    assert!(error.to_string().contains("it does not offer STARTTLS, and the password is never sent in clear"));
    let heard = tokio::time::timeout(Duration::from_secs(5), server).await??;
    assert!(heard.iter().all(|l| !l.to_ascii_uppercase().starts_with("AUTH")), "no credentials went out: {heard:?}");
    assert!(heard.first().is_some_and(|l| l.starts_with("EHLO")), "{heard:?}");
    Ok(())
}

#[tokio::test]
async fn a_silent_server_times_out_at_the_account_deadline() -> Result<()> {
    let env = TestEnv::shared();
    let me = env.new_user();
    // Accepts, then says nothing: no greeting ever comes.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let hold = tokio::spawn(async move {
        let accepted = listener.accept().await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(accepted);
    });
    let account = account(env, &me, port, "implicit", "    command_timeout: 1s\n");
    let started = Instant::now();
    let error = smtp(&account, &me).connect().await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, SmtpError::Timeout { what: "connect", .. }) && error.is_transient(), "{error:?}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        error.to_string(),
        format!("cannot connect with SMTP server 127.0.0.1:{port} of account test: no answer within 1s")
    );
    hold.abort();
    Ok(())
}

/// A Session on `user`'s Dovecot over implicit TLS.
async fn imap(env: &TestEnv, user: &User) -> Result<Session> {
    let login = Login {
        account: "test".into(),
        server: Server { host: "127.0.0.1".into(), port: env.imaps_port, tls: Tls::Implicit, tls_fingerprint: None },
        username: user.login.clone(),
        password: Secret::new(user.password.clone()),
        oauth2: None,
        ca_file: Some(env.ca_file.clone()),
    };
    Ok(Session::connect(&login, Timeouts::default()).await?)
}

fn sent_copy(me: &User, them: &User, account: &Account) -> Composed {
    compose::reply(&reply_to(me, them, &token("saved")), &me.address, account).unwrap()
}

#[tokio::test]
async fn a_sent_message_is_appended_to_sent_as_seen() -> Result<()> {
    let env = TestEnv::shared();
    let (me, them) = (env.new_user(), env.new_user());
    let account = account(env, &me, env.submission_port, "starttls", "    save_sent: true\n");
    let composed = sent_copy(&me, &them, &account);
    let mut session = imap(env, &me).await?;
    let sent = session.special_use("\\Sent").await?.expect("Dovecot marks a \\Sent folder");
    session.append(&sent, &["\\Seen"], &composed.bytes).await?;
    let listed = env.list(&me, &sent).await?;
    let [copy] = listed.as_slice() else { panic!("{listed:?}") };
    assert!(copy.has_flag("\\Seen"), "{copy:?}");
    assert_eq!(copy.message_id.as_deref(), Some(composed.message_id.as_str()));
    assert_eq!(env.fetch_raw(&me, &sent, copy.uid).await?, composed.bytes, "byte for byte");
    // A folder that does not exist: refused, and the session goes on.
    let missing = session.append("No Such Folder", &["\\Seen"], &composed.bytes).await.unwrap_err();
    assert!(!missing.is_transient() && !session.is_broken(), "{missing:?}");
    session.create("No Such Folder").await?;
    session.append("No Such Folder", &["\\Seen"], b"Subject: second\r\n\r\nx\r\n").await?;
    assert_eq!(env.list(&me, "No Such Folder").await?.len(), 1);
    session.logout().await?;
    Ok(())
}
