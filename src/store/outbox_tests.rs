//! The outbox's state machine, through the public handle, on both backends.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::test_backends::{each, each_reopenable};
use super::{Action, ActionId, ActionState, Error, NewAction, OutboxCounts, Outcome, Store};

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

const T0: i64 = 1_700_000_000_000;

/// Stores `actions` as a plan would; the ids inserted.
pub(super) async fn store_actions(store: &Store, actions: Vec<NewAction>) -> Vec<ActionId> {
    store.commit_schedule_chunk(actions).await.unwrap()
}

/// Stores one action per `(key, due)` and returns their ids in order.
async fn enqueue(store: &Store, due: &[(&str, DateTime<Utc>)]) -> Vec<ActionId> {
    let actions = due
        .iter()
        .map(|(key, due)| NewAction::new(*key, "work", "webhook", json!({"k": key})).not_before(*due))
        .collect();
    let ids = store_actions(store, actions).await;
    assert_eq!(ids.len(), due.len());
    ids
}

pub(super) fn keys(actions: &[Action]) -> Vec<&str> {
    actions.iter().map(|a| a.key.as_str()).collect()
}

#[tokio::test]
async fn claim_due_takes_due_pending_actions_soonest_first() {
    for (backend, store) in each().await {
        let t = at(T0);
        let later = t + Duration::seconds(100);
        let due = [("c", t + Duration::seconds(10)), ("a", t), ("late", later), ("b", t + Duration::seconds(5))];
        enqueue(&store, &due).await;
        let now = t + Duration::seconds(10);
        let claimed = store.claim_due(now, 10).await.unwrap();
        assert_eq!(keys(&claimed), ["a", "b", "c"], "{backend}");
        for action in &claimed {
            let claim = (action.state, action.attempts, action.claimed_at);
            assert_eq!(claim, (ActionState::InFlight, 1, Some(now)), "{backend}");
        }
        assert!(
            store.claim_due(now, 10).await.unwrap().is_empty(),
            "{backend}: in-flight actions are not claimed twice"
        );
        assert_eq!(keys(&store.claim_due(later, 10).await.unwrap()), ["late"], "{backend}");
    }
}

#[tokio::test]
async fn claim_due_respects_the_limit() {
    for (backend, store) in each().await {
        let t = at(T0);
        enqueue(&store, &[("a", t), ("b", t), ("c", t)]).await;
        assert_eq!(keys(&store.claim_due(t, 2).await.unwrap()), ["a", "b"], "{backend}");
        assert!(store.claim_due(t, 0).await.unwrap().is_empty(), "{backend}");
        assert_eq!(keys(&store.claim_due(t, 2).await.unwrap()), ["c"], "{backend}");
    }
}

#[tokio::test]
async fn done_finishes_an_action_once() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = enqueue(&store, &[("a", t)]).await;
        store.claim_due(t, 10).await.unwrap();
        store.record_outcome(ids[0], Outcome::Done).await.unwrap();
        let done = store.action(ids[0]).await.unwrap().unwrap();
        assert_eq!((done.state, done.attempts, done.claimed_at), (ActionState::Done, 1, None), "{backend}");
        let error = store.record_outcome(ids[0], Outcome::Done).await.unwrap_err();
        assert!(matches!(error, Error::NotInFlight { id } if id == ids[0]), "{backend}: {error:?}");
        assert!(store.claim_due(t + Duration::days(1), 10).await.unwrap().is_empty(), "{backend}");
    }
}

