//! Collected items and schedule runs, through the public handle.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{Checkpoint, Collected, NewAction, RunOutcome, ScheduleRun, Store, test_backends};

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

const T0: i64 = 1_700_000_000_000;

fn cp(account: &str, last_uid: u32) -> Checkpoint {
    Checkpoint { account: account.into(), mailbox: "INBOX".into(), uidvalidity: 7, last_uid }
}

/// A live rule's `collect(name, data)` decision for message `uid`, keyed as the plan keys it.
fn collect(account: &str, uid: u32, name: &str, data: Value) -> NewAction {
    let key = format!("{account}/INBOX/7/{uid}/digest.rhai#0");
    NewAction::new(key, account, "collect", json!({"kind": "collect", "name": name, "data": data}))
        .for_message("INBOX", 7, uid)
}

/// Stores the plan of message `uid` of `account`'s INBOX: a collect and a flag.
async fn live(store: &Store, account: &str, uid: u32, name: &str, data: Value) {
    let flag = NewAction::new(format!("{account}/{uid}/flag"), account, "add_flags", json!({"flags": ["x"]}))
        .for_message("INBOX", 7, uid);
    store.commit_plan(&cp(account, uid), vec![collect(account, uid, name, data), flag]).await.unwrap();
}

fn digest(items: &[Value], up_to: i64) -> Collected {
    Collected { items: [("digest".to_owned(), items.to_vec())].into(), up_to }
}

fn outcome(messages: u64, error: Option<&str>) -> RunOutcome {
    RunOutcome {
        started_at: at(T0),
        finished_at: at(T0 + 1_000),
        messages,
        actions: 1,
        failures: 0,
        error: error.map(str::to_owned),
    }
}

/// The digest run at `fired`: one summary mail keyed by the fire, consuming what was read.
fn digest_run(fired: i64, read: &Collected) -> ScheduleRun {
    let summary = NewAction::new(format!("schedule/daily/{fired}/-/daily.rhai#0"), "work", "send", json!({}));
    ScheduleRun {
        name: "daily".into(),
        fired_at: at(fired),
        actions: vec![summary],
        consume: Some(("work".into(), vec!["digest".into()], read.up_to)),
        outcome: outcome(0, None),
    }
}

#[tokio::test]
async fn a_live_collect_is_stored_as_an_item_never_in_the_outbox_and_once_per_key() {
    for (backend, store) in test_backends::each().await {
        live(&store, "work", 1, "digest", json!({"subject": "one"})).await;
        let outbox = test_backends::actions(&store).await;
        assert_eq!(outbox.len(), 1, "{backend}: only the flag is an outbox action");
        assert!(outbox.iter().all(|a| a.kind != "collect"), "{backend}");
        // The same message's plan stored again (a batch replayed) adds no second item.
        store.commit_plans(vec![]).await.unwrap();
        let again = vec![collect("work", 1, "digest", json!({"subject": "changed"}))];
        store.commit_plan(&cp("work", 1), again).await.unwrap();
        let read = store.collected("work", 100).await.unwrap();
        assert_eq!(read, digest(&[json!({"subject": "one"})], 1), "{backend}");
        assert_eq!(store.collected("home", 100).await.unwrap(), Collected::default(), "{backend}: per account");
    }
}

#[tokio::test]
async fn a_run_consumes_only_what_it_read_so_an_item_collected_meanwhile_waits_for_the_next() {
    for (backend, store) in test_backends::each().await {
        live(&store, "work", 1, "digest", json!(1)).await;
        live(&store, "work", 2, "digest", json!(2)).await;
        live(&store, "work", 3, "other", json!("kept")).await;
        live(&store, "home", 1, "digest", json!("home")).await;
        let read = store.collected("work", 100).await.unwrap();
        assert_eq!(read.items["digest"], [json!(1), json!(2)], "{backend}");
        // While the digest rule runs, a new message is collected.
        live(&store, "work", 4, "digest", json!(4)).await;
        store.finish_schedule_run(digest_run(T0, &read)).await.unwrap();
        let left = store.collected("work", 100).await.unwrap();
        assert_eq!(left.items["digest"], [json!(4)], "{backend}: the item collected during the run survives");
        assert_eq!(left.items["other"], [json!("kept")], "{backend}: a name the rule did not read stays");
        let home = store.collected("home", 100).await.unwrap();
        assert_eq!(home.items["digest"], [json!("home")], "{backend}: another account's");
        assert_eq!(test_backends::pending(&store).await, 6, "{backend}: five flags and one summary");
        // A consumed item's key is still known: replaying message 1 does not bring it back.
        store.commit_plan(&cp("work", 4), vec![collect("work", 1, "digest", json!(1))]).await.unwrap();
        assert_eq!(store.collected("work", 100).await.unwrap().items["digest"], [json!(4)], "{backend}");
    }
}

