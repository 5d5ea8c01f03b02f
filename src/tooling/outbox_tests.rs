//! `tidings outbox`: targets, the table, the summary, and retry/drop against a store file.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::*;
use crate::config::State;
use crate::store::{NewAction, Outcome};

const T0: i64 = 1_700_000_000_000;

fn at(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

/// A payload as the pipeline stores it: the JSON of a real `plan::Action`, so a change to the
/// plan's shapes shows up here.
fn planned(action: Value) -> Value {
    let action: crate::plan::Action = serde_json::from_value(action).unwrap();
    serde_json::to_value(&action).unwrap()
}

fn original() -> Value {
    json!({ "message_id": "m@x.org", "references": [], "from": "a@x.org", "subject": "Hi", "date": null })
}

fn action(id: i64, kind: &str, payload: Value) -> Action {
    Action {
        id: ActionId(id),
        key: format!("k{id}"),
        account: "work".into(),
        mailbox: Some("INBOX".into()),
        uidvalidity: Some(9),
        uid: Some(42),
        kind: kind.into(),
        payload,
        state: ActionState::Pending,
        attempts: 0,
        next_attempt_at: at(T0),
        claimed_at: None,
        last_error: None,
        created_at: at(T0),
        updated_at: at(T0),
        rule: Some("r.rhai".into()),
    }
}

#[test]
fn the_target_is_read_from_each_kind_of_payload() {
    let reply = json!({ "kind": "reply", "to": "a@x.org", "subject": "Re: Hi", "body": "b", "days": 7,
                        "handle": "v", "original": original() });
    let forward = json!({ "kind": "forward", "to": ["b@x.org", "c@x.org", "d@x.org"], "note": null,
                          "original": original(), "text": "t" });
    let send = json!({ "kind": "send", "to": ["e@x.org"], "cc": [], "subject": "s", "body": "b" });
    let webhook =
        serde_json::to_value(crate::plan::Action::Webhook(crate::plan::Event::new("ops", json!({})))).unwrap();
    let command =
        serde_json::to_value(crate::plan::Action::Command(crate::plan::Event::new("sync", json!({})))).unwrap();
    let cases = [
        ("reply", planned(reply), "a@x.org"),
        ("forward", planned(forward), "b@x.org (+2)"),
        ("send", planned(send), "e@x.org"),
        ("webhook", webhook, "ops"),
        ("command", command, "sync"),
        ("move", planned(json!({ "kind": "move", "mailbox": "Archive/2024" })), "Archive/2024"),
        ("add_flags", planned(json!({ "kind": "add_flags", "flags": ["\\Seen", "GitHub"] })), "\\Seen GitHub"),
        ("archive", planned(json!({ "kind": "archive" })), ""),
        ("save_sent", json!({ "mailbox": null, "message": "From: ..." }), "\\Sent"),
        ("save_sent", json!({ "mailbox": "Sent Items", "message": "From: ..." }), "Sent Items"),
    ];
    for (kind, payload, expected) in cases {
        assert_eq!(target(&action(1, kind, payload)), expected, "{kind}");
    }
}

#[test]
fn spans_use_their_largest_whole_unit() {
    let cases = [(-5, "0s"), (0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (86_399, "23h")];
    for (seconds, expected) in cases {
        assert_eq!(span(Duration::seconds(seconds)), expected, "{seconds}");
    }
    assert_eq!(span(Duration::days(12)), "12d");
}

#[test]
fn the_table_is_aligned_with_one_row_per_action() {
    let now = at(T0) + Duration::hours(3);
    let mut failed = action(7, "webhook", json!({ "endpoint": "ops" }));
    (failed.state, failed.attempts) = (ActionState::Failed, 12);
    failed.last_error = Some("gave up after 12 attempts:\n500 Internal Server Error".into());
    let mut later = action(12, "reply", json!({ "to": "someone.long@example.org" }));
    later.next_attempt_at = now + Duration::minutes(5);
    (later.rule, later.created_at) = (None, now - Duration::seconds(30));
    let mut text = Vec::new();
    write_table(&mut text, &[failed, later], now).unwrap();
    let text = String::from_utf8(text).unwrap();
    let expected = "\
ID  ACCOUNT  KIND     RULE    TARGET                    STATE    TRIES  NEXT   AGE  LAST ERROR
 7  work     webhook  r.rhai  ops                       failed      12  -      3h   gave up after 12 attempts: 500 Internal Server Error
12  work     reply    -       someone.long@example.org  pending      0  in 5m  30s
";
    assert_eq!(text, expected);
    let mut nothing = Vec::new();
    write_table(&mut nothing, &[], now).unwrap();
    assert!(nothing.is_empty());
}

/// The LAST ERROR column keeps a refused connection's root cause; an error whose root cause
/// alone is too long for it follows its row whole, wrapped.
#[test]
fn a_long_error_keeps_its_root_cause_or_follows_its_row() {
    let now = at(T0);
    let mut refused = action(3, "webhook", json!({ "endpoint": "ops" }));
    refused.last_error = Some(
        "gave up after 10 attempts: cannot connect to webhook `ops`: error sending request: client error (Connect): \
         tcp connect error: Connection refused (os error 111)"
            .into(),
    );
    let mut rejected = action(4, "reply", json!({ "to": "a@x.org" }));
    let said =
        "550 5.7.1 <a@x.org>: Recipient address rejected: this mailbox does not take mail from automated senders";
    rejected.last_error = Some(format!("the SMTP server refused the message: {said}"));
    let mut text = Vec::new();
    write_table(&mut text, &[refused, rejected], now).unwrap();
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].ends_with("gave up after 10 attempts: … Connection refused (os error 111)"), "{text}");
    assert!(lines[2].starts_with(" 4  work") && lines[2].ends_with('…'), "{text}");
    assert!(lines[3].starts_with("    error: the SMTP server refused the message: 550 5.7.1"), "{text}");
    let under: Vec<&str> = lines[3..].iter().flat_map(|l| l.split_whitespace()).skip(1).collect();
    assert!(under.join(" ").ends_with(said), "the whole error under its row:\n{text}");
}

