//! The shared corpus (`$TIDINGS_CORPUS`, else `../shared/corpus`): the suite needs it and says
//! so plainly when it is missing.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// The corpus directory (with `real/` and `malformed/`).
pub fn dir() -> Result<PathBuf> {
    let dir = std::env::var_os("TIDINGS_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    anyhow::ensure!(dir.join("real").is_dir(), "the corpus is not at {} (set TIDINGS_CORPUS)", dir.display());
    Ok(dir)
}

/// Every real message, raw, sorted by file name (so every run sees the same order).
pub fn real() -> Result<Vec<Vec<u8>>> {
    let real = dir()?.join("real");
    let mut paths: Vec<PathBuf> = walk(&real)?;
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))).collect()
}

fn walk(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else if path.is_file() && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            out.push(path);
        }
    }
    Ok(out)
}
