//! A bounded trap storm on loopback: 1,000,000 traps from the site's UPS with real UPS
//! events inside, sent at a fixed pace (about 100,000 a second, so the test is bounded in
//! time too), into `trapgate run`. Every datagram is accounted for — received, or
//! counted as dropped by the kernel — and the UPS events inside the storm are decided.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use trapgate::wire::encode;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, PduType, Value, VarBind, Version};

const TOTAL: u64 = 1_000_000;
const PER_SECOND: u64 = 100_000;

fn v2_cold_start() -> Vec<u8> {
    let (uptime, trap, cold) = (
        oid("1.3.6.1.2.1.1.3.0"),
        oid("1.3.6.1.6.3.1.1.4.1.0"),
        oid("1.3.6.1.6.3.1.1.5.1"),
    );
    let vbs = [
        VarBind {
            name: uptime.as_oid(),
            value: Value::TimeTicks(1),
        },
        VarBind {
            name: trap.as_oid(),
            value: Value::ObjectId(cold.as_oid()),
        },
    ];
    encode::to_vec(&Message::pdu(
        Version::V2c,
        b"public",
        PduType::SNMPV2_TRAP,
        7,
        &vbs,
    ))
}

fn apc(specific: i64) -> Vec<u8> {
    let apc = oid("1.3.6.1.4.1.318");
    let trap = Message::trap_v1(b"public", apc.as_oid(), [127, 0, 0, 1], specific, 1, &[]);
    encode::to_vec(&trap)
}

