//! The NUT and apcupsd clients of a capture, followed as their TCP connections: what a
//! replay hands the station of them (a client connects, sends bytes, leaves), the
//! same inputs the live daemon's TCP side gives it.
//!
//! Only what clients send counts: the server's half is trapgate's own answers, which
//! the station makes again. A connection opens on the client's SYN, or on its first
//! data when the capture began after it; its bytes go in sequence order once each (a
//! retransmission's part already seen is skipped, a gap the capture missed is passed
//! over); a FIN or RST from either side closes it. A connection the station closed
//! (a stranger, a line too long) is ignored until the client opens another.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::engine::nut::ConnId;
use crate::wire::frame::{Segment, tcp};

pub use crate::engine::nut::Service;

/// What a segment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A client at this address connected (`ConnId` new).
    Connected(Service, ConnId, IpAddr),
    /// Bytes from the client, in order, new.
    Bytes(Service, ConnId, &'a [u8]),
    /// The connection closed.
    Closed(Service, ConnId),
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    service: Service,
    /// The next byte expected from the client.
    next: u32,
    /// The station closed it: ignored until a new SYN.
    dropped: bool,
}

/// The client connections of a capture, keyed by (client, server).
#[derive(Debug)]
pub struct Clients {
    nut_port: u16,
    nis_port: u16,
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    next_id: ConnId,
    /// Bytes the capture missed (a gap in a client's sequence).
    pub gaps: u64,
}

impl Clients {
    /// Follows clients of a NUT server on `nut_port` and an NIS server on `nis_port`.
    pub fn new(nut_port: u16, nis_port: u16) -> Clients {
        Clients {
            nut_port,
            nis_port,
            conns: HashMap::new(),
            next_id: 1,
            gaps: 0,
        }
    }

    /// What segment `s` does, in order (at most a connect, its bytes, a close).
    pub fn segment<'a>(&mut self, s: &Segment<'a>, out: &mut Vec<Step<'a>>) {
        let service_at = |port: u16| {
            if port == self.nut_port {
                Some(Service::Nut)
            } else if port == self.nis_port {
                Some(Service::Nis)
            } else {
                None
            }
        };
        let (src, dst) = (
            SocketAddr::new(s.src, s.src_port),
            SocketAddr::new(s.dst, s.dst_port),
        );
        let from_client = service_at(s.dst_port);
        let Some(service) = from_client.or(service_at(s.src_port)) else {
            return;
        };
        let key = if from_client.is_some() {
            (src, dst)
        } else {
            (dst, src)
        };
        let closing = s.flags & (tcp::FIN | tcp::RST) != 0;
        if from_client.is_none() {
            // The server's half: only its close matters.
            if closing {
                self.close(key, out);
            }
            return;
        }
        let syn = s.flags & tcp::SYN != 0;
        if syn {
            // A new connection on the same ports ends the old one.
            self.close(key, out);
        }
        if !self.conns.contains_key(&key) {
            if !syn && (s.payload.is_empty() || closing) {
                // An ACK or a close of a connection the capture never saw open.
                return;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.conns.insert(
                key,
                Conn {
                    id,
                    service,
                    // The SYN takes one sequence number; data seen first starts here.
                    next: if syn { s.seq.wrapping_add(1) } else { s.seq },
                    dropped: false,
                },
            );
            out.push(Step::Connected(service, id, s.src));
        }
        let c = self.conns.get_mut(&key).expect("just made");
        if c.dropped {
            return;
        }
        let start = if syn { s.seq.wrapping_add(1) } else { s.seq };
        if !s.payload.is_empty() {
            // How far this segment starts after the next byte expected (negative: it
            // repeats bytes already seen), in sequence space.
            let ahead = start.wrapping_sub(c.next) as i32;
            let new = if ahead >= 0 {
                self.gaps += ahead as u64;
                s.payload
            } else {
                s.payload
                    .get(ahead.unsigned_abs() as usize..)
                    .unwrap_or(&[])
            };
            if !new.is_empty() {
                c.next = start.wrapping_add(s.payload.len() as u32);
                out.push(Step::Bytes(c.service, c.id, new));
            }
        }
        if closing {
            self.close(key, out);
        }
    }

    /// The station closed connection `id` (a stranger, a line too long): what the
    /// client sends on it is ignored.
    pub fn dropped(&mut self, id: ConnId) {
        if let Some(c) = self.conns.values_mut().find(|c| c.id == id) {
            c.dropped = true;
        }
    }

