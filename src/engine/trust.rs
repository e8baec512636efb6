//! What trapgate believes, and why. A shutdown is the most expensive thing it can cause,
//! so every datagram that can move a decision is checked here, as well as SNMPv1/v2c
//! allow, against what the site file says of its source:
//!
//! - a UPS event counts only from a UPS's address with that UPS's community;
//! - an acknowledgement only from a recorder's address with that recorder's community;
//! - a recorder is "heard from" only by a well-formed SNMP message with its community;
//! - a UPS's answer counts only as the answer to a request: in the live gateway the
//!   poller checks the address and port it asked, the request id it drew at random, the
//!   community and the objects (`crate::engine::poller`); in a replay, an answer seen on the wire
//!   counts only when it matches a request seen on the wire (`WireWatch`).
//!
//! Everything refused is counted by reason (`Refusal`) and summarised (`RefusalLog`): at
//! most one record per reason per second, never one per datagram, so a flood can neither
//! fill the journal nor hold the decisions up. Sans-IO: addresses, bytes and time in.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::classify::Event;
use crate::engine::config::Site;
use crate::engine::id::{RecorderId, UpsId};
use crate::engine::usm::UsmRefusal;
use crate::time::{Timestamp, ns};
use crate::wire::v3::Level;
use crate::wire::{Message, PduType};

/// Why a datagram was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A UPS event from a site address that is no UPS's (a recorder's).
    UnknownSource,
    /// A UPS event from a UPS's address with another community than the UPS's.
    WrongCommunity,
    /// An acknowledgement from a site address that is no recorder's.
    AckNotRecorder,
    /// An acknowledgement from a recorder's address with another community.
    AckWrongCommunity,
    /// An inform from a site address, with a community that address does not use (not
    /// answered, as snmptrapd does).
    InformWrongCommunity,
    /// A get-response on the trap port: trapgate's polls are answered on their own socket.
    ResponseOnTrapPort,
    /// A response from an address or port that trapgate did not poll.
    AnswerWrongSource,
    /// A response whose request id is not one trapgate has outstanding (forged, late, or
    /// answered already).
    AnswerUnknownRequest,
    /// A response to an outstanding request with another community than the UPS's.
    AnswerWrongCommunity,
    /// A response whose bindings are not the objects asked for.
    AnswerWrongObjects,
    /// Something on the poll socket that is not an SNMP response.
    AnswerNotResponse,
    /// A request to the virtual UPS from a site address that is not a recorder.
    AgentNotRecorder,
    /// A request to the virtual UPS with another community than the recorder's.
    AgentWrongCommunity,
    /// A request to the virtual UPS beyond the recorder's share (it asks faster than any
    /// recorder polls its UPS): not answered.
    AgentOverRate,
    /// A UPS event in another SNMP version than the UPS's (v1 or v2c from a v3 UPS, v3
    /// from a community UPS).
    WrongVersion,
    /// A v3 UPS event from another user than the UPS's.
    WrongUser,
    /// A v3 message from a user the site does not have.
    UsmUnknownUser,
    /// A v3 message at a level its user cannot meet, or below its UPS's.
    UsmUnsupportedLevel,
    /// A v3 message with a wrong MAC.
    UsmWrongDigest,
    /// A v3 message outside its engine's time window.
    UsmNotInTimeWindow,
    /// A v3 message that does not decrypt.
    UsmDecryptionError,
    /// A v3 message from an engine its user is not for, or beyond the localization rate.
    UsmUnknownEngine,
    /// A v3 message of another security model.
    UsmUnknownSecurityModel,
    /// A v3 message flagged private and not authenticated.
    UsmInvalidFlags,
    /// A connection to the NUT server from an address that is no NUT recorder's.
    NutNotRecorder,
    /// A connection to the apcupsd NIS server from an address that is no apcupsd
    /// recorder's.
    NisNotRecorder,
    /// A NUT LOGIN with a wrong password, or a user its address does not have.
    NutWrongPassword,
}

