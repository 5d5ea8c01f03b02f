//! One driver for the long-lived components: the mailbox watchers, the poller, the IMAP
//! executor and the outbound mail lane.
//!
//! A component only says what one [`Component::step`] came to: it [`Step::Worked`] (step
//! again at once), it is idle [`Until`] a deadline or a wake-up, it is [`Step::Done`] (a
//! `--once` pass is over), or its connection was [`Lost`] with an error that is either
//! retryable (a [`Trouble`], classed for its delay) or fatal. The driver ([`drive`]) owns what
//! each component would otherwise write again: stopping at shutdown, the reconnect backoff
//! ([`Backoff`], with its slow delay after a refused login and its short, once-reported one
//! after a configuration error), `--once`, and the log line of a lost connection.
//! Reconnecting itself is the connection's business ([`crate::imap::Kept`]).
//!
//! Layer: mechanism (see the map in lib.rs): it uses `imap`'s backoff and `causes`, so that the
//! stages (`source`, `exec`) can be driven by it without importing the runtime.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::causes::error_chain;
use crate::imap::retry::{Backoff, Class};

/// How long a component runs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Until the receiver turns true (or its sender is gone): the daemon.
    Daemon(watch::Receiver<bool>),
    /// `--once`: until the component is [`Step::Done`]; any fatal error ends it.
    Once,
}

/// What one step of a component came to.
pub enum Step {
    /// Something was done: step again at once.
    Worked,
    /// Nothing to do until this ends (or shutdown).
    Idle(Until),
    /// Nothing more to do: a `--once` pass is over.
    Done,
}

/// The end of an idle wait: a deadline, and maybe a wake-up before it.
pub struct Until {
    after: Duration,
    wake: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Until {
    /// After `after`, unless woken first.
    pub fn after(after: Duration) -> Until {
        Until { after, wake: None }
    }

    /// The same, ending early when `wake` completes.
    pub fn or(mut self, wake: impl Future<Output = ()> + Send + 'static) -> Until {
        self.wake = Some(match self.wake.take() {
            None => Box::pin(wake),
            Some(first) => Box::pin(async move {
                tokio::select! {
                    () = first => {}
                    () = wake => {}
                }
            }),
        });
        self
    }

    /// The same, ending early when `notify` is notified (a permit stored before counts).
    pub fn or_notified(self, notify: &Arc<Notify>) -> Until {
        let notify = notify.clone();
        self.or(async move { notify.notified().await })
    }
}

/// Why a step failed.
#[derive(Debug)]
pub enum Lost<E> {
    /// The connection failed: the driver waits its backoff and steps again.
    Retry(Trouble),
    /// Retrying will not help (the store failed; with `--once`, a refused login): the
    /// component ends with this error.
    Fatal(E),
}

/// A retryable failure: its class (for the delay) and its text (for the log and health).
#[derive(Debug, Clone)]
pub struct Trouble {
    class: Class,
    text: String,
}

impl Trouble {
    /// `error` (and its causes, on one line) as a failure of `class`.
    pub fn new(class: Class, error: &dyn std::error::Error) -> Trouble {
        Trouble { class, text: error_chain(error) }
    }

    /// A failed IMAP connection.
    pub fn imap(error: &crate::imap::Error) -> Trouble {
        Trouble::new(error.class(), error)
    }

    /// Its class.
    pub fn class(&self) -> Class {
        self.class
    }
}

impl<E> From<Trouble> for Lost<E> {
    fn from(trouble: Trouble) -> Lost<E> {
        Lost::Retry(trouble)
    }
}

/// What a component's log lines say when its connection is lost.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    /// After a refused login or a TLS failure (waits the slow delay).
    pub login: &'static str,
    /// After any other lost connection.
    pub lost: &'static str,
}

/// A long-lived component, driven by [`drive`].
pub trait Component: Send {
    /// What ends it for good.
    type Error: std::error::Error + Send;
    /// Its log lines for a lost connection.
    const WORDS: Words;

    /// One step. `run` says whether this is `--once`, resets the backoff once connected, and
    /// gives the shutdown to wait on inside a step (IDLE).
    fn step(&mut self, run: &mut Run) -> impl Future<Output = Result<Step, Lost<Self::Error>>> + Send;

