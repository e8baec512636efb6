//! The live gateway's decision thread: the daemon's driver of the station
//! (`crate::engine::station`), which decides and acts. The receive workers
//! (`crate::daemon::receive`) read the trap sockets, decode, classify and check what
//! they may believe; this thread owns the station, the virtual UPS's socket, the poll
//! sockets (the UPSes' answers come back there, and nowhere else), the journal, the
//! commands, and the console.
//!
//! Every turn of the loop: take what each input has, each within its budget (the
//! workers' batches, the poll sockets, the agent socket, finished commands, reloads,
//! signals) and hand it to the station with its time; then act on what the station has:
//! journal its records and fsync the decisions, and only then send what they decided
//! (shutdown traps in `sendmmsg` batches from the agent socket, the recorder's "UPS";
//! polls; answers), start the commands, and tell the station what left. No input can
//! starve the others, nor the timers: a flood costs at most its budget a turn. Time is
//! the monotonic clock (`daemon::clock`); the wall clock only labels what is printed.
//! Output goes through the console's queues, so a stdout nobody reads never holds up an
//! order. SIGINT/SIGTERM stop it cleanly (the workers' last batches decided first);
//! SIGHUP reloads the site, read and prepared on a thread of its own. With a journal, a
//! restart resumes the outage in progress (`crate::daemon::journal::resume`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bumpalo::Bump;
use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;

use crate::daemon::clock::now;
use crate::daemon::clock::{Clock, OsTime, TimeSource};
use crate::daemon::console;
use crate::daemon::exec::{self, Finished};
use crate::daemon::journal::{self, Hand, Journal};
use crate::daemon::pair::{FromPeer, PairLink};
use crate::daemon::random::OsRandom;
use crate::daemon::receive::{self, Heard, LastRefused, Tally, View};
use crate::daemon::server::{StartError, Stopped};
use crate::daemon::socket::{RecvBatch, SendBatch, Whole, bind_udp, socket_drops};
use crate::engine::config::Site;
use crate::engine::metrics::Stats;
use crate::engine::record::{Decided, Record};
use crate::engine::room;
use crate::engine::station::{self, Notification, Prepared, Purpose, Relays, Station, Via};
use crate::engine::tally::Counter;
use crate::engine::trust::{Credential, Refusal, Refusals};
use crate::time::{Timestamp, ns};

/// How the gateway runs, beyond its site.
#[derive(Clone, Default)]
pub struct Options {
    /// Trap sockets (empty: the site's `listen`).
    pub listen: Vec<SocketAddr>,
    /// The agent socket (None: the site's `agent`).
    pub agent: Option<SocketAddr>,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// Journal every record here, and resume from it at start.
    pub journal: Option<PathBuf>,
    /// Decide, journal and report, but send nothing to recorders.
    pub dry_run: bool,
    /// How fast the policy's clock runs against the real one (1, or 0: real time; the
    /// demo runs the seed's minutes in seconds).
    pub speed: f64,
    /// Receive workers (None: the site's `[gateway] workers`; 0: one per core but one).
    pub workers: Option<usize>,
    /// Where the clock reads the time (None: the OS; tests step a clock of their own).
    pub time: Option<Arc<dyn TimeSource>>,
    /// A handle that stops it as SIGTERM does, from another thread (the demo, tests
    /// that run the gateway in process).
    pub shutdown: Option<Shutdown>,
}

/// Stops a gateway running in this process, as SIGINT or SIGTERM would (its workers'
/// last batches decided, what it holds sent, its summary returned), without raising a
/// signal in the process. Cloned freely; `stop` may come before the gateway has started.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<ShutdownInner>);

#[derive(Debug, Default)]
struct ShutdownInner {
    asked: AtomicBool,
    waker: std::sync::OnceLock<Arc<Waker>>,
}

impl Shutdown {
    /// A handle not yet asked.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks the gateway to stop, and wakes it.
    pub fn stop(&self) {
        self.0
            .asked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(w) = self.0.waker.get() {
            let _ = w.wake();
        }
    }

    fn asked(&self) -> bool {
        self.0.asked.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn attach(&self, waker: &Arc<Waker>) {
        let _ = self.0.waker.set(Arc::clone(waker));
    }
}

impl core::fmt::Debug for Options {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field("agent", &self.agent)
            .field("metrics", &self.metrics)
            .field("journal", &self.journal)
            .field("dry_run", &self.dry_run)
            .field("speed", &self.speed)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// Where the gateway listens, once it does.
#[derive(Clone, Debug)]
pub struct Bound {
    /// The trap sockets.
    pub listen: Vec<SocketAddr>,
    /// The agent socket.
    pub agent: SocketAddr,
    /// The sockets the UPSes are polled from, IPv4 then IPv6 where there is one (their
    /// answers count only there).
    pub polls: Vec<SocketAddr>,
    /// The metrics endpoint.
    pub metrics: Option<SocketAddr>,
    /// Receive workers, each with its own socket on every listen address.
    pub workers: usize,
    /// Whether the kernel steers each source to one worker (more than one worker).
    pub steered: bool,
    /// What a journal gave back at start.
    pub resumed: Option<Resumed>,
    /// trapgate's SNMPv3 engine (what a v3 recorder or inform sender needs).
    pub engine: crate::engine::usm::LocalEngine,
    /// Where the NUT server listens, if it does.
    pub nut: Option<SocketAddr>,
    /// Where the apcupsd NIS server listens, if it does.
    pub nis: Option<SocketAddr>,
    /// The gateway's clock (the station's timeline: what the records' times are on).
    pub clock: Clock,
    /// A pair's: this gateway's endpoint, its peer's, the pair's address, and whether it
    /// acts at start.
    pub pair: Option<(SocketAddr, SocketAddr, IpAddr, bool)>,
}

/// What a restart found in its journal.
#[derive(Clone, Debug, Default)]
pub struct Resumed {
    /// Records read.
    pub records: usize,
    /// Damaged lines skipped (a torn last line after a crash is one).
    pub damaged: usize,
    /// Recorders that had been ordered and not acknowledged.
    pub waiting: usize,
    /// Recorders that had acknowledged.
    pub acknowledged: usize,
    /// Orders decided and not journaled as sent (the crash came between, or just after
    /// the send): sent once, an acknowledgement wait after they were decided.
    pub unsent: usize,
}

/// Records the status page shows.
const LATEST: usize = 50;
/// How often the metrics snapshot is refreshed, at most.
const PUBLISH: Duration = Duration::from_secs(1);
/// How often the workers' refusal counts are read into the journal's summaries.
const TALLY: u64 = ns::SECOND / 2;
const SIGNALS: Token = Token(usize::MAX);
const WAKE: Token = Token(usize::MAX - 1);
const AGENT: Token = Token(usize::MAX - 2);
/// The poll sockets, IPv4 and IPv6.
const POLLS: [Token; 2] = [Token(usize::MAX - 3), Token(usize::MAX - 4)];
/// A pair's channel, and the kernel's word on the host's addresses (`MAX - 5` and `MAX - 6`
/// are the NUT and NIS servers' listeners).
const PAIR: Token = Token(usize::MAX - 7);
const PAIR_WATCH: Token = Token(usize::MAX - 8);
/// Datagrams of the peer's read in one turn, at most.
const PAIR_PER_TURN: usize = 256;

/// What each input may take in one turn of the loop, so that none starves the others
/// or the timers (quinn's work limiter): batches from the workers (up to 64 items
/// each), datagrams on the poll sockets, datagrams on the agent socket.
const BATCHES_PER_TURN: usize = 32;
const ANSWERS_PER_TURN: usize = 256;
const REQUESTS_PER_TURN: usize = 64;

/// How often one kind of warning is said on stderr, at most.
const SAY_EVERY: u64 = 10 * ns::SECOND;

/// The IPv4 address the gateway's traps to `to` leave from (the v1 agent-addr): the
/// agent's own if it is bound to one, else the kernel's route to `to`.
fn agent_addr_toward(agent: SocketAddr, to: SocketAddr) -> [u8; 4] {
    if let IpAddr::V4(a) = agent.ip()
        && !a.is_unspecified()
    {
        return a.octets();
    }
    let route = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(to).and_then(|_| s.local_addr()));
    match route {
        Ok(SocketAddr::V4(a)) => a.ip().octets(),
        _ => [0; 4],
    }
}

/// Where each recorder's trap goes, and the agent-addr it carries.
fn relays(site: &Site, agent: SocketAddr) -> Relays {
    site.recorders
        .iter()
        .map(|r| {
            let to = SocketAddr::new(r.address, r.port);
            (to, agent_addr_toward(agent, to))
        })
        .collect()
}

/// What the reload thread is asked.
enum Ask {
    /// Read the site file; remap from this running site.
    Read(Arc<Site>),
    /// Drop what the decision thread replaced (100,000 recorders' worth of strings).
    Drop(station::Replaced),
}

/// A site read for SIGHUP, with the workers' view of it: made off the decision thread.
type Read = Result<Box<(Prepared, View)>, String>;

/// Reads and checks site files for SIGHUP on a thread of its own: a file with 100,000
/// recorders, or 100,000 mistakes, never holds the decision thread.
struct Reloader {
    ask: Sender<Ask>,
    done: Receiver<Read>,
    busy: bool,
    again: bool,
}

impl Reloader {
    fn start(
        mut reload: impl FnMut() -> Result<Site, String> + Send + 'static,
        agent: SocketAddr,
        listen: Vec<SocketAddr>,
        boots: u32,
        waker: Arc<Waker>,
    ) -> Reloader {
        let (ask, asked) = crossbeam_channel::unbounded::<Ask>();
        let (tell, done) = crossbeam_channel::unbounded();
        let _ = std::thread::Builder::new()
            .name("trapgate-reload".into())
            .spawn(move || {
                for ask in asked {
                    let base = match ask {
                        Ask::Read(base) => base,
                        Ask::Drop(old) => {
                            drop(old);
                            continue;
                        }
                    };
                    let prepared: Read = reload().map(|site| {
                        let mut view = View::new(&site, 0, boots);
                        view.forwarding_from(&listen);
                        let relays = relays(&site, agent);
                        Box::new((Prepared::new(site, base, relays, Box::new(OsRandom)), view))
                    });
                    if tell.send(prepared).is_err() {
                        break;
                    }
                    let _ = waker.wake();
                }
            });
        Reloader {
            ask,
            done,
            busy: false,
            again: false,
        }
    }

