//! Running the real `tidings` binary against the harness servers: a config written for a test
//! user, the daemon as a child process (so tests can SIGKILL it), its log captured.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{TestEnv, User};

/// A directory with a config for `user`, its rules, and the store.
pub struct Setup {
    /// The temp dir holding everything.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
}

impl Setup {
    /// Writes rules (`name`, `text`) and a config whose one account `t` is `user` on the
    /// environment's IMAPS port; `account_extra` is appended to the account (indented 4).
    pub fn new(env: &TestEnv, user: &User, rules: &[(&str, &str)], account_extra: &str) -> Setup {
        Setup::with_top(env, user, rules, account_extra, "")
    }

    /// [`Setup::new`], with `top` (top-level YAML: `webhooks:`, `commands:` ...) appended.
    pub fn with_top(env: &TestEnv, user: &User, rules: &[(&str, &str)], account_extra: &str, top: &str) -> Setup {
        let imaps = format!("{{ host: 127.0.0.1, port: {}, tls: implicit }}", env.imaps_port);
        Setup::with_imap(env, user, rules, &imaps, account_extra, top)
    }

    /// [`Setup::with_top`] with the account's `imap:` server given as a YAML flow map (a fault
    /// proxy's port, plaintext).
    pub fn with_imap(
        env: &TestEnv,
        user: &User,
        rules: &[(&str, &str)],
        imap: &str,
        account_extra: &str,
        top: &str,
    ) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir_all(&rules_dir).unwrap();
        for (name, text) in rules {
            std::fs::write(rules_dir.join(name), text).unwrap();
        }
        let password = dir.path().join("password");
        std::fs::write(&password, &user.password).unwrap();
        // Owner-only, as a secret file should be: else every run starts with a warning about it.
        std::fs::set_permissions(&password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let plugins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins");
        // A test without rules watches only: asked for, as a user would.
        let rules = if rules.is_empty() { "{ dir: rules, allow_empty: true }" } else { "rules" };
        let yaml = format!(
            "state: state.db\nrules: {rules}\nplugins: {plugins}\naccounts:\n  t:\n    imap: {imap}\n    ca_file: {ca}\n    username: {login}\n    password_file: password\n    from: {login}\n{extra}",
            plugins = plugins.display(),
            ca = env.ca_file.display(),
            login = user.login,
            extra = account_extra.lines().map(|l| format!("    {l}\n")).collect::<String>(),
        ) + top;
        let config = dir.path().join("tidings.yaml");
        std::fs::write(&config, yaml).unwrap();
        Setup { dir, config }
    }

    /// The store file.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Starts the daemon once so that the INBOX of account `t` has its first checkpoint, then
    /// SIGKILLs it. "watching" is logged before the checkpoint is stored: a kill right after it
    /// could leave no checkpoint, and the next start would take mail delivered meanwhile as old.
    pub async fn baseline(&self) {
        let daemon = Daemon::start(&self.config, 1);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let store = tidings::store::Store::open(&self.state()).await.unwrap();
            if store.checkpoint("t", "INBOX").await.unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "no INBOX checkpoint within 20 s:\n{}", daemon.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.kill();
    }
}

/// The daemon as a child process.
pub struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `tidings run` on `config` and waits until every watcher said it is watching.
    pub fn start(config: &Path, watchers: usize) -> Daemon {
        let daemon = Daemon::spawn(config, &["run"]);
        daemon.wait_log_count("watching uidvalidity", watchers, Duration::from_secs(20));
        daemon
    }

    /// Starts `tidings ARGS -c config` without waiting.
    pub fn spawn(config: &Path, args: &[&str]) -> Daemon {
        Daemon::spawn_env(config, args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables (they win over the defaults).
    pub fn spawn_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(Command::new(env!("CARGO_BIN_EXE_tidings")), config, args, env)
    }

    /// [`Daemon::start`] from the working directory `dir`, `config` given as written there (a
    /// bare `tidings.yaml`, as a user in that directory would type it).
    pub fn start_in(dir: &Path, config: &Path, watchers: usize) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
        command.current_dir(dir);
        let daemon = Daemon::spawn_with(command, config, &["run"], &[]);
        daemon.wait_log_count("watching uidvalidity", watchers, Duration::from_secs(20));
        daemon
    }

    fn spawn_with(mut command: Command, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut child = command
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,tidings=debug")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon { child, log }
    }

    /// The process id (to look at its connections).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `needle` appears `count` times in the log.
    pub fn wait_log_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "expected {count}x {needle:?} in the log within {timeout:?}, got:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit (at most 15 s).
    pub fn stop(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.log());
            }
            assert!(Instant::now() < deadline, "tidings did not stop within 15 s of SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to end by itself (a `--once` run).
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tidings did not finish within {timeout:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
