//! The usual shape of an SNMP message, matched with as few checks as it takes.
//!
//! Nearly every trap on a site is encoded the same way: one- or two-octet lengths,
//! one-octet tags, minimal integers, the SNMP value types. `parse` reads exactly that
//! shape, indexing one buffer (so an element's position is its offset, and an integer
//! is one eight-byte load and a shift), and gives up with `None` at the first thing it
//! does not expect, good or bad. The general reader in `message.rs` then decodes the
//! packet again and decides exactly: the unusual encodings it accepts and every error
//! with its offset. What this module returns is what the general reader returns for
//! the same bytes (a property test holds them to it).

use bumpalo::Bump;

use super::ber;
use super::message::{Message, Pdu, PduType, RequestPdu, TrapV1, Version};
use super::oid::Oid;
use super::value::{Value, VarBind};

/// One element's header at `pos`: (identifier octet, content start, content end), if
/// its length is short or of one or two octets and its content ends by `end`.
#[inline(always)]
fn element(b: &[u8], pos: usize, end: usize) -> Option<(u8, usize, usize)> {
    let head = b.get(pos..pos + 2)?;
    let (tag, l) = (head[0], head[1]);
    let (start, len) = if l < 0x80 {
        (pos + 2, l as usize)
    } else if l == 0x81 {
        (pos + 3, *b.get(pos + 2)? as usize)
    } else if l == 0x82 {
        let n = b.get(pos + 2..pos + 4)?;
        (pos + 4, u16::from_be_bytes([n[0], n[1]]) as usize)
    } else {
        return None;
    };
    let stop = start + len;
    (stop <= end).then_some((tag, start, stop))
}

/// The element at `pos` if its identifier octet is `tag`.
#[inline(always)]
fn expect(b: &[u8], pos: usize, end: usize, tag: u8) -> Option<(usize, usize)> {
    match element(b, pos, end)? {
        (t, start, stop) if t == tag => Some((start, stop)),
        _ => None,
    }
}

/// The two's-complement integer in `b[start..stop]`, of one to eight octets: one load of
/// the eight bytes that end it and an arithmetic shift (the packet is longer than eight
/// bytes wherever an integer is read: the message header comes first).
#[inline(always)]
fn integer(b: &[u8], start: usize, stop: usize) -> Option<i64> {
    let len = stop - start;
    if !(1..=8).contains(&len) || stop < 8 {
        return None;
    }
    let word = u64::from_be_bytes(b[stop - 8..stop].try_into().expect("eight bytes"));
    let drop = 64 - 8 * len as u32;
    Some(((word << drop) as i64) >> drop)
}

/// An INTEGER element at `pos`; returns its value and the position after it.
#[inline(always)]
fn integer_element(b: &[u8], pos: usize, end: usize) -> Option<(i64, usize)> {
    let (start, stop) = expect(b, pos, end, 0x02)?;
    Some((integer(b, start, stop)?, stop))
}

/// request-id, error-status, error-index (`ber::int32`).
#[inline(always)]
fn int32_element(b: &[u8], pos: usize, end: usize) -> Option<(i32, usize)> {
    let (v, next) = integer_element(b, pos, end)?;
    Some((ber::int32(v)?, next))
}

/// Counter32, Gauge32, TimeTicks (`ber::unsigned32`).
#[inline(always)]
fn unsigned32(b: &[u8], start: usize, stop: usize) -> Option<u32> {
    ber::unsigned32(integer(b, start, stop)?, stop - start)
}

