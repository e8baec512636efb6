//! Every record trapgate writes, typed: the inputs that moved the policy, the policy's
//! decisions, and what the gateway did about them. One enum, written and read in this
//! module only (serde derive), so that renaming a record fails to compile rather than
//! silently changing what a restart does. The journal, `trapgate run`'s stdout,
//! `trapgate replay`, `trapgate journal` and the demo all use it.
//!
//! A journal line is `crc32hex {"v":1,"t":NS,…record…}`: the format version, the time
//! on the gateway's timeline in nanoseconds, the record. A line of another version is
//! refused with a sentence, never misread. What `run` and `replay` print is the same
//! record with its times as UTC (`printed`): `{"time":"2019-03-07T08:20:33.504849Z",…}`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::classify::Event;
use crate::engine::policy::PollAnswer;
use crate::time::Timestamp;

/// Text a record shares with the station (a name, a sentence said to every recorder
/// of a tier): a reference count, not a copy per record.
pub type Text = Arc<str>;

/// The journal's format version, in every line. Format 2 records a recorder's shutdown
/// once: the 0 % its virtual UPS presents from then on is the `ShutdownRecorder`'s, not
/// a `PresentCharge` of its own (format 1 wrote both; it is read as it was written).
/// Format 3 journals the shutdowns one decision made of one UPS's tier as one line,
/// `ShutdownTier`, naming its recorders (a fan-out to 5,000 is one line, not 5,000);
/// read back, it is each recorder's `ShutdownRecorder` again. Format 4 journals the
/// orders one turn handed to the kernel together, of one sending and one kind, as one
/// line, `SentBatch`, naming the recorders and where each went; read back, it is each
/// recorder's `Sent` again.
pub const FORMAT: u32 = 4;

/// The formats this trapgate reads: its own, and formats 1 to 3.
pub const READS: [u32; 4] = [1, 2, 3, 4];

/// Whether this trapgate reads format `v`.
fn reads(v: Option<u64>) -> bool {
    v.is_some_and(|v| READS.iter().any(|&f| u64::from(f) == v))
}

/// One record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Record {
    /// Something that moved the policy (a restart feeds it back).
    Input(Input),
    /// A decision of the policy (or an alert of the gateway's own).
    Decision(Decided),
    /// What the gateway did.
    Action(Action),
    /// The whole station's state: the first record of each journal file, so that a
    /// restart reads the journal from the newest one only.
    Snapshot(Snapshot),
}

/// A checkpoint of the station.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "snapshot")]
pub enum Snapshot {
    /// The station: the site it ran (its text) and its machines' state.
    Station {
        /// The site file's text.
        site: String,
        /// The state.
        state: Box<crate::engine::station::StationState>,
    },
}

/// An input that moved the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A notification, believed (from its source's address, with its community).
    Event {
        /// Its source address.
        source: IpAddr,
        /// The UPS it came from, if a UPS's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ups: Option<Text>,
        /// The recorder it came from, if a recorder's (an acknowledgement).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorder: Option<Text>,
        /// Its community (v1, v2c), or its SNMPv3 user.
        community: String,
        /// For SNMPv3, the level its user sent it at (checked by the security model).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        security_level: Option<crate::wire::v3::Level>,
        /// What it was classified as.
        event: Event,
        /// The rule (trap name) that classified it.
        rule: String,
        /// For an outlet group's report: the group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<u32>,
    },
    /// A UPS's answer to a poll.
    Poll {
        /// The UPS.
        ups: Text,
        /// What it said.
        answer: PollAnswer,
    },
    /// A whole poll went unanswered while a shutdown trap waited for it.
    PollUnanswered {
        /// The UPS.
        ups: Text,
        /// Whether any try of it left.
        sent: bool,
    },
    /// A UPS stopped (or started again) answering polls.
    Silent {
        /// The UPS.
        ups: Text,
        /// Stopped (true) or answers again (false).
        silent: bool,
    },
    /// A NUT client that had been shown FSD logged out or closed: its recorder's
    /// acknowledgement (NUT's secondary does so as it shuts down).
    NutLeft {
        /// The recorder.
        recorder: Text,
    },
    /// A UPS card's SNMPv3 engine answered the poller authentically: it is the site's
    /// (its traps are checked at once after a restart, whatever a flood spent).
    EngineKnown {
        /// The SNMPv3 user it answered as.
        user: String,
        /// Its engine ID, in hex.
        engine_id: String,
    },
    /// A UPS card's shutoff delay, read at start or after a reload, taken as the UPS's
    /// `outlet_off_delay` where the site leaves it out.
    OffDelay {
        /// The UPS.
        ups: Text,
        /// The card's delay, in seconds.
        seconds: u32,
    },
    /// Timers were due.
    Timeout,
}

/// What the virtual UPS presents a recorder as its charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percent {
    /// The real UPS's own values.
    Real,
    /// This charge (0: shut down now).
    Value(u8),
}

impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Percent::Real => s.serialize_str("real"),
            Percent::Value(p) => s.serialize_u8(*p),
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::String(s) if s == "real" => Ok(Percent::Real),
            Json::Number(n) => n
                .as_u64()
                .filter(|p| *p <= 100)
                .map(|p| Percent::Value(p as u8))
                .ok_or_else(|| serde::de::Error::custom("a charge from 0 to 100")),
            other => Err(serde::de::Error::custom(format!(
                "\"real\" or a charge, not {other}"
            ))),
        }
    }
}

impl From<Option<u8>> for Percent {
    fn from(p: Option<u8>) -> Percent {
        p.map_or(Percent::Real, Percent::Value)
    }
}

impl From<Percent> for Option<u8> {
    fn from(p: Percent) -> Option<u8> {
        match p {
            Percent::Real => None,
            Percent::Value(v) => Some(v),
        }
    }
}