#[tokio::test]
async fn retry_requeues_and_failed_dead_letters_counting_attempts() {
    for (backend, store) in each().await {
        let t = at(T0);
        let id = enqueue(&store, &[("a", t)]).await[0];
        store.claim_due(t, 10).await.unwrap();
        let retry_at = t + Duration::seconds(60);
        store.record_outcome(id, Outcome::Retry { next_attempt_at: retry_at, error: "timeout".into() }).await.unwrap();
        let pending = store.action(id).await.unwrap().unwrap();
        assert_eq!((pending.state, pending.attempts), (ActionState::Pending, 1), "{backend}");
        assert_eq!((pending.next_attempt_at, pending.last_error.as_deref()), (retry_at, Some("timeout")), "{backend}");
        assert!(store.claim_due(t + Duration::seconds(30), 10).await.unwrap().is_empty(), "{backend}: not due yet");
        let second = store.claim_due(retry_at, 10).await.unwrap();
        assert_eq!((second.len(), second[0].attempts), (1, 2), "{backend}");
        store.record_outcome(id, Outcome::Failed { error: "gave up".into() }).await.unwrap();
        let failed = store.action(id).await.unwrap().unwrap();
        assert_eq!(
            (failed.state, failed.attempts, failed.last_error.as_deref()),
            (ActionState::Failed, 2, Some("gave up")),
            "{backend}"
        );
        assert!(store.claim_due(t + Duration::days(1), 10).await.unwrap().is_empty(), "{backend}");
    }
}

#[tokio::test]
async fn outcome_of_an_unclaimed_or_unknown_action_is_refused() {
    for (backend, store) in each().await {
        let id = enqueue(&store, &[("a", at(T0))]).await[0];
        let error = store.record_outcome(id, Outcome::Done).await.unwrap_err();
        let expected = format!("cannot record outcome of action {id}: it is not in flight");
        assert_eq!(error.to_string(), expected, "{backend}");
        assert_eq!(store.action(id).await.unwrap().unwrap().state, ActionState::Pending, "{backend}");
        let unknown = ActionId(id.0 + 100);
        let error = store.record_outcome(unknown, Outcome::Done).await;
        assert!(matches!(error, Err(Error::NotInFlight { .. })), "{backend}: {error:?}");
        assert_eq!(store.action(unknown).await.unwrap(), None, "{backend}");
    }
}

#[tokio::test]
async fn in_flight_actions_become_uncertain_after_a_restart() {
    for (backend, stored) in each_reopenable().await {
        let t = at(T0);
        let ids = {
            let store = stored.open().await;
            let ids = enqueue(&store, &[("a", t), ("b", t)]).await;
            assert_eq!(keys(&store.claim_due(t, 1).await.unwrap()), ["a"], "{backend}");
            ids
            // Dropped with "a" in flight and no outcome: a crash, as far as the store knows.
        };
        let store = stored.open().await;
        let recovered = store.recover_in_flight().await.unwrap();
        assert_eq!(keys(&recovered), ["a"], "{backend}");
        assert_eq!((recovered[0].state, recovered[0].claimed_at), (ActionState::Uncertain, Some(t)), "{backend}");
        assert_eq!(store.action(ids[0]).await.unwrap().unwrap().state, ActionState::Uncertain, "{backend}");
        let rerun = store.claim_due(t + Duration::days(1), 10).await.unwrap();
        assert_eq!(keys(&rerun), ["b"], "{backend}: a is not re-run");
        let error = store.record_outcome(ids[0], Outcome::Done).await;
        assert!(matches!(error, Err(Error::NotInFlight { .. })), "{backend}: {error:?}");
        // "b" is in flight in this process now; a second recovery would (by design) take it
        // too, which is why recovery runs once, at start-up.
        assert_eq!(store.outbox_counts().await.unwrap().uncertain, 1, "{backend}");
    }
}

