//! The BER encoder for SNMP messages: the inverse of `Message::parse`.
//!
//! The gateway builds v1 traps (the form a recorder expects), v2c traps and informs,
//! responses (its virtual UPS agent) and get-requests (its UPS poller) from the same
//! `Message` type the decoder returns, so `Message::parse(encode(m)) == m`. Encoding uses
//! minimal lengths and minimal integers (X.690 DER-like), which every decoder reads.

use super::ber::{self, Tag};
use super::message::{Message, Pdu};
use super::value::{Value, VarBind};

/// Appends the encoding of `msg` to `out`.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) {
    let mut w = Writer { out };
    let top = w.begin(ber::SEQUENCE);
    w.integer(ber::INTEGER, msg.version.number());
    w.bytes(ber::OCTET_STRING, msg.community);
    w.pdu(&msg.pdu);
    w.end(top);
}

/// The length of `msg` encoded, without encoding it (`encode` writes exactly this many
/// bytes; a property test holds the two together).
pub fn encoded_len(msg: &Message<'_>) -> usize {
    let varbinds = msg.varbinds().iter().map(varbind_len).sum();
    message_len(msg, varbinds)
}

/// The length of `msg` encoded with a variable-binding list whose content (the bindings'
/// encodings, as `varbind_len` counts them) is `varbinds` bytes, whatever `msg`'s own
/// bindings are: what an agent checks before it adds one more binding to an answer.
pub fn message_len(msg: &Message<'_>, varbinds: usize) -> usize {
    let list = tlv_len(1, varbinds);
    let (tag, content) = match &msg.pdu {
        Pdu::TrapV1(t) => (
            super::message::PduType::TRAP_V1.tag(),
            tlv_len(1, t.enterprise.as_bytes().len())
                + tlv_len(1, 4)
                + tlv_len(1, integer_len(t.generic_trap))
                + tlv_len(1, integer_len(t.specific_trap))
                + tlv_len(1, unsigned_len(t.time_stamp as u64))
                + list,
        ),
        Pdu::Request(r) => (
            r.kind.tag(),
            tlv_len(1, integer_len(r.request_id as i64))
                + tlv_len(1, integer_len(r.error_status as i64))
                + tlv_len(1, integer_len(r.error_index as i64))
                + list,
        ),
    };
    let pdu = tlv_len(tag_len(tag), content);
    let top = tlv_len(1, integer_len(msg.version.number())) + tlv_len(1, msg.community.len()) + pdu;
    tlv_len(1, top)
}

/// The length of one variable binding encoded (its SEQUENCE included).
pub fn varbind_len(vb: &VarBind<'_>) -> usize {
    tlv_len(
        1,
        tlv_len(1, vb.name.as_bytes().len()) + value_len(&vb.value),
    )
}

fn value_len(v: &Value<'_>) -> usize {
    match *v {
        Value::Integer(i) => tlv_len(1, integer_len(i)),
        Value::OctetString(s) | Value::Opaque(s) => tlv_len(1, s.len()),
        Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {
            tlv_len(1, 0)
        }
        Value::ObjectId(o) => tlv_len(1, o.as_bytes().len()),
        Value::IpAddress(_) => tlv_len(1, 4),
        Value::Counter32(c) | Value::Gauge32(c) | Value::TimeTicks(c) => {
            tlv_len(1, unsigned_len(c as u64))
        }
        Value::Counter64(c) => tlv_len(1, unsigned_len(c)),
        Value::Other(tag, s) => tlv_len(tag_len(tag), s.len()),
    }
}

/// An element's length: its tag, its length octets, its content.
fn tlv_len(tag: usize, content: usize) -> usize {
    let length = match content {
        0..0x80 => 1,
        0x80..0x100 => 2,
        0x100..0x1_0000 => 3,
        0x1_0000..0x100_0000 => 4,
        _ => 5,
    };
    tag + length + content
}

fn tag_len(tag: Tag) -> usize {
    match tag.to_byte() {
        Some(_) => 1,
        None => 1 + super::oid::arc_word(tag.number).1,
    }
}

/// Octets of a minimal two's-complement integer (as `Writer::integer` writes it).
fn integer_len(v: i64) -> usize {
    let significant = if v < 0 {
        64 - (!v).leading_zeros()
    } else {
        64 - v.leading_zeros()
    };
    (significant as usize + 1).div_ceil(8).max(1)
}

/// Octets of an unsigned integer with a leading zero where its top bit is set.
fn unsigned_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize + 1).div_ceil(8).max(1)
}

/// Encodes `msg` into a new buffer.
pub fn to_vec(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode(msg, &mut out);
    out
}

