//! Schedules: the trigger, a schedule's rule over a message or none, digests (collect and
//! collected), date arithmetic and webhooks sent later.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{BARE, FULL, actions, error, read, view};
use crate::config::Config;
use crate::plan::{Action, Event, NewMessage};
use crate::rules::{Collected, RuleSet, ScheduledEvaluation, Trigger};

/// A config with account `work`, the webhook `t`, and one schedule per rule, each a file in
/// `sweeps/`: `(file name, text)`.
fn scheduled(files: &[(&str, &str)]) -> (tempfile::TempDir, RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules/sweeps")).unwrap();
    let mut yaml = "accounts:\n  work:\n    imap: { host: h }\n    username: u\n    password_env: P\n\
                    webhooks:\n  t: { url: \"https://hooks.example/t\" }\nschedules:\n"
        .to_owned();
    for (i, (name, text)) in files.iter().enumerate() {
        std::fs::write(dir.path().join("rules/sweeps").join(name), text).unwrap();
        yaml.push_str(&format!("  s{i}: {{ cron: \"0 7 * * *\", account: work, rule: sweeps/{name} }}\n"));
    }
    let config = Config::from_yaml(&yaml, &dir.path().join("t.yaml")).unwrap();
    let set = RuleSet::compile(&config).unwrap_or_else(|e| panic!("{e}"));
    (dir, set)
}

fn fired() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-28T06:00:00Z").unwrap().with_timezone(&Utc)
}

fn schedule() -> Trigger {
    Trigger::Schedule { name: "daily".into(), fired_at: fired() }
}

fn digest(items: serde_json::Value) -> Collected {
    let items = items.as_array().unwrap().clone();
    Collected { items: [("digest".to_owned(), items)].into(), up_to: 9 }
}

fn only_webhook(evaluation: &ScheduledEvaluation) -> serde_json::Value {
    assert!(evaluation.failures.is_empty(), "{:#?}", evaluation.failures);
    match evaluation.decisions.iter().map(|d| &d.action).collect::<Vec<_>>().as_slice() {
        [Action::Webhook(event)] => event.data.clone(),
        other => panic!("expected one webhook, got {other:#?}"),
    }
}

