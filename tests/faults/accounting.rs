//! The exact accounting each fault test ends with: what was delivered, what tidings processed
//! and did about it, counted where it landed (the target folder, the webhook receiver, the
//! mailbox Postfix delivered replies to) and in the store. Printed, then asserted: every
//! delivered message processed, IMAP moves exactly once, webhooks at least once (duplicates
//! counted), mail at most once (uncertain rows listed by `tidings outbox`, never sent twice).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use tidings::store::{Action, ActionState, Store};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Receiver, TestEnv, User, message};

/// How long a run may take to settle after its last fault.
const SETTLE: Duration = Duration::from_secs(90);

/// One message delivered to the account's INBOX (LMTP said 250).
#[derive(Clone, Debug)]
pub struct Delivered {
    /// Its Message-ID, without angle brackets.
    pub id: String,
    /// Its subject, unique per test run.
    pub subject: String,
}

/// Delivers message `n` of a run marked `token` to `user`, from a sender of its own (so that
/// each message may get an auto-reply), into the catch-all's domain.
pub async fn deliver(env: &TestEnv, user: &User, token: &str, n: usize) -> Delivered {
    let subject = format!("sort-me {token} {n}");
    // A local part SMTP takes: tokens name the fault ("cut mid-FETCH-..."), spaces and all.
    let local: String = token.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let sender = format!("{local}-{n}@example.com");
    let raw = message(&sender, &user.address, &subject, "x");
    let id = String::from_utf8_lossy(&raw)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: <").and_then(|r| r.strip_suffix('>')).map(str::to_owned))
        .expect("message() writes a Message-ID");
    // The envelope sender is the From: a reply goes to it, once per sender.
    env.deliver_lmtp_to(&sender, &[&user.address], &raw)
        .await
        .unwrap_or_else(|e| panic!("delivering {subject}: {e:#}"));
    Delivered { id, subject }
}

/// The run being accounted for: the servers, the account's user, its config and store.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    /// The servers.
    pub env: &'a TestEnv,
    /// The account's user.
    pub user: &'a User,
    /// The config and the store.
    pub setup: &'a Setup,
}

/// Where to look for the effects a run's rule has.
#[derive(Clone, Copy, Default)]
pub struct Effects<'a> {
    /// The folder every message is moved to (with the keyword `sorted`).
    pub moved_to: Option<&'a str>,
    /// The receiver of one webhook per message.
    pub hooks: Option<&'a Receiver>,
    /// The mailbox where Postfix delivers one auto-reply per message.
    pub replies: Option<&'a User>,
    /// The directory where one command per message writes its event, a file per run.
    pub commands: Option<&'a Path>,
}

/// What a run came to.
#[derive(Debug, Default)]
pub struct Tally {
    delivered: usize,
    /// What was delivered, to name what is missing.
    sent: Vec<Delivered>,
    processed: usize,
    /// Per delivered message: copies in the target folder, and whether each has its keyword.
    moved: BTreeMap<String, usize>,
    unflagged: usize,
    left_in_inbox: usize,
    /// Per delivered subject: webhook requests received.
    hooks: BTreeMap<String, usize>,
    /// Per delivered subject: command runs that wrote the whole event.
    commands: BTreeMap<String, usize>,
    /// Per delivered subject: replies delivered, by distinct Message-ID (each submission of a
    /// reply is composed anew, with a new Message-ID).
    replies: BTreeMap<String, usize>,
    /// Copies of a reply already counted (same Message-ID): Postfix delivering one submission
    /// twice to Dovecot, when Dovecot went away before confirming the first; not tidings' doing.
    redelivered: usize,
    /// Whether replies were looked for.
    replies_counted: bool,
    /// Replies done (the server said it took them) that are not in the mailbox.
    undelivered: Vec<String>,
    /// Uncertain replies that were delivered after all.
    uncertain_delivered: usize,
    /// Outbox rows by state (all kinds), and the uncertain ones.
    states: BTreeMap<String, usize>,
    open: usize,
    /// Rows that took more than one attempt.
    retried: usize,
    mail_done: usize,
    uncertain: Vec<Action>,
}