/// A BER writer appending to a buffer (the v3 layer writes its header with it).
pub(crate) struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Writer<'o> {
    /// A writer appending to `out`.
    pub(crate) fn new(out: &'o mut Vec<u8>) -> Writer<'o> {
        Writer { out }
    }

    /// Appends bytes already encoded.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Appends a PDU.
    pub(crate) fn pdu(&mut self, pdu: &Pdu<'_>) {
        match pdu {
            Pdu::TrapV1(t) => {
                let p = self.begin(super::message::PduType::TRAP_V1.tag());
                self.bytes(ber::OBJECT_IDENTIFIER, t.enterprise.as_bytes());
                self.bytes(ber::IP_ADDRESS, &t.agent_addr);
                self.integer(ber::INTEGER, t.generic_trap);
                self.integer(ber::INTEGER, t.specific_trap);
                self.unsigned(ber::TIME_TICKS, t.time_stamp as u64);
                self.varbinds(t.varbinds);
                self.end(p);
            }
            Pdu::Request(r) => {
                let p = self.begin(r.kind.tag());
                self.integer(ber::INTEGER, r.request_id as i64);
                self.integer(ber::INTEGER, r.error_status as i64);
                self.integer(ber::INTEGER, r.error_index as i64);
                self.varbinds(r.varbinds);
                self.end(p);
            }
        }
    }

    fn tag(&mut self, tag: Tag) {
        match tag.to_byte() {
            Some(b) => self.out.push(b),
            None => {
                self.out.push(tag.form | 0x1f);
                // A high tag number is base 128, as an OID arc is.
                super::oid::push_arc(self.out, tag.number);
            }
        }
    }

    /// Starts a constructed element; returns where its length goes.
    pub(crate) fn begin(&mut self, tag: Tag) -> usize {
        self.tag(tag);
        self.out.push(0);
        self.out.len() - 1
    }

    /// Ends the element started at `mark`, writing its length (long form when needed).
    pub(crate) fn end(&mut self, mark: usize) {
        let len = self.out.len() - mark - 1;
        if len < 0x80 {
            self.out[mark] = len as u8;
        } else {
            let be = (len as u32).to_be_bytes();
            let skip = be.iter().take_while(|&&b| b == 0).count();
            let n = be.len() - skip;
            self.out[mark] = 0x80 | n as u8;
            self.out
                .splice(mark + 1..mark + 1, be[skip..].iter().copied());
        }
    }

    fn length(&mut self, len: usize) {
        if len < 0x80 {
            self.out.push(len as u8);
        } else {
            let be = (len as u32).to_be_bytes();
            let skip = be.iter().take_while(|&&b| b == 0).count();
            self.out.push(0x80 | (be.len() - skip) as u8);
            self.out.extend_from_slice(&be[skip..]);
        }
    }

    pub(crate) fn bytes(&mut self, tag: Tag, content: &[u8]) {
        self.tag(tag);
        self.length(content.len());
        self.out.extend_from_slice(content);
    }

    pub(crate) fn integer(&mut self, tag: Tag, v: i64) {
        let be = v.to_be_bytes();
        // Drop leading octets that only repeat the sign.
        let mut start = 0;
        while start < 7 {
            let (b, next) = (be[start], be[start + 1]);
            if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        self.bytes(tag, &be[start..]);
    }

    fn unsigned(&mut self, tag: Tag, v: u64) {
        let mut buf = [0u8; 9];
        buf[1..].copy_from_slice(&v.to_be_bytes());
        let mut start = 1;
        while start < 8 && buf[start] == 0 {
            start += 1;
        }
        // A leading zero keeps a value with its top bit set positive.
        if buf[start] & 0x80 != 0 {
            start -= 1;
        }
        self.bytes(tag, &buf[start..]);
    }

    fn value(&mut self, v: &Value<'_>) {
        match *v {
            Value::Integer(i) => self.integer(ber::INTEGER, i),
            Value::OctetString(s) => self.bytes(ber::OCTET_STRING, s),
            Value::Null => self.bytes(ber::NULL, &[]),
            Value::ObjectId(o) => self.bytes(ber::OBJECT_IDENTIFIER, o.as_bytes()),
            Value::IpAddress(a) => self.bytes(ber::IP_ADDRESS, &a),
            Value::Counter32(c) => self.unsigned(ber::COUNTER32, c as u64),
            Value::Gauge32(g) => self.unsigned(ber::GAUGE32, g as u64),
            Value::TimeTicks(t) => self.unsigned(ber::TIME_TICKS, t as u64),
            Value::Opaque(s) => self.bytes(ber::OPAQUE, s),
            Value::Counter64(c) => self.unsigned(ber::COUNTER64, c),
            Value::NoSuchObject => self.bytes(ber::NO_SUCH_OBJECT, &[]),
            Value::NoSuchInstance => self.bytes(ber::NO_SUCH_INSTANCE, &[]),
            Value::EndOfMibView => self.bytes(ber::END_OF_MIB_VIEW, &[]),
            Value::Other(tag, s) => self.bytes(tag, s),
        }
    }

    fn varbinds(&mut self, list: &[VarBind<'_>]) {
        let seq = self.begin(ber::SEQUENCE);
        for vb in list {
            let item = self.begin(ber::SEQUENCE);
            self.bytes(ber::OBJECT_IDENTIFIER, vb.name.as_bytes());
            self.value(&vb.value);
            self.end(item);
        }
        self.end(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Version;
    use crate::wire::ber::Tag;
    use crate::wire::message::PduType;
    use crate::wire::oid::oid;

    #[test]
    fn the_length_computed_is_the_length_written_at_every_length_form() {
        let name = oid("1.3.6.1.4.1.318.1.1.1.2.2.1.0");
        let other = Tag {
            form: 0x40,
            number: 200,
        };
        for text_len in [0, 1, 100, 127, 128, 255, 256, 1000, 70_000] {
            let text = vec![b'x'; text_len];
            let values = [
                Value::OctetString(&text),
                Value::Integer(i64::MIN),
                Value::Integer(-129),
                Value::Integer(128),
                Value::Counter64(u64::MAX),
                Value::Gauge32(0x80),
                Value::Other(other, &text[..text_len.min(10)]),
                Value::EndOfMibView,
            ];
            let vbs: Vec<VarBind<'_>> = values
                .iter()
                .map(|v| VarBind {
                    name: name.as_oid(),
                    value: *v,
                })
                .collect();
            for msg in [
                Message::pdu(Version::V2c, &text, PduType::RESPONSE, -5, &vbs).with_error(1, 300),
                Message::trap_v1(b"public", name.as_oid(), [10, 0, 0, 1], 7, u32::MAX, &vbs),
            ] {
                assert_eq!(encoded_len(&msg), to_vec(&msg).len(), "text of {text_len}");
            }
        }
    }
}
