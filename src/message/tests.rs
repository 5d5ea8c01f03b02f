//! Unit tests of the message view, on small messages written here.

use chrono::{Datelike, TimeZone, Utc};

use super::*;

fn key() -> MessageKey {
    MessageKey::new("work", "INBOX", 7, 42)
}

fn view(raw: &str) -> MessageView {
    parse(raw.as_bytes(), Meta::new(key()))
}

fn addr(name: Option<&str>, address: &str, domain: &str) -> Address {
    Address { name: name.map(String::from), address: address.into(), domain: domain.into() }
}

#[test]
fn addresses_with_names_encoded_words_and_groups() {
    let v = view(
        "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <Joerg.Mueller@Example.COM>\n\
         Sender: list-bounces@Lists.Example.org\n\
         To: a@x.example, \"Bob, Jr.\" <Bob@Y.Example>\n\
         To: late@x.example\n\
         Cc: Team: c@z.example, Dee <d@z.example>;, e@z.example\n\
         Reply-To: Undisclosed recipients:;\n\
         Subject: hi\n\nbody\n",
    );
    assert_eq!(v.from(), Some(&addr(Some("Jörg Müller"), "Joerg.Mueller@example.com", "example.com")));
    assert_eq!(v.sender().map(|a| a.domain.as_str()), Some("lists.example.org"));
    assert_eq!(
        v.to(),
        [
            addr(None, "a@x.example", "x.example"),
            addr(Some("Bob, Jr."), "Bob@y.example", "y.example"),
            addr(None, "late@x.example", "x.example")
        ]
    );
    let cc: Vec<&str> = v.cc().iter().map(|a| a.address.as_str()).collect();
    assert_eq!(cc, ["c@z.example", "d@z.example", "e@z.example"]);
    assert_eq!(v.cc()[1].name.as_deref(), Some("Dee"));
    assert!(v.reply_to().is_empty());
    assert!(v.bcc().is_empty());
}

#[test]
fn bare_word_from_is_an_address_without_domain() {
    let v = view("From: MAILER-DAEMON\nTo: Mail Delivery System <>, <>\n\n");
    assert_eq!(v.from(), Some(&addr(None, "MAILER-DAEMON", "")));
    assert!(v.to().is_empty());
}

#[test]
fn missing_from_gives_none() {
    let v = view("To: a@x.example\nSubject: no sender\n\nhello\n");
    assert_eq!(v.from(), None);
    assert_eq!(v.subject(), "no sender");
    assert_eq!(v.text().trim(), "hello");
}

#[test]
fn subject_encoded_words_and_raw_8bit() {
    let v = view("Subject: =?UTF-8?B?R3LDvMOfZQ==?= aus =?ISO-8859-1?Q?K=F6ln?=\n\n");
    assert_eq!(v.subject(), "Grüße aus Köln");
    let v = view("Subject: =?iso-8859-1?q?caf=E9?=\n =?utf-8?q?_cr=C3=A8me?=\n\n");
    assert_eq!(v.subject(), "café crème");
    // Raw Latin-1 bytes in a header (no encoded word) are read as Latin-1, not lost.
    let v = parse(b"Subject: Caf\xe9\n\nx\n", Meta::new(key()));
    assert_eq!(v.subject(), "Café");
    assert_eq!(view("From: a@b.example\n\n").subject(), "");
}

#[test]
fn html_only_message_gets_text() {
    let v = view(
        "From: news@shop.example\nContent-Type: text/html; charset=utf-8\n\n\
         <html><head><style>b{}</style></head><body><p>Big&nbsp;sale</p><p>50&#37; off</p></body></html>\n",
    );
    assert_eq!(v.text(), "Big sale\n\n50% off");
    assert!(v.html().unwrap().contains("<p>Big&nbsp;sale</p>"));
    assert!(v.attachments().is_empty());
}

#[test]
fn alternative_prefers_the_text_part() {
    let v = view(
        "Content-Type: multipart/alternative; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nplain words\n\
         --b\nContent-Type: text/html\n\n<p>html words</p>\n--b--\n",
    );
    assert_eq!(v.text().trim(), "plain words");
    assert_eq!(v.html().map(str::trim), Some("<p>html words</p>"));
}

