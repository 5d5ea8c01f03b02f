//! A real Dovecot and Postfix for the integration tests.
//!
//! [`TestEnv::shared`] starts both servers once per test binary, in a temp
//! dir under /tmp, on free 127.0.0.1 ports; each test isolates itself by
//! creating its own users with [`TestEnv::new_user`]. A test that stops or
//! restarts a server takes its own environment from [`TestEnv::start_own`].
//!
//! What runs:
//! - Dovecot: IMAP (plaintext + STARTTLS) and IMAPS, LMTP; IDLE, MOVE,
//!   UIDPLUS, SPECIAL-USE (Sent, Drafts, Trash, Junk, Archive), separator `/`.
//! - Postfix: authenticated submission, plaintext + STARTTLS (AUTH allowed
//!   before TLS too) and implicit TLS. Mail for `@tidings.test` goes to
//!   Dovecot over LMTP; mail for any other domain to [`TestEnv::catchall`].
//! - TLS: a CA generated per environment ([`TestEnv::ca_file`]) and a
//!   server certificate for localhost, 127.0.0.1 and mx.tidings.test.
//!
//! [`TestEnv::shared_cyrus`] is the same for Cyrus IMAP 3.6 (IMAP, IMAPS, LMTP; IDLE, MOVE,
//! UIDPLUS, SPECIAL-USE, separator `/`; no Postfix): the same helpers work on either, so a test
//! written for a `&TestEnv` runs on both servers. Cyrus wakes IDLE clients at once.
//!
//! [`Postgres`] is a PostgreSQL cluster of a test's own (for the shared store), run as the
//! `postgres` user on a free loopback port.
//!
//! [`Proxy`] sits between tidings and a server to cut, stall or slow its connections, on
//! command or when a byte pattern passes (see `proxy.rs`).
//!
//! The servers stop when the test binary exits, however it exits (see
//! `process.rs`); `TIDINGS_TEST_KEEP=1` keeps the temp dir for inspection.
//! Dovecot delays IDLE notifications by ~0.5 s (Cyrus: ~2 ms; tests/two_servers prints both),
//! so wait for effects with
//! [`wait_until`]/[`wait_for`] and deadlines of seconds, never fixed sleeps.

mod cyrus;
mod garbage_proxy;
mod mail;
mod oauth;
pub mod postgres;
mod process;
mod proxy;
mod receiver;
mod servers;
mod smtp;
mod tls;

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;

pub use garbage_proxy::GarbageProxy;
pub use mail::{ImapSession, Listed, MailboxInfo, message};
pub use oauth::TokenEndpoint;
pub use postgres::Postgres;
pub use proxy::{Proxy, Side, Trigger};
pub use receiver::{Receiver, Request};
pub use servers::{CATCHALL, DOMAIN};
pub use smtp::Submit;
pub use tls::{Leaf, OTHER_NAME, Pki};

use process::{Janitor, Supervised, log_tails};
use servers::{Layout, Ports};

/// A mailbox account in Dovecot; its login is its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// IMAP/SMTP login.
    pub login: String,
    /// Plain-text password.
    pub password: String,
    /// Mail address (the same as the login).
    pub address: String,
}

/// Running servers and where to reach them. Dropping an owned environment
/// ([`TestEnv::start_own`]) stops its servers and then removes its temp
/// dir, in the background: `drop` returns at once.
pub struct TestEnv {
    /// The temp dir with configs, logs (`log/`), maildirs (`mail/`), queue.
    pub dir: PathBuf,
    /// IMAP, plaintext with STARTTLS.
    pub imap_port: u16,
    /// IMAP over implicit TLS.
    pub imaps_port: u16,
    /// Dovecot LMTP, plaintext.
    pub lmtp_port: u16,
    /// SMTP submission, plaintext with STARTTLS.
    pub submission_port: u16,
    /// SMTP submission over implicit TLS.
    pub smtps_port: u16,
    /// PEM file of the CA that signed both servers' certificate.
    pub ca_file: PathBuf,
    /// The mailbox that receives mail for every domain but [`DOMAIN`].
    pub catchall: User,
    /// Which IMAP server this environment runs.
    pub server: Server,
    pki: Pki,
    layout: Layout,
    ports: Ports,
    // Field order is drop order: servers first, then the janitor.
    dovecot: Option<Supervised>,
    postfix: Option<Supervised>,
    // Held only to be stopped when dropped.
    _cyrus: Option<Supervised>,
    _janitor: Janitor,
}

