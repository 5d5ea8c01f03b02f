//! Raw bytes + fetch metadata -> [`MessageView`].
//!
//! mail-parser does the MIME work inside `catch_unwind` (crafted input has panicked it before);
//! when it panics or finds no message, the hand scan in [`super::scan`] reads the headers.
//! Header facts are derived the same way on both paths (see [`super::fields`]).

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::fields::{Decoder, Fields, RawHeader, clip};
use super::html::html_to_text;
use super::{Attachment, GmailAttrs, MessageKey, MessageView, Raw, scan};

/// The longest text (and HTML) body kept for rules, in bytes; longer bodies are cut here and
/// the view says so ([`MessageView::body_clipped`]).
pub const TEXT_LIMIT: usize = 1024 * 1024;

/// The most headers, and attachments, a view keeps; more are dropped (and flagged as clipped).
pub const HEADER_LIMIT: usize = 1000;

/// HTML longer than this is not converted to text beyond it: the text limit is reached anyway.
const HTML_INPUT_LIMIT: usize = 4 * TEXT_LIMIT;

/// What the fetcher knows about a message besides its bytes.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Where the message lives.
    pub key: MessageKey,
    /// IMAP flags and keywords as the server sent them (`\Seen`, `$Junk`, `invoice`).
    pub flags: Vec<String>,
    /// IMAP INTERNALDATE.
    pub internal_date: Option<DateTime<Utc>>,
    /// IMAP RFC822.SIZE; the raw length is used when absent.
    pub size: Option<u64>,
    /// Only the headers were fetched because the message is over the size cap.
    pub truncated: bool,
    /// Only the headers were fetched because nothing asked for the body yet: the evaluation
    /// says when a rule wanted it (`rules::decide`) so the caller can fetch it all.
    pub body_deferred: bool,
    /// Gmail's labels, thread and message id, when the server is Gmail.
    pub gmail: Option<GmailAttrs>,
}

impl Meta {
    /// Metadata with only the key: no flags, no dates, size from the bytes, not truncated.
    pub fn new(key: MessageKey) -> Self {
        Self {
            key,
            flags: Vec::new(),
            internal_date: None,
            size: None,
            truncated: false,
            body_deferred: false,
            gmail: None,
        }
    }
}

/// What a parse path extracted, before header facts are derived.
struct Content<'a> {
    headers: Vec<RawHeader<'a>>,
    text: String,
    html: Option<String>,
    attachments: Vec<Attachment>,
    clipped: bool,
    degraded: bool,
}

/// Parses one message. Never fails and never panics: broken mail yields a view with whatever
/// could be read. CPU-bound; async callers use [`parse_blocking`].
pub fn parse(raw: &[u8], meta: Meta) -> MessageView {
    parse_shared(Arc::new(raw.to_vec()), meta)
}

/// [`parse`] of bytes the caller hands over: the view keeps them without a copy.
pub fn parse_owned(raw: Vec<u8>, meta: Meta) -> MessageView {
    parse_shared(Arc::new(raw), meta)
}

/// [`parse`] of bytes the view keeps as they are (no copy).
fn parse_shared(raw: Arc<Vec<u8>>, meta: Meta) -> MessageView {
    parse_with(raw, meta, with_mail_parser)
}

/// The MIME stage: (prepared input, headers only) -> what it could read.
type MimeStage = for<'a> fn(&'a [u8], bool) -> Option<Content<'a>>;

/// [`parse`] with the MIME stage passed in, so that tests can make it fail.
fn parse_with(raw: Arc<Vec<u8>>, meta: Meta, mime: MimeStage) -> MessageView {
    let input = prepare(&raw);
    let headers_only = meta.truncated || meta.body_deferred;
    let attempt = match headers_only {
        // A header block alone needs no MIME parser: the hand scan finds the same headers as
        // mail-parser in every real corpus message (corpus test), at a fraction of the cost.
        true => Ok(Some(header_block(&input))),
        false => catch_unwind(AssertUnwindSafe(|| mime(&input, headers_only))),
    };
    let content = match attempt {
        Ok(Some(content)) => content,
        Ok(None) => {
            tracing::warn!(key = %meta.key, bytes = raw.len(), "mail-parser found no message; reading headers by hand");
            by_hand(&input, headers_only)
        }
        Err(_) => {
            tracing::warn!(key = %meta.key, bytes = raw.len(), "mail-parser panicked; reading headers by hand");
            by_hand(&input, headers_only)
        }
    };
    let fields = catch_unwind(AssertUnwindSafe(|| Fields::derive(&content.headers, Decoder::MailParser)))
        .unwrap_or_else(|_| {
            tracing::warn!(key = %meta.key, "mail-parser panicked on a header; reading headers plainly");
            Fields::derive(&content.headers, Decoder::Plain)
        });
    let size = meta.size.unwrap_or(raw.len() as u64);
    assemble(Raw(raw.clone()), meta, size, content, fields)
}

