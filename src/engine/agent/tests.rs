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
fn answer(agent: &mut Agent, from: &str, request: &[u8]) -> Option<Response> {
    let arena = Bump::new();
    let m = Message::parse(request, &arena).unwrap();
    let mut out = Vec::new();
    if !matches!(
        agent.answer(t(5), from.parse().unwrap(), &m, request.len(), &mut out),
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
            runtime: Some(crate::engine::config::Secs(1500)),
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
    let (_, _, got) = answer(&mut a, NVR, &q).unwrap();
    assert_eq!(got[0].1, "Integer(87)");
    assert_eq!(got[1].1, "TimeTicks(150000)");
    assert_eq!(got[2].1, "Integer(3)", "output source normal");
    // The policy tells this recorder to shut down: it sees an empty battery.
    a.presented[1] = Some(0);
    let (_, _, got) = answer(&mut a, NVR, &q).unwrap();
    assert_eq!(got[0].1, "Integer(0)");
    assert_eq!(got[2].1, "Integer(5)", "output source battery");
    // The other recorder of the same UPS still sees the real values.
    let (_, _, got) = answer(&mut a, "192.168.61.244", &q).unwrap();
    assert_eq!(got[0].1, "Integer(87)");
}

#[test]
fn unknown_objects_follow_v1_and_v2c_rules_and_strangers_get_nothing() {
    let mut a = agent();
    let q = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0", "1.3.6.1.2.1.33.9.0"],
    );
    let (status, _, got) = answer(&mut a, NVR, &q).unwrap();
    assert_eq!((status, got[1].1.as_str()), (0, "NoSuchObject"));
    let q = ask(
        Version::V1,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0", "1.3.6.1.2.1.33.9.0"],
    );
    let (status, index, got) = answer(&mut a, NVR, &q).unwrap();
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
    assert_eq!(answer(&mut a, NVR, &wrong), None);
    let arena = Bump::new();
    let m = Message::parse(&wrong, &arena).unwrap();
    assert!(matches!(
        a.answer(t(5), NVR.parse().unwrap(), &m, wrong.len(), &mut Vec::new()),
        Answered::WrongCommunity(RecorderId(1))
    ));
    let q = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0"],
    );
    assert_eq!(
        answer(&mut a, "10.0.0.1", &q),
        None,
        "not a recorder of the site"
    );
}

