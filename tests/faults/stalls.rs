//! A stalled server: the socket stays open and no byte comes back. tidings must notice by its
//! own deadlines (the command deadline; in IDLE, the re-issue interval plus the deadline of
//! DONE) and reconnect. The proxy records when the stall began and when tidings dropped the
//! connection; the test prints both delays and asserts them against the configured deadlines.

use std::time::Duration;

use super::accounting::{Effects, Run, settle_and_check, token};
use super::{COMMAND_TIMEOUT, IDLE_INTERVAL, deliver_all, messages, replying, through};
use crate::daemon::Daemon;
use crate::harness::{Proxy, Side, TestEnv, Trigger, wait_for};
use crate::watch::SORT_RULE;

/// Scheduling slack on a loaded 2-core machine, beyond the deadline itself.
const SLACK: Duration = Duration::from_millis(1500);

/// A sort run whose first connection matching `trigger` stalls; tidings must drop it no sooner
/// than `at_least` and no later than `at_most` after the stall began, then reconnect.
async fn stalled(name: &str, trigger: Trigger, at_least: Duration, at_most: Duration) {
    let env = TestEnv::shared();
    let user = env.new_user();
    let proxy = Proxy::start(env.imap_port);
    let setup = through(env, &user, &proxy, &[("sort.rhai", SORT_RULE)], "", "");
    proxy.arm(trigger);
    let daemon = Daemon::start(&setup.config, 1);
    let sent = deliver_all(env, &user, &token(name), messages().min(4)).await;
    let (began, dropped) =
        wait_for(at_most + Duration::from_secs(20), format!("{name}: the stalled connection dropped"), || {
            let history = proxy.history();
            async move {
                let stalled = history.iter().find(|c| c.fault.is_some()).ok_or("no stall yet")?;
                let (_, _, began) = stalled.fault.clone().ok_or("no stall yet")?;
                Ok::<_, &str>((began, stalled.closed.ok_or("still open")?))
            }
        })
        .await;
    let fx = Effects { moved_to: Some("Sorted"), ..Effects::default() };
    settle_and_check(name, || proxy.faults(), Run { env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    let (_, log) = daemon.stop();
    let noticed = dropped - began;
    let reconnected = proxy.history().iter().find(|c| c.opened >= dropped).map(|c| c.opened - dropped);
    eprintln!(
        "{name}: noticed {noticed:?} after the stall began (allowed {at_least:?}..{at_most:?}), next connection {reconnected:?} after"
    );
    assert!(
        noticed + Duration::from_millis(100) >= at_least,
        "{name}: dropped before the deadline: {noticed:?}\n{log}"
    );
    assert!(noticed <= at_most, "{name}: noticed too late: {noticed:?}\n{log}");
    let reconnected = reconnected.unwrap_or_else(|| panic!("{name}: no connection after the stall\n{log}"));
    assert!(reconnected <= COMMAND_TIMEOUT + SLACK, "{name}: reconnected {reconnected:?} after giving up\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_stalled_during_login_is_noticed_at_the_command_deadline() {
    let trigger = Trigger::stall(Side::Client, " LOGIN ");
    stalled("stall during login", trigger, COMMAND_TIMEOUT, COMMAND_TIMEOUT + SLACK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_stalled_during_idle_is_noticed_when_idle_is_renewed() {
    // Mail delivered meanwhile is announced into the void; DONE after IDLE_INTERVAL gets no
    // answer within the command deadline.
    let trigger = Trigger::stall(Side::Server, "+ idling\r\n");
    stalled("stall during IDLE", trigger, IDLE_INTERVAL, IDLE_INTERVAL + COMMAND_TIMEOUT + SLACK).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_stalled_during_a_command_is_noticed_at_the_command_deadline() {
    let trigger = Trigger::stall(Side::Client, "UID MOVE");
    stalled("stall during UID MOVE", trigger, COMMAND_TIMEOUT, COMMAND_TIMEOUT + SLACK).await;
}

/// An SMTP server stalling at login, after `MAIL FROM` and after the message's final dot: the
/// first two cost a retry and nothing else (nothing had been sent), the last leaves the reply
/// uncertain (it was accepted, the answer never came) and delivered once. Each stall is noticed
/// at the account's command deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_smtp_server_is_noticed_at_the_deadline_and_no_reply_goes_twice() {
    let name = "SMTP stalls";
    let env = TestEnv::shared();
    let (user, _imap, smtp, setup) = replying(env);
    for pattern in ["AUTH ", "MAIL FROM", "Ok: queued"] {
        let side = if pattern.starts_with("Ok") { Side::Server } else { Side::Client };
        smtp.arm(Trigger::stall(side, pattern));
    }
    let daemon = Daemon::start(&setup.config, 1);
    let sent = deliver_all(env, &user, &token("smtp-stall"), messages().max(3)).await;
    let fx = Effects { replies: Some(&env.catchall), ..Effects::default() };
    let run = Run { env, user: &user, setup: &setup };
    let tally = settle_and_check(name, || smtp.faults(), run, &daemon, &sent, fx).await;
    let (_, log) = daemon.stop();
    let noticed: Vec<(String, Duration)> = smtp
        .history()
        .into_iter()
        .filter_map(|c| c.fault.map(|(_, why, began)| (why, c.closed.map_or(Duration::MAX, |closed| closed - began))))
        .collect();
    eprintln!("{name}: each stall noticed after {noticed:?} (deadline {COMMAND_TIMEOUT:?})");
    assert_eq!(smtp.armed(), 0, "{name}: all three stalls happened\n{log}");
    for (why, after) in &noticed {
        let within = COMMAND_TIMEOUT.saturating_sub(Duration::from_millis(100))..=COMMAND_TIMEOUT + SLACK;
        assert!(within.contains(after), "{name}: a stall when the {why} noticed after {after:?}\n{log}");
    }
    assert_eq!(tally.uncertain_mail(), 1, "only the reply stalled after its final dot is uncertain: {tally}");
}
