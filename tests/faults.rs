//! Fault injection through the real daemon: a [`Proxy`] between tidings and Dovecot, Postfix or
//! the webhook receiver cuts a connection mid-FETCH, mid-IDLE, mid-MOVE, mid-SMTP-DATA and
//! mid-webhook (and mid-TLS-handshake), stalls one (socket open, no bytes) during login, IDLE and
//! a command, or slows every chunk; Dovecot, Postfix and the receiver go down under load;
//! tidings is SIGKILLed at random moments. Each test ends with the exact accounting of
//! `accounting.rs`, printed and asserted.
//!
//! Patterns can only be seen on plaintext connections, so the pattern tests talk plain IMAP and
//! SMTP to the proxy (`tls: none`); the SIGKILL run goes through it over IMAPS, untouched.
//! Parameters (short by default, for CI): `TIDINGS_FAULT_MESSAGES` per test,
//! `TIDINGS_FAULT_OUTAGE_MS` for outages, `TIDINGS_FAULT_KILLS` for the SIGKILL run;
//! `TIDINGS_LONG=1` raises the defaults (200 kills).

mod accounting;
mod outages;
mod stalls;

use std::time::{Duration, Instant};

use accounting::{Delivered, Effects, Run, Tally, deliver, settle_and_check, token};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Proxy, Receiver, Side, TestEnv, Trigger, User, wait_until};
use crate::watch::SORT_RULE;

/// Every command's deadline in these tests, so a stall costs seconds, not minutes.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// IDLE is re-issued this often; a stalled IDLE is noticed at the next DONE's deadline.
const IDLE_INTERVAL: Duration = Duration::from_secs(4);

fn long() -> bool {
    std::env::var("TIDINGS_LONG").is_ok()
}

fn param(name: &str, short: u64, long_run: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(if long() { long_run } else { short })
}

/// Messages delivered per test.
fn messages() -> usize {
    param("TIDINGS_FAULT_MESSAGES", 8, 40) as usize
}

/// How long a server or receiver stays down.
fn outage() -> Duration {
    Duration::from_millis(param("TIDINGS_FAULT_OUTAGE_MS", 1500, 5000))
}

/// The account's deadlines, plus `extra` lines.
fn account(extra: &str) -> String {
    format!("command_timeout: {}s\nidle_interval: {}s\n{extra}", COMMAND_TIMEOUT.as_secs(), IDLE_INTERVAL.as_secs())
}

/// A config whose IMAP server is `proxy`, in plaintext, with `rules` and the account's `extra`.
fn through(env: &TestEnv, user: &User, proxy: &Proxy, rules: &[(&str, &str)], extra: &str, top: &str) -> Setup {
    let imap = format!("{{ host: 127.0.0.1, port: {}, tls: none }}", proxy.port);
    Setup::with_imap(env, user, rules, &imap, &account(&format!("allow_insecure: true\n{extra}")), top)
}

/// `webhooks:` with the one endpoint `hook` at `url`, retried quickly.
fn webhooks(url: &str) -> String {
    format!("webhooks:\n  hook:\n    url: {url}\n    retry_delay: 300ms\n")
}

