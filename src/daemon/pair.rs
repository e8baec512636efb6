//! One gateway of a pair: which role it holds (the actor holds the pair's address on one
//! of its interfaces: keepalived put it there), the channel to its peer, and the thread
//! that ships the actor's records.
//!
//! The role is read from the host itself (`getifaddrs`), at start and whenever the
//! kernel says an address came or went (a netlink socket in the loop, `RTMGRP_*_IFADDR`),
//! and once a second besides; no script of keepalived's is needed. Shipping runs on a
//! thread of its own, after the orders of a turn have left: the decision thread hands
//! it the records (reference-counted, no copy of their text) and goes on; the thread
//! writes them as JSON lines, seals them (`crate::engine::pair`) and sends them, with a
//! hello every second. A peer that is down or slow costs a failed send, counted, never a
//! wait. What the peer sends is read and checked on the decision thread.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{RecvTimeoutError, Sender};

pub use crate::daemon::socket::{AddressWatch, local_addresses};
use crate::engine::config::Pair;
use crate::engine::pair::{Hello, Kind, Opener, Packer, Refused, Sealer};
use crate::engine::record::Record;

/// How often each gateway says its role.
pub const HELLO_EVERY: Duration = Duration::from_secs(1);
/// A peer not heard from for this long is said to be silent.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);
/// How often the role is looked at without the kernel's word.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The wall clock, in ms since 1970.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the pair channel counted.
#[derive(Debug, Default)]
pub struct PairCounts {
    /// Records shipped to the peer.
    pub shipped: AtomicU64,
    /// Datagrams sent to it (hellos included).
    pub datagrams: AtomicU64,
    /// Datagrams the kernel would not send (the peer's host unreachable, …).
    pub send_failed: AtomicU64,
    /// Records too long to ship (none of trapgate's are).
    pub too_long: AtomicU64,
    /// Records of the peer's applied here.
    pub received: AtomicU64,
    /// Datagrams refused, by `Refused::ALL`'s order, then from another address.
    pub refused: [AtomicU64; 7],
    /// Lines of a believed datagram that did not read, or records no actor ships.
    pub unreadable: AtomicU64,
}

impl PairCounts {
    /// The refusals by name.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        Refused::ALL
            .iter()
            .map(|r| r.name())
            .chain(["not_from_peer"])
            .zip(&self.refused)
            .map(|(n, c)| (n, c.load(Ordering::Relaxed)))
            .collect()
    }
}

enum Out {
    Records(Vec<(u64, Record)>),
    Role(Hello),
}

/// The shipping thread's handle.
pub struct Shipper {
    tx: Option<Sender<Out>>,
    thread: Option<JoinHandle<()>>,
}

