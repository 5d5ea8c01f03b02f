//! SMTP: one authenticated connection to an account's submission server, and the transaction
//! that hands it a message.
//!
//! Security follows the account's `tls`: implicit TLS from the first byte, or STARTTLS, which is
//! then required before any credentials go out (a server that does not offer it is refused, so
//! a man in the middle cannot strip it); plaintext only with `tls: none`, which the config
//! allows only with `allow_insecure`. Trust is the IMAP side's: with no `ca_file`, the platform
//! verifier; with one, only the CAs in that file; with a `tls_fingerprint`, only the certificate
//! it pins (see `Smtp::check_pin`). AUTH PLAIN or LOGIN.
//!
//! lettre's own timeout covers only the TCP connect, so every step here runs under a tokio
//! deadline (the account's `command_timeout`; the message upload gets more per MiB). A failed
//! transaction says whether the message may have gone out: [`SendError::Refused`] means the
//! server answered no, or the connection failed before the message's final dot, so nothing was
//! accepted; [`SendError::Uncertain`] means the connection broke after it, so the server may
//! have taken it. What it must not do: retry, or log the password or the message.

use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tracing::debug;

use super::Composed;
use crate::auth::OAuth;
use crate::config::{Account, Fingerprint, Secret, Server, Tls};

type LettreError = lettre::transport::smtp::Error;

/// Extra time for the message upload and the server's answer, per MiB of message.
const PER_MIB: Duration = Duration::from_secs(10);

/// Why no connection could be set up.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The account has no `smtp:` server.
    #[error("cannot send mail from account {account}: it has no `smtp` server")]
    NoServer {
        /// The account.
        account: String,
    },
    /// The TCP connection, the greeting or EHLO failed.
    #[error("cannot connect to SMTP server {at}")]
    Connect {
        /// `host:port of account NAME`.
        at: String,
        /// Why.
        #[source]
        source: LettreError,
    },
    /// A step got no answer within its deadline.
    #[error("cannot {what} with SMTP server {at}: no answer within {after:?}")]
    Timeout {
        /// The step, e.g. "log in".
        what: &'static str,
        /// `host:port of account NAME`.
        at: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The account's CA file cannot be read or holds no certificate.
    #[error("cannot read CA file {path} for SMTP server {at}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// `host:port of account NAME`.
        at: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS failed: an untrusted or mismatching certificate, a failed handshake, a refused
    /// STARTTLS.
    #[error("cannot set up TLS with SMTP server {at}")]
    Tls {
        /// `host:port of account NAME`.
        at: String,
        /// Why.
        #[source]
        source: LettreError,
    },
    /// The server's certificate is not the one its `tls_fingerprint` pins.
    #[error(
        "cannot set up TLS with SMTP server {at}: the server presented certificate {presented}, but tls_fingerprint \
         pins {expected} (if the server's certificate was renewed, pin the new one)"
    )]
    Pin {
        /// `host:port of account NAME`.
        at: String,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint of the certificate the server presented.
        presented: Fingerprint,
    },
    /// `tls: starttls`, but the server does not offer STARTTLS: the password stays home.
    #[error(
        "cannot set up TLS with SMTP server {at}: it does not offer STARTTLS, and the password is never sent in clear \
         (use `tls: implicit` if the server has a TLS port)"
    )]
    NoStartTls {
        /// `host:port of account NAME`.
        at: String,
    },
    /// No OAuth2 access token could be had for an XOAUTH2 login.
    #[error("cannot log in to SMTP server {at}: no OAuth2 access token")]
    Token {
        /// `host:port of account NAME`.
        at: String,
        /// Why.
        #[source]
        source: crate::auth::Error,
    },
    /// The server refused the login, or offers neither AUTH PLAIN nor AUTH LOGIN (XOAUTH2 for
    /// an OAuth2 account).
    #[error("cannot log in to SMTP server {at} as {user}")]
    Auth {
        /// `host:port of account NAME`.
        at: String,
        /// The login name (never the password).
        user: String,
        /// The server's answer.
        #[source]
        source: LettreError,
    },
}