impl From<UsmRefusal> for Refusal {
    fn from(r: UsmRefusal) -> Refusal {
        match r {
            UsmRefusal::UnknownUser => Refusal::UsmUnknownUser,
            UsmRefusal::UnsupportedLevel => Refusal::UsmUnsupportedLevel,
            UsmRefusal::WrongDigest => Refusal::UsmWrongDigest,
            UsmRefusal::NotInTimeWindow => Refusal::UsmNotInTimeWindow,
            UsmRefusal::DecryptionError => Refusal::UsmDecryptionError,
            UsmRefusal::UnknownEngine => Refusal::UsmUnknownEngine,
            UsmRefusal::UnknownSecurityModel => Refusal::UsmUnknownSecurityModel,
            UsmRefusal::InvalidFlags => Refusal::UsmInvalidFlags,
        }
    }
}

impl Refusal {
    /// Every reason, in the order counters and reports list them.
    pub const ALL: [Refusal; 27] = [
        Refusal::UnknownSource,
        Refusal::WrongCommunity,
        Refusal::AckNotRecorder,
        Refusal::AckWrongCommunity,
        Refusal::InformWrongCommunity,
        Refusal::ResponseOnTrapPort,
        Refusal::AnswerWrongSource,
        Refusal::AnswerUnknownRequest,
        Refusal::AnswerWrongCommunity,
        Refusal::AnswerWrongObjects,
        Refusal::AnswerNotResponse,
        Refusal::AgentNotRecorder,
        Refusal::AgentWrongCommunity,
        Refusal::AgentOverRate,
        Refusal::WrongVersion,
        Refusal::WrongUser,
        Refusal::UsmUnknownUser,
        Refusal::UsmUnsupportedLevel,
        Refusal::UsmWrongDigest,
        Refusal::UsmNotInTimeWindow,
        Refusal::UsmDecryptionError,
        Refusal::UsmUnknownEngine,
        Refusal::UsmUnknownSecurityModel,
        Refusal::UsmInvalidFlags,
        Refusal::NutNotRecorder,
        Refusal::NisNotRecorder,
        Refusal::NutWrongPassword,
    ];

    /// The reason as counted and logged.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnknownSource => "unknown_source",
            Refusal::WrongCommunity => "wrong_community",
            Refusal::AckNotRecorder => "ack_not_recorder",
            Refusal::AckWrongCommunity => "ack_wrong_community",
            Refusal::InformWrongCommunity => "inform_wrong_community",
            Refusal::ResponseOnTrapPort => "response_on_trap_port",
            Refusal::AnswerWrongSource => "answer_wrong_source",
            Refusal::AnswerUnknownRequest => "answer_unknown_request",
            Refusal::AnswerWrongCommunity => "answer_wrong_community",
            Refusal::AnswerWrongObjects => "answer_wrong_objects",
            Refusal::AnswerNotResponse => "answer_not_response",
            Refusal::AgentNotRecorder => "agent_not_recorder",
            Refusal::AgentWrongCommunity => "agent_wrong_community",
            Refusal::AgentOverRate => "agent_over_rate",
            Refusal::WrongVersion => "wrong_version",
            Refusal::WrongUser => "wrong_user",
            Refusal::NutNotRecorder => "nut_not_recorder",
            Refusal::NisNotRecorder => "nis_not_recorder",
            Refusal::NutWrongPassword => "nut_wrong_password",
            r => r.usm().map_or("", UsmRefusal::name),
        }
    }

    /// What it means, for a person reading the journal.
    pub fn sentence(self) -> &'static str {
        match self {
            Refusal::UnknownSource => "UPS traps from a site address that is no UPS's",
            Refusal::WrongCommunity => "UPS traps with another community than the UPS's",
            Refusal::AckNotRecorder => "acknowledgements from an address that is no recorder's",
            Refusal::AckWrongCommunity => {
                "acknowledgements with another community than the recorder's"
            }
            Refusal::InformWrongCommunity => "informs with the wrong community (not answered)",
            Refusal::ResponseOnTrapPort => {
                "get-responses on the trap port (trapgate's polls are answered on their own socket)"
            }
            Refusal::AnswerWrongSource => {
                "poll answers from an address or port trapgate did not poll"
            }
            Refusal::AnswerUnknownRequest => {
                "poll answers to no outstanding request (forged, late, or answered already)"
            }
            Refusal::AnswerWrongCommunity => "poll answers with another community than the UPS's",
            Refusal::AnswerWrongObjects => "poll answers that are not the objects asked for",
            Refusal::AnswerNotResponse => "datagrams on the poll socket that are not responses",
            Refusal::AgentNotRecorder => {
                "requests to the virtual UPS from an address that is no recorder's"
            }
            Refusal::AgentWrongCommunity => {
                "requests to the virtual UPS with another community than the recorder's"
            }
            Refusal::AgentOverRate => {
                "requests to the virtual UPS beyond the recorder's share (20 a second)"
            }
            Refusal::WrongVersion => {
                "UPS traps in another SNMP version than the UPS's (v1/v2c from a v3 UPS, or v3 from a community UPS)"
            }
            Refusal::WrongUser => "UPS traps from another SNMPv3 user than the UPS's",
            Refusal::NutNotRecorder => {
                "connections to the NUT server from an address that is no NUT recorder's"
            }
            Refusal::NisNotRecorder => {
                "connections to the apcupsd NIS server from an address that is no apcupsd recorder's"
            }
            Refusal::NutWrongPassword => {
                "NUT logins with a wrong password or a user the address does not have (each answered after a delay that doubles per address, 16 s at most)"
            }
            r => r.usm().map_or("", UsmRefusal::sentence),
        }
    }

    /// The security model's reason it is, if one.
    pub fn usm(self) -> Option<UsmRefusal> {
        UsmRefusal::ALL
            .into_iter()
            .find(|u| Refusal::from(*u) == self)
    }

    /// Its place in `Refusals`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Counts of refusals, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals(pub [u64; Refusal::ALL.len()]);

