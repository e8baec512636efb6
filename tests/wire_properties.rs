//! Property tests of the wire layer: encoding round-trips, and no input, random or a
//! mutation of a real trap, makes the decoder panic; every failure is a typed error
//! that the pipeline counts.

use std::net::{IpAddr, Ipv4Addr};

use bumpalo::Bump;
use proptest::prelude::*;
use trapgate::classify::Classifier;
use trapgate::engine::pipeline::{Outcome, Pipeline};
use trapgate::time::Timestamp;
use trapgate::wire::encode;
use trapgate::wire::frame::Datagram;
use trapgate::wire::{
    ErrorKind, Message, OidBuf, Pdu, PduType, RequestPdu, TrapV1, Value, VarBind, Version,
};

/// An owned value, so strategies can build it; borrowed into `Value` for encoding.
#[derive(Clone, Debug)]
enum OwnedValue {
    Integer(i64),
    Octets(Vec<u8>),
    Null,
    Oid(OidBuf),
    Ip([u8; 4]),
    Counter32(u32),
    Gauge32(u32),
    Ticks(u32),
    Opaque(Vec<u8>),
    Counter64(u64),
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
}

fn oid_strategy() -> impl Strategy<Value = OidBuf> {
    (
        0u32..3,
        0u32..40,
        proptest::collection::vec(any::<u32>(), 0..12),
    )
        .prop_map(|(a, b, rest)| {
            let mut arcs = vec![a, if a == 2 { b * 1000 } else { b }];
            arcs.extend(rest);
            OidBuf::from_arcs(&arcs).expect("valid arcs")
        })
}

fn value_strategy() -> impl Strategy<Value = OwnedValue> {
    prop_oneof![
        any::<i64>().prop_map(OwnedValue::Integer),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(OwnedValue::Octets),
        Just(OwnedValue::Null),
        oid_strategy().prop_map(OwnedValue::Oid),
        any::<[u8; 4]>().prop_map(OwnedValue::Ip),
        any::<u32>().prop_map(OwnedValue::Counter32),
        any::<u32>().prop_map(OwnedValue::Gauge32),
        any::<u32>().prop_map(OwnedValue::Ticks),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(OwnedValue::Opaque),
        any::<u64>().prop_map(OwnedValue::Counter64),
        Just(OwnedValue::NoSuchObject),
        Just(OwnedValue::NoSuchInstance),
        Just(OwnedValue::EndOfMibView),
    ]
}

fn borrow(v: &OwnedValue) -> Value<'_> {
    match v {
        OwnedValue::Integer(i) => Value::Integer(*i),
        OwnedValue::Octets(b) => Value::OctetString(b),
        OwnedValue::Null => Value::Null,
        OwnedValue::Oid(o) => Value::ObjectId(o.as_oid()),
        OwnedValue::Ip(a) => Value::IpAddress(*a),
        OwnedValue::Counter32(n) => Value::Counter32(*n),
        OwnedValue::Gauge32(n) => Value::Gauge32(*n),
        OwnedValue::Ticks(n) => Value::TimeTicks(*n),
        OwnedValue::Opaque(b) => Value::Opaque(b),
        OwnedValue::Counter64(n) => Value::Counter64(*n),
        OwnedValue::NoSuchObject => Value::NoSuchObject,
        OwnedValue::NoSuchInstance => Value::NoSuchInstance,
        OwnedValue::EndOfMibView => Value::EndOfMibView,
    }
}

#[derive(Clone, Debug)]
struct OwnedMessage {
    v2c: bool,
    community: Vec<u8>,
    /// None: a v1 Trap-PDU; Some(kind): any other PDU.
    kind: Option<u32>,
    ids: (i32, i32, i32),
    enterprise: OidBuf,
    agent: [u8; 4],
    generic: i64,
    specific: i64,
    uptime: u32,
    varbinds: Vec<(OidBuf, OwnedValue)>,
}

fn message_strategy() -> impl Strategy<Value = OwnedMessage> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        prop_oneof![
            Just(None),
            (0u32..9)
                .prop_filter("not trap", |k| *k != 4)
                .prop_map(Some)
        ],
        any::<(i32, i32, i32)>(),
        oid_strategy(),
        any::<[u8; 4]>(),
        (0i64..7, any::<i64>(), any::<u32>()),
        proptest::collection::vec((oid_strategy(), value_strategy()), 0..12),
    )
        .prop_map(
            |(
                v2c,
                community,
                kind,
                ids,
                enterprise,
                agent,
                (generic, specific, uptime),
                varbinds,
            )| {
                OwnedMessage {
                    v2c,
                    community,
                    kind,
                    ids,
                    enterprise,
                    agent,
                    generic,
                    specific,
                    uptime,
                    varbinds,
                }
            },
        )
}

