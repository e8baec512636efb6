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
/// Connections at once; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Answer bytes a connection may leave unread before it is closed.
pub const MAX_PENDING: usize = 256 * 1024;
/// Bytes read from one connection per readiness (the rest waits for the next turn).
const READ_BUDGET: usize = 64 * 1024;

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
}

impl NutTcp {
    /// Binds `at` for `service` and registers it with `registry`.
    pub fn bind(at: SocketAddr, service: Service, registry: &Registry) -> io::Result<NutTcp> {
        let mut listener = TcpListener::bind(at)?;
        registry.register(&mut listener, service.listen(), Interest::READABLE)?;
        Ok(NutTcp {
            service,
            listener,
            conns: HashMap::new(),
            next: 0,
            refused: 0,
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

    /// Accepts every waiting connection.
    fn accept(&mut self, registry: &Registry, now: Timestamp, station: &mut Station) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
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
                    if Self::flush(&mut c) && c.closing {
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
    }

    /// Writes what `c` has waiting; true once all of it is written.
    fn flush(c: &mut Conn) -> bool {
        while !c.out.is_empty() {
            match c.stream.write(&c.out) {
                Ok(0) => return false,
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// `token` is ready: the listening socket (connections to accept), or a connection
    /// (its bytes read and answered, its answers written).
    pub fn ready(
        &mut self,
        token: Token,
        registry: &Registry,
        now: Timestamp,
        station: &mut Station,
    ) {
        if token == self.service.listen() {
            self.accept(registry, now, station);
        } else {
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
        let written = Self::flush(c);
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

    /// Connections open.
    pub fn open(&self) -> usize {
        self.conns.len()
    }
}