/// A decision, as journaled: the policy's (`crate::engine::policy::Decision`, with
/// names for indices), or an alert of the gateway's own (a journal that cannot be
/// written, a reload refused).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision")]
pub enum Decided {
    /// Tell a recorder to shut down; its virtual UPS presents it 0 % from then on (in
    /// format 1 a `PresentCharge` of its own said so).
    ShutdownRecorder {
        /// Its UPS.
        ups: Text,
        /// The recorder.
        recorder: Text,
        /// Its tier.
        tier: u8,
        /// When it must be down.
        deadline: Timestamp,
        /// Why, in a sentence.
        reason: Text,
        /// What caused it: an event's name, or "poll" for a UPS's answer.
        event: Text,
        /// The trap rule, poll or timer behind it.
        rule: Text,
    },
    /// In the journal only (format 3): the `ShutdownRecorder` of each of `recorders`,
    /// decided at once for one reason, as one line. Never shown; read back as each.
    ShutdownTier {
        /// Their UPS.
        ups: Text,
        /// The recorders, in the order they were decided.
        recorders: Vec<Text>,
        /// Their tier.
        tier: u8,
        /// When they must be down.
        deadline: Timestamp,
        /// Why, in a sentence.
        reason: Text,
        /// What caused it.
        event: Text,
        /// The trap rule, poll or timer behind it.
        rule: Text,
    },
    /// The outage is over: the tiers still counting down are not shut down.
    CancelShutdown {
        /// The UPS.
        ups: Text,
        /// The tiers.
        tiers: Vec<u8>,
        /// Why.
        reason: String,
    },
    /// What the virtual UPS presents a recorder.
    PresentCharge {
        /// The recorder.
        recorder: Text,
        /// The charge, or the real values.
        percent: Percent,
    },
    /// Poll a UPS to confirm a shutdown trap.
    Poll {
        /// The UPS.
        ups: Text,
        /// Why.
        reason: String,
        /// The event to confirm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<Event>,
        /// Its rule.
        rule: Text,
    },
    /// Mains power is back on a UPS in an outage.
    PowerBack {
        /// The UPS.
        ups: Text,
    },
    /// A recorder acknowledged its order.
    Acknowledged {
        /// The recorder.
        recorder: Text,
    },
    /// Every recorder on an outlet is ordered down: trapgate cuts it at `at` (each has
    /// had its shutdown time by then), with a form that gives the power back by itself.
    CycleOutlet {
        /// The outlet ("ups-main/group 2", "ups-main", "pdu-a/outlet 7").
        outlet: Text,
        /// When it is cut.
        at: Timestamp,
        /// The recorders it feeds.
        recorders: Vec<Text>,
    },
    /// Something a person must know.
    Alert {
        /// The UPS concerned, if one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ups: Option<Text>,
        /// The recorder concerned, if one ("did_not_shut_down").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorder: Option<Text>,
        /// The outlet concerned, if one ("outlet_not_cycled").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outlet: Option<Text>,
        /// What kind of alert (journaled by its snake_case name: "on_battery", …).
        kind: AlertKind,
        /// The sentence.
        reason: String,
    },
}

/// The kinds of `Alert`, journaled and printed by their snake_case names. A restart
/// rebuilds from these, never from an alert's sentence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A UPS is on battery: the outage began, with its plan.
    OnBattery,
    /// An outage began another way (a shutdown trap, a poll).
    Outage,
    /// A shutdown trap the UPS did not confirm.
    NotConfirmed,
    /// The UPS's card lost contact with the UPS.
    CommunicationLost,
    /// The card talks to the UPS again.
    CommunicationRestored,
    /// A recorder whose UPS failed is carried by another feed.
    CarriedByAnotherFeed,
    /// A UPS leaves its polls unanswered.
    UpsNotAnswering,
    /// A UPS answers its polls again.
    UpsAnswering,
    /// A UPS lacks an object trapgate polls.
    PollObjectMissing,
    /// A UPS answers its poll with an error.
    PollError,
    /// What `check-config` warns of the site.
    Site,
    /// A recorder heard from after it should have been down.
    DidNotShutDown,
    /// An outlet trapgate did not cut (or switch on again).
    OutletNotCycled,
    /// An outlet group the card turned off by itself, recorders on it never told.
    OutletCutByCard,
    /// A card's setting disagrees with the site.
    CardSetting,
    /// A new site was not taken.
    ReloadRefused,
    /// The journal could not be written.
    JournalFailed,
    /// A journal line of another format was skipped.
    JournalLineSkipped,
    /// Both gateways of a pair hold the pair's address (a split network): both act.
    PairSplit,
}

impl AlertKind {
    /// Its name, as journaled and printed.
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::OnBattery => "on_battery",
            AlertKind::Outage => "outage",
            AlertKind::NotConfirmed => "not_confirmed",
            AlertKind::CommunicationLost => "communication_lost",
            AlertKind::CommunicationRestored => "communication_restored",
            AlertKind::CarriedByAnotherFeed => "carried_by_another_feed",
            AlertKind::UpsNotAnswering => "ups_not_answering",
            AlertKind::UpsAnswering => "ups_answering",
            AlertKind::PollObjectMissing => "poll_object_missing",
            AlertKind::PollError => "poll_error",
            AlertKind::Site => "site",
            AlertKind::DidNotShutDown => "did_not_shut_down",
            AlertKind::OutletNotCycled => "outlet_not_cycled",
            AlertKind::OutletCutByCard => "outlet_cut_by_card",
            AlertKind::CardSetting => "card_setting",
            AlertKind::ReloadRefused => "reload_refused",
            AlertKind::JournalFailed => "journal_failed",
            AlertKind::JournalLineSkipped => "journal_line_skipped",
            AlertKind::PairSplit => "pair_split",
        }
    }
}

