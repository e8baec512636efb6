//! SNMPv3 messages (RFC 3412 §6) with the User-based Security Model's parameters
//! (RFC 3414 §2.4), sans-IO and zero-copy.
//!
//! ```text
//! SNMPv3Message ::= SEQUENCE { msgVersion INTEGER (3),
//!     msgGlobalData SEQUENCE { msgID INTEGER, msgMaxSize INTEGER,
//!                              msgFlags OCTET STRING (SIZE(1)), msgSecurityModel INTEGER },
//!     msgSecurityParameters OCTET STRING,   -- UsmSecurityParameters, BER inside
//!     msgData CHOICE { plaintext ScopedPDU, encryptedPDU OCTET STRING } }
//! UsmSecurityParameters ::= SEQUENCE { msgAuthoritativeEngineID OCTET STRING,
//!     msgAuthoritativeEngineBoots INTEGER, msgAuthoritativeEngineTime INTEGER,
//!     msgUserName OCTET STRING, msgAuthenticationParameters OCTET STRING,
//!     msgPrivacyParameters OCTET STRING }
//! ScopedPDU ::= SEQUENCE { contextEngineID OCTET STRING, contextName OCTET STRING, data PDU }
//! ```
//!
//! `Header::parse` reads what a message says of itself, borrowing every field;
//! `Header::open` turns it into a `Message` once the security model has checked it (and
//! decrypted its scoped PDU into the caller's arena); `seal` writes one, authenticated
//! and encrypted with `usm::Keys`.

use bumpalo::Bump;

use super::ber::{self, Reader};
use super::encode::Writer;
use super::error::{Error, ErrorKind, Result};
use super::message::{Message, Pdu, Version, parse_pdu};
use super::usm::Keys;

/// The User-based Security Model's number (msgSecurityModel).
pub const USM: i64 = 3;

/// msgFlags: authenticated.
pub const FLAG_AUTH: u8 = 0x01;
/// msgFlags: encrypted.
pub const FLAG_PRIV: u8 = 0x02;
/// msgFlags: a Report may be sent back.
pub const FLAG_REPORTABLE: u8 = 0x04;

/// A security level, least first (journaled by its net-snmp name).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Level {
    /// Neither authenticated nor encrypted.
    #[serde(rename = "noAuthNoPriv")]
    NoAuthNoPriv,
    /// Authenticated.
    #[serde(rename = "authNoPriv")]
    AuthNoPriv,
    /// Authenticated and encrypted.
    #[serde(rename = "authPriv")]
    AuthPriv,
}

impl Level {
    /// Every level, least first.
    pub const ALL: [Level; 3] = [Level::NoAuthNoPriv, Level::AuthNoPriv, Level::AuthPriv];

    /// Its net-snmp name (`-l`): `noAuthNoPriv`, `authNoPriv`, `authPriv`.
    pub fn name(self) -> &'static str {
        match self {
            Level::NoAuthNoPriv => "noAuthNoPriv",
            Level::AuthNoPriv => "authNoPriv",
            Level::AuthPriv => "authPriv",
        }
    }

    /// The level of a net-snmp name (case-insensitive).
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// The level msgFlags say; None for privacy without authentication (RFC 3412
    /// §7.2 step 5: an invalid message).
    pub fn of_flags(flags: u8) -> Option<Level> {
        match flags & (FLAG_AUTH | FLAG_PRIV) {
            0 => Some(Level::NoAuthNoPriv),
            FLAG_AUTH => Some(Level::AuthNoPriv),
            3 => Some(Level::AuthPriv),
            _ => None,
        }
    }

    fn flags(self) -> u8 {
        match self {
            Level::NoAuthNoPriv => 0,
            Level::AuthNoPriv => FLAG_AUTH,
            Level::AuthPriv => FLAG_AUTH | FLAG_PRIV,
        }
    }
}

/// The scoped PDU as the message carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// In clear: the ScopedPDU's whole TLV.
    Plain(&'a [u8]),
    /// Encrypted: the encryptedPDU's content.
    Encrypted(&'a [u8]),
}

/// What a v3 message says of itself, every field borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// msgID.
    pub msg_id: i32,
    /// msgMaxSize.
    pub max_size: i32,
    /// msgFlags.
    pub flags: u8,
    /// msgSecurityModel (3 for USM).
    pub security_model: i64,
    /// msgAuthoritativeEngineID.
    pub engine_id: &'a [u8],
    /// msgAuthoritativeEngineBoots.
    pub boots: u32,
    /// msgAuthoritativeEngineTime.
    pub time: u32,
    /// msgUserName.
    pub user: &'a [u8],
    /// msgAuthenticationParameters (the MAC).
    pub auth_params: &'a [u8],
    /// Where msgAuthenticationParameters' content starts in the message.
    pub auth_at: usize,
    /// msgPrivacyParameters (the salt).
    pub priv_params: &'a [u8],
    /// The scoped PDU.
    pub data: Data<'a>,
}

