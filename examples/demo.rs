//! The demo of the main job: tidings sorting real mail on local servers.
//!
//! Run it with `examples/demo.sh` (as root: it starts its own Dovecot and Postfix). It starts
//! both servers on free 127.0.0.1 ports in a temp dir (the test harness, `tests/harness`),
//! creates a mailbox user, writes a config modelled on `examples/tidings.yaml` that uses the
//! repository's `rules/` and `plugins/`, and starts the real `tidings run` binary. Once tidings
//! is watching, every `examples/mail/*.eml` is delivered over LMTP; the demo then watches the
//! user's mailboxes until each message is where the shipped rules put it, prints a table
//! (sample, subject, folder, flags) and the time from delivery to the last action, stops
//! tidings with SIGTERM and checks that it exits 0.
//!
//! It exits non-zero, saying what differed, if anything did not happen as expected.
//! `--verbose` streams tidings' log as it runs; otherwise the log is printed at the end.

// The harness is shared with the integration tests; the demo uses only part of it.
#[allow(dead_code, unused_imports)]
#[path = "../tests/harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use harness::{TestEnv, User};

/// How long tidings may take to start watching, and the sample mail to reach its folders.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long tidings may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// Pause between two looks at the mailboxes (or the log) while waiting.
const POLL: Duration = Duration::from_millis(50);

/// Where the shipped rules put each sample message: folder (UTF-8) and exact flags.
const EXPECTED: &[(&str, &str, &[&str])] = &[
    ("1-github-review.eml", "Notifications/GitHub", &["\\Flagged", "GitHub"]),
    ("2-receipt.eml", "INBOX", &["\\Flagged", "receipt"]),
    ("3-list-post.eml", "Lists/rust-users", &[]),
    ("4-newsletter.eml", "Newsletters", &["\\Seen"]),
    ("5-bank.eml", "Überweisungen/2026", &[]),
    ("6-personal.eml", "INBOX", &[]),
    ("7-vip.eml", "INBOX", &["\\Flagged", "vip"]),
];

/// One sample message and what should become of it.
struct Sample {
    file: String,
    raw: Vec<u8>,
    message_id: String,
    subject: String,
    folder: &'static str,
    flags: Vec<String>,
}