/// [`parse`] on the blocking thread pool, so a large message does not stall the async workers.
pub async fn parse_blocking(raw: Vec<u8>, meta: Meta) -> MessageView {
    let raw = Arc::new(raw);
    let (task_raw, task_meta) = (raw.clone(), meta.clone());
    match tokio::task::spawn_blocking(move || parse_shared(task_raw, task_meta)).await {
        Ok(view) => view,
        Err(error) => {
            // Only a runtime shutting down cancels the task; the view is still owed to the caller.
            tracing::warn!(key = %meta.key, %error, "blocking parse did not finish; parsing in place");
            parse_shared(raw, meta)
        }
    }
}

/// Makes line endings something mail-parser reads (it splits on `\n` only) and drops blank lines
/// before the header block (some exported bounces start with one, hiding every header).
fn prepare(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut input = Cow::Borrowed(raw);
    let first_eol = raw.iter().position(|&b| b == b'\r' || b == b'\n');
    if let Some(i) = first_eol
        && raw[i] == b'\r'
        && raw.get(i + 1) != Some(&b'\n')
    {
        // Classic Mac CR-only mail: every lone CR is a line end; CRLF pairs stay as they are.
        let fixed =
            raw.iter().enumerate().map(|(i, &b)| if b == b'\r' && raw.get(i + 1) != Some(&b'\n') { b'\n' } else { b });
        input = Cow::Owned(fixed.collect());
    }
    let start = header_start(&input);
    match input {
        Cow::Borrowed(b) => Cow::Borrowed(&b[start..]),
        Cow::Owned(mut v) => {
            v.drain(..start);
            Cow::Owned(v)
        }
    }
}

/// The offset of the first line when it is a header after only whitespace lines; else 0.
fn header_start(input: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(eol) = input[pos..].iter().position(|&b| b == b'\n') {
        let line = &input[pos..pos + eol];
        if !line.iter().all(|b| b.is_ascii_whitespace()) {
            break;
        }
        pos += eol + 1;
    }
    let line = &input[pos..];
    let looks_like_header = line
        .iter()
        .take(80)
        .position(|&b| b == b':')
        .is_some_and(|colon| colon > 0 && line[..colon].iter().all(|b| b.is_ascii_graphic()));
    if looks_like_header { pos } else { 0 }
}

/// mail-parser set up to do only what `Fields` does not: `Fields` decodes the header values
/// from the raw bytes, so here mail-parser only has to find where each header is, and read the
/// MIME headers it needs to decode the body. Parsing every Received, address and date header
/// twice was most of the time spent on a message (measured with perf on the backlog bench).
struct Parsers {
    /// For a header block alone: every header skipped over, only its position kept.
    headers: MessageParser,
    /// For a whole message: the MIME headers parsed, the rest skipped over.
    whole: MessageParser,
}

fn parsers() -> &'static Parsers {
    static PARSERS: std::sync::OnceLock<Parsers> = std::sync::OnceLock::new();
    PARSERS.get_or_init(|| Parsers {
        // A non-empty map makes mail-parser use it and the default for every header, instead
        // of its built-in parser per header name.
        headers: MessageParser::new().ignore_header(mail_parser::HeaderName::Received).default_header_ignore(),
        whole: MessageParser::new().with_mime_headers().default_header_ignore(),
    })
}

