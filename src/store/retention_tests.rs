//! Retention through the public handle, on both backends: content dropped when an action
//! settles, old rows pruned in batches, dead letters and the reply-once memory kept.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use super::retention::content_dropped;
use super::test_backends::each;
use super::{
    ActionId, ActionState, Checkpoint, MessagePlan, MessageQuery, NewAction, OncePer, Outcome, Prunable, SendGate,
    SendStart, Store,
};

/// A reply as the rules store it: where it goes, and the content that must not outlive it.
fn reply_payload(to: &str) -> Value {
    json!({
        "kind": "reply", "to": to, "subject": "Re: private matters", "body": "I am away.", "days": 60,
        "handle": "away", "original": { "from": to, "subject": "private matters", "message_id": "m@x" },
    })
}

/// Stores one message's plan (uid `uid` in work/INBOX), with a rule failure, and returns the
/// ids of its actions.
async fn plan(store: &Store, uid: u32, actions: Vec<(&str, Value)>) -> Vec<ActionId> {
    let checkpoint = Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 9, last_uid: uid };
    let actions = actions
        .into_iter()
        .enumerate()
        .map(|(n, (kind, payload))| {
            NewAction::new(format!("{uid}#{n}"), "work", kind, payload).for_message("INBOX", 9, uid)
        })
        .collect();
    let failures = vec![("broken.rhai".to_owned(), "boom".to_owned())];
    let plan = MessagePlan { checkpoint, actions, failures, gmail_msgid: None, decided: Default::default() };
    store.commit_plans(vec![plan]).await.unwrap()
}

/// Claims every due action, returning them by id.
async fn claim_all(store: &Store) -> Vec<ActionId> {
    let mut ids: Vec<ActionId> = store.claim_due(Utc::now(), 1000).await.unwrap().iter().map(|a| a.id).collect();
    ids.sort();
    ids
}

async fn payload(store: &Store, id: ActionId) -> Value {
    store.action(id).await.unwrap().unwrap().payload
}

#[tokio::test]
async fn a_settled_action_keeps_where_it_went_but_not_what_it_said() {
    for (backend, store) in each().await {
        let ids = plan(
            &store,
            1,
            vec![
                ("reply", reply_payload("ann@x.org")),
                ("forward", json!({"to": ["bob@x.org"], "text": "secret", "attached": "c2VjcmV0", "original": {}})),
                ("webhook", json!({"endpoint": "chat", "data": {"secret": 1}, "message": {"subject": "s"}})),
                ("command", json!({"endpoint": "notify", "data": "secret"})),
                ("send", json!({"to": ["c@x.org"], "cc": [], "subject": "secret", "body": "secret"})),
                ("move", json!({"mailbox": "Archive"})),
            ],
        )
        .await;
        // The send is dropped by a person before it runs; the rest are claimed.
        store.drop_action(ids[4]).await.unwrap();
        assert_eq!(claim_all(&store).await, [ids[0], ids[1], ids[2], ids[3], ids[5]], "{backend}");
        store.complete_with(ids[0], None).await.unwrap();
        let outcomes = vec![
            (ids[1], Outcome::Failed { error: "550 no".into() }),
            (ids[2], Outcome::Suppressed { reason: "not wanted".into() }),
            (ids[3], Outcome::Done),
            (ids[5], Outcome::Done),
        ];
        store.record_outcomes(outcomes).await.unwrap();

        let reply = payload(&store, ids[0]).await;
        assert_eq!(
            reply,
            json!({"kind": "reply", "to": "ann@x.org", "days": 60, "handle": "away", "content_dropped": true}),
            "{backend}"
        );
        let failed = payload(&store, ids[1]).await;
        assert_eq!(failed["attached"], "c2VjcmV0", "{backend}: a dead letter keeps its content for a retry");
        assert!(!content_dropped(&failed), "{backend}");
        let suppressed = payload(&store, ids[2]).await;
        assert_eq!(suppressed, json!({"endpoint": "chat", "content_dropped": true}), "{backend}");
        assert_eq!(payload(&store, ids[3]).await, json!({"endpoint": "notify", "content_dropped": true}), "{backend}");
        let dropped = payload(&store, ids[4]).await;
        assert_eq!(dropped, json!({"to": ["c@x.org"], "cc": [], "content_dropped": true}), "{backend}");
        assert_eq!(payload(&store, ids[5]).await, json!({"mailbox": "Archive"}), "{backend}: a move holds no content");
        let target = crate::tooling::outbox::target(&store.action(ids[0]).await.unwrap().unwrap());
        assert_eq!(target, "ann@x.org", "{backend}: `tidings outbox` still says where it went");
        let line = crate::tooling::outbox::json_line(&store.action(ids[0]).await.unwrap().unwrap(), Utc::now());
        assert_eq!((line["target"].as_str(), line["content_dropped"].as_bool()), (Some("ann@x.org"), Some(true)));

        // A retried dead letter still has all it needs, and loses it once it is done.
        store.retry(ids[1]).await.unwrap();
        assert_eq!(claim_all(&store).await, [ids[1]], "{backend}");
        store.record_outcome(ids[1], Outcome::Done).await.unwrap();
        assert_eq!(payload(&store, ids[1]).await, json!({"to": ["bob@x.org"], "content_dropped": true}), "{backend}");
    }
}

