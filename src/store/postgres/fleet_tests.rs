//! Fleet members on one shared store: writes fenced by the leases they hold, takeovers,
//! heartbeats that notice a lost lease, and the fleet as `tidings status` reads it.

use std::time::Duration;

use serde_json::json;

use crate::store::postgres::leases;
use crate::store::test_backends::{database, member};
use crate::store::{Checkpoint, Error, NewAction, Outcome, Store};

/// Members `ids` of one fresh database, with leases of `lease` and none held yet, and a tool's
/// store on it; `None` when PostgreSQL is not installed (outside CI).
async fn members(ids: &[&str], lease: Duration) -> Option<(Vec<Store>, Store)> {
    let (url, ca) = database().await?;
    let mut stores = Vec::new();
    for id in ids {
        stores.push(member(&url, &ca, id, lease, &[]).await);
    }
    let tool = Store::open_postgres(&url, Some(&ca), None).await.unwrap();
    Some((stores, tool))
}

fn checkpoint(uid: u32) -> Checkpoint {
    Checkpoint { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 7, last_uid: uid }
}

fn flag(uid: u32) -> NewAction {
    NewAction::new(format!("work/INBOX/7/{uid}/flag"), "work", "add_flags", json!({"flags": ["x"]}))
        .for_message("INBOX", 7, uid)
}

fn is_stale(error: &Error) -> bool {
    matches!(error, Error::Lease(leases::Error::Stale { .. }))
}

#[tokio::test]
async fn a_member_writes_only_for_accounts_it_holds_and_not_after_a_takeover() {
    let Some((stores, tool)) = members(&["one", "two"], Duration::from_millis(600)).await else { return };
    let (one, two) = (&stores[0], &stores[1]);
    let (pg1, pg2) = (one.fleet().unwrap(), two.fleet().unwrap());

    let refused = one.commit_plan(&checkpoint(1), vec![flag(1)]).await.unwrap_err();
    assert!(matches!(refused, Error::NotHeld { ref account } if account == "work"), "{refused}");
    assert_eq!(pg1.claim("work").await.unwrap(), Some(1));
    assert_eq!(pg2.claim("work").await.unwrap(), None, "held and not expired");
    let ids = one.commit_plan(&checkpoint(1), vec![flag(1)]).await.unwrap();
    let claimed = one.claim_due_for("work", &["add_flags"], chrono::Utc::now(), 10).await.unwrap();
    assert_eq!(claimed.iter().map(|a| a.id).collect::<Vec<_>>(), ids);

    // `one` stalls past its lease; `two` takes the account over with the next epoch.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(pg2.claim("work").await.unwrap(), Some(2));
    // Every kind of write `one` might still attempt is refused by the epoch check.
    let late = [
        one.commit_plan(&checkpoint(2), vec![flag(2)]).await.unwrap_err(),
        one.set_checkpoint(&checkpoint(9)).await.unwrap_err(),
        one.record_outcome(ids[0], Outcome::Done).await.unwrap_err(),
        one.claim_due_for("work", &["add_flags"], chrono::Utc::now(), 10).await.unwrap_err(),
    ];
    for error in &late {
        assert!(is_stale(error), "expected a stale epoch: {error}");
    }
    assert_eq!(tool.checkpoint("work", "INBOX").await.unwrap(), Some(checkpoint(1)), "no late write landed");
    // Its next heartbeat finds the lease gone and forgets it: from then on it is NotHeld.
    assert_eq!(pg1.heartbeat().await.unwrap(), vec!["work".to_owned()]);
    assert_eq!(pg1.held(), Some(vec![]));
    let after = one.commit_plan(&checkpoint(2), vec![flag(2)]).await.unwrap_err();
    assert!(matches!(after, Error::NotHeld { .. }), "{after}");

    // The new owner recovers what `one` left in flight and carries on.
    let recovered = two.recover_in_flight_of("work").await.unwrap();
    assert_eq!(recovered.iter().map(|a| a.id).collect::<Vec<_>>(), ids);
    two.commit_plan(&checkpoint(2), vec![flag(2)]).await.unwrap();
    assert_eq!(tool.checkpoint("work", "INBOX").await.unwrap(), Some(checkpoint(2)));
}

