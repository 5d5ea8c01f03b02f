//! The decider: matched rules, "wants the body" held by the evaluation (the view unchanged),
//! and a schedule's plan keyed by its fire.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::matched;
use crate::message::{MessageKey, MessageView, Meta};
use crate::plan::{Action, Decision};
use crate::rules::evaluate_tests::{rules, view};
use crate::rules::{Collected, Trigger};

const MAIL: &str = "From: a@b.example\r\nSubject: hello\r\n\r\nthe body\r\n";

/// `MAIL` as the watcher first sees it: its header only, the body left on the server.
fn header_only() -> Arc<MessageView> {
    let meta = Meta { body_deferred: true, ..Meta::new(MessageKey::new("work", "INBOX", 1, 7)) };
    Arc::new(crate::message::parse(MAIL.split("\r\n\r\n").next().unwrap().as_bytes(), meta))
}

#[test]
fn matched_rules_are_listed_once_in_order_with_the_stopper() {
    let decision = |rule: &str| Decision { rule: rule.into(), position: 0, action: Action::Archive };
    let decisions = [decision("a"), decision("b"), decision("a")];
    assert_eq!(matched(&decisions, Some("c")), ["a", "b", "c"]);
    assert_eq!(matched(&decisions, Some("b")), ["a", "b"]);
    assert!(matched(&[], None).is_empty());
}

#[test]
fn reading_the_body_of_a_header_only_view_wants_it_and_leaves_the_view_as_parsed() {
    let (_dir, headers) = rules(&[("a.rhai", r#"if msg.from.domain == "b.example" { move_to("B"); }"#)], "");
    let (_dir, body) = rules(&[("a.rhai", r#"if msg.text.contains("body") { move_to("B"); }"#)], "");
    // Read, then failed: the body was still read, and the header-only failure is not final.
    let (_dir, fails) = rules(&[("a.rhai", "let n = msg.attachments.len(); throw \"no\";")], "");
    let (_dir, hook) =
        rules(&[("a.rhai", r#"webhook("t", #{});"#)], "webhooks:\n  t: { url: \"https://h.example/t\" }\n");
    let deferred = header_only();
    let now = Utc::now();
    let wanted = |set: &crate::rules::RuleSet| set.decide(&deferred, &[], now).body_wanted;
    assert_eq!(
        (wanted(&headers), wanted(&body), wanted(&fails), wanted(&hook)),
        (false, true, true, true),
        "headers alone are final; a body read (even by a failing rule) or an outbound action is not"
    );
    // The answer is the evaluation's: the shared view does not remember an earlier reader.
    let ruling = headers.decide(&deferred, &[], now);
    assert!(!ruling.body_wanted && ruling.failures.is_empty());
    assert_eq!(ruling.matched, ["a.rhai"]);
    assert_eq!(ruling.plan.actions[0].action, Action::Move { mailbox: "B".into() });
    // A whole message never wants more, whatever the rules read.
    let whole = view(MAIL);
    assert!(!body.decide(&whole, &[], now).body_wanted);
    assert_eq!(body.decide(&whole, &[], now).plan.actions.len(), 1);
}

#[test]
fn a_schedule_rules_plan_is_keyed_by_its_fire_as_the_sweep_stores_it() {
    let (dir, set) = rules(
        &[("a.rhai", r#"flag("old"); webhook("t", #{});"#)],
        "webhooks:\n  t: { url: \"https://h.example/t\" }\n",
    );
    let rule = set.compile_rule(&dir.path().join("rules"), "a.rhai").unwrap();
    let fired_at: DateTime<Utc> = "2030-01-02T03:04:05Z".parse().unwrap();
    let trigger = Trigger::Schedule { name: "weekly".into(), fired_at };
    let message = view(MAIL);
    let ruling =
        set.decide_scheduled(&rule, Some(&message), message.key().clone(), &trigger, fired_at, &Collected::default());
    let keys: Vec<&str> = ruling.plan.actions.iter().map(|p| p.key.as_str()).collect();
    let millis = fired_at.timestamp_millis();
    assert_eq!(
        keys,
        [
            format!("schedule/weekly/{millis}/work/INBOX/1/7/a.rhai#0"),
            format!("schedule/weekly/{millis}/work/INBOX/1/7/a.rhai#1")
        ]
    );
    assert_eq!(
        (ruling.matched.as_slice(), ruling.stopped_by.as_deref(), ruling.body_wanted),
        (&["a.rhai".to_owned()][..], None, false)
    );
    // Once, without a message: the stand-in key is not in the plan's keys.
    let stand_in = MessageKey::new("work", "INBOX", 0, 0);
    let once = set.decide_scheduled(&rule, None, stand_in, &trigger, fired_at, &Collected::default());
    assert_eq!(once.plan.actions[1].key, format!("schedule/weekly/{millis}/-/a.rhai#1"));
}