/// A v3 message's header and scoped PDU context, as `Message::v3` holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scoped<'a> {
    /// The header.
    pub header: Header<'a>,
    /// The level it came at (checked by the security model).
    pub level: Level,
    /// contextEngineID.
    pub context_engine_id: &'a [u8],
    /// contextName.
    pub context_name: &'a [u8],
}

/// msgAuthoritativeEngineBoots or Time (0 to 2³¹ − 1). An agent that writes 221 as
/// the one octet `dd` (no leading zero: -35 by X.690) is read as the number it meant, as
/// net-snmp and Wireshark read it (zeek's net-snmp capture has them).
fn int31(r: &mut Reader<'_>) -> Result<u32> {
    let tlv = r.expect(ber::INTEGER)?;
    let b = match tlv.value {
        [] => return Err(Error::new(ErrorKind::IntegerEmpty, tlv.offset)),
        [0, rest @ ..] if !rest.is_empty() => rest,
        b => b,
    };
    if b.len() > 4 {
        return Err(Error::new(ErrorKind::IntegerTooLarge, tlv.offset));
    }
    // The octets as the unsigned number they spell.
    let v = b.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
    if v > i32::MAX as u32 {
        return Err(Error::new(ErrorKind::IntegerTooLarge, tlv.offset));
    }
    Ok(v)
}

fn int32(r: &mut Reader<'_>) -> Result<i32> {
    let tlv = r.expect(ber::INTEGER)?;
    ber::int32(tlv.integer()?).ok_or_else(|| Error::new(ErrorKind::IntegerTooLarge, tlv.offset))
}

impl<'a> Header<'a> {
    /// Reads a v3 message's header; an error for anything that is not one (a v1 or v2c
    /// message is `BadVersion` here).
    pub fn parse(buf: &'a [u8]) -> Result<Header<'a>> {
        let mut top = Reader::new(buf);
        let seq = top.expect(ber::SEQUENCE)?;
        top.finish()?;
        let mut r = seq.reader();
        let version = r.expect(ber::INTEGER)?;
        if version.integer()? != 3 {
            return Err(Error::new(ErrorKind::BadVersion, version.offset));
        }
        let global = r.expect(ber::SEQUENCE)?;
        let mut g = global.reader();
        let msg_id = int32(&mut g)?;
        let max_size = int32(&mut g)?;
        let flags_tlv = g.expect(ber::OCTET_STRING)?;
        let &[flags] = flags_tlv.value else {
            return Err(Error::new(ErrorKind::BadMsgFlags, flags_tlv.offset));
        };
        let security_model = g.integer()?;
        g.finish()?;
        let params = r.expect(ber::OCTET_STRING)?;
        // The parameters are BER inside the string: read with offsets in the message.
        let mut p = params.reader();
        let usm = p.expect(ber::SEQUENCE)?;
        p.finish()?;
        let mut u = usm.reader();
        let engine_id = u.octets()?;
        let boots = int31(&mut u)?;
        let time = int31(&mut u)?;
        let user = u.octets()?;
        let auth = u.expect(ber::OCTET_STRING)?;
        let priv_params = u.octets()?;
        u.finish()?;
        let data_tlv = r.read()?;
        let data = match data_tlv.tag {
            ber::SEQUENCE => {
                Data::Plain(&buf[data_tlv.start()..data_tlv.offset + data_tlv.value.len()])
            }
            ber::OCTET_STRING => Data::Encrypted(data_tlv.value),
            _ => return Err(Error::new(ErrorKind::WrongTag, data_tlv.start())),
        };
        r.finish()?;
        Ok(Header {
            msg_id,
            max_size,
            flags,
            security_model,
            engine_id,
            boots,
            time,
            user,
            auth_params: auth.value,
            auth_at: auth.offset,
            priv_params,
            data,
        })
    }

    /// The level its flags claim (None: privacy without authentication).
    pub fn level(&self) -> Option<Level> {
        Level::of_flags(self.flags)
    }

    /// The message its scoped PDU holds: `plain` is the ScopedPDU's bytes (the message's
    /// own, or decrypted into `arena`; bytes after the ScopedPDU are DES padding and
    /// ignored). The header and level are kept in `arena` for `Message::v3`.
    pub fn open(&self, level: Level, plain: &'a [u8], arena: &'a Bump) -> Result<Message<'a>> {
        let mut top = Reader::new(plain);
        let scoped = top.expect(ber::SEQUENCE)?;
        let mut s = scoped.reader();
        let context_engine_id = s.octets()?;
        let context_name = s.octets()?;
        let pdu = parse_pdu(s.read()?, arena)?;
        s.finish()?;
        let v3 = arena.alloc(Scoped {
            header: *self,
            level,
            context_engine_id,
            context_name,
        });
        Ok(Message {
            version: Version::V3,
            community: self.user,
            pdu,
            v3: Some(v3),
        })
    }
}

