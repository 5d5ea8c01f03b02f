//! A fleet member's writes of plans, checkpoints and watcher states are fenced by the leases it
//! holds. PostgreSQL only: a SQLite store has no fleet.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::leases;
use crate::store::test_backends::{database, member, take_over};
use crate::store::{Checkpoint, Error, MessagePlan, NewAction, RunOutcome, ScheduleRun, Store, WatcherRecord};

const LEASE: Duration = Duration::from_secs(60);

/// Member "a" of a fleet on a fresh database, holding account "work", whose INBOX has one
/// plan stored (uid 1).
async fn holding_work() -> Option<Store> {
    let (url, ca_file) = database().await?;
    let store = member(&url, &ca_file, "a", LEASE, &["work"]).await;
    store.commit_plan(&cp("work", 1), vec![act("work", "w1")]).await.unwrap();
    Some(store)
}

fn cp(account: &str, last_uid: u32) -> Checkpoint {
    Checkpoint { account: account.into(), mailbox: "INBOX".into(), uidvalidity: 7, last_uid }
}

fn act(account: &str, key: &str) -> NewAction {
    NewAction::new(key, account, "webhook", json!({}))
}

fn refused(error: &Error) -> bool {
    matches!(error, Error::NotHeld { .. } | Error::Lease(leases::Error::Stale { .. }))
}

fn watcher(account: &str) -> WatcherRecord {
    let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000).unwrap();
    WatcherRecord {
        account: account.into(),
        mailbox: "INBOX".into(),
        state: "idle".into(),
        since: at,
        last_error: None,
        reconnects: 0,
        updated_at: at,
    }
}

fn accounts(watchers: &[WatcherRecord]) -> Vec<&str> {
    watchers.iter().map(|w| w.account.as_str()).collect()
}

#[tokio::test]
async fn a_member_writes_only_for_the_accounts_whose_current_lease_it_holds() {
    let Some(store) = holding_work().await else { return };
    let error = store.commit_plan(&cp("home", 1), vec![act("home", "h1")]).await.unwrap_err();
    assert!(matches!(error, Error::NotHeld { .. }), "{error:?}");
    // A batch with one account not held stores nothing, not even the held one's plan.
    let plan = |checkpoint| MessagePlan {
        checkpoint,
        actions: vec![],
        failures: vec![],
        gmail_msgid: None,
        decided: Default::default(),
    };
    let batch = vec![plan(cp("work", 2)), plan(cp("home", 1))];
    assert!(refused(&store.commit_plans(batch).await.unwrap_err()));
    assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp("work", 1)));
    // A schedule's actions for an account not held, or items of one consumed, are refused too.
    let error = store.commit_schedule_chunk(vec![act("work", "s1"), act("home", "s2")]).await.unwrap_err();
    assert!(refused(&error), "{error:?}");
    let fired_at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000).unwrap();
    let error = store.commit_schedule_plan("digest", fired_at, vec![act("home", "s3")]).await.unwrap_err();
    assert!(refused(&error), "{error:?}");
    let outcome =
        RunOutcome { started_at: fired_at, finished_at: fired_at, messages: 0, actions: 0, failures: 0, error: None };
    let run = |consume: &str| ScheduleRun {
        name: "digest".into(),
        fired_at,
        actions: vec![act("work", "s4")],
        consume: Some((consume.into(), vec!["digest".into()], 10)),
        outcome: outcome.clone(),
    };
    assert!(refused(&store.finish_schedule_run(run("home")).await.unwrap_err()));
    assert_eq!(store.last_schedule_run("digest").await.unwrap(), None);
    store.finish_schedule_run(run("work")).await.unwrap();
    assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(fired_at));
    // Recording a fire is keyed by the schedule alone: not fenced.
    store.record_schedule_run("sweep", fired_at).await.unwrap();
}

