//! `trapgate demo`: the seed's story on loopback, over real sockets, told as it happens.
//!
//! The gateway runs with the embedded seed site, moved onto 127.0.0.0/8 (every address
//! there is the machine's own): the UPS at 127.0.0.250, the recorders at 127.0.0.244
//! and 127.0.0.251 (or 127.1.x.y for `--recorders N`). A simulated UPS sends its traps
//! and answers the gateway's polls; simulated recorders poll the gateway (their "UPS"),
//! acknowledge the shutdown trap, shut down, lose power when the UPS cuts its outlets,
//! and boot and poll again when power returns. The site's clock runs `speed` times
//! faster than the wall clock, so the seed's minutes pass in seconds.
//!
//! With `--v3` the whole site speaks SNMPv3 at authPriv (SHA, AES-128): the UPS's traps
//! are sealed by its own engine and it answers the gateway's polls as the authoritative
//! engine of them (discovery Reports included); the recorders discover the gateway's
//! engine, poll it sealed, open their orders and acknowledge with v3 traps of their own
//! engines.
//!
//! Beside the NVRs, two recorders learn of the outage from a UPS server, as NAS and
//! servers do: `nas-01`, a NUT client as Synology DSM is one (it watches the UPS `ups`
//! as `monuser` / `secret`, tier 2), served by the gateway's NUT server; and
//! `srv-apcupsd`, an apcupsd network client (tier 1), served by its NIS server. The NAS
//! logs out when it reads `FSD` (its acknowledgement); apcupsd shuts down when it
//! fetches `ONBATT LOWBATT`.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bumpalo::Bump;
use hdrhistogram::Histogram;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use serde_json::Value as Json;

use crate::daemon::clock::now;
use crate::daemon::socket::raise_fd_limit;
use crate::daemon::{self, Options};
use crate::engine::config::{RecorderKind, Secs, Site, UsmUser, V3Access};
use crate::engine::usm::{LocalEngine, NotOpened, Usm};
use crate::time::Timestamp;
use crate::wire::oid::oid;
use crate::wire::usm::{AuthProtocol, Keys, PrivProtocol, password_to_key};
use crate::wire::v3::{Header, Level, Seal, pdu_of, seal};
use crate::wire::{Message, Pdu, PduType, Value, VarBind, Version, encode};

/// `--v3`: the users, the UPS's engine and the gateway's.
const UPS_USER: &str = "upsv3user";
const NVR_USER: &str = "nvrv3user";
const UPS_ENGINE: &[u8] = b"\x80\x00\x13\x70\x05demo-ups";
const GATEWAY_ENGINE: &[u8] = b"\x80\x00\x1f\x88\x04trapgate-demo";

/// A user of the demo's v3 site (SHA, AES-128).
fn demo_user(name: &str, auth: &str, privacy: &str) -> UsmUser {
    UsmUser {
        name: name.into(),
        auth: Some((
            AuthProtocol::Sha1,
            password_to_key(AuthProtocol::Sha1, auth.as_bytes()),
        )),
        privacy: Some((
            PrivProtocol::Aes128,
            password_to_key(AuthProtocol::Sha1, privacy.as_bytes()),
        )),
        engine_id: None,
    }
}

/// `keys` of `site`'s user `name`, localized for `engine`.
fn keys_of(site: &Site, name: &str, engine: &[u8]) -> Keys {
    let u = site
        .usm_users
        .iter()
        .find(|u| u.name == name)
        .expect("a demo user");
    let (auth, ku) = u.auth.as_ref().expect("authenticated");
    Keys::localized(*auth, ku, u.privacy.as_ref().map(|(p, k)| (*p, k)), engine)
}

/// A trap as SNMPv3 carries it (RFC 3584 §3.1's SNMPv2 form): sysUpTime.0,
/// snmpTrapOID.0 = `trap`, and the APC text if any.
fn v2_form<'a>(
    trap: &'a crate::wire::OidBuf,
    ticks: u32,
    text: Option<(&'a crate::wire::OidBuf, &'a [u8])>,
) -> Vec<VarBind<'a>> {
    let mut vbs = vec![
        VarBind {
            name: crate::wire::Oid::trusted(crate::wire::message::SYS_UPTIME_0),
            value: Value::TimeTicks(ticks),
        },
        VarBind {
            name: crate::wire::Oid::trusted(crate::wire::message::SNMP_TRAP_OID_0),
            value: Value::ObjectId(trap.as_oid()),
        },
    ];
    if let Some((name, t)) = text {
        vbs.push(VarBind {
            name: name.as_oid(),
            value: Value::OctetString(t),
        });
    }
    vbs
}

/// `pdu` sealed at authPriv by `engine` (its authoritative engine) for `user`.
#[allow(clippy::too_many_arguments)]
fn sealed(
    pdu: &Pdu<'_>,
    msg_id: i32,
    reportable: bool,
    engine: &[u8],
    boots: u32,
    time: u32,
    user: &str,
    keys: &Keys,
) -> Vec<u8> {
    let s = Seal {
        msg_id,
        max_size: 1472,
        reportable,
        engine_id: engine,
        boots,
        time,
        user: user.as_bytes(),
        level: Level::AuthPriv,
        context_engine_id: engine,
        context_name: b"",
        salt: u64::from(msg_id as u32)
            .wrapping_mul(0x9e37_79b9)
            .to_be_bytes(),
    };
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    seal(pdu, &s, Some(keys), &mut scratch, &mut out);
    out
}

/// Real seconds since `t0`, as an SNMPv3 engine's time (engines keep real time).
fn engine_time(t0: Instant) -> u32 {
    t0.elapsed().as_secs() as u32
}