#[test]
fn the_json_line_has_everything_but_the_payload() {
    let mut hook = action(3, "webhook", json!({ "endpoint": "ops", "data": { "secret-ish": "body text" } }));
    hook.last_error = Some("503".into());
    let line = json_line(&hook, at(T0));
    assert_eq!(line["id"], 3);
    assert_eq!((line["kind"].as_str(), line["target"].as_str()), (Some("webhook"), Some("ops")));
    assert_eq!((line["state"].as_str(), line["due"].as_bool()), (Some("pending"), Some(true)));
    assert_eq!((line["rule"].as_str(), line["last_error"].as_str()), (Some("r.rhai"), Some("503")));
    assert_eq!(line["next_attempt_at"], "2023-11-14T22:13:20+00:00");
    assert_eq!(line["claimed_at"], Value::Null);
    assert!(line.get("payload").is_none() && !line.to_string().contains("body text"));
}

#[test]
fn the_summary_counts_states_and_says_what_to_do() {
    let options = ListOptions { all: false, json: false, limit: 100 };
    let quiet = OutboxCounts { done: 40, suppressed: 2, ..OutboxCounts::default() };
    assert_eq!(
        summary(&quiet, 0, options),
        "nothing waiting: no action is pending, in flight, sending, failed or uncertain; \
         not listed: 40 done, 2 suppressed (--all lists them)"
    );
    let busy = OutboxCounts { pending: 3, failed: 1, uncertain: 2, done: 5, ..OutboxCounts::default() };
    assert_eq!(
        summary(&busy, 6, options),
        "3 pending, 1 failed, 2 uncertain; not listed: 5 done (--all lists them)\n\
         retry: tidings outbox retry ID... | --all    drop: tidings outbox drop ID..."
    );
    let all = ListOptions { all: true, ..options };
    assert_eq!(
        summary(&OutboxCounts { pending: 3, done: 5, ..OutboxCounts::default() }, 4, all),
        "3 pending, 5 done (showing the newest 4; --limit N shows more)"
    );
}