/// The PDU element's whole encoding inside a v1/v2c-framed message `bytes`
/// (SEQUENCE { version, community, PDU }), as the agent writes its answer; None if
/// `bytes` is not one.
pub fn pdu_of(bytes: &[u8]) -> Option<&[u8]> {
    let mut top = Reader::new(bytes);
    let seq = top.expect(ber::SEQUENCE).ok()?;
    let mut r = seq.reader();
    r.expect(ber::INTEGER).ok()?;
    r.expect(ber::OCTET_STRING).ok()?;
    let pdu = r.read().ok()?;
    bytes.get(pdu.start()..pdu.offset + pdu.value.len())
}

/// Appends the ScopedPDU of `pdu` (a PDU's whole encoding) with its context to `out`.
pub fn scoped_pdu(context_engine_id: &[u8], context_name: &[u8], pdu: &[u8], out: &mut Vec<u8>) {
    let mut w = Writer::new(out);
    let s = w.begin(ber::SEQUENCE);
    w.bytes(ber::OCTET_STRING, context_engine_id);
    w.bytes(ber::OCTET_STRING, context_name);
    w.raw(pdu);
    w.end(s);
}

/// What a v3 message is sent with.
#[derive(Clone, Copy, Debug)]
pub struct Seal<'a> {
    /// msgID.
    pub msg_id: i32,
    /// msgMaxSize: the largest message the sender takes back.
    pub max_size: i32,
    /// Ask for a Report (requests and informs).
    pub reportable: bool,
    /// The authoritative engine: its ID, boots and time.
    pub engine_id: &'a [u8],
    /// Its boots.
    pub boots: u32,
    /// Its time.
    pub time: u32,
    /// msgUserName.
    pub user: &'a [u8],
    /// The level; the keys must have what it needs.
    pub level: Level,
    /// contextEngineID (usually the authoritative engine's ID).
    pub context_engine_id: &'a [u8],
    /// contextName.
    pub context_name: &'a [u8],
    /// The salt for privacy (unique per message for the keys: a counter).
    pub salt: [u8; 8],
}

/// Appends the v3 message of `pdu` with `seal`, authenticated and encrypted with `keys`
/// as its level says (`keys` may be None at noAuthNoPriv). `scratch` holds the scoped
/// PDU while it is encrypted.
pub fn seal(
    pdu: &Pdu<'_>,
    seal: &Seal<'_>,
    keys: Option<&Keys>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    scratch.clear();
    {
        let mut w = Writer::new(scratch);
        let s = w.begin(ber::SEQUENCE);
        w.bytes(ber::OCTET_STRING, seal.context_engine_id);
        w.bytes(ber::OCTET_STRING, seal.context_name);
        w.pdu(pdu);
        w.end(s);
    }
    seal_in_place(seal, keys, scratch, out);
}

/// Appends the v3 message whose scoped PDU is `scoped` (its bytes as they are, sealed as
/// `seal` says): what `seal` does once the scoped PDU is written (and what a fuzzer uses
/// to put any bytes behind a right MAC). `scoped` is encrypted in place.
pub fn seal_scoped(seal: &Seal<'_>, keys: Option<&Keys>, scoped: &mut Vec<u8>, out: &mut Vec<u8>) {
    seal_in_place(seal, keys, scoped, out);
}

