use super::*;
use crate::message::MessageKey;
use crate::plan::{Decision, Plan};
use crate::rules::RuleFailure;

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

fn flags(kind: &str, names: &[&str]) -> Action {
    let flags = names.iter().map(|s| (*s).to_owned()).collect();
    if kind == "add" { Action::AddFlags { flags } } else { Action::RemoveFlags { flags } }
}

#[test]
fn every_shorthand_reads_into_its_action() {
    let cases = [
        ("move: Lists/rust", Action::Move { mailbox: "Lists/rust".into() }),
        ("move: 2026", Action::Move { mailbox: "2026".into() }),
        ("copy: Backup", Action::Copy { mailbox: "Backup".into() }),
        ("flag: \\Flagged", flags("add", &["\\Flagged"])),
        ("flag: \"\\\\Flagged\"", flags("add", &["\\Flagged"])),
        ("label: receipt", flags("add", &["receipt"])),
        ("label: [a, \\Seen]", flags("add", &["a", "\\Seen"])),
        ("unflag: \\Seen", flags("remove", &["\\Seen"])),
        ("unlabel: x", flags("remove", &["x"])),
        ("mark_read", flags("add", &["\\Seen"])),
        ("mark_unread", flags("remove", &["\\Seen"])),
        ("delete", Action::Delete),
        ("{kind: move, mailbox: A}", Action::Move { mailbox: "A".into() }),
        ("move: {mailbox: A}", Action::Move { mailbox: "A".into() }),
    ];
    for (text, action) in cases {
        assert_eq!(expected_action(&yaml(text)), Ok(action), "{text}");
    }
}

#[test]
fn the_printed_form_reads_back_as_the_same_action() {
    for action in [
        Action::Move { mailbox: "Überweisungen/2026".into() },
        Action::Copy { mailbox: "a: b #c".into() },
        flags("add", &["\\Flagged"]),
        flags("add", &["yes", "$Label1"]),
        flags("remove", &["\\Seen", "\\Flagged"]),
        Action::Delete,
    ] {
        let form = fixture_form(&action);
        assert_eq!(expected_action(&yaml(&form)), Ok(action), "{form}");
    }
}

#[test]
fn a_wrong_action_is_named() {
    let error = expected_action(&yaml("mvoe: A")).unwrap_err();
    assert!(error.contains("mvoe") && error.contains("not an action"), "{error}");
    let error = expected_action(&yaml("flag: {a: 1}")).unwrap_err();
    assert!(error.contains("expected a flag name"), "{error}");
    assert!(expected_action(&yaml("[1, 2]")).is_err());
}

#[test]
fn the_diff_shows_what_is_missing_and_what_is_extra() {
    let lines = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let out = diff(&lines(&["flag: \\Flagged", "move: A"]), &lines(&["flag: \\Flagged", "label: x", "move: B"]));
    assert_eq!(out, ["    flag: \\Flagged", "  - move: A", "  + label: x", "  + move: B"]);
    assert_eq!(diff(&[], &lines(&["delete"])), ["  + delete"]);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_fixture_loads_with_defaults_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.eml", "Subject: hi\n\nbody\n");
    let path = write(
        dir.path(),
        "f.yaml",
        "now: 2026-11-26T10:00:00Z\naccount: work\ncases:\n  - message: m.eml\n    expect: []\n    stopped_by: null\n  \
         - name: inline\n    message:\n      raw: |\n        Subject: x\n\n        y\n    now: 2026-01-02\n    mailbox: Lists\n    \
         flags: [\\Seen]\n    expect: [delete]\n    failures: [b.rhai, a.rhai]\n",
    );
    let fixture = Fixture::load(&path, Utc::now()).unwrap();
    let [first, second] = &fixture.cases[..] else { panic!("{fixture:?}") };
    assert_eq!(first.file.as_deref(), Some(dir.path().join("m.eml").as_path()));
    assert_eq!((first.account.as_str(), first.mailbox.as_str()), ("work", "INBOX"));
    assert_eq!(first.now.to_rfc3339(), "2026-11-26T10:00:00+00:00");
    assert_eq!(first.stopped_by, Some(None));
    assert_eq!(second.title(), "case 2: inline");
    assert_eq!(second.now.to_rfc3339(), "2026-01-02T00:00:00+00:00");
    assert_eq!((second.mailbox.as_str(), second.flags.as_slice()), ("Lists", &["\\Seen".to_owned()][..]));
    assert_eq!(second.failures, ["a.rhai", "b.rhai"]);
    assert_eq!(second.stopped_by, None);
    let view = second.view();
    assert_eq!((view.subject(), view.key().uid), ("x", 2));
}

#[test]
fn every_problem_in_a_fixture_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "f.yaml",
        "cases:\n  - message: missing.eml\n    expect: [mvoe: A]\n  - message: {raw: x}\n    now: soon\n    expect: []\n",
    );
    let problems = Fixture::load(&path, Utc::now()).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| format!("{:?}: {}", p.case, p.message)).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(text[0].starts_with("Some(1): cannot read message") && text[0].contains("missing.eml"), "{text:#?}");
    assert!(text[1].starts_with("Some(1): expect: `mvoe` is not an action: unknown variant"), "{text:#?}");
    assert!(text[2].starts_with("Some(2): now: `soon`"), "{text:#?}");
    let unknown = write(dir.path(), "g.yaml", "cases: []\nnow2: x\n");
    let problems = Fixture::load(&unknown, Utc::now()).unwrap_err();
    assert!(problems[0].message.contains("now2"), "{problems:?}");
    let empty = write(dir.path(), "h.yaml", "cases: []\n");
    assert_eq!(Fixture::load(&empty, Utc::now()).unwrap_err()[0].message, "it has no cases");
}

#[test]
fn check_passes_or_explains_every_difference() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "f.yaml",
        "cases:\n  - message: {raw: x}\n    expect: [flag: \\Flagged, move: A]\n    stopped_by: a.rhai\n    \
         overridden: []\n",
    );
    let case = Fixture::load(&path, Utc::now()).unwrap().cases.remove(0);
    let decide = |position, action| Decision { rule: "a.rhai".into(), position, action };
    let verdict = |decisions, stopped_by: Option<&str>, failures| Verdict {
        rules_matched: vec!["a.rhai".into()],
        stopped_by: stopped_by.map(str::to_owned),
        plan: Plan::build(MessageKey::new("t", "INBOX", 1, 1), decisions),
        failures,
    };
    let good = verdict(
        vec![decide(0, flags("add", &["\\Flagged"])), decide(1, Action::Move { mailbox: "A".into() })],
        Some("a.rhai"),
        vec![],
    );
    assert!(case.check(&good).is_empty(), "{:?}", case.check(&good));
    let bad = verdict(
        vec![decide(0, Action::Move { mailbox: "B".into() }), decide(1, Action::Move { mailbox: "A".into() })],
        None,
        vec![RuleFailure { rule: "b.rhai".into(), error: "boom".into() }],
    );
    assert_eq!(
        case.check(&bad),
        [
            "plan (- expected, + got):",
            "  - flag: \\Flagged",
            "    move: A",
            "overridden (- expected, + got):",
            "  + move: B",
            "stopped_by: expected a.rhai, got no rule",
            "failures: expected [], got [b.rhai]",
            "  b.rhai: boom",
        ]
    );
}
