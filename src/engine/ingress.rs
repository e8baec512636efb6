//! The trap port, decided in one place: a datagram and `now` in; what to send back
//! (an inform's answer, a v3 Report), what to forward and to which `[[forward]]`
//! targets, what was refused, and what the station hears, out. Sans-IO: the receive
//! workers keep the sockets, `recvmmsg`, batching and hand-off, and call `handle` per
//! datagram; a replay calls it per frame.
//!
//! What one datagram goes through: cut by the receive buffer → counted; from an address
//! that is not the site's → dropped before decoding (decoded only for a target that
//! takes anyone's notifications, and then never believed); decoded and classified
//! (`Pipeline`); a v3 message the security model refused → the Report that lets its
//! sender go on (discovery, time) and, but for discovery, a refusal; checked by the trust
//! layer (`Trust::at_trap_port`); an inform answered with its source's community; routed
//! to the forward targets; a believed event heard by the station, an informational one
//! only timed; a recorder's well-formed message heard as "alive" at most once a second.

use std::net::SocketAddr;

use bumpalo::Bump;

use crate::classify::{Classification, Event};
use crate::engine::forward::Forwarding;
use crate::engine::id::RecorderId;
use crate::engine::pipeline::{Outcome, Pipeline};
use crate::engine::tally::{Counter, Tallies};
use crate::engine::trust::{Refusal, Says, Trust, Who};
use crate::time::{Timestamp, ns};
use crate::wire::frame::Datagram;
use crate::wire::v3::Level;
use crate::wire::{Message, Pdu, PduType, Version, encode};

/// A community string carried to the decision thread: inline when short (always, in
/// practice), so that a heard event allocates nothing.
#[derive(Clone, Debug)]
pub struct Community {
    len: u8,
    inline: [u8; 32],
    long: Option<Box<[u8]>>,
}

impl Community {
    /// `bytes`, kept.
    pub fn new(bytes: &[u8]) -> Community {
        let mut c = Community {
            len: 0,
            inline: [0; 32],
            long: None,
        };
        match c.inline.get_mut(..bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                c.len = bytes.len() as u8;
            }
            None => c.long = Some(bytes.into()),
        }
        c
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.long {
            Some(b) => b,
            None => &self.inline[..self.len as usize],
        }
    }
}

/// What the station hears from the trap port: only what the trust layer admitted.
#[derive(Clone, Debug)]
pub enum Heard {
    /// A notification the policy acts on, from a UPS or recorder of the site with its
    /// community.
    Event {
        /// The kernel's receive time, ns since the epoch.
        arrival: u64,
        /// Its source.
        source: std::net::IpAddr,
        /// Who that is (indices into the site the trust layer was made of).
        who: Who,
        /// Its community, or its SNMPv3 user (journaled).
        community: Community,
        /// For SNMPv3, the level the security model checked.
        v3: Option<Level>,
        /// What it was classified as (rule indices into the classifier's tables).
        class: Classification,
    },
    /// A recorder heard from: a well-formed message with its community (at most once a
    /// second; an acknowledgement is an event).
    Seen {
        /// The kernel's receive time.
        arrival: u64,
        /// The recorder.
        recorder: RecorderId,
    },
}

/// What one datagram at the trap port came to.
#[derive(Debug, Default)]
pub struct Took<'a> {
    /// Send `Ingress::reply` back to the datagram's source: what it is ("inform
    /// answered", "SNMPv3 Report").
    pub reply: Option<&'static str>,
    /// The `[[forward]]` targets that take it (a mask), and the message as decoded.
    pub forward: Option<(u64, Message<'a>)>,
    /// What the station hears.
    pub heard: Option<Heard>,
    /// A notification believed and decided here (informational: the policy ignores it),
    /// for its latency.
    pub decided: Option<Event>,
    /// Not believed: why, and its event if a notification.
    pub refused: Option<(Refusal, Option<Event>)>,
}

/// Where the trap port's machine puts what a datagram came to, part by part, as it
/// decides it (`Ingress::handle_into`).
pub trait Port<'a> {
    /// Send `bytes` back to the datagram's source: what they are ("inform answered",
    /// "SNMPv3 Report").
    fn reply(&mut self, what: &'static str, bytes: &[u8]);
    /// Forward the datagram, decoded as `m`, to the `[[forward]]` targets of `mask`.
    fn forward(&mut self, mask: u64, m: &Message<'a>);
    /// What the station hears.
    fn heard(&mut self, heard: Heard);
    /// A notification believed and decided here (informational: the policy ignores it).
    fn decided(&mut self, event: Event);
    /// Not believed: why, and its event if a notification.
    fn refused(&mut self, why: Refusal, event: Option<Event>);
}

impl<'a> Port<'a> for Took<'a> {
    fn reply(&mut self, what: &'static str, _: &[u8]) {
        self.reply = Some(what);
    }
    fn forward(&mut self, mask: u64, m: &Message<'a>) {
        self.forward = Some((mask, *m));
    }
    fn heard(&mut self, heard: Heard) {
        self.heard = Some(heard);
    }
    fn decided(&mut self, event: Event) {
        self.decided = Some(event);
    }
    fn refused(&mut self, why: Refusal, event: Option<Event>) {
        self.refused = Some((why, event));
    }
}

