//! SNMP v1 and v2c messages (RFC 1157 §4, RFC 3416 §3), decoded as borrowed views.
//!
//! ```text
//! Message ::= SEQUENCE { version INTEGER { version-1(0), version-2c(1) },
//!                        community OCTET STRING, data PDUs }
//! PDU ::= SEQUENCE { request-id INTEGER, error-status INTEGER, error-index INTEGER,
//!                    variable-bindings VarBindList }
//! Trap-PDU ::= [4] IMPLICIT SEQUENCE { enterprise OBJECT IDENTIFIER,
//!     agent-addr NetworkAddress, generic-trap INTEGER, specific-trap INTEGER,
//!     time-stamp TimeTicks, variable-bindings VarBindList }
//! ```
//!
//! The community and every value borrow from the packet; the varbind list is a slice in
//! a `bumpalo` arena that the caller resets per batch, so decoding allocates nothing
//! from the global allocator. SNMPv3 messages are recognised (`UnsupportedV3`), never
//! parsed as something else. A v1 trap maps to its SNMPv2 notification OID as RFC 3584
//! §3.1 says, so one rule table serves both versions.

use core::fmt;

use bumpalo::Bump;

use super::ber::{self, Reader, Tag};
use super::error::{Error, ErrorKind, Result};
use super::oid::{Oid, arc_word};
use super::shape;
use super::swar::{joined_words, window};
use super::value::{Value, VarBind};

/// SNMP version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// SNMPv1 (version field 0).
    V1,
    /// SNMPv2c (version field 1).
    V2c,
    /// SNMPv3 (version field 3), its USM header in `Message::v3`.
    V3,
}

impl Version {
    /// The version field's value.
    pub fn number(self) -> i64 {
        match self {
            Version::V1 => 0,
            Version::V2c => 1,
            Version::V3 => 3,
        }
    }

    /// `v1` or `v2c`.
    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2c => "v2c",
            Version::V3 => "v3",
        }
    }
}

/// The PDU type: the context tag number of the PDU. Open, so an unknown type still prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PduType(pub u32);

impl PduType {
    /// GetRequest-PDU.
    pub const GET_REQUEST: PduType = PduType(0);
    /// GetNextRequest-PDU.
    pub const GET_NEXT_REQUEST: PduType = PduType(1);
    /// Response-PDU (GetResponse in v1).
    pub const RESPONSE: PduType = PduType(2);
    /// SetRequest-PDU.
    pub const SET_REQUEST: PduType = PduType(3);
    /// v1 Trap-PDU.
    pub const TRAP_V1: PduType = PduType(4);
    /// GetBulkRequest-PDU.
    pub const GET_BULK_REQUEST: PduType = PduType(5);
    /// InformRequest-PDU.
    pub const INFORM_REQUEST: PduType = PduType(6);
    /// SNMPv2-Trap-PDU.
    pub const SNMPV2_TRAP: PduType = PduType(7);
    /// Report-PDU.
    pub const REPORT: PduType = PduType(8);

    /// The name Wireshark gives the PDU.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "get-request",
            1 => "get-next-request",
            2 => "get-response",
            3 => "set-request",
            4 => "trap",
            5 => "getBulkRequest",
            6 => "informRequest",
            7 => "snmpV2-trap",
            8 => "report",
            _ => "unknown",
        }
    }

    /// True for the PDUs that carry a notification (v1 trap, v2 trap, inform).
    pub fn is_notification(self) -> bool {
        matches!(self.0, 4 | 6 | 7)
    }

    /// The PDU's tag.
    pub fn tag(self) -> Tag {
        Tag {
            form: 0xa0,
            number: self.0,
        }
    }
}

