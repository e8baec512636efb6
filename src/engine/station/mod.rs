//! The station: the one composition of the machines that decide and act — the policy
//! (`Decider`), the poller, the acknowledgement ledger, the virtual UPS (`Agent`) and
//! the order encoders — behind the live daemon, the replay and the resume alike.
//!
//! It follows quinn-proto's contract: it reads no clock and touches no socket, file or
//! thread. Input goes in with the time: notifications already believed (`crate::engine::
//! trust`), a recorder heard from, requests to the virtual UPS, answers on the poll
//! socket, what was sent, a command that ended, a reload, refusals counted elsewhere,
//! timeouts. Output comes out as values to poll: records to journal and show
//! (`poll_record`), datagrams to send (`drain_transmits`: orders, polls, the virtual
//! UPS's answers), commands to run (`poll_command`), and when to be woken
//! (`poll_timeout`).
//!
//! One timer rule for every driver: each input first fires every timer due before it,
//! at its own time, and the station's time never goes back. A driver journals the
//! records before it sends what they decided (`Record::needs_sync`), then tells the
//! station what left (`handle_sent`): waits for acknowledgements and confirmations count
//! from then.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::classify::Event;
use crate::engine::agent::{Agent, Answered};
use crate::engine::config::{RecorderKind, Remap, Secs, Site};
use crate::engine::id::{RecorderId, UpsId};
use crate::engine::ledger::{Ledger, LedgerOutput, Standing};

mod status;
use crate::engine::nis::{NisEvent, NisServer};
use crate::engine::nut::{ConnId, NutEvent, NutServer, NutView, Reply};
use crate::engine::policy::{Cause, Decider, Decision, PollAnswer};
use crate::engine::poller::{NO_SUCH_NAME, PollOutput, Poller, RequestIds};
use crate::engine::record::{Action, AlertKind, Decided, Input, Percent, Record, Text};
use crate::engine::room::{fan_out_room, touched_deque};
use crate::engine::tally::{Counter, Tallies};
use crate::engine::trust::{Credential, Refusal, RefusalLog, Refusals, Trust, Who};
use crate::engine::usm::{LocalEngine, Usm};
use crate::time::Timestamp;
use crate::wire::message::{SNMP_TRAP_OID_0, SYS_UPTIME_0};
use crate::wire::oid::oid;
use crate::wire::v3::Level;
use crate::wire::{Message, Oid, OidBuf, PduType, RequestPdu, Value, VarBind, Version, encode};
pub use status::{NotifyRow, PairRow, STATES, StatusRows, state_index};

/// PowerNet `mtrapargsString.0`, the text varbind of APC traps.
const MTRAPARGS_STRING_0: &str = "1.3.6.1.4.1.318.2.3.3.0";
/// The APC enterprise, whose lowBattery trap (specific 7) recorders act on.
const APC: &str = "1.3.6.1.4.1.318";
const LOW_BATTERY_TEXT: &[u8] = b"UPS: Low battery. A shutdown is imminent.";

/// Where each recorder's trap goes, and the v1 agent-addr it carries (the gateway's own
/// address toward it: finding it is the driver's, a route lookup).
pub type Relays = Vec<(SocketAddr, [u8; 4])>;

/// How the station acts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Decide, journal and report, but send nothing to recorders and run no command.
    pub dry_run: bool,
}

/// Which socket a datagram leaves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The virtual UPS's: orders (the recorder's "UPS" tells it) and answers.
    Agent,
    /// The poller's (also the outlets' cards' requests: their answers come there).
    Poll,
    /// A socket that may broadcast (Wake-on-LAN).
    Wol,
}

/// What a datagram is, for `handle_sent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Order `attempt` to a recorder.
    Order {
        /// The recorder.
        recorder: RecorderId,
        /// Which sending.
        attempt: u32,
    },
    /// A poll of a UPS.
    Poll {
        /// The UPS.
        ups: UpsId,
    },
    /// The virtual UPS's answer to a recorder.
    Answer,
    /// A request to an outlet's card (a SET, or a read of its state).
    Command {
        /// The outlet.
        outlet: crate::engine::power::OutletId,
    },
    /// A Wake-on-LAN magic packet for a recorder.
    Wake {
        /// The recorder.
        recorder: RecorderId,
        /// Which packet.
        attempt: u32,
    },
}

/// A datagram to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// From which socket.
    pub via: Via,
    /// What it is.
    pub purpose: Purpose,
}

/// A command to run for an `exec` recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The recorder.
    pub recorder: RecorderId,
    /// Which sending.
    pub attempt: u32,
    /// The shell command.
    pub command: String,
    /// Its environment (added to the gateway's).
    pub env: Vec<(&'static str, String)>,
    /// It is killed after this.
    pub timeout: std::time::Duration,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandEnd {
    /// The recorder.
    pub recorder: RecorderId,
    /// Which sending it was.
    pub attempt: u32,
    /// Whether it did its job (exit 0).
    pub succeeded: bool,
    /// "exit 0", "killed: timed out", …
    pub status: String,
    /// How long it ran, in words.
    pub took: String,
    /// What it wrote (bounded), if anything.
    pub stdout: Option<String>,
    /// What it wrote on stderr (bounded), if anything.
    pub stderr: Option<String>,
}

/// A notification the trust layer admitted.
#[derive(Clone, Copy, Debug)]
pub struct Notification<'a> {
    /// Who it is from.
    pub who: Who,
    /// Its source address.
    pub source: IpAddr,
    /// Its community, or its SNMPv3 user (journaled).
    pub community: &'a [u8],
    /// For SNMPv3, the level it came at (journaled).
    pub v3: Option<Level>,
    /// What it was classified as.
    pub event: Event,
    /// The rule that classified it.
    pub rule: &'a str,
    /// For an outlet group's report: the group (`Classification::index`).
    pub index: Option<u32>,
}

/// What the power machine asks of the station: which UPSes are on battery (the
/// policy's view), which recorders run (heard from after they should have been down,
/// or back after power returned).
struct PowerFacts<'a> {
    decider: &'a Decider,
    ledger: &'a Ledger,
}

impl crate::engine::power::Facts for PowerFacts<'_> {
    fn on_battery(&self, u: UpsId) -> bool {
        self.decider.is_on_battery(u)
    }

    fn running(&self, r: RecorderId) -> bool {
        self.ledger
            .still_running()
            .get(r.index())
            .copied()
            .unwrap_or(false)
            || matches!(self.ledger.standing(r), Standing::Back { .. })
    }
}

/// The site's names, shared by every record that names one (a reference count each,
/// not a copy), and each UPS and recorder by its name.
struct Names {
    by_name: std::collections::HashMap<Text, Who>,
    upses: Vec<Text>,
    recorders: Vec<Text>,
    /// Each event's name, in `Event::ALL` order, then "poll" (a UPS's answer).
    events: Vec<Text>,
    /// What a `Sent` says was sent.
    trap_sent: Text,
    trap_sent_v3: Text,
    nut_fsd: Text,
    nis_lowbatt: Text,
    command_started: Text,
    /// How each recorder is told, side by side: a fan-out to thousands reads this, not
    /// their settings (a gateway idle for hours meets its trap with those out of the
    /// caches).
    how: Vec<How>,
    /// The distinct communities of the recorders told by a v1 trap (`How::community`).
    communities: Vec<Vec<u8>>,
}

/// How a recorder is told to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct How {
    kind: HowKind,
    /// Its community in `Names::communities`; None: it is sent SNMPv3.
    community: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HowKind {
    Trap,
    Nut,
    Apcupsd,
    Exec,
}

impl Names {
    fn new(site: &Site) -> Names {
        let upses: Vec<Text> = site.upses.iter().map(|u| u.name.as_str().into()).collect();
        let recorders: Vec<Text> = site
            .recorders
            .iter()
            .map(|r| r.name.as_str().into())
            .collect();
        let by_name = UpsId::enumerate(&upses)
            .map(|(u, n)| (Arc::clone(n), Who::Ups(u)))
            .chain(
                RecorderId::enumerate(&recorders).map(|(r, n)| (Arc::clone(n), Who::Recorder(r))),
            )
            .collect();
        let events = Event::ALL
            .iter()
            .map(|e| e.name())
            .chain(["poll"])
            .map(Text::from)
            .collect();
        let mut communities: Vec<Vec<u8>> = Vec::new();
        let mut numbered: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let how = site
            .recorders
            .iter()
            .map(|r| {
                let kind = match r.kind {
                    RecorderKind::TrapRelay => HowKind::Trap,
                    RecorderKind::Nut { .. } => HowKind::Nut,
                    RecorderKind::Apcupsd => HowKind::Apcupsd,
                    RecorderKind::Exec(_) => HowKind::Exec,
                };
                let community = r.v3.is_none().then(|| {
                    *numbered.entry(r.community.as_str()).or_insert_with(|| {
                        communities.push(r.community.as_bytes().to_vec());
                        (communities.len() - 1) as u32
                    })
                });
                How { kind, community }
            })
            .collect();
        Names {
            how,
            communities,
            by_name,
            upses,
            recorders,
            events,
            trap_sent: "APC lowBattery v1 trap".into(),
            trap_sent_v3: "APC lowBattery, an SNMPv3 trap from trapgate's engine".into(),
            nut_fsd: "FSD OB LB on trapgate's NUT server, for its client to read".into(),
            nis_lowbatt: "ONBATT LOWBATT, charge and time left 0, on trapgate's apcupsd NIS server, for its client to read".into(),
            command_started: "command started".into(),
        }
    }

    fn get(&self, name: &str) -> Option<&Who> {
        self.by_name.get(name)
    }

    fn ups(&self, u: UpsId) -> Text {
        Arc::clone(&self.upses[u])
    }

    fn recorder(&self, r: RecorderId) -> Text {
        Arc::clone(&self.recorders[r])
    }

    /// An event's name, or "poll" for none.
    fn event(&self, e: Option<Event>) -> Text {
        let i = e.map_or(Event::ALL.len(), |e| {
            Event::ALL.iter().position(|x| *x == e).unwrap_or(0)
        });
        Arc::clone(&self.events[i])
    }
}

/// Whether a pair's actor ships `record` to its standby: what only the actor can see or
/// do (its orders and what they sent, acknowledgements, commands' ends, NUT logouts,
/// recorders back, outlets' answers). What both hear (the UPSes' traps, their polls)
/// each decides from on its own.
pub fn ships(record: &Record) -> bool {
    matches!(
        record,
        Record::Decision(Decided::ShutdownRecorder { .. } | Decided::Acknowledged { .. })
            | Record::Action(
                Action::Sent { .. }
                    | Action::CommandDone { ok: true, .. }
                    | Action::Back { .. }
                    | Action::OutletAnswered { .. }
            )
            | Record::Input(Input::NutLeft { .. })
    )
}

/// RFC 3416's name of an error-status, as net-snmp prints it.
pub fn error_status_name(status: i32) -> &'static str {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    usize::try_from(status)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown")
}

/// What a driver without I/O sees of the station (`Station::settle`).
#[derive(Debug)]
pub enum Happened<'a> {
    /// A record, to journal or show.
    Record(Timestamp, Record),
    /// A datagram, taken as sent at `at`.
    Sent {
        /// When.
        at: Timestamp,
        /// Where and why.
        transmit: &'a Transmit,
        /// Its bytes.
        bytes: &'a [u8],
    },
    /// A command, taken as started at `at`.
    Command {
        /// When.
        at: Timestamp,
        /// The command.
        command: Command,
    },
}

/// What the station counted: its plain counts (`Tallies`: decisions, orders, polls,
/// the virtual UPS's answers, NUT and NIS, outlets, wakes), its refusals, and the NUT
/// clients logged in now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// The plain counts.
    pub tallies: Tallies,
    /// Datagrams the station refused itself (the agent and poll sockets').
    pub refused: Refusals,
    /// NUT clients logged in now.
    pub nut_logged_in: u64,
}

