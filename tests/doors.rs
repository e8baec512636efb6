//! The doors the last release opened, attacked as someone on the site's network would
//! (loopback, the site's own addresses bound as sources): SNMPv3 Reports, the key
//! localization budget, the NUT and apcupsd NIS servers, forwarding between two
//! gateways, a journal with a stray line. Each held to the old rules: nothing forged
//! moves a decision, no flood holds a real one up, no address takes what is another's.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use trapgate::wire::oid::oid;
use trapgate::wire::v3::{Level, Seal, seal};
use trapgate::wire::{Message, PduType, Version};

/// A reportable SNMPv3 get-request with no bindings, unauthenticated, from `user` and
/// naming `engine` (empty: a discovery probe, as net-snmp sends before anything else).
fn reportable(engine: &[u8], user: &[u8], msg_id: i32) -> Vec<u8> {
    let pdu = Message::pdu(Version::V3, b"", PduType::GET_REQUEST, msg_id, &[]).pdu;
    let s = Seal {
        msg_id,
        max_size: 65_507,
        reportable: true,
        engine_id: engine,
        boots: 0,
        time: 0,
        user,
        level: Level::NoAuthNoPriv,
        context_engine_id: engine,
        context_name: b"",
        salt: [0; 8],
    };
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    seal(&pdu, &s, None, &mut scratch, &mut out);
    out
}

/// APC's upsOnBattery as a v1 trap from `agent` with community "public".
fn on_battery(agent: [u8; 4]) -> Vec<u8> {
    trapgate::wire::encode::to_vec(&Message::trap_v1(
        b"public",
        oid("1.3.6.1.4.1.318").as_oid(),
        agent,
        5,
        100,
        &[],
    ))
}

/// Datagrams waiting on `s` (read until it is quiet for 300 ms, 10 s at most), and the
/// largest one's size.
fn count_received(s: &UdpSocket) -> (usize, usize) {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let (mut n, mut largest) = (0, 0);
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until
        && let Ok((k, _)) = s.recv_from(&mut buf)
    {
        n += 1;
        largest = largest.max(k);
    }
    (n, largest)
}

/// A site of `n` APC UPSes at 127.0.4.1 … (v1, "public"), one tier-1 NVR at 127.0.4.200
/// on the first, and `extra` appended.
fn upses(n: u8, extra: &str) -> String {
    let mut s = String::from(
        "[gateway]\nlisten = [\"127.0.0.1:0\"]\nagent = \"127.0.0.1:0\"\n\n[policy]\ngrace = { 1 = \"10m\" }\nshutdown_below_charge = 30\nshutdown_below_runtime = \"5m\"\nconfirm_by_poll = false\n",
    );
    for i in 1..=n {
        s += &format!(
            "\n[[ups]]\nname = \"ups-{i}\"\naddress = \"127.0.4.{i}\"\nvendor = \"apc\"\noutlet_off_delay = \"3m\"\npoll_interval = \"1h\"\n"
        );
    }
    s += "\n[[recorder]]\nname = \"nvr-1\"\naddress = \"127.0.4.200\"\nups = \"ups-1\"\ntier = 1\nshutdown_time = \"90s\"\n";
    s + extra
}