impl core::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the gateway did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action")]
pub enum Action {
    /// A SET to an outlet's card left (a dry run's did not: `dry_run`).
    OutletSet {
        /// The outlet.
        outlet: Text,
        /// The form (the MIB's name of the value written).
        form: Text,
        /// What was written: `object.instance = name(value)`, ….
        sets: Text,
        /// Which try.
        attempt: u8,
        /// Where.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<SocketAddr>,
        /// Nothing was sent: a dry run.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
    /// An outlet's card answered a SET.
    OutletAnswered {
        /// The outlet.
        outlet: Text,
        /// The form.
        form: Text,
        /// RFC 3416's error-status by name ("noError": taken).
        status: Text,
    },
    /// The trap port answered a datagram's sender (a replay shows it; live, it is
    /// counted): an inform's answer, or a v3 Report.
    Replied {
        /// Where the answer went.
        to: std::net::SocketAddr,
        /// What it was.
        detail: Text,
    },
    /// A notification forwarded (a replay shows it; live, it is counted per target).
    Forwarded {
        /// Where it came from.
        from: std::net::SocketAddr,
        /// The `[[forward]]` targets it went to, as the site file writes them.
        to: Vec<Text>,
    },
    /// An outlet's card reported on it by a trap of its own: turned off or a command
    /// taken (with trapgate's cut under way: its confirmation), turned on again.
    OutletReported {
        /// The outlet.
        outlet: Text,
        /// The card's trap.
        trap: Text,
        /// Where the outlet stands after it (`armed`, `done`, …).
        state: Text,
        /// Whether trapgate was cutting it (false: the card, or someone else, did).
        ours: bool,
    },
    /// An outlet's state, read from its card before writing or after.
    OutletRead {
        /// The outlet.
        outlet: Text,
        /// `object.instance = name(value)`.
        state: String,
        /// A command is pending or under way: nothing is armed again.
        busy: bool,
    },
    /// A Wake-on-LAN magic packet left for a recorder.
    WakeSent {
        /// The recorder.
        recorder: Text,
        /// Which packet.
        attempt: u32,
        /// Where.
        to: SocketAddr,
    },
    /// An order left (a trap handed to the kernel, or a command started).
    Sent {
        /// The recorder.
        recorder: Text,
        /// Which sending.
        attempt: u32,
        /// Where the trap went (none for a command).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<SocketAddr>,
        /// What was sent.
        detail: Text,
    },
    /// In the journal only (format 4): the `Sent` of each of `recorders`, each to its
    /// address in `to`, of one sending and one kind, handed to the kernel at once (a
    /// fan-out's 5,000 orders are one line, not 5,000). Never shown; read back as each.
    SentBatch {
        /// The recorders, in the order they were sent to.
        recorders: Vec<Text>,
        /// Which sending.
        attempt: u32,
        /// Where each one's trap went, in the same order.
        to: Vec<SocketAddr>,
        /// What was sent.
        detail: Text,
    },
    /// An order could not be sent.
    SendFailed {
        /// The recorder.
        recorder: Text,
        /// Which sending.
        attempt: u32,
        /// Where.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<SocketAddr>,
        /// The error.
        detail: String,
    },
    /// A dry run's order, not sent.
    WouldSend {
        /// The recorder.
        recorder: Text,
        /// Which sending.
        attempt: u32,
        /// Why not.
        detail: String,
    },
    /// A confirming poll left (its answer is waited for from now).
    Polled {
        /// The UPS.
        ups: Text,
        /// Where.
        to: SocketAddr,
    },
    /// What a recorder was shown when it polled its virtual UPS (when it changed).
    Presented {
        /// The recorder.
        recorder: Text,
        /// The charge shown.
        charge: Option<u8>,
        /// On battery, as shown.
        on_battery: Option<bool>,
        /// The real UPS's values beside it.
        real: PollAnswer,
        /// Whose values.
        detail: String,
    },
    /// A recorder never acknowledged before its UPS cut the outlets.
    NotAcknowledged {
        /// The recorder.
        recorder: Text,
        /// Times it was told.
        attempt: u32,
        /// Why it matters.
        detail: String,
    },
    /// A recorder is back after the outage.
    Back {
        /// The recorder.
        recorder: Text,
        /// Seconds from power back to hearing from it.
        after_s: f64,
        /// It had been reported `NotBack`: heard from after its boot time.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        late: bool,
    },
    /// A recorder was not back within its boot time.
    NotBack {
        /// The recorder.
        recorder: Text,
        /// What to do.
        detail: String,
    },
    /// An exec recorder's command ended.
    CommandDone {
        /// The recorder.
        recorder: Text,
        /// Which sending it was.
        attempt: u32,
        /// It did its job (exit 0): the recorder's acknowledgement. What a restart
        /// rebuilds from (a journal of an earlier release, without it, reads as not
        /// done: the order is sent once more).
        #[serde(default)]
        ok: bool,
        /// "exit 0", "killed: timed out", … (for people).
        status: String,
        /// How long it ran.
        detail: String,
        /// What it wrote on stdout, up to a bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stdout: Option<String>,
        /// What it wrote on stderr, up to a bound.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stderr: Option<String>,
    },
    /// The gateway started (after its journal was read).
    Started {
        /// What the journal gave back.
        detail: String,
        /// The site it runs (the file's text): a restart decides with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<String>,
    },
    /// The site file was reloaded.
    Reloaded {
        /// What changed.
        detail: String,
        /// The site it runs now (the file's text).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        site: Option<String>,
    },
    /// This gateway of a pair became the actor (it holds the pair's address: it answers
    /// the recorders, orders them and commands the outlets) or the standby (it decides,
    /// journals and shows, and sends nothing to a recorder or an outlet).
    Role {
        /// "actor" or "standby".
        role: Text,
        /// Why, and what the take-over sent.
        detail: String,
    },
    /// A record of the pair's actor, shipped over the pair channel and applied here (an
    /// order it sent, an acknowledgement it heard, a command's end, an outlet's answer).
    FromPeer {
        /// The peer's pair endpoint.
        peer: SocketAddr,
        /// The shipping datagram's sequence number.
        seq: u64,
        /// The peer's wall clock when it made the record.
        made: String,
        /// The record as the peer journaled it.
        record: Box<Record>,
    },
    /// What a `[[notify]]` target could not take since the last such record (its queue
    /// full, or its sends failed): at most one a target a minute.
    NotTold {
        /// The target (`syslog udp:127.0.0.1:514`, …).
        target: String,
        /// Records dropped (its queue full, or every try failed).
        dropped: u64,
        /// Why.
        detail: String,
    },
    /// A summary of what was not believed.
    Refused {
        /// Why.
        reason: String,
        /// How many since the last summary of this reason.
        count: u64,
        /// What it means.
        detail: String,
        /// The last refused source.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<IpAddr>,
        /// The last refused notification's event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<Event>,
    },
}

impl Record {
    /// A site alert with `reason` and nothing else (the tests' plain decision).
    #[cfg(test)]
    pub(crate) fn site_alert(reason: &str) -> Record {
        Record::Decision(Decided::Alert {
            ups: None,
            recorder: None,
            outlet: None,
            kind: AlertKind::Site,
            reason: reason.into(),
        })
    }

    /// Whether a person is shown it (inputs and checkpoints are only journaled).
    pub fn shown(&self) -> bool {
        !matches!(self, Record::Input(_) | Record::Snapshot(_))
    }

    /// Whether it is fsync'd as soon as it is journaled: a decision, before anything is
    /// acted on; the site a start or a reload put in force (its whole text: 670 kB at
    /// 5,000 recorders), so that the first outage's sync carries its decisions alone.
    pub fn needs_sync(&self) -> bool {
        matches!(
            self,
            Record::Decision(_) | Record::Action(Action::Started { .. } | Action::Reloaded { .. })
        )
    }

