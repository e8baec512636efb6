//! What trapgate trusts, attacked on loopback as someone on the site's network would:
//! with the UPS's or a recorder's address bound as the source, forged poll answers,
//! forged acknowledgements, garbage, floods of refused traps and of GetBulk requests.
//! None of it may move a decision, and no flood may hold a real one up.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bumpalo::Bump;
use common::*;
use trapgate::wire::oid::oid;
use trapgate::wire::{Message, Pdu, PduType, Value, VarBind, Version, encode};

/// The UPS of these sites; its card's agent is the test's socket on this address.
const UPS: &str = "127.0.0.250";
/// The recorder: the test's socket on this address plays it.
const NVR: &str = "127.0.0.244";

/// A site with the UPS at 127.0.0.250 (APC, polled at `ups_port`) and `recorders`.
fn site(ups_port: u16, policy: &str, recorders: &str) -> String {
    format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"
community = "public"

[policy]
grace = {{ 1 = "10m", 2 = "2m" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
poll_timeout = "5s"
{policy}

[[ups]]
name = "ups-main"
address = "{UPS}"
community = "public"
port = {ups_port}
vendor = "apc"
poll_interval = "10s"
outlet_off_delay = "3m"

{recorders}"#
    )
}

fn recorder(name: &str, address: &str, port: u16, extra: &str) -> String {
    format!(
        "[[recorder]]\nname = \"{name}\"\naddress = \"{address}\"\nport = {port}\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"90s\"\n{extra}\n"
    )
}

fn bind(address: &str) -> UdpSocket {
    let s = UdpSocket::bind((address, 0)).unwrap_or_else(|e| panic!("bind {address}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    s
}

/// An APC v1 trap `specific` with `community`, as the UPS's card sends it.
fn apc_trap(community: &[u8], specific: i64) -> Vec<u8> {
    trapgate::testing::v1_trap(
        community,
        "1.3.6.1.4.1.318",
        [127, 0, 0, 250],
        specific,
        &[],
    )
}

/// The recorder's acknowledgement (enterprise 1.3.6.1.4.1.50001), with `community`.
fn ack(community: &[u8]) -> Vec<u8> {
    trapgate::testing::v1_trap(community, "1.3.6.1.4.1.50001", [127, 0, 0, 244], 200, &[])
}

/// PowerNet's poll objects, as a card answers them: upsBasicOutputStatus (3 = on
/// battery, 2 = on line), upsBasicBatteryStatus, upsAdvBatteryCapacity, runtime.
fn powernet_answer(on_battery: bool, charge: u32) -> Vec<(String, Value<'static>)> {
    vec![
        (
            "1.3.6.1.4.1.318.1.1.1.4.1.1.0".into(),
            Value::Integer(if on_battery { 3 } else { 2 }),
        ),
        (
            "1.3.6.1.4.1.318.1.1.1.2.1.1.0".into(),
            Value::Integer(if charge < 10 { 3 } else { 2 }),
        ),
        (
            "1.3.6.1.4.1.318.1.1.1.2.2.1.0".into(),
            Value::Gauge32(charge),
        ),
        (
            "1.3.6.1.4.1.318.1.1.1.2.2.3.0".into(),
            Value::TimeTicks(charge * 1200),
        ),
    ]
}

fn response(community: &[u8], id: i32, values: &[(String, Value<'static>)]) -> Vec<u8> {
    let names: Vec<_> = values.iter().map(|(o, _)| oid(o)).collect();
    let vbs: Vec<VarBind<'_>> = names
        .iter()
        .zip(values)
        .map(|(n, (_, v))| VarBind {
            name: n.as_oid(),
            value: *v,
        })
        .collect();
    encode::to_vec(&Message::pdu(
        Version::V1,
        community,
        PduType::RESPONSE,
        id,
        &vbs,
    ))
}

/// A get of upsEstimatedChargeRemaining.0, as the seed's NVR sends it.
fn get_charge(community: &[u8], id: i32) -> Vec<u8> {
    let charge = oid("1.3.6.1.2.1.33.1.2.4.0");
    let vb = [VarBind {
        name: charge.as_oid(),
        value: Value::Null,
    }];
    encode::to_vec(&Message::pdu(
        Version::V1,
        community,
        PduType::GET_REQUEST,
        id,
        &vb,
    ))
}

/// A GetBulk of `n` long names (about 21 bytes each), max-repetitions 64.
fn get_bulk(n: usize) -> Vec<u8> {
    let names: Vec<_> = (0..n)
        .map(|i| oid(&format!("1.3.6.1.2.1.1.1.0.{}.1.1.1.1.1.1.1.1.1", i % 100)))
        .collect();
    let vbs: Vec<VarBind<'_>> = names
        .iter()
        .map(|o| VarBind {
            name: o.as_oid(),
            value: Value::Null,
        })
        .collect();
    encode::to_vec(
        &Message::pdu(Version::V2c, b"public", PduType::GET_BULK_REQUEST, 77, &vbs)
            .with_error(0, 64),
    )
}

/// The UPS's card and the recorder (the test's sockets on their addresses), and a site
/// with them (`policy` added to its [policy]).
fn setup(policy: &str) -> (UdpSocket, UdpSocket, String) {
    let card = bind(UPS);
    let nvr = bind(NVR);
    let text = site(
        card.local_addr().unwrap().port(),
        policy,
        &recorder("nvr-1", NVR, nvr.local_addr().unwrap().port(), ""),
    );
    (card, nvr, text)
}

/// The gateway's first poll, as the UPS's card receives it: where it came from, its
/// request id and community, and the names it asks for.
struct Polled {
    from: SocketAddr,
    id: i32,
    community: Vec<u8>,
}

fn next_poll(card: &UdpSocket) -> Polled {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok((n, from)) = card.recv_from(&mut buf) else {
            continue;
        };
        let arena = Bump::new();
        // Not the start's read of the card's settings (upsAdvConfig…, which `run`
        // reads as `check-config --probe` does): a poll.
        let settings = oid("1.3.6.1.4.1.318.1.1.1.5.2");
        if let Ok(m) = Message::parse(&buf[..n], &arena)
            && let Pdu::Request(r) = m.pdu
            && r.kind == PduType::GET_REQUEST
            && !r
                .varbinds
                .first()
                .is_some_and(|vb| vb.name.as_bytes().starts_with(settings.as_bytes()))
        {
            return Polled {
                from,
                id: r.request_id,
                community: m.community.to_vec(),
            };
        }
    }
    panic!("the gateway never polled the UPS")
}

/// Lines on the gateway's stdout for `wait`; fails on one containing every `bad`.
fn none_within(out: &mpsc::Receiver<String>, bad: &[&str], wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(line) = out.recv_timeout(left.min(Duration::from_millis(50))) {
            assert!(
                !bad.iter().all(|b| line.contains(b)),
                "{bad:?} happened: {line}\nafter:\n{}",
                seen.join("\n")
            );
            seen.push(line);
        }
    }
    seen
}

/// Traps the recorder's socket receives within `wait`.
fn traps_received(nvr: &UdpSocket, wait: Duration) -> usize {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while Instant::now() < deadline {
        if let Ok((len, _)) = nvr.recv_from(&mut buf) {
            let arena = Bump::new();
            if matches!(Message::parse(&buf[..len], &arena), Ok(m) if m.pdu_type() == PduType::TRAP_V1)
            {
                n += 1;
            }
        }
    }
    n
}

/// The gateway, in this test's process, stopped by its handle.
struct Gateway {
    out: mpsc::Receiver<String>,
    traps: SocketAddr,
    agent: SocketAddr,
    run: InProcess,
}

impl Gateway {
    fn start(_name: &str, text: &str, journal: Option<std::path::PathBuf>) -> Gateway {
        let mut run = InProcess::start(text, journal);
        let out = std::mem::replace(&mut run.out, mpsc::channel().1);
        Gateway {
            out,
            traps: run.traps,
            agent: run.agent,
            run,
        }
    }

    /// Stops it; its stop summary.
    fn stop(self) -> String {
        self.run.stop()
    }
}

#[test]
fn a_forged_get_response_on_the_trap_port_shuts_nothing_down() {
    let (_card, _nvr, text) = setup("confirm_by_poll = true");
    let gw = Gateway::start("forged-trap-port", &text, None);
    // From the UPS's own address and port 161's neighbour: "on battery, charge 0".
    let forger = bind(UPS);
    for id in [1, 2, 3, 12345, i32::MAX] {
        for community in [&b"public"[..], b"wrong"] {
            forger
                .send_to(
                    &response(community, id, &powernet_answer(true, 0)),
                    gw.traps,
                )
                .expect("send");
        }
    }
    none_within(&gw.out, &["ShutdownRecorder"], Duration::from_millis(1500));
    let summary = gw.stop();
    assert!(
        summary.contains("response_on_trap_port 10"),
        "counted as refused: {summary}"
    );
}

#[test]
fn a_poll_answer_counts_only_from_the_port_polled_with_its_id_community_and_objects() {
    let (card, nvr, text) = setup("confirm_by_poll = true");
    let gw = Gateway::start("forged-answers", &text, None);
    let poll = next_poll(&card);
    let deadly = powernet_answer(true, 0);
    // Another port of the UPS's address, with everything else right.
    let other_port = bind(UPS);
    other_port
        .send_to(&response(&poll.community, poll.id, &deadly), poll.from)
        .expect("send");
    none_within(&gw.out, &["ShutdownRecorder"], Duration::from_millis(400));
    // The card's own port: a wrong community, then a wrong id.
    card.send_to(&response(b"private", poll.id, &deadly), poll.from)
        .expect("send");
    card.send_to(
        &response(&poll.community, poll.id.wrapping_add(1), &deadly),
        poll.from,
    )
    .expect("send");
    none_within(&gw.out, &["ShutdownRecorder"], Duration::from_millis(400));
    // Right port, id and community, but not the objects asked for.
    let other_objects = vec![
        ("1.3.6.1.2.1.33.1.4.1.0".to_string(), Value::Integer(5)),
        ("1.3.6.1.2.1.33.1.2.4.0".to_string(), Value::Integer(0)),
    ];
    card.send_to(
        &response(&poll.community, poll.id, &other_objects),
        poll.from,
    )
    .expect("send");
    none_within(&gw.out, &["ShutdownRecorder"], Duration::from_millis(400));
    // The real answer (on mains, 100 %) is taken: the recorder reads it.
    card.send_to(
        &response(&poll.community, poll.id, &powernet_answer(false, 100)),
        poll.from,
    )
    .expect("send");
    let charge = charge_read(&nvr, gw.agent, 900, "100");
    assert!(
        charge.contains("100"),
        "the real answer was taken: {charge}"
    );
    // The same answer again (a replay of the card's datagram) is refused: answered once.
    card.send_to(&response(&poll.community, poll.id, &deadly), poll.from)
        .expect("send");
    none_within(&gw.out, &["ShutdownRecorder"], Duration::from_millis(400));
    let summary = gw.stop();
    for reason in [
        "answer_wrong_source 1",
        "answer_wrong_community 1",
        "answer_unknown_request 2",
        "answer_wrong_objects 1",
    ] {
        assert!(summary.contains(reason), "{reason} in {summary}");
    }
}

#[test]
fn a_forged_acknowledgement_does_not_stop_the_resends() {
    let (card, nvr, text) = setup("confirm_by_poll = false\nack_timeout = \"1s\"");
    let gw = Gateway::start("forged-ack", &text, None);
    card.send_to(&apc_trap(b"public", 7), gw.traps)
        .expect("send");
    expect_line(&gw.out, &["\"action\":\"Sent\"", "nvr-1"]);
    // From the recorder's address, with the wrong community.
    let forger = bind(NVR);
    forger.send_to(&ack(b"wrong"), gw.traps).expect("send");
    expect_line(&gw.out, &["\"action\":\"Sent\"", "nvr-1", "\"attempt\":2"]);
    assert!(traps_received(&nvr, Duration::from_millis(300)) >= 2);
    // The recorder's real acknowledgement stops them.
    nvr.send_to(&ack(b"public"), gw.traps).expect("send");
    expect_line(&gw.out, &["\"decision\":\"Acknowledged\"", "nvr-1"]);
    let summary = gw.stop();
    assert!(summary.contains("ack_wrong_community 1"), "{summary}");
}

#[test]
fn garbage_from_a_recorders_address_does_not_make_it_back() {
    let (card, nvr, text) = setup("confirm_by_poll = false");
    let text = text.replace("shutdown_time = \"90s\"", "shutdown_time = \"1s\"");
    let gw = Gateway::start("garbage-back", &text, None);
    card.send_to(&apc_trap(b"public", 7), gw.traps)
        .expect("send");
    expect_line(&gw.out, &["\"action\":\"Sent\"", "nvr-1"]);
    nvr.send_to(&ack(b"public"), gw.traps).expect("send");
    expect_line(&gw.out, &["\"decision\":\"Acknowledged\""]);
    // Power back: the recorder counts as back once heard from after its shutdown time.
    card.send_to(&apc_trap(b"public", 9), gw.traps)
        .expect("send");
    expect_line(&gw.out, &["\"decision\":\"PowerBack\""]);
    std::thread::sleep(Duration::from_millis(1500));
    let forger = bind(NVR);
    for to in [gw.traps, gw.agent] {
        forger.send_to(&[0x00], to).expect("send");
        forger.send_to(b"\x30\x03\x02\x01", to).expect("send");
        forger.send_to(&get_charge(b"wrong", 5), to).expect("send");
    }
    none_within(
        &gw.out,
        &["\"action\":\"Back\""],
        Duration::from_millis(800),
    );
    // A real poll of its virtual UPS, with its community: back.
    nvr.send_to(&get_charge(b"public", 6), gw.agent)
        .expect("send");
    expect_line(&gw.out, &["\"action\":\"Back\"", "nvr-1"]);
    gw.stop();
}

#[test]
fn a_getbulk_answer_is_bounded() {
    let (_card, nvr, text) = setup("confirm_by_poll = false");
    let gw = Gateway::start("bulk-bounded", &text, None);
    for n in [50, 250] {
        let request = get_bulk(n);
        nvr.send_to(&request, gw.agent).expect("send");
        let mut buf = vec![0u8; 70_000];
        let (len, _) = nvr
            .recv_from(&mut buf)
            .or_else(|_| {
                nvr.set_read_timeout(Some(Duration::from_secs(5)))?;
                nvr.recv_from(&mut buf)
            })
            .unwrap_or_else(|e| panic!("an answer to a GetBulk of {n} names: {e}"));
        // The site's max_message_size (1472, the default) bounds every answer.
        let bound = 1472;
        assert!(
            len <= bound,
            "a GetBulk of {} bytes drew {len} bytes (bound {bound})",
            request.len()
        );
        let arena = Bump::new();
        let m = Message::parse(&buf[..len], &arena).expect("a valid response");
        let Pdu::Request(r) = m.pdu else {
            panic!("a response")
        };
        if r.error_status == 0 {
            assert!(!r.varbinds.is_empty(), "fewer repetitions, not none");
        } else {
            assert_eq!(r.error_status, 1, "tooBig");
        }
    }
    gw.stop();
}

/// Held by a test while it floods: two floods at once on a 2-core machine starve
/// everything else, other tests' gateways included.
static FLOODING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_flood_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    FLOODING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Floods `to` from `from` with `payload` for `for_` (bounded in count too).
fn flood(
    from: &str,
    to: SocketAddr,
    payload: Vec<u8>,
    for_: Duration,
) -> std::thread::JoinHandle<u64> {
    let s = bind(from);
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < for_ && sent < 5_000_000 {
            for _ in 0..64 {
                if s.send_to(&payload, to).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    })
}

#[test]
fn a_getbulk_flood_from_a_recorder_does_not_hold_a_real_decision() {
    let _flooding = one_flood_at_a_time();
    let (card, _nvr, text) = setup("confirm_by_poll = false");
    let gw = Gateway::start("bulk-flood", &text, None);
    let flooding = flood(NVR, gw.agent, get_bulk(50), Duration::from_secs(4));
    std::thread::sleep(Duration::from_millis(1000));
    let sent = Instant::now();
    card.send_to(&apc_trap(b"public", 7), gw.traps)
        .expect("send");
    expect_line(&gw.out, &["\"action\":\"Sent\"", "nvr-1"]);
    let took = sent.elapsed();
    let n = flooding.join().expect("flood");
    gw.stop();
    assert!(
        took < Duration::from_secs(2),
        "the order took {took:?} behind {n} GetBulk requests"
    );
}

#[test]
fn a_flood_of_refused_traps_neither_holds_an_order_nor_fills_the_journal() {
    let _flooding = one_flood_at_a_time();
    let (card, _nvr, text) = setup("confirm_by_poll = false");
    let journal = site_file("refused-flood", "").with_file_name("journal");
    let _ = std::fs::remove_file(&journal);
    let gw = Gateway::start("refused-flood", &text, Some(journal.clone()));
    let flooding = flood(UPS, gw.traps, apc_trap(b"wrong", 7), Duration::from_secs(4));
    std::thread::sleep(Duration::from_millis(1000));
    let sent = Instant::now();
    // The real trap shares the UPS's address with the flood, so the kernel may drop
    // it from the full socket buffer before trapgate can read it (no program can help
    // that): the card repeats it, as cards can (RFC 1628 ones every minute), here every
    // 250 ms, eight times at most.
    let traps = gw.traps;
    let repeating = std::thread::spawn(move || {
        for _ in 0..8 {
            card.send_to(&apc_trap(b"public", 7), traps).expect("send");
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    expect_line(&gw.out, &["\"action\":\"Sent\"", "nvr-1"]);
    let took = sent.elapsed();
    let n = flooding.join().expect("flood");
    repeating.join().expect("the card");
    std::thread::sleep(Duration::from_millis(1200));
    let summary = gw.stop();
    assert!(
        took < Duration::from_secs(2),
        "the order took {took:?} behind {n} refused traps"
    );
    // Its records (the file is prepared ahead with blank lines).
    let lines = std::fs::read_to_string(&journal)
        .expect("journal")
        .lines()
        .filter(|l| !l.is_empty())
        .count();
    assert!(
        lines < 40,
        "{lines} journal lines for {n} refused traps:\n{summary}"
    );
    assert!(summary.contains("wrong_community"), "{summary}");
}

#[test]
fn a_stdout_nobody_reads_does_not_hold_an_order() {
    // 3,000 recorders (unbound loopback addresses) shut down before the test's own,
    // whose order comes last: the lines before it fill any pipe.
    let card = bind(UPS);
    let nvr = bind(NVR);
    let mut recorders = String::new();
    for i in 0..3000 {
        recorders += &recorder(
            &format!("nvr-x{i}"),
            &format!("127.3.{}.{}", i / 250, i % 250 + 1),
            162,
            "",
        )
        .replace("tier = 1", "tier = 2");
    }
    recorders += &recorder("nvr-1", NVR, nvr.local_addr().unwrap().port(), "");
    let file = site_file(
        "stdout-stuck",
        &site(
            card.local_addr().unwrap().port(),
            "confirm_by_poll = false",
            &recorders,
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["run", "--config", file.to_str().expect("UTF-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trapgate starts");
    // stdout is never read.
    let _stdout = child.stdout.take();
    let err = lines(child.stderr.take().expect("stderr"));
    let traps = listening_on(&err);
    card.send_to(&apc_trap(b"public", 7), traps).expect("send");
    let told = traps_received(&nvr, Duration::from_secs(5));
    terminate(&child);
    let _ = child.kill();
    let _ = child.wait();
    assert!(told >= 1, "the last recorder was never told");
}

/// An inform (v2c) of `trap`, with `community`.
fn inform(community: &[u8], trap: &str) -> Vec<u8> {
    let (uptime, trap_oid, value) = (
        oid("1.3.6.1.2.1.1.3.0"),
        oid("1.3.6.1.6.3.1.1.4.1.0"),
        oid(trap),
    );
    let vbs = [
        VarBind {
            name: uptime.as_oid(),
            value: Value::TimeTicks(1),
        },
        VarBind {
            name: trap_oid.as_oid(),
            value: Value::ObjectId(value.as_oid()),
        },
    ];
    encode::to_vec(&Message::pdu(
        Version::V2c,
        community,
        PduType::INFORM_REQUEST,
        4242,
        &vbs,
    ))
}

#[test]
fn an_inform_with_the_wrong_community_is_not_answered() {
    let (_card, _nvr, text) = setup("confirm_by_poll = false");
    let gw = Gateway::start("inform-community", &text, None);
    let answered = |s: &UdpSocket| -> bool {
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_millis(800);
        while Instant::now() < deadline {
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                let arena = Bump::new();
                if matches!(Message::parse(&buf[..n], &arena), Ok(m) if m.pdu_type() == PduType::RESPONSE)
                {
                    return true;
                }
            }
        }
        false
    };
    // RFC 1628 upsTrapOnBattery as an inform: wrong community, then the UPS's.
    let sender = bind(UPS);
    sender
        .send_to(&inform(b"wrong", "1.3.6.1.2.1.33.2.1"), gw.traps)
        .expect("send");
    assert!(
        !answered(&sender),
        "an inform with the wrong community was answered"
    );
    none_within(&gw.out, &["on_battery"], Duration::from_millis(200));
    sender
        .send_to(&inform(b"public", "1.3.6.1.2.1.33.2.1"), gw.traps)
        .expect("send");
    assert!(answered(&sender), "the UPS's inform was not answered");
    expect_line(&gw.out, &["\"kind\":\"on_battery\""]);
    let summary = gw.stop();
    assert!(summary.contains("inform_wrong_community 1"), "{summary}");
}

#[test]
fn no_other_socket_can_take_the_agent_port() {
    use socket2::{Domain, Protocol, Socket, Type};
    let card = bind(UPS);
    let text = site(card.local_addr().unwrap().port(), "", "");
    let gw = Gateway::start("agent-port", &text, None);
    // A later process of the same user, with every reuse option it can ask for.
    let rival = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    rival.set_reuse_address(true).expect("SO_REUSEADDR");
    rival.set_reuse_port(true).expect("SO_REUSEPORT");
    let e = rival
        .bind(&gw.agent.into())
        .expect_err("a second socket on the virtual UPS's port");
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    gw.stop();
}

#[test]
fn a_reload_that_would_drop_an_outage_is_refused_and_the_outage_goes_on() {
    let (card, _nvr, text) = setup("confirm_by_poll = false");
    let text = text.replace("tier = 1", "tier = 2").replace(
        "grace = { 1 = \"10m\", 2 = \"2m\" }",
        "grace = { 1 = \"10m\", 2 = \"3s\" }",
    );
    let file = site_file("reload-outage", &text);
    let (mut child, out, err) = start(&["run", "--config", file.to_str().expect("UTF-8")]);
    let traps = listening_on(&err);
    card.send_to(&apc_trap(b"public", 5), traps).expect("send");
    expect_line(&out, &["\"kind\":\"on_battery\""]);
    // The UPS renamed under its outage: the running site is kept.
    std::fs::write(&file, text.replace("ups-main", "ups-renamed")).expect("write");
    signal(&child, libc::SIGHUP);
    let said = err
        .recv_timeout(Duration::from_secs(10))
        .expect("a word on the reload");
    assert!(
        said.contains("keeping the running site: UPS `ups-main` is in an outage and the new file removes or renames it"),
        "{said}"
    );
    expect_line(&out, &["\"kind\":\"reload_refused\""]);
    // The outage goes on: tier 2 is told when its 3 s of grace end.
    expect_line(&out, &["ShutdownRecorder", "nvr-1", "grace tier 2"]);
    terminate(&child);
    assert!(child.wait().expect("exit").success());
}

#[test]
fn a_journal_that_cannot_be_written_is_loud_and_orders_still_go_out() {
    use std::os::unix::process::CommandExt;
    let (card, nvr, text) = setup("confirm_by_poll = false");
    let file = site_file("journal-full", &text);
    let journal = file.with_file_name("journal");
    let _ = std::fs::remove_file(&journal);
    // The journal's file may not grow past 1 KiB (as a full disk would refuse it).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trapgate"));
    cmd.args([
        "run",
        "--config",
        file.to_str().expect("UTF-8"),
        "--journal",
        journal.to_str().expect("UTF-8"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("trapgate starts");
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    let traps = listening_on(&err);
    card.send_to(&apc_trap(b"public", 7), traps).expect("send");
    let alert = expect_line(&out, &["\"kind\":\"journal_failed\""]);
    assert!(alert.contains("orders still go out"), "{alert}");
    // The order goes out all the same, and what could not be journaled says so.
    assert!(
        traps_received(&nvr, Duration::from_secs(3)) >= 1,
        "the recorder was not told"
    );
    let sent = expect_line(&out, &["\"action\":\"Sent\"", "nvr-1"]);
    assert!(sent.contains("\"journaled\":false"), "{sent}");
    terminate(&child);
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
    let summary: String = err.iter().collect::<Vec<_>>().join("\n");
    assert!(summary.contains("journal errors: "), "{summary}");
    assert!(!summary.contains("journal errors: 0"), "{summary}");
}

#[test]
fn a_ups_of_the_other_address_family_is_polled_and_believed() {
    // The agent on 127.0.0.1; the UPS's card on ::1.
    let Ok(card) = UdpSocket::bind("[::1]:0") else {
        trapgate::testing::skip("no IPv6 loopback here");
        return;
    };
    card.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let nvr = bind(NVR);
    let text = site(
        card.local_addr().unwrap().port(),
        "confirm_by_poll = true",
        &recorder("nvr-1", NVR, nvr.local_addr().unwrap().port(), ""),
    )
    .replace(&format!("address = \"{UPS}\""), "address = \"::1\"");
    let gw = Gateway::start("ipv6-card", &text, None);
    let poll = next_poll(&card);
    assert!(poll.from.is_ipv6(), "polled from {}", poll.from);
    card.send_to(
        &response(&poll.community, poll.id, &powernet_answer(false, 55)),
        poll.from,
    )
    .expect("send");
    let charge = charge_read(&nvr, gw.agent, 700, "55");
    assert!(
        charge.contains("55"),
        "the IPv6 card's answer was taken: {charge}"
    );
    gw.stop();
}

/// What a recorder reads as the charge from the virtual UPS at `agent`, asking (request
/// ids from `first_id`) until it reads `want` or 50 tries have passed.
fn charge_read(nvr: &UdpSocket, agent: SocketAddr, first_id: i32, want: &str) -> String {
    let mut charge = String::new();
    for i in 0..50 {
        nvr.send_to(&get_charge(b"public", first_id + i), agent)
            .expect("send");
        let mut buf = [0u8; 2048];
        if let Ok((n, _)) = nvr.recv_from(&mut buf) {
            let arena = Bump::new();
            if let Ok(m) = Message::parse(&buf[..n], &arena)
                && let Some(vb) = m.varbinds().first()
            {
                charge = vb.value.to_string();
                if charge.contains(want) {
                    break;
                }
            }
        }
    }
    charge
}
