//! Rules: user-written Rhai scripts that look at a message and decide what to do with it.
//!
//! Input: the rule files; output: a [`RuleSet`] of compiled scripts. Every script is compiled
//! (with its imports resolved) when the config is loaded, so a broken rule stops start-up or
//! `tidings check` before any mail is touched. Rules are pure: they never do IO themselves.
//!
//! Live rules are the `*.rhai` files directly in the rules directory, run in file-name order.
//! Files in subfolders are run only by the schedules that name them.

pub mod api;
pub mod engine;
pub mod evaluate;

#[cfg(test)]
mod evaluate_tests;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use rhai::{AST, Engine, Scope};

use crate::config::{Config, Limits};

pub use evaluate::{Evaluation, RuleFailure};

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Its path relative to the rules directory, e.g. `newsletters.rhai`: the name in logs.
    pub name: String,
    /// The compiled script, imports included.
    pub ast: AST,
}

/// Every rule the config uses, compiled.
pub struct RuleSet {
    /// The engine the rules were compiled with and will run in.
    pub engine: Engine,
    /// Live rules, in file-name order.
    pub live: Vec<Rule>,
    /// Rules named by schedules.
    pub scheduled: Vec<Rule>,
    /// The sandbox limits evaluations run under.
    pub limits: Limits,
    /// Failure counts, to disable a rule that keeps failing.
    health: evaluate::Health,
}

/// One rule that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1 (0 if unknown).
    pub line: usize,
    /// Column, from 1 (0 if unknown).
    pub column: usize,
    /// What Rhai said.
    pub message: String,
}

/// Why the rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules directory cannot be listed.
    #[error("cannot read rules directory {dir}")]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// One or more rules do not compile; all are listed.
    #[error("cannot compile rules: {}", list(.0))]
    Compile(Vec<CompileError>),
}

fn list(errors: &[CompileError]) -> String {
    let lines: Vec<String> =
        errors.iter().map(|e| format!("\n  {}:{}:{}: {}", e.file.display(), e.line, e.column, e.message)).collect();
    format!("{} rule{} failed{}", errors.len(), if errors.len() == 1 { "" } else { "s" }, lines.concat())
}

/// The variables every rule sees, declared at compile time so strict mode accepts them.
fn rule_scope() -> Scope<'static> {
    let mut scope = Scope::new();
    // A variable, not a constant: the optimizer inlines constants, and would compile every use
    // of `msg` into `()`. At run time it is pushed as a constant, so scripts cannot reassign it.
    scope.push("msg", ());
    scope
}

impl RuleSet {
    /// Compiles the live rules in `config.rules_dir` and every schedule's rule; reports every
    /// failure, not just the first.
    pub fn compile(config: &Config) -> Result<RuleSet, Error> {
        let engine = engine::build(&config.plugins_dir, &config.limits);
        let mut errors = Vec::new();
        let mut live = Vec::new();
        for path in live_rule_files(&config.rules_dir)? {
            live.extend(compile_file(&engine, &config.rules_dir, &path, &mut errors));
        }
        let mut scheduled = Vec::new();
        for schedule in &config.schedules {
            let path = config.rules_dir.join(&schedule.rule);
            if !scheduled.iter().any(|r: &Rule| Path::new(&r.name) == schedule.rule) {
                scheduled.extend(compile_file(&engine, &config.rules_dir, &path, &mut errors));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Compile(errors));
        }
        Ok(RuleSet { engine, live, scheduled, limits: config.limits.clone(), health: evaluate::Health::default() })
    }
}

/// The `*.rhai` files directly in `dir`, sorted by name. A missing directory means no rules.
fn live_rule_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::ReadDir { dir: dir.to_owned(), source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| Error::ReadDir { dir: dir.to_owned(), source })?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "rhai") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn compile_file(engine: &Engine, rules_dir: &Path, path: &Path, errors: &mut Vec<CompileError>) -> Option<Rule> {
    let name = path.strip_prefix(rules_dir).unwrap_or(path).display().to_string();
    let fail = |line, column, message| CompileError { file: path.to_owned(), line, column, message };
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) => {
            errors.push(fail(0, 0, format!("cannot read rule: {e}")));
            return None;
        }
    };
    match engine.compile_into_self_contained(&rule_scope(), &source) {
        Ok(ast) => Some(Rule { name, ast }),
        Err(mut e) => {
            let pos = e.position();
            let (line, column) = match (pos.line(), &*e) {
                (Some(line), _) => (line, pos.position().unwrap_or(0)),
                // Rhai resolves imports after parsing and loses the statement's position.
                (None, rhai::EvalAltResult::ErrorModuleNotFound(module, _)) => (import_line(&source, module), 1),
                (None, _) => (0, 0),
            };
            // The position is in the file:line:col prefix; Rhai would repeat it in the text.
            e.clear_position();
            errors.push(fail(line, column, e.to_string()));
            None
        }
    }
}

/// The line of the `import` statement naming `module`, or 0.
fn import_line(source: &str, module: &str) -> usize {
    let quoted = format!("\"{module}\"");
    source.lines().position(|l| l.contains("import") && l.contains(&quoted)).map_or(0, |i| i + 1)
}
