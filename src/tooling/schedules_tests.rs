use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use super::{list, next_fires, report};
use crate::config::{Config, Schedule};
use crate::store::{LastRun, RunOutcome};

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn schedules() -> Vec<Schedule> {
    let yaml = r#"accounts:
  work:
    imap: { host: imap.example.com }
    username: me
    password_env: WORK_PASS
schedules:
  archive:
    cron: "0 7 * * *"
    timezone: Europe/Berlin
    account: work
    mailbox: Newsletters
    search: { older_than: 7d, seen: true }
    rule: sweeps/archive.rhai
  digest:
    cron: "30 18 * * 1-5"
    timezone: America/New_York
    account: work
    run: once
    rule: digests/daily.rhai
"#;
    Config::from_yaml(yaml, Path::new("/etc/tidings/tidings.yaml")).unwrap().schedules
}

fn text(runs: &[LastRun], now: DateTime<Utc>) -> String {
    let mut out = Vec::new();
    report(&schedules(), runs, now, false, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn outcome(started: DateTime<Utc>, millis: i64, messages: u64, actions: u64, error: Option<&str>) -> RunOutcome {
    RunOutcome {
        started_at: started,
        finished_at: started + Duration::milliseconds(millis),
        messages,
        actions,
        failures: 0,
        error: error.map(str::to_owned),
    }
}

#[test]
fn next_fires_are_three_in_the_schedule_zone_across_a_dst_switch() {
    // Berlin falls back on Sunday 2025-10-26: the wall time stays 07:00, the offset changes.
    let got = text(&[], utc("2025-10-24T12:00:00Z"));
    let archive = got.split("\n\n").next().unwrap();
    assert_eq!(
        archive,
        "\
archive
  cron:  0 7 * * * (Europe/Berlin)
  runs:  sweeps/archive.rhai per message in work/Newsletters
  next:  Sat 2025-10-25 07:00:00 +02:00
         Sun 2025-10-26 07:00:00 +01:00
         Mon 2025-10-27 07:00:00 +01:00
  last:  never run"
    );
}

#[test]
fn a_run_once_schedule_shows_once_and_its_weekdays() {
    let got = text(&[], utc("2025-10-24T12:00:00Z"));
    let digest = got.split("\n\n").nth(1).unwrap();
    assert_eq!(
        digest,
        "\
digest
  cron:  30 18 * * 1-5 (America/New_York)
  runs:  digests/daily.rhai once, with no message (account work)
  next:  Fri 2025-10-24 18:30:00 -04:00
         Mon 2025-10-27 18:30:00 -04:00
         Tue 2025-10-28 18:30:00 -04:00
  last:  never run"
    );
}

#[test]
fn the_last_run_shows_its_outcome() {
    let fired = utc("2025-10-24T05:00:00Z");
    let digest_fired = utc("2025-10-23T22:30:00Z");
    let runs: Vec<LastRun> = vec![
        ("archive".into(), fired, Some(outcome(fired, 1_250, 12, 3, None))),
        (
            "digest".into(),
            digest_fired,
            Some(outcome(digest_fired, 80, 0, 0, Some("cannot connect to imap.example.com"))),
        ),
    ];
    let got = text(&runs, utc("2025-10-24T12:00:00Z"));
    assert!(got.contains("  last:  Fri 2025-10-24 07:00:00 +02:00: ok: 12 messages, 3 actions, took 1.2s\n"), "{got}");
    assert!(
        got.contains("  last:  Thu 2025-10-23 18:30:00 -04:00: failed: cannot connect to imap.example.com\n"),
        "{got}"
    );
}

#[test]
fn outcomes_in_words() {
    let fired = utc("2025-10-24T05:00:00Z");
    let with = |outcome: Option<RunOutcome>| text(&[("archive".into(), fired, outcome)], utc("2025-10-24T12:00:00Z"));
    assert!(with(None).contains("  last:  Fri 2025-10-24 07:00:00 +02:00: ran (no outcome recorded)\n"));
    assert!(with(Some(outcome(fired, 40, 0, 0, None))).contains(": ok: 0 messages, 0 actions, took 0.0s\n"));
    let once = RunOutcome { failures: 1, ..outcome(fired, 2_000, 0, 1, None) };
    assert!(with(Some(once)).contains(": ok: 1 action, 1 rule failure, took 2.0s\n"));
}

#[test]
fn runs_of_schedules_no_longer_in_the_config_are_not_shown() {
    let fired = utc("2025-10-24T05:00:00Z");
    let got = text(&[("gone".into(), fired, None)], utc("2025-10-24T12:00:00Z"));
    assert!(!got.contains("gone"), "{got}");
    assert_eq!(got.matches("never run").count(), 2, "{got}");
}

#[test]
fn json_has_one_object_per_schedule_with_times_in_its_zone() {
    let fired = utc("2025-10-24T05:00:00Z");
    let runs: Vec<LastRun> = vec![("archive".into(), fired, Some(outcome(fired, 500, 4, 4, None)))];
    let mut out = Vec::new();
    report(&schedules(), &runs, utc("2025-10-24T12:00:00Z"), true, &mut out).unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let archive = &lines[0];
    assert_eq!(archive["name"], "archive");
    assert_eq!(archive["cron"], "0 7 * * *");
    assert_eq!(archive["timezone"], "Europe/Berlin");
    assert_eq!((archive["account"].as_str(), archive["mailbox"].as_str()), (Some("work"), Some("Newsletters")));
    assert_eq!(archive["run"], "per_message");
    assert_eq!(
        archive["next"],
        serde_json::json!(["2025-10-25T07:00:00+02:00", "2025-10-26T07:00:00+01:00", "2025-10-27T07:00:00+01:00"])
    );
    assert_eq!(archive["last"]["fired_at"], "2025-10-24T07:00:00+02:00");
    assert_eq!(archive["last"]["outcome"]["ok"], true);
    assert_eq!(archive["last"]["outcome"]["messages"], 4);
    let digest = &lines[1];
    assert_eq!((digest["run"].as_str(), digest["mailbox"].is_null()), (Some("once"), true));
    assert!(digest["last"].is_null());
}

#[test]
fn no_schedules_says_so() {
    let mut out = Vec::new();
    report(&[], &[], Utc::now(), false, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "no schedules in the config\n");
}

#[test]
fn next_fires_stop_short_when_there_are_none() {
    let mut schedule = schedules().remove(0);
    // 30 February never comes.
    schedule.cron = "0 0 30 2 *".parse().unwrap();
    assert!(next_fires(&schedule, utc("2025-10-24T12:00:00Z")).is_empty());
}

#[tokio::test]
async fn without_a_store_every_schedule_is_never_run_and_no_store_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let mut out = Vec::new();
    list(&schedules(), &crate::config::State::File(state.clone()), false, &mut out).await.unwrap();
    let got = String::from_utf8(out).unwrap();
    assert_eq!(got.matches("last:  never run").count(), 2, "{got}");
    assert!(!state.exists());
}

#[tokio::test]
async fn with_a_store_the_last_run_is_read_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let fired = utc("2025-10-24T05:00:00Z");
    let store = crate::store::Store::open(&state).await.unwrap();
    store.record_schedule_run("archive", fired).await.unwrap();
    drop(store);
    let mut out = Vec::new();
    list(&schedules(), &crate::config::State::File(state.clone()), false, &mut out).await.unwrap();
    let got = String::from_utf8(out).unwrap();
    assert!(got.contains("last:  Fri 2025-10-24 07:00:00 +02:00: ran (no outcome recorded)"), "{got}");
}
