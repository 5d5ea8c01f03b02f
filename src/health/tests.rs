//! The board's verdicts and the metrics text.

use std::time::Duration;

use chrono::{TimeDelta, Utc};

use super::metrics::{Snapshot, render};
use super::*;

fn thresholds(secs: u64) -> Thresholds {
    Thresholds {
        unhealthy_after: Duration::from_secs(secs),
        outbox_overdue: Duration::from_secs(secs),
        degraded_is_unhealthy: false,
    }
}

#[test]
fn a_watcher_is_unhealthy_only_once_down_for_the_threshold_and_healthy_again_when_back() {
    let health = Health::new(None);
    let watcher = health.watcher("work", "INBOX");
    let now = Utc::now();
    assert!(health.verdict(now, &thresholds(60), &[], &[]).is_healthy(), "connecting, but not for long");
    let later = now + TimeDelta::seconds(61);
    let verdict = health.verdict(later, &thresholds(60), &[], &[]);
    assert_eq!(verdict.problems.len(), 1, "{verdict:?}");
    assert!(verdict.problems[0].starts_with("watcher work/INBOX has been connecting for 6"), "{verdict:?}");
    watcher.watching(true);
    assert!(health.verdict(later, &thresholds(60), &[], &[]).is_healthy());
    watcher.failed("cannot connect to 127.0.0.1:1: refused");
    assert!(health.verdict(Utc::now(), &thresholds(60), &[], &[]).is_healthy(), "down, but not for long");
    let verdict = health.verdict(Utc::now() + TimeDelta::seconds(60), &thresholds(60), &[], &[]);
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
    let fine = [group(ActionState::Pending, Some(10)), group(ActionState::Done, None)];
    assert!(health.verdict(now, &thresholds(60), &fine, &[]).is_healthy());
    let verdict = health.verdict(now, &thresholds(60), &[group(ActionState::Pending, Some(61))], &[]);
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
    let failing = [failing_rule("broken.rhai", 3)];
    let verdict = health.verdict(now, &thresholds(60), &outbox, &failing);
    let snapshot =
        Snapshot { health: &health, outbox: &outbox, failing: &failing, verdict: &verdict, healthz_ok: true, now };
    let text = render(&snapshot);
    let mailbox = r#"account="work",mailbox="Lists/\"odd\" \\ name""#;
    for line in [
        "tidings_healthy 1".to_owned(),
        "tidings_degraded 1".to_owned(),
        "tidings_rules_failing 1".to_owned(),
        r#"tidings_rule_failures_last_hour{rule="broken.rhai"} 3"#.to_owned(),
        format!("tidings_watcher_up{{{mailbox}}} 0"),
        format!("tidings_messages_processed_total{{{mailbox}}} 4"),
        format!("tidings_imap_reconnects_total{{{mailbox}}} 1"),
        r#"tidings_rule_hits_total{rule="sort.rhai"} 2"#.to_owned(),
        r#"tidings_rule_errors_total{rule="broken.rhai"} 1"#.to_owned(),
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
    let alerts = check(&health, &t, &[], &more_dead, &mut told, later);
    let kinds: Vec<&str> = alerts.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, ["watcher_up", "actions_failed"], "{alerts:?}");
    assert!(alerts[1].text.starts_with("3 action(s) of account work failed for good"), "{alerts:?}");
    assert!(check(&health, &t, &[], &more_dead, &mut told, later).is_empty(), "nothing new");
}

/// `broken.rhai`-like: a rule that failed `n` times in the last hour, last on `<bad@x>`.
fn failing_rule(rule: &str, n: u64) -> FailingRule {
    FailingRule {
        rule: rule.to_owned(),
        failures: n,
        last_error: "cannot read\nthe subject (line 2, position 5)".to_owned(),
        last_at: Utc::now(),
        account: "work".to_owned(),
        mailbox: "INBOX".to_owned(),
        uid: 9,
        message_id: Some("bad@x".to_owned()),
    }
}

#[test]
fn a_rule_starting_to_fail_is_told_once_until_it_stops_failing_for_the_window() {
    use super::alerts::{Told, check};
    let health = Health::new(None);
    let mut told = Told::default();
    let now = Utc::now();
    let earlier = [failing_rule("known.rhai", 2)];
    assert!(check(&health, &thresholds(60), &earlier, &[], &mut told, now).is_empty(), "failing before the start");
    let failing = [failing_rule("known.rhai", 2), failing_rule("flaky.rhai", 1)];
    let alerts = check(&health, &thresholds(60), &failing, &[], &mut told, now);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((alerts[0].kind, alerts[0].account.as_deref()), ("rule_failing", Some("work")));
    assert_eq!(
        alerts[0].text,
        "rule flaky.rhai is failing: on work/INBOX <bad@x>: cannot read the subject (line 2, position 5)"
    );
    assert_eq!(alerts[0].data["message_id"], "bad@x");
    let more = [failing_rule("known.rhai", 2), failing_rule("flaky.rhai", 40)];
    assert!(check(&health, &thresholds(60), &more, &[], &mut told, now).is_empty(), "told once while it fails");
    // An hour without failing drops it from the rules failing now; failing again is news.
    assert!(check(&health, &thresholds(60), &earlier, &[], &mut told, now).is_empty());
    let alerts = check(&health, &thresholds(60), &failing, &[], &mut told, now + FAILING_NOW);
    assert_eq!(alerts.iter().map(|a| a.kind).collect::<Vec<_>>(), ["rule_failing"], "{alerts:?}");
}

