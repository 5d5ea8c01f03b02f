//! Facts read from the top-level header block: decoded headers, addresses, date, ids, list id,
//! authentication verdicts, and the reply and auto-submitted signals.
//!
//! Both parse paths (mail-parser and the hand scan) hand over the same raw header list, so every
//! derived fact is computed one way only.

use std::sync::OnceLock;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use mail_parser::{HeaderValue, parsers::MessageStream};

use super::{Address, AuthResults};

/// The longest header value kept, in bytes: enough for any real header, while a 200 kB folded
/// Subject (seen in the wild) cannot make every rule scan it.
pub(super) const VALUE_LIMIT: usize = 64 * 1024;

/// Reply prefixes in the languages mail clients localise them to, lowercase.
const REPLY_PREFIXES: &[&str] = &[
    "re",
    "aw",
    "sv",
    "vs",
    "antw",
    "antwort",
    "odp",
    "ynt",
    "rif",
    "r",
    "réf",
    "res",
    "atb",
    "απ",
    "ответ",
    "回复",
    "回覆",
    "答复",
    "답장",
    "השב",
];

/// One top-level header as it appears in the message.
pub(super) struct RawHeader<'a> {
    /// The name as written, without the colon.
    pub name: String,
    /// The bytes after the colon, folds included.
    pub value: &'a [u8],
}

/// One header of a view: the name as written, and the value decoded (RFC 2047) and unfolded the
/// first time something reads it. Most headers of a message (Received, DKIM-Signature ...) are
/// never read by any rule, and decoding them all up front was most of the time spent on a
/// header block (perf on the backlog bench).
#[derive(Clone)]
pub struct Header {
    name: String,
    raw: Box<[u8]>,
    decoder: Decoder,
    decoded: OnceLock<String>,
}

impl Header {
    fn new(raw: &RawHeader<'_>, decoder: Decoder) -> Header {
        Header { name: raw.name.clone(), raw: raw.value.into(), decoder, decoded: OnceLock::new() }
    }

    /// The name as the message spells it (`X-Mailer`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, decoded (RFC 2047), unfolded and trimmed; at most [`VALUE_LIMIT`] bytes.
    pub fn value(&self) -> &str {
        self.decoded.get_or_init(|| decode_text(&self.raw, self.decoder))
    }

    /// Whether its name is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({:?}, {:?})", self.name, self.value())
    }
}

/// How header values are read: with mail-parser's field parsers, or (if those panicked) plainly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoder {
    /// RFC 2047 words, RFC 5322 addresses and dates, via mail-parser.
    MailParser,
    /// Unfolded bytes only: the last resort.
    Plain,
}

/// Everything the view takes from the header block.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub headers: Vec<Header>,
    pub from: Option<Address>,
    pub sender: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub subject: String,
    pub date: Option<DateTime<FixedOffset>>,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub list_id: Option<String>,
    pub auth: AuthResults,
    pub delivered_to: Vec<String>,
    pub is_reply: bool,
    pub is_auto_submitted: bool,
    /// An address field, the ids or Delivered-To held more than [`LIST_LIMIT`] items.
    pub lists_capped: bool,
}

/// The most items a view keeps of one address field (To, Cc, Bcc, Reply-To), of the ids of
/// In-Reply-To and References, and of Delivered-To: a sender can write any number, and a rule
/// must be able to read (and extend) what it gets within the engine's collection limit.
pub const LIST_LIMIT: usize = 1000;

/// `list` cut to [`LIST_LIMIT`], noting in `capped` when it was cut.
fn capped<T>(mut list: Vec<T>, capped: &mut bool) -> Vec<T> {
    if list.len() > LIST_LIMIT {
        *capped = true;
        list.truncate(LIST_LIMIT);
    }
    list
}

