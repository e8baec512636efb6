//! The power machine on a virtual clock, its requests answered by hand as a card would.

use super::*;
use crate::engine::config::DEFAULT_SITE;
use crate::engine::poller::Sequence;
use crate::time::ns;
use crate::wire::{Message, Pdu, Version, encode};

const UPS: &str = "192.168.61.250";

fn t(s: u64) -> Timestamp {
    Timestamp(ns::secs(1_000) + s * ns::SECOND)
}

/// The seed site with a write community, nvr-244 (tier 2) on outlet group 2 and
/// nvr-251 (tier 1) on group 1, and `extra` appended.
fn site(extra: &str) -> Site {
    let text = DEFAULT_SITE
        .replace(
            "restart = \"auto\"",
            "restart = \"auto\"\nwrite_community = \"private\"",
        )
        .replacen(
            "kind = \"trap-relay\"",
            "kind = \"trap-relay\"\noutlet = { ups = \"ups-main\", group = 2 }\nwol = \"00:11:22:33:44:55\"\nwol_to = \"192.0.2.255:9\"",
            1,
        )
        .replacen(
            "tier = 1\nshutdown_time = \"90s\"\nkind = \"trap-relay\"",
            "tier = 1\nshutdown_time = \"90s\"\nkind = \"trap-relay\"\noutlet = { ups = \"ups-main\", group = 1 }",
            1,
        )
        + extra;
    Site::parse(&text).expect("valid")
}

/// What came out: the sends (decoded), and the rest.
fn drain(p: &mut Power) -> (Vec<(SocketAddr, Vec<u8>)>, Vec<PowerOutput>) {
    let (mut sent, mut other) = (Vec::new(), Vec::new());
    while let Some(o) = p.poll_output() {
        match o {
            PowerOutput::Send { to, bytes, .. } => sent.push((to, p.wire(bytes).to_vec())),
            x => other.push(x),
        }
    }
    (sent, other)
}

/// The card's answer to `request`: its id, `community`, the names asked with `values`
/// (the request's own values for a SET), error-status `error`.
fn answer(request: &[u8], community: &[u8], values: &[i64], error: i32) -> Vec<u8> {
    answer_as(request, community, values, error, 0)
}

/// `answer`, its request id moved by `delta` (a forger's guess).
fn answer_as(request: &[u8], community: &[u8], values: &[i64], error: i32, delta: i32) -> Vec<u8> {
    let arena = Bump::new();
    let m = Message::parse(request, &arena).expect("our request");
    let Pdu::Request(q) = m.pdu else {
        panic!("a request")
    };
    let vbs: Vec<VarBind<'_>> = q
        .varbinds
        .iter()
        .enumerate()
        .map(|(k, vb)| VarBind {
            name: vb.name,
            value: values.get(k).map_or(vb.value, |v| Value::Integer(*v)),
        })
        .collect();
    let mut a = Message::pdu(
        Version::V1,
        community,
        PduType::RESPONSE,
        q.request_id.wrapping_add(delta),
        &vbs,
    );
    if let Pdu::Request(r) = &mut a.pdu {
        r.error_status = error;
        r.error_index = i32::from(error != 0);
    }
    encode::to_vec(&a)
}

/// (kind, OID, value) of each binding of a request.
fn asked(request: &[u8]) -> (PduType, Vec<(String, Option<i64>)>) {
    let arena = Bump::new();
    let m = Message::parse(request, &arena).expect("our request");
    assert_eq!(m.community, b"private");
    let Pdu::Request(q) = m.pdu else {
        panic!("a request")
    };
    (
        q.kind,
        q.varbinds
            .iter()
            .map(|vb| {
                (
                    vb.name.to_buf().to_string(),
                    match vb.value {
                        Value::Integer(i) => Some(i),
                        _ => None,
                    },
                )
            })
            .collect(),
    )
}

fn card() -> SocketAddr {
    SocketAddr::new(UPS.parse().unwrap(), 161)
}

fn powered(site: &Site) -> Power {
    Power::new(site, Box::new(Sequence(500)), false)
}

fn ninety(_: RecorderId) -> crate::engine::config::Secs {
    crate::engine::config::Secs(90)
}

