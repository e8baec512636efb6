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
    // In the request's version, as an agent answers.
    let a = Message::pdu(
        m.version,
        community,
        PduType::RESPONSE,
        q.request_id.wrapping_add(delta),
        &vbs,
    )
    .with_error(error, i32::from(error != 0));
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

/// Answers go in as the station hands them: with their request id read first.
impl Power {
    fn take(
        &mut self,
        now: Timestamp,
        from: SocketAddr,
        raw: &[u8],
        arena: &Bump,
        on_battery: &dyn Fn(UpsId) -> bool,
    ) -> Result<OutletId, crate::engine::trust::Refusal> {
        let id = card::Card::id_of(raw, arena).unwrap_or(0);
        self.handle_answer(now, from, id, raw, arena, &(on_battery, |_| false))
    }

    /// The card's answer to `request` with no error, `values` in its bindings, at
    /// `at` s: believed.
    fn answered_ok(&mut self, at: u64, request: &[u8], values: &[i64]) {
        self.take(
            t(at),
            card(),
            &answer(request, b"private", values, 0),
            &Bump::new(),
            &|_| true,
        )
        .expect("believed");
    }

    /// The same, with recorder 0 (nvr-244) running: heard from since it was ordered.
    fn take_while_running(
        &mut self,
        now: Timestamp,
        raw: &[u8],
    ) -> Result<OutletId, crate::engine::trust::Refusal> {
        let arena = Bump::new();
        let id = card::Card::id_of(raw, &arena).unwrap_or(0);
        let running = |r: RecorderId| r == RecorderId(0);
        self.handle_answer(now, card(), id, raw, &arena, &(|_| true, running))
    }
}