impl Fields {
    /// Reads every fact from the raw headers.
    pub fn derive(raw: &[RawHeader<'_>], decoder: Decoder) -> Self {
        let headers: Vec<Header> = raw.iter().map(|h| Header::new(h, decoder)).collect();
        let first_raw = |name: &str| raw.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
        let mut lists_capped = false;
        let mut all_addresses = |name: &str| -> Vec<Address> {
            let all = raw
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .flat_map(|h| addresses(h.value, decoder))
                .take(LIST_LIMIT + 1)
                .collect();
            capped(all, &mut lists_capped)
        };
        let (to, cc, bcc, reply_to) =
            (all_addresses("To"), all_addresses("Cc"), all_addresses("Bcc"), all_addresses("Reply-To"));
        let mut fields = Fields {
            from: first_raw("From").and_then(|v| addresses(v, decoder).into_iter().next()),
            sender: first_raw("Sender").and_then(|v| addresses(v, decoder).into_iter().next()),
            to,
            cc,
            bcc,
            reply_to,
            lists_capped,
            date: first_raw("Date").and_then(|v| date(v, decoder)),
            headers,
            ..Fields::default()
        };
        fields.fill_from_text();
        fields
    }

    /// The facts that need only the decoded header text.
    fn fill_from_text(&mut self) {
        let first = |name: &str| first_value(&self.headers, name);
        self.subject = first("Subject").unwrap_or_default().to_string();
        self.message_id = first("Message-ID").and_then(|v| ids(v).into_iter().next());
        let mut cut = self.lists_capped;
        self.in_reply_to = capped(first("In-Reply-To").map(ids).unwrap_or_default(), &mut cut);
        self.references = capped(all_values(&self.headers, "References").flat_map(ids).collect(), &mut cut);
        self.list_id = first("List-Id").and_then(list_id);
        self.auth = first("Authentication-Results").map(AuthResults::parse).unwrap_or_default();
        self.delivered_to = all_values(&self.headers, "Delivered-To")
            .map(|v| normalize_address(v).0)
            .filter(|a| !a.is_empty())
            .take(LIST_LIMIT + 1)
            .collect();
        self.delivered_to = capped(std::mem::take(&mut self.delivered_to), &mut cut);
        self.lists_capped = cut;
        self.is_reply = !self.in_reply_to.is_empty() || !self.references.is_empty() || has_reply_prefix(&self.subject);
        self.is_auto_submitted = is_auto_submitted(&self.headers) || auto_reply_subject(&self.subject).is_some();
    }
}

fn first_value<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    all_values(headers, name).next()
}

fn all_values<'h>(headers: &'h [Header], name: &str) -> impl Iterator<Item = &'h str> {
    headers.iter().filter(move |h| h.is(name)).map(Header::value)
}

/// The value as UTF-8 bytes ending in a newline, as mail-parser's field parsers expect. Raw
/// 8-bit headers that are not UTF-8 are read as Latin-1, the usual legacy charset, rather than
/// turned into replacement characters.
fn prepared(raw: &[u8]) -> Vec<u8> {
    let mut bytes = match std::str::from_utf8(raw) {
        Ok(_) => raw.to_vec(),
        Err(_) => raw.iter().map(|&b| char::from(b)).collect::<String>().into_bytes(),
    };
    if bytes.last() != Some(&b'\n') {
        bytes.push(b'\n');
    }
    bytes
}

/// The header value decoded (RFC 2047), unfolded and trimmed; at most [`VALUE_LIMIT`] bytes.
pub(super) fn decode_text(raw: &[u8], decoder: Decoder) -> String {
    if decoder == Decoder::MailParser
        && let Some(text) = unfolded(raw)
    {
        return text;
    }
    let bytes = prepared(raw);
    let text = match decoder {
        Decoder::MailParser => match MessageStream::new(&bytes).parse_unstructured() {
            HeaderValue::Text(text) => text.into_owned(),
            _ => String::new(),
        },
        Decoder::Plain => String::from_utf8_lossy(&bytes).chars().filter(|c| !matches!(c, '\r' | '\n')).collect(),
    };
    clip(text.trim(), VALUE_LIMIT).to_string()
}

