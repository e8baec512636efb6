//! Giving the power back: the outlets of what trapgate shed are cycled, with a form that
//! switches them on again by itself once mains is good, and recorders with Wake-on-LAN
//! are woken. Sans-IO, like the poller: time and the cards' answers go in, SET and GET
//! requests, magic packets and what happened come out.
//!
//! A recorder shed while its UPS still feeds it halts on a live outlet and stays off when
//! mains returns (the "power race"). Once every recorder on an outlet has been ordered
//! down and has had its `shutdown_time` since its order (an acknowledgement says a
//! recorder has begun to shut down, not that it has finished), the outlet is committed
//! (`Committed`, journaled as a decision) and, at that time, cut with the first form of
//! its control that the card takes (`control`): an APC outlet group's
//! ImmediateRebootShutdown (off, wait for good AC, on), a whole UPS's reboot, RFC 1628's
//! shutdown countdown with a longer startup countdown, Eaton's shed with restart,
//! CyberPower's reboot; a switched PDU's outlet is switched off, then on once its
//! recorders' UPS is back on mains (a PDU has no battery to wait with). An outlet with a
//! recorder that is running (heard from after it should have been down, or back) is
//! never cut: checked when it falls due and before every SET that cuts (`Facts`).
//!
//! Every request is checked like a poll: it goes to the card's address and port only,
//! with the card's write community (or v3 write user, after discovering the card's
//! engine), under a request id drawn at random; an answer counts only from there, with
//! that id and credential. **Read before write**: before a SET, the card's pending state
//! is read (APC `upsOutletGroupStatusCommandPending`, RFC 1628 `upsShutdownAfterDelay`,
//! Eaton `xupsRecepStatus`, …): a countdown already running (a restart, a re-send, a
//! reload) is never armed again. After a SET the state is read back as confirmation. A
//! refused SET moves to the next form; an unanswered one is not re-sent blind: the
//! state is read first (`Confirming`), and the SET goes again (three at most, each under
//! a new id) only if the card had not taken it; when no form is left, the outlet is
//! `NotCut` with what the operator must do.

pub mod card;
pub mod tables;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use bumpalo::Bump;

use crate::engine::config::{PduVendor, Plug, Site, Vendor};
use crate::engine::id::{RecorderId, UpsId};
use crate::engine::ledger::Standing;
use crate::engine::poller::RequestIds;
use crate::time::Timestamp;
use crate::wire::oid::OidBuf;
use crate::wire::{PduType, Value, VarBind};

/// An object of a MIB, as `tables` holds it: read from the MIB file.
#[derive(Debug, PartialEq, Eq)]
pub struct Object {
    /// Its MIB name.
    pub name: &'static str,
    /// Its MIB module.
    pub mib: &'static str,
    /// Its OID, without instance.
    pub arcs: &'static [u32],
    /// Whether the MIB lets it be written.
    pub writable: bool,
    /// The unit of its value: the MIB's UNITS clause, "hundredths of a second" for
    /// TimeTicks, or what its DESCRIPTION names ("seconds", "percent"); "" if none.
    pub units: &'static str,
    /// Its named values.
    pub values: &'static [(&'static str, i64)],
}

impl Object {
    /// Its instance: `.0` for a scalar (`index` 0), `.index` for a table column.
    pub fn oid(&self, index: u32) -> OidBuf {
        let mut arcs = [0u32; 24];
        let n = self.arcs.len().min(23);
        arcs[..n].copy_from_slice(&self.arcs[..n]);
        arcs[n] = index;
        OidBuf::from_arcs(&arcs[..=n]).expect("a MIB's OID (tested)")
    }

    /// `v`, a value of it as the card gives it, in seconds: TimeTicks are hundredths
    /// (whatever the unit the MIB's prose names), an integer is in the object's units
    /// (minutes for RFC 1628's low-battery time). None for a value of another kind.
    pub fn seconds(&self, v: &Value<'_>) -> Option<i64> {
        match *v {
            Value::TimeTicks(t) => Some(i64::from(t / 100)),
            Value::Integer(i) if self.units == "minutes" => Some(i.saturating_mul(60)),
            Value::Integer(i) => Some(i),
            Value::Gauge32(g) => Some(i64::from(g)),
            _ => None,
        }
    }

    /// `value` as the journal shows it: `name(value)` where the MIB names it.
    pub fn value_text(&self, value: i64) -> String {
        match self.named(value) {
            Some(n) => format!("{n}({value})"),
            None => value.to_string(),
        }
    }

    /// The name of `value`, if the MIB names it.
    pub fn named(&self, value: i64) -> Option<&'static str> {
        self.values
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(n, _)| *n)
    }
}

/// Which instance of an object a binding writes: a scalar's `.0`, or the outlet's own
/// (its group, receptacle or outlet number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instance {
    /// `.0`.
    Scalar,
    /// `.N`, N the outlet's number.
    Outlet,
}

impl Instance {
    /// Its index for the outlet numbered `outlet`: 0 for a scalar.
    pub fn index(self, outlet: u32) -> u32 {
        match self {
            Instance::Scalar => 0,
            Instance::Outlet => outlet,
        }
    }
}

