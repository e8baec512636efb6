//! The receive workers: the hot path of the live gateway, receive → decode → classify,
//! on as many threads as there are cores.
//!
//! Each worker owns one socket on every listen address (the sockets of one address form
//! a SO_REUSEPORT group) and its own mio reactor. The kernel steers every datagram to
//! a socket by its source address (a classic BPF program, `bind_group`), so all the
//! traps of one UPS reach one worker, in the order they came: no datagram is copied or
//! handed between threads to shard them. A worker reads each socket with `recvmmsg`
//! until it is empty and gives each datagram to the trap port's machine
//! (`crate::engine::ingress`), which drops datagrams from addresses that are not the
//! site's before decoding them, decodes into the worker's `bumpalo` arena (reset per
//! batch), classifies, checks what it may believe (`crate::engine::trust`: a UPS event
//! from the UPS's address with its community, an acknowledgement from the recorder's
//! with its), and says which answer to send back (an inform's, with the right community,
//! from the socket it came to) and where to forward. Only what the policy acts on
//! and believes (UPS events, recorder acknowledgements, a recorder heard from, at most
//! once a second each) goes to the decision thread, in batches over a bounded crossbeam
//! channel, in buffers that come back through a return channel: a batch is handed over
//! when its buffer is full, after four reads while the sockets still have more, or once
//! they are drained, and the decision thread is woken once until it looks (what the
//! policy ignores is counted and timed here, arrival → counted, and never crosses); everything refused is
//! counted by reason here, so a flood of forgeries never reaches the decision thread
//! (get-responses on the trap port among them: trapgate's polls are answered on their
//! own socket). A worker takes no lock per packet: its counts and latencies are
//! published to the decision thread twice a second.
//!
//! Back-pressure: a worker with no free buffer waits for one, and stops reading while
//! it waits; its socket's receive buffer fills and the kernel drops what does not fit,
//! which is counted (`socket_drops`). Nothing is shed inside trapgate.

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bumpalo::Bump;
use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::classify::{Classification, Classifier, Event};
use crate::daemon::clock::now;
use crate::daemon::server::StartError;
use crate::daemon::socket::{BATCH, RecvBatch, SendBatch, bind_group, socket_drops};
use crate::engine::config::Site;
use crate::engine::ingress::{Ingress, Port};
use crate::engine::metrics::Latency;
use crate::engine::pipeline::{Counters, Pipeline};
use crate::engine::tally::{Counter, Tallies};
use crate::engine::trust::{Refusal, Refusals, Trust};
use crate::engine::usm::{LocalEngine, Usm, local_engine_id};
use crate::time::Timestamp;
use crate::wire::Message;

/// Buffers of heard items in circulation between the workers and the decision thread.
const POOL: usize = 256;
/// Items a buffer holds: a worker fills one over several `recvmmsg` batches while its
/// sockets have more, and hands it over when it cannot take another batch or the
/// sockets are drained.
const HELD: usize = 4 * BATCH;
/// Reads (`recvmmsg` calls) a worker holds what it has for the decision thread while
/// its sockets have more.
const HOLD_READS: u32 = 4;
/// How often a worker publishes its counts and latencies.
const PUBLISH: Duration = Duration::from_millis(500);
const WAKE: Token = Token(usize::MAX);

/// What a worker knows of the site: who is who, and the rules. A new one comes at
/// each reload.
pub struct View {
    /// Bumped at each reload; a batch says which view classified it.
    pub generation: u32,
    classifier: Classifier,
    /// Who each address is, and what to believe from it.
    trust: Trust,
    recorders: usize,
    /// The site's SNMPv3 users, no engine heard yet (each worker keeps its own).
    usm: Usm,
    /// Where notifications are forwarded, with the targets' counts.
    pub forward: Arc<crate::daemon::forward::Table>,
}

