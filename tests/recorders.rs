//! The recorder side, on loopback: net-snmp's own tools play the UPS (snmptrap v1, v2c,
//! snmpinform), a recorder (snmptrapd receives the relayed trap) and an NVR polling its
//! UPS (snmpget, snmpwalk against the virtual UPS); the journal survives kill -9; the
//! demo tells the seed's story. The net-snmp tests skip, saying so, when the tools are
//! missing (`bash .ci/run` installs them).

mod common;

use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bumpalo::Bump;
use common::*;
use trapgate::wire::{Message, Pdu, PduType, Value, VarBind, encode};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// net-snmp's tools, quiet: no MIB files loaded, numeric OIDs, a persistent directory
/// of their own (net-snmp keeps its engine's state there; tests at once must not share
/// it).
fn net_snmp(tool: &str, args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("trapgate-netsnmp-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    Command::new(tool)
        .env("SNMP_PERSISTENT_DIR", &dir)
        .args(["-M", "/dev/null", "-On"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"))
}

/// A fake UPS agent answering every get with a charge of 87 %, on mains power or on
/// battery.
fn fake_ups(on_battery: bool) -> (u16, std::thread::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the UPS");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 2048];
        while started.elapsed() < Duration::from_secs(60) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let arena = Bump::new();
            let Ok(m) = Message::parse(&buf[..n], &arena) else {
                continue;
            };
            let Pdu::Request(r) = m.pdu else { continue };
            let answer: Vec<VarBind<'_>> = r
                .varbinds
                .iter()
                .map(|vb| VarBind {
                    name: vb.name,
                    value: match vb.name.to_buf().to_string().as_str() {
                        "1.3.6.1.2.1.33.1.4.1.0" => Value::Integer(if on_battery { 5 } else { 3 }),
                        "1.3.6.1.2.1.33.1.2.1.0" => Value::Integer(2),
                        "1.3.6.1.2.1.33.1.2.4.0" => Value::Integer(87),
                        "1.3.6.1.2.1.33.1.2.3.0" => Value::Integer(42),
                        _ => Value::NoSuchObject,
                    },
                })
                .collect();
            let response = Message::pdu(
                m.version,
                m.community,
                PduType::RESPONSE,
                r.request_id,
                &answer,
            );
            let bytes = encode::to_vec(&response);
            let _ = socket.send_to(&bytes, from);
        }
    });
    (port, handle)
}

