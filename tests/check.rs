//! `tidings check` catching files and `check --connect` catching servers, against Dovecot and
//! Postfix: all green on a correct config; an unknown CA, a wrong password and a missing mailbox
//! each named in words with a non-zero exit; a webhook reached (HEAD) and pinged with a signed
//! test event only when asked; a missing ca_file named with its line by plain `check`; a
//! preset's servers shown; and a CA file deleted under the running daemon: a
//! configuration error logged once, shown by `status`, retried soon (not after 15 minutes).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::daemon::{Daemon, Setup};
use crate::harness::{Proxy, Receiver, Request, TestEnv, User, message};
use crate::health::tidings;
use crate::watch::SORT_RULE;

/// A config for `user` on the shared Dovecot (IMAPS) and Postfix (SMTPS), with a live rule.
fn setup(env: &TestEnv, user: &User, extra: &str) -> Setup {
    let smtp = format!("smtp: {{ host: 127.0.0.1, port: {}, tls: implicit }}\n{extra}", env.smtps_port);
    Setup::new(env, user, &[("sort.rhai", SORT_RULE)], &smtp)
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The row of `step` in the report (its first line starting with it).
fn row<'a>(stdout: &'a str, step: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{step} ")))
        .unwrap_or_else(|| panic!("no {step} row:\n{stdout}"))
}

