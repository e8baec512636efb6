//! The shutdown policy: a pure state machine per UPS, driven by classified events, poll
//! answers and explicit time, that decides which recorder shuts down when, and why.
//!
//! It follows quinn-proto's contract: input goes in with the time as an argument
//! (`handle_notification(now, …)`, `handle_poll(now, …)`, `handle_timeout(now)`), the
//! next instant it needs to be woken at comes out of `poll_timeout()`, and decisions come
//! out of `poll_decision()`. It reads no clock and touches no socket, so a capture
//! replayed through it gives the same decisions every time.
//!
//! Per UPS: on mains → on battery (each tier's grace timer runs from the first
//! OnBattery) → tiers shut down as their grace ends, lower tiers first → everything
//! shuts down on LowBattery, ShutdownPending, UpsOff, or a polled charge or runtime
//! under the site's threshold (confirmed by a poll first when the policy says so). After
//! PowerRestored (or BatteryRestored), mains power must stay back for `SETTLE` before the
//! outage ends and what has not been sent is cancelled: power that flaps resumes the
//! same outage and sends nothing new. No recorder is told twice in one outage.
//!
//! It trusts its input: what reaches it was admitted by `crate::engine::trust` (the source and
//! community of a notification, the request a poll answer answers).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use crate::classify::Event;
use crate::engine::config::{Remap, Secs, Site, Unconfirmed, Vendor};
use crate::engine::id::{RecorderId, UpsId};
use crate::engine::record::AlertKind;
use crate::engine::trust::Who;
use crate::time::Timestamp;
use crate::wire::{Value, VarBind};

/// How long mains power must stay back before an outage counts as over.
pub const SETTLE: Secs = Secs(60);

fn after(t: Timestamp, s: Secs) -> Timestamp {
    t.plus_secs(s.0)
}

/// What a UPS said when polled (or was seen saying to a recorder that polled it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PollAnswer {
    /// Running on battery (upsOutputSource = battery(5), upsBasicOutputStatus = onBattery(3)).
    pub on_battery: Option<bool>,
    /// Battery low or depleted (upsBatteryStatus 3/4, upsBasicBatteryStatus 3).
    pub battery_low: Option<bool>,
    /// Estimated charge, percent.
    pub charge: Option<u8>,
    /// Estimated runtime.
    #[serde(rename = "runtime_s")]
    pub runtime: Option<Secs>,
}

/// How a polled object's value sets a field of a `PollAnswer`.
pub type Reading = fn(&mut PollAnswer, u64);

/// One object a poll asks for: its encoded OID, its name in its MIB, and how its value
/// reads.
#[derive(Clone, Copy, Debug)]
pub struct PolledObject {
    /// The encoded OID (the table's own constant: valid, a test decodes each).
    pub oid: &'static [u8],
    /// Its name, as the MIB has it.
    pub name: &'static str,
    /// How its value reads.
    pub read: Reading,
}

const fn object(oid: &'static [u8], name: &'static str, read: Reading) -> PolledObject {
    PolledObject { oid, name, read }
}

/// What a poll asks a UPS-MIB (RFC 1628) card for, and how each answer reads.
const UPS_MIB_POLL: [PolledObject; 4] = [
    object(
        &[0x2b, 6, 1, 2, 1, 0x21, 1, 4, 1, 0],
        "upsOutputSource.0",
        |a, n| a.on_battery = Some(n == 5),
    ),
    object(
        &[0x2b, 6, 1, 2, 1, 0x21, 1, 2, 1, 0],
        "upsBatteryStatus.0",
        |a, n| a.battery_low = Some(n == 3 || n == 4),
    ),
    object(
        &[0x2b, 6, 1, 2, 1, 0x21, 1, 2, 4, 0],
        "upsEstimatedChargeRemaining.0",
        |a, n| a.charge = Some(n.min(100) as u8),
    ),
    object(
        &[0x2b, 6, 1, 2, 1, 0x21, 1, 2, 3, 0],
        "upsEstimatedMinutesRemaining.0",
        |a, n| a.runtime = Some(Secs((n * 60) as u32)),
    ),
];

/// The same for an APC PowerNet card (the runtime in ticks).
const POWERNET_POLL: [PolledObject; 4] = [
    object(
        &[0x2b, 6, 1, 4, 1, 0x82, 0x3e, 1, 1, 1, 4, 1, 1, 0],
        "upsBasicOutputStatus.0",
        |a, n| a.on_battery = Some(n == 3),
    ),
    object(
        &[0x2b, 6, 1, 4, 1, 0x82, 0x3e, 1, 1, 1, 2, 1, 1, 0],
        "upsBasicBatteryStatus.0",
        |a, n| a.battery_low = Some(n == 3),
    ),
    object(
        &[0x2b, 6, 1, 4, 1, 0x82, 0x3e, 1, 1, 1, 2, 2, 1, 0],
        "upsAdvBatteryCapacity.0",
        |a, n| a.charge = Some(n.min(100) as u8),
    ),
    object(
        &[0x2b, 6, 1, 4, 1, 0x82, 0x3e, 1, 1, 1, 2, 2, 3, 0],
        "upsAdvBatteryRunTimeRemaining.0",
        |a, n| a.runtime = Some(Secs((n / 100) as u32)),
    ),
];

