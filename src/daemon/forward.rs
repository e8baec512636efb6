//! The forward thread: sends what the receive workers routed to the site's network
//! management system (`[[forward]]`), off the decision path.
//!
//! A worker that hears a notification some target takes writes its forwarded form once
//! (`crate::engine::forward::canonical`) into a batch of its own, and hands the batch
//! over at the end of its `recvmmsg` read: one channel send and one wake a read, no
//! lock and no allocation per datagram (the batches come back for reuse). With no free
//! batch (this thread is behind), the notification is dropped for each of its targets
//! and counted so (`dropped`): a worker never waits for forwarding.
//!
//! This thread writes each target's form (its community, its version) and sends them
//! with `sendmmsg`, a batch at a time. An inform is forwarded as an inform; which are
//! out, their request ids (the OS's CSPRNG), their retries, the limit per target and
//! the check of answers are the sans-IO machine's (`crate::engine::inform`), on this
//! thread's monotonic clock; what it does not believe on a forward socket is counted
//! refused, an inform it does not admit dropped.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bumpalo::Bump;
use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::daemon::random::OsRandom;
use crate::daemon::socket::{BATCH, Fate, SendBatch};
use crate::engine::forward::{self, Forwarding};
use crate::engine::inform::{Informs, slot};
use crate::time::Timestamp;
use crate::wire::Message;

/// Batches in circulation between the workers and this thread.
const POOL: usize = 1024;
/// How long this thread, woken for a batch, waits for more before it sends: at most
/// 200 wake-ups a second however fast the traps come, each `sendmmsg` carrying many.
const LINGER: Duration = Duration::from_millis(5);
/// How long a worker keeps a batch it is filling while this thread is at work.
const HOLD: Duration = Duration::from_millis(1);
/// Datagrams queued for a target while the kernel's send buffer is full, at most.
pub const MAX_QUEUED: usize = 16_384;
/// How long a v1 trap forwarded is remembered: the same one heard again within this is
/// one that came back (another gateway forwarding to this one), not forwarded again.
pub const V1_MEMORY: Duration = Duration::from_secs(30);

const WAKE: Token = Token(0);
/// The first socket's token: socket k is `Token(FIRST + k)`.
const FIRST: usize = 1;
/// Sockets of distinct source addresses, at most (one per target at most, and the two
/// of the host's choice).
const MAX_SOCKETS: usize = forward::MAX_TARGETS + 2;

/// What was counted of one target.
#[derive(Debug, Default)]
pub struct TargetCounts {
    /// Datagrams sent to it (re-sent informs included).
    pub sent: AtomicU64,
    /// Datagrams the kernel refused to send to it.
    pub failed: AtomicU64,
    /// Notifications not forwarded to it: no room (the queue to this thread full, or
    /// its outstanding informs at their limit).
    pub dropped: AtomicU64,
    /// Informs it acknowledged.
    pub acknowledged: AtomicU64,
    /// Informs it never acknowledged, every retry spent.
    pub unacknowledged: AtomicU64,
}

/// A site's targets with their counts: shared by the workers (which route by it) and
/// this thread; a reload makes a new one, the counts of a target kept at the same
/// address carried over.
#[derive(Debug, Default)]
pub struct Table {
    /// The targets.
    pub forwarding: Forwarding,
    /// Their counts, in the same order.
    pub counts: Vec<TargetCounts>,
}