#[tokio::test]
async fn heartbeats_keep_leases_and_the_fleet_view_shows_who_holds_what() {
    let Some((stores, tool)) = members(&["one", "two"], Duration::from_millis(800)).await else { return };
    let (pg1, pg2) = (stores[0].fleet().unwrap(), stores[1].fleet().unwrap());
    for account in ["a", "b"] {
        assert!(pg1.claim(account).await.unwrap().is_some());
    }
    assert!(pg2.claim("c").await.unwrap().is_some());
    // Renewed four times over three lease lengths: still held, nothing lost.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(pg1.heartbeat().await.unwrap(), Vec::<String>::new());
    }
    assert_eq!(pg2.claim("a").await.unwrap(), None);
    let (live, taken) = pg2.others().await.unwrap();
    assert_eq!(
        (live, taken.into_iter().collect::<Vec<_>>()),
        (2, vec!["a".to_owned(), "b".to_owned()]),
        "one, and itself"
    );

    let view = tool.fleet().unwrap().view().await.unwrap();
    let by_id: Vec<(&str, bool, Vec<&str>)> = view
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.alive, i.accounts.iter().map(|(a, _, _)| a.as_str()).collect()))
        .collect();
    assert_eq!(by_id, [("one", true, vec!["a", "b"]), ("two", false, vec![])], "two never renewed: expired");
    assert_eq!(view.unheld, ["c"]);

    pg1.leave().await.unwrap();
    let view = tool.fleet().unwrap().view().await.unwrap();
    assert!(view.instances.iter().all(|i| i.id != "one"), "{view:?}");
    assert_eq!(view.unheld, ["a", "b", "c"]);
    assert_eq!(pg2.claim("a").await.unwrap(), Some(2), "released: claimable at once, next epoch");
}

#[tokio::test]
async fn a_tool_writes_unfenced_and_a_member_claims_only_what_it_holds() {
    let Some((stores, tool)) = members(&["one"], Duration::from_secs(30)).await else { return };
    let one = &stores[0];
    one.fleet().unwrap().claim("work").await.unwrap();
    one.commit_plan(&checkpoint(1), vec![flag(1)]).await.unwrap();
    // A person's tool is no member: it writes for any account.
    let other = Checkpoint { account: "home".into(), ..checkpoint(3) };
    let home = NewAction { key: "home/1".into(), account: "home".into(), ..flag(3) };
    tool.commit_plan(&other, vec![home]).await.unwrap();
    // `claim_due` of a member takes only the accounts it holds.
    let claimed = one.claim_due(chrono::Utc::now(), 10).await.unwrap();
    assert_eq!(claimed.iter().map(|a| a.account.as_str()).collect::<Vec<_>>(), ["work"]);
    assert_eq!(tool.claim_due(chrono::Utc::now(), 10).await.unwrap().len(), 1, "the tool takes home's");
    // An alert about an account it does not hold is stored (once, by key); a plan is not.
    let alert = || NewAction::new("alert/watcher_down/home/INBOX/1", "home", "webhook", json!({}));
    let refused = one.commit_schedule_chunk(vec![alert()]).await.unwrap_err();
    assert!(matches!(refused, Error::NotHeld { .. }), "{refused}");
    assert_eq!(one.commit_alerts(vec![alert()]).await.unwrap().len(), 1);
    assert_eq!(tool.commit_alerts(vec![alert()]).await.unwrap().len(), 0, "the same alert from another instance");
}

#[tokio::test]
async fn a_tool_cannot_take_part_in_the_fleet() {
    let Some((_, tool)) = members(&[], Duration::from_secs(30)).await else { return };
    let pg = tool.fleet().unwrap();
    let refused = pg.claim("work").await.unwrap_err();
    assert!(matches!(refused, Error::NotAMember { verb: "claim a lease" }), "{refused}");
    assert!(matches!(pg.heartbeat().await, Err(Error::NotAMember { .. })));
    assert_eq!(pg.held(), None, "a tool writes for any account, fenced by nothing");
}
