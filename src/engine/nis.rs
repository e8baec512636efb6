//! An apcupsd network information server (NIS, apcupsd's `nis.c`), sans-IO: the framing
//! of apcupsd's network clients and `apcaccess` (each message a two-byte big-endian
//! length and its bytes; a reply's records likewise, ended by a record of length 0),
//! the `status` and `events` requests, and the status lines those clients read.
//!
//! Each client is a `[[recorder]]` of `kind = "apcupsd"`, known by its address. What it
//! is shown is its own: `ONLINE`, `ONBATT`, `ONBATT LOWBATT` from the real UPS, and once
//! the policy orders it down, `ONBATT LOWBATT` with a charge and a time left of 0, on
//! which an apcupsd network client shuts down. apcupsd clients send no acknowledgement:
//! the station records that the recorder fetched the shutdown status (`Presented`), and
//! no more.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::engine::config::{RecorderKind, Site};
use crate::engine::id::RecorderId;
use crate::engine::nut::{ConnId, NutView, Reply};

/// The longest request a client may send (apcupsd's own requests are a word).
pub const MAX_REQUEST: usize = 256;

/// What the station learns from the NIS server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NisEvent {
    /// A recorder's client fetched its status; `forced`: the shutdown status.
    Fetched(RecorderId, bool),
}

/// The NIS server of a site.
#[derive(Debug, Default)]
pub struct NisServer {
    by_address: HashMap<IpAddr, RecorderId>,
    conns: HashMap<ConnId, (IpAddr, Vec<u8>)>,
    events: Vec<NisEvent>,
    /// Each recorder's status as last made, with what it was made of: made again only
    /// when that changes (a status flood costs a copy per request, not a rendering).
    rendered: HashMap<RecorderId, (NutView, String, Vec<u8>)>,
}

/// Requests one connection may have answered per `received` at most (its turn).
pub const REQUESTS_PER_TURN: usize = 8;

/// Appends one record: its length, then its bytes.
fn record(out: &mut Vec<u8>, text: &str) {
    let n = text.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..n]);
}

/// apcupsd's status bits for `status` (its `defines.h`: UPS_online 0x08, UPS_onbatt
/// 0x10, UPS_battlow 0x40, UPS_plugged 0x01000000, UPS_battpresent 0x04000000).
fn statflag(status: &str) -> u32 {
    let mut f = 0x0100_0000 | 0x0400_0000;
    if status.contains("ONLINE") {
        f |= 0x08;
    }
    if status.contains("ONBATT") {
        f |= 0x10;
    }
    if status.contains("LOWBATT") {
        f |= 0x40;
    }
    f
}

/// The status lines apcupsd's `apcaccess` prints, for `view` of recorder `name`.
pub fn status_lines(name: &str, view: &NutView) -> Vec<String> {
    let status = match (view.forced, view.on_battery, view.battery_low) {
        (true, _, _) | (_, true, true) => "ONBATT LOWBATT",
        (_, true, false) => "ONBATT",
        (_, false, true) => "ONLINE LOWBATT",
        _ => "ONLINE",
    };
    let (charge, minutes) = if view.forced {
        (Some(0.0), Some(0.0))
    } else {
        (
            view.charge.map(f64::from),
            view.runtime.map(|s| f64::from(s) / 60.0),
        )
    };
    let mut lines = vec![
        ("APC", "001,018,0440".to_string()),
        ("HOSTNAME", "trapgate".to_string()),
        ("VERSION", format!("trapgate {}", env!("CARGO_PKG_VERSION"))),
        ("UPSNAME", view.ups_name.clone()),
        ("CABLE", "Ethernet Link".to_string()),
        ("DRIVER", "trapgate NIS".to_string()),
        ("UPSMODE", "Net Slave".to_string()),
        (
            "MODEL",
            format!("trapgate view of {} for {name}", view.ups_name),
        ),
        ("STATUS", status.to_string()),
        // What apcupsd's network driver reads (drivers/net: STATFLAG, in hex): online
        // 0x08, on battery 0x10, battery low 0x40, with "battery present" and "plugged".
        (
            "STATFLAG",
            format!("0x{:08X} Status Flag", statflag(status)),
        ),
    ];
    if let Some(c) = charge {
        lines.push(("BCHARGE", format!("{c:.1} Percent")));
    }
    if let Some(m) = minutes {
        lines.push(("TIMELEFT", format!("{m:.1} Minutes")));
    }
    lines.push(("MBATTCHG", "5 Percent".to_string()));
    lines.push(("MINTIMEL", "3 Minutes".to_string()));
    lines.push(("MAXTIME", "0 Seconds".to_string()));
    lines.push(("END APC", String::new()));
    lines
        .into_iter()
        .map(|(k, v)| {
            let mut s = format!("{k:<9}: {v}");
            s = s.trim_end().to_string();
            s.push('\n');
            s
        })
        .collect()
}

impl NisServer {
    /// The NIS server of `site`'s recorders of kind `apcupsd`.
    pub fn new(site: &Site) -> NisServer {
        NisServer {
            by_address: RecorderId::enumerate(&site.recorders)
                .filter(|(_, r)| r.kind == RecorderKind::Apcupsd)
                .map(|(id, r)| (r.address, id))
                .collect(),
            ..NisServer::default()
        }
    }

    /// A connection from `peer`: taken only from an apcupsd recorder's address.
    pub fn connected(&mut self, conn: ConnId, peer: IpAddr) -> Reply {
        if !self.by_address.contains_key(&peer) {
            return Reply {
                close: true,
                ..Reply::default()
            };
        }
        self.conns.insert(conn, (peer, Vec::new()));
        Reply::default()
    }

