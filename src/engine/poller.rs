//! The UPS poller: asks each UPS for its output source, battery status, charge and
//! runtime at its `poll_interval`, with retries and timeouts, and believes an answer only
//! when it is one. Sans-IO: time goes in, requests to send and what the UPSes said come
//! out; the driver says when each request actually left (`handle_sent`), so that retries
//! and the policy's confirm-by-poll wait count from then, not from when it was decided.
//!
//! An answer counts only from the address and port polled, with the request id of the
//! UPS's outstanding request, the UPS's community, and exactly the objects asked for, in
//! order (RFC 3416 §4.2.1: a response lists the request's names). Request ids are drawn
//! at random for every poll (`RequestIds`, a CSPRNG in the daemon), never sequential, so
//! an answer cannot be forged without seeing the request. Everything else is refused,
//! counted by reason (`crate::engine::trust::Refusal`), and changes nothing.
//!
//! One poll per interval per UPS, whatever the number of recorders (they are answered
//! from the cache by the virtual UPS), plus an immediate try when the policy wants a
//! shutdown trap confirmed. A UPS that lets a whole poll (every try) go unanswered is
//! reported silent once, and answering again once it does.
//!
//! A v3 UPS is polled as RFC 3414's non-authoritative command generator: its card's
//! engine ID, boots and time are discovered first (an unauthenticated request the card
//! answers with a Report), then every request is sealed with the UPS's user's keys for
//! that engine at its level, an authenticated Report of a stale time sets the clock
//! again, and an answer counts only authenticated (and decrypted), from that user, in
//! the engine's time window, with the request's msgID and request id.
//!
//! An answer with an error status is an answer: the UPS is alive. A v1 `noSuchName`
//! names the object the card lacks (its error-index): it is reported once, and the
//! UPS is asked again at once without it, as net-snmp's tools do, and from then on; the
//! values it has count. Any other error is reported, and its answer holds no values.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;

use bumpalo::Bump;

use crate::engine::config::{Remap, Site, Write};
use crate::engine::id::UpsId;
use crate::engine::policy::{PollAnswer, PolledObject};
use crate::engine::power::card::{Card, Credential, Opened};
use crate::engine::trust::Refusal;
use crate::time::{Timestamp, ns};
use crate::wire::{Message, Oid, Pdu, PduType, RequestPdu, Value, VarBind, Version, encode};

/// Tries per poll (the first and two retries), as net-snmp's default of retries.
pub const TRIES: u8 = 3;

/// SNMPv1's error-status for a name the agent does not have (RFC 1157).
pub const NO_SUCH_NAME: i32 = 2;

/// Where request ids come from.
pub trait RequestIds: Send {
    /// A fresh request id, 1 to 2^31 − 1.
    fn next_id(&mut self) -> i32;

    /// Another source of the same kind, for another machine's requests (the OS's
    /// random ids; a sequence far from this one's).
    fn another(&self) -> Box<dyn RequestIds>;
}

/// Request ids counting up from a seed: for tests and replays, which must repeat.
#[derive(Debug)]
pub struct Sequence(pub i32);

impl RequestIds for Sequence {
    fn next_id(&mut self) -> i32 {
        self.0 = self.0.checked_add(1).unwrap_or(1).max(1);
        self.0
    }

    fn another(&self) -> Box<dyn RequestIds> {
        Box::new(Sequence(self.0.wrapping_add(1 << 30) & 0x7fff_ffff))
    }
}

/// What the poller has for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollOutput {
    /// Send this get-request to the UPS, then say whether it left (`handle_sent`,
    /// `handle_send_failed`).
    Send {
        /// The UPS.
        ups: UpsId,
        /// Where.
        to: SocketAddr,
        /// The encoded request, in `Poller::wire` (until the outputs are drained).
        bytes: Range<usize>,
    },
    /// The UPS answered.
    Answer {
        /// The UPS.
        ups: UpsId,
        /// What it said.
        answer: PollAnswer,
    },
    /// The UPS has no such object (v1 `noSuchName`): it is asked without it from now on.
    Missing {
        /// The UPS.
        ups: UpsId,
        /// The object's name in its MIB.
        name: &'static str,
    },
    /// The UPS answered with another error status: alive, its values unknown.
    Error {
        /// The UPS.
        ups: UpsId,
        /// The error-status (RFC 3416's numbers: 1 tooBig, 5 genErr, …).
        status: i32,
    },
    /// A whole poll went by without an answer.
    Unanswered {
        /// The UPS.
        ups: UpsId,
        /// Whether any try of it left (a poll that could not be sent is no silence).
        sent: bool,
    },
    /// The UPS left a whole poll unanswered (first time since it last answered).
    Silent {
        /// The UPS.
        ups: UpsId,
    },
    /// The UPS answers again after being silent.
    Answering {
        /// The UPS.
        ups: UpsId,
    },
}

#[derive(Clone, Debug)]
struct Outstanding {
    id: i32,
    tries: u8,
    retry_at: Timestamp,
    /// When a try of this request first left (None: none has yet).
    first_sent: Option<Timestamp>,
}