/// The request id of one of trapgate's v1 requests.
fn asked_id(request: &[u8]) -> i32 {
    let arena = Bump::new();
    card::Card::id_of(request, &arena).expect("a request id")
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
    p.handle_timeout(t(10), &(|_| true, |_| false));
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
    p.handle_timeout(t(99), &(|_| true, |_| false));
    assert!(drain(&mut p).0.is_empty(), "not before its shutdown time");
    // At 100 s: the pending state is read first.
    p.handle_timeout(t(100), &(|_| true, |_| false));
    let (sent, _) = drain(&mut p);
    assert_eq!(sent.len(), 1);
    let (kind, vbs) = asked(&sent[0].1);
    assert_eq!(sent[0].0, card());
    assert_eq!(kind, PduType::GET_REQUEST);
    assert_eq!(vbs[0].0, "1.3.6.1.4.1.318.1.1.1.12.1.2.1.4.2");
    // Nothing pending: the SET, ImmediateRebootShutdown on group 2.
    p.answered_ok(100, &sent[0].1, &[2]);
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
    p.answered_ok(100, &sent[0].1, &[]);
    let (sent, _) = drain(&mut p);
    assert_eq!(asked(&sent[0].1).0, PduType::GET_REQUEST);
    p.answered_ok(100, &sent[0].1, &[1]);
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
    p.handle_timeout(t(200), &(|_| true, |_| false));
    let (sent, _) = drain(&mut p);
    p.answered_ok(200, &sent[0].1, &[1]);
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
    p.handle_timeout(t(100), &(|_| true, |_| false));
    let (sent, _) = drain(&mut p);
    let arena = Bump::new();
    let ok = |sent: &[(SocketAddr, Vec<u8>)], values: &[i64], e: i32| {
        answer(&sent[0].1, b"private", values, e)
    };
    // Forged answers to the read: another port, another community, another id.
    let read = sent.clone();
    let other_port = SocketAddr::new(UPS.parse().unwrap(), 1161);
    assert!(
        p.take(t(100), other_port, &ok(&read, &[2], 0), &arena, &|_| true)
            .is_err()
    );
    assert_eq!(
        p.take(
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
        p.take(t(100), card(), &wrong_id, &arena, &|_| true),
        Err(crate::engine::trust::Refusal::AnswerUnknownRequest)
    );
    assert_eq!(p.stage(g2), Stage::Reading, "no forgery moved it");
    // The real read: nothing pending; the first form refused (noAccess) three times,
    // sent again 2 s, then 4 s after each refusal under a new id; then the second
    // (notWritable), the same: the outlet is left, with what to do.
    p.take(t(100), card(), &ok(&read, &[2], 0), &arena, &|_| true)
        .unwrap();
    let (mut sent, mut said) = drain(&mut p);
    let mut at = 100;
    let mut ids = Vec::new();
    for (value, status) in [(9, 6), (9, 6), (9, 6), (10, 17), (10, 17), (10, 17)] {
        assert_eq!(kinds(&sent), [format!("S{value}")], "at {at} s");
        ids.push(asked_id(&sent[0].1));
        p.take(t(at), card(), &ok(&sent, &[], status), &arena, &|_| true)
            .unwrap();
        (sent, said) = drain(&mut p);
        assert!(said.contains(&PowerOutput::Answered {
            outlet: g2,
            form: if value == 9 {
                "upsOutletGroupImmediateRebootShutdown"
            } else {
                "upsOutletGroupDelayedRebootShutdown"
            },
            status
        }));
        if sent.is_empty() && p.stage(g2) != Stage::NotCut {
            // Held for its back-off: nothing before it, the same SET after it.
            let wait = p.poll_timeout().expect("a retry due").0 - t(at).0;
            assert!(wait == 2_000_000_000 || wait == 4_000_000_000, "{wait}");
            p.handle_timeout(t(at + 1), &(|_| true, |_| false));
            assert!(drain(&mut p).0.is_empty(), "not before its back-off");
            at += wait / 1_000_000_000;
            p.handle_timeout(t(at), &(|_| true, |_| false));
            (sent, _) = drain(&mut p);
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each SET under a new request id");
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
    assert_eq!(p.refused, 6);
}

/// What went out, as (kind, first binding's value): `G` a get, `S(v)` a SET of v.
fn kinds(sent: &[(SocketAddr, Vec<u8>)]) -> Vec<String> {
    sent.iter()
        .map(|(_, b)| match asked(b) {
            (PduType::SET_REQUEST, vbs) => format!("S{}", vbs[0].1.unwrap_or(0)),
            _ => "G".to_string(),
        })
        .collect()
}

#[test]
fn an_unanswered_set_is_read_before_it_goes_again_then_the_next_form() {
    let site = site("");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &(|_| true, |_| false));
    // The read is unanswered: after three tries the SET goes all the same.
    for s in [102, 104, 106] {
        p.handle_timeout(t(s), &(|_| true, |_| false));
    }
    assert_eq!(kinds(&drain(&mut p).0), ["G", "G", "G", "S9"]);
    // The SET unanswered: the card is read (three tries) before anything is written
    // again; silent, the form counts as refused and the next one goes.
    for s in [108, 110, 112, 114] {
        p.handle_timeout(t(s), &(|_| true, |_| false));
    }
    let (sent, said) = drain(&mut p);
    assert_eq!(kinds(&sent), ["G", "G", "G", "S10"]);
    assert!(said.contains(&PowerOutput::Answered {
        outlet: g2,
        form: "upsOutletGroupImmediateRebootShutdown",
        status: -1
    }));
    assert_eq!(p.refused, 1);
}

type Sent = Vec<(SocketAddr, Vec<u8>)>;

/// Group 2 committed and due at 100 s, read as on, its SET sent and its answer lost: the
/// read that confirms it goes at 102 s. Returns the SET and that read.
fn a_set_unanswered(site: &Site) -> (Power, OutletId, Sent, Sent) {
    let mut p = powered(site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &(|_| true, |_| false));
    let (read, _) = drain(&mut p);
    p.answered_ok(100, &read[0].1, &[2]);
    let (set, _) = drain(&mut p);
    p.handle_timeout(t(102), &(|_| true, |_| false));
    let (confirm, _) = drain(&mut p);
    (p, g2, set, confirm)
}

#[test]
fn a_set_whose_answer_is_lost_is_not_sent_again_when_the_card_took_it() {
    let site = site("");
    let arena = Bump::new();
    let (mut p, g2, set, confirm) = a_set_unanswered(&site);
    assert_eq!(kinds(&set), ["S9"]);
    // Its answer is lost; the read that follows finds the command pending: armed, and
    // no second SET, whatever answer comes late.
    assert_eq!(kinds(&confirm), ["G"]);
    assert!(matches!(
        p.stage(g2),
        Stage::Confirming { form: 0, tries: 1 }
    ));
    p.answered_ok(102, &confirm[0].1, &[1]);
    assert_eq!(p.stage(g2), Stage::Armed);
    assert_eq!(
        p.take(
            t(103),
            card(),
            &answer(&set[0].1, b"private", &[], 0),
            &arena,
            &|_| true
        ),
        Err(crate::engine::trust::Refusal::AnswerUnknownRequest),
        "the late answer to the SET moves nothing"
    );
    for s in [104, 110, 200] {
        p.handle_timeout(t(s), &(|_| true, |_| false));
    }
    assert!(drain(&mut p).0.is_empty(), "nothing written again");
    assert_eq!(p.sets, 1);
    assert_eq!(p.refused, 0);

    // The same with a card that had not taken it: the SET goes again, under a new id.
    let (mut p, g2, set, confirm) = a_set_unanswered(&site);
    p.answered_ok(102, &confirm[0].1, &[2]);
    assert!(drain(&mut p).0.is_empty(), "held for its back-off (2 s)");
    p.handle_timeout(t(104), &(|_| true, |_| false));
    let (again, said) = drain(&mut p);
    assert_eq!(kinds(&again), ["S9"]);
    assert!(
        said.iter()
            .any(|o| matches!(o, PowerOutput::Commanded { attempt: 2, .. }))
    );
    assert_ne!(
        asked_id(&again[0].1),
        asked_id(&set[0].1),
        "a new request id"
    );
    // The first SET's answer, come late and repeated, is refused; the second's counts,
    // once: a repeat of it is refused too.
    assert!(
        p.take(
            t(103),
            card(),
            &answer(&set[0].1, b"private", &[], 0),
            &arena,
            &|_| true
        )
        .is_err()
    );
    let second = answer(&again[0].1, b"private", &[], 0);
    p.take(t(103), card(), &second, &arena, &|_| true)
        .expect("the second SET's answer");
    assert_eq!(
        p.take(t(103), card(), &second, &arena, &|_| true),
        Err(crate::engine::trust::Refusal::AnswerUnknownRequest)
    );
    assert!(matches!(p.stage(g2), Stage::Checking { .. }));
    assert_eq!(p.sets, 2);
}

#[test]
fn an_outlet_feeding_a_running_recorder_is_never_cut() {
    let site = site("");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &(|_| true, |r| r == RecorderId(0)));
    let (sent, said) = drain(&mut p);
    assert!(sent.is_empty());
    assert!(
        matches!(&said[..], [PowerOutput::NotCut { why, .. }] if why.contains("recorder nvr-244 on it is running")),
        "{said:?}"
    );
    assert_eq!(p.stage(g2), Stage::NotCut);

    // Heard from while the card is read, after the cut fell due: no SET either.
    let mut p = powered(&site);
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &(|_| true, |_| false));
    let (read, _) = drain(&mut p);
    assert_eq!(kinds(&read), ["G"]);
    p.take_while_running(t(101), &answer(&read[0].1, b"private", &[2], 0))
        .expect("the read");
    let (sent, said) = drain(&mut p);
    assert!(sent.is_empty(), "a SET went: {:?}", kinds(&sent));
    assert!(said.iter().any(|o| matches!(o, PowerOutput::NotCut { .. })));
    assert_eq!(p.stage(g2), Stage::NotCut);
    assert_eq!(p.sets, 0);

    // And before a SET whose answer was lost goes again.
    let (mut p, g2, _, confirm) = a_set_unanswered(&site);
    p.take_while_running(t(102), &answer(&confirm[0].1, b"private", &[2], 0))
        .expect("the confirming read");
    assert!(drain(&mut p).0.is_empty(), "no second SET");
    assert_eq!(p.stage(g2), Stage::NotCut);
    assert_eq!(p.sets, 1);
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
    p.handle_timeout(t(100), &(|_| true, |_| false));
    let arena = Bump::new();
    let (sent, _) = drain(&mut p);
    assert_eq!(sent[0].0, pdu);
    // Read: on (2); the SET immediateOff (2); read back: off (1).
    p.take(
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
    p.take(
        t(100),
        pdu,
        &answer(&sent[0].1, b"private", &[], 0),
        &arena,
        &|_| true,
    )
    .unwrap();
    let (sent, _) = drain(&mut p);
    p.take(
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
    p.take(
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
    p.handle_timeout(t(100), &(|_| false, |_| false));
    let (sent, _) = drain(&mut p);
    p.take(
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
    p.handle_timeout(t(100), &(|_| true, |_| false));
    let _ = drain(&mut p);
    let mut standing = vec![Standing::Idle; 2];
    standing[0] = Standing::Returning {
        ordered: t(10),
        from: t(200),
        deadline: t(500),
    };
    p.power_back(t(200), UpsId(0), &standing, &|_| UpsId(0));
    type Packet = (u64, RecorderId, u32, SocketAddr, Vec<u8>);
    // The magic packets of every second in `seconds`.
    fn wakes(p: &mut Power, packets: &mut Vec<Packet>, seconds: std::ops::RangeInclusive<u64>) {
        for s in seconds {
            p.handle_timeout(t(s), &(|_| false, |_| false));
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
    }
    let mut packets = Vec::new();
    wakes(&mut p, &mut packets, 200..=300);
    let when: Vec<u64> = packets.iter().map(|x| x.0).collect();
    // Down since 200 s; its outlet's cycle has 120 s first.
    assert!(when.is_empty(), "{when:?}");
    wakes(&mut p, &mut packets, 301..=500);
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
    p.handle_timeout(t(700), &(|_| false, |_| false));
    assert!(p.poll_output().is_none());
    // An outlet not cut (the card refused): woken as soon as it is down.
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_not_cut(g2);
    p.power_back(t(200), UpsId(0), &standing, &|_| UpsId(0));
    p.handle_timeout(t(200), &(|_| false, |_| false));
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
    p.handle_timeout(t(100), &(|_| true, |_| false));
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
    p.handle_timeout(t(100), &(|_| true, |_| false));
    assert_eq!(p.stage(g2), Stage::Armed);
    let _ = drain(&mut p);
    // The next outage, an hour on.
    p.recorder_ordered(t(3_600), RecorderId(0), t(3_600), &ninety);
    p.handle_timeout(t(3_600), &(|_| true, |_| false));
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
    // Cut (a dry run takes the SET as taken): the UPS announcing its own shutdown is
    // recorded as trapgate's.
    p.handle_timeout(t(290), &(|_| true, |_| false));
    assert_eq!(p.stage(out), Stage::Armed);
    let _ = drain(&mut p);
    use crate::classify::Event;
    assert!(p.card_reported(
        t(300),
        UpsId(0),
        None,
        Event::ShutdownPending,
        "gracefulShutdown"
    ));
    assert!(matches!(
        &drain(&mut p).1[..],
        [PowerOutput::Reported { outlet, ours: true, stage: Stage::Armed, .. }] if *outlet == out
    ));
    // Its output on again (APC upsTurnedOn): the cycle is done.
    assert!(p.card_reported(t(302), UpsId(0), None, Event::OutletOn, "upsTurnedOn"));
    assert_eq!(p.stage(out), Stage::Done);
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
    p.handle_timeout(t(20), &(|_| true, |_| false));
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

#[test]
fn the_cards_own_outlet_traps_are_recorded_and_end_a_cycle_but_decide_no_cut() {
    use crate::classify::Event;
    let site = site("");
    let (mut p, g2, _, confirm) = a_set_unanswered(&site);
    let g1 = p.outlet_named("ups-main/group 1").unwrap();
    let report = |p: &mut Power, s, group, event| {
        p.card_reported(
            t(s),
            UpsId(0),
            Some(group),
            event,
            "upsOutletGroupTurnedOff",
        )
    };
    let off = |p: &mut Power, s, group| report(p, s, group, Event::OutletOff);
    // Group 2's SET out (its answer lost): the card's word is recorded, the read decides.
    assert!(off(&mut p, 300, 2));
    let said = drain(&mut p).1;
    assert!(
        matches!(&said[..], [PowerOutput::Reported { outlet, ours: true, untold, stage: Stage::Confirming { .. }, .. }] if *outlet == g2 && untold.is_empty()),
        "{said:?}"
    );
    p.take(
        t(102),
        card(),
        &answer(&confirm[0].1, b"private", &[1], 0),
        &Bump::new(),
        &|_| true,
    )
    .expect("the confirming read");
    assert_eq!(p.stage(g2), Stage::Armed);
    let _ = drain(&mut p);
    // The same report again (a card repeating its trap, a flood of forgeries with its
    // community): nothing more recorded.
    assert!(!off(&mut p, 300, 2));
    assert!(!off(&mut p, 305, 2));
    assert!(drain(&mut p).1.is_empty());
    // The group on again: its cycle is done.
    assert!(report(&mut p, 302, 2, Event::OutletOn));
    let said = drain(&mut p).1;
    assert!(
        matches!(
            &said[..],
            [PowerOutput::Reported {
                ours: true,
                stage: Stage::Done,
                ..
            }]
        ),
        "{said:?}"
    );
    assert_eq!(p.stage(g2), Stage::Done);
    // Group 1 turned off by the card itself, nvr-251 on it never told: said.
    assert!(off(&mut p, 300, 1));
    let said = drain(&mut p).1;
    assert!(
        matches!(&said[..], [PowerOutput::Reported { outlet, ours: false, untold, .. }] if *outlet == g1 && untold == &[RecorderId(1)]),
        "{said:?}"
    );
    assert_eq!(
        p.stage(g1),
        Stage::Idle,
        "a trap cuts nothing of trapgate's"
    );
    // Told at 250 s with 90 s to shut down (its group committed: a new cycle, the
    // last report forgotten): cut by the card at 300 s, too early, said; on again,
    // then off at 400 s, after its shutdown time: not said.
    p.recorder_ordered(t(250), RecorderId(1), t(250), &ninety);
    let _ = drain(&mut p);
    assert!(off(&mut p, 300, 1));
    assert!(
        matches!(&drain(&mut p).1[..], [PowerOutput::Reported { untold, early, .. }] if untold.is_empty() && early == &[RecorderId(1)])
    );
    assert!(report(&mut p, 350, 1, Event::OutletOn));
    let _ = drain(&mut p);
    assert!(off(&mut p, 400, 1));
    assert!(
        matches!(&drain(&mut p).1[..], [PowerOutput::Reported { untold, early, .. }] if untold.is_empty() && early.is_empty())
    );
    // A group trapgate has no recorder on, an output report of a UPS it does not cut,
    // a report without its group: none of trapgate's outlets.
    assert!(!off(&mut p, 500, 3));
    assert!(!p.card_reported(
        t(300),
        UpsId(0),
        None,
        Event::OutletOff,
        "upsOutletGroupTurnedOff"
    ));
    assert!(!p.card_reported(
        t(300),
        UpsId(0),
        None,
        Event::ShutdownPending,
        "gracefulShutdown"
    ));
    assert!(drain(&mut p).1.is_empty());
}

#[test]
fn a_write_community_of_version_2c_is_asked_and_answered_in_v2c_only() {
    let v2c = DEFAULT_SITE.replace(
        "restart = \"auto\"",
        "restart = \"auto\"\nwrite_community = \"private\"\nwrite_version = \"2c\"",
    ) + "";
    let site = Site::parse(&v2c.replacen(
        "kind = \"trap-relay\"",
        "kind = \"trap-relay\"\noutlet = { ups = \"ups-main\", group = 2 }",
        1,
    ))
    .expect("valid");
    let mut p = powered(&site);
    let g2 = p.outlet_named("ups-main/group 2").unwrap();
    p.restore_committed(t(50), g2, t(100));
    p.handle_timeout(t(100), &(|_| true, |_| false));
    let (read, _) = drain(&mut p);
    let arena = Bump::new();
    let m = Message::parse(&read[0].1, &arena).expect("our request");
    assert_eq!((m.version, m.community), (Version::V2c, &b"private"[..]));
    // The same answer in SNMPv1: not the answer to a v2c request.
    let Pdu::Request(q) = m.pdu else {
        panic!("a request")
    };
    let vbs = [VarBind {
        name: q.varbinds[0].name,
        value: Value::Integer(2),
    }];
    let v1 = encode::to_vec(&Message::pdu(
        Version::V1,
        b"private",
        PduType::RESPONSE,
        q.request_id,
        &vbs,
    ));
    assert_eq!(
        p.take(t(100), card(), &v1, &arena, &|_| true),
        Err(crate::engine::trust::Refusal::WrongVersion)
    );
    assert_eq!(p.stage(g2), Stage::Reading);
    p.answered_ok(100, &read[0].1, &[2]);
    let (set, _) = drain(&mut p);
    let m = Message::parse(&set[0].1, &arena).expect("our SET");
    assert_eq!(
        (m.version, m.pdu_type()),
        (Version::V2c, PduType::SET_REQUEST)
    );
}
