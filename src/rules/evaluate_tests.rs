//! Evaluating rules over a message: decisions, stop(), failures contained (never disabling), limits.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::message::{MessageKey, MessageView, Meta};
use crate::plan::Action;

const GITHUB_MAIL: &str = "From: GitHub <notifications@github.com>\r\nTo: me@example.com\r\nSubject: [tidings] Review requested\r\nX-GitHub-Reason: review_requested\r\nList-Id: tidings <tidings.example.github.com>\r\nMessage-ID: <abc@github.com>\r\n\r\nPlease review.\r\n";

pub(super) fn view(raw: &str) -> Arc<MessageView> {
    let meta = Meta::new(MessageKey::new("work", "INBOX", 1, 7));
    Arc::new(crate::message::parse(raw.as_bytes(), meta))
}

pub(super) fn rules(files: &[(&str, &str)], yaml_extra: &str) -> (tempfile::TempDir, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("rules").join(name), text).unwrap();
    }
    let config = Config::from_yaml(&format!("accounts: {{}}\n{yaml_extra}"), &dir.path().join("t.yaml")).unwrap();
    let set = RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"));
    (dir, set)
}

fn actions(evaluation: &Evaluation) -> Vec<(&str, &Action)> {
    evaluation.decisions.iter().map(|d| (d.rule.as_str(), &d.action)).collect()
}

#[test]
fn the_readme_rule_labels_flags_moves_and_stops() {
    let rule = r#"
        if msg.from.domain == "github.com" {
            label("GitHub");
            if msg.header("X-GitHub-Reason") == "review_requested" { flag("\\Flagged"); }
            move_to("GitHub");
            stop();
        }
    "#;
    let (_dir, set) = rules(&[("10-github.rhai", rule), ("20-later.rhai", "move_to(\"Never\");")], "");
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &[], chrono::Utc::now());
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    assert_eq!(
        actions(&evaluation),
        [
            ("10-github.rhai", &Action::AddFlags { flags: vec!["GitHub".into()] }),
            ("10-github.rhai", &Action::AddFlags { flags: vec!["\\Flagged".into()] }),
            ("10-github.rhai", &Action::Move { mailbox: "GitHub".into() }),
        ]
    );
    assert_eq!(evaluation.stopped_by.as_deref(), Some("10-github.rhai"));
}

#[test]
fn message_getters_read_the_view() {
    let rule = r#"
        if msg.subject.contains("Review") && msg.list_id == "tidings.example.github.com"
           && msg.to[0].address == "me@example.com" && msg.has_header("x-github-reason")
           && !msg.has_header("X-Absent") && msg.header("X-Absent") == "" && msg.account == "work" && msg.mailbox == "INBOX"
           && msg.uid == 7 && msg.text.contains("Please") && msg.from.name == "GitHub" {
            copy_to("Seen/All");
        }
    "#;
    let (_dir, set) = rules(&[("getters.rhai", rule)], "");
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &[], chrono::Utc::now());
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    assert_eq!(actions(&evaluation), [("getters.rhai", &Action::Copy { mailbox: "Seen/All".into() })]);
}

#[test]
fn a_failing_rule_is_contained_and_the_others_run() {
    let (_dir, set) = rules(
        &[
            ("a.rhai", "flag(\"early\");\nlet x = 1 / 0;\n"),
            ("b.rhai", "flag(\"has space\");"),
            ("c.rhai", "mark_read();"),
        ],
        "",
    );
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &[], chrono::Utc::now());
    let failed: Vec<&str> = evaluation.failures.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(failed, ["a.rhai", "b.rhai"]);
    assert!(evaluation.failures[0].error.contains("line 2"), "{:?}", evaluation.failures[0]);
    assert!(evaluation.failures[1].error.contains("cannot be a keyword"), "{:?}", evaluation.failures[1]);
    // The failed rule's "early" flag is dropped: a rule's decisions count only if it finishes.
    assert_eq!(actions(&evaluation), [("c.rhai", &Action::AddFlags { flags: vec!["\\Seen".into()] })]);
}

#[test]
fn wall_clock_and_operation_limits_stop_runaway_rules() {
    let busy = "let n = 0; loop { n += 1; }";
    let (_dir, set) = rules(&[("busy.rhai", busy)], "limits: { operations: 1000000000, wall_time: 50ms }\n");
    let started = std::time::Instant::now();
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &[], chrono::Utc::now());
    // Generous: the tests share two cores. A billion operations would take minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(evaluation.failures[0].error.contains("wall-clock limit"), "{:?}", evaluation.failures);
    let (_dir, set) = rules(&[("busy.rhai", busy)], "limits: { operations: 5000 }\n");
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &[], chrono::Utc::now());
    assert!(evaluation.failures[0].error.contains("limit of 5000 operations"), "{:?}", evaluation.failures);
}

