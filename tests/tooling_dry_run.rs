//! `tidings dry-run` against the harness Dovecot: the real corpus in a mailbox, a summary that
//! matches the rules run in-process over the same files, and a mailbox exactly as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tidings::config::Config;
use tidings::message::{MessageKey, Meta};
use tidings::plan::{Action, Plan};
use tidings::rules::RuleSet;

use super::{json_lines, repo, run, tidings};
use async_imap::imap_proto::{Response, Status};
use tokio::io::AsyncWriteExt;

use crate::harness::{ImapSession, Listed, MailboxInfo, TestEnv, User};
use crate::rules_examples::{corpus_dir, eml_files};

/// A folder's STATUS: MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ (which moves on any
/// flag change).
type FolderStatus = (u32, u32, Option<u32>, Option<u32>, Option<u64>);

/// Everything a client could see change: folders, and per folder its status and messages.
#[derive(Debug, PartialEq)]
struct Snapshot {
    folders: Vec<MailboxInfo>,
    /// STATUS per folder.
    status: BTreeMap<String, FolderStatus>,
    /// UID, flags, INTERNALDATE, Subject and Message-ID of every message, per folder.
    messages: BTreeMap<String, Vec<Listed>>,
}

async fn snapshot(env: &TestEnv, user: &User) -> Snapshot {
    let mut folders = env.mailboxes(user).await.unwrap();
    // LIST answers in no particular order.
    folders.sort_by(|a, b| a.name.cmp(&b.name));
    let no_select = ["\\Noselect", "\\NonExistent"];
    let selectable: Vec<&MailboxInfo> = folders
        .iter()
        .filter(|f| !f.attributes.iter().any(|a| no_select.iter().any(|n| a.eq_ignore_ascii_case(n))))
        .collect();
    let mut session = env.imap(user).await.unwrap();
    let mut status = BTreeMap::new();
    for folder in &selectable {
        let s = session.status(&folder.name, "(MESSAGES RECENT UIDNEXT UIDVALIDITY HIGHESTMODSEQ)").await.unwrap();
        status.insert(folder.name.clone(), (s.exists, s.recent, s.uid_next, s.uid_validity, s.highest_modseq));
    }
    session.logout().await.unwrap();
    let mut messages = BTreeMap::new();
    for folder in &selectable {
        messages.insert(folder.name.clone(), env.list(user, &folder.name).await.unwrap());
    }
    Snapshot { folders, status, messages }
}

/// Fails with what differs, briefly (a whole snapshot is thousands of lines).
fn assert_unchanged(before: &Snapshot, after: &Snapshot) {
    assert_eq!(before.folders, after.folders, "folders changed");
    assert_eq!(before.status, after.status, "a folder's STATUS changed");
    for (folder, messages) in &before.messages {
        let now = &after.messages[folder];
        let changed: Vec<_> = messages.iter().zip(now).filter(|(b, a)| b != a).take(3).collect();
        assert!(changed.is_empty() && messages.len() == now.len(), "{folder} changed: {changed:#?}");
    }
}

/// A message to APPEND.
struct Message {
    raw: Vec<u8>,
    flags: Vec<String>,
    /// INTERNALDATE, as IMAP writes it.
    date: String,
}

/// APPENDs the batch in one MULTIAPPEND (RFC 3502) with non-synchronising literals (LITERAL+):
/// one round trip and one transaction, not one fsync per message. If the server refuses the
/// batch (it refuses a few broken messages, and then the whole command), the messages are
/// appended one by one and the refused ones skipped. Returns `(raw, flags)` of those appended,
/// in UID order.
async fn append_all(session: &mut ImapSession, mailbox: &str, batch: Vec<Message>) -> Vec<(Vec<u8>, Vec<String>)> {
    let mut command = format!("M1 APPEND \"{mailbox}\"").into_bytes();
    for m in &batch {
        command.extend(format!(" ({}) \"{}\" {{{}+}}\r\n", m.flags.join(" "), m.date, m.raw.len()).into_bytes());
        command.extend(&m.raw);
    }
    command.extend(b"\r\n");
    let stream = session.as_mut();
    stream.write_all(&command).await.unwrap();
    stream.flush().await.unwrap();
    let ok = loop {
        let response = session.read_response().await.unwrap().expect("the connection closed during APPEND");
        if let Response::Done { tag, status, .. } = response.parsed() {
            assert_eq!(tag.0, "M1", "an answer to a command this test did not send");
            break matches!(status, Status::Ok);
        }
    };
    let mut appended = Vec::new();
    for m in batch {
        let flags = format!("({})", m.flags.join(" "));
        if ok || session.append(mailbox, Some(&flags), Some(&format!("\"{}\"", m.date)), &m.raw).await.is_ok() {
            appended.push((m.raw, m.flags));
        }
    }
    appended
}

