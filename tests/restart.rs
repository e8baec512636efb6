//! A faithful restart, attacked: the gateway is killed (`kill -9`) at each step of a
//! live outage on loopback and started again on its journal; and one byte of each line
//! of a real outage's journal is flipped in turn before the restart reads it. Whatever
//! the step or the line, no recorder gets two orders at one instant, no acknowledged
//! recorder is told again, and no decision appears that the live process did not make.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use trapgate::daemon::journal;
use trapgate::engine::config::Site;
use trapgate::engine::record::{Action, Decided, Record};
use trapgate::engine::station::{Happened, Purpose, Station};
use trapgate::time::Timestamp;

/// The UPS, on loopback: traps come from this address; its card's agent never answers.
const UPS: &str = "127.0.0.250";
/// nvr-a (tier 2, told first) acknowledges every order; nvr-b (tier 1) never does.
const NVR_A: &str = "127.0.0.4";
const NVR_B: &str = "127.0.0.5";

/// A fast outage: tier 2 after 1 s on battery, tier 1 after 2 s; an order is told again
/// after 1 s, then 2 s, until the outlets go off 4 s after it.
fn site(listen: u16, ups_port: u16, a: u16, b: u16) -> String {
    format!(
        r#"[gateway]
listen = ["127.0.0.1:{listen}"]
agent = "127.0.0.1:0"
community = "public"

[policy]
grace = {{ 1 = "2s", 2 = "1s" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false
ack_timeout = "1s"

[[ups]]
name = "ups-main"
address = "{UPS}"
port = {ups_port}
community = "public"
vendor = "apc"
poll_interval = "30s"
outlet_off_delay = "4s"

[[recorder]]
name = "nvr-a"
address = "{NVR_A}"
port = {a}
ups = "ups-main"
tier = 2
shutdown_time = "2s"

[[recorder]]
name = "nvr-b"
address = "{NVR_B}"
port = {b}
ups = "ups-main"
tier = 1
shutdown_time = "2s"
"#
    )
}

fn bind(address: &str) -> UdpSocket {
    let s = UdpSocket::bind((address, 0)).unwrap_or_else(|e| panic!("bind {address}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    s
}

fn port(s: &UdpSocket) -> u16 {
    s.local_addr().expect("addr").port()
}

/// A v1 trap from `agent`: APC's upsOnBattery (318, 5) or a recorder's acknowledgement
/// (50001, 200).
fn v1_trap(enterprise: &str, specific: i64, agent: [u8; 4]) -> Vec<u8> {
    trapgate::testing::v1_trap(b"public", enterprise, agent, specific, &[])
}

/// A recorder on loopback: the times its orders arrive; it acknowledges each one to
/// the gateway's trap port when `acks`. Runs until `stop` is set.
struct Recorder {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    fn start(socket: UdpSocket, acks: Option<(SocketAddr, [u8; 4])>) -> Recorder {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, done) = (Arc::clone(&arrivals), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut buf = [0u8; 2048];
            while !done.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(90)
            {
                if socket.recv_from(&mut buf).is_ok() {
                    seen.lock().expect("lock").push(Instant::now());
                    if let Some((gateway, me)) = acks {
                        let _ = socket.send_to(&v1_trap("1.3.6.1.4.1.50001", 200, me), gateway);
                    }
                }
            }
        });
        Recorder {
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().expect("lock").clone()
    }

    fn stop(&mut self) -> Vec<Instant> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.arrivals()
    }
}

/// Every record of a journal, in order.
fn records(path: &Path) -> Vec<(Timestamp, Record)> {
    let mut all = Vec::new();
    journal::read(path, |t, r| all.push((t, r))).expect("the journal reads");
    all
}

fn decided(all: &[(Timestamp, Record)], recorder: &str) -> Vec<Timestamp> {
    all.iter()
        .filter(|(_, r)| matches!(r, Record::Decision(Decided::ShutdownRecorder { recorder: x, .. }) if &**x == recorder))
        .map(|(t, _)| *t)
        .collect()
}

fn acknowledged(all: &[(Timestamp, Record)], recorder: &str) -> usize {
    all.iter()
        .filter(|(_, r)| matches!(r, Record::Decision(Decided::Acknowledged { recorder: x }) if &**x == recorder))
        .count()
}

fn not_acknowledged(all: &[(Timestamp, Record)], recorder: &str) -> usize {
    all.iter()
        .filter(|(_, r)| matches!(r, Record::Action(Action::NotAcknowledged { recorder: x, .. }) if &**x == recorder))
        .count()
}

/// Where a live outage is killed: after the first stdout line with all of these.
const STEPS: &[&[&str]] = &[
    &[],
    &["\"event\":\"OnBattery\""],
    &["\"decision\":\"ShutdownRecorder\"", "nvr-a"],
    &["\"action\":\"Sent\"", "nvr-a"],
    &["\"decision\":\"Acknowledged\"", "nvr-a"],
    &["\"decision\":\"ShutdownRecorder\"", "nvr-b"],
    &["\"action\":\"Sent\"", "nvr-b", "\"attempt\":1"],
    &["\"action\":\"Sent\"", "nvr-b", "\"attempt\":2"],
    &["\"action\":\"NotAcknowledged\"", "nvr-b"],
];

/// Waits (20 s at most) for a line with every one of `want` (none: returns at once).
fn wait_for(out: &mpsc::Receiver<String>, want: &[&str]) -> bool {
    if want.is_empty() {
        return true;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = out.recv_timeout(Duration::from_millis(100))
            && want.iter().all(|w| line.contains(w))
        {
            return true;
        }
    }
    false
}

/// One outage killed after `step`, down for `down`, restarted on its journal and run
/// to its end. Returns what went wrong, if anything.
fn killed_at(step: usize, down: Duration) -> Result<(), String> {
    let name = format!("kill-{step}-{}", down.as_millis());
    let gateway = UdpSocket::bind("127.0.0.1:0").expect("a free port");
    let listen = port(&gateway);
    drop(gateway);
    let traps: SocketAddr = ([127, 0, 0, 1], listen).into();
    let card = bind(UPS); // polled, never answers
    let (a, b) = (bind(NVR_A), bind(NVR_B));
    let file = site_file(&name, &site(listen, port(&card), port(&a), port(&b)));
    let path = file.with_file_name("journal");
    let _ = std::fs::remove_file(&path);
    let mut nvr_a = Recorder::start(a, Some((traps, [127, 0, 0, 4])));
    let mut nvr_b = Recorder::start(b, None);
    let args = [
        "run",
        "--config",
        file.to_str().expect("UTF-8"),
        "--journal",
        path.to_str().expect("UTF-8"),
    ];
    // The live run, killed at its step.
    let (mut child, out, err) = start(&args);
    listening_on(&err);
    let ups = bind(UPS);
    ups.send_to(&v1_trap("1.3.6.1.4.1.318", 5, [127, 0, 0, 250]), traps)
        .expect("send");
    let reached = wait_for(&out, STEPS[step]);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    if !reached {
        return Err(format!(
            "step {step}: the live run never showed {:?}",
            STEPS[step]
        ));
    }
    let before = records(&path);
    let killed = Instant::now();
    std::thread::sleep(down);

    // The restart, run to the end of the outage.
    let (mut child, out, err) = start(&args);
    listening_on(&err);
    // A trap the gateway died before journaling is lost with it: the UPS sends it again.
    let heard = before.iter().any(|(_, r)| {
        matches!(
            r,
            Record::Input(trapgate::engine::record::Input::Event { .. })
        )
    });
    if !heard {
        ups.send_to(&v1_trap("1.3.6.1.4.1.318", 5, [127, 0, 0, 250]), traps)
            .expect("send");
    }
    let ended = not_acknowledged(&before, "nvr-b") > 0
        || wait_for(&out, &["\"action\":\"NotAcknowledged\"", "nvr-b"]);
    std::thread::sleep(Duration::from_millis(1500));
    terminate(&child);
    let _ = child.wait();
    let (told_a, told_b) = (nvr_a.stop(), nvr_b.stop());
    let after = records(&path);
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    let mut wrong = Vec::new();
    if !ended {
        wrong.push("the restarted outage never ended with nvr-b not acknowledged".to_string());
    }
    // No two orders at one instant.
    for (name, told) in [("nvr-a", &told_a), ("nvr-b", &told_b)] {
        for w in told.windows(2) {
            let gap = w[1] - w[0];
            if gap < Duration::from_millis(400) {
                wrong.push(format!(
                    "{name} got two orders {} ms apart",
                    gap.as_millis()
                ));
            }
        }
    }
    // An acknowledgement journaled before the crash holds.
    if acknowledged(&before, "nvr-a") > 0 {
        let again = told_a.iter().filter(|t| **t > killed).count();
        if again > 0 {
            wrong.push(format!(
                "nvr-a acknowledged before the crash, told {again} times after it"
            ));
        }
    }
    // Each recorder decided once, acknowledged or reported once.
    for r in ["nvr-a", "nvr-b"] {
        let d = decided(&after, r);
        if d.len() != 1 {
            wrong.push(format!("{r} decided {} times", d.len()));
        }
    }
    if acknowledged(&after, "nvr-a") != 1 {
        wrong.push(format!(
            "nvr-a acknowledged {} times in the journal",
            acknowledged(&after, "nvr-a")
        ));
    }
    if not_acknowledged(&after, "nvr-b") != 1 {
        wrong.push(format!(
            "nvr-b reported not acknowledged {} times",
            not_acknowledged(&after, "nvr-b")
        ));
    }
    // What the live run journaled is still there, as it was; nothing is back-dated.
    if after.get(..before.len()) != Some(&before[..]) {
        wrong.push("the restart changed what the live run journaled".to_string());
    }
    if let Some(w) = after.windows(2).find(|w| w[1].0 < w[0].0) {
        wrong.push(format!(
            "journaled out of time: {} after {}",
            w[1].1.printed(w[1].0, 0),
            w[0].1.printed(w[0].0, 0)
        ));
    }
    // Tier 1 not before its grace on battery.
    let on_battery = after.iter().find_map(|(t, r)| {
        matches!(
            r,
            Record::Input(trapgate::engine::record::Input::Event { .. })
        )
        .then_some(*t)
    });
    if let (Some(on), Some(b)) = (on_battery, decided(&after, "nvr-b").first())
        && b.ns_since(on) < 2_000_000_000
    {
        wrong.push(format!(
            "nvr-b decided {} ms after the trap, before its 2 s grace",
            b.ns_since(on) / 1_000_000
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        let shown: Vec<String> = after
            .iter()
            .map(|(t, r)| r.printed(*t, 0).to_string())
            .collect();
        Err(format!(
            "killed after step {step} {:?}, down {} ms: {}\njournal:\n{}",
            STEPS[step],
            down.as_millis(),
            wrong.join("; "),
            shown.join("\n")
        ))
    }
}

#[test]
fn kill_9_at_each_step_of_an_outage_tells_no_recorder_twice() {
    // Every step, restarted at once and after 1.5 s down (its timers fall due while it
    // is down), four outages at a time.
    let runs: Vec<(usize, Duration)> = (0..STEPS.len())
        .flat_map(|s| [(s, Duration::ZERO), (s, Duration::from_millis(1500))])
        .collect();
    let mut failures = Vec::new();
    for batch in runs.chunks(4) {
        let handles: Vec<_> = batch
            .iter()
            .map(|&(s, d)| std::thread::spawn(move || killed_at(s, d)))
            .collect();
        for h in handles {
            if let Err(e) = h.join().expect("the run does not panic") {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// --- A flipped byte in each line ------------------------------------------------------

/// Orders that left: (when, recorder, attempt).
type Orders = Vec<(Timestamp, String, u32)>;

/// The station's orders from `now` on, driven on a virtual clock to `to`, and its
/// records.
fn drive(s: &mut Station, to: Timestamp) -> (Orders, Vec<(Timestamp, Record)>) {
    let names: Vec<String> = s.site().recorders.iter().map(|r| r.name.clone()).collect();
    let (mut orders, mut records) = (Vec::new(), Vec::new());
    s.run_to(to, &mut |h| match h {
        Happened::Record(at, r) => records.push((at, r)),
        Happened::Sent { at, transmit, .. } => {
            if let Purpose::Order { recorder, attempt } = transmit.purpose {
                orders.push((at, names[recorder].clone(), attempt));
            }
        }
        Happened::Command { .. } => {}
    });
    (orders, records)
}

fn relays(site: &Site) -> trapgate::engine::station::Relays {
    site.recorders
        .iter()
        .map(|r| (SocketAddr::new(r.address, r.port), [127, 0, 0, 1]))
        .collect()
}

#[test]
fn a_flipped_byte_in_any_line_of_a_journal_loses_only_that_line() {
    // A real journal: a live outage killed after nvr-b's second order.
    let card = bind(UPS);
    let (a, b) = (bind(NVR_A), bind(NVR_B));
    let gateway = UdpSocket::bind("127.0.0.1:0").expect("a free port");
    let listen = port(&gateway);
    drop(gateway);
    let traps: SocketAddr = ([127, 0, 0, 1], listen).into();
    let text = site(listen, port(&card), port(&a), port(&b));
    let file = site_file("flip", &text);
    let path = file.with_file_name("journal");
    let _ = std::fs::remove_file(&path);
    let mut nvr_a = Recorder::start(a, Some((traps, [127, 0, 0, 4])));
    let mut nvr_b = Recorder::start(b, None);
    let (mut child, out, err) = start(&[
        "run",
        "--config",
        file.to_str().expect("UTF-8"),
        "--journal",
        path.to_str().expect("UTF-8"),
    ]);
    listening_on(&err);
    bind(UPS)
        .send_to(&v1_trap("1.3.6.1.4.1.318", 5, [127, 0, 0, 250]), traps)
        .expect("send");
    assert!(wait_for(&out, &["\"decision\":\"Acknowledged\"", "nvr-a"]));
    assert!(wait_for(
        &out,
        &["\"action\":\"Sent\"", "nvr-b", "\"attempt\":2"]
    ));
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    nvr_a.stop();
    nvr_b.stop();
    let live = records(&path);
    let mut bytes = std::fs::read(&path).expect("the journal");
    // Its records, without the blank lines the file was prepared with.
    let end = bytes.iter().rposition(|&b| b != b'\n').expect("records") + 2;
    bytes.truncate(end);
    let last = live.last().expect("records").0;
    let live_decided: BTreeMap<String, usize> = ["nvr-a", "nvr-b"]
        .iter()
        .map(|r| (r.to_string(), decided(&live, r).len()))
        .collect();
    assert_eq!(live_decided.values().sum::<usize>(), 2, "{live:?}");

    // Each line in turn: one byte flipped in its middle, and then at its start.
    let starts: Vec<usize> = std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', &bytes).map(|i| i + 1))
        .filter(|&i| i < bytes.len())
        .collect();
    let site = Site::parse(&text).expect("the site");
    let mut failures = Vec::new();
    let dir: PathBuf = file.with_file_name("flipped");
    std::fs::create_dir_all(&dir).expect("dir");
    for (n, &start) in starts.iter().enumerate() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        for at in [start + (end - start) / 2, start] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            let flipped = dir.join("journal");
            std::fs::write(&flipped, &damaged).expect("write");
            let now = last.plus_secs(1);
            let r = journal::resume(&flipped, site.clone(), Default::default(), &relays, now)
                .expect("a damaged journal still resumes");
            let mut wrong = Vec::new();
            if r.damaged != 1 {
                wrong.push(format!("{} damaged lines named, not 1", r.damaged));
            }
            let mut s = r.station;
            drop(r.journal);
            let (orders, journaled) = drive(&mut s, now.plus_secs(30));
            if let Some(o) = orders.iter().find(|(_, r, _)| r == "nvr-a") {
                wrong.push(format!("nvr-a acknowledged, told again: {o:?}"));
            }
            for w in orders.windows(2) {
                if w[0].1 == w[1].1 && w[0].0 == w[1].0 {
                    wrong.push(format!("two orders at one instant: {w:?}"));
                }
            }
            // An order journaled as sent (on a line not flipped) is not sent again.
            let kept: Vec<(&str, u32)> = live
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != n)
                .filter_map(|(_, (_, r))| match r {
                    Record::Action(Action::Sent {
                        recorder, attempt, ..
                    }) => Some((&**recorder, *attempt)),
                    _ => None,
                })
                .collect();
            if let Some(o) = orders
                .iter()
                .find(|(_, r, a)| kept.contains(&(r.as_str(), *a)))
            {
                wrong.push(format!("an order journaled as sent, sent again: {o:?}"));
            }
            for r in ["nvr-a", "nvr-b"] {
                if !decided(&journaled, r).is_empty() {
                    wrong.push(format!("{r} decided again after the restart"));
                }
            }
            if !wrong.is_empty() {
                failures.push(format!(
                    "line {} flipped at byte {}: {}",
                    n + 1,
                    at - start,
                    wrong.join("; ")
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A start on an empty journal and a restart on it, against net-snmp's snmpd as a UPS
/// card: every answer of the card is believed and nothing is refused. (The resume used
/// to send a first poll, forget it and poll again: the card's right answer to the first
/// was refused as forged at every start, in the counter an alert watches.)
#[test]
fn a_start_and_a_restart_on_the_journal_refuse_no_answer_of_a_real_card() {
    let port = UdpSocket::bind("127.0.0.6:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let text = format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"

[policy]
grace = {{ 1 = "10m" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"

[[ups]]
name = "ups-card"
address = "127.0.0.6"
port = {port}
vendor = "ups-mib"
poll_interval = "1s"
outlet_off_delay = "3m"
"#
    );
    let file = site_file("real-card", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    // On mains, 87 %, 42 min.
    let Some(mut card) = snmpd_card(
        &dir,
        &format!("udp:127.0.0.6:{port}"),
        "rocommunity public 127.0.0.0/8\n\
         override .1.3.6.1.2.1.33.1.4.1.0 integer 3\n\
         override .1.3.6.1.2.1.33.1.2.1.0 integer 2\n\
         override .1.3.6.1.2.1.33.1.2.4.0 integer 87\n\
         override .1.3.6.1.2.1.33.1.2.3.0 integer 42\n",
    ) else {
        return;
    };
    let journal = dir.join("journal");
    let _ = std::fs::remove_file(&journal);
    for start in ["a first start", "a restart"] {
        let (child, _out, err) = common::start(&[
            "run",
            "--config",
            file.to_str().expect("UTF-8"),
            "--journal",
            journal.to_str().expect("UTF-8"),
            "--http",
            "127.0.0.1:0",
        ]);
        let http = http_endpoint(&err).to_string();
        // Three answers of the card believed (the first poll and two more).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut page = String::new();
        while Instant::now() < deadline {
            page = scrape(&http);
            let answers = page
                .lines()
                .find_map(|l| l.strip_prefix("trapgate_poll_answers_total "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if answers >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        terminate(&child);
        let mut child = child;
        assert!(child.wait().expect("exit").success());
        let summary: Vec<String> = err.iter().collect();
        let refused = summary
            .iter()
            .find(|l| l.trim_start().starts_with("refused:"))
            .unwrap_or_else(|| panic!("{start}: no refusals line in {summary:#?}"));
        assert_eq!(
            refused.trim(),
            "refused: 0",
            "{start}: {summary:#?}\n{page}"
        );
    }
    let _ = card.kill();
    let _ = card.wait();
    let written = std::fs::read_to_string(&journal).expect("the journal");
    assert!(!written.contains("\"Refused\""), "{written}");
    assert_eq!(written.matches("\"action\":\"Started\"").count(), 2);
}
