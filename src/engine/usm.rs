//! The User-based Security Model as a receiver of traps (RFC 3414 §3.2): which user a
//! v3 message is from, whether its MAC is right, whether it is in its engine's time
//! window, and its scoped PDU decrypted. Sans-IO: the caller gives the time.
//!
//! A trap's sender is its authoritative engine, and one user is shared by many cards,
//! each with its own engine ID: the user's keys are localized for each engine ID a
//! message carries, and kept per (user, engine ID) with that engine's boots and time.
//! A localization happens only for a message the receiver got past its source filter
//! (an address of the site), at most `LOCALIZE_BURST` at once (or two per v3 UPS and
//! recorder of the site, if more: a site's every card and recorder may speak at once
//! after an outage) and `LOCALIZE_PER_SECOND` after, and an engine is kept only once a
//! message from it was
//! authentic: a flood of forged messages with random engine IDs costs one hash each up to
//! that rate and is then refused unread (`usm_unknown_engine`), and never grows the
//! table. Decryption goes into the caller's arena.

use std::collections::HashMap;

use bumpalo::Bump;

use crate::engine::config::{Site, UsmUser};
use crate::time::{Timestamp, ns};
use crate::wire::oid::OidBuf;
use crate::wire::usm::Keys;
use crate::wire::v3::{Data, FLAG_REPORTABLE, Header, Level, Seal, USM, seal};
use crate::wire::{self, Message, Pdu, PduType, Value, VarBind, Version};

/// usmStatsNotInTimeWindows.0 (RFC 3414), what a Report of a stale time carries.
pub const USM_STATS_NOT_IN_TIME_WINDOWS: &str = "1.3.6.1.6.3.15.1.1.2.0";
/// usmStatsUnknownEngineIDs.0, what a discovery Report carries.
pub const USM_STATS_UNKNOWN_ENGINE_IDS: &str = "1.3.6.1.6.3.15.1.1.4.0";

/// usmStats (RFC 3414 §5, 1.3.6.1.6.3.15.1.1): the counter a Report of each refusal
/// carries, as `usmStats.N.0`.
fn usm_stats_arc(why: UsmRefusal) -> Option<u8> {
    match why {
        UsmRefusal::UnsupportedLevel => Some(1),
        UsmRefusal::NotInTimeWindow => Some(2),
        UsmRefusal::UnknownUser => Some(3),
        UsmRefusal::UnknownEngine => Some(4),
        UsmRefusal::WrongDigest => Some(5),
        UsmRefusal::DecryptionError => Some(6),
        UsmRefusal::UnknownSecurityModel | UsmRefusal::InvalidFlags => None,
    }
}

/// Reports sent a second, by the whole gateway, once a burst is spent.
pub const REPORTS_PER_SECOND: u32 = 64;

/// Reports the whole gateway may send at once (or two per v3 UPS and recorder of the
/// site, if more: each may discover trapgate's engine and its clock after a start).
pub const REPORT_BURST: u32 = 256;

/// The one budget of SNMPv3 Reports of a gateway, shared by every receive worker and
/// the decision thread (clones share it): a token bucket over lock-free counters, taken
/// only when a Report is due, never per datagram otherwise. A flood of reportable
/// forgeries from a site address costs at most this many Reports a second in all, and
/// each one it holds back is counted.
#[derive(Clone, Debug)]
pub struct ReportBudget(std::sync::Arc<ReportCounts>);

#[derive(Debug)]
struct ReportCounts {
    burst: u32,
    /// The second last taken from (high half) and the Reports spent and not yet
    /// earned back (low half).
    state: std::sync::atomic::AtomicU64,
    sent: std::sync::atomic::AtomicU64,
    held: std::sync::atomic::AtomicU64,
}

impl Default for ReportBudget {
    fn default() -> ReportBudget {
        ReportBudget::new(REPORT_BURST)
    }
}

