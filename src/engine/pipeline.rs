//! The per-packet pipeline every source feeds: frame → UDP datagram → SNMP message →
//! classification, with every packet that stops on the way counted by reason. What a
//! classified message may then do is the trust layer's to say (`crate::engine::trust`).
//!
//! A replay and the live receiver differ only in where frames and time come from: a
//! replay gives frames (`Pipeline::process_frame`), the receivers UDP payloads
//! (`Pipeline::process_datagram`), and both go the same way from there. It borrows the
//! packet, decodes into the caller's arena (reset per batch), allocates nothing and
//! takes no lock.

use bumpalo::Bump;

use crate::classify::{Classification, Classifier, Event};
use crate::engine::usm::{NotOpened, Usm, UsmRefusal};
use crate::time::Timestamp;
use crate::wire::frame::{Datagram, FrameDrop, LinkType, udp_datagram};
use crate::wire::{self, ErrorKind, Message, NotificationOidBuf};

/// The UDP ports that carry SNMP by default: agent (161) and trap (162).
pub const SNMP_PORTS: [u16; 2] = [161, 162];

/// What became of one frame.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// No UDP datagram in it.
    NoDatagram(FrameDrop),
    /// UDP, but neither port is an SNMP port.
    OtherPort(Datagram<'a>),
    /// SNMP that could not be decoded.
    Malformed(Datagram<'a>, wire::Error),
    /// SNMPv3 the security model refused.
    Refused(Datagram<'a>, UsmRefusal),
    /// A decoded message; notifications carry their classification.
    Message(Datagram<'a>, Message<'a>, Option<Classification>),
}

/// Counts of everything the pipeline saw, by kind and by drop reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames offered (captures).
    pub frames: u64,
    /// UDP datagrams offered (found in frames, or received from a socket).
    pub datagrams: u64,
    /// Frames without a UDP datagram, by reason (`FrameDrop::index`).
    pub no_datagram: [u64; FrameDrop::ALL.len()],
    /// UDP datagrams on other ports.
    pub other_port: u64,
    /// SNMP datagrams that did not decode, by reason (`ErrorKind::index`).
    pub malformed: [u64; ErrorKind::ALL.len()],
    /// SNMPv3 datagrams the security model refused, by reason (`UsmRefusal::index`).
    pub usm: [u64; UsmRefusal::ALL.len()],
    /// Decoded messages by PDU type (0–8).
    pub pdus: [u64; 9],
    /// Notifications by event (`Event::ALL` order).
    pub events: [u64; Event::ALL.len()],
}

impl Counters {
    /// Decoded SNMP messages.
    pub fn messages(&self) -> u64 {
        self.pdus.iter().sum()
    }

    /// Every drop reason with a non-zero count, named.
    pub fn drops(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let frames = FrameDrop::ALL
            .iter()
            .map(|d| (d.reason(), self.no_datagram[d.index()]));
        let other = core::iter::once(("udp_not_snmp_port", self.other_port));
        let malformed = ErrorKind::ALL
            .iter()
            .map(|k| (k.reason(), self.malformed[k.index()]));
        let usm = UsmRefusal::ALL
            .iter()
            .map(|r| (r.name(), self.usm[r.index()]));
        frames
            .chain(other)
            .chain(malformed)
            .chain(usm)
            .filter(|&(_, n)| n > 0)
    }

    /// Notifications classified as `event`.
    pub fn event(&self, event: Event) -> u64 {
        self.events[event as usize]
    }

    /// Adds `other`'s counts (another worker's) to these.
    pub fn add(&mut self, other: &Counters) {
        fn sum<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.frames += other.frames;
        self.datagrams += other.datagrams;
        sum(&mut self.no_datagram, &other.no_datagram);
        self.other_port += other.other_port;
        sum(&mut self.malformed, &other.malformed);
        sum(&mut self.usm, &other.usm);
        sum(&mut self.pdus, &other.pdus);
        sum(&mut self.events, &other.events);
    }
}

/// The decode → classify pipeline with its counters.
#[derive(Debug)]
pub struct Pipeline {
    classifier: Classifier,
    ports: Vec<u16>,
    counters: Counters,
    scratch: NotificationOidBuf,
    usm: Usm,
}

impl Pipeline {
    /// A pipeline over `classifier`, taking UDP on the standard SNMP ports and `extra_ports`.
    pub fn new(classifier: Classifier, extra_ports: &[u16]) -> Pipeline {
        let mut ports = SNMP_PORTS.to_vec();
        ports.extend_from_slice(extra_ports);
        ports.sort_unstable();
        ports.dedup();
        Pipeline {
            classifier,
            ports,
            counters: Counters::default(),
            scratch: NotificationOidBuf::default(),
            usm: Usm::default(),
        }
    }

    /// The security model v3 messages are opened with (a site's users).
    pub fn set_usm(&mut self, usm: Usm) {
        self.usm = usm;
    }

    /// The security model (a reload keeps its engines through `Usm::reload`).
    pub fn usm_mut(&mut self) -> &mut Usm {
        &mut self.usm
    }

    /// The classifier (for names in reports).
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Replaces the classifier (a reloaded site's rules); the counters go on.
    pub fn set_classifier(&mut self, classifier: Classifier) {
        self.classifier = classifier;
    }

    /// Everything counted so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Runs one captured frame, taken at `now`, through the pipeline.
    #[inline]
    pub fn process_frame<'a>(
        &mut self,
        link: LinkType,
        frame: &'a [u8],
        arena: &'a Bump,
        now: Timestamp,
    ) -> Outcome<'a> {
        match self.frame(link, frame) {
            Ok(d) => self.process_datagram(d, arena, now),
            Err(drop) => Outcome::NoDatagram(drop),
        }
    }

    /// The UDP datagram in one captured frame, counted (a frame with none counted by
    /// why): what a replay gives the trap port's machine or `process_datagram`.
    pub fn frame<'a>(
        &mut self,
        link: LinkType,
        frame: &'a [u8],
    ) -> Result<Datagram<'a>, FrameDrop> {
        self.counters.frames += 1;
        udp_datagram(link, frame).inspect_err(|drop| self.counters.no_datagram[drop.index()] += 1)
    }

    /// Runs one UDP datagram (from a socket, or found in a frame), received at `now`,
    /// through the pipeline: v1 and v2c decoded, v3 opened by the security model (its
    /// time window runs on `now`).
    #[inline]
    pub fn process_datagram<'a>(
        &mut self,
        d: Datagram<'a>,
        arena: &'a Bump,
        now: Timestamp,
    ) -> Outcome<'a> {
        if !self.ports.contains(&d.dst_port) && !self.ports.contains(&d.src_port) {
            self.counters.datagrams += 1;
            self.counters.other_port += 1;
            return Outcome::OtherPort(d);
        }
        self.process_snmp(d, arena, now)
    }

    /// The same, for a datagram known to be SNMP by where it came (a trap port's socket,
    /// a replayed frame to a trap port): no port check.
    #[inline]
    pub fn process_snmp<'a>(
        &mut self,
        d: Datagram<'a>,
        arena: &'a Bump,
        now: Timestamp,
    ) -> Outcome<'a> {
        self.counters.datagrams += 1;
        // Matched by reference: moving the message out of the Result just after it was
        // written would read it back across the stores that wrote it, and wait for them.
        let parsed = Message::parse(d.payload, arena);
        let opened;
        let parsed = match &parsed {
            Err(e) if e.kind == ErrorKind::UnsupportedV3 => {
                opened = match self.usm.open_from(d.payload, Some(d.src), now, arena) {
                    Ok(m) => Ok(m),
                    Err(NotOpened::Malformed(e)) => Err(e),
                    Err(NotOpened::Refused(r)) => {
                        self.counters.usm[r.index()] += 1;
                        return Outcome::Refused(d, r);
                    }
                };
                &opened
            }
            other => other,
        };
        match parsed {
            Err(e) => {
                self.counters.malformed[e.kind.index()] += 1;
                Outcome::Malformed(d, *e)
            }
            Ok(m) => {
                let kind = m.pdu_type().0 as usize;
                if let Some(n) = self.counters.pdus.get_mut(kind) {
                    *n += 1;
                }
                let class = self.classifier.classify_message(m, &mut self.scratch);
                if let Some(c) = class {
                    self.counters.events[c.event as usize] += 1;
                }
                Outcome::Message(d, *m, class)
            }
        }
    }
}