#[test]
fn every_control_writes_what_its_mib_says_it_may() {
    for c in CONTROLS {
        for f in c.cut.iter().chain(c.on).chain(c.reboot) {
            for (obj, _, v) in f.sets {
                assert!(obj.writable, "{} is not writable", obj.name);
                if !obj.values.is_empty() {
                    assert!(obj.named(*v).is_some(), "{} has no value {v}", obj.name);
                }
                // Every OID encodes.
                let _ = obj.oid(7);
            }
        }
        if let Some(rb) = &c.readback {
            for v in rb.busy {
                assert!(
                    rb.object.named(*v).is_some(),
                    "{} has no value {v}",
                    rb.object.name
                );
            }
        }
    }
    // The forms that give the power back by themselves, by their MIB names.
    assert_eq!(
        tables::APC_GROUP_COMMAND.named(9),
        Some("upsOutletGroupImmediateRebootShutdown")
    );
    assert_eq!(
        tables::APC_REBOOT_SHUTDOWN_UPS.named(2),
        Some("rebootShutdownUps")
    );
    assert_eq!(tables::APC_RPDU2_COMMAND.named(1), Some("immediateOn"));
    assert_eq!(tables::APC_RPDU2_STATE.named(1), Some("off"));
    const { assert!(RFC1628_STARTUP_AFTER > RFC1628_SHUTDOWN_AFTER) };
}

#[test]
fn an_outlet_group_is_cut_once_its_recorders_have_had_their_shutdown_time_read_first() {
    let site = site("");
    let mut p = powered(&site);
    // nvr-244 (group 2) ordered at 10 s: due at 100 s; nvr-251's group waits for it.
    p.recorder_ordered(t(10), RecorderId(0), t(10), &ninety);
    // Announced at the next turn, after the orders have left.
    assert_eq!(drain(&mut p).1, []);
    assert_eq!(p.poll_timeout(), Some(t(10)));
    p.handle_timeout(t(10), &|_| false, &|_| true);
    let (_, said) = drain(&mut p);
    let g2 = p.outlet_named("ups-main/group 2").expect("group 2");
    assert_eq!(
        said,
        [PowerOutput::Committed {
            outlet: g2,
            at: t(100)
        }]
    );
    assert_eq!(p.poll_timeout(), Some(t(100)));
    p.handle_timeout(t(99), &|_| false, &|_| true);
    assert!(drain(&mut p).0.is_empty(), "not before its shutdown time");
    // At 100 s: the pending state is read first.
    p.handle_timeout(t(100), &|_| false, &|_| true);
    let (sent, _) = drain(&mut p);
    assert_eq!(sent.len(), 1);
    let (kind, vbs) = asked(&sent[0].1);
    assert_eq!(sent[0].0, card());
    assert_eq!(kind, PduType::GET_REQUEST);
    assert_eq!(vbs[0].0, "1.3.6.1.4.1.318.1.1.1.12.1.2.1.4.2");
    // Nothing pending: the SET, ImmediateRebootShutdown on group 2.
    let arena = Bump::new();
    p.handle_answer(
        t(100),
        card(),
        &answer(&sent[0].1, b"private", &[2], 0),
        &arena,
        &|_| true,
    )
    .expect("believed");
    let (sent, said) = drain(&mut p);
    let (kind, vbs) = asked(&sent[0].1);
    assert_eq!(kind, PduType::SET_REQUEST);
    assert_eq!(
        vbs,
        [("1.3.6.1.4.1.318.1.1.1.12.3.2.1.3.2".to_string(), Some(9))]
    );
    assert!(
        said.iter()
            .any(|o| matches!(o, PowerOutput::Read { busy: false, .. }))
    );
    assert!(said.iter().any(|o| matches!(
        o,
        PowerOutput::Commanded {
            form: "upsOutletGroupImmediateRebootShutdown",
            attempt: 1,
            dry_run: false,
            ..
        }
    )));
    // Taken; read back: pending.
    p.handle_answer(
        t(100),
        card(),
        &answer(&sent[0].1, b"private", &[], 0),
        &arena,
        &|_| true,
    )
    .expect("believed");
    let (sent, _) = drain(&mut p);
    assert_eq!(asked(&sent[0].1).0, PduType::GET_REQUEST);
    p.handle_answer(
        t(100),
        card(),
        &answer(&sent[0].1, b"private", &[1], 0),
        &arena,
        &|_| true,
    )
    .expect("believed");
    assert_eq!(p.stage(g2), Stage::Armed);
    // Group 1 (nvr-251) is untouched: its recorder runs.
    let g1 = p.outlet_named("ups-main/group 1").expect("group 1");
    assert_eq!(p.stage(g1), Stage::Idle);
}

