//! Schedule runs, on both backends.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::store::{NewAction, test_backends};

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

#[tokio::test]
async fn schedule_run_round_trips_and_never_moves_back() {
    for (backend, store) in test_backends::each().await {
        let t = at(1_700_000_000_456);
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), None, "{backend}");
        store.record_schedule_run("digest", t).await.unwrap();
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t), "{backend}");
        store.record_schedule_run("digest", t - Duration::days(1)).await.unwrap();
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t), "{backend}");
        let later = t + Duration::days(1);
        store.record_schedule_run("digest", later).await.unwrap();
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(later), "{backend}");
        assert_eq!(store.last_schedule_run("other").await.unwrap(), None, "{backend}");
    }
}

#[tokio::test]
async fn schedule_plan_stores_actions_and_run_together() {
    for (backend, store) in test_backends::each().await {
        let t = at(1_700_000_000_000);
        let action = NewAction::new("digest@1700000000000", "work", "webhook", json!({}));
        let ids = store.commit_schedule_plan("digest", t, vec![action.clone()]).await.unwrap();
        assert_eq!(ids.len(), 1, "{backend}");
        assert_eq!(store.last_schedule_run("digest").await.unwrap(), Some(t), "{backend}");
        let again = store.commit_schedule_plan("digest", t, vec![action]).await.unwrap();
        assert!(again.is_empty(), "{backend}: the same run planned twice stores nothing new");
        assert_eq!(test_backends::pending(&store).await, 1, "{backend}");
    }
}
