//! The site: gateway, UPSes, recorders, shutdown policy and extra trap rules, read from
//! `site.toml` and checked once into an immutable `Site`.
//!
//! Every mistake is reported, not only the first: unknown keys, wrong types, bad
//! addresses, a recorder on an unknown UPS, duplicate names, thresholds out of range,
//! each with its line and column (`toml-span` keeps the position of every item). The
//! seed's site is embedded and used when no file is given.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use toml_span::de_helpers::TableHelper;
use toml_span::value::{Value, ValueInner};
use toml_span::{DeserError, Deserialize, Span, Spanned};

use crate::classify::rules::{Ev, TrapRule};
use crate::classify::{Classifier, Event};
use crate::engine::forward;
use crate::engine::id::{PduId, RecorderId, UpsId};
use crate::wire::OidBuf;

mod notify;
mod pair;
mod power;
mod usm;
pub use pair::{MIN_PAIR_KEY, Pair, PairKey};
pub use power::{
    Pdu, PduVendor, Plug, WOL_BROADCAST, Wol, Write, has_groups, has_output_control, parse_mac,
};
pub use usm::{MIN_PASSPHRASE, REDACTED, SecretAt, Secrets, UsmUser, V3Access, no_secrets};

/// The most `[[notify]]` targets a site may have.
pub const MAX_NOTIFY: usize = 16;

/// The embedded default site: the seed's APC UPS and its two NVRs.
pub const DEFAULT_SITE: &str = include_str!("default-site.toml");

/// A length of time, in whole seconds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Secs(pub u32);

/// The gateway's own sockets and community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// Where UPS traps (and recorder acknowledgements) arrive.
    pub listen: Vec<SocketAddr>,
    /// Where the virtual UPS agent answers recorders' get-requests.
    pub agent: SocketAddr,
    /// The community trapgate uses in what it sends to recorders.
    pub community: String,
    /// How long an `exec` recorder's command may run before it is killed.
    pub exec_timeout: Secs,
    /// Receive workers (each with its own socket on every listen address); 0: one per core but one.
    pub workers: usize,
    /// The largest SNMP message the virtual UPS answers with (RFC 3416's maximum message
    /// size; net-snmp's default is 1472, one Ethernet datagram).
    pub max_message_size: usize,
    /// Its SNMPv3 engine ID, as the authoritative engine of the informs it receives (and
    /// of what it sends over v3); None: derived from the host's name (`local_engine_id`).
    pub engine_id: Option<Vec<u8>>,
    /// Where its Network UPS Tools server listens (None: off).
    pub nut: Option<SocketAddr>,
    /// Where its apcupsd network information server listens (None: off).
    pub nis: Option<SocketAddr>,
    /// Where its HTTP endpoint (metrics, status page) listens (None: off).
    pub http: Option<SocketAddr>,
}

/// The smallest maximum message size SNMP allows (RFC 3417 §3.2: 484 octets).
pub const MIN_MESSAGE_SIZE: usize = 484;
/// The default maximum message size: net-snmp's, one Ethernet datagram (1500 − 28).
pub const DEFAULT_MESSAGE_SIZE: usize = 1472;

impl Default for Gateway {
    /// What a site file that leaves a key (or all of `[gateway]`) out gets.
    fn default() -> Self {
        Gateway {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 162))],
            agent: SocketAddr::from(([0, 0, 0, 0], 161)),
            community: "public".to_string(),
            exec_timeout: Secs(30),
            workers: 0,
            max_message_size: DEFAULT_MESSAGE_SIZE,
            engine_id: None,
            nut: None,
            nis: None,
            http: None,
        }
    }
}

/// What to do with a shutdown trap the UPS does not confirm when polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unconfirmed {
    /// Trust the trap: shut down.
    Shutdown,
    /// Refuse to act on it (and say so).
    Ignore,
}

/// The site's shutdown policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Time on battery before each tier shuts down (tier 1 is the most critical).
    pub grace: BTreeMap<u8, Secs>,
    /// Shut everything down when the UPS's charge falls below this percentage.
    pub shutdown_below_charge: u8,
    /// Shut everything down when the UPS's runtime falls below this.
    pub shutdown_below_runtime: Secs,
    /// Poll the UPS to confirm a shutdown trap before acting on it.
    pub confirm_by_poll: bool,
    /// What a shutdown trap the UPS does not confirm leads to.
    pub when_unconfirmed: Unconfirmed,
    /// How long to wait for the confirming poll.
    pub poll_timeout: Secs,
    /// How long a recorder has to acknowledge a shutdown order before it is told again.
    pub ack_timeout: Secs,
}

/// Which MIB a UPS card speaks (for polling and for its traps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// APC / Schneider PowerNet-MIB.
    Apc,
    /// RFC 1628 UPS-MIB.
    UpsMib,
    /// Eaton XUPS-MIB.
    Eaton,
    /// MGE / legacy Eaton MG-SNMP-UPS-MIB.
    Mge,
    /// CyberPower CPS-MIB.
    CyberPower,
    /// Megatec / PPC XPPC-MIB.
    Megatec,
    /// Liebert / Vertiv.
    Liebert,
    /// Socomec Net Vision.
    Socomec,
    /// Delta.
    Delta,
}

impl Vendor {
    /// Its maker, as a NUT client reads `ups.mfr`.
    pub fn maker(self) -> &'static str {
        match self {
            Vendor::Apc => "APC",
            Vendor::UpsMib => "RFC 1628 UPS",
            Vendor::Eaton => "Eaton",
            Vendor::Mge => "MGE",
            Vendor::CyberPower => "CyberPower",
            Vendor::Megatec => "Megatec",
            Vendor::Liebert => "Liebert",
            Vendor::Socomec => "Socomec",
            Vendor::Delta => "Delta",
        }
    }

    /// Its name in the site file (`vendor = "..."`).
    pub fn name(self) -> &'static str {
        Vendor::NAMES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }

    const NAMES: [(&'static str, Vendor); 9] = [
        ("apc", Vendor::Apc),
        ("ups-mib", Vendor::UpsMib),
        ("eaton", Vendor::Eaton),
        ("mge", Vendor::Mge),
        ("cyberpower", Vendor::CyberPower),
        ("megatec", Vendor::Megatec),
        ("liebert", Vendor::Liebert),
        ("socomec", Vendor::Socomec),
        ("delta", Vendor::Delta),
    ];
}

/// Whether the UPS switches its outlets on again by itself when mains power returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Outlets on again when power returns (the seed's setup).
    Auto,
    /// Outlets stay off until someone switches them on.
    Manual,
}

/// One UPS, as configured on its card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ups {
    /// Its name in the site.
    pub name: String,
    /// The address its traps come from.
    pub address: IpAddr,
    /// The community its traps carry (and polls use).
    pub community: String,
    /// The UDP port its SNMP agent answers polls on.
    pub port: u16,
    /// Its MIB.
    pub vendor: Vendor,
    /// How often trapgate polls it.
    pub poll_interval: Secs,
    /// How long after it starts shutting down it cuts its outlets.
    pub outlet_off_delay: Secs,
    /// `outlet_off_delay` was left out: the card's shutoff delay is taken when trapgate
    /// reads it (at start and at each reload; APC and CyberPower cards). Until then it
    /// stands at the slowest `shutdown_time` of the recorders the UPS feeds.
    pub off_delay_from_card: bool,
    /// Outlet behaviour when mains power returns.
    pub restart: Restart,
    /// Battery runtime at the site's load, if known.
    pub runtime: Option<Secs>,
    /// SNMPv3: the user and least level its traps must come with (None: a community
    /// UPS, v1 or v2c).
    pub v3: Option<V3Access>,
    /// How trapgate writes to its card (the SETs that cycle its outlets), if it may.
    pub write: Option<Write>,
}

