//! The shipped plugins (`plugins/*.rhai`), called by rules the way users write them, with the
//! sender lists as data files.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::message::{MessageKey, Meta};
use crate::plan::Action;

/// Each `label(...)` in `rule` as text, in order: how a rule reports what the plugins said.
fn labels(raw: &str, data: &[(&str, &str)], rule: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in data {
        let path = dir.path().join("rules/data").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let imports = "import \"senders\" as senders;\nimport \"lists\" as lists;\nimport \"newsletter\" as newsletter;\n";
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/r.rhai"), format!("{imports}{rule}")).unwrap();
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
    let yaml = format!("accounts: {{}}\nplugins: {}\n", plugins.display());
    let config = Config::from_yaml(&yaml, &dir.path().join("t.yaml")).unwrap();
    let rules = RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"));
    let meta = Meta::new(MessageKey::new("a", "INBOX", 1, 1));
    let evaluation = rules.evaluate(&Arc::new(crate::message::parse(raw.as_bytes(), meta)), &[], chrono::Utc::now());
    assert!(evaluation.failures.is_empty(), "{:?}", evaluation.failures);
    evaluation
        .decisions
        .iter()
        .map(|d| match &d.action {
            Action::AddFlags { flags } => flags.join(" "),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

const VIPS: &str = "# people\nDana@Example.com\n@board.example.com\n*.family.example.com\n";

#[test]
fn sender_patterns_match_addresses_domains_and_subdomains() {
    let rule = r#"
        for who in ["dana@example.com", "DANA@EXAMPLE.COM", "other@example.com", "x@board.example.com",
                    "x@sub.board.example.com", "x@home.family.example.com", "x@family.example.com",
                    "x@evil-family.example.com", "x@board.example.com.evil", "not an address", ""] {
            label(`${senders::is_vip(who, data("vip"))}`);
        }
        label(`${senders::is_vip(msg.from, data("vip"))}`);
        label(`${senders::matches(msg.from, "@example.com")}`);
    "#;
    let got = labels("From: Dana <dana@example.com>\r\n\r\nx\r\n", &[("vip.txt", VIPS)], rule);
    let want =
        ["true", "true", "false", "true", "false", "true", "false", "false", "false", "false", "false", "true", "true"];
    assert_eq!(got, want);
}

#[test]
fn a_deny_entry_wins_over_an_allow_entry() {
    let rule = r#"
        for who in ["a@shop.example", "spam@shop.example", "b@else.example"] {
            let v = senders::verdict(who, data("allow"), data("deny"));
            label(if v == "" { "none" } else { v });
        }
    "#;
    let data = [("allow.txt", "@shop.example\n"), ("deny.yaml", "- spam@shop.example\n")];
    assert_eq!(labels("From: a@b.example\r\n\r\nx\r\n", &data, rule), ["allow", "deny", "none"]);
}

#[test]
fn list_helpers_read_the_list_headers() {
    let raw = "From: a@lists.example.org\r\nList-Id: Rust users <rust-users.lists.example.org>\r\nList-Post: <mailto:rust-users@lists.example.org?subject=hi>\r\nList-Unsubscribe: <https://lists.example.org/u>, <mailto:leave@lists.example.org>\r\nPrecedence: List\r\n\r\nx\r\n";
    let rule = r#"
        label(lists::name(msg.list_id));
        label(`${lists::is_list(msg)},${lists::is_discussion(msg)},${lists::is_announce(msg)},${lists::is_bulk(msg)}`);
        label(lists::post_address(msg));
        label(lists::unsubscribe_links(msg).reduce(|a, b| a + "," + b, ""));
        label(lists::precedence(msg));
    "#;
    let got = labels(raw, &[], rule);
    let links = ",https://lists.example.org/u,mailto:leave@lists.example.org";
    assert_eq!(got, ["rust-users", "true,true,false,true", "rust-users@lists.example.org", links, "list"]);

    let announce =
        "From: a@example.org\r\nList-Id: <news.example.org>\r\nList-Post: NO (posting not allowed)\r\n\r\nx\r\n";
    let rule = "label(`${lists::is_announce(msg)},${lists::is_discussion(msg)}`);";
    assert_eq!(labels(announce, &[], rule), ["true,false"]);
    let personal = "From: a@example.org\r\n\r\nx\r\n";
    let rule = "label(`${lists::is_list(msg)},${lists::is_announce(msg)},${lists::is_bulk(msg)}`);\nlabel(`n${lists::name(msg.list_id)}`);";
    assert_eq!(labels(personal, &[], rule), ["false,false,false", "n"]);
}

#[test]
fn the_newsletter_detector_scores_the_signs() {
    let score = |raw: &str| {
        labels(raw, &[], "label(`${newsletter::score(msg)}`);\nlabel(`${newsletter::is_newsletter(msg)}`);")
    };
    let person = "From: Alex <alex@friends.example>\r\nSubject: Dinner?\r\n\r\nFree on Saturday?\r\n";
    assert_eq!(score(person), ["0", "false"]);
    // A receipt sent through a mailing service: a service header alone is not a newsletter.
    let receipt = "From: orders@shop.example\r\nX-SG-EID: abc\r\nSubject: Receipt\r\n\r\nThanks.\r\n";
    assert_eq!(score(receipt), ["2", "false"]);
    let links: String = (0..12).map(|i| format!("<a href=\"https://n.example/{i}\">{i}</a>")).collect();
    let campaign = format!(
        "From: News <newsletter@n.example>\r\nList-Unsubscribe: <https://n.example/u>\r\nPrecedence: bulk\r\nX-Mailgun-Sid: x\r\nContent-Type: text/html\r\n\r\n<html><body>{links}<p>Unsubscribe here</p></body></html>\r\n"
    );
    assert_eq!(score(&campaign), ["9", "true"]);
    let reply = "From: a@lists.example.org\r\nIn-Reply-To: <p@x>\r\nList-Unsubscribe: <https://l.example/u>\r\nPrecedence: bulk\r\n\r\nx\r\n";
    assert_eq!(score(reply), ["1", "false"]);
}

/// Rhai reads a plugin's `global::` constant under a write lock shared by every evaluation of the
/// plugin, taken with a few 10 ms tries and unwrapped: threads reading one at the same time made
/// the losers panic ("the dry-run tooling saw rhai 1.27 panic"). Many threads evaluating one
/// rule set, whose plugin reads a large constant in a loop, all give the lone answer.
#[test]
fn many_threads_reading_a_plugins_global_constants_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<String> = (0..500).map(|i| format!("\"word{i}\"")).collect();
    let plugin = format!(
        "const WORDS = [{}];\nconst LIMIT = 3;\nfn count(text) {{\n    let n = 0;\n    for i in 0..100 {{ if global::WORDS.len() > global::LIMIT && text in global::WORDS {{ n += 1; }} }}\n    n\n}}\n",
        big.join(", ")
    );
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("plugins/words.rhai"), plugin).unwrap();
    let rule = "import \"words\" as words;\nlabel(`n${words::count(msg.subject)}`);\n";
    std::fs::write(dir.path().join("rules/r.rhai"), rule).unwrap();
    let yaml = "accounts: {}\nlimits: { operations: 100000000, wall_time: 60s }\n";
    let config = Config::from_yaml(yaml, &dir.path().join("t.yaml")).unwrap();
    let rules = Arc::new(RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}")));
    let meta = Meta::new(MessageKey::new("a", "INBOX", 1, 1));
    let message = Arc::new(crate::message::parse(b"Subject: word7\r\n\r\nx\r\n", meta));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (rules, message) = (rules.clone(), message.clone());
            std::thread::spawn(move || {
                let mut wrong = Vec::new();
                for _ in 0..20 {
                    let evaluation = rules.evaluate(&message, &[], chrono::Utc::now());
                    let labels: Vec<&Action> = evaluation.decisions.iter().map(|d| &d.action).collect();
                    if labels != [&Action::AddFlags { flags: vec!["n100".into()] }] || !evaluation.failures.is_empty() {
                        wrong.push(format!("{labels:?} {:?}", evaluation.failures));
                    }
                }
                wrong
            })
        })
        .collect();
    let wrong: Vec<String> = threads.into_iter().flat_map(|t| t.join().expect("no panic escapes")).collect();
    assert!(wrong.is_empty(), "{} of 320 evaluations went wrong, e.g. {:?}", wrong.len(), wrong.first());
}
