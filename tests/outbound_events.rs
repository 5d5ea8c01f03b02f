//! Webhooks and commands through the real daemon: signed payloads, a receiver that goes down or
//! fails forever, SIGKILL during a burst, commands with stdin and a timeout (and with a config
//! given as a bare file name), and no secret (password, OAuth2 tokens, webhook secret) in any
//! log line of a full run at trace level.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tidings::store::{ActionState, Store};

use crate::daemon::{Daemon, Setup};
use crate::harness::{Receiver, Request, TestEnv, TokenEndpoint, message, wait_for};

const SECRET: &str = "whsec-5f1c0d7e-not-in-logs";

/// A rule that fires one webhook per message, with some data of its own.
const HOOK_RULE: &str = r#"webhook("hook", #{ subject: msg.subject, n: 1 });"#;

/// `webhooks:` with one endpoint `hook` at `url`, signed with the secret in `dir/hook.secret`.
fn webhooks(dir: &Path, url: &str, extra: &str) -> String {
    std::fs::write(dir.join("hook.secret"), SECRET).unwrap();
    let extra: String = extra.lines().map(|l| format!("    {l}\n")).collect();
    format!("webhooks:\n  hook:\n    url: {url}\n    secret_file: hook.secret\n{extra}")
}

fn setup_with_hook(env: &TestEnv, user: &crate::harness::User, receiver: &Receiver, extra: &str) -> Setup {
    setup_with_url(env, user, &receiver.url("/hook"), extra)
}

/// [`setup_with_hook`] with the endpoint at `url`.
fn setup_with_url(env: &TestEnv, user: &crate::harness::User, url: &str, extra: &str) -> Setup {
    // The config is written before the secret file: both live in the setup's directory.
    let setup = Setup::with_top(env, user, &[("hook.rhai", HOOK_RULE)], "", "");
    let top = webhooks(setup.dir.path(), url, extra);
    let mut yaml = std::fs::read_to_string(&setup.config).unwrap();
    yaml.push_str(&top);
    std::fs::write(&setup.config, yaml).unwrap();
    setup
}

/// Checks `X-Tidings-Signature: t=<unix>,v1=<hex>` against HMAC-SHA256("<t>.<body>").
fn verify(request: &Request) {
    let header = request.header("x-tidings-signature").expect("a signature header");
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t= in the signature"), v1.expect("v1= in the signature"));
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    assert!((-5..600).contains(&age), "signature timestamp {t} is {age} s old");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected: String = ring::hmac::sign(&key, &signed).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, expected, "the signature verifies");
}

/// Idempotency keys of the requests, with how often each came.
fn by_key(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    for request in requests {
        let key = request.header("idempotency-key").expect("an Idempotency-Key header").to_owned();
        *keys.entry(key).or_insert(0) += 1;
    }
    keys
}