#[test]
fn a_countdown_already_running_is_never_armed_again() {
    let site = site("");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    // A restart: the journal said it was committed; the card says a command is pending.
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(200), &|_| false, &|_| true);
    let (sent, _) = drain(&mut p);
    let arena = Bump::new();
    p.handle_answer(
        t(200),
        card(),
        &answer(&sent[0].1, b"private", &[1], 0),
        &arena,
        &|_| true,
    )
    .expect("believed");
    let (sent, said) = drain(&mut p);
    assert!(sent.is_empty(), "no SET over a running countdown");
    assert!(
        said.iter()
            .any(|o| matches!(o, PowerOutput::Read { busy: true, .. }))
    );
    assert_eq!(p.stage(g2), Stage::Armed);
}

#[test]
fn a_refused_form_is_followed_by_the_next_then_an_alert_and_forgeries_move_nothing() {
    let site = site("");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &|_| false, &|_| true);
    let (sent, _) = drain(&mut p);
    let arena = Bump::new();
    let ok = |sent: &[(SocketAddr, Vec<u8>)], values: &[i64], e: i32| {
        answer(&sent[0].1, b"private", values, e)
    };
    // Forged answers to the read: another port, another community, another id.
    let read = sent.clone();
    let other_port = SocketAddr::new(UPS.parse().unwrap(), 1161);
    assert!(
        p.handle_answer(t(100), other_port, &ok(&read, &[2], 0), &arena, &|_| true)
            .is_err()
    );
    assert_eq!(
        p.handle_answer(
            t(100),
            card(),
            &answer(&read[0].1, b"public", &[2], 0),
            &arena,
            &|_| true
        ),
        Err(crate::engine::trust::Refusal::AnswerWrongCommunity)
    );
    let wrong_id = answer_as(&read[0].1, b"private", &[2], 0, 1);
    assert_eq!(
        p.handle_answer(t(100), card(), &wrong_id, &arena, &|_| true),
        Err(crate::engine::trust::Refusal::AnswerUnknownRequest)
    );
    assert_eq!(p.stage(g2), Stage::Reading, "no forgery moved it");
    // The real read: nothing pending; the first form refused (noAccess), then the
    // second (notWritable): the outlet is left, with what to do.
    p.handle_answer(t(100), card(), &ok(&read, &[2], 0), &arena, &|_| true)
        .unwrap();
    let (sent, _) = drain(&mut p);
    p.handle_answer(t(101), card(), &ok(&sent, &[], 6), &arena, &|_| true)
        .unwrap();
    let (sent, said) = drain(&mut p);
    assert!(said.contains(&PowerOutput::Answered {
        outlet: g2,
        form: "upsOutletGroupImmediateRebootShutdown",
        status: 6
    }));
    assert_eq!(
        asked(&sent[0].1).1[0].1,
        Some(10),
        "DelayedRebootShutdown next"
    );
    p.handle_answer(t(102), card(), &ok(&sent, &[], 17), &arena, &|_| true)
        .unwrap();
    let (sent, said) = drain(&mut p);
    assert!(sent.is_empty());
    let why = said
        .iter()
        .find_map(|o| match o {
            PowerOutput::NotCut { why, .. } => Some(why.clone()),
            _ => None,
        })
        .expect("an alert");
    assert!(
        why.contains("refused every form") && why.contains("write access"),
        "{why}"
    );
    assert_eq!(p.stage(g2), Stage::NotCut);
    assert_eq!(p.refused, 2);
}

#[test]
fn an_unanswered_set_is_tried_again_then_the_next_form() {
    let site = site("");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &|_| false, &|_| true);
    // The read is unanswered: after three tries the SET goes all the same.
    for s in [102, 104, 106] {
        p.handle_timeout(t(s), &|_| false, &|_| true);
    }
    let (sent, _) = drain(&mut p);
    let kinds: Vec<PduType> = sent.iter().map(|(_, b)| asked(b).0).collect();
    assert_eq!(
        kinds,
        [
            PduType::GET_REQUEST,
            PduType::GET_REQUEST,
            PduType::GET_REQUEST,
            PduType::SET_REQUEST
        ]
    );
    // The SET unanswered three times: the next form.
    for s in [108, 110, 112] {
        p.handle_timeout(t(s), &|_| false, &|_| true);
    }
    let (sent, _) = drain(&mut p);
    let values: Vec<Option<i64>> = sent.iter().map(|(_, b)| asked(b).1[0].1).collect();
    assert_eq!(values, [Some(9), Some(9), Some(10)]);
}

#[test]
fn an_outlet_feeding_a_running_recorder_is_never_cut() {
    let site = site("");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &|r| r == RecorderId(0), &|_| true);
    let (sent, said) = drain(&mut p);
    assert!(sent.is_empty());
    assert!(matches!(said[..], [PowerOutput::NotCut { .. }]), "{said:?}");
    assert_eq!(p.stage(g2), Stage::NotCut);
}