/// One binding of a SET: an object, its instance, and the value written.
pub type Binding = (&'static Object, Instance, i64);

/// One way to cut an outlet's power (or give it back): the bindings of one SET.
#[derive(Debug)]
pub struct Form {
    /// How the operator knows it (the MIB's value name, or what the bindings do).
    pub name: &'static str,
    /// What is written, in one request.
    pub sets: &'static [Binding],
    /// The card takes it only while the UPS is on battery (APC's conserve battery).
    pub on_battery_only: bool,
}

/// How the pending state of an outlet reads back.
#[derive(Debug)]
pub struct Readback {
    /// The object read.
    pub object: &'static Object,
    /// Its instance.
    pub instance: Instance,
    /// The values that say a command is pending or under way (off, rebooting, a
    /// countdown): nothing must be armed again.
    pub busy: &'static [i64],
    /// For RFC 1628's countdown: any value but -1 is one running.
    pub countdown: bool,
}

/// What cuts one kind of outlet and gives it back.
#[derive(Debug)]
pub struct Control {
    /// The forms that cut it, best first; each gives the power back by itself once mains
    /// is good (a PDU's only cuts: `on` gives it back).
    pub cut: &'static [Form],
    /// For a PDU: what switches it on again once mains is back.
    pub on: Option<&'static Form>,
    /// For a PDU whose recorders' mains is back already: off and on at once.
    pub reboot: Option<&'static Form>,
    /// How its pending state reads back, if the MIB can say.
    pub readback: Option<Readback>,
}

use card::{Card, Credential, Opened};
use tables::*;

/// RFC 1628's countdowns: off after this (s), on again after that (s, longer: "if it
/// expires during a utility failure, the startup waits for utility power").
pub const RFC1628_SHUTDOWN_AFTER: i64 = 10;
/// See `RFC1628_SHUTDOWN_AFTER`.
pub const RFC1628_STARTUP_AFTER: i64 = 90;
/// Eaton's shed with restart: off after this (s), on when utility is back.
pub const EATON_SHED_AFTER: i64 = 5;

static APC_GROUP: Control = Control {
    cut: &[
        Form {
            name: "upsOutletGroupImmediateRebootShutdown",
            sets: &[(&APC_GROUP_COMMAND, Instance::Outlet, 9)],
            on_battery_only: false,
        },
        Form {
            name: "upsOutletGroupDelayedRebootShutdown",
            sets: &[(&APC_GROUP_COMMAND, Instance::Outlet, 10)],
            on_battery_only: false,
        },
    ],
    on: None,
    reboot: None,
    readback: Some(Readback {
        object: &APC_GROUP_PENDING,
        instance: Instance::Outlet,
        busy: &[1],
        countdown: false,
    }),
};

static APC_OUTPUT: Control = Control {
    cut: &[
        Form {
            name: "rebootShutdownUps",
            sets: &[(&APC_REBOOT_SHUTDOWN_UPS, Instance::Scalar, 2)],
            on_battery_only: false,
        },
        Form {
            name: "turnOffUpsToConserveBattery",
            sets: &[(&APC_CONSERVE_BATTERY, Instance::Scalar, 2)],
            on_battery_only: true,
        },
    ],
    on: None,
    reboot: None,
    readback: Some(Readback {
        object: &APC_OUTPUT_STATUS,
        instance: Instance::Scalar,
        // timedSleeping, off, rebooting, sleepingUntilPowerReturn.
        busy: &[5, 7, 8, 11],
        countdown: false,
    }),
};

static RFC1628_OUTPUT: Control = Control {
    cut: &[Form {
        name: "upsShutdownAfterDelay with a longer upsStartupAfterDelay",
        sets: &[
            (&RFC1628_SHUTDOWN_TYPE, Instance::Scalar, 1),
            (
                &RFC1628_STARTUP_AFTER_DELAY,
                Instance::Scalar,
                RFC1628_STARTUP_AFTER,
            ),
            (
                &RFC1628_SHUTDOWN_AFTER_DELAY,
                Instance::Scalar,
                RFC1628_SHUTDOWN_AFTER,
            ),
        ],
        on_battery_only: false,
    }],
    on: None,
    reboot: None,
    readback: Some(Readback {
        object: &RFC1628_SHUTDOWN_AFTER_DELAY,
        instance: Instance::Scalar,
        busy: &[],
        countdown: true,
    }),
};

static EATON_RECEPTACLE: Control = Control {
    cut: &[Form {
        name: "xupsRecepShedSecsWithRestart",
        sets: &[(
            &EATON_RECEP_SHED_WITH_RESTART,
            Instance::Outlet,
            EATON_SHED_AFTER,
        )],
        on_battery_only: false,
    }],
    on: None,
    reboot: None,
    readback: Some(Readback {
        object: &EATON_RECEP_STATUS,
        instance: Instance::Outlet,
        // off, pendingOff, pendingOn.
        busy: &[2, 3, 4],
        countdown: false,
    }),
};

static EATON_OUTPUT: Control = Control {
    cut: &[Form {
        name: "xupsLoadShedSecsWithRestart",
        sets: &[(
            &EATON_LOAD_SHED_WITH_RESTART,
            Instance::Scalar,
            EATON_SHED_AFTER,
        )],
        on_battery_only: false,
    }],
    on: None,
    reboot: None,
    readback: None,
};

static CPS_OUTPUT: Control = Control {
    cut: &[Form {
        name: "rebootUps",
        sets: &[(&CPS_REBOOT_UPS, Instance::Scalar, 2)],
        on_battery_only: false,
    }],
    on: None,
    reboot: None,
    readback: Some(Readback {
        object: &CPS_OUTPUT_STATUS,
        instance: Instance::Scalar,
        // onSleep, off, rebooting.
        busy: &[5, 6, 7],
        countdown: false,
    }),
};

macro_rules! pdu_control {
    ($name:ident, $command:ident, $state:ident, $off:expr, $on:expr, $reboot:expr, $is_off:expr) => {
        static $name: Control = Control {
            cut: &[Form {
                name: "immediateOff",
                sets: &[(&$command, Instance::Outlet, $off)],
                on_battery_only: false,
            }],
            on: Some(&Form {
                name: "immediateOn",
                sets: &[(&$command, Instance::Outlet, $on)],
                on_battery_only: false,
            }),
            reboot: Some(&Form {
                name: "immediateReboot",
                sets: &[(&$command, Instance::Outlet, $reboot)],
                on_battery_only: false,
            }),
            readback: Some(Readback {
                object: &$state,
                instance: Instance::Outlet,
                busy: &[$is_off],
                countdown: false,
            }),
        };
    };
}

// rPDU: on(1)/off(2) states; rPDU2: off(1)/on(2); commands numbered alike for these.
pdu_control!(APC_RPDU, APC_RPDU_COMMAND, APC_RPDU_STATE, 2, 1, 3, 2);
pdu_control!(APC_RPDU2, APC_RPDU2_COMMAND, APC_RPDU2_STATE, 2, 1, 3, 1);
pdu_control!(CPS_EPDU, CPS_EPDU_COMMAND, CPS_EPDU_STATE, 2, 1, 3, 2);

/// The object a PDU of `vendor` reads an outlet's state from.
pub fn pdu_state_object(vendor: PduVendor) -> &'static Object {
    let c = match vendor {
        PduVendor::ApcRpdu => &APC_RPDU,
        PduVendor::ApcRpdu2 => &APC_RPDU2,
        PduVendor::CyberPowerEpdu => &CPS_EPDU,
    };
    c.readback
        .as_ref()
        .expect("a PDU's control reads back")
        .object
}

/// Every control, for the tests that hold them against the MIBs.
pub static CONTROLS: [&Control; 9] = [
    &APC_GROUP,
    &APC_OUTPUT,
    &RFC1628_OUTPUT,
    &EATON_RECEPTACLE,
    &EATON_OUTPUT,
    &CPS_OUTPUT,
    &APC_RPDU,
    &APC_RPDU2,
    &CPS_EPDU,
];

/// The control of an outlet of `plug`'s kind (None: the vendor has none; the site
/// reader refuses such an outlet).
pub fn control(plug: Plug, site: &Site) -> Option<&'static Control> {
    match plug {
        Plug::Group { ups, .. } => match site.upses.get(ups.index())?.vendor {
            Vendor::Apc => Some(&APC_GROUP),
            Vendor::Eaton => Some(&EATON_RECEPTACLE),
            _ => None,
        },
        Plug::Output(ups) => match site.upses.get(ups.index())?.vendor {
            Vendor::Apc => Some(&APC_OUTPUT),
            Vendor::UpsMib => Some(&RFC1628_OUTPUT),
            Vendor::Eaton => Some(&EATON_OUTPUT),
            Vendor::CyberPower => Some(&CPS_OUTPUT),
            _ => None,
        },
        Plug::PduOutlet { pdu, .. } => Some(match site.pdus.get(pdu.index())?.vendor {
            PduVendor::ApcRpdu => &APC_RPDU,
            PduVendor::ApcRpdu2 => &APC_RPDU2,
            PduVendor::CyberPowerEpdu => &CPS_EPDU,
        }),
    }
}

/// What the power machine asks of the rest of the station when it decides: which UPSes
/// are on battery (a form the card takes only then; a PDU's mains), and which recorders
/// are running (heard from after they should have been down, or back): an outlet
/// feeding one is never cut, checked before every SET that cuts.
pub trait Facts {
    /// Whether UPS `u` is on battery.
    fn on_battery(&self, u: UpsId) -> bool;
    /// Whether recorder `r` is running.
    fn running(&self, r: RecorderId) -> bool;
}

/// `(on_battery, running)` as closures.
impl<B: Fn(UpsId) -> bool, R: Fn(RecorderId) -> bool> Facts for (B, R) {
    fn on_battery(&self, u: UpsId) -> bool {
        (self.0)(u)
    }
    fn running(&self, r: RecorderId) -> bool {
        (self.1)(r)
    }
}

/// An outlet of the site that trapgate may cut: its place in `Power`'s list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutletId(pub u32);

/// What trapgate knows of one outlet.
#[derive(Debug)]
struct Plan {
    /// Where it is (for the status page).
    plug: Plug,
    name: crate::engine::record::Text,
    /// Its card, asked with the write credential.
    card: Card,
    control: &'static Control,
    /// The outlet's number (0 for a whole UPS's output).
    index: u32,
    /// The recorders it feeds (all of them must be down before it is cut).
    members: Vec<RecorderId>,
    /// The UPS whose mains state matters (a PDU's: its recorders' UPS).
    ups: UpsId,
    /// Its requests, made once: what a SET or read writes and asks (no allocation per
    /// request).
    requests: Requests,
}

/// An outlet's requests, made when the site is read: the read-back's object, and for
/// each form of its control (cut forms, then on, then reboot) the objects and values it
/// writes and the text it is journaled as.
#[derive(Debug)]
struct Requests {
    readback: Option<[(OidBuf, i64); 1]>,
    forms: Vec<Written>,
}

