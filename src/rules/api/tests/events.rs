//! Event actions: webhooks and commands go only to names in the config, with JSON data.

use base64::Engine as _;
use serde_json::json;

use super::{BARE, FULL, actions, error, rules_with, view};
use crate::config::Config;
use crate::plan::{Action, Event, EventAttachment};
use crate::rules::RuleSet;

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
    let error = events("accounts: {}\n", r#"webhook("chat", #{});"#, BARE).unwrap_err();
    assert!(error.contains("no webhook named `chat` in the config (the config defines none)"), "{error}");
}

#[test]
fn commands_go_only_to_configured_names() {
    let got = actions(r#"command("notify", #{ title: msg.subject });"#, BARE);
    let [Action::Command(event)] = got.as_slice() else { panic!("{got:?}") };
    assert_eq!((event.endpoint.as_str(), &event.data), ("notify", &json!({"title": "hello"})));
    assert!(error(r#"command("/bin/sh -c x", ());"#, BARE).contains("is not a command name"));
    let unknown = error(r#"command("notify-send", #{});"#, BARE);
    assert!(unknown.contains("no command named `notify-send` in the config (known: notify)"), "{unknown}");
    let none = events("accounts: {}\n", r#"command("notify", #{});"#, BARE).unwrap_err();
    assert!(none.contains("no command named `notify` in the config (the config defines none)"), "{none}");
}

/// The events one rule records over `raw` with the config `yaml`, or the rule's error.
fn events(yaml: &str, rule: &str, raw: &str) -> Result<Vec<Event>, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/rule.rhai"), rule).unwrap();
    let config = Config::from_yaml(yaml, &dir.path().join("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let evaluation = RuleSet::compile(&config).unwrap().evaluate(&view(raw), &[], super::now());
    if let Some(failure) = evaluation.failures.first() {
        return Err(failure.error.clone());
    }
    let events = evaluation.decisions.into_iter().map(|d| match d.action {
        Action::Webhook(e) | Action::Command(e) => e,
        other => panic!("not an event: {other:?}"),
    });
    Ok(events.collect())
}

const INCLUDING: &str = "\
accounts: {}
commands:
  notify: { run: [\"true\"] }
webhooks:
  bare: { url: \"https://hooks.example/bare\" }
  full: { url: \"https://hooks.example/full\", include: [text, html, raw, attachments] }
  text: { url: \"https://hooks.example/text\", include: [text] }
";

#[test]
fn each_endpoint_gets_the_parts_of_the_message_it_includes() {
    let rule = r#"webhook("bare", 1); webhook("full", 2); webhook("text", 3); command("notify", 4);"#;
    let got = events(INCLUDING, rule, FULL).unwrap();
    let [bare, full, text, command] = got.as_slice() else { panic!("{got:?}") };
    for plain in [bare, command] {
        let m = plain.message.as_ref().unwrap();
        assert_eq!((&m.text, &m.html, &m.raw, &m.attachments), (&None, &None, &None, &None), "{plain:?}");
        assert_eq!(m.subject, "Re: Your order #4711 has shipped");
        assert_eq!(m.snippet, "Tracking code: ZX-42-QQ");
    }
    let t = text.message.as_ref().unwrap();
    assert_eq!((t.text.as_deref(), t.html.is_none(), t.raw.is_none()), (Some("Tracking code: ZX-42-QQ"), true, true));
    let f = full.message.as_ref().unwrap();
    assert_eq!(f.html.as_deref(), Some("<p>Tracking code: <b>ZX-42-QQ</b></p>"));
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(b64.decode(f.raw.as_ref().unwrap()).unwrap(), FULL.as_bytes());
    let pdf = EventAttachment {
        name: Some("invoice-4711.pdf".into()),
        content_type: "application/pdf".into(),
        size: 9,
        content: "JVBERi0xLjQK".into(),
    };
    assert_eq!(f.attachments.as_deref(), Some(&[pdf][..]));
    assert_eq!(b64.decode("JVBERi0xLjQK").unwrap(), b"%PDF-1.4\n");
}

#[test]
fn a_message_without_attachments_or_html_includes_empty_parts() {
    let got = events(INCLUDING, r#"webhook("full", ());"#, BARE).unwrap();
    let m = got[0].message.as_ref().unwrap();
    assert_eq!(
        (m.text.as_deref(), m.html.as_deref(), m.attachments.as_deref()),
        (Some("Hi!\r\n"), None, Some(&[][..]))
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(b64.decode(m.raw.as_ref().unwrap()).unwrap(), BARE.as_bytes());
}
