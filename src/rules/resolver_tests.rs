//! The plugin resolver: plain names only, nothing outside the plugins directory, each plugin
//! compiled once, every refusal reported at the importing rule's line.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::message::{MessageKey, Meta};
use crate::rules::{CompileError, Error, RuleSet};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn config(dir: &Path) -> Config {
    Config::from_yaml("accounts: {}\n", &dir.join("tidings.yaml")).unwrap()
}

fn errors(dir: &Path) -> Vec<CompileError> {
    match RuleSet::compile(&config(dir)) {
        Err(Error::Compile(errors)) => errors,
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("expected compile errors"),
    }
}

fn file_line(e: &CompileError, dir: &Path) -> (String, usize) {
    (e.file.strip_prefix(dir).unwrap_or(&e.file).display().to_string(), e.line)
}

fn message() -> Arc<crate::message::MessageView> {
    let meta = Meta::new(MessageKey::new("a", "INBOX", 1, 1));
    Arc::new(crate::message::parse(b"From: x@y.example\r\nSubject: hi\r\n\r\nbody\r\n", meta))
}

#[test]
fn plain_and_nested_names_resolve_and_each_plugin_compiles_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/lists.rhai", "fn twice(x) { x * 2 }\n");
    write(
        dir.path(),
        "plugins/mail/util-2.rhai",
        "import \"lists\" as lists;\nfn four(x) { lists::twice(lists::twice(x)) }\n",
    );
    for name in ["a", "b", "c"] {
        let rule = "import \"lists\" as l;\nimport \"mail/util-2\" as u;\nif l::twice(1) + u::four(1) == 6 { flag(\"ok\"); }\n";
        write(dir.path(), &format!("rules/{name}.rhai"), rule);
    }
    let rules = RuleSet::compile(&config(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rules.plugins_compiled(), 2, "three rules import two plugins: two compiles");
    let evaluation = rules.evaluate(&message(), &[], chrono::Utc::now());
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    assert_eq!(evaluation.decisions.len(), 3);
}

#[test]
fn imports_outside_the_plugins_directory_are_refused_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/lists.rhai", "fn f() { 1 }\n");
    // A real script outside: the stock file resolver would have loaded it.
    write(dir.path(), "outside.rhai", "fn f() { 2 }\n");
    let passwd = "let a = 1;\n\nimport \"../../etc/passwd\" as p;\n";
    write(dir.path(), "rules/a-dotdot.rhai", passwd);
    write(dir.path(), "rules/b-absolute.rhai", "import \"/etc/passwd\" as p;\n");
    write(dir.path(), "rules/c-sibling.rhai", "// reaches a real file\nimport \"../outside\" as p;\n");
    write(dir.path(), "rules/d-inner-dotdot.rhai", "import \"lists/../../outside\" as p;\n");
    write(dir.path(), "rules/e-extension.rhai", "import \"lists.rhai\" as p;\n");
    write(dir.path(), "rules/f-odd.rhai", "import \"lists here\" as p;\n");
    let errors = errors(dir.path());
    let got: Vec<(String, usize)> = errors.iter().map(|e| file_line(e, dir.path())).collect();
    let expected = [
        ("rules/a-dotdot.rhai", 3),
        ("rules/b-absolute.rhai", 1),
        ("rules/c-sibling.rhai", 2),
        ("rules/d-inner-dotdot.rhai", 1),
        ("rules/e-extension.rhai", 1),
        ("rules/f-odd.rhai", 1),
    ];
    let expected: Vec<(String, usize)> = expected.iter().map(|(f, l)| ((*f).to_owned(), *l)).collect();
    assert_eq!(got, expected, "{errors:#?}");
    for e in &errors[..4] {
        assert!(e.message.contains("is outside the plugins directory"), "{e:?}");
    }
    assert_eq!(
        errors[0].message,
        "import `../../etc/passwd` is outside the plugins directory: `..` is not allowed in plugin names"
    );
    assert!(errors[1].message.starts_with("import `/etc/passwd` is outside the plugins directory"), "{:?}", errors[1]);
    assert!(errors[4].message.contains("without `.rhai`, like `lists`"), "{:?}", errors[4]);
    assert!(errors[5].message.contains("is not a plugin name"), "{:?}", errors[5]);
    let text = Error::Compile(errors).to_string();
    assert!(text.contains("a-dotdot.rhai:3:1: import `../../etc/passwd` is outside the plugins directory"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_plugins_directory_is_refused_and_one_inside_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/lists.rhai", "fn f() { 1 }\n");
    write(dir.path(), "outside.rhai", "fn f() { 2 }\n");
    std::os::unix::fs::symlink(dir.path().join("outside.rhai"), dir.path().join("plugins/escape.rhai")).unwrap();
    std::os::unix::fs::symlink("lists.rhai", dir.path().join("plugins/alias.rhai")).unwrap();
    write(dir.path(), "rules/ok.rhai", "import \"alias\" as a;\nlet x = a::f();\n");
    write(dir.path(), "rules/escape.rhai", "import \"escape\" as e;\n");
    let errors = errors(dir.path());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(file_line(&errors[0], dir.path()), ("rules/escape.rhai".to_owned(), 1));
    assert!(errors[0].message.starts_with("import `escape` is outside the plugins directory"), "{:?}", errors[0]);
    assert!(errors[0].message.contains("outside.rhai"), "says where the link leads: {:?}", errors[0]);
}

#[test]
fn a_missing_plugin_is_reported_at_the_import_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/r.rhai", "// first\nimport \"nowhere/deep\" as n;\n");
    let errors = errors(dir.path());
    assert_eq!(file_line(&errors[0], dir.path()), ("rules/r.rhai".to_owned(), 2));
    assert!(errors[0].message.starts_with("cannot import `nowhere/deep`: there is no plugin"), "{:?}", errors[0]);
    assert!(errors[0].message.ends_with("plugins/nowhere/deep.rhai"), "{:?}", errors[0]);
}