impl fmt::Display for PduType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A v1 Trap-PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapV1<'a> {
    /// The `enterprise` (sysObjectID or the MIB's enterprise) of the trap.
    pub enterprise: Oid<'a>,
    /// The agent's address as it wrote it (a proxy may differ from the IP source).
    pub agent_addr: [u8; 4],
    /// generic-trap: 0 coldStart … 5 egpNeighborLoss, 6 enterpriseSpecific.
    pub generic_trap: i64,
    /// specific-trap, meaningful when generic-trap is 6.
    pub specific_trap: i64,
    /// time-stamp: the agent's sysUpTime in hundredths of a second.
    pub time_stamp: u32,
    /// The variable bindings.
    pub varbinds: &'a [VarBind<'a>],
}

/// Every PDU but the v1 trap: requests, responses, v2 traps, informs, reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPdu<'a> {
    /// Which PDU.
    pub kind: PduType,
    /// request-id.
    pub request_id: i32,
    /// error-status (non-repeaters in a GetBulkRequest).
    pub error_status: i32,
    /// error-index (max-repetitions in a GetBulkRequest).
    pub error_index: i32,
    /// The variable bindings.
    pub varbinds: &'a [VarBind<'a>],
}

/// The PDU of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pdu<'a> {
    /// A v1 Trap-PDU.
    TrapV1(TrapV1<'a>),
    /// Any other PDU.
    Request(RequestPdu<'a>),
}

/// A decoded SNMP message, borrowing from the packet and the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// v1, v2c or v3.
    pub version: Version,
    /// The community string, as sent; for v3, the USM user name.
    pub community: &'a [u8],
    /// The PDU (for v3, the scoped PDU's, decrypted).
    pub pdu: Pdu<'a>,
    /// For v3, what its header and scoped PDU say (authenticated, if its level says so).
    pub v3: Option<&'a super::v3::Scoped<'a>>,
}

/// sysUpTime.0 (RFC 3418), the first varbind of a v2 notification.
pub const SYS_UPTIME_0: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 3, 0];
/// snmpTrapOID.0 (RFC 3418), the second varbind of a v2 notification.
pub const SNMP_TRAP_OID_0: &[u8] = &[0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0];
/// snmpTraps (1.3.6.1.6.3.1.1.5): the generic v1 traps become snmpTraps.(generic+1).
pub const SNMP_TRAPS: &[u8] = &[0x2b, 6, 1, 6, 3, 1, 1, 5];

/// The longest notification OID built from a v1 trap, in bytes.
const NOTIFICATION_OID_MAX: usize = 160;

/// Room for a notification OID built from a v1 trap: enterprise, 0, specific-trap (and
/// a word past the longest, which the building writes whole).
pub struct NotificationOidBuf {
    buf: [u8; NOTIFICATION_OID_MAX + 8],
    len: usize,
}

impl NotificationOidBuf {
    /// The OID built last.
    pub(crate) fn oid(&self) -> Oid<'_> {
        // Built from a validated OID and whole arcs: valid by construction.
        Oid::trusted(&self.buf[..self.len])
    }
}

impl fmt::Debug for NotificationOidBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NotificationOidBuf({:02x?})", &self.buf[..self.len])
    }
}

impl Default for NotificationOidBuf {
    fn default() -> Self {
        NotificationOidBuf {
            buf: [0; NOTIFICATION_OID_MAX + 8],
            len: 0,
        }
    }
}

