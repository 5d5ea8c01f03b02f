//! The shipped rules (`rules/*.rhai`, with `plugins/`) over the shipped sample messages
//! (`examples/mail/*.eml`): each gives exactly the plan a user would expect. No servers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidings::config::Config;
use tidings::message::{MessageKey, Meta};
use tidings::plan::{Action, Plan};
use tidings::rules::RuleSet;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's rules and plugins, through a config as a user would write it.
fn shipped_rules() -> RuleSet {
    let config =
        Config::from_yaml("rules: rules\nplugins: plugins\naccounts: {}\n", &repo().join("tidings.yaml")).unwrap();
    RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"))
}

fn plan_for(rules: &RuleSet, file: &Path) -> (Plan, Vec<String>) {
    plan_at(rules, file, chrono::Utc::now())
}

/// The plan of `file` for a message that arrived at `now`.
fn plan_at(rules: &RuleSet, file: &Path, now: chrono::DateTime<chrono::Utc>) -> (Plan, Vec<String>) {
    let raw = std::fs::read(file).unwrap();
    let key = MessageKey::new("demo", "INBOX", 1, 1);
    let meta = Meta::new(key.clone());
    let view = Arc::new(tidings::message::parse(&raw, meta));
    let evaluation = rules.evaluate(&view, &[], now);
    let failures = evaluation.failures.iter().map(|f| format!("{}: {}", f.rule, f.error)).collect();
    (Plan::build(key, evaluation.decisions), failures)
}

fn flags(names: &[&str]) -> Action {
    Action::AddFlags { flags: names.iter().map(|s| (*s).to_owned()).collect() }
}

fn moved(to: &str) -> Action {
    Action::Move { mailbox: to.to_owned() }
}

fn digest_line() -> Action {
    let data = serde_json::json!({"from": "news@digest.example", "subject": "This week: 10 things about IMAP IDLE"});
    Action::Collect { name: "digest".to_owned(), data }
}

#[test]
fn every_sample_message_gets_the_expected_plan() {
    let rules = shipped_rules();
    let expected: &[(&str, Vec<Action>)] = &[
        ("1-github-review.eml", vec![flags(&["GitHub"]), flags(&["\\Flagged"]), moved("Notifications/GitHub")]),
        ("2-receipt.eml", vec![flags(&["\\Flagged"]), flags(&["receipt"])]),
        ("3-list-post.eml", vec![moved("Lists/rust-users")]),
        // 45-digest.rhai adds a line for the daily digest (stored apart, never run on the mailbox).
        ("4-newsletter.eml", vec![flags(&["\\Seen"]), moved("Newsletters"), digest_line()]),
        ("5-bank.eml", vec![moved("Überweisungen/2026")]),
        ("6-personal.eml", vec![]),
        ("7-vip.eml", vec![flags(&["\\Flagged"]), flags(&["vip"])]),
    ];
    let mut files: Vec<String> = std::fs::read_dir(repo().join("examples/mail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    files.sort();
    let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, listed, "every sample message needs an expected plan here");
    for (file, want) in expected {
        let (plan, failures) = plan_for(&rules, &repo().join("examples/mail").join(file));
        assert!(failures.is_empty(), "{file}: rules failed: {failures:?}");
        let got: Vec<&Action> = plan.actions.iter().map(|p| &p.action).collect();
        let want: Vec<&Action> = want.iter().collect();
        assert_eq!(got, want, "{file}\nexpected: {want:#?}\ngot: {got:#?}");
    }
}

#[test]
fn every_shipped_rule_decides_something_for_some_sample() {
    let rules = shipped_rules();
    let mut used = std::collections::BTreeSet::new();
    // Today, and a day inside the away period of rules/data/out_of_office.yaml (in the past, so
    // that the shipped out-of-office rule replies to nothing today).
    let away = chrono::DateTime::parse_from_rfc3339("2025-12-29T10:00:00+01:00").unwrap().to_utc();
    for now in [chrono::Utc::now(), away] {
        for entry in std::fs::read_dir(repo().join("examples/mail")).unwrap() {
            let (plan, _) = plan_at(&rules, &entry.unwrap().path(), now);
            used.extend(plan.actions.into_iter().map(|p| p.rule));
        }
    }
    let all: std::collections::BTreeSet<String> = rules.live.iter().map(|r| r.name.clone()).collect();
    assert_eq!(used, all, "a shipped rule that no sample exercises is an untested rule");
}

/// Every corpus message through the shipped rules: no panic, no rule failure.
#[test]
fn the_corpus_goes_through_the_shipped_rules() {
    let Some(corpus) = corpus_dir() else { return };
    let rules = shipped_rules();
    let mut count = 0;
    let mut failures = Vec::new();
    for dir in ["real", "malformed"] {
        for path in eml_files(&corpus.join(dir)) {
            let (_, failed) = plan_for(&rules, &path);
            failures.extend(failed.into_iter().map(|f| format!("{}: {f}", path.display())));
            count += 1;
        }
    }
    eprintln!("corpus: {count} messages through the shipped rules");
    assert!(count > 3900, "expected the whole corpus (~3,960 messages), found {count}");
    assert!(failures.is_empty(), "{} rule failures, first: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
}

/// `$TIDINGS_CORPUS` or `../shared/corpus`. Absent: a failure under CI, a loud skip elsewhere.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TIDINGS_CORPUS").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/corpus"));
    if dir.join("real").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("the corpus is missing at {} and CI=true: corpus tests must run in CI", dir.display());
    }
    eprintln!("SKIPPED: corpus not found at {} (set TIDINGS_CORPUS)", dir.display());
    None
}

