//! Composed messages parsed back with mail-parser: the headers a receiver reads.

use base64::Engine as _;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::*;
use crate::exec::mail::test_account as account;

fn original() -> Original {
    Original {
        message_id: Some("q2@ann.example".into()),
        references: vec!["root@ann.example".into(), "q1@work.example".into()],
        from: "ann@ann.example".into(),
        subject: "Question about the order".into(),
        date: Some("2026-11-26T10:00:00+01:00".into()),
        to: vec!["me@work.example".into()],
        cc: vec!["desk@work.example".into()],
        return_path: Some("ann@ann.example".into()),
        sender: None,
        guard_headers: vec![],
    }
}

fn a_reply() -> Reply {
    Reply {
        to: "ann@ann.example".into(),
        unusable: None,
        subject: "Re: Question about the order".into(),
        body: "Thanks, I am away until Monday.\nJörg".into(),
        days: 7,
        handle: "away.rhai".into(),
        original: original(),
        html: None,
        from: None,
        at: None,
    }
}

fn parsed(composed: &Composed) -> Message<'_> {
    MessageParser::new().parse(&composed.bytes).expect("a message")
}

fn header<'a>(message: &'a Message<'_>, name: &'a str) -> Option<&'a str> {
    message.header_raw(name).map(str::trim)
}