/// The normal path. `None` when mail-parser finds no message at all.
fn with_mail_parser(input: &[u8], headers_only: bool) -> Option<Content<'_>> {
    let message = if headers_only { parsers().headers.parse_headers(input) } else { parsers().whole.parse(input) }?;
    let root = message.parts.first()?;
    let headers = root
        .headers
        .iter()
        .take(HEADER_LIMIT)
        .map(|h| RawHeader {
            name: name_as_written(input, h.offset_field, h.offset_start).unwrap_or_else(|| h.name.as_str().to_string()),
            value: input.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default(),
        })
        .collect();
    let mut clipped = root.headers.len() > HEADER_LIMIT;
    let (text, html) = if headers_only { (String::new(), None) } else { bodies(&message, &mut clipped) };
    let attachments = if headers_only { Vec::new() } else { attachments(&message, &mut clipped) };
    Some(Content { headers, text, html, attachments, clipped, degraded: false })
}

/// The header name as the message spells it (`X-Mailer`, not mail-parser's canonical form).
fn name_as_written(input: &[u8], field: u32, value: u32) -> Option<String> {
    let raw = input.get(field as usize..value as usize)?;
    let name = raw.split(|&b| b == b':').next()?.trim_ascii();
    (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned())
}

/// (text, html): the body parts joined; text falls back to the HTML's text.
fn bodies(message: &Message<'_>, clipped: &mut bool) -> (String, Option<String>) {
    let parts = |ids: &[u32]| ids.iter().filter_map(|&id| message.parts.get(id as usize)).collect::<Vec<_>>();
    let htmls: Vec<&str> = parts(&message.html_body)
        .into_iter()
        .filter_map(|p| match &p.body {
            PartType::Html(html) => Some(html.as_ref()),
            _ => None,
        })
        .collect();
    let html = (!htmls.is_empty()).then(|| htmls.join("\n"));
    let texts: Vec<Cow<'_, str>> = parts(&message.text_body)
        .into_iter()
        .filter_map(|p| match &p.body {
            PartType::Text(text) => Some(Cow::Borrowed(text.as_ref())),
            PartType::Html(html) => Some(Cow::Owned(html_to_text(clip(html, HTML_INPUT_LIMIT)))),
            _ => None,
        })
        .collect();
    let mut text = texts.join("\n");
    if text.trim().is_empty()
        && let Some(html) = &html
    {
        text = html_to_text(clip(html, HTML_INPUT_LIMIT));
    }
    (keep(text, clipped), html.map(|h| keep(h, clipped)))
}

/// `s` cut to [`TEXT_LIMIT`], noting when it was cut.
fn keep(s: String, clipped: &mut bool) -> String {
    if s.len() <= TEXT_LIMIT {
        return s;
    }
    *clipped = true;
    clip(&s, TEXT_LIMIT).to_string()
}

fn attachments(message: &Message<'_>, clipped: &mut bool) -> Vec<Attachment> {
    *clipped |= message.attachments.len() > HEADER_LIMIT;
    message
        .attachments
        .iter()
        .take(HEADER_LIMIT)
        .filter_map(|&id| message.parts.get(id as usize))
        .map(|part| Attachment {
            name: part.attachment_name().map(str::trim).filter(|n| !n.is_empty()).map(String::from),
            content_type: content_type(part),
            size: part.len() as u64,
        })
        .collect()
}

/// `type/subtype` lowercased; from the body kind when the part has no usable Content-Type.
fn content_type(part: &MessagePart<'_>) -> String {
    if let Some(ct) = part.content_type()
        && !ct.ctype().trim().is_empty()
    {
        let subtype = ct.subtype().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("octet-stream");
        return format!("{}/{}", ct.ctype().trim(), subtype).to_lowercase();
    }
    match part.body {
        PartType::Text(_) => "text/plain",
        PartType::Html(_) => "text/html",
        PartType::Message(_) => "message/rfc822",
        _ => "application/octet-stream",
    }
    .to_string()
}

/// A header block without its body: the headers by hand; degraded only when there are none.
fn header_block(input: &[u8]) -> Content<'_> {
    let (headers, _) = scan::headers(input, HEADER_LIMIT);
    let degraded = headers.is_empty() && !input.trim_ascii().is_empty();
    Content { headers, text: String::new(), html: None, attachments: Vec::new(), clipped: false, degraded }
}