impl ReportBudget {
    /// A budget of `burst` Reports at once and `REPORTS_PER_SECOND` after.
    pub fn new(burst: u32) -> ReportBudget {
        ReportBudget(std::sync::Arc::new(ReportCounts {
            burst: burst.max(1),
            state: std::sync::atomic::AtomicU64::new(0),
            sent: std::sync::atomic::AtomicU64::new(0),
            held: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// The budget for `site`: `REPORT_BURST`, or two per v3 UPS and recorder.
    pub fn for_site(site: &Site) -> ReportBudget {
        let sources = site.upses.iter().filter(|u| u.v3.is_some()).count()
            + site.recorders.iter().filter(|r| r.v3.is_some()).count();
        ReportBudget::new(
            u32::try_from(2 * sources)
                .unwrap_or(u32::MAX)
                .max(REPORT_BURST),
        )
    }

    /// One Report at second `now_s` of the gateway's engine clock: true if it may go
    /// (and it is counted sent), false if the budget is spent (counted held back).
    pub fn take(&self, now_s: u32) -> bool {
        use std::sync::atomic::Ordering;
        let c = &self.0;
        let mut current = c.state.load(Ordering::Relaxed);
        loop {
            let (last, spent) = ((current >> 32) as u32, current as u32);
            // Clocks of threads differ by a fraction of a second: one behind counts in
            // the latest second.
            let earned = now_s
                .saturating_sub(last)
                .saturating_mul(REPORTS_PER_SECOND);
            let spent = spent.saturating_sub(earned);
            if spent >= c.burst {
                c.held.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            let next = (u64::from(now_s.max(last)) << 32) | u64::from(spent + 1);
            match c
                .state
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    /// Reports sent, and held back by the budget, so far.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.0.sent.load(Ordering::Relaxed),
            self.0.held.load(Ordering::Relaxed),
        )
    }
}

/// A v3 discovery step (RFC 3414 §4): a message naming no engine, or one authenticated
/// at boots and time 0 to learn trapgate's clock. Each is answered with a Report and is
/// not a refusal.
pub fn is_discovery(why: UsmRefusal, payload: &[u8]) -> bool {
    crate::wire::v3::Header::parse(payload).is_ok_and(|h| match why {
        UsmRefusal::UnknownEngine => h.engine_id.is_empty(),
        UsmRefusal::NotInTimeWindow => h.boots == 0 && h.time == 0,
        _ => false,
    })
}

/// trapgate's own engine: the authoritative engine of the informs it receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalEngine {
    /// snmpEngineID.
    pub id: Vec<u8>,
    /// snmpEngineBoots: larger at each start.
    pub boots: u32,
}

/// The engine ID trapgate takes when the site gives none: RFC 3411's text format under
/// net-snmp's enterprise (0x80001f88, format 4), "trapgate:" and the host's name, so
/// that it stays the same across restarts of one host and differs between hosts.
pub fn local_engine_id(host: &str) -> Vec<u8> {
    let mut id = vec![0x80, 0x00, 0x1f, 0x88, 0x04];
    id.extend(b"trapgate:".iter().chain(host.as_bytes()).take(32 - 5));
    id
}

/// The local engine's state in one security model: the users' keys localized for it,
/// and what its Reports count.
#[derive(Clone, Debug)]
struct Local {
    engine: LocalEngine,
    keys: Vec<Option<Keys>>,
    /// usmStats.1 … usmStats.6 as this security model counted them (the value each
    /// Report carries).
    stats: [u32; 6],
    /// Salts for what it encrypts: a counter.
    salt: u64,
}

/// The time window of RFC 3414 §3.2 step 7: a message more than this older than its
/// engine's time as last heard is refused.
pub const TIME_WINDOW_S: u64 = 150;

/// Localizations at once, for a burst of new engines (a site's cards all starting).
pub const LOCALIZE_BURST: u32 = 256;

/// Localizations a second after a burst.
pub const LOCALIZE_PER_SECOND: u32 = 64;

/// Localizations at once for new engines heard from one address (a card whose engine
/// ID changed, a recorder's own engine): one address's flood spends its own budget, not
/// the site's.
pub const LOCALIZE_PER_SOURCE: u32 = 8;

/// The engines known to be the site's, by user name: learned from an authentic message
/// (any receive worker's), from the poller's authenticated answers of a card, or from a
/// journal's checkpoint. A message naming a known engine is checked with its keys at
/// once, whatever budget of localizations a flood of random engine IDs has spent: a
/// forger from a UPS's own address cannot hold off the card's first trap after a
/// start. Shared by every security model of a gateway (clones share it); locked only
/// for a message from an engine its worker has not met, never for one it has.
#[derive(Clone, Debug)]
pub struct EngineBook(std::sync::Arc<std::sync::Mutex<Book>>);

#[derive(Debug, Default)]
struct Book {
    by_user: HashMap<Box<[u8]>, Vec<Box<[u8]>>>,
    len: usize,
    capacity: usize,
}

impl Default for EngineBook {
    fn default() -> EngineBook {
        EngineBook::with_capacity(64)
    }
}

impl EngineBook {
    /// A book of at most `capacity` engines (more are not kept).
    pub fn with_capacity(capacity: usize) -> EngineBook {
        EngineBook(std::sync::Arc::new(std::sync::Mutex::new(Book {
            capacity,
            ..Book::default()
        })))
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic elsewhere while it was held leaves the set as it was: still a set.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `engine` is known for `user`.
    pub fn contains(&self, user: &[u8], engine: &[u8]) -> bool {
        self.book()
            .by_user
            .get(user)
            .is_some_and(|e| e.iter().any(|x| **x == *engine))
    }

    /// Takes `engine` as known for `user`; true if it was not yet.
    pub fn insert(&self, user: &[u8], engine: &[u8]) -> bool {
        let mut b = self.book();
        if b.len >= b.capacity {
            return false;
        }
        let list = b.by_user.entry(user.into()).or_default();
        if list.iter().any(|x| **x == *engine) {
            return false;
        }
        list.push(engine.into());
        b.len += 1;
        true
    }

    /// Every engine known, by user: (user, engine ID).
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let b = self.book();
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = b
            .by_user
            .iter()
            .flat_map(|(u, es)| es.iter().map(move |e| (u.to_vec(), e.to_vec())))
            .collect();
        all.sort();
        all
    }
}

/// Why a v3 message was not believed (RFC 3414's usmStats names, and two of RFC 3412's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UsmRefusal {
    /// No user of that name (usmStatsUnknownUserNames).
    UnknownUser,
    /// A level its user cannot meet (usmStatsUnsupportedSecLevels).
    UnsupportedLevel,
    /// A wrong MAC (usmStatsWrongDigests).
    WrongDigest,
    /// Older than its engine's time window (usmStatsNotInTimeWindows).
    NotInTimeWindow,
    /// Its scoped PDU does not decrypt (usmStatsDecryptionErrors).
    DecryptionError,
    /// An engine its user is not for, or a new engine beyond the localization rate
    /// (usmStatsUnknownEngineIDs).
    UnknownEngine,
    /// Another security model than USM (snmpUnknownSecurityModels).
    UnknownSecurityModel,
    /// Privacy without authentication in its flags (snmpInvalidMsgs).
    InvalidFlags,
}

impl UsmRefusal {
    /// Every reason, in the order counters list them.
    pub const ALL: [UsmRefusal; 8] = [
        UsmRefusal::UnknownUser,
        UsmRefusal::UnsupportedLevel,
        UsmRefusal::WrongDigest,
        UsmRefusal::NotInTimeWindow,
        UsmRefusal::DecryptionError,
        UsmRefusal::UnknownEngine,
        UsmRefusal::UnknownSecurityModel,
        UsmRefusal::InvalidFlags,
    ];

    /// The reason as counted.
    pub fn name(self) -> &'static str {
        match self {
            UsmRefusal::UnknownUser => "usm_unknown_user",
            UsmRefusal::UnsupportedLevel => "usm_unsupported_level",
            UsmRefusal::WrongDigest => "usm_wrong_digest",
            UsmRefusal::NotInTimeWindow => "usm_not_in_time_window",
            UsmRefusal::DecryptionError => "usm_decryption_error",
            UsmRefusal::UnknownEngine => "usm_unknown_engine",
            UsmRefusal::UnknownSecurityModel => "snmp_unknown_security_model",
            UsmRefusal::InvalidFlags => "snmp_invalid_msgs",
        }
    }

    /// What it means.
    pub fn sentence(self) -> &'static str {
        match self {
            UsmRefusal::UnknownUser => "SNMPv3 messages from a user the site does not have",
            UsmRefusal::UnsupportedLevel => {
                "SNMPv3 messages at a security level their user cannot meet, or below their UPS's"
            }
            UsmRefusal::WrongDigest => {
                "SNMPv3 messages whose MAC is wrong (another passphrase, or forged)"
            }
            UsmRefusal::NotInTimeWindow => {
                "SNMPv3 messages older than their engine's time window (replayed)"
            }
            UsmRefusal::DecryptionError => "SNMPv3 messages that do not decrypt",
            UsmRefusal::UnknownEngine => {
                "SNMPv3 messages from an engine their user is not for, or new engines beyond the rate of key localization"
            }
            UsmRefusal::UnknownSecurityModel => {
                "SNMPv3 messages of another security model than USM"
            }
            UsmRefusal::InvalidFlags => "SNMPv3 messages flagged private but not authenticated",
        }
    }

    /// Its place in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a v3 datagram was not opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotOpened {
    /// Not a well-formed v3 message (or its decrypted scoped PDU is not one).
    Malformed(wire::Error),
    /// Refused by the security model.
    Refused(UsmRefusal),
}

/// An engine heard from, with the user's keys for it and its clock as last heard.
#[derive(Clone, Debug)]
struct Engine {
    keys: Keys,
    boots: u32,
    /// Its time as last heard (latestReceivedEngineTime), and our time then.
    time: u32,
    at: Timestamp,
}

/// The security model of a receiver: the site's users and the engines they were heard
/// from.
#[derive(Clone, Debug)]
pub struct Usm {
    users: Vec<UsmUser>,
    /// Users by name (several for one name when each is for its own engine).
    by_name: HashMap<Box<[u8]>, Vec<usize>>,
    /// Per user, its engines by ID.
    engines: Vec<HashMap<Box<[u8]>, Engine>>,
    kept: usize,
    capacity: usize,
    /// Localizations left, refilled by the second, and at most.
    tokens: u32,
    burst: u32,
    refilled: Timestamp,
    local: Option<Local>,
    /// The gateway's budget of Reports (shared with every other `Usm` it was given to).
    reports: ReportBudget,
    /// The engines known to be the site's (shared likewise).
    book: EngineBook,
    /// Localizations left per source address, and when it was last refilled.
    per_source: HashMap<std::net::IpAddr, (u32, Timestamp)>,
}

impl Default for Usm {
    /// A security model without users: every v3 message is from an unknown user.
    fn default() -> Usm {
        Usm {
            users: Vec::new(),
            by_name: HashMap::new(),
            engines: Vec::new(),
            kept: 0,
            capacity: 64,
            tokens: LOCALIZE_BURST,
            burst: LOCALIZE_BURST,
            refilled: Timestamp(0),
            local: None,
            reports: ReportBudget::default(),
            book: EngineBook::default(),
            per_source: HashMap::new(),
        }
    }
}

impl Usm {
    /// The security model of `site`'s users.
    pub fn new(site: &Site) -> Usm {
        let mut by_name: HashMap<Box<[u8]>, Vec<usize>> = HashMap::new();
        for (i, u) in site.usm_users.iter().enumerate() {
            by_name.entry(u.name.as_bytes().into()).or_default().push(i);
        }
        // Every v3 UPS and recorder is an engine that may be heard from.
        let sources = site.upses.iter().filter(|u| u.v3.is_some()).count()
            + site.recorders.iter().filter(|r| r.v3.is_some()).count();
        let burst = u32::try_from(2 * sources)
            .unwrap_or(u32::MAX)
            .max(LOCALIZE_BURST);
        Usm {
            users: site.usm_users.clone(),
            by_name,
            engines: vec![HashMap::new(); site.usm_users.len()],
            kept: 0,
            capacity: 4 * sources + 64,
            tokens: burst,
            burst,
            refilled: Timestamp(0),
            local: None,
            reports: ReportBudget::for_site(site),
            book: EngineBook::with_capacity(4 * sources + 64),
            per_source: HashMap::new(),
        }
    }