impl Tally {
    /// Counts everything once.
    pub async fn take(run: Run<'_>, sent: &[Delivered], fx: Effects<'_>) -> Tally {
        let Run { env, user, setup } = run;
        let store = Store::open(&setup.state()).await.expect("open the store");
        let rows = store.list_outbox(None, 1_000_000).await.expect("list the outbox");
        let processed: BTreeSet<(u32, u32)> = rows.iter().filter_map(|a| Some((a.uidvalidity?, a.uid?))).collect();
        let mut tally =
            Tally { delivered: sent.len(), sent: sent.to_vec(), processed: processed.len(), ..Tally::default() };
        for row in &rows {
            *tally.states.entry(format!("{:?}", row.state).to_lowercase()).or_default() += 1;
            let open = [ActionState::Pending, ActionState::InFlight, ActionState::Sending, ActionState::Failed];
            tally.open += usize::from(open.contains(&row.state));
            tally.retried += usize::from(row.attempts > 1);
            tally.mail_done += usize::from(row.kind == "reply" && row.state == ActionState::Done);
        }
        // A reply's stored subject is "Re: " and the subject of the message it answers.
        let answers = |state: ActionState| -> Vec<String> {
            let rows = rows.iter().filter(|a| a.kind == "reply" && a.state == state);
            rows.filter_map(|a| a.payload["subject"].as_str()?.strip_prefix("Re: ").map(str::to_owned)).collect()
        };
        let (done_replies, uncertain_replies) = (answers(ActionState::Done), answers(ActionState::Uncertain));
        tally.uncertain = rows.into_iter().filter(|a| a.state == ActionState::Uncertain).collect();
        if let Some(folder) = fx.moved_to {
            let ids: BTreeSet<&str> = sent.iter().map(|d| d.id.as_str()).collect();
            for listed in env.list(user, folder).await.unwrap_or_default() {
                let Some(id) = listed.message_id.filter(|id| ids.contains(id.as_str())) else { continue };
                *tally.moved.entry(id).or_default() += 1;
                tally.unflagged += usize::from(!listed.flags.iter().any(|f| f == "sorted"));
            }
            tally.left_in_inbox = env.list(user, "INBOX").await.map(|l| l.len()).unwrap_or(usize::MAX);
        }
        let subjects: BTreeSet<&str> = sent.iter().map(|d| d.subject.as_str()).collect();
        if let Some(receiver) = fx.hooks {
            for request in receiver.requests() {
                let subject = request.json()["message"]["subject"].as_str().unwrap_or_default().to_owned();
                if subjects.contains(subject.as_str()) {
                    *tally.hooks.entry(subject).or_default() += 1;
                }
            }
        }
        if let Some(dir) = fx.commands {
            for entry in std::fs::read_dir(dir).expect("read the commands' directory").flatten() {
                // A run cut off by a SIGKILL may have left a partial file: not a delivery.
                let Ok(event) =
                    serde_json::from_slice::<serde_json::Value>(&std::fs::read(entry.path()).unwrap_or_default())
                else {
                    continue;
                };
                let subject = event["data"]["s"].as_str().unwrap_or_default().to_owned();
                if subjects.contains(subject.as_str()) {
                    *tally.commands.entry(subject).or_default() += 1;
                }
            }
        }
        if let Some(mailbox) = fx.replies {
            tally.replies_counted = true;
            let mut ids = BTreeSet::new();
            for listed in env.list(mailbox, "INBOX").await.unwrap_or_default() {
                let subject = listed.subject.unwrap_or_default();
                if let Some(original) = subject.strip_prefix("Re: ").filter(|s| subjects.contains(s)) {
                    if !ids.insert(listed.message_id.unwrap_or_default()) {
                        tally.redelivered += 1;
                        continue;
                    }
                    *tally.replies.entry(original.to_owned()).or_default() += 1;
                }
            }
            tally.undelivered = done_replies.into_iter().filter(|s| !tally.replies.contains_key(s)).collect();
            tally.uncertain_delivered = uncertain_replies.iter().filter(|s| tally.replies.contains_key(*s)).count();
        }
        tally
    }

