//! The virtual UPS: what the gateway answers a recorder that polls it, as if it were
//! the recorder's UPS.
//!
//! Each recorder is configured with the gateway as its UPS, so it asks the gateway for
//! `upsEstimatedChargeRemaining` and friends. The answer comes from the state the policy
//! presents to *that* recorder (a charge of 0 % once it has been told to shut down),
//! else from the real UPS's values, polled and cached by the gateway: hundreds of
//! recorders never reach the UPS's card. Sans-IO: a request and the time go in, the
//! encoded response comes out.
//!
//! A recorder is answered only from its address with its community. An answer is never
//! larger than the site's `max_message_size` (net-snmp's 1472 by default) nor, above one
//! such datagram, three times the request: a GetBulk gets fewer repetitions, a Get or
//! GetNext that cannot fit gets `tooBig` (RFC 3416 §4.2), so nothing sent to the agent
//! is reflected much larger at a recorder's address. Each recorder has a share of
//! answers (`RATE` a second, in bursts of `BURST`: an NVR polls its UPS every few
//! seconds, a walk of the whole virtual UPS takes 16 requests); what it asks beyond is
//! not answered, so a recorder gone mad costs the gateway a lookup per request, not an
//! answer, and takes nothing from the others.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::engine::config::{Remap, Site};
use crate::engine::id::{RecorderId, UpsId};
use crate::engine::policy::PollAnswer;
use crate::time::Timestamp;
use crate::wire::oid::{OidBuf, oid};
use crate::wire::{Message, Oid, Pdu, PduType, Value, VarBind, Version, encode};

/// The objects the virtual UPS serves, in OID order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Object {
    SysDescr,
    SysObjectId,
    SysUpTime,
    SysName,
    IdentManufacturer,
    IdentModel,
    BatteryStatus,
    SecondsOnBattery,
    MinutesRemaining,
    ChargeRemaining,
    OutputSource,
    BasicBatteryStatus,
    AdvBatteryCapacity,
    AdvRunTimeRemaining,
    BasicOutputStatus,
}

const OBJECTS: [(&str, Object); 15] = [
    ("1.3.6.1.2.1.1.1.0", Object::SysDescr),
    ("1.3.6.1.2.1.1.2.0", Object::SysObjectId),
    ("1.3.6.1.2.1.1.3.0", Object::SysUpTime),
    ("1.3.6.1.2.1.1.5.0", Object::SysName),
    ("1.3.6.1.2.1.33.1.1.1.0", Object::IdentManufacturer),
    ("1.3.6.1.2.1.33.1.1.2.0", Object::IdentModel),
    ("1.3.6.1.2.1.33.1.2.1.0", Object::BatteryStatus),
    ("1.3.6.1.2.1.33.1.2.2.0", Object::SecondsOnBattery),
    ("1.3.6.1.2.1.33.1.2.3.0", Object::MinutesRemaining),
    ("1.3.6.1.2.1.33.1.2.4.0", Object::ChargeRemaining),
    ("1.3.6.1.2.1.33.1.4.1.0", Object::OutputSource),
    ("1.3.6.1.4.1.318.1.1.1.2.1.1.0", Object::BasicBatteryStatus),
    ("1.3.6.1.4.1.318.1.1.1.2.2.1.0", Object::AdvBatteryCapacity),
    ("1.3.6.1.4.1.318.1.1.1.2.2.3.0", Object::AdvRunTimeRemaining),
    ("1.3.6.1.4.1.318.1.1.1.4.1.1.0", Object::BasicOutputStatus),
];

/// The APC enterprise: the virtual UPS's sysObjectID, as recorders expect an APC card.
const APC_ENTERPRISE: &str = "1.3.6.1.4.1.318";

/// What the gateway knows of one real UPS, from its polls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpsView {
    /// The latest values the UPS gave (each kept until it gives a new one).
    pub values: PollAnswer,
    /// When it last answered.
    pub polled_at: Option<Timestamp>,
    /// Since when it has been on battery, as polled.
    pub on_battery_since: Option<Timestamp>,
}

impl UpsView {
    /// Merges a poll answer in.
    pub fn update(&mut self, now: Timestamp, a: PollAnswer) {
        let v = &mut self.values;
        v.on_battery = a.on_battery.or(v.on_battery);
        v.battery_low = a.battery_low.or(v.battery_low);
        v.charge = a.charge.or(v.charge);
        v.runtime = a.runtime.or(v.runtime);
        match a.on_battery {
            Some(true) if self.on_battery_since.is_none() => self.on_battery_since = Some(now),
            Some(false) => self.on_battery_since = None,
            _ => {}
        }
        self.polled_at = Some(now);
    }
}

