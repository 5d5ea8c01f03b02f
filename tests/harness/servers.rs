//! Dovecot and Postfix: configs written into the temp dir, start and stop.
//!
//! Nothing under /etc is read for configuration or written: Dovecot runs
//! with `-c FILE`, Postfix's master with `-c DIR`, and every path they use
//! (sockets, queue, state, logs, maildirs) lies in the temp dir.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};

use super::process::{Janitor, Probe, Supervised, run_check, wait_ready};
use super::tls::Pki;

/// The mail domain whose users live in Dovecot; every other domain is
/// delivered to the catch-all mailbox.
pub const DOMAIN: &str = "tidings.test";
/// Login (and address) of the catch-all mailbox.
pub const CATCHALL: &str = "catchall@tidings.test";

const DOVECOT: &str = "/usr/sbin/dovecot";
const DOVECONF: &str = "/usr/bin/doveconf";
const POSTFIX_MASTER: &str = "/usr/lib/postfix/sbin/master";
const POSTCONF: &str = "/usr/sbin/postconf";
/// Binaries whose absence means the Debian packages are missing.
const REQUIRED: [&str; 6] =
    [DOVECOT, DOVECONF, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/lmtp", POSTFIX_MASTER, POSTCONF];

/// Panics, naming the packages, if Dovecot or Postfix is not installed, or
/// if not running as root (Postfix's master must start as root): these
/// tests must fail loudly rather than skip.
pub fn check_installed() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).map(str::split_whitespace);
    if uid.and_then(|mut ids| ids.nth(1)) != Some("0") {
        panic!("the integration tests start Dovecot and Postfix, which needs root: run them as root");
    }
    let missing: Vec<&str> = REQUIRED.iter().copied().filter(|p| !Path::new(p).exists()).collect();
    if !missing.is_empty() {
        panic!(
            "the integration tests need a local Dovecot and Postfix, but {} is missing.\n\
             Install the Debian packages: apt-get install dovecot-imapd dovecot-lmtpd postfix\n\
             then run: cargo test --test tests",
            missing.join(", ")
        );
    }
}

/// TCP ports on 127.0.0.1, all different.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// IMAP, plaintext with STARTTLS.
    pub imap: u16,
    /// IMAP over implicit TLS.
    pub imaps: u16,
    /// Dovecot LMTP (plaintext), used by Postfix and by `deliver_lmtp`.
    pub lmtp: u16,
    /// SMTP submission, plaintext with STARTTLS, AUTH allowed either way.
    pub submission: u16,
    /// SMTP submission over implicit TLS.
    pub smtps: u16,
}

impl Ports {
    /// Asks the kernel for free ports; all five listeners are held at once,
    /// so the ports differ from each other.
    pub fn free() -> Result<Ports> {
        let listeners = (0..5).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<Vec<_>>>()?;
        let p = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<std::io::Result<Vec<_>>>()?;
        Ok(Ports { imap: p[0], imaps: p[1], lmtp: p[2], submission: p[3], smtps: p[4] })
    }
}

/// Where everything lives inside the temp dir. Kept short: unix socket
/// paths are limited to 107 bytes, hence a dir directly in /tmp.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The temp dir itself.
    pub dir: PathBuf,
}

impl Layout {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    /// Dovecot's passwd-file for `login` (one file per user).
    pub fn users_file(&self, login: &str) -> PathBuf {
        self.path("dovecot/users").join(login)
    }
    /// Log files, for failure messages.
    pub fn logs(&self) -> Vec<PathBuf> {
        ["log/dovecot.log", "log/dovecot.stderr", "log/postfix.log", "log/postfix.stderr"]
            .iter()
            .map(|l| self.path(l))
            .collect()
    }
    fn dovecot_log(&self) -> Vec<PathBuf> {
        self.logs()[..2].to_vec()
    }
    fn postfix_log(&self) -> Vec<PathBuf> {
        self.logs()[2..].to_vec()
    }
    fn vars(&self, ports: &Ports) -> Vec<(&'static str, String)> {
        let d = |rel: &str| self.path(rel).display().to_string();
        vec![
            ("@DIR@", self.dir.display().to_string()),
            ("@RUN@", d("run")),
            ("@LOG@", d("log")),
            ("@CATCHALL@", CATCHALL.to_string()),
            ("@PF@", d("postfix")),
            ("@MAILDOMAIN@", DOMAIN.to_string()),
            // Regexp-escaped, for the Postfix regexp tables.
            ("@DOMAIN@", DOMAIN.replace('.', r"\.")),
            ("@IMAP@", ports.imap.to_string()),
            ("@IMAPS@", ports.imaps.to_string()),
            ("@LMTP@", ports.lmtp.to_string()),
            ("@SUBMISSION@", ports.submission.to_string()),
            ("@SMTPS@", ports.smtps.to_string()),
        ]
    }
}

