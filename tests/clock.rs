//! The gateway's timers run on the monotonic clock: the wall clock stepped an hour
//! forward, then two back, in the middle of an outage, fires nothing early and postpones
//! nothing; it only changes the time printed on the records. The gateway runs in this
//! process, stopped by its shutdown handle (no signal raised in the test's process),
//! with a clock whose wall time the test steps.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bumpalo::Bump;
use serde_json::Value as Json;
use trapgate::daemon::clock::TimeSource;
use trapgate::daemon::{self, Options};
use trapgate::engine::config::Site;
use trapgate::engine::record::{Decided, Record};
use trapgate::wire::{Message, PduType};

/// The real clocks, with a step the test adds to the wall clock.
struct Stepped {
    origin: Instant,
    step: AtomicI64,
}

impl TimeSource for Stepped {
    fn wall(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64;
        real.saturating_add_signed(self.step.load(Ordering::SeqCst))
    }
    fn monotonic(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

const HOUR: i64 = 3_600_000_000_000;

#[test]
fn a_wall_clock_step_fires_no_timer_early_and_postpones_none() {
    let nvr = UdpSocket::bind("127.0.0.244:0").expect("the recorder");
    nvr.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let text = format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"

[policy]
grace = {{ 1 = "10m", 2 = "2s" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false
ack_timeout = "1s"

[[ups]]
name = "ups-main"
address = "127.0.0.250"
vendor = "apc"
outlet_off_delay = "3m"
poll_interval = "1h"

[[recorder]]
name = "nvr-244"
address = "127.0.0.244"
port = {}
ups = "ups-main"
tier = 2
shutdown_time = "90s"
"#,
        nvr.local_addr().unwrap().port()
    );
    let site = Site::parse(&text).expect("a valid site");
    let clock = Arc::new(Stepped {
        origin: Instant::now(),
        step: AtomicI64::new(0),
    });
    let shutdown = trapgate::daemon::Shutdown::new();
    let opts = Options {
        speed: 1.0,
        time: Some(clock.clone()),
        shutdown: Some(shutdown.clone()),
        ..Options::default()
    };
    let (bound_tx, bound_rx) = crossbeam_channel::bounded(1);
    let (record_tx, records) = crossbeam_channel::unbounded::<(Record, Json)>();
    let gateway = std::thread::spawn(move || {
        daemon::run(
            site,
            opts,
            |b| {
                let _ = bound_tx.send(b.listen[0]);
            },
            move |s| {
                let _ = record_tx.send((s.record.clone(), s.printed.clone()));
            },
            || Err("no reload here".into()),
        )
    });
    let traps = bound_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the gateway listens");
    let ups = UdpSocket::bind("127.0.0.250:0").expect("the UPS");
    let on_battery = {
        let e = trapgate::wire::oid::oid("1.3.6.1.4.1.318");
        trapgate::wire::encode::to_vec(&Message::trap_v1(
            b"public",
            e.as_oid(),
            [127, 0, 0, 250],
            5,
            1,
            &[],
        ))
    };
    let sent = Instant::now();
    ups.send_to(&on_battery, traps).expect("send");
    // An hour forward, then two back, while tier 2's two seconds of grace run.
    std::thread::sleep(Duration::from_millis(500));
    clock.step.store(HOUR, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    clock.step.store(-HOUR, Ordering::SeqCst);
    let mut orders: Vec<Duration> = Vec::new();
    let mut buf = [0u8; 2048];
    while orders.len() < 2 && sent.elapsed() < Duration::from_secs(15) {
        if let Ok((n, _)) = nvr.recv_from(&mut buf) {
            let arena = Bump::new();
            if matches!(Message::parse(&buf[..n], &arena), Ok(m) if m.pdu_type() == PduType::TRAP_V1)
            {
                orders.push(sent.elapsed());
                // Between the order and its re-send, another step forward.
                clock.step.store(2 * HOUR, Ordering::SeqCst);
            }
        }
    }
    shutdown.stop();
    gateway.join().expect("no panic").expect("a clean stop");
    assert_eq!(orders.len(), 2, "the order and its re-send: {orders:?}");
    // Tier 2's grace is 2 s of monotonic time: not at the forward step, not an hour late.
    assert!(
        orders[0] >= Duration::from_millis(1900) && orders[0] < Duration::from_secs(6),
        "told {:?} after the trap",
        orders[0]
    );
    // The re-send: ack_timeout (1 s) after the order left.
    let gap = orders[1] - orders[0];
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(5),
        "re-sent {gap:?} after the order"
    );
    // The decision is labelled with the stepped wall clock's time, an hour behind.
    let told: Vec<(Record, Json)> = records.try_iter().collect();
    let (_, decided) = told
        .iter()
        .find(|(r, _)| matches!(r, Record::Decision(Decided::ShutdownRecorder { .. })))
        .expect("the decision");
    let label = decided["time"].as_str().expect("a time");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let an_hour_ago: Vec<String> = (now - 3600 - 30..=now - 3600)
        .map(|s| {
            trapgate::time::Timestamp(s * 1_000_000_000)
                .utc()
                .to_string()[..19]
                .to_string()
        })
        .collect();
    assert!(
        an_hour_ago.iter().any(|t| label.starts_with(t.as_str())),
        "labelled {label}, not an hour behind the real time"
    );
}

#[test]
fn a_shutdown_handle_asked_before_the_start_stops_the_gateway_at_its_first_turn() {
    let site = Site::parse(
        &common::loopback_site()
            .replace("listen = [\"0.0.0.0:162\"]", "listen = [\"127.0.0.1:0\"]"),
    )
    .expect("a valid site");
    let shutdown = daemon::Shutdown::new();
    shutdown.stop();
    let opts = Options {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        shutdown: Some(shutdown),
        ..Options::default()
    };
    // It returns at all: stopped at its first turn, by its handle (no signal).
    let stopped =
        daemon::run(site, opts, |_| {}, |_| {}, || Err("no reload".into())).expect("a clean stop");
    assert_eq!(stopped.signal, 0, "stopped by its handle, no signal");
}
