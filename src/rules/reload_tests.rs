//! Hot reload without a daemon: changes are swapped in whole, broken ones keep the old set,
//! and failure counts survive only for rules that did not change.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::message::{MessageKey, MessageView, Meta};
use crate::plan::Action;

/// Writes `text` and gives the file a modification time of its own: two writes within one
/// tick of the filesystem clock must still look like two versions.
fn write(dir: &Path, name: &str, text: &str) {
    static TICK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let tick = TICK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(tick)).unwrap();
}

fn start(dir: &Path) -> (Reloader, CurrentRules) {
    let config = Config::from_yaml("accounts: {}\n", &dir.join("tidings.yaml")).unwrap();
    Reloader::start(&config).unwrap_or_else(|e| panic!("{e}"))
}

fn view() -> Arc<MessageView> {
    let meta = Meta::new(MessageKey::new("a", "INBOX", 1, 1));
    Arc::new(crate::message::parse(b"From: a@b.example\r\nSubject: sort-me\r\n\r\nx\r\n", meta))
}

fn moves(rules: &CurrentRules) -> Vec<String> {
    let evaluation = rules.get().evaluate(&view(), &[], chrono::Utc::now());
    evaluation
        .decisions
        .iter()
        .filter_map(|d| match &d.action {
            Action::Move { mailbox } => Some(mailbox.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_changed_rule_is_swapped_in_and_a_broken_one_keeps_the_previous_set() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/sort.rhai", "move_to(\"A\");\n");
    let (mut reloader, rules) = start(dir.path());
    let before = rules.get();
    assert_eq!(reloader.check().await, Check::Unchanged);
    assert_eq!(moves(&rules), ["A"]);

    write(dir.path(), "rules/sort.rhai", "move_to(\"B\");\n");
    assert_eq!(reloader.check().await, Check::Reloaded(1));
    assert_eq!(moves(&rules), ["B"]);
    // A set taken before the swap is whole and unchanged: a batch in progress finishes with it.
    assert_eq!(before.evaluate(&view(), &[], chrono::Utc::now()).decisions.len(), 1);
    assert_eq!(reloader.check().await, Check::Unchanged, "nothing changed since");

    write(dir.path(), "rules/sort.rhai", "move_to(\"C\");\nlet broken = (;\n");
    assert_eq!(reloader.check().await, Check::Rejected);
    assert_eq!(moves(&rules), ["B"], "the previous set keeps running");
    assert_eq!(reloader.check().await, Check::Unchanged, "a rejected version is not retried every second");

    write(dir.path(), "rules/sort.rhai", "move_to(\"C\");\n");
    assert_eq!(reloader.check().await, Check::Reloaded(1));
    assert_eq!(moves(&rules), ["C"]);
}

#[tokio::test]
async fn adding_and_removing_rules_plugins_and_data_reloads() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/where.rhai", "fn folder() { \"One\" }\n");
    write(dir.path(), "rules/10-sort.rhai", "import \"where\" as w;\nmove_to(w::folder());\n");
    let (mut reloader, rules) = start(dir.path());
    assert_eq!(moves(&rules), ["One"]);

    write(dir.path(), "plugins/where.rhai", "fn folder() { \"Two\" }\n");
    assert_eq!(reloader.check().await, Check::Reloaded(1));
    assert_eq!(moves(&rules), ["Two"], "a changed plugin is recompiled");

    write(dir.path(), "rules/data/folders.txt", "Three\n");
    write(dir.path(), "rules/20-later.rhai", "move_to(data(\"folders\")[0]);\n");
    assert_eq!(reloader.check().await, Check::Reloaded(2));
    assert_eq!(moves(&rules), ["Two", "Three"]);

    write(dir.path(), "rules/data/folders.txt", "Four\n");
    assert_eq!(reloader.check().await, Check::Reloaded(2));
    assert_eq!(moves(&rules), ["Two", "Four"], "a changed data file is read again");

    std::fs::remove_file(dir.path().join("rules/10-sort.rhai")).unwrap();
    assert_eq!(reloader.check().await, Check::Reloaded(1));
    assert_eq!(moves(&rules), ["Four"]);

    std::fs::remove_file(dir.path().join("plugins/where.rhai")).unwrap();
    assert_eq!(reloader.check().await, Check::Reloaded(1), "an unused plugin may go");
    write(dir.path(), "rules/30-gone.rhai", "import \"where\" as w;\n");
    assert_eq!(reloader.check().await, Check::Rejected, "a rule needing a removed plugin does not load");
    assert_eq!(moves(&rules), ["Four"]);
}

#[tokio::test]
async fn editor_swap_files_fixtures_and_other_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/sort.rhai", "move_to(\"A\");\n");
    let (mut reloader, _rules) = start(dir.path());
    write(dir.path(), "rules/.sort.rhai.swp", "binary junk");
    write(dir.path(), "rules/sort.rhai~", "move_to(\"old\");\n");
    write(dir.path(), "rules/README.md", "# notes\n");
    write(dir.path(), "rules/tests/sort.yaml", "cases: []\n");
    write(dir.path(), "rules/notes.txt", "not data: data files live in rules/data/\n");
    assert_eq!(reloader.check().await, Check::Unchanged);
}

#[tokio::test]
async fn run_polls_and_swaps_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/sort.rhai", "move_to(\"A\");\n");
    let (reloader, rules) = start(dir.path());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(reloader.run(stopping));
    write(dir.path(), "rules/sort.rhai", "move_to(\"B\");\n");
    let deadline = std::time::Instant::now() + POLL_INTERVAL * 5;
    while moves(&rules) != ["B"] {
        assert!(std::time::Instant::now() < deadline, "not reloaded within {:?}", POLL_INTERVAL * 5);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(1), task).await.expect("stops at once on shutdown").unwrap();
}