#[test]
fn multipart_with_attachments() {
    let v = view(
        "From: a@b.example\nSubject: report\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"XX\"\n\n\
         preamble\n--XX\nContent-Type: text/plain; charset=utf-8\n\nSee attached.\n\
         --XX\nContent-Type: application/PDF; name=\"r.pdf\"\n\
         Content-Disposition: attachment; filename=\"=?UTF-8?Q?R=C3=A9sum=C3=A9.pdf?=\"\n\
         Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n\
         --XX\nContent-Type: message/rfc822\n\nFrom: c@d.example\nSubject: inner\n\ninner body\n\
         --XX--\n",
    );
    assert_eq!(v.text().trim(), "See attached.");
    assert_eq!(v.attachments().len(), 2);
    assert_eq!(
        v.attachments()[0],
        Attachment { name: Some("Résumé.pdf".into()), content_type: "application/pdf".into(), size: 9 }
    );
    assert_eq!(v.attachments()[1].content_type, "message/rfc822");
    assert_eq!(v.attachments()[1].name, None);
    assert!(!v.text().contains("inner body"), "a forwarded message's body is not this message's text");
}

#[test]
fn list_id_extraction() {
    assert_eq!(
        view("List-Id: USRP Users <USRP-users.lists.ettus.com>\n\n").list_id(),
        Some("usrp-users.lists.ettus.com")
    );
    assert_eq!(view("List-Id: <open-iscsi.googlegroups.com>\n\n").list_id(), Some("open-iscsi.googlegroups.com"));
    assert_eq!(view("List-ID: bare.example.org\n\n").list_id(), Some("bare.example.org"));
    assert_eq!(view("List-Id: no id here\n\n").list_id(), None);
    assert_eq!(view("Subject: x\n\n").list_id(), None);
}

#[test]
fn reply_detection() {
    for raw in [
        "In-Reply-To: <a@b.example>\n\n",
        "References: <a@b.example> <c@d.example>\n\n",
        "Subject: Re: lunch\n\n",
        "Subject: RE : lunch\n\n",
        "Subject: AW: Termin\n\n",
        "Subject: [usrp-users] SV: Re: b210\n\n",
        "Subject: Re[2]: lunch\n\n",
        "Subject: =?UTF-8?B?5Zue5aSNOiDkvaDlpb0=?=\n\n",
    ] {
        assert!(view(raw).is_reply(), "{raw:?}");
    }
    for raw in ["Subject: Regarding: lunch\n\n", "Subject: Fwd: lunch\n\n", "Subject: Report\n\n", "\n\n"] {
        assert!(!view(raw).is_reply(), "{raw:?}");
    }
}

#[test]
fn auto_submitted_detection() {
    for raw in [
        "Auto-Submitted: auto-replied (vacation)\n\n",
        "Auto-Submitted: auto-generated\n\n",
        "Precedence: bulk\n\n",
        "Precedence: JUNK\n\n",
        "Precedence: list\n\n",
        "X-Auto-Response-Suppress: All\n\n",
        "X-Autoreply: yes\n\n",
        "List-Unsubscribe: <mailto:u@l.example>\n\n",
        "List-Post: NO\n\n",
        "Return-Path: <>\n\n",
    ] {
        assert!(view(raw).is_auto_submitted(), "{raw:?}");
    }
    for raw in
        ["Auto-Submitted: no\n\n", "Precedence: first-class\n\n", "Return-Path: <a@b.example>\n\n", "Subject: hi\n\n"]
    {
        assert!(!view(raw).is_auto_submitted(), "{raw:?}");
    }
}

#[test]
fn auth_results_from_the_topmost_header_only() {
    let v = view(
        "Authentication-Results: mx.mine.example;\n\tdkim=fail (bad sig) header.d=x.example;\n\
         \tspf=pass smtp.mailfrom=x.example; dmarc=fail header.from=x.example\n\
         Authentication-Results: forged.example; dkim=pass; spf=pass; dmarc=pass\n\n",
    );
    let auth = v.auth();
    assert_eq!(
        (auth.dkim.as_deref(), auth.spf.as_deref(), auth.dmarc.as_deref()),
        (Some("fail"), Some("pass"), Some("fail"))
    );
    assert_eq!(view("Subject: x\n\n").auth(), &AuthResults::default());
}

#[test]
fn header_lookup_is_case_insensitive_and_keeps_all_values() {
    let v = view(
        "Received: from a\n by b; Mon, 1 Jan 2024 10:00:00 +0000\nreceived: from c\nX-Mailer: =?UTF-8?Q?M=C3=BCtt?=\n\
         X-Folded: one\n\ttwo\n    three\n\n",
    );
    assert_eq!(v.header("RECEIVED"), Some("from a by b; Mon, 1 Jan 2024 10:00:00 +0000"));
    assert_eq!(v.headers("Received"), ["from a by b; Mon, 1 Jan 2024 10:00:00 +0000", "from c"]);
    assert_eq!(v.header("x-mailer"), Some("Mütt"));
    assert_eq!(v.header("X-Folded"), Some("one two three"));
    assert_eq!(v.header("Missing"), None);
    assert!(v.headers("Missing").is_empty());
    let names: Vec<&str> = v.all_headers().iter().map(|h| h.name()).collect();
    assert_eq!(names, ["Received", "received", "X-Mailer", "X-Folded"]);
}