#[test]
fn get_next_and_get_bulk_walk_in_oid_order_to_the_end_of_the_mib_view() {
    let mut a = agent();
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
    let (_, _, got) = answer(&mut a, NVR, &q).unwrap();
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
    let (_, _, got) = answer(&mut a, NVR, &q).unwrap();
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
    let (_, _, got) = answer(&mut a, NVR, &q).unwrap();
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

#[test]
fn each_recorder_is_answered_with_its_own_community_only() {
    let mut site = Site::default_site();
    site.recorders[1].community = "nvr-251-secret".into();
    let mut a = Agent::new(&site, t(0));
    let oid = ["1.3.6.1.2.1.1.5.0"];
    let own = ask(Version::V2c, PduType::GET_REQUEST, b"nvr-251-secret", &oid);
    let public = ask(Version::V2c, PduType::GET_REQUEST, b"public", &oid);
    assert!(answer(&mut a, NVR, &own).is_some());
    assert_eq!(
        answer(&mut a, NVR, &public),
        None,
        "the gateway's is not its"
    );
    assert!(answer(&mut a, "192.168.61.244", &public).is_some());
}

/// Every answer to a request of `len` bytes fits the site's maximum and three times the
/// request above one datagram.
#[test]
fn answers_are_bounded_fewer_repetitions_then_too_big() {
    let mut a = agent();
    // A GetBulk of 50 names, 64 repetitions each: 3,200 bindings wanted.
    let names: Vec<String> = (0..50).map(|i| format!("1.3.6.1.2.1.1.{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let q = bulk(0, 64, &refs);
    let arena = Bump::new();
    let m = Message::parse(&q, &arena).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        a.answer(t(5), NVR.parse().unwrap(), &m, q.len(), &mut out),
        Answered::Recorder(RecorderId(1))
    );
    assert!(
        out.len() <= 1472,
        "{} bytes for a {}-byte request",
        out.len(),
        q.len()
    );
    assert!(out.len() > 1400, "as much as fits: {} bytes", out.len());
    let r = Message::parse(&out, &arena).unwrap();
    let Pdu::Request(p) = r.pdu else { panic!() };
    assert_eq!(p.error_status, 0);
    // In order: the first row whole, each binding the successor of the one it answers.
    assert_eq!(p.varbinds[0].name.to_buf().to_string(), "1.3.6.1.2.1.1.1.0");
    assert_eq!(a.trimmed, 1);
    // A site that allows bigger messages: three times the request, not more.
    let mut site = Site::default_site();
    site.gateway.max_message_size = 65_000;
    let mut big = Agent::new(&site, t(0));
    big.ups[0] = a.ups[0];
    big.answer(t(5), NVR.parse().unwrap(), &m, q.len(), &mut out);
    assert!(
        out.len() <= 3 * q.len() && out.len() > 1472,
        "{} bytes",
        out.len()
    );
    // A Get whose answer cannot fit: tooBig, no bindings (v2c).
    // 30 sysDescr.0 (about 45 bytes each) from a request of some 450 bytes.
    let many: Vec<&str> = (0..30).map(|_| "1.3.6.1.2.1.1.1.0").collect();
    let q = ask(Version::V2c, PduType::GET_REQUEST, b"public", &many);
    let (status, index, got) = answer(&mut a, NVR, &q).unwrap();
    assert_eq!((status, index, got.len()), (1, 0, 0), "tooBig");
    assert_eq!(a.too_big, 1);
    // v1: tooBig with the request's bindings, as RFC 1157 says (no larger than asked).
    let q = ask(Version::V1, PduType::GET_REQUEST, b"public", &many);
    let (status, _, got) = answer(&mut a, NVR, &q).unwrap();
    assert_eq!((status, got.len()), (1, 30));
    // And a request that not even tooBig fits (v1 echoes it): no answer at all.
    let huge: Vec<&str> = (0..200).map(|_| "1.3.6.1.2.1.1.1.0").collect();
    let q = ask(Version::V1, PduType::GET_REQUEST, b"public", &huge);
    let m = Message::parse(&q, &arena).unwrap();
    assert_eq!(
        a.answer(t(5), NVR.parse().unwrap(), &m, q.len(), &mut out),
        Answered::Discarded(RecorderId(1))
    );
}

#[test]
fn a_recorder_that_asks_too_fast_gets_its_share_and_no_more() {
    let mut a = agent();
    let q = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0"],
    );
    let arena = Bump::new();
    let m = Message::parse(&q, &arena).unwrap();
    let mut out = Vec::new();
    let mut at = |a: &mut Agent, s: f64, from: &str| {
        a.answer(
            Timestamp(t(5).0 + (s * 1e9) as u64),
            from.parse().unwrap(),
            &m,
            q.len(),
            &mut out,
        )
    };
    // A flood: a request every 100 µs for 2 s. The burst, then 20 a second.
    let answered = (0..20_000)
        .filter(|i| matches!(at(&mut a, *i as f64 * 1e-4, NVR), Answered::Recorder(_)))
        .count();
    assert!(
        (BURST as usize + 39..=BURST as usize + 41).contains(&answered),
        "{answered} answered"
    );
    let now: Vec<Answered> = (0..2).map(|_| at(&mut a, 2.0, NVR)).collect();
    assert_eq!(now[1], Answered::OverRate(RecorderId(1)), "{now:?}");
    // The other recorder has its own share, whole.
    assert!(matches!(
        at(&mut a, 2.0, "192.168.61.244"),
        Answered::Recorder(RecorderId(0))
    ));
    // A second of quiet: 20 more.
    let later = (0..100)
        .filter(|i| {
            matches!(
                at(&mut a, 3.0 + *i as f64 * 1e-4, NVR),
                Answered::Recorder(_)
            )
        })
        .count();
    assert_eq!(later, RATE as usize);
}

#[test]
fn a_recorder_fed_by_two_ups_is_shown_the_better_feed_until_it_is_ordered_down() {
    let site = Site::parse(&std::fs::read_to_string("captures/story-dual-feed.site.toml").unwrap())
        .unwrap();
    let named = |n: &str| {
        RecorderId::enumerate(&site.recorders)
            .find(|(_, r)| r.name == n)
            .unwrap()
            .0
    };
    let dual = named("nvr-dual");
    let mut a = Agent::new(&site, t(0));
    let poll = |on_battery, charge| PollAnswer {
        on_battery: Some(on_battery),
        battery_low: Some(false),
        charge: Some(charge),
        ..PollAnswer::default()
    };
    // ups-a on battery at 60 %, ups-b on mains at 40 %: mains first.
    a.ups[UpsId(0)].update(t(1), poll(true, 60));
    a.ups[UpsId(1)].update(t(1), poll(false, 40));
    let q = ask(
        Version::V2c,
        PduType::GET_REQUEST,
        b"public",
        &["1.3.6.1.2.1.33.1.2.4.0", "1.3.6.1.2.1.33.1.4.1.0"],
    );
    let dual_at = site.recorders[dual].address.to_string();
    let charge_and_source = |a: &mut Agent| {
        let (_, _, got) = answer(a, &dual_at, &q).unwrap();
        (got[0].1.clone(), got[1].1.clone())
    };
    assert_eq!(
        charge_and_source(&mut a),
        ("Integer(40)".into(), "Integer(3)".into()),
        "ups-b, on mains (output source normal)"
    );
    // Both on battery: the one with the more charge.
    a.ups[UpsId(1)].update(t(2), poll(true, 40));
    assert_eq!(
        charge_and_source(&mut a),
        ("Integer(60)".into(), "Integer(5)".into())
    );
    // A recorder fed by ups-a alone sees ups-a whatever ups-b says.
    let single = site.recorders[named("nvr-a")].address.to_string();
    a.ups[UpsId(0)].update(t(3), poll(true, 10));
    let (_, _, got) = answer(&mut a, &single, &q).unwrap();
    assert_eq!(got[0].1, "Integer(10)");
    assert_eq!(charge_and_source(&mut a).0, "Integer(40)", "ups-b now");
    // Ordered down: the shutdown values, whatever its feeds say.
    a.presented[dual] = Some(0);
    assert_eq!(charge_and_source(&mut a).0, "Integer(0)");
}
