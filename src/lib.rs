//! tidings: mail-to-event automation.
//!
//! Mail flows through one pipeline, and the modules follow it in order:
//!
//! ```text
//!  trigger ──> message view ──> rules ──> plan ──> store ──> executors
//!  (IMAP IDLE   (parsed once,    (Rhai,    (actions (outbox,   (IMAP ops, SMTP,
//!   or cron)     immutable)       pure)     to do)   checkpoint) webhooks: once)
//! ```
//!
//! The modules stand in four layers. A module imports only from its own layer or those below,
//! and never in a cycle: a test (src/layers_tests.rs) reads every `crate::` path in src/ and
//! holds the code to this map.
//!
//! ```text
//!  orchestration   runtime   tooling   health   error   (and the binary: main, cli)
//!        │
//!  stages          source    exec
//!        │
//!  mechanism       imap   store   rules   auth   lifecycle
//!        │
//!  data            config   message   plan   telemetry   causes
//! ```
//!
//! Data: what the program talks about, with no IO beyond reading files.
//! - [`config`]: the YAML file, in two stages: a positioned tree as the user wrote it, then a
//!   validated [`config::Config`] in which every problem was reported at once. Settings only:
//!   no connection, no token cache (the runtime owns those).
//! - [`message`]: the [`message::MessageView`]: one message parsed once, immutable, read by every rule.
//! - [`plan`]: what the rules decided for one message, ordered (flags, copies, one final move
//!   or delete) and keyed so that storing it twice stores it once.
//! - [`telemetry`]: the tracing subscriber and the span and field names used everywhere.
//! - [`causes`]: an error and its causes on one line, for logs and records; a leaf that imports
//!   nothing from the crate, so every layer may use it.
//!
//! Mechanism: one concern each, talking to one thing.
//! - [`imap`]: one IMAP session (TLS, login, fetch, IDLE, move/copy/store) over async-imap, with deadlines.
//! - [`store`]: mailbox checkpoints, the action outbox, the reply log and schedule runs, in an
//!   embedded SQLite file or, for a fleet of instances, a shared PostgreSQL database whose
//!   writes are fenced by account leases. Everything that must survive a crash goes through it.
//! - [`rules`]: the Rhai engine and the rule scripts, compiled at start-up so that a bad rule
//!   fails before any mail is touched.
//! - [`auth`]: an account's [`auth::Credentials`] (its password, or OAuth2 access tokens
//!   refreshed before expiry, rotation written back), XOAUTH2, and `tidings auth`'s flows for the
//!   first refresh token.
//! - [`lifecycle`]: the one driver of the long-lived components (watchers, poller, executors):
//!   shutdown, reconnect backoff, `--once` and the log line of a lost connection.
//!
//! Stages: the pipeline's moving parts, built from the mechanisms.
//! - [`source`]: the triggers: a watcher per mailbox (catch up from the checkpoint, then IDLE
//!   or poll) and the cron schedules with their server-side sweeps. What a watcher reports goes
//!   to a [`source::report::Listener`]; it knows nothing of who listens.
//! - [`exec`]: the executors that carry out stored actions exactly once: IMAP operations in
//!   batched UID sets, and the outbound lanes (SMTP mail, webhooks, commands).
//!
//! Orchestration: what runs the stages and shows what they did.
//! - [`runtime`]: `run(config, shutdown)`, the daemon; the shutdown trigger is a future so that
//!   `main` and tests decide when to stop. It resolves each account's credentials once and owns
//!   them. On a shared store it is a fleet member: it claims its share of the accounts and takes
//!   over those of instances that died.
//! - [`health`]: what every watcher's connection is doing and what happened, for `/healthz`,
//!   `/metrics` (the optional HTTP listener) and `tidings status`; it listens to the watchers.
//! - [`tooling`]: `tidings test` (rules over `.eml` files and fixtures, no network) and
//!   `tidings dry-run` (rules over a real mailbox, read-only): what the pipeline would do.
//! - [`error`]: the crate's [`Error`], one variant per module's error.

pub mod auth;
pub mod causes;
pub mod config;
pub mod error;
pub mod exec;
pub mod health;
pub mod imap;
pub mod lifecycle;
pub mod message;
pub mod plan;
pub mod rules;
pub mod runtime;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod tooling;

pub use error::{Error, Result};

#[cfg(test)]
mod layers_tests;