impl Refusals {
    /// Counts one refusal.
    #[inline]
    pub fn add(&mut self, r: Refusal) {
        self.0[r.index()] += 1;
    }

    /// The count for `r`.
    pub fn get(&self, r: Refusal) -> u64 {
        self.0[r.index()]
    }

    /// Adds `other`'s counts.
    pub fn sum(&mut self, other: &Refusals) {
        self.0.iter_mut().zip(other.0).for_each(|(a, b)| *a += b);
    }

    /// Every refusal, whatever its reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The reasons with a count, with it.
    pub fn nonzero(&self) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        Refusal::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Who an address of the site is. A UPS and a recorder never share one (the site file
/// refuses it), so an address is one or the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// UPS `n` of the site.
    Ups(UpsId),
    /// Recorder `n` of the site.
    Recorder(RecorderId),
}

/// What a message came with: its community (v1, v2c), or its SNMPv3 user and the level
/// the security model checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credential<'a> {
    /// The community, or the v3 user name.
    pub name: &'a [u8],
    /// For v3, its level.
    pub v3: Option<Level>,
}

impl<'a> Credential<'a> {
    /// A community's.
    pub fn community(name: &'a [u8]) -> Credential<'a> {
        Credential { name, v3: None }
    }

    /// A message's.
    pub fn of(m: &Message<'a>) -> Credential<'a> {
        Credential {
            name: m.community,
            v3: m.v3.map(|s| s.level),
        }
    }
}

/// What a UPS's traps, or a recorder's acknowledgements and polls, must come with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Security {
    Community(Box<[u8]>),
    V3 { user: Box<[u8]>, level: Level },
}

impl Security {
    fn of(community: &str, v3: &Option<crate::engine::config::V3Access>) -> Security {
        match v3 {
            Some(a) => Security::V3 {
                user: a.user.as_bytes().into(),
                level: a.level,
            },
            None => Security::Community(community.as_bytes().into()),
        }
    }

