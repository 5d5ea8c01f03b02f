//! Sending mail at most once, and what a person does with the outbox, through the public handle.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{Action, ActionId, ActionState, Error, NewAction, OncePer, Outcome, SendGate, SendStart, Store, sending};

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

const T0: i64 = 1_700_000_000_000;

/// Stores one action of `kind` per key for account "work", claims them all at `T0`, and
/// returns their ids in order.
async fn claimed(store: &Store, kind: &str, keys: &[&str]) -> Vec<ActionId> {
    let actions = keys
        .iter()
        .map(|key| NewAction::new(*key, "work", kind, json!({"to": "a@x.org"})).not_before(at(T0)))
        .collect();
    let ids = store.commit_schedule_plan("test", at(T0), actions).await.unwrap();
    assert_eq!(store.claim_due(at(T0), 100).await.unwrap().len(), keys.len());
    ids
}

fn reply_to(sender: &str, handle: &str, now: DateTime<Utc>) -> SendStart {
    SendStart {
        account: "work".into(),
        kind: "reply".into(),
        once_per: Some(OncePer { handle: handle.into(), sender: sender.into(), days: 7 }),
        daily_limit: 100,
        recipient: sender.into(),
        now,
    }
}

fn send_to(recipient: &str, now: DateTime<Utc>, daily_limit: u32) -> SendStart {
    SendStart {
        account: "work".into(),
        kind: "send".into(),
        once_per: None,
        daily_limit,
        recipient: recipient.into(),
        now,
    }
}

async fn get(store: &Store, id: ActionId) -> Action {
    store.action(id).await.unwrap().unwrap()
}

async fn logged(store: &Store, id: ActionId) -> Option<(String, DateTime<Utc>)> {
    store
        .call(move |conn| sending::logged(conn, id).map_err(|source| Error::Outbox { verb: "read", source }))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_second_reply_to_a_sender_within_days_is_suppressed() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let ids = claimed(&store, "reply", &["first", "again", "other-handle", "other-sender", "a-week-later"]).await;
    assert_eq!(store.begin_send(ids[0], reply_to("a@x.org", "vacation", t)).await.unwrap(), SendGate::Go);
    assert_eq!(get(&store, ids[0]).await.state, ActionState::Sending);
    assert_eq!(logged(&store, ids[0]).await, Some(("a@x.org".into(), t)));
    store.complete_with(ids[0], None).await.unwrap();

    let two_days = t + Duration::days(2);
    let gate = store.begin_send(ids[1], reply_to("a@x.org", "vacation", two_days)).await.unwrap();
    assert_eq!(gate, SendGate::AlreadyReplied { at: t });
    let suppressed = get(&store, ids[1]).await;
    assert_eq!((suppressed.state, suppressed.claimed_at), (ActionState::Suppressed, None));
    assert_eq!(
        suppressed.last_error.as_deref(),
        Some(
            "already replied to a@x.org at 2023-11-14 22:13:20 UTC (at most one reply per 7 days for handle \"vacation\")"
        )
    );
    assert_eq!(logged(&store, ids[1]).await, None, "a suppressed reply is not a send");

    let other_handle = store.begin_send(ids[2], reply_to("a@x.org", "other", two_days)).await.unwrap();
    let other_sender = store.begin_send(ids[3], reply_to("b@x.org", "vacation", two_days)).await.unwrap();
    assert_eq!((other_handle, other_sender), (SendGate::Go, SendGate::Go));
    let week = t + Duration::days(7);
    assert_eq!(store.begin_send(ids[4], reply_to("a@x.org", "vacation", week)).await.unwrap(), SendGate::Go);
}

#[tokio::test]
async fn forwards_and_new_messages_do_not_stop_a_reply() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let sends = claimed(&store, "send", &["notice"]).await;
    assert_eq!(store.begin_send(sends[0], send_to("a@x.org", t, 100)).await.unwrap(), SendGate::Go);
    let replies = claimed(&store, "reply", &["reply"]).await;
    let mut start = reply_to("a@x.org", "", t + Duration::minutes(1));
    start.once_per.as_mut().unwrap().handle = String::new();
    assert_eq!(store.begin_send(replies[0], start).await.unwrap(), SendGate::Go);
}

