//! Rules: user-written Rhai scripts that look at a message and decide what to do with it.
//!
//! Input: the rule files; output: a [`RuleSet`] of compiled scripts. Every script is compiled
//! (with its imports resolved) when the config is loaded, so a broken rule stops start-up or
//! `tidings check` before any mail is touched. Rules are pure: they never do IO themselves.
//!
//! Live rules are the `*.rhai` files directly in the rules directory, run in file-name order.
//! Files in subfolders are run only by the schedules that name them ([`scheduled`]), told which
//! schedule fired ([`trigger`]). Rules `import` plugins
//! from the plugins directory only ([`resolver`]) and read data files with `data("name")`
//! ([`data`]). While the daemon runs, [`reload`] recompiles everything when a file changes and
//! swaps the new set in whole, or keeps the old one if the new one does not compile.
//!
//! Layer: mechanism (see the map in lib.rs): it reads `config`, `message` and `plan` (and the
//! store's `Collected` items a digest reads); it never reaches a stage (`source`, `exec`) or the
//! runtime.

mod absent;
pub mod api;
pub mod data;
pub mod decide;
pub mod engine;
pub mod evaluate;
mod hint;
pub mod printed;
pub mod reload;
pub mod resolver;
pub mod scheduled;
mod slots;
pub mod trigger;

#[cfg(test)]
mod evaluate_tests;

#[cfg(test)]
mod plugins_tests;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rhai::{AST, Engine, EvalAltResult, Position, Scope};

use crate::config::tree::Pos;
use crate::config::{Config, Limits};
use data::DataSet;
use resolver::PluginResolver;

pub use decide::Ruling;
pub use evaluate::{Evaluation, Printed, RuleFailure};
pub use reload::CurrentRules;
pub use scheduled::ScheduledEvaluation;
pub use trigger::{Collected, Trigger};

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Its path relative to the rules directory, e.g. `newsletters.rhai`: the name in logs.
    pub name: String,
    /// The compiled script, imports included: the copy evaluation slot 0 runs.
    pub ast: AST,
    /// Its source, for the other copies.
    source: Arc<str>,
    /// The copies the other evaluation slots run, compiled when a slot first needs one, with
    /// plugins of their own (see `resolver`).
    copies: Vec<OnceLock<Result<AST, String>>>,
}

impl Rule {
    fn new(name: String, ast: AST, source: Arc<str>) -> Rule {
        let copies = (1..slots::SLOTS.count()).map(|_| OnceLock::new()).collect();
        Rule { name, ast, source, copies }
    }

    /// The copy slot `index` runs, compiled now if it is its first run.
    fn copy(&self, index: usize, engine: &Engine) -> Result<&AST, String> {
        let Some(copy) = index.checked_sub(1).and_then(|i| self.copies.get(i)) else { return Ok(&self.ast) };
        let compiled = copy.get_or_init(|| {
            PluginResolver::for_copy(index, || engine.compile_into_self_contained(&rule_scope(), &*self.source))
                .map_err(|e| format!("cannot compile the rule's copy for evaluation slot {index}: {e}"))
        });
        compiled.as_ref().map_err(Clone::clone)
    }
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
    /// The resolver the rules' imports went through (its cache holds the compiled plugins).
    plugins: PluginResolver,
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
    /// Compiles the live rules in `config.rules_dir` and every schedule's rule, with the data
    /// files and the plugins they import; reports every failure, not just the first.
    pub fn compile(config: &Config) -> Result<RuleSet, Error> {
        let mut errors = Vec::new();
        let data = Arc::new(DataSet::load(&config.rules_dir, &mut errors));
        let plugins = PluginResolver::new(&config.plugins_dir);
        let mut engine = engine::build(plugins.clone(), data.clone(), &config.limits);
        api::set_webhooks(&mut engine, &config.webhooks);
        api::set_commands(&mut engine, config.commands.keys());
        let compiler = Compiler { engine: &engine, plugins: &plugins, rules_dir: &config.rules_dir };
        let mut live = Vec::new();
        for path in live_rule_files(&config.rules_dir)? {
            live.extend(compiler.file(&path, &mut errors));
        }
        let mut scheduled = Vec::new();
        for schedule in &config.schedules {
            let path = config.rules_dir.join(&schedule.rule);
            // A missing file is the config's mistake: shown where tidings.yaml names it.
            if !path.exists() {
                let Pos { line, column } = schedule.rule_at;
                let message = format!(
                    "schedule `{}`: rule `{}` does not exist (no file {})",
                    schedule.name,
                    schedule.rule.display(),
                    path.display()
                );
                let (line, column) = (line as usize, column as usize);
                errors.push(CompileError { file: config.path.clone(), line, column, message });
                continue;
            }
            if !scheduled.iter().any(|r: &Rule| Path::new(&r.name) == schedule.rule) {
                scheduled.extend(compiler.file(&path, &mut errors));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Compile(errors));
        }
        Ok(RuleSet { engine, live, scheduled, limits: config.limits.clone(), plugins })
    }