/// Decodes `buf` if it has the usual shape; None sends it to the general reader.
#[inline(always)]
pub(crate) fn parse<'a>(b: &'a [u8], arena: &'a Bump) -> Option<Message<'a>> {
    let n = b.len();
    let (start, end) = expect(b, 0, n, 0x30)?;
    if end != n {
        return None;
    }
    let (version_at, version_end) = expect(b, start, end, 0x02)?;
    let version = match b[version_at..version_end] {
        [0] => Version::V1,
        [1] => Version::V2c,
        _ => return None,
    };
    let (community_at, community_end) = expect(b, version_end, end, 0x04)?;
    let community = &b[community_at..community_end];
    let (tag, pdu_at, pdu_end) = element(b, community_end, end)?;
    if pdu_end != end || !(0xa0..=0xa8).contains(&tag) {
        return None;
    }
    let pdu = if tag == 0xa4 {
        let (ent_at, ent_end) = expect(b, pdu_at, pdu_end, 0x06)?;
        let enterprise = Oid::within(b, ent_at, ent_end)?;
        let (addr_at, addr_end) = expect(b, ent_end, pdu_end, 0x40)?;
        let agent_addr = <[u8; 4]>::try_from(&b[addr_at..addr_end]).ok()?;
        let (generic_trap, at) = integer_element(b, addr_end, pdu_end)?;
        let (specific_trap, at) = integer_element(b, at, pdu_end)?;
        let (ticks_at, ticks_end) = expect(b, at, pdu_end, 0x43)?;
        let time_stamp = unsigned32(b, ticks_at, ticks_end)?;
        let varbinds = varbinds(b, ticks_end, pdu_end, arena)?;
        Pdu::TrapV1(TrapV1 {
            enterprise,
            agent_addr,
            generic_trap,
            specific_trap,
            time_stamp,
            varbinds,
        })
    } else {
        let (request_id, at) = int32_element(b, pdu_at, pdu_end)?;
        let (error_status, at) = int32_element(b, at, pdu_end)?;
        let (error_index, at) = int32_element(b, at, pdu_end)?;
        let varbinds = varbinds(b, at, pdu_end, arena)?;
        Pdu::Request(RequestPdu {
            kind: PduType((tag & 0x1f) as u32),
            request_id,
            error_status,
            error_index,
            varbinds,
        })
    };
    Some(Message {
        version,
        community,
        pdu,
        v3: None,
    })
}

/// The VarBindList at `pos`, which must end the PDU at `end`. Not inlined: with its
/// own registers the varbind loop keeps its positions out of memory (measured about
/// 1.5 ns a packet faster than inlined into `parse`).
#[inline(never)]
fn varbinds<'a>(b: &'a [u8], pos: usize, end: usize, arena: &'a Bump) -> Option<&'a [VarBind<'a>]> {
    let (mut at, stop) = expect(b, pos, end, 0x30)?;
    if stop != end {
        return None;
    }
    // Count first (one header per varbind), then decode each straight into its slot;
    // a packet that leaves the usual shape half-way gives its slots back to the arena.
    let mut count = 0;
    let mut scan = at;
    while scan < stop {
        let (_, _, next) = element(b, scan, stop)?;
        scan = next;
        count += 1;
    }
    let list = arena
        .alloc_slice_try_fill_with(count, |_| {
            let (seq_at, seq_end) = expect(b, at, stop, 0x30).ok_or(())?;
            at = seq_end;
            varbind(b, seq_at, seq_end).ok_or(())
        })
        .ok()?;
    Some(list)
}