#[test]
fn a_pdu_outlet_goes_off_then_on_once_mains_is_back() {
    let extra = "\n[[pdu]]\nname = \"pdu-a\"\naddress = \"192.0.2.40\"\nvendor = \"apc-rpdu2\"\nwrite_community = \"private\"\n\n\
                 [[recorder]]\nname = \"nas-9\"\naddress = \"192.0.2.9\"\nups = \"ups-main\"\ntier = 2\nshutdown_time = \"60s\"\n\
                 outlet = { pdu = \"pdu-a\", outlet = 7 }\n";
    let site = site(extra);
    let mut p = powered(&site);
    let o = p.outlet_named("pdu-a/outlet 7").expect("the PDU's outlet");
    let pdu: SocketAddr = "192.0.2.40:161".parse().unwrap();
    p.restore_committed(t(50), o, t(100));
    p.handle_timeout(t(100), &|_| false, &|_| true);
    let arena = Bump::new();
    let (sent, _) = drain(&mut p);
    assert_eq!(sent[0].0, pdu);
    // Read: on (2); the SET immediateOff (2); read back: off (1).
    p.handle_answer(
        t(100),
        pdu,
        &answer(&sent[0].1, b"private", &[2], 0),
        &arena,
        &|_| true,
    )
    .unwrap();
    let (sent, _) = drain(&mut p);
    assert_eq!(
        asked(&sent[0].1).1,
        [("1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.7".to_string(), Some(2))]
    );
    p.handle_answer(
        t(100),
        pdu,
        &answer(&sent[0].1, b"private", &[], 0),
        &arena,
        &|_| true,
    )
    .unwrap();
    let (sent, _) = drain(&mut p);
    p.handle_answer(
        t(100),
        pdu,
        &answer(&sent[0].1, b"private", &[1], 0),
        &arena,
        &|_| true,
    )
    .unwrap();
    assert_eq!(p.stage(o), Stage::Off);
    // Mains back: immediateOn (1).
    let standing = vec![Standing::Idle; 3];
    p.power_back(t(300), UpsId(0), &standing, &|_| UpsId(0));
    let (sent, _) = drain(&mut p);
    assert_eq!(asked(&sent[0].1).1[0].1, Some(1));
    p.handle_answer(
        t(300),
        pdu,
        &answer(&sent[0].1, b"private", &[], 0),
        &arena,
        &|_| true,
    )
    .unwrap();
    assert_eq!(p.stage(o), Stage::Done);
    // Due when mains is back already: off and on at once (immediateReboot).
    let mut p = powered(&site);
    p.restore_committed(t(50), o, t(100));
    p.handle_timeout(t(100), &|_| false, &|_| false);
    let (sent, _) = drain(&mut p);
    p.handle_answer(
        t(100),
        pdu,
        &answer(&sent[0].1, b"private", &[2], 0),
        &arena,
        &|_| false,
    )
    .unwrap();
    let (sent, _) = drain(&mut p);
    assert_eq!(asked(&sent[0].1).1[0].1, Some(3));
}

#[test]
fn recorders_with_wake_on_lan_are_woken_until_they_are_back() {
    let site = site("");
    let mut p = Power::new(&site, Box::new(Sequence(1)), true);
    // nvr-244's outlet group was cycled (a dry run's: armed at once).
    p.recorder_ordered(t(10), RecorderId(0), t(10), &ninety);
    p.handle_timeout(t(100), &|_| false, &|_| true);
    let _ = drain(&mut p);
    let mut standing = vec![Standing::Idle; 2];
    standing[0] = Standing::Returning {
        ordered: t(10),
        from: t(200),
        deadline: t(500),
    };
    p.power_back(t(200), UpsId(0), &standing, &|_| UpsId(0));
    let mut packets = Vec::new();
    for s in 200..=300 {
        p.handle_timeout(t(s), &|_| false, &|_| false);
        while let Some(o) = p.poll_output() {
            if let PowerOutput::Wake {
                recorder,
                attempt,
                to,
                bytes,
            } = o
            {
                packets.push((s, recorder, attempt, to, p.wire(bytes).to_vec()));
            }
        }
    }
    let when: Vec<u64> = packets.iter().map(|x| x.0).collect();
    // Down since 200 s; its outlet's cycle has 120 s first.
    assert!(when.is_empty(), "{when:?}");
    for s in 301..=500 {
        p.handle_timeout(t(s), &|_| false, &|_| false);
        while let Some(o) = p.poll_output() {
            if let PowerOutput::Wake {
                recorder,
                attempt,
                to,
                bytes,
            } = o
            {
                packets.push((s, recorder, attempt, to, p.wire(bytes).to_vec()));
            }
        }
    }
    let when: Vec<u64> = packets.iter().map(|x| x.0).collect();
    assert_eq!(when, [320, 330, 350, 390, 470], "spacing doubles");
    let (_, r, _, to, bytes) = &packets[0];
    assert_eq!(*r, RecorderId(0));
    assert_eq!(*to, "192.0.2.255:9".parse().unwrap());
    assert_eq!(bytes.len(), 102);
    assert_eq!(bytes[..6], [0xff; 6]);
    assert!(
        bytes[6..]
            .chunks(6)
            .all(|c| c == [0, 0x11, 0x22, 0x33, 0x44, 0x55])
    );
    // Heard from: no more.
    p.recorder_back(RecorderId(0));
    p.handle_timeout(t(700), &|_| false, &|_| false);
    assert!(p.poll_output().is_none());
    // An outlet not cut (the card refused): woken as soon as it is down.
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_not_cut(g2);
    p.power_back(t(200), UpsId(0), &standing, &|_| UpsId(0));
    p.handle_timeout(t(200), &|_| false, &|_| false);
    assert!(matches!(
        drain(&mut p).1[..],
        [PowerOutput::Wake { attempt: 1, .. }]
    ));
}

