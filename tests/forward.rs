//! `[[forward]]`: the traps and informs of the site's UPSes passed on to the network
//! management system with their origin (snmpTrapAddress.x, as net-snmp's
//! addForwarderInfo), matched by snmptrapd's OID forms, each target in its version and
//! community; forgeries and strangers not passed on (unless a target takes anyone's),
//! loops cut; informs answered at once (a stranger's when a target takes it) and
//! forwarded as informs with their own retries, acknowledged only by the target's own
//! answer. Targets are sockets of the test on
//! 127.0.0.x, and net-snmp's snmptrapd where it is installed.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bumpalo::Bump;
use common::*;
use trapgate::wire::encode::to_vec;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, Pdu, PduType, Value, VarBind, Version};

const UPS: &str = "127.13.0.1";

/// The seed's site with its UPS at 127.13.0.1, and `forwards` appended.
fn site(forwards: &str) -> String {
    trapgate::engine::config::DEFAULT_SITE
        .replace("192.168.61.250", UPS)
        .replace("192.168.61.", "127.0.0.")
        .replace("confirm_by_poll = true", "confirm_by_poll = false")
        .replace("agent = \"0.0.0.0:161\"", "agent = \"127.0.0.1:0\"")
        + forwards
}

/// A target: a socket on `ip`, reading with a short timeout.
fn target(ip: &str) -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind((ip, 0)).expect("a target");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let at = s.local_addr().expect("address");
    (s, at)
}

/// Every datagram `s` receives until it has been quiet for 300 ms (5 s at most).
fn received(s: &UdpSocket) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => got.push((buf[..n].to_vec(), from)),
            Err(_) => break,
        }
    }
    got
}

/// The datagrams `s` receives: `n` awaited (5 s at most, a loaded machine may be slow),
/// then any more until it has been quiet for 300 ms.
fn awaited(s: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    while got.len() < n && Instant::now() < until {
        if let Ok((k, from)) = s.recv_from(&mut buf) {
            got.push((buf[..k].to_vec(), from));
        }
    }
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    got.extend(received(s));
    got
}

/// The gateway on `site_text`, in this process, listening on loopback with an HTTP
/// endpoint: (the gateway, its trap address, the endpoint as `scrape` takes it).
fn gateway(site_text: &str, name: &str) -> (InProcess, SocketAddr, String) {
    let (gw, traps, http) = in_process_with_http(&site_file(name, site_text));
    (gw, traps, http.to_string())
}

fn v1_on_battery(community: &[u8]) -> Vec<u8> {
    to_vec(&Message::trap_v1(
        community,
        oid("1.3.6.1.4.1.318").as_oid(),
        [0, 0, 0, 0],
        5,
        100,
        &[],
    ))
}

const SYS_UPTIME_0: &str = "1.3.6.1.2.1.1.3.0";
const SNMP_TRAP_OID_0: &str = "1.3.6.1.6.3.1.1.4.1.0";
const COLD_START: &str = "1.3.6.1.6.3.1.1.5.1";

/// A v2c notification of `kind` (trap or inform) with `extra` bindings.
fn v2(kind: PduType, trap: &str, id: i32, extra: &[(&str, Value<'_>)]) -> Vec<u8> {
    let (up, name, trap) = (oid(SYS_UPTIME_0), oid(SNMP_TRAP_OID_0), oid(trap));
    let names: Vec<_> = extra.iter().map(|(n, _)| oid(n)).collect();
    let mut vbs = vec![
        VarBind {
            name: up.as_oid(),
            value: Value::TimeTicks(5),
        },
        VarBind {
            name: name.as_oid(),
            value: Value::ObjectId(trap.as_oid()),
        },
    ];
    for (n, (_, v)) in names.iter().zip(extra) {
        vbs.push(VarBind {
            name: n.as_oid(),
            value: *v,
        });
    }
    to_vec(&Message::pdu(Version::V2c, b"public", kind, id, &vbs))
}

/// The value of binding `name` in `m`.
fn binding<'a>(m: &Message<'a>, name: &str) -> Option<Value<'a>> {
    let name = oid(name);
    m.varbinds()
        .iter()
        .find(|v| v.name.as_bytes() == name.as_bytes())
        .map(|v| v.value)
}

