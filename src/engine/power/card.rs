//! One UPS card or PDU as trapgate's command generator talks to it (RFC 3414's
//! non-authoritative side): where it is, the credential it is asked with (a community,
//! or an SNMPv3 user whose keys are localized to the card's engine once discovered),
//! and the checks every answer passes: the request's id, the community or user, the
//! engine, the MAC, the level, the time window. Sans-IO: requests are encoded into a
//! buffer, answers opened from bytes. The poller polls a v3 UPS with it, the power
//! machine cycles outlets with a card's write credential, `check-config --probe` reads
//! a card's settings with its read credential.

use std::net::SocketAddr;

use bumpalo::Bump;

use crate::engine::config::{Site, Write};
use crate::engine::trust::Refusal;
use crate::engine::usm::TIME_WINDOW_S;
use crate::time::{Timestamp, ns};
use crate::wire::usm::{AuthProtocol, Key, Keys, PrivProtocol};
use crate::wire::v3::{Data, Header, Level, Seal, seal};
use crate::wire::{Message, Pdu, PduType, RequestPdu, VarBind, Version, encode};

/// How a card is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// This community, in SNMPv1 or SNMPv2c.
    Community {
        /// The community.
        community: Vec<u8>,
        /// SNMPv2c rather than SNMPv1.
        v2c: bool,
    },
    /// SNMPv3 as this user, at this level.
    User {
        /// The user's name.
        name: Vec<u8>,
        /// The level its requests go at.
        level: Level,
        /// Its authentication protocol and key.
        auth: Option<(AuthProtocol, Key)>,
        /// Its privacy protocol and key.
        privacy: Option<(PrivProtocol, Key)>,
    },
}

impl Credential {
    /// The credential of `access` (a write community or user, or a read one), with the
    /// site's `[[usm_user]]` keys; None for a user the site does not define.
    pub fn of(access: &Write, site: &Site) -> Option<Credential> {
        Some(match access {
            Write::Community { community, v2c } => Credential::Community {
                community: community.as_bytes().to_vec(),
                v2c: *v2c,
            },
            Write::User(a) => {
                let u = site.usm_users.iter().find(|u| u.name == a.user)?;
                Credential::User {
                    name: a.user.as_bytes().to_vec(),
                    level: a.level,
                    auth: u.auth.clone(),
                    privacy: u.privacy.clone(),
                }
            }
        })
    }
}

/// A v3 card's engine, as discovered: its ID, the user's keys localized to it, its
/// boots and time as last heard, and our time then.
#[derive(Clone, Debug)]
struct Engine {
    id: Vec<u8>,
    keys: Keys,
    boots: u32,
    time: u32,
    at: Timestamp,
}

impl Engine {
    /// Its time now, by its clock as last heard.
    fn time(&self, now: Timestamp) -> u32 {
        (u64::from(self.time) + now.0.saturating_sub(self.at.0) / ns::SECOND).min(i32::MAX as u64)
            as u32
    }

    /// Its clock, as a message of it says.
    fn set_clock(&mut self, boots: u32, time: u32, now: Timestamp) {
        self.boots = boots;
        self.time = time;
        self.at = now;
    }
}

/// A card: its agent's address, its credential, its engine once known.
#[derive(Clone, Debug)]
pub struct Card {
    /// Its agent's address and port: requests go there, answers count only from there.
    pub to: SocketAddr,
    /// How it is asked.
    pub credential: Credential,
    engine: Option<Engine>,
    salts: u64,
}

/// What an answer from the card was.
#[derive(Debug)]
pub enum Opened<'a> {
    /// A discovery's Report: the card's engine is known; the request goes again (with
    /// a new id).
    Discovered,
    /// An authenticated Report (a stale time): the clock is set; ask again.
    AskAgain,
    /// The answer to the request (a get-response of its request id).
    Answer(RequestPdu<'a>),
}

impl Card {
    /// A card at `to` asked with `credential`.
    pub fn new(to: SocketAddr, credential: Credential) -> Card {
        Card {
            to,
            credential,
            engine: None,
            salts: 0,
        }
    }

    /// Whether its next request must be a v3 discovery (its engine is not known yet).
    pub fn discovering(&self) -> bool {
        matches!(self.credential, Credential::User { .. }) && self.engine.is_none()
    }

