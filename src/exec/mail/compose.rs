//! Composing the messages tidings sends: replies, forwards and new messages, as RFC 5322 bytes
//! and the SMTP envelope they go under.
//!
//! Every message carries `Auto-Submitted` (RFC 3834: `auto-replied` for a reply,
//! `auto-generated` otherwise), so that other responders leave it alone, and
//! `X-Auto-Response-Suppress: All`, Exchange's way of saying the same. It has a Message-ID on
//! the domain of its From address and a Date; a reply is threaded under the original
//! (`In-Reply-To`, `References`). Nothing names the rule that sent it: rule names are the
//! user's own business, not the recipient's.
//!
//! A forward also carries `X-Loop: <its From address>` after the X-Loop lines of the message it
//! forwards: the marker by which [`super::guard::check_forward`] stops a forwarding loop.
//! Subjects are made one line (control characters become spaces) whatever stored them.
//!
//! The envelope sender is the From address: submission servers refuse or rewrite a null one
//! (`<>`), and a bounce of an automatic message cannot start a loop anyway, since the reply
//! guards never answer `<>` or MAILER-DAEMON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::config::Account;
use crate::plan::{Forward, NewMessage, Original, Reply, one_line};

/// A message ready for SMTP. Its `Debug` leaves the message out: logs carry no mail.
#[derive(Clone)]
pub struct Composed {
    /// MAIL FROM and RCPT TO.
    pub envelope: lettre::address::Envelope,
    /// The RFC 5322 message, CRLF line ends.
    pub bytes: Vec<u8>,
    /// Its Message-ID, without `<>`.
    pub message_id: String,
}

impl std::fmt::Debug for Composed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composed")
            .field("envelope", &self.envelope)
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .field("message_id", &self.message_id)
            .finish()
    }
}

/// Why a message cannot be composed. The action is wrong, not the network: retrying will not help.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// An address the message needs is not one SMTP can carry.
    #[error("cannot compose the {what} of account {account}: `{address}` is not a usable address")]
    Address {
        /// reply, forward or message.
        what: &'static str,
        /// The account.
        account: String,
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The forwarded original, stored base64, cannot be read back.
    #[error("cannot compose the forward of account {account}: the stored original is not valid base64")]
    Attachment {
        /// The account.
        account: String,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
    /// lettre refused to build the message (no recipient, for one).
    #[error("cannot compose the {what} of account {account}")]
    Build {
        /// reply, forward or message.
        what: &'static str,
        /// The account.
        account: String,
        /// Why.
        #[source]
        source: lettre::error::Error,
    },
}

/// The most message ids a reply's References keeps: the first (the thread's root) and the
/// latest ones. Long threads would otherwise grow the header without bound.
const MAX_REFERENCES: usize = 20;

/// A reply to `reply.to` from `from`, threaded under the original.
pub fn reply(reply: &Reply, from: &str, account: &Account) -> Result<Composed, ComposeError> {
    let what = "reply";
    let to = mailbox(what, account, &reply.to)?;
    let mut builder = start(what, account, from)?.to(to).subject(one_line(&reply.subject));
    if let Some(id) = &reply.original.message_id {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    if let Some(references) = references(&reply.original) {
        builder = builder.references(references);
    }
    let builder = builder.raw_header(auto_submitted("auto-replied"));
    finish(what, account, builder, text_or_alternative(&reply.body, reply.html.as_deref()))
}

/// The original sent on to `forward.to`: inline (its headers summary and text under the note),
/// or whole as a `message/rfc822` attachment when the rule asked for that.
pub fn forward(forward: &Forward, from: &str, account: &Account) -> Result<Composed, ComposeError> {
    let what = "forward";
    let mut builder = start(what, account, from)?.subject(one_line(&forward_subject(&forward.original.subject)));
    for to in &forward.to {
        builder = builder.to(mailbox(what, account, to)?);
    }
    let builder = builder.raw_header(auto_submitted("auto-generated"));
    let body = match &forward.attached {
        Some(encoded) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|source| ComposeError::Attachment { account: account.name.clone(), source })?;
            let note = forward.note.clone().unwrap_or_else(|| "The forwarded message is attached.".to_owned());
            MultiPart::mixed().singlepart(SinglePart::plain(note)).singlepart(rfc822(raw))
        }
        None => MultiPart::mixed().singlepart(SinglePart::plain(inline_forward(forward))),
    };
    let mut composed = finish(what, account, builder, Content::Multi(body))?;
    // lettre keeps one header per name, so the X-Loop lines go on top of the header block, where
    // trace headers are: plain ASCII without spaces (see `loop_markers`), nothing to encode.
    let markers: String = super::guard::loop_markers(&forward.original, from)
        .iter()
        .map(|marker| format!("X-Loop: {marker}\r\n"))
        .collect();
    composed.bytes.splice(0..0, markers.into_bytes());
    Ok(composed)
}

/// A new message (a notice, a digest).
pub fn send(message: &NewMessage, from: &str, account: &Account) -> Result<Composed, ComposeError> {
    let what = "message";
    let mut builder = start(what, account, from)?.subject(one_line(&message.subject));
    for to in &message.to {
        builder = builder.to(mailbox(what, account, to)?);
    }
    for cc in &message.cc {
        builder = builder.cc(mailbox(what, account, cc)?);
    }
    let builder = builder.raw_header(auto_submitted("auto-generated"));
    finish(what, account, builder, text_or_alternative(&message.body, message.html.as_deref()))
}

