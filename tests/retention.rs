//! Retention through the real daemon, Postfix and Dovecot: a sent reply's content is gone from
//! the store once it is done, and after a pruning pass that deleted the reply itself the
//! "one reply per sender" memory still holds.

use std::time::Duration;

use tidings::store::retention::content_dropped;
use tidings::store::{ActionState, Store};

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, wait_for};
use crate::outbound_mail::{mail, settled, smtp_account};

const BODY: &str = "I am away until Monday, see you then.";

#[tokio::test(flavor = "multi_thread")]
async fn a_done_reply_keeps_no_content_and_pruning_keeps_the_reply_once_memory() {
    let env = TestEnv::shared();
    let (me, ann) = (env.new_user(), env.new_user());
    let rule = format!(r#"reply(#{{ body: "{BODY}", days: 60, handle: "away" }});"#);
    let setup = Setup::new(env, &me, &[("away.rhai", &rule)], &smtp_account(env, &me, ""));
    let daemon = Daemon::start(&setup.config, 1);

    let (_, first) = mail(&ann.address, &me.address, "Lunch?", "");
    env.deliver_lmtp_to(&ann.address, &[&me.address], &first).await.unwrap();
    let rows = settled(&setup, "reply", 1).await;
    assert_eq!(rows[0].state, ActionState::Done, "{rows:?}\n{}", daemon.log());
    let payload = &rows[0].payload;
    println!("a done reply's stored payload: {} bytes: {payload}", payload.to_string().len());
    assert!(content_dropped(payload), "{payload}");
    assert!(!payload.to_string().contains("away until"), "the body is not kept: {payload}");
    assert!(payload.get("original").is_none(), "nor the original's headers: {payload}");
    assert_eq!(payload["to"].as_str().map(str::to_lowercase), Some(ann.address.to_lowercase()), "{payload}");
    wait_for(Duration::from_secs(30), "the reply in Ann's INBOX", || async {
        let listed = env.list(&ann, "INBOX").await?;
        anyhow::ensure!(!listed.is_empty(), "no reply yet");
        Ok::<_, anyhow::Error>(())
    })
    .await;
    let (_, log) = daemon.stop();

    // A retention far shorter than the reply's 60 days: the next start prunes the done reply.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let short = "retention: { actions: 1s, history: 1s, rule_failures: 1s, reply_log: 1s, collected: 1s }\n";
    std::fs::write(&setup.config, format!("{config}{short}")).unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    daemon.wait_log_count("store pruned", 1, Duration::from_secs(20));
    let store = Store::open(&setup.state()).await.unwrap();
    assert!(store.list_outbox(None, 100).await.unwrap().is_empty(), "the done reply was pruned\n{log}");
    let history = tidings::store::MessageQuery::Uid { uid: 1, account: None, mailbox: None };
    assert!(store.history(history).await.unwrap().is_empty(), "so was the history of its message");
    let memory = store.last_reply("t", "away", &ann.address.to_lowercase()).await.unwrap();
    assert!(memory.is_some(), "the reply log row outlives a 1 s retention: it is needed for 60 days");
    drop(store);

    // Ann writes again: she got her reply within 60 days, so none goes out.
    let (_, second) = mail(&ann.address, &me.address, "Lunch tomorrow then?", "");
    env.deliver_lmtp_to(&ann.address, &[&me.address], &second).await.unwrap();
    let rows = settled(&setup, "reply", 1).await;
    assert_eq!(rows[0].state, ActionState::Suppressed, "{rows:?}\n{}", daemon.log());
    let reason = rows[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("already replied"), "{reason}");
    assert!(content_dropped(&rows[0].payload), "a suppressed reply keeps no content either: {}", rows[0].payload);
    // Nothing more reaches Ann (given a moment, as Postfix would need for one).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = env.list(&ann, "INBOX").await.unwrap().len();
    let (_, log) = daemon.stop();
    assert_eq!(still, 1, "exactly one reply reached Ann\n{log}");
}