impl Requests {
    fn new(control: &'static Control, index: u32) -> Requests {
        let at = |inst: Instance| inst.index(index);
        let forms = control
            .cut
            .iter()
            .chain(control.on)
            .chain(control.reboot)
            .map(|f| {
                let sets = f
                    .sets
                    .iter()
                    .map(|(obj, inst, v)| (obj.oid(at(*inst)), *v))
                    .collect();
                (f, sets, describe(f, index).into())
            })
            .collect();
        Requests {
            readback: control
                .readback
                .as_ref()
                .map(|rb| [(rb.object.oid(at(rb.instance)), 0)]),
            forms,
        }
    }

    /// Form `f`'s place among them.
    fn of(&self, f: &'static Form) -> Option<usize> {
        self.forms.iter().position(|(g, ..)| std::ptr::eq(*g, f))
    }
}

/// A form as an outlet's request writes it: the form, each object's instance and
/// value, and the text it is journaled as.
type Written = (
    &'static Form,
    Vec<(OidBuf, i64)>,
    crate::engine::record::Text,
);

/// What a stage's request is: a read of the pending state, or form `k` of `Requests`.
#[derive(Clone, Copy, Debug)]
enum Asks {
    Read,
    Form(usize),
    Nothing,
}

/// A request out: its id (request-id and msgID alike), its tries, when it is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Out {
    id: i32,
    tries: u8,
    retry_at: Timestamp,
    /// A v3 discovery probe, not the request itself.
    discovery: bool,
    /// A SET to send again once its back-off has passed (`retry_at`): nothing is out.
    held: bool,
}

/// Where an outlet stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Stage {
    /// Nothing under way.
    Idle,
    /// Every recorder on it is ordered down: cut at `at`.
    Due {
        /// When.
        at: Timestamp,
    },
    /// Reading its pending state before writing.
    Reading,
    /// A SET of form `form` out.
    Setting {
        /// Which of its control's forms.
        form: u8,
    },
    /// Reading back what the SET armed.
    Checking {
        /// The form that was taken.
        form: u8,
    },
    /// The answer to a SET of `form` was lost (`tries` sent): reading whether the card
    /// took it before anything is written again.
    Confirming {
        /// The form sent.
        form: u8,
        /// How many times it was sent.
        tries: u8,
    },
    /// The card has it: a cycle or countdown under way, or done.
    Armed,
    /// A PDU outlet off, waiting for mains to switch it on.
    Off,
    /// A PDU outlet being switched on.
    SwitchingOn,
    /// Not cut: it fed a running recorder, or every form was refused.
    NotCut,
    /// Cycled, or switched on again.
    Done,
}

impl Stage {
    /// Its name on the status page and in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Idle => "idle",
            Stage::Due { .. } => "due",
            Stage::Reading => "reading",
            Stage::Setting { .. } => "setting",
            Stage::Checking { .. } => "checking",
            Stage::Confirming { .. } => "confirming",
            Stage::Armed => "armed",
            Stage::Off => "off",
            Stage::SwitchingOn => "switching_on",
            Stage::NotCut => "not_cut",
            Stage::Done => "done",
        }
    }

    /// Every stage's name, in the order `/metrics` lists them.
    pub const NAMES: [&'static str; 11] = [
        "idle",
        "due",
        "reading",
        "setting",
        "checking",
        "confirming",
        "armed",
        "off",
        "switching_on",
        "not_cut",
        "done",
    ];
}

/// What the power machine has for the station.
#[derive(Clone, Debug, PartialEq)]
pub enum PowerOutput {
    /// Send these bytes (`Power::wire`) to `to` from the poll socket.
    Send {
        /// The outlet.
        outlet: OutletId,
        /// Where.
        to: SocketAddr,
        /// The bytes.
        bytes: Range<usize>,
    },
    /// Every recorder on the outlet is ordered down: it is cut at `at` (a decision).
    Committed {
        /// The outlet.
        outlet: OutletId,
        /// When.
        at: Timestamp,
    },
    /// A SET left (or, in a dry run, would have): the form and what it writes.
    Commanded {
        /// The outlet.
        outlet: OutletId,
        /// The form's name.
        form: &'static str,
        /// `object.instance = value` …, as the journal shows them.
        sets: crate::engine::record::Text,
        /// Which try.
        attempt: u8,
        /// Nothing was sent (a dry run).
        dry_run: bool,
    },
    /// The card answered a SET: error-status 0, or why not.
    Answered {
        /// The outlet.
        outlet: OutletId,
        /// The form's name.
        form: &'static str,
        /// RFC 3416's error-status (0: taken).
        status: i32,
    },
    /// The card's state, read before writing or after.
    Read {
        /// The outlet.
        outlet: OutletId,
        /// The object read.
        object: &'static Object,
        /// Its instance (0 for a scalar).
        index: u32,
        /// Its value.
        value: i64,
        /// A command is pending or under way.
        busy: bool,
    },
    /// The outlet's card reported on it by a trap of its own (`card_reported`).
    Reported {
        /// The outlet.
        outlet: OutletId,
        /// The trap's name.
        trap: crate::engine::record::Text,
        /// Where the outlet stands after it.
        stage: Stage,
        /// Whether trapgate's cut was under way (or done).
        ours: bool,
        /// Turned off by the card while trapgate had not cut it: the recorders on it
        /// that were not told to shut down.
        untold: Vec<RecorderId>,
        /// The same: those told, but still within their shutdown time (they lost power
        /// before they could finish).
        early: Vec<RecorderId>,
    },
    /// The outlet is not cut: why, and what the operator must do.
    NotCut {
        /// The outlet.
        outlet: OutletId,
        /// The sentence.
        why: String,
    },
    /// A Wake-on-LAN magic packet to send (`Power::wire`).
    Wake {
        /// The recorder.
        recorder: RecorderId,
        /// Which packet.
        attempt: u32,
        /// Where.
        to: SocketAddr,
        /// The bytes.
        bytes: Range<usize>,
    },
}

/// Tries per form (the first and two more), as the poller's.
pub const TRIES: u8 = 3;
/// How long a request waits for its answer.
pub const TRY_TIMEOUT_S: u32 = 2;

/// Magic packets sent to a recorder, at most; their spacing doubles from the first's.
pub const WAKES: u32 = 6;
/// The first wait between magic packets.
pub const WAKE_EVERY_S: u32 = 10;
/// How long after a recorder is down its outlet's cycle has to switch it on before it
/// is woken as well.
pub const WAKE_AFTER_CYCLE_S: u32 = 120;

/// The card's reports of an outlet taken a minute, at most (a cycle sends three: the
/// command, off, on).
pub const REPORTS_A_MINUTE: u8 = 8;

/// What was taken of a card's reports of one outlet.
#[derive(Clone, Debug, Default)]
struct Reports {
    last: Option<(crate::classify::Event, crate::engine::record::Text)>,
    taken: u8,
    since: Timestamp,
}

/// A recorder to wake: its next packet's time and number, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Waking {
    next: Timestamp,
    sent: u32,
    until: Timestamp,
}

/// When the first of `waking` is due a packet.
fn earliest_wake(waking: &[Option<Waking>]) -> Option<Timestamp> {
    waking.iter().flatten().map(|w| w.next).min()
}

/// What a checkpoint keeps of the power machine.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PowerState {
    stages: Vec<Stage>,
    waking: Vec<Option<Waking>>,
    ordered: Vec<Option<Timestamp>>,
    settled: Vec<Timestamp>,
}

