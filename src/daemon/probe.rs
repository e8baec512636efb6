//! `trapgate check-config --probe SITE`: every UPS card and PDU of the site read with
//! GET and GETNEXT only (never a SET), with its read community or v3 user, and held
//! against the site file. What the card is set to decides what happens at the outage;
//! a card reset to its factory settings, or a trap receiver table without the gateway,
//! would otherwise stay unnoticed until then.
//!
//! Read (each object by its MIB name, from `engine::power::tables`):
//! - APC: `upsAdvConfigShutoffDelay` against the site's `outlet_off_delay`,
//!   `upsAdvConfigLowBatteryRunTime` against the slowest shutdown of the recorders it
//!   feeds (the card's low battery is the last warning: the recorders must be down
//!   within it), `upsAdvConfigReturnDelay` and `…MinReturnCapacity` shown; each outlet
//!   group a recorder is on: its name, and its power-off delay against the shutdown
//!   times of the recorders on it (the group goes off that long after the UPS starts
//!   its own shutdown); the trap receiver table (`mconfigTrapReceiverTable`): is the
//!   gateway's address an enabled receiver, and of which traps.
//! - RFC 1628 (and Eaton, MGE, whose cards have it too): `upsConfigLowBattTime`
//!   (minutes) against the slowest shutdown, `upsAutoRestart` against `restart`; an
//!   Eaton receptacle's `xupsRecepAutoOffDelay` against the shutdown times on it.
//! - CyberPower: the shutoff delay, low-battery run time and return delay, as APC's.
//! - A PDU: the state of each outlet a recorder is on (it answers, with that access).
//!
//! TimeTicks are hundredths of a second (RFC 2578), whatever the MIB's prose says. The
//! findings are lines; a disagreement, or a card that does not answer, makes the probe
//! exit non-zero.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bumpalo::Bump;

use crate::daemon::random::OsRandom;
use crate::engine::config::{Plug, Restart, Site, Ups, Vendor, Write};
use crate::engine::id::{PduId, UpsId};
use crate::engine::poller::RequestIds;
use crate::engine::power::card::{Card, Credential, Opened};
use crate::engine::power::{Object, tables::*};
use crate::time::Timestamp;
use crate::wire::{OidBuf, PduType, Value, VarBind};

/// How long one request waits for its answer; each is sent three times at most.
pub const WAIT: Duration = Duration::from_secs(2);
const TRIES: u32 = 3;
/// Trap receiver rows read at most.
const RECEIVERS_MAX: usize = 64;

/// One line of the probe's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The UPS or PDU.
    pub card: String,
    /// What was found, naming the object by its MIB name.
    pub text: String,
    /// Whether the card agrees with the site.
    pub verdict: Verdict,
    /// A UPS whose site leaves `outlet_off_delay` out: the card's shutoff delay (s),
    /// which `run` takes.
    pub off_delay: Option<u32>,
}

/// What a finding says of the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// As the site says, or only shown.
    Agrees,
    /// A setting the site disagrees with: the probe fails, `run` raises an alert.
    Disagrees,
    /// The card could not be read (no answer, a wrong credential): the probe fails;
    /// `run`'s poller says it already.
    Unanswered,
}

impl Finding {
    /// Whether it makes the probe fail.
    pub fn fails(&self) -> bool {
        self.verdict != Verdict::Agrees
    }
}

/// A value read from a card, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got {
    /// INTEGER, Gauge32, Counter32.
    Int(i64),
    /// TimeTicks, in hundredths of a second.
    Ticks(u32),
    /// An OCTET STRING, as text.
    Text(String),
    /// An IpAddress.
    Ip(Ipv4Addr),
    /// The card has no such object (v1 noSuchName, v2 noSuchObject/Instance).
    Missing,
    /// Anything else, as text.
    Other(String),
}

impl Got {
    fn of(v: &Value<'_>) -> Got {
        match *v {
            Value::Integer(i) => Got::Int(i),
            Value::Gauge32(g) | Value::Counter32(g) => Got::Int(i64::from(g)),
            Value::TimeTicks(t) => Got::Ticks(t),
            Value::OctetString(s) => Got::Text(String::from_utf8_lossy(s).into_owned()),
            Value::IpAddress(a) => Got::Ip(Ipv4Addr::from(a)),
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView | Value::Null => {
                Got::Missing
            }
            ref other => Got::Other(format!("{other:?}")),
        }
    }

