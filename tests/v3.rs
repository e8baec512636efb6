//! SNMPv3 with net-snmp's own tools, on loopback: `snmptrap -v 3` at every level, with
//! every authentication and privacy protocol, opened by trapgate's security model; then
//! into `trapgate run`: one user shared by two engines, a wrong passphrase, an unknown
//! user, a level below the UPS's, a community trap from a v3 UPS and an old trap
//! replayed, each refused and counted; no passphrase in anything trapgate writes. Skips,
//! saying so, when net-snmp is missing (`bash .ci/run` installs it).

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use bumpalo::Bump;
use common::*;
use trapgate::engine::config::{DEFAULT_SITE, Site};
use trapgate::engine::usm::{NotOpened, Usm, UsmRefusal};
use trapgate::time::Timestamp;
use trapgate::wire::PduType;
use trapgate::wire::v3::Level;

const AUTH: [&str; 6] = ["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"];
const PRIV: [&str; 4] = ["DES", "AES", "AES-192", "AES-256"];

fn user_name(auth: &str, privacy: &str) -> String {
    format!("u-{auth}-{privacy}").to_lowercase()
}

/// A `[[usm_user]]` for each pair of protocols, all with the same passphrases.
fn users() -> String {
    let mut s = String::new();
    for a in AUTH {
        for x in PRIV {
            s += &format!(
                "[[usm_user]]\nname = \"{}\"\nauth_protocol = \"{a}\"\nauth_passphrase = \"authpass123\"\npriv_protocol = \"{x}\"\npriv_passphrase = \"privpass123\"\n\n",
                user_name(a, x)
            );
        }
    }
    s
}

/// net-snmp's trap of `user` at `level`, with the passphrases given, from `engine`.
fn args<'a>(
    user: &'a str,
    level: &'a str,
    auth: &'a str,
    privacy: &'a str,
    engine: &'a str,
) -> Vec<&'a str> {
    vec![
        "-u",
        user,
        "-l",
        level,
        "-a",
        auth,
        "-A",
        "authpass123",
        "-x",
        privacy,
        "-X",
        "privpass123",
        "-e",
        engine,
    ]
}

#[test]
fn net_snmp_v3_traps_open_at_every_level_with_every_protocol() {
    if !have_snmptrap() {
        return;
    }
    let text = DEFAULT_SITE.replacen("[[ups]]\n", &format!("{}[[ups]]\n", users()), 1);
    let site = Site::parse(&text).expect("valid");
    let mut usm = Usm::new(&site);
    let arena = Bump::new();
    let mut engine = 0u32;
    for a in AUTH {
        for x in PRIV {
            let user = user_name(a, x);
            for level in Level::ALL {
                engine += 1;
                let e = format!("0x80000000{engine:08x}");
                let bytes = caught_v3_trap(&args(&user, level.name(), a, x, &e));
                let m = usm
                    .open(&bytes, Timestamp(0), &arena)
                    .unwrap_or_else(|why| panic!("{user} {}: {why:?}", level.name()));
                assert_eq!(m.v3.expect("v3").level, level, "{user}");
                assert_eq!(m.pdu_type(), PduType::SNMPV2_TRAP);
                let said = m.varbinds().last().expect("bindings").value.to_string();
                assert!(said.contains(ON_BATTERY_TEXT), "{user} {level:?}: {said}");
            }
            // The same user's trap with another authentication passphrase.
            let mut wrong = args(&user, "authPriv", a, x, "0x8000000000ffffff");
            wrong[7] = "wrongpass1";
            let bytes = caught_v3_trap(&wrong);
            assert_eq!(
                usm.open(&bytes, Timestamp(0), &arena).unwrap_err(),
                NotOpened::Refused(UsmRefusal::WrongDigest),
                "{user}"
            );
            // Another privacy passphrase: authentic, but it does not decrypt.
            let mut garbled = args(&user, "authPriv", a, x, "0x8000000000fffffe");
            garbled[11] = "wrongpriv1";
            let bytes = caught_v3_trap(&garbled);
            assert_eq!(
                usm.open(&bytes, Timestamp(0), &arena).unwrap_err(),
                NotOpened::Refused(UsmRefusal::DecryptionError),
                "{user}"
            );
        }
    }
}

