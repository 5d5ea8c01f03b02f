//! The in-process part: how fast tidings parses mail and evaluates the backlog rule file
//! (`benches/rules/backlog.rhai`) over the real corpus, on one thread.
//!
//! Parse rate: `tidings::message::parse` over every corpus message, whole and header block
//! only (what the pipeline fetches when no rule reads a body). Evaluation rate: the rule file
//! compiled the way the daemon compiles a rules directory, run through `RuleSet::evaluate` (the
//! call the watcher makes) over views parsed beforehand: in slices, parsed then decided as the
//! watcher does (the target's row), and all parsed first (views cold in the cache, a note).
//! Views are parsed afresh for every pass, since header values are decoded when first read.
//! Both in passes over the whole corpus; the best pass counts, the one least disturbed by
//! whatever else the machine runs.
//!
//! `TIDINGS_BENCH_RULE_PASSES` sets the passes (default 5).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tidings::config::Config;
use tidings::message::{MessageKey, MessageView, Meta};
use tidings::plan::Action;
use tidings::rules::RuleSet;

use crate::table::Table;

/// The issue's target for the evaluation rate, messages/s on one core.
const TARGET: f64 = 150_000.0;

/// Messages parsed then decided together, as the watcher fetches a backlog (its BACKLOG_SLICE).
const SLICE: usize = 200;

pub fn run(table: &mut Table) -> Result<()> {
    let passes = passes()?;
    let corpus = crate::corpus::real()?;
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    eprintln!("rules: {} corpus messages, {:.1} MB, {passes} passes each", corpus.len(), mb(bytes));

    let whole = best(passes, || {
        for (i, raw) in corpus.iter().enumerate() {
            std::hint::black_box(tidings::message::parse(raw, meta(i, false)));
        }
    });
    let rate = mb(bytes) / whole.as_secs_f64();
    eprintln!("rules: parse, whole messages: {rate:.0} MB/s ({:.0} msg/s)", per_sec(corpus.len(), whole));
    table.note(
        "rules: parse rate, whole messages (1 core)",
        format!("{rate:.0} MB/s, {:.0} msg/s (mail-parser alone: ~196 MB/s)", per_sec(corpus.len(), whole)),
    );

    let heads: Vec<&[u8]> = corpus.iter().map(|raw| header_block(raw)).collect();
    let head_bytes: usize = heads.iter().map(|h| h.len()).sum();
    let headers = best(passes, || {
        for (i, head) in heads.iter().enumerate() {
            std::hint::black_box(tidings::message::parse(head, meta(i, true)));
        }
    });
    let head_rate = per_sec(corpus.len(), headers);
    eprintln!(
        "rules: parse, header blocks only: {head_rate:.0} msg/s ({:.0} MB/s of headers)",
        mb(head_bytes) / headers.as_secs_f64()
    );
    table.note(
        "rules: parse rate, header block only (1 core)",
        format!(
            "{head_rate:.0} msg/s ({:.0} MB/s of headers; {:.0} MB/s of whole mail)",
            mb(head_bytes) / headers.as_secs_f64(),
            mb(bytes) / headers.as_secs_f64()
        ),
    );

    let rules = compile()?;
    // Views are parsed afresh for every pass, untimed: a view decodes a header value the first
    // time it is read, and that decoding is part of what a rule costs in the pipeline.
    let parse_all = || -> Vec<Arc<MessageView>> {
        corpus.iter().enumerate().map(|(i, raw)| Arc::new(tidings::message::parse(raw, meta(i, false)))).collect()
    };
    let now = chrono::Utc::now();
    let (moves, flags, failures) = tally(&rules, &parse_all(), now);
    eprintln!("rules: decisions over the corpus: moves {moves:?}, flags {flags:?}");
    anyhow::ensure!(failures == 0, "the backlog rule failed on {failures} messages");
    anyhow::ensure!(moves.values().sum::<usize>() > 0, "the backlog rule moved nothing: the rule or the API is broken");

    // As the watcher works: a slice of messages parsed, then decided while still in cache.
    // Only the deciding is timed.
    let sliced = (0..passes.max(1) + 1)
        .map(|_| {
            let mut took = Duration::ZERO;
            for (n, slice) in corpus.chunks(SLICE).enumerate() {
                let views: Vec<Arc<MessageView>> = slice
                    .iter()
                    .enumerate()
                    .map(|(i, raw)| Arc::new(tidings::message::parse(raw, meta(n * SLICE + i, false))))
                    .collect();
                let started = Instant::now();
                for view in &views {
                    std::hint::black_box(rules.evaluate(view, &[], now));
                }
                took += started.elapsed();
            }
            took
        })
        .skip(1)
        .min()
        .unwrap_or_default();
    let rate = per_sec(corpus.len(), sliced);
    eprintln!(
        "rules: evaluation, {SLICE}-message slices just parsed: {rate:.0} msg/s on one core ({:.2} µs/msg)",
        1e6 / rate
    );
    table.add(
        "rules: backlog.rhai evaluation (1 core)",
        format!(
            "{rate:.0} msg/s ({:.2} µs/msg; slices of {SLICE} just parsed, as the watcher decides; best of {passes} passes over {} messages)",
            1e6 / rate,
            corpus.len()
        ),
        format!(">= {TARGET:.0} msg/s"),
        rate >= TARGET,
    );

    // The same with every message parsed first: each view is cold in the cache when decided.
    let views = std::cell::RefCell::new(Vec::new());
    let cold = best_of(
        passes,
        || *views.borrow_mut() = parse_all(),
        || {
            for view in views.borrow().iter() {
                std::hint::black_box(rules.evaluate(view, &[], now));
            }
        },
    );
    let rate = per_sec(corpus.len(), cold);
    eprintln!("rules: evaluation, all parsed first: {rate:.0} msg/s on one core ({:.2} µs/msg)", 1e6 / rate);
    table.note(
        "rules: backlog.rhai evaluation, all messages parsed first (1 core)",
        format!("{rate:.0} msg/s ({:.2} µs/msg: views cold in the cache)", 1e6 / rate),
    );
    Ok(())
}