    /// Takes the engine `old`, the same agent asked with the same user and keys, learnt
    /// (a reload).
    pub fn keep_engine_of(&mut self, old: &Card) {
        if matches!(self.credential, Credential::User { .. })
            && self.credential == old.credential
            && self.to == old.to
        {
            self.engine = old.engine.clone();
            self.salts = old.salts;
        }
    }

    /// Its user and its engine's ID, once an authentic message has shown it.
    pub fn engine(&self) -> Option<(&[u8], &[u8])> {
        match (&self.credential, &self.engine) {
            (Credential::User { name, .. }, Some(e)) => Some((name, &e.id)),
            _ => None,
        }
    }

    /// The request id (or msgID) of a datagram, if it has one.
    pub fn id_of(raw: &[u8], arena: &Bump) -> Option<i32> {
        match Message::parse(raw, arena) {
            Ok(Message {
                pdu: Pdu::Request(r),
                ..
            }) => Some(r.request_id),
            Ok(_) => None,
            Err(e) if e.kind == crate::wire::ErrorKind::UnsupportedV3 => {
                Header::parse(raw).ok().map(|h| h.msg_id)
            }
            Err(_) => None,
        }
    }

    /// Appends request `kind` of `vbs` under `id` to `out` (`scratch` is reused): a v1
    /// message with the community, a v3 one at the user's level, or a discovery (no
    /// user, unauthenticated, reportable, no bindings) if `discovery` or while the
    /// engine is not known.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &mut self,
        now: Timestamp,
        kind: PduType,
        id: i32,
        discovery: bool,
        vbs: &[VarBind<'_>],
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        match &self.credential {
            Credential::Community { community, v2c } => {
                let version = if *v2c { Version::V2c } else { Version::V1 };
                let msg = Message::pdu(version, community, kind, id, vbs);
                encode::encode(&msg, out);
            }
            Credential::User { name, level, .. } => {
                self.salts = self.salts.wrapping_add(1);
                let (engine, boots, time, user, lvl, keys, vbs) = match &self.engine {
                    Some(e) if !discovery => (
                        e.id.as_slice(),
                        e.boots,
                        e.time(now),
                        name.as_slice(),
                        *level,
                        Some(&e.keys),
                        vbs,
                    ),
                    _ => (&[][..], 0, 0, &[][..], Level::NoAuthNoPriv, None, &[][..]),
                };
                let msg = Message::pdu(Version::V3, b"", kind, id, vbs);
                let s = Seal {
                    msg_id: id,
                    max_size: 65_507,
                    reportable: true,
                    engine_id: engine,
                    boots,
                    time,
                    user,
                    level: lvl,
                    context_engine_id: engine,
                    context_name: b"",
                    salt: self.salts.to_be_bytes(),
                };
                seal(&msg.pdu, &s, keys, scratch, out);
            }
        }
    }

