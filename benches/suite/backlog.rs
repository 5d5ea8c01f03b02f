//! Backlog: `tidings run --once` against imapfilter on the same job (issue 8), on identical
//! copies of one big mailbox, alternating, in the same run.
//!
//! The mailbox is the real corpus three times over (10,755 messages, ~108 MB; `Seed`), loaded
//! once into one harness user. Before every run `BenchRun` and every folder a tool created are
//! deleted and `BenchRun` is made again as a server-side `UID COPY` of `Seed`, so each run
//! starts from the same unseen, unflagged mailbox. Both tools talk plain IMAP on loopback.
//!
//! The same job: benches/imapfilter/backlog.lua for imapfilter, benches/rules/backlog.rhai as
//! tidings' one rule file. After every run the folders' message counts, and the \Flagged and
//! $SAtalk counts, are read back; every run of both tools must end with the same numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::harness::{TestEnv, User};
use crate::raw_imap::Raw;
use crate::table::Table;

/// Folders the harness creates for every user; everything else is the tools' doing.
const KEPT: &[&str] = &["INBOX", "Seed", "Sent", "Drafts", "Trash", "Junk", "Archive"];

/// What one run left behind: messages per folder, plus flag counts in the folders that keep
/// flagged mail.
type Counts = BTreeMap<String, usize>;

struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    /// Busy CPU time of the whole machine during the run (the tool and the server together).
    machine_cpu_seconds: f64,
    peak_rss_kb: u64,
    counts: Counts,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tool {
    Tidings,
    Imapfilter,
}