fn passes() -> Result<usize> {
    match std::env::var("TIDINGS_BENCH_RULE_PASSES") {
        Ok(n) => n.parse().context("cannot read TIDINGS_BENCH_RULE_PASSES as a number"),
        Err(_) => Ok(5),
    }
}

/// The fastest of `passes` runs of `f` (after one warm-up run).
fn best(passes: usize, f: impl FnMut()) -> Duration {
    best_of(passes, || (), f)
}

/// The fastest of `passes` runs of `f` (after one warm-up run), each after an untimed `setup`.
fn best_of(passes: usize, mut setup: impl FnMut(), mut f: impl FnMut()) -> Duration {
    setup();
    f();
    (0..passes.max(1))
        .map(|_| {
            setup();
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn per_sec(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

/// Fetch metadata for message `i`: every other one is \Seen, so that the rule's unseen test
/// goes both ways. `headers_only`: the header block was fetched and the body left on the
/// server, as the watcher does when no rule reads a body.
fn meta(i: usize, headers_only: bool) -> Meta {
    let mut meta = Meta::new(MessageKey::new("bench", "BenchRun", 1, u32::try_from(i + 1).unwrap_or(u32::MAX)));
    if i.is_multiple_of(2) {
        meta.flags.push("\\Seen".into());
    }
    meta.body_deferred = headers_only;
    meta
}

/// The header block: up to and including the first blank line (the whole message if none).
fn header_block(raw: &[u8]) -> &[u8] {
    let mut line_start = 0;
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' {
            let line = &raw[line_start..i];
            if line.is_empty() || line == b"\r" {
                return &raw[..=i];
            }
            line_start = i + 1;
        }
    }
    raw
}

/// The backlog rule file compiled as the only live rule, as `tidings` compiles a rules dir.
fn compile() -> Result<RuleSet> {
    let dir = tempfile::tempdir().context("cannot create a rules directory")?;
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rules/backlog.rhai");
    std::fs::create_dir(dir.path().join("rules")).context("cannot create a rules directory")?;
    std::fs::copy(&source, dir.path().join("rules/backlog.rhai"))
        .with_context(|| format!("cannot copy {}", source.display()))?;
    let config = Config::from_yaml("rules: rules\nplugins: plugins\naccounts: {}\n", &dir.path().join("tidings.yaml"))
        .context("cannot build the bench config")?;
    let rules = RuleSet::compile(&config).context("cannot compile benches/rules/backlog.rhai")?;
    anyhow::ensure!(rules.live.len() == 1, "expected one live rule, got {}", rules.live.len());
    Ok(rules)
}

type Counts = BTreeMap<String, usize>;

/// Moves per folder and flags per name over the corpus, and how many evaluations failed.
fn tally(rules: &RuleSet, views: &[Arc<MessageView>], now: chrono::DateTime<chrono::Utc>) -> (Counts, Counts, usize) {
    let (mut moves, mut flags, mut failures) = (Counts::new(), Counts::new(), 0);
    for view in views {
        let evaluation = rules.evaluate(view, &[], now);
        failures += evaluation.failures.len();
        for decision in evaluation.decisions {
            match decision.action {
                Action::Move { mailbox } => *moves.entry(mailbox).or_default() += 1,
                Action::AddFlags { flags: added } => {
                    for flag in added {
                        *flags.entry(flag).or_default() += 1;
                    }
                }
                other => *flags.entry(format!("{other:?}")).or_default() += 1,
            }
        }
    }
    (moves, flags, failures)
}
