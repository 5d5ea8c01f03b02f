//! The benchmark suite: `cargo bench --bench suite [-- PART...]`, PART one of `rules`,
//! `backlog`, `push`, `footprint`, `store` (default: all, in that order). Each part measures,
//! prints what it did as it goes, and adds rows to one table printed at the end, with each
//! issue-8 target and whether it was met. `benches/run` installs the servers and imapfilter first.
//!
//! The end-to-end parts run the release `tidings` binary against the test harness's real
//! Dovecot (and Cyrus, Postfix) on loopback; nothing is mocked. `store` drives the library's
//! `Store` in this process against a temp SQLite file and the harness's real PostgreSQL.

#[path = "../../tests/harness/mod.rs"]
#[allow(dead_code, unused_imports)]
mod harness;

mod backlog;
mod corpus;
mod footprint;
mod push;
mod raw_imap;
mod rules;
mod store;
mod table;

use table::Table;

const PARTS: &[&str] = &["rules", "backlog", "push", "footprint", "store"];

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (the test suite) runs this
    // binary without it, in a debug build, where the parts would take many minutes and
    // measure nothing worth having.
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/suite: measures only under `cargo bench --bench suite` (benches/run); nothing run");
        return Ok(());
    }
    // Anything not starting with '-' names a part.
    let asked: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for part in &asked {
        anyhow::ensure!(PARTS.contains(&part.as_str()), "unknown part {part:?}: expected one of {PARTS:?}");
    }
    let wanted = |part: &str| asked.is_empty() || asked.iter().any(|a| a == part);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut table = Table::default();
    if wanted("rules") {
        rules::run(&mut table)?;
    }
    if wanted("backlog") {
        runtime.block_on(backlog::run(&mut table))?;
    }
    if wanted("push") {
        runtime.block_on(push::run(&mut table))?;
    }
    if wanted("footprint") {
        runtime.block_on(footprint::run(&mut table))?;
    }
    if wanted("store") {
        runtime.block_on(store::run(&mut table))?;
    }
    table.print();
    Ok(())
}
