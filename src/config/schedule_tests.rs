//! Schedules in the config: what a correct entry becomes, and one positioned problem per mistake.

use std::path::Path;
use std::time::Duration;

use crate::config::{CatchUp, Config, Error, Problem, Run, Search};

fn load(yaml: &str) -> Result<Config, Error> {
    Config::from_yaml(yaml, Path::new("/etc/tidings/tidings.yaml"))
}

fn problems(yaml: &str) -> Vec<Problem> {
    match load(yaml) {
        Err(Error::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

const ACCOUNT: &str = "\
accounts:
  work:
    imap: { host: imap.example.com }
    username: me
    password_env: WORK_PASS
";

fn with_account(schedules: &str) -> String {
    format!("{ACCOUNT}schedules:\n{schedules}")
}

#[test]
fn a_sweep_is_read_with_defaults_filled_in() {
    let config = load(&with_account(
        r#"  archive:
    cron: "0 7 * * 1-5"
    timezone: Europe/Berlin
    account: work
    mailbox: Newsletters
    search: { older_than: 7d, seen: true, larger: 10k }
    rule: sweeps/archive.rhai
  tidy:
    cron: "@daily"
    account: work
    rule: sweeps/tidy.rhai
"#,
    ))
    .unwrap();
    let [archive, tidy] = config.schedules.as_slice() else { panic!("{:?}", config.schedules) };
    assert_eq!(
        (archive.name.as_str(), archive.cron_text.as_str(), archive.timezone, archive.mailbox.as_str()),
        ("archive", "0 7 * * 1-5", Some(chrono_tz::Europe::Berlin), "Newsletters")
    );
    assert_eq!(
        archive.search,
        Search {
            older_than: Some(Duration::from_secs(7 * 86_400)),
            seen: Some(true),
            larger: Some(10 << 10),
            ..Search::default()
        }
    );
    assert_eq!((archive.run, archive.catch_up), (Run::PerMessage, CatchUp::Once));
    assert_eq!((tidy.timezone, tidy.mailbox.as_str(), &tidy.search), (None, "INBOX", &Search::default()));
}

#[test]
fn run_once_and_per_message_are_read() {
    let config = load(&with_account(
        r#"  digest:
    cron: "0 18 * * *"
    account: work
    run: once
    rule: digests/daily.rhai
    catch_up: skip
  sweep:
    cron: "0 6 * * *"
    account: work
    run: per_message
    rule: sweeps/old.rhai
"#,
    ))
    .unwrap();
    let runs: Vec<(Run, CatchUp)> = config.schedules.iter().map(|s| (s.run, s.catch_up)).collect();
    assert_eq!(runs, [(Run::Once, CatchUp::Skip), (Run::PerMessage, CatchUp::Once)]);
}

#[test]
fn run_once_refuses_a_mailbox_and_a_search_where_they_are_written() {
    let found = problems(&with_account(
        r#"  digest:
    cron: "0 18 * * *"
    account: work
    run: once
    mailbox: Newsletters
    search: { seen: true }
    rule: digests/daily.rhai
"#,
    ));
    let got: Vec<(u32, u32, &str)> = found.iter().map(|p| (p.pos.line, p.pos.column, p.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (11, 5, "schedule `digest`: `mailbox` makes no sense with `run: once`"),
            (12, 5, "schedule `digest`: `search` makes no sense with `run: once`"),
        ],
        "{found:#?}"
    );
    assert!(found.iter().all(|p| p.hint.as_deref().is_some_and(|h| h.contains("per_message"))), "{found:#?}");
}

#[test]
fn an_unknown_run_is_refused_with_the_choices() {
    let found = problems(&with_account(
        r#"  digest:
    cron: "0 18 * * *"
    account: work
    run: twice
    rule: digests/daily.rhai
"#,
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].pos.line, 10, "{found:#?}");
    assert!(found[0].message.contains("run `twice` is not recognised"), "{found:?}");
    assert_eq!(found[0].hint.as_deref(), Some("use one of: per_message, once"));
}

#[test]
fn schedule_mistakes_each_name_the_schedule_and_line() {
    let found = problems(&with_account(
        r#"  s:
    cron: "61 * * * *"
    timezone: Europe/Atlantis
    account: home
    rule: top.rhai
    catch_up: twice
    search: { older_than: soon, raw_imap: ALL }
"#,
    ));
    let got: Vec<(u32, &str)> = found.iter().map(|p| (p.pos.line, p.message.as_str())).collect();
    let expected: &[(u32, &str)] = &[
        (13, "unknown key `raw_imap` in schedule `s`: search"),
        (13, "older_than"),
        (8, "cron `61 * * * *` is not valid"),
        (9, "`Europe/Atlantis` is not a time zone"),
        (10, "there is no account `home`"),
        (11, "must be a file in a subfolder"),
        (12, "catch_up `twice` is not recognised"),
    ];
    assert_eq!(found.len(), expected.len(), "{got:#?}");
    for (line, needle) in expected {
        assert!(
            got.iter().any(|(l, m)| l == line && m.contains(needle) && m.contains("schedule `s`")),
            "expected {needle:?} on line {line}, got {got:#?}"
        );
    }
}

#[test]
fn a_raw_search_that_cannot_be_sent_is_refused_where_written() {
    let found = problems(&with_account(
        r#"  s:
    cron: "0 7 * * *"
    account: work
    rule: sweeps/s.rhai
    search: { raw: 'OR FROM "a.example" FROM "b.example' }
  t:
    cron: "0 7 * * *"
    account: work
    rule: sweeps/t.rhai
    search: { raw: 'SUBJECT {5}' }
"#,
    ));
    let got: Vec<(u32, &str)> = found.iter().map(|p| (p.pos.line, p.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (11, "schedule `s`: search: raw: `raw` has a quote that is not closed"),
            (16, "schedule `t`: search: raw: `raw` cannot hold a literal (`{n}`); quote the string"),
        ],
        "{found:#?}"
    );
    let ok = load(&with_account(
        r#"  s:
    cron: "0 7 * * *"
    account: work
    rule: sweeps/s.rhai
    search: { raw: 'OR FROM "a.example" (FROM "b.example" UNSEEN)' }
"#,
    ))
    .unwrap();
    assert_eq!(ok.schedules[0].search.raw.as_deref(), Some(r#"OR FROM "a.example" (FROM "b.example" UNSEEN)"#));
}
