//! `tidings test`: the live rules over `.eml` files (folders recursively) and over fixtures,
//! with no account and no network.
//!
//! For each message: the rules that matched, the plan, the overridden dispositions and the
//! rule failures, for people or as one JSON object per line. For each fixture case: whether
//! the plan is the expected one, with a readable diff when it is not. The caller turns the
//! [`Outcome`] into an exit status.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::fixtures::{Case, Fixture};
use super::report::{self, ErrorJson, VerdictJson};
use super::{Error, FixtureProblem, Verdict};
use crate::config::Config;
use crate::message::{MessageKey, Meta};
use crate::rules::{Rule, RuleSet};

/// What to test.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `.eml` files, folders (searched recursively for `*.eml`) and fixture files
    /// (`*.yaml`, `*.yml`). Empty: the fixtures in `<rules>/tests/`.
    pub paths: Vec<PathBuf>,
    /// One JSON object per message and per fixture case, instead of text.
    pub json: bool,
    /// The account messages are evaluated for (its `rules:` globs apply); `test` if `None`.
    pub account: Option<String>,
    /// The mailbox messages are said to be in.
    pub mailbox: String,
}

/// What a test run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Message files evaluated.
    pub messages: usize,
    /// Message files that could not be read.
    pub unreadable: usize,
    /// Rule failures on message files (fixtures say which failures they expect).
    pub rule_failures: usize,
    /// Fixture cases run.
    pub cases: usize,
    /// Fixture cases whose result differed from the expected one, as `file: case N: name`.
    pub cases_failed: Vec<String>,
}

impl Outcome {
    /// Whether everything passed: every file read, no rule failed, every case as expected.
    pub fn passed(&self) -> bool {
        self.unreadable == 0 && self.rule_failures == 0 && self.cases_failed.is_empty()
    }
}

/// Runs the test: loads every fixture first (a broken one stops the run before anything is
/// evaluated), then evaluates the message files, then the fixture cases.
pub fn run(config: &Config, rules: &RuleSet, options: &Options, out: &mut dyn Write) -> Result<Outcome, Error> {
    let (files, fixture_paths) = inputs(config, &options.paths)?;
    let now = Utc::now();
    let mut problems = Vec::new();
    let mut fixtures = Vec::new();
    for path in &fixture_paths {
        match Fixture::load(path, now) {
            Ok(fixture) => fixtures.push(fixture),
            Err(found) => problems.extend(found),
        }
    }
    let scheduled = schedule_rules(config, rules, &fixtures, &mut problems);
    if !problems.is_empty() {
        return Err(Error::Fixtures(problems));
    }
    let mut outcome = Outcome::default();
    let account = options.account.clone().unwrap_or_else(|| "test".to_owned());
    let target = Target {
        globs: globs(config, &account),
        config_account: config.account(&account).cloned(),
        account,
        mailbox: options.mailbox.clone(),
        now,
    };
    // One message at a time: evaluating on several threads at once makes Rhai contend for the
    // lock on a plugin's `global::` constants, and past a few retries it panics (rhai 1.27).
    for (i, path) in files.iter().enumerate() {
        let verdict = judge_file(rules, &target, i + 1, path);
        write_message(out, path, &verdict, options.json)?;
        outcome.messages += 1;
        match verdict {
            Ok(verdict) => outcome.rule_failures += verdict.failures.len(),
            Err(_) => outcome.unreadable += 1,
        }
    }
    for fixture in &fixtures {
        let rule = fixture.rule.as_ref().and_then(|name| scheduled.get(name));
        run_fixture(config, rules, fixture, rule, options.json, out, &mut outcome)?;
    }
    if !options.json {
        write_totals(out, &outcome)?;
    }
    Ok(outcome)
}

/// The schedule rules the fixtures name, compiled with the rule set's engine, plugins and data
/// files, whether or not a schedule in the config names them: a sweep can be tested before any
/// schedule runs it. One that does not compile is a problem of the fixture naming it.
fn schedule_rules(
    config: &Config,
    rules: &RuleSet,
    fixtures: &[Fixture],
    problems: &mut Vec<FixtureProblem>,
) -> BTreeMap<String, Rule> {
    let mut compiled = BTreeMap::new();
    for fixture in fixtures {
        let Some(name) = &fixture.rule else { continue };
        if compiled.contains_key(name) {
            continue;
        }
        match rules.compile_rule(&config.rules_dir, name) {
            Ok(rule) => {
                compiled.insert(name.clone(), rule);
            }
            Err(e) => problems.push(FixtureProblem {
                path: fixture.path.clone(),
                case: None,
                message: format!("rule {name}: {}:{}:{}: {}", e.file.display(), e.line, e.column, e.message),
            }),
        }
    }
    compiled
}

