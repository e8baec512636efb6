//! Telling the site's other systems (`[[notify]]`): each target has a bounded queue and
//! a thread of its own, so that a slow, dead or unreachable one never holds up a
//! decision or an order. The decision thread offers each record once the turn's orders
//! have left (a shared reference, one copy of the record for all targets), a turn's
//! records to a target in one hand-off (one wake-up); what a full queue has no room for
//! is dropped, counted. Each thread writes its kind's message (`crate::engine::tell`)
//! and sends it: syslog over UDP, TCP (RFC 6587's octet counting) or TLS (RFC 5425),
//! XProtect's event server a line on TCP, a webhook a POST (ureq), an MQTT broker its
//! event and retained state (rumqttc), each connection made again with a back-off
//! (0.5 s doubling to 30 s) when it fails.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::engine::record::Record;
use crate::engine::station::NotifyRow;
use crate::engine::tell::{self, Kind, Target, Transport};
use crate::time::Timestamp;

/// Records waiting for one target, at most.
pub const QUEUE: usize = 4096;
/// A target's dropped records are journaled at most this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// A webhook's tries for one record.
const WEBHOOK_TRIES: u32 = 5;

/// What one target counted.
#[derive(Debug, Default)]
pub struct Counts {
    /// Messages it took.
    pub sent: AtomicU64,
    /// Records it was never told: its queue full, or every try failed.
    pub dropped: AtomicU64,
    /// Sends or connections that failed (each try).
    pub failed: AtomicU64,
    /// Records waiting now.
    pub queued: AtomicU64,
    /// Whether its connection is up (UDP: always).
    pub connected: AtomicBool,
}

/// One record to tell: its time on the station's timeline, the wall clock's lead then.
#[derive(Clone)]
struct Item {
    at: Timestamp,
    offset: i64,
    record: Arc<Record>,
}

/// What an MQTT target's thread takes: a record, or the site's state (the status page's
/// JSON) to keep retained.
enum MqttItem {
    Records(Vec<Item>),
    State(Arc<serde_json::Value>),
}

struct Running {
    target: Target,
    /// A turn's records at a time (one wake-up a turn), `QUEUE` records waiting at most.
    tx: Option<Sender<Vec<Item>>>,
    /// An MQTT target's queue (its `tx` is None).
    mqtt: Option<Sender<MqttItem>>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// When its drops were last journaled, and how many there were then.
    said: (Instant, u64),
}