/// Reports on the trap port go only where one is due and never many: a message naming
/// another engine than trapgate's gets none; discovery probes flooded from a site
/// UPS's address get at most the gateway's budget of them (256, then 64 a second);
/// meanwhile every other UPS's trap is decided.
#[test]
fn reports_on_the_trap_port_are_few_and_cost_no_real_trap() {
    let file = site_file("doors-reports", &upses(11, ""));
    let (mut gw, traps, http) = in_process_with_http(&file);
    let out = std::mem::replace(&mut gw.out, std::sync::mpsc::channel().1);
    let http = http.to_string();
    let flooder = UdpSocket::bind("127.0.4.1:0").expect("the first UPS's address");
    // Naming another engine than trapgate's: no Report, however reportable.
    for i in 0..2_000 {
        flooder
            .send_to(
                &reportable(b"\x80\x00\x00\x00\x09other", b"nobody", i),
                traps,
            )
            .expect("send");
    }
    let (other_engine, _) = count_received(&flooder);
    assert_eq!(other_engine, 0, "Reports for another engine");
    // 30,000 discovery probes, 10,000 a second (a test's debug build on a shared
    // machine; `trapflood --reports` floods a release build at 200,000 a second), and
    // meanwhile the ten other UPSes' traps, half of them steered to the flood's worker.
    let started = Instant::now();
    let probe = reportable(b"", b"", 1);
    let flood = {
        let flooder = flooder.try_clone().expect("clone");
        std::thread::spawn(move || {
            for i in 0..30_000u32 {
                let _ = flooder.send_to(&probe, traps);
                if i % 100 == 99 {
                    let due = started + Duration::from_millis(u64::from(i + 1) / 10);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            }
        })
    };
    for i in 2..=11u8 {
        let ups = UdpSocket::bind(format!("127.0.4.{i}:0")).expect("a UPS's address");
        ups.send_to(&on_battery([127, 0, 4, i]), traps)
            .expect("send");
        std::thread::sleep(Duration::from_millis(200));
    }
    flood.join().expect("the flood");
    let elapsed = started.elapsed().as_secs() as usize;
    let (reports, largest) = count_received(&flooder);
    let mut decided = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while decided.len() < 10 && Instant::now() < deadline {
        if let Ok(l) = out.recv_timeout(Duration::from_millis(100))
            && l.contains("\"kind\":\"on_battery\"")
        {
            decided.insert(
                l.split("\"ups\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(str::to_string),
            );
        }
    }
    let page = scrape(&http);
    let _ = gw.stop();
    assert_eq!(
        decided.len(),
        10,
        "every other UPS's trap decided: {decided:?}"
    );
    assert!(reports >= 1, "discovery is answered");
    assert!(
        reports <= 256 + 64 * (elapsed + 2),
        "{reports} Reports in {elapsed} s"
    );
    assert!(
        largest <= 3 * probe_len() && largest <= 1472,
        "a Report of {largest} bytes for a probe of {}",
        probe_len()
    );
    let held = page
        .lines()
        .find_map(|l| l.strip_prefix("trapgate_usm_reports_held_total "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(held > 0, "the held-back Reports are counted:\n{page}");
}

fn probe_len() -> usize {
    reportable(b"", b"", 1).len()
}

/// The virtual UPS answers nobody but a recorder, not even a discovery probe: a
/// stranger spoofed as the source gets nothing back; a recorder's own address gets at
/// most its share of answers.
#[test]
fn the_agent_reflects_nothing_to_a_stranger_and_little_to_a_recorder() {
    let file = site_file("doors-agent", &upses(1, ""));
    let gw = InProcess::start(&std::fs::read_to_string(&file).expect("the site"), None);
    let agent = gw.agent;
    let stranger = UdpSocket::bind("127.0.9.9:0").expect("a stranger's address");
    let recorder = UdpSocket::bind("127.0.4.200:0").expect("the recorder's address");
    let probe = reportable(b"", b"", 1);
    for _ in 0..1_000 {
        stranger.send_to(&probe, agent).expect("send");
        recorder.send_to(&probe, agent).expect("send");
    }
    let (to_stranger, _) = count_received(&stranger);
    let (to_recorder, largest) = count_received(&recorder);
    gw.stop();
    assert_eq!(to_stranger, 0, "the agent answered a stranger");
    assert!(
        (1..=60).contains(&to_recorder),
        "{to_recorder} answers to 1,000 probes (a recorder's share: 40, then 20 a second)"
    );
    assert!(
        largest <= 3 * probe.len(),
        "{largest} bytes for {}",
        probe.len()
    );
}

/// A stray line of another journal format amid this one's is skipped with an alert,
/// and the gateway starts (it used to refuse, and under systemd restart into the same
/// refusal); a journal that begins in another format is still refused.
#[test]
fn a_stray_journal_line_of_another_format_is_skipped_with_an_alert() {
    let file = site_file("doors-journal", &upses(1, ""));
    let journal = file.with_file_name("journal");
    let _ = std::fs::remove_file(&journal);
    let run = |journal: &std::path::Path| {
        start(&[
            "run",
            "--config",
            file.to_str().expect("UTF-8"),
            "--journal",
            journal.to_str().expect("UTF-8"),
        ])
    };
    let (child, _out, err) = run(&journal);
    let _ = listening_on(&err);
    terminate(&child);
    let mut child = child;
    assert!(child.wait().expect("exit").success());
    let newer = "{\"v\":5,\"t\":7,\"decision\":\"Acknowledged\",\"recorder\":\"nvr-1\"}";
    let stray = format!("{:08x} {newer}\n", crc32fast::hash(newer.as_bytes()));
    // Appended at the file's end, after the blank lines it was prepared with: named by
    // its line in the file, as an editor counts it.
    let before = std::fs::read(&journal).expect("the journal");
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("the journal");
    f.write_all(stray.as_bytes()).expect("append");
    drop(f);
    let (child, out, err) = run(&journal);
    let warned = expect_line(&err, &["journal format 5"]);
    assert!(warned.contains(&format!("journal:{line}: ")), "{warned}");
    let _ = expect_line(&err, &["listening on"]);
    let alert = expect_line(&out, &["\"kind\":\"journal_line_skipped\""]);
    assert!(alert.contains("journal format 5"), "{alert}");
    terminate(&child);
    // One that begins in another format: refused, saying so.
    let other = file.with_file_name("journal-other");
    std::fs::write(&other, &stray).expect("write");
    let (mut child, _out, err) = run(&other);
    let status = child.wait().expect("exit");
    // Everything it said: its stderr's reader ends at the pipe's end, which comes with
    // its exit (what was read so far, `try_iter`, could miss a line still on its way).
    let said: Vec<String> = err.iter().collect();
    assert!(!status.success(), "{said:?}");
    assert!(
        said.iter().any(|l| l.contains("journal format 5")),
        "{said:?}"
    );
}

/// Two gateways that forward to each other pass a notification on once each: what
/// went through a gateway and comes back is not forwarded again (it used to bounce 32
/// times, the forwarder bindings' limit). Both listen on every address, as gateways
/// do, so that each one's forwards leave from an address the other does not know as
/// its target's: only the forwarder binding can tell.
#[test]
fn two_gateways_forwarding_to_each_other_pass_a_trap_on_once() {
    let nms_a = UdpSocket::bind("127.0.5.9:0").expect("gateway A's NMS");
    let port = || {
        UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port()
    };
    let (a_port, b_port) = (port(), port());
    let site = |port: u16, peer: String, extra: &str| {
        upses(
            1,
            &format!("\n[[forward]]\nto = \"{peer}\"\nmatch = [\"*\"]\nsources = \"any\"\n{extra}"),
        )
        .replace(
            "listen = [\"127.0.0.1:0\"]",
            &format!("listen = [\"0.0.0.0:{port}\"]"),
        )
    };
    let nms = nms_a.local_addr().expect("addr");
    let a = site_file(
        "doors-loop-a",
        &site(
            a_port,
            format!("127.0.5.2:{b_port}"),
            &format!("\n[[forward]]\nto = \"{nms}\"\nmatch = [\"*\"]\nsources = \"any\"\n"),
        ),
    );
    let b = site_file(
        "doors-loop-b",
        &site(b_port, format!("127.0.5.1:{a_port}"), ""),
    );
    let read = |f: &std::path::Path| std::fs::read_to_string(f).expect("the site");
    let (ga, gb) = (
        InProcess::start(&read(&a), None),
        InProcess::start(&read(&b), None),
    );
    let ups = UdpSocket::bind("127.0.4.1:0").expect("the UPS");
    let at_a: SocketAddr = format!("127.0.5.1:{a_port}").parse().expect("addr");
    // A v1 trap: A passes it to B and to its NMS; B passes it back to A, which knows it
    // (a v1 trap has no forwarder binding: the same PDU forwarded within 30 s).
    ups.send_to(&on_battery([127, 0, 4, 1]), at_a)
        .expect("send");
    std::thread::sleep(Duration::from_secs(1));
    let (v1, _) = count_received(&nms_a);
    // A v2c trap: B passes it back naming A's address as a forwarder; A passes it
    // nowhere.
    let up = oid("1.3.6.1.2.1.1.3.0");
    let trap_oid = oid("1.3.6.1.6.3.1.1.4.1.0");
    let on_battery_v2 = oid("1.3.6.1.4.1.318.0.5");
    let vbs = [
        trapgate::wire::VarBind {
            name: up.as_oid(),
            value: trapgate::wire::Value::TimeTicks(5),
        },
        trapgate::wire::VarBind {
            name: trap_oid.as_oid(),
            value: trapgate::wire::Value::ObjectId(on_battery_v2.as_oid()),
        },
    ];
    let v2 = trapgate::wire::encode::to_vec(&Message::pdu(
        Version::V2c,
        b"public",
        PduType::SNMPV2_TRAP,
        7,
        &vbs,
    ));
    ups.send_to(&v2, at_a).expect("send");
    std::thread::sleep(Duration::from_secs(1));
    let (v2c, _) = count_received(&nms_a);
    ga.stop();
    gb.stop();
    assert_eq!(v1, 1, "A's NMS got the v1 trap {v1} times: a bounce");
    assert_eq!(v2c, 1, "A's NMS got the v2c trap {v2c} times: a bounce");
}

/// Lines of `reader` until one contains `want` (5 s at most).
fn read_until(reader: &mut BufReader<TcpStream>, want: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("closed after {seen:?}")),
            Ok(_) if line.contains(want) => return Ok(line),
            Ok(_) => seen.push_str(&line),
            Err(_) => {}
        }
    }
    Err(format!("no {want:?} in {seen:?}"))
}

/// A TCP connection to `to` from `from` (a recorder's address), reads timing out.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(
        &format!("{from}:0")
            .parse::<SocketAddr>()
            .expect("addr")
            .into(),
    )
    .expect("bind");
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .expect("connect");
    // Closed with a reset: thousands of TIME-WAITs would take the ports of the next.
    s.set_linger(Some(Duration::ZERO)).expect("linger");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s
}