#[test]
fn a_dry_run_records_the_set_and_sends_nothing() {
    let site = site("");
    let mut p = Power::new(&site, Box::new(Sequence(1)), true);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &|_| false, &|_| true);
    let (sent, said) = drain(&mut p);
    assert!(sent.is_empty(), "{sent:?}");
    assert!(
        said.iter()
            .any(|o| matches!(o, PowerOutput::Commanded { dry_run: true, .. })),
        "{said:?}"
    );
    assert_eq!(p.stage(g2), Stage::Armed);
}

#[test]
fn an_outlet_cycled_in_one_outage_is_cycled_again_in_the_next() {
    let site = site("");
    let mut p = Power::new(&site, Box::new(Sequence(1)), true);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.recorder_ordered(t(10), RecorderId(0), t(10), &ninety);
    p.handle_timeout(t(100), &|_| false, &|_| true);
    assert_eq!(p.stage(g2), Stage::Armed);
    let _ = drain(&mut p);
    // The next outage, an hour on.
    p.recorder_ordered(t(3_600), RecorderId(0), t(3_600), &ninety);
    p.handle_timeout(t(3_600), &|_| false, &|_| true);
    let (_, said) = drain(&mut p);
    assert_eq!(
        said,
        [PowerOutput::Committed {
            outlet: g2,
            at: t(3_690)
        }]
    );
}

#[test]
fn a_whole_output_waits_for_every_recorder_its_ups_alone_feeds() {
    let text_site = site("").text.to_string().replace(
        "outlet = { ups = \"ups-main\", group = 1 }",
        "outlet = { ups = \"ups-main\" }",
    );
    let site = Site::parse(&text_site.replace("(not journaled)", "private")).expect("valid");
    let mut p = Power::new(&site, Box::new(Sequence(1)), true);
    let out = p.outlet_named("ups-main").expect("the whole output");
    assert_eq!(p.members(out), [RecorderId(0), RecorderId(1)]);
    // nvr-244 (on group 2, fed by this UPS alone) is down: not yet.
    p.recorder_ordered(t(10), RecorderId(0), t(10), &ninety);
    assert_eq!(p.stage(out), Stage::Idle);
    p.recorder_ordered(t(200), RecorderId(1), t(200), &ninety);
    assert_eq!(p.stage(out), Stage::Due { at: t(290) });
}

#[test]
fn a_journal_with_the_orders_but_not_the_commitment_commits_on_resume() {
    // The gateway stopped between nvr-244's order (journaled) and its outlet's
    // CycleOutlet (the next turn's): read back, the outlet is committed all the same.
    let site = site("");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").expect("group 2");
    p.restore_ordered(RecorderId(0), t(10));
    assert_eq!(p.stage(g2), Stage::Idle);
    p.recommit(t(20), &ninety);
    p.handle_timeout(t(20), &|_| false, &|_| true);
    let (_, said) = drain(&mut p);
    assert_eq!(
        said,
        [PowerOutput::Committed {
            outlet: g2,
            at: t(100)
        }]
    );
    // Group 1's recorder was never ordered: nothing.
    let g1 = p.outlet_named("ups-main/group 1").expect("group 1");
    assert_eq!(p.stage(g1), Stage::Idle);
}