    fn close<'a>(&mut self, key: (SocketAddr, SocketAddr), out: &mut Vec<Step<'a>>) {
        if let Some(c) = self.conns.remove(&key)
            && !c.dropped
        {
            out.push(Step::Closed(c.service, c.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(from_client: bool, seq: u32, flags: u8, payload: &'static [u8]) -> Segment<'static> {
        let (client, server) = ("10.0.0.30".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let (src, dst, sp, dp) = if from_client {
            (client, server, 50000, 3493)
        } else {
            (server, client, 3493, 50000)
        };
        Segment {
            src,
            dst,
            src_port: sp,
            dst_port: dp,
            seq,
            flags,
            payload,
        }
    }

    fn steps(c: &mut Clients, s: Segment<'static>) -> Vec<Step<'static>> {
        let mut out = Vec::new();
        c.segment(&s, &mut out);
        out
    }

    #[test]
    fn a_client_s_bytes_go_in_once_in_order_and_its_close_ends_it() {
        let mut c = Clients::new(3493, 3551);
        let peer: IpAddr = "10.0.0.30".parse().unwrap();
        assert_eq!(
            steps(&mut c, seg(true, 99, tcp::SYN, b"")),
            [Step::Connected(Service::Nut, 1, peer)]
        );
        assert_eq!(
            steps(&mut c, seg(false, 5000, tcp::SYN | tcp::ACK, b"")),
            []
        );
        let login = seg(true, 100, tcp::PSH | tcp::ACK, b"USERNAME monuser\n");
        assert_eq!(
            steps(&mut c, login),
            [Step::Bytes(Service::Nut, 1, b"USERNAME monuser\n")]
        );
        // The server's answer is not input; a retransmission adds nothing.
        assert_eq!(steps(&mut c, seg(false, 5001, tcp::ACK, b"OK\n")), []);
        assert_eq!(steps(&mut c, login), []);
        // A retransmission that overlaps and goes on: only the new part.
        let next = 100 + 17;
        assert_eq!(
            steps(
                &mut c,
                seg(true, next - 3, tcp::ACK, b"er\nPASSWORD secret\n")
            ),
            [Step::Bytes(Service::Nut, 1, b"PASSWORD secret\n")]
        );
        // Data after a gap the capture missed still goes in, and the gap is counted.
        let after = next + 16 + 4;
        assert_eq!(
            steps(&mut c, seg(true, after, tcp::ACK | tcp::FIN, b"LOGOUT\n")),
            [
                Step::Bytes(Service::Nut, 1, b"LOGOUT\n"),
                Step::Closed(Service::Nut, 1)
            ]
        );
        assert_eq!(c.gaps, 4);
        // Closed: a late segment of it is an unknown connection's ACK.
        assert_eq!(steps(&mut c, seg(true, after + 8, tcp::ACK, b"")), []);
    }

    #[test]
    fn a_connection_seen_mid_way_a_reset_a_dropped_one_and_other_ports() {
        let mut c = Clients::new(3493, 3551);
        let peer: IpAddr = "10.0.0.30".parse().unwrap();
        // The capture began after the SYN: the first data opens it.
        assert_eq!(
            steps(&mut c, seg(true, 7, tcp::ACK, b"GET VAR ups ups.status\n")),
            [
                Step::Connected(Service::Nut, 1, peer),
                Step::Bytes(Service::Nut, 1, b"GET VAR ups ups.status\n")
            ]
        );
        // The server resets it.
        assert_eq!(
            steps(&mut c, seg(false, 1, tcp::RST, b"")),
            [Step::Closed(Service::Nut, 1)]
        );
        // A new one the station then closes: what follows on it is ignored, and no
        // close is reported for it again.
        assert_eq!(
            steps(&mut c, seg(true, 1000, tcp::SYN, b"")),
            [Step::Connected(Service::Nut, 2, peer)]
        );
        c.dropped(2);
        assert_eq!(steps(&mut c, seg(true, 1001, tcp::ACK, b"x\n")), []);
        assert_eq!(steps(&mut c, seg(true, 1003, tcp::FIN, b"")), []);
        // Another port is not a client of either server.
        let mut other = seg(true, 1, tcp::SYN, b"");
        other.dst_port = 22;
        assert_eq!(steps(&mut c, other), []);
        // The NIS port.
        let mut nis = seg(true, 1, tcp::SYN, b"");
        nis.dst_port = 3551;
        assert_eq!(steps(&mut c, nis), [Step::Connected(Service::Nis, 3, peer)]);
    }
}
