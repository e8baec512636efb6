//! The hot path allocates nothing per packet: after a warm-up, decoding, classifying,
//! checking (the trust layer: who the source is, its community; refusals counted) and
//! deciding in the station (the policy, the ledger, the virtual UPS, the order encoder,
//! settled as a driver that sends at once would) on a corpus of v1 and v2c traps (and
//! malformed packets) with the arena reset per batch makes no call to the global
//! allocator; nor does the receive worker's trap-port machine (`engine::ingress`), nor
//! recording a latency. A counting allocator proves it.

use bumpalo::Bump;
use trapgate::classify::{Classifier, Event};
use trapgate::engine::config::Site;
use trapgate::engine::pipeline::{Outcome, Pipeline};
use trapgate::engine::poller::Sequence;
use trapgate::engine::station::{Happened, Notification, Options, Relays, Station};
use trapgate::engine::trust::{Refusals, Says, Trust};
use trapgate::time::Timestamp;
use trapgate::wire::frame::udp_datagram;

mod counting;

#[test]
fn decode_classify_check_and_decide_in_the_station_allocate_nothing_per_packet() {
    let frames = counting::corpus_frames();
    assert!(frames.len() > 60);
    let mut pipeline = Pipeline::new(Classifier::builtin(), &[]);
    let mut arena = Bump::with_capacity(64 * 1024);
    // The station of the seed's site; the traps of its UPS (192.168.61.250) go in.
    let site = Site::default_site();
    let trust = Trust::new(&site);
    let relays: Relays = site
        .recorders
        .iter()
        .map(|r| ((r.address, r.port).into(), [192, 168, 61, 1]))
        .collect();
    let mut station = Station::new(
        site,
        Options::default(),
        relays,
        Box::new(Sequence(1)),
        Timestamp(0),
    );
    let mut refused = Refusals::default();
    let (mut decoded, mut decided) = (0u64, 0u64);
    let (records, sent) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    let mut now = 0u64;
    let mut settled = |h: Happened<'_>| match h {
        Happened::Record(..) => records.set(records.get() + 1),
        Happened::Sent { .. } | Happened::Command { .. } => sent.set(sent.get() + 1),
    };
    let mut run = |arena: &mut Bump, pipeline: &mut Pipeline, station: &mut Station| {
        // One batch = the whole corpus; the arena is reset between batches.
        arena.reset();
        for (link, data) in &frames {
            if let Ok(d) = udp_datagram(*link, data)
                && let Outcome::Message(d, m, Some(c)) =
                    pipeline.process_datagram(d, arena, Timestamp(now))
            {
                decoded += 1;
                // The UPS's own traps during an outage, a second apart, timers firing: after
                // the first passes everything is decided and the repeats move nothing. (A
                // decision — an order, an alert, a refusal summary — allocates its record:
                // a few per outage, not per packet. Power coming back starts a new story.)
                let repeat = !matches!(
                    c.event,
                    Event::CommunicationLost
                        | Event::CommunicationRestored
                        | Event::PowerRestored
                        | Event::BatteryRestored
                );
                let Some(who) = trust.who(d.src) else {
                    continue;
                };
                match trust.at_trap_port(who, &m, Some(c.event)).says {
                    Says::Event(who, event) if repeat => {
                        now += 1_000_000_000;
                        station.run_to(Timestamp(now), &mut settled);
                        let rule = pipeline.classifier().rule_name(c);
                        let n = Notification {
                            who,
                            source: d.src,
                            community: m.community,
                            v3: None,
                            event,
                            rule: &rule,
                            index: c.index,
                        };
                        station.handle_notification(Timestamp(now), &n);
                        station.settle(&mut settled);
                        decided += 1;
                    }
                    Says::Refused(why, _) => refused.add(why),
                    _ => {}
                }
            }
        }
    };
    // Warm-up: the arena reaches its working size, and the UPS's outage has played out
    // (its decisions, orders, re-sends until the outlets go off 3 min later, and their
    // records, are made once each, not per packet); the polls go on meanwhile.
    for _ in 0..20 {
        run(&mut arena, &mut pipeline, &mut station);
    }
    let warm = (records.get(), sent.get());
    let before = counting::allocations_here();
    for _ in 0..100 {
        run(&mut arena, &mut pipeline, &mut station);
    }
    let after = counting::allocations_here();
    assert!(decoded > 120 * 40, "{decoded} notifications classified");
    assert!(decided > 120 * 13, "{decided} notifications decided on");
    assert!(refused.total() > 100, "{} refused", refused.total());
    assert!(
        warm.0 > 5 && warm.1 > 0,
        "the outage was decided and told: {warm:?}"
    );
    assert_eq!(
        after - before,
        0,
        "allocations during {} packets ({} records, {} sent after the warm-up)",
        100 * frames.len(),
        records.get() - warm.0,
        sent.get() - warm.1
    );
}