/// What a recorder is shown: the values of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presented {
    /// The charge, percent (None: not known yet).
    pub charge: Option<u8>,
    /// The runtime, seconds.
    pub runtime: Option<u32>,
    /// On battery.
    pub on_battery: Option<bool>,
    /// Battery low.
    pub battery_low: Option<bool>,
    /// Seconds on battery.
    pub seconds_on_battery: Option<u32>,
}

/// Why a request got no answer, or who got one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// Answered recorder `r`; the response is in the output buffer.
    Recorder(RecorderId),
    /// The source is not a recorder of the site (not answered).
    NotRecorder,
    /// A recorder with the wrong community (not answered, as an agent does).
    WrongCommunity(RecorderId),
    /// Not a Get, GetNext or GetBulk request (not answered).
    NotRequest,
    /// Recorder `r` asked for more than fits even as a `tooBig` answer (not answered,
    /// as RFC 3416 says).
    Discarded(RecorderId),
    /// Recorder `r` asked beyond its share (not answered).
    OverRate(RecorderId),
}

/// Answers a recorder gets a second, sustained.
pub const RATE: u32 = 20;
/// Answers a recorder may get at once.
pub const BURST: u32 = 40;

/// A recorder's share of answers: a token bucket, refilled with the time given.
#[derive(Clone, Copy, Debug, Default)]
struct Share {
    /// Answers it may still get, in thousandths.
    milli: u64,
    /// When it was last refilled.
    at: Timestamp,
}

impl Share {
    fn take(&mut self, now: Timestamp) -> bool {
        let full = BURST as u64 * 1000;
        if self.at == Timestamp(0) {
            self.milli = full;
            self.at = now;
        } else {
            // RATE answers a second: RATE thousandths a millisecond.
            let earned = now.ns_since(self.at) / crate::time::ns::MILLI * RATE as u64;
            if earned > 0 {
                self.milli = self.milli.saturating_add(earned).min(full);
                // The time accounted for, not the part of a millisecond still to come.
                self.at = self
                    .at
                    .plus_ns(earned / RATE as u64 * crate::time::ns::MILLI);
            }
        }
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// The largest answer to a request of `request_len` bytes: the site's maximum message
/// size, and no more than three times the request once above one 1,472-byte datagram.
pub fn answer_limit(max_message_size: usize, request_len: usize) -> usize {
    max_message_size.min(
        request_len
            .saturating_mul(3)
            .max(crate::engine::config::DEFAULT_MESSAGE_SIZE),
    )
}

/// What a checkpoint keeps of the virtual UPS.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentState {
    ups: Vec<UpsView>,
    presented: Vec<Option<u8>>,
    started: Timestamp,
}

/// The virtual UPS agent of a whole site.
#[derive(Debug)]
pub struct Agent {
    started: Timestamp,
    objects: Vec<(OidBuf, Object)>,
    apc: OidBuf,
    recorders: HashMap<IpAddr, RecorderId>,
    max_message_size: usize,
    /// Each recorder's UPS, its feeds (its UPS first), community and sysDescr.
    recorder_ups: Vec<UpsId>,
    recorder_feeds: Vec<Box<[UpsId]>>,
    recorder_communities: Vec<Box<[u8]>>,
    /// Each v3 recorder's user and least level (its requests come that way, not with its
    /// community).
    recorder_v3: Vec<Option<crate::engine::config::V3Access>>,
    descriptions: Vec<String>,
    ups_names: Vec<String>,
    /// Answers with fewer GetBulk repetitions than asked, to fit.
    pub trimmed: u64,
    /// Requests answered `tooBig`, or not at all because not even that fits.
    pub too_big: u64,
    /// Each recorder's share of answers.
    shares: Vec<Share>,
    /// Per UPS: what its polls said.
    pub ups: Vec<UpsView>,
    /// Per recorder: the charge the policy presents (None: the UPS's own).
    pub presented: Vec<Option<u8>>,
}

/// What an answer's v3 header may take beyond a v2c one's: the msgGlobalData, the
/// engine ID (32), the user (32), the MAC (48), the salt (8), the context and their
/// lengths.
const V3_HEADER_ROOM: usize = 200;

impl Agent {
    /// The agent for `site`, started at `now` (its sysUpTime counts from there).
    pub fn new(site: &Site, now: Timestamp) -> Agent {
        Agent {
            started: now,
            objects: OBJECTS.iter().map(|(o, k)| (oid(o), *k)).collect(),
            apc: oid(APC_ENTERPRISE),
            recorders: RecorderId::enumerate(&site.recorders)
                .map(|(i, r)| (r.address, i))
                .collect(),
            max_message_size: site.gateway.max_message_size,
            recorder_ups: site.recorders.iter().map(|r| r.ups).collect(),
            recorder_feeds: site
                .recorders
                .iter()
                .map(|r| r.feeds.as_slice().into())
                .collect(),
            recorder_communities: site
                .recorders
                .iter()
                .map(|r| r.community.as_bytes().into())
                .collect(),
            recorder_v3: site.recorders.iter().map(|r| r.v3.clone()).collect(),
            descriptions: site
                .recorders
                .iter()
                .map(|r| {
                    format!(
                        "trapgate virtual UPS for {} (UPS {})",
                        r.name, site.upses[r.ups].name
                    )
                })
                .collect(),
            ups_names: site.upses.iter().map(|u| u.name.clone()).collect(),
            trimmed: 0,
            too_big: 0,
            shares: vec![Share::default(); site.recorders.len()],
            ups: vec![UpsView::default(); site.upses.len()],
            presented: vec![None; site.recorders.len()],
        }
    }