/// How a recorder is told to shut down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecorderKind {
    /// An NVR that acts on UPS traps: trapgate relays the trap it expects.
    TrapRelay,
    /// Any other device: trapgate runs this command.
    Exec(String),
    /// An apcupsd network client: it reads its status from trapgate's apcupsd network
    /// information server (NIS) and shuts down on ONBATT LOWBATT.
    Apcupsd,
    /// A Network UPS Tools client (a NAS, upsmon): it reads its status from trapgate's
    /// NUT server, logging in as `user` with `password` to the UPS named `ups`.
    Nut {
        /// Its NUT user name.
        user: String,
        /// Its NUT password.
        password: String,
        /// The UPS name it asks for (Synology's DSM asks for `ups`).
        ups: String,
    },
}

impl RecorderKind {
    /// Its name in the site file (`kind = "..."`).
    pub fn name(&self) -> &'static str {
        match self {
            RecorderKind::TrapRelay => "trap-relay",
            RecorderKind::Exec(_) => "exec",
            RecorderKind::Apcupsd => "apcupsd",
            RecorderKind::Nut { .. } => "nut",
        }
    }
}

/// One recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorder {
    /// Its name in the site.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
    /// Its trap port.
    pub port: u16,
    /// Its UPS (its first feed).
    pub ups: UpsId,
    /// Every UPS that feeds it (its power supplies), `ups` first.
    pub feeds: Vec<UpsId>,
    /// How many of its feeds must still carry it for it to keep running.
    pub needs: u8,
    /// Its priority tier: 1 is the most critical, shut down last.
    pub tier: u8,
    /// How long it needs to shut down cleanly.
    pub shutdown_time: Secs,
    /// How long it takes to be back (polling the gateway) once power returns.
    pub boot_time: Secs,
    /// How it is told.
    pub kind: RecorderKind,
    /// The community it uses towards its "UPS" (the gateway): in its acknowledgements and
    /// polls, and in the traps trapgate sends it. Default: `[gateway] community`.
    pub community: String,
    /// SNMPv3: the user and least level of its polls and acknowledgements, and of the
    /// orders trapgate sends it (None: its community, v1/v2c).
    pub v3: Option<V3Access>,
    /// The outlet that feeds it, where trapgate may cycle it.
    pub outlet: Option<Plug>,
    /// Its Wake-on-LAN, if it has one.
    pub wol: Option<Wol>,
}

/// A checked site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The gateway.
    pub gateway: Gateway,
    /// The policy.
    pub policy: Policy,
    /// The UPSes.
    pub upses: Vec<Ups>,
    /// The recorders.
    pub recorders: Vec<Recorder>,
    /// The switched PDUs (`[[pdu]]`).
    pub pdus: Vec<Pdu>,
    /// The SNMPv3 users.
    pub usm_users: Vec<UsmUser>,
    /// Extra trap rules, added to the built-in tables.
    pub rules: Vec<TrapRule>,
    /// Where notifications are forwarded (`[[forward]]`).
    pub forwarding: crate::engine::forward::Forwarding,
    /// The pair of gateways this one is half of (`[pair]`), if it is.
    pub pair: Option<Pair>,
    /// The site's other systems, told of its records (`[[notify]]`).
    pub notify: Vec<crate::engine::tell::Target>,
    /// The text it was read from, every inline passphrase replaced by `REDACTED`
    /// (journaled, so that a restart decides with the site the journal's decisions were
    /// made with); empty for a site built in code.
    pub text: std::sync::Arc<str>,
}

/// Which UPS and recorder of an old site each one of a new site is, so that a reload
/// carries each machine's state over (outages, orders, acknowledgements, presented
/// values, outstanding polls). A UPS is the same if it keeps its name and address; a
/// recorder if it keeps its name and stays on the same UPS. Everything else is new.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remap {
    /// For each UPS of the new site (indexed by its id), its id in the old one.
    pub ups: Vec<Option<UpsId>>,
    /// For each recorder of the new site (indexed by its id), its id in the old one.
    pub recorders: Vec<Option<RecorderId>>,
}

impl Remap {
    /// The remap from `old` to `new` (linear: hash maps of the old site's names).
    pub fn between(old: &Site, new: &Site) -> Remap {
        let old_ups: HashMap<(&str, IpAddr), UpsId> = UpsId::enumerate(&old.upses)
            .map(|(i, u)| ((u.name.as_str(), u.address), i))
            .collect();
        let old_recorders: HashMap<&str, RecorderId> = RecorderId::enumerate(&old.recorders)
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let ups: Vec<Option<UpsId>> = new
            .upses
            .iter()
            .map(|u| old_ups.get(&(u.name.as_str(), u.address)).copied())
            .collect();
        let recorders = new
            .recorders
            .iter()
            .map(|r| {
                let o = *old_recorders.get(r.name.as_str())?;
                (ups[r.ups] == Some(old.recorders[o].ups)).then_some(o)
            })
            .collect();
        Remap { ups, recorders }
    }

    /// Each UPS the new site keeps: its id in the new site and in the old one.
    pub fn kept_upses(&self) -> impl Iterator<Item = (UpsId, UpsId)> + '_ {
        UpsId::enumerate(&self.ups).filter_map(|(new, old)| Some((new, (*old)?)))
    }

    /// Each recorder the new site keeps: its id in the new site and in the old one.
    pub fn kept_recorders(&self) -> impl Iterator<Item = (RecorderId, RecorderId)> + '_ {
        RecorderId::enumerate(&self.recorders).filter_map(|(new, old)| Some((new, (*old)?)))
    }

    /// Per-UPS values of the old site carried to the new one: a kept UPS's own value, a
    /// new UPS's `fresh`.
    pub fn carry_upses<T: Clone>(&self, old: &[T], fresh: T) -> Vec<T> {
        self.ups
            .iter()
            .map(|o| o.map_or_else(|| fresh.clone(), |o| old[o].clone()))
            .collect()
    }

    /// Per-recorder values of the old site carried to the new one: a kept recorder's own
    /// value, a new recorder's `fresh`.
    pub fn carry_recorders<T: Clone>(&self, old: &[T], fresh: T) -> Vec<T> {
        self.recorders
            .iter()
            .map(|o| o.map_or_else(|| fresh.clone(), |o| old[o].clone()))
            .collect()
    }
}

/// How a recorder is told, for telling recorders that share an address apart: NUT
/// clients by their user names, apcupsd's NIS and NUT by their servers; anything SNMP
/// by its address alone.
enum Speaks<'a> {
    Snmp,
    Nut(&'a str),
    Apcupsd,
}

/// One mistake in a site file, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, as a sentence.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Where each line of a text starts, to turn byte offsets into line and column without
/// rescanning the text for every mistake (a file may have 100,000 of them).
struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Lines<'t> {
        let starts = core::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// Line and column (1-based, the column in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |l| l.chars().count());
        (line, column + 1)
    }
}

/// Collects mistakes with their spans while a site is read.
struct Mistakes {
    found: Vec<(Span, String)>,
    /// Inline passphrases, to be kept out of `Site::text`.
    secret_spans: Vec<Span>,
}

impl Mistakes {
    fn add(&mut self, span: Span, message: impl Into<String>) {
        self.found.push((span, message.into()));
    }

