//! IMAP: the only code that talks to async-imap.
//!
//! A [`Session`] is one authenticated connection with at most one selected mailbox. A
//! mailbox watcher uses it to fetch new mail ([`Session::fetch_after`]) and wait for more
//! ([`Session::idle`]); a schedule's sweep searches ([`Session::search`]) and fetches what it
//! found a group at a time ([`Session::groups`], [`Session::fetch_group`]); an executor uses it to move, copy, flag and create
//! ([`Session::uid_move`] and friends). Mailbox names are UTF-8 paths with `/` everywhere in
//! this API; the session maps them to the server's form (see [`Session::server_name`]).
//!
//! Every command has a deadline ([`Timeouts`]). async-imap is not cancel-safe, so a command
//! that times out or breaks off mid-answer leaves the session *broken*: every later call
//! returns [`Error::Broken`] and the caller drops the session and reconnects, pacing itself
//! with a [`Backoff`].
//!
//! What it must not do: evaluate rules, decide which messages to act on, retry, sleep
//! between reconnects, or keep state across connections (checkpoints live in the store).
//!
//! Layer: mechanism (see the map in lib.rs): it uses the server settings (`config`) and XOAUTH2
//! with the account's tokens (`auth`), never a stage or the runtime.

mod connect;
mod error;
mod fallback;
mod fetch;
mod gmail;
mod id;
mod idle;
mod kept;
pub mod mutf7;
mod names;
mod ops;
pub mod retry;
mod search;
mod subscribed;
pub(crate) mod trust;
mod types;
mod uidset;
mod wire;

use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, Response, ResponseCode, Status, StatusAttribute};
use tracing::debug;

use connect::Conn;
use names::Names;

pub use error::Error;
pub use fetch::{FETCH_BUDGET, FETCH_LIMIT, Fetched, Groups, HEADER_CAP, Headers};
pub use idle::IdleOutcome;
pub use kept::{Kept, Live};
pub use ops::{FlagOp, Folder};
pub use retry::Backoff;
pub use search::Criteria;
pub use types::{Capabilities, Login, Selected, Timeouts};
pub use uidset::{MAX_SET_LEN, UidSet};

/// The result of an IMAP operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One authenticated IMAP connection with at most one selected mailbox.
#[derive(Debug)]
pub struct Session {
    /// `None` once the session broke or logged out: the socket is closed then.
    conn: Option<Conn>,
    /// Why the connection must be dropped, once it must.
    broken: Option<String>,
    /// Account and server, for messages.
    at: String,
    timeouts: Timeouts,
    caps: Capabilities,
    names: Names,
    /// The selected mailbox (UTF-8 path) and its state at selection.
    selected: Option<(String, Selected)>,
    /// The selected mailbox was opened with SELECT (read-write), not EXAMINE.
    writable: bool,
    /// EXISTS was seen since the last fetch: new mail may be waiting.
    new_mail: bool,
    /// The selected mailbox's PERMANENTFLAGS, if the server sent them: which flags and
    /// keywords a STORE keeps (`\*` = any new keyword).
    permanent_flags: Option<Vec<String>>,
    fetch_commands: u64,
}

impl Session {
    /// Connects, logs in, and reads the capabilities, personal namespace and hierarchy
    /// delimiter. Errors: [`Error::is_auth`] for refused credentials, [`Error::is_tls`] for
    /// TLS trouble, [`Error::is_transient`] for the network.
    pub async fn connect(login: &Login, timeouts: Timeouts) -> Result<Session> {
        let at = format!("account `{}` ({}:{})", login.account, login.server.host, login.server.port);
        let conn = connect::open(login, &timeouts, &at).await?;
        let mut session = Session {
            conn: Some(conn),
            broken: None,
            at,
            timeouts,
            caps: Capabilities::default(),
            names: Names::default(),
            selected: None,
            writable: false,
            new_mail: false,
            permanent_flags: None,
            fetch_commands: 0,
        };
        session.read_capabilities().await?;
        session.read_names().await?;
        if timeouts.send_id {
            session.send_id().await?;
        }
        debug!(account = %login.account, caps = ?session.caps.raw, names = ?session.names, "imap: logged in");
        Ok(session)
    }

    /// What the server offers, as read after login.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The capabilities, to switch off one the server implements badly (or, in tests, to
    /// exercise a fallback such as a move without MOVE).
    pub fn capabilities_mut(&mut self) -> &mut Capabilities {
        &mut self.caps
    }

    /// The selected mailbox's path and state at selection, if one is selected.
    pub fn selected(&self) -> Option<(&str, &Selected)> {
        self.selected.as_ref().map(|(name, s)| (name.as_str(), s))
    }

    /// The selected mailbox, if it is `mailbox` and was opened read-write: a caller about to
    /// change it need not SELECT it again (SELECT of a big mailbox costs the server time).
    pub fn selected_writable(&self, mailbox: &str) -> Option<&Selected> {
        match &self.selected {
            Some((name, selected)) if self.writable && name == mailbox => Some(selected),
            _ => None,
        }
    }

