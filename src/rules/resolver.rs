//! Plugin imports: `import "lists" as lists;` loads `plugins/lists.rhai`, and nothing else.
//!
//! Rhai's stock file resolver accepts absolute paths and `..`, so a rule could read any file
//! the daemon can. This one accepts plain names only (`lists`, `mail/lists`), refuses anything
//! that would leave the plugins directory, symlinks included, and compiles each plugin once per
//! rule set: every rule that imports it gets the same compiled module. A reload builds a new
//! rule set, and with it a new resolver that reads the files afresh.
//!
//! Rhai reads a plugin's `global::` constants under a lock of the compiled module, taken with a
//! few short tries and then unwrapped: two threads running the same module at once can make one
//! of them panic. So every evaluation slot (see `slots`) runs its own copy of the rules and their
//! plugins: copy 0 is compiled from the files, and the other copies from the same sources
//! (never read again), each plugin compiled anew for each copy ([`PluginResolver::for_copy`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rhai::{AST, Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

/// The longest plugin name accepted, in bytes.
const MAX_NAME: usize = 200;

/// Resolves `import` names inside the plugins directory. Clones share one cache.
#[derive(Clone, Debug)]
pub struct PluginResolver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The plugins directory as configured: what messages show.
    dir: PathBuf,
    /// Compiled plugins by copy and canonical path.
    cache: Mutex<HashMap<(usize, PathBuf), Loaded>>,
    /// Each plugin of copy 0 by import name: its canonical path and source, for the other copies.
    sources: Mutex<HashMap<String, (PathBuf, Arc<str>)>>,
    /// How many plugin files were compiled, for the "once" guarantee's tests.
    compiled: AtomicUsize,
}

/// One compiled plugin: its AST (for nested imports) and the module rules call into.
#[derive(Clone, Debug)]
struct Loaded {
    ast: AST,
    module: Shared<Module>,
}

thread_local! {
    /// Plugins being loaded on this thread, outermost first: an import cycle would otherwise
    /// recurse until the stack overflows (each module evaluates with fresh module counters).
    static LOADING: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    /// The copy being compiled on this thread (see [`PluginResolver::for_copy`]).
    static COPY: Cell<usize> = const { Cell::new(0) };
}

impl PluginResolver {
    /// A resolver for `dir`. The directory need not exist: then every import is "not found".
    pub fn new(dir: &Path) -> PluginResolver {
        let inner = Inner {
            dir: dir.to_owned(),
            cache: Mutex::default(),
            sources: Mutex::default(),
            compiled: AtomicUsize::new(0),
        };
        PluginResolver { inner: Arc::new(inner) }
    }

    /// The file an import name stands for (whether or not it exists or is allowed).
    pub fn file_of(&self, name: &str) -> PathBuf {
        self.inner.dir.join(format!("{name}.rhai"))
    }

    /// How many plugin files this resolver compiled: each at most once.
    pub fn compiled(&self) -> usize {
        self.inner.compiled.load(Ordering::Relaxed)
    }

    /// Runs `f` (a compilation) with the imports on this thread resolved into copy `copy`:
    /// copy 0 reads the plugin files, any other compiles the sources copy 0 read, anew.
    pub fn for_copy<T>(copy: usize, f: impl FnOnce() -> T) -> T {
        let before = COPY.replace(copy);
        let out = f();
        COPY.set(before);
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, PathBuf), Loaded>> {
        // Entries are inserted whole, in one statement: a poisoned map is still consistent.
        self.inner.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<String, (PathBuf, Arc<str>)>> {
        // As for `lock`.
        self.inner.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The compiled plugin for `name` in the copy being compiled, from the cache or compiled now.
    fn load(&self, engine: &Engine, name: &str, pos: Position) -> Result<Loaded, Box<EvalAltResult>> {
        let copy = COPY.get();
        if copy == 0 {
            return self.load_file(engine, name, pos);
        }
        let Some((canonical, source)) = self.sources().get(name).cloned() else {
            let why = format!("cannot import `{name}`: the rules' first compilation did not read it");
            return Err(refusal(name, why, pos));
        };
        self.cached_or(copy, canonical, name, pos, |_| self.compile(engine, name, source, pos))
    }

    /// The compiled plugin for `name` in copy 0, read from its file.
    fn load_file(&self, engine: &Engine, name: &str, pos: Position) -> Result<Loaded, Box<EvalAltResult>> {
        let refuse = |why: String| refusal(name, why, pos);
        check_name(name).map_err(refuse)?;
        let file = self.file_of(name);
        let canonical = match file.canonicalize() {
            Ok(path) => path,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Box::new(EvalAltResult::ErrorModuleNotFound(name.to_owned(), pos)));
            }
            Err(e) => return Err(refuse(format!("cannot read plugin {}: {e}", file.display()))),
        };
        let root = self.inner.dir.canonicalize().map_err(|e| refuse(format!("cannot read plugins directory: {e}")))?;
        if !canonical.starts_with(&root) {
            return Err(refuse(format!(
                "import `{name}` is outside the plugins directory: {} leads to {}",
                file.display(),
                canonical.display()
            )));
        }
        self.cached_or(0, canonical, name, pos, |canonical| {
            let source: Arc<str> = std::fs::read_to_string(canonical)
                .map_err(|e| refuse(format!("cannot read plugin {}: {e}", file.display())))?
                .into();
            self.sources().insert(name.to_owned(), (canonical.to_owned(), source.clone()));
            self.inner.compiled.fetch_add(1, Ordering::Relaxed);
            self.compile(engine, name, source, pos)
        })
    }

