//! Rules that misbehave: each is stopped with a message naming the rule and what happened, and
//! the next message is still processed, by the other rules and by the misbehaving one.

use std::time::{Duration, Instant};

use super::{BARE, FULL, rules_with, view};
use crate::plan::Action;

/// A wall-clock limit far away, so that what stops the rule is the limit under test (a debug
/// build is slow enough to reach 100 ms first).
const LIMITS_ONLY: &str = "limits: { wall_time: 10s }\n";

/// Runs `rule` (as bad.rhai, between two good rules) over two messages: the bad one fails on
/// each with an error containing `expected`, the good ones decide both times.
fn contained(rule: &str, expected: &str, yaml: &str) -> String {
    let files = [("a-good.rhai", "label(\"before\");"), ("bad.rhai", rule), ("c-good.rhai", "label(\"after\");")];
    let (_dir, set) = rules_with(&files, yaml);
    let mut last = String::new();
    for raw in [FULL, BARE] {
        let started = Instant::now();
        let evaluation = set.evaluate(&view(raw), &[], super::now());
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        let failures: Vec<(&str, &str)> =
            evaluation.failures.iter().map(|f| (f.rule.as_str(), f.error.as_str())).collect();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].0, "bad.rhai");
        assert!(failures[0].1.contains(expected), "expected `{expected}` in {:?}", failures[0].1);
        let labels: Vec<&Action> = evaluation.decisions.iter().map(|d| &d.action).collect();
        let label = |l: &str| Action::AddFlags { flags: vec![l.to_owned()] };
        assert_eq!(labels, [&label("before"), &label("after")]);
        eprintln!("{}: {}", failures[0].0, failures[0].1);
        last = failures[0].1.to_owned();
    }
    last
}

#[test]
fn an_infinite_loop_is_stopped_by_the_operation_limit() {
    contained(
        "let n = 0; loop { n += 1; }",
        "stopped after the limit of 100000 operations",
        "limits: { operations: 100000, wall_time: 10s }\n",
    );
}

#[test]
fn an_infinite_loop_is_stopped_by_the_wall_clock() {
    let yaml = "limits: { operations: 1000000000, wall_time: 50ms }\n";
    contained("let n = 0; loop { n += 1; }", "stopped after the wall-clock limit of 50ms", yaml);
}

#[test]
fn deep_recursion_is_stopped() {
    let error = contained("fn f(n) { f(n + 1) } f(0);", "Stack overflow", "");
    assert!(error.contains("line 1"), "{error}");
}

#[test]
fn a_100_mb_string_is_stopped_at_the_size_limit() {
    contained(r#"let s = "x"; loop { s += s; }"#, "Length of string too large", LIMITS_ONLY);
}

#[test]
fn a_huge_array_is_stopped_at_the_size_limit() {
    contained("let a = []; loop { a.push(1); }", "Size of array/BLOB too large", LIMITS_ONLY);
}

#[test]
fn a_thrown_error_fails_only_its_rule() {
    let error = contained(
        r#"label("dropped"); throw "no idea what to do with " + msg.subject;"#,
        "no idea what to do with",
        "",
    );
    assert!(error.contains("line 1"), "{error}");
}

#[test]
fn a_runaway_regex_or_glob_cannot_stall_a_rule() {
    // Linear-time regexes and globs: a classic catastrophic pattern on a long text returns at
    // once, so the rule finishes well inside its 100 ms.
    let rule = r#"let s = "a"; for i in 0..14 { s += s; }
        if (s + "!").matches("^(a+)+$") || (s + "!").matches_glob("*a*a*a*a*a*a*a*a*b") { label("never"); }
        label("done");"#;
    let files = [("a-good.rhai", "label(\"before\");"), ("bad.rhai", rule), ("c-good.rhai", "label(\"after\");")];
    let (_dir, set) = rules_with(&files, "");
    let evaluation = set.evaluate(&view(BARE), &[], super::now());
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    assert_eq!(evaluation.decisions.len(), 3);
}
