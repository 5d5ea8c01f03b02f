//! What `tidings test` shows around a plan: hints for a rule's run-time typos, what rules
//! printed, lines without padding, and fixtures that need not list `collect`.

use std::path::{Path, PathBuf};

use super::test_cmd::{Options, Outcome, run};
use crate::config::Config;
use crate::rules::RuleSet;

/// A config with `rules` as its live rules (and webhook `crm`), in a fresh directory.
fn setup(rules: &[(&str, &str)]) -> (tempfile::TempDir, Config, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules/tests")).unwrap();
    for (name, text) in rules {
        std::fs::write(dir.path().join("rules").join(name), text).unwrap();
    }
    let yaml = "accounts: {}\nwebhooks:\n  crm: { url: \"https://hooks.example/crm\" }\n";
    let config = Config::from_yaml(yaml, &dir.path().join("tidings.yaml")).unwrap();
    let rules = RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"));
    (dir, config, rules)
}

fn message(dir: &Path) -> PathBuf {
    let path = dir.join("hello.eml");
    std::fs::write(&path, "From: ann@example.org\nTo: me@example.com\nSubject: Invoice 42\n\nhello\n").unwrap();
    path
}

fn test(config: &Config, rules: &RuleSet, paths: Vec<PathBuf>) -> (Outcome, String) {
    let options = Options { paths, mailbox: "INBOX".into(), ..Options::default() };
    let mut out = Vec::new();
    let outcome = run(config, rules, &options, &mut out).unwrap();
    (outcome, String::from_utf8(out).unwrap())
}

#[test]
fn run_time_typos_name_the_nearest_property_or_function() {
    let (dir, config, rules) = setup(&[
        ("a.rhai", "if msg.form.domain == \"example.org\" { label(\"x\"); }\n"),
        ("b.rhai", "if msg.subject.icontain(\"invoice\") { label(\"y\"); }\n"),
    ]);
    let (outcome, text) = test(&config, &rules, vec![message(dir.path())]);
    assert_eq!(outcome.rule_failures, 2, "{text}");
    assert!(text.contains("error: a.rhai: Unknown property 'form'"), "{text}");
    assert!(text.contains("; did you mean `from`?\n"), "{text}");
    assert!(text.contains("error: b.rhai: Function not found: icontain"), "{text}");
    assert!(text.contains("; did you mean `icontains`?\n"), "{text}");
    // The failure the daemon stores is the same text.
    let view = std::sync::Arc::new(crate::message::parse(
        b"From: a@b.example\n\nx\n",
        crate::message::Meta::new(crate::message::MessageKey::new("t", "INBOX", 1, 1)),
    ));
    let failures = rules.evaluate(&view, &[], chrono::Utc::now()).failures;
    assert!(failures[0].error.ends_with("did you mean `from`?"), "{failures:?}");
    assert!(failures[1].error.ends_with("did you mean `icontains`?"), "{failures:?}");
}

#[test]
fn what_rules_print_shows_under_the_message_and_the_case() {
    let rule = "print(\"subject is \" + msg.subject);\ndebug(msg.from.domain);\nlabel(\"seen\");\n";
    let (dir, config, rules) = setup(&[("a.rhai", rule)]);
    let (outcome, text) = test(&config, &rules, vec![message(dir.path())]);
    assert!(outcome.passed(), "{text}");
    assert!(text.contains("  print (a.rhai): subject is Invoice 42\n  print (a.rhai): \"example.org\"\n"), "{text}");
    let options = Options { paths: vec![message(dir.path())], json: true, ..Options::default() };
    let mut out = Vec::new();
    run(&config, &rules, &options, &mut out).unwrap();
    let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(line["printed"][0], serde_json::json!({"rule": "a.rhai", "text": "subject is Invoice 42"}));
    let fixture = dir.path().join("rules/tests/a.yaml");
    std::fs::write(&fixture, "cases:\n  - message: {raw: \"Subject: Hi\\n\\nx\\n\"}\n    expect: [label: seen]\n")
        .unwrap();
    let (outcome, text) = test(&config, &rules, vec![fixture]);
    assert!(outcome.passed(), "{text}");
    assert!(text.contains("  ok    case 1\n        print (a.rhai): subject is Hi\n"), "{text}");
}

#[test]
fn plan_lines_are_not_padded() {
    let rule = "label(\"short\");\nwebhook(\"crm\", #{ subject: msg.subject, text: msg.text, from: msg.from.address, \
                long: \"a value long enough to make this the widest line of the plan by far\" });\n\
                move_to(\"Archive\");\n";
    let (dir, config, rules) = setup(&[("a-rule-with-a-long-name.rhai", rule)]);
    let (outcome, text) = test(&config, &rules, vec![message(dir.path())]);
    assert!(outcome.passed(), "{text}");
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    eprintln!("widest line: {widest} characters\n{text}");
    assert!(text.lines().all(|l| !l.ends_with(' ')), "a line ends with a space:\n{text}");
    assert!(widest <= 120, "a line of {widest} characters:\n{text}");
    // Short actions still line up with each other.
    assert!(text.contains("  1. add flags short   (a-rule-with-a-long-name.rhai)\n"), "{text}");
}

#[test]
fn fixtures_list_collect_only_when_they_check_it() {
    let rules = [
        ("10-file.rhai", "move_to(\"Newsletters\");\n"),
        ("45-digest.rhai", "collect(\"digest\", #{ subject: msg.subject });\n"),
    ];
    let (dir, config, rules) = setup(&rules);
    let fixture = dir.path().join("rules/tests/file.yaml");
    let case = "  - message: {raw: \"Subject: Hi\\n\\nx\\n\"}\n";
    // Unlisted: the collect is not compared, and the case passes.
    std::fs::write(&fixture, format!("cases:\n{case}    expect: [move: Newsletters]\n")).unwrap();
    let (outcome, text) = test(&config, &rules, vec![fixture.clone()]);
    assert!(outcome.passed() && outcome.cases == 1, "{text}");
    // Listed, and right: passes.
    let right = format!("cases:\n{case}    expect: [move: Newsletters, collect: {{name: digest}}]\n");
    std::fs::write(&fixture, right).unwrap();
    let (outcome, text) = test(&config, &rules, vec![fixture.clone()]);
    assert!(outcome.passed(), "{text}");
    // Listed, and wrong: fails with the diff.
    let wrong = format!("cases:\n{case}    expect: [move: Newsletters, collect: {{name: other}}]\n");
    std::fs::write(&fixture, wrong).unwrap();
    let (outcome, text) = test(&config, &rules, vec![fixture.clone()]);
    assert_eq!(outcome.cases_failed.len(), 1, "{text}");
    assert!(text.contains("- collect: {\"name\":\"other\"}"), "{text}");
    // A fixture that lists a collect in one case checks it in all: `[]`-style absence is asserted.
    let both = format!(
        "cases:\n{case}    expect: [move: Newsletters, collect: {{name: digest}}]\n{case}    expect: [move: Newsletters]\n"
    );
    std::fs::write(&fixture, both).unwrap();
    let (outcome, text) = test(&config, &rules, vec![fixture]);
    assert_eq!(outcome.cases_failed.len(), 1, "{text}");
    assert!(text.contains("FAIL  case 2"), "{text}");
}
