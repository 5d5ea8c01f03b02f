//! Rules loaded while the daemon runs, against the harness Dovecot: a rule changed mid-run sorts
//! the next message on the same IMAP session, a broken or escaping rule keeps the previous set
//! running and is logged with its file and line; and `check` stops imports that would read
//! outside the plugins directory, naming the rule. SIGHUP reloads the config: an added account
//! starts, a removed one stops, the others keep their sessions; a broken file changes nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::daemon::{Daemon, Setup};
use crate::harness::{TestEnv, User, message};
use crate::watch::ids_in;

/// A rule moving "sort-me" mail to `folder`.
fn sort_into(folder: &str) -> String {
    format!("// Sorting test mail.\nif msg.subject.starts_with(\"sort-me\") {{\n    move_to(\"{folder}\");\n}}\n")
}

pub fn id_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let start = text.find("Message-ID: <").unwrap() + "Message-ID: <".len();
    text[start..start + text[start..].find('>').unwrap()].to_owned()
}

/// Delivers a "sort-me" message and waits until it is in `folder`.
async fn deliver_and_find(env: &TestEnv, user: &User, daemon: &Daemon, subject: &str, folder: &str) {
    let raw = message("a@example.com", &user.address, subject, "x");
    env.deliver_lmtp(user, &raw).await.unwrap();
    let id = id_of(&raw);
    crate::harness::wait_for(
        Duration::from_secs(15),
        env.with_logs(format!("{subject:?} in {folder}\n{}", daemon.log())),
        || async {
            let ids = ids_in(env, user, folder).await;
            if ids.contains(&id) { Ok(()) } else { Err(format!("{folder} holds {} messages", ids.len())) }
        },
    )
    .await;
}

