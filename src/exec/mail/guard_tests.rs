//! Each guard on its own: a message that only it stops, and a normal message that passes.

use super::*;
use crate::exec::mail::test_account as account;

/// A message from a person to the account.
fn normal() -> Original {
    Original {
        message_id: Some("q@ann.example".into()),
        references: vec![],
        from: "ann@ann.example".into(),
        subject: "Question".into(),
        date: None,
        to: vec!["me@work.example".into()],
        cc: vec![],
        return_path: Some("ann@ann.example".into()),
        sender: None,
        guard_headers: vec![],
    }
}

fn with_header(name: &str, value: &str) -> Original {
    Original { guard_headers: vec![(name.into(), value.into())], ..normal() }
}

#[track_caller]
fn stopped(original: &Original, recipient: &str, expected: &str) {
    match check(original, recipient, &account()) {
        Err(Suppressed { reason }) => assert!(reason.contains(expected), "expected {expected:?} in {reason:?}"),
        Ok(()) => panic!("a reply to {recipient} should be suppressed ({expected})"),
    }
}

#[test]
fn a_normal_message_passes() {
    assert_eq!(check(&normal(), "ann@ann.example", &account()), Ok(()));
    // Auto-Submitted: no and Precedence: first-class are not automatic.
    let fine = Original {
        guard_headers: vec![
            ("auto-submitted".into(), "No".into()),
            ("precedence".into(), "first-class".into()),
            ("x-auto-response-suppress".into(), "DR, RN".into()),
        ],
        cc: vec!["other@x.example".into()],
        ..normal()
    };
    assert_eq!(check(&fine, "ann@ann.example", &account()), Ok(()));
}

#[test]
fn the_null_envelope_sender() {
    stopped(&Original { return_path: Some(String::new()), ..normal() }, "ann@ann.example", "envelope sender is <>");
}

#[test]
fn mailer_daemon_and_postmaster() {
    stopped(&normal(), "MAILER-DAEMON@mx.example", "the recipient MAILER-DAEMON@mx.example is a mail server");
    stopped(&Original { from: "Mailer-Daemon".into(), ..normal() }, "ann@ann.example", "is a mail server");
    stopped(&normal(), "postmaster@mx.example", "is a mail server");
}

#[test]
fn listserv_and_majordomo() {
    stopped(&normal(), "LISTSERV@lists.example", "mailing list manager");
    stopped(&normal(), "majordomo@lists.example", "mailing list manager");
}

#[test]
fn owner_addresses() {
    stopped(&normal(), "owner-rust@lists.example", "mailing list owner");
    let list = Original { return_path: Some("owner-rust@lists.example".into()), ..normal() };
    stopped(&list, "ann@ann.example", "the envelope sender owner-rust@lists.example is a mailing list owner");
}

#[test]
fn request_addresses() {
    stopped(&normal(), "rust-request@lists.example", "mailing list request address");
}

#[test]
fn bounce_addresses() {
    let list = Original { return_path: Some("rust-bounces+me=work.example@lists.example".into()), ..normal() };
    stopped(&list, "ann@ann.example", "is a bounce address");
    stopped(&normal(), "bounces-123@mail.shop.example", "is a bounce address");
}

#[test]
fn no_reply_addresses() {
    for address in [
        "noreply@shop.example",
        "no-reply@shop.example",
        "No_Reply@shop.example",
        "do-not-reply@shop.example",
        "donotreply@shop.example",
        "dont-reply@shop.example",
        "notifications-noreply@shop.example",
        "no.reply+x@shop.example",
    ] {
        stopped(&normal(), address, "is a no-reply address");
    }
    let via_sender = Original { sender: Some("noreply@github.example".into()), ..normal() };
    stopped(&via_sender, "ann@ann.example", "the Sender noreply@github.example is a no-reply address");
    // "reply" alone is no robot.
    assert_eq!(check(&normal(), "reply-desk@shop.example", &account()), Ok(()));
}

#[test]
fn the_account_itself() {
    let own = Original { from: "me@work.example".into(), ..normal() };
    stopped(&own, "me@work.example", "the recipient me@work.example is one of this account's own addresses");
    stopped(&normal(), "me.too+x@work.example", "own addresses");
    stopped(&Original { from: "ME@WORK.EXAMPLE".into(), ..normal() }, "ann@ann.example", "the sender ME@WORK.EXAMPLE");
}

