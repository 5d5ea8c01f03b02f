//! Commands: run a configured program with the event payload as JSON on its standard input.
//!
//! The program runs from its argument vector (no shell), in its own process group, with a clean
//! environment: a few variables it needs to find things (PATH, HOME, the locale, the desktop
//! session's bus), the command's `env`, and `TIDINGS_EVENT_ID`; never tidings' own, which may
//! hold passwords. At its timeout the whole group is killed, so a script's children die with it,
//! and the process is reaped. Its output is captured up to [`OUTPUT_LIMIT`] bytes per stream
//! and logged under the command's name. Exit status 0 is done; anything else is retried.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::Ran;
use crate::config::Command;

/// Bytes of each of stdout and stderr kept for the log; the rest is read and dropped.
pub const OUTPUT_LIMIT: usize = 4096;
/// How long output is still read after the program ended (a child it left running may hold
/// the pipe open).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);
/// Variables passed on from tidings' environment: none of them is a secret, and without them
/// programs cannot find their tools, their home, their language or the desktop session.
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
];

/// What a finished run produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Output {
    /// The start of what it wrote to stdout.
    pub stdout: Captured,
    /// The start of what it wrote to stderr.
    pub stderr: Captured,
}

/// The first [`OUTPUT_LIMIT`] bytes of a stream, and how much there was.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// The bytes kept.
    pub bytes: Vec<u8>,
    /// Every byte read, kept or not.
    pub total: usize,
}

impl Captured {
    /// Whether more was written than kept.
    pub fn truncated(&self) -> bool {
        self.total > self.bytes.len()
    }
}

/// Runs `command` once with `payload` on its standard input.
pub async fn run(command: &Command, payload: &Value) -> Ran {
    let (ran, output) = run_captured(command, payload).await;
    if let Some(output) = output {
        log(&command.name, "stdout", &output.stdout);
        log(&command.name, "stderr", &output.stderr);
    }
    ran
}

/// Runs `command` and returns what it came to with its output (none if it did not start).
pub async fn run_captured(command: &Command, payload: &Value) -> (Ran, Option<Output>) {
    let name = &command.name;
    let mut child = match spawn(command, payload) {
        Ok(child) => child,
        Err(e) => {
            let error = format!("cannot start command `{name}` ({}): {e}", command.program.display());
            return (Ran::Transient(error), None);
        }
    };
    let input = serde_json::to_vec(payload).unwrap_or_default();
    let stdin = child.stdin.take();
    let stdout = tokio::spawn(capture(child.stdout.take()));
    let stderr = tokio::spawn(capture(child.stderr.take()));
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A program that exits without reading its input closes the pipe: not an error.
            let _ = stdin.write_all(&input).await;
        }
    };
    let finished = tokio::time::timeout(command.timeout, async {
        let ((), status) = tokio::join!(feed, child.wait());
        status
    })
    .await;
    if finished.is_err() {
        kill_group(&mut child).await;
    }
    let output = Output { stdout: collect(stdout).await, stderr: collect(stderr).await };
    let ran = match finished {
        Ok(Ok(status)) => exited(name, status, &output.stderr),
        Ok(Err(e)) => Ran::Transient(format!("cannot wait for command `{name}`: {e}")),
        Err(_) => Ran::Transient(format!("command `{name}` timed out after {:?} and was killed", command.timeout)),
    };
    (ran, Some(output))
}

fn spawn(command: &Command, payload: &Value) -> std::io::Result<Child> {
    let mut process = tokio::process::Command::new(&command.program);
    process
        .args(&command.run[1..])
        .current_dir(&command.dir)
        .env_clear()
        .envs(INHERITED.iter().filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .env("TIDINGS_EVENT_ID", payload["id"].as_str().unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that the timeout kills whatever it started too.
        .process_group(0)
        // Should this future be dropped (shutdown), the program does not outlive it.
        .kill_on_drop(true);
    process.spawn()
}

/// Kills the child's process group and reaps the child.
async fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw) {
        // The group id is the child's pid (process_group(0)). It may already be gone.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// What an exit status means; a failure's reason ends with the last line of its stderr.
fn exited(name: &str, status: ExitStatus, stderr: &Captured) -> Ran {
    use std::os::unix::process::ExitStatusExt;
    let error = match (status.code(), status.signal()) {
        (Some(0), _) => return Ran::Done,
        (Some(code), _) => format!("command `{name}` exited with status {code}"),
        (None, Some(signal)) => format!("command `{name}` was killed by signal {signal}"),
        (None, None) => format!("command `{name}` ended with {status}"),
    };
    let text = String::from_utf8_lossy(&stderr.bytes);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => Ran::Transient(format!("{error}: {}", line.chars().take(200).collect::<String>())),
        None => Ran::Transient(error),
    }
}

/// Reads a stream to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
async fn capture(stream: Option<impl AsyncRead + Unpin>) -> Captured {
    let mut captured = Captured::default();
    let Some(mut stream) = stream else { return captured };
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return captured,
            Ok(n) => {
                let room = OUTPUT_LIMIT - captured.bytes.len();
                captured.bytes.extend_from_slice(&buf[..n.min(room)]);
                captured.total += n;
            }
        }
    }
}

/// The capture of a stream once the program ended, waiting at most [`OUTPUT_GRACE`].
async fn collect(task: tokio::task::JoinHandle<Captured>) -> Captured {
    let abort = task.abort_handle();
    match tokio::time::timeout(OUTPUT_GRACE, task).await {
        Ok(Ok(captured)) => captured,
        _ => {
            abort.abort();
            Captured::default()
        }
    }
}

fn log(name: &str, stream: &str, captured: &Captured) {
    if captured.total == 0 {
        return;
    }
    let text = String::from_utf8_lossy(&captured.bytes);
    tracing::info!(command = %name, stream, bytes = captured.total, truncated = captured.truncated(), output = %text.trim_end(), "command output");
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