impl SmtpError {
    /// Credentials refused (or no OAuth2 token to be had): retrying soon only locks the account.
    pub fn is_auth(&self) -> bool {
        match self {
            SmtpError::Auth { .. } => true,
            SmtpError::Token { source, .. } => source.is_permanent(),
            _ => false,
        }
    }

    /// TLS trouble (certificate, pin, no STARTTLS): a setup problem retrying will not fix.
    pub fn is_tls(&self) -> bool {
        matches!(self, SmtpError::Tls { .. } | SmtpError::Pin { .. } | SmtpError::NoStartTls { .. })
    }

    /// The CA file the config names cannot be read: the user's to fix now, not a failed login;
    /// retried on the ordinary backoff so a fixed file takes effect soon.
    pub fn is_config(&self) -> bool {
        matches!(self, SmtpError::CaFile { .. })
    }

    /// Network trouble or a timeout: try again later.
    pub fn is_transient(&self) -> bool {
        match self {
            SmtpError::Connect { .. } | SmtpError::Timeout { .. } => true,
            SmtpError::Token { source, .. } => !source.is_permanent(),
            _ => false,
        }
    }
}

/// Why a message was not (surely) sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Nothing was accepted: the server answered 4xx (`permanent: false`) or 5xx, or the
    /// connection failed before the message was complete. Safe to try again (a 5xx will fail
    /// again).
    #[error("{message}")]
    Refused {
        /// A 5xx answer (or a message this server cannot take): retrying will not help.
        permanent: bool,
        /// The server's answer or what failed, naming the step.
        message: String,
    },
    /// The connection broke off or timed out after the message was sent, before the server's
    /// answer: it may have been accepted. Not to be resent automatically.
    #[error("{0}")]
    Uncertain(String),
}

/// Where and as whom to send for one account. Cheap to keep; [`Smtp::connect`] opens a
/// connection each time it is called.
#[derive(Debug)]
pub struct Smtp {
    account: String,
    server: Option<Server>,
    username: String,
    password: Secret<String>,
    oauth2: Option<OAuth>,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    at: String,
}

impl Smtp {
    /// The SMTP side of `account`, logging in with its resolved `password`; deadlines are the
    /// account's `command_timeout`.
    pub fn new(account: &Account, credentials: &crate::auth::Credentials) -> Smtp {
        let at = match &account.smtp {
            Some(s) => format!("{}:{} of account {}", s.host, s.port, account.name),
            None => format!("(none) of account {}", account.name),
        };
        Smtp {
            account: account.name.clone(),
            server: account.smtp.clone(),
            username: account.username.clone(),
            password: credentials.password.clone(),
            oauth2: credentials.oauth2.clone(),
            ca_file: account.ca_file.clone(),
            timeout: account.watch.command_timeout,
            at,
        }
    }

