//! The pair channel's datagrams, sans I/O: what one gateway of a pair tells the other
//! (its role, and the records only the actor can see), sealed and checked.
//!
//! ```text
//! "TGPAIR1\0" | session u64 | seq u64 | sent_ms u64 | kind u8 | body | HMAC-SHA256 (32)
//! ```
//!
//! The MAC is over the sender's pair endpoint (as text) and every byte before it, under
//! the pair's key: a datagram of one gateway reflected back to it is not its peer's. A
//! datagram is believed only with a good MAC, sent within `SKEW_MS` of the receiver's
//! clock, with a sequence number not seen before in its session (a 64-number window,
//! as IPsec's: reordering within it is taken, a replay is not), and a new session (the
//! peer restarted) only if it is newer than anything believed from the old one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first bytes of every pair datagram.
pub const MAGIC: &[u8; 8] = b"TGPAIR1\0";
/// magic, session, seq, sent_ms, kind.
const HEADER: usize = 8 + 8 + 8 + 8 + 1;
/// The HMAC-SHA256 at the end.
const MAC: usize = 32;
/// The largest datagram the channel sends (one Ethernet frame with room for IP/UDP).
pub const MAX_DATAGRAM: usize = 1400;
/// The most body one datagram carries.
pub const MAX_BODY: usize = MAX_DATAGRAM - HEADER - MAC;
/// How far apart the two gateways' clocks (and a datagram's age) may be.
pub const SKEW_MS: u64 = 30_000;
/// How far back a sequence number may come (reordered) and still be taken once.
const WINDOW: u64 = 64;

/// What a datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The sender's role and since when (`Hello::body`), every second and at each change.
    Hello,
    /// Records of the actor's, one a line: `wall_ns json`.
    Records,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Hello => 1,
            Kind::Records => 2,
        }
    }
}

/// What a datagram was refused for (counted by the receiver, by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Shorter than a header and a MAC, or without the magic.
    NotPair,
    /// Its MAC does not hold under the pair's key from the peer's endpoint.
    BadMac,
    /// Sent too long ago, or in the future, by the receiver's clock.
    Stale,
    /// Its sequence number was taken before, or is too old to tell.
    Replayed,
    /// Of an older session than the one believed.
    OldSession,
    /// A kind this trapgate does not know.
    UnknownKind,
}

impl Refused {
    /// Its name, as counted.
    pub fn name(self) -> &'static str {
        match self {
            Refused::NotPair => "not_pair",
            Refused::BadMac => "bad_mac",
            Refused::Stale => "stale",
            Refused::Replayed => "replayed",
            Refused::OldSession => "old_session",
            Refused::UnknownKind => "unknown_kind",
        }
    }

    /// Every reason, in the order they are counted.
    pub const ALL: [Refused; 6] = [
        Refused::NotPair,
        Refused::BadMac,
        Refused::Stale,
        Refused::Replayed,
        Refused::OldSession,
        Refused::UnknownKind,
    ];
}

/// A datagram believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Its sender's session (a random number each start).
    pub session: u64,
    /// Its sequence number.
    pub seq: u64,
    /// The sender's wall clock when it was sent, in ms since 1970.
    pub sent_ms: u64,
    /// What it carries.
    pub kind: Kind,
    /// The body.
    pub body: &'a [u8],
}

/// A gateway's role, as a hello says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// It holds the pair's address.
    pub actor: bool,
    /// Since when (wall clock, ms since 1970).
    pub since_ms: u64,
}

impl Hello {
    /// Its body.
    pub fn body(self) -> [u8; 9] {
        let mut b = [0; 9];
        b[0] = u8::from(self.actor);
        b[1..].copy_from_slice(&self.since_ms.to_be_bytes());
        b
    }

    /// Read from a body.
    pub fn read(body: &[u8]) -> Option<Hello> {
        let (&actor, rest) = body.split_first()?;
        Some(Hello {
            actor: actor == 1,
            since_ms: u64::from_be_bytes(rest.try_into().ok()?),
        })
    }
}

