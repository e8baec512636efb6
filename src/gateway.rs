//! The live gateway's decision thread. The receive workers (`crate::receive`) read the
//! trap sockets, decode and classify, and hand it what the policy acts on; this thread
//! owns everything with state: the policy (`Decider`) of every UPS, the virtual UPS
//! (`Agent`) on the agent socket (recorders' polls, the UPSes' answers to trapgate's
//! own polls), the poller, the ack ledger and the journal.
//!
//! Every iteration: fire the timers that are due, take the workers' batches (the
//! kernel's receive time as arrival) and what the agent socket holds, hand them to the
//! policy, journal its decisions and fsync them, and only then act: shutdown traps go
//! out in `sendmmsg` batches from the agent socket (the recorder's "UPS"), commands run
//! on their own threads, polls and answers go out. SIGINT/SIGTERM stop it cleanly (the
//! workers' last batches decided first), SIGHUP reloads the site. With a journal, a
//! restart resumes the outage in progress.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bumpalo::Bump;
use crossbeam_channel::{Receiver, Sender};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{Value as Json, json};
use signal_hook_mio::v1_0::Signals;

use crate::agent::{Agent, Answered};
use crate::classify::Event;
use crate::config::{RecorderKind, Site};
use crate::journal::{self, Journal};
use crate::ledger::{Ledger, LedgerOutput, Standing};
use crate::metrics::{Latency, Live, prometheus};
use crate::policy::{Decider, Decision, PollAnswer};
use crate::poller::{PollOutput, Poller};
use crate::receive::{self, Heard, Tally, View};
use crate::report;
use crate::source::socket::{SendBatch, bind_udp};
use crate::source::udp::{StartError, Stopped, now, serve_metrics};
use crate::time::Timestamp;
use crate::wire::oid::oid;
use crate::wire::{Message, OidBuf, PduType, Value, VarBind, encode};

/// How the gateway runs, beyond its site.
#[derive(Clone, Debug)]
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
    /// How fast the policy's clock runs against the real one (1: real time; the demo
    /// runs the seed's minutes in seconds).
    pub speed: f64,
    /// Receive workers (None: the site's `[gateway] workers`; 0: one per core).
    pub workers: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: Vec::new(),
            agent: None,
            metrics: None,
            journal: None,
            dry_run: false,
            speed: 1.0,
            workers: None,
        }
    }
}

/// Where the gateway listens, once it does.
#[derive(Clone, Debug)]
pub struct Bound {
    /// The trap sockets.
    pub listen: Vec<SocketAddr>,
    /// The agent socket.
    pub agent: SocketAddr,
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

/// The policy's clock: the OS clock, or the OS clock sped up (the demo).
#[derive(Clone, Copy, Debug)]
struct Clock {
    real0: u64,
    speed: f64,
}

impl Clock {
    fn at(&self, real: u64) -> Timestamp {
        if self.speed == 1.0 {
            return Timestamp(real);
        }
        let d = real.saturating_sub(self.real0) as f64 * self.speed;
        Timestamp(self.real0 + d as u64)
    }

    fn now(&self) -> Timestamp {
        self.at(now().0)
    }

