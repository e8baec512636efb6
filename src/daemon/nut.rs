//! The NUT server's and the apcupsd NIS server's TCP side, on the decision thread's mio
//! poll: connections accepted (at most `MAX_CONNECTIONS`, `MAX_PER_ADDRESS` from one
//! address), their bytes handed to the station's NUT or NIS server (`crate::engine`,
//! sans-IO), its answers written back. Bounded everywhere and shared fairly: the
//! listener is served first every turn, then the connections in turn, each within a
//! budget of lines (or requests) per turn; a client that does not read its answers
//! (more than `MAX_PENDING` bytes waiting), says nothing for the idle timeout, or sends
//! a line past the protocol's limit is closed; a wrong password's answer is held back,
//! longer with each from the address. No client holds up a trap's decision.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::engine::station::Station;
use crate::time::Timestamp;

pub use crate::engine::nut::Service;

impl Service {
    /// The listening socket's token.
    pub fn listen(self) -> Token {
        match self {
            Service::Nut => Token(usize::MAX - 5),
            Service::Nis => Token(usize::MAX - 6),
        }
    }

    /// Where its connection tokens start (a connection's id added).
    fn base(self) -> usize {
        match self {
            Service::Nut => 1 << 40,
            Service::Nis => 1 << 41,
        }
    }
}
/// Connections at once to each server; more are closed as they come. (The gateway
/// raises its open-file limit to the hard limit; where that is too low for two servers
/// of this many, each takes what it leaves.)
pub const MAX_CONNECTIONS: usize = 10_000;
/// Connections at once from one address: a NAS's upsmon holds one, a host with several
/// NUT clients one each. One more from the address closes that address's oldest; a
/// full server closes the oldest of the address that holds the most. So one address
/// can never take the slots of another's.
pub const MAX_PER_ADDRESS: usize = 16;
/// A NUT connection that says nothing this long is closed (upsmon talks every few
/// seconds, and logs in again if it is cut).
pub const NUT_IDLE: Duration = Duration::from_secs(120);
/// An apcupsd NIS connection that says nothing this long is closed (apcupsd and
/// apcaccess ask one thing and hang up).
pub const NIS_IDLE: Duration = Duration::from_secs(15);
/// The receive buffer of each connection, bytes (the kernel doubles it for its own
/// bookkeeping).
const RECV_BUFFER: usize = 8 * 1024;
/// Answer bytes a connection may leave unread before it is closed.
pub const MAX_PENDING: usize = 256 * 1024;
/// Bytes read from one connection per visit (the rest waits for its next turn).
const READ_BUDGET: usize = 16 * 1024;
/// Connections accepted per turn of the decision loop, per server: the listener is
/// served first every turn, however busy the connections are.
pub const ACCEPTS_PER_TURN: usize = 16;
/// NUT lines and NIS requests answered per turn of the decision loop, over both
/// servers (each connection at most `crate::engine::nut::LINES_PER_TURN` or
/// `crate::engine::nis::REQUESTS_PER_TURN` of them, in turn): what is left waits for
/// the next turn, after the traps that came meanwhile.
pub const LINES_PER_TURN: usize = 128;

struct Conn {
    stream: TcpStream,
    peer: IpAddr,
    out: Vec<u8>,
    /// Close once `out` is written.
    closing: bool,
    /// Lines wait in the station's buffer: nothing more is read until they are answered.
    pending: bool,
    /// The answer is held until then (a wrong password's delay); nothing read meanwhile.
    held: Option<Instant>,
    /// When it last sent something (the idle timeout).
    active: Instant,
    /// In the queue of connections to serve.
    queued: bool,
}

/// A server's sockets: the listener and its connections.
pub struct NutTcp {
    service: Service,
    listener: TcpListener,
    conns: HashMap<u64, Conn>,
    /// Each address's connections, oldest first.
    by_peer: HashMap<IpAddr, VecDeque<u64>>,
    next: u64,
    /// Connections refused for being too many (none is, now: the oldest of the address
    /// that holds the most is closed instead; kept for a server that cannot register).
    pub refused: u64,
    /// Connections closed to make room for another (their address held too many, or the
    /// server was full).
    pub evicted: u64,
    /// Connections closed for saying nothing for the idle timeout.
    pub idle_closed: u64,
    /// Connections at once: `MAX_CONNECTIONS`, or fewer where the process may not open
    /// that many files (room kept for the gateway's own).
    max: usize,
    idle: Duration,
    /// The listener has connections waiting (readiness is edge-triggered: no new event
    /// comes for what stopped at the turn's budget).
    listening: bool,
    /// Connections to serve, in turn: ready, or stopped at their budget last turn.
    queue: VecDeque<u64>,
    /// Connections whose answer is held (a wrong password's delay), and until when:
    /// few, so looked through every turn without looking at every connection.
    held: Vec<(Instant, u64)>,
    /// When idle connections were last looked for.
    swept: Instant,
}