/// The story, in site seconds from the start.
const MAINS_FAIL: f64 = 5.0;
const LOW_BATTERY: f64 = 200.0;
const MAINS_BACK: f64 = 440.0;
/// How long the simulated recorders take to boot, in site seconds (spread over them).
const BOOT: (f64, f64) = (40.0, 100.0);
/// The demo gives up after this much site time.
const GIVE_UP: f64 = 1200.0;

const UPS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 250);
const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
const CHARGE: &str = "1.3.6.1.2.1.33.1.2.4.0";
/// The demo's NUT client (a Synology-style NAS) and apcupsd network client.
const NAS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 30);
const APCUPSD_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 31);
/// How often they poll, in site seconds (upsmon's POLLFREQ; apcupsd's net driver).
const NUT_POLL: f64 = 5.0;
const NIS_POLL: f64 = 10.0;

fn v1_trap(
    enterprise: &str,
    agent: [u8; 4],
    specific: i64,
    ticks: u32,
    text: Option<&str>,
) -> Vec<u8> {
    let e = oid(enterprise);
    let name = oid("1.3.6.1.4.1.318.2.3.3.0");
    let vb: Vec<VarBind<'_>> = text
        .map(|t| VarBind {
            name: name.as_oid(),
            value: Value::OctetString(t.as_bytes()),
        })
        .into_iter()
        .collect();
    let trap = Message::trap_v1(b"public", e.as_oid(), agent, specific, ticks, &vb);
    encode::to_vec(&trap)
}

fn request(kind: PduType, id: i32, varbinds: &[VarBind<'_>]) -> Vec<u8> {
    encode::to_vec(&Message::pdu(Version::V1, b"public", kind, id, varbinds))
}

/// The demo site: the seed's, on loopback, with `n` recorders (and with `v3`, every UPS
/// and recorder on SNMPv3 at authPriv).
fn demo_site(n: usize, ups_port: u16, recorder_ports: &[u16], v3: bool) -> Site {
    let mut site = Site::default_site();
    if v3 {
        site.usm_users = vec![
            demo_user(UPS_USER, "upsauth123", "upspriv123"),
            demo_user(NVR_USER, "nvrauth123", "nvrpriv123"),
        ];
        site.gateway.engine_id = Some(GATEWAY_ENGINE.to_vec());
        site.upses[0].v3 = Some(V3Access {
            user: UPS_USER.into(),
            level: Level::AuthPriv,
        });
    }
    site.gateway.listen = vec![SocketAddr::from((GATEWAY_ADDR, 0))];
    site.gateway.agent = SocketAddr::from((GATEWAY_ADDR, 0));
    site.upses[0].address = IpAddr::V4(UPS_ADDR);
    site.upses[0].port = ups_port;
    let template = site.recorders[0].clone();
    site.recorders = (0..n)
        .map(|i| {
            let (name, address, tier) = if n == 2 {
                let last = [244u8, 251][i];
                (
                    format!("nvr-{last}"),
                    Ipv4Addr::new(127, 0, 0, last),
                    [2, 1][i],
                )
            } else {
                (
                    format!("nvr-{:04}", i + 1),
                    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250) as u8 + 1),
                    (i % 2) as u8 + 1,
                )
            };
            let mut r = template.clone();
            r.name = name;
            r.address = IpAddr::V4(address);
            r.port = recorder_ports[i];
            r.tier = tier;
            r.kind = RecorderKind::TrapRelay;
            r.boot_time = Secs(300);
            r.v3 = v3.then(|| V3Access {
                user: NVR_USER.into(),
                level: Level::AuthPriv,
            });
            r
        })
        .collect();
    site.gateway.nut = Some(SocketAddr::from((GATEWAY_ADDR, 0)));
    site.gateway.nis = Some(SocketAddr::from((GATEWAY_ADDR, 0)));
    let mut nas = template.clone();
    nas.name = "nas-01".into();
    nas.address = IpAddr::V4(NAS_ADDR);
    nas.tier = 2;
    nas.shutdown_time = Secs(60);
    nas.boot_time = Secs(300);
    nas.kind = RecorderKind::Nut {
        user: "monuser".into(),
        password: "secret".into(),
        ups: "ups".into(),
    };
    nas.v3 = None;
    let mut apcupsd = nas.clone();
    apcupsd.name = "srv-apcupsd".into();
    apcupsd.address = IpAddr::V4(APCUPSD_ADDR);
    apcupsd.tier = 1;
    apcupsd.kind = RecorderKind::Apcupsd;
    site.recorders.push(nas);
    site.recorders.push(apcupsd);
    site
}

/// The simulated UPS's SNMPv3: its card's security model (the authoritative engine of
/// the gateway's polls) and its user's keys for its own engine (its traps).
struct UpsV3 {
    usm: Usm,
    keys: Keys,
}

/// What the simulated UPS does and has seen.
struct UpsSim {
    socket: std::net::UdpSocket,
    v3: Option<UpsV3>,
    /// How many times the outlets came back on after being cut.
    outlets_restored: Arc<AtomicU64>,
    /// Real ns at which the lowBattery trap left.
    low_battery_sent: Arc<AtomicU64>,
    polls: Arc<AtomicU64>,
}