/// A failure belongs to the message it happened on (Sieve's model): however often a rule fails
/// on hostile mail, it still runs, and decides, for the next message.
#[test]
fn a_rule_failing_on_many_messages_still_runs_for_the_next() {
    let rule = "if msg.subject.contains(\"bad\") { throw \"cannot read \" + msg.subject; }\nmove_to(\"Done\");";
    let (_dir, set) = rules(&[("picky.rhai", rule)], "");
    let bad = view(&GITHUB_MAIL.replace("Subject: [tidings] Review requested", "Subject: bad"));
    for _ in 0..100 {
        let evaluation = set.evaluate(&bad, &[], chrono::Utc::now());
        assert_eq!(evaluation.failures.len(), 1, "{:?}", evaluation.failures);
        assert!(evaluation.failures[0].error.contains("cannot read bad"), "{:?}", evaluation.failures);
    }
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &[], chrono::Utc::now());
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    assert_eq!(actions(&evaluation), [("picky.rhai", &Action::Move { mailbox: "Done".into() })]);
}

#[test]
fn account_globs_narrow_the_rules() {
    let (_dir, set) = rules(&[("news.rhai", "flag(\"news\");"), ("work.rhai", "flag(\"work\");")], "");
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &["work*".to_owned()], chrono::Utc::now());
    assert_eq!(actions(&evaluation), [("work.rhai", &Action::AddFlags { flags: vec!["work".into()] })]);
}

#[test]
fn bad_folder_names_fail_the_rule() {
    let (_dir, set) = rules(&[("bad.rhai", "move_to(\"a//b\");")], "");
    let evaluation = set.evaluate(&view(GITHUB_MAIL), &[], chrono::Utc::now());
    assert!(evaluation.failures[0].error.contains("is not a folder name"), "{:?}", evaluation.failures);
    assert!(Path::new(&evaluation.failures[0].rule).ends_with("bad.rhai"));
}

/// Watchers of several mailboxes evaluate at the same time: every concurrent evaluation of the
/// shipped rules (whose plugins read `global::` constants) must give the plan a lone one gives.
/// (A generous wall clock: 8 threads on a shared machine wait for cores, which is not what this
/// checks.)
#[test]
fn concurrent_evaluations_of_the_shipped_rules_all_succeed() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = "accounts: {}\nrules: rules\nplugins: plugins\nlimits: { wall_time: 30s }\n";
    let config = Config::from_yaml(yaml, &repo.join("t.yaml")).unwrap();
    let set = Arc::new(RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}")));
    let samples: Vec<Arc<MessageView>> = std::fs::read_dir(repo.join("examples/mail"))
        .unwrap()
        .map(|e| view(&std::fs::read_to_string(e.unwrap().path()).unwrap()))
        .collect();
    let expected: Vec<usize> =
        samples.iter().map(|m| set.evaluate(m, &[], chrono::Utc::now()).decisions.len()).collect();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (set, samples, expected) = (set.clone(), samples.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut wrong = 0;
                for _ in 0..30 {
                    for (message, want) in samples.iter().zip(&expected) {
                        let evaluation = set.evaluate(message, &[], chrono::Utc::now());
                        wrong += usize::from(evaluation.decisions.len() != *want || !evaluation.failures.is_empty());
                    }
                }
                wrong
            })
        })
        .collect();
    let wrong: usize = threads.into_iter().map(|t| t.join().expect("no panic escapes")).sum();
    assert_eq!(wrong, 0, "every evaluation gives the same plan as a lone one");
}

/// The wall-clock limit holds inside native calls: 400 regex scans of a 1 MiB body would take
/// seconds, and the rule is stopped at its limit, not 256 operations later (nor run again).
#[test]
fn the_wall_clock_limit_holds_inside_native_calls_over_a_large_body() {
    let body = "lorem ipsum dolor sit amet ".repeat((1 << 20) / 27);
    let mail = format!("From: a@example.com\r\nTo: me@example.com\r\nSubject: big\r\n\r\n{body}\r\n");
    let rule = r#"
        let found = 0;
        for i in 0..400 {
            if msg.text.captures("(\\d+)-(\\w+)-zz") != () { found += 1; }
            if msg.text.icontains("needle") { found += 1; }
            if msg.text.matches("(?i)needle \\d+") { found += 1; }
        }
        move_to("Never");
    "#;
    let limit = std::time::Duration::from_millis(100);
    let (_dir, set) = rules(&[("slow.rhai", rule)], "limits: { operations: 1000000000, wall_time: 100ms }\n");
    let message = view(&mail);
    let started = std::time::Instant::now();
    let evaluation = set.evaluate(&message, &[], chrono::Utc::now());
    let took = started.elapsed();
    println!("a rule of 400 x 3 scans of a 1 MiB body under wall_time {limit:?} stopped after {took:?}");
    assert!(evaluation.failures[0].error.contains("wall-clock limit"), "{:?}", evaluation.failures);
    assert!(evaluation.decisions.is_empty());
    // Generous (the tests share two cores): the aim is about 2x the limit.
    assert!(took < limit * 5, "took {took:?} with a limit of {limit:?}");
}