impl View {
    /// The view of `site`, trapgate's engine booted `boots` times.
    pub fn new(site: &Site, generation: u32, boots: u32) -> View {
        let mut usm = Usm::new(site);
        usm.set_local(local_engine(site, boots));
        View {
            generation,
            classifier: site.classifier(),
            trust: Trust::new(site),
            recorders: site.recorders.len(),
            usm,
            forward: Arc::new(crate::daemon::forward::Table::new(
                site.forwarding.clone(),
                None,
            )),
        }
    }

    /// Takes `listen` (where the gateway hears traps) to know its own addresses as its
    /// forwards show them: what went through it is not forwarded again.
    pub fn forwarding_from(&mut self, listen: &[SocketAddr]) {
        let mut forwarding = self.forward.forwarding.clone();
        forwarding.set_own(crate::daemon::forward::own_addresses(&forwarding, listen));
        self.forward = Arc::new(crate::daemon::forward::Table::new(forwarding, None));
    }

    /// The budget of SNMPv3 Reports its workers take from (the gateway's one budget).
    pub fn usm_reports(&self) -> &crate::engine::usm::ReportBudget {
        self.usm.reports()
    }

    /// The book of the site's SNMPv3 engines its workers read and fill.
    pub fn usm_engines(&self) -> &crate::engine::usm::EngineBook {
        self.usm.engines()
    }

    /// What this view believes.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The rules this view classifies with.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The name of the rule behind `class`, which this view classified (a batch carries
    /// the view that made it: rule indices mean nothing in another view's tables).
    pub fn rule_name(&self, class: Classification) -> Cow<'_, str> {
        self.classifier.rule_name(class)
    }
}

pub use crate::engine::ingress::{Community, Heard};

/// A worker's batch: the items, and the view that made them (its classifier named their
/// rules, its trust admitted them).
pub struct Batch {
    /// The view.
    pub view: Arc<View>,
    /// What was heard, in arrival order.
    pub items: Vec<Heard>,
}

/// The last refused source of each reason, and its event if a notification.
pub type LastRefused = [(Option<IpAddr>, Option<Event>); Refusal::ALL.len()];

/// What the workers counted.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// The decode → classify counters.
    pub counters: Counters,
    /// The plain counts (`crate::engine::tally`): datagrams from addresses that are not
    /// the site's (and of those, the ones decoded for a `[[forward]]`), datagrams cut by
    /// the receive buffer, answers to informs the kernel refused to send.
    pub tallies: Tallies,
    /// Datagrams not believed, by reason.
    pub refusals: Refusals,
    /// The last refused of each reason.
    pub last_refused: LastRefused,
    /// What the kernel dropped on the workers' sockets (None: it does not say).
    pub kernel_drops: Option<u64>,
    /// Arrival → classified, for the notifications decided on the worker.
    pub latency: Latency,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.counters.add(&o.counters);
        self.tallies.sum(&o.tallies);
        self.refusals.sum(&o.refusals);
        for (mine, theirs) in self.last_refused.iter_mut().zip(&o.last_refused) {
            if theirs.0.is_some() {
                *mine = *theirs;
            }
        }
        self.kernel_drops = match (self.kernel_drops, o.kernel_drops) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.latency.add(&o.latency);
    }
}

struct Handle {
    thread: Option<JoinHandle<()>>,
    waker: Arc<Waker>,
    views: Sender<Arc<View>>,
    tally: Arc<Mutex<Tally>>,
}

/// The running workers, from the decision thread's side.
pub struct Receivers {
    /// Where they listen (port 0 resolved).
    pub bound: Vec<SocketAddr>,
    /// Whether the kernel steers by source address (more than one worker).
    pub steered: bool,
    workers: Vec<Handle>,
    stop: Arc<AtomicBool>,
    heard: Receiver<Batch>,
    free: Sender<Vec<Heard>>,
    /// A batch was handed over and the decision thread woken for it since it last
    /// looked: the workers do not wake it again (one eventfd write per wake-up, not
    /// per batch).
    pending: Arc<AtomicBool>,
}

/// The number of workers for a setting of 0 (one per core but one, which is left to the
/// decision thread; one at least) or more. On two cores a second worker costs more CPU
/// per trap than it gives (`README`, The receive path).
pub fn worker_count(setting: usize) -> usize {
    match setting {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
        n => n,
    }
}