impl Table {
    /// The table of `forwarding`, the counts of `old`'s targets of the same address kept.
    pub fn new(forwarding: Forwarding, old: Option<&Table>) -> Table {
        let counts = forwarding
            .targets()
            .iter()
            .map(|t| {
                let c = TargetCounts::default();
                let kept = old.and_then(|o| {
                    o.forwarding
                        .targets()
                        .iter()
                        .position(|x| x.to == t.to && x.to_text == t.to_text)
                        .map(|i| &o.counts[i])
                });
                if let Some(k) = kept {
                    for (mine, theirs) in [
                        (&c.sent, &k.sent),
                        (&c.failed, &k.failed),
                        (&c.dropped, &k.dropped),
                        (&c.acknowledged, &k.acknowledged),
                        (&c.unacknowledged, &k.unacknowledged),
                    ] {
                        mine.store(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
                    }
                }
                c
            })
            .collect();
        Table { forwarding, counts }
    }

    /// Each target's counts now.
    pub fn rows(&self) -> Vec<crate::engine::metrics::ForwardRow> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.forwarding
            .targets()
            .iter()
            .zip(&self.counts)
            .map(|(t, c)| crate::engine::metrics::ForwardRow {
                to: t.to_text.clone(),
                sent: get(&c.sent),
                failed: get(&c.failed),
                dropped: get(&c.dropped),
                acknowledged: get(&c.acknowledged),
                unacknowledged: get(&c.unacknowledged),
            })
            .collect()
    }

