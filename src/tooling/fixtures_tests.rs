use super::*;
use crate::message::MessageKey;
use crate::plan::{Decision, Plan};
use crate::rules::RuleFailure;

fn flags(kind: &str, names: &[&str]) -> Action {
    let flags = names.iter().map(|s| (*s).to_owned()).collect();
    if kind == "add" { Action::AddFlags { flags } } else { Action::RemoveFlags { flags } }
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
    let view = second.view().unwrap();
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
        suppressed: vec![],
        printed: vec![],
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

#[test]
fn a_schedule_fixture_fires_at_now_with_its_collected_items_and_may_have_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "f.yaml",
        "rule: sweeps/daily-digest.rhai\nnow: 2026-11-27T07:00:00+01:00\naccount: work\n\
         collected: {digest: [{subject: a}, {subject: b}]}\ncases:\n  - expect: [send]\n    read: [digest]\n  \
         - message: {raw: \"Subject: x\\n\\ny\\n\"}\n    received: 2026-11-10T08:00:00Z\n    collected: {}\n    \
         expect: []\n",
    );
    let fixture = Fixture::load(&path, Utc::now()).unwrap();
    assert_eq!(fixture.rule.as_deref(), Some("sweeps/daily-digest.rhai"));
    let [once, sweep] = &fixture.cases[..] else { panic!("{fixture:?}") };
    let fired = "2026-11-27T06:00:00Z".parse().unwrap();
    assert_eq!(once.trigger, Trigger::Schedule { name: "daily-digest".into(), fired_at: fired });
    assert!(once.view().is_none());
    assert_eq!(once.collected.items["digest"].len(), 2);
    assert_eq!(once.collected.up_to, 2);
    assert!(once.check_read(&["digest".to_owned()]).is_empty());
    assert_eq!(once.check_read(&[]), ["read: expected [digest], got []"]);
    assert!(sweep.collected.items.is_empty(), "a case's own collected replaces the fixture's");
    assert!(sweep.check_read(&["x".to_owned()]).is_empty(), "not checked unless the case says");
    let view = sweep.view().unwrap();
    assert_eq!(view.internal_date(), Some("2026-11-10T08:00:00Z".parse().unwrap()));
    let named = write(dir.path(), "g.yaml", "rule: sweeps/x.rhai\nschedule: nightly\ncases: [{expect: []}]\n");
    let case = &Fixture::load(&named, Utc::now()).unwrap().cases[0];
    assert!(matches!(&case.trigger, Trigger::Schedule { name, .. } if name == "nightly"));
}

#[test]
fn a_live_fixture_needs_a_message_and_cannot_have_collected_items() {
    let dir = tempfile::tempdir().unwrap();
    let path =
        write(dir.path(), "f.yaml", "cases:\n  - expect: []\n  - message: {raw: x}\n    read: [d]\n    expect: []\n");
    let problems = Fixture::load(&path, Utc::now()).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| format!("{:?}: {}", p.case, p.message)).collect();
    assert_eq!(
        text,
        [
            "Some(1): it has no `message` (only a schedule's rule runs without one)",
            "Some(2): `collected` and `read` need the fixture's `rule`: only a schedule's rule reads",
        ]
    );
    let path = write(dir.path(), "g.yaml", "collected: {d: []}\ncases: [{message: {raw: x}, expect: []}]\n");
    assert!(Fixture::load(&path, Utc::now()).unwrap_err()[0].message.contains("`collected` needs `rule`"));
    let path = write(dir.path(), "h.yaml", "schedule: s\ncases: [{message: {raw: x}, expect: []}]\n");
    assert!(Fixture::load(&path, Utc::now()).unwrap_err()[0].message.contains("`schedule` needs `rule`"));
}
