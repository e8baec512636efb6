//! `trapgate replay --send`: a capture's SNMP datagrams played onto the network at the
//! capture's pace, for load and latency runs against a running gateway. Meant for
//! loopback and test namespaces.

use std::path::Path;

use crate::capture::read_capture;

/// What `send_capture` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// SNMP datagrams sent.
    pub datagrams: u64,
    /// Frames skipped (not UDP on an SNMP port).
    pub skipped: u64,
}

/// Replays the SNMP datagrams of a capture onto the network, to `to`, at the capture's
/// pace times `speed` (2.0: twice as fast; 0: as fast as possible). The payloads are
/// sent as captured, from one local socket. Meant for loopback and test namespaces.
pub fn send_capture(path: &Path, to: std::net::SocketAddr, speed: f64) -> Result<Sent, String> {
    use crate::engine::pipeline::SNMP_PORTS;
    use crate::wire::frame::udp_datagram;

    let mut datagrams: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut skipped = 0u64;
    read_capture(path, |f| match udp_datagram(f.link, f.data) {
        Ok(d) if SNMP_PORTS.contains(&d.dst_port) || SNMP_PORTS.contains(&d.src_port) => {
            datagrams.push((f.time_ns, d.payload.to_vec()))
        }
        _ => skipped += 1,
    })
    .map_err(|e| e.to_string())?;
    let bind = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
    let socket =
        std::net::UdpSocket::bind(bind).map_err(|e| format!("cannot open a socket: {e}"))?;
    let start = std::time::Instant::now();
    let first = datagrams.first().map_or(0, |(t, _)| *t);
    let mut sent = 0u64;
    for (t, payload) in &datagrams {
        if speed > 0.0 {
            let due =
                std::time::Duration::from_secs_f64(t.saturating_sub(first) as f64 / 1e9 / speed);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        socket
            .send_to(payload, to)
            .map_err(|e| format!("send to {to}: {e}"))?;
        sent += 1;
    }
    Ok(Sent {
        datagrams: sent,
        skipped,
    })
}