/// Opens `workers` sockets on each of `listen` and starts a worker on each set; `wake`
/// is woken whenever a batch is waiting.
pub fn start(
    listen: &[SocketAddr],
    workers: usize,
    view: Arc<View>,
    wake: Arc<Waker>,
    forward: crate::daemon::forward::Handoff,
) -> Result<Receivers, StartError> {
    let n = workers.max(1);
    let mut sockets: Vec<Vec<(SocketAddr, UdpSocket)>> = (0..n).map(|_| Vec::new()).collect();
    let mut bound = Vec::with_capacity(listen.len());
    let mut steered = n > 1;
    for addr in listen {
        let (group, s) = bind_group(*addr, n).map_err(|e| StartError::Bind(*addr, e))?;
        let at = group[0].local_addr().map_err(StartError::Setup)?;
        bound.push(at);
        steered &= s;
        for (k, socket) in group.into_iter().enumerate() {
            sockets[k].push((at, UdpSocket::from_std(socket)));
        }
    }
    let ports: Vec<u16> = bound.iter().map(|a| a.port()).collect();
    let (free_tx, free_rx) = crossbeam_channel::bounded(POOL);
    for _ in 0..POOL {
        let _ = free_tx.send(Vec::with_capacity(HELD));
    }
    let (heard_tx, heard_rx) = crossbeam_channel::bounded(POOL);
    let stop = Arc::new(AtomicBool::new(false));
    let pending = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(n);
    for (k, mut mine) in sockets.into_iter().enumerate() {
        let poll = Poll::new().map_err(StartError::Setup)?;
        for (i, (_, s)) in mine.iter_mut().enumerate() {
            poll.registry()
                .register(s, Token(i), Interest::READABLE)
                .map_err(StartError::Setup)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(StartError::Setup)?);
        let (views_tx, views_rx) = crossbeam_channel::unbounded();
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut pipeline = Pipeline::new(view.classifier.clone(), &ports);
        pipeline.set_usm(view.usm.clone());
        let ingress = Ingress::new(pipeline, view.recorders);
        let worker = Worker {
            started: crate::daemon::clock::coarse_monotonic(),
            mono: Timestamp(0),
            ingress,
            view: Arc::clone(&view),
            sockets: mine,
            views: views_rx,
            stop: Arc::clone(&stop),
            heard: heard_tx.clone(),
            free: free_rx.clone(),
            wake: Arc::clone(&wake),
            tally: Arc::clone(&tally),
            out: Vec::with_capacity(HELD),
            pending: Arc::clone(&pending),
            held_reads: 0,
            decided: [(Event::Unknown, 0); BATCH],
            n_decided: 0,
            replies: SendBatch::new(),
            own: Tally {
                latency: Latency::preallocated(),
                ..Tally::default()
            },
            forward: forward.clone(),
            forwarding: crate::daemon::forward::Filling::default(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("trapgate-rx{k}"))
            .spawn(move || worker.run(poll))
            .map_err(StartError::Setup)?;
        handles.push(Handle {
            thread: Some(thread),
            waker,
            views: views_tx,
            tally,
        });
    }
    Ok(Receivers {
        bound,
        steered,
        workers: handles,
        stop,
        heard: heard_rx,
        free: free_tx,
        pending,
    })
}

impl Receivers {
    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Hands every waiting batch to `f`, and its buffer back to the workers.
    pub fn drain(&self, mut f: impl FnMut(&View, &[Heard])) {
        self.pending.store(false, Ordering::SeqCst);
        while let Ok(b) = self.heard.try_recv() {
            self.hand(b, &mut f);
        }
    }

    /// Hands at most `budget` waiting batches to `f`; true if more are waiting.
    pub fn drain_some(&self, budget: usize, mut f: impl FnMut(&View, &[Heard])) -> bool {
        // Looked at from here on: a batch handed over from now wakes the thread again.
        self.pending.store(false, Ordering::SeqCst);
        for _ in 0..budget {
            match self.heard.try_recv() {
                Ok(b) => self.hand(b, &mut f),
                Err(_) => return false,
            }
        }
        !self.heard.is_empty()
    }

    /// Hands batch `b` to `f`, then its buffer back to the workers.
    fn hand(&self, mut b: Batch, f: &mut impl FnMut(&View, &[Heard])) {
        f(&b.view, &b.items);
        b.items.clear();
        let _ = self.free.send(b.items);
    }

    /// Gives every worker the reloaded site.
    pub fn reload(&self, view: Arc<View>) {
        for w in &self.workers {
            let _ = w.views.send(Arc::clone(&view));
            let _ = w.waker.wake();
        }
    }

    /// What the workers refused so far, summed, and the last refused of each reason
    /// (read twice a second: none of the latencies is copied).
    pub fn refusals(&self) -> (Refusals, LastRefused) {
        let mut sum = (Refusals::default(), LastRefused::default());
        for w in &self.workers {
            if let Ok(t) = w.tally.lock() {
                sum.0.sum(&t.refusals);
                for (mine, theirs) in sum.1.iter_mut().zip(&t.last_refused) {
                    if theirs.0.is_some() {
                        *mine = *theirs;
                    }
                }
            }
        }
        sum
    }

    /// What the workers have published so far, summed.
    pub fn tally(&self) -> Tally {
        let mut sum = Tally {
            kernel_drops: Some(0),
            ..Tally::default()
        };
        for w in &self.workers {
            if let Ok(t) = w.tally.lock() {
                sum.add(&t);
            }
        }
        sum
    }

    /// Stops the workers once they have read what their sockets hold, handing `f` every
    /// batch until the last one; returns their final tally.
    pub fn stop(&mut self, mut f: impl FnMut(&View, &[Heard])) -> Tally {
        self.stop.store(true, Ordering::Release);
        for w in &self.workers {
            let _ = w.waker.wake();
        }
        while self
            .workers
            .iter()
            .any(|w| w.thread.as_ref().is_some_and(|t| !t.is_finished()))
        {
            if let Ok(b) = self.heard.recv_timeout(Duration::from_millis(5)) {
                self.hand(b, &mut f);
            }
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        self.drain(&mut f);
        self.tally()
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for w in &self.workers {
            let _ = w.waker.wake();
        }
        // A worker waiting for a buffer learns of the stop when the channels close.
    }
}

struct Worker {
    /// The origin of the security model's clock (monotonic: a wall-clock step must not
    /// move an engine's time window; coarse: a window of seconds needs no timer read),
    /// and that clock at the batch being read.
    started: u64,
    mono: Timestamp,
    view: Arc<View>,
    /// The trap port's machine: decode, classify, trust, answers, routes.
    ingress: Ingress,
    sockets: Vec<(SocketAddr, UdpSocket)>,
    views: Receiver<Arc<View>>,
    stop: Arc<AtomicBool>,
    heard: Sender<Batch>,
    free: Receiver<Vec<Heard>>,
    wake: Arc<Waker>,
    tally: Arc<Mutex<Tally>>,
    out: Vec<Heard>,
    /// Set when a batch is handed over and the decision thread woken; cleared by it.
    pending: Arc<AtomicBool>,
    /// Reads since `out` began to fill.
    held_reads: u32,
    /// The batch's notifications decided on the worker, timed when the batch is done
    /// (one clock read a batch).
    decided: [(Event, u64); BATCH],
    n_decided: usize,
    replies: SendBatch,
    /// Counts and latencies since the last publication.
    own: Tally,
    /// Where notifications to forward go, and the batch being filled.
    forward: crate::daemon::forward::Handoff,
    forwarding: crate::daemon::forward::Filling,
}

impl Worker {
    fn run(mut self, mut poll: Poll) {
        let mut events = Events::with_capacity(16);
        let mut batch = RecvBatch::new();
        let mut arena = Bump::with_capacity(256 * 1024);
        let mut published = crate::daemon::clock::coarse_monotonic();
        loop {
            // A batch to forward is handed over within its linger.
            let wait = self.forwarding.due_in().map_or(PUBLISH, |d| d.min(PUBLISH));
            if let Err(e) = poll.poll(&mut events, Some(wait))
                && e.kind() != io::ErrorKind::Interrupted
            {
                crate::daemon::console::warn(format!("trapgate: receive worker: {e}"));
                break;
            }
            // A new view comes with a wake-up (`Receivers::reload`): the channel is
            // looked at then, not at every batch.
            let woken = events.iter().any(|e| e.token() == WAKE);
            while woken && let Ok(view) = self.views.try_recv() {
                let pipeline = self.ingress.pipeline_mut();
                pipeline.set_classifier(view.classifier.clone());
                pipeline.usm_mut().reload(view.usm.clone());
                self.ingress.reload(view.recorders);
                self.view = view;
            }
            if self.stop.load(Ordering::Acquire) {
                // What the sockets hold is read before the worker goes.
                for i in 0..self.sockets.len() {
                    self.drain(i, &mut batch, &mut arena);
                }
                break;
            }
            for event in events.iter() {
                if let Token(i) = event.token()
                    && i < self.sockets.len()
                {
                    self.drain(i, &mut batch, &mut arena);
                }
            }
            self.forwarding.hand_if_due(&self.forward);
            // Twice a second, by the coarse clock (no timer read per wake-up).
            let now = crate::daemon::clock::coarse_monotonic();
            if now.saturating_sub(published) >= PUBLISH.as_nanos() as u64 {
                published = now;
                self.publish();
            }
        }
        self.forwarding.hand(&self.forward);
        self.publish();
    }

    /// Reads socket `i` until it is empty (readiness is edge-triggered).
    fn drain(&mut self, i: usize, batch: &mut RecvBatch, arena: &mut Bump) {
        let (local, fd) = (self.sockets[i].0, self.sockets[i].1.as_raw_fd());
        loop {
            match batch.recv(fd) {
                Ok(0) => break,
                Ok(n) => {
                    arena.reset();
                    self.mono = Timestamp(
                        crate::daemon::clock::coarse_monotonic().saturating_sub(self.started),
                    );
                    for k in 0..n {
                        let Some((src, payload, cut)) = batch.get(k) else {
                            continue;
                        };
                        // The kernel stamps every datagram (SO_TIMESTAMPNS); the clock
                        // is read here only if it did not.
                        let arrival = batch.arrival(k).unwrap_or_else(|| now().0);
                        self.datagram(local, src, payload, cut, arrival, arena);
                    }
                    let done = now().0;
                    for &(event, arrival) in &self.decided[..self.n_decided] {
                        self.own
                            .latency
                            .record_counted(event, done.saturating_sub(arrival));
                    }
                    self.n_decided = 0;
                    if !self.replies.is_empty() {
                        let (_, failed) = self.replies.flush(fd);
                        self.own
                            .tallies
                            .add(Counter::SendErrors, failed.len() as u64);
                    }
                    // Handed over when the next batch might not fit, or after
                    // `HOLD_READS` reads (a flood of what does not cross never drains
                    // the socket: what does must not wait for its end), else once the
                    // sockets are drained: a burst crosses in few batches.
                    if !self.out.is_empty() {
                        self.held_reads += 1;
                    }
                    if self.out.len() + BATCH > self.out.capacity() || self.held_reads >= HOLD_READS
                    {
                        self.forward();
                    }
                    self.forwarding.hand_if_due(&self.forward);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::daemon::console::warn(format!("trapgate: receive on {local}: {e}"));
                    break;
                }
            }
        }
        self.forward();
    }

    /// One datagram, decided by the trap port's machine (`Ingress`): its answer sent
    /// back, its forwards handed over, what the station hears kept for the decision
    /// thread, a refusal counted, each as it is decided (nothing of it is moved).
    fn datagram(
        &mut self,
        local: SocketAddr,
        src: SocketAddr,
        payload: &[u8],
        cut: bool,
        arrival: u64,
        arena: &Bump,
    ) {
        let mut sinks = Sinks {
            src,
            payload,
            arrival,
            replies: &mut self.replies,
            forwarding: &mut self.forwarding,
            forward: &self.forward,
            table: &self.view.forward,
            decided: &mut self.decided,
            n_decided: &mut self.n_decided,
            own: &mut self.own,
            out: &mut self.out,
        };
        self.ingress.handle_into(
            &self.view.trust,
            &self.view.forward.forwarding,
            self.mono,
            (local, src),
            payload,
            cut,
            arrival,
            arena,
            &mut sinks,
        );
    }

    /// Sends what this batch gave the policy to the decision thread, and wakes it.
    fn forward(&mut self) {
        self.held_reads = 0;
        if self.out.is_empty() {
            return;
        }
        // No free buffer: the decision thread is behind; wait (the socket's buffer
        // holds what comes meanwhile). Closed channels: the gateway is going.
        let Ok(next) = self.free.recv() else {
            self.out.clear();
            return;
        };
        let items = std::mem::replace(&mut self.out, next);
        let batch = Batch {
            view: Arc::clone(&self.view),
            items,
        };
        if self.heard.send(batch).is_err() {
            return;
        }
        self.own.tallies.inc(Counter::WorkerBatches);
        // Woken once until it looks: a thread already woken finds this batch too.
        if !self.pending.swap(true, Ordering::SeqCst) {
            self.own.tallies.inc(Counter::WorkerWakeups);
            let _ = self.wake.wake();
        }
    }

    /// Publishes the counts and latencies to the decision thread (a lock twice a
    /// second, never per packet).
    fn publish(&mut self) {
        if let Ok(mut t) = self.tally.lock() {
            t.counters = self.ingress.pipeline().counters().clone();
            t.tallies = self.own.tallies;
            t.tallies.sum(self.ingress.tallies());
            t.refusals = self.own.refusals;
            t.last_refused = self.own.last_refused;
            t.kernel_drops = self
                .sockets
                .iter()
                .map(|(_, s)| socket_drops(s.as_raw_fd()))
                .sum();
            if !self.own.latency.is_empty() {
                t.latency.add(&self.own.latency);
                self.own.latency.reset();
            }
        }
    }
}

/// Where one datagram's parts go on a worker (`Ingress::handle_into`).
struct Sinks<'w> {
    src: SocketAddr,
    payload: &'w [u8],
    arrival: u64,
    replies: &'w mut SendBatch,
    forwarding: &'w mut crate::daemon::forward::Filling,
    forward: &'w crate::daemon::forward::Handoff,
    table: &'w Arc<crate::daemon::forward::Table>,
    decided: &'w mut [(Event, u64); BATCH],
    n_decided: &'w mut usize,
    own: &'w mut Tally,
    out: &'w mut Vec<Heard>,
}

impl<'a> Port<'a> for Sinks<'_> {
    fn reply(&mut self, _: &'static str, bytes: &[u8]) {
        self.replies.push(self.src, bytes);
    }

    fn forward(&mut self, mask: u64, m: &Message<'a>) {
        self.forwarding.push(
            self.forward,
            self.table,
            self.payload,
            m,
            self.src.ip(),
            mask,
        );
    }

    fn heard(&mut self, heard: Heard) {
        self.out.push(heard);
    }

    /// Timed when the batch is done (one clock read a batch).
    fn decided(&mut self, event: Event) {
        if let Some(slot) = self.decided.get_mut(*self.n_decided) {
            *slot = (event, self.arrival);
            *self.n_decided += 1;
        }
    }

    fn refused(&mut self, why: Refusal, event: Option<Event>) {
        self.own.refusals.add(why);
        self.own.last_refused[why.index()] = (Some(self.src.ip()), event);
    }
}

