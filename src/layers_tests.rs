//! The layering rule of the crate map (lib.rs), checked on the source text.
//!
//! Every `crate::` path in non-test code under src/ is an edge from the module of its file to
//! the top-level module it names: `use` lines (grouped ones too) and paths inline in code alike.
//! Comments are not read (doc links are not dependencies), nor is test code: files declared by
//! a `#[cfg(test)] mod` and the item after any `#[cfg(test)]`, because tests may reach any layer.
//! The binary (main.rs, cli.rs) is the module `main`, read for `tidings::` paths as well.
//! `super::` never leaves a top-level module outside tests, so it is not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module imports modules of its own layer or below. `error` is the
/// crate's `Error`, which wraps every module's error, so it sits on top.
const LAYERS: &[(&str, &[&str])] = &[
    ("data", &["causes", "config", "message", "plan", "telemetry"]),
    ("mechanism", &["auth", "imap", "lifecycle", "rules", "store"]),
    ("stages", &["exec", "source"]),
    ("orchestration", &["error", "health", "main", "runtime", "tooling"]),
];

/// The module that must import nothing from the crate: the error helpers every layer uses.
const LEAF: &str = "causes";

/// Edges the rule would refuse but that stay for now, as (from, to, the issue item removing it).
/// Empty, and to be kept so: `store -> config` goes down a layer and `store -> imap` stays
/// within one without a cycle, so neither needs an entry while issue 20's item 1 reshapes
/// src/store. An entry whose edge is gone fails the test, so the list cannot go stale.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// One use of a module by another: where it is written.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
}

/// Edges between top-level modules, each with every place that writes it.
type Graph = BTreeMap<(String, String), Vec<Site>>;

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to; `None` for lib.rs, which only declares them.
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs");
    match first {
        "lib" => None,
        "main" | "cli" => Some("main".to_owned()),
        other => Some(other.to_owned()),
    }
}

/// A file's code lines (numbered from 1) with comments and test code blanked, and the files its
/// `#[cfg(test)] mod name;` declarations bring in (test code too).
fn code_lines(path: &Path, text: &str) -> (Vec<String>, Vec<PathBuf>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut code = vec![String::new(); lines.len()];
    let mut test_files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the attributes that follow, then the item they gate.
            let mut path_attr = None;
            i += 1;
            while i < lines.len() && lines[i].trim().starts_with("#[") {
                let attr = lines[i].trim();
                if let Some(rest) = attr.strip_prefix("#[path = \"") {
                    path_attr = rest.split('"').next().map(str::to_owned);
                }
                i += 1;
            }
            let Some(item) = lines.get(i) else { break };
            if let Some(name) = declared_module(item) {
                test_files.push(module_file(path, &name, path_attr.as_deref()));
                i += 1;
            } else if item.trim_end().ends_with('{') {
                let indent = &item[..item.len() - item.trim_start().len()];
                let close = format!("{indent}}}");
                while i < lines.len() && lines[i].trim_end() != close {
                    i += 1;
                }
                i += 1;
            } else {
                while i < lines.len() && !lines[i].trim_end().ends_with(';') {
                    i += 1;
                }
                i += 1;
            }
            continue;
        }
        if !trimmed.starts_with("//") {
            code[i] = strip_trailing_comment(lines[i]).to_owned();
        }
        i += 1;
    }
    (code, test_files)
}

/// `name` when the line declares an out-of-line module (`mod name;`).
fn declared_module(line: &str) -> Option<String> {
    let rest = line.trim().trim_start_matches("pub(crate) ").trim_start_matches("pub(super) ");
    let rest = rest.trim_start_matches("pub ").strip_prefix("mod ")?;
    rest.strip_suffix(';').map(str::to_owned)
}

/// The file of module `name` declared in `parent`, as rustc finds it.
fn module_file(parent: &Path, name: &str, path_attr: Option<&str>) -> PathBuf {
    let dir = parent.parent().expect("a file is in a directory");
    if let Some(path) = path_attr {
        return dir.join(path);
    }
    let stem = parent.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let dir = if matches!(stem, "mod" | "lib" | "main") { dir.to_path_buf() } else { dir.join(stem) };
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() { flat } else { dir.join(name).join("mod.rs") }
}