/// A site with its UPS on 127.0.0.1 (RFC 1628 UPS-MIB, polled at `ups_port`) and
/// the given recorders.
fn site(ups_port: u16, recorders: &str, extra_policy: &str) -> String {
    format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"
community = "public"

[policy]
grace = {{ 1 = "10m", 2 = "2m" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false
{extra_policy}

[[ups]]
name = "ups-main"
address = "127.0.0.1"
port = {ups_port}
vendor = "ups-mib"
poll_interval = "2s"
outlet_off_delay = "3m"

{recorders}"#
    )
}

fn recorder(name: &str, address: &str, port: u16, tier: u8) -> String {
    format!(
        "[[recorder]]\nname = \"{name}\"\naddress = \"{address}\"\nport = {port}\nups = \"ups-main\"\ntier = {tier}\nshutdown_time = \"90s\"\n\n"
    )
}

#[test]
fn net_snmp_plays_the_ups_a_recorder_and_a_polling_nvr() {
    let tools = ["snmptrap", "snmpinform", "snmptrapd", "snmpget", "snmpwalk"];
    if let Some(missing) = tools.iter().find(|t| !have(t)) {
        trapgate::testing::skip(&format!(
            "{missing} is not installed (apt-get install snmp snmptrapd, or bash .ci/run)"
        ));
        return;
    }
    let (ups_port, _ups) = fake_ups(false);
    // snmptrapd plays nvr-1 on 127.0.0.2; nvr-2 on 127.0.0.3 polls with snmpget.
    let trapd_port = UdpSocket::bind("127.0.0.2:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let recorders =
        recorder("nvr-1", "127.0.0.2", trapd_port, 2) + &recorder("nvr-2", "127.0.0.3", 162, 1);
    let file = site_file("netsnmp", &site(ups_port, &recorders, ""));
    let conf = file.with_file_name("snmptrapd.conf");
    std::fs::write(&conf, "disableAuthorization yes\n").expect("conf");
    let mut trapd = Command::new("snmptrapd")
        .args(["-f", "-Lo", "-n", "-On", "-M", "/dev/null", "-C", "-c"])
        .arg(&conf)
        .arg(format!("udp:127.0.0.2:{trapd_port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmptrapd starts");
    let trapd_out = lines(trapd.stdout.take().expect("stdout"));
    let gw = InProcess::start(&std::fs::read_to_string(&file).expect("the site"), None);
    let (traps, agent) = (gw.traps.to_string(), gw.agent.to_string());

    // An NVR polls its "UPS": the real UPS's charge, from the gateway's cache.
    // nvr-2's queries: from its address, one try of one second.
    let ask = |tool: &str, version: &str, community: &str, oid: &str| {
        let from = "--clientaddr=127.0.0.3";
        let args = [
            version, "-c", community, "-t", "1", "-r", "0", from, &agent, oid,
        ];
        net_snmp(tool, &args)
    };
    let get = |community: &str, oid: &str| ask("snmpget", "-v2c", community, oid);
    let mut polled = String::new();
    for _ in 0..50 {
        polled =
            String::from_utf8_lossy(&get("public", "1.3.6.1.2.1.33.1.2.4.0").stdout).to_string();
        if polled.contains("INTEGER: 87") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        polled.contains(".1.3.6.1.2.1.33.1.2.4.0 = INTEGER: 87"),
        "{polled}"
    );
    // An object the virtual UPS does not have, in v2c and in v1.
    let unknown =
        String::from_utf8_lossy(&get("public", "1.3.6.1.2.1.33.1.9.9.0").stdout).to_string();
    assert!(unknown.contains("No Such Object"), "{unknown}");
    let v1 = ask("snmpget", "-v1", "public", "1.3.6.1.2.1.33.1.9.9.0");
    let v1_text =
        String::from_utf8_lossy(&v1.stderr).to_string() + &String::from_utf8_lossy(&v1.stdout);
    assert!(
        v1_text.contains("noSuchName") || v1_text.contains("no such variable"),
        "{v1_text}"
    );
    // A wrong community gets no answer at all.
    let wrong = get("private", "1.3.6.1.2.1.33.1.2.4.0");
    assert!(!wrong.status.success(), "a wrong community is not answered");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("Timeout"));
    // snmpwalk walks the UPS-MIB objects in order.
    let walk = ask("snmpwalk", "-v2c", "public", "1.3.6.1.2.1.33");
    let walked = String::from_utf8_lossy(&walk.stdout).to_string();
    let names: Vec<&str> = walked
        .lines()
        .filter_map(|l| l.split(" = ").next())
        .collect();
    assert_eq!(
        names,
        [
            ".1.3.6.1.2.1.33.1.1.1.0",
            ".1.3.6.1.2.1.33.1.1.2.0",
            ".1.3.6.1.2.1.33.1.2.1.0",
            ".1.3.6.1.2.1.33.1.2.2.0",
            ".1.3.6.1.2.1.33.1.2.3.0",
            ".1.3.6.1.2.1.33.1.2.4.0",
            ".1.3.6.1.2.1.33.1.4.1.0"
        ],
        "{walked}"
    );

    // snmptrap plays the UPS: v2c upsTrapOnBattery starts the outage...
    let sent = net_snmp(
        "snmptrap",
        &[
            "-v2c",
            "-c",
            "public",
            &traps,
            "",
            "1.3.6.1.2.1.33.2.1",
            "1.3.6.1.2.1.33.1.2.3.0",
            "i",
            "40",
        ],
    );
    assert!(sent.status.success(), "{sent:?}");
    expect_line(&gw.out, &["\"kind\":\"on_battery\""]);
    // ... a v1 APC lowBattery (the seed's trap) shuts both recorders down ...
    let sent = net_snmp(
        "snmptrap",
        &[
            "-v1",
            "-c",
            "public",
            &traps,
            "1.3.6.1.4.1.318",
            "127.0.0.1",
            "6",
            "7",
            "0",
            "1.3.6.1.4.1.318.2.3.3.0",
            "s",
            "UPS: Low battery.",
        ],
    );
    assert!(sent.status.success(), "{sent:?}");
    expect_line(&gw.out, &["ShutdownRecorder", "nvr-1", "lowBattery"]);
    // ... and snmptrapd, playing nvr-1, decodes the relayed trap as an APC lowBattery.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut relayed = Vec::new();
    while Instant::now() < deadline
        && !relayed
            .iter()
            .any(|l: &String| l.contains(".1.3.6.1.4.1.318.2.3.3.0"))
    {
        if let Ok(l) = trapd_out.recv_timeout(Duration::from_millis(200)) {
            relayed.push(l);
        }
    }
    let relayed = relayed.join("\n");
    assert!(
        relayed.contains("TRAP, SNMP v1, community public"),
        "{relayed}"
    );
    assert!(
        relayed.contains(".1.3.6.1.4.1.318 Enterprise Specific Trap (7)"),
        "{relayed}"
    );
    assert!(
        relayed.contains(
            ".1.3.6.1.4.1.318.2.3.3.0 = STRING: \"UPS: Low battery. A shutdown is imminent.\""
        ),
        "{relayed}"
    );
    // The NVR told to shut down now reads a charge of 0 from its virtual UPS.
    let zero = String::from_utf8_lossy(&get("public", "1.3.6.1.2.1.33.1.2.4.0").stdout).to_string();
    assert!(zero.contains("INTEGER: 0"), "{zero}");
    // snmpinform plays the UPS telling power is back: the gateway answers the inform.
    let inform = net_snmp(
        "snmpinform",
        &[
            "-v2c",
            "-c",
            "public",
            "-t",
            "2",
            "-r",
            "1",
            &traps,
            "",
            "1.3.6.1.2.1.33.2.2",
        ],
    );
    assert!(
        inform.status.success(),
        "the inform was answered: {inform:?}"
    );
    expect_line(&gw.out, &["\"decision\":\"PowerBack\""]);

    let summary = gw.stop();
    let _ = trapd.kill();
    let _ = trapd.wait();
    assert!(
        summary.contains("refused: 1 (agent_wrong_community 1)"),
        "{summary}"
    );
}

/// The APC lowBattery and the recorder's acknowledgement, as bytes.
fn v1_trap(enterprise: &str, specific: i64, agent: [u8; 4]) -> Vec<u8> {
    trapgate::testing::v1_trap(b"public", enterprise, agent, specific, &[])
}

/// Traps a recorder socket receives within `wait`.
fn received(socket: &UdpSocket, wait: Duration) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while Instant::now() < deadline {
        if socket.recv_from(&mut buf).is_ok() {
            n += 1;
        }
    }
    n
}

#[test]
fn kill_9_loses_no_decision_and_retells_no_recorder_that_acknowledged() {
    // On battery, so that nothing but the trap moves the outage.
    let (ups_port, _ups) = fake_ups(true);
    let a = UdpSocket::bind("127.0.0.4:0").expect("recorder a");
    let b = UdpSocket::bind("127.0.0.5:0").expect("recorder b");
    let recorders = recorder("nvr-a", "127.0.0.4", a.local_addr().unwrap().port(), 1)
        + &recorder("nvr-b", "127.0.0.5", b.local_addr().unwrap().port(), 1);
    let file = site_file("kill9", &site(ups_port, &recorders, "ack_timeout = \"2s\""));
    let journal = file.with_file_name("journal");
    let _ = std::fs::remove_file(&journal);
    let args = [
        "run",
        "--config",
        file.to_str().expect("UTF-8"),
        "--journal",
        journal.to_str().expect("UTF-8"),
    ];
    let (mut child, out, err) = start(&args);
    let traps = listening_on(&err);
    let ups = UdpSocket::bind("127.0.0.1:0").expect("the UPS's trap socket");
    ups.send_to(&v1_trap("1.3.6.1.4.1.318", 7, [127, 0, 0, 1]), traps)
        .expect("send");
    expect_line(&out, &["\"action\":\"Sent\"", "nvr-b"]);
    assert!(
        received(&a, Duration::from_millis(300)) >= 1,
        "nvr-a was told"
    );
    assert!(
        received(&b, Duration::from_millis(300)) >= 1,
        "nvr-b was told"
    );
    // nvr-a acknowledges; nvr-b stays silent.
    a.send_to(&v1_trap("1.3.6.1.4.1.50001", 200, [127, 0, 0, 4]), traps)
        .expect("ack");
    expect_line(&out, &["\"decision\":\"Acknowledged\"", "nvr-a"]);
    // The crash.
    signal(&child, libc::SIGKILL);
    let _ = child.wait();

    // Nothing decided was lost: the journal tells it all.
    let printed = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args([
            "journal",
            journal.to_str().expect("UTF-8"),
            "--only",
            "nvr-a",
        ])
        .output()
        .expect("trapgate journal runs");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        text.contains("decided ShutdownRecorder") && text.contains("recorder=nvr-a"),
        "{text}"
    );
    assert!(
        text.contains("decided Acknowledged recorder=nvr-a"),
        "{text}"
    );
    assert!(
        !text.contains("nvr-b"),
        "--only nvr-a shows nvr-a alone:\n{text}"
    );

    // The restart resumes the outage: nvr-b is told again, nvr-a never.
    let (mut child, out, err) = start(&args);
    listening_on(&err);
    let resumed = err
        .recv_timeout(Duration::from_secs(10))
        .expect("the journal line");
    assert!(
        resumed.contains("1 recorders waiting for an acknowledgement, 1 acknowledged"),
        "{resumed}"
    );
    expect_line(&out, &["\"action\":\"Sent\"", "nvr-b"]);
    assert!(
        received(&b, Duration::from_secs(3)) >= 1,
        "nvr-b told again after the restart"
    );
    assert_eq!(
        received(&a, Duration::from_millis(100)),
        0,
        "nvr-a acknowledged: never told again"
    );
    signal(&child, libc::SIGTERM);
    assert!(child.wait().expect("exit").success());
    let decided: Vec<String> = out.iter().collect();
    assert!(
        !decided
            .iter()
            .any(|l| l.contains("\"decision\":\"ShutdownRecorder\"")),
        "the restart decided nothing twice: {decided:?}"
    );
}

