use super::*;
use crate::wire::oid::oid;
use bumpalo::Bump;

const NVR: &str = "192.168.61.251";

fn t(s: u64) -> Timestamp {
    Timestamp(1_000_000_000_000 + s * 1_000_000_000)
}

fn ask(version: Version, kind: PduType, community: &[u8], oids: &[&str]) -> Vec<u8> {
    request(version, kind, community, oids, (0, 0))
}

/// A GetBulk for `oids`: `non_repeaters`, then `max_repetitions`.
fn bulk(non_repeaters: i32, max_repetitions: i32, oids: &[&str]) -> Vec<u8> {
    let kind = PduType::GET_BULK_REQUEST;
    request(
        Version::V2c,
        kind,
        b"public",
        oids,
        (non_repeaters, max_repetitions),
    )
}

/// A request for `oids`, with its error fields (GetBulk's two counts) set.
fn request(
    version: Version,
    kind: PduType,
    community: &[u8],
    oids: &[&str],
    (status, index): (i32, i32),
) -> Vec<u8> {
    let names: Vec<_> = oids.iter().map(|o| oid(o)).collect();
    let vbs: Vec<VarBind<'_>> = names
        .iter()
        .map(|n| VarBind {
            name: n.as_oid(),
            value: Value::Null,
        })
        .collect();
    let m = Message::pdu(version, community, kind, 77, &vbs).with_error(status, index);
    encode::to_vec(&m)
}

/// A response as (error-status, error-index, [(oid, value)]).
type Response = (i32, i32, Vec<(String, String)>);

/// The answer to `request` from `from`.
fn answer(agent: &Agent, from: &str, request: &[u8]) -> Option<Response> {
    let arena = Bump::new();
    let m = Message::parse(request, &arena).unwrap();
    let mut out = Vec::new();
    if !matches!(
        agent.answer(t(5), from.parse().unwrap(), &m, &mut out),
        Answered::Recorder(_)
    ) {
        return None;
    }
    let r = Message::parse(&out, &arena).unwrap();
    let Pdu::Request(p) = r.pdu else { panic!() };
    assert_eq!((p.kind, p.request_id), (PduType::RESPONSE, 77));
    let vbs = p
        .varbinds
        .iter()
        .map(|v| (v.name.to_buf().to_string(), format!("{:?}", v.value)))
        .collect();
    Some((p.error_status, p.error_index, vbs))
}

fn agent() -> Agent {
    let site = Site::default_site();
    let mut a = Agent::new(&site, t(0));
    a.ups[0].update(
        t(1),
        PollAnswer {
            on_battery: Some(false),
            battery_low: Some(false),
            charge: Some(87),
            runtime: Some(crate::config::Secs(1500)),
        },
    );
    a
}

#[test]
fn a_recorder_reads_the_real_ups_values_then_what_the_policy_presents() {
    let mut a = agent();
    let q = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"public",
        &[
            "1.3.6.1.2.1.33.1.2.4.0",
            "1.3.6.1.4.1.318.1.1.1.2.2.3.0",
            "1.3.6.1.2.1.33.1.4.1.0",
        ],
    );
    let (_, _, got) = answer(&a, NVR, &q).unwrap();
    assert_eq!(got[0].1, "Integer(87)");
    assert_eq!(got[1].1, "TimeTicks(150000)");
    assert_eq!(got[2].1, "Integer(3)", "output source normal");
    // The policy tells this recorder to shut down: it sees an empty battery.
    a.presented[1] = Some(0);
    let (_, _, got) = answer(&a, NVR, &q).unwrap();
    assert_eq!(got[0].1, "Integer(0)");
    assert_eq!(got[2].1, "Integer(5)", "output source battery");
    // The other recorder of the same UPS still sees the real values.
    let (_, _, got) = answer(&a, "192.168.61.244", &q).unwrap();
    assert_eq!(got[0].1, "Integer(87)");
}

#[test]
fn unknown_objects_follow_v1_and_v2c_rules_and_strangers_get_nothing() {
    let a = agent();
    let q = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0", "1.3.6.1.2.1.33.9.0"],
    );
    let (status, _, got) = answer(&a, NVR, &q).unwrap();
    assert_eq!((status, got[1].1.as_str()), (0, "NoSuchObject"));
    let q = ask(
        Version::V1,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0", "1.3.6.1.2.1.33.9.0"],
    );
    let (status, index, got) = answer(&a, NVR, &q).unwrap();
    assert_eq!(
        (status, index),
        (2, 2),
        "v1: noSuchName at the second binding"
    );
    assert_eq!(got[1].1, "Null", "v1 errors return the request's bindings");
    let wrong = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"private",
        &["1.3.6.1.2.1.33.1.2.4.0"],
    );
    assert_eq!(answer(&a, NVR, &wrong), None);
    let arena = Bump::new();
    let m = Message::parse(&wrong, &arena).unwrap();
    assert!(matches!(
        a.answer(t(5), NVR.parse().unwrap(), &m, &mut Vec::new()),
        Answered::WrongCommunity(1)
    ));
    let q = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0"],
    );
    assert_eq!(
        answer(&a, "10.0.0.1", &q),
        None,
        "not a recorder of the site"
    );
}

#[test]
fn get_next_and_get_bulk_walk_in_oid_order_to_the_end_of_the_mib_view() {
    let a = agent();
    let q = ask(
        Version::V2c,
        PduType::GET_NEXT_REQUEST,
        b"public",
        &[
            "1.3.6.1.2.1.33.1.2.3.0",
            "1.3.6.1.4.1.318.1.1.1.4.1.1.0",
            "1.3",
        ],
    );
    let (_, _, got) = answer(&a, NVR, &q).unwrap();
    assert_eq!(got[0].0, "1.3.6.1.2.1.33.1.2.4.0");
    assert_eq!(
        got[1],
        (
            "1.3.6.1.4.1.318.1.1.1.4.1.1.0".to_string(),
            "EndOfMibView".to_string()
        )
    );
    assert_eq!(got[2].0, "1.3.6.1.2.1.1.1.0", "the walk starts at sysDescr");
    // GetBulk: no non-repeaters, 3 repetitions from the UPS-MIB battery group.
    let q = bulk(0, 3, &["1.3.6.1.2.1.33.1.2"]);
    let (_, _, got) = answer(&a, NVR, &q).unwrap();
    let oids: Vec<&str> = got.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        oids,
        [
            "1.3.6.1.2.1.33.1.2.1.0",
            "1.3.6.1.2.1.33.1.2.2.0",
            "1.3.6.1.2.1.33.1.2.3.0"
        ]
    );
    // One non-repeater, then a repeater already at the last object: the end of the MIB
    // view once, and no more repetitions.
    let q = bulk(
        1,
        5,
        &["1.3.6.1.2.1.33.1.2.4.0", "1.3.6.1.4.1.318.1.1.1.4.1.1.0"],
    );
    let (_, _, got) = answer(&a, NVR, &q).unwrap();
    assert_eq!(
        got,
        [
            (
                "1.3.6.1.2.1.33.1.4.1.0".to_string(),
                "Integer(3)".to_string()
            ),
            (
                "1.3.6.1.4.1.318.1.1.1.4.1.1.0".to_string(),
                "EndOfMibView".to_string()
            )
        ]
    );
}