/// Runs the UPS's side of the story until `done`.
fn run_ups(
    mut sim: UpsSim,
    gateway: SocketAddr,
    speed: f64,
    t0: Instant,
    done: Arc<AtomicBool>,
    say: Said,
) {
    let site_s = |t0: Instant| t0.elapsed().as_secs_f64() * speed;
    let _ = sim.socket.set_read_timeout(Some(Duration::from_millis(2)));
    let agent = UPS_ADDR.octets();
    let mut step = 0;
    let mut buf = [0u8; 2048];
    let arena = Bump::new();
    let (mut on_battery, mut low, mut charge) = (false, false, 100u32);
    let mut outlets_off_at = None;
    while !done.load(Ordering::Relaxed) {
        let t = site_s(t0);
        let ticks = (t * 100.0) as u32;
        // The UPS's APC trap `specific`, with its text, to the gateway.
        let apc = |specific: i64, text: &str| {
            let trap = match &sim.v3 {
                None => v1_trap("1.3.6.1.4.1.318", agent, specific, ticks, Some(text)),
                Some(v) => {
                    let (trap_oid, text_oid) = (
                        oid(&format!("1.3.6.1.4.1.318.0.{specific}")),
                        oid("1.3.6.1.4.1.318.2.3.3.0"),
                    );
                    let vbs = v2_form(&trap_oid, ticks, Some((&text_oid, text.as_bytes())));
                    let pdu = Message::pdu(
                        Version::V3,
                        b"",
                        PduType::SNMPV2_TRAP,
                        specific as i32,
                        &vbs,
                    )
                    .pdu;
                    sealed(
                        &pdu,
                        specific as i32,
                        false,
                        UPS_ENGINE,
                        1,
                        engine_time(t0),
                        UPS_USER,
                        &v.keys,
                    )
                }
            };
            let _ = sim.socket.send_to(&trap, gateway);
        };
        if step == 0 && t >= MAINS_FAIL {
            step = 1;
            on_battery = true;
            apc(
                5,
                "UPS: On battery power in response to an input power problem.",
            );
            said(
                &say,
                t,
                "UPS: mains power fails; sends upsOnBattery to the gateway".into(),
            );
        }
        if on_battery && !low {
            // The battery drains from 100 % to 35 % by the low-battery point (the card
            // says low battery by runtime, above the site's 30 % threshold).
            charge = (100.0
                - 65.0 * ((t - MAINS_FAIL) / (LOW_BATTERY - MAINS_FAIL)).clamp(0.0, 1.0))
                as u32;
        }
        if step == 4 {
            // Recharging on mains power.
            charge = (35.0 + (t - MAINS_BACK) * 0.1).min(100.0) as u32;
        }
        if step == 1 && t >= LOW_BATTERY {
            step = 2;
            low = true;
            sim.low_battery_sent.store(now().0, Ordering::Relaxed);
            apc(7, "UPS: Low battery. A shutdown is imminent.");
            outlets_off_at = Some(t + 180.0);
            said(
                &say,
                t,
                format!(
                    "UPS: battery low ({charge} %); sends the seed's lowBattery trap; its outlets go off in 180 s"
                ),
            );
        }
        if step == 2 && outlets_off_at.is_some_and(|o| t >= o) {
            step = 3;
            said(&say, t, "UPS: outlets off (outlet_off_delay 3 min)".into());
        }
        if step == 3 && t >= MAINS_BACK {
            step = 4;
            on_battery = false;
            low = false;
            apc(9, "UPS: Utility power has been restored.");
            sim.outlets_restored.fetch_add(1, Ordering::Relaxed);
            said(&say, t, "UPS: mains power is back; sends powerRestored; outlets on by themselves (restart = auto)".into());
        }
        let Ok((n, from)) = sim.socket.recv_from(&mut buf) else {
            continue;
        };
        let now_v3 = Timestamp(t0.elapsed().as_nanos() as u64);
        let parsed = match (Message::parse(&buf[..n], &arena), sim.v3.as_mut()) {
            (Ok(m), None) => Ok(m),
            (Err(_), Some(v)) => v.usm.open(&buf[..n], now_v3, &arena).map_err(Some),
            _ => Err(None),
        };
        let m = match parsed {
            Ok(m) => m,
            // Discovery, or a stale time: the Report lets the gateway go on.
            Err(Some(NotOpened::Refused(why))) => {
                if let Some(v) = sim.v3.as_mut() {
                    let (mut scratch, mut out) = (Vec::new(), Vec::new());
                    if v.usm.report(&buf[..n], why, now_v3, &mut scratch, &mut out) {
                        let _ = sim.socket.send_to(&out, from);
                    }
                }
                continue;
            }
            Err(_) => continue,
        };
        let Pdu::Request(r) = m.pdu else { continue };
        if r.kind != PduType::GET_REQUEST {
            continue;
        }
        sim.polls.fetch_add(1, Ordering::Relaxed);
        let names: Vec<_> = r.varbinds.iter().map(|v| v.name).collect();
        let answer: Vec<VarBind<'_>> = names
            .iter()
            .map(|name| {
                let value = match name.to_buf().to_string().as_str() {
                    "1.3.6.1.4.1.318.1.1.1.4.1.1.0" => {
                        Value::Integer(if on_battery { 3 } else { 2 })
                    }
                    "1.3.6.1.4.1.318.1.1.1.2.1.1.0" => Value::Integer(if low { 3 } else { 2 }),
                    "1.3.6.1.4.1.318.1.1.1.2.2.1.0" => Value::Gauge32(charge),
                    // 20 min of runtime at 100 %, in 1/100 s.
                    "1.3.6.1.4.1.318.1.1.1.2.2.3.0" => Value::TimeTicks(charge * 1200),
                    CHARGE => Value::Integer(charge as i64),
                    _ => Value::NoSuchObject,
                };
                VarBind { name: *name, value }
            })
            .collect();
        let reply = request(PduType::RESPONSE, r.request_id, &answer);
        match sim.v3.as_mut() {
            None => {
                let _ = sim.socket.send_to(&reply, from);
            }
            Some(v) => {
                let (mut scratch, mut out) = (Vec::new(), Vec::new());
                if let Some(pdu) = pdu_of(&reply)
                    && v.usm.seal_reply(&m, pdu, now_v3, &mut scratch, &mut out)
                {
                    let _ = sim.socket.send_to(&out, from);
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rec {
    /// Up.
    Up,
    /// Told to shut down: polled the gateway, waiting for the answer.
    Told,
    /// Shutting down until then (real Instant).
    ShuttingDown(Instant),
    /// Off (shut down, powered or not), since the outlets had come back on this many times.
    Off(u64),
    /// Booting until then.
    Booting(Instant),
}

/// The simulated recorders' SNMPv3: their security model (the gateway's answers and
/// orders, the gateway their authoritative engine) and their user's keys, for the
/// gateway's engine once discovered and for each recorder's own (its acknowledgements).
struct RecordersV3 {
    usm: Usm,
    site: Site,
    gateway: Option<(Vec<u8>, u32, u32, Instant, Keys)>,
    own: Vec<(Vec<u8>, Keys)>,
}

impl RecordersV3 {
    fn new(site: Site) -> RecordersV3 {
        let own = site
            .recorders
            .iter()
            .map(|r| {
                let mut engine = vec![0x80, 0x00, 0x1f, 0x88, 0x03, 0x02];
                if let IpAddr::V4(a) = r.address {
                    engine.extend_from_slice(&a.octets());
                }
                let keys = keys_of(&site, NVR_USER, &engine);
                (engine, keys)
            })
            .collect();
        RecordersV3 {
            usm: Usm::new(&site),
            site,
            gateway: None,
            own,
        }
    }

    /// A discovery probe (RFC 3414 §4): no engine, no user, unauthenticated, reportable.
    fn discovery() -> Vec<u8> {
        let mut out = Vec::new();
        crate::wire::v3::discovery_probe(1, 1472, &mut out);
        out
    }

    /// Learns the gateway's engine from its Report.
    fn learn(&mut self, report: &[u8]) -> bool {
        let Ok(h) = Header::parse(report) else {
            return false;
        };
        if h.engine_id.is_empty() {
            return false;
        }
        let keys = keys_of(&self.site, NVR_USER, h.engine_id);
        self.gateway = Some((h.engine_id.to_vec(), h.boots, h.time, Instant::now(), keys));
        true
    }

    /// A get of the gateway's agent, sealed for its engine.
    fn get(&self, id: i32, vbs: &[VarBind<'_>]) -> Option<Vec<u8>> {
        let (engine, boots, time, at, keys) = self.gateway.as_ref()?;
        let pdu = Message::pdu(Version::V3, b"", PduType::GET_REQUEST, id, vbs).pdu;
        let now = time + at.elapsed().as_secs() as u32;
        Some(sealed(&pdu, id, true, engine, *boots, now, NVR_USER, keys))
    }

    /// Recorder `i`'s acknowledgement, a v3 trap of its own engine.
    fn ack(&self, i: usize, ack: &crate::wire::OidBuf, t0: Instant) -> Vec<u8> {
        let vbs = v2_form(ack, 0, None);
        let pdu = Message::pdu(Version::V3, b"", PduType::SNMPV2_TRAP, i as i32, &vbs).pdu;
        let (engine, keys) = &self.own[i];
        sealed(
            &pdu,
            i as i32,
            false,
            engine,
            1,
            engine_time(t0),
            NVR_USER,
            keys,
        )
    }
}

/// Whether `m` is the shutdown trap: the APC lowBattery, as a v1 trap or in its SNMPv2
/// form.
fn is_order(m: &Message<'_>) -> bool {
    match &m.pdu {
        Pdu::TrapV1(t) => t.specific_trap == 7,
        Pdu::Request(r) => {
            r.kind == PduType::SNMPV2_TRAP
                && r.notification_oid()
                    .is_some_and(|o| o.to_string() == "1.3.6.1.4.1.318.0.7")
        }
    }
}

/// Runs every recorder's side until `done`; returns the real ns at which each recorder
/// first received its shutdown trap.
#[allow(clippy::too_many_arguments)]
fn run_recorders(
    sockets: Vec<UdpSocket>,
    gateway_traps: SocketAddr,
    gateway_agent: SocketAddr,
    speed: f64,
    outlets_restored: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    mut v3: Option<RecordersV3>,
    t0: Instant,
) -> Vec<Option<u64>> {
    let n = sockets.len();
    let mut sockets = sockets;
    let mut poll = Poll::new().expect("a poller");
    for (i, s) in sockets.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .expect("register a recorder socket");
    }
    let real = |site_s: f64| Duration::from_secs_f64(site_s / speed);
    let mut state = vec![Rec::Up; n];
    let mut told_at = vec![None; n];
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let mut arena = Bump::new();
    let charge = oid(CHARGE);
    let ack_oid = oid("1.3.6.1.4.1.50001.0.200");
    // With v3, the gateway's engine first: a discovery from the first recorder, its
    // Report awaited (2 s at most).
    if let Some(v) = v3.as_mut() {
        let _ = sockets[0].send_to(&RecordersV3::discovery(), gateway_agent);
        let until = Instant::now() + Duration::from_secs(2);
        while v.gateway.is_none() && Instant::now() < until {
            let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
            while let Ok((len, _)) = sockets[0].recv_from(&mut buf) {
                v.learn(&buf[..len]);
            }
        }
    }
    let get = |id: i32, v3: &Option<RecordersV3>| {
        let vbs = [VarBind {
            name: charge.as_oid(),
            value: Value::Null,
        }];
        match v3 {
            None => request(PduType::GET_REQUEST, id, &vbs),
            Some(v) => v.get(id, &vbs).unwrap_or_default(),
        }
    };
    let ack = |i: usize, v3: &Option<RecordersV3>| match v3 {
        None => {
            let a = match sockets[i].local_addr() {
                Ok(SocketAddr::V4(a)) => a.ip().octets(),
                _ => [0; 4],
            };
            v1_trap("1.3.6.1.4.1.50001", a, 200, 0, None)
        }
        Some(v) => v.ack(i, &ack_oid, t0),
    };
    // Every recorder polls its UPS (the gateway) once at start, as an NVR does.
    for (i, s) in sockets.iter().enumerate() {
        let _ = s.send_to(&get(i as i32 + 1, &v3), gateway_agent);
    }
    while !done.load(Ordering::Relaxed) {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(5)));
        arena.reset();
        for e in events.iter() {
            let i = e.token().0;
            while let Ok((len, _)) = sockets[i].recv_from(&mut buf) {
                let now_v3 = Timestamp(t0.elapsed().as_nanos() as u64);
                let m = match v3.as_mut() {
                    None => Message::parse(&buf[..len], &arena).ok(),
                    Some(v) => v.usm.open(&buf[..len], now_v3, &arena).ok(),
                };
                let Some(m) = m else { continue };
                // The gateway's engine clock, set again by an authenticated Report (its
                // clock runs at the site's speed): the poll goes again.
                if m.pdu_type() == PduType::REPORT {
                    if let Some(v) = v3.as_mut() {
                        v.learn(&buf[..len]);
                    }
                    let _ = sockets[i].send_to(&get(3_000_000 + i as i32, &v3), gateway_agent);
                    continue;
                }
                let response = matches!(&m.pdu, Pdu::Request(r) if r.kind == PduType::RESPONSE);
                match (is_order(&m), response, state[i]) {
                    // The shutdown trap: ask the UPS for its charge, as the seed's NVR does.
                    (true, _, Rec::Up | Rec::Told) => {
                        told_at[i].get_or_insert(now().0);
                        state[i] = Rec::Told;
                        let _ = sockets[i].send_to(&get(1_000_000 + i as i32, &v3), gateway_agent);
                    }
                    // The charge it was shown: acknowledge and shut down.
                    (_, true, Rec::Told) => {
                        let _ = sockets[i].send_to(&ack(i, &v3), gateway_traps);
                        state[i] = Rec::ShuttingDown(Instant::now() + real(90.0));
                    }
                    // A trap told again while shutting down: acknowledge again.
                    (true, _, Rec::ShuttingDown(_)) => {
                        let _ = sockets[i].send_to(&ack(i, &v3), gateway_traps);
                    }
                    _ => {}
                }
            }
        }
        let restored = outlets_restored.load(Ordering::Relaxed);
        let now_i = Instant::now();
        for i in 0..n {
            state[i] = match state[i] {
                Rec::ShuttingDown(until) if now_i >= until => Rec::Off(restored),
                // A recorder that shut down boots only when the UPS switches its outlets
                // on again after cutting them: until then it stays off.
                Rec::Off(at) if restored > at => {
                    let spread = BOOT.0 + (BOOT.1 - BOOT.0) * (i as f64 / n.max(1) as f64);
                    Rec::Booting(now_i + real(spread))
                }
                Rec::Booting(until) if now_i >= until => {
                    let _ = sockets[i].send_to(&get(2_000_000 + i as i32, &v3), gateway_agent);
                    Rec::Up
                }
                s => s,
            };
        }
    }
    told_at
}

/// A connection to the gateway's NUT or NIS server from `from` (bound first, as the
/// gateway knows a client by its address), with a read timeout.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// The demo's NUT client, as a NAS runs it: logged in, polling `ups.status`.
struct NutClient {
    conn: Option<std::io::BufReader<std::net::TcpStream>>,
    /// The status it read last.
    status: String,
}

impl NutClient {
    /// One line sent, one read back.
    fn ask(&mut self, line: &str) -> std::io::Result<String> {
        use std::io::BufRead;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| std::io::Error::other("not connected"))?;
        conn.get_mut().write_all(line.as_bytes())?;
        let mut answer = String::new();
        conn.read_line(&mut answer)?;
        if answer.is_empty() {
            return Err(std::io::Error::other("closed"));
        }
        Ok(answer.trim_end().to_string())
    }

    /// Connects and logs in as monuser to the UPS `ups`, as Synology DSM does.
    fn log_in(&mut self, server: SocketAddr) -> std::io::Result<()> {
        self.conn = Some(std::io::BufReader::new(connect_from(NAS_ADDR, server)?));
        for line in ["USERNAME monuser\n", "PASSWORD secret\n", "LOGIN ups\n"] {
            let answer = self.ask(line)?;
            if answer != "OK" {
                self.conn = None;
                return Err(std::io::Error::other(format!("{}: {answer}", line.trim())));
            }
        }
        Ok(())
    }

    /// `ups.status`, as the server gives it.
    fn poll(&mut self) -> std::io::Result<String> {
        let answer = self.ask("GET VAR ups ups.status\n")?;
        // VAR ups ups.status "OB"
        Ok(answer
            .split('"')
            .nth(1)
            .map(str::to_string)
            .unwrap_or(answer))
    }
}

/// The demo's apcupsd network client's poll: a connection, `status` in apcupsd's
/// framing, the records read to the empty one; its `STATUS` line's value.
fn nis_status(server: SocketAddr) -> std::io::Result<String> {
    use std::io::Read;
    let mut c = connect_from(APCUPSD_ADDR, server)?;
    c.write_all(b"\x00\x06status")?;
    let mut status = String::new();
    loop {
        let mut len = [0u8; 2];
        c.read_exact(&mut len)?;
        let len = u16::from_be_bytes(len) as usize;
        if len == 0 {
            return Ok(status);
        }
        let mut line = vec![0u8; len];
        c.read_exact(&mut line)?;
        let line = String::from_utf8_lossy(&line);
        if let Some(v) = line.strip_prefix("STATUS") {
            status = v.trim_start_matches([' ', ':']).trim_end().to_string();
        }
    }
}

/// The NUT client (`nas-01`) and the apcupsd client (`srv-apcupsd`) through the story:
/// they poll, shut down on FSD / LOWBATT (the NAS logs out first), stay off until the
/// UPS switches its outlets on again, boot, and log in or poll again. Returns when each
/// was told (ns), NAS first.
fn run_tcp_clients(
    nut: SocketAddr,
    nis: SocketAddr,
    speed: f64,
    outlets_restored: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    say: Said,
    t0: Instant,
) -> [Option<u64>; 2] {
    let real = |site_s: f64| Duration::from_secs_f64(site_s / speed);
    let site_t = || t0.elapsed().as_secs_f64() * speed;
    // A client's line is stamped when it asked: what the gateway did on the request
    // comes after it.
    let tell = |asked: f64, line: String| said(&say, asked, line);
    let mut nas = NutClient {
        conn: None,
        status: String::new(),
    };
    let mut state = [Rec::Up; 2];
    let mut told = [None; 2];
    let mut next = [Instant::now(), Instant::now()];
    let mut apc_status = String::new();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(2));
        let now_i = Instant::now();
        let restored = outlets_restored.load(Ordering::Relaxed);
        for (i, st) in state.iter_mut().enumerate() {
            *st = match *st {
                Rec::ShuttingDown(until) if now_i >= until => Rec::Off(restored),
                Rec::Off(at) if restored > at => {
                    Rec::Booting(now_i + real(BOOT.0 + 10.0 * i as f64))
                }
                Rec::Booting(until) if now_i >= until => {
                    next[i] = now_i;
                    Rec::Up
                }
                s => s,
            };
        }
        // The NAS: logged in, then a poll every NUT_POLL site seconds.
        if state[0] == Rec::Up && now_i >= next[0] {
            next[0] = now_i + real(NUT_POLL);
            let asked = site_t();
            if nas.conn.is_none() && nas.log_in(nut).is_ok() {
                tell(asked, "nas-01 (NUT client, as Synology DSM) logs in to the gateway's NUT server as monuser, UPS `ups`".into());
            }
            let asked = site_t();
            match nas.poll() {
                Ok(status) if status.contains("FSD") => {
                    tell(
                        asked,
                        format!("nas-01 reads ups.status \"{status}\": logs out and shuts down"),
                    );
                    let _ = nas.ask("LOGOUT\n");
                    nas.conn = None;
                    nas.status.clear();
                    told[0].get_or_insert(now().0);
                    state[0] = Rec::ShuttingDown(Instant::now() + real(60.0));
                }
                Ok(status) => {
                    if status != nas.status {
                        tell(asked, format!("nas-01 reads ups.status \"{status}\""));
                        nas.status = status;
                    }
                }
                Err(_) => nas.conn = None,
            }
        }
        // apcupsd: a status fetch every NIS_POLL site seconds.
        if state[1] == Rec::Up && now_i >= next[1] {
            next[1] = now_i + real(NIS_POLL);
            let asked = site_t();
            if let Ok(status) = nis_status(nis) {
                if status.contains("LOWBATT") {
                    tell(
                        asked,
                        format!(
                            "srv-apcupsd (apcupsd network client) fetches STATUS {status}: runs its doshutdown"
                        ),
                    );
                    apc_status.clear();
                    told[1].get_or_insert(now().0);
                    state[1] = Rec::ShuttingDown(Instant::now() + real(60.0));
                } else if status != apc_status {
                    tell(asked, format!("srv-apcupsd fetches STATUS {status}"));
                    apc_status = status;
                }
            }
        }
    }
    told
}