    /// The real time until policy time `due`.
    fn wait(&self, due: Timestamp) -> Duration {
        let d = due.0.saturating_sub(self.now().0) as f64 / self.speed;
        Duration::from_nanos(d as u64)
    }
}

/// How often the metrics snapshot is refreshed, at most.
const PUBLISH: Duration = Duration::from_secs(1);
const SIGNALS: Token = Token(usize::MAX);
const WAKE: Token = Token(usize::MAX - 1);
const AGENT: Token = Token(usize::MAX - 2);

/// PowerNet `mtrapargsString.0`, the text varbind of APC traps.
const MTRAPARGS_STRING_0: &str = "1.3.6.1.4.1.318.2.3.3.0";
/// The APC enterprise, whose lowBattery trap (specific 7) recorders act on.
const APC: &str = "1.3.6.1.4.1.318";
const LOW_BATTERY_TEXT: &[u8] = b"UPS: Low battery. A shutdown is imminent.";

/// A command's end, from its thread.
struct ExecDone {
    recorder: usize,
    status: Option<i32>,
    timed_out: bool,
    took: Duration,
    error: Option<String>,
}

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
            .map(|s| crate::config::Secs(s as u32)),
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
    journal: Option<Journal>,
    /// A decision or action was journaled and not yet fsync'd.
    unsynced: bool,
    /// Records journaled and not yet shown to the caller: what is shown is always in
    /// the journal already, so a kill -9 never loses what an operator saw.
    unshown: Vec<(Timestamp, Json)>,
    agent_bound: SocketAddr,
    /// Per recorder: where its trap goes and the agent-addr it carries.
    relay_to: Vec<(SocketAddr, [u8; 4])>,
    relay: RelayOids,
    /// The charge last shown to each recorder (journaled when it changes).
    last_shown: Vec<Option<Option<u8>>>,
    sends: SendBatch,
    execs: Vec<(usize, u32)>,
    exec_tx: Sender<ExecDone>,
    waker: Arc<Waker>,
    started: Timestamp,
    buf: Vec<u8>,
    live: Live,
    latency: Latency,
    /// Real arrival of the earliest datagram heard this iteration.
    first_arrival: Option<u64>,
    /// Trap orders (recorder, attempt) in this iteration's batch, journaled as `Sent`
    /// once the batch has gone out.
    orders: Vec<(usize, u32)>,
    report: R,
}

impl<R: FnMut(Timestamp, &Json)> State<R> {
    fn site(&self) -> &Site {
        self.decider.site()
    }

    /// Journals a decision or action; the caller is told once it is in the journal.
    fn record(&mut self, t: Timestamp, v: Json) {
        match &mut self.journal {
            Some(j) => {
                if let Err(e) = j.append(t, &v) {
                    eprintln!("trapgate: journal: {e}");
                }
                self.unsynced = true;
                self.unshown.push((t, v));
            }
            None => (self.report)(t, &v),
        }
    }

    /// Tells the caller what has been journaled since the last time.
    fn show(&mut self) {
        for (t, v) in self.unshown.drain(..) {
            (self.report)(t, &v);
        }
    }

    /// Journals an input (not shown to the caller).
    fn record_input(&mut self, t: Timestamp, v: Json) {
        if let Some(j) = &mut self.journal
            && let Err(e) = j.append(t, &v)
        {
            eprintln!("trapgate: journal: {e}");
        }
    }

    /// Fsyncs the journal, then shows what it holds.
    fn sync(&mut self) {
        if self.unsynced {
            if let Some(j) = &mut self.journal
                && let Err(e) = j.sync()
            {
                eprintln!("trapgate: journal: cannot sync: {e}");
            }
            self.unsynced = false;
        }
        self.show();
    }

    fn rebuild_relays(&mut self) {
        let site = self.decider.site();
        self.relay_to = site
            .recorders
            .iter()
            .map(|r| {
                let to = SocketAddr::new(r.address, r.port);
                (to, agent_addr_toward(self.agent_bound, to))
            })
            .collect();
        self.last_shown = vec![None; site.recorders.len()];
    }