/// The seed's site on loopback with its UPS on v3 (`level`), the same UPS's user also
/// on a second UPS (127.0.0.2, another card, another engine), and an env passphrase.
fn v3_loopback(level: &str) -> String {
    let users = r#"[[usm_user]]
name = "upsv3user"
auth_protocol = "SHA-256"
auth_passphrase = "authpass123"
priv_protocol = "AES"
priv_passphrase_env = "TRAPGATE_TEST_PRIV"
"#;
    let ups = format!("version = \"3\"\nuser = \"upsv3user\"\nsecurity_level = \"{level}\"\n");
    let second = r#"
[[ups]]
name = "ups-annex"
address = "127.0.0.2"
vendor = "apc"
outlet_off_delay = "3m"
version = "3"
user = "upsv3user"
"#;
    let site = loopback_site().replacen("[[ups]]\n", &format!("{users}\n[[ups]]\n{ups}"), 1);
    let at = site.find("[[recorder]]").expect("recorders");
    format!("{}{second}\n{}", &site[..at], &site[at..])
}

#[test]
fn trapgate_run_hears_v3_upses_and_refuses_and_counts_what_it_cannot_check() {
    if !have_snmptrap() {
        return;
    }
    let file = site_file("v3", &v3_loopback("authNoPriv"));
    let journal = file.with_file_name("journal.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args([
            "run",
            "--config",
            file.to_str().expect("UTF-8"),
            "--listen",
            "127.0.0.1:0",
            "--journal",
        ])
        .arg(&journal)
        .env("TRAPGATE_TEST_PRIV", "privpass123")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trapgate starts");
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    let traps = format!("udp:{}", listening_on(&err));
    let from = |a: &str| format!("--clientaddr={a}");
    let send = |extra: &[&str], a: &str| {
        let mut all: Vec<String> = vec![from(a)];
        all.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let o = snmptrap_v3(&refs, &traps);
        assert!(o.status.success(), "{o:?}");
    };
    let sha = |level: &'static str, engine: &'static str| -> Vec<&'static str> {
        vec![
            "-u",
            "upsv3user",
            "-l",
            level,
            "-a",
            "SHA-256",
            "-A",
            "authpass123",
            "-x",
            "AES",
            "-X",
            "privpass123",
            "-e",
            engine,
        ]
    };
    // Refused, each for its reason: a level below the UPS's, a wrong passphrase, an
    // unknown user, a community trap from a v3 UPS.
    send(&sha("noAuthNoPriv", "0x8000000001000001"), "127.0.0.1");
    let mut wrong = sha("authPriv", "0x8000000001000001");
    wrong[7] = "notmypass1";
    send(&wrong, "127.0.0.1");
    let mut stranger = sha("authNoPriv", "0x8000000001000001");
    stranger[1] = "stranger";
    send(&stranger, "127.0.0.1");
    let v2c = net_snmp_cmd("snmptrap")
        .args([
            "-M",
            "/dev/null",
            "-v",
            "2c",
            "-c",
            "public",
            "--clientaddr=127.0.0.1",
        ])
        .arg(&traps)
        .args(["", "1.3.6.1.4.1.318.0.5"])
        .output()
        .expect("snmptrap runs");
    assert!(v2c.status.success());
    // An old trap, caught before it could arrive: boots 4, time 900.
    let old = caught_v3_trap(
        &sha("authPriv", "0x8000000001000001")
            .iter()
            .copied()
            .chain(["-Z", "4,900"])
            .collect::<Vec<_>>(),
    );
    // Heard: the UPS at authPriv (above its authNoPriv), from its card's engine, boots
    // 5 — the outage starts.
    let mut now = sha("authPriv", "0x8000000001000001");
    now.extend(["-Z", "5,1000"]);
    send(&now, "127.0.0.1");
    let line = expect_line(&out, &["\"kind\":\"on_battery\"", "ups-main"]);
    assert!(!line.contains("authpass123") && !line.contains("privpass123"));
    // The same user from the second card (authPriv, its default), its own engine:
    // heard too.
    send(&sha("authPriv", "0x8000000001000002"), "127.0.0.2");
    expect_line(&out, &["\"kind\":\"on_battery\"", "ups-annex"]);
    // The old trap replayed from the UPS's address: outside its engine's window.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the UPS's address");
    let to = listening_addr(&traps);
    sock.send_to(&old, to).expect("replay");
    // Give the worker time to count it before the stop summary.
    std::thread::sleep(Duration::from_millis(500));
    terminate(&child);
    assert!(child.wait().expect("exit").success());
    let stderr: Vec<String> = err.iter().collect();
    let summary = stderr.join("\n");
    for reason in [
        "usm_unsupported_level 1",
        "usm_wrong_digest 1",
        "usm_unknown_user 1",
        "wrong_version 1",
        "usm_not_in_time_window 1",
    ] {
        assert!(summary.contains(reason), "no `{reason}` in:\n{summary}");
    }
    // No passphrase anywhere trapgate wrote.
    let written = std::fs::read_to_string(&journal).expect("journal") + &summary;
    for secret in ["authpass123", "privpass123", "notmypass1"] {
        assert!(!written.contains(secret), "`{secret}` written:\n{written}");
    }
    let journal = std::fs::read_to_string(&journal).expect("journal");
    assert!(
        journal.contains("\"security_level\":\"authPriv\""),
        "{journal}"
    );
}