#[tokio::test]
async fn after_a_takeover_the_old_owners_writes_are_refused() {
    let Some(store) = holding_work().await else { return };
    store.report_watcher(watcher("work"));
    assert_eq!(accounts(&store.watchers().await.unwrap()), ["work"]);
    take_over(&store, "work", "other").await;
    let error = store.commit_plan(&cp("work", 2), vec![act("work", "w2")]).await.unwrap_err();
    assert!(matches!(error, Error::Lease(leases::Error::Stale { held: 1, current: 2, .. })), "{error:?}");
    let error = store.set_checkpoint(&cp("work", 3)).await.unwrap_err();
    assert!(matches!(error, Error::Lease(leases::Error::Stale { .. })), "{error:?}");
    assert_eq!(store.checkpoint("work", "INBOX").await.unwrap(), Some(cp("work", 1)));
    // A stale report is dropped: the new owner's state stays.
    let client = store.fleet().unwrap().client().await.unwrap();
    client.execute("UPDATE watchers SET state = 'polling'", &[]).await.unwrap();
    store.report_watcher(watcher("work"));
    store.report_watcher(watcher("home"));
    let shown = store.watchers().await.unwrap();
    assert_eq!(shown.iter().map(|w| (w.account.as_str(), w.state.as_str())).collect::<Vec<_>>(), [("work", "polling")]);
    // An awaited one is refused with its reason: stale for the account taken over, not held
    // for one never claimed.
    let error = store.record_watcher(watcher("work")).await.unwrap_err();
    assert!(matches!(error, Error::Lease(leases::Error::Stale { .. })), "{error:?}");
    let error = store.record_watcher(watcher("home")).await.unwrap_err();
    assert!(matches!(error, Error::NotHeld { .. }), "{error:?}");
}

#[tokio::test]
async fn a_starting_member_clears_only_the_states_of_accounts_no_live_instance_holds() {
    let Some((url, ca_file)) = database().await else { return };
    let tool = Store::open_postgres(&url, Some(&ca_file), None).await.unwrap();
    let other = member(&url, &ca_file, "b", LEASE, &["work"]).await;
    for account in ["gone", "work"] {
        tool.report_watcher(watcher(account));
    }
    assert_eq!(accounts(&tool.watchers().await.unwrap()), ["gone", "work"]);
    let starting = member(&url, &ca_file, "a", LEASE, &[]).await;
    starting.clear_watchers().await.unwrap();
    assert_eq!(accounts(&tool.watchers().await.unwrap()), ["work"], "b's account is kept");
    // Nor does a member forget what another live instance reports for an account.
    starting.forget_watchers("work");
    assert_eq!(accounts(&starting.watchers().await.unwrap()), ["work"]);
    other.forget_watchers("work");
    assert!(other.watchers().await.unwrap().is_empty(), "the holder forgets its own");
    // A tool clears everything, as on SQLite.
    tool.report_watcher(watcher("work"));
    tool.clear_watchers().await.unwrap();
    assert!(tool.watchers().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_reply_is_recorded_only_by_the_current_holder_and_a_refused_one_leaves_no_row() {
    let Some(store) = holding_work().await else { return };
    let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000).unwrap();
    store.record_reply("work", "vacation", "a@x.org", at).await.unwrap();
    let error = store.record_reply("home", "vacation", "a@x.org", at).await.unwrap_err();
    assert!(matches!(error, Error::NotHeld { .. }), "{error:?}");
    take_over(&store, "work", "other").await;
    let later = at + chrono::Duration::hours(1);
    let error = store.record_reply("work", "vacation", "a@x.org", later).await.unwrap_err();
    assert!(matches!(error, Error::Lease(leases::Error::Stale { held: 1, current: 2, .. })), "{error:?}");
    assert_eq!(store.count_sent_since("work", at).await.unwrap(), 1, "the stale write was rolled back");
    assert_eq!(store.last_reply("work", "vacation", "a@x.org").await.unwrap(), Some(at));
}
