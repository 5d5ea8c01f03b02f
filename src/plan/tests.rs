//! Plans: ordering, keys, outbound actions and the stable JSON of every kind.

use super::*;

fn key() -> MessageKey {
    MessageKey { account: "work".into(), mailbox: "INBOX".into(), uidvalidity: 7, uid: 42 }
}

fn decide(rule: &str, position: usize, action: Action) -> Decision {
    Decision { rule: rule.into(), position, action }
}

#[test]
fn flags_then_copies_then_the_last_disposition() {
    let plan = Plan::build(
        key(),
        vec![
            decide("a.rhai", 0, Action::Move { mailbox: "First".into() }),
            decide("a.rhai", 1, Action::Copy { mailbox: "Backup".into() }),
            decide("b.rhai", 0, Action::AddFlags { flags: vec!["\\Flagged".into()] }),
            decide("b.rhai", 1, Action::Copy { mailbox: "Backup".into() }),
            decide("b.rhai", 2, Action::Move { mailbox: "Second".into() }),
        ],
    );
    let kinds: Vec<(&str, &str)> = plan.actions.iter().map(|p| (p.rule.as_str(), p.action.kind())).collect();
    assert_eq!(kinds, [("b.rhai", "add_flags"), ("a.rhai", "copy"), ("b.rhai", "move")]);
    assert_eq!(plan.actions[2].action, Action::Move { mailbox: "Second".into() });
    assert_eq!(plan.overridden, vec![decide("a.rhai", 0, Action::Move { mailbox: "First".into() })]);
    assert_eq!(plan.actions[0].key, "work/INBOX/7/42/b.rhai#0");
}

#[test]
fn keys_are_stable_and_distinct() {
    let a = Plan::build(key(), vec![decide("r", 0, Action::Delete)]);
    let b = Plan::build(key(), vec![decide("r", 0, Action::Delete)]);
    assert_eq!(a, b);
    let mut other = key();
    other.uidvalidity = 8;
    assert_ne!(idempotency_key(&other, "r", 0), a.actions[0].key);
}

fn original() -> Original {
    Original {
        message_id: Some("a@example.com".into()),
        references: vec![],
        from: "ann@example.com".into(),
        subject: "Hi".into(),
        date: None,
        to: vec![],
        cc: vec![],
        return_path: None,
        sender: None,
        guard_headers: vec![],
    }
}

#[test]
fn outbound_actions_come_last_once_each() {
    let hook = Action::Webhook(Event::new("chat", serde_json::json!({"n": 1})));
    let plan = Plan::build(
        key(),
        vec![
            decide("a.rhai", 0, hook.clone()),
            decide("a.rhai", 1, Action::Archive),
            decide("b.rhai", 0, hook.clone()),
            decide("b.rhai", 1, Action::Command(Event::new("notify", serde_json::Value::Null))),
            decide("b.rhai", 2, Action::AddFlags { flags: vec!["x".into()] }),
        ],
    );
    let kinds: Vec<(&str, &str)> = plan.actions.iter().map(|p| (p.rule.as_str(), p.action.kind())).collect();
    assert_eq!(kinds, [("b.rhai", "add_flags"), ("a.rhai", "archive"), ("a.rhai", "webhook"), ("b.rhai", "command")]);
}

#[test]
fn every_kind_is_either_mailbox_or_outbound() {
    let all = [
        Action::AddFlags { flags: vec![] },
        Action::RemoveFlags { flags: vec![] },
        Action::Copy { mailbox: "A".into() },
        Action::Move { mailbox: "A".into() },
        Action::Delete,
        Action::Archive,
        Action::Reply(Reply {
            to: "a@b.c".into(),
            unusable: None,
            subject: "Re: Hi".into(),
            body: "x".into(),
            days: 7,
            handle: "r".into(),
            original: original(),
            html: None,
            from: None,
            at: None,
        }),
        Action::Forward(Forward {
            to: vec![],
            note: None,
            original: original(),
            text: String::new(),
            attached: None,
            from: None,
        }),
        Action::Send(NewMessage {
            to: vec![],
            cc: vec![],
            subject: String::new(),
            body: String::new(),
            html: None,
            from: None,
            at: None,
        }),
        Action::Webhook(Event::new("e", serde_json::Value::Null)),
        Action::Command(Event::new("c", serde_json::Value::Null)),
        Action::Collect { name: "digest".into(), data: serde_json::json!({"subject": "s"}) },
    ];
    for action in &all {
        let kind = action.kind();
        let homes = [MAILBOX_KINDS.contains(&kind), OUTBOUND_KINDS.contains(&kind), kind == COLLECT_KIND];
        assert_eq!(homes.iter().filter(|h| **h).count(), 1, "{kind} is run by exactly one executor, or is collected");
        assert_eq!(OUTBOUND_KINDS.contains(&kind), action.is_outbound(), "{kind}");
        let json = serde_json::to_value(action).unwrap();
        assert_eq!(json["kind"], kind);
        assert_eq!(&serde_json::from_value::<Action>(json).unwrap(), action);
    }
    assert_eq!(MAILBOX_KINDS.len() + OUTBOUND_KINDS.len() + 1, all.len());
}