    fn absorb(&mut self, e: DeserError) {
        for err in e.errors {
            if let toml_span::ErrorKind::UnexpectedKeys { keys, expected } = &err.kind {
                // One mistake per unknown key, at the key.
                for (key, span) in keys {
                    self.add(
                        *span,
                        format!(
                            "unknown key `{key}` (expected one of: {})",
                            expected.join(", ")
                        ),
                    );
                }
            } else {
                self.add(err.span, describe(&err));
            }
        }
    }
}

fn describe(err: &toml_span::Error) -> String {
    use toml_span::ErrorKind as K;
    match &err.kind {
        K::MissingField(name) => format!("missing key `{name}`"),
        K::Wanted { expected, found } => format!("expected {expected}, found {found}"),
        K::DuplicateKey { key, .. } => format!("duplicate key `{key}`"),
        other => other.to_string(),
    }
}

/// A forward target's `host:port`: IPv4, `[IPv6]:port`, or a name `secrets` resolves.
fn resolve(s: &str, secrets: Secrets<'_>) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(format!(
            "`{s}` has no port: write host:port (\"nms.example:162\", \"[2001:db8::1]:162\")"
        ));
    }
    // A name: resolved outside (the engine looks nothing up).
    match secrets(SecretAt::Host(s)) {
        Ok(a) => a
            .parse()
            .map_err(|_| format!("`{s}` resolves to `{a}`, not an address:port")),
        Err(e) => Err(format!("`{s}` cannot be resolved: {e}")),
    }
}

/// Reads a length of time: whole seconds, or a string like "90s", "5m", "1h".
fn secs(v: &mut Value<'_>, m: &mut Mistakes) -> Option<Secs> {
    let span = v.span;
    match v.take() {
        ValueInner::Integer(n) if (0..=u32::MAX as i64).contains(&n) => Some(Secs(n as u32)),
        ValueInner::String(s) => {
            let s = s.trim();
            let (digits, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let scale = match unit.trim() {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3600,
                _ => 0,
            };
            match digits
                .parse::<u32>()
                .ok()
                .and_then(|n| n.checked_mul(scale))
            {
                Some(n) if scale > 0 => Some(Secs(n)),
                _ => {
                    m.add(
                        span,
                        format!(
                            "`{s}` is not a duration (write seconds, or \"90s\", \"5m\", \"1h\")"
                        ),
                    );
                    None
                }
            }
        }
        _ => {
            m.add(
                span,
                "expected a duration (seconds, or a string like \"90s\", \"5m\", \"1h\")",
            );
            None
        }
    }
}

/// A table being read, and where it is (for "missing key" mistakes).
struct Tbl<'de> {
    h: TableHelper<'de>,
    span: Span,
}

fn table<'de>(v: &mut Value<'de>, m: &mut Mistakes) -> Option<Tbl<'de>> {
    let span = v.span;
    match TableHelper::new(v) {
        Ok(h) => Some(Tbl { h, span }),
        Err(e) => {
            m.absorb(e);
            None
        }
    }
}

fn finish(t: Tbl<'_>, m: &mut Mistakes) {
    if let Err(e) = t.h.finalize(None) {
        m.absorb(e);
    }
}

// Readers of one key. Each records its mistakes in `m`; a site with any mistake is
// refused as a whole, so where a value is wrong a reader may return a stand-in.

fn required<'de>(t: &mut Tbl<'de>, key: &'static str, m: &mut Mistakes) -> Option<Value<'de>> {
    let v = t.h.take(key).map(|(_, v)| v);
    if v.is_none() {
        m.add(t.span, format!("missing key `{key}`"));
    }
    v
}

fn text(v: Option<Value<'_>>, m: &mut Mistakes) -> Option<Spanned<String>> {
    let mut v = v?;
    match Spanned::<String>::deserialize(&mut v) {
        Ok(s) => Some(s),
        Err(e) => {
            m.absorb(e);
            None
        }
    }
}

fn parse_as<T: std::str::FromStr>(
    v: Option<Spanned<String>>,
    what: &str,
    m: &mut Mistakes,
) -> Option<T> {
    let s = v?;
    let parsed = s.value.parse().ok();
    if parsed.is_none() {
        m.add(s.span, format!("`{}` is not {what}", s.value));
    }
    parsed
}

fn one_of<T: Copy>(v: Option<Spanned<String>>, names: &[(&str, T)], m: &mut Mistakes) -> Option<T> {
    let s = v?;
    let found = names.iter().find(|(n, _)| *n == s.value).map(|(_, v)| *v);
    if found.is_none() {
        let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        m.add(
            s.span,
            format!("`{}` is not one of: {}", s.value, all.join(", ")),
        );
    }
    found
}

fn int_in<T: TryFrom<i64>>(
    v: Option<Value<'_>>,
    key: &str,
    range: (i64, i64),
    m: &mut Mistakes,
) -> Option<T> {
    let mut v = v?;
    let span = v.span;
    match v.take() {
        ValueInner::Integer(n) if (range.0..=range.1).contains(&n) => T::try_from(n).ok(),
        ValueInner::Integer(n) => {
            m.add(
                span,
                format!("`{key}` = {n} is out of range ({} to {})", range.0, range.1),
            );
            None
        }
        other => {
            m.add(
                span,
                format!("`{key}` must be an integer, found {}", other.type_str()),
            );
            None
        }
    }
}

fn duration(v: Option<Value<'_>>, m: &mut Mistakes) -> Option<Secs> {
    secs(&mut v?, m)
}

fn flag(v: Option<Value<'_>>, m: &mut Mistakes) -> Option<bool> {
    let mut v = v?;
    match bool::deserialize(&mut v) {
        Ok(b) => Some(b),
        Err(e) => {
            m.absorb(e);
            None
        }
    }
}

/// An optional key's value: `default` where the key is absent, else what `read` makes of
/// it (None, with the mistake noted, if it is wrong).
fn or_default<'de, T>(
    v: Option<Value<'de>>,
    default: T,
    read: impl FnOnce(Option<Value<'de>>) -> Option<T>,
) -> Option<T> {
    match v {
        None => Some(default),
        v => read(v),
    }
}

fn optional<'de>(t: &mut Tbl<'de>, key: &'static str) -> Option<Value<'de>> {
    t.h.take(key).map(|(_, v)| v)
}

/// The items of an array of tables (`[[ups]]`).
fn items<'de>(v: Option<Value<'de>>, m: &mut Mistakes) -> Vec<Value<'de>> {
    let Some(mut v) = v else { return Vec::new() };
    let span = v.span;
    match v.take() {
        ValueInner::Array(a) => a,
        other => {
            m.add(
                span,
                format!(
                    "expected an array of tables ([[...]]), found {}",
                    other.type_str()
                ),
            );
            Vec::new()
        }
    }
}

/// What `[[ups]]` and `[[recorder]]` entries are known by, even when broken.
struct Named<T> {
    name: Option<Spanned<String>>,
    at: Span,
    item: Option<T>,
}

impl<T> Named<T> {
    /// An entry that is not a table: nothing read from it.
    fn unread(at: Span) -> Named<T> {
        Named {
            name: None,
            at,
            item: None,
        }
    }
}

/// Where a recorder's `ups` and `outlet` may point.
struct Places<'a> {
    upses: &'a HashMap<&'a str, UpsId>,
    /// Each UPS's vendor and whether trapgate may write to its card (None: unread).
    ups_power: &'a [Option<(Vendor, bool)>],
    pdus: &'a HashMap<&'a str, PduId>,
}

impl Site {
    /// Reads and checks a site file. On failure, every mistake found, in file order.
    /// Passphrases must be inline (`parse_with` reads files and the environment).
    pub fn parse(text: &str) -> Result<Site, Vec<ConfigError>> {
        Site::parse_with(text, &no_secrets)
    }