    /// How many plugin files were compiled for these rules (each once, however many import it).
    pub fn plugins_compiled(&self) -> usize {
        self.plugins.compiled()
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

/// What compiling one rule file needs.
struct Compiler<'a> {
    engine: &'a Engine,
    plugins: &'a PluginResolver,
    rules_dir: &'a Path,
}

impl Compiler<'_> {
    /// Compiles the rule at `path`, its imports resolved into it; a failure goes to `errors`.
    fn file(&self, path: &Path, errors: &mut Vec<CompileError>) -> Option<Rule> {
        let name = path.strip_prefix(self.rules_dir).unwrap_or(path).display().to_string();
        let source = match std::fs::read_to_string(path) {
            Ok(source) => source,
            Err(e) => {
                let message = format!("cannot read rule: {e}");
                errors.push(CompileError { file: path.to_owned(), line: 0, column: 0, message });
                return None;
            }
        };
        if let Some((line, column, message)) = absent::unit_comparison(&source) {
            errors.push(CompileError { file: path.to_owned(), line, column, message });
            return None;
        }
        match self.engine.compile_into_self_contained(&rule_scope(), &source) {
            Ok(ast) => Some(Rule::new(name, ast, source.into())),
            Err(e) => {
                errors.push(self.locate(*e, path, &source));
                None
            }
        }
    }

    /// Where a compile error is and what to say. An error in the rule is at its position; an
    /// import refused or not found is at the `import` line (Rhai resolves imports after parsing
    /// and loses the statement's position); an error inside a plugin is at the plugin's
    /// position and names the rule that imported it.
    fn locate(&self, mut err: EvalAltResult, rule: &Path, source: &str) -> CompileError {
        let mut file = rule.to_owned();
        let mut importer = Some(source);
        let mut via = String::new();
        loop {
            let at = |pos: Position, module: &str, importer: Option<&str>| match pos.line() {
                Some(line) => (line, pos.position().unwrap_or(1)),
                None => importer.map_or((0, 0), |source| import_at(source, module)),
            };
            let (line, column, message) = match err {
                EvalAltResult::ErrorInModule(module, inner, pos) => {
                    let (line, column) = at(pos, &module, importer);
                    if via.is_empty() {
                        via = format!(" (in plugin `{module}`, imported by {}:{line})", rule.display());
                    }
                    match *inner {
                        // The resolver's refusals carry no position: the import line is the place.
                        EvalAltResult::ErrorRuntime(why, pos) if pos.is_none() => (line, column, why.to_string()),
                        inner => {
                            (file, importer, err) = (self.plugins.file_of(&module), None, inner);
                            continue;
                        }
                    }
                }
                EvalAltResult::ErrorModuleNotFound(module, pos) => {
                    let (line, column) = at(pos, &module, importer);
                    let missing = self.plugins.file_of(&module);
                    (line, column, format!("cannot import `{module}`: there is no plugin {}", missing.display()))
                }
                mut other => {
                    let pos = other.take_position();
                    // A host's refusal inside a plugin (see `absent`) is its text alone.
                    let message = match &other {
                        EvalAltResult::ErrorRuntime(why, _) => why.to_string(),
                        other => other.to_string(),
                    };
                    (pos.line().unwrap_or(0), pos.position().unwrap_or(0), message)
                }
            };
            let message = if file == rule { message } else { message + via.as_str() };
            return CompileError { file, line, column, message };
        }
    }
}

/// Line and column of the `import` statement naming `module`, or 0 and 0.
fn import_at(source: &str, module: &str) -> (usize, usize) {
    let quoted = format!("\"{module}\"");
    let found = source.lines().enumerate().find_map(|(i, l)| {
        let column = l.find("import").filter(|_| l.contains(&quoted))?;
        Some((i + 1, column + 1))
    });
    found.unwrap_or((0, 0))
}