#[test]
fn auto_submitted_other_than_no() {
    stopped(
        &with_header("auto-submitted", "auto-replied (vacation)"),
        "ann@ann.example",
        "Auto-Submitted: auto-replied",
    );
    stopped(&with_header("auto-submitted", "auto-generated"), "ann@ann.example", "Auto-Submitted");
    stopped(&with_header("auto-submitted", "auto-notified; owner-email=x"), "ann@ann.example", "Auto-Submitted");
}

#[test]
fn precedence_bulk_junk_list() {
    for value in ["bulk", "Junk", "LIST"] {
        stopped(&with_header("precedence", value), "ann@ann.example", "Precedence");
    }
}

#[test]
fn any_list_header() {
    for name in ["list-id", "list-unsubscribe", "list-post", "list-help", "list-archive"] {
        stopped(&with_header(name, "<x>"), "ann@ann.example", &format!("the message has a {name} header"));
    }
    stopped(&with_header("x-mailing-list", "rust@lists.example"), "ann@ann.example", "list mail");
}

#[test]
fn x_auto_response_suppress_all_or_oof() {
    stopped(&with_header("x-auto-response-suppress", "All"), "ann@ann.example", "X-Auto-Response-Suppress: All");
    stopped(&with_header("x-auto-response-suppress", "DR, OOF, AutoReply"), "ann@ann.example", "OOF");
}

#[test]
fn other_auto_responders_loops_and_reports() {
    stopped(&with_header("x-autoreply", "yes"), "ann@ann.example", "x-autoreply header");
    stopped(&with_header("x-autorespond", "x"), "ann@ann.example", "automatic reply");
    stopped(&with_header("x-loop", "helpdesk@x.example"), "ann@ann.example", "X-Loop");
    stopped(&with_header("content-type", "multipart/report; report-type=delivery-status"), "ann@ann.example", "report");
}

#[test]
fn not_addressed_to_the_account() {
    let bcc = Original { to: vec!["friends@ann.example".into()], ..normal() };
    stopped(&bcc, "ann@ann.example", "none of the account's addresses (me@work.example, Me.Too@Work.Example)");
    // A plus-tag and another case still name the account.
    let tagged = Original { to: vec![], cc: vec!["ME.TOO+shop@work.example".into()], ..normal() };
    assert_eq!(check(&tagged, "ann@ann.example", &account()), Ok(()));
}

#[test]
fn message_guards_alone_need_no_account() {
    assert_eq!(check_message(&Original { to: vec![], ..normal() }, "ann@ann.example"), Ok(()));
    assert!(check_message(&with_header("precedence", "bulk"), "ann@ann.example").is_err());
    assert!(check_message(&normal(), "").is_err());
}

#[test]
fn from_is_the_address_the_message_was_sent_to() {
    let account = account();
    let to_alias = Original { to: vec!["x@y.example".into()], cc: vec!["me.too+tag@work.example".into()], ..normal() };
    assert_eq!(from_address(&to_alias, &account, None).as_deref(), Ok("Me.Too@Work.Example"));
    assert_eq!(from_address(&normal(), &account, None).as_deref(), Ok("me@work.example"));
    let elsewhere = Original { to: vec!["x@y.example".into()], ..normal() };
    assert_eq!(from_address(&elsewhere, &account, None).as_deref(), Ok("me@work.example"), "the account's from");
    assert_eq!(from_address(&normal(), &account, Some("me.too@work.example")).as_deref(), Ok("me.too@work.example"));
    assert_eq!(sender_address(&account, None).as_deref(), Ok("me@work.example"));
    assert_eq!(sender_address(&account, Some("me+news@work.example")).as_deref(), Ok("me+news@work.example"));
    let refused = sender_address(&account, Some("boss@work.example")).unwrap_err();
    assert!(
        refused.contains("cannot send from boss@work.example: it is not one of the addresses of account `work`"),
        "{refused}"
    );
}

#[test]
fn same_mailbox_ignores_case_and_plus_tags_only() {
    assert!(same_mailbox("Me@Work.Example", "me+x@work.example"));
    assert!(!same_mailbox("me@work.example", "me@other.example"));
    assert!(!same_mailbox("me@work.example", "mee@work.example"));
}