/// Where message files are said to be, and when.
struct Target {
    account: String,
    /// The account's config, when it has one: the reply guards that need it apply then.
    config_account: Option<crate::config::Account>,
    mailbox: String,
    globs: Vec<String>,
    now: DateTime<Utc>,
}

/// The account's `rules:` globs; none (every rule) for an account the config lacks.
fn globs(config: &Config, account: &str) -> Vec<String> {
    config.account(account).map(|a| a.rules.clone()).unwrap_or_default()
}

/// Splits the paths into message files and fixtures; no paths means `<rules>/tests/*.yaml`.
fn inputs(config: &Config, paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Error> {
    let (mut files, mut fixtures) = (Vec::new(), Vec::new());
    if paths.is_empty() {
        let dir = config.rules_dir.join("tests");
        if dir.is_dir() {
            walk(&dir, &mut fixtures, is_fixture)?;
        }
        if fixtures.is_empty() {
            return Err(Error::NothingToTest { dir });
        }
        return Ok((files, fixtures));
    }
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| Error::ReadPath { path: path.clone(), source })?;
        if meta.is_dir() {
            walk(path, &mut files, |p| p.extension().is_some_and(|e| e == "eml"))?;
        } else if is_fixture(path) {
            fixtures.push(path.clone());
        } else {
            files.push(path.clone());
        }
    }
    Ok((files, fixtures))
}

fn is_fixture(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// Adds the files under `dir` that `keep` accepts, recursively, sorted (per folder, files
/// and folders by name). Symbolic links to folders are not followed, so a loop cannot hang.
fn walk(dir: &Path, found: &mut Vec<PathBuf>, keep: fn(&Path) -> bool) -> Result<(), Error> {
    let read_error = |source| Error::ReadPath { path: dir.to_owned(), source };
    let mut entries = std::fs::read_dir(dir).map_err(read_error)?.collect::<Result<Vec<_>, _>>().map_err(read_error)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, found, keep)?;
        } else if path.is_file() && keep(&path) {
            found.push(path);
        }
    }
    Ok(())
}

fn judge_file(rules: &RuleSet, target: &Target, uid: usize, path: &Path) -> Result<Verdict, String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read message: {e}"))?;
    let uid = u32::try_from(uid).unwrap_or(u32::MAX);
    let key = MessageKey::new(target.account.clone(), target.mailbox.clone(), 1, uid);
    let view = Arc::new(crate::message::parse(&raw, Meta::new(key)));
    Ok(Verdict::judge(rules, &view, &target.globs, target.now).guard(target.config_account.as_ref()))
}

#[derive(Serialize)]
struct MessageLine<'a> {
    file: String,
    #[serde(flatten)]
    verdict: VerdictJson<'a>,
}

fn write_message(out: &mut dyn Write, path: &Path, verdict: &Result<Verdict, String>, json: bool) -> Result<(), Error> {
    let file = path.display().to_string();
    match (verdict, json) {
        (Ok(verdict), true) => report::write_json_line(out, &MessageLine { file, verdict: VerdictJson::new(verdict) })?,
        (Err(error), true) => {
            let verdict = VerdictJson {
                rules_matched: &[],
                stopped_by: None,
                actions: vec![],
                overridden: vec![],
                errors: vec![ErrorJson { rule: None, error }],
                printed: &[],
            };
            report::write_json_line(out, &MessageLine { file, verdict })?;
        }
        (Ok(verdict), false) => {
            writeln!(out, "{file}")?;
            report::write_verdict(out, verdict, "  ")?;
        }
        (Err(error), false) => writeln!(out, "{file}\n  error: {error}")?,
    }
    Ok(())
}

#[derive(Serialize)]
struct CaseLine<'a> {
    fixture: String,
    case: usize,
    name: Option<&'a str>,
    file: Option<String>,
    ok: bool,
    differences: &'a [String],
    #[serde(flatten)]
    verdict: VerdictJson<'a>,
}

