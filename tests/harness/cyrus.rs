//! Cyrus IMAP 3.6 as a second real server: IMAP, IMAPS and LMTP on loopback, from the temp dir.
//!
//! `apt-get install cyrus-imapd` would remove dovecot-imapd (both provide imap-server), so
//! tests/install-deps.sh installs cyrus-common and sasl2-bin and unpacks the cyrus-imapd
//! package (imapd, idled) into [`IMAPD_ROOT`]. Cyrus's `master -C imapd.conf -M cyrus.conf`
//! then runs self-contained: started as root, it drops to the `cyrus` user. Passwords are in a
//! sasldb file in the temp dir. Cyrus logs to syslog, which the tests do not run; the master's
//! stderr is the log kept.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::process::{Janitor, Probe, Supervised, wait_ready};
use super::servers::{Layout, Ports, fill, gid, path_str, uid};
use super::tls::Pki;

/// Where tests/install-deps.sh unpacks the cyrus-imapd package.
pub const IMAPD_ROOT: &str = "/opt/tidings-tests/cyrus-imapd";
/// cyrus-common's binaries (master, lmtpd, ctl_cyrusdb).
const BIN: &str = "/usr/lib/cyrus/bin";
const SASLPASSWD: &str = "/usr/sbin/saslpasswd2";

fn imapd_bin() -> PathBuf {
    Path::new(IMAPD_ROOT).join("usr/lib/cyrus/bin")
}

/// Panics, naming what to install, if Cyrus is missing: these tests fail loudly, never skip.
pub fn check_installed() {
    let imapd = imapd_bin();
    let required = [imapd.join("imapd"), imapd.join("idled"), Path::new(BIN).join("master"), SASLPASSWD.into()];
    let missing: Vec<String> = required.iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect();
    if !missing.is_empty() {
        panic!(
            "the Cyrus tests need Cyrus IMAP 3.6, but {} is missing.\n\
             Run tests/install-deps.sh (it installs cyrus-common and sasl2-bin and unpacks \
             cyrus-imapd into {IMAPD_ROOT} without removing Dovecot)",
            missing.join(", ")
        );
    }
}

/// The master's stderr, the one Cyrus log there is.
pub fn logs(layout: &Layout) -> Vec<PathBuf> {
    vec![layout.dir.join("log/cyrus.stderr")]
}

/// Creates Cyrus's tree in the temp dir and writes imapd.conf and cyrus.conf.
pub fn write_configs(layout: &Layout, ports: &Ports, pki: &Pki) -> Result<()> {
    // Cyrus's processes run as `cyrus` and must traverse the temp dir and read the key.
    fs::set_permissions(&layout.dir, fs::Permissions::from_mode(0o755))?;
    fs::create_dir_all(layout.dir.join("log"))?;
    let (cyrus, mail) = (uid("cyrus")?, gid("mail")?);
    for sub in ["cyrus", "cyrus/conf", "cyrus/conf/socket", "cyrus/spool", "cyrus/sieve"] {
        let dir = layout.dir.join(sub);
        fs::create_dir_all(&dir)?;
        chown(&dir, Some(cyrus), Some(mail))?;
    }
    let conf = layout.dir.join("cyrus/imapd.conf");
    let vars = vec![
        ("@DIR@", path_str(&layout.dir)?.to_string()),
        ("@CERT@", path_str(&pki.cert_file)?.to_string()),
        ("@KEY@", path_str(&pki.key_file)?.to_string()),
        ("@CONF@", path_str(&conf)?.to_string()),
        ("@BIN@", BIN.to_string()),
        ("@IMAPD_BIN@", path_str(&imapd_bin())?.to_string()),
        ("@IMAP@", ports.imap.to_string()),
        ("@IMAPS@", ports.imaps.to_string()),
        ("@LMTP@", ports.lmtp.to_string()),
    ];
    fs::write(&conf, fill(include_str!("cyrus-imapd.conf"), &vars))?;
    fs::write(layout.dir.join("cyrus/cyrus.conf"), fill(include_str!("cyrus.conf"), &vars))?;
    Ok(())
}

/// Creates a Cyrus user (`local@domain`) in the sasldb; its mailboxes appear at the first login
/// or delivery (autocreate).
pub fn add_user(layout: &Layout, login: &str, password: &str) -> Result<()> {
    // saslpasswd2 rewrites the one sasldb file: one writer at a time.
    static SASLDB: Mutex<()> = Mutex::new(());
    let _one = SASLDB.lock().unwrap_or_else(|e| e.into_inner());
    let (local, domain) = login.split_once('@').with_context(|| format!("login {login} has no domain"))?;
    let db = layout.dir.join("cyrus/sasldb2");
    let mut child = Command::new(SASLPASSWD)
        .args(["-f", path_str(&db)?, "-p", "-c", "-u", domain, local])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {SASLPASSWD}"))?;
    child.stdin.take().expect("stdin is piped").write_all(password.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("saslpasswd2 for {login} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Cyrus reads the file as `cyrus`.
    chown(&db, Some(uid("cyrus")?), Some(gid("mail")?))?;
    Ok(())
}

/// Logs in once as the user over plaintext IMAP, so Cyrus creates its INBOX and special-use
/// folders now, one user at a time. Seen here with Cyrus 3.6.1 when two new users were first
/// used at the same moment (one by a login, one by an LMTP delivery): a message for one was
/// stored in the other's INBOX. Creating the mailboxes one user at a time stopped it; the
/// cause inside Cyrus was not pinned down.
pub fn create_mailboxes(port: u16, login: &str, password: &str) -> Result<()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    for (tag, command) in [("a", format!("LOGIN \"{login}\" \"{password}\"")), ("b", "LOGOUT".to_owned())] {
        stream.write_all(format!("{tag} {command}\r\n").as_bytes())?;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("Cyrus closed the connection during {tag} (creating mailboxes for {login})");
            }
            if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                if !status.starts_with("OK") {
                    bail!("Cyrus answered {line:?} to the first login of {login}");
                }
                break;
            }
        }
    }
    Ok(())
}

/// Starts Cyrus's master in the foreground and waits for IMAP and LMTP greetings.
pub fn start_cyrus(layout: &Layout, ports: &Ports, janitor: &Janitor) -> Result<Supervised> {
    let conf = layout.dir.join("cyrus/imapd.conf");
    let services = layout.dir.join("cyrus/cyrus.conf");
    let pid = layout.dir.join("cyrus/master.pid");
    let master = Path::new(BIN).join("master");
    // -D keeps stdout and stderr open, so startup errors reach the log file.
    let argv = [path_str(&master)?, "-D", "-C", path_str(&conf)?, "-M", path_str(&services)?, "-p", path_str(&pid)?];
    let server = Supervised::spawn("cyrus", &argv, &logs(layout)[0], janitor)?;
    let probes =
        [(ports.imap, Probe::Greets("* OK")), (ports.imaps, Probe::Accepts), (ports.lmtp, Probe::Greets("220 "))];
    wait_ready(&server, &probes, &logs(layout))?;
    Ok(server)
}