#[tokio::test]
async fn a_crash_before_the_run_finishes_leaves_the_items_and_the_rerun_sends_once() {
    for (backend, store) in test_backends::each().await {
        live(&store, "work", 1, "digest", json!(1)).await;
        let read = store.collected("work", 100).await.unwrap();
        let run = digest_run(T0, &read);
        // A chunk stored, then the process dies before finish_schedule_run.
        store.commit_schedule_chunk(run.actions.clone()).await.unwrap();
        assert_eq!(store.last_schedule_run("daily").await.unwrap(), None, "{backend}: the fire is not recorded");
        assert_eq!(store.collected("work", 100).await.unwrap(), read, "{backend}: nothing consumed");
        // The restart runs the same fire again: the same keys, so one summary in all.
        let reread = store.collected("work", 100).await.unwrap();
        store.finish_schedule_run(digest_run(T0, &reread)).await.unwrap();
        let summaries = test_backends::actions(&store).await.into_iter().filter(|a| a.kind == "send").count();
        assert_eq!(summaries, 1, "{backend}");
        assert_eq!(store.collected("work", 100).await.unwrap(), Collected::default(), "{backend}");
        assert_eq!(store.last_schedule_run("daily").await.unwrap(), Some(at(T0)), "{backend}");
    }
}

#[tokio::test]
async fn the_limit_caps_what_a_run_loads_and_the_rest_waits() {
    for (backend, store) in test_backends::each().await {
        for uid in 1..=5 {
            live(&store, "work", uid, "digest", json!(uid)).await;
        }
        let read = store.collected("work", 2).await.unwrap();
        assert_eq!(read, digest(&[json!(1), json!(2)], 2), "{backend}");
        store.finish_schedule_run(digest_run(T0, &read)).await.unwrap();
        let rest = store.collected("work", 10).await.unwrap();
        assert_eq!(rest, digest(&[json!(3), json!(4), json!(5)], 5), "{backend}");
    }
}

/// On SQLite a restart reopens the file; on PostgreSQL it is a new pool on the same database.
#[tokio::test]
async fn collected_items_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    live(&store, "work", 1, "digest", json!({"subject": "kept"})).await;
    drop(store);
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.collected("work", 10).await.unwrap(), digest(&[json!({"subject": "kept"})], 1), "sqlite");
    let pg = tokio::task::spawn_blocking(|| {
        test_backends::cluster().map(|pg| (test_backends::fresh_database(pg), pg.ca_file.clone()))
    })
    .await
    .unwrap();
    let Some((url, ca_file)) = pg else { return };
    let store = Store::open_postgres(&url, Some(&ca_file), None).await.unwrap();
    live(&store, "work", 1, "digest", json!({"subject": "kept"})).await;
    drop(store);
    let store = Store::open_postgres(&url, Some(&ca_file), None).await.unwrap();
    assert_eq!(store.collected("work", 10).await.unwrap(), digest(&[json!({"subject": "kept"})], 1), "postgres");
}

#[tokio::test]
async fn runs_list_the_last_fire_with_its_outcome_which_only_moves_forward() {
    for (backend, store) in test_backends::each().await {
        assert!(store.schedule_runs().await.unwrap().is_empty(), "{backend}");
        let fire = T0 + 86_400_000;
        let mut failed = digest_run(fire, &Collected::default());
        failed.outcome = outcome(0, Some("cannot connect to imap.example.com"));
        failed.consume = None;
        store.finish_schedule_run(failed.clone()).await.unwrap();
        store.record_schedule_run("sweep", at(T0)).await.unwrap();
        let runs = store.schedule_runs().await.unwrap();
        let expected =
            [("daily".to_owned(), at(fire), Some(failed.outcome.clone())), ("sweep".to_owned(), at(T0), None)];
        assert_eq!(runs, expected, "{backend}");
        // A late finish of an earlier fire changes neither the time nor the outcome shown.
        store.finish_schedule_run(digest_run(T0, &Collected::default())).await.unwrap();
        let daily = store.schedule_runs().await.unwrap().remove(0);
        assert_eq!(daily, ("daily".to_owned(), at(fire), Some(failed.outcome)), "{backend}");
        // A later fire recorded without an outcome does not show the older run's.
        let later = at(fire) + Duration::days(1);
        store.record_schedule_run("daily", later).await.unwrap();
        assert_eq!(store.schedule_runs().await.unwrap()[0], ("daily".to_owned(), later, None), "{backend}");
        assert_eq!(store.last_schedule_run("daily").await.unwrap(), Some(later), "{backend}");
    }
}