fn run_fixture(
    config: &Config,
    rules: &RuleSet,
    fixture: &Fixture,
    scheduled: Option<&Rule>,
    json: bool,
    out: &mut dyn Write,
    outcome: &mut Outcome,
) -> Result<(), Error> {
    if !json {
        writeln!(out, "{}", tidy(&fixture.path).display())?;
    }
    for case in &fixture.cases {
        let view = case.view();
        let (verdict, read) = match (scheduled, &view) {
            (Some(rule), view) => Verdict::judge_scheduled(
                rules,
                rule,
                view.as_ref(),
                case.key(),
                &case.trigger,
                case.now,
                &case.collected,
            ),
            (None, Some(view)) => (Verdict::judge(rules, view, &globs(config, &case.account), case.now), Vec::new()),
            // The fixture refused to load a live case without a message.
            (None, None) => continue,
        };
        let verdict = verdict.guard(config.account(&case.account));
        let mut differences = case.check(&verdict);
        differences.extend(case.check_read(&read));
        outcome.cases += 1;
        if !differences.is_empty() {
            outcome.cases_failed.push(format!("{}: {}", tidy(&fixture.path).display(), case.title()));
        }
        if json {
            report::write_json_line(out, &case_line(fixture, case, &verdict, &differences))?;
        } else if differences.is_empty() {
            writeln!(out, "  ok    {}", case.title())?;
        } else {
            writeln!(out, "  FAIL  {}", case.title())?;
            for line in &differences {
                writeln!(out, "        {line}")?;
            }
        }
        if !json {
            for printed in &verdict.printed {
                writeln!(out, "        print ({}): {}", printed.rule, printed.text)?;
            }
        }
    }
    Ok(())
}

fn case_line<'a>(fixture: &Fixture, case: &'a Case, verdict: &'a Verdict, differences: &'a [String]) -> CaseLine<'a> {
    CaseLine {
        fixture: tidy(&fixture.path).display().to_string(),
        case: case.number,
        name: case.name.as_deref(),
        file: case.file.as_ref().map(|f| f.display().to_string()),
        ok: differences.is_empty(),
        differences,
        verdict: VerdictJson::new(verdict),
    }
}

fn write_totals(out: &mut dyn Write, outcome: &Outcome) -> std::io::Result<()> {
    let s = |n: usize| if n == 1 { "" } else { "s" };
    if outcome.messages > 0 {
        let (n, f) = (outcome.messages, outcome.rule_failures);
        write!(out, "\n{n} message{}, {f} rule failure{}", s(n), s(f))?;
        if outcome.unreadable > 0 {
            write!(out, ", {} unreadable", outcome.unreadable)?;
        }
        writeln!(out)?;
    }
    if outcome.cases > 0 {
        let (n, failed) = (outcome.cases, outcome.cases_failed.len());
        writeln!(out, "\nfixtures: {n} case{}, {} passed, {failed} failed", s(n), n - failed)?;
        for case in &outcome.cases_failed {
            writeln!(out, "  FAILED {case}")?;
        }
    }
    Ok(())
}