#[tokio::test]
async fn recovering_one_account_leaves_the_others_claimed() {
    for (backend, store) in each().await {
        let t = at(T0);
        let actions = vec![
            NewAction::new("w-hook", "work", "webhook", json!({})).not_before(t),
            NewAction::new("w-reply", "work", "reply", json!({})).not_before(t),
            NewAction::new("h-hook", "home", "webhook", json!({})).not_before(t),
        ];
        let ids = store_actions(&store, actions).await;
        assert_eq!(store.claim_due(t, 10).await.unwrap().len(), 3, "{backend}");
        let recovered = store.recover_in_flight_of("work").await.unwrap();
        let states: Vec<_> = recovered.iter().map(|a| (a.key.as_str(), a.state)).collect();
        assert_eq!(states, [("w-hook", ActionState::Uncertain), ("w-reply", ActionState::Pending)], "{backend}");
        assert_eq!(store.action(ids[2]).await.unwrap().unwrap().state, ActionState::InFlight, "{backend}");
        assert!(store.recover_in_flight_of("nobody").await.unwrap().is_empty(), "{backend}");
        assert_eq!(keys(&store.recover_in_flight().await.unwrap()), ["h-hook"], "{backend}");
    }
}

#[tokio::test]
async fn a_key_is_stored_once_and_ids_follow_the_plan() {
    for (backend, store) in each().await {
        let t = at(T0);
        let new = |key: &str| NewAction::new(key, "work", "move", json!({"key": key})).for_message("INBOX", 7, 42);
        let ids = store_actions(&store, vec![new("z"), new("a"), new("z"), new("m")]).await;
        assert_eq!(ids.len(), 3, "{backend}: the second z is skipped");
        let stored: Vec<Action> = {
            let mut all = Vec::new();
            for id in &ids {
                all.push(store.action(*id).await.unwrap().unwrap());
            }
            all
        };
        assert_eq!(keys(&stored), ["z", "a", "m"], "{backend}: ids in the order of the plan");
        let z = &stored[0];
        assert_eq!((z.mailbox.as_deref(), z.uidvalidity, z.uid), (Some("INBOX"), Some(7), Some(42)), "{backend}");
        assert_eq!(
            (z.payload.clone(), z.state, z.attempts, z.rule.clone()),
            (json!({"key": "z"}), ActionState::Pending, 0, None),
            "{backend}"
        );
        assert!(z.next_attempt_at <= Utc::now() && z.next_attempt_at > t, "{backend}: due when stored");
        assert!(store_actions(&store, vec![new("a"), new("m")]).await.is_empty(), "{backend}: stored already");
    }
}

#[tokio::test]
async fn counts_and_lists_by_state() {
    for (backend, store) in each().await {
        let t = at(T0);
        let ids = enqueue(&store, &[("uncertain", t)]).await;
        store.claim_due(t, 1).await.unwrap();
        store.recover_in_flight().await.unwrap();
        let more = enqueue(
            &store,
            &[
                ("done", t),
                ("failed", t),
                ("suppressed", t),
                ("sending", t),
                ("in_flight", t),
                ("dropped", t + Duration::days(1)),
                ("pending", t + Duration::days(1)),
            ],
        )
        .await;
        let claimed = store.claim_due(t, 5).await.unwrap();
        assert_eq!(keys(&claimed), ["done", "failed", "suppressed", "sending", "in_flight"], "{backend}");
        store.record_outcome(more[0], Outcome::Done).await.unwrap();
        store.record_outcome(more[1], Outcome::Failed { error: "no".into() }).await.unwrap();
        store.record_outcome(more[2], Outcome::Suppressed { reason: "bulk".into() }).await.unwrap();
        let start = super::SendStart {
            account: "work".into(),
            kind: "send".into(),
            once_per: None,
            daily_limit: 10,
            forward_rate: None,
            recipient: "a@x.org".into(),
            now: t,
        };
        assert_eq!(store.begin_send(more[3], start).await.unwrap(), super::SendGate::Go, "{backend}");
        store.drop_action(more[5]).await.unwrap();
        let counts = store.outbox_counts().await.unwrap();
        let one_each = OutboxCounts {
            pending: 1,
            in_flight: 1,
            sending: 1,
            done: 1,
            suppressed: 1,
            failed: 1,
            uncertain: 1,
            dropped: 1,
        };
        assert_eq!(counts, one_each, "{backend}");
        for state in ActionState::ALL {
            let listed = store.list_outbox(Some(state), 10).await.unwrap();
            assert_eq!(keys(&listed), [state.as_str()], "{backend}: {state}");
            assert_eq!(counts.get(state), 1, "{backend}");
            assert_eq!(state.as_str().parse::<ActionState>().unwrap(), state, "{backend}");
        }
        let newest = store.list_outbox(None, 2).await.unwrap();
        assert_eq!(keys(&newest), ["pending", "dropped"], "{backend}");
        assert_eq!(store.list_outbox(None, 20).await.unwrap().last().map(|a| a.id), Some(ids[0]), "{backend}");
        let actionable = store.list_outbox_in(&ActionState::ACTIONABLE, 20).await.unwrap();
        assert_eq!(keys(&actionable), ["pending", "in_flight", "sending", "failed", "uncertain"], "{backend}");
        let settled = [ActionState::Done, ActionState::Suppressed, ActionState::Dropped];
        assert_eq!(keys(&store.list_outbox_in(&settled, 2).await.unwrap()), ["dropped", "suppressed"], "{backend}");
        assert!(store.list_outbox_in(&[], 20).await.unwrap().is_empty(), "{backend}");
    }
}

