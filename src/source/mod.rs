//! Triggers: where messages come from.
//!
//! A [`watch::MailboxWatcher`] holds one IMAP connection per watched mailbox, fetches what is
//! new above its checkpoint, runs the rules over it and stores the plans, then idles until the
//! server reports a change; mailboxes beyond the account's connection budget are visited in
//! turn on one shared connection by a [`poll::MailboxPoller`]. A [`schedule::Scheduler`]
//! runs each schedule's rule on its clock: over the messages a server-side search selects,
//! or once with no message.
//!
//! Neither decides anything about mail (the rules do) nor changes anything on the server (the
//! executors do): they only read, and store the plans together with their position (a
//! watcher's checkpoint, a schedule's fire time).
//!
//! Layer: stage (see the map in lib.rs): built from `imap`, `store` and `rules`. What a watcher
//! reports goes to a [`report::Listener`] (which `health` implements), so nothing here imports the
//! orchestration above; its one link to `exec` is [`crate::exec::Wake`], rung after plans are
//! stored.

pub mod poll;
pub mod report;
pub mod schedule;
pub mod watch;