/// What auto-responders mark only by a header of their own or by the subject: Apple iCloud's
/// vacation notice (`X-Apple-Action: VACATION`, `Auto reply: ...`, no Auto-Submitted), Outlook,
/// Lotus Notes and translations.
#[test]
fn auto_replies_marked_only_by_their_own_header_or_subject() {
    stopped(&with_header("x-apple-action", "VACATION"), "ann@ann.example", "X-Apple-Action: VACATION");
    stopped(&with_header("x-autorespond", "yes"), "ann@ann.example", "x-autorespond header");
    stopped(&with_header("x-autogenerated", "Reply"), "ann@ann.example", "x-autogenerated header");
    stopped(&with_header("x-ms-exchange-inbox-rules-loop", "a@b.example"), "ann@ann.example", "an Exchange rule");
    for subject in [
        "Auto reply: Nyaan",
        "Automatic reply: Your order",
        "Autoreply: x",
        "AUTO: Smith, John is out of the office. (returning 05/01/2010)",
        "Out of Office: back Monday",
        "[Auto-Reply] hello",
        "Abwesenheitsnotiz: Frage",
        "Réponse automatique : x",
    ] {
        stopped(&Original { subject: subject.into(), ..normal() }, "ann@ann.example", "it is an automatic reply");
    }
    // Apple's other actions, and a subject that only mentions an office, are not.
    assert_eq!(check(&with_header("x-apple-action", "FORWARD"), "ann@ann.example", &account()), Ok(()));
    let mentions = Original { subject: "Re: moving out of office 3".into(), ..normal() };
    assert_eq!(check(&mentions, "ann@ann.example", &account()), Ok(()));
}

/// A forward carries the X-Loop lines of what it forwards and this account's own; a message
/// that carries this account's marker is not forwarded again.
#[test]
fn a_forward_loop_stops_at_this_accounts_marker() {
    let plain = normal();
    assert_eq!(check_forward(&plain, &account()), Ok(()));
    assert_eq!(loop_markers(&plain, "me@work.example"), ["me@work.example"]);
    // Came back from B, carrying our marker (any case, a plus-tag, in <>) and B's.
    let back = Original {
        guard_headers: vec![("x-loop".into(), "<Me+fwd@Work.Example>".into()), ("x-loop".into(), "b@b.example".into())],
        ..normal()
    };
    let reason = check_forward(&back, &account()).unwrap_err().reason;
    assert!(reason.contains("X-Loop: <Me+fwd@Work.Example> (this account's loop marker)"), "{reason}");
    // B's forward of our forward: ours kept, B's added, each once.
    let at_b = Original { guard_headers: vec![("x-loop".into(), "me@work.example".into())], ..normal() };
    assert_eq!(loop_markers(&at_b, "b@b.example"), ["me@work.example", "b@b.example"]);
    assert_eq!(loop_markers(&at_b, "ME@work.example"), ["me@work.example"]);
    // Another program's marker does not stop a forward; junk values are not copied.
    let other = Original {
        guard_headers: vec![("x-loop".into(), "list@lists.example".into()), ("x-loop".into(), "a b\u{7f}".into())],
        ..normal()
    };
    assert_eq!(check_forward(&other, &account()), Ok(()));
    assert_eq!(loop_markers(&other, "me@work.example"), ["list@lists.example", "me@work.example"]);
    // Thousands written by a sender: the forward carries at most 20, its own last.
    let many = Original {
        guard_headers: (0..50).map(|i| ("x-loop".to_owned(), format!("l{i}@x.example"))).collect(),
        ..normal()
    };
    let markers = loop_markers(&many, "me@work.example");
    assert_eq!((markers.len(), markers.last().map(String::as_str)), (20, Some("me@work.example")));
    // One a megabyte long is left out, not copied into the forward's header.
    let long =
        Original { guard_headers: vec![("x-loop".into(), format!("{}@x.example", "a".repeat(1 << 20)))], ..normal() };
    assert_eq!(loop_markers(&long, "me@work.example"), ["me@work.example"]);
}

#[test]
fn a_reply_recorded_without_an_address_is_suppressed_with_its_reason() {
    let reply = crate::plan::Reply {
        to: String::new(),
        unusable: Some("the message has no Return-Path (envelope sender) to reply to".into()),
        subject: "Re: x".into(),
        body: "x".into(),
        days: 7,
        handle: "h".into(),
        original: normal(),
        html: None,
        from: None,
        at: None,
    };
    for account in [Some(&account()), None] {
        let reason = check_reply(&reply, account).unwrap_err().reason;
        assert_eq!(reason, "the message has no Return-Path (envelope sender) to reply to");
    }
    let fine = crate::plan::Reply { to: "ann@ann.example".into(), unusable: None, ..reply };
    assert_eq!(check_reply(&fine, Some(&account())), Ok(()));
}