    /// Reads and checks a site file whose passphrases kept elsewhere `secrets` reads.
    pub fn parse_with(text: &str, secrets: Secrets<'_>) -> Result<Site, Vec<ConfigError>> {
        let mut m = Mistakes {
            found: Vec::new(),
            secret_spans: Vec::new(),
        };
        let site = match toml_span::parse(text) {
            Ok(mut root) => Self::read(&mut root, secrets, &mut m),
            Err(e) => {
                m.add(e.span, describe(&e));
                None
            }
        };
        match site {
            Some(mut site) if m.found.is_empty() => {
                site.text = usm::redact(text, &mut m.secret_spans).into();
                Ok(site)
            }
            _ => {
                let lines = Lines::new(text);
                let mut errors: Vec<(usize, ConfigError)> = m
                    .found
                    .into_iter()
                    .map(|(span, message)| {
                        let (line, column) = lines.position(span.start);
                        (
                            span.start,
                            ConfigError {
                                line,
                                column,
                                message,
                            },
                        )
                    })
                    .collect();
                errors.sort_by_key(|(at, _)| *at);
                Err(errors.into_iter().map(|(_, e)| e).collect())
            }
        }
    }

    /// The embedded default site.
    pub fn default_site() -> Site {
        Site::parse(DEFAULT_SITE).expect("the embedded default site is valid (tested)")
    }