impl TestEnv {
    /// The environment shared by all tests of this binary, started on first use.
    pub fn shared() -> &'static TestEnv {
        static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();
        servers::check_installed();
        let env = SHARED.get_or_init(|| TestEnv::start().map_err(|e| format!("{e:#}")));
        match env {
            Ok(env) => env,
            Err(e) => panic!("the shared test environment failed to start:\n{e}"),
        }
    }

    /// A Cyrus environment shared by all tests of this binary, started on first use: IMAP,
    /// IMAPS and LMTP only (its submission ports are not served).
    pub fn shared_cyrus() -> &'static TestEnv {
        static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();
        servers::check_installed();
        cyrus::check_installed();
        let env = SHARED.get_or_init(|| TestEnv::start_cyrus().map_err(|e| format!("{e:#}")));
        match env {
            Ok(env) => env,
            Err(e) => panic!("the shared Cyrus environment failed to start:\n{e}"),
        }
    }

    /// The shared environment of `server`.
    pub fn shared_of(server: Server) -> &'static TestEnv {
        match server {
            Server::Dovecot => TestEnv::shared(),
            Server::Cyrus => TestEnv::shared_cyrus(),
        }
    }

    fn start_cyrus() -> Result<TestEnv> {
        let dir = tempfile::Builder::new().prefix("tidings-cyrus-").tempdir_in("/tmp")?.keep();
        let janitor = Janitor::start(&dir)?;
        let layout = Layout { dir: dir.clone() };
        let ports = Ports::free()?;
        let tls_dir = dir.join("tls");
        std::fs::create_dir(&tls_dir)?;
        let pki = Pki::write(&tls_dir)?;
        cyrus::write_configs(&layout, &ports, &pki)?;
        cyrus::add_user(&layout, CATCHALL, "catchall")?;
        let server = cyrus::start_cyrus(&layout, &ports, &janitor)?;
        cyrus::create_mailboxes(ports.imap, CATCHALL, "catchall")?;
        let catchall = User { login: CATCHALL.into(), password: "catchall".into(), address: CATCHALL.into() };
        Ok(TestEnv {
            imap_port: ports.imap,
            imaps_port: ports.imaps,
            lmtp_port: ports.lmtp,
            submission_port: ports.submission,
            smtps_port: ports.smtps,
            ca_file: pki.ca_file.clone(),
            catchall,
            server: Server::Cyrus,
            dir,
            pki,
            layout,
            ports,
            dovecot: None,
            postfix: None,
            _cyrus: Some(server),
            _janitor: janitor,
        })
    }

    /// A private environment, for a test that stops or restarts servers.
    pub fn start_own() -> TestEnv {
        servers::check_installed();
        TestEnv::start().unwrap_or_else(|e| panic!("test environment failed to start:\n{e:#}"))
    }

    /// A private environment whose Dovecot and Postfix present `leaf` instead of the usual
    /// certificate; [`TestEnv::ca_file`] is its CA file (for a self-signed one, itself).
    pub fn start_own_with_leaf(leaf: Leaf) -> TestEnv {
        let mut env = TestEnv::start_own();
        env.stop_dovecot();
        env.stop_postfix();
        let dir = env.pki.cert_file.parent().expect("the certificate is in tls/").to_owned();
        env.pki = Pki::write_leaf(&dir, leaf).unwrap_or_else(|e| panic!("writing a {leaf:?} certificate: {e:#}"));
        env.ca_file = env.pki.ca_file.clone();
        env.start_dovecot();
        env.start_postfix();
        env
    }

    /// A private environment whose Dovecot has no TLS at all (`ssl = no`): its IMAP port does
    /// not offer STARTTLS, as a server behind a man in the middle who strips it would not, and
    /// its "IMAPS" port speaks plaintext. Postfix is as usual.
    pub fn start_own_without_starttls() -> TestEnv {
        let mut env = TestEnv::start_own();
        env.stop_dovecot();
        let conf = env.layout.dir.join("dovecot/dovecot.conf");
        let mut text = std::fs::read_to_string(&conf).expect("reading dovecot.conf");
        text = text.replace("ssl = yes", "ssl = no");
        std::fs::write(&conf, text).expect("writing dovecot.conf");
        env.start_dovecot();
        env
    }

    /// The DER of the certificate the servers present (what a client may pin).
    pub fn server_certificate(&self) -> &[u8] {
        &self.pki.leaf_der
    }

    /// Starts both servers; retries with new ports if another process took one.
    fn start() -> Result<TestEnv> {
        let mut attempt = 1;
        loop {
            match TestEnv::try_start() {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn try_start() -> Result<TestEnv> {
        // Directly in /tmp, not $TMPDIR: socket paths must stay short.
        let dir = tempfile::Builder::new().prefix("tidings-").tempdir_in("/tmp")?.keep();
        let janitor = Janitor::start(&dir)?;
        let layout = Layout { dir: dir.clone() };
        let ports = Ports::free()?;
        let tls_dir = dir.join("tls");
        std::fs::create_dir(&tls_dir)?;
        let pki = Pki::write(&tls_dir)?;
        servers::write_configs(&layout, &ports, &pki)?;
        let (dovecot, postfix) = std::thread::scope(|s| {
            let dovecot = s.spawn(|| servers::start_dovecot(&layout, &ports, &janitor));
            let postfix = servers::start_postfix(&layout, &ports, &janitor);
            (dovecot.join().expect("dovecot start panicked"), postfix)
        });
        let (dovecot, postfix) = (dovecot?, postfix?);
        let catchall = User { login: CATCHALL.into(), password: "catchall".into(), address: CATCHALL.into() };
        Ok(TestEnv {
            imap_port: ports.imap,
            imaps_port: ports.imaps,
            lmtp_port: ports.lmtp,
            submission_port: ports.submission,
            smtps_port: ports.smtps,
            ca_file: pki.ca_file.clone(),
            catchall,
            server: Server::Dovecot,
            dir,
            pki,
            layout,
            ports,
            dovecot: Some(dovecot),
            postfix: Some(postfix),
            _cyrus: None,
            _janitor: janitor,
        })
    }

    /// A fresh Dovecot user `u<pid>-<n>@tidings.test`, usable at once.
    pub fn new_user(&self) -> User {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let login = format!("u{pid}-{n}@{DOMAIN}");
        let password = format!("pw{n}-{pid}");
        let added = match self.server {
            Server::Dovecot => servers::add_user(&self.layout, &login, &password),
            Server::Cyrus => cyrus::add_user(&self.layout, &login, &password)
                .and_then(|()| cyrus::create_mailboxes(self.imap_port, &login, &password)),
        };
        added.unwrap_or_else(|e| panic!("adding a {} user: {e:#}", self.server));
        User { address: login.clone(), login, password }
    }

    /// TLS client config trusting only this environment's CA (ring provider).
    pub fn tls_config(&self) -> Arc<ClientConfig> {
        self.pki.client_config()
    }

    /// A TLS connector for [`TestEnv::tls_config`]; verify against "localhost".
    pub fn tls_connector(&self) -> TlsConnector {
        self.pki.connector()
    }

    /// The last lines of the Dovecot and Postfix logs, for failure messages.
    pub fn log_tails(&self) -> String {
        match self.server {
            Server::Dovecot => log_tails(&self.layout.logs(), 40),
            Server::Cyrus => log_tails(&cyrus::logs(&self.layout), 40),
        }
    }

    /// `what`, followed by the log tails when (and only when) it is
    /// formatted: for the `what` of [`wait_for`], printed only on timeout.
    pub fn with_logs<'a>(&'a self, what: impl Display + 'a) -> impl Display + 'a {
        struct WithLogs<'a, W>(&'a TestEnv, W);
        impl<W: Display> Display for WithLogs<'_, W> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}\n{}", self.1, self.0.log_tails())
            }
        }
        WithLogs(self, what)
    }

    /// Stops Dovecot (SIGTERM) and waits until it has exited (~1.1 s:
    /// Dovecot's master sleeps 1 s for its log process when stopping).
    pub fn stop_dovecot(&mut self) {
        if let Some(mut dovecot) = self.dovecot.take() {
            dovecot.stop();
        }
    }

    /// Starts Dovecot again with the same ports, users and mail.
    pub fn start_dovecot(&mut self) {
        assert!(self.dovecot.is_none(), "dovecot is already running");
        let started = servers::start_dovecot(&self.layout, &self.ports, &self._janitor);
        self.dovecot = Some(started.unwrap_or_else(|e| panic!("restarting dovecot: {e:#}")));
    }

    /// Stops Postfix's master (and so its daemons) and waits until it exited.
    pub fn stop_postfix(&mut self) {
        if let Some(mut postfix) = self.postfix.take() {
            postfix.stop();
        }
    }

    /// Has Postfix try its whole queue now. Mail it accepted while Dovecot was down waits for
    /// a retry time; if Postfix was stopped meanwhile, it can stay in the queue with that time
    /// ahead (seen: a minute) until something asks for it.
    pub fn flush_postfix(&self) {
        if self.postfix.is_some() {
            servers::flush_postfix(&self.layout).unwrap_or_else(|e| panic!("flushing postfix's queue: {e:#}"));
        }
    }

    /// Starts Postfix again with the same ports and queue.
    pub fn start_postfix(&mut self) {
        assert!(self.postfix.is_none(), "postfix is already running");
        let started = servers::start_postfix(&self.layout, &self.ports, &self._janitor);
        self.postfix = Some(started.unwrap_or_else(|e| panic!("restarting postfix: {e:#}")));
    }
}