fn seal_in_place(seal: &Seal<'_>, keys: Option<&Keys>, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    let start = out.len();
    let (auth, privacy) = match (seal.level, keys) {
        (Level::AuthPriv, Some(k)) if k.privacy().is_some() => (Some(k), true),
        (Level::AuthNoPriv | Level::AuthPriv, Some(k)) => (Some(k), false),
        _ => (None, false),
    };
    let level = match (auth, privacy) {
        (Some(_), true) => Level::AuthPriv,
        (Some(_), false) => Level::AuthNoPriv,
        _ => Level::NoAuthNoPriv,
    };
    if let (Some(k), true) = (auth, privacy) {
        let n = k.padded_len(scratch.len());
        scratch.resize(n, 0);
        k.encrypt(seal.boots, seal.time, seal.salt, scratch);
    }
    let mac_len = auth.map_or(0, |k| k.auth().mac_len());
    let mut w = Writer::new(out);
    let top = w.begin(ber::SEQUENCE);
    w.integer(ber::INTEGER, 3);
    let g = w.begin(ber::SEQUENCE);
    w.integer(ber::INTEGER, seal.msg_id as i64);
    w.integer(ber::INTEGER, seal.max_size as i64);
    let reportable = if seal.reportable { FLAG_REPORTABLE } else { 0 };
    w.bytes(ber::OCTET_STRING, &[level.flags() | reportable]);
    w.integer(ber::INTEGER, USM);
    w.end(g);
    let params = w.begin(ber::OCTET_STRING);
    let u = w.begin(ber::SEQUENCE);
    w.bytes(ber::OCTET_STRING, seal.engine_id);
    w.integer(ber::INTEGER, seal.boots as i64);
    w.integer(ber::INTEGER, seal.time as i64);
    w.bytes(ber::OCTET_STRING, seal.user);
    w.bytes(ber::OCTET_STRING, &[0u8; 48][..mac_len]);
    w.bytes(
        ber::OCTET_STRING,
        if privacy { &seal.salt[..] } else { &[] },
    );
    w.end(u);
    w.end(params);
    if privacy {
        w.bytes(ber::OCTET_STRING, scratch);
    } else {
        w.raw(scratch);
    }
    w.end(top);
    if let Some(k) = auth {
        // Where the MAC goes, read back from what was written (lengths may have moved it).
        let at = Header::parse(&out[start..])
            .map(|h| h.auth_at)
            .expect("just written");
        let mac = k.mac(&out[start..], at);
        out[start + at..start + at + mac_len].copy_from_slice(&mac[..mac_len]);
    }
}

