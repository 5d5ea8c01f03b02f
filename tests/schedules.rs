//! Schedules against the real Dovecot: the sweep's SEARCH on the wire (strings as literals with
//! and without LITERAL+, day-granular dates refined to the second), then the real binary: a
//! sweep archiving old read mail and nothing else, a restart that runs no fire twice, a digest
//! collected across restarts and sent once, and runs that fail (a missing mailbox, a Gmail
//! search on Dovecot) recorded with their error while the schedule goes on firing.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, FixedOffset, Timelike, Utc};
use tidings::config::{Search, Secret, Server, Tls};
use tidings::imap::{Criteria, Login, Session, Timeouts};
use tidings::source::schedule::search;
use tidings::store::Store;

use crate::daemon::{Daemon, Setup};
use crate::harness::{Receiver, TestEnv, User, message, wait_until};

async fn inbox(env: &TestEnv, user: &User) -> Result<Session> {
    let login = Login {
        account: "t".into(),
        server: Server { host: "127.0.0.1".into(), port: env.imaps_port, tls: Tls::Implicit, tls_fingerprint: None },
        username: user.login.clone(),
        password: Secret::new(user.password.clone()),
        oauth2: None,
        ca_file: Some(env.ca_file.clone()),
    };
    let mut session = Session::connect(&login, Timeouts::default()).await?;
    session.examine("INBOX").await?;
    Ok(session)
}

/// APPENDs a message with `subject` (may be RFC 2047 encoded) received at `at`; its UID.
async fn append(env: &TestEnv, user: &User, subject: &str, flags: &[&str], at: Option<DateTime<FixedOffset>>) -> u32 {
    let raw = message("sender@example.org", &user.address, subject, "body");
    env.append(user, "INBOX", &raw, flags, at).await.unwrap()
}

fn ago(days: i64, hours: i64) -> Option<DateTime<FixedOffset>> {
    Some((Utc::now() - chrono::Duration::days(days) - chrono::Duration::hours(hours)).fixed_offset())
}

#[tokio::test]
async fn non_ascii_strings_go_as_literals_with_or_without_literal_plus() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let greeting = append(env, &user, "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", &[], None).await;
    append(env, &user, "Greetings from Cologne", &[], None).await;
    let mut session = inbox(env, &user).await?;
    assert!(session.capabilities().literal_plus, "Dovecot offers LITERAL+: {:?}", session.capabilities().raw);
    let mut criteria = Criteria::new();
    criteria.push("SUBJECT").push_text("Grüße").push("SUBJECT").push_text("Köln");
    assert_eq!(session.search(&criteria).await?, [greeting]);
    // Without LITERAL+ or LITERAL-: each literal waits for the server's go-ahead.
    session.capabilities_mut().literal_plus = false;
    session.capabilities_mut().literal_minus = false;
    assert_eq!(session.search(&criteria).await?, [greeting]);
    let mut none = Criteria::new();
    none.push("SUBJECT").push_text("Zürich");
    assert!(session.search(&none).await?.is_empty());
    // A refusal in the middle of the command leaves the session usable.
    let mut bad = Criteria::new();
    bad.push("NOSUCHKEY").push_text("ü");
    assert!(session.search(&bad).await.is_err());
    assert!(!session.is_broken());
    assert_eq!(session.search(&criteria).await?, [greeting]);
    Ok(())
}

#[tokio::test]
async fn a_day_granular_search_is_refined_to_the_exact_internaldate() -> Result<()> {
    let env = TestEnv::shared();
    let user = env.new_user();
    let old = append(env, &user, "eight days", &["\\Seen"], ago(8, 0)).await;
    let just_old = append(env, &user, "seven days and an hour", &["\\Seen"], ago(7, 1)).await;
    let just_young = append(env, &user, "six days 23 hours", &["\\Seen"], ago(6, 23)).await;
    append(env, &user, "old but unread", &[], ago(9, 0)).await;
    append(env, &user, "today", &["\\Seen"], None).await;
    let mut session = inbox(env, &user).await?;
    let seven_days =
        Search { older_than: Some(Duration::from_secs(7 * 86_400)), seen: Some(true), ..Search::default() };
    let now = Utc::now();

    assert!(session.capabilities().within, "Dovecot offers WITHIN: {:?}", session.capabilities().raw);
    let exact = search::build("t", &seven_days, session.capabilities(), now, now)?;
    assert!(exact.criteria.to_string().starts_with("OLDER "), "{}", exact.criteria);
    assert_eq!(session.search(&exact.criteria).await?, [old, just_old]);

    session.capabilities_mut().within = false;
    let by_day = search::build("t", &seven_days, session.capabilities(), now, now)?;
    assert!(by_day.criteria.to_string().starts_with("BEFORE "), "{}", by_day.criteria);
    let found = session.search(&by_day.criteria).await?;
    assert!(found.contains(&just_young), "the day-wide search takes in the margin: {found:?}");
    let dates = session.internal_dates(&found).await?;
    let kept: Vec<u32> = dates.into_iter().filter(|(_, d)| by_day.refine.keeps(*d)).map(|(uid, _)| uid).collect();
    assert_eq!(kept, [old, just_old]);
    Ok(())
}

