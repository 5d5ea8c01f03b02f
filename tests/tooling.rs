//! The rule tooling as users run it: `tidings test` over the sample messages, the shipped
//! fixtures and the corpus (plans printed, diffs, JSON lines, exit statuses), and
//! `tidings dry-run` against a real Dovecot mailbox of corpus messages (a correct summary, and
//! the mailbox exactly as it was).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::rules_examples::{corpus_dir, eml_files};

fn tidings() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    cmd.env_remove("TIDINGS_CONFIG").env_remove("RUST_LOG");
    cmd
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Exit code, stdout, stderr.
fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// A config with the shipped rules and plugins and no account at all.
fn shipped_config(dir: &Path) -> PathBuf {
    let path = dir.join("tidings.yaml");
    let yaml = format!("rules: {0}/rules\nplugins: {0}/plugins\naccounts: {{}}\n", repo().display());
    std::fs::write(&path, yaml).unwrap();
    path
}

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn test_prints_the_plan_of_every_sample_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let (code, stdout, stderr) = run(tidings().arg("test").arg("-c").arg(&config).arg(repo().join("examples/mail")));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for expected in [
        "1-github-review.eml\n  rules matched: 10-notifications.rhai (stopped)\n",
        "  3. move -> Notifications/GitHub   (10-notifications.rhai)\n",
        "3-list-post.eml\n  rules matched: 30-lists.rhai (stopped)\n  1. move -> Lists/rust-users   (30-lists.rhai)\n",
        // 45-digest.rhai collects a line for the daily digest: its long description does not widen
        // the column of the short ones (no line is padded past 40 characters of action).
        "4-newsletter.eml\n  rules matched: 40-newsletters.rhai, 45-digest.rhai\n  1. add flags \\Seen       (40-newsletters.rhai)\n",
        "  3. collect -> digest data={\"from\":\"news@digest.example\",\"subject\":…   (45-digest.rhai)\n",
        "  1. move -> Überweisungen/2026   (20-receipts.rhai)\n",
        "6-personal.eml\n  rules matched: none\n  plan: nothing to do\n",
        "messages, 0 rule failures\n",
    ] {
        assert!(stdout.contains(expected), "expected {expected:?} in:\n{stdout}");
    }
}

#[test]
fn the_shipped_fixtures_pass_and_cover_every_rule_and_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let (code, stdout, stderr) = run(tidings().args(["test", "--json", "-c"]).arg(&config));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let mut matched = BTreeSet::new();
    for line in json_lines(&stdout) {
        assert_eq!(line["ok"], true, "{line}");
        matched.extend(line["rules_matched"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()));
    }
    let names = |dir: &str| -> BTreeSet<String> {
        let entries = std::fs::read_dir(repo().join(dir)).unwrap().map(|e| e.unwrap().file_name());
        entries.map(|n| n.to_string_lossy().into_owned()).filter(|n| n.ends_with(".rhai")).collect()
    };
    // The live rules and the schedule rules in rules/sweeps/ (fixtures with `rule:`).
    let mut shipped = names("rules");
    shipped.extend(names("rules/sweeps").into_iter().map(|n| format!("sweeps/{n}")));
    assert_eq!(matched, shipped, "every shipped rule needs a fixture case in rules/tests/");
    let imported: String =
        matched.iter().map(|r| std::fs::read_to_string(repo().join("rules").join(r)).unwrap()).collect();
    for plugin in names("plugins") {
        let import = format!("import \"{}\"", plugin.trim_end_matches(".rhai"));
        assert!(imported.contains(&import), "plugin {plugin} is imported by no rule that a fixture exercises");
    }
}

#[test]
fn a_fixture_that_differs_fails_with_a_diff_naming_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let fixture = dir.path().join("lists.yaml");
    let sample = repo().join("examples/mail/3-list-post.eml");
    let yaml = format!(
        "cases:\n  - name: the wrong folder\n    message: {0}\n    expect: [move: Lists/wrong]\n  \
         - message: {0}\n    expect: [move: Lists/rust-users]\n    stopped_by: 30-lists.rhai\n",
        sample.display()
    );
    std::fs::write(&fixture, yaml).unwrap();
    let (code, stdout, stderr) = run(tidings().arg("test").arg("-c").arg(&config).arg(&fixture));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let shown = fixture.display();
    let expected = format!(
        "{shown}\n  FAIL  case 1: the wrong folder\n        plan (- expected, + got):\n          \
         - move: Lists/wrong\n          + move: Lists/rust-users\n  ok    case 2\n"
    );
    assert!(stdout.contains(&expected), "expected:\n{expected}\nin:\n{stdout}");
    assert!(stdout.contains(&format!("1 failed\n  FAILED {shown}: case 1: the wrong folder\n")), "{stdout}");
}

