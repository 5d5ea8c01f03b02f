//! A real PostgreSQL for the tests of the shared store (issue 10), as the other servers are run:
//! its own cluster in a temp dir in /tmp, on a free 127.0.0.1 port, stopped and removed with the
//! test binary (see `process.rs`). `initdb` and `postgres` refuse to run as root, so both run as
//! the `postgres` user (Debian's package creates it) through `setpriv`, which execs in place: the
//! supervisor's SIGTERM reaches the server itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::process::{Janitor, Probe, Supervised, log_tails, wait_ready};

/// The database role the tests connect as (trust authentication, loopback only).
pub const ROLE: &str = "tidings";

/// One running cluster.
#[derive(Debug)]
pub struct Postgres {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The temp dir: data directory, socket, log.
    pub dir: PathBuf,
    /// The CA that signed the server's certificate (for localhost and 127.0.0.1); TLS is on.
    pub ca_file: PathBuf,
    server: Supervised,
    /// How the server was started (for [`Postgres::restart`]).
    argv: Vec<String>,
    janitor: Janitor,
}

/// Where Debian keeps the server binaries: /usr/lib/postgresql/<major>/bin, newest first.
fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: is the `postgresql` package installed (tests/install-deps.sh)?")?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no initdb under /usr/lib/postgresql/*/bin")
}

/// `argv` as the postgres user.
fn as_postgres(argv: &[&str]) -> Vec<String> {
    let mut all: Vec<String> =
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"].map(String::from).to_vec();
    all.extend(argv.iter().map(|s| s.to_string()));
    all
}

fn run(argv: &[String]) -> Result<String> {
    let out = Command::new(&argv[0]).args(&argv[1..]).output().with_context(|| format!("running {}", argv[0]))?;
    if !out.status.success() {
        bail!("`{}` failed ({}):\n{}", argv.join(" "), out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Postgres {
    /// Creates a cluster with a database `tidings` and starts it; ready when this returns.
    pub fn start() -> Result<Postgres> {
        Postgres::start_with(&[])
    }

    /// [`Postgres::start`] with more server settings (`name=value`, each passed as `-c`), which
    /// win over the defaults here: `fsync=on` for a benchmark of durable commits. The command
    /// line wins over `ALTER SYSTEM`, so these cannot be changed on a running cluster.
    pub fn start_with(settings: &[&str]) -> Result<Postgres> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("tidings-pg-").tempdir_in("/tmp")?.keep();
        let janitor = Janitor::start(&dir)?;
        let pki = super::tls::Pki::write(&dir)?;
        run(&["chown".into(), "-R".into(), "postgres:postgres".into(), dir.display().to_string()])?;
        // PostgreSQL refuses a key file others can read.
        run(&["chmod".into(), "600".into(), pki.key_file.display().to_string()])?;
        let data = dir.join("data");
        let (initdb, server) = (bin.join("initdb"), bin.join("postgres"));
        run(&as_postgres(&[
            &initdb.display().to_string(),
            "-D",
            &data.display().to_string(),
            "-U",
            ROLE,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        ]))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.join("postgres.log");
        let mut argv = as_postgres(&[
            &server.display().to_string(),
            "-D",
            &data.display().to_string(),
            "-p",
            &port.to_string(),
            "-k",
            &dir.display().to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            // The tests kill tidings, never PostgreSQL or the machine: syncing buys them nothing.
            "-c",
            "fsync=off",
            "-c",
            "ssl=on",
            "-c",
            &format!("ssl_cert_file={}", pki.cert_file.display()),
            "-c",
            &format!("ssl_key_file={}", pki.key_file.display()),
        ]);
        // The last of a setting given twice wins.
        for setting in settings {
            argv.extend(["-c".to_owned(), (*setting).to_owned()]);
        }
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        let server = Supervised::spawn("postgres", &args, &log, &janitor)?;
        wait_ready(&server, &[(port, Probe::Accepts)], std::slice::from_ref(&log))?;
        let pg = Postgres { port, dir, ca_file: pki.ca_file, server, argv, janitor };
        pg.wait_accepting(&log)?;
        pg.psql("postgres", "CREATE DATABASE tidings")?;
        Ok(pg)
    }

    /// The port accepts before the server takes queries (recovery, start-up): asks it.
    fn wait_accepting(&self, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.psql("postgres", "SELECT 1").is_err() {
            if !self.server.alive() || Instant::now() > deadline {
                bail!("postgres does not answer queries\n{}", log_tails(&[log.to_path_buf()], 30));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// A connection URL for `database`, as a `state:` line would give it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` with psql over TCP; its rows, one per line, columns joined by `|`.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let port = self.port.to_string();
        let argv = [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            ROLE,
            "-d",
            database,
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ];
        run(&argv.map(String::from))
    }

    /// The server's log so far, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tails(&[self.dir.join("postgres.log")], 30)
    }

    /// Stops the server (a fast shutdown: clients are disconnected, open transactions rolled
    /// back; SIGTERM would wait for every client to leave) and waits until it is gone.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.server.pid.to_string()]).status();
        self.server.stop();
    }

    /// Starts the stopped server again, on the same data and port; ready when this returns.
    pub fn restart(&mut self) -> Result<()> {
        let log = self.dir.join("postgres.log");
        let args: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        self.server = Supervised::spawn("postgres", &args, &log, &self.janitor)?;
        wait_ready(&self.server, &[(self.port, Probe::Accepts)], std::slice::from_ref(&log))?;
        self.wait_accepting(&log)
    }
}