    fn read(root: &mut Value<'_>, secrets: Secrets<'_>, m: &mut Mistakes) -> Option<Site> {
        let mut top = table(root, m)?;
        // An absent [gateway] takes the defaults.
        let gateway = match optional(&mut top, "gateway") {
            Some(mut v) => Self::gateway(&mut v, m),
            None => Some(Gateway::default()),
        };
        let (policy, grace) = match required(&mut top, "policy", m) {
            Some(mut v) => Self::policy(&mut v, m),
            None => (None, BTreeMap::new()),
        };
        let ups_items = items(optional(&mut top, "ups"), m);
        let pdu_items = items(optional(&mut top, "pdu"), m);
        let recorder_items = items(optional(&mut top, "recorder"), m);
        // Ids are 32-bit (`crate::engine::id`).
        for (kind, n) in [
            ("[[ups]]", ups_items.len()),
            ("[[recorder]]", recorder_items.len()),
        ] {
            if u32::try_from(n).is_err() {
                m.add(
                    top.span,
                    format!(
                        "the site has {n} {kind}: trapgate takes at most {}",
                        u32::MAX
                    ),
                );
                return None;
            }
        }
        let rule_items = items(optional(&mut top, "rule"), m);
        let user_items = items(optional(&mut top, "usm_user"), m);
        let forward_items = items(optional(&mut top, "forward"), m);
        let pair_at =
            optional(&mut top, "pair").map(|mut v| (v.span, pair::pair(&mut v, secrets, m)));
        let notify_items = items(optional(&mut top, "notify"), m);
        let top_span = top.span;
        finish(top, m);

        let users: Vec<Option<(Span, UsmUser)>> = user_items
            .into_iter()
            .map(|mut v| usm::user(&mut v, secrets, m))
            .collect();
        // One name, one user, unless each is for its own engine (createUser -e).
        let mut user_names: HashMap<&str, Option<&[u8]>> = HashMap::new();
        for (span, u) in users.iter().flatten() {
            match user_names.entry(u.name.as_str()) {
                Entry::Vacant(v) => {
                    v.insert(u.engine_id.as_deref());
                }
                Entry::Occupied(o) => {
                    if o.get().is_none()
                        || u.engine_id.is_none()
                        || *o.get() == u.engine_id.as_deref()
                    {
                        m.add(*span, format!("duplicate [[usm_user]] `{}` (two users of one name need each its own `engine_id`)", u.name));
                    }
                }
            }
        }
        let users_read: Vec<(Span, UsmUser)> = users.iter().flatten().cloned().collect();
        let upses: Vec<Named<Ups>> = ups_items
            .into_iter()
            .map(|mut v| Self::ups(&mut v, &users_read, secrets, m))
            .collect();
        let pdus: Vec<(Option<Spanned<String>>, Span, Option<Pdu>)> = pdu_items
            .into_iter()
            .map(|mut v| power::pdu(&mut v, &users_read, secrets, m))
            .collect();
        let mut pdu_index: HashMap<&str, PduId> = HashMap::with_capacity(pdus.len());
        for (i, (name, _, _)) in PduId::enumerate(&pdus) {
            if let Some(name) = name
                && pdu_index.insert(name.value.as_str(), i).is_some()
            {
                m.add(name.span, format!("duplicate PDU name `{}`", name.value));
            }
        }
        if upses.is_empty() {
            m.add(
                top_span,
                "the site has no [[ups]]: trapgate would have nothing to hear. Add a [[ups]] for each UPS (name, address, community or user, vendor, outlet_off_delay) and a [[recorder]] for each recorder it feeds (name, address, ups, tier, shutdown_time); a template has them commented out (man trapgate-site.toml)",
            );
        }
        // Names and addresses are checked through maps: a site may list 100,000 entries.
        let mut ups_index: HashMap<&str, UpsId> = HashMap::with_capacity(upses.len());
        let mut ups_at: HashMap<IpAddr, &str> = HashMap::with_capacity(upses.len());
        for (i, u) in UpsId::enumerate(&upses) {
            let Some(name) = &u.name else { continue };
            // The first of a name is the one recorders refer to.
            match ups_index.entry(name.value.as_str()) {
                Entry::Occupied(_) => {
                    m.add(name.span, format!("duplicate UPS name `{}`", name.value))
                }
                Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
            let Some(x) = &u.item else { continue };
            match ups_at.entry(x.address) {
                Entry::Occupied(other) => m.add(
                    u.at,
                    format!(
                        "UPS `{}` has the same address as UPS `{}`: their traps could not be told apart",
                        name.value,
                        other.get()
                    ),
                ),
                Entry::Vacant(v) => {
                    v.insert(name.value.as_str());
                }
            }
        }
        let community = gateway
            .as_ref()
            .map_or_else(|| Gateway::default().community, |g| g.community.clone());
        // What a recorder's `outlet` needs of its UPS: its vendor, whether it may be
        // written to.
        let ups_power: Vec<Option<(Vendor, bool)>> = upses
            .iter()
            .map(|u| u.item.as_ref().map(|x| (x.vendor, x.write.is_some())))
            .collect();
        let places = Places {
            upses: &ups_index,
            ups_power: &ups_power,
            pdus: &pdu_index,
        };
        let recorders: Vec<Named<Recorder>> = recorder_items
            .into_iter()
            .map(|mut v| Self::recorder(&mut v, &places, &grace, &community, &users_read, m))
            .collect();
        let mut recorder_names: HashSet<&str> = HashSet::with_capacity(recorders.len());
        // An address is one recorder's, but for NUT clients: several behind one address
        // stay apart by their user names.
        let mut recorder_at: HashMap<IpAddr, Vec<(&str, Speaks<'_>)>> =
            HashMap::with_capacity(recorders.len());
        for r in &recorders {
            let Some(name) = &r.name else { continue };
            if !recorder_names.insert(name.value.as_str()) {
                m.add(
                    name.span,
                    format!("duplicate recorder name `{}`", name.value),
                );
            }
            let Some(x) = &r.item else { continue };
            if let Some(ups) = ups_at.get(&x.address) {
                m.add(r.at, format!("recorder `{}` has the address of UPS `{ups}`: trapgate could not tell its acknowledgements from the UPS's traps", name.value));
            } else {
                let speaks = match &x.kind {
                    RecorderKind::Nut { user, .. } => Speaks::Nut(user.as_str()),
                    RecorderKind::Apcupsd => Speaks::Apcupsd,
                    _ => Speaks::Snmp,
                };
                let others = recorder_at.entry(x.address).or_default();
                let clash = others.iter().find(|(_, o)| match (o, &speaks) {
                    (Speaks::Nut(a), Speaks::Nut(b)) => a == b,
                    (Speaks::Nut(_), Speaks::Apcupsd) | (Speaks::Apcupsd, Speaks::Nut(_)) => false,
                    _ => true,
                });
                match clash {
                    Some((other, Speaks::Nut(_))) if matches!(speaks, Speaks::Nut(_)) => m.add(r.at, format!("recorder `{}` has the same address and NUT user as recorder `{other}`: their NUT clients could not be told apart", name.value)),
                    Some((other, _)) => m.add(r.at, format!("recorder `{}` has the same address as recorder `{other}`: their acknowledgements and polls could not be told apart", name.value)),
                    None => others.push((name.value.as_str(), speaks)),
                }
            }
        }
        let rules: Vec<Option<(Span, TrapRule)>> = rule_items
            .into_iter()
            .map(|mut v| Self::rule(&mut v, m))
            .collect();
        let mut rule_oids: HashSet<&[u8]> = HashSet::with_capacity(rules.len());
        for (span, rule) in rules.iter().flatten() {
            if !rule_oids.insert(rule.oid.as_bytes()) {
                m.add(
                    *span,
                    format!("another [[rule]] has the same oid {}", rule.oid),
                );
            }
        }
        if forward_items.len() > forward::MAX_TARGETS {
            m.add(
                top_span,
                format!(
                    "the site has {} [[forward]]: trapgate forwards to at most {}",
                    forward_items.len(),
                    forward::MAX_TARGETS
                ),
            );
        }
        let forwards: Vec<Option<forward::Target>> = forward_items
            .into_iter()
            .map(|mut v| Self::forward(&mut v, secrets, m))
            .collect();
        let mut upses: Vec<Ups> = upses.into_iter().map(|u| u.item).collect::<Option<_>>()?;
        let recorders: Vec<Recorder> = recorders
            .into_iter()
            .map(|r| r.item)
            .collect::<Option<_>>()?;
        // A delay to be read from the card stands, until then, at the least it must be.
        for (i, ups) in upses.iter_mut().enumerate() {
            let u = UpsId::new(i);
            if ups.off_delay_from_card {
                ups.outlet_off_delay = recorders
                    .iter()
                    .filter(|r| r.feeds.contains(&u))
                    .map(|r| r.shutdown_time)
                    .max()
                    .unwrap_or(Secs(0));
            }
        }
        if notify_items.len() > MAX_NOTIFY {
            m.add(
                top_span,
                format!(
                    "the site has {} [[notify]]: trapgate tells at most {MAX_NOTIFY}",
                    notify_items.len()
                ),
            );
        }
        let notify: Vec<Option<crate::engine::tell::Target>> = notify_items
            .into_iter()
            .map(|mut v| {
                let at = v.span;
                notify::target(&mut v, secrets, m).map(|t| (at, t))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .scan(HashSet::new(), |seen, t| {
                Some(t.and_then(|(at, t)| {
                    // Its label names it on /metrics and in the journal: one each.
                    if seen.insert(t.label()) {
                        Some(t)
                    } else {
                        m.add(
                            at,
                            format!("another [[notify]] is the same target ({}): write one, with the `match` of both", t.label()),
                        );
                        None
                    }
                }))
            })
            .collect();
        let pair = match pair_at {
            None => None,
            Some((at, pair)) => {
                let pair = pair?;
                if let Some(g) = &gateway {
                    pair::check_doors(
                        &pair,
                        &[("agent", Some(g.agent)), ("nut", g.nut), ("nis", g.nis)],
                        at,
                        m,
                    );
                }
                let ours = [pair.this.ip(), pair.peer.ip(), pair.address];
                let devices = upses
                    .iter()
                    .map(|u| ("UPS", &u.name, u.address))
                    .chain(recorders.iter().map(|r| ("recorder", &r.name, r.address)));
                for (what, name, address) in devices {
                    if ours.contains(&address) {
                        m.add(
                            at,
                            format!("[pair]: {what} `{name}` has one of the pair's addresses ({address})"),
                        );
                    }
                }
                if !m.found.is_empty() {
                    return None;
                }
                Some(pair)
            }
        };
        Some(Site {
            notify: notify.into_iter().collect::<Option<_>>()?,
            pair,
            forwarding: forward::Forwarding::new(forwards.into_iter().collect::<Option<_>>()?),
            text: "".into(),
            gateway: gateway?,
            policy: policy?,
            upses,
            pdus: pdus.into_iter().map(|(_, _, p)| p).collect::<Option<_>>()?,
            recorders,
            usm_users: users
                .into_iter()
                .map(|u| u.map(|(_, u)| u))
                .collect::<Option<_>>()?,
            rules: rules
                .into_iter()
                .map(|r| r.map(|(_, rule)| rule))
                .collect::<Option<_>>()?,
        })
    }

    fn gateway(v: &mut Value<'_>, m: &mut Mistakes) -> Option<Gateway> {
        let mut t = table(v, m)?;
        let d = Gateway::default();
        let listen = match optional(&mut t, "listen") {
            None => Some(d.listen),
            Some(mut v) => match Vec::<Spanned<String>>::deserialize(&mut v) {
                Ok(list) => list
                    .into_iter()
                    .map(|s| {
                        parse_as(
                            Some(s),
                            "an address:port (e.g. \"0.0.0.0:162\" or \"[::]:162\")",
                            m,
                        )
                    })
                    .collect(),
                Err(e) => {
                    m.absorb(e);
                    None
                }
            },
        };
        let agent = or_default(optional(&mut t, "agent"), d.agent, |v| {
            parse_as(text(v, m), "an address:port (e.g. \"0.0.0.0:161\")", m)
        });
        let community = or_default(optional(&mut t, "community"), d.community, |v| {
            text(v, m).map(|s| s.value)
        });
        let exec_timeout = or_default(optional(&mut t, "exec_timeout"), d.exec_timeout, |v| {
            duration(v, m)
        });
        let workers = or_default(optional(&mut t, "workers"), d.workers, |v| {
            int_in(v, "workers", (0, 256), m)
        });
        let max_message_size = or_default(
            optional(&mut t, "max_message_size"),
            d.max_message_size,
            |v| int_in(v, "max_message_size", (MIN_MESSAGE_SIZE as i64, 65_507), m),
        );
        let nut = or_default(optional(&mut t, "nut"), None, |v| {
            parse_as::<SocketAddr>(text(v, m), "an address:port (e.g. \"0.0.0.0:3493\")", m)
                .map(Some)
        });
        let nis = or_default(optional(&mut t, "nis"), None, |v| {
            parse_as::<SocketAddr>(text(v, m), "an address:port (e.g. \"0.0.0.0:3551\")", m)
                .map(Some)
        });
        let http = or_default(optional(&mut t, "http"), None, |v| {
            parse_as::<SocketAddr>(text(v, m), "an address:port (e.g. \"127.0.0.1:9162\")", m)
                .map(Some)
        });
        let engine_id = optional(&mut t, "engine_id").and_then(|v| {
            let s = text(Some(v), m)?;
            let id = usm::engine_id(&s.value);
            if id.is_none() {
                m.add(
                    s.span,
                    format!(
                        "`{}` is not an engine ID: 5 to 32 bytes in hex, as \"0x80001f8804747261706761746531\"",
                        s.value
                    ),
                );
            }
            Some(id)
        });
        finish(t, m);
        Some(Gateway {
            listen: listen?,
            agent: agent?,
            community: community?,
            exec_timeout: exec_timeout?,
            workers: workers?,
            max_message_size: max_message_size?,
            engine_id: match engine_id {
                None => None,
                Some(id) => Some(id?),
            },
            nut: nut?,
            nis: nis?,
            http: http?,
        })
    }

    /// The policy, and the grace times that could be read even if the policy could not
    /// (so that recorders' tiers are checked against them either way).
    fn policy(v: &mut Value<'_>, m: &mut Mistakes) -> (Option<Policy>, BTreeMap<u8, Secs>) {
        let Some(mut t) = table(v, m) else {
            return (None, BTreeMap::new());
        };
        let mut grace = BTreeMap::new();
        let mut grace_ok = true;
        if let Some(mut g) = required(&mut t, "grace", m) {
            if let Some(mut gt) = table(&mut g, m) {
                let keys: Vec<(String, Span)> =
                    gt.h.table
                        .keys()
                        .map(|k| (k.name.to_string(), k.span))
                        .collect();
                for (key, span) in keys {
                    let value = gt.h.table.remove(key.as_str());
                    match (key.parse::<u8>(), duration(value, m)) {
                        (Ok(tier), Some(d)) if tier >= 1 => {
                            grace.insert(tier, d);
                        }
                        (Ok(tier), _) if tier >= 1 => grace_ok = false,
                        _ => {
                            grace_ok = false;
                            m.add(
                                span,
                                format!("grace tier `{key}` must be a number from 1 to 255"),
                            );
                        }
                    }
                }
            } else {
                grace_ok = false;
            }
        } else {
            grace_ok = false;
        }
        let charge = int_in::<u8>(
            required(&mut t, "shutdown_below_charge", m),
            "shutdown_below_charge",
            (0, 100),
            m,
        );
        let runtime = duration(required(&mut t, "shutdown_below_runtime", m), m);
        let confirm = or_default(optional(&mut t, "confirm_by_poll"), true, |v| flag(v, m));
        let unconfirmed = or_default(
            optional(&mut t, "when_unconfirmed"),
            Unconfirmed::Shutdown,
            |v| {
                one_of(
                    text(v, m),
                    &[
                        ("shutdown", Unconfirmed::Shutdown),
                        ("ignore", Unconfirmed::Ignore),
                    ],
                    m,
                )
            },
        );
        let timeout = or_default(optional(&mut t, "poll_timeout"), Secs(5), |v| {
            duration(v, m)
        });
        let ack_timeout = or_default(optional(&mut t, "ack_timeout"), Secs(10), |v| {
            duration(v, m)
        });
        finish(t, m);
        let policy = (|| {
            Some(Policy {
                grace: grace_ok.then(|| grace.clone())?,
                shutdown_below_charge: charge?,
                shutdown_below_runtime: runtime?,
                confirm_by_poll: confirm?,
                when_unconfirmed: unconfirmed?,
                poll_timeout: timeout?,
                ack_timeout: ack_timeout?,
            })
        })();
        (policy, grace)
    }

    fn ups(
        v: &mut Value<'_>,
        users: &[(Span, UsmUser)],
        secrets: Secrets<'_>,
        m: &mut Mistakes,
    ) -> Named<Ups> {
        let at = v.span;
        let Some(mut t) = table(v, m) else {
            return Named::unread(at);
        };
        let name = text(required(&mut t, "name", m), m);
        let address_value = required(&mut t, "address", m);
        let at = address_value.as_ref().map_or(at, |v| v.span);
        let address = parse_as::<IpAddr>(text(address_value, m), "an IP address", m);
        let community = or_default(optional(&mut t, "community"), "public".to_string(), |v| {
            text(v, m).map(|s| s.value)
        });
        let port = or_default(optional(&mut t, "port"), 161, |v| {
            int_in::<u16>(v, "port", (1, 65535), m)
        });
        let vendor = one_of(text(required(&mut t, "vendor", m), m), &Vendor::NAMES, m);
        let poll_interval = or_default(optional(&mut t, "poll_interval"), Secs(10), |v| {
            duration(v, m)
        });
        // Left out, it is read from the card, where trapgate knows the card's object.
        let outlet_off_delay = match optional(&mut t, "outlet_off_delay") {
            Some(v) => duration(Some(v), m).map(Some),
            None => match vendor {
                Some(v) if power::off_delay_is_read(v) => Some(None),
                Some(v) => {
                    m.add(
                        t.span,
                        format!(
                            "missing key `outlet_off_delay`: trapgate reads the shutoff delay of APC and CyberPower cards only; write it for this {} UPS as it is set on the UPS",
                            v.name()
                        ),
                    );
                    None
                }
                None => None,
            },
        };
        let restart = or_default(optional(&mut t, "restart"), Restart::Auto, |v| {
            one_of(
                text(v, m),
                &[("auto", Restart::Auto), ("manual", Restart::Manual)],
                m,
            )
        });
        let runtime = or_default(optional(&mut t, "runtime"), None, |v| {
            duration(v, m).map(Some)
        });
        let v3 = usm::access(&mut t, at, users, "UPS", m);
        let write = v3
            .as_ref()
            .and_then(|v3| power::write(&mut t, v3.as_ref(), users, secrets, m));
        finish(t, m);
        let item = (|| {
            Some(Ups {
                write: write?,
                name: name.as_ref()?.value.clone(),
                address: address?,
                community: community?,
                port: port?,
                vendor: vendor?,
                poll_interval: poll_interval?,
                outlet_off_delay: outlet_off_delay?.unwrap_or(Secs(0)),
                off_delay_from_card: outlet_off_delay?.is_none(),
                restart: restart?,
                runtime: runtime?,
                v3: v3?,
            })
        })();
        Named { name, at, item }
    }

    fn recorder(
        v: &mut Value<'_>,
        places: &Places<'_>,
        grace: &BTreeMap<u8, Secs>,
        community: &str,
        users: &[(Span, UsmUser)],
        m: &mut Mistakes,
    ) -> Named<Recorder> {
        let at = v.span;
        let Some(mut t) = table(v, m) else {
            return Named::unread(at);
        };
        let name = text(required(&mut t, "name", m), m);
        let address_value = required(&mut t, "address", m);
        let at = address_value.as_ref().map_or(at, |v| v.span);
        let address = parse_as::<IpAddr>(text(address_value, m), "an IP address", m);
        let port = or_default(optional(&mut t, "port"), 162, |v| {
            int_in::<u16>(v, "port", (1, 65535), m)
        });
        let community = or_default(optional(&mut t, "community"), community.to_string(), |v| {
            text(v, m).map(|s| s.value)
        });
        // One UPS, or several feeds: `ups = ["ups-a", "ups-b"]`.
        let ups_value = required(&mut t, "ups", m);
        let ups_texts: Vec<Spanned<String>> = match ups_value {
            None => Vec::new(),
            Some(mut v) => match v.take() {
                ValueInner::Array(items) => {
                    items.into_iter().filter_map(|i| text(Some(i), m)).collect()
                }
                other => {
                    let mut back = Value::with_span(other, v.span);
                    text(
                        Some(std::mem::replace(
                            &mut back,
                            Value::new(ValueInner::Boolean(false)),
                        )),
                        m,
                    )
                    .into_iter()
                    .collect()
                }
            },
        };
        let ups_name = ups_texts
            .first()
            .map(|u| u.value.clone())
            .unwrap_or_default();
        let mut feeds_ok = !ups_texts.is_empty();
        let mut feeds: Vec<UpsId> = Vec::with_capacity(ups_texts.len());
        for u in &ups_texts {
            match places.upses.get(u.value.as_str()).copied() {
                Some(id) if feeds.contains(&id) => {
                    m.add(u.span, format!("UPS `{}` is listed twice", u.value));
                    feeds_ok = false;
                }
                Some(id) => feeds.push(id),
                None => {
                    m.add(
                        u.span,
                        format!("UPS `{}` is not defined in any [[ups]]", u.value),
                    );
                    feeds_ok = false;
                }
            }
        }
        if feeds.len() > 32 {
            m.add(at, "a recorder may be fed by at most 32 UPSes");
            feeds_ok = false;
        }
        let needs = or_default(optional(&mut t, "needs"), 1u8, |v| {
            int_in::<u8>(v, "needs", (1, 32), m)
        });
        if let Some(n) = needs
            && feeds_ok
            && usize::from(n) > feeds.len()
        {
            m.add(
                at,
                format!("`needs = {n}`, but the recorder has {} UPS", feeds.len()),
            );
            feeds_ok = false;
        }
        let ups = feeds.first().copied().filter(|_| feeds_ok);
        let tier_value = required(&mut t, "tier", m);
        let tier_span = tier_value.as_ref().map_or(at, |v| v.span);
        let tier = int_in::<u8>(tier_value, "tier", (1, 255), m);
        if let Some(tier) = tier
            && !grace.contains_key(&tier)
        {
            m.add(
                tier_span,
                format!("tier {tier} has no grace time in [policy] grace"),
            );
        }
        let shutdown_time = duration(required(&mut t, "shutdown_time", m), m);
        let boot_time = or_default(optional(&mut t, "boot_time"), Secs(300), |v| duration(v, m));
        let kind_name = or_default(optional(&mut t, "kind"), "trap-relay", |v| {
            one_of(
                text(v, m),
                &[
                    ("trap-relay", "trap-relay"),
                    ("exec", "exec"),
                    ("nut", "nut"),
                    ("apcupsd", "apcupsd"),
                ],
                m,
            )
        });
        let command = text(optional(&mut t, "command"), m);
        let nut_user = text(optional(&mut t, "nut_user"), m);
        let nut_password = text(optional(&mut t, "nut_password"), m);
        let nut_ups = text(optional(&mut t, "nut_ups"), m);
        if kind_name != Some("nut") {
            for given in [&nut_user, &nut_password, &nut_ups].into_iter().flatten() {
                m.add(
                    given.span,
                    "`nut_user`, `nut_password` and `nut_ups` are for recorders of kind \"nut\"",
                );
            }
        }
        let kind = match (kind_name, command) {
            (Some("trap-relay"), None) => Some(RecorderKind::TrapRelay),
            (Some("apcupsd"), None) => Some(RecorderKind::Apcupsd),
            (Some("trap-relay" | "nut" | "apcupsd"), Some(c)) => {
                m.add(c.span, "`command` is only for recorders of kind \"exec\"");
                None
            }
            (Some("exec"), Some(c)) if !c.value.trim().is_empty() => {
                Some(RecorderKind::Exec(c.value))
            }
            (Some("exec"), _) => {
                m.add(t.span, "a recorder of kind \"exec\" needs a `command`");
                None
            }
            (Some("nut"), None) => match (nut_user, nut_password) {
                (Some(user), Some(password)) => Some(RecorderKind::Nut {
                    user: user.value,
                    password: password.value,
                    // Its UPS's name unless it asks for another (Synology: "ups").
                    ups: nut_ups.map_or(ups_name, |u| u.value),
                }),
                _ => {
                    m.add(t.span, "a recorder of kind \"nut\" needs `nut_user` and `nut_password` (its upsmon.conf's, or its NAS's: Synology's are \"monuser\" and \"secret\")");
                    None
                }
            },
            _ => None,
        };
        let v3 = usm::access(&mut t, at, users, "recorder", m);
        let outlet = power::outlet(
            optional(&mut t, "outlet"),
            places.upses,
            &places
                .ups_power
                .iter()
                .map(|p| p.map(|(v, _)| v))
                .collect::<Vec<_>>(),
            places.pdus,
            m,
        );
        // The outlet's UPS feeds the recorder, and trapgate may write to its card.
        let outlet = outlet.and_then(|o| match o {
            Some(o) => {
                let ups = match o.plug {
                    Plug::Group { ups, .. } | Plug::Output(ups) => Some(ups),
                    Plug::PduOutlet { .. } => None,
                };
                if let Some(u) = ups {
                    if feeds_ok && !feeds.contains(&u) {
                        m.add(o.at, "the outlet's UPS does not feed this recorder: its `ups` must list it");
                        return None;
                    }
                    if places.ups_power.get(u.index()).copied().flatten().is_some_and(|(_, w)| !w) {
                        m.add(o.at, "trapgate may not write to this UPS's card: give its [[ups]] `write_community` (or, for version \"3\", `write_user`) to let it cycle the outlet");
                        return None;
                    }
                }
                Some(Some(o.plug))
            }
            None => Some(None),
        });
        let wol_value = optional(&mut t, "wol");
        let wol_to = optional(&mut t, "wol_to");
        let wol = power::wol(wol_value, wol_to, m);
        finish(t, m);
        let item = (|| {
            Some(Recorder {
                outlet: outlet?,
                wol: wol?,
                name: name.as_ref()?.value.clone(),
                address: address?,
                port: port?,
                ups: ups?,
                feeds: feeds.clone(),
                needs: needs?,
                tier: tier?,
                shutdown_time: shutdown_time?,
                boot_time: boot_time?,
                kind: kind?,
                community: community?,
                v3: v3?,
            })
        })();
        Named { name, at, item }
    }

    /// One `[[forward]]`: `to` (host:port, a name resolved by `secrets`), `match`, `version`,
    /// `community`, `sources`.
    fn forward(
        v: &mut Value<'_>,
        secrets: Secrets<'_>,
        m: &mut Mistakes,
    ) -> Option<forward::Target> {
        let mut t = table(v, m)?;
        let to_text = text(required(&mut t, "to", m), m);
        let to = to_text
            .as_ref()
            .and_then(|s| match resolve(&s.value, secrets) {
                Ok(a) => Some(a),
                Err(e) => {
                    m.add(s.span, e);
                    None
                }
            });
        let matches = match optional(&mut t, "match") {
            None => Some(vec![forward::Match::Default]),
            Some(mut v) => match Vec::<Spanned<String>>::deserialize(&mut v) {
                Ok(list) if list.is_empty() => {
                    m.add(v.span, "`match` is empty: this target would get nothing (write [\"default\"] or [\"*\"])");
                    None
                }
                Ok(list) => list
                    .into_iter()
                    .map(|s| match forward::Match::parse(&s.value) {
                        Ok(x) => Some(x),
                        Err(e) => {
                            m.add(s.span, e);
                            None
                        }
                    })
                    .collect(),
                Err(e) => {
                    m.absorb(e);
                    None
                }
            },
        };
        let version = or_default(
            optional(&mut t, "version"),
            forward::ForwardVersion::AsReceived,
            |v| {
                one_of(
                    text(v, m),
                    &[
                        ("as-received", forward::ForwardVersion::AsReceived),
                        ("2c", forward::ForwardVersion::V2c),
                    ],
                    m,
                )
            },
        );
        let community = or_default(optional(&mut t, "community"), "public".to_string(), |v| {
            text(v, m).map(|s| s.value)
        });
        let sources = or_default(optional(&mut t, "sources"), forward::Sources::Site, |v| {
            one_of(
                text(v, m),
                &[
                    ("site", forward::Sources::Site),
                    ("any", forward::Sources::Any),
                ],
                m,
            )
        });
        let source = match optional(&mut t, "source") {
            None => Some(None),
            Some(v) => text(Some(v), m).and_then(|s| match s.value.parse::<IpAddr>() {
                Ok(a) if a.is_unspecified() || a.is_multicast() => {
                    m.add(s.span, format!("`source` {a}: an address of this host to send from, not a wildcard or a group"));
                    None
                }
                Ok(a) if to.is_some_and(|to| to.is_ipv4() != a.is_ipv4()) => {
                    m.add(s.span, format!("`source` {a} is not of the family of `to`: forwards to it could not leave from there"));
                    None
                }
                Ok(a) => Some(Some(a)),
                Err(_) => {
                    m.add(s.span, format!("`source` {:?} is not an IP address (the address forwards leave from, as snmptrapd's clientaddr)", s.value));
                    None
                }
            }),
        };
        finish(t, m);
        Some(forward::Target {
            to_text: to_text?.value,
            to: to?,
            matches: matches?,
            version: version?,
            community: community?,
            sources: sources?,
            source: source?,
        })
    }

    fn rule(v: &mut Value<'_>, m: &mut Mistakes) -> Option<(Span, TrapRule)> {
        let mut t = table(v, m)?;
        let oid_text = text(required(&mut t, "oid", m), m);
        let oid_span = oid_text.as_ref().map_or(t.span, |s| s.span);
        let oid = oid_text.and_then(|s| match s.value.parse::<OidBuf>() {
            Ok(o) => Some(o),
            Err(e) => {
                m.add(s.span, format!("`{}` is not an OID: {e}", s.value));
                None
            }
        });
        let names: Vec<(&str, Event)> = Event::ALL.iter().map(|e| (e.name(), *e)).collect();
        let event = one_of(text(required(&mut t, "event", m), m), &names, m);
        let name = text(required(&mut t, "name", m), m).map(|s| s.value);
        let mib = or_default(optional(&mut t, "mib"), "site".to_string(), |v| {
            text(v, m).map(|s| s.value)
        });
        let prefix = or_default(optional(&mut t, "prefix"), false, |v| flag(v, m));
        finish(t, m);
        let rule = TrapRule {
            oid: oid?,
            name: name?,
            mib: mib?,
            event: Ev::Is(event?),
            prefix: prefix?,
        };
        Some((oid_span, rule))
    }

    /// What a site engineer must know before the first outage, from the settings alone:
    /// a UPS that cuts its outlets before its slowest recorder has finished shutting down
    /// (the recorder would lose power mid-write), and a battery whose known runtime ends
    /// before a tier's shutdown does; for every UPS that feeds a recorder, not only its
    /// first.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        // Before it tells a recorder, trapgate may wait for the UPS to confirm by poll.
        let confirm = if self.policy.confirm_by_poll {
            self.policy.poll_timeout.0
        } else {
            0
        };
        // Each UPS's slowest recorder, and its slowest per tier, in one pass.
        let mut slowest: Vec<Option<&Recorder>> = vec![None; self.upses.len()];
        let mut slowest_in_tier: HashMap<(UpsId, u8), &Recorder> = HashMap::new();
        // A recorder fed by several UPSes counts on each: the last of its feeds to give
        // out is the one that must cover its shutdown, and that may be any of them.
        for r in &self.recorders {
            for &u in &r.feeds {
                // The first of the slowest on a UPS; the last of the slowest in a tier.
                slowest[u] = match slowest[u] {
                    Some(b) if b.shutdown_time >= r.shutdown_time => Some(b),
                    _ => Some(r),
                };
                slowest_in_tier
                    .entry((u, r.tier))
                    .and_modify(|b| {
                        if r.shutdown_time >= b.shutdown_time {
                            *b = r;
                        }
                    })
                    .or_insert(r);
            }
        }
        for (i, ups) in UpsId::enumerate(&self.upses) {
            if let Some(slowest) = slowest[i] {
                let need = slowest.shutdown_time.0 + confirm;
                if need > ups.outlet_off_delay.0 && !ups.off_delay_from_card {
                    out.push(format!(
                        "UPS `{}` cuts its outlets {} s after its shutdown starts, but recorder `{}` needs {} s to shut down{}: it would lose power mid-write",
                        ups.name,
                        ups.outlet_off_delay.0,
                        slowest.name,
                        slowest.shutdown_time.0,
                        if confirm > 0 {
                            format!(" plus up to {confirm} s for trapgate to confirm by poll")
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            let Some(runtime) = ups.runtime else { continue };
            for (tier, grace) in &self.policy.grace {
                let Some(slowest) = slowest_in_tier.get(&(i, *tier)) else {
                    continue;
                };
                let ends = grace.0 + slowest.shutdown_time.0;
                if ends > runtime.0 {
                    out.push(format!(
                        "UPS `{}` lasts {} s on battery, but tier {tier} shuts down after {} s of grace and `{}` needs {} s more: the battery runs out first",
                        ups.name, runtime.0, grace.0, slowest.name, slowest.shutdown_time.0
                    ));
                }
            }
        }
        // An outlet shared by tiers is cut only once the last of them is shed (a
        // running recorder is never cut off): an outage that ends before then leaves the
        // earlier tiers halted on a live outlet, for Wake-on-LAN or a hand to start.
        let mut on_plug: BTreeMap<Plug, Vec<&Recorder>> = BTreeMap::new();
        for r in &self.recorders {
            if let Some(p) = r.outlet {
                on_plug.entry(p).or_default().push(r);
            }
        }
        for (plug, on) in on_plug {
            let tiers: BTreeSet<u8> = on.iter().map(|r| r.tier).collect();
            if tiers.len() < 2 {
                continue;
            }
            // The tier with the longest grace is shed last.
            let grace = |t: u8| self.policy.grace.get(&t).map_or(0, |g| g.0);
            let last = tiers
                .iter()
                .copied()
                .max_by_key(|&t| (grace(t), t))
                .unwrap_or(1);
            let earlier: Vec<String> = on
                .iter()
                .filter(|r| r.tier != last)
                .map(|r| format!("`{}` (tier {})", r.name, r.tier))
                .collect();
            out.push(format!(
                "outlet `{}` feeds recorders of tiers {}: trapgate cycles it only once tier {last} is shed too, so an outage that ends before then leaves {} halted on a live outlet (give them `wol`, or an outlet of their own)",
                self.plug_name(plug),
                tiers
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                earlier.join(", ")
            ));
        }
        out
    }

    /// The classifier for this site: the built-in tables, where a site rule names the
    /// same OID as a built-in one the site's rule wins.
    pub fn classifier(&self) -> Classifier {
        let own: HashSet<&[u8]> = self.rules.iter().map(|r| r.oid.as_bytes()).collect();
        let mut rules: Vec<TrapRule> = crate::classify::rules::builtin_trap_rules()
            .into_iter()
            .filter(|b| !own.contains(b.oid.as_bytes()))
            .collect();
        rules.extend(self.rules.iter().cloned());
        Classifier::new(
            rules,
            crate::classify::rules::builtin_alarms(),
            crate::classify::rules::builtin_object_names(),
        )
        .expect("site rules are distinct (checked when read) and replace built-ins")
    }
}

#[cfg(test)]
mod tests;