/// Flags given to the i-th message on APPEND, so that the snapshot has some to compare.
fn flags_for(i: usize) -> Vec<String> {
    let mut flags = Vec::new();
    if i.is_multiple_of(5) {
        flags.push("\\Seen".to_owned());
    }
    if i.is_multiple_of(7) {
        flags.extend(["\\Flagged".to_owned(), "$Label1".to_owned()]);
    }
    flags
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_summarises_what_the_rules_would_do_and_changes_nothing() {
    let Some(corpus) = corpus_dir() else { return };
    let env = TestEnv::shared();
    let user = env.new_user();
    let appended = fill_inbox(env, &user, &eml_files(&corpus.join("real"))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), env, &user);
    let before = snapshot(env, &user).await;

    let json = dry_run(&config, &["--json", "--account", "t"]);
    let detail = dry_run(&config, &["--limit", "1000"]);
    let flagged = dry_run(&config, &["--json", "--quiet", "--search", "FLAGGED"]);
    let since = dry_run(&config, &["--json", "--quiet", "--since", "2026-10-20"]);
    assert_unchanged(&before, &snapshot(env, &user).await);
    assert!(!dir.path().join("state.db").exists(), "a dry run must not create the store");

    // The same rules, in-process, over the same files: UIDs were given in APPEND order.
    let expected = plans_in_process(&config, before.status["INBOX"].3.unwrap(), &appended);
    let (effects, untouched) = count_effects(&expected);
    assert!(effects.len() > 3 && untouched < appended.len(), "the shipped rules act on the corpus: {effects:?}");
    check_json(&json, &expected, &effects, untouched);
    // For people, the newest 1000: each message with a plan in detail, then the summary.
    let newest: BTreeMap<u32, Vec<Action>> = expected.iter().rev().take(1000).map(|(u, a)| (*u, a.clone())).collect();
    let acted: Vec<u32> = newest.iter().filter(|(_, a)| !a.is_empty()).map(|(u, _)| *u).collect();
    let headings: Vec<u32> =
        detail.lines().filter_map(|l| l.strip_prefix("UID ")?.split(' ').next()?.parse().ok()).collect();
    assert_eq!(headings, acted, "messages left alone are not listed:\n{detail}");
    assert!(detail.contains("): 1000 messages, read-only: nothing was changed."), "{detail}");
    let (effects, untouched) = count_effects(&newest);
    let summary = &detail[detail.find("\ndry run of").unwrap()..];
    for (effect, count) in effects.iter().chain([(&"nothing to do".to_owned(), &untouched)]) {
        let line = summary.lines().find(|l| l.trim_start().split_once(' ').is_some_and(|(_, e)| e == effect));
        let number = line.and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse::<usize>().ok());
        assert_eq!(number, Some(*count), "{effect}:\n{summary}");
    }
    // Selections: a search, and INTERNALDATE (days 1 to 28 of October, in turn) since a date.
    let count = |json: &str| json_lines(json)[0]["summary"]["messages"].as_u64().unwrap() as usize;
    assert_eq!(count(&flagged), (0..appended.len()).filter(|i| i.is_multiple_of(7)).count(), "{flagged}");
    assert_eq!(count(&since), (0..appended.len()).filter(|i| 1 + i % 28 >= 20).count(), "{since}");
}

/// APPENDs the files to INBOX (with flags and INTERNALDATEs), and one message to a folder of its
/// own; returns `(raw, flags)` of the messages appended to INBOX, in UID order.
async fn fill_inbox(env: &TestEnv, user: &User, files: &[std::path::PathBuf]) -> Vec<(Vec<u8>, Vec<String>)> {
    let started = Instant::now();
    let mut session = env.imap(user).await.unwrap();
    let mut appended = Vec::new();
    for (n, batch) in files.chunks(100).enumerate() {
        let batch: Vec<Message> = batch
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let i = n * 100 + i;
                let date = format!("{:02}-Oct-2026 10:{:02}:00 +0000", 1 + i % 28, i % 60);
                Message { raw: std::fs::read(file).unwrap(), flags: flags_for(i), date }
            })
            .collect();
        appended.extend(append_all(&mut session, "INBOX", batch).await);
    }
    session.create("Projects/Old").await.unwrap();
    let other = crate::harness::message("a@b.example", &user.address, "old", "x");
    session.append("Projects/Old", None, None, other).await.unwrap();
    session.logout().await.unwrap();
    eprintln!("appended {} of {} corpus messages in {:.1?}", appended.len(), files.len(), started.elapsed());
    assert!(appended.len() > 3000, "only {} appended", appended.len());
    appended
}