#[tokio::test]
async fn content_left_in_settled_actions_is_dropped_in_the_background() {
    for (backend, store) in each().await {
        let ids =
            plan(&store, 1, vec![("reply", reply_payload("ann@x.org")), ("reply", reply_payload("bob@x.org"))]).await;
        claim_all(&store).await;
        store.record_outcome(ids[0], Outcome::Done).await.unwrap();
        store.record_outcome(ids[1], Outcome::Failed { error: "no".into() }).await.unwrap();
        // As a store from before content was dropped at once had it.
        restore_content(&store, ids[0]).await;
        assert_eq!(payload(&store, ids[0]).await["body"], "I am away.", "{backend}");
        let later = Utc::now() + Duration::seconds(1);
        assert_eq!(store.prune(Prunable::Content, later, 500).await.unwrap(), 1, "{backend}");
        assert!(content_dropped(&payload(&store, ids[0]).await), "{backend}");
        assert_eq!(payload(&store, ids[1]).await["body"], "I am away.", "{backend}: the dead letter keeps it");
        assert_eq!(store.prune(Prunable::Content, later, 500).await.unwrap(), 0, "{backend}: once is enough");
    }
}

/// Puts the whole reply payload back into action `id`, behind the store's back.
async fn restore_content(store: &Store, id: ActionId) {
    let text = reply_payload("ann@x.org").to_string();
    match store.fleet() {
        Some(pg) => {
            let client = pg.client().await.unwrap();
            let payload: Value = serde_json::from_str(&text).unwrap();
            client.execute("UPDATE actions SET payload = $1 WHERE id = $2", &[&payload, &id.0]).await.unwrap();
        }
        None => {
            store
                .call(move |conn| {
                    conn.execute("UPDATE actions SET payload = ?1 WHERE id = ?2", (text, id.0)).unwrap();
                    Ok(())
                })
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn pruning_goes_in_batches_and_keeps_dead_letters_pending_and_recent_rows() {
    for (backend, store) in each().await {
        // Old: seven messages with a done move each, a dead letter, an uncertain and a pending.
        let mut old = Vec::new();
        for uid in 1..=7 {
            old.extend(plan(&store, uid, vec![("move", json!({"mailbox": "A"}))]).await);
        }
        let dead =
            plan(&store, 8, vec![("webhook", json!({"endpoint": "e"})), ("webhook", json!({"endpoint": "f"}))]).await;
        let claimed = claim_all(&store).await;
        assert_eq!(claimed.len(), 9, "{backend}");
        for id in &old {
            store.record_outcome(*id, Outcome::Done).await.unwrap();
        }
        store.record_outcome(dead[0], Outcome::Failed { error: "gone".into() }).await.unwrap();
        store.recover_in_flight().await.unwrap();
        plan(&store, 9, vec![("move", json!({"mailbox": "Later"}))]).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let cutoff = Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // Recent: one more message, its action done; the old one waits for a retry.
        let recent = plan(&store, 10, vec![("move", json!({"mailbox": "B"}))]).await;
        let [waiting, _] = claim_all(&store).await[..] else { panic!("{backend}: two claimed") };
        store.record_outcome(recent[0], Outcome::Done).await.unwrap();
        let later = Outcome::Retry { next_attempt_at: Utc::now() + Duration::hours(1), error: "busy".into() };
        store.record_outcome(waiting, later).await.unwrap();

        let mut batches = Vec::new();
        loop {
            let n = store.prune(Prunable::Actions, cutoff, 3).await.unwrap();
            batches.push(n);
            if n < 3 {
                break;
            }
        }
        assert_eq!(batches, [3, 3, 1], "{backend}: at most a batch per call");
        let left: Vec<(ActionId, ActionState)> =
            store.list_outbox(None, 100).await.unwrap().iter().rev().map(|a| (a.id, a.state)).collect();
        assert_eq!(
            left,
            [
                (dead[0], ActionState::Failed),
                (dead[1], ActionState::Uncertain),
                (waiting, ActionState::Pending),
                (recent[0], ActionState::Done)
            ],
            "{backend}: dead letters, what still waits and what is recent are kept"
        );

        // History: the messages and rule failures decided before the cutoff go, in batches too.
        assert_eq!(store.prune(Prunable::Messages, cutoff, 5).await.unwrap(), 5, "{backend}");
        assert_eq!(store.prune(Prunable::Messages, cutoff, 5).await.unwrap(), 4, "{backend}");
        assert_eq!(store.prune(Prunable::RuleFailures, cutoff, 100).await.unwrap(), 9, "{backend}");
        let history = store.history(MessageQuery::Uid { uid: 10, account: None, mailbox: None }).await.unwrap();
        assert_eq!((history.len(), history[0].failures.len()), (1, 1), "{backend}: the recent message is whole");
        let gone = store.history(MessageQuery::Uid { uid: 3, account: None, mailbox: None }).await.unwrap();
        assert!(gone.is_empty(), "{backend}");
        for what in Prunable::ALL {
            assert_eq!(store.prune(what, cutoff, 100).await.unwrap(), 0, "{backend}: {what:?} again prunes nothing");
        }
    }
}

fn reply_start(sender: &str, days: u32, now: chrono::DateTime<Utc>) -> SendStart {
    SendStart {
        account: "work".into(),
        kind: "reply".into(),
        once_per: Some(OncePer { handle: "away".into(), sender: sender.into(), days }),
        daily_limit: 100,
        recipient: sender.into(),
        forward_rate: None,
        now,
    }
}

/// Sends a reply to `sender` at `at` through the gate, as the dispatcher does.
async fn send_reply(store: &Store, uid: u32, sender: &str, days: u32, at: chrono::DateTime<Utc>) -> SendGate {
    let ids = plan(store, uid, vec![("reply", reply_payload(sender))]).await;
    assert_eq!(claim_all(store).await, ids);
    let gate = store.begin_send(ids[0], reply_start(sender, days, at)).await.unwrap();
    if gate == SendGate::Go {
        store.complete_with(ids[0], None).await.unwrap();
    }
    gate
}

#[tokio::test]
async fn the_reply_once_memory_outlives_a_shorter_retention() {
    for (backend, store) in each().await {
        let now = Utc::now();
        let forty_days_ago = now - Duration::days(40);
        // Ann got a reply that holds for 60 days, Bob one that held for 7, forty days ago.
        assert_eq!(send_reply(&store, 1, "ann@x.org", 60, forty_days_ago).await, SendGate::Go, "{backend}");
        assert_eq!(send_reply(&store, 2, "bob@x.org", 7, forty_days_ago).await, SendGate::Go, "{backend}");
        // A 30-day retention of everything, the actions themselves included.
        let month_ago = now - Duration::days(30);
        assert_eq!(store.prune(Prunable::ReplyLog, month_ago, 500).await.unwrap(), 1, "{backend}: Bob's row only");
        store.prune(Prunable::Actions, now + Duration::seconds(1), 500).await.unwrap();
        assert_eq!(store.outbox_counts().await.unwrap().done, 0, "{backend}");

        let again = send_reply(&store, 3, "ann@x.org", 60, now).await;
        let when = forty_days_ago.timestamp_millis();
        assert!(
            matches!(again, SendGate::AlreadyReplied { at } if at.timestamp_millis() == when),
            "{backend}: {again:?}"
        );
        assert_eq!(send_reply(&store, 4, "bob@x.org", 7, now).await, SendGate::Go, "{backend}: his period is over");
    }
}

/// Two instances of a fleet pruning the same PostgreSQL store at once: every row is deleted
/// once, none is left, neither waits for the other's batches or fails.
#[tokio::test]
async fn instances_pruning_one_store_at_once_delete_each_row_once() {
    let Some((url, ca_file)) = super::test_backends::database().await else { return };
    let open = || Store::open_postgres(&url, Some(&ca_file), None);
    let (a, b) = (open().await.unwrap(), open().await.unwrap());
    const ROWS: usize = 1200;
    let actions = (0..ROWS).map(|n| NewAction::new(format!("k{n}"), "work", "move", json!({"mailbox": "A"}))).collect();
    a.commit_schedule_chunk(actions).await.unwrap();
    let done = a.claim_due(Utc::now(), ROWS).await.unwrap().iter().map(|x| (x.id, Outcome::Done)).collect();
    a.record_outcomes(done).await.unwrap();
    let later = Utc::now() + Duration::seconds(1);
    let prune_all = |store: Store| async move {
        let mut total = 0;
        loop {
            let n = store.prune(Prunable::Actions, later, 100).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    };
    let (by_a, by_b) = tokio::join!(tokio::spawn(prune_all(a.clone())), tokio::spawn(prune_all(b)));
    let (by_a, by_b) = (by_a.unwrap(), by_b.unwrap());
    println!("two instances pruned {ROWS} rows at once: {by_a} and {by_b}");
    assert_eq!(by_a + by_b, ROWS as u64, "each row deleted once ({by_a} + {by_b})");
    assert_eq!(a.outbox_counts().await.unwrap().done, 0);
}

#[tokio::test]
async fn consumed_collected_items_and_old_gmail_ids_go_waiting_items_stay() {
    use super::{RunOutcome, ScheduleRun};
    for (backend, store) in each().await {
        let collect = |key: &str| NewAction::new(key, "work", "collect", json!({"name": "digest", "data": {"n": 1}}));
        store.commit_schedule_chunk(vec![collect("c1"), collect("c2")]).await.unwrap();
        let loaded = store.collected("work", 10).await.unwrap();
        let now = Utc::now();
        let outcome =
            RunOutcome { started_at: now, finished_at: now, messages: 0, actions: 0, failures: 0, error: None };
        let consume = Some(("work".to_owned(), vec!["digest".to_owned()], loaded.up_to));
        let run = ScheduleRun { name: "digest".into(), fired_at: now, actions: Vec::new(), consume, outcome };
        store.finish_schedule_run(run).await.unwrap();
        store.commit_schedule_chunk(vec![collect("c3")]).await.unwrap();
        let checkpoint = Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 9, last_uid: 1 };
        let gmail = MessagePlan {
            checkpoint,
            actions: Vec::new(),
            failures: Vec::new(),
            gmail_msgid: Some(77),
            decided: Default::default(),
        };
        store.commit_plans(vec![gmail]).await.unwrap();

        let later = Utc::now() + Duration::seconds(1);
        assert_eq!(store.prune(Prunable::Collected, later, 500).await.unwrap(), 2, "{backend}: the consumed two");
        let waiting = store.collected("work", 10).await.unwrap();
        assert_eq!(waiting.items["digest"].len(), 1, "{backend}: the waiting one stays");
        assert_eq!(store.prune(Prunable::GmailSeen, later, 500).await.unwrap(), 1, "{backend}");
        assert_eq!(store.prune(Prunable::GmailSeen, later, 500).await.unwrap(), 0, "{backend}");
    }
}