    /// The connection closed.
    pub fn closed(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    /// Bytes from `conn`: its whole requests answered, at most `budget` of them (taken
    /// from it; `REQUESTS_PER_TURN` at most), `view` and `name` giving what each
    /// recorder is shown. Requests left wait (`Reply::more`) for a call with no new
    /// bytes.
    pub fn received(
        &mut self,
        conn: ConnId,
        bytes: &[u8],
        view: &dyn Fn(RecorderId) -> NutView,
        name: &dyn Fn(RecorderId) -> String,
        budget: &mut usize,
    ) -> Reply {
        let mut reply = Reply::default();
        let Some((peer, buf)) = self.conns.get_mut(&conn) else {
            reply.close = true;
            return reply;
        };
        let peer = *peer;
        buf.extend_from_slice(bytes);
        let mut taken = 0;
        loop {
            if buf.len() < 2 {
                break;
            }
            let n = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if n > MAX_REQUEST {
                reply.close = true;
                return reply;
            }
            if buf.len() < 2 + n {
                break;
            }
            if *budget == 0 || taken == REQUESTS_PER_TURN {
                reply.more = true;
                break;
            }
            *budget -= 1;
            taken += 1;
            let Some(&r) = self.by_address.get(&peer) else {
                reply.close = true;
                return reply;
            };
            let request = &buf[2..2 + n];
            let what = match String::from_utf8_lossy(request).trim() {
                "status" => 0,
                "events" => 1,
                _ => 2,
            };
            buf.drain(..2 + n);
            match what {
                0 => {
                    let v = view(r);
                    let who = name(r);
                    let fresh = self
                        .rendered
                        .get(&r)
                        .is_some_and(|(seen, n, _)| *seen == v && *n == who);
                    if !fresh {
                        let mut framed = Vec::with_capacity(512);
                        for line in status_lines(&who, &v) {
                            record(&mut framed, &line);
                        }
                        record(&mut framed, "");
                        self.rendered.insert(r, (v.clone(), who, framed));
                    }
                    if let Some((_, _, framed)) = self.rendered.get(&r) {
                        reply.bytes.extend_from_slice(framed);
                    }
                    self.events.push(NisEvent::Fetched(r, v.forced));
                }
                1 => {
                    record(
                        &mut reply.bytes,
                        "trapgate: no events kept for apcupsd clients\n",
                    );
                    record(&mut reply.bytes, "");
                }
                _ => {
                    record(&mut reply.bytes, "Invalid command\n");
                    record(&mut reply.bytes, "");
                }
            }
        }
        reply
    }

    /// The next event for the station.
    pub fn poll_event(&mut self) -> Option<NisEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// Takes a reloaded site (connections are short: they stay as they are).
    pub fn reload(&mut self, site: &Site) {
        let conns = std::mem::take(&mut self.conns);
        *self = NisServer::new(site);
        self.conns = conns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_request_is_answered_in_records_and_the_shutdown_status_is_onbatt_lowbatt() {
        let text = crate::engine::config::DEFAULT_SITE.replacen(
            "[[recorder]]\n",
            "[[recorder]]\nname = \"old-linux\"\naddress = \"192.168.61.40\"\nups = \"ups-main\"\ntier = 2\nshutdown_time = \"60s\"\nkind = \"apcupsd\"\n\n[[recorder]]\n",
            1,
        );
        let site = Site::parse(&text).expect("valid");
        let mut s = NisServer::new(&site);
        assert!(
            s.connected(1, "192.168.61.99".parse().unwrap()).close,
            "a stranger"
        );
        assert_eq!(
            s.connected(2, "192.168.61.40".parse().unwrap()),
            Reply::default()
        );
        let view = |forced: bool| {
            move |_| NutView {
                on_battery: true,
                battery_low: false,
                forced,
                charge: Some(80),
                runtime: Some(1200),
                ups_name: "ups-main".into(),
                mfr: "APC",
            }
        };
        let name = |_| "old-linux".to_string();
        // A request split across reads.
        assert_eq!(
            s.received(2, &[0, 6, b's', b't'], &view(false), &name, &mut {
                usize::MAX
            })
            .bytes,
            b""
        );
        let r = s.received(2, b"atus", &view(false), &name, &mut { usize::MAX });
        let text = String::from_utf8_lossy(&r.bytes).to_string();
        assert!(text.contains("STATUS   : ONBATT\n"), "{text}");
        assert!(text.contains("BCHARGE  : 80.0 Percent\n"), "{text}");
        assert!(text.contains("TIMELEFT : 20.0 Minutes\n"), "{text}");
        assert!(r.bytes.ends_with(&[0, 0]), "a zero-length record ends it");
        let r = s.received(
            2,
            &[0, 6, b's', b't', b'a', b't', b'u', b's'],
            &view(true),
            &name,
            &mut { usize::MAX },
        );
        let text = String::from_utf8_lossy(&r.bytes).to_string();
        assert!(text.contains("STATUS   : ONBATT LOWBATT\n"), "{text}");
        assert!(
            text.contains("BCHARGE  : 0.0 Percent\n") && text.contains("TIMELEFT : 0.0 Minutes\n")
        );
        let events: Vec<NisEvent> = std::iter::from_fn(|| s.poll_event()).collect();
        let r = RecorderId::enumerate(&site.recorders)
            .find(|(_, x)| x.name == "old-linux")
            .unwrap()
            .0;
        assert_eq!(
            events,
            [NisEvent::Fetched(r, false), NisEvent::Fetched(r, true)]
        );
        // A request longer than any apcupsd sends closes.
        assert!(
            s.received(2, &[0x40, 0], &view(false), &name, &mut { usize::MAX })
                .close
        );
    }
}
