//! A real HTTP/1.1 receiver for webhook tests, on a free 127.0.0.1 port.
//!
//! It records every request (method, path, headers, body) and answers with the status the test
//! set. It can go down (the port closed: connections are refused, as when a receiver's host is
//! rebooting) and come back on the same port. It runs on its own OS threads with blocking
//! sockets, so it keeps answering while a test blocks (waiting on a child process, sleeping),
//! whatever runtime the test uses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// `POST`, ...
    pub method: String,
    /// The request target, e.g. `/hook`.
    pub path: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, exactly as sent.
    pub body: Vec<u8>,
    /// When the whole request had been read (before any delay set with
    /// [`Receiver::set_delay`]): for latency measurements against the sender's own clock.
    pub received_at: SystemTime,
}

impl Request {
    /// The first header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

struct Shared {
    requests: Mutex<Vec<Request>>,
    status: AtomicU16,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
    stop: AtomicBool,
    /// Requests read in full, counted before any delay (recorded ones are counted after it).
    arrived: AtomicUsize,
}

/// The receiver; dropping it closes the port.
pub struct Receiver {
    /// The port it listens on (kept across down/up).
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free port, answering 200 to everything.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            arrived: AtomicUsize::new(0),
        });
        let acceptor = Some(spawn_acceptor(listener, shared.clone()));
        Receiver { port, shared, acceptor }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers with `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Waits this long before each answer.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Closes the port: connections are refused until [`Receiver::come_back`].
    pub fn go_down(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().expect("the acceptor thread ends");
        }
    }

    /// Listens again on the same port.
    pub fn come_back(&mut self) {
        assert!(self.acceptor.is_none(), "the receiver is already up");
        self.shared.stop.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("receiver: cannot bind port {} yet ({e}); retrying", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot bind receiver port {} again: {e}", self.port),
            }
        };
        self.acceptor = Some(spawn_acceptor(listener, self.shared.clone()));
    }

    /// How many requests arrived so far, including those still waiting out a delay (which
    /// [`Receiver::requests`] lists only once answered).
    pub fn arrived(&self) -> usize {
        self.shared.arrived.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout` naming how many did.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "receiver: {} of {n} requests within {timeout:?}", got.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.go_down();
        }
    }
}

fn spawn_acceptor(listener: TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let shared = shared.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve(stream, &shared) {
                    eprintln!("receiver: connection ended: {e}");
                }
            });
        }
    })
}

/// Serves requests on one connection until the client closes it (keep-alive is honoured, since
/// HTTP clients pool connections).
fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length: usize =
            headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let received_at = SystemTime::now();
        if shared.stop.load(Ordering::SeqCst) {
            // Down: the request is not recorded and gets no answer.
            return writer.shutdown(Shutdown::Both);
        }
        shared.arrived.fetch_add(1, Ordering::SeqCst);
        let delay = shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let status = shared.status.load(Ordering::SeqCst);
        // Recorded before answering: a test that saw the 2xx can rely on the record.
        shared.requests.lock().unwrap().push(Request { method, path, headers: headers.clone(), body, received_at });
        let answer = format!("HTTP/1.1 {status} Status\r\ncontent-length: 2\r\n\r\nok");
        writer.write_all(answer.as_bytes())?;
        if headers.iter().any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close")) {
            return writer.shutdown(Shutdown::Both);
        }
    }
}
