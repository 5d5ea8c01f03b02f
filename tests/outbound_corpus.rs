//! The whole real corpus through a reply-to-everything rule: no reply may go to a mailing-list,
//! bulk, bounce or auto-submitted message. The classification here is written independently of
//! the guards (straight from the raw headers), so a guard that misses a kind of message fails
//! this test instead of agreeing with itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tidings::config::Config;
use tidings::exec::mail::guard;
use tidings::message::{MessageKey, Meta};
use tidings::plan::Action;
use tidings::rules::RuleSet;

use crate::rules_examples::{corpus_dir, eml_files};

/// What a message is, from its raw header block alone.
fn kinds(raw: &[u8]) -> Vec<&'static str> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| raw.windows(2).position(|w| w == b"\n\n"));
    let head = String::from_utf8_lossy(&raw[..end.unwrap_or(raw.len())]).to_lowercase();
    // Unfolded enough for a name test: a header starts a line.
    let has = |name: &str| head.lines().any(|l| l.starts_with(name));
    let value = |name: &str| {
        head.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_owned()).unwrap_or_default()
    };
    let mut out = Vec::new();
    if head.lines().any(|l| l.starts_with("list-") && l.contains(':')) {
        out.push("list");
    }
    let precedence = value("precedence:");
    if ["bulk", "junk", "list"].iter().any(|p| precedence.starts_with(p)) {
        out.push("bulk");
    }
    let from = value("from:");
    if from.contains("mailer-daemon")
        || value("return-path:") == "<>"
        || value("content-type:").starts_with("multipart/report")
    {
        out.push("bounce");
    }
    if has("auto-submitted:") && !value("auto-submitted:").starts_with("no") {
        out.push("auto-submitted");
    }
    out
}

/// Replies to everything. A message without an envelope sender to answer gets a reply that is
/// suppressed with the reason: the rule never fails on what a sender wrote.
const REPLY_ALL: &str = r#"reply("Thanks, got it.");"#;

#[test]
fn a_reply_to_everything_rule_answers_no_list_bulk_bounce_or_automatic_mail_in_the_corpus() {
    let Some(corpus) = corpus_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/all.rhai"), REPLY_ALL).unwrap();
    let yaml = "accounts:\n  me:\n    imap: { host: 127.0.0.1, port: 993 }\n    username: me\n    password_env: X\n    from: me@example.org\n";
    let config = Config::from_yaml(yaml, &dir.path().join("tidings.yaml")).unwrap();
    let rules = RuleSet::compile(&config).unwrap();
    let template = config.accounts[0].clone();

    let files: Vec<PathBuf> = eml_files(&corpus.join("real"));
    let mut replied = 0;
    let mut no_reply_action = 0;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let raw = std::fs::read(file).unwrap();
        let view = Arc::new(tidings::message::parse(&raw, Meta::new(MessageKey::new("me", "INBOX", 1, n as u32 + 1))));
        let evaluation = rules.evaluate(&view, &[], chrono::Utc::now());
        assert!(evaluation.failures.is_empty(), "{}: {:?}", file.display(), evaluation.failures);
        let Some(Action::Reply(reply)) = evaluation.decisions.into_iter().map(|d| d.action).next() else {
            panic!("{}: the rule always decides a reply", file.display());
        };
        if reply.unusable.is_some() {
            no_reply_action += 1;
        }
        // The account owns the addresses the message was sent to, so that the To/Cc guard does
        // not hide what the other guards do.
        let mut account = template.clone();
        account.addresses = reply.original.to.iter().chain(&reply.original.cc).cloned().collect();
        match guard::check_reply(&reply, Some(&account)) {
            Ok(()) => {
                replied += 1;
                let kinds = kinds(&raw);
                if !kinds.is_empty() {
                    wrong.push(format!("{} ({})", file.display(), kinds.join(", ")));
                }
            }
            Err(suppressed) => {
                let reason = suppressed.to_string();
                // Grouped by guard: the addresses and details that vary are left out.
                let head = reason.split(':').next().unwrap_or(&reason);
                let short: Vec<&str> =
                    head.split_whitespace().map(|w| if w.contains('@') { "<address>" } else { w }).collect();
                let short = short.join(" ");
                *reasons.entry(short).or_insert(0) += 1;
            }
        }
    }
    let by_kind = files.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, f| {
        for k in kinds(&std::fs::read(f).unwrap()) {
            *m.entry(k).or_insert(0) += 1;
        }
        m
    });
    eprintln!(
        "corpus replies: {} messages, {replied} would be answered, {no_reply_action} without an envelope sender to answer",
        files.len()
    );
    eprintln!("  messages by kind (independent classification): {by_kind:?}");
    for (reason, count) in &reasons {
        eprintln!("  suppressed {count:>5}: {reason}");
    }
    assert!(wrong.is_empty(), "{} replies to list/bulk/bounce/automatic mail:\n{}", wrong.len(), wrong.join("\n"));
    assert!(files.len() > 3000, "the corpus is whole: {}", files.len());
    assert!(replied > 0, "some personal mail is answered");
}