/// The response to an inform: the same request id and bindings.
/// This host's name (the kernel's; empty if it cannot be read): its SNMPv3 engine ID's
/// and syslog's HOSTNAME.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// trapgate's SNMPv3 engine for `site`: the site's engine ID, or one made from the
/// host's name (the same at every start), booted `boots` times.
pub fn local_engine(site: &Site, boots: u32) -> LocalEngine {
    let id = site
        .gateway
        .engine_id
        .clone()
        .unwrap_or_else(|| local_engine_id(&host_name()));
    LocalEngine { id, boots }
}

/// snmpEngineBoots for a start now, kept beside `journal` if there is one
/// (`JOURNAL.engine-boots`): one more than the last start's, and never less than the
/// wall clock's count (`boots_now`), so that it grows at every start even if the clock
/// was set back, or the file lost.
pub fn boots_kept(journal: Option<&std::path::Path>) -> u32 {
    let clock = boots_now();
    let Some(journal) = journal else {
        return clock;
    };
    let mut name = journal.as_os_str().to_owned();
    name.push(".engine-boots");
    let file = std::path::PathBuf::from(name);
    let last = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let boots = last.saturating_add(1).max(clock).min(i32::MAX as u32 - 1);
    let tmp = file.with_extension("engine-boots.tmp");
    let written =
        std::fs::write(&tmp, format!("{boots}\n")).and_then(|()| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        crate::daemon::console::warn(format!(
            "trapgate: cannot keep the SNMPv3 engine boots in {}: {e}",
            file.display()
        ));
    }
    boots
}

