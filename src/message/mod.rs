//! Message view: one fetched message, parsed once, read by every rule.
//!
//! Stage: input is the raw RFC 5322 bytes plus the fetch metadata ([`Meta`]: key, flags,
//! INTERNALDATE, RFC822.SIZE, whether only the headers were fetched); output is an immutable
//! [`MessageView`], shared as `Arc<MessageView>`. This stage does no IO and makes no decisions:
//! it only says what the message is, so that every rule sees the same facts.
//!
//! [`parse`] never fails and never panics. Mail is hostile input: when the MIME parser gives up
//! or panics, a hand scan of the header block still yields a view ([`MessageView::degraded`]).
//!
//! Layer: data (see the map in lib.rs): it imports nothing from the layers above.

mod auth;
mod fields;
mod gmail;
pub mod html;
mod ids;
mod parse;
mod scan;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

pub use auth::AuthResults;
pub use fields::{AUTO_REPLY_HEADERS, Header, LIST_LIMIT, auto_reply_subject};
pub use gmail::GmailAttrs;
pub use ids::MessageKey;
pub use parse::{HEADER_LIMIT, Meta, TEXT_LIMIT, parse, parse_blocking, parse_owned};

/// A mailbox address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// The display name, decoded (`Jörg Müller`); `None` when absent or blank.
    pub name: Option<String>,
    /// `local@domain`: the domain lowercased, the local part as written (it may be
    /// case-sensitive). Without an `@` it is whatever the header held, e.g. `MAILER-DAEMON`.
    pub address: String,
    /// The domain, lowercased; empty when the address has none.
    pub domain: String,
}

/// A part that is not the message's body text: a file, an image, a nested message, a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// The file name (Content-Disposition `filename` or Content-Type `name`), decoded.
    pub name: Option<String>,
    /// `type/subtype`, lowercased, without parameters, e.g. `application/pdf`.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
}

/// The bytes a view was parsed from, shared (a clone of the view copies no mail). Its `Debug`
/// shows the length only, so that a view in a log line cannot carry the message.
#[derive(Clone, Default)]
struct Raw(Arc<Vec<u8>>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw({} bytes)", self.0.len())
    }
}

/// One message as rules see it. Built only by [`parse`]; immutable afterwards.
#[derive(Debug, Clone)]
pub struct MessageView {
    raw: Raw,
    key: MessageKey,
    size: u64,
    truncated: bool,
    /// Only the header was fetched, the body was left for later (see [`Self::body_deferred`]).
    body_deferred: bool,
    body_clipped: bool,
    lists_capped: bool,
    degraded: bool,
    flags: Vec<String>,
    keywords: Vec<String>,
    gmail: Option<GmailAttrs>,
    internal_date: Option<DateTime<Utc>>,
    from: Option<Address>,
    sender: Option<Address>,
    to: Vec<Address>,
    cc: Vec<Address>,
    bcc: Vec<Address>,
    reply_to: Vec<Address>,
    subject: String,
    date: Option<DateTime<FixedOffset>>,
    message_id: Option<String>,
    in_reply_to: Vec<String>,
    references: Vec<String>,
    headers: Vec<Header>,
    list_id: Option<String>,
    text: String,
    html: Option<String>,
    attachments: Vec<Attachment>,
    auth: AuthResults,
    delivered_to: Vec<String>,
    is_reply: bool,
    is_auto_submitted: bool,
}

impl MessageView {
    /// The bytes it was parsed from, as fetched: the whole message, or only its header block
    /// when it was [`truncated`](Self::truncated). For forwarding it as an attachment and for
    /// webhooks that ask for the raw message.
    pub fn raw(&self) -> &[u8] {
        &self.raw.0
    }

    /// Where the message lives: account, mailbox, UIDVALIDITY, UID.
    pub fn key(&self) -> &MessageKey {
        &self.key
    }

    /// The account name from the config.
    pub fn account(&self) -> &str {
        &self.key.account
    }

    /// The mailbox name as the server spells it.
    pub fn mailbox(&self) -> &str {
        &self.key.mailbox
    }

    /// Size in bytes: the server's RFC822.SIZE, else the length of the bytes parsed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Only the headers were fetched (the message was over the size cap): no body, no
    /// attachments.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Whether only the header was fetched so far, the body left on the server until asked for.
    /// Whether a rule read the body of such a view is the evaluation's to know, not the view's
    /// (see `rules::decide`): what was decided from it is then thrown away, the caller fetches
    /// the whole message and decides again.
    pub fn body_deferred(&self) -> bool {
        self.body_deferred
    }

    /// The text or HTML body was longer than [`TEXT_LIMIT`] and was cut there, or more than
    /// [`HEADER_LIMIT`] headers or attachments were dropped.
    pub fn body_clipped(&self) -> bool {
        self.body_clipped
    }

    /// The MIME parser failed on this message (no headers found, or it panicked): headers come
    /// from a hand scan of the header block, and the text is the raw bytes after it.
    pub fn degraded(&self) -> bool {
        self.degraded
    }

    /// System flags, such as `\Seen` or `\Flagged`, as the server sent them.
    pub fn flags(&self) -> &[String] {
        &self.flags
    }

