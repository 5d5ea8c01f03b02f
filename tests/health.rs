//! Health you can see, through the real daemon: `/healthz` turning unhealthy when Dovecot stops
//! and healthy when it returns (the alerts webhook and alert mail telling both), `/metrics` scraped and parsed
//! as Prometheus text, `tidings status` and `tidings history` explaining a sorted message (and
//! the rule that failed on it, which makes the status degraded).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Receiver, TestEnv, message, wait_for};
use crate::recovery::kill_orphaned_imap_processes;
use crate::watch::{SORT_RULE, ids_in};

/// A rule that fails on every sorted message, so history has a failure to show.
const BROKEN_RULE: &str = r#"
if msg.subject.starts_with("sort-me") {
    throw "no such thing";
}
"#;

/// A free loopback port for the listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on the listener: the status code and the body.
pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// One sample: the metric's name and its labels, sorted.
pub type Key = (String, Vec<(String, String)>);

/// Parses the Prometheus text format (0.0.4) strictly: every line a HELP, a TYPE or a sample;
/// every sample of a family declared by TYPE before it; names and label names well-formed;
/// label values with only the three escapes; values numbers. Panics naming the bad line.
pub fn parse_prometheus(text: &str) -> BTreeMap<Key, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut declared: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(name_ok(name), "bad metric name in {line:?}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "bad type in {line:?}");
            assert!(declared.insert(name.to_owned(), kind.to_owned()).is_none(), "{name} declared twice");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(rest.split_once(' ').is_some_and(|(n, _)| name_ok(n)), "bad HELP line {line:?}");
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
        let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = &line[..end];
        assert!(declared.contains_key(name), "sample of undeclared family in {line:?}");
        let mut labels = Vec::new();
        let mut rest = &line[end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut close = None;
            while let Some((i, c)) = chars.next() {
                if c == '}' {
                    close = Some(i);
                    break;
                }
                let eq = inner[i..].find("=\"").map(|e| e + i).unwrap_or_else(|| panic!("bad label in {line:?}"));
                let label = inner[i..eq].trim_start_matches(',');
                assert!(name_ok(label), "bad label name in {line:?}");
                while chars.peek().is_some_and(|(j, _)| *j <= eq + 1) {
                    chars.next();
                }
                let mut value = String::new();
                loop {
                    match chars.next().unwrap_or_else(|| panic!("unterminated label value in {line:?}")).1 {
                        '"' => break,
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => panic!("bad escape {other:?} in {line:?}"),
                        },
                        c => value.push(c),
                    }
                }
                labels.push((label.to_owned(), value));
                if chars.peek().is_some_and(|(_, c)| *c == ',') {
                    chars.next();
                }
            }
            let close = close.unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
            rest = &inner[close + 1..];
        }
        let value: f64 = rest.trim().parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        labels.sort();
        assert!(samples.insert((name.to_owned(), labels), value).is_none(), "duplicate sample {line:?}");
    }
    samples
}

pub fn sample(samples: &BTreeMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    labels.sort();
    samples.get(&(name.to_owned(), labels)).copied()
}

pub fn tidings(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidings")).args(args).arg("--config").arg(config).output().unwrap()
}