    /// Whether the connection broke (a timeout, an I/O error, BYE): drop the session.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// How many UID FETCH commands this session sent, for metrics and tests.
    pub fn fetch_commands(&self) -> u64 {
        self.fetch_commands
    }

    /// The server's name for a UTF-8 path (`/`-separated): its delimiter, its personal
    /// namespace prefix (never before INBOX), modified UTF-7.
    pub fn server_name(&self, utf8_path: &str) -> String {
        self.names.to_server(utf8_path)
    }

    /// SELECTs `mailbox` (read-write), replacing any selected one.
    pub async fn select(&mut self, mailbox: &str) -> Result<Selected> {
        self.open(mailbox, "SELECT").await
    }

    /// EXAMINEs `mailbox`: selects it read-only, so that the server refuses any change to it
    /// and does not even clear `\Recent` (for dry runs). Replaces any selected mailbox.
    pub async fn examine(&mut self, mailbox: &str) -> Result<Selected> {
        self.open(mailbox, "EXAMINE").await
    }

    /// SELECT or EXAMINE (`verb`), which answer alike.
    async fn open(&mut self, mailbox: &str, verb: &str) -> Result<Selected> {
        let what = format!("{} mailbox `{mailbox}`", verb.to_lowercase());
        self.selected = None;
        self.permanent_flags = None;
        let command = format!("{verb} {}", wire::quote(&self.server_name(mailbox)));
        let (mut uidvalidity, mut uidnext, mut exists, mut permanent) = (None, None, 0, None);
        self.exchange(&what, &[command], self.timeouts.command, |r| match r {
            Response::Data { status: Status::Ok, outcome } => match outcome.code {
                Some(ResponseCode::UidValidity(v)) => uidvalidity = Some(v),
                Some(ResponseCode::UidNext(n)) => uidnext = Some(n),
                Some(ResponseCode::PermanentFlags(ref flags)) => {
                    permanent = Some(flags.iter().map(|f| f.to_string()).collect());
                }
                _ => {}
            },
            Response::MailboxData(MailboxDatum::Exists(n)) => exists = *n,
            _ => {}
        })
        .await?;
        self.new_mail = false;
        let Some(uidvalidity) = uidvalidity else {
            return Err(self.unsupported(&what, "the server sent no UIDVALIDITY"));
        };
        let uidnext = match uidnext {
            Some(n) => n,
            None => self.compute_uidnext(&what, mailbox, exists).await?,
        };
        let selected = Selected { uidvalidity, uidnext, exists };
        debug!(at = %self.at, mailbox, ?selected, "imap: selected");
        self.selected = Some((mailbox.to_owned(), selected));
        self.writable = verb == "SELECT";
        self.permanent_flags = permanent;
        Ok(selected)
    }

    /// UID SEARCH with `criteria` as IMAP writes them (`UNSEEN`, `SINCE 1-Jan-2026`), in the
    /// selected mailbox; ascending UIDs.
    pub async fn search_uids(&mut self, criteria: &str) -> Result<Vec<u32>> {
        let what = format!("search `{criteria}` in {}", self.selected_name());
        if !criteria.is_ascii() || criteria.chars().any(|c| c.is_ascii_control()) {
            return Err(Error::Invalid { what, reason: "search criteria must be printable ASCII".into() });
        }
        self.require_selected(&what)?;
        let mut uids = Vec::new();
        self.exchange(&what, &[format!("UID SEARCH {criteria}")], self.timeouts.command, |r| {
            if let Response::MailboxData(MailboxDatum::Search(found)) = r {
                uids.extend_from_slice(found);
            }
        })
        .await?;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// Leaves the selected mailbox without expunging anything (UNSELECT, RFC 3691) and stays
    /// logged in; `false` when the server lacks UNSELECT, and the mailbox stays selected (CLOSE
    /// would expunge every `\Deleted` message, other clients' too).
    pub async fn unselect(&mut self) -> Result<bool> {
        if self.selected.is_none() {
            return Ok(true);
        }
        if !self.caps.raw.iter().any(|c| c.eq_ignore_ascii_case("UNSELECT")) {
            return Ok(false);
        }
        let what = format!("leave {}", self.selected_name());
        self.exchange(&what, &["UNSELECT".to_owned()], self.timeouts.command, |_| {}).await?;
        self.selected = None;
        self.permanent_flags = None;
        Ok(true)
    }

    /// NOOP: keeps the connection alive and collects news; `true` if new mail was announced
    /// (EXISTS) since the last fetch. For servers without IDLE, poll with this.
    pub async fn noop(&mut self) -> Result<bool> {
        self.exchange("send NOOP", &["NOOP".to_owned()], self.timeouts.command, |_| {}).await?;
        Ok(self.new_mail)
    }

    /// The connection, or [`Error::Broken`] if there is none to use.
    fn live(&mut self, what: &str) -> Result<&mut Conn> {
        let why = match (&self.broken, &mut self.conn) {
            (None, Some(conn)) => return Ok(conn),
            (Some(why), _) => why.clone(),
            (None, None) => "it is closed".to_owned(),
        };
        Err(Error::Broken { what: what.into(), at: self.at.clone(), why })
    }

    /// Marks the session broken and closes the connection.
    fn mark_broken(&mut self, why: String) {
        debug!(at = %self.at, why, "imap: session broken");
        self.broken.get_or_insert(why);
        self.conn = None;
    }

    /// Turns the outcome of a timed async-imap call into ours, breaking the session on a
    /// timeout or on anything but a NO/BAD.
    fn settle<T>(
        &mut self,
        what: &str,
        limit: Duration,
        result: Result<Result<T, async_imap::error::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => {
                let source = error::scrub(source);
                if error::breaks_connection(&source) {
                    self.mark_broken(format!("`{what}` failed"));
                }
                Err(Error::Command { what: what.into(), at: self.at.clone(), source })
            }
            Err(_) => {
                self.mark_broken(format!("`{what}` timed out after {limit:?}"));
                Err(Error::Timeout { what: what.into(), at: self.at.clone(), after: limit })
            }
        }
    }

