//! The rule API through real rule files: each test writes rules into a temporary rules
//! directory, compiles them as the daemon does ([`RuleSet::compile`] from a config), and runs
//! them over a message with a fixed trigger time.
//!
//! Values come back through `webhook("t", #{ ... })`: the rule puts what it read into the data,
//! and the test compares the JSON, so a getter is checked for its value, not just for running.

mod abuse;
mod actions;
mod events;
mod helpers;
mod message;
mod outbound;
mod reference;
mod schedule;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Config;
use crate::message::{MessageKey, MessageView, Meta};
use crate::plan::Action;
use crate::rules::{Evaluation, RuleSet};

/// A message with every part the API reads: addresses of each kind, threading headers, a list,
/// authentication results, text, HTML and a PDF.
pub const FULL: &str = "Return-Path: <bounce@shop.example>\r
Delivered-To: me+shop@example.com\r
Authentication-Results: mx.example.com; dkim=pass header.d=shop.example; spf=softfail smtp.mailfrom=shop.example; dmarc=pass header.from=shop.example\r
Authentication-Results: forged.example; dkim=fail; spf=fail; dmarc=fail\r
From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <Joerg@Mail.Shop.Example>\r
Sender: robot@shop.example\r
To: Me <me@example.com>, team@example.com\r
Cc: boss@example.com\r
Bcc: hidden@example.com\r
Reply-To: support@shop.example\r
Subject: Re: Your order #4711 has shipped\r
Date: Thu, 24 Dec 2026 10:30:00 +0100\r
Message-ID: <order-4711@shop.example>\r
In-Reply-To: <question@example.com>\r
References: <first@example.com> <question@example.com>\r
List-Id: Shop news <news.shop.example>\r
Received: from a\r
Received: from b\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=\"b1\"\r
\r
--b1\r
Content-Type: multipart/alternative; boundary=\"b2\"\r
\r
--b2\r
Content-Type: text/plain; charset=utf-8\r
\r
Tracking code: ZX-42-QQ\r
--b2\r
Content-Type: text/html; charset=utf-8\r
\r
<p>Tracking code: <b>ZX-42-QQ</b></p>\r
--b2--\r
--b1\r
Content-Type: application/pdf; name=\"invoice-4711.pdf\"\r
Content-Disposition: attachment; filename=\"invoice-4711.pdf\"\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQK\r
--b1--\r
";

/// A plain message with little in it: no Date, no list, no auth results.
pub const BARE: &str = "From: ann@example.org\r\nTo: me@example.com\r\nSubject: hello\r\n\r\nHi!\r\n";

/// The trigger time every test evaluates at: two days and a bit after FULL's Date.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-26T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// `raw` as the watcher would see it: uid 42 in work/INBOX, two flags, an INTERNALDATE.
pub fn view(raw: &str) -> Arc<MessageView> {
    let meta = Meta {
        key: MessageKey::new("work", "INBOX", 7, 42),
        flags: vec!["\\Seen".into(), "$Junk".into(), "receipt".into()],
        internal_date: Some(DateTime::parse_from_rfc3339("2026-12-24T09:31:00Z").unwrap().with_timezone(&Utc)),
        size: Some(123_456),
        truncated: false,
        body_deferred: false,
        gmail: None,
    };
    Arc::new(crate::message::parse(raw.as_bytes(), meta))
}

/// Rules compiled from `files` in a fresh rules directory, with webhooks `t` and `chat` and
/// the command `notify`.
pub fn rules(files: &[(&str, &str)]) -> (tempfile::TempDir, RuleSet) {
    rules_with(files, "")
}

/// Like [`rules`], with more config YAML.
pub fn rules_with(files: &[(&str, &str)], yaml_extra: &str) -> (tempfile::TempDir, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("rules").join(name), text).unwrap();
    }
    // A generous wall clock unless the test sets its own: on a machine busy with other builds a
    // regex compiled in a debug build can take longer than the default 100 ms.
    let limits = if yaml_extra.contains("limits:") { "" } else { "limits: { wall_time: 10s }\n" };
    let yaml = format!(
        "accounts: {{}}\n{limits}commands:\n  notify: {{ run: [\"true\"] }}\nwebhooks:\n  t: {{ url: \"https://hooks.example/t\" }}\n  chat: {{ url: \"https://hooks.example/chat\" }}\n{yaml_extra}"
    );
    let config = Config::from_yaml(&yaml, &dir.path().join("t.yaml")).unwrap();
    let set = RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"));
    (dir, set)
}

/// Runs one rule over `raw` and returns the evaluation.
pub fn run(rule: &str, raw: &str) -> Evaluation {
    let (_dir, set) = rules(&[("rule.rhai", rule)]);
    set.evaluate(&view(raw), &[], now())
}

/// Runs one rule that must not fail and returns its actions.
pub fn actions(rule: &str, raw: &str) -> Vec<Action> {
    let evaluation = run(rule, raw);
    assert!(evaluation.failures.is_empty(), "{:#?}", evaluation.failures);
    evaluation.decisions.into_iter().map(|d| d.action).collect()
}

/// The data of the one `webhook("t", data)` a rule recorded: what the rule read.
pub fn read(rule: &str, raw: &str) -> Value {
    match actions(rule, raw).as_slice() {
        [Action::Webhook(event)] if event.endpoint == "t" => event.data.clone(),
        other => panic!("expected one webhook(\"t\", ...), got {other:#?}"),
    }
}

/// The error of the one rule that failed.
pub fn error(rule: &str, raw: &str) -> String {
    let evaluation = run(rule, raw);
    assert!(evaluation.decisions.is_empty(), "a failed rule's decisions are dropped: {:?}", evaluation.decisions);
    match evaluation.failures.as_slice() {
        [failure] => {
            assert_eq!(failure.rule, "rule.rhai");
            failure.error.clone()
        }
        other => panic!("expected one failure, got {other:#?}"),
    }
}
