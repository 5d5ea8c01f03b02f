//! The optional HTTP listener: `GET /healthz` and `GET /metrics`, nothing else.
//!
//! A hand-written HTTP/1.1 responder rather than a web framework: two read-only routes, one
//! request per connection, no body to read. Each connection gets a deadline, so a client that
//! never finishes its request cannot hold anything.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Health;
use super::metrics::{self, Snapshot};
use crate::config::Thresholds;
use crate::store::Store;

/// How long a client has to send its request and read the answer.
const DEADLINE: Duration = Duration::from_secs(10);
/// The longest request head read; anything longer is refused.
const MAX_HEAD: usize = 8 * 1024;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for /healthz and /metrics (http: listen)")]
pub struct Error {
    /// The address from the config.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// What the routes read.
#[derive(Clone)]
pub struct Server {
    /// The board.
    pub health: Health,
    /// The outbox and the rule failures.
    pub store: Store,
    /// When to call things unhealthy.
    pub thresholds: Thresholds,
}

/// A bound listener, before it serves.
pub struct Listener {
    listener: TcpListener,
    server: Server,
}

impl Listener {
    /// Binds `addr` now, so a port in use fails the start rather than later.
    pub async fn bind(addr: SocketAddr, server: Server) -> Result<Listener, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|source| Error { addr, source })?;
        Ok(Listener { listener, server })
    }

    /// The address bound (the port the OS chose, for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let server = self.server.clone();
                        tokio::spawn(async move {
                            if tokio::time::timeout(DEADLINE, server.serve(stream)).await.is_err() {
                                tracing::debug!(%peer, "http client too slow; connection closed");
                            }
                        });
                    }
                    // Out of file descriptors, say: keep serving the next ones, a little later.
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept an http connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl Server {
    async fn serve(&self, mut stream: TcpStream) {
        let (status, content_type, body) = match read_head(&mut stream).await {
            Some(head) => self.answer(&head).await,
            None => (400, "text/plain", "bad request\n".to_owned()),
        };
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            500 => "Internal Server Error",
            _ => "Service Unavailable",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // The client may be gone; there is nobody to tell.
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    async fn answer(&self, head: &str) -> (u16, &'static str, String) {
        let mut words = head.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        if !matches!(path, "/healthz" | "/metrics") {
            return (404, "text/plain", "not found: try /healthz or /metrics\n".into());
        }
        if method != "GET" {
            return (405, "text/plain", "only GET\n".into());
        }
        let now = chrono::Utc::now();
        let read = async {
            let outbox = self.store.outbox_groups().await?;
            let failing = self.store.rule_failures_since(now - super::FAILING_NOW).await?;
            Ok::<_, crate::store::Error>((outbox, failing, self.store.schedule_runs().await?))
        };
        let (outbox, failing, runs) = match read.await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(error = %crate::causes::error_chain(&error), "cannot read the store for {path}");
                return (500, "text/plain", "cannot read the store; see the daemon's log\n".into());
            }
        };
        let mut verdict = self.health.verdict(now, &self.thresholds, &outbox, &failing);
        verdict.degraded.extend(super::failed_runs(&runs, now - super::FAILING_NOW));
        if path == "/healthz" {
            let status = if verdict.answers_ok(&self.thresholds) { 200 } else { 503 };
            return (status, "text/plain", healthz_body(&verdict));
        }
        let snapshot = Snapshot {
            health: &self.health,
            outbox: &outbox,
            failing: &failing,
            verdict: &verdict,
            healthz_ok: verdict.answers_ok(&self.thresholds),
            now,
        };
        (200, "text/plain; version=0.0.4; charset=utf-8", metrics::render(&snapshot))
    }
}

/// What `/healthz` says: `ok` when healthy, else the grade and every line of the verdict (a
/// degraded daemon answers 200 by default, so the body is where the problems show).
pub fn healthz_body(verdict: &super::Verdict) -> String {
    if verdict.is_healthy() {
        return "ok\n".into();
    }
    let mut body = format!("{}\n", verdict.severity().as_str());
    for line in verdict.lines() {
        body.push_str(line);
        body.push('\n');
    }
    body
}

/// The request line and headers, up to the blank line; `None` if the client sent no whole head.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}