#[test]
fn an_error_inside_a_plugin_points_into_it_and_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/bad.rhai", "fn ok() { 1 }\n\nfn broken( { 2 }\n");
    write(dir.path(), "plugins/outer.rhai", "fn g() { 1 }\nimport \"../../etc/passwd\" as p;\n");
    write(dir.path(), "plugins/throws.rhai", "throw \"not today\";\n");
    write(dir.path(), "rules/10-uses-bad.rhai", "let a = 1;\nimport \"bad\" as b;\n");
    write(dir.path(), "rules/20-uses-outer.rhai", "import \"outer\" as o;\n");
    write(dir.path(), "rules/30-uses-throws.rhai", "import \"throws\" as t;\n");
    let errors = errors(dir.path());
    let got: Vec<(String, usize)> = errors.iter().map(|e| file_line(e, dir.path())).collect();
    let want = [("plugins/bad.rhai", 3), ("plugins/outer.rhai", 2), ("plugins/throws.rhai", 1)];
    let want: Vec<(String, usize)> = want.iter().map(|(f, l)| ((*f).to_owned(), *l)).collect();
    assert_eq!(got, want, "{errors:#?}");
    assert!(errors[0].message.contains("(in plugin `bad`, imported by "), "{:?}", errors[0]);
    assert!(errors[0].message.contains("10-uses-bad.rhai:2)"), "{:?}", errors[0]);
    assert!(
        errors[1].message.starts_with("import `../../etc/passwd` is outside the plugins directory"),
        "{:?}",
        errors[1]
    );
    assert!(errors[1].message.contains("20-uses-outer.rhai:1)"), "{:?}", errors[1]);
    assert!(errors[2].message.contains("not today"), "{:?}", errors[2]);
}

#[test]
fn an_import_cycle_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/a.rhai", "import \"b\" as b;\nfn f() { 1 }\n");
    write(dir.path(), "plugins/b.rhai", "import \"a\" as a;\nfn g() { 2 }\n");
    write(dir.path(), "rules/r.rhai", "import \"a\" as a;\n");
    let errors = errors(dir.path());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("is a cycle"), "{:?}", errors[0]);
}

#[test]
fn an_import_computed_at_run_time_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/r.rhai", "let p = \"../../etc/\" + \"passwd\";\nimport p as x;\nflag(\"never\");\n");
    let rules = RuleSet::compile(&config(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    let evaluation = rules.evaluate(&message(), &[], chrono::Utc::now());
    assert!(evaluation.decisions.is_empty());
    assert!(evaluation.failures[0].error.contains("is outside the plugins directory"), "{:?}", evaluation.failures);
}
