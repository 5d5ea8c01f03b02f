//! A TCP fault proxy: between tidings and a server (Dovecot, Postfix, the webhook receiver), on
//! a free 127.0.0.1 port, it forwards bytes both ways and, on command, breaks the connection
//! the way networks and servers do.
//!
//! - [`Proxy::cut_all`]: every live connection is shut down; [`Proxy::refuse_for`] closes new
//!   ones at once for a while (a server restarting).
//! - [`Proxy::stall`]: live and new connections swallow every byte and never answer, the
//!   sockets left open (a hung server, a dead NAT); the client must notice by its own deadline.
//! - [`Proxy::slow`]: each chunk delayed, or bytes limited per second.
//! - [`Proxy::arm`]: a [`Trigger`] on a byte pattern from one side (the client sending
//!   `UID MOVE`, the server answering `+ idling`), acting on that one connection after a number
//!   of further bytes, so a test can cut mid-FETCH, mid-DATA or mid-request-body.
//!
//! It is a byte proxy: TLS passes through untouched and is verified end to end (the harness
//! certificate names 127.0.0.1 and localhost, where the proxy listens), so patterns are only
//! seen on plaintext connections. Each connection's opening, fault and end are recorded with
//! their times ([`Proxy::history`]), so tests can measure how long the client took to notice.
//! Like [`super::Receiver`], it runs on OS threads with blocking sockets: it keeps forwarding
//! whatever the test's runtime is doing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Which peer sent the bytes a trigger looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// tidings (the proxy's client).
    Client,
    /// The server behind the proxy.
    Server,
}

/// What a fault does to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Both directions shut down: the client reads EOF or a reset.
    Cut,
    /// Nothing more is forwarded either way; the sockets stay open.
    Stall,
}

/// A fault that fires when `pattern` passes from `from`: the bytes up to the pattern's end and
/// `after` more are forwarded, then `fault` hits that connection. It fires `times` times.
#[derive(Clone, Debug)]
pub struct Trigger {
    /// The side whose bytes are watched.
    pub from: Side,
    /// The bytes to look for (case-sensitive).
    pub pattern: Vec<u8>,
    /// Bytes forwarded after the pattern before the fault.
    pub after: usize,
    /// What happens then.
    pub fault: Fault,
    /// How many matches fire (each on the connection it was seen on).
    pub times: usize,
    /// After the fault, new connections are closed at once for this long (a server restarting).
    pub refuse: Duration,
}

impl Trigger {
    /// Cuts the connection right after `pattern` passes from `from`, once.
    pub fn cut(from: Side, pattern: &str) -> Trigger {
        Trigger {
            from,
            pattern: pattern.as_bytes().to_vec(),
            after: 0,
            fault: Fault::Cut,
            times: 1,
            refuse: Duration::ZERO,
        }
    }

    /// Stalls the connection right after `pattern` passes from `from`, once.
    pub fn stall(from: Side, pattern: &str) -> Trigger {
        Trigger { fault: Fault::Stall, ..Trigger::cut(from, pattern) }
    }

    /// The same, `after` bytes later.
    pub fn after(self, after: usize) -> Trigger {
        Trigger { after, ..self }
    }

    /// The same, firing `times` times.
    pub fn times(self, times: usize) -> Trigger {
        Trigger { times, ..self }
    }

    /// The same, then refusing new connections for `outage`.
    pub fn then_refuse(self, outage: Duration) -> Trigger {
        Trigger { refuse: outage, ..self }
    }
}

/// One connection's life, as seen by the proxy.
#[derive(Clone, Debug)]
pub struct Connection {
    /// When the client connected.
    pub opened: Instant,
    /// A fault that hit it: what, why (the trigger's pattern or the command), when.
    pub fault: Option<(Fault, String, Instant)>,
    /// When the client side ended (EOF, error, or cut).
    pub closed: Option<Instant>,
}