    /// In seconds, as `object` counts: TimeTicks are hundredths; an integer is in the
    /// object's units.
    fn seconds(&self, object: &Object) -> Option<i64> {
        match self {
            Got::Ticks(t) => object.seconds(&Value::TimeTicks(*t)),
            Got::Int(i) => object.seconds(&Value::Integer(*i)),
            _ => None,
        }
    }
}

/// One card being asked: its socket (connected to the agent), its client, where the
/// gateway's requests come from as the card sees it.
struct Asking {
    sock: UdpSocket,
    card: Card,
    ids: OsRandom,
    wire: Vec<u8>,
    scratch: Vec<u8>,
    started: Instant,
}

impl Asking {
    fn new(to: SocketAddr, credential: Credential) -> std::io::Result<Asking> {
        let any: IpAddr = if to.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let sock = UdpSocket::bind((any, 0))?;
        sock.connect(to)?;
        Ok(Asking {
            sock,
            card: Card::new(to, credential),
            ids: OsRandom,
            wire: Vec::new(),
            scratch: Vec::new(),
            started: Instant::now(),
        })
    }

    /// A card at `to` asked with its read community or v3 user; None (said) if it
    /// cannot be.
    fn of(
        site: &Site,
        to: SocketAddr,
        community: &str,
        v3: Option<&crate::engine::config::V3Access>,
        say: &mut Say<'_>,
    ) -> Option<Asking> {
        let access = match v3 {
            Some(a) => Write::User(a.clone()),
            None => Write::Community {
                community: community.to_string(),
                v2c: false,
            },
        };
        let Some(credential) = Credential::of(&access, site) else {
            say(
                "its v3 user is not a [[usm_user]]".into(),
                Verdict::Unanswered,
            );
            return None;
        };
        match Asking::new(to, credential) {
            Ok(a) => Some(a),
            Err(e) => {
                say(format!("cannot ask {to}: {e}"), Verdict::Unanswered);
                None
            }
        }
    }

    /// The address the card sees the gateway's requests come from.
    fn local_ip(&self) -> Option<IpAddr> {
        self.sock.local_addr().ok().map(|a| a.ip())
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.started.elapsed().as_nanos() as u64)
    }

    /// `kind` (GET or GETNEXT) of `oid`: the name and value answered, Got::Missing for
    /// an object the card lacks; Err with why when it does not answer.
    fn ask(&mut self, kind: PduType, oid: &OidBuf) -> Result<(OidBuf, Got), String> {
        let mut discovery = self.card.discovering();
        let mut id = self.ids.next_id();
        let mut tries = 0;
        let mut buf = vec![0u8; 65_536];
        'send: loop {
            tries += 1;
            if tries > TRIES + 2 {
                return Err("no answer".into());
            }
            self.wire.clear();
            let vbs = [VarBind {
                name: oid.as_oid(),
                value: Value::Null,
            }];
            let now = self.now();
            self.card.encode(
                now,
                kind,
                id,
                discovery,
                &vbs,
                &mut self.scratch,
                &mut self.wire,
            );
            self.sock
                .send(&self.wire)
                .map_err(|e| format!("cannot send: {e}"))?;
            let deadline = Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    if tries >= TRIES {
                        return Err(format!(
                            "no answer in {} tries of {} s (address, port, community or user?)",
                            TRIES,
                            WAIT.as_secs()
                        ));
                    }
                    continue 'send;
                }
                self.sock
                    .set_read_timeout(Some(left))
                    .map_err(|e| e.to_string())?;
                let n = match self.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    // An ICMP port unreachable: nothing listens there.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err("nothing listens there (ICMP port unreachable)".into());
                    }
                    Err(e) => return Err(format!("{e}")),
                };
                let arena = Bump::new();
                let now = self.now();
                // A connected socket hears only the card's address and port; the
                // client checks the id, the community or user, the engine and MAC.
                match self.card.open(now, &buf[..n], &arena, id, discovery) {
                    Ok(Opened::Discovered) => {
                        discovery = false;
                        id = self.ids.next_id();
                        tries = 0;
                        continue 'send;
                    }
                    Ok(Opened::AskAgain) => continue 'send,
                    Ok(Opened::Answer(r)) => {
                        let status = r.error_status;
                        let Some(vb) = r.varbinds.first() else {
                            return Err("an answer without its binding".into());
                        };
                        let name = vb.name.to_buf();
                        // v1 noSuchName (2): the object is not there.
                        if status == 2 {
                            return Ok((oid.clone(), Got::Missing));
                        }
                        if status != 0 {
                            return Err(format!(
                                "answered {}",
                                crate::engine::power::status_name(status)
                            ));
                        }
                        return Ok((name, Got::of(&vb.value)));
                    }
                    // Not the answer (another id, a forged one): wait on.
                    Err(_) => continue,
                }
            }
        }
    }

    /// GET `object`'s instance `index` (0: a scalar's `.0`).
    fn get(&mut self, object: &Object, index: u32) -> Result<Got, String> {
        self.ask(PduType::GET_REQUEST, &object.oid(index))
            .map(|(_, g)| g)
    }

    /// Every instance of table column `object` (GETNEXT until past it): (index, value).
    fn column(&mut self, object: &Object) -> Result<Vec<(u32, Got)>, String> {
        let base = OidBuf::from_arcs(object.arcs).map_err(|e| format!("{e:?}"))?;
        let mut at = base.clone();
        let mut rows = Vec::new();
        while rows.len() < RECEIVERS_MAX {
            let (name, got) = self.ask(PduType::GET_NEXT_REQUEST, &at)?;
            if got == Got::Missing || !name.as_bytes().starts_with(base.as_bytes()) {
                break;
            }
            let arcs: Vec<u32> = name.as_oid().arcs().collect();
            if arcs.len() <= object.arcs.len() || name.as_bytes() <= at.as_bytes() {
                break;
            }
            rows.push((arcs[object.arcs.len()], got));
            at = name;
        }
        Ok(rows)
    }
}