/// The trap port's machine, one per receive worker (or replay).
pub struct Ingress {
    pipeline: Pipeline,
    /// When each recorder was last heard as alive (kernel time).
    seen_at: Vec<u64>,
    reply: Vec<u8>,
    /// Where a v3 scoped PDU is encrypted.
    scratch: Vec<u8>,
    tallies: Tallies,
}

impl core::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ingress")
            .field("recorders", &self.seen_at.len())
            .finish()
    }
}

impl Ingress {
    /// The trap port of a site of `recorders` recorders, decoding with `pipeline`.
    pub fn new(pipeline: Pipeline, recorders: usize) -> Ingress {
        Ingress {
            pipeline,
            seen_at: vec![0; recorders],
            reply: Vec::with_capacity(2048),
            scratch: Vec::new(),
            tallies: Tallies::default(),
        }
    }

    /// A reloaded site of `recorders` recorders (the pipeline's classifier and users are
    /// the caller's to set).
    pub fn reload(&mut self, recorders: usize) {
        self.seen_at = vec![0; recorders];
    }

    /// The decode → classify pipeline (its counters, its classifier).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The same, to change.
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// Its plain counts: datagrams cut, from addresses not the site's (and of those,
    /// decoded for a forward target).
    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    /// The bytes to send back, when `Took::reply` says so.
    pub fn reply(&self) -> &[u8] {
        &self.reply
    }

    /// One datagram from `from` to `local` (`cut` by the receive buffer), received at
    /// `arrival` (the kernel's stamp, ns) and handled at `now` (the security model's
    /// clock), decoded into `arena`; `trust` and `forwarding` are the site's. What it
    /// came to, collected (`handle_into` hands each part to a `Port` as it is decided).
    #[allow(clippy::too_many_arguments)]
    pub fn handle<'a>(
        &mut self,
        trust: &Trust,
        forwarding: &Forwarding,
        now: Timestamp,
        ends: (SocketAddr, SocketAddr),
        payload: &'a [u8],
        cut: bool,
        arrival: u64,
        arena: &'a Bump,
    ) -> Took<'a> {
        let mut took = Took::default();
        self.handle_into(
            trust, forwarding, now, ends, payload, cut, arrival, arena, &mut took,
        );
        took
    }

    /// The same, each part handed to `port` as it is decided: the receive workers' way,
    /// which moves nothing it can hand by reference (the decoded message is never moved
    /// out of the pipeline's result, nor a result out of this function).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn handle_into<'a>(
        &mut self,
        trust: &Trust,
        forwarding: &Forwarding,
        now: Timestamp,
        (local, from): (SocketAddr, SocketAddr),
        payload: &'a [u8],
        cut: bool,
        arrival: u64,
        arena: &'a Bump,
        port: &mut impl Port<'a>,
    ) {
        if cut {
            self.tallies.inc(Counter::Truncated);
            return;
        }
        let d = Datagram {
            src: from.ip(),
            dst: local.ip(),
            src_port: from.port(),
            dst_port: local.port(),
            payload,
        };
        let Some(who) = trust.who(from.ip()) else {
            self.tallies.inc(Counter::Foreign);
            if forwarding.takes_anyone() {
                // Counted by the pipeline as well as foreign: once in the datagrams' total.
                self.tallies.inc(Counter::ForeignDecoded);
                if let Outcome::Message(_, m, _) = &self.pipeline.process_snmp(d, arena, now) {
                    let mask = forwarding.route(m, from.ip(), false);
                    if mask != 0 {
                        // An inform taken is answered, as snmptrapd with
                        // disableAuthorization answers every one (else its sender sends it
                        // again, and the target gets each copy as another inform).
                        if m.pdu_type() == PduType::INFORM_REQUEST
                            && let Some(what) = self.answer_inform(m, now)
                        {
                            port.reply(what, &self.reply);
                        }
                        port.forward(mask, m);
                    }
                }
            }
            return;
        };
        let outcome = self.pipeline.process_snmp(d, arena, now);
        let (m, class) = match &outcome {
            Outcome::Message(_, m, class) => (m, *class),
            Outcome::Refused(_, why) => {
                // Discovery, or a stale time: the Report that lets the sender go on.
                if self.pipeline.usm_mut().report(
                    payload,
                    *why,
                    now,
                    &mut self.scratch,
                    &mut self.reply,
                ) {
                    port.reply("SNMPv3 Report", &self.reply);
                }
                if !crate::engine::usm::is_discovery(*why, payload) {
                    port.refused((*why).into(), None);
                }
                return;
            }
            _ => return,
        };
        let verdict = trust.at_trap_port(who, m, class.map(|c| c.event));
        if verdict.answer
            && let Some(what) = self.answer_inform(m, now)
        {
            port.reply(what, &self.reply);
        }
        // Forwarded: a site UPS's notification, believed; anyone's for a target that
        // takes anyone's.
        let believed = matches!(who, Who::Ups(_))
            && matches!(
                verdict.says,
                Says::Event(Who::Ups(_), _) | Says::Believed(_)
            );
        if !forwarding.is_empty() && m.pdu_type().is_notification() {
            let mask = forwarding.route(m, from.ip(), believed);
            if mask != 0 {
                port.forward(mask, m);
            }
        }
        match (verdict.says, class) {
            (Says::Event(who, _), Some(c)) => {
                port.heard(Heard::Event {
                    arrival,
                    source: from.ip(),
                    who,
                    community: Community::new(m.community),
                    v3: m.v3.map(|s| s.level),
                    class: c,
                });
                return;
            }
            (Says::Believed(event), _) => port.decided(event),
            (Says::Refused(why, event), _) => port.refused(why, event),
            _ => {}
        }
        // Alive: a well-formed message with its community (a recorder's reboot trap,
        // say), heard at most once a second (by the kernel's wall-clock stamps: one
        // earlier than the last, after the wall clock stepped back, is heard too).
        if let Some(r) = verdict.alive
            && let Some(last) = self.seen_at.get_mut(r.index())
            && (arrival < *last || arrival - *last >= ns::SECOND)
        {
            *last = arrival;
            port.heard(Heard::Seen {
                arrival,
                recorder: r,
            });
        }
    }

    /// `m`'s answer, an inform's (sealed by trapgate's engine for a v3 one), into
    /// `reply`; None if it has none.
    fn answer_inform(&mut self, m: &Message<'_>, now: Timestamp) -> Option<&'static str> {
        let answered = match m.version {
            Version::V3 => {
                self.pipeline
                    .usm_mut()
                    .respond(m, now, &mut self.scratch, &mut self.reply)
            }
            _ => inform_response(m, &mut self.reply),
        };
        answered.then_some("inform answered")
    }
}

