//! Data files: lists and YAML read by the host, visible to rules and plugins as copies, bad
//! files reported with file and line.

use std::path::Path;
use std::sync::Arc;

use rhai::{Array, Dynamic, Map};

use super::*;
use crate::config::Config;
use crate::message::{MessageKey, Meta};
use crate::plan::Action;
use crate::rules::{Error, RuleSet};

fn write(dir: &Path, name: &str, text: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn load(files: &[(&str, &str)]) -> (DataSet, Vec<CompileError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), &format!("data/{name}"), text.as_bytes());
    }
    let mut errors = Vec::new();
    let set = DataSet::load(dir.path(), &mut errors);
    (set, errors)
}

fn strings(value: Dynamic) -> Vec<String> {
    value.cast::<Array>().into_iter().map(|d| d.into_string().unwrap()).collect()
}

fn where_(errors: &[CompileError]) -> Vec<(String, usize, usize)> {
    errors.iter().map(|e| (e.file.file_name().unwrap().to_string_lossy().into_owned(), e.line, e.column)).collect()
}

#[test]
fn a_txt_file_is_a_list_without_comments_and_blanks() {
    let text = "# VIPs\n\n  boss@example.com  \n@board.example.com # the board\n*.family.example.com\nodd#tag@example.com\n   # indented comment\n";
    let (set, errors) = load(&[("vip.txt", text)]);
    assert!(errors.is_empty(), "{errors:?}");
    let want = ["boss@example.com", "@board.example.com", "*.family.example.com", "odd#tag@example.com"];
    assert_eq!(strings(set.get("vip").unwrap()), want);
    assert_eq!(set.names(), ["vip"]);
    assert!(set.get("other").is_none());
}

#[test]
fn a_yaml_file_keeps_its_shape() {
    let text = "domains: [a.example, b.example]\nscores:\n  spam: 5\n  ratio: 0.5\nenabled: true\nnothing: ~\n";
    let (set, errors) = load(&[("table.yaml", text), ("plain.yml", "- x\n- 2\n")]);
    assert!(errors.is_empty(), "{errors:?}");
    let table = set.get("table").unwrap().cast::<Map>();
    assert_eq!(strings(table["domains"].clone()), ["a.example", "b.example"]);
    let scores = table["scores"].clone().cast::<Map>();
    assert_eq!(scores["spam"].as_int(), Ok(5));
    assert_eq!(scores["ratio"].as_float(), Ok(0.5));
    assert_eq!(table["enabled"].as_bool(), Ok(true));
    assert!(table["nothing"].is_unit());
    let plain = set.get("plain").unwrap().cast::<Array>();
    assert_eq!(plain.len(), 2);
    assert_eq!(plain[1].as_int(), Ok(2));
}

#[test]
fn bad_files_are_reported_with_file_and_line() {
    let (set, errors) = load(&[
        ("a-bad.yaml", "ok: 1\nlist: [1, 2\nnext: 3\n"),
        ("b-dup.yaml", "x: 1\ny: 2\nx: 3\n"),
        ("c-same.txt", "a\n"),
        ("c-same.yaml", "- b\n"),
        ("good.txt", "fine\n"),
    ]);
    let got = where_(&errors);
    assert_eq!(got[0].0, "a-bad.yaml");
    assert!(got[0].1 >= 2, "the error is at or after the unclosed list: {errors:?}");
    assert!(errors[0].message.starts_with("not valid YAML"), "{:?}", errors[0]);
    assert_eq!(got[1], ("b-dup.yaml".to_owned(), 3, 1));
    assert_eq!(errors[1].message, "duplicate key `x`");
    assert_eq!(got[2].0, "c-same.yaml");
    assert!(errors[2].message.contains("a second data file named `c-same`"), "{:?}", errors[2]);
    assert_eq!(errors.len(), 3);
    assert_eq!(set.names(), ["c-same", "good"], "good files load beside bad ones");
}

#[test]
fn invalid_utf8_and_oversized_files_are_reported_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "data/latin1.txt", b"one\ntwo\nthr\xe9e\n");
    let big: String = (0..=MAX_COLLECTION_SIZE).map(|i| format!("user{i}@example.com\n")).collect();
    write(dir.path(), "data/big.txt", big.as_bytes());
    let mut errors = Vec::new();
    DataSet::load(dir.path(), &mut errors);
    let got = where_(&errors);
    assert_eq!(got, [("big.txt".to_owned(), MAX_COLLECTION_SIZE + 1, 1), ("latin1.txt".to_owned(), 3, 4)]);
    assert!(errors[0].message.contains("too large"), "{:?}", errors[0]);
    assert!(errors[1].message.contains("not valid UTF-8"), "{:?}", errors[1]);
}

