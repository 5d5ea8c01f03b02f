//! Inputs kept from fuzzing, in `tests/fuzz_regressions/<target>/`: every crash found (fixed
//! since) and a small sample of each target's corpus. Each runs through the code its fuzz
//! target runs (`fuzz/src/lib.rs`, included here as it is), so a finding cannot come back
//! unnoticed, and the outcomes of the findings are pinned. No servers; docs/fuzzing.md says
//! how to fuzz and how to add an input here.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

#[path = "../fuzz/src/lib.rs"]
mod exercise;

use exercise::{ConfigOutcome, RulesOutcome};

/// The kept inputs of `target`, by file name.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect();
    files.sort();
    files
}

/// Runs every input of `target` through `run`; fails naming each input that panicked.
fn run_all<T>(target: &str, run: impl Fn(&[u8]) -> T) -> Vec<(String, T)> {
    let files = inputs(target);
    assert!(files.len() >= 10, "expected a sample of the {target} corpus, found {} files", files.len());
    let mut outcomes = Vec::new();
    let mut panicked = Vec::new();
    for (name, data) in files {
        match catch_unwind(AssertUnwindSafe(|| run(&data))) {
            Ok(outcome) => outcomes.push((name, outcome)),
            Err(_) => panicked.push(name),
        }
    }
    assert!(panicked.is_empty(), "{target}: these inputs panic again: {panicked:?}");
    outcomes
}

#[test]
fn config_inputs_are_loaded_or_refused_with_problems() {
    let outcomes = run_all("config", exercise::config);
    for (name, outcome) in &outcomes {
        // Findings whose fix is a refusal: named so.
        if name.starts_with("refused-") {
            assert!(matches!(outcome, ConfigOutcome::Invalid(_)), "{name}: {outcome:?}");
        }
    }
    let valid = outcomes.iter().filter(|(_, o)| matches!(o, ConfigOutcome::Valid(_))).count();
    let invalid = outcomes.iter().filter(|(_, o)| matches!(o, ConfigOutcome::Invalid(_))).count();
    eprintln!("config: {valid} valid, {invalid} refused, {} not text", outcomes.len() - valid - invalid);
    assert!(invalid > 0, "the sample has broken configs too");
}

#[test]
fn message_inputs_give_a_view() {
    let outcomes = run_all("message", exercise::message);
    let degraded = outcomes.iter().filter(|(_, o)| o.degraded).count();
    eprintln!("message: {} views, {degraded} degraded", outcomes.len());
}

#[test]
fn rules_inputs_are_planned_or_refused() {
    let outcomes = run_all("rules", exercise::rules);
    let planned = outcomes.iter().filter(|(_, o)| matches!(o, RulesOutcome::Planned { .. })).count();
    let refused = outcomes.iter().filter(|(_, o)| matches!(o, RulesOutcome::CompileError(_))).count();
    eprintln!("rules: {planned} planned, {refused} did not compile");
    assert!(planned > 0);
}