pub async fn run(table: &mut Table) -> Result<()> {
    let imapfilter = which("imapfilter").context("imapfilter is not installed: run benches/run, which installs it")?;
    let time = PathBuf::from("/usr/bin/time");
    anyhow::ensure!(time.is_file(), "GNU time (/usr/bin/time) is not installed: run benches/run, which installs it");
    let runs: usize = env_number("TIDINGS_BENCH_RUNS", 5);
    let copies: usize = env_number("TIDINGS_BENCH_COPIES", 3);

    let env = TestEnv::shared();
    let user = env.new_user();
    let corpus = crate::corpus::real()?;
    let messages: Vec<&[u8]> = (0..copies).flat_map(|_| corpus.iter().map(Vec::as_slice)).collect();
    let bytes: usize = messages.iter().map(|m| m.len()).sum();
    let started = Instant::now();
    let mut raw = Raw::login(env.imap_port, &user.login, &user.password)?;
    raw.command("CREATE Seed")?;
    raw.append_all("Seed", &messages)?;
    eprintln!(
        "backlog: loaded {} messages ({:.0} MB) into Seed in {:.1} s",
        messages.len(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let work = tempfile::tempdir()?;
    if std::env::var_os("TIDINGS_BENCH_KEEP").is_some() {
        eprintln!("backlog: keeping every run's config and log in {}", work.path().display());
    }
    let mut results: Vec<(Tool, Measured)> = Vec::new();
    for run in 0..runs {
        // Alternate who goes first, so neither always meets a warmer server.
        let order = if run % 2 == 0 { [Tool::Imapfilter, Tool::Tidings] } else { [Tool::Tidings, Tool::Imapfilter] };
        for tool in order {
            reset(&mut raw)?;
            let dir = work.path().join(format!("{tool:?}-{run}"));
            std::fs::create_dir_all(&dir)?;
            let before = machine_busy()?;
            let (seconds, peak_rss_kb, cpu_seconds) = match tool {
                Tool::Tidings => run_tidings(&time, env, &user, &dir)?,
                Tool::Imapfilter => run_imapfilter(&time, &imapfilter, env, &user, &dir)?,
            };
            let machine_cpu_seconds = machine_busy()? - before;
            let counts = counts(&mut raw)?;
            eprintln!(
                "backlog: run {run} {tool:?}: {seconds:.2} s ({cpu_seconds:.2} s CPU; machine {machine_cpu_seconds:.2} s), \
                 peak RSS {:.1} MB, {}",
                peak_rss_kb as f64 / 1024.0,
                describe(&counts)
            );
            results.push((tool, Measured { seconds, cpu_seconds, machine_cpu_seconds, peak_rss_kb, counts }));
        }
    }

    let reference = &results[0].1.counts;
    for (tool, measured) in &results {
        if &measured.counts != reference {
            bail!(
                "{tool:?} left different folder counts:\n  {}\nexpected (first run):\n  {}",
                describe(&measured.counts),
                describe(reference)
            );
        }
    }
    let moved: usize =
        reference.iter().filter(|(k, _)| !k.starts_with("BenchRun") && !k.contains(' ')).map(|(_, n)| n).sum();
    anyhow::ensure!(moved > 0, "no message was moved: the job did nothing, which is not the job");

    let of = |which: Tool| -> Vec<&Measured> { results.iter().filter(|(t, _)| *t == which).map(|(_, m)| m).collect() };
    let (tidings, imapf) = (of(Tool::Tidings), of(Tool::Imapfilter));
    let t = median(tidings.iter().map(|m| m.seconds).collect());
    let i = median(imapf.iter().map(|m| m.seconds).collect());
    let ratio = t / i;
    let rss = |ms: &[&Measured]| ms.iter().map(|m| m.peak_rss_kb).max().unwrap_or(0) as f64 / 1024.0;
    let (t_rss, i_rss) = (rss(&tidings), rss(&imapf));
    let n = messages.len();
    table.add(
        format!("backlog: `run --once` / imapfilter, {n} messages, same job"),
        format!("{ratio:.2}x ({t:.2} s / {i:.2} s, medians of {runs} runs each, alternating)"),
        "<= 0.5x",
        ratio <= 0.5,
    );
    let cpu = |ms: &[&Measured]| median(ms.iter().map(|m| m.cpu_seconds).collect());
    table.note(
        "backlog: CPU time of the tool's own process (user + system)",
        format!("tidings {:.2} s, imapfilter {:.2} s (medians)", cpu(&tidings), cpu(&imapf)),
    );
    let machine = |ms: &[&Measured]| median(ms.iter().map(|m| m.machine_cpu_seconds).collect());
    table.note(
        "backlog: busy CPU time of the whole machine during the run (tool + Dovecot)",
        format!(
            "tidings run {:.2} s, imapfilter run {:.2} s (medians; {} cores)",
            machine(&tidings),
            machine(&imapf),
            cores()
        ),
    );
    table.add(
        "backlog: peak RSS",
        format!("tidings {t_rss:.0} MB, imapfilter {i_rss:.0} MB"),
        "tidings < 150 MB",
        t_rss < 150.0,
    );
    table.note("backlog: folders after every run, both tools (identical)", describe(reference));
    if std::env::var_os("TIDINGS_BENCH_KEEP").is_some() {
        let _ = work.keep();
    }
    Ok(())
}

/// Deletes everything a run created and makes BenchRun a fresh copy of Seed.
fn reset(raw: &mut Raw) -> Result<()> {
    let mut created: Vec<String> = raw.mailboxes()?.into_iter().filter(|m| !KEPT.contains(&m.as_str())).collect();
    // Children before their parents.
    created.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
    for mailbox in created {
        raw.command(&format!("DELETE \"{mailbox}\""))?;
    }
    raw.command("CREATE BenchRun")?;
    raw.command("SELECT Seed")?;
    raw.command("UID COPY 1:* BenchRun")?;
    raw.command("UNSELECT")?;
    Ok(())
}

/// Messages in every folder but the harness's empty ones, and the flags the job sets.
fn counts(raw: &mut Raw) -> Result<Counts> {
    let mut counts = Counts::new();
    for mailbox in raw.mailboxes()? {
        if mailbox == "Seed" {
            continue;
        }
        let n = raw.count(&mailbox)?;
        if n == 0 && KEPT.contains(&mailbox.as_str()) {
            continue;
        }
        counts.insert(mailbox.clone(), n);
        raw.command(&format!("EXAMINE \"{mailbox}\""))?;
        for (flag, criteria) in [("\\Flagged", "FLAGGED"), ("$SAtalk", "KEYWORD $SAtalk")] {
            let n = raw.search_count(criteria)?;
            if n > 0 {
                counts.insert(format!("{mailbox} {flag}"), n);
            }
        }
        raw.command("UNSELECT")?;
    }
    Ok(counts)
}

fn run_tidings(time: &Path, env: &TestEnv, user: &User, dir: &Path) -> Result<(f64, u64, f64)> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.join("password"), &user.password)?;
    let config = format!(
        "state: state.db\nrules: {rules}\nplugins: {plugins}\naccounts:\n  bench:\n    imap: {{ host: 127.0.0.1, port: {port}, tls: none }}\n    allow_insecure: true\n    username: {login}\n    password_file: password\n    mailboxes:\n      - name: BenchRun\n        backfill: all\n",
        rules = repo.join("benches/rules").display(),
        plugins = repo.join("plugins").display(),
        port = env.imap_port,
        login = user.login,
    );
    std::fs::write(dir.join("tidings.yaml"), config)?;
    let mut command = Command::new(time);
    command.arg("-f").arg("%e %M %U %S").arg("-o").arg(dir.join("time"));
    // For a profile: TIDINGS_BENCH_PERF=1 records each tidings run with perf (in the kept dir).
    if std::env::var_os("TIDINGS_BENCH_PERF").is_some() {
        command.args(["perf", "record", "-F", "1999", "-g", "-o"]).arg(dir.join("perf.data")).arg("--");
    }
    command.arg(env!("CARGO_BIN_EXE_tidings"));
    command.args(["run", "--once", "--config"]).arg(dir.join("tidings.yaml"));
    timed(command, dir, "tidings")
}