/// The latencies the workers and the decision thread record per packet: into their
/// preallocated histograms, of every event kind for the first time too, no allocation.
#[test]
fn recording_a_latency_on_the_hot_path_allocates_nothing() {
    let mut latency = trapgate::engine::metrics::Latency::preallocated();
    let before = counting::allocations_here();
    for (k, e) in Event::ALL.iter().enumerate() {
        for ns in 1..100u64 {
            latency.record(*e, ns * 1_000 + k as u64);
            latency.record_counted(*e, ns * 7_000);
        }
    }
    latency.record_fanout(5_000_000);
    latency.reset();
    latency.record(Event::LowBattery, 1_000);
    let after = counting::allocations_here();
    assert_eq!(after - before, 0, "allocations recording latencies");
    assert_eq!(latency.of(Event::LowBattery).len(), 1);
}

/// The receive worker's machine (`engine::ingress`): every frame of the corpus to the
/// trap port, from its own source, through decoding, the trust layer, the inform
/// answers and v3 Reports, the route to a `[[forward]]` target that takes anyone's and
/// the "seen" limit, the arena reset per batch: after a warm-up, no allocation.
#[test]
fn the_trap_port_machine_allocates_nothing_per_packet() {
    use trapgate::engine::ingress::{Heard, Ingress};
    let frames = counting::corpus_frames();
    let text = trapgate::engine::config::DEFAULT_SITE.to_string()
        + "\n[[forward]]\nto = \"127.0.0.1:9162\"\nmatch = [\"*\"]\nsources = \"any\"\n";
    let site = Site::parse(&text).expect("a site forwarding anyone's");
    let mut pipeline = Pipeline::new(site.classifier(), &[]);
    pipeline.set_usm(trapgate::engine::usm::Usm::new(&site));
    let mut ingress = Ingress::new(pipeline, site.recorders.len());
    let trust = Trust::new(&site);
    let mut arena = Bump::with_capacity(64 * 1024);
    let (mut heard, mut forwarded, mut replied, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let mut now = 0u64;
    let mut run = |arena: &mut Bump, ingress: &mut Ingress| {
        arena.reset();
        for (link, data) in &frames {
            let Ok(d) = udp_datagram(*link, data) else {
                continue;
            };
            now += 1_000_000;
            let took = ingress.handle(
                &trust,
                &site.forwarding,
                Timestamp(now),
                (
                    std::net::SocketAddr::new(d.dst, 162),
                    std::net::SocketAddr::new(d.src, d.src_port),
                ),
                d.payload,
                false,
                now,
                arena,
            );
            heard += u64::from(matches!(took.heard, Some(Heard::Event { .. })));
            forwarded += u64::from(took.forward.is_some());
            replied += u64::from(took.reply.is_some());
            refused += u64::from(took.refused.is_some());
        }
    };
    for _ in 0..20 {
        run(&mut arena, &mut ingress);
    }
    let before = counting::allocations_here();
    for _ in 0..100 {
        run(&mut arena, &mut ingress);
    }
    let after = counting::allocations_here();
    // Each pass over the corpus: its site UPS's events heard, every notification
    // forwarded, its inform answered, its forgeries refused.
    assert!(heard >= 120 * 50, "{heard} events heard");
    assert!(forwarded >= 120 * 100, "{forwarded} forwarded");
    assert!(replied >= 120, "{replied} informs answered");
    assert!(refused >= 120 * 25, "{refused} refused");
    assert_eq!(
        after - before,
        0,
        "allocations during {} datagrams",
        100 * frames.len()
    );
}
