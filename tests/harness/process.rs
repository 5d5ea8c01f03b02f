//! Child processes that cannot outlive the test binary.
//!
//! Statics are never dropped, so the shared servers cannot be stopped by
//! `Drop`, and a test binary may also die from a signal. Instead, every
//! server runs under a tiny `sh` *supervisor* whose stdin is a pipe from the
//! test process: the kernel closes that pipe when the test process exits for
//! any reason (normal end, panic, abort, SIGKILL), the supervisor's `read`
//! sees EOF, and it sends SIGTERM to its server and reaps it. Stopping a
//! server on purpose is the same path: close the pipe, wait.
//!
//! The temp dir is removed by a *janitor* `sh` that reads its stdin to EOF.
//! Its stdin pipe is held by the test process and by every supervisor (as
//! the supervisor's stderr), so EOF arrives only once the test process and
//! all supervisors, and thus all servers, are gone.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Runs `"$@"` in the background, reports its pid, waits for stdin EOF, stops it.
/// Ctrl-C reaches the whole process group: the supervisor ignores it and
/// lets the test process's death (pipe EOF) trigger the shutdown instead.
const SUPERVISOR: &str = r#"trap '' INT HUP
log=$1; shift
"$@" </dev/null >/dev/null 2>>"$log" &
echo "$!"
read -r _
kill -TERM "$!" 2>/dev/null
wait "$!"
"#;

/// Removes the temp dir once the test process and every supervisor are gone,
/// unless TIDINGS_TEST_KEEP is set (to inspect configs, logs, maildirs).
const JANITOR: &str = r#"trap '' INT HUP
cat >/dev/null
if [ -n "$TIDINGS_TEST_KEEP" ]; then echo "tidings test env kept in $1" >&2; else rm -rf -- "$1"; fi
"#;

/// The janitor of one temp dir; see the module docs.
#[derive(Debug)]
pub struct Janitor {
    child: Option<Child>,
    lifeline: Option<OwnedFd>,
}

impl Janitor {
    /// Starts the janitor for `dir`; from now on `dir` belongs to it.
    pub fn start(dir: &Path) -> Result<Janitor> {
        let mut child = Command::new("sh")
            .args(["-c", JANITOR, "janitor"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting sh (the temp dir janitor)")?;
        let stdin = child.stdin.take().expect("stdin is piped");
        Ok(Janitor { child: Some(child), lifeline: Some(OwnedFd::from(stdin)) })
    }

    /// A copy of the pipe's write end, for a supervisor to hold.
    fn lifeline(&self) -> Result<Stdio> {
        let fd = self.lifeline.as_ref().expect("janitor is running");
        Ok(Stdio::from(fd.try_clone()?))
    }
}

impl Drop for Janitor {
    /// Hands the cleanup over without waiting: the servers may still be
    /// stopping, and the janitor finishes on its own.
    fn drop(&mut self) {
        self.lifeline = None;
        reap_in_background(self.child.take());
    }
}

/// Waits for `child` on a thread, so it leaves no zombie behind.
fn reap_in_background(child: Option<Child>) {
    if let Some(mut child) = child {
        std::thread::spawn(move || child.wait());
    }
}

/// One server process under its supervisor. [`Supervised::stop`] stops it
/// and waits; dropping it only starts the stop (Dovecot alone takes ~1.1 s
/// to exit, which no test needs to wait for).
#[derive(Debug)]
pub struct Supervised {
    name: &'static str,
    child: Option<Child>,
    stop_pipe: Option<ChildStdin>,
    _stdout: ChildStdout,
    /// The server's pid (the supervisor's child).
    pub pid: u32,
}

impl Supervised {
    /// Starts `argv` under a supervisor; its stderr is appended to `stderr_log`.
    pub fn spawn(name: &'static str, argv: &[&str], stderr_log: &Path, janitor: &Janitor) -> Result<Supervised> {
        let mut child = Command::new("sh")
            .args(["-c", SUPERVISOR, name])
            .arg(stderr_log)
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(janitor.lifeline()?)
            .spawn()
            .with_context(|| format!("starting sh (the {name} supervisor)"))?;
        let stop_pipe = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let pid = line.trim().parse().with_context(|| format!("{name} supervisor said {line:?}"))?;
        let _stdout = stdout.into_inner();
        Ok(Supervised { name, child: Some(child), stop_pipe, _stdout, pid })
    }

    /// Whether the server process still runs (a zombie does not count).
    pub fn alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            // The state follows the parenthesised command name.
            Ok(stat) => !matches!(stat.rsplit(')').next().map(str::trim_start), Some(s) if s.starts_with('Z')),
            Err(_) => false,
        }
    }

    /// Stops the server (SIGTERM via the supervisor) and waits until it is gone.
    pub fn stop(&mut self) {
        self.stop_pipe = None;
        let Some(mut child) = self.child.take() else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("harness: {} ignored SIGTERM for 10 s, killing it", self.name);
        let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        let _ = child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop_pipe = None;
        reap_in_background(self.child.take());
    }
}

/// What a listening port must answer before a server counts as ready.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// The connection is accepted (e.g. an implicit-TLS port).
    Accepts,
    /// The server's first bytes start with this greeting.
    Greets(&'static str),
}

/// Waits until every `(port, probe)` answers, failing early if `server` dies.
pub fn wait_ready(server: &Supervised, probes: &[(u16, Probe)], logs: &[PathBuf]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &(port, probe) in probes {
        loop {
            let last = match check(port, probe) {
                Ok(()) => break,
                Err(e) => e,
            };
            if !server.alive() || Instant::now() > deadline {
                let state = if server.alive() { "did not get ready in 10 s" } else { "exited" };
                bail!("{} {state}: port {port}: {last:#}\n{}", server.name, log_tails(logs, 30));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

fn check(port: u16, probe: Probe) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let Probe::Greets(prefix) = probe else { return Ok(()) };
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = vec![0; prefix.len()];
    stream.read_exact(&mut buf)?;
    if buf != prefix.as_bytes() {
        bail!("greeting {:?}, expected {prefix:?}", String::from_utf8_lossy(&buf));
    }
    Ok(())
}

/// The last `lines` lines of each log file, for failure messages.
pub fn log_tails(logs: &[PathBuf], lines: usize) -> String {
    let mut out = String::new();
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})\n"));
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        out += &format!("--- {} (last {} lines)\n{}\n", path.display(), tail.len(), tail.join("\n"));
    }
    out
}

/// Runs a checking command (doveconf, postconf) and fails with its output
/// if it exits non-zero or prints anything on stderr, warnings included.
pub fn run_check(argv: &[&str]) -> Result<()> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", argv[0]))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        bail!("`{}` failed ({}):\n{stderr}", argv.join(" "), out.status);
    }
    Ok(())
}
