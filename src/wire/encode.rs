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
    match &msg.pdu {
        Pdu::TrapV1(t) => {
            let pdu = w.begin(super::message::PduType::TRAP_V1.tag());
            w.bytes(ber::OBJECT_IDENTIFIER, t.enterprise.as_bytes());
            w.bytes(ber::IP_ADDRESS, &t.agent_addr);
            w.integer(ber::INTEGER, t.generic_trap);
            w.integer(ber::INTEGER, t.specific_trap);
            w.unsigned(ber::TIME_TICKS, t.time_stamp as u64);
            w.varbinds(t.varbinds);
            w.end(pdu);
        }
        Pdu::Request(r) => {
            let pdu = w.begin(r.kind.tag());
            w.integer(ber::INTEGER, r.request_id as i64);
            w.integer(ber::INTEGER, r.error_status as i64);
            w.integer(ber::INTEGER, r.error_index as i64);
            w.varbinds(r.varbinds);
            w.end(pdu);
        }
    }
    w.end(top);
}

/// Encodes `msg` into a new buffer.
pub fn to_vec(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode(msg, &mut out);
    out
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

impl Writer<'_> {
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
    fn begin(&mut self, tag: Tag) -> usize {
        self.tag(tag);
        self.out.push(0);
        self.out.len() - 1
    }

    /// Ends the element started at `mark`, writing its length (long form when needed).
    fn end(&mut self, mark: usize) {
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

    fn bytes(&mut self, tag: Tag, content: &[u8]) {
        self.tag(tag);
        self.length(content.len());
        self.out.extend_from_slice(content);
    }

    fn integer(&mut self, tag: Tag, v: i64) {
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