/// [`decode_text`] of a value with nothing to decode (UTF-8, no `=?`), which is most values:
/// only unfolding, done here without mail-parser's copies (a rule reads a few headers of every
/// message, and decoding them was most of an evaluation). Unfolds exactly as mail-parser's
/// `parse_unstructured` does: each line trimmed of spaces, tabs and CRs, the non-empty ones
/// joined by one space, up to the first line break not followed by a space or tab. `None` when
/// the value needs the full decoder.
fn unfolded(raw: &[u8]) -> Option<String> {
    if raw.windows(2).any(|w| w == b"=?") {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        let token = line.trim_matches([' ', '\t', '\r']);
        if !token.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(token);
        }
        if !after.starts_with([' ', '\t']) {
            break;
        }
        rest = after;
    }
    let trimmed = clip(out.trim(), VALUE_LIMIT);
    if trimmed.len() != out.len() {
        return Some(trimmed.to_string());
    }
    Some(out)
}

/// `s` cut to at most `limit` bytes at a character boundary.
pub(super) fn clip(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The addresses in an address header, groups flattened; entries without an address dropped.
fn addresses(raw: &[u8], decoder: Decoder) -> Vec<Address> {
    if decoder == Decoder::Plain {
        return plain_addresses(&decode_text(raw, decoder));
    }
    let bytes = prepared(raw);
    let HeaderValue::Address(list) = MessageStream::new(&bytes).parse_address() else { return Vec::new() };
    list.iter()
        .filter_map(|a| {
            let name = a.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
            let written = a.address.as_deref().map(str::trim).filter(|a| !a.is_empty());
            let (address, domain) = match (written, name) {
                (Some(address), _) => normalize_address(address),
                // `From: MAILER-DAEMON`: one bare word is an address without a domain, not a name.
                (None, Some(word)) if !word.contains(char::is_whitespace) => (word.to_string(), String::new()),
                (None, _) => return None,
            };
            let name = name.filter(|_| written.is_some()).map(String::from);
            Some(Address { name, address, domain })
        })
        .collect()
}

/// Last-resort address reading: `Name <a@b>` or `a@b`, comma-separated.
fn plain_addresses(text: &str) -> Vec<Address> {
    text.split(',')
        .filter_map(|chunk| {
            let (name, addr) = match (chunk.find('<'), chunk.rfind('>')) {
                (Some(lt), Some(gt)) if lt < gt => (chunk[..lt].trim().trim_matches('"'), &chunk[lt + 1..gt]),
                _ => ("", chunk),
            };
            let (address, domain) = normalize_address(addr);
            let name = (!name.is_empty()).then(|| name.to_string());
            (!domain.is_empty()).then_some(Address { name, address, domain })
        })
        .collect()
}

/// (`local@domain` with the domain lowercased, the domain); the local part is kept as written.
/// Spaces in the domain (RFC 2822's obsolete `machine.  example`) are dropped. A "domain" with
/// control characters is none (`""`): rules file mail by domain (`Senders/<domain>`), and a NUL
/// in a folder name fails the rule (found by fuzzing).
pub(super) fn normalize_address(addr: &str) -> (String, String) {
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>').trim();
    match addr.rsplit_once('@') {
        Some((_, domain)) if domain.contains(|c: char| c.is_control() && !c.is_whitespace()) => {
            (addr.to_string(), String::new())
        }
        Some((local, domain)) => {
            let domain: String = domain.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
            (format!("{local}@{domain}"), domain)
        }
        None => (addr.to_string(), String::new()),
    }
}

/// The Date header as a timestamp; `None` when unparseable or out of 1900..=3000.
fn date(raw: &[u8], decoder: Decoder) -> Option<DateTime<FixedOffset>> {
    let bytes = prepared(raw);
    let parsed = match decoder {
        Decoder::MailParser => MessageStream::new(&bytes).parse_date(),
        Decoder::Plain => HeaderValue::Empty,
    };
    let HeaderValue::DateTime(d) = parsed else {
        // mail-parser rejects some forms chrono reads, such as times without seconds.
        return lenient_date(&decode_text(raw, decoder));
    };
    if !d.is_valid() || !sane_year(i32::from(d.year)) {
        return None;
    }
    let offset = (i32::from(d.tz_hour) * 3600 + i32::from(d.tz_minute) * 60) * if d.tz_before_gmt { -1 } else { 1 };
    let naive = NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())?.and_hms_opt(
        d.hour.into(),
        d.minute.into(),
        d.second.into(),
    )?;
    naive.and_local_timezone(FixedOffset::east_opt(offset)?).single()
}

