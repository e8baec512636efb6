//! The live gateway's decision thread. The receive workers (`crate::daemon::receive`) read the
//! trap sockets, decode, classify and check what they may believe, and hand it what the
//! policy acts on; this thread owns everything with state: the policy (`Decider`) of
//! every UPS, the virtual UPS (`Agent`) on the agent socket, the poller on a socket of
//! its own (the UPSes' answers come back there, and nowhere else), the ack ledger and
//! the journal.
//!
//! Every turn of the loop: take what each input has, each within its budget (the
//! workers' batches, the poll socket, the agent socket, finished commands, reloads,
//! signals), firing every timer due before an input first; journal the decisions and
//! fsync them; and only then act: polls go out, shutdown traps go out in `sendmmsg`
//! batches from the agent socket (the recorder's "UPS"), commands run on their own
//! threads. No input can starve the others, nor the timers: a flood of GetBulk
//! requests or forged answers costs at most its budget a turn. Time is the monotonic
//! clock (`daemon::clock`); the wall clock only labels what is printed. Output goes
//! through the console's queues, so a stdout nobody reads never holds up an order.
//! SIGINT/SIGTERM stop it cleanly (the workers' last batches decided first); SIGHUP
//! reloads the site, read and checked on a thread of its own. With a journal, a
//! restart resumes the outage in progress.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bumpalo::Bump;
use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{Value as Json, json};
use signal_hook_mio::v1_0::Signals;

use crate::classify::Event;
use crate::cli::report;
use crate::daemon::clock::{Clock, OsTime, TimeSource};
use crate::daemon::console;
use crate::daemon::exec::{self, Finished};
use crate::daemon::journal::{self, Journal};
use crate::daemon::receive::{self, Heard, LastRefused, Tally, View};
use crate::daemon::server::{StartError, Stopped, now, serve_metrics};
use crate::daemon::socket::{RecvBatch, SendBatch, bind_udp, socket_drops};
use crate::engine::agent::{Agent, Answered};
use crate::engine::config::{RecorderKind, Remap, Site};
use crate::engine::ledger::{Ledger, LedgerOutput, Standing};
use crate::engine::metrics::{Latency, Live, prometheus};
use crate::engine::policy::{Decider, Decision, PollAnswer};
use crate::engine::poller::{OsRandom, PollOutput, Poller};
use crate::engine::trust::{Refusal, RefusalLog, Refusals, Who};
use crate::time::{Timestamp, ns};
use crate::wire::oid::oid;
use crate::wire::{Message, OidBuf, Value, VarBind, encode};

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
    /// Receive workers (None: the site's `[gateway] workers`; 0: one per core).
    pub workers: Option<usize>,
    /// Where the clock reads the time (None: the OS; tests step a clock of their own).
    pub time: Option<Arc<dyn TimeSource>>,
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
    /// Orders decided but never sent (the crash came between): sent now.
    pub unsent: usize,
}

/// How often the metrics snapshot is refreshed, at most.
const PUBLISH: Duration = Duration::from_secs(1);
/// How often the workers' refusal counts are read into the journal's summaries.
const TALLY: u64 = ns::SECOND / 2;
const SIGNALS: Token = Token(usize::MAX);
const WAKE: Token = Token(usize::MAX - 1);
const AGENT: Token = Token(usize::MAX - 2);
/// The poll sockets, IPv4 and IPv6.
const POLLS: [Token; 2] = [Token(usize::MAX - 3), Token(usize::MAX - 4)];

/// What each input may take in one turn of the loop, so that none starves the others
/// or the timers (quinn's work limiter): batches from the workers (up to 64 items
/// each), datagrams on the poll socket, datagrams on the agent socket.
const BATCHES_PER_TURN: usize = 32;
const ANSWERS_PER_TURN: usize = 256;
const REQUESTS_PER_TURN: usize = 64;

/// How often one kind of warning is said on stderr, at most.
const SAY_EVERY: u64 = 10 * ns::SECOND;

/// PowerNet `mtrapargsString.0`, the text varbind of APC traps.
const MTRAPARGS_STRING_0: &str = "1.3.6.1.4.1.318.2.3.3.0";
/// The APC enterprise, whose lowBattery trap (specific 7) recorders act on.
const APC: &str = "1.3.6.1.4.1.318";
const LOW_BATTERY_TEXT: &[u8] = b"UPS: Low battery. A shutdown is imminent.";

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

/// The OIDs of the APC lowBattery trap a trap-relay recorder acts on, parsed once.
struct RelayOids {
    enterprise: OidBuf,
    text: OidBuf,
}

impl RelayOids {
    fn new() -> RelayOids {
        RelayOids {
            enterprise: oid(APC),
            text: oid(MTRAPARGS_STRING_0),
        }
    }

    /// The trap, from the gateway (`agent_addr`, `community`), into `out`.
    fn encode(&self, community: &[u8], agent_addr: [u8; 4], uptime_ticks: u32, out: &mut Vec<u8>) {
        let vb = [VarBind {
            name: self.text.as_oid(),
            value: Value::OctetString(LOW_BATTERY_TEXT),
        }];
        let enterprise = self.enterprise.as_oid();
        let msg = Message::trap_v1(community, enterprise, agent_addr, 7, uptime_ticks, &vb);
        out.clear();
        encode::encode(&msg, out);
    }
}

fn answer_json(a: &PollAnswer) -> Json {
    json!({
        "on_battery": a.on_battery,
        "battery_low": a.battery_low,
        "charge": a.charge,
        "runtime_s": a.runtime.map(|s| s.0),
    })
}

fn answer_from_json(v: &Json) -> PollAnswer {
    PollAnswer {
        on_battery: v["on_battery"].as_bool(),
        battery_low: v["battery_low"].as_bool(),
        charge: v["charge"].as_u64().map(|c| c.min(100) as u8),
        runtime: v["runtime_s"]
            .as_u64()
            .map(|s| crate::engine::config::Secs(s as u32)),
    }
}

/// Where each recorder's trap goes, and the agent-addr it carries.
fn relays(site: &Site, agent: SocketAddr) -> Vec<(SocketAddr, [u8; 4])> {
    site.recorders
        .iter()
        .map(|r| {
            let to = SocketAddr::new(r.address, r.port);
            (to, agent_addr_toward(agent, to))
        })
        .collect()
}