/// A site with two NUT recorders (nas-1 at 127.0.6.1, nas-2 at 127.0.6.2, tier 1) and
/// two apcupsd ones (127.0.6.3, 127.0.6.4), its NUT and NIS servers on `nut` and `nis`.
fn tcp_site(nut: u16, nis: u16) -> String {
    let mut s = upses(1, "").replace(
        "agent = \"127.0.0.1:0\"",
        &format!("agent = \"127.0.0.1:0\"\nnut = \"127.0.0.1:{nut}\"\nnis = \"127.0.0.1:{nis}\""),
    );
    for (i, name) in [(1, "nas-1"), (2, "nas-2")] {
        s += &format!(
            "\n[[recorder]]\nname = \"{name}\"\naddress = \"127.0.6.{i}\"\nups = \"ups-1\"\ntier = 1\nshutdown_time = \"60s\"\nkind = \"nut\"\nnut_user = \"monuser\"\nnut_password = \"secret{i}\"\nnut_ups = \"ups\"\n"
        );
    }
    for (i, name) in [(3, "srv-3"), (4, "srv-4")] {
        s += &format!(
            "\n[[recorder]]\nname = \"{name}\"\naddress = \"127.0.6.{i}\"\nups = \"ups-1\"\ntier = 1\nshutdown_time = \"60s\"\nkind = \"apcupsd\"\n"
        );
    }
    s
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One apcupsd status fetch from `from`: the status line, or why there is none.
fn nis_status(from: &str, nis: SocketAddr) -> Result<String, String> {
    let mut s = connect_from(from, nis);
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(&[0, 6, b's', b't', b'a', b't', b'u', b's'])
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&[0, 0]) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    text.lines()
        .find(|l| l.contains("STATUS   :"))
        .map(str::to_string)
        .ok_or(text)
}

