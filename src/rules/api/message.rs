//! The `msg` object rules read: getters only, so no rule can change what the next rule sees.
//!
//! The getters are a table, one row per property with its reference entry: adding a property is
//! adding a row, and it cannot be added without its documentation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rhai::{Array, Dynamic, Engine, ImmutableString, Map};

use super::date::Date;
use super::reference::{Doc, doc, function, getter};
use crate::message::{Address, AuthResults, MessageView};

/// The message as a script value: a cheap handle on the shared, immutable view, and on the
/// evaluation's note of whether a rule read the body.
#[derive(Clone, Debug)]
pub struct Msg(pub Arc<MessageView>, pub BodyRead);

/// Whether a rule of one evaluation read the body (text, HTML, attachments) of the message.
/// Held by the evaluation, not the view: the view is shared and stays as parsed. Shared by the
/// handles of one evaluation (a rule may copy `msg` into a variable), and it outlives a rule
/// that fails or panics after reading.
#[derive(Clone, Debug, Default)]
pub struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a rule read the body.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The properties that read the body: on a view whose body was not fetched they are empty, and
/// the decision made without them is not final.
const BODY: &[&str] = &["text", "html", "attachments"];

/// The receiving server's verdicts, as `msg.auth` gives them.
#[derive(Clone, Debug)]
pub struct Auth(pub AuthResults);

fn addresses(list: &[Address]) -> Dynamic {
    list.iter().cloned().map(Dynamic::from).collect::<Array>().into()
}

fn strings<S: AsRef<str>>(list: &[S]) -> Dynamic {
    list.iter().map(|s| Dynamic::from(s.as_ref().to_owned())).collect::<Array>().into()
}

