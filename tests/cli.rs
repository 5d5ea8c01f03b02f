//! The `tidings` binary as a user runs it: `check` verdicts and exit codes, `run` start-up and
//! clean shutdown on SIGTERM, and secrets that never reach the terminal; a password file open
//! to others warned about, the state files created owner-only; an empty state file refused; a
//! data file linking out of rules/data refused by check; logs without colour codes off a terminal
//! and their format from TIDINGS_LOG_FORMAT; a closed pipe ends a report quietly; `--help`
//! lists the signals and the `why` alias.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn tidings() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    cmd.env_remove("TIDINGS_CONFIG").env_remove("RUST_LOG");
    cmd
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `yaml` as the config in `dir`; without its own `rules:`, the config gets an empty
/// rules directory it asks for on purpose (`check` and `run` refuse one not asked for).
fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("tidings.yaml");
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    let rules = if yaml.contains("rules:") { "" } else { "rules: { dir: rules, allow_empty: true }\n" };
    std::fs::write(&path, format!("{yaml}{rules}")).unwrap();
    path
}

#[test]
fn check_accepts_the_example_config() {
    let out = tidings()
        .args(["check", "--skip-secrets", "--config"])
        .arg(repo().join("examples/tidings.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok (2 accounts"), "{stdout}");
}

#[test]
fn check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "accounts:\n  a:\n    imap: { host: h, port: 0 }\n    username: u\n  a:\n    imap: { host: h }\nbogus: 1\n",
    );
    let out = tidings().arg("check").arg("--config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let shown = path.display();
    for expected in [
        format!("{shown}:3:"),
        "port 0 is out of range".to_owned(),
        "account `a` has no password source".to_owned(),
        "`a` is defined twice (first at line 2)".to_owned(),
        format!("{shown}:7:1: unknown key `bogus`"),
    ] {
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
    }
}

#[test]
fn check_reads_secrets_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        "accounts:\n  a:\n    imap: { host: h }\n    username: u\n    password_env: TIDINGS_TEST_UNSET_PASSWORD\n";
    let path = write_config(dir.path(), yaml);
    let out = tidings().arg("check").arg("-c").arg(&path).env_remove("TIDINGS_TEST_UNSET_PASSWORD").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("TIDINGS_TEST_UNSET_PASSWORD: it is not set"), "{stderr}");
    let out = tidings().arg("check").arg("--skip-secrets").env("TIDINGS_CONFIG", &path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_reports_a_broken_rule_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/sort.rhai"), "let a = 1;\nlet b = (a + ;\n").unwrap();
    let path = write_config(dir.path(), "accounts: {}\n");
    let out = tidings().arg("check").arg("-c").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("sort.rhai:2:"), "{stderr}");
}

/// A data file that is a symlink out of `rules/data` (to `/etc/passwd`) fails `check`, naming
/// the file and where it leads, as a plugin leading out does.
#[test]
fn check_refuses_a_data_file_leading_out_of_rules_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules/data")).unwrap();
    let link = dir.path().join("rules/data/x.txt");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    let path = write_config(dir.path(), "accounts: {}\n");
    let out = tidings().arg("check").arg("-c").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!("data file is outside the data directory: {} leads to /etc/passwd", link.display());
    assert!(stderr.contains(&expected), "{expected:?} missing from:\n{stderr}");
    assert!(!stderr.contains("root:"), "the target's content was shown:\n{stderr}");
}

#[test]
fn a_missing_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = tidings().arg("check").env("XDG_CONFIG_HOME", dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot find a config file"), "{stderr}");
    assert!(stderr.contains(&dir.path().join("tidings/tidings.yaml").display().to_string()), "{stderr}");
}

#[test]
fn run_starts_opens_the_store_and_stops_on_sigterm_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pw-that-must-never-be-printed-4711";
    let yaml = format!(
        "state: state/tidings.db\naccounts:\n  a:\n    imap: {{ host: 127.0.0.1, port: 1, tls: implicit }}\n    username: u\n    password_command: \"echo {password}\"\n"
    );
    let path = write_config(dir.path(), &yaml);
    let (mut child, mut stderr, mut log) = start_daemon(&path, &["-vv"]);
    assert!(dir.path().join("state/tidings.db").exists(), "the store was not created");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "tidings did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    log.push_str(&rest);
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(!log.contains(password), "the password appeared in the log:\n{log}");
}