fn encode_owned(m: &OwnedMessage) -> (Vec<u8>, String) {
    let list: Vec<VarBind<'_>> = m
        .varbinds
        .iter()
        .map(|(n, v)| VarBind {
            name: n.as_oid(),
            value: borrow(v),
        })
        .collect();
    let pdu = match m.kind {
        None => Pdu::TrapV1(TrapV1 {
            enterprise: m.enterprise.as_oid(),
            agent_addr: m.agent,
            generic_trap: m.generic,
            specific_trap: m.specific,
            time_stamp: m.uptime,
            varbinds: &list,
        }),
        Some(k) => Pdu::Request(RequestPdu {
            kind: PduType(k),
            request_id: m.ids.0,
            error_status: m.ids.1,
            error_index: m.ids.2,
            varbinds: &list,
        }),
    };
    let msg = Message {
        version: if m.v2c { Version::V2c } else { Version::V1 },
        community: &m.community,
        pdu,
        v3: None,
    };
    (encode::to_vec(&msg), format!("{msg:?}"))
}

fn datagram(payload: &[u8]) -> Datagram<'_> {
    Datagram {
        src: IpAddr::V4(Ipv4Addr::LOCALHOST),
        dst: IpAddr::V4(Ipv4Addr::LOCALHOST),
        src_port: 40000,
        dst_port: 162,
        payload,
    }
}

/// Runs `payload` through the pipeline; checks that a failure is a counted, typed error.
fn check_counted(pipeline: &mut Pipeline, payload: &[u8]) -> Result<(), TestCaseError> {
    let arena = Bump::new();
    let before: u64 = pipeline.counters().malformed.iter().sum();
    let messages = pipeline.counters().messages();
    match pipeline.process_datagram(datagram(payload), &arena, Timestamp(0)) {
        Outcome::Malformed(_, e) => {
            prop_assert!(ErrorKind::ALL.contains(&e.kind));
            prop_assert!(
                e.offset <= payload.len(),
                "offset {} past {}",
                e.offset,
                payload.len()
            );
            let after: u64 = pipeline.counters().malformed.iter().sum();
            prop_assert_eq!(after, before + 1);
        }
        Outcome::Message(..) => prop_assert_eq!(pipeline.counters().messages(), messages + 1),
        other => prop_assert!(false, "unexpected {:?}", other),
    }
    Ok(())
}

/// The seed's APC lowBattery trap, as built into captures/seed-trace.pcap.
const SEED_TRAP: &str = "306302010004067075626c6963a45606072b06010401823e4004c0a83dfa\
02010602010743037a1200303a3038060b2b06010401823e0203030004295550533a204c6f772062617474\
6572792e20412073687574646f776e20697320696d6d696e656e742e";

fn seed_trap() -> Vec<u8> {
    trapgate::wire::hex::decode(SEED_TRAP).expect("hex")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_of_encode_is_identity(m in message_strategy()) {
        let (bytes, original) = encode_owned(&m);
        let arena = Bump::new();
        let decoded = Message::parse(&bytes, &arena).expect("own encoding decodes");
        prop_assert_eq!(format!("{decoded:?}"), original);
        // And encoding what was decoded gives the same bytes back.
        prop_assert_eq!(&encode::to_vec(&decoded), &bytes);
        // The length an agent computes before answering is the length it writes.
        prop_assert_eq!(encode::encoded_len(&decoded), bytes.len());
    }

    #[test]
    fn random_bytes_never_panic_and_are_counted(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut p = Pipeline::new(Classifier::builtin(), &[]);
        check_counted(&mut p, &bytes)?;
    }

    #[test]
    fn random_bytes_behind_a_sequence_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..120)) {
        // Random content behind a plausible header reaches deeper into the decoder.
        let mut bytes = vec![0x30, body.len() as u8, 0x02, 0x01, 0x00];
        bytes.extend_from_slice(&body);
        let mut p = Pipeline::new(Classifier::builtin(), &[]);
        check_counted(&mut p, &bytes)?;
    }

    #[test]
    fn mutated_traps_never_panic_and_are_counted(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = seed_trap();
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
        let mut p = Pipeline::new(Classifier::builtin(), &[]);
        check_counted(&mut p, &bytes)?;
        let n = cut.index(bytes.len() + 1);
        check_counted(&mut p, &bytes[..n])?;
    }
}

#[test]
fn the_seed_trap_decodes_and_every_prefix_is_a_counted_error() {
    let trap = seed_trap();
    assert_eq!(trap.len(), 101);
    let mut p = Pipeline::new(Classifier::builtin(), &[]);
    let arena = Bump::new();
    assert!(matches!(
        p.process_datagram(datagram(&trap), &arena, Timestamp(0)),
        Outcome::Message(_, _, Some(c)) if c.event == trapgate::classify::Event::LowBattery
    ));
    for n in 0..trap.len() {
        assert!(matches!(
            p.process_datagram(datagram(&trap[..n]), &arena, Timestamp(0)),
            Outcome::Malformed(_, e) if e.kind == ErrorKind::Truncated
        ));
    }
    assert_eq!(p.counters().malformed[ErrorKind::Truncated.index()], 101);
}