/// Where a message was seen: folder (UTF-8) and flags, sorted system flags first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    folder: String,
    flags: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut verbose = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-v" | "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("usage: examples/demo.sh [--verbose]\n\n{}", HELP.trim());
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("demo: unknown argument `{other}` (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    match demo(verbose).await {
        Ok(()) => {
            println!("\ndemo: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "
Starts a local Dovecot and Postfix (as the tests do), runs tidings with the example rules,
delivers the sample messages in examples/mail and shows where each one went.
Needs root. --verbose streams tidings' log while it runs.";

async fn demo(verbose: bool) -> Result<()> {
    preflight()?;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let samples = samples(&repo.join("examples/mail"))?;
    let tidings_bin = tidings_binary()?;

    println!("Starting Dovecot and Postfix on 127.0.0.1 ...");
    let env = TestEnv::start_own();
    let user = env.new_user();
    println!(
        "  IMAPS 127.0.0.1:{}, LMTP 127.0.0.1:{}, in {}; mailbox user {}",
        env.imaps_port,
        env.lmtp_port,
        env.dir.display(),
        user.login
    );

    let config = write_config(&env, &user, &repo)?;
    println!("Starting {} run --config {}", tidings_bin.display(), config.display());
    let mut daemon = Daemon::start(&tidings_bin, &config, verbose)?;
    let mut outcome = run_demo(&env, &user, &samples, &mut daemon).await;
    if outcome.is_ok() {
        outcome = show_status(&tidings_bin, &config, &samples);
    }

    // Stop tidings whatever happened, and show its log.
    let stopped = daemon.stop();
    if outcome.is_err() {
        println!("\nserver logs:\n{}", env.log_tails());
    }
    if !verbose {
        println!("\ntidings log (stderr):");
        for line in daemon.log() {
            println!("  {line}");
        }
    }
    println!("\nStopping Dovecot and Postfix.");
    drop(env);
    outcome?;
    stopped
}

/// Waits for tidings to watch, delivers the samples, waits for their final places, prints.
async fn run_demo(env: &TestEnv, user: &User, samples: &[Sample], daemon: &mut Daemon) -> Result<()> {
    let started = Instant::now();
    daemon.wait_for_log("watching", DEADLINE)?;
    println!("  tidings is watching INBOX ({} ms after start)", started.elapsed().as_millis());

    println!("\nDelivering {} sample messages over LMTP ...", samples.len());
    let delivery = Instant::now();
    for sample in samples {
        env.deliver_lmtp(user, &sample.raw).await.with_context(|| format!("delivering {}", sample.file))?;
    }
    println!("  delivered in {} ms; waiting for tidings to act on them ...", delivery.elapsed().as_millis());

    let delivered_at = chrono::Utc::now();
    let deadline = delivery + DEADLINE;
    let seen = loop {
        let seen = look(env, user).await?;
        let placed = samples.iter().all(|s| seen.get(&s.message_id) == Some(&vec![s.expected()]));
        // A message no rule touches looks the same before and after tidings saw it: done only
        // once tidings has stored a plan for every message (its outbox then drains).
        if placed && planned(&daemon.log()) >= samples.len() {
            break seen;
        }
        if let Some(exited) = daemon.exited()? {
            print_table(samples, &seen);
            bail!("tidings exited ({exited}) before every message was handled");
        }
        if Instant::now() >= deadline {
            print_table(samples, &seen);
            if placed {
                bail!(
                    "every message is in place, but within {DEADLINE:?} tidings' log did not say \
                     `plans stored` for all {} messages (it said {})",
                    samples.len(),
                    planned(&daemon.log())
                );
            }
            bail!(
                "after {DEADLINE:?}, not every message is where the shipped rules put it \
                 (see the table: `expected ...` marks each difference)"
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let observed = delivery.elapsed();

    print_table(samples, &seen);
    println!("\nEvery message is where the rules put it.");
    match last_action(&daemon.log()) {
        Some(done) => println!(
            "  last action done {} ms after the first delivery (tidings' log; Dovecot tells IDLE\n  \
             clients of new mail ~0.5 s late); the demo, polling the mailboxes, saw it after {} ms.",
            (done - delivered_at).num_milliseconds(),
            observed.as_millis()
        ),
        None => println!("  the demo saw the final state {} ms after the first delivery", observed.as_millis()),
    }
    Ok(())
}

/// What `tidings status` and `tidings history` say about the run (read from the store, beside
/// the running daemon); fails unless status calls it healthy.
fn show_status(bin: &Path, config: &Path, samples: &[Sample]) -> Result<()> {
    let run = |args: &[&str]| -> Result<std::process::Output> {
        let output = Command::new(bin).args(args).arg("--config").arg(config).output()?;
        println!("\n$ tidings {}", args.join(" "));
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            println!("  {line}");
        }
        Ok(output)
    };
    if !run(&["status"])?.status.success() {
        bail!("tidings status did not call the daemon healthy");
    }
    if let Some(sample) = samples.first() {
        let id = format!("<{}>", sample.message_id);
        if !run(&["history", &id])?.status.success() {
            bail!("tidings history found nothing for {id}");
        }
    }
    Ok(())
}

/// How many messages tidings has stored plans for, by its `plans stored messages=N` lines.
fn planned(log: &[String]) -> usize {
    log.iter()
        .filter_map(|l| {
            l.split_once("plans stored messages=")?.1.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok()
        })
        .sum()
}

/// The timestamp of tidings' last `done` (an action carried out) log line.
fn last_action(log: &[String]) -> Option<chrono::DateTime<chrono::Utc>> {
    log.iter()
        .filter(|l| l.contains(": done"))
        .filter_map(|l| chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next()?).ok())
        .map(|t| t.to_utc())
        .max()
}

impl Sample {
    fn expected(&self) -> Seen {
        Seen { folder: self.folder.to_string(), flags: self.flags.clone() }
    }
}

/// The sample messages, by file name, each with its expected outcome.
fn samples(dir: &Path) -> Result<Vec<Sample>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    files.sort();
    let mut samples = Vec::new();
    for path in files {
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let Some((_, folder, flags)) = EXPECTED.iter().find(|(f, _, _)| *f == file) else {
            bail!("{file}: a sample message with no expected outcome in examples/demo.rs (EXPECTED)");
        };
        let raw = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let parsed = mail_parser::MessageParser::default().parse_headers(&raw);
        let parsed = parsed.as_ref();
        let message_id = parsed.and_then(|m| m.message_id()).map(str::to_string);
        let message_id = message_id.with_context(|| format!("{file} has no Message-ID"))?;
        let subject = parsed.and_then(|m| m.subject()).unwrap_or_default().to_string();
        let flags = sorted_flags(flags.iter().map(|f| f.to_string()).collect());
        samples.push(Sample { file, raw, message_id, subject, folder, flags });
    }
    if samples.len() != EXPECTED.len() {
        bail!("examples/mail has {} samples, EXPECTED in examples/demo.rs names {}", samples.len(), EXPECTED.len());
    }
    Ok(samples)
}

/// Every message of `user` in every mailbox, by Message-ID.
async fn look(env: &TestEnv, user: &User) -> Result<BTreeMap<String, Vec<Seen>>> {
    let mut seen: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
    for mailbox in env.mailboxes(user).await? {
        if mailbox.attributes.iter().any(|a| a.eq_ignore_ascii_case("\\Noselect")) {
            continue;
        }
        // The server names mailboxes in modified UTF-7 (`&ANw-berweisungen`); show UTF-8.
        let folder = tidings::imap::mutf7::decode(&mailbox.name).unwrap_or_else(|_| mailbox.name.clone());
        for message in env.list(user, &mailbox.name).await? {
            let id = message.message_id.unwrap_or_else(|| format!("(no Message-ID, UID {})", message.uid));
            seen.entry(id).or_default().push(Seen { folder: folder.clone(), flags: sorted_flags(message.flags) });
        }
    }
    Ok(seen)
}

/// System flags (`\Seen`) first, then keywords, each alphabetically.
fn sorted_flags(mut flags: Vec<String>) -> Vec<String> {
    flags.sort_by(|a, b| (!a.starts_with('\\'), a).cmp(&(!b.starts_with('\\'), b)));
    flags
}

fn print_table(samples: &[Sample], seen: &BTreeMap<String, Vec<Seen>>) {
    println!();
    let mut rows = vec![["sample".to_string(), "subject".into(), "folder".into(), "flags".into(), String::new()]];
    for sample in samples {
        let (folder, flags, verdict) = match seen.get(&sample.message_id).map(Vec::as_slice) {
            None | Some([]) => ("(not found)".to_string(), String::new(), "expected: delivered".to_string()),
            Some([one]) => {
                let verdict = if *one == sample.expected() {
                    "ok".to_string()
                } else {
                    format!("expected: {} {}", sample.folder, show_flags(&sample.flags))
                };
                (one.folder.clone(), show_flags(&one.flags), verdict)
            }
            Some(many) => {
                let folders: Vec<&str> = many.iter().map(|s| s.folder.as_str()).collect();
                (folders.join(" + "), String::new(), "expected: one copy".to_string())
            }
        };
        rows.push([sample.file.clone(), shorten(&sample.subject, 44), folder, flags, verdict]);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..4).map(width).collect();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            line += &format!("{cell:<w$}  ");
        }
        line += &row[4];
        println!("  {}", line.trim_end());
    }
}

fn show_flags(flags: &[String]) -> String {
    if flags.is_empty() { "-".to_string() } else { flags.join(" ") }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { s.chars().take(max - 3).collect::<String>() + "..." }
}

/// Root and the servers' binaries, checked before anything starts, with the fix in the message.
fn preflight() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1));
    if euid != Some("0") {
        bail!(
            "the demo needs root: it starts its own Dovecot and Postfix (Postfix's master must \
             start as root). Run `examples/demo.sh` as root."
        );
    }
    let binaries = ["/usr/sbin/dovecot", "/usr/lib/dovecot/lmtp", "/usr/lib/postfix/sbin/master"];
    if let Some(missing) = binaries.iter().find(|b| !Path::new(b).exists()) {
        bail!(
            "{missing} is missing: Dovecot and Postfix are not installed. `examples/demo.sh` \
             installs them (tests/install-deps.sh: dovecot-imapd dovecot-lmtpd postfix)."
        );
    }
    Ok(())
}