    /// Connects, secures the connection as the account says, and logs in.
    pub async fn connect(&self) -> Result<SmtpConnection, SmtpError> {
        let server = self.server.as_ref().ok_or_else(|| SmtpError::NoServer { account: self.account.clone() })?;
        let tls = match server.tls {
            Tls::None => None,
            Tls::Implicit | Tls::StartTls => Some(self.tls_parameters(server).await?),
        };
        let hello = ClientId::default();
        let implicit = if server.tls == Tls::Implicit { tls.clone() } else { None };
        let address = (server.host.as_str(), server.port);
        let open = AsyncSmtpConnection::connect_tokio1(address, Some(self.timeout), &hello, implicit, None);
        let mut conn = self.within("connect", open).await?.map_err(|source| match tls_failure(&source) {
            true => SmtpError::Tls { at: self.at.clone(), source },
            false => SmtpError::Connect { at: self.at.clone(), source },
        })?;
        debug!(at = %self.at, tls = ?server.tls, "smtp: connected");
        if server.tls == Tls::Implicit {
            self.check_pin(&mut conn, server).await?;
        }
        if let (Tls::StartTls, Some(tls)) = (server.tls, tls) {
            if !conn.can_starttls() {
                self.within("close the connection", conn.abort()).await.ok();
                return Err(SmtpError::NoStartTls { at: self.at.clone() });
            }
            match self.within("start TLS", conn.starttls(tls, &hello)).await? {
                Ok(()) => {}
                Err(source) if tls_failure(&source) || source.is_permanent() || source.is_transient() => {
                    return Err(SmtpError::Tls { at: self.at.clone(), source });
                }
                Err(source) => return Err(SmtpError::Connect { at: self.at.clone(), source }),
            }
            self.check_pin(&mut conn, server).await?;
            debug!(at = %self.at, "smtp: TLS established");
        }
        // XOAUTH2 with a token valid for the next minute at least, else the password.
        let (secret, mechanisms) = match &self.oauth2 {
            Some(oauth) => {
                let token = crate::auth::access_token(oauth, &self.account)
                    .await
                    .map_err(|source| SmtpError::Token { at: self.at.clone(), source })?;
                (token, &[Mechanism::Xoauth2][..])
            }
            None => (self.password.clone(), &[Mechanism::Plain, Mechanism::Login][..]),
        };
        let credentials = Credentials::new(self.username.clone(), secret.expose().to_owned());
        debug!(at = %self.at, user = %self.username, "smtp: logging in");
        match self.within("log in", conn.auth(mechanisms, &credentials)).await? {
            Ok(_) => {}
            // 5xx, or no mechanism in common: the same credentials will not work later.
            Err(source) if source.is_permanent() || source.is_client() => {
                if let Some(oauth) = &self.oauth2 {
                    crate::auth::forget_access_token(oauth).await;
                }
                return Err(SmtpError::Auth { at: self.at.clone(), user: self.username.clone(), source });
            }
            Err(source) => return Err(SmtpError::Connect { at: self.at.clone(), source }),
        }
        Ok(SmtpConnection { conn, at: self.at.clone(), timeout: self.timeout, broken: false })
    }

    /// TLS for the server's name: the platform verifier, or only the CAs of the account's file;
    /// with a pin, any certificate here and [`Smtp::check_pin`] after the handshake.
    async fn tls_parameters(&self, server: &Server) -> Result<TlsParameters, SmtpError> {
        let bare = server.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(&server.host);
        let mut builder = TlsParameters::builder(bare.to_owned());
        if server.tls_fingerprint.is_some() {
            builder = builder.dangerous_accept_invalid_certs(true).dangerous_accept_invalid_hostnames(true);
        } else if let Some(path) = &self.ca_file {
            let ca_error = |source| SmtpError::CaFile { path: path.clone(), at: self.at.clone(), source };
            let pem = tokio::fs::read(path).await.map_err(ca_error)?;
            let certificate = pem_certificates(&pem).map_err(ca_error)?;
            builder = builder.certificate_store(CertificateStore::None).add_root_certificate(certificate);
        }
        builder.build().map_err(|source| SmtpError::Tls { at: self.at.clone(), source })
    }

    /// With a pin, the certificate must be exactly the pinned one. lettre takes no custom
    /// verifier, so the handshake accepted any certificate (its signature was still checked: the
    /// server holds the key of what it presented) and it is compared here, right after the
    /// handshake: before it only EHLO went out, and nothing that matters.
    async fn check_pin(&self, conn: &mut AsyncSmtpConnection, server: &Server) -> Result<(), SmtpError> {
        let Some(expected) = server.tls_fingerprint else { return Ok(()) };
        let der = conn.peer_certificate().map_err(|source| SmtpError::Tls { at: self.at.clone(), source })?;
        let presented = Fingerprint::of(&der);
        if presented == expected {
            return Ok(());
        }
        self.within("close the connection", conn.abort()).await.ok();
        Err(SmtpError::Pin { at: self.at.clone(), expected, presented })
    }

    async fn within<T>(&self, what: &'static str, step: impl Future<Output = T>) -> Result<T, SmtpError> {
        tokio::time::timeout(self.timeout, step).await.map_err(|_| SmtpError::Timeout {
            what,
            at: self.at.clone(),
            after: self.timeout,
        })
    }
}

/// The certificates of a PEM file as one lettre root; at least one must be there.
fn pem_certificates(pem: &[u8]) -> Result<Certificate, std::io::Error> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let count =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| invalid(e.to_string()))?;
    if count.is_empty() {
        return Err(invalid("no PEM certificate in it".into()));
    }
    Certificate::from_pem(pem).map_err(|e| invalid(e.to_string()))
}