/// `/metrics` until its line `key` has `value` (5 s at most); the page.
fn metric_until(metrics: &str, key: &str, value: u64) -> String {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let page = scrape(metrics);
        let now = page
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if now == Some(value) || Instant::now() > until {
            return page;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_target_gets_what_it_matches_with_the_origin_and_no_forgery_stranger_or_loop() {
    let (t1, a1) = target("127.0.0.1"); // default, as received
    let (t2, a2) = target("127.0.0.2"); // the APC onBattery exactly, as v2c
    let (t3, a3) = target("127.0.0.3"); // everything, anyone's
    let forwards = format!(
        r#"
[[forward]]
to = "{a1}"
community = "nms-one"

[[forward]]
to = "{a2}"
match = [".1.3.6.1.4.1.318.0.5"]
version = "2c"
community = "nms-two"

[[forward]]
to = "{a3}"
match = ["*"]
sources = "any"
community = "nms-three"
"#
    );
    let (gw, traps, metrics) = gateway(&site(&forwards), "forward-match");
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS");
    let arena = Bump::new();

    // The UPS's onBattery (v1, agent-addr 0.0.0.0): to target 2 converted, to target 3
    // as it came; not to the default target (an OID form took it).
    ups.send_to(&v1_on_battery(b"public"), traps).expect("send");
    let two = awaited(&t2, 1);
    assert_eq!(two.len(), 1, "target 2: {two:?}");
    let m = Message::parse(&two[0].0, &arena).expect("decodes");
    assert_eq!(
        (m.version, m.pdu_type()),
        (Version::V2c, PduType::SNMPV2_TRAP)
    );
    assert_eq!(m.community, b"nms-two");
    assert_eq!(
        binding(&m, SNMP_TRAP_OID_0),
        Some(Value::ObjectId(oid("1.3.6.1.4.1.318.0.5").as_oid()))
    );
    // RFC 3584: its agent-addr (the sender's, it said 0.0.0.0), community, enterprise.
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.3.0"),
        Some(Value::IpAddress([127, 13, 0, 1]))
    );
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.4.0"),
        Some(Value::OctetString(b"public"))
    );
    let three = awaited(&t3, 1);
    assert_eq!(three.len(), 1, "target 3: {three:?}");
    let m = Message::parse(&three[0].0, &arena).expect("decodes");
    assert_eq!((m.version, m.community), (Version::V1, &b"nms-three"[..]));
    let Pdu::TrapV1(t) = m.pdu else {
        panic!("a v1 trap")
    };
    assert_eq!(t.agent_addr, [127, 13, 0, 1]);
    assert!(received(&t1).is_empty(), "the default target: nothing");

    // A coldStart (v2c): nobody's OID form takes it: to the default target, with
    // snmpTrapAddress.0, and to target 3.
    ups.send_to(&v2(PduType::SNMPV2_TRAP, COLD_START, 9, &[]), traps)
        .expect("send");
    let one = awaited(&t1, 1);
    assert_eq!(one.len(), 1, "target 1: {one:?}");
    let m = Message::parse(&one[0].0, &arena).expect("decodes");
    assert_eq!(m.community, b"nms-one");
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.3.0"),
        Some(Value::IpAddress([127, 13, 0, 1]))
    );
    assert_eq!(awaited(&t3, 1).len(), 1);
    assert!(received(&t2).is_empty());

    // A forgery from the UPS's address (wrong community) and a stranger's trap: only
    // the target that takes anyone's.
    ups.send_to(&v1_on_battery(b"guessed"), traps)
        .expect("send");
    let stranger = UdpSocket::bind("127.0.0.77:0").expect("a stranger");
    stranger
        .send_to(&v2(PduType::SNMPV2_TRAP, COLD_START, 10, &[]), traps)
        .expect("send");
    let three = awaited(&t3, 2);
    assert_eq!(three.len(), 2, "target 3: {three:?}");
    let stranger_copy = three
        .iter()
        .filter_map(|(b, _)| Message::parse(b, &arena).ok())
        .find(|m| m.version == Version::V2c)
        .expect("the stranger's, forwarded");
    assert_eq!(
        binding(&stranger_copy, "1.3.6.1.6.3.18.1.3.0"),
        Some(Value::IpAddress([127, 0, 0, 77]))
    );
    assert!(received(&t1).is_empty(), "target 1 takes the site's only");
    assert!(received(&t2).is_empty(), "target 2 takes the site's only");

    // A trap that went through target 3's host on its way here: not sent back there;
    // the default target gets it with the next forwarder index, the first one kept.
    let through = [("1.3.6.1.6.3.18.1.3.0", Value::IpAddress([127, 0, 0, 3]))];
    ups.send_to(&v2(PduType::SNMPV2_TRAP, COLD_START, 11, &through), traps)
        .expect("send");
    let one = awaited(&t1, 1);
    assert_eq!(one.len(), 1, "target 1: {one:?}");
    let m = Message::parse(&one[0].0, &arena).expect("decodes");
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.3.0"),
        Some(Value::IpAddress([127, 0, 0, 3]))
    );
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.3.1"),
        Some(Value::IpAddress([127, 13, 0, 1]))
    );
    assert!(
        received(&t3).is_empty(),
        "not back to where it came through"
    );

    // Counted per target.
    let key = format!("trapgate_forwarded_total{{to=\"{a3}\"}}");
    let page = metric_until(&metrics, &key, 4);
    assert!(page.contains(&format!("{key} 4")), "{page}");
    assert!(
        page.contains(&format!("trapgate_forwarded_total{{to=\"{a1}\"}} 2")),
        "{page}"
    );
    assert!(
        page.contains(&format!("trapgate_forward_dropped_total{{to=\"{a2}\"}} 0")),
        "{page}"
    );
    let _ = gw.stop();
}