impl NutTcp {
    /// Binds `at` for `service` and registers it with `registry`.
    /// `free`: `at` need not be this host's yet (a pair's address, `IP_FREEBIND`).
    pub fn bind(
        at: SocketAddr,
        service: Service,
        registry: &Registry,
        free: bool,
    ) -> io::Result<NutTcp> {
        // A backlog for thousands of clients connecting at once (after a restart, or a
        // site's power coming back): the kernel caps it at net.core.somaxconn.
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(at),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        if free {
            crate::daemon::socket::set_freebind(&socket, at)?;
        }
        socket.set_nonblocking(true)?;
        // A NUT or apcupsd client sends words, not data: a small receive buffer (taken
        // by every accepted connection) bounds what 10,000 connections may make the
        // kernel hold for trapgate, throttles a client that floods, and leaves little
        // to free when such a connection is closed.
        socket.set_recv_buffer_size(RECV_BUFFER)?;
        socket.bind(&at.into())?;
        socket.listen(4096)?;
        let mut listener = TcpListener::from_std(socket.into());
        registry.register(&mut listener, service.listen(), Interest::READABLE)?;
        let files = crate::daemon::socket::raise_fd_limit() as usize;
        let max = MAX_CONNECTIONS.min(files.saturating_sub(512) / 2).max(16);
        Ok(NutTcp {
            service,
            listener,
            conns: HashMap::new(),
            by_peer: HashMap::new(),
            next: 0,
            refused: 0,
            evicted: 0,
            idle_closed: 0,
            max,
            idle: match service {
                Service::Nut => NUT_IDLE,
                Service::Nis => NIS_IDLE,
            },
            listening: false,
            queue: VecDeque::new(),
            held: Vec::new(),
            swept: Instant::now(),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` is its listening socket or one of its connections.
    pub fn owns(&self, token: Token) -> bool {
        let base = self.service.base();
        token == self.service.listen() || (token.0 >= base && token.0 < base + (1 << 39))
    }

    /// `token` is ready: the listener (connections to accept) or a connection (bytes
    /// to read, room to write). It is served by `serve`, in turn.
    pub fn ready(&mut self, token: Token) {
        if token == self.service.listen() {
            self.listening = true;
        } else {
            self.enqueue((token.0 - self.service.base()) as u64);
        }
    }

    fn enqueue(&mut self, id: u64) {
        if let Some(c) = self.conns.get_mut(&id)
            && !c.queued
        {
            c.queued = true;
            self.queue.push_back(id);
        }
    }

    /// One turn: connections accepted first (`ACCEPTS_PER_TURN`), then the connections
    /// waiting, in turn, until `lines` (NUT lines and NIS requests answered, taken
    /// from it) runs out; the rest goes on next turn.
    pub fn serve(
        &mut self,
        registry: &Registry,
        now: Timestamp,
        station: &mut Station,
        lines: &mut usize,
    ) {
        if self.listening {
            self.accept(registry, now, station);
        }
        let mut visits = self.queue.len();
        while visits > 0 && *lines > 0 {
            visits -= 1;
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            if let Some(c) = self.conns.get_mut(&id) {
                c.queued = false;
            }
            self.connection(id, registry, now, station, lines);
        }
    }

    /// Closes what said nothing for the idle timeout (looked for once a second), and
    /// lets the held connections whose delay is over go on.
    pub fn tick(&mut self, registry: &Registry, now: Timestamp, station: &mut Station) {
        let instant = Instant::now();
        if self.held.iter().any(|(until, _)| *until <= instant) {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|(until, _)| *until <= instant);
            self.held = later;
            for (_, id) in due {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.held = None;
                }
                self.enqueue(id);
            }
        }
        if instant.duration_since(self.swept) < Duration::from_secs(1) {
            return;
        }
        self.swept = instant;
        let idle = self.idle;
        let quiet: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.held.is_none() && instant.duration_since(c.active) >= idle)
            .map(|(id, _)| *id)
            .collect();
        for id in quiet {
            self.idle_closed += 1;
            self.close(id, registry, now, station);
        }
    }

    /// When `tick` has something to do next: a held answer's time, or the next look for
    /// idle connections.
    pub fn next_due(&self) -> Option<Instant> {
        let held = self.held.iter().map(|(until, _)| *until).min();
        let sweep = (!self.conns.is_empty()).then(|| self.swept + Duration::from_secs(1));
        held.into_iter().chain(sweep).min()
    }

    /// Accepts the waiting connections, `ACCEPTS_PER_TURN` at most.
    fn accept(&mut self, registry: &Registry, now: Timestamp, station: &mut Station) {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let peer = peer.ip();
                    // Room first: this address's oldest if it holds its share, else the
                    // oldest of the address holding the most if the server is full.
                    let holds = self.by_peer.get(&peer).map_or(0, VecDeque::len);
                    let evict = if holds >= MAX_PER_ADDRESS {
                        self.by_peer.get(&peer).and_then(|q| q.front().copied())
                    } else if self.conns.len() >= self.max {
                        self.by_peer
                            .values()
                            .max_by_key(|q| q.len())
                            .and_then(|q| q.front().copied())
                    } else {
                        None
                    };
                    if let Some(old) = evict {
                        self.evicted += 1;
                        self.close(old, registry, now, station);
                    }
                    self.next += 1;
                    let id = self.next;
                    if registry
                        .register(
                            &mut stream,
                            Token(self.service.base() + id as usize),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.refused += 1;
                        continue;
                    }
                    let reply = match self.service {
                        Service::Nut => station.handle_nut_connected(now, id, peer),
                        Service::Nis => station.handle_nis_connected(now, id, peer),
                    };
                    let mut c = Conn {
                        stream,
                        peer,
                        out: reply.bytes,
                        closing: reply.close,
                        pending: false,
                        held: None,
                        active: Instant::now(),
                        queued: false,
                    };
                    // A stranger is told and closed at once, if the words fit.
                    // (Or gone already.)
                    if Self::flush(&mut c).unwrap_or(true) && c.closing {
                        let _ = registry.deregister(&mut c.stream);
                        continue;
                    }
                    self.by_peer.entry(peer).or_default().push_back(id);
                    self.conns.insert(id, c);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listening = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.listening = false;
                    return;
                }
            }
        }
    }

    /// Closes connection `id`: its socket, its slot, and what the station knew of it.
    fn close(&mut self, id: u64, registry: &Registry, now: Timestamp, station: &mut Station) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        let _ = registry.deregister(&mut c.stream);
        if c.held.is_some() {
            self.held.retain(|(_, x)| *x != id);
        }
        if let Some(q) = self.by_peer.get_mut(&c.peer) {
            q.retain(|x| *x != id);
            if q.is_empty() {
                self.by_peer.remove(&c.peer);
            }
        }
        match self.service {
            Service::Nut => station.handle_nut_closed(now, id),
            Service::Nis => station.handle_nis_closed(now, id),
        }
    }

    /// Writes what `c` has waiting: true once all of it is written, false while the
    /// socket takes no more for now, an error once the connection is gone (a reset).
    fn flush(c: &mut Conn) -> io::Result<bool> {
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Serves connection `id`: the lines waiting in the station's buffer, then what it
    /// sent (each within `lines`), its answers written.
    fn connection(
        &mut self,
        id: u64,
        registry: &Registry,
        now: Timestamp,
        station: &mut Station,
        lines: &mut usize,
    ) {
        let service = self.service;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.held.is_some() {
            // Its delay is not over: `tick` brings it back.
            return;
        }
        let held = &mut self.held;
        let mut answer = |c: &mut Conn, bytes: &[u8], lines: &mut usize| {
            let reply = match service {
                Service::Nut => station.handle_nut_bytes(now, id, bytes, lines),
                Service::Nis => station.handle_nis_bytes(now, id, bytes, lines),
            };
            c.out.extend_from_slice(&reply.bytes);
            c.closing |= reply.close;
            c.pending = reply.more;
            if reply.hold > 0 {
                let until = Instant::now() + Duration::from_nanos(reply.hold);
                c.held = Some(until);
                held.push((until, id));
            }
        };
        let mut gone = false;
        let mut again = false;
        if c.pending {
            answer(c, &[], lines);
        }
        let mut buf = [0u8; 4096];
        let mut read = 0;
        while !c.closing && !c.pending && c.held.is_none() {
            if read >= READ_BUDGET || *lines == 0 {
                again = true;
                break;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    gone = true;
                    break;
                }
                Ok(n) => {
                    read += n;
                    c.active = Instant::now();
                    answer(c, &buf[..n], lines);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    gone = true;
                    break;
                }
            }
        }
        // A held answer is written when its delay is over.
        let written = if c.held.is_some() {
            Ok(false)
        } else {
            Self::flush(c)
        };
        // A connection whose answers cannot be written (the client reset it) is gone:
        // else its slot would stay taken, and a flood would fill every slot.
        let written = match written {
            Ok(w) => w,
            Err(_) => {
                gone = true;
                false
            }
        };
        let stuck = c.out.len() > MAX_PENDING;
        if gone || stuck || (c.closing && written && c.held.is_none()) {
            self.close(id, registry, now, station);
            return;
        }
        if (c.pending || again) && c.held.is_none() {
            self.enqueue(id);
        }
    }

    /// Whether something waits to be served next turn.
    pub fn has_more(&self) -> bool {
        self.listening || !self.queue.is_empty()
    }

    /// Which server it is.
    pub fn service(&self) -> Service {
        self.service
    }

    /// Connections open.
    pub fn open(&self) -> usize {
        self.conns.len()
    }
}