    /// Whether `cred` is what it must be.
    fn admits(&self, cred: Credential<'_>) -> bool {
        match (self, cred.v3) {
            (Security::Community(c), None) => **c == *cred.name,
            (Security::V3 { user, level }, Some(got)) => **user == *cred.name && got >= *level,
            _ => false,
        }
    }
}

/// What the site says of its addresses and communities, looked up for every datagram.
#[derive(Clone, Debug)]
pub struct Trust {
    /// A fast hash: the keys are the site's own, not chosen by the sender.
    who: HashMap<IpAddr, Who, foldhash::fast::RandomState>,
    ups_community: Vec<Box<[u8]>>,
    ups_security: Vec<Security>,
    recorder_community: Vec<Box<[u8]>>,
    recorder_security: Vec<Security>,
}

impl Trust {
    /// The trust of `site`.
    pub fn new(site: &Site) -> Trust {
        let mut who: HashMap<IpAddr, Who, _> = HashMap::default();
        who.reserve(site.upses.len() + site.recorders.len());
        for (i, r) in RecorderId::enumerate(&site.recorders) {
            who.insert(r.address, Who::Recorder(i));
        }
        for (i, u) in UpsId::enumerate(&site.upses) {
            who.insert(u.address, Who::Ups(i));
        }
        Trust {
            who,
            ups_community: site
                .upses
                .iter()
                .map(|u| u.community.as_bytes().into())
                .collect(),
            ups_security: site
                .upses
                .iter()
                .map(|u| Security::of(&u.community, &u.v3))
                .collect(),
            recorder_security: site
                .recorders
                .iter()
                .map(|r| Security::of(&r.community, &r.v3))
                .collect(),
            recorder_community: site
                .recorders
                .iter()
                .map(|r| r.community.as_bytes().into())
                .collect(),
        }
    }

    /// Who `address` is; None for an address that is not the site's (dropped before it
    /// is even decoded).
    #[inline]
    pub fn who(&self, address: IpAddr) -> Option<Who> {
        self.who.get(&address).copied()
    }

    /// The community of `who`.
    pub fn community(&self, who: Who) -> &[u8] {
        match who {
            Who::Ups(u) => &self.ups_community[u],
            Who::Recorder(r) => &self.recorder_community[r],
        }
    }

    /// Whether a notification of `event` from `who` with `cred` may move a decision. A
    /// UPS's must come as the UPS is configured: with its community in v1 or v2c, or in
    /// v3 from its user at its level or better (the security model has checked the MAC
    /// and time); a recorder's with its community.
    #[inline]
    pub fn notification(
        &self,
        who: Who,
        cred: Credential<'_>,
        event: Event,
    ) -> Result<Who, Refusal> {
        let recorder_ok = |r: RecorderId| self.recorder_security[r].admits(cred);
        match (event, who) {
            (Event::RecorderAck, Who::Recorder(r)) if recorder_ok(r) => Ok(who),
            (Event::RecorderAck, Who::Recorder(_)) => Err(Refusal::AckWrongCommunity),
            (Event::RecorderAck, Who::Ups(_)) => Err(Refusal::AckNotRecorder),
            (_, Who::Ups(u)) => match (&self.ups_security[u], cred.v3) {
                (Security::Community(c), None) if **c == *cred.name => Ok(who),
                (Security::Community(_), None) => Err(Refusal::WrongCommunity),
                (Security::V3 { user, level }, Some(got)) => {
                    if **user != *cred.name {
                        Err(Refusal::WrongUser)
                    } else if got < *level {
                        Err(Refusal::UsmUnsupportedLevel)
                    } else {
                        Ok(who)
                    }
                }
                _ => Err(Refusal::WrongVersion),
            },
            // A recorder's own notification (a coldStart after it boots) moves nothing:
            // believed with its community, and only counted.
            (e, Who::Recorder(r)) if !e.acted_on() && recorder_ok(r) => Ok(who),
            (_, Who::Recorder(_)) => Err(Refusal::UnknownSource),
        }
    }