/// The power machine of a whole site.
pub struct Power {
    plans: Vec<Plan>,
    stages: Vec<Stage>,
    out_req: Vec<Option<Out>>,
    /// Every outlet each recorder is on.
    of_recorder: Vec<Vec<OutletId>>,
    wol: Vec<Option<crate::engine::config::Wol>>,
    /// Each recorder's name, for the alerts.
    recorder_names: Vec<crate::engine::record::Text>,
    boot: Vec<crate::engine::config::Secs>,
    /// Each recorder's shutdown time (a card's own cut within it is said).
    shutdown_time: Vec<crate::engine::config::Secs>,
    /// Per outlet: the card's last report taken (its event and trap), how many were
    /// taken in the minute since the first of them, and when that minute began.
    reports: Vec<Reports>,
    waking: Vec<Option<Waking>>,
    /// No recorder is due a Wake-on-LAN packet before this (None: none is waking): a
    /// lower bound, exact after each timeout, so that neither `poll_timeout` nor
    /// `handle_timeout` reads every recorder's entry while none is due.
    wake_at: Option<Timestamp>,
    /// Each recorder's order, as the station last gave it.
    ordered: Vec<Option<Timestamp>>,
    /// Per outlet: when it was last committed; orders before it belong to a cycle done.
    settled: Vec<Timestamp>,
    /// Outlets committed since the last timeout, and when: their `Committed` outputs
    /// (the `CycleOutlet` decisions) wait for the next turn, so that a fan-out's orders
    /// are journaled and leave without them.
    announce: Vec<OutletId>,
    announce_at: Option<Timestamp>,
    ids: Box<dyn RequestIds>,
    dry_run: bool,
    out: VecDeque<PowerOutput>,
    wire: Vec<u8>,
    scratch: Vec<u8>,
    /// SETs sent, every try counted; answered with no error; refused.
    pub sets: u64,
    /// SETs answered with an error, or left unanswered.
    pub refused: u64,
}

impl core::fmt::Debug for Power {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Power")
            .field("outlets", &self.plans.len())
            .field("sets", &self.sets)
            .finish()
    }
}

impl Power {
    /// The outlets of `site` that trapgate may cut (every distinct `outlet` of its
    /// recorders), with request ids from `ids`.
    pub fn new(site: &Site, ids: Box<dyn RequestIds>, dry_run: bool) -> Power {
        let mut plugs: Vec<Plug> = site.recorders.iter().filter_map(|r| r.outlet).collect();
        plugs.sort();
        plugs.dedup();
        let mut plans = Vec::with_capacity(plugs.len());
        for plug in plugs {
            let Some(control) = control(plug, site) else {
                continue;
            };
            let (name, to, index, write, ups) = match plug {
                Plug::Group { ups, group } => {
                    let u = &site.upses[ups];
                    (
                        site.plug_name(plug),
                        SocketAddr::new(u.address, u.port),
                        group,
                        u.write.as_ref(),
                        ups,
                    )
                }
                Plug::Output(ups) => {
                    let u = &site.upses[ups];
                    (
                        site.plug_name(plug),
                        SocketAddr::new(u.address, u.port),
                        0,
                        u.write.as_ref(),
                        ups,
                    )
                }
                Plug::PduOutlet { pdu, outlet } => {
                    let p = &site.pdus[pdu];
                    let ups = site
                        .recorders
                        .iter()
                        .find(|r| r.outlet == Some(plug))
                        .map_or(UpsId(0), |r| r.ups);
                    (
                        site.plug_name(plug),
                        SocketAddr::new(p.address, p.port),
                        outlet,
                        p.write.as_ref(),
                        ups,
                    )
                }
            };
            let Some(credential) = write.and_then(|w| Credential::of(w, site)) else {
                continue;
            };
            // A whole output feeds every recorder it alone feeds, whatever outlet of it
            // each is on.
            let members = RecorderId::enumerate(&site.recorders)
                .filter(|(_, r)| {
                    r.outlet == Some(plug) || matches!(plug, Plug::Output(u) if r.feeds == [u])
                })
                .map(|(id, _)| id)
                .collect();
            plans.push(Plan {
                plug,
                name: name.into(),
                card: Card::new(to, credential),
                control,
                index,
                members,
                ups,
                requests: Requests::new(control, index),
            });
        }
        let mut of_recorder = vec![Vec::new(); site.recorders.len()];
        for (i, p) in plans.iter().enumerate() {
            for r in &p.members {
                of_recorder[r.index()].push(OutletId(i as u32));
            }
        }
        let n = plans.len();
        Power {
            plans,
            stages: vec![Stage::Idle; n],
            out_req: vec![None; n],
            of_recorder,
            wol: site.recorders.iter().map(|r| r.wol).collect(),
            recorder_names: site
                .recorders
                .iter()
                .map(|r| r.name.as_str().into())
                .collect(),
            boot: site.recorders.iter().map(|r| r.boot_time).collect(),
            shutdown_time: site.recorders.iter().map(|r| r.shutdown_time).collect(),
            reports: vec![Reports::default(); n],
            waking: vec![None; site.recorders.len()],
            wake_at: None,
            ordered: vec![None; site.recorders.len()],
            settled: vec![Timestamp(0); n],
            announce: Vec::with_capacity(n),
            announce_at: None,
            ids,
            dry_run,
            out: VecDeque::new(),
            wire: Vec::new(),
            scratch: Vec::new(),
            sets: 0,
            refused: 0,
        }
    }

