//! The new actions through the real binary and Dovecot: `archive()` lands in the special-use
//! \Archive folder; with `run --once`, a reply from an account without an SMTP server fails
//! saying so, and a webhook whose receiver is unreachable stays pending for the next run
//! instead of holding the run up.

use std::time::Duration;

use tidings::store::{ActionState, Store};

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, message};
use crate::watch::ids_in;

const RULE: &str = r#"
if msg.subject.starts_with("archive-me") {
    label("archived");
    archive();
    reply("Got it, thanks.");
    webhook("hook", #{ subject: msg.subject, from: msg.from });
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn archive_moves_to_the_archive_folder_and_once_does_not_wait_for_outbound_actions() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let raw = message("ann@example.com", &user.address, "archive-me please", "x");
    // The reply goes to the envelope sender, which LMTP's MAIL FROM makes the Return-Path.
    env.deliver_lmtp_to("ann@example.com", &[&user.address], &raw).await.unwrap();
    let setup = Setup::new(env, &user, &[("archive.rhai", RULE)], "backfill: all");
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, config + "webhooks:\n  hook: { url: \"http://127.0.0.1:1/x\" }\n").unwrap();

    let (status, log) = Daemon::spawn(&setup.config, &["run", "--once"]).wait(Duration::from_secs(60));
    assert!(status.success(), "--once must finish with outbound actions still pending:\n{log}");
    let archived = env.list(&user, "Archive").await.unwrap();
    assert_eq!(archived.len(), 1, "{log}");
    assert!(archived[0].flags.iter().any(|f| f == "archived"), "{archived:#?}");
    assert!(ids_in(env, &user, "INBOX").await.is_empty());

    let store = Store::open(&setup.state()).await.unwrap();
    let pending = store.list_outbox(Some(ActionState::Pending), 10).await.unwrap();
    let kinds: Vec<&str> = pending.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["webhook"], "{pending:#?}");
    assert_eq!(pending[0].attempts, 1, "tried once, then left for the next run: {pending:#?}");
    assert!(pending[0].last_error.is_some(), "{pending:#?}");
    let failed = store.list_outbox(Some(ActionState::Failed), 10).await.unwrap();
    let [reply] = failed.as_slice() else { panic!("one failed reply: {failed:#?}") };
    assert_eq!(reply.kind, "reply");
    assert_eq!(reply.payload["to"], "ann@example.com");
    assert_eq!(reply.payload["original"]["subject"], "archive-me please");
    assert!(reply.last_error.as_deref().unwrap_or_default().contains("no `smtp:` server"), "{reply:#?}");
    let done = store.list_outbox(Some(ActionState::Done), 10).await.unwrap();
    let mut kinds: Vec<&str> = done.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["add_flags", "archive"]);
}