impl PollAnswer {
    /// The objects a poll of a UPS of `vendor` asks for: PowerNet for APC cards, RFC
    /// 1628 UPS-MIB for the others.
    pub fn polled(vendor: Vendor) -> &'static [PolledObject] {
        match vendor {
            Vendor::Apc => &POWERNET_POLL,
            _ => &UPS_MIB_POLL,
        }
    }

    /// The polled object (UPS-MIB's or PowerNet's) of an encoded OID.
    pub fn object(oid: &[u8]) -> Option<&'static PolledObject> {
        UPS_MIB_POLL
            .iter()
            .chain(&POWERNET_POLL)
            .find(|o| o.oid == oid)
    }

    /// Reads the UPS-MIB and PowerNet objects a poll asks for out of a response's varbinds.
    pub fn from_varbinds(varbinds: &[VarBind<'_>]) -> PollAnswer {
        let mut a = PollAnswer::default();
        for vb in varbinds {
            let n = match vb.value {
                Value::Integer(i) if i >= 0 => i as u64,
                v => match v.as_u64() {
                    Some(n) => n,
                    None => continue,
                },
            };
            let name = vb.name.as_bytes();
            if let Some(o) = PollAnswer::object(name) {
                (o.read)(&mut a, n);
            }
        }
        a
    }

    /// True when the answer says nothing the policy reads.
    pub fn is_empty(&self) -> bool {
        *self == PollAnswer::default()
    }
}

/// What caused a decision: the event and the rule (trap name) that produced it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cause {
    /// The event.
    pub event: Option<Event>,
    /// The trap rule, poll or timer behind it.
    pub rule: Arc<str>,
}

/// A decision, as data: what the drivers act on and the journal records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Tell a recorder to shut down (it must be down by `deadline`); its virtual UPS
    /// presents it 0 % from then on.
    ShutdownRecorder {
        /// The UPS (index in the site).
        ups: UpsId,
        /// The recorder (index in the site).
        recorder: RecorderId,
        /// Its tier.
        tier: u8,
        /// When it must have finished shutting down.
        deadline: Timestamp,
        /// Why, in a sentence.
        reason: Arc<str>,
        /// The event behind it.
        cause: Cause,
    },
    /// The outage is over: the tiers whose grace had not ended are not shut down.
    CancelShutdown {
        /// The UPS.
        ups: UpsId,
        /// The tiers that were still counting down.
        tiers: Vec<u8>,
        /// Why.
        reason: String,
    },
    /// What the virtual UPS tells a recorder its charge is (None: the real value).
    PresentCharge {
        /// The recorder.
        recorder: RecorderId,
        /// The charge presented, or None for the UPS's own.
        percent: Option<u8>,
    },
    /// Poll a UPS, to confirm a shutdown trap.
    Poll {
        /// The UPS.
        ups: UpsId,
        /// Why.
        reason: String,
        /// The event to confirm.
        cause: Cause,
    },
    /// Mains power is back on a UPS in an outage (the outage ends if it stays back).
    PowerBack {
        /// The UPS.
        ups: UpsId,
    },
    /// A recorder acknowledged its shutdown order.
    Acknowledged {
        /// The recorder.
        recorder: RecorderId,
    },
    /// Something a person must know.
    Alert {
        /// The UPS concerned, if one.
        ups: Option<UpsId>,
        /// What kind.
        kind: AlertKind,
        /// The sentence.
        text: String,
    },
}

/// A shutdown trap waiting for its confirming poll.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Confirming {
    /// When the trap came.
    at: Timestamp,
    /// Until when the UPS may answer: `poll_timeout` after the poll left (None: it has
    /// not left yet, and no answer could have come).
    deadline: Option<Timestamp>,
    cause: Cause,
    /// The UPS answered, but with none of the values that confirm or deny (an error).
    #[serde(default)]
    answered_empty: bool,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct UpsState {
    /// The running outage: when the UPS went on battery (None: on mains).
    since: Option<Timestamp>,
    /// Mains power came back at this time; the outage ends if it stays back.
    settling: Option<Timestamp>,
    /// Outages seen, the current one included.
    outage: u32,
    /// Tiers of this UPS's recorders whose grace has not ended in this outage.
    tiers_due: Vec<(u8, Timestamp)>,
    /// A shutdown trap waiting for the confirming poll.
    confirming: Option<Confirming>,
    /// Everything on this UPS has been told to shut down in this outage.
    all_down: bool,
}

