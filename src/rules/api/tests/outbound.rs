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
        // Reply-To wins over From.
        to: "support@shop.example".into(),
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
    let got = actions(r#"reply(#{ body: "Later.", subject: "Away", days: 1 });"#, BARE);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!((reply.to.as_str(), reply.subject.as_str(), reply.days), ("ann@example.org", "Away", 1));
    let got = actions(r#"reply(#{ body: "x" });"#, BARE);
    let [Action::Reply(reply)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!(reply.subject, "Re: hello");
}

#[test]
fn reply_options_are_checked() {
    let unknown = error(r#"reply(#{ body: "x", dayz: 3 });"#, BARE);
    assert!(unknown.contains("reply: unknown option `dayz` (known: body, subject, days)"), "{unknown}");
    assert!(error(r#"reply(#{ subject: "x" });"#, BARE).contains("reply: `body` is required"));
    assert!(error(r#"reply(#{ body: 5 });"#, BARE).contains("reply: `body` must be a string, not i64"));
    assert!(error(r#"reply(#{ body: "x", days: 0 });"#, BARE).contains("`days` must be from 1 to 3650, not 0"));
    assert!(error(r#"reply(#{ body: "x", days: "7" });"#, BARE).contains("`days` must be a whole number"));
    assert!(error(r#"reply(#{ body: "x", subject: "a\nBcc: x@y.z" });"#, BARE).contains("`subject` must be one line"));
    let nobody = "To: me@example.com\r\nSubject: no from\r\n\r\nx\r\n";
    assert!(error(r#"reply("x");"#, nobody).contains("no From or Reply-To address"));
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
    assert!(unknown.contains("send: unknown option `bcc` (known: to, cc, subject, body)"), "{unknown}");
}