#[test]
fn a_strangers_inform_a_target_takes_is_answered_and_one_no_target_takes_is_not() {
    // A target of anyone's coldStarts; nobody takes a warmStart.
    let (t, at) = target("127.0.0.6");
    let forwards = format!(
        "\n[[forward]]\nto = \"{at}\"\nmatch = [\"{COLD_START}\"]\nsources = \"any\"\ncommunity = \"nms\"\n"
    );
    let (gw, traps, _metrics) = gateway(&site(&forwards), "forward-stranger-inform");
    let stranger = UdpSocket::bind("127.0.0.78:0").expect("a stranger");
    stranger
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let arena = Bump::new();
    stranger
        .send_to(&v2(PduType::INFORM_REQUEST, COLD_START, 5151, &[]), traps)
        .expect("send");
    // Answered, as snmptrapd with disableAuthorization answers it, from the trap port,
    // with its request id and community.
    let mut buf = [0u8; 2048];
    let (n, from) = stranger
        .recv_from(&mut buf)
        .expect("the stranger is answered");
    assert_eq!(from, traps);
    let m = Message::parse(&buf[..n], &arena).expect("decodes");
    assert_eq!(m.community, b"public");
    let Pdu::Request(r) = m.pdu else { panic!() };
    assert_eq!((r.kind, r.request_id), (PduType::RESPONSE, 5151));
    // And forwarded, once: the stranger, answered, does not send it again.
    let got = awaited(&t, 1);
    assert!(!got.is_empty(), "the target gets the inform");
    let m = Message::parse(&got[0].0, &arena).expect("decodes");
    assert_eq!(m.pdu_type(), PduType::INFORM_REQUEST);
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.3.0"),
        Some(Value::IpAddress([127, 0, 0, 78]))
    );
    // An inform no target takes: neither answered nor forwarded.
    let warm = "1.3.6.1.6.3.1.1.5.2";
    stranger
        .send_to(&v2(PduType::INFORM_REQUEST, warm, 5152, &[]), traps)
        .expect("send");
    stranger
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let answer = stranger.recv_from(&mut buf);
    assert!(answer.is_err(), "answered: {answer:?}");
    let forwarded = received(&t)
        .into_iter()
        .filter_map(|(b, _)| {
            Message::parse(&b, &arena)
                .ok()
                .and_then(|m| binding(&m, SNMP_TRAP_OID_0).map(|v| format!("{v:?}")))
        })
        .filter(|v| v.contains("1.3.6.1.6.3.1.1.5.2"))
        .count();
    assert_eq!(forwarded, 0, "a warmStart nobody takes was forwarded");
    let _ = gw.stop();
}