/// An entry of `schedules:` (YAML lines under its name).
fn schedule(name: &str, lines: &str) -> String {
    let body: String = lines.lines().map(|l| format!("    {}\n", l.trim())).collect();
    format!("  {name}:\n{body}")
}

fn write_rule(setup: &Setup, path: &str, text: &str) {
    let file = setup.dir.path().join("rules").join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_archives_old_read_mail_and_leaves_the_rest() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let old = append(env, &user, "old read", &["\\Seen"], ago(10, 0)).await;
    let ancient = append(env, &user, "ancient read", &["\\Seen"], ago(30, 0)).await;
    append(env, &user, "old unread", &[], ago(10, 0)).await;
    append(env, &user, "recent read", &["\\Seen"], ago(1, 0)).await;
    append(env, &user, "almost old read", &["\\Seen"], ago(6, 23)).await;
    let top = schedule(
        "tidy",
        "cron: \"*/2 * * * * *\"\ntimezone: UTC\naccount: t\nmailbox: INBOX\n\
         search: { older_than: 7d, seen: true }\nrule: sweeps/archive.rhai",
    );
    let setup = Setup::with_top(env, &user, &[], "", &format!("schedules:\n{top}"));
    // The rule archives whatever it is given: only the SEARCH selects.
    write_rule(&setup, "sweeps/archive.rhai", "archive();\n");

    let daemon = Daemon::start(&setup.config, 1);
    daemon.wait_log_count("schedule ran", 1, Duration::from_secs(20));
    wait_until(Duration::from_secs(20), "two messages archived", || async {
        env.list(&user, "Archive").await.map(|l| l.len() == 2).unwrap_or(false)
    })
    .await;
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    let first = log.lines().find(|l| l.contains("schedule ran")).unwrap();
    assert!(first.contains("messages=2") && first.contains("actions=2"), "{first}");
    let subjects = |mailbox: &'static str| {
        let user = user.clone();
        async move {
            let mut s: Vec<String> =
                env.list(&user, mailbox).await.unwrap().into_iter().filter_map(|m| m.subject).collect();
            s.sort();
            s
        }
    };
    assert_eq!(subjects("Archive").await, ["ancient read", "old read"]);
    assert_eq!(subjects("INBOX").await, ["almost old read", "old unread", "recent read"]);

    let store = Store::open(&setup.state()).await.unwrap();
    let actions = store.list_outbox(None, 100).await.unwrap();
    let mut uids: Vec<u32> = actions.iter().filter_map(|a| a.uid).collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids, [old, ancient], "{actions:#?}");
    assert!(actions.iter().all(|a| a.kind == "archive" && a.key.starts_with("schedule/tidy/")), "{actions:#?}");
    let runs = store.schedule_runs().await.unwrap();
    let [(name, _, Some(outcome))] = runs.as_slice() else { panic!("one recorded run: {runs:#?}") };
    assert_eq!((name.as_str(), outcome.error.as_deref(), outcome.failures), ("tidy", None, 0), "{outcome:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_never_runs_the_same_fire_twice() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    let beat =
        schedule("beat", "cron: \"*/2 * * * * *\"\ntimezone: UTC\naccount: t\nrun: once\nrule: digests/beat.rhai");
    let top = format!("schedules:\n{beat}webhooks:\n  hook: {{ url: \"{}\" }}\n", receiver.url("/beat"));
    let setup = Setup::with_top(env, &user, &[], "", &top);
    write_rule(&setup, "digests/beat.rhai", "webhook(\"hook\", #{ fired: now().to_string() });\n");

    let daemon = Daemon::start(&setup.config, 1);
    receiver.wait_for(2, Duration::from_secs(20));
    // Between two fires (they are on even seconds), so no delivery is cut off mid-way.
    let between_fires = |t: DateTime<Utc>| !t.second().is_multiple_of(2) && t.nanosecond() >= 300_000_000;
    while !between_fires(Utc::now()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_log = daemon.log();
    daemon.kill();
    let before = receiver.requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let daemon = Daemon::start(&setup.config, 1);
    receiver.wait_for(before + 3, Duration::from_secs(20));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    let mut per_fire: BTreeMap<String, usize> = BTreeMap::new();
    for request in receiver.requests() {
        let fired = request.json()["data"]["fired"].as_str().unwrap().to_owned();
        *per_fire.entry(fired).or_default() += 1;
    }
    let twice: Vec<_> = per_fire.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "fires delivered more than once: {twice:?}\n{log}");
    assert!(per_fire.len() >= before + 3, "{per_fire:?}");
    // The downtime's missed fires ran once in all (catch_up: once), not once each.
    assert_eq!(log.matches("running a fire missed").count(), 1, "{log}");
    // And no fire the first daemon finished ran again (its webhook would be deduplicated by
    // its key, so the runs themselves are compared).
    let fires = |log: &str| -> Vec<String> {
        let ran = log.lines().filter(|l| l.contains("schedule ran"));
        ran.filter_map(|l| l.split("fired_at=").nth(1)?.split(' ').next().map(str::to_owned)).collect()
    };
    let (first, second) = (fires(&first_log), fires(&log));
    assert!(!first.is_empty() && !second.is_empty(), "{first:?} {second:?}");
    assert!(second.iter().all(|f| !first.contains(f)), "run again after the restart: {first:?} {second:?}");
}