/// Whether a lettre error comes from rustls (a certificate, a handshake), which lettre reports
/// as a connection error like any other.
fn tls_failure(error: &LettreError) -> bool {
    if error.is_tls() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let rustls = cause.downcast_ref::<tokio_rustls::rustls::Error>().is_some()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>().is_some());
        if rustls {
            return true;
        }
        source = cause.source();
    }
    false
}

/// An open, authenticated SMTP connection. One transaction at a time; after a refusal it is
/// reset and can send the next message, after a network failure it is [broken](Self::is_broken).
pub struct SmtpConnection {
    conn: AsyncSmtpConnection,
    at: String,
    timeout: Duration,
    broken: bool,
}

impl std::fmt::Debug for SmtpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConnection").field("at", &self.at).field("broken", &self.broken).finish()
    }
}

impl SmtpConnection {
    /// Whether the connection failed and must be dropped (a new one is needed for more mail).
    pub fn is_broken(&self) -> bool {
        self.broken || self.conn.has_broken()
    }

    /// Whether the connection is encrypted (implicit TLS or after STARTTLS).
    pub fn is_encrypted(&self) -> bool {
        self.conn.is_encrypted()
    }

    /// Sends one message: MAIL FROM, RCPT TO for each recipient, DATA, the message. Any
    /// recipient refused refuses the message (nothing is sent to the others).
    pub async fn send(&mut self, message: &Composed) -> Result<(), SendError> {
        if self.is_broken() {
            return Err(SendError::Refused {
                permanent: false,
                message: format!("cannot send through SMTP server {}: the connection is closed", self.at),
            });
        }
        let envelope = &message.envelope;
        let mut parameters = Vec::new();
        let info = self.conn.server_info();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(self.cannot("non-ASCII addresses need SMTPUTF8, which the server does not offer"));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.bytes.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(self.cannot("the message has 8-bit text and the server does not offer 8BITMIME"));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        debug!(at = %self.at, "smtp: sending");
        self.step("MAIL FROM", Mail::new(envelope.from().cloned(), parameters)).await?;
        for recipient in envelope.to() {
            self.step("RCPT TO", Rcpt::new(recipient.clone(), vec![])).await.map_err(|e| match e {
                SendError::Refused { permanent, message } => {
                    SendError::Refused { permanent, message: format!("{message} (recipient {recipient})") }
                }
                other => other,
            })?;
        }
        self.step("DATA", Data).await?;
        // From here, a connection that breaks may have delivered the message.
        let mib = u32::try_from(message.bytes.len() >> 20).unwrap_or(u32::MAX);
        let limit = self.timeout.saturating_add(PER_MIB.saturating_mul(mib));
        match tokio::time::timeout(limit, upload(&mut self.conn, &message.bytes)).await {
            Ok(Ok(_)) => {
                debug!(at = %self.at, bytes = message.bytes.len(), "smtp: message accepted");
                Ok(())
            }
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => {
                Err(SendError::Refused { permanent: e.is_permanent(), message: format!("the message: {e}") })
            }
            Ok(Err(e)) => {
                self.broken = true;
                Err(SendError::Uncertain(format!(
                    "SMTP server {} broke off after the message was sent: {}",
                    self.at,
                    crate::causes::error_chain(&e)
                )))
            }
            Err(_) => {
                self.broken = true;
                Err(SendError::Uncertain(format!(
                    "SMTP server {} did not answer the message within {limit:?}",
                    self.at
                )))
            }
        }
    }

    /// A message this server cannot take: permanent, nothing sent.
    fn cannot(&self, why: &str) -> SendError {
        SendError::Refused { permanent: true, message: format!("cannot send through SMTP server {}: {why}", self.at) }
    }

