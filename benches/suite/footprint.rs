//! Footprint: 1,000 watched mailboxes over TLS, 100 accounts of 10 (`TIDINGS_BENCH_ACCOUNTS`,
//! `TIDINGS_BENCH_MAILBOXES`), idling in one `tidings run`: its RSS, and its CPU over
//! `TIDINGS_BENCH_IDLE_SECS` (60) of idling (issue 8: under 150 MB and under 1% of a core).
//!
//! Every account is its own Dovecot user with INBOX and 9 more mailboxes, on the IMAPS port,
//! with `connections:` one more than its mailboxes (the executor's), so every mailbox gets an
//! IDLE connection of its own and none is polled; the bench checks that in the log (every
//! watcher's "watching" line, every account's watch plan) and counts the process's established
//! TLS connections to the server, so the numbers are those of 1,000 real sessions.
//!
//! Measured from /proc: VmRSS sampled every second while idling (the largest sample is the
//! result), VmHWM (the peak, start-up included), and utime+stime before and after the idle
//! window. Nothing is delivered meanwhile: this is the cost of waiting.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};

use crate::harness::{TestEnv, User};
use crate::table::Table;

/// Issue 8's targets.
const RSS_TARGET_MB: f64 = 150.0;
const CPU_TARGET_PERCENT: f64 = 1.0;

/// Log lines, as the daemon writes them with `RUST_LOG=info`.
const WATCHING: &str = "watching uidvalidity";
const POLLED: &str = "polled every";

