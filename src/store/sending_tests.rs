//! Sending mail at most once, and what a person does with the outbox, through the public
//! handle, on both backends.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::outbox_tests::{keys as keys_of, store_actions};
use super::test_backends::{each, each_reopenable};
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
    let ids = store_actions(store, actions).await;
    assert_eq!(store.claim_due(at(T0), 100).await.unwrap().len(), keys.len());
    ids
}

fn reply_to(sender: &str, handle: &str, now: DateTime<Utc>) -> SendStart {
    SendStart {
        account: "work".into(),
        kind: "reply".into(),
        once_per: Some(OncePer { handle: handle.into(), sender: sender.into(), days: 7 }),
        daily_limit: 100,
        forward_rate: None,
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
        forward_rate: None,
        recipient: recipient.into(),
        now,
    }
}

async fn get(store: &Store, id: ActionId) -> Action {
    store.action(id).await.unwrap().unwrap()
}

/// The reply-log row of action `id`: `(sender, sent_at)`.
async fn logged(store: &Store, id: ActionId) -> Option<(String, DateTime<Utc>)> {
    match store.pg() {
        Some(pg) => pg.logged(id).await.unwrap(),
        None => store
            .call(move |conn| {
                sending::logged(conn, id).map_err(|source| Error::Outbox { verb: "read", source: source.into() })
            })
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn a_second_reply_to_a_sender_within_days_is_suppressed() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = claimed(&store, "reply", &["first", "again", "other-handle", "other-sender", "a-week-later"]).await;
        assert_eq!(
            store.begin_send(ids[0], reply_to("a@x.org", "vacation", t)).await.unwrap(),
            SendGate::Go,
            "{backend}"
        );
        assert_eq!(get(&store, ids[0]).await.state, ActionState::Sending, "{backend}");
        assert_eq!(logged(&store, ids[0]).await, Some(("a@x.org".into(), t)), "{backend}");
        store.complete_with(ids[0], None).await.unwrap();

        let two_days = t + Duration::days(2);
        let gate = store.begin_send(ids[1], reply_to("a@x.org", "vacation", two_days)).await.unwrap();
        assert_eq!(gate, SendGate::AlreadyReplied { at: t }, "{backend}");
        let suppressed = get(&store, ids[1]).await;
        assert_eq!((suppressed.state, suppressed.claimed_at), (ActionState::Suppressed, None), "{backend}");
        assert_eq!(
            suppressed.last_error.as_deref(),
            Some(
                "already replied to a@x.org at 2023-11-14 22:13:20 UTC (at most one reply per 7 days for handle \"vacation\")"
            ),
            "{backend}"
        );
        assert_eq!(logged(&store, ids[1]).await, None, "{backend}: a suppressed reply is not a send");

        let other_handle = store.begin_send(ids[2], reply_to("a@x.org", "other", two_days)).await.unwrap();
        let other_sender = store.begin_send(ids[3], reply_to("b@x.org", "vacation", two_days)).await.unwrap();
        assert_eq!((other_handle, other_sender), (SendGate::Go, SendGate::Go), "{backend}");
        let week = t + Duration::days(7);
        let gate = store.begin_send(ids[4], reply_to("a@x.org", "vacation", week)).await.unwrap();
        assert_eq!(gate, SendGate::Go, "{backend}");
    }
}

#[tokio::test]
async fn forwards_and_new_messages_do_not_stop_a_reply() {
    for (backend, store) in each().await {
        let t = at(T0);
        let sends = claimed(&store, "send", &["notice"]).await;
        assert_eq!(store.begin_send(sends[0], send_to("a@x.org", t, 100)).await.unwrap(), SendGate::Go, "{backend}");
        let replies = claimed(&store, "reply", &["reply"]).await;
        let mut start = reply_to("a@x.org", "", t + Duration::minutes(1));
        start.once_per.as_mut().unwrap().handle = String::new();
        assert_eq!(store.begin_send(replies[0], start).await.unwrap(), SendGate::Go, "{backend}");
    }
}