/// A site read for SIGHUP, and everything made for it off the decision thread: the
/// workers' view, fresh machines, the remap from the running site. The decision thread
/// only carries state over, by index.
struct Prepared {
    site: Arc<Site>,
    /// The running site the remap is from.
    base: Arc<Site>,
    remap: Remap,
    view: View,
    decider: Decider,
    agent: Agent,
    ledger: Ledger,
    poller: Poller,
    relays: Vec<(SocketAddr, [u8; 4])>,
}

/// What the reload thread is asked.
enum Ask {
    /// Read the site file; remap from this running site.
    Read(Arc<Site>),
    /// Drop what the decision thread replaced (100,000 recorders' worth of strings).
    Drop(Box<dyn Send>),
}

/// Reads and checks site files for SIGHUP on a thread of its own: a file with 100,000
/// recorders, or 100,000 mistakes, never holds the decision thread.
struct Reloader {
    ask: Sender<Ask>,
    done: Receiver<Result<Box<Prepared>, String>>,
    busy: bool,
    again: bool,
}

impl Reloader {
    fn start(
        mut reload: impl FnMut() -> Result<Site, String> + Send + 'static,
        agent: SocketAddr,
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
                    let prepared = reload().map(|site| {
                        let now = Timestamp(0);
                        Box::new(Prepared {
                            remap: Remap::between(&base, &site),
                            view: View::new(&site, 0),
                            agent: Agent::new(&site, now),
                            ledger: Ledger::new(&site),
                            poller: Poller::new(&site, now, Box::new(OsRandom)),
                            relays: relays(&site, agent),
                            decider: Decider::new(site.clone()),
                            site: Arc::new(site),
                            base,
                        })
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

    /// Drops `old` on the reload thread.
    fn discard(&self, old: Box<dyn Send>) {
        let _ = self.ask.send(Ask::Drop(old));
    }

    /// A site read, if one is ready.
    fn ready(&mut self) -> Option<Result<Box<Prepared>, String>> {
        let r = self.done.try_recv().ok()?;
        self.busy = false;
        Some(r)
    }

    /// Whether a read was asked for while one was under way.
    fn wanted_again(&mut self) -> bool {
        std::mem::take(&mut self.again)
    }
}

/// Everything the event loop owns besides its sockets.
struct State<R: FnMut(Timestamp, &Json)> {
    clock: Clock,
    opts: Options,
    /// The site as the workers see it now, and the view before the last reload (to
    /// name what was classified just before it).
    view: Arc<View>,
    previous: Option<Arc<View>>,
    decider: Decider,
    agent: Agent,
    poller: Poller,
    ledger: Ledger,
    /// The running site, as the reload thread gets it to remap from.
    running: Arc<Site>,
    journal: Option<Journal>,
    journal_path: Option<PathBuf>,
    /// The journal's last append or fsync failed (an alert was raised).
    journal_failing: bool,
    /// A decision or action was journaled and not yet fsync'd.
    unsynced: bool,
    /// Records journaled and not yet shown to the caller: what is shown is always in
    /// the journal already, so a kill -9 never loses what an operator saw.
    unshown: Vec<(Timestamp, Json)>,
    /// Per recorder: where its trap goes and the agent-addr it carries.
    relay_to: Vec<(SocketAddr, [u8; 4])>,
    relay: RelayOids,
    /// The charge last shown to each recorder (journaled when it changes).
    last_shown: Vec<Option<Option<u8>>>,
    /// The answer last journaled for each UPS (only changes are journaled).
    last_answer: Vec<Option<PollAnswer>>,
    /// Orders and the virtual UPS's answers, sent from the agent socket.
    sends: SendBatch,
    /// Polls, sent from the poll socket: (UPS, where, request).
    polls: Vec<(usize, SocketAddr, Vec<u8>)>,
    execs: Vec<(usize, u32)>,
    exec_tx: Sender<Finished>,
    waker: Arc<Waker>,
    started: Timestamp,
    buf: Vec<u8>,
    live: Live,
    latency: Latency,
    /// Real arrival of the earliest datagram heard this turn.
    first_arrival: Option<u64>,
    /// Trap orders (recorder, attempt) in this turn's batch, journaled as `Sent` once
    /// the batch has gone out.
    orders: Vec<(usize, u32)>,
    /// Refusals on this thread (poll socket, agent socket), and their last sources.
    refusals: Refusals,
    last_refused: LastRefused,
    /// What the summaries have been told so far (the workers' and this thread's).
    noted: Refusals,
    refusal_log: RefusalLog,
    /// Timers have fired up to here: the policy's time never goes back.
    floor: Timestamp,
    /// When each kind of warning was last said, and how many were not said since.
    said: Vec<(&'static str, Timestamp, u64)>,
    report: R,
}

impl<R: FnMut(Timestamp, &Json)> State<R> {
    fn site(&self) -> &Site {
        self.decider.site()
    }

    /// Says `text` on stderr, at most once every 10 s for one `kind`.
    fn say(&mut self, kind: &'static str, text: String) {
        let now = self.clock.now();
        match self.said.iter_mut().find(|(k, _, _)| *k == kind) {
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
                self.said.push((kind, now, 0));
                console::warn(format!("trapgate: {text}"));
            }
        }
    }

    /// Shows a record to the caller now, labelled with the wall clock's time.
    fn show_now(&mut self, t: Timestamp, v: &Json) {
        let label = t.shifted(self.clock.label_offset());
        (self.report)(label, v);
    }

    /// The journal could not be written: said once, shown as an alert (it cannot be
    /// journaled), counted. Orders still go out.
    fn journal_failed(&mut self, t: Timestamp, what: &str, e: &io::Error) {
        self.live.journal_errors += 1;
        if self.journal_failing {
            return;
        }
        self.journal_failing = true;
        let path = self
            .journal_path
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string());
        let text = format!(
            "journal {path}: cannot {what}: {e}; records are not journaled until it can, orders still go out"
        );
        self.say("journal", text.clone());
        let alert = json!({"decision": "Alert", "kind": "journal_failed", "reason": text, "journaled": false});
        self.show_now(t, &alert);
    }

    /// Journals a decision or action; the caller is told once it is in the journal.
    fn record(&mut self, t: Timestamp, v: Json) {
        let Some(j) = &mut self.journal else {
            self.show_now(t, &v);
            return;
        };
        match j.append(t, &v) {
            Ok(()) => {
                self.unsynced = true;
                self.unshown.push((t, v));
            }
            Err(e) => {
                self.journal_failed(t, "append", &e);
                self.show_now(t, &unjournaled(v));
            }
        }
    }

    /// Journals an input (not shown to the caller).
    fn record_input(&mut self, t: Timestamp, v: Json) {
        if let Some(j) = &mut self.journal
            && let Err(e) = j.append(t, &v)
        {
            self.journal_failed(t, "append", &e);
        }
    }

    /// Tells the caller what has been journaled since the last time.
    fn show(&mut self) {
        for (t, v) in std::mem::take(&mut self.unshown) {
            self.show_now(t, &v);
        }
    }

    /// Fsyncs the journal, then shows what it holds (what it failed to hold is shown as
    /// not journaled).
    fn sync(&mut self) {
        if self.unsynced {
            self.unsynced = false;
            let keep = [self.decider.oldest_outage(), self.ledger.oldest_followed()]
                .into_iter()
                .flatten()
                .min();
            let synced = match &mut self.journal {
                Some(j) => {
                    j.keep_since(keep);
                    j.sync()
                }
                None => Ok(()),
            };
            let t = self.clock.now();
            match synced {
                Ok(()) if self.journal_failing => {
                    self.journal_failing = false;
                    self.say("journal", "journal: written again".into());
                    self.record(
                        t,
                        json!({"decision": "Alert", "kind": "journal_ok", "reason": "the journal is written again"}),
                    );
                }
                Ok(()) => {}
                Err(e) => {
                    self.journal_failed(t, "write or fsync", &e);
                    for (_, v) in &mut self.unshown {
                        *v = unjournaled(std::mem::take(v));
                    }
                }
            }
        }
        self.show();
    }

    /// Takes the per-recorder and per-UPS tables of the site now running.
    fn site_changed(&mut self, relay_to: Vec<(SocketAddr, [u8; 4])>) {
        let site = self.decider.site();
        self.relay_to = relay_to;
        self.last_shown = vec![None; site.recorders.len()];
        self.last_answer = vec![None; site.upses.len()];
    }

    /// Queues recorder `r`'s order (its trap, or its command after the fsync).
    fn order(&mut self, t: Timestamp, r: usize, attempt: u32) {
        let rec = &self.decider.site().recorders[r];
        if self.opts.dry_run {
            let name = rec.name.clone();
            self.record(
                t,
                json!({"action": "WouldSend", "recorder": name, "attempt": attempt, "detail": "dry run: nothing sent"}),
            );
            return;
        }
        match &rec.kind {
            RecorderKind::TrapRelay => {
                let (to, agent_addr) = self.relay_to[r];
                let ticks = (t.ns_since(self.started) / ns::TICK) as u32;
                self.relay
                    .encode(rec.community.as_bytes(), agent_addr, ticks, &mut self.buf);
                self.sends.push(to, &self.buf);
                self.orders.push((r, attempt));
            }
            RecorderKind::Exec(_) => self.execs.push((r, attempt)),
        }
        self.live.orders_sent += 1;
    }

    /// Sends this turn's polls, orders and answers (after the journal's fsync), journals
    /// each order sent, and starts the commands.
    fn act(&mut self, agent: &UdpSocket, polls: &PollSockets) {
        self.sync();
        let t = self.clock.now();
        // Polls first: a confirmation waits for its poll, and counts from when it left.
        for (u, to, bytes) in std::mem::take(&mut self.polls) {
            let sent = match polls.toward(to) {
                Some(socket) => socket.send_to(&bytes, to),
                None => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "no socket of that address family here",
                )),
            };
            match sent {
                Ok(_) => {
                    self.live.polls_sent += 1;
                    self.poller.handle_sent(t, u);
                    let before = self.decider.revision();
                    self.decider.handle_poll_sent(t, u);
                    if self.decider.revision() != before {
                        let name = self.site().upses[u].name.clone();
                        self.record_input(t, json!({"input": "poll_sent", "ups": name}));
                    }
                }
                Err(e) => {
                    self.live.send_errors += 1;
                    self.poller.handle_send_failed(t, u);
                    self.say("poll", format!("cannot poll {to}: {e}"));
                }
            }
        }
        if !self.sends.is_empty() {
            let (_, failed) = self.sends.flush(agent.as_raw_fd());
            if !self.orders.is_empty()
                && let Some(first) = self.first_arrival
            {
                self.latency.record_fanout(now().0.saturating_sub(first));
            }
            for (to, e) in &failed {
                self.live.send_errors += 1;
                self.say("send", format!("cannot send to {to}: {e}"));
            }
            for (r, attempt) in std::mem::take(&mut self.orders) {
                let to = self.relay_to[r].0;
                let name = self.site().recorders[r].name.clone();
                let v = match failed.iter().find(|(a, _)| *a == to) {
                    None => {
                        self.ledger.sent(t, r, attempt);
                        json!({"action": "Sent", "recorder": name, "attempt": attempt, "to": to.to_string(), "detail": "APC lowBattery v1 trap"})
                    }
                    Some((_, e)) => {
                        json!({"action": "SendFailed", "recorder": name, "attempt": attempt, "to": to.to_string(), "detail": e.to_string()})
                    }
                };
                self.record(t, v);
            }
        }
        self.spawn_execs(t);
        // What was sent is journaled after the fact: handed to the kernel before it is
        // shown (it survives a kill -9), fsync'd with the next turn's decisions.
        if !self.unshown.is_empty() {
            if let Some(j) = &mut self.journal
                && let Err(e) = j.flush()
            {
                self.journal_failed(t, "write", &e);
                for (_, v) in &mut self.unshown {
                    *v = unjournaled(std::mem::take(v));
                }
            }
            self.show();
        }
    }

