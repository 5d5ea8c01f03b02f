//! Corpus test: every message in the shared corpus (`$TIDINGS_CORPUS`, else `../shared/corpus`
//! next to the crate: ~3,600 real and ~375 malformed messages, see its SOURCES.md) yields a view,
//! no panic escapes, and facts that hold across real mail hold in the views.
//!
//! The corpus is read in place and never copied into the project. Without it the test is skipped
//! loudly, except under CI (`CI=true`), where it fails: CI must run it.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;

use super::{MessageKey, MessageView, Meta, parse};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("TIDINGS_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"),
    }
}

/// Every `.eml` under `dir`, sorted so that failures are reported in a stable order.
fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "eml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// One parsed corpus file.
struct Parsed {
    /// `real/usrp-users`, `malformed/flanker`, ...
    folder: String,
    name: String,
    view: MessageView,
    /// mail-parser itself reads an address with an `@` in the From header.
    parser_from: bool,
    took: Duration,
}

/// Parses every file; the names of files whose parse let a panic escape are returned apart.
fn parse_all(root: &Path, files: &[PathBuf]) -> (Vec<Parsed>, Vec<String>) {
    let mut parsed = Vec::new();
    let mut escaped = Vec::new();
    for (uid, path) in files.iter().enumerate() {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let folder = rel.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let name = rel.to_string_lossy().into_owned();
        let raw = std::fs::read(path).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        let key = MessageKey::new("corpus", folder.clone(), 1, uid as u32 + 1);
        let start = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| parse(&raw, Meta::new(key)))) {
            Ok(view) => {
                let took = start.elapsed();
                let parser_from = parser_reads_from(&raw);
                parsed.push(Parsed { folder, name, view, parser_from, took });
            }
            Err(_) => escaped.push(name),
        }
    }
    (parsed, escaped)
}

/// Whether mail-parser on its own finds a From address with an `@` (a panic counts as no).
fn parser_reads_from(raw: &[u8]) -> bool {
    catch_unwind(|| {
        let message = MessageParser::new().parse_headers(raw)?;
        let from = message.from()?.first()?.address.as_deref()?.to_string();
        Some(from.contains('@'))
    })
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn count(parsed: &[Parsed], folder_prefix: &str, test: impl Fn(&MessageView) -> bool) -> usize {
    parsed.iter().filter(|p| p.folder.starts_with(folder_prefix) && test(&p.view)).count()
}

#[test]
fn corpus_every_message_yields_a_view() {
    let root = corpus_dir();
    if !root.is_dir() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "corpus not found at {} and CI=true: CI must run the corpus test", root.display());
        eprintln!("\n\n*** SKIPPED: corpus not found at {} (set TIDINGS_CORPUS) ***\n", root.display());
        return;
    }
    let files = eml_files(&root);
    assert!(files.len() > 100, "only {} .eml files under {}", files.len(), root.display());
    let start = Instant::now();
    let (parsed, escaped) = parse_all(&root, &files);
    let elapsed = start.elapsed();
    assert!(escaped.is_empty(), "a panic escaped parse() on: {escaped:?}");
    assert_eq!(parsed.len(), files.len(), "every file yields a view");
    report(&parsed, elapsed);
    check_real_facts(&parsed);
}