/// What a checkpoint keeps of the policy: each UPS's outage, and who was told and who
/// acknowledged in which outage.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeciderState {
    ups: Vec<UpsState>,
    told: Vec<Option<(UpsId, u32)>>,
    acknowledged: Vec<bool>,
    /// Which feeds no longer carry each recorder (absent in a checkpoint of before).
    #[serde(default)]
    cannot_carry: Vec<u32>,
}

/// The policy of a whole site.
#[derive(Debug)]
pub struct Decider {
    site: Site,
    ups: Vec<UpsState>,
    /// UPS index by the address its traps come from.
    ups_by_address: HashMap<IpAddr, UpsId>,
    /// Each UPS's recorders, highest tier number first (the order they are told in).
    recorders_of: Vec<Vec<RecorderId>>,
    /// Per recorder fed by several UPSes: which of its feeds (bit i: `feeds[i]`) can no
    /// longer carry it in their running outage (its tier's grace over, low battery,
    /// shutdown pending).
    cannot_carry: Vec<u32>,
    /// The outage in which each recorder was told to shut down.
    told: Vec<Option<(UpsId, u32)>>,
    /// `poll_timeout`'s answer, until an input changes it (a site has hundreds of
    /// UPSes, and the event loop asks at every wake-up).
    due: std::cell::Cell<Option<Option<Timestamp>>>,
    /// Whether each recorder acknowledged the order of the outage it was told in.
    acknowledged: Vec<bool>,
    /// What a tier's shutdown reads of each recorder, side by side: a fan-out to
    /// thousands reads this, not their settings (a gateway idle for hours meets its
    /// trap with those out of the caches).
    hot: Vec<Hot>,
    decisions: VecDeque<Decision>,
    /// Bumped by every change of state: a driver journals an input only if it moved
    /// something, so repeats and floods of admitted traffic do not grow the journal.
    revision: u64,
}

/// A recorder as a tier's shutdown reads it.
#[derive(Clone, Copy, Debug)]
struct Hot {
    tier: u8,
    /// Fed by several UPSes (its `feeds` are read then).
    several_feeds: bool,
    shutdown_time: Secs,
}

impl Decider {
    /// A decider for `site`; alerts about the site's own settings come out first.
    pub fn new(site: Site) -> Decider {
        let mut recorders_of = vec![Vec::new(); site.upses.len()];
        for (r, rec) in RecorderId::enumerate(&site.recorders) {
            // A recorder fed by several UPSes is followed by each.
            for &u in rec.feeds.iter().chain(core::iter::once(&rec.ups)) {
                // In order of `r`: a repeat can only be the last one pushed.
                if recorders_of[u].last() != Some(&r) {
                    recorders_of[u].push(r);
                }
            }
        }
        for list in &mut recorders_of {
            list.sort_by_key(|&r| (core::cmp::Reverse(site.recorders[r].tier), r));
        }
        let mut d = Decider {
            ups: vec![UpsState::default(); site.upses.len()],
            ups_by_address: UpsId::enumerate(&site.upses)
                .map(|(i, u)| (u.address, i))
                .collect(),
            recorders_of,
            told: vec![None; site.recorders.len()],
            cannot_carry: vec![0; site.recorders.len()],
            due: std::cell::Cell::new(None),
            acknowledged: vec![false; site.recorders.len()],
            hot: site
                .recorders
                .iter()
                .map(|r| Hot {
                    tier: r.tier,
                    several_feeds: r.feeds.len() > 1,
                    shutdown_time: r.shutdown_time,
                })
                .collect(),
            // A tier's decisions (one a recorder) fit from the start.
            decisions: crate::engine::room::touched_deque(crate::engine::room::fan_out_room(
                site.recorders.len(),
                1,
            )),
            revision: 0,
            site,
        };
        for text in d.site.warnings() {
            d.push(Decision::Alert {
                ups: None,
                kind: AlertKind::Site,
                text,
            });
        }
        d
    }

    fn push(&mut self, d: Decision) {
        self.revision += 1;
        self.decisions.push_back(d);
    }

    /// A number that changes whenever the policy's state does.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The site it decides for.
    pub fn site(&self) -> &Site {
        &self.site
    }