/// What a NUT or apcupsd client of recorder `r` is shown at `at`: its UPS as trapgate
/// knows it (on battery by its polls, or by its traps before a poll says so), the best
/// of its feeds for a recorder fed by several, or the shutdown status once the policy
/// has ordered it down.
fn status_view(
    agent: &Agent,
    site: &Site,
    decider: &Decider,
    at: Timestamp,
    r: RecorderId,
) -> NutView {
    let on_battery =
        |u: UpsId| agent.ups[u].values.on_battery.unwrap_or(false) || decider.is_on_battery(u);
    let forced = agent.presented[r].is_some();
    let u = if forced {
        site.recorders[r].ups
    } else {
        agent.best_feed(r, on_battery)
    };
    let shown = agent.presented_from(at, r, u);
    let ups = &site.upses[u];
    NutView {
        on_battery: shown.on_battery.unwrap_or(false) || decider.is_on_battery(u),
        battery_low: shown.battery_low.unwrap_or(false),
        forced,
        charge: shown.charge,
        runtime: shown.runtime,
        ups_name: ups.name.clone(),
        mfr: ups.vendor.maker(),
    }
}

/// A reload made off the decision thread: the new machines and the remap from the site
/// running when it was asked for.
pub struct Prepared {
    /// The new site.
    pub site: Arc<Site>,
    /// The running site the remap is from.
    pub base: Arc<Site>,
    /// The remap.
    pub remap: Remap,
    decider: Decider,
    agent: Agent,
    ledger: Ledger,
    poller: Poller,
    relays: Relays,
}

impl Prepared {
    /// Everything `site` needs, made from `base` (the running site), with `relays` for
    /// its recorders and `ids` for its poller's requests.
    pub fn new(site: Site, base: Arc<Site>, relays: Relays, ids: Box<dyn RequestIds>) -> Prepared {
        let now = Timestamp(0);
        Prepared {
            remap: Remap::between(&base, &site),
            agent: Agent::new(&site, now),
            ledger: Ledger::new(&site),
            poller: Poller::new(&site, now, ids),
            relays,
            decider: Decider::new(site.clone()),
            site: Arc::new(site),
            base,
        }
    }
}

/// What a reload replaced: to be dropped where it costs nothing (100,000 recorders'
/// strings).
pub type Replaced = Box<dyn Send>;

/// What a resume found (`Station::resumed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Recorders that had been ordered and not acknowledged.
    pub waiting: usize,
    /// Recorders that had acknowledged.
    pub acknowledged: usize,
    /// Orders decided and not journaled as sent (they may have left just before the
    /// crash): sent once, one acknowledgement wait after they were decided.
    pub unsent: usize,
}

/// What a checkpoint keeps of the station: every machine's state that a restart needs
/// (the poller starts afresh).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StationState {
    started: Timestamp,
    floor: Timestamp,
    decider: crate::engine::policy::DeciderState,
    ledger: crate::engine::ledger::LedgerState,
    agent: crate::engine::agent::AgentState,
    unsent: Vec<(RecorderId, Timestamp)>,
    /// The SNMPv3 engines known to be the site's: (user, engine ID in hex).
    #[serde(default)]
    engines: Vec<(String, String)>,
    /// The outlets being cycled, the recorders being woken.
    #[serde(default)]
    power: Option<crate::engine::power::PowerState>,
    /// The shutoff delays read from cards: (UPS, seconds).
    #[serde(default)]
    off_delays: Vec<(String, u32)>,
}

/// A datagram on the agent or a poll socket, as the station takes it: decoded (SNMPv1
/// or v2c), to be opened by the security model (SNMPv3), or neither.
enum Arrived<'a> {
    Community(Message<'a>),
    V3,
    Malformed,
}

impl<'a> Arrived<'a> {
    fn read(payload: &'a [u8], arena: &'a bumpalo::Bump) -> Arrived<'a> {
        match Message::parse(payload, arena) {
            Ok(m) => Arrived::Community(m),
            Err(e) if e.kind == crate::wire::ErrorKind::UnsupportedV3 => Arrived::V3,
            Err(_) => Arrived::Malformed,
        }
    }
}

/// The oids of the APC lowBattery trap a trap-relay recorder acts on, parsed once.
#[derive(Debug)]
struct RelayOids {
    enterprise: OidBuf,
    text: OidBuf,
    /// The trap's SNMPv2 name (enterprise.0.7) and snmpTrapEnterprise.0, for v3.
    low_battery: OidBuf,
    trap_enterprise: OidBuf,
}

impl RelayOids {
    fn new() -> RelayOids {
        RelayOids {
            enterprise: oid(APC),
            text: oid(MTRAPARGS_STRING_0),
            low_battery: oid("1.3.6.1.4.1.318.0.7"),
            trap_enterprise: oid("1.3.6.1.6.3.1.1.4.3.0"),
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
        encode::encode(&msg, out);
    }

    /// The same trap as SNMPv3 carries it (RFC 3584 §3.1's SNMPv2 form: snmpTrapOID.0
    /// the enterprise's trap 7, snmpTrapEnterprise.0 the enterprise), sealed by trapgate's
    /// engine for `user` at `level`, into `out`. Nothing is written without a local
    /// engine or the user's keys.
    #[allow(clippy::too_many_arguments)]
    fn encode_v3(
        &self,
        usm: &mut Usm,
        user: &[u8],
        level: crate::wire::v3::Level,
        uptime_ticks: u32,
        now: Timestamp,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        let vbs = [
            VarBind {
                name: Oid::trusted(SYS_UPTIME_0),
                value: Value::TimeTicks(uptime_ticks),
            },
            VarBind {
                name: Oid::trusted(SNMP_TRAP_OID_0),
                value: Value::ObjectId(self.low_battery.as_oid()),
            },
            VarBind {
                name: self.text.as_oid(),
                value: Value::OctetString(LOW_BATTERY_TEXT),
            },
            VarBind {
                name: self.trap_enterprise.as_oid(),
                value: Value::ObjectId(self.enterprise.as_oid()),
            },
        ];
        let pdu = Message::pdu(Version::V3, b"", PduType::SNMPV2_TRAP, 0, &vbs).pdu;
        let _ = usm.seal_local(user, level, &pdu, now, scratch, out);
    }
}

/// What waits to leave, in order.
#[derive(Clone, Copy, Debug)]
enum Queued {
    /// An answer, a poll, a card's request, a magic packet: its bytes in
    /// `Station::bytes`.
    Datagram {
        transmit: Transmit,
        start: usize,
        len: usize,
    },
    /// The next `n` of `Station::orders`, encoded when they are drained. A fan-out's
    /// thousands of orders are 8 bytes each there, not a datagram's 72 bytes each here:
    /// a gateway meets its trap with this memory out of the caches.
    Orders(usize),
}

/// The station of a whole site.
pub struct Station {
    site: Arc<Site>,
    trust: Trust,
    options: Options,
    decider: Decider,
    agent: Agent,
    poller: Poller,
    ledger: Ledger,
    /// The outlets of what it shed, cycled; the recorders it wakes.
    power: crate::engine::power::Power,
    relays: Relays,
    relay: RelayOids,
    /// The SNMPv3 security model as trapgate's own engine: what v3 recorders poll,
    /// acknowledge to and are told by (its time counts from `started`).
    usm: Usm,
    /// Where a v3 scoped PDU is sealed (reused).
    sealing: Vec<u8>,
    /// The NUT server its `kind = "nut"` recorders read their status from.
    nut: NutServer,
    /// The apcupsd NIS server its `kind = "apcupsd"` recorders read theirs from.
    nis: NisServer,
    /// Started here: the traps' uptime counts from it.
    started: Timestamp,
    /// The station's time: every timer up to here has fired, and no input is earlier.
    floor: Timestamp,
    /// The charge last shown to each recorder (journaled when it changes).
    last_shown: Vec<Option<Option<u8>>>,
    /// The answer last journaled for each UPS (only changes are journaled).
    last_answer: Vec<Option<PollAnswer>>,
    /// Each UPS's last trap or inform the policy heard, and when (the status page's).
    last_trap: Vec<Option<(Timestamp, crate::classify::Event)>>,
    /// Each UPS's shutoff delay read from its card, where the site leaves
    /// `outlet_off_delay` to it.
    off_delay: Vec<Option<Secs>>,
    /// The error-status each UPS last answered with, reported (None: a clean answer).
    poll_error: Vec<Option<i32>>,
    /// The objects each UPS was reported lacking.
    missing_said: Vec<Vec<&'static str>>,
    refusal_log: RefusalLog,
    records: VecDeque<(Timestamp, Record)>,
    /// Whether one of `records` is to be fsync'd as soon as it is journaled.
    records_sync: bool,
    queued: VecDeque<Queued>,
    /// The orders `Queued::Orders` counts: each recorder, and which sending.
    orders: VecDeque<(RecorderId, u32)>,
    /// Orders queued and not yet reported sent (`handle_sent`): while any wait, the
    /// outlets' timers wait too (a fan-out's orders are journaled and leave before its
    /// outlets' commitments and reads).
    orders_queued: usize,
    bytes: Vec<u8>,
    commands: VecDeque<Command>,
    /// A journal is being fed back in (`restore`): nothing decided goes out.
    restoring: bool,
    /// Every UPS and recorder by name (a journal names them), and the names records
    /// share.
    names: Names,
    /// Orders decided in a restore, or by a standby, and not known to be sent: when
    /// each was decided.
    unsent: BTreeMap<RecorderId, Timestamp>,
    /// The standby of a pair: it decides, journals and shows, and sends nothing to a
    /// recorder or an outlet (the actor does, and ships what it did: `handle_peer_record`).
    standby: bool,
    counts: Counts,
    scratch: Vec<u8>,
    /// The last order encoded, and what its v1 trap was encoded for (its community, as
    /// numbered in `names`, agent-addr and uptime), so that the next order for the same
    /// is sent as it is: a fan-out to thousands of recorders of one community encodes its
    /// trap once.
    order_wire: Vec<u8>,
    order_for: Option<(u32, [u8; 4], u32)>,
    /// `settle`'s list of what it takes as sent.
    settling: Vec<(Purpose, Option<SocketAddr>)>,
}

impl core::fmt::Debug for Station {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Station")
            .field("upses", &self.site.upses.len())
            .field("recorders", &self.site.recorders.len())
            .field("floor", &self.floor)
            .finish_non_exhaustive()
    }
}

impl Station {
    /// A station for `site` at `now`, its orders to `relays`, its polls' request ids from
    /// `ids`. The site's own warnings are its first records.
    pub fn new(
        site: Site,
        options: Options,
        relays: Relays,
        ids: Box<dyn RequestIds>,
        now: Timestamp,
    ) -> Station {
        let upses = site.upses.len();
        let recorders = site.recorders.len();
        let site_for_usm = site.clone();
        let mut s = Station {
            names: Names::new(&site),
            trust: Trust::new(&site),
            agent: Agent::new(&site, now),
            power: crate::engine::power::Power::new(&site, ids.another(), options.dry_run),
            poller: Poller::new(&site, now, ids),
            ledger: Ledger::new(&site),
            last_shown: vec![None; site.recorders.len()],
            last_answer: vec![None; site.upses.len()],
            last_trap: vec![None; site.upses.len()],
            off_delay: vec![None; site.upses.len()],
            poll_error: vec![None; site.upses.len()],
            missing_said: vec![Vec::new(); site.upses.len()],
            decider: Decider::new(site.clone()),
            site: Arc::new(site),
            options,
            relays,
            relay: RelayOids::new(),
            usm: Usm::new(&site_for_usm),
            nut: NutServer::new(&site_for_usm),
            nis: NisServer::new(&site_for_usm),
            sealing: Vec::with_capacity(1500),
            started: now,
            floor: now,
            refusal_log: RefusalLog::new(),
            // A fan-out's records (three a recorder) and orders fit from the start: the
            // first outage does not grow them while its orders wait.
            records: touched_deque(fan_out_room(recorders, 3)),
            records_sync: false,
            queued: VecDeque::with_capacity(1024),
            orders: touched_deque(fan_out_room(recorders, 1)),
            orders_queued: 0,
            // Sized for a poll of every UPS and a burst of answers: it does not grow per packet.
            bytes: Vec::with_capacity(16 * 1024 + 128 * upses),
            commands: VecDeque::new(),
            restoring: false,
            unsent: BTreeMap::new(),
            standby: false,
            counts: Counts::default(),
            scratch: Vec::with_capacity(1500),
            order_wire: Vec::with_capacity(1500),
            order_for: None,
            settling: Vec::new(),
        };
        s.decisions(now);
        s
    }