/// The name and value of the varbind whose content is `b[at..end]`.
#[inline(always)]
fn varbind(b: &[u8], at: usize, end: usize) -> Option<VarBind<'_>> {
    let (name_at, name_end) = expect(b, at, end, 0x06)?;
    let name = Oid::within(b, name_at, name_end)?;
    let (tag, v_at, v_end) = element(b, name_end, end)?;
    if v_end != end {
        return None;
    }
    let content = &b[v_at..v_end];
    let value = match tag {
        0x02 => Value::Integer(integer(b, v_at, v_end)?),
        0x04 => Value::OctetString(content),
        0x05 if content.is_empty() => Value::Null,
        0x06 => Value::ObjectId(Oid::within(b, v_at, v_end)?),
        0x40 => Value::IpAddress(content.try_into().ok()?),
        0x41 => Value::Counter32(unsigned32(b, v_at, v_end)?),
        0x42 => Value::Gauge32(unsigned32(b, v_at, v_end)?),
        0x43 => Value::TimeTicks(unsigned32(b, v_at, v_end)?),
        0x44 => Value::Opaque(content),
        0x80 if content.is_empty() => Value::NoSuchObject,
        0x81 if content.is_empty() => Value::NoSuchInstance,
        0x82 if content.is_empty() => Value::EndOfMibView,
        _ => return None,
    };
    Some(VarBind { name, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::encode;
    use crate::wire::oid::oid;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::wire::hex::decode(s).expect("hex")
    }

    /// The seed's APC lowBattery trap (captures/seed-trace.pcap).
    const SEED_TRAP: &str = "306302010004067075626c6963a45606072b06010401823e4004c0a83dfa\
        02010602010743037a1200303a3038060b2b06010401823e0203030004295550533a204c6f772062617474\
        6572792e20412073687574646f776e20697320696d6d696e656e742e";
    /// gosnmp marshal_test.go trap1(): a v2c snmpV2-trap.
    const GOSNMP_TRAP1: &str = "30818002010104067075626c6963a7730204725cef420201000201003065301006082b060102010103004304011aefa53014060a2b06010603010104010006062b0601020101301606082b06010201010100040a726564206c6170746f70300d06082b06010201010700020105301406072b06010201010206092b0601040102030405";

    /// An inform with a value of every type the usual shape reads.
    fn every_type() -> Vec<u8> {
        let name = oid("1.3.6.1.4.1.318.2.3.3.0");
        let value_oid = oid("1.3.6.1.2.1.33.1.6.3.2");
        let values = [
            Value::Integer(-129),
            Value::OctetString(b"UPS: On battery power."),
            Value::Null,
            Value::ObjectId(value_oid.as_oid()),
            Value::IpAddress([127, 0, 0, 1]),
            Value::Counter32(u32::MAX),
            Value::Gauge32(300),
            Value::TimeTicks(8_640_000),
            Value::Opaque(&[0x9f, 0x78, 4, 0, 0, 0, 0]),
            Value::NoSuchObject,
            Value::NoSuchInstance,
            Value::EndOfMibView,
        ];
        let varbinds: Vec<VarBind<'_>> = values
            .iter()
            .map(|&value| VarBind {
                name: name.as_oid(),
                value,
            })
            .collect();
        let m = Message::pdu(
            Version::V2c,
            b"site",
            PduType::INFORM_REQUEST,
            -7,
            &varbinds,
        );
        encode::to_vec(&m)
    }

    fn samples() -> Vec<Vec<u8>> {
        vec![hex(SEED_TRAP), hex(GOSNMP_TRAP1), every_type()]
    }

    #[test]
    fn real_traps_take_the_usual_shape() {
        let arena = Bump::new();
        for bytes in samples() {
            let usual = parse(&bytes, &arena).expect("the usual shape");
            assert_eq!(Ok(usual), Message::parse_general(&bytes, &arena));
        }
    }

    #[test]
    fn what_it_does_not_take_goes_to_the_general_reader() {
        let arena = Bump::new();
        // A three-octet length (legal BER, unusual in SNMP) around the whole message.
        let seed = hex(SEED_TRAP);
        let mut long = vec![0x30, 0x83, 0, 0, seed.len() as u8 - 2];
        long.extend_from_slice(&seed[2..]);
        assert_eq!(parse(&long, &arena), None);
        assert!(Message::parse(&long, &arena).is_ok());
        // A type SNMP does not define, and a Counter64 (no trap of the tables has one).
        let mut odd = seed.clone();
        let at = odd.len() - 0x29 - 2;
        assert_eq!(odd[at], 0x04, "the trap's OCTET STRING value");
        odd[at] = 0x47;
        let counter64 = [0x46, 0x01, 0x05];
        let mut wide = seed[..at].to_vec();
        wide.extend_from_slice(&counter64);
        let shrink = 0x29 + 2 - counter64.len();
        for at in [1, 14, 42, 44] {
            // The lengths of the message, PDU, varbind list and varbind.
            wide[at] -= shrink as u8;
        }
        for bytes in [odd, wide] {
            assert_eq!(parse(&bytes, &arena), None);
            assert!(Message::parse(&bytes, &arena).is_ok());
        }
        // Errors are the general reader's to name: a cut trap, an empty version (found
        // by the fuzzer).
        assert_eq!(parse(&seed[..seed.len() - 1], &arena), None);
        assert_eq!(parse(&[0x30, 0x02, 0x02, 0x00], &arena), None);
        assert_eq!(
            Message::parse(&[0x30, 0x02, 0x02, 0x00], &arena).map_err(|e| e.kind),
            Err(crate::wire::ErrorKind::IntegerEmpty)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        /// Whatever the usual shape takes, the general reader decodes to the same message.
        #[test]
        fn agrees_with_the_general_reader(
            sample in 0usize..3,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 0..4),
        ) {
            let mut bytes = samples().swap_remove(sample);
            for (at, byte, op) in edits {
                let i = at.index(bytes.len().max(1));
                match op {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 if i < bytes.len() => bytes[i] ^= 1 << (byte % 8),
                    2 => bytes.insert(i.min(bytes.len()), byte),
                    _ if i < bytes.len() => { bytes.remove(i); }
                    _ => {}
                }
            }
            let arena = Bump::new();
            if let Some(usual) = parse(&bytes, &arena) {
                prop_assert_eq!(Ok(usual), Message::parse_general(&bytes, &arena));
            }
        }
    }
}