#[test]
fn dates_ids_and_delivered_to() {
    let v = view(
        "Date: Tue, 5 Mar 2024 14:07:09 +0100 (CET)\nMessage-ID: <Abc.123@host.example>\n\
         In-Reply-To: <p1@host.example> (Bob's message of Monday)\nReferences: <p0@host.example>\n <p1@host.example>\n\
         Delivered-To: Me@Mine.Example\nDelivered-To: <alias@mine.example>\n\n",
    );
    let date = v.date().unwrap();
    assert_eq!(date.to_rfc3339(), "2024-03-05T14:07:09+01:00");
    assert_eq!(v.message_id(), Some("Abc.123@host.example"));
    assert_eq!(v.in_reply_to(), ["p1@host.example"]);
    assert_eq!(v.references(), ["p0@host.example", "p1@host.example"]);
    assert_eq!(v.delivered_to(), ["Me@mine.example", "alias@mine.example"]);
    assert_eq!(view("Date: Sat, 02 Mar 102 10:00:00 +0000\n\n").date(), None);
    assert_eq!(view("Date: yesterday-ish\n\n").date(), None);
    assert_eq!(
        view("Date: Fri, 29 Jun 2001 22:13:15\n\n").date().map(|d| d.to_rfc3339()),
        Some("2001-06-29T22:13:15+00:00".into())
    );
    assert_eq!(
        view("Date: Wed, 3 May 2007 23:34:45\n\n").date().map(|d| d.to_rfc3339()),
        Some("2007-05-03T23:34:45+00:00".into())
    );
    assert_eq!(view("Date: 1 Jan 98 00:00:00 GMT\n\n").date().map(|d| d.year()), Some(1998));
    assert_eq!(
        view("Date: Thu, 1 Jan 98 00:00 EST\n\n").date().map(|d| d.to_rfc3339()),
        Some("1998-01-01T00:00:00-05:00".into())
    );
}

#[test]
fn metadata_flags_keywords_and_size() {
    let internal = Utc.with_ymd_and_hms(2024, 3, 5, 13, 7, 9).unwrap();
    let meta = Meta {
        key: key(),
        flags: vec!["\\Seen".into(), "$Junk".into(), "\\Flagged".into(), "invoice".into()],
        internal_date: Some(internal),
        size: Some(12345),
        truncated: false,
        body_deferred: false,
        gmail: None,
    };
    let v = parse(b"Subject: x\n\nbody\n", meta);
    assert_eq!(v.flags(), ["\\Seen", "\\Flagged"]);
    assert_eq!(v.keywords(), ["$Junk", "invoice"]);
    assert!(v.has_flag("\\seen") && v.has_flag("INVOICE") && !v.has_flag("\\Answered"));
    assert_eq!((v.size(), v.internal_date()), (12345, Some(internal)));
    assert_eq!((v.account(), v.mailbox(), v.key().uid), ("work", "INBOX", 42));
    assert_eq!(view("Subject: x\n\nbody\n").size(), 17);
}

#[test]
fn truncated_fetch_reads_headers_only() {
    let raw = "From: a@b.example\nSubject: big\nContent-Type: multipart/mixed; boundary=z\n\n--z\n\
               Content-Type: text/plain\n\npartial tex";
    let v = parse(raw.as_bytes(), Meta { truncated: true, size: Some(50_000_000), ..Meta::new(key()) });
    assert!(v.truncated());
    assert_eq!(v.subject(), "big");
    assert_eq!(v.from().map(|a| a.address.as_str()), Some("a@b.example"));
    assert_eq!((v.text(), v.html(), v.attachments().len()), ("", None, 0));
    assert_eq!(v.size(), 50_000_000);
    let v = parse(b"From: a@b.example\r\nSubject: only headers\r\n", Meta { truncated: true, ..Meta::new(key()) });
    assert_eq!(v.subject(), "only headers");
}

#[test]
fn newline_styles_give_the_same_view() {
    let lf = "From: A <a@b.example>\nSubject: one\n two\nTo: c@d.example\n\nline 1\nline 2\n";
    let crlf = lf.replace('\n', "\r\n");
    let cr = lf.replace('\n', "\r");
    for raw in [lf.to_string(), crlf, cr] {
        let v = view(&raw);
        assert_eq!(v.subject(), "one two", "{raw:?}");
        assert_eq!(v.to().len(), 1, "{raw:?}");
        assert_eq!(v.from().map(|a| a.address.as_str()), Some("a@b.example"));
        assert_eq!(v.text().replace("\r\n", "\n").trim(), "line 1\nline 2", "{raw:?}");
        assert!(!v.degraded());
    }
}

