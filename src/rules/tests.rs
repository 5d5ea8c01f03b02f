//! Compiling rules: good ones load with their imports, bad ones are all reported with positions.

use std::path::Path;

use rhai::Scope;

use super::*;
use crate::config::Config;

fn config_in(dir: &Path, extra: &str) -> Config {
    let yaml = format!("accounts: {{}}\n{extra}");
    Config::from_yaml(&yaml, &dir.join("tidings.yaml")).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn rules_compile_in_name_order_with_plugins_resolved() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/lists.rhai", "fn is_list(id) { id != () }\n");
    write(dir.path(), "rules/20-second.rhai", "let x = 1;\n");
    write(dir.path(), "rules/10-first.rhai", "import \"lists\" as lists;\nlet y = lists::is_list(msg);\n");
    write(dir.path(), "rules/sweeps/only-scheduled.rhai", "this is not rhai at all (\n");
    write(dir.path(), "rules/notes.txt", "not a rule");
    let rules = RuleSet::compile(&config_in(dir.path(), "")).unwrap();
    let names: Vec<&str> = rules.live.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["10-first.rhai", "20-second.rhai"]);
    // The import was resolved at compile time: deleting the plugin does not break the rule.
    std::fs::remove_file(dir.path().join("plugins/lists.rhai")).unwrap();
    let mut scope = rule_scope();
    rules.engine.run_ast_with_scope(&mut scope, &rules.live[0].ast).unwrap();
    assert_eq!(scope.get_value::<bool>("y"), Some(false));
}

#[test]
fn every_broken_rule_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/a-syntax.rhai", "let ok = 1;\nlet broken = (1 + ;\n");
    write(dir.path(), "rules/b-undefined.rhai", "let a = 1;\n\nlet b = not_declared + 1;\n");
    write(dir.path(), "rules/c-import.rhai", "import \"missing\" as m;\n");
    write(dir.path(), "rules/d-eval.rhai", "eval(\"1\");\n");
    write(dir.path(), "rules/e-good.rhai", "let fine = msg;\n");
    let Err(Error::Compile(errors)) = RuleSet::compile(&config_in(dir.path(), "")) else {
        panic!("expected compile errors");
    };
    let got: Vec<(String, usize)> =
        errors.iter().map(|e| (e.file.file_name().unwrap().to_string_lossy().into_owned(), e.line)).collect();
    let expected = [
        ("a-syntax.rhai".to_owned(), 2),
        ("b-undefined.rhai".to_owned(), 3),
        ("c-import.rhai".to_owned(), 1),
        ("d-eval.rhai".to_owned(), 1),
    ];
    assert_eq!(got, expected, "{errors:#?}");
    assert!(errors[1].message.contains("not_declared"), "{:?}", errors[1]);
    assert!(errors[2].message.contains("missing"), "{:?}", errors[2]);
    let text = Error::Compile(errors).to_string();
    assert!(text.starts_with("cannot compile rules: 4 rules failed"), "{text}");
}

/// A text getter compared with `()` (always or never true since absent text is "") is refused
/// in a rule and in a plugin, at its line, with the test to write instead.
#[test]
fn text_compared_with_unit_is_refused_with_the_test_to_write() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "plugins/old.rhai", "fn is_list(msg) {\n    msg.list_id != ()\n}\n");
    write(dir.path(), "rules/a.rhai", "import \"old\" as old;\nlet x = old::is_list(msg);\n");
    write(dir.path(), "rules/b.rhai", "let a = 1;\nif msg.header(\"X-Spam\") == () { label(\"clean\"); }\n");
    let Err(Error::Compile(errors)) = RuleSet::compile(&config_in(dir.path(), "")) else { panic!("must be refused") };
    let text = Error::Compile(errors).to_string();
    assert!(text.contains("plugins/old.rhai:2:5: `msg.list_id != ()` is always true"), "{text}");
    assert!(text.contains("or `msg.has_header(\"List-Id\")` (in plugin `old`, imported by"), "{text}");
    assert!(text.contains("rules/b.rhai:2:4: `msg.header(\"X-Spam\") == ()` is never true"), "{text}");
    assert!(text.contains("write `msg.header(\"X-Spam\") == \"\"` or `!msg.has_header(\"X-Spam\")`"), "{text}");
}

#[test]
fn schedule_rules_are_compiled_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = "schedules:\n  s:\n    cron: \"0 7 * * *\"\n    account: a\n    rule: sweeps/gone.rhai\n";
    let yaml = format!("accounts:\n  a:\n    imap: {{ host: h }}\n    username: u\n    password_env: P\n{schedule}");
    let config = Config::from_yaml(&yaml, &dir.path().join("tidings.yaml")).unwrap();
    let Err(Error::Compile(errors)) = RuleSet::compile(&config) else { panic!("a missing rule must fail") };
    // Reported where tidings.yaml names it (line 10, after `rule: `), not at the missing file's 0:0.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, dir.path().join("tidings.yaml"));
    assert_eq!((errors[0].line, errors[0].column), (10, 11), "{errors:?}");
    assert_eq!(
        errors[0].message,
        format!(
            "schedule `s`: rule `sweeps/gone.rhai` does not exist (no file {})",
            dir.path().join("rules/sweeps/gone.rhai").display()
        )
    );
    let text = Error::Compile(errors).to_string();
    assert!(text.contains("tidings.yaml:10:11: schedule `s`"), "{text}");
    write(dir.path(), "rules/sweeps/gone.rhai", "let swept = true;\n");
    let rules = RuleSet::compile(&config).unwrap();
    assert_eq!(rules.scheduled.len(), 1);
    assert!(rules.live.is_empty(), "subfolder rules never run live");
}

#[test]
fn a_runaway_rule_is_stopped_by_the_operation_limit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/loop.rhai", "let n = 0;\nloop { n += 1; }\n");
    let rules = RuleSet::compile(&config_in(dir.path(), "")).unwrap();
    let err = rules.engine.run_ast_with_scope(&mut Scope::new(), &rules.live[0].ast).unwrap_err();
    assert!(matches!(*err, rhai::EvalAltResult::ErrorTooManyOperations(..)), "{err}");
}