    /// Why `site` cannot replace the running one without dropping an outage: a UPS in an
    /// outage (on battery, settling, or confirming a shutdown trap) that the new site
    /// removes, renames or moves to another address. None: it can.
    pub fn reload_refusal(&self, site: &Site) -> Option<String> {
        let next: HashMap<&str, IpAddr> = site
            .upses
            .iter()
            .map(|u| (u.name.as_str(), u.address))
            .collect();
        let busy: Vec<String> = self
            .site
            .upses
            .iter()
            .zip(&self.ups)
            .filter(|(_, s)| s.since.is_some() || s.confirming.is_some())
            .filter_map(|(u, _)| match next.get(u.name.as_str()) {
                Some(a) if *a == u.address => None,
                Some(a) => Some(format!(
                    "UPS `{}` is in an outage and the new file moves it from {} to {a}",
                    u.name, u.address
                )),
                None => Some(format!(
                    "UPS `{}` is in an outage and the new file removes or renames it",
                    u.name
                )),
            })
            .collect();
        (!busy.is_empty()).then(|| {
            format!(
                "{}: its outage would be dropped; reload once it is over",
                busy.join("; ")
            )
        })
    }

    /// Takes a new site (a reloaded site file) without losing what is under way: a UPS
    /// that stays (same name and address) keeps its outage, timers and pending confirm;
    /// a recorder that stays (same name, on a UPS that stays) keeps having been told.
    /// Alerts about the new site's own settings come out as at start. (A site that would
    /// drop an outage is refused first: `reload_refusal`.)
    pub fn reload(&mut self, site: Site) {
        let remap = Remap::between(&self.site, &site);
        let _ = self.take_over(Decider::new(site), &remap);
    }

    /// Becomes `next` (a decider made for the new site, off the decision thread),
    /// carrying over what `remap` says stays: index copies, nothing rebuilt.
    pub fn take_over(&mut self, mut next: Decider, remap: &Remap) -> Decider {
        self.due.set(None);
        for (u, old) in remap.kept_upses() {
            next.ups[u] = self.ups[old].clone();
            // Tiers the new site does not have any more are not waited for.
            let tiers: Vec<u8> = next.recorders_of[u]
                .iter()
                .map(|&r| next.site.recorders[r].tier)
                .collect();
            next.ups[u]
                .tiers_due
                .retain(|(t, _)| tiers.contains(t) && next.site.policy.grace.contains_key(t));
        }
        // The UPS that told a recorder, by its id in the new site.
        let mut ups_now: Vec<Option<UpsId>> = vec![None; self.ups.len()];
        for (new, old) in remap.kept_upses() {
            ups_now[old] = Some(new);
        }
        for (r, o) in remap.kept_recorders() {
            if let Some((v, outage)) = self.told[o]
                && let Some(v) = ups_now[v]
            {
                next.told[r] = Some((v, outage));
                next.acknowledged[r] = self.acknowledged[o];
            }
            // The same feeds, in the same order: what they can carry stays.
            let same_feeds = self.site.recorders[o]
                .feeds
                .iter()
                .map(|&f| ups_now[f])
                .eq(next.site.recorders[r].feeds.iter().map(|&f| Some(f)));
            if same_feeds {
                next.cannot_carry[r] = self.cannot_carry[o];
            }
        }
        next.revision = self.revision + 1;
        next.due.set(None);
        let mut pending = std::mem::take(&mut self.decisions);
        pending.append(&mut next.decisions);
        next.decisions = pending;
        std::mem::replace(self, next)
    }

    /// Makes "recorder `r` was told in the outage under way" hold (a journal says so,
    /// whatever its inputs still show): its UPS is in an outage from `now` if it was not.
    /// True if it was not told before.
    pub fn mark_told(&mut self, now: Timestamp, r: RecorderId) -> bool {
        self.due.set(None);
        let Some(u) = self.site.recorders.get(r.index()).map(|rec| rec.ups) else {
            return false;
        };
        let state = &mut self.ups[u];
        if state.since.is_none() {
            state.since = Some(now);
            state.outage += 1;
        }
        let outage = state.outage;
        let before = self.told[r];
        self.told[r] = Some((u, outage));
        self.revision += 1;
        before != Some((u, outage))
    }

    /// Makes "recorder `r` acknowledged" hold (a journal says so).
    pub fn mark_acknowledged(&mut self, r: RecorderId) {
        self.due.set(None);
        if let Some(a) = self.acknowledged.get_mut(r.index()) {
            *a = true;
        }
    }

    /// The start of the oldest outage under way (a journal keeps every record since).
    pub fn oldest_outage(&self) -> Option<Timestamp> {
        self.ups
            .iter()
            .flat_map(|u| {
                u.since
                    .into_iter()
                    .chain(u.confirming.as_ref().map(|c| c.at))
            })
            .min()
    }