/// The fallback path: headers by hand, and the rest as text (it may well be MIME source).
fn by_hand(input: &[u8], headers_only: bool) -> Content<'_> {
    let (headers, body_start) = scan::headers(input, HEADER_LIMIT);
    let mut clipped = false;
    let text = if headers_only {
        String::new()
    } else {
        let body = &input[body_start.min(input.len())..];
        keep(String::from_utf8_lossy(body).into_owned(), &mut clipped)
    };
    Content { headers, text, html: None, attachments: Vec::new(), clipped, degraded: true }
}

fn assemble(raw: Raw, meta: Meta, size: u64, content: Content<'_>, fields: Fields) -> MessageView {
    let (flags, keywords) = meta.flags.into_iter().partition(|f| f.starts_with('\\'));
    MessageView {
        raw,
        key: meta.key,
        size,
        truncated: meta.truncated,
        body_deferred: meta.body_deferred,
        body_clipped: content.clipped,
        degraded: content.degraded,
        flags,
        keywords,
        gmail: meta.gmail,
        internal_date: meta.internal_date,
        lists_capped: fields.lists_capped,
        from: fields.from,
        sender: fields.sender,
        to: fields.to,
        cc: fields.cc,
        bcc: fields.bcc,
        reply_to: fields.reply_to,
        subject: fields.subject,
        date: fields.date,
        message_id: fields.message_id,
        in_reply_to: fields.in_reply_to,
        references: fields.references,
        headers: fields.headers,
        list_id: fields.list_id,
        text: content.text,
        html: content.html,
        attachments: content.attachments,
        auth: fields.auth,
        delivered_to: fields.delivered_to,
        is_reply: fields.is_reply,
        is_auto_submitted: fields.is_auto_submitted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta::new(MessageKey::new("work", "INBOX", 1, 9))
    }

    const RAW: &[u8] =
        b"From: Ann <ann@a.example>\r\nSubject: =?UTF-8?Q?H=C3=A9?=\r\nX-Long: one\r\n two\r\n\r\nbody\r\n";

    fn panicking(_: &[u8], _: bool) -> Option<Content<'_>> {
        panic!("mail-parser stand-in panics")
    }

    fn finding_nothing(_: &[u8], _: bool) -> Option<Content<'_>> {
        None
    }

    #[test]
    fn a_panicking_parser_falls_back_to_the_hand_scan() {
        for stage in [panicking as MimeStage, finding_nothing] {
            let v = parse_with(Arc::new(RAW.to_vec()), meta(), stage);
            assert!(v.degraded());
            assert_eq!(v.from().map(|a| a.address.as_str()), Some("ann@a.example"));
            assert_eq!(v.subject(), "Hé");
            assert_eq!(v.header("x-long"), Some("one two"));
            assert_eq!(v.text(), "body\r\n");
        }
        let v = parse_with(Arc::new(RAW.to_vec()), Meta { truncated: true, ..meta() }, panicking);
        assert_eq!((v.subject(), v.text()), ("Hé", ""));
    }

    #[test]
    fn a_real_mail_parser_panic_is_contained() {
        // A message/rfc822 part inside a digest part: mail-parser 0.11.9 trips a debug_assert
        // here ("Invalid part ID"), so debug builds panic and release builds do not.
        let raw = b"Content-Type: multipart/digest; boundary=a\n\n--a\n\nSubject: y\n\
                    Content-Type: message/rfc822\n\nhi\n--a\n\n--a--\n";
        let v = parse(raw, meta());
        assert_eq!(v.degraded(), cfg!(debug_assertions));
        assert!(v.header("Content-Type").is_some_and(|ct| ct.starts_with("multipart/digest")));
    }

    #[test]
    fn prepare_fixes_cr_only_and_leading_blank_lines() {
        assert_eq!(&*prepare(b"A: 1\rB: 2\r\rbody\r\n"), b"A: 1\nB: 2\n\nbody\r\n");
        assert_eq!(&*prepare(b"A: 1\r\n\r\nx\ry"), b"A: 1\r\n\r\nx\ry");
        assert_eq!(&*prepare(b"\n \t\nA: 1\n"), b"A: 1\n");
        assert_eq!(&*prepare(b"\nbody only\n"), b"\nbody only\n");
    }
}