/// `target/<profile>/tidings`, next to this example (`target/<profile>/examples/demo`).
fn tidings_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the demo binary")?;
    let dir = exe.parent().and_then(Path::parent).context("the demo binary has no target dir")?;
    let bin = dir.join("tidings");
    if !bin.is_file() {
        bail!("{} is not built: run `examples/demo.sh` (it runs `cargo build --bin tidings` first)", bin.display());
    }
    Ok(bin)
}

/// A config like `examples/tidings.yaml` with one account, `demo`, on the local Dovecot.
fn write_config(env: &TestEnv, user: &User, repo: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = env.dir.join("demo");
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let password = dir.join("password");
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&password)?;
    std::io::Write::write_all(&mut file, user.password.as_bytes())?;
    // JSON strings are YAML strings: paths and names quoted whatever they contain.
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let path = |p: &Path| q(&p.display().to_string());
    let yaml = format!(
        "# Written by examples/demo.rs, modelled on examples/tidings.yaml.\n\
         rules: {rules}\n\
         plugins: {plugins}\n\
         state: {state}\n\
         accounts:\n\
         \x20 demo:\n\
         \x20   imap: {{ host: 127.0.0.1, port: {port}, tls: implicit }}\n\
         \x20   ca_file: {ca}\n\
         \x20   username: {login}\n\
         \x20   password_file: {password}\n\
         \x20   from: {from}\n\
         schedules: {{}}\n",
        rules = path(&repo.join("rules")),
        plugins = path(&repo.join("plugins")),
        state = path(&dir.join("state.db")),
        port = env.imaps_port,
        ca = path(&env.ca_file),
        login = q(&user.login),
        password = path(&password),
        from = q(&user.address),
    );
    let config = dir.join("tidings.yaml");
    std::fs::write(&config, yaml)?;
    Ok(config)
}

