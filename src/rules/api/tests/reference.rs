//! The generated reference: current, complete, and every example a working rule.

use std::path::PathBuf;

use crate::rules::api::reference::{Doc, Registered, registered};
use crate::rules::api::{AREAS, reference};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md")
}

fn all_functions() -> Vec<Registered> {
    AREAS.iter().flat_map(registered).collect()
}

/// Fails when `docs/rules.md` differs from what the engine's functions generate; with
/// `TIDINGS_BLESS=1` it rewrites the file instead.
#[test]
fn the_reference_is_current() {
    let generated = reference();
    let path = committed_path();
    if std::env::var_os("TIDINGS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed.lines().zip(generated.lines()).position(|(a, b)| a != b);
        let line = first.unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} is stale: regenerate it with `TIDINGS_BLESS=1 cargo test --lib the_reference_is_current`\n\
             first difference at line {}:\n  committed: {:?}\n  generated: {:?}",
            path.display(),
            line + 1,
            committed.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

/// The number of arguments in `name(a, #{ b, c }, [d])`: top-level commas only.
fn arguments(inside: &str) -> usize {
    if inside.trim().is_empty() {
        return 0;
    }
    let mut depth = 0i32;
    let mut count = 1;
    for c in inside.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => count += 1,
            _ => {}
        }
    }
    count
}

/// Whether a usage line names the function and takes as many arguments as it does.
fn usage_fits(f: &Registered, usage: &str) -> bool {
    let call = usage.split(" -> ").next().unwrap_or(usage).trim();
    if let Some(prop) = f.name.strip_prefix("get$") {
        return f.num_params == 1 && call.ends_with(&format!(".{prop}")) && !call.contains('(');
    }
    if !f.name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') {
        return usage.contains(&format!(" {} ", f.name));
    }
    let Some(open) = call.find(&format!("{}(", f.name)) else { return false };
    let Some(inside) = call[open + f.name.len() + 1..].strip_suffix(')') else { return false };
    let method = call[..open].ends_with('.');
    (open == 0 || method) && arguments(inside) + usize::from(method) == f.num_params
}

#[test]
fn every_function_has_a_usage_a_description_and_an_example() {
    let functions = all_functions();
    assert!(functions.len() > 60, "only {} functions registered", functions.len());
    let mut problems = Vec::new();
    for f in &functions {
        match f.doc_comments.first().and_then(|c| Doc::parse(c)) {
            Some((usage, text, _)) if usage_fits(f, &usage) && !text.contains('\n') => {}
            Some((usage, ..)) => problems.push(format!("{}/{}: usage `{usage}` does not fit", f.name, f.num_params)),
            None => problems.push(format!("{}/{}: no reference entry (register it with a Doc)", f.name, f.num_params)),
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_example_runs_as_a_rule() {
    let mut failures = Vec::new();
    for f in all_functions() {
        let Some((usage, _, example)) = f.doc_comments.first().and_then(|c| Doc::parse(c)) else { continue };
        let (_dir, set) = super::rules(&[("example.rhai", example.as_str())]);
        let evaluation = set.evaluate(&super::view(super::FULL), &[], super::now());
        failures.extend(evaluation.failures.into_iter().map(|e| format!("{usage}: {example}: {}", e.error)));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// "Each API function has a test through a real rule file": the rules in these tests call
/// every registered function by name (operators are covered by the date and address tests).
#[test]
fn every_function_is_called_by_a_rule_in_the_tests() {
    let sources = [
        include_str!("message.rs"),
        include_str!("helpers.rs"),
        include_str!("actions.rs"),
        include_str!("outbound.rs"),
        include_str!("events.rs"),
        include_str!("abuse.rs"),
        include_str!("schedule.rs"),
    ]
    .concat();
    let missing: Vec<String> = all_functions()
        .into_iter()
        .filter_map(|f| match f.name.strip_prefix("get$") {
            Some(prop) => (!sources.contains(&format!(".{prop}"))).then(|| format!(".{prop}")),
            None if f.name.chars().next().is_some_and(char::is_alphabetic) => {
                (!sources.contains(&format!("{}(", f.name))).then(|| format!("{}()", f.name))
            }
            None => None,
        })
        .collect();
    assert!(missing.is_empty(), "no rule in the API tests uses: {missing:?}");
}