/// Dates as broken mail writes them: a date without a zone (common in old spam) is read as
/// `-0000` (UTC, zone unknown), and a wrong weekday is ignored.
fn lenient_date(text: &str) -> Option<DateTime<FixedOffset>> {
    let without_weekday = match text.split_once(',') {
        Some((day, rest)) if day.trim().chars().all(|c| c.is_ascii_alphabetic()) => rest,
        _ => text,
    };
    [text.to_string(), format!("{text} -0000"), without_weekday.to_string(), format!("{without_weekday} -0000")]
        .iter()
        .find_map(|candidate| DateTime::parse_from_rfc2822(candidate).ok())
        .filter(|d| sane_year(d.year()))
}

/// Years outside this range are typos or forgeries (`102` for 2002), not dates.
fn sane_year(year: i32) -> bool {
    (1900..=3000).contains(&year)
}

/// Message ids in a Message-ID, In-Reply-To or References value, without `<>`. Old clients
/// wrote In-Reply-To as prose around the id, so only bracketed tokens count when there are any.
fn ids(value: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(lt) = rest.find('<') {
        let Some(gt) = rest[lt..].find('>') else { break };
        let id: String = rest[lt + 1..lt + gt].chars().filter(|c| !c.is_whitespace()).collect();
        if !id.is_empty() {
            found.push(id);
        }
        rest = &rest[lt + gt + 1..];
    }
    if found.is_empty() && !value.contains('<') {
        found.extend(value.split_whitespace().filter(|t| t.contains('@')).map(String::from));
    }
    found
}

/// `Name <id.example.com>` -> `id.example.com`; a bare id is accepted when it is one token.
fn list_id(value: &str) -> Option<String> {
    let id = match (value.rfind('<'), value.rfind('>')) {
        (Some(lt), Some(gt)) if lt < gt => value[lt + 1..gt].trim(),
        _ if !value.trim().contains(char::is_whitespace) => value.trim(),
        _ => return None,
    };
    // RFC 2919: the id is a dot-atom, so no spaces or control characters. One that has them is
    // no list id: rules file mail by it (`Lists/<name>`), and a NUL in a folder name fails the
    // rule (found by fuzzing the shipped rules).
    let dot_atom = !id.is_empty() && !id.contains(|c: char| c.is_whitespace() || c.is_control());
    dot_atom.then(|| id.to_lowercase())
}

/// Whether the subject starts with a reply prefix, after any `[list]` tags.
pub(super) fn has_reply_prefix(subject: &str) -> bool {
    let mut s = subject.trim_start();
    while let Some(tagged) = s.strip_prefix('[') {
        let Some(end) = tagged.find(']') else { break };
        s = tagged[end + 1..].trim_start();
    }
    let Some(colon) = s.char_indices().take(12).find(|(_, c)| matches!(c, ':' | '：')).map(|(i, _)| i) else {
        return false;
    };
    // `Re[2]:`, `Re(3):`, `RE :` are all replies.
    let prefix = s[..colon].trim_end().trim_end_matches(|c: char| c.is_ascii_digit() || "[]()^".contains(c));
    REPLY_PREFIXES.contains(&prefix.trim().to_lowercase().as_str())
}

/// Headers whose mere presence marks an automatic message: Exchange's suppression request and
/// its inbox-rule loop marker, and the marks of common auto-responders (procmail, cPanel,
/// qmail's autorespond, hosted vacation services).
pub const AUTO_REPLY_HEADERS: &[&str] = &[
    "x-auto-response-suppress",
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-auto-reply",
    "x-autogenerated",
    "x-ms-exchange-inbox-rules-loop",
];

