//! `trapgate demo`: the seed's story on loopback, over real sockets, told as it happens.
//!
//! The gateway runs with the embedded seed site, moved onto 127.0.0.0/8 (every address
//! there is the machine's own): the UPS at 127.0.0.250, the recorders at 127.0.0.244
//! and 127.0.0.251 (or 127.1.x.y for `--recorders N`). A simulated UPS sends its traps
//! and answers the gateway's polls; simulated recorders poll the gateway (their "UPS"),
//! acknowledge the shutdown trap, shut down, lose power when the UPS cuts its outlets,
//! and boot and poll again when power returns. The site's clock runs `speed` times
//! faster than the wall clock, so the seed's minutes pass in seconds.

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

use crate::daemon::server::now;
use crate::daemon::socket::raise_fd_limit;
use crate::daemon::{self, Options};
use crate::engine::config::{RecorderKind, Secs, Site};
use crate::wire::oid::oid;
use crate::wire::{Message, Pdu, PduType, Value, VarBind, Version, encode};

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

/// The demo site: the seed's, on loopback, with `n` recorders.
fn demo_site(n: usize, ups_port: u16, recorder_ports: &[u16]) -> Site {
    let mut site = Site::default_site();
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
            r
        })
        .collect();
    site
}

/// What the simulated UPS does and has seen.
struct UpsSim {
    socket: std::net::UdpSocket,
    /// How many times the outlets came back on after being cut.
    outlets_restored: Arc<AtomicU64>,
    /// Real ns at which the lowBattery trap left.
    low_battery_sent: Arc<AtomicU64>,
    polls: Arc<AtomicU64>,
}

/// Runs the UPS's side of the story until `done`.
fn run_ups(
    sim: UpsSim,
    gateway: SocketAddr,
    speed: f64,
    t0: Instant,
    done: Arc<AtomicBool>,
    say: Arc<Mutex<Vec<String>>>,
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
            let trap = v1_trap("1.3.6.1.4.1.318", agent, specific, ticks, Some(text));
            let _ = sim.socket.send_to(&trap, gateway);
        };
        if step == 0 && t >= MAINS_FAIL {
            step = 1;
            on_battery = true;
            apc(
                5,
                "UPS: On battery power in response to an input power problem.",
            );
            say.lock().unwrap().push(format!(
                "{t:7.1} s  UPS: mains power fails; sends upsOnBattery to the gateway"
            ));
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
            say.lock().unwrap().push(format!("{t:7.1} s  UPS: battery low ({charge} %); sends the seed's lowBattery trap; its outlets go off in 180 s"));
        }
        if step == 2 && outlets_off_at.is_some_and(|o| t >= o) {
            step = 3;
            say.lock().unwrap().push(format!(
                "{t:7.1} s  UPS: outlets off (outlet_off_delay 3 min)"
            ));
        }
        if step == 3 && t >= MAINS_BACK {
            step = 4;
            on_battery = false;
            low = false;
            apc(9, "UPS: Utility power has been restored.");
            sim.outlets_restored.fetch_add(1, Ordering::Relaxed);
            say.lock().unwrap().push(format!("{t:7.1} s  UPS: mains power is back; sends powerRestored; outlets on by themselves (restart = auto)"));
        }
        let Ok((n, from)) = sim.socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(m) = Message::parse(&buf[..n], &arena) else {
            continue;
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
        let _ = sim
            .socket
            .send_to(&request(PduType::RESPONSE, r.request_id, &answer), from);
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

/// Runs every recorder's side until `done`; returns the real ns at which each recorder
/// first received its shutdown trap.
fn run_recorders(
    sockets: Vec<UdpSocket>,
    gateway_traps: SocketAddr,
    gateway_agent: SocketAddr,
    speed: f64,
    outlets_restored: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
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
    let get = |id: i32| {
        request(
            PduType::GET_REQUEST,
            id,
            &[VarBind {
                name: charge.as_oid(),
                value: Value::Null,
            }],
        )
    };
    let ack = |i: usize| {
        let a = match sockets[i].local_addr() {
            Ok(SocketAddr::V4(a)) => a.ip().octets(),
            _ => [0; 4],
        };
        v1_trap("1.3.6.1.4.1.50001", a, 200, 0, None)
    };
    // Every recorder polls its UPS (the gateway) once at start, as an NVR does.
    for (i, s) in sockets.iter().enumerate() {
        let _ = s.send_to(&get(i as i32 + 1), gateway_agent);
    }
    while !done.load(Ordering::Relaxed) {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(5)));
        arena.reset();
        for e in events.iter() {
            let i = e.token().0;
            while let Ok((len, _)) = sockets[i].recv_from(&mut buf) {
                let Ok(m) = Message::parse(&buf[..len], &arena) else {
                    continue;
                };
                match (&m.pdu, state[i]) {
                    // The shutdown trap: ask the UPS for its charge, as the seed's NVR does.
                    (Pdu::TrapV1(t), Rec::Up | Rec::Told) if t.specific_trap == 7 => {
                        told_at[i].get_or_insert(now().0);
                        state[i] = Rec::Told;
                        let _ = sockets[i].send_to(&get(1_000_000 + i as i32), gateway_agent);
                    }
                    // The charge it was shown: acknowledge and shut down.
                    (Pdu::Request(r), Rec::Told) if r.kind == PduType::RESPONSE => {
                        let _ = sockets[i].send_to(&ack(i), gateway_traps);
                        state[i] = Rec::ShuttingDown(Instant::now() + real(90.0));
                    }
                    // A trap told again while shutting down: acknowledge again.
                    (Pdu::TrapV1(t), Rec::ShuttingDown(_)) if t.specific_trap == 7 => {
                        let _ = sockets[i].send_to(&ack(i), gateway_traps);
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
                    let _ = sockets[i].send_to(&get(2_000_000 + i as i32), gateway_agent);
                    Rec::Up
                }
                s => s,
            };
        }
    }
    told_at
}