#[tokio::test]
async fn the_daily_limit_counts_the_last_24_hours_of_the_account() {
    for (backend, store) in each().await {
        let now = at(T0) + Duration::days(3);
        for minutes in 1..=99 {
            let sent = now - Duration::minutes(minutes);
            store.record_reply("work", "h", &format!("s{minutes}@x.org"), sent).await.unwrap();
        }
        store.record_reply("work", "h", "old@x.org", now - Duration::hours(25)).await.unwrap();
        store.record_reply("home", "h", "a@x.org", now - Duration::hours(1)).await.unwrap();
        let ids = claimed(&store, "send", &["100th", "101st"]).await;
        assert_eq!(store.begin_send(ids[0], send_to("a@x.org", now, 100)).await.unwrap(), SendGate::Go, "{backend}");
        let gate = store.begin_send(ids[1], send_to("b@x.org", now, 100)).await.unwrap();
        assert_eq!(gate, SendGate::OverDailyLimit { sent: 100, limit: 100 }, "{backend}");
        let refused = get(&store, ids[1]).await;
        assert_eq!(refused.state, ActionState::Failed, "{backend}");
        let reason = refused.last_error.unwrap();
        assert!(reason.starts_with("daily send limit reached: account work sent 100 messages"), "{backend}: {reason}");
        assert!(reason.contains(&format!("`tidings outbox retry {}`", ids[1])), "{backend}: {reason}");
        assert_eq!(logged(&store, ids[1]).await, None, "{backend}");

        // A day later the limit allows it again, through a retry by hand.
        store.retry(ids[1]).await.unwrap();
        store.claim_due(Utc::now(), 10).await.unwrap();
        let tomorrow = now + Duration::hours(24);
        let gate = store.begin_send(ids[1], send_to("b@x.org", tomorrow, 100)).await.unwrap();
        assert_eq!(gate, SendGate::Go, "{backend}");
    }
}

/// Forwards to one destination are limited per hour; over the rate a forward is suppressed
/// and takes no place of the daily cap, so a loop cannot use up the day's sends.
#[tokio::test]
async fn forwards_over_the_hourly_rate_to_a_destination_are_suppressed_outside_the_daily_cap() {
    for (backend, store) in each().await {
        let now = at(T0) + Duration::days(1);
        let forward = |to: &str, now: DateTime<Utc>| SendStart {
            kind: "forward".into(),
            forward_rate: Some(2),
            daily_limit: 3,
            ..send_to(to, now, 3)
        };
        let ids = claimed(&store, "forward", &["f1", "f2", "f3", "f4", "f5", "f6"]).await;
        let gate = |i: usize, to: &'static str, when: DateTime<Utc>| {
            let store = store.clone();
            let id = ids[i];
            async move { store.begin_send(id, forward(to, when)).await.unwrap() }
        };
        assert_eq!(gate(0, "b@x.org", now - Duration::minutes(70)).await, SendGate::Go, "{backend}: an hour ago");
        assert_eq!(gate(1, "b@x.org", now - Duration::minutes(30)).await, SendGate::Go, "{backend}");
        assert_eq!(gate(2, "b@x.org", now).await, SendGate::Go, "{backend}: the one 70 minutes ago is out of the hour");
        let over = gate(3, "b@x.org", now + Duration::minutes(1)).await;
        assert_eq!(over, SendGate::OverForwardRate { sent: 2, limit: 2 }, "{backend}");
        let row = get(&store, ids[3]).await;
        assert_eq!(row.state, ActionState::Suppressed, "{backend}");
        let reason = row.last_error.unwrap_or_default();
        assert!(
            reason.contains("forwarded 2 messages to b@x.org in the hour") && reason.contains("forward_rate 2"),
            "{backend}: {reason}"
        );
        assert_eq!(logged(&store, ids[3]).await, None, "{backend}: a suppressed forward is not in the reply log");
        // Another destination is under its own rate; the daily cap (3) counts only what was sent.
        let other = store.begin_send(ids[4], forward("c@x.org", now + Duration::minutes(2))).await.unwrap();
        assert_eq!(other, SendGate::OverDailyLimit { sent: 3, limit: 3 }, "{backend}: three were sent, not four");
        let send = store.begin_send(ids[5], send_to("d@x.org", now + Duration::days(1), 3)).await.unwrap();
        assert_eq!(send, SendGate::Go, "{backend}: a day later a new message goes");
    }
}

