//! Errors of the IMAP layer: one enum, each message `cannot <verb> <object>` naming the
//! account, server and mailbox, with the cause in `source` (never in the message).
//!
//! The predicates tell a caller how to react: [`Error::is_auth`] and [`Error::is_tls`] are
//! failures that retrying soon cannot fix (wait long), [`Error::is_transient`] ones a new
//! connection may well fix (back off and reconnect). Anything else is a refusal of one
//! request (a mailbox that does not exist, a flag the server rejects) on a connection that is
//! still usable.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the IMAP layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {at}")]
    Connect {
        /// Account and server, e.g. ``account `work` (imap.example.com:993)``.
        at: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file named by the account could not be read or holds no certificate.
    #[error("cannot read CA file {path} for {at}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Account and server.
        at: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up: no usable roots, a failed handshake, an untrusted or
    /// mismatching certificate.
    #[error("cannot set up TLS with {at}")]
    Tls {
        /// Account and server.
        at: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `tls: starttls`, but the server does not offer STARTTLS (or refused it): the password is
    /// never sent in clear, so the connection ends before login.
    #[error(
        "cannot set up TLS with {at}: the server does not offer STARTTLS, and the password is never sent in clear \
         (use `tls: implicit` if the server has a TLS port)"
    )]
    NoStartTls {
        /// Account and server.
        at: String,
    },
    /// The server's certificate is not the one its `tls_fingerprint` pins: an impostor, or a
    /// renewed certificate whose new fingerprint must be written into the config.
    #[error(
        "cannot set up TLS with {at}: the server presented certificate {presented}, but tls_fingerprint pins {expected} \
         (if the server's certificate was renewed, pin the new one)"
    )]
    Pin {
        /// Account and server.
        at: String,
        /// The pinned fingerprint.
        expected: crate::config::Fingerprint,
        /// The fingerprint of the certificate the server presented.
        presented: crate::config::Fingerprint,
    },
    /// The server refused the user name or password.
    #[error("cannot log in to {at} as {user}: the server refused the credentials")]
    Auth {
        /// Account and server.
        at: String,
        /// The login name (never the password).
        user: String,
        /// The server's answer.
        #[source]
        source: async_imap::error::Error,
    },
    /// No OAuth2 access token could be had for an XOAUTH2 login (a refused or unreadable
    /// refresh token is an auth failure; an unreachable token endpoint a transient one).
    #[error("cannot log in to {at}: no OAuth2 access token")]
    Token {
        /// Account and server.
        at: String,
        /// Why.
        #[source]
        source: crate::auth::Error,
    },
    /// The server refused the XOAUTH2 access token; `reason` is its decoded error challenge.
    #[error("cannot log in to {at} as {user} with XOAUTH2: the server refused the access token ({reason})")]
    Xoauth2 {
        /// Account and server.
        at: String,
        /// The login name.
        user: String,
        /// What the server said (the JSON challenge decoded, or its NO text); never the token.
        reason: String,
    },
    /// A command got no complete answer within its deadline; the connection is now broken.
    #[error("cannot {what} for {at}: no answer within {after:?}; the connection must be dropped")]
    Timeout {
        /// What was being done, e.g. ``select mailbox `INBOX` ``.
        what: String,
        /// Account and server.
        at: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// A command failed: refused by the server (NO/BAD, the connection is still usable) or
    /// cut off (I/O error, EOF, BYE, unparsable answer: the connection is broken).
    #[error("cannot {what} for {at}")]
    Command {
        /// What was being done.
        what: String,
        /// Account and server.
        at: String,
        /// The server's answer or the I/O error.
        #[source]
        source: async_imap::error::Error,
    },
    /// An earlier failure left the connection unusable; drop the session and reconnect.
    #[error("cannot {what} for {at}: the connection is broken ({why}) and must be dropped")]
    Broken {
        /// What was being attempted now.
        what: String,
        /// Account and server.
        at: String,
        /// What broke it, e.g. "an earlier command timed out".
        why: String,
    },
    /// The request cannot be done on this server or in this state, e.g. a keyword the
    /// mailbox's PERMANENTFLAGS do not allow, or a fetch with no mailbox selected.
    #[error("cannot {what} for {at}: {reason}")]
    Unsupported {
        /// What was asked.
        what: String,
        /// Account and server.
        at: String,
        /// Why it is refused.
        reason: String,
    },
    /// An argument cannot be sent as asked: a flag that is not an atom, search criteria with
    /// line breaks.
    #[error("cannot {what}: {reason}")]
    Invalid {
        /// What was asked.
        what: String,
        /// What is wrong with the argument.
        reason: String,
    },
}

impl Error {
    /// The server refused the credentials: retrying soon only locks the account; wait long.
    pub fn is_auth(&self) -> bool {
        match self {
            Error::Auth { .. } | Error::Xoauth2 { .. } => true,
            Error::Token { source, .. } => source.is_permanent(),
            _ => false,
        }
    }

    /// TLS could not be set up (handshake, certificate, pin): a configuration problem
    /// that retrying soon will not fix. A connection that broke off during the handshake is
    /// not one: it is transient.
    pub fn is_tls(&self) -> bool {
        match self {
            Error::Tls { source, .. } => !broke_off(source),
            Error::Pin { .. } | Error::NoStartTls { .. } => true,
            _ => false,
        }
    }

    /// A local file the config names cannot be read (the CA file): not the server's doing and
    /// not a failed login. Retried on the ordinary backoff, so a fixed file takes effect soon.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::CaFile { .. })
    }

    /// Network trouble, a timeout, BYE, EOF or an unparsable answer: drop the session,
    /// back off and reconnect.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Broken { .. } => true,
            Error::Tls { source, .. } => broke_off(source),
            Error::Token { source, .. } => !source.is_permanent(),
            Error::Command { source, .. } => breaks_connection(source),
            _ => false,
        }
    }
}

