//! Rules isolated from each other's messages and time, through the real daemon: a rule that
//! throws on 30 messages stays active for the next one while `tidings status`, `/healthz` and
//! `tidings history` report the failures; one account's rule stuck at its wall-clock limit does
//! not hold up another account's move.

use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, User, message, wait_for};
use crate::health::{free_port, get, parse_prometheus, sample, tidings};
use crate::reload::id_of;
use crate::watch::ids_in;

/// Throws on a "bad" subject, after reading the body: the daemon fetches new mail header first,
/// and a rule reading the body has the message evaluated again whole. Both evaluations throw;
/// only the second is the message's failure.
const PICKY_RULE: &str = r#"
let body = msg.text;
if msg.subject.starts_with("bad") {
    throw "cannot digest " + msg.subject;
}
move_to("Done");
"#;

/// How many rule failures whose error contains `error` the daemon logged as final.
fn failures_logged(log: &str, error: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("rule failed; its decisions for this message are dropped") && l.contains(error))
        .count()
}

/// Waits until the message with `id` is in `folder` of `user`; how long that took from `since`.
async fn until_in(env: &TestEnv, user: &User, folder: &str, id: &str, since: Instant, daemon: &Daemon) -> Duration {
    wait_for(Duration::from_secs(60), env.with_logs(format!("{id} in {folder}\n{}", daemon.log())), || async {
        let ids = ids_in(env, user, folder).await;
        if ids.iter().any(|i| i == id) { Ok(since.elapsed()) } else { Err(format!("{folder}: {} messages", ids.len())) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_failing_on_30_messages_stays_active_and_status_reports_it_meanwhile() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let port = free_port();
    let top = format!("http: {{ listen: \"127.0.0.1:{port}\" }}\n");
    let setup = Setup::with_top(env, &user, &[("picky.rhai", PICKY_RULE)], "", &top);
    let daemon = Daemon::start(&setup.config, 1);
    let status = tidings(&setup.config, &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stdout));

    let mut bad = Vec::new();
    for n in 0..30 {
        let raw = message("a@example.com", &user.address, &format!("bad {n}"), "a poison pill");
        env.deliver_lmtp(&user, &raw).await.unwrap();
        bad.push(id_of(&raw));
    }
    // While they are decided: degraded (exit 3), the rule named with its error and message.
    let text = wait_for(Duration::from_secs(60), format!("the failures in the status\n{}", daemon.log()), || async {
        let out = tidings(&setup.config, &["status"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.code() == Some(3) && text.contains("rules failing now") { Ok(text) } else { Err(text) }
    })
    .await;
    assert!(text.starts_with("tidings: running, DEGRADED\n"), "{text}");
    assert!(text.contains("  ! rule picky.rhai failed on "), "{text}");
    assert!(text.contains("cannot digest bad "), "{text}");
    let (code, body) = get(port, "/healthz").unwrap();
    assert_eq!(code, 200, "degraded answers 200 by default: {body}");
    assert!(body.starts_with("degraded\nrule picky.rhai failed on "), "{body}");

    // All 30 decided, each failure counted once (the header-only pass of a message whose rule
    // wants its body is not a failure).
    let json = wait_for(Duration::from_secs(60), format!("30 failures\n{}", daemon.log()), || async {
        let out = tidings(&setup.config, &["status", "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let failures = json["rules_failing"][0]["failures"].as_u64();
        if failures == Some(30) && out.status.code() == Some(3) { Ok(json) } else { Err(format!("{failures:?}")) }
    })
    .await;
    let failing = &json["rules_failing"][0];
    assert_eq!(failing["rule"], "picky.rhai", "{json}");
    assert!(bad.iter().any(|id| failing["message_id"] == id.as_str()), "{json}");
    assert!(failing["last_error"].as_str().is_some_and(|e| e.contains("cannot digest bad")), "{json}");
    let (_, metrics) = get(port, "/metrics").unwrap();
    let samples = parse_prometheus(&metrics);
    assert_eq!(sample(&samples, "tidings_rule_errors_total", &[("rule", "picky.rhai")]), Some(30.0), "{metrics}");
    assert_eq!(sample(&samples, "tidings_rules_failing", &[]), Some(1.0), "{metrics}");
    assert_eq!(sample(&samples, "tidings_degraded", &[]), Some(1.0), "{metrics}");
    let log = daemon.log();
    assert_eq!(failures_logged(&log, "cannot digest bad"), 30, "each logged once:\n{log}");
    let header_first = log.matches("the rules want the whole message; fetching it").count();
    assert!(header_first >= 30, "each evaluated on its header first ({header_first}):\n{log}");

    // History names the rule and why.
    let history = tidings(&setup.config, &["history", &format!("<{}>", bad[7])]);
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("rule picky.rhai FAILED: ") && history.contains("cannot digest bad 7"), "{history}");

    // The rule was never switched off: the next, legitimate message is moved.
    let good = message("b@example.com", &user.address, "fine", "nothing odd here");
    env.deliver_lmtp(&user, &good).await.unwrap();
    until_in(env, &user, "Done", &id_of(&good), Instant::now(), &daemon).await;
    assert_eq!(ids_in(env, &user, "INBOX").await.len(), 30, "the poisoned ones stay where they were");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

/// Spins over the body until the wall clock stops it.
const SLOW_RULE: &str = r#"
let found = 0;
loop {
    if msg.text.captures("(\\d+)-(\\w+)-zz") != () { found += 1; }
}
"#;

const MOVE_RULE: &str = "move_to(\"Moved\");\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_rule_on_one_account_does_not_hold_up_another_accounts_move() {
    let env = TestEnv::shared();
    let (a, b) = (env.new_user(), env.new_user());
    let limit = Duration::from_millis(500);
    let rules = [("slow.rhai", SLOW_RULE), ("move.rhai", MOVE_RULE)];
    let setup = Setup::new(env, &a, &rules, "rules: [slow.rhai]\n");
    let original = std::fs::read_to_string(&setup.config).unwrap();
    let a_block = original.split_once("accounts:\n").unwrap().1.to_owned();
    std::fs::write(setup.dir.path().join("password-b"), &b.password).unwrap();
    std::fs::set_permissions(setup.dir.path().join("password-b"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    let b_block = a_block
        .replace("  t:\n", "  u:\n")
        .replace(&a.login, &b.login)
        .replace("password_file: password\n", "password_file: password-b\n")
        .replace("rules: [slow.rhai]", "rules: [move.rhai]");
    let limits = format!("limits: {{ operations: 1000000000, wall_time: {}ms }}\n", limit.as_millis());
    std::fs::write(&setup.config, format!("{original}{b_block}{limits}")).unwrap();
    let daemon = Daemon::start(&setup.config, 2);

    // B alone first: what a move takes here without a slow rule anywhere (the second one: the
    // first also creates the folder).
    let mut alone = Duration::ZERO;
    for n in 0..2 {
        let lone = message("x@example.com", &b.address, &format!("alone {n}"), "x");
        let delivered = Instant::now();
        env.deliver_lmtp(&b, &lone).await.unwrap();
        alone = until_in(env, &b, "Moved", &id_of(&lone), delivered, &daemon).await;
    }

    // A gets big bodies its rule spins over until stopped (each evaluated twice: on its header,
    // then whole), so A's rule is busy for seconds; B's message arrives meanwhile.
    let body = "lorem ipsum dolor sit amet 12-ab-yy ".repeat(25_000);
    for round in 0..3 {
        let slow = message("x@example.com", &a.address, &format!("slow {round}"), &body);
        env.deliver_lmtp(&a, &slow).await.unwrap();
    }
    // Once A's first message stopped at the limit on its header, A has five more such runs to go.
    daemon.wait_log_count("the rules want the whole message; fetching it", 1, Duration::from_secs(30));
    let quick = message("x@example.com", &b.address, "quick", "x");
    let delivered = Instant::now();
    env.deliver_lmtp(&b, &quick).await.unwrap();
    let beside = until_in(env, &b, "Moved", &id_of(&quick), delivered, &daemon).await;
    eprintln!(
        "B's move took {:.0} ms while A's slow rule ran (alone: {:.0} ms; A's limit {} ms)",
        beside.as_secs_f64() * 1000.0,
        alone.as_secs_f64() * 1000.0,
        limit.as_millis()
    );
    // Generous (a shared machine): not A's limit on top of B's own time, let alone the seconds
    // a serialised engine cost.
    assert!(beside < alone + limit, "B waited {beside:?} (alone {alone:?}, A's limit {limit:?})");
    // A's rule was stopped at its limit each time, once per message (not run again).
    let timeouts = wait_for(Duration::from_secs(30), format!("A's three timeouts\n{}", daemon.log()), || async {
        let n = failures_logged(&daemon.log(), "stopped after the wall-clock limit of 500ms");
        if n >= 3 { Ok(n) } else { Err(n) }
    })
    .await;
    assert_eq!(timeouts, 3, "one failure per message:\n{}", daemon.log());

    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}