/// Counts and timings, on stderr, so that a run shows what the corpus exercised.
fn report(parsed: &[Parsed], elapsed: Duration) {
    let mut per_folder: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for p in parsed {
        let entry = per_folder.entry(p.folder.as_str()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(p.view.degraded());
    }
    eprintln!("corpus: {} messages parsed in {:.2?}", parsed.len(), elapsed);
    for (folder, (n, degraded)) in &per_folder {
        eprintln!("  {folder:<36} {n:>5} parsed, {degraded:>3} by the hand-scan fallback");
    }
    let slowest = parsed.iter().max_by_key(|p| p.took).expect("at least one message");
    eprintln!("  slowest: {} in {:.2?}", slowest.name, slowest.took);
    let degraded: Vec<&str> = parsed.iter().filter(|p| p.view.degraded()).map(|p| p.name.as_str()).collect();
    eprintln!("  degraded: {degraded:?}");
    let clipped = parsed.iter().filter(|p| p.view.body_clipped()).count();
    let real = |test: fn(&MessageView) -> bool| count(parsed, "real/", test);
    eprintln!(
        "  real: list_id {}, auto_submitted {}, reply {}, date {}, from {}, html {}, attachments {}, dmarc {}; clipped (all) {clipped}",
        real(|v| v.list_id().is_some()),
        real(|v| v.is_auto_submitted()),
        real(|v| v.is_reply()),
        real(|v| v.date().is_some()),
        real(|v| v.from().is_some()),
        real(|v| v.html().is_some()),
        real(|v| !v.attachments().is_empty()),
        real(|v| v.auth().dmarc.is_some()),
    );
}

/// Facts checked against the corpus's SOURCES.md and by hand; each must hold for every run.
fn check_real_facts(parsed: &[Parsed]) {
    let real: Vec<&Parsed> = parsed.iter().filter(|p| p.folder.starts_with("real/")).collect();
    assert!(real.len() >= 3500, "real/ has {} messages", real.len());
    let degraded: Vec<&str> = real.iter().filter(|p| p.view.degraded()).map(|p| p.name.as_str()).collect();
    assert!(degraded.is_empty(), "real mail must not need the fallback: {degraded:?}");

    let with_list_id = real.iter().filter(|p| p.view.list_id().is_some()).count();
    assert!(with_list_id >= 1850, "only {with_list_id} real messages have a list_id");
    for p in parsed.iter().filter(|p| p.folder == "real/usrp-users") {
        let v = &p.view;
        assert!(v.list_id().is_some_and(|id| id.contains("usrp-users")), "{}: list_id {:?}", p.name, v.list_id());
        assert!(v.is_auto_submitted(), "{}: a list post is auto-submitted for auto-reply purposes", p.name);
    }
    for p in parsed.iter().filter(|p| p.folder == "real/open-iscsi") {
        assert_eq!(p.view.list_id(), Some("open-iscsi.googlegroups.com"), "{}", p.name);
    }

    for p in parsed.iter().filter(|p| p.parser_from) {
        let from = p.view.from();
        assert!(from.is_some_and(|a| !a.domain.is_empty()), "{}: From read by mail-parser, view has {from:?}", p.name);
    }
    for p in &real {
        if p.view.header("From").is_some_and(|f| f.contains('@')) {
            assert!(p.view.from().is_some_and(|a| !a.domain.is_empty()), "{}: From with an @ but no address", p.name);
        }
    }
    // The few real messages without one have no From, an empty one, or `<>` (bounces).
    let fromless = real.iter().filter(|p| p.view.from().is_none()).count();
    assert!(fromless <= 20, "{fromless} real messages have no from");

    // 3 real messages have no Date, 9 spam say year 0102, 2 bounces write dates no parser reads.
    let dated = real.iter().filter(|p| p.view.date().is_some()).count();
    assert!(dated + 20 >= real.len(), "only {dated} of {} real messages have a date", real.len());

    // usrp-users: the list server's Authentication-Results (about half the posts) has DKIM.
    let with_dkim = count(parsed, "real/usrp-users", |v| v.auth().dkim.is_some());
    assert!(with_dkim >= 400, "only {with_dkim} usrp-users posts have a DKIM verdict");

    // Every HTML-only message with words in its HTML gets text for rules to match.
    for p in &real {
        let v = &p.view;
        if v.html().is_some_and(|h| super::html::html_to_text(h).chars().any(char::is_alphanumeric)) {
            assert!(v.text().chars().any(char::is_alphanumeric), "{}: HTML but no text", p.name);
        }
    }

    let sisimai_auto = count(parsed, "real/sisimai-bounces", |v| v.is_auto_submitted());
    assert!(sisimai_auto >= 286, "only {sisimai_auto} sisimai bounces are auto-submitted");
    for p in parsed.iter().filter(|p| p.folder == "malformed/sisimai-cr-newlines") {
        assert!(p.view.all_headers().len() >= 5, "{}: CR-only headers not split", p.name);
    }
}

/// The header-only parse (a header block fetched without its body) uses the hand scan, the
/// whole-message parse mail-parser: on real mail both must find the same headers, names and
/// decoded values, in the same order.
#[test]
fn corpus_headers_alone_read_as_in_the_whole_message() {
    let root = corpus_dir();
    if !root.is_dir() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "corpus not found at {} and CI=true: CI must run the corpus test", root.display());
        eprintln!("\n\n*** SKIPPED: corpus not found at {} (set TIDINGS_CORPUS) ***\n", root.display());
        return;
    }
    let files = eml_files(&root.join("real"));
    assert!(files.len() > 1000, "only {} real .eml files under {}", files.len(), root.display());
    let mut differ = Vec::new();
    for (uid, path) in files.iter().enumerate() {
        let raw = std::fs::read(path).unwrap();
        let key = MessageKey::new("work", "INBOX", 1, uid as u32 + 1);
        let whole = parse(&raw, Meta::new(key.clone()));
        let alone = parse(&raw, Meta { body_deferred: true, ..Meta::new(key) });
        let pairs = |v: &MessageView| -> Vec<(String, String)> {
            v.all_headers().iter().map(|h| (h.name().to_owned(), h.value().to_owned())).collect()
        };
        if pairs(&whole) != pairs(&alone) || whole.from() != alone.from() || whole.subject() != alone.subject() {
            differ.push(path.display().to_string());
        }
        assert!(alone.text().is_empty() && alone.attachments().is_empty() && alone.body_deferred());
    }
    assert!(
        differ.is_empty(),
        "{} messages read differently from their header block alone: {:?}",
        differ.len(),
        differ
    );
}