    /// The plugin at `canonical` in `copy` from the cache, or made by `make` and cached.
    fn cached_or(
        &self,
        copy: usize,
        canonical: PathBuf,
        name: &str,
        pos: Position,
        make: impl FnOnce(&Path) -> Result<Loaded, Box<EvalAltResult>>,
    ) -> Result<Loaded, Box<EvalAltResult>> {
        let key = (copy, canonical);
        if let Some(loaded) = self.lock().get(&key) {
            return Ok(loaded.clone());
        }
        let cycle = LOADING.with(|l| l.borrow().contains(&key.1));
        if cycle {
            let why = format!("import `{name}` is a cycle: the plugin imports itself, maybe through others");
            return Err(refusal(name, why, pos));
        }
        LOADING.with(|l| l.borrow_mut().push(key.1.clone()));
        // The cache is not locked while compiling: the plugin's own imports come back here.
        let loaded = make(&key.1);
        LOADING.with(|l| l.borrow_mut().pop());
        let loaded = loaded?;
        self.lock().insert(key, loaded.clone());
        Ok(loaded)
    }

    fn compile(
        &self,
        engine: &Engine,
        name: &str,
        source: Arc<str>,
        pos: Position,
    ) -> Result<Loaded, Box<EvalAltResult>> {
        let in_module = |err| Box::new(EvalAltResult::ErrorInModule(name.to_owned(), err, pos));
        if let Some((line, column, why)) = super::absent::unit_comparison(&source) {
            let at = Position::new(u16::try_from(line).unwrap_or(u16::MAX), u16::try_from(column).unwrap_or(u16::MAX));
            return Err(in_module(Box::new(EvalAltResult::ErrorRuntime(why.into(), at))));
        }
        let mut ast = engine.compile(&source).map_err(|e| in_module(Box::new(e.into())))?;
        ast.set_source(name);
        // Top-level statements run once, here: a plugin is its functions and constants.
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
        Ok(Loaded { ast, module: Shared::new(module) })
    }
}

/// An import refused by the host: the reason, as a runtime error inside the module's error so
/// the rule's compile error can point at the `import` line.
fn refusal(name: &str, why: String, pos: Position) -> Box<EvalAltResult> {
    let reason = Box::new(EvalAltResult::ErrorRuntime(why.into(), Position::NONE));
    Box::new(EvalAltResult::ErrorInModule(name.to_owned(), reason, pos))
}

/// A plugin name is a relative path of plain parts: letters, digits, `_` and `-`.
fn check_name(name: &str) -> Result<(), String> {
    let path = Path::new(name);
    if path.has_root() || path.is_absolute() || matches!(path.components().next(), Some(Component::Prefix(_))) {
        return Err(format!(
            "import `{name}` is outside the plugins directory: plugin names are relative, like `lists`"
        ));
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!("import `{name}` is outside the plugins directory: `..` is not allowed in plugin names"));
    }
    if let Some(stem) = name.strip_suffix(".rhai") {
        return Err(format!("import `{name}`: write the plugin name without `.rhai`, like `{stem}`"));
    }
    let plain =
        |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.len() > MAX_NAME || !name.split('/').all(plain) {
        return Err(format!(
            "import `{name}` is not a plugin name: use letters, digits, `_` and `-`, with `/` between folders"
        ));
    }
    Ok(())
}

impl ModuleResolver for PluginResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        self.load(engine, path, pos).map(|loaded| loaded.module)
    }

    /// Compiling a rule into a self-contained AST walks the plugins' ASTs for nested imports.
    fn resolve_ast(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Option<Result<AST, Box<EvalAltResult>>> {
        Some(self.load(engine, path, pos).map(|loaded| loaded.ast))
    }
}

#[cfg(test)]
#[path = "resolver_tests.rs"]
mod tests;