/// Rewrites a rule file the way an editor saving it would.
fn save(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join("rules").join(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_changed_mid_run_sorts_the_next_message_without_a_new_session() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let setup = Setup::new(env, &user, &[("sort.rhai", &sort_into("Reload-A"))], "");
    let daemon = Daemon::start(&setup.config, 1);
    deliver_and_find(env, &user, &daemon, "sort-me first", "Reload-A").await;

    save(setup.dir.path(), "sort.rhai", &sort_into("Reload-Second"));
    daemon.wait_log_count("rules reloaded", 1, Duration::from_secs(10));
    deliver_and_find(env, &user, &daemon, "sort-me second", "Reload-Second").await;

    // A syntax error on line 3: logged with file:line:column, the previous set keeps sorting.
    save(
        setup.dir.path(),
        "sort.rhai",
        "if msg.subject.starts_with(\"sort-me\") {\n    move_to(\"Reload-Broken\");\n    let = 1;\n}\n",
    );
    daemon.wait_log_count("rules not reloaded", 1, Duration::from_secs(10));
    deliver_and_find(env, &user, &daemon, "sort-me third", "Reload-Second").await;

    // An import reaching out of the plugins directory: refused, naming the rule and its line.
    save(setup.dir.path(), "sort.rhai", &format!("import \"../../etc/passwd\" as p;\n{}", sort_into("Reload-Escaped")));
    daemon.wait_log_count("rules not reloaded", 2, Duration::from_secs(10));
    deliver_and_find(env, &user, &daemon, "sort-me fourth", "Reload-Second").await;

    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
    let rule = setup.dir.path().join("rules/sort.rhai");
    let broken = format!("at={}:3:9", rule.display());
    assert!(log.contains(&broken), "the syntax error is logged at {broken}:\n{log}");
    let escaped = format!("at={}:1:1 error=import `../../etc/passwd` is outside the plugins directory", rule.display());
    assert!(log.contains(&escaped), "the escaping import is logged as {escaped}:\n{log}");
    assert_eq!(log.matches("rules reloaded").count(), 1, "{log}");
    assert_eq!(log.matches("watching").count(), 1, "the watcher's IMAP session was never re-established:\n{log}");
    let watcher_logins =
        log.lines().filter(|l| l.contains("mailbox{mailbox=INBOX}") && l.contains("logged in")).count();
    assert_eq!(watcher_logins, 1, "one login for the watcher (the executor logs in on its own):\n{log}");
    assert!(!log.contains("connection lost"), "{log}");
    assert!(ids_in(env, &user, "Reload-Broken").await.is_empty());
    assert!(ids_in(env, &user, "Reload-Escaped").await.is_empty());
    assert_eq!(ids_in(env, &user, "Reload-Second").await.len(), 3);
}

#[test]
fn check_stops_imports_outside_the_plugins_directory_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    save(dir.path(), "10-dotdot.rhai", "// reads the password file?\nimport \"../../etc/passwd\" as p;\n");
    save(dir.path(), "20-absolute.rhai", "import \"/etc/passwd\" as p;\n");
    let config = dir.path().join("tidings.yaml");
    std::fs::write(&config, "accounts: {}\nrules: rules\nplugins: plugins\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["check", "--skip-secrets", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let rules = dir.path().join("rules");
    for expected in [
        format!(
            "{}:2:1: import `../../etc/passwd` is outside the plugins directory",
            rules.join("10-dotdot.rhai").display()
        ),
        format!(
            "{}:1:1: import `/etc/passwd` is outside the plugins directory",
            rules.join("20-absolute.rhai").display()
        ),
    ] {
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("root:"), "nothing of the file is shown: {stderr}");
}

/// SIGHUP to the daemon.
/// The config as `Setup` wrote it for `t`, `t`'s account block, and the same block for `u`
/// (its password in `password-u`), to add or remove accounts by rewriting the file.
fn second_account(setup: &Setup, t: &User, u: &User) -> (String, String, String) {
    let original = std::fs::read_to_string(&setup.config).unwrap();
    let t_block = original.split_once("accounts:\n").unwrap().1.to_owned();
    std::fs::write(setup.dir.path().join("password-u"), &u.password).unwrap();
    let u_block = t_block
        .replace("  t:\n", "  u:\n")
        .replace(&t.login, &u.login)
        .replace("password_file: password\n", "password_file: password-u\n");
    (original, t_block, u_block)
}

fn hangup(daemon: &Daemon) {
    let pid = daemon.pid().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_adds_and_removes_accounts_and_leaves_the_others_sessions_alone() {
    let env = TestEnv::shared();
    let (t, u) = (env.new_user(), env.new_user());
    let setup = Setup::new(env, &t, &[("sort.rhai", &sort_into("Hup"))], "");
    let daemon = Daemon::start(&setup.config, 1);
    let (original, t_block, u_block) = second_account(&setup, &t, &u);

    // Added: u starts watching; t keeps its one session (no second "watching" for it).
    std::fs::write(&setup.config, format!("{original}{u_block}")).unwrap();
    hangup(&daemon);
    daemon.wait_log_count("config reloaded", 1, Duration::from_secs(10));
    daemon.wait_log_count("watching uidvalidity", 2, Duration::from_secs(20));
    deliver_and_find(env, &u, &daemon, "sort-me for the added account", "Hup").await;
    deliver_and_find(env, &t, &daemon, "sort-me for the kept account", "Hup").await;
    assert!(daemon.log().contains(r#"added=["u"] removed=[] changed=[] unchanged=1"#), "{}", daemon.log());

    // A broken file changes nothing.
    std::fs::write(&setup.config, format!("{original}{u_block}  broken: [\n")).unwrap();
    hangup(&daemon);
    daemon.wait_log_count("cannot reload the config; the running one stays in force", 1, Duration::from_secs(10));
    deliver_and_find(env, &u, &daemon, "sort-me after a broken reload", "Hup").await;

    // Removed: t's watcher stops, u goes on.
    let without_t = original.replace(&t_block, &u_block);
    std::fs::write(&setup.config, without_t).unwrap();
    hangup(&daemon);
    daemon.wait_log_count("config reloaded", 2, Duration::from_secs(20));
    let raw = message("a@example.com", &t.address, "sort-me after t was removed", "x");
    env.deliver_lmtp(&t, &raw).await.unwrap();
    deliver_and_find(env, &u, &daemon, "sort-me after the removal", "Hup").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ids_in(env, &t, "INBOX").await.contains(&id_of(&raw)), "a removed account's mail is left alone");
    let log = daemon.log();
    assert_eq!(log.matches("watching uidvalidity").count(), 2, "no session was restarted:\n{log}");
    let (status, log) = daemon.stop();
    assert!(status.success(), "{log}");
}

/// An account removed by SIGHUP leaves `tidings status` (text and JSON): its watchers are gone
/// with it, its checkpoints stay in the store without making a "not reported" row, and the
/// verdict stays healthy. The executor's log line names the folder the messages went to.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_removed_by_sighup_leaves_the_status() {
    let env = TestEnv::shared();
    let (t, u) = (env.new_user(), env.new_user());
    let setup = Setup::new(env, &t, &[("sort.rhai", &sort_into("Lists/hup"))], "");
    let (original, t_block, u_block) = second_account(&setup, &t, &u);
    std::fs::write(&setup.config, format!("{original}{u_block}")).unwrap();
    let daemon = Daemon::start(&setup.config, 2);
    // Both accounts have a checkpoint in the store: a removed one's used to show as "not reported".
    deliver_and_find(env, &t, &daemon, "sort-me for t", "Lists/hup").await;
    deliver_and_find(env, &u, &daemon, "sort-me for u", "Lists/hup").await;
    let log = daemon.log();
    let moved = log.lines().find(|l| l.contains(r#"action{action="move""#) && l.contains(" done "));
    assert!(moved.is_some_and(|l| l.contains("to=Lists/hup") && l.contains("uids=1")), "{log}");
    let before = status(&setup.config, &[]);
    assert!(before.contains("\nt ") && before.contains("\nu "), "both accounts listed at first:\n{before}");

    std::fs::write(&setup.config, original.replace(&t_block, &u_block)).unwrap();
    hangup(&daemon);
    daemon.wait_log_count("config reloaded", 1, Duration::from_secs(20));
    let text = crate::harness::wait_for(Duration::from_secs(15), "t gone from the status", || async {
        let text = status(&setup.config, &[]);
        if text.contains("\nt ") { Err(text) } else { Ok(text) }
    })
    .await;
    assert!(text.starts_with("tidings: running, healthy\n"), "{text}");
    assert!(!text.contains("not reported"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("u ") && l.contains(" idle ")), "{text}");
    let json: serde_json::Value = serde_json::from_str(&status(&setup.config, &["--json"])).unwrap();
    let accounts: Vec<&str> =
        json["mailboxes"].as_array().unwrap().iter().filter_map(|m| m["account"].as_str()).collect();
    assert_eq!(accounts, ["u"], "{json:#}");
    assert_eq!((json["verdict"].as_str(), json["healthy"].as_bool()), (Some("healthy"), Some(true)), "{json:#}");

    // Stopped: the status reads the store alone; t is still not listed.
    let (stopped, log) = daemon.stop();
    assert!(stopped.success(), "{log}");
    let after = status(&setup.config, &[]);
    assert!(after.contains("NOT RUNNING") && !after.contains("\nt ") && after.contains("\nu "), "{after}");
}

/// `tidings status ARGS --config <config>`'s standard output, checked to have exited 0, 1 or 2.
fn status(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("status")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0..=2)), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}