    /// Keywords (labels): the flags without a backslash, such as `$Junk` or `invoice`.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// Labels: Gmail's X-GM-LABELS when the server is Gmail (`\\Inbox`, `Receipts`), else the
    /// keywords, which is what `label()` sets on other servers.
    pub fn labels(&self) -> &[String] {
        self.gmail.as_ref().map_or(&self.keywords, |g| &g.labels)
    }

    /// Gmail's attributes (labels, thread, message id); `None` on other servers.
    pub fn gmail(&self) -> Option<&GmailAttrs> {
        self.gmail.as_ref()
    }

    /// Gmail's conversation id (X-GM-THRID); `None` on other servers.
    pub fn thread_id(&self) -> Option<u64> {
        self.gmail.as_ref().map(|g| g.thread_id)
    }

    /// Whether a flag or keyword is set; flags and keywords are case-insensitive in IMAP.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().chain(&self.keywords).any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// When the server received the message (IMAP INTERNALDATE).
    pub fn internal_date(&self) -> Option<DateTime<Utc>> {
        self.internal_date
    }

    /// The first From address; `None` when there is none or it cannot be read.
    pub fn from(&self) -> Option<&Address> {
        self.from.as_ref()
    }

    /// The Sender address, set when someone sends on behalf of From.
    pub fn sender(&self) -> Option<&Address> {
        self.sender.as_ref()
    }

    /// To addresses, groups flattened.
    pub fn to(&self) -> &[Address] {
        &self.to
    }

    /// Cc addresses, groups flattened.
    pub fn cc(&self) -> &[Address] {
        &self.cc
    }

    /// Bcc addresses (rarely present in received mail), groups flattened.
    pub fn bcc(&self) -> &[Address] {
        &self.bcc
    }

    /// Reply-To addresses, groups flattened.
    pub fn reply_to(&self) -> &[Address] {
        &self.reply_to
    }

    /// The decoded Subject; empty when absent.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The Date header; `None` when absent, unparseable or absurd (e.g. year 102).
    pub fn date(&self) -> Option<DateTime<FixedOffset>> {
        self.date
    }

    /// The Message-ID without `<>`.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The In-Reply-To ids without `<>`.
    pub fn in_reply_to(&self) -> &[String] {
        &self.in_reply_to
    }

    /// The References ids without `<>`, oldest first.
    pub fn references(&self) -> &[String] {
        &self.references
    }

    /// The first value of a header, by case-insensitive name, decoded and unfolded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.is(name)).map(Header::value)
    }

    /// Every value of a header, by case-insensitive name, top to bottom.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|h| h.is(name)).map(Header::value).collect()
    }

    /// All headers top to bottom: the name as written, the value decoded (RFC 2047) and
    /// unfolded. At most [`HEADER_LIMIT`].
    pub fn all_headers(&self) -> &[Header] {
        &self.headers
    }

    /// The list id from List-Id, the part inside `<>`, lowercased (`usrp-users.lists.ettus.com`).
    pub fn list_id(&self) -> Option<&str> {
        self.list_id.as_deref()
    }

    /// The plain-text body: the text parts joined, or text derived from the HTML when the
    /// message has none. At most [`TEXT_LIMIT`] bytes.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The HTML body, when there is one. At most [`TEXT_LIMIT`] bytes.
    pub fn html(&self) -> Option<&str> {
        self.html.as_deref()
    }

    /// Attachments, in message order.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// The receiving server's DKIM/SPF/DMARC verdicts (topmost Authentication-Results only).
    pub fn auth(&self) -> &AuthResults {
        &self.auth
    }

    /// The Delivered-To addresses, top (latest delivery) first.
    pub fn delivered_to(&self) -> &[String] {
        &self.delivered_to
    }

    /// A reply: In-Reply-To or References is present, or the subject starts with a reply
    /// prefix (`Re:`, `AW:`, `SV:`, `Antw:`, `回复:` ...), possibly after a `[list]` tag.
    pub fn is_reply(&self) -> bool {
        self.is_reply
    }

    /// Some list the message gave was longer than a view keeps and was cut: an address field,
    /// the ids or Delivered-To over [`LIST_LIMIT`], or more than [`HEADER_LIMIT`] headers (or
    /// attachments, or a body over [`TEXT_LIMIT`], once the body is read). Unlike
    /// [`Self::truncated`], the message was fetched; only what rules see of it is shortened.
    pub fn capped(&self) -> bool {
        // Not a read of the body: before the body is fetched, `body_clipped` says only whether
        // headers were dropped, which is known from the header pass.
        self.lists_capped || self.body_clipped
    }

    /// Sent by a machine, so it must never get an automatic reply: Auto-Submitted other than
    /// `no`, Precedence bulk/junk/list, X-Auto-Response-Suppress, X-Autoreply, X-Autorespond
    /// and the like ([`AUTO_REPLY_HEADERS`]), Apple's `X-Apple-Action: VACATION`, any List-*
    /// header, an empty Return-Path (`<>`, a bounce), or an auto-reply subject
    /// ([`auto_reply_subject`]: `Auto reply:`, `Automatic reply:`, `Out of Office` ...).
    pub fn is_auto_submitted(&self) -> bool {
        self.is_auto_submitted
    }
}
