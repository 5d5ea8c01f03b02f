//! What each fuzz target does with its input. The regression tests include this same file
//! (`tests/fuzz_regressions.rs`), so a saved input runs through exactly the code the fuzzer
//! ran, and a finding stays fixed.
//!
//! Each function takes the fuzzer's bytes, drives one entry point the daemon uses on hostile
//! input, checks what must hold whatever the input (a panic here is a finding), and returns a
//! short outcome that a regression test can compare.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use tidings::config::{self, Config};
use tidings::message::{GmailAttrs, HEADER_LIMIT, MessageKey, MessageView, Meta, TEXT_LIMIT};
use tidings::plan::{EventMessage, Original};
use tidings::rules::RuleSet;

/// What the config loader made of the text.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The bytes are not UTF-8: `Config::load` refuses them before the loader sees them.
    NotText,
    /// A valid config with this many accounts.
    Valid(usize),
    /// Refused; the first line of the message (`cannot load config ...: N problems`).
    Invalid(String),
}

/// YAML text -> validated config, as `tidings check` and `tidings run` load it.
pub fn config(data: &[u8]) -> ConfigOutcome {
    let Ok(text) = std::str::from_utf8(data) else { return ConfigOutcome::NotText };
    let path = Path::new("/nonexistent/tidings-fuzz/tidings.yaml");
    match Config::from_yaml(text, path) {
        Ok(config) => {
            for account in &config.accounts {
                // `tidings check` prints this for every account.
                assert!(!config::budget::summary(account, &config.schedules).is_empty());
            }
            ConfigOutcome::Valid(config.accounts.len())
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("cannot load config /nonexistent/tidings-fuzz/tidings.yaml"), "{message}");
            let config::Error::Invalid { problems, .. } = &error else { panic!("not a validation error: {error:?}") };
            assert!(!problems.is_empty(), "refused without a problem: {message}");
            assert!(problems.iter().all(|p| !p.message.is_empty()), "{message}");
            ConfigOutcome::Invalid(message.lines().next().unwrap_or_default().to_owned())
        }
    }
}

/// What the message view saw, in a few numbers.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageOutcome {
    /// The MIME parser gave up and the hand scan read the headers.
    pub degraded: bool,
    /// Headers kept.
    pub headers: usize,
    /// Attachments kept.
    pub attachments: usize,
    /// The decoded subject.
    pub subject: String,
}

/// The fetch metadata a fuzz input's first byte selects: truncated (bit 0), body deferred (bit
/// 1), Gmail attributes (bit 2); the rest of the input is the message.
fn split_meta(data: &[u8]) -> (Meta, &[u8]) {
    let (mode, raw) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    (meta(mode), raw)
}

/// The fetch metadata of bits 0 to 2 of `mode` (see [`split_meta`]).
fn meta(mode: u8) -> Meta {
    let received = DateTime::parse_from_rfc3339("2026-12-06T08:00:00Z").map(|d| d.to_utc()).ok();
    let gmail = GmailAttrs { msgid: 1, thread_id: 2, labels: vec!["\\Inbox".into(), "Receipts".into()] };
    Meta {
        key: MessageKey::new("fuzz", "INBOX", 7, 42),
        flags: vec!["\\Seen".into(), "$Junk".into()],
        internal_date: received,
        size: None,
        truncated: mode & 1 != 0,
        body_deferred: mode & 2 != 0,
        gmail: (mode & 4 != 0).then_some(gmail),
    }
}

/// Arbitrary bytes -> message view, then every accessor rules and payloads read.
pub fn message(data: &[u8]) -> MessageOutcome {
    let (meta, raw) = split_meta(data);
    let headers_only = meta.truncated || meta.body_deferred;
    let view = tidings::message::parse(raw, meta);
    read_everything(&view);
    assert!(view.text().len() <= TEXT_LIMIT);
    assert!(view.html().is_none_or(|h| h.len() <= TEXT_LIMIT));
    assert!(view.all_headers().len() <= HEADER_LIMIT);
    assert!(view.attachments().len() <= HEADER_LIMIT);
    assert_eq!(view.raw(), raw, "the view keeps the bytes it was given");
    if headers_only {
        assert!(view.text().is_empty() && view.attachments().is_empty(), "a header block has no body");
    }
    // The webhook payload and the forwarded original are built from the view: both serialise.
    serde_json::to_string(&EventMessage::of(&view)).expect("an event's message serialises");
    serde_json::to_string(&Original::of(&view)).expect("an original serialises");
    MessageOutcome {
        degraded: view.degraded(),
        headers: view.all_headers().len(),
        attachments: view.attachments().len(),
        subject: view.subject().to_owned(),
    }
}