pub async fn run(table: &mut Table) -> Result<()> {
    let accounts: usize = env_number("TIDINGS_BENCH_ACCOUNTS", 100);
    let per_account: usize = env_number("TIDINGS_BENCH_MAILBOXES", 10);
    let idle_secs: u64 = env_number("TIDINGS_BENCH_IDLE_SECS", 60);
    let mailboxes = accounts * per_account;
    ensure!(per_account >= 1, "TIDINGS_BENCH_MAILBOXES must be at least 1");

    let env = TestEnv::shared();
    let started = Instant::now();
    let users: Vec<User> = (0..accounts).map(|_| env.new_user()).collect();
    let names: Vec<String> =
        std::iter::once("INBOX".to_owned()).chain((1..per_account).map(|i| format!("Box{i}"))).collect();
    // A few logins at a time: creating 900 mailboxes is set-up, not what is measured.
    futures::stream::iter(users.iter().map(|user| create_mailboxes(env, user, &names[1..])))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!(
        "footprint: {accounts} users with {per_account} mailboxes each created in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let work = tempfile::tempdir()?;
    let config = write_config(work.path(), env, &users, &names)?;
    let mut daemon = Daemon::start(&config)?;
    let outcome = measure(&mut daemon, env, accounts, mailboxes, idle_secs, table).await;
    let stopped = daemon.stop();
    outcome?;
    stopped
}

async fn measure(
    daemon: &mut Daemon,
    env: &TestEnv,
    accounts: usize,
    mailboxes: usize,
    idle_secs: u64,
    table: &mut Table,
) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(180);
    while daemon.count(WATCHING) < mailboxes {
        if Instant::now() > deadline || daemon.exited() {
            bail!(
                "{} of {mailboxes} watchers were watching after {:.0} s; the log ends:\n{}\n{}",
                daemon.count(WATCHING),
                started.elapsed().as_secs_f64(),
                daemon.tail(30),
                env.log_tails()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let up = started.elapsed().as_secs_f64();
    eprintln!("footprint: {mailboxes} watchers watching {up:.1} s after start");
    ensure!(daemon.count("idle=true") >= mailboxes, "not every watcher has IDLE:\n{}", daemon.matching("watching"));
    ensure!(daemon.count(POLLED) == 0, "some mailboxes are polled, not IDLE-watched:\n{}", daemon.matching(POLLED));
    ensure!(
        daemon.count("watch plan:") == accounts,
        "expected {accounts} watch plans:\n{}",
        daemon.matching("watch plan")
    );
    // The last checkpoints are written and the start-up's garbage freed.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let pid = daemon.pid();
    let sessions = established_to(pid, env.imaps_port)?;
    ensure!(sessions >= mailboxes, "tidings holds {sessions} TLS connections to the server, expected {mailboxes}");
    eprintln!("footprint: {sessions} established IMAPS connections; idling for {idle_secs} s");
    let ticks = clock_ticks()?;
    let (cpu0, t0) = (cpu_ticks(pid)?, Instant::now());
    let mut rss_max = 0;
    while t0.elapsed() < Duration::from_secs(idle_secs) {
        rss_max = rss_max.max(status_kb(pid, "VmRSS")?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (cpu1, elapsed) = (cpu_ticks(pid)?, t0.elapsed().as_secs_f64());
    rss_max = rss_max.max(status_kb(pid, "VmRSS")?);
    let hwm = status_kb(pid, "VmHWM")?;
    let threads = status_kb(pid, "Threads")?;
    let cpu_percent = (cpu1 - cpu0) as f64 / ticks as f64 / elapsed * 100.0;
    let after = established_to(pid, env.imaps_port)?;
    ensure!(after >= mailboxes, "only {after} of {mailboxes} connections were left after idling:\n{}", daemon.tail(30));
    let watching = daemon.count(WATCHING);
    ensure!(
        watching == mailboxes,
        "{watching} \"watching\" lines for {mailboxes} mailboxes: some watchers reconnected"
    );

    let rss_mb = rss_max as f64 / 1024.0;
    let per_session_kb = rss_max as f64 / mailboxes as f64;
    eprintln!(
        "footprint: RSS {rss_mb:.1} MB (peak {:.1} MB, {threads} threads), CPU {cpu_percent:.3}% of a core over \
         {elapsed:.0} s",
        hwm as f64 / 1024.0
    );
    table.add(
        format!("footprint: RSS, {mailboxes} idle IMAPS mailboxes ({accounts} accounts)"),
        format!(
            "{rss_mb:.1} MB ({per_session_kb:.0} KB per mailbox; peak while starting {:.1} MB)",
            hwm as f64 / 1024.0
        ),
        format!("< {RSS_TARGET_MB:.0} MB"),
        rss_mb < RSS_TARGET_MB,
    );
    table.add(
        format!("footprint: CPU, {mailboxes} idle mailboxes"),
        format!("{cpu_percent:.3}% of a core over {elapsed:.0} s"),
        format!("< {CPU_TARGET_PERCENT:.0}%"),
        cpu_percent < CPU_TARGET_PERCENT,
    );
    table.note("footprint: start-up", format!("{mailboxes} watching after {up:.1} s, {sessions} TLS sessions held"));
    Ok(())
}

/// Creates `names` for `user` (INBOX is there already).
async fn create_mailboxes(env: &TestEnv, user: &User, names: &[String]) -> Result<()> {
    let mut session = env.imap(user).await?;
    for name in names {
        session.create(name).await.with_context(|| format!("creating {name} for {}", user.login))?;
    }
    session.logout().await?;
    Ok(())
}

/// One account per user, every mailbox IDLE-watched, one trivial rule.
fn write_config(dir: &Path, env: &TestEnv, users: &[User], names: &[String]) -> Result<std::path::PathBuf> {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    std::fs::write(
        rules.join("flag.rhai"),
        "if msg.subject.starts_with(\"urgent\") {\n    flag(\"\\\\Flagged\");\n}\n",
    )?;
    std::fs::create_dir_all(dir.join("passwords"))?;
    let mut yaml = String::from("state: state.db\nrules: rules\naccounts:\n");
    for (i, user) in users.iter().enumerate() {
        let password = format!("passwords/a{i:03}");
        std::fs::write(dir.join(&password), &user.password)?;
        // The watchers and the executor: nothing is left to poll.
        let connections = names.len() + 1;
        write!(
            yaml,
            "  a{i:03}:\n    imap: {{ host: 127.0.0.1, port: {port}, tls: implicit }}\n    ca_file: {ca}\n    \
             username: {login}\n    password_file: {password}\n    from: {login}\n    connections: {connections}\n    \
             mailboxes: [{boxes}]\n",
            port = env.imaps_port,
            ca = env.ca_file.display(),
            login = user.login,
            boxes = names.join(", "),
        )?;
    }
    let config = dir.join("tidings.yaml");
    std::fs::write(&config, yaml)?;
    Ok(config)
}

/// The release `tidings run`, its stderr collected by a thread.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(config: &Path) -> Result<Daemon> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start tidings")?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log lock").push(line);
            }
        });
        Ok(Daemon { child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn count(&self, needle: &str) -> usize {
        self.log.lock().expect("log lock").iter().filter(|l| l.contains(needle)).count()
    }

    fn matching(&self, needle: &str) -> String {
        let log = self.log.lock().expect("log lock");
        log.iter().filter(|l| l.contains(needle)).take(20).cloned().collect::<Vec<_>>().join("\n")
    }

    fn tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log lock");
        log[log.len().saturating_sub(n)..].join("\n")
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 20 s.
    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "tidings exited with {status}:\n{}", self.tail(20));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("tidings did not stop within 20 s of SIGTERM:\n{}", self.tail(20))
    }
}

/// How many of `pid`'s sockets are established TCP connections to 127.0.0.1:`port`.
fn established_to(pid: u32, port: u16) -> Result<usize> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        // An fd closed since the listing is no socket of ours any more.
        let Ok(target) = std::fs::read_link(entry?.path()) else { continue };
        if let Some(inode) = target.to_str().and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')) {
            inodes.insert(inode.to_owned());
        }
    }
    let remote = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))?;
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode; 01 = ESTABLISHED.
    let established = table.lines().skip(1).map(str::split_whitespace).filter_map(|mut f| {
        let (_, _, rem, st) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let inode = f.nth(5)?;
        (rem == remote && st == "01").then(|| inode.to_owned())
    });
    Ok(established.filter(|inode| inodes.contains(inode)).count())
}

/// utime + stime of every thread of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')').context("unexpected /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// A `kB` (or plain number) line of /proc/PID/status.
fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'));
    let value = line.and_then(|v| v.split_whitespace().next()).with_context(|| format!("no {key} for pid {pid}"))?;
    Ok(value.parse()?)
}

/// Clock ticks per second, the unit of /proc's CPU times.
pub fn clock_ticks() -> Result<u64> {
    let out = Command::new("getconf").arg("CLK_TCK").output().context("cannot run getconf CLK_TCK")?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
