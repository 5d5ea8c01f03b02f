//! A new user's first hour, walked as a script would walk it, with only what the README says:
//! `tidings init` for a plain IMAP server, the generated config's password variable filled in,
//! `check --connect` green, a rule added, `tidings test` on a saved message, `dry-run` changing
//! nothing, `run`, a message delivered and seen sorted. The failure side of `check --connect`
//! (unknown CA, wrong password, missing mailbox, missing ca_file) is in `check.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::daemon::Daemon;
use crate::harness::{TestEnv, User, message, wait_for};

/// The variable `init --name home` tells the user to set.
const PASSWORD_VAR: &str = "TIDINGS_HOME_PASSWORD";

/// The rule the user writes after `init`: invoices into a folder of their own.
const INVOICE_RULE: &str = r#"// Invoices go to their own folder.
if msg.subject.to_lower().contains("invoice") {
    move_to("Invoices");
}
"#;

/// `tidings ARGS` as a user's shell runs it: no terminal, no config variable, the state kept
/// under `home` (XDG_STATE_HOME), the password variable only when given.
fn tidings(home: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .args(args)
        .env_remove("TIDINGS_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove(PASSWORD_VAR)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env(PASSWORD_VAR, password);
    }
    command.output().unwrap()
}

/// Both streams of a finished command, for assertion messages.
fn shown(out: &Output) -> String {
    format!(
        "exit: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `tidings init` for the harness's plain server (implicit TLS, its private CA, submission
/// with STARTTLS) into `home/config/tidings`, the default directory. Returns the config file.
fn init(env: &TestEnv, user: &User, home: &Path) -> PathBuf {
    let (imaps, submission) = (env.imaps_port.to_string(), env.submission_port.to_string());
    let ca = env.ca_file.display().to_string();
    let out = tidings(
        home,
        &[
            "init",
            "--imap",
            "127.0.0.1",
            "--port",
            &imaps,
            "--tls",
            "implicit",
            "--ca-file",
            &ca,
            "--email",
            &user.address,
            "--username",
            &user.login,
            "--smtp",
            "127.0.0.1",
            "--smtp-port",
            &submission,
            "--smtp-tls",
            "starttls",
            "--name",
            "home",
        ],
        None,
    );
    assert!(out.status.success(), "init failed:\n{}", shown(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The next steps are printed, starting with the variable to fill in.
    assert!(stdout.contains(PASSWORD_VAR), "init does not name the password variable:\n{stdout}");
    assert!(stdout.contains("tidings check --connect"), "init does not say what to run next:\n{stdout}");
    let config = home.join("config/tidings/tidings.yaml");
    assert!(config.is_file(), "init wrote no {}:\n{stdout}", config.display());
    let yaml = std::fs::read_to_string(&config).unwrap();
    assert!(yaml.contains(&format!("password_env: {PASSWORD_VAR}")), "{yaml}");
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_hour_from_init_to_a_sorted_message() {
    let env = TestEnv::shared();
    let user = env.new_user();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let config = init(env, &user, home);
    let config_arg = config.to_str().unwrap();
    let rules = config.parent().unwrap().join("rules");

    // As written, the config is valid without its secrets, and the starter rules pass their
    // own fixtures.
    let out = tidings(home, &["check", "--skip-secrets", "--config", config_arg], None);
    assert!(out.status.success(), "check --skip-secrets on init's config:\n{}", shown(&out));
    let out = tidings(home, &["test", "--config", config_arg], None);
    assert!(out.status.success(), "init's starter fixtures fail:\n{}", shown(&out));

    // Without the password the live check fails and says which variable is missing.
    let out = tidings(home, &["check", "--connect", "--config", config_arg], None);
    assert!(!out.status.success(), "check --connect passed without the password:\n{}", shown(&out));
    assert!(shown(&out).contains(PASSWORD_VAR), "{}", shown(&out));

    // With it, every server answers: IMAP login, the INBOX, SMTP.
    let out = tidings(home, &["check", "--connect", "--config", config_arg], Some(&user.password));
    assert!(out.status.success(), "check --connect is not green:\n{}", shown(&out));
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    for expected in ["login          ok", "mailbox INBOX  ok", "smtp auth      ok", "verdict: ok"] {
        assert!(report.contains(expected), "check --connect does not mention {expected}:\n{report}");
    }

    // A rule of their own, tried on a saved message before it touches any mail.
    std::fs::write(rules.join("50-invoices.rhai"), INVOICE_RULE).unwrap();
    let saved = home.join("invoice.eml");
    let invoice = message("billing@shop.example", &user.address, "Your invoice 2026-12", "Total: 12 EUR");
    std::fs::write(&saved, &invoice).unwrap();
    let out = tidings(home, &["test", "--config", config_arg, saved.to_str().unwrap()], None);
    let tested = shown(&out);
    assert!(out.status.success(), "tidings test on the saved message:\n{tested}");
    assert!(tested.contains("50-invoices.rhai") && tested.contains("Invoices"), "{tested}");

    // The same message in the INBOX: dry-run shows the move and changes nothing.
    env.deliver_lmtp(&user, &invoice).await.unwrap();
    let out = tidings(home, &["dry-run", "--config", config_arg, "--since", "1d"], Some(&user.password));
    let dry = shown(&out);
    assert!(out.status.success(), "dry-run:\n{dry}");
    assert!(dry.contains("Invoices") && dry.contains("nothing was changed"), "{dry}");
    let inbox = env.list(&user, "INBOX").await.unwrap();
    assert_eq!(inbox.len(), 1, "dry-run changed the INBOX: {inbox:#?}");
    assert!(!inbox[0].has_flag("\\Seen"), "dry-run marked the message read");

    // The daemon: mail from now on is sorted as it arrives (the first start begins after the
    // newest message, so the one dry-run looked at stays where it is).
    let daemon = Daemon::spawn_env(&config, &["run"], &[(PASSWORD_VAR, &user.password)]);
    daemon.wait_log_count("watching uidvalidity", 1, Duration::from_secs(30));
    let next = message("billing@shop.example", &user.address, "Invoice for December", "Total: 30 EUR");
    env.deliver_lmtp(&user, &next).await.unwrap();
    wait_for(Duration::from_secs(30), format!("the new invoice in Invoices\n{}", daemon.log()), || async {
        let sorted = env.list(&user, "Invoices").await.map_err(|e| e.to_string())?;
        match sorted.iter().find(|m| m.subject.as_deref() == Some("Invoice for December")) {
            Some(_) => Ok(()),
            None => Err(format!("Invoices holds {sorted:?}")),
        }
    })
    .await;
    let inbox = env.list(&user, "INBOX").await.unwrap();
    assert_eq!(inbox.len(), 1, "only the message from before the first start stays: {inbox:#?}");
    let (status, log) = daemon.stop();
    assert!(status.success(), "the daemon did not stop cleanly:\n{log}");
}