#[test]
fn a_rule_failing_now_or_a_dead_letter_degrades_and_healthz_answers_per_the_setting() {
    let health = Health::new(None);
    health.watcher("work", "INBOX").watching(true);
    let now = Utc::now();
    let t = thresholds(60);
    let verdict = health.verdict(now, &t, &[], &[failing_rule("broken.rhai", 3)]);
    assert_eq!(verdict.severity(), Severity::Degraded);
    assert!(verdict.problems.is_empty(), "{verdict:?}");
    assert_eq!(
        verdict.degraded,
        [
            "rule broken.rhai failed on 3 message(s) in the last hour, last on work/INBOX Message-ID <bad@x>: cannot read the subject (line 2, position 5)"
        ]
    );
    assert!(verdict.answers_ok(&t), "degraded answers 200 by default");
    assert!(!verdict.answers_ok(&Thresholds { degraded_is_unhealthy: true, ..t }));
    let body = super::http::healthz_body(&verdict);
    assert!(body.starts_with("degraded\nrule broken.rhai failed on 3 message(s)"), "{body}");
    assert_eq!(super::http::healthz_body(&health.verdict(now, &t, &[], &[])), "ok\n");

    let dead =
        |state| OutboxGroup { account: "work".into(), kind: "webhook".into(), state, count: 2, oldest_due: None };
    let verdict = health.verdict(now, &t, &[dead(ActionState::Failed), dead(ActionState::Uncertain)], &[]);
    assert_eq!(verdict.severity(), Severity::Degraded);
    assert_eq!(
        verdict.degraded,
        [
            "2 webhook action(s) of account work failed for good; see `tidings outbox`",
            "2 webhook action(s) of account work uncertain (may have run); see `tidings outbox`"
        ]
    );
    // Unhealthy outranks degraded, and answers 503 whatever the setting.
    let verdict = health.verdict(now + TimeDelta::seconds(61), &t, &[], &[failing_rule("broken.rhai", 1)]);
    assert_eq!(verdict.severity(), Severity::Degraded, "a watcher that watches is not down");
    health.watcher("work", "INBOX").failed("refused");
    let verdict = health.verdict(Utc::now() + TimeDelta::seconds(61), &t, &[], &[failing_rule("broken.rhai", 1)]);
    assert_eq!((verdict.severity(), verdict.lines().count()), (Severity::Unhealthy, 2), "{verdict:?}");
    assert!(!verdict.answers_ok(&t));
}

/// A schedule's failures are kept per run: its last run, if it finished within the hour with
/// failures or did not complete, is a degraded line; an older one or a clean one is not.
#[test]
fn a_schedule_whose_last_run_failed_within_the_hour_is_a_degraded_line() {
    use crate::store::RunOutcome;
    let now = Utc::now();
    let run = |ago: i64, failures: u64, error: Option<&str>| {
        let at = now - TimeDelta::minutes(ago);
        let outcome = RunOutcome {
            started_at: at,
            finished_at: at,
            messages: 4,
            actions: 1,
            failures,
            error: error.map(str::to_owned),
        };
        Some(outcome)
    };
    let runs = vec![
        ("clean".to_owned(), now - TimeDelta::minutes(5), run(5, 0, None)),
        ("broken".to_owned(), now - TimeDelta::minutes(5), run(5, 2, None)),
        ("down".to_owned(), now - TimeDelta::minutes(10), run(10, 0, Some("cannot log in\nat all"))),
        ("old".to_owned(), now - TimeDelta::minutes(90), run(90, 7, Some("long ago"))),
        ("never".to_owned(), now - TimeDelta::minutes(1), None),
    ];
    let lines = failed_runs(&runs, now - FAILING_NOW);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with("schedule broken: its rule failed 2 time(s) in the run fired at "), "{}", lines[0]);
    assert!(lines[1].starts_with("schedule down: the run fired at "), "{}", lines[1]);
    assert!(lines[1].ends_with("did not complete: cannot log in at all"), "{}", lines[1]);
}