    /// Knows the engines of `book` (the gateway's one book) rather than its own.
    pub fn share_engines(&mut self, book: EngineBook) {
        self.book = book;
    }

    /// The engines known to be the site's.
    pub fn engines(&self) -> &EngineBook {
        &self.book
    }

    /// Takes Reports from `budget` (the gateway's one budget) rather than its own.
    pub fn share_reports(&mut self, budget: ReportBudget) {
        self.reports = budget;
    }

    /// The budget its Reports are taken from.
    pub fn reports(&self) -> &ReportBudget {
        &self.reports
    }

    /// This security model as `engine`'s, the authoritative engine of the informs it
    /// receives: each user's keys localized for it. Its time counts from `now` = 0.
    pub fn set_local(&mut self, engine: LocalEngine) {
        let keys = self
            .users
            .iter()
            .map(|u| {
                let (auth, ku) = u.auth.as_ref()?;
                let privacy = u.privacy.as_ref().map(|(p, k)| (*p, k));
                Some(Keys::localized(*auth, ku, privacy, &engine.id))
            })
            .collect();
        self.local = Some(Local {
            engine,
            keys,
            stats: [0; 6],
            salt: 0,
        });
    }

    /// The local engine, if set.
    pub fn local(&self) -> Option<&LocalEngine> {
        self.local.as_ref().map(|l| &l.engine)
    }

    /// The local engine's time at `now` (snmpEngineTime: seconds since `now` 0).
    pub fn local_time(now: Timestamp) -> u32 {
        (now.0 / ns::SECOND).min(i32::MAX as u64) as u32
    }

    /// How many (user, engine) pairs are kept.
    pub fn engines_kept(&self) -> usize {
        self.kept
    }

    /// Becomes `next` (a reloaded site's, `Usm::new`): engines heard from stay for the
    /// users that keep their name, protocols, keys and engine.
    pub fn reload(&mut self, mut next: Usm) {
        for (i, u) in next.users.iter().enumerate() {
            if let Some(o) = self.users.iter().position(|old| old == u) {
                next.engines[i] = std::mem::take(&mut self.engines[o]);
            }
        }
        next.kept = next.engines.iter().map(HashMap::len).sum();
        next.tokens = self.tokens;
        next.refilled = self.refilled;
        next.reports = self.reports.clone();
        next.book = self.book.clone();
        next.per_source = std::mem::take(&mut self.per_source);
        if let Some(l) = self.local.take() {
            next.set_local(l.engine);
            if let Some(n) = next.local.as_mut() {
                n.stats = l.stats;
            }
        }
        *self = next;
    }