    /// Opens `raw`, from the card's address and port, answering the request `id` (a
    /// discovery if `discovery`): the v1 answer with the card's community, the v3 one
    /// of its user, authenticated with the keys of its engine, in time, decrypted.
    pub fn open<'a>(
        &mut self,
        now: Timestamp,
        raw: &'a [u8],
        arena: &'a Bump,
        id: i32,
        discovery: bool,
    ) -> Result<Opened<'a>, Refusal> {
        let parsed = Message::parse(raw, arena);
        let v3 = matches!(&parsed, Err(e) if e.kind == crate::wire::ErrorKind::UnsupportedV3);
        let Credential::User {
            name,
            level: min_level,
            auth,
            privacy,
        } = &self.credential
        else {
            if v3 {
                return Err(Refusal::WrongVersion);
            }
            let m = parsed.map_err(|_| Refusal::AnswerNotResponse)?;
            let Pdu::Request(r) = m.pdu else {
                return Err(Refusal::AnswerNotResponse);
            };
            if r.kind != PduType::RESPONSE {
                return Err(Refusal::AnswerNotResponse);
            }
            if r.request_id != id {
                return Err(Refusal::AnswerUnknownRequest);
            }
            match &self.credential {
                Credential::Community { community, v2c }
                    if *m.community == **community && (m.version == Version::V2c) == *v2c => {}
                Credential::Community { community, .. } if *m.community == **community => {
                    return Err(Refusal::WrongVersion);
                }
                _ => return Err(Refusal::AnswerWrongCommunity),
            }
            return Ok(Opened::Answer(r));
        };
        if !v3 {
            return Err(Refusal::WrongVersion);
        }
        let h = Header::parse(raw).map_err(|_| Refusal::AnswerNotResponse)?;
        if h.msg_id != id {
            return Err(Refusal::AnswerUnknownRequest);
        }
        let level = h.level().ok_or(Refusal::UsmInvalidFlags)?;
        if discovery || self.engine.is_none() {
            // Discovery's answer: an unauthenticated Report naming the card's engine.
            let Data::Plain(p) = h.data else {
                return Err(Refusal::AnswerNotResponse);
            };
            let m = h
                .open(Level::NoAuthNoPriv, p, arena)
                .map_err(|_| Refusal::AnswerNotResponse)?;
            if m.pdu_type() != PduType::REPORT
                || h.engine_id.is_empty()
                || level != Level::NoAuthNoPriv
            {
                return Err(Refusal::AnswerNotResponse);
            }
            let Some((a, ku)) = auth else {
                return Err(Refusal::UsmUnsupportedLevel);
            };
            match &mut self.engine {
                Some(e) if e.id == h.engine_id => e.set_clock(h.boots, h.time, now),
                _ => {
                    let privacy = privacy.as_ref().map(|(p, k)| (*p, k));
                    self.engine = Some(Engine {
                        id: h.engine_id.to_vec(),
                        keys: Keys::localized(*a, ku, privacy, h.engine_id),
                        boots: h.boots,
                        time: h.time,
                        at: now,
                    });
                }
            }
            return Ok(Opened::Discovered);
        }
        if *h.user != **name {
            return Err(Refusal::WrongUser);
        }
        let e = self.engine.as_mut().expect("checked above");
        if level == Level::NoAuthNoPriv || h.engine_id != e.id.as_slice() {
            return Err(Refusal::UsmUnsupportedLevel);
        }
        if !e.keys.verify(raw, h.auth_at, h.auth_params.len()) {
            return Err(Refusal::UsmWrongDigest);
        }
        // Timeliness (RFC 3414 §3.2 step 7b): the card is authoritative; its clock moves
        // ours only forward.
        let local = u64::from(e.time(now));
        if h.boots > e.boots || (h.boots == e.boots && u64::from(h.time) > local) {
            e.set_clock(h.boots, h.time, now);
        }
        let plain: &[u8] = match (level, h.data) {
            (Level::AuthPriv, Data::Encrypted(x)) => {
                let b = arena.alloc_slice_copy(x);
                e.keys
                    .decrypt(h.boots, h.time, h.priv_params, b)
                    .map_err(|_| Refusal::UsmDecryptionError)?;
                b
            }
            (Level::AuthNoPriv, Data::Plain(p)) => p,
            _ => return Err(Refusal::UsmInvalidFlags),
        };
        let m = h
            .open(level, plain, arena)
            .map_err(|_| Refusal::UsmDecryptionError)?;
        if m.pdu_type() == PduType::REPORT {
            // Authentic: the card's clock, set again (a stale time, or it rebooted).
            e.set_clock(h.boots, h.time, now);
            return Ok(Opened::AskAgain);
        }
        if h.boots < e.boots || (h.boots == e.boots && u64::from(h.time) + TIME_WINDOW_S < local) {
            return Err(Refusal::UsmNotInTimeWindow);
        }
        if level < *min_level {
            return Err(Refusal::UsmUnsupportedLevel);
        }
        let Pdu::Request(r) = m.pdu else {
            return Err(Refusal::AnswerNotResponse);
        };
        if r.kind != PduType::RESPONSE || r.request_id != id {
            return Err(Refusal::AnswerUnknownRequest);
        }
        Ok(Opened::Answer(r))
    }

    /// Whether `community` is the one it is asked with (a replay's answers seen on the
    /// wire carry it).
    pub fn asked_with(&self, community: &[u8]) -> bool {
        matches!(&self.credential, Credential::Community { community: c, .. } if c.as_slice() == community)
    }
}