/// The response to an inform: the same request id and bindings, the same community.
fn inform_response(m: &Message<'_>, out: &mut Vec<u8>) -> bool {
    let Pdu::Request(r) = &m.pdu else {
        return false;
    };
    let response = Message::pdu(
        m.version,
        m.community,
        PduType::RESPONSE,
        r.request_id,
        r.varbinds,
    );
    out.clear();
    encode::encode(&response, out);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Site;
    use crate::engine::forward::{ForwardVersion, Match, Sources, Target};
    use crate::testing::v1_trap;
    use crate::wire::oid::oid;
    use crate::wire::{Value, VarBind};

    const UPS: &str = "192.168.61.250:161";
    const NVR_244: &str = "192.168.61.244:162";

    fn local() -> SocketAddr {
        "192.168.61.10:162".parse().unwrap()
    }

    struct Port {
        ingress: Ingress,
        trust: Trust,
        forwarding: Forwarding,
    }

    impl Port {
        fn new(forwarding: Forwarding) -> Port {
            let site = Site::default_site();
            let mut pipeline = Pipeline::new(site.classifier(), &[]);
            pipeline.set_usm(crate::engine::usm::Usm::new(&site));
            Port {
                ingress: Ingress::new(pipeline, site.recorders.len()),
                trust: Trust::new(&site),
                forwarding,
            }
        }

        /// What `bytes` from `from` came to at `s` seconds: (replied, forwarded to,
        /// heard, decided here, refused).
        fn take(
            &mut self,
            s: u64,
            from: &str,
            bytes: &[u8],
        ) -> (bool, u64, String, bool, Option<Refusal>) {
            let arena = Bump::new();
            let took = self.ingress.handle(
                &self.trust,
                &self.forwarding,
                Timestamp(s * ns::SECOND),
                (local(), from.parse().unwrap()),
                bytes,
                false,
                s * ns::SECOND,
                &arena,
            );
            let heard = match &took.heard {
                Some(Heard::Event { class, .. }) => format!("{}", class.event),
                Some(Heard::Seen { recorder, .. }) => format!("seen {}", recorder.index()),
                None => String::new(),
            };
            (
                took.reply.is_some(),
                took.forward.map_or(0, |(mask, _)| mask),
                heard,
                took.decided.is_some(),
                took.refused.map(|(why, _)| why),
            )
        }
    }

    fn inform(community: &[u8]) -> Vec<u8> {
        let trap = oid("1.3.6.1.4.1.318.0.5");
        let name = oid("1.3.6.1.6.3.1.1.4.1.0");
        let vbs = [VarBind {
            name: name.as_oid(),
            value: Value::ObjectId(trap.as_oid()),
        }];
        encode::to_vec(&Message::pdu(
            Version::V2c,
            community,
            PduType::INFORM_REQUEST,
            77,
            &vbs,
        ))
    }

    #[test]
    fn a_ups_trap_is_heard_with_its_community_and_refused_without() {
        let mut port = Port::new(Forwarding::default());
        let trap = v1_trap(b"public", "1.3.6.1.4.1.318", [192, 168, 61, 250], 7, &[]);
        assert_eq!(
            port.take(1, UPS, &trap),
            (false, 0, "LowBattery".into(), false, None)
        );
        let forged = v1_trap(b"guess", "1.3.6.1.4.1.318", [192, 168, 61, 250], 7, &[]);
        assert_eq!(
            port.take(2, UPS, &forged),
            (
                false,
                0,
                String::new(),
                false,
                Some(Refusal::WrongCommunity)
            )
        );
        // From an address that is not the site's: dropped, counted, never decoded.
        assert_eq!(
            port.take(3, "192.0.2.9:161", &trap),
            (false, 0, String::new(), false, None)
        );
        assert_eq!(port.ingress.tallies().get(Counter::Foreign), 1);
        // An informational trap is decided here, for its latency.
        let test = v1_trap(b"public", "1.3.6.1.4.1.318", [192, 168, 61, 250], 10, &[]);
        assert_eq!(
            port.take(4, UPS, &test),
            (false, 0, String::new(), true, None)
        );
    }

    #[test]
    fn an_inform_is_answered_only_with_its_sources_community() {
        let mut port = Port::new(Forwarding::default());
        let (replied, _, heard, _, _) = port.take(1, UPS, &inform(b"public"));
        assert!(replied && heard == "OnBattery");
        let arena = Bump::new();
        let answer = Message::parse(port.ingress.reply(), &arena).expect("an answer");
        let Pdu::Request(r) = answer.pdu else {
            panic!("a response")
        };
        assert_eq!(
            (r.kind, r.request_id, answer.community),
            (PduType::RESPONSE, 77, &b"public"[..])
        );
        let (replied, _, heard, _, refused) = port.take(2, UPS, &inform(b"guess"));
        assert!(
            !replied && heard.is_empty() && refused.is_some(),
            "a forger's is not answered"
        );
    }

    #[test]
    fn a_recorder_is_heard_alive_at_most_once_a_second() {
        let mut port = Port::new(Forwarding::default());
        let cold = v1_trap(b"public", "1.3.6.1.6.3.1.1.5", [192, 168, 61, 244], 0, &[]);
        let mut seen = Vec::new();
        for ms in [0u64, 400, 900, 1000, 1500, 2100] {
            let arena = Bump::new();
            let at = 10 * ns::SECOND + ms * 1_000_000;
            let took = port.ingress.handle(
                &port.trust,
                &port.forwarding,
                Timestamp(at),
                (local(), NVR_244.parse().unwrap()),
                &cold,
                false,
                at,
                &arena,
            );
            if matches!(took.heard, Some(Heard::Seen { .. })) {
                seen.push(ms);
            }
        }
        assert_eq!(seen, [0, 1000, 2100]);
    }

    #[test]
    fn a_target_that_takes_anyones_gets_a_strangers_inform_answered_never_believed() {
        let anyone = Forwarding::new(vec![Target {
            to_text: "192.0.2.50:162".into(),
            to: "192.0.2.50:162".parse().unwrap(),
            matches: vec![Match::All],
            version: ForwardVersion::AsReceived,
            community: "nms".into(),
            sources: Sources::Any,
            source: None,
        }]);
        let mut port = Port::new(anyone);
        assert_eq!(
            port.take(1, "192.0.2.9:161", &inform(b"whatever")),
            (true, 1, String::new(), false, None)
        );
        assert_eq!(port.ingress.tallies().get(Counter::ForeignDecoded), 1);
        // The site's UPS's, believed: forwarded and heard.
        let (_, forwarded, heard, _, _) = port.take(2, UPS, &inform(b"public"));
        assert_eq!((forwarded, heard.as_str()), (1, "OnBattery"));
    }
}