#[derive(Clone, Debug)]
struct UpsPoll {
    to: SocketAddr,
    community: Vec<u8>,
    /// For a v3 UPS: its card as its user asks it (polled over v3, not with
    /// `community`).
    v3: Option<Card>,
    /// What it may be asked (`PollAnswer::polled`).
    objects: &'static [PolledObject],
    /// The objects it lacks (bit i: `objects[i]`), not asked any more.
    missing: u32,
    interval: u64,
    next_due: Timestamp,
    outstanding: Option<Outstanding>,
    silent: bool,
}

/// The poller of a whole site.
pub struct Poller {
    ups: Vec<UpsPoll>,
    /// UPS by the address and port it is polled at.
    by_agent: HashMap<SocketAddr, UpsId>,
    try_timeout: u64,
    ids: Box<dyn RequestIds>,
    out: VecDeque<PollOutput>,
    /// The requests of the outputs not drained yet, encoded (reused: no allocation).
    wire: Vec<u8>,
    /// A request's names, made afresh for each (reused).
    names: Vec<VarBind<'static>>,
    /// Where a v3 request's scoped PDU is encrypted (reused).
    scratch: Vec<u8>,
    /// Requests sent, every try counted.
    pub sent: u64,
    /// Requests the kernel refused to send.
    pub send_failed: u64,
    /// Answers matched to a request.
    pub answered: u64,
    /// `poll_timeout`'s answer while nothing changed (every `&mut` method clears it):
    /// the station asks after each input.
    due: Cell<Option<Option<Timestamp>>>,
}

impl core::fmt::Debug for Poller {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Poller")
            .field("ups", &self.ups.len())
            .field("sent", &self.sent)
            .field("answered", &self.answered)
            .finish()
    }
}

impl Poller {
    /// A poller for `site` drawing its request ids from `ids`; every UPS is polled first
    /// at `now`.
    pub fn new(site: &Site, now: Timestamp, ids: Box<dyn RequestIds>) -> Poller {
        // A poll, every try included, fits in the policy's poll timeout.
        let try_timeout = ns::secs(site.policy.poll_timeout.0)
            .div_ceil(TRIES as u64)
            .max(ns::SECOND / 2);
        let ups: Vec<UpsPoll> = site
            .upses
            .iter()
            .map(|u| UpsPoll {
                to: SocketAddr::new(u.address, u.port),
                community: u.community.as_bytes().to_vec(),
                v3: u.v3.as_ref().and_then(|a| {
                    let credential = Credential::of(&Write::User(a.clone()), site)?;
                    Some(Card::new(SocketAddr::new(u.address, u.port), credential))
                }),
                objects: PollAnswer::polled(u.vendor),
                missing: 0,
                interval: ns::secs(u.poll_interval.0.max(1)),
                next_due: now,
                outstanding: None,
                silent: false,
            })
            .collect();
        Poller {
            by_agent: UpsId::enumerate(&ups).map(|(i, p)| (p.to, i)).collect(),
            ups,
            try_timeout,
            ids,
            out: VecDeque::new(),
            wire: Vec::with_capacity(128 * site.upses.len()),
            names: Vec::new(),
            scratch: Vec::new(),
            sent: 0,
            send_failed: 0,
            answered: 0,
            due: Cell::new(None),
        }
    }

    /// Takes a reloaded site: a UPS that stays (same address and port) keeps its
    /// outstanding request, schedule and silence; a new one is polled at `now`.
    pub fn reload(&mut self, site: &Site, now: Timestamp, remap: &Remap) {
        self.due.set(None);
        let next = Poller::new(site, now, Box::new(Sequence(0)));
        let _ = self.take_over(next, remap);
    }

    /// Becomes `next` (made for the new site, off the decision thread; its request ids
    /// are this one's), carrying over the schedule, silence and outstanding request of
    /// each UPS that stays and is polled the same way.
    pub fn take_over(&mut self, mut next: Poller, remap: &Remap) -> Poller {
        self.due.set(None);
        for (u, o) in remap.kept_upses() {
            let (old, p) = (&self.ups[o], &mut next.ups[u]);
            if old.to != p.to {
                continue;
            }
            p.next_due = old.next_due;
            p.silent = old.silent;
            // The card's engine stays known to the same user with the same keys.
            if let (Some(o), Some(n)) = (&old.v3, &mut p.v3) {
                n.keep_engine_of(o);
            }
            if std::ptr::eq(old.objects, p.objects) {
                p.missing = old.missing;
                if old.community == p.community {
                    p.outstanding = old.outstanding.clone();
                }
            }
        }
        next.ids = std::mem::replace(&mut self.ids, Box::new(Sequence(0)));
        next.sent = self.sent;
        next.send_failed = self.send_failed;
        next.answered = self.answered;
        next.due.set(None);
        std::mem::replace(self, next)
    }

    /// UPS `u`'s card's engine as an authenticated answer showed it: (its user, its
    /// engine ID). None for a community UPS, or before a v3 one has answered.
    pub fn card_engine(&self, u: UpsId) -> Option<(&[u8], &[u8])> {
        self.ups.get(u.index())?.v3.as_ref()?.engine()
    }

    /// Starts afresh at `now` (a restart: the requests of before are history): every UPS
    /// is polled now, silences forgotten.
    pub fn restart(&mut self, now: Timestamp) {
        self.due.set(None);
        for p in &mut self.ups {
            p.outstanding = None;
            p.next_due = now;
            p.silent = false;
        }
        self.out.clear();
    }