fn listening_addr(traps: &str) -> std::net::SocketAddr {
    traps.trim_start_matches("udp:").parse().expect("address")
}

#[test]
fn net_snmps_v3_informs_discover_trapgates_engine_and_are_answered() {
    if !have_snmptrap() {
        return;
    }
    // In this process: the passphrase in the site (the environment's is `run`'s, above).
    let text = v3_loopback("authPriv").replace(
        "priv_passphrase_env = \"TRAPGATE_TEST_PRIV\"",
        "priv_passphrase = \"privpass123\"",
    );
    let gw = InProcess::on_loopback(&text);
    let traps = format!("udp:{}", gw.traps);
    // trapgate's engine ID, which a sender may give instead of discovering it.
    let engine = format!("0x{}", trapgate::wire::hex::encode(&gw.bound.engine.id));
    let inform = |pass: &str, extra: &[&str]| {
        net_snmp_cmd("snmpinform")
            .args([
                "-M",
                "/dev/null",
                "-v",
                "3",
                "-u",
                "upsv3user",
                "-l",
                "authPriv",
            ])
            .args([
                "-a",
                "SHA-256",
                "-A",
                pass,
                "-x",
                "AES",
                "-X",
                "privpass123",
            ])
            // Generous waits: a loaded machine may answer a discovery late.
            .args(["--clientaddr=127.0.0.1", "-t", "3", "-r", "2"])
            .args(extra)
            .arg(&traps)
            .args(["", "1.3.6.1.4.1.318.0.5"])
            .output()
            .expect("snmpinform runs")
    };
    // Discovery (a Report with trapgate's engine, boots and time), then the inform,
    // authenticated and encrypted: answered.
    let answered = inform("authpass123", &[]);
    assert!(
        answered.status.success(),
        "the inform was answered: {answered:?}"
    );
    expect_line(&gw.out, &["\"kind\":\"on_battery\"", "ups-main"]);
    // Given the engine ID, without discovery: answered too.
    let given = inform("authpass123", &["-e", &engine]);
    assert!(given.status.success(), "{given:?}");
    // Another passphrase: discovery works, the inform is not answered.
    let wrong = inform("notmypass1", &[]);
    assert!(
        !wrong.status.success(),
        "a wrong passphrase is not answered"
    );
    let summary = gw.stop();
    let refused = summary
        .lines()
        .find(|l| l.trim_start().starts_with("refused:"))
        .unwrap_or_else(|| panic!("no refusals line in {summary}"));
    // The wrong passphrase's inform and its retries, nothing else: discovery and time
    // synchronization are the protocol, not refusals.
    assert!(refused.contains("(usm_wrong_digest "), "{summary}");
    assert!(
        !refused.contains(','),
        "only wrong digests refused: {summary}"
    );
}