#[tokio::test]
async fn the_daily_limit_counts_the_last_24_hours_of_the_account() {
    let store = Store::open_in_memory().await.unwrap();
    let now = at(T0) + Duration::days(3);
    for minutes in 1..=99 {
        store.record_reply("work", "h", &format!("s{minutes}@x.org"), now - Duration::minutes(minutes)).await.unwrap();
    }
    store.record_reply("work", "h", "old@x.org", now - Duration::hours(25)).await.unwrap();
    store.record_reply("home", "h", "a@x.org", now - Duration::hours(1)).await.unwrap();
    let ids = claimed(&store, "send", &["100th", "101st"]).await;
    assert_eq!(store.begin_send(ids[0], send_to("a@x.org", now, 100)).await.unwrap(), SendGate::Go);
    let gate = store.begin_send(ids[1], send_to("b@x.org", now, 100)).await.unwrap();
    assert_eq!(gate, SendGate::OverDailyLimit { sent: 100, limit: 100 });
    let refused = get(&store, ids[1]).await;
    assert_eq!(refused.state, ActionState::Failed);
    let reason = refused.last_error.unwrap();
    assert!(reason.starts_with("daily send limit reached: account work sent 100 messages"), "{reason}");
    assert!(reason.contains(&format!("`tidings outbox retry {}`", ids[1])), "{reason}");
    assert_eq!(logged(&store, ids[1]).await, None);

    // A day later the limit allows it again, through a retry by hand.
    store.retry(ids[1]).await.unwrap();
    store.claim_due(Utc::now(), 10).await.unwrap();
    let tomorrow = now + Duration::hours(24);
    assert_eq!(store.begin_send(ids[1], send_to("b@x.org", tomorrow, 100)).await.unwrap(), SendGate::Go);
}

#[tokio::test]
async fn a_refused_send_takes_its_reply_log_row_back() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let ids = claimed(&store, "reply", &["refused", "other"]).await;
    assert_eq!(store.begin_send(ids[0], reply_to("a@x.org", "vacation", t)).await.unwrap(), SendGate::Go);
    let retry = Outcome::Retry { next_attempt_at: t, error: "451 try again later".into() };
    store.abort_send(ids[0], retry).await.unwrap();
    let aborted = get(&store, ids[0]).await;
    assert_eq!((aborted.state, aborted.last_error.as_deref()), (ActionState::Pending, Some("451 try again later")));
    assert_eq!(logged(&store, ids[0]).await, None);
    // Neither the once-per-sender memory nor the cap (of one) remembers the refused send.
    let one_a_day = SendStart { daily_limit: 1, ..reply_to("b@x.org", "vacation", t) };
    assert_eq!(store.begin_send(ids[1], one_a_day).await.unwrap(), SendGate::Go);
    store.abort_send(ids[1], Outcome::Failed { error: "550 no such user".into() }).await.unwrap();
    assert_eq!(get(&store, ids[1]).await.state, ActionState::Failed);
    assert_eq!(keys_of(&store.claim_due(t, 10).await.unwrap()), ["refused"]);
    let again = SendStart { daily_limit: 1, ..reply_to("a@x.org", "vacation", t + Duration::minutes(5)) };
    assert_eq!(store.begin_send(ids[0], again).await.unwrap(), SendGate::Go);
}

fn keys_of(actions: &[Action]) -> Vec<&str> {
    actions.iter().map(|a| a.key.as_str()).collect()
}