fn outage() -> Duration {
    let secs = std::env::var("TIDINGS_OUTAGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    Duration::from_secs(secs)
}

/// The request the receiver gets for one message from ann@example.com (`subject`, `text`)
/// through the endpoint `hook` with `extra` settings.
async fn one_request(extra: &str, subject: &str, text: &str) -> Request {
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    let setup = setup_with_hook(env, &user, &receiver, extra);
    let daemon = Daemon::start(&setup.config, 1);
    env.deliver_lmtp(&user, &message("ann@example.com", &user.address, subject, text)).await.unwrap();
    let mut got = receiver.wait_for(1, Duration::from_secs(30));
    daemon.stop();
    got.swap_remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_carries_a_signed_versioned_payload() {
    let request = &one_request("", "Invoice 4711", "Please pay.").await;
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hook"));
    verify(request);
    let payload = request.json();
    assert_eq!(payload["version"], 1, "{payload:#}");
    assert_eq!(payload["id"].as_str(), request.header("idempotency-key"), "{payload:#}");
    assert_eq!(payload["account"], "t");
    assert_eq!(payload["mailbox"], "INBOX");
    assert_eq!(payload["rule"], "hook.rhai");
    assert!(payload["uidvalidity"].as_u64().is_some() && payload["uid"].as_u64() == Some(1), "{payload:#}");
    assert_eq!(payload["message"]["subject"], "Invoice 4711");
    assert_eq!(payload["message"]["from"], "ann@example.com");
    assert!(payload["message"]["snippet"].as_str().unwrap().contains("Please pay."), "{payload:#}");
    assert_eq!(payload["data"], serde_json::json!({"subject": "Invoice 4711", "n": 1}));
    assert_eq!(request.header("content-type"), Some("application/json"));
}

/// A form-urlencoded template gets every value percent-encoded: a Subject `x&channel=evil`
/// stays one value of `text`, it adds no `channel`; a header template keeps an encoded CR LF out.
#[tokio::test(flavor = "multi_thread")]
async fn a_form_template_keeps_the_message_inside_its_value() {
    let extra = "content_type: application/x-www-form-urlencoded\ntemplate: 'text={{message.subject}}&channel=ops'\nheaders: { X-Subject: '{{message.subject}}' }";
    let request = &one_request(extra, "x&channel=evil =?utf-8?q?a=0D=0AX-Injected:_1?=", "x").await;
    verify(request);
    let body = String::from_utf8_lossy(&request.body);
    assert_eq!(body, "text=x%26channel%3Devil+a%0D%0AX-Injected%3A+1&channel=ops");
    assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(request.header("x-subject"), Some("x&channel=evil a  X-Injected: 1"));
    assert!(request.header("x-injected").is_none(), "{:?}", request.headers);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_is_down_for_a_while_gets_every_event_when_it_is_back() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let mut receiver = Receiver::start();
    let setup = setup_with_hook(env, &user, &receiver, "retry_delay: 500ms");
    let daemon = Daemon::start(&setup.config, 1);
    receiver.go_down();
    let down = Instant::now();
    let total = 8;
    for n in 0..total {
        env.deliver_lmtp(&user, &message("ann@example.com", &user.address, &format!("while down {n}"), "x"))
            .await
            .unwrap();
    }
    tokio::time::sleep(outage().saturating_sub(down.elapsed())).await;
    receiver.come_back();
    let got = receiver.wait_for(total, Duration::from_secs(120));
    let (_, log) = daemon.stop();
    let keys = by_key(&got);
    assert_eq!(keys.len(), total, "every event arrived: {keys:?}\n{log}");
    assert!(log.contains("will retry"), "the outage was noticed and retried:\n{log}");
    eprintln!("outage {:?}: {} events, {} requests after it", outage(), keys.len(), got.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_failing_forever_dead_letters_the_event_and_the_outbox_lists_it() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    receiver.set_status(500);
    let setup = setup_with_hook(env, &user, &receiver, "max_attempts: 3\nretry_delay: 200ms");
    let daemon = Daemon::start(&setup.config, 1);
    env.deliver_lmtp(&user, &message("ann@example.com", &user.address, "doomed", "x")).await.unwrap();
    let state = setup.state();
    let failed = wait_for(Duration::from_secs(60), "the webhook dead-lettered", || {
        let state = state.clone();
        async move {
            let store = Store::open(&state).await?;
            let rows = store.list_outbox(Some(ActionState::Failed), 10).await?;
            anyhow::ensure!(!rows.is_empty(), "nothing failed yet");
            Ok::<_, anyhow::Error>(rows)
        }
    })
    .await;
    daemon.stop();
    assert_eq!(receiver.requests().len(), 3, "exactly max_attempts tries");
    let row = &failed[0];
    assert_eq!((row.kind.as_str(), row.attempts), ("webhook", 3));
    assert!(row.last_error.as_deref().unwrap_or_default().contains("500"), "{row:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["outbox", "--config"])
        .arg(&setup.config)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = listing.lines().find(|l| l.contains("webhook")).unwrap_or_else(|| panic!("no webhook row:\n{listing}"));
    assert!(line.contains(&row.id.to_string()) && line.contains("failed") && line.contains("hook"), "{listing}");

    // Fixed receiver, retried by hand, beside a running daemon: delivered once more, done.
    receiver.set_status(200);
    let daemon = Daemon::start(&setup.config, 1);
    let retry = outbox(&setup, &["retry", &row.id.to_string()]);
    assert!(retry.status.success(), "{}", String::from_utf8_lossy(&retry.stderr));
    let got = receiver.wait_for(4, Duration::from_secs(30));
    assert_eq!(got[3].header("idempotency-key"), got[0].header("idempotency-key"), "the same event again");
    let state = setup.state();
    let id = row.id;
    wait_for(Duration::from_secs(30), "the retried webhook done", || {
        let state = state.clone();
        async move {
            let store = Store::open(&state).await?;
            let row = store.list_outbox(None, 10).await?.into_iter().find(|a| a.id == id);
            anyhow::ensure!(row.as_ref().is_some_and(|a| a.state == ActionState::Done), "{row:?}");
            Ok::<_, anyhow::Error>(())
        }
    })
    .await;
    daemon.stop();
    let again = outbox(&setup, &["retry", &row.id.to_string()]);
    assert_eq!(again.status.code(), Some(1), "a done action cannot be retried");
    assert!(String::from_utf8_lossy(&again.stderr).contains("only failed or uncertain"), "{again:?}");
}

/// A webhook to a closed port: `tidings outbox` shows why in words ("Connection refused", the
/// root cause, not the start of reqwest's chain cut to the column), and the executor's log lines
/// name the endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_reads_as_one_in_the_outbox() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{closed}/hook");
    let setup = setup_with_url(env, &user, &url, "max_attempts: 2\nretry_delay: 200ms");
    let daemon = Daemon::start(&setup.config, 1);
    env.deliver_lmtp(&user, &message("ann@example.com", &user.address, "nobody listens", "x")).await.unwrap();
    let rows =
        outbox_until(&setup, "the webhook dead-lettered", |rows| rows.iter().any(|a| a.state == ActionState::Failed))
            .await;
    let (_, log) = daemon.stop();
    let stored = rows[0].last_error.clone().unwrap_or_default();
    assert!(stored.contains("Connection refused") && stored.chars().count() > 72, "a long chain: {stored}");
    let out = outbox(&setup, &[]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    let row = listing.lines().find(|l| l.contains("webhook")).unwrap_or_else(|| panic!("no webhook row:\n{listing}"));
    assert!(row.contains("failed") && row.contains("Connection refused"), "{listing}");
    eprintln!("stored: {stored}\nshown:  {row}");
    let retried = log.lines().find(|l| l.contains("will retry")).unwrap_or_else(|| panic!("no retry line:\n{log}"));
    let dead =
        log.lines().find(|l| l.contains("dead-lettered")).unwrap_or_else(|| panic!("no dead letter line:\n{log}"));
    for line in [retried, dead] {
        assert!(line.contains("endpoint=hook") && !line.contains("http://"), "the name, not the URL: {line}");
    }
}

/// `tidings outbox ARGS --config <setup>`.
fn outbox(setup: &Setup, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("outbox")
        .args(args)
        .arg("--config")
        .arg(&setup.config)
        .output()
        .unwrap()
}

/// Webhooks to a receiver that hangs take their time; mail is sorted meanwhile as fast as ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_never_stalls_mail_sorting() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    receiver.set_delay(Duration::from_secs(20));
    let rule = r#"webhook("hook", #{ s: msg.subject }); move_to("Sorted");"#;
    let setup = Setup::with_top(env, &user, &[("both.rhai", rule)], "", "");
    let mut yaml = std::fs::read_to_string(&setup.config).unwrap();
    yaml.push_str(&webhooks(setup.dir.path(), &receiver.url("/hook"), "timeout: 60s"));
    std::fs::write(&setup.config, yaml).unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    let total = 40;
    let started = Instant::now();
    for n in 0..total {
        env.deliver_lmtp(&user, &message("ann@example.com", &user.address, &format!("sort {n}"), "x")).await.unwrap();
    }
    wait_for(Duration::from_secs(15), "every message sorted while the webhooks hang", || async {
        let sorted = env.list(&user, "Sorted").await.map(|l| l.len()).unwrap_or(0);
        anyhow::ensure!(sorted == total, "{sorted} of {total} sorted");
        Ok::<_, anyhow::Error>(())
    })
    .await;
    let took = started.elapsed();
    assert!(receiver.requests().is_empty(), "no webhook has been answered yet: the receiver hangs");
    daemon.kill();
    eprintln!("{total} messages sorted in {took:?} while their webhooks hung");
}

/// SIGKILL at random moments while 200 events are produced, then one clean run: every event
/// arrives at least once; the duplicates are counted and printed.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_burst_of_webhooks_loses_no_event() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    // A slow receiver, so that kills land while deliveries are in flight.
    receiver.set_delay(Duration::from_millis(20));
    let setup = setup_with_hook(env, &user, &receiver, "");
    setup.baseline().await;
    let total = 200;
    let deliver = {
        let user = user.clone();
        tokio::spawn(async move {
            let env = TestEnv::shared();
            for n in 0..total {
                let raw = message("burst@example.com", &user.address, &format!("event {n}"), "x");
                env.deliver_lmtp(&user, &raw).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill seed {seed}");
    let mut kills = 0;
    while !deliver.is_finished() {
        let daemon = Daemon::spawn(&setup.config, &["run"]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(100 + seed % 500)).await;
        daemon.kill();
        kills += 1;
    }
    deliver.await.unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    while by_key(&receiver.requests()).len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, log) = daemon.stop();
    let requests = receiver.requests();
    let keys = by_key(&requests);
    let duplicates: usize = keys.values().map(|n| n - 1).sum();
    eprintln!(
        "webhook burst: {total} events, {kills} kills, {} distinct delivered, {} requests, {duplicates} duplicates",
        keys.len(),
        requests.len()
    );
    assert_eq!(keys.len(), total, "every event arrived at least once\n{log}");
    let subjects: std::collections::BTreeSet<String> =
        requests.iter().map(|r| r.json()["message"]["subject"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(subjects.len(), total, "one distinct event per message");
}

/// The setup's outbox once `done` says so of it (asked again for up to 30 s).
async fn outbox_until(
    setup: &Setup,
    why: &str,
    done: impl Fn(&[tidings::store::Action]) -> bool,
) -> Vec<tidings::store::Action> {
    let state = setup.state();
    wait_for(Duration::from_secs(30), why, || {
        let (state, done) = (state.clone(), &done);
        async move {
            let rows = Store::open(&state).await?.list_outbox(None, 100).await?;
            anyhow::ensure!(done(&rows), "not yet: {rows:?}");
            Ok::<_, anyhow::Error>(rows)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_gets_the_event_on_stdin_and_a_hanging_one_is_killed_at_its_timeout() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let rule = r#"command("save", #{ who: msg.from }); if msg.subject == "hang" { command("hang", #{}); }"#;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events");
    std::fs::create_dir_all(&out).unwrap();
    let marker = format!("{}.{}", std::process::id(), 31);
    let top = format!(
        "commands:\n  save:\n    run: [\"sh\", \"-c\", \"cat > {out}/$$.json\"]\n    timeout: 10s\n  hang:\n    run: [\"sleep\", \"{marker}\"]\n    timeout: 1s\n    max_attempts: 1\n",
        out = out.display(),
    );
    let setup = Setup::with_top(env, &user, &[("cmd.rhai", rule)], "", &top);
    let daemon = Daemon::start(&setup.config, 1);
    env.deliver_lmtp(&user, &message("ann@example.com", &user.address, "hello", "x")).await.unwrap();
    let started = Instant::now();
    env.deliver_lmtp(&user, &message("bob@example.com", &user.address, "hang", "x")).await.unwrap();
    let rows = outbox_until(&setup, "the hanging command given up", |rows| {
        rows.iter().any(|a| a.payload["endpoint"] == "hang" && a.state == ActionState::Failed)
    })
    .await;
    let took = started.elapsed();
    let (_, log) = daemon.stop();
    let hang = rows.iter().find(|a| a.payload["endpoint"] == "hang").unwrap();
    assert!(hang.last_error.as_deref().unwrap_or_default().contains("timed out"), "{hang:?}");
    assert!(took < Duration::from_secs(15), "killed at its 1 s timeout, not later: {took:?}");
    let left = std::process::Command::new("pgrep").args(["-f", &format!("sleep {marker}")]).output().unwrap();
    assert!(left.stdout.is_empty(), "the hanging command's process is gone: {}", String::from_utf8_lossy(&left.stdout));
    let mut events: Vec<serde_json::Value> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    events.sort_by_key(|e| e["uid"].as_u64());
    assert_eq!(events.len(), 2, "{events:?}\n{log}");
    assert_eq!(events[0]["data"], serde_json::json!({"who": "ann@example.com"}));
    assert_eq!(events[1]["data"], serde_json::json!({"who": "bob@example.com"}));
    assert_eq!(events[0]["version"], 1);
}

/// `--config tidings.yaml` from the config's directory (a bare file name, whose parent is ""):
/// commands run in that directory, made absolute, rather than all failing in "".
#[tokio::test(flavor = "multi_thread")]
async fn commands_run_when_the_config_is_given_as_a_bare_file_name() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let rule = r#"command("save", #{ who: msg.from });"#;
    // A relative path in the command: it lands in the working directory tidings gives it.
    let top =
        "commands:\n  save:\n    run: [\"sh\", \"-c\", \"pwd > cwd.txt; cat > event.json\"]\n    max_attempts: 1\n";
    let setup = Setup::with_top(env, &user, &[("cmd.rhai", rule)], "", top);
    setup.baseline().await;
    let daemon = Daemon::start_in(setup.dir.path(), Path::new("tidings.yaml"), 1);
    env.deliver_lmtp(&user, &message("ann@example.com", &user.address, "hello", "x")).await.unwrap();
    let rows = outbox_until(&setup, "the command finished", |rows| {
        rows.iter().any(|a| matches!(a.state, ActionState::Done | ActionState::Failed))
    })
    .await;
    let (_, log) = daemon.stop();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].state, ActionState::Done, "{rows:?}\n{log}");
    let event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(setup.dir.path().join("event.json")).unwrap()).unwrap();
    assert_eq!(event["data"], serde_json::json!({"who": "ann@example.com"}));
    let cwd = std::fs::read_to_string(setup.dir.path().join("cwd.txt")).unwrap();
    assert_eq!(Path::new(cwd.trim()).canonicalize().unwrap(), setup.dir.path().canonicalize().unwrap());
}

/// Every secret of a full run stays out of every line of the log at the most verbose level
/// (`-vv`, `RUST_LOG=trace`): two accounts, one logging in with a password (IMAP, SMTP with
/// STARTTLS), one with OAuth2 (XOAUTH2 to IMAP and SMTP, tokens from a local endpoint); each
/// sorts a message, replies and fires a signed webhook.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_the_log_of_a_full_run() {
    let endpoint = TokenEndpoint::start(3600);
    let env = TestEnv::start_own_oauth(&endpoint).unwrap();
    let (me, oauth, ann) = (env.new_user(), env.new_user(), env.new_user());
    let refresh_token = "rt-full-run-3c9e71b2-not-in-logs";
    let client_secret = "cs-full-run-8d02aa41-not-in-logs";
    endpoint.grant(refresh_token, &oauth.login);
    let receiver = Receiver::start();
    let rule = r#"move_to("Sorted"); webhook("hook", #{ s: msg.subject }); reply("Thanks, noted.");"#;
    let account = format!(
        "smtp: {{ host: 127.0.0.1, port: {}, tls: starttls }}\naddresses: [{}]",
        env.submission_port, me.address
    );
    // The second account goes into `accounts:`, after the first.
    let second = format!(
        "  o:\n    imap: {{ host: 127.0.0.1, port: {imaps}, tls: implicit }}\n    smtp: {{ host: 127.0.0.1, port: {smtps}, tls: implicit }}\n    \
         ca_file: {ca}\n    username: {login}\n    from: {login}\n    oauth2:\n      provider: custom\n      client_id: tidings-test\n      \
         client_secret_file: client-secret\n      refresh_token_file: o.token\n      token_url: {url}\n      scope: mail\n",
        imaps = env.imaps_port,
        smtps = env.smtps_port,
        ca = env.ca_file.display(),
        login = oauth.login,
        url = endpoint.url("/token"),
    );
    let setup = Setup::with_top(&env, &me, &[("all.rhai", rule)], &account, &second);
    std::fs::write(setup.dir.path().join("client-secret"), client_secret).unwrap();
    std::fs::write(setup.dir.path().join("o.token"), refresh_token).unwrap();
    let mut yaml = std::fs::read_to_string(&setup.config).unwrap();
    yaml.push_str(&webhooks(setup.dir.path(), &receiver.url("/hook"), ""));
    std::fs::write(&setup.config, yaml).unwrap();
    let daemon = Daemon::spawn_env(&setup.config, &["run", "-v", "-v"], &[("RUST_LOG", "trace")]);
    daemon.wait_log_count("watching uidvalidity", 2, Duration::from_secs(20));
    for user in [&me, &oauth] {
        let raw = message(&ann.address, &user.address, &format!("secret test for {}", user.login), "x");
        env.deliver_lmtp_to(&ann.address, &[&user.address], &raw).await.unwrap();
    }
    receiver.wait_for(2, Duration::from_secs(30));
    for (user, what) in [(&me, "sorted"), (&oauth, "sorted"), (&ann, "both replies")] {
        let (mailbox, count) = if what == "sorted" { ("Sorted", 1) } else { ("INBOX", 2) };
        wait_for(Duration::from_secs(30), format!("{what} for {}\n{}", user.login, daemon.log()), || async {
            let found = env.list(user, mailbox).await.map(|l| l.len()).unwrap_or(0);
            anyhow::ensure!(found == count, "{found} in {mailbox}");
            Ok::<_, anyhow::Error>(())
        })
        .await;
    }
    let (_, log) = daemon.stop();
    let access_tokens = endpoint.issued_access_tokens();
    assert!(!access_tokens.is_empty(), "the OAuth2 account logged in with an access token");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let secrets = [
        ("the IMAP and SMTP password".to_owned(), me.password.clone()),
        ("the AUTH LOGIN password".to_owned(), b64.encode(&me.password)),
        ("the AUTH PLAIN blob".to_owned(), b64.encode(format!("\0{}\0{}", me.login, me.password))),
        ("the webhook secret".to_owned(), SECRET.to_owned()),
        ("the OAuth2 refresh token".to_owned(), refresh_token.to_owned()),
        ("the OAuth2 client secret".to_owned(), client_secret.to_owned()),
    ];
    let xoauth2 = |token: &str| b64.encode(format!("user={}\x01auth=Bearer {token}\x01\x01", oauth.login));
    for (number, line) in log.lines().enumerate() {
        let leaked = secrets.iter().find(|(_, secret)| line.contains(secret.as_str())).map(|(what, _)| what.clone());
        let leaked = leaked.or_else(|| {
            let token = access_tokens.iter().find(|t| contains_token(line, t) || line.contains(&xoauth2(t)))?;
            Some(format!("the access token {token} (or its XOAUTH2 blob)"))
        });
        assert!(leaked.is_none(), "{} appears in log line {}: {line}", leaked.unwrap_or_default(), number + 1);
    }
    assert!(log.lines().count() > 50, "the log is the verbose one: {} lines", log.lines().count());
    assert!(log.contains("TRACE"), "trace records are in the log");
}

/// Whether `token` appears in `line` as a whole word: the harness's access tokens are short
/// (`at-1`), and `at-12` or `format-1` is not `at-1`, while `Bearer at-1` or `token=at-1` is.
fn contains_token(line: &str, token: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    line.match_indices(token).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + token.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}