/// The proxy; dropping it cuts every connection and closes the port.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    target: u16,
    state: Mutex<State>,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    connections: Vec<Connection>,
    /// Clones of each live connection's two sockets (client, server), to cut them.
    sockets: Vec<Option<(TcpStream, TcpStream)>>,
    /// Per connection: stalled (nothing forwarded any more).
    stalled: Vec<bool>,
    triggers: Vec<Trigger>,
    refuse_until: Option<Instant>,
    refused: usize,
    stall_new: bool,
    slow: Option<(Duration, Option<u64>)>,
}

impl Proxy {
    /// Forwards a free 127.0.0.1 port to `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared { target, state: Mutex::new(State::default()), stop: AtomicBool::new(false) });
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || accept(listener, shared))
        };
        Proxy { port, shared, acceptor: Some(acceptor) }
    }

    /// Shuts down every live connection.
    pub fn cut_all(&self) {
        let mut state = self.shared.lock();
        for id in 0..state.sockets.len() {
            state.fault(id, Fault::Cut, "cut_all");
        }
    }

    /// Closes new connections at once for `outage` (live ones are left alone).
    pub fn refuse_for(&self, outage: Duration) {
        self.shared.lock().refuse_until = Some(Instant::now() + outage);
    }

    /// `true`: every live and new connection stalls; `false`: new ones are served again (the
    /// stalled ones stay stalled until their client gives up).
    pub fn stall(&self, on: bool) {
        let mut state = self.shared.lock();
        state.stall_new = on;
        if on {
            for id in 0..state.sockets.len() {
                state.fault(id, Fault::Stall, "stall");
            }
        }
    }

    /// Delays each chunk by `delay` and, with `bytes_per_second`, paces the bytes; `None`
    /// forwards at full speed again.
    pub fn slow(&self, slow: Option<(Duration, Option<u64>)>) {
        self.shared.lock().slow = slow;
    }

    /// Adds a trigger; several may be armed at once (the first that matches fires).
    pub fn arm(&self, trigger: Trigger) {
        self.shared.lock().triggers.push(trigger);
    }

    /// Matches still to fire, over every armed trigger.
    pub fn armed(&self) -> usize {
        self.shared.lock().triggers.iter().map(|t| t.times).sum()
    }

    /// Every connection so far, in the order they came.
    pub fn history(&self) -> Vec<Connection> {
        self.shared.lock().connections.clone()
    }

    /// Connections forwarded so far (refused ones not counted).
    pub fn connections(&self) -> usize {
        self.shared.lock().connections.len()
    }

    /// Connections closed at once by [`Proxy::refuse_for`].
    pub fn refused(&self) -> usize {
        self.shared.lock().refused
    }

    /// How many connections a fault hit.
    pub fn faults(&self) -> usize {
        self.history().iter().filter(|c| c.fault.is_some()).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let mut state = self.shared.lock();
        for sockets in state.sockets.iter_mut() {
            if let Some((client, server)) = sockets.take() {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A pump thread that panicked holds nothing the others cannot go on with.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Applies `fault` to live connection `id` (a closed one is left as it is).
    fn fault(&mut self, id: usize, fault: Fault, why: &str) {
        let Some((client, server)) = &self.sockets[id] else { return };
        if self.connections[id].fault.is_none() {
            self.connections[id].fault = Some((fault, why.to_owned(), Instant::now()));
        }
        match fault {
            Fault::Stall => self.stalled[id] = true,
            Fault::Cut => {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                self.sockets[id] = None;
                self.connections[id].closed.get_or_insert_with(Instant::now);
            }
        }
    }

    /// The first armed trigger on `from` whose pattern ends within `seen` after byte `skip`
    /// (the bytes before it were already searched): its index and the pattern's end.
    fn matching(&self, from: Side, seen: &[u8], skip: usize) -> Option<(usize, usize)> {
        self.triggers.iter().enumerate().filter(|(_, t)| t.from == from && t.times > 0).find_map(|(i, t)| {
            seen.windows(t.pattern.len())
                .enumerate()
                .map(|(at, w)| (at + t.pattern.len(), w))
                .find(|(end, w)| *end > skip && *w == t.pattern.as_slice())
                .map(|(end, _)| (i, end))
        })
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let mut state = shared.lock();
        if state.refuse_until.is_some_and(|until| Instant::now() < until) {
            state.refused += 1;
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        drop(state);
        let Ok(server) = TcpStream::connect(("127.0.0.1", shared.target)) else {
            // The server is down: the client sees its connection closed, as it would be.
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) =
            (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
        else {
            continue;
        };
        let mut state = shared.lock();
        let id = state.connections.len();
        state.connections.push(Connection { opened: Instant::now(), fault: None, closed: None });
        state.sockets.push(Some((c3, s3)));
        state.stalled.push(false);
        if state.stall_new {
            state.fault(id, Fault::Stall, "stall");
        }
        drop(state);
        for (from, to, side) in [(client, s2, Side::Client), (server, c2, Side::Server)] {
            let shared = shared.clone();
            std::thread::spawn(move || pump(from, to, side, id, &shared));
        }
    }
}

/// Forwards `from` -> `to` for connection `id` until either end closes or a fault cuts it.
fn pump(mut from: TcpStream, mut to: TcpStream, side: Side, id: usize, shared: &Shared) {
    let mut buf = vec![0u8; 16 * 1024];
    // The last bytes already forwarded, so that a pattern split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    // A trigger that matched: bytes still to forward before its fault, and the fault.
    let mut pending: Option<(usize, Trigger, String)> = None;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            let mut state = shared.lock();
            if state.stalled[id] || state.sockets[id].is_none() {
                // Swallowed: read so the peer never blocks, never forwarded.
                break;
            }
            if pending.is_none() {
                let seen = [tail.as_slice(), data].concat();
                if let Some((t, end)) = state.matching(side, &seen, tail.len()) {
                    state.triggers[t].times -= 1;
                    let trigger = state.triggers[t].clone();
                    let why = format!("{side:?} sent {:?}", String::from_utf8_lossy(&trigger.pattern));
                    pending = Some((end - tail.len() + trigger.after, trigger, why));
                }
            }
            let slow = state.slow;
            drop(state);
            let take = pending.as_ref().map_or(data.len(), |(left, _, _)| (*left).min(data.len()));
            if let Some((delay, rate)) = slow {
                let paced = rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(take as f64 / r.max(1) as f64));
                std::thread::sleep(delay + paced);
            }
            if to.write_all(&data[..take]).is_err() {
                break;
            }
            remember(&mut tail, &data[..take]);
            data = &data[take..];
            if let Some((left, trigger, why)) = pending.take() {
                if left > take {
                    pending = Some((left - take, trigger, why));
                } else {
                    let mut state = shared.lock();
                    state.fault(id, trigger.fault, &why);
                    if !trigger.refuse.is_zero() {
                        state.refuse_until = Some(Instant::now() + trigger.refuse);
                    }
                }
            }
        }
        if shared.lock().sockets[id].is_none() {
            break;
        }
    }
    let mut state = shared.lock();
    if side == Side::Server && state.stalled[id] {
        // A stalled connection stays open for the client, whatever the server does: the client
        // must notice by its own deadline.
        return;
    }
    if let Some((client, server)) = state.sockets[id].take() {
        // One side ended: end the other, as a plain TCP relay would.
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    }
    state.connections[id].closed.get_or_insert_with(Instant::now);
}

/// Keeps the last 256 bytes forwarded (longer than any pattern a test uses).
fn remember(tail: &mut Vec<u8>, forwarded: &[u8]) {
    tail.extend_from_slice(forwarded);
    let excess = tail.len().saturating_sub(256);
    tail.drain(..excess);
}