fn run_imapfilter(time: &Path, imapfilter: &Path, env: &TestEnv, user: &User, dir: &Path) -> Result<(f64, u64, f64)> {
    let job =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/imapfilter/backlog.lua"))?;
    // The account line, plus no STARTTLS: both tools run plain IMAP, and imapfilter would
    // otherwise stop to ask whether to trust the harness's certificate.
    let account = format!(
        "options.starttls = false\nacct = IMAP {{ server = '127.0.0.1', port = {}, username = '{}', password = '{}' }}\n",
        env.imap_port, user.login, user.password
    );
    std::fs::write(dir.join("config.lua"), format!("{account}{job}"))?;
    let mut command = Command::new(time);
    command.arg("-f").arg("%e %M %U %S").arg("-o").arg(dir.join("time")).arg(imapfilter);
    command.arg("-c").arg(dir.join("config.lua"));
    command.env("HOME", dir);
    timed(command, dir, "imapfilter")
}

/// Runs `command`, logging to `dir/log`; the wall time as measured here (process start to
/// exit), the peak RSS in KiB and the CPU seconds (user + system) as GNU time saw them.
fn timed(mut command: Command, dir: &Path, what: &str) -> Result<(f64, u64, f64)> {
    let log = std::fs::File::create(dir.join("log"))?;
    let started = Instant::now();
    let status = command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).status()?;
    let seconds = started.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    anyhow::ensure!(status.success(), "{what} failed ({status}); its output:\n{log}");
    let time = std::fs::read_to_string(dir.join("time"))?;
    let fields: Vec<&str> = time.lines().last().unwrap_or_default().split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let (Some(peak), Some(user), Some(system)) = (number(1), number(2), number(3)) else {
        bail!("cannot read GNU time's output: {time:?}")
    };
    Ok((seconds, peak as u64, user + system))
}

/// Busy CPU seconds of the whole machine since boot (every core: user, nice, system, irq,
/// softirq, steal), from /proc/stat.
fn machine_busy() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    anyhow::ensure!(fields.len() >= 8, "unexpected /proc/stat: {:?}", stat.lines().next());
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7];
    Ok(busy as f64 / crate::footprint::clock_ticks()? as f64)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn describe(counts: &Counts) -> String {
    counts.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}
