//! Gmail semantics against the SCRIPTED PEER in `harness/gmail_peer.rs` (not Gmail: a local
//! server speaking Gmail's documented extensions X-GM-EXT-1, X-GM-LABELS, X-GM-MSGID,
//! X-GM-THRID, with German special-use folder names). The real binary watches INBOX and a
//! label folder showing the same message; the session's fetch and label calls are checked
//! directly.

use std::path::PathBuf;
use std::time::Duration;

use tidings::auth::Credentials;
use tidings::config::{Config, Secret};
use tidings::imap::{FlagOp, Login, Session, Timeouts, UidSet};
use tidings::store::{ActionState, Store};

use crate::daemon::Daemon;
use crate::harness::message;
use gmail_peer::{GMAIL_PASSWORD, GMAIL_USER, GmailPeer};

#[path = "harness/gmail_peer.rs"]
mod gmail_peer;

/// A config directory for an account on the peer watching INBOX and Receipts, with `rule`.
fn setup(peer: &GmailPeer, rule: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/gmail.rhai"), rule).unwrap();
    std::fs::write(dir.path().join("password"), GMAIL_PASSWORD).unwrap();
    let yaml = format!(
        "state: state.db\nrules: rules\naccounts:\n  gmail:\n    imap: {{ host: 127.0.0.1, port: {port}, tls: none }}\n    \
         allow_insecure: true\n    username: {GMAIL_USER}\n    password_file: password\n    from: {GMAIL_USER}\n    \
         backfill: all\n    mailboxes: [INBOX, Receipts]\n",
        port = peer.port
    );
    let config = dir.path().join("tidings.yaml");
    std::fs::write(&config, yaml).unwrap();
    (dir, config)
}

/// The session's login, as the daemon builds it from the config.
fn login(peer: &GmailPeer) -> Login {
    let (_dir, config) = setup(peer, "");
    let config = Config::load(&config).unwrap();
    Login::new(&config.accounts[0], &Credentials::new(&config.accounts[0], Secret::new(GMAIL_PASSWORD.to_owned())))
}

#[tokio::test]
async fn a_session_reads_gmail_attributes_resolves_special_use_and_stores_labels() {
    let peer = GmailPeer::start(&["Grüße"]).await;
    let msgid = peer.add(&message("a@example.org", GMAIL_USER, "hello", "x"), &["\\Inbox", "Grüße", "\\Important"], 77);
    let mut session = Session::connect(&login(&peer), Timeouts::default()).await.unwrap();
    assert!(session.capabilities().gmail, "{:?}", session.capabilities().raw);

    session.select("INBOX").await.unwrap();
    let fetched = session.fetch_after(0, u64::MAX).await.unwrap();
    let [one] = fetched.as_slice() else { panic!("one message: {fetched:#?}") };
    let gmail = one.gmail.as_ref().expect("X-GM attributes on a Gmail server");
    assert_eq!((gmail.msgid, gmail.thread_id), (msgid, 77));
    assert_eq!(gmail.labels, ["Grüße", "\\Important", "\\Inbox"], "modified UTF-7 decoded");

    // Localised names are found by their special-use attribute, never by name.
    assert_eq!(session.special_use("\\Trash").await.unwrap().as_deref(), Some("[Gmail]/Papierkorb"));
    assert_eq!(session.special_use("\\All").await.unwrap().as_deref(), Some("[Gmail]/Alle Nachrichten"));
    assert_eq!(session.special_use("\\Junk").await.unwrap().as_deref(), Some("[Gmail]/Spam"));

    let uids = UidSet::new([one.uid]);
    session.store_labels(&uids, FlagOp::Add, &["Rechnungen 2026", "Grüße/Alt"]).await.unwrap();
    session.store_labels(&uids, FlagOp::Remove, &["\\Important"]).await.unwrap();
    let labels: Vec<String> = peer.message(msgid).labels.into_iter().collect();
    assert_eq!(labels, ["Grüße", "Grüße/Alt", "Rechnungen 2026", "\\Inbox"]);
    let sent = peer.commands();
    assert!(
        sent.iter().any(|c| c.ends_with("+X-GM-LABELS.SILENT (\"Rechnungen 2026\" \"Gr&APwA3w-e/Alt\")")),
        "{sent:#?}"
    );
}

#[tokio::test]
async fn store_labels_is_refused_where_there_are_no_gmail_labels() {
    let peer = GmailPeer::start(&[]).await;
    peer.add(&message("a@example.org", GMAIL_USER, "hello", "x"), &["\\Inbox"], 1);
    let mut session = Session::connect(&login(&peer), Timeouts::default()).await.unwrap();
    session.capabilities_mut().gmail = false;
    session.select("INBOX").await.unwrap();
    let error = session.store_labels(&UidSet::new([101]), FlagOp::Add, &["x"]).await.unwrap_err();
    assert!(error.to_string().contains("store +labels"), "{error}");
    assert!(format!("{error:?}").contains("X-GM-EXT-1"), "{error:?}");
}

const RULE: &str = r#"
if msg.subject.starts_with("receipt") {
    label("paid");
    if msg.labels.contains("Receipts") { label("seen-as-receipt"); }
    if msg.thread_id != "" { label("thread-" + msg.thread_id); }
    archive();
}
if msg.subject.starts_with("junk") { delete(); }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_labels_archives_deletes_and_acts_once_on_a_message_in_two_label_folders() {
    let peer = GmailPeer::start(&["Receipts"]).await;
    let receipt = peer.add(&message("shop@example.com", GMAIL_USER, "receipt 42", "x"), &["\\Inbox", "Receipts"], 9001);
    let junk = peer.add(&message("spam@example.com", GMAIL_USER, "junk offer", "x"), &["\\Inbox"], 9002);
    let (dir, config) = setup(&peer, RULE);

    let (status, log) = Daemon::spawn(&config, &["run", "--once"]).wait(Duration::from_secs(60));
    assert!(status.success(), "{log}");

    let receipt = peer.message(receipt);
    let labels: Vec<&str> = receipt.labels.iter().map(String::as_str).collect();
    assert_eq!(labels, ["Receipts", "paid", "seen-as-receipt", "thread-9001"], "archived: no \\Inbox; {log}");
    assert!(receipt.flags.is_empty(), "labels are not keywords on Gmail: {:?}", receipt.flags);
    let junk = peer.message(junk);
    let labels: Vec<&str> = junk.labels.iter().map(String::as_str).collect();
    assert_eq!(labels, ["\\Trash"], "deleted = moved to the \\Trash folder, whatever its name; {log}");
    let sent = peer.commands();
    assert!(sent.iter().any(|c| c.contains("UID MOVE") && c.ends_with("\"[Gmail]/Papierkorb\"")), "{sent:#?}");

    // Seen through INBOX and Receipts, the receipt was planned once: one archive, one label set.
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    let done = store.list_outbox(Some(ActionState::Done), 20).await.unwrap();
    let mut kinds: Vec<&str> = done.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["add_flags", "add_flags", "add_flags", "archive", "delete"], "{done:#?}");
    assert!(store.list_outbox(None, 20).await.unwrap().len() == done.len(), "nothing else is left");
    let stores = sent.iter().filter(|c| c.contains("-X-GM-LABELS.SILENT (\\Inbox)")).count();
    assert_eq!(stores, 1, "archived once: {sent:#?}");
}