impl<'a> Message<'a> {
    /// Decodes one message from a whole UDP payload; bytes after it are an error.
    #[inline]
    pub fn parse(buf: &'a [u8], arena: &'a Bump) -> Result<Message<'a>> {
        match shape::parse(buf, arena) {
            Some(m) => Ok(m),
            None => Message::parse_general(buf, arena),
        }
    }

    /// The general reader: every encoding BER allows here, and the exact error.
    #[inline(never)]
    pub(crate) fn parse_general(buf: &'a [u8], arena: &'a Bump) -> Result<Message<'a>> {
        let mut top = Reader::new(buf);
        let seq = top.expect(ber::SEQUENCE)?;
        let mut r = seq.reader();
        let version_tlv = r.expect(ber::INTEGER)?;
        let version = match version_tlv.integer()? {
            0 => Version::V1,
            1 => Version::V2c,
            3 => return Err(Error::new(ErrorKind::UnsupportedV3, version_tlv.offset)),
            _ => return Err(Error::new(ErrorKind::BadVersion, version_tlv.offset)),
        };
        let community = r.octets()?;
        let pdu = parse_pdu(r.read()?, arena)?;
        r.finish()?;
        top.finish()?;
        Ok(Message {
            version,
            community,
            pdu,
            v3: None,
        })
    }

    /// The PDU type.
    pub fn pdu_type(&self) -> PduType {
        match &self.pdu {
            Pdu::TrapV1(_) => PduType::TRAP_V1,
            Pdu::Request(r) => r.kind,
        }
    }

    /// The variable bindings.
    pub fn varbinds(&self) -> &'a [VarBind<'a>] {
        match &self.pdu {
            Pdu::TrapV1(t) => t.varbinds,
            Pdu::Request(r) => r.varbinds,
        }
    }

    /// A v1 enterprise-specific trap (generic-trap 6), as an agent sends it.
    pub fn trap_v1(
        community: &'a [u8],
        enterprise: Oid<'a>,
        agent_addr: [u8; 4],
        specific_trap: i64,
        time_stamp: u32,
        varbinds: &'a [VarBind<'a>],
    ) -> Message<'a> {
        Message {
            version: Version::V1,
            community,
            pdu: Pdu::TrapV1(TrapV1 {
                enterprise,
                agent_addr,
                generic_trap: 6,
                specific_trap,
                time_stamp,
                varbinds,
            }),
            v3: None,
        }
    }

    /// A message of any other PDU (request, response, v2 trap, inform), with
    /// error-status and error-index zero.
    pub fn pdu(
        version: Version,
        community: &'a [u8],
        kind: PduType,
        request_id: i32,
        varbinds: &'a [VarBind<'a>],
    ) -> Message<'a> {
        Message {
            version,
            community,
            pdu: Pdu::Request(RequestPdu {
                kind,
                request_id,
                error_status: 0,
                error_index: 0,
                varbinds,
            }),
            v3: None,
        }
    }

    /// The same message with error-status and error-index set (a v1 trap is unchanged).
    pub fn with_error(mut self, status: i32, index: i32) -> Message<'a> {
        if let Pdu::Request(r) = &mut self.pdu {
            r.error_status = status;
            r.error_index = index;
        }
        self
    }

    /// The SNMPv2 notification OID of a trap or inform (RFC 3584 §3.1 for v1 traps):
    /// snmpTrapOID.0's value in a v2 notification; for a v1 trap, snmpTraps.(generic+1)
    /// or enterprise.0.specific. None for other PDUs and for notifications without one.
    pub fn notification_oid<'b>(&self, scratch: &'b mut NotificationOidBuf) -> Option<Oid<'b>>
    where
        'a: 'b,
    {
        match &self.pdu {
            Pdu::TrapV1(t) => t.notification_oid(scratch),
            Pdu::Request(r) => r.notification_oid(),
        }
    }
}

impl<'a> RequestPdu<'a> {
    /// The value of snmpTrapOID.0 in a trap or inform; None for other PDUs.
    #[inline]
    pub fn notification_oid(&self) -> Option<Oid<'a>> {
        if !self.kind.is_notification() {
            return None;
        }
        let trap_oid = |vb: &VarBind<'a>| match vb.value {
            Value::ObjectId(o) if is_snmp_trap_oid_0(vb.name.as_bytes()) => Some(o),
            _ => None,
        };
        // RFC 3416 puts it second, after sysUpTime.0: look there first.
        match self.varbinds.get(1).and_then(trap_oid) {
            Some(o) => Some(o),
            None => self.varbinds.iter().find_map(trap_oid),
        }
    }
}