#[tokio::test]
async fn an_uncertain_send_keeps_counting_until_a_person_resends_it() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let ids = claimed(&store, "reply", &["lost"]).await;
    assert_eq!(store.begin_send(ids[0], reply_to("a@x.org", "vacation", t)).await.unwrap(), SendGate::Go);
    store.mark_uncertain(ids[0], "connection reset after DATA").await.unwrap();
    let uncertain = get(&store, ids[0]).await;
    assert_eq!(uncertain.state, ActionState::Uncertain);
    assert_eq!(uncertain.last_error.as_deref(), Some("connection reset after DATA"));
    assert_eq!(logged(&store, ids[0]).await, Some(("a@x.org".into(), t)), "it may be out: it counts");
    assert!(store.claim_due(t + Duration::days(1), 10).await.unwrap().is_empty(), "never resent by itself");
    assert!(store.abort_send(ids[0], Outcome::Done).await.is_err(), "only a sending action is aborted");

    let retried = store.retry(ids[0]).await.unwrap();
    assert_eq!((retried.state, retried.attempts, retried.claimed_at), (ActionState::Pending, 0, None));
    assert_eq!(store.claim_due(Utc::now(), 10).await.unwrap().len(), 1);
    // Its own earlier send does not suppress it; its reply-log row is replaced, not doubled.
    let later = t + Duration::hours(1);
    assert_eq!(store.begin_send(ids[0], reply_to("a@x.org", "vacation", later)).await.unwrap(), SendGate::Go);
    assert_eq!(logged(&store, ids[0]).await, Some(("a@x.org".into(), later)));
    assert_eq!(store.count_sent_since("work", t - Duration::days(1)).await.unwrap(), 1);
}

#[tokio::test]
async fn only_a_claimed_action_can_begin_sending() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let ids =
        store.commit_schedule_plan("test", t, vec![NewAction::new("k", "work", "reply", json!({}))]).await.unwrap();
    let error = store.begin_send(ids[0], reply_to("a@x.org", "h", t)).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("cannot begin sending action {}: it is pending; only a claimed (in_flight) action can be sent", ids[0])
    );
    let unknown = ActionId(ids[0].0 + 1);
    let error = store.begin_send(unknown, reply_to("a@x.org", "h", t)).await.unwrap_err();
    assert_eq!(error.to_string(), format!("cannot begin sending action {unknown}: there is no such action"));
    assert!(matches!(store.mark_uncertain(ids[0], "x").await, Err(Error::WrongState { found: Some(_), .. })));
    assert_eq!(store.count_sent_since("work", t - Duration::days(1)).await.unwrap(), 0);
}

#[tokio::test]
async fn completing_stores_the_follow_up_in_the_same_transaction() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let ids = claimed(&store, "send", &["sent", "plain"]).await;
    assert_eq!(store.begin_send(ids[0], send_to("a@x.org", t, 10)).await.unwrap(), SendGate::Go);
    let copy = NewAction::new("sent/save", "work", "save_sent", json!({"mailbox": null, "message": "..."}));
    let copy_id = store.complete_with(ids[0], Some(copy.clone())).await.unwrap().unwrap();
    assert_eq!(get(&store, ids[0]).await.state, ActionState::Done);
    let saved = get(&store, copy_id).await;
    assert_eq!((saved.kind.as_str(), saved.state, saved.rule), ("save_sent", ActionState::Pending, None));
    // An in-flight action (an event, or mail settled without sending) completes too.
    assert_eq!(store.complete_with(ids[1], None).await.unwrap(), None);
    // Completing twice is refused, and the refused call stores no follow-up.
    let late = NewAction::new("late/save", "work", "save_sent", json!({}));
    assert!(matches!(store.complete_with(ids[0], Some(late)).await, Err(Error::NotInFlight { .. })));
    let pending = store.list_outbox(Some(ActionState::Pending), 10).await.unwrap();
    assert_eq!(keys_of(&pending), ["sent/save"]);
}

#[tokio::test]
async fn sending_actions_take_outcomes_like_in_flight_ones() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let ids = claimed(&store, "forward", &["a"]).await;
    assert_eq!(store.begin_send(ids[0], send_to("a@x.org", t, 10)).await.unwrap(), SendGate::Go);
    store.record_outcomes(vec![(ids[0], Outcome::Done)]).await.unwrap();
    assert_eq!(get(&store, ids[0]).await.state, ActionState::Done);
}

