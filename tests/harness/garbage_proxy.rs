//! A TCP proxy between tidings and Dovecot's plaintext IMAP port that, when armed, sends one
//! line no IMAP client can parse just before a chosen server line: a server (or a middlebox)
//! gone wrong mid-IDLE or mid-FETCH. Everything else is forwarded byte for byte, both ways.
//!
//! Only connections that have sent `IDLE` are tampered with: those are the watchers', so the
//! executor's session (which never idles) is left alone and the error lands where the test
//! looks for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What is sent: `*` and then a parenthesis where IMAP wants a space, and bytes that are not text.
pub const GARBAGE: &[u8] = b"*)(\x01\xff this is not IMAP (((\r\n";

/// The proxy; it forwards until the test ends.
#[derive(Clone)]
pub struct GarbageProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The next server line to inject before, taken (disarmed) when used.
    armed: Arc<Mutex<Option<String>>>,
    /// How many garbage lines were sent.
    injected: Arc<AtomicUsize>,
    /// Connections open now that have sent IDLE (where an injection can happen).
    idling: Arc<AtomicUsize>,
}

impl GarbageProxy {
    /// Starts a proxy to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> GarbageProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = GarbageProxy {
            port: listener.local_addr().unwrap().port(),
            armed: Arc::default(),
            injected: Arc::default(),
            idling: Arc::default(),
        };
        let serving = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { continue };
                tokio::spawn(serving.clone().relay(client, server));
            }
        });
        proxy
    }

    /// Sends one garbage line before the next server line containing `needle` on a watcher's
    /// connection.
    pub fn arm(&self, needle: &str) {
        *self.armed.lock().unwrap() = Some(needle.to_owned());
    }

    /// Connections open now that have sent IDLE: a test arms and delivers once the watcher is
    /// idling, or the message may arrive through its catch-up, where nothing is injected.
    pub fn idling(&self) -> usize {
        self.idling.load(Ordering::SeqCst)
    }

    /// Garbage lines sent so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    async fn relay(self, client: TcpStream, server: TcpStream) {
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let idled = Arc::new(AtomicBool::new(false));
        let upstream = tokio::spawn(to_server(client_read, server_write, idled.clone(), self.idling.clone()));
        self.to_client(server_read, client_write, idled.clone()).await;
        upstream.abort();
        if idled.load(Ordering::SeqCst) {
            self.idling.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Server to client, a line at a time (a literal's bytes are lines too, harmlessly).
    async fn to_client(&self, server: OwnedReadHalf, mut client: OwnedWriteHalf, idled: Arc<AtomicBool>) {
        let mut server = BufReader::new(server);
        let mut line = Vec::new();
        loop {
            line.clear();
            match server.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if idled.load(Ordering::SeqCst) && self.take_if_matches(&line) {
                if client.write_all(GARBAGE).await.is_err() {
                    return;
                }
                self.injected.fetch_add(1, Ordering::SeqCst);
            }
            if client.write_all(&line).await.is_err() {
                return;
            }
        }
    }

    fn take_if_matches(&self, line: &[u8]) -> bool {
        let mut armed = self.armed.lock().unwrap();
        let hit = armed.as_ref().is_some_and(|needle| String::from_utf8_lossy(line).contains(needle.as_str()));
        if hit {
            *armed = None;
        }
        hit
    }
}

/// Client to server, byte for byte; notes when the client has sent `IDLE`.
async fn to_server(
    mut client: OwnedReadHalf,
    mut server: OwnedWriteHalf,
    idled: Arc<AtomicBool>,
    idling: Arc<AtomicUsize>,
) {
    const IDLE: &[u8] = b" IDLE\r";
    let mut buf = vec![0; 64 * 1024];
    // The end of what came before: a command may arrive split across reads (`A5 ID` + `LE\r\n`).
    let mut seen: Vec<u8> = Vec::with_capacity(64 * 1024 + IDLE.len());
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(IDLE.len()).any(|w| w.eq_ignore_ascii_case(IDLE)) && !idled.swap(true, Ordering::SeqCst) {
            idling.fetch_add(1, Ordering::SeqCst);
        }
        let keep = seen.len().saturating_sub(IDLE.len() - 1);
        seen.drain(..keep);
        if server.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