/// `examples/../rules/tests/a.yaml` as `rules/tests/a.yaml`, for display only (a lexical
/// shortening: it does not resolve symbolic links).
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir
                if matches!(out.components().next_back(), Some(std::path::Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped rules, with an account whose `rules:` globs select only 30-lists.rhai.
    fn lists_only() -> (Config, RuleSet) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let yaml = "rules: rules\nplugins: plugins\naccounts:\n  lists-only:\n    imap: { host: h }\n    \
                    username: u\n    password_env: UNSET\n";
        let mut config = Config::from_yaml(yaml, &repo.join("tidings.yaml")).unwrap();
        config.accounts[0].rules = vec!["30-*".into()];
        let rules = RuleSet::compile(&config).unwrap();
        (config, rules)
    }

    #[test]
    fn the_account_given_brings_its_rule_globs() {
        let (config, rules) = lists_only();
        let github = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mail/1-github-review.eml");
        let dir = tempfile::tempdir().unwrap();
        let fixture = dir.path().join("f.yaml");
        let yaml = format!(
            "account: lists-only\ncases:\n  - message: {}\n    expect: [move: Lists/widgets]\n",
            github.display()
        );
        std::fs::write(&fixture, yaml).unwrap();
        let options = Options {
            paths: vec![github.clone(), fixture],
            account: Some("lists-only".into()),
            mailbox: "INBOX".into(),
            json: false,
        };
        let mut out = Vec::new();
        let outcome = run(&config, &rules, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        // Only 30-lists.rhai runs for this account: the notification rule does not file it first.
        assert!(text.contains("  rules matched: 30-lists.rhai (stopped)\n  1. move -> Lists/widgets"), "{text}");
        assert!(outcome.passed() && outcome.cases == 1, "{outcome:?}\n{text}");
        let options = Options { account: None, ..options };
        let mut out = Vec::new();
        let outcome = run(&config, &rules, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("move -> Notifications/GitHub"), "without --account every rule runs: {text}");
        assert!(outcome.passed(), "the fixture names its account itself: {text}");
    }

    /// A rule that replies to everything, and account `work` (me@work.example) in the config.
    fn replying() -> (tempfile::TempDir, Config, RuleSet) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules/tests")).unwrap();
        std::fs::write(dir.path().join("rules/away.rhai"), "reply(\"Away until Monday.\");\n").unwrap();
        let yaml = "accounts:\n  work:\n    imap: { host: h }\n    username: u\n    password_env: P\n    \
                    from: me@work.example\n";
        let config = Config::from_yaml(yaml, &dir.path().join("tidings.yaml")).unwrap();
        let rules = RuleSet::compile(&config).unwrap();
        (dir, config, rules)
    }

    const FIXTURE: &str = "\
account: work
cases:
  - name: a person writing to the account gets the reply
    return_path: ann@ann.example
    message: {raw: \"From: ann@ann.example\\nTo: me@work.example\\nSubject: hi\\n\\nhello\\n\"}
    expect: [reply: {to: ann@ann.example}]
    suppressed: []
  - name: list mail gets none
    return_path: ann@ann.example
    message: {raw: \"From: ann@ann.example\\nTo: me@work.example\\nList-Id: <l.example>\\nSubject: hi\\n\\nx\\n\"}
    expect: [reply]
    suppressed: [list-id]
  - name: mail that came by Bcc gets none (a guard that needs the account)
    return_path: ann@ann.example
    message: {raw: \"From: ann@ann.example\\nTo: team@ann.example\\nSubject: hi\\n\\nx\\n\"}
    expect: [reply]
    suppressed: [none of the account's addresses]
  - name: a bounce gets none, and the rule does not fail
    return_path: <>
    message: {raw: \"From: \\\"Postmaster\\\" <>\\nTo: me@work.example\\nSubject: failed\\n\\nx\\n\"}
    expect: [reply: {to: \"\"}]
    suppressed: [envelope sender is <>]
";

    #[test]
    fn replies_the_guards_would_stop_are_shown_suppressed_with_the_reason() {
        let (dir, config, rules) = replying();
        let fixture = dir.path().join("rules/tests/away.yaml");
        std::fs::write(&fixture, FIXTURE).unwrap();
        let list = dir.path().join("list.eml");
        let raw = "Return-Path: <news@shop.example>\nFrom: news@shop.example\nTo: me@work.example\nPrecedence: bulk\nSubject: Deals\n\nx\n";
        std::fs::write(&list, raw).unwrap();
        let options =
            Options { paths: vec![list.clone(), fixture.clone()], mailbox: "INBOX".into(), ..Options::default() };
        let mut out = Vec::new();
        let outcome = run(&config, &rules, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(outcome.passed() && outcome.cases == 4, "{outcome:?}\n{text}");
        assert!(text.contains("   suppressed: the message has Precedence: bulk\n"), "{text}");
        // As JSON: the reason beside the action.
        let options = Options { paths: vec![list], json: true, ..options };
        let mut out = Vec::new();
        run(&config, &rules, &options, &mut out).unwrap();
        let line: serde_json::Value = serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap()).unwrap();
        assert_eq!(line["actions"][0]["kind"], "reply");
        assert_eq!(line["actions"][0]["suppressed"], "the message has Precedence: bulk");
        // A case expecting the wrong thing fails and says what it got.
        let wrong = FIXTURE.replace("suppressed: []", "suppressed: [bulk]");
        std::fs::write(&fixture, wrong).unwrap();
        let options = Options { paths: vec![fixture], mailbox: "INBOX".into(), ..Options::default() };
        let mut out = Vec::new();
        let outcome = run(&config, &rules, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(outcome.cases_failed.len(), 1, "{text}");
        assert!(text.contains("suppressed: expected [\"bulk\"], got []"), "{text}");
    }

    /// A fixture asserts that a forward is stopped by this account's loop marker, and why.
    #[test]
    fn a_fixture_asserts_a_forward_the_loop_marker_stops() {
        let (dir, config, _) = replying();
        std::fs::write(dir.path().join("rules/away.rhai"), "forward(\"b@b.example\");\n").unwrap();
        let rules = RuleSet::compile(&config).unwrap();
        let fixture = dir.path().join("rules/tests/loop.yaml");
        let yaml = "account: work\ncases:\n  - name: back from B with our marker\n    message: {raw: \"X-Loop: me@work.example\\nFrom: b@b.example\\nTo: me@work.example\\nSubject: x\\n\\nx\\n\"}\n    expect: [forward: {to: [b@b.example]}]\n    suppressed: [this account's loop marker]\n  - name: a fresh message\n    message: {raw: \"From: ann@ann.example\\nTo: me@work.example\\nSubject: x\\n\\nx\\n\"}\n    expect: [forward]\n    suppressed: []\n";
        std::fs::write(&fixture, yaml).unwrap();
        let options = Options { paths: vec![fixture], mailbox: "INBOX".into(), ..Options::default() };
        let mut out = Vec::new();
        let outcome = run(&config, &rules, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(outcome.passed() && outcome.cases == 2, "{outcome:?}\n{text}");
    }

    #[test]
    fn without_the_account_in_the_config_only_the_message_guards_apply() {
        let (_dir, config, rules) = replying();
        let view = Arc::new(crate::message::parse(
            b"Return-Path: <ann@ann.example>\nFrom: ann@ann.example\nTo: team@ann.example\nSubject: hi\n\nx\n",
            Meta::new(MessageKey::new("elsewhere", "INBOX", 1, 1)),
        ));
        let verdict = Verdict::judge(&rules, &view, &[], Utc::now());
        assert!(verdict.clone().guard(None).suppressed.is_empty(), "Bcc cannot be told without the account");
        let guarded = verdict.guard(config.account("work"));
        assert_eq!(guarded.suppressed.len(), 1);
        assert!(guarded.suppressed(0).is_some_and(|r| r.contains("none of the account's addresses (me@work.example)")));
        assert_eq!(guarded.suppressed(1), None);
    }

    #[test]
    fn a_schedule_rule_runs_from_its_fixture_without_a_schedule_in_the_config() {
        let (dir, config, rules) = replying();
        std::fs::create_dir_all(dir.path().join("rules/sweeps")).unwrap();
        let sweep = "if msg == () { let n = collected(\"digest\").len(); if n > 0 { send(#{ to: \"me@work.example\", \
                     subject: `${n} new`, body: \"-\" }); } } else if msg.received.age_days >= 7 { archive(); }\n";
        std::fs::write(dir.path().join("rules/sweeps/old.rhai"), sweep).unwrap();
        let fixture = dir.path().join("rules/tests/old.yaml");
        let yaml = "rule: sweeps/old.rhai\nnow: 2026-11-27T07:00:00+01:00\ncases:\n  \
                    - message: {raw: \"Subject: a\\n\\nb\\n\"}\n    received: 2026-11-19T00:00:00Z\n    expect: [archive]\n  \
                    - message: {raw: \"Subject: a\\n\\nb\\n\"}\n    received: 2026-11-21T00:00:00Z\n    expect: []\n  \
                    - collected: {digest: [1, 2]}\n    expect: [send: {subject: 2 new}]\n    read: [digest]\n  \
                    - expect: [send]\n    read: []\n";
        std::fs::write(&fixture, yaml).unwrap();
        let options = Options { paths: vec![fixture], mailbox: "INBOX".into(), ..Options::default() };
        let mut out = Vec::new();
        let outcome = run(&config, &rules, &options, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(outcome.cases, 4, "{text}");
        assert_eq!(outcome.cases_failed.len(), 1, "{text}");
        assert!(text.contains("FAIL  case 4\n        plan (- expected, + got):\n          - send\n"), "{text}");
        assert!(text.contains("read: expected [], got [digest]"), "{text}");
        // The live rule (away.rhai) did not run on the sweep's messages.
        assert!(!text.contains("reply"), "{text}");
        // A schedule rule that does not compile is a problem of the fixture, before anything runs.
        std::fs::write(dir.path().join("rules/sweeps/old.rhai"), "archive(\n").unwrap();
        let error = run(&config, &rules, &options, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("rule sweeps/old.rhai:"), "{error}");
    }

    #[test]
    fn paths_are_shortened_for_display() {
        assert_eq!(tidy(Path::new("examples/../rules/tests/a.yaml")), Path::new("rules/tests/a.yaml"));
        assert_eq!(tidy(Path::new("../x/./y")), Path::new("../x/y"));
        assert_eq!(tidy(Path::new("/a/b/../c")), Path::new("/a/c"));
        assert_eq!(tidy(Path::new("a/..")), Path::new("."));
    }
}