    /// The UPS and the recorder it names.
    pub fn names(&self) -> (Option<&str>, Option<&str>) {
        use Action as A;
        use Decided as D;
        use Input as I;
        match self {
            Record::Input(I::Event { ups, recorder, .. }) => (ups.as_deref(), recorder.as_deref()),
            Record::Input(
                I::Poll { ups, .. }
                | I::PollUnanswered { ups, .. }
                | I::Silent { ups, .. }
                | I::OffDelay { ups, .. },
            ) => (Some(ups), None),
            Record::Input(I::Timeout | I::EngineKnown { .. }) => (None, None),
            Record::Input(I::NutLeft { recorder }) => (None, Some(recorder)),
            Record::Decision(D::ShutdownRecorder { ups, recorder, .. }) => {
                (Some(ups), Some(recorder))
            }
            Record::Decision(
                D::CancelShutdown { ups, .. }
                | D::Poll { ups, .. }
                | D::PowerBack { ups }
                | D::ShutdownTier { ups, .. },
            ) => (Some(ups), None),
            Record::Decision(D::PresentCharge { recorder, .. } | D::Acknowledged { recorder }) => {
                (None, Some(recorder))
            }
            Record::Decision(D::Alert { ups, recorder, .. }) => {
                (ups.as_deref(), recorder.as_deref())
            }
            Record::Action(
                A::Sent { recorder, .. }
                | A::SendFailed { recorder, .. }
                | A::WouldSend { recorder, .. }
                | A::Presented { recorder, .. }
                | A::NotAcknowledged { recorder, .. }
                | A::Back { recorder, .. }
                | A::NotBack { recorder, .. }
                | A::CommandDone { recorder, .. },
            ) => (None, Some(recorder)),
            Record::Action(A::Polled { ups, .. }) => (Some(ups), None),
            // An outlet is named where a UPS would be ("ups-main/group 2").
            Record::Decision(D::CycleOutlet { outlet, .. })
            | Record::Action(
                A::OutletSet { outlet, .. }
                | A::OutletAnswered { outlet, .. }
                | A::OutletReported { outlet, .. }
                | A::OutletRead { outlet, .. },
            ) => (Some(outlet), None),
            Record::Action(A::WakeSent { recorder, .. }) => (None, Some(recorder)),
            Record::Action(A::Replied { .. } | A::Forwarded { .. } | A::SentBatch { .. }) => {
                (None, None)
            }
            Record::Action(A::FromPeer { record, .. }) => record.names(),
            Record::Action(
                A::Started { .. }
                | A::Reloaded { .. }
                | A::Refused { .. }
                | A::Role { .. }
                | A::NotTold { .. },
            )
            | Record::Snapshot(_) => (None, None),
        }
    }

    /// Its kind's name, as journaled (`ShutdownRecorder`, `Sent`, …).
    pub fn kind_name(&self) -> &'static str {
        use Action as A;
        use Decided as D;
        use Input as I;
        match self {
            Record::Snapshot(_) => "Station",
            Record::Input(i) => match i {
                I::Event { .. } => "Event",
                I::Poll { .. } => "Poll",
                I::PollUnanswered { .. } => "PollUnanswered",
                I::Silent { .. } => "Silent",
                I::NutLeft { .. } => "NutLeft",
                I::EngineKnown { .. } => "EngineKnown",
                I::OffDelay { .. } => "OffDelay",
                I::Timeout => "Timeout",
            },
            Record::Decision(d) => match d {
                D::ShutdownRecorder { .. } => "ShutdownRecorder",
                D::ShutdownTier { .. } => "ShutdownTier",
                D::CancelShutdown { .. } => "CancelShutdown",
                D::PresentCharge { .. } => "PresentCharge",
                D::Poll { .. } => "Poll",
                D::PowerBack { .. } => "PowerBack",
                D::Acknowledged { .. } => "Acknowledged",
                D::CycleOutlet { .. } => "CycleOutlet",
                D::Alert { .. } => "Alert",
            },
            Record::Action(a) => match a {
                A::OutletSet { .. } => "OutletSet",
                A::OutletAnswered { .. } => "OutletAnswered",
                A::Replied { .. } => "Replied",
                A::Forwarded { .. } => "Forwarded",
                A::OutletReported { .. } => "OutletReported",
                A::OutletRead { .. } => "OutletRead",
                A::WakeSent { .. } => "WakeSent",
                A::Sent { .. } => "Sent",
                A::SentBatch { .. } => "SentBatch",
                A::SendFailed { .. } => "SendFailed",
                A::WouldSend { .. } => "WouldSend",
                A::Polled { .. } => "Polled",
                A::Presented { .. } => "Presented",
                A::NotAcknowledged { .. } => "NotAcknowledged",
                A::Back { .. } => "Back",
                A::NotBack { .. } => "NotBack",
                A::CommandDone { .. } => "CommandDone",
                A::Started { .. } => "Started",
                A::Reloaded { .. } => "Reloaded",
                A::Role { .. } => "Role",
                A::FromPeer { .. } => "FromPeer",
                A::NotTold { .. } => "NotTold",
                A::Refused { .. } => "Refused",
            },
        }
    }

    /// Whether it concerns the UPS or recorder named `name`.
    pub fn concerns(&self, name: &str) -> bool {
        let (u, r) = self.names();
        u == Some(name) || r == Some(name)
    }

    /// As `run` and `replay` print it: the time first (`at`, already labelled), then the
    /// record, its other times as UTC too, shifted by `offset` ns.
    pub fn printed(&self, at: Timestamp, offset: i64) -> Json {
        let mut o = Map::new();
        o.insert("time".into(), Json::String(at.utc().to_string()));
        if let Ok(Json::Object(fields)) = serde_json::to_value(self) {
            // The site's text is for the journal, not for the screen.
            for (k, v) in fields.into_iter().filter(|(k, _)| k != "site") {
                let v = match (k.as_str(), &v) {
                    ("deadline" | "at", Json::Number(n)) => n.as_u64().map_or(v.clone(), |ns| {
                        Json::String(Timestamp(ns).shifted(offset).utc().to_string())
                    }),
                    _ => v,
                };
                o.insert(k, v);
            }
        }
        Json::Object(o)
    }