/// One address cannot take the NUT or the NIS server: thousands of idle connections
/// from one recorder's address leave it its share (16); another NAS logs in and reads
/// its status, another apcupsd host fetches its; and 16 connections pipelining GET VAR
/// without a login keep no new client waiting.
#[test]
fn one_address_takes_its_share_of_the_nut_and_nis_servers_and_no_more() {
    let (nut_port, nis_port) = (free_tcp_port(), free_tcp_port());
    let file = site_file("doors-tcp", &tcp_site(nut_port, nis_port));
    let (gw, _, http) = in_process_with_http(&file);
    let http = http.to_string();
    let nut: SocketAddr = format!("127.0.0.1:{nut_port}").parse().expect("addr");
    let nis: SocketAddr = format!("127.0.0.1:{nis_port}").parse().expect("addr");
    // 2,000 idle connections from nas-1's address and 2,000 from srv-4's.
    let idle: Vec<TcpStream> = (0..2_000)
        .flat_map(|_| {
            [
                connect_from("127.0.6.1", nut),
                connect_from("127.0.6.4", nis),
            ]
        })
        .collect();
    // nas-2 logs in and reads its status; srv-3 fetches its.
    let mut nas2 = BufReader::new(connect_from("127.0.6.2", nut));
    nas2.get_mut()
        .write_all(b"USERNAME monuser\nPASSWORD secret2\nLOGIN ups\nGET VAR ups ups.status\n")
        .expect("write");
    let status = read_until(&mut nas2, "VAR ups ups.status").expect("nas-2 answered");
    assert_eq!(status.trim(), "VAR ups ups.status \"OL\"");
    let fetched = nis_status("127.0.6.3", nis).expect("srv-3 answered");
    assert!(fetched.contains("ONLINE"), "{fetched}");
    let page = scrape(&http);
    let open = |server: &str| {
        page.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("trapgate_tcp_connections{{server=\"{server}\"}} "))
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    assert!(open("nut") <= 17 && open("nis") <= 17, "{page}");
    drop(idle);
    // 16 connections from nas-1 pipelining GET VAR without a login, for 3 s: a new NAS
    // is accepted and answered within a second.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..16)
        .map(|_| {
            let mut s = connect_from("127.0.6.1", nut);
            let mut r = s.try_clone().expect("clone");
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let reader = std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    let _ = r.set_read_timeout(Some(Duration::from_secs(5)));
                    while r.read(&mut buf).unwrap_or(0) > 0 {}
                });
                let lines = b"GET VAR ups ups.status\n".repeat(200);
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if s.write_all(&lines).is_err() {
                        break;
                    }
                }
                let _ = s.shutdown(std::net::Shutdown::Both);
                let _ = reader.join();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let mut nas2 = BufReader::new(connect_from("127.0.6.2", nut));
    nas2.get_mut()
        .write_all(b"GET VAR ups ups.status\n")
        .expect("write");
    let answered = read_until(&mut nas2, "VAR ups ups.status");
    let waited = asked.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        let _ = b.join();
    }
    let _ = gw.stop();
    assert!(answered.is_ok(), "{answered:?}");
    assert!(
        waited < Duration::from_secs(1),
        "a new client waited {waited:?} behind 16 busy ones"
    );
}