#[test]
fn the_demo_tells_the_seed_story_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["demo", "--speed", "120"])
        .output()
        .expect("the demo runs");
    let story = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{story}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "UPS: mains power fails; sends upsOnBattery",
        "gateway decides: nvr-244 shuts down now (on battery for 120 s: tier 2's grace time has ended",
        "gateway polls ups-main to confirm: confirm lowBattery",
        "gateway decides: nvr-251 shuts down now (lowBattery confirmed by poll",
        "gateway: nvr-251 acknowledged",
        "gateway: nvr-244 is back",
        "gateway: nvr-251 is back",
        // The NUT client (a Synology-style NAS, tier 2) and the apcupsd client (tier 1).
        "gateway decides: nas-01 shuts down now (on battery for 120 s: tier 2's grace time has ended",
        "nas-01 reads ups.status \"FSD OB LB\": logs out and shuts down",
        "gateway: nas-01 acknowledged (it logged out of the NUT server after reading FSD)",
        "gateway decides: srv-apcupsd shuts down now (lowBattery confirmed by poll",
        "srv-apcupsd (apcupsd network client) fetches STATUS ONBATT LOWBATT: runs its doshutdown",
        "gateway: srv-apcupsd acknowledged (it fetched its shutdown status",
        "gateway: nas-01 is back",
        "gateway: srv-apcupsd is back",
        "recorders: 4 (2 NVRs, a NUT client, an apcupsd client); told: 4; acknowledged: 4; resent: 0; never acknowledged: 0; back after power returned: 4; not back: 0",
        "by the gateway alone",
        "latency LowBattery",
    ] {
        assert!(story.contains(want), "missing {want:?} in:\n{story}");
    }
    // Staged: the NAS reads FSD before the low battery, and apcupsd (tier 1) never
    // fetches its shutdown status before it.
    let at = |what: &str| story.find(what).unwrap_or_else(|| panic!("{what:?}"));
    assert!(at("nas-01 reads ups.status \"FSD OB LB\"") < at("UPS: battery low"));
    assert!(at("UPS: battery low") < at("fetches STATUS ONBATT LOWBATT"));
    assert!(at("srv-apcupsd fetches STATUS ONBATT\n") < at("nas-01 reads ups.status \"FSD"));
    // Told in the order it happened: the story's times never go back, and a client's
    // request comes before what the gateway made of it.
    let times: Vec<f64> = story
        .lines()
        .filter_map(|l| l.trim_start().split(" s  ").next()?.parse().ok())
        .collect();
    assert!(times.len() > 30, "{story}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{story}");
    let after_power = &story[at("UPS: mains power is back")..];
    let here = |what: &str| after_power.find(what).unwrap_or_else(|| panic!("{what:?}"));
    assert!(here("srv-apcupsd fetches STATUS ONLINE") < here("gateway: srv-apcupsd is back"));
    assert!(here("nas-01 (NUT client, as Synology DSM) logs in") < here("gateway: nas-01 is back"));
    assert!(
        at("srv-apcupsd (apcupsd network client) fetches STATUS ONBATT LOWBATT")
            < at("srv-apcupsd polls the NIS server: charge 0")
    );
    assert!(!story.contains("null"), "{story}");
}