/// Whether an I/O error of the TLS set-up is the connection breaking off (a server restarting
/// resets or closes it mid-handshake) rather than TLS failing: rustls reports protocol and
/// certificate failures as `InvalidData`. Taken for a TLS failure, a reset once made the
/// executor wait its slow 15-minute delay after a Dovecot restart (tests/faults).
fn broke_off(error: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        error.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof | K::NotConnected
    )
}

/// Whether an async-imap error leaves the stream in an unknown state (anything but a tagged
/// NO or BAD, after which the server waits for the next command).
pub(super) fn breaks_connection(error: &async_imap::error::Error) -> bool {
    use async_imap::error::Error as E;
    !matches!(error, E::No(_) | E::Bad(_) | E::Validate(_))
}

/// async-imap puts the whole unparsed buffer into parse errors, which may hold a message body:
/// keep the first characters only, so that an error chain in a log cannot carry mail.
pub(super) fn scrub(error: async_imap::error::Error) -> async_imap::error::Error {
    const KEEP: usize = 160;
    use async_imap::error::Error as E;
    match error {
        E::Io(io) if io.to_string().contains(UNPARSED) => {
            E::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, not_imap(&io.to_string())))
        }
        E::Io(io) if io.to_string().len() > KEEP => {
            let text = io.to_string();
            let cut = (0..=KEEP).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            E::Io(std::io::Error::new(io.kind(), format!("{}... (cut)", &text[..cut])))
        }
        other => other,
    }
}

/// What async-imap's parse errors say before the buffer it could not parse (Debug-quoted).
const UNPARSED: &str = " during parsing of \"";

/// "the server sent a line that is not IMAP: `...`", with the first line of the unparsed
/// buffer, cut short: the line itself tells what went wrong (a proxy's banner, a bug), while
/// the bytes after it may be a message. The nom error before it only repeats the same bytes
/// as numbers.
fn not_imap(text: &str) -> String {
    const KEEP: usize = 100;
    let buffer = text.split_once(UNPARSED).map_or("", |(_, rest)| rest);
    // Debug quoting shows line ends as the two characters `\r`, `\n`.
    let line = buffer.split("\\r\\n").next().unwrap_or_default().split("\\n").next().unwrap_or_default();
    let line = line.strip_suffix('"').unwrap_or(line);
    let cut = (0..=KEEP.min(line.len())).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
    let more = if cut < line.len() { "..." } else { "" };
    format!("the server sent a line that is not IMAP: `{}{more}`", &line[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> String {
        "account `work` (127.0.0.1:993)".into()
    }

    #[test]
    fn predicates_sort_failures() {
        let lost = Error::Command { what: "x".into(), at: at(), source: async_imap::error::Error::ConnectionLost };
        assert!(lost.is_transient() && !lost.is_auth() && !lost.is_tls());
        let no = Error::Command { what: "x".into(), at: at(), source: async_imap::error::Error::No("gone".into()) };
        assert!(!no.is_transient());
        let auth = Error::Auth { at: at(), user: "me".into(), source: async_imap::error::Error::No("x".into()) };
        assert!(auth.is_auth() && !auth.is_transient());
        let tls = Error::Tls { at: at(), source: std::io::Error::other("bad cert") };
        assert!(tls.is_tls() && !tls.is_transient());
        let invalid = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate: UnknownIssuer");
        assert!(Error::Tls { at: at(), source: invalid }.is_tls(), "rustls' own failures are TLS failures");
        for kind in [std::io::ErrorKind::ConnectionReset, std::io::ErrorKind::UnexpectedEof] {
            let reset = Error::Tls { at: at(), source: kind.into() };
            assert!(reset.is_transient() && !reset.is_tls(), "{kind:?} mid-handshake is network trouble");
        }
        let timeout = Error::Timeout { what: "select mailbox `INBOX`".into(), at: at(), after: Duration::from_secs(1) };
        assert!(timeout.is_transient());
        assert_eq!(
            timeout.to_string(),
            "cannot select mailbox `INBOX` for account `work` (127.0.0.1:993): no answer within 1s; \
             the connection must be dropped"
        );
    }

    #[test]
    fn scrub_shows_the_line_that_is_not_imap_and_nothing_after_it() {
        // As async-imap 0.12 words it: a nom error, then the buffer Debug-quoted.
        let raw = "*)(\u{1}\u{fffd} this is not IMAP (((\r\n* 1 FETCH (BODY[] {20}\r\nSubject: secret plans";
        let io =
            std::io::Error::other(format!("Error(Error {{ input: [42, 41], code: Tag }}) during parsing of {raw:?}"));
        let scrubbed = scrub(async_imap::error::Error::Io(io)).to_string();
        assert_eq!(scrubbed, "io: the server sent a line that is not IMAP: `*)(\\u{1}\u{fffd} this is not IMAP (((`");
        let long = format!("x during parsing of {:?}", "y".repeat(300));
        let scrubbed = scrub(async_imap::error::Error::Io(std::io::Error::other(long))).to_string();
        assert!(scrubbed.ends_with(&format!("`{}...`", "y".repeat(100))), "{scrubbed}");
    }

    #[test]
    fn scrub_cuts_long_parse_errors() {
        let long = async_imap::error::Error::Io(std::io::Error::other(format!("parse of {}", "body ".repeat(100))));
        let scrubbed = scrub(long).to_string();
        assert!(scrubbed.len() < 200 && scrubbed.ends_with("(cut)"), "{scrubbed}");
    }
}