    /// As `trapgate journal` shows it to a person: the time, then what happened.
    pub fn readable(&self, t: Timestamp) -> String {
        let mut w = format!("{}  ", t.utc());
        match self {
            Record::Input(i) => match i {
                Input::Event {
                    source,
                    ups,
                    recorder,
                    community,
                    security_level,
                    event,
                    rule,
                    index,
                } => {
                    let _ = write!(w, "heard {} from {source}", event.name());
                    if let Some(g) = index {
                        let _ = write!(w, " (outlet group {g})");
                    }
                    if let Some(u) = ups {
                        let _ = write!(w, " (UPS {u})");
                    }
                    if let Some(r) = recorder {
                        let _ = write!(w, " (recorder {r})");
                    }
                    match security_level {
                        Some(l) => {
                            let _ = write!(w, " ({rule}, SNMPv3 user {community:?}, {})", l.name());
                        }
                        None => {
                            let _ = write!(w, " ({rule}, community {community:?})");
                        }
                    }
                }
                Input::Poll { ups, answer } => {
                    let _ = write!(
                        w,
                        "UPS {ups} polled: {}",
                        serde_json::to_string(answer).unwrap_or_default()
                    );
                }
                Input::PollUnanswered { ups, sent } => {
                    let _ = write!(
                        w,
                        "poll of UPS {ups} {}",
                        if *sent {
                            "unanswered"
                        } else {
                            "could not be sent"
                        }
                    );
                }
                Input::EngineKnown { user, engine_id } => {
                    let _ = write!(
                        w,
                        "SNMPv3 engine 0x{engine_id} of user {user:?} answered polls authentically: the site's"
                    );
                }
                Input::NutLeft { recorder } => {
                    let _ = write!(
                        w,
                        "recorder {recorder}'s NUT client logged out after it was shown FSD"
                    );
                }
                Input::OffDelay { ups, seconds } => {
                    let _ = write!(
                        w,
                        "UPS {ups}'s card cuts its outlets {seconds} s after its shutdown starts: taken as its outlet_off_delay"
                    );
                }
                Input::Silent { ups, silent } => {
                    let _ = write!(
                        w,
                        "UPS {ups} {}",
                        if *silent {
                            "stopped answering polls"
                        } else {
                            "answers polls again"
                        }
                    );
                }
                Input::Timeout => w.push_str("timers due"),
            },
            Record::Snapshot(_) => w.push_str("checkpoint of the station"),
            Record::Action(Action::FromPeer {
                peer,
                seq,
                made,
                record,
            }) => {
                // The peer's record as it reads there, said to be the peer's.
                let inner = record.readable(t);
                let what = inner.split_once("  ").map_or(&*inner, |(_, w)| w);
                let _ = write!(w, "from peer {peer} (#{seq}, made {made}): {what}");
            }
            Record::Decision(_) | Record::Action(_) => {
                let v = self.printed(t, 0);
                let (kind, name) = match (v.get("decision"), v.get("action")) {
                    (Some(d), _) => ("decided ", d.as_str().unwrap_or("")),
                    (_, Some(a)) => ("", a.as_str().unwrap_or("")),
                    _ => ("", ""),
                };
                let _ = write!(w, "{kind}{name}");
                let text = |k: &str| -> Option<String> {
                    let x = v.get(k)?;
                    (!x.is_null()).then(|| x.as_str().map_or(x.to_string(), str::to_string))
                };
                let keys: &[&str] = if kind.is_empty() {
                    &[
                        "role", "target", "recorder", "ups", "outlet", "sets", "state", "attempt",
                        "to", "after_s", "dropped", "status", "reason", "count", "source", "event",
                        "detail",
                    ]
                } else {
                    &["ups", "outlet", "at", "recorder", "tier", "percent", "kind"]
                };
                for k in keys {
                    if let Some(x) = text(k) {
                        let _ = write!(w, " {k}={x}");
                    }
                }
                if !kind.is_empty() {
                    if let Some(reason) = text("reason") {
                        let _ = write!(w, ": {reason}");
                    }
                    if let Some(rule) = text("rule") {
                        let _ = write!(w, " [{rule}]");
                    }
                }
            }
        }
        w
    }
}

impl Decided {
    /// A `ShutdownTier`'s recorders' `ShutdownRecorder`s (each as it was decided); any
    /// other decision as it is.
    pub fn expanded(self) -> Vec<Decided> {
        match self {
            Decided::ShutdownTier {
                ups,
                recorders,
                tier,
                deadline,
                reason,
                event,
                rule,
            } => recorders
                .into_iter()
                .map(|recorder| Decided::ShutdownRecorder {
                    ups: Arc::clone(&ups),
                    recorder,
                    tier,
                    deadline,
                    reason: Arc::clone(&reason),
                    event: Arc::clone(&event),
                    rule: Arc::clone(&rule),
                })
                .collect(),
            d => vec![d],
        }
    }

    /// Whether `self` and `other` are shutdowns of one UPS's tier decided at once for
    /// one reason: one `ShutdownTier` line holds them both.
    pub fn same_tier(&self, other: &Decided) -> bool {
        self.tier_key().is_some() && self.tier_key() == other.tier_key()
    }

    /// What a `ShutdownRecorder` shares with the rest of its tier's line (all but the
    /// recorder).
    fn tier_key(&self) -> Option<(&Text, u8, Timestamp, &Text, &Text, &Text)> {
        match self {
            Decided::ShutdownRecorder {
                ups,
                tier,
                deadline,
                reason,
                event,
                rule,
                ..
            } => Some((ups, *tier, *deadline, reason, event, rule)),
            _ => None,
        }
    }
}

impl Action {
    /// A `SentBatch`'s recorders' `Sent`s (each as it was sent); any other action as it
    /// is.
    pub fn expanded(self) -> Vec<Action> {
        match self {
            Action::SentBatch {
                recorders,
                attempt,
                to,
                detail,
            } => recorders
                .into_iter()
                .zip(to)
                .map(|(recorder, to)| Action::Sent {
                    recorder,
                    attempt,
                    to: Some(to),
                    detail: Arc::clone(&detail),
                })
                .collect(),
            a => vec![a],
        }
    }

    /// Whether `self` and `other` are traps of one sending and one kind (`Sent` with an
    /// address): one `SentBatch` line holds them both.
    pub fn same_send(&self, other: &Action) -> bool {
        self.send_key().is_some() && self.send_key() == other.send_key()
    }

    /// What a trap's `Sent` shares with the rest of its batch's line.
    fn send_key(&self) -> Option<(u32, &Text)> {
        match self {
            Action::Sent {
                attempt,
                to: Some(_),
                detail,
                ..
            } => Some((*attempt, detail)),
            _ => None,
        }
    }
}