    /// Polls UPS `u` now, to confirm a shutdown trap: a new poll, or, when one is out, a
    /// try of it now with every try still to come.
    pub fn poll_now(&mut self, now: Timestamp, u: UpsId) {
        self.due.set(None);
        let Some(p) = self.ups.get_mut(u.index()) else {
            return;
        };
        match &mut p.outstanding {
            Some(o) => {
                o.tries = 0;
                o.retry_at = now;
            }
            None => p.next_due = now,
        }
        self.handle_timeout(now);
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<PollOutput> {
        self.out.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if let Some(due) = self.due.get() {
            return due;
        }
        let due = self
            .ups
            .iter()
            .map(|p| p.outstanding.as_ref().map_or(p.next_due, |o| o.retry_at))
            .min();
        self.due.set(Some(due));
        due
    }

    /// The bytes of a `PollOutput::Send`.
    pub fn wire(&self, bytes: Range<usize>) -> &[u8] {
        &self.wire[bytes]
    }

    /// The objects UPS `u` is asked for, in order (those it has not said it lacks).
    fn asked(p: &UpsPoll) -> impl Iterator<Item = (usize, &'static PolledObject)> + '_ {
        p.objects
            .iter()
            .enumerate()
            .filter(|(i, _)| p.missing & (1 << i) == 0)
    }

    fn send(&mut self, now: Timestamp, u: UpsId, id: i32) {
        if self.out.is_empty() {
            self.wire.clear();
        }
        let p = &mut self.ups[u];
        self.names.clear();
        let discovering = p.v3.as_ref().is_some_and(Card::discovering);
        if !discovering {
            self.names.extend(Self::asked(p).map(|(_, o)| VarBind {
                // The table's own constants: valid OIDs (a test decodes each).
                name: Oid::trusted(o.oid),
                value: Value::Null,
            }));
        }
        let msg = Message::pdu(
            Version::V1,
            &p.community,
            PduType::GET_REQUEST,
            id,
            &self.names,
        );
        let start = self.wire.len();
        match &mut p.v3 {
            None => encode::encode(&msg, &mut self.wire),
            Some(card) => card.encode(
                now,
                PduType::GET_REQUEST,
                id,
                discovering,
                &self.names,
                &mut self.scratch,
                &mut self.wire,
            ),
        }
        let to = p.to;
        self.out.push_back(PollOutput::Send {
            ups: u,
            to,
            bytes: start..self.wire.len(),
        });
    }

    /// A new poll of UPS `u`, its first try due now.
    fn ask(&mut self, now: Timestamp, u: UpsId) {
        let id = self.ids.next_id();
        self.ups[u].outstanding = Some(Outstanding {
            id,
            tries: 1,
            retry_at: now.plus_ns(self.try_timeout),
            first_sent: None,
        });
        self.send(now, u, id);
    }

    /// A try of UPS `u`'s request left at `now`: its retry counts from now.
    pub fn handle_sent(&mut self, now: Timestamp, u: UpsId) {
        self.due.set(None);
        self.sent += 1;
        if let Some(o) = self
            .ups
            .get_mut(u.index())
            .and_then(|p| p.outstanding.as_mut())
        {
            o.retry_at = now.plus_ns(self.try_timeout);
            o.first_sent.get_or_insert(now);
        }
    }

    /// A try of UPS `u`'s request could not be sent; the next try is due as planned.
    pub fn handle_send_failed(&mut self, _now: Timestamp, _u: UpsId) {
        self.due.set(None);
        self.send_failed += 1;
    }

    /// Queues what is due at `now`: new polls, retries; gives up on polls out of tries.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.due.set(None);
        for u in UpsId::all(self.ups.len()) {
            let p = &mut self.ups[u];
            match &mut p.outstanding {
                Some(o) if o.retry_at <= now => {
                    if o.tries < TRIES {
                        o.tries += 1;
                        o.retry_at = now.plus_ns(self.try_timeout);
                        let id = o.id;
                        self.send(now, u, id);
                    } else {
                        let sent = o.first_sent.is_some();
                        p.outstanding = None;
                        p.next_due = now.plus_ns(p.interval);
                        self.out.push_back(PollOutput::Unanswered { ups: u, sent });
                        if !p.silent && sent {
                            p.silent = true;
                            self.out.push_back(PollOutput::Silent { ups: u });
                        }
                    }
                }
                Some(_) => {}
                None if p.next_due <= now => self.ask(now, u),
                None => {}
            }
        }
    }

    /// A datagram from `from` on the poll socket: the UPS it answers, or why it is not
    /// believed.
    pub fn handle_response(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        m: &Message<'_>,
    ) -> Result<UpsId, Refusal> {
        self.due.set(None);
        let Pdu::Request(r) = &m.pdu else {
            return Err(Refusal::AnswerNotResponse);
        };
        if r.kind != PduType::RESPONSE {
            return Err(Refusal::AnswerNotResponse);
        }
        let u = *self.by_agent.get(&from).ok_or(Refusal::AnswerWrongSource)?;
        let p = &mut self.ups[u];
        if p.outstanding.as_ref().is_none_or(|o| o.id != r.request_id) {
            return Err(Refusal::AnswerUnknownRequest);
        }
        if p.v3.is_some() {
            return Err(Refusal::WrongVersion);
        }
        if m.community != p.community.as_slice() {
            return Err(Refusal::AnswerWrongCommunity);
        }
        self.answered_with(now, u, r)
    }

    /// A v3 datagram from `from` on the poll socket, received at `now`: a card's Report
    /// (its engine discovered, or its clock set again: the request goes again at once;
    /// Ok(None)), or its answer (Ok(Some)), or why it is not believed.
    pub fn handle_v3_response(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        buf: &[u8],
        arena: &Bump,
    ) -> Result<Option<UpsId>, Refusal> {
        self.due.set(None);
        let u = *self.by_agent.get(&from).ok_or(Refusal::AnswerWrongSource)?;
        let p = &mut self.ups[u];
        let Some(card) = p.v3.as_mut() else {
            return Err(Refusal::WrongVersion);
        };
        let Some(o) = p.outstanding.as_ref() else {
            return Err(Refusal::AnswerUnknownRequest);
        };
        let id = o.id;
        let discovery = card.discovering();
        match card.open(now, buf, arena, id, discovery)? {
            // The card's engine discovered, or its clock set again: asked again at once.
            Opened::Discovered | Opened::AskAgain => {
                self.send(now, u, id);
                Ok(None)
            }
            Opened::Answer(r) => self.answered_with(now, u, &r).map(Some),
        }
    }

    /// UPS `u`'s outstanding request answered with `r` (its source, ids and credentials
    /// checked): the objects must be those asked.
    fn answered_with(
        &mut self,
        now: Timestamp,
        u: UpsId,
        r: &RequestPdu<'_>,
    ) -> Result<UpsId, Refusal> {
        let p = &mut self.ups[u];
        let asked = Self::asked(p).map(|(_, o)| o.oid);
        if !r.varbinds.iter().map(|vb| vb.name.as_bytes()).eq(asked) {
            return Err(Refusal::AnswerWrongObjects);
        }
        p.outstanding = None;
        p.next_due = now.plus_ns(p.interval);
        self.answered += 1;
        if p.silent {
            p.silent = false;
            self.out.push_back(PollOutput::Answering { ups: u });
        }
        if r.error_status == 0 {
            let answer = PollAnswer::from_varbinds(r.varbinds);
            self.out.push_back(PollOutput::Answer { ups: u, answer });
            return Ok(u);
        }
        // An error names the object it is about (error-index, from 1).
        let lacked = usize::try_from(r.error_index)
            .ok()
            .and_then(|k| k.checked_sub(1))
            .and_then(|k| Self::asked(p).nth(k));
        match lacked {
            Some((i, o)) if r.error_status == NO_SUCH_NAME => {
                p.missing |= 1 << i;
                self.out.push_back(PollOutput::Missing {
                    ups: u,
                    name: o.name,
                });
                if Self::asked(&self.ups[u]).next().is_some() {
                    // The same poll, asked again at once without it: no try is spent.
                    self.ask(now, u);
                    return Ok(u);
                }
            }
            _ => self.out.push_back(PollOutput::Error {
                ups: u,
                status: r.error_status,
            }),
        }
        let answer = PollAnswer::default();
        self.out.push_back(PollOutput::Answer { ups: u, answer });
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Vendor;
    use crate::wire::oid::oid;
    use crate::wire::usm::{AuthProtocol, Keys, PrivProtocol};
    use crate::wire::v3::{Header, Level, Seal, seal};
    use bumpalo::Bump;

    fn t(s: f64) -> Timestamp {
        Timestamp((1_000.0 * 1e9 + s * 1e9) as u64)
    }

    fn poller(site: &Site) -> Poller {
        Poller::new(site, t(0.0), Box::new(Sequence(41)))
    }

    fn drain(p: &mut Poller) -> Vec<PollOutput> {
        core::iter::from_fn(|| p.poll_output()).collect()
    }

    /// The outputs, each request marked as sent at `now`.
    fn sent_at(p: &mut Poller, now: Timestamp) -> Vec<PollOutput> {
        let out = drain(p);
        for o in &out {
            if let PollOutput::Send { ups, .. } = o {
                p.handle_sent(now, *ups);
            }
        }
        out
    }

    /// The request id of a send the poller has just output.
    fn sent_id(p: &Poller, o: &PollOutput) -> i32 {
        let PollOutput::Send { bytes, .. } = o else {
            panic!("not a send: {o:?}")
        };
        let arena = Bump::new();
        let m = Message::parse(p.wire(bytes.clone()), &arena).expect("our own request decodes");
        match m.pdu {
            Pdu::Request(r) => r.request_id,
            _ => panic!("not a request"),
        }
    }

    /// A PowerNet card's answer to the seed site's poll: on line, `charge` percent.
    fn answer(community: &[u8], id: i32, charge: u32) -> Vec<u8> {
        let values = [
            Value::Integer(2),
            Value::Integer(2),
            Value::Gauge32(charge),
            Value::TimeTicks(charge * 1200),
        ];
        response(community, id, &POWERNET, &values)
    }

    /// The objects the seed site's UPS is polled for, in order.
    const POWERNET: [&str; 4] = [
        "1.3.6.1.4.1.318.1.1.1.4.1.1.0",
        "1.3.6.1.4.1.318.1.1.1.2.1.1.0",
        "1.3.6.1.4.1.318.1.1.1.2.2.1.0",
        "1.3.6.1.4.1.318.1.1.1.2.2.3.0",
    ];

    /// A v1 get-response binding `names` to `values`.
    fn response(community: &[u8], id: i32, names: &[&str], values: &[Value<'_>]) -> Vec<u8> {
        let names: Vec<_> = names.iter().map(|n| oid(n)).collect();
        let vb: Vec<VarBind<'_>> = names
            .iter()
            .zip(values)
            .map(|(n, value)| VarBind {
                name: n.as_oid(),
                value: *value,
            })
            .collect();
        encode::to_vec(&Message::pdu(
            Version::V1,
            community,
            PduType::RESPONSE,
            id,
            &vb,
        ))
    }

    /// A v1 card's answer with an error: the request's names back, with nulls, as RFC
    /// 1157 has it.
    fn error_answer(p: &Poller, asked: &PollOutput, status: i32, index: i32) -> Vec<u8> {
        let PollOutput::Send { bytes, .. } = asked else {
            panic!("not a send: {asked:?}")
        };
        let arena = Bump::new();
        let m = Message::parse(p.wire(bytes.clone()), &arena).expect("our request");
        let mut r = Message::pdu(
            Version::V1,
            b"public",
            PduType::RESPONSE,
            sent_id(p, asked),
            m.varbinds(),
        );
        if let Pdu::Request(q) = &mut r.pdu {
            q.error_status = status;
            q.error_index = index;
        }
        encode::to_vec(&r)
    }

    fn asked_names(p: &Poller, o: &PollOutput) -> Vec<String> {
        let PollOutput::Send { bytes, .. } = o else {
            panic!("not a send: {o:?}")
        };
        let arena = Bump::new();
        let m = Message::parse(p.wire(bytes.clone()), &arena).expect("our request");
        m.varbinds()
            .iter()
            .map(|vb| vb.name.to_buf().to_string())
            .collect()
    }

    #[test]
    fn a_card_without_one_object_is_asked_again_without_it_and_its_values_count() {
        let site = Site::default_site();
        let mut p = poller(&site);
        p.handle_timeout(t(0.0));
        let first = sent_at(&mut p, t(0.0));
        assert_eq!(asked_names(&p, &first[0]).len(), 4);
        // The card has no runtime (the 4th object): noSuchName, error-index 4.
        let lacks = error_answer(&p, &first[0], NO_SUCH_NAME, 4);
        assert_eq!(respond(&mut p, t(0.1), CARD, &lacks), Ok(UpsId(0)));
        let out = sent_at(&mut p, t(0.1));
        assert_eq!(
            out[0],
            PollOutput::Missing {
                ups: UpsId(0),
                name: "upsAdvBatteryRunTimeRemaining.0"
            },
            "{out:?}"
        );
        // Asked again at once, without it, with a new id.
        let again = &out[1];
        assert_eq!(
            asked_names(&p, again),
            [
                "1.3.6.1.4.1.318.1.1.1.4.1.1.0",
                "1.3.6.1.4.1.318.1.1.1.2.1.1.0",
                "1.3.6.1.4.1.318.1.1.1.2.2.1.0"
            ]
        );
        let id = sent_id(&p, again);
        assert_ne!(id, sent_id(&p, &first[0]));
        assert_eq!(out.len(), 2, "no answer yet: {out:?}");
        // Its three values count.
        let three = response(
            b"public",
            id,
            &POWERNET[..3],
            &[Value::Integer(3), Value::Integer(2), Value::Gauge32(64)],
        );
        // The full four-object answer no longer matches what was asked.
        assert_eq!(
            respond(&mut p, t(0.2), CARD, &answer(b"public", id, 64)),
            Err(Refusal::AnswerWrongObjects)
        );
        assert_eq!(respond(&mut p, t(0.2), CARD, &three), Ok(UpsId(0)));
        let got = drain(&mut p);
        let want = PollAnswer {
            on_battery: Some(true),
            battery_low: Some(false),
            charge: Some(64),
            runtime: None,
        };
        assert_eq!(
            got,
            [PollOutput::Answer {
                ups: UpsId(0),
                answer: want
            }]
        );
        // The next poll asks the three, and the object is not reported again.
        p.handle_timeout(t(11.0));
        let next = sent_at(&mut p, t(11.0));
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(asked_names(&p, &next[0]).len(), 3);
    }

    #[test]
    fn an_answer_with_another_error_is_an_answer_without_values() {
        let site = Site::default_site();
        let mut p = poller(&site);
        p.handle_timeout(t(0.0));
        let first = sent_at(&mut p, t(0.0));
        let failed = error_answer(&p, &first[0], 5, 0);
        assert_eq!(respond(&mut p, t(0.1), CARD, &failed), Ok(UpsId(0)));
        assert_eq!(
            drain(&mut p),
            [
                PollOutput::Error {
                    ups: UpsId(0),
                    status: 5
                },
                PollOutput::Answer {
                    ups: UpsId(0),
                    answer: PollAnswer::default()
                }
            ]
        );
        // Answered: no retry is due, the UPS is not silent; the next poll is at its time.
        assert_eq!(p.poll_timeout(), Some(t(10.1)));
        // A noSuchName whose index names nothing asked is an error like the others.
        p.handle_timeout(t(10.1));
        let next = sent_at(&mut p, t(10.1));
        let bad = error_answer(&p, &next[0], NO_SUCH_NAME, 9);
        assert_eq!(respond(&mut p, t(10.2), CARD, &bad), Ok(UpsId(0)));
        assert!(matches!(
            drain(&mut p)[0],
            PollOutput::Error {
                ups: UpsId(0),
                status: NO_SUCH_NAME
            }
        ));
    }

    fn respond(p: &mut Poller, now: Timestamp, from: &str, bytes: &[u8]) -> Result<UpsId, Refusal> {
        let arena = Bump::new();
        let m = Message::parse(bytes, &arena).expect("a response");
        p.handle_response(now, from.parse().unwrap(), &m)
    }

    const CARD: &str = "192.168.61.250:161";

    #[test]
    fn an_answer_counts_only_from_the_port_polled_with_the_id_community_and_objects() {
        let site = Site::default_site();
        let mut p = poller(&site);
        p.handle_timeout(t(0.0));
        let out = sent_at(&mut p, t(0.0));
        assert_eq!(out.len(), 1, "one poll at start: {out:?}");
        let id = sent_id(&p, &out[0]);
        let good = answer(b"public", id, 90);
        assert_eq!(
            respond(&mut p, t(0.1), "192.168.61.250:1161", &good),
            Err(Refusal::AnswerWrongSource)
        );
        assert_eq!(
            respond(&mut p, t(0.1), "192.168.61.251:161", &good),
            Err(Refusal::AnswerWrongSource)
        );
        assert_eq!(
            respond(&mut p, t(0.1), CARD, &answer(b"private", id, 0)),
            Err(Refusal::AnswerWrongCommunity)
        );
        assert_eq!(
            respond(&mut p, t(0.1), CARD, &answer(b"public", id ^ 1, 0)),
            Err(Refusal::AnswerUnknownRequest)
        );
        // The right id, but not the objects asked for (UPS-MIB's, and only two).
        let charge = oid("1.3.6.1.2.1.33.1.2.4.0");
        let source = oid("1.3.6.1.2.1.33.1.4.1.0");
        let other = [
            VarBind {
                name: source.as_oid(),
                value: Value::Integer(5),
            },
            VarBind {
                name: charge.as_oid(),
                value: Value::Integer(0),
            },
        ];
        let other = encode::to_vec(&Message::pdu(
            Version::V1,
            b"public",
            PduType::RESPONSE,
            id,
            &other,
        ));
        assert_eq!(
            respond(&mut p, t(0.1), CARD, &other),
            Err(Refusal::AnswerWrongObjects)
        );
        assert!(drain(&mut p).is_empty(), "nothing refused gave an answer");
        assert_eq!(respond(&mut p, t(0.2), CARD, &good), Ok(UpsId(0)));
        let got = drain(&mut p);
        assert!(
            matches!(&got[..], [PollOutput::Answer { ups: UpsId(0), answer }] if answer.charge == Some(90)),
            "{got:?}"
        );
        // The same datagram again: the request is answered already.
        assert_eq!(
            respond(&mut p, t(0.3), CARD, &good),
            Err(Refusal::AnswerUnknownRequest)
        );
        // The next poll is due one interval (10 s) after the answer, with a new id.
        assert_eq!(p.poll_timeout(), Some(t(10.2)));
        p.handle_timeout(t(10.2));
        let next = drain(&mut p);
        assert_ne!(sent_id(&p, &next[0]), id);
    }

    #[test]
    fn retries_count_from_when_a_request_left() {
        let site = Site::default_site();
        let mut p = poller(&site);
        p.handle_timeout(t(0.0));
        // Decided at 0, but the driver could send it only at 3 s.
        let first = sent_at(&mut p, t(3.0));
        let id = sent_id(&p, &first[0]);
        // 5 s / 3 tries: the retry is due 1.67 s after it left, not after it was decided.
        p.handle_timeout(t(4.0));
        assert!(
            drain(&mut p).is_empty(),
            "no retry before it could be answered"
        );
        assert_eq!(
            p.poll_timeout(),
            Some(t(3.0).plus_ns(ns::secs(5).div_ceil(3)))
        );
        p.handle_timeout(t(4.7));
        let retry = sent_at(&mut p, t(4.7));
        assert_eq!(sent_id(&p, &retry[0]), id, "a retry keeps the request id");
        // A confirming poll now: a try at once, same id, with every try still to come.
        p.poll_now(t(5.0), UpsId(0));
        let now = sent_at(&mut p, t(5.0));
        assert_eq!(now.len(), 1);
        assert_eq!(sent_id(&p, &now[0]), id);
        let mut tries = 0;
        let mut s = 5.0;
        while s < 12.0 {
            p.handle_timeout(t(s));
            for o in sent_at(&mut p, t(s)) {
                match o {
                    PollOutput::Send { .. } => tries += 1,
                    PollOutput::Unanswered { sent, .. } => assert!(sent),
                    PollOutput::Silent { .. } => {}
                    o => panic!("{o:?}"),
                }
            }
            if p.ups[0].outstanding.is_none() {
                break;
            }
            s += 0.1;
        }
        assert_eq!(tries, 2, "two more tries after the immediate one");
        assert!((9.9..10.2).contains(&s), "given up at {s}");
    }

    #[test]
    fn a_poll_that_never_left_is_no_silence() {
        let site = Site::default_site();
        let mut p = poller(&site);
        let mut s = 0.0;
        let mut outputs = Vec::new();
        while s < 6.0 {
            p.handle_timeout(t(s));
            for o in drain(&mut p) {
                if let PollOutput::Send { ups, .. } = o {
                    p.handle_send_failed(t(s), ups);
                } else {
                    outputs.push(o);
                }
            }
            s += 0.1;
        }
        assert_eq!(
            outputs,
            [PollOutput::Unanswered {
                ups: UpsId(0),
                sent: false
            }],
            "unanswered, not silent"
        );
        assert_eq!(p.send_failed, 3);
    }

    /// Every object a poll asks for, answered, fills the whole answer: the poller and
    /// the policy read one table.
    #[test]
    fn what_a_poll_asks_for_is_what_the_policy_reads() {
        for vendor in [Vendor::Apc, Vendor::UpsMib, Vendor::Eaton] {
            let mut site = Site::default_site();
            site.upses[0].vendor = vendor;
            let mut p = poller(&site);
            p.handle_timeout(t(0.0));
            let PollOutput::Send { bytes, .. } = drain(&mut p).remove(0) else {
                panic!("a poll first")
            };
            let arena = Bump::new();
            // Decoding checks every OID the table gave the request.
            let m = Message::parse(p.wire(bytes), &arena).expect("our own request decodes");
            let answered: Vec<VarBind<'_>> = m
                .varbinds()
                .iter()
                .map(|vb| VarBind {
                    name: vb.name,
                    value: Value::Integer(3),
                })
                .collect();
            let a = PollAnswer::from_varbinds(&answered);
            assert!(
                a.on_battery.is_some()
                    && a.battery_low.is_some()
                    && a.charge.is_some()
                    && a.runtime.is_some(),
                "{vendor:?}: {a:?}"
            );
        }
    }

    #[test]
    fn a_ups_that_stops_answering_is_reported_once_then_again_when_back() {
        let site = Site::default_site();
        let mut p = poller(&site);
        let mut silent = 0;
        let mut sends = 0;
        let mut now = 0.0;
        while now < 60.0 {
            p.handle_timeout(t(now));
            for o in sent_at(&mut p, t(now)) {
                match o {
                    PollOutput::Send { .. } => sends += 1,
                    PollOutput::Silent { .. } => silent += 1,
                    PollOutput::Unanswered { .. } => {}
                    o => panic!("unexpected {o:?}"),
                }
            }
            now += 0.25;
        }
        assert_eq!(silent, 1, "silent is said once");
        // 3 tries every ~15 s (5 s of tries + 10 s interval) in 60 s.
        assert!((9..=15).contains(&sends), "{sends} requests in 60 s");
        p.poll_now(t(60.0), UpsId(0));
        let out = sent_at(&mut p, t(60.0));
        let id = out
            .iter()
            .filter(|o| matches!(o, PollOutput::Send { .. }))
            .map(|o| sent_id(&p, o))
            .next_back()
            .expect("a poll");
        assert_eq!(
            respond(&mut p, t(60.1), CARD, &answer(b"public", id, 80)),
            Ok(UpsId(0))
        );
        let got = drain(&mut p);
        assert!(
            matches!(got[0], PollOutput::Answering { ups: UpsId(0) }),
            "{got:?}"
        );
    }

    #[test]
    fn a_reload_keeps_the_outstanding_request_of_a_ups_that_stays() {
        let site = Site::default_site();
        let mut p = poller(&site);
        p.handle_timeout(t(0.0));
        let first = sent_at(&mut p, t(0.0));
        let id = sent_id(&p, &first[0]);
        let mut next = site.clone();
        next.recorders.pop();
        p.reload(&next, t(1.0), &Remap::between(&site, &next));
        p.handle_timeout(t(1.0));
        assert!(
            drain(&mut p).is_empty(),
            "no new poll of every UPS at a reload"
        );
        assert_eq!(
            respond(&mut p, t(1.1), CARD, &answer(b"public", id, 70)),
            Ok(UpsId(0))
        );
    }

    /// The seed site with its UPS on v3 (SHA, AES), and the card's keys for `engine`.
    fn v3_site() -> Site {
        let users = "[[usm_user]]\nname = \"upsv3user\"\nauth_protocol = \"SHA\"\nauth_passphrase = \"authpass123\"\npriv_protocol = \"AES\"\npriv_passphrase = \"privpass123\"\n";
        let text = crate::engine::config::DEFAULT_SITE.replacen(
            "[[ups]]\n",
            &format!("{users}\n[[ups]]\nversion = \"3\"\nuser = \"upsv3user\"\n"),
            1,
        );
        Site::parse(&text).expect("valid")
    }

    fn card_keys(engine: &[u8], auth_pass: &[u8]) -> Keys {
        use crate::wire::usm::password_to_key;
        Keys::localized(
            AuthProtocol::Sha1,
            &password_to_key(AuthProtocol::Sha1, auth_pass),
            Some((
                PrivProtocol::Aes128,
                &password_to_key(AuthProtocol::Sha1, b"privpass123"),
            )),
            engine,
        )
    }

    /// What the card sends back: `pdu` in v3 from `engine`, sealed at `level`.
    fn from_card(
        pdu: &Pdu<'_>,
        msg_id: i32,
        engine: &[u8],
        level: Level,
        keys: Option<&Keys>,
    ) -> Vec<u8> {
        let s = Seal {
            msg_id,
            max_size: 1472,
            reportable: false,
            engine_id: engine,
            boots: 9,
            time: 3_000,
            user: if level == Level::NoAuthNoPriv {
                b""
            } else {
                b"upsv3user"
            },
            level,
            context_engine_id: engine,
            context_name: b"",
            salt: [7; 8],
        };
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        seal(pdu, &s, keys, &mut scratch, &mut out);
        out
    }

    #[test]
    fn a_v3_ups_is_discovered_then_polled_sealed_and_only_its_authentic_answer_counts() {
        let site = v3_site();
        let mut p = poller(&site);
        p.handle_timeout(t(0.0));
        let first = sent_at(&mut p, t(0.0));
        let PollOutput::Send { bytes, .. } = &first[0] else {
            panic!("{first:?}")
        };
        // Discovery: no engine, no user, unauthenticated, reportable, nothing asked.
        let wire = p.wire(bytes.clone()).to_vec();
        let h = Header::parse(&wire).expect("v3");
        assert_eq!(
            (h.engine_id, h.user, h.level()),
            (&b""[..], &b""[..], Some(Level::NoAuthNoPriv))
        );
        assert_ne!(h.flags & crate::wire::v3::FLAG_REPORTABLE, 0);
        let id = h.msg_id;
        let engine = b"\x80\x00\x13\x70\x05card";
        let arena = Bump::new();
        // A v2c answer from a v3 UPS is refused.
        let v2c = answer(b"public", id, 80);
        let m = Message::parse(&v2c, &arena).unwrap();
        assert_eq!(
            p.handle_response(t(0.1), CARD.parse().unwrap(), &m),
            Err(Refusal::WrongVersion)
        );
        // The card's Report: the request goes again, sealed for its engine at authPriv.
        let report_vbs = [VarBind {
            name: Oid::trusted(&[0x2b, 6, 1, 6, 3, 15, 1, 1, 4, 0]),
            value: Value::Counter32(1),
        }];
        let report = Message::pdu(Version::V3, b"", PduType::REPORT, id, &report_vbs).pdu;
        let r = from_card(&report, id, engine, Level::NoAuthNoPriv, None);
        assert_eq!(
            p.handle_v3_response(t(0.1), CARD.parse().unwrap(), &r, &arena),
            Ok(None)
        );
        let again = sent_at(&mut p, t(0.1));
        let PollOutput::Send { bytes, .. } = &again[0] else {
            panic!("{again:?}")
        };
        let wire = p.wire(bytes.clone()).to_vec();
        let h = Header::parse(&wire).expect("v3");
        assert_eq!(
            (h.engine_id, h.user, h.level()),
            (&engine[..], &b"upsv3user"[..], Some(Level::AuthPriv))
        );
        assert_eq!((h.boots, h.time), (9, 3_000));
        let keys = card_keys(engine, b"authpass123");
        assert!(
            keys.verify(&wire, h.auth_at, h.auth_params.len()),
            "sealed with the user's keys"
        );
        // Answers: forged (another passphrase), another msgID, then the card's own.
        let values = [
            Value::Integer(2),
            Value::Integer(2),
            Value::Gauge32(64),
            Value::TimeTicks(9_000),
        ];
        let names: Vec<_> = POWERNET.iter().map(|n| oid(n)).collect();
        let vbs: Vec<VarBind<'_>> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| VarBind {
                name: n.as_oid(),
                value: *v,
            })
            .collect();
        let resp = Message::pdu(Version::V3, b"", PduType::RESPONSE, id, &vbs).pdu;
        let forged = from_card(
            &resp,
            id,
            engine,
            Level::AuthPriv,
            Some(&card_keys(engine, b"guessing1")),
        );
        assert_eq!(
            p.handle_v3_response(t(0.2), CARD.parse().unwrap(), &forged, &arena),
            Err(Refusal::UsmWrongDigest)
        );
        let other = from_card(&resp, id + 1, engine, Level::AuthPriv, Some(&keys));
        assert_eq!(
            p.handle_v3_response(t(0.2), CARD.parse().unwrap(), &other, &arena),
            Err(Refusal::AnswerUnknownRequest)
        );
        let low = from_card(&resp, id, engine, Level::AuthNoPriv, Some(&keys));
        assert_eq!(
            p.handle_v3_response(t(0.2), CARD.parse().unwrap(), &low, &arena),
            Err(Refusal::UsmUnsupportedLevel)
        );
        let real = from_card(&resp, id, engine, Level::AuthPriv, Some(&keys));
        assert_eq!(
            p.handle_v3_response(t(0.2), "192.168.61.250:162".parse().unwrap(), &real, &arena),
            Err(Refusal::AnswerWrongSource)
        );
        assert_eq!(
            p.handle_v3_response(t(0.2), CARD.parse().unwrap(), &real, &arena),
            Ok(Some(UpsId(0)))
        );
        let got = drain(&mut p);
        assert!(
            got.iter().any(
                |o| matches!(o, PollOutput::Answer { answer, .. } if answer.charge == Some(64))
            ),
            "{got:?}"
        );
        // Answered once: the same answer again matches nothing outstanding.
        assert_eq!(
            p.handle_v3_response(t(0.3), CARD.parse().unwrap(), &real, &arena),
            Err(Refusal::AnswerUnknownRequest)
        );
    }
}