/// The IMAP server an environment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Dovecot 2.3 (with Postfix for SMTP).
    Dovecot,
    /// Cyrus IMAP 3.6 (IMAP and LMTP only).
    Cyrus,
}

impl Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Server::Dovecot => "Dovecot",
            Server::Cyrus => "Cyrus",
        })
    }
}

/// Polls `cond` every 20 ms until it returns true; after `timeout`, panics
/// with `what` as the expectation that was not met.
pub async fn wait_until<F, Fut>(timeout: Duration, what: impl Display, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, what, || {
        let fut = cond();
        async move { if fut.await { Ok(()) } else { Err("condition still false") } }
    })
    .await
}

/// Polls `probe` every 20 ms until it returns `Ok(value)` and returns the
/// value. `Err(state)` describes what was seen instead; on timeout the
/// panic shows `what` was expected and the last state that was got.
pub async fn wait_for<T, E, F, Fut>(timeout: Duration, what: impl Display, mut probe: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?}\n  expected: {what}\n  got: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Upper bound for one helper call, so a hung server fails the test.
const HELPER_TIMEOUT: Duration = Duration::from_secs(20);

async fn timed<T>(what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(HELPER_TIMEOUT, fut)
        .await
        .with_context(|| format!("{what}: no answer within {HELPER_TIMEOUT:?}"))?
}

/// Adds context naming the user, for helpers' errors.
fn for_user<T>(result: Result<T>, what: &str, user: &User) -> Result<T> {
    result.with_context(|| format!("{what} as {}", user.login))
}
