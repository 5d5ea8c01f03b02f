//! The history of a message, on both backends.

use serde_json::json;

use super::{Decided, MessageQuery};
use crate::store::{ActionState, Checkpoint, MessagePlan, NewAction, test_backends};

/// The plan of message `uid` of work's INBOX: two actions by two rules, one failed rule.
fn plan(uid: u32, message_id: Option<&str>) -> MessagePlan {
    let act = |key: &str, rule: &str| {
        NewAction::new(format!("{key}-{uid}"), "work", key, json!({})).for_message("INBOX", 7, uid).by_rule(rule)
    };
    MessagePlan {
        checkpoint: Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 7, last_uid: uid },
        actions: vec![act("add_flags", "a.rhai"), act("move", "b.rhai")],
        failures: vec![("c.rhai".into(), "boom".into())],
        gmail_msgid: None,
        decided: Decided {
            uid: None,
            message_id: message_id.map(str::to_owned),
            matched: vec!["a.rhai".into(), "b.rhai".into()],
            stopped_by: Some("b.rhai".into()),
        },
    }
}

#[tokio::test]
async fn a_committed_message_is_found_with_its_actions_and_failures() {
    for (backend, store) in test_backends::each().await {
        store.commit_plans(vec![plan(5, Some("abc@example.com")), plan(6, None)]).await.unwrap();
        let found = store.history(MessageQuery::MessageId(" <abc@example.com>".into())).await.unwrap();
        assert_eq!(found.len(), 1, "{backend}");
        let m = &found[0];
        let head = (m.account.as_str(), m.mailbox.as_str(), m.uidvalidity, m.uid, m.message_id.as_deref());
        assert_eq!(head, ("work", "INBOX", 7, 5, Some("abc@example.com")), "{backend}");
        assert_eq!(
            (&m.matched[..], m.stopped_by.as_deref()),
            (&["a.rhai".to_owned(), "b.rhai".to_owned()][..], Some("b.rhai")),
            "{backend}"
        );
        let actions: Vec<(&str, ActionState)> = m.actions.iter().map(|a| (a.key.as_str(), a.state)).collect();
        assert_eq!(actions, [("add_flags-5", ActionState::Pending), ("move-5", ActionState::Pending)], "{backend}");
        let failures: Vec<(&str, &str, u32)> =
            m.failures.iter().map(|f| (f.rule.as_str(), f.error.as_str(), f.uid)).collect();
        assert_eq!(failures, [("c.rhai", "boom", 5)], "{backend}");
        // By UID, narrowed or not.
        let by_uid =
            |uid, account: Option<&str>| MessageQuery::Uid { uid, account: account.map(str::to_owned), mailbox: None };
        let found = store.history(by_uid(6, Some("work"))).await.unwrap();
        assert_eq!(
            found.iter().map(|m| (m.uid, m.message_id.clone(), m.actions.len())).collect::<Vec<_>>(),
            [(6, None, 2)],
            "{backend}"
        );
        assert!(store.history(by_uid(6, Some("home"))).await.unwrap().is_empty(), "{backend}");
        assert!(
            store.history(MessageQuery::MessageId("other@example.com".into())).await.unwrap().is_empty(),
            "{backend}"
        );
    }
}
