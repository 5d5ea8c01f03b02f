//! What the outbox does on PostgreSQL only: several instances claiming from one table, and a
//! fleet member's writes fenced by the leases it holds. (The behaviour both backends share is
//! tested on both, in `store::outbox_tests` and `store::sending_tests`.)

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::leases;
use crate::store::test_backends::{database, member, take_over};
use crate::store::{ActionId, ActionState, Error, NewAction, Outcome, SendGate, SendStart, Store};

/// A store on a fresh database, opened as a tool would (unfenced), and the means to open more
/// handles on it; `None` without PostgreSQL (the skip is reported by `test_backends`).
async fn shared() -> Option<(Store, String, std::path::PathBuf)> {
    let (url, ca_file) = database().await?;
    let store = Store::open_postgres(&url, Some(&ca_file), None).await.unwrap();
    Some((store, url, ca_file))
}

/// Stores `n` due webhooks of `account`, keyed `{account}-{i}`; their ids.
async fn due(store: &Store, account: &str, n: usize) -> Vec<ActionId> {
    let actions: Vec<_> =
        (0..n).map(|i| NewAction::new(format!("{account}-{i}"), account, "webhook", json!({}))).collect();
    store.commit_schedule_chunk(actions).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_claiming_from_one_outbox_at_once_never_take_the_same_action() {
    let Some((store, url, ca_file)) = shared().await else { return };
    let all: BTreeSet<ActionId> = due(&store, "work", 200).await.into_iter().collect();
    let other = Store::open_postgres(&url, Some(&ca_file), None).await.unwrap();
    // One instance claims every account's actions, the other one account's webhooks: both
    // claim paths, in batches of 7 until nothing is left.
    let claimer = |store: Store, per_account: bool| {
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = if per_account {
                    store.claim_due_for("work", &["webhook"], Utc::now(), 7).await.unwrap()
                } else {
                    store.claim_due(Utc::now(), 7).await.unwrap()
                };
                if batch.is_empty() {
                    return claimed;
                }
                assert!(batch.len() <= 7);
                claimed.extend(batch.into_iter().map(|a| a.id));
            }
        })
    };
    let (first, second) = (claimer(store.clone(), false), claimer(other, true));
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    let (first_set, second_set): (BTreeSet<_>, BTreeSet<_>) =
        (first.iter().copied().collect(), second.iter().copied().collect());
    assert_eq!((first_set.len(), second_set.len()), (first.len(), second.len()), "no instance claims twice");
    let both: Vec<_> = first_set.intersection(&second_set).collect();
    assert!(both.is_empty(), "claimed by both instances: {both:?}");
    assert_eq!(first_set.union(&second_set).copied().collect::<BTreeSet<_>>(), all);
    let in_flight = store.list_outbox(None, 500).await.unwrap();
    assert!(in_flight.iter().all(|a| (a.state, a.attempts) == (ActionState::InFlight, 1)), "each claimed once");
}

fn not_held(result: Result<impl std::fmt::Debug, Error>, account: &str) {
    assert!(matches!(&result, Err(Error::NotHeld { account: a }) if a == account), "{result:?}");
}

fn stale(result: Result<impl std::fmt::Debug, Error>, account: &str) {
    let is_stale = matches!(&result, Err(Error::Lease(leases::Error::Stale { account: a, .. })) if a == account);
    assert!(is_stale, "{result:?}");
}

#[tokio::test]
async fn a_fleet_member_claims_recovers_and_writes_only_for_the_accounts_it_holds() {
    let Some((tool, url, ca_file)) = shared().await else { return };
    let work = due(&tool, "work", 2).await;
    let home = due(&tool, "home", 2).await;
    let member = member(&url, &ca_file, "a", Duration::from_secs(60), &["work"]).await;

    assert_eq!(member.claim_due(Utc::now(), 10).await.unwrap().len(), 2, "work's only");
    not_held(member.claim_due_for("home", &["webhook"], Utc::now(), 10).await, "home");
    assert_eq!(tool.claim_due(Utc::now(), 10).await.unwrap().len(), 2, "home's were left pending");
    not_held(member.record_outcome(home[0], Outcome::Done).await, "home");
    not_held(member.record_outcomes(vec![(work[0], Outcome::Done), (home[0], Outcome::Done)]).await, "home");
    assert_eq!(tool.action(work[0]).await.unwrap().unwrap().state, ActionState::InFlight, "all or none");
    not_held(member.complete_with(home[0], None).await, "home");
    not_held(member.record_reply("home", "h", "a@x.org", Utc::now()).await, "home");
    not_held(member.recover_in_flight_of("home").await, "home");

    let recovered = member.recover_in_flight().await.unwrap();
    assert_eq!(recovered.iter().map(|a| a.id).collect::<Vec<_>>(), work, "only work's are settled");
    assert_eq!(tool.action(home[1]).await.unwrap().unwrap().state, ActionState::InFlight);
    member.requeue_uncertain(work[0]).await.unwrap();
    member.record_reply("work", "h", "a@x.org", Utc::now()).await.unwrap();
    // A person's tool is not a fleet member: it acts on any account.
    tool.record_outcome(home[0], Outcome::Done).await.unwrap();
    tool.record_outcome(home[1], Outcome::Failed { error: "500".into() }).await.unwrap();
    let retried: Vec<_> = member.retry_all().await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(retried, [work[1]], "the uncertain one of work, not the failed one of home");
    assert_eq!(tool.action(home[1]).await.unwrap().unwrap().state, ActionState::Failed);
}