/// A store file with a failed webhook, a reply a crash left pending (it never began sending),
/// a done move and a copy due in an hour.
async fn store_with_rows(path: &Path) -> Vec<ActionId> {
    let store = Store::open(path).await.unwrap();
    let actions = vec![
        NewAction::new("hook", "work", "webhook", json!({ "endpoint": "ops" })).by_rule("n.rhai"),
        NewAction::new("reply", "work", "reply", json!({ "to": "a@x.org" })),
        NewAction::new("move", "work", "move", json!({ "mailbox": "Done" })),
    ];
    let mut ids = store.commit_schedule_plan("t", at(T0), actions).await.unwrap();
    store.claim_due(Utc::now(), 10).await.unwrap();
    store.record_outcome(ids[0], Outcome::Failed { error: "gave up".into() }).await.unwrap();
    store.record_outcome(ids[2], Outcome::Done).await.unwrap();
    store.recover_in_flight().await.unwrap();
    let later = NewAction::new("copy", "work", "copy", json!({ "mailbox": "Keep" }))
        .not_before(Utc::now() + Duration::hours(1));
    ids.extend(store.commit_schedule_plan("t", at(T0), vec![later]).await.unwrap());
    ids
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn listing_shows_what_needs_doing_and_all_with_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.db");
    let ids = store_with_rows(&path).await;
    let mut out = Vec::new();
    list(&State::File(path.clone()), ListOptions { all: false, json: false, limit: 100 }, &mut out).await.unwrap();
    let out = text(out);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID  ACCOUNT"), "{out}");
    assert!(lines[1].contains("webhook") && lines[1].contains("failed") && lines[1].contains("gave up"), "{out}");
    assert!(lines[2].contains("reply") && lines[2].contains("a@x.org") && lines[2].contains("pending"), "{out}");
    assert!(lines[3].contains("copy") && lines[3].contains("in 59m"), "{out}");
    assert!(lines[4].starts_with("2 pending, 1 failed; not listed: 1 done"), "{out}");
    assert!(!out.contains("move"), "done actions are not listed without --all");

    let mut json = Vec::new();
    list(&State::File(path.clone()), ListOptions { all: true, json: true, limit: 100 }, &mut json).await.unwrap();
    let ids_listed: Vec<i64> =
        text(json).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_i64().unwrap()).collect();
    assert_eq!(ids_listed, ids.iter().map(|id| id.0).collect::<Vec<_>>(), "oldest first, done ones too");
}

#[tokio::test]
async fn without_a_store_nothing_is_listed_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("tidings.db");
    let mut out = Vec::new();
    list(&State::File(path.clone()), ListOptions { all: false, json: false, limit: 100 }, &mut out).await.unwrap();
    assert!(text(out).starts_with("the outbox is empty: there is no store at"));
    let error = retry(&State::File(path.clone()), &Which::All, &mut Vec::new(), &mut Vec::new()).await.unwrap_err();
    assert!(matches!(error, Error::NoStore { .. }), "{error}");
    assert!(!path.exists() && !dir.path().join("state").exists());
}

#[tokio::test]
async fn retry_and_drop_report_each_action_and_refuse_the_wrong_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidings.db");
    let ids = store_with_rows(&path).await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    // The reply is pending (recovered mail that never began sending): only the webhook retries.
    let changed =
        retry(&State::File(path.clone()), &Which::Ids(vec![ids[0], ids[2], ActionId(99)]), &mut out, &mut err)
            .await
            .unwrap();
    assert_eq!(changed, Changed { changed: 1, refused: 2 });
    assert_eq!(text(out), format!("action {} (webhook ops) is pending again, due now\n", ids[0]));
    assert_eq!(
        text(err),
        format!(
            "error: cannot retry action {}: it is done; only failed or uncertain actions can be retried\n\
             error: cannot retry action 99: there is no such action\n",
            ids[2]
        )
    );
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let changed = drop(&State::File(path.clone()), &[ids[3], ids[2]], &mut out, &mut err).await.unwrap();
    assert_eq!(changed, Changed { changed: 1, refused: 1 });
    assert_eq!(text(out), format!("action {} (copy Keep) dropped: it will not run\n", ids[3]));
    let mut out = Vec::new();
    assert_eq!(
        retry(&State::File(path.clone()), &Which::All, &mut out, &mut Vec::new()).await.unwrap(),
        Changed::default()
    );
    assert_eq!(text(out), "nothing to retry: no action is failed or uncertain\n");
}

#[test]
fn a_retried_uncertain_mail_warns_that_it_may_arrive_twice() {
    let reply = action(5, "reply", json!({ "to": "a@x.org" }));
    assert_eq!(
        retried_line(&reply, true),
        "action 5 (reply a@x.org) is pending again, due now; \
         it was uncertain, so it may have been sent already and may arrive twice"
    );
    assert_eq!(retried_line(&reply, false), "action 5 (reply a@x.org) is pending again, due now");
    let hook = action(6, "webhook", json!({ "endpoint": "ops" }));
    assert_eq!(retried_line(&hook, true), "action 6 (webhook ops) is pending again, due now");
}