#[test]
fn json_lines_carry_the_plan_conflicts_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    // The receipts rule files a transfer by year; the newsletter rule moves it later: a conflict.
    let conflict = dir.path().join("bulk-transfer.eml");
    let raw = "From: Bank <news@bank.example>\nSubject: Ihre \u{dc}berweisung\nDate: Tue, 24 Nov 2026 10:00:00 +0100\n\
               Precedence: bulk\nList-Unsubscribe: <https://bank.example/u>\n\n120,00 EUR\n";
    std::fs::write(&conflict, raw).unwrap();
    let newsletter = repo().join("examples/mail/4-newsletter.eml");
    let (code, stdout, stderr) =
        run(tidings().args(["test", "--json", "-c"]).arg(&config).arg(&newsletter).arg(&conflict));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(stdout.starts_with(&format!("{{\"file\":\"{}\",\"rules_matched\":", newsletter.display())), "{stdout}");
    let keys: Vec<&str> = lines[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["actions", "errors", "file", "overridden", "rules_matched", "stopped_by"]);
    let seen = serde_json::json!({"rule": "40-newsletters.rhai", "kind": "add_flags", "flags": ["\\Seen"]});
    assert_eq!(lines[0]["actions"][0], seen);
    assert_eq!(
        lines[1]["actions"][1],
        serde_json::json!({"rule": "40-newsletters.rhai", "kind": "move", "mailbox": "Newsletters"})
    );
    let overridden = serde_json::json!([{"rule": "20-receipts.rhai", "kind": "move", "mailbox": "Überweisungen/2026"}]);
    assert_eq!(lines[1]["overridden"], overridden);
    let (_, text, _) = run(tidings().arg("test").arg("-c").arg(&config).arg(&conflict));
    let line = "conflict: move -> Überweisungen/2026 (20-receipts.rhai) overridden by move -> Newsletters (40-newsletters.rhai)";
    assert!(text.contains(line), "{text}");
}

#[test]
fn wrong_input_exits_2_and_a_failing_rule_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let config = dir.path().join("tidings.yaml");
    std::fs::write(&config, "accounts: {}\n").unwrap();
    let sample = repo().join("examples/mail/6-personal.eml");
    let test = |args: &[&Path]| run(tidings().arg("test").arg("-c").arg(&config).args(args));

    let (code, _, stderr) = test(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot find anything to test: no PATH given and no *.yaml fixtures in"), "{stderr}");
    let (code, _, stderr) = test(&[&dir.path().join("missing.eml")]);
    assert_eq!((code, stderr.contains("error: cannot read ") && stderr.contains("missing.eml")), (2, true), "{stderr}");
    let fixture = dir.path().join("bad.yaml");
    std::fs::write(&fixture, "cases:\n  - message: {raw: x}\n    expect: [mvoe: A]\n").unwrap();
    let (code, _, stderr) = test(&[&fixture]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.yaml: case 1: expect: `mvoe` is not an action: unknown variant `mvoe`"), "{stderr}");

    std::fs::write(rules.join("fails.rhai"), "if msg.subject.len() > 0 { throw \"no\"; }\n").unwrap();
    let (code, stdout, stderr) = test(&[&sample]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("  error: fails.rhai: Runtime error: no (line 1") && stdout.contains("1 rule failure"),
        "{stdout}"
    );

    std::fs::write(rules.join("broken.rhai"), "let x = ;\n").unwrap();
    let (code, _, stderr) = test(&[&sample]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot compile rules") && stderr.contains("broken.rhai:1:"), "{stderr}");
}

/// The corpus through `tidings test --json`: one line per message, no panic, exit 0.
#[test]
fn the_corpus_goes_through_tidings_test_json() {
    let Some(corpus) = corpus_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let files = eml_files(&corpus);
    let started = Instant::now();
    let (code, stdout, stderr) = run(tidings().args(["test", "--json", "-c"]).arg(&config).arg(&corpus));
    let took = started.elapsed();
    assert_eq!(code, 0, "{}\n{stderr}", &stdout[stdout.len().saturating_sub(3000)..]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), files.len(), "one JSON line per message");
    let named: Vec<PathBuf> = lines.iter().map(|l| PathBuf::from(l["file"].as_str().unwrap())).collect();
    assert_eq!(named, files, "in file order");
    let planned = lines.iter().filter(|l| !l["actions"].as_array().unwrap().is_empty()).count();
    eprintln!(
        "tidings test --json over the corpus: {} messages ({planned} with a plan) in {took:.2?}: {:.0} messages/s",
        files.len(),
        files.len() as f64 / took.as_secs_f64()
    );
}

#[test]
fn dry_run_refuses_an_unknown_account_or_a_bad_option_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tidings.yaml");
    let yaml = "accounts:\n  a:\n    imap: { host: 127.0.0.1, port: 9 }\n    username: u\n    password_env: X\n  \
                b:\n    imap: { host: 127.0.0.1, port: 9 }\n    username: u\n    password_env: X\n";
    std::fs::write(&config, yaml).unwrap();
    let dry_run = |args: &[&str]| run(tidings().arg("dry-run").arg("-c").arg(&config).args(args));
    let (code, _, stderr) = dry_run(&["--account", "nope"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot find account `nope` in the config (accounts: a, b)"), "{stderr}");
    let (code, _, stderr) = dry_run(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot use --account: the config has 2 accounts; name one of: a, b"), "{stderr}");
    let (code, _, stderr) = dry_run(&["--account", "a", "--since", "30"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot use --since 30: "), "{stderr}");
    let (code, _, stderr) = dry_run(&["--account", "a", "--since", "30d", "--search", "ALL"]);
    assert_eq!(code, 2, "clap refuses two selections: {stderr}");
}

#[path = "tooling_dry_run.rs"]
mod dry_run;