    /// Whether the run has settled: nothing open, every effect there that must be.
    fn settled(&self, fx: Effects<'_>) -> bool {
        let all = |counts: &BTreeMap<String, usize>| counts.len() == self.delivered;
        let replies_in = self.undelivered.is_empty();
        self.processed >= self.delivered
            && self.open == 0
            && (fx.moved_to.is_none() || (all(&self.moved) && self.left_in_inbox == 0))
            && (fx.hooks.is_none() || all(&self.hooks))
            && (fx.commands.is_none() || all(&self.commands))
            && (fx.replies.is_none() || replies_in)
    }

    fn duplicates(counts: &BTreeMap<String, usize>) -> usize {
        counts.values().map(|n| n - 1).sum()
    }

    /// Names the first messages whose effects are missing, if any.
    fn missing(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = |counts: &BTreeMap<String, usize>, by_id: bool| -> Vec<&str> {
            let key = |d: &'_ Delivered| if by_id { d.id.clone() } else { d.subject.clone() };
            let absent = self.sent.iter().filter(|d| !counts.contains_key(&key(d)));
            absent.map(|d| d.subject.as_str()).take(5).collect()
        };
        for (what, counts, by_id, looked) in [
            ("moved", &self.moved, true, !self.moved.is_empty() || self.left_in_inbox > 0),
            ("webhooks", &self.hooks, false, !self.hooks.is_empty()),
            ("commands", &self.commands, false, !self.commands.is_empty()),
            ("replies", &self.replies, false, self.replies_counted),
        ] {
            let absent = missing(counts, by_id);
            if looked && !absent.is_empty() {
                write!(f, "; no {what} for {absent:?}")?;
            }
        }
        Ok(())
    }

    /// Outbox rows that took more than one attempt.
    pub fn retried(&self) -> usize {
        self.retried
    }

    /// Replies whose SMTP transaction broke off after it began.
    pub fn uncertain_mail(&self) -> usize {
        self.uncertain.iter().filter(|a| a.kind == "reply").count()
    }

    /// Uncertain replies found in the mailbox Postfix delivers them to.
    pub fn uncertain_delivered(&self) -> usize {
        self.uncertain_delivered
    }

    /// Replies found there more than once.
    pub fn replies_twice(&self) -> usize {
        self.replies.values().filter(|n| **n > 1).count()
    }

    /// Webhook requests beyond the first per event.
    pub fn hook_duplicates(&self) -> usize {
        Tally::duplicates(&self.hooks)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "delivered {}, processed {}", self.delivered, self.processed)?;
        if !self.moved.is_empty() || self.left_in_inbox > 0 {
            let twice = self.moved.values().filter(|n| **n > 1).count();
            write!(f, ", moved {} (twice {twice}, left in INBOX {})", self.moved.len(), self.left_in_inbox)?;
        }
        if !self.hooks.is_empty() {
            write!(f, ", webhooks {} (duplicates {})", self.hooks.len(), Tally::duplicates(&self.hooks))?;
        }
        if !self.commands.is_empty() {
            write!(f, ", commands {} (duplicates {})", self.commands.len(), Tally::duplicates(&self.commands))?;
        }
        if self.replies_counted {
            let replies: usize = self.replies.values().sum();
            let twice = Tally::duplicates(&self.replies);
            write!(f, ", replies sent {replies} (twice {twice}, redelivered by Postfix {})", self.redelivered)?;
            write!(f, ", uncertain replies delivered {}", self.uncertain_delivered)?;
            if !self.undelivered.is_empty() {
                write!(f, ", done but not delivered {:?}", self.undelivered)?;
            }
        }
        let uncertain: Vec<String> = self.uncertain.iter().map(|a| format!("{} {}", a.id, a.kind)).collect();
        write!(
            f,
            ", uncertain {} {uncertain:?}; outbox {:?}, retried {}",
            self.uncertain.len(),
            self.states,
            self.retried
        )?;
        self.missing(f)
    }
}