impl Running {
    fn start(target: Target, host: &Arc<str>) -> Running {
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (target2, counts2, stop2, host2) = (
            target.clone(),
            Arc::clone(&counts),
            Arc::clone(&stop),
            Arc::clone(host),
        );
        let spawn = |f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name("trapgate-notify".into())
                .spawn(f)
                .ok()
        };
        let (tx, mqtt, thread) = if matches!(target.kind, Kind::Mqtt { .. }) {
            let (tx, rx) = crossbeam_channel::bounded(QUEUE);
            let thread = spawn(Box::new(move || {
                serve_mqtt(&target2, &rx, &counts2, &stop2, &host2)
            }));
            (None, Some(tx), thread)
        } else {
            let (tx, rx) = crossbeam_channel::bounded(QUEUE);
            let thread = spawn(Box::new(move || {
                serve(&target2, &rx, &counts2, &stop2, &host2)
            }));
            (Some(tx), None, thread)
        };
        Running {
            target,
            tx,
            mqtt,
            counts,
            stop,
            thread,
            said: (Instant::now(), 0),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.tx.take());
        drop(self.mqtt.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every target's thread.
pub struct Tellers {
    running: Vec<Running>,
    host: Arc<str>,
    /// Records were offered since the state was last told (MQTT's retained state).
    state_dirty: bool,
}

impl Tellers {
    /// A thread for each of `targets`.
    pub fn start(targets: &[Target]) -> Tellers {
        let host: Arc<str> = crate::daemon::receive::host_name().into();
        Tellers {
            running: targets
                .iter()
                .map(|t| Running::start(t.clone(), &host))
                .collect(),
            host,
            state_dirty: true,
        }
    }

    /// Whether a target keeps the site's state (MQTT) and it changed since it was told.
    pub fn state_due(&self) -> bool {
        self.state_dirty && self.running.iter().any(|r| r.mqtt.is_some())
    }

    /// Tells the targets that keep it (MQTT) the site's state: the status page's JSON.
    pub fn offer_state(&mut self, status: serde_json::Value) {
        self.state_dirty = false;
        let status = Arc::new(status);
        for run in &self.running {
            if let Some(tx) = &run.mqtt
                && tx.try_send(MqttItem::State(Arc::clone(&status))).is_err()
            {
                run.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether there is any target.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Offers `records` (each at its time, with the wall clock's lead then) to every
    /// target that takes it; never waits.
    pub fn offer<'a>(&mut self, records: impl Iterator<Item = (Timestamp, i64, &'a Record)>) {
        // Each target's share of this turn, handed over at once: one wake-up a target.
        let mut batches: Vec<Vec<Item>> = vec![Vec::new(); self.running.len()];
        for (at, offset, r) in records {
            self.state_dirty = true;
            let mut shared: Option<Arc<Record>> = None;
            for (run, batch) in self.running.iter().zip(&mut batches) {
                if run.target.wants.takes(r) {
                    let record = Arc::clone(shared.get_or_insert_with(|| Arc::new(r.clone())));
                    batch.push(Item { at, offset, record });
                }
            }
        }
        for (run, mut batch) in self.running.iter().zip(batches) {
            if batch.is_empty() {
                continue;
            }
            // What the queue has no room for is dropped, counted.
            let room = (QUEUE as u64).saturating_sub(run.counts.queued.load(Ordering::Relaxed));
            let over = batch.len().saturating_sub(room as usize);
            batch.truncate(batch.len() - over);
            let n = batch.len() as u64;
            let sent = n > 0
                && match (&run.tx, &run.mqtt) {
                    (Some(tx), _) => tx.try_send(batch).is_ok(),
                    (_, Some(tx)) => !matches!(
                        tx.try_send(MqttItem::Records(batch)),
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
                    ),
                    _ => false,
                };
            if sent {
                run.counts.queued.fetch_add(n, Ordering::Relaxed);
            }
            let dropped = over as u64 + if sent { 0 } else { n };
            run.counts.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Takes the targets of a reloaded site: one that stays (the same kind, place and
    /// settings) keeps its thread, its queue and its counts; one gone is stopped once
    /// its queue is sent (or its tries spent); a new one starts.
    pub fn reload(&mut self, targets: &[Target]) {
        let mut old = std::mem::take(&mut self.running);
        for t in targets {
            match old.iter().position(|r| r.target == *t) {
                Some(i) => self.running.push(old.swap_remove(i)),
                None => self.running.push(Running::start(t.clone(), &self.host)),
            }
        }
        for mut gone in old {
            // Its thread sends what it holds, then ends (a dead target's tries are
            // cut short by the stop).
            drop(gone.tx.take());
            drop(gone.mqtt.take());
            std::thread::spawn(move || gone.stop());
        }
    }

    /// Each target's counts.
    pub fn rows(&self) -> Vec<NotifyRow> {
        self.running
            .iter()
            .map(|r| NotifyRow {
                target: r.target.label(),
                sent: r.counts.sent.load(Ordering::Relaxed),
                dropped: r.counts.dropped.load(Ordering::Relaxed),
                failed: r.counts.failed.load(Ordering::Relaxed),
                queued: r.counts.queued.load(Ordering::Relaxed),
                connected: r.counts.connected.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The targets that dropped records since they last said so, at most once a
    /// minute each: (target, records dropped since).
    pub fn dropped_since(&mut self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for r in &mut self.running {
            let dropped = r.counts.dropped.load(Ordering::Relaxed);
            if dropped > r.said.1 && (r.said.1 == 0 || r.said.0.elapsed() >= SUMMARY_EVERY) {
                out.push((r.target.label(), dropped - r.said.1));
                r.said = (Instant::now(), dropped);
            }
        }
        out
    }

    /// Stops every thread once it has sent what it holds (a dead target's at once).
    pub fn stop(&mut self) {
        for r in &mut self.running {
            drop(r.tx.take());
            drop(r.mqtt.take());
        }
        // Half a second for the queues to empty, then stopped.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until
            && self
                .running
                .iter()
                .any(|r| r.counts.queued.load(Ordering::Relaxed) > 0)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in &mut self.running {
            r.stop();
        }
    }
}

impl Drop for Tellers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TLS client's settings for a target (RFC 5425): the CAs from its `ca_file`, the
/// name its certificate must carry.
struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

impl TlsClient {
    fn new(trust: &tell::TlsTrust) -> Result<TlsClient, String> {
        let name = rustls::pki_types::ServerName::try_from(trust.server_name.clone())
            .map_err(|e| format!("{:?}: {e}", trust.server_name))?;
        Ok(TlsClient {
            config: client_config(&trust.ca_file)?,
            name,
        })
    }
}

/// A TLS client's configuration trusting the CAs of the PEM file `ca_file` (ring, as
/// ureq's webhook client uses: aws-lc-rs would build its C and assembly with cmake; a
/// syslog server or a broker needs no post-quantum key exchange).
fn client_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("{ca_file}: {e}"))?;
    for c in certs {
        let c = c.map_err(|e| format!("{ca_file}: {e}"))?;
        roots.add(c).map_err(|e| format!("{ca_file}: {e}"))?;
    }
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection to a stream target, made again when it fails, with a back-off.
struct Stream {
    to: SocketAddr,
    /// TLS over it, where the target asks.
    tls: Option<TlsClient>,
    conn: Option<Box<dyn std::io::Write + Send>>,
    /// No try before this (the back-off).
    next_try: Instant,
    backoff: Duration,
}

impl Stream {
    fn new(to: SocketAddr, tls: Option<TlsClient>) -> Stream {
        Stream {
            to,
            tls,
            conn: None,
            next_try: Instant::now(),
            backoff: Duration::from_millis(500),
        }
    }

    /// Writes `bytes`, connecting first if need be; false if it could not (counted).
    fn write(&mut self, bytes: &[u8], counts: &Counts) -> bool {
        for _ in 0..2 {
            if self.conn.is_none() {
                if Instant::now() < self.next_try {
                    return false;
                }
                match TcpStream::connect_timeout(&self.to, Duration::from_secs(2)) {
                    Ok(c) => {
                        let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
                        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                        let _ = c.set_nodelay(true);
                        self.conn = Some(match &self.tls {
                            // The handshake is made with the first write.
                            Some(t) => match rustls::ClientConnection::new(
                                Arc::clone(&t.config),
                                t.name.clone(),
                            ) {
                                Ok(session) => Box::new(rustls::StreamOwned::new(session, c)),
                                Err(_) => {
                                    counts.failed.fetch_add(1, Ordering::Relaxed);
                                    return false;
                                }
                            },
                            None => Box::new(c),
                        });
                        self.backoff = Duration::from_millis(500);
                        counts.connected.store(true, Ordering::Relaxed);
                    }
                    Err(_) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        self.next_try = Instant::now() + self.backoff;
                        self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
                        return false;
                    }
                }
            }
            let c = self.conn.as_mut().expect("connected");
            match c.write_all(bytes).and_then(|()| c.flush()) {
                Ok(()) => return true,
                Err(_) => {
                    // Broken: once more on a fresh connection.
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    counts.connected.store(false, Ordering::Relaxed);
                    self.conn = None;
                }
            }
        }
        false
    }
}

/// One target's thread: takes its queue until stopped.
fn serve(
    target: &Target,
    rx: &Receiver<Vec<Item>>,
    counts: &Counts,
    stop: &AtomicBool,
    host: &str,
) {
    let pid = std::process::id();
    let udp = match &target.kind {
        Kind::Syslog {
            transport: Transport::Udp,
            ..
        } => {
            let any: SocketAddr = if target.to.is_ipv4() {
                "0.0.0.0:0".parse().expect("an address")
            } else {
                "[::]:0".parse().expect("an address")
            };
            let s = UdpSocket::bind(any).ok();
            counts.connected.store(s.is_some(), Ordering::Relaxed);
            s
        }
        _ => None,
    };
    if matches!(target.kind, Kind::Webhook { .. }) {
        counts.connected.store(true, Ordering::Relaxed);
    }
    let tls = match &target.kind {
        Kind::Syslog { tls: Some(t), .. } => match TlsClient::new(t) {
            Ok(c) => Some(c),
            Err(e) => {
                // Said once; every record is then counted not told.
                crate::daemon::console::warn(format!(
                    "trapgate: [[notify]] {}: cannot set up TLS: {e}",
                    target.label()
                ));
                None
            }
        },
        _ => None,
    };
    let tls_broken = matches!(&target.kind, Kind::Syslog { tls: Some(_), .. }) && tls.is_none();
    let mut stream = Stream::new(target.to, tls);
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false);
    if let Kind::Webhook {
        ca_file: Some(ca), ..
    } = &target.kind
    {
        // The site's own CAs for an https webhook (else Mozilla's roots).
        let certs: Vec<ureq::tls::Certificate<'static>> = std::fs::read(ca)
            .map(|pem| {
                ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if certs.is_empty() {
            crate::daemon::console::warn(format!(
                "trapgate: [[notify]] {}: no certificate in {ca}: its certificate cannot be checked, nothing is sent to it",
                target.label()
            ));
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    let agent = config.build().new_agent();
    // A record that could not be told waits here for the next try (a stream's
    // back-off); the queue behind it keeps filling, and drops when full.
    let mut held: Option<(Item, u32)> = None;
    // The rest of the last batch taken.
    let mut pending = std::collections::VecDeque::new();
    loop {
        // Stopped (the gateway gave the queues their half second): what is left is
        // dropped, counted, not tried (a target that never answers would hold the stop
        // five seconds a record).
        if stop.load(Ordering::Relaxed) {
            let mut left = u64::from(held.take().is_some()) + pending.len() as u64;
            pending.clear();
            while let Ok(batch) = rx.try_recv() {
                left += batch.len() as u64;
            }
            counts.queued.fetch_sub(left, Ordering::Relaxed);
            counts.dropped.fetch_add(left, Ordering::Relaxed);
            return;
        }
        let (item, tries) = match held.take() {
            Some(h) => h,
            None => match pending.pop_front() {
                Some(i) => (i, 0),
                None => match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(batch) => {
                        pending.extend(batch);
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            },
        };
        let done = |counts: &Counts, told: bool| {
            counts.queued.fetch_sub(1, Ordering::Relaxed);
            let c = if told { &counts.sent } else { &counts.dropped };
            c.fetch_add(1, Ordering::Relaxed);
        };
        let r = &*item.record;
        let told = match &target.kind {
            Kind::Syslog { .. } if tls_broken => false,
            Kind::Syslog {
                transport,
                facility,
                enterprise,
                ..
            } => {
                let Some(m) = tell::syslog(
                    r,
                    (item.at, item.offset),
                    (*facility, *enterprise),
                    (host, pid),
                ) else {
                    done(counts, false);
                    continue;
                };
                match transport {
                    Transport::Udp => udp
                        .as_ref()
                        .is_some_and(|s| s.send_to(m.as_bytes(), target.to).is_ok()),
                    Transport::Tcp | Transport::Tls => {
                        stream.write(format!("{} {m}", m.len()).as_bytes(), counts)
                    }
                }
            }
            Kind::Milestone => match tell::milestone_line(r) {
                Some(l) => stream.write(l.as_bytes(), counts),
                None => false,
            },
            // Served by `serve_mqtt`.
            Kind::Mqtt { .. } => false,
            Kind::Webhook { url, header, .. } => {
                match tell::webhook_body(r, item.at, item.offset) {
                    Some(body) => {
                        let mut req = agent.post(url).header("Content-Type", "application/json");
                        if let Some((name, value)) = header {
                            req = req.header(name, value);
                        }
                        matches!(req.send(&body[..]), Ok(resp) if resp.status().is_success())
                    }
                    None => false,
                }
            }
        };
        if matches!(target.kind, Kind::Webhook { .. }) {
            // A webhook is "connected" while its last POST was taken.
            counts.connected.store(told, Ordering::Relaxed);
        }
        if told {
            done(counts, true);
            continue;
        }
        // A stream counts its own failures (a try within its back-off is none).
        let stream_kind = matches!(
            target.kind,
            Kind::Milestone
                | Kind::Syslog {
                    transport: Transport::Tcp | Transport::Tls,
                    ..
                }
        ) && !tls_broken;
        if !stream_kind {
            counts.failed.fetch_add(1, Ordering::Relaxed);
        }
        let tries = tries + 1;
        let gave_up = stop.load(Ordering::Relaxed)
            || match target.kind {
                Kind::Webhook { .. } => tries >= WEBHOOK_TRIES,
                // A datagram is not tried again.
                Kind::Syslog {
                    transport: Transport::Udp,
                    ..
                } => true,
                // Nor what has no TLS to go in.
                Kind::Syslog { .. } if tls_broken => true,
                // A stream waits for its connection as long as it runs (its queue,
                // bounded, drops what comes meanwhile).
                _ => false,
            };
        if gave_up {
            done(counts, false);
            continue;
        }
        // Wait before the next try: a webhook's back-off (1, 2, 4, 8 s), a stream's
        // connection's.
        let wait = match target.kind {
            Kind::Webhook { .. } => Duration::from_secs(1 << (tries - 1).min(3)),
            _ => stream.next_try.saturating_duration_since(Instant::now()),
        };
        let until = Instant::now() + wait.max(Duration::from_millis(10));
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(wait));
        }
        held = Some((item, tries));
    }
}

/// An MQTT client of either protocol version, as the target's thread uses it: QoS 1
/// publishes that never wait (false: rumqttc's queue is full), and a clean end.
struct MqttClient {
    publish: Box<dyn Fn(String, bool, Vec<u8>) -> bool + Send>,
    disconnect: Box<dyn Fn() + Send>,
}

/// A connection's driver: rumqttc's event loop iterated on a thread of its own (it makes
/// the connection again itself, after a back-off of ours); `up` hears each connection
/// accepted (CONNACK).
fn drive<E: 'static, I: Iterator<Item = Result<E, String>> + Send + 'static>(
    events: I,
    accepted: fn(&E) -> bool,
    counts: &Arc<Counts>,
    stop: &Arc<AtomicBool>,
    up: crossbeam_channel::Sender<()>,
) {
    let (counts, stop) = (Arc::clone(counts), Arc::clone(stop));
    // Not joined: a broker that does not answer must not hold up a stop (the loop ends
    // when the client's requests do).
    let _ = std::thread::Builder::new()
        .name("trapgate-mqtt".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(500);
            for event in events {
                match event {
                    Ok(e) if accepted(&e) => {
                        backoff = Duration::from_millis(500);
                        counts.connected.store(true, Ordering::Relaxed);
                        let _ = up.send(());
                    }
                    Ok(_) => {}
                    Err(_) => {
                        counts.connected.store(false, Ordering::Relaxed);
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
}

/// The client for `target` (MQTT 3.1.1 or 5), its connection driven: the client, and
/// where each accepted connection is said.
fn mqtt_client(
    target: &Target,
    id: String,
    counts: &Arc<Counts>,
    stop: &Arc<AtomicBool>,
) -> Result<(MqttClient, Receiver<()>), String> {
    let Kind::Mqtt {
        prefix,
        login,
        keep_alive,
        tls,
        v5,
        ..
    } = &target.kind
    else {
        return Err("not an mqtt target".into());
    };
    let status_topic = format!("{prefix}/status");
    // Over TLS the broker is reached by the host of `to` as written (its certificate
    // carries that name); in the clear at the address it resolved to.
    let host = match tls {
        Some(t) => t.server_name.clone(),
        None => target.to.ip().to_string(),
    };
    let tls_config = match tls {
        Some(t) => Some(client_config(&t.ca_file)?),
        None => None,
    };
    let keep_alive = Duration::from_secs(u64::from(*keep_alive));
    let (up_tx, up_rx) = crossbeam_channel::unbounded::<()>();
    // rumqttc's two clients have the same shape and their own types: one body for both.
    macro_rules! client {
        ($client:ty, $options:ty, $event:path, $packet:path, $qos:path, $will:expr) => {{
            use $event as Event;
            use $packet as Packet;
            use $qos as QoS;
            let mut opts = <$options>::new(id, host, target.to.port());
            if let Some(c) = tls_config {
                opts.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(
                    c,
                )));
            }
            opts.set_keep_alive(keep_alive);
            opts.set_last_will($will);
            if let Some((u, p)) = login {
                opts.set_credentials(u, p);
            }
            let (client, mut connection) = <$client>::new(opts, 1024);
            let events = std::iter::from_fn(move || {
                Some(connection.recv().ok()?.map_err(|e| e.to_string()))
            });
            drive(
                events,
                |e| matches!(e, Event::Incoming(Packet::ConnAck(_))),
                counts,
                stop,
                up_tx,
            );
            let c2 = client.clone();
            MqttClient {
                publish: Box::new(move |topic, retain, payload| {
                    client
                        .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                        .is_ok()
                }),
                disconnect: Box::new(move || {
                    let _ = c2.try_disconnect();
                }),
            }
        }};
    }
    let client = if *v5 {
        use rumqttc::v5::mqttbytes::v5::LastWill;
        client!(
            rumqttc::v5::Client,
            rumqttc::v5::MqttOptions,
            rumqttc::v5::Event,
            rumqttc::v5::mqttbytes::v5::Packet,
            rumqttc::v5::mqttbytes::QoS,
            LastWill::new(&status_topic, "offline", QoS::AtLeastOnce, true, None)
        )
    } else {
        use rumqttc::LastWill;
        client!(
            rumqttc::Client,
            rumqttc::MqttOptions,
            rumqttc::Event,
            rumqttc::Packet,
            rumqttc::QoS,
            LastWill::new(&status_topic, "offline", QoS::AtLeastOnce, true)
        )
    };
    Ok((client, up_rx))
}

/// An MQTT target's thread: the client (rumqttc, MQTT 3.1.1 or 5) and its connection's
/// driver; an event message per record, `PREFIX/status` `online` on each connection
/// (the last will says `offline`), the site's state retained per UPS and recorder (only
/// what changed), Home Assistant's discovery where asked.
fn serve_mqtt(
    target: &Target,
    rx: &Receiver<MqttItem>,
    counts: &Arc<Counts>,
    stop: &Arc<AtomicBool>,
    host: &str,
) {
    let Kind::Mqtt {
        prefix,
        client_id,
        discovery,
        ..
    } = &target.kind
    else {
        return;
    };
    let id = if client_id.is_empty() {
        format!("trapgate-{host}")
    } else {
        client_id.clone()
    };
    let status_topic = format!("{prefix}/status");
    let (client, up_rx) = match mqtt_client(target, id, counts, stop) {
        Ok(c) => c,
        Err(e) => {
            crate::daemon::console::warn(format!(
                "trapgate: [[notify]] {}: cannot set up TLS: {e}; nothing is sent to it",
                target.label()
            ));
            // Every record counted not told, as a dead target's.
            while let Ok(item) = rx.recv() {
                if let MqttItem::Records(items) = item {
                    let n = items.len() as u64;
                    counts.queued.fetch_sub(n, Ordering::Relaxed);
                    counts.dropped.fetch_add(n, Ordering::Relaxed);
                }
            }
            return;
        }
    };
    let publish =
        |topic: String, retain: bool, payload: Vec<u8>| (client.publish)(topic, retain, payload);
    let mut state: Option<Arc<serde_json::Value>> = None;
    let mut retained: std::collections::HashMap<String, String> = Default::default();
    let publish_state =
        |state: &serde_json::Value, retained: &mut std::collections::HashMap<String, String>| {
            for (topic, payload) in tell::retained_state(prefix, state) {
                if retained.get(&topic) != Some(&payload)
                    && publish(topic.clone(), true, payload.clone().into_bytes())
                {
                    retained.insert(topic, payload);
                }
            }
        };
    let discover = |s: &serde_json::Value| {
        for (topic, config) in tell::discovery(prefix, s) {
            let _ = publish(topic, true, config.into_bytes());
        }
    };
    loop {
        // Each connection: online, the discovery and the whole state again.
        while up_rx.try_recv().is_ok() {
            let _ = publish(status_topic.clone(), true, b"online".to_vec());
            retained.clear();
            if let Some(s) = &state {
                if *discovery {
                    discover(s);
                }
                publish_state(s, &mut retained);
            }
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(MqttItem::Records(items)) => {
                for item in items {
                    counts.queued.fetch_sub(1, Ordering::Relaxed);
                    let told = tell::webhook_body(&item.record, item.at, item.offset)
                        .is_some_and(|body| publish(format!("{prefix}/event"), false, body));
                    let c = if told { &counts.sent } else { &counts.dropped };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(MqttItem::State(s)) => {
                if counts.connected.load(Ordering::Relaxed) {
                    if *discovery && state.is_none() {
                        discover(&s);
                    }
                    publish_state(&s, &mut retained);
                }
                state = Some(s);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if stop.load(Ordering::Relaxed) && rx.is_empty() {
            break;
        }
    }
    // A clean stop: offline, said (the broker keeps the last will for a death).
    let _ = publish(status_topic, true, b"offline".to_vec());
    std::thread::sleep(Duration::from_millis(100));
    (client.disconnect)();
    stop.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::Decided;
    use crate::engine::tell::Wants;

    fn order(i: usize) -> Record {
        Record::Decision(Decided::Acknowledged {
            recorder: format!("nvr-{i}").into(),
        })
    }

    fn syslog_to(to: SocketAddr) -> Target {
        Target {
            kind: Kind::Syslog {
                transport: Transport::Udp,
                facility: 3,
                enterprise: 32473,
                tls: None,
            },
            to_text: to.to_string(),
            to,
            wants: Wants::default(),
        }
    }

    fn wait(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_target_that_stays_keeps_its_thread_and_counts_across_a_reload() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let first = syslog_to(sink.local_addr().unwrap());
        let mut tellers = Tellers::start(std::slice::from_ref(&first));
        let records: Vec<Record> = (0..3).map(order).collect();
        tellers.offer(records.iter().map(|r| (Timestamp(0), 0, r)));
        wait("three sent", || tellers.rows()[0].sent == 3);
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        tellers.reload(&[syslog_to(other.local_addr().unwrap()), first.clone()]);
        let rows = tellers.rows();
        assert_eq!((rows[0].sent, rows[1].sent), (0, 3), "{rows:?}");
        tellers.offer(records.iter().take(1).map(|r| (Timestamp(0), 0, r)));
        wait("told both", || {
            let r = tellers.rows();
            r[0].sent == 1 && r[1].sent == 4
        });
        let mut buf = [0u8; 2048];
        let n = other.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("recorder=\"nvr-0\""));
        // Removed: stopped; the one that stays goes on.
        tellers.reload(std::slice::from_ref(&first));
        assert_eq!(tellers.rows().len(), 1);
        assert_eq!(tellers.rows()[0].sent, 4);
    }

    #[test]
    fn a_dead_target_drops_what_its_queue_cannot_hold_and_says_so_once_a_minute() {
        // Nothing listens there: every connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let to: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut tellers = Tellers::start(&[Target {
            kind: Kind::Milestone,
            to_text: to.to_string(),
            to,
            wants: Wants::default(),
        }]);
        let records: Vec<Record> = (0..QUEUE + 500).map(order).collect();
        tellers.offer(records.iter().map(|r| (Timestamp(0), 0, r)));
        let row = tellers.rows().remove(0);
        assert!(!row.connected && row.sent == 0, "{row:?}");
        // The queue and the one record its thread holds: the rest dropped at once.
        assert!(row.dropped >= 499, "{row:?}");
        wait("a refused connection counted", || {
            tellers.rows()[0].failed >= 1
        });
        let said = tellers.dropped_since();
        assert_eq!(said.len(), 1);
        assert!(said[0].1 >= 499, "{said:?}");
        tellers.offer(records.iter().take(10).map(|r| (Timestamp(0), 0, r)));
        assert!(tellers.dropped_since().is_empty(), "once a minute at most");
    }
}