    /// SIGHUP: read the file (again, once a read under way is done: the file may have
    /// changed since it began).
    fn request(&mut self, running: &Arc<Site>) {
        if self.busy {
            self.again = true;
        } else if self.ask.send(Ask::Read(Arc::clone(running))).is_ok() {
            self.busy = true;
        }
    }

    /// A site read, if one is ready.
    fn ready(&mut self) -> Option<Read> {
        let r = self.done.try_recv().ok()?;
        self.busy = false;
        Some(r)
    }

    /// Whether a read was asked for while one was under way.
    fn wanted_again(&mut self) -> bool {
        std::mem::take(&mut self.again)
    }

    /// Drops `old` on the reload thread.
    fn discard(&self, old: station::Replaced) {
        let _ = self.ask.send(Ask::Drop(old));
    }
}

/// The sockets polls leave from, and their answers come back to: one IPv4, one IPv6,
/// each on the agent's address where it is of that family (else the family's any
/// address), on a port the kernel picks. One that cannot be opened (no IPv6 here) is
/// left out, unless it is the agent's own family.
struct PollSockets([Option<UdpSocket>; 2]);

/// From this many datagrams waiting on decisions, they are encoded while the journal's
/// fsync runs on another thread (below it, a thread costs more than it saves).
const OVERLAP_AT: usize = 64;

/// The station's datagrams, encoded and waiting to leave: the virtual UPS's socket's
/// batch (orders, answers) and each poll socket's (IPv4, IPv6), each with what every
/// datagram is for; polls toward a family without a socket here.
#[derive(Default)]
struct Outbox {
    agent: SendBatch,
    agent_for: Vec<(Purpose, SocketAddr)>,
    polls: [SendBatch; 2],
    polls_for: [Vec<(Purpose, SocketAddr)>; 2],
    /// The outlets' requests to their cards, from the poll sockets after the orders.
    commands: [SendBatch; 2],
    commands_for: [Vec<(Purpose, SocketAddr)>; 2],
    unsendable: Vec<Purpose>,
    /// Wake-on-LAN magic packets (a few an outage): sent one by one from a socket that
    /// may broadcast.
    wol: Vec<(Purpose, SocketAddr, Vec<u8>)>,
    /// How the agent's and the poll sockets' batches leave (IPv4): a fan-out's orders
    /// and SETs whole with IP ID 0, the agent's large answers fragmentable.
    agent_whole: Whole,
    polls_whole: [Whole; 2],
}

impl Outbox {
    /// Takes every datagram the station has (orders are encoded now).
    fn take(&mut self, station: &mut Station, polls: &PollSockets) {
        station.drain_transmits(|tx, bytes| match tx.via {
            // A card's command (an outlet's read or SET) leaves after the orders.
            Via::Poll
                if polls.toward(tx.to).is_some()
                    && matches!(tx.purpose, Purpose::Command { .. }) =>
            {
                let f = usize::from(tx.to.is_ipv6());
                self.commands[f].push(tx.to, bytes);
                self.commands_for[f].push((tx.purpose, tx.to));
            }
            Via::Poll if polls.toward(tx.to).is_some() => {
                let f = usize::from(tx.to.is_ipv6());
                self.polls[f].push(tx.to, bytes);
                self.polls_for[f].push((tx.purpose, tx.to));
            }
            Via::Poll => self.unsendable.push(tx.purpose),
            Via::Agent => {
                self.agent.push(tx.to, bytes);
                self.agent_for.push((tx.purpose, tx.to));
            }
            Via::Wol => self.wol.push((tx.purpose, tx.to, bytes.to_vec())),
        });
    }
}

/// A socket that may broadcast, for Wake-on-LAN (opened each time: a few packets an
/// outage).
fn wol_socket(v6: bool) -> io::Result<std::net::UdpSocket> {
    let s = if v6 {
        std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?
    } else {
        std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?
    };
    if !v6 {
        s.set_broadcast(true)?;
    }
    Ok(s)
}

impl PollSockets {
    fn bind(agent: IpAddr) -> Result<PollSockets, StartError> {
        let mut sockets = [None, None];
        let families = [
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), agent.is_ipv4()),
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), agent.is_ipv6()),
        ];
        for (slot, (any, own)) in sockets.iter_mut().zip(families) {
            let at = SocketAddr::new(if own { agent } else { any }, 0);
            match bind_udp(at) {
                Ok(s) => *slot = Some(UdpSocket::from_std(s)),
                Err(e) if own => return Err(StartError::Bind(at, e)),
                Err(_) => {}
            }
        }
        Ok(PollSockets(sockets))
    }

    /// The socket toward `to`'s family.
    fn toward(&self, to: SocketAddr) -> Option<&UdpSocket> {
        self.0[usize::from(to.is_ipv6())].as_ref()
    }

    fn bound(&self) -> Vec<SocketAddr> {
        self.0
            .iter()
            .flatten()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// What the kernel dropped on the agent and poll sockets (their receive buffers full).
fn own_drops(agent: &UdpSocket, polls: &PollSockets) -> Option<u64> {
    let mut sum = socket_drops(agent.as_raw_fd())?;
    for s in polls.0.iter().flatten() {
        sum += socket_drops(s.as_raw_fd())?;
    }
    Some(sum)
}

/// Shows records on a thread of its own, in the order they are handed to it: each is
/// formatted as `run` prints it (with its time as UTC), kept among the latest for the
/// status page (with an HTTP endpoint), and given to `report`. Formatting a fan-out's
/// thousands of records no longer takes the decision thread from the cards' answers.
/// A record the gateway shows (decisions and actions, as journaled): handed out typed,
/// with its printed form (the JSON line `run` prints).
#[derive(Debug)]
pub struct Shown<'a> {
    /// When, on the clock records are labelled by.
    pub at: Timestamp,
    /// The record.
    pub record: &'a Record,
    /// Whether the journal holds it (false: it could not be written).
    pub journaled: bool,
    /// As printed.
    pub printed: &'a serde_json::Value,
}

struct Shower {
    tx: Option<Sender<(Timestamp, Record, bool, i64)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    latest: Arc<std::sync::Mutex<std::collections::VecDeque<serde_json::Value>>>,
}

impl Shower {
    fn start(mut report: impl FnMut(&Shown<'_>) + Send + 'static, keep_latest: bool) -> Shower {
        let (tx, rx) = crossbeam_channel::unbounded::<(Timestamp, Record, bool, i64)>();
        let latest = Arc::new(std::sync::Mutex::new(
            std::collections::VecDeque::with_capacity(LATEST),
        ));
        let kept = Arc::clone(&latest);
        let thread = std::thread::Builder::new()
            .name("trapgate-show".into())
            .spawn(move || {
                for (t, r, journaled, offset) in rx {
                    let mut v = r.printed(t.shifted(offset), offset);
                    if !journaled && let Some(o) = v.as_object_mut() {
                        o.insert("journaled".into(), serde_json::Value::Bool(false));
                    }
                    if keep_latest && let Ok(mut l) = kept.lock() {
                        if l.len() == LATEST {
                            l.pop_front();
                        }
                        l.push_back(v.clone());
                    }
                    report(&Shown {
                        at: t.shifted(offset),
                        record: &r,
                        journaled,
                        printed: &v,
                    });
                }
            })
            .ok();
        Shower {
            tx: Some(tx),
            thread,
            latest,
        }
    }

    /// Hands `r` (made at `t`, labelled with the wall clock's lead `offset`) over.
    fn show(&self, t: Timestamp, r: Record, journaled: bool, offset: i64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((t, r, journaled, offset));
        }
    }