#[tokio::test]
async fn groups_count_by_account_kind_and_state() {
    use super::OutboxGroup;
    for (backend, store) in each().await {
        let t = at(T0);
        let actions = vec![
            NewAction::new("w1", "work", "move", json!({})).not_before(t + Duration::seconds(2)),
            NewAction::new("w2", "work", "move", json!({})).not_before(t + Duration::seconds(1)),
            NewAction::new("w3", "work", "webhook", json!({})).not_before(t),
            NewAction::new("h1", "home", "move", json!({})).not_before(t),
        ];
        let ids = store_actions(&store, actions).await;
        assert_eq!(keys(&store.claim_due_for("work", &["webhook"], t, 10).await.unwrap()), ["w3"], "{backend}");
        store.record_outcome(ids[2], Outcome::Failed { error: "500".into() }).await.unwrap();
        let group = |account: &str, kind: &str, state, count, oldest_due| OutboxGroup {
            account: account.into(),
            kind: kind.into(),
            state,
            count,
            oldest_due,
        };
        let all = store.outbox_groups().await.unwrap();
        let expected = [
            group("home", "move", ActionState::Pending, 1, Some(t)),
            group("work", "move", ActionState::Pending, 2, Some(t + Duration::seconds(1))),
            group("work", "webhook", ActionState::Failed, 1, None),
        ];
        assert_eq!(all, expected, "{backend}");
        let failed = store.outbox_groups_in(&[ActionState::Failed, ActionState::Uncertain]).await.unwrap();
        assert_eq!(failed, expected[2..], "{backend}");
    }
}

#[tokio::test]
async fn claims_are_per_account_and_next_due_follows_them() {
    for (backend, store) in each().await {
        let t = at(T0);
        let actions = vec![
            NewAction::new("w1", "work", "move", json!({})).not_before(t + Duration::seconds(3)),
            NewAction::new("h1", "home", "move", json!({})).not_before(t),
        ];
        store_actions(&store, actions).await;
        assert_eq!(store.next_due("work", &["move"]).await.unwrap(), Some(t + Duration::seconds(3)), "{backend}");
        assert_eq!(store.next_due("nobody", &["move"]).await.unwrap(), None, "{backend}");
        let claimed = store.claim_due_for("work", &["move"], t + Duration::seconds(5), 10).await.unwrap();
        assert_eq!(keys(&claimed), ["w1"], "{backend}");
        let next = store.next_due("work", &["move"]).await.unwrap();
        assert_eq!(next, None, "{backend}: claimed actions are no longer pending");
        assert_eq!(keys(&store.claim_due_for("home", &["move"], t, 10).await.unwrap()), ["h1"], "{backend}");
    }
}

