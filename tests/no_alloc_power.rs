//! Cycling an outlet allocates nothing per request or answer in the power machine:
//! after a warm-up, each cycle (its recorders ordered, the read before write, the SET,
//! the read-back, each answered by a card as a capture holds it) makes no call to the
//! global allocator. The records the station makes of them (a line each in the journal)
//! are the only allocations, a few per outlet and outage, as decisions are.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bumpalo::Bump;
use trapgate::engine::config::Site;
use trapgate::engine::id::{RecorderId, UpsId};
use trapgate::engine::poller::Sequence;
use trapgate::engine::power::card::Card;
use trapgate::engine::power::{Power, PowerOutput};
use trapgate::time::{Timestamp, ns};
use trapgate::wire::{Message, Pdu, PduType, Value, VarBind, encode};

mod counting;
use counting::ALLOCATIONS;

/// 500 outlets of an APC outlet-group UPS… a UPS has 64 groups at most: 50 UPSes of
/// 10 groups, a recorder on each.
fn site() -> Site {
    let mut t = String::from(
        "[policy]\ngrace = { 1 = \"10m\" }\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\nconfirm_by_poll = false\n\n",
    );
    for u in 0..50 {
        t += &format!(
            "[[ups]]\nname = \"ups-{u}\"\naddress = \"127.20.0.{}\"\nvendor = \"apc\"\noutlet_off_delay = \"5m\"\nwrite_community = \"private\"\n\n",
            u + 1
        );
        for g in 1..=10 {
            t += &format!(
                "[[recorder]]\nname = \"nvr-{u}-{g}\"\naddress = \"127.21.{u}.{g}\"\nups = \"ups-{u}\"\ntier = 1\nshutdown_time = \"0s\"\noutlet = {{ ups = \"ups-{u}\", group = {g} }}\n\n"
            );
        }
    }
    Site::parse(&t).expect("the site")
}

/// The card's answer to `request`: its bindings echoed, a get answered `value`.
fn answer(request: &[u8], value: i64, out: &mut Vec<u8>) {
    let arena = Bump::new();
    let m = Message::parse(request, &arena).expect("trapgate's request");
    let Pdu::Request(q) = m.pdu else {
        panic!("a request")
    };
    let vb = q.varbinds[0];
    let vbs = [VarBind {
        name: vb.name,
        value: match q.kind {
            PduType::SET_REQUEST => vb.value,
            _ => Value::Integer(value),
        },
    }];
    out.clear();
    encode::encode(
        &Message::pdu(
            m.version,
            m.community,
            PduType::RESPONSE,
            q.request_id,
            &vbs,
        ),
        out,
    );
}

#[test]
fn ordering_reading_setting_and_reading_back_500_outlets_allocate_nothing() {
    let site = site();
    let recorders = site.recorders.len();
    let mut power = Power::new(&site, Box::new(Sequence(1)), false);
    // On battery, nobody running.
    let facts = (|_: UpsId| true, |_: RecorderId| false);
    let shutdown = |_: RecorderId| trapgate::engine::config::Secs(0);
    let arena = Bump::with_capacity(64 * 1024);
    let mut arena = arena;
    // What went out, copied by the test (its own allocations are outside the counts).
    let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(1024);
    let mut answers: Vec<(SocketAddr, Vec<u8>)> = (0..1024)
        .map(|_| {
            (
                "127.0.0.1:1".parse().expect("addr"),
                Vec::with_capacity(256),
            )
        })
        .collect();
    let (mut cycles, mut counted, mut sets) = (0u64, 0usize, 0u64);
    let mut by_pass = Vec::with_capacity(64);
    let mut t = 1_000u32;
    for pass in 0..30 {
        let measured = pass >= 10;
        t += 600;
        let now = Timestamp(ns::secs(t));
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for r in 0..recorders {
            power.recorder_ordered(now, RecorderId::new(r), now, &shutdown);
        }
        power.handle_timeout(now, &facts);
        let mut outside = 0;
        // Three rounds: the read, the SET, the read-back; each answered in turn.
        for round in 0..3 {
            let mut n = 0;
            while let Some(o) = power.poll_output() {
                if let PowerOutput::Send { to, bytes, .. } = o {
                    let a = ALLOCATIONS.load(Ordering::SeqCst);
                    if n < sent.len() {
                        sent[n].0 = to;
                        sent[n].1.clear();
                        sent[n].1.extend_from_slice(power.wire(bytes));
                    } else {
                        sent.push((to, power.wire(bytes).to_vec()));
                    }
                    outside += ALLOCATIONS.load(Ordering::SeqCst) - a;
                    n += 1;
                }
            }
            assert_eq!(n, 500, "pass {pass} round {round}: every outlet asked");
            let a = ALLOCATIONS.load(Ordering::SeqCst);
            for k in 0..n {
                // Not pending before the SET; pending after it.
                answers[k].0 = sent[k].0;
                answer(
                    &sent[k].1,
                    if round == 0 { 2 } else { 1 },
                    &mut answers[k].1,
                );
            }
            outside += ALLOCATIONS.load(Ordering::SeqCst) - a;
            for (from, bytes) in &answers[..n] {
                arena.reset();
                let id = Card::id_of(bytes, &arena).expect("an id");
                power
                    .handle_answer(now, *from, id, bytes, &arena, &facts)
                    .expect("the card's answer");
            }
            if round == 1 {
                sets += n as u64;
            }
        }
        while power.poll_output().is_some() {}
        let made = ALLOCATIONS.load(Ordering::SeqCst) - before - outside;
        if measured {
            counted += made;
            cycles += 1;
            if made > 0 {
                by_pass.push((pass, made));
            }
        }
    }
    assert_eq!(power.sets, 30 * 500);
    assert_eq!(
        counted, 0,
        "{counted} allocations in {cycles} cycles of 500 outlets ({sets} SETs): {by_pass:?}"
    );
}