/// The subject prefixes of out-of-office and other automatic replies that say so only in the
/// subject (Apple iCloud's `Auto reply:`, Outlook's `Automatic reply:`, Lotus Notes' `AUTO:`,
/// and their translations), lower-case. Checked after any `[tag]` and with `:`/space endings
/// loosened, so `Out of Office: x` and `[Auto-Reply] x` both count.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "auto:",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "automatic reply",
    "automatic response",
    "automated reply",
    "automated response",
    "out of office",
    "out of the office",
    "ooo:",
    "abwesenheitsnotiz",
    "automatische antwort",
    "réponse automatique",
    "respuesta automática",
    "risposta automatica",
    "automatisch antwoord",
    "automatyczna odpowiedź",
    "autosvar",
    "自动回复",
    "自動応答",
];

/// Which auto-reply prefix the subject starts with, if any (see [`AUTO_REPLY_SUBJECTS`]);
/// an outer `[...]` around the prefix (`[Auto-Reply] x`) counts too.
pub fn auto_reply_subject(subject: &str) -> Option<&'static str> {
    let subject = subject.trim_start().to_lowercase();
    let subject = subject.trim_start_matches('[').trim_start();
    AUTO_REPLY_SUBJECTS.iter().copied().find(|prefix| subject.starts_with(prefix))
}

