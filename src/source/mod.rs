//! Triggers: where messages come from.
//!
//! A [`watch::MailboxWatcher`] holds one IMAP connection per watched mailbox, fetches what is
//! new above its checkpoint, runs the rules over it and stores the plans, then idles until the
//! server reports a change. Schedules (cron) join here later.
//!
//! A watcher decides nothing about mail (the rules do) and changes nothing on the server (the
//! executors do): it only reads, and it moves the checkpoint only together with the plans.

pub mod schedule;
pub mod watch;