/// Every `.eml` under `dir`, recursively, sorted.
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "eml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The files whose ```rhai blocks are example rules a user may copy. README.md is left out while
/// it is being rewritten; its blocks are fragments of a list, not rules.
const DOCUMENTED: &[&str] = &["rules/README.md", "plugins/README.md", "docs/schedules.md", "docs/webhooks.md"];

/// The example rules of the docs: each ```rhai block, split where a `// rules/NAME.rhai` line
/// names the file a part belongs in. A name in a subfolder is a schedule's rule.
fn documented_rules() -> Vec<(String, String)> {
    let mut rules = Vec::new();
    for doc in DOCUMENTED {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        let stem = doc.replace(['/', '.'], "-");
        for (n, block) in text.split("```rhai\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap();
            let mut name = format!("docs-{stem}-{n}.rhai");
            let mut body = String::new();
            for line in block.lines() {
                let named = line
                    .strip_prefix("// rules/")
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(|f| f.trim_end_matches(':'));
                if let Some(file) = named.filter(|f| f.ends_with(".rhai")) {
                    if !body.trim().is_empty() {
                        rules.push((name, std::mem::take(&mut body)));
                    }
                    name = match file.split_once('/') {
                        Some((dir, file)) => format!("{dir}/docs-{stem}-{n}-{file}"),
                        None => format!("docs-{stem}-{n}-{file}"),
                    };
                }
                body.push_str(line);
                body.push('\n');
            }
            rules.push((name, body));
        }
    }
    rules
}

/// Every corpus message through the shipped rules and the docs' example rules, live and as a
/// sweep, as `tidings test` would run them: not one rule fails. Absent headers are the commonest
/// failure on real mail (`msg.list_id.contains("x")` without List-Id), so this is its proof.
#[test]
fn the_corpus_goes_through_the_shipped_and_documented_rules() {
    let Some(corpus) = corpus_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::create_dir_all(to).unwrap();
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    };
    for sub in ["rules", "rules/data", "rules/sweeps", "plugins"] {
        copy(&repo().join(sub), &dir.path().join(sub));
    }
    let documented = documented_rules();
    assert!(documented.len() >= 6, "the docs' example rules were not found: {documented:?}");
    let mut schedules = String::from("schedules:\n");
    let sweeps = std::fs::read_dir(repo().join("rules/sweeps")).unwrap().map(|e| {
        let path = e.unwrap().path();
        (format!("sweeps/{}", path.file_name().unwrap().to_string_lossy()), std::fs::read_to_string(path).unwrap())
    });
    // A schedule's rule that reads `collected` runs once without a message; the others sweep.
    let scheduled: Vec<(String, bool)> = sweeps
        .chain(documented.iter().filter(|(name, _)| name.contains('/')).cloned())
        .map(|(name, body)| (name, body.contains("collected(")))
        .collect();
    for (name, body) in &documented {
        let path = dir.path().join("rules").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    for (i, (rule, _)) in scheduled.iter().enumerate() {
        schedules.push_str(&format!("  s{i}: {{ cron: \"0 7 * * *\", account: a, rule: {rule}, run: once }}\n"));
    }
    let yaml = format!(
        "rules: rules\nplugins: plugins\naccounts:\n  a: {{ imap: {{ host: h }}, username: u, password_env: P }}\n\
         webhooks:\n  chat: {{ url: \"https://hooks.example/chat\" }}\n  accounting: {{ url: \"https://hooks.example/a\" }}\n\
         commands:\n  notify: {{ run: [\"true\"] }}\n{schedules}"
    );
    let config = Config::from_yaml(&yaml, &dir.path().join("tidings.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let rules = RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"));
    let documented_live = documented.iter().filter(|(n, _)| !n.contains('/')).count();
    assert_eq!(rules.live.len(), 7 + documented_live, "the shipped and documented live rules all compiled");
    let now = chrono::Utc::now();
    let trigger = tidings::rules::Trigger::Schedule { name: "s0".into(), fired_at: now };
    let collected = tidings::rules::Collected::default();
    let (mut count, mut failures) = (0, Vec::new());
    for sub in ["real", "malformed"] {
        for path in eml_files(&corpus.join(sub)) {
            let raw = std::fs::read(&path).unwrap();
            let view = Arc::new(tidings::message::parse(&raw, Meta::new(MessageKey::new("a", "INBOX", 1, 1))));
            let mut failed = rules.evaluate(&view, &[], now).failures;
            for (rule, _) in scheduled.iter().filter(|(_, once)| !once) {
                failed.extend(rules.evaluate_scheduled(rule, Some(&view), &trigger, now, &collected).failures);
            }
            failures.extend(failed.into_iter().map(|f| format!("{}: {}: {}", path.display(), f.rule, f.error)));
            count += 1;
        }
    }
    for (rule, _) in scheduled.iter().filter(|(_, once)| *once) {
        let once = rules.evaluate_scheduled(rule, None, &trigger, now, &collected);
        failures.extend(once.failures.into_iter().map(|f| format!("run once: {}: {}", f.rule, f.error)));
    }
    eprintln!(
        "corpus: {count} messages through {} live and {} scheduled rules ({} from the docs)",
        rules.live.len(),
        scheduled.len(),
        documented.len()
    );
    assert!(count > 3900, "expected the whole corpus (~3,960 messages), found {count}");
    assert!(failures.is_empty(), "{} rule failures, first: {:#?}", failures.len(), &failures[..failures.len().min(5)]);
}