/// Whether `path` is the test file `test` or one of the modules it declares (in its directory).
fn is_within(path: &Path, test: &Path) -> bool {
    let stem = test.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let parent = test.parent().expect("a file is in a directory");
    let children = if stem == "mod" { parent.to_path_buf() } else { parent.join(stem) };
    path == test || path.starts_with(children)
}

/// The line without a `// comment` after the code (`://` in a URL is not one).
fn strip_trailing_comment(line: &str) -> &str {
    match line.find(" //") {
        Some(at) if !line[..at].contains('"') => &line[..at],
        _ => line,
    }
}

/// The first identifier of `text`.
fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The top-level names a path after `crate::` reaches, with the line offset of each from the
/// path's start: one for `crate::a::b`, one per item for `crate::{a, b::c}`.
fn names_after(rest: &str) -> Vec<(String, usize)> {
    let Some(group) = rest.strip_prefix('{') else {
        return vec![(ident(rest).to_owned(), 0)];
    };
    // Each item as (where it starts in `group`, its text).
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push((start, &group[start..at]));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push((start, &group[start..at]));
                start = at + 1;
            }
            _ => {}
        }
    }
    let mut names = Vec::new();
    for (start, item) in items {
        let name = ident(item.trim_start());
        if !name.is_empty() && name != "self" {
            let leading = item.len() - item.trim_start().len();
            names.push((name.to_owned(), group[..start + leading].matches('\n').count()));
        }
    }
    names
}

/// Root items that lib.rs re-exports (`pub use error::{Error, Result}`), by the module they are in.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else { continue };
        let module = ident(rest).to_owned();
        let items = rest[module.len()..].trim_start_matches("::").trim_end_matches(';');
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            map.insert(ident(item.trim()).to_owned(), module.clone());
        }
    }
    map
}

/// The crate's module graph, read from src/.
fn graph() -> Graph {
    let src = src_dir();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut test_files = BTreeSet::new();
    let mut texts = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("a source file");
        let (code, tests) = code_lines(path, &text);
        test_files.extend(tests);
        texts.push((path.clone(), code));
    }
    let mut graph = Graph::new();
    for (path, code) in texts {
        let relative = path.strip_prefix(&src).expect("under src/").to_path_buf();
        let Some(from) = module_of(&relative) else { continue };
        if test_files.iter().any(|test| is_within(&path, test)) {
            continue;
        }
        let joined = code.join("\n");
        let prefixes: &[&str] = if from == "main" { &["crate::", "tidings::"] } else { &["crate::"] };
        for prefix in prefixes {
            for (at, _) in joined.match_indices(prefix) {
                let before = joined[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                    continue;
                }
                let line = joined[..at].matches('\n').count() + 1;
                for (name, extra) in names_after(&joined[at + prefix.len()..]) {
                    let to = reexports.get(&name).cloned().unwrap_or(name);
                    if to == from {
                        continue;
                    }
                    let site = Site { file: format!("src/{}", relative.display()), line: line + extra };
                    graph.entry((from.clone(), to)).or_default().push(site);
                }
            }
        }
    }
    graph
}

/// The strongly connected groups of more than one module among `modules` (Tarjan's algorithm).
fn cycles(graph: &Graph, modules: &BTreeSet<String>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, v: &'a str) {
        let n = walk.index.len();
        walk.index.insert(v, n);
        walk.low.insert(v, n);
        walk.stack.push(v);
        for w in walk.next.get(v).cloned().unwrap_or_default() {
            if !walk.index.contains_key(w) {
                visit(walk, w);
                let low = walk.low[v].min(walk.low[w]);
                walk.low.insert(v, low);
            } else if walk.stack.contains(&w) {
                let low = walk.low[v].min(walk.index[w]);
                walk.low.insert(v, low);
            }
        }
        if walk.low[v] == walk.index[v] {
            let mut group = BTreeSet::new();
            while let Some(w) = walk.stack.pop() {
                group.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                walk.found.push(group);
            }
        }
    }
    let mut walk = Walk {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for (from, to) in graph.keys() {
        if modules.contains(from) && modules.contains(to) {
            walk.next.entry(from.as_str()).or_default().push(to.as_str());
        }
    }
    for module in modules {
        if !walk.index.contains_key(module.as_str()) {
            visit(&mut walk, module);
        }
    }
    walk.found
}

