//! IMAP helpers for tests: log in, APPEND, list, fetch, and a message builder.
//!
//! Each helper opens its own IMAPS connection (so it sees the mailbox like
//! any other client would) and logs out; [`TestEnv::imap`] gives a session
//! for anything else. Mailbox names are ASCII (no modified UTF-7 here).

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{Response, ResponseCode, Status};
use async_imap::types::{Flag, NameAttribute};
use chrono::{DateTime, FixedOffset};
use futures::TryStreamExt;
use mail_parser::MessageParser;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{TestEnv, User, for_user, timed, tls};

/// A logged-in IMAP session over TLS.
pub type ImapSession = async_imap::Session<TlsStream<TcpStream>>;

/// One message as [`TestEnv::list`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The message's UID in the listed mailbox.
    pub uid: u32,
    /// System flags (`\Seen`, ...) and keywords (`$Forwarded`, ...);
    /// `\Recent` is left out as it depends on the session.
    pub flags: Vec<String>,
    /// The decoded Subject header.
    pub subject: Option<String>,
    /// The Message-ID header, without angle brackets.
    pub message_id: Option<String>,
    /// The server's INTERNALDATE.
    pub internal_date: Option<DateTime<FixedOffset>>,
}

impl Listed {
    /// Whether the message carries `flag` (exact, e.g. `\Seen` or `$Junk`).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// A mailbox as LIST reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxInfo {
    /// Full name, hierarchy separator `/`.
    pub name: String,
    /// LIST attributes, including special-use ones such as `\Sent`.
    pub attributes: Vec<String>,
}

impl TestEnv {
    pub(super) async fn tls_to(&self, port: u16) -> Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        Ok(self.tls_connector().connect(tls::server_name(), tcp).await?)
    }

    /// Logs `user` in over IMAPS, verifying the server against the test CA.
    pub async fn imap(&self, user: &User) -> Result<ImapSession> {
        let connect = async {
            let mut client = async_imap::Client::new(self.tls_to(self.imaps_port).await?);
            client.read_response().await?.context("no IMAP greeting")?;
            client.login(&user.login, &user.password).await.map_err(|(e, _)| e.into())
        };
        for_user(timed("IMAPS login", connect).await, "IMAPS login", user)
    }

    /// Logs `user` in on the plaintext IMAP port after STARTTLS.
    pub async fn imap_starttls(&self, user: &User) -> Result<ImapSession> {
        let connect = async {
            let tcp = TcpStream::connect(("127.0.0.1", self.imap_port)).await?;
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await?.context("no IMAP greeting")?;
            client.run_command_and_check_ok("STARTTLS", None).await?;
            let tls = self.tls_connector().connect(tls::server_name(), client.into_inner()).await?;
            // No new greeting after STARTTLS: log in straight away.
            let client = async_imap::Client::new(tls);
            client.login(&user.login, &user.password).await.map_err(|(e, _)| e.into())
        };
        for_user(timed("STARTTLS login", connect).await, "STARTTLS login", user)
    }

    /// APPENDs `raw` to `mailbox` with `flags` (e.g. `["\\Seen", "$Label1"]`)
    /// and an optional INTERNALDATE; returns the new UID (UIDPLUS APPENDUID).
    pub async fn append(
        &self,
        user: &User,
        mailbox: &str,
        raw: &[u8],
        flags: &[&str],
        internal_date: Option<DateTime<FixedOffset>>,
    ) -> Result<u32> {
        let run = async {
            let mut session = self.imap(user).await?;
            let uid = append_uid(&mut session, mailbox, raw, flags, internal_date).await?;
            session.logout().await?;
            Ok(uid)
        };
        for_user(timed("APPEND", run).await, &format!("APPEND to {mailbox}"), user)
    }

    /// Every message in `mailbox`, by ascending UID, read without changing
    /// anything (EXAMINE, BODY.PEEK).
    pub async fn list(&self, user: &User, mailbox: &str) -> Result<Vec<Listed>> {
        let run = async {
            let mut session = self.imap(user).await?;
            let examined = session.examine(mailbox).await?;
            let mut listed = Vec::new();
            if examined.exists > 0 {
                let query = "(UID FLAGS INTERNALDATE BODY.PEEK[HEADER])";
                let fetches: Vec<_> = session.uid_fetch("1:*", query).await?.try_collect().await?;
                // A FETCH without UID is an unsolicited flag update (another session, such as
                // tidings, changed flags meanwhile), not an answer to this command: skip it.
                listed = fetches.iter().filter(|f| f.uid.is_some()).map(to_listed).collect::<Result<_>>()?;
            }
            session.logout().await?;
            listed.sort_by_key(|l: &Listed| l.uid);
            Ok(listed)
        };
        for_user(timed("list", run).await, &format!("listing {mailbox}"), user)
    }

    /// The full raw message `uid` in `mailbox` (without setting `\Seen`).
    pub async fn fetch_raw(&self, user: &User, mailbox: &str, uid: u32) -> Result<Vec<u8>> {
        let run = async {
            let mut session = self.imap(user).await?;
            session.examine(mailbox).await?;
            let fetches: Vec<_> = session.uid_fetch(uid.to_string(), "BODY.PEEK[]").await?.try_collect().await?;
            session.logout().await?;
            let body = fetches.first().and_then(|f| f.body()).map(<[u8]>::to_vec);
            body.with_context(|| format!("no message with UID {uid}"))
        };
        for_user(timed("fetch", run).await, &format!("fetching {mailbox}/{uid}"), user)
    }

    /// All mailboxes of `user` with their LIST attributes.
    pub async fn mailboxes(&self, user: &User) -> Result<Vec<MailboxInfo>> {
        let run = async {
            let mut session = self.imap(user).await?;
            let names: Vec<_> = session.list(Some(""), Some("*")).await?.try_collect().await?;
            session.logout().await?;
            let info = names.iter().map(|n| MailboxInfo {
                name: n.name().to_string(),
                attributes: n.attributes().iter().map(attribute_name).collect(),
            });
            Ok(info.collect())
        };
        for_user(timed("LIST", run).await, "listing mailboxes", user)
    }
}