/// A new user's account answering every message, its IMAP and SMTP (plaintext) each through a
/// proxy of its own: (user, IMAP proxy, SMTP proxy, config).
fn replying(env: &TestEnv) -> (User, Proxy, Proxy, Setup) {
    let user = env.new_user();
    let (imap, smtp) = (Proxy::start(env.imap_port), Proxy::start(env.submission_port));
    let extra = format!("smtp: {{ host: 127.0.0.1, port: {}, tls: none }}\naddresses: [{}]", smtp.port, user.address);
    let setup = through(env, &user, &imap, &[("reply.rhai", r#"reply(#{ body: "Got it." });"#)], &extra, "");
    (user, imap, smtp, setup)
}

/// Delivers `n` messages of a run marked `token`, one after the other.
async fn deliver_all(env: &TestEnv, user: &User, token: &str, n: usize) -> Vec<Delivered> {
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        sent.push(deliver(env, user, token, i).await);
    }
    sent
}

/// The reasons the proxy's faults fired for, to show which phase each hit.
fn fired(proxy: &Proxy) -> Vec<String> {
    proxy.history().into_iter().filter_map(|c| c.fault.map(|(fault, why, _)| format!("{fault:?}: {why}"))).collect()
}

/// A sort run through a plain-IMAP proxy with `triggers` armed once the daemon watches:
/// every message moved exactly once despite the cuts.
async fn sort_through_cuts(name: &str, triggers: &[Trigger]) -> Tally {
    let env = TestEnv::shared();
    let user = env.new_user();
    let proxy = Proxy::start(env.imap_port);
    let setup = through(env, &user, &proxy, &[("sort.rhai", SORT_RULE)], "", "");
    let daemon = Daemon::start(&setup.config, 1);
    for trigger in triggers {
        proxy.arm(trigger.clone());
    }
    let sent = deliver_all(env, &user, &token(name), messages()).await;
    let fx = Effects { moved_to: Some("Sorted"), ..Effects::default() };
    let tally =
        settle_and_check(name, || proxy.faults(), Run { env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    let (_, log) = daemon.stop();
    eprintln!("{name}: {} connections, faults {:?}", proxy.connections(), fired(&proxy));
    assert_eq!(proxy.armed(), 0, "{name}: every trigger fired\n{log}");
    tally
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_mid_fetch_loses_nothing() {
    // Twice inside the header literal of a FETCH answer: the watcher fetches again.
    sort_through_cuts("cut mid-FETCH", &[Trigger::cut(Side::Server, "BODY[HEADER]<0> {").after(40).times(2)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_mid_move_moves_each_message_once() {
    let tally = sort_through_cuts(
        "cut mid-MOVE",
        &[
            // The command cut before its end: the server never ran it.
            Trigger::cut(Side::Client, "UID MOVE"),
            // The server moved the messages and its answer was cut: tidings cannot know, and
            // moving again by UID must not move anything twice.
            Trigger::cut(Side::Server, "[COPYUID"),
        ],
    )
    .await;
    assert!(tally.retried() > 0, "the moves cut were tried again: {tally}");
}

/// A connection cut during the TLS handshake (IMAPS through the proxy, the client's hello cut
/// off) is network trouble: retried at once, not after the slow delay of a certificate problem.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_mid_tls_handshake_is_retried_soon() {
    let name = "cut mid-TLS-handshake";
    let env = TestEnv::shared();
    let user = env.new_user();
    let proxy = Proxy::start(env.imaps_port);
    let imaps = format!("{{ host: 127.0.0.1, port: {}, tls: implicit }}", proxy.port);
    let setup = Setup::with_imap(env, &user, &[("sort.rhai", SORT_RULE)], &imaps, &account(""), "");
    // A TLS record of type handshake (22), version 3.x: the ClientHello.
    proxy.arm(Trigger::cut(Side::Client, "\u{16}\u{3}"));
    let daemon = Daemon::start(&setup.config, 1);
    let sent = deliver_all(env, &user, &token("tls"), messages().min(4)).await;
    let fx = Effects { moved_to: Some("Sorted"), ..Effects::default() };
    settle_and_check(name, || proxy.faults(), Run { env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    daemon.stop();
    let history = proxy.history();
    let retried = history[1].opened - history[0].closed.expect("the cut connection is closed");
    eprintln!("{name}: reconnected {retried:?} after the cut");
    assert!(retried < Duration::from_secs(3), "{name}: retried after {retried:?}");
}

/// Cut while idling, then the server unreachable for an outage while mail keeps coming.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_mid_idle_and_an_outage_lose_nothing() {
    let name = "cut mid-IDLE";
    let env = TestEnv::shared();
    let user = env.new_user();
    let proxy = Proxy::start(env.imap_port);
    let setup = through(env, &user, &proxy, &[("sort.rhai", SORT_RULE)], "", "");
    proxy.arm(Trigger::cut(Side::Server, "+ idling\r\n").then_refuse(outage()));
    let daemon = Daemon::start(&setup.config, 1);
    wait_until(Duration::from_secs(10), "the IDLE cut", || async { proxy.faults() == 1 }).await;
    let cut = Instant::now();
    let sent = deliver_all(env, &user, &token("idle"), messages()).await;
    let fx = Effects { moved_to: Some("Sorted"), ..Effects::default() };
    settle_and_check(name, || proxy.faults(), Run { env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    let (_, log) = daemon.stop();
    eprintln!(
        "{name}: outage {:?}, {} reconnects refused, all sorted {:?} after the cut",
        outage(),
        proxy.refused(),
        cut.elapsed()
    );
    assert!(log.contains("reconnecting"), "the watcher noticed the cut:\n{log}");
}

/// Every chunk either way held back 100 ms (a long, slow path): slower, but nothing times out
/// spuriously, nothing is lost or done twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_link_sorts_everything_once() {
    let name = "slow link";
    let env = TestEnv::shared();
    let user = env.new_user();
    let proxy = Proxy::start(env.imap_port);
    proxy.slow(Some((Duration::from_millis(100), None)));
    let setup = through(env, &user, &proxy, &[("sort.rhai", SORT_RULE)], "", "");
    let daemon = Daemon::start(&setup.config, 1);
    let started = Instant::now();
    let sent = deliver_all(env, &user, &token("slow"), messages()).await;
    let fx = Effects { moved_to: Some("Sorted"), ..Effects::default() };
    let run = Run { env, user: &user, setup: &setup };
    settle_and_check(name, || proxy.connections(), run, &daemon, &sent, fx).await;
    let (_, log) = daemon.stop();
    eprintln!(
        "{name}: all sorted {:?} after the first delivery, {} connections",
        started.elapsed(),
        proxy.connections()
    );
    assert!(!log.contains("reconnecting"), "no deadline was missed on the slow link:\n{log}");
}

/// An auto-reply rule; the reply cut mid-DATA (nothing accepted) and another cut after the
/// final dot (accepted, answer lost): both uncertain, listed, neither sent twice, the second
/// delivered once.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_mid_smtp_data_never_sends_a_reply_twice() {
    let name = "cut mid-SMTP-DATA";
    let env = TestEnv::shared();
    let (user, _imap, smtp, setup) = replying(env);
    let daemon = Daemon::start(&setup.config, 1);
    smtp.arm(Trigger::cut(Side::Client, "DATA\r\n").after(64));
    smtp.arm(Trigger::cut(Side::Server, "Ok: queued"));
    let sent = deliver_all(env, &user, &token("data"), messages().max(3)).await;
    let fx = Effects { replies: Some(&env.catchall), ..Effects::default() };
    let tally =
        settle_and_check(name, || smtp.faults(), Run { env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    let (_, log) = daemon.stop();
    eprintln!("{name}: faults {:?}", fired(&smtp));
    assert_eq!(tally.uncertain_mail(), 2, "both cut replies are uncertain: {tally}\n{log}");
    // The one cut after its final dot was accepted: Postfix delivers it, once; the one cut
    // mid-DATA never arrives.
    let run = Run { env, user: &user, setup: &setup };
    let what = format!("{name}: the reply cut after its final dot delivered");
    wait_until(Duration::from_secs(30), what, || async {
        Tally::take(run, &sent, fx).await.uncertain_delivered() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = Tally::take(run, &sent, fx).await;
    eprintln!("accounting {name} (after Postfix delivered): {last}");
    assert_eq!(last.uncertain_delivered(), 1, "{last}");
    assert_eq!(last.replies_twice(), 0, "{last}");
}

/// A webhook cut mid-body (never recorded) and one whose answer was cut (recorded, then sent
/// again): every event arrives, the duplicate is counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_cut_mid_webhook_delivers_every_event_at_least_once() {
    let name = "cut mid-webhook";
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    let proxy = Proxy::start(receiver.port);
    let imap = Proxy::start(env.imap_port);
    let top = webhooks(&format!("http://127.0.0.1:{}/hook", proxy.port));
    let rule = r#"webhook("hook", #{ s: msg.subject });"#;
    let setup = through(env, &user, &imap, &[("hook.rhai", rule)], "", &top);
    let daemon = Daemon::start(&setup.config, 1);
    proxy.arm(Trigger::cut(Side::Client, "\r\n\r\n").after(20));
    proxy.arm(Trigger::cut(Side::Server, "HTTP/1.1 200"));
    let sent = deliver_all(env, &user, &token("hook"), messages()).await;
    let fx = Effects { hooks: Some(&receiver), ..Effects::default() };
    let tally =
        settle_and_check(name, || proxy.faults(), Run { env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    daemon.stop();
    eprintln!("{name}: faults {:?}", fired(&proxy));
    assert_eq!(proxy.armed(), 0, "both cuts happened");
    assert!(tally.hook_duplicates() >= 1, "the event whose answer was cut came again: {tally}");
}