const COLLECT_RULE: &str = "collect(\"news\", #{ subject: msg.subject });\n";
const DIGEST_RULE: &str = r#"
let items = collected("news");
if items.is_empty() {
    return;
}
let subjects = [];
for item in items {
    subjects.push(item.subject);
}
webhook("hook", #{ subjects: subjects });
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_collects_across_restarts_and_is_sent_once() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    // Yearly at first: the digest must not fire while mail is still being collected.
    let digest =
        schedule("digest", "cron: \"0 0 1 1 *\"\ntimezone: UTC\naccount: t\nrun: once\nrule: digests/digest.rhai");
    let top = format!("schedules:\n{digest}webhooks:\n  hook: {{ url: \"{}\" }}\n", receiver.url("/digest"));
    let setup = Setup::with_top(env, &user, &[("collect.rhai", COLLECT_RULE)], "", &top);
    write_rule(&setup, "digests/digest.rhai", DIGEST_RULE);
    let deliver = |subject: &'static str| {
        let raw = message("news@example.org", &user.address, subject, "body");
        let user = user.clone();
        async move { env.deliver_lmtp(&user, &raw).await.unwrap() }
    };

    let daemon = Daemon::start(&setup.config, 1);
    deliver("first").await;
    daemon.wait_log_count("plans stored", 1, Duration::from_secs(20));
    deliver("second").await;
    daemon.wait_log_count("plans stored", 2, Duration::from_secs(20));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let daemon = Daemon::start(&setup.config, 1);
    deliver("third").await;
    daemon.wait_log_count("plans stored", 1, Duration::from_secs(20));
    daemon.kill();
    assert!(receiver.requests().is_empty());

    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, config.replace("0 0 1 1 *", "*/2 * * * * *")).unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    receiver.wait_for(1, Duration::from_secs(20));
    // Later fires find nothing left to send.
    daemon.wait_log_count("schedule ran", 3, Duration::from_secs(20));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let daemon = Daemon::start(&setup.config, 1);
    daemon.wait_log_count("schedule ran", 2, Duration::from_secs(20));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "one digest, sent once: {requests:#?}\n{log}");
    assert_eq!(requests[0].json()["data"]["subjects"], serde_json::json!(["first", "second", "third"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_run_is_recorded_and_the_schedule_goes_on() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let every = "cron: \"*/2 * * * * *\"\ntimezone: UTC\naccount: t\nrule: sweeps/archive.rhai";
    let missing = schedule("missing", &format!("{every}\nmailbox: NoSuchFolder"));
    let gmail = schedule("gmail", &format!("{every}\nsearch: {{ raw_gmail: \"older_than:7d\" }}"));
    let top = format!("schedules:\n{missing}{gmail}");
    let setup = Setup::with_top(env, &user, &[], "", &top);
    write_rule(&setup, "sweeps/archive.rhai", "archive();\n");

    let daemon = Daemon::start(&setup.config, 1);
    daemon.wait_log_count("schedule run failed", 4, Duration::from_secs(20));
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    for name in ["missing", "gmail"] {
        let failed = log.lines().filter(|l| l.contains(&format!("schedule{{schedule={name}}}")));
        assert!(failed.filter(|l| l.contains("schedule run failed")).count() >= 2, "{name} goes on failing:\n{log}");
    }

    let store = Store::open(&setup.state()).await.unwrap();
    let runs: BTreeMap<String, _> = store.schedule_runs().await.unwrap().into_iter().map(|(n, _, o)| (n, o)).collect();
    let error = |name: &str| runs[name].as_ref().and_then(|o| o.error.clone()).unwrap_or_default();
    assert!(error("missing").contains("cannot sweep t/NoSuchFolder for schedule `missing`"), "{runs:#?}");
    assert!(error("gmail").contains("schedule `gmail`") && error("gmail").contains("X-GM-EXT-1"), "{runs:#?}");
}