/// What NUT can prove is a login: a client that names another recorder's user without
/// its password is answered but not taken as that recorder heard from (not `Back`);
/// guessed passwords are counted and answered ever later; after FSD only the first
/// logout is journaled (a client that logs in and out for ever adds a count, not a
/// record each).
#[test]
fn only_a_logged_in_nut_client_is_heard_and_guesses_are_slowed_and_counted() {
    let (nut_port, nis_port) = (free_tcp_port(), free_tcp_port());
    let file = site_file("doors-nut-login", &tcp_site(nut_port, nis_port));
    let journal = file.with_file_name("journal");
    let _ = std::fs::remove_file(&journal);
    let mut gw = InProcess::with(
        &std::fs::read_to_string(&file).expect("the site"),
        trapgate::daemon::Options {
            metrics: Some("127.0.0.1:0".parse().expect("an address")),
            journal: Some(journal.clone()),
            ..trapgate::daemon::Options::default()
        },
    );
    let (out, traps) = (gw.take_out(), gw.traps);
    let http = gw.http.expect("an endpoint").to_string();
    let nut: SocketAddr = format!("127.0.0.1:{nut_port}").parse().expect("addr");
    // Guesses: five wrong passwords on one connection, each answer later than the last.
    let mut guess = BufReader::new(connect_from("127.0.6.2", nut));
    guess
        .get_mut()
        .write_all(b"USERNAME monuser\n")
        .expect("write");
    let _ = read_until(&mut guess, "OK");
    let started = Instant::now();
    for i in 0..5 {
        let s = guess.get_mut();
        let _ = s.write_all(format!("PASSWORD guess{i}\nLOGIN ups\n").as_bytes());
        let denied = read_until(&mut guess, "ERR");
        // The connection has its password set once: the next PASSWORD is refused, and
        // LOGIN is tried again with the first.
        assert!(denied.is_ok(), "{denied:?}");
    }
    let slowed = started.elapsed();
    assert!(
        slowed >= Duration::from_millis(250 + 500 + 1_000 + 2_000),
        "five guesses answered in {slowed:?}"
    );
    // The low battery: nas-1 and nas-2 are shown FSD; power comes back.
    let ups = UdpSocket::bind("127.0.4.1:0").expect("the UPS");
    let low = trapgate::wire::encode::to_vec(&Message::trap_v1(
        b"public",
        oid("1.3.6.1.4.1.318").as_oid(),
        [127, 0, 4, 1],
        7,
        100,
        &[],
    ));
    ups.send_to(&low, traps).expect("send");
    expect_line(&out, &["\"decision\":\"ShutdownRecorder\"", "nas-1"]);
    // nas-1 reads FSD and logs out (its acknowledgement), then does so 100 times more.
    for _ in 0..101 {
        let mut s = BufReader::new(connect_from("127.0.6.1", nut));
        s.get_mut()
            .write_all(
                b"USERNAME monuser\nPASSWORD secret1\nLOGIN ups\nGET VAR ups ups.status\nLOGOUT\n",
            )
            .expect("write");
        read_until(&mut s, "Goodbye").expect("logged out");
    }
    let restored = trapgate::wire::encode::to_vec(&Message::trap_v1(
        b"public",
        oid("1.3.6.1.4.1.318").as_oid(),
        [127, 0, 4, 1],
        9,
        100,
        &[],
    ));
    ups.send_to(&restored, traps).expect("send");
    expect_line(&out, &["\"decision\":\"PowerBack\""]);
    // Someone at nas-2's address names its user without its password and asks its
    // status: answered, but nas-2 is not back for it.
    let mut anon = BufReader::new(connect_from("127.0.6.2", nut));
    anon.get_mut()
        .write_all(b"USERNAME monuser\nGET VAR ups ups.status\n")
        .expect("write");
    read_until(&mut anon, "VAR ups ups.status").expect("answered");
    let back = none_back(&out, "nas-2", Duration::from_millis(1_500));
    let page = scrape(&http);
    gw.stop();
    assert!(back.is_none(), "nas-2 back without a login: {back:?}");
    let refused = page
        .lines()
        .find_map(|l| l.strip_prefix("trapgate_refused_total{reason=\"nut_wrong_password\"} "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(refused, 5, "{page}");
    let logouts = page
        .lines()
        .find_map(|l| l.strip_prefix("trapgate_nut_logouts_after_acknowledgement_total "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(logouts, 100, "{page}");
    let written = std::fs::read_to_string(&journal).expect("the journal");
    assert_eq!(
        written.matches("\"input\":\"nut_left\"").count() + written.matches("NutLeft").count(),
        1,
        "one logout journaled, the acknowledgement"
    );
}

/// Whether a `Back` line for `recorder` comes on `out` within `wait`.
fn none_back(
    out: &std::sync::mpsc::Receiver<String>,
    recorder: &str,
    wait: Duration,
) -> Option<String> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok(l) = out.recv_timeout(Duration::from_millis(50))
            && l.contains("\"action\":\"Back\"")
            && l.contains(recorder)
        {
            return Some(l);
        }
    }
    None
}

/// Forged v3 traps with random engine IDs from `from` to `to`, `per_second` for `for_`.
fn engine_flood(
    from: &str,
    to: SocketAddr,
    per_second: u32,
    for_: Duration,
) -> std::thread::JoinHandle<u64> {
    let socket = UdpSocket::bind(format!("{from}:0")).expect("the flood's address");
    std::thread::spawn(move || {
        let ku = trapgate::wire::usm::password_to_key(
            trapgate::wire::usm::AuthProtocol::Sha256,
            b"a guess of the forger",
        );
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < for_ {
            let n = sent as u32;
            let engine = [
                0x80,
                0,
                0x1f,
                0x88,
                4,
                0xf0,
                (n >> 16) as u8,
                (n >> 8) as u8,
                n as u8,
            ];
            let _ = socket.send_to(&trapgate::testing::v3_low_battery_keyed(&ku, &engine), to);
            sent += 1;
            let due = start + Duration::from_secs_f64(sent as f64 / f64::from(per_second));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        sent
    })
}

/// net-snmp's snmptrap as the card: an APC trap (`specific`) from engine `engine`,
/// user upsv3user at authPriv, sent from the card's address.
fn card_trap(engine: &str, from: &str, to: SocketAddr, specific: u32) -> std::process::Output {
    net_snmp_cmd("snmptrap")
        .args([
            "-M",
            "/dev/null",
            "-v",
            "3",
            "-e",
            engine,
            "-u",
            "upsv3user",
            "-l",
            "authPriv",
        ])
        .args([
            "-a",
            "SHA-256",
            "-A",
            "authpass123",
            "-x",
            "AES",
            "-X",
            "privpass123",
        ])
        .arg(format!("--clientaddr={from}"))
        .arg(to.to_string())
        .args(["", &format!("1.3.6.1.4.1.318.0.{specific}")])
        .output()
        .expect("snmptrap runs")
}

/// A v3 UPS is heard at once after a start, whatever a flood of forged engine IDs from
/// its own address spends: the engine the poller authenticated on its card is the
/// site's (it used to take the card's sixth send, or none, under 200 to 2,000 forgeries
/// a second); and after a restart, with the card's agent gone, the journal still knows
/// it.
#[test]
fn a_v3_cards_first_trap_is_heard_under_a_flood_of_forged_engines_and_after_a_restart() {
    if !have_snmptrap() {
        return;
    }
    let card_engine = "0x80001f8804636172642d7465737431";
    let port = UdpSocket::bind("127.0.7.1:0")
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
confirm_by_poll = false

[[usm_user]]
name = "upsv3user"
auth_protocol = "SHA-256"
auth_passphrase = "authpass123"
priv_protocol = "AES"
priv_passphrase = "privpass123"

[[ups]]
name = "ups-v3"
address = "127.0.7.1"
port = {port}
vendor = "ups-mib"
poll_interval = "1s"
outlet_off_delay = "3m"
version = "3"
user = "upsv3user"

[[recorder]]
name = "nvr-1"
address = "127.0.7.200"
ups = "ups-v3"
tier = 1
shutdown_time = "90s"
"#
    );
    let file = site_file("doors-v3-engines", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    let Some(mut card) = snmpd_card(
        &dir,
        &format!("udp:127.0.7.1:{port}"),
        &format!(
            "createUser upsv3user SHA-256 authpass123 AES privpass123\nrouser upsv3user priv\nexactEngineID {card_engine}\n\
             override .1.3.6.1.2.1.33.1.4.1.0 integer 5\noverride .1.3.6.1.2.1.33.1.2.1.0 integer 2\n\
             override .1.3.6.1.2.1.33.1.2.4.0 integer 90\noverride .1.3.6.1.2.1.33.1.2.3.0 integer 40\n"
        ),
    ) else {
        return;
    };
    let journal = dir.join("journal");
    let _ = std::fs::remove_file(&journal);
    let run = || {
        let mut gw = InProcess::with(
            &std::fs::read_to_string(&file).expect("the site"),
            trapgate::daemon::Options {
                journal: Some(journal.clone()),
                workers: Some(1),
                ..trapgate::daemon::Options::default()
            },
        );
        let (out, traps) = (gw.take_out(), gw.traps);
        (gw, out, traps)
    };
    let (gw, out, traps) = run();
    // The poller authenticates the card's engine (journaled: EngineKnown); the card is
    // on battery.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains("engine_known")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    // 2,000 forgeries a second from the card's own address, and the card's low battery
    // half a second in.
    let flood = engine_flood("127.0.7.1", traps, 2_000, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    let sent = card_trap(card_engine, "127.0.7.1", traps, 7);
    assert!(sent.status.success(), "{sent:?}");
    let decided = expect_line(&out, &["\"decision\":\"ShutdownRecorder\"", "nvr-1"]);
    assert!(decided.contains("lowBattery"), "{decided}");
    let forged = flood.join().expect("the flood");
    gw.stop();
    let _ = card.kill();
    let _ = card.wait();
    assert!(forged > 4_000, "{forged} forgeries sent");
    // A restart, the card's agent gone (no poll answers): the journal knows its engine.
    let (gw, out, traps) = run();
    let flood = engine_flood("127.0.7.1", traps, 2_000, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    let sent = card_trap(card_engine, "127.0.7.1", traps, 9);
    assert!(sent.status.success(), "{sent:?}");
    let back = expect_line(&out, &["\"decision\":\"PowerBack\""]);
    assert!(back.contains("ups-v3"), "{back}");
    let _ = flood.join();
    gw.stop();
}

/// A connection that says nothing is closed: an apcupsd fetch is one request, so a NIS
/// connection idle for 15 s goes (a NUT one after 120 s: upsmon talks every few
/// seconds), and its slot with it.
#[test]
fn an_idle_nis_connection_is_closed() {
    let (nut_port, nis_port) = (free_tcp_port(), free_tcp_port());
    let file = site_file("doors-idle", &tcp_site(nut_port, nis_port));
    let (gw, _, http) = in_process_with_http(&file);
    let http = http.to_string();
    let nis: SocketAddr = format!("127.0.0.1:{nis_port}").parse().expect("addr");
    let mut quiet = connect_from("127.0.6.3", nis);
    quiet
        .set_read_timeout(Some(Duration::from_secs(25)))
        .expect("timeout");
    let opened = Instant::now();
    // A signal of the process (this test's gateway runs in it) is not the close.
    let closed = loop {
        match quiet.read(&mut [0u8; 16]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    let after = opened.elapsed();
    let want = "trapgate_tcp_connections_idle_closed_total{server=\"nis\"} 1";
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut page = scrape(&http);
    while !page.contains(want) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        page = scrape(&http);
    }
    let _ = gw.stop();
    assert!(
        matches!(closed, Ok(0))
            || closed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{closed:?} after {after:?}"
    );
    assert!(
        (Duration::from_secs(14)..Duration::from_secs(20)).contains(&after),
        "closed after {after:?}"
    );
    assert!(page.contains(want), "{page}");
}