#[test]
fn an_inform_is_answered_at_once_and_forwarded_with_retries_only_its_target_can_stop() {
    let (t, at) = target("127.0.0.4");
    let forwards = format!("\n[[forward]]\nto = \"{at}\"\nmatch = [\"*\"]\ncommunity = \"nms\"\n");
    let (gw, traps, metrics) = gateway(&site(&forwards), "forward-inform");
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS");
    ups.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let arena = Bump::new();
    ups.send_to(&v2(PduType::INFORM_REQUEST, COLD_START, 4242, &[]), traps)
        .expect("send");
    // The UPS is answered by the gateway, with its own request id.
    let mut buf = [0u8; 2048];
    let (n, _) = ups.recv_from(&mut buf).expect("the UPS is answered");
    let r = Message::parse(&buf[..n], &arena).expect("decodes");
    let Pdu::Request(r) = r.pdu else { panic!() };
    assert_eq!((r.kind, r.request_id), (PduType::RESPONSE, 4242));

    // The target gets an inform under the forwarder's own request id, and again.
    let read = |what: &str| -> (i32, Vec<u8>, SocketAddr) {
        t.set_read_timeout(Some(Duration::from_millis(2500)))
            .expect("timeout");
        let mut buf = [0u8; 2048];
        let (n, from) = t
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let m = Message::parse(&buf[..n], &arena).expect("decodes");
        let Pdu::Request(r) = m.pdu else { panic!() };
        assert_eq!(r.kind, PduType::INFORM_REQUEST, "{what}");
        (r.request_id, buf[..n].to_vec(), from)
    };
    let (id, first, sender) = read("the inform");
    assert_ne!(id, 4242, "the forwarder's own request id");
    let (again, _, _) = read("sent again");
    assert_eq!(again, id);
    // The answers it must not believe: from another port of the target's address, with
    // another community, to another request id.
    let response = |community: &[u8], id: i32| {
        let m = Message::parse(&first, &arena).expect("decodes");
        to_vec(&Message::pdu(
            Version::V2c,
            community,
            PduType::RESPONSE,
            id,
            m.varbinds(),
        ))
    };
    let elsewhere = UdpSocket::bind("127.0.0.4:0").expect("another port");
    elsewhere
        .send_to(&response(b"nms", id), sender)
        .expect("forged");
    t.send_to(&response(b"guess", id), sender).expect("forged");
    t.send_to(&response(b"nms", id.wrapping_add(1)), sender)
        .expect("forged");
    let page = metric_until(&metrics, "trapgate_forward_refused_total", 3);
    assert!(page.contains("trapgate_forward_refused_total 3"), "{page}");
    let (still, _, _) = read("sent again after the forgeries");
    assert_eq!(still, id);
    // Its target's own answer ends it: acknowledged, sent no more.
    t.send_to(&response(b"nms", id), sender).expect("answer");
    let key = format!("trapgate_forward_informs_acknowledged_total{{to=\"{at}\"}}");
    let page = metric_until(&metrics, &key, 1);
    assert!(page.contains(&format!("{key} 1")), "{page}");
    t.set_read_timeout(Some(Duration::from_millis(1800)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    assert!(
        t.recv_from(&mut buf).is_err(),
        "not sent again once answered"
    );
    let _ = gw.stop();
}

#[test]
fn an_inform_nobody_answers_counts_unacknowledged_after_its_retries() {
    let (t, at) = target("127.0.0.5");
    let forwards = format!("\n[[forward]]\nto = \"{at}\"\nmatch = [\"*\"]\n");
    let (gw, traps, metrics) = gateway(&site(&forwards), "forward-silent");
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS");
    ups.send_to(&v2(PduType::INFORM_REQUEST, COLD_START, 7, &[]), traps)
        .expect("send");
    // Sent once and 5 times again, 1 s apart, then given up.
    let key = format!("trapgate_forward_informs_unacknowledged_total{{to=\"{at}\"}}");
    let until = Instant::now() + Duration::from_secs(12);
    let mut page = String::new();
    while Instant::now() < until {
        page = scrape(&metrics);
        if page.contains(&format!("{key} 1")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(page.contains(&format!("{key} 1")), "{page}");
    assert!(
        page.contains(&format!("trapgate_forwarded_total{{to=\"{at}\"}} 6")),
        "{page}"
    );
    let got = awaited(&t, 6);
    assert_eq!(got.len(), 6, "{got:?}");
    let _ = gw.stop();
}

#[test]
fn net_snmps_snmptrapd_receives_forwarded_traps_and_informs_with_their_origin() {
    let Some(trapd) = which("snmptrapd") else {
        trapgate::testing::skip(
            "snmptrapd is not installed (apt-get install snmptrapd, or bash .ci/run)",
        );
        return;
    };
    let port = UdpSocket::bind("127.0.0.6:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let dir = site_file("forward-trapd", "").with_file_name("");
    let conf = dir.join("snmptrapd.conf");
    std::fs::write(&conf, "authCommunity log,net nms\n").expect("conf");
    let mut nms = Command::new(trapd)
        .args(["-f", "-Lo", "-n", "-On", "-M", "/dev/null", "-C", "-c"])
        .arg(&conf)
        .arg(format!("udp:127.0.0.6:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmptrapd starts");
    let said = lines(nms.stdout.take().expect("stdout"));
    let forwards = format!(
        "\n[[forward]]\nto = \"127.0.0.6:{port}\"\nmatch = [\"*\"]\nversion = \"2c\"\ncommunity = \"nms\"\n"
    );
    let (gw, traps, metrics) = gateway(&site(&forwards), "forward-trapd");
    std::thread::sleep(Duration::from_millis(500));
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS");
    ups.send_to(&v1_on_battery(b"public"), traps).expect("send");
    ups.send_to(&v2(PduType::INFORM_REQUEST, COLD_START, 5, &[]), traps)
        .expect("send");
    let until = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < until
        && seen
            .iter()
            .filter(|l: &&String| l.contains(".1.3.6.1.6.3.18.1.3.0 = IpAddress: 127.13.0.1"))
            .count()
            < 2
    {
        if let Ok(l) = said.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let all = seen.join("\n");
    // snmptrapd prints each notification on one line: the converted onBattery and the
    // coldStart inform, each with the UPS's address as its origin.
    let with_origin: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains(".1.3.6.1.6.3.18.1.3.0 = IpAddress: 127.13.0.1"))
        .collect();
    assert_eq!(with_origin.len(), 2, "{all}");
    assert!(
        with_origin
            .iter()
            .any(|l| l.contains(".1.3.6.1.6.3.1.1.4.1.0 = OID: .1.3.6.1.4.1.318.0.5")),
        "{all}"
    );
    assert!(
        with_origin
            .iter()
            .any(|l| l.contains(".1.3.6.1.6.3.1.1.4.1.0 = OID: .1.3.6.1.6.3.1.1.5.1")),
        "{all}"
    );
    // snmptrapd answered the forwarded inform.
    let key = "trapgate_forward_informs_acknowledged_total{to=\"127.0.0.6:";
    let until = Instant::now() + Duration::from_secs(10);
    let mut page = String::new();
    while Instant::now() < until {
        page = scrape(&metrics);
        if page
            .lines()
            .any(|l| l.starts_with(key) && l.ends_with(" 1"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        page.lines()
            .any(|l| l.starts_with(key) && l.ends_with(" 1")),
        "{page}"
    );
    let _ = gw.stop();
    let _ = nms.kill();
    let _ = nms.wait();
}

/// net-snmp's SNMPv3 trap (authPriv, SHA and AES, engine 0x8000000001020304) with the
/// auth passphrase `auth`, caught on a socket of our own.
fn net_snmp_v3_trap(auth: &str) -> Option<Vec<u8>> {
    which("snmptrap")?;
    Some(caught_v3_trap(&[
        "-u",
        "upsv3user",
        "-l",
        "authPriv",
        "-a",
        "SHA",
        "-A",
        auth,
        "-x",
        "AES",
        "-X",
        "privpass123",
        "-e",
        "0x8000000001020304",
    ]))
}

#[test]
fn an_snmpv3_trap_goes_on_as_v2c_with_the_targets_community_and_a_wrong_key_goes_nowhere() {
    let (Some(good), Some(forged)) = (
        net_snmp_v3_trap("authpass123"),
        net_snmp_v3_trap("guessed-pass"),
    ) else {
        trapgate::testing::skip(
            "snmptrap is not installed (apt-get install snmp, or bash .ci/run)",
        );
        return;
    };
    let (t, at) = target("127.0.0.8");
    let users = "\n[[usm_user]]\nname = \"upsv3user\"\nauth_protocol = \"SHA\"\nauth_passphrase = \"authpass123\"\npriv_protocol = \"AES\"\npriv_passphrase = \"privpass123\"\n";
    let forwards = format!("\n[[forward]]\nto = \"{at}\"\nmatch = [\"*\"]\ncommunity = \"nms\"\n");
    let text = site(&(users.to_string() + &forwards)).replacen(
        "name = \"ups-main\"",
        "name = \"ups-main\"\nversion = \"3\"\nuser = \"upsv3user\"",
        1,
    );
    let (gw, traps, http) = in_process_with_http(&site_file("forward-v3", &text));
    let metrics = http.to_string();
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS");
    ups.send_to(&forged, traps).expect("send");
    assert!(
        received(&t).is_empty(),
        "a trap under a wrong key is not forwarded"
    );
    ups.send_to(&good, traps).expect("send");
    let got = awaited(&t, 1);
    // If nothing came: whether the gateway runs, what it said, what it counted.
    let why = || {
        std::thread::sleep(Duration::from_millis(1200));
        let counted: Vec<String> = scrape(&metrics)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
            .map(str::to_string)
            .collect();
        let said: Vec<String> = gw.out.try_iter().collect();
        format!("printed {said:?}; {counted:?}")
    };
    assert_eq!(got.len(), 1, "{got:?}\n{}", why());
    let arena = Bump::new();
    let m = Message::parse(&got[0].0, &arena).expect("decodes");
    assert_eq!((m.version, m.community), (Version::V2c, &b"nms"[..]));
    assert_eq!(
        binding(&m, SNMP_TRAP_OID_0),
        Some(Value::ObjectId(oid("1.3.6.1.4.1.318.0.5").as_oid()))
    );
    assert_eq!(
        binding(&m, "1.3.6.1.4.1.318.2.3.3.0"),
        Some(Value::OctetString(ON_BATTERY_TEXT.as_bytes()))
    );
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.3.0"),
        Some(Value::IpAddress([127, 13, 0, 1]))
    );
    gw.stop();
}

#[test]
fn an_ipv6_ups_trap_carries_its_sixteen_octets_as_the_forwarder_binding() {
    let Ok(ups) = UdpSocket::bind("[::1]:0") else {
        trapgate::testing::skip("this host has no IPv6 loopback");
        return;
    };
    let (t, at) = target("127.0.0.9");
    let forwards = format!("\n[[forward]]\nto = \"{at}\"\nmatch = [\"*\"]\n");
    let text = site(&forwards).replace(&format!("address = \"{UPS}\""), "address = \"::1\"");
    let gw = InProcess::with(
        &text,
        trapgate::daemon::Options {
            listen: vec!["[::1]:0".parse().expect("an address")],
            ..trapgate::daemon::Options::default()
        },
    );
    let traps = gw.traps;
    ups.send_to(&v2(PduType::SNMPV2_TRAP, COLD_START, 3, &[]), traps)
        .expect("send");
    let got = awaited(&t, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    let arena = Bump::new();
    let m = Message::parse(&got[0].0, &arena).expect("decodes");
    assert_eq!(
        binding(&m, "1.3.6.1.4.1.8072.9999.9999.162.1.0"),
        Some(Value::OctetString(&std::net::Ipv6Addr::LOCALHOST.octets()))
    );
    assert_eq!(
        binding(&m, "1.3.6.1.6.3.18.1.3.0"),
        None,
        "no IPv4 origin to give"
    );
    gw.stop();
}

#[test]
fn sighup_moves_forwarding_to_the_new_targets_and_keeps_a_staying_targets_counts() {
    let (t1, a1) = target("127.0.0.10");
    let (t2, a2) = target("127.0.0.11");
    let one = |to: &SocketAddr| format!("\n[[forward]]\nto = \"{to}\"\nmatch = [\"*\"]\n");
    let file = site_file("forward-hup", &site(&one(&a1)));
    let (child, _out, err, traps, http) = run_with_http(&file);
    let metrics = http.to_string();
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS");
    let trap = v2(PduType::SNMPV2_TRAP, COLD_START, 1, &[]);
    ups.send_to(&trap, traps).expect("send");
    assert_eq!(awaited(&t1, 1).len(), 1);
    // Reloaded: target 1 stays, target 2 comes.
    std::fs::write(&file, site(&(one(&a1) + &one(&a2)))).expect("write");
    signal(&child, libc::SIGHUP);
    expect_line(&err, &["site reloaded"]);
    ups.send_to(&trap, traps).expect("send");
    assert_eq!(awaited(&t1, 1).len(), 1, "target 1 still");
    assert_eq!(awaited(&t2, 1).len(), 1, "target 2 now");
    let key = format!("trapgate_forwarded_total{{to=\"{a1}\"}}");
    let page = metric_until(&metrics, &key, 2);
    assert!(page.contains(&format!("{key} 2")), "counted on: {page}");
    // Target 1 goes: nothing more for it.
    std::fs::write(&file, site(&one(&a2))).expect("write");
    signal(&child, libc::SIGHUP);
    expect_line(&err, &["site reloaded"]);
    ups.send_to(&trap, traps).expect("send");
    assert_eq!(awaited(&t2, 1).len(), 1);
    assert!(received(&t1).is_empty(), "target 1 is gone");
    terminate(&child);
}

/// Forwards leave from the gateway's own listen address (an NMS that filters by
/// source sees what the engineer configured), or from a target's `source`, as
/// snmptrapd's clientaddr; not from the host's default address.
#[test]
fn forwards_leave_from_the_listen_address_or_the_targets_source() {
    let (nms, nms_at) = target("127.0.0.9");
    let (other, other_at) = target("127.0.0.10");
    let text = site(&format!(
        "\n[[forward]]\nto = \"{nms_at}\"\n\n[[forward]]\nto = \"{other_at}\"\nsource = \"127.0.0.4\"\n"
    ))
    .replace("listen = [\"0.0.0.0:162\"]", "listen = [\"127.0.0.3:0\"]");
    let gw = InProcess::start(&text, None);
    let traps = gw.traps;
    assert_eq!(traps.ip().to_string(), "127.0.0.3");
    let ups = UdpSocket::bind((UPS, 0)).expect("the UPS");
    ups.send_to(&v1_on_battery(b"public"), traps).expect("send");
    let to_nms = awaited(&nms, 1);
    let to_other = awaited(&other, 1);
    gw.stop();
    assert_eq!(to_nms.len(), 1, "{to_nms:?}");
    assert_eq!(
        to_nms[0].1.ip().to_string(),
        "127.0.0.3",
        "the listen address"
    );
    assert_eq!(to_other.len(), 1, "{to_other:?}");
    assert_eq!(
        to_other[0].1.ip().to_string(),
        "127.0.0.4",
        "the target's source"
    );
}