    /// One command of the transaction before the message. A refusal resets the transaction; a
    /// network failure or timeout breaks the connection; either way nothing was sent.
    async fn step(&mut self, what: &str, command: impl std::fmt::Display) -> Result<(), SendError> {
        match tokio::time::timeout(self.timeout, self.conn.command(command)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => {
                self.reset().await;
                Err(SendError::Refused { permanent: e.is_permanent(), message: format!("{what}: {e}") })
            }
            Ok(Err(e)) => {
                self.broken = true;
                let error = crate::causes::error_chain(&e);
                Err(SendError::Refused {
                    permanent: false,
                    message: format!("{what}: SMTP server {} failed before the message was sent: {error}", self.at),
                })
            }
            Err(_) => {
                self.broken = true;
                Err(SendError::Refused {
                    permanent: false,
                    message: format!("{what}: no answer from SMTP server {} within {:?}", self.at, self.timeout),
                })
            }
        }
    }

    /// RSET after a refusal, so the connection can carry the next message.
    async fn reset(&mut self) {
        if !matches!(tokio::time::timeout(self.timeout, self.conn.command(Rset)).await, Ok(Ok(_))) {
            self.broken = true;
        }
    }

    /// Whether the connection still answers (NOOP), for one that was kept while idle: the
    /// server may have closed it meanwhile. One that does not is broken from then on.
    pub async fn alive(&mut self) -> bool {
        if !self.is_broken()
            && !matches!(tokio::time::timeout(self.timeout, self.conn.test_connected()).await, Ok(true))
        {
            debug!(at = %self.at, "smtp: the kept connection no longer answers");
            self.broken = true;
        }
        !self.is_broken()
    }

    /// Says goodbye (QUIT) and closes; errors are of no interest any more.
    pub async fn quit(mut self) {
        if !self.is_broken() && !matches!(tokio::time::timeout(self.timeout, self.conn.quit()).await, Ok(Ok(_))) {
            debug!(at = %self.at, "smtp: no answer to QUIT; closing anyway");
        }
        // Dropping the connection closes the socket.
    }
}

/// Sends a message and its final dot in one write. lettre writes them apart, and the small
/// second write waits (Nagle) until the server acknowledges the first, which it delays by up to
/// 40 ms (Linux): that wait was most of every transaction with a local Postfix.
async fn upload(
    conn: &mut AsyncSmtpConnection,
    bytes: &[u8],
) -> Result<lettre::transport::smtp::response::Response, LettreError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => conn.command(Stuffed(text)).await,
        // Not UTF-8 (8-bit text in another charset): lettre's own two writes.
        Err(_) => conn.message(bytes).await,
    }
}

/// A message as DATA carries it (RFC 5321 4.5.2): a `.` that starts a line is doubled, and
/// `CRLF.CRLF` ends it, as lettre's own encoder does.
struct Stuffed<'a>(&'a str);

impl std::fmt::Display for Stuffed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in self.0.split_inclusive("\r\n") {
            if line.starts_with('.') {
                f.write_str(".")?;
            }
            f.write_str(line)?;
        }
        f.write_str("\r\n.\r\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dot_starting_a_line_is_doubled_and_the_message_ends_with_a_lone_dot() {
        let stuffed = Stuffed(".first\r\nplain\r\n..two\r\nmid.dle\n.bare-lf\r\nend").to_string();
        assert_eq!(stuffed, "..first\r\nplain\r\n...two\r\nmid.dle\n.bare-lf\r\nend\r\n.\r\n");
    }

    #[test]
    fn a_ca_file_needs_a_certificate() {
        let err = pem_certificates(b"just text\n").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn errors_name_the_server_and_the_account() {
        let at = "smtp.example.com:587 of account work".to_owned();
        assert_eq!(
            SmtpError::NoStartTls { at: at.clone() }.to_string(),
            "cannot set up TLS with SMTP server smtp.example.com:587 of account work: it does not offer STARTTLS, \
             and the password is never sent in clear (use `tls: implicit` if the server has a TLS port)"
        );
        let timeout = SmtpError::Timeout { what: "log in", at, after: Duration::from_secs(3) };
        assert_eq!(
            timeout.to_string(),
            "cannot log in with SMTP server smtp.example.com:587 of account work: no answer within 3s"
        );
        assert!(timeout.is_transient() && !timeout.is_auth() && !timeout.is_tls());
    }
}