#[tokio::test]
async fn a_refused_send_takes_its_reply_log_row_back() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = claimed(&store, "reply", &["refused", "other"]).await;
        assert_eq!(
            store.begin_send(ids[0], reply_to("a@x.org", "vacation", t)).await.unwrap(),
            SendGate::Go,
            "{backend}"
        );
        let retry = Outcome::Retry { next_attempt_at: t, error: "451 try again later".into() };
        store.abort_send(ids[0], retry).await.unwrap();
        let aborted = get(&store, ids[0]).await;
        let expected = (ActionState::Pending, Some("451 try again later"));
        assert_eq!((aborted.state, aborted.last_error.as_deref()), expected, "{backend}");
        assert_eq!(logged(&store, ids[0]).await, None, "{backend}");
        // Neither the once-per-sender memory nor the cap (of one) remembers the refused send.
        let one_a_day = SendStart { daily_limit: 1, ..reply_to("b@x.org", "vacation", t) };
        assert_eq!(store.begin_send(ids[1], one_a_day).await.unwrap(), SendGate::Go, "{backend}");
        store.abort_send(ids[1], Outcome::Failed { error: "550 no such user".into() }).await.unwrap();
        assert_eq!(get(&store, ids[1]).await.state, ActionState::Failed, "{backend}");
        assert_eq!(keys_of(&store.claim_due(t, 10).await.unwrap()), ["refused"], "{backend}");
        let again = SendStart { daily_limit: 1, ..reply_to("a@x.org", "vacation", t + Duration::minutes(5)) };
        assert_eq!(store.begin_send(ids[0], again).await.unwrap(), SendGate::Go, "{backend}");
    }
}

#[tokio::test]
async fn an_uncertain_send_keeps_counting_until_a_person_resends_it() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = claimed(&store, "reply", &["lost"]).await;
        assert_eq!(
            store.begin_send(ids[0], reply_to("a@x.org", "vacation", t)).await.unwrap(),
            SendGate::Go,
            "{backend}"
        );
        store.mark_uncertain(ids[0], "connection reset after DATA").await.unwrap();
        let uncertain = get(&store, ids[0]).await;
        assert_eq!(uncertain.state, ActionState::Uncertain, "{backend}");
        assert_eq!(uncertain.last_error.as_deref(), Some("connection reset after DATA"), "{backend}");
        assert_eq!(logged(&store, ids[0]).await, Some(("a@x.org".into(), t)), "{backend}: it may be out: it counts");
        let resent = store.claim_due(t + Duration::days(1), 10).await.unwrap();
        assert!(resent.is_empty(), "{backend}: never resent by itself");
        let error = store.abort_send(ids[0], Outcome::Done).await;
        assert!(matches!(error, Err(Error::WrongState { .. })), "{backend}: only a sending action is aborted");

        let retried = store.retry(ids[0]).await.unwrap();
        let expected = (ActionState::Pending, 0, None);
        assert_eq!((retried.state, retried.attempts, retried.claimed_at), expected, "{backend}");
        assert_eq!(store.claim_due(Utc::now(), 10).await.unwrap().len(), 1, "{backend}");
        // Its own earlier send does not suppress it; its reply-log row is replaced, not doubled.
        let later = t + Duration::hours(1);
        let gate = store.begin_send(ids[0], reply_to("a@x.org", "vacation", later)).await.unwrap();
        assert_eq!(gate, SendGate::Go, "{backend}");
        assert_eq!(logged(&store, ids[0]).await, Some(("a@x.org".into(), later)), "{backend}");
        assert_eq!(store.count_sent_since("work", t - Duration::days(1)).await.unwrap(), 1, "{backend}");
    }
}

#[tokio::test]
async fn only_a_claimed_action_can_begin_sending() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = store_actions(&store, vec![NewAction::new("k", "work", "reply", json!({}))]).await;
        let error = store.begin_send(ids[0], reply_to("a@x.org", "h", t)).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot begin sending action {}: it is pending; only a claimed (in_flight) action can be sent",
                ids[0]
            ),
            "{backend}"
        );
        let unknown = ActionId(ids[0].0 + 1);
        let error = store.begin_send(unknown, reply_to("a@x.org", "h", t)).await.unwrap_err();
        let expected = format!("cannot begin sending action {unknown}: there is no such action");
        assert_eq!(error.to_string(), expected, "{backend}");
        let error = store.mark_uncertain(ids[0], "x").await;
        assert!(matches!(error, Err(Error::WrongState { found: Some(_), .. })), "{backend}: {error:?}");
        let error = store.mark_uncertain(unknown, "x").await;
        assert!(matches!(error, Err(Error::WrongState { found: None, .. })), "{backend}: {error:?}");
        let error = store.abort_send(unknown, Outcome::Done).await;
        assert!(matches!(error, Err(Error::WrongState { found: None, .. })), "{backend}: {error:?}");
        assert_eq!(store.count_sent_since("work", t - Duration::days(1)).await.unwrap(), 0, "{backend}");
    }
}