/// The `tidings run` child process and its log (stderr), read on a thread.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn start(bin: &Path, config: &Path, verbose: bool) -> Result<Daemon> {
        let mut child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if verbose {
                    println!("  tidings| {line}");
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        Ok(Daemon { child, log, reader: Some(reader) })
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// `Some(status)` once the child has exited.
    fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Polls until a log line contains `needle`; fails if tidings exits or time runs out.
    fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().iter().any(|l| l.contains(needle)) {
                return Ok(());
            }
            if let Some(status) = self.exited()? {
                bail!("tidings exited ({status}) before its log said `{needle}`");
            }
            if Instant::now() >= deadline {
                bail!("tidings' log did not say `{needle}` within {timeout:?}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, then waits; Ok only for a clean exit 0 within the deadline.
    fn stop(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            self.join_reader();
            bail!("tidings had already exited ({status})");
        }
        println!("\nStopping tidings (SIGTERM to pid {}) ...", self.child.id());
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if !sent.is_ok_and(|s| s.success()) {
            bail!("could not send SIGTERM to tidings (pid {})", self.child.id());
        }
        let asked = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if asked.elapsed() >= STOP_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.join_reader();
                bail!("tidings did not exit within {STOP_DEADLINE:?} of SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.join_reader();
        println!("  tidings exited after {} ms: {status}", asked.elapsed().as_millis());
        if !status.success() {
            bail!("tidings did not exit cleanly on SIGTERM: {status}");
        }
        Ok(())
    }

    /// Once the child is gone its stderr ends: collect the last lines.
    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Daemon {
    /// A demo that fails half-way must not leave tidings running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Removes terminal colour codes (`ESC [ ... letter`), should the log carry any.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