/// Polls `path` until it answers `code`; returns how long that took.
async fn until_code(port: u16, path: &str, code: u16, timeout: Duration, daemon: &Daemon) -> Duration {
    let started = Instant::now();
    wait_for(timeout, format!("{path} answering {code}\n{}", daemon.log()), || async {
        match get(port, path) {
            Ok((c, body)) if c == code => Ok(body),
            Ok((c, _)) => Err(format!("answered {c}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_follows_dovecot_down_and_back_and_metrics_parse() {
    let mut env = TestEnv::start_own();
    let user = env.new_user();
    let port = free_port();
    let threshold = 3;
    let receiver = Receiver::start();
    let ops = env.new_user();
    let top = format!(
        "http: {{ listen: \"127.0.0.1:{port}\" }}\nhealth: {{ unhealthy_after: {threshold}s }}\n\
         webhooks:\n  ops:\n    url: {}\nalerts: {{ webhook: ops, mail: {{ account: t, to: [{}] }} }}\n",
        receiver.url("/alerts"),
        ops.address
    );
    let smtp = format!("smtp: {{ host: 127.0.0.1, port: {}, tls: starttls }}\n", env.submission_port);
    let setup = Setup::with_top(&env, &user, &[("sort.rhai", SORT_RULE)], &smtp, &top);
    let daemon = Daemon::start(&setup.config, 1);
    assert_eq!(get(port, "/healthz").unwrap(), (200, "ok\n".to_owned()), "{}", daemon.log());
    assert_eq!(get(port, "/nothing").unwrap().0, 404);

    let raw = message("a@example.com", &user.address, "sort-me to see it counted", "x");
    env.deliver_lmtp(&user, &raw).await.unwrap();
    wait_for(Duration::from_secs(20), format!("the message sorted\n{}", daemon.log()), || async {
        let n = ids_in(&env, &user, "Sorted").await.len();
        if n == 1 { Ok(()) } else { Err(n) }
    })
    .await;
    let samples = wait_for(Duration::from_secs(10), "the move counted as done in /metrics", || async {
        let (code, body) = get(port, "/metrics").map_err(|e| e.to_string())?;
        let samples = parse_prometheus(&body);
        let done = sample(&samples, "tidings_actions", &[("account", "t"), ("kind", "move"), ("state", "done")]);
        if code == 200 && done == Some(1.0) { Ok(samples) } else { Err(format!("{code} {done:?}")) }
    })
    .await;
    let inbox = [("account", "t"), ("mailbox", "INBOX")];
    assert_eq!(sample(&samples, "tidings_watcher_up", &inbox), Some(1.0));
    assert_eq!(sample(&samples, "tidings_messages_processed_total", &inbox), Some(1.0));
    assert_eq!(sample(&samples, "tidings_rule_hits_total", &[("rule", "sort.rhai")]), Some(1.0));
    assert_eq!(sample(&samples, "tidings_imap_reconnects_total", &inbox), Some(0.0));
    assert_eq!(sample(&samples, "tidings_outbox_depth", &[("account", "t")]), Some(0.0));
    assert_eq!(sample(&samples, "tidings_healthy", &[]), Some(1.0));

    env.stop_dovecot();
    kill_orphaned_imap_processes();
    let stopped = Instant::now();
    let limit = Duration::from_secs(threshold + 10);
    until_code(port, "/healthz", 503, limit, &daemon).await;
    let unhealthy_after = stopped.elapsed();
    let (_, body) = get(port, "/healthz").unwrap();
    assert!(body.contains("watcher t/INBOX has been down for"), "{body}");
    let status = tidings(&setup.config, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "status while Dovecot is down:\n{text}");
    assert!(text.contains("UNHEALTHY") && text.lines().any(|l| l.starts_with("t ") && l.contains(" down ")), "{text}");

    env.start_dovecot();
    let restarted = Instant::now();
    until_code(port, "/healthz", 200, Duration::from_secs(60), &daemon).await;
    let healthy_after = restarted.elapsed();
    eprintln!(
        "healthz: unhealthy {:.1} s after Dovecot stopped (threshold {threshold} s), healthy {:.1} s after it returned",
        unhealthy_after.as_secs_f64(),
        healthy_after.as_secs_f64()
    );
    assert!(unhealthy_after >= Duration::from_secs(threshold), "unhealthy before the threshold: {unhealthy_after:?}");
    let (_, body) = get(port, "/metrics").unwrap();
    let samples = parse_prometheus(&body);
    assert!(sample(&samples, "tidings_imap_reconnects_total", &inbox).is_some_and(|n| n >= 1.0), "{body}");
    assert_eq!(sample(&samples, "tidings_watcher_up", &inbox), Some(1.0), "{body}");
    // The outage was told to the alerts webhook, and its end, each once (in either order: the
    // lane sends what is due concurrently).
    let alerts = wait_for(Duration::from_secs(30), format!("two alerts\n{}", daemon.log()), || async {
        let got: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()["data"].clone()).collect();
        if got.len() >= 2 { Ok(got) } else { Err(format!("{} alerts", got.len())) }
    })
    .await;
    let mut kinds: Vec<&str> = alerts.iter().map(|a| a["alert"].as_str().unwrap_or_default()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["watcher_down", "watcher_up"], "{alerts:?}");
    assert!(alerts.iter().all(|a| a["account"] == "t" && a["mailbox"] == "INBOX"), "{alerts:?}");
    // And mailed: Postfix took the first while Dovecot was down; its queue is flushed to retry.
    let subjects = wait_for(Duration::from_secs(60), format!("two alert mails\n{}", daemon.log()), || async {
        env.flush_postfix();
        let listed = env.list(&ops, "INBOX").await.map_err(|e| e.to_string())?;
        let mut subjects: Vec<String> = listed.into_iter().filter_map(|l| l.subject).collect();
        subjects.sort();
        if subjects.len() >= 2 { Ok(subjects) } else { Err(format!("{subjects:?}")) }
    })
    .await;
    assert_eq!(subjects.len(), 2, "each alert mailed once: {subjects:?}");
    assert!(subjects[0].starts_with("tidings: watcher t/INBOX is down since"), "{subjects:?}");
    assert!(subjects[1].starts_with("tidings: watcher t/INBOX is watching again"), "{subjects:?}");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_history_explain_a_sorted_message() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let rules = [("sort.rhai", SORT_RULE), ("z_broken.rhai", BROKEN_RULE)];
    let setup = Setup::new(env, &user, &rules, "");
    let daemon = Daemon::start(&setup.config, 1);
    let raw = message("a@example.com", &user.address, "sort-me and explain", "x");
    let id = String::from_utf8_lossy(&raw)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: <").map(|r| r.trim_end_matches('>').to_owned()))
        .unwrap();
    env.deliver_lmtp(&user, &raw).await.unwrap();
    let history = wait_for(Duration::from_secs(20), format!("the move done in history\n{}", daemon.log()), || async {
        let out = tidings(&setup.config, &["history", &format!("<{id}>")]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains(": done") { Ok(text) } else { Err(text) }
    })
    .await;
    for expected in [
        "t/INBOX uid 1 (".to_owned(),
        format!("Message-ID <{id}>"),
        "rules that acted: sort.rhai\n".to_owned(),
        "rule z_broken.rhai FAILED: ".to_owned(),
        "add_flags sorted by sort.rhai: done".to_owned(),
        "move Sorted by sort.rhai: done".to_owned(),
    ] {
        assert!(history.contains(&expected), "history lacks {expected:?}:\n{history}");
    }
    let by_uid = tidings(&setup.config, &["history", "--uid", "1", "--mailbox", "INBOX", "--json"]);
    let line = String::from_utf8(by_uid.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(json["message_id"], id.as_str());
    assert_eq!(json["matched"], serde_json::json!(["sort.rhai"]));
    let kinds: Vec<&str> = json["actions"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["add_flags", "move"], "{line}");
    assert_eq!(json["rule_failures"][0]["rule"], "z_broken.rhai");
    let missing = tidings(&setup.config, &["why", "nobody@nowhere"]);
    assert_eq!(missing.status.code(), Some(1), "an unknown Message-ID is not found");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no decided message found for Message-ID <nobody@nowhere>")
    );

    // The broken rule failed within the hour: running, but degraded (exit 3), the rule named with
    // its error and the message it failed on.
    let status = tidings(&setup.config, &["status", "--json"]);
    let line = String::from_utf8(status.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(status.status.code(), Some(3), "{line}");
    assert_eq!((json["running"].as_bool(), json["healthy"].as_bool()), (Some(true), Some(false)), "{line}");
    assert_eq!(json["verdict"], "degraded", "{line}");
    let failing = &json["rules_failing"][0];
    assert_eq!((failing["rule"].as_str(), failing["failures"].as_u64()), (Some("z_broken.rhai"), Some(1)), "{line}");
    assert_eq!(failing["message_id"], id.as_str(), "{line}");
    assert!(failing["last_error"].as_str().is_some_and(|e| e.contains("no such thing")), "{line}");
    assert!(json["problems"][0].as_str().is_some_and(|p| p.starts_with("rule z_broken.rhai failed on 1 message")));
    let inbox = json["mailboxes"].as_array().unwrap().iter().find(|m| m["mailbox"] == "INBOX").unwrap();
    assert_eq!((inbox["state"].as_str(), inbox["last_uid"].as_u64()), (Some("idle"), Some(1)), "{line}");
    assert_eq!(json["rule_failures"][0]["rule"], "z_broken.rhai", "{line}");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let after = tidings(&setup.config, &["status"]);
    let text = String::from_utf8_lossy(&after.stdout);
    assert_eq!(after.status.code(), Some(1), "{text}");
    assert!(text.starts_with("tidings: NOT RUNNING"), "{text}");
}
