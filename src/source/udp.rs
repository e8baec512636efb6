//! The live source: a mio reactor over the gateway's UDP sockets, reading in batches
//! with `recvmmsg` until each socket is empty, feeding the same pipeline and policy as a
//! replay, with the OS clock as the time. SIGINT and SIGTERM stop it cleanly.
//!
//! This first receive path runs on one thread: decode, classify and decide inline, the
//! arena reset per batch. SIGHUP reloads the site file, keeping the outages under way.
//! Worker threads sharded by UPS come with the rest of the live gateway.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bumpalo::Bump;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;

use super::frame::Datagram;
use super::socket::{RecvBatch, bind_udp, kernel_drops};
use crate::config::Site;
use crate::metrics::{Latency, Live, prometheus};
use crate::pipeline::{Counters, Outcome, Pipeline, decide};
use crate::policy::{Decider, Decision};
use crate::time::Timestamp;

/// The time now, from the OS clock: only sources read it.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_nanos() as u64)
}

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// A listen address could not be bound.
    Bind(SocketAddr, io::Error),
    /// The reactor or the signal handlers could not be set up.
    Setup(io::Error),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Bind(addr, e) => {
                let hint = match e.kind() {
                    io::ErrorKind::AddrInUse => {
                        " (is another trap receiver, such as snmptrapd, listening there?)"
                    }
                    io::ErrorKind::PermissionDenied => {
                        " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                    }
                    _ => "",
                };
                write!(f, "cannot listen on {addr}: {e}{hint}")
            }
            StartError::Setup(e) => write!(f, "cannot set up the event loop: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// What the gateway saw when it stopped.
#[derive(Clone, Debug)]
pub struct Stopped {
    /// The pipeline's counters.
    pub counters: Counters,
    /// The live path's own counts: foreign sources, truncated, decisions, refused,
    /// kernel drops.
    pub live: Live,
    /// The signal that stopped it.
    pub signal: i32,
    /// Arrival → decision-ready latency, per event kind.
    pub latency: Latency,
}

/// Serves the latest metrics snapshot over HTTP (GET /metrics) on its own thread, so a
/// slow scraper never holds up the reactor; the reactor only swaps the snapshot in.
fn serve_metrics(listener: TcpListener, snapshot: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut request = [0u8; 2048];
            let mut got = 0;
            while got < request.len() {
                match stream.read(&mut request[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got += n;
                        if request[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let line = String::from_utf8_lossy(&request[..got]);
            let response = if line.starts_with("GET /metrics") || line.starts_with("GET / ") {
                let body = snapshot.lock().map(|s| s.clone()).unwrap_or_default();
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
}

const SIGNALS: Token = Token(usize::MAX);
/// How often the metrics snapshot is refreshed, at most.
const PUBLISH: Duration = Duration::from_secs(1);

/// Runs the gateway for `site` on `listen` until SIGINT or SIGTERM. `ready` learns the
/// bound addresses (port 0 resolved) once the sockets are open; `decided` gets every
/// decision with its time and the site it names; on SIGHUP `reload` gives the site to
/// carry on with (a broken one is reported and the running site kept).
pub fn run(
    site: Site,
    listen: &[SocketAddr],
    metrics: Option<SocketAddr>,
    ready: impl FnOnce(&[SocketAddr], Option<SocketAddr>),
    mut decided: impl FnMut(Timestamp, &Decision, &Site),
    mut reload: impl FnMut() -> Result<Site, String>,
) -> Result<Stopped, StartError> {
    let mut sockets = Vec::with_capacity(listen.len());
    for addr in listen {
        let std_socket = bind_udp(*addr).map_err(|e| StartError::Bind(*addr, e))?;
        sockets.push(UdpSocket::from_std(std_socket));
    }
    let bound: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<io::Result<_>>()
        .map_err(StartError::Setup)?;
    let mut poll = Poll::new().map_err(StartError::Setup)?;
    for (i, s) in sockets.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .map_err(StartError::Setup)?;
    }
    let mut signals =
        Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP]).map_err(StartError::Setup)?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(StartError::Setup)?;
    let snapshot = Arc::new(Mutex::new(String::new()));
    let metrics_at = match metrics {
        Some(addr) => {
            let listener = TcpListener::bind(addr).map_err(|e| StartError::Bind(addr, e))?;
            let at = listener.local_addr().map_err(StartError::Setup)?;
            serve_metrics(listener, Arc::clone(&snapshot));
            Some(at)
        }
        None => None,
    };
    ready(&bound, metrics_at);

    let ports: Vec<u16> = bound.iter().map(|a| a.port()).collect();
    // The cheap check before decoding: only the site's UPSes and recorders are heard, so
    // a flood from elsewhere cannot starve their traps.
    let heard = |site: &Site| -> HashSet<IpAddr> {
        site.upses
            .iter()
            .map(|u| u.address)
            .chain(site.recorders.iter().map(|r| r.address))
            .collect()
    };
    let mut known = heard(&site);
    let mut foreign = 0u64;
    let live_counts = |decider: &Decider, foreign, truncated, decisions| {
        let drops: Vec<u64> = bound.iter().filter_map(|a| kernel_drops(*a)).collect();
        Live {
            foreign,
            truncated,
            decisions,
            refused: decider.refused(),
            kernel_drops: (drops.len() == bound.len()).then(|| drops.iter().sum()),
        }
    };
    let mut pipeline = Pipeline::new(site.classifier(), &ports);
    let mut decider = Decider::new(site);
    let mut events = Events::with_capacity(64);
    let mut batch = RecvBatch::new();
    let mut arena = Bump::with_capacity(256 * 1024);
    let mut truncated = 0u64;
    let mut decisions = 0u64;
    let mut latency = Latency::new();
    let mut published = Timestamp(0);
    let mut drain = |d: &mut Decider, at: Timestamp, decisions: &mut u64| {
        while let Some(x) = d.poll_decision() {
            *decisions += 1;
            decided(at, &x, d.site());
        }
    };
    drain(&mut decider, now(), &mut decisions);
    loop {
        let mut timeout = decider
            .poll_timeout()
            .map(|due| Duration::from_nanos(due.0.saturating_sub(now().0)));
        if metrics_at.is_some() {
            // Wake at least every second to publish fresh metrics.
            timeout = Some(timeout.map_or(PUBLISH, |t| t.min(PUBLISH)));
        }
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            return Err(StartError::Setup(e));
        }
        for event in events.iter() {
            if event.token() == SIGNALS {
                for signal in signals.pending() {
                    if signal == libc::SIGHUP {
                        match reload() {
                            Ok(site) => {
                                eprintln!(
                                    "trapgate: SIGHUP: site reloaded ({} UPS, {} recorders); outages under way go on",
                                    site.upses.len(),
                                    site.recorders.len()
                                );
                                known = heard(&site);
                                pipeline.set_classifier(site.classifier());
                                decider.reload(site);
                                drain(&mut decider, now(), &mut decisions);
                            }
                            Err(e) => eprintln!("trapgate: SIGHUP: keeping the running site: {e}"),
                        }
                        continue;
                    }
                    return Ok(Stopped {
                        counters: pipeline.counters().clone(),
                        live: live_counts(&decider, foreign, truncated, decisions),
                        signal,
                        latency,
                    });
                }
                continue;
            }
            let i = event.token().0;
            let local = bound[i];
            // Readiness is edge-triggered: read until the socket is empty.
            loop {
                match batch.recv(sockets[i].as_raw_fd()) {
                    Ok(0) => break,
                    Ok(n) => {
                        let at = now();
                        arena.reset();
                        for k in 0..n {
                            let Some((src, payload, cut)) = batch.get(k) else {
                                continue;
                            };
                            // The kernel's receive time is the datagram's arrival.
                            let at = batch.arrival(k).map_or(at, Timestamp);
                            if cut {
                                truncated += 1;
                                continue;
                            }
                            if !known.contains(&src.ip()) {
                                foreign += 1;
                                continue;
                            }
                            let d = Datagram {
                                src: src.ip(),
                                dst: local.ip(),
                                src_port: src.port(),
                                dst_port: local.port(),
                                payload,
                            };
                            if let Outcome::Message(d, m, class) =
                                pipeline.process_datagram(d, &arena)
                            {
                                decide(&mut decider, pipeline.classifier(), at, &d, &m, class);
                                if let Some(c) = class {
                                    latency.record(c.event, now().0.saturating_sub(at.0));
                                }
                            }
                        }
                        drain(&mut decider, at, &mut decisions);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        eprintln!("trapgate: receive on {local}: {e}");
                        break;
                    }
                }
            }
        }
        let at = now();
        while let Some(due) = decider.poll_timeout().filter(|due| *due <= at) {
            decider.handle_timeout(due);
            drain(&mut decider, due, &mut decisions);
        }
        if metrics_at.is_some() && at.0 >= published.0 + PUBLISH.as_nanos() as u64 / 2 {
            published = at;
            let live = live_counts(&decider, foreign, truncated, decisions);
            let text = prometheus(pipeline.counters(), &live, &latency);
            if let Ok(mut shared) = snapshot.lock() {
                *shared = text;
            }
        }
    }
}