fn mac_of(key: &[u8], sender: &str, bytes: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(sender.as_bytes());
    mac.update(bytes);
    mac
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The sending half: one session, numbered datagrams.
pub struct Sealer {
    key: std::sync::Arc<[u8]>,
    /// The sender's endpoint, as the receiver names its peer.
    me: String,
    session: u64,
    seq: u64,
}

impl Sealer {
    /// A sender for endpoint `me` under `key`, in session `session` (random, each start).
    pub fn new(key: std::sync::Arc<[u8]>, me: std::net::SocketAddr, session: u64) -> Sealer {
        Sealer {
            key,
            me: me.to_string(),
            session,
            seq: 0,
        }
    }

    /// Seals `body` of `kind` sent at `now_ms` into `out` (cleared first); its sequence
    /// number.
    pub fn seal(&mut self, now_ms: u64, kind: Kind, body: &[u8], out: &mut Vec<u8>) -> u64 {
        self.seq += 1;
        out.clear();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&now_ms.to_be_bytes());
        out.push(kind.byte());
        out.extend_from_slice(body);
        let tag = mac_of(&self.key, &self.me, out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        self.seq
    }
}

/// The receiving half: what has been believed of the peer.
pub struct Opener {
    key: std::sync::Arc<[u8]>,
    /// The peer's endpoint, as its sealer names itself.
    peer: String,
    session: Option<u64>,
    highest: u64,
    /// Bit `i`: sequence number `highest - i` taken.
    window: u64,
    /// The latest send time believed, of any session.
    latest_ms: u64,
}

impl Opener {
    /// A receiver of what `peer` sends under `key`.
    pub fn new(key: std::sync::Arc<[u8]>, peer: std::net::SocketAddr) -> Opener {
        Opener {
            key,
            peer: peer.to_string(),
            session: None,
            highest: 0,
            window: 0,
            latest_ms: 0,
        }
    }

    /// Checks datagram `d` received at `now_ms` (wall clock): what it says, or why it is
    /// not believed. Nothing of a refused datagram changes what is believed.
    pub fn open<'a>(&mut self, now_ms: u64, d: &'a [u8]) -> Result<Opened<'a>, Refused> {
        if d.len() < HEADER + MAC || !d.starts_with(MAGIC) {
            return Err(Refused::NotPair);
        }
        let (signed, tag) = d.split_at(d.len() - MAC);
        mac_of(&self.key, &self.peer, signed)
            .verify_slice(tag)
            .map_err(|_| Refused::BadMac)?;
        let (session, seq, sent_ms) = (u64_at(d, 8), u64_at(d, 16), u64_at(d, 24));
        if sent_ms.abs_diff(now_ms) > SKEW_MS {
            return Err(Refused::Stale);
        }
        let kind = match d[32] {
            1 => Kind::Hello,
            2 => Kind::Records,
            _ => return Err(Refused::UnknownKind),
        };
        if self.session == Some(session) {
            self.take(seq)?;
        } else {
            // A new session: the peer restarted, after everything believed of the old.
            if self.session.is_some() && sent_ms <= self.latest_ms {
                return Err(Refused::OldSession);
            }
            self.session = Some(session);
            (self.highest, self.window) = (0, 0);
            self.take(seq)?;
        }
        self.latest_ms = self.latest_ms.max(sent_ms);
        Ok(Opened {
            session,
            seq,
            sent_ms,
            kind,
            body: &signed[HEADER..],
        })
    }

    /// Takes sequence number `seq` once.
    fn take(&mut self, seq: u64) -> Result<(), Refused> {
        if seq == 0 {
            return Err(Refused::Replayed);
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.window = if shift >= WINDOW {
                0
            } else {
                self.window << shift
            };
            self.window |= 1;
            self.highest = seq;
            return Ok(());
        }
        let back = self.highest - seq;
        if back >= WINDOW || self.window & (1 << back) != 0 {
            return Err(Refused::Replayed);
        }
        self.window |= 1 << back;
        Ok(())
    }
}

/// Records packed into datagram bodies of at most `MAX_BODY` bytes, one a line
/// (`wall_ns json`); a record longer than a body goes alone, cut to nothing (counted by
/// the caller: no record of trapgate's comes near it).
#[derive(Default)]
pub struct Packer {
    bodies: Vec<Vec<u8>>,
}

impl Packer {
    /// Adds `record` made at `wall_ns`; false if it is too long to ship.
    pub fn add(&mut self, wall_ns: u64, record: &crate::engine::record::Record) -> bool {
        let mut line = wall_ns.to_string().into_bytes();
        line.push(b' ');
        if serde_json::to_writer(&mut line, record).is_err() {
            return false;
        }
        line.push(b'\n');
        if line.len() > MAX_BODY {
            return false;
        }
        match self.bodies.last_mut() {
            Some(b) if b.len() + line.len() <= MAX_BODY => b.extend_from_slice(&line),
            _ => self.bodies.push(line),
        }
        true
    }