    fn user_for(&self, name: &[u8], engine_id: &[u8]) -> Result<usize, UsmRefusal> {
        let candidates = self.by_name.get(name).ok_or(UsmRefusal::UnknownUser)?;
        // A user for this very engine first, then one for any engine.
        candidates
            .iter()
            .copied()
            .find(|&i| self.users[i].engine_id.as_deref() == Some(engine_id))
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&i| self.users[i].engine_id.is_none())
            })
            .ok_or(UsmRefusal::UnknownEngine)
    }

    /// One localization for a message from `source` (if known) at `now`: from the
    /// source's own budget (`LOCALIZE_PER_SOURCE`, one more a second), then the
    /// security model's.
    fn may_localize(&mut self, source: Option<std::net::IpAddr>, now: Timestamp) -> bool {
        if let Some(ip) = source {
            if self.per_source.len() >= 4 * self.capacity.max(1024) {
                // Only the site's addresses come this far; more than this many is a
                // table to start afresh, not to grow.
                self.per_source.clear();
            }
            let (tokens, at) = self
                .per_source
                .entry(ip)
                .or_insert((LOCALIZE_PER_SOURCE, now));
            let earned = now.0.saturating_sub(at.0) / ns::SECOND;
            if earned > 0 {
                *tokens = (u64::from(*tokens) + earned).min(u64::from(LOCALIZE_PER_SOURCE)) as u32;
                *at = now;
            } else if now < *at {
                *at = now;
            }
            if *tokens == 0 {
                return false;
            }
            *tokens -= 1;
        }
        self.take_token(now)
    }

    fn take_token(&mut self, now: Timestamp) -> bool {
        if now.0 >= self.refilled.0.saturating_add(ns::SECOND) || now < self.refilled {
            let seconds = now.0.saturating_sub(self.refilled.0) / ns::SECOND;
            let more =
                (seconds.min(u64::from(self.burst)) as u32).saturating_mul(LOCALIZE_PER_SECOND);
            self.tokens = self.tokens.saturating_add(more).min(self.burst);
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// Opens the v3 message in `buf`, received at `now`: its user, MAC and time window
    /// checked, its scoped PDU decrypted into `arena`.
    pub fn open<'a>(
        &mut self,
        buf: &'a [u8],
        now: Timestamp,
        arena: &'a Bump,
    ) -> Result<Message<'a>, NotOpened> {
        self.open_from(buf, None, now, arena)
    }

    /// `open`, for a message from `source` (where it is known): a new engine from it is
    /// localized from that address's own budget first.
    pub fn open_from<'a>(
        &mut self,
        buf: &'a [u8],
        source: Option<std::net::IpAddr>,
        now: Timestamp,
        arena: &'a Bump,
    ) -> Result<Message<'a>, NotOpened> {
        let h = Header::parse(buf).map_err(NotOpened::Malformed)?;
        let refused = |r| Err(NotOpened::Refused(r));
        if h.security_model != USM {
            return refused(UsmRefusal::UnknownSecurityModel);
        }
        let Some(level) = h.level() else {
            return refused(UsmRefusal::InvalidFlags);
        };
        // Discovery: no engine named (a Report tells the sender ours).
        if h.engine_id.is_empty() {
            return refused(UsmRefusal::UnknownEngine);
        }
        let u = self
            .user_for(h.user, h.engine_id)
            .map_err(NotOpened::Refused)?;
        let user = &self.users[u];
        if user.level() < level {
            return refused(UsmRefusal::UnsupportedLevel);
        }
        if level == Level::NoAuthNoPriv {
            let Data::Plain(plain) = h.data else {
                return refused(UsmRefusal::InvalidFlags);
            };
            return h.open(level, plain, arena).map_err(NotOpened::Malformed);
        }
        if let Some(local) = self.local.as_ref().filter(|l| l.engine.id == h.engine_id) {
            // Sent to trapgate as the authoritative engine (an inform): its own keys and
            // clock (step 7a: the same boots, and within 150 s of its time).
            let keys = local.keys[u]
                .as_ref()
                .expect("a user with auth has local keys");
            if !keys.verify(buf, h.auth_at, h.auth_params.len()) {
                return refused(UsmRefusal::WrongDigest);
            }
            let time = u64::from(Usm::local_time(now));
            if h.boots != local.engine.boots || u64::from(h.time).abs_diff(time) > TIME_WINDOW_S {
                return refused(UsmRefusal::NotInTimeWindow);
            }
            let keys = keys.clone();
            return Self::decrypt_open(&h, level, &keys, arena);
        }
        // Authentication (step 6), with the keys for this engine.
        let known = self.engines[u].get(h.engine_id).map(|e| e.keys.clone());
        let keys = match known {
            Some(k) => k,
            None => {
                // An engine the site knows (another worker heard it, the poller
                // authenticated its card, a checkpoint kept it) is checked at once.
                if !self.book.contains(h.user, h.engine_id) && !self.may_localize(source, now) {
                    return refused(UsmRefusal::UnknownEngine);
                }
                let user = &self.users[u];
                let (auth, ku) = user.auth.as_ref().expect("a level above noAuth has auth");
                let privacy = user.privacy.as_ref().map(|(p, k)| (*p, k));
                Keys::localized(*auth, ku, privacy, h.engine_id)
            }
        };
        if !keys.verify(buf, h.auth_at, h.auth_params.len()) {
            return refused(UsmRefusal::WrongDigest);
        }
        // Timeliness (step 7b): the engine's clock as last heard moves on with ours.
        match self.engines[u].get_mut(h.engine_id) {
            Some(e) => {
                let elapsed = now.0.saturating_sub(e.at.0) / ns::SECOND;
                let local_time = u64::from(e.time) + elapsed;
                if h.boots > e.boots || (h.boots == e.boots && u64::from(h.time) > local_time) {
                    e.boots = h.boots;
                    e.time = h.time;
                    e.at = now;
                } else if e.boots == i32::MAX as u32
                    || h.boots < e.boots
                    || u64::from(h.time) + TIME_WINDOW_S < local_time
                {
                    return refused(UsmRefusal::NotInTimeWindow);
                }
            }
            None => {
                if self.kept >= self.capacity {
                    self.forget_oldest();
                }
                self.kept += 1;
                self.book.insert(h.user, h.engine_id);
                self.engines[u].insert(
                    h.engine_id.into(),
                    Engine {
                        keys: keys.clone(),
                        boots: h.boots,
                        time: h.time,
                        at: now,
                    },
                );
            }
        }
        Self::decrypt_open(&h, level, &keys, arena)
    }

    /// Step 8: the scoped PDU, decrypted into the arena at authPriv.
    fn decrypt_open<'a>(
        h: &Header<'a>,
        level: Level,
        keys: &Keys,
        arena: &'a Bump,
    ) -> Result<Message<'a>, NotOpened> {
        let refused = |r| Err(NotOpened::Refused(r));
        let plain: &'a [u8] = match (level, h.data) {
            (Level::AuthPriv, Data::Encrypted(e)) => {
                let buf = arena.alloc_slice_copy(e);
                if keys.decrypt(h.boots, h.time, h.priv_params, buf).is_err() {
                    return refused(UsmRefusal::DecryptionError);
                }
                buf
            }
            (Level::AuthNoPriv, Data::Plain(p)) => p,
            _ => return refused(UsmRefusal::InvalidFlags),
        };
        h.open(level, plain, arena).map_err(|e| match level {
            // Garbage after decryption is the wrong key or a forged salt.
            Level::AuthPriv => NotOpened::Refused(UsmRefusal::DecryptionError),
            _ => NotOpened::Malformed(e),
        })
    }

    /// The Report a refused message asks for, into `out`, if it is one trapgate sends
    /// (RFC 3414 §3.2, as net-snmp's agent answers): a reportable message naming no
    /// engine (discovery: usmStatsUnknownEngineIDs, with trapgate's engine ID, boots and
    /// time), or one naming trapgate's engine whose user is unknown, whose level its user
    /// lacks, whose MAC is wrong or which does not decrypt (the usmStats counter of that
    /// reason, unauthenticated: so that net-snmp's tools say "Authentication failure"
    /// rather than "Timeout"), or an authentic one out of its time window
    /// (usmStatsNotInTimeWindows, authenticated, so that the sender may take the time).
    /// A message naming another engine gets none: trapgate is not its authority. Every
    /// Report is taken from the gateway's budget (`ReportBudget`); none is sent once it
    /// is spent. A Report is at most a few hundred bytes, within the virtual UPS's
    /// reflection bound (three times the request, or one 1,472-byte datagram). False
    /// when there is nothing to send.
    pub fn report(
        &mut self,
        buf: &[u8],
        why: UsmRefusal,
        now: Timestamp,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> bool {
        let Ok(h) = Header::parse(buf) else {
            return false;
        };
        if h.flags & FLAG_REPORTABLE == 0 {
            return false;
        }
        let Some(arc) = usm_stats_arc(why) else {
            return false;
        };
        let user = self.user_for(h.user, h.engine_id).ok();
        let Some(local) = self.local.as_mut() else {
            return false;
        };
        let ours = h.engine_id == local.engine.id.as_slice();
        let keys = match why {
            UsmRefusal::UnknownEngine if h.engine_id.is_empty() => None,
            UsmRefusal::NotInTimeWindow if ours => {
                let Some(keys) = user.and_then(|u| local.keys[u].as_ref()) else {
                    return false;
                };
                Some(keys)
            }
            UsmRefusal::UnknownUser
            | UsmRefusal::UnsupportedLevel
            | UsmRefusal::WrongDigest
            | UsmRefusal::DecryptionError
                if ours =>
            {
                None
            }
            _ => return false,
        };
        let now_s = Usm::local_time(now);
        if !self.reports.take(now_s) {
            return false;
        }
        let stat = &mut local.stats[usize::from(arc - 1)];
        *stat = stat.wrapping_add(1);
        let count = *stat;
        // The request's id where its scoped PDU is in clear (a discovery's is).
        let request_id = match h.data {
            Data::Plain(p) => {
                let arena = Bump::new();
                h.open(Level::NoAuthNoPriv, p, &arena)
                    .ok()
                    .and_then(|m| match m.pdu {
                        Pdu::Request(r) => Some(r.request_id),
                        Pdu::TrapV1(_) => None,
                    })
                    .unwrap_or(0)
            }
            Data::Encrypted(_) => 0,
        };
        let Ok(name) = OidBuf::from_arcs(&[1, 3, 6, 1, 6, 3, 15, 1, 1, u32::from(arc), 0]) else {
            return false;
        };
        let vbs = [VarBind {
            name: name.as_oid(),
            value: Value::Counter32(count),
        }];
        let pdu = Message::pdu(Version::V3, b"", PduType::REPORT, request_id, &vbs).pdu;
        let s = Seal {
            msg_id: h.msg_id,
            max_size: 65_507,
            reportable: false,
            engine_id: &local.engine.id,
            boots: local.engine.boots,
            time: now_s,
            user: h.user,
            level: if keys.is_some() {
                Level::AuthNoPriv
            } else {
                Level::NoAuthNoPriv
            },
            context_engine_id: &local.engine.id,
            context_name: b"",
            salt: [0; 8],
        };
        out.clear();
        seal(&pdu, &s, keys, scratch, out);
        true
    }

    /// The Response to `inform`, a v3 inform sent to trapgate as its authoritative
    /// engine and opened by `open`: its bindings back, sealed at its level with its user's
    /// keys for trapgate's engine, into `out`. False for anything else.
    pub fn respond(
        &mut self,
        inform: &Message<'_>,
        now: Timestamp,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> bool {
        let (Some(s), Pdu::Request(r)) = (inform.v3, &inform.pdu) else {
            return false;
        };
        if r.kind != PduType::INFORM_REQUEST {
            return false;
        }
        let Ok(u) = self.user_for(s.header.user, s.header.engine_id) else {
            return false;
        };
        let Some(local) = self.local.as_mut() else {
            return false;
        };
        if s.header.engine_id != local.engine.id.as_slice() {
            return false;
        }
        local.salt = local.salt.wrapping_add(1);
        let keys = local.keys[u].as_ref();
        let pdu = Message::pdu(
            Version::V3,
            b"",
            PduType::RESPONSE,
            r.request_id,
            r.varbinds,
        )
        .pdu;
        let seal_with = Seal {
            msg_id: s.header.msg_id,
            max_size: 65_507,
            reportable: false,
            engine_id: &local.engine.id,
            boots: local.engine.boots,
            time: Usm::local_time(now),
            user: s.header.user,
            level: s.level,
            context_engine_id: s.context_engine_id,
            context_name: s.context_name,
            salt: local.salt.to_be_bytes(),
        };
        out.clear();
        seal(&pdu, &seal_with, keys, scratch, out);
        true
    }

    /// A message of `pdu` from trapgate's engine (its authoritative engine: an order to a
    /// v3 recorder) for `user` at `level`, into `out`. False without a local engine, or
    /// for a user the site lacks or whose keys cannot meet `level`.
    pub fn seal_local(
        &mut self,
        user: &[u8],
        level: Level,
        pdu: &Pdu<'_>,
        now: Timestamp,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(local) = self.local.as_ref() else {
            return false;
        };
        let Ok(u) = self.user_for(user, &local.engine.id) else {
            return false;
        };
        if self.users[u].level() < level {
            return false;
        }
        let local = self.local.as_mut().expect("checked above");
        local.salt = local.salt.wrapping_add(1);
        let s = Seal {
            msg_id: (local.salt & 0x7fff_ffff) as i32,
            max_size: 65_507,
            reportable: false,
            engine_id: &local.engine.id,
            boots: local.engine.boots,
            time: Usm::local_time(now),
            user,
            level,
            context_engine_id: &local.engine.id,
            context_name: b"",
            salt: local.salt.to_be_bytes(),
        };
        out.clear();
        seal(pdu, &s, local.keys[u].as_ref(), scratch, out);
        true
    }

    /// The reply to `request` (a v3 request trapgate's engine opened): `pdu`, a PDU's
    /// whole encoding, sealed with the request's user, level, msgID and context, into
    /// `out`. False for anything else.
    pub fn seal_reply(
        &mut self,
        request: &Message<'_>,
        pdu: &[u8],
        now: Timestamp,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(s) = request.v3 else {
            return false;
        };
        let Ok(u) = self.user_for(s.header.user, s.header.engine_id) else {
            return false;
        };
        let Some(local) = self.local.as_mut() else {
            return false;
        };
        if s.header.engine_id != local.engine.id.as_slice() {
            return false;
        }
        local.salt = local.salt.wrapping_add(1);
        scratch.clear();
        crate::wire::v3::scoped_pdu(s.context_engine_id, s.context_name, pdu, scratch);
        let seal_with = Seal {
            msg_id: s.header.msg_id,
            max_size: 65_507,
            reportable: false,
            engine_id: &local.engine.id,
            boots: local.engine.boots,
            time: Usm::local_time(now),
            user: s.header.user,
            level: s.level,
            context_engine_id: s.context_engine_id,
            context_name: s.context_name,
            salt: local.salt.to_be_bytes(),
        };
        out.clear();
        crate::wire::v3::seal_scoped(&seal_with, local.keys[u].as_ref(), scratch, out);
        true
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .engines
            .iter()
            .enumerate()
            .flat_map(|(u, m)| m.iter().map(move |(id, e)| (e.at, u, id.clone())))
            .min_by_key(|(at, _, _)| *at);
        if let Some((_, u, id)) = oldest {
            self.engines[u].remove(&id);
            self.kept -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::DEFAULT_SITE;
    use crate::wire::oid::oid;
    use crate::wire::usm::{AuthProtocol, PrivProtocol, password_to_key};
    use crate::wire::v3::{Seal, seal};
    use crate::wire::{PduType, Value, VarBind, Version};

    const USERS: &str = r#"[[usm_user]]
name = "upsv3user"
auth_protocol = "SHA"
auth_passphrase = "authpass123"
priv_protocol = "AES"
priv_passphrase = "privpass123"

[[usm_user]]
name = "card-only"
auth_protocol = "MD5"
auth_passphrase = "authpass123"
engine_id = "0x8000000001020304"
"#;

    fn site() -> Site {
        let text = DEFAULT_SITE.replacen(
            "[[ups]]\n",
            &format!("{USERS}\n[[ups]]\nversion = \"3\"\nuser = \"upsv3user\"\n"),
            1,
        );
        Site::parse(&text).expect("valid")
    }

    fn t(s: u64) -> Timestamp {
        Timestamp(ns::secs(1_000) + s * ns::SECOND)
    }

    /// A lowBattery trap from `engine` at `boots` and `time`, sealed by `user` with the
    /// passphrases given, at `level`.
    #[allow(clippy::too_many_arguments)]
    fn trap(
        user: &[u8],
        auth: AuthProtocol,
        pass: &[u8],
        privacy: Option<PrivProtocol>,
        engine: &[u8],
        boots: u32,
        time: u32,
        level: Level,
    ) -> Vec<u8> {
        let ku = password_to_key(auth, pass);
        sealed(user, auth, &ku, privacy, engine, boots, time, level)
    }

    /// The same with the user's key `ku` already made (a passphrase is a megabyte of
    /// hashing).
    #[allow(clippy::too_many_arguments)]
    fn sealed(
        user: &[u8],
        auth: AuthProtocol,
        ku: &crate::wire::usm::Key,
        privacy: Option<PrivProtocol>,
        engine: &[u8],
        boots: u32,
        time: u32,
        level: Level,
    ) -> Vec<u8> {
        let name = oid("1.3.6.1.6.3.1.1.4.1.0");
        let lb = oid("1.3.6.1.4.1.318.0.7");
        let vbs = [VarBind {
            name: name.as_oid(),
            value: Value::ObjectId(lb.as_oid()),
        }];
        let pku = privacy.map(|p| (p, password_to_key(auth, b"privpass123")));
        let keys = Keys::localized(auth, ku, pku.as_ref().map(|(p, k)| (*p, k)), engine);
        let pdu = Message::pdu(Version::V3, b"", PduType::SNMPV2_TRAP, 1, &vbs).pdu;
        let s = Seal {
            msg_id: 1,
            max_size: 1472,
            reportable: false,
            engine_id: engine,
            boots,
            time,
            user,
            level,
            context_engine_id: engine,
            context_name: b"",
            salt: [0, 0, 0, boots as u8, 0, 0, 0, time as u8],
        };
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        seal(&pdu, &s, Some(&keys), &mut scratch, &mut out);
        out
    }

    fn good(engine: &[u8], boots: u32, time: u32) -> Vec<u8> {
        trap(
            b"upsv3user",
            AuthProtocol::Sha1,
            b"authpass123",
            Some(PrivProtocol::Aes128),
            engine,
            boots,
            time,
            Level::AuthPriv,
        )
    }

    fn open(usm: &mut Usm, bytes: &[u8], at: Timestamp) -> Result<Level, NotOpened> {
        let arena = Bump::new();
        usm.open(bytes, at, &arena).map(|m| {
            assert_eq!(m.community, b"upsv3user");
            assert_eq!(m.pdu_type(), PduType::SNMPV2_TRAP);
            m.v3.unwrap().level
        })
    }

    #[test]
    fn one_user_is_heard_from_many_engines_each_with_its_own_keys() {
        let mut usm = Usm::new(&site());
        for card in 0..5u8 {
            let engine = [0x80, 0, 0x1f, 0x88, 4, b'u', b'p', b's', card];
            assert_eq!(
                open(&mut usm, &good(&engine, 1, 100), t(0)),
                Ok(Level::AuthPriv)
            );
        }
        assert_eq!(usm.engines_kept(), 5);
    }

    #[test]
    fn a_wrong_passphrase_an_unknown_user_or_a_level_the_user_lacks_is_refused() {
        let mut usm = Usm::new(&site());
        let e = b"\x80\x00\x1f\x88\x04card1";
        let wrong = trap(
            b"upsv3user",
            AuthProtocol::Sha1,
            b"wrongpass1",
            Some(PrivProtocol::Aes128),
            e,
            1,
            1,
            Level::AuthPriv,
        );
        assert_eq!(
            open(&mut usm, &wrong, t(0)),
            Err(NotOpened::Refused(UsmRefusal::WrongDigest))
        );
        assert_eq!(usm.engines_kept(), 0, "a forged message keeps no engine");
        let nobody = trap(
            b"nobody",
            AuthProtocol::Sha1,
            b"authpass123",
            None,
            e,
            1,
            1,
            Level::AuthNoPriv,
        );
        assert_eq!(
            open(&mut usm, &nobody, t(0)),
            Err(NotOpened::Refused(UsmRefusal::UnknownUser))
        );
        let md5 = trap(
            b"card-only",
            AuthProtocol::Md5,
            b"authpass123",
            Some(PrivProtocol::Des),
            b"\x80\x00\x00\x00\x01\x02\x03\x04",
            1,
            1,
            Level::AuthPriv,
        );
        assert_eq!(
            open(&mut usm, &md5, t(0)),
            Err(NotOpened::Refused(UsmRefusal::UnsupportedLevel))
        );
        // card-only is for its engine only.
        let elsewhere = trap(
            b"card-only",
            AuthProtocol::Md5,
            b"authpass123",
            None,
            e,
            1,
            1,
            Level::AuthNoPriv,
        );
        assert_eq!(
            open(&mut usm, &elsewhere, t(0)),
            Err(NotOpened::Refused(UsmRefusal::UnknownEngine))
        );
        // Tampered ciphertext after a right MAC cannot be: the MAC covers it.
        let mut flipped = good(e, 1, 1);
        let n = flipped.len();
        flipped[n - 3] ^= 0x40;
        assert_eq!(
            open(&mut usm, &flipped, t(0)),
            Err(NotOpened::Refused(UsmRefusal::WrongDigest))
        );
        for cut in 0..flipped.len() {
            assert!(open(&mut usm, &good(e, 1, 1)[..cut], t(0)).is_err());
        }
    }

    #[test]
    fn an_old_trap_replayed_falls_outside_its_engines_time_window() {
        let mut usm = Usm::new(&site());
        let e = b"\x80\x00\x1f\x88\x04card1";
        let old = good(e, 3, 1_000);
        assert!(open(&mut usm, &old, t(0)).is_ok());
        // The same trap again within 150 s is in the window (USM's own rule) ...
        assert!(open(&mut usm, &old, t(100)).is_ok());
        // ... and refused after: the engine's time has moved on by 151 s.
        assert_eq!(
            open(&mut usm, &old, t(151)),
            Err(NotOpened::Refused(UsmRefusal::NotInTimeWindow))
        );
        // A newer trap moves the engine's clock; one from its last boot is refused at once.
        assert!(open(&mut usm, &good(e, 4, 5), t(200)).is_ok());
        assert_eq!(
            open(&mut usm, &good(e, 3, 1_300), t(200)),
            Err(NotOpened::Refused(UsmRefusal::NotInTimeWindow))
        );
        assert!(open(&mut usm, &good(e, 4, 6), t(201)).is_ok());
    }

    #[test]
    fn a_flood_of_new_engines_is_refused_past_the_localization_rate_and_kept_nowhere() {
        let mut usm = Usm::new(&site());
        let mut refused = 0;
        // Forged: random engines, a wrong passphrase (the attacker has none).
        let guess = password_to_key(AuthProtocol::Sha1, b"guessing1");
        for i in 0..2_000u32 {
            let engine = [0x80, 0, 0, 9, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let forged = sealed(
                b"upsv3user",
                AuthProtocol::Sha1,
                &guess,
                None,
                &engine,
                1,
                1,
                Level::AuthNoPriv,
            );
            match open(&mut usm, &forged, t(0)) {
                Err(NotOpened::Refused(UsmRefusal::UnknownEngine)) => refused += 1,
                Err(NotOpened::Refused(UsmRefusal::WrongDigest)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(refused, 2_000 - LOCALIZE_BURST as usize);
        assert_eq!(usm.engines_kept(), 0);
        // A second later the real card's first trap is heard.
        assert!(open(&mut usm, &good(b"\x80\x00\x1f\x88\x04real!", 1, 1), t(1)).is_ok());
    }

    const LOCAL: &[u8] = b"\x80\x00\x1f\x88\x04trapgate:test";

    /// A reportable get-request of upsEstimatedChargeRemaining from `user` with the
    /// passphrase `pass` (SHA, authNoPriv; noAuthNoPriv to the empty engine), naming
    /// `engine`, as net-snmp's snmpget sends it.
    fn get(user: &[u8], pass: &[u8], engine: &[u8]) -> Vec<u8> {
        let name = oid("1.3.6.1.2.1.33.1.2.4.0");
        let vbs = [VarBind {
            name: name.as_oid(),
            value: Value::Null,
        }];
        let pdu = Message::pdu(Version::V3, b"", PduType::GET_REQUEST, 4242, &vbs).pdu;
        let level = if engine.is_empty() {
            Level::NoAuthNoPriv
        } else {
            Level::AuthNoPriv
        };
        let ku = password_to_key(AuthProtocol::Sha1, pass);
        let keys = Keys::localized(AuthProtocol::Sha1, &ku, None, engine);
        let s = Seal {
            msg_id: 77,
            max_size: 65_507,
            reportable: true,
            engine_id: engine,
            boots: 1,
            time: 0,
            user,
            level,
            context_engine_id: engine,
            context_name: b"",
            salt: [0; 8],
        };
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        seal(&pdu, &s, Some(&keys), &mut scratch, &mut out);
        out
    }

    /// What a refused `bytes` draws: the Report's usmStats arc and level, or None.
    fn reported(usm: &mut Usm, bytes: &[u8], at: Timestamp) -> Option<(u32, Level, usize)> {
        let arena = Bump::new();
        let why = match usm.open(bytes, at, &arena) {
            Err(NotOpened::Refused(why)) => why,
            other => panic!("{:?}", other.map(|m| m.pdu_type())),
        };
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        if !usm.report(bytes, why, at, &mut scratch, &mut out) {
            return None;
        }
        let h = Header::parse(&out).expect("a v3 message");
        let level = h.level().expect("a level");
        let Data::Plain(plain) = h.data else {
            panic!("a Report is never encrypted")
        };
        let m = h
            .open(Level::NoAuthNoPriv, plain, &arena)
            .expect("a Report");
        assert_eq!(m.pdu_type(), PduType::REPORT);
        assert_eq!(h.engine_id, LOCAL, "trapgate's engine");
        let Pdu::Request(r) = m.pdu else { panic!() };
        let arcs: Vec<u32> = r.varbinds[0].name.arcs().collect();
        assert_eq!(arcs[..9], [1, 3, 6, 1, 6, 3, 15, 1, 1]);
        Some((arcs[9], level, out.len()))
    }

    fn with_local() -> Usm {
        let mut usm = Usm::new(&site());
        usm.set_local(LocalEngine {
            id: LOCAL.to_vec(),
            boots: 3,
        });
        usm
    }

    #[test]
    fn a_wrong_key_or_user_to_trapgates_engine_is_reported_as_net_snmps_agent_does() {
        let mut usm = with_local();
        // Discovery: usmStatsUnknownEngineIDs, unauthenticated.
        let probe = get(b"", b"unused-pass", b"");
        let (arc, level, len) = reported(&mut usm, &probe, t(0)).expect("discovery");
        assert_eq!((arc, level), (4, Level::NoAuthNoPriv));
        assert!(
            len <= 3 * probe.len() && len <= 1472,
            "{len} for {}",
            probe.len()
        );
        // A wrong passphrase: usmStatsWrongDigests, unauthenticated (net-snmp then says
        // "Authentication failure", not "Timeout").
        let wrong = get(b"upsv3user", b"wrongpass1", LOCAL);
        assert_eq!(
            reported(&mut usm, &wrong, t(1)).map(|r| (r.0, r.1)),
            Some((5, Level::NoAuthNoPriv))
        );
        // An unknown user: usmStatsUnknownUserNames.
        let nobody = get(b"nobody", b"authpass123", LOCAL);
        assert_eq!(reported(&mut usm, &nobody, t(1)).map(|r| r.0), Some(3));
        // The same wrong key naming another engine than trapgate's: no Report (trapgate
        // is not its authority, and a forger could make it answer for any engine).
        let elsewhere = get(b"upsv3user", b"wrongpass1", b"\x80\x00\x1f\x88\x04other");
        assert_eq!(reported(&mut usm, &elsewhere, t(1)), None);
        let mut quiet = get(b"upsv3user", b"wrongpass1", LOCAL);
        // msgFlags: the reportable bit cleared (authNoPriv alone).
        let h = Header::parse(&quiet).unwrap();
        let at = quiet
            .windows(3)
            .position(|w| w == [0x04, 0x01, h.flags])
            .unwrap();
        quiet[at + 2] &= !FLAG_REPORTABLE;
        assert_eq!(reported(&mut usm, &quiet, t(1)), None, "not reportable");
    }

    #[test]
    fn reports_stop_at_the_gateways_one_budget_and_the_rest_are_counted() {
        let budget = ReportBudget::new(100);
        // Two security models (a receive worker's and the virtual UPS's) share it.
        let (mut a, mut b) = (with_local(), with_local());
        a.share_reports(budget.clone());
        b.share_reports(budget.clone());
        let probe = get(b"", b"unused-pass", b"");
        let mut sent = 0;
        for i in 0..300 {
            let usm = if i % 2 == 0 { &mut a } else { &mut b };
            sent += usize::from(reported(usm, &probe, t(0)).is_some());
        }
        assert_eq!(sent, 100, "the burst, over both");
        assert_eq!(budget.counts(), (100, 200));
        // A second later, REPORTS_PER_SECOND more.
        let mut later = 0;
        for _ in 0..1000 {
            later += usize::from(reported(&mut a, &probe, t(1)).is_some());
        }
        assert_eq!(later, REPORTS_PER_SECOND as usize);
        // A reload keeps the budget.
        a.reload(Usm::new(&site()));
        assert_eq!(reported(&mut a, &probe, t(1)), None);
        assert!(reported(&mut a, &probe, t(2)).is_some());
    }

    #[test]
    fn a_flood_of_new_engines_from_one_address_spends_that_addresss_budget_only() {
        let mut usm = Usm::new(&site());
        let guess = password_to_key(AuthProtocol::Sha1, b"guessing1");
        let forger: std::net::IpAddr = "192.168.61.99".parse().unwrap();
        let arena = Bump::new();
        let mut localized = 0;
        for i in 0..2_000u32 {
            let engine = [0x80, 0, 0, 9, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let forged = sealed(
                b"upsv3user",
                AuthProtocol::Sha1,
                &guess,
                None,
                &engine,
                1,
                1,
                Level::AuthNoPriv,
            );
            match usm.open_from(&forged, Some(forger), t(0), &arena) {
                Err(NotOpened::Refused(UsmRefusal::WrongDigest)) => localized += 1,
                Err(NotOpened::Refused(UsmRefusal::UnknownEngine)) => {}
                other => panic!("{:?}", other.map(|m| m.pdu_type())),
            }
        }
        assert_eq!(localized, LOCALIZE_PER_SOURCE as usize);
        // The real card, at another address, is heard at once.
        let ups: std::net::IpAddr = "192.168.61.250".parse().unwrap();
        let real = good(b"\x80\x00\x1f\x88\x04card1", 1, 1);
        assert!(usm.open_from(&real, Some(ups), t(0), &arena).is_ok());
    }

    #[test]
    fn a_known_engine_is_heard_whatever_a_flood_from_its_own_address_spent() {
        let card = b"\x80\x00\x1f\x88\x04card1";
        let ups: std::net::IpAddr = "192.168.61.250".parse().unwrap();
        let guess = password_to_key(AuthProtocol::Sha1, b"guessing1");
        let arena = Bump::new();
        let flood = |usm: &mut Usm| {
            for i in 0..300u32 {
                let engine = [0x80, 0, 0, 9, (i >> 8) as u8, i as u8];
                let forged = sealed(
                    b"upsv3user",
                    AuthProtocol::Sha1,
                    &guess,
                    None,
                    &engine,
                    1,
                    1,
                    Level::AuthNoPriv,
                );
                let _ = usm.open_from(&forged, Some(ups), t(0), &arena);
            }
        };
        // Spoofing the UPS's own address spends its budget: an engine nobody knows is
        // refused until it refills.
        let mut alone = Usm::new(&site());
        flood(&mut alone);
        assert_eq!(
            alone
                .open_from(&good(card, 1, 1), Some(ups), t(0), &arena)
                .map(|m| m.pdu_type()),
            Err(NotOpened::Refused(UsmRefusal::UnknownEngine))
        );
        // The site's book knows the card (the poller authenticated it, or a checkpoint
        // kept it): heard at once, and by every security model sharing the book.
        let mut worker = Usm::new(&site());
        let book = worker.engines().clone();
        book.insert(b"upsv3user", card);
        flood(&mut worker);
        assert!(
            worker
                .open_from(&good(card, 1, 1), Some(ups), t(0), &arena)
                .is_ok()
        );
        // What one worker hears authentically, another knows.
        let mut other = Usm::new(&site());
        other.share_engines(book.clone());
        let card2 = b"\x80\x00\x1f\x88\x04card2";
        assert!(
            worker
                .open_from(
                    &good(card2, 1, 1),
                    Some("192.168.61.251".parse().unwrap()),
                    t(0),
                    &arena
                )
                .is_ok()
        );
        assert!(book.contains(b"upsv3user", card2));
        flood(&mut other);
        assert!(
            other
                .open_from(&good(card2, 1, 1), Some(ups), t(0), &arena)
                .is_ok()
        );
        // Forged messages add nothing.
        assert_eq!(book.entries().len(), 2);
    }
}