#[tokio::test]
async fn connect_is_all_green_on_a_correct_config() {
    let env = TestEnv::shared();
    let user = env.new_user();
    for n in 0..3 {
        let raw = message("a@example.org", &user.address, &format!("hello {n}"), "body");
        env.append(&user, "INBOX", &raw, &[], None).await.unwrap();
    }
    let setup = setup(env, &user, "");
    let out = tidings(&setup.config, &["check", "--connect"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for capability in ["IDLE", "MOVE", "UIDPLUS"] {
        assert!(row(&stdout, capability).contains(" ok "), "{capability}:\n{stdout}");
    }
    assert!(row(&stdout, "dns").contains("127.0.0.1 is an address"), "{stdout}");
    assert!(row(&stdout, "tls").contains("ca_file"), "{stdout}");
    assert!(row(&stdout, "mailbox INBOX").ends_with("3 messages"), "{stdout}");
    assert!(row(&stdout, "smtp auth").contains("ok") && stdout.contains("no mail sent"), "{stdout}");
    assert!(row(&stdout, "connections").contains("1 with IDLE"), "{stdout}");
    eprintln!("{stdout}");
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("verdict: ok"), "{stdout}");
    // One account by name; an unknown one is a usage error.
    let out = tidings(&setup.config, &["check", "--connect", "--account", "t"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let out = tidings(&setup.config, &["check", "--connect", "--account", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no account `nope`"), "{}", text(&out).1);
}

#[tokio::test]
async fn connect_names_an_unknown_ca_with_the_fingerprint_to_pin() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = setup(env, &user, "");
    let yaml = std::fs::read_to_string(&setup.config).unwrap();
    let without_ca: String = yaml.lines().filter(|l| !l.contains("ca_file:")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&setup.config, without_ca).unwrap();
    let out = tidings(&setup.config, &["check", "--connect"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let tls = row(&stdout, "tls");
    assert!(tls.contains("FAILED") && tls.contains("unknown CA"), "{stdout}");
    // The fingerprint is the harness certificate's, ready to paste.
    let leaf = tidings::config::Fingerprint::of(env.server_certificate());
    assert!(tls.contains(&format!("tls_fingerprint: {leaf}")), "{leaf} missing:\n{stdout}");
    assert!(row(&stdout, "smtp tls").contains("unknown CA"), "{stdout}");
    eprintln!("{stdout}");
    assert!(stdout.lines().last().unwrap_or_default().starts_with("verdict: FAILED"), "{stdout}");
}

#[tokio::test]
async fn connect_names_a_refused_login() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = setup(env, &user, "");
    std::fs::write(setup.dir.path().join("password"), "not the password").unwrap();
    let out = tidings(&setup.config, &["check", "--connect"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let login = row(&stdout, "login");
    assert!(login.contains("FAILED") && login.contains("refused the credentials"), "{stdout}");
    assert!(row(&stdout, "smtp auth").contains("FAILED"), "{stdout}");
    assert!(stdout.contains("verdict: FAILED") && stdout.contains("account `t`: login"), "{stdout}");
}

#[tokio::test]
async fn connect_names_a_watched_mailbox_that_does_not_exist() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = setup(env, &user, "mailboxes: [INBOX, Nowhere]");
    let out = tidings(&setup.config, &["check", "--connect"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(row(&stdout, "mailbox INBOX").ends_with("0 messages"), "{stdout}");
    let missing = row(&stdout, "mailbox Nowhere");
    assert!(missing.contains("FAILED") && missing.contains("does not exist"), "{stdout}");
}

/// Plain `check` (no network) names a missing ca_file with its line and column; `--connect`
/// stops there with the usage status.
#[test]
fn check_names_a_missing_ca_file_where_it_is_written() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = setup(env, &user, "");
    let yaml = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, yaml.replace(&env.ca_file.display().to_string(), "missing-ca.pem")).unwrap();
    let out = tidings(&setup.config, &["check"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let missing = setup.dir.path().join("missing-ca.pem");
    let expected =
        format!("{}:7:14: account `t`: ca_file: `{}` does not exist", setup.config.display(), missing.display());
    assert!(stderr.contains(&expected), "{expected:?} missing from:\n{stderr}");
    let out = tidings(&setup.config, &["check", "--connect"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
}

/// A preset shows the servers it resolved to in plain `check` (no network).
#[test]
fn check_shows_the_servers_a_preset_resolved_to() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    let config = dir.path().join("tidings.yaml");
    let yaml = "rules: { dir: rules, allow_empty: true }\naccounts:\n  me:\n    provider: fastmail\n    \
                username: me@fastmail.com\n    password_env: TIDINGS_TEST_UNSET\n";
    std::fs::write(&config, yaml).unwrap();
    let out = tidings(&config, &["check", "--skip-secrets"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("provider fastmail: imap imap.fastmail.com:993 implicit TLS, smtp smtp.fastmail.com:"),
        "{stdout}"
    );
}

/// The CA file deleted while the daemon runs, then a reconnect: a configuration error, logged
/// once with what to do, shown by `status`, retried on the short backoff (the file put back is
/// used within a minute, where a login failure waits 15).
#[tokio::test]
async fn a_ca_file_gone_at_run_time_is_a_configuration_error_retried_soon() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let proxy = Proxy::start(env.imaps_port);
    let imap = format!("{{ host: 127.0.0.1, port: {}, tls: implicit }}", proxy.port);
    let setup = Setup::with_imap(env, &user, &[("sort.rhai", SORT_RULE)], &imap, "", "");
    let ca = setup.dir.path().join("ca.pem");
    std::fs::copy(&env.ca_file, &ca).unwrap();
    let yaml = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, yaml.replace(&env.ca_file.display().to_string(), "ca.pem")).unwrap();
    let daemon = Daemon::start(&setup.config, 1);
    std::fs::remove_file(&ca).unwrap();
    proxy.cut_all();
    daemon.wait_log_count("configuration error", 1, Duration::from_secs(30));
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains(" ERROR ") && l.contains("configuration error")).unwrap_or_default();
    assert!(
        line.contains(&format!("cannot read CA file {}", ca.display()))
            && line.contains("account `t`")
            && line.contains("send SIGHUP"),
        "{line}"
    );
    assert!(!log.contains("cannot log in"), "taken for a login failure:\n{log}");
    let status = tidings(&setup.config, &["status"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains("cannot read CA file"), "status does not show it:\n{shown}");
    // Several retries on the short backoff (1 s, 2 s, 4 s ...), one error line.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let log = daemon.log();
    let errors = log.lines().filter(|l| l.contains(" ERROR ") && l.contains("configuration error")).count();
    let retries = log.lines().filter(|l| l.contains("configuration error")).count();
    eprintln!("{retries} attempts in about 8 s, {errors} logged as errors");
    assert!(retries >= 2 && errors == 1, "{log}");
    let started = std::time::Instant::now();
    std::fs::copy(&env.ca_file, &ca).unwrap();
    daemon.wait_log_count("watching uidvalidity", 2, Duration::from_secs(60));
    eprintln!("watching again {:?} after the CA file came back", started.elapsed());
    let (_, log) = daemon.stop();
    assert!(!log.contains("retry_in=900s") && !log.contains("retry_in=15m"), "{log}");
    assert!(Path::new(&ca).exists());
}

/// A webhook endpoint is reached with HEAD only (no event); with `--ping-webhooks` it gets one
/// `tidings.test` event signed with the endpoint's secret.
#[tokio::test]
async fn connect_reaches_webhooks_and_pings_them_only_when_asked() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let receiver = Receiver::start();
    let top = format!("webhooks:\n  hook:\n    url: {}\n    secret_file: hook.secret\n", receiver.url("/hook"));
    let setup = Setup::with_top(env, &user, &[("sort.rhai", SORT_RULE)], "", &top);
    let secret = setup.dir.path().join("hook.secret");
    std::fs::write(&secret, "s3cret").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = tidings(&setup.config, &["check", "--connect"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("webhook `hook`") && row(&stdout, "reach").contains(" ok "), "{stdout}");
    assert!(receiver.requests().iter().all(|r| r.method == "HEAD"), "an event without --ping-webhooks");
    let out = tidings(&setup.config, &["check", "--connect", "--ping-webhooks"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(row(&stdout, "test event").contains("signed tidings.test event was accepted"), "{stdout}");
    let posted: Vec<Request> = receiver.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].header("x-tidings-event"), Some("tidings.test"));
    assert_eq!(posted[0].json()["event"], "tidings.test");
    let signed = posted[0].header("x-tidings-signature").expect("signed");
    let t: i64 = signed.strip_prefix("t=").and_then(|s| s.split(',').next()).unwrap().parse().unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    assert_eq!(tidings::exec::webhook::signature(&key, t, &posted[0].body), signed);
}