/// A string straight into a script string (no intermediate `String`); `""` when absent, so that
/// the natural test (`msg.list_id.contains("x")`, `== "x"`) is simply false on a message without
/// it, as in Sieve, instead of an error that stops the rule. `msg.has_header` says whether a
/// header is there.
fn opt(value: Option<&str>) -> Dynamic {
    Dynamic::from(value.map_or_else(ImmutableString::new, ImmutableString::from))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An address with every part empty, for a message without From: `msg.from.domain == "x"` is
/// then simply false instead of an error that stops the rule.
fn nobody() -> Address {
    Address { name: None, address: String::new(), domain: String::new() }
}

fn attachments(m: &MessageView) -> Dynamic {
    let list = m.attachments().iter().map(|a| {
        let mut map = Map::new();
        map.insert("name".into(), opt(a.name.as_deref()));
        map.insert("type".into(), a.content_type.clone().into());
        map.insert("size".into(), Dynamic::from(int(a.size)));
        Dynamic::from_map(map)
    });
    list.collect::<Array>().into()
}

/// A property of the message: its name, its reference entry, how to read it.
type Property = (&'static str, Doc, fn(&MessageView) -> Dynamic);

/// Every `msg.<property>`.
const PROPERTIES: &[Property] = &[
    (
        "from",
        doc(
            "msg.from -> Address",
            "The first From address; every part is \"\" when there is none.",
            r#"if msg.from.domain == "github.com" { label("GitHub"); }"#,
        ),
        |m| Dynamic::from(m.from().cloned().unwrap_or_else(nobody)),
    ),
    (
        "sender",
        doc(
            "msg.sender -> Address",
            "The Sender address (someone sending on behalf of From); parts \"\" when absent.",
            r#"msg.sender.address != "" && msg.sender != msg.from.address"#,
        ),
        |m| Dynamic::from(m.sender().cloned().unwrap_or_else(nobody)),
    ),
    (
        "to",
        doc(
            "msg.to -> array of Address",
            "The To addresses, groups flattened.",
            r#"msg.to.some(|a| a.domain == "example.com")"#,
        ),
        |m| addresses(m.to()),
    ),
    ("cc", doc("msg.cc -> array of Address", "The Cc addresses, groups flattened.", "msg.cc.len() > 10"), |m| {
        addresses(m.cc())
    }),
    (
        "bcc",
        doc(
            "msg.bcc -> array of Address",
            "The Bcc addresses (rarely present in received mail).",
            "msg.bcc.is_empty()",
        ),
        |m| addresses(m.bcc()),
    ),
    (
        "reply_to",
        doc(
            "msg.reply_to -> array of Address",
            "The Reply-To addresses.",
            r#"msg.reply_to.len() > 0 && msg.reply_to[0].domain != msg.from.domain"#,
        ),
        |m| addresses(m.reply_to()),
    ),
    (
        "recipients",
        doc(
            "msg.recipients -> array of Address",
            "To and Cc together, To first.",
            r#"msg.recipients.some(|a| a == "me@example.com")"#,
        ),
        |m| addresses(&[m.to(), m.cc()].concat()),
    ),
    (
        "delivered_to",
        doc(
            "msg.delivered_to -> array of string",
            "The Delivered-To addresses, latest delivery first.",
            r#"msg.delivered_to.contains("me+shop@example.com")"#,
        ),
        |m| strings(m.delivered_to()),
    ),
    (
        "subject",
        doc("msg.subject -> string", "The decoded Subject; \"\" when absent.", r#"msg.subject.icontains("invoice")"#),
        |m| m.subject().into(),
    ),
    (
        "message_id",
        doc("msg.message_id -> string", "The Message-ID without <>; \"\" when absent.", r#"msg.message_id != """#),
        |m| opt(m.message_id()),
    ),
    (
        "in_reply_to",
        doc("msg.in_reply_to -> array of string", "The In-Reply-To ids without <>.", "msg.in_reply_to.len() > 0"),
        |m| strings(m.in_reply_to()),
    ),
    (
        "references",
        doc(
            "msg.references -> array of string",
            "The References ids without <>, oldest first.",
            "msg.references.len() > 5",
        ),
        |m| strings(m.references()),
    ),
    (
        "list_id",
        doc(
            "msg.list_id -> string",
            "The id inside <> of List-Id, lowercased; \"\" when not from a list (so any test on it is false).",
            r#"msg.list_id == "rust-users.lists.example.org""#,
        ),
        |m| opt(m.list_id()),
    ),
    (
        "date",
        doc(
            "msg.date -> Date | ()",
            "The Date header; () when missing, unreadable or absurd.",
            "msg.date != () && msg.date.age_days > 30",
        ),
        |m| m.date().map_or(Dynamic::UNIT, |d| Dynamic::from(Date(d))),
    ),
    (
        "received",
        doc(
            "msg.received -> Date | ()",
            "When the server received the message (IMAP INTERNALDATE); () when unknown.",
            "msg.received != () && msg.received.hour < 6",
        ),
        |m| m.internal_date().map_or(Dynamic::UNIT, |d| Dynamic::from(Date(d.fixed_offset()))),
    ),
    (
        "text",
        doc(
            "msg.text -> string",
            "The plain-text body (derived from the HTML when there is no text part), at most 1 MiB.",
            r#"msg.text.contains("unsubscribe")"#,
        ),
        |m| m.text().into(),
    ),
    (
        "html",
        doc("msg.html -> string", "The HTML body; \"\" when there is none.", r#"msg.html.contains("<table")"#),
        |m| opt(m.html()),
    ),
    (
        "attachments",
        doc(
            "msg.attachments -> array of #{name, type, size}",
            "The attachments: file name (\"\" when none), lowercased type/subtype, decoded size in bytes.",
            r#"msg.attachments.some(|a| a.type == "application/pdf")"#,
        ),
        attachments,
    ),
    (
        "size",
        doc("msg.size -> int", "The size in bytes (the server's RFC822.SIZE).", "msg.size > 10 * 1024 * 1024"),
        |m| int(m.size()).into(),
    ),
    (
        "truncated",
        doc(
            "msg.truncated -> bool",
            "Only the headers were fetched (the message is over the size cap): no body, no attachments.",
            r#"msg.truncated && msg.subject.contains("backup")"#,
        ),
        |m| m.truncated().into(),
    ),
    (
        "capped",
        doc(
            "msg.capped -> bool",
            "A list in the message was longer than rules get and was cut: more than 1,000 addresses in To, Cc, Bcc or Reply-To, ids, Delivered-To, headers or attachments (or a body over 1 MiB). Not an error: the rule sees the first 1,000.",
            r#"if msg.capped { label("huge-recipient-list"); }"#,
        ),
        |m| m.capped().into(),
    ),
    (
        "flags",
        doc(
            "msg.flags -> array of string",
            "The system flags as the server sent them (\\Seen, \\Flagged, ...).",
            r#"msg.flags.contains("\\Seen")"#,
        ),
        |m| strings(m.flags()),
    ),
    (
        "keywords",
        doc(
            "msg.keywords -> array of string",
            "The keywords (flags without a backslash), such as $Junk.",
            r#"msg.keywords.contains("$Junk")"#,
        ),
        |m| strings(m.keywords()),
    ),
    (
        "labels",
        doc(
            "msg.labels -> array of string",
            "On Gmail its X-GM-LABELS (\\Inbox, user labels); elsewhere the keywords.",
            r#"msg.labels.contains("receipt")"#,
        ),
        |m| strings(m.labels()),
    ),
    (
        "thread_id",
        doc(
            "msg.thread_id -> string",
            "Gmail's conversation id (X-GM-THRID, in decimal); \"\" on other servers.",
            r#"if msg.thread_id != "" { collect("threads", msg.thread_id); }"#,
        ),
        |m| m.thread_id().map_or_else(|| Dynamic::from(ImmutableString::new()), |id| Dynamic::from(id.to_string())),
    ),
    (
        "is_reply",
        doc(
            "msg.is_reply -> bool",
            "In-Reply-To or References is present, or the subject has a reply prefix (Re:, AW:, SV: ...).",
            "!msg.is_reply",
        ),
        |m| m.is_reply().into(),
    ),
    (
        "is_auto_submitted",
        doc(
            "msg.is_auto_submitted -> bool",
            "Sent by a machine (Auto-Submitted, Precedence bulk/list/junk, List-*, an empty Return-Path, X-Apple-Action: VACATION, X-Autoreply, an \"Auto reply:\"/\"Automatic reply:\"/\"Out of Office\" subject ...): never auto-reply to it.",
            r#"if !msg.is_auto_submitted { reply("I am away until Monday."); }"#,
        ),
        |m| m.is_auto_submitted().into(),
    ),
    ("account", doc("msg.account -> string", "The account's name in the config.", r#"msg.account == "work""#), |m| {
        m.account().into()
    }),
    (
        "mailbox",
        doc(
            "msg.mailbox -> string",
            "The mailbox the message is in, as the server names it.",
            r#"msg.mailbox == "INBOX""#,
        ),
        |m| m.mailbox().into(),
    ),
    ("uid", doc("msg.uid -> int", "The message's IMAP UID in its mailbox.", "msg.uid > 0"), |m| {
        i64::from(m.key().uid).into()
    }),
    (
        "auth",
        doc(
            "msg.auth -> Auth",
            "The receiving server's Authentication-Results (the topmost header only: lower ones can be forged).",
            r#"msg.auth.dmarc == "pass""#,
        ),
        |m| Dynamic::from(Auth(m.auth().clone())),
    ),
];

/// Registers `Message` with its properties and methods (and the `Auth` type `msg.auth` returns).
pub fn register(engine: &mut Engine) {
    let e = engine;
    e.register_type_with_name::<Msg>("Message").register_type_with_name::<Auth>("Auth");
    for &(name, doc, read) in PROPERTIES {
        match BODY.contains(&name) {
            true => getter(e, name, doc, move |m: &mut Msg| {
                m.1.mark();
                read(&m.0)
            }),
            false => getter(e, name, doc, move |m: &mut Msg| read(&m.0)),
        }
    }
    function(
        e,
        "header",
        doc(
            "msg.header(name) -> string",
            "The first value of a header (name case-insensitive), decoded and unfolded; \"\" when absent (so any test on it is false).",
            r#"msg.header("X-GitHub-Reason") == "review_requested""#,
        ),
        |m: &mut Msg, name: &str| opt(m.0.header(name)),
    );
    function(
        e,
        "has_header",
        doc(
            "msg.has_header(name) -> bool",
            "Whether the message has a header (name case-insensitive), even an empty one: the way to ask, since absent text is \"\", never ().",
            r#"if !msg.has_header("List-Id") && msg.has_header("List-Unsubscribe") { label("bulk"); }"#,
        ),
        |m: &mut Msg, name: &str| m.0.header(name).is_some(),
    );
    function(
        e,
        "headers",
        doc(
            "msg.headers(name) -> array of string",
            "Every value of a header, top to bottom; [] when absent.",
            r#"msg.headers("Received").len() > 20"#,
        ),
        |m: &mut Msg, name: &str| strings(&m.0.headers(name)),
    );
    function(
        e,
        "has_flag",
        doc(
            "msg.has_flag(name) -> bool",
            "Whether a flag or keyword is set (case-insensitive, as in IMAP).",
            r#"msg.has_flag("\\Flagged")"#,
        ),
        |m: &mut Msg, flag: &str| m.0.has_flag(flag),
    );
}

/// Registers the getters of `Auth` (`msg.auth.dkim` ...).
pub fn register_auth(engine: &mut Engine) {
    let e = engine;
    getter(
        e,
        "dkim",
        doc(
            "auth.dkim -> string",
            "DKIM: \"pass\" when any signature passed, else the first verdict; \"\" when the server said nothing.",
            r#"msg.auth.dkim == "pass""#,
        ),
        |a: &mut Auth| opt(a.0.dkim.as_deref()),
    );
    getter(
        e,
        "spf",
        doc(
            "auth.spf -> string",
            "SPF verdict, lowercased (pass, fail, softfail, neutral, none, ...); \"\" when the server said nothing.",
            r#"msg.auth.spf in ["fail", "softfail"]"#,
        ),
        |a: &mut Auth| opt(a.0.spf.as_deref()),
    );
    getter(
        e,
        "dmarc",
        doc(
            "auth.dmarc -> string",
            "DMARC verdict: \"pass\" means the From domain is authenticated, so an allow-list cannot be fooled by a forged From; \"\" when the server said nothing.",
            r#"msg.auth.dmarc == "pass" && msg.from.domain.is_subdomain_of("mybank.example")"#,
        ),
        |a: &mut Auth| opt(a.0.dmarc.as_deref()),
    );
}