#[tokio::test]
async fn a_fleet_member_whose_lease_was_taken_over_cannot_write_for_the_account() {
    let Some((tool, url, ca_file)) = shared().await else { return };
    let ids = due(&tool, "work", 4).await;
    let member = member(&url, &ca_file, "a", Duration::from_secs(60), &["work"]).await;
    let claimed = member.claim_due(Utc::now(), 3).await.unwrap();
    assert_eq!(claimed.len(), 3);
    member.record_outcome(ids[0], Outcome::Failed { error: "500".into() }).await.unwrap();
    take_over(&tool, "work", "b").await;

    stale(member.record_outcome(ids[1], Outcome::Done).await, "work");
    let start = SendStart {
        account: "work".into(),
        kind: "send".into(),
        once_per: None,
        daily_limit: 10,
        forward_rate: None,
        recipient: "a@x.org".into(),
        now: Utc::now(),
    };
    stale(member.begin_send(ids[1], start.clone()).await, "work");
    stale(member.complete_with(ids[1], None).await, "work");
    stale(member.retry(ids[0]).await, "work");
    stale(member.retry_all().await, "work");
    stale(member.drop_action(ids[3]).await, "work");
    stale(member.claim_due_for("work", &["webhook"], Utc::now(), 10).await, "work");
    stale(member.claim_due(Utc::now(), 10).await, "work");
    stale(member.recover_in_flight().await, "work");
    stale(member.record_reply("work", "h", "a@x.org", Utc::now()).await, "work");
    // Nothing of it was stored: the new owner finds the account as the old one left it.
    let states: Vec<_> = tool.list_outbox(None, 10).await.unwrap().into_iter().rev().map(|a| a.state).collect();
    let expected = [ActionState::Failed, ActionState::InFlight, ActionState::InFlight, ActionState::Pending];
    assert_eq!(states, expected);
    assert_eq!(tool.count_sent_since("work", Utc::now() - chrono::Duration::days(1)).await.unwrap(), 0);
    assert_eq!(tool.begin_send(ids[1], start).await.unwrap(), SendGate::Go, "the unfenced tool still may");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sending_at_once_never_pass_the_daily_cap_together() {
    let Some((store, url, ca_file)) = shared().await else { return };
    let actions: Vec<_> = (0..40).map(|i| NewAction::new(format!("send-{i}"), "work", "send", json!({}))).collect();
    let ids = store.commit_schedule_chunk(actions).await.unwrap();
    assert_eq!(store.claim_due(Utc::now(), 40).await.unwrap().len(), 40);
    let other = Store::open_postgres(&url, Some(&ca_file), None).await.unwrap();
    let now = Utc::now();
    let sender = |store: Store, ids: Vec<ActionId>| {
        tokio::spawn(async move {
            let mut sent = 0;
            for id in ids {
                let start = SendStart {
                    account: "work".into(),
                    kind: "send".into(),
                    once_per: None,
                    daily_limit: 10,
                    forward_rate: None,
                    recipient: format!("{id}@x.org"),
                    now,
                };
                if store.begin_send(id, start).await.unwrap() == SendGate::Go {
                    sent += 1;
                }
            }
            sent
        })
    };
    // Eight senders at once, four per instance, each with every eighth action: all of them
    // reach the cap's last slots together.
    let mut senders = Vec::new();
    for task in 0..8 {
        let mine: Vec<_> = ids.iter().copied().skip(task).step_by(8).collect();
        senders.push(sender(if task % 2 == 0 { store.clone() } else { other.clone() }, mine));
    }
    let mut sent = 0;
    for task in senders {
        sent += task.await.unwrap();
    }
    assert_eq!(sent, 10, "the gate let through more than the cap");
    assert_eq!(store.count_sent_since("work", now - chrono::Duration::days(1)).await.unwrap(), 10);
    assert_eq!(store.outbox_counts().await.unwrap().failed, 30);
}