    /// Counts one notification dropped for each target of `mask`.
    pub fn drop_for(&self, mask: u64) {
        for (i, c) in self.counts.iter().enumerate() {
            if mask & (1 << i) != 0 {
                c.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// This gateway's own addresses as forwards show them (`Forwarding::set_own`): the
/// specific addresses it listens on, each target's `source`, and for a target with
/// neither the address the kernel would send to it from (a UDP socket connected to it,
/// which sends nothing, says).
pub fn own_addresses(forwarding: &Forwarding, listen: &[SocketAddr]) -> Vec<IpAddr> {
    let mut own: Vec<IpAddr> = listen
        .iter()
        .map(SocketAddr::ip)
        .filter(|a| !a.is_unspecified())
        .collect();
    let single = match listen {
        [one] if !one.ip().is_unspecified() => Some(one.ip()),
        _ => None,
    };
    for t in forwarding.targets() {
        let from = t
            .source
            .or(single)
            .filter(|a| a.is_ipv4() == t.to.is_ipv4())
            .or_else(|| {
                let any = if t.to.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let s = std::net::UdpSocket::bind(any).ok()?;
                s.connect(t.to).ok()?;
                s.local_addr().ok().map(|a| a.ip())
            });
        if let Some(a) = from
            && !own.contains(&a)
        {
            own.push(a);
        }
    }
    own
}

/// One notification of a batch: its targets, and where its forwarded form is in the
/// batch's bytes.
#[derive(Clone, Copy, Debug)]
struct Item {
    mask: u64,
    start: u32,
    len: u32,
    /// Who it was heard from.
    source: IpAddr,
}

/// A worker's notifications to forward, written in place.
#[derive(Debug)]
pub struct Batch {
    table: Arc<Table>,
    bytes: Vec<u8>,
    items: Vec<Item>,
}

/// A worker's side: where its batches go.
#[derive(Clone)]
pub struct Handoff {
    full: Sender<Batch>,
    free: Receiver<Batch>,
    waker: Arc<Waker>,
    /// Whether the forward thread is waiting in its poll (or about to): only then is
    /// it woken, so a busy thread takes batches as they come without a wake apiece.
    asleep: Arc<AtomicBool>,
}

/// A worker's batch being filled.
#[derive(Default)]
pub struct Filling {
    batch: Option<Batch>,
    /// When its first notification was written.
    since: Option<Instant>,
}

/// Notifications in a batch worth a hand-over at once.
const HAND_AT: usize = 64;

impl Filling {
    /// Writes `m` (decoded from `datagram`, heard from `source`, routed to `mask` of
    /// `table`) into the batch; if there is no batch free, counts it dropped for its
    /// targets.
    pub fn push(
        &mut self,
        handoff: &Handoff,
        table: &Arc<Table>,
        datagram: &[u8],
        m: &Message<'_>,
        source: std::net::IpAddr,
        mask: u64,
    ) {
        if self
            .batch
            .as_ref()
            .is_some_and(|b| !Arc::ptr_eq(&b.table, table))
        {
            self.hand(handoff);
        }
        if self.batch.is_none() {
            match handoff.free.try_recv() {
                Ok(mut b) => {
                    b.table = Arc::clone(table);
                    self.batch = Some(b);
                }
                Err(_) => {
                    table.drop_for(mask);
                    return;
                }
            }
        }
        let Some(b) = self.batch.as_mut() else {
            return;
        };
        if b.items.is_empty() {
            self.since = Some(Instant::now());
        }
        let start = b.bytes.len();
        if forward::canonical_from(datagram, m, source, &mut b.bytes) {
            b.items.push(Item {
                mask,
                start: start as u32,
                len: (b.bytes.len() - start) as u32,
                source,
            });
        }
    }

    /// Hands the batch to the forward thread if it is time: the thread waits for
    /// work, or the batch is full enough, or its first notification was written
    /// `HOLD` ago. A busy forward thread thus gets fewer, fuller batches.
    pub fn hand_if_due(&mut self, handoff: &Handoff) {
        let due = self.batch.as_ref().is_some_and(|b| {
            !b.items.is_empty()
                && (handoff.asleep.load(Ordering::Relaxed)
                    || b.items.len() >= HAND_AT
                    || self.since.is_some_and(|t| t.elapsed() >= HOLD))
        });
        if due {
            self.hand(handoff);
        }
    }

    /// How long the worker may wait before `hand_if_due` must look again (None: it
    /// holds nothing).
    pub fn due_in(&self) -> Option<Duration> {
        let b = self.batch.as_ref()?;
        if b.items.is_empty() {
            return None;
        }
        Some(HOLD.saturating_sub(self.since.map_or(HOLD, |t| t.elapsed())))
    }

    /// Hands the batch, if it holds anything, to the forward thread.
    pub fn hand(&mut self, handoff: &Handoff) {
        let Some(b) = self.batch.take() else { return };
        if b.items.is_empty() {
            self.batch = Some(b);
            return;
        }
        self.since = None;
        if handoff.full.try_send(b).is_ok() && handoff.asleep.swap(false, Ordering::SeqCst) {
            let _ = handoff.waker.wake();
        }
    }
}

/// The running forward thread.
pub struct Forwarder {
    handoff: Handoff,
    /// Datagrams on the forward sockets not believed (not a target's answer to one of
    /// its outstanding informs).
    pub refused: Arc<AtomicU64>,
    /// v1 traps not forwarded for having been forwarded already (they came back).
    pub looped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Opens the forward sockets (an ephemeral port of the host's choice of address, for
    /// IPv4 and, where the host has it, IPv6) and starts the thread. `listen` is where
    /// the gateway hears traps: a single specific address there is where forwards
    /// leave from, unless a target names its own `source` (snmptrapd's `clientaddr`);
    /// a socket for each source is opened when a target first needs it.
    pub fn start(listen: &[SocketAddr]) -> io::Result<Forwarder> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let v4 = Out::open(&poll, IpAddr::from([0, 0, 0, 0]), 0)?;
        let v6 = Out::open(&poll, IpAddr::from([0u16; 8]), 1).ok();
        let mut outs = vec![Some(v4), v6];
        let (full_tx, full_rx) = crossbeam_channel::bounded(POOL);
        let (free_tx, free_rx) = crossbeam_channel::bounded(POOL);
        let empty = Arc::new(Table::default());
        for _ in 0..POOL {
            let _ = free_tx.send(Batch {
                table: Arc::clone(&empty),
                bytes: Vec::with_capacity(4096),
                items: Vec::with_capacity(BATCH),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let looped = Arc::new(AtomicU64::new(0));
        let asleep = Arc::new(AtomicBool::new(false));
        let default_source = match listen {
            [one] if !one.ip().is_unspecified() => Some(one.ip()),
            _ => None,
        };
        outs.reserve(MAX_SOCKETS);
        let mut thread = Thread {
            asleep: Arc::clone(&asleep),
            refused: Arc::clone(&refused),
            looped: Arc::clone(&looped),
            recent_v1: HashMap::new(),
            poll,
            outs,
            default_source,
            unusable: Vec::new(),
            full: full_rx,
            free: free_tx,
            stop: Arc::clone(&stop),
            informs: Informs::new(Box::new(OsRandom)),
            started: Instant::now(),
            segment: true,
            queued: Vec::new(),
            buf: Vec::with_capacity(2048),
            arena: Bump::with_capacity(64 * 1024),
        };
        let handle = std::thread::Builder::new()
            .name("trapgate-fwd".into())
            .spawn(move || thread.run())?;
        Ok(Forwarder {
            handoff: Handoff {
                full: full_tx,
                free: free_rx,
                waker,
                asleep,
            },
            stop,
            refused,
            looped,
            thread: Some(handle),
        })
    }

    /// What the workers hand their batches to.
    pub fn handoff(&self) -> Handoff {
        self.handoff.clone()
    }

    /// Stops the thread once it has sent what it was handed.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.handoff.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One forward socket: bound to a source address (port of the kernel's choice), with
/// what waits to be sent from it and for whom.
struct Out {
    source: IpAddr,
    socket: UdpSocket,
    batch: SendBatch,
    /// Which table and target each datagram of `batch` is for, in order.
    sent: Vec<(Arc<Table>, usize)>,
    /// Whether it waits to be writable again (its send buffer was full).
    blocked: bool,
}

impl Out {
    /// A socket on `source` (an ephemeral port), registered as socket `k`.
    fn open(poll: &Poll, source: IpAddr, k: usize) -> io::Result<Out> {
        let addr = SocketAddr::new(source, 0);
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&addr.into())?;
        s.set_nonblocking(true)?;
        let mut socket = UdpSocket::from_std(s.into());
        poll.registry()
            .register(&mut socket, Token(FIRST + k), Interest::READABLE)?;
        Ok(Out {
            source,
            socket,
            batch: SendBatch::new(),
            sent: Vec::new(),
            blocked: false,
        })
    }
}

/// A target: its site's table and its place there (its counts).
type Whom = (Arc<Table>, usize);

struct Thread {
    poll: Poll,
    /// The sockets: 0 and 1 on the host's choice of IPv4 and IPv6 address (1 absent
    /// where the host has no IPv6), then one per source address a target needs.
    outs: Vec<Option<Out>>,
    /// Where forwards leave from when their target names no source of its own.
    default_source: Option<IpAddr>,
    /// Source addresses a socket could not be opened on (said once each).
    unusable: Vec<IpAddr>,
    full: Receiver<Batch>,
    free: Sender<Batch>,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    looped: Arc<AtomicU64>,
    /// The v1 traps forwarded lately, by a hash of their PDU, and when: a v1 trap has
    /// no forwarder binding to show where it went, so one that comes back is known by
    /// being the same.
    recent_v1: HashMap<u64, (Instant, IpAddr)>,
    asleep: Arc<AtomicBool>,
    /// The informs out: for each, its target.
    informs: Informs<Whom>,
    /// The origin of the informs' clock (monotonic).
    started: Instant,
    /// Whether equal datagrams to one target go out in one segmented send (UDP GSO;
    /// cleared where the kernel has none).
    segment: bool,
    /// Datagrams queued per target address.
    queued: Vec<(SocketAddr, usize)>,
    buf: Vec<u8>,
    arena: Bump,
}

impl Thread {
    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            let now = self.now();
            let mut timeout = self
                .informs
                .poll_timeout()
                .map(|d| Duration::from_nanos(d.0.saturating_sub(now.0)));
            // Asleep from here, unless batches are waiting already (a worker that hands
            // one over after this sees the flag and wakes the poll).
            self.asleep.store(true, Ordering::SeqCst);
            if !self.full.is_empty() || self.stop.load(Ordering::Acquire) {
                timeout = Some(Duration::ZERO);
            }
            let polled = self.poll.poll(&mut events, timeout);
            // Still set: nobody woke the poll (a timeout, an answer on the sockets).
            let unwoken = self.asleep.swap(false, Ordering::SeqCst);
            if let Err(e) = polled
                && e.kind() != io::ErrorKind::Interrupted
            {
                crate::daemon::console::warn(format!("trapgate: forward thread: {e}"));
                return;
            }
            // Woken for a batch: let more come before sending (LINGER later), so that a
            // stream of traps costs a wake-up every few milliseconds, not one a batch.
            if !unwoken && !self.stop.load(Ordering::Acquire) {
                std::thread::sleep(LINGER);
            }
            for e in events.iter() {
                if let Some(k) = e.token().0.checked_sub(FIRST) {
                    self.answers(k);
                }
            }
            while let Ok(b) = self.full.try_recv() {
                self.forward(b);
            }
            self.resend(self.now());
            self.flush();
            if self.stop.load(Ordering::Acquire) {
                while let Ok(b) = self.full.try_recv() {
                    self.forward(b);
                }
                // What waits for the send buffer goes within a second, if it can.
                let until = Instant::now() + Duration::from_secs(1);
                self.flush();
                while self.outs.iter().flatten().any(|o| !o.batch.is_empty())
                    && Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(1));
                    self.flush();
                }
                return;
            }
        }
    }

    /// Writes each target's form of every notification of `b`.
    fn forward(&mut self, mut b: Batch) {
        // The arena is taken for the batch (the messages borrow it while this thread's
        // queues change), and given back.
        let mut arena = std::mem::take(&mut self.arena);
        arena.reset();
        let now = Instant::now();
        for item in &b.items {
            let bytes = &b.bytes[item.start as usize..(item.start + item.len) as usize];
            if self.came_back(bytes, item.source, now) {
                self.looped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Decoded only where a target's form must be rebuilt (an inform, a v1 trap
            // converted); a trap whose community alone changes is reframed as it is.
            let mut decoded: Option<Message<'_>> = None;
            // An inform's PDU tag, after the message's header.
            let inform = forward::pdu_tag(bytes) == Some(0xa6);
            for (i, t) in b.table.forwarding.targets().iter().enumerate() {
                if item.mask & (1 << i) == 0 {
                    continue;
                }
                self.buf.clear();
                if !inform && forward::reframe(bytes, t, &mut self.buf) {
                    let out = std::mem::take(&mut self.buf);
                    self.queue(t.to, &out, (Arc::clone(&b.table), i));
                    self.buf = out;
                    continue;
                }
                if decoded.is_none() {
                    decoded = Message::parse(bytes, &arena).ok();
                }
                let Some(m) = decoded.as_ref() else {
                    break;
                };
                let id = if inform {
                    match self.informs.admit(t.to) {
                        Some(id) => id,
                        None => {
                            b.table.counts[i].dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                } else {
                    0
                };
                self.buf.clear();
                forward::forwarded(m, t, id, &mut self.buf);
                if inform {
                    let whom = (Arc::clone(&b.table), i);
                    let at = self.now();
                    self.informs
                        .sent(at, t.to, id, whom, t.community.as_bytes(), &self.buf);
                }
                let bytes = std::mem::take(&mut self.buf);
                self.queue(t.to, &bytes, (Arc::clone(&b.table), i));
                self.buf = bytes;
            }
        }
        b.items.clear();
        b.bytes.clear();
        let _ = self.free.send(b);
        self.arena = arena;
    }

    /// Whether `canonical`, a v1 trap heard from `source`, was forwarded within
    /// `V1_MEMORY` as heard from another address (it came back through another
    /// forwarder: its PDU the same, whatever the community); it is remembered now if
    /// not. The same trap from the same address again (a card that sends it twice, a
    /// replay) is not a loop. False for every other notification: their forwarder
    /// bindings say where they went (`Forwarding::route`).
    fn came_back(&mut self, canonical: &[u8], source: IpAddr, now: Instant) -> bool {
        use std::hash::{BuildHasher, Hasher};
        if forward::pdu_tag(canonical) != Some(0xa4) {
            return false;
        }
        let Some(pdu) = forward::pdu_of(canonical) else {
            return false;
        };
        let mut h = foldhash::fast::FixedState::default().build_hasher();
        h.write(pdu);
        let key = h.finish();
        if self.recent_v1.len() >= 65_536 {
            self.recent_v1
                .retain(|_, (at, _)| now.duration_since(*at) < V1_MEMORY);
        }
        match self.recent_v1.get(&key) {
            Some((at, from)) if *from != source && now.duration_since(*at) < V1_MEMORY => true,
            _ => {
                self.recent_v1.insert(key, (now, source));
                false
            }
        }
    }

    /// The socket forwards to target `whom` leave from: its `source`, else the
    /// gateway's listen address (of its family), else the host's choice; opened the
    /// first time. None if that address cannot be bound (said once).
    fn out_for(&mut self, whom: &Whom) -> Option<usize> {
        let t = &whom.0.forwarding.targets()[whom.1];
        let source = t
            .source
            .or(self.default_source)
            .filter(|s| s.is_ipv4() == t.to.is_ipv4());
        let Some(source) = source else {
            return Some(usize::from(t.to.is_ipv6()));
        };
        if let Some(k) = self
            .outs
            .iter()
            .skip(2)
            .position(|o| o.as_ref().is_some_and(|o| o.source == source))
        {
            return Some(k + 2);
        }
        if self.unusable.contains(&source) || self.outs.len() >= MAX_SOCKETS {
            return None;
        }
        match Out::open(&self.poll, source, self.outs.len()) {
            Ok(o) => {
                self.outs.push(Some(o));
                Some(self.outs.len() - 1)
            }
            Err(e) => {
                crate::daemon::console::warn(format!(
                    "trapgate: cannot forward from {source} (to {}): {e}; what goes there is counted failed",
                    t.to_text
                ));
                self.unusable.push(source);
                None
            }
        }
    }

    /// Queues `bytes` for target `whom`, unless its queue is full (then counted
    /// dropped) or it has no socket to leave from (counted failed).
    fn queue(&mut self, to: SocketAddr, bytes: &[u8], whom: Whom) {
        let n = slot(&mut self.queued, to);
        if *n >= MAX_QUEUED {
            whom.0.counts[whom.1]
                .dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(out) = self.out_for(&whom).and_then(|k| self.outs[k].as_mut()) else {
            whom.0.counts[whom.1].failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        *slot(&mut self.queued, to) += 1;
        out.batch.push(to, bytes);
        out.sent.push(whom);
    }

    /// Sends what is queued until a socket's send buffer is full (the rest waits for
    /// it to be writable), and counts it per target.
    fn flush(&mut self) {
        for (k, out) in self.outs.iter_mut().enumerate() {
            let Some(out) = out else { continue };
            if out.batch.is_empty() {
                continue;
            }
            let fate = out
                .batch
                .flush_some(out.socket.as_raw_fd(), &mut self.segment);
            let mut blocked = false;
            let mut i = 0;
            let queued = &mut self.queued;
            out.sent.retain(|(t, target)| {
                let f = fate.get(i).copied().unwrap_or(Fate::Queued);
                i += 1;
                let c = &t.counts[*target];
                match f {
                    Fate::Queued => {
                        blocked = true;
                        return true;
                    }
                    Fate::Sent => c.sent.fetch_add(1, Ordering::Relaxed),
                    Fate::Failed => c.failed.fetch_add(1, Ordering::Relaxed),
                };
                let n = slot(queued, t.forwarding.targets()[*target].to);
                *n = n.saturating_sub(1);
                false
            });
            if blocked != out.blocked {
                out.blocked = blocked;
                let interest = if blocked {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let _ =
                    self.poll
                        .registry()
                        .reregister(&mut out.socket, Token(FIRST + k), interest);
            }
        }
    }

    /// The informs' clock: monotonic, from the thread's start.
    fn now(&self) -> Timestamp {
        Timestamp(self.started.elapsed().as_nanos() as u64)
    }

    /// Re-sends the informs due; those out of retries count unacknowledged.
    fn resend(&mut self, now: Timestamp) {
        let mut again: Vec<(SocketAddr, Vec<u8>, Whom)> = Vec::new();
        self.informs.handle_timeout(
            now,
            |to, bytes, whom| again.push((to, bytes.to_vec(), (Arc::clone(&whom.0), whom.1))),
            |(table, target)| {
                table.counts[target]
                    .unacknowledged
                    .fetch_add(1, Ordering::Relaxed);
            },
        );
        for (to, bytes, whom) in again {
            self.queue(to, &bytes, whom);
        }
    }

    /// Reads the answers on socket `k`: believed only as the machine's answer to an
    /// inform out; anything else counted refused.
    fn answers(&mut self, k: usize) {
        let mut buf = [0u8; 2048];
        loop {
            let Some(Some(out)) = self.outs.get(k) else {
                return;
            };
            let (n, from) = match out.socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error from a target (port unreachable): the retries go on.
                Err(_) => continue,
            };
            self.arena.reset();
            match self.informs.handle_answer(from, &buf[..n], &self.arena) {
                Ok((table, target)) => {
                    table.counts[target]
                        .acknowledged
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::forward::{ForwardVersion, Match, Sources, Target};
    use crate::wire::PduType;
    use crate::wire::encode;
    use crate::wire::oid::oid;

    fn table() -> Arc<Table> {
        let t = |to: &str| Target {
            to_text: to.into(),
            to: to.parse().expect("address"),
            matches: vec![Match::All],
            version: ForwardVersion::AsReceived,
            community: "nms".into(),
            sources: Sources::Site,
            source: None,
        };
        Arc::new(Table::new(
            Forwarding::new(vec![t("127.0.0.1:1"), t("127.0.0.1:2"), t("127.0.0.1:3")]),
            None,
        ))
    }

    #[test]
    fn a_worker_never_waits_for_a_batch_and_counts_what_it_drops() {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("waker"));
        let (full_tx, full_rx) = crossbeam_channel::bounded(1);
        let (free_tx, free_rx) = crossbeam_channel::bounded(1);
        let handoff = Handoff {
            full: full_tx,
            free: free_rx,
            waker,
            asleep: Arc::new(AtomicBool::new(true)),
        };
        let table = table();
        let trap = oid("1.3.6.1.6.3.1.1.5.1");
        let name = oid("1.3.6.1.6.3.1.1.4.1.0");
        let vbs = [crate::wire::VarBind {
            name: name.as_oid(),
            value: crate::wire::Value::ObjectId(trap.as_oid()),
        }];
        let bytes = encode::to_vec(&Message::pdu(
            crate::wire::Version::V2c,
            b"public",
            PduType::SNMPV2_TRAP,
            1,
            &vbs,
        ));
        let arena = Bump::new();
        let m = Message::parse(&bytes, &arena).expect("decodes");
        let source = "127.13.0.1".parse().expect("address");
        let mut filling = Filling::default();
        // No batch free: dropped for targets 1 and 3, at once.
        filling.push(&handoff, &table, &bytes, &m, source, 0b101);
        let dropped: Vec<u64> = table.rows().iter().map(|r| r.dropped).collect();
        assert_eq!(dropped, [1, 0, 1]);
        assert_eq!(filling.due_in(), None, "nothing held");
        // A batch free: written, and handed over at once to a thread that waits.
        let _ = free_tx.send(Batch {
            table: Arc::clone(&table),
            bytes: Vec::new(),
            items: Vec::new(),
        });
        filling.push(&handoff, &table, &bytes, &m, source, 0b010);
        assert!(filling.due_in().is_some(), "held until handed");
        filling.hand_if_due(&handoff);
        let b = full_rx.try_recv().expect("handed over");
        assert_eq!(b.items.len(), 1);
        assert_eq!(b.items[0].mask, 0b010);
        assert!(
            !handoff.asleep.load(Ordering::SeqCst),
            "the thread was woken"
        );
        assert_eq!(table.rows()[1].dropped, 0);
    }
}
