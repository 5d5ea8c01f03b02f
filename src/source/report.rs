//! What a watcher reports: its connection's state and what it stored, in the stages' own words.
//!
//! The watchers speak to a [`Listener`] and know nothing of who listens: the daemon's health
//! board (`health`) implements it, a lone watcher (tests, tools) reports to nobody. So the
//! stages never import what sits above them.

use std::fmt::Debug;
use std::sync::Arc;

/// Who hears what one watcher reports.
pub trait Listener: Send + Sync + Debug {
    /// Selected the mailbox and is waiting for mail (`idle`: in IDLE, else polling).
    fn watching(&self, idle: bool);
    /// The connection failed or was refused, for the reason `error`.
    fn failed(&self, error: &str);
    /// `count` messages were decided on and their plans stored; the rules in `matched` decided
    /// something for one of them (once per message), those in `failed` failed on one.
    fn stored(&self, count: usize, matched: &[&str], failed: &[&str]);
}

/// Where one watcher reports; cheap to clone.
#[derive(Clone, Debug)]
pub struct Report(Arc<dyn Listener>);

/// The listener of a watcher nobody watches.
#[derive(Debug)]
struct Nobody;

impl Listener for Nobody {
    fn watching(&self, _: bool) {}
    fn failed(&self, _: &str) {}
    fn stored(&self, _: usize, _: &[&str], _: &[&str]) {}
}

impl Report {
    /// Reports to `listener`.
    pub fn to(listener: impl Listener + 'static) -> Report {
        Report(Arc::new(listener))
    }

    /// Reports to nobody.
    pub fn nobody() -> Report {
        Report(Arc::new(Nobody))
    }

    /// See [`Listener::watching`].
    pub fn watching(&self, idle: bool) {
        self.0.watching(idle);
    }

    /// See [`Listener::failed`].
    pub fn failed(&self, error: &str) {
        self.0.failed(error);
    }

    /// See [`Listener::stored`].
    pub fn stored<'a>(
        &self,
        count: usize,
        matched: impl IntoIterator<Item = &'a str>,
        failed: impl IntoIterator<Item = &'a str>,
    ) {
        let matched: Vec<&str> = matched.into_iter().collect();
        let failed: Vec<&str> = failed.into_iter().collect();
        self.0.stored(count, &matched, &failed);
    }
}
