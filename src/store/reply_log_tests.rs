//! The reply log, on both backends.

use chrono::{DateTime, Duration, Utc};

use crate::store::test_backends::each;

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

#[tokio::test]
async fn last_reply_is_per_account_handle_and_sender() {
    for (backend, store) in each().await {
        let t = at(1_700_000_000_123);
        assert_eq!(store.last_reply("work", "vacation", "a@x.org").await.unwrap(), None, "{backend}");
        store.record_reply("work", "vacation", "a@x.org", t).await.unwrap();
        store.record_reply("work", "vacation", "a@x.org", t + Duration::hours(1)).await.unwrap();
        let last = store.last_reply("work", "vacation", "a@x.org").await.unwrap();
        assert_eq!(last, Some(t + Duration::hours(1)), "{backend}");
        assert_eq!(store.last_reply("work", "vacation", "b@x.org").await.unwrap(), None, "{backend}");
        assert_eq!(store.last_reply("work", "other", "a@x.org").await.unwrap(), None, "{backend}");
        assert_eq!(store.last_reply("home", "vacation", "a@x.org").await.unwrap(), None, "{backend}");
    }
}

#[tokio::test]
async fn count_sent_since_counts_one_account_from_a_time_on() {
    for (backend, store) in each().await {
        let t = at(1_700_000_000_000);
        for (account, sender, offset) in
            [("work", "a@x.org", 0), ("work", "b@x.org", 10), ("work", "c@x.org", 20), ("home", "a@x.org", 20)]
        {
            let sent = t + Duration::minutes(offset);
            store.record_reply(account, "h", sender, sent).await.unwrap();
        }
        assert_eq!(store.count_sent_since("work", t).await.unwrap(), 3, "{backend}");
        assert_eq!(store.count_sent_since("work", t + Duration::minutes(10)).await.unwrap(), 2, "{backend}");
        assert_eq!(store.count_sent_since("work", t + Duration::minutes(21)).await.unwrap(), 0, "{backend}");
        assert_eq!(store.count_sent_since("home", t).await.unwrap(), 1, "{backend}");
    }
}