/// Writes `run` (traps' `Sent`s of one sending and one kind, `Action::same_send`, at
/// `t`) as one `SentBatch` line, from the records as they are.
pub fn write_sent_line(t: Timestamp, run: &[(Timestamp, Record)], out: &mut Vec<u8>) {
    let Some((attempt, detail)) = run.first().and_then(|(_, r)| match r {
        Record::Action(a) => a.send_key(),
        _ => None,
    }) else {
        out.clear();
        return;
    };
    write_serialized(
        t,
        &SentLine {
            recorders: Listed(run, |r| match r {
                Record::Action(Action::Sent { recorder, .. }) => Some(Item::Name(recorder)),
                _ => None,
            }),
            attempt,
            to: Listed(run, |r| match r {
                Record::Action(Action::Sent { to: Some(to), .. }) => Some(Item::To(*to)),
                _ => None,
            }),
            detail,
        },
        out,
    );
}

/// `Action::SentBatch`, borrowed: the same fields, in the same order, under the same tag
/// (`sent_batch_lines_are_the_owned_records_lines` holds the two to one line).
#[derive(Serialize)]
#[serde(tag = "action", rename = "SentBatch")]
struct SentLine<'a> {
    recorders: Listed<'a>,
    attempt: u32,
    to: Listed<'a>,
    detail: &'a str,
}

/// One field of each record of a run, as a list: what a line that holds the run names
/// of each (a recorder's name, where its trap went).
struct Listed<'a>(
    &'a [(Timestamp, Record)],
    fn(&'a Record) -> Option<Item<'a>>,
);

/// A recorder's name, or where its trap went.
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Name(&'a str),
    To(SocketAddr),
}

impl Serialize for Listed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter_map(|(_, r)| (self.1)(r)))
    }
}

/// Writes `run` (shutdowns of one UPS's tier decided at once, `Decided::same_tier`, at
/// `t`) as one `ShutdownTier` line: the line of `Decided::ShutdownTier`, written from
/// the records as they are (a fan-out's 5,000 names are not taken, counted and let go
/// again on the journal's thread to build one first).
pub fn write_tier_line(t: Timestamp, run: &[(Timestamp, Record)], out: &mut Vec<u8>) {
    let Some((ups, tier, deadline, reason, event, rule)) = run.first().and_then(|(_, r)| match r {
        Record::Decision(d) => d.tier_key(),
        _ => None,
    }) else {
        out.clear();
        return;
    };
    write_serialized(
        t,
        &TierLine {
            ups,
            recorders: Listed(run, |r| match r {
                Record::Decision(Decided::ShutdownRecorder { recorder, .. }) => {
                    Some(Item::Name(recorder))
                }
                _ => None,
            }),
            tier,
            deadline,
            reason,
            event,
            rule,
        },
        out,
    );
}

/// `Decided::ShutdownTier`, borrowed: the same fields, in the same order, under the same
/// tag (`shutdown_tier_lines_are_the_owned_records_lines` holds the two to one line).
#[derive(Serialize)]
#[serde(tag = "decision", rename = "ShutdownTier")]
struct TierLine<'a> {
    ups: &'a str,
    recorders: Listed<'a>,
    tier: u8,
    deadline: Timestamp,
    reason: &'a str,
    event: &'a str,
    rule: &'a str,
}

/// Why a journal line was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Damaged: torn by a crash, a flipped byte, not JSON.
    Damaged(String),
    /// Written by a trapgate of another format version.
    Version(Option<u64>),
}

impl core::fmt::Display for LineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LineError::Damaged(why) => f.write_str(why),
            LineError::Version(Some(v)) => write!(
                f,
                "written in journal format {v}; this trapgate reads formats 1 to {FORMAT}"
            ),
            LineError::Version(None) => write!(
                f,
                "written without a format version (a trapgate from before format 1); this trapgate reads formats 1 to {FORMAT}"
            ),
        }
    }
}

/// Writes `record` at `t` as one journal line into `out` (cleared first): the checksum,
/// a space, the JSON, a newline.
pub fn write_line(t: Timestamp, record: &Record, out: &mut Vec<u8>) {
    write_serialized(t, record, out);
}

/// `write_line` of anything that serializes as a record does: an object with its tag.
fn write_serialized<T: Serialize>(t: Timestamp, record: &T, out: &mut Vec<u8>) {
    out.clear();
    // Room for the checksum, filled in once the JSON is written.
    out.extend_from_slice(b"00000000 ");
    let _ = write!(Sink(out), "{{\"v\":{FORMAT},\"t\":{}", t.0);
    let body = out.len();
    // A record always serializes as an object with its tag: its '{' is replaced by ','.
    if serde_json::to_writer(&mut *out, record).is_ok() && out.get(body) == Some(&b'{') {
        out[body] = b',';
    } else {
        out.truncate(body);
        out.push(b'}');
    }
    let sum = crc32fast::hash(&out[9..]);
    out[..8].copy_from_slice(format!("{sum:08x}").as_bytes());
    out.push(b'\n');
}

/// `write!` into a byte buffer.
struct Sink<'a>(&'a mut Vec<u8>);

impl core::fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The envelope of a line: its version and time, and the record.
#[derive(Deserialize)]
struct Envelope {
    v: Option<u64>,
    t: u64,
    #[serde(flatten)]
    record: Record,
}

/// Reads one journal line (without its newline): its time and record.
pub fn read_line(line: &[u8]) -> Result<(Timestamp, Record), LineError> {
    let damaged = |why: &str| LineError::Damaged(why.to_string());
    let text = core::str::from_utf8(line).map_err(|_| damaged("not UTF-8"))?;
    let (sum, json) = text.split_once(' ').ok_or_else(|| damaged("no checksum"))?;
    let sum = u32::from_str_radix(sum, 16)
        .map_err(|_| LineError::Damaged(format!("bad checksum field {sum:?}")))?;
    if crc32fast::hash(json.as_bytes()) != sum {
        return Err(damaged("checksum mismatch (a line cut short by a crash?)"));
    }
    // The writer's own prefix, read by hand: `{"v":1,"t":<ns>,"<kind>":…`, the record
    // then read as its kind alone (no buffering of the whole line to guess its kind).
    if let Some((v, t, kind, rest)) = prefix(json)
        && reads(Some(v))
    {
        let record = SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            buf.push('{');
            buf.push_str(rest);
            let r = match kind {
                "input" => serde_json::from_str(buf).map(Record::Input),
                "decision" => serde_json::from_str(buf).map(Record::Decision),
                "action" => serde_json::from_str(buf).map(Record::Action),
                "snapshot" => serde_json::from_str(buf).map(Record::Snapshot),
                _ => return None,
            };
            Some(r)
        });
        match record {
            // A batch's line names as many addresses as recorders, or it is not read:
            // none of its sends is dropped or paired with another's address.
            Some(Ok(Record::Action(Action::SentBatch { recorders, to, .. })))
                if recorders.len() != to.len() =>
            {
                return Err(LineError::Damaged(format!(
                    "a SentBatch of {} recorders and {} addresses",
                    recorders.len(),
                    to.len()
                )));
            }
            Some(Ok(r)) => return Ok((Timestamp(t), r)),
            Some(Err(e)) => {
                return Err(LineError::Damaged(format!(
                    "not a record of format {FORMAT}: {e}"
                )));
            }
            None => {}
        }
    }
    // Any other shape: the version first, so that another format is named as such, not
    // as damage.
    #[derive(Deserialize)]
    struct Version {
        v: Option<u64>,
    }
    let version: Version =
        serde_json::from_str(json).map_err(|e| LineError::Damaged(format!("bad JSON: {e}")))?;
    if !reads(version.v) {
        return Err(LineError::Version(version.v));
    }
    let e: Envelope = serde_json::from_str(json)
        .map_err(|e| LineError::Damaged(format!("not a record of format {FORMAT}: {e}")))?;
    debug_assert!(reads(e.v));
    Ok((Timestamp(e.t), e.record))
}