    /// Its connection was lost; `said` is what the log says (for health).
    fn lost(&mut self, said: &str) {
        let _ = said;
    }

    /// It ends with `error` (for health).
    fn ended(&mut self, error: &Self::Error) {
        let _ = error;
    }

    /// It stops (shutdown, done, or ended): close what it holds.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// What a step may ask of the driver.
pub struct Run {
    shutdown: Option<watch::Receiver<bool>>,
    backoff: Backoff,
}

impl Run {
    fn new(mode: Mode) -> Run {
        let shutdown = match mode {
            Mode::Daemon(shutdown) => Some(shutdown),
            Mode::Once => None,
        };
        Run { shutdown, backoff: Backoff::default() }
    }

    /// Whether this is a `--once` pass.
    pub fn once(&self) -> bool {
        self.shutdown.is_none()
    }

    /// The connection works: the next failure waits the first delay again.
    pub fn connected(&mut self) {
        self.backoff.reset();
    }

    /// Whether shutdown was asked for (a shutdown sender gone counts as asking).
    pub fn stopping(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|s| *s.borrow() || s.has_changed().is_err())
    }

    /// Completes when shutdown is asked for (or its sender is gone); never with `--once`.
    pub async fn stopped(&mut self) {
        match self.shutdown.as_mut() {
            Some(shutdown) => {
                let _ = shutdown.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Waits until `until` ends or shutdown.
    async fn wait(&mut self, until: Until) {
        let wake = async {
            match until.wake {
                Some(wake) => wake.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(until.after) => {}
            () = wake => {}
            () = self.stopped() => {}
        }
    }

    /// What to say about a lost connection, and how long to wait before the next attempt.
    fn lost(&mut self, trouble: Trouble) -> Said {
        let delay = self.backoff.delay_after(trouble.class);
        let news = self.backoff.is_news_of(trouble.class);
        let text = match trouble.class {
            Class::Config => config_advice(&trouble.text),
            Class::Login | Class::Transient => trouble.text,
        };
        Said { class: trouble.class, text, delay, news }
    }
}

/// A lost connection as the log says it.
struct Said {
    class: Class,
    text: String,
    delay: Duration,
    /// A configuration error said before since the last success is not news: debug only.
    news: bool,
}

impl Said {
    fn log(&self, words: Words) {
        let (error, retry_in) = (&self.text, self.delay);
        match (self.class, self.news) {
            (Class::Config, true) => tracing::error!(%error, ?retry_in, "configuration error"),
            (Class::Config, false) => tracing::debug!(%error, ?retry_in, "configuration error"),
            (Class::Login, _) => tracing::error!(%error, ?retry_in, "{}", words.login),
            (Class::Transient, _) => tracing::warn!(%error, ?retry_in, "{}", words.lost),
        }
    }
}

/// A configuration error (an error chain) with what to do about it, for logs and `tidings status`.
pub fn config_advice(chain: &str) -> String {
    format!("{chain}; fix the config (or the file it names) and send SIGHUP; retrying meanwhile")
}

/// Runs `component` step by step until shutdown (or, with `--once`, until it is done),
/// waiting out its idle times and its backoff after a lost connection. A fatal error ends
/// it; it is closed in every case.
pub async fn drive<C: Component>(mut component: C, mode: Mode) -> Result<(), C::Error> {
    let mut run = Run::new(mode);
    let ended = loop {
        if run.stopping() {
            break Ok(());
        }
        match component.step(&mut run).await {
            Ok(Step::Worked) => {}
            Ok(Step::Done) => break Ok(()),
            Ok(Step::Idle(until)) => run.wait(until).await,
            Err(Lost::Retry(trouble)) => {
                let said = run.lost(trouble);
                // Health first: whoever reads the log line and then the status sees it there.
                component.lost(&said.text);
                said.log(C::WORDS);
                run.wait(Until::after(said.delay)).await;
            }
            Err(Lost::Fatal(error)) => {
                component.ended(&error);
                break Err(error);
            }
        }
    };
    component.close().await;
    ended
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
