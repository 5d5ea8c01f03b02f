//! The pruner: once at start and then every `retention: every`, it forgets what the store no
//! longer needs (see `store::retention`), a small batch per store call with a pause between, so
//! that watchers and executors sharing the store never wait long behind it. Every instance of a
//! fleet runs one; pruning is safe from all of them at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::Retention;
use crate::store::{Prunable, Store};

/// Rows deleted (or emptied) per store call.
pub const BATCH: usize = 500;
/// The pause between two batches.
const PAUSE: Duration = Duration::from_millis(100);
/// Gmail's seen message ids are kept at least this long whatever `history` says: a message
/// seen in a second label folder later than that is acted on again.
const GMAIL_SEEN_AT_LEAST: Duration = Duration::from_secs(30 * 86_400);

/// Prunes `store` as `retention` says until shutdown.
pub struct Pruner {
    /// The store.
    pub store: Store,
    /// How long what is kept.
    pub retention: Retention,
}

impl Pruner {
    /// Prunes at once, then every `retention.every`, until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if !self.pass(&mut shutdown).await {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(self.retention.every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One pass over every kind of row, batch by batch; returns false when shutdown came first.
    pub async fn pass(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let now = Utc::now();
        let mut pruned = Vec::new();
        for what in Prunable::ALL {
            let Some(before) = cutoff(what, &self.retention, now) else { continue };
            let mut total = 0;
            loop {
                if *shutdown.borrow_and_update() {
                    return false;
                }
                let n = match self.store.prune(what, before, BATCH).await {
                    Ok(n) => n,
                    Err(error) => {
                        let error = crate::causes::error_chain(&error);
                        tracing::warn!(%error, what = what.name(), "cannot prune the store; trying again at the next pass");
                        break;
                    }
                };
                total += n;
                if n < BATCH as u64 {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(PAUSE) => {}
                    _ = shutdown.changed() => return false,
                }
            }
            if total > 0 {
                pruned.push(format!("{total} {}", what.name()));
            }
        }
        if pruned.is_empty() {
            tracing::debug!("store pruned: nothing was due");
        } else {
            tracing::info!(pruned = %pruned.join(", "), "store pruned");
        }
        true
    }
}

/// The time before which rows of `what` are old at `now`; `None`: kept forever.
fn cutoff(what: Prunable, retention: &Retention, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let keep = match what {
        // Content goes as soon as an action settles: any settled before now.
        Prunable::Content => Some(Duration::ZERO),
        Prunable::Actions => retention.actions,
        Prunable::Messages => retention.history,
        Prunable::GmailSeen => retention.history.map(|h| h.max(GMAIL_SEEN_AT_LEAST)),
        Prunable::RuleFailures => retention.rule_failures,
        Prunable::ReplyLog => retention.reply_log,
        Prunable::Collected => retention.collected,
    }?;
    Some(now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forever_keeps_and_gmail_ids_are_kept_a_month_at_least() {
        let now = Utc::now();
        let retention = Retention { history: Some(Duration::from_secs(60)), actions: None, ..Retention::default() };
        assert_eq!(cutoff(Prunable::Actions, &retention, now), None);
        assert_eq!(cutoff(Prunable::Messages, &retention, now), Some(now - chrono::Duration::seconds(60)));
        assert_eq!(cutoff(Prunable::GmailSeen, &retention, now), Some(now - chrono::Duration::days(30)));
        assert_eq!(cutoff(Prunable::Content, &retention, now), Some(now));
    }

    /// More old rows than a batch: one pass deletes them all, batch by batch, and stops at once
    /// when shutdown is asked for.
    #[tokio::test]
    async fn a_pass_goes_through_every_batch_and_stops_at_shutdown() {
        use crate::store::{Checkpoint, NewAction, Outcome};
        let store = Store::open_in_memory().await.unwrap();
        let checkpoint = Checkpoint { account: "a".into(), mailbox: "INBOX".into(), uidvalidity: 1, last_uid: 1 };
        let actions = (0..BATCH + 20)
            .map(|n| NewAction::new(format!("k{n}"), "a", "move", serde_json::json!({"mailbox": "X"})))
            .collect();
        store.commit_plan(&checkpoint, actions).await.unwrap();
        let claimed = store.claim_due(Utc::now(), usize::MAX).await.unwrap();
        let done = claimed.iter().map(|a| (a.id, Outcome::Done)).collect();
        store.record_outcomes(done).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;

        let (stop, mut stopping) = watch::channel(true);
        let pruner = Pruner {
            store: store.clone(),
            retention: Retention { actions: Some(Duration::from_millis(1)), ..Retention::default() },
        };
        assert!(!pruner.pass(&mut stopping).await, "shutdown first: nothing done");
        assert_eq!(store.outbox_counts().await.unwrap().done, (BATCH + 20) as u64);
        stop.send(false).unwrap();
        assert!(pruner.pass(&mut stopping).await);
        assert_eq!(store.outbox_counts().await.unwrap().done, 0);
    }

    /// Between passes the pruner sleeps `every`, and shutdown ends the sleep at once.
    #[tokio::test]
    async fn shutdown_stops_the_pruner_between_passes() {
        let store = Store::open_in_memory().await.unwrap();
        let (stop, stopping) = watch::channel(false);
        let pruner = Pruner { store, retention: Retention::default() };
        let running = tokio::spawn(pruner.run(stopping));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!running.is_finished(), "it waits an hour for its next pass");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running).await.expect("stopped at shutdown").unwrap();
    }
}