/// A password file others can read is warned about at start, with its mode and the fix; an
/// owner-only one is not. The store, its WAL files and its lock are created owner-only; a store
/// opened to others later is warned about.
#[test]
fn an_open_password_file_is_warned_about_and_the_state_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, "pw-kept-private-5150\n").unwrap();
    let yaml = "state: state/tidings.db\naccounts:\n  a:\n    imap: { host: 127.0.0.1, port: 1, tls: implicit }\n    username: u\n    password_file: password\n";
    let path = write_config(dir.path(), yaml);
    let warning = format!("chmod 600 {}", secret.display());
    for (mode, warned) in [(0o644, true), (0o600, false)] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let (mut child, _stderr, log) = start_daemon(&path, &[]);
        child.kill().unwrap();
        child.wait().unwrap();
        let line = log.lines().find(|l| l.contains(&warning));
        assert_eq!(line.is_some(), warned, "mode {mode:o}: warning expected: {warned}\n{log}");
        if let Some(line) = line {
            assert!(line.contains("WARN") && line.contains("mode=0644"), "{line}");
            assert!(
                line.contains("the password file of account `a` is readable or writable by group or others"),
                "{line}"
            );
        }
    }
    let state = dir.path().join("state");
    for file in ["tidings.db", "tidings.db-wal", "tidings.db-shm", "tidings.db.lock"] {
        let file = state.join(file);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} was created {mode:o}", file.display());
    }
    // A store someone opened to the group is warned about too, and left as it is.
    let db = state.join("tidings.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (mut child, _stderr, log) = start_daemon(&path, &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    let fix = format!(
        "the state file is readable or writable by group or others; make it owner-only: chmod 600 {}",
        db.display()
    );
    assert!(log.lines().any(|l| l.contains(&fix) && l.contains("mode=0640")), "{log}");
    assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o640);
}

/// Starts `tidings run` and waits for its start-up line; returns the child, its stderr and the
/// log read so far.
fn start_daemon(config: &Path, flags: &[&str]) -> (std::process::Child, BufReader<std::process::ChildStderr>, String) {
    let mut child = tidings()
        .args(flags)
        .args(["run", "-c"])
        .arg(config)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains("tidings started") {
        assert!(Instant::now() < deadline, "no start-up line within 20 s:\n{log}");
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("tidings exited before starting:\n{log}");
        }
        log.push_str(&line);
    }
    (child, stderr, log)
}

#[test]
fn a_second_daemon_on_the_same_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "state: tidings.db\naccounts: {}\n");
    let (mut first, _stderr, _log) = start_daemon(&path, &[]);
    let second = tidings().arg("run").arg("-c").arg(&path).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(stderr.contains("another tidings daemon is running with the same state file"), "{stderr}");
}

/// A state file truncated to 0 bytes is refused, not taken as a new store (which would take
/// the mail delivered meanwhile as old and forget who was replied to), and left as it was.
#[test]
fn run_refuses_an_empty_state_file_and_leaves_it_alone() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "state: tidings.db\naccounts: {}\n");
    let state = dir.path().join("tidings.db");
    std::fs::write(&state, "").unwrap();
    let before = std::fs::metadata(&state).unwrap();
    let mut child =
        tidings().arg("run").arg("-c").arg(&path).env("NO_COLOR", "1").stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("tidings ran on an empty state file (still running after 20 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let expected = format!(
        "cannot open store {}: the file is empty; it is not a tidings store (was it truncated?)",
        state.display()
    );
    assert!(stderr.contains(&expected), "{expected:?} missing from:\n{stderr}");
    assert!(stderr.contains("Put the store back from a backup"), "{stderr}");
    let after = std::fs::metadata(&state).unwrap();
    assert_eq!((after.len(), after.modified().unwrap(), after.ino()), (0, before.modified().unwrap(), before.ino()));
    let wal = dir.path().join("tidings.db-wal");
    assert!(!wal.exists(), "a WAL was made for the empty file");
}

