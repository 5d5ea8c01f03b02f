//! Data files: the sender lists and tables that rules consult, read by the host so that rules
//! stay free of IO.
//!
//! `rules/data/NAME.txt` is a list: one entry per line, surrounding blanks trimmed, blank lines
//! and `#` comments ignored. `rules/data/NAME.yaml` (or `.yml`) is any YAML: maps, lists,
//! strings, numbers, booleans. Both are read when the rules are compiled or reloaded, and
//! scripts (rules and plugins alike) read them with `data("NAME")`, which returns a copy: a
//! script may change its copy, never what the next rule sees. A file that cannot be read or
//! parsed fails the compile like a broken rule, with its file and line. Like plugins, data
//! files stay inside `rules/data`: one that leads out (a symlink to `/etc/passwd`) is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rhai::{Array, Dynamic, Map};

use super::CompileError;
use super::engine::{MAX_COLLECTION_SIZE, MAX_STRING_SIZE};
use crate::config::tree::{self, Node, Value};

/// The data files' folder, inside the rules directory.
pub const DIR: &str = "data";

/// Every data file's value, by name (the file name without its extension).
#[derive(Debug, Default)]
pub struct DataSet {
    values: BTreeMap<String, Dynamic>,
}

impl DataSet {
    /// Reads `rules_dir/data/*.{txt,yaml,yml}`; a missing folder is an empty set. Each bad file
    /// is added to `errors` and left out.
    pub fn load(rules_dir: &Path, errors: &mut Vec<CompileError>) -> DataSet {
        let dir = rules_dir.join(DIR);
        let mut set = DataSet::default();
        let files = match data_files(&dir) {
            Ok(files) => files,
            Err(e) => {
                errors.push(error(&dir, 0, 0, format!("cannot read data directory: {e}")));
                return set;
            }
        };
        // Canonical once, so that a data directory that is itself a symlink stays allowed.
        let root = match (files.is_empty(), dir.canonicalize()) {
            (true, _) => PathBuf::new(),
            (false, Ok(root)) => root,
            (false, Err(e)) => {
                errors.push(error(&dir, 0, 0, format!("cannot read data directory: {e}")));
                return set;
            }
        };
        for (name, path) in files {
            if set.values.contains_key(&name) {
                errors.push(error(&path, 0, 0, format!("a second data file named `{name}`; rename one")));
                continue;
            }
            let text = match confined(&root, &path).and_then(|real| read_text(&path, &real)) {
                Ok(text) => text,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let parsed = if path.extension().is_some_and(|e| e == "txt") { list(&text) } else { yaml(&text) };
            match parsed {
                Ok(value) => {
                    set.values.insert(name, value);
                }
                Err((line, column, message)) => errors.push(error(&path, line, column, message)),
            }
        }
        set
    }

    /// A copy of the value of `name`.
    pub fn get(&self, name: &str) -> Option<Dynamic> {
        self.values.get(name).cloned()
    }

    /// The names there are, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.values.keys().map(String::as_str).collect()
    }
}

fn error(file: &Path, line: usize, column: usize, message: String) -> CompileError {
    CompileError { file: file.to_owned(), line, column, message }
}

/// `(name, path)` of the data files in `dir`, sorted by file name; `.txt` before `.yaml` for
/// the same name, so the duplicate reported is the same every time.
fn data_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let known = path.extension().is_some_and(|e| e == "txt" || e == "yaml" || e == "yml");
        // Hidden files are editors' (`.vip.txt.swp`) or the user's business, not data.
        let hidden = entry_hidden(&path);
        if let (true, false, true, Some(stem)) = (known, hidden, path.is_file(), path.file_stem()) {
            files.push((stem.to_string_lossy().into_owned(), path));
        }
    }
    files.sort();
    Ok(files)
}

