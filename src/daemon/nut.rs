//! The NUT server's and the apcupsd NIS server's TCP side, on the decision thread's mio
//! poll: connections accepted
//! (at most `MAX_CONNECTIONS`), their bytes handed to the station's NUT server
//! (`crate::engine::nut`, sans-IO), its answers written back. Bounded everywhere: a
//! client that does not read its answers (more than `MAX_PENDING` bytes waiting) is
//! closed, and a line past the protocol's limit closes its connection, so that no client
//! holds up a trap's decision.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

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
/// The receive buffer of each connection, bytes (the kernel doubles it for its own
/// bookkeeping).
const RECV_BUFFER: usize = 8 * 1024;
/// Answer bytes a connection may leave unread before it is closed.
pub const MAX_PENDING: usize = 256 * 1024;
/// Bytes read from one connection per turn of the decision loop (the rest waits for the
/// next turn, after the traps that came meanwhile).
const READ_BUDGET: usize = 16 * 1024;
/// Connections accepted or read per turn of the decision loop, over both servers: what
/// is left waits for the next turn, after the traps that came meanwhile, so that a
/// connection or line flood delays a trap's decision by one such share at most.
pub const PER_TURN: usize = 16;

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    /// Close once `out` is written.
    closing: bool,
}

/// The NUT server's sockets.
pub struct NutTcp {
    service: Service,
    listener: TcpListener,
    conns: HashMap<u64, Conn>,
    next: u64,
    /// Connections refused for being too many.
    pub refused: u64,
    /// Connections at once: `MAX_CONNECTIONS`, or fewer where the process may not open
    /// that many files (room kept for the gateway's own).
    max: usize,
    /// What stopped at its budget this turn and goes on next turn (readiness is
    /// edge-triggered: no new event would come for it): connections, the listener.
    more: Vec<Token>,
}

impl NutTcp {
    /// Binds `at` for `service` and registers it with `registry`.
    pub fn bind(at: SocketAddr, service: Service, registry: &Registry) -> io::Result<NutTcp> {
        // A backlog for thousands of clients connecting at once (after a restart, or a
        // site's power coming back): the kernel caps it at net.core.somaxconn.
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(at),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
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
            next: 0,
            refused: 0,
            max,
            more: Vec::new(),
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

    /// Accepts the waiting connections, up to the turn's budget.
    fn accept(
        &mut self,
        registry: &Registry,
        now: Timestamp,
        station: &mut Station,
        budget: &mut usize,
    ) {
        while *budget > 0 {
            *budget -= 1;
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.max {
                        self.refused += 1;
                        continue;
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
                        continue;
                    }
                    let reply = match self.service {
                        Service::Nut => station.handle_nut_connected(now, id, peer.ip()),
                        Service::Nis => station.handle_nis_connected(now, id, peer.ip()),
                    };
                    let mut c = Conn {
                        stream,
                        out: reply.bytes,
                        closing: reply.close,
                    };
                    // A stranger is told and closed at once, if the words fit.
                    // (Or gone already.)
                    if Self::flush(&mut c).unwrap_or(true) && c.closing {
                        let _ = registry.deregister(&mut c.stream);
                        continue;
                    }
                    self.conns.insert(id, c);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        self.more.push(self.service.listen());
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

    /// `token` is ready: the listening socket (connections to accept), or a connection
    /// (its bytes read and answered, its answers written).
    pub fn ready(
        &mut self,
        token: Token,
        registry: &Registry,
        now: Timestamp,
        station: &mut Station,
        budget: &mut usize,
    ) {
        if *budget == 0 {
            self.more.push(token);
        } else if token == self.service.listen() {
            self.accept(registry, now, station, budget);
        } else {
            *budget -= 1;
            self.connection(token, registry, now, station);
        }
    }

    fn connection(
        &mut self,
        token: Token,
        registry: &Registry,
        now: Timestamp,
        station: &mut Station,
    ) {
        let id = (token.0 - self.service.base()) as u64;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut read = 0;
        let mut gone = false;
        while !c.closing && read < READ_BUDGET {
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    gone = true;
                    break;
                }
                Ok(n) => {
                    read += n;
                    let reply = match self.service {
                        Service::Nut => station.handle_nut_bytes(now, id, &buf[..n]),
                        Service::Nis => station.handle_nis_bytes(now, id, &buf[..n]),
                    };
                    c.out.extend_from_slice(&reply.bytes);
                    c.closing |= reply.close;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    gone = true;
                    break;
                }
            }
        }
        if read >= READ_BUDGET && !gone && !c.closing {
            self.more.push(token);
        }
        // A connection whose answers cannot be written (the client reset it) is gone:
        // else its slot would stay taken, and a flood would fill every slot.
        let written = match Self::flush(c) {
            Ok(w) => w,
            Err(_) => {
                gone = true;
                false
            }
        };
        let stuck = c.out.len() > MAX_PENDING;
        if gone || stuck || (c.closing && written) {
            if let Some(mut c) = self.conns.remove(&id) {
                let _ = registry.deregister(&mut c.stream);
            }
            match self.service {
                Service::Nut => station.handle_nut_closed(now, id),
                Service::Nis => station.handle_nis_closed(now, id),
            }
        }
    }

    /// Whether something stopped at its budget and goes on next turn.
    pub fn has_more(&self) -> bool {
        !self.more.is_empty()
    }

    /// Goes on with what stopped at its budget last turn.
    pub fn resume(
        &mut self,
        registry: &Registry,
        now: Timestamp,
        station: &mut Station,
        budget: &mut usize,
    ) {
        let mut more = std::mem::take(&mut self.more);
        more.sort_unstable_by_key(|t| t.0);
        more.dedup();
        for token in more {
            self.ready(token, registry, now, station, budget);
        }
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