/// The story's lines, each with its time on the site's clock, from every thread.
type Said = Arc<Mutex<Vec<(f64, String)>>>;

/// Adds `line`, which happened at `t` seconds of the site's clock.
fn said(say: &Said, t: f64, line: String) {
    say.lock().unwrap().push((t, line));
}

/// Prints the lines of `pending` made at or before `until`, in time order (a stable
/// sort: lines of one instant keep the order they were said in), and keeps the rest.
fn tell_until(
    pending: &mut Vec<(f64, String)>,
    until: f64,
    out: &mut impl Write,
) -> Result<(), String> {
    pending.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pending.partition_point(|(t, _)| *t <= until);
    for (t, line) in pending.drain(..n) {
        writeln!(out, "{t:7.1} s  {line}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// What shows recorder `name` its UPS: the virtual UPS, or for the demo's NUT and
/// apcupsd clients the gateway's NUT or NIS server.
fn shown_by(name: &str) -> &'static str {
    match name {
        "nas-01" => "the NUT server",
        "srv-apcupsd" => "the NIS server",
        _ => "the virtual UPS",
    }
}

/// One record of the gateway as a line of the story, or None to leave it out.
fn story_line(r: &Json, many: bool) -> Option<String> {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let line = if let Some(d) = r["decision"].as_str() {
        match d {
            "ShutdownRecorder" if many => return None,
            "ShutdownRecorder" => format!(
                "gateway decides: {} shuts down now ({}; must be down by {}); {} shows it a charge of 0 %",
                s("recorder"),
                s("reason"),
                s("deadline"),
                shown_by(&s("recorder")),
            ),
            "PresentCharge" if many => return None,
            "PresentCharge" => match r["percent"].as_u64() {
                Some(p) => format!(
                    "gateway: {} shows {} a charge of {p} %",
                    shown_by(&s("recorder")),
                    s("recorder")
                ),
                None => format!(
                    "gateway: {} shows {} its UPS's real values again",
                    shown_by(&s("recorder")),
                    s("recorder")
                ),
            },
            "Acknowledged" if many => return None,
            "Acknowledged" => format!(
                "gateway: {} acknowledged ({})",
                s("recorder"),
                match s("recorder").as_str() {
                    "nas-01" => "it logged out of the NUT server after reading FSD",
                    "srv-apcupsd" => {
                        "it fetched its shutdown status: all an apcupsd client can say"
                    }
                    _ => "enterprise 1.3.6.1.4.1.50001 trap",
                }
            ),
            "Poll" => format!("gateway polls {} to confirm: {}", s("ups"), s("reason")),
            "PowerBack" => format!(
                "gateway: mains power back on {}; following the recorders back",
                s("ups")
            ),
            "CancelShutdown" => format!("gateway: outage over, tiers {} not shut down", r["tiers"]),
            "Alert" => format!("gateway alert ({}): {}", s("kind"), s("reason")),
            other => format!("gateway: {other} {}", r),
        }
    } else if let Some(a) = r["action"].as_str() {
        match a {
            "Sent" | "Presented" | "Back" if many => return None,
            "Sent" if r["to"].is_null() => format!(
                "gateway → {}: {} (attempt {})",
                s("recorder"),
                s("detail"),
                r["attempt"]
            ),
            "Sent" => format!(
                "gateway → {}: {} to {} (attempt {})",
                s("recorder"),
                s("detail"),
                s("to"),
                r["attempt"]
            ),
            "Presented" => format!(
                "{} polls {}: {} ({})",
                s("recorder"),
                shown_by(&s("recorder")),
                match r["charge"].as_u64() {
                    Some(c) => format!("charge {c}"),
                    // The gateway has not heard the UPS's charge yet (its first poll).
                    None => "no charge yet, the UPS not polled yet".to_string(),
                },
                s("detail")
            ),
            "Back" => format!(
                "gateway: {} is back, {} s after power returned{}",
                s("recorder"),
                r["after_s"],
                if r["late"] == true {
                    " (late: it had been reported not back)"
                } else {
                    ""
                }
            ),
            "NotBack" => format!("gateway: {} NOT back: {}", s("recorder"), s("detail")),
            "NotAcknowledged" => format!(
                "gateway: {} NEVER acknowledged: {}",
                s("recorder"),
                s("detail")
            ),
            _ => return None,
        }
    } else {
        return None;
    };
    Some(line)
}

/// Runs the demo with `n` recorders at `speed`, writing the story to `out`.
pub fn run(n: usize, speed: f64, v3: bool, out: &mut impl Write) -> Result<(), String> {
    if n == 0 || n > 60_000 {
        return Err(format!("--recorders {n}: between 1 and 60000, please"));
    }
    if !(1.0..=1000.0).contains(&speed) {
        return Err(format!("--speed {speed}: between 1 and 1000, please"));
    }
    let limit = raise_fd_limit();
    if (limit as usize) < n + 64 {
        return Err(format!(
            "--recorders {n} needs {} open files; this process may open {limit} (ulimit -n)",
            n + 64
        ));
    }
    let ups = std::net::UdpSocket::bind((UPS_ADDR, 0))
        .map_err(|e| format!("cannot bind the simulated UPS on {UPS_ADDR}: {e}"))?;
    let ups_port = ups.local_addr().map_err(|e| e.to_string())?.port();
    let mut recorder_sockets = Vec::with_capacity(n);
    let site0 = demo_site(n, ups_port, &vec![0; n], v3);
    for r in site0.recorders.iter().take(n) {
        let s = std::net::UdpSocket::bind((r.address, 0))
            .map_err(|e| format!("cannot bind recorder {} on {}: {e}", r.name, r.address))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        recorder_sockets.push(UdpSocket::from_std(s));
    }
    let ports: Vec<u16> = recorder_sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()).unwrap_or(0))
        .collect();
    let site = demo_site(n, ups_port, &ports, v3);
    let ups_v3 = v3.then(|| {
        let mut usm = Usm::new(&site);
        usm.set_local(LocalEngine {
            id: UPS_ENGINE.to_vec(),
            boots: 1,
        });
        UpsV3 {
            usm,
            keys: keys_of(&site, UPS_USER, UPS_ENGINE),
        }
    });
    let recorders_v3 = v3.then(|| RecordersV3::new(site.clone()));
    let many = n > 20;
    writeln!(
        out,
        "trapgate demo: the seed's site on loopback: UPS {} at {UPS_ADDR}, {n} NVRs, a NUT client (nas-01, as Synology DSM) and an apcupsd client (srv-apcupsd), the site's clock at {speed}x{}\n",
        site.upses[0].name,
        if v3 { "; every UPS and recorder on SNMPv3 (authPriv: SHA, AES-128)" } else { "" }
    )
    .map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    let say: Said = Arc::default();
    let (bound_tx, bound_rx) = crossbeam_channel::bounded(1);
    let gw_say = Arc::clone(&say);
    // The gateway's monotonic clock counts from t0, as the story's lines do: a record's
    // own time places it among them (it is reported a little after it was made).
    let shutdown = crate::daemon::Shutdown::new();
    let opts = Options {
        speed,
        time: Some(Arc::new(crate::daemon::clock::OsTime::since(t0))),
        shutdown: Some(shutdown.clone()),
        ..Options::default()
    };
    let clock = Arc::new(std::sync::OnceLock::<crate::daemon::clock::Clock>::new());
    let gw_clock = Arc::clone(&clock);
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let gw_counts = Arc::clone(&counts);
    let gateway = std::thread::spawn(move || {
        let ready_clock = Arc::clone(&gw_clock);
        daemon::run(
            site,
            opts,
            |b| {
                let _ = ready_clock.set(b.clock.clone());
                let _ = bound_tx.send((b.listen[0], b.agent, b.nut, b.nis));
            },
            move |shown| {
                let (at, r) = (shown.at, shown.printed);
                let t = gw_clock
                    .get()
                    .map_or(t0.elapsed().as_secs_f64() * speed, |c| {
                        c.monotonic_at(at) as f64 / 1e9 * speed
                    });
                let key = r["decision"]
                    .as_str()
                    .or(r["action"].as_str())
                    .unwrap_or("")
                    .to_string();
                *gw_counts.lock().unwrap().entry(key).or_default() += 1;
                if let Some(line) = story_line(r, many) {
                    said(&gw_say, t, line);
                }
            },
            || Err("the demo's site does not reload".into()),
        )
    });
    let (traps_at, agent_at, nut_at, nis_at) = bound_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the gateway did not start".to_string())?;
    let (Some(nut_at), Some(nis_at)) = (nut_at, nis_at) else {
        return Err("the gateway did not start its NUT and NIS servers".into());
    };
    let done = Arc::new(AtomicBool::new(false));
    let outlets_restored = Arc::new(AtomicU64::new(0));
    let low_battery_sent = Arc::new(AtomicU64::new(0));
    let ups_polls = Arc::new(AtomicU64::new(0));
    let ups_thread = {
        let sim = UpsSim {
            socket: ups,
            v3: ups_v3,
            outlets_restored: Arc::clone(&outlets_restored),
            low_battery_sent: Arc::clone(&low_battery_sent),
            polls: Arc::clone(&ups_polls),
        };
        let (done, say) = (Arc::clone(&done), Arc::clone(&say));
        std::thread::spawn(move || run_ups(sim, traps_at, speed, t0, done, say))
    };
    let rec_thread = {
        let (done, on) = (Arc::clone(&done), Arc::clone(&outlets_restored));
        std::thread::spawn(move || {
            run_recorders(
                recorder_sockets,
                traps_at,
                agent_at,
                speed,
                on,
                done,
                recorders_v3,
                t0,
            )
        })
    };
    let tcp_thread = {
        let (done, on, say) = (
            Arc::clone(&done),
            Arc::clone(&outlets_restored),
            Arc::clone(&say),
        );
        std::thread::spawn(move || run_tcp_clients(nut_at, nis_at, speed, on, done, say, t0))
    };
    let all = n + 2;
    // Tell the story as it comes, until every recorder is back (or reported not back):
    // in the order things happened, each line held back a moment for a line made
    // earlier and reported later (the gateway's records come through its console).
    let mut pending: Vec<(f64, String)> = Vec::new();
    let hold = 0.1 * speed;
    let finished = loop {
        std::thread::sleep(Duration::from_millis(20));
        pending.append(&mut say.lock().unwrap());
        tell_until(&mut pending, t0.elapsed().as_secs_f64() * speed - hold, out)?;
        let c = counts.lock().unwrap().clone();
        let settled = c.get("Back").copied().unwrap_or(0) + c.get("NotBack").copied().unwrap_or(0);
        if settled >= all {
            break true;
        }
        if t0.elapsed().as_secs_f64() * speed > GIVE_UP {
            break false;
        }
    };
    done.store(true, Ordering::Relaxed);
    let _ = ups_thread.join();
    let told_at = rec_thread
        .join()
        .map_err(|_| "the recorders' thread panicked".to_string())?;
    let tcp_told = tcp_thread
        .join()
        .map_err(|_| "the NUT and apcupsd clients' thread panicked".to_string())?;
    shutdown.stop();
    let stopped = gateway
        .join()
        .map_err(|_| "the gateway thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    pending.append(&mut say.lock().unwrap());
    tell_until(&mut pending, f64::INFINITY, out)?;
    let c = counts.lock().unwrap().clone();
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    let w = |e: std::io::Error| e.to_string();
    writeln!(out).map_err(w)?;
    writeln!(
        out,
        "recorders: {all} ({n} NVRs, a NUT client, an apcupsd client); told: {}; acknowledged: {}; resent: {}; never acknowledged: {}; back after power returned: {}; not back: {}",
        told_at.iter().chain(&tcp_told).filter(|t| t.is_some()).count(),
        get("Acknowledged"),
        stopped.stats.tallies.get(crate::engine::tally::Counter::Resends),
        get("NotAcknowledged"),
        get("Back"),
        get("NotBack")
    )
    .map_err(w)?;
    writeln!(
        out,
        "the UPS was polled {} times, by the gateway alone; the virtual UPS answered the recorders {} times",
        ups_polls.load(Ordering::Relaxed),
        stopped.stats.tallies.get(crate::engine::tally::Counter::AgentAnswers)
    )
    .map_err(w)?;
    let sent = low_battery_sent.load(Ordering::Relaxed);
    let after: Vec<u64> = told_at
        .iter()
        .flatten()
        .filter(|&&t| t >= sent)
        .map(|t| t - sent)
        .collect();
    if sent > 0 && !after.is_empty() {
        let mut h =
            Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
        for a in &after {
            h.saturating_record((*a).max(1));
        }
        writeln!(
            out,
            "lowBattery trap → NVRs told ({} told then, confirm-by-poll included): p50 {:.2} ms, last {:.2} ms",
            after.len(),
            h.value_at_quantile(0.5) as f64 / 1e6,
            h.max() as f64 / 1e6
        )
        .map_err(w)?;
    }
    write!(out, "{}", stopped.stats.latency.summary_text()).map_err(w)?;
    if !finished {
        return Err("the demo ran out of time before every recorder was accounted for".into());
    }
    Ok(())
}
