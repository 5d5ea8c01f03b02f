//! Waking an account's executors when a watcher has stored plans.
//!
//! Each executor lane waits on its own `Notify`: one shared `Notify` would wake only one of
//! them (`notify_one`) or lose the wake-up of a lane that was busy (`notify_waiters`).

use std::sync::Arc;

use tokio::sync::Notify;

/// One wake-up per lane: the IMAP executor, the mail lane and the event lane.
#[derive(Debug, Default)]
pub struct Wake {
    /// The IMAP executor (actions on the message in its mailbox).
    pub mailbox: Arc<Notify>,
    /// The mail lane of the outbound dispatcher.
    pub mail: Arc<Notify>,
    /// The event lane (webhooks, commands).
    pub events: Arc<Notify>,
}

impl Wake {
    /// Wakes every lane; a lane that is busy finds the permit when it next waits.
    pub fn notify(&self) {
        self.mailbox.notify_one();
        self.mail.notify_one();
        self.events.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Wake;

    #[tokio::test]
    async fn a_wake_reaches_every_lane_even_one_that_was_not_waiting_yet() {
        let wake = Wake::default();
        wake.notify();
        for notify in [&wake.mailbox, &wake.mail, &wake.events] {
            tokio::time::timeout(Duration::from_secs(1), notify.notified()).await.expect("the permit was kept");
        }
    }
}
