//! The policy at scale: a site of 5,000 recorders on 200 UPSes through a full outage —
//! every UPS on battery, each tier's grace ending, then every UPS low on battery — timed
//! per event and per decision. Run: `cargo bench --bench policy`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use trapgate::classify::Event;
use trapgate::engine::config::{
    Gateway, Policy, Recorder, RecorderKind, Restart, Secs, Site, Unconfirmed, Ups, Vendor,
};
use trapgate::engine::id::UpsId;
use trapgate::engine::policy::Decider;
use trapgate::engine::trust::{Credential, Trust};
use trapgate::time::Timestamp;

const UPSES: usize = 200;
const PER_UPS: usize = 25;

fn site() -> Site {
    let upses = (0..UPSES)
        .map(|i| Ups {
            name: format!("ups-{i}"),
            address: IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1)),
            community: "public".into(),
            port: 161,
            vendor: Vendor::Apc,
            poll_interval: Secs(10),
            outlet_off_delay: Secs(300),
            off_delay_from_card: false,
            restart: Restart::Auto,
            runtime: None,
            v3: None,
            write: None,
        })
        .collect();
    let recorders = (0..UPSES * PER_UPS)
        .map(|r| Recorder {
            name: format!("nvr-{r}"),
            address: IpAddr::V4(Ipv4Addr::new(10, 2, (r / 250) as u8, (r % 250) as u8 + 1)),
            port: 162,
            ups: UpsId::new(r / PER_UPS),
            feeds: vec![UpsId::new(r / PER_UPS)],
            needs: 1,
            tier: (r % 3) as u8 + 1,
            shutdown_time: Secs(90),
            boot_time: Secs(300),
            kind: RecorderKind::TrapRelay,
            community: "public".into(),
            v3: None,
            outlet: None,
            wol: None,
        })
        .collect();
    Site {
        text: "".into(),
        usm_users: Vec::new(),
        forwarding: Default::default(),
        pair: None,
        notify: Vec::new(),
        gateway: Gateway {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1162))],
            agent: SocketAddr::from(([127, 0, 0, 1], 1161)),
            community: "public".into(),
            exec_timeout: Secs(30),
            workers: 0,
            max_message_size: 1472,
            engine_id: None,
            nut: None,
            nis: None,
            http: None,
        },
        policy: Policy {
            grace: BTreeMap::from([(1, Secs(600)), (2, Secs(300)), (3, Secs(120))]),
            shutdown_below_charge: 30,
            shutdown_below_runtime: Secs(300),
            confirm_by_poll: false,
            when_unconfirmed: Unconfirmed::Shutdown,
            poll_timeout: Secs(5),
            ack_timeout: Secs(10),
        },
        upses,
        pdus: Vec::new(),
        recorders,
        rules: Vec::new(),
    }
}

fn at(s: u64) -> Timestamp {
    Timestamp(1_700_000_000_000_000_000 + s * 1_000_000_000)
}

/// A UPS's trap, checked as the receive workers check it, then decided.
fn trap(d: &mut Decider, trust: &Trust, now: Timestamp, from: IpAddr, event: Event, rule: &str) {
    let who = trust.who(from).expect("a UPS of the site");
    let who = trust
        .notification(who, Credential::community(b"public"), event)
        .expect("its community");
    d.handle_notification(now, who, event, rule);
}

/// One full outage; returns (events handled, decisions made, recorders told).
fn outage(d: &mut Decider, trust: &Trust, site: &Site) -> (usize, usize, usize) {
    let mut events = 0;
    let (mut decisions, mut told) = (0, 0);
    let mut drain = |d: &mut Decider| {
        while let Some(x) = d.poll_decision() {
            told += usize::from(matches!(
                x,
                trapgate::engine::policy::Decision::ShutdownRecorder { .. }
            ));
            black_box(&x);
            decisions += 1;
        }
    };
    for u in &site.upses {
        trap(d, trust, at(0), u.address, Event::OnBattery, "upsOnBattery");
        events += 1;
    }
    drain(d);
    // Tier 3's grace ends, then tier 2's: each timer is one event.
    while let Some(due) = d.poll_timeout().filter(|t| *t <= at(400)) {
        d.handle_timeout(due);
        events += 1;
        drain(d);
    }
    for u in &site.upses {
        trap(
            d,
            trust,
            at(450),
            u.address,
            Event::LowBattery,
            "lowBattery",
        );
        events += 1;
    }
    drain(d);
    (events, decisions, told)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let site = site();
    let trust = Trust::new(&site);
    let rounds = if quick { 1 } else { 21 };
    let mut per_event = Vec::new();
    let mut totals = Vec::new();
    let mut counts = (0, 0, 0);
    for _ in 0..rounds {
        let mut d = Decider::new(site.clone());
        while d.poll_decision().is_some() {}
        let t = Instant::now();
        counts = outage(&mut d, &trust, &site);
        let ns = t.elapsed().as_nanos() as f64;
        totals.push(ns);
        per_event.push(ns / counts.0 as f64);
    }
    assert_eq!(counts.2, UPSES * PER_UPS, "every recorder told, once");
    if quick {
        println!(
            "policy bench: {} events, {} decisions; run `cargo bench --bench policy` to measure",
            counts.0, counts.1
        );
        return;
    }
    per_event.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    totals.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let median = |v: &[f64]| v[v.len() / 2];
    println!(
        "site: {UPSES} UPSes, {} recorders, 3 tiers; a full outage = {} events, {} decisions",
        UPSES * PER_UPS,
        counts.0,
        counts.1
    );
    println!(
        "  whole outage: median {:.2} ms (min {:.2}, max {:.2}) over {rounds} runs",
        median(&totals) / 1e6,
        totals[0] / 1e6,
        totals[totals.len() - 1] / 1e6
    );
    println!(
        "  per event: median {:.1} µs; per decision: {:.2} µs",
        median(&per_event) / 1e3,
        median(&totals) / counts.1 as f64 / 1e3
    );
}
