//! Whole servers going away while mail keeps coming: Dovecot and Postfix restarted and the
//! webhook receiver down for a while under load; and tidings itself SIGKILLed at random moments
//! over a run, its IMAP connections (IMAPS, through the proxy) cut now and then as well. The
//! rule does everything at once, so one accounting covers every guarantee: the keyword and the
//! move exactly once, the webhook and the command at least once, the auto-reply at most once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::accounting::{Delivered, Effects, Run, deliver, settle_and_check, token};
use super::{account, long, messages, outage, param, webhooks};
use crate::daemon::{Daemon, Setup};
use crate::harness::{Proxy, Receiver, TestEnv, User};
use crate::recovery::{Rng, kill_orphaned_imap_processes};

/// Every kind of effect on each message.
const EVERYTHING: &str = r#"
label("sorted");
move_to("Sorted");
webhook("hook", #{ s: msg.subject });
command("save", #{ s: msg.subject });
reply(#{ body: "Got it." });
"#;

/// SIGKILLs in the random-kill run.
fn kills() -> usize {
    param("TIDINGS_FAULT_KILLS", 6, 200) as usize
}

/// A config for [`EVERYTHING`]: IMAP at `imap` (a YAML flow map), replies through Postfix with
/// STARTTLS, webhooks to `receiver`, commands writing one file per run into `events`.
fn everything(env: &TestEnv, user: &User, imap: &str, receiver: &Receiver, events: &Path) -> Setup {
    let smtp = format!(
        "smtp: {{ host: 127.0.0.1, port: {}, tls: starttls }}\naddresses: [{}]\ndaily_send_limit: 100000",
        env.submission_port, user.address
    );
    let commands = format!(
        "commands:\n  save:\n    run: [\"sh\", \"-c\", \"cat > \\\"$(mktemp {}/event.XXXXXX)\\\"\"]\n    retry_delay: 300ms\n",
        events.display()
    );
    let top = format!("{}{commands}", webhooks(&receiver.url("/hook")));
    Setup::with_imap(env, user, &[("all.rhai", EVERYTHING)], imap, &account(&smtp), &top)
}

fn imaps(port: u16) -> String {
    format!("{{ host: 127.0.0.1, port: {port}, tls: implicit }}")
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_postfix_and_the_receiver_going_down_under_load_lose_nothing() {
    let name = "restarts under load";
    let own = TestEnv::start_own();
    let user = own.new_user();
    let mut receiver = Receiver::start();
    let events = tempfile::tempdir().unwrap();
    let setup = everything(&own, &user, &imaps(own.imaps_port), &receiver, events.path());
    let daemon = Daemon::start(&setup.config, 1);
    // Deliveries hold a read lock each; a restart takes the write lock, so no delivery is
    // half-done when a server stops, and deliveries go on right before and after.
    let env = tokio::sync::RwLock::new(own);
    let token = token("restarts");
    let deliveries = async {
        let mut sent = Vec::new();
        for n in 0..messages() * 3 {
            sent.push(deliver(&*env.read().await, &user, &token, n).await);
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        sent
    };
    let faults = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        {
            let mut env = env.write().await;
            env.stop_dovecot();
            kill_orphaned_imap_processes();
            tokio::time::sleep(outage()).await;
            env.start_dovecot();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        receiver.go_down();
        tokio::time::sleep(outage()).await;
        receiver.come_back();
        let mut env = env.write().await;
        env.stop_postfix();
        tokio::time::sleep(outage()).await;
        env.start_postfix();
        3
    };
    let started = Instant::now();
    let (sent, faults): (Vec<Delivered>, usize) = tokio::join!(deliveries, faults);
    let env = env.into_inner();
    let fx = Effects {
        moved_to: Some("Sorted"),
        hooks: Some(&receiver),
        replies: Some(&env.catchall),
        commands: Some(events.path()),
    };
    settle_and_check(name, || faults, Run { env: &env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    let (_, log) = daemon.stop();
    eprintln!("{name}: outages of {:?} each, settled {:?} after the first delivery", outage(), started.elapsed());
    assert!(log.contains("reconnecting"), "the watcher noticed Dovecot going away:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_loses_nothing_and_repeats_no_imap_action() {
    let name = "SIGKILL at random moments";
    let env = TestEnv::shared();
    let user = env.new_user();
    // IMAPS through the proxy: TLS passes untouched and is verified against the harness CA.
    let proxy = Proxy::start(env.imaps_port);
    let receiver = Receiver::start();
    let events = tempfile::tempdir().unwrap();
    let setup = everything(env, &user, &imaps(proxy.port), &receiver, events.path());
    setup.baseline().await;
    let mut rng = Rng::from_env("kill schedule");
    let delivering = Arc::new(AtomicBool::new(true));
    let deliveries = {
        let (user, token, delivering) = (user.clone(), token("kills"), delivering.clone());
        tokio::spawn(async move {
            let mut sent = Vec::new();
            while delivering.load(Ordering::SeqCst) {
                sent.push(deliver(TestEnv::shared(), &user, &token, sent.len()).await);
                tokio::time::sleep(Duration::from_millis(if long() { 150 } else { 100 })).await;
            }
            sent
        })
    };
    let started = Instant::now();
    let (mut killed, mut cut) = (0, 0);
    while killed < kills() {
        let daemon = Daemon::spawn(&setup.config, &["run"]);
        tokio::time::sleep(Duration::from_millis(100 + rng.below(1200))).await;
        if rng.below(3) == 0 {
            proxy.cut_all();
            cut += 1;
            tokio::time::sleep(Duration::from_millis(50 + rng.below(500))).await;
        }
        daemon.kill();
        killed += 1;
    }
    delivering.store(false, Ordering::SeqCst);
    let sent = deliveries.await.unwrap();
    let run = started.elapsed();
    let daemon = Daemon::start(&setup.config, 1);
    let fx = Effects {
        moved_to: Some("Sorted"),
        hooks: Some(&receiver),
        replies: Some(&env.catchall),
        commands: Some(events.path()),
    };
    settle_and_check(name, || killed + cut, Run { env, user: &user, setup: &setup }, &daemon, &sent, fx).await;
    daemon.stop();
    eprintln!(
        "{name}: {killed} SIGKILLs and {cut} cuts of every connection over {run:?}, {} messages, {} proxied connections",
        sent.len(),
        proxy.connections()
    );
}
