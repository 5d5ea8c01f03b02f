//! The board's verdicts and the metrics text.

use std::time::Duration;

use chrono::{TimeDelta, Utc};

use super::metrics::{Snapshot, render};
use super::*;

fn thresholds(secs: u64) -> Thresholds {
    Thresholds { unhealthy_after: Duration::from_secs(secs), outbox_overdue: Duration::from_secs(secs) }
}

#[test]
fn a_watcher_is_unhealthy_only_once_down_for_the_threshold_and_healthy_again_when_back() {
    let health = Health::new(None);
    let watcher = health.watcher("work", "INBOX");
    let now = Utc::now();
    assert!(health.verdict(now, &thresholds(60), &[]).is_healthy(), "connecting, but not for long");
    let later = now + TimeDelta::seconds(61);
    let verdict = health.verdict(later, &thresholds(60), &[]);
    assert_eq!(verdict.problems.len(), 1, "{verdict:?}");
    assert!(verdict.problems[0].starts_with("watcher work/INBOX has been connecting for 6"), "{verdict:?}");
    watcher.watching(true);
    assert!(health.verdict(later, &thresholds(60), &[]).is_healthy());
    watcher.failed("cannot connect to 127.0.0.1:1: refused");
    assert!(health.verdict(Utc::now(), &thresholds(60), &[]).is_healthy(), "down, but not for long");
    let verdict = health.verdict(Utc::now() + TimeDelta::seconds(60), &thresholds(60), &[]);
    assert!(
        verdict.problems[0].contains("has been down for 60s: cannot connect to 127.0.0.1:1: refused"),
        "{verdict:?}"
    );
    let state = &health.watchers()[0].1;
    assert_eq!((state.conn, state.reconnects), (Conn::Down, 1));
}

#[test]
fn an_overdue_pending_action_is_a_backing_up_outbox() {
    let health = Health::new(None);
    let now = Utc::now();
    let group = |state, due: Option<i64>| OutboxGroup {
        account: "work".into(),
        kind: "webhook".into(),
        state,
        count: 3,
        oldest_due: due.map(|s| now - TimeDelta::seconds(s)),
    };
    let fine = [group(ActionState::Pending, Some(10)), group(ActionState::Failed, None)];
    assert!(health.verdict(now, &thresholds(60), &fine).is_healthy());
    let verdict = health.verdict(now, &thresholds(60), &[group(ActionState::Pending, Some(61))]);
    assert_eq!(
        verdict.problems,
        ["outbox of work is backing up: 3 webhook action(s) pending, the oldest overdue by 61s"]
    );
}