fn entry_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The real path of the data file `path`, refused when it leads out of the data directory
/// `root` (canonical): a symlink there must not hand rules any file the daemon can read.
fn confined(root: &Path, path: &Path) -> Result<PathBuf, CompileError> {
    let real = path.canonicalize().map_err(|e| error(path, 0, 0, format!("cannot read data file: {e}")))?;
    if real.starts_with(root) {
        return Ok(real);
    }
    let message = format!(
        "data file is outside the data directory: {} leads to {}; data files must be inside {}",
        path.display(),
        real.display(),
        root.display()
    );
    Err(error(path, 0, 0, message))
}

/// The text of the data file `path`, read at its real path `real`; invalid UTF-8 is reported
/// at the line where it starts.
fn read_text(path: &Path, real: &Path) -> Result<String, CompileError> {
    let bytes = std::fs::read(real).map_err(|e| error(path, 0, 0, format!("cannot read data file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        error(path, line, column, "cannot read data file: not valid UTF-8".to_owned())
    })
}

/// How much of Rhai's size limits a value uses; a value over them could not be returned to a
/// script, so the file is refused when it is read instead of failing every rule that reads it.
#[derive(Default)]
struct Budget {
    items: usize,
    entries: usize,
    bytes: usize,
}

type Failure = (usize, usize, String);

impl Budget {
    fn add(&mut self, items: usize, entries: usize, bytes: usize, line: usize, column: usize) -> Result<(), Failure> {
        self.items += items;
        self.entries += entries;
        self.bytes += bytes;
        let over = |what: &str, limit: usize| Err((line, column, format!("too large: more than {limit} {what}")));
        if self.items > MAX_COLLECTION_SIZE {
            return over("list items in all", MAX_COLLECTION_SIZE);
        }
        if self.entries > MAX_COLLECTION_SIZE {
            return over("map entries in all", MAX_COLLECTION_SIZE);
        }
        if self.bytes > MAX_STRING_SIZE {
            return over("bytes of text in all", MAX_STRING_SIZE);
        }
        Ok(())
    }
}

/// A `.txt` list: an array of strings.
fn list(text: &str) -> Result<Dynamic, Failure> {
    let mut budget = Budget::default();
    let mut items = Array::new();
    for (i, line) in text.lines().enumerate() {
        let entry = strip_comment(line).trim();
        if entry.is_empty() {
            continue;
        }
        budget.add(1, 0, entry.len(), i + 1, 1)?;
        items.push(entry.into());
    }
    Ok(items.into())
}

/// The line without a `#` comment: one starts at the line's start or after a blank, so an
/// address with `#` inside it stays whole.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let start = (0..bytes.len()).find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()));
    start.map_or(line, |i| &line[..i])
}

/// A `.yaml` file: its value as Rhai sees it.
fn yaml(text: &str) -> Result<Dynamic, Failure> {
    let root = tree::parse(text)
        .map_err(|(pos, message)| (pos.line as usize, pos.column as usize, format!("not valid YAML: {message}")))?;
    convert(&root, &mut Budget::default())
}

fn convert(node: &Node, budget: &mut Budget) -> Result<Dynamic, Failure> {
    let (line, column) = (node.pos.line as usize, node.pos.column as usize);
    Ok(match &node.value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Int(n) => (*n).into(),
        Value::Float(x) => (*x).into(),
        Value::Str(s) => {
            budget.add(0, 0, s.len(), line, column)?;
            s.clone().into()
        }
        Value::Seq(items) => {
            budget.add(items.len(), 0, 0, line, column)?;
            items.iter().map(|item| convert(item, budget)).collect::<Result<Array, _>>()?.into()
        }
        Value::Map(entries) => {
            budget.add(0, entries.len(), 0, line, column)?;
            let mut map = Map::new();
            for (key, value) in entries {
                if map.contains_key(key.name.as_str()) {
                    let message = format!("duplicate key `{}`", key.name);
                    return Err((key.pos.line as usize, key.pos.column as usize, message));
                }
                map.insert(key.name.as_str().into(), convert(value, budget)?);
            }
            map.into()
        }
    })
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