    /// Queues recorder `r`'s order (its trap, or its command after the fsync).
    fn order(&mut self, t: Timestamp, r: usize, attempt: u32) {
        let rec = &self.site().recorders[r];
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
                let ticks = (t.0.saturating_sub(self.started.0) / 10_000_000) as u32;
                let community = self.decider.site().gateway.community.as_bytes();
                self.relay
                    .encode(community, agent_addr, ticks, &mut self.buf);
                self.sends.push(to, &self.buf);
                self.orders.push((r, attempt));
            }
            RecorderKind::Exec(_) => self.execs.push((r, attempt)),
        }
        self.live.orders_sent += 1;
    }

    /// Sends this iteration's orders and answers (after the journal's fsync), journals
    /// each order sent, and starts the commands.
    fn act(&mut self, fd: std::os::fd::RawFd) {
        self.sync();
        let t = self.clock.now();
        if !self.sends.is_empty() {
            let (_, failed) = self.sends.flush(fd);
            if !self.orders.is_empty()
                && let Some(first) = self.first_arrival
            {
                self.latency.record_fanout(now().0.saturating_sub(first));
            }
            for (to, e) in &failed {
                self.live.send_errors += 1;
                eprintln!("trapgate: cannot send to {to}: {e}");
            }
            for (r, attempt) in std::mem::take(&mut self.orders) {
                let to = self.relay_to[r].0;
                let name = self.site().recorders[r].name.clone();
                let v = match failed.iter().find(|(a, _)| *a == to) {
                    None => {
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
        // shown (it survives a kill -9), fsync'd with the next iteration's decisions.
        if !self.unshown.is_empty() {
            if let Some(j) = &mut self.journal
                && let Err(e) = j.flush()
            {
                eprintln!("trapgate: journal: {e}");
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
            let env = vec![
                ("TRAPGATE_RECORDER", rec.name.clone()),
                ("TRAPGATE_RECORDER_ADDRESS", rec.address.to_string()),
                ("TRAPGATE_UPS", ups.name.clone()),
                ("TRAPGATE_REASON", "shutdown".to_string()),
                ("TRAPGATE_ATTEMPT", attempt.to_string()),
                ("TRAPGATE_SHUTDOWN_TIME", rec.shutdown_time.0.to_string()),
                // Network UPS Tools' NOTIFYCMD names, for scripts written for upsmon.
                ("UPSNAME", ups.name.clone()),
                ("NOTIFYTYPE", "SHUTDOWN".to_string()),
            ];
            let command = command.clone();
            let timeout = Duration::from_secs(site.gateway.exec_timeout.0 as u64);
            let tx = self.exec_tx.clone();
            let waker = Arc::clone(&self.waker);
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut done = ExecDone {
                    recorder: r,
                    status: None,
                    timed_out: false,
                    took: Duration::ZERO,
                    error: None,
                };
                match Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&command)
                    .envs(env)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                {
                    Err(e) => done.error = Some(format!("cannot run /bin/sh: {e}")),
                    Ok(mut child) => loop {
                        match child.try_wait() {
                            Ok(Some(status)) => {
                                done.status = status.code();
                                break;
                            }
                            Ok(None) if start.elapsed() >= timeout => {
                                let _ = child.kill();
                                let _ = child.wait();
                                done.timed_out = true;
                                break;
                            }
                            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                            Err(e) => {
                                done.error = Some(e.to_string());
                                break;
                            }
                        }
                    },
                }
                done.took = start.elapsed();
                let _ = tx.send(done);
                let _ = waker.wake();
            });
            let name = self.site().recorders[r].name.clone();
            self.record(
                t,
                json!({"action": "Sent", "recorder": name, "attempt": attempt, "detail": "command started"}),
            );
        }
    }

    fn exec_done(&mut self, t: Timestamp, d: ExecDone) {
        let name = self.site().recorders[d.recorder].name.clone();
        let ok = d.status == Some(0);
        let status = match (&d.error, d.timed_out, d.status) {
            (Some(e), _, _) => e.clone(),
            (None, true, _) => "killed: timed out".to_string(),
            (None, false, Some(c)) => format!("exit {c}"),
            (None, false, None) => "killed by a signal".to_string(),
        };
        self.record(
            t,
            json!({"action": "CommandDone", "recorder": name, "status": status, "detail": format!("{:.1} s", d.took.as_secs_f64())}),
        );
        if ok {
            // A command that did its job is the recorder's acknowledgement.
            self.ledger.acknowledged(t, d.recorder);
        }
    }

    /// Acts on every decision the policy has: journal first, then queue the action.
    fn decisions(&mut self, t: Timestamp) {
        while let Some(d) = self.decider.poll_decision() {
            self.live.decisions += 1;
            let v = report::decision_json(self.decider.site(), t, &d);
            self.record(t, v);
            self.follow(t, &d);
            if let Decision::ShutdownRecorder { recorder, .. } = d {
                self.order(t, recorder, 1);
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

    fn poll_outputs(&mut self, t: Timestamp) {
        while let Some(o) = self.poller.poll_output() {
            match o {
                PollOutput::Send { to, bytes, .. } => {
                    self.sends.push(to, &bytes);
                    self.live.polls_sent += 1;
                }
                PollOutput::Answer { ups, answer } => self.poll_answer(t, ups, answer),
                PollOutput::Silent { ups } => self.ups_silent(t, ups, true),
                PollOutput::Answering { ups } => self.ups_silent(t, ups, false),
            }
        }
        self.decisions(t);
    }

    /// What a UPS said (to our poll, or seen going to a recorder): journaled, cached for
    /// the virtual UPS, handed to the policy.
    fn poll_answer(&mut self, t: Timestamp, ups: usize, answer: PollAnswer) {
        let name = self.site().upses[ups].name.clone();
        self.record_input(
            t,
            json!({"input": "poll", "ups": name, "answer": answer_json(&answer)}),
        );
        self.agent.ups[ups].update(t, answer);
        self.decider.handle_poll(t, ups, answer);
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

    /// Fires every timer due at `t`.
    fn timers(&mut self, t: Timestamp) {
        while let Some(due) = self.decider.poll_timeout().filter(|d| *d <= t) {
            self.record_input(due, json!({"input": "timeout"}));
            self.decider.handle_timeout(due);
            self.decisions(due);
        }
        if self.poller.poll_timeout().is_some_and(|d| d <= t) {
            self.poller.handle_timeout(t);
        }
        self.poll_outputs(t);
        if self.ledger.poll_timeout().is_some_and(|d| d <= t) {
            self.ledger.handle_timeout(t);
        }
        self.ledger_outputs(t);
    }

    /// The gateway's counts and latencies with the workers' `tally` added.
    fn totals(&self, tally: &Tally) -> (crate::pipeline::Counters, Live, Latency) {
        let mut live = self.live;
        live.foreign += tally.foreign;
        live.truncated += tally.truncated;
        live.send_errors += tally.send_errors;
        live.refused = self.decider.refused() + tally.refused;
        live.kernel_drops = tally.kernel_drops;
        let mut latency = self.latency.clone();
        latency.add(&tally.latency);
        (tally.counters.clone(), live, latency)
    }

    /// What a worker heard that the policy acts on.
    fn heard(&mut self, generation: u32, h: &Heard) {
        match h {
            Heard::Event {
                arrival,
                source,
                community,
                class,
            } => {
                let (arrival, source, event) = (*arrival, *source, class.event);
                self.first_arrival.get_or_insert(arrival);
                let at = self.clock.at(arrival);
                if let Some(r) = self.agent.recorder_at(source) {
                    self.ledger.seen(at, r);
                }
                // Named by the view that classified it (this site's, or the one before
                // the last reload); one older still, after two quick reloads, leaves it
                // unnamed rather than named by another site's rule indices.
                let rule = self
                    .view
                    .rule_name(generation, *class)
                    .or_else(|| self.previous.as_ref()?.rule_name(generation, *class))
                    .unwrap_or_default();
                if let Some(j) = &mut self.journal {
                    let site = self.decider.site();
                    let ups = self
                        .decider
                        .ups_at(source)
                        .map(|u| site.upses[u].name.as_str());
                    if let Err(e) = j.event(at, source, ups, community.as_bytes(), event, &rule) {
                        eprintln!("trapgate: journal: {e}");
                    }
                }
                self.decider
                    .handle_notification(at, source, community.as_bytes(), event, &rule);
                self.latency.record(event, now().0.saturating_sub(arrival));
            }
            // Indices from a view older than the site's: not this site's any more.
            Heard::Poll { .. } | Heard::Seen { .. } if generation != self.view.generation => {}
            Heard::Poll {
                arrival,
                ups,
                answer,
            } => {
                self.first_arrival.get_or_insert(*arrival);
                let at = self.clock.at(*arrival);
                self.poll_answer(at, *ups, *answer);
            }
            Heard::Seen { arrival, recorder } => {
                let at = self.clock.at(*arrival);
                self.ledger.seen(at, *recorder);
            }
        }
    }

    /// A worker's batch, then what the policy decided on it.
    fn heard_batch(&mut self, generation: u32, items: &[Heard]) {
        for h in items {
            self.heard(generation, h);
        }
        let at = self.clock.now();
        self.decisions(at);
        // A confirming poll goes out in this iteration.
        self.poll_outputs(at);
        self.ledger_outputs(at);
    }

    /// One datagram on the agent socket: a recorder's poll, or a UPS's answer to ours.
    fn agent_datagram(&mut self, at: Timestamp, from: SocketAddr, payload: &[u8], arena: &Bump) {
        let recorder = self.agent.recorder_at(from.ip());
        if let Some(r) = recorder {
            self.ledger.seen(at, r);
        }
        let m = match Message::parse(payload, arena) {
            Ok(m) => m,
            Err(_) => return,
        };
        if m.pdu_type() == PduType::RESPONSE {
            self.poller.handle_response(at, from, &m);
            return;
        }
        match self.agent.answer(at, from.ip(), &m, &mut self.buf) {
            Answered::Recorder(r) => {
                self.live.agent_answers += 1;
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
            Answered::WrongCommunity(_) => self.live.agent_wrong_community += 1,
            Answered::NotRecorder => self.live.agent_not_recorder += 1,
            Answered::NotRequest => {}
        }
    }
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
    let mut unsent = BTreeSet::new();
    for (t, r) in records {
        let t = *t;
        if s.ledger.poll_timeout().is_some_and(|d| d <= t) {
            s.ledger.handle_timeout(t);
        }
        while s.ledger.poll_output().is_some() {}
        match r["input"].as_str() {
            Some("event") => {
                let (Some(src), Some(ev)) = (
                    r["source"].as_str().and_then(|a| a.parse::<IpAddr>().ok()),
                    r["event"]
                        .as_str()
                        .and_then(|e| Event::ALL.iter().find(|x| x.name() == e)),
                ) else {
                    continue;
                };
                let community = r["community"].as_str().unwrap_or("");
                let rule = r["rule"].as_str().unwrap_or("");
                s.decider
                    .handle_notification(t, src, community.as_bytes(), *ev, rule);
            }
            Some("poll") => {
                if let Some(u) = r["ups"].as_str().and_then(ups) {
                    s.poll_answer(t, u, answer_from_json(&r["answer"]));
                }
            }
            Some("silent") => {
                if let Some(u) = r["ups"].as_str().and_then(ups) {
                    s.ups_silent(t, u, r["silent"].as_bool() == Some(true));
                }
            }
            Some("timeout") => s.decider.handle_timeout(t),
            _ => {}
        }
        while let Some(d) = s.decider.poll_decision() {
            s.follow(t, &d);
            if let Decision::ShutdownRecorder { recorder, .. } = d {
                unsent.insert(recorder);
            }
        }
        match (
            r["action"].as_str(),
            r["recorder"].as_str().and_then(recorder),
        ) {
            (Some("Sent"), Some(rec)) => {
                unsent.remove(&rec);
            }
            (Some("CommandDone"), Some(rec)) if r["status"].as_str() == Some("exit 0") => {
                s.ledger.acknowledged(t, rec);
            }
            (Some("Back"), Some(rec)) => s.ledger.seen(t, rec),
            _ => {}
        }
    }
    while s.ledger.poll_output().is_some() {}
    // Only orders still waiting for their acknowledgement are sent again.
    unsent.retain(|r| matches!(s.ledger.standing(*r), Standing::Ordered { .. }));
    unsent
}

/// Runs the gateway for `site` until SIGINT or SIGTERM. `ready` learns where it
/// listens; `report` gets every decision and action (as journaled) with its time; on
/// SIGHUP `reload` gives the site to carry on with (a broken one is reported and the
/// running site kept).
pub fn run(
    site: Site,
    opts: Options,
    ready: impl FnOnce(&Bound),
    report: impl FnMut(Timestamp, &Json),
    mut reload: impl FnMut() -> Result<Site, String>,
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
    poll.registry()
        .register(&mut agent_socket, AGENT, Interest::READABLE)
        .map_err(StartError::Setup)?;
    let mut signals =
        Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP]).map_err(StartError::Setup)?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(StartError::Setup)?;
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

    let clock = Clock {
        real0: now().0,
        speed: if opts.speed > 0.0 { opts.speed } else { 1.0 },
    };
    let start = clock.now();
    let (exec_tx, exec_rx): (Sender<ExecDone>, Receiver<ExecDone>) = crossbeam_channel::unbounded();
    let journal_path = opts.journal.clone();
    let mut s = State {
        clock,
        view,
        previous: None,
        agent: Agent::new(&site, start),
        poller: Poller::new(&site, start),
        ledger: Ledger::new(&site),
        decider: Decider::new(site),
        opts,
        journal: None,
        unsynced: false,
        unshown: Vec::new(),
        agent_bound,
        relay_to: Vec::new(),
        relay: RelayOids::new(),
        last_shown: Vec::new(),
        sends: SendBatch::new(),
        execs: Vec::new(),
        exec_tx,
        waker,
        started: start,
        buf: Vec::with_capacity(512),
        live: Live::default(),
        latency: Latency::new(),
        first_arrival: None,
        orders: Vec::new(),
        report,
    };
    s.rebuild_relays();
    // The site's own warnings come first, then the journal's outage, if one.
    s.decisions(start);
    let mut resumed = None;
    let mut unsent = BTreeSet::new();
    if let Some(path) = &journal_path {
        let found = journal::read(path).map_err(|e| StartError::Journal(path.clone(), e))?;
        let waiting = resume(&mut s, &found.records);
        // The replay's polls are history: the poller starts afresh (every UPS now).
        s.poller = Poller::new(s.decider.site(), start);
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
        metrics: metrics_at,
        workers: receivers.workers(),
        steered: receivers.steered,
        resumed,
    });
    for r in unsent {
        s.order(start, r, 1);
    }

    let heard = |site: &Site| -> HashSet<IpAddr> {
        site.upses
            .iter()
            .map(|u| u.address)
            .chain(site.recorders.iter().map(|r| r.address))
            .collect()
    };
    let mut known = heard(s.site());
    let mut events = Events::with_capacity(64);
    let mut arena = Bump::with_capacity(256 * 1024);
    let mut agent_buf = vec![0u8; 64 * 1024];
    let mut published = Timestamp(0);
    loop {
        // Act on what the last iteration decided: fsync the journal, then send.
        s.act(agent_socket.as_raw_fd());
        s.first_arrival = None;

        let due = [
            s.decider.poll_timeout(),
            s.poller.poll_timeout(),
            s.ledger.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut timeout = due.map(|d| s.clock.wait(d));
        if metrics_at.is_some() {
            timeout = Some(timeout.map_or(PUBLISH, |t| t.min(PUBLISH)));
        }
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            return Err(StartError::Setup(e));
        }
        let t = s.clock.now();
        s.timers(t);
        for event in events.iter() {
            match event.token() {
                SIGNALS => {
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
                                    let view = Arc::new(View::new(&site, s.view.generation + 1));
                                    s.previous =
                                        Some(std::mem::replace(&mut s.view, Arc::clone(&view)));
                                    receivers.reload(view);
                                    s.agent.reload(&site);
                                    s.poller = Poller::new(&site, t);
                                    s.ledger.reload(&site);
                                    s.decider.reload(site);
                                    s.rebuild_relays();
                                    s.decisions(t);
                                }
                                Err(e) => {
                                    eprintln!("trapgate: SIGHUP: keeping the running site: {e}")
                                }
                            }
                            continue;
                        }
                        // What the workers still hold is decided before the gateway goes.
                        let tally = receivers.stop(|g, items| s.heard_batch(g, items));
                        s.act(agent_socket.as_raw_fd());
                        s.sync();
                        let (counters, live, latency) = s.totals(&tally);
                        return Ok(Stopped {
                            counters,
                            live,
                            signal,
                            latency,
                        });
                    }
                }
                WAKE => {
                    while let Ok(done) = exec_rx.try_recv() {
                        let t = s.clock.now();
                        s.exec_done(t, done);
                    }
                    receivers.drain(|g, items| s.heard_batch(g, items));
                }
                AGENT => loop {
                    match agent_socket.recv_from(&mut agent_buf) {
                        Ok((n, from)) => {
                            let real = now().0;
                            s.first_arrival.get_or_insert(real);
                            let at = s.clock.at(real);
                            arena.reset();
                            if !known.contains(&from.ip()) {
                                s.live.agent_not_recorder += 1;
                                continue;
                            }
                            s.agent_datagram(at, from, &agent_buf[..n], &arena);
                            s.poll_outputs(at);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            eprintln!("trapgate: receive on {agent_bound}: {e}");
                            break;
                        }
                    }
                },
                _ => {}
            }
        }
        s.ledger_outputs(t);
        if metrics_at.is_some() && t.0 >= published.0 + PUBLISH.as_nanos() as u64 / 2 {
            published = t;
            let (counters, live, latency) = s.totals(&receivers.tally());
            let text = prometheus(&counters, &live, &latency);
            if let Ok(mut shared) = snapshot.lock() {
                *shared = text;
            }
        }
    }
}
