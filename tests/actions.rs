//! The new actions through the real binary and Dovecot: `archive()` lands in the special-use
//! \Archive folder; outbound actions (reply, webhook) are stored but left pending by the IMAP
//! executor, and `run --once` still finishes instead of waiting for them.

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
async fn archive_moves_to_the_archive_folder_and_outbound_actions_wait() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let raw = message("ann@example.com", &user.address, "archive-me please", "x");
    env.deliver_lmtp(&user, &raw).await.unwrap();
    let setup = Setup::new(env, &user, &[("archive.rhai", RULE)], "backfill: all");
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, config + "webhooks:\n  hook: { url: \"https://hooks.invalid/x\" }\n").unwrap();

    let (status, log) = Daemon::spawn(&setup.config, &["run", "--once"]).wait(Duration::from_secs(60));
    assert!(status.success(), "--once must finish with outbound actions still pending:\n{log}");
    let archived = env.list(&user, "Archive").await.unwrap();
    assert_eq!(archived.len(), 1, "{log}");
    assert!(archived[0].flags.iter().any(|f| f == "archived"), "{archived:#?}");
    assert!(ids_in(env, &user, "INBOX").await.is_empty());

    let store = Store::open(&setup.state()).await.unwrap();
    let pending = store.list_outbox(Some(ActionState::Pending), 10).await.unwrap();
    let mut kinds: Vec<&str> = pending.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["reply", "webhook"], "{pending:#?}");
    let reply = pending.iter().find(|a| a.kind == "reply").unwrap();
    assert_eq!(reply.payload["to"], "ann@example.com");
    assert_eq!(reply.payload["original"]["subject"], "archive-me please");
    let done = store.list_outbox(Some(ActionState::Done), 10).await.unwrap();
    let mut kinds: Vec<&str> = done.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["add_flags", "archive"]);
}