    /// What a decoded message from `who` to the trap port tells the policy, for the
    /// receive workers and replay alike (`event`: its classification's, if it is a
    /// notification). An inform is answered only with its source's community, as
    /// snmptrapd does; a get-response there is refused (answers come to the poll socket).
    pub fn at_trap_port(&self, who: Who, m: &Message<'_>, event: Option<Event>) -> Verdict {
        let kind = m.pdu_type();
        let refused = |why| Verdict {
            answer: false,
            says: Says::Refused(why, event),
            alive: None,
        };
        let cred = Credential::of(m);
        if kind == PduType::INFORM_REQUEST && !self.answerable(who, cred) {
            return refused(Refusal::InformWrongCommunity);
        }
        if kind == PduType::RESPONSE {
            return refused(Refusal::ResponseOnTrapPort);
        }
        let answer = kind == PduType::INFORM_REQUEST;
        let says = match event.map(|e| (e, self.notification(who, cred, e))) {
            Some((e, Ok(who))) if e.acted_on() => {
                return Verdict {
                    answer,
                    says: Says::Event(who, e),
                    alive: None,
                };
            }
            Some((e, Ok(_))) => Says::Believed(e),
            Some((e, Err(why))) => Says::Refused(why, Some(e)),
            None => Says::Nothing,
        };
        Verdict {
            answer,
            says,
            alive: self.heard_from(who, cred),
        }
    }

    /// Whether an inform from `who` with `cred` is answered: with its source's community
    /// (v1, v2c; as snmptrapd does), or from a v3 UPS's user at its level or better.
    pub fn answerable(&self, who: Who, cred: Credential<'_>) -> bool {
        match who {
            Who::Ups(u) => self.ups_security[u].admits(cred),
            Who::Recorder(r) => self.recorder_security[r].admits(cred),
        }
    }

    /// The recorder a well-formed message from `who` with `cred` shows alive.
    #[inline]
    pub fn heard_from(&self, who: Who, cred: Credential<'_>) -> Option<RecorderId> {
        match who {
            Who::Recorder(r) if self.recorder_security[r].admits(cred) => Some(r),
            _ => None,
        }
    }
}

/// What a message to the trap port tells the policy (`Trust::at_trap_port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Answer it (an inform, from its source with its community).
    pub answer: bool,
    /// What it says.
    pub says: Says,
    /// The recorder it shows alive (a well-formed message with its community), unless
    /// it is an event the policy acts on.
    pub alive: Option<RecorderId>,
}

/// What a notification says to the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Says {
    /// An event the policy acts on, from `who`, believed.
    Event(Who, Event),
    /// A notification believed and not acted on (informational, unknown): counted.
    Believed(Event),
    /// Refused, and why (with the event it claimed, if a notification).
    Refused(Refusal, Option<Event>),
    /// Not a notification.
    Nothing,
}

/// One summary of refusals: `count` datagrams refused for `reason` since the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusalSummary {
    /// Why.
    pub reason: Refusal,
    /// How many since the last summary of this reason.
    pub count: u64,
    /// The last refused source.
    pub source: Option<IpAddr>,
    /// The last refused notification's event, if it was one.
    pub event: Option<Event>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    count: u64,
    source: Option<IpAddr>,
    event: Option<Event>,
    /// When the last summary of this reason was given.
    said: Option<Timestamp>,
}

/// Summarises refusals: the first of a reason is said at once, the ones after it at
/// most once a `window` (a second), with their count. Sans-IO: `note` with the time,
/// `poll_timeout` / `handle_timeout`, `poll_summary`.
#[derive(Clone, Debug)]
pub struct RefusalLog {
    window: u64,
    pending: [Pending; Refusal::ALL.len()],
    out: VecDeque<RefusalSummary>,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog::new()
    }
}

impl RefusalLog {
    /// A log that says each reason at most once a second.
    pub fn new() -> RefusalLog {
        RefusalLog {
            window: ns::SECOND,
            pending: [Pending::default(); Refusal::ALL.len()],
            out: VecDeque::new(),
        }
    }

    /// `count` refusals for `reason` at `now`, the last from `source`.
    pub fn note(
        &mut self,
        now: Timestamp,
        reason: Refusal,
        count: u64,
        source: Option<IpAddr>,
        event: Option<Event>,
    ) {
        if count == 0 {
            return;
        }
        let p = &mut self.pending[reason.index()];
        p.count += count;
        if source.is_some() {
            p.source = source;
            p.event = event;
        }
        let quiet = p
            .said
            .is_none_or(|s| now.0 >= s.0.saturating_add(self.window));
        if quiet {
            self.say(now, reason);
        }
    }