/// Calls every public accessor of the view (the `msg` API is built on these).
fn read_everything(view: &MessageView) {
    let _ = (view.key(), view.account(), view.mailbox(), view.size(), view.truncated(), view.body_deferred());
    let _ = (view.body_clipped(), view.degraded(), view.flags(), view.keywords(), view.labels());
    let _ = (view.gmail(), view.thread_id(), view.has_flag("\\seen"), view.internal_date(), view.date());
    let addresses = [view.to(), view.cc(), view.bcc(), view.reply_to()].concat();
    for address in addresses.iter().chain(view.from()).chain(view.sender()) {
        assert_eq!(address.domain, address.domain.to_lowercase(), "{address:?}");
    }
    let _ = (view.subject(), view.message_id(), view.in_reply_to(), view.references(), view.list_id());
    for header in view.all_headers() {
        assert!(view.header(header.name()).is_some(), "header {:?} not found by its own name", header.name());
        let _ = header.value();
    }
    let _ = (view.headers("received"), view.header("x-missing"), view.auth(), view.delivered_to());
    let _ = (view.text(), view.html(), view.attachments(), view.is_reply(), view.is_auto_submitted());
}

/// What the rules decided.
#[derive(Debug, PartialEq, Eq)]
pub enum RulesOutcome {
    /// The input was not a rule and a message (no NUL between them, or the rule is not UTF-8).
    NoRule,
    /// The fuzzed rule did not compile; the first line of the error.
    CompileError(String),
    /// Evaluated: the plan's actions by kind, and the rules that failed.
    Planned {
        /// `Action::kind()` of each planned action, in order.
        actions: Vec<&'static str>,
        /// The rules that failed, with their errors.
        failures: Vec<String>,
    },
}

/// The time every evaluation runs at, so that outcomes repeat.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-06T08:00:00Z").map(|d| d.to_utc()).unwrap_or_default()
}

/// The repository: the directory of this file's crate, or its parent for the fuzz crate.
fn repo() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if dir.join("rules").is_dir() { dir } else { dir.parent().map(Path::to_owned).unwrap_or(dir) }
}

/// Reads every `msg` property and calls the text helpers, in the one engine, on any message.
const EVERY_PROPERTY: &str = r#"
let addresses = [msg.from, msg.sender] + msg.to + msg.cc + msg.bcc + msg.reply_to + msg.recipients;
for a in addresses { let s = a.address + a.domain + a.name + a.to_string(); s.matches_glob("*@*"); }
let texts = [msg.subject, msg.text, msg.mailbox, msg.account] + msg.delivered_to + msg.in_reply_to
    + msg.references + msg.flags + msg.keywords + msg.labels + msg.headers("Received");
for t in texts { t.icontains("x"); t.istarts_with("re:"); t.matches("(?i)invoice"); t.captures("([0-9]+)"); }
for d in [msg.date, msg.received] { if d != () { d.age_days; d.year; d.format("%Y-%m"); (d + "1d").to_string(); } }
for v in [msg.message_id, msg.list_id, msg.html, msg.header("Subject"), msg.thread_id, msg.auth.dkim,
          msg.auth.spf, msg.auth.dmarc] { if v != () { v.to_string(); } }
for a in msg.attachments { a.size; a.type; a.name; }
if msg.is_reply || msg.is_auto_submitted || msg.truncated || msg.has_flag("\\Seen") || msg.size < 0 { label("x"); }
if msg.from.domain.is_subdomain_of("example.com") { copy_to("Seen/" + msg.from.domain); }
"#;