/// What `site` asks of one UPS: the slowest shutdown among the recorders it feeds.
fn slowest(site: &Site, u: UpsId) -> Option<(&str, u64)> {
    site.recorders
        .iter()
        .filter(|r| r.feeds.contains(&u))
        .map(|r| (r.name.as_str(), u64::from(r.shutdown_time.0)))
        .max_by_key(|(_, s)| *s)
}

/// The groups (receptacles) of UPS `u` that recorders are on, with the slowest of them.
fn groups(site: &Site, u: UpsId) -> Vec<(u32, &str, u64)> {
    let mut out: Vec<(u32, &str, u64)> = Vec::new();
    for r in &site.recorders {
        if let Some(Plug::Group { ups, group }) = r.outlet
            && ups == u
        {
            match out.iter_mut().find(|(g, ..)| *g == group) {
                Some(slot) if slot.2 >= u64::from(r.shutdown_time.0) => {}
                Some(slot) => *slot = (group, r.name.as_str(), u64::from(r.shutdown_time.0)),
                None => out.push((group, r.name.as_str(), u64::from(r.shutdown_time.0))),
            }
        }
    }
    out.sort_by_key(|(g, ..)| *g);
    out
}

fn seconds_text(s: i64) -> String {
    format!("{s} s")
}

/// An outlet's delay as the card gives it: -1 (any negative) is "never".
fn delay_text(s: i64) -> String {
    if s < 0 {
        "never".to_string()
    } else {
        seconds_text(s)
    }
}

/// Probes every card of `site` in turn.
pub fn probe(site: &Site) -> Vec<Finding> {
    let mut out = Vec::new();
    for (u, ups) in UpsId::enumerate(&site.upses) {
        probe_ups(site, u, ups, &mut out);
    }
    for (i, pdu) in site.pdus.iter().enumerate() {
        probe_pdu(site, PduId(i as u32), &mut out, pdu);
    }
    out
}