/// APPEND by hand rather than `Session::append`, which drops the
/// APPENDUID response code that tells the new message's UID.
async fn append_uid(
    session: &mut ImapSession,
    mailbox: &str,
    raw: &[u8],
    flags: &[&str],
    internal_date: Option<DateTime<FixedOffset>>,
) -> Result<u32> {
    let mut command = format!("APPEND {}", quote(mailbox));
    if !flags.is_empty() {
        command += &format!(" ({})", flags.join(" "));
    }
    if let Some(date) = internal_date {
        command += &format!(" \"{}\"", date.format("%d-%b-%Y %H:%M:%S %z"));
    }
    command += &format!(" {{{}}}", raw.len());
    let tag = session.run_command(&command).await?;
    let mut literal_sent = false;
    loop {
        let response = session.read_response().await?.context("connection closed")?;
        match response.parsed() {
            Response::Continue(_) if !literal_sent => {
                let stream = session.as_mut();
                stream.write_all(raw).await?;
                stream.write_all(b"\r\n").await?;
                stream.flush().await?;
                literal_sent = true;
            }
            Response::Done { tag: t, status, outcome } if *t == tag => {
                if !matches!(status, Status::Ok) {
                    bail!("`{command}` failed: {status:?} {:?}", outcome.information);
                }
                return match &outcome.code {
                    Some(ResponseCode::AppendUid(_, set)) => match set.first() {
                        Some(UidSetMember::Uid(uid)) => Ok(*uid),
                        Some(UidSetMember::UidRange(r)) => Ok(*r.start()),
                        None => bail!("empty APPENDUID"),
                    },
                    other => bail!("no APPENDUID in the APPEND reply: {other:?}"),
                };
            }
            _ => {} // untagged EXISTS and the like
        }
    }
}

fn to_listed(fetch: &async_imap::types::Fetch) -> Result<Listed> {
    let uid = fetch.uid.context("FETCH without UID")?;
    let header = fetch.header().unwrap_or_default();
    let parsed = MessageParser::default().parse_headers(header);
    let parsed = parsed.as_ref();
    Ok(Listed {
        uid,
        flags: fetch.flags().filter_map(|f| flag_name(&f)).collect(),
        subject: parsed.and_then(|m| m.subject()).map(str::to_string),
        message_id: parsed.and_then(|m| m.message_id()).map(str::to_string),
        internal_date: fetch.internal_date(),
    })
}

fn flag_name(flag: &Flag<'_>) -> Option<String> {
    let name = match flag {
        Flag::Seen => "\\Seen",
        Flag::Answered => "\\Answered",
        Flag::Flagged => "\\Flagged",
        Flag::Deleted => "\\Deleted",
        Flag::Draft => "\\Draft",
        Flag::Recent => return None,
        Flag::MayCreate => "\\*",
        Flag::Custom(keyword) => keyword,
    };
    Some(name.to_string())
}

fn attribute_name(attribute: &NameAttribute<'_>) -> String {
    let name = match attribute {
        NameAttribute::NoInferiors => "\\Noinferiors",
        NameAttribute::NoSelect => "\\Noselect",
        NameAttribute::Marked => "\\Marked",
        NameAttribute::Unmarked => "\\Unmarked",
        NameAttribute::All => "\\All",
        NameAttribute::Archive => "\\Archive",
        NameAttribute::Drafts => "\\Drafts",
        NameAttribute::Flagged => "\\Flagged",
        NameAttribute::Junk => "\\Junk",
        NameAttribute::Sent => "\\Sent",
        NameAttribute::Trash => "\\Trash",
        NameAttribute::Extension(other) => other,
        other => return format!("{other:?}"),
    };
    name.to_string()
}

/// An IMAP quoted string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A small text message with a unique Message-ID (`<n.pid@harness.tidings.test>`).
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("{n}.{}@harness.tidings.test", std::process::id());
    let date = chrono::Utc::now().to_rfc2822();
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}