    /// The next decision, if any.
    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.decisions.pop_front()
    }

    /// The earliest time `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if let Some(due) = self.due.get() {
            return due;
        }
        let mut due: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| due = Some(due.map_or(t, |d| d.min(t)));
        for u in &self.ups {
            if let Some(t) = u.confirming.as_ref().and_then(|c| c.deadline) {
                consider(t);
            }
            match u.settling {
                // Tiers wait while mains power settles.
                Some(t) => consider(after(t, SETTLE)),
                None => u.tiers_due.iter().for_each(|&(_, t)| consider(t)),
            }
        }
        self.due.set(Some(due));
        due
    }

    /// What a checkpoint keeps of the policy.
    pub fn state(&self) -> DeciderState {
        DeciderState {
            ups: self.ups.clone(),
            told: self.told.clone(),
            acknowledged: self.acknowledged.clone(),
            cannot_carry: self.cannot_carry.clone(),
        }
    }

    /// Takes a checkpoint's state back (for the same site: same lengths, or nothing).
    pub fn set_state(&mut self, s: DeciderState) {
        self.due.set(None);
        if s.ups.len() == self.ups.len()
            && s.told.len() == self.told.len()
            && s.acknowledged.len() == self.acknowledged.len()
        {
            self.ups = s.ups;
            self.told = s.told;
            self.acknowledged = s.acknowledged;
            if s.cannot_carry.len() == self.cannot_carry.len() {
                self.cannot_carry = s.cannot_carry;
            }
            self.revision += 1;
        }
    }

    /// Whether UPS `u` is on battery as the policy knows it (its traps and polls), and
    /// power not back yet.
    pub fn is_on_battery(&self, u: UpsId) -> bool {
        self.ups
            .get(u.index())
            .is_some_and(|s| s.since.is_some() && s.settling.is_none())
    }

    /// Since when UPS `u` is on battery as the policy knows it (its first trap or poll
    /// that said so), power not back yet.
    pub fn on_battery_since(&self, u: UpsId) -> Option<Timestamp> {
        self.ups
            .get(u.index())
            .filter(|s| s.settling.is_none())
            .and_then(|s| s.since)
    }

    /// For UPS `u` whose mains power is back and settling (`SETTLE`): since when its
    /// outage ran, and when power came back. The outage ends, and the tiers not shed
    /// are not, if power holds until `back + SETTLE`.
    pub fn settling(&self, u: UpsId) -> Option<(Timestamp, Timestamp)> {
        let s = self.ups.get(u.index())?;
        Some((s.since?, s.settling?))
    }

    /// The UPS whose traps come from `source`, if one.
    pub fn ups_at(&self, source: IpAddr) -> Option<UpsId> {
        self.ups_by_address.get(&source).copied()
    }

    /// An admitted notification from `who` (see `crate::engine::trust`), received at `now`.
    pub fn handle_notification(&mut self, now: Timestamp, who: Who, event: Event, rule: &str) {
        self.due.set(None);
        match who {
            Who::Recorder(r) if event == Event::RecorderAck => self.handle_ack(now, r),
            Who::Ups(u) => self.handle_ups_event(now, u, event, rule),
            Who::Recorder(_) => {}
        }
    }

    /// Recorder `r` acknowledged (its ack trap, or its command's success): said once an
    /// outage, and only if it was told.
    pub fn handle_ack(&mut self, _now: Timestamp, r: RecorderId) {
        self.due.set(None);
        if self.told.get(r.index()).is_some_and(Option::is_some) && !self.acknowledged[r] {
            self.acknowledged[r] = true;
            self.push(Decision::Acknowledged { recorder: r });
        }
    }

    /// An event of UPS `u` (its trap, from its address with its community).
    pub fn handle_ups_event(&mut self, now: Timestamp, u: UpsId, event: Event, rule: &str) {
        self.due.set(None);
        // Made only when kept: a repeated trap allocates nothing.
        let cause = || Cause {
            event: Some(event),
            rule: rule.into(),
        };
        match event {
            Event::OnBattery => self.on_battery(now, u, rule),
            // Not an outage yet: only once confirmed (or trusted) does it start one.
            Event::LowBattery | Event::ShutdownPending | Event::UpsOff => {
                self.shutdown_trap(now, u, cause)
            }
            // Out of low battery: the UPS is charging, mains power is back.
            Event::PowerRestored | Event::BatteryRestored => self.mains_back(now, u),
            Event::CommunicationLost => self.alert(
                Some(u),
                AlertKind::CommunicationLost,
                format!(
                    "UPS `{}`: its card lost contact with the UPS ({rule})",
                    self.site.upses[u].name
                ),
            ),
            Event::CommunicationRestored => self.alert(
                Some(u),
                AlertKind::CommunicationRestored,
                format!(
                    "UPS `{}`: its card talks to the UPS again ({rule})",
                    self.site.upses[u].name
                ),
            ),
            // An outlet group's report is the power machine's (the station gives it there).
            Event::OutletOff
            | Event::OutletOn
            | Event::Informational
            | Event::Unknown
            | Event::RecorderAck => {}
        }
    }

    /// The poll of UPS `u` left at `now`: a shutdown trap waiting for it has
    /// `poll_timeout` from now for the UPS to answer.
    pub fn handle_poll_sent(&mut self, now: Timestamp, u: UpsId) {
        let timeout = self.site.policy.poll_timeout;
        if let Some(c) = self
            .ups
            .get_mut(u.index())
            .and_then(|s| s.confirming.as_mut())
            && c.deadline.is_none()
        {
            // Only this moves a deadline (polls leave every few seconds: the cache stays).
            self.due.set(None);
            c.deadline = Some(after(now, timeout));
            self.revision += 1;
        }
    }

    /// A whole poll of UPS `u` went unanswered; `sent`: whether it ever left. A
    /// confirmation waiting for a poll that could not be sent ends here (the deadline
    /// ends one that left).
    pub fn handle_poll_unanswered(&mut self, now: Timestamp, u: UpsId, sent: bool) {
        self.due.set(None);
        if sent
            || self.ups[u]
                .confirming
                .as_ref()
                .is_none_or(|c| c.deadline.is_some())
        {
            return;
        }
        let c = self.ups[u].confirming.take().expect("checked just above");
        self.unconfirmed(now, u, c.cause, "the poll could not be sent");
    }

    fn unconfirmed(&mut self, now: Timestamp, u: UpsId, c: Cause, why: &str) {
        match self.site.policy.when_unconfirmed {
            Unconfirmed::Shutdown => {
                let why = format!("{}, not confirmed: {why}", c.rule);
                self.shutdown_all(now, u, &why, c);
            }
            Unconfirmed::Ignore => self.alert(
                Some(u),
                AlertKind::NotConfirmed,
                format!("{} ignored: {why}", c.rule),
            ),
        }
    }

    /// A poll answer from UPS `u` (to trapgate's own poll, or seen going to a recorder).
    pub fn handle_poll(&mut self, now: Timestamp, u: UpsId, answer: PollAnswer) {
        self.due.set(None);
        let (charge_min, runtime_min) = (
            self.site.policy.shutdown_below_charge,
            self.site.policy.shutdown_below_runtime,
        );
        // Thresholds count only on battery: after mains power returns the battery is low
        // while it recharges, and that shuts nothing down.
        let on_battery = match answer.on_battery {
            Some(b) => b,
            None => self.ups[u].since.is_some() && self.ups[u].settling.is_none(),
        };
        let low_charge = answer.charge.filter(|c| on_battery && *c < charge_min);
        let low_runtime = answer.runtime.filter(|r| on_battery && *r < runtime_min);
        let cause = |rule: String| Cause {
            event: None,
            rule: rule.into(),
        };
        if answer.on_battery == Some(true) {
            // Starts the outage, or resumes it if mains power had seemed back.
            self.on_battery(now, u, "poll: on battery");
        }
        if let Some(c) = low_charge {
            let why = format!("poll: charge {c}% below {charge_min}%");
            if self.ups[u].confirming.take().is_some() {
                self.revision += 1;
            }
            self.shutdown_all(now, u, &why, cause(why.clone()));
            return;
        }
        if let Some(r) = low_runtime {
            let why = format!("poll: runtime {} s below {} s", r.0, runtime_min.0);
            if self.ups[u].confirming.take().is_some() {
                self.revision += 1;
            }
            self.shutdown_all(now, u, &why, cause(why.clone()));
            return;
        }
        if let Some(confirming) = self.ups[u].confirming.take() {
            let c = confirming.cause.clone();
            if answer.on_battery == Some(true) || answer.battery_low == Some(true) {
                let why = format!("{} confirmed by poll", c.rule);
                self.shutdown_all(now, u, &why, c);
            } else if answer.is_empty() {
                // Nothing the policy reads (an error): keep waiting for a real answer.
                self.ups[u].confirming = Some(Confirming {
                    answered_empty: true,
                    ..confirming
                });
            } else {
                self.alert(
                    Some(u),
                    AlertKind::NotConfirmed,
                    format!("{} not confirmed: the UPS reports mains power and a normal battery; nothing shut down", c.rule),
                );
            }
        }
        if answer.on_battery == Some(false) {
            // The UPS says mains power is back, whatever traps were missed.
            self.mains_back(now, u);
        }
    }

    /// The poller's word on UPS `u`: it left a whole poll unanswered (`silent`), or
    /// answers again. Said once each way; a person must know, nothing shuts down for it.
    pub fn handle_ups_silent(&mut self, u: UpsId, silent: bool) {
        self.due.set(None);
        let name = &self.site.upses[u].name;
        let (kind, text) = if silent {
            (
                AlertKind::UpsNotAnswering,
                format!("UPS `{name}` does not answer polls: its values are not fresh"),
            )
        } else {
            (
                AlertKind::UpsAnswering,
                format!("UPS `{name}` answers polls again"),
            )
        };
        self.alert(Some(u), kind, text);
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.due.set(None);
        for u in UpsId::all(self.ups.len()) {
            if let Some(c) = &self.ups[u].confirming
                && c.deadline.is_some_and(|d| d <= now)
            {
                let c = self.ups[u].confirming.take().expect("checked just above");
                let why = if c.answered_empty {
                    "the UPS answered the poll with an error, without the values that confirm it"
                } else {
                    "the UPS did not answer the poll"
                };
                self.unconfirmed(now, u, c.cause, why);
            }
            if let Some(back) = self.ups[u].settling
                && after(back, SETTLE) <= now
            {
                self.end_outage(u);
            }
            if self.ups[u].settling.is_none() {
                let due: Vec<(u8, Timestamp)> = self.ups[u]
                    .tiers_due
                    .iter()
                    .copied()
                    .filter(|(_, t)| *t <= now)
                    .collect();
                self.ups[u].tiers_due.retain(|(_, t)| *t > now);
                for (tier, _) in due {
                    let grace = self.site.policy.grace[&tier];
                    let why = format!(
                        "on battery for {} s: tier {tier}'s grace time has ended",
                        grace.0
                    );
                    let cause = Cause {
                        event: Some(Event::OnBattery),
                        rule: format!("grace tier {tier}").into(),
                    };
                    self.shutdown_tier(now, u, Some(tier), &why, &cause);
                }
            }
        }
    }

    fn alert(&mut self, ups: Option<UpsId>, kind: AlertKind, text: String) {
        self.push(Decision::Alert { ups, kind, text });
    }

    fn on_battery(&mut self, now: Timestamp, u: UpsId, rule: &str) {
        let state = &mut self.ups[u];
        if state.settling.take().is_some() {
            // Mains power came back and went again: the same outage goes on, and the
            // recorders told in it see 0 % again.
            self.revision += 1;
            self.present_to_told(u, Some(0));
            return;
        }
        if state.since.is_some() {
            return;
        }
        state.since = Some(now);
        state.outage += 1;
        state.all_down = false;
        let mut tiers: Vec<u8> = self.recorders_of[u]
            .iter()
            .map(|&r| self.site.recorders[r].tier)
            .collect();
        tiers.sort_unstable();
        tiers.dedup();
        state.tiers_due = tiers
            .iter()
            .map(|t| (*t, after(now, self.site.policy.grace[t])))
            .collect();
        let plan: Vec<String> = tiers
            .iter()
            .rev()
            .map(|t| format!("tier {t} in {} s", self.site.policy.grace[t].0))
            .collect();
        let name = &self.site.upses[u].name;
        let plan = if plan.is_empty() {
            "it feeds no recorder of the site: nothing to shut down".to_string()
        } else {
            plan.join(", ")
        };
        self.alert(
            Some(u),
            AlertKind::OnBattery,
            format!("UPS `{name}` on battery ({rule}): {plan}"),
        );
    }

    fn shutdown_trap(&mut self, now: Timestamp, u: UpsId, cause: impl FnOnce() -> Cause) {
        if self.ups[u].all_down || self.ups[u].confirming.is_some() {
            return;
        }
        let cause = cause();
        if self.site.policy.confirm_by_poll {
            let reason = format!("confirm {} before shutting down", cause.rule);
            self.ups[u].confirming = Some(Confirming {
                at: now,
                deadline: None,
                answered_empty: false,
                cause: cause.clone(),
            });
            self.push(Decision::Poll {
                ups: u,
                reason,
                cause,
            });
        } else {
            let why = cause.rule.clone();
            self.shutdown_all(now, u, &why, cause);
        }
    }

    fn shutdown_all(&mut self, now: Timestamp, u: UpsId, why: &str, cause: Cause) {
        if self.ups[u].all_down {
            return;
        }
        if self.ups[u].since.is_none() {
            // A low battery on mains power (a failed battery, a poll): an outage all the same.
            self.ups[u].since = Some(now);
            self.ups[u].outage += 1;
            let name = &self.site.upses[u].name;
            self.alert(
                Some(u),
                AlertKind::Outage,
                format!(
                    "UPS `{name}`: the outage starts here, with no OnBattery before it ({why})"
                ),
            );
        }
        self.ups[u].all_down = true;
        self.ups[u].tiers_due.clear();
        self.shutdown_tier(now, u, None, why, &cause);
    }

    /// Tells every recorder of UPS `u` (of `tier`, or all, highest tier first) that has
    /// not been told in this outage.
    fn shutdown_tier(
        &mut self,
        now: Timestamp,
        u: UpsId,
        tier: Option<u8>,
        why: &str,
        cause: &Cause,
    ) {
        let outage = self.ups[u].outage;
        // One sentence for the whole tier, shared by its recorders' decisions.
        let why: Arc<str> = why.into();
        // Already in order: lower priority (higher tier number) first.
        for i in 0..self.recorders_of[u].len() {
            let r = self.recorders_of[u][i];
            let hot = self.hot[r];
            if tier.is_some_and(|t| hot.tier != t) || self.told_now(r) {
                continue;
            }
            // Fed by several UPSes: down only when fewer than it needs can carry it.
            let mut reason = Arc::clone(&why);
            if hot.several_feeds {
                let rec = &self.site.recorders[r];
                if let Some(k) = rec.feeds.iter().position(|&f| f == u) {
                    self.cannot_carry[r] |= 1 << k;
                }
                let gone = self.cannot_carry[r].count_ones() as usize;
                let carrying = rec.feeds.len() - gone;
                let names: Vec<String> = rec
                    .feeds
                    .iter()
                    .enumerate()
                    .map(|(k, &f)| {
                        let can = self.cannot_carry[r] & (1 << k) == 0;
                        format!(
                            "{} {}",
                            self.site.upses[f].name,
                            if can { "can carry it" } else { "cannot" }
                        )
                    })
                    .collect();
                if carrying >= usize::from(rec.needs) {
                    let text = format!(
                        "recorder `{}` stays up: {why}, but {carrying} of its {} UPS still carry it ({}; it needs {})",
                        rec.name,
                        rec.feeds.len(),
                        names.join(", "),
                        rec.needs
                    );
                    self.alert(Some(u), AlertKind::CarriedByAnotherFeed, text);
                    continue;
                }
                reason = format!(
                    "{why}; only {carrying} of its {} UPS can carry it, it needs {} ({})",
                    rec.feeds.len(),
                    rec.needs,
                    names.join(", ")
                )
                .into();
            }
            let (tier, deadline) = (hot.tier, after(now, hot.shutdown_time));
            self.told[r] = Some((u, outage));
            self.acknowledged[r] = false;
            // Its virtual UPS presents it 0 % from now on: the shutdown says so (one
            // decision, not two).
            self.push(Decision::ShutdownRecorder {
                ups: u,
                recorder: r,
                tier,
                deadline,
                reason,
                cause: cause.clone(),
            });
        }
    }

    fn mains_back(&mut self, now: Timestamp, u: UpsId) {
        let state = &mut self.ups[u];
        if state.since.is_some() && state.settling.is_none() {
            state.settling = Some(now);
            self.push(Decision::PowerBack { ups: u });
            // On mains again: the recorders told in the outage see the UPS as it is now
            // (a recorder that boots must not read "on battery, 0 %" and shut down again).
            self.present_to_told(u, None);
        }
        let state = &mut self.ups[u];
        if let Some(c) = state.confirming.take() {
            self.alert(
                Some(u),
                AlertKind::NotConfirmed,
                format!("{} dropped: mains power is back", c.cause.rule),
            );
        }
    }

    /// Whether recorder `r` was told in the running outage of the UPS that told it.
    fn told_now(&self, r: RecorderId) -> bool {
        self.told[r].is_some_and(|(v, o)| self.ups[v].outage == o && self.ups[v].since.is_some())
    }

    fn end_outage(&mut self, u: UpsId) {
        // Its power is back for good: it carries its recorders again.
        for i in 0..self.recorders_of[u].len() {
            let r = self.recorders_of[u][i];
            if let Some(k) = self.site.recorders[r].feeds.iter().position(|&f| f == u) {
                self.cannot_carry[r] &= !(1 << k);
            }
        }
        let state = &mut self.ups[u];
        state.settling = None;
        state.since = None;
        state.all_down = false;
        let tiers: Vec<u8> = state.tiers_due.drain(..).map(|(t, _)| t).collect();
        self.revision += 1;
        if !tiers.is_empty() {
            self.push(Decision::CancelShutdown {
                ups: u,
                tiers,
                reason: format!("mains power back for {} s", SETTLE.0),
            });
        }
    }

    /// Presents `percent` to every recorder of UPS `u` told in its running outage.
    fn present_to_told(&mut self, u: UpsId, percent: Option<u8>) {
        let outage = self.ups[u].outage;
        for i in 0..self.recorders_of[u].len() {
            let r = self.recorders_of[u][i];
            if self.told[r] == Some((u, outage)) {
                self.push(Decision::PresentCharge {
                    recorder: r,
                    percent,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