fn probe_ups(site: &Site, u: UpsId, ups: &Ups, out: &mut Vec<Finding>) {
    let mut say = |text: String, verdict: Verdict| {
        out.push(Finding {
            card: ups.name.clone(),
            text,
            verdict,
            off_delay: None,
        })
    };
    let to = SocketAddr::new(ups.address, ups.port);
    let Some(mut a) = Asking::of(site, to, &ups.community, ups.v3.as_ref(), &mut say) else {
        return;
    };
    let slowest = slowest(site, u);
    let result = match ups.vendor {
        Vendor::Apc => apc(site, u, ups, &mut a, slowest, &mut say),
        Vendor::CyberPower => cyberpower(ups, &mut a, slowest, &mut say),
        Vendor::UpsMib | Vendor::Eaton | Vendor::Mge => {
            rfc1628(site, u, ups, &mut a, slowest, &mut say).map(|()| None)
        }
        other => {
            say(
                format!(
                    "trapgate reads no settings of a {} card (APC, RFC 1628, Eaton, MGE and CyberPower it does)",
                    other.name()
                ),
                Verdict::Agrees,
            );
            Ok(None)
        }
    };
    match result {
        Err(e) => say(format!("{to}: {e}"), Verdict::Unanswered),
        Ok(Some(delay)) => out.push(Finding {
            card: ups.name.clone(),
            text: format!("outlet_off_delay = {delay} s, taken from the card"),
            verdict: Verdict::Agrees,
            off_delay: Some(delay),
        }),
        Ok(None) => {}
    }
}

type Say<'a> = dyn FnMut(String, Verdict) + 'a;

/// The card's delay before it cuts its outlets, against the site's `outlet_off_delay`;
/// where the site leaves it out, against the slowest shutdown of the recorders the UPS
/// feeds, and returned (to be taken).
fn shutoff(
    ups: &Ups,
    object: &Object,
    got: &Got,
    slowest: Option<(&str, u64)>,
    say: &mut Say<'_>,
) -> Option<u32> {
    if ups.off_delay_from_card {
        let Some(s) = got.seconds(object) else {
            say(
                format!(
                    "{}.0: the card has none, and the site leaves outlet_off_delay out: write it",
                    object.name
                ),
                Verdict::Disagrees,
            );
            return None;
        };
        let s = u32::try_from(s.max(0)).unwrap_or(u32::MAX);
        match slowest {
            Some((r, need)) if u64::from(s) < need => say(
                format!(
                    "{}.0 = {} on the card (the site leaves outlet_off_delay to it), but recorder `{r}` needs {need} s to shut down: it would lose power mid-write",
                    object.name,
                    seconds_text(i64::from(s))
                ),
                Verdict::Disagrees,
            ),
            _ => say(
                format!("{}.0 = {}", object.name, seconds_text(i64::from(s))),
                Verdict::Agrees,
            ),
        }
        return Some(s);
    }
    match got.seconds(object) {
        Some(s) if s != i64::from(ups.outlet_off_delay.0) => say(
            format!(
                "{}.0 = {} on the card, but the site's outlet_off_delay = {} s",
                object.name,
                seconds_text(s),
                ups.outlet_off_delay.0
            ),
            Verdict::Disagrees,
        ),
        Some(s) => say(
            format!("{}.0 = {}: as the site says", object.name, seconds_text(s)),
            Verdict::Agrees,
        ),
        None => say(
            format!("{}.0: the card has none", object.name),
            Verdict::Agrees,
        ),
    }
    None
}

/// The runtime left when the card declares low battery, against the slowest shutdown.
fn low_battery(object: &Object, got: &Got, slowest: Option<(&str, u64)>, say: &mut Say<'_>) {
    let Some(s) = got.seconds(object) else {
        say(
            format!("{}.0: the card has none", object.name),
            Verdict::Agrees,
        );
        return;
    };
    match slowest {
        Some((r, need)) if (s.max(0) as u64) < need => say(
            format!(
                "{}.0 = {} on the card: it declares low battery with that much runtime left, but recorder `{r}` needs {need} s to shut down",
                object.name,
                seconds_text(s)
            ),
            Verdict::Disagrees,
        ),
        _ => say(
            format!("{}.0 = {}", object.name, seconds_text(s)),
            Verdict::Agrees,
        ),
    }
}