#[test]
fn exec_recorders_run_their_command_and_a_dry_run_sends_nothing() {
    let (ups_port, _ups) = fake_ups(true);
    let nvr = UdpSocket::bind("127.0.0.6:0").expect("a trap-relay recorder");
    let dir = site_file("exec", "").with_file_name("");
    let done = dir.join("told.txt");
    let _ = std::fs::remove_file(&done);
    let recorders = recorder("nvr-t", "127.0.0.6", nvr.local_addr().unwrap().port(), 1)
        + &format!(
            "[[recorder]]\nname = \"vms-1\"\naddress = \"127.0.0.7\"\nups = \"ups-main\"\ntier = 1\nshutdown_time = \"60s\"\nkind = \"exec\"\ncommand = \"echo \\\"$TRAPGATE_RECORDER $UPSNAME $NOTIFYTYPE $TRAPGATE_ATTEMPT ${{GLIBC_TUNABLES-unset}} ${{TRAPGATE_STARTED_AGAIN-unset}}\\\" > {}; echo shutting down; head -c 5000000 /dev/zero | tr '\\\\0' x >&2\"\n",
            done.display()
        );
    let file = site_file("exec", &site(ups_port, &recorders, ""));
    let ups = UdpSocket::bind("127.0.0.1:0").expect("the UPS's trap socket");
    let low = v1_trap("1.3.6.1.4.1.318", 7, [127, 0, 0, 1]);

    // A dry run decides and reports, and tells no one.
    let (mut child, out, err) = start(&["run", "--config", file.to_str().unwrap(), "--dry-run"]);
    let first = listening_line(&err);
    assert!(
        first.contains("dry run: nothing is sent to recorders"),
        "{first}"
    );
    let traps = address_in(&first);
    ups.send_to(&low, traps).expect("send");
    expect_line(&out, &["\"action\":\"WouldSend\"", "vms-1"]);
    assert_eq!(
        received(&nvr, Duration::from_millis(500)),
        0,
        "a dry run sends no trap"
    );
    assert!(!done.exists(), "a dry run runs no command");
    signal(&child, libc::SIGTERM);
    assert!(child.wait().expect("exit").success());

    // For real: the trap goes out and the command runs with its environment.
    let (mut child, out, err) = start(&["run", "--config", file.to_str().unwrap()]);
    let traps = listening_on(&err);
    ups.send_to(&low, traps).expect("send");
    let finished = expect_line(&out, &["\"action\":\"CommandDone\"", "vms-1"]);
    assert!(finished.contains("\"status\":\"exit 0\""), "{finished}");
    // What it wrote is journaled, up to a bound: 5 MB of stderr is not trapgate's.
    assert!(
        finished.contains("\"stdout\":\"shutting down\\n\""),
        "{finished}"
    );
    assert!(finished.contains("(4997952 more bytes)"), "{finished}");
    assert!(finished.len() < 10_000, "{} bytes", finished.len());
    let said = std::fs::read_to_string(&done).expect("the command ran");
    // Its environment is the gateway's own, without what the gateway's start on huge
    // pages set for itself.
    assert_eq!(said.trim(), "vms-1 ups-main SHUTDOWN 1 unset unset");
    assert!(
        received(&nvr, Duration::from_millis(500)) >= 1,
        "the trap-relay recorder was told"
    );
    signal(&child, libc::SIGTERM);
    assert!(child.wait().expect("exit").success());
    let said: usize = err.iter().map(|l| l.len() + 1).sum();
    assert!(said < 20_000, "trapgate's stderr grew by {said} bytes");
}
