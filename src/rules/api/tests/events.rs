//! Event actions: webhooks and commands go only to names in the config, with JSON data.

use serde_json::json;

use super::{BARE, actions, error, rules_with, view};
use crate::plan::Action;

#[test]
fn webhooks_go_only_to_configured_names_with_json_data() {
    let rule = r#"webhook("chat", #{ subject: msg.subject, from: msg.from, date: msg.date, n: 1, x: 1.5,
        ok: true, none: (), list: [1, [2, "3"]], c: 'c' });"#;
    let data = json!({"subject": "hello", "from": "ann@example.org", "date": null, "n": 1, "x": 1.5, "ok": true,
        "none": null, "list": [1, [2, "3"]], "c": "c"});
    let got = actions(rule, BARE);
    let [Action::Webhook(event)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!((event.endpoint.as_str(), &event.data), ("chat", &data));
    assert_eq!(event.message.as_ref().map(|m| m.subject.as_str()), Some("hello"));
    let unknown = error(r#"webhook("https://evil.example/", #{});"#, BARE);
    assert!(unknown.contains("no webhook named `https://evil.example/` in the config (known: chat, t)"), "{unknown}");
    let (_dir, set) = rules_with(&[("rule.rhai", r#"webhook("t", 1);"#)], "");
    assert!(set.evaluate(&view(BARE), &[], super::now()).failures.is_empty());
    let whole_message = error(r#"webhook("chat", #{ m: msg });"#, BARE);
    assert!(whole_message.contains("it holds a Message, which has no JSON form"), "{whole_message}");
    let deep = error(r#"let d = 1; for i in 0..40 { d = [d]; } webhook("chat", d);"#, BARE);
    assert!(deep.contains("nested deeper than 32 levels"), "{deep}");
}

#[test]
fn without_webhooks_in_the_config_every_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/hook.rhai"), r#"webhook("chat", #{});"#).unwrap();
    let config = crate::config::Config::from_yaml("accounts: {}\n", &dir.path().join("t.yaml")).unwrap();
    let set = crate::rules::RuleSet::compile(&config).unwrap();
    let evaluation = set.evaluate(&view(BARE), &[], super::now());
    let error = &evaluation.failures[0].error;
    assert!(error.contains("no webhook named `chat` in the config (the config defines none)"), "{error}");
}

#[test]
fn commands_are_recorded_by_name() {
    let got = actions(r#"command("notify-send", #{ title: msg.subject });"#, BARE);
    let [Action::Command(event)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!((event.endpoint.as_str(), &event.data), ("notify-send", &json!({"title": "hello"})));
    assert!(error(r#"command("/bin/sh -c x", ());"#, BARE).contains("is not a command name"));
}