/// Waits until the run settled (or [`SETTLE`] passed), prints its accounting under `name`
/// with the number of faults injected (counted then: some fire while the run settles), and
/// asserts it (see the module docs). Returns it.
pub async fn settle_and_check(
    name: &str,
    faults: impl Fn() -> usize,
    run: Run<'_>,
    daemon: &Daemon,
    sent: &[Delivered],
    fx: Effects<'_>,
) -> Tally {
    // Polled at a modest pace: each look lists mailboxes and reads the store.
    let started = std::time::Instant::now();
    let mut flushed = started;
    let tally = loop {
        let tally = Tally::take(run, sent, fx).await;
        if tally.settled(fx) {
            break tally;
        }
        if started.elapsed() > SETTLE {
            panic!(
                "timed out after {SETTLE:?}\n  got: {tally}\n  expected: {}",
                LogTail(format!("{name}: the run settled"), daemon)
            );
        }
        if fx.replies.is_some() && flushed.elapsed() > Duration::from_secs(5) {
            run.env.flush_postfix();
            flushed = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let faults = faults();
    eprintln!("accounting {name}: faults {faults}, {tally}");
    assert!(faults > 0, "{name}: no fault was injected, the test proved nothing");
    assert_eq!(tally.processed, tally.delivered, "{name}: every delivered message processed, once");
    if fx.moved_to.is_some() {
        let wrong: Vec<_> = tally.moved.iter().filter(|(_, n)| **n != 1).collect();
        assert!(wrong.is_empty(), "{name}: messages moved more than once: {wrong:?}");
        assert_eq!(tally.moved.len(), tally.delivered, "{name}: every message moved");
        assert_eq!((tally.unflagged, tally.left_in_inbox), (0, 0), "{name}: keyword on each, none left in INBOX");
    }
    if fx.hooks.is_some() {
        assert_eq!(tally.hooks.len(), tally.delivered, "{name}: every webhook delivered at least once");
    }
    if fx.commands.is_some() {
        assert_eq!(tally.commands.len(), tally.delivered, "{name}: every command ran at least once");
    }
    if fx.replies.is_some() {
        check_mail(name, &tally, run.setup);
    }
    tally
}

/// Mail at most once: no reply delivered twice; every one done was delivered; the others are
/// uncertain (not failed, not pending) and `tidings outbox` lists each of them.
fn check_mail(name: &str, tally: &Tally, setup: &Setup) {
    let twice: Vec<_> = tally.replies.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{name}: replies sent more than once: {twice:?}");
    let uncertain_mail = tally.uncertain.iter().filter(|a| a.kind == "reply").count();
    assert_eq!(tally.mail_done + uncertain_mail, tally.delivered, "{name}: each reply done or uncertain: {tally}");
    assert!(tally.undelivered.is_empty(), "{name}: every reply done was delivered: {tally}");
    assert!(tally.replies.len() <= tally.delivered, "{name}: {tally}");
    if tally.uncertain.is_empty() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["outbox", "--config"])
        .arg(&setup.config)
        .output()
        .expect("run tidings outbox");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}\n{}", String::from_utf8_lossy(&out.stderr));
    for action in &tally.uncertain {
        let listed = listing
            .lines()
            .any(|l| l.contains("uncertain") && l.split_whitespace().any(|w| w == action.id.to_string()));
        assert!(listed, "{name}: uncertain action {} is listed by `tidings outbox`:\n{listing}", action.id);
    }
    eprintln!("accounting {name}: `tidings outbox` lists the uncertain ones:\n{listing}");
}

/// An expectation that, when printed (on a timeout), ends with the daemon's latest log lines.
struct LogTail<'a>(String, &'a Daemon);

impl fmt::Display for LogTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = self.1.log();
        let keep = if std::env::var("TIDINGS_FAULT_FULL_LOG").is_ok() { usize::MAX } else { 12_000 };
        let start = log.len().saturating_sub(keep);
        let start = (start..log.len()).find(|i| log.is_char_boundary(*i)).unwrap_or(log.len());
        write!(f, "{}\n--- the daemon's log, last lines:\n{}", self.0, &log[start..])
    }
}

/// A token unique to one test run, for subjects and senders.
pub fn token(name: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    format!("{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