fn apc(
    site: &Site,
    u: UpsId,
    ups: &Ups,
    a: &mut Asking,
    slowest: Option<(&str, u64)>,
    say: &mut Say<'_>,
) -> Result<Option<u32>, String> {
    let got = a.get(&APC_SHUTOFF_DELAY, 0)?;
    let taken = shutoff(ups, &APC_SHUTOFF_DELAY, &got, slowest, say);
    let got = a.get(&APC_LOW_BATTERY_RUNTIME, 0)?;
    low_battery(&APC_LOW_BATTERY_RUNTIME, &got, slowest, say);
    let ret = a.get(&APC_RETURN_DELAY, 0)?;
    let cap = a.get(&APC_MIN_RETURN_CAPACITY, 0)?;
    if let (Some(r), Got::Int(c)) = (ret.seconds(&APC_RETURN_DELAY), &cap) {
        say(
            format!(
                "{}.0 = {}, {}.0 = {c} %: after a shutdown of its own it switches its outlets on again that long after mains returns, once the battery holds that much",
                APC_RETURN_DELAY.name,
                seconds_text(r),
                APC_MIN_RETURN_CAPACITY.name
            ),
            Verdict::Agrees,
        );
    }
    for (g, r, need) in groups(site, u) {
        let name = a.get(&APC_GROUP_NAME, g)?;
        let off = a.get(&APC_GROUP_OFF_DELAY, g)?;
        let label = match &name {
            Got::Text(t) => format!(" ({t})"),
            _ => String::new(),
        };
        match off.seconds(&APC_GROUP_OFF_DELAY) {
            None => say(
                format!(
                    "outlet group {g}{label}: the card has no {}.{g}: is the group there?",
                    APC_GROUP_OFF_DELAY.name
                ),
                Verdict::Disagrees,
            ),
            // -1: never.
            Some(s) if s >= 0 && (s as u64) < need => say(
                format!(
                    "{}.{g} = {} on the card{label}, but recorder `{r}` on that group needs {need} s to shut down: the group would cut it mid-write when the UPS shuts down",
                    APC_GROUP_OFF_DELAY.name,
                    seconds_text(s)
                ),
                Verdict::Disagrees,
            ),
            Some(s) => say(
                format!(
                    "{}.{g} = {}{label}",
                    APC_GROUP_OFF_DELAY.name,
                    delay_text(s)
                ),
                Verdict::Agrees,
            ),
        }
    }
    receivers(site, a, say)?;
    Ok(taken)
}

