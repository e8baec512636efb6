//! Two gateways, one site, for real: network namespaces of the test's own (two gateway
//! hosts and the site, on a bridge; addresses of 192.0.2.0/24 only inside them),
//! Debian's keepalived moving the recorders' "UPS IP" between the two, two `trapgate
//! run`, the UPS and the recorders played by this test's threads inside the site's
//! namespace. The actor's host dies mid-outage (keepalived and trapgate killed with
//! SIGKILL, its link gone); the other takes the address and goes on.
//!
//! Skipped, saying so, where network namespaces cannot be made (not root, no `ip`) or
//! keepalived is missing; `.ci/run` installs it and runs as root.

mod common;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use trapgate::testing::netns::{self, in_namespace, ip};

const ADDRESS: &str = "192.0.2.100";
const GW_A: &str = "192.0.2.1";
const GW_B: &str = "192.0.2.2";
const UPS: &str = "192.0.2.250";
/// Tier 2, ordered by the first actor, acknowledges.
const NVR_T2: &str = "192.0.2.32";
/// Tier 1, ordered after the first actor died.
const NVR_T1: &str = "192.0.2.31";

fn site_text(key_file: &Path) -> String {
    format!(
        r#"[gateway]
listen = ["0.0.0.0:162"]
agent = "0.0.0.0:161"
community = "public"
http = "127.0.0.1:9162"

[policy]
grace = {{ 1 = "10m", 2 = "2s" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false
ack_timeout = "30s"

[[ups]]
name = "ups-main"
address = "{UPS}"
community = "public"
vendor = "apc"
poll_interval = "1h"
outlet_off_delay = "10m"
write_community = "private"

[[recorder]]
name = "nvr-t2"
address = "{NVR_T2}"
ups = "ups-main"
tier = 2
shutdown_time = "2s"
outlet = {{ ups = "ups-main", group = 2 }}

[[recorder]]
name = "nvr-t1"
address = "{NVR_T1}"
ups = "ups-main"
tier = 1
shutdown_time = "2s"
outlet = {{ ups = "ups-main", group = 1 }}

[pair]
self = "{GW_A}:1620"
peer = "{GW_B}:1620"
address = "{ADDRESS}"
key_file = "{}"
"#,
        key_file.display()
    )
}

/// Waits for a line of `rx` containing every one of `want`, all lines seen kept.
fn wait_for(
    rx: &mpsc::Receiver<String>,
    want: &[&str],
    within: Duration,
    seen: &mut Vec<String>,
) -> Option<String> {
    let until = Instant::now() + within;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if want.iter().all(|w| l.contains(w)) {
                    return Some(l);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
    None
}

/// An order a recorder received: when, from where, to which recorder.
#[derive(Clone, Debug)]
struct Told {
    at: Instant,
    from: SocketAddr,
    to: IpAddr,
}

fn apc_trap(specific: i64) -> Vec<u8> {
    trapgate::testing::v1_trap(
        b"public",
        "1.3.6.1.4.1.318",
        [192, 0, 2, 250],
        specific,
        &[],
    )
}

fn ack_of(address: [u8; 4]) -> Vec<u8> {
    trapgate::testing::v1_trap(b"public", "1.3.6.1.4.1.50001", address, 200, &[])
}

#[test]
fn a_pair_behind_keepalived_survives_the_loss_of_its_actor_mid_outage() {
    let tag = format!("tg{}", std::process::id() % 100_000);
    if let Err(why) = netns::possible(&tag) {
        eprintln!(
            "SKIPPED a_pair_behind_keepalived_survives_the_loss_of_its_actor_mid_outage: network namespaces cannot be made here ({why})"
        );
        return;
    }
    if which("keepalived").is_none() {
        eprintln!(
            "SKIPPED a_pair_behind_keepalived_survives_the_loss_of_its_actor_mid_outage: keepalived is not installed (apt-get install keepalived)"
        );
        return;
    };
    if which("snmpd").is_none() || which("python3").is_none() {
        trapgate::testing::skip(
            "snmpd or python3 is not installed: the UPS's card needs them (bash .ci/run)",
        );
        return;
    }
    let mut ns = netns::pair_site(&tag, &[UPS, NVR_T1, NVR_T2], false);
    let (a, b, s) = (
        ns.names[0].clone(),
        ns.names[1].clone(),
        ns.names[2].clone(),
    );
    let dir = std::env::temp_dir().join(format!("trapgate-pair-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // The UPS's card: net-snmp's snmpd with the APC card's objects (its outlet groups,
    // their pending commands), every SET it takes logged.
    let sets = dir.join("sets.log");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let card_conf = dir.join("snmpd.conf");
    std::fs::write(
        &card_conf,
        format!(
            "rocommunity public 192.0.2.0/24\nrwcommunity private 192.0.2.0/24\npass_persist .1.3.6.1.4.1.318 /usr/bin/env python3 {} {}\n",
            fixtures.join("apc_card.py").display(),
            sets.display()
        ),
    )
    .expect("snmpd.conf");
    let card = Command::new("ip")
        .args(["netns", "exec", &s, "snmpd", "-f", "-Lo", "-C", "-c"])
        .arg(&card_conf)
        .args(["-M", "/dev/null", "-p"])
        .arg(dir.join("snmpd.pid"))
        .arg(format!("udp:{UPS}:161"))
        .env("SNMP_PERSISTENT_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("snmpd starts");
    ns.children.push(card);
    let key = dir.join("pair.key");
    std::fs::write(&key, "c2hhcmVkIGJ5IHRoZSB0d28gZ2F0ZXdheXMK\n").expect("key");
    let site = dir.join("site.toml");
    std::fs::write(&site, site_text(&key)).expect("site");

    // The recorders: each order noted; nvr-t2 and nvr-t1 acknowledge to the address.
    let told: Arc<Mutex<Vec<Told>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut recorders = Vec::new();
    for (addr, octets) in [(NVR_T2, [192, 0, 2, 32]), (NVR_T1, [192, 0, 2, 31])] {
        let (told, stop) = (Arc::clone(&told), Arc::clone(&stop));
        recorders.push(in_namespace(&s, move || {
            let sock = UdpSocket::bind((addr, 162)).expect("recorder bind");
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = [0u8; 1500];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((_, from)) = sock.recv_from(&mut buf) {
                    told.lock().unwrap().push(Told {
                        at: Instant::now(),
                        from,
                        to: addr.parse().unwrap(),
                    });
                    let _ = sock.send_to(&ack_of(octets), (ADDRESS, 162));
                }
            }
        }));
    }

    // Gateway A first, with the higher priority: it becomes the actor.
    let trapgate = env!("CARGO_BIN_EXE_trapgate");
    let gateways: Vec<netns::Gateway> = [(&a, 150), (&b, 100)]
        .into_iter()
        .map(|(g, priority)| {
            netns::start_gateway(
                &mut ns,
                g,
                &dir,
                (trapgate, &site),
                (ADDRESS, priority, "1"),
            )
        })
        .collect();
    let journal_b = gateways[1].journal.clone();
    let mut seen_a = Vec::new();
    let mut seen_b: Vec<String> = Vec::new();
    let acting = wait_for(
        &gateways[0].err,
        &["pair:", "came to this host"],
        Duration::from_secs(20),
        &mut seen_a,
    );
    assert!(
        acting.is_some(),
        "A never took the address: {seen_a:#?}\nkeepalived: {:?}",
        gateways[0].keepalived.try_iter().collect::<Vec<_>>()
    );
    seen_b.extend(gateways[1].err.try_iter());
    assert!(
        seen_b
            .iter()
            .any(|l| l.contains("pair channel on") && l.contains("the standby")),
        "{seen_b:#?}"
    );

    // The outage: the UPS's card sends to both gateways.
    let ups = in_namespace(&s, || UdpSocket::bind((UPS, 0)).expect("ups bind"))
        .join()
        .unwrap();
    let to_both = |trap: &[u8]| {
        for g in [GW_A, GW_B] {
            ups.send_to(trap, (g, 162)).expect("trap sent");
        }
    };
    to_both(&apc_trap(5)); // upsOnBattery
    // Tier 2 goes at 2 s, from the address; it acknowledges to the address, and A ships
    // the acknowledgement to B.
    let mut out_b = Vec::new();
    let shipped = wait_for(
        &gateways[1].out,
        &["FromPeer", "Acknowledged", "nvr-t2"],
        Duration::from_secs(15),
        &mut out_b,
    );
    assert!(
        shipped.is_some(),
        "B never heard of nvr-t2's acknowledgement: {out_b:#?}"
    );
    {
        let t = told.lock().unwrap();
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].to, NVR_T2.parse::<IpAddr>().unwrap());
    }
    // Its outlet group cut by A (read, SET, answered), which B learns too.
    let cut = wait_for(
        &gateways[1].out,
        &["FromPeer", "OutletAnswered", "ups-main/group 2", "noError"],
        Duration::from_secs(15),
        &mut out_b,
    );
    assert!(cut.is_some(), "B never heard of group 2's SET: {out_b:#?}");

    // A's host dies: keepalived (its VRRP process first: nothing said on the way out)
    // and trapgate killed with SIGKILL, its link gone.
    let killed = Instant::now();
    let a_processes: Vec<_> = ns.children.drain(1..3).collect();
    netns::kill_host(&a, &gateways[0].vrrp_pid, a_processes);
    // Low battery: only B hears it (it decides tier 1; as the standby it sends nothing).
    to_both(&apc_trap(7));

    // B takes the address and orders tier 1 from it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first_of_b = loop {
        if let Some(t) = told.lock().unwrap().iter().find(|t| t.at > killed).cloned() {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "B never ordered anyone: {:?}",
            seen_b
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let takeover = first_of_b.at.duration_since(killed);
    // Everything B says, for the checks below.
    std::thread::sleep(Duration::from_millis(500));
    seen_b.extend(gateways[1].err.try_iter());
    out_b.extend(gateways[1].out.try_iter());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in recorders {
        r.join().unwrap();
    }
    let told = told.lock().unwrap().clone();
    eprintln!(
        "pair take-over (advert_int 1): {:.0} ms from the kill to the new actor's first order",
        takeover.as_secs_f64() * 1000.0
    );
    let from: SocketAddr = format!("{ADDRESS}:161").parse().unwrap();
    assert!(
        told.iter().all(|t| t.from == from),
        "every order from the address's virtual UPS: {told:?}"
    );
    let t2 = told
        .iter()
        .filter(|t| t.to == NVR_T2.parse::<IpAddr>().unwrap())
        .count();
    let t1 = told
        .iter()
        .filter(|t| t.to == NVR_T1.parse::<IpAddr>().unwrap())
        .count();
    assert_eq!(
        t2, 1,
        "nvr-t2 acknowledged to A: never told again: {told:?}"
    );
    assert!(t1 >= 1, "{told:?}");
    assert!(
        seen_b
            .iter()
            .any(|l| l.contains("came to this host") && l.contains("acting")),
        "{seen_b:#?}"
    );
    assert!(
        out_b
            .iter()
            .any(|l| l.contains("\"action\":\"Role\"") && l.contains("\"role\":\"actor\"")),
        "{out_b:#?}"
    );
    // B cuts group 1 (nvr-t1's) once it is down, and never group 2 again: the card took
    // one SET each.
    let group_1 = [
        "\"action\":\"OutletAnswered\"",
        "ups-main/group 1",
        "noError",
    ];
    let cut = out_b.iter().any(|l| group_1.iter().all(|w| l.contains(w)))
        || wait_for(
            &gateways[1].out,
            &group_1,
            Duration::from_secs(15),
            &mut out_b,
        )
        .is_some();
    assert!(cut, "B never cut group 1: {out_b:#?}");
    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(&sets).unwrap_or_default();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["set group 2 = 9", "set group 1 = 9"],
        "each countdown armed once: {log}"
    );
    // A comes back on the network believing it still acts (a split): its hello, sealed
    // as A's, reaches B, which alerts and goes on acting.
    ip(&["-n", &s, "addr", "add", &format!("{GW_A}/24"), "dev", "br0"]);
    let key_bytes: Arc<[u8]> = Arc::from(&b"c2hhcmVkIGJ5IHRoZSB0d28gZ2F0ZXdheXMK"[..]);
    let a_end: SocketAddr = format!("{GW_A}:1620").parse().unwrap();
    in_namespace(&s, move || {
        let sock = UdpSocket::bind(a_end).expect("A's endpoint");
        let mut sealer = trapgate::engine::pair::Sealer::new(key_bytes, a_end, 99);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let hello = trapgate::engine::pair::Hello {
            actor: true,
            since_ms: now_ms,
        };
        let mut out = Vec::new();
        sealer.seal(
            now_ms,
            trapgate::engine::pair::Kind::Hello,
            &hello.body(),
            &mut out,
        );
        sock.send_to(&out, (GW_B, 1620)).expect("hello");
    })
    .join()
    .unwrap();
    let split = wait_for(
        &gateways[1].out,
        &["\"kind\":\"pair_split\"", GW_A],
        Duration::from_secs(10),
        &mut out_b,
    );
    assert!(split.is_some(), "no pair_split alert: {out_b:#?}");
    // B's journal tells the story: its own decisions, A's shipped records, its take-over.
    let story = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["journal", journal_b.to_str().unwrap()])
        .output()
        .expect("journal");
    let story = String::from_utf8_lossy(&story.stdout);
    for want in [
        "decided ShutdownRecorder ups=ups-main recorder=nvr-t2",
        "from peer 192.0.2.1:1620",
        "Role role=actor",
        "Sent recorder=nvr-t1",
    ] {
        assert!(
            story.contains(want),
            "{want:?} not in B's journal:\n{story}"
        );
    }
    // Both journals, one story: each fact once, labelled with the gateway that made it.
    let both = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .arg("journal")
        .args([&gateways[0].journal, &journal_b])
        .output()
        .expect("journal");
    let both = String::from_utf8_lossy(&both.stdout);
    let (la, lb) = (format!("[{a}.journal]"), format!("[{b}.journal]"));
    let lines_with = |what: &[&str]| {
        both.lines()
            .filter(|l| what.iter().all(|w| l.contains(w)))
            .count()
    };
    assert_eq!(lines_with(&[&la, "Sent recorder=nvr-t2"]), 1, "{both}");
    assert_eq!(lines_with(&[&lb, "Sent recorder=nvr-t1"]), 1, "{both}");
    assert_eq!(
        lines_with(&["decided Acknowledged recorder=nvr-t2"]),
        1,
        "{both}"
    );
    assert_eq!(
        lines_with(&["from peer"]),
        0,
        "A's journal has what it shipped: {both}"
    );
    assert_eq!(lines_with(&[&lb, "Role role=actor"]), 1, "{both}");
    let _ = std::io::stderr().flush();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seals records as a pair's actor at `me` would, under `key`.
fn records_datagram(
    sealer: &mut trapgate::engine::pair::Sealer,
    sent_ms: u64,
    records: &[trapgate::engine::record::Record],
) -> Vec<u8> {
    let mut p = trapgate::engine::pair::Packer::default();
    for r in records {
        assert!(p.add(sent_ms * 1_000_000, r));
    }
    let bodies = p.take();
    assert_eq!(bodies.len(), 1);
    let mut out = Vec::new();
    sealer.seal(
        sent_ms,
        trapgate::engine::pair::Kind::Records,
        &bodies[0],
        &mut out,
    );
    out
}

#[test]
fn the_pair_channel_believes_only_its_peer_once_under_the_key() {
    use trapgate::engine::record::{Decided, Input, Record};
    let dir = std::env::temp_dir().join(format!("trapgate-pair-lo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key_text = "the-pair-key-of-this-test-0123";
    let key_file = dir.join("pair.key");
    std::fs::write(&key_file, format!("{key_text}\n")).expect("key");
    let (me, peer) = (
        SocketAddr::from(([127, 0, 0, 1], free_port("127.0.0.1"))),
        SocketAddr::from(([127, 0, 0, 2], free_port("127.0.0.2"))),
    );
    // The standby: the pair's address is not among this host's interfaces' addresses.
    let text = loopback_site()
        .replace("agent = \"127.0.0.1:0\"", "agent = \"0.0.0.0:0\"")
        .replace("address = \"127.0.0.1\"", "address = \"127.0.0.250\"")
        + &format!(
            "\n[pair]\nself = \"{me}\"\npeer = \"{peer}\"\naddress = \"127.0.0.100\"\nkey_file = \"{}\"\n",
            key_file.display()
        );
    let site = dir.join("site.toml");
    std::fs::write(&site, &text).expect("site");
    let (mut gw, traps, http) = in_process_with_http(&site);
    let out = gw.take_out();
    assert_eq!(
        gw.bound.pair.map(|p| (p.0, p.1, p.3)),
        Some((me, peer, false))
    );

    // The test plays the peer, at the peer's endpoint, with the key.
    let playing = UdpSocket::bind(peer).expect("the peer's endpoint");
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let key: Arc<[u8]> = Arc::from(key_text.as_bytes());
    let mut sealer = trapgate::engine::pair::Sealer::new(Arc::clone(&key), peer, 42);
    let acked = Record::Decision(Decided::Acknowledged {
        recorder: "nvr-244".into(),
    });
    let genuine = records_datagram(&mut sealer, now_ms(), std::slice::from_ref(&acked));
    playing.send_to(&genuine, me).unwrap();
    // Replayed, from the peer's own endpoint.
    playing.send_to(&genuine, me).unwrap();
    // The same record under another key.
    let mut forger =
        trapgate::engine::pair::Sealer::new(Arc::from(&b"not-the-pair-key-at-all"[..]), peer, 43);
    playing
        .send_to(
            &records_datagram(&mut forger, now_ms(), std::slice::from_ref(&acked)),
            me,
        )
        .unwrap();
    // Sealed right, an hour old.
    playing
        .send_to(
            &records_datagram(
                &mut sealer,
                now_ms() - 3_600_000,
                std::slice::from_ref(&acked),
            ),
            me,
        )
        .unwrap();
    // Sealed right, from another address than the peer's.
    let elsewhere = UdpSocket::bind("127.0.0.3:0").expect("bind");
    elsewhere
        .send_to(
            &records_datagram(&mut sealer, now_ms(), std::slice::from_ref(&acked)),
            me,
        )
        .unwrap();
    // A flood of garbage from the peer's endpoint, and truncated genuine datagrams.
    for i in 0..2_000u32 {
        let d = if i % 2 == 0 {
            i.to_be_bytes().repeat(16)
        } else {
            genuine[..(i as usize % genuine.len())].to_vec()
        };
        playing.send_to(&d, me).unwrap();
    }
    // Sealed right, but what no actor ships: a UPS's low battery as the peer's "input".
    let forged_input = Record::Input(Input::Event {
        source: "127.0.0.1".parse().unwrap(),
        ups: Some("ups-main".into()),
        recorder: None,
        community: "public".into(),
        security_level: None,
        event: trapgate::classify::Event::LowBattery,
        rule: "lowBattery".into(),
        index: None,
    });
    playing
        .send_to(
            &records_datagram(&mut sealer, now_ms(), &[forged_input]),
            me,
        )
        .unwrap();

    // One record taken, once.
    let mut lines = Vec::new();
    let got = wait_for(
        &out,
        &["FromPeer", "Acknowledged", "nvr-244"],
        Duration::from_secs(10),
        &mut lines,
    );
    assert!(got.is_some(), "{lines:#?}");
    std::thread::sleep(Duration::from_millis(500));
    lines.extend(out.try_iter());
    let from_peer = lines.iter().filter(|l| l.contains("FromPeer")).count();
    assert_eq!(from_peer, 1, "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("ShutdownRecorder")),
        "no forged input moved the policy: {lines:#?}"
    );
    let value_in = |metrics: &str, name: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{metrics}"))
    };
    // Every datagram read (a loaded machine takes its time; the endpoint's snapshot is
    // refreshed twice a second).
    let refused = |m: &str| {
        ["not_pair", "bad_mac", "stale", "replayed", "not_from_peer"]
            .iter()
            .map(|r| value_in(m, &format!("trapgate_pair_refused_total{{reason=\"{r}\"}}")))
            .sum::<u64>()
    };
    let until = Instant::now() + Duration::from_secs(20);
    let mut metrics = scrape(&http.to_string());
    while refused(&metrics) < 2_004 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        metrics = scrape(&http.to_string());
    }
    let value = |name: &str| value_in(&metrics, name);
    assert_eq!(value("trapgate_pair_records_received_total"), 1);
    assert_eq!(value("trapgate_pair_refused_total{reason=\"replayed\"}"), 1);
    assert_eq!(value("trapgate_pair_refused_total{reason=\"stale\"}"), 1);
    assert_eq!(
        value("trapgate_pair_refused_total{reason=\"not_from_peer\"}"),
        1
    );
    // The flood (garbage, and genuine datagrams cut short) and the other key's one.
    let flood = value("trapgate_pair_refused_total{reason=\"not_pair\"}")
        + value("trapgate_pair_refused_total{reason=\"bad_mac\"}")
        - 1;
    assert_eq!(flood, 2_000, "{metrics}");
    assert_eq!(value("trapgate_pair_actor"), 0);
    // The status says the role, and the peer's silence (it never said hello).
    let status = trapgate_status(http);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("pair: STANDBY since") && status.contains("never heard"),
        "{status}"
    );
    let _ = traps;
    gw.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