#[test]
fn a_live_rule_is_told_it_is_live() {
    let got = read(r#"webhook("t", #{ by_function: trigger(), by_msg: msg.trigger });"#, BARE);
    assert_eq!(got, json!({"by_function": {"kind": "live"}, "by_msg": {"kind": "live"}}));
}

#[test]
fn a_sweep_sees_the_message_the_schedule_and_the_fire_time_as_now() {
    let rule = r#"webhook("t", #{ t: msg.trigger, same: trigger().fired_at == now(), now: now(), s: msg.subject });
                  if msg.received.age_days >= 2 { archive(); }"#;
    let (_dir, set) = scheduled(&[("old.rhai", rule)]);
    let message = view(FULL);
    let evaluation =
        set.evaluate_scheduled("sweeps/old.rhai", Some(&message), &schedule(), fired(), &Collected::default());
    assert!(evaluation.failures.is_empty(), "{:#?}", evaluation.failures);
    let [webhook, archive] = evaluation.decisions.as_slice() else { panic!("{:#?}", evaluation.decisions) };
    assert_eq!(archive.action, Action::Archive, "received 2026-12-24, fired 2026-12-28");
    let Action::Webhook(event) = &webhook.action else { panic!() };
    assert_eq!(
        event.data,
        json!({
            "t": {"kind": "schedule", "name": "daily", "fired_at": "2026-12-28T06:00:00+00:00"},
            "same": true,
            "now": "2026-12-28T06:00:00+00:00",
            "s": "Re: Your order #4711 has shipped",
        })
    );
    assert!(evaluation.read.is_empty());
}

#[test]
fn a_digest_reads_what_was_collected_and_says_what_it_read() {
    let rule = r#"let items = collected("digest");
        if msg == () && items.len() > 0 {
            let lines = items.map(|i| i.from + ": " + i.subject);
            send(#{ to: "me@example.com", subject: `Digest: ${items.len()}`, body: lines.reduce(|a, l| a + l + "\n", "") });
        }
        webhook("t", #{ other: collected("never"), n: items.len() });"#;
    let (_dir, set) = scheduled(&[("digest.rhai", rule)]);
    let items = json!([{"from": "a@x.org", "subject": "one"}, {"from": "b@y.org", "subject": "two"}]);
    let evaluation = set.evaluate_scheduled("sweeps/digest.rhai", None, &schedule(), fired(), &digest(items));
    assert!(evaluation.failures.is_empty(), "{:#?}", evaluation.failures);
    let send = NewMessage {
        to: vec!["me@example.com".into()],
        cc: vec![],
        subject: "Digest: 2".into(),
        body: "a@x.org: one\nb@y.org: two\n".into(),
        html: None,
        from: None,
        at: None,
    };
    assert_eq!(evaluation.decisions[0].action, Action::Send(send));
    assert_eq!(evaluation.decisions[1].action, Action::Webhook(Event::new("t", json!({"other": [], "n": 2}))));
    assert_eq!(evaluation.read.iter().collect::<Vec<_>>(), ["digest", "never"]);
    // Nothing collected: nothing sent, and the names read are still reported.
    let evaluation = set.evaluate_scheduled("sweeps/digest.rhai", None, &schedule(), fired(), &Collected::default());
    assert_eq!(only_webhook(&evaluation), json!({"other": [], "n": 0}));
    assert_eq!(evaluation.read.len(), 2);
}

#[test]
fn a_failed_schedule_rule_drops_its_decisions_and_an_unknown_one_is_a_failure() {
    let (_dir, set) = scheduled(&[("fails.rhai", r#"let x = collected("digest"); archive(); throw "broken";"#)]);
    let message = view(BARE);
    let evaluation =
        set.evaluate_scheduled("sweeps/fails.rhai", Some(&message), &schedule(), fired(), &Collected::default());
    assert!(evaluation.decisions.is_empty());
    assert_eq!(evaluation.failures.len(), 1);
    assert!(evaluation.failures[0].error.contains("broken"), "{:?}", evaluation.failures);
    let evaluation = set.evaluate_scheduled("sweeps/none.rhai", None, &schedule(), fired(), &Collected::default());
    assert!(evaluation.failures[0].error.contains("no schedule in the config names it"), "{:?}", evaluation.failures);
    // Without a message, `msg` is `()`: reading a part of it fails the rule, not the process.
    let (_dir, set) = scheduled(&[("once.rhai", "let s = msg.subject;")]);
    let evaluation = set.evaluate_scheduled("sweeps/once.rhai", None, &schedule(), fired(), &Collected::default());
    assert_eq!(evaluation.failures.len(), 1, "{evaluation:?}");
}

#[test]
fn live_rules_collect_and_only_schedule_rules_read() {
    let got = actions(r#"collect("digest", #{ from: msg.from, subject: msg.subject, at: msg.date });"#, FULL);
    let data = json!({"from": "Joerg@mail.shop.example", "subject": "Re: Your order #4711 has shipped", "at": "2026-12-24T10:30:00+01:00"});
    assert_eq!(got, [Action::Collect { name: "digest".into(), data }]);
    assert!(error(r#"let x = collected("digest");"#, BARE).contains("collected() is for a schedule's rule"));
    assert!(error(r#"collect("my digest", 1);"#, BARE).contains("`my digest` is not a collection name"));
    assert!(error(r#"collect("digest", msg);"#, BARE).contains("cannot collect data into `digest`"));
    let (_dir, set) = scheduled(&[("c.rhai", r#"collect("digest", 1);"#)]);
    let evaluation = set.evaluate_scheduled("sweeps/c.rhai", None, &schedule(), fired(), &Collected::default());
    assert!(evaluation.failures[0].error.contains("collect() is for live rules"), "{:?}", evaluation.failures);
}

#[test]
fn dates_move_by_durations() {
    let rule = r#"webhook("t", [now().plus("2h"), now().minus("30m"), now() + "1d", now() - "1w",
                                 msg.date > now() - "7d", msg.date < now().minus("3d")]);"#;
    assert_eq!(
        read(rule, FULL),
        json!([
            "2026-12-26T14:00:00+00:00",
            "2026-12-26T11:30:00+00:00",
            "2026-12-27T12:00:00+00:00",
            "2026-12-19T12:00:00+00:00",
            true,
            false,
        ])
    );
    assert!(error(r#"let d = now() + "soon";"#, BARE).contains("cannot add `soon` to a date"));
}

#[test]
fn a_webhook_can_wait_until_a_time() {
    let got = actions(
        r#"webhook("t", 1, #{ at: now() + "1d" }); webhook("t", 2, #{ at: "2027-01-01T08:00:00+01:00" });"#,
        BARE,
    );
    let at = |text: &str| Some(DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc));
    let [Action::Webhook(first), Action::Webhook(second)] = got.as_slice() else { panic!("{got:#?}") };
    assert_eq!((first.at, &first.data), (at("2026-12-27T12:00:00Z"), &json!(1)));
    assert_eq!(second.at, at("2027-01-01T07:00:00Z"));
    assert!(
        error(r#"webhook("t", 1, #{ when: now() });"#, BARE).contains("webhook: unknown option `when` (known: at)")
    );
    assert!(error(r#"webhook("t", 1, #{ at: now() + "400d" });"#, BARE).contains("more than a year after now"));
}
