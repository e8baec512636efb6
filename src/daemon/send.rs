//! `trapgate replay --send`: a capture's notifications played onto the network at the
//! capture's pace, for load and latency runs against a running gateway, each from the
//! local address the user maps its captured source to. Meant for loopback and test
//! namespaces.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;

use crate::capture::read_capture;
use crate::wire::{Message, PduType};

/// What `send_capture` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Notifications sent.
    pub datagrams: u64,
    /// Frames skipped (not UDP on an SNMP port, or not a notification).
    pub skipped: u64,
}

/// How `send_capture` plays a capture.
#[derive(Clone, Debug, Default)]
pub struct SendOptions {
    /// Pace multiplier (2.0: twice as fast; 0: as fast as possible).
    pub speed: f64,
    /// UDP ports taken as SNMP besides 161 and 162.
    pub ports: Vec<u16>,
    /// The local address each captured source is sent from (a gateway believes a trap
    /// only from its UPS's address).
    pub sources: Vec<(IpAddr, IpAddr)>,
    /// The local address the other sources are sent from (None: the kernel's choice).
    pub from: Option<IpAddr>,
}

/// Parses `CAPTURED=LOCAL` (`--source 192.168.61.250=127.0.0.250`).
pub fn parse_source(s: &str) -> Result<(IpAddr, IpAddr), String> {
    let (captured, local) = s.split_once('=').ok_or_else(|| {
        format!("`{s}`: expected CAPTURED=LOCAL, e.g. 192.168.61.250=127.0.0.250")
    })?;
    let ip = |a: &str| {
        a.trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("`{s}`: `{a}` is not an IP address"))
    };
    Ok((ip(captured)?, ip(local)?))
}

/// Replays the notifications of a capture (traps and informs; the requests and answers
/// it holds are another conversation) onto the network, to `to`, at the capture's pace
/// times `opts.speed`, the payloads as captured. Each is sent from the local address its
/// captured source maps to (`opts.sources`, else `opts.from`), one socket per address.
pub fn send_capture(path: &Path, to: SocketAddr, opts: &SendOptions) -> Result<Sent, String> {
    use crate::engine::pipeline::SNMP_PORTS;
    use crate::wire::frame::udp_datagram;

    let snmp = |p: u16| SNMP_PORTS.contains(&p) || opts.ports.contains(&p);
    let mut datagrams: Vec<(u64, IpAddr, Vec<u8>)> = Vec::new();
    let mut skipped = 0u64;
    let mut arena = bumpalo::Bump::new();
    read_capture(path, |f| {
        arena.reset();
        match udp_datagram(f.link, f.data) {
            Ok(d) if snmp(d.dst_port) || snmp(d.src_port) => {
                let notification = Message::parse(d.payload, &arena).is_ok_and(|m| {
                    matches!(
                        m.pdu_type(),
                        PduType::TRAP_V1 | PduType::SNMPV2_TRAP | PduType::INFORM_REQUEST
                    )
                });
                if notification {
                    datagrams.push((f.time_ns, d.src, d.payload.to_vec()));
                } else {
                    skipped += 1;
                }
            }
            _ => skipped += 1,
        }
    })
    .map_err(|e| e.to_string())?;
    // One socket per local address, all opened before the first send: a bad address
    // fails before anything left.
    let mut sockets: Vec<UdpSocket> = Vec::new();
    let mut index: HashMap<Option<IpAddr>, usize> = HashMap::new();
    let mut plan = Vec::with_capacity(datagrams.len());
    for (t, src, payload) in datagrams {
        let local = opts
            .sources
            .iter()
            .find(|(captured, _)| *captured == src)
            .map(|(_, l)| *l)
            .or(opts.from);
        let i = match index.get(&local) {
            Some(i) => *i,
            None => {
                let bind = match (local, to.is_ipv6()) {
                    (Some(a), _) => SocketAddr::new(a, 0),
                    (None, true) => SocketAddr::from(([0u16; 8], 0)),
                    (None, false) => SocketAddr::from(([0u8; 4], 0)),
                };
                let s = UdpSocket::bind(bind).map_err(|e| match local {
                    Some(a) => {
                        format!("cannot send from {a}: {e} (is it an address of this machine?)")
                    }
                    None => format!("cannot open a socket: {e}"),
                })?;
                sockets.push(s);
                index.insert(local, sockets.len() - 1);
                sockets.len() - 1
            }
        };
        plan.push((t, i, payload));
    }
    let start = std::time::Instant::now();
    let first = plan.first().map_or(0, |(t, _, _)| *t);
    let mut sent = 0u64;
    for (t, i, payload) in &plan {
        if opts.speed > 0.0 {
            let due = std::time::Duration::from_secs_f64(
                crate::time::ns::as_secs_f64(t.saturating_sub(first)) / opts.speed,
            );
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sockets[*i]
            .send_to(payload, to)
            .map_err(|e| format!("send to {to}: {e}"))?;
        sent += 1;
    }
    Ok(Sent {
        datagrams: sent,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_mapping_is_read_or_refused_with_the_bad_part_named() {
        assert_eq!(
            parse_source("192.168.61.250=127.0.0.250"),
            Ok((
                "192.168.61.250".parse().unwrap(),
                "127.0.0.250".parse().unwrap()
            ))
        );
        let e = parse_source("192.168.61.250").unwrap_err();
        assert!(e.contains("expected CAPTURED=LOCAL"), "{e}");
        let e = parse_source("192.168.61.250=localhost").unwrap_err();
        assert!(e.contains("`localhost` is not an IP address"), "{e}");
    }
}