    /// Takes a reloaded site: UPS views and presented charges follow names that stay.
    pub fn reload(&mut self, site: &Site, remap: &Remap) {
        let _ = self.take_over(Agent::new(site, self.started), remap);
    }

    /// Becomes `next` (made for the new site, off the decision thread) and returns what it was, for the caller to drop where it costs nothing, carrying over
    /// the UPSes' values and what each recorder that stays is shown; its uptime goes on.
    pub fn take_over(&mut self, mut next: Agent, remap: &Remap) -> Agent {
        for (u, o) in remap.kept_upses() {
            next.ups[u] = self.ups[o];
        }
        for (r, o) in remap.kept_recorders() {
            next.presented[r] = self.presented[o];
            next.shares[r] = self.shares[o];
        }
        next.started = self.started;
        next.trimmed = self.trimmed;
        next.too_big = self.too_big;
        std::mem::replace(self, next)
    }

    /// What a checkpoint keeps: the UPSes' values, what each recorder is shown, the
    /// uptime's start.
    pub fn state(&self) -> AgentState {
        AgentState {
            ups: self.ups.clone(),
            presented: self.presented.clone(),
            started: self.started,
        }
    }

    /// Takes a checkpoint's state back (for the same site: same lengths, or nothing).
    pub fn set_state(&mut self, s: AgentState) {
        if s.ups.len() == self.ups.len() && s.presented.len() == self.presented.len() {
            self.ups = s.ups;
            self.presented = s.presented;
            self.started = s.started;
        }
    }

    /// Takes one answer from recorder `r`'s share at `now` (an answer made elsewhere:
    /// an SNMPv3 Report); false if it is spent.
    pub fn within_share(&mut self, now: Timestamp, r: RecorderId) -> bool {
        self.shares[r].take(now)
    }

    /// The recorder at `source`, if one.
    pub fn recorder_at(&self, source: IpAddr) -> Option<RecorderId> {
        self.recorders.get(&source).copied()
    }

    /// The UPS whose values recorder `r` is shown while it is not ordered down: its
    /// UPS, or for a recorder fed by several the best of them (on mains before on
    /// battery, not low before low, then the most charge; the first feed on a tie).
    /// `on_battery` says whether a UPS is on battery (its polls, and what else the
    /// caller knows).
    pub fn best_feed(&self, r: RecorderId, on_battery: impl Fn(UpsId) -> bool) -> UpsId {
        let feeds = &self.recorder_feeds[r];
        if feeds.len() <= 1 {
            return self.recorder_ups[r];
        }
        let rank = |u: UpsId| {
            let v = &self.ups[u].values;
            (
                on_battery(u),
                v.battery_low.unwrap_or(false),
                core::cmp::Reverse(v.charge),
            )
        };
        feeds
            .iter()
            .copied()
            .min_by_key(|&u| rank(u))
            .unwrap_or(self.recorder_ups[r])
    }

    /// What recorder `r` is shown now: the shutdown values once it is ordered down,
    /// else the values of its best feed as polled.
    pub fn presented_to(&self, now: Timestamp, r: RecorderId) -> Presented {
        let feed = self.best_feed(r, |u| self.ups[u].values.on_battery.unwrap_or(false));
        self.presented_from(now, r, feed)
    }

