//! Hostile input through the real daemon and the harness Dovecot: a 50 MB message, a 1 MB
//! header, 10,000 MIME parts, odd folder names (moved into and watched), and a server line no
//! IMAP client can parse (mid-IDLE and mid-FETCH, injected by `harness/garbage_proxy.rs`).
//! Each ends the same way: no panic, a clear log line where something was refused or cut,
//! and the next ordinary message is still processed: nothing got stuck.

use std::time::Duration;

use crate::daemon::{Daemon, Setup};
use crate::harness::{GarbageProxy, TestEnv, User, message, wait_for};

/// Sorts `sort-me` mail; labels `hostile` mail with what the rules could read of it, then
/// sorts it; moves mail with an `X-Folder` header into that folder.
const RULE: &str = r#"
if msg.subject.starts_with("hostile") {
    label("parts-" + msg.attachments.len());
    label("text-" + msg.text.len());
    label("headers-" + msg.headers("X-Filler").len());
    move_to("Sorted");
}
if msg.subject.starts_with("sort-me") {
    move_to("Sorted");
}
let folder = msg.header("X-Folder");
if folder != "" {
    move_to(folder);
}
"#;

/// The keywords of the message with `subject` in `mailbox` (server name), once it is there.
async fn arrived(env: &TestEnv, user: &User, mailbox: &str, subject: &str, log: impl Fn() -> String) -> Vec<String> {
    let what = format!("`{subject}` in {mailbox}");
    wait_for(Duration::from_secs(30), env.with_logs(what), || async {
        let listed = env.list(user, mailbox).await.unwrap_or_default();
        match listed.into_iter().find(|m| m.subject.as_deref() == Some(subject)) {
            Some(m) => Ok(m.flags),
            None => Err(format!("not there yet; daemon log:\n{}", log())),
        }
    })
    .await
}

/// Delivers an ordinary message and waits until the daemon has sorted it: the proof that the
/// watcher is not stuck after whatever came before.
async fn next_message_is_sorted(env: &TestEnv, user: &User, daemon: &Daemon, n: usize) {
    let subject = format!("sort-me after {n}");
    env.deliver_lmtp(user, &message("a@example.com", &user.address, &subject, "ordinary")).await.unwrap();
    arrived(env, user, "Sorted", &subject, || daemon.log()).await;
}

/// A new user and the daemon watching its INBOX with [`RULE`].
fn start(env: &TestEnv) -> (User, Setup, Daemon) {
    let user = env.new_user();
    let setup = Setup::new(env, &user, &[("hostile.rhai", RULE)], "");
    let daemon = Daemon::start(&setup.config, 1);
    (user, setup, daemon)
}

fn assert_no_panic(log: &str) {
    assert!(!log.contains("panicked"), "something panicked:\n{log}");
}

/// A message of about `size` bytes: headers, then lines of text.
pub fn big_message(user: &User, subject: &str, size: usize) -> Vec<u8> {
    let mut raw = message("big@example.com", &user.address, subject, "start of a long body");
    let line = format!("{}\r\n", "0123456789".repeat(7));
    raw.reserve(size);
    while raw.len() < size {
        raw.extend_from_slice(line.as_bytes());
    }
    raw
}

/// An ordinary message with `headers` added after its own.
pub fn with_headers(headers: &str, raw: Vec<u8>) -> Vec<u8> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block") + 2;
    [&raw[..end], headers.as_bytes(), &raw[end..]].concat()
}

/// One header field of about `bytes`, folded into lines of 75.
pub fn huge_header(bytes: usize) -> String {
    let fold = format!(" {}\r\n", "f".repeat(72));
    format!("X-Huge: start\r\n{}", fold.repeat(bytes / fold.len()))
}