    /// The latest records shown.
    fn latest(&self) -> Vec<serde_json::Value> {
        self.latest
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every record handed over is shown before this returns.
    fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shower {
    fn drop(&mut self) {
        self.finish();
    }
}

/// What is journaled and shown: the journal, the records waiting for it, the shower.
struct Books {
    /// Shows the records.
    shower: Shower,
    journal: Option<Journal>,
    /// The journal's thread (with a journal): a fan-out's decisions are made durable
    /// there while their orders are encoded.
    hand: Option<Hand>,
    journal_path: Option<PathBuf>,
    /// The journal's last append or fsync failed (an alert was raised).
    journal_failing: bool,
    /// Records not yet shown, each with whether it is in the journal: shown once the
    /// journal holds them, and after the orders they decided have left (showing
    /// thousands of records must not hold up one order). Those from `committed` on
    /// wait for the journal's next write.
    unshown: Vec<(Timestamp, Record)>,
    /// Whether each of `unshown` is in the journal, side by side.
    journaled: Vec<bool>,
    /// The wall clock's lead when each of `unshown` was taken (its label: a clock
    /// stepped since does not relabel it).
    labels: Vec<i64>,
    committed: usize,
    line: Vec<u8>,
}

impl Books {
    fn new(
        journal: Option<Journal>,
        journal_path: Option<PathBuf>,
        report: impl FnMut(&Shown<'_>) + Send + 'static,
        keep_latest: bool,
    ) -> Books {
        // Without the thread (the system refused one), the appends and the sync run on
        // the decision thread before the orders are encoded.
        let hand = journal.as_ref().and_then(|_| match Hand::start() {
            Ok(h) => Some(h),
            Err(e) => {
                crate::daemon::console::warn(format!(
                    "trapgate: no thread for the journal ({e}): its syncs are not overlapped"
                ));
                None
            }
        });
        Books {
            shower: Shower::start(report, keep_latest),
            journal,
            hand,
            journal_path,
            journal_failing: false,
            unshown: Vec::new(),
            journaled: Vec::new(),
            labels: Vec::new(),
            committed: 0,
            line: Vec::with_capacity(512),
        }
    }
}

/// When each kind of warning was last said on stderr, and how many were not said since.
#[derive(Default)]
struct Said(Vec<(&'static str, Timestamp, u64)>);

impl Said {
    /// Says `text` on stderr, at most once every 10 s for one `kind`.
    fn say(&mut self, now: Timestamp, kind: &'static str, text: String) {
        match self.0.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, at, quiet)) if now.ns_since(*at) < SAY_EVERY => *quiet += 1,
            Some((_, at, quiet)) => {
                let more = std::mem::take(quiet);
                *at = now;
                let note = if more > 0 {
                    format!(" ({more} more like it not shown)")
                } else {
                    String::new()
                };
                console::warn(format!("trapgate: {text}{note}"));
            }
            None => {
                self.0.push((kind, now, 0));
                console::warn(format!("trapgate: {text}"));
            }
        }
    }
}

/// The daemon's side of the station: what it hears, what it journals and shows, what it
/// sends.
struct Driver {
    clock: Clock,
    station: Station,
    /// The site as the workers see it now (a batch carries the view that made it).
    view: Arc<View>,
    /// The forward thread.
    forwarder: crate::daemon::forward::Forwarder,
    books: Books,
    outbox: Outbox,
    exec_tx: Sender<Finished>,
    waker: Arc<Waker>,
    /// The decision thread's own counts and latencies (`stats` adds the others').
    own: Stats,
    /// Kernel arrival of the earliest datagram heard this turn.
    first_arrival: Option<u64>,
    /// The workers' refusals handed to the station so far.
    noted: Refusals,
    said: Said,
    /// This gateway's half of a pair (`[pair]`).
    pair: Option<PairLink>,
    /// The site's other systems (`[[notify]]`), each told on a thread of its own.
    tellers: crate::daemon::tell::Tellers,
}

impl Driver {
    /// Says `text` on stderr, at most once every 10 s for one `kind`.
    fn say(&mut self, kind: &'static str, text: String) {
        self.said.say(self.clock.now(), kind, text);
    }

    /// Shows a record now, labelled with the wall clock's time (`journaled: false` when
    /// it could not be journaled).
    fn show_now(&mut self, t: Timestamp, r: &Record, journaled: bool) {
        let offset = self.clock.label_offset();
        self.show(t, r.clone(), journaled, offset);
    }

    /// Shows a record labelled with the wall clock's time as it was when the record was
    /// made (`offset`: the wall clock's lead on the monotonic one then).
    fn show(&mut self, t: Timestamp, r: Record, journaled: bool, offset: i64) {
        if r.shown() {
            self.books.shower.show(t, r, journaled, offset);
        }
    }

    /// The journal could not be written: said once, shown as an alert (it cannot be
    /// journaled), counted. Orders still go out.
    fn journal_failed(&mut self, t: Timestamp, what: &str, e: &io::Error) {
        self.own.tallies.inc(Counter::JournalErrors);
        if self.books.journal_failing {
            return;
        }
        self.books.journal_failing = true;
        let path = self
            .books
            .journal_path
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string());
        let text = format!(
            "journal {path}: cannot {what}: {e}; records are not journaled until it can, orders still go out"
        );
        self.say("journal", text.clone());
        let alert = Record::Decision(Decided::Alert {
            ups: None,
            recorder: None,
            outlet: None,
            kind: crate::engine::record::AlertKind::JournalFailed,
            reason: text,
        });
        self.show_now(t, &alert, false);
    }

    /// Takes the station's records, to journal (`commit`) and show (`show_pending`);
    /// true if one of them is a decision, to fsync before acting.
    fn journal_records(&mut self) -> bool {
        // Taken as a whole (the queue changes hands when nothing waits to be shown),
        // not moved one by one: a fan-out's are thousands.
        let sync = self.station.take_records(&mut self.books.unshown);
        let n = self.books.unshown.len();
        self.books.journaled.resize(n, true);
        self.books.labels.resize(n, self.clock.label_offset());
        sync
    }

    /// Journals the records taken since the last commit and fsyncs them (decisions) or
    /// hands them to the kernel (what was done); what the journal failed to hold is
    /// marked to be shown as not journaled.
    fn commit(&mut self, fsync: bool) {
        if self.books.committed == self.books.unshown.len() {
            return;
        }
        let Some(j) = &mut self.books.journal else {
            self.books.committed = self.books.unshown.len();
            return;
        };
        let from = self.books.committed;
        let appended = j.append_all(
            &self.books.unshown[from..],
            &mut self.books.journaled[from..],
            &mut self.books.line,
        );
        // A new file begins with a checkpoint: a restart reads from there.
        let written = match fsync {
            true => j.commit(&self.station, &mut self.books.line),
            false => j.flush(),
        };
        self.committed_with(appended, written);
    }

    /// The records taken since the last commit were appended and written (or not).
    fn committed_with(&mut self, appended: io::Result<()>, written: io::Result<()>) {
        let t = self.clock.now();
        let ok = appended.is_ok() && written.is_ok();
        if let Err(e) = appended {
            self.journal_failed(t, "append", &e);
        }
        match written {
            Ok(()) if ok && self.books.journal_failing => {
                self.books.journal_failing = false;
                self.say("journal", "journal: written again".into());
            }
            Ok(()) => {}
            Err(e) => {
                self.journal_failed(t, "write or fsync", &e);
                for journaled in &mut self.books.journaled[self.books.committed..] {
                    *journaled = false;
                }
            }
        }
        self.books.committed = self.books.unshown.len();
    }

    /// Shows the records committed so far.
    fn show_pending(&mut self) {
        let (mut shown, mut journaled, mut labels) = (
            std::mem::take(&mut self.books.unshown),
            std::mem::take(&mut self.books.journaled),
            std::mem::take(&mut self.books.labels),
        );
        let committed = self.books.committed;
        for (((t, r), journaled), offset) in shown
            .drain(..committed)
            .zip(journaled.drain(..committed))
            .zip(labels.drain(..committed))
        {
            self.show(t, r, journaled, offset);
        }
        self.books.committed = 0;
        (self.books.unshown, self.books.journaled, self.books.labels) = (shown, journaled, labels);
    }

    /// Acts on what the station has: journal and fsync its decisions, then send what
    /// they decided, start the commands, tell the station what left, journal that.
    fn act(&mut self, agent: &UdpSocket, polls: &PollSockets) {
        loop {
            let sync = self.journal_records();
            // A sync now that orders wait for: the one a fan-out's time includes.
            let orders = self.station.orders_waiting();
            let syncs = self.books.journal.as_ref().map_or(0, |j| j.syncs.count());
            match &self.books.hand {
                // Many orders: journaled and fsync'd on the journal's thread while this
                // one encodes them; none leaves before both are done.
                Some(hand)
                    if self.books.journal.is_some()
                        && sync
                        && self.station.transmits_waiting() >= OVERLAP_AT =>
                {
                    let outbox = &mut self.outbox;
                    let (appended, written, ()) = hand.commit_while(
                        &mut self.books.journal,
                        (&mut self.books.unshown, &mut self.books.journaled),
                        self.books.committed,
                        &mut self.station,
                        &mut self.books.line,
                        |s| outbox.take(s, polls),
                    );
                    self.committed_with(appended, written);
                }
                _ => {
                    self.commit(sync);
                    self.outbox.take(&mut self.station, polls);
                }
            }
            if let Some(j) = &mut self.books.journal
                && orders
            {
                j.syncs.orders_waited(syncs);
            }
            let t = self.clock.now();
            // Polls first: a confirmation waits for its poll, and counts from when it left.
            for purpose in std::mem::take(&mut self.outbox.unsendable) {
                let e = "no socket of that address family here".to_string();
                self.poll_failed(purpose, &e);
                self.station.handle_sent(t, purpose, Err(e));
            }
            for f in 0..2 {
                if let Some(socket) = &polls.0[f]
                    && !self.outbox.polls[f].is_empty()
                {
                    let (_, failed) = self.outbox.polls_whole[f]
                        .flush(&mut self.outbox.polls[f], socket.as_raw_fd());
                    let list = std::mem::take(&mut self.outbox.polls_for[f]);
                    self.outbox.polls_for[f] = self.handle_sent(t, list, &failed);
                }
            }
            if !self.outbox.agent.is_empty() {
                let orders = self
                    .outbox
                    .agent_for
                    .iter()
                    .any(|(p, _)| matches!(p, Purpose::Order { .. }));
                let (_, failed) = self
                    .outbox
                    .agent_whole
                    .flush(&mut self.outbox.agent, agent.as_raw_fd());
                if orders && let Some(first) = self.first_arrival {
                    self.own
                        .latency
                        .record_fanout(now().0.saturating_sub(first));
                }
                let t = self.clock.now();
                let list = std::mem::take(&mut self.outbox.agent_for);
                self.outbox.agent_for = self.handle_sent(t, list, &failed);
            }
            // The outlets' commands once the orders have left: a fan-out's orders are
            // not held behind 500 SETs.
            for f in 0..2 {
                if let Some(socket) = &polls.0[f]
                    && !self.outbox.commands[f].is_empty()
                {
                    let (_, failed) = self.outbox.polls_whole[f]
                        .flush(&mut self.outbox.commands[f], socket.as_raw_fd());
                    let list = std::mem::take(&mut self.outbox.commands_for[f]);
                    let t = self.clock.now();
                    self.outbox.commands_for[f] = self.handle_sent(t, list, &failed);
                }
            }
            for (purpose, to, bytes) in std::mem::take(&mut self.outbox.wol) {
                let sent = wol_socket(to.is_ipv6())
                    .and_then(|s| s.send_to(&bytes, to))
                    .map(|_| Some(to))
                    .map_err(|e| e.to_string());
                if let Err(e) = &sent {
                    self.own.tallies.inc(Counter::SendErrors);
                    self.say(
                        "wol",
                        format!("a Wake-on-LAN packet to {to} could not be sent: {e}"),
                    );
                }
                let t = self.clock.now();
                self.station.handle_sent(t, purpose, sent);
            }
            while let Some(cmd) = self.station.poll_command() {
                let purpose = Purpose::Order {
                    recorder: cmd.recorder,
                    attempt: cmd.attempt,
                };
                let tx = self.exec_tx.clone();
                let waker = Arc::clone(&self.waker);
                exec::spawn(cmd, move |done| {
                    let _ = tx.send(done);
                    let _ = waker.wake();
                });
                self.station.handle_sent(t, purpose, Ok(None));
            }
            // What was sent is journaled after the fact: handed to the kernel before it is
            // shown (it survives a kill -9), fsync'd with the next decisions.
            let sync = self.journal_records();
            self.commit(sync);
            // Datagrams queued meanwhile (a timer that fell due as what left was
            // reported: an outlet's read) go too, not at the next wake-up.
            if !self.station.has_records() && self.station.transmits_waiting() == 0 {
                break;
            }
        }
        // What only the actor sees goes to the standby, now that this turn's orders have
        // left (copied here, not before they left: a fan-out's records are thousands).
        if let Some(link) = &mut self.pair
            && link.actor
        {
            let committed = self.books.committed;
            let ship: Vec<(u64, Record)> = self.books.unshown[..committed]
                .iter()
                .zip(&self.books.labels)
                .filter(|((_, r), _)| station::ships(r))
                .map(|((t, r), offset)| (t.shifted(*offset).0, r.clone()))
                .collect();
            if !ship.is_empty() {
                link.shipper.ship(ship);
            }
        }
        // The site's other systems, told the same (after the orders, never waited for).
        // (Only a turn that made records: most turns of a trap storm make none.)
        if !self.tellers.is_empty() && self.books.committed > 0 {
            let committed = self.books.committed;
            self.tellers.offer(
                self.books.unshown[..committed]
                    .iter()
                    .zip(&self.books.labels)
                    .map(|((t, r), offset)| (*t, *offset, r)),
            );
        }
        self.show_pending();
        // Everything sent: the journal's next stretch, if it is due, is prepared now,
        // off the next decision's path.
        if let Some(j) = &mut self.books.journal
            && let Err(e) = j.prepare_ahead()
        {
            // Said, not an alert: the records are still journaled, appended as they come
            // (their fsyncs update the file's size too).
            self.say(
                "journal-prepare",
                format!("journal: cannot prepare the file ahead ({e}); records are appended as they come"),
            );
        }
    }

    /// Tells the station what left at `t` of `list` (the datagrams of one flush) and what
    /// did not (`failed`, by address); gives the list back emptied, to be reused.
    fn handle_sent(
        &mut self,
        t: Timestamp,
        mut list: Vec<(Purpose, SocketAddr)>,
        failed: &[(SocketAddr, io::Error)],
    ) -> Vec<(Purpose, SocketAddr)> {
        for (purpose, to) in list.drain(..) {
            let sent = match failed.iter().find(|(a, _)| *a == to) {
                None => Ok(Some(to)),
                Some((_, e)) => {
                    let e = e.to_string();
                    match purpose {
                        Purpose::Poll { .. } => self.poll_failed(purpose, &e),
                        _ => {
                            self.own.tallies.inc(Counter::SendErrors);
                            self.say("send", format!("cannot send to {to}: {e}"));
                        }
                    }
                    Err(e)
                }
            };
            self.station.handle_sent(t, purpose, sent);
        }
        list
    }

    /// Journals, for each `[[notify]]` target that dropped records since it last said so,
    /// how many (once a minute at most).
    fn note_not_told(&mut self, t: Timestamp) {
        for (target, dropped) in self.tellers.dropped_since() {
            self.station.note(
                t,
                Record::Action(crate::engine::record::Action::NotTold {
                    target,
                    dropped,
                    detail: "not told: its queue was full (it is slow or down), or every try to reach it failed".into(),
                }),
            );
        }
    }

    /// The site's state (the status page's JSON) to the targets that keep it retained
    /// (MQTT), when records were told since (twice a second at most).
    fn tell_state(&mut self) {
        if self.tellers.state_due() {
            let status = self
                .station
                .status_rows(self.clock.label_offset())
                .to_json();
            self.tellers.offer_state(status);
        }
    }

    /// The line systemd and the status show: the site's, after the pair role.
    fn status_line(&self) -> String {
        match &self.pair {
            Some(link) => format!(
                "{} of a pair: {}",
                if link.actor { "actor" } else { "standby" },
                self.station.status_line()
            ),
            None => self.station.status_line(),
        }
    }

    /// Whether this gateway of a pair holds the pair's address; a change of role (and
    /// the role at start) is the station's and is said. The peer's silence is said once.
    fn look(&mut self, start: bool) {
        let Some(link) = &mut self.pair else { return };
        link.looked = Instant::now();
        link.look_now
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = &link.watch {
            w.drain();
        }
        let holds = link.holds_address();
        let t = self.clock.now();
        let address = link.pair.address;
        let mut said = Vec::new();
        if start || holds != link.actor {
            let text = match (holds, start) {
                (true, true) => {
                    let why = format!("holds the pair's address {address} at start");
                    self.station.act_from_start(t, &why);
                    why
                }
                (true, false) => {
                    let why = format!("the pair's address {address} came to this host");
                    let told = self.station.promote(t, &why);
                    format!("{why}: acting, {told} recorder(s) told at once")
                }
                (false, _) => {
                    let why = format!(
                        "does not hold the pair's address {address}{}",
                        if start { " at start" } else { " any more" }
                    );
                    self.station.demote(t, &why);
                    why
                }
            };
            link.actor = holds;
            link.since = t;
            link.since_ms = crate::daemon::pair::wall_ms();
            link.shipper.role(link.hello());
            // Every change of role is said (never held back as a repeat).
            console::warn(format!("trapgate: pair: {text}"));
        }
        if link.peer_silent() && !link.silent_said {
            link.silent_said = true;
            said.push((
                "pair-peer",
                format!(
                    "pair: the peer {} has not been heard for {} s (down, or the pair channel cut): what this gateway ships is not waited for",
                    link.peer,
                    crate::daemon::pair::SILENT_AFTER.as_secs()
                ),
            ));
        }
        for (kind, text) in said {
            self.say(kind, text);
        }
    }

    /// What the peer sent, within `budget` datagrams; true if more may wait.
    fn peer_datagrams(&mut self, budget: usize) -> bool {
        let Some(link) = &mut self.pair else {
            return false;
        };
        let (mut left, mut more) = (budget, false);
        let mut got = Vec::new();
        while let Some(x) = link.receiving.next(&mut left, &mut more) {
            got.push(x);
        }
        let (peer, address) = (link.peer, link.pair.address);
        let counts = Arc::clone(&link.receiving.counts);
        for x in got {
            let t = self.clock.now();
            match x {
                FromPeer::Hello(h) => {
                    let Some(link) = &mut self.pair else { break };
                    if link.silent_said {
                        link.silent_said = false;
                        self.say("pair-peer", format!("pair: the peer {peer} is heard again"));
                    }
                    let Some(link) = &mut self.pair else { break };
                    let both = h.actor && link.actor;
                    if both && !link.split_said {
                        link.split_said = true;
                        let text = format!(
                            "both gateways of the pair hold its address {address} (this one and {peer}): a split network, or keepalived's instances cannot hear each other; both act (orders twice are harmless to a recorder, and each reads an outlet before it writes)"
                        );
                        self.station.note(
                            t,
                            Record::Decision(Decided::Alert {
                                ups: None,
                                recorder: None,
                                outlet: None,
                                kind: crate::engine::record::AlertKind::PairSplit,
                                reason: text.clone(),
                            }),
                        );
                        self.say("pair-split", format!("pair: {text}"));
                    } else if !both {
                        link.split_said = false;
                    }
                }
                FromPeer::Records(seq, records) => {
                    for (wall, r) in records {
                        let made = crate::time::Timestamp(wall).utc().to_string();
                        let counter = if self.station.handle_peer_record(t, peer, seq, made, r) {
                            &counts.received
                        } else {
                            &counts.unreadable
                        };
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
        more
    }

    /// The pair's row of the status page and `/metrics`.
    fn pair_row(&self) -> Option<crate::engine::station::PairRow> {
        use std::sync::atomic::Ordering::Relaxed;
        let link = self.pair.as_ref()?;
        let c = &link.receiving.counts;
        Some(crate::engine::station::PairRow {
            actor: link.actor,
            since: link.since,
            address: link.pair.address.to_string(),
            me: link.me.to_string(),
            peer: link.peer.to_string(),
            peer_actor: link.receiving.heard.map(|h| h.hello.actor),
            peer_heard_ms: link
                .receiving
                .heard
                .map(|h| h.at.elapsed().as_millis() as u64),
            shipped: c.shipped.load(Relaxed),
            received: c.received.load(Relaxed),
            datagrams: c.datagrams.load(Relaxed),
            send_failed: c.send_failed.load(Relaxed),
            refused: c.refusals(),
        })
    }

    /// A poll could not leave: counted and said.
    fn poll_failed(&mut self, purpose: Purpose, e: &str) {
        self.own.tallies.inc(Counter::SendErrors);
        if let Purpose::Poll { ups } = purpose {
            let name = self.station.site().upses[ups].name.clone();
            self.say("poll", format!("cannot poll {name}: {e}"));
        }
    }

    /// An input's time on the timeline: the kernel's stamp `kernel`, taken as an age.
    fn arrival(&mut self, kernel: u64) -> Timestamp {
        if kernel != 0 {
            self.first_arrival.get_or_insert(kernel);
        }
        self.clock.arrival(kernel)
    }

    /// Hands the workers' refusals since the last call to the station's summaries.
    fn note_refusals(&mut self, t: Timestamp, refused: &Refusals, last: &LastRefused) {
        for r in Refusal::ALL {
            let new = refused.get(r).saturating_sub(self.noted.get(r));
            if new > 0 {
                let (source, event) = last[r.index()];
                self.station.handle_refused(t, r, new, source, event);
            }
        }
        self.noted = *refused;
    }

    /// Everything counted and timed: this thread's own, the station's, and the workers'
    /// `tally`, with what the kernel dropped on this thread's sockets (`own_drops`).
    fn stats(&self, tally: &Tally, own_drops: Option<u64>) -> Stats {
        use std::sync::atomic::Ordering::Relaxed;
        let mut stats = self.own.clone();
        stats.counters = tally.counters.clone();
        stats.station = self.station.counts();
        // Every plain count, added up: the decision thread's own, the workers', the
        // station's, forwarding's, the console's, the v3 Reports'.
        stats.tallies.sum(&tally.tallies);
        stats.tallies.sum(&stats.station.tallies);
        let (stdout, stderr) = console::dropped();
        let (reports, held) = self.view.usm_reports().counts();
        for (c, v) in [
            (Counter::StdoutDropped, stdout),
            (Counter::StderrDropped, stderr),
            (Counter::UsmReports, reports),
            (Counter::UsmReportsHeld, held),
            (Counter::ForwardLoops, self.forwarder.looped.load(Relaxed)),
            (
                Counter::ForwardRefused,
                self.forwarder.refused.load(Relaxed),
            ),
        ] {
            stats.tallies.set(c, v);
        }
        stats.refused = tally.refusals;
        stats.refused.sum(&stats.station.refused);
        stats.kernel_drops = tally.kernel_drops.zip(own_drops).map(|(a, b)| a + b);
        stats.latency.add(&tally.latency);
        stats.forward = self.view.forward.rows();
        if let Some(j) = &self.books.journal {
            stats.journal_sync = j.syncs.clone();
        }
        stats
    }

    /// What a worker heard and believed.
    fn heard(&mut self, made_by: &View, h: &Heard) {
        let current = made_by.generation == self.view.generation;
        match h {
            Heard::Event {
                arrival,
                source,
                who,
                community,
                v3,
                class,
            } => {
                let (arrival, source, event) = (*arrival, *source, class.event);
                let cred = Credential {
                    name: community.as_bytes(),
                    v3: *v3,
                };
                // Classified by a view older than the site's (a reload came between): its
                // indices are not this site's; who it is, and whether to believe it, is
                // asked again of the site now.
                let who = if current {
                    *who
                } else {
                    let trust = self.station.trust();
                    match trust
                        .who(source)
                        .map(|w| trust.notification(w, cred, event))
                    {
                        Some(Ok(w)) => w,
                        Some(Err(why)) => {
                            let at = self.arrival(arrival);
                            self.station
                                .handle_refused(at, why, 1, Some(source), Some(event));
                            return;
                        }
                        None => return,
                    }
                };
                let at = self.arrival(arrival);
                // Named by the view that classified it, which the batch carries.
                let rule = made_by.rule_name(*class);
                let n = Notification {
                    who,
                    source,
                    community: community.as_bytes(),
                    v3: *v3,
                    event,
                    rule: &rule,
                    index: class.index,
                };
                self.station.handle_notification(at, &n);
                // Arrival → decision ready (before it is journaled and acted on).
                self.own
                    .latency
                    .record(event, now().0.saturating_sub(arrival));
            }
            Heard::Seen { .. } if !current => {}
            Heard::Seen { arrival, recorder } => {
                let at = self.arrival(*arrival);
                self.station.handle_seen(at, *recorder);
            }
        }
    }

    /// A worker's batch.
    fn heard_batch(&mut self, made_by: &View, items: &[Heard]) {
        for h in items {
            self.heard(made_by, h);
        }
    }

    /// Takes at most `budget` datagrams from `socket`, each to `handle` at its arrival;
    /// true if more may be waiting.
    fn take(
        &mut self,
        socket: &UdpSocket,
        batch: &mut RecvBatch,
        budget: usize,
        arena: &mut Bump,
        handle: fn(&mut Self, Timestamp, SocketAddr, &[u8], &Bump),
    ) -> bool {
        arena.reset();
        let read = read_socket(socket, batch, budget, |from, payload, kernel| {
            let at = self.arrival(kernel);
            handle(self, at, from, payload, arena);
        });
        read.unwrap_or_else(|e| {
            let on = socket
                .local_addr()
                .map_or(String::new(), |a| format!(" on {a}"));
            self.say("receive", format!("receive{on}: {e}"));
            false
        })
    }

    /// One datagram on the agent socket: a recorder's poll of its virtual UPS.
    fn agent_datagram(&mut self, at: Timestamp, from: SocketAddr, payload: &[u8], arena: &Bump) {
        if !self.station.handle_agent_datagram(at, from, payload, arena) {
            self.own.tallies.inc(Counter::MalformedElsewhere);
        }
    }

    /// One datagram on a poll socket: believed only as the answer to our request (a
    /// poll's, or an outlet's card's).
    fn poll_datagram(&mut self, at: Timestamp, from: SocketAddr, payload: &[u8], arena: &Bump) {
        if !self.station.handle_poll_datagram(at, from, payload, arena) {
            self.own.tallies.inc(Counter::MalformedElsewhere);
        }
    }
}

/// Reads datagrams from `socket` until it is empty or `budget` are taken; true if it
/// may hold more (the budget ran out).
fn read_socket(
    socket: &UdpSocket,
    batch: &mut RecvBatch,
    budget: usize,
    mut each: impl FnMut(SocketAddr, &[u8], u64),
) -> io::Result<bool> {
    let mut taken = 0;
    while taken < budget {
        match batch.recv(socket.as_raw_fd()) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                for k in 0..n {
                    if let Some((from, payload, cut)) = batch.get(k)
                        && !cut
                    {
                        each(from, payload, batch.arrival(k).unwrap_or(0));
                    }
                }
                taken += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Runs the gateway for `site` until SIGINT, SIGTERM or its `Options::shutdown` handle:
/// `start`, then `ready` learns where it listens, then `Gateway::run`. `report` gets
/// every record shown (decisions and actions, as journaled) with its time, labelled by
/// the wall clock; on SIGHUP `reload` (run on a thread of its own) gives the site to
/// carry on with (a broken one, or one that would drop an outage, is reported and the
/// running site kept).
pub fn run(
    site: Site,
    opts: Options,
    ready: impl FnOnce(&Bound),
    report: impl FnMut(&Shown<'_>) + Send + 'static,
    reload: impl FnMut() -> Result<Site, String> + Send + 'static,
) -> Result<Stopped, StartError> {
    let gateway = start(site, opts, report, reload)?;
    ready(gateway.bound());
    gateway.run()
}

/// A gateway started and not yet running: every socket bound, the journal resumed, the
/// workers and the endpoint's threads under way (the traps they hear wait for `run`).
pub struct Gateway {
    bound: Bound,
    d: Driver,
    poll: Poll,
    signals: Signals,
    shutdown: Option<Shutdown>,
    receivers: receive::Receivers,
    agent_socket: UdpSocket,
    poll_sockets: PollSockets,
    /// The NUT and apcupsd servers, where the site has them.
    servers: Vec<crate::daemon::nut::NutTcp>,
    reloader: Reloader,
    /// What the HTTP endpoint serves, refreshed by the loop.
    snapshot: crate::daemon::http::Snapshot,
    /// The endpoint's thread (closed when the gateway stops).
    endpoint: Option<crate::daemon::http::Endpoint>,
    exec_rx: Receiver<Finished>,
}

/// Starts the gateway for `site`: binds its sockets (trap, agent, poll, NUT, NIS,
/// HTTP), resumes from the journal, starts the receive workers and the forward and
/// endpoint threads. Nothing is decided before `Gateway::run`.
pub fn start(
    site: Site,
    opts: Options,
    report: impl FnMut(&Shown<'_>) + Send + 'static,
    reload: impl FnMut() -> Result<Site, String> + Send + 'static,
) -> Result<Gateway, StartError> {
    let listen = if opts.listen.is_empty() {
        site.gateway.listen.clone()
    } else {
        opts.listen.clone()
    };
    // trapgate's SNMPv3 engine: booted once more than at any start before (kept beside
    // the journal, so that a clock set back does not make it go back).
    let boots = receive::boots_kept(opts.journal.as_deref());
    let engine = receive::local_engine(&site, boots);
    // A pair: the doors for the recorders (virtual UPS, NUT, NIS) are on the pair's
    // address, bound before keepalived brings it (IP_FREEBIND); the polls and the
    // outlets' commands leave from this host's own.
    let pair_address = site.pair.as_ref().map(|p| p.address);
    let on_pair = |at: SocketAddr| match pair_address {
        Some(a) if at.ip().is_unspecified() => SocketAddr::new(a, at.port()),
        _ => at,
    };
    let agent_at = on_pair(opts.agent.unwrap_or(site.gateway.agent));
    let tellers = crate::daemon::tell::Tellers::start(&site.notify);
    let mut pair = match &site.pair {
        Some(p) => Some(PairLink::open(p).map_err(StartError::Pair)?),
        None => None,
    };
    let poll = Poll::new().map_err(StartError::Setup)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(StartError::Setup)?);
    // Asked before now, it is seen at the loop's first turn.
    if let Some(s) = &opts.shutdown {
        s.attach(&waker);
    }
    let workers = receive::worker_count(opts.workers.unwrap_or(site.gateway.workers));
    let mut view = View::new(&site, 0, boots);
    view.forwarding_from(&listen);
    let view = Arc::new(view);
    let mut servers = Vec::new();
    for (at, service) in [
        (site.gateway.nut, crate::daemon::nut::Service::Nut),
        (site.gateway.nis, crate::daemon::nut::Service::Nis),
    ] {
        if let Some(at) = at.map(on_pair) {
            servers.push(
                crate::daemon::nut::NutTcp::bind(
                    at,
                    service,
                    poll.registry(),
                    pair_address.is_some(),
                )
                .map_err(|e| StartError::Bind(at, e))?,
            );
        }
    }
    let bound_of = |s: crate::daemon::nut::Service| {
        servers
            .iter()
            .find(|n| n.owns(s.listen()))
            .and_then(|n| n.local_addr().ok())
    };
    let (nut, nis) = (
        bound_of(crate::daemon::nut::Service::Nut),
        bound_of(crate::daemon::nut::Service::Nis),
    );
    // The forward thread (`[[forward]]`), there whether the site forwards now or after a
    // reload.
    let forwarder = crate::daemon::forward::Forwarder::start(&listen).map_err(StartError::Setup)?;
    let receivers = receive::start(
        &listen,
        workers,
        Arc::clone(&view),
        Arc::clone(&waker),
        forwarder.handoff(),
    )?;
    let agent_bound = match pair_address {
        Some(_) => crate::daemon::socket::bind_udp_free(agent_at),
        None => bind_udp(agent_at),
    };
    let mut agent_socket =
        UdpSocket::from_std(agent_bound.map_err(|e| StartError::Bind(agent_at, e))?);
    let agent = agent_socket.local_addr().map_err(StartError::Setup)?;
    let polls_from = pair.as_ref().map_or(agent.ip(), |link| link.me.ip());
    let mut poll_sockets = PollSockets::bind(polls_from)?;
    if let Some(link) = &mut pair {
        poll.registry()
            .register(&mut link.receiving.socket, PAIR, Interest::READABLE)
            .map_err(StartError::Setup)?;
        if let Some(w) = &link.watch {
            poll.registry()
                .register(
                    &mut mio::unix::SourceFd(&w.fd()),
                    PAIR_WATCH,
                    Interest::READABLE,
                )
                .map_err(StartError::Setup)?;
        }
    }
    poll.registry()
        .register(&mut agent_socket, AGENT, Interest::READABLE)
        .map_err(StartError::Setup)?;
    for (socket, token) in poll_sockets.0.iter_mut().zip(POLLS) {
        if let Some(socket) = socket {
            poll.registry()
                .register(socket, token, Interest::READABLE)
                .map_err(StartError::Setup)?;
        }
    }
    let mut signals =
        Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP]).map_err(StartError::Setup)?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(StartError::Setup)?;
    // A file-size limit makes a journal write fail, not the gateway die (SIGXFSZ).
    let _ = signal_hook::flag::register(libc::SIGXFSZ, Arc::new(AtomicBool::new(false)));
    // The HTTP endpoint (`--http`, else `[gateway] http`): /metrics, /status.json, /.
    let snapshot: crate::daemon::http::Snapshot = Arc::default();
    let (metrics, endpoint) = match opts.metrics.or(site.gateway.http) {
        Some(addr) => {
            let listener =
                std::net::TcpListener::bind(addr).map_err(|e| StartError::Bind(addr, e))?;
            let at = listener.local_addr().map_err(StartError::Setup)?;
            let endpoint = crate::daemon::http::serve(listener, Arc::clone(&snapshot))
                .map_err(StartError::Setup)?;
            (Some(at), Some(endpoint))
        }
        None => (None, None),
    };
    let reloader = Reloader::start(reload, agent, listen.clone(), boots, Arc::clone(&waker));

    let time: Arc<dyn TimeSource> = opts
        .time
        .clone()
        .unwrap_or_else(|| Arc::new(OsTime::default()));
    let clock = Clock::new(time, opts.speed);
    let (station, journal, resumed) = resume(site, &opts, agent, clock.now())?;
    let mut station = station;
    station.set_local_engine(engine.clone());
    // One budget of SNMPv3 Reports for the virtual UPS and every receive worker.
    station.share_reports(view.usm_reports().clone());
    // One book of the site's SNMPv3 engines: what the journal kept, what the poller
    // authenticates and what any worker hears authentically.
    station.share_engines(view.usm_engines().clone());
    let (exec_tx, exec_rx) = crossbeam_channel::unbounded();
    let bound = Bound {
        listen: receivers.bound.clone(),
        agent,
        polls: poll_sockets.bound(),
        metrics,
        workers: receivers.workers(),
        steered: receivers.steered,
        resumed,
        engine,
        nut,
        nis,
        clock: clock.clone(),
        pair: None,
    };
    // A fan-out's orders and records fit from the start (the first outage's orders do
    // not wait for their buffers to grow and their pages to be faulted in).
    let recorders = station.site().recorders.len();
    let mut outbox = Outbox::default();
    let orders = room::fan_out_room(recorders, 1);
    outbox.agent.reserve(orders, orders * 128);
    outbox.agent_for.reserve(orders);
    room::touch(&mut outbox.agent_for);
    let mut books = Books::new(journal, opts.journal.clone(), report, metrics.is_some());
    books.unshown.reserve(room::fan_out_room(recorders, 3));
    books.journaled.reserve(room::fan_out_room(recorders, 3));
    books.labels.reserve(room::fan_out_room(recorders, 3));
    room::touch(&mut books.unshown);
    room::touch(&mut books.journaled);
    room::touch(&mut books.labels);
    let d = Driver {
        clock,
        station,
        view,
        books,
        outbox,
        exec_tx,
        waker,
        own: Stats {
            latency: crate::engine::metrics::Latency::preallocated(),
            ..Stats::default()
        },
        first_arrival: None,
        noted: Refusals::default(),
        said: Said::default(),
        forwarder,
        pair,
        tellers,
    };
    let mut d = d;
    // A pair's gateway starts in the role the host's addresses give it.
    d.look(true);
    let mut bound = bound;
    bound.pair = d
        .pair
        .as_ref()
        .map(|l| (l.me, l.peer, l.pair.address, l.actor));
    Ok(Gateway {
        bound,
        d,
        poll,
        signals,
        shutdown: opts.shutdown,
        receivers,
        agent_socket,
        poll_sockets,
        servers,
        reloader,
        snapshot,
        endpoint,
        exec_rx,
    })
}

/// The station for `site`: new, or resumed from the journal `opts` names (with what the
/// resume found).
fn resume(
    site: Site,
    opts: &Options,
    agent: SocketAddr,
    start: Timestamp,
) -> Result<(Station, Option<Journal>, Option<Resumed>), StartError> {
    let options = station::Options {
        dry_run: opts.dry_run,
    };
    let Some(path) = &opts.journal else {
        let relay_to = relays(&site, agent);
        let station = Station::new(site, options, relay_to, Box::new(OsRandom), start);
        return Ok((station, None, None));
    };
    let toward = |s: &Site| relays(s, agent);
    let r = journal::resume(path, site, options, &toward, start)
        .map_err(|e| StartError::Journal(path.clone(), e))?;
    let resumed = Resumed {
        records: r.records,
        damaged: r.damaged,
        waiting: r.resumed.waiting,
        acknowledged: r.resumed.acknowledged,
        unsent: r.resumed.unsent,
    };
    Ok((r.station, Some(r.journal), Some(resumed)))
}

/// Which inputs ran out of their budget last turn: read again without waiting.
#[derive(Default)]
struct More {
    batches: bool,
    answers: [bool; 2],
    requests: bool,
    pair: bool,
}

impl Gateway {
    /// Where it listens.
    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    /// Runs the loop until SIGINT, SIGTERM or the shutdown handle; what it counted when
    /// it stopped.
    pub fn run(mut self) -> Result<Stopped, StartError> {
        let mut notifier = crate::daemon::notify::Notifier::from_env();
        // Every socket bound, the journal resumed: systemd may count the gateway started.
        notifier.ready(self.d.status_line());
        // The cards' own settings, read off the decision thread: disagreements are alerts.
        let (probe_tx, probe_rx) = crossbeam_channel::unbounded();
        probe_cards(Arc::clone(self.d.station.site()), &probe_tx, &self.d.waker);

        let mut events = Events::with_capacity(64);
        let mut arena = Bump::with_capacity(256 * 1024);
        let (mut agent_batch, mut poll_batch) = (RecvBatch::new(), RecvBatch::new());
        let mut published = Instant::now() - PUBLISH;
        let mut status_at = Instant::now();
        let mut tallied = self.d.clock.now();
        let mut more = More::default();
        loop {
            // Act on what the last turn decided: fsync the journal, then send.
            self.d.act(&self.agent_socket, &self.poll_sockets);
            self.d.first_arrival = None;

            let more_tcp = self.servers.iter().any(|s| s.has_more());
            let timeout = if more.batches
                || more.answers.contains(&true)
                || more.requests
                || more.pair
                || more_tcp
            {
                Some(Duration::ZERO)
            } else {
                self.wait(&mut notifier, tallied)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(StartError::Setup(e));
            }
            let (mut signalled, mut woken, mut look) = (false, false, false);
            let mut nut_ready = Vec::new();
            for event in events.iter() {
                match event.token() {
                    SIGNALS => signalled = true,
                    WAKE => woken = true,
                    AGENT => more.requests = true,
                    PAIR => more.pair = true,
                    PAIR_WATCH => look = true,
                    t if t == POLLS[0] => more.answers[0] = true,
                    t if t == POLLS[1] => more.answers[1] = true,
                    t if self.servers.iter().any(|s| s.owns(t)) => nut_ready.push(t),
                    _ => {}
                }
            }
            let asked = self.shutdown.as_ref().is_some_and(Shutdown::asked);
            let mut stopping = asked.then_some(0);
            if signalled {
                for signal in self.signals.pending() {
                    if signal == libc::SIGHUP {
                        notifier.reloading();
                        self.reloader.request(self.d.station.site());
                        continue;
                    }
                    stopping = Some(signal);
                    break;
                }
            }
            if let Some(signal) = stopping {
                notifier.stopping();
                return Ok(self.stop(signal));
            }
            if woken {
                self.woken(&mut notifier, &probe_tx, &probe_rx);
                more.batches = true;
            }
            self.take_inputs(&mut more, &mut arena, &mut agent_batch, &mut poll_batch);
            // The pair's address came or went (or a second passed): the role, within
            // this turn.
            if let Some(link) = &self.d.pair
                && (look || link.looked.elapsed() >= crate::daemon::pair::LOOK_EVERY)
            {
                self.d.look(false);
            }
            // The NUT and apcupsd clients last, within their budgets: a connection or line
            // flood waits behind the traps of the same turn, never the other way round.
            if !nut_ready.is_empty() || more_tcp {
                self.serve_tcp(nut_ready);
            }
            if !self.servers.is_empty() {
                let t = self.d.clock.now();
                for s in self.servers.iter_mut() {
                    s.tick(self.poll.registry(), t, &mut self.d.station);
                    let i = (s.service() == crate::daemon::nut::Service::Nis) as usize;
                    self.d.own.tcp_open[i] = s.open() as u64;
                    self.d.own.tcp_refused[i] = s.refused;
                    self.d.own.tcp_evicted[i] = s.evicted;
                    self.d.own.tcp_idle_closed[i] = s.idle_closed;
                }
            }
            let t = self.d.clock.now();
            self.d.station.handle_timeout(t);
            if t.ns_since(tallied) >= TALLY {
                tallied = t;
                let (refused, last) = self.receivers.refusals();
                self.d.note_refusals(t, &refused, &last);
                self.d.note_not_told(t);
                self.d.tell_state();
            }
            if notifier.is_on() && status_at.elapsed() >= PUBLISH {
                status_at = Instant::now();
                notifier.status(self.d.status_line());
            }
            if self.bound.metrics.is_some() && published.elapsed() >= PUBLISH / 2 {
                published = Instant::now();
                self.publish();
            }
        }
    }

    /// How long the loop may sleep: until the station's next timer or the next tally,
    /// the endpoint's and systemd's refresh, a NUT client's held answer, the watchdog.
    fn wait(
        &mut self,
        notifier: &mut crate::daemon::notify::Notifier,
        tallied: Timestamp,
    ) -> Option<Duration> {
        let due = [self.d.station.poll_timeout(), Some(tallied.plus_ns(TALLY))]
            .into_iter()
            .flatten()
            .min();
        let mut wait = due.map(|t| self.d.clock.wait(t));
        let at_most =
            |wait: Option<Duration>, limit: Duration| Some(wait.map_or(limit, |w| w.min(limit)));
        // The endpoint's snapshot, and systemd's status, at most a second late.
        if self.bound.metrics.is_some() || notifier.is_on() {
            wait = at_most(wait, PUBLISH);
        }
        // A pair's role is looked at every second, whatever the kernel says.
        if let Some(link) = &self.d.pair {
            let due = crate::daemon::pair::LOOK_EVERY.saturating_sub(link.looked.elapsed());
            wait = at_most(wait, due);
        }
        // A NUT client's held answer, and the look for idle connections, on time.
        if let Some(due) = self.servers.iter().filter_map(|s| s.next_due()).min() {
            wait = at_most(wait, due.saturating_duration_since(Instant::now()));
        }
        // systemd's watchdog: pinged from this thread, so never slept past.
        if let Some(ping) = notifier.tick(Instant::now()) {
            wait = at_most(wait, ping.saturating_duration_since(Instant::now()));
        }
        wait
    }

    /// Stops: what the workers still hold decided and forwarded, what the station holds
    /// sent, the records shown; everything counted.
    fn stop(mut self, signal: i32) -> Stopped {
        let d = &mut self.d;
        let tally = self.receivers.stop(|g, items| d.heard_batch(g, items));
        d.forwarder.stop();
        let t = d.clock.now();
        d.station.handle_timeout(t);
        d.note_refusals(t, &tally.refusals, &tally.last_refused);
        d.station.flush_refusals(t);
        d.act(&self.agent_socket, &self.poll_sockets);
        d.tellers.stop();
        d.books.shower.finish();
        // The endpoint closes with the gateway (in a process that goes on, too).
        drop(self.endpoint.take());
        let own = own_drops(&self.agent_socket, &self.poll_sockets);
        Stopped {
            stats: d.stats(&tally, own),
            signal,
        }
    }

    /// Woken by another thread: finished commands, the cards' settings read, a site
    /// read for SIGHUP (or a worker's batch).
    fn woken(
        &mut self,
        notifier: &mut crate::daemon::notify::Notifier,
        probe_tx: &Sender<Vec<crate::daemon::probe::Finding>>,
        probe_rx: &Receiver<Vec<crate::daemon::probe::Finding>>,
    ) {
        let d = &mut self.d;
        while let Ok(done) = self.exec_rx.try_recv() {
            let t = d.clock.now();
            d.station.handle_command_done(t, done.end());
        }
        while let Ok(found) = probe_rx.try_recv() {
            let t = d.clock.now();
            note_probe(&mut d.station, t, found);
        }
        if let Some(read) = self.reloader.ready() {
            let t = d.clock.now();
            let generation = d.view.generation;
            apply_reload(d, &mut self.receivers, &self.reloader, t, read);
            if d.view.generation != generation {
                probe_cards(Arc::clone(d.station.site()), probe_tx, &d.waker);
            }
            if self.reloader.wanted_again() {
                self.reloader.request(d.station.site());
            } else {
                // Taken or refused (the running site kept): ready again.
                notifier.reloaded(d.status_line());
            }
        }
    }

    /// Each input within its budget: the workers' batches first (the UPSes' traps), then
    /// the UPSes' answers, then the recorders' requests.
    fn take_inputs(
        &mut self,
        more: &mut More,
        arena: &mut Bump,
        agent_batch: &mut RecvBatch,
        poll_batch: &mut RecvBatch,
    ) {
        let d = &mut self.d;
        if more.batches {
            more.batches = self
                .receivers
                .drain_some(BATCHES_PER_TURN, |g, items| d.heard_batch(g, items));
        }
        for (more, socket) in more.answers.iter_mut().zip(&self.poll_sockets.0) {
            if let (true, Some(socket)) = (*more, socket) {
                *more = d.take(
                    socket,
                    poll_batch,
                    ANSWERS_PER_TURN,
                    arena,
                    Driver::poll_datagram,
                );
            }
        }
        if more.requests {
            more.requests = d.take(
                &self.agent_socket,
                agent_batch,
                REQUESTS_PER_TURN,
                arena,
                Driver::agent_datagram,
            );
        }
        if more.pair {
            more.pair = d.peer_datagrams(PAIR_PER_TURN);
        }
    }

    /// The NUT and apcupsd servers' ready connections, within one budget of lines.
    fn serve_tcp(&mut self, ready: Vec<Token>) {
        // What this turn decided is journaled (and its orders sent) before a NUT or
        // apcupsd client is shown it.
        self.d.act(&self.agent_socket, &self.poll_sockets);
        let t = self.d.clock.now();
        for token in ready {
            if let Some(s) = self.servers.iter_mut().find(|s| s.owns(token)) {
                s.ready(token);
            }
        }
        // Each server's listener first, then its connections in turn.
        let mut lines = crate::daemon::nut::LINES_PER_TURN;
        for s in self.servers.iter_mut() {
            s.serve(self.poll.registry(), t, &mut self.d.station, &mut lines);
        }
    }

    /// A fresh copy of the state for the HTTP endpoint (its JSON and metrics text are
    /// made on the endpoint's thread).
    fn publish(&mut self) {
        let own = own_drops(&self.agent_socket, &self.poll_sockets);
        let stats = self.d.stats(&self.receivers.tally(), own);
        let mut rows = self.d.station.status_rows(self.d.clock.label_offset());
        rows.pair = self.d.pair_row();
        rows.notify = self.d.tellers.rows();
        let published = Arc::new(crate::daemon::http::Published::new(
            stats,
            rows,
            self.d.books.shower.latest(),
        ));
        // What it replaced is dropped after the lock, on this thread.
        let old = self
            .snapshot
            .lock()
            .map(|mut shared| std::mem::replace(&mut *shared, published));
        drop(old);
    }
}

/// Reads the cards' settings of `site` on a thread of its own (`daemon::probe`: GET
/// and GETNEXT only, a card that does not answer takes seconds), at start and after
/// each reload; the findings come back through `tell`.
fn probe_cards(
    site: Arc<Site>,
    tell: &Sender<Vec<crate::daemon::probe::Finding>>,
    waker: &Arc<Waker>,
) {
    let (tell, waker) = (tell.clone(), Arc::clone(waker));
    let _ = std::thread::Builder::new()
        .name("trapgate-probe".into())
        .spawn(move || {
            let found = crate::daemon::probe::probe(&site);
            if tell.send(found).is_ok() {
                let _ = waker.wake();
            }
        });
}

/// The cards' settings read: each that disagrees with the site is an `Alert`
/// (`card_setting`); a shutoff delay the site leaves to the card is taken. A card that
/// could not be read is left to the poller, which says so (`ups_not_answering`).
fn note_probe(station: &mut Station, t: Timestamp, found: Vec<crate::daemon::probe::Finding>) {
    use crate::daemon::probe::Verdict;
    for f in found {
        if let Some(seconds) = f.off_delay {
            station.handle_off_delay(t, &f.card, seconds);
        }
        if f.verdict != Verdict::Disagrees {
            continue;
        }
        let is_ups = station.site().upses.iter().any(|u| u.name == f.card);
        station.note(
            t,
            Record::Decision(Decided::Alert {
                ups: is_ups.then(|| f.card.clone().into()),
                recorder: None,
                outlet: (!is_ups).then(|| f.card.clone().into()),
                kind: crate::engine::record::AlertKind::CardSetting,
                reason: format!(
                    "{} `{}`: {} (trapgate check-config --probe reads it again)",
                    if is_ups { "UPS" } else { "PDU" },
                    f.card,
                    f.text
                ),
            }),
        );
    }
}

/// A site read for SIGHUP: taken, or refused with the reason (the running site kept).
fn apply_reload(
    d: &mut Driver,
    receivers: &mut receive::Receivers,
    reloader: &Reloader,
    t: Timestamp,
    read: Read,
) {
    let (prepared, mut view) = match read {
        Ok(x) => *x,
        Err(e) => {
            console::warn(format!("trapgate: SIGHUP: keeping the running site: {e}"));
            return;
        }
    };
    let said = format!(
        "trapgate: SIGHUP: site reloaded ({} UPS, {} recorders); outages under way go on",
        prepared.site.upses.len(),
        prepared.site.recorders.len()
    );
    // The pair's sockets and role are the running process's: a change takes a restart.
    if prepared.site.pair != d.station.site().pair {
        console::warn(
            "trapgate: SIGHUP: [pair] changed: the pair runs as it started until trapgate is restarted (the rest of the site is taken now)"
                .to_string(),
        );
    }
    let replaced = match d.station.offer_site(t, prepared) {
        Ok(replaced) => replaced,
        Err(why) => {
            console::warn(format!("trapgate: SIGHUP: keeping the running site: {why}"));
            return;
        }
    };
    view.generation = d.view.generation + 1;
    // The targets' counts go on where a target stays.
    view.forward = Arc::new(crate::daemon::forward::Table::new(
        view.forward.forwarding.clone(),
        Some(&d.view.forward),
    ));
    let view = Arc::new(view);
    d.view = Arc::clone(&view);
    receivers.reload(view);
    reloader.discard(replaced);
    d.tellers.reload(&d.station.site().notify);
    // Said once the station has the new site and the workers have been handed it (each
    // takes it before its next read of its sockets).
    console::warn(said);
}