    /// The bodies packed, emptied.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.bodies)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

/// The records of a `Records` body: each with its maker's wall clock; a line that does
/// not read is skipped and counted in the second value.
pub fn unpack(body: &[u8]) -> (Vec<(u64, crate::engine::record::Record)>, usize) {
    let mut got = Vec::new();
    let mut bad = 0;
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let read = line.iter().position(|&b| b == b' ').and_then(|sp| {
            let wall = std::str::from_utf8(&line[..sp]).ok()?.parse().ok()?;
            let r = serde_json::from_slice(&line[sp + 1..]).ok()?;
            Some((wall, r))
        });
        match read {
            Some(x) => got.push(x),
            None => bad += 1,
        }
    }
    (got, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::{Action, Decided, Record};
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn a() -> SocketAddr {
        "192.0.2.1:1620".parse().unwrap()
    }
    fn b() -> SocketAddr {
        "192.0.2.2:1620".parse().unwrap()
    }
    fn key() -> Arc<[u8]> {
        Arc::from(&b"0123456789abcdef-the-pair-key"[..])
    }
    const NOW: u64 = 1_800_000_000_000;

    fn sealed(s: &mut Sealer, at: u64, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        s.seal(at, Kind::Records, body, &mut out);
        out
    }

    #[test]
    fn a_sealed_datagram_opens_once_and_its_replay_is_refused() {
        let mut tx = Sealer::new(key(), a(), 7);
        let mut rx = Opener::new(key(), a());
        let d = sealed(&mut tx, NOW, b"hello");
        let o = rx.open(NOW + 5, &d).expect("believed");
        assert_eq!(
            (o.session, o.seq, o.kind, o.body),
            (7, 1, Kind::Records, &b"hello"[..])
        );
        assert_eq!(rx.open(NOW + 6, &d), Err(Refused::Replayed));
    }

    #[test]
    fn forged_truncated_reflected_and_stale_datagrams_are_refused() {
        let mut tx = Sealer::new(key(), a(), 7);
        let mut rx = Opener::new(key(), a());
        let d = sealed(&mut tx, NOW, b"records");
        // Every single flipped bit is refused, and believes nothing.
        for i in 0..d.len() {
            let mut f = d.clone();
            f[i] ^= 0x01;
            assert!(rx.open(NOW, &f).is_err(), "byte {i} flipped was believed");
        }
        for n in [0, 8, 40, d.len() - 1] {
            assert!(rx.open(NOW, &d[..n]).is_err(), "{n} bytes believed");
        }
        // Another key.
        let mut other = Sealer::new(Arc::from(&b"another-key-of-16-bytes"[..]), a(), 7);
        assert_eq!(
            rx.open(NOW, &sealed(&mut other, NOW, b"x")),
            Err(Refused::BadMac)
        );
        // B's own datagram sent back to it: sealed from B's endpoint, not A's.
        let mut from_b = Sealer::new(key(), b(), 9);
        assert_eq!(
            rx.open(NOW, &sealed(&mut from_b, NOW, b"x")),
            Err(Refused::BadMac)
        );
        // Too old, or from the future.
        assert_eq!(rx.open(NOW + SKEW_MS + 1, &d), Err(Refused::Stale));
        assert_eq!(rx.open(NOW - SKEW_MS - 1, &d), Err(Refused::Stale));
        // Nothing refused moved the window: the real one is still taken.
        assert!(rx.open(NOW, &d).is_ok());
    }

    #[test]
    fn reordered_datagrams_are_taken_once_within_the_window() {
        let mut tx = Sealer::new(key(), a(), 1);
        let mut rx = Opener::new(key(), a());
        let ds: Vec<Vec<u8>> = (0..100).map(|i| sealed(&mut tx, NOW + i, b"r")).collect();
        assert!(rx.open(NOW, &ds[10]).is_ok());
        assert!(rx.open(NOW, &ds[3]).is_ok(), "7 back: in the window");
        assert_eq!(rx.open(NOW, &ds[3]), Err(Refused::Replayed));
        assert!(rx.open(NOW, &ds[99]).is_ok());
        assert_eq!(
            rx.open(NOW, &ds[20]),
            Err(Refused::Replayed),
            "79 back: too old to tell"
        );
        assert!(rx.open(NOW, &ds[98]).is_ok());
    }

    #[test]
    fn a_restarted_peer_is_believed_and_its_old_session_is_not() {
        let mut old = Sealer::new(key(), a(), 1);
        let mut rx = Opener::new(key(), a());
        let before: Vec<Vec<u8>> = (0..3).map(|i| sealed(&mut old, NOW + i, b"r")).collect();
        assert!(rx.open(NOW + 2, &before[2]).is_ok());
        // Restarted: a new session, later.
        let mut new = Sealer::new(key(), a(), 2);
        assert!(rx.open(NOW + 10, &sealed(&mut new, NOW + 10, b"r")).is_ok());
        // The old session's datagrams, replayed, even unseen ones.
        for d in &before {
            assert_eq!(rx.open(NOW + 11, d), Err(Refused::OldSession));
        }
    }

    #[test]
    fn records_pack_into_bodies_and_read_back() {
        let mut p = Packer::default();
        let r = |i: u32| {
            Record::Action(Action::Sent {
                recorder: format!("nvr-{i}").into(),
                attempt: 1,
                to: Some("192.0.2.30:162".parse().unwrap()),
                detail: "APC lowBattery v1 trap".into(),
            })
        };
        for i in 0..200 {
            assert!(p.add(1_000 + u64::from(i), &r(i)));
        }
        assert!(p.add(
            5,
            &Record::Decision(Decided::Acknowledged {
                recorder: "nvr-1".into()
            })
        ));
        let bodies = p.take();
        assert!(bodies.len() > 1 && bodies.iter().all(|b| b.len() <= MAX_BODY));
        let all: Vec<(u64, Record)> = bodies.iter().flat_map(|b| unpack(b).0).collect();
        assert_eq!(all.len(), 201);
        assert_eq!(all[17], (1_017, r(17)));
        let (_, bad) = unpack(b"12 {\"action\":\"Nonsense\"}\nnot a line\n");
        assert_eq!(bad, 2);
    }
}