/// Creates the directory tree and writes both servers' configs.
pub fn write_configs(layout: &Layout, ports: &Ports, pki: &Pki) -> Result<()> {
    // The temp dir is 0700 by default; Dovecot's mail processes (uid mail)
    // and Postfix's (uid postfix) must be able to traverse it.
    fs::set_permissions(&layout.dir, fs::Permissions::from_mode(0o755))?;
    for sub in ["log", "dovecot/users", "postfix/conf"] {
        fs::create_dir_all(layout.path(sub))?;
    }
    let mail = layout.path("mail");
    fs::create_dir_all(&mail)?;
    chown(&mail, Some(uid("mail")?), Some(gid("mail")?))?;
    add_user(layout, CATCHALL, "catchall")?;

    let mut vars = layout.vars(ports);
    vars.push(("@CERT@", path_str(&pki.cert_file)?.to_string()));
    vars.push(("@KEY@", path_str(&pki.key_file)?.to_string()));
    let conf = layout.path("dovecot/dovecot.conf");
    fs::write(&conf, fill(include_str!("dovecot.conf"), &vars))?;
    run_check(&[DOVECONF, "-c", path_str(&conf)?, "-n"])?;

    let pf = layout.path("postfix/conf");
    for name in ["main.cf", "master.cf", "virtual_mailbox.regexp", "catchall.regexp"] {
        let template = match name {
            "main.cf" => include_str!("postfix-main.cf"),
            "master.cf" => include_str!("postfix-master.cf"),
            "virtual_mailbox.regexp" => "/@@DOMAIN@$/ OK\n",
            _ => "!/@@DOMAIN@$/ @CATCHALL@\n",
        };
        let file = pf.join(name);
        fs::write(&file, fill(template, &vars))?;
        backdate(&file)?;
    }
    make_postfix_dirs(layout)?;
    run_check(&[POSTCONF, "-c", path_str(&pf)?, "-n"])?;
    run_check(&[POSTCONF, "-c", path_str(&pf)?, "-M"])?;
    Ok(())
}

/// Creates a Dovecot user; written to a temp name and renamed, so Dovecot
/// never reads a half-written file.
pub fn add_user(layout: &Layout, login: &str, password: &str) -> Result<()> {
    let file = layout.users_file(login);
    let tmp = file.with_file_name(format!(".{login}.tmp"));
    fs::write(&tmp, format!("{login}:{{PLAIN}}{password}::::::\n"))?;
    fs::rename(&tmp, &file).with_context(|| format!("creating {}", file.display()))
}

/// Raises the soft fd limit to the hard one, then execs `"$@"`.
const RAISE_NOFILE: &str = r#"ulimit -S -n "$(ulimit -H -n)" && exec "$@""#;

/// Starts Dovecot in the foreground and waits for IMAP and LMTP greetings.
pub fn start_dovecot(layout: &Layout, ports: &Ports, janitor: &Janitor) -> Result<Supervised> {
    let conf = layout.path("dovecot/dovecot.conf");
    // Through sh, to raise the soft RLIMIT_NOFILE to the hard limit first (no `pre_exec`:
    // `unsafe` is forbidden): its processes inherit it, and 1,000 sessions (the footprint
    // benchmark) need more fds than a soft limit of 1024. `exec` keeps the pid.
    let argv = ["sh", "-c", RAISE_NOFILE, "dovecot", DOVECOT, "-F", "-c", path_str(&conf)?];
    // stderr goes to a file: a caller reading it to the end would otherwise
    // hang for Dovecot's lifetime.
    let server = Supervised::spawn("dovecot", &argv, &layout.dovecot_log()[1], janitor)?;
    let probes =
        [(ports.imap, Probe::Greets("* OK")), (ports.imaps, Probe::Accepts), (ports.lmtp, Probe::Greets("220 "))];
    wait_ready(&server, &probes, &layout.dovecot_log())?;
    Ok(server)
}