impl Shipper {
    /// Starts the thread sending from `socket` to `peer`, sealed as `me` under `key`.
    pub fn start(
        socket: std::net::UdpSocket,
        me: SocketAddr,
        peer: SocketAddr,
        key: Arc<[u8]>,
        first: Hello,
        counts: Arc<PairCounts>,
    ) -> io::Result<Shipper> {
        let (tx, rx) = crossbeam_channel::unbounded::<Out>();
        let session = crate::daemon::random::session();
        let thread = std::thread::Builder::new()
            .name("trapgate-pair".into())
            .spawn(move || {
                let mut sealer = Sealer::new(key, me, session);
                let mut hello = first;
                let mut packer = Packer::default();
                let mut out = Vec::with_capacity(crate::engine::pair::MAX_DATAGRAM);
                let mut send = |kind: Kind, body: &[u8], out: &mut Vec<u8>| {
                    sealer.seal(wall_ms(), kind, body, out);
                    // The socket is the decision thread's too, non-blocking: a full send
                    // buffer is waited for here, on this thread, a little.
                    let mut tries = 0;
                    let sent = loop {
                        match socket.send_to(out, peer) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < 20 => {
                                tries += 1;
                                crate::daemon::socket::wait_writable(
                                    socket.as_raw_fd(),
                                    Duration::from_millis(50),
                                );
                            }
                            r => break r,
                        }
                    };
                    match sent {
                        Ok(_) => counts.datagrams.fetch_add(1, Ordering::Relaxed),
                        Err(_) => counts.send_failed.fetch_add(1, Ordering::Relaxed),
                    };
                };
                let mut said = Instant::now();
                send(Kind::Hello, &hello.body(), &mut out);
                loop {
                    let wait = HELLO_EVERY.saturating_sub(said.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(Out::Records(records)) => {
                            for (wall, r) in &records {
                                if packer.add(*wall, r) {
                                    counts.shipped.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    counts.too_long.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            drop(records);
                            for body in packer.take() {
                                send(Kind::Records, &body, &mut out);
                            }
                        }
                        Ok(Out::Role(h)) => {
                            hello = h;
                            said = Instant::now();
                            send(Kind::Hello, &hello.body(), &mut out);
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if said.elapsed() >= HELLO_EVERY {
                        said = Instant::now();
                        send(Kind::Hello, &hello.body(), &mut out);
                    }
                }
            })?;
        Ok(Shipper {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Ships `records` (each with its wall clock time in ns).
    pub fn ship(&self, records: Vec<(u64, Record)>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Out::Records(records));
        }
    }

    /// Says the role now (and every second from now).
    pub fn role(&self, hello: Hello) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Out::Role(hello));
        }
    }

    /// Stops the thread once it has sent what it was given.
    pub fn stop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the peer said of itself last, and when.
#[derive(Clone, Copy, Debug)]
pub struct PeerHeard {
    /// Its hello.
    pub hello: Hello,
    /// When it came.
    pub at: Instant,
}

/// The receiving side, on the decision thread: the socket and what it believes.
pub struct Receiving {
    /// The pair socket (its clone sends on the shipping thread).
    pub socket: mio::net::UdpSocket,
    /// The peer's endpoint: the only source believed.
    pub peer: SocketAddr,
    opener: Opener,
    /// The peer's last hello.
    pub heard: Option<PeerHeard>,
    /// What was counted.
    pub counts: Arc<PairCounts>,
    buf: Vec<u8>,
}

/// A datagram of the peer's, believed.
pub enum FromPeer {
    /// Its role.
    Hello(Hello),
    /// Records it shipped, in datagram `seq`, each with its wall clock time in ns.
    Records(u64, Vec<(u64, Record)>),
}

impl Receiving {
    /// Reads what `socket` holds from `peer`, checked under `key`.
    pub fn new(
        socket: mio::net::UdpSocket,
        peer: SocketAddr,
        key: Arc<[u8]>,
        counts: Arc<PairCounts>,
    ) -> Receiving {
        Receiving {
            socket,
            peer,
            opener: Opener::new(key, peer),
            heard: None,
            counts,
            buf: vec![0; 65_536],
        }
    }

    /// The next datagram believed, reading at most `budget` datagrams (None: none
    /// believed, the socket drained or the budget spent: `more` says which).
    pub fn next(&mut self, budget: &mut usize, more: &mut bool) -> Option<FromPeer> {
        while *budget > 0 {
            let (n, from) = match self.socket.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(_) => {
                    *more = false;
                    return None;
                }
            };
            *budget -= 1;
            if from != self.peer {
                self.counts.refused[6].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let opened = match self.opener.open(wall_ms(), &self.buf[..n]) {
                Ok(o) => o,
                Err(why) => {
                    let i = Refused::ALL.iter().position(|r| *r == why).unwrap_or(0);
                    self.counts.refused[i].fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            match opened.kind {
                Kind::Hello => match Hello::read(opened.body) {
                    Some(h) => {
                        self.heard = Some(PeerHeard {
                            hello: h,
                            at: Instant::now(),
                        });
                        return Some(FromPeer::Hello(h));
                    }
                    None => {
                        self.counts.unreadable.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Kind::Records => {
                    let (records, bad) = crate::engine::pair::unpack(opened.body);
                    self.counts
                        .unreadable
                        .fetch_add(bad as u64, Ordering::Relaxed);
                    return Some(FromPeer::Records(opened.seq, records));
                }
            }
        }
        *more = true;
        None
    }
}

/// The pair as this gateway runs it.
pub struct PairLink {
    /// The site's `[pair]`.
    pub pair: Pair,
    /// This gateway's endpoint and its peer's, as this host sees them.
    pub me: SocketAddr,
    /// The peer's.
    pub peer: SocketAddr,
    /// What the peer sends.
    pub receiving: Receiving,
    /// Ships the actor's records, says the role.
    pub shipper: Shipper,
    /// The kernel's word on addresses.
    pub watch: Option<AddressWatch>,
    /// Whether this gateway acts, and since when (the station's time, and the wall
    /// clock's in ms).
    pub actor: bool,
    /// Since when it holds its role (station time).
    pub since: crate::time::Timestamp,
    /// Since when, on the wall clock (ms).
    pub since_ms: u64,
    /// The role was last looked at.
    pub looked: Instant,
    /// Both act: said once until one of them stops.
    pub split_said: bool,
    /// The peer was said to be silent (said once until it is heard again).
    pub silent_said: bool,
    /// Set by the address watch's readiness.
    pub look_now: Arc<AtomicBool>,
    /// When it was opened (a peer never heard is silent from `SILENT_AFTER` on).
    pub opened: Instant,
}

impl PairLink {
    /// Opens the pair's socket on this host's endpoint (`self` or `peer`, whichever is
    /// local) and starts the shipping thread; the role is looked at by the caller.
    pub fn open(pair: &Pair) -> Result<PairLink, String> {
        let (me, peer) = pair.oriented(&local_addresses())?;
        let socket =
            crate::daemon::socket::bind_udp(me).map_err(|e| format!("[pair] self {me}: {e}"))?;
        // One socket (the peer believes this address and port only), its clone shares
        // its non-blocking mode.
        let sending = socket
            .try_clone()
            .map_err(|e| format!("[pair] self {me}: {e}"))?;
        let counts = Arc::new(PairCounts::default());
        let now_ms = wall_ms();
        let shipper = Shipper::start(
            sending,
            me,
            peer,
            Arc::clone(&pair.key.0),
            Hello {
                actor: false,
                since_ms: now_ms,
            },
            Arc::clone(&counts),
        )
        .map_err(|e| format!("[pair]: cannot start its thread: {e}"))?;
        Ok(PairLink {
            pair: pair.clone(),
            me,
            peer,
            receiving: Receiving::new(
                mio::net::UdpSocket::from_std(socket),
                peer,
                Arc::clone(&pair.key.0),
                counts,
            ),
            shipper,
            watch: AddressWatch::open().ok(),
            actor: false,
            since: crate::time::Timestamp(0),
            since_ms: now_ms,
            looked: Instant::now(),
            split_said: false,
            silent_said: false,
            look_now: Arc::new(AtomicBool::new(false)),
            opened: Instant::now(),
        })
    }

    /// Whether this host holds the pair's address now.
    pub fn holds_address(&self) -> bool {
        local_addresses().contains(&self.pair.address)
    }

    /// The hello this gateway says.
    pub fn hello(&self) -> Hello {
        Hello {
            actor: self.actor,
            since_ms: self.since_ms,
        }
    }

    /// Whether the peer is silent now.
    pub fn peer_silent(&self) -> bool {
        let last = self.receiving.heard.map_or(self.opened, |h| h.at);
        last.elapsed() >= SILENT_AFTER
    }
}