/// A discovery probe (RFC 3414 §4): a reportable get-request with no engine, no user,
/// unauthenticated; what an agent answers with a Report naming its engine. Written into
/// `out` (cleared first).
pub fn discovery_probe(msg_id: i32, max_size: i32, out: &mut Vec<u8>) {
    let pdu = crate::wire::Message::pdu(
        crate::wire::Version::V3,
        b"",
        crate::wire::PduType::GET_REQUEST,
        msg_id,
        &[],
    )
    .pdu;
    let s = Seal {
        msg_id,
        max_size,
        reportable: true,
        engine_id: b"",
        boots: 0,
        time: 0,
        user: b"",
        level: Level::NoAuthNoPriv,
        context_engine_id: b"",
        context_name: b"",
        salt: [0; 8],
    };
    let mut scratch = Vec::new();
    out.clear();
    seal(&pdu, &s, None, &mut scratch, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PduType;
    use crate::wire::oid::oid;
    use crate::wire::usm::{AuthProtocol, PrivProtocol, password_to_key};
    use crate::wire::value::{Value, VarBind};

    /// Hex written with spaces between its groups.
    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        crate::wire::hex::decode(&s).expect("hex")
    }

    #[test]
    fn a_plain_v3_request_reads_as_rusticatas_asset_says() {
        // rusticata snmp-parser assets/snmpv3_req.bin: a discovery get-request,
        // noAuthNoPriv, reportable, empty engine ID and user.
        let bytes = hex(
            "30 3e 02 01 03 30 11 02 04 20 dd 06 a7 02 03 00 ff e3 04 01 04 02 01 03 04 10 30 0e 04 00 02 01 00 02 01 00 04 00 04 00 04 00 30 14 04 00 04 00 a0 0e 02 04 3e d9 5d 2d 02 01 00 02 01 00 30 00",
        );
        let h = Header::parse(&bytes).unwrap();
        assert_eq!(h.msg_id, 0x20dd06a7);
        assert_eq!(h.max_size, 65507);
        assert_eq!(h.flags, FLAG_REPORTABLE);
        assert_eq!(h.security_model, USM);
        assert_eq!(
            (h.engine_id, h.boots, h.time, h.user),
            (&[][..], 0, 0, &[][..])
        );
        assert_eq!(h.level(), Some(Level::NoAuthNoPriv));
        let Data::Plain(plain) = h.data else {
            panic!("in clear")
        };
        let arena = Bump::new();
        let m = h.open(Level::NoAuthNoPriv, plain, &arena).unwrap();
        assert_eq!(m.version, Version::V3);
        assert_eq!(m.pdu_type(), PduType::GET_REQUEST);
        assert!(m.varbinds().is_empty());
    }

    fn trap<'a>(vbs: &'a [VarBind<'a>]) -> Pdu<'a> {
        Message::pdu(Version::V3, b"", PduType::SNMPV2_TRAP, 77, vbs).pdu
    }

    #[test]
    fn what_is_sealed_opens_at_every_level_and_its_mac_is_where_the_header_says() {
        let name = oid("1.3.6.1.6.3.1.1.4.1.0");
        let lb = oid("1.3.6.1.4.1.318.0.7");
        let vbs = [VarBind {
            name: name.as_oid(),
            value: Value::ObjectId(lb.as_oid()),
        }];
        let auth = AuthProtocol::Sha1;
        let ku = password_to_key(auth, b"authpass123");
        let pku = password_to_key(auth, b"privpass123");
        let engine = hex("80001f8804 7570732d61");
        for (level, privacy) in [
            (Level::NoAuthNoPriv, None),
            (Level::AuthNoPriv, None),
            (Level::AuthPriv, Some(PrivProtocol::Des)),
            (Level::AuthPriv, Some(PrivProtocol::Aes128)),
        ] {
            let keys = Keys::localized(auth, &ku, privacy.map(|p| (p, &pku)), &engine);
            let s = Seal {
                msg_id: 5,
                max_size: 1472,
                reportable: false,
                engine_id: &engine,
                boots: 2,
                time: 300,
                user: b"upsv3user",
                level,
                context_engine_id: &engine,
                context_name: b"",
                salt: [0, 0, 0, 2, 0, 0, 0, 9],
            };
            let (mut scratch, mut out) = (Vec::new(), Vec::new());
            seal(&trap(&vbs), &s, Some(&keys), &mut scratch, &mut out);
            let h = Header::parse(&out).unwrap();
            assert_eq!(h.level(), Some(level));
            assert_eq!((h.engine_id, h.boots, h.time), (&engine[..], 2, 300));
            assert_eq!(h.user, b"upsv3user");
            if level > Level::NoAuthNoPriv {
                assert!(
                    keys.verify(&out, h.auth_at, h.auth_params.len()),
                    "{level:?}"
                );
            }
            let arena = Bump::new();
            let plain: &[u8] = match h.data {
                Data::Plain(p) => p,
                Data::Encrypted(e) => {
                    let buf = arena.alloc_slice_copy(e);
                    keys.decrypt(h.boots, h.time, h.priv_params, buf).unwrap();
                    buf
                }
            };
            let m = h.open(level, plain, &arena).unwrap();
            assert_eq!(m.community, b"upsv3user");
            assert_eq!(m.varbinds(), &vbs[..], "{level:?} {privacy:?}");
            assert_eq!(m.v3.unwrap().level, level);
        }
    }

    #[test]
    fn a_cut_or_wrongly_flagged_header_is_an_error_not_a_panic() {
        let auth = AuthProtocol::Md5;
        let ku = password_to_key(auth, b"authpass123");
        let keys = Keys::localized(auth, &ku, None, b"e");
        let s = Seal {
            msg_id: 1,
            max_size: 1472,
            reportable: true,
            engine_id: b"e",
            boots: 1,
            time: 1,
            user: b"u",
            level: Level::AuthNoPriv,
            context_engine_id: b"e",
            context_name: b"",
            salt: [0; 8],
        };
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        seal(&trap(&[]), &s, Some(&keys), &mut scratch, &mut out);
        for n in 0..out.len() {
            assert!(Header::parse(&out[..n]).is_err(), "cut at {n}");
        }
        assert_eq!(Level::of_flags(FLAG_PRIV), None);
        assert_eq!(Level::parse("AUTHPRIV"), Some(Level::AuthPriv));
    }
}
