//! Opening a connection: TCP, TLS (implicit or STARTTLS, or none), the greeting, LOGIN (or
//! AUTHENTICATE XOAUTH2 for an OAuth2 account, its access token got before connecting).
//!
//! Whom TLS trusts is [`super::trust`]'s business. Every step has a deadline. What it must not
//! do: retry, sleep, or log the password (only the login name and the server appear in logs).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::imap_proto::{Capability, Response, ResponseCode, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::debug;

use super::{Error, Login, Timeouts};
use crate::auth::OAuth;
use crate::auth::xoauth2;
use crate::config::{Secret, Tls};

/// Silence after which the kernel starts probing an IMAP connection.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// TCP keepalive probes after [`KEEPALIVE_IDLE`] of silence: a peer that vanished without a
/// word (a NAT or firewall dropping the mapping, a host that died) is otherwise noticed by an
/// idling watcher only when it re-issues IDLE (`idle_interval`, 10 minutes by default) and that
/// times out. With the probes the read fails after about 90 s and the watcher reconnects.
/// Best effort: a platform without the options keeps the old behaviour.
fn keepalive(tcp: &TcpStream) {
    let probes =
        socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE).with_interval(Duration::from_secs(10)).with_retries(3);
    if let Err(error) = socket2::SockRef::from(tcp).set_tcp_keepalive(&probes) {
        debug!(%error, "imap: cannot set TCP keepalive");
    }
}

/// The byte stream under async-imap: plain TCP or TLS over TCP.
#[derive(Debug)]
pub(super) enum Transport {
    /// Before STARTTLS, or `tls: none`.
    Plain(TcpStream),
    /// Implicit TLS or after STARTTLS.
    Tls(Box<TlsStream<TcpStream>>),
}

/// An authenticated async-imap session over a [`Transport`].
pub(super) type Conn = async_imap::Session<Transport>;

/// Connects, secures, reads the greeting and logs in; `at` names account and server in errors.
pub(super) async fn open(login: &Login, timeouts: &Timeouts, at: &str) -> Result<Conn, Error> {
    let server = &login.server;
    // The token first: no connection is opened for a login that cannot happen, and the server
    // does not wait on the token endpoint between greeting and login.
    let token = match &login.oauth2 {
        Some(oauth) => Some(
            crate::auth::access_token(oauth, &login.account)
                .await
                .map_err(|source| Error::Token { at: at.into(), source })?,
        ),
        None => None,
    };
    let tls = match server.tls {
        Tls::None => None,
        _ => Some(super::trust::tls_connector(login, at).await?),
    };
    let connect = TcpStream::connect((server.host.as_str(), server.port));
    let tcp = within(timeouts.connect, "connect", at, connect)
        .await?
        .map_err(|source| Error::Connect { at: at.into(), source })?;
    // Commands are small and answered one by one: do not let Nagle hold them back.
    let _ = tcp.set_nodelay(true);
    keepalive(&tcp);
    debug!(host = %server.host, port = server.port, tls = ?server.tls, "imap: connected");
    let transport = match (&tls, server.tls) {
        (Some(tls), Tls::Implicit) => handshake(tls, login, tcp, timeouts, at).await?,
        _ => Transport::Plain(tcp),
    };
    let mut client = async_imap::Client::new(transport);
    let offers_starttls = within(timeouts.connect, "read the server greeting", at, greeting(&mut client))
        .await?
        .map_err(command(at, "read the server greeting"))?;
    if let (Some(tls), Tls::StartTls) = (&tls, server.tls) {
        if offers_starttls == Some(false) {
            return Err(Error::NoStartTls { at: at.into() });
        }
        client = starttls(client, tls, login, timeouts, at).await?;
    }
    if let (Some(oauth), Some(token)) = (&login.oauth2, &token) {
        return xoauth2(client, login, oauth, token, timeouts, at).await;
    }
    debug!(user = %login.username, "imap: logging in");
    let password = login.password.expose();
    match within(timeouts.command, "log in", at, client.login(&login.username, password)).await? {
        Ok(conn) => Ok(conn),
        Err((source, _)) if !super::error::breaks_connection(&source) => {
            Err(Error::Auth { at: at.into(), user: login.username.clone(), source })
        }
        Err((source, _)) => Err(command(at, "log in")(source)),
    }
}