/// A multipart/mixed message with `parts` small attachments.
fn many_parts(user: &User, subject: &str, parts: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: parts@example.com\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: <parts.{}@hostile.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nsee the parts\r\n",
        user.address,
        std::process::id()
    );
    for i in 0..parts {
        raw += &format!(
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; \
             filename=\"p{i}.bin\"\r\n\r\npart {i}\r\n"
        );
    }
    raw += "--b--\r\n";
    raw.into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_message_a_1_mb_header_and_10000_parts_are_judged_and_the_next_message_is_too() {
    let env = TestEnv::shared();
    let (user, _setup, daemon) = start(env);

    // 50 MB: over the default max_message_size (10 MiB), so only its header is fetched. The
    // rules still judge it (on the header), its move still runs, and the log says why the rules
    // saw no body.
    let big = big_message(&user, "hostile 50 MB", 50 << 20);
    env.append(&user, "INBOX", &big, &[], None).await.unwrap();
    drop(big);
    let labels = arrived(env, &user, "Sorted", "hostile 50 MB", || daemon.log()).await;
    assert!(labels.iter().any(|l| l == "parts-0") && labels.iter().any(|l| l == "text-0"), "{labels:?}");
    let log = daemon.log();
    assert!(
        log.contains("message over max_message_size: the rules see its header only")
            && log.contains("size=5242")
            && log.contains("max_message_size=10485760"),
        "the cut is logged with the sizes:\n{log}"
    );
    next_message_is_sorted(env, &user, &daemon, 1).await;

    // A 1 MB header (folded, 14,000 lines) and a thousand more headers than a view keeps.
    let huge = huge_header(1 << 20);
    let filler: String = (0..1500).map(|i| format!("X-Filler: {i}\r\n")).collect();
    let raw = with_headers(
        &(huge + filler.as_str()),
        message("a@example.com", &user.address, "hostile header", "small body"),
    );
    assert!(raw.len() > 1 << 20);
    env.append(&user, "INBOX", &raw, &[], None).await.unwrap();
    let labels = arrived(env, &user, "Sorted", "hostile header", || daemon.log()).await;
    // The view keeps the first 1,000 headers: the message's own 7, X-Huge, 992 of the fillers.
    assert!(labels.iter().any(|l| l == "headers-992"), "{labels:?}");
    next_message_is_sorted(env, &user, &daemon, 2).await;

    // 10,000 MIME parts: parsed, the attachments capped at 1,000 for the rules.
    let raw = many_parts(&user, "hostile parts", 10_000);
    env.append(&user, "INBOX", &raw, &[], None).await.unwrap();
    let labels = arrived(env, &user, "Sorted", "hostile parts", || daemon.log()).await;
    assert!(labels.iter().any(|l| l == "parts-1000"), "{labels:?}");
    next_message_is_sorted(env, &user, &daemon, 3).await;

    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_no_panic(&log);
    assert!(env.list(&user, "INBOX").await.unwrap().is_empty(), "everything was sorted");
}