thread_local! {
    /// `read_line`'s buffer for a record's own JSON (reused: no allocation per line).
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// `{"v":V,"t":T,"KIND":REST` as `write_line` writes it: V, T, KIND, and REST from
/// KIND's key on (`"KIND":…}`).
fn prefix(json: &str) -> Option<(u64, u64, &str, &str)> {
    let number = |s: &str| -> Option<(u64, usize)> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        Some((s.get(..n)?.parse().ok()?, n))
    };
    let s = json.strip_prefix("{\"v\":")?;
    let (v, n) = number(s)?;
    let s = s[n..].strip_prefix(",\"t\":")?;
    let (t, n) = number(s)?;
    let rest = s[n..].strip_prefix(',')?;
    let kind = rest.strip_prefix('"')?.split('"').next()?;
    Some((v, t, kind, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tier's line written from the records as they are is, byte for byte, the line
    /// of the `ShutdownTier` record built from them (names with quotes and non-ASCII
    /// letters included, as JSON escapes them).
    #[test]
    fn shutdown_tier_lines_are_the_owned_records_lines() {
        let names = ["nvr-1", "nvr \"two\"", "caméra-3", "nvr\\4"];
        let shutdowns: Vec<Decided> = names
            .iter()
            .map(|n| Decided::ShutdownRecorder {
                ups: "ups-main".into(),
                recorder: (*n).into(),
                tier: 2,
                deadline: Timestamp(1_700_000_090_000_000_000),
                reason: "lowBattery: \"UPS: Low battery.\"".into(),
                event: "LowBattery".into(),
                rule: "lowBattery".into(),
            })
            .collect();
        let t = Timestamp(1_700_000_000_000_000_000);
        let tier: Vec<(Timestamp, Record)> = shutdowns
            .into_iter()
            .map(|d| (t, Record::Decision(d)))
            .collect();
        let mut borrowed = Vec::new();
        write_tier_line(t, &tier, &mut borrowed);
        let owned = Record::Decision(Decided::ShutdownTier {
            ups: "ups-main".into(),
            recorders: names.iter().map(|n| (*n).into()).collect(),
            tier: 2,
            deadline: Timestamp(1_700_000_090_000_000_000),
            reason: "lowBattery: \"UPS: Low battery.\"".into(),
            event: "LowBattery".into(),
            rule: "lowBattery".into(),
        });
        assert_eq!(the_same_line(t, &borrowed, &owned), owned);
    }

    /// The line of `record` at `t`.
    fn line_of(t: Timestamp, record: &Record) -> Vec<u8> {
        let mut line = Vec::new();
        write_line(t, record, &mut line);
        line
    }

    /// Asserts that `borrowed` is the line of `owned` at `t`, byte for byte, and reads
    /// back as it; returns what it read.
    fn the_same_line(t: Timestamp, borrowed: &[u8], owned: &Record) -> Record {
        let line = line_of(t, owned);
        assert_eq!(
            String::from_utf8_lossy(borrowed),
            String::from_utf8_lossy(&line)
        );
        let (at, back) = read_line(borrowed.trim_ascii_end()).expect("it reads back");
        assert_eq!(at, t);
        back
    }

    /// A batch's line written from the `Sent` records as they are is, byte for byte,
    /// the line of the `SentBatch` record built from them, and reads back as it.
    #[test]
    fn sent_batch_lines_are_the_owned_records_lines() {
        let names = ["nvr-1", "nvr \"two\"", "caméra-3"];
        let to: Vec<SocketAddr> = ["192.0.2.1:162", "192.0.2.2:10162", "[2001:db8::3]:162"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let sent: Vec<Action> = names
            .iter()
            .zip(&to)
            .map(|(n, to)| Action::Sent {
                recorder: (*n).into(),
                attempt: 2,
                to: Some(*to),
                detail: "APC lowBattery v1 trap".into(),
            })
            .collect();
        let t = Timestamp(1_700_000_000_000_000_000);
        let batch: Vec<(Timestamp, Record)> = sent
            .iter()
            .map(|a| (t, Record::Action(a.clone())))
            .collect();
        let mut borrowed = Vec::new();
        write_sent_line(t, &batch, &mut borrowed);
        let owned = Record::Action(Action::SentBatch {
            recorders: names.iter().map(|n| (*n).into()).collect(),
            attempt: 2,
            to: to.clone(),
            detail: "APC lowBattery v1 trap".into(),
        });
        let back = the_same_line(t, &borrowed, &owned);
        assert_eq!(back, owned);
        let Record::Action(a) = back else {
            unreachable!()
        };
        assert_eq!(a.expanded(), sent, "each recorder's Sent, in order");
        // A line (checksum and all) whose lists differ in length is damage, not read.
        let uneven = String::from_utf8(line_of(t, &owned))
            .unwrap()
            .replace(",\"[2001:db8::3]:162\"]", "]");
        let json = uneven.split_once(' ').unwrap().1.trim_end();
        let uneven = format!("{:08x} {json}", crc32fast::hash(json.as_bytes()));
        assert_eq!(
            read_line(uneven.as_bytes()),
            Err(LineError::Damaged(
                "a SentBatch of 3 recorders and 2 addresses".into()
            ))
        );
        // A command's `Sent` (no address) is not part of a batch's line.
        let command = Action::Sent {
            recorder: "srv-1".into(),
            attempt: 2,
            to: None,
            detail: "APC lowBattery v1 trap".into(),
        };
        assert!(!sent[0].same_send(&command) && sent[0].same_send(&sent[2]));
    }

    fn samples() -> Vec<Record> {
        vec![
            Record::Input(Input::Event {
                source: "192.168.61.250".parse().unwrap(),
                ups: Some("ups-main".into()),
                recorder: None,
                community: "public".into(),
                security_level: None,
                event: Event::LowBattery,
                rule: "lowBattery".into(),
                index: None,
            }),
            Record::Input(Input::Timeout),
            Record::Input(Input::Poll {
                ups: "ups-main".into(),
                answer: PollAnswer {
                    on_battery: Some(true),
                    battery_low: None,
                    charge: Some(18),
                    runtime: None,
                },
            }),
            Record::Decision(Decided::ShutdownRecorder {
                ups: "ups-main".into(),
                recorder: "nvr-244".into(),
                tier: 2,
                deadline: Timestamp(1_551_946_928_504_849_000),
                reason: "lowBattery confirmed by poll".into(),
                event: "LowBattery".into(),
                rule: "lowBattery".into(),
            }),
            Record::Decision(Decided::PresentCharge {
                recorder: "nvr-244".into(),
                percent: Percent::Real,
            }),
            Record::Decision(Decided::Alert {
                ups: None,
                recorder: None,
                outlet: None,
                kind: AlertKind::Site,
                reason: "a \"quoted\" reason".into(),
            }),
            Record::Action(Action::Sent {
                recorder: "nvr-244".into(),
                attempt: 2,
                to: Some("192.168.61.244:162".parse().unwrap()),
                detail: "APC lowBattery v1 trap".into(),
            }),
            Record::Action(Action::Refused {
                reason: "wrong_community".into(),
                count: 12_345,
                detail: "UPS traps with another community than the UPS's".into(),
                source: Some("192.168.61.250".parse().unwrap()),
                event: Some(Event::LowBattery),
            }),
            Record::Input(Input::Event {
                source: "192.168.61.249".parse().unwrap(),
                ups: Some("ups-annex".into()),
                recorder: None,
                community: "upsv3user".into(),
                security_level: Some(crate::wire::v3::Level::AuthPriv),
                event: Event::OnBattery,
                rule: "upsOnBattery".into(),
                index: None,
            }),
            Record::Input(Input::NutLeft {
                recorder: "nas-2".into(),
            }),
            Record::Action(Action::Role {
                role: "actor".into(),
                detail: "holds 192.0.2.100".into(),
            }),
            Record::Action(Action::FromPeer {
                peer: "192.0.2.2:1620".parse().unwrap(),
                seq: 7,
                made: "2026-12-06T22:00:00.000Z".into(),
                record: Box::new(Record::Decision(Decided::Acknowledged {
                    recorder: "nvr-244".into(),
                })),
            }),
        ]
    }

    #[test]
    fn every_record_reads_back_as_written() {
        let mut line = Vec::new();
        for (i, r) in samples().into_iter().enumerate() {
            write_line(Timestamp(i as u64), &r, &mut line);
            assert_eq!(line.last(), Some(&b'\n'));
            let (t, back) = read_line(&line[..line.len() - 1]).expect("reads");
            assert_eq!((t, &back), (Timestamp(i as u64), &r));
        }
    }

    #[test]
    fn a_damaged_line_or_another_version_is_named_not_misread() {
        let mut line = Vec::new();
        write_line(Timestamp(7), &samples()[3], &mut line);
        let mut flipped = line.clone();
        flipped[30] ^= 1;
        assert!(matches!(
            read_line(&flipped[..flipped.len() - 1]),
            Err(LineError::Damaged(_))
        ));
        let other = "{\"v\":5,\"t\":7,\"decision\":\"Acknowledged\",\"recorder\":\"nvr-1\"}";
        let line = format!("{:08x} {other}", crc32fast::hash(other.as_bytes()));
        let e = read_line(line.as_bytes()).unwrap_err();
        assert_eq!(e, LineError::Version(Some(5)));
        assert!(e.to_string().contains("journal format 5"), "{e}");
        assert!(e.to_string().contains("reads formats 1 to 4"), "{e}");
        let old = "{\"t\":7,\"decision\":\"Acknowledged\",\"recorder\":\"nvr-1\"}";
        let line = format!("{:08x} {old}", crc32fast::hash(old.as_bytes()));
        assert_eq!(
            read_line(line.as_bytes()).unwrap_err(),
            LineError::Version(None)
        );
        // A record renamed (or an unknown one) is damage, not something else.
        let unknown = "{\"v\":1,\"t\":7,\"action\":\"Sentt\",\"recorder\":\"nvr-1\"}";
        let line = format!("{:08x} {unknown}", crc32fast::hash(unknown.as_bytes()));
        assert!(matches!(
            read_line(line.as_bytes()),
            Err(LineError::Damaged(_))
        ));
    }

    #[test]
    fn printed_records_carry_their_times_as_utc() {
        let printed = samples()[3].printed(Timestamp(1_551_946_833_504_849_000), 0);
        assert_eq!(
            printed.to_string(),
            "{\"time\":\"2019-03-07T08:20:33.504849Z\",\"decision\":\"ShutdownRecorder\",\"ups\":\"ups-main\",\"recorder\":\"nvr-244\",\"tier\":2,\"deadline\":\"2019-03-07T08:22:08.504849Z\",\"reason\":\"lowBattery confirmed by poll\",\"event\":\"LowBattery\",\"rule\":\"lowBattery\"}"
        );
        let real = samples()[4].printed(Timestamp(0), 0);
        assert_eq!(real["percent"], "real");
        let text = samples()[6].readable(Timestamp(0));
        assert!(
            text.ends_with("Sent recorder=nvr-244 attempt=2 to=192.168.61.244:162 detail=APC lowBattery v1 trap"),
            "{text}"
        );
        assert!(samples()[6].concerns("nvr-244") && !samples()[6].concerns("ups-main"));
        // A refusal shows what `--json` has: its reason, and the last source and event.
        let text = samples()[7].readable(Timestamp(0));
        assert!(
            text.ends_with("Refused reason=wrong_community count=12345 source=192.168.61.250 event=LowBattery detail=UPS traps with another community than the UPS's"),
            "{text}"
        );
    }
}