#[test]
fn a_million_trap_storm_is_accounted_for_and_its_ups_events_decided() {
    let gw = common::InProcess::on_loopback(&common::loopback_site());
    let to = gw.traps;

    let ups = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let noise = v2_cold_start();
    let (on_battery, low_battery) = (apc(5), apc(7));
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < TOTAL && start.elapsed() < Duration::from_secs(120) {
        let payload = match sent {
            10 => &on_battery,
            500_000 => &low_battery,
            _ => &noise,
        };
        if ups.send_to(payload, to).is_ok() {
            sent += 1;
        }
        if sent.is_multiple_of(1000) {
            let due = Duration::from_secs_f64(sent as f64 / PER_SECOND as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    assert_eq!(sent, TOTAL, "the sender was too slow here");
    std::thread::sleep(Duration::from_millis(500));
    let (summary, decisions) = gw.finish();
    let number_after = |text: &str, key: &str| -> u64 {
        text.split(key)
            .nth(1)
            .and_then(|r| r.trim_start().split([' ', ',', '\n']).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} in {summary}"))
    };
    let received = number_after(&summary, "-- ");
    let kernel = number_after(&summary, "dropped by the kernel:");
    let truncated = number_after(&summary, "truncated:");
    let foreign = number_after(&summary, "recorders:");
    assert_eq!(
        received + kernel + truncated + foreign,
        sent,
        "every datagram accounted for:\n{summary}"
    );
    assert!(
        decisions
            .iter()
            .any(|d| d.contains("\"kind\":\"on_battery\"")),
        "OnBattery inside the storm decided; {summary}"
    );
    let told = decisions
        .iter()
        .filter(|d| d.contains("\"decision\":\"ShutdownRecorder\""))
        .count();
    assert_eq!(
        told, 2,
        "LowBattery inside the storm shut both NVRs down; {summary}"
    );
    eprintln!(
        "storm: sent {sent} in {:.1} s; {summary}",
        start.elapsed().as_secs_f64()
    );
}

/// A site of `n` UPSes at 127.0.2.1… (one recorder each at 127.0.3.1…), acting on traps
/// without a confirming poll.
fn many_ups_site(n: u8) -> String {
    let mut site = String::from(
        "[gateway]\nlisten = [\"127.0.0.1:0\"]\nagent = \"127.0.0.1:0\"\n\n\
         [policy]\ngrace = { 1 = \"10m\" }\nshutdown_below_charge = 30\n\
         shutdown_below_runtime = \"5m\"\nconfirm_by_poll = false\n",
    );
    for i in 1..=n {
        site += &format!(
            "\n[[ups]]\nname = \"ups-{i}\"\naddress = \"127.0.2.{i}\"\ncommunity = \"public\"\n\
             vendor = \"apc\"\noutlet_off_delay = \"3m\"\n\
             \n[[recorder]]\nname = \"nvr-{i}\"\naddress = \"127.0.3.{i}\"\nups = \"ups-{i}\"\n\
             tier = 1\nshutdown_time = \"90s\"\n"
        );
    }
    site
}

#[test]
fn with_two_workers_each_ups_is_decided_in_the_order_it_spoke() {
    const UPSES: u8 = 24;
    let gw = common::InProcess::with(
        &many_ups_site(UPSES),
        trapgate::daemon::Options {
            workers: Some(2),
            dry_run: true,
            ..trapgate::daemon::Options::default()
        },
    );
    if !gw.bound.steered {
        trapgate::testing::skip(
            "this kernel takes no reuseport steering program: the two workers' sockets are spread by the kernel's hash",
        );
        gw.stop();
        return;
    }
    assert_eq!(gw.bound.workers, 2);
    let to = gw.traps;
    // Each UPS: on battery, then mains back at once, each trap from a fresh source port,
    // so that only steering by address keeps the two on one worker, in order. Read the
    // other way round, the UPS would stay on battery.
    let (on_battery, restored) = (apc(5), apc(9));
    for i in 1..=UPSES {
        for trap in [&on_battery, &restored] {
            let ups =
                UdpSocket::bind((format!("127.0.2.{i}").as_str(), 0)).expect("a UPS's socket");
            ups.send_to(trap, to).expect("send");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let (summary, decided) = gw.finish();
    for i in 1..=UPSES {
        let name = format!("\"ups\":\"ups-{i}\"");
        let mine: Vec<&String> = decided.iter().filter(|d| d.contains(&name)).collect();
        let first_on_battery = mine
            .iter()
            .position(|d| d.contains("\"kind\":\"on_battery\""));
        let power_back = mine
            .iter()
            .position(|d| d.contains("\"decision\":\"PowerBack\""));
        assert!(
            matches!((first_on_battery, power_back), (Some(a), Some(b)) if a < b),
            "ups-{i}: on battery, then power back, in that order: {mine:#?}\n{summary:#?}"
        );
    }
}

/// What the policy ignores is decided on the receive worker: 20,000 coldStart traps
/// from the site's UPS are counted and timed there (arrival → counted) and hand the
/// decision thread nothing; the UPS's upsOnBattery among them crosses, and is timed
/// arrival → decision ready.
#[test]
fn informational_traps_never_reach_the_decision_thread() {
    let (gw, traps, http) = common::in_process_with_http(&common::site_file(
        "informational",
        &common::loopback_site(),
    ));
    let metric = |page: &str, key: &str| -> Option<f64> {
        page.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
    };
    let until = |key: &str, want: f64| -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let page = common::scrape(&http.to_string());
            if metric(&page, key) == Some(want) || Instant::now() > deadline {
                return page;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let ups = UdpSocket::bind("127.0.0.1:0").expect("the UPS");
    let noise = v2_cold_start();
    for k in 0..20_000 {
        ups.send_to(&noise, traps).expect("send");
        if k % 1000 == 999 {
            // Within the socket's buffer.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Every one counted on the worker, or dropped by the kernel before it (a loaded
    // machine's full socket buffer): accounted for.
    let counted = "trapgate_counted_latency_seconds_count{event=\"Informational\"}";
    let dropped = "trapgate_dropped_total{reason=\"kernel_receive_buffer\"}";
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut page = common::scrape(&http.to_string());
    let accounted =
        |page: &str| metric(page, counted).unwrap_or(0.0) + metric(page, dropped).unwrap_or(0.0);
    while accounted(&page) < 20_000.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        page = common::scrape(&http.to_string());
    }
    assert_eq!(accounted(&page), 20_000.0, "{page}");
    assert!(metric(&page, counted).unwrap_or(0.0) > 0.0, "{page}");
    assert_eq!(
        metric(&page, "trapgate_worker_batches_total"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        metric(&page, "trapgate_worker_wakeups_total"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "trapgate_decision_latency_seconds_count{event=\"Informational\"}"
        ),
        Some(0.0),
        "{page}"
    );
    // A UPS event crosses, once.
    ups.send_to(&apc(5), traps).expect("send");
    // (The workers publish their counts twice a second.)
    let page = until("trapgate_worker_batches_total", 1.0);
    assert_eq!(
        metric(&page, "trapgate_worker_batches_total"),
        Some(1.0),
        "{page}"
    );
    let decided = "trapgate_decision_latency_seconds_count{event=\"OnBattery\"}";
    assert_eq!(metric(&page, decided), Some(1.0), "{page}");
    assert_eq!(
        metric(&page, "trapgate_worker_wakeups_total"),
        Some(1.0),
        "{page}"
    );
    gw.stop();
}