impl<'a> TrapV1<'a> {
    /// The SNMPv2 notification OID of this trap (RFC 3584 §3.1), built in `scratch`.
    pub fn notification_oid<'b>(&self, scratch: &'b mut NotificationOidBuf) -> Option<Oid<'b>> {
        Some(self.notification_parts()?.write(scratch))
    }

    /// The notification OID of this trap in its two pieces, not yet joined; None when
    /// the trap has none (a generic-trap outside 0 to 6, a negative specific-trap) or it would
    /// be longer than `NOTIFICATION_OID_MAX`.
    #[inline]
    pub(crate) fn notification_parts(&self) -> Option<NotificationParts<'a>> {
        let (head, tail, tail_len) = match self.generic_trap {
            // snmpTraps.(generic-trap + 1)
            0..=5 => (SNMP_TRAPS, self.generic_trap as u64 + 1, 1),
            // enterprise.0.specific-trap
            6 => {
                let (arc, k) = arc_word(u32::try_from(self.specific_trap).ok()?);
                (self.enterprise.as_bytes(), arc << 8, 1 + k)
            }
            _ => return None,
        };
        (head.len() + tail_len <= NOTIFICATION_OID_MAX).then_some(NotificationParts {
            head,
            tail,
            tail_len,
        })
    }
}

/// A v1 trap's notification OID as the OID it extends (snmpTraps or the enterprise) and
/// the encoded arcs it adds, the low `tail_len` bytes of `tail`. A lookup reads its
/// words without joining the bytes (`swar::joined_words`); it is written out only when
/// its bytes are needed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotificationParts<'a> {
    head: &'a [u8],
    tail: u64,
    tail_len: usize,
}

impl NotificationParts<'_> {
    /// Its length in bytes.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.tail_len
    }

    /// Its first and last eight bytes, as `swar::window` reads them from the joined
    /// OID, computed in registers.
    #[inline(always)]
    pub(crate) fn words(&self) -> (u64, u64) {
        joined_words(self.head, self.tail, self.tail_len)
    }

    /// Writes it in `scratch`.
    #[inline]
    pub(crate) fn write<'b>(&self, scratch: &'b mut NotificationOidBuf) -> Oid<'b> {
        let n = self.head.len();
        copy_words(&mut scratch.buf, self.head);
        scratch.buf[n..n + 8].copy_from_slice(&self.tail.to_le_bytes());
        scratch.len = self.len();
        scratch.oid()
    }
}

/// Copies `src` to the start of `dst` in whole eight-byte words rather than a call into
/// memcpy (an enterprise OID is 7 to 16 bytes); `dst` must have room for the last word
/// in full, and the bytes past `src.len()` it writes are for the caller to overwrite.
#[inline(always)]
fn copy_words(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    let mut at = 0;
    while at < n {
        dst[at..at + 8].copy_from_slice(&window(src, at).to_le_bytes());
        at += 8;
    }
}

#[inline]
fn is_snmp_trap_oid_0(name: &[u8]) -> bool {
    // A fixed-size compare, not a call into memcmp.
    <&[u8; 10]>::try_from(name).is_ok_and(|n| n == SNMP_TRAP_OID_0)
}

/// One PDU (its whole TLV): a v1 trap or any other, with its bindings in `arena`.
#[inline]
pub(crate) fn parse_pdu<'a>(pdu_tlv: ber::Tlv<'a>, arena: &'a Bump) -> Result<Pdu<'a>> {
    if !pdu_tlv.tag.is_context_constructed() {
        return Err(Error::new(ErrorKind::WrongTag, pdu_tlv.start()));
    }
    let kind = PduType(pdu_tlv.tag.number);
    let mut p = pdu_tlv.reader();
    let pdu = match kind {
        PduType::TRAP_V1 => {
            let ent = p.expect(ber::OBJECT_IDENTIFIER)?;
            let enterprise = Oid::parse(ent.value, ent.offset)?;
            let addr = p.expect(ber::IP_ADDRESS)?;
            let agent_addr = <[u8; 4]>::try_from(addr.value)
                .map_err(|_| Error::new(ErrorKind::BadIpAddress, addr.offset))?;
            let generic_trap = p.integer()?;
            let specific_trap = p.integer()?;
            let time_stamp = p.expect(ber::TIME_TICKS)?.unsigned32()?;
            let varbinds = varbind_list(&mut p, arena)?;
            Pdu::TrapV1(TrapV1 {
                enterprise,
                agent_addr,
                generic_trap,
                specific_trap,
                time_stamp,
                varbinds,
            })
        }
        PduType(0..=8) => {
            let request_id = int32(&mut p)?;
            let error_status = int32(&mut p)?;
            let error_index = int32(&mut p)?;
            let varbinds = varbind_list(&mut p, arena)?;
            Pdu::Request(RequestPdu {
                kind,
                request_id,
                error_status,
                error_index,
                varbinds,
            })
        }
        _ => return Err(Error::new(ErrorKind::UnknownPdu, pdu_tlv.start())),
    };
    p.finish()?;
    Ok(pdu)
}