#[tokio::test]
async fn an_executor_claims_only_its_kinds_and_waits_only_for_them() {
    for (backend, store) in each().await {
        let t = at(T0);
        let actions = vec![
            NewAction::new("reply", "work", "reply", json!({})).not_before(t),
            NewAction::new("hook", "work", "webhook", json!({})).not_before(t),
            NewAction::new("move", "work", "move", json!({})).not_before(t + Duration::seconds(1)),
        ];
        store_actions(&store, actions).await;
        let imap = crate::plan::MAILBOX_KINDS;
        assert_eq!(store.next_due("work", imap).await.unwrap(), Some(t + Duration::seconds(1)), "{backend}");
        let claimed = store.claim_due_for("work", imap, t + Duration::seconds(5), 10).await.unwrap();
        assert_eq!(keys(&claimed), ["move"], "{backend}");
        // Outbound actions stay pending for their own executors, and an IMAP executor with
        // nothing of its own to do sees nothing due (so `run --once` ends).
        assert_eq!(store.next_due("work", imap).await.unwrap(), None, "{backend}");
        assert_eq!(store.outbox_counts().await.unwrap().pending, 2, "{backend}");
        assert!(store.claim_due_for("work", &[], t + Duration::seconds(5), 10).await.unwrap().is_empty(), "{backend}");
        let outbound = store.claim_due_for("work", crate::plan::OUTBOUND_KINDS, t, 10).await.unwrap();
        assert_eq!(keys(&outbound), ["reply", "hook"], "{backend}");
    }
}

#[tokio::test]
async fn only_uncertain_actions_can_be_requeued() {
    for (backend, store) in each().await {
        let ids = enqueue(&store, &[("a", at(T0)), ("b", at(T0))]).await;
        store.claim_due(at(T0), 1).await.unwrap();
        let uncertain = store.recover_in_flight().await.unwrap();
        assert_eq!(keys(&uncertain), ["a"], "{backend}");
        store.requeue_uncertain(ids[0]).await.unwrap();
        assert_eq!(store.action(ids[0]).await.unwrap().unwrap().state, ActionState::Pending, "{backend}");
        let error = store.requeue_uncertain(ids[1]).await;
        assert!(matches!(error, Err(Error::NotInFlight { .. })), "{backend}: a pending action is not uncertain");
        let error = store.requeue_uncertain(ActionId(ids[1].0 + 100)).await;
        assert!(matches!(error, Err(Error::NotInFlight { .. })), "{backend}: nor is an unknown one");
    }
}

/// A batch of plans stores its actions, rule failures and checkpoint together, or nothing.
#[tokio::test]
async fn a_batch_of_plans_commits_actions_failures_and_checkpoints_together() {
    use super::{Checkpoint, MessagePlan};
    let checkpoint =
        |uid| Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 9, last_uid: uid };
    let plan = |uid: u32, failures: Vec<(String, String)>| MessagePlan {
        checkpoint: checkpoint(uid),
        actions: vec![NewAction::new(format!("k{uid}"), "work", "move", json!({})).for_message("INBOX", 9, uid)],
        failures,
        gmail_msgid: None,
        decided: Default::default(),
    };
    for (backend, store) in super::test_backends::each().await {
        let ids = store
            .commit_plans(vec![plan(3, vec![]), plan(5, vec![("r.rhai".into(), "boom".into())]), plan(8, vec![])])
            .await
            .unwrap();
        assert_eq!(ids.len(), 3, "{backend}");
        assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(checkpoint(8)), "{backend}");
        let failures = store.recent_rule_failures(10).await.unwrap();
        assert_eq!((failures.len(), failures[0].uid, failures[0].rule.as_str()), (1, 5, "r.rhai"), "{backend}");
        // A batch that would move the checkpoint backwards stores nothing at all.
        let err = store.commit_plans(vec![plan(9, vec![]), plan(4, vec![])]).await.unwrap_err();
        assert!(matches!(err, Error::CheckpointBackwards { .. }), "{backend}: {err}");
        assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(checkpoint(8)), "{backend}");
        assert_eq!(store.outbox_counts().await.unwrap().pending, 3, "{backend}");
    }
}