    /// The outlets, in order.
    pub fn outlets(&self) -> impl Iterator<Item = (OutletId, &str, Stage)> + '_ {
        self.plans
            .iter()
            .zip(&self.stages)
            .enumerate()
            .map(|(i, (p, s))| (OutletId(i as u32), &*p.name, *s))
    }

    /// The outlet named `name` (as records name it).
    pub fn outlet_named(&self, name: &str) -> Option<OutletId> {
        self.plans
            .iter()
            .position(|p| &*p.name == name)
            .map(|i| OutletId(i as u32))
    }

    /// Outlet `o`'s name.
    pub fn name(&self, o: OutletId) -> &str {
        &self.plans[o.0 as usize].name
    }

    /// Its name as records hold it (shared, not copied).
    pub fn name_text(&self, o: OutletId) -> crate::engine::record::Text {
        self.plans[o.0 as usize].name.clone()
    }

    /// Where outlet `o` stands.
    pub fn stage(&self, o: OutletId) -> Stage {
        self.stages[o.0 as usize]
    }

    /// The bytes of a `Send` or `Wake`.
    pub fn wire(&self, bytes: Range<usize>) -> &[u8] {
        &self.wire[bytes]
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<PowerOutput> {
        let o = self.out.pop_front();
        if o.is_none() {
            // Every output taken (and its bytes read by the caller before it asked
            // again): the buffer starts over, at the high-water mark of its capacity.
            self.wire.clear();
        }
        o
    }

    /// What a checkpoint keeps.
    pub fn state(&self) -> PowerState {
        PowerState {
            stages: self.stages.clone(),
            waking: self.waking.clone(),
            ordered: self.ordered.clone(),
            settled: self.settled.clone(),
        }
    }

    /// A checkpoint's state back (the same site: the same lengths, or nothing). An
    /// outlet caught mid-request reads the card again before writing.
    pub fn set_state(&mut self, s: PowerState) {
        if s.stages.len() == self.stages.len()
            && s.waking.len() == self.waking.len()
            && s.ordered.len() == self.ordered.len()
            && s.settled.len() == self.settled.len()
        {
            self.ordered = s.ordered;
            self.settled = s.settled;
            self.stages = s
                .stages
                .into_iter()
                .map(|st| match st {
                    Stage::Reading
                    | Stage::Setting { .. }
                    | Stage::Checking { .. }
                    | Stage::Confirming { .. } => Stage::Due { at: Timestamp(0) },
                    Stage::SwitchingOn => Stage::Off,
                    other => other,
                })
                .collect();
            self.waking = s.waking;
            self.wake_at = earliest_wake(&self.waking);
        }
    }

    /// The earliest time `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.announce_at.is_some() {
            return self.announce_at;
        }
        let stages = self.stages.iter().filter_map(|s| match s {
            Stage::Due { at } => Some(*at),
            _ => None,
        });
        let requests = self.out_req.iter().flatten().map(|o| o.retry_at);
        stages.chain(requests).chain(self.wake_at).min()
    }

    /// Recorder `r` was ordered down at `at` (its first order of an outage; `shutdown`
    /// gives each recorder's shutdown time): an outlet whose recorders are all ordered
    /// since it last cycled is committed, to be cut once the last of them has had its
    /// shutdown time. An outlet that had cycled in an outage before starts again.
    pub fn recorder_ordered(
        &mut self,
        now: Timestamp,
        r: RecorderId,
        at: Timestamp,
        shutdown: &dyn Fn(RecorderId) -> crate::engine::config::Secs,
    ) {
        let Some(slot) = self.ordered.get_mut(r.index()) else {
            return;
        };
        *slot = Some(at);
        for k in 0..self.of_recorder[r.index()].len() {
            let i = self.of_recorder[r.index()][k].0 as usize;
            let o = OutletId(i as u32);
            if matches!(self.stages[i], Stage::Armed | Stage::Done | Stage::NotCut)
                && at > self.settled[i]
            {
                self.stages[i] = Stage::Idle;
            }
            if self.stages[i] == Stage::Idle {
                self.commit_if_all(now, o, shutdown);
            }
        }
    }

    /// Idle outlet `o` is committed if every recorder on it has been ordered since it
    /// last cycled: due once the last of them has had its shutdown time.
    fn commit_if_all(
        &mut self,
        now: Timestamp,
        o: OutletId,
        shutdown: &dyn Fn(RecorderId) -> crate::engine::config::Secs,
    ) {
        let i = o.0 as usize;
        let since = self.settled[i];
        let mut due = Timestamp(0);
        let all = self.plans[i].members.iter().all(|m| {
            match self.ordered[m.index()].filter(|t| *t > since) {
                Some(t) => {
                    due = due.max(t.plus_secs(shutdown(*m).0));
                    true
                }
                None => false,
            }
        });
        if all {
            let at = due.max(now);
            self.stages[i] = Stage::Due { at };
            // A new cycle: the card's reports of the last one are not repeats.
            self.reports[i] = Reports::default();
            self.settled[i] = now;
            self.announce.push(o);
            self.announce_at.get_or_insert(now);
        }
    }

    /// After a journal is read: an outlet whose recorders it shows all ordered, but not
    /// its commitment (the gateway stopped in the moment between them), is committed
    /// now.
    pub fn recommit(
        &mut self,
        now: Timestamp,
        shutdown: &dyn Fn(RecorderId) -> crate::engine::config::Secs,
    ) {
        for i in 0..self.plans.len() {
            if self.stages[i] == Stage::Idle {
                self.commit_if_all(now, OutletId(i as u32), shutdown);
            }
        }
    }

    /// A journal's `CycleOutlet` fed back: the outlet is due at `at` (it reads the card
    /// before writing anything).
    pub fn restore_committed(&mut self, now: Timestamp, o: OutletId, at: Timestamp) {
        let i = o.0 as usize;
        if let Some(s) = self.stages.get_mut(i) {
            *s = Stage::Due { at };
            self.settled[i] = now;
            // Its commitment, made again as the journal's orders were fed back, is the
            // journal's: not announced a second time.
            self.announce.retain(|a| *a != o);
            if self.announce.is_empty() {
                self.announce_at = None;
            }
        }
    }

    /// A journal's order of recorder `r` at `at` fed back.
    pub fn restore_ordered(&mut self, r: RecorderId, at: Timestamp) {
        if let Some(slot) = self.ordered.get_mut(r.index()) {
            *slot = Some(at);
        }
    }

    /// A journal's record that the card took outlet `o`'s command (or, for a PDU,
    /// switched it off or on): it is not written again.
    pub fn restore_taken(&mut self, o: OutletId, pdu_on: bool) {
        if let Some(s) = self.stages.get_mut(o.0 as usize) {
            *s = match (self.plans[o.0 as usize].control.on.is_some(), pdu_on) {
                (true, false) => Stage::Off,
                (true, true) => Stage::Done,
                _ => Stage::Armed,
            };
        }
    }

    /// A journal's record that outlet `o` was not cut.
    pub fn restore_not_cut(&mut self, o: OutletId) {
        if let Some(s) = self.stages.get_mut(o.0 as usize) {
            *s = Stage::NotCut;
        }
    }

    /// Mains power is back on UPS `u` at `now`: its PDU outlets that are off are
    /// switched on; its recorders with Wake-on-LAN that were ordered down are woken,
    /// until they are heard from or their boot time passes.
    pub fn power_back(
        &mut self,
        now: Timestamp,
        u: UpsId,
        standing: &[Standing],
        ups_of: &dyn Fn(RecorderId) -> UpsId,
    ) {
        for i in 0..self.plans.len() {
            if self.plans[i].ups == u && self.stages[i] == Stage::Off {
                self.stages[i] = Stage::SwitchingOn;
                self.start(now, OutletId(i as u32));
            }
        }
        for r in RecorderId::all(self.wol.len()) {
            if self.wol[r].is_none() || ups_of(r) != u {
                continue;
            }
            // From when it is down (no use waking what is still halting), and, where
            // its outlet is cycled, once the cycle has had its time to switch it on.
            let down = match standing.get(r.index()) {
                Some(Standing::Returning { from, .. }) => *from,
                Some(Standing::NotBack) => now,
                _ => continue,
            };
            let cycled = self.of_recorder[r.index()].iter().any(|o| {
                matches!(
                    self.stages[o.0 as usize],
                    Stage::Due { .. }
                        | Stage::Reading
                        | Stage::Setting { .. }
                        | Stage::Checking { .. }
                        | Stage::Confirming { .. }
                        | Stage::Armed
                )
            });
            let start = down
                .max(now)
                .plus_secs(if cycled { WAKE_AFTER_CYCLE_S } else { 0 });
            self.waking[r.index()] = Some(Waking {
                next: start,
                sent: 0,
                until: start.plus_secs(self.boot[r].0),
            });
            self.wake_at = Some(self.wake_at.map_or(start, |t| t.min(start)));
        }
    }

    /// The card of UPS `u` reported on an outlet of its own by a trap (`rule`): outlet
    /// group `index` turned off or a command taken (`OutletOff`), turned on
    /// (`OutletOn`); for its whole output, a shutdown it announced (`ShutdownPending`,
    /// `UpsOff`), its output on again (`OutletOn` without a group: APC `upsTurnedOn`). Recorded against trapgate's outlet, if it is one: with a cut under
    /// way, its confirmation (the read-back still decides: a trap carries no request
    /// id); a group on again after its cycle is done; a group turned off that trapgate
    /// had not cut, with recorders on it never told to shut down or told less than their
    /// shutdown time before `now`, says which. False if the report concerns none of
    /// trapgate's outlets, repeats the last one of its outlet (the same trap), or is past
    /// the outlet's `REPORTS_A_MINUTE`: a card repeating its trap is recorded once, a
    /// flood of them a few times a minute.
    pub fn card_reported(
        &mut self,
        now: Timestamp,
        u: UpsId,
        index: Option<u32>,
        event: crate::classify::Event,
        rule: &str,
    ) -> bool {
        use crate::classify::Event;
        let plug = match (event, index) {
            (Event::OutletOff | Event::OutletOn, Some(group)) => Plug::Group { ups: u, group },
            (Event::ShutdownPending | Event::UpsOff, _) | (Event::OutletOn, None) => {
                Plug::Output(u)
            }
            _ => return false,
        };
        let Some(i) = self.plans.iter().position(|p| p.plug == plug) else {
            return false;
        };
        // The same report again (a card that repeats its trap), or past the budget of a
        // minute (a forger with its community, alternating): nothing more to record.
        let seen = &mut self.reports[i];
        if seen
            .last
            .as_ref()
            .is_some_and(|(e, r)| *e == event && **r == *rule)
        {
            return false;
        }
        if now >= seen.since.plus_secs(60) {
            (seen.since, seen.taken) = (now, 0);
        }
        if seen.taken >= REPORTS_A_MINUTE {
            return false;
        }
        let trap: crate::engine::record::Text = rule.into();
        seen.taken += 1;
        seen.last = Some((event, trap.clone()));
        let on = event == Event::OutletOn;
        let stage = self.stages[i];
        // A SET out, or taken: trapgate's cut.
        let ours = !matches!(
            stage,
            Stage::Idle | Stage::Due { .. } | Stage::Reading | Stage::NotCut
        );
        if on && stage == Stage::Armed {
            self.stages[i] = Stage::Done;
        }
        let (mut untold, mut early) = (Vec::new(), Vec::new());
        if !on && !ours {
            for &r in &self.plans[i].members {
                match self.ordered[r.index()] {
                    None => untold.push(r),
                    Some(at) if at.plus_secs(self.shutdown_time[r.index()].0) > now => {
                        early.push(r)
                    }
                    Some(_) => {}
                }
            }
        }
        self.out.push_back(PowerOutput::Reported {
            outlet: OutletId(i as u32),
            trap,
            stage: self.stages[i],
            ours,
            untold,
            early,
        });
        true
    }

    /// Recorder `r` was heard from after power returned (`Back`): no more waking, and
    /// an armed outlet of it has cycled (it has power again): done.
    pub fn recorder_back(&mut self, r: RecorderId) {
        if let Some(w) = self.waking.get_mut(r.index()) {
            *w = None;
        }
        for o in self.of_recorder.get(r.index()).into_iter().flatten() {
            let stage = &mut self.stages[o.0 as usize];
            if *stage == Stage::Armed {
                *stage = Stage::Done;
            }
        }
    }

    /// Fires what is due at `now`: outlets to cut (if none of their recorders runs:
    /// `running` says which do), retries, magic packets. `on_battery` says which UPSes
    /// are on battery.
    pub fn handle_timeout(&mut self, now: Timestamp, facts: &dyn Facts) {
        self.announce_at = None;
        for k in 0..self.announce.len() {
            let o = self.announce[k];
            if let Stage::Due { at } = self.stages[o.0 as usize] {
                self.out.push_back(PowerOutput::Committed { outlet: o, at });
            }
        }
        self.announce.clear();
        for i in 0..self.plans.len() {
            let o = OutletId(i as u32);
            if let Stage::Due { at } = self.stages[i]
                && at <= now
            {
                if self.feeds_a_running_recorder(o, facts) {
                    continue;
                }
                // Read before write, where the card can say.
                self.stages[i] = if self.plans[i].control.readback.is_some() {
                    Stage::Reading
                } else {
                    self.first_form(i, facts)
                };
                self.go(now, o, facts);
                continue;
            }
            if let Some(req) = self.out_req[i]
                && req.retry_at <= now
            {
                // A SET held for its back-off goes again (while no recorder on it runs).
                if req.held {
                    if self.feeds_a_running_recorder(o, facts) {
                        continue;
                    }
                    self.out_req[i] = Some(Out {
                        held: false,
                        retry_at: now.plus_secs(TRY_TIMEOUT_S),
                        ..req
                    });
                    self.send(now, o);
                    continue;
                }
                // A SET unanswered: whether the card took it is read before it is sent
                // again (a lost answer is not a refusal; a countdown is never re-armed).
                if let Stage::Setting { form } = self.stages[i]
                    && !req.discovery
                    && self.plans[i].control.readback.is_some()
                {
                    self.stages[i] = Stage::Confirming {
                        form,
                        tries: req.tries,
                    };
                    self.start(now, o);
                    continue;
                }
                if req.tries < TRIES {
                    if matches!(self.stages[i], Stage::Setting { .. })
                        && self.feeds_a_running_recorder(o, facts)
                    {
                        continue;
                    }
                    self.out_req[i] = Some(Out {
                        tries: req.tries + 1,
                        retry_at: now.plus_secs(TRY_TIMEOUT_S),
                        ..req
                    });
                    self.send(now, o);
                } else {
                    // Silence: as a refusal, the next form (or the read skipped).
                    self.out_req[i] = None;
                    self.unanswered(now, o, facts);
                }
            }
        }
        if self.wake_at.is_none_or(|t| t > now) {
            return;
        }
        for r in RecorderId::all(self.waking.len()) {
            let Some(w) = self.waking[r.index()] else {
                continue;
            };
            if w.next > now {
                continue;
            }
            if w.sent >= WAKES || now >= w.until {
                self.waking[r.index()] = None;
                continue;
            }
            let Some(wol) = self.wol[r.index()] else {
                continue;
            };
            let start = self.wire.len();
            magic_packet(wol.mac, &mut self.wire);
            let sent = w.sent + 1;
            self.out.push_back(PowerOutput::Wake {
                recorder: r,
                attempt: sent,
                to: wol.to,
                bytes: start..self.wire.len(),
            });
            self.waking[r.index()] = Some(Waking {
                next: now.plus_secs(WAKE_EVERY_S << (sent - 1).min(8)),
                sent,
                until: w.until,
            });
        }
        self.wake_at = earliest_wake(&self.waking);
    }

    /// The first form the card may take now (on battery or not).
    fn first_form(&self, i: usize, facts: &dyn Facts) -> Stage {
        self.form_from(i, 0, facts)
            .map_or(Stage::NotCut, |form| Stage::Setting { form })
    }

    /// The first form from `from` on that the card may take now.
    fn form_from(&self, i: usize, from: u8, facts: &dyn Facts) -> Option<u8> {
        let p = &self.plans[i];
        // A PDU whose recorders' mains is back already: off and on at once.
        if p.control.on.is_some() && !facts.on_battery(p.ups) {
            return (from == 0).then_some(REBOOT);
        }
        p.control
            .cut
            .iter()
            .enumerate()
            .skip(usize::from(from))
            .find(|(_, f)| !f.on_battery_only || facts.on_battery(p.ups))
            .map(|(k, _)| k as u8)
    }

    /// The form of stage `form` (its control's cut form, or a PDU's `on` or reboot).
    fn form(&self, i: usize, form: u8) -> Option<&'static Form> {
        let c = self.plans[i].control;
        match form {
            ON => c.on,
            REBOOT => c.reboot,
            k => c.cut.get(usize::from(k)),
        }
    }

    /// Where outlet `i` stands once its card has the cut: a PDU's outlet is off (until
    /// mains), a UPS's cycle is armed.
    fn cut(&self, i: usize) -> Stage {
        if self.plans[i].control.on.is_some() {
            Stage::Off
        } else {
            Stage::Armed
        }
    }

    /// Whether outlet `o` feeds a running recorder: if so it is left as it is
    /// (`NotCut`, said with the recorder's name), its request dropped.
    fn feeds_a_running_recorder(&mut self, o: OutletId, facts: &dyn Facts) -> bool {
        let i = o.0 as usize;
        let Some(r) = self.plans[i]
            .members
            .iter()
            .copied()
            .find(|r| facts.running(*r))
        else {
            return false;
        };
        self.stages[i] = Stage::NotCut;
        self.out_req[i] = None;
        self.out.push_back(PowerOutput::NotCut {
            outlet: o,
            why: format!(
                "outlet {} is not cut: recorder {} on it is running (heard from after it should have been down)",
                self.plans[i].name, self.recorder_names[r.index()]
            ),
        });
        true
    }

    /// Starts outlet `o`'s stage: a SET that cuts goes only while no recorder on it
    /// runs.
    fn go(&mut self, now: Timestamp, o: OutletId, facts: &dyn Facts) {
        if matches!(self.stages[o.0 as usize], Stage::Setting { .. })
            && self.feeds_a_running_recorder(o, facts)
        {
            return;
        }
        self.start(now, o);
    }

    /// Sends outlet `o`'s request of its stage, a new one under a fresh id.
    fn start(&mut self, now: Timestamp, o: OutletId) {
        let i = o.0 as usize;
        if matches!(self.stages[i], Stage::NotCut) {
            self.out.push_back(PowerOutput::NotCut {
                outlet: o,
                why: format!(
                    "outlet {}: no form of its card's control may be used now",
                    self.plans[i].name
                ),
            });
            return;
        }
        let discovery = self.plans[i].card.discovering();
        self.out_req[i] = Some(Out {
            id: self.ids.next_id(),
            tries: 1,
            retry_at: now.plus_secs(TRY_TIMEOUT_S),
            discovery,
            held: false,
        });
        self.send(now, o);
    }

    /// What outlet `i`'s stage asks: a SET's form, or the read-back.
    fn request(&self, i: usize) -> (PduType, Asks) {
        let p = &self.plans[i];
        let form = |f: Option<&'static Form>| {
            f.and_then(|f| p.requests.of(f))
                .map_or(Asks::Nothing, Asks::Form)
        };
        match self.stages[i] {
            Stage::Reading | Stage::Checking { .. } | Stage::Confirming { .. } => {
                (PduType::GET_REQUEST, Asks::Read)
            }
            Stage::Setting { form: k } => (PduType::SET_REQUEST, form(self.form(i, k))),
            Stage::SwitchingOn => (PduType::SET_REQUEST, form(p.control.on)),
            _ => (PduType::GET_REQUEST, Asks::Nothing),
        }
    }

    fn send(&mut self, now: Timestamp, o: OutletId) {
        let i = o.0 as usize;
        let Some(req) = self.out_req[i] else {
            return;
        };
        let (kind, asks) = self.request(i);
        if let Asks::Form(k) = asks
            && !req.discovery
        {
            let (f, _, text) = &self.plans[i].requests.forms[k];
            let f: &'static Form = f;
            self.out.push_back(PowerOutput::Commanded {
                outlet: o,
                form: f.name,
                sets: text.clone(),
                attempt: req.tries,
                dry_run: self.dry_run,
            });
            if self.dry_run {
                // Recorded, never sent: the card is taken to have taken it.
                self.out_req[i] = None;
                self.taken(now, o, f);
                return;
            }
            self.sets += 1;
        } else if self.dry_run {
            // A dry run reads nothing either: it goes on as if nothing were pending.
            self.out_req[i] = None;
            self.after_read(now, o, false, &(|_| true, |_| false));
            return;
        }
        let start = self.wire.len();
        let Plan { card, requests, .. } = &mut self.plans[i];
        let bindings: &[(OidBuf, i64)] = match asks {
            Asks::Read => requests.readback.as_ref().map_or(&[], |r| &r[..]),
            Asks::Form(k) => &requests.forms[k].1,
            Asks::Nothing => &[],
        };
        // At most three bindings (RFC 1628's), in place: nothing allocated per request.
        let Some(first) = bindings.first() else {
            return;
        };
        let mut vbs = [VarBind {
            name: first.0.as_oid(),
            value: Value::Null,
        }; 3];
        let n = bindings.len().min(vbs.len());
        for (vb, (oid, v)) in vbs.iter_mut().zip(bindings) {
            *vb = VarBind {
                name: oid.as_oid(),
                value: if kind == PduType::SET_REQUEST {
                    Value::Integer(*v)
                } else {
                    Value::Null
                },
            };
        }
        card.encode(
            now,
            kind,
            req.id,
            req.discovery,
            &vbs[..n],
            &mut self.scratch,
            &mut self.wire,
        );
        self.out.push_back(PowerOutput::Send {
            outlet: o,
            to: card.to,
            bytes: start..self.wire.len(),
        });
    }

    /// Whether a datagram from `from` with request id (or msgID) `id` answers one of
    /// the outlets' requests.
    pub fn expects(&self, from: SocketAddr, id: i32) -> bool {
        self.plans
            .iter()
            .zip(&self.out_req)
            .any(|(p, r)| p.card.to == from && r.is_some_and(|r| r.id == id && !r.held))
    }

    /// An answer from `from` on the poll socket, its request id (or msgID) `id`
    /// (`Card::id_of`), opened here: believed only from the outlet's card, to its
    /// request's id, with its community or user. `on_battery` says which UPSes are on battery (for the next form).
    pub fn handle_answer(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        id: i32,
        raw: &[u8],
        arena: &Bump,
        facts: &dyn Facts,
    ) -> Result<OutletId, crate::engine::trust::Refusal> {
        use crate::engine::trust::Refusal;
        let Some(i) = self
            .plans
            .iter()
            .zip(&self.out_req)
            .position(|(p, r)| p.card.to == from && r.is_some_and(|r| r.id == id && !r.held))
        else {
            return Err(Refusal::AnswerUnknownRequest);
        };
        let o = OutletId(i as u32);
        let req = self.out_req[i].expect("matched above");
        let (status, values) = match self.plans[i]
            .card
            .open(now, raw, arena, id, req.discovery)?
        {
            Opened::Discovered => {
                self.out_req[i] = Some(Out {
                    id: self.ids.next_id(),
                    tries: 1,
                    retry_at: now.plus_secs(TRY_TIMEOUT_S),
                    discovery: false,
                    held: false,
                });
                self.send(now, o);
                return Ok(o);
            }
            Opened::AskAgain => {
                self.send(now, o);
                return Ok(o);
            }
            Opened::Answer(r) => (r.error_status, first_integer(r.varbinds)),
        };
        self.answered(now, o, status, values, facts);
        Ok(o)
    }

    /// A card's answer seen on the wire, answering a request seen there (a replay):
    /// it counts for the outlet of that card whose request under way asks the object
    /// it names (the pending state while reading, the form's first object while
    /// setting), as trapgate's own answer would. `card` is where it came from.
    pub fn handle_wire_answer(
        &mut self,
        now: Timestamp,
        card: SocketAddr,
        community: &[u8],
        answer: &crate::wire::RequestPdu<'_>,
        facts: &dyn Facts,
    ) -> Option<OutletId> {
        let first = answer.varbinds.first()?;
        let i = (0..self.plans.len()).find(|&i| {
            self.plans[i].card.to == card
                && self.plans[i].card.asked_with(community)
                && self.out_req[i].is_some_and(|r| !r.held)
                && self
                    .asks(i)
                    .is_some_and(|oid| oid.as_bytes() == first.name.as_bytes())
        })?;
        let o = OutletId(i as u32);
        let values = first_integer(answer.varbinds);
        self.answered(now, o, answer.error_status, values, facts);
        Some(o)
    }

    /// The object the request under way of outlet `i` asks first (as made once in its
    /// `Requests`).
    fn asks(&self, i: usize) -> Option<&OidBuf> {
        let requests = &self.plans[i].requests;
        match self.request(i).1 {
            Asks::Read => requests.readback.as_ref().map(|r| &r[0].0),
            Asks::Form(k) => requests.forms[k].1.first().map(|(oid, _)| oid),
            Asks::Nothing => None,
        }
    }

    /// The card answered outlet `o`'s request under way: `status`, and the integers
    /// of its bindings.
    fn answered(
        &mut self,
        now: Timestamp,
        o: OutletId,
        status: i32,
        value: Option<i64>,
        facts: &dyn Facts,
    ) {
        let i = o.0 as usize;
        let tries = self.out_req[i].map_or(TRIES, |r| r.tries);
        self.out_req[i] = None;
        match self.stages[i] {
            Stage::Reading | Stage::Checking { .. } | Stage::Confirming { .. } => {
                let rb = self.plans[i]
                    .control
                    .readback
                    .as_ref()
                    .expect("a stage that reads has a read-back");
                let value = value.filter(|_| status == 0);
                let busy = value.is_some_and(|v| {
                    if rb.countdown {
                        v >= 0
                    } else {
                        rb.busy.contains(&v)
                    }
                });
                if let Some(v) = value {
                    self.out.push_back(PowerOutput::Read {
                        outlet: o,
                        object: rb.object,
                        index: rb.instance.index(self.plans[i].index),
                        value: v,
                        busy,
                    });
                }
                self.after_read(now, o, busy, facts);
            }
            Stage::Setting { .. } | Stage::SwitchingOn => {
                let f = match self.stages[i] {
                    Stage::Setting { form } => self.form(i, form).expect("a stage's form exists"),
                    _ => self.plans[i].control.on.expect("a PDU's control has `on`"),
                };
                self.out.push_back(PowerOutput::Answered {
                    outlet: o,
                    form: f.name,
                    status,
                });
                if status == 0 {
                    self.taken(now, o, f);
                } else {
                    // Refused: the same SET again after its back-off, then the next form.
                    self.refused += 1;
                    if tries < TRIES {
                        self.hold(now, i, tries);
                    } else {
                        self.next_form(now, o, facts);
                    }
                }
            }
            _ => {}
        }
    }

    /// What the card's state said: busy (nothing is written: a countdown already runs)
    /// or not (the SET goes, or, after one, it is armed all the same).
    fn after_read(&mut self, now: Timestamp, o: OutletId, busy: bool, facts: &dyn Facts) {
        let i = o.0 as usize;
        match self.stages[i] {
            Stage::Reading if busy => {
                self.stages[i] = self.cut(i);
            }
            Stage::Reading => {
                self.stages[i] = self.first_form(i, facts);
                self.go(now, o, facts);
            }
            Stage::Checking { .. } => {
                self.stages[i] = self.cut(i);
            }
            // It took the SET whose answer was lost.
            Stage::Confirming { form, .. } if busy => {
                self.stages[i] = if form == REBOOT {
                    Stage::Done
                } else {
                    self.cut(i)
                };
            }
            // It did not: the same SET once more, or, after every try, the next form.
            Stage::Confirming { form, tries } => {
                self.stages[i] = Stage::Setting { form };
                if self.feeds_a_running_recorder(o, facts) {
                    return;
                }
                if tries < TRIES {
                    self.hold(now, i, tries);
                } else {
                    self.unanswered(now, o, facts);
                }
            }
            _ => {}
        }
    }

    /// Outlet `i`'s SET, sent `tries` times, goes again after its back-off (2 s, then
    /// 4 s), under a new request id.
    fn hold(&mut self, now: Timestamp, i: usize, tries: u8) {
        self.out_req[i] = Some(Out {
            id: self.ids.next_id(),
            tries: tries + 1,
            retry_at: now.plus_secs(TRY_TIMEOUT_S << tries.saturating_sub(1).min(3)),
            discovery: false,
            held: true,
        });
    }

    /// The card took form `f`: its state is read back, or it is armed.
    fn taken(&mut self, now: Timestamp, o: OutletId, f: &'static Form) {
        let i = o.0 as usize;
        let c = self.plans[i].control;
        if self.stages[i] == Stage::SwitchingOn || c.reboot.is_some_and(|r| std::ptr::eq(r, f)) {
            self.stages[i] = Stage::Done;
            return;
        }
        let form = match self.stages[i] {
            Stage::Setting { form } => form,
            _ => 0,
        };
        if c.readback.is_some() && !self.dry_run {
            self.stages[i] = Stage::Checking { form };
            self.start(now, o);
        } else {
            self.stages[i] = self.cut(i);
        }
    }

    /// A request unanswered after every try: a read is skipped (the SET goes), a SET
    /// counts as refused.
    fn unanswered(&mut self, now: Timestamp, o: OutletId, facts: &dyn Facts) {
        let i = o.0 as usize;
        match self.stages[i] {
            Stage::Reading => {
                self.stages[i] = self.first_form(i, facts);
                self.go(now, o, facts);
            }
            Stage::Checking { .. } => {
                // It took the SET; its state could not be read back.
                self.stages[i] = self.cut(i);
            }
            // The SET unanswered and the card silent to the read: as a refusal.
            Stage::Confirming { form, .. } => {
                self.stages[i] = Stage::Setting { form };
                self.unanswered(now, o, facts);
            }
            Stage::Setting { .. } | Stage::SwitchingOn => {
                self.refused += 1;
                let f = match self.stages[i] {
                    Stage::Setting { form } => self.form(i, form),
                    _ => self.plans[i].control.on,
                };
                if let Some(f) = f {
                    self.out.push_back(PowerOutput::Answered {
                        outlet: o,
                        form: f.name,
                        status: -1,
                    });
                }
                self.next_form(now, o, facts);
            }
            _ => {}
        }
    }

    /// The form tried was refused (or unanswered): the next one, or the outlet is left.
    fn next_form(&mut self, now: Timestamp, o: OutletId, facts: &dyn Facts) {
        let i = o.0 as usize;
        let next = match self.stages[i] {
            Stage::Setting { form } if form < ON => self.form_from(i, form + 1, facts),
            _ => None,
        };
        match next {
            Some(form) => {
                self.stages[i] = Stage::Setting { form };
                self.go(now, o, facts);
            }
            None => {
                let switching_on = self.stages[i] == Stage::SwitchingOn;
                self.stages[i] = Stage::NotCut;
                let p = &self.plans[i];
                self.out.push_back(PowerOutput::NotCut {
                    outlet: o,
                    why: if switching_on {
                        format!(
                            "outlet {} stays off: the card refused to switch it on (check its write access); switch it on by hand",
                            p.name
                        )
                    } else {
                        format!(
                            "outlet {} is not cycled: the card refused every form or did not answer ({}); its recorders stay off when mains returns until switched on by hand, or woken: check the card's write access for the gateway's address and that it answers SNMP there",
                            p.name,
                            p.control
                                .cut
                                .iter()
                                .map(|f| f.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                });
            }
        }
    }

    /// Takes a reloaded site: an outlet that stays (same name) keeps where it stands, a
    /// recorder that stays keeps its order and its waking (`remap`).
    pub fn reload(&mut self, site: &Site, remap: &crate::engine::config::Remap) {
        let ids = std::mem::replace(&mut self.ids, Box::new(crate::engine::poller::Sequence(0)));
        let mut next = Power::new(site, ids, self.dry_run);
        for i in 0..next.plans.len() {
            if let Some(o) = self.plans.iter().position(|p| p.name == next.plans[i].name) {
                next.stages[i] = self.stages[o];
                next.settled[i] = self.settled[o];
                next.out_req[i] = self.out_req[o];
                next.plans[i].card.keep_engine_of(&self.plans[o].card);
            }
        }
        next.ordered = remap.carry_recorders(&self.ordered, None);
        next.waking = remap.carry_recorders(&self.waking, None);
        next.wake_at = earliest_wake(&next.waking);
        next.sets = self.sets;
        next.refused = self.refused;
        *self = next;
    }

    /// The address and port of outlet `o`'s card.
    pub fn card(&self, o: OutletId) -> SocketAddr {
        self.plans[o.0 as usize].card.to
    }

    /// Outlet `o`'s place.
    pub fn plug(&self, o: OutletId) -> Plug {
        self.plans[o.0 as usize].plug
    }

    /// Outlet `o`'s recorders (for the status page and the records).
    pub fn members(&self, o: OutletId) -> &[RecorderId] {
        &self.plans[o.0 as usize].members
    }
}

/// Stage `Setting`'s form number of a PDU's `on`.
const ON: u8 = 200;
/// Stage `Setting`'s form number of a PDU's off-and-on.
const REBOOT: u8 = 201;

/// `object.instance = value (name)` for each binding of `f`.
fn describe(f: &Form, index: u32) -> String {
    f.sets
        .iter()
        .map(|(obj, inst, v)| {
            format!(
                "{}.{} = {}",
                obj.name,
                inst.index(index),
                obj.value_text(*v)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first binding's integer value (another kind as 0).
fn first_integer(vbs: &[VarBind<'_>]) -> Option<i64> {
    vbs.first().map(|vb| match vb.value {
        Value::Integer(i) => i,
        Value::Gauge32(g) | Value::Counter32(g) | Value::TimeTicks(g) => i64::from(g),
        _ => 0,
    })
}

/// A Wake-on-LAN magic packet for `mac`: six 0xFF, then the MAC sixteen times.
pub fn magic_packet(mac: [u8; 6], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xff; 6]);
    for _ in 0..16 {
        out.extend_from_slice(&mac);
    }
}

/// RFC 3416's name of an error-status (-1: no answer).
pub fn status_name(status: i32) -> &'static str {
    match status {
        -1 => "no answer",
        0 => "noError",
        1 => "tooBig",
        2 => "noSuchName",
        3 => "badValue",
        4 => "readOnly",
        5 => "genErr",
        6 => "noAccess",
        7 => "wrongType",
        8 => "wrongLength",
        9 => "wrongEncoding",
        10 => "wrongValue",
        11 => "noCreation",
        12 => "inconsistentValue",
        13 => "resourceUnavailable",
        14 => "commitFailed",
        15 => "undoFailed",
        16 => "authorizationError",
        17 => "notWritable",
        18 => "inconsistentName",
        _ => "an error",
    }
}

/// Whether `ip` is an address of an outlet's card (its answers are the power machine's
/// to check).
pub fn is_card(power: &Power, ip: IpAddr) -> bool {
    power.plans.iter().any(|p| p.card.to.ip() == ip)
}

/// Whether `at` is the agent of a card whose outlet trapgate may cycle.
pub fn is_card_at(power: &Power, at: SocketAddr) -> bool {
    power.plans.iter().any(|p| p.card.to == at)
}

#[cfg(test)]
mod tests;