#[tokio::test]
async fn completing_stores_the_follow_up_in_the_same_transaction() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = claimed(&store, "send", &["sent", "plain"]).await;
        assert_eq!(store.begin_send(ids[0], send_to("a@x.org", t, 10)).await.unwrap(), SendGate::Go, "{backend}");
        let copy = NewAction::new("sent/save", "work", "save_sent", json!({"mailbox": null, "message": "..."}));
        let copy_id = store.complete_with(ids[0], Some(copy.clone())).await.unwrap().unwrap();
        assert_eq!(get(&store, ids[0]).await.state, ActionState::Done, "{backend}");
        let saved = get(&store, copy_id).await;
        let expected = ("save_sent", ActionState::Pending, None, copy.payload);
        assert_eq!((saved.kind.as_str(), saved.state, saved.rule, saved.payload), expected, "{backend}");
        // An in-flight action (an event, or mail settled without sending) completes too.
        assert_eq!(store.complete_with(ids[1], None).await.unwrap(), None, "{backend}");
        // Completing twice is refused, and the refused call stores no follow-up.
        let late = NewAction::new("late/save", "work", "save_sent", json!({}));
        let error = store.complete_with(ids[0], Some(late)).await;
        assert!(matches!(error, Err(Error::NotInFlight { .. })), "{backend}: {error:?}");
        let pending = store.list_outbox(Some(ActionState::Pending), 10).await.unwrap();
        assert_eq!(keys_of(&pending), ["sent/save"], "{backend}");
    }
}

#[tokio::test]
async fn sending_actions_take_outcomes_like_in_flight_ones() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = claimed(&store, "forward", &["a", "b"]).await;
        assert_eq!(store.begin_send(ids[0], send_to("a@x.org", t, 10)).await.unwrap(), SendGate::Go, "{backend}");
        store.record_outcomes(vec![(ids[0], Outcome::Done), (ids[1], Outcome::Done)]).await.unwrap();
        assert_eq!(get(&store, ids[0]).await.state, ActionState::Done, "{backend}");
        assert_eq!(get(&store, ids[1]).await.state, ActionState::Done, "{backend}");
    }
}

#[tokio::test]
async fn a_batch_of_outcomes_is_recorded_all_or_none() {
    for (backend, store) in each().await {
        let ids = claimed(&store, "webhook", &["a", "b"]).await;
        store.record_outcome(ids[1], Outcome::Done).await.unwrap();
        let failed = Outcome::Failed { error: "500".into() };
        let error = store.record_outcomes(vec![(ids[0], Outcome::Done), (ids[1], failed)]).await;
        assert!(matches!(error, Err(Error::NotInFlight { id }) if id == ids[1]), "{backend}: {error:?}");
        assert_eq!(get(&store, ids[0]).await.state, ActionState::InFlight, "{backend}: the first is not recorded");
        assert_eq!(get(&store, ids[1]).await.state, ActionState::Done, "{backend}");
    }
}

