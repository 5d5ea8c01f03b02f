//! `msg`, `msg.auth` and addresses, read by rules.

use serde_json::json;

use super::{BARE, FULL, read};

#[test]
fn addresses_read_as_objects_and_arrays() {
    let rule = r#"webhook("t", #{
        from: [msg.from.address, msg.from.name, msg.from.domain, msg.from.to_string()],
        sender: msg.sender.address,
        to: msg.to.map(|a| a.address),
        first_to_name: msg.to[0].name,
        cc: msg.cc.map(|a| a.address),
        bcc: msg.bcc.map(|a| a.address),
        reply_to: msg.reply_to.map(|a| a.address),
        recipients: msg.recipients.map(|a| a.address),
        delivered_to: msg.delivered_to,
        equal: msg.from == "joerg@mail.shop.example",
        unequal: msg.from != "someone@else.example",
        concatenated: "from " + msg.from,
    });"#;
    assert_eq!(
        read(rule, FULL),
        json!({
            "from": ["Joerg@mail.shop.example", "Jörg Müller", "mail.shop.example", "Joerg@mail.shop.example"],
            "sender": "robot@shop.example",
            "to": ["me@example.com", "team@example.com"],
            "first_to_name": "Me",
            "cc": ["boss@example.com"],
            "bcc": ["hidden@example.com"],
            "reply_to": ["support@shop.example"],
            "recipients": ["me@example.com", "team@example.com", "boss@example.com"],
            "delivered_to": ["me+shop@example.com"],
            "equal": true,
            "unequal": true,
            "concatenated": "from Joerg@mail.shop.example",
        })
    );
}

#[test]
fn absent_addresses_are_empty_not_errors() {
    let rule = r#"webhook("t", #{ sender: msg.sender.address, domain: msg.sender.domain, name: msg.from.name,
        cc: msg.cc, reply_to: msg.reply_to });"#;
    assert_eq!(read(rule, BARE), json!({"sender": "", "domain": "", "name": "", "cc": [], "reply_to": []}));
}

#[test]
fn headers_threading_and_lists() {
    let rule = r#"webhook("t", #{
        subject: msg.subject,
        message_id: msg.message_id,
        in_reply_to: msg.in_reply_to,
        references: msg.references,
        list_id: msg.list_id,
        header: msg.header("list-ID"),
        absent: msg.header("X-Absent"),
        received: msg.headers("Received"),
        none: msg.headers("X-Absent"),
        is_reply: msg.is_reply,
        is_auto_submitted: msg.is_auto_submitted,
    });"#;
    assert_eq!(
        read(rule, FULL),
        json!({
            "subject": "Re: Your order #4711 has shipped",
            "message_id": "order-4711@shop.example",
            "in_reply_to": ["question@example.com"],
            "references": ["first@example.com", "question@example.com"],
            "list_id": "news.shop.example",
            "header": "Shop news <news.shop.example>",
            "absent": "",
            "received": ["from a", "from b"],
            "none": [],
            "is_reply": true,
            "is_auto_submitted": true,
        })
    );
    let bare = read(r#"webhook("t", [msg.message_id, msg.list_id, msg.is_reply, msg.is_auto_submitted]);"#, BARE);
    assert_eq!(bare, json!(["", "", false, false]));
}