    fn say(&mut self, now: Timestamp, reason: Refusal) {
        let p = &mut self.pending[reason.index()];
        if p.count == 0 {
            return;
        }
        self.out.push_back(RefusalSummary {
            reason,
            count: p.count,
            source: p.source,
            event: p.event,
        });
        *p = Pending {
            said: Some(now),
            ..Pending::default()
        };
    }

    /// When the next summary is due.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.pending
            .iter()
            .filter(|p| p.count > 0)
            .filter_map(|p| p.said.map(|s| Timestamp(s.0.saturating_add(self.window))))
            .min()
    }

    /// Says every reason whose window has ended by `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for r in Refusal::ALL {
            let p = self.pending[r.index()];
            if p.count > 0
                && p.said
                    .is_none_or(|s| now.0 >= s.0.saturating_add(self.window))
            {
                self.say(now, r);
            }
        }
    }

    /// Says everything still pending (at the end of a replay, or when stopping).
    pub fn flush(&mut self, now: Timestamp) {
        for r in Refusal::ALL {
            self.say(now, r);
        }
    }

    /// The next summary, if any.
    pub fn poll_summary(&mut self) -> Option<RefusalSummary> {
        self.out.pop_front()
    }
}

/// Requests seen on the wire in a capture, so that a UPS's response seen there counts
/// only as the answer to one of them: same endpoints (reversed), request id and
/// community, as the seed's trace shows the card answering the NVR. Bounded: the oldest
/// requests are forgotten first, and none outlives `KEEP`.
#[derive(Clone, Debug, Default)]
pub struct WireWatch {
    requests: VecDeque<SeenRequest>,
}

#[derive(Clone, Debug)]
struct SeenRequest {
    at: Timestamp,
    from: SocketAddr,
    to: SocketAddr,
    id: i32,
    community: Box<[u8]>,
}

impl WireWatch {
    /// Requests remembered at most.
    pub const CAPACITY: usize = 4096;
    /// How long a request waits for its answer.
    pub const KEEP: u64 = 60 * ns::SECOND;

    /// A get, get-next or get-bulk request from `from` to `to`, seen at `now`.
    pub fn request(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        to: SocketAddr,
        id: i32,
        community: &[u8],
    ) {
        self.expire(now);
        if self.requests.len() == Self::CAPACITY {
            self.requests.pop_front();
        }
        self.requests.push_back(SeenRequest {
            at: now,
            from,
            to,
            id,
            community: community.into(),
        });
    }

    /// A response from `from` to `to` seen at `now`: whether it answers a request seen
    /// (which is then answered, and does not count twice).
    pub fn response(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        to: SocketAddr,
        id: i32,
        community: &[u8],
    ) -> bool {
        self.expire(now);
        let found = self
            .requests
            .iter()
            .position(|r| r.from == to && r.to == from && r.id == id && *r.community == *community);
        found.map(|i| self.requests.remove(i)).is_some()
    }

    fn expire(&mut self, now: Timestamp) {
        while self
            .requests
            .front()
            .is_some_and(|r| now.0.saturating_sub(r.at.0) > Self::KEEP)
        {
            self.requests.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: f64) -> Timestamp {
        Timestamp((1_000.0 * 1e9 + s * 1e9) as u64)
    }

    fn c(community: &[u8]) -> Credential<'_> {
        Credential::community(community)
    }