#[test]
fn a_reply_is_threaded_and_marked_auto_replied() {
    let composed = reply(&a_reply(), "me@work.example", &account()).unwrap();
    let message = parsed(&composed);
    assert_eq!(message.subject(), Some("Re: Question about the order"));
    assert_eq!(message.from().and_then(|a| a.first()).and_then(|a| a.address()), Some("me@work.example"));
    assert_eq!(message.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("ann@ann.example"));
    assert_eq!(message.in_reply_to().as_text(), Some("q2@ann.example"));
    let references: Vec<&str> =
        message.references().as_text_list().map(|l| l.iter().map(|s| s.as_ref()).collect()).unwrap_or_default();
    assert_eq!(references, ["root@ann.example", "q1@work.example", "q2@ann.example"]);
    assert_eq!(header(&message, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(header(&message, "X-Auto-Response-Suppress"), Some("All"));
    assert!(message.date().is_some());
    assert_eq!(message.body_text(0).as_deref().map(str::trim_end), Some("Thanks, I am away until Monday.\r\nJörg"));
    // The Message-ID is on the From domain, and the one reported.
    assert_eq!(message.message_id(), Some(composed.message_id.as_str()));
    assert!(composed.message_id.ends_with("@work.example"), "{}", composed.message_id);
    // The envelope: from the From address, to the recipient only.
    assert_eq!(composed.envelope.from().map(|a| a.to_string()).as_deref(), Some("me@work.example"));
    let rcpt: Vec<String> = composed.envelope.to().iter().map(|a| a.to_string()).collect();
    assert_eq!(rcpt, ["ann@ann.example"]);
    // No rule name, no Bcc, no tidings-specific header leaks to the recipient.
    let text = String::from_utf8_lossy(&composed.bytes);
    assert!(!text.contains("away.rhai") && !text.to_lowercase().contains("x-tidings"), "{text}");
    assert!(composed.bytes.windows(2).filter(|w| w == b"\r\n").count() > 5, "CRLF line ends");
    let shown = format!("{composed:?}");
    assert!(!shown.contains("away until Monday") && shown.contains(" bytes"), "no body in logs: {shown}");
}

#[test]
fn message_ids_are_unique() {
    let a = reply(&a_reply(), "me@work.example", &account()).unwrap().message_id;
    let b = reply(&a_reply(), "me@work.example", &account()).unwrap().message_id;
    assert_ne!(a, b);
}

#[test]
fn a_reply_to_a_message_without_ids_has_no_thread_headers() {
    let lone = Reply { original: Original { message_id: None, references: vec![], ..original() }, ..a_reply() };
    let composed = reply(&lone, "me@work.example", &account()).unwrap();
    let message = parsed(&composed);
    assert!(header(&message, "In-Reply-To").is_none() && header(&message, "References").is_none());
    // An original with a Message-ID but no References: References is that id alone.
    let first = Reply { original: Original { references: vec![], ..original() }, ..a_reply() };
    let message_bytes = reply(&first, "me@work.example", &account()).unwrap();
    assert_eq!(parsed(&message_bytes).references().as_text(), Some("q2@ann.example"));
}

#[test]
fn long_threads_keep_the_root_and_the_latest_references() {
    let many: Vec<String> = (0..50).map(|n| format!("m{n}@x.example")).collect();
    let long = Reply { original: Original { references: many, ..original() }, ..a_reply() };
    let composed = reply(&long, "me@work.example", &account()).unwrap();
    let message = parsed(&composed);
    let references = message.references().as_text_list().unwrap();
    assert_eq!(references.len(), MAX_REFERENCES);
    assert_eq!((references[0].as_ref(), references[MAX_REFERENCES - 1].as_ref()), ("m0@x.example", "q2@ann.example"));
    // 51 ids: the root, then the latest 19 (m32 ... m49 and the original's own).
    assert_eq!(references[1].as_ref(), "m32@x.example");
}

#[test]
fn html_goes_as_an_alternative() {
    let with_html = Reply { html: Some("<p>Away until <b>Monday</b></p>".into()), ..a_reply() };
    let composed = reply(&with_html, "me@work.example", &account()).unwrap();
    let message = parsed(&composed);
    assert!(header(&message, "Content-Type").is_some_and(|ct| ct.starts_with("multipart/alternative")));
    assert_eq!(message.body_html(0).as_deref(), Some("<p>Away until <b>Monday</b></p>"));
    assert!(message.body_text(0).is_some_and(|t| t.starts_with("Thanks")));
}

#[test]
fn a_non_ascii_subject_is_encoded() {
    let umlauts = Reply { subject: "Re: Überweisung für März".into(), ..a_reply() };
    let composed = reply(&umlauts, "me@work.example", &account()).unwrap();
    let header_block = composed.bytes.split(|&b| b == b'\n').take_while(|l| l.len() > 1);
    assert!(header_block.flatten().all(u8::is_ascii), "headers are 7-bit (RFC 2047)");
    assert_eq!(parsed(&composed).subject(), Some("Re: Überweisung für März"));
}

fn a_forward(attached: Option<String>) -> Forward {
    Forward {
        to: vec!["assistant@work.example".into(), "boss@other.example".into()],
        note: Some("Please handle this.".into()),
        original: original(),
        text: "Where is my order?".into(),
        attached,
        from: None,
    }
}

#[test]
fn an_inline_forward_quotes_the_headers_and_the_text() {
    let composed = forward(&a_forward(None), "me@work.example", &account()).unwrap();
    let message = parsed(&composed);
    assert_eq!(message.subject(), Some("Fwd: Question about the order"));
    assert_eq!(header(&message, "Auto-Submitted"), Some("auto-generated"));
    assert!(header(&message, "In-Reply-To").is_none(), "a forward starts a new thread");
    let text = message.body_text(0).unwrap();
    for line in [
        "Please handle this.",
        "---------- Forwarded message ----------",
        "From: ann@ann.example",
        "Subject: Question about the order",
        "To: me@work.example",
        "Cc: desk@work.example",
        "Where is my order?",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    let rcpt: Vec<String> = composed.envelope.to().iter().map(|a| a.to_string()).collect();
    assert_eq!(rcpt, ["assistant@work.example", "boss@other.example"]);
    let again = Forward { original: Original { subject: "FWD: x".into(), ..original() }, ..a_forward(None) };
    assert_eq!(parsed(&forward(&again, "me@work.example", &account()).unwrap()).subject(), Some("FWD: x"));
}

#[test]
fn a_forward_as_attachment_carries_the_whole_original() {
    let raw = "From: ann@ann.example\r\nTo: me@work.example\r\nSubject: Question\r\nMessage-ID: <q2@ann.example>\r\n\r\nWhere is my order? Grüße\r\n";
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let composed = forward(&a_forward(Some(encoded)), "me@work.example", &account()).unwrap();
    let message = parsed(&composed);
    assert_eq!(message.body_text(0).as_deref().map(str::trim_end), Some("Please handle this."));
    let attachment = message.attachment(0).expect("the original attached");
    assert_eq!(attachment.content_type().map(|ct| (ct.ctype(), ct.subtype())), Some(("message", Some("rfc822"))));
    let encoding = attachment.content_transfer_encoding().unwrap_or("7bit").to_ascii_lowercase();
    assert_eq!(encoding, "8bit", "RFC 2046: no base64 for message/rfc822 when it can be avoided");
    let PartType::Message(inner) = &attachment.body else { panic!("not a nested message: {:?}", attachment.body) };
    assert_eq!(inner.subject(), Some("Question"));
    assert_eq!(inner.message_id(), Some("q2@ann.example"));
    assert_eq!(inner.body_text(0).as_deref(), Some("Where is my order? Grüße\r\n"));
    let bad = forward(&a_forward(Some("not base64!".into())), "me@work.example", &account()).unwrap_err();
    assert!(bad.to_string().contains("the stored original is not valid base64"), "{bad}");
}

#[test]
fn an_original_that_is_not_7_or_8_bit_goes_as_base64() {
    let part = rfc822(b"Subject: x\n\nbinary \xff\xfe here\n".to_vec());
    let formatted = String::from_utf8_lossy(&part.formatted()).to_string();
    assert!(formatted.contains("Content-Transfer-Encoding: base64"), "{formatted}");
    let part = rfc822(b"Subject: x\n\nplain\n".to_vec());
    let formatted = String::from_utf8(part.formatted()).unwrap();
    assert!(formatted.contains("Content-Transfer-Encoding: 7bit"), "{formatted}");
    assert!(formatted.contains("Subject: x\r\n\r\nplain\r\n"), "line ends made CRLF: {formatted:?}");
}

#[test]
fn a_new_message_has_to_cc_and_is_auto_generated() {
    let notice = NewMessage {
        to: vec!["me@work.example".into()],
        cc: vec!["boss@other.example".into()],
        subject: "Digest".into(),
        body: "3 new invoices".into(),
        html: Some("<p>3 new invoices</p>".into()),
        from: None,
        at: None,
    };
    let composed = send(&notice, "me+digest@work.example", &account()).unwrap();
    let message = parsed(&composed);
    assert_eq!(header(&message, "Auto-Submitted"), Some("auto-generated"));
    assert_eq!(message.cc().and_then(|a| a.first()).and_then(|a| a.address()), Some("boss@other.example"));
    assert_eq!(message.from().and_then(|a| a.first()).and_then(|a| a.address()), Some("me+digest@work.example"));
    assert!(header(&message, "Bcc").is_none());
    let rcpt: Vec<String> = composed.envelope.to().iter().map(|a| a.to_string()).collect();
    assert_eq!(rcpt, ["me@work.example", "boss@other.example"]);
    let nobody = NewMessage { to: vec![], cc: vec![], ..notice.clone() };
    assert!(
        send(&nobody, "me@work.example", &account()).unwrap_err().to_string().contains("cannot compose the message")
    );
    let bad = NewMessage { to: vec!["not an address".into()], ..notice };
    let error = send(&bad, "me@work.example", &account()).unwrap_err().to_string();
    assert_eq!(error, "cannot compose the message of account work: `not an address` is not a usable address");
}

#[test]
fn a_forward_carries_the_loop_markers_of_the_original_and_its_own() {
    let original = Original { guard_headers: vec![("x-loop".into(), "b@b.example".into())], ..original() };
    let with_marker = Forward { original, ..a_forward(None) };
    let composed = forward(&with_marker, "me@work.example", &account()).unwrap();
    let message = parsed(&composed);
    let markers: Vec<String> =
        message.header_values("X-Loop").map(|v| v.as_text().unwrap_or_default().trim().to_owned()).collect();
    assert_eq!(markers, ["b@b.example", "me@work.example"]);
}

#[test]
fn a_subject_stored_with_a_line_break_goes_out_on_one_line() {
    let broken = Reply { subject: "Re: hi\r\nBcc: victim@example.net".into(), ..a_reply() };
    let composed = reply(&broken, "me@work.example", &account()).unwrap();
    let text = String::from_utf8_lossy(&composed.bytes);
    assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");
    assert_eq!(parsed(&composed).subject(), Some("Re: hi  Bcc: victim@example.net"));
}
