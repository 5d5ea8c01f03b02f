//! The `msg` object rules read: getters only, so no rule can change what the next rule sees.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map};

use super::date::Date;
use super::reference::{doc, function, getter};
use crate::message::{Address, AuthResults, MessageView};

/// The message as a script value: a cheap handle on the shared, immutable view.
#[derive(Clone, Debug)]
pub struct Msg(pub Arc<MessageView>);

/// The receiving server's verdicts, as `msg.auth` gives them.
#[derive(Clone, Debug)]
pub struct Auth(pub AuthResults);

fn addresses(list: &[Address]) -> Array {
    list.iter().cloned().map(Dynamic::from).collect()
}

fn strings<S: AsRef<str>>(list: &[S]) -> Array {
    list.iter().map(|s| Dynamic::from(s.as_ref().to_owned())).collect()
}

fn opt(value: Option<&str>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |s| Dynamic::from(s.to_owned()))
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An address with every part empty, for a message without From: `msg.from.domain == "x"` is
/// then simply false instead of an error that stops the rule.
fn nobody() -> Address {
    Address { name: None, address: String::new(), domain: String::new() }
}

/// Registers `Message` and `Auth`.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Msg>("Message").register_type_with_name::<Auth>("Auth");
    register_people(engine);
    register_headers(engine);
    register_content(engine);
    register_facts(engine);
    register_auth(engine);
}

fn register_people(engine: &mut Engine) {
    let e = engine;
    getter(
        e,
        "from",
        doc(
            "msg.from -> Address",
            "The first From address; every part is \"\" when there is none.",
            r#"if msg.from.domain == "github.com" { label("GitHub"); }"#,
        ),
        |m: &mut Msg| m.0.from().cloned().unwrap_or_else(nobody),
    );
    getter(
        e,
        "sender",
        doc(
            "msg.sender -> Address",
            "The Sender address (someone sending on behalf of From); parts \"\" when absent.",
            r#"msg.sender.address != "" && msg.sender != msg.from.address"#,
        ),
        |m: &mut Msg| m.0.sender().cloned().unwrap_or_else(nobody),
    );
    getter(
        e,
        "to",
        doc(
            "msg.to -> array of Address",
            "The To addresses, groups flattened.",
            r#"msg.to.some(|a| a.domain == "example.com")"#,
        ),
        |m: &mut Msg| addresses(m.0.to()),
    );
    getter(
        e,
        "cc",
        doc("msg.cc -> array of Address", "The Cc addresses, groups flattened.", "msg.cc.len() > 10"),
        |m: &mut Msg| addresses(m.0.cc()),
    );
    getter(
        e,
        "bcc",
        doc(
            "msg.bcc -> array of Address",
            "The Bcc addresses (rarely present in received mail).",
            "msg.bcc.is_empty()",
        ),
        |m: &mut Msg| addresses(m.0.bcc()),
    );
    getter(
        e,
        "reply_to",
        doc(
            "msg.reply_to -> array of Address",
            "The Reply-To addresses.",
            r#"msg.reply_to.len() > 0 && msg.reply_to[0].domain != msg.from.domain"#,
        ),
        |m: &mut Msg| addresses(m.0.reply_to()),
    );
    getter(
        e,
        "recipients",
        doc(
            "msg.recipients -> array of Address",
            "To and Cc together, To first.",
            r#"msg.recipients.some(|a| a == "me@example.com")"#,
        ),
        |m: &mut Msg| {
            let mut all = addresses(m.0.to());
            all.extend(addresses(m.0.cc()));
            all
        },
    );
    getter(
        e,
        "delivered_to",
        doc(
            "msg.delivered_to -> array of string",
            "The Delivered-To addresses, latest delivery first.",
            r#"msg.delivered_to.contains("me+shop@example.com")"#,
        ),
        |m: &mut Msg| strings(m.0.delivered_to()),
    );
}