/// Starts Postfix's master in the foreground and waits for the SMTP greeting.
pub fn start_postfix(layout: &Layout, ports: &Ports, janitor: &Janitor) -> Result<Supervised> {
    let pf = layout.path("postfix/conf");
    // `master` directly, not `postfix start`: the postfix-script wrapper
    // forks master into the background (or, with start-fg, keeps it as a
    // grandchild), so the supervisor could not signal and reap it.
    let argv = [POSTFIX_MASTER, "-c", path_str(&pf)?];
    // Each smtpd asks Dovecot's auth socket for SASL mechanisms when it
    // starts and exits if the socket is missing; the greeting probe below
    // starts one, so Dovecot (started in parallel) must have created it.
    wait_for_file(&layout.path("run/auth-postfix"), "Dovecot's auth socket for Postfix")?;
    let server = Supervised::spawn("postfix", &argv, &layout.postfix_log()[1], janitor)?;
    let probes = [(ports.submission, Probe::Greets("220 ")), (ports.smtps, Probe::Accepts)];
    wait_ready(&server, &probes, &layout.postfix_log())?;
    Ok(server)
}

/// Asks Postfix to try every queued message now, deferred ones and those whose retry time lies
/// ahead included: the triggers `postqueue -f` has sent to the queue manager (flush dead
/// destinations, scan ignoring timestamps, scan deferred, scan incoming), written to its socket
/// directly, since this Postfix runs no pickup service for postqueue to check first.
pub fn flush_postfix(layout: &Layout) -> Result<()> {
    let socket = layout.path("postfix/queue/public/qmgr");
    let mut qmgr = std::os::unix::net::UnixStream::connect(&socket)
        .with_context(|| format!("connecting to Postfix's queue manager at {}", socket.display()))?;
    std::io::Write::write_all(&mut qmgr, b"FADI").context("triggering Postfix's queue manager")
}

fn wait_for_file(path: &Path, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        if Instant::now() > deadline {
            bail!("{what} ({}) did not appear in 10 s; is Dovecot running?", path.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The queue tree `postfix check` would create (see /etc/postfix/postfix-files);
/// done here because master itself does not, and the check is slow and silent.
fn make_postfix_dirs(layout: &Layout) -> Result<()> {
    let (postfix, postdrop) = (uid("postfix")?, gid("postdrop")?);
    let q = layout.path("postfix/queue");
    for (rel, owner, group, mode) in [
        ("", None, None, 0o755),
        ("pid", None, None, 0o755),
        ("maildrop", Some(postfix), Some(postdrop), 0o730),
        ("public", Some(postfix), Some(postdrop), 0o710),
    ] {
        mkdir(&q.join(rel), owner, group, mode)?;
    }
    for rel in ["active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming"] {
        mkdir(&q.join(rel), Some(postfix), None, 0o700)?;
    }
    for rel in ["private", "saved", "trace"] {
        mkdir(&q.join(rel), Some(postfix), None, 0o700)?;
    }
    mkdir(&layout.path("postfix/data"), Some(postfix), None, 0o700)
}

fn mkdir(path: &Path, owner: Option<u32>, group: Option<u32>, mode: u32) -> Result<()> {
    fs::create_dir_all(path)?;
    chown(path, owner, group)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Postfix waits ~2 s at start when its config files are brand new
/// (it guards against a file still being written); an old mtime avoids that.
fn backdate(path: &Path) -> Result<()> {
    let old = SystemTime::now() - Duration::from_secs(60);
    fs::File::options().write(true).open(path)?.set_modified(old)?;
    Ok(())
}

pub(super) fn fill(template: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(template.to_string(), |t, (k, v)| t.replace(k, v))
}

pub(super) fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", path.display()))
}

/// A user's uid from /etc/passwd (read only).
pub(super) fn uid(name: &str) -> Result<u32> {
    id_from("/etc/passwd", name)
}

/// A group's gid from /etc/group (read only).
pub(super) fn gid(name: &str) -> Result<u32> {
    id_from("/etc/group", name)
}

fn id_from(file: &str, name: &str) -> Result<u32> {
    let text = fs::read_to_string(file)?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .with_context(|| format!("no `{name}` in {file} (is the Debian package installed?)"))
}