    /// Runs `commands` pipelined under one deadline (see `wire::pipeline`).
    async fn exchange(
        &mut self,
        what: &str,
        commands: &[String],
        limit: Duration,
        on_data: impl FnMut(&Response<'_>) + Send,
    ) -> Result<()> {
        debug!(at = %self.at, what, commands = commands.len(), "imap: command");
        let conn = self.live(what)?;
        let result = tokio::time::timeout(limit, wire::pipeline(conn, commands, on_data)).await;
        let noticed = self.settle(what, limit, result)?;
        self.new_mail |= noticed.exists;
        Ok(())
    }

    fn selected_name(&self) -> String {
        self.selected.as_ref().map_or_else(|| "no mailbox".to_owned(), |(name, _)| format!("mailbox `{name}`"))
    }

    fn require_selected(&self, what: &str) -> Result<()> {
        match self.selected {
            Some(_) => Ok(()),
            None => Err(self.unsupported(what, "no mailbox is selected")),
        }
    }

    fn unsupported(&self, what: &str, reason: &str) -> Error {
        Error::Unsupported { what: what.into(), at: self.at.clone(), reason: reason.into() }
    }

    async fn read_capabilities(&mut self) -> Result<()> {
        let mut raw = Vec::new();
        self.exchange("read capabilities", &["CAPABILITY".to_owned()], self.timeouts.command, |r| {
            if let Response::Capabilities(list) = r {
                raw.extend(list.iter().map(|c| match c {
                    async_imap::imap_proto::Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
                    async_imap::imap_proto::Capability::Auth(a) => format!("AUTH={a}"),
                    async_imap::imap_proto::Capability::Atom(a) => a.to_string(),
                }));
            }
        })
        .await?;
        self.caps = Capabilities::from_raw(raw);
        Ok(())
    }

    /// The personal namespace prefix (if NAMESPACE is offered) and the hierarchy delimiter.
    async fn read_names(&mut self) -> Result<()> {
        if self.caps.namespace {
            let what = "read the personal namespace";
            let limit = self.timeouts.command;
            let result = tokio::time::timeout(limit, names::personal_namespace(self.live(what)?)).await;
            let found = self.settle(what, limit, result.map(|r| r.map_err(Into::into)))?;
            if let Some((prefix, delimiter)) = found {
                self.names = Names { delimiter, prefix };
            }
        }
        let mut delimiter = None;
        let list = "LIST \"\" \"\"".to_owned();
        self.exchange("read the hierarchy delimiter", &[list], self.timeouts.command, |r| {
            if let Response::MailboxData(MailboxDatum::List(data)) = r {
                delimiter = data.delimiter.as_deref().and_then(|d| d.chars().next());
            }
        })
        .await?;
        self.names.delimiter = delimiter.or(self.names.delimiter);
        Ok(())
    }

    /// UIDNEXT for a server that did not send it with SELECT: the highest UID plus one, or
    /// STATUS for an empty mailbox.
    async fn compute_uidnext(&mut self, what: &str, mailbox: &str, exists: u32) -> Result<u32> {
        let mut highest = None;
        let command = match exists {
            0 => format!("STATUS {} (UIDNEXT)", wire::quote(&self.server_name(mailbox))),
            _ => "UID FETCH * (UID)".to_owned(),
        };
        self.exchange(what, &[command], self.timeouts.command, |r| match r {
            Response::MailboxData(MailboxDatum::Status { status, .. }) => {
                for attribute in status {
                    if let StatusAttribute::UidNext(n) = attribute {
                        highest = Some(n.saturating_sub(1));
                    }
                }
            }
            Response::Fetch(_, attributes) => {
                for attribute in attributes {
                    if let async_imap::imap_proto::AttributeValue::Uid(uid) = attribute {
                        highest = highest.max(Some(*uid));
                    }
                }
            }
            _ => {}
        })
        .await?;
        Ok(highest.unwrap_or(0).saturating_add(1))
    }
}