    /// What recorder `r` is shown now with the values of UPS `feed` (one of its feeds).
    pub fn presented_from(&self, now: Timestamp, r: RecorderId, feed: UpsId) -> Presented {
        let view = &self.ups[feed];
        let on_battery_s = view.on_battery_since.map_or(0, |s| now.secs_since(s));
        match self.presented[r] {
            Some(p) => Presented {
                charge: Some(p),
                runtime: Some(0),
                on_battery: Some(true),
                battery_low: Some(true),
                seconds_on_battery: Some(on_battery_s),
            },
            None => Presented {
                charge: view.values.charge,
                runtime: view.values.runtime.map(|s| s.0),
                on_battery: view.values.on_battery,
                battery_low: view.values.battery_low,
                seconds_on_battery: view
                    .values
                    .on_battery
                    .map(|on| if on { on_battery_s } else { 0 }),
            },
        }
    }

    /// Answers `request` (`request_len` bytes on the wire) from `source` at `now` into
    /// `out` (cleared first).
    pub fn answer(
        &mut self,
        now: Timestamp,
        source: IpAddr,
        request: &Message<'_>,
        request_len: usize,
        out: &mut Vec<u8>,
    ) -> Answered {
        out.clear();
        let Pdu::Request(req) = &request.pdu else {
            return Answered::NotRequest;
        };
        if !matches!(
            req.kind,
            PduType::GET_REQUEST | PduType::GET_NEXT_REQUEST | PduType::GET_BULK_REQUEST
        ) {
            return Answered::NotRequest;
        }
        let Some(r) = self.recorder_at(source) else {
            return Answered::NotRecorder;
        };
        let credentials = match (&self.recorder_v3[r], request.v3) {
            (None, None) => *request.community == *self.recorder_communities[r],
            (Some(a), Some(s)) => *request.community == *a.user.as_bytes() && s.level >= a.level,
            _ => false,
        };
        if !credentials {
            return Answered::WrongCommunity(r);
        }
        if !self.shares[r].take(now) {
            return Answered::OverRate(r);
        }
        // A v3 answer is sealed after: its header (engine, user, MAC, salt) fits in the
        // room left.
        let limit = match request.v3 {
            None => answer_limit(self.max_message_size, request_len),
            Some(_) => {
                answer_limit(self.max_message_size, request_len).saturating_sub(V3_HEADER_ROOM)
            }
        };
        let shown = self.presented_to(now, r);
        let ups_name = self.ups_names[self.recorder_ups[r]].as_bytes();
        let description = self.descriptions[r].as_bytes();
        let apc = self.apc.as_oid();
        let started = self.started;
        let value = |k: Object| -> Option<Value<'_>> {
            let flag = |b: Option<bool>, yes: i64, no: i64| b.map(|b| if b { yes } else { no });
            let int = |v: Option<i64>| v.map(Value::Integer);
            match k {
                Object::SysDescr => Some(Value::OctetString(description)),
                Object::SysObjectId => Some(Value::ObjectId(apc)),
                Object::SysUpTime => Some(Value::TimeTicks(now.ticks_since(started))),
                Object::SysName => Some(Value::OctetString(ups_name)),
                Object::IdentManufacturer => Some(Value::OctetString(b"trapgate")),
                Object::IdentModel => Some(Value::OctetString(b"virtual UPS")),
                Object::BatteryStatus => int(flag(shown.battery_low, 3, 2)),
                Object::SecondsOnBattery => int(shown.seconds_on_battery.map(i64::from)),
                Object::MinutesRemaining => int(shown.runtime.map(|s| i64::from(s / 60))),
                Object::ChargeRemaining => int(shown.charge.map(i64::from)),
                Object::OutputSource => int(flag(shown.on_battery, 5, 3)),
                Object::BasicBatteryStatus => int(flag(shown.battery_low, 3, 2)),
                Object::AdvBatteryCapacity => shown.charge.map(|c| Value::Gauge32(c.into())),
                Object::AdvRunTimeRemaining => shown
                    .runtime
                    .map(|s| Value::TimeTicks(s.saturating_mul(100))),
                Object::BasicOutputStatus => int(flag(shown.on_battery, 3, 2)),
            }
        };
        // The objects with a value now, in OID order: GetNext skips the unknown ones.
        let known: Vec<(Oid<'_>, Value<'_>)> = self
            .objects
            .iter()
            .filter_map(|(o, k)| value(*k).map(|v| (o.as_oid(), v)))
            .collect();
        let exact = |name: Oid<'_>| -> Value<'_> {
            match self
                .objects
                .iter()
                .position(|(o, _)| o.as_bytes() == name.as_bytes())
            {
                Some(i) => value(self.objects[i].1).unwrap_or(Value::NoSuchInstance),
                None => Value::NoSuchObject,
            }
        };
        let next = |name| next_after(&known, name);
        // What the answer would be without bindings, to size it binding by binding.
        let empty = Message::pdu(
            request.version,
            request.community,
            PduType::RESPONSE,
            req.request_id,
            &[],
        );
        let mut varbinds: Vec<VarBind<'_>> = Vec::with_capacity(req.varbinds.len().min(64));
        let mut size = 0usize;
        let mut fits = |vb: &VarBind<'_>| {
            let grown = size + encode::varbind_len(vb);
            let ok = encode::message_len(&empty, grown) <= limit;
            if ok {
                size = grown;
            }
            ok
        };
        let mut too_big = false;
        match req.kind {
            PduType::GET_REQUEST | PduType::GET_NEXT_REQUEST => {
                for vb in req.varbinds {
                    let answer = if req.kind == PduType::GET_REQUEST {
                        VarBind {
                            name: vb.name,
                            value: exact(vb.name),
                        }
                    } else {
                        next(vb.name)
                    };
                    if !fits(&answer) {
                        too_big = true;
                        break;
                    }
                    varbinds.push(answer);
                }
            }
            _ => {
                // GetBulk: error-status is non-repeaters, error-index max-repetitions.
                let non_repeaters = (req.error_status.max(0) as usize).min(req.varbinds.len());
                let repetitions = req.error_index.clamp(0, 64) as usize;
                let (once, repeated) = req.varbinds.split_at(non_repeaters);
                for vb in once {
                    let answer = next(vb.name);
                    if !fits(&answer) {
                        too_big = true;
                        break;
                    }
                    varbinds.push(answer);
                }
                let mut cursors: Vec<Oid<'_>> = repeated.iter().map(|v| v.name).collect();
                'rows: for _ in 0..repetitions {
                    if too_big || cursors.is_empty() {
                        break;
                    }
                    let mut all_done = true;
                    for c in cursors.iter_mut() {
                        let vb = next(*c);
                        if !fits(&vb) {
                            // Fewer repetitions: what fits, in order (RFC 3416 §4.2.3).
                            self.trimmed += 1;
                            break 'rows;
                        }
                        all_done &= vb.value == Value::EndOfMibView;
                        *c = vb.name;
                        varbinds.push(vb);
                    }
                    if all_done {
                        break;
                    }
                }
            }
        }
        if too_big {
            self.too_big += 1;
            // v2c: tooBig with no bindings; v1 (RFC 1157 §4.1.2): the request's own.
            let bindings: &[VarBind<'_>] = if request.version == Version::V1 {
                req.varbinds
            } else {
                &[]
            };
            let response = empty.with_error(1, 0);
            let response = Message {
                pdu: match response.pdu {
                    Pdu::Request(mut p) => {
                        p.varbinds = bindings;
                        Pdu::Request(p)
                    }
                    other => other,
                },
                ..response
            };
            if encode::encoded_len(&response) > limit {
                return Answered::Discarded(r);
            }
            encode::encode(&response, out);
            return Answered::Recorder(r);
        }
        // v1 has no exceptions: the first missing object is the error (noSuchName, 2).
        let v1_error = varbinds
            .iter()
            .position(|vb| {
                matches!(
                    vb.value,
                    Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView
                )
            })
            .filter(|_| request.version == Version::V1);
        let (status, index, varbinds) = match v1_error {
            // noSuchName, with the request's own bindings, as RFC 1157 says.
            Some(i) => (2, i as i32 + 1, req.varbinds.to_vec()),
            None => (0, 0, varbinds),
        };
        let response = Message::pdu(
            request.version,
            request.community,
            PduType::RESPONSE,
            req.request_id,
            &varbinds,
        )
        .with_error(status, index);
        if encode::encoded_len(&response) > limit {
            self.too_big += 1;
            return Answered::Discarded(r);
        }
        encode::encode(&response, out);
        Answered::Recorder(r)
    }
}

/// The first of `known` (in OID order) after `name`, or endOfMibView at `name`.
fn next_after<'a>(known: &[(Oid<'a>, Value<'a>)], name: Oid<'a>) -> VarBind<'a> {
    match known
        .iter()
        .find(|(o, _)| o.arcs().cmp(name.arcs()).is_gt())
    {
        Some(&(name, value)) => VarBind { name, value },
        None => VarBind {
            name,
            value: Value::EndOfMibView,
        },
    }
}

#[cfg(test)]
mod tests;