/// The real auto-replies of the corpus: Apple iCloud's vacation notice (`X-Apple-Action:
/// VACATION`, `Auto reply:`, no Auto-Submitted), Exchange's `Automatic reply:`, Lotus Notes'
/// `AUTO: ... is out of the office` (no header says so), AOL's, a Polish one, a cPanel one, and
/// out-of-office notices sent to lists. None may be answered, whichever guard stops it.
#[test]
fn the_real_auto_replies_in_the_corpus_get_no_reply() {
    let Some(corpus) = corpus_dir() else { return };
    let real = corpus.join("real");
    let mut files: Vec<PathBuf> = [
        "sisimai-bounces/rfc3834-01.eml",
        "sisimai-bounces/rfc3834-02.eml",
        "sisimai-bounces/rfc3834-03.eml",
        "sisimai-bounces/rfc3834-04.eml",
        "sisimai-bounces/rfc3834-05.eml",
        "sisimai-bounces/rfc3834-06.eml",
        "bounceparser-corpus/aol-vacation.eml",
        "bounceparser-corpus/autoreply.eml",
        "bounceparser-corpus/polish-autoreply.eml",
        "bounceparser-corpus/warning-6.eml",
    ]
    .iter()
    .map(|f| real.join(f))
    .collect();
    // The out-of-office notices people's responders sent to lists, found by their subject.
    let out_of_office = eml_files(&real.join("spamassassin-easy_ham")).into_iter().filter(|f| {
        let raw = String::from_utf8_lossy(&std::fs::read(f).unwrap()).to_lowercase();
        raw.lines()
            .take_while(|l| !l.is_empty())
            .any(|l| l.starts_with("subject:") && (l.contains("out of office") || l.contains("out of the office")))
    });
    files.extend(out_of_office);
    assert!(files.len() >= 12, "the corpus has its auto-replies: {files:?}");
    let mut by_reason = BTreeMap::<String, Vec<String>>::new();
    for (n, file) in files.iter().enumerate() {
        let raw = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let view = tidings::message::parse(&raw, Meta::new(MessageKey::new("me", "INBOX", 1, n as u32 + 1)));
        let original = tidings::plan::Original::of(&view);
        // Answered as if it came from a person who wrote to us (From, not the envelope, which a
        // bounce-like auto-reply leaves empty): the guards must still see what it is.
        let recipient = if original.from.is_empty() { "someone@example.org".to_owned() } else { original.from.clone() };
        let original = tidings::plan::Original { return_path: Some(recipient.clone()), ..original };
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(view.is_auto_submitted(), "{name}: msg.is_auto_submitted says so too");
        match guard::check_message(&original, &recipient) {
            Ok(()) => panic!("{name} is an automatic reply, and would be answered"),
            Err(why) => {
                let reason = why.reason.split(':').next().unwrap_or_default().to_owned();
                by_reason.entry(reason).or_default().push(name);
            }
        }
    }
    for (reason, names) in &by_reason {
        eprintln!("  auto-replies stopped by {reason:?}: {}", names.join(", "));
    }
}