/// A UPS-MIB card's values (on battery, 87 %, 42 min) by snmpd's `override`.
const CARD_VALUES: &str = "override .1.3.6.1.2.1.33.1.4.1.0 integer 5\n\
     override .1.3.6.1.2.1.33.1.2.1.0 integer 2\n\
     override .1.3.6.1.2.1.33.1.2.4.0 integer 87\n\
     override .1.3.6.1.2.1.33.1.2.3.0 integer 42\n";

#[test]
fn a_v3_ups_is_polled_over_v3_with_discovery_and_its_answer_counts() {
    let port = UdpSocket::bind("127.0.0.5:0")
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

[[usm_user]]
name = "upsv3user"
auth_protocol = "SHA-256"
auth_passphrase = "authpass123"
priv_protocol = "AES"
priv_passphrase = "privpass123"

[[ups]]
name = "ups-card"
address = "127.0.0.5"
port = {port}
vendor = "ups-mib"
poll_interval = "1s"
outlet_off_delay = "3m"
version = "3"
user = "upsv3user"
"#
    );
    let file = site_file("v3-poll", &text);
    let dir = file.parent().expect("dir").to_path_buf();
    // net-snmp's snmpd as a v3 UPS card whose only user is upsv3user at authPriv.
    let Some(mut card) = snmpd_card(
        &dir,
        &format!("udp:127.0.0.5:{port}"),
        &format!(
            "createUser upsv3user SHA-256 authpass123 AES privpass123\nrouser upsv3user priv\n{CARD_VALUES}"
        ),
    ) else {
        return;
    };
    let journal = dir.join("journal.jsonl");
    let _ = std::fs::remove_file(&journal);
    let gw = InProcess::start(&text, Some(journal.clone()));
    // The card on battery, 87 %, 42 min: heard through its v3 answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut polled = String::new();
    while std::time::Instant::now() < deadline {
        polled = std::fs::read_to_string(&journal).unwrap_or_default();
        if polled.contains("\"input\":\"poll\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (summary, printed) = gw.finish();
    let _ = card.kill();
    let _ = card.wait();
    let answer = polled
        .lines()
        .find(|l| l.contains("\"input\":\"poll\""))
        .unwrap_or_else(|| {
            let said: Vec<String> = printed.into_iter().chain([summary]).collect();
            panic!("no poll answer journaled:\n{polled}\n{}", said.join("\n"))
        });
    assert!(answer.contains("87"), "{answer}");
    assert!(!polled.contains("authpass123"), "no passphrase journaled");
}

#[test]
fn a_v3_recorder_polls_over_v3_is_told_over_v3_by_snmptrapd_and_acknowledges_over_v3() {
    if !have_snmptrap() {
        return;
    }
    // snmptrapd plays the recorder on 127.0.0.7, knowing trapgate's engine (the site
    // gives it) and the recorder's user.
    let engine = "0x80001f8804747261706761746532";
    let trapd_port = UdpSocket::bind("127.0.0.7:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let text = format!(
        r#"[gateway]
listen = ["127.0.0.1:0"]
agent = "127.0.0.1:0"
engine_id = "{engine}"

[policy]
grace = {{ 1 = "10m" }}
shutdown_below_charge = 30
shutdown_below_runtime = "5m"
confirm_by_poll = false

[[usm_user]]
name = "nvrv3"
auth_protocol = "SHA"
auth_passphrase = "nvrauth123"
priv_protocol = "AES"
priv_passphrase = "nvrpriv123"

[[ups]]
name = "ups-main"
address = "127.0.0.1"
vendor = "apc"
outlet_off_delay = "3m"

[[recorder]]
name = "nvr-v3"
address = "127.0.0.7"
port = {trapd_port}
ups = "ups-main"
tier = 1
shutdown_time = "90s"
version = "3"
user = "nvrv3"
"#
    );
    let file = site_file("v3-recorder", &text);
    let conf = file.with_file_name("snmptrapd.conf");
    std::fs::write(
        &conf,
        format!(
            "createUser -e {engine} nvrv3 SHA nvrauth123 AES nvrpriv123\nauthUser log nvrv3 priv\n"
        ),
    )
    .expect("conf");
    let mut trapd = Command::new("snmptrapd")
        .args(["-f", "-Lo", "-n", "-On", "-M", "/dev/null", "-C", "-c"])
        .arg(&conf)
        .arg(format!("udp:127.0.0.7:{trapd_port}"))
        .env("SNMP_PERSISTENT_DIR", file.parent().expect("dir"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("snmptrapd starts");
    let trapd_out = lines(trapd.stdout.take().expect("stdout"));
    let gw = InProcess::start(&text, None);
    let (traps, agent) = (gw.traps.to_string(), gw.agent.to_string());
    let v3 = [
        "-v",
        "3",
        "-u",
        "nvrv3",
        "-l",
        "authPriv",
        "-a",
        "SHA",
        "-A",
        "nvrauth123",
        "-x",
        "AES",
        "-X",
        "nvrpriv123",
        "--clientaddr=127.0.0.7",
    ];
    // The recorder polls its virtual UPS over v3 (discovering trapgate's engine first).
    let get = net_snmp_cmd("snmpget")
        .args(["-M", "/dev/null", "-On", "-t", "2", "-r", "1"])
        .args(v3)
        .arg(&agent)
        .arg("1.3.6.1.2.1.1.5.0")
        .output()
        .expect("snmpget runs");
    let got = String::from_utf8_lossy(&get.stdout).to_string();
    assert!(
        got.contains(".1.3.6.1.2.1.1.5.0 = STRING: \"ups-main\""),
        "{got} {get:?}"
    );
    // snmpwalk -v 3 walks the virtual UPS's objects in order, sealed all the way.
    let walk = net_snmp_cmd("snmpwalk")
        .args(["-M", "/dev/null", "-On", "-t", "2", "-r", "1"])
        .args(v3)
        .arg(&agent)
        .arg("1.3.6.1.2.1.1")
        .output()
        .expect("snmpwalk runs");
    let walked = String::from_utf8_lossy(&walk.stdout).to_string();
    let names: Vec<&str> = walked
        .lines()
        .filter_map(|l| l.split(" = ").next())
        .collect();
    assert!(names.len() >= 3, "{walked} {walk:?}");
    assert!(names.contains(&".1.3.6.1.2.1.1.5.0"), "{walked}");
    // A wrong passphrase from the recorder's address: a Report of usmStatsWrongDigests,
    // as net-snmp's own agent sends, so that snmpget says why rather than "Timeout".
    let mut wrong = v3;
    wrong[9] = "wrongauth1";
    let wrong_key = net_snmp_cmd("snmpget")
        .args(["-M", "/dev/null", "-On", "-t", "2", "-r", "0"])
        .args(wrong)
        .arg(&agent)
        .arg("1.3.6.1.2.1.1.5.0")
        .output()
        .expect("snmpget runs");
    let said = String::from_utf8_lossy(&wrong_key.stderr).to_string();
    assert!(
        !wrong_key.status.success() && said.contains("Authentication failure"),
        "{said} {wrong_key:?}"
    );
    // The right passphrase from an address that is no recorder's: nothing answers, not
    // even discovery (the agent is no reflector for strangers).
    let mut stranger = v3;
    stranger[14] = "--clientaddr=127.0.0.9";
    let from_elsewhere = net_snmp_cmd("snmpget")
        .args(["-M", "/dev/null", "-On", "-t", "1", "-r", "0"])
        .args(stranger)
        .arg(&agent)
        .arg("1.3.6.1.2.1.1.5.0")
        .output()
        .expect("snmpget runs");
    let said = String::from_utf8_lossy(&from_elsewhere.stderr).to_string();
    assert!(
        !from_elsewhere.status.success() && said.contains("Timeout"),
        "{said} {from_elsewhere:?}"
    );
    // The same in v2c with the community: not its way (it is a v3 recorder).
    let v2c = net_snmp_cmd("snmpget")
        .args([
            "-M",
            "/dev/null",
            "-On",
            "-t",
            "1",
            "-r",
            "0",
            "-v2c",
            "-c",
            "public",
            "--clientaddr=127.0.0.7",
        ])
        .arg(&agent)
        .arg("1.3.6.1.2.1.1.5.0")
        .output()
        .expect("snmpget runs");
    assert!(
        !v2c.status.success(),
        "a v3 recorder's community poll is not answered"
    );
    // Low battery: the order goes out as a v3 trap from trapgate's engine, which
    // snmptrapd authenticates, decrypts and shows.
    let sent = net_snmp_cmd("snmptrap")
        .args([
            "-M",
            "/dev/null",
            "-v1",
            "-c",
            "public",
            "--clientaddr=127.0.0.1",
        ])
        .arg(&traps)
        .args(["1.3.6.1.4.1.318", "127.0.0.1", "6", "7", "0"])
        .output()
        .expect("snmptrap runs");
    assert!(sent.status.success());
    expect_line(&gw.out, &["\"action\":\"Sent\"", "nvr-v3", "SNMPv3"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut told = Vec::new();
    while std::time::Instant::now() < deadline
        && !told
            .iter()
            .any(|l: &String| l.contains(".1.3.6.1.4.1.318.2.3.3.0"))
    {
        if let Ok(l) = trapd_out.recv_timeout(Duration::from_millis(200)) {
            told.push(l);
        }
    }
    let told = told.join("\n");
    assert!(
        told.contains(".1.3.6.1.4.1.318.0.7"),
        "the APC lowBattery trap: {told}"
    );
    assert!(
        told.contains("UPS: Low battery. A shutdown is imminent."),
        "{told}"
    );
    // The recorder acknowledges with a v3 trap of its own: acknowledged, told no more.
    let ack = net_snmp_cmd("snmptrap")
        .args(["-M", "/dev/null"])
        .args(v3)
        .args(["-e", "0x80001f8803aabbccddeeff"])
        .arg(&traps)
        .args(["", "1.3.6.1.4.1.50001.0.200"])
        .output()
        .expect("snmptrap runs");
    assert!(ack.status.success(), "{ack:?}");
    expect_line(&gw.out, &["\"decision\":\"Acknowledged\"", "nvr-v3"]);
    let summary = gw.stop();
    let _ = trapd.kill();
    let _ = trapd.wait();
    assert!(summary.contains("agent_wrong_community 1"), "{summary}");
    // Each refusal counted once, under refused: none of them also as a drop.
    assert!(summary.contains("usm_wrong_digest 1"), "{summary}");
    assert!(summary.contains("agent_not_recorder 1"), "{summary}");
    assert!(summary.contains("   dropped: none"), "{summary}");
    assert!(summary.contains("SNMPv3 Reports sent: "), "{summary}");
}

/// The demo's story with every UPS and recorder on SNMPv3 at authPriv: the UPS's traps
/// and polls, the recorders' discovery, polls, orders and acknowledgements.
#[test]
fn the_demo_tells_the_seed_story_over_snmpv3() {
    let out = Command::new(env!("CARGO_BIN_EXE_trapgate"))
        .args(["demo", "--v3", "--speed", "120"])
        .output()
        .expect("the demo runs");
    let story = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{story}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "every UPS and recorder on SNMPv3 (authPriv: SHA, AES-128)",
        "UPS: mains power fails; sends upsOnBattery",
        "gateway decides: nvr-244 shuts down now (on battery for 120 s",
        "gateway decides: nvr-251 shuts down now (lowBattery confirmed by poll",
        "APC lowBattery, an SNMPv3 trap from trapgate's engine",
        "gateway: nvr-244 acknowledged",
        "gateway: nvr-251 acknowledged",
        "gateway: nvr-251 is back",
        "recorders: 4 (2 NVRs, a NUT client, an apcupsd client); told: 4; acknowledged: 4; resent: 0; never acknowledged: 0; back after power returned: 4; not back: 0",
    ] {
        assert!(story.contains(want), "missing {want:?} in:\n{story}");
    }
}