/// snmpEngineBoots for a start now: the seconds since 2026-01-01 by the wall clock, so
/// that it grows at every start without a file to keep it in (RFC 3414 asks only that it
/// grow; it reaches 2³¹ in 2094).
pub fn boots_now() -> u32 {
    const EPOCH_2026: u64 = 1_767_225_600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_sub(EPOCH_2026).clamp(1, i32::MAX as u64 - 1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::rules::{Ev, TrapRule};
    use crate::wire::oid::oid;

    #[test]
    fn a_batch_is_named_by_the_view_that_classified_it() {
        let before = Site::default_site();
        let mut after = before.clone();
        after.rules.push(TrapRule {
            oid: oid("1.3.6.1.4.1.99999.0.1"),
            name: "siteLowBattery".into(),
            mib: "SITE-MIB".into(),
            event: Ev::Is(Event::LowBattery),
            prefix: false,
        });
        let (old, new) = (View::new(&before, 0, 1), View::new(&after, 1, 1));
        let trap = oid("1.3.6.1.4.1.99999.0.1");
        let class = new.classifier().classify(trap.as_oid(), &[]);
        assert_eq!(class.event, Event::LowBattery);
        assert_eq!(new.rule_name(class), "siteLowBattery");
        // The site's own rule is past the end of the older view's tables: why a batch
        // carries the view that made it, and is named by it alone.
        assert!(
            class
                .rule
                .is_some_and(|r| r as usize >= old.classifier().rules().len())
        );
    }

    #[test]
    fn the_default_leaves_a_core_to_the_decision_thread() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let default = worker_count(0);
        assert!(default >= 1, "at least one worker");
        if cores > 1 {
            assert_eq!(default, cores - 1, "{cores} cores");
        }
        assert_eq!(worker_count(3), 3, "a number chosen is taken as it is");
    }
}

#[cfg(test)]
mod boots_tests {
    use super::*;

    #[test]
    fn engine_boots_grow_at_each_start_even_past_a_clock_set_back() {
        let dir = std::env::temp_dir().join(format!("trapgate-boots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let journal = dir.join("journal.jsonl");
        let kept = dir.join("journal.jsonl.engine-boots");
        let _ = std::fs::remove_file(&kept);
        let first = boots_kept(Some(&journal));
        assert!(
            first >= boots_now().saturating_sub(1),
            "at least the clock's count"
        );
        // A start before had counted further than the clock does now (it was set back).
        std::fs::write(&kept, format!("{}\n", first + 5_000)).unwrap();
        assert_eq!(boots_kept(Some(&journal)), first + 5_001);
        assert_eq!(boots_kept(Some(&journal)), first + 5_002);
        assert_eq!(
            std::fs::read_to_string(&kept).unwrap().trim(),
            (first + 5_002).to_string()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