    fn spawn_execs(&mut self, t: Timestamp) {
        for (r, attempt) in std::mem::take(&mut self.execs) {
            let site = self.decider.site();
            let rec = &site.recorders[r];
            let RecorderKind::Exec(command) = &rec.kind else {
                continue;
            };
            let ups = &site.upses[rec.ups];
            let cmd = exec::Command {
                recorder: r,
                attempt,
                command: command.clone(),
                env: vec![
                    ("TRAPGATE_RECORDER", rec.name.clone()),
                    ("TRAPGATE_RECORDER_ADDRESS", rec.address.to_string()),
                    ("TRAPGATE_UPS", ups.name.clone()),
                    ("TRAPGATE_REASON", "shutdown".to_string()),
                    ("TRAPGATE_ATTEMPT", attempt.to_string()),
                    ("TRAPGATE_SHUTDOWN_TIME", rec.shutdown_time.0.to_string()),
                    // Network UPS Tools' NOTIFYCMD names, for scripts written for upsmon.
                    ("UPSNAME", ups.name.clone()),
                    ("NOTIFYTYPE", "SHUTDOWN".to_string()),
                ],
                timeout: Duration::from_secs(site.gateway.exec_timeout.0 as u64),
            };
            let name = rec.name.clone();
            let tx = self.exec_tx.clone();
            let waker = Arc::clone(&self.waker);
            exec::spawn(cmd, move |done| {
                let _ = tx.send(done);
                let _ = waker.wake();
            });
            self.ledger.sent(t, r, attempt);
            self.record(
                t,
                json!({"action": "Sent", "recorder": name, "attempt": attempt, "detail": "command started"}),
            );
        }
    }