/// Runs `tidings dry-run ARGS -c config`; its stdout, after checking it succeeded.
fn dry_run(config: &Path, args: &[&str]) -> String {
    let started = Instant::now();
    let (code, stdout, stderr) = run(tidings().arg("dry-run").args(args).arg("-c").arg(config));
    eprintln!("dry-run {} took {:.1?}", args.join(" "), started.elapsed());
    assert_eq!(code, 0, "{stderr}");
    stdout
}

/// Each message's line has the plan computed in-process; the summary line has the counts.
fn check_json(json: &str, expected: &BTreeMap<u32, Vec<Action>>, effects: &BTreeMap<String, usize>, untouched: usize) {
    let lines = json_lines(json);
    let (summary, messages) = lines.split_last().unwrap();
    assert_eq!(messages.len(), expected.len(), "one line per message");
    for line in messages {
        let uid = line["uid"].as_u64().unwrap() as u32;
        let got: Vec<Action> =
            line["actions"].as_array().unwrap().iter().map(|a| serde_json::from_value(a.clone()).unwrap()).collect();
        assert_eq!(got, expected[&uid], "UID {uid}: {line}");
        assert_eq!(line["errors"], Value::Array(vec![]), "UID {uid}: {line}");
    }
    let summary = &summary["summary"];
    assert_eq!(summary["messages"], expected.len());
    assert_eq!(summary["untouched"], untouched);
    assert_eq!(summary["rule_failures"], 0);
    let got: BTreeMap<String, usize> = serde_json::from_value(summary["effects"].clone()).unwrap();
    assert_eq!(&got, effects);
}

fn write_config(dir: &Path, env: &TestEnv, user: &User) -> std::path::PathBuf {
    std::fs::write(dir.join("password"), &user.password).unwrap();
    // A generous wall clock: this test compares two runs of the same rules, and on a loaded CI
    // machine a rule can be descheduled past the default 100 ms, which is not what is tested here.
    let yaml = format!(
        "state: state.db\nlimits: {{ wall_time: 10s }}\nrules: {repo}/rules\nplugins: {repo}/plugins\naccounts:\n  t:\n    \
         imap: {{ host: 127.0.0.1, port: {port}, tls: implicit }}\n    ca_file: {ca}\n    username: {login}\n    \
         password_file: password\n",
        repo = repo().display(),
        port = env.imaps_port,
        ca = env.ca_file.display(),
        login = user.login,
    );
    let path = dir.join("tidings.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn plans_in_process(
    config: &Path,
    uidvalidity: u32,
    appended: &[(Vec<u8>, Vec<String>)],
) -> BTreeMap<u32, Vec<Action>> {
    let config = Config::load(config).unwrap();
    let rules = RuleSet::compile(&config).unwrap();
    let mut plans = BTreeMap::new();
    for (i, (raw, flags)) in appended.iter().enumerate() {
        let uid = i as u32 + 1;
        let key = MessageKey::new("t", "INBOX", uidvalidity, uid);
        let meta = Meta { flags: flags.clone(), ..Meta::new(key.clone()) };
        let view = Arc::new(tidings::message::parse(raw, meta));
        let evaluation = rules.evaluate(&view, &config.accounts[0].rules, chrono::Utc::now());
        assert!(evaluation.failures.is_empty(), "UID {uid}: {:?}", evaluation.failures);
        let plan = Plan::build(key, evaluation.decisions);
        plans.insert(uid, plan.actions.into_iter().map(|p| p.action).collect());
    }
    plans
}

/// Messages per effect, named as the dry-run summary names them, and messages left alone;
/// computed here, without the tooling module.
fn count_effects(plans: &BTreeMap<u32, Vec<Action>>) -> (BTreeMap<String, usize>, usize) {
    let mut counts = BTreeMap::new();
    let mut untouched = 0;
    for actions in plans.values() {
        let mut effects = BTreeSet::new();
        for action in actions {
            let named: Vec<String> = match action {
                Action::Move { mailbox } => vec![format!("-> {mailbox}")],
                Action::Copy { mailbox } => vec![format!("copied -> {mailbox}")],
                Action::Delete => vec!["deleted".to_owned()],
                // 45-digest.rhai's line for the daily digest.
                Action::Collect { name, .. } => vec![format!("collect -> {name}")],
                Action::AddFlags { flags } => flags
                    .iter()
                    .map(|f| match f.as_str() {
                        "\\Seen" => "marked read".to_owned(),
                        "\\Flagged" => "flagged".to_owned(),
                        keyword => format!("labelled {keyword}"),
                    })
                    .collect(),
                other => panic!("the shipped rules decided an action this test does not count: {other:?}"),
            };
            effects.extend(named);
        }
        untouched += usize::from(effects.is_empty());
        for effect in effects {
            *counts.entry(effect).or_default() += 1;
        }
    }
    (counts, untouched)
}