/// One record of the gateway as a line of the story, or None to leave it out.
fn story_line(t: f64, r: &Json, many: bool) -> Option<String> {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let line = if let Some(d) = r["decision"].as_str() {
        match d {
            "ShutdownRecorder" if many => return None,
            "ShutdownRecorder" => format!(
                "gateway decides: {} shuts down now ({}; must be down by {})",
                s("recorder"),
                s("reason"),
                s("deadline")
            ),
            "PresentCharge" if many => return None,
            "PresentCharge" => match r["percent"].as_u64() {
                Some(p) => format!(
                    "gateway: the virtual UPS shows {} a charge of {p} %",
                    s("recorder")
                ),
                None => format!(
                    "gateway: the virtual UPS shows {} its UPS's real values again",
                    s("recorder")
                ),
            },
            "Acknowledged" if many => return None,
            "Acknowledged" => format!(
                "gateway: {} acknowledged (enterprise 1.3.6.1.4.1.50001 trap)",
                s("recorder")
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
            "Sent" => format!(
                "gateway → {}: {} to {} (attempt {})",
                s("recorder"),
                s("detail"),
                s("to"),
                r["attempt"]
            ),
            "Presented" => format!(
                "{} polls the gateway: charge {} ({})",
                s("recorder"),
                r["charge"],
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
    Some(format!("{t:7.1} s  {line}"))
}

/// Runs the demo with `n` recorders at `speed`, writing the story to `out`.
pub fn run(n: usize, speed: f64, out: &mut impl Write) -> Result<(), String> {
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
    let site0 = demo_site(n, ups_port, &vec![0; n]);
    for r in &site0.recorders {
        let s = std::net::UdpSocket::bind((r.address, 0))
            .map_err(|e| format!("cannot bind recorder {} on {}: {e}", r.name, r.address))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        recorder_sockets.push(UdpSocket::from_std(s));
    }
    let ports: Vec<u16> = recorder_sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()).unwrap_or(0))
        .collect();
    let site = demo_site(n, ups_port, &ports);
    let many = n > 20;
    writeln!(
        out,
        "trapgate demo: the seed's site on loopback: UPS {} at {UPS_ADDR}, {n} recorders, the site's clock at {speed}x\n",
        site.upses[0].name
    )
    .map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    let say = Arc::new(Mutex::new(Vec::<String>::new()));
    let (bound_tx, bound_rx) = crossbeam_channel::bounded(1);
    let gw_say = Arc::clone(&say);
    let opts = Options {
        speed,
        ..Options::default()
    };
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let gw_counts = Arc::clone(&counts);
    let gateway = std::thread::spawn(move || {
        daemon::run(
            site,
            opts,
            |b| {
                let _ = bound_tx.send((b.listen[0], b.agent));
            },
            |_, r| {
                let t = t0.elapsed().as_secs_f64() * speed;
                let key = r["decision"]
                    .as_str()
                    .or(r["action"].as_str())
                    .unwrap_or("")
                    .to_string();
                *gw_counts.lock().unwrap().entry(key).or_default() += 1;
                if let Some(line) = story_line(t, r, many) {
                    gw_say.lock().unwrap().push(line);
                }
            },
            || Err("the demo's site does not reload".into()),
        )
    });
    let (traps_at, agent_at) = bound_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the gateway did not start".to_string())?;
    let done = Arc::new(AtomicBool::new(false));
    let outlets_restored = Arc::new(AtomicU64::new(0));
    let low_battery_sent = Arc::new(AtomicU64::new(0));
    let ups_polls = Arc::new(AtomicU64::new(0));
    let ups_thread = {
        let sim = UpsSim {
            socket: ups,
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
            run_recorders(recorder_sockets, traps_at, agent_at, speed, on, done)
        })
    };
    // Tell the story as it comes, until every recorder is back (or reported not back).
    let mut printed = 0;
    let finished = loop {
        std::thread::sleep(Duration::from_millis(20));
        let lines: Vec<String> = say.lock().unwrap()[printed..].to_vec();
        printed += lines.len();
        for l in lines {
            writeln!(out, "{l}").map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
        }
        let c = counts.lock().unwrap().clone();
        let settled = c.get("Back").copied().unwrap_or(0) + c.get("NotBack").copied().unwrap_or(0);
        if settled >= n {
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
    signal_hook::low_level::raise(libc::SIGTERM).map_err(|e| e.to_string())?;
    let stopped = gateway
        .join()
        .map_err(|_| "the gateway thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    for l in say.lock().unwrap()[printed..].iter() {
        writeln!(out, "{l}").map_err(|e| e.to_string())?;
    }
    let c = counts.lock().unwrap().clone();
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    let w = |e: std::io::Error| e.to_string();
    writeln!(out).map_err(w)?;
    writeln!(
        out,
        "recorders: {n}; told: {}; acknowledged: {}; resent: {}; never acknowledged: {}; back after power returned: {}; not back: {}",
        told_at.iter().filter(|t| t.is_some()).count(),
        get("Acknowledged"),
        stopped.stats.station.resends,
        get("NotAcknowledged"),
        get("Back"),
        get("NotBack")
    )
    .map_err(w)?;
    writeln!(
        out,
        "the UPS was polled {} times, by the gateway alone; the virtual UPS answered the recorders {} times",
        ups_polls.load(Ordering::Relaxed),
        stopped.stats.station.agent_answers
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
            "lowBattery trap → recorders told ({} recorders, confirm-by-poll included): p50 {:.2} ms, last {:.2} ms",
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