/// The card's trap receiver table: the gateway's address among the enabled receivers.
fn receivers(site: &Site, a: &mut Asking, say: &mut Say<'_>) -> Result<(), String> {
    let rows = a.column(&APC_TRAP_RECEIVER_ADDR)?;
    // Where the card must send: the address it sees the gateway at, or the site's
    // listen address where it names one.
    let mut ours: Vec<IpAddr> = site
        .gateway
        .listen
        .iter()
        .map(|l| l.ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    if ours.is_empty() {
        ours.extend(a.local_ip());
    }
    let mut listed = Vec::new();
    let mut found = None;
    for (i, got) in rows {
        let Got::Ip(ip) = got else { continue };
        let accept = a.get(&APC_TRAP_RECEIVER_ACCEPT, i)?;
        let kind = a.get(&APC_TRAP_RECEIVER_TYPE, i)?;
        let enabled = accept == Got::Int(1);
        let kind = match kind {
            Got::Int(k) => APC_TRAP_RECEIVER_TYPE
                .named(k)
                .map_or_else(|| k.to_string(), str::to_string),
            _ => "?".into(),
        };
        listed.push(format!(
            "{ip} ({}, {kind})",
            if enabled { "enabled" } else { "disabled" }
        ));
        if ours.contains(&IpAddr::V4(ip)) && enabled {
            found = Some((ip, kind));
        }
    }
    let ours_text = ours
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    match found {
        Some((ip, kind)) => say(
            format!(
                "{} {ip} is an enabled trap receiver ({kind} traps)",
                APC_TRAP_RECEIVER_ADDR.name
            ),
            Verdict::Agrees,
        ),
        None => say(
            format!(
                "the gateway's address {ours_text} is not an enabled trap receiver of the card ({}: {}): its traps would not reach trapgate",
                APC_TRAP_RECEIVER_ADDR.name,
                if listed.is_empty() {
                    "none".to_string()
                } else {
                    listed.join(", ")
                }
            ),
            Verdict::Disagrees,
        ),
    }
    Ok(())
}

fn cyberpower(
    ups: &Ups,
    a: &mut Asking,
    slowest: Option<(&str, u64)>,
    say: &mut Say<'_>,
) -> Result<Option<u32>, String> {
    let got = a.get(&CPS_SHUTOFF_DELAY, 0)?;
    let taken = shutoff(ups, &CPS_SHUTOFF_DELAY, &got, slowest, say);
    let got = a.get(&CPS_LOW_BATTERY_RUNTIME, 0)?;
    low_battery(&CPS_LOW_BATTERY_RUNTIME, &got, slowest, say);
    let ret = a.get(&CPS_RETURN_DELAY, 0)?;
    if let Some(r) = ret.seconds(&CPS_RETURN_DELAY) {
        say(
            format!("{}.0 = {}", CPS_RETURN_DELAY.name, seconds_text(r)),
            Verdict::Agrees,
        );
    }
    Ok(taken)
}

fn rfc1628(
    site: &Site,
    u: UpsId,
    ups: &Ups,
    a: &mut Asking,
    slowest: Option<(&str, u64)>,
    say: &mut Say<'_>,
) -> Result<(), String> {
    let got = a.get(&RFC1628_LOW_BATT_TIME, 0)?;
    low_battery(&RFC1628_LOW_BATT_TIME, &got, slowest, say);
    match a.get(&RFC1628_AUTO_RESTART, 0)? {
        Got::Int(v) => {
            let on = v == 1;
            let site_on = ups.restart == Restart::Auto;
            let name = RFC1628_AUTO_RESTART
                .named(v)
                .map_or_else(|| v.to_string(), str::to_string);
            if on != site_on {
                say(
                    format!(
                        "{}.0 = {name} on the card, but the site says restart = \"{}\"",
                        RFC1628_AUTO_RESTART.name,
                        if site_on { "auto" } else { "manual" }
                    ),
                    Verdict::Disagrees,
                );
            } else {
                say(
                    format!("{}.0 = {name}", RFC1628_AUTO_RESTART.name),
                    Verdict::Agrees,
                );
            }
        }
        _ => say(
            format!("{}.0: the card has none", RFC1628_AUTO_RESTART.name),
            Verdict::Agrees,
        ),
    }
    if ups.vendor == Vendor::Eaton {
        for (g, r, need) in groups(site, u) {
            let off = a.get(&EATON_RECEP_AUTO_OFF_DELAY, g)?;
            match off.seconds(&EATON_RECEP_AUTO_OFF_DELAY) {
                Some(s) if s >= 0 && (s as u64) < need => say(
                    format!(
                        "{}.{g} = {} on the card, but recorder `{r}` on that receptacle needs {need} s to shut down: it would be cut mid-write",
                        EATON_RECEP_AUTO_OFF_DELAY.name,
                        seconds_text(s)
                    ),
                    Verdict::Disagrees,
                ),
                Some(s) => say(
                    format!(
                        "{}.{g} = {}",
                        EATON_RECEP_AUTO_OFF_DELAY.name,
                        delay_text(s)
                    ),
                    Verdict::Agrees,
                ),
                None => say(
                    format!(
                        "receptacle {g}: the card has no {}.{g}",
                        EATON_RECEP_AUTO_OFF_DELAY.name
                    ),
                    Verdict::Disagrees,
                ),
            }
        }
    }
    Ok(())
}

fn probe_pdu(site: &Site, id: PduId, out: &mut Vec<Finding>, pdu: &crate::engine::config::Pdu) {
    let mut say = |text: String, verdict: Verdict| {
        out.push(Finding {
            card: pdu.name.clone(),
            text,
            verdict,
            off_delay: None,
        })
    };
    let to = SocketAddr::new(pdu.address, pdu.port);
    let Some(mut a) = Asking::of(site, to, &pdu.community, pdu.v3.as_ref(), &mut say) else {
        return;
    };
    let state = crate::engine::power::pdu_state_object(pdu.vendor);
    let mut outlets: Vec<u32> = site
        .recorders
        .iter()
        .filter_map(|r| match r.outlet {
            Some(Plug::PduOutlet { pdu: p, outlet }) if p == id => Some(outlet),
            _ => None,
        })
        .collect();
    outlets.sort_unstable();
    outlets.dedup();
    for n in outlets {
        match a.get(state, n) {
            Ok(Got::Int(v)) => say(
                format!("{}.{n} = {}", state.name, state.value_text(v)),
                Verdict::Agrees,
            ),
            Ok(_) => say(
                format!(
                    "outlet {n}: the PDU has no {}.{n}: is the outlet there?",
                    state.name
                ),
                Verdict::Disagrees,
            ),
            Err(e) => {
                say(format!("{to}: {e}"), Verdict::Unanswered);
                return;
            }
        }
    }
}
