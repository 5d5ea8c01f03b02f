use super::*;
use crate::plan::Action;

#[test]
fn selections_become_search_criteria() {
    let now = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().to_utc();
    assert_eq!(Selection::All.criteria(now).unwrap(), "ALL");
    assert_eq!(Selection::Since("30d".into()).criteria(now).unwrap(), "SINCE 27-Oct-2026");
    assert_eq!(Selection::Since("2026-01-05".into()).criteria(now).unwrap(), "SINCE 5-Jan-2026");
    assert_eq!(Selection::Search("UNSEEN".into()).criteria(now).unwrap(), "UNSEEN");
    let error = Selection::Since("30".into()).criteria(now).unwrap_err();
    assert!(error.is_input() && error.to_string().starts_with("cannot use --since 30: "), "{error}");
    assert!(Selection::Search(" ".into()).criteria(now).is_err());
}

use crate::tooling::test_verdict as verdict;

#[test]
fn flags_follow_the_plan() {
    let plan = verdict(vec![
        Action::AddFlags { flags: vec!["\\Flagged".into(), "\\Seen".into()] },
        Action::RemoveFlags { flags: vec!["\\seen".into(), "old".into()] },
        Action::Copy { mailbox: "Backup".into() },
        Action::Move { mailbox: "Lists".into() },
    ]);
    assert_eq!(flags_after(&["old".into(), "\\Answered".into()], &plan), ["\\Answered", "\\Flagged"]);
    assert_eq!(landing_mailboxes(&plan), ["Backup", "Lists"]);
}

fn context(rule: &str) -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/sort.rhai"), rule).unwrap();
    let yaml = "rules: rules\naccounts:\n  t:\n    imap: { host: h }\n    username: u\n    password_env: UNSET\n    \
                mailboxes: [INBOX, Lists, Done]\n";
    let config = Config::from_yaml(yaml, &dir.path().join("tidings.yaml")).unwrap();
    let rules = Arc::new(RuleSet::compile(&config).unwrap());
    let account = Arc::new(config.accounts[0].clone());
    (dir, Context { rules, account, mailbox: "INBOX".into(), uidvalidity: 9, now: Utc::now() })
}

fn fetched(raw: &str) -> Fetched {
    Fetched {
        uid: 7,
        flags: vec![],
        internal_date: None,
        size: raw.len() as u64,
        raw: raw.into(),
        truncated: false,
        body_deferred: false,
        gmail: None,
    }
}

#[test]
fn a_message_moved_into_a_watched_mailbox_is_judged_there_again() {
    let rule = r#"
        if msg.mailbox == "INBOX" { flag("\\Flagged"); move_to("Lists"); }
        if msg.mailbox == "Lists" && msg.has_flag("\\Flagged") { label("twice"); move_to("Done"); copy_to("Elsewhere"); }
    "#;
    let (_dir, context) = context(rule);
    let judged = judge(&context, &fetched("From: a@b.example\nSubject: hello\n\nbody\n"));
    assert_eq!((judged.uid, judged.from.as_str(), judged.subject.as_str()), (7, "a@b.example", "hello"));
    let mailboxes: Vec<&str> = judged.steps.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(mailboxes, ["INBOX", "Lists", "Done"]);
    assert_eq!(judged.steps[0].1.plan.message.uidvalidity, 9);
    assert_eq!(judged.steps[1].1.plan.actions[0].action, Action::AddFlags { flags: vec!["twice".into()] });
    assert!(judged.steps[2].1.plan.actions.is_empty());
    assert_eq!(judged.loop_at, None);
}

#[test]
fn a_loop_between_watched_mailboxes_is_followed_once_round() {
    let rule = r#"if msg.mailbox == "INBOX" { move_to("Lists"); } else { move_to("INBOX"); }"#;
    let (_dir, context) = context(rule);
    let judged = judge(&context, &fetched("Subject: x\n\ny\n"));
    assert_eq!(judged.steps.len(), 2);
    assert_eq!(judged.loop_at.as_deref(), Some("INBOX"));
    let mut out = Vec::new();
    write_judged(&mut out, "INBOX", &judged, false).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("UID 7 from ?: x\n  rules matched: sort.rhai\n  1. move -> Lists"), "{text}");
    assert!(text.contains("  then in Lists (watched: judged again as new mail there):\n    rules matched"), "{text}");
    assert!(text.contains("followed no further at INBOX"), "{text}");
    let mut out = Vec::new();
    write_judged(&mut out, "INBOX", &judged, true).unwrap();
    let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(line["then"][0]["mailbox"], "Lists");
    assert_eq!(line["loop"], "INBOX");
    assert_eq!(line["actions"][0]["kind"], "move");
}

#[test]
fn the_account_is_found_or_named() {
    let (_dir, context) = context("");
    let mut config = Config::from_yaml("accounts: {}\n", std::path::Path::new("x.yaml")).unwrap();
    assert!(matches!(find_account(&config, None), Err(Error::Option { .. })));
    config.accounts.push((*context.account).clone());
    assert_eq!(find_account(&config, None).unwrap().name, "t");
    let error = find_account(&config, Some("work")).unwrap_err();
    assert_eq!(error.to_string(), "cannot find account `work` in the config (accounts: t)");
}