/// Logs in with AUTHENTICATE XOAUTH2 and an access token fresh for a minute at least. A refusal drops the token (the
/// next connect refreshes first) and is an auth error: the caller waits long, never loops.
async fn xoauth2(
    client: async_imap::Client<Transport>,
    login: &Login,
    oauth: &OAuth,
    token: &Secret<String>,
    timeouts: &Timeouts,
    at: &str,
) -> Result<Conn, Error> {
    debug!(user = %login.username, "imap: logging in with XOAUTH2");
    let mut authenticator = xoauth2::Imap::new(&login.username, token);
    let result = within(timeouts.command, "log in", at, client.authenticate("XOAUTH2", &mut authenticator)).await?;
    match result {
        Ok(conn) => Ok(conn),
        Err((source, _)) if !super::error::breaks_connection(&source) => {
            crate::auth::forget_access_token(oauth).await;
            let reason = match &authenticator.refusal {
                Some(refusal) => xoauth2::describe(refusal),
                None => source.to_string(),
            };
            Err(Error::Xoauth2 { at: at.into(), user: login.username.clone(), reason })
        }
        Err((source, _)) => Err(command(at, "log in")(source)),
    }
}

/// Sends STARTTLS on the plaintext connection and wraps the TCP stream in TLS. Bytes the
/// server sent after its OK are dropped with the old client: they were not protected. A server
/// that refuses it does not offer it: the connection ends there, never goes on in clear.
async fn starttls(
    mut client: async_imap::Client<Transport>,
    tls: &TlsConnector,
    login: &Login,
    timeouts: &Timeouts,
    at: &str,
) -> Result<async_imap::Client<Transport>, Error> {
    let asked = client.run_command_and_check_ok("STARTTLS", None);
    within(timeouts.command, "start TLS", at, asked).await?.map_err(|e| match e {
        e if super::error::breaks_connection(&e) => command(at, "start TLS")(e),
        _ => Error::NoStartTls { at: at.into() },
    })?;
    let Transport::Plain(tcp) = client.into_inner() else {
        return Err(Error::Tls { at: at.into(), source: io::Error::other("STARTTLS on a TLS connection") });
    };
    // No second greeting after STARTTLS (RFC 3501 6.2.1): LOGIN comes next.
    Ok(async_imap::Client::new(handshake(tls, login, tcp, timeouts, at).await?))
}

async fn handshake(
    tls: &TlsConnector,
    login: &Login,
    tcp: TcpStream,
    timeouts: &Timeouts,
    at: &str,
) -> Result<Transport, Error> {
    let name = server_name(&login.server.host).map_err(|source| Error::Tls { at: at.into(), source })?;
    let stream = within(timeouts.connect, "set up TLS", at, tls.connect(name, tcp)).await?;
    let stream = stream.map_err(|source| match (login.server.tls_fingerprint, super::trust::unpinned(&source)) {
        (Some(expected), Some(presented)) => Error::Pin { at: at.into(), expected, presented },
        _ => Error::Tls { at: at.into(), source },
    })?;
    debug!("imap: TLS established");
    Ok(Transport::Tls(Box::new(stream)))
}

/// Reads the untagged greeting: OK (or PREAUTH) goes on, BYE or anything else is refused.
/// Returns whether it offers STARTTLS, when it lists its capabilities (most servers do; for one
/// that does not, STARTTLS is simply sent, and its refusal is the answer).
async fn greeting(client: &mut async_imap::Client<Transport>) -> Result<Option<bool>, async_imap::error::Error> {
    let response = client.read_response().await?.ok_or(async_imap::error::Error::ConnectionLost)?;
    match response.parsed() {
        Response::Data { status: Status::Ok | Status::PreAuth, outcome } => Ok(match &outcome.code {
            Some(ResponseCode::Capabilities(listed)) => Some(
                listed.iter().any(|c| matches!(c, Capability::Atom(name) if name.eq_ignore_ascii_case("STARTTLS"))),
            ),
            _ => None,
        }),
        other => Err(io::Error::other(format!("the server did not greet with OK: {other:?}")).into()),
    }
}

/// The name the certificate must carry: a DNS name, or an IP address (IPv6 without brackets).
fn server_name(host: &str) -> Result<ServerName<'static>, io::Error> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Runs `fut` with a deadline; a timeout becomes [`Error::Timeout`] naming `what`.
async fn within<T>(limit: Duration, what: &str, at: &str, fut: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(limit, fut).await.map_err(|_| Error::Timeout {
        what: what.into(),
        at: at.into(),
        after: limit,
    })
}

fn command(at: &str, what: &str) -> impl FnOnce(async_imap::error::Error) -> Error {
    let (at, what) = (at.to_owned(), what.to_owned());
    move |source| Error::Command { what, at, source: super::error::scrub(source) }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_accept_hosts_and_ip_addresses() {
        assert!(matches!(server_name("imap.example.com"), Ok(ServerName::DnsName(_))));
        assert!(matches!(server_name("127.0.0.1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("not a host").is_err());
    }

    /// The probes are on, with the times chosen (read back from the socket).
    #[tokio::test]
    async fn an_imap_socket_is_probed_after_a_minute_of_silence() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        keepalive(&tcp);
        let socket = socket2::SockRef::from(&tcp);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), Duration::from_secs(10));
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
    }
}
