//! Rule failures, on both backends.

use chrono::{TimeDelta, Utc};

use crate::store::{Checkpoint, Decided, MessagePlan, test_backends};

/// Message `uid` of work's INBOX, on which each of `failed` failed with `error`.
fn plan(uid: u32, message_id: Option<&str>, failed: &[&str], error: &str) -> MessagePlan {
    MessagePlan {
        checkpoint: Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 7, last_uid: uid },
        actions: Vec::new(),
        failures: failed.iter().map(|rule| ((*rule).to_owned(), format!("{error} {uid}"))).collect(),
        gmail_msgid: None,
        decided: Decided { uid: None, message_id: message_id.map(str::to_owned), ..Decided::default() },
    }
}

#[tokio::test]
async fn failures_since_a_moment_are_counted_per_rule_with_the_last_message_and_error() {
    for (backend, store) in test_backends::each().await {
        let before = Utc::now() - TimeDelta::seconds(1);
        store
            .commit_plans(vec![
                plan(1, Some("one@x"), &["b.rhai", "a.rhai"], "boom"),
                plan(2, Some("two@x"), &["b.rhai"], "bang"),
                plan(3, None, &["a.rhai"], "oops"),
                plan(4, Some("fine@x"), &[], ""),
            ])
            .await
            .unwrap();
        let failing = store.rule_failures_since(before).await.unwrap();
        let seen: Vec<_> = failing
            .iter()
            .map(|f| (f.rule.as_str(), f.failures, f.last_error.as_str(), f.uid, f.message_id.as_deref()))
            .collect();
        assert_eq!(seen, [("a.rhai", 2, "oops 3", 3, None), ("b.rhai", 2, "bang 2", 2, Some("two@x"))], "{backend}");
        assert!(failing.iter().all(|f| f.account == "work" && f.mailbox == "INBOX" && f.last_at >= before));
        let later = Utc::now() + TimeDelta::seconds(1);
        assert!(store.rule_failures_since(later).await.unwrap().is_empty(), "{backend}: none since then");
    }
}