#[inline]
fn int32(r: &mut Reader<'_>) -> Result<i32> {
    let tlv = r.expect(ber::INTEGER)?;
    ber::int32(tlv.integer()?).ok_or_else(|| Error::new(ErrorKind::IntegerTooLarge, tlv.offset))
}

#[inline]
fn varbind_list<'a>(r: &mut Reader<'a>, arena: &'a Bump) -> Result<&'a [VarBind<'a>]> {
    let list = r.expect(ber::SEQUENCE)?;
    // A varbind takes at least 7 bytes (30 05 06 01 xx 05 00): this capacity never
    // grows, so the arena holds one slice per message and nothing is copied.
    let mut out = bumpalo::collections::Vec::with_capacity_in(list.value.len() / 7, arena);
    let mut items = list.reader();
    while !items.is_empty() {
        out.push(VarBind::parse(items.read()?)?);
    }
    Ok(out.into_bump_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::oid::oid;
    use crate::wire::value::Value;

    fn hex(s: &str) -> Vec<u8> {
        crate::wire::hex::decode(s).expect("hex")
    }

    /// rusticata snmp-parser assets/snmpv1_trap_coldstart.bin (also PROTOS c06 frame 1).
    const COLDSTART: &str = "303802010004067075626c6963a42b06092b060104010401021540047f000001020100020100430100300f300d06082b06010201020100020121";
    /// gosnmp marshal_test.go trap1(): a v2c snmpV2-trap.
    const GOSNMP_TRAP1: &str = "30818002010104067075626c6963a7730204725cef420201000201003065301006082b060102010103004304011aefa53014060a2b06010603010104010006062b0601020101301606082b06010201010100040a726564206c6170746f70300d06082b06010201010700020105301406072b06010201010206092b0601040102030405";

    #[test]
    fn v1_coldstart_trap() {
        let bytes = hex(COLDSTART);
        let arena = Bump::new();
        let m = Message::parse(&bytes, &arena).unwrap();
        assert_eq!(m.version, Version::V1);
        assert_eq!(m.community, b"public");
        let Pdu::TrapV1(t) = m.pdu else {
            panic!("not a trap")
        };
        assert_eq!(t.enterprise.to_string(), "1.3.6.1.4.1.4.1.2.21");
        assert_eq!(t.agent_addr, [127, 0, 0, 1]);
        assert_eq!((t.generic_trap, t.specific_trap, t.time_stamp), (0, 0, 0));
        assert_eq!(t.varbinds.len(), 1);
        assert_eq!(t.varbinds[0].name.to_string(), "1.3.6.1.2.1.2.1.0");
        assert_eq!(t.varbinds[0].value, Value::Integer(33));
        let mut buf = NotificationOidBuf::default();
        assert_eq!(
            m.notification_oid(&mut buf).unwrap().to_string(),
            "1.3.6.1.6.3.1.1.5.1",
            "coldStart is snmpTraps.1"
        );
    }

    #[test]
    fn v2c_trap_notification_oid() {
        let bytes = hex(GOSNMP_TRAP1);
        let arena = Bump::new();
        let m = Message::parse(&bytes, &arena).unwrap();
        assert_eq!(m.version, Version::V2c);
        assert_eq!(m.pdu_type(), PduType::SNMPV2_TRAP);
        let Pdu::Request(r) = m.pdu else {
            panic!("not a v2 PDU")
        };
        assert_eq!(r.request_id, 1918693186);
        assert_eq!(r.varbinds.len(), 5);
        assert_eq!(r.varbinds[0].value, Value::TimeTicks(18542501));
        assert_eq!(r.varbinds[2].value, Value::OctetString(b"red laptop"));
        let mut buf = NotificationOidBuf::default();
        assert_eq!(
            m.notification_oid(&mut buf).unwrap().to_string(),
            "1.3.6.1.2.1.1"
        );
        // snmpTrapOID.0 is looked for second, where RFC 3416 puts it, then anywhere.
        let mut moved = r.varbinds.to_vec();
        moved.swap(1, 4);
        let moved = RequestPdu {
            varbinds: &moved,
            ..r
        };
        assert_eq!(
            moved.notification_oid().map(|o| o.to_string()).as_deref(),
            Some("1.3.6.1.2.1.1")
        );
        let none = RequestPdu {
            varbinds: &r.varbinds[2..],
            ..r
        };
        assert_eq!(none.notification_oid(), None);
        // The same bytes with the length cut short are a typed error, never a panic.
        for cut in 0..bytes.len() {
            assert!(Message::parse(&bytes[..cut], &arena).is_err());
        }
    }

    #[test]
    fn enterprise_specific_maps_to_enterprise_0_specific() {
        let ent = oid("1.3.6.1.4.1.318");
        let t = TrapV1 {
            enterprise: ent.as_oid(),
            agent_addr: [0; 4],
            generic_trap: 6,
            specific_trap: 7,
            time_stamp: 0,
            varbinds: &[],
        };
        let mut buf = NotificationOidBuf::default();
        assert_eq!(
            t.notification_oid(&mut buf).unwrap().to_string(),
            "1.3.6.1.4.1.318.0.7"
        );
        let big = TrapV1 {
            specific_trap: 300_000,
            ..t
        };
        assert_eq!(
            big.notification_oid(&mut buf).unwrap().to_string(),
            "1.3.6.1.4.1.318.0.300000"
        );
        let bad = TrapV1 {
            generic_trap: 7,
            ..t
        };
        assert!(bad.notification_oid(&mut buf).is_none());
    }

    #[test]
    fn v3_is_recognised_not_parsed() {
        // rusticata assets/snmpv3_req.bin begins 30 4b 02 01 03.
        let bytes = hex("304b020103");
        let arena = Bump::new();
        assert_eq!(
            Message::parse(&bytes, &arena).unwrap_err().kind,
            ErrorKind::Truncated
        );
        let bytes = hex("3003020103");
        assert_eq!(
            Message::parse(&bytes, &arena).unwrap_err(),
            Error::new(ErrorKind::UnsupportedV3, 4)
        );
    }

    #[test]
    fn wrong_shapes_are_typed_errors() {
        let arena = Bump::new();
        let parse = |s: &str| Message::parse(Box::leak(hex(s).into_boxed_slice()), &arena);
        // Not a SEQUENCE.
        assert_eq!(parse("0400").unwrap_err().kind, ErrorKind::WrongTag);
        // Version 2 does not exist.
        assert_eq!(parse("3003020102").unwrap_err().kind, ErrorKind::BadVersion);
        // PROTOS c06 frame 8: PDU tag [18].
        assert_eq!(
            parse("300e02010004067075626c6963bf1200").unwrap_err().kind,
            ErrorKind::UnknownPdu
        );
        // A universal SEQUENCE where the PDU should be.
        assert_eq!(
            parse("300d02010004067075626c69633000").unwrap_err().kind,
            ErrorKind::WrongTag
        );
        // Trailing byte after the message.
        let mut ok = hex(COLDSTART);
        ok.push(0);
        assert_eq!(
            Message::parse(Box::leak(ok.into_boxed_slice()), &arena).unwrap_err(),
            Error::new(ErrorKind::TrailingData, 58)
        );
    }
}