fn register_headers(engine: &mut Engine) {
    let e = engine;
    getter(
        e,
        "subject",
        doc("msg.subject -> string", "The decoded Subject; \"\" when absent.", r#"msg.subject.icontains("invoice")"#),
        |m: &mut Msg| m.0.subject().to_owned(),
    );
    getter(
        e,
        "message_id",
        doc("msg.message_id -> string | ()", "The Message-ID without <>; () when absent.", "msg.message_id != ()"),
        |m: &mut Msg| opt(m.0.message_id()),
    );
    getter(
        e,
        "in_reply_to",
        doc("msg.in_reply_to -> array of string", "The In-Reply-To ids without <>.", "msg.in_reply_to.len() > 0"),
        |m: &mut Msg| strings(m.0.in_reply_to()),
    );
    getter(
        e,
        "references",
        doc(
            "msg.references -> array of string",
            "The References ids without <>, oldest first.",
            "msg.references.len() > 5",
        ),
        |m: &mut Msg| strings(m.0.references()),
    );
    getter(
        e,
        "list_id",
        doc(
            "msg.list_id -> string | ()",
            "The id inside <> of List-Id, lowercased; () when not from a list.",
            r#"msg.list_id == "rust-users.lists.example.org""#,
        ),
        |m: &mut Msg| opt(m.0.list_id()),
    );
    function(
        e,
        "header",
        doc(
            "msg.header(name) -> string | ()",
            "The first value of a header (name case-insensitive), decoded and unfolded; () when absent.",
            r#"msg.header("X-GitHub-Reason") == "review_requested""#,
        ),
        |m: &mut Msg, name: &str| opt(m.0.header(name)),
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
    getter(
        e,
        "date",
        doc(
            "msg.date -> Date | ()",
            "The Date header; () when missing, unreadable or absurd.",
            "msg.date != () && msg.date.age_days > 30",
        ),
        |m: &mut Msg| m.0.date().map_or(Dynamic::UNIT, |d| Dynamic::from(Date(d))),
    );
    getter(
        e,
        "received",
        doc(
            "msg.received -> Date | ()",
            "When the server received the message (IMAP INTERNALDATE); () when unknown.",
            "msg.received != () && msg.received.hour < 6",
        ),
        |m: &mut Msg| m.0.internal_date().map_or(Dynamic::UNIT, |d| Dynamic::from(Date(d.fixed_offset()))),
    );
}

fn register_content(engine: &mut Engine) {
    let e = engine;
    getter(
        e,
        "text",
        doc(
            "msg.text -> string",
            "The plain-text body (derived from the HTML when there is no text part), at most 1 MiB.",
            r#"msg.text.contains("unsubscribe")"#,
        ),
        |m: &mut Msg| m.0.text().to_owned(),
    );
    getter(
        e,
        "html",
        doc(
            "msg.html -> string | ()",
            "The HTML body; () when there is none.",
            r#"msg.html != () && msg.html.contains("<table")"#,
        ),
        |m: &mut Msg| opt(m.0.html()),
    );
    getter(
        e,
        "attachments",
        doc(
            "msg.attachments -> array of #{name, type, size}",
            "The attachments: file name (or ()), lowercased type/subtype, decoded size in bytes.",
            r#"msg.attachments.some(|a| a.type == "application/pdf")"#,
        ),
        |m: &mut Msg| {
            m.0.attachments()
                .iter()
                .map(|a| {
                    let mut map = Map::new();
                    map.insert("name".into(), opt(a.name.as_deref()));
                    map.insert("type".into(), a.content_type.clone().into());
                    map.insert("size".into(), Dynamic::from(int(a.size)));
                    Dynamic::from_map(map)
                })
                .collect::<Array>()
        },
    );
    getter(
        e,
        "size",
        doc("msg.size -> int", "The size in bytes (the server's RFC822.SIZE).", "msg.size > 10 * 1024 * 1024"),
        |m: &mut Msg| int(m.0.size()),
    );
    getter(
        e,
        "truncated",
        doc(
            "msg.truncated -> bool",
            "Only the headers were fetched (the message is over the size cap): no body, no attachments.",
            r#"msg.truncated && msg.subject.contains("backup")"#,
        ),
        |m: &mut Msg| m.0.truncated(),
    );
}

fn register_facts(engine: &mut Engine) {
    let e = engine;
    getter(
        e,
        "flags",
        doc(
            "msg.flags -> array of string",
            "The system flags as the server sent them (\\Seen, \\Flagged, ...).",
            r#"msg.flags.contains("\\Seen")"#,
        ),
        |m: &mut Msg| strings(m.0.flags()),
    );
    getter(
        e,
        "keywords",
        doc(
            "msg.keywords -> array of string",
            "The keywords (flags without a backslash), such as $Junk.",
            r#"msg.keywords.contains("$Junk")"#,
        ),
        |m: &mut Msg| strings(m.0.keywords()),
    );
    getter(
        e,
        "labels",
        doc(
            "msg.labels -> array of string",
            "The same as msg.keywords: labels are keywords outside Gmail.",
            r#"msg.labels.contains("receipt")"#,
        ),
        |m: &mut Msg| strings(m.0.keywords()),
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
    getter(
        e,
        "is_reply",
        doc(
            "msg.is_reply -> bool",
            "In-Reply-To or References is present, or the subject has a reply prefix (Re:, AW:, SV: ...).",
            "!msg.is_reply",
        ),
        |m: &mut Msg| m.0.is_reply(),
    );
    getter(
        e,
        "is_auto_submitted",
        doc(
            "msg.is_auto_submitted -> bool",
            "Sent by a machine (Auto-Submitted, Precedence bulk/list/junk, List-*, an empty Return-Path ...): never auto-reply to it.",
            r#"if !msg.is_auto_submitted { reply("I am away until Monday."); }"#,
        ),
        |m: &mut Msg| m.0.is_auto_submitted(),
    );
    getter(
        e,
        "account",
        doc("msg.account -> string", "The account's name in the config.", r#"msg.account == "work""#),
        |m: &mut Msg| m.0.account().to_owned(),
    );
    getter(
        e,
        "mailbox",
        doc(
            "msg.mailbox -> string",
            "The mailbox the message is in, as the server names it.",
            r#"msg.mailbox == "INBOX""#,
        ),
        |m: &mut Msg| m.0.mailbox().to_owned(),
    );
    getter(e, "uid", doc("msg.uid -> int", "The message's IMAP UID in its mailbox.", "msg.uid > 0"), |m: &mut Msg| {
        i64::from(m.0.key().uid)
    });
    getter(
        e,
        "auth",
        doc(
            "msg.auth -> Auth",
            "The receiving server's Authentication-Results (the topmost header only: lower ones can be forged).",
            r#"msg.auth.dmarc == "pass""#,
        ),
        |m: &mut Msg| Auth(m.0.auth().clone()),
    );
}

fn register_auth(engine: &mut Engine) {
    let e = engine;
    getter(
        e,
        "dkim",
        doc(
            "auth.dkim -> string | ()",
            "DKIM: \"pass\" when any signature passed, else the first verdict; () when the server said nothing.",
            r#"msg.auth.dkim == "pass""#,
        ),
        |a: &mut Auth| opt(a.0.dkim.as_deref()),
    );
    getter(
        e,
        "spf",
        doc(
            "auth.spf -> string | ()",
            "SPF verdict, lowercased (pass, fail, softfail, neutral, none, ...); () when the server said nothing.",
            r#"msg.auth.spf in ["fail", "softfail"]"#,
        ),
        |a: &mut Auth| opt(a.0.spf.as_deref()),
    );
    getter(
        e,
        "dmarc",
        doc(
            "auth.dmarc -> string | ()",
            "DMARC verdict: \"pass\" means the From domain is authenticated, so an allow-list cannot be fooled by a forged From.",
            r#"msg.auth.dmarc == "pass" && msg.from.domain.is_subdomain_of("mybank.example")"#,
        ),
        |a: &mut Auth| opt(a.0.dmarc.as_deref()),
    );
}