#[test]
fn a_bad_data_file_fails_the_rules_compile() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/data/senders.yaml", b"a: [\n");
    write(dir.path(), "rules/r.rhai", b"let x = 1;\n");
    let config = Config::from_yaml("accounts: {}\n", &dir.path().join("t.yaml")).unwrap();
    let Err(Error::Compile(errors)) = RuleSet::compile(&config) else { panic!("a bad data file must fail") };
    assert!(errors[0].file.ends_with("rules/data/senders.yaml"), "{errors:?}");
    assert!(errors[0].line >= 1, "{errors:?}");
}

fn evaluate(files: &[(&str, &str)]) -> crate::rules::Evaluation {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), name, text.as_bytes());
    }
    let config = Config::from_yaml("accounts: {}\n", &dir.path().join("t.yaml")).unwrap();
    let rules = RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"));
    let meta = Meta::new(MessageKey::new("a", "INBOX", 1, 1));
    let view = Arc::new(crate::message::parse(b"From: Boss <boss@example.com>\r\nSubject: hi\r\n\r\nx\r\n", meta));
    rules.evaluate(&view, &[], chrono::Utc::now())
}

#[test]
fn rules_and_plugins_read_data_and_cannot_change_it() {
    let evaluation = evaluate(&[
        ("rules/data/vip.txt", "boss@example.com\n"),
        ("rules/data/folders.yaml", "vip: People/VIP\n"),
        ("plugins/check.rhai", "fn is_vip(address) { data(\"vip\").contains(address) }\n"),
        // One rule changes its copy; the next still sees the file's one entry.
        ("rules/10-meddle.rhai", "let v = data(\"vip\"); v.push(\"x\"); v.clear();\n"),
        (
            "rules/20-use.rhai",
            "import \"check\" as check;\nif check::is_vip(msg.from.address) && data(\"vip\").len() == 1 { move_to(data(\"folders\").vip); }\n",
        ),
    ]);
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    let actions: Vec<&Action> = evaluation.decisions.iter().map(|d| &d.action).collect();
    assert_eq!(actions, [&Action::Move { mailbox: "People/VIP".into() }]);
}

#[test]
fn an_unknown_data_name_fails_the_rule_saying_what_there_is() {
    let evaluation = evaluate(&[("rules/data/vip.txt", "a\n"), ("rules/r.rhai", "let x = data(\"vips\");\n")]);
    let error = &evaluation.failures[0].error;
    assert!(error.contains("no data file named `vips` in rules/data/ (there are `vip`)"), "{error}");
    assert!(error.contains("line 1"), "{error}");
}

/// A symlink out of `rules/data` (to `/etc/passwd`, say) is refused at load naming the file
/// and where it leads, like a plugin's; one to another file inside the folder, or a data folder
/// that is itself a symlink, is fine.
#[test]
fn a_data_file_leading_out_of_the_data_directory_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", b"root:x:0:0\n");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "data/inside.txt", b"a@example.com\n");
    let data = dir.path().join(DIR);
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), data.join("x.txt")).unwrap();
    std::os::unix::fs::symlink("inside.txt", data.join("alias.txt")).unwrap();
    let mut errors = Vec::new();
    let set = DataSet::load(dir.path(), &mut errors);
    assert!(set.get("x").is_none(), "the outside file was read");
    assert_eq!(strings(set.get("alias").unwrap()), ["a@example.com"]);
    assert_eq!(where_(&errors), [("x.txt".to_owned(), 0, 0)], "{errors:?}");
    let target = outside.path().canonicalize().unwrap().join("secret.txt");
    let message = &errors[0].message;
    assert!(message.starts_with("data file is outside the data directory: "), "{message}");
    assert!(message.contains(&format!("{} leads to {}", data.join("x.txt").display(), target.display())), "{message}");

    // The data folder itself a symlink to elsewhere: its files are inside it.
    let rules = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&data, rules.path().join(DIR)).unwrap();
    std::fs::remove_file(data.join("x.txt")).unwrap();
    let mut errors = Vec::new();
    let set = DataSet::load(rules.path(), &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.names(), ["alias", "inside"]);
}