    #[test]
    fn a_notification_moves_nothing_unless_its_source_and_community_are_the_sites() {
        let mut site = Site::default_site();
        site.recorders[1].community = "nvr-secret".into();
        let trust = Trust::new(&site);
        let ups = trust.who("192.168.61.250".parse().unwrap()).unwrap();
        let nvr = trust.who("192.168.61.251".parse().unwrap()).unwrap();
        assert_eq!(
            (ups, nvr),
            (Who::Ups(UpsId(0)), Who::Recorder(RecorderId(1)))
        );
        assert_eq!(trust.who("192.168.61.66".parse().unwrap()), None);
        use Event::*;
        assert_eq!(trust.notification(ups, c(b"public"), LowBattery), Ok(ups));
        assert_eq!(
            trust.notification(ups, c(b"private"), LowBattery),
            Err(Refusal::WrongCommunity)
        );
        assert_eq!(
            trust.notification(nvr, c(b"nvr-secret"), LowBattery),
            Err(Refusal::UnknownSource),
            "a recorder cannot speak for the UPS"
        );
        assert_eq!(
            trust.notification(nvr, c(b"nvr-secret"), RecorderAck),
            Ok(nvr)
        );
        assert_eq!(
            trust.notification(nvr, c(b"public"), RecorderAck),
            Err(Refusal::AckWrongCommunity)
        );
        assert_eq!(
            trust.notification(ups, c(b"public"), RecorderAck),
            Err(Refusal::AckNotRecorder)
        );
        assert_eq!(trust.heard_from(nvr, c(b"nvr-secret")), Some(RecorderId(1)));
        assert_eq!(trust.heard_from(nvr, c(b"public")), None);
        assert_eq!(trust.heard_from(ups, c(b"public")), None);
    }

    #[test]
    fn refusals_are_said_at_once_then_at_most_once_a_second() {
        let mut log = RefusalLog::new();
        let src: IpAddr = "127.0.0.250".parse().unwrap();
        let said = |log: &mut RefusalLog| -> Vec<(Refusal, u64)> {
            core::iter::from_fn(|| log.poll_summary())
                .map(|s| (s.reason, s.count))
                .collect()
        };
        log.note(t(0.0), Refusal::WrongCommunity, 1, Some(src), None);
        assert_eq!(said(&mut log), [(Refusal::WrongCommunity, 1)]);
        // A flood: counted, not said, until its second is over.
        for i in 0..10_000 {
            log.note(
                t(0.1 + i as f64 * 1e-5),
                Refusal::WrongCommunity,
                1,
                Some(src),
                None,
            );
        }
        log.note(t(0.2), Refusal::AckWrongCommunity, 3, Some(src), None);
        assert_eq!(said(&mut log), [(Refusal::AckWrongCommunity, 3)]);
        assert_eq!(log.poll_timeout(), Some(t(1.0)));
        log.handle_timeout(t(0.99));
        assert!(said(&mut log).is_empty());
        log.handle_timeout(t(1.0));
        assert_eq!(said(&mut log), [(Refusal::WrongCommunity, 10_000)]);
        assert_eq!(log.poll_timeout(), None, "nothing pending");
        // Quiet for a second: the next one is said at once again.
        log.note(t(5.0), Refusal::WrongCommunity, 2, Some(src), None);
        assert_eq!(said(&mut log), [(Refusal::WrongCommunity, 2)]);
        log.note(t(5.5), Refusal::WrongCommunity, 1, Some(src), None);
        log.flush(t(5.6));
        assert_eq!(said(&mut log), [(Refusal::WrongCommunity, 1)]);
    }

    #[test]
    fn an_answer_on_the_wire_counts_only_for_a_request_on_the_wire() {
        let nvr: SocketAddr = "192.168.61.251:40000".parse().unwrap();
        let ups: SocketAddr = "192.168.61.250:161".parse().unwrap();
        let other: SocketAddr = "192.168.61.250:1161".parse().unwrap();
        let mut w = WireWatch::default();
        assert!(!w.response(t(0.0), ups, nvr, 7, b"public"), "nothing asked");
        w.request(t(1.0), nvr, ups, 7, b"public");
        assert!(
            !w.response(t(1.1), other, nvr, 7, b"public"),
            "another port"
        );
        assert!(!w.response(t(1.1), ups, nvr, 8, b"public"), "another id");
        assert!(
            !w.response(t(1.1), ups, nvr, 7, b"private"),
            "another community"
        );
        assert!(w.response(t(1.2), ups, nvr, 7, b"public"));
        assert!(!w.response(t(1.3), ups, nvr, 7, b"public"), "answered once");
        w.request(t(2.0), nvr, ups, 9, b"public");
        assert!(!w.response(t(70.0), ups, nvr, 9, b"public"), "too late");
    }
}