fn sites(sites: &[Site]) -> String {
    sites.iter().map(|s| format!("{}:{}", s.file, s.line)).collect::<Vec<_>>().join(", ")
}

#[test]
fn no_upward_layer_imports_and_no_cycles_within_a_layer() {
    let graph = graph();
    let allowed = |from: &str, to: &str| ALLOWED.iter().any(|(f, t, _)| *f == from && *t == to);
    let mut problems = Vec::new();

    let all: BTreeSet<String> = graph.keys().flat_map(|(f, t)| [f.clone(), t.clone()]).collect();
    println!("module graph: {} edges among {} modules", graph.len(), all.len());
    for ((from, to), at) in &graph {
        println!("  {from} -> {to}  ({} uses)", at.len());
    }
    for group in cycles(&graph, &all) {
        let closing = graph.keys().filter(|(f, t)| group.contains(f) && group.contains(t)).count();
        println!("whole-crate cycle: {} modules {group:?}, {closing} edges among them", group.len());
    }

    for ((from, to), at) in &graph {
        let (Some(low), Some(high)) = (layer_of(to), layer_of(from)) else {
            problems.push(format!("{from} -> {to}: a module missing from LAYERS (at {})", sites(at)));
            continue;
        };
        if from == LEAF {
            problems.push(format!("{from} -> {to}: the leaf module imports from the crate at {}", sites(at)));
        } else if low > high && !allowed(from, to) {
            problems.push(format!(
                "upward import {from} ({}) -> {to} ({}) at {}",
                LAYERS[high].0,
                LAYERS[low].0,
                sites(at)
            ));
        }
    }
    for (name, modules) in LAYERS {
        let modules: BTreeSet<String> = modules.iter().map(|m| (*m).to_owned()).collect();
        for group in cycles(&graph, &modules) {
            problems.push(format!("cycle within layer {name}: {group:?}"));
            for ((from, to), at) in &graph {
                if group.contains(from) && group.contains(to) && !allowed(from, to) {
                    problems.push(format!("  {from} -> {to} at {}", sites(at)));
                }
            }
        }
    }
    for (from, to, item) in ALLOWED {
        assert!(
            graph.contains_key(&((*from).to_owned(), (*to).to_owned())),
            "{from} -> {to} is gone: drop it from ALLOWED ({item})"
        );
    }
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).expect("lib.rs");
    for line in lib.lines() {
        if let Some(module) = line.strip_prefix("pub mod ").and_then(|m| m.strip_suffix(';')) {
            assert!(
                layer_of(module).is_some(),
                "module `{module}` is in no layer: add it to LAYERS and to lib.rs's map"
            );
        }
    }
    assert!(graph.len() > 20, "the reader found only {} edges: it is not reading src/", graph.len());
    assert!(problems.is_empty(), "the layers of lib.rs are broken:\n{}", problems.join("\n"));
}

#[test]
fn the_layer_reader_sees_grouped_inline_and_multiline_paths_and_skips_tests() {
    let text = "use crate::{a, b::c,\n    d::{e, f}};\n// crate::commented\nfn x() { crate::g::h(); }\n#[cfg(test)]\nmod tests {\n    use crate::hidden;\n}\n";
    let (code, _) = code_lines(Path::new("src/x/mod.rs"), text);
    let joined = code.join("\n");
    let mut names: Vec<(String, usize)> = Vec::new();
    for (at, _) in joined.match_indices("crate::") {
        let line = joined[..at].matches('\n').count() + 1;
        names.extend(names_after(&joined[at + 7..]).into_iter().map(|(n, extra)| (n, line + extra)));
    }
    let expected: Vec<(String, usize)> =
        [("a", 1), ("b", 1), ("d", 2), ("g", 4)].iter().map(|(n, l)| ((*n).to_owned(), *l)).collect();
    assert_eq!(names, expected);
}