    fn exec_done(&mut self, t: Timestamp, d: Finished) {
        let Some(rec) = self.site().recorders.get(d.recorder) else {
            return;
        };
        let name = rec.name.clone();
        let mut v = json!({"action": "CommandDone", "recorder": name, "attempt": d.attempt,
            "status": d.status_text(), "detail": format!("{:.1} s", d.took.as_secs_f64())});
        for (key, c) in [("stdout", &d.stdout), ("stderr", &d.stderr)] {
            if c.total > 0 {
                v[key] = json!(c.text());
            }
        }
        self.record(t, v);
        if d.succeeded() {
            // A command that did its job is the recorder's acknowledgement.
            self.decider.handle_ack(t, d.recorder);
            self.decisions(t);
        }
    }

    /// Acts on every decision the policy has: journal first, then queue the action; and
    /// on what the poller has for it, until neither has anything more.
    fn decisions(&mut self, t: Timestamp) {
        loop {
            while let Some(d) = self.decider.poll_decision() {
                self.live.decisions += 1;
                let offset = self.clock.label_offset();
                let v = report::decision_json(self.decider.site(), t.shifted(offset), &d, offset);
                self.record(t, v);
                self.follow(t, &d);
                if let Decision::ShutdownRecorder { recorder, .. } = d {
                    self.order(t, recorder, 1);
                }
            }
            if !self.poll_outputs(t) {
                break;
            }
        }
    }

    /// What a decision changes in the gateway's own state (virtual UPS, ledger, poller),
    /// the same live and when a journal is replayed at start.
    fn follow(&mut self, t: Timestamp, d: &Decision) {
        match *d {
            Decision::ShutdownRecorder { recorder, .. } if !self.opts.dry_run => {
                self.ledger.ordered(t, recorder)
            }
            Decision::PresentCharge { recorder, percent } => {
                self.agent.presented[recorder] = percent;
            }
            Decision::Poll { ups, .. } => self.poller.poll_now(t, ups),
            Decision::Acknowledged { recorder } => self.ledger.acknowledged(t, recorder),
            Decision::PowerBack { ups } => self.ledger.power_back(t, ups),
            _ => {}
        }
    }

    /// Takes what the poller has: polls to send, answers, silences. True if any of it
    /// went to the policy (which may have decided on it).
    fn poll_outputs(&mut self, t: Timestamp) -> bool {
        let mut told = false;
        while let Some(o) = self.poller.poll_output() {
            told |= !matches!(o, PollOutput::Send { .. });
            match o {
                PollOutput::Send { ups, to, bytes } => self.polls.push((ups, to, bytes)),
                PollOutput::Answer { ups, answer } => self.poll_answer(t, ups, answer),
                PollOutput::Silent { ups } => self.ups_silent(t, ups, true),
                PollOutput::Answering { ups } => self.ups_silent(t, ups, false),
                PollOutput::Unanswered { ups, sent } => {
                    let before = self.decider.revision();
                    self.decider.handle_poll_unanswered(t, ups, sent);
                    if self.decider.revision() != before {
                        let name = self.site().upses[ups].name.clone();
                        self.record_input(
                            t,
                            json!({"input": "poll_unanswered", "ups": name, "sent": sent}),
                        );
                    }
                }
            }
        }
        told
    }

    /// What a UPS said to our poll: cached for the virtual UPS, handed to the policy,
    /// journaled when it says something new or moved the policy.
    fn poll_answer(&mut self, t: Timestamp, ups: usize, answer: PollAnswer) {
        self.agent.ups[ups].update(t, answer);
        let before = self.decider.revision();
        self.decider.handle_poll(t, ups, answer);
        if self.decider.revision() != before || self.last_answer[ups] != Some(answer) {
            self.last_answer[ups] = Some(answer);
            let name = self.site().upses[ups].name.clone();
            self.record_input(
                t,
                json!({"input": "poll", "ups": name, "answer": answer_json(&answer)}),
            );
        }
    }

    /// The poller's word that a UPS stopped (or started again) answering.
    fn ups_silent(&mut self, t: Timestamp, ups: usize, silent: bool) {
        let name = self.site().upses[ups].name.clone();
        self.record_input(t, json!({"input": "silent", "ups": name, "silent": silent}));
        self.decider.handle_ups_silent(ups, silent);
    }

    fn ledger_outputs(&mut self, t: Timestamp) {
        while let Some(o) = self.ledger.poll_output() {
            let site = self.decider.site();
            match o {
                LedgerOutput::Resend { recorder, attempt } => {
                    self.live.resends += 1;
                    self.order(t, recorder, attempt);
                }
                LedgerOutput::NotAcknowledged { recorder, sent } => {
                    let v = json!({"action": "NotAcknowledged", "recorder": site.recorders[recorder].name, "attempt": sent,
                        "detail": "no acknowledgement before the UPS cuts its outlets"});
                    self.record(t, v);
                }
                LedgerOutput::Back { recorder, after_s } => {
                    let v = json!({"action": "Back", "recorder": site.recorders[recorder].name,
                        "after_s": (after_s * 10.0).round() / 10.0});
                    self.record(t, v);
                }
                LedgerOutput::NotBack { recorder } => {
                    let rec = &site.recorders[recorder];
                    let v = json!({"action": "NotBack", "recorder": rec.name,
                        "detail": format!("not heard from within its boot time ({} s) after power returned: switch it on by hand?", rec.boot_time.0)});
                    self.record(t, v);
                }
            }
        }
    }