/// RFC 3834 and the older conventions that say "a machine sent this; do not answer it".
fn is_auto_submitted(headers: &[Header]) -> bool {
    headers.iter().any(|header| {
        let token = || header.value().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let name = header.name();
        if name.eq_ignore_ascii_case("auto-submitted") {
            let token = token();
            !token.is_empty() && token != "no"
        } else if name.eq_ignore_ascii_case("precedence") {
            matches!(token().as_str(), "bulk" | "junk" | "list")
        } else if AUTO_REPLY_HEADERS.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            true
        } else if name.eq_ignore_ascii_case("x-apple-action") {
            token() == "vacation"
        } else if name.eq_ignore_ascii_case("return-path") {
            header.value().trim() == "<>"
        } else {
            name.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("list-"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(headers: &[(&str, &'static str)]) -> Vec<RawHeader<'static>> {
        headers.iter().map(|(n, v)| RawHeader { name: n.to_string(), value: v.as_bytes() }).collect()
    }

    #[test]
    fn plain_decoder_still_reads_the_basics() {
        let headers = raw(&[
            ("From", " \"Ann B\" <Ann@A.Example>\r\n"),
            ("To", " x@y.example,\r\n Zed <z@Y.example>\n"),
            ("Subject", " Re: folded\r\n subject\r\n"),
            ("Date", " Tue, 5 Mar 2024 14:07:09 +0100\n"),
            ("Message-ID", " <id@host>\n"),
            ("List-Id", " A list <List.Example.org>\n"),
        ]);
        let f = Fields::derive(&headers, Decoder::Plain);
        assert_eq!(
            f.from.as_ref().map(|a| (a.name.as_deref(), a.address.as_str())),
            Some((Some("Ann B"), "Ann@a.example"))
        );
        assert_eq!(f.to.iter().map(|a| a.address.as_str()).collect::<Vec<_>>(), ["x@y.example", "z@y.example"]);
        assert_eq!(f.subject, "Re: folded subject");
        assert_eq!(f.date.map(|d| d.to_rfc3339()).as_deref(), Some("2024-03-05T14:07:09+01:00"));
        assert_eq!(f.message_id.as_deref(), Some("id@host"));
        assert_eq!(f.list_id.as_deref(), Some("list.example.org"));
        assert!(f.is_reply && f.is_auto_submitted);
    }

    #[test]
    fn vacation_notices_marked_only_their_own_way_are_auto_submitted() {
        let auto =
            |headers: &[(&str, &'static str)]| Fields::derive(&raw(headers), Decoder::MailParser).is_auto_submitted;
        assert!(auto(&[("X-Apple-Action", " VACATION\n"), ("Subject", " Nyaan\n")]));
        assert!(auto(&[("Subject", " Automatic reply: Nyaan\n")]));
        assert!(auto(&[("Subject", " AUTO: John is out of the office.\n")]));
        assert!(auto(&[("X-MS-Exchange-Inbox-Rules-Loop", " a@b.example\n")]));
        assert!(!auto(&[("X-Apple-Action", " FORWARD\n"), ("Subject", " About the office move\n")]));
    }

    #[test]
    fn address_lists_and_ids_stop_at_the_limit_and_say_so() {
        let to: String = (0..LIST_LIMIT + 5).map(|i| format!("u{i}@x.example")).collect::<Vec<_>>().join(", ");
        let to: &'static str = Box::leak(format!(" {to}\n").into_boxed_str());
        let f = Fields::derive(&raw(&[("To", to), ("Cc", " a@x.example\n")]), Decoder::MailParser);
        assert_eq!((f.to.len(), f.cc.len(), f.lists_capped), (LIST_LIMIT, 1, true));
        let f = Fields::derive(&raw(&[("To", " a@x.example\n")]), Decoder::MailParser);
        assert!(!f.lists_capped);
        let refs: String = (0..LIST_LIMIT + 1).map(|i| format!(" <{i}@x>")).collect();
        let refs: &'static str = Box::leak(format!("{refs}\n").into_boxed_str());
        let f = Fields::derive(&raw(&[("References", refs)]), Decoder::MailParser);
        assert_eq!((f.references.len(), f.lists_capped), (LIST_LIMIT, true));
    }

    #[test]
    fn a_domain_with_control_characters_is_no_domain() {
        assert_eq!(normalize_address("<Ann@A.Example>"), ("Ann@a.example".to_owned(), "a.example".to_owned()));
        let (address, domain) = normalize_address("service@serv.\0\0.family.example.com");
        assert_eq!((address.as_str(), domain.as_str()), ("service@serv.\0\0.family.example.com", ""));
        assert_eq!(normalize_address("jdoe@machine.  Example").1, "machine.example");
    }

    #[test]
    fn a_list_id_with_spaces_or_control_characters_is_no_list_id() {
        assert_eq!(list_id("Users <users.example.org>").as_deref(), Some("users.example.org"));
        assert_eq!(list_id("users.example.org").as_deref(), Some("users.example.org"));
        for hostile in ["<unsub@reply\u{97}github/4\0\0\x33@github>", "<a b.example>", "<a\r\n.example>", "<>"] {
            assert_eq!(list_id(hostile), None, "{hostile:?}");
        }
    }

    /// The fast path reads every value exactly as mail-parser does.
    #[test]
    fn unfolding_agrees_with_mail_parser() {
        let values: &[&[u8]] = &[
            b" plain\r\n",
            b"plain",
            b"",
            b"   \r\n",
            b" <list.example.org>\n",
            b" folded\r\n\tover\r\n  three lines \r\n",
            b" inner  double  spaces\t and\ttabs\n",
            b" a\r\n \r\n b\n",
            b" stops\nhere at a line without a space\n",
            b" bare\rcr inside\n",
            b" trailing fold\n ",
            b" \xc2\xa0nbsp\xc2\xa0\n",
            b" J\xc3\xb6rg M\xc3\xbcller\n",
            b" =?utf-8?q?J=C3=B6rg?= x\n",
            b" a = b ? c\n",
            b" latin1 \xe9t\xe9\n",
            b"\n folded first\n",
        ];
        for raw in values {
            let full = {
                let bytes = prepared(raw);
                let text = match MessageStream::new(&bytes).parse_unstructured() {
                    HeaderValue::Text(text) => text.into_owned(),
                    _ => String::new(),
                };
                clip(text.trim(), VALUE_LIMIT).to_string()
            };
            assert_eq!(decode_text(raw, Decoder::MailParser), full, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn value_limit_and_clip() {
        let long = format!(" {}\n", "ü".repeat(VALUE_LIMIT));
        assert!(decode_text(long.as_bytes(), Decoder::MailParser).len() <= VALUE_LIMIT);
        assert_eq!(clip("aé", 2), "a");
        assert_eq!(
            normalize_address(" <Local.Part@EXAMPLE.org> "),
            ("Local.Part@example.org".into(), "example.org".into())
        );
    }
}