    /// Makes `engine` trapgate's SNMPv3 engine: the authoritative engine of what v3
    /// recorders send to the virtual UPS and of the orders sent to them.
    pub fn set_local_engine(&mut self, engine: LocalEngine) {
        self.usm.set_local(engine);
    }

    /// Knows the site's SNMPv3 engines from `book`, the gateway's one book (the receive
    /// workers read and fill it too).
    /// What it knew already (a journal's) goes into `book`.
    pub fn share_engines(&mut self, book: crate::engine::usm::EngineBook) {
        for (user, engine) in self.usm.engines().entries() {
            book.insert(&user, &engine);
        }
        self.usm.share_engines(book);
    }

    /// Takes the virtual UPS's SNMPv3 Reports from `budget`, the gateway's one budget
    /// (the receive workers take theirs from it too).
    pub fn share_reports(&mut self, budget: crate::engine::usm::ReportBudget) {
        self.usm.share_reports(budget);
    }

    /// trapgate's SNMPv3 engine's notion of now (seconds since the station started).
    fn engine_now(&self, at: Timestamp) -> Timestamp {
        Timestamp(at.0.saturating_sub(self.started.0))
    }

    /// The site it runs.
    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }

    /// What it believes.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// What it counted.
    pub fn counts(&self) -> Counts {
        let mut c = self.counts;
        for (counter, v) in [
            (Counter::PollAnswers, self.poller.answered),
            (Counter::AgentTrimmed, self.agent.trimmed),
            (Counter::AgentTooBig, self.agent.too_big),
            (Counter::NutLines, self.nut.lines),
            (Counter::NutTooLong, self.nut.too_long),
            (Counter::OutletSets, self.power.sets),
            (Counter::OutletSetsRefused, self.power.refused),
        ] {
            c.tallies.set(counter, v);
        }
        c.nut_logged_in = self.nut.logged_in() as u64;
        c
    }

    /// The station's time: every timer due by then has fired.
    pub fn now(&self) -> Timestamp {
        self.floor
    }

    /// From when records are needed by a restart (the oldest outage under way, or order
    /// still followed): a journal keeps every file since.
    pub fn keep_since(&self) -> Option<Timestamp> {
        [self.decider.oldest_outage(), self.ledger.oldest_followed()]
            .into_iter()
            .flatten()
            .min()
    }

    // --- Outputs --------------------------------------------------------------------

    /// The next record to journal (and show, `Record::shown`), with its time.
    pub fn poll_record(&mut self) -> Option<(Timestamp, Record)> {
        let r = self.records.pop_front();
        if self.records.is_empty() {
            self.records_sync = false;
        }
        r
    }

    /// Takes every record waiting into `into` (after those it holds); true if one of
    /// them is to be fsync'd as soon as it is journaled (`Record::needs_sync`). Into an
    /// empty `into`, the queue itself changes hands and `into`'s room comes back here: a
    /// fan-out's thousands of records are not moved one by one into memory a wait has
    /// taken out of the caches.
    pub fn take_records(&mut self, into: &mut Vec<(Timestamp, Record)>) -> bool {
        if into.is_empty() {
            let room = std::mem::take(into);
            *into = Vec::from(std::mem::replace(&mut self.records, VecDeque::from(room)));
        } else {
            into.extend(self.records.drain(..));
        }
        std::mem::take(&mut self.records_sync)
    }

    /// Whether a record waits.
    pub fn has_records(&self) -> bool {
        !self.records.is_empty()
    }

    /// The charge recorder `r`'s virtual UPS presents it in place of its UPS's (0 once
    /// it is told to shut down; None: the UPS's own). For the tests of resume.
    #[cfg(test)]
    pub(crate) fn presented_charge(&self, r: RecorderId) -> Option<u8> {
        self.agent.presented[r]
    }

    /// How many datagrams wait (`drain_transmits`).
    pub fn transmits_waiting(&self) -> usize {
        let datagrams = self
            .queued
            .iter()
            .filter(|q| matches!(q, Queued::Datagram { .. }));
        datagrams.count() + self.orders.len()
    }

    /// Whether a recorder's order is among them.
    pub fn orders_waiting(&self) -> bool {
        !self.orders.is_empty()
    }

    /// Hands every datagram waiting to `send`, with its bytes (orders are encoded now).
    pub fn drain_transmits(&mut self, mut send: impl FnMut(&Transmit, &[u8])) {
        let ticks = self.floor.ticks_since(self.started);
        while let Some(q) = self.queued.pop_front() {
            let n = match q {
                Queued::Datagram {
                    transmit,
                    start,
                    len,
                } => {
                    send(&transmit, &self.bytes[start..start + len]);
                    continue;
                }
                Queued::Orders(n) => n,
            };
            for (recorder, attempt) in self.orders.drain(..n) {
                let (to, agent_addr) = self.relays[recorder];
                match self.names.how[recorder].community {
                    // The same trap as the last one encoded: sent as it is.
                    Some(c) if self.order_for == Some((c, agent_addr, ticks)) => {}
                    Some(c) => {
                        self.order_wire.clear();
                        self.relay.encode(
                            &self.names.communities[c as usize],
                            agent_addr,
                            ticks,
                            &mut self.order_wire,
                        );
                        self.order_for = Some((c, agent_addr, ticks));
                    }
                    None => {
                        self.order_wire.clear();
                        self.order_for = None;
                        let Some(a) = &self.site.recorders[recorder].v3 else {
                            continue;
                        };
                        let engine_now = Timestamp(self.floor.0.saturating_sub(self.started.0));
                        self.relay.encode_v3(
                            &mut self.usm,
                            a.user.as_bytes(),
                            a.level,
                            ticks,
                            engine_now,
                            &mut self.sealing,
                            &mut self.order_wire,
                        );
                    }
                }
                let transmit = Transmit {
                    to,
                    via: Via::Agent,
                    purpose: Purpose::Order { recorder, attempt },
                };
                send(&transmit, &self.order_wire);
            }
        }
        self.bytes.clear();
    }

    /// The next command to run.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&mut self) -> Option<Timestamp> {
        // A journal being fed back polls no one: its polls' outcomes are in it, and the
        // polls start afresh when it is read (`resumed`).
        let (poller, power) = match (self.restoring, self.standby) {
            (true, _) => (None, None),
            // A standby polls (it decides too) and commands no outlet.
            (false, true) => (self.poller.poll_timeout(), None),
            (false, false) => (self.poller.poll_timeout(), self.power_timeout_due()),
        };
        [
            self.decider.poll_timeout(),
            poller,
            power,
            self.ledger.poll_timeout(),
            self.refusal_log.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // --- Driving it without I/O ------------------------------------------------------

    /// Acts on all the station has now as a driver that sends at once would (replay,
    /// the benchmarks, the tests): each record, then each datagram and command, taken as
    /// sent at the station's time, goes to `each`; until nothing is left.
    pub fn settle(&mut self, each: &mut impl FnMut(Happened<'_>)) {
        // Kept between calls: settling allocates nothing once warm.
        let mut sent = std::mem::take(&mut self.settling);
        loop {
            while let Some((at, r)) = self.poll_record() {
                each(Happened::Record(at, r));
            }
            let now = self.now();
            self.drain_transmits(|tx, bytes| {
                sent.push((tx.purpose, Some(tx.to)));
                each(Happened::Sent {
                    at: now,
                    transmit: tx,
                    bytes,
                });
            });
            while let Some(c) = self.poll_command() {
                let purpose = Purpose::Order {
                    recorder: c.recorder,
                    attempt: c.attempt,
                };
                sent.push((purpose, None));
                each(Happened::Command {
                    at: now,
                    command: c,
                });
            }
            if sent.is_empty() && !self.has_records() {
                self.settling = sent;
                return;
            }
            for (purpose, to) in sent.drain(..) {
                self.handle_sent(now, purpose, Ok(to));
            }
        }
    }

    /// Moves the station's time to `to`: every timer due by then fires at its own
    /// time, and what it decided is settled then (one timer rule for every driver).
    pub fn run_to(&mut self, to: Timestamp, each: &mut impl FnMut(Happened<'_>)) {
        self.settle(each);
        while let Some(due) = self.poll_timeout().filter(|due| *due <= to) {
            self.handle_timeout(due);
            self.settle(each);
        }
        self.handle_timeout(to);
        self.settle(each);
    }

    /// After a replay's last frame: the timers of the story (graces, confirmations,
    /// re-sends, the outlets' cut, boot times) fire at their own times until none is
    /// left or `until` comes, so that a capture that stops mid-outage shows how it would
    /// end. The poller's schedule, which never ends, does not keep it going.
    pub fn run_out(&mut self, until: Timestamp, each: &mut impl FnMut(Happened<'_>)) {
        while let Some(due) = [self.decider.poll_timeout(), self.ledger.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .filter(|due| *due <= until)
        {
            self.run_to(due.max(self.floor), each);
            if due < self.floor {
                // A timer that does not move on once fired would hold the loop.
                break;
            }
        }
    }

    // --- Inputs ---------------------------------------------------------------------

    /// Fires every timer due at or before `now`, each at its own time.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
    }

    /// An input at `now`: the timers due before it fire first; its time is the
    /// station's, which never goes back.
    fn at(&mut self, now: Timestamp) -> Timestamp {
        let at = now.max(self.floor);
        self.advance(at);
        at
    }

    fn advance(&mut self, to: Timestamp) {
        while let Some(due) = self.poll_timeout().filter(|d| *d <= to) {
            let due = due.max(self.floor);
            self.floor = due;
            if self.decider.poll_timeout().is_some_and(|d| d <= due) {
                self.input(due, Input::Timeout);
                self.decider.handle_timeout(due);
                self.decisions(due);
            }
            if !self.restoring && self.poller.poll_timeout().is_some_and(|d| d <= due) {
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
            if !self.restoring
                && !self.standby
                && self.power_timeout_due().is_some_and(|d| d <= due)
            {
                self.power_timeout(due);
            }
        }
        self.floor = self.floor.max(to);
    }

    /// When the power machine's timer is due: not while orders wait to leave.
    fn power_timeout_due(&self) -> Option<Timestamp> {
        if self.orders_queued > 0 {
            return None;
        }
        self.power.poll_timeout()
    }

    /// A notification the trust layer admitted, received at `now`.
    pub fn handle_notification(&mut self, now: Timestamp, n: &Notification<'_>) {
        let at = self.at(now);
        match n.who {
            Who::Recorder(r) => self.ledger.seen(at, r),
            Who::Ups(u) => self.last_trap[u] = Some((at, n.event)),
        }
        // The card's word on an outlet of its own, for the power machine.
        let reported = match n.who {
            Who::Ups(u) => self.power.card_reported(at, u, n.index, n.event, n.rule),
            Who::Recorder(_) => false,
        };
        let before = self.decider.revision();
        self.decider.handle_notification(at, n.who, n.event, n.rule);
        // Journaled only if it moved something: repeats do not grow the journal.
        if self.decider.revision() != before || reported {
            let (ups, recorder) = match n.who {
                Who::Ups(u) => (Some(self.names.ups(u)), None),
                Who::Recorder(r) => (None, Some(self.names.recorder(r))),
            };
            self.input(
                at,
                Input::Event {
                    source: n.source,
                    ups,
                    recorder,
                    community: String::from_utf8_lossy(n.community).into_owned(),
                    security_level: n.v3,
                    event: n.event,
                    rule: n.rule.to_string(),
                    index: n.index,
                },
            );
        }
        self.decisions(at);
        self.ledger_outputs(at);
        if reported {
            self.power_outputs(at);
        }
    }

    /// Recorder `r` was heard from at `now` (a well-formed message with its community).
    pub fn handle_seen(&mut self, now: Timestamp, r: RecorderId) {
        let at = self.at(now);
        self.ledger.seen(at, r);
        self.ledger_outputs(at);
    }

    /// A datagram on the agent socket (the virtual UPS) from `from` at `now`, in any
    /// version: a recorder's request answered, anything else refused and counted.
    /// False if it does not decode (the driver counts it malformed).
    pub fn handle_agent_datagram(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        payload: &[u8],
        arena: &bumpalo::Bump,
    ) -> bool {
        match Arrived::read(payload, arena) {
            Arrived::Community(m) => self.handle_request(now, from, &m, payload.len()),
            Arrived::V3 => self.handle_v3_request(now, from, payload, arena),
            Arrived::Malformed => return false,
        }
        true
    }

    /// A datagram on a poll socket from `from` at `now`, in any version: believed only
    /// as the answer to one of the gateway's requests (an outlet's card's, a UPS's
    /// poll), else refused and counted. False if it does not decode.
    pub fn handle_poll_datagram(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        payload: &[u8],
        arena: &bumpalo::Bump,
    ) -> bool {
        if self.handle_command_answer(now, from, payload, arena) {
            return true;
        }
        match Arrived::read(payload, arena) {
            Arrived::Community(m) => {
                let _ = self.handle_answer(now, from, &m);
            }
            Arrived::V3 => {
                let _ = self.handle_v3_answer(now, from, payload, arena);
            }
            Arrived::Malformed => return false,
        }
        true
    }

    /// A request to the virtual UPS from `from` (`len` bytes on the wire) at `now`: its
    /// answer is queued, or why it has none is counted.
    fn handle_request(&mut self, now: Timestamp, from: SocketAddr, m: &Message<'_>, len: usize) {
        let at = self.at(now);
        self.scratch.clear();
        match self.agent.answer(at, from.ip(), m, len, &mut self.scratch) {
            Answered::Recorder(r) => {
                // A v3 request's answer: its PDU, sealed by trapgate's engine for the
                // request's user at its level.
                if m.v3.is_some() {
                    let engine_now = self.engine_now(at);
                    let mut sealed = Vec::new();
                    let ok = crate::wire::v3::pdu_of(&self.scratch).is_some_and(|pdu| {
                        self.usm
                            .seal_reply(m, pdu, engine_now, &mut self.sealing, &mut sealed)
                    });
                    if !ok {
                        return;
                    }
                    self.scratch = sealed;
                }
                self.counts.tallies.inc(Counter::AgentAnswers);
                self.ledger.seen(at, r);
                let start = self.bytes.len();
                self.bytes.extend_from_slice(&self.scratch);
                self.queued.push_back(Queued::Datagram {
                    transmit: Transmit {
                        to: from,
                        via: Via::Agent,
                        purpose: Purpose::Answer,
                    },
                    start,
                    len: self.scratch.len(),
                });
                self.presented(at, r);
            }
            // Its own address and community, asking more than fits or too fast: alive.
            Answered::Discarded(r) => self.ledger.seen(at, r),
            Answered::OverRate(r) => {
                self.ledger.seen(at, r);
                self.refuse(at, Refusal::AgentOverRate, from.ip());
            }
            Answered::WrongCommunity(_) => self.refuse(at, Refusal::AgentWrongCommunity, from.ip()),
            Answered::NotRecorder => self.refuse(at, Refusal::AgentNotRecorder, from.ip()),
            Answered::NotRequest => {
                if let Some(who) = self.trust.who(from.ip())
                    && let Some(r) = self.trust.heard_from(who, Credential::of(m))
                {
                    self.ledger.seen(at, r);
                }
            }
        }
        self.ledger_outputs(at);
    }

    /// What recorder `r` is shown, journaled when it changed.
    fn presented(&mut self, at: Timestamp, r: RecorderId) {
        let shown = self.agent.presented[r];
        if self.last_shown[r] == Some(shown) {
            return;
        }
        self.last_shown[r] = Some(shown);
        let p = self.agent.presented_to(at, r);
        let real = self.agent.ups[self.site.recorders[r].ups].values;
        let record = Action::Presented {
            recorder: self.names.recorder(r),
            charge: p.charge,
            on_battery: p.on_battery,
            real,
            detail: match (shown, &self.site.recorders[r].kind) {
                (None, _) => "the UPS's own values",
                (Some(_), RecorderKind::Nut { .. }) => {
                    "the policy's value: FSD OB LB, read by its NUT client"
                }
                (Some(_), RecorderKind::Apcupsd) => {
                    "the policy's value: ONBATT LOWBATT, fetched by its apcupsd client; apcupsd sends no acknowledgement, so trapgate cannot confirm more than this fetch"
                }
                (Some(_), _) => "the policy's value",
            }
            .into(),
        };
        self.record(at, Record::Action(record));
    }

    /// A datagram on the poll socket from `from` at `now`: believed only as the answer
    /// to one of the poller's requests.
    fn handle_answer(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        m: &Message<'_>,
    ) -> Result<UpsId, Refusal> {
        let at = self.at(now);
        match self.poller.handle_response(at, from, m) {
            Ok(u) => {
                self.decisions(at);
                Ok(u)
            }
            Err(why) => {
                self.refuse(at, why, from.ip());
                Err(why)
            }
        }
    }

    /// A TCP connection to the NUT server from `peer` at `now`: what to send back (a
    /// stranger is told and closed).
    pub fn handle_nut_connected(&mut self, _now: Timestamp, conn: ConnId, peer: IpAddr) -> Reply {
        let reply = self.nut.connected(conn, peer);
        if reply.close {
            let at = self.floor;
            self.refuse(at, Refusal::NutNotRecorder, peer);
        }
        reply
    }

    /// Bytes from NUT connection `conn` at `now`: the answers, each client shown its own
    /// recorder's view (FSD once it is ordered down).
    /// At most `budget` lines are answered (taken from it); the rest wait for a call
    /// with no new bytes (`Reply::more`).
    pub fn handle_nut_bytes(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        bytes: &[u8],
        budget: &mut usize,
    ) -> Reply {
        let at = self.at(now);
        let (agent, site, decider) = (&self.agent, &self.site, &self.decider);
        let view = |r: RecorderId| status_view(agent, site, decider, at, r);
        let reply = self.nut.received(conn, bytes, at, &view, budget);
        self.nut_events(at);
        reply
    }

    /// NUT connection `conn` closed at `now`.
    pub fn handle_nut_closed(&mut self, now: Timestamp, conn: ConnId) {
        let at = self.at(now);
        self.nut.closed(conn);
        self.nut_events(at);
    }

    /// A TCP connection to the apcupsd NIS server from `peer`.
    pub fn handle_nis_connected(&mut self, _now: Timestamp, conn: ConnId, peer: IpAddr) -> Reply {
        let reply = self.nis.connected(conn, peer);
        if reply.close {
            let at = self.floor;
            self.refuse(at, Refusal::NisNotRecorder, peer);
        }
        reply
    }

    /// Bytes from NIS connection `conn` at `now`: at most `budget` requests answered
    /// (taken from it), the rest for a call with no new bytes (`Reply::more`).
    pub fn handle_nis_bytes(
        &mut self,
        now: Timestamp,
        conn: ConnId,
        bytes: &[u8],
        budget: &mut usize,
    ) -> Reply {
        let at = self.at(now);
        let (agent, site, decider) = (&self.agent, &self.site, &self.decider);
        let view = |r: RecorderId| status_view(agent, site, decider, at, r);
        let name = |r: RecorderId| site.recorders[r].name.clone();
        let reply = self.nis.received(conn, bytes, &view, &name, budget);
        while let Some(NisEvent::Fetched(r, forced)) = self.nis.poll_event() {
            self.counts.tallies.inc(Counter::NisRequests);
            // Up and polling: heard from (Back after an outage).
            self.ledger.seen(at, r);
            if forced && !self.ledger.has_acknowledged(r) {
                // All an apcupsd client ever says: it fetched its shutdown status.
                self.presented(at, r);
                self.decider.handle_ack(at, r);
                self.decisions(at);
            }
        }
        self.ledger_outputs(at);
        reply
    }

    /// NIS connection `conn` closed.
    pub fn handle_nis_closed(&mut self, _now: Timestamp, conn: ConnId) {
        self.nis.closed(conn);
    }

    /// The site in one line, as systemd's status shows it: "2 UPS on mains, 0 on
    /// battery; 540 recorders, 0 told, 0 acknowledged". Counts every UPS and recorder:
    /// for a status once a second, not per input.
    pub fn status_line(&self) -> String {
        let on_battery = UpsId::all(self.site.upses.len())
            .filter(|&u| self.decider.is_on_battery(u))
            .count();
        status::summary(self.site.upses.len(), on_battery, self.ledger.all())
    }

    /// What the status page shows, copied as it is now (`offset`: the wall clock's lead
    /// on the station's): the site and every UPS's and recorder's state, plain values.
    /// Cheap enough for the decision thread twice a second (a copy of a few bytes per
    /// UPS and recorder); `StatusRows::to_json` makes the page's JSON of it, elsewhere.
    pub fn status_rows(&self, offset: i64) -> StatusRows {
        StatusRows {
            site: Arc::clone(&self.site),
            time: self.floor,
            offset,
            upses: UpsId::enumerate(&self.site.upses)
                .map(|(u, _)| status::UpsRow {
                    view: self.agent.ups[u],
                    on_battery: self.decider.is_on_battery(u),
                    since: self.decider.on_battery_since(u),
                    settling: self.decider.settling(u),
                    last_trap: self.last_trap[u],
                })
                .collect(),
            standing: self.ledger.all().to_vec(),
            still_running: self.ledger.still_running().to_vec(),
            outlets: self
                .power
                .outlets()
                .map(|(o, name, stage)| status::OutletRow {
                    name: name.to_string(),
                    stage,
                    recorders: self.power.members(o).to_vec(),
                })
                .collect(),
            pair: None,
            notify: Vec::new(),
        }
    }

    /// The status page's JSON now (`status_rows(offset).to_json()`).
    pub fn status(&self, offset: i64) -> serde_json::Value {
        self.status_rows(offset).to_json()
    }

    /// NUT clients logged in now.
    pub fn nut_logged_in(&self) -> usize {
        self.nut.logged_in()
    }

    fn nut_events(&mut self, at: Timestamp) {
        while let Some(e) = self.nut.poll_event() {
            match e {
                // Up and watching: heard from (Back after an outage).
                NutEvent::LoggedIn(r) | NutEvent::Asked(r) | NutEvent::ShownFsd(r) => {
                    if matches!(e, NutEvent::ShownFsd(_)) {
                        self.presented(at, r);
                    }
                    self.ledger.seen(at, r);
                }
                NutEvent::LeftAfterFsd(r) => {
                    // The first logout after FSD is the acknowledgement, journaled; the
                    // next ones (a client that knows the password, logging in and out)
                    // are counted, never a record each.
                    if self.ledger.has_acknowledged(r) {
                        self.counts.tallies.inc(Counter::NutLogoutsAfterAck);
                        continue;
                    }
                    let name = self.names.recorder(r);
                    self.input(at, Input::NutLeft { recorder: name });
                    self.decider.handle_ack(at, r);
                    self.decisions(at);
                }
                NutEvent::WrongPassword(peer) => self.refuse(at, Refusal::NutWrongPassword, peer),
                NutEvent::Left(_) => {}
            }
        }
        self.ledger_outputs(at);
    }

    /// An SNMPv3 datagram on the agent socket from `from` at `now` (`buf`, opened into
    /// `arena` by trapgate's engine): a recorder's discovery or stale time (answered
    /// with a Report), or its request of the virtual UPS.
    fn handle_v3_request(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        buf: &[u8],
        arena: &bumpalo::Bump,
    ) {
        let at = self.at(now);
        // Only a recorder polls the virtual UPS: from anywhere else nothing is opened
        // (no hashing for a stranger) and nothing is answered, not even discovery.
        let Some(r) = self.agent.recorder_at(from.ip()) else {
            self.refuse(at, Refusal::AgentNotRecorder, from.ip());
            return;
        };
        let engine_now = self.engine_now(at);
        match self.usm.open_from(buf, Some(from.ip()), engine_now, arena) {
            Ok(m) => {
                let ours = self
                    .usm
                    .local()
                    .is_some_and(|l| m.v3.is_some_and(|s| s.header.engine_id == l.id.as_slice()));
                if ours {
                    self.handle_request(now, from, &m, buf.len());
                } else {
                    self.refuse(at, Refusal::UsmUnknownEngine, from.ip());
                }
            }
            Err(crate::engine::usm::NotOpened::Refused(why)) => {
                self.scratch.clear();
                let mut report = Vec::new();
                // A Report is an answer: it takes from the recorder's share.
                if self.agent.within_share(at, r)
                    && self
                        .usm
                        .report(buf, why, engine_now, &mut self.sealing, &mut report)
                {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(&report);
                    self.queued.push_back(Queued::Datagram {
                        transmit: Transmit {
                            to: from,
                            via: Via::Agent,
                            purpose: Purpose::Answer,
                        },
                        start,
                        len: report.len(),
                    });
                }
                if !crate::engine::usm::is_discovery(why, buf) {
                    self.refuse(at, why.into(), from.ip());
                }
            }
            Err(crate::engine::usm::NotOpened::Malformed(_)) => {}
        }
    }

    /// A datagram on the poll socket from `from` at `now` that answers one of the
    /// outlets' cards' requests (its request id, or msgID, is one out to that card):
    /// checked and taken by the power machine (true), or not one (false: the poller's).
    fn handle_command_answer(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        payload: &[u8],
        arena: &bumpalo::Bump,
    ) -> bool {
        if !crate::engine::power::is_card(&self.power, from.ip()) {
            return false;
        }
        let id = crate::engine::power::card::Card::id_of(payload, arena);
        let Some(id) = id.filter(|id| self.power.expects(from, *id)) else {
            return false;
        };
        let at = self.at(now);
        let facts = PowerFacts {
            decider: &self.decider,
            ledger: &self.ledger,
        };
        if let Err(why) = self
            .power
            .handle_answer(at, from, id, payload, arena, &facts)
        {
            self.refuse(at, why, from.ip());
        }
        self.power_outputs(at);
        true
    }

    /// A card's answer seen on the wire from `card`, answering a request seen there (a
    /// replay): it counts for the outlet whose request under way asks what it names.
    /// False if it answers none (a poll's answer, perhaps).
    pub fn handle_wire_command_answer(
        &mut self,
        now: Timestamp,
        card: SocketAddr,
        community: &[u8],
        answer: &RequestPdu<'_>,
    ) -> bool {
        let at = self.at(now);
        let facts = PowerFacts {
            decider: &self.decider,
            ledger: &self.ledger,
        };
        if self
            .power
            .handle_wire_answer(at, card, community, answer, &facts)
            .is_none()
        {
            return false;
        }
        self.power_outputs(at);
        self.decisions(at);
        true
    }

    /// Whether `to` is the card of an outlet trapgate may cycle (a replay records the
    /// requests seen on the wire to it).
    pub fn is_outlet_card(&self, to: SocketAddr) -> bool {
        crate::engine::power::is_card_at(&self.power, to)
    }

    /// An SNMPv3 datagram on the poll socket from `from` at `now` (`buf`, opened into
    /// `arena`): a card's Report moving discovery on (the request goes again: Ok(None)),
    /// or its answer to one of the poller's requests.
    fn handle_v3_answer(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        buf: &[u8],
        arena: &bumpalo::Bump,
    ) -> Result<Option<UpsId>, Refusal> {
        let at = self.at(now);
        match self.poller.handle_v3_response(at, from, buf, arena) {
            Ok(u) => {
                // The card answered authentically: its engine is the site's, so its
                // traps are checked at once whatever a flood of forged engine IDs
                // spent (journaled the first time, for a restart).
                if let Some(u) = u
                    && let Some((user, engine)) = self.poller.card_engine(u)
                    && self.usm.engines().insert(user, engine)
                {
                    let record = Input::EngineKnown {
                        user: String::from_utf8_lossy(user).into(),
                        engine_id: crate::wire::hex::encode(engine),
                    };
                    self.input(at, record);
                }
                self.decisions(at);
                Ok(u)
            }
            Err(why) => {
                self.refuse(at, why, from.ip());
                Err(why)
            }
        }
    }

    /// A UPS's answer seen on the wire, answering a request seen there (a replay). An
    /// answer with an error is an answer: the object it names missing (v1 noSuchName)
    /// or its error-status is reported once, and the values it has count.
    pub fn handle_wire_answer(&mut self, now: Timestamp, ups: UpsId, r: &RequestPdu<'_>) {
        let at = self.at(now);
        if r.error_status != 0 {
            let lacked = usize::try_from(r.error_index)
                .ok()
                .and_then(|k| k.checked_sub(1))
                .and_then(|k| r.varbinds.get(k))
                .and_then(|vb| PollAnswer::object(vb.name.as_bytes()));
            match lacked {
                Some(o) if r.error_status == NO_SUCH_NAME => {
                    self.poll_trouble(at, ups, Err(o.name))
                }
                _ => self.poll_trouble(at, ups, Ok(r.error_status)),
            }
        }
        // An answer to another's request may ask nothing the policy reads.
        let answer = PollAnswer::from_varbinds(r.varbinds);
        if !answer.is_empty() {
            self.poll_answer(at, ups, answer);
        }
        self.decisions(at);
    }

    /// `count` datagrams refused elsewhere (the receive workers, a replay) for `why`,
    /// the last from `source`: summarised, at most one record a reason a second.
    pub fn handle_refused(
        &mut self,
        now: Timestamp,
        why: Refusal,
        count: u64,
        source: Option<IpAddr>,
        event: Option<Event>,
    ) {
        let at = self.at(now);
        self.refusal_log.note(at, why, count, source, event);
        self.refusal_summaries(at);
    }

    /// A datagram the station refused itself: counted, and summarised with the others.
    fn refuse(&mut self, at: Timestamp, why: Refusal, source: IpAddr) {
        self.counts.refused.add(why);
        self.refusal_log.note(at, why, 1, Some(source), None);
        self.refusal_summaries(at);
    }

    /// What `transmit` became: sent at `now` (`Ok`), or not (`Err`, the kernel's word).
    pub fn handle_sent(
        &mut self,
        now: Timestamp,
        purpose: Purpose,
        sent: Result<Option<SocketAddr>, String>,
    ) {
        if matches!(purpose, Purpose::Order { .. }) {
            self.orders_queued = self.orders_queued.saturating_sub(1);
        }
        let at = self.at(now);
        match (purpose, sent) {
            (Purpose::Order { recorder, attempt }, Ok(to)) => {
                self.ledger.sent(at, recorder, attempt);
                self.unsent.remove(&recorder);
                // Read from `how`, side by side, not from the recorder's settings: those
                // are out of the caches when a gateway meets its trap (a fan-out to
                // 5,000 spent a third of this function's samples on that load).
                let detail = match to {
                    Some(_) if self.names.how[recorder].community.is_none() => {
                        Arc::clone(&self.names.trap_sent_v3)
                    }
                    Some(_) => Arc::clone(&self.names.trap_sent),
                    None => Arc::clone(&self.names.command_started),
                };
                let name = self.names.recorder(recorder);
                self.record(
                    at,
                    Record::Action(Action::Sent {
                        recorder: name,
                        attempt,
                        to,
                        detail,
                    }),
                );
            }
            (Purpose::Order { recorder, attempt }, Err(e)) => {
                self.ledger.send_failed(at, recorder, attempt);
                let name = self.names.recorder(recorder);
                let to = Some(self.relays[recorder].0);
                self.record(
                    at,
                    Record::Action(Action::SendFailed {
                        recorder: name,
                        attempt,
                        to,
                        detail: e,
                    }),
                );
            }
            (Purpose::Poll { ups }, Ok(_)) => {
                self.counts.tallies.inc(Counter::PollsSent);
                self.poller.handle_sent(at, ups);
                let before = self.decider.revision();
                self.decider.handle_poll_sent(at, ups);
                if self.decider.revision() != before {
                    let u = &self.site.upses[ups];
                    let to = SocketAddr::new(u.address, u.port);
                    let name = self.names.ups(ups);
                    self.record(at, Record::Action(Action::Polled { ups: name, to }));
                }
            }
            (Purpose::Poll { ups }, Err(_)) => self.poller.handle_send_failed(at, ups),
            // A card's request that could not leave is tried again at its time.
            (Purpose::Answer | Purpose::Command { .. }, _) => {}
            (Purpose::Wake { recorder, attempt }, Ok(to)) => {
                self.counts.tallies.inc(Counter::Wakes);
                let name = self.names.recorder(recorder);
                if let Some(to) = to {
                    self.record(
                        at,
                        Record::Action(Action::WakeSent {
                            recorder: name,
                            attempt,
                            to,
                        }),
                    );
                }
            }
            (Purpose::Wake { .. }, Err(_)) => {}
        }
        self.ledger_outputs(at);
    }

    /// A command ended at `now`; exit 0 is its recorder's acknowledgement.
    pub fn handle_command_done(&mut self, now: Timestamp, end: CommandEnd) {
        let at = self.at(now);
        let Some(_) = self.site.recorders.get(end.recorder.index()) else {
            return;
        };
        let record = Action::CommandDone {
            recorder: self.names.recorder(end.recorder),
            attempt: end.attempt,
            ok: end.succeeded,
            status: end.status,
            detail: end.took,
            stdout: end.stdout,
            stderr: end.stderr,
        };
        self.record(at, Record::Action(record));
        if end.succeeded {
            self.decider.handle_ack(at, end.recorder);
            self.decisions(at);
        }
    }

    /// A new site offered at `now` (SIGHUP's; at a start, the file's against the
    /// journal's): taken, or refused with why, the running site kept. One decision and
    /// one alert (`reload_refused`), whoever offers it.
    pub fn offer_site(&mut self, now: Timestamp, p: Prepared) -> Result<Replaced, String> {
        if let Some(why) = self.reload_refusal(&p) {
            let at = self.at(now);
            self.note(
                at,
                Record::Decision(Decided::Alert {
                    ups: None,
                    recorder: None,
                    outlet: None,
                    kind: AlertKind::ReloadRefused,
                    reason: format!("the site file was not taken: {why}; the running site goes on"),
                }),
            );
            return Err(why);
        }
        Ok(self.handle_reload(now, p))
    }

    /// Why the prepared site cannot replace the running one (it would drop an outage).
    pub fn reload_refusal(&self, p: &Prepared) -> Option<String> {
        self.decider.reload_refusal(&p.site)
    }

    /// Takes a reloaded site at `now`: each machine carries over what stays, by index.
    /// Returns what it replaced, to be dropped elsewhere; a site that would drop an
    /// outage must be refused first (`reload_refusal`).
    pub fn handle_reload(&mut self, now: Timestamp, mut p: Prepared) -> Replaced {
        let at = self.at(now);
        // Made from the site running when it was asked for; another reload came between
        // only if two were asked for in a row.
        if !Arc::ptr_eq(&p.base, &self.site) {
            p.remap = Remap::between(&self.site, &p.site);
        }
        let old = (
            self.agent.take_over(p.agent, &p.remap),
            self.poller.take_over(p.poller, &p.remap),
            self.ledger.take_over(p.ledger, &p.remap),
            self.decider.take_over(p.decider, &p.remap),
            std::mem::replace(&mut self.site, p.site),
            std::mem::replace(&mut self.relays, p.relays),
            p.remap,
        );
        self.trust = Trust::new(&self.site);
        self.names = Names::new(&self.site);
        // Numbered anew with the names.
        self.order_for = None;
        self.usm.reload(Usm::new(&self.site));
        self.nut.reload(&self.site, &old.6);
        self.nis.reload(&self.site);
        self.power.reload(&self.site, &old.6);
        let remap = &old.6;
        self.last_shown = remap.carry_recorders(&self.last_shown, None);
        self.last_answer = remap.carry_upses(&self.last_answer, None);
        self.last_trap = remap.carry_upses(&self.last_trap, None);
        // A delay read from a card stays taken while the site still leaves it out.
        self.off_delay = remap.carry_upses(&self.off_delay, None);
        self.apply_off_delays();
        self.poll_error = remap.carry_upses(&self.poll_error, None);
        self.missing_said = remap.carry_upses(&self.missing_said, Vec::new());
        // Orders decided and not yet sent (a resume's) go to the same recorders.
        let mut now_is = vec![None; old.4.recorders.len()];
        for (new, o) in remap.kept_recorders() {
            now_is[o] = Some(new);
        }
        self.unsent = std::mem::take(&mut self.unsent)
            .into_iter()
            .filter_map(|(r, at)| Some((now_is[r]?, at)))
            .collect();
        let detail = format!(
            "{} UPS, {} recorders; outages under way go on",
            self.site.upses.len(),
            self.site.recorders.len()
        );
        let site = Some(self.site.text.to_string());
        self.record(at, Record::Action(Action::Reloaded { detail, site }));
        self.decisions(at);
        Box::new(old)
    }

    /// A checkpoint of the station now (the first record of a new journal file).
    pub fn snapshot(&self) -> Record {
        Record::Snapshot(crate::engine::record::Snapshot::Station {
            site: self.site.text.to_string(),
            state: Box::new(StationState {
                started: self.started,
                floor: self.floor,
                decider: self.decider.state(),
                ledger: self.ledger.state(),
                agent: self.agent.state(),
                unsent: self.unsent.iter().map(|(r, t)| (*r, *t)).collect(),
                engines: self
                    .usm
                    .engines()
                    .entries()
                    .into_iter()
                    .map(|(user, engine)| {
                        (
                            String::from_utf8_lossy(&user).into(),
                            crate::wire::hex::encode(&engine),
                        )
                    })
                    .collect(),
                power: Some(self.power.state()),
                off_delays: UpsId::enumerate(&self.off_delay)
                    .filter_map(|(u, d)| Some((self.site.upses[u].name.clone(), (*d)?.0)))
                    .collect(),
            }),
        })
    }

    /// Takes a checkpoint's state back (made for this station's site).
    pub fn restore_snapshot(&mut self, state: &StationState) {
        let s = state.clone();
        self.started = s.started;
        self.floor = self.floor.max(s.floor);
        self.decider.set_state(s.decider);
        self.ledger.set_state(s.ledger);
        self.agent.set_state(s.agent);
        self.unsent = s.unsent.into_iter().collect();
        for (user, engine) in &s.engines {
            if let Some(id) = crate::wire::hex::decode(engine) {
                self.usm.engines().insert(user.as_bytes(), &id);
            }
        }
        if let Some(p) = s.power {
            self.power.set_state(p);
        }
        for (ups, seconds) in &s.off_delays {
            self.take_off_delay(ups, Secs(*seconds));
        }
        self.records.clear();
        self.records_sync = false;
    }

    /// UPS `ups`'s card was read at `now`: it cuts its outlets `seconds` after its
    /// shutdown starts. Where the site leaves `outlet_off_delay` out, that is taken
    /// (journaled when it changes): a recorder told to shut down is told again until
    /// then. A UPS whose site names the delay keeps it (a disagreement is the probe's
    /// `card_setting` alert).
    pub fn handle_off_delay(&mut self, now: Timestamp, ups: &str, seconds: u32) {
        let at = self.at(now);
        let Some(u) = self.take_off_delay(ups, Secs(seconds)) else {
            return;
        };
        self.input(
            at,
            Input::OffDelay {
                ups: self.names.ups(u),
                seconds,
            },
        );
    }

    /// Takes UPS `ups`'s card delay if the site leaves it out and it changed: which UPS.
    fn take_off_delay(&mut self, ups: &str, delay: Secs) -> Option<UpsId> {
        let Some(Who::Ups(u)) = self.names.get(ups).copied() else {
            return None;
        };
        if !self.site.upses[u].off_delay_from_card || self.off_delay[u] == Some(delay) {
            return None;
        }
        self.off_delay[u] = Some(delay);
        self.apply_off_delays();
        Some(u)
    }

    /// The delays read from cards, into the ledger (its own are the site's).
    fn apply_off_delays(&mut self) {
        for (u, d) in UpsId::enumerate(&self.off_delay) {
            if let Some(d) = d
                && self.site.upses[u].off_delay_from_card
            {
                self.ledger.set_outlet_off(u, *d);
            }
        }
    }

    /// A reload found in a journal being fed back (`restore`): taken as it was then,
    /// nothing it decides goes out.
    pub fn restore_reload(&mut self, t: Timestamp, p: Prepared) -> Replaced {
        self.restoring = true;
        let old = self.handle_reload(t, p);
        self.records.clear();
        self.records_sync = false;
        self.queued.clear();
        self.orders.clear();
        self.orders_queued = 0;
        self.bytes.clear();
        self.commands.clear();
        self.restoring = false;
        old
    }

    /// A record of the driver's own (an alert of the gateway's, its start), journaled
    /// and shown with the station's.
    pub fn note(&mut self, t: Timestamp, r: Record) {
        self.records_sync |= r.needs_sync();
        self.records.push_back((t, r));
    }

    // --- What the machines decided --------------------------------------------------

    fn record(&mut self, t: Timestamp, r: Record) {
        if !self.restoring {
            self.records_sync |= r.needs_sync();
            self.records.push_back((t, r));
        }
    }

    fn input(&mut self, t: Timestamp, i: Input) {
        self.record(t, Record::Input(i));
    }

    /// Acts on every decision the policy has, and on what the poller has for it, until
    /// neither has anything more.
    fn decisions(&mut self, t: Timestamp) {
        loop {
            while let Some(d) = self.decider.poll_decision() {
                self.counts.tallies.inc(Counter::Decisions);
                let Decision::ShutdownRecorder {
                    ups,
                    recorder,
                    tier,
                    deadline,
                    reason,
                    cause,
                } = d
                else {
                    let r = self.decided(t, &d);
                    self.record(t, Record::Decision(r));
                    self.follow(t, &d);
                    continue;
                };
                // A fan-out's thousands: the sentence and the rule move into the record
                // instead of being counted up here and down again with the decision.
                let r = self.shutdown_decided(ups, recorder, tier, deadline, reason, cause);
                self.record(t, Record::Decision(r));
                self.shutdown_ordered(t, recorder);
                self.order(t, recorder, 1);
                // Its outlet is cut once every recorder on it is down. The site is
                // borrowed, not cloned: a fan-out of 5,000 took and dropped its count
                // 5,000 times, a fifth of this loop's own samples.
                let site = &*self.site;
                self.power
                    .recorder_ordered(t, recorder, t, &|r| site.recorders[r].shutdown_time);
                self.power_outputs(t);
            }
            if !self.poll_outputs(t) {
                break;
            }
        }
    }

    /// A shutdown as journaled: names for indices; the sentence and the rule taken.
    fn shutdown_decided(
        &self,
        ups: UpsId,
        recorder: RecorderId,
        tier: u8,
        deadline: Timestamp,
        reason: Arc<str>,
        cause: Cause,
    ) -> Decided {
        Decided::ShutdownRecorder {
            ups: self.names.ups(ups),
            recorder: self.names.recorder(recorder),
            tier,
            deadline,
            reason,
            event: self.names.event(cause.event),
            rule: cause.rule,
        }
    }

    /// A decision as journaled: names for indices.
    fn decided(&self, t: Timestamp, d: &Decision) -> Decided {
        let ups = |u: UpsId| self.names.ups(u);
        let recorder = |r: RecorderId| self.names.recorder(r);
        let _ = t;
        match d {
            Decision::ShutdownRecorder {
                ups: u,
                recorder: r,
                tier,
                deadline,
                reason,
                cause: c,
            } => self.shutdown_decided(*u, *r, *tier, *deadline, reason.clone(), c.clone()),
            Decision::CancelShutdown {
                ups: u,
                tiers,
                reason,
            } => Decided::CancelShutdown {
                ups: ups(*u),
                tiers: tiers.clone(),
                reason: reason.clone(),
            },
            Decision::PresentCharge {
                recorder: r,
                percent,
            } => Decided::PresentCharge {
                recorder: recorder(*r),
                percent: Percent::from(*percent),
            },
            Decision::Poll {
                ups: u,
                reason,
                cause: c,
            } => Decided::Poll {
                ups: ups(*u),
                reason: reason.clone(),
                event: c.event,
                rule: c.rule.clone(),
            },
            Decision::PowerBack { ups: u } => Decided::PowerBack { ups: ups(*u) },
            Decision::Acknowledged { recorder: r } => Decided::Acknowledged {
                recorder: recorder(*r),
            },
            Decision::Alert { ups: u, kind, text } => Decided::Alert {
                ups: u.map(ups),
                recorder: None,
                outlet: None,
                kind: *kind,
                reason: text.clone(),
            },
        }
    }

    /// A recorder told to shut down is presented 0 % from now on: the same record says
    /// both (a dry run presents the real values).
    fn shutdown_ordered(&mut self, t: Timestamp, recorder: RecorderId) {
        if !self.options.dry_run {
            self.agent.presented[recorder] = Some(0);
            self.ledger.ordered(t, recorder)
        }
    }

    /// What a decision changes in the other machines.
    fn follow(&mut self, t: Timestamp, d: &Decision) {
        match *d {
            // A shutdown is followed where it is decided (`decisions`).
            // A dry run records what it would present, and presents the real values.
            Decision::PresentCharge { recorder, percent } if !self.options.dry_run => {
                self.agent.presented[recorder] = percent;
            }
            Decision::Poll { ups, .. } => self.poller.poll_now(t, ups),
            Decision::Acknowledged { recorder } => self.ledger.acknowledged(t, recorder),
            Decision::PowerBack { ups } => {
                self.ledger.power_back(t, ups);
                let site = Arc::clone(&self.site);
                self.power
                    .power_back(t, ups, self.ledger.all(), &|r| site.recorders[r].ups);
                self.power_outputs(t);
            }
            _ => {}
        }
    }

    /// The power machine's timers due at `t`: outlets to cut (none feeding a running
    /// recorder), retries, magic packets.
    fn power_timeout(&mut self, t: Timestamp) {
        let facts = PowerFacts {
            decider: &self.decider,
            ledger: &self.ledger,
        };
        self.power.handle_timeout(t, &facts);
        self.power_outputs(t);
    }

    /// What the power machine has: requests and packets to send, and records.
    fn power_outputs(&mut self, t: Timestamp) {
        use crate::engine::power::{PowerOutput, status_name};
        while let Some(o) = self.power.poll_output() {
            // A datagram: a card's request from the poll socket, a magic packet from
            // one that may broadcast (nothing leaves while a journal is fed back).
            let datagram = match &o {
                PowerOutput::Send { outlet, to, bytes } => {
                    Some((*to, Via::Poll, Purpose::Command { outlet: *outlet }, bytes))
                }
                PowerOutput::Wake {
                    recorder,
                    attempt,
                    to,
                    bytes,
                } => Some((
                    *to,
                    Via::Wol,
                    Purpose::Wake {
                        recorder: *recorder,
                        attempt: *attempt,
                    },
                    bytes,
                )),
                _ => None,
            };
            if let Some((to, via, purpose, bytes)) = datagram {
                if !self.restoring && !self.standby {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(self.power.wire(bytes.clone()));
                    self.queued.push_back(Queued::Datagram {
                        transmit: Transmit { to, via, purpose },
                        start,
                        len: self.bytes.len() - start,
                    });
                }
                continue;
            }
            let record = match o {
                PowerOutput::Send { .. } | PowerOutput::Wake { .. } => continue,
                PowerOutput::Committed { outlet, at } => Record::Decision(Decided::CycleOutlet {
                    outlet: self.power.name_text(outlet),
                    at,
                    recorders: self
                        .power
                        .members(outlet)
                        .iter()
                        .map(|r| self.names.recorder(*r))
                        .collect(),
                }),
                PowerOutput::Commanded {
                    outlet,
                    form,
                    sets,
                    attempt,
                    dry_run,
                } => Record::Action(Action::OutletSet {
                    outlet: self.power.name_text(outlet),
                    form: form.into(),
                    sets,
                    attempt,
                    to: (!dry_run).then(|| self.power.card(outlet)),
                    dry_run,
                }),
                PowerOutput::Answered {
                    outlet,
                    form,
                    status,
                } => Record::Action(Action::OutletAnswered {
                    outlet: self.power.name_text(outlet),
                    form: form.into(),
                    status: status_name(status).into(),
                }),
                PowerOutput::Read {
                    outlet,
                    object,
                    index,
                    value,
                    busy,
                } => Record::Action(Action::OutletRead {
                    outlet: self.power.name_text(outlet),
                    state: format!("{}.{index} = {}", object.name, object.value_text(value)),
                    busy,
                }),
                PowerOutput::Reported {
                    outlet,
                    trap,
                    stage,
                    ours,
                    untold,
                    early,
                } => {
                    if !untold.is_empty() || !early.is_empty() {
                        let list = |rs: &[RecorderId], what: &str| -> Option<String> {
                            let names: Vec<String> = rs
                                .iter()
                                .map(|r| self.names.recorder(*r).to_string())
                                .collect();
                            (!names.is_empty()).then(|| {
                                format!(
                                    "{} on it {} {what}",
                                    names.join(", "),
                                    if names.len() == 1 { "was" } else { "were" }
                                )
                            })
                        };
                        let said: Vec<String> = [
                            list(&untold, "not told to shut down"),
                            list(&early, "told, but had not had its shutdown time"),
                        ]
                        .into_iter()
                        .flatten()
                        .collect();
                        let alert = Record::Decision(Decided::Alert {
                            ups: None,
                            recorder: None,
                            outlet: Some(self.power.name_text(outlet)),
                            kind: AlertKind::OutletCutByCard,
                            reason: format!(
                                "the card turned outlet {} off ({trap}) though trapgate had not cut it: {}, and lost power mid-write; check the card's load shedding and outlet group settings",
                                self.power.name(outlet),
                                said.join("; ")
                            ),
                        });
                        self.record(t, alert);
                    }
                    Record::Action(Action::OutletReported {
                        outlet: self.power.name_text(outlet),
                        trap,
                        state: stage.name().into(),
                        ours,
                    })
                }
                PowerOutput::NotCut { outlet, why } => Record::Decision(Decided::Alert {
                    ups: None,
                    recorder: None,
                    outlet: Some(self.power.name_text(outlet)),
                    kind: AlertKind::OutletNotCycled,
                    reason: why,
                }),
            };
            self.record(t, record);
        }
    }

    /// Queues recorder `r`'s order: its trap, or its command.
    fn order(&mut self, t: Timestamp, r: RecorderId, attempt: u32) {
        if self.restoring {
            self.unsent.insert(r, t);
            return;
        }
        if self.standby {
            // The actor tells it; what the actor ships says it did (`Sent`).
            self.unsent.entry(r).or_insert(t);
            return;
        }
        if self.options.dry_run {
            let name = self.names.recorder(r);
            self.record(
                t,
                Record::Action(Action::WouldSend {
                    recorder: name,
                    attempt,
                    detail: "dry run: nothing sent".into(),
                }),
            );
            return;
        }
        self.counts.tallies.inc(Counter::OrdersSent);
        let kind = self.names.how[r].kind;
        match kind {
            HowKind::Trap => {
                self.orders_queued += 1;
                self.orders.push_back((r, attempt));
                match self.queued.back_mut() {
                    Some(Queued::Orders(n)) => *n += 1,
                    _ => self.queued.push_back(Queued::Orders(1)),
                }
            }
            // A NUT or apcupsd client is told by what its status turns to (FSD, ONBATT
            // LOWBATT); nothing is sent.
            HowKind::Nut | HowKind::Apcupsd => {
                self.ledger.sent(t, r, attempt);
                let name = self.names.recorder(r);
                self.record(
                    t,
                    Record::Action(Action::Sent {
                        recorder: name,
                        attempt,
                        to: None,
                        detail: if kind == HowKind::Apcupsd {
                            Arc::clone(&self.names.nis_lowbatt)
                        } else {
                            Arc::clone(&self.names.nut_fsd)
                        },
                    }),
                );
            }
            HowKind::Exec => {
                let rec = &self.site.recorders[r];
                let RecorderKind::Exec(command) = &rec.kind else {
                    return;
                };
                let ups = &self.site.upses[rec.ups];
                self.commands.push_back(Command {
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
                    timeout: std::time::Duration::from_secs(u64::from(
                        self.site.gateway.exec_timeout.0,
                    )),
                });
            }
        }
    }

    /// Takes what the poller has: polls to send, answers, silences. True if any of it
    /// went to the policy (which may have decided on it).
    fn poll_outputs(&mut self, t: Timestamp) -> bool {
        let mut told = false;
        while let Some(o) = self.poller.poll_output() {
            told |= !matches!(o, PollOutput::Send { .. });
            match o {
                PollOutput::Send { ups, to, bytes } => {
                    if self.restoring {
                        continue;
                    }
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(self.poller.wire(bytes));
                    self.queued.push_back(Queued::Datagram {
                        transmit: Transmit {
                            to,
                            via: Via::Poll,
                            purpose: Purpose::Poll { ups },
                        },
                        start,
                        len: self.bytes.len() - start,
                    });
                }
                PollOutput::Missing { ups, name } => self.poll_trouble(t, ups, Err(name)),
                PollOutput::Error { ups, status } => self.poll_trouble(t, ups, Ok(status)),
                PollOutput::Answer { ups, answer } => self.poll_answer(t, ups, answer),
                PollOutput::Silent { ups } => self.ups_silent(t, ups, true),
                PollOutput::Answering { ups } => self.ups_silent(t, ups, false),
                PollOutput::Unanswered { ups, sent } => {
                    let before = self.decider.revision();
                    self.decider.handle_poll_unanswered(t, ups, sent);
                    if self.decider.revision() != before {
                        let name = self.names.ups(ups);
                        self.input(t, Input::PollUnanswered { ups: name, sent });
                    }
                }
            }
        }
        told
    }

    /// A UPS's answer with an error: an object it lacks (`Err`: its name, reported once;
    /// it is asked without it from now on) or another error status (`Ok`: reported once
    /// until it answers cleanly again).
    fn poll_trouble(&mut self, t: Timestamp, ups: UpsId, what: Result<i32, &'static str>) {
        let name = &self.site.upses[ups].name;
        let (kind, reason) = match what {
            Err(object) if self.missing_said[ups].contains(&object) => return,
            Err(object) => {
                self.missing_said[ups].push(object);
                (
                    AlertKind::PollObjectMissing,
                    format!(
                        "UPS `{name}` has no {object} (noSuchName): it is polled without it from now on; its other values count, and recorders asking for it get noSuchInstance"
                    ),
                )
            }
            Ok(status) => {
                if self.poll_error[ups] == Some(status) {
                    return;
                }
                self.poll_error[ups] = Some(status);
                (
                    AlertKind::PollError,
                    format!(
                        "UPS `{name}` answers its poll with error-status {} ({status}): it is alive, its values unknown",
                        error_status_name(status)
                    ),
                )
            }
        };
        let ups = Some(self.names.ups(ups));
        let alert = Decided::Alert {
            ups,
            recorder: None,
            outlet: None,
            kind,
            reason,
        };
        self.record(t, Record::Decision(alert));
    }

    /// What a UPS said: cached for the virtual UPS, handed to the policy, journaled when
    /// it says something new or moved the policy.
    fn poll_answer(&mut self, t: Timestamp, ups: UpsId, answer: PollAnswer) {
        if !answer.is_empty() {
            self.poll_error[ups] = None;
        }
        self.agent.ups[ups].update(t, answer);
        let before = self.decider.revision();
        self.decider.handle_poll(t, ups, answer);
        if self.decider.revision() != before || self.last_answer[ups] != Some(answer) {
            self.last_answer[ups] = Some(answer);
            let name = self.names.ups(ups);
            self.input(t, Input::Poll { ups: name, answer });
        }
    }

    fn ups_silent(&mut self, t: Timestamp, ups: UpsId, silent: bool) {
        let name = self.names.ups(ups);
        self.input(t, Input::Silent { ups: name, silent });
        self.decider.handle_ups_silent(ups, silent);
    }

    fn ledger_outputs(&mut self, t: Timestamp) {
        while let Some(o) = self.ledger.poll_output() {
            let rec = |r: RecorderId| self.names.recorder(r);
            let record = match o {
                LedgerOutput::Resend { recorder, attempt } => {
                    self.counts.tallies.inc(Counter::Resends);
                    self.order(t, recorder, attempt);
                    continue;
                }
                LedgerOutput::NotAcknowledged { recorder, sent } => Action::NotAcknowledged {
                    recorder: rec(recorder),
                    attempt: sent,
                    detail: "no acknowledgement before the UPS cuts its outlets".into(),
                },
                LedgerOutput::Back {
                    recorder,
                    after_s,
                    late,
                } => {
                    self.power.recorder_back(recorder);
                    Action::Back {
                        recorder: rec(recorder),
                        after_s: (after_s * 10.0).round() / 10.0,
                        late,
                    }
                }
                LedgerOutput::StillRunning { recorder, late_s } => {
                    self.counts.tallies.inc(Counter::NotShutDown);
                    let r = &self.site.recorders[recorder];
                    let ups = &self.site.upses[r.ups].name;
                    let alert = Decided::Alert {
                        ups: Some(ups.as_str().into()),
                        recorder: Some(rec(recorder)),
                        outlet: None,
                        kind: AlertKind::DidNotShutDown,
                        reason: format!(
                            "recorder `{}` did not shut down: heard from {late_s:.0} s after it should have been down ({} s after its order or acknowledgement), while UPS `{ups}` is still on battery",
                            r.name, r.shutdown_time.0
                        ),
                    };
                    self.record(t, Record::Decision(alert));
                    continue;
                }
                LedgerOutput::NotBack { recorder } => Action::NotBack {
                    recorder: rec(recorder),
                    detail: format!(
                        "not heard from within its boot time ({} s) after power returned: switch it on by hand?",
                        self.site.recorders[recorder].boot_time.0
                    ),
                },
            };
            self.record(t, Record::Action(record));
        }
    }

    fn refusal_summaries(&mut self, t: Timestamp) {
        while let Some(s) = self.refusal_log.poll_summary() {
            let record = Action::Refused {
                reason: s.reason.name().into(),
                count: s.count,
                detail: s.reason.sentence().into(),
                source: s.source,
                event: s.event,
            };
            self.record(t, Record::Action(record));
        }
    }

    /// Says every refusal still pending (at a stop, at the end of a replay).
    pub fn flush_refusals(&mut self, now: Timestamp) {
        let at = self.at(now);
        self.refusal_log.flush(at);
        self.refusal_summaries(at);
    }

    // --- A journal fed back in ------------------------------------------------------

    /// One record of a journal, at its time `t`, fed back: inputs go through the
    /// machines again (nothing they decide goes out), and what the journal says was
    /// decided and done is made to hold even where its input was lost (a damaged line
    /// loses only its own fact).
    pub fn restore(&mut self, t: Timestamp, record: &Record) {
        self.restoring = true;
        let ups = |s: &Station, name: &str| match s.names.get(name) {
            Some(Who::Ups(u)) => Some(*u),
            _ => None,
        };
        let recorder = |s: &Station, name: &str| match s.names.get(name) {
            Some(Who::Recorder(r)) => Some(*r),
            _ => None,
        };
        match record {
            Record::Input(i) => match i {
                Input::Event {
                    source,
                    community,
                    security_level,
                    event,
                    rule,
                    index,
                    ..
                } => {
                    let cred = Credential {
                        name: community.as_bytes(),
                        v3: *security_level,
                    };
                    if let Some(who) = self.trust.who(*source)
                        && let Ok(who) = self.trust.notification(who, cred, *event)
                    {
                        let n = Notification {
                            who,
                            source: *source,
                            community: community.as_bytes(),
                            v3: *security_level,
                            event: *event,
                            rule,
                            index: *index,
                        };
                        self.handle_notification(t, &n);
                    }
                }
                Input::Poll { ups: name, answer } => {
                    if let Some(u) = ups(self, name) {
                        let at = self.at(t);
                        self.poll_answer(at, u, *answer);
                        self.decisions(at);
                    }
                }
                Input::PollUnanswered { ups: name, sent } => {
                    if let Some(u) = ups(self, name) {
                        let at = self.at(t);
                        self.decider.handle_poll_unanswered(at, u, *sent);
                        self.decisions(at);
                    }
                }
                Input::Silent { ups: name, silent } => {
                    if let Some(u) = ups(self, name) {
                        let at = self.at(t);
                        self.decider.handle_ups_silent(u, *silent);
                        self.decisions(at);
                    }
                }
                Input::NutLeft { .. } => {
                    self.adopt(t, record);
                }
                Input::EngineKnown { user, engine_id } => {
                    if let Some(id) = crate::wire::hex::decode(engine_id) {
                        self.usm.engines().insert(user.as_bytes(), &id);
                    }
                }
                Input::OffDelay { ups, seconds } => {
                    self.take_off_delay(ups, Secs(*seconds));
                }
                Input::Timeout => self.advance(t),
            },
            Record::Decision(d) => {
                self.advance(t);
                // What a decision says of its UPS's state, in case the input behind it
                // was lost: an outage began (on battery), a shutdown trap waits for its
                // poll, mains power is back. Fed again, an event the policy had changes
                // nothing.
                let implied = match d {
                    Decided::Alert {
                        ups: Some(u), kind, ..
                    } if *kind == AlertKind::OnBattery => Some((u, Event::OnBattery, "journal")),
                    Decided::Poll {
                        ups: u,
                        event,
                        rule,
                        ..
                    } => event.map(|e| (u, e, &**rule)),
                    Decided::PowerBack { ups: u } => Some((u, Event::PowerRestored, "journal")),
                    _ => None,
                };
                if let Some((name, event, rule)) = implied
                    && let Some(u) = ups(self, name)
                {
                    self.decider.handle_ups_event(t, u, event, rule);
                }
                if !self.adopt(t, record) {
                    match d {
                        Decided::Alert {
                            outlet: Some(outlet),
                            kind,
                            ..
                        } if *kind == AlertKind::OutletNotCycled => {
                            if let Some(o) = self.power.outlet_named(outlet) {
                                self.power.restore_not_cut(o);
                            }
                        }
                        Decided::PresentCharge {
                            recorder: name,
                            percent,
                        } => {
                            if let Some(r) = recorder(self, name)
                                && !self.options.dry_run
                            {
                                self.agent.presented[r] = (*percent).into();
                            }
                        }
                        Decided::PowerBack { ups: name } => {
                            if let Some(u) = ups(self, name) {
                                self.ledger.power_back(t, u);
                            }
                        }
                        Decided::Alert {
                            recorder: Some(name),
                            kind,
                            ..
                        } if *kind == AlertKind::DidNotShutDown => {
                            if let Some(r) = recorder(self, name) {
                                self.ledger.said_still_running(r);
                            }
                        }
                        _ => {}
                    }
                }
                self.decisions(t);
            }
            Record::Snapshot(_) => {}
            Record::Action(a) => {
                self.advance(t);
                if !self.adopt(t, record)
                    && let Action::Polled { ups: name, .. } = a
                    && let Some(u) = ups(self, name)
                {
                    self.decider.handle_poll_sent(t, u);
                }
                self.ledger_outputs(t);
            }
        }
        // History: nothing it decided goes out.
        self.records.clear();
        self.records_sync = false;
        self.queued.clear();
        self.orders.clear();
        self.orders_queued = 0;
        self.bytes.clear();
        self.commands.clear();
        while self.ledger.poll_output().is_some() {}
        while self.power.poll_output().is_some() {}
        self.restoring = false;
    }

    /// A fact that a journal, or the pair's actor, says held (an order decided or sent,
    /// an acknowledgement, a command's end, a NUT client's logout, a recorder back, an
    /// outlet committed or taken by its card), made to hold here at `t`: nothing is
    /// re-derived. False for any other record.
    fn adopt(&mut self, t: Timestamp, record: &Record) -> bool {
        let recorder = |s: &Station, name: &str| match s.names.get(name) {
            Some(Who::Recorder(r)) => Some(*r),
            _ => None,
        };
        match record {
            Record::Decision(Decided::CycleOutlet { outlet, at, .. }) => {
                if let Some(o) = self.power.outlet_named(outlet) {
                    self.power.restore_committed(t, o, *at);
                }
            }
            Record::Decision(Decided::ShutdownRecorder { recorder: name, .. }) => {
                if let Some(r) = recorder(self, name) {
                    // Told to shut down, it is presented 0 % (format 2 records it once;
                    // format 1's `PresentCharge` that follows says so again).
                    if !self.options.dry_run {
                        self.agent.presented[r] = Some(0);
                    }
                    self.power.restore_ordered(r, t);
                    if self.decider.mark_told(t, r) {
                        self.unsent.insert(r, t);
                    }
                    if matches!(self.ledger.standing(r), Standing::Idle) && !self.options.dry_run {
                        self.ledger.ordered(t, r);
                    }
                }
            }
            Record::Decision(Decided::Acknowledged { recorder: name }) => {
                if let Some(r) = recorder(self, name) {
                    self.decider.mark_acknowledged(r);
                    if !self.ledger.has_acknowledged(r) {
                        self.ledger.acknowledged(t, r);
                    }
                }
            }
            Record::Action(Action::Sent {
                recorder: name,
                attempt,
                ..
            }) => {
                if let Some(r) = recorder(self, name) {
                    self.unsent.remove(&r);
                    self.ledger.sent(t, r, *attempt);
                }
            }
            Record::Action(Action::CommandDone {
                recorder: name,
                ok: true,
                ..
            }) => {
                if let Some(r) = recorder(self, name) {
                    self.decider.handle_ack(t, r);
                    self.decisions(t);
                }
            }
            Record::Input(Input::NutLeft { recorder: name }) => {
                if let Some(r) = recorder(self, name) {
                    let at = self.at(t);
                    self.decider.handle_ack(at, r);
                    self.decisions(at);
                }
            }
            Record::Action(Action::Back { recorder: name, .. }) => {
                if let Some(r) = recorder(self, name) {
                    self.ledger.seen(t, r);
                }
            }
            // The card took it: not written again (nor read: it was armed).
            Record::Action(Action::OutletAnswered {
                outlet,
                form,
                status,
                ..
            }) if &**status == "noError" => {
                if let Some(o) = self.power.outlet_named(outlet) {
                    self.power.restore_taken(o, &**form == "immediateOn");
                }
            }
            Record::Action(Action::FromPeer { record, .. }) => return self.adopt(t, record),
            _ => return false,
        }
        true
    }

    // --- A pair of gateways ---------------------------------------------------------

    /// Whether it is a pair's standby (it sends nothing to a recorder or an outlet).
    pub fn is_standby(&self) -> bool {
        self.standby
    }

    /// This gateway of a pair becomes the standby at `now` (`why`: it does not hold the
    /// pair's address): it goes on deciding, journaling and showing, and sends no order
    /// and no outlet command. Recorded as a `Role`.
    pub fn demote(&mut self, now: Timestamp, why: &str) {
        let at = self.at(now);
        self.take_role(at, false, why.to_string());
    }

    /// Acts (`actor`) or stands by from `at`, journaled with `detail`.
    fn take_role(&mut self, at: Timestamp, actor: bool, detail: String) {
        self.standby = !actor;
        let role = if actor { "actor" } else { "standby" };
        self.record(
            at,
            Record::Action(Action::Role {
                role: role.into(),
                detail,
            }),
        );
    }

    /// This gateway of a pair starts as the actor (it holds the pair's address at start):
    /// what its journal gave back goes on as a restart's does (`resumed`).
    pub fn act_from_start(&mut self, now: Timestamp, why: &str) {
        let at = self.at(now);
        self.take_role(at, true, why.to_string());
    }

    /// This gateway of a pair becomes the actor at `now` (`why`: it holds the pair's
    /// address). Every recorder it knows ordered and does not know acknowledged is told
    /// now (the old actor's last orders may not have left, nor their acknowledgements
    /// reached it); an acknowledged one never. The outlets' machine runs again and reads
    /// each card before it writes (read before write: no countdown armed twice). How
    /// many recorders it tells.
    pub fn promote(&mut self, now: Timestamp, why: &str) -> usize {
        let at = self.at(now);
        self.unsent.clear();
        let told = self.ledger.tell_now(at);
        let site = Arc::clone(&self.site);
        self.power
            .recommit(at, &|r| site.recorders[r].shutdown_time);
        self.take_role(
            at,
            true,
            format!(
                "{why}; {told} recorder(s) ordered and not known to have acknowledged told now"
            ),
        );
        self.advance(at);
        self.power_outputs(at);
        told
    }

    /// A record the pair's actor shipped (`ships`), received at `now` in datagram `seq`
    /// from `peer`, made at `made` (the peer's wall clock): applied as the fact it is
    /// (`adopt`; a standby adopts the actor's orders too, an actor only what recorders
    /// did), and journaled as `FromPeer`. False for a record no actor ships (counted by
    /// the caller, never applied).
    pub fn handle_peer_record(
        &mut self,
        now: Timestamp,
        peer: SocketAddr,
        seq: u64,
        made: String,
        record: Record,
    ) -> bool {
        if !ships(&record) {
            return false;
        }
        let at = self.at(now);
        let orders = matches!(
            record,
            Record::Decision(Decided::ShutdownRecorder { .. })
                | Record::Action(Action::Sent { .. })
        );
        if self.standby || !orders {
            self.adopt(at, &record);
        }
        self.record(
            at,
            Record::Action(Action::FromPeer {
                peer,
                seq,
                made,
                record: Box::new(record),
            }),
        );
        self.decisions(at);
        self.ledger_outputs(at);
        true
    }

    /// The journal is read: the orders decided and not journaled as sent go out once,
    /// one acknowledgement wait after they were decided (the crash may have come just
    /// after one left, and a recorder is never told twice at one instant); the polls
    /// start afresh.
    pub fn resumed(&mut self, now: Timestamp) -> Resumed {
        // Timers that fell due while the gateway was down fire now, not back-dated to
        // when they were due: nothing is journaled at a time the gateway did not live.
        self.floor = self.floor.max(now);
        // Restarted before the clock moves: a poll the journal's schedule made due now
        // would otherwise leave, be forgotten here, and its answer refused as forged.
        self.poller.restart(self.floor);
        let at = self.at(now);
        let site = Arc::clone(&self.site);
        self.power
            .recommit(at, &|r| site.recorders[r].shutdown_time);
        let mut unsent = 0;
        for (r, decided) in std::mem::take(&mut self.unsent) {
            if matches!(self.ledger.standing(r), Standing::Ordered { .. }) {
                self.ledger.may_have_left(r, decided);
                unsent += 1;
            }
        }
        let standing = self.ledger.all();
        let r = Resumed {
            waiting: standing
                .iter()
                .filter(|x| matches!(x, Standing::Ordered { .. }))
                .count(),
            acknowledged: standing
                .iter()
                .filter(|x| matches!(x, Standing::Acknowledged { .. }))
                .count(),
            unsent,
        };
        self.decisions(at);
        r
    }
}

#[cfg(test)]
mod tests;