    /// Fires, in time order and each at its own time, every timer due at or before
    /// `to`: the policy's, the poller's, the ledger's, the refusal summaries'.
    fn advance(&mut self, to: Timestamp) {
        loop {
            let next = [
                self.decider.poll_timeout(),
                self.poller.poll_timeout(),
                self.ledger.poll_timeout(),
                self.refusal_log.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .filter(|d| *d <= to);
            let Some(due) = next else { break };
            let due = due.max(self.floor);
            self.floor = due;
            if self.decider.poll_timeout().is_some_and(|d| d <= due) {
                self.record_input(due, json!({"input": "timeout"}));
                self.decider.handle_timeout(due);
                self.decisions(due);
            }
            if self.poller.poll_timeout().is_some_and(|d| d <= due) {
                self.poller.handle_timeout(due);
                self.decisions(due);
            }
            if self.ledger.poll_timeout().is_some_and(|d| d <= due) {
                self.ledger.handle_timeout(due);
                self.ledger_outputs(due);
            }
            if self.refusal_log.poll_timeout().is_some_and(|d| d <= due) {
                self.refusal_log.handle_timeout(due);
                self.refusal_summaries(due);
            }
        }
        self.floor = self.floor.max(to);
    }

    /// An input's time on the timeline, after every timer due before it has fired (the
    /// policy's time never goes back).
    fn input_at(&mut self, kernel: u64) -> Timestamp {
        self.first_arrival.get_or_insert(kernel);
        let at = self.clock.arrival(kernel).max(self.floor);
        self.advance(at);
        at
    }

    fn refuse(&mut self, why: Refusal, source: IpAddr, event: Option<Event>) {
        self.refusals.add(why);
        self.last_refused[why.index()] = (Some(source), event);
    }

    /// Hands the refusal counts (the workers' `tally` and this thread's) to the
    /// summaries: at most one record per reason per second reaches the journal.
    fn note_refusals(&mut self, t: Timestamp, tally: &Tally) {
        let mut all = tally.refusals;
        all.sum(&self.refusals);
        for r in Refusal::ALL {
            let new = all.get(r).saturating_sub(self.noted.get(r));
            if new > 0 {
                let (mine, theirs) = (self.last_refused[r.index()], tally.last_refused[r.index()]);
                let (source, event) = if mine.0.is_some() { mine } else { theirs };
                self.refusal_log.note(t, r, new, source, event);
            }
        }
        self.noted = all;
        self.refusal_summaries(t);
    }

    fn refusal_summaries(&mut self, t: Timestamp) {
        while let Some(s) = self.refusal_log.poll_summary() {
            self.record(t, report::refused_json(&s));
        }
    }

    /// The gateway's counts and latencies with the workers' `tally` added, and what the
    /// kernel dropped on this thread's own sockets (`own_drops`).
    fn totals(
        &self,
        tally: &Tally,
        own_drops: Option<u64>,
    ) -> (crate::engine::pipeline::Counters, Live, Latency) {
        let mut live = self.live;
        live.foreign += tally.foreign;
        live.truncated += tally.truncated;
        live.send_errors += tally.send_errors;
        live.refused = tally.refusals;
        live.refused.sum(&self.refusals);
        live.kernel_drops = tally.kernel_drops.zip(own_drops).map(|(a, b)| a + b);
        live.poll_answers = self.poller.answered;
        live.agent_trimmed = self.agent.trimmed;
        live.agent_too_big = self.agent.too_big;
        live.console_dropped = console::dropped();
        let mut latency = self.latency.clone();
        latency.add(&tally.latency);
        (tally.counters.clone(), live, latency)
    }

    /// What a worker heard and believed.
    fn heard(&mut self, generation: u32, h: &Heard) {
        match h {
            Heard::Event {
                arrival,
                source,
                who,
                community,
                class,
            } => {
                let (arrival, source, event) = (*arrival, *source, class.event);
                // Classified by a view older than the site's (a reload came between): its
                // indices are not this site's; who it is, and whether to believe it, is
                // asked again of the site now.
                let who = if generation == self.view.generation {
                    *who
                } else {
                    let trust = self.view.trust();
                    match trust
                        .who(source)
                        .map(|w| trust.notification(w, community.as_bytes(), event))
                    {
                        Some(Ok(w)) => w,
                        Some(Err(why)) => return self.refuse(why, source, Some(event)),
                        None => return,
                    }
                };
                let at = self.input_at(arrival);
                if let Who::Recorder(r) = who {
                    self.ledger.seen(at, r);
                }
                // Named by the view that classified it (this site's, or the one before
                // the last reload); one older still, after two quick reloads, leaves it
                // unnamed rather than named by another site's rule indices.
                let rule = self
                    .view
                    .rule_name(generation, *class)
                    .or_else(|| self.previous.as_ref()?.rule_name(generation, *class))
                    .unwrap_or_default()
                    .into_owned();
                let before = self.decider.revision();
                self.decider.handle_notification(at, who, event, &rule);
                // Arrival → decision ready (before it is journaled and acted on).
                self.latency.record(event, now().0.saturating_sub(arrival));
                // Journaled only if it moved something: repeats do not grow the journal.
                if self.decider.revision() != before
                    && let Some(j) = &mut self.journal
                {
                    let site = self.decider.site();
                    let ups = match who {
                        Who::Ups(u) => Some(site.upses[u].name.as_str()),
                        Who::Recorder(_) => None,
                    };
                    if let Err(e) = j.event(at, source, ups, community.as_bytes(), event, &rule) {
                        self.journal_failed(at, "append", &e);
                    }
                }
                self.decisions(at);
                self.ledger_outputs(at);
            }
            Heard::Seen { .. } if generation != self.view.generation => {}
            Heard::Seen { arrival, recorder } => {
                let at = self.input_at(*arrival);
                self.ledger.seen(at, *recorder);
                self.ledger_outputs(at);
            }
        }
    }

    /// A worker's batch.
    fn heard_batch(&mut self, generation: u32, items: &[Heard]) {
        for h in items {
            self.heard(generation, h);
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
            let at = self.input_at(kernel);
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
        let Ok(m) = Message::parse(payload, arena) else {
            self.live.malformed_elsewhere += 1;
            return;
        };
        match self
            .agent
            .answer(at, from.ip(), &m, payload.len(), &mut self.buf)
        {
            Answered::Recorder(r) => {
                self.live.agent_answers += 1;
                self.ledger.seen(at, r);
                self.sends.push(from, &self.buf);
                let shown = self.agent.presented[r];
                if self.last_shown[r] != Some(shown) {
                    self.last_shown[r] = Some(shown);
                    let p = self.agent.presented_to(at, r);
                    let name = self.site().recorders[r].name.clone();
                    let real = self.agent.ups[self.site().recorders[r].ups].values;
                    self.record(
                        at,
                        json!({"action": "Presented", "recorder": name, "charge": p.charge, "on_battery": p.on_battery,
                            "real": answer_json(&real), "detail": if shown.is_some() { "the policy's value" } else { "the UPS's own values" }}),
                    );
                }
            }
            // Its own address and community, asking more than fits: alive all the same.
            Answered::Discarded(r) => self.ledger.seen(at, r),
            Answered::OverRate(r) => {
                self.ledger.seen(at, r);
                self.refuse(Refusal::AgentOverRate, from.ip(), None);
            }
            Answered::WrongCommunity(_) => {
                self.refuse(Refusal::AgentWrongCommunity, from.ip(), None)
            }
            Answered::NotRecorder => self.refuse(Refusal::AgentNotRecorder, from.ip(), None),
            Answered::NotRequest => {
                if let Some(Who::Recorder(r)) = self.view.trust().who(from.ip())
                    && self.view.trust().heard_from(Who::Recorder(r), m.community) == Some(r)
                {
                    self.ledger.seen(at, r);
                }
            }
        }
        self.ledger_outputs(at);
    }

    /// One datagram on the poll socket: believed only as the answer to our request.
    fn poll_datagram(&mut self, at: Timestamp, from: SocketAddr, payload: &[u8], arena: &Bump) {
        let Ok(m) = Message::parse(payload, arena) else {
            self.live.malformed_elsewhere += 1;
            return;
        };
        match self.poller.handle_response(at, from, &m) {
            Ok(_) => self.decisions(at),
            Err(why) => self.refuse(why, from.ip(), None),
        }
    }
}

/// A record shown although it could not be journaled: it says so.
fn unjournaled(mut v: Json) -> Json {
    if let Some(o) = v.as_object_mut() {
        o.insert("journaled".into(), json!(false));
    }
    v
}

/// Replays a journal into fresh policy, agent and ledger state: the outage in progress
/// comes back, and the orders decided but never sent are returned.
fn resume<R: FnMut(Timestamp, &Json)>(
    s: &mut State<R>,
    records: &[(Timestamp, Json)],
) -> BTreeSet<usize> {
    let site = s.decider.site().clone();
    let recorder = |name: &str| site.recorders.iter().position(|r| r.name == name);
    let ups = |name: &str| site.upses.iter().position(|u| u.name == name);
    let trust = s.view.trust().clone();
    let mut unsent = BTreeSet::new();
    let drain = |s: &mut State<R>, t: Timestamp, unsent: &mut BTreeSet<usize>| {
        while let Some(d) = s.decider.poll_decision() {
            s.follow(t, &d);
            if let Decision::ShutdownRecorder { recorder, .. } = d {
                unsent.insert(recorder);
            }
        }
        while s.poller.poll_output().is_some() {}
    };
    for (t, r) in records {
        let t = *t;
        if s.ledger.poll_timeout().is_some_and(|d| d <= t) {
            s.ledger.handle_timeout(t);
        }
        while s.ledger.poll_output().is_some() {}
        match r["input"].as_str() {
            Some("event") => {
                let (Some(who), Some(ev)) = (
                    r["source"]
                        .as_str()
                        .and_then(|a| a.parse::<IpAddr>().ok())
                        .and_then(|a| trust.who(a)),
                    r["event"]
                        .as_str()
                        .and_then(|e| Event::ALL.iter().find(|x| x.name() == e)),
                ) else {
                    continue;
                };
                let rule = r["rule"].as_str().unwrap_or("");
                s.decider.handle_notification(t, who, *ev, rule);
            }
            Some("poll") => {
                if let Some(u) = r["ups"].as_str().and_then(ups) {
                    let answer = answer_from_json(&r["answer"]);
                    s.agent.ups[u].update(t, answer);
                    s.decider.handle_poll(t, u, answer);
                }
            }
            Some("poll_sent") => {
                if let Some(u) = r["ups"].as_str().and_then(ups) {
                    s.decider.handle_poll_sent(t, u);
                }
            }
            Some("poll_unanswered") => {
                if let Some(u) = r["ups"].as_str().and_then(ups) {
                    s.decider
                        .handle_poll_unanswered(t, u, r["sent"].as_bool() == Some(true));
                }
            }
            Some("silent") => {
                if let Some(u) = r["ups"].as_str().and_then(ups) {
                    s.decider
                        .handle_ups_silent(u, r["silent"].as_bool() == Some(true));
                }
            }
            Some("timeout") => s.decider.handle_timeout(t),
            _ => {}
        }
        drain(s, t, &mut unsent);
        match (
            r["action"].as_str(),
            r["recorder"].as_str().and_then(recorder),
        ) {
            (Some("Sent"), Some(rec)) => {
                unsent.remove(&rec);
                let attempt = r["attempt"].as_u64().unwrap_or(1) as u32;
                s.ledger.sent(t, rec, attempt);
            }
            (Some("CommandDone"), Some(rec)) if r["status"].as_str() == Some("exit 0") => {
                s.decider.handle_ack(t, rec);
            }
            (Some("Back"), Some(rec)) => s.ledger.seen(t, rec),
            _ => {}
        }
        drain(s, t, &mut unsent);
    }
    while s.ledger.poll_output().is_some() {}
    // Only orders still waiting for their acknowledgement are sent again.
    unsent.retain(|r| matches!(s.ledger.standing(*r), Standing::Ordered { .. }));
    unsent
}

/// What the kernel dropped on the agent and poll sockets (their receive buffers full).
fn own_drops(agent: &UdpSocket, polls: &PollSockets) -> Option<u64> {
    let mut sum = socket_drops(agent.as_raw_fd())?;
    for s in polls.0.iter().flatten() {
        sum += socket_drops(s.as_raw_fd())?;
    }
    Some(sum)
}

/// The sockets polls leave from, and their answers come back to: one IPv4, one IPv6,
/// each on the agent's address where it is of that family (else the family's any
/// address), on a port the kernel picks. One that cannot be opened (no IPv6 here) is
/// left out, unless it is the agent's own family.
struct PollSockets([Option<UdpSocket>; 2]);

impl PollSockets {
    fn bind(agent: IpAddr) -> Result<PollSockets, StartError> {
        let mut sockets = [None, None];
        let families = [
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), agent.is_ipv4()),
            (IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), agent.is_ipv6()),
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

/// Runs the gateway for `site` until SIGINT or SIGTERM. `ready` learns where it
/// listens; `report` gets every decision and action (as journaled) with its time,
/// labelled by the wall clock; on SIGHUP `reload` (run on a thread of its own) gives the
/// site to carry on with (a broken one, or one that would drop an outage, is reported
/// and the running site kept).
pub fn run(
    site: Site,
    opts: Options,
    ready: impl FnOnce(&Bound),
    report: impl FnMut(Timestamp, &Json),
    reload: impl FnMut() -> Result<Site, String> + Send + 'static,
) -> Result<Stopped, StartError> {
    let listen = if opts.listen.is_empty() {
        site.gateway.listen.clone()
    } else {
        opts.listen.clone()
    };
    let agent_at = opts.agent.unwrap_or(site.gateway.agent);
    let mut poll = Poll::new().map_err(StartError::Setup)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(StartError::Setup)?);
    let workers = receive::worker_count(opts.workers.unwrap_or(site.gateway.workers));
    let view = Arc::new(View::new(&site, 0));
    let mut receivers = receive::start(&listen, workers, Arc::clone(&view), Arc::clone(&waker))?;
    let bound = receivers.bound.clone();
    let mut agent_socket =
        UdpSocket::from_std(bind_udp(agent_at).map_err(|e| StartError::Bind(agent_at, e))?);
    let agent_bound = agent_socket.local_addr().map_err(StartError::Setup)?;
    // The poll socket: the agent's address, a port of the kernel's choosing (unknown to
    // anyone who did not see a poll leave).
    let mut poll_sockets = PollSockets::bind(agent_bound.ip())?;
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
    let polls_bound = poll_sockets.bound();
    let mut signals =
        Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP]).map_err(StartError::Setup)?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(StartError::Setup)?;
    // A file-size limit makes a journal write fail, not the gateway die (SIGXFSZ).
    let _ = signal_hook::flag::register(libc::SIGXFSZ, Arc::new(AtomicBool::new(false)));
    let snapshot = Arc::new(Mutex::new(String::new()));
    let metrics_at = match opts.metrics {
        Some(addr) => {
            let listener =
                std::net::TcpListener::bind(addr).map_err(|e| StartError::Bind(addr, e))?;
            let at = listener.local_addr().map_err(StartError::Setup)?;
            serve_metrics(listener, Arc::clone(&snapshot));
            Some(at)
        }
        None => None,
    };
    let mut reloader = Reloader::start(reload, agent_bound, Arc::clone(&waker));

    let time: Arc<dyn TimeSource> = opts
        .time
        .clone()
        .unwrap_or_else(|| Arc::new(OsTime::default()));
    let clock = Clock::new(time, opts.speed);
    let start = clock.now();
    let (exec_tx, exec_rx): (Sender<Finished>, Receiver<Finished>) = crossbeam_channel::unbounded();
    let journal_path = opts.journal.clone();
    let mut s = State {
        clock,
        view,
        previous: None,
        agent: Agent::new(&site, start),
        poller: Poller::new(&site, start, Box::new(OsRandom)),
        ledger: Ledger::new(&site),
        running: Arc::new(site.clone()),
        decider: Decider::new(site),
        opts,
        journal: None,
        journal_path: journal_path.clone(),
        journal_failing: false,
        unsynced: false,
        unshown: Vec::new(),
        relay_to: Vec::new(),
        relay: RelayOids::new(),
        last_shown: Vec::new(),
        last_answer: Vec::new(),
        sends: SendBatch::new(),
        polls: Vec::new(),
        execs: Vec::new(),
        exec_tx,
        waker,
        started: start,
        buf: Vec::with_capacity(1500),
        live: Live::default(),
        latency: Latency::new(),
        first_arrival: None,
        orders: Vec::new(),
        refusals: Refusals::default(),
        last_refused: Default::default(),
        noted: Refusals::default(),
        refusal_log: RefusalLog::new(),
        floor: start,
        said: Vec::new(),
        report,
    };
    let relay_to = relays(s.decider.site(), agent_bound);
    s.site_changed(relay_to);
    // The site's own warnings come first, then the journal's outage, if one.
    s.decisions(start);
    let mut resumed = None;
    let mut unsent = BTreeSet::new();
    if let Some(path) = &journal_path {
        let found = journal::read(path).map_err(|e| StartError::Journal(path.clone(), e))?;
        let waiting = resume(&mut s, &found.records);
        // The replay's polls are history: the poller starts afresh (every UPS now).
        s.poller = Poller::new(s.decider.site(), start, Box::new(OsRandom));
        let standing = s.ledger.all();
        resumed = Some(Resumed {
            records: found.records.len(),
            damaged: found.damaged.len(),
            waiting: standing
                .iter()
                .filter(|x| matches!(x, Standing::Ordered { .. }))
                .count(),
            acknowledged: standing
                .iter()
                .filter(|x| matches!(x, Standing::Acknowledged { .. }))
                .count(),
            unsent: waiting.len(),
        });
        unsent = waiting;
        s.journal = Some(Journal::open(path).map_err(|e| StartError::Journal(path.clone(), e))?);
        let r = resumed.clone().unwrap_or_default();
        s.record(
            start,
            json!({"action": "Started", "detail": format!("journal: {} records read ({} damaged lines skipped), {} recorders waiting for their acknowledgement, {} acknowledged, {} orders never sent", r.records, r.damaged, r.waiting, r.acknowledged, r.unsent)}),
        );
    }
    ready(&Bound {
        listen: bound.clone(),
        agent: agent_bound,
        polls: polls_bound,
        metrics: metrics_at,
        workers: receivers.workers(),
        steered: receivers.steered,
        resumed,
    });
    for r in unsent {
        s.order(start, r, 1);
    }

    let mut events = Events::with_capacity(64);
    let mut arena = Bump::with_capacity(256 * 1024);
    let mut agent_batch = RecvBatch::new();
    let mut poll_batch = RecvBatch::new();
    let mut published = Instant::now() - PUBLISH;
    let mut tallied = start;
    // Inputs that ran out of budget last turn: read again without waiting.
    let (mut more_batches, mut more_answers, mut more_requests) = (false, [false; 2], false);
    loop {
        // Act on what the last turn decided: fsync the journal, then send.
        s.act(&agent_socket, &poll_sockets);
        s.first_arrival = None;

        let timeout = if more_batches || more_answers.contains(&true) || more_requests {
            Some(Duration::ZERO)
        } else {
            let due = [
                s.decider.poll_timeout(),
                s.poller.poll_timeout(),
                s.ledger.poll_timeout(),
                s.refusal_log.poll_timeout(),
                Some(tallied.plus_ns(TALLY)),
            ]
            .into_iter()
            .flatten()
            .min();
            let wait = due.map(|d| s.clock.wait(d));
            match (wait, metrics_at) {
                (Some(w), Some(_)) => Some(w.min(PUBLISH)),
                (None, Some(_)) => Some(PUBLISH),
                (w, None) => w,
            }
        };
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            return Err(StartError::Setup(e));
        }
        let (mut signalled, mut woken) = (false, false);
        for event in events.iter() {
            match event.token() {
                SIGNALS => signalled = true,
                WAKE => woken = true,
                AGENT => more_requests = true,
                t if t == POLLS[0] => more_answers[0] = true,
                t if t == POLLS[1] => more_answers[1] = true,
                _ => {}
            }
        }
        if signalled {
            for signal in signals.pending() {
                if signal == libc::SIGHUP {
                    reloader.request(&s.running);
                    continue;
                }
                // What the workers still hold is decided before the gateway goes.
                let tally = receivers.stop(|g, items| s.heard_batch(g, items));
                let t = s.clock.now();
                s.advance(t);
                s.note_refusals(t, &tally);
                s.refusal_log.flush(t);
                s.refusal_summaries(t);
                s.act(&agent_socket, &poll_sockets);
                s.sync();
                let own = own_drops(&agent_socket, &poll_sockets);
                let (counters, live, latency) = s.totals(&tally, own);
                return Ok(Stopped {
                    counters,
                    live,
                    signal,
                    latency,
                });
            }
        }
        if woken {
            while let Ok(done) = exec_rx.try_recv() {
                let t = s.clock.now();
                s.advance(t);
                s.exec_done(t, done);
            }
            if let Some(read) = reloader.ready() {
                let t = s.clock.now();
                s.advance(t);
                apply_reload(&mut s, &mut receivers, &reloader, t, read);
                if reloader.wanted_again() {
                    reloader.request(&s.running);
                }
            }
            more_batches = true;
        }
        // Each input within its budget: the workers' batches first (the UPSes' traps),
        // then the UPSes' answers, then the recorders' requests.
        if more_batches {
            more_batches =
                receivers.drain_some(BATCHES_PER_TURN, |g, items| s.heard_batch(g, items));
        }
        for (more, socket) in more_answers.iter_mut().zip(&poll_sockets.0) {
            if let (true, Some(socket)) = (*more, socket) {
                *more = s.take(
                    socket,
                    &mut poll_batch,
                    ANSWERS_PER_TURN,
                    &mut arena,
                    State::poll_datagram,
                );
            }
        }
        if more_requests {
            more_requests = s.take(
                &agent_socket,
                &mut agent_batch,
                REQUESTS_PER_TURN,
                &mut arena,
                State::agent_datagram,
            );
        }
        let t = s.clock.now();
        s.advance(t);
        if t.ns_since(tallied) >= TALLY {
            tallied = t;
            let tally = receivers.tally();
            s.note_refusals(t, &tally);
        }
        if metrics_at.is_some() && published.elapsed() >= PUBLISH / 2 {
            published = Instant::now();
            let own = own_drops(&agent_socket, &poll_sockets);
            let (counters, live, latency) = s.totals(&receivers.tally(), own);
            let text = prometheus(&counters, &live, &latency);
            if let Ok(mut shared) = snapshot.lock() {
                *shared = text;
            }
        }
    }
}