#[test]
fn body_attachments_size_and_server_facts() {
    let rule = r#"webhook("t", #{
        text: msg.text,
        html: msg.html.contains("<b>ZX-42-QQ</b>"),
        attachments: msg.attachments,
        size: msg.size,
        truncated: msg.truncated,
        flags: msg.flags,
        keywords: msg.keywords,
        labels: msg.labels,
        has_flag: [msg.has_flag("\\SEEN"), msg.has_flag("$junk"), msg.has_flag("\\Flagged")],
        account: msg.account,
        mailbox: msg.mailbox,
        uid: msg.uid,
    });"#;
    assert_eq!(
        read(rule, FULL),
        json!({
            "text": "Tracking code: ZX-42-QQ",
            "html": true,
            "attachments": [{"name": "invoice-4711.pdf", "type": "application/pdf", "size": 9}],
            "size": 123_456,
            "truncated": false,
            "flags": ["\\Seen"],
            "keywords": ["$Junk", "receipt"],
            "labels": ["$Junk", "receipt"],
            "has_flag": [true, true, false],
            "account": "work",
            "mailbox": "INBOX",
            "uid": 42,
        })
    );
    assert_eq!(read(r#"webhook("t", [msg.html, msg.attachments]);"#, BARE), json!(["", []]));
}

#[test]
fn auth_is_the_topmost_authentication_results_only() {
    let rule = r#"webhook("t", [msg.auth.dkim, msg.auth.spf, msg.auth.dmarc]);"#;
    // The lower header says fail three times: it was added further along the path, and a sender
    // could have written it, so it does not count.
    assert_eq!(read(rule, FULL), json!(["pass", "softfail", "pass"]));
    assert_eq!(read(rule, BARE), json!(["", "", ""]));
    // The use it is for: an allow-list that a forged From cannot get into.
    let allow = r#"webhook("t", msg.auth.dmarc == "pass" && msg.from.domain.is_subdomain_of("shop.example"));"#;
    assert_eq!(read(allow, FULL), json!(true));
    let forged = FULL.replace("dmarc=pass header.from", "dmarc=fail header.from");
    assert_eq!(read(allow, &forged), json!(false));
}

#[test]
fn dates_of_the_message() {
    let rule = r#"webhook("t", #{
        date: msg.date,
        received: msg.received,
        parts: [msg.date.year, msg.date.month, msg.date.day, msg.date.hour, msg.date.minute, msg.date.weekday],
        string: msg.date.to_string(),
        before_received: msg.date < msg.received,
    });"#;
    assert_eq!(
        read(rule, FULL),
        json!({
            "date": "2026-12-24T10:30:00+01:00",
            "received": "2026-12-24T09:31:00+00:00",
            "parts": [2026, 12, 24, 10, 30, 4],
            "string": "2026-12-24T10:30:00+01:00",
            "before_received": true,
        })
    );
    assert_eq!(read(r#"webhook("t", [msg.date, msg.date == (), msg.date != ()]);"#, BARE), json!([null, true, false]));
}

#[test]
fn on_gmail_labels_and_thread_id_come_from_the_x_gm_attributes() {
    use std::sync::Arc;

    use crate::message::{GmailAttrs, Meta, parse};
    use crate::plan::Action;

    let gmail =
        GmailAttrs {
            msgid: 17, thread_id: 1_266_894_439_832_287_888, labels: vec!["\\Inbox".into(), "Grüße".into()]
        };
    let plain = super::view(BARE);
    let meta = Meta { flags: vec!["receipt".into()], gmail: Some(gmail), ..Meta::new(plain.key().clone()) };
    let view = Arc::new(parse(BARE.as_bytes(), meta));
    let (_dir, set) = super::rules(&[("rule.rhai", r#"webhook("t", [msg.labels, msg.thread_id, msg.keywords]);"#)]);
    let evaluation = set.evaluate(&view, &[], super::now());
    let actions: Vec<Action> = evaluation.decisions.into_iter().map(|d| d.action).collect();
    let [Action::Webhook(event)] = actions.as_slice() else { panic!("{actions:#?}") };
    assert_eq!(event.data, json!([["\\Inbox", "Grüße"], "1266894439832287888", ["receipt"]]));
    // Elsewhere labels are the keywords and there is no thread id.
    assert_eq!(read(r#"webhook("t", [msg.labels, msg.thread_id]);"#, BARE), json!([["$Junk", "receipt"], ""]));
}

/// Sieve's semantics: a test on a header the message lacks is simply false, not an error that
/// stops the rule; the same tests are true when the header is there; `has_header` asks.
#[test]
fn tests_on_absent_headers_are_false_and_existence_is_asked() {
    let rule = r#"webhook("t", [
        msg.list_id.contains("x"), msg.subject.starts_with("x"), msg.header("X-Nope").contains("a"),
        msg.list_id.icontains("shop"), msg.list_id == "news.shop.example", msg.message_id.ends_with(".example"),
        msg.auth.dmarc == "pass", msg.html.contains("<b>"), msg.from.domain != "",
        msg.has_header("List-Id"), msg.has_header("x-nope"), msg.has_header("SUBJECT"),
    ]);"#;
    let without = "From: ann@example.org\r\nTo: me@example.com\r\n\r\nHi!\r\n";
    // `read` panics unless the rule ran and recorded its one webhook: no failure.
    assert_eq!(
        read(rule, without),
        json!([false, false, false, false, false, false, false, false, true, false, false, false])
    );
    let with = FULL.replace("Subject: Re:", "X-Nope: a\r\nSubject: x Re:");
    assert_eq!(read(rule, &with), json!([true, true, true, true, true, true, true, true, true, true, true, true]));
    // A message without From: the address getters are empty, and tests on them false.
    let nobody = read(
        r#"webhook("t", [msg.from.address.contains("@"), msg.from.domain == "example.org", msg.from.name.len()]);"#,
        without.replacen("From: ann@example.org\r\n", "", 1).as_str(),
    );
    assert_eq!(nobody, json!([false, false, 0]));
}