/// A crash with mail claimed but not yet sending, mail sending, and other kinds in flight.
#[tokio::test]
async fn recovery_requeues_only_mail_that_never_began_sending() {
    for (backend, stored) in each_reopenable().await {
        let t = at(T0);
        let (mail, other) = {
            let store = stored.open().await;
            let mail = claimed(&store, "reply", &["claimed", "sending"]).await;
            let other = claimed(&store, "webhook", &["hook"]).await;
            assert_eq!(
                store.begin_send(mail[1], reply_to("a@x.org", "h", t)).await.unwrap(),
                SendGate::Go,
                "{backend}"
            );
            (mail, other)
            // Dropped without outcomes: a crash, as far as the store knows.
        };
        let store = stored.open().await;
        let recovered = store.recover_in_flight().await.unwrap();
        let states: Vec<_> = recovered.iter().map(|a| (a.key.as_str(), a.state)).collect();
        assert_eq!(
            states,
            [("claimed", ActionState::Pending), ("sending", ActionState::Uncertain), ("hook", ActionState::Uncertain)],
            "{backend}"
        );
        assert_eq!((recovered[0].claimed_at, recovered[1].claimed_at), (None, Some(t)), "{backend}");
        assert_eq!(get(&store, other[0]).await.state, ActionState::Uncertain, "{backend}");
        let claimed = store.claim_due(t, 10).await.unwrap();
        assert_eq!(keys_of(&claimed), ["claimed"], "{backend}: the sending reply is not resent");
        assert_eq!(logged(&store, mail[1]).await, Some(("a@x.org".into(), t)), "{backend}");
    }
}

#[tokio::test]
async fn a_person_retries_failed_and_uncertain_actions_and_drops_waiting_ones() {
    for (backend, store) in each().await {
        let t = at(T0);
        // "uncertain" is a command: claimed alone, and left uncertain by a recovery.
        let new = |key: &str, kind: &str| NewAction::new(key, "work", kind, json!({})).not_before(t);
        let actions = vec![
            new("failed", "webhook"),
            new("uncertain", "command"),
            new("done", "webhook"),
            new("in_flight", "webhook"),
        ];
        let ids = store_actions(&store, actions).await;
        assert_eq!(store.claim_due_for("work", &["command"], t, 10).await.unwrap().len(), 1, "{backend}");
        assert_eq!(keys_of(&store.recover_in_flight().await.unwrap()), ["uncertain"], "{backend}");
        assert_eq!(store.claim_due(t, 10).await.unwrap().len(), 3, "{backend}");
        store.record_outcome(ids[0], Outcome::Failed { error: "500".into() }).await.unwrap();
        store.record_outcome(ids[2], Outcome::Done).await.unwrap();

        let error = store.retry(ids[2]).await.unwrap_err();
        let done =
            format!("cannot retry action {}: it is done; only failed or uncertain actions can be retried", ids[2]);
        assert_eq!(error.to_string(), done, "{backend}");
        let error = store.drop_action(ids[3]).await.unwrap_err().to_string();
        let in_flight = "it is in_flight; only pending, failed or uncertain actions can be dropped";
        assert!(error.ends_with(in_flight), "{backend}: {error}");
        let error = store.retry(ActionId(999)).await.unwrap_err().to_string();
        assert!(error.ends_with("there is no such action"), "{backend}: {error}");

        let retried = store.retry_all().await.unwrap();
        assert_eq!(keys_of(&retried), ["failed", "uncertain"], "{backend}");
        for action in &retried {
            assert_eq!((action.state, action.attempts), (ActionState::Pending, 0), "{backend}");
            assert!(action.next_attempt_at > t, "{backend}: due now, not at its old time");
        }
        let why = retried[0].last_error.as_deref();
        assert_eq!(why, Some("500"), "{backend}: why it needed a retry stays visible");
        assert!(store.retry_all().await.unwrap().is_empty(), "{backend}");

        let dropped = store.drop_action(ids[0]).await.unwrap();
        assert_eq!(dropped.state, ActionState::Dropped, "{backend}");
        let claimed = store.claim_due(Utc::now(), 10).await.unwrap();
        assert_eq!(keys_of(&claimed), ["uncertain"], "{backend}: a dropped action never runs");
        assert!(store.retry(ids[0]).await.is_err(), "{backend}: dropped is final");
    }
}

#[tokio::test]
async fn the_rule_that_planned_an_action_is_stored_with_it() {
    for (backend, store) in each().await {
        let actions = vec![
            NewAction::new("a", "work", "webhook", json!({})).by_rule("invoice.rhai"),
            NewAction::new("b", "work", "move", json!({})),
        ];
        let ids = store_actions(&store, actions).await;
        assert_eq!(get(&store, ids[0]).await.rule.as_deref(), Some("invoice.rhai"), "{backend}");
        assert_eq!(get(&store, ids[1]).await.rule, None, "{backend}");
    }
}