#[test]
fn version_and_help_read_well() {
    let out = tidings().arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("tidings {}", env!("CARGO_PKG_VERSION")));
    let out = tidings().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["check", "run", "--config", "TIDINGS_CONFIG"] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
}

/// `run --help` names the signals and what each does; the `why` alias of `history` is listed
/// where users look (`tidings --help`, `history --help`) and works.
#[test]
fn help_lists_the_signals_and_the_why_alias() {
    let help = |args: &[&str]| {
        let out = tidings().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let run = help(&["run", "--help"]);
    for words in [
        "SIGINT or SIGTERM stops cleanly",
        "SIGHUP",
        "reloads the config's accounts and schedules",
        "reload by themselves when saved",
    ] {
        assert!(run.contains(words), "`{words}` missing from run --help:\n{run}");
    }
    let top = help(&["--help"]);
    let line = top.lines().find(|l| l.trim_start().starts_with("history")).unwrap_or_default();
    assert!(line.contains("[alias: why]"), "history's line in --help: {line}\n{top}");
    let line = top.lines().find(|l| l.trim_start().starts_with("run")).unwrap_or_default();
    assert!(line.contains("SIGHUP reloads its accounts"), "run's line in --help: {line}\n{top}");
    assert!(help(&["history", "--help"]).contains("`tidings why` is the same command"));
    assert!(help(&["why", "--help"]).contains("Usage: tidings history"));
}

/// Reads a daemon's stderr until its start-up line, then stops it; what it logged.
fn log_until_started(mut cmd: Command) -> String {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut log, deadline) = (String::new(), Instant::now() + Duration::from_secs(20));
    while !log.contains("tidings started") {
        let mut line = String::new();
        if Instant::now() > deadline || stderr.read_line(&mut line).unwrap() == 0 {
            child.kill().unwrap();
            panic!("no start-up line:\n{log}");
        }
        log.push_str(&line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    log
}

/// Logs written to a file, a pipe or the journal carry no colour codes, even without NO_COLOR;
/// TIDINGS_LOG_FORMAT picks the format as --log-format does.
#[test]
fn logs_to_a_pipe_have_no_colour_codes_and_the_format_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "state: tidings.db\naccounts: {}\n");
    let mut plain = tidings();
    plain.arg("run").arg("-c").arg(&path).env_remove("NO_COLOR").env_remove("TIDINGS_LOG_FORMAT");
    let log = log_until_started(plain);
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal:\n{log:?}");
    let mut json = tidings();
    json.arg("run").arg("-c").arg(&path).env("TIDINGS_LOG_FORMAT", "json");
    let log = log_until_started(json);
    let started = log.lines().find(|l| l.contains("tidings started")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(started).unwrap_or_else(|e| panic!("{e}: {started}"));
    assert_eq!(parsed["fields"]["message"], "tidings started", "{started}");
}

/// `tidings check | head -0` or `tidings outbox --all | head`: a reader that has all it wanted
/// closes the pipe; tidings ends quietly and successfully, with no "Broken pipe" error or panic.
#[test]
fn a_report_whose_reader_went_away_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "state: tidings.db\naccounts: {}\n");
    // A store for `outbox` to read: made by the daemon's start.
    drop(log_until_started({
        let mut run = tidings();
        run.arg("run").arg("-c").arg(&path).env("NO_COLOR", "1");
        run
    }));
    let example = repo().join("examples/tidings.yaml");
    let commands: [(&str, Vec<&std::ffi::OsStr>); 2] = [
        ("check", vec!["check".as_ref(), "--skip-secrets".as_ref(), "--config".as_ref(), example.as_os_str()]),
        ("outbox", vec!["outbox".as_ref(), "--all".as_ref(), "--config".as_ref(), path.as_os_str()]),
    ];
    for (what, args) in commands {
        let mut child = tidings().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // The reader is gone before tidings writes a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {:?}\n{stderr}", out.status);
        assert!(!stderr.contains("Broken pipe") && !stderr.contains("panicked"), "{what}:\n{stderr}");
    }
}
