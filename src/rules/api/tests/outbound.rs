//! Outbound actions: what they capture, and what they refuse before any IO.

use super::{BARE, FULL, actions, error, view};
use crate::plan::{Action, Forward, NewMessage, Original, Reply};

fn original_of_full() -> Original {
    Original {
        message_id: Some("order-4711@shop.example".into()),
        references: vec!["first@example.com".into(), "question@example.com".into()],
        from: "Joerg@mail.shop.example".into(),
        subject: "Re: Your order #4711 has shipped".into(),
        date: Some("2026-12-24T10:30:00+01:00".into()),
        ..Original::of(&view(FULL))
    }
}

#[test]
fn reply_captures_the_sender_and_thread() {
    let got = actions(r#"reply("Back on Monday.");"#, FULL);
    let expected = Reply {
        // The envelope sender, not Reply-To or From (RFC 3834 section 4).
        to: "bounce@shop.example".into(),
        unusable: None,
        // Already a reply: no second "Re:".
        subject: "Re: Your order #4711 has shipped".into(),
        body: "Back on Monday.".into(),
        days: 7,
        handle: "rule.rhai".into(),
        original: original_of_full(),
        html: None,
        from: None,
        at: None,
    };
    assert_eq!(got, [Action::Reply(expected)]);
    let got = actions(r#"reply(#{ body: "Later.", subject: "Away", days: 1, to: "from" });"#, BARE);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!((reply.to.as_str(), reply.subject.as_str(), reply.days), ("ann@example.org", "Away", 1));
    let got = actions(r#"reply(#{ body: "x", to: "reply-to" });"#, FULL);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(reply.to, "support@shop.example", "chosen explicitly, Reply-To wins over From");
    let got = actions(r#"reply(#{ body: "x" });"#, BARE);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(reply.subject, "Re: hello");
}

#[test]
fn reply_options_are_checked() {
    let unknown = error(r#"reply(#{ body: "x", dayz: 3 });"#, BARE);
    assert!(
        unknown.contains("reply: unknown option `dayz` (known: body, html, subject, days, handle, from, at, to)"),
        "{unknown}"
    );
    let target = error(r#"reply(#{ body: "x", to: "sender" });"#, BARE);
    assert!(target.contains(r#"reply: `to` must be "return-path" (the envelope sender, the default), "reply-to" or "from", not "sender""#), "{target}");
    assert!(error(r#"reply(#{ subject: "x" });"#, BARE).contains("reply: `body` is required"));
    assert!(error(r#"reply(#{ body: 5 });"#, BARE).contains("reply: `body` must be a string, not i64"));
    assert!(error(r#"reply(#{ body: "x", days: 0 });"#, BARE).contains("`days` must be from 1 to 3650, not 0"));
    assert!(error(r#"reply(#{ body: "x", days: "7" });"#, BARE).contains("`days` must be a whole number"));
}

/// What a sender writes never fails the rule: a reply with nowhere to go is recorded with the
/// reason (the outbox suppresses it), and the rule's other decisions stand.
#[test]
fn a_reply_with_no_usable_address_is_recorded_with_the_reason_not_an_error() {
    let rule = r#"webhook("t", #{}); reply(#{ body: "x", to: TARGET }); label("seen");"#;
    let cases = [
        ("return-path", BARE, "the message has no Return-Path (envelope sender) to reply to"),
        ("return-path", "Return-Path: <>\r\nFrom: ann@example.org\r\n\r\nx\r\n", "the envelope sender is <>"),
        (
            "return-path",
            "Return-Path: <not an address>\r\n\r\nx\r\n",
            "the envelope sender \"not an address\" is not a usable address",
        ),
        (
            "from",
            "From: \"Postmaster\" <>\r\nTo: me@example.com\r\n\r\nx\r\n",
            "no usable From address (From: \"\\\"Postmaster\\\" <>\")",
        ),
        ("from", "To: me@example.com\r\nSubject: no from\r\n\r\nx\r\n", "no usable From address (From: none)"),
        (
            "reply-to",
            "Reply-To: ,,,@@\r\nFrom: <>\r\n\r\nx\r\n",
            "no usable Reply-To or From address (Reply-To: \",,,@@\", From: \"<>\")",
        ),
    ];
    for (target, raw, reason) in cases {
        let got = actions(&rule.replace("TARGET", &format!("{target:?}")), raw);
        assert_eq!(got.len(), 3, "{target} {raw:?}: the webhook and the label stand: {got:?}");
        let Action::Reply(reply) = &got[1] else { panic!("{got:?}") };
        assert_eq!(reply.to, "", "{raw:?}");
        let unusable = reply.unusable.as_deref().unwrap_or_default();
        assert!(unusable.contains(reason), "{target} {raw:?}: {unusable}");
        let guarded = crate::exec::mail::guard::check_reply(reply, None).unwrap_err();
        assert_eq!(guarded.reason, unusable, "the outbox suppresses it with that reason");
    }
    // A Reply-To that does not parse falls back to From when the rule chose Reply-To.
    let raw = "Reply-To: ,,,@@\r\nFrom: ann@example.org\r\n\r\nx\r\n";
    let got = actions(r#"reply(#{ body: "x", to: "reply-to" });"#, raw);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!((reply.to.as_str(), reply.unusable.as_deref()), ("ann@example.org", None));
}

/// An `Address` from the message that is not usable is left out of a forward or a message; with
/// nobody left the action is recorded and the outbox suppresses it. Text the rule wrote must
/// still be an address.
#[test]
fn unusable_addresses_from_the_message_are_left_out_not_an_error() {
    let raw = "From: \"Postmaster\" <>\r\nTo: me@example.com\r\nSubject: x\r\n\r\nx\r\n";
    let got = actions(
        r#"forward(#{ to: msg.from }); forward(#{ to: [msg.from, "b@example.com"] }); send(#{ to: msg.from, subject: "s", body: "b" });"#,
        raw,
    );
    let [Action::Forward(alone), Action::Forward(with_b), Action::Send(message)] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!((alone.to.len(), with_b.to.as_slice(), message.to.len()), (0, &["b@example.com".to_owned()][..], 0));
    let guard = crate::exec::mail::guard::check_recipients;
    assert!(guard(&alone.to, &[]).unwrap_err().reason.contains("no usable recipient"));
    assert!(guard(&message.to, &message.cc).is_err());
    assert_eq!(guard(&with_b.to, &[]), Ok(()));
    assert!(error(r#"forward("Postmaster <>");"#, raw).contains("is not an address"), "the rule's own text is checked");
}

/// Header text from the message (an encoded CR LF in the Subject) is made one line, not refused.
#[test]
fn header_options_are_made_one_line() {
    let raw = "From: ann@example.org\r\nSubject: =?UTF-8?Q?hi=0D=0ABcc:_victim@example.net?=\r\n\r\nx\r\n";
    assert!(view(raw).subject().contains('\n'), "the decoded subject holds the line break");
    let got = actions(r#"send(#{ to: "me@example.com", subject: "Re: " + msg.subject, body: "x" });"#, raw);
    let [Action::Send(message)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(message.subject, "Re: hi  Bcc: victim@example.net");
    let got = actions(r#"reply(#{ body: "x", to: "from" }); reply(#{ body: "y", subject: "a\nb", to: "from" });"#, raw);
    let [Action::Reply(plain), Action::Reply(given)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!((plain.subject.as_str(), given.subject.as_str()), ("Re: hi  Bcc: victim@example.net", "a b"));
}

/// Thousands of addresses in To are cut to the first 1,000, flagged by `msg.capped`; the rule
/// does not fail (Rhai's array limit is 10,000).
#[test]
fn a_huge_recipient_list_is_capped_and_flagged_not_an_error() {
    let to: Vec<String> = (0..20_000).map(|i| format!("u{i}@example.com")).collect();
    let raw = format!("From: ann@example.org\r\nTo: {}\r\nSubject: many\r\n\r\nx\r\n", to.join(", "));
    let rule = r#"label(`n${msg.to.len()}`); if msg.capped { label("capped"); } if msg.recipients.some(|a| a.domain == "example.com") { label("ours"); }"#;
    let got = actions(rule, &raw);
    let flags: Vec<String> = got
        .iter()
        .flat_map(|a| match a {
            Action::AddFlags { flags } => flags.clone(),
            _ => vec![],
        })
        .collect();
    assert_eq!(flags, ["n1000", "capped", "ours"], "{got:?}");
    let got = actions(r#"if msg.capped { label("capped"); }"#, BARE);
    assert!(got.is_empty(), "a small message is not capped: {got:?}");
}

#[test]
fn forward_and_send_take_addresses() {
    let got = actions(
        r#"forward("assistant@example.com"); forward(#{ to: [msg.from, "b@example.com"], note: "FYI" });"#,
        FULL,
    );
    assert_eq!(
        got,
        [
            Action::Forward(Forward {
                to: vec!["assistant@example.com".into()],
                note: None,
                original: original_of_full(),
                text: "Tracking code: ZX-42-QQ".into(),
                attached: None,
                from: None,
            }),
            Action::Forward(Forward {
                to: vec!["Joerg@mail.shop.example".into(), "b@example.com".into()],
                note: Some("FYI".into()),
                original: original_of_full(),
                text: "Tracking code: ZX-42-QQ".into(),
                attached: None,
                from: None,
            }),
        ]
    );
    let got = actions(
        r#"send(#{ to: "me@example.com", cc: ["boss@example.com"], subject: "Big one", body: msg.subject });"#,
        BARE,
    );
    let expected = NewMessage {
        to: vec!["me@example.com".into()],
        cc: vec!["boss@example.com".into()],
        subject: "Big one".into(),
        body: "hello".into(),
        html: None,
        from: None,
        at: None,
    };
    assert_eq!(got, [Action::Send(expected)]);
}

#[test]
fn forward_and_send_options_are_checked() {
    assert!(error(r#"forward("not an address");"#, BARE).contains("forward: `not an address` is not an address"));
    assert!(error(r#"forward(#{ note: "x" });"#, BARE).contains("forward: `to` is required"));
    assert!(error(r#"forward(#{ to: [1] });"#, BARE).contains("`to` must hold addresses, not i64"));
    assert!(error(r#"send(#{ to: "a@b.example", body: "x" });"#, BARE).contains("send: `subject` is required"));
    assert!(error(r#"send(#{ subject: "s", body: "x" });"#, BARE).contains("send: `to` is required"));
    let unknown = error(r#"send(#{ to: "a@b.example", subject: "s", body: "x", bcc: "c@d.example" });"#, BARE);
    assert!(unknown.contains("send: unknown option `bcc` (known: to, cc, subject, body, html, from, at)"), "{unknown}");
}

#[test]
fn reply_takes_html_a_handle_a_from_and_a_time() {
    let rule = r#"reply(#{ body: "Away.", html: "<p>Away.</p>", handle: "vacation", from: "me+away@example.com",
        at: "2026-12-28T08:00:00+01:00" });"#;
    let got = actions(rule, BARE);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(reply.html.as_deref(), Some("<p>Away.</p>"));
    assert_eq!(reply.handle, "vacation", "replies are counted under the handle, not the rule's name");
    assert_eq!(reply.from.as_deref(), Some("me+away@example.com"));
    assert_eq!(reply.at.map(|t| t.to_rfc3339()).as_deref(), Some("2026-12-28T07:00:00+00:00"));
    assert_eq!(Action::Reply(reply.clone()).not_before(), reply.at);
    // A Date value works as well as the text.
    let got = actions(r#"reply(#{ body: "x", at: date("2026-12-27") });"#, BARE);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(reply.at.map(|t| t.to_rfc3339()).as_deref(), Some("2026-12-27T00:00:00+00:00"));
}

#[test]
fn the_new_reply_options_are_checked() {
    assert!(error(r#"reply(#{ body: "x", handle: "" });"#, BARE).contains("reply: `handle` cannot be empty"));
    assert!(error(r#"reply(#{ body: "x", html: 1 });"#, BARE).contains("reply: `html` must be a string, not i64"));
    assert!(error(r#"reply(#{ body: "x", from: "me" });"#, BARE).contains("reply: `me` is not an address"));
    let bad_time = error(r#"reply(#{ body: "x", at: "next monday" });"#, BARE);
    assert!(bad_time.contains("reply: `at`: cannot read `next monday` as a date"), "{bad_time}");
    let far = error(r#"reply(#{ body: "x", at: "2036-01-01T00:00:00Z" });"#, BARE);
    assert!(far.contains("reply: `at` is more than a year after now"), "{far}");
    let wrong_type = error(r#"reply(#{ body: "x", at: 5 });"#, BARE);
    assert!(wrong_type.contains("`at` must be a date or an RFC 3339 string, not i64"), "{wrong_type}");
}

#[test]
fn forward_attaches_the_whole_original_when_asked() {
    use base64::Engine as _;
    let got = actions(r#"forward(#{ to: "a@example.com", attach: true, from: "me@example.com" });"#, FULL);
    let [Action::Forward(forward)] = got.as_slice() else { panic!("{got:?}") };
    let attached = forward.attached.as_deref().expect("the original, base64");
    let raw = base64::engine::general_purpose::STANDARD.decode(attached).unwrap();
    assert_eq!(raw, FULL.as_bytes(), "byte for byte as fetched");
    assert_eq!(forward.from.as_deref(), Some("me@example.com"));
    let got = actions(r#"forward(#{ to: "a@example.com", attach: false });"#, FULL);
    let [Action::Forward(forward)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(forward.attached, None);
    assert!(
        error(r#"forward(#{ to: "a@example.com", attach: "yes" });"#, BARE).contains("`attach` must be true or false")
    );
    let unknown = error(r#"forward(#{ to: "a@example.com", bcc: "b@example.com" });"#, BARE);
    assert!(unknown.contains("forward: unknown option `bcc` (known: to, note, attach, from)"), "{unknown}");
}

#[test]
fn a_message_fetched_headers_only_is_forwarded_inline_with_a_line_that_says_why() {
    let meta = crate::message::Meta { truncated: true, ..crate::message::Meta::new(view(BARE).key().clone()) };
    let truncated = std::sync::Arc::new(crate::message::parse(b"From: ann@example.org\r\nSubject: big\r\n\r\n", meta));
    let rule = r#"forward(#{ to: "a@example.com", attach: true, note: "FYI" });"#;
    let (_dir, set) = super::rules_with(&[("rule.rhai", rule)], "");
    let evaluation = set.evaluate(&truncated, &[], super::now());
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    let [decision] = evaluation.decisions.as_slice() else { panic!("{:?}", evaluation.decisions) };
    let Action::Forward(forward) = &decision.action else { panic!("{decision:?}") };
    assert_eq!(forward.attached, None);
    let note = forward.note.as_deref().unwrap_or_default();
    assert!(note.starts_with("FYI\n\n(The original is over this account's max_message_size"), "{note}");
}

#[test]
fn send_takes_html_a_from_and_a_time() {
    let rule = r#"send(#{ to: "me@example.com", subject: "Digest", body: "3 new", html: "<b>3</b> new",
        from: "digest@example.com", at: date("2026-12-27T07:00:00Z") });"#;
    let got = actions(rule, BARE);
    let [Action::Send(message)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(message.html.as_deref(), Some("<b>3</b> new"));
    assert_eq!(message.from.as_deref(), Some("digest@example.com"));
    assert_eq!(message.at.map(|t| t.to_rfc3339()).as_deref(), Some("2026-12-27T07:00:00+00:00"));
    assert!(
        error(r#"send(#{ to: "a@b.example", subject: "s", body: "x", from: 3 });"#, BARE)
            .contains("`from` must hold addresses")
    );
}
