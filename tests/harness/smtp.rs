//! A small SMTP/LMTP client for tests: submission with AUTH PLAIN over
//! plaintext, STARTTLS or implicit TLS, and delivery over LMTP. Errors carry
//! the whole conversation (credentials masked).

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{TestEnv, User, timed, tls};

/// How [`TestEnv::send_smtp`] reaches Postfix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    /// `submission_port` without TLS; AUTH in clear (allowed on loopback).
    Plain,
    /// `submission_port`, STARTTLS before AUTH.
    StartTls,
    /// `smtps_port`, TLS from the first byte.
    ImplicitTls,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    io: BufReader<Box<dyn Io>>,
    transcript: String,
}

impl Conn {
    fn new(io: Box<dyn Io>) -> Conn {
        Conn { io: BufReader::new(io), transcript: String::new() }
    }

    /// Reads one (possibly multi-line) reply and checks its code.
    async fn expect(&mut self, code: u16, after: &str) -> Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.io.read_line(&mut line).await? == 0 {
                bail!("connection closed waiting for {code} after {after}\n{}", self.transcript);
            }
            self.transcript += &format!("S: {}\n", line.trim_end());
            // "250-more" continues, "250 last" ends the reply.
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        if !line.starts_with(&code.to_string()) {
            bail!("expected {code} after {after}, got {}\n{}", line.trim_end(), self.transcript);
        }
        Ok(())
    }

    async fn command(&mut self, command: &str, code: u16) -> Result<()> {
        self.transcript += &format!("C: {command}\n");
        self.write(format!("{command}\r\n").as_bytes()).await?;
        self.expect(code, &format!("`{command}`")).await
    }

    async fn auth_plain(&mut self, user: &User) -> Result<()> {
        let token = BASE64.encode(format!("\0{}\0{}", user.login, user.password));
        self.transcript += "C: AUTH PLAIN (credentials)\n";
        self.write(format!("AUTH PLAIN {token}\r\n").as_bytes()).await?;
        self.expect(235, "AUTH PLAIN").await
    }

    /// Sends the message after a 354, dot-stuffed, with the final dot.
    async fn data(&mut self, raw: &[u8]) -> Result<()> {
        self.transcript += &format!("C: ({} bytes of message)\nC: .\n", raw.len());
        self.write(&dot_stuffed(raw)).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.io.get_mut().write_all(bytes).await?;
        Ok(self.io.get_mut().flush().await?)
    }

    async fn start_tls(self, env: &TestEnv) -> Result<Conn> {
        let tls = env.tls_connector().connect(tls::server_name(), self.io.into_inner()).await;
        let mut conn = Conn::new(Box::new(tls.context("STARTTLS handshake")?));
        conn.transcript = self.transcript + "(TLS established)\n";
        Ok(conn)
    }
}

impl TestEnv {
    /// Submits `raw` to Postfix as `user` (AUTH PLAIN, MAIL FROM the user's
    /// address) for `rcpts`. Returns once Postfix has queued it; delivery
    /// follows within a moment, so wait for it with `wait_for`.
    pub async fn send_smtp(&self, via: Submit, user: &User, rcpts: &[&str], raw: &[u8]) -> Result<()> {
        let what = format!("SMTP submission ({via:?}) as {}", user.login);
        timed(&what, self.submit(via, user, rcpts, raw)).await.context(what.clone())
    }

    async fn submit(&self, via: Submit, user: &User, rcpts: &[&str], raw: &[u8]) -> Result<()> {
        let io: Box<dyn Io> = match via {
            Submit::ImplicitTls => Box::new(self.tls_to(self.smtps_port).await?),
            _ => Box::new(TcpStream::connect(("127.0.0.1", self.submission_port)).await?),
        };
        let mut conn = Conn::new(io);
        conn.expect(220, "connecting").await?;
        conn.command("EHLO harness.tidings.test", 250).await?;
        if via == Submit::StartTls {
            conn.command("STARTTLS", 220).await?;
            conn = conn.start_tls(self).await?;
            conn.command("EHLO harness.tidings.test", 250).await?;
        }
        conn.auth_plain(user).await?;
        conn.command(&format!("MAIL FROM:<{}>", user.address), 250).await?;
        for rcpt in rcpts {
            conn.command(&format!("RCPT TO:<{rcpt}>"), 250).await?;
        }
        conn.command("DATA", 354).await?;
        conn.data(raw).await?;
        conn.expect(250, "the message").await?;
        conn.command("QUIT", 221).await
    }

    /// Delivers `raw` straight into `user`'s INBOX through Dovecot's LMTP,
    /// as Postfix would (envelope sender `harness@tidings.test`).
    pub async fn deliver_lmtp(&self, user: &User, raw: &[u8]) -> Result<()> {
        self.deliver_lmtp_to("harness@tidings.test", &[&user.address], raw).await
    }

    /// LMTP delivery to several recipients; fails unless every one accepts.
    pub async fn deliver_lmtp_to(&self, sender: &str, rcpts: &[&str], raw: &[u8]) -> Result<()> {
        let what = format!("LMTP delivery to {rcpts:?}");
        timed(&what, self.lmtp(sender, rcpts, raw)).await.context(what.clone())
    }

    async fn lmtp(&self, sender: &str, rcpts: &[&str], raw: &[u8]) -> Result<()> {
        let tcp = TcpStream::connect(("127.0.0.1", self.lmtp_port)).await?;
        let mut conn = Conn::new(Box::new(tcp));
        conn.expect(220, "connecting").await?;
        conn.command("LHLO harness.tidings.test", 250).await?;
        conn.command(&format!("MAIL FROM:<{sender}>"), 250).await?;
        for rcpt in rcpts {
            conn.command(&format!("RCPT TO:<{rcpt}>"), 250).await?;
        }
        conn.command("DATA", 354).await?;
        conn.data(raw).await?;
        // LMTP answers the message once per recipient.
        for rcpt in rcpts {
            conn.expect(250, &format!("the message, for {rcpt}")).await?;
        }
        conn.command("QUIT", 221).await
    }
}

/// CRLF line ends, a leading dot doubled, and the terminating ".".
fn dot_stuffed(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}