#[test]
fn metrics_name_every_family_once_and_escape_label_values() {
    let health = Health::new(None);
    let watcher = health.watcher("work", "Lists/\"odd\" \\ name");
    watcher.watching(false);
    watcher.stored(4, ["sort.rhai", "sort.rhai", "notify.rhai"], ["broken.rhai"]);
    watcher.failed("gone");
    let now = Utc::now();
    let outbox = [OutboxGroup {
        account: "work".into(),
        kind: "move".into(),
        state: ActionState::Pending,
        count: 2,
        oldest_due: Some(now - TimeDelta::seconds(5)),
    }];
    let verdict = health.verdict(now, &thresholds(60), &outbox);
    let disabled = vec!["broken.rhai".to_owned()];
    let text =
        render(&Snapshot { health: &health, outbox: &outbox, disabled_rules: &disabled, verdict: &verdict, now });
    let mailbox = r#"account="work",mailbox="Lists/\"odd\" \\ name""#;
    for line in [
        "tidings_healthy 1".to_owned(),
        format!("tidings_watcher_up{{{mailbox}}} 0"),
        format!("tidings_messages_processed_total{{{mailbox}}} 4"),
        format!("tidings_imap_reconnects_total{{{mailbox}}} 1"),
        r#"tidings_rule_hits_total{rule="sort.rhai"} 2"#.to_owned(),
        r#"tidings_rule_errors_total{rule="broken.rhai"} 1"#.to_owned(),
        r#"tidings_rule_disabled{rule="broken.rhai"} 1"#.to_owned(),
        r#"tidings_actions{account="work",kind="move",state="pending"} 2"#.to_owned(),
        r#"tidings_outbox_depth{account="work"} 2"#.to_owned(),
        r#"tidings_outbox_overdue_seconds{account="work"} 5"#.to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    let mut types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    let all = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), all, "a family declared twice:\n{text}");
}

#[test]
fn alerts_tell_each_outage_once_and_its_end_and_new_dead_letters_only() {
    use super::alerts::{Told, check};
    let health = Health::new(None);
    let watcher = health.watcher("work", "INBOX");
    watcher.watching(true);
    let mut told = Told::default();
    let t = thresholds(60);
    let now = Utc::now();
    let old_dead = [("work".to_owned(), ActionState::Failed, 2)];
    assert!(
        check(&health, &t, &[], &old_dead, &mut told, now).is_empty(),
        "dead letters from before the start are known"
    );
    watcher.failed("connection refused");
    assert!(check(&health, &t, &[], &old_dead, &mut told, now).is_empty(), "not down for long yet");
    let later = now + TimeDelta::seconds(61);
    let alerts = check(&health, &t, &[], &old_dead, &mut told, later);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((alerts[0].kind, alerts[0].account.as_deref()), ("watcher_down", Some("work")));
    assert!(alerts[0].text.contains("work/INBOX is down since") && alerts[0].text.ends_with("connection refused"));
    assert!(check(&health, &t, &[], &old_dead, &mut told, later).is_empty(), "told once per outage");
    watcher.watching(true);
    let more_dead = [("work".to_owned(), ActionState::Failed, 5)];
    let disabled = ["broken.rhai".to_owned()];
    let alerts = check(&health, &t, &disabled, &more_dead, &mut told, later);
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, ["watcher_up", "rule_disabled", "actions_failed"], "{alerts:?}");
    assert!(alerts[2].text.starts_with("3 action(s) of account work failed for good"), "{alerts:?}");
    assert!(check(&health, &t, &disabled, &more_dead, &mut told, later).is_empty(), "nothing new");
}

#[test]
fn a_rule_failing_often_within_the_window_is_told_once_per_batch_of_failures() {
    use super::alerts::{FAILING_AFTER, FAILING_WINDOW, Told, check};
    let health = Health::new(None);
    let watcher = health.watcher("work", "INBOX");
    watcher.watching(true);
    let mut told = Told::default();
    let now = Utc::now();
    let fail = |n: u64| (0..n).for_each(|_| watcher.stored(1, [], ["flaky.rhai"]));
    fail(1);
    assert!(check(&health, &thresholds(60), &[], &[], &mut told, now).is_empty(), "the window starts");
    fail(FAILING_AFTER - 1);
    assert!(check(&health, &thresholds(60), &[], &[], &mut told, now).is_empty(), "not yet {FAILING_AFTER} more");
    fail(1);
    let alerts = check(&health, &thresholds(60), &[], &[], &mut told, now);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, "rule_failing");
    assert!(alerts[0].text.starts_with(&format!("rule flaky.rhai failed on {FAILING_AFTER} messages since")));
    assert!(check(&health, &thresholds(60), &[], &[], &mut told, now).is_empty(), "told once");
    // Failures spread thinner than the window are not a rule that keeps failing.
    fail(FAILING_AFTER - 1);
    let later = now + FAILING_WINDOW;
    assert!(check(&health, &thresholds(60), &[], &[], &mut told, later).is_empty(), "the window restarts");
    fail(1);
    assert!(check(&health, &thresholds(60), &[], &[], &mut told, later).is_empty(), "1 in the new window");
}