/// The shipped rules (with their data files) and [`EVERY_PROPERTY`], compiled once.
fn shipped() -> &'static RuleSet {
    static SHIPPED: OnceLock<RuleSet> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let dir = scratch_dir();
        let (rules, repo) = (dir.join("rules"), repo());
        copy_dir(&repo.join("rules"), &rules, "rhai");
        copy_dir(&repo.join("rules/data"), &rules.join("data"), "");
        std::fs::write(rules.join("zz-every-property.rhai"), EVERY_PROPERTY).expect("write the rule");
        let yaml = format!("rules: rules\nplugins: {}\naccounts: {{}}\n", repo.join("plugins").display());
        let config = Config::from_yaml(&yaml, &dir.join("tidings.yaml")).expect("the fuzz config is valid");
        let set = RuleSet::compile(&config).unwrap_or_else(|e| panic!("the shipped rules do not compile: {e}"));
        // Compiled, data files read: the copies are not needed any more.
        let _ = std::fs::remove_dir_all(&dir);
        set
    })
}

/// A directory of its own under the temp dir, for one process and call.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tidings-fuzz-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch dir");
    dir
}

/// Copies the files of `from` whose name ends with `ext` into `to` (not recursively).
fn copy_dir(from: &Path, to: &Path, ext: &str) {
    std::fs::create_dir_all(to).expect("create a rules dir");
    for entry in std::fs::read_dir(from).expect("list the shipped rules").flatten() {
        let path = entry.path();
        if path.is_file() && path.to_string_lossy().ends_with(ext) {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy a shipped rule");
        }
    }
}

/// The rule bridge. The first byte's bits 0 to 2 are the message's fetch metadata (as for
/// [`message`]); bit 3 clear: the shipped rules (and one reading every property) over the
/// message in the rest, which must never fail; bit 3 set: the rest is a rule's source, a NUL,
/// and a message; the rule is compiled and run as `tidings run` would, with tight limits.
pub fn rules(data: &[u8]) -> RulesOutcome {
    let (mode, rest) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    if mode & 8 == 0 {
        let outcome = evaluate(shipped(), meta(mode), rest);
        if let RulesOutcome::Planned { failures, .. } = &outcome {
            // The clock counts time the machine spent elsewhere; anything else is a bug.
            let real: Vec<_> = failures.iter().filter(|f| !f.contains("wall-clock limit")).collect();
            assert!(real.is_empty(), "a shipped rule failed on a message: {real:?}");
        }
        return outcome;
    }
    let Some(nul) = rest.iter().position(|&b| b == 0) else { return RulesOutcome::NoRule };
    let Ok(source) = std::str::from_utf8(&rest[..nul]) else { return RulesOutcome::NoRule };
    let dir = scratch_dir();
    let outcome = compile_and_evaluate(&dir, source, meta(mode), &rest[nul + 1..]);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn compile_and_evaluate(dir: &Path, source: &str, meta: Meta, message: &[u8]) -> RulesOutcome {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("create a rules dir");
    std::fs::write(rules.join("fuzzed.rhai"), source).expect("write the rule");
    let yaml = format!(
        "rules: rules\nplugins: {}\naccounts: {{}}\nlimits: {{ operations: 20000, wall_time: 50ms }}\n",
        repo().join("plugins").display()
    );
    let config = Config::from_yaml(&yaml, &dir.join("tidings.yaml")).expect("the fuzz config is valid");
    match RuleSet::compile(&config) {
        Ok(set) => evaluate(&set, meta, message),
        Err(error) => {
            let text = error.to_string();
            assert!(text.starts_with("cannot compile rules: 1 rule failed"), "{text}");
            assert!(text.contains("fuzzed.rhai"), "the error names the file: {text}");
            RulesOutcome::CompileError(text.lines().nth(1).unwrap_or_default().trim().to_owned())
        }
    }
}

fn evaluate(set: &RuleSet, meta: Meta, raw: &[u8]) -> RulesOutcome {
    let view = Arc::new(tidings::message::parse(raw, meta));
    let ruling = set.decide(&view, &[], now());
    let failures = ruling.failures.iter().map(|f| format!("{}: {}", f.rule, f.error)).collect();
    let plan = ruling.plan;
    for planned in &plan.actions {
        // What the store keeps: the payload must serialise and read back the same.
        let json = serde_json::to_string(&planned.action).expect("an action serialises");
        let back: tidings::plan::Action = serde_json::from_str(&json).expect("an action reads back");
        assert_eq!(back, planned.action, "{json}");
    }
    RulesOutcome::Planned { actions: plan.actions.iter().map(|p| p.action.kind()).collect(), failures }
}
