//! Watcher states, on both backends.

use chrono::{DateTime, Utc};

use super::WatcherRecord;
use crate::store::test_backends;

/// The `i`th state reported for `account`'s INBOX.
fn report(account: &str, i: u64) -> WatcherRecord {
    let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + i64::try_from(i).unwrap()).unwrap();
    WatcherRecord {
        account: account.into(),
        mailbox: "INBOX".into(),
        state: ["connecting", "idle", "polling", "down"][usize::try_from(i % 4).unwrap()].into(),
        since: at,
        last_error: (i % 4 == 3).then(|| format!("error {i}")),
        reconnects: i,
        updated_at: at,
    }
}

#[tokio::test]
async fn states_are_written_in_the_order_reported_and_forgotten_per_account() {
    for (backend, store) in test_backends::each().await {
        for i in 0..50 {
            store.report_watcher(report("work", i));
        }
        store.report_watcher(report("home", 7));
        let shown = store.watchers().await.unwrap();
        assert_eq!(shown, [report("home", 7), report("work", 49)], "{backend}: the last report of each");
        store.forget_watchers("home");
        assert_eq!(store.watchers().await.unwrap(), [report("work", 49)], "{backend}");
        store.report_watcher(report("home", 8));
        store.clear_watchers().await.unwrap();
        assert!(store.watchers().await.unwrap().is_empty(), "{backend}: a report made before the clear is cleared");
    }
}

/// The awaited write (the daemon's probe before it starts an account that failed on the
/// store again) lands after the reports posted before it, and replaces them.
#[tokio::test]
async fn a_recorded_state_is_written_when_the_call_returns_after_earlier_reports() {
    for (backend, store) in test_backends::each().await {
        for i in 0..20 {
            store.report_watcher(report("work", i));
        }
        store.record_watcher(report("work", 23)).await.unwrap();
        assert_eq!(store.watchers().await.unwrap(), [report("work", 23)], "{backend}");
    }
}