/// Folder names that have broken IMAP clients: quoting, escaping, wildcards, modified UTF-7.
fn odd_names() -> Vec<String> {
    let mut names: Vec<String> = ["With Space", "Quote\"d", "Back\\slash", "Per%cent", "Star*", "&Amp", "Größe/日本語"]
        .into_iter()
        .map(String::from)
        .collect();
    names.push(format!("Long{}", "o".repeat(200)));
    // Longer than a file name may be: Dovecot's maildir refuses it.
    names.push(format!("Too{}", "o".repeat(300)));
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_folder_names_are_moved_into_or_refused_clearly_and_the_next_message_is_sorted() {
    let env = TestEnv::shared();
    let (user, _setup, daemon) = start(env);
    let mut outcomes = Vec::new();
    for (n, name) in odd_names().into_iter().enumerate() {
        let subject = format!("odd {n}");
        let header = format!("X-Folder: {name}\r\n");
        env.deliver_lmtp(&user, &with_headers(&header, message("a@example.com", &user.address, &subject, "x")))
            .await
            .unwrap();
        let server_name = tidings::imap::mutf7::encode(&name);
        // Either it is in the folder, or the daemon said clearly that it cannot be.
        let outcome =
            wait_for(Duration::from_secs(30), format!("`{subject}` moved to {name:?} or refused"), || async {
                let listed = env.list(&user, &server_name).await.unwrap_or_default();
                if listed.iter().any(|m| m.subject.as_deref() == Some(subject.as_str())) {
                    return Ok("moved".to_owned());
                }
                let log = daemon.log();
                let named = |l: &&str| l.contains(&server_name) || l.contains(&name);
                match log.lines().filter(|l| l.contains("ERROR") && l.contains("cannot")).find(named) {
                    Some(line) => Ok(format!("refused: {line}")),
                    None => Err(format!("neither yet; log:\n{log}")),
                }
            })
            .await;
        eprintln!("{name:?} ({server_name}): {outcome}");
        outcomes.push((name, outcome));
        next_message_is_sorted(env, &user, &daemon, n).await;
    }
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_no_panic(&log);
    let (too_long, others) = outcomes.split_last().unwrap();
    assert!(others.iter().all(|(_, o)| o == "moved"), "Dovecot takes these names: {others:#?}");
    assert!(too_long.1.starts_with("refused: "), "{too_long:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_folder_names_are_watched() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let watched = ["With Space", "Quote\"d", "Back\\slash", "Per%cent", "Star*", "&Amp", "Größe/日本語"];
    {
        let mut session = env.imap(&user).await.unwrap();
        for name in watched {
            session.create(tidings::imap::mutf7::encode(name)).await.unwrap();
        }
        session.logout().await.unwrap();
    }
    // YAML single quotes: no escapes inside, a quote is doubled.
    let list: Vec<String> = watched.iter().map(|n| format!("'{}'", n.replace('\'', "''"))).collect();
    let setup = Setup::new(env, &user, &[("hostile.rhai", RULE)], &format!("mailboxes: [{}]", list.join(", ")));
    let daemon = Daemon::start(&setup.config, watched.len());
    for (n, name) in watched.iter().enumerate() {
        let subject = format!("sort-me from {n}");
        let raw = message("a@example.com", &user.address, &subject, "x");
        env.append(&user, &tidings::imap::mutf7::encode(name), &raw, &[], None).await.unwrap();
        arrived(env, &user, "Sorted", &subject, || daemon.log()).await;
    }
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_no_panic(&log);
    for name in watched {
        assert!(log.contains(&format!("mailbox{{mailbox={name}}}")), "a watcher for {name:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unparseable_server_line_mid_idle_and_mid_fetch_is_reported_and_the_watcher_reconnects() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let proxy = GarbageProxy::start(env.imap_port).await;
    let setup = Setup::new(env, &user, &[("hostile.rhai", RULE)], "allow_insecure: true");
    // Through the proxy, in plaintext (the proxy cannot inject into TLS).
    let config = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(&format!("port: {}, tls: implicit", env.imaps_port), &format!("port: {}, tls: none", proxy.port));
    std::fs::write(&setup.config, config).unwrap();
    let daemon = Daemon::start(&setup.config, 1);

    let mut reconnects = 0;
    // The line IDLE wakes up with, then the answer to the watcher's header FETCH.
    for (n, needle) in [" EXISTS", "BODY[HEADER]"].into_iter().enumerate() {
        // Once the watcher idles: mail it finds while catching up passes no IDLE to inject into.
        // A minute, not less: on a loaded 2-core CI machine the debug daemon's start (or its
        // reconnect after the garbage) was seen to take longer than 20 s; it returns at once
        // when the watcher idles, and says what the daemon logged if it never does.
        crate::harness::wait_for(Duration::from_secs(60), "the watcher idling through the proxy", || async {
            match proxy.idling() {
                0 => Err(format!("no connection has sent IDLE; daemon log:\n{}", daemon.log())),
                _ => Ok(()),
            }
        })
        .await;
        proxy.arm(needle);
        next_message_is_sorted(env, &user, &daemon, n).await;
        assert_eq!(proxy.injected(), n + 1, "the garbage before {needle:?} was sent");
        let log = daemon.log();
        let lost: Vec<&str> = log.lines().filter(|l| l.contains("connection lost; reconnecting")).collect();
        assert!(lost.len() > reconnects, "no reconnect after garbage before {needle:?}:\n{log}");
        let line = lost[reconnects];
        assert!(
            line.contains("for account `t`") && line.contains("mailbox `INBOX`"),
            "the error names the account and mailbox: {line}"
        );
        assert!(
            line.contains("the server sent a line that is not IMAP: `*)(\\u{1}\u{fffd} this is not IMAP (((`"),
            "the error shows the line: {line}"
        );
        eprintln!("garbage before {needle:?}: {line}");
        reconnects = lost.len();
    }
    // And once more with nothing injected: the watcher is back to normal.
    next_message_is_sorted(env, &user, &daemon, 2).await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    assert_no_panic(&log);
}
