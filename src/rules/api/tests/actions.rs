//! Mailbox actions and the per-message caps, decided by rules.

use super::{BARE, FULL, actions, error, rules, view};
use crate::message::MessageKey;
use crate::plan::{Action, Plan};
use crate::rules::api::actions::{MAX_ACTIONS, MAX_OUTBOUND};

fn flags(names: &[&str]) -> Action {
    Action::AddFlags { flags: names.iter().map(|s| (*s).to_owned()).collect() }
}

fn unflags(names: &[&str]) -> Action {
    Action::RemoveFlags { flags: names.iter().map(|s| (*s).to_owned()).collect() }
}

#[test]
fn every_mailbox_action_is_recorded_in_call_order() {
    let rule = r#"
        flag("\\flagged"); unflag("\\Seen"); label("receipt"); unlabel("todo");
        mark_read(); mark_unread();
        copy_to("/Backup/2026/"); move_to("Shop/Orders"); archive(); delete();
    "#;
    assert_eq!(
        actions(rule, FULL),
        [
            flags(&["\\Flagged"]),
            unflags(&["\\Seen"]),
            flags(&["receipt"]),
            unflags(&["todo"]),
            flags(&["\\Seen"]),
            unflags(&["\\Seen"]),
            Action::Copy { mailbox: "Backup/2026".into() },
            Action::Move { mailbox: "Shop/Orders".into() },
            Action::Archive,
            Action::Delete,
        ]
    );
}

#[test]
fn archive_is_a_disposition_and_the_last_one_wins() {
    let (_dir, set) = rules(&[("a.rhai", "move_to(\"Later\"); flag(\"x\");"), ("b.rhai", "archive();")]);
    let key = MessageKey::new("work", "INBOX", 7, 42);
    let plan = Plan::build(key, set.evaluate(&view(FULL), &[], super::now()).decisions);
    let got: Vec<&Action> = plan.actions.iter().map(|p| &p.action).collect();
    assert_eq!(got, [&flags(&["x"]), &Action::Archive]);
    assert_eq!(plan.overridden[0].action, Action::Move { mailbox: "Later".into() });
}

#[test]
fn stop_keeps_the_decisions_and_skips_later_rules() {
    let (_dir, set) = rules(&[("a.rhai", "label(\"seen-by-a\"); stop(); label(\"never\");"), ("b.rhai", "delete();")]);
    let evaluation = set.evaluate(&view(BARE), &[], super::now());
    let got: Vec<&Action> = evaluation.decisions.iter().map(|d| &d.action).collect();
    assert_eq!(got, [&flags(&["seen-by-a"])]);
    assert_eq!(evaluation.stopped_by.as_deref(), Some("a.rhai"));
}

#[test]
fn bad_names_fail_the_rule() {
    assert!(error("flag(\"\\\\Important\");", BARE).contains("is not a system flag"));
    assert!(error("label(\"two words\");", BARE).contains("cannot be a keyword"));
    assert!(error("copy_to(\"a//b\");", BARE).contains("is not a folder name"));
    assert!(error("move_to(\"\");", BARE).contains("is not a folder name"));
}

#[test]
fn the_action_cap_counts_every_rule_of_the_message() {
    // 30 actions in the first rule, then 30 more: the second rule reaches the cap and fails,
    // the first keeps its decisions.
    let thirty = "for i in 0..30 { label(\"l\" + i); }";
    let (_dir, set) = rules(&[("a.rhai", thirty), ("b.rhai", thirty), ("c.rhai", "mark_read();")]);
    let evaluation = set.evaluate(&view(BARE), &[], super::now());
    let failed: Vec<(&str, &str)> = evaluation.failures.iter().map(|f| (f.rule.as_str(), f.error.as_str())).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "b.rhai");
    assert!(failed[0].1.contains(&format!("too many actions for one message (limit {MAX_ACTIONS}")), "{failed:?}");
    // b's decisions were dropped, so c still has room.
    assert_eq!(evaluation.decisions.len(), 31);
    // One rule alone hits the cap on its 51st action, long before the operation limit.
    let looping = error("loop { flag(\"x\"); }", BARE);
    assert!(looping.contains("too many actions") && looping.contains("line 1"), "{looping}");
}

#[test]
fn the_outbound_cap_counts_every_rule_of_the_message() {
    let three = "for i in 0..3 { webhook(\"chat\", i); }";
    let (_dir, set) = rules(&[("a.rhai", three), ("b.rhai", three)]);
    let evaluation = set.evaluate(&view(BARE), &[], super::now());
    assert_eq!(evaluation.failures.len(), 1);
    let expected = format!("too many outbound actions for one message (limit {MAX_OUTBOUND}");
    assert!(evaluation.failures[0].error.contains(&expected), "{:?}", evaluation.failures);
    assert_eq!(evaluation.decisions.len(), 3);
}