#[test]
fn blank_lines_before_the_headers_are_skipped() {
    let v = view("\n   \t\nFrom: postmaster@x.example\nSubject: Undeliverable\n\nsorry\n");
    assert_eq!(v.subject(), "Undeliverable");
    assert_eq!(v.from().map(|a| a.domain.as_str()), Some("x.example"));
}

#[test]
fn broken_input_still_yields_a_view() {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let inputs: Vec<&[u8]> = vec![
        b"",
        b"From:",
        b"From:\n",
        b"\n\n\n",
        b"\xff\xfe\x00\x01",
        &garbage,
        b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--\n",
        b"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\n--a--\n",
        b"Subject: =?UTF-8?B?////?= =?x?q?\xff?=\nFrom: <<<@@@>>>\nDate: 99 99 99999 99:99:99 +9999\n\n",
    ];
    for raw in inputs {
        let v = parse(raw, Meta::new(key()));
        assert_eq!(v.key(), &key());
        assert_eq!(v.size(), raw.len() as u64);
    }
    let v = view("From:");
    assert_eq!((v.from(), v.subject()), (None, ""));
    let v = view("");
    assert!(v.all_headers().is_empty() && v.text().is_empty());
}

#[test]
fn cr_only_bounce() {
    let v = parse(b"Subject: Returned mail\rFrom: MAILER-DAEMON@mx.example\rAuto-Submitted: auto-replied\r\rThe message bounced.\r", Meta::new(key()));
    assert_eq!(v.subject(), "Returned mail");
    assert!(v.is_auto_submitted());
    assert_eq!(v.text().trim(), "The message bounced.");
}

#[test]
fn limits_clip_and_say_so() {
    let mut raw = String::from("Subject: big\n\n");
    raw.push_str(&"é".repeat(TEXT_LIMIT));
    let v = view(&raw);
    assert!(v.body_clipped());
    assert!(v.text().len() <= TEXT_LIMIT && v.text().len() > TEXT_LIMIT - 4);
    let many: String = (0..HEADER_LIMIT + 50).map(|i| format!("X-N: {i}\n")).collect::<String>() + "\nbody\n";
    let v = view(&many);
    assert_eq!(v.all_headers().len(), HEADER_LIMIT);
    assert!(v.body_clipped());
    assert!(!view("Subject: small\n\nbody\n").body_clipped());
}

#[tokio::test]
async fn parse_blocking_matches_parse() {
    let raw = b"From: a@b.example\nSubject: async\n\nbody\n".to_vec();
    let v = parse_blocking(raw, Meta::new(key())).await;
    assert_eq!(v.subject(), "async");
    let shared = std::sync::Arc::new(v);
    assert_eq!(shared.clone().text().trim(), "body");
}

#[test]
fn mutated_messages_never_panic() {
    // A small deterministic fuzz: splice MIME-significant tokens into small messages. Panics
    // inside mail-parser are expected and contained; none may escape parse().
    let seeds: [&[u8]; 3] = [
        b"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\nSubject: x\n\n--a--\n",
        b"Content-Type: multipart/digest; boundary=a\n\n--a\n\nSubject: y\n\nhi\n--a\n\n--a--\n",
        b"Subject: =?utf-8?b?w6k=?=\nContent-Type: text/html; charset=utf-16\n\n<p>&#x41;<script>x",
    ];
    let tokens: [&[u8]; 12] = [
        b"\n",
        b"\r",
        b"--a",
        b"--",
        b"\n\n",
        b"=?",
        b"?=",
        b":",
        b"<",
        b"&#",
        b"Content-Type: message/rfc822\n",
        b"Content-Transfer-Encoding: base64\n",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as usize
    };
    for _ in 0..20_000 {
        let mut m = seeds[next() % seeds.len()].to_vec();
        for _ in 0..1 + next() % 5 {
            let pos = next() % (m.len() + 1);
            match next() % 3 {
                0 => drop(m.splice(pos..pos, tokens[next() % tokens.len()].iter().copied())),
                1 => drop(m.drain(pos..(pos + 1 + next() % 8).min(m.len()))),
                _ => m.insert(pos, next() as u8),
            }
        }
        let result = std::panic::catch_unwind(|| parse(&m, Meta::new(key())));
        assert!(result.is_ok(), "a panic escaped parse() on {:?}", String::from_utf8_lossy(&m));
    }
}

#[test]
fn the_view_keeps_the_bytes_it_was_parsed_from() {
    let raw = "\r\nFrom: a@b.example\r\nSubject: x\r\n\r\nbody\r\n";
    let v = view(raw);
    assert_eq!(v.raw(), raw.as_bytes(), "as fetched, before any clean-up");
    assert_eq!(v.clone().raw().as_ptr(), v.raw().as_ptr(), "a clone shares them");
    assert!(format!("{v:?}").contains(&format!("Raw({} bytes)", raw.len())));
}