/// A crash with mail claimed but not yet sending, mail sending, and other kinds in flight.
#[tokio::test]
async fn recovery_requeues_only_mail_that_never_began_sending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.db");
    let t = at(T0);
    let (mail, other) = {
        let store = Store::open(&path).await.unwrap();
        let mail = claimed(&store, "reply", &["claimed", "sending"]).await;
        let other = claimed(&store, "webhook", &["hook"]).await;
        assert_eq!(store.begin_send(mail[1], reply_to("a@x.org", "h", t)).await.unwrap(), SendGate::Go);
        (mail, other)
        // Dropped without outcomes: a crash, as far as the file knows.
    };
    let store = Store::open(&path).await.unwrap();
    let recovered = store.recover_in_flight().await.unwrap();
    let states: Vec<_> = recovered.iter().map(|a| (a.key.as_str(), a.state)).collect();
    assert_eq!(
        states,
        [("claimed", ActionState::Pending), ("sending", ActionState::Uncertain), ("hook", ActionState::Uncertain)]
    );
    assert_eq!((recovered[0].claimed_at, recovered[1].claimed_at), (None, Some(t)));
    assert_eq!(get(&store, other[0]).await.state, ActionState::Uncertain);
    assert_eq!(keys_of(&store.claim_due(t, 10).await.unwrap()), ["claimed"], "the sending reply is not resent");
    assert_eq!(logged(&store, mail[1]).await, Some(("a@x.org".into(), t)));
}

#[tokio::test]
async fn a_person_retries_failed_and_uncertain_actions_and_drops_waiting_ones() {
    let store = Store::open_in_memory().await.unwrap();
    let t = at(T0);
    let ids = claimed(&store, "webhook", &["failed", "uncertain", "done", "in_flight"]).await;
    store.record_outcome(ids[0], Outcome::Failed { error: "500".into() }).await.unwrap();
    store.record_outcome(ids[2], Outcome::Done).await.unwrap();
    let lost = ids[1];
    store
        .call(move |conn| {
            conn.execute("UPDATE actions SET state = 'uncertain' WHERE id = ?1", [lost])
                .map_err(|source| Error::Outbox { verb: "test", source })
        })
        .await
        .unwrap();

    let error = store.retry(ids[2]).await.unwrap_err();
    let done = format!("cannot retry action {}: it is done; only failed or uncertain actions can be retried", ids[2]);
    assert_eq!(error.to_string(), done);
    let error = store.drop_action(ids[3]).await.unwrap_err();
    assert!(error.to_string().ends_with("it is in_flight; only pending, failed or uncertain actions can be dropped"));
    assert!(store.retry(ActionId(999)).await.unwrap_err().to_string().ends_with("there is no such action"));

    let retried = store.retry_all().await.unwrap();
    assert_eq!(keys_of(&retried), ["failed", "uncertain"]);
    for action in &retried {
        assert_eq!((action.state, action.attempts), (ActionState::Pending, 0));
        assert!(action.next_attempt_at > t, "due now, not at its old time");
    }
    assert_eq!(retried[0].last_error.as_deref(), Some("500"), "why it needed a retry stays visible");
    assert!(store.retry_all().await.unwrap().is_empty());

    let dropped = store.drop_action(ids[0]).await.unwrap();
    assert_eq!(dropped.state, ActionState::Dropped);
    assert_eq!(keys_of(&store.claim_due(Utc::now(), 10).await.unwrap()), ["uncertain"], "a dropped action never runs");
    assert!(store.retry(ids[0]).await.is_err(), "dropped is final");
}

#[tokio::test]
async fn the_rule_that_planned_an_action_is_stored_with_it() {
    let store = Store::open_in_memory().await.unwrap();
    let actions = vec![
        NewAction::new("a", "work", "webhook", json!({})).by_rule("invoice.rhai"),
        NewAction::new("b", "work", "move", json!({})),
    ];
    let ids = store.commit_schedule_plan("test", at(T0), actions).await.unwrap();
    assert_eq!(get(&store, ids[0]).await.rule.as_deref(), Some("invoice.rhai"));
    assert_eq!(get(&store, ids[1]).await.rule, None);
}