/// A site read for SIGHUP: taken, or refused with the reason (the running site kept).
fn apply_reload<R: FnMut(Timestamp, &Json)>(
    s: &mut State<R>,
    receivers: &mut receive::Receivers,
    reloader: &Reloader,
    t: Timestamp,
    read: Result<Box<Prepared>, String>,
) {
    let mut p = match read {
        Ok(p) => p,
        Err(e) => {
            console::warn(format!("trapgate: SIGHUP: keeping the running site: {e}"));
            return;
        }
    };
    if let Some(why) = s.decider.reload_refusal(&p.site) {
        console::warn(format!("trapgate: SIGHUP: keeping the running site: {why}"));
        s.record(
            t,
            json!({"decision": "Alert", "kind": "reload_refused", "reason": format!("the site file was not reloaded: {why}")}),
        );
        return;
    }
    console::warn(format!(
        "trapgate: SIGHUP: site reloaded ({} UPS, {} recorders); outages under way go on",
        p.site.upses.len(),
        p.site.recorders.len()
    ));
    // Made from the site running when it was asked for; another reload came between
    // only if two were asked for in a row.
    if !Arc::ptr_eq(&p.base, &s.running) {
        p.remap = Remap::between(&s.running, &p.site);
    }
    p.view.generation = s.view.generation + 1;
    let view = Arc::new(p.view);
    s.previous = Some(std::mem::replace(&mut s.view, Arc::clone(&view)));
    receivers.reload(view);
    let old = (
        s.agent.take_over(p.agent, &p.remap),
        s.poller.take_over(p.poller, &p.remap),
        s.ledger.take_over(p.ledger, &p.remap),
        s.decider.take_over(p.decider, &p.remap),
        std::mem::replace(&mut s.running, p.site),
        std::mem::take(&mut s.relay_to),
        p.remap,
    );
    reloader.discard(Box::new(old));
    s.site_changed(p.relays);
    s.decisions(t);
}