#[test]
fn payload_json_is_stable() {
    let reply = Action::Reply(Reply {
        to: "ann@example.com".into(),
        unusable: None,
        subject: "Re: Hi".into(),
        body: "Away".into(),
        days: 7,
        handle: "away.rhai".into(),
        original: original(),
        html: None,
        from: None,
        at: None,
    });
    assert_eq!(
        serde_json::to_string(&reply).unwrap(),
        r#"{"kind":"reply","to":"ann@example.com","subject":"Re: Hi","body":"Away","days":7,"handle":"away.rhai","original":{"message_id":"a@example.com","references":[],"from":"ann@example.com","subject":"Hi","date":null,"to":[],"cc":[],"return_path":null,"sender":null,"guard_headers":[]}}"#
    );
    let hook = Action::Webhook(Event::new("chat", serde_json::json!({"b": 1, "a": [true]})));
    assert_eq!(
        serde_json::to_string(&hook).unwrap(),
        r#"{"kind":"webhook","endpoint":"chat","data":{"a":[true],"b":1},"message":null}"#
    );
    assert_eq!(serde_json::to_string(&Action::Archive).unwrap(), r#"{"kind":"archive"}"#);
    let json = serde_json::to_string(&Action::Move { mailbox: "Lists/rust".into() }).unwrap();
    assert_eq!(json, r#"{"kind":"move","mailbox":"Lists/rust"}"#);
    let back: Action = serde_json::from_str(r#"{"kind":"add_flags","flags":["\\Seen"]}"#).unwrap();
    assert_eq!(back, Action::AddFlags { flags: vec!["\\Seen".into()] });
}

#[test]
fn the_original_keeps_the_envelope_sender_and_the_guard_headers() {
    let raw = "Return-Path: <>\r\nReturn-Path: <older@example.com>\r\nFrom: a@example.com\r\n\
               Precedence: Bulk\r\nX-Mailer: x\r\nList-Id: Rust <rust.lists.example>\r\n\
               List-Unsubscribe: <mailto:u@lists.example>\r\nauto-submitted: auto-replied\r\n\
               Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\
               X-Autoreply: yes\r\nSubject: x\r\n\r\n--b--\r\n";
    let view = crate::message::parse(raw.as_bytes(), crate::message::Meta::new(key()));
    let original = Original::of(&view);
    assert_eq!(original.return_path.as_deref(), Some(""), "the topmost Return-Path, <> as empty");
    let names: Vec<&str> = original.guard_headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["precedence", "list-id", "list-unsubscribe", "auto-submitted", "content-type", "x-autoreply"]);
    assert_eq!(original.guard_headers[0].1, "Bulk");
    let plain = crate::message::parse(
        b"Return-Path: a@example.com\r\nSubject: x\r\n\r\nhi\r\n",
        crate::message::Meta::new(key()),
    );
    let original = Original::of(&plain);
    assert_eq!(original.return_path.as_deref(), Some("a@example.com"));
    assert!(original.guard_headers.is_empty());
    let none = crate::message::parse(b"Content-Type: text/plain\r\n\r\nhi\r\n", crate::message::Meta::new(key()));
    assert_eq!((Original::of(&none).return_path, Original::of(&none).guard_headers), (None, vec![]));
}

/// A scheduled decision's key names the schedule and the fire: the same fire again is the same
/// key, the next fire on the same message a new one.
#[test]
fn schedule_keys_hold_the_schedule_the_fire_and_the_message() {
    let at: DateTime<Utc> = "2026-03-02T07:00:00Z".parse().unwrap();
    let first = schedule_key("archive", at, Some(&key()), "sweeps/archive.rhai", 1);
    assert_eq!(first, "schedule/archive/1772434800000/work/INBOX/7/42/sweeps/archive.rhai#1");
    assert_eq!(
        schedule_key("digest", at, None, "sweeps/digest.rhai", 0),
        "schedule/digest/1772434800000/-/sweeps/digest.rhai#0"
    );
    let next_week = at + chrono::Duration::days(7);
    assert_ne!(schedule_key("archive", next_week, Some(&key()), "sweeps/archive.rhai", 1), first);
}

#[test]
fn collected_data_comes_after_everything_once_each_and_is_not_outbound() {
    let collect = |subject: &str| Action::Collect { name: "digest".into(), data: serde_json::json!({"s": subject}) };
    let plan = Plan::build(
        key(),
        vec![
            decide("a.rhai", 0, collect("one")),
            decide("a.rhai", 1, Action::Webhook(Event::new("chat", serde_json::Value::Null))),
            decide("b.rhai", 0, collect("one")),
            decide("b.rhai", 1, collect("two")),
            decide("b.rhai", 2, Action::Archive),
        ],
    );
    let kinds: Vec<&str> = plan.actions.iter().map(|p| p.action.kind()).collect();
    assert_eq!(kinds, ["archive", "webhook", "collect", "collect"]);
    assert_eq!(plan.actions[3].key, "work/INBOX/7/42/b.rhai#1");
    assert!(!collect("x").is_outbound() && !collect("x").is_mail() && collect("x").not_before().is_none());
    assert_eq!(
        serde_json::to_value(collect("x")).unwrap(),
        serde_json::json!({"kind": "collect", "name": "digest", "data": {"s": "x"}})
    );
}