/// What goes under the headers.
enum Content {
    Single(SinglePart),
    Multi(MultiPart),
}

fn text_or_alternative(text: &str, html: Option<&str>) -> Content {
    match html {
        Some(html) => Content::Multi(MultiPart::alternative_plain_html(text.to_owned(), html.to_owned())),
        None => Content::Single(SinglePart::plain(text.to_owned())),
    }
}

/// The headers every message has: From, Date, Message-ID and the auto-response suppression.
fn start(what: &'static str, account: &Account, from: &str) -> Result<lettre::message::MessageBuilder, ComposeError> {
    let from_box = mailbox(what, account, from)?;
    let suppress = HeaderValue::new(HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"), "All".to_owned());
    Ok(Message::builder()
        .from(from_box)
        .date(SystemTime::now())
        .message_id(Some(format!("<{}>", message_id(from))))
        .raw_header(suppress))
}

fn finish(
    what: &'static str,
    account: &Account,
    builder: lettre::message::MessageBuilder,
    content: Content,
) -> Result<Composed, ComposeError> {
    let build = |source| ComposeError::Build { what, account: account.name.clone(), source };
    let message = match content {
        Content::Single(part) => builder.singlepart(part),
        Content::Multi(part) => builder.multipart(part),
    }
    .map_err(build)?;
    let message_id = message
        .headers()
        .get_raw("Message-ID")
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        .unwrap_or_default();
    Ok(Composed { envelope: message.envelope().clone(), bytes: message.formatted(), message_id })
}

fn mailbox(what: &'static str, account: &Account, address: &str) -> Result<Mailbox, ComposeError> {
    let parsed = address.trim().parse::<Address>().map_err(|source| ComposeError::Address {
        what,
        account: account.name.clone(),
        address: address.to_owned(),
        source,
    })?;
    Ok(Mailbox::new(None, parsed))
}

fn auto_submitted(value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), value.to_owned())
}

/// The original's References (or, lacking them, nothing) and its Message-ID: the thread so far.
fn references(original: &Original) -> Option<String> {
    let mut ids: Vec<&str> = original.references.iter().map(String::as_str).collect();
    ids.extend(original.message_id.as_deref());
    if ids.len() > MAX_REFERENCES {
        ids.drain(1..ids.len() - (MAX_REFERENCES - 1));
    }
    (!ids.is_empty()).then(|| ids.iter().map(|id| format!("<{id}>")).collect::<Vec<_>>().join(" "))
}

/// `Fwd: <subject>`, never `Fwd: Fwd:`.
fn forward_subject(subject: &str) -> String {
    let lower = subject.trim_start().to_lowercase();
    if lower.starts_with("fwd:") || lower.starts_with("fw:") { subject.to_owned() } else { format!("Fwd: {subject}") }
}

/// The note, the original's headers summary and its text.
fn inline_forward(forward: &Forward) -> String {
    let o = &forward.original;
    let mut text = String::new();
    if let Some(note) = &forward.note {
        text.push_str(note);
        text.push_str("\n\n");
    }
    text.push_str("---------- Forwarded message ----------\n");
    text.push_str(&format!("From: {}\n", o.from));
    if let Some(date) = &o.date {
        text.push_str(&format!("Date: {date}\n"));
    }
    text.push_str(&format!("Subject: {}\n", o.subject));
    if !o.to.is_empty() {
        text.push_str(&format!("To: {}\n", o.to.join(", ")));
    }
    if !o.cc.is_empty() {
        text.push_str(&format!("Cc: {}\n", o.cc.join(", ")));
    }
    text.push('\n');
    text.push_str(&forward.text);
    text
}

/// The original as a `message/rfc822` attachment. RFC 2046 allows only 7bit and 8bit (and
/// binary, which SMTP cannot carry) for such a part; an original that is neither (NUL bytes,
/// lines over 998 octets, 8-bit text that is not UTF-8) goes as base64, which readers accept.
fn rfc822(raw: Vec<u8>) -> SinglePart {
    let raw = crlf(&raw);
    let fits = !raw.contains(&0) && raw.split(|&b| b == b'\n').all(|line| line.len() <= 999);
    let body = match (fits, raw.is_ascii(), std::str::from_utf8(&raw).is_ok()) {
        (true, true, _) => Body::dangerous_pre_encoded(raw, ContentTransferEncoding::SevenBit),
        (true, false, true) => Body::dangerous_pre_encoded(raw, ContentTransferEncoding::EightBit),
        _ => Body::new(raw),
    };
    // Parsing a fixed, valid MIME type cannot fail; the fallback keeps this free of a panic.
    let content_type = ContentType::parse("message/rfc822").unwrap_or(ContentType::TEXT_PLAIN);
    Attachment::new("forwarded.eml".to_owned()).body(body, content_type)
}

/// `bytes` with every line ending CRLF, as SMTP wants them.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// A new Message-ID on the domain of `from`: time, process and a counter make it unique on this
/// host; random bits keep two hosts from colliding.
fn message_id(from: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let domain = from.rsplit_once('@').map_or("localhost", |(_, domain)| domain.trim());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut random = [0u8; 6];
    // Without randomness the id is still unique on this host, which is what matters most.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{nanos:x}.{:x}.{}.{random}.tidings@{domain}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;
